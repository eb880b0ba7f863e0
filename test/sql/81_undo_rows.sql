-- The undo rows of an upsert (src/undo.c): a row the batch overwrites is
-- copied into its undo row from its page (ROW(t.ctid)) byte for byte when
-- the undo table's columns are the target's, else deformed; either way the
-- rollback puts back exactly the rows as they were, here with values kept
-- out of line (TOAST), NULLs, a column added after rows were written (their
-- missing value) and dropped columns; over several batches (the buffer of
-- undo rows is reused from batch to batch).  Last, a partitioned target.
\set SHOW_CONTEXT never
SET client_min_messages = warning;
SET migrate.batch_size = 25;
CREATE SCHEMA ur_src;
-- the new values: 6,400 characters of hex (not compressible: kept out of line)
CREATE TABLE ur_src.t (id int PRIMARY KEY, big text, v int, note text);
INSERT INTO ur_src.t
SELECT g, CASE WHEN g % 3 <> 0 THEN (SELECT string_agg(md5((g * 1000 + k)::text), '') FROM generate_series(1, 200) k) END,
       g * 2, CASE WHEN g % 4 <> 0 THEN 'new ' || g END
  FROM generate_series(1, 90) g;
CREATE TABLE ur_added (id int PRIMARY KEY, big text, note text);
INSERT INTO ur_added
SELECT g, CASE WHEN g % 5 <> 0 THEN (SELECT string_agg(md5((g * 7 + k)::text), '') FROM generate_series(1, 200) k) END,
       CASE WHEN g % 2 <> 0 THEN 'old ' || g END
  FROM generate_series(1, 75) g;
ALTER TABLE ur_added ADD COLUMN v int DEFAULT 42;
INSERT INTO ur_added (id, note) VALUES (80, 'after the new column');
CREATE TABLE ur_plain (id int PRIMARY KEY, big text, v int, note text);
INSERT INTO ur_plain SELECT id, big, v, note FROM ur_added;
CREATE TABLE ur_dropped (id int PRIMARY KEY, x int, big text, y text, v int, note text);
ALTER TABLE ur_dropped DROP COLUMN x;
ALTER TABLE ur_dropped DROP COLUMN y;
INSERT INTO ur_dropped (id, big, v, note) SELECT id, big, v, note FROM ur_added;
SELECT count(*) AS out_of_line FROM ur_plain WHERE pg_column_size(big) > 2000
   AND pg_relation_size((SELECT reltoastrelid FROM pg_class WHERE oid = 'ur_plain'::regclass)) > 0;
CREATE FUNCTION ur_md5(t regclass) RETURNS text LANGUAGE plpgsql AS $$
DECLARE r text;
BEGIN
    EXECUTE format('SELECT md5(string_agg(md5(x::text), '''' ORDER BY x.id)) FROM %s x', t) INTO r;
    RETURN r;
END $$;
CREATE TEMP TABLE ur_before AS
SELECT t, ur_md5(t) AS md5 FROM unnest(ARRAY['ur_plain', 'ur_added', 'ur_dropped']::regclass[]) t;
SELECT migrate_plan('ur', source_schema => 'ur_src');
SELECT migrate_table('ur', 't', t, mode => 'upsert') FROM unnest(ARRAY['ur_plain', 'ur_added', 'ur_dropped']) t;
SELECT migrate_run('ur') AS run \gset
SELECT target, undo, rows_written FROM migrate.run_table WHERE run_id = :run ORDER BY target::text;
-- every row overwritten or inserted
SELECT count(*) FILTER (WHERE v = id * 2) AS plain_new, count(*) AS plain_rows FROM ur_plain;
SELECT target, rows_deleted, rows_restored, rows_reinserted, conflicts FROM migrate_rollback(:run) ORDER BY target::text;
SELECT b.t, ur_md5(b.t) = b.md5 AS exact FROM ur_before b ORDER BY b.t::text;
SELECT id, left(big, 8) AS big, v, note FROM ur_added WHERE id IN (1, 5, 10, 80) ORDER BY id;
SELECT migrate_drop_plan('ur');

-- a populated partitioned target: insert and skip_existing log the keys
-- they inserted (RETURNING true: a partitioned table cannot return xmax)
CREATE TABLE ur_part (id int PRIMARY KEY, big text, v int, note text) PARTITION BY RANGE (id);
CREATE TABLE ur_part_1 PARTITION OF ur_part FOR VALUES FROM (0) TO (50);
CREATE TABLE ur_part_2 PARTITION OF ur_part FOR VALUES FROM (50) TO (1000);
INSERT INTO ur_part SELECT g, 'old', g, 'old ' || g FROM generate_series(40, 60) g;
INSERT INTO ur_part VALUES (500, 'kept', 0, NULL);
CREATE TEMP TABLE ur_part_before AS SELECT ur_md5('ur_part') AS md5;
SELECT migrate_plan('ur_skip', source_schema => 'ur_src');
SELECT migrate_table('ur_skip', 't', 'ur_part', mode => 'skip_existing');
SELECT migrate_plan('ur_ins', source_schema => 'ur_src');
SELECT migrate_table('ur_ins', 't', 'ur_part', filter => 'id < 40 OR id > 60');
SELECT migrate_run('ur_skip') AS run \gset
SELECT undo, rows_written FROM migrate.run_table WHERE run_id = :run;
SELECT target, rows_deleted, rows_restored, rows_reinserted, conflicts FROM migrate_rollback(:run);
SELECT ur_md5('ur_part') = md5 AS exact FROM ur_part_before;
SELECT migrate_run('ur_ins') AS run \gset
SELECT undo, rows_written FROM migrate.run_table WHERE run_id = :run;
SELECT target, rows_deleted, rows_restored, rows_reinserted, conflicts FROM migrate_rollback(:run);
SELECT ur_md5('ur_part') = md5 AS exact, (SELECT count(*) FROM ur_part) AS rows FROM ur_part_before;
SELECT migrate_drop_plan(p) FROM unnest(ARRAY['ur_skip', 'ur_ins']) p;
DROP SCHEMA ur_src CASCADE;
DROP TABLE ur_plain, ur_added, ur_dropped, ur_part;
DROP FUNCTION ur_md5(regclass);
