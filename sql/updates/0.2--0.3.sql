/*
 * updates/0.2--0.3.sql: the deltas from 0.2 to 0.3, and nothing else: DDL
 * on the catalog (ALTER TABLE, CREATE TABLE, CREATE INDEX ... to bring a
 * 0.2 catalog to the shape of sql/catalog.sql), data fix-ups, and DROP
 * FUNCTION of functions removed or whose arguments or result type changed.
 *
 * Built by make into sql/migrate--0.2--0.3.sql: an \echo guard, this file,
 * then the current function files (sql/plan.sql ... sql/assess.sql) as they
 * are, so every function is (re)created in its current definition after
 * these statements.  Statements here run before those functions exist in
 * their 0.3 form: a fix-up may not call a function that is new in 0.3.
 * test/sql/99_upgrade.sql checks that 0.1 upgraded through here has the
 * catalog of a fresh 0.3.
 */

-- migrate_status() became a read-only SQL function: same arguments and
-- result, so the CREATE OR REPLACE of sql/run.sql replaces it.

-- ==== data fix-up: runs made under 0.1 get their units (issue 10) ====
--
-- It only writes data and leaves the catalog's shape alone, so a fresh
-- install and an upgraded one still compare equal.
--
-- 0.1 kept a run's checkpoints in run_table alone (last_key and the
-- counters of each table; the tables loaded one after the other in
-- load_order).  Since 0.2 a run is cut into units (run_range) that carry
-- the checkpoints, and a run without units (planned = false) is cut afresh
-- when migrate_resume() continues it, from every table's first key: in
-- insert mode every row 0.1 had loaded came back as a 23505 reject, and
-- tables 0.1 had finished were loaded a second time.
--
-- So every run made under 0.1 gets, per table, the one load unit that 0.1
-- in effect worked: range 1 over all keys, in the table's state, with its
-- counters, source_count and checkpoint (the unit continues after last_key,
-- and the count(*) a finished unit checks covers the rows 0.1 read too).
-- depth takes the load order (0.1 loaded strictly in that order; the column
-- came with 0.2 and is 0 in 0.1's rows), and the run is marked planned.
-- Finished runs get their units as well, so that after the upgrade every
-- run has them.  Runs made under 0.1 are those with no units whose
-- search_path is NULL: 0.2 and later record the caller's search_path when
-- they insert the run.  Runs that already have units are left alone, so
-- the statement can run more than once.
WITH old AS (
    SELECT r.run_id, r.plan
      FROM migrate.run r
     WHERE NOT r.planned AND r.search_path IS NULL
       AND NOT EXISTS (SELECT 1 FROM migrate.run_range u WHERE u.run_id = r.run_id)
),
units AS (
    INSERT INTO migrate.run_range (run_id, target, range_no, kind, lo, hi, state,
                                   rows_read, rows_written, rows_rejected, rows_skipped,
                                   rows_warned, batches, last_key, source_count,
                                   started_at, finished_at, error)
    SELECT t.run_id, t.target, 1, 'load', NULL, NULL, t.state,
           t.rows_read, t.rows_written, t.rows_rejected, t.rows_skipped,
           t.rows_warned, t.batches, t.last_key, t.source_count,
           t.started_at, t.finished_at, t.error
      FROM migrate.run_table t JOIN old USING (run_id)
),
tables AS (
    UPDATE migrate.run_table t SET depth = t.load_order - 1
      FROM old WHERE t.run_id = old.run_id
),
runs AS (
    UPDATE migrate.run r SET planned = true
      FROM old WHERE r.run_id = old.run_id
)
INSERT INTO migrate.event (run_id, plan, event, details)
SELECT run_id, plan, 'run upgraded',
       'a run made under 0.1: its checkpoints were recorded as units (run_range) by ALTER EXTENSION migrate UPDATE'
  FROM old;

-- ==== end of data fix-up ====
