--
-- Parallel run (issue 13): migrate_verify(plan, stable_for => ...) and
-- migrate_diff(..., stable_for => ...) leave the keys in flight out of both
-- sides and report them as one 'in flight' check a table, found per
-- capture (migrate._in_flight_keys): watermark (changed within the window,
-- or after the position minus lag: not yet synced), trigger (keys still in
-- the change relation, less those in prune; a pending TRUNCATE: every
-- key), diff (none known).  A real mismatch outside the window still fails.
-- migrate_sync_status() and the report's Sync section show
-- migrate.sync_state; row-level security hides other owners' sync state.
-- The sync state and the change relation are written here by hand (the
-- superuser; the engine writes them in real runs).
--
\set SHOW_CONTEXT never
SET client_min_messages = warning;
\set regress_db :DBNAME
\c migrate_src
SET client_min_messages = warning;
CREATE TABLE vif_wm (id int PRIMARY KEY, v text, updated_at timestamptz NOT NULL);
INSERT INTO vif_wm SELECT g, 'v' || g, now() - interval '1 hour' FROM generate_series(1, 100) g;
CREATE TABLE vif_trg (id int PRIMARY KEY, v text);
INSERT INTO vif_trg SELECT g, 't' || g FROM generate_series(1, 50) g;
CREATE TABLE vif_diff (id int PRIMARY KEY, v text);
INSERT INTO vif_diff SELECT g, 'd' || g FROM generate_series(1, 20) g;
\c :regress_db
SET client_min_messages = warning;
\set SHOW_CONTEXT never
IMPORT FOREIGN SCHEMA public LIMIT TO (vif_wm, vif_trg, vif_diff) FROM SERVER src INTO legacy;
CREATE TABLE vif_wm_t (id int PRIMARY KEY, v text, updated_at timestamptz);
CREATE TABLE vif_trg_t (id int PRIMARY KEY, v text);
CREATE TABLE vif_diff_t (id int PRIMARY KEY, v text);
-- the trigger capture's change relation (migrate._capture_ddl's shape)
CREATE TABLE vif_changes (seq bigserial PRIMARY KEY, k int, op "char", at timestamptz DEFAULT clock_timestamp());

SELECT migrate_plan('inflight', source_schema => 'legacy');
SELECT migrate_table('inflight', 'vif_wm', 'vif_wm_t', capture => 'watermark', watermark => 'updated_at',
                     lag => '1 minute');
SELECT migrate_table('inflight', 'vif_trg', 'vif_trg_t', capture => 'trigger');
SELECT migrate_table('inflight', 'vif_diff', 'vif_diff_t', capture => 'diff');
SELECT migrate_run('inflight') AS run \gset
SELECT * FROM test_counts(:run);
INSERT INTO migrate.sync_state (plan, target, capture, position, change_relation, armed_at, lag)
VALUES ('inflight', 'vif_wm_t', 'watermark', (now() - interval '20 minutes')::text, NULL, now(), NULL),
       ('inflight', 'vif_trg_t', 'trigger', '0', 'public.vif_changes', now(), NULL);

-- timestamps (in any DateStyle) and run ids masked, for the output
CREATE FUNCTION vif_mask(p_text text) RETURNS text LANGUAGE sql AS $$
    SELECT regexp_replace(regexp_replace(regexp_replace(p_text,
               '\d{4}-\d\d-\d\d [0-9:.+-]+', '<ts>', 'g'),
               '(\w{3} )?\w{3} \d\d \d\d:\d\d:\d\d(\.\d+)? \d{4}( \w+)?', '<ts>', 'g'),
               'run \d+', 'run N', 'g')
$$;
CREATE FUNCTION vif_show(p_rows migrate.verification[])
RETURNS TABLE (target regclass, check_name text, source_value text, target_value text, ok boolean, details text)
LANGUAGE sql AS $$
    SELECT v.target, v.check_name,
           CASE WHEN v.check_name = 'checksum' THEN '<sum>' ELSE v.source_value END,
           CASE WHEN v.check_name = 'checksum' THEN '<sum>' ELSE v.target_value END, v.ok,
           vif_mask(v.details)
      FROM unnest(p_rows) v ORDER BY v.verification_id
$$;

-- a clean target verifies with and without a window
SELECT bool_and(ok) AS clean FROM migrate_verify('inflight');
SELECT * FROM vif_show(ARRAY(SELECT v FROM migrate_verify('inflight', stable_for => '30 seconds') v));

