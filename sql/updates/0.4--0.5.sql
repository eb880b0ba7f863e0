/*
 * updates/0.4--0.5.sql: the deltas from 0.4 to 0.5 (issue 12, real schemas
 * and dirty data).  Same rules as updates/0.2--0.3.sql: DDL and data
 * fix-ups only; the functions follow.  Every change here has its twin in
 * sql/catalog.sql (test/sql/99_upgrade.sql compares them).
 */

-- ==== reject limits: per-table overrides of the plan's options ====
ALTER TABLE migrate.table_map
    ADD COLUMN options jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(options) = 'object');
-- migrate_table() takes the table's options (sql/plan.sql): the old signature goes
DROP FUNCTION @extschema@.migrate_table(text, text, text, text, text, text, text);

-- ==== set-wise quarantine: how rows were quarantined ====
ALTER TABLE migrate.run_table
    ADD COLUMN rows_rejected_setwise bigint NOT NULL DEFAULT 0,
    ADD COLUMN bisect_steps bigint NOT NULL DEFAULT 0;
ALTER TABLE migrate.run_range
    ADD COLUMN rows_rejected_setwise bigint NOT NULL DEFAULT 0,
    ADD COLUMN bisect_steps bigint NOT NULL DEFAULT 0;

-- ==== foreign-key cycles ====
-- an fk unit's referenced table: the unit waits for its loads too (a
-- foreign key that closes a cycle comes back once both tables are loaded)
ALTER TABLE migrate.run_range
    ADD COLUMN ref_target regclass;
-- migrate_run() has a new argument, force (it refuses a plan whose
-- migrate_check() finds an error unless told)
DROP FUNCTION migrate_run(text, text, text[], integer, boolean, boolean);

-- ==== MySQL/MariaDB import ====
