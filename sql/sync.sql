/*
 * sync.sql: trickle sync and the parallel run (DESIGN.md "Strategies"):
 * migrate_sync(), capture arming and the change tables of capture =>
 * 'trigger' (migrate_capture_sql()), and the SQL helpers of src/sync.c,
 * which owns the apply path.  Every function pins search_path.
 */

-- migrate_sync(): one pass of every table of the plan with capture: a run
-- of mode 'sync' (src/sync.c), so the plan's lock refuses a second
-- concurrent sync, or a sync during a run, with 55006.  The plan was
-- checked by its incremental run; a pass does not check it again.
CREATE OR REPLACE FUNCTION migrate_sync(plan text, until text DEFAULT 'now', wait boolean DEFAULT true)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF until IS DISTINCT FROM 'now' THEN
        RAISE EXCEPTION 'until => % is not supported by migrate_sync()', pg_catalog.quote_nullable(until)
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'A pass applies what the source committed before it started: until => ''now''.';
    END IF;
    IF NOT EXISTS (SELECT FROM migrate.plan p WHERE p.plan_name OPERATOR(pg_catalog.=) migrate_sync.plan) THEN
        RAISE EXCEPTION 'migration plan "%" does not exist', plan
            USING ERRCODE = 'undefined_object';
    END IF;
    IF NOT EXISTS (SELECT FROM migrate.table_map m
                    WHERE m.plan OPERATOR(pg_catalog.=) migrate_sync.plan
                      AND m.capture OPERATOR(pg_catalog.<>) 'none') THEN
        RAISE EXCEPTION 'migration plan "%" has no table with capture', plan
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Choose one per table with migrate_table(..., capture => ''watermark'' | ''trigger'' | ''slot'' | ''diff''), then arm it with migrate_run(plan, mode => ''incremental'').';
    END IF;
    RETURN @extschema@.migrate_run(plan, mode => 'sync', wait => wait);
