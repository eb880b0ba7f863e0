--
-- Issue 15: migrate_database(), pgloader's one command in SQL.  MariaDB
-- databases (test/mariadb/start.sh) into empty schemas, with nothing but
-- one call each: the tables are created from the MySQL catalog, every row
-- arrives as the source has it (compared with oracles the source did not
-- go through migrate for: the Chinook PostgreSQL script's own data,
-- MariaDB's LENGTH() and MD5() of every BLOB, mini_sakila's own md5 of a
-- canonical line per row), and verify passes.
--
\set SHOW_CONTEXT never
SET client_min_messages = warning;
SET datestyle = ISO, YMD;
\set mariadb_port 3307
\getenv mariadb_port MIGRATE_MARIADB_PORT
CREATE EXTENSION IF NOT EXISTS mysql_fdw;
CREATE SERVER t43_my FOREIGN DATA WRAPPER mysql_fdw OPTIONS (host '127.0.0.1', port :'mariadb_port');
CREATE USER MAPPING FOR CURRENT_USER SERVER t43_my OPTIONS (username 'migrate', password 'migrate');

-- ==== Chinook: 11 tables, 15,607 rows, into schema t43_chinook (created) ====
SELECT migrate_database('t43_chinook', 't43_my', remote_schema => 'Chinook',
                        target_schema => 't43_chinook') AS run_id \gset
SELECT state, mode, parallel FROM migrate.run WHERE run_id = :run_id;
-- the tables it created, their keys, indexes and foreign keys
SELECT c.relname, (SELECT count(*) FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary) AS pk,
       (SELECT count(*) FROM pg_index i WHERE i.indrelid = c.oid AND NOT i.indisprimary) AS indexes,
       (SELECT count(*) FROM pg_constraint f WHERE f.conrelid = c.oid AND f.contype = 'f' AND f.convalidated) AS fks
  FROM pg_class c WHERE c.relnamespace = 't43_chinook'::regnamespace AND c.relkind = 'r' ORDER BY 1;
SELECT sum(rows_written) AS rows, sum(rows_rejected) AS rejected FROM migrate.run_table WHERE run_id = :run_id;
SELECT count(*) AS checks, count(*) FILTER (WHERE NOT ok) AS failed FROM migrate.verification WHERE run_id = :run_id;
SELECT report IS NOT NULL AS reported FROM migrate.run WHERE run_id = :run_id;
\d t43_chinook.invoice
-- the oracle: the PostgreSQL script's own data, in its snake_case schema;
-- tables matched by name, columns by position
CREATE SCHEMA t43_expected;
SET search_path = t43_expected, public;
\! sh test/data/chinook/pg-script.sh data > test/results/t43_chinook_data.sql
\set ECHO none
\o /dev/null
\i test/results/t43_chinook_data.sql
\o
\set ECHO all
RESET search_path;
CREATE FUNCTION pg_temp.t43_diff(created regclass, expected regclass) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE n bigint;
BEGIN
    EXECUTE format('SELECT count(*) FROM ((SELECT * FROM %s EXCEPT ALL SELECT * FROM %s) UNION ALL (SELECT * FROM %s EXCEPT ALL SELECT * FROM %s)) d',
                   created, expected, expected, created) INTO n;
    RETURN n;
END $$;
SELECT c.relname AS created, e.relname AS expected,
       (SELECT count(*) FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0) AS columns,
       pg_temp.t43_diff(c.oid, e.oid) AS differing_rows
  FROM pg_class c
  JOIN pg_class e ON e.relnamespace = 't43_expected'::regnamespace AND e.relkind = 'r'
                 AND replace(e.relname, '_', '') = c.relname
 WHERE c.relnamespace = 't43_chinook'::regnamespace AND c.relkind = 'r'
 ORDER BY 1;
-- identity? Chinook's MySQL script has no AUTO_INCREMENT: none created
SELECT count(*) AS identity_columns FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
 WHERE c.relnamespace = 't43_chinook'::regnamespace AND a.attidentity <> '';

