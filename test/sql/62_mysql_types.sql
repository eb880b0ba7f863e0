--
-- Issue 12: a MySQL/MariaDB schema imported by migrate_plan(...,
-- source_server => ...) with ENUM, SET, YEAR, unsigned integers at their
-- maxima, zero dates, a 200 kB BLOB and a LONGTEXT of 1 MB (database
-- migrate_types12 of test/data/mysql_types12.sql), loaded with automap;
-- and (postgres_fdw source) target columns that automap leaves to the
-- target: generated, identity, default, filled by a BEFORE INSERT trigger.
--
\set SHOW_CONTEXT never
SET client_min_messages = warning;
\set mariadb_port 3307
\getenv mariadb_port MIGRATE_MARIADB_PORT
CREATE EXTENSION IF NOT EXISTS mysql_fdw;
CREATE SERVER t12_server FOREIGN DATA WRAPPER mysql_fdw
    OPTIONS (host '127.0.0.1', port :'mariadb_port');
CREATE USER MAPPING FOR CURRENT_USER SERVER t12_server
    OPTIONS (username 'migrate', password 'migrate');

-- what mysql_fdw 2.8 does by itself: IMPORT FOREIGN SCHEMA skips a table
-- with a SET column and fails on TINYBLOB (and YEAR)
CREATE SCHEMA t12_raw;
IMPORT FOREIGN SCHEMA migrate_types12 LIMIT TO ("Thing") FROM SERVER t12_server INTO t12_raw
    OPTIONS (import_enum_as_text 'true');
SELECT test_error($$IMPORT FOREIGN SCHEMA migrate_types12 LIMIT TO ("Blob") FROM SERVER t12_server INTO t12_raw
    OPTIONS (import_enum_as_text 'true')$$);
-- a bytea longer than 8192 bytes ends the scan without an error, whatever
-- max_blob_size says: of 4 rows, a scan reading "Data" returns none (row 1
-- has 204,800 bytes), and rows 2 and 3 but not 4 (8,194 bytes)
CREATE FOREIGN TABLE t12_raw.blob_raw ("Id" integer, "Data" bytea) SERVER t12_server
    OPTIONS (dbname 'migrate_types12', table_name 'Blob', max_blob_size '100000000');
SELECT count(*) AS rows FROM t12_raw.blob_raw;
SELECT "Id", length("Data") FROM t12_raw.blob_raw ORDER BY "Id";
SELECT "Id", length("Data") FROM t12_raw.blob_raw WHERE "Id" IN (2, 3, 4) ORDER BY "Id";
-- (and a text column of a non-string type, YEAR as text, reads no row)
CREATE FOREIGN TABLE t12_raw.year_text ("Id" bigint, "Made" text) SERVER t12_server
    OPTIONS (dbname 'migrate_types12', table_name 'Thing');
SELECT "Id", "Made" FROM t12_raw.year_text ORDER BY "Id";

-- migrate_plan imports the database: IMPORT FOREIGN SCHEMA for the tables
-- it can import, the others declared by migrate from the remote catalog
CREATE SCHEMA t12;
CREATE TYPE t12.kind AS ENUM ('small', 'medium', 'large');
CREATE TABLE t12.thing (
    id      bigint PRIMARY KEY,
    kind    t12.kind,
    flags   text[],
    made    integer,
    u8      smallint,
    u16     integer,
    u24     integer,
    u32     bigint,
    u64     numeric(20),
    s64     bigint,
    born    date,
    seen    timestamp,
    stamp   timestamp
);
CREATE TABLE t12.blob (id integer PRIMARY KEY, data bytea, body text, small bytea);
SET client_min_messages = notice;
SELECT migrate_plan('t12', source_server => 't12_server', source_schema => 't12_src',
                    target_schema => 't12', options => '{"remote_schema": "migrate_types12"}');
SET client_min_messages = warning;
SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod)
  FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0
 WHERE c.relnamespace = 't12_src'::regnamespace AND c.relname IN ('Thing', 'Blob', 'BlobHex')
 ORDER BY c.relname, a.attnum;

-- automap casts each column; the BLOB column the import left out of the
-- foreign table ("Data", LONGBLOB) is read whole by migrate._mysql_value
SELECT target, source, column_name, source_column, expr, action
  FROM migrate_automap('t12') ORDER BY target::text NULLS LAST, column_name NULLS FIRST, source, action;
SELECT obj_description('t12_src."Blob"'::regclass, 'pg_class') AS blob_comment;
-- a DBA's own foreign table with the BLOB would lose rows: automap says
-- so, and a run of it does not start
CREATE FOREIGN TABLE t12_raw.blob_dba ("Id" integer, "Data" bytea, "Body" text, "Small" bytea)
    SERVER t12_server OPTIONS (dbname 'migrate_types12', table_name 'Blob');
SELECT migrate_table('t12', 't12_raw.blob_dba', 'blob');
SELECT action FROM migrate_automap('t12') WHERE target = 't12.blob'::regclass AND column_name IS NULL;
SELECT test_error($$SELECT migrate_run('t12', tables => ARRAY['blob'])$$);
SELECT count(*) AS runs FROM migrate.run WHERE plan = 't12';
-- another way, a DBA's: the MySQL view BlobHex has the bytes as hex
-- digits (text of any length), one column mapping decodes them
SELECT migrate_table('t12', '"BlobHex"', 'blob');
SELECT migrate_column('t12', 'blob', 'data', 'decode(s."Data", ''hex'')');
SELECT count(*) AS via_hex, count(*) FILTER (WHERE md5(decode(h."Data", 'hex')) IS NOT DISTINCT FROM c."DataMd5") AS same_md5
  FROM t12_src."BlobHex" h JOIN t12_src."BlobCheck" c USING ("Id");
