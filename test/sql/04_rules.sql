-- Rules over the mapped row: reject quarantines the row, warn loads it and
-- keeps a finding, abort fails the run and loads nothing of that batch.
\set SHOW_CONTEXT never
SET client_min_messages = warning;
CREATE TABLE rule_customer (id int PRIMARY KEY, name text, email text, country text,
                            amount numeric);
SELECT migrate_plan('rules', source_schema => 'legacy', options => '{"reject_limit": null}');
SELECT migrate_table('rules', 'customers', 'rule_customer');
SELECT migrate_column('rules', 'rule_customer', 'amount', 'nullif(s.amount, ''n/a'')::numeric');
SELECT migrate_rule('rules', 'rule_customer', 'email_present', 'email IS NOT NULL');
SELECT migrate_rule('rules', 'rule_customer', 'known_country', 'country <> ''XX''');
SELECT migrate_rule('rules', 'rule_customer', 'amount_known', 'amount IS NOT NULL', on_fail => 'warn');
SET migrate.batch_size = 50;
SELECT migrate_run('rules') AS run \gset
SELECT * FROM test_counts(:run);
SELECT rows_warned FROM migrate.run_table WHERE run_id = :run;
SELECT reason, loaded, count(*) FROM migrate.reject WHERE run_id = :run GROUP BY 1, 2 ORDER BY 1, 2;
-- a rejected row is not in the target; a warned row is
SELECT source_key, reason, loaded, message, detail, source_row->>'email' AS email,
       EXISTS (SELECT 1 FROM rule_customer c WHERE c.id = r.source_key::int) AS in_target
  FROM migrate.reject r WHERE run_id = :run AND source_key IN ('40', '50', '80', '120') ORDER BY source_key::int, reason;
-- no rejected row was loaded, every warned row was
SELECT count(*) FROM rule_customer c
  JOIN migrate.reject r ON r.source_key::int = c.id AND r.run_id = :run AND NOT r.loaded;
SELECT count(*) = (SELECT count(*) FROM migrate.reject WHERE run_id = :run AND loaded)
  FROM rule_customer WHERE amount IS NULL;

-- abort: the run fails, naming the rule and the key; nothing of the batch loads
CREATE TABLE rule_abort (id int PRIMARY KEY, name text, email text);
SELECT migrate_plan('rules_abort', source_schema => 'legacy');
SELECT migrate_table('rules_abort', 'customers', 'rule_abort');
SELECT migrate_rule('rules_abort', 'rule_abort', 'email_required', 'email IS NOT NULL', on_fail => 'abort');
SET migrate.batch_size = 30;
SELECT test_error($$SELECT migrate_run('rules_abort')$$);
SELECT state FROM migrate.run WHERE plan = 'rules_abort';
-- batches before the failing one (ids 1..30) are committed with their checkpoint
SELECT count(*), max(id) FROM rule_abort;
SELECT state, rows_read, rows_written, last_key FROM migrate.run_table
 WHERE run_id = (SELECT max(run_id) FROM migrate.run WHERE plan = 'rules_abort');