-- ---- the source moves on; nothing is synced ----
-- watermark: 3 and 7 changed now, 101 inserted now, 50 changed 10 minutes
-- ago (after the position minus lag: not yet synced)
UPDATE legacy.vif_wm SET v = 'changed', updated_at = now() WHERE id IN (3, 7);
INSERT INTO legacy.vif_wm VALUES (101, 'new', now());
UPDATE legacy.vif_wm SET v = 'late', updated_at = now() - interval '10 minutes' WHERE id = 50;
-- trigger: 5 updated, 9 deleted, 60 inserted, each recorded in the change relation
UPDATE legacy.vif_trg SET v = 'changed' WHERE id = 5;
DELETE FROM legacy.vif_trg WHERE id = 9;
INSERT INTO legacy.vif_trg VALUES (60, 'new');
INSERT INTO vif_changes (k, op) VALUES (5, 'U'), (9, 'D'), (60, 'I'), (5, 'U');

-- without stable_for these are mismatches
SELECT target, check_name, ok FROM migrate_verify('inflight') WHERE NOT ok ORDER BY verification_id;

-- the keys in flight, per capture
SELECT migrate._in_flight_keys('inflight', 'vif_wm_t', '30 seconds') AS wm_keys;
SELECT migrate._in_flight_keys('inflight', 'vif_trg_t', '30 seconds') AS trg_keys;
SELECT count(*) AS diff_keys FROM migrate._in_flight_keys('inflight', 'vif_diff_t', '30 seconds');
-- the position alone (no window): what the next sync re-reads
SELECT migrate._in_flight_keys('inflight', 'vif_wm_t', NULL) AS wm_not_synced;
-- with stable_for every table is consistent: its keys in flight are reported
SELECT * FROM vif_show(ARRAY(SELECT v FROM migrate_verify('inflight', stable_for => '30 seconds') v));
SELECT verified, regexp_replace(details, 'run \d+', 'run N') AS event
  FROM migrate.run r, LATERAL (SELECT details FROM migrate.event e WHERE e.run_id = r.run_id
                                ORDER BY e.event_id DESC LIMIT 1) e
 WHERE r.run_id = :run;
-- migrate_diff: the keys in flight are not reported
SELECT key, kind FROM migrate_diff('inflight', 'vif_trg_t');
SELECT key, kind FROM migrate_diff('inflight', 'vif_trg_t', stable_for => '30 seconds');
SELECT key, kind FROM migrate_diff('inflight', 'vif_wm_t');
SELECT key, kind FROM migrate_diff('inflight', 'vif_wm_t', stable_for => '30 seconds');
SELECT regexp_replace(vif_mask(details), '^diff \d+', 'diff N') AS diff_event
  FROM migrate.event WHERE event = 'diff' ORDER BY event_id DESC LIMIT 1;

-- ---- positive controls: real mismatches outside the window still fail ----
-- the watermark table synced up to now: 50 (10 minutes old) is no longer
-- in flight, and the target does not have it
UPDATE migrate.sync_state SET position = now()::text WHERE target = 'vif_wm_t'::regclass;
SELECT migrate._in_flight_keys('inflight', 'vif_wm_t', '30 seconds') AS wm_keys;
-- a target row changed by hand, not in the change relation
UPDATE vif_trg_t SET v = 'corrupt' WHERE id = 20;
SELECT target, check_name, source_value, target_value, ok
  FROM vif_show(ARRAY(SELECT v FROM migrate_verify('inflight', stable_for => '30 seconds') v))
 WHERE NOT ok;
SELECT key, kind FROM migrate_diff('inflight', 'vif_trg_t', stable_for => '30 seconds');
SELECT key, kind FROM migrate_diff('inflight', 'vif_wm_t', stable_for => '30 seconds');
-- repaired: passes again
UPDATE vif_trg_t SET v = 't20' WHERE id = 20;
INSERT INTO vif_wm_t SELECT * FROM legacy.vif_wm WHERE id = 50
    ON CONFLICT (id) DO UPDATE SET v = EXCLUDED.v, updated_at = EXCLUDED.updated_at;
SELECT count(*) AS checks, bool_and(ok) AS passed
  FROM migrate_verify('inflight', stable_for => '30 seconds');