-- ==== BLOBs: MEDIUMBLOB 200 kB, LONGBLOB 1 MB, BLOB 64 kB, 1,000 rows of 10 kB ====
SELECT migrate_database('t43_blobs', 't43_my', remote_schema => 'migrate_blobs12',
                        target_schema => 't43_blobs') AS run_id \gset
SELECT state FROM migrate.run WHERE run_id = :run_id;
-- its two views got no table; its tables did
SELECT relname FROM pg_class WHERE relnamespace = 't43_blobs'::regnamespace AND relkind = 'r' ORDER BY 1;
\d t43_blobs.doc
CREATE FOREIGN TABLE t43_doccheck ("Id" int, "MedLength" bigint, "MedMd5" text, "BigLength" bigint, "BigMd5" text,
                                   "MidLength" bigint, "MidMd5" text, "TinyMd5" text)
    SERVER t43_my OPTIONS (dbname 'migrate_blobs12', table_name 'DocCheck');
CREATE FOREIGN TABLE t43_manycheck ("Id" int, "Length" bigint, "Md5" text)
    SERVER t43_my OPTIONS (dbname 'migrate_blobs12', table_name 'ManyCheck');
-- every value byte-identical (MariaDB's LENGTH and MD5 against ours)
SELECT d.id, length(d.med) AS med_length, length(d.big) AS big_length, length(d.mid) AS mid_length,
       c."MedLength" IS NOT DISTINCT FROM length(d.med) AND c."MedMd5" IS NOT DISTINCT FROM md5(d.med)
       AND c."BigLength" IS NOT DISTINCT FROM length(d.big) AND c."BigMd5" IS NOT DISTINCT FROM md5(d.big)
       AND c."MidLength" IS NOT DISTINCT FROM length(d.mid) AND c."MidMd5" IS NOT DISTINCT FROM md5(d.mid)
       AND c."TinyMd5" IS NOT DISTINCT FROM md5(d.tiny) AS identical
  FROM t43_blobs.doc d FULL JOIN t43_doccheck c ON c."Id" = d.id ORDER BY d.id;
SELECT count(*) AS rows, count(*) FILTER (WHERE c."Length" = length(m.data) AND c."Md5" = md5(m.data)) AS identical
  FROM t43_blobs.many m FULL JOIN t43_manycheck c ON c."Id" = m.id;
SELECT count(*) FILTER (WHERE NOT ok) AS verify_failed FROM migrate.verification WHERE run_id = :run_id;

-- ==== mini_sakila: sakila's shape (AUTO_INCREMENT, ENUM, SET, YEAR, BLOB,
-- a foreign-key cycle store <-> staff, a self-reference), its own oracle ====
SELECT migrate_database('t43_sakila', 't43_my', remote_schema => 'mini_sakila',
                        target_schema => 't43_sakila') AS run_id \gset
SELECT state FROM migrate.run WHERE run_id = :run_id;
\d t43_sakila.film
SELECT count(*) FILTER (WHERE NOT ok) AS verify_failed FROM migrate.verification WHERE run_id = :run_id;
SELECT count(*) AS foreign_keys, count(*) FILTER (WHERE NOT convalidated) AS not_validated FROM pg_constraint
 WHERE connamespace = 't43_sakila'::regnamespace AND contype = 'f';
-- identity sequences were moved past the loaded keys: a new row gets the next key
SELECT max(film_id) + 1 AS next_film_id FROM t43_sakila.film;
INSERT INTO t43_sakila.film (title, language_id) VALUES ('NEW FILM', 1) RETURNING film_id;
DELETE FROM t43_sakila.film WHERE title = 'NEW FILM';
CREATE FOREIGN TABLE t43_sakila_oracle (table_name text, row_count integer, md5 text)
    SERVER t43_my OPTIONS (dbname 'mini_sakila', table_name 'oracle');
