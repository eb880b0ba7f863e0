-- Trigger capture (issue 13, capture => 'trigger'): arming a local source
-- installs a change table, a SECURITY DEFINER function and statement
-- triggers that record the changed keys of whatever role writes the source
-- (an application role with no right on the change table nor on migrate's
-- catalog); a key change records the old and the new key, a truncate 'T'.
-- A postgres_fdw source gets the DDL from migrate_capture_sql() for its
-- DBA; arming it fails with 55000 until that DDL ran there.  Disarming
-- removes what arming made.  Depends on 00_setup (test_error, server src).
\set SHOW_CONTEXT never
SET client_min_messages = warning;
\set regress_db :DBNAME
CREATE ROLE regress_cap_alice;     -- the plan owner
CREATE ROLE regress_cap_app;       -- the application writing the source
CREATE ROLE regress_cap_mallory;   -- another role

-- a local source, owned by the superuser: alice gets TRIGGER on it, the
-- application only DML
CREATE SCHEMA cap_src;
CREATE TABLE cap_src.orders (id int PRIMARY KEY, v text);
INSERT INTO cap_src.orders SELECT g, 'v' || g FROM generate_series(1, 10) g;
GRANT USAGE ON SCHEMA cap_src TO regress_cap_alice, regress_cap_app;
GRANT SELECT, TRIGGER ON cap_src.orders TO regress_cap_alice;
GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON cap_src.orders TO regress_cap_app;
CREATE VIEW cap_src.orders_view AS SELECT * FROM cap_src.orders;
GRANT SELECT ON cap_src.orders_view TO regress_cap_alice;
CREATE SCHEMA cap_tgt;
CREATE TABLE cap_tgt.orders (id int PRIMARY KEY, v text);
CREATE TABLE cap_tgt.orders2 (id int PRIMARY KEY, v text);
CREATE TABLE cap_tgt.orders3 (id int PRIMARY KEY, v text);
-- mallory may name the targets (so that the plan is what stops her)
GRANT USAGE ON SCHEMA cap_tgt TO regress_cap_alice, regress_cap_mallory;
GRANT ALL ON ALL TABLES IN SCHEMA cap_tgt TO regress_cap_alice;

SET ROLE regress_cap_alice;
SELECT migrate_plan('cap_local', source_schema => 'cap_src', target_schema => 'cap_tgt');
SELECT migrate_table('cap_local', 'orders', 'orders', capture => 'trigger');
-- the key mapped from an expression: no plain source column to record
SELECT migrate_table('cap_local', 'orders', 'orders2', capture => 'trigger');
SELECT migrate_column('cap_local', 'orders2', 'id', 's.id + 0');
SELECT test_error($$SELECT migrate._capture_arm_trigger('cap_local', 'cap_tgt.orders2')$$);
SELECT test_error($$SELECT migrate._capture_ddl('cap_local', 'cap_tgt.orders2', false)$$);
-- a quoted, spaced s."id" is a plain source column
SELECT migrate_column('cap_local', 'orders2', 'id', ' s . "id" ');
SELECT (migrate._capture_source('cap_local', 'cap_tgt.orders2')).key_column AS plain_column;
-- a view: statement triggers there would see nothing of the table's writes
SELECT migrate_table('cap_local', 'orders_view', 'orders3', capture => 'trigger');
SELECT test_error($$SELECT migrate._capture_arm_trigger('cap_local', 'cap_tgt.orders3')$$);
-- capture none: nothing to arm
SELECT migrate_table('cap_local', 'orders', 'orders3', capture => 'none');
SELECT test_error($$SELECT migrate._capture_arm_trigger('cap_local', 'cap_tgt.orders3')$$);
-- the DDL for a local source is not for a remote one
SELECT test_error($$SELECT migrate._capture_ddl('cap_local', 'cap_tgt.orders', true)$$);
-- no CREATE on the source's schema, then no TRIGGER on the table: 42501 with hints
SELECT test_error($$SELECT migrate._capture_arm_trigger('cap_local', 'cap_tgt.orders')$$);
RESET ROLE;
GRANT CREATE ON SCHEMA cap_src TO regress_cap_alice;
REVOKE TRIGGER ON cap_src.orders FROM regress_cap_alice;
SET ROLE regress_cap_alice;
SELECT test_error($$SELECT migrate._capture_arm_trigger('cap_local', 'cap_tgt.orders')$$);
RESET ROLE;
GRANT TRIGGER ON cap_src.orders TO regress_cap_alice;

