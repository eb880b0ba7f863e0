/* migrate--0.1--0.2.sql: upgrade from 0.1 to 0.2 */

\echo Use "ALTER EXTENSION migrate UPDATE TO '0.2'" to load this file. \quit

/*
 * The install script of 0.2 is this file appended to migrate--0.1.sql (see
 * the Makefile), so every statement here must work both on a fresh 0.1 and
 * on a database upgraded from 0.1: CREATE OR REPLACE for functions, ADD
 * COLUMN for tables.
 */

-- ==== engine: resume, parallel ranges, progress (issue 3) ====

/*
 * A run is cut into units of work, each committed on its own: key ranges of
 * a table (kind 'load'), and, when the plan defers indexes, the rebuild of
 * each dropped index ('index') and the re-adding of each dropped foreign key
 * ('fk').  Workers claim pending units; a load unit's checkpoint (last_key
 * and counters) commits with its batch's rows.  run_table's counters are
 * the sums over its units, kept in the same transactions.
 */
CREATE TABLE migrate.run_range (
    run_id      bigint NOT NULL,
    target      regclass NOT NULL,
    range_no    integer NOT NULL,
    kind        text NOT NULL DEFAULT 'load' CHECK (kind IN ('load', 'index', 'fk')),
    lo          text,                                  -- keys > lo (NULL: from the first key)
    hi          text,                                  -- keys <= hi (NULL: to the last key)
    definition  text,                                  -- index or constraint DDL to restore
    state       text NOT NULL DEFAULT 'pending'
                CHECK (state IN ('pending', 'running', 'succeeded', 'failed', 'cancelled', 'interrupted')),
    rows_read   bigint NOT NULL DEFAULT 0,
    rows_written bigint NOT NULL DEFAULT 0,            -- an fk unit subtracts the orphans it rejects
    rows_rejected bigint NOT NULL DEFAULT 0,
    rows_skipped bigint NOT NULL DEFAULT 0,
    rows_warned bigint NOT NULL DEFAULT 0,
    batches     bigint NOT NULL DEFAULT 0,
    last_key    text,                                  -- checkpoint: upper bound of the last committed batch
    source_count bigint,
    worker_pid  integer,                               -- the worker that owns it now
    started_at  timestamptz,
    finished_at timestamptz,
    check_sql   text,                                  -- fk units: the statement that rejects orphans
    error       text,
    sqlstate    text,
    PRIMARY KEY (run_id, target, range_no),
    FOREIGN KEY (run_id, target) REFERENCES migrate.run_table ON DELETE CASCADE
);
GRANT SELECT ON migrate.run_range TO PUBLIC;

ALTER TABLE migrate.run_table ADD COLUMN depth integer NOT NULL DEFAULT 0;      -- foreign-key depth
ALTER TABLE migrate.run_table ADD COLUMN estimated_rows bigint;                 -- planner's estimate of the source
ALTER TABLE migrate.run ADD COLUMN parallel integer NOT NULL DEFAULT 1 CHECK (parallel >= 1);
ALTER TABLE migrate.run ADD COLUMN search_path text;                           -- the caller's, for every worker
ALTER TABLE migrate.run ADD COLUMN defer_indexes boolean NOT NULL DEFAULT false;
ALTER TABLE migrate.run ADD COLUMN resumes integer NOT NULL DEFAULT 0;
ALTER TABLE migrate.run ADD COLUMN planned boolean NOT NULL DEFAULT false;     -- units are in run_range

-- migrate_resume(run) continues a run from its checkpoints, in its workers
CREATE FUNCTION migrate_resume(run bigint, wait boolean DEFAULT true)
RETURNS bigint
AS 'MODULE_PATHNAME', 'migrate_resume'
LANGUAGE C;

-- Runs left 'running' by a worker that is gone (server crash, kill): a live
-- run's coordinator holds the plan's advisory lock for the whole run.
CREATE FUNCTION migrate._reap()
RETURNS integer
LANGUAGE plpgsql
AS $$
DECLARE
    n integer;
BEGIN
    WITH dead AS (
        UPDATE migrate.run r SET state = 'interrupted', finished_at = now(),
               error = coalesce(r.error, 'the worker ended without finishing (server crash or terminated)')
         WHERE r.state = 'running'
           AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_locks l
                            WHERE l.locktype = 'advisory' AND l.granted
                              AND l.database = (SELECT oid FROM pg_catalog.pg_database
                                                 WHERE datname = current_database())
                              AND l.classid = 1835624306::oid        -- 0x6d696772, "migr"
                              AND l.objid = pg_catalog.hashtext(r.plan)::oid
                              AND l.objsubid = 2)
        RETURNING r.run_id, r.plan),
    t AS (UPDATE migrate.run_table rt SET state = 'interrupted' FROM dead
           WHERE rt.run_id = dead.run_id AND rt.state IN ('pending', 'running')),
    g AS (UPDATE migrate.run_range rr SET state = 'interrupted' FROM dead
           WHERE rr.run_id = dead.run_id AND rr.state IN ('pending', 'running')),
    e AS (INSERT INTO migrate.event (run_id, plan, event, details)
          SELECT run_id, plan, 'run interrupted', 'found without a live worker' FROM dead)
    SELECT count(*) INTO n FROM dead;
    RETURN n;
