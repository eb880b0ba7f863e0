-- migrate_report(): the run as Markdown (plan, who and when, duration,
-- rows/s per table, counts, a timeline of the units, throughput and reject
-- ratio per table, rejects by reason with example keys and as a pie,
-- warnings, verification, verdict), saved with the run.  Volatile fields
-- (times, durations, throughput, sizes, run ids) are masked; the charts'
-- times and sums are checked against the catalog below.
\set SHOW_CONTEXT never
SET client_min_messages = warning;
CREATE FUNCTION test_report(p_run bigint) RETURNS text LANGUAGE sql AS $$
    SELECT regexp_replace(regexp_replace(regexp_replace(regexp_replace(regexp_replace(regexp_replace(
           regexp_replace(regexp_replace(regexp_replace(regexp_replace(regexp_replace(
               migrate_report(p_run),
               '\| peak memory \| [^\n]*', '| peak memory | <kB> |', 'g'),
               '\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}', '<ms>', 'g'),
               '\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \S+', '<time>', 'g'),
               '\d+(\.\d+)? s \|', '<secs> |', 'g'),
               '\d+ rows/s', '<n> rows/s', 'g'),
               '(run |\| run \| |Run )\d+', '\1<id>', 'g'),
               'run => \d+', 'run => <id>', 'g'),
               'times in [^.]+\.', 'times in <zone>.', 'g'),
               '\| \d+ (bytes|kB|MB|GB) \| <secs> \| \d+ \|', '| <size> | <secs> | <n> |', 'g'),
               '\n    bar \[[0-9, ]+\]', E'\n    bar [<rows/s>]', 'g'),
               '\n    axisFormat [^\n]+', E'\n    axisFormat <format>', 'g')
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

-- the charts, read back: the gantt has a section per table and a bar per
-- unit with the unit's times; the pie adds up to the run's rejects; three
-- blocks (a run without rejects: two, see 88_report_charts)
\i test/sql/include/report_charts.sql
SELECT r.plan, g.*
  FROM migrate.run r, test_gantt_matches(r.run_id, migrate_report(r.run_id)) g
 WHERE r.run_id IN (SELECT max(run_id) FROM migrate.run WHERE plan IN ('verify', 'rules', 'rules_abort') GROUP BY plan)
 ORDER BY 1;
SELECT r.plan, (SELECT sum(n) FROM test_pie(migrate_report(r.run_id))) AS pie_total,
       (SELECT count(*) FROM migrate.reject j WHERE j.run_id = r.run_id AND NOT j.loaded) AS rejects,
       (SELECT count(*) FROM regexp_split_to_table(migrate_report(r.run_id), E'\n') l WHERE l = '```mermaid') AS blocks
  FROM migrate.run r
 WHERE r.run_id IN (SELECT max(run_id) FROM migrate.run WHERE plan IN ('verify', 'rules', 'rules_abort') GROUP BY plan)
 ORDER BY 1;
DROP FUNCTION test_gantt_matches(bigint, text), test_gantt(text), test_pie(text);