-- trigger: change rows applied and waiting in prune are not in flight
UPDATE migrate.sync_state SET prune = ARRAY(SELECT seq FROM vif_changes WHERE k = 5)
 WHERE target = 'vif_trg_t'::regclass;
SELECT migrate._in_flight_keys('inflight', 'vif_trg_t', '30 seconds') AS trg_keys;
UPDATE migrate.sync_state SET prune = NULL WHERE target = 'vif_trg_t'::regclass;
-- a pending TRUNCATE puts every key of the target in flight
INSERT INTO vif_changes (k, op) VALUES (NULL, 'T');
SELECT count(*) AS trg_keys FROM migrate._in_flight_keys('inflight', 'vif_trg_t', '30 seconds');
SELECT source_value, regexp_replace(details, '.*; ', '') AS how
  FROM migrate_verify('inflight', stable_for => '30 seconds')
 WHERE target = 'vif_trg_t'::regclass AND check_name = 'in flight';
DELETE FROM vif_changes WHERE op = 'T';
-- capture trigger with its change relation gone: a clear error
UPDATE migrate.sync_state SET change_relation = 'public.vif_gone' WHERE target = 'vif_trg_t'::regclass;
SELECT test_error($$SELECT * FROM migrate_verify('inflight', stable_for => '30 seconds')$$);
UPDATE migrate.sync_state SET change_relation = 'public.vif_changes' WHERE target = 'vif_trg_t'::regclass;
-- a negative window
SELECT test_error($$SELECT * FROM migrate_verify('inflight', stable_for => '-1 second')$$);
SELECT test_error($$SELECT * FROM migrate_diff('inflight', 'vif_wm_t', stable_for => '-1 second')$$);

-- ---- rows a sync quarantined are left out, like the load's rejects ----
-- the trigger table's changes applied by hand, as a sync would
UPDATE vif_trg_t SET v = 'changed' WHERE id = 5;
DELETE FROM vif_trg_t WHERE id = 9;
INSERT INTO vif_trg_t VALUES (60, 'new');
DELETE FROM vif_changes;
-- row 20 changed at the source to a version a sync quarantined: the sync
-- removed it from the target; until the reject is recorded it is a mismatch
UPDATE legacy.vif_trg SET v = 'bad' WHERE id = 20;
DELETE FROM vif_trg_t WHERE id = 20;
SELECT check_name, source_value, target_value, ok FROM migrate_verify('inflight', run => :run, stable_for => '30 seconds')
 WHERE target = 'vif_trg_t'::regclass;
INSERT INTO migrate.run (plan, mode, state, finished_at, batch_size, owner)
VALUES ('inflight', 'sync', 'succeeded', now(), 1000, current_user::regrole) RETURNING run_id AS sync_run \gset
INSERT INTO migrate.reject (run_id, target, source_key, reason, message)
VALUES (:sync_run, 'vif_trg_t', '20', 'no_bad', 'rule "no_bad" failed');
SELECT check_name, source_value, target_value, ok, vif_mask(details) AS details
  FROM migrate_verify('inflight', run => :run, stable_for => '30 seconds')
 WHERE target = 'vif_trg_t'::regclass;
SELECT key, kind FROM migrate_diff('inflight', 'vif_trg_t', run => :run);
DELETE FROM migrate.run WHERE run_id = :sync_run;

-- ---- a composite key: a key in flight is a leading key value ----
CREATE TABLE vif_pair_t (a int, b int, v text, PRIMARY KEY (a, b));
CREATE TABLE vif_pair_changes (seq bigserial PRIMARY KEY, k int, op "char", at timestamptz DEFAULT clock_timestamp());
SELECT migrate_plan('inflight_pairs', source_schema => 'legacy');
SELECT migrate_table('inflight_pairs', 'pairs', 'vif_pair_t', capture => 'trigger');
SELECT migrate_run('inflight_pairs') AS pair_run \gset
INSERT INTO migrate.sync_state (plan, target, capture, change_relation)
VALUES ('inflight_pairs', 'vif_pair_t', 'trigger', 'public.vif_pair_changes');
-- the target differs at (3, 7) and (5, 0); a change of leading key 3 is pending
UPDATE vif_pair_t SET v = 'stale' WHERE (a, b) IN ((3, 7), (5, 0));
INSERT INTO vif_pair_changes (k, op) VALUES (3, 'U');
-- every row of a = 3 is left out; (5, 0) still fails
SELECT check_name, source_value, target_value, ok, details
  FROM vif_show(ARRAY(SELECT v FROM migrate_verify('inflight_pairs', stable_for => '1 minute') v));