-- the DDL arming runs (as alice: she is not the table's owner)
SET ROLE regress_cap_alice;
SELECT migrate._capture_ddl('cap_local', 'cap_tgt.orders', false);
SELECT migrate._capture_arm_trigger('cap_local', 'cap_tgt.orders');
-- again: the same relation, nothing doubled
SELECT migrate._capture_arm_trigger('cap_local', 'cap_tgt.orders');
RESET ROLE;
SELECT tgname, pg_get_triggerdef(oid)
  FROM pg_trigger WHERE tgrelid = 'cap_src.orders'::regclass ORDER BY tgname;
-- the function: alice's, SECURITY DEFINER, pinned path, no EXECUTE for PUBLIC
SELECT proowner::regrole, prosecdef, proconfig, proacl
  FROM pg_proc WHERE oid = 'cap_src.orders_migrate_capture()'::regprocedure;
-- the change table: alice's, no right for anyone else
SELECT relowner::regrole, relacl FROM pg_class WHERE oid = 'cap_src.orders_migrate_changes'::regclass;
SELECT attname, format_type(atttypid, atttypmod), attnotnull FROM pg_attribute
 WHERE attrelid = 'cap_src.orders_migrate_changes'::regclass AND attnum > 0 ORDER BY attnum;
SELECT indexrelid::regclass FROM pg_index WHERE indrelid = 'cap_src.orders_migrate_changes'::regclass
 ORDER BY indexrelid::regclass::text;

-- the changes the application's statements leave, taken (and pruned) as
-- the engine will after each apply: op || key, sorted
CREATE FUNCTION cap_take() RETURNS text LANGUAGE sql AS $$
    WITH d AS (DELETE FROM cap_src.orders_migrate_changes RETURNING k, op)
    SELECT coalesce(string_agg(op::text || coalesce(k::text, '-'), ' ' ORDER BY op, k), 'none') FROM d
$$;
SELECT cap_take() AS before_any_write;
SET ROLE regress_cap_app;
INSERT INTO cap_src.orders VALUES (11, 'new'), (12, 'new');
RESET ROLE;
SELECT cap_take() AS inserts;
SET ROLE regress_cap_app;
UPDATE cap_src.orders SET v = 'upd' WHERE id IN (2, 3);
RESET ROLE;
SELECT cap_take() AS updates;
SET ROLE regress_cap_app;
UPDATE cap_src.orders SET id = 104 WHERE id = 4;
RESET ROLE;
SELECT cap_take() AS key_change;
SET ROLE regress_cap_app;
UPDATE cap_src.orders SET id = id + 1000 WHERE id IN (7, 8);
RESET ROLE;
SELECT cap_take() AS key_changes;
SET ROLE regress_cap_app;
DELETE FROM cap_src.orders WHERE id IN (5, 6);
RESET ROLE;
SELECT cap_take() AS deletes;
-- statements that change no row, and a rolled-back one, record nothing
SET ROLE regress_cap_app;
UPDATE cap_src.orders SET v = 'none' WHERE id = 999;
DELETE FROM cap_src.orders WHERE id = 999;
INSERT INTO cap_src.orders SELECT 1, 'x' WHERE false;
BEGIN;
INSERT INTO cap_src.orders VALUES (50, 'rolled back');
ROLLBACK;
RESET ROLE;
SELECT cap_take() AS nothing;
-- several statements of one transaction, a savepoint rolled back
SET ROLE regress_cap_app;
BEGIN;
INSERT INTO cap_src.orders VALUES (60, 'a');
SAVEPOINT s;
INSERT INTO cap_src.orders VALUES (61, 'b');
ROLLBACK TO s;
UPDATE cap_src.orders SET v = 'c' WHERE id = 60;
COMMIT;
TRUNCATE cap_src.orders;
INSERT INTO cap_src.orders VALUES (1, 'after truncate');
RESET ROLE;
SELECT k, op FROM cap_src.orders_migrate_changes ORDER BY seq;
SELECT cap_take() AS transaction_and_truncate;

-- the application cannot read, write or prune the change table, nor use
-- its sequence or call the function (it needs none of that)
SET ROLE regress_cap_app;
SELECT test_error('SELECT count(*) FROM cap_src.orders_migrate_changes');
SELECT test_error($$INSERT INTO cap_src.orders_migrate_changes (k, op) VALUES (1, 'D')$$);
SELECT test_error('DELETE FROM cap_src.orders_migrate_changes');
SELECT test_error('TRUNCATE cap_src.orders_migrate_changes');
SELECT test_error($$SELECT nextval(pg_get_serial_sequence('cap_src.orders_migrate_changes', 'seq'))$$);
SELECT has_function_privilege('cap_src.orders_migrate_capture()', 'EXECUTE') AS may_execute;
RESET ROLE;
-- the triggers run the function as alice: what the application could not
-- insert is there, and a column defaulting to current_user says who wrote it
ALTER TABLE cap_src.orders_migrate_changes ADD COLUMN who name DEFAULT current_user;
SET ROLE regress_cap_app;
INSERT INTO cap_src.orders VALUES (70, 'who');
RESET ROLE;
SELECT k, op, who FROM cap_src.orders_migrate_changes;
SELECT cap_take() AS as_alice;
ALTER TABLE cap_src.orders_migrate_changes DROP COLUMN who;

-- names that do not fit: cut, with a hash, in 63 bytes
SELECT n, octet_length(n) FROM (VALUES
    (migrate._capture_name(repeat('t', 50), '_migrate_changes')),
    (migrate._capture_name(repeat('t', 47), '_migrate_changes')),
    (migrate._capture_name(repeat('t', 49) || 'a', '_migrate_changes')),
    (migrate._capture_name(repeat('é', 30), '_migrate_capture'))) AS v(n);
CREATE TABLE cap_src."A rather long table name, with spaces, that needs cutting 1" (id int PRIMARY KEY);
GRANT SELECT, TRIGGER ON cap_src."A rather long table name, with spaces, that needs cutting 1" TO regress_cap_alice;
CREATE TABLE cap_tgt.longname (id int PRIMARY KEY);
GRANT ALL ON cap_tgt.longname TO regress_cap_alice;
SET ROLE regress_cap_alice;
SELECT migrate_table('cap_local', 'cap_src."A rather long table name, with spaces, that needs cutting 1"',
                     'longname', capture => 'trigger');
SELECT migrate._capture_arm_trigger('cap_local', 'cap_tgt.longname');
RESET ROLE;
INSERT INTO cap_src."A rather long table name, with spaces, that needs cutting 1" VALUES (1), (2);
SELECT format('cap_src.%I', migrate._capture_name('A rather long table name, with spaces, that needs cutting 1',
                                                  '_migrate_changes')) AS long_changes \gset
SELECT :'long_changes' AS long_changes;
SELECT k, op FROM :long_changes ORDER BY seq;
SELECT indexrelid::regclass FROM pg_index WHERE indrelid = :'long_changes'::regclass ORDER BY indexrelid::regclass::text;
SELECT tgname, tgfoid::regproc FROM pg_trigger
 WHERE tgrelid = 'cap_src."A rather long table name, with spaces, that needs cutting 1"'::regclass ORDER BY tgname;

-- a name holding the function body's dollar quote gets another quote
CREATE TABLE cap_src."odd$migrate_capture$name" (id int PRIMARY KEY);
GRANT SELECT, TRIGGER ON cap_src."odd$migrate_capture$name" TO regress_cap_alice;
CREATE TABLE cap_tgt.odd (id int PRIMARY KEY);
GRANT ALL ON cap_tgt.odd TO regress_cap_alice;
SET ROLE regress_cap_alice;
SELECT migrate_table('cap_local', 'cap_src."odd$migrate_capture$name"', 'odd', capture => 'trigger');
SELECT strpos(migrate._capture_ddl('cap_local', 'cap_tgt.odd', false), 'AS $migrate_capture_1$') > 0 AS other_quote;
SELECT migrate._capture_arm_trigger('cap_local', 'cap_tgt.odd');
RESET ROLE;
INSERT INTO cap_src."odd$migrate_capture$name" VALUES (1);
DELETE FROM cap_src."odd$migrate_capture$name";
SELECT k, op FROM cap_src."odd$migrate_capture$name_migrate_changes" ORDER BY seq;

-- a postgres_fdw source: a table of the loopback "remote" database,
-- behind a foreign table with other names (table and column options)
\c migrate_src
SET client_min_messages = warning;
CREATE TABLE cap_remote (rid bigint PRIMARY KEY, v text);
INSERT INTO cap_remote SELECT g, 'r' || g FROM generate_series(1, 5) g;
\c :regress_db
SET client_min_messages = warning;
\set SHOW_CONTEXT never
CREATE SCHEMA cap_fdw;
CREATE FOREIGN TABLE cap_fdw.remote_orders (id bigint OPTIONS (column_name 'rid'), v text)
    SERVER src OPTIONS (schema_name 'public', table_name 'cap_remote');
GRANT USAGE, CREATE ON SCHEMA cap_fdw TO regress_cap_alice;
GRANT USAGE ON SCHEMA cap_fdw TO regress_cap_app;
GRANT SELECT ON cap_fdw.remote_orders TO regress_cap_alice;
SELECT format('CREATE USER MAPPING FOR regress_cap_alice SERVER src OPTIONS (user %L, password_required ''false'')',
              current_user) AS map_alice \gset
:map_alice;
CREATE TABLE cap_tgt.remote_orders (id bigint PRIMARY KEY, v text);
GRANT ALL ON cap_tgt.remote_orders TO regress_cap_alice;
SET ROLE regress_cap_alice;
SELECT migrate_plan('cap_remote', source_schema => 'cap_fdw', target_schema => 'cap_tgt');
SELECT migrate_table('cap_remote', 'remote_orders', 'remote_orders', capture => 'trigger');
-- no USAGE on the server: no foreign table for the change table
SELECT test_error($$SELECT migrate._capture_arm_trigger('cap_remote', 'cap_tgt.remote_orders')$$);
RESET ROLE;
GRANT USAGE ON FOREIGN SERVER src TO regress_cap_alice;
SET ROLE regress_cap_alice;
-- before the DBA ran the DDL: 55000, and the hint says what to run
SELECT test_error($$SELECT migrate._capture_arm_trigger('cap_remote', 'cap_tgt.remote_orders')$$);
SELECT to_regclass('cap_fdw.remote_orders_migrate_changes') AS nothing_left;
SELECT test_error($$SELECT migrate._capture_ddl('cap_remote', 'cap_tgt.remote_orders', false)$$);
RESET ROLE;
-- the DDL for the source's DBA (the role of alice's mapping is this
-- superuser, shown as <superuser>)
SELECT migrate_capture_sql('cap_remote') AS cap_ddl \gset
SELECT replace(replace(:'cap_ddl', format('TO %I;', current_user), 'TO <superuser>;'),
               format('Role "%s"', current_user), 'Role "<superuser>"') AS migrate_capture_sql;
