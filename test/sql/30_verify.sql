-- migrate_verify(): after a clean run every check passes: row counts (with
-- the table's filter, rejected rows left out), checksums of the mapped
-- values (renamed, computed and cast columns), rules re-checked on the
-- target, and foreign keys: declared on the target, declared with
-- migrate_foreign_key(), declared on a local source table.
\set SHOW_CONTEXT never
SET client_min_messages = warning;
\set regress_db :DBNAME
\c migrate_src
SET client_min_messages = warning;
-- text keys; NULL, empty strings and trailing blanks in values
CREATE TABLE ver_notes (code text PRIMARY KEY, note text, qty int);
INSERT INTO ver_notes VALUES ('k1', 'a', 1), ('k2', '', 2), ('k3', NULL, 3), ('k4', 'x', 4),
                             ('k5', 'y ', 5), ('k6', ' ', NULL);
INSERT INTO ver_notes SELECT 'n' || lpad(g::text, 4, '0'), 'note ' || g, g FROM generate_series(1, 300) g;
\c :regress_db
SET client_min_messages = warning;
\set SHOW_CONTEXT never
IMPORT FOREIGN SCHEMA public LIMIT TO (ver_notes) FROM SERVER src INTO legacy;
-- a local source with a foreign key of its own
CREATE SCHEMA ver_local;
CREATE TABLE ver_local.parent (id int PRIMARY KEY, name text);
CREATE TABLE ver_local.child (id int PRIMARY KEY, parent_id int REFERENCES ver_local.parent, label text);
INSERT INTO ver_local.parent SELECT g, 'parent ' || g FROM generate_series(1, 20) g;
INSERT INTO ver_local.child SELECT g, g % 20 + 1, 'child ' || g FROM generate_series(1, 100) g;

CREATE TABLE ver_customer (customer_id int PRIMARY KEY, display_name text NOT NULL, email text,
                           country char(2), amount numeric(10,2), signup date);
CREATE TABLE ver_order (id int PRIMARY KEY, customer_id int, total numeric(12,1), placed timestamp);
CREATE TABLE ver_note (code text PRIMARY KEY, note varchar(20), qty bigint);
CREATE TABLE ver_parent (id int PRIMARY KEY, name text);
CREATE TABLE ver_child (id int PRIMARY KEY, parent_id int, label text);  -- no FK on the target
CREATE TABLE ver_item (id bigint PRIMARY KEY, sku text, qty int, price numeric,
                       item_id bigint REFERENCES ver_item);               -- a declared FK (to itself)

SELECT migrate_plan('verify', source_schema => 'legacy', options => '{"reject_limit": null}');
SELECT migrate_table('verify', 'customers', 'ver_customer', key => 'customer_id');
SELECT migrate_column('verify', 'ver_customer', 'customer_id', 's.id');
SELECT migrate_column('verify', 'ver_customer', 'display_name', 'upper(s.name)');
SELECT migrate_column('verify', 'ver_customer', 'email', 'lower(s.email)');
SELECT migrate_column('verify', 'ver_customer', 'amount', 'nullif(s.amount, ''n/a'')::numeric');
SELECT migrate_column('verify', 'ver_customer', 'signup', 's.signup::date');
SELECT migrate_rule('verify', 'ver_customer', 'known_country', 'country <> ''XX''');
SELECT migrate_rule('verify', 'ver_customer', 'amount_known', 'amount IS NOT NULL', 'warn');
-- orders of customers the rule rejects are filtered out at the source
SELECT migrate_table('verify', 'orders', 'ver_order', filter => 's.customer_id % 3 <> 2 AND s.customer_id <> 9999');
SELECT migrate_column('verify', 'ver_order', 'placed', 's.placed + 1');
SELECT migrate_foreign_key('verify', 'ver_order', 'customer_id', 'ver_customer');
SELECT migrate_table('verify', 'ver_notes', 'ver_note');
SELECT migrate_table('verify', 'ver_local.parent', 'ver_parent');
SELECT migrate_table('verify', 'ver_local.child', 'ver_child');
SELECT migrate_table('verify', 'items', 'ver_item');
SELECT migrate_column('verify', 'ver_item', 'item_id', 'CASE WHEN s.id > 7 THEN s.id - 7 END');
SET migrate.batch_size = 100;
SELECT migrate_run('verify') AS run \gset
SELECT * FROM test_counts(:run);

-- the foreign keys a verification checks, and where each comes from
SELECT * FROM migrate._verify_foreign_keys('verify', ARRAY['ver_order', 'ver_child', 'ver_item', 'ver_note']::regclass[])
 ORDER BY target::text;

-- a clean run verifies ok
SELECT target, check_name, source_value, target_value, ok,
       regexp_replace(details, 'run \d+', 'run N') AS details
  FROM migrate_verify('verify');
SELECT state, verified, verified_at IS NOT NULL AS has_time FROM migrate.run WHERE run_id = :run;
SELECT event, details FROM migrate.event WHERE run_id = :run AND event LIKE '%verif%';
-- stored, and the same when the run is named
SELECT count(*), bool_and(ok) FROM migrate.verification WHERE run_id = :run;
SELECT count(*), bool_and(ok) FROM migrate_verify('verify', run => :run);

-- the checksum compares the mapped values: the same data under another
-- mapping does not match
SELECT migrate_column('verify', 'ver_customer', 'display_name', 'lower(s.name)');
SELECT check_name, ok, details FROM migrate_verify('verify')
 WHERE target = 'ver_customer'::regclass AND check_name = 'checksum';
SELECT migrate_column('verify', 'ver_customer', 'display_name', 'upper(s.name)');
SELECT bool_and(ok) FROM migrate_verify('verify');

-- composite and text keys, a filter (plan of sql/09_keys.sql)
SELECT target, check_name, source_value, target_value, ok FROM migrate_verify('keys')
 WHERE check_name = 'row count' ORDER BY target::text;
SELECT bool_and(ok) FROM migrate.verification
 WHERE run_id = (SELECT max(run_id) FROM migrate.run WHERE plan = 'keys');

-- every function of the checksum is built in: postgres_fdw ships the
-- aggregate, only one row crosses the wire
SELECT format('EXPLAIN (VERBOSE, COSTS OFF) SELECT %s %s', q->>'source_aggs', q->>'source') AS explain_sql
  FROM migrate._verify_sql('verify', 'ver_note') q \gset
:explain_sql;

-- timestamptz compares as the instant, whatever the session's TimeZone
-- (postgres_fdw's remote session runs at UTC); infinity and NULL included
\c migrate_src
SET client_min_messages = warning;
CREATE TABLE ver_events (id int PRIMARY KEY, at timestamptz, day date);
INSERT INTO ver_events VALUES (1, 'infinity', 'infinity'), (2, '-infinity', '-infinity'), (3, NULL, NULL),
                              (4, '2026-03-29 01:30:00.123456+00', '2026-03-29');
INSERT INTO ver_events SELECT g, timestamptz '2026-01-01 00:00+00' + g * interval '7 hours 3 minutes',
                              date '2026-01-01' + g FROM generate_series(5, 200) g;
\c :regress_db
SET client_min_messages = warning;
\set SHOW_CONTEXT never
SET TimeZone = 'Asia/Kolkata';
IMPORT FOREIGN SCHEMA public LIMIT TO (ver_events) FROM SERVER src INTO legacy;
CREATE TABLE ver_event (id int PRIMARY KEY, at timestamptz, day date);
SELECT migrate_plan('verify_tz', source_schema => 'legacy');
SELECT migrate_table('verify_tz', 'ver_events', 'ver_event');
SELECT migrate_run('verify_tz') IS NOT NULL AS ran;
SELECT check_name, ok, details FROM migrate_verify('verify_tz');
SET TimeZone = 'America/St_Johns';
SELECT bool_and(ok) FROM migrate_verify('verify_tz');
-- one microsecond, and two values swapped between rows, are seen
UPDATE ver_event SET at = at + interval '1 microsecond' WHERE id = 4;
SELECT check_name, ok, details FROM migrate_verify('verify_tz') WHERE NOT ok;
UPDATE ver_event SET at = at - interval '1 microsecond' WHERE id = 4;
UPDATE ver_event SET day = CASE id WHEN 10 THEN date '2026-01-21' ELSE date '2026-01-11' END WHERE id IN (10, 20);
SELECT check_name, ok, details FROM migrate_verify('verify_tz') WHERE NOT ok;
UPDATE ver_event SET day = CASE id WHEN 10 THEN date '2026-01-11' ELSE date '2026-01-21' END WHERE id IN (10, 20);
SELECT bool_and(ok) FROM migrate_verify('verify_tz');
RESET TimeZone;
