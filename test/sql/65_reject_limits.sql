-- Reject limits (issue 12): a table whose rejects are above its reject_warn
-- (default 0.01 of its rows read) gets a NOTICE, an event and a report
-- line; above its reject_limit (default 0.10) the table and the run fail
-- with 22000, naming the table, the ratio and its top reasons; its rows and
-- rejects stay.  Per-table options (migrate_table(..., options => ...))
-- override the plan's; "reject_limit": null turns the failure off.
\set SHOW_CONTEXT never
SET client_min_messages = warning;
\set regress_db :DBNAME
SET migrate.batch_size = 100;

\c migrate_src
SET client_min_messages = warning;
-- 1000 rows: v is NULL for id % 8 = 0 (125 rows), -1 for id % 8 = 4 (125
-- rows); parent_id = id % 100 (0 and 81 .. 99 have no parent: 200 rows)
CREATE TABLE rl_rows (id int PRIMARY KEY, v int, parent_id int);
INSERT INTO rl_rows
SELECT g, CASE WHEN g % 8 = 0 THEN NULL WHEN g % 8 = 4 THEN -1 ELSE g END, g % 100
  FROM generate_series(1, 1000) g;
CREATE TABLE rl_parents (id int PRIMARY KEY);
INSERT INTO rl_parents SELECT generate_series(1, 80);
\c :regress_db
SET client_min_messages = warning;
\set SHOW_CONTEXT never
SET migrate.batch_size = 100;
IMPORT FOREIGN SCHEMA public LIMIT TO (rl_rows, rl_parents) FROM SERVER src INTO legacy;

CREATE TABLE rl_a_low (id int PRIMARY KEY, v int);
CREATE TABLE rl_b_mid (id int PRIMARY KEY, v int);
CREATE TABLE rl_c_high (id int PRIMARY KEY, v int NOT NULL CHECK (v >= 0));
SELECT migrate_plan('rl', source_schema => 'legacy');
SELECT migrate_table('rl', 'rl_rows', 'rl_a_low');
SELECT migrate_table('rl', 'rl_rows', 'rl_b_mid');
SELECT migrate_table('rl', 'rl_rows', 'rl_c_high');
-- rl_a_low: 5 rows rejected (0.5 %)
SELECT migrate_rule('rl', 'rl_a_low', 'not_200', 'id % 200 <> 0');
-- rl_b_mid: 50 rows rejected (5 %); a warn rule's findings load and are no rejects
SELECT migrate_rule('rl', 'rl_b_mid', 'not_20', 'id % 20 <> 0');
SELECT migrate_rule('rl', 'rl_b_mid', 'v_small', 'v < 500', on_fail => 'warn');
-- rl_c_high: 125 NULL (23502), 125 negative (23514), 10 + 10 by two rules: 270 (27 %)
SELECT migrate_rule('rl', 'rl_c_high', 'not_one', 'id % 100 <> 1');
SELECT migrate_rule('rl', 'rl_c_high', 'not_three', 'id % 100 <> 3');

-- invalid limits are refused, for the plan and for a table
SELECT test_error($$SELECT migrate_plan('rl_bad', options => '{"reject_limit": 1.5}')$$);
SELECT test_error($$SELECT migrate_plan('rl_bad', options => '{"reject_limit": -0.1}')$$);
SELECT test_error($$SELECT migrate_plan('rl_bad', options => '{"reject_warn": "5%"}')$$);
SELECT test_error($$SELECT migrate_plan('rl_bad', options => '{"reject_warn": null}')$$);
SELECT test_error($$SELECT migrate_table('rl', 'rl_rows', 'rl_a_low', options => '{"reject_limit": "none"}')$$);
SELECT test_error($$SELECT migrate_table('rl', 'rl_rows', 'rl_a_low', options => '[0.5]')$$);
SELECT count(*) FROM migrate.plan WHERE plan_name = 'rl_bad';
SELECT target, options FROM migrate.table_map WHERE plan = 'rl' ORDER BY target::text;
-- a limit written into the catalog by hand is refused when the run starts
UPDATE migrate.table_map SET options = '{"reject_warn": 2}' WHERE plan = 'rl' AND target = 'rl_a_low'::regclass;
SELECT test_error($$SELECT migrate_run('rl', tables => ARRAY['rl_a_low'])$$);
UPDATE migrate.table_map SET options = '{}' WHERE plan = 'rl' AND target = 'rl_a_low'::regclass;
SELECT count(*) FROM migrate.run WHERE plan = 'rl';

-- under reject_warn, and between reject_warn and reject_limit: the run
-- succeeds; the caller gets one NOTICE, for rl_b_mid only (progress
-- NOTICEs left out: they hold timings)
\! psql -X -q -t -A -d contrib_regression -c "SET migrate.batch_size = 100" -c "SELECT migrate_run('rl', tables => ARRAY['rl_a_low', 'rl_b_mid']) IS NOT NULL AS ran" 2>&1 | grep -E 'of its rows|ERROR|^t$'
SELECT max(run_id) AS run FROM migrate.run WHERE plan = 'rl' \gset
SELECT state, error FROM migrate.run WHERE run_id = :run;
SELECT * FROM test_counts(:run);
SELECT target, rows_warned, error FROM migrate.run_table WHERE run_id = :run ORDER BY target::text;
SELECT event, details FROM migrate.event WHERE run_id = :run ORDER BY event_id;
-- the report says so, as a percentage
SELECT l FROM regexp_split_to_table(migrate_report(:run), E'\n') l WHERE l LIKE '%of its rows were rejected%';

-- above the default reject_limit: the table and the run fail with 22000
SELECT regexp_replace(test_error($$SELECT migrate_run('rl', tables => ARRAY['rl_c_high'])$$),
                      'migrate_resume\(\d+\)', 'migrate_resume(N)');
