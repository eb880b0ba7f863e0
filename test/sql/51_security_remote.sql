-- Issue 11, remote connections, verify and diff, as unprivileged roles:
-- no internal function sends SQL text of the caller's to a source
-- (finding 1), the binary COPY reader checks SELECT and its column list
-- (finding 2), postgres_fdw's password rule holds before connecting and
-- the remote session is read-only (finding 3), verify and diff run as the
-- plan's owner, and sensitive columns do not show in their results.
-- Positive controls: the owner, with the grants docs/security.md lists,
-- verifies and diffs its own plan.
\set SHOW_CONTEXT never
SET client_min_messages = warning;
\set regress_db :DBNAME
\c migrate_src
SET client_min_messages = warning;
CREATE TABLE rmt_secret (id int PRIMARY KEY, secret text);
INSERT INTO rmt_secret VALUES (1, 'the launch codes'), (2, 'the recipe');
-- a view whose every read writes: shows whether a remote transaction is read-only
CREATE TABLE rmt_write_log (id int);
CREATE FUNCTION rmt_touch(int) RETURNS int LANGUAGE plpgsql VOLATILE
AS $$ BEGIN INSERT INTO public.rmt_write_log VALUES ($1); RETURN $1; END $$;
CREATE VIEW rmt_writes AS SELECT g AS id, rmt_touch(g) AS v FROM generate_series(1, 5) g;
CREATE TABLE rmt_people (ssn text PRIMARY KEY, name text, who text);
INSERT INTO rmt_people SELECT 'ssn-' || lpad(g::text, 3, '0'), 'person ' || g, 'n/a' FROM generate_series(1, 40) g;
\c :regress_db
SET client_min_messages = warning;
\set SHOW_CONTEXT never
IMPORT FOREIGN SCHEMA public LIMIT TO (rmt_secret, rmt_writes, rmt_people) FROM SERVER src INTO legacy;

CREATE ROLE regress_rmt_alice;     -- an owner, with the documented grants
CREATE ROLE regress_rmt_mallory;   -- another role
CREATE ROLE regress_rmt_team;      -- alice's people
GRANT regress_rmt_alice TO regress_rmt_team;
GRANT USAGE ON SCHEMA legacy TO regress_rmt_alice, regress_rmt_mallory;
GRANT SELECT ON legacy.items, legacy.rmt_people TO regress_rmt_alice, regress_rmt_mallory;
-- both map to this (superuser) remote role: only local rights stand between
-- them and the source's every table
SELECT format('CREATE USER MAPPING FOR regress_rmt_alice SERVER src OPTIONS (user %L, password_required ''false'')',
              current_user) AS map_alice,
       format('CREATE USER MAPPING FOR regress_rmt_mallory SERVER src OPTIONS (user %L, password_required ''false'')',
              current_user) AS map_mallory \gset
:map_alice;
:map_mallory;

-- finding 1: _compare_sides takes a statement *here*, planned as the caller
SET ROLE regress_rmt_mallory;
-- remote SQL is not remote any more: public.rmt_secret is no relation here
SELECT test_error($$SELECT migrate._compare_sides('legacy.items', 'SELECT count(*) FROM public.rmt_secret', 'SELECT 1', NULL)$$);
-- a foreign table the caller may not read
SELECT test_error($$SELECT migrate._compare_sides('legacy.items', 'SELECT max(secret) FROM legacy.rmt_secret', 'SELECT 1', NULL)$$);
SELECT test_error($$SELECT migrate._both_sides('legacy.items', 'SELECT ARRAY[count(*)::numeric] FROM legacy.rmt_secret', 'SELECT ARRAY[1::numeric]', NULL)$$);
SELECT test_error($$SELECT migrate._both_sides('legacy.items', 'SELECT ARRAY[count(*)::numeric] FROM legacy.items', 'SELECT ARRAY[1::numeric]', NULL, 'SELECT ARRAY[length(max(secret))::numeric] FROM legacy.rmt_secret WHERE EXISTS (%s)')$$);
-- several statements, a write
SELECT test_error($$SELECT migrate._compare_sides('legacy.items', 'SELECT count(*) FROM legacy.items; COMMIT; DELETE FROM public.items', 'SELECT 1', NULL)$$);
SELECT test_error($$SELECT migrate._compare_sides('legacy.items', 'WITH d AS (DELETE FROM legacy.items RETURNING 1) SELECT count(*) FROM d', 'SELECT 1', NULL)$$);
-- what postgres_fdw does not compute on the source is not sent: NULL
SELECT migrate._compare_sides('legacy.items', 'SELECT count(*) FROM pg_catalog.pg_class', 'SELECT 1', NULL) IS NULL AS not_sent;
-- and what it does is what the caller could read anyway
SELECT migrate._compare_sides('legacy.items', 'SELECT count(*) FROM legacy.items', 'SELECT 1', NULL);
RESET ROLE;
\c migrate_src
SELECT count(*) AS items_left FROM items;
\c :regress_db
SET client_min_messages = warning;
\set SHOW_CONTEXT never

