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
 * (migrate._pass, migrate._fail, migrate._loaded: a SET clause would cost a GUC level per
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

-- The verify's hash of a row written, summed (src/route.c, load.c): a
-- table that was empty when the run started keeps the sum as
-- run_table.loaded_checksum.  Called by the engine only.
CREATE OR REPLACE FUNCTION migrate._loaded(hash bigint)
RETURNS boolean
AS 'MODULE_PATHNAME', 'migrate_route_loaded'
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
-- one row per table swapped; its tables show 'rolled back' once
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
                                     THEN 'rolled back'
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

/*
 * The undo log's tables (0.8, src/undo.c): one per run and target that
 * keeps one, migrate.undo_<run>_<target oid>, the target's columns as they
 * were (the same names and types) after four of migrate's own:
 * __migrate_op ('u' a row an upsert overwrote, 'd' a row a sync deleted,
 * both as they were before; 'i' a key inserted, only its key columns),
 * __migrate_post (the xmin the write left; NULL: deleted), __migrate_txn
 * and __migrate_ord (the write's order).  Owned by the extension's owner,
 * row-level security on, no policy, no grant, as migrate.undo (which keeps
 * the undo rows of runs made before 0.8).  Internal, as the extension's
 * owner (src/catalog_strategies.c).
 */
CREATE OR REPLACE FUNCTION migrate._undo_create(run bigint, target regclass)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    name text := format('undo_%s_%s', run, target::oid);
    cols text;
BEGIN
    -- one creator at a time: the workers of a run's ranges start together
    LOCK TABLE migrate.undo IN SHARE ROW EXCLUSIVE MODE;
    IF to_regclass(format('migrate.%I', name)) IS NOT NULL THEN
        RETURN;
    END IF;
    IF EXISTS (SELECT FROM pg_attribute a WHERE a.attrelid = target AND a.attnum > 0
                  AND NOT a.attisdropped AND a.attname LIKE '\_\_migrate\_%') THEN
        RAISE EXCEPTION 'table % has a column named __migrate_...: migrate cannot keep its undo log', target
            USING ERRCODE = '42701',
                  HINT = 'Rename the column, or set the table''s option undo to off (migrate_table(..., options)).';
    END IF;
    SELECT string_agg(format('%I %s%s', a.attname, format_type(a.atttypid, a.atttypmod),
                             CASE WHEN a.attcollation <> 0 AND a.attcollation <> ty.typcollation
                                  THEN ' COLLATE ' || a.attcollation::regcollation::text ELSE '' END),
                      ', ' ORDER BY a.attnum)
      INTO cols
      FROM pg_attribute a JOIN pg_type ty ON ty.oid = a.atttypid
     WHERE a.attrelid = target AND a.attnum > 0 AND NOT a.attisdropped;
    EXECUTE format('CREATE TABLE migrate.%I (__migrate_op "char" NOT NULL, __migrate_post xid,'
                   ' __migrate_txn bigint NOT NULL, __migrate_ord bigint NOT NULL, %s) USING heap',
                   name, cols);
    EXECUTE format('ALTER TABLE migrate.%I ENABLE ROW LEVEL SECURITY', name);
END $$;
REVOKE ALL ON FUNCTION migrate._undo_create(bigint, regclass) FROM PUBLIC;

-- "(u.k1)::text, ...": the key of the mapping of the run's target, as the
-- text migrate.undo and the rollback keep keys in
CREATE OR REPLACE FUNCTION migrate._undo_key_sql(run bigint, target regclass)
RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT string_agg(format('(u.%I)::text', k.name), ', ' ORDER BY k.n)
      FROM migrate.run r JOIN migrate.table_map m ON m.plan = r.plan AND m.target = $2,
           unnest(m.key::text[]) WITH ORDINALITY AS k(name, n)
     WHERE r.run_id = $1
$$;
REVOKE ALL ON FUNCTION migrate._undo_key_sql(bigint, regclass) FROM PUBLIC;

/*
 * The undo log of target in run, one row per write: the key (text[]), the
 * write's order (pass 0: migrate.undo, made before 0.8; 1: the run's undo
 * table), the row before (the target's row type as text, for the columns
 * the target has now; NULL: absent) and the xmin the write left (NULL:
 * deleted).  What migrate_rollback() replays (catalog_strategies.c).
 */
CREATE OR REPLACE FUNCTION migrate._undo_log(run bigint, target regclass)
RETURNS TABLE (key text[], pass integer, txn bigint, ord bigint, pre text, post_xmin xid)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    undo regclass := to_regclass(format('migrate.undo_%s_%s', run, target::oid));
    cols text;
BEGIN
    RETURN QUERY SELECT u.key, 0, u.seq, 0::bigint, u.pre, u.post_xmin
                   FROM migrate.undo u WHERE u.run_id = run AND u.target = _undo_log.target;
    IF undo IS NULL THEN
        RETURN;
    END IF;
    SELECT string_agg(CASE WHEN b.attname IS NULL THEN 'NULL' ELSE format('u.%I', a.attname) END,
                      ', ' ORDER BY a.attnum)
      INTO cols
      FROM pg_attribute a
      LEFT JOIN pg_attribute b ON b.attrelid = undo AND b.attname = a.attname AND NOT b.attisdropped
     WHERE a.attrelid = target AND a.attnum > 0 AND NOT a.attisdropped;
    RETURN QUERY EXECUTE format('SELECT ARRAY[%s], 1, u.__migrate_txn, u.__migrate_ord,'
                                '       CASE WHEN u.__migrate_op <> ''i'' THEN ROW(%s)::text END, u.__migrate_post'
                                '  FROM %s u', migrate._undo_key_sql(run, target), cols, undo);
END $$;
REVOKE ALL ON FUNCTION migrate._undo_log(bigint, regclass) FROM PUBLIC;

/*
 * After a rollback of target in run: the undo rows it replayed go (those
 * of the keys in the table replayed without a conflict; all when
 * everything); the run's undo table goes when nothing is left in it.
 */
CREATE OR REPLACE FUNCTION migrate._undo_forget(run bigint, target regclass, replayed text, everything boolean)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    undo regclass := to_regclass(format('migrate.undo_%s_%s', run, target::oid));
    left_over boolean := false;
BEGIN
    IF everything THEN
        DELETE FROM migrate.undo u WHERE u.run_id = run AND u.target = _undo_forget.target;
    ELSE
        EXECUTE format('DELETE FROM migrate.undo u USING %s r WHERE u.run_id = $1 AND u.target = $2'
                       '   AND u.key = r.key AND r.conflict IS NULL', replayed)
          USING run, target;
    END IF;
    IF undo IS NULL THEN
        RETURN;
    END IF;
    IF NOT everything THEN
        EXECUTE format('DELETE FROM %s u USING %s r WHERE ARRAY[%s] = r.key AND r.conflict IS NULL',
                       undo, replayed, migrate._undo_key_sql(run, target));
        EXECUTE format('SELECT EXISTS (SELECT FROM %s)', undo) INTO left_over;
    END IF;
    IF NOT left_over THEN
        EXECUTE format('DROP TABLE %s', undo);
    END IF;
END $$;
REVOKE ALL ON FUNCTION migrate._undo_forget(bigint, regclass, text, boolean) FROM PUBLIC;

-- Every undo table of run goes (migrate_drop_plan()).
CREATE OR REPLACE FUNCTION migrate._undo_drop(run bigint)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    t regclass;
BEGIN
    FOR t IN SELECT c.oid FROM pg_class c
              WHERE c.relnamespace = 'migrate'::regnamespace AND c.relkind = 'r'
                AND c.relname ~ ('^undo_' || run || '_[0-9]+$')
    LOOP
        EXECUTE format('DROP TABLE %s', t);
    END LOOP;
END $$;
REVOKE ALL ON FUNCTION migrate._undo_drop(bigint) FROM PUBLIC;

/*
 * In the ON CONFLICT DO UPDATE ... WHERE of an upsert batch statement
 * under an undo log (src/undo.c): notes the existing row, locked, as it is
 * before the update, into the batch's undo rows; always true.  It does
 * something only during migrate's own batch statement, and only with a
 * row of that statement's target, so any caller may call it.  No
 * search_path setting: it resolves no name, and a SET clause would cost a
 * configuration save and restore per row.
 */
CREATE OR REPLACE FUNCTION migrate._undo_pre(existing record)
RETURNS boolean
LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'migrate_undo_pre';

-- The undo log of the plan's runs goes (migrate_drop_plan()); for members
-- of the plan's owner, written as the extension's owner (src/catalog_strategies.c).
CREATE OR REPLACE FUNCTION migrate._catalog_undo_drop(plan text)
RETURNS void
AS 'MODULE_PATHNAME', 'migrate_catalog_undo_drop_sql'
LANGUAGE C STRICT SET search_path = pg_catalog, pg_temp;
