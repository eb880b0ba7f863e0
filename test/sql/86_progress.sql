--
-- Live progress of a waiting migrate_run(): migrate.progress_interval (the
-- caller's, in seconds; 0 turns the lines off) and the format of the lines
-- printed while a table loads.  The runs are made in a session of their own
-- (\! psql) so that their NOTICEs can be filtered: they hold timings.  The
-- source is slowed (10 ms a row through the mapping) so that each load lasts
-- about 3 s, well beyond an interval of 1 s.  That lines come DURING a load,
-- at a point fixed by a gate, is shown by test/t/017_progress.pl.
--
\set SHOW_CONTEXT never
SET client_min_messages = warning;

-- the setting: default 5 s, any role may set it, 0 to a day.  It exists
-- once the library is loaded (any migrate function loads it; a fresh
-- session here has called none yet)
LOAD 'migrate';
SHOW migrate.progress_interval;
SELECT name, setting, unit, context, vartype, min_val, max_val, boot_val
  FROM pg_settings WHERE name = 'migrate.progress_interval';
SET migrate.progress_interval = 0;
SHOW migrate.progress_interval;
SET migrate.progress_interval = '2min';
SHOW migrate.progress_interval;
SET migrate.progress_interval = 86400;
SHOW migrate.progress_interval;
RESET migrate.progress_interval;
SHOW migrate.progress_interval;
-- refused: negative, above a day, not a number, a unit that is no time
SELECT test_error($$SET migrate.progress_interval = -1$$);
SELECT test_error($$SET migrate.progress_interval = 86401$$);
SELECT test_error($$SET migrate.progress_interval = 'often'$$);
SELECT test_error($$SET migrate.progress_interval = '5MB'$$);
-- a role without any privilege may set it
CREATE ROLE regress_progress_user;
SET ROLE regress_progress_user;
SET migrate.progress_interval = 1;
SHOW migrate.progress_interval;
RESET ROLE;
RESET migrate.progress_interval;
DROP ROLE regress_progress_user;

-- a local source of 300 rows, analyzed (its row estimate is known), and a
-- view over it (a view has none); every 10th row is rejected by a rule
CREATE TABLE p86_src (id int PRIMARY KEY, v int);
INSERT INTO p86_src SELECT g, g FROM generate_series(1, 300) g;
ANALYZE p86_src;
CREATE VIEW p86_src_view AS SELECT id, v FROM p86_src;
CREATE FUNCTION p86_slow(x int) RETURNS int LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM pg_sleep(0.01);
    RETURN x;
END $$;
CREATE TABLE p86_t (id int PRIMARY KEY, v int);
CREATE TABLE p86_tv (id int PRIMARY KEY, v int);
SELECT migrate_plan('p86');
SELECT migrate_table('p86', 'p86_src', 'p86_t');
SELECT migrate_column('p86', 'p86_t', 'v', 'p86_slow(s.v)');
SELECT migrate_rule('p86', 'p86_t', 'not_tenth', 'id % 10 <> 0');
SELECT migrate_table('p86', 'p86_src_view', 'p86_tv');
SELECT migrate_column('p86', 'p86_tv', 'v', 'p86_slow(s.v)');
SELECT estimated FROM (SELECT nullif(reltuples, -1)::bigint AS estimated, relname
                         FROM pg_class WHERE relname IN ('p86_src', 'p86_src_view')) c
 ORDER BY relname;

-- interval 1 s: lines while p86_t loads.  Each line, its numbers made N and
-- its ETA X (they are timings), once:
\! psql -X -q -t -A -d contrib_regression -c "SET migrate.batch_size = 10" -c "SET migrate.progress_interval = 1" -c "SELECT migrate_run('p86', tables => ARRAY['p86_t']) IS NOT NULL AS ran" > /tmp/86_progress_a.txt 2>&1
\! grep '^NOTICE:  loading' /tmp/86_progress_a.txt | sed -E 's/ETA [^,]+/ETA X/; s/[0-9]+/N/g' | sort -u
-- ... and their numbers are consistent: rows done grow, never beyond the 300
-- estimated, the percent is done / 300, the rejects are done / 10 (one row in
-- every committed batch of 10 keys), and there is at least one line
\! sed -nE 's/^NOTICE:  loading p86_t: ([0-9]+) of ~300 rows \(([0-9.]+)%\), [0-9]+ rows\/s, ETA [^,]+, ([0-9]+) rejected$/\1 \2 \3/p' /tmp/86_progress_a.txt | awk '{ p = 100 * $1 / 300; if ($1 > 300 || $1 < prev || $2 - p > 0.06 || p - $2 > 0.06 || $3 != int($1 / 10)) bad++; prev = $1; n++ } END { print (n >= 1 && bad == 0) ? "progress lines consistent" : "inconsistent: " n " lines, " bad " bad" }'
-- the final line of the table stays, then the run's, then the result
\! grep -vE '^NOTICE:  loading' /tmp/86_progress_a.txt | sed -E 's/[0-9]+(\.[0-9]+)?/N/g'
SELECT count(*) AS loaded FROM p86_t;

-- a source with no row estimate (the view): rows done and the rate only
\! psql -X -q -t -A -d contrib_regression -c "SET migrate.batch_size = 10" -c "SET migrate.progress_interval = 1" -c "SELECT migrate_run('p86', tables => ARRAY['p86_tv']) IS NOT NULL AS ran" > /tmp/86_progress_b.txt 2>&1
\! grep '^NOTICE:  loading' /tmp/86_progress_b.txt | sed -E 's/[0-9]+/N/g' | sort -u
SELECT count(*) AS loaded FROM p86_tv;

-- interval 0: no line while the table loads, the final lines stay
TRUNCATE p86_t;
\! psql -X -q -t -A -d contrib_regression -c "SET migrate.batch_size = 10" -c "SET migrate.progress_interval = 0" -c "SELECT migrate_run('p86', tables => ARRAY['p86_t']) IS NOT NULL AS ran" > /tmp/86_progress_c.txt 2>&1
\! grep -c '^NOTICE:  loading' /tmp/86_progress_c.txt
\! sed -E 's/[0-9]+(\.[0-9]+)?/N/g' /tmp/86_progress_c.txt
SELECT count(*) AS loaded FROM p86_t;

\! rm -f /tmp/86_progress_a.txt /tmp/86_progress_b.txt /tmp/86_progress_c.txt
