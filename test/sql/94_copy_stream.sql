-- The streamed binary COPY of a postgres_fdw source (src/copysrc.c): the
-- batch statement's migrate._copy_source() becomes the custom scan
-- "MigrateCopySource", which returns each row as the source sends it,
-- instead of a function scan that fills a tuplestore first.  The oracle is
-- the materialized function (migrate.copy_stream off for the role the run
-- connects as): the same rows, counters and rejects, with rules, casts
-- that fail, NOT NULL, CHECK, keys duplicated in the batch and keys the
-- target already holds (refused while the COPY is still sending).  Then:
-- which queries take the scan, EXECUTE on the function is still checked,
-- and a COPY an error or a LIMIT leaves unfinished does not spoil the
-- next read.
\set SHOW_CONTEXT never
SET client_min_messages = warning;
\set regress_db :DBNAME
\c migrate_src
SET client_min_messages = warning;
CREATE TABLE cs_src (id bigint PRIMARY KEY, code text, amount numeric, note text, dup int,
                     at timestamptz, tags int[]);
INSERT INTO cs_src
SELECT g,
       CASE WHEN g % 50 = 0 THEN 'toolong' ELSE 'c' || g % 100 END,    -- varchar(5): 22001
       CASE WHEN g % 70 = 0 THEN -g ELSE g * 1.005 END,                 -- rule amount >= 0
       CASE WHEN g % 90 = 0 THEN NULL ELSE 'n' || g END,               -- NOT NULL: 23502
       CASE WHEN g % 60 = 0 THEN 7 ELSE g END,                          -- unique: 23505 in the batch
       timestamptz '2024-01-01 00:00+00' + g * interval '1 minute',
       CASE WHEN g % 11 = 0 THEN NULL ELSE ARRAY[g, g + 1] END
  FROM generate_series(1, 3000) g;
\c :regress_db
SET client_min_messages = warning;
CREATE SCHEMA cs_legacy;
IMPORT FOREIGN SCHEMA public LIMIT TO (cs_src) FROM SERVER src INTO cs_legacy;

