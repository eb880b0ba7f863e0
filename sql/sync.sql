/*
 * sync.sql: trickle sync and the parallel run (DESIGN.md "Strategies"):
 * migrate_sync(), capture arming and the change tables of capture =>
 * 'trigger' (migrate_capture_sql()), and the SQL helpers of src/sync.c,
 * which owns the apply path.  Every function pins search_path.
 */

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
