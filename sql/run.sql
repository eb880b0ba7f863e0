/*
 * run.sql: running plans: migrate_run, migrate_resume, migrate_cancel,
 * migrate_status, the migrate.progress and migrate.progress_range views,
 * what a run is alive by (migrate._plan_locked, migrate._reap), and the C
 * entry points of the engine's batch statement (migrate._pass,
 * migrate._fail, migrate._copy_source, migrate_batch_statement).
 *
 * Current source of the SQL (how it is built: the top of sql/catalog.sql).
 * Every function and view here is written CREATE OR REPLACE and defined in
 * no other file of sql/; its grants and revokes follow it.  The install
 * script takes this file with CREATE OR REPLACE made CREATE; each upgrade
 * script replays it as it is, after the deltas of sql/updates/, so a
 * function is changed here only.  A function whose arguments or result
 * type change, or that is removed, also needs a DROP FUNCTION in
 * sql/updates/<current>--<next>.sql.  No CREATE TABLE here (catalog.sql).
 *
 * Every function pins search_path = pg_catalog, pg_temp and qualifies what
 * it uses, except the two per-row C entry points of the batch statement
 * (migrate._pass, migrate._fail: a SET clause would cost a GUC level per
 * row; their C code runs only fully qualified SQL) and
 * migrate_batch_statement, whose C code (load.c) resolves the caller's
 * target name under the current search_path.  A run, resume or
 * cancel acts as the plan's owner; the caller must be a member of it.
 */

-- migrate_run(): a plan whose migrate_check() finds an error does not
-- start (42P17, the hint names the first finding) unless force => true.
CREATE OR REPLACE FUNCTION migrate_run(plan text,
                            mode text DEFAULT 'full',
                            tables text[] DEFAULT NULL,
                            parallel integer DEFAULT NULL,
                            dry_run boolean DEFAULT false,
                            wait boolean DEFAULT true,
                            force boolean DEFAULT false)
RETURNS bigint
AS 'MODULE_PATHNAME', 'migrate_run'
LANGUAGE C
SET search_path = pg_catalog, pg_temp;

/*
 * The foreign keys among p_tables (a run's targets) that a run drops for
 * its load and adds back, validated, once both of their tables are loaded
 * (src/defer.c): every self-reference, and a small set that breaks every
 * cycle.  The foreign keys are taken in a stable order (first those that
 * are not DEFERRABLE and whose columns are all NOT NULL, then by table and
 * name); each that would close a cycle with the ones kept before it is
 * dropped, so what is kept is acyclic and parents load before children.
 * cycle is the cycle it closes (its table, the referenced table, ..., its
 * table again).  The run's load order (src/catalog.c), its planning and
 * migrate_check() all use this one function.  Reads only pg_catalog: safe
 * for any caller.
 */
CREATE OR REPLACE FUNCTION migrate._fk_cycle_breaks(p_tables oid[])
RETURNS TABLE (con oid, conname name, conrelid regclass, confrelid regclass, cycle regclass[])
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    kept_child oid[] := '{}';
    kept_parent oid[] := '{}';
    e record;
    path oid[];
