-- Rows the target refuses (a cast error, NOT NULL, unique, foreign key and
-- check violations) go to migrate.reject with the SQLSTATE and message; the
-- rest of their batch loads.
\set SHOW_CONTEXT never
SET client_min_messages = warning;
CREATE TABLE te_country (code text PRIMARY KEY);
INSERT INTO te_country VALUES ('DE'), ('FR');
CREATE TABLE te_customer (
    id int PRIMARY KEY,
    name text,
    email text NOT NULL,                                -- 23502 for NULL emails
    country text REFERENCES te_country,                 -- 23503 for 'XX'
    amount numeric CHECK (amount < 240),                -- 23514 above
    signup_day int UNIQUE                               -- 23505 on repeats
);
SELECT migrate_plan('target_errors', source_schema => 'legacy', options => '{"reject_limit": null}');
SELECT migrate_table('target_errors', 'customers', 'te_customer');
SELECT migrate_column('target_errors', 'te_customer', 'amount', 's.amount::numeric');   -- 22P02 for 'n/a'
SELECT migrate_column('target_errors', 'te_customer', 'signup_day',
                      'CASE WHEN s.id <= 150 THEN s.id ELSE s.id % 7 END');
SET migrate.batch_size = 25;
SELECT migrate_run('target_errors') AS run \gset
SELECT * FROM test_counts(:run);
SELECT reason, count(*), min(message) AS example FROM migrate.reject WHERE run_id = :run
 GROUP BY 1 ORDER BY 1;
-- each refused row is rejected exactly once and not loaded; every other row loaded
SELECT count(*) AS rejected_rows, count(DISTINCT source_key) AS distinct_keys
  FROM migrate.reject WHERE run_id = :run;
SELECT count(*) FROM te_customer c JOIN migrate.reject r ON r.run_id = :run AND r.source_key::int = c.id;
SELECT count(*) + (SELECT count(*) FROM migrate.reject WHERE run_id = :run) AS accounted_for
  FROM te_customer;
-- the quarantined row keeps the source values, with the error detail
SELECT source_key, reason, source_row->>'amount' AS amount, detail
  FROM migrate.reject WHERE run_id = :run AND source_key IN ('3', '40', '50') ORDER BY source_key;
