--
-- Issue 12 point 2: large MySQL/MariaDB BLOBs arrive whole.  mysql_fdw 2.8
-- ends its scan, without an error, at a bytea value over 8192 bytes, so
-- migrate_plan declares the foreign table without its long binary columns
-- and automap maps them to migrate._mysql_value(), which reads each value
-- through migrate's own MySQL connection (src/mysqlsrc.c).  Database
-- migrate_blobs12 of test/data/mysql_blobs12.sql: a MEDIUMBLOB of 200 kB,
-- a LONGBLOB of 1 MB, a BLOB of 64 kB, NULLs, short and empty values, and
-- 1,000 rows of 10 kB; MariaDB's own LENGTH() and MD5() are the oracle
-- (views DocCheck and ManyCheck, read through mysql_fdw: no BLOB in them).
--
\set SHOW_CONTEXT never
SET client_min_messages = warning;
\set mariadb_port 3307
\getenv mariadb_port MIGRATE_MARIADB_PORT
CREATE EXTENSION IF NOT EXISTS mysql_fdw;
CREATE SERVER t67_server FOREIGN DATA WRAPPER mysql_fdw
    OPTIONS (host '127.0.0.1', port :'mariadb_port');
CREATE USER MAPPING FOR CURRENT_USER SERVER t67_server
    OPTIONS (username 'migrate', password 'migrate');
CREATE SCHEMA t67;
CREATE TABLE t67.doc (id integer PRIMARY KEY, label text, med bytea, big bytea, mid bytea, tiny bytea);
CREATE TABLE t67.many (id integer PRIMARY KEY, data bytea NOT NULL);

-- the import declares Doc and Many without their long binary columns (the
-- NOTICE and the tables' comments name them); VARBINARY(16) stays
SET client_min_messages = notice;
SELECT migrate_plan('t67', source_server => 't67_server', source_schema => 't67_src',
                    target_schema => 't67', options => '{"remote_schema": "migrate_blobs12"}');
SET client_min_messages = warning;
SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod)
  FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0
 WHERE c.relnamespace = 't67_src'::regnamespace AND c.relname IN ('Doc', 'Many')
 ORDER BY c.relname, a.attnum;
SELECT c.relname, obj_description(c.oid, 'pg_class') FROM pg_class c
 WHERE c.relnamespace = 't67_src'::regnamespace AND c.relname IN ('Doc', 'Many') ORDER BY 1;

-- automap maps each long column to migrate._mysql_value by the table's key
SELECT target, source, column_name, source_column, expr, action
  FROM migrate_automap('t67') ORDER BY target::text NULLS LAST, column_name NULLS FIRST, source, action;
SELECT severity, table_name, column_name, message FROM migrate_check('t67') WHERE severity <> 'info';

-- the run starts (no 22001: no foreign column holds a long value) and
-- every row arrives whole
SELECT migrate_run('t67', tables => ARRAY['doc']) > 0 AS ran;
SELECT t.* FROM test_counts((SELECT max(run_id) FROM migrate.run WHERE plan = 't67')) t;
SELECT d.id, d.label, length(d.med) AS med_length, length(d.big) AS big_length, length(d.mid) AS mid_length,
       length(d.med) IS NOT DISTINCT FROM c."MedLength" AND md5(d.med) IS NOT DISTINCT FROM c."MedMd5" AS same_med,
       length(d.big) IS NOT DISTINCT FROM c."BigLength" AND md5(d.big) IS NOT DISTINCT FROM c."BigMd5" AS same_big,
       length(d.mid) IS NOT DISTINCT FROM c."MidLength" AND md5(d.mid) IS NOT DISTINCT FROM c."MidMd5" AS same_mid,
       md5(d.tiny) IS NOT DISTINCT FROM c."TinyMd5" AS same_tiny
  FROM t67.doc d FULL JOIN t67_src."DocCheck" c ON c."Id" = d.id ORDER BY coalesce(d.id, c."Id");
