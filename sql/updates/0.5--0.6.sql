/*
 * updates/0.5--0.6.sql: the deltas from 0.5 to 0.6 (issue 13, trickle sync
 * and the parallel run).  Same rules as updates/0.2--0.3.sql: DDL and data
 * fix-ups only; the functions follow.  Every change here has its twin in
 * sql/catalog.sql (test/sql/99_upgrade.sql compares them).
 */

-- ==== catalog: capture per table, sync runs, sync state ====
ALTER TABLE migrate.table_map
    ADD COLUMN capture text NOT NULL DEFAULT 'none'
        CHECK (capture IN ('none', 'watermark', 'trigger', 'slot', 'diff')),
    ADD COLUMN lag interval CHECK (lag >= '0');
-- migrate_table() takes capture and lag (sql/plan.sql): the old signature goes
-- (IF EXISTS: upgrades from before 0.5 create it only with the functions below)
DROP FUNCTION IF EXISTS @extschema@.migrate_table(text, text, text, text, text, text, text, jsonb);

ALTER TABLE migrate.run DROP CONSTRAINT run_mode_check;
ALTER TABLE migrate.run ADD CONSTRAINT run_mode_check CHECK (mode IN ('full', 'incremental', 'sync'));
ALTER TABLE migrate.run_range DROP CONSTRAINT run_range_kind_check;
ALTER TABLE migrate.run_range ADD CONSTRAINT run_range_kind_check
    CHECK (kind IN ('load', 'index', 'fk', 'sync'));

CREATE TABLE migrate.sync_state (
    plan        text NOT NULL,
    target      regclass NOT NULL,
    capture     text NOT NULL CHECK (capture IN ('watermark', 'trigger', 'slot', 'diff')),
    position    text,
    change_relation text,
    slot_name   name,
    prune       bigint[],
    armed_at    timestamptz,
    armed_run   bigint,
    last_sync_at timestamptz,
    last_sync_run bigint,
    synced_to   text,
    lag         interval,
    passes      bigint NOT NULL DEFAULT 0,
    applied_inserted bigint NOT NULL DEFAULT 0,
    applied_updated  bigint NOT NULL DEFAULT 0,
    applied_deleted  bigint NOT NULL DEFAULT 0,
    applied_rejected bigint NOT NULL DEFAULT 0,
    last_error  text,
    deferred    text[],
    PRIMARY KEY (plan, target),
    FOREIGN KEY (plan, target) REFERENCES migrate.table_map
        ON UPDATE CASCADE ON DELETE CASCADE
);
ALTER TABLE migrate.sync_state ENABLE ROW LEVEL SECURITY;
CREATE POLICY owner_member ON migrate.sync_state FOR SELECT
    USING (EXISTS (SELECT FROM migrate.plan p WHERE p.plan_name = sync_state.plan));
GRANT SELECT ON migrate.sync_state TO PUBLIC;

-- ==== trigger capture ====

-- ==== slot capture ====

-- ==== verify, status, report ====
-- migrate_verify() and migrate_diff() take stable_for (a parallel run,
-- sql/verify.sql, sql/diff.sql): the old signatures go, public and
-- implementation (IF EXISTS: the implementations came with 0.4's functions)
DROP FUNCTION IF EXISTS @extschema@.migrate_verify(text, bigint);
DROP FUNCTION IF EXISTS migrate._migrate_verify(text, bigint);
DROP FUNCTION IF EXISTS migrate._verify_table(text, migrate.run, regclass);
DROP FUNCTION IF EXISTS @extschema@.migrate_diff(text, text, bigint, integer);
DROP FUNCTION IF EXISTS migrate._migrate_diff(text, text, bigint, integer);
