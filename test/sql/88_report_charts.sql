-- migrate_report()'s charts (0.8): Mermaid blocks GitHub and GitLab draw.
-- Labels are escaped (a table and a rule named with ':', '#', quotes, ';',
-- '%', ','), a sensitive table shows no value in them, a run without
-- rejects has no pie but a sentence, and the timeline is bounded (a run of
-- many units draws at most 10 bars per table, at most 30 tables, and says
-- what it drew as one bar).  Times are checked against the catalog, not
-- printed.
\set SHOW_CONTEXT never
SET client_min_messages = warning;

\i test/sql/include/report_charts.sql

-- ---- labels: an odd table name, an odd rule name, a sensitive column ----
CREATE SCHEMA rc_src;
CREATE TABLE rc_src.odd (id int PRIMARY KEY, secret text, v int);
INSERT INTO rc_src.odd SELECT g, 's3cr3t-' || g, CASE WHEN g % 10 = 0 THEN -g ELSE g END
  FROM generate_series(1, 200) g;
CREATE TABLE "rc odd:#1 ""q"";%,x" (id int PRIMARY KEY, secret text, v int);
SELECT migrate_plan('rc_odd', source_schema => 'rc_src');
SELECT migrate_table('rc_odd', 'odd', '"rc odd:#1 ""q"";%,x"');
SELECT migrate_rule('rc_odd', '"rc odd:#1 ""q"";%,x"', 'v: "positive" #1; 100%', 'v > 0');
SELECT migrate_sensitive('rc_odd', '"rc odd:#1 ""q"";%,x"', 'secret');
SELECT migrate_run('rc_odd') AS odd_run \gset
SELECT state FROM migrate.run WHERE run_id = :odd_run;
SELECT migrate_report(:odd_run) AS report \gset
-- the escaping: every character but letters, digits, space, _ . - as #code;
SELECT migrate._mermaid_label('rc odd:#1 "q";%,x') AS table_label,
       migrate._mermaid_label('v: "positive" #1; 100%') AS rule_label,
       migrate._mermaid_label(E'new\nline') AS newline, migrate._mermaid_label('Größe_1.a-b') AS letters,
       migrate._mermaid_label('') AS empty, migrate._mermaid_label(NULL) AS null_in;
SELECT p.provolatile, p.proconfig FROM pg_proc p WHERE p.oid = 'migrate._mermaid_label(text)'::regprocedure;
-- three blocks: gantt, xychart, pie; each line of them as the charts need
SELECT count(*) FILTER (WHERE line = '```mermaid') AS blocks,
       count(*) FILTER (WHERE line IN ('gantt', 'xychart-beta', 'pie showData')) AS kinds
  FROM regexp_split_to_table(:'report', E'\n') line;
SELECT regexp_replace(line, 'Run \d+', 'Run N') FROM regexp_split_to_table(:'report', E'\n') line
 WHERE line ~ '^    (section|x-axis|title)' OR line ~ '^    "';
SELECT * FROM test_gantt_matches(:odd_run, :'report');
-- the pie adds up to the run's rejects
SELECT (SELECT sum(n) FROM test_pie(:'report')) AS pie_total,
       (SELECT count(*) FROM migrate.reject WHERE run_id = :odd_run AND NOT loaded) AS rejects;
-- no value of the sensitive table anywhere: its reject messages are '***'
SELECT :'report' ~ 's3cr3t' AS shows_secret;
SELECT line FROM regexp_split_to_table(:'report', E'\n') line WHERE line LIKE '| "rc odd%| v: %';
-- the throughput table: rows read, (size, time, rows/s), rejected, reject ratio
SELECT regexp_replace(line, '^(\| .+ \| \d+ \| )\d+ (bytes|kB) \| \d+\.\d+ s \| \d+( \| \d+ \| [0-9.]+% \|)$',
                      '\1<size> | <secs> | <n>\3') AS line
  FROM regexp_split_to_table(:'report', E'\n') line
 WHERE line ~ '^## Throughput|^\| table \| rows read \||^\| "rc odd.* \| \d+ \| [^|]+ \| [^|]+ \| [^|]+ \| \d+ \| [0-9.]+% \|$';

-- ---- a run without rejects: no pie, a sentence ----
CREATE TABLE rc_clean (id int PRIMARY KEY, v int);
SELECT migrate_plan('rc_clean', source_schema => 'rc_src');
SELECT migrate_table('rc_clean', 'odd', 'rc_clean');
SELECT migrate_run('rc_clean') AS clean_run \gset
SELECT migrate_report(:clean_run) AS report \gset
SELECT count(*) FILTER (WHERE line = '```mermaid') AS blocks, count(*) FILTER (WHERE line = 'pie showData') AS pies
  FROM regexp_split_to_table(:'report', E'\n') line;
