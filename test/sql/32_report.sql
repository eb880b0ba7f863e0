-- migrate_report(): the run as Markdown (plan, who and when, duration,
-- rows/s per table, counts, rejects by reason with example keys, warnings,
-- verification, verdict), saved with the run.  Volatile fields (times,
-- durations, throughput, run ids) are masked.
\set SHOW_CONTEXT never
SET client_min_messages = warning;
CREATE FUNCTION test_report(p_run bigint) RETURNS text LANGUAGE sql AS $$
    SELECT regexp_replace(regexp_replace(regexp_replace(regexp_replace(regexp_replace(
               migrate_report(p_run),
               '\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \S+', '<time>', 'g'),
               '\d+(\.\d+)? s \|', '<secs> |', 'g'),
               '\d+ rows/s', '<n> rows/s', 'g'),
               '(run |\| run \| )\d+', '\1<id>', 'g'),
               'run => \d+', 'run => <id>', 'g')
$$;
\pset format unaligned
\pset tuples_only on
-- verified run (sql/30_verify.sql, repaired by sql/31_diff.sql): PASSED
SELECT test_report(max(run_id)) FROM migrate.run WHERE plan = 'verify';
-- rejects by reason with example keys, warnings, not verified
SELECT test_report(max(run_id)) FROM migrate.run WHERE plan = 'rules';
-- a failed run
SELECT test_report(max(run_id)) FROM migrate.run WHERE plan = 'rules_abort';
\pset format aligned
\pset tuples_only off
-- saved with the run
SELECT report = migrate_report(run_id) AS saved, report LIKE '# Migration report: plan "rules", run %' AS header
  FROM migrate.run WHERE run_id = (SELECT max(run_id) FROM migrate.run WHERE plan = 'rules');