BEGIN
    FOR e IN SELECT c.oid, c.conname, c.conrelid, c.confrelid
               FROM pg_catalog.pg_constraint c
              WHERE c.contype = 'f' AND c.conparentid = 0  -- not a partition's clone
                AND c.conrelid = ANY (p_tables) AND c.confrelid = ANY (p_tables)
              ORDER BY c.condeferrable
                       OR EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a
                                   WHERE a.attrelid = c.conrelid AND a.attnum = ANY (c.conkey) AND NOT a.attnotnull),
                       c.conrelid::pg_catalog.regclass::pg_catalog.text, c.conname, c.oid LOOP
        IF e.conrelid = e.confrelid THEN
            path := ARRAY[e.conrelid, e.conrelid];
        ELSE
            -- does the referenced table reach this one through kept keys?
            WITH RECURSIVE r (node, p) AS (
                SELECT e.confrelid, ARRAY[e.conrelid, e.confrelid]
                UNION ALL
                SELECT k.parent, r.p || k.parent
                  FROM r JOIN ROWS FROM (pg_catalog.unnest(kept_child), pg_catalog.unnest(kept_parent)) k (child, parent) ON k.child = r.node
                 WHERE r.node <> e.conrelid AND k.parent <> ALL (r.p[2:]))
            SELECT r.p INTO path FROM r WHERE r.node = e.conrelid
             ORDER BY pg_catalog.cardinality(r.p), r.p::pg_catalog.text LIMIT 1;
        END IF;
        IF path IS NOT NULL THEN
            con := e.oid;
            conname := e.conname;
            conrelid := e.conrelid;
            confrelid := e.confrelid;
            cycle := path::pg_catalog.regclass[];
            RETURN NEXT;
        ELSE
            kept_child := kept_child || e.conrelid;
            kept_parent := kept_parent || e.confrelid;
        END IF;
    END LOOP;
END;
$$;

-- Called by the engine's batch statement for each row; see src/route.c.
CREATE OR REPLACE FUNCTION migrate._pass()
RETURNS boolean
AS 'MODULE_PATHNAME', 'migrate_route_pass'
LANGUAGE C VOLATILE;

CREATE OR REPLACE FUNCTION migrate._fail(rule_ok boolean[], source_key text, source_row jsonb)
RETURNS boolean
AS 'MODULE_PATHNAME', 'migrate_route_fail'
LANGUAGE C VOLATILE;

-- The same with the target's constraint that refuses the row (set-wise
-- quarantine, src/predict.c): ARRAY[its number, the row's values...].
CREATE OR REPLACE FUNCTION migrate._fail(rule_ok boolean[], source_key text, source_row jsonb,
                                         predicted text[])
RETURNS boolean
AS 'MODULE_PATHNAME', 'migrate_route_fail'
LANGUAGE C VOLATILE;

-- The rows of one key range of a postgres_fdw foreign table, read with a
-- binary COPY (src/copysrc.c); the engine's batch statement reads it in
-- place of the foreign table (SET migrate.copy_source = off: the FDW).
CREATE OR REPLACE FUNCTION migrate._copy_source(ftable regclass, key text, lo anyelement, hi anyelement)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'migrate_copy_source_rows'
LANGUAGE C
SET search_path = pg_catalog, pg_temp;

-- migrate_resume(run) continues a run from its checkpoints, in its workers,
-- as the run's owner (with the run's own search_path)
CREATE OR REPLACE FUNCTION migrate_resume(run bigint, wait boolean DEFAULT true)
RETURNS bigint
AS 'MODULE_PATHNAME', 'migrate_resume'
LANGUAGE C
SET search_path = pg_catalog, pg_temp;

-- Is a run of the plan alive?  Its coordinator holds the plan's lock
-- (advisory tag: class 0x6d696772 "migr", key hashtext(plan), objsubid 3,
-- which no SQL advisory lock function takes: see src/migrate.h) for the
-- whole run; a run 'running' without it lost its worker.
CREATE OR REPLACE FUNCTION migrate._plan_locked(p_plan text)
RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_locks l
                    WHERE l.locktype = 'advisory' AND l.granted
                      AND l.database = (SELECT oid FROM pg_catalog.pg_database
                                         WHERE datname = pg_catalog.current_database())
                      AND l.classid = 1835624306::pg_catalog.oid
                      AND l.objid = pg_catalog.hashtext(p_plan)::pg_catalog.oid
                      AND l.objsubid = 3)
$$;

-- The SQL functions' writes of run state go through src/catalog.c, the
-- one writer of migrate.run, run_table, run_range and event: an event
-- (plans, diffs), a verification's outcome, a report, a cancel request.
-- Safe for any caller: each checks, as the caller, that the run or plan is
-- visible to it (row-level security; 42704 otherwise) and that it is a
-- member of the owner (42501), then writes as the extension's owner in the
-- caller's name (nobody else may write these tables).
CREATE OR REPLACE FUNCTION migrate._catalog_event(run bigint, plan text, event text, details text)
RETURNS void
AS 'MODULE_PATHNAME', 'migrate_catalog_event_sql'
LANGUAGE C SET search_path = pg_catalog, pg_temp;