END;
$$;

-- live progress: per table of running runs
CREATE OR REPLACE VIEW migrate.progress AS
SELECT rt.run_id, r.plan, rt.target, rt.state, rt.rows_read, rt.rows_written,
       rt.rows_rejected, rt.rows_skipped, rt.source_count, rt.batches, rt.last_key,
       round(rt.rows_read / nullif(extract(epoch FROM coalesce(rt.finished_at, clock_timestamp()) - rt.started_at), 0))::bigint
           AS rows_per_second,
       rt.started_at, rt.finished_at,
       coalesce(rt.source_count, rt.estimated_rows) AS estimated_rows,
       CASE WHEN rt.state = 'succeeded' THEN 100.0
            ELSE least(99.9, round(100.0 * rt.rows_read / nullif(coalesce(rt.source_count, rt.estimated_rows), 0), 1))
       END AS percent,
       CASE WHEN rt.state = 'running' AND rt.rows_read > 0 AND coalesce(rt.source_count, rt.estimated_rows) > rt.rows_read
            THEN (clock_timestamp() - rt.started_at)
                 * ((coalesce(rt.source_count, rt.estimated_rows) - rt.rows_read)::float8 / rt.rows_read)
       END AS eta,
       (SELECT count(*) FROM migrate.run_range rr
         WHERE rr.run_id = rt.run_id AND rr.target = rt.target AND rr.state = 'running') AS workers,
       (SELECT string_agg(a.pid || ': ' || a.query, '; ' ORDER BY a.pid)
          FROM migrate.run_range rr JOIN pg_catalog.pg_stat_activity a ON a.pid = rr.worker_pid
         WHERE rr.run_id = rt.run_id AND rr.target = rt.target AND rr.state = 'running') AS doing
  FROM migrate.run_table rt
  JOIN migrate.run r USING (run_id)
 WHERE r.state = 'running';

-- live progress: per unit (key range, index rebuild, foreign key) of running runs
CREATE VIEW migrate.progress_range AS
SELECT rr.run_id, r.plan, rr.target, rr.range_no, rr.kind, rr.lo, rr.hi, rr.state,
       rr.rows_read, rr.rows_written, rr.rows_rejected, rr.rows_skipped, rr.batches, rr.last_key,
       round(rr.rows_read / nullif(extract(epoch FROM coalesce(rr.finished_at, clock_timestamp()) - rr.started_at), 0))::bigint
           AS rows_per_second,
       rr.worker_pid, a.query AS doing, rr.started_at, rr.finished_at
  FROM migrate.run_range rr
  JOIN migrate.run r USING (run_id)
  LEFT JOIN pg_catalog.pg_stat_activity a ON a.pid = rr.worker_pid AND rr.state = 'running'
 WHERE r.state = 'running';
GRANT SELECT ON migrate.progress_range TO PUBLIC;

-- where a run stands (the latest run when run is NULL); looking marks runs
-- whose worker is gone as interrupted
DROP FUNCTION migrate_status(bigint);
CREATE FUNCTION migrate_status(run bigint DEFAULT NULL)
RETURNS TABLE (run_id bigint, plan text, run_state text, target regclass, table_state text,
               rows_read bigint, rows_written bigint, rows_rejected bigint, rows_skipped bigint,
               last_key text, started_at timestamptz, finished_at timestamptz, error text,
               percent numeric, rows_per_second bigint, eta interval, workers bigint)
LANGUAGE plpgsql
AS $$
BEGIN
    PERFORM migrate._reap();
    RETURN QUERY
    SELECT r.run_id, r.plan, r.state, rt.target, rt.state,
           rt.rows_read, rt.rows_written, rt.rows_rejected, rt.rows_skipped,
           rt.last_key, rt.started_at, rt.finished_at, coalesce(rt.error, r.error),
           CASE WHEN rt.state = 'succeeded' THEN 100.0
                ELSE least(99.9, round(100.0 * rt.rows_read / nullif(coalesce(rt.source_count, rt.estimated_rows), 0), 1))
           END,
           round(rt.rows_read / nullif(extract(epoch FROM coalesce(rt.finished_at, clock_timestamp()) - rt.started_at), 0))::bigint,
           CASE WHEN rt.state = 'running' AND rt.rows_read > 0 AND coalesce(rt.source_count, rt.estimated_rows) > rt.rows_read
                THEN (clock_timestamp() - rt.started_at)
                     * ((coalesce(rt.source_count, rt.estimated_rows) - rt.rows_read)::float8 / rt.rows_read)
           END,
           (SELECT count(*) FROM migrate.run_range rr
             WHERE rr.run_id = rt.run_id AND rr.target = rt.target AND rr.state = 'running')
      FROM migrate.run r
      LEFT JOIN migrate.run_table rt ON rt.run_id = r.run_id
     WHERE r.run_id = coalesce(migrate_status.run, (SELECT max(x.run_id) FROM migrate.run x))
     ORDER BY rt.load_order;
END;
$$;


-- ==== end of engine section ====




-- ==== verification, diff and report (issue 4) ====


-- ==== end of verification section ====




-- ==== assessment and automap (issue 5) ====


-- ==== end of assessment section ====