-- migrate_verify recomputes the mapped row on the source side, BLOBs
-- read again by migrate._mysql_value: the checksums agree
SELECT target, check_name, ok FROM migrate_verify('t67') ORDER BY target::text, check_name;
-- and migrate_diff finds no difference
SELECT count(*) AS differences FROM migrate_diff('t67', 'doc');
-- (one byte more at the end of the 1 MB value: both see it)
UPDATE t67.doc SET big = big || '\x00'::bytea WHERE id = 1;
SELECT target, check_name, ok FROM migrate_verify('t67') ORDER BY target::text, check_name;
SELECT key, kind, columns FROM migrate_diff('t67', 'doc');
UPDATE t67.doc SET big = substr(big, 1, 1048576) WHERE id = 1;
-- (NULL stays NULL, the empty value stays empty)
SELECT id, med IS NULL AS med_null, big = '' AS big_empty FROM t67.doc WHERE id IN (2, 4) ORDER BY id;

-- 1,000 rows of 10 kB: one MySQL query a row
SELECT migrate_run('t67', tables => ARRAY['many']) > 0 AS ran;
SELECT t.* FROM test_counts((SELECT max(run_id) FROM migrate.run WHERE plan = 't67')) t;
SELECT count(*) AS rows, count(*) FILTER (WHERE length(m.data) = c."Length" AND md5(m.data) = c."Md5") AS same
  FROM t67.many m FULL JOIN t67_src."ManyCheck" c ON c."Id" = m.id;
SELECT rows_read / greatest(extract(epoch FROM finished_at - started_at), 0.001) > 50 AS over_50_rows_a_second
  FROM migrate.run_table WHERE run_id = (SELECT max(run_id) FROM migrate.run WHERE plan = 't67');

-- the function itself: a text key is sent escaped (a quote in it finds
-- no row rather than every row), no row or a NULL key is an error
SELECT encode(migrate._mysql_value('t67_src."Doc"'::regclass, 'Big', 'Label', 'small'::text), 'hex') AS by_text_key;
SELECT test_error($$SELECT migrate._mysql_value('t67_src."Doc"'::regclass, 'Big', 'Label', 'x'' OR ''1''=''1'::text)$$);
-- an integer key is sent as a number (MySQL may compare a string with a
-- bigint as doubles, which cannot tell 2^53 and 2^53 + 1 apart)
SELECT "Id", encode(migrate._mysql_value('t67_src."Wide"'::regclass, 'Data', 'Id', "Id"), 'hex')
  FROM t67_src."Wide" ORDER BY "Id";