END;
$$;
-- in-flight keys (parallel run)
--
-- While the source stays live (a parallel run), migrate_verify(plan,
-- stable_for => ...) and migrate_diff(..., stable_for => ...) leave out of
-- both sides the keys that are *in flight*: changed at the source and not
-- yet applied, or changed within the window.  What each capture knows:
--   watermark  source rows whose watermark column is past now() -
--              stable_for (changed within the window) or past the table's
--              position minus its lag (a minute by default, as src/sync.c
--              re-reads: not yet synced for sure), whichever bound is
--              earlier; a watermark that is not a time only has the position
--   trigger    every key still in the change relation (rows the engine has
--              applied are deleted from it; those in sync_state.prune are
--              applied and only wait to be deleted); a pending TRUNCATE
--              puts every key of the target in flight
--   slot       migrate._slot_pending_keys(plan, target) (src/slot.c)
--   diff, none nothing: no change is known before the diff finds it
-- A key is the leading key value as text: the first key column's value as
-- the target holds it (the mapped source value, cast to the column's type).
-- Runs as its caller (under migrate_verify: the plan's owner), the plan's
-- expressions under the caller's search_path: safe for any caller, who
-- sees only the plans and sync state of roles it is a member of; it stays
-- executable by PUBLIC because the owner's verify calls it as the owner.

-- The keys in flight and a phrase saying how they were found.
CREATE OR REPLACE FUNCTION migrate._in_flight(p_plan text, p_target regclass, p_stable_for interval,
                                            OUT keys text[], OUT how text)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    tm migrate.table_map;
    ss migrate.sync_state;
    q jsonb;
    lead_s text;
    lead_t text;
    lead_type text;
    wm_type regtype;
    by_time text;
    by_position text;
    threshold text;
    rel regclass;
    truncated boolean := false;
    expr_path constant text := migrate._caller_search_path();
BEGIN
    IF p_stable_for < '0' THEN
        RAISE EXCEPTION 'stable_for of table % in migration plan "%" must not be negative (got %)',
                        migrate._verify_relname(p_target), p_plan, p_stable_for
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Pass the time a change needs to reach the target, for example stable_for => ''30 seconds''.';
    END IF;
    SELECT * INTO tm FROM migrate.table_map WHERE plan = p_plan AND target = p_target;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'table % is not mapped in migration plan "%"', migrate._verify_relname(p_target), p_plan
            USING ERRCODE = 'undefined_object',
                  HINT = 'Map it first with migrate_table().';
    END IF;
    SELECT * INTO ss FROM migrate.sync_state WHERE plan = p_plan AND target = p_target;
    q := migrate._verify_sql(p_plan, p_target);
    lead_s := q->'key_sources'->>0;
    lead_t := q->'key_targets'->>0;
    lead_type := q->'key_types'->>0;
    keys := '{}';

    IF tm.capture IN ('none', 'diff') THEN
        how := pg_catalog.format('capture %s: no change is known before a diff finds it', tm.capture);
        RETURN;
    END IF;
    IF tm.capture IN ('trigger', 'slot') AND ss.plan IS NULL THEN
        how := pg_catalog.format('capture %s is not armed (no sync state): no change is known', tm.capture);
        RETURN;
    END IF;

    IF tm.capture = 'watermark' THEN
        SELECT a.atttypid::regtype INTO wm_type FROM pg_catalog.pg_attribute a
         WHERE a.attrelid = pg_catalog.to_regclass(tm.source) AND a.attname = tm.watermark
           AND NOT a.attisdropped;
        IF wm_type IS NULL THEN
            RAISE EXCEPTION 'watermark column "%" of table % in migration plan "%" is not in its source %',
                            tm.watermark, migrate._verify_relname(p_target), p_plan, tm.source
                USING ERRCODE = 'undefined_column',
                      HINT = 'Remap the table with migrate_table(..., watermark => ''column'').';
        END IF;
        -- the thresholds as literals of the column's type, computed here
        -- (a cast of now() would not ship to the source)
        IF wm_type IN ('timestamptz'::regtype, 'timestamp'::regtype, 'date'::regtype) THEN
            IF p_stable_for IS NOT NULL THEN
                EXECUTE pg_catalog.format('SELECT ($1)::%s::text', wm_type)
                   INTO by_time USING pg_catalog.now() - p_stable_for;
            END IF;
            IF ss.position IS NOT NULL THEN
                -- the overlap the engine re-reads: a minute unless the table says (src/sync.c)
                EXECUTE pg_catalog.format('SELECT (($1)::%1$s - $2)::%1$s::text', wm_type)
                   INTO by_position USING ss.position, coalesce(tm.lag, '1 minute'::interval);
            END IF;
        ELSIF ss.position IS NOT NULL THEN
            by_position := ss.position;     -- a version number: lag (a time) does not apply
        END IF;
        IF by_time IS NULL THEN
            threshold := by_position;
        ELSIF by_position IS NULL THEN
            threshold := by_time;
        ELSE
            -- changed within the window, or not yet synced: the earlier bound
            EXECUTE pg_catalog.format('SELECT LEAST($1::%1$s, $2::%1$s)::text', wm_type)
               INTO threshold USING by_time, by_position;
        END IF;
        how := pg_catalog.format('capture watermark: source rows whose %I is after %s', tm.watermark,
                                 coalesce(threshold, 'nothing (no window and no position)'))
               || CASE WHEN threshold IS NULL THEN ''
                       WHEN threshold = by_time AND threshold = by_position
                       THEN pg_catalog.format(' (now() - %s, and the position minus lag)', p_stable_for)
                       WHEN threshold = by_time THEN pg_catalog.format(' (now() - %s)', p_stable_for)
                       WHEN by_position IS NOT NULL
                            AND wm_type IN ('timestamptz'::regtype, 'timestamp'::regtype, 'date'::regtype)
                       THEN pg_catalog.format(' (position %s minus lag %s: not yet synced)', ss.position,
                                              coalesce(tm.lag, '1 minute'::interval))
                       ELSE pg_catalog.format(' (position %s: not yet synced)', ss.position) END
               || CASE WHEN p_stable_for IS NOT NULL
                            AND wm_type NOT IN ('timestamptz'::regtype, 'timestamp'::regtype, 'date'::regtype)
                       THEN pg_catalog.format('; %s is not a time: stable_for does not apply to it', tm.watermark)
                       ELSE '' END
               || '; deletes are not seen';
        IF threshold IS NULL THEN
            RETURN;
        END IF;
        PERFORM pg_catalog.set_config('search_path', expr_path, true);
        EXECUTE pg_catalog.format('SELECT pg_catalog.array_agg(DISTINCT (%1$s)::text) %2$s AND s.%3$I > %4$L::%5$s'
                                  ' AND (%1$s) IS NOT NULL',
                                  lead_s, q->>'source', tm.watermark, threshold, wm_type)
           INTO keys;
        PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
    ELSIF tm.capture = 'trigger' THEN
        rel := pg_catalog.to_regclass(ss.change_relation);
        IF rel IS NULL THEN
            RAISE EXCEPTION 'change relation % of table % in migration plan "%" does not exist',
                            coalesce(ss.change_relation, '(none)'), migrate._verify_relname(p_target), p_plan
                USING ERRCODE = 'undefined_table',
                      HINT = 'Arm capture again: migrate_run(plan, mode => ''incremental'').';
        END IF;
        EXECUTE pg_catalog.format('SELECT pg_catalog.array_agg(DISTINCT c.k::text) FILTER (WHERE c.k IS NOT NULL),'
                                  '       coalesce(pg_catalog.bool_or(c.op = ''T''), false)'
                                  '  FROM %s AS c WHERE c.seq <> ALL (coalesce($1, ''{}''::bigint[]))', rel)
           INTO keys, truncated USING ss.prune;
        how := pg_catalog.format('capture trigger: keys in the change relation %s not yet applied', ss.change_relation);
    ELSE    -- slot
        IF pg_catalog.to_regprocedure('migrate._slot_pending_keys(text, regclass)') IS NULL THEN
            how := 'capture slot: pending changes cannot be read (migrate._slot_pending_keys is missing)';
            RETURN;
        END IF;
        EXECUTE 'SELECT pg_catalog.array_agg(DISTINCT k) FILTER (WHERE k IS NOT NULL), pg_catalog.bool_or(k IS NULL)'
                '  FROM migrate._slot_pending_keys($1, $2) AS k'
           INTO keys, truncated USING p_plan, p_target;
        truncated := coalesce(truncated, false);
        how := pg_catalog.format('capture slot: keys of changes in slot %s after position %s',
                                 coalesce(ss.slot_name::text, '-'), coalesce(ss.position, '-'));
    END IF;
    IF truncated THEN
        -- the source was truncated since: every key the target holds goes
        PERFORM pg_catalog.set_config('search_path', expr_path, true);
        EXECUTE pg_catalog.format('SELECT pg_catalog.array_agg(DISTINCT k) FROM (SELECT pg_catalog.unnest($1) AS k'
                                  ' UNION SELECT (%1$s)::text %2$s AND (%1$s) IS NOT NULL) x',
                                  lead_t, q->>'target')
           INTO keys USING keys;
        PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
        how := how || '; a TRUNCATE is pending: every key of the target';
    END IF;
    keys := coalesce(keys, '{}');
END;
$$;

-- The leading key values (text) in flight for one table (see above).
CREATE OR REPLACE FUNCTION migrate._in_flight_keys(plan text, target regclass, stable_for interval)
RETURNS SETOF text
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT k FROM pg_catalog.unnest((migrate._in_flight(plan, target, stable_for)).keys) AS k ORDER BY k
$$;