-- back to what automap made
SELECT migrate_table('t12', '"Blob"', 'blob');
SELECT migrate_column('t12', 'blob', 'data', NULL);
SELECT column_name, expr, action FROM migrate_automap('t12')
 WHERE target = 't12.blob'::regclass ORDER BY column_name NULLS FIRST;
SELECT * FROM migrate_check('t12');

SELECT migrate_run('t12') > 0 AS ran;
SELECT t.* FROM test_counts((SELECT max(run_id) FROM migrate.run WHERE plan = 't12')) t;
SELECT count(*) AS rejects FROM migrate.reject WHERE run_id = (SELECT max(run_id) FROM migrate.run WHERE plan = 't12');
-- every row arrives; unsigned maxima exact, ENUM and SET values exact, zero
-- dates (0000-00-00, 2020-00-15, 2020-05-00 ...) and the zero year NULL
SELECT (SELECT count(*) FROM t12_src."Thing") AS source_rows, (SELECT count(*) FROM t12.thing) AS target_rows;
SELECT * FROM t12.thing ORDER BY id;
SELECT t.id, s."Born" AS mysql_born, t.born, s."Seen" AS mysql_seen, t.seen, s."Made" AS mysql_year, t.made
  FROM t12.thing t JOIN t12_src."Thing" s ON s."Id" = t.id ORDER BY t.id;
-- the BLOB arrives whole: length and md5 as MariaDB's LENGTH() and MD5()
SELECT b.id, length(b.data) AS data_length, length(b.data) IS NOT DISTINCT FROM c."DataLength" AS same_length,
       md5(b.data) IS NOT DISTINCT FROM c."DataMd5" AS same_md5,
       length(b.body) AS body_length, length(b.body) IS NOT DISTINCT FROM c."BodyLength" AS same_body_length,
       md5(b.body) IS NOT DISTINCT FROM c."BodyMd5" AS same_body_md5,
       md5(b.small) IS NOT DISTINCT FROM c."SmallMd5" AS same_small
  FROM t12.blob b FULL JOIN t12_src."BlobCheck" c ON c."Id" = b.id ORDER BY coalesce(b.id, c."Id");

-- a table to leave out of IMPORT whose name has a quote (mysql_fdw would
-- write it into its MySQL query unescaped): migrate declares every table
CREATE SCHEMA t12q;
SET client_min_messages = notice;
SELECT migrate_plan('t12q', source_server => 't12_server', source_schema => 't12q_src',
                    target_schema => 't12q', options => '{"remote_schema": "migrate_types12q"}');
SET client_min_messages = warning;
SELECT * FROM t12q_src."Bob's" ORDER BY 1;
SELECT * FROM t12q_src."Plain" ORDER BY 1;

--
-- Target defaults, identities, generated columns and BEFORE INSERT
-- triggers are the target's contract (postgres_fdw source legacy.customers:
-- id, name, email, country, status, amount, signup)
--
CREATE SCHEMA t62pg;
CREATE TABLE t62pg.customers (
    id           integer PRIMARY KEY,
    name         text,
    country      text GENERATED ALWAYS AS ('DE') STORED,   -- the source has a country: not mapped
    email_domain text GENERATED ALWAYS AS (split_part(email, '@', 2)) STORED,
    email        text,
    row_no       bigint GENERATED ALWAYS AS IDENTITY,
    loaded_by    text NOT NULL,                             -- the trigger fills it
    remark       text,                                      -- the trigger may set it
    loaded_at    timestamptz NOT NULL DEFAULT now()
);
CREATE FUNCTION t62pg.stamp() RETURNS trigger LANGUAGE plpgsql AS
$$ BEGIN NEW.loaded_by := 'trigger'; NEW.remark := 'r' || NEW.id; RETURN NEW; END $$;
CREATE TRIGGER stamp BEFORE INSERT ON t62pg.customers FOR EACH ROW EXECUTE FUNCTION t62pg.stamp();
SELECT migrate_plan('t62pg', source_schema => 'legacy', target_schema => 't62pg');
SELECT column_name, source_column, expr, action FROM migrate_automap('t62pg')
 WHERE target = 't62pg.customers'::regclass ORDER BY column_name NULLS FIRST;
SELECT column_name FROM migrate.column_map WHERE plan = 't62pg' ORDER BY 1;
SELECT severity, table_name, column_name, message FROM migrate_check('t62pg')
 WHERE table_name = 't62pg.customers';
SELECT migrate_run('t62pg', tables => ARRAY['customers']) > 0 AS ran;
SELECT t.* FROM test_counts((SELECT max(run_id) FROM migrate.run WHERE plan = 't62pg')) t;
SELECT count(*) AS rows, count(DISTINCT row_no) AS row_numbers, min(row_no), max(row_no),
       count(*) FILTER (WHERE c.country = 'DE') AS country_generated,
       count(*) FILTER (WHERE c.loaded_by = 'trigger' AND c.remark = 'r' || id) AS trigger_filled,
       -- 4 customers have no email
       count(*) FILTER (WHERE c.email_domain IS NOT DISTINCT FROM split_part(c.email, '@', 2)
                          AND c.email_domain <> '') AS domain_generated,
       count(*) FILTER (WHERE c.loaded_at IS NOT NULL) AS defaulted,
       count(*) FILTER (WHERE c.name = l.name AND c.email IS NOT DISTINCT FROM l.email) AS same_as_source
  FROM t62pg.customers c JOIN legacy.customers l USING (id);
