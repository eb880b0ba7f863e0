/*
 * updates/0.6--0.7.sql: the deltas from 0.6 to 0.7 (issue 14, blue-green
 * cutover and rollback).  Same rules as updates/0.2--0.3.sql: DDL and data
 * fix-ups only; the functions follow.  Every change here has its twin in
 * sql/catalog.sql (test/sql/99_upgrade.sql compares them).
 */

-- ==== catalog: cutover runs, the undo log, rollbacks, cutovers ====
ALTER TABLE migrate.run DROP CONSTRAINT run_mode_check;
ALTER TABLE migrate.run ADD CONSTRAINT run_mode_check
    CHECK (mode IN ('full', 'incremental', 'sync', 'cutover'));
-- runs made before 0.7 kept no undo log: 'off', rollback refuses them
ALTER TABLE migrate.run_table
    ADD COLUMN undo text NOT NULL DEFAULT 'off' CHECK (undo IN ('off', 'empty', 'log'));

/*
 * Rollback (added by 0.7; src/undo.c, src/rollback.c): the undo log of
 * runs, kept in the transaction of each batch it undoes, for tables that
 * were not empty when the run started (run_table.undo = 'log').  One row
 * per key a batch wrote or deleted.  It holds rows of the target as they
 * were, so no role but the extension's owner reads it (row-level security,
 * no policy); migrate_rollback() replays it as the plan's owner and
 * deletes what it replayed: what stays is a conflict (a row changed since
 * the run), replayed only when forced.
 */
CREATE TABLE migrate.undo (
    run_id      bigint NOT NULL,                   -- no foreign key: a probe per row written; migrate_drop_plan() cleans up
    target      regclass NOT NULL,
    seq         bigint GENERATED ALWAYS AS IDENTITY,   -- order of a run's writes of one key
    key         text[] NOT NULL,                   -- the key columns' values, as text
    pre         text,                              -- the row before the write (the target's row type as text); NULL: the key was absent
    post_xmin   xid                                -- xmin of the row the write left; NULL: the write deleted it
);
CREATE INDEX ON migrate.undo (run_id, target, seq);

-- What migrate_rollback() did for each table of a run, one row per table,
-- updated by a later call (a forced one replays the conflicts).
CREATE TABLE migrate.rollback (
    run_id      bigint NOT NULL REFERENCES migrate.run ON DELETE CASCADE,
    target      regclass NOT NULL,
    state       text NOT NULL CHECK (state IN ('done', 'conflicts')),
    rows_deleted    bigint NOT NULL DEFAULT 0,         -- rows the run inserted
    rows_restored   bigint NOT NULL DEFAULT 0,         -- rows the run overwrote, back as they were
    rows_reinserted bigint NOT NULL DEFAULT 0,         -- rows the run deleted, back
    conflicts   bigint NOT NULL DEFAULT 0,             -- rows changed since the run, left alone
    forced      boolean NOT NULL DEFAULT false,
    rolled_back_by name NOT NULL,
    rolled_back_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, target)
);

/*
 * Blue-green cutover (added by 0.7; src/cutover.c, sql/cutover.sql): one
 * row per swap, written in the swap's transaction by migrate alone, with
 * what migrate_rollback() of the cutover's run needs to reverse it.
 */
CREATE TABLE migrate.cutover (
    run_id      bigint PRIMARY KEY REFERENCES migrate.run ON DELETE CASCADE,  -- the run of mode 'cutover'
    plan        text NOT NULL,
    live_schema name NOT NULL,                     -- options->>'cutover_into'
    shadow_schema name NOT NULL,                   -- the plan's target_schema
    retired_schema name,                           -- where the live schema went (NULL: there was none)
    state       text NOT NULL CHECK (state IN ('swapped', 'rolled_back')),
    fence       jsonb,                             -- per table: the capture position synced to before the locks
    attempts    integer NOT NULL,                  -- lock attempts made
    lock_wait   interval,                          -- waiting for the live tables' locks, all attempts
    lock_held   interval,                          -- from holding every lock to the end of the swap
    carried     jsonb NOT NULL DEFAULT '{}',       -- what the swap carried over (grants, sequences, views, foreign keys)
    swapped_by  name NOT NULL,
    swapped_at  timestamptz NOT NULL DEFAULT now(),
    rolled_back_by name,
    rolled_back_at timestamptz
);

-- added by 0.7: the undo log is read by migrate alone; rollbacks and
-- cutovers are read by the owner's members, written by migrate alone
ALTER TABLE migrate.undo ENABLE ROW LEVEL SECURITY;
ALTER TABLE migrate.rollback ENABLE ROW LEVEL SECURITY;
CREATE POLICY owner_member ON migrate.rollback FOR SELECT
    USING (EXISTS (SELECT FROM migrate.run r WHERE r.run_id = rollback.run_id));
ALTER TABLE migrate.cutover ENABLE ROW LEVEL SECURITY;
CREATE POLICY owner_member ON migrate.cutover FOR SELECT
    USING (EXISTS (SELECT FROM migrate.run r WHERE r.run_id = cutover.run_id));
GRANT SELECT ON migrate.rollback, migrate.cutover TO PUBLIC;

-- ==== undo log and rollback of runs ====

-- ==== cutover: the swap ====

-- ==== cutover: migrate_cutover() ====
