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

-- migrate_drop_plan(): the plan and what its capture left at the sources
-- (the slot of capture => 'slot', the triggers and change tables migrate
-- installed on local sources), as the plan's owner.  Its runs, rejects and
-- events stay (history); its mappings and sync state go with the plan.
CREATE OR REPLACE FUNCTION migrate_drop_plan(plan text)
RETURNS void
LANGUAGE C VOLATILE
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'migrate_call_as_owner';

CREATE OR REPLACE FUNCTION migrate._migrate_drop_plan(plan text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    pl migrate.plan := migrate._plan(plan);
    t regclass;
BEGIN
    IF migrate._plan_locked(pl.plan_name) THEN
        RAISE EXCEPTION 'migration plan "%" is running', pl.plan_name
            USING ERRCODE = 'object_in_use',
                  HINT = 'Wait for its run or sync to end, or stop it with migrate_cancel(run), then drop it.';
    END IF;
    FOR t IN SELECT s.target FROM migrate.sync_state s
              WHERE s.plan OPERATOR(pg_catalog.=) pl.plan_name AND s.capture OPERATOR(pg_catalog.=) 'trigger'
    LOOP
        PERFORM migrate._capture_disarm(pl.plan_name, t);
    END LOOP;
    IF EXISTS (SELECT FROM migrate.sync_state s
                WHERE s.plan OPERATOR(pg_catalog.=) pl.plan_name AND s.capture OPERATOR(pg_catalog.=) 'slot') THEN
        PERFORM migrate._slot_drop(pl.plan_name);
    END IF;
    -- recorded while the plan is there to say whose it was
    PERFORM migrate._catalog_event(NULL, pl.plan_name, 'plan dropped', NULL);
    DELETE FROM migrate.plan p WHERE p.plan_name OPERATOR(pg_catalog.=) pl.plan_name;
END;
$$;
REVOKE ALL ON FUNCTION migrate._migrate_drop_plan(text) FROM PUBLIC;

-- slot capture (src/slot.c)

-- The leading key values (text) of the changes that the plan's replication
-- slot holds for a slot table after the table's position in
-- migrate.sync_state (all of them if it has none): peeked, the slot does
-- not move.  A key change gives the old and the new key, a truncate NULL.
-- Runs as the caller, whose user mapping reaches the source; internal (the
-- lead's engine and verify call it as the plan's owner).
CREATE OR REPLACE FUNCTION migrate._slot_pending_keys(p_plan text, p_target regclass)
RETURNS SETOF text
LANGUAGE C STRICT VOLATILE
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'migrate_sql_slot_pending_keys';
REVOKE ALL ON FUNCTION migrate._slot_pending_keys(text, regclass) FROM PUBLIC;

-- Drop the plan's replication slot on each source server of its slot tables
-- (table_map.capture or sync_state.capture 'slot'); no error where it does
-- not exist.  For migrate_drop_plan(); internal.
CREATE OR REPLACE FUNCTION migrate._slot_drop(p_plan text)
RETURNS void
LANGUAGE C STRICT VOLATILE
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'migrate_sql_slot_drop';
REVOKE ALL ON FUNCTION migrate._slot_drop(text) FROM PUBLIC;
