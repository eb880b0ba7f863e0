--
-- A real schema from MySQL, end to end, as a new user would migrate it:
-- the sakila-shaped database mini_sakila (test/data/mini_sakila.sql, loaded
-- into MariaDB by test/mariadb/start.sh) into a pagila-shaped target that
-- a DBA wrote by hand: a foreign-key cycle (store <-> staff, both NOT NULL),
-- a self-reference (staff.reports_to), ENUM into an enum type, SET into
-- text[], YEAR into a domain, unsigned integers, a 200 KB blob, a NOT NULL
-- tsvector column a BEFORE INSERT trigger fills, defaults.  Only
-- migrate_plan + migrate_automap + migrate_run; then every table is
-- compared with the oracle MariaDB computed over its own rows (row count
-- and md5 of a canonical text of every row), and every constraint must be
-- back and validated.
--
\set SHOW_CONTEXT never
SET client_min_messages = warning;
-- the canonical lines below print timestamps as MariaDB does
SET datestyle = ISO, YMD;
\set mariadb_port 3307
\getenv mariadb_port MIGRATE_MARIADB_PORT
CREATE EXTENSION IF NOT EXISTS mysql_fdw;
CREATE SERVER sakila_src FOREIGN DATA WRAPPER mysql_fdw
    OPTIONS (host '127.0.0.1', port :'mariadb_port');
CREATE USER MAPPING FOR CURRENT_USER SERVER sakila_src
    OPTIONS (username 'migrate', password 'migrate');

CREATE SCHEMA sakila;
SET search_path = sakila, public;
CREATE TYPE mpaa_rating AS ENUM ('G', 'PG', 'PG-13', 'R', 'NC-17');
CREATE DOMAIN year AS integer CHECK (VALUE >= 1901 AND VALUE <= 2155);
CREATE TABLE language (
    language_id integer PRIMARY KEY, name character(20) NOT NULL,
    last_update timestamp NOT NULL DEFAULT now());
CREATE TABLE country (
    country_id integer PRIMARY KEY, country text NOT NULL,
    last_update timestamp NOT NULL DEFAULT now());
CREATE TABLE city (
    city_id integer PRIMARY KEY, city text NOT NULL,
    country_id integer NOT NULL REFERENCES country,
    last_update timestamp NOT NULL DEFAULT now());
CREATE TABLE address (
    address_id integer PRIMARY KEY, address text NOT NULL, address2 text,
    district text NOT NULL, city_id integer NOT NULL REFERENCES city,
    postal_code text, phone text NOT NULL,
    last_update timestamp NOT NULL DEFAULT now());
CREATE TABLE store (
    store_id integer PRIMARY KEY, manager_staff_id integer NOT NULL UNIQUE,
    address_id integer NOT NULL REFERENCES address,
    last_update timestamp NOT NULL DEFAULT now());
CREATE TABLE staff (
    staff_id integer PRIMARY KEY, first_name text NOT NULL, last_name text NOT NULL,
    address_id integer NOT NULL REFERENCES address, email text,
    store_id integer NOT NULL REFERENCES store, reports_to integer REFERENCES staff,
    active boolean NOT NULL DEFAULT true, username text NOT NULL, password text,
    last_update timestamp NOT NULL DEFAULT now(), picture bytea);
ALTER TABLE store ADD CONSTRAINT store_manager_staff_id_fkey
    FOREIGN KEY (manager_staff_id) REFERENCES staff;
CREATE TABLE customer (
    customer_id integer PRIMARY KEY, store_id integer NOT NULL REFERENCES store,
    first_name text NOT NULL, last_name text NOT NULL, email text,
    address_id integer NOT NULL REFERENCES address, activebool boolean NOT NULL DEFAULT true,
    create_date date NOT NULL DEFAULT CURRENT_DATE, last_update timestamp DEFAULT now(),
    active boolean);
CREATE TABLE film (
    film_id integer PRIMARY KEY, title text NOT NULL, description text,
    release_year year, language_id integer NOT NULL REFERENCES language,
    original_language_id integer REFERENCES language,
    rental_duration smallint NOT NULL DEFAULT 3, rental_rate numeric(4,2) NOT NULL DEFAULT 4.99,
    length smallint, replacement_cost numeric(5,2) NOT NULL DEFAULT 19.99,
    rating mpaa_rating DEFAULT 'G', last_update timestamp NOT NULL DEFAULT now(),
    special_features text[], fulltext tsvector NOT NULL);
CREATE TRIGGER film_fulltext_trigger BEFORE INSERT OR UPDATE ON film
    FOR EACH ROW EXECUTE FUNCTION tsvector_update_trigger(fulltext, 'pg_catalog.english', title, description);
CREATE TABLE inventory (
    inventory_id integer PRIMARY KEY, film_id integer NOT NULL REFERENCES film,
    store_id integer NOT NULL REFERENCES store, last_update timestamp NOT NULL DEFAULT now());
CREATE TABLE rental (
    rental_id integer PRIMARY KEY, rental_date timestamp NOT NULL,
    inventory_id integer NOT NULL REFERENCES inventory, customer_id integer NOT NULL REFERENCES customer,
    return_date timestamp, staff_id integer NOT NULL REFERENCES staff,
    last_update timestamp NOT NULL DEFAULT now(),
    UNIQUE (rental_date, inventory_id, customer_id));
CREATE TABLE payment (
    payment_id integer PRIMARY KEY, customer_id integer NOT NULL REFERENCES customer,
    staff_id integer NOT NULL REFERENCES staff, rental_id integer REFERENCES rental ON DELETE SET NULL,
    amount numeric(5,2) NOT NULL, payment_date timestamp NOT NULL);
