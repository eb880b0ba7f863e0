/*
 * catalog.sql: the catalog of the migrate extension in its current shape:
 * the schema, every table, sequence, type and index, which tables pg_dump
 * keeps (pg_extension_config_dump), and the grants on them.  No functions
 * and no views (those are in the other files of sql/).
 *
 * Built by make: sql/migrate--X.Y.sql (the install script) is an \echo guard,
 * this file, then security.sql, plan.sql, run.sql, verify.sql, diff.sql,
 * report.sql, assess.sql, sync.sql and cutover.sql, in that order, with
 * "CREATE OR REPLACE" made "CREATE" (so a function defined twice fails the
 * install).  This file is NOT part of the
 * upgrade scripts: a change here needs the same change as a delta (ALTER
 * TABLE ..., CREATE TABLE ...) in sql/updates/<current>--<next>.sql.
 * test/sql/99_upgrade.sql checks that a fresh install and an upgraded one
 * have the same catalog.  Columns added by an upgrade come last, in the
 * order the upgrades add them, so that both have the same row types.
 */

CREATE SCHEMA migrate;
GRANT USAGE ON SCHEMA migrate TO PUBLIC;

/* ---------------------------------------------------------------------
 * Plans and mappings.  Kept by pg_dump (pg_extension_config_dump below), so
 * a dump of the target database carries the DBA's plans with it.
 * --------------------------------------------------------------------- */