-- alice gets the same; a plan without remote trigger tables gets a comment
SET ROLE regress_cap_alice;
SELECT migrate_capture_sql('cap_remote') = :'cap_ddl' AS same_for_alice;
SELECT migrate_capture_sql('cap_local');
RESET ROLE;
-- another role's plan does not exist for it; the body is not for PUBLIC
SET ROLE regress_cap_mallory;
SELECT test_error($$SELECT migrate_capture_sql('cap_remote')$$);
SELECT test_error($$SELECT migrate._migrate_capture_sql('cap_remote')$$);
SELECT test_error($$SELECT migrate._capture_ddl('cap_remote', 'cap_tgt.remote_orders', true)$$);
SELECT test_error($$SELECT migrate._capture_arm_trigger('cap_local', 'cap_tgt.orders')$$);
SELECT test_error($$SELECT migrate._capture_disarm('cap_local', 'cap_tgt.orders')$$);
RESET ROLE;
SELECT test_error($$SELECT migrate_capture_sql('no_such_plan')$$);

-- the DBA runs it on the source, twice (it is idempotent)
\c migrate_src
SET client_min_messages = warning;
:cap_ddl
:cap_ddl
SELECT tgname, tgfoid::regproc FROM pg_trigger WHERE tgrelid = 'cap_remote'::regclass ORDER BY tgname;
SELECT prosecdef, proconfig FROM pg_proc WHERE oid = 'public.cap_remote_migrate_capture()'::regprocedure;
INSERT INTO cap_remote VALUES (6, 'r6');
DELETE FROM cap_remote WHERE rid = 2;
\c :regress_db
SET client_min_messages = warning;
\set SHOW_CONTEXT never
-- now arming works: the relation the engine reads is a foreign table
SET ROLE regress_cap_alice;
SELECT migrate._capture_arm_trigger('cap_remote', 'cap_tgt.remote_orders') AS remote_changes;
SELECT migrate._capture_arm_trigger('cap_remote', 'cap_tgt.remote_orders') AS again;
SELECT k, op FROM cap_fdw.remote_orders_migrate_changes ORDER BY seq;
-- the engine's prune of what it applied
DELETE FROM cap_fdw.remote_orders_migrate_changes
 WHERE seq = ANY (ARRAY(SELECT seq FROM cap_fdw.remote_orders_migrate_changes ORDER BY seq LIMIT 1));
