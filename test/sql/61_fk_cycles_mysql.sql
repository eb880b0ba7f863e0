--
-- The foreign-key cycle of the sakila sample database (store.manager_staff_id
-- -> staff, staff.store_id -> store, both NOT NULL) from a real MariaDB
-- through mysql_fdw (database migrate_cycles of test/mariadb/start.sh),
-- loaded fully with plan + automap + run: the run drops the constraint
-- that closes the cycle and adds it back, validated, once both tables are
-- loaded; the orphans go to migrate.reject with 23503, and so do the staff
-- of a store that goes (refused by their own foreign key).
--
\set SHOW_CONTEXT never
SET client_min_messages = warning;
SET migrate.batch_size = 20;
\set mariadb_port 3307
\getenv mariadb_port MIGRATE_MARIADB_PORT
CREATE EXTENSION IF NOT EXISTS mysql_fdw;
CREATE SERVER cycles_src FOREIGN DATA WRAPPER mysql_fdw
    OPTIONS (host '127.0.0.1', port :'mariadb_port');
CREATE USER MAPPING FOR CURRENT_USER SERVER cycles_src
    OPTIONS (username 'migrate', password 'migrate');
CREATE SCHEMA cycles_src;
IMPORT FOREIGN SCHEMA migrate_cycles FROM SERVER cycles_src INTO cycles_src;
SELECT count(*) AS stores, (SELECT count(*) FROM cycles_src.staff) AS staff FROM cycles_src.store;

CREATE SCHEMA cycles;
CREATE TABLE cycles.store (
    store_id         integer PRIMARY KEY,
    manager_staff_id integer NOT NULL,
    address          text NOT NULL
);
CREATE TABLE cycles.staff (
    staff_id integer PRIMARY KEY,
    name     text NOT NULL,
    store_id integer NOT NULL CONSTRAINT fk_staff_store REFERENCES cycles.store
);
ALTER TABLE cycles.store ADD CONSTRAINT fk_store_staff
    FOREIGN KEY (manager_staff_id) REFERENCES cycles.staff;

SELECT migrate_plan('cycles', source_schema => 'cycles_src', target_schema => 'cycles');
SELECT target, count(*) AS columns FROM migrate_automap('cycles')
 WHERE column_name IS NOT NULL GROUP BY 1 ORDER BY target::text;
SELECT severity, table_name, column_name, message FROM migrate_check('cycles')
 WHERE severity <> 'warning';
SELECT migrate_run('cycles', parallel => 2) AS run \gset
SELECT state, error FROM migrate.run WHERE run_id = :run;
SELECT target, load_order, depth, state, rows_read, rows_written, rows_rejected
  FROM migrate.run_table WHERE run_id = :run ORDER BY load_order;
SELECT target, kind, ref_target, state FROM migrate.run_range
 WHERE run_id = :run AND kind <> 'load' ORDER BY target::text;
SELECT target, source_key, reason, message, detail FROM migrate.reject WHERE run_id = :run
 ORDER BY target::text, source_key::int;
-- both constraints are back and validated
SELECT conrelid::regclass, conname, pg_get_constraintdef(oid), convalidated
  FROM pg_constraint WHERE connamespace = 'cycles'::regnamespace AND contype = 'f' ORDER BY conrelid::regclass::text;
-- the oracle: MariaDB's rows (read through mysql_fdw) but the six orphans
SELECT (SELECT md5(string_agg(format('%s|%s|%s', store_id, manager_staff_id, address), ',' ORDER BY store_id))
          FROM cycles_src.store WHERE store_id NOT IN (41, 42, 43))
     = (SELECT md5(string_agg(format('%s|%s|%s', store_id, manager_staff_id, address), ',' ORDER BY store_id))
          FROM cycles.store) AS stores_match,
       (SELECT md5(string_agg(format('%s|%s|%s', staff_id, name, store_id), ',' ORDER BY staff_id))
          FROM cycles_src.staff WHERE staff_id NOT IN (121, 122, 123))
     = (SELECT md5(string_agg(format('%s|%s|%s', staff_id, name, store_id), ',' ORDER BY staff_id))
          FROM cycles.staff) AS staff_match,
       (SELECT count(*) FROM cycles.store) AS stores, (SELECT count(*) FROM cycles.staff) AS staff,
       (SELECT name FROM cycles.staff WHERE staff_id = 2) AS non_ascii;
