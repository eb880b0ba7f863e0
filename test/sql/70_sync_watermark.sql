-- Trickle sync, capture => 'watermark' and 'diff' (src/sync.c): an
-- incremental run arms capture before its load; migrate_sync() applies
-- what changed at the source since: inserts and updates (watermark), and
-- deletes too (diff); a row whose current version fails a rule leaves the
-- target for migrate.reject, and arrives once fixed at the source.
\set SHOW_CONTEXT never
SET client_min_messages = warning;
\set regress_db :DBNAME
\c migrate_src
SET client_min_messages = warning;
CREATE TABLE wm_src (id int PRIMARY KEY, v text, qty int, updated_at timestamptz NOT NULL);
INSERT INTO wm_src SELECT g, 'v' || g, g % 7, timestamptz '2026-01-01 00:00:00+00' + g * interval '1 second'
  FROM generate_series(1, 1000) g;
CREATE TABLE df_src (id int PRIMARY KEY, v text, qty int);
INSERT INTO df_src SELECT g, 'd' || g, g % 5 FROM generate_series(1, 2000) g;
\c :regress_db
SET client_min_messages = warning;
SET migrate.batch_size = 100;
IMPORT FOREIGN SCHEMA public LIMIT TO (wm_src, df_src) FROM SERVER src INTO legacy;
CREATE TABLE wm_tgt (id int PRIMARY KEY, v text, qty int, updated_at timestamptz NOT NULL);
CREATE TABLE df_tgt (id int PRIMARY KEY, v text, qty int CHECK (qty < 100));

-- the plan's API: capture needs what it reads
SELECT migrate_plan('wm', source_schema => 'legacy');
SELECT test_error($$SELECT migrate_table('wm', 'wm_src', 'wm_tgt', capture => 'watermark')$$);
SELECT test_error($$SELECT migrate_table('wm', 'wm_src', 'wm_tgt', capture => 'sometimes')$$);
SELECT test_error($$SELECT migrate_table('wm', 'wm_src', 'wm_tgt', watermark => 'updated_at', capture => 'watermark', lag => '-1 minute')$$);
SELECT test_error($$SELECT migrate_sync('wm')$$);
SELECT migrate_table('wm', 'wm_src', 'wm_tgt', watermark => 'updated_at', capture => 'watermark', lag => '1 minute');
SELECT migrate_rule('wm', 'wm_tgt', 'qty_not_negative', 'qty >= 0');
SELECT capture, watermark, lag FROM migrate.table_map WHERE plan = 'wm';
SELECT test_error($$SELECT migrate_sync('nope')$$);
SELECT test_error($$SELECT migrate_sync('wm', until => 'tomorrow')$$);
SELECT test_error($$SELECT migrate_run('wm', mode => 'sometimes')$$);
SELECT test_error($$SELECT migrate_run('wm', mode => 'incremental', dry_run => true)$$);

-- incremental: armed at the source's greatest watermark, then loaded
SELECT migrate_run('wm', mode => 'incremental') AS run \gset
SELECT mode, state FROM migrate.run WHERE run_id = :run;
SELECT capture, position, armed_run = :run AS armed_by_run, passes FROM migrate.sync_state WHERE plan = 'wm';
SELECT count(*) FROM wm_tgt;

-- the source changes: 10 updates, 5 inserts, a row that breaks the rule,
-- and a late commit whose watermark is 30 s older than the position
\c migrate_src
UPDATE wm_src SET v = v || '+', updated_at = timestamptz '2026-01-01 01:00:00+00' WHERE id BETWEEN 101 AND 110;
INSERT INTO wm_src SELECT g, 'new' || g, 1, timestamptz '2026-01-01 01:00:00+00' FROM generate_series(1001, 1005) g;
UPDATE wm_src SET qty = -1, updated_at = timestamptz '2026-01-01 01:00:00+00' WHERE id = 200;
UPDATE wm_src SET v = 'late', updated_at = timestamptz '2026-01-01 00:16:10+00' WHERE id = 300;
\c :regress_db
SET client_min_messages = warning;
SET migrate.batch_size = 100;
SELECT migrate_sync('wm') AS sync1 \gset
SELECT mode, state FROM migrate.run WHERE run_id = :sync1;
-- inserted 5; updated: the 10, the late one, and the 60 rows of the load
-- inside the minute of overlap (ids 941-1000), re-read and written again;
-- rejected and deleted: row 200
SELECT capture, position, passes, applied_inserted, applied_updated, applied_deleted, applied_rejected
  FROM migrate.sync_state WHERE plan = 'wm';
