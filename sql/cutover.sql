/*
 * cutover.sql: blue-green cutover (DESIGN.md "Strategies"): the swap of a
 * plan's shadow schema into its live schema and its reverse, which
 * src/cutover.c (migrate_cutover(), the fence, the verify gate, the locks)
 * calls under the live tables' locks.  Every function pins search_path.
 */

-- ==== the swap (LOCAL STAND-IN of cutover.c's branch until h14-swap lands; drop on merge) ====

-- Minimal versions of the swap's contract (HELPERS.md "The swap's
-- contract"): pairs by name, schema renames only, nothing carried over.
CREATE OR REPLACE FUNCTION migrate._cutover_pairs(plan text)
RETURNS TABLE (shadow regclass, live regclass, live_name text)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p migrate.plan;
BEGIN
    SELECT * INTO p FROM migrate.plan x WHERE x.plan_name = _cutover_pairs.plan;
    IF p.options->>'cutover_into' IS NULL OR p.options->>'cutover_into' = p.target_schema THEN
        RAISE EXCEPTION 'migration plan "%" has no cutover_into option other than its target schema', plan
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF pg_catalog.to_regnamespace(pg_catalog.quote_ident(p.target_schema)) IS NULL THEN
        RAISE EXCEPTION 'shadow schema "%" of migration plan "%" does not exist', p.target_schema, plan
            USING ERRCODE = 'invalid_schema_name';
    END IF;
    RETURN QUERY
        SELECT tm.target, pg_catalog.to_regclass(pg_catalog.format('%I.%I', p.options->>'cutover_into', c.relname)),
               pg_catalog.format('%I.%I', p.options->>'cutover_into', c.relname)
          FROM migrate.table_map tm JOIN pg_catalog.pg_class c ON c.oid = tm.target
         WHERE tm.plan = _cutover_pairs.plan ORDER BY c.relname;
END;
$$;
REVOKE ALL ON FUNCTION migrate._cutover_pairs(text) FROM PUBLIC;

CREATE OR REPLACE FUNCTION migrate._cutover_swap(plan text, retired name)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p migrate.plan;
    live name;
    had_live boolean;
BEGIN
    SELECT * INTO p FROM migrate.plan x WHERE x.plan_name = _cutover_swap.plan;
    live := p.options->>'cutover_into';
    had_live := pg_catalog.to_regnamespace(pg_catalog.quote_ident(live)) IS NOT NULL;
    IF had_live THEN
        EXECUTE pg_catalog.format('ALTER SCHEMA %I RENAME TO %I', live, retired);
    END IF;
    EXECUTE pg_catalog.format('ALTER SCHEMA %I RENAME TO %I', p.target_schema, live);
    RETURN pg_catalog.jsonb_build_object('live_schema', live, 'shadow_schema', p.target_schema,
                                         'retired_schema', CASE WHEN had_live THEN retired END);
END;
$$;
REVOKE ALL ON FUNCTION migrate._cutover_swap(text, name) FROM PUBLIC;

CREATE OR REPLACE FUNCTION migrate._cutover_unswap(carried jsonb)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    EXECUTE pg_catalog.format('ALTER SCHEMA %I RENAME TO %I', carried->>'live_schema', carried->>'shadow_schema');
    IF carried->>'retired_schema' IS NOT NULL THEN
        EXECUTE pg_catalog.format('ALTER SCHEMA %I RENAME TO %I', carried->>'retired_schema', carried->>'live_schema');
    END IF;
    RETURN carried;
END;
$$;
REVOKE ALL ON FUNCTION migrate._cutover_unswap(jsonb) FROM PUBLIC;

-- ==== migrate_cutover() ====

-- migrate_cutover(): the blue-green cutover of a plan whose target_schema
-- is a shadow of the live schema options->>'cutover_into' (src/cutover.c):
-- a sync to a fence, the verify gate (migrate_verify and an empty
-- migrate_diff of every table, keys changed since the fence in flight),
-- the live tables locked IN EXCLUSIVE MODE (each attempt waits at most
-- lock_timeout; max_attempts of them), the final sync under the locks, the
-- fence re-checked, the swap (migrate._cutover_swap) and its record
-- (migrate.cutover, a run of mode 'cutover'), all in the caller's
-- transaction.  Returns the cutover's run id.  Runs as the plan's owner;
-- the caller must be a member of it.
CREATE OR REPLACE FUNCTION migrate_cutover(plan text, lock_timeout interval DEFAULT '500ms',
                                           max_attempts integer DEFAULT 10)
RETURNS bigint
LANGUAGE C VOLATILE
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'migrate_cutover';

-- What the capture of each table of a plan has not applied yet (src/cutover.c
-- checks it under the live tables' locks, after the final sync): trigger:
-- rows of the change table beyond those applied but not yet pruned
-- (sync_state.prune); slot: changes the slot holds after the table's
-- position (migrate._slot_pending_keys); watermark: source rows whose
-- watermark is past the position (max(watermark) when the last pass began;
-- deletes are not seen).  Runs as its caller (the plan's owner under
-- migrate_cutover), reading only what the caller may read; the plan's
-- filter under the caller's search_path.  Internal.
CREATE OR REPLACE FUNCTION migrate._cutover_pending(p_plan text)
RETURNS TABLE (target regclass, capture text, pending bigint)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r record;
    rel regclass;
    wm_type regtype;
    expr_path constant text := migrate._caller_search_path();
BEGIN
    FOR r IN SELECT tm.target, tm.capture, tm.source, tm.filter, tm.watermark,
                    ss.change_relation, ss.prune, ss.position, ss.plan IS NOT NULL AS armed
               FROM migrate.table_map tm
               LEFT JOIN migrate.sync_state ss ON ss.plan = tm.plan AND ss.target = tm.target
              WHERE tm.plan = p_plan
              ORDER BY tm.target::text
    LOOP
        target := r.target;
        capture := r.capture;
        pending := NULL;
        IF NOT r.armed THEN
            RAISE EXCEPTION 'capture of table % in migration plan "%" is not armed', r.target, p_plan
                USING ERRCODE = 'object_not_in_prerequisite_state',
                      HINT = 'Arm it with migrate_run(plan, mode => ''incremental'').';
        ELSIF r.capture = 'trigger' THEN
            rel := pg_catalog.to_regclass(r.change_relation);
            IF rel IS NULL THEN
                RAISE EXCEPTION 'change relation % of table % in migration plan "%" does not exist',
                                coalesce(r.change_relation, '(none)'), r.target, p_plan
                    USING ERRCODE = 'undefined_table',
                          HINT = 'Arm capture again: migrate_run(plan, mode => ''incremental'').';
            END IF;
            EXECUTE pg_catalog.format('SELECT pg_catalog.count(*) FROM %s AS c'
                                      ' WHERE c.seq <> ALL (coalesce($1, ''{}''::bigint[]))', rel)
               INTO pending USING r.prune;
        ELSIF r.capture = 'slot' THEN
            SELECT pg_catalog.count(*) INTO pending FROM migrate._slot_pending_keys(p_plan, r.target);
        ELSIF r.capture = 'watermark' THEN
            SELECT a.atttypid::regtype INTO wm_type FROM pg_catalog.pg_attribute a
             WHERE a.attrelid = pg_catalog.to_regclass(r.source) AND a.attname = r.watermark
               AND NOT a.attisdropped;
            -- no position yet (the source had no row): every row is pending
            PERFORM pg_catalog.set_config('search_path', expr_path, true);
            EXECUTE pg_catalog.format('SELECT pg_catalog.count(*) FROM %s AS s WHERE %s%s',
                                      r.source,
                                      CASE WHEN r.position IS NULL THEN 'true'
                                           ELSE pg_catalog.format('s.%I > %L::%s', r.watermark, r.position, wm_type) END,
                                      CASE WHEN r.filter IS NOT NULL THEN ' AND (' || r.filter || ')' ELSE '' END)
               INTO pending;
            PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
        END IF;
        RETURN NEXT;
    END LOOP;
END;
$$;
REVOKE ALL ON FUNCTION migrate._cutover_pending(text) FROM PUBLIC;
