-- A plain run: same-shaped tables copied in foreign-key order, in several
-- batches, every counter balanced, the run and its events recorded.
\set SHOW_CONTEXT never
SET client_min_messages = warning;
-- a child that sorts before its parent: the run must still load the parent first
CREATE TABLE b_customer (id int PRIMARY KEY, name text, email text);
CREATE TABLE a_order (id int PRIMARY KEY, customer_id int REFERENCES b_customer,
                      total numeric, placed date);
CREATE TABLE c_item (id bigint PRIMARY KEY, sku text, qty int, price numeric);
SELECT migrate_plan('basic', source_schema => 'legacy');
SELECT migrate_table('basic', 'orders', 'a_order');
SELECT migrate_table('basic', 'customers', 'b_customer');
SELECT migrate_table('basic', 'items', 'c_item');
SET migrate.batch_size = 64;
SELECT migrate_run('basic') AS run \gset
SELECT plan, mode, dry_run, state, run_by = current_user AS run_by_me, error,
       finished_at >= started_at AS finished, batch_size, peak_memory_kb > 0 AS memory_sampled
  FROM migrate.run WHERE run_id = :run;
SELECT * FROM test_counts(:run);
SELECT target, load_order, batches, source_count, last_key FROM migrate.run_table
 WHERE run_id = :run ORDER BY load_order;
-- the FK refused the orders of customer 9999, and only those
SELECT target, source_key, reason FROM migrate.reject WHERE run_id = :run ORDER BY target, source_key::int;
SELECT count(*), sum(qty), sum(price) FROM c_item;
SELECT (SELECT count(*) FROM legacy.items) = (SELECT count(*) FROM c_item) AS same_count,
       (SELECT sum(hashtext(i::text)) FROM legacy.items i) = (SELECT sum(hashtext(c::text)) FROM c_item c) AS same_rows;
SELECT event FROM migrate.event WHERE run_id = :run ORDER BY event_id;
SELECT run_state, target, table_state, rows_read FROM migrate_status(:run);
-- no run is left in progress
SELECT count(*) FROM migrate.progress;