CREATE OR REPLACE FUNCTION migrate._catalog_verified(run bigint, passed boolean, details text)
RETURNS void
AS 'MODULE_PATHNAME', 'migrate_catalog_verified_sql'
LANGUAGE C SET search_path = pg_catalog, pg_temp;

CREATE OR REPLACE FUNCTION migrate._catalog_report(run bigint, report text)
RETURNS void
AS 'MODULE_PATHNAME', 'migrate_catalog_report_sql'
LANGUAGE C SET search_path = pg_catalog, pg_temp;

CREATE OR REPLACE FUNCTION migrate._catalog_cancel(run bigint)
RETURNS boolean
AS 'MODULE_PATHNAME', 'migrate_catalog_cancel_sql'
LANGUAGE C SET search_path = pg_catalog, pg_temp;

-- Record runs left 'running' by a worker that is gone (server crash, kill)
-- as interrupted, keeping their error, with an event (src/catalog.c, the
-- same transition the next run of the plan makes).  migrate_status() and
-- the progress views only compute that on read.
CREATE OR REPLACE FUNCTION migrate._reap()
RETURNS integer
AS 'MODULE_PATHNAME', 'migrate_catalog_reap_sql'
LANGUAGE C SET search_path = pg_catalog, pg_temp;

-- Live progress: per table of running runs.  A run still 'running' whose
-- plan lock nobody holds lost its worker (interrupted): it is not listed.
CREATE OR REPLACE VIEW migrate.progress WITH (security_invoker = true) AS
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
 WHERE r.state = 'running' AND migrate._plan_locked(r.plan);
GRANT SELECT ON migrate.progress TO PUBLIC;

-- Live progress: per unit (key range, index rebuild, foreign key) of
-- running runs; like migrate.progress, not of interrupted ones.
CREATE OR REPLACE VIEW migrate.progress_range WITH (security_invoker = true) AS
SELECT rr.run_id, r.plan, rr.target, rr.range_no, rr.kind, rr.lo, rr.hi, rr.state,
       rr.rows_read, rr.rows_written, rr.rows_rejected, rr.rows_skipped, rr.batches, rr.last_key,
       round(rr.rows_read / nullif(extract(epoch FROM coalesce(rr.finished_at, clock_timestamp()) - rr.started_at), 0))::bigint
           AS rows_per_second,
       rr.worker_pid, a.query AS doing, rr.started_at, rr.finished_at
  FROM migrate.run_range rr
  JOIN migrate.run r USING (run_id)
  LEFT JOIN pg_catalog.pg_stat_activity a ON a.pid = rr.worker_pid AND rr.state = 'running'
 WHERE r.state = 'running' AND migrate._plan_locked(r.plan);
GRANT SELECT ON migrate.progress_range TO PUBLIC;