SELECT key, kind, columns FROM migrate_diff('inflight_pairs', 'vif_pair_t', stable_for => '1 minute');
SELECT key, kind, columns FROM migrate_diff('inflight_pairs', 'vif_pair_t');
DELETE FROM migrate.plan WHERE plan_name = 'inflight_pairs';
DROP TABLE vif_pair_t, vif_pair_changes;

-- ---- where sync stands: migrate_sync_status() and the report ----
UPDATE migrate.sync_state
   SET position = '2024-03-01 12:00:00+00', last_sync_at = '2024-03-01 12:00:05+00', last_sync_run = 0,
       lag = '00:00:04', passes = 7, applied_inserted = 3, applied_updated = 5, applied_deleted = 0,
       applied_rejected = 1
 WHERE target = 'vif_wm_t'::regclass;
UPDATE migrate.sync_state
   SET position = '42', last_sync_at = '2024-03-01 12:00:06+00', last_sync_run = 0,
       lag = '00:00:01', passes = 2, applied_inserted = 1, applied_deleted = 2,
       last_error = 'could not connect to the source'
 WHERE target = 'vif_trg_t'::regclass;
SELECT plan, target, capture, watermark, overlap, armed_at IS NOT NULL AS armed, position,
       last_sync_at, behind > '1 day' AS behind, lag, passes, applied_inserted, applied_updated,
       applied_deleted, applied_rejected, last_error
  FROM migrate_sync_status('inflight');
SELECT count(*) FROM migrate_sync_status() WHERE plan = 'inflight';
\pset format unaligned
\pset tuples_only on
SELECT regexp_replace(line, '\(run \d+\)', '(run N)')
  FROM (SELECT regexp_split_to_table(migrate_report(:run), E'\n') AS line) x
 WHERE line ~ '^## Sync' OR line ~ '^\| (table|---|vif_)[^|]* \| (capture|---|watermark|trigger|diff)'
    OR line LIKE '%last sync failed%';
-- a sensitive watermark column: its position does not show
SELECT migrate_sensitive('inflight', 'vif_wm_t', 'updated_at');
SELECT regexp_replace(line, '\(run \d+\)', '(run N)')
  FROM (SELECT regexp_split_to_table(migrate_report(:run), E'\n') AS line) x
 WHERE line LIKE '| vif_wm_t | watermark%';
DELETE FROM migrate.sensitive_column WHERE plan = 'inflight';
\pset format aligned
\pset tuples_only off

-- ---- with the engine: an incremental run, a live source, migrate_sync() ----
\c migrate_src
SET client_min_messages = warning;
-- the newest row (id 1) is a minute past the others: inside the overlap
CREATE TABLE vif_e (id int PRIMARY KEY, v text, qty int, updated_at timestamptz NOT NULL);
INSERT INTO vif_e SELECT g, 'e' || g, g, now() - interval '1 hour' - g * interval '1 minute'
  FROM generate_series(1, 50) g;
\c :regress_db
SET client_min_messages = warning;
\set SHOW_CONTEXT never
IMPORT FOREIGN SCHEMA public LIMIT TO (vif_e) FROM SERVER src INTO legacy;
CREATE TABLE vif_e_t (id int PRIMARY KEY, v text, qty int, updated_at timestamptz);
SELECT migrate_plan('inflight_engine', source_schema => 'legacy');
SELECT migrate_table('inflight_engine', 'vif_e', 'vif_e_t', capture => 'watermark', watermark => 'updated_at',
                     options => '{"reject_limit": null}');
SELECT migrate_rule('inflight_engine', 'vif_e_t', 'qty_not_negative', 'qty >= 0');
SELECT migrate_run('inflight_engine', mode => 'incremental') AS e_run \gset
SELECT position::timestamptz = (SELECT max(updated_at) FROM legacy.vif_e) AS armed_at_max
  FROM migrate.sync_state WHERE plan = 'inflight_engine';
-- the source moves on: 3 rows updated, row 20 to a version the rule rejects
UPDATE legacy.vif_e SET v = v || '+', updated_at = now() WHERE id IN (5, 6, 7);
UPDATE legacy.vif_e SET qty = -1, updated_at = now() WHERE id = 20;
SELECT check_name, ok FROM migrate_verify('inflight_engine') WHERE NOT ok;
-- in flight: the 4 changed now, and row 1 in the overlap (position minus a minute)
SELECT migrate._in_flight_keys('inflight_engine', 'vif_e_t', '30 seconds') AS e_keys;
SELECT check_name, source_value, target_value, ok, details
  FROM vif_show(ARRAY(SELECT v FROM migrate_verify('inflight_engine', stable_for => '30 seconds') v));
