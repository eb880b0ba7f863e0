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