CREATE TEMP VIEW t43_lines (table_name, k, line) AS
          SELECT 'language', language_id, concat_ws('|', language_id, name, last_update) FROM t43_sakila.language
UNION ALL SELECT 'country', country_id, concat_ws('|', country_id, country, last_update) FROM t43_sakila.country
UNION ALL SELECT 'city', city_id, concat_ws('|', city_id, city, country_id, last_update) FROM t43_sakila.city
UNION ALL SELECT 'address', address_id, concat_ws('|', address_id, address, district, city_id, postal_code, phone, last_update) FROM t43_sakila.address
UNION ALL SELECT 'store', store_id, concat_ws('|', store_id, manager_staff_id, address_id, last_update) FROM t43_sakila.store
UNION ALL SELECT 'staff', staff_id, concat_ws('|', staff_id, first_name, last_name, address_id, md5(picture), length(picture), email, store_id, reports_to, active::int, username, last_update) FROM t43_sakila.staff
UNION ALL SELECT 'customer', customer_id, concat_ws('|', customer_id, store_id, first_name, last_name, email, address_id, active::int, create_date::date, last_update) FROM t43_sakila.customer
UNION ALL SELECT 'film', film_id, concat_ws('|', film_id, title, description, release_year, language_id, original_language_id, rental_duration, rental_rate, length, replacement_cost, rating, '{' || array_to_string(special_features, ',') || '}', last_update) FROM t43_sakila.film
UNION ALL SELECT 'inventory', inventory_id, concat_ws('|', inventory_id, film_id, store_id, last_update) FROM t43_sakila.inventory
UNION ALL SELECT 'rental', rental_id, concat_ws('|', rental_id, rental_date, inventory_id, customer_id, return_date, staff_id, last_update) FROM t43_sakila.rental
UNION ALL SELECT 'payment', payment_id, concat_ws('|', payment_id, customer_id, staff_id, rental_id, amount, payment_date) FROM t43_sakila.payment;
SELECT o.table_name, o.row_count, t.row_count = o.row_count AS same_count, t.md5 = o.md5 AS same_rows
  FROM t43_sakila_oracle o
  LEFT JOIN (SELECT table_name, count(*)::int AS row_count, md5(string_agg(line, E'\n' ORDER BY k)) AS md5
               FROM t43_lines GROUP BY table_name) t USING (table_name)
 ORDER BY o.table_name;

-- ==== refused calls: a clear error, nothing left behind ====
-- the plan exists already
SELECT migrate_database('t43_chinook', 't43_my', remote_schema => 'Chinook');
-- no such server
SELECT migrate_database('t43_none', 't43_nosuch');
-- several databases and no remote_schema: the error lists them
SELECT migrate_database('t43_which', 't43_my');
SELECT count(*) AS left_behind FROM migrate.plan WHERE plan_name IN ('t43_none', 't43_which');
SELECT count(*) AS schemas_left FROM pg_namespace WHERE nspname IN ('t43_which_source', 't43_none_source');
-- in a transaction that has written: the job could not see it
BEGIN;
CREATE TABLE t43_uncommitted (i int);
SELECT migrate_database('t43_tx', 't43_my', remote_schema => 'Chinook');
ROLLBACK;
-- bad arguments
SELECT migrate_database('t43_p', 't43_my', remote_schema => 'Chinook', parallel => 0);
SELECT migrate_database(NULL, 't43_my');
-- a source database that does not exist: the import fails, nothing is created
SELECT migrate_database('t43_gone', 't43_my', remote_schema => 'no_such_db', target_schema => 't43_gone');
SELECT count(*) AS left_behind FROM migrate.plan WHERE plan_name = 't43_gone';
SELECT count(*) AS tables_left FROM pg_class WHERE relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = 't43_gone');

-- ==== migrate_check reviews what create_missing would create ====
CREATE SCHEMA t43_review_tgt;
SELECT migrate_plan('t43_review', source_server => 't43_my', source_schema => 't43_review_src',
                    target_schema => 't43_review_tgt', options => '{"remote_schema": "migrate_types"}');