-- a sync applies the changes; row 20 leaves the target for migrate.reject
SELECT migrate_sync('inflight_engine') AS e_sync \gset
SELECT passes, applied_inserted, applied_updated, applied_deleted, applied_rejected
  FROM migrate_sync_status('inflight_engine');
SELECT source_key, reason FROM migrate.reject WHERE run_id = :e_sync;
-- the load's run and the sync's run verify without a window: the key the
-- sync quarantined is left out
SELECT check_name, source_value, target_value, ok, details
  FROM vif_show(ARRAY(SELECT v FROM migrate_verify('inflight_engine', run => :e_run) v));
SELECT count(*) AS checks, bool_and(ok) AS passed FROM migrate_verify('inflight_engine', run => :e_sync);
SELECT count(*) AS diffs FROM migrate_diff('inflight_engine', 'vif_e_t');
-- the sync run's report: its Sync section
\pset format unaligned
\pset tuples_only on
SELECT regexp_replace(regexp_replace(regexp_replace(line, '\(run \d+\)', '(run N)'),
                      '\| [^|]*\| [^|]* \(run N\) \| [^|]* \|', '| <position> | <time> (run N) | <lag> |'),
                      '^\| run \| \d+', '| run | N')
  FROM (SELECT regexp_split_to_table(migrate_report(:e_sync), E'\n') AS line) x
 WHERE line ~ '^## Sync' OR line ~ '^\| (table|---|vif_)[^|]* \| (capture|---|watermark)' OR line ~ '^\| run \|';
\pset format aligned
\pset tuples_only off
DELETE FROM migrate.plan WHERE plan_name = 'inflight_engine';

-- ---- row-level security: sync state of other owners is not visible ----
CREATE ROLE regress_vif_owner;
CREATE ROLE regress_vif_eve;
CREATE TABLE vif_own_src (id int PRIMARY KEY, v text, changed_at timestamptz);
INSERT INTO vif_own_src SELECT g, 'o' || g, now() FROM generate_series(1, 5) g;
CREATE TABLE vif_own_t (id int PRIMARY KEY, v text, changed_at timestamptz);
GRANT SELECT ON vif_own_src TO regress_vif_owner;
GRANT SELECT, INSERT ON vif_own_t TO regress_vif_owner;
SET ROLE regress_vif_owner;
SELECT migrate_plan('vif_owned', source_schema => 'public');
SELECT migrate_table('vif_owned', 'vif_own_src', 'vif_own_t', capture => 'watermark', watermark => 'changed_at');
RESET ROLE;
INSERT INTO migrate.sync_state (plan, target, capture, position)
VALUES ('vif_owned', 'vif_own_t', 'watermark', (now() - interval '1 hour')::text);
SET ROLE regress_vif_owner;
-- its own state only, and its keys in flight (run as a role without superuser)
SELECT plan, target FROM migrate.sync_state ORDER BY 1;
SELECT plan, target, capture FROM migrate_sync_status();
SELECT count(*) AS own_keys FROM migrate._in_flight_keys('vif_owned', 'vif_own_t', '30 seconds');
SELECT test_error($$SELECT * FROM migrate._in_flight_keys('inflight', 'vif_wm_t', '30 seconds')$$);
SET ROLE regress_vif_eve;
SELECT count(*) AS eve_sees FROM migrate.sync_state;
SELECT count(*) AS eve_status FROM migrate_sync_status();
SELECT test_error($$SELECT * FROM migrate_verify('inflight', stable_for => '30 seconds')$$);
SELECT test_error($$SELECT * FROM migrate._in_flight_keys('vif_owned', 'vif_own_t', '30 seconds')$$);
SELECT test_error($$INSERT INTO migrate.sync_state (plan, target, capture) VALUES ('vif_owned', 'vif_own_t', 'diff')$$);
RESET ROLE;
DELETE FROM migrate.plan WHERE plan_name = 'vif_owned';
DROP TABLE vif_own_src, vif_own_t;
DROP ROLE regress_vif_owner, regress_vif_eve;
