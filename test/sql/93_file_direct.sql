-- File sources loaded with their fields converted as COPY FROM converts
-- them (src/multiinsert.c, docs/architecture.md "Insert paths"): a table
-- whose every mapped column is a field as it is takes that path, said in
-- the run's events; the rows, counters and rejects (SQLSTATE, message) are
-- those of the SQL path (migrate.multi_insert off for the role the run
-- connects as is the oracle): typmods applied (numeric rounds, varchar too
-- long is an error while trailing spaces are cut, char pads, timestamp(0)
-- rounds), a domain's CHECK, arrays, NOT NULL, duplicate keys in a batch,
-- a field that does not cast, malformed lines, a dropped column, a column
-- left out.  A mapping that is an expression keeps the statement's own
-- conversion.  Such a table keeps no loaded checksum; verify re-reads.
\set SHOW_CONTEXT never
SET client_min_messages = warning;
SET datestyle = ISO, YMD;
SELECT '/tmp/migrate_regress_direct_' || current_setting('port') AS dir \gset
SELECT format('COPY (SELECT 1) TO PROGRAM %L', 'cat > /dev/null; rm -rf ' || :'dir' || ' && mkdir -p ' || :'dir') AS cmd \gset
:cmd;

-- 3,000 rows, the bad ones spread over the file (the header in another order than the table)
SELECT format($$COPY (
SELECT CASE WHEN g %% 900 = 0 THEN NULL ELSE 'n' || g END AS note,
       CASE WHEN g %% 700 = 0 THEN 7 ELSE g END AS id,                           -- 23505
       CASE WHEN g %% 500 = 0 THEN 'toolong' WHEN g %% 450 = 0 THEN 'ab      '
            ELSE 'c' || g %% 100 END AS code,                                     -- 22001; spaces cut
       CASE WHEN g %% 800 = 0 THEN 'x' ELSE (g * 1.005)::text END AS amount,      -- rounds; 22P02
       'y' AS flag,                                                               -- char(3) pads
       '2020-01-01 10:00:00.6'::text AS at,                                       -- timestamp(0) rounds
       CASE WHEN g %% 650 = 0 THEN '-1' ELSE (g %% 40 + 1)::text END AS qty,      -- domain CHECK: 23514
       '{' || g || ',2}' AS tags
  FROM generate_series(1, 3000) g) TO %L (FORMAT csv, HEADER)$$, :'dir' || '/items.csv') AS cmd \gset
:cmd;
-- every 250th line malformed (an extra field): a line error in both paths
SELECT format('COPY (SELECT 1) TO PROGRAM %L',
              'cat > /dev/null; awk ''NR > 1 && NR % 250 == 0 { $0 = $0 ",extra" } { print }'' '
              || :'dir' || '/items.csv > ' || :'dir' || '/dirty.csv') AS cmd \gset
:cmd;