CREATE TABLE migrate.plan (
    plan_name       text PRIMARY KEY CHECK (plan_name <> '' AND octet_length(plan_name) < 200),
    source_server   name,
    source_schema   name,
    target_schema   name NOT NULL DEFAULT 'public',
    options         jsonb NOT NULL DEFAULT '{}'
                    CHECK (jsonb_typeof(options) = 'object'),
    created_by      name NOT NULL DEFAULT current_user,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    -- added by 0.4: the role a run of the plan executes as (see "Who may
    -- do what" below); a role sees and changes only plans of roles it is
    -- a member of
    owner           regrole NOT NULL DEFAULT pg_catalog.to_regrole(pg_catalog.quote_ident(CURRENT_USER))
);

CREATE TABLE migrate.table_map (
    plan        text NOT NULL REFERENCES migrate.plan ON UPDATE CASCADE ON DELETE CASCADE,
    target      regclass NOT NULL,
    source      text NOT NULL CHECK (source <> ''),    -- schema-qualified, quoted
    -- target columns; none only for a file source (options 'file') loaded in mode insert
    key         name[] NOT NULL,
    filter      text,                                  -- SQL over source columns
    mode        text NOT NULL DEFAULT 'insert'
                CHECK (mode IN ('insert', 'upsert', 'skip_existing')),
    watermark   name,
    -- added by 0.5: per-table overrides of the plan's options
    -- (reject_warn, reject_limit)
    options     jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(options) = 'object'),
    -- added by 0.6: how trickle sync finds the source's changes
    -- (sync.sql, src/sync.c), and the overlap a watermark re-reads
    capture     text NOT NULL DEFAULT 'none'
                CHECK (capture IN ('none', 'watermark', 'trigger', 'slot', 'diff')),
    lag         interval CHECK (lag >= '0'),
    PRIMARY KEY (plan, target),
    -- changed by 0.10: a file source needs no key (its records' _pos cut the batches)
    CONSTRAINT table_map_key_check CHECK (cardinality(key) > 0 OR (options ? 'file' AND mode = 'insert'))
);

CREATE TABLE migrate.column_map (
    plan        text NOT NULL,
    target      regclass NOT NULL,
    column_name name NOT NULL,
    expr        text NOT NULL CHECK (expr <> ''),      -- SQL over source columns
    PRIMARY KEY (plan, target, column_name),
    FOREIGN KEY (plan, target) REFERENCES migrate.table_map
        ON UPDATE CASCADE ON DELETE CASCADE
);

CREATE TABLE migrate.value_map (
    map_name    text NOT NULL CHECK (map_name <> ''),
    from_value  text NOT NULL,
    to_value    text,
    PRIMARY KEY (map_name, from_value)
);

-- A value map's name and owner (added by 0.4).  Its entries (value_map)
-- belong to its owner: only members of the owner see or change them, and a
-- run sees only the maps its plan's owner may see.  owner NULL: a map made
-- before 0.4, readable by everyone and changed only by a superuser (who
-- gives it an owner with UPDATE migrate.lookup_map).
CREATE TABLE migrate.lookup_map (
    map_name    text PRIMARY KEY CHECK (map_name <> ''),
    owner       regrole DEFAULT pg_catalog.to_regrole(pg_catalog.quote_ident(CURRENT_USER)),
    created_at  timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE migrate.value_map ADD FOREIGN KEY (map_name) REFERENCES migrate.lookup_map
    ON UPDATE CASCADE ON DELETE CASCADE;

CREATE TABLE migrate.rule (
    plan        text NOT NULL,
    target      regclass NOT NULL,
    rule_name   text NOT NULL CHECK (rule_name <> ''),
    check_expr  text NOT NULL CHECK (check_expr <> ''), -- boolean SQL over target columns
    on_fail     text NOT NULL DEFAULT 'reject'
                CHECK (on_fail IN ('reject', 'warn', 'abort')),
    PRIMARY KEY (plan, target, rule_name),
    FOREIGN KEY (plan, target) REFERENCES migrate.table_map
        ON UPDATE CASCADE ON DELETE CASCADE
);

-- Foreign keys the plan implies but the target does not declare (declared
-- with migrate_foreign_key(); FKs of local source tables are found alone).
CREATE TABLE migrate.foreign_key (
    plan        text NOT NULL,
    target      regclass NOT NULL,
    columns     name[] NOT NULL CHECK (pg_catalog.cardinality(columns) > 0),
    ref_target  regclass NOT NULL,
    ref_columns name[] NOT NULL,
    PRIMARY KEY (plan, target, columns),
    FOREIGN KEY (plan, target) REFERENCES migrate.table_map
        ON UPDATE CASCADE ON DELETE CASCADE,
    CHECK (pg_catalog.cardinality(columns) = pg_catalog.cardinality(ref_columns))
);

-- Source columns whose values must never show in rejects, profiles,
-- verification details, diffs, reports or error texts (added by 0.4,
-- migrate_sensitive()).
CREATE TABLE migrate.sensitive_column (
    plan          text NOT NULL,
    target        regclass NOT NULL,
    source_column name NOT NULL,
    PRIMARY KEY (plan, target, source_column),
    FOREIGN KEY (plan, target) REFERENCES migrate.table_map
        ON UPDATE CASCADE ON DELETE CASCADE
);

SELECT pg_catalog.pg_extension_config_dump('migrate.plan', '');
SELECT pg_catalog.pg_extension_config_dump('migrate.table_map', '');
SELECT pg_catalog.pg_extension_config_dump('migrate.column_map', '');
SELECT pg_catalog.pg_extension_config_dump('migrate.value_map', '');
SELECT pg_catalog.pg_extension_config_dump('migrate.rule', '');
SELECT pg_catalog.pg_extension_config_dump('migrate.foreign_key', '');
SELECT pg_catalog.pg_extension_config_dump('migrate.lookup_map', '');
SELECT pg_catalog.pg_extension_config_dump('migrate.sensitive_column', '');

/* ---------------------------------------------------------------------
 * Runs and their results.  Written by the background workers, one
 * committed transaction per batch (rows, rejects and checkpoint together).
 * --------------------------------------------------------------------- */

CREATE TABLE migrate.run (
    run_id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    plan        text NOT NULL,
    mode        text NOT NULL DEFAULT 'full' CHECK (mode IN ('full', 'incremental', 'sync', 'cutover')),
    dry_run     boolean NOT NULL DEFAULT false,
    state       text NOT NULL DEFAULT 'running'
                CHECK (state IN ('running', 'succeeded', 'failed', 'cancelled', 'interrupted')),
    run_by      name NOT NULL DEFAULT current_user,
    started_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    error       text,
    worker_pid  integer,
    batch_size  integer NOT NULL CHECK (batch_size > 0),
    tables      text[],                                -- NULL: every table of the plan
    cancel_requested boolean NOT NULL DEFAULT false,
    peak_memory_kb bigint,                             -- worker's peak private memory (RssAnon, sampled per batch)
    -- added by 0.2
    parallel    integer NOT NULL DEFAULT 1 CHECK (parallel >= 1 AND parallel <= 64),
    search_path text,                                  -- the caller's, for every worker
    defer_indexes boolean NOT NULL DEFAULT false,
    resumes     integer NOT NULL DEFAULT 0,
    planned     boolean NOT NULL DEFAULT false,        -- units are in run_range
    verified    boolean,                               -- NULL: never verified
    verified_at timestamptz,
    report      text,                                  -- last migrate_report()
    -- added by 0.4
    owner       regrole,                               -- the plan's owner: the workers' role
    maintenance_work_mem text,                         -- the caller's, for index rebuilds
    -- added by 0.9: batches bounded by bytes; the workers' real peak memory
    batch_bytes bigint NOT NULL DEFAULT 0 CHECK (batch_bytes >= 0), -- 0: rows only
    peak_rss_kb bigint,                                -- greatest private peak (VmHWM less shared and file pages) of the run's workers
    CHECK ((state = 'running') = (finished_at IS NULL))
);
CREATE INDEX ON migrate.run (plan, started_at);

CREATE TABLE migrate.run_table (
    run_id      bigint NOT NULL REFERENCES migrate.run ON DELETE CASCADE,
    target      regclass NOT NULL,
    source      text NOT NULL,
    load_order  integer NOT NULL,
    state       text NOT NULL DEFAULT 'pending'
                CHECK (state IN ('pending', 'running', 'succeeded', 'failed', 'cancelled', 'interrupted')),
    rows_read   bigint NOT NULL DEFAULT 0 CHECK (rows_read >= 0),
    rows_written bigint NOT NULL DEFAULT 0 CHECK (rows_written >= 0),
    rows_rejected bigint NOT NULL DEFAULT 0 CHECK (rows_rejected >= 0),
    rows_skipped bigint NOT NULL DEFAULT 0 CHECK (rows_skipped >= 0),
    rows_warned bigint NOT NULL DEFAULT 0 CHECK (rows_warned >= 0),
    batches     bigint NOT NULL DEFAULT 0,
    source_count bigint,                               -- independent count(*) of the source
    last_key    text,                                  -- checkpoint: upper bound of the last committed batch
    started_at  timestamptz,
    finished_at timestamptz,
    error       text,
    -- added by 0.2
    depth       integer NOT NULL DEFAULT 0,            -- foreign-key depth
    estimated_rows bigint,                             -- planner's estimate of the source
    -- added by 0.5: how rows were quarantined (see run_range)
    rows_rejected_setwise bigint NOT NULL DEFAULT 0,
    bisect_steps bigint NOT NULL DEFAULT 0,
    -- added by 0.7: how migrate_rollback() undoes the run's writes to the
    -- table: 'empty' (it was empty when the run started: empty it), 'log'
    -- (migrate.undo), 'off' (no undo kept: a dry run, the plan's option
    -- undo = off, or a run made before 0.7)
    undo        text NOT NULL DEFAULT 'off' CHECK (undo IN ('off', 'empty', 'log')),
    -- added by 0.9: for a table that was empty when the run started, the
    -- sum of migrate_verify()'s row hashes of the rows the run wrote, kept
    -- with each batch (NULL: not kept; a batch that did not hash, or rows
    -- an fk unit moved out, make it NULL): migrate_verify(reread => false)
    -- compares the target with it instead of reading the source again
    loaded_checksum numeric,
    PRIMARY KEY (run_id, target)
);

/*
 * A run is cut into units of work, each committed on its own: key ranges of
 * a table (kind 'load'), and, when the plan defers indexes, the rebuild of
 * each dropped index ('index') and the re-adding of each dropped foreign key
 * ('fk').  Workers claim pending units; a load unit's checkpoint (last_key
 * and counters) commits with its batch's rows.  run_table's counters are
 * the sums over its units, kept in the same transactions.
 */
CREATE TABLE migrate.run_range (
    run_id      bigint NOT NULL,
    target      regclass NOT NULL,
    range_no    integer NOT NULL,
    kind        text NOT NULL DEFAULT 'load' CHECK (kind IN ('load', 'index', 'fk', 'sync')),
    lo          text,                                  -- keys > lo (NULL: from the first key)
    hi          text,                                  -- keys <= hi (NULL: to the last key)
    definition  text,                                  -- index or constraint DDL to restore
    state       text NOT NULL DEFAULT 'pending'
                CHECK (state IN ('pending', 'running', 'succeeded', 'failed', 'cancelled', 'interrupted')),
    rows_read   bigint NOT NULL DEFAULT 0,
    rows_written bigint NOT NULL DEFAULT 0,            -- an fk unit subtracts the orphans it rejects
    rows_rejected bigint NOT NULL DEFAULT 0,
    rows_skipped bigint NOT NULL DEFAULT 0,
    rows_warned bigint NOT NULL DEFAULT 0,
    batches     bigint NOT NULL DEFAULT 0,
    last_key    text,                                  -- checkpoint: upper bound of the last committed batch
    source_count bigint,
    worker_pid  integer,                               -- the worker that owns it now
    started_at  timestamptz,
    finished_at timestamptz,
    check_sql   text,                                  -- fk units: the statement that rejects orphans
    error       text,
    sqlstate    text,
    -- added by 0.5: rows rejected set-wise, by the target's constraints
    -- checked in the batch statement (included in rows_rejected), and the
    -- statements run on a stage table to isolate rows nothing predicted
    rows_rejected_setwise bigint NOT NULL DEFAULT 0,
    bisect_steps bigint NOT NULL DEFAULT 0,
    -- added by 0.5: an fk unit's referenced table (its loads come first)
    ref_target  regclass,
    PRIMARY KEY (run_id, target, range_no),
    FOREIGN KEY (run_id, target) REFERENCES migrate.run_table ON DELETE CASCADE
);

CREATE TABLE migrate.reject (
    reject_id   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id      bigint NOT NULL REFERENCES migrate.run ON DELETE CASCADE,
    target      regclass NOT NULL,
    source_key  text,
    source_row  jsonb,
    reason      text NOT NULL,                         -- rule name or SQLSTATE
    message     text,
    detail      text,
    loaded      boolean NOT NULL DEFAULT false,        -- true for warn rules
    rejected_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ON migrate.reject (run_id, target);

CREATE TABLE migrate.event (
    event_id    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT clock_timestamp(),
    run_id      bigint,
    plan        text,
    actor       name NOT NULL DEFAULT current_user,
    event       text NOT NULL,
    details     text
);

/*
 * Trickle sync (added by 0.6; sync.sql, src/sync.c): where each table of a
 * plan with capture stands.  Written by migrate alone (src/catalog.c), in
 * the transaction that applies a batch of changes: the rows, their rejects
 * and the new position commit together.  A source-side position (a slot's
 * confirmed LSN, a remote change table's rows) moves only after that
 * commit: prune holds the change rows applied but not yet deleted at the
 * source.
 */
CREATE TABLE migrate.sync_state (
    plan        text NOT NULL,
    target      regclass NOT NULL,
    capture     text NOT NULL CHECK (capture IN ('watermark', 'trigger', 'slot', 'diff')),
    position    text,                              -- watermark value, LSN; NULL: nothing applied yet
    change_relation text,                          -- trigger: the change table (or its foreign table)
    slot_name   name,                              -- slot: the source's replication slot
    prune       bigint[],                          -- trigger: change rows applied, to delete at the source
    armed_at    timestamptz,                       -- capture armed (before the initial load)
    armed_run   bigint,
    last_sync_at timestamptz,
    last_sync_run bigint,
    synced_to   text,                              -- the fence of the last complete pass
    lag         interval,                          -- at the last pass: age of the oldest change it applied
    passes      bigint NOT NULL DEFAULT 0,
    applied_inserted bigint NOT NULL DEFAULT 0,
    applied_updated  bigint NOT NULL DEFAULT 0,
    applied_deleted  bigint NOT NULL DEFAULT 0,
    applied_rejected bigint NOT NULL DEFAULT 0,
    last_error  text,
    deferred    text[],                            -- keys whose delete a foreign key refused: retried
    PRIMARY KEY (plan, target),
    FOREIGN KEY (plan, target) REFERENCES migrate.table_map
        ON UPDATE CASCADE ON DELETE CASCADE
);

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

/* ---------------------------------------------------------------------
 * Results of verification and diff (verify.sql, diff.sql)
 * --------------------------------------------------------------------- */

CREATE TABLE migrate.verification (
    verification_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id       bigint NOT NULL REFERENCES migrate.run ON DELETE CASCADE,
    target       regclass NOT NULL,
    check_name   text NOT NULL,                     -- row count, checksum, rule <name>, foreign key <name>
    source_value text,                              -- what the source (or the plan) says
    target_value text,                              -- what the target holds
    ok           boolean NOT NULL,
    details      text,
    verified_at  timestamptz NOT NULL DEFAULT now(), -- one call of migrate_verify(): one timestamp
    verified_by  name NOT NULL DEFAULT current_user
);
CREATE INDEX ON migrate.verification (run_id, verified_at);

-- Results of migrate_diff(), one row per differing key.
CREATE SEQUENCE migrate.diff_id_seq;
CREATE TABLE migrate.diff_result (
    result_id   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    diff_id     bigint NOT NULL,
    plan        text NOT NULL,
    run_id      bigint REFERENCES migrate.run ON DELETE CASCADE,
    target      regclass NOT NULL,
    key         text,                               -- the key's text, as in migrate.reject.source_key
    kind        text NOT NULL CHECK (kind IN ('missing', 'extra', 'changed')),
    columns     name[],                             -- changed: the mapped columns that differ
    diffed_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ON migrate.diff_result (diff_id);

-- One mapped column as verify.sql compares it (migrate._verify_columns).
CREATE TYPE migrate._verify_column AS (column_name name, source_value text, target_value text,
                                       type_name text, hash_template text,
                                       -- added by 0.9: the value in the batch statement's mapped row
                                       loaded_value text);

/* ---------------------------------------------------------------------
 * Results of the assessment (assess.sql)
 * --------------------------------------------------------------------- */

-- Per source column of each mapped table: what migrate_profile() measured.
CREATE TABLE migrate.profile_result (
    profile_id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    plan            text NOT NULL REFERENCES migrate.plan ON UPDATE CASCADE ON DELETE CASCADE,
    target          regclass NOT NULL,
    source          text NOT NULL,                     -- schema-qualified, quoted
    source_column   name NOT NULL,
    source_type     text NOT NULL,
    target_column   name,                              -- NULL: feeds no target column
    target_type     text,                              -- with typmod
    expr            text,                              -- the mapping of target_column
    rows            bigint NOT NULL,                   -- rows of the source (after the table's filter)
    nulls           bigint,
    distinct_values bigint,
    min_value       text,
    max_value       text,
    min_length      integer,                           -- characters of the text form (bytes for bytea)
    max_length      integer,
    cast_failures   bigint,                            -- values the load would refuse (type, typmod, domain)
    not_null_violations bigint,                        -- NULLs mapped into a NOT NULL target column
    note            text,
    profiled_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ON migrate.profile_result (plan, target);

/* ---------------------------------------------------------------------
 * Who may do what (docs/security.md).  Row-level security on every table:
 * a role sees and changes only rows of plans (and value maps) whose owner
 * it is a member of; superusers and the extension's owner (the owner of
 * these tables, which src/catalog.c writes as) bypass it.  This holds
 * however the tables are granted.
 *
 * - Plans and mappings: every role may define plans of its own (SELECT,
 *   INSERT, UPDATE, DELETE granted to PUBLIC, limited to its own rows).
 * - A run's state (run, run_table, run_range, event) is written only by
 *   migrate itself (src/catalog.c): everyone may read the rows of their own
 *   plans, nobody else may write them, so what a worker reads back from
 *   them was written by migrate; the event log is append-only, its who and
 *   when set by the server.
 * - Results (reject, verification, diff_result, profile_result) are
 *   written by the owner's own runs and calls, so the owner's role may add
 *   them (and delete its own diffs and profiles).
 * --------------------------------------------------------------------- */

ALTER TABLE migrate.plan ENABLE ROW LEVEL SECURITY;
CREATE POLICY owner_member ON migrate.plan
    USING (pg_catalog.pg_has_role(owner, 'MEMBER'))
    WITH CHECK (pg_catalog.pg_has_role(owner, 'MEMBER'));

ALTER TABLE migrate.table_map ENABLE ROW LEVEL SECURITY;
CREATE POLICY owner_member ON migrate.table_map
    USING (EXISTS (SELECT FROM migrate.plan p WHERE p.plan_name = table_map.plan));
ALTER TABLE migrate.column_map ENABLE ROW LEVEL SECURITY;
CREATE POLICY owner_member ON migrate.column_map
    USING (EXISTS (SELECT FROM migrate.plan p WHERE p.plan_name = column_map.plan));
ALTER TABLE migrate.rule ENABLE ROW LEVEL SECURITY;
CREATE POLICY owner_member ON migrate.rule
    USING (EXISTS (SELECT FROM migrate.plan p WHERE p.plan_name = rule.plan));
ALTER TABLE migrate.foreign_key ENABLE ROW LEVEL SECURITY;
CREATE POLICY owner_member ON migrate.foreign_key
    USING (EXISTS (SELECT FROM migrate.plan p WHERE p.plan_name = foreign_key.plan));
ALTER TABLE migrate.sensitive_column ENABLE ROW LEVEL SECURITY;
CREATE POLICY owner_member ON migrate.sensitive_column
    USING (EXISTS (SELECT FROM migrate.plan p WHERE p.plan_name = sensitive_column.plan));

-- value maps: a map without owner (made before 0.4) is read by all, changed by none
ALTER TABLE migrate.lookup_map ENABLE ROW LEVEL SECURITY;
CREATE POLICY reader ON migrate.lookup_map FOR SELECT
    USING (owner IS NULL OR pg_catalog.pg_has_role(owner, 'MEMBER'));
CREATE POLICY owner_member ON migrate.lookup_map
    USING (owner IS NOT NULL AND pg_catalog.pg_has_role(owner, 'MEMBER'))
    WITH CHECK (owner IS NOT NULL AND pg_catalog.pg_has_role(owner, 'MEMBER'));
ALTER TABLE migrate.value_map ENABLE ROW LEVEL SECURITY;
CREATE POLICY reader ON migrate.value_map FOR SELECT
    USING (EXISTS (SELECT FROM migrate.lookup_map m WHERE m.map_name = value_map.map_name));
CREATE POLICY owner_member ON migrate.value_map
    USING (EXISTS (SELECT FROM migrate.lookup_map m WHERE m.map_name = value_map.map_name
                      AND m.owner IS NOT NULL AND pg_catalog.pg_has_role(m.owner, 'MEMBER')))
    WITH CHECK (EXISTS (SELECT FROM migrate.lookup_map m WHERE m.map_name = value_map.map_name
                           AND m.owner IS NOT NULL AND pg_catalog.pg_has_role(m.owner, 'MEMBER')));

-- a run's state: read by the owner's members, written by migrate alone
ALTER TABLE migrate.run ENABLE ROW LEVEL SECURITY;
CREATE POLICY owner_member ON migrate.run FOR SELECT
    USING (pg_catalog.pg_has_role(owner, 'MEMBER'));
ALTER TABLE migrate.run_table ENABLE ROW LEVEL SECURITY;
CREATE POLICY owner_member ON migrate.run_table FOR SELECT
    USING (EXISTS (SELECT FROM migrate.run r WHERE r.run_id = run_table.run_id));
ALTER TABLE migrate.run_range ENABLE ROW LEVEL SECURITY;
CREATE POLICY owner_member ON migrate.run_range FOR SELECT
    USING (EXISTS (SELECT FROM migrate.run r WHERE r.run_id = run_range.run_id));
ALTER TABLE migrate.sync_state ENABLE ROW LEVEL SECURITY;
CREATE POLICY owner_member ON migrate.sync_state FOR SELECT
    USING (EXISTS (SELECT FROM migrate.plan p WHERE p.plan_name = sync_state.plan));
-- added by 0.7: the undo log is read by migrate alone; rollbacks and
-- cutovers are read by the owner's members, written by migrate alone
ALTER TABLE migrate.undo ENABLE ROW LEVEL SECURITY;
ALTER TABLE migrate.rollback ENABLE ROW LEVEL SECURITY;
CREATE POLICY owner_member ON migrate.rollback FOR SELECT
    USING (EXISTS (SELECT FROM migrate.run r WHERE r.run_id = rollback.run_id));
ALTER TABLE migrate.cutover ENABLE ROW LEVEL SECURITY;
CREATE POLICY owner_member ON migrate.cutover FOR SELECT
    USING (EXISTS (SELECT FROM migrate.run r WHERE r.run_id = cutover.run_id));
ALTER TABLE migrate.event ENABLE ROW LEVEL SECURITY;
CREATE POLICY owner_member ON migrate.event FOR SELECT
    USING (CASE WHEN run_id IS NOT NULL
                THEN EXISTS (SELECT FROM migrate.run r WHERE r.run_id = event.run_id)
                ELSE EXISTS (SELECT FROM migrate.plan p WHERE p.plan_name = event.plan) END);

-- results: the owner's runs and calls write them
ALTER TABLE migrate.reject ENABLE ROW LEVEL SECURITY;
CREATE POLICY owner_member ON migrate.reject
    USING (EXISTS (SELECT FROM migrate.run r WHERE r.run_id = reject.run_id));
ALTER TABLE migrate.verification ENABLE ROW LEVEL SECURITY;
CREATE POLICY owner_member ON migrate.verification
    USING (EXISTS (SELECT FROM migrate.run r WHERE r.run_id = verification.run_id));
ALTER TABLE migrate.diff_result ENABLE ROW LEVEL SECURITY;
CREATE POLICY owner_member ON migrate.diff_result
    USING (EXISTS (SELECT FROM migrate.plan p WHERE p.plan_name = diff_result.plan));
ALTER TABLE migrate.profile_result ENABLE ROW LEVEL SECURITY;
CREATE POLICY owner_member ON migrate.profile_result
    USING (EXISTS (SELECT FROM migrate.plan p WHERE p.plan_name = profile_result.plan));

GRANT SELECT, INSERT, UPDATE, DELETE
   ON migrate.plan, migrate.table_map, migrate.column_map, migrate.rule,
      migrate.foreign_key, migrate.sensitive_column, migrate.lookup_map,
      migrate.value_map TO PUBLIC;
GRANT SELECT ON migrate.run, migrate.run_table, migrate.run_range, migrate.event, migrate.sync_state TO PUBLIC;
GRANT SELECT ON migrate.rollback, migrate.cutover TO PUBLIC;
GRANT SELECT, INSERT ON migrate.reject, migrate.verification TO PUBLIC;
GRANT UPDATE (source_row) ON migrate.reject TO PUBLIC;
GRANT SELECT, INSERT, DELETE ON migrate.diff_result, migrate.profile_result TO PUBLIC;
GRANT USAGE ON SEQUENCE migrate.diff_id_seq TO PUBLIC;

/* ---------------------------------------------------------------------
 * File sources (added by 0.10; src/filesrc.c, sql/file.sql): the foreign
 * data wrapper migrate_file and its one server.  The only functions of
 * this file: a wrapper needs its handler and validator before it exists.
 * USAGE on the server is PUBLIC because the validator, like file_fdw's,
 * lets only superusers and members of pg_read_server_files name a path,
 * and every scan checks that again.
 * --------------------------------------------------------------------- */

CREATE FUNCTION migrate._file_fdw_handler()
RETURNS fdw_handler
AS 'MODULE_PATHNAME', 'migrate_file_fdw_handler'
LANGUAGE C STRICT
SET search_path = pg_catalog, pg_temp;

CREATE FUNCTION migrate._file_fdw_validator(text[], oid)
RETURNS void
AS 'MODULE_PATHNAME', 'migrate_file_fdw_validator'
LANGUAGE C STRICT
SET search_path = pg_catalog, pg_temp;

CREATE FOREIGN DATA WRAPPER migrate_file
    HANDLER migrate._file_fdw_handler VALIDATOR migrate._file_fdw_validator;
CREATE SERVER migrate_files FOREIGN DATA WRAPPER migrate_file;
-- called by the server itself (no EXECUTE check), never by a role
REVOKE ALL ON FUNCTION migrate._file_fdw_handler(), migrate._file_fdw_validator(text[], oid) FROM PUBLIC;
GRANT USAGE ON FOREIGN SERVER migrate_files TO PUBLIC;
