/*
 * security.sql: who a call runs as (src/owner.c) and helpers of the
 * security model (docs/security.md).  Functions only.
 */

-- The search_path of whoever called the innermost pinned function of
-- migrate: user-given names are resolved, and owner expressions checked,
-- under it.
CREATE OR REPLACE FUNCTION migrate._caller_search_path()
RETURNS text
LANGUAGE C STABLE
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'migrate_caller_search_path_sql';
