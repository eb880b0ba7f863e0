-- Parallel runs: tables and key ranges spread over workers in foreign-key
-- order give the target a one-worker run gives; index deferral gives the
-- same rows, rejects and indexes as a load with the indexes in place.
\set SHOW_CONTEXT never
SET client_min_messages = warning;
SET migrate.batch_size = 60;

-- the same plan into two sets of tables: one worker, three workers
CREATE TABLE par1_customer (id int PRIMARY KEY, name text, email text);
CREATE TABLE par1_order (id int PRIMARY KEY, customer_id int REFERENCES par1_customer, total numeric);
CREATE INDEX par1_order_total ON par1_order (total);
CREATE TABLE par3_customer (LIKE par1_customer INCLUDING ALL);
CREATE TABLE par3_order (id int PRIMARY KEY, customer_id int REFERENCES par3_customer, total numeric);
CREATE INDEX par3_order_total ON par3_order (total);
SELECT migrate_plan('par1', source_schema => 'legacy');
SELECT migrate_table('par1', 'orders', 'par1_order');
SELECT migrate_table('par1', 'customers', 'par1_customer');
SELECT migrate_plan('par3', source_schema => 'legacy');
SELECT migrate_table('par3', 'orders', 'par3_order');
SELECT migrate_table('par3', 'customers', 'par3_customer');

SELECT migrate_run('par1', parallel => 1) AS run1 \gset
SELECT migrate_run('par3', parallel => 3) AS run3 \gset
SELECT * FROM test_counts(:run1);
SELECT * FROM test_counts(:run3);
SELECT state, parallel FROM migrate.run WHERE run_id = :run3;
-- the big table was cut into key ranges, each with its own checkpoint and count
SELECT target, count(*) AS ranges, sum(rows_read) AS rows_read, bool_and(state = 'succeeded') AS all_done,
       bool_and(source_count = rows_read) AS counted
  FROM migrate.run_range WHERE run_id = :run3 GROUP BY target ORDER BY target::text;
-- parents finished before any child range started
SELECT max(p.finished_at) <= min(c.started_at) AS parents_first
  FROM migrate.run_range p, migrate.run_range c
 WHERE p.run_id = :run3 AND c.run_id = :run3
   AND p.target = 'par3_customer'::regclass AND c.target = 'par3_order'::regclass;
-- same rows, same rejects (orders of customer 9999 violate the foreign key)
SELECT (SELECT count(*) FROM (SELECT * FROM par1_order EXCEPT SELECT * FROM par3_order) d) AS missing,
       (SELECT count(*) FROM (SELECT * FROM par3_order EXCEPT SELECT * FROM par1_order) d) AS extra;
SELECT run_id = :run1 AS one_worker, reason, count(*)
  FROM migrate.reject WHERE run_id IN (:run1, :run3) GROUP BY 1, 2 ORDER BY 1, 2;

-- index deferral: same plan, indexes and foreign key dropped during the load
CREATE TABLE def_customer (LIKE par1_customer INCLUDING ALL);
CREATE TABLE def_order (id int PRIMARY KEY, customer_id int CONSTRAINT def_order_customer_fk REFERENCES def_customer, total numeric);
CREATE INDEX def_order_total ON def_order (total);
CREATE INDEX def_order_customer ON def_order (customer_id, total);
CREATE TEMP TABLE def_before AS
SELECT indexrelid::regclass::text AS name, pg_get_indexdef(indexrelid) AS def
  FROM pg_index WHERE indrelid = 'def_order'::regclass;
SELECT migrate_plan('def', source_schema => 'legacy', options => '{"defer_indexes": true, "reject_limit": null}');
SELECT migrate_table('def', 'orders', 'def_order');
SELECT migrate_table('def', 'customers', 'def_customer');
SELECT migrate_run('def', parallel => 2) AS rund \gset
SELECT * FROM test_counts(:rund);
SELECT kind, state, count(*) FROM migrate.run_range WHERE run_id = :rund AND target = 'def_order'::regclass
 GROUP BY 1, 2 ORDER BY 1, 2;
-- the indexes are back, as they were; the foreign key is back and validated
SELECT (SELECT count(*) FROM def_before) AS before,
       (SELECT count(*) FROM def_before b JOIN pg_index i ON i.indexrelid = to_regclass(b.name)
         WHERE pg_get_indexdef(i.indexrelid) = b.def AND i.indisvalid) AS restored;
SELECT conname, convalidated FROM pg_constraint WHERE conrelid = 'def_order'::regclass AND contype = 'f';
-- the rows and the rejects are those of the load with indexes
SELECT (SELECT count(*) FROM (SELECT * FROM par1_order EXCEPT SELECT * FROM def_order) d) AS missing,
       (SELECT count(*) FROM (SELECT * FROM def_order EXCEPT SELECT * FROM par1_order) d) AS extra;
SELECT a.source_key, a.reason, a.message, a.detail,
       replace(a.detail, 'def_', 'par1_') = b.detail AS same_detail_as_with_indexes
  FROM migrate.reject a JOIN migrate.reject b USING (source_key, reason)
 WHERE a.run_id = :rund AND b.run_id = :run1 AND a.target = 'def_order'::regclass
 ORDER BY a.source_key::int;
SELECT message FROM migrate.reject WHERE run_id = :run1 AND source_key = '100';
-- a table that is not empty keeps its indexes
SELECT migrate_run('def', parallel => 2, tables => ARRAY['def_order']) AS rund2 \gset
SELECT kind, count(*) FROM migrate.run_range WHERE run_id = :rund2 GROUP BY 1;

-- progress views and status answer from any session
SELECT count(*) FROM migrate.progress;
SELECT run_state, target, table_state, rows_read, percent FROM migrate_status(:run3) ORDER BY target::text;

-- a text key is cut at its quantiles
CREATE TABLE par_code (code text PRIMARY KEY, label text);
SELECT migrate_plan('parcode', source_schema => 'legacy');
SELECT migrate_table('parcode', 'codes', 'par_code');
SELECT migrate_run('parcode', parallel => 3) AS runc \gset
SELECT * FROM test_counts(:runc);
SELECT range_no, lo, hi, rows_read, source_count = rows_read AS counted
  FROM migrate.run_range WHERE run_id = :runc ORDER BY range_no;
SELECT (SELECT count(*) FROM (SELECT * FROM legacy.codes EXCEPT SELECT * FROM par_code) d) AS missing,
       (SELECT count(*) FROM par_code) AS loaded;