-- Where a run stands (the latest run when run is NULL), per table.  Only
-- reads (it works in a read-only transaction, on a standby and for a role
-- that may only SELECT): a run still 'running' whose plan lock nobody holds
-- lost its worker and is shown as interrupted, as migrate._reap() or the
-- next run of the plan will record it.  A cutover's run (mode cutover) has
-- one row per table swapped; its tables show rolled_back once
-- migrate_rollback() reversed the swap.
CREATE OR REPLACE FUNCTION migrate_status(run bigint DEFAULT NULL)
RETURNS TABLE (run_id bigint, plan text, run_state text, target regclass, table_state text,
               rows_read bigint, rows_written bigint, rows_rejected bigint, rows_skipped bigint,
               last_key text, started_at timestamptz, finished_at timestamptz, error text,
               percent numeric, rows_per_second bigint, eta interval, workers bigint)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT r.run_id, r.plan, CASE WHEN d.dead THEN 'interrupted' ELSE r.state END, rt.target,
           -- since 0.7: a table migrate_rollback() returned to its state before the run
           CASE (SELECT b.state FROM migrate.rollback b WHERE b.run_id = rt.run_id AND b.target = rt.target)
                WHEN 'done' THEN 'rolled back' WHEN 'conflicts' THEN 'rolled back, conflicts left'
                ELSE ts.state END,
           rt.rows_read, rt.rows_written, rt.rows_rejected, rt.rows_skipped,
           rt.last_key, rt.started_at, rt.finished_at,
           coalesce(rt.error, r.error,
                    CASE WHEN d.dead THEN 'the worker ended without finishing (server crash or terminated)' END),
           CASE WHEN rt.state = 'succeeded' THEN 100.0
                ELSE least(99.9, pg_catalog.round(100.0 * rt.rows_read / nullif(coalesce(rt.source_count, rt.estimated_rows), 0), 1))
           END,
           pg_catalog.round(rt.rows_read / nullif(extract(epoch FROM coalesce(rt.finished_at, pg_catalog.clock_timestamp()) - rt.started_at), 0))::pg_catalog.int8,
           CASE WHEN ts.state = 'running' AND rt.rows_read > 0 AND coalesce(rt.source_count, rt.estimated_rows) > rt.rows_read
                THEN (pg_catalog.clock_timestamp() - rt.started_at)
                     * ((coalesce(rt.source_count, rt.estimated_rows) - rt.rows_read)::pg_catalog.float8 / rt.rows_read)
           END,
           CASE WHEN d.dead THEN 0
                ELSE (SELECT pg_catalog.count(*) FROM migrate.run_range rr
                       WHERE rr.run_id = rt.run_id AND rr.target = rt.target AND rr.state = 'running') END
      FROM migrate.run r
      CROSS JOIN LATERAL (SELECT r.state = 'running' AND NOT migrate._plan_locked(r.plan) AS dead) d
      LEFT JOIN migrate.run_table rt ON rt.run_id = r.run_id
      LEFT JOIN LATERAL (SELECT CASE WHEN d.dead AND rt.state IN ('pending', 'running') THEN 'interrupted'
                                     -- a cutover's tables once migrate_rollback() reversed its swap (0.7)
                                     WHEN r.mode = 'cutover' AND EXISTS (SELECT FROM migrate.cutover c
                                               WHERE c.run_id = r.run_id AND c.state = 'rolled_back')
                                     THEN 'rolled_back'
                                     ELSE rt.state END AS state) ts ON true
     WHERE r.run_id = coalesce(migrate_status.run, (SELECT pg_catalog.max(x.run_id) FROM migrate.run x))
     ORDER BY rt.load_order
$$;

-- Where trickle sync stands (since 0.6), per table with capture of the
-- plan (of every visible plan when plan is NULL): migrate.sync_state and
-- the table's capture settings; a table whose capture is not armed yet has
-- NULLs and zeros.  Only reads; row-level security shows the plans of the
-- roles the caller is a member of.  behind: time since the last pass.
CREATE OR REPLACE FUNCTION migrate_sync_status(plan text DEFAULT NULL)
RETURNS TABLE (plan text, target regclass, capture text, watermark name, overlap interval,
               armed_at timestamptz, "position" text, synced_to text, last_sync_at timestamptz,
               last_sync_run bigint, behind interval, lag interval, passes bigint,
               applied_inserted bigint, applied_updated bigint, applied_deleted bigint,
               applied_rejected bigint, last_error text)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT tm.plan, tm.target, tm.capture, tm.watermark, tm.lag,
           ss.armed_at, ss.position, ss.synced_to, ss.last_sync_at, ss.last_sync_run,
           pg_catalog.now() - ss.last_sync_at, ss.lag, coalesce(ss.passes, 0),
           coalesce(ss.applied_inserted, 0), coalesce(ss.applied_updated, 0),
           coalesce(ss.applied_deleted, 0), coalesce(ss.applied_rejected, 0), ss.last_error
      FROM migrate.table_map tm
      LEFT JOIN migrate.sync_state ss ON ss.plan = tm.plan AND ss.target = tm.target
     WHERE (tm.capture <> 'none' OR ss.plan IS NOT NULL)
       AND (migrate_sync_status.plan IS NULL OR tm.plan = migrate_sync_status.plan)
     ORDER BY tm.plan, tm.target::pg_catalog.text