CREATE FUNCTION cs_targets(s text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('CREATE SCHEMA %I', s);
    -- empty: the multi-insert path; holding keys: INSERT ... SELECT with the undo log
    EXECUTE format('CREATE TABLE %I.t (id bigint PRIMARY KEY, code varchar(5), amount numeric(8,2) CHECK (amount < 2900),'
                   ' note text NOT NULL, dup int UNIQUE, at timestamptz, tags int[])', s);
    EXECUTE format('CREATE TABLE %I.held (LIKE %I.t INCLUDING ALL)', s, s);
    EXECUTE format('INSERT INTO %I.held (id, note, dup) SELECT g, ''held'', -g FROM generate_series(1, 3000, 97) g', s);
    PERFORM migrate_plan(s, source_schema => 'cs_legacy', target_schema => s,
                         options => '{"reject_limit": null}');
    PERFORM migrate_table(s, 'cs_src', 't');
    PERFORM migrate_table(s, 'cs_src', 'held');
    PERFORM migrate_rule(s, 't', 'amount_ok', 'amount >= 0');
    PERFORM migrate_rule(s, 'held', 'amount_ok', 'amount >= 0');
END $$;
SELECT cs_targets('cs_stream'), cs_targets('cs_mat');

SET migrate.batch_size = 700;
SELECT migrate_run('cs_stream') IS NOT NULL AS ran;
ALTER ROLE CURRENT_USER SET migrate.copy_stream = off;
SELECT migrate_run('cs_mat') IS NOT NULL AS ran;
ALTER ROLE CURRENT_USER RESET migrate.copy_stream;

-- the same rows
SELECT x.tab, (SELECT count(*) FROM cs_stream.t) AS rows_t,
       x.stream = x.mat AS same_rows
  FROM (SELECT 't' AS tab,
               (SELECT md5(string_agg(t::text, ',' ORDER BY id)) FROM cs_stream.t) AS stream,
               (SELECT md5(string_agg(t::text, ',' ORDER BY id)) FROM cs_mat.t) AS mat
        UNION ALL
        SELECT 'held',
               (SELECT md5(string_agg(t::text, ',' ORDER BY id)) FROM cs_stream.held t),
               (SELECT md5(string_agg(t::text, ',' ORDER BY id)) FROM cs_mat.held t)) x
 ORDER BY 1;
SELECT * FROM cs_stream.t WHERE id IN (1, 11, 12) ORDER BY id;
-- the same counters and rejects
SELECT r.plan, split_part(t.target::text, '.', 2) AS tab, t.rows_read, t.rows_written, t.rows_rejected
  FROM migrate.run_table t JOIN migrate.run r USING (run_id)
 WHERE r.plan IN ('cs_stream', 'cs_mat') ORDER BY 2, 1;
SELECT split_part(j.target::text, '.', 2) AS tab, j.reason, j.message,
       count(*) FILTER (WHERE r.plan = 'cs_stream') AS stream,
       count(*) FILTER (WHERE r.plan = 'cs_mat') AS mat
  FROM migrate.reject j JOIN migrate.run r USING (run_id)
 WHERE r.plan IN ('cs_stream', 'cs_mat')
 GROUP BY 1, 2, 3 ORDER BY 1, 2, 3;
SELECT count(*) AS rejected_differently FROM (
    (SELECT split_part(target::text, '.', 2), source_key, reason, source_row FROM migrate.reject j JOIN migrate.run r USING (run_id)
      WHERE r.plan = 'cs_stream'
     EXCEPT SELECT split_part(target::text, '.', 2), source_key, reason, source_row FROM migrate.reject j JOIN migrate.run r USING (run_id)
      WHERE r.plan = 'cs_mat')
    UNION ALL
    (SELECT split_part(target::text, '.', 2), source_key, reason, source_row FROM migrate.reject j JOIN migrate.run r USING (run_id)
      WHERE r.plan = 'cs_mat'
     EXCEPT SELECT split_part(target::text, '.', 2), source_key, reason, source_row FROM migrate.reject j JOIN migrate.run r USING (run_id)
      WHERE r.plan = 'cs_stream')) d;
-- both verify against the source
SELECT 'cs_stream' AS plan, count(*) AS checks, count(*) FILTER (WHERE ok) AS ok FROM migrate_verify('cs_stream')
UNION ALL
SELECT 'cs_mat', count(*), count(*) FILTER (WHERE ok) FROM migrate_verify('cs_mat');

-- the batch statement reads through the custom scan
LOAD 'migrate';
PREPARE cs_batch(bigint, bigint) AS
SELECT count(*), sum(s.id), count(s.tags)
  FROM migrate._copy_source('cs_legacy.cs_src'::regclass, 'id', $1, $2)
       AS s(id bigint, code text, amount numeric, note text, dup int, at timestamptz, tags int[]);
EXPLAIN (COSTS OFF) EXECUTE cs_batch(100, 2000);
EXECUTE cs_batch(100, 2000);
EXECUTE cs_batch(NULL, 3000);
-- a whole-row reference keeps the function scan, and reads the same
EXPLAIN (COSTS OFF)
SELECT count(s.*) FROM migrate._copy_source('cs_legacy.cs_src'::regclass, 'id', 100::bigint, 2000::bigint)
       AS s(id bigint, code text, amount numeric, note text, dup int, at timestamptz, tags int[]);
SELECT count(s.*), sum((s).id) FROM migrate._copy_source('cs_legacy.cs_src'::regclass, 'id', 100::bigint, 2000::bigint)
       AS s(id bigint, code text, amount numeric, note text, dup int, at timestamptz, tags int[]);
SET migrate.copy_stream = off;
EXPLAIN (COSTS OFF) EXECUTE cs_batch(100, 2000);
EXECUTE cs_batch(100, 2000);
RESET migrate.copy_stream;

-- an error while rows are still coming, a LIMIT that stops early, an
-- error in a savepoint: the next read gets every row again
SELECT test_error($$SELECT sum(1 / (s.id - 1500)) FROM migrate._copy_source('cs_legacy.cs_src'::regclass, 'id', NULL::bigint, 3000::bigint)
       AS s(id bigint, code text, amount numeric, note text, dup int, at timestamptz, tags int[])$$);
EXECUTE cs_batch(NULL, 3000);
SELECT s.id FROM migrate._copy_source('cs_legacy.cs_src'::regclass, 'id', 10::bigint, 3000::bigint)
       AS s(id bigint, code text, amount numeric, note text, dup int, at timestamptz, tags int[])
 ORDER BY s.id LIMIT 3;
SELECT * FROM (SELECT s.id FROM migrate._copy_source('cs_legacy.cs_src'::regclass, 'id', 20::bigint, 3000::bigint)
       AS s(id bigint, code text, amount numeric, note text, dup int, at timestamptz, tags int[]) LIMIT 2) x
 WHERE x.id > 20 ORDER BY 1 LIMIT 0;
EXECUTE cs_batch(NULL, 3000);
BEGIN;
SAVEPOINT a;
SELECT test_error($$SELECT sum(1 / (s.id - 2000)) FROM migrate._copy_source('cs_legacy.cs_src'::regclass, 'id', NULL::bigint, 3000::bigint)
       AS s(id bigint, code text, amount numeric, note text, dup int, at timestamptz, tags int[])$$);
ROLLBACK TO a;
EXECUTE cs_batch(NULL, 3000);
COMMIT;

-- EXECUTE on the function is checked by the scan, as a call would check it
CREATE ROLE regress_cs_reader;
GRANT USAGE ON SCHEMA cs_legacy TO regress_cs_reader;
GRANT SELECT ON cs_legacy.cs_src TO regress_cs_reader;
GRANT USAGE ON FOREIGN SERVER src TO regress_cs_reader;
CREATE USER MAPPING FOR regress_cs_reader SERVER src OPTIONS (password_required 'false');
BEGIN;
REVOKE EXECUTE ON FUNCTION migrate._copy_source(regclass, text, anyelement, anyelement) FROM PUBLIC;
SET LOCAL ROLE regress_cs_reader;
SELECT test_error($$SELECT count(*) FROM migrate._copy_source('cs_legacy.cs_src'::regclass, 'id', NULL::bigint, 3000::bigint)
       AS s(id bigint, code text, amount numeric, note text, dup int, at timestamptz, tags int[])$$);
RESET ROLE;
GRANT EXECUTE ON FUNCTION migrate._copy_source(regclass, text, anyelement, anyelement) TO regress_cs_reader;
SET LOCAL ROLE regress_cs_reader;
SELECT count(*) FROM migrate._copy_source('cs_legacy.cs_src'::regclass, 'id', NULL::bigint, 3000::bigint)
       AS s(id bigint, code text, amount numeric, note text, dup int, at timestamptz, tags int[]);
ROLLBACK;
-- SELECT on the foreign table too
REVOKE SELECT ON cs_legacy.cs_src FROM regress_cs_reader;
SET ROLE regress_cs_reader;
SELECT test_error($$SELECT count(*) FROM migrate._copy_source('cs_legacy.cs_src'::regclass, 'id', NULL::bigint, 3000::bigint)
       AS s(id bigint, code text, amount numeric, note text, dup int, at timestamptz, tags int[])$$);
RESET ROLE;

DEALLOCATE cs_batch;
SELECT migrate_drop_plan('cs_stream'), migrate_drop_plan('cs_mat');
DROP USER MAPPING FOR regress_cs_reader SERVER src;
DROP OWNED BY regress_cs_reader;
DROP ROLE regress_cs_reader;
DROP SCHEMA cs_stream, cs_mat, cs_legacy CASCADE;
DROP FUNCTION cs_targets(text);
RESET migrate.batch_size;
\c migrate_src
DROP TABLE cs_src;
