--
-- Upgrade: the released 0.1 (sql/migrate--0.1.sql, frozen), updated with
-- ALTER EXTENSION migrate UPDATE through the released and the built upgrade
-- scripts, has the catalog of a fresh install of the current version,
-- which is built from other files (sql/catalog.sql ...): functions with
-- their settings, bodies and grants, tables and views with their columns,
-- defaults, constraints, indexes, policies and grants, types, sequences,
-- the tables pg_dump keeps, the extension's members
-- (test/sql/include/extension_shape.sql).  Every difference is a row below.
--
CREATE DATABASE migrate_upgraded;
CREATE DATABASE migrate_fresh;
\c migrate_upgraded
SET client_min_messages = warning;
CREATE EXTENSION migrate VERSION '0.1';
ALTER EXTENSION migrate UPDATE;
SELECT e.extversion = a.default_version AS upgraded_to_current
  FROM pg_extension e JOIN pg_available_extensions a ON a.name = e.extname
 WHERE e.extname = 'migrate';
\set ECHO none
\i test/sql/include/extension_shape.sql
\set ECHO all
SELECT jsonb_agg(to_jsonb(s)) AS upgraded_shape FROM extension_shape s \gset
\c migrate_fresh
SET client_min_messages = warning;
CREATE EXTENSION migrate;
\set ECHO none
\i test/sql/include/extension_shape.sql
\set ECHO all
CREATE TEMP TABLE upgraded AS
SELECT * FROM jsonb_to_recordset(:'upgraded_shape') AS u(kind text, name text, detail text);
-- each kind of object is there on both sides (the comparison sees them)
SELECT kind, bool_or(side = 'fresh') AS in_fresh, bool_or(side = 'upgraded') AS in_upgraded
  FROM (SELECT kind, 'fresh' AS side FROM extension_shape
        UNION ALL SELECT kind, 'upgraded' FROM upgraded) x
 GROUP BY kind ORDER BY kind;
SELECT (SELECT count(*) FROM extension_shape) = (SELECT count(*) FROM upgraded) AS same_count;
-- the differences: none
SELECT coalesce(f.kind, u.kind) AS kind, coalesce(f.name, u.name) AS name,
       CASE WHEN f.kind IS NULL THEN 'upgraded only' ELSE 'fresh only' END AS side,
       coalesce(f.detail, u.detail) AS detail
  FROM extension_shape f
  FULL JOIN upgraded u ON u.kind = f.kind AND u.name = f.name AND u.detail = f.detail
 WHERE f.kind IS NULL OR u.kind IS NULL
 ORDER BY 1, 2, 3;
\c contrib_regression
DROP DATABASE migrate_upgraded;
DROP DATABASE migrate_fresh;
