-- Rollback of runs (src/undo.c, src/rollback.c): run_table.undo is decided
-- when a run is planned ('empty': the target had no row; 'log': the run's
-- writes keep an undo log in their transactions); migrate_rollback(run)
-- returns every target to its state before the run, exactly; a row
-- changed since the run is a conflict, left alone unless forced; a second
-- rollback changes nothing; only members of the run's owner may roll back.
\set SHOW_CONTEXT never
SET client_min_messages = warning;
SET migrate.batch_size = 100;
-- run ids from 1001 in messages, whatever ran before; put back at the end
SELECT last_value AS run_seq_before FROM migrate.run_run_id_seq \gset
SELECT setval('migrate.run_run_id_seq', 1000) AS run_ids_from;
CREATE SCHEMA rb_src;
CREATE TABLE rb_src.items (id int PRIMARY KEY, v text, qty int);
INSERT INTO rb_src.items SELECT g, 'v' || g, g % 7 FROM generate_series(1, 500) g;
CREATE TABLE rb_empty (id int PRIMARY KEY, v text, qty int);
CREATE TABLE rb_full (id int PRIMARY KEY, v text, qty int,
                      twice int GENERATED ALWAYS AS (qty * 2) STORED);
INSERT INTO rb_full (id, v, qty) SELECT g, 'old' || g, g % 3 FROM generate_series(1, 300) g;
INSERT INTO rb_full (id, v, qty) SELECT g, 'keep' || g, 1 FROM generate_series(1001, 1010) g;
-- a run's undo log, one row per write (both kinds: sql/run.sql migrate._undo_log)
CREATE FUNCTION rb_undo(run bigint) RETURNS TABLE (key text[], pre text, post_xmin xid)
LANGUAGE sql AS $$
    SELECT u.key, u.pre, u.post_xmin FROM migrate.run_table t, migrate._undo_log(t.run_id, t.target) u
     WHERE t.run_id = run
