-- Dry run: every row is read, mapped and validated against the rules and
-- the target's own constraints; no target row is written, rejects are kept.
\set SHOW_CONTEXT never
SET client_min_messages = warning;
CREATE TABLE dry_customer (id int PRIMARY KEY, name text, email text NOT NULL,
                           amount numeric CHECK (amount < 240));
SELECT migrate_plan('dry', source_schema => 'legacy');
SELECT migrate_table('dry', 'customers', 'dry_customer');
SELECT migrate_column('dry', 'dry_customer', 'amount', 's.amount::numeric');
SELECT migrate_rule('dry', 'dry_customer', 'not_french', 'email NOT LIKE ''%FR%''');
SET migrate.batch_size = 40;
SELECT migrate_run('dry', dry_run => true) AS run \gset
SELECT dry_run, state FROM migrate.run WHERE run_id = :run;
SELECT * FROM test_counts(:run);
SELECT reason, count(*) FROM migrate.reject WHERE run_id = :run GROUP BY 1 ORDER BY 1;
SELECT count(*) AS target_rows FROM dry_customer;
-- the real run finds the same
SELECT migrate_run('dry') AS real_run \gset
SELECT * FROM test_counts(:real_run);
SELECT (SELECT array_agg(reason || ':' || source_key ORDER BY reason, source_key) FROM migrate.reject WHERE run_id = :run)
     = (SELECT array_agg(reason || ':' || source_key ORDER BY reason, source_key) FROM migrate.reject WHERE run_id = :real_run)
       AS same_rejects;
SELECT count(*) AS target_rows FROM dry_customer;
-- the worker's temporary tables are gone with it
SELECT count(*) FROM pg_class WHERE relname LIKE 'migrate\_%' AND relpersistence = 't';
