/*
 * updates/0.2--0.3.sql: the deltas from 0.2 to 0.3, and nothing else: DDL
 * on the catalog (ALTER TABLE, CREATE TABLE, CREATE INDEX ... to bring a
 * 0.2 catalog to the shape of sql/catalog.sql), data fix-ups, and DROP
 * FUNCTION of functions removed or whose arguments or result type changed.
 *
 * Built by make into sql/migrate--0.2--0.3.sql: an \echo guard, this file,
 * then the current function files (sql/plan.sql ... sql/assess.sql) as they
 * are, so every function is (re)created in its current definition after
 * these statements.  Statements here run before those functions exist in
 * their 0.3 form: a fix-up may not call a function that is new in 0.3.
 * test/sql/99_upgrade.sql checks that 0.1 upgraded through here has the
 * catalog of a fresh 0.3.
 */

-- migrate_status() became a read-only SQL function: same arguments and
-- result, so the CREATE OR REPLACE of sql/run.sql replaces it.
