/*
 * sync.sql: trickle sync and the parallel run (DESIGN.md "Strategies"):
 * migrate_sync(), capture arming and the change tables of capture =>
 * 'trigger' (migrate_capture_sql()), and the SQL helpers of src/sync.c,
 * which owns the apply path.  Every function pins search_path.
 */
