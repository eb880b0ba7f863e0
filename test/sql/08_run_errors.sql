-- migrate_run() refuses bad requests before a worker starts, and a second
-- concurrent run of a plan; a run can be cancelled.
\set SHOW_CONTEXT never
SET client_min_messages = warning;
\set regress_db :DBNAME
CREATE TABLE err_item (id bigint PRIMARY KEY, sku text, qty int, price numeric);
SELECT migrate_plan('errs', source_schema => 'legacy');
SELECT migrate_table('errs', 'items', 'err_item');
SELECT migrate_plan('empty_plan');

SELECT test_error($$SELECT migrate_run('no_such_plan')$$);
SELECT test_error($$SELECT migrate_run(NULL)$$);
SELECT test_error($$SELECT migrate_run('empty_plan')$$);
SELECT test_error($$SELECT migrate_run('errs', tables => ARRAY['no_such_table'])$$);
SELECT test_error($$SELECT migrate_run('errs', tables => ARRAY['c_item'])$$);
SELECT test_error($$SELECT migrate_run('errs', tables => ARRAY[]::text[])$$);
SELECT test_error($$SELECT migrate_run('errs', mode => 'incremental')$$);
SELECT test_error($$SELECT migrate_run('errs', mode => 'sideways')$$);
SELECT test_error($$SELECT migrate_run('errs', parallel => 65)$$);
SELECT test_error($$SELECT migrate_run('errs', parallel => 0)$$);

-- a plan changed in the open transaction is not visible to the worker
BEGIN;
SELECT migrate_column('errs', 'err_item', 'sku', 'lower(s.sku)');
SELECT test_error($$SELECT migrate_run('errs')$$);
ROLLBACK;

-- a mapping that no longer type-checks is refused with the column named
ALTER TABLE err_item ADD COLUMN weight numeric;
CREATE TABLE err_typed (id bigint PRIMARY KEY, qty boolean);
SELECT migrate_table('errs', 'items', 'err_typed');
SELECT test_error($$SELECT migrate_run('errs')$$);
SELECT migrate_column('errs', 'err_typed', 'qty', 's.qty > 5');

-- a source that disappeared
CREATE FOREIGN TABLE legacy.vanishing (id bigint, sku text) SERVER src OPTIONS (table_name 'items');
CREATE TABLE err_vanish (id bigint PRIMARY KEY, sku text);
SELECT migrate_table('errs', 'vanishing', 'err_vanish');
DROP FOREIGN TABLE legacy.vanishing;
SELECT test_error($$SELECT migrate_run('errs')$$);
-- phased: the other tables still run
SELECT migrate_run('errs', tables => ARRAY['err_item', 'err_typed']) AS run \gset
SELECT * FROM test_counts(:run);
SELECT tables FROM migrate.run WHERE run_id = :run;

-- a source that goes away during the run (remote table dropped) fails the run
\c migrate_src
CREATE TABLE going (id int PRIMARY KEY, v text);
INSERT INTO going SELECT g, 'v' || g FROM generate_series(1, 10) g;
\c :regress_db
\set SHOW_CONTEXT never
SET client_min_messages = warning;
IMPORT FOREIGN SCHEMA public LIMIT TO (going) FROM SERVER src INTO legacy;
CREATE TABLE err_going (id int PRIMARY KEY, v text);
SELECT migrate_plan('going', source_schema => 'legacy');
SELECT migrate_table('going', 'going', 'err_going');
\c migrate_src
DROP TABLE going;
\c :regress_db
\set SHOW_CONTEXT never
SET client_min_messages = warning;
SELECT test_error($$SELECT migrate_run('going')$$);
-- the error says which table of which run failed
DO $$
DECLARE
    ctx text;
BEGIN
    PERFORM migrate_run('going');
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS ctx = PG_EXCEPTION_CONTEXT;
    RAISE WARNING '%', regexp_replace(split_part(ctx, E'\nPL/pgSQL', 1), '\d+', 'N', 'g');
END $$;
SELECT state, error IS NOT NULL AS has_error FROM migrate.run WHERE plan = 'going';
SELECT count(*) FROM err_going;

-- one run of a plan at a time: a slow run (a rule that sleeps) holds the plan
CREATE TABLE err_slow (id int PRIMARY KEY, v text);
\c migrate_src
CREATE TABLE slow (id int PRIMARY KEY, v text);
INSERT INTO slow SELECT g, 'v' || g FROM generate_series(1, 40) g;
\c :regress_db
\set SHOW_CONTEXT never
SET client_min_messages = warning;
IMPORT FOREIGN SCHEMA public LIMIT TO (slow) FROM SERVER src INTO legacy;
SELECT migrate_plan('slow', source_schema => 'legacy');
SELECT migrate_table('slow', 'slow', 'err_slow');
SELECT migrate_rule('slow', 'err_slow', 'sleepy', 'pg_sleep(0.05) IS NOT NULL');
SET migrate.batch_size = 5;
SELECT migrate_run('slow', wait => false) AS slow_run \gset
SELECT state FROM migrate.run WHERE run_id = :slow_run;
SELECT regexp_replace(test_error($$SELECT migrate_run('slow')$$), '\d+', 'N', 'g');
-- cancel it: it stops at a batch boundary
SELECT migrate_cancel(:slow_run);
DO $$
BEGIN
    FOR i IN 1..600 LOOP
        EXIT WHEN (SELECT state FROM migrate.run WHERE plan = 'slow' ORDER BY run_id DESC LIMIT 1) <> 'running';
        PERFORM pg_sleep(0.1);
    END LOOP;
END $$;
SELECT state FROM migrate.run WHERE run_id = :slow_run;
SELECT state, rows_read < 40 AS stopped_early, rows_read = rows_written AS balanced,
       rows_read = (SELECT count(*) FROM err_slow) AS checkpoint_matches_target
  FROM migrate.run_table WHERE run_id = :slow_run;
SELECT migrate_cancel(:slow_run);
SELECT test_error($$SELECT migrate_cancel(-1)$$);
-- the plan is free again
SELECT migrate_rule('slow', 'err_slow', 'sleepy', NULL);
TRUNCATE err_slow;
SELECT migrate_run('slow') AS run \gset
SELECT * FROM test_counts(:run);
