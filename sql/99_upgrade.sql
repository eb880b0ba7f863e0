--
-- Upgrade: 0.1 updated to the current version has exactly the objects (and
-- function definitions) of a fresh install of the current version.
--
CREATE DATABASE migrate_upgraded;
CREATE DATABASE migrate_fresh;
\c migrate_upgraded
SET client_min_messages = warning;
CREATE EXTENSION postgres_fdw;
CREATE EXTENSION migrate VERSION '0.1';
ALTER EXTENSION migrate UPDATE;
SELECT extversion FROM pg_extension WHERE extname = 'migrate';
\i sql/include/extension_shape.sql
SELECT count(*) > 0 AS has_objects, md5(string_agg(shape, E'\n' ORDER BY shape)) AS upgraded_shape
FROM extension_shape \gset
\c migrate_fresh
SET client_min_messages = warning;
CREATE EXTENSION postgres_fdw;
CREATE EXTENSION migrate;
SELECT extversion FROM pg_extension WHERE extname = 'migrate';
\i sql/include/extension_shape.sql
SELECT :'has_objects'::boolean AS upgraded_has_objects,
       md5(string_agg(shape, E'\n' ORDER BY shape)) = :'upgraded_shape' AS upgrade_equals_fresh
FROM extension_shape;
\c contrib_regression
DROP DATABASE migrate_upgraded;
DROP DATABASE migrate_fresh;