SELECT severity, table_name, column_name, message FROM migrate_check('t43_review')
 WHERE message LIKE 'migrate_automap(%' ORDER BY table_name, column_name NULLS FIRST, message;
-- nothing was created by the review
SELECT count(*) AS created_by_review FROM pg_class WHERE relnamespace = 't43_review_tgt'::regnamespace;
-- what automap creates is what the review said
SELECT target, column_name, action, expr FROM migrate_automap('t43_review', create_missing => true)
 WHERE action ~ 'created' ORDER BY target::text, column_name NULLS FIRST, action;
-- a second call creates nothing more and keeps the mappings
SELECT count(*) FILTER (WHERE action ~ 'created') AS created_again,
       count(*) FILTER (WHERE action = 'table mapping kept') AS kept
  FROM migrate_automap('t43_review', create_missing => true);

-- ==== who may do what: migrate_database runs as its caller ====
CREATE ROLE regress_t43_alice;
CREATE ROLE regress_t43_mallory;
GRANT CREATE ON DATABASE :"DBNAME" TO regress_t43_alice, regress_t43_mallory;
GRANT USAGE ON FOREIGN SERVER t43_my TO regress_t43_alice;
CREATE USER MAPPING FOR regress_t43_alice SERVER t43_my OPTIONS (username 'migrate', password 'migrate');
SET ROLE regress_t43_alice;
SELECT migrate_database('t43_alice', 't43_my', remote_schema => 'Chinook', target_schema => 't43_alice') > 0 AS ran;
RESET ROLE;
-- the plan, the schemas and the tables are alice's; no row was rejected
SELECT plan_name, owner FROM migrate.plan WHERE plan_name = 't43_alice';
SELECT DISTINCT pg_get_userbyid(c.relowner) AS table_owner, count(*) AS tables
  FROM pg_class c WHERE c.relnamespace = 't43_alice'::regnamespace AND c.relkind = 'r' GROUP BY 1;
SELECT nspname, pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname IN ('t43_alice', 't43_alice_source') ORDER BY 1;
SELECT sum(rows_written) AS rows, sum(rows_rejected) AS rejected FROM migrate.run_table
 WHERE run_id = (SELECT max(run_id) FROM migrate.run WHERE plan = 't43_alice');
-- mallory: no USAGE on the server, no mapping: refused, nothing created
SET ROLE regress_t43_mallory;
SELECT migrate_database('t43_mallory', 't43_my', remote_schema => 'Chinook', target_schema => 't43_mallory');
-- alice's plan is invisible to mallory, and so a second plan of that name is refused
SELECT count(*) AS alice_plans_seen FROM migrate.plan WHERE plan_name = 't43_alice';
SELECT migrate_database('t43_alice', 't43_my', remote_schema => 'Chinook', target_schema => 't43_mallory');
-- into alice's schema: not mallory's to create in
SELECT migrate._create_missing('t43_alice');
SELECT migrate._database_prepare('t43_x', 't43_my', 'Chinook', 't43_alice');
RESET ROLE;
SELECT count(*) AS mallory_plans FROM migrate.plan WHERE owner = 'regress_t43_mallory'::regrole;
SELECT count(*) AS mallory_schemas FROM pg_namespace WHERE nspowner = 'regress_t43_mallory'::regrole;
-- clean up the roles (the cluster's roles are shared by the tests)
SELECT migrate_drop_plan('t43_alice');
DROP SCHEMA t43_alice, t43_alice_source CASCADE;
DROP USER MAPPING FOR regress_t43_alice SERVER t43_my;
REVOKE USAGE ON FOREIGN SERVER t43_my FROM regress_t43_alice;
REVOKE CREATE ON DATABASE :"DBNAME" FROM regress_t43_alice, regress_t43_mallory;
DROP ROLE regress_t43_alice, regress_t43_mallory;
