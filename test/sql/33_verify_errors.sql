-- Bad input to migrate_verify(), migrate_diff(), migrate_report() and
-- migrate_foreign_key(): a clear error with an SQLSTATE, naming the plan,
-- table or run, with a hint where one helps.
\set SHOW_CONTEXT never
SET client_min_messages = warning;
\set regress_db :DBNAME
CREATE FUNCTION test_error_masked(p_sql text) RETURNS text LANGUAGE sql AS $$
    SELECT regexp_replace(test_error(p_sql), '(run |migrate_cancel\()\d+', '\1<id>', 'g')
$$;
CREATE TABLE vbad_item (id bigint PRIMARY KEY, sku text);
SELECT migrate_plan('vbad', source_schema => 'legacy');
SELECT migrate_table('vbad', 'items', 'vbad_item');

-- a plan that does not exist, a plan never run, a plan only rehearsed
SELECT test_error($$SELECT * FROM migrate_verify('no_such_plan')$$);
SELECT test_error($$SELECT * FROM migrate_verify('vbad')$$);
SELECT test_error($$SELECT * FROM migrate_diff('vbad', 'vbad_item')$$);
SELECT migrate_run('vbad', dry_run => true) AS dry \gset
SELECT test_error($$SELECT * FROM migrate_verify('vbad')$$);
SELECT test_error_masked(format('SELECT * FROM migrate_verify(%L, run => %s)', 'vbad', :dry));
-- a run of another plan, a run that does not exist
SELECT test_error_masked(format('SELECT * FROM migrate_verify(%L, run => %s)', 'verify', :dry));
SELECT test_error($$SELECT * FROM migrate_verify('vbad', run => -1)$$);
SELECT test_error($$SELECT migrate_report(-1)$$);

-- a table that is not in the plan, or does not exist
SELECT migrate_run('vbad') AS run \gset
SELECT count(*), bool_and(ok) FROM migrate_verify('vbad');
SELECT test_error($$SELECT * FROM migrate_diff('vbad', 'ver_order')$$);
SELECT test_error($$SELECT * FROM migrate_diff('vbad', 'no_such_table')$$);
SELECT test_error($$SELECT * FROM migrate_diff('vbad', 'vbad_item', leaf_rows => 0)$$);
-- a key migrate_diff() cannot split (checked before anything is read)
CREATE TABLE vbad_point (id point, v text);
CREATE UNIQUE INDEX ON vbad_point ((id[0]));
SELECT migrate_plan('vbad_point', source_schema => 'legacy');
\c migrate_src
CREATE TABLE vbad_points (id point, v text);
\c :regress_db
\set SHOW_CONTEXT never
SET client_min_messages = warning;
IMPORT FOREIGN SCHEMA public LIMIT TO (vbad_points) FROM SERVER src INTO legacy;
SELECT migrate_table('vbad_point', 'vbad_points', 'vbad_point', key => 'id');
SELECT test_error($$SELECT * FROM migrate_diff('vbad_point', 'vbad_point')$$);

-- the source is gone: the foreign table, or the remote table behind it
CREATE FOREIGN TABLE legacy.vbad_vanish (id bigint, sku text) SERVER src OPTIONS (schema_name 'public', table_name 'vbad_remote');
\c migrate_src
CREATE TABLE vbad_remote AS SELECT id, sku FROM items WHERE id < 100;
\c :regress_db
\set SHOW_CONTEXT never
SET client_min_messages = warning;
CREATE TABLE vbad_gone (id bigint PRIMARY KEY, sku text);
SELECT migrate_plan('vbad_gone', source_schema => 'legacy');
SELECT migrate_table('vbad_gone', 'vbad_vanish', 'vbad_gone');
SELECT migrate_run('vbad_gone') AS run \gset
SELECT count(*), bool_and(ok) FROM migrate_verify('vbad_gone');
\c migrate_src
DROP TABLE vbad_remote;
\c :regress_db
\set SHOW_CONTEXT never
SET client_min_messages = warning;
SELECT test_error($$SELECT * FROM migrate_verify('vbad_gone')$$);
SELECT test_error($$SELECT * FROM migrate_diff('vbad_gone', 'vbad_gone')$$);
DROP FOREIGN TABLE legacy.vbad_vanish;
SELECT test_error($$SELECT * FROM migrate_verify('vbad_gone')$$);
SELECT test_error($$SELECT * FROM migrate_diff('vbad_gone', 'vbad_gone')$$);
-- an error records nothing: the run keeps its last verification
SELECT verified FROM migrate.run WHERE run_id = :run;

