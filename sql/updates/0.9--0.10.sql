/*
 * updates/0.9--0.10.sql: the deltas from 0.9 to 0.10 (issue 17: file
 * sources).  Same rules as updates/0.2--0.3.sql: DDL and data fix-ups
 * only; the functions follow.  Every change here has its twin in
 * sql/catalog.sql (test/sql/99_upgrade.sql compares them).
 */

-- ==== file sources ====
-- a file source needs no key (its records' _pos cut the batches)
ALTER TABLE migrate.table_map DROP CONSTRAINT table_map_key_check;
ALTER TABLE migrate.table_map ADD CONSTRAINT table_map_key_check
    CHECK (cardinality(key) > 0 OR (options ? 'file' AND mode = 'insert'));

CREATE FUNCTION migrate._file_fdw_handler()
RETURNS fdw_handler
AS 'MODULE_PATHNAME', 'migrate_file_fdw_handler'
LANGUAGE C STRICT
SET search_path = pg_catalog, pg_temp;

CREATE FUNCTION migrate._file_fdw_validator(text[], oid)
RETURNS void
AS 'MODULE_PATHNAME', 'migrate_file_fdw_validator'
LANGUAGE C STRICT
SET search_path = pg_catalog, pg_temp;

CREATE FOREIGN DATA WRAPPER migrate_file
    HANDLER migrate._file_fdw_handler VALIDATOR migrate._file_fdw_validator;
CREATE SERVER migrate_files FOREIGN DATA WRAPPER migrate_file;
-- called by the server itself (no EXECUTE check), never by a role
REVOKE ALL ON FUNCTION migrate._file_fdw_handler(), migrate._file_fdw_validator(text[], oid) FROM PUBLIC;
GRANT USAGE ON FOREIGN SERVER migrate_files TO PUBLIC;