$$;
CREATE FUNCTION rb_md5(t regclass) RETURNS text LANGUAGE plpgsql AS $$
DECLARE r text;
BEGIN
    EXECUTE format('SELECT md5(coalesce(string_agg(x::text, '','' ORDER BY x::text), '''')) FROM %s x', t) INTO r;
    RETURN r;
END $$;

-- what undo.c relies on: a data-modifying CTE and the query around it
-- share one snapshot, so the outer query reads the rows as they were
CREATE TEMP TABLE rb_snap (id int PRIMARY KEY, v text);
INSERT INTO rb_snap VALUES (1, 'before'), (2, 'before');
WITH w AS (INSERT INTO rb_snap VALUES (1, 'after'), (3, 'new') ON CONFLICT (id) DO UPDATE SET v = EXCLUDED.v
           RETURNING id, xmax::text = '0' AS ins)
SELECT w.id, w.ins, (SELECT s.v FROM rb_snap s WHERE s.id = w.id) AS seen FROM w ORDER BY w.id;
TABLE rb_snap ORDER BY id;

-- 1. an insert run into an empty table: 'empty', no undo row; emptied
SELECT migrate_plan('rb_ins', source_schema => 'rb_src');
SELECT migrate_table('rb_ins', 'items', 'rb_empty');
SELECT migrate_run('rb_ins') AS run_ins \gset
SELECT target, undo, rows_written FROM migrate.run_table WHERE run_id = :run_ins;
SELECT count(*) AS undo_rows FROM rb_undo(:run_ins);
SELECT * FROM migrate_rollback(:run_ins);
SELECT count(*) AS left_after_rollback FROM rb_empty;
SELECT target, state, rows_deleted, conflicts, forced FROM migrate.rollback WHERE run_id = :run_ins;
-- a second rollback is a no-op, and says so
SET client_min_messages = notice;
SELECT * FROM migrate_rollback(:run_ins);
SET client_min_messages = warning;
-- an 'empty' table written since by someone else: a conflict, untouched
SELECT migrate_run('rb_ins') AS run_ins2 \gset
INSERT INTO rb_empty VALUES (9999, 'someone else', 0);
SELECT * FROM migrate_rollback(:run_ins2);
SELECT count(*) FROM rb_empty;
SELECT * FROM migrate_rollback_conflicts(:run_ins2);
SELECT * FROM migrate_rollback(:run_ins2, force => true);
SELECT count(*) FROM rb_empty;

-- 2. an upsert run into a populated table: 'log'; exact rollback
SELECT rb_md5('rb_full') AS md5_before \gset
SELECT migrate_plan('rb_up', source_schema => 'rb_src');
SELECT migrate_table('rb_up', 'items', 'rb_full', mode => 'upsert');
SELECT migrate_run('rb_up') AS run_up \gset
SELECT undo, rows_written FROM migrate.run_table WHERE run_id = :run_up;
-- 300 keys overwritten (their old rows kept), 200 inserted (no old row)
SELECT count(*) AS undo_rows, count(*) FILTER (WHERE pre IS NULL) AS inserted,
       count(*) FILTER (WHERE pre = (SELECT '(7,old7,1,2)')) AS pre_of_7,
       count(DISTINCT post_xmin::text) > 1 AS batches
  FROM rb_undo(:run_up);
SELECT rb_md5('rb_full') = :'md5_before' AS unchanged_by_the_run;
SELECT * FROM migrate_rollback(:run_up);
SELECT rb_md5('rb_full') = :'md5_before' AS same_as_before_the_run;
SELECT count(*) AS undo_rows_left FROM rb_undo(:run_up);
SELECT * FROM migrate_rollback(:run_up);
SELECT rb_md5('rb_full') = :'md5_before' AS still_same;

-- 3. conflicts: a row updated, a row deleted and an inserted row deleted
-- since the run are named and left alone; the rest is undone; forced, all
SELECT migrate_run('rb_up') AS run_up2 \gset
UPDATE rb_full SET v = 'changed later' WHERE id = 5;
DELETE FROM rb_full WHERE id IN (6, 450);
BEGIN;   -- the conflicts, then the rollback, in one transaction
SELECT count(*) AS conflicts_seen FROM migrate_rollback_conflicts(:run_up2);
SELECT * FROM migrate_rollback(:run_up2);
COMMIT;
SELECT * FROM migrate_rollback_conflicts(:run_up2) ORDER BY key;
SELECT id, v FROM rb_full WHERE id IN (4, 5, 6, 7, 450, 451) ORDER BY id;
SELECT target, state, rows_deleted, rows_restored, conflicts, forced FROM migrate.rollback WHERE run_id = :run_up2;
SELECT count(*) AS undo_rows_left FROM rb_undo(:run_up2);
SELECT * FROM migrate_rollback(:run_up2, force => true);
SELECT rb_md5('rb_full') = :'md5_before' AS same_after_force;
SELECT target, state, rows_deleted, rows_restored, rows_reinserted, conflicts, forced
  FROM migrate.rollback WHERE run_id = :run_up2;
SELECT event, details FROM migrate.event WHERE run_id = :run_up2 AND event = 'run rolled back' ORDER BY event_id;
-- a conflict on a sensitive key is named as ***
SELECT migrate_plan('rb_se', source_schema => 'rb_src');
SELECT migrate_table('rb_se', 'items', 'rb_full', mode => 'upsert');
SELECT migrate_sensitive('rb_se', 'rb_full', 'id');
SELECT migrate_run('rb_se') AS run_se \gset
UPDATE rb_full SET v = 'changed later' WHERE id = 5;
SELECT * FROM migrate_rollback_conflicts(:run_se);
SELECT * FROM migrate_rollback(:run_se);
SELECT * FROM migrate_rollback(:run_se, force => true);
SELECT rb_md5('rb_full') = :'md5_before' AS same_after_force;

-- 4. a sync run (capture 'diff', local source) with inserts, updates and
-- deletes: its rollback undoes that sync only
CREATE TABLE rb_sync (id int PRIMARY KEY, v text, qty int);
SELECT migrate_plan('rb_sy', source_schema => 'rb_src');
SELECT migrate_table('rb_sy', 'items', 'rb_sync', capture => 'diff');
SELECT migrate_run('rb_sy', mode => 'incremental') AS run_sy \gset
SELECT rb_md5('rb_sync') AS md5_loaded \gset
UPDATE rb_src.items SET v = v || '+' WHERE id BETWEEN 10 AND 19;
DELETE FROM rb_src.items WHERE id BETWEEN 20 AND 24;
INSERT INTO rb_src.items SELECT g, 'n' || g, 1 FROM generate_series(501, 503) g;
SELECT migrate_sync('rb_sy') AS sync1 \gset
SELECT mode, undo FROM migrate.run r JOIN migrate.run_table t USING (run_id) WHERE run_id = :sync1;
SELECT applied_inserted, applied_updated, applied_deleted FROM migrate.sync_state WHERE plan = 'rb_sy';
SELECT count(*) AS undo_rows, count(*) FILTER (WHERE pre IS NULL) AS inserted,
       count(*) FILTER (WHERE post_xmin IS NULL) AS deleted
  FROM rb_undo(:sync1);
SELECT * FROM migrate_rollback(:sync1);
SELECT rb_md5('rb_sync') = :'md5_loaded' AS same_as_after_the_load;
-- the load's own rollback: the table was empty, it is emptied
SELECT * FROM migrate_rollback(:run_sy);
SELECT count(*) FROM rb_sync;

-- 5. who may roll back: a role that does not see the run (42704), one that
-- sees it without being a member of its owner (42501); neither changes
-- anything; the owner's call next to them does
SELECT migrate_run('rb_up') AS run_up3 \gset
SELECT rb_md5('rb_full') AS md5_up3 \gset
CREATE ROLE regress_rb_bob;
CREATE ROLE regress_rb_carol BYPASSRLS;
GRANT USAGE ON SCHEMA migrate TO regress_rb_carol;
SET ROLE regress_rb_bob;
SELECT test_error(format('SELECT * FROM migrate_rollback(%s)', :run_up3));
SELECT test_error(format('SELECT * FROM migrate_rollback_conflicts(%s)', :run_up3));
SELECT test_error(format('SELECT * FROM migrate._migrate_rollback(%s, true)', :run_up3));
RESET ROLE;
SET ROLE regress_rb_carol;
SELECT test_error(format('SELECT * FROM migrate_rollback(%s)', :run_up3));
RESET ROLE;
SELECT rb_md5('rb_full') = :'md5_up3' AS unchanged, (SELECT count(*) FROM migrate.rollback WHERE run_id = :run_up3) AS records;
SELECT * FROM migrate_rollback(:run_up3);
SELECT rb_md5('rb_full') = :'md5_before' AS owner_rolled_back;

-- 6. refused: an unknown run, a running run (55006), a dry run (no undo log)
SELECT test_error('SELECT * FROM migrate_rollback(999999)');
SELECT migrate_run('rb_up', dry_run => true) AS run_dry \gset
SELECT undo FROM migrate.run_table WHERE run_id = :run_dry;
SELECT test_error(format('SELECT * FROM migrate_rollback(%s)', :run_dry));
-- undo => 'off' in the plan's options: no undo log, rollback refused
SELECT migrate_plan('rb_up', source_schema => 'rb_src', options => '{"undo": "off"}');
SELECT migrate_run('rb_up') AS run_off \gset
SELECT undo FROM migrate.run_table WHERE run_id = :run_off;
SELECT count(*) FROM rb_undo(:run_off);
SELECT test_error(format('SELECT * FROM migrate_rollback(%s)', :run_off));
CREATE VIEW rb_src.slow AS SELECT id, v, qty FROM rb_src.items WHERE pg_sleep(0.005) IS NOT NULL;
CREATE TABLE rb_slow (id int PRIMARY KEY, v text, qty int);
SELECT migrate_plan('rb_slow', source_schema => 'rb_src');
SELECT migrate_table('rb_slow', 'slow', 'rb_slow');
SELECT migrate_run('rb_slow', wait => false) AS run_slow \gset
SELECT test_error(format('SELECT * FROM migrate_rollback(%s)', :run_slow));
SELECT migrate_cancel(:run_slow);
DO $$
BEGIN
    FOR i IN 1..600 LOOP
        EXIT WHEN NOT EXISTS (SELECT 1 FROM migrate.run WHERE plan = 'rb_slow' AND state = 'running');
        PERFORM pg_sleep(0.1);
    END LOOP;
END $$;
SELECT state FROM migrate.run WHERE run_id = :run_slow;

-- dropping a plan drops its undo log
SELECT migrate_run('rb_up') AS run_up4 \gset
SELECT migrate_plan('rb_up', source_schema => 'rb_src', options => '{}');
SELECT migrate_run('rb_up') AS run_up5 \gset
SELECT count(*) > 0 AS has_undo FROM rb_undo(:run_up5);
SELECT count(*) AS undo_tables FROM pg_class
 WHERE relnamespace = 'migrate'::regnamespace AND relname LIKE format('undo\_%s\_%%', :run_up5);
SELECT migrate_drop_plan('rb_up');
SELECT count(*) AS undo_tables_left FROM pg_class
 WHERE relnamespace = 'migrate'::regnamespace AND relname LIKE format('undo\_%s\_%%', :run_up5);
DROP ROLE regress_rb_bob;
REVOKE USAGE ON SCHEMA migrate FROM regress_rb_carol;
DROP ROLE regress_rb_carol;

-- 7. a run made under 0.7 kept its undo log as text rows in migrate.undo
-- (no undo table): still replayed, conflicts included
UPDATE rb_src.items SET v = v || '#';
DELETE FROM rb_full WHERE id > 400 AND id < 1000;   -- the run inserts them again
SELECT rb_md5('rb_full') AS md5_before \gset
SELECT migrate_plan('rb_07', source_schema => 'rb_src');
SELECT migrate_table('rb_07', 'items', 'rb_full', mode => 'upsert');
SELECT migrate_run('rb_07') AS run_up07 \gset
INSERT INTO migrate.undo (run_id, target, key, pre, post_xmin)
SELECT :run_up07, 'rb_full'::regclass, u.key, u.pre, u.post_xmin
  FROM migrate._undo_log(:run_up07, 'rb_full') u ORDER BY u.txn, u.ord;
SELECT migrate._undo_drop(:run_up07);
SELECT count(*) AS text_undo_rows, count(*) FILTER (WHERE pre IS NULL) AS inserted
  FROM migrate.undo WHERE run_id = :run_up07;
UPDATE rb_full SET v = 'changed later' WHERE id = 5;
SELECT * FROM migrate_rollback(:run_up07);
SELECT id, v FROM rb_full WHERE id IN (4, 5, 450) ORDER BY id;
SELECT * FROM migrate_rollback(:run_up07, force => true);
SELECT rb_md5('rb_full') = :'md5_before' AS same_as_before_the_07_run;
SELECT count(*) AS text_undo_rows_left FROM migrate.undo WHERE run_id = :run_up07;

-- 8. a two-column key (typed replay: both columns probe the key index)
CREATE TABLE rb_src.pairs (a int, b text, v text, PRIMARY KEY (a, b));
INSERT INTO rb_src.pairs SELECT g % 10, 'b' || (g / 10), 'new' || g FROM generate_series(0, 199) g;
CREATE TABLE rb_pairs (a int, b text, v text, PRIMARY KEY (a, b));
INSERT INTO rb_pairs SELECT g % 10, 'b' || (g / 10), 'old' || g FROM generate_series(0, 99) g;
INSERT INTO rb_pairs VALUES (99, 'kept', 'not in the source');
SELECT rb_md5('rb_pairs') AS md5_pairs \gset
SELECT migrate_plan('rb_ck', source_schema => 'rb_src');
SELECT migrate_table('rb_ck', 'pairs', 'rb_pairs', mode => 'upsert');
SELECT migrate_run('rb_ck') AS run_ck \gset
SELECT count(*) AS undo_rows, count(*) FILTER (WHERE pre IS NULL) AS inserted FROM rb_undo(:run_ck);
UPDATE rb_pairs SET v = 'changed later' WHERE (a, b) = (3, 'b2');
DELETE FROM rb_pairs WHERE (a, b) = (4, 'b15');
SELECT * FROM migrate_rollback(:run_ck);
SELECT * FROM migrate_rollback_conflicts(:run_ck) ORDER BY key;
SELECT count(*) AS rows_now, count(*) FILTER (WHERE v LIKE 'new%') AS new_left FROM rb_pairs;
SELECT * FROM migrate_rollback(:run_ck, force => true);
SELECT rb_md5('rb_pairs') = :'md5_pairs' AS same_after_force;
SELECT * FROM migrate_rollback(:run_ck);

-- status and report show a rollback
SELECT table_state FROM migrate_status(:run_up2);
SELECT table_state FROM migrate_status(:run_ins);
SELECT substring(line from '^(## Rollback|(\| [^|]+ ){7}\|)') AS line
  FROM regexp_split_to_table(migrate_report(:run_up2), E'\n') AS line
 WHERE line LIKE '## Rollback%' OR line LIKE '| rb\_full | rolled back%';

-- later tests see the run ids they would have seen
SELECT setval('migrate.run_run_id_seq', :run_seq_before + (SELECT last_value - 1000 FROM migrate.run_run_id_seq)) > 0 AS run_ids_put_back;