SELECT state, kind FROM migrate.run_range WHERE run_id = :sync1;
SELECT source_key, reason FROM migrate.reject WHERE run_id = :sync1;
-- the target equals the source but for the quarantined row
SELECT (SELECT count(*) FROM (SELECT * FROM legacy.wm_src WHERE id <> 200 EXCEPT SELECT * FROM wm_tgt) d) AS missing,
       (SELECT count(*) FROM (SELECT * FROM wm_tgt EXCEPT SELECT * FROM legacy.wm_src) d) AS extra,
       (SELECT count(*) FROM wm_tgt WHERE id = 200) AS stale_row;
-- a pass with nothing new re-reads only the overlap; the bad row is not quarantined twice
SELECT migrate_sync('wm') AS sync2 \gset
SELECT count(*) FROM migrate.reject r JOIN migrate.run u USING (run_id) WHERE u.plan = 'wm' AND r.source_key = '200';
SELECT passes, applied_inserted, applied_deleted, applied_rejected FROM migrate.sync_state WHERE plan = 'wm';
-- fixed at the source, the row arrives
\c migrate_src
UPDATE wm_src SET qty = 3, updated_at = timestamptz '2026-01-01 02:00:00+00' WHERE id = 200;
\c :regress_db
SET client_min_messages = warning;
SELECT migrate_sync('wm') AS sync3 \gset
SELECT id, qty FROM wm_tgt WHERE id = 200;
SELECT (SELECT count(*) FROM (SELECT * FROM legacy.wm_src EXCEPT SELECT * FROM wm_tgt) d) AS missing,
       (SELECT count(*) FROM (SELECT * FROM wm_tgt EXCEPT SELECT * FROM legacy.wm_src) d) AS extra;
SELECT position FROM migrate.sync_state WHERE plan = 'wm';

-- capture => 'diff': deletes, key changes and changes without a watermark
SELECT migrate_plan('df', source_schema => 'legacy');
SELECT migrate_table('df', 'df_src', 'df_tgt', capture => 'diff');
SELECT migrate_run('df', mode => 'incremental') AS dfrun \gset
SELECT count(*) FROM df_tgt;
\c migrate_src
DELETE FROM df_src WHERE id % 100 = 0;
UPDATE df_src SET v = v || '*' WHERE id % 250 = 1;
UPDATE df_src SET id = id + 10000 WHERE id BETWEEN 1500 AND 1504;
INSERT INTO df_src SELECT g, 'n' || g, 0 FROM generate_series(3001, 3003) g;
UPDATE df_src SET qty = 500 WHERE id = 7;
\c :regress_db
SET client_min_messages = warning;
SET migrate.batch_size = 100;
SELECT migrate_sync('df') AS dfsync \gset
SELECT applied_inserted, applied_updated, applied_deleted, applied_rejected FROM migrate.sync_state WHERE plan = 'df';
-- row 7 breaks the target's CHECK: out of the target, into migrate.reject
SELECT source_key, reason FROM migrate.reject WHERE run_id = :dfsync;
SELECT (SELECT count(*) FROM (SELECT * FROM legacy.df_src WHERE id <> 7 EXCEPT SELECT * FROM df_tgt) d) AS missing,
       (SELECT count(*) FROM (SELECT * FROM df_tgt EXCEPT SELECT * FROM legacy.df_src) d) AS extra;
SELECT count(*) FROM migrate_diff('df', 'df_tgt');