CREATE DOMAIN fd_posint AS int CHECK (VALUE > 0);
CREATE FUNCTION fd_targets(s text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('CREATE SCHEMA %I', s);
    EXECUTE format('CREATE TABLE %I.item (id bigint PRIMARY KEY, gone int, code varchar(5), amount numeric(8,2),'
                   ' flag char(3), at timestamp(0), qty fd_posint, tags int[], note text NOT NULL, spare text)', s);
    EXECUTE format('ALTER TABLE %I.item DROP COLUMN gone', s);
    EXECUTE format('CREATE TABLE %I.shout (id bigint PRIMARY KEY, code text)', s);
    PERFORM migrate_plan(s, options => '{"reject_limit": null}');
END $$;
SELECT fd_targets('fd_direct'), fd_targets('fd_sql');
SELECT migrate_file(p, p || '.item', :'dir' || '/dirty.csv', source_table => p || '_items') IS NOT NULL AS mapped,
       migrate_file(p, p || '.shout', :'dir' || '/dirty.csv', source_table => p || '_shout') IS NOT NULL AS mapped,
       migrate_column(p, p || '.shout', 'code', 'upper(s.code)') IS NULL AS expression
  FROM unnest(ARRAY['fd_direct', 'fd_sql']) p;

SET migrate.batch_size = 400;
SELECT migrate_run('fd_direct') IS NOT NULL AS ran;
ALTER ROLE CURRENT_USER SET migrate.multi_insert = off;
SELECT migrate_run('fd_sql') IS NOT NULL AS ran;
ALTER ROLE CURRENT_USER RESET migrate.multi_insert;

-- which path each table took
SELECT r.plan, e.details FROM migrate.event e JOIN migrate.run r USING (run_id)
 WHERE e.event = 'insert path' AND r.plan IN ('fd_direct', 'fd_sql') ORDER BY 1, 2;

-- the same rows, the typmods applied
SELECT (SELECT count(*) FROM fd_direct.item) AS rows_direct, (SELECT count(*) FROM fd_sql.item) AS rows_sql,
       (SELECT md5(string_agg(t::text, ',' ORDER BY id)) FROM fd_direct.item t) =
       (SELECT md5(string_agg(t::text, ',' ORDER BY id)) FROM fd_sql.item t) AS same_rows,
       (SELECT md5(string_agg(t::text, ',' ORDER BY id)) FROM fd_direct.shout t) =
       (SELECT md5(string_agg(t::text, ',' ORDER BY id)) FROM fd_sql.shout t) AS same_shout;
SELECT id, code, length(code) AS code_len, amount, flag || '|' AS flag, at, qty, tags, note, spare
  FROM fd_direct.item WHERE id IN (1, 2, 450) ORDER BY id;
-- the same counters and rejects
SELECT r.plan, split_part(t.target::text, '.', 2) AS target, t.rows_read, t.rows_written, t.rows_rejected,
       t.loaded_checksum IS NOT NULL AS checksum_kept
  FROM migrate.run_table t JOIN migrate.run r USING (run_id)
 WHERE r.plan IN ('fd_direct', 'fd_sql') ORDER BY 2, 1;
SELECT j.reason, j.message, count(*) FILTER (WHERE r.plan = 'fd_direct') AS direct,
       count(*) FILTER (WHERE r.plan = 'fd_sql') AS sql
  FROM migrate.reject j JOIN migrate.run r USING (run_id)
 WHERE r.plan IN ('fd_direct', 'fd_sql') AND j.target::text LIKE '%.item'
 GROUP BY 1, 2 ORDER BY 1, 2;
SELECT count(*) AS rejected_differently FROM (
    (SELECT regexp_replace(source_key, '.*/', ''), reason, source_row FROM migrate.reject j JOIN migrate.run r USING (run_id)
      WHERE r.plan = 'fd_direct' AND j.target = 'fd_direct.item'::regclass
     EXCEPT SELECT regexp_replace(source_key, '.*/', ''), reason, source_row FROM migrate.reject j JOIN migrate.run r USING (run_id)
      WHERE r.plan = 'fd_sql' AND j.target = 'fd_sql.item'::regclass)
    UNION ALL
    (SELECT regexp_replace(source_key, '.*/', ''), reason, source_row FROM migrate.reject j JOIN migrate.run r USING (run_id)
      WHERE r.plan = 'fd_sql' AND j.target = 'fd_sql.item'::regclass
     EXCEPT SELECT regexp_replace(source_key, '.*/', ''), reason, source_row FROM migrate.reject j JOIN migrate.run r USING (run_id)
      WHERE r.plan = 'fd_direct' AND j.target = 'fd_direct.item'::regclass)) d;

-- a clean file (the rows loaded): every batch direct, nothing rejected; verify
-- without reread reads the file again, since no checksum was kept, and agrees
SELECT format('COPY fd_sql.item TO %L (FORMAT csv, HEADER)', :'dir' || '/clean.csv') AS cmd \gset
:cmd;
TRUNCATE fd_direct.item;
SELECT migrate_file('fd_direct', 'fd_direct.item', :'dir' || '/clean.csv', source_table => 'fd_direct_clean') IS NOT NULL AS remapped;
DELETE FROM migrate.table_map WHERE plan = 'fd_direct' AND target = 'fd_direct.shout'::regclass;
UPDATE migrate.table_map SET mode = 'insert' WHERE plan = 'fd_direct';
SELECT migrate_run('fd_direct') IS NOT NULL AS ran;
SELECT t.rows_read, t.rows_written, t.rows_rejected, t.loaded_checksum IS NULL AS no_checksum
  FROM migrate.run_table t WHERE run_id = (SELECT max(run_id) FROM migrate.run WHERE plan = 'fd_direct');
SELECT check_name, ok, regexp_replace(details, 'run [0-9]+', 'run N') AS details
  FROM migrate_verify('fd_direct', reread => false) ORDER BY 1;

SELECT migrate_drop_plan('fd_direct'), migrate_drop_plan('fd_sql');
DROP SCHEMA fd_direct, fd_sql CASCADE;
DROP FUNCTION fd_targets(text);
DROP DOMAIN fd_posint;
RESET migrate.batch_size;
SELECT format('COPY (SELECT 1) TO PROGRAM %L', 'cat > /dev/null; rm -rf ' || :'dir') AS cmd \gset
:cmd;