SELECT k, op FROM cap_fdw.remote_orders_migrate_changes ORDER BY seq;
RESET ROLE;
SELECT ftoptions FROM pg_foreign_table WHERE ftrelid = 'cap_fdw.remote_orders_migrate_changes'::regclass;
SELECT relowner::regrole, relacl FROM pg_class WHERE oid = 'cap_fdw.remote_orders_migrate_changes'::regclass;
-- the application role cannot read it either
SET ROLE regress_cap_app;
SELECT test_error('SELECT count(*) FROM cap_fdw.remote_orders_migrate_changes');
RESET ROLE;

-- disarm: the foreign table goes, the source's objects stay (the DBA's)
SET ROLE regress_cap_alice;
SELECT migrate._capture_disarm('cap_remote', 'cap_tgt.remote_orders');
RESET ROLE;
SELECT to_regclass('cap_fdw.remote_orders_migrate_changes') AS foreign_table_gone;
-- disarm the local ones: triggers, function and change tables go
SET ROLE regress_cap_alice;
SELECT migrate._capture_disarm('cap_local', 'cap_tgt.orders');
SELECT migrate._capture_disarm('cap_local', 'cap_tgt.orders') AS again;
SELECT migrate._capture_disarm('cap_local', 'cap_tgt.longname');
SELECT migrate._capture_disarm('cap_local', 'cap_tgt.odd');
RESET ROLE;
SELECT count(*) AS triggers_left FROM pg_trigger
 WHERE tgrelid IN ('cap_src.orders'::regclass,
                   'cap_src."A rather long table name, with spaces, that needs cutting 1"'::regclass,
                   'cap_src."odd$migrate_capture$name"'::regclass);