SELECT line FROM regexp_split_to_table(:'report', E'\n') line
 WHERE line LIKE '%rejected%' AND line NOT LIKE '| %';
SELECT * FROM test_gantt_matches(:clean_run, :'report');

-- ---- many units: 6 key ranges and 6 deferred indexes of one table ----
-- (an integer key is cut by arithmetic: 2 x parallel ranges, always)
SET migrate.batch_size = 50;
CREATE TABLE rc_src.big (id int PRIMARY KEY, a int, b int, c int, d int, e int, f int);
INSERT INTO rc_src.big SELECT g, g % 7, g % 11, g % 13, g % 17, g % 19, g % 23 FROM generate_series(1, 3000) g;
CREATE TABLE rc_big (LIKE rc_src.big INCLUDING ALL);
CREATE INDEX rc_big_a ON rc_big (a);
CREATE INDEX rc_big_b ON rc_big (b);
CREATE INDEX rc_big_c ON rc_big (c);
CREATE INDEX rc_big_d ON rc_big (d);
CREATE INDEX rc_big_e ON rc_big (e);
CREATE INDEX rc_big_f ON rc_big (f);
CREATE TABLE rc_small (LIKE rc_src.odd INCLUDING ALL);
SELECT migrate_plan('rc_many', source_schema => 'rc_src', options => '{"defer_indexes": true}');
SELECT migrate_table('rc_many', 'big', 'rc_big');
SELECT migrate_table('rc_many', 'odd', 'rc_small');
SELECT migrate_run('rc_many', parallel => 3) AS many_run \gset
RESET migrate.batch_size;
SELECT state FROM migrate.run WHERE run_id = :many_run;
SELECT target, kind, count(*) AS units FROM migrate.run_range WHERE run_id = :many_run
 GROUP BY 1, 2 ORDER BY 1::text, 2;
SELECT migrate_report(:many_run) AS report \gset
-- rc_big: 10 bars, then one for the rest ("N more units"), said after the block
SELECT section, count(*) AS bars, count(*) FILTER (WHERE label ~ '^\d+ more units$') AS summary_bars
  FROM test_gantt(:'report') GROUP BY 1 ORDER BY 1;
SELECT line FROM regexp_split_to_table(:'report', E'\n') line
 WHERE line LIKE 'Not drawn%' OR line LIKE '- table rc_big:%';
-- the summary bar spans the units it stands for
SELECT g.s = date_trunc('milliseconds', min(rr.started_at))::timestamp AS starts_with_first,
       g.e = date_trunc('milliseconds', max(rr.finished_at))::timestamp AS ends_with_last
  FROM test_gantt(:'report') g, migrate.run_range rr
 WHERE g.label ~ 'more units' AND rr.run_id = :many_run AND rr.target = 'rc_big'::regclass
   AND rr.range_no NOT IN (SELECT x.range_no FROM migrate.run_range x
                            WHERE x.run_id = :many_run AND x.target = 'rc_big'::regclass
                            ORDER BY x.started_at, x.range_no LIMIT 10)
 GROUP BY g.s, g.e;
-- at most 1 table and 3 units per table: the other table as "other tables"
SELECT section, label FROM test_gantt(array_to_string(migrate._report_timeline(:many_run, 'public', 1, 3), E'\n'));
SELECT line FROM unnest(migrate._report_timeline(:many_run, 'public', 1, 3)) line
 WHERE line LIKE '- %';
-- 11 bars of 12 units: the last one alone, still said
SELECT section, label FROM test_gantt(array_to_string(migrate._report_timeline(:many_run, 'public', 30, 11), E'\n'))
 WHERE label LIKE '%more%';
SELECT line FROM unnest(migrate._report_timeline(:many_run, 'public', 30, 11)) line
 WHERE line LIKE '- %';

DROP TABLE "rc odd:#1 ""q"";%,x", rc_clean, rc_big, rc_small;
DROP SCHEMA rc_src CASCADE;
DELETE FROM migrate.run WHERE plan IN ('rc_odd', 'rc_clean', 'rc_many');
DELETE FROM migrate.plan WHERE plan_name IN ('rc_odd', 'rc_clean', 'rc_many');
DROP FUNCTION test_gantt_matches(bigint, text), test_gantt(text), test_pie(text);
