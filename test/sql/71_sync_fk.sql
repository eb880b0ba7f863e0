-- Trickle sync across a foreign key: parents sync before children, so a
-- new child finds its new parent; a parent the source deleted is still
-- referenced until its children's deletes are applied: its delete waits
-- (sync_state.deferred) for a unit after every pass of the run, in the
-- same migrate_sync().
\set SHOW_CONTEXT never
SET client_min_messages = warning;
\set regress_db :DBNAME
\c migrate_src
SET client_min_messages = warning;
CREATE TABLE fk_parent (id int PRIMARY KEY, name text);
CREATE TABLE fk_child (id int PRIMARY KEY, parent_id int NOT NULL REFERENCES fk_parent, v text);
INSERT INTO fk_parent SELECT g, 'p' || g FROM generate_series(1, 50) g;
INSERT INTO fk_child SELECT g, g % 50 + 1, 'c' || g FROM generate_series(1, 500) g;
\c :regress_db
SET client_min_messages = warning;
IMPORT FOREIGN SCHEMA public LIMIT TO (fk_parent, fk_child) FROM SERVER src INTO legacy;
CREATE TABLE fk_parent (id int PRIMARY KEY, name text);
CREATE TABLE fk_child (id int PRIMARY KEY, parent_id int NOT NULL REFERENCES fk_parent, v text);
SELECT migrate_plan('fk', source_schema => 'legacy');
SELECT migrate_table('fk', 'fk_parent', 'fk_parent', capture => 'diff');
SELECT migrate_table('fk', 'fk_child', 'fk_child', capture => 'diff');
SELECT migrate_run('fk', mode => 'incremental') AS run \gset
SELECT count(*) FROM fk_parent;
SELECT count(*) FROM fk_child;
\c migrate_src
DELETE FROM fk_child WHERE parent_id IN (3, 4);
DELETE FROM fk_parent WHERE id IN (3, 4);
INSERT INTO fk_parent VALUES (100, 'new parent');
INSERT INTO fk_child VALUES (1000, 100, 'new child');
UPDATE fk_child SET parent_id = 100 WHERE id = 10;
\c :regress_db
SET client_min_messages = warning;
SELECT migrate_sync('fk') AS sync \gset
-- the parent's pass deferred two deletes; its second unit applied them
SELECT t.target, t.range_no, t.state FROM migrate.run_range t WHERE t.run_id = :sync ORDER BY 1, 2;
SELECT target, applied_inserted, applied_updated, applied_deleted, applied_rejected, deferred
  FROM migrate.sync_state WHERE plan = 'fk' ORDER BY target;
SELECT (SELECT count(*) FROM (SELECT * FROM legacy.fk_parent EXCEPT SELECT * FROM fk_parent) d) AS parent_missing,
       (SELECT count(*) FROM (SELECT * FROM fk_parent EXCEPT SELECT * FROM legacy.fk_parent) d) AS parent_extra,
       (SELECT count(*) FROM (SELECT * FROM legacy.fk_child EXCEPT SELECT * FROM fk_child) d) AS child_missing,
       (SELECT count(*) FROM (SELECT * FROM fk_child EXCEPT SELECT * FROM legacy.fk_child) d) AS child_extra;
-- a target-side child the plan does not sync keeps a deleted parent: its delete stays deferred
CREATE TABLE fk_local_note (parent_id int REFERENCES fk_parent, note text);
INSERT INTO fk_local_note VALUES (5, 'kept by the target');
\c migrate_src
DELETE FROM fk_child WHERE parent_id = 5;
DELETE FROM fk_parent WHERE id = 5;
\c :regress_db
SET client_min_messages = warning;
SELECT migrate_sync('fk') AS sync2 \gset
SELECT target, deferred FROM migrate.sync_state WHERE plan = 'fk' ORDER BY target;
SELECT count(*) FROM fk_parent WHERE id = 5;
DELETE FROM fk_local_note;
SELECT migrate_sync('fk') AS sync3 \gset
SELECT target, deferred FROM migrate.sync_state WHERE plan = 'fk' ORDER BY target;
SELECT count(*) FROM fk_parent WHERE id = 5;

-- migrate_drop_plan(): the plan and its sync state go, its runs stay
SELECT migrate_drop_plan('fk');
SELECT count(*) FROM migrate.plan WHERE plan_name = 'fk';
SELECT count(*) FROM migrate.sync_state WHERE plan = 'fk';
SELECT count(*) > 0 AS runs_kept FROM migrate.run WHERE plan = 'fk';
SELECT test_error($$SELECT migrate_drop_plan('fk')$$);
