-- Test fixtures: a source database reached through a postgres_fdw loopback
-- server, the extension, and helpers that show runs without volatile fields.
\set SHOW_CONTEXT never
SET client_min_messages = warning;
\set regress_db :DBNAME
DROP DATABASE IF EXISTS migrate_src;
CREATE DATABASE migrate_src;
\c migrate_src
SET client_min_messages = warning;
CREATE TABLE customers (id int PRIMARY KEY, name text, email text, country text,
                        status text, amount text, signup text);
INSERT INTO customers
SELECT g, 'Customer ' || g,
       CASE WHEN g % 50 = 0 THEN NULL ELSE 'C' || g || '@Example.COM' END,
       (ARRAY['DE', 'FR', 'XX'])[g % 3 + 1],
       (ARRAY['A', 'I'])[g % 2 + 1],
       CASE WHEN g % 40 = 0 THEN 'n/a' ELSE (g * 1.25)::text END,
       '2020-01-' || lpad((g % 28 + 1)::text, 2, '0')
  FROM generate_series(1, 200) g;
CREATE TABLE orders (id int PRIMARY KEY, customer_id int, total numeric, placed date);
INSERT INTO orders
SELECT g, CASE WHEN g % 100 = 0 THEN 9999 ELSE g % 200 + 1 END, g * 2.5, date '2021-01-01' + g
  FROM generate_series(1, 500) g;
CREATE TABLE codes (code text PRIMARY KEY, label text);
INSERT INTO codes SELECT 'k' || lpad(g::text, 4, '0'), 'label ' || g FROM generate_series(1, 250) g;
CREATE TABLE pairs (a int, b int, v text, PRIMARY KEY (a, b));
INSERT INTO pairs SELECT g / 10, g % 10, 'v' || g FROM generate_series(0, 99) g;
CREATE TABLE nullkeys (id int, v text);
INSERT INTO nullkeys VALUES (1, 'one'), (2, 'two'), (NULL, 'lost?');
CREATE TABLE items (id bigint PRIMARY KEY, sku text, qty int, price numeric);
INSERT INTO items SELECT g * 7, 'SKU-' || g, g % 13, g * 0.5 FROM generate_series(1, 1000) g;
\c :regress_db
SET client_min_messages = warning;
CREATE EXTENSION postgres_fdw;
CREATE EXTENSION migrate;
DO $$
BEGIN
    EXECUTE format('CREATE SERVER src FOREIGN DATA WRAPPER postgres_fdw OPTIONS (host %L, port %L, dbname %L)',
                   split_part(current_setting('unix_socket_directories'), ',', 1),
                   current_setting('port'), 'migrate_src');
END $$;
CREATE USER MAPPING FOR CURRENT_USER SERVER src;
CREATE SCHEMA legacy;
IMPORT FOREIGN SCHEMA public FROM SERVER src INTO legacy;
SELECT count(*) FROM legacy.customers;

-- counts of a run, and whether rows_read = rows_written + rows_rejected + rows_skipped
CREATE FUNCTION test_counts(p_run bigint)
RETURNS TABLE (target regclass, state text, rows_read bigint, rows_written bigint,
               rows_rejected bigint, rows_skipped bigint, balanced boolean)
LANGUAGE sql AS $$
    SELECT target, state, rows_read, rows_written, rows_rejected, rows_skipped,
           rows_read = rows_written + rows_rejected + rows_skipped
      FROM migrate.run_table WHERE run_id = p_run ORDER BY load_order
$$;

-- the SQLSTATE, message and hint of an error, or 'ok'
CREATE FUNCTION test_error(p_sql text)
RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    hint text;
BEGIN
    EXECUTE p_sql;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS hint = PG_EXCEPTION_HINT;
    RETURN SQLSTATE || ': ' || SQLERRM || CASE WHEN hint <> '' THEN ' HINT: ' || hint ELSE '' END;
END;
$$;