-- migrate_foreign_key()
SELECT test_error($$SELECT migrate_foreign_key('vbad', 'vbad_item', 'sku', 'no_such_table')$$);
SELECT test_error($$SELECT migrate_foreign_key('vbad', 'vbad_item', 'no_col', 'ver_customer')$$);
SELECT test_error($$SELECT migrate_foreign_key('vbad', 'vbad_item', 'id, sku', 'ver_customer')$$);
SELECT test_error($$SELECT migrate_foreign_key('vbad', 'vbad_point', 'id', 'ver_customer')$$);
SELECT test_error($$SELECT migrate_foreign_key('vbad', 'vbad_item', 'sku', 'vbad_point')$$);

-- a verification cancelled while the source computes: the statement on
-- the source is cancelled too, and the next verification connects anew
\c migrate_src
CREATE TABLE vbad_slow_flag (slow boolean);
INSERT INTO vbad_slow_flag VALUES (false);
CREATE VIEW vbad_slow AS
    SELECT id, sku FROM items WHERE NOT (SELECT slow FROM vbad_slow_flag) OR pg_sleep(0.01) IS NOT NULL;
\c :regress_db
\set SHOW_CONTEXT never
SET client_min_messages = warning;
IMPORT FOREIGN SCHEMA public LIMIT TO (vbad_slow) FROM SERVER src INTO legacy;
CREATE TABLE vbad_slow_item (id bigint PRIMARY KEY, sku text);
SELECT migrate_plan('vbad_slow', source_schema => 'legacy');
SELECT migrate_table('vbad_slow', 'vbad_slow', 'vbad_slow_item', key => 'id');
SELECT migrate_run('vbad_slow') IS NOT NULL AS ran;
SELECT check_name, ok, details FROM migrate_verify('vbad_slow');
\c migrate_src
UPDATE vbad_slow_flag SET slow = true;
\c :regress_db
\set SHOW_CONTEXT never
SET client_min_messages = warning;
SET statement_timeout = '500ms';
SELECT * FROM migrate_verify('vbad_slow');
RESET statement_timeout;
\c migrate_src
DO $$
BEGIN
    FOR i IN 1 .. 100 LOOP
        EXIT WHEN NOT EXISTS (SELECT FROM pg_stat_activity WHERE query LIKE '%vbad_slow%'
                                 AND state = 'active' AND pid <> pg_backend_pid());
        PERFORM pg_sleep(0.05);
    END LOOP;
END $$;
SELECT count(*) AS still_running FROM pg_stat_activity
 WHERE query LIKE '%vbad_slow%' AND state = 'active' AND pid <> pg_backend_pid();
UPDATE vbad_slow_flag SET slow = false;
\c :regress_db
\set SHOW_CONTEXT never
SET client_min_messages = warning;
SELECT bool_and(ok) FROM migrate_verify('vbad_slow');

-- a role that is not superuser: its user mapping must use a password, as
-- with postgres_fdw, unless a superuser set password_required 'false'.
-- The plan belongs to it, so verify runs as it, whoever calls (a
-- superuser too): the grants are those docs/security.md lists.
CREATE ROLE vbad_user;
GRANT USAGE ON SCHEMA legacy TO vbad_user;
GRANT SELECT ON legacy.items, vbad_item TO vbad_user;
SELECT format('CREATE USER MAPPING FOR vbad_user SERVER src OPTIONS (user %L)', current_user) AS mapping \gset
:mapping;
UPDATE migrate.plan SET owner = 'vbad_user' WHERE plan_name = 'vbad';
UPDATE migrate.run SET owner = 'vbad_user' WHERE plan = 'vbad';
SET ROLE vbad_user;
SELECT test_error($$SELECT * FROM migrate_verify('vbad')$$);
RESET ROLE;
-- the superuser's call runs as the owner: the owner's mapping and its rule
SELECT test_error($$SELECT * FROM migrate_verify('vbad')$$);
ALTER USER MAPPING FOR vbad_user SERVER src OPTIONS (ADD password_required 'false');
SET ROLE vbad_user;
SELECT check_name, ok, details FROM migrate_verify('vbad');
RESET ROLE;
SELECT check_name, ok FROM migrate_verify('vbad');
UPDATE migrate.plan SET owner = current_user::regrole WHERE plan_name = 'vbad';
UPDATE migrate.run SET owner = current_user::regrole WHERE plan = 'vbad';
DROP USER MAPPING FOR vbad_user SERVER src;
DROP OWNED BY vbad_user;
DROP ROLE vbad_user;