SELECT max(run_id) AS run FROM migrate.run WHERE plan = 'rl' \gset
SELECT state, error FROM migrate.run WHERE run_id = :run;
SELECT * FROM test_counts(:run);
SELECT target, state, error FROM migrate.run_table WHERE run_id = :run;
SELECT kind, state FROM migrate.run_range WHERE run_id = :run ORDER BY range_no;
-- the good rows are loaded, the rejects kept: nothing lost
SELECT count(*) AS loaded, count(*) FILTER (WHERE v IS NULL OR v < 0 OR id % 100 IN (1, 3)) AS bad_loaded
  FROM rl_c_high;
SELECT reason, count(*) FROM migrate.reject WHERE run_id = :run GROUP BY 1 ORDER BY 1;
SELECT event, details FROM migrate.event WHERE run_id = :run ORDER BY event_id;
SELECT l FROM regexp_split_to_table(migrate_report(:run), E'\n') l
 WHERE l LIKE '%of its rows were rejected%' OR l LIKE '**FAILED**%';
-- resuming as it is judges the same totals again: it fails the same way
SELECT regexp_replace(test_error(format('SELECT migrate_resume(%s)', :run)), 'migrate_resume\(\d+\)', 'migrate_resume(N)');
SELECT state, resumes FROM migrate.run WHERE run_id = :run;
-- a per-table override lets it pass: the resumed run loads and rejects nothing again
SELECT migrate_table('rl', 'rl_rows', 'rl_c_high', options => '{"reject_limit": 0.3}');
SELECT options FROM migrate.table_map WHERE plan = 'rl' AND target = 'rl_c_high'::regclass;
SELECT migrate_resume(:run) = :run AS same_run;
SELECT state, error, resumes FROM migrate.run WHERE run_id = :run;
SELECT * FROM test_counts(:run);
SELECT count(*) AS loaded, count(DISTINCT id) AS distinct_ids FROM rl_c_high;
SELECT count(*) AS rejects, count(DISTINCT source_key) AS distinct_keys FROM migrate.reject WHERE run_id = :run;
SELECT event, details FROM migrate.event WHERE run_id = :run AND event_id >
       (SELECT max(event_id) FROM migrate.event WHERE run_id = :run AND event = 'run resumed')
 ORDER BY event_id;
-- options given again are merged into the table's
SELECT migrate_table('rl', 'rl_rows', 'rl_c_high', options => '{"reject_warn": 0.5}');
SELECT migrate_table('rl', 'rl_rows', 'rl_c_high');
SELECT options FROM migrate.table_map WHERE plan = 'rl' AND target = 'rl_c_high'::regclass;

-- "reject_limit": null in the plan's options: no failure (still a warning)
CREATE TABLE rl_d_off (id int PRIMARY KEY, v int NOT NULL CHECK (v >= 0));
SELECT migrate_plan('rl_off', source_schema => 'legacy', options => '{"reject_limit": null}');
SELECT migrate_table('rl_off', 'rl_rows', 'rl_d_off');
SELECT migrate_run('rl_off') AS run \gset
SELECT state, error FROM migrate.run WHERE run_id = :run;
SELECT * FROM test_counts(:run);
SELECT event, details FROM migrate.event WHERE run_id = :run ORDER BY event_id;

-- a dry run is judged the same way (and writes nothing)
SELECT migrate_plan('rl_dry', source_schema => 'legacy');
SELECT migrate_table('rl_dry', 'rl_rows', 'rl_d_off');
-- (the dry run's rejects name the temporary copy the rows went into)
SELECT regexp_replace(regexp_replace(test_error($$SELECT migrate_run('rl_dry', dry_run => true)$$),
                      'migrate_resume\(\d+\)', 'migrate_resume(N)'), 'migrate_dry_\d+', 'migrate_dry_N', 'g');
SELECT max(run_id) AS run FROM migrate.run WHERE plan = 'rl_dry' \gset
SELECT dry_run, state FROM migrate.run WHERE run_id = :run;
SELECT * FROM test_counts(:run);
SELECT count(*) AS rows_of_run_rl_off FROM rl_d_off;

-- orphans of a deferred foreign key are rejects of their table: judged
-- once its fk unit has run (200 of 1000 rows, 20 %)
CREATE TABLE rl_parent (id int PRIMARY KEY);
CREATE TABLE rl_child (id int PRIMARY KEY, parent_id int REFERENCES rl_parent);
SELECT migrate_plan('rl_fk', source_schema => 'legacy', options => '{"defer_indexes": true}');
SELECT migrate_table('rl_fk', 'rl_parents', 'rl_parent');
SELECT migrate_table('rl_fk', 'rl_rows', 'rl_child');
SELECT regexp_replace(test_error($$SELECT migrate_run('rl_fk')$$), 'migrate_resume\(\d+\)', 'migrate_resume(N)');
SELECT max(run_id) AS run FROM migrate.run WHERE plan = 'rl_fk' \gset
SELECT * FROM test_counts(:run);
SELECT target, kind, state FROM migrate.run_range WHERE run_id = :run ORDER BY target::text, range_no;
SELECT count(*) FROM rl_child;
SELECT conname, convalidated FROM pg_constraint WHERE conrelid = 'rl_child'::regclass AND contype = 'f';
-- "reject_limit": null for the table: the resumed run succeeds
SELECT migrate_table('rl_fk', 'rl_rows', 'rl_child', options => '{"reject_limit": null}');
SELECT migrate_resume(:run) = :run AS same_run;
SELECT state FROM migrate.run WHERE run_id = :run;
SELECT * FROM test_counts(:run);
SELECT count(*) FROM rl_child;