$$;

-- Ask a running run to stop at its next batch boundary (state cancelled).
-- Returns false when the run is not running.  A run of another owner does
-- not exist for the caller (row-level security); the caller must be a
-- member of the run's owner (a superuser is).
CREATE OR REPLACE FUNCTION migrate_cancel(run bigint)
RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    st text;
BEGIN
    SELECT r.state INTO st FROM migrate.run r WHERE r.run_id = migrate_cancel.run;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'migration run % does not exist', migrate_cancel.run
            USING ERRCODE = 'undefined_object',
                  HINT = 'See migrate_status(); a run of a role you are not a member of is not visible.';
    END IF;
    -- checks membership (42501) and writes the request in the caller's name
    RETURN migrate._catalog_cancel(migrate_cancel.run);
END;
$$;

-- The INSERT ... SELECT the engine runs for each batch of a table ($1, $2:
-- the key range), so a DBA can EXPLAIN VERBOSE it and see what is pushed
-- down to the source.
CREATE OR REPLACE FUNCTION migrate_batch_statement(plan text, target text)
RETURNS text
AS 'MODULE_PATHNAME', 'migrate_batch_statement'
LANGUAGE C STRICT
SET search_path = pg_catalog, pg_temp;

/*
 * migrate_rollback(run, force) returns every target of a run to what it
 * was before the run (src/rollback.c): tables empty at the start are
 * emptied, the others replay the run's undo log (src/undo.c); a run of
 * mode 'cutover' reverses its swap.  A row changed since the run is a
 * conflict, named in a WARNING and left alone unless force.  One
 * transaction; a second call changes nothing.  As the run's owner (the
 * caller must be a member of it): the bodies are migrate._migrate_rollback
 * and migrate._migrate_rollback_conflicts, called by migrate_call_as_owner.
 */
CREATE OR REPLACE FUNCTION migrate_rollback(run bigint, force boolean DEFAULT false)
RETURNS TABLE (target regclass, rows_deleted bigint, rows_restored bigint,
               rows_reinserted bigint, conflicts bigint)
LANGUAGE C
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'migrate_call_as_owner';

CREATE OR REPLACE FUNCTION migrate._migrate_rollback(run bigint, force boolean)
RETURNS TABLE (target regclass, rows_deleted bigint, rows_restored bigint,
               rows_reinserted bigint, conflicts bigint)
LANGUAGE C
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'migrate_rollback_run';
REVOKE ALL ON FUNCTION migrate._migrate_rollback(bigint, boolean) FROM PUBLIC;

-- The rows a rollback of the run would now leave alone (key NULL: the
-- whole table), with why; key values of sensitive columns show as ***.
CREATE OR REPLACE FUNCTION migrate_rollback_conflicts(run bigint)
RETURNS TABLE (target regclass, key text, reason text)
LANGUAGE C
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'migrate_call_as_owner';

CREATE OR REPLACE FUNCTION migrate._migrate_rollback_conflicts(run bigint)
RETURNS TABLE (target regclass, key text, reason text)
LANGUAGE C
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'migrate_rollback_conflicts';
REVOKE ALL ON FUNCTION migrate._migrate_rollback_conflicts(bigint) FROM PUBLIC;

-- The undo log of the plan's runs goes (migrate_drop_plan()); for members
-- of the plan's owner, written as the extension's owner (src/catalog_strategies.c).
CREATE OR REPLACE FUNCTION migrate._catalog_undo_drop(plan text)
RETURNS void
AS 'MODULE_PATHNAME', 'migrate_catalog_undo_drop_sql'
LANGUAGE C STRICT SET search_path = pg_catalog, pg_temp;