-- finding 2: _copy_source checks SELECT and the column definition list
SET ROLE regress_rmt_mallory;
SELECT test_error($$SELECT * FROM migrate._copy_source('legacy.rmt_secret'::regclass, 'id', NULL::int, 10) AS s(id int, secret text)$$);
-- a text column declared bigint, a bigint declared text, too few columns
SELECT test_error($$SELECT * FROM migrate._copy_source('legacy.rmt_people'::regclass, 'ssn', NULL::text, 'z') AS s(ssn bigint, name text, who text)$$);
SELECT test_error($$SELECT * FROM migrate._copy_source('legacy.items'::regclass, 'id', NULL::bigint, 100::bigint) AS s(id text, sku text, qty int, price numeric)$$);
SELECT test_error($$SELECT * FROM migrate._copy_source('legacy.items'::regclass, 'id', NULL::bigint, 100::bigint) AS s(id bigint)$$);
SELECT test_error($$SELECT * FROM migrate._copy_source('legacy.items'::regclass, 'id', NULL::bigint, 100::bigint) AS s(id bigint, sku text, qty int, price numeric, extra int)$$);
-- the right list reads (a column's typmod may differ)
SELECT count(*), sum(id) FROM migrate._copy_source('legacy.items'::regclass, 'id', NULL::bigint, 70::bigint)
    AS s(id bigint, sku text, qty int, price numeric(10,1));
RESET ROLE;

-- finding 3: postgres_fdw's rule before connecting; postgres_fdw servers only
CREATE ROLE regress_rmt_nopw;
GRANT USAGE ON SCHEMA legacy TO regress_rmt_nopw;
GRANT SELECT ON legacy.items TO regress_rmt_nopw;
CREATE USER MAPPING FOR regress_rmt_nopw SERVER src OPTIONS (user 'no_such_remote_role');
SET ROLE regress_rmt_nopw;
SELECT test_error($$SELECT count(*) FROM migrate._copy_source('legacy.items'::regclass, 'id', NULL::bigint, 70::bigint) AS s(id bigint, sku text, qty int, price numeric)$$);
SELECT test_error($$SELECT migrate._compare_sides('legacy.items', 'SELECT count(*) FROM legacy.items', 'SELECT 1', NULL)$$);
RESET ROLE;
-- a PUBLIC mapping without a password, first connected by a superuser in
-- this session: the kept connection does not serve a non-superuser
DO $$
BEGIN
    EXECUTE format('CREATE SERVER rmt_src2 FOREIGN DATA WRAPPER postgres_fdw OPTIONS (host %L, port %L, dbname %L)',
                   split_part(current_setting('unix_socket_directories'), ',', 1),
                   current_setting('port'), 'migrate_src');
END $$;
SELECT format('CREATE USER MAPPING FOR PUBLIC SERVER rmt_src2 OPTIONS (user %L)', current_user) AS map_public \gset
:map_public;
CREATE FOREIGN TABLE legacy.rmt_items2 (id bigint, sku text, qty int, price numeric)
    SERVER rmt_src2 OPTIONS (schema_name 'public', table_name 'items');
GRANT SELECT ON legacy.rmt_items2 TO regress_rmt_nopw;
SELECT count(*) FROM migrate._copy_source('legacy.rmt_items2'::regclass, 'id', NULL::bigint, 70::bigint)
    AS s(id bigint, sku text, qty int, price numeric);
SET ROLE regress_rmt_nopw;
SELECT test_error($$SELECT count(*) FROM migrate._copy_source('legacy.rmt_items2'::regclass, 'id', NULL::bigint, 70::bigint) AS s(id bigint, sku text, qty int, price numeric)$$);
RESET ROLE;
-- another wrapper's options were not checked by postgres_fdw's validator
CREATE FOREIGN DATA WRAPPER rmt_dummy;
CREATE SERVER rmt_dummy_srv FOREIGN DATA WRAPPER rmt_dummy OPTIONS (host '/tmp', dbname 'migrate_src');
CREATE USER MAPPING FOR regress_rmt_mallory SERVER rmt_dummy_srv OPTIONS (user 'regress_rmt_mallory', password_required 'false');
CREATE FOREIGN TABLE legacy.rmt_dummy_items (id bigint) SERVER rmt_dummy_srv OPTIONS (table_name 'items');
GRANT SELECT ON legacy.rmt_dummy_items TO regress_rmt_mallory;
SET ROLE regress_rmt_mallory;
SELECT test_error($$SELECT count(*) FROM migrate._copy_source('legacy.rmt_dummy_items'::regclass, 'id', NULL::bigint, 70::bigint) AS s(id bigint)$$);
RESET ROLE;
-- the remote session is read-only: a source whose read writes fails, nothing is written
SELECT test_error($$SELECT count(*) FROM migrate._copy_source('legacy.rmt_writes'::regclass, 'id', NULL::int, 10) AS s(id int, v int)$$);
SELECT test_error($$SELECT migrate._compare_sides('legacy.rmt_writes', 'SELECT count(*) FROM legacy.rmt_writes', 'SELECT 1', NULL)$$);
\c migrate_src
SELECT count(*) AS rows_written_remotely FROM rmt_write_log;
\c :regress_db
SET client_min_messages = warning;
\set SHOW_CONTEXT never

-- verify and diff run as the plan's owner.  alice's plan maps "who" from
-- current_user; loaded by a superuser's run (as the superuser), then given
-- to alice: a verification that ran as the superuser would match, one that
-- runs as alice finds "who" differs.
CREATE TABLE rmt_person (ssn text PRIMARY KEY, name text, who text);
GRANT SELECT ON rmt_person TO regress_rmt_alice, regress_rmt_mallory;
SELECT migrate_plan('rmt_alice', source_schema => 'legacy');
SELECT migrate_table('rmt_alice', 'rmt_people', 'rmt_person');
SELECT migrate_column('rmt_alice', 'rmt_person', 'who', 'current_user::text');
SELECT migrate_run('rmt_alice') IS NOT NULL AS ran;
SELECT DISTINCT who = current_user::text AS loaded_as_the_runner FROM rmt_person;
UPDATE migrate.plan SET owner = 'regress_rmt_alice' WHERE plan_name = 'rmt_alice';
UPDATE migrate.run SET owner = 'regress_rmt_alice' WHERE plan = 'rmt_alice';
-- the superuser's call: alice's expression ran as alice
SELECT check_name, ok, details FROM migrate_verify('rmt_alice');
-- alice herself and a member of alice: the same
SET ROLE regress_rmt_alice;
SELECT check_name, ok FROM migrate_verify('rmt_alice');
SET ROLE regress_rmt_team;
SELECT check_name, ok FROM migrate_verify('rmt_alice');
RESET ROLE;
UPDATE rmt_person SET who = 'regress_rmt_alice';
SET ROLE regress_rmt_alice;
SELECT check_name, ok FROM migrate_verify('rmt_alice');
SELECT key, kind, columns FROM migrate_diff('rmt_alice', 'rmt_person');
RESET ROLE;
-- another role: the plan does not exist for it, nor do its results
SET ROLE regress_rmt_mallory;
SELECT test_error($$SELECT * FROM migrate_verify('rmt_alice')$$);
SELECT test_error($$SELECT * FROM migrate_diff('rmt_alice', 'rmt_person')$$);
SELECT test_error($$SELECT * FROM migrate._migrate_verify('rmt_alice', NULL, NULL, NULL)$$);
SELECT test_error($$SELECT * FROM migrate._migrate_diff('rmt_alice', 'rmt_person', NULL, 256, NULL)$$);
SELECT count(*) AS visible_verifications FROM migrate.verification v
  JOIN migrate.run r USING (run_id) WHERE r.plan = 'rmt_alice';
RESET ROLE;

-- sensitive columns: the key ssn is sensitive; its values show as ***
RESET ROLE;
INSERT INTO migrate.sensitive_column (plan, target, source_column) VALUES ('rmt_alice', 'rmt_person', 'ssn');
SELECT migrate_rule('rmt_alice', 'rmt_person', 'named', 'name LIKE ''person %''');
UPDATE rmt_person SET name = 'renamed' WHERE ssn IN ('ssn-003', 'ssn-007');
DELETE FROM rmt_person WHERE ssn = 'ssn-010';
SET ROLE regress_rmt_alice;
SELECT check_name, ok, details FROM migrate_verify('rmt_alice') WHERE NOT ok ORDER BY check_name;
SELECT key, kind, columns FROM migrate_diff('rmt_alice', 'rmt_person');
SELECT count(*) AS stored_keys_in_clear FROM migrate.diff_result
 WHERE plan = 'rmt_alice' AND key LIKE '%ssn-%';
SELECT count(*) AS details_in_clear FROM migrate.verification v JOIN migrate.run r USING (run_id)
 WHERE r.plan = 'rmt_alice' AND v.details LIKE '%ssn-%';
RESET ROLE;
-- control: not sensitive, the same diff names the keys
DELETE FROM migrate.sensitive_column WHERE plan = 'rmt_alice';
SET ROLE regress_rmt_alice;
SELECT key, kind, columns FROM migrate_diff('rmt_alice', 'rmt_person');
RESET ROLE;

-- clean up
DELETE FROM migrate.plan WHERE plan_name = 'rmt_alice';
DROP TABLE rmt_person;
DROP FOREIGN TABLE legacy.rmt_secret, legacy.rmt_writes, legacy.rmt_people, legacy.rmt_items2,
    legacy.rmt_dummy_items;
DROP SERVER rmt_dummy_srv CASCADE;
DROP FOREIGN DATA WRAPPER rmt_dummy;
DROP SERVER rmt_src2 CASCADE;
DROP OWNED BY regress_rmt_alice, regress_rmt_mallory, regress_rmt_nopw, regress_rmt_team;
DROP ROLE regress_rmt_alice, regress_rmt_mallory, regress_rmt_nopw, regress_rmt_team;