SELECT to_regclass('cap_src.orders_migrate_changes') AS table_gone,
       to_regprocedure('cap_src.orders_migrate_capture()') AS function_gone,
       (SELECT string_agg(relname, ', ' ORDER BY relname) FROM pg_class
         WHERE relnamespace = 'cap_src'::regnamespace) AS relations_left;
SET ROLE regress_cap_app;
INSERT INTO cap_src.orders VALUES (80, 'after disarm');
RESET ROLE;
-- a function others' objects use is not dropped by disarming
SET ROLE regress_cap_alice;
SELECT migrate._capture_arm_trigger('cap_local', 'cap_tgt.orders');
RESET ROLE;
CREATE TABLE cap_src.other (id int);
CREATE TRIGGER uses_it AFTER INSERT ON cap_src.other FOR EACH STATEMENT
    EXECUTE FUNCTION cap_src.orders_migrate_capture();
SET ROLE regress_cap_alice;
SELECT test_error($$SELECT migrate._capture_disarm('cap_local', 'cap_tgt.orders')$$);
RESET ROLE;
DROP TABLE cap_src.other;
SET ROLE regress_cap_alice;
SELECT migrate._capture_disarm('cap_local', 'cap_tgt.orders');
RESET ROLE;

-- clean up
\c migrate_src
SET client_min_messages = warning;
DROP TABLE cap_remote, cap_remote_migrate_changes;
DROP FUNCTION cap_remote_migrate_capture();
\c :regress_db
SET client_min_messages = warning;
DELETE FROM migrate.plan WHERE plan_name IN ('cap_local', 'cap_remote');
DROP FUNCTION cap_take();
DROP SCHEMA cap_src, cap_tgt, cap_fdw CASCADE;
DROP OWNED BY regress_cap_alice, regress_cap_app, regress_cap_mallory;
DROP ROLE regress_cap_alice, regress_cap_app, regress_cap_mallory;
