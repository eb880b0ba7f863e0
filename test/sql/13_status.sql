--
-- migrate_status() and the progress views only read: they work in a
-- read-only transaction and for a role that may only SELECT.  A run left
-- 'running' whose plan lock nobody holds (its worker is gone) is shown as
-- interrupted, and nothing is written until migrate._reap() or the next
-- run of the plan records it.
--
\set SHOW_CONTEXT never
SET client_min_messages = warning;
CREATE TABLE status_t (id int PRIMARY KEY, name text);
CREATE TABLE status_codes (code text PRIMARY KEY, label text);
SELECT migrate_plan('status', source_schema => 'legacy');
SELECT migrate_table('status', 'customers', 'status_t');
SELECT migrate_run('status') AS run \gset

-- a finished run, in a read-only transaction
BEGIN READ ONLY;
SELECT run_state, target, table_state, rows_read, percent, workers FROM migrate_status(:run);
SELECT run_id = :run AS latest FROM migrate_status();
SELECT count(*) FROM migrate.progress WHERE run_id = :run;
SELECT count(*) FROM migrate.progress_range WHERE run_id = :run;
COMMIT;
-- by a role that is not a member of the plan's owner: row-level security
-- shows it none of the runs (docs/security.md; the owner's view: 50_security)
CREATE ROLE regress_migrate_reader;
SET ROLE regress_migrate_reader;
SELECT run_state, target, table_state, rows_read FROM migrate_status(:run);
SELECT count(*) FROM migrate.progress;
RESET ROLE;

-- a run left running by a worker that is gone: nobody holds the plan's lock
INSERT INTO migrate.run (plan, batch_size) VALUES ('status', 100) RETURNING run_id AS dead \gset
INSERT INTO migrate.run_table (run_id, target, source, load_order, state, rows_read, started_at)
VALUES (:dead, 'status_t', 'legacy.customers', 1, 'running', 10, now()),
       (:dead, 'status_codes', 'legacy.codes', 2, 'pending', 0, NULL);
INSERT INTO migrate.run_range (run_id, target, range_no, state) VALUES (:dead, 'status_t', 1, 'running');
BEGIN READ ONLY;
SELECT run_state, target, table_state, error, workers, eta FROM migrate_status(:dead);
SELECT count(*) FROM migrate.progress WHERE run_id = :dead;
SELECT count(*) FROM migrate.progress_range WHERE run_id = :dead;
COMMIT;
SET ROLE regress_migrate_reader;
SELECT run_state, target, table_state FROM migrate_status(:dead);
RESET ROLE;
-- looking wrote nothing
SELECT state, finished_at IS NULL AS unfinished, error FROM migrate.run WHERE run_id = :dead;
SELECT target, state FROM migrate.run_table WHERE run_id = :dead ORDER BY load_order;
SELECT count(*) AS events FROM migrate.event WHERE run_id = :dead;

-- the plan's lock is not an SQL advisory lock (src/migrate.h): a session
-- holding the advisory locks of the plan's old key does not make the run
-- look alive (a live run, held open: test/isolation/specs/worker_slots.spec)
SELECT pg_advisory_lock(1835624306, hashtext('status'));
SELECT pg_advisory_lock((1835624306::bigint << 32) | (hashtext('status')::bigint & 4294967295));
SELECT migrate._plan_locked('status') AS locked;
SELECT run_state, target, table_state, workers FROM migrate_status(:dead);
SELECT count(*) FROM migrate.progress WHERE run_id = :dead;
SELECT pg_advisory_unlock_all();

-- migrate._reap() records what migrate_status() showed
SELECT migrate._reap() > 0 AS reaped;
SELECT state, finished_at IS NULL AS unfinished, error FROM migrate.run WHERE run_id = :dead;
SELECT target, state FROM migrate.run_table WHERE run_id = :dead ORDER BY load_order;
SELECT event, details FROM migrate.event WHERE run_id = :dead;
SELECT run_state, target, table_state, error FROM migrate_status(:dead);

DROP ROLE regress_migrate_reader;