-- (a text key is sent as a string: MariaDB's index lookup converts it)
SELECT encode(migrate._mysql_value('t67_src."Wide"'::regclass, 'Data', 'Id', '9007199254740993'::text), 'hex') AS by_string;
SELECT test_error($$SELECT migrate._mysql_value('t67_src."Doc"'::regclass, 'Big', 'Id', 99)$$);
SELECT test_error($$SELECT migrate._mysql_value('t67_src."Doc"'::regclass, 'Big', 'Id', NULL::integer)$$);
SELECT test_error($$SELECT migrate._mysql_value('t67_src."Doc"'::regclass, 'Nope', 'Id', 1)$$);
SELECT test_error($$SELECT migrate._mysql_value('t67_src."Doc"'::regclass, 'Big', 'Nope', 1)$$);
SELECT test_error($$SELECT migrate._mysql_value('legacy.customers'::regclass, 'name', 'id', 1)$$);

-- privileges: SELECT on the foreign table and USAGE on its server, checked
-- before anything remote; the caller's own user mapping
CREATE ROLE regress_t67_reader;
GRANT USAGE ON SCHEMA t67_src TO regress_t67_reader;
SET ROLE regress_t67_reader;
SELECT test_error($$SELECT migrate._mysql_value('t67_src."Doc"'::regclass, 'Big', 'Id', 1)$$);
RESET ROLE;
GRANT SELECT ON t67_src."Doc" TO regress_t67_reader;
SET ROLE regress_t67_reader;
SELECT test_error($$SELECT migrate._mysql_value('t67_src."Doc"'::regclass, 'Big', 'Id', 1)$$);
RESET ROLE;
GRANT USAGE ON FOREIGN SERVER t67_server TO regress_t67_reader;
SET ROLE regress_t67_reader;
SELECT test_error($$SELECT migrate._mysql_value('t67_src."Doc"'::regclass, 'Big', 'Id', 1)$$);
RESET ROLE;
-- a non-superuser's mapping must carry a password
CREATE USER MAPPING FOR regress_t67_reader SERVER t67_server OPTIONS (username 'migrate');
SET ROLE regress_t67_reader;
SELECT test_error($$SELECT migrate._mysql_value('t67_src."Doc"'::regclass, 'Big', 'Id', 1)$$);
RESET ROLE;
ALTER USER MAPPING FOR regress_t67_reader SERVER t67_server OPTIONS (ADD password 'migrate');
SELECT "BigMd5" AS big_md5 FROM t67_src."DocCheck" WHERE "Id" = 1 \gset
SET ROLE regress_t67_reader;
SELECT md5(migrate._mysql_value('t67_src."Doc"'::regclass, 'Big', 'Id', 1)) = :'big_md5' AS reader_reads_whole;
RESET ROLE;
-- a wrong password (ALTER USER MAPPING drops the kept connection): a clear
-- FDW error that does not show the password
ALTER USER MAPPING FOR regress_t67_reader SERVER t67_server OPTIONS (SET password 'Secret-67-pw');
SET ROLE regress_t67_reader;
SELECT replace(test_error($$SELECT migrate._mysql_value('t67_src."Doc"'::regclass, 'Big', 'Id', 1)$$),
               'localhost', '127.0.0.1') AS wrong_password;
SELECT position('Secret-67' IN test_error($$SELECT migrate._mysql_value('t67_src."Doc"'::regclass, 'Big', 'Id', 1)$$)) AS password_shown;
RESET ROLE;

-- a DBA's own foreign table with the long column: automap and the run
-- still refuse it (mysql_fdw would lose rows silently)
CREATE FOREIGN TABLE t67_src.many_raw ("Id" integer, "Data" bytea) SERVER t67_server
    OPTIONS (dbname 'migrate_blobs12', table_name 'Many');
SELECT count(length("Data")) AS rows_mysql_fdw_returns FROM t67_src.many_raw;
DELETE FROM migrate.table_map WHERE plan = 't67' AND target = 't67.many'::regclass;
SELECT migrate_table('t67', 't67_src.many_raw', 'many');
SELECT migrate_column('t67', 'many', 'id', 's."Id"'), migrate_column('t67', 'many', 'data', 's."Data"');
SELECT action FROM migrate_automap('t67') WHERE target = 't67.many'::regclass AND column_name IS NULL;
SELECT test_error($$SELECT migrate_run('t67', tables => ARRAY['many'])$$);
-- automap declares a missing foreign table the same way (create_source)
DELETE FROM migrate.table_map WHERE plan = 't67' AND target = 't67.many'::regclass;
DROP FOREIGN TABLE t67_src."Many", t67_src.many_raw;
SELECT target, source, column_name, source_column, expr, action
  FROM migrate_automap('t67') WHERE coalesce(target::text, source) ~ '(Many|many)"?$' ORDER BY target::text NULLS FIRST, column_name NULLS FIRST;
SELECT obj_description('t67_src."Many"'::regclass, 'pg_class') AS many_comment;
TRUNCATE t67.many;
SELECT migrate_run('t67', tables => ARRAY['many']) > 0 AS ran;
SELECT count(*) AS rows, count(*) FILTER (WHERE length(m.data) = c."Length" AND md5(m.data) = c."Md5") AS same
  FROM t67.many m FULL JOIN t67_src."ManyCheck" c ON c."Id" = m.id;

-- clean up
DELETE FROM migrate.plan WHERE plan_name = 't67';
DROP USER MAPPING FOR regress_t67_reader SERVER t67_server;
DROP OWNED BY regress_t67_reader;
DROP ROLE regress_t67_reader;
DROP SCHEMA t67, t67_src CASCADE;
DROP SERVER t67_server CASCADE;