RESET search_path;

-- plan, automap, check, run: nothing else
CREATE SCHEMA sakila_src;
SELECT migrate_plan('sakila', source_server => 'sakila_src', source_schema => 'sakila_src',
                    target_schema => 'sakila', options => '{"remote_schema": "mini_sakila"}');
SELECT action, count(*) FROM migrate_automap('sakila') GROUP BY action ORDER BY action;
-- the casts automap chose for the MySQL-only types
SELECT target, column_name, expr FROM migrate.column_map
 WHERE plan = 'sakila' AND column_name IN ('release_year', 'rating', 'special_features', 'picture', 'active')
 ORDER BY target::text, column_name;
SELECT severity, table_name, column_name, message FROM migrate_check('sakila')
 WHERE severity <> 'warning' OR message NOT LIKE 'source relation is not mapped%'
 ORDER BY severity, table_name, message;
SELECT migrate_run('sakila', parallel => 2) > 0 AS ran;
SELECT state, error FROM migrate.run WHERE plan = 'sakila';
SELECT target, state, rows_read, rows_written, rows_rejected
  FROM migrate.run_table WHERE run_id = (SELECT max(run_id) FROM migrate.run WHERE plan = 'sakila')
 ORDER BY target::text;
SELECT reason, message, count(*) FROM migrate.reject
 WHERE run_id IN (SELECT run_id FROM migrate.run WHERE plan = 'sakila') GROUP BY 1, 2 ORDER BY 1, 2;
-- the cycle's and the self-reference's constraints came back as fk units,
-- after both of their tables; no batch needed bisection
SELECT u.target, u.ref_target, u.state, u.definition ~ 'VALIDATE CONSTRAINT' AS validated
  FROM migrate.run_range u
 WHERE u.run_id = (SELECT max(run_id) FROM migrate.run WHERE plan = 'sakila') AND u.kind = 'fk'
 ORDER BY u.target::text, u.range_no;
SELECT sum(bisect_steps) AS bisect_steps FROM migrate.run_table
 WHERE run_id = (SELECT max(run_id) FROM migrate.run WHERE plan = 'sakila');

-- every table against MariaDB's own oracle
CREATE FOREIGN TABLE sakila_src_oracle (table_name text, row_count integer, md5 text)
    SERVER sakila_src OPTIONS (dbname 'mini_sakila', table_name 'oracle');
CREATE TEMP VIEW target_lines (table_name, k, line) AS
          SELECT 'language', language_id, concat_ws('|', language_id, rtrim(name), last_update) FROM sakila.language
UNION ALL SELECT 'country', country_id, concat_ws('|', country_id, country, last_update) FROM sakila.country
UNION ALL SELECT 'city', city_id, concat_ws('|', city_id, city, country_id, last_update) FROM sakila.city
UNION ALL SELECT 'address', address_id, concat_ws('|', address_id, address, district, city_id, postal_code, phone, last_update) FROM sakila.address
UNION ALL SELECT 'store', store_id, concat_ws('|', store_id, manager_staff_id, address_id, last_update) FROM sakila.store
UNION ALL SELECT 'staff', staff_id, concat_ws('|', staff_id, first_name, last_name, address_id, md5(picture), length(picture), email, store_id, reports_to, active::int, username, last_update) FROM sakila.staff
UNION ALL SELECT 'customer', customer_id, concat_ws('|', customer_id, store_id, first_name, last_name, email, address_id, active::int, create_date, last_update) FROM sakila.customer
UNION ALL SELECT 'film', film_id, concat_ws('|', film_id, title, description, release_year, language_id, original_language_id, rental_duration, rental_rate, length, replacement_cost, rating, '{' || array_to_string(special_features, ',') || '}', last_update) FROM sakila.film
UNION ALL SELECT 'inventory', inventory_id, concat_ws('|', inventory_id, film_id, store_id, last_update) FROM sakila.inventory
UNION ALL SELECT 'rental', rental_id, concat_ws('|', rental_id, rental_date, inventory_id, customer_id, return_date, staff_id, last_update) FROM sakila.rental
UNION ALL SELECT 'payment', payment_id, concat_ws('|', payment_id, customer_id, staff_id, rental_id, amount, payment_date) FROM sakila.payment;
SELECT o.table_name, o.row_count, t.row_count = o.row_count AS same_count, t.md5 = o.md5 AS same_rows
  FROM sakila_src_oracle o
  LEFT JOIN (SELECT table_name, count(*)::int AS row_count, md5(string_agg(line, E'\n' ORDER BY k)) AS md5
               FROM target_lines GROUP BY table_name) t USING (table_name)
 ORDER BY o.table_name;

-- the cycle's and the self-reference's constraints are back and validated
SELECT conrelid::regclass, conname, convalidated FROM pg_constraint
 WHERE connamespace = 'sakila'::regnamespace AND contype = 'f' AND NOT convalidated;
SELECT count(*) AS foreign_keys FROM pg_constraint
 WHERE connamespace = 'sakila'::regnamespace AND contype = 'f';
-- the trigger filled the NOT NULL tsvector of every film; defaults applied
SELECT count(*) FILTER (WHERE fulltext <> ''::tsvector) AS films_indexed,
       count(*) FILTER (WHERE description IS NULL AND fulltext IS NOT NULL) AS films_without_description
  FROM sakila.film;
SELECT count(*) FILTER (WHERE activebool) AS activebool_default FROM sakila.customer;
