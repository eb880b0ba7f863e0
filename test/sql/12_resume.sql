-- Cancel and resume: a run stops at a batch boundary and continues from its
-- checkpoints; the resumed target is exactly the one a clean run gives.
\set SHOW_CONTEXT never
SET client_min_messages = warning;
\set regress_db :DBNAME
SET migrate.batch_size = 100;

-- a run that fails in its 8th batch (an abort rule), then resumes
CREATE TABLE res_item (id bigint PRIMARY KEY, sku text, qty int, price numeric);
SELECT migrate_plan('res', source_schema => 'legacy');
SELECT migrate_table('res', 'items', 'res_item');
SELECT migrate_rule('res', 'res_item', 'not_5005', 'id <> 5005', on_fail => 'abort');
SELECT test_error($$SELECT migrate_run('res')$$);
SELECT run_id AS run FROM migrate.run WHERE plan = 'res' \gset
SELECT state FROM migrate.run WHERE run_id = :run;
SELECT state, rows_read, rows_written, batches, last_key FROM migrate.run_range WHERE run_id = :run;
SELECT count(*) FROM res_item;
-- resuming before the cause is fixed fails the same way, loading nothing twice
SELECT test_error(format('SELECT migrate_resume(%s)', :run));
SELECT count(*), max(id) FROM res_item;
-- fix the rule, resume: the run goes on from its checkpoint
SELECT migrate_rule('res', 'res_item', 'not_5005', 'id <> 5005', on_fail => 'reject');
SELECT migrate_resume(:run) = :run AS same_run;
SELECT state, resumes FROM migrate.run WHERE run_id = :run;
SELECT * FROM test_counts(:run);
SELECT state, rows_read, source_count, batches FROM migrate.run_range WHERE run_id = :run;
SELECT count(*), count(DISTINCT id) FROM res_item;
SELECT (SELECT count(*) FROM (SELECT id, sku, qty, price FROM legacy.items WHERE id <> 5005
                              EXCEPT SELECT * FROM res_item) d) AS missing;
SELECT source_key, reason FROM migrate.reject WHERE run_id = :run;
SELECT event, details FROM migrate.event WHERE run_id = :run ORDER BY event_id;
-- nothing left to resume
SELECT regexp_replace(regexp_replace(test_error(format('SELECT migrate_resume(%s)', :run)), 'run [0-9]+', 'run N', 'g'), '\([0-9]+\)', '(N)', 'g');
SELECT test_error('SELECT migrate_resume(999999)');
SELECT test_error('SELECT migrate_resume(NULL)');

-- a slow source: cancel a run while it loads, watch it, resume it
\c migrate_src
CREATE FUNCTION slow(v bigint) RETURNS bigint LANGUAGE plpgsql AS
$$ BEGIN PERFORM pg_sleep(0.003); RETURN v; END $$;
CREATE VIEW slow_items AS SELECT id, sku, qty, price FROM items WHERE slow(id) IS NOT NULL;
\c :regress_db
SET client_min_messages = warning;
\set SHOW_CONTEXT never
SET migrate.batch_size = 50;
IMPORT FOREIGN SCHEMA public LIMIT TO (slow_items) FROM SERVER src INTO legacy;
CREATE TABLE slow_item (id bigint PRIMARY KEY, sku text, qty int, price numeric);
SELECT migrate_plan('slowres', source_schema => 'legacy');
SELECT migrate_table('slowres', 'slow_items', 'slow_item');
SELECT migrate_run('slowres', wait => false) AS run \gset
-- another session sees it going
SELECT plan, target FROM migrate.progress WHERE run_id = :run;
SELECT regexp_replace(regexp_replace(test_error(format('SELECT migrate_resume(%s)', :run)), 'run [0-9]+', 'run N', 'g'), '\([0-9]+\)', '(N)', 'g');
SELECT regexp_replace(regexp_replace(test_error($$SELECT migrate_run('slowres')$$), 'run [0-9]+', 'run N', 'g'), '\([0-9]+\)', '(N)', 'g');
SELECT migrate_cancel(:run);
DO $$
BEGIN
    FOR i IN 1 .. 600 LOOP
        EXIT WHEN (SELECT state FROM migrate.run WHERE plan = 'slowres') <> 'running';
        PERFORM pg_sleep(0.1);
    END LOOP;
END $$;
SELECT state FROM migrate.run WHERE run_id = :run;
SELECT rows_read < 1000 AS stopped_early, rows_read = rows_written AS balanced
  FROM migrate.run_table WHERE run_id = :run;
SELECT (SELECT count(*) FROM slow_item) = (SELECT rows_written FROM migrate.run_table WHERE run_id = :run)
       AS target_matches_checkpoint;
SELECT migrate_resume(:run) = :run AS same_run;
SELECT * FROM test_counts(:run);
SELECT count(*), count(DISTINCT id) FROM slow_item;
