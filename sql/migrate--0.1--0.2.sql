/* migrate--0.1--0.2.sql: upgrade from 0.1 to 0.2 */

\echo Use "ALTER EXTENSION migrate UPDATE TO '0.2'" to load this file. \quit

/*
 * The install script of 0.2 is this file appended to migrate--0.1.sql (see
 * the Makefile), so every statement here must work both on a fresh 0.1 and
 * on a database upgraded from 0.1: CREATE OR REPLACE for functions, ADD
 * COLUMN for tables.
 */

-- ==== engine: resume, parallel ranges, progress (issue 3) ====

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
    kind        text NOT NULL DEFAULT 'load' CHECK (kind IN ('load', 'index', 'fk')),
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
    PRIMARY KEY (run_id, target, range_no),
    FOREIGN KEY (run_id, target) REFERENCES migrate.run_table ON DELETE CASCADE
);
GRANT SELECT ON migrate.run_range TO PUBLIC;

ALTER TABLE migrate.run_table ADD COLUMN depth integer NOT NULL DEFAULT 0;      -- foreign-key depth
ALTER TABLE migrate.run_table ADD COLUMN estimated_rows bigint;                 -- planner's estimate of the source
ALTER TABLE migrate.run ADD COLUMN parallel integer NOT NULL DEFAULT 1 CHECK (parallel >= 1);
ALTER TABLE migrate.run ADD COLUMN search_path text;                           -- the caller's, for every worker
ALTER TABLE migrate.run ADD COLUMN defer_indexes boolean NOT NULL DEFAULT false;
ALTER TABLE migrate.run ADD COLUMN resumes integer NOT NULL DEFAULT 0;
ALTER TABLE migrate.run ADD COLUMN planned boolean NOT NULL DEFAULT false;     -- units are in run_range

-- The rows of one key range of a postgres_fdw foreign table, read with a
-- binary COPY (src/copysrc.c); the engine's batch statement reads it in
-- place of the foreign table (SET migrate.copy_source = off: the FDW).
CREATE FUNCTION migrate._copy_source(ftable regclass, key text, lo anyelement, hi anyelement)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'migrate_copy_source_rows'
LANGUAGE C;

-- migrate_resume(run) continues a run from its checkpoints, in its workers
CREATE FUNCTION migrate_resume(run bigint, wait boolean DEFAULT true)
RETURNS bigint
AS 'MODULE_PATHNAME', 'migrate_resume'
LANGUAGE C;

-- Is a run of the plan alive?  Its coordinator holds the plan's advisory
-- lock (class 0x6d696772 "migr", key hashtext(plan): see src/worker.c) for
-- the whole run; a run 'running' without it lost its worker.
CREATE FUNCTION migrate._plan_locked(p_plan text)
RETURNS boolean
LANGUAGE sql STABLE
AS $$
    SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_locks l
                    WHERE l.locktype = 'advisory' AND l.granted
                      AND l.database = (SELECT oid FROM pg_catalog.pg_database
                                         WHERE datname = pg_catalog.current_database())
                      AND l.classid = 1835624306::oid
                      AND l.objid = pg_catalog.hashtext(p_plan)::oid
                      AND l.objsubid = 2)
$$;

-- Runs left 'running' by a worker that is gone (server crash, kill).
CREATE FUNCTION migrate._reap()
RETURNS integer
LANGUAGE plpgsql
AS $$
DECLARE
    n integer;
BEGIN
    WITH dead AS (
        UPDATE migrate.run r SET state = 'interrupted', finished_at = now(),
               error = coalesce(r.error, 'the worker ended without finishing (server crash or terminated)')
         WHERE r.state = 'running' AND NOT migrate._plan_locked(r.plan)
        RETURNING r.run_id, r.plan),
    t AS (UPDATE migrate.run_table rt SET state = 'interrupted' FROM dead
           WHERE rt.run_id = dead.run_id AND rt.state IN ('pending', 'running')),
    g AS (UPDATE migrate.run_range rr SET state = 'interrupted' FROM dead
           WHERE rr.run_id = dead.run_id AND rr.state IN ('pending', 'running')),
    e AS (INSERT INTO migrate.event (run_id, plan, event, details)
          SELECT run_id, plan, 'run interrupted', 'found without a live worker' FROM dead)
    SELECT count(*) INTO n FROM dead;
    RETURN n;
END;
$$;

-- live progress: per table of running runs
CREATE OR REPLACE VIEW migrate.progress AS
SELECT rt.run_id, r.plan, rt.target, rt.state, rt.rows_read, rt.rows_written,
       rt.rows_rejected, rt.rows_skipped, rt.source_count, rt.batches, rt.last_key,
       round(rt.rows_read / nullif(extract(epoch FROM coalesce(rt.finished_at, clock_timestamp()) - rt.started_at), 0))::bigint
           AS rows_per_second,
       rt.started_at, rt.finished_at,
       coalesce(rt.source_count, rt.estimated_rows) AS estimated_rows,
       CASE WHEN rt.state = 'succeeded' THEN 100.0
            ELSE least(99.9, round(100.0 * rt.rows_read / nullif(coalesce(rt.source_count, rt.estimated_rows), 0), 1))
       END AS percent,
       CASE WHEN rt.state = 'running' AND rt.rows_read > 0 AND coalesce(rt.source_count, rt.estimated_rows) > rt.rows_read
            THEN (clock_timestamp() - rt.started_at)
                 * ((coalesce(rt.source_count, rt.estimated_rows) - rt.rows_read)::float8 / rt.rows_read)
       END AS eta,
       (SELECT count(*) FROM migrate.run_range rr
         WHERE rr.run_id = rt.run_id AND rr.target = rt.target AND rr.state = 'running') AS workers,
       (SELECT string_agg(a.pid || ': ' || a.query, '; ' ORDER BY a.pid)
          FROM migrate.run_range rr JOIN pg_catalog.pg_stat_activity a ON a.pid = rr.worker_pid
         WHERE rr.run_id = rt.run_id AND rr.target = rt.target AND rr.state = 'running') AS doing
  FROM migrate.run_table rt
  JOIN migrate.run r USING (run_id)
 WHERE r.state = 'running';

-- live progress: per unit (key range, index rebuild, foreign key) of running runs
CREATE VIEW migrate.progress_range AS
SELECT rr.run_id, r.plan, rr.target, rr.range_no, rr.kind, rr.lo, rr.hi, rr.state,
       rr.rows_read, rr.rows_written, rr.rows_rejected, rr.rows_skipped, rr.batches, rr.last_key,
       round(rr.rows_read / nullif(extract(epoch FROM coalesce(rr.finished_at, clock_timestamp()) - rr.started_at), 0))::bigint
           AS rows_per_second,
       rr.worker_pid, a.query AS doing, rr.started_at, rr.finished_at
  FROM migrate.run_range rr
  JOIN migrate.run r USING (run_id)
  LEFT JOIN pg_catalog.pg_stat_activity a ON a.pid = rr.worker_pid AND rr.state = 'running'
 WHERE r.state = 'running';
GRANT SELECT ON migrate.progress_range TO PUBLIC;

-- where a run stands (the latest run when run is NULL); looking marks runs
-- whose worker is gone as interrupted
DROP FUNCTION migrate_status(bigint);
CREATE FUNCTION migrate_status(run bigint DEFAULT NULL)
RETURNS TABLE (run_id bigint, plan text, run_state text, target regclass, table_state text,
               rows_read bigint, rows_written bigint, rows_rejected bigint, rows_skipped bigint,
               last_key text, started_at timestamptz, finished_at timestamptz, error text,
               percent numeric, rows_per_second bigint, eta interval, workers bigint)
LANGUAGE plpgsql
AS $$
BEGIN
    PERFORM migrate._reap();
    RETURN QUERY
    SELECT r.run_id, r.plan, r.state, rt.target, rt.state,
           rt.rows_read, rt.rows_written, rt.rows_rejected, rt.rows_skipped,
           rt.last_key, rt.started_at, rt.finished_at, coalesce(rt.error, r.error),
           CASE WHEN rt.state = 'succeeded' THEN 100.0
                ELSE least(99.9, round(100.0 * rt.rows_read / nullif(coalesce(rt.source_count, rt.estimated_rows), 0), 1))
           END,
           round(rt.rows_read / nullif(extract(epoch FROM coalesce(rt.finished_at, clock_timestamp()) - rt.started_at), 0))::bigint,
           CASE WHEN rt.state = 'running' AND rt.rows_read > 0 AND coalesce(rt.source_count, rt.estimated_rows) > rt.rows_read
                THEN (clock_timestamp() - rt.started_at)
                     * ((coalesce(rt.source_count, rt.estimated_rows) - rt.rows_read)::float8 / rt.rows_read)
           END,
           (SELECT count(*) FROM migrate.run_range rr
             WHERE rr.run_id = rt.run_id AND rr.target = rt.target AND rr.state = 'running')
      FROM migrate.run r
      LEFT JOIN migrate.run_table rt ON rt.run_id = r.run_id
     WHERE r.run_id = coalesce(migrate_status.run, (SELECT max(x.run_id) FROM migrate.run x))
     ORDER BY rt.load_order;
END;
$$;


-- ==== end of engine section ====




-- ==== verification, diff and report (issue 4) ====

/*
 * migrate_verify() reconciles each table of a run with its source,
 * migrate_diff() finds the keys that differ, migrate_report() writes the run
 * up as Markdown.  All three compare the *mapped* rows: the source side is
 * the plan's expression of each target column, cast as the engine casts it
 * and then to the column's exact type (with its typmod), so renamed, cast
 * and computed columns compare with what the target holds.
 *
 * The checksum of a set of rows is count(*) and the sum of one hash per
 * row: the hash of the row's key seeded with the XOR of every other mapped
 * column's hash_c(c, position), NULL hashing to the position.  A sum is
 * order-independent, the key's hash ties the values to their row (values
 * swapped between rows change it), the position ties each value to its
 * column, NULL differs from every value (NULL and '' differ), and hash_c is
 * the extended hash function of the column type's default hash opclass
 * (hashtextextended for text, so 'a' and 'a ' differ).  When the sums
 * differ, a second statement sums per column (count(c), sum(hash_c(c, key
 * hash))) to name the columns that differ.
 * All these functions are built-in, so postgres_fdw ships the whole aggregate to the
 * source (EXPLAIN VERBOSE shows "Relations: Aggregate on"): only one row
 * crosses the wire.  Where anything is not shippable (a user function such
 * as migrate_lookup, a text cast, another FDW) the same statement streams
 * the source rows once and aggregates them here.  Source and target sides
 * run as one UNION ALL, so with the server option async_capable the source
 * computes while the target is scanned.
 *
 * Rows the run rejected (migrate.reject, not loaded) are left out of both
 * sides, by key.
 */

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
SELECT pg_catalog.pg_extension_config_dump('migrate.foreign_key', '');

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

ALTER TABLE migrate.run ADD COLUMN verified boolean;          -- NULL: never verified
ALTER TABLE migrate.run ADD COLUMN verified_at timestamptz;
ALTER TABLE migrate.run ADD COLUMN report text;                -- last migrate_report()

GRANT SELECT ON migrate.verification, migrate.foreign_key, migrate.diff_result TO PUBLIC;

-- How a value of a type is hashed, as a format() template over the value
-- and a bigint seed: the extended hash function of the type's default hash
-- opclass where it can be called with the value, a shippable rewrite where
-- it cannot, the hash of the text output as the last resort (not shippable:
-- such a column makes the source stream).
CREATE OR REPLACE FUNCTION migrate._hash_template(p_type oid)
RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    t oid := p_type;
    ty pg_type;
    fn text;
    fallback constant text := 'pg_catalog.hashtextextended((%s)::text, %s)';
BEGIN
    LOOP    -- a domain hashes as its base type
        SELECT * INTO ty FROM pg_type WHERE oid = t;
        EXIT WHEN NOT FOUND OR ty.typtype <> 'd';
        t := ty.typbasetype;
    END LOOP;
    CASE t
        WHEN 'date'::regtype THEN
            RETURN 'pg_catalog.timestamp_hash_extended((%s)::timestamp without time zone, %s)';
        WHEN 'timestamptz'::regtype THEN
            -- as a timestamp at UTC, independent of the session's TimeZone:
            -- timezone(interval, timestamptz) is immutable (shipped) and
            -- keeps infinity (a zone name would be looked up per row)
            RETURN 'pg_catalog.timestamp_hash_extended(pg_catalog.timezone(''00:00''::interval, %s), %s)';
        WHEN 'bool'::regtype THEN
            RETURN 'pg_catalog.hashint4extended((%s)::integer, %s)';
        WHEN 'bytea'::regtype THEN
            RETURN 'pg_catalog.hashtextextended(pg_catalog.md5(%s), %s)';
        ELSE
    END CASE;
    SELECT pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(pr.proname) INTO fn
      FROM pg_opclass oc
      JOIN pg_amproc p ON p.amprocfamily = oc.opcfamily AND p.amprocnum = 2
       AND p.amproclefttype = oc.opcintype AND p.amprocrighttype = oc.opcintype
      JOIN pg_proc pr ON pr.oid = p.amproc
      JOIN pg_namespace n ON n.oid = pr.pronamespace
     WHERE oc.opcmethod = (SELECT oid FROM pg_am WHERE amname = 'hash') AND oc.opcdefault
       AND (pr.proargtypes[0] = t
            OR (pr.proargtypes[0] = oc.opcintype
                AND EXISTS (SELECT 1 FROM pg_cast c WHERE c.castsource = t
                               AND c.casttarget = oc.opcintype AND c.castmethod = 'b'))
            OR (pr.proargtypes[0] = 'anyarray'::regtype AND ty.typsubscript = 'array_subscript_handler'::regproc
                AND migrate._hash_template(ty.typelem) <> fallback)
            OR (pr.proargtypes[0] = 'anyenum'::regtype AND ty.typtype = 'e'))
     ORDER BY pr.proargtypes[0] = t DESC,
              (SELECT typispreferred FROM pg_type WHERE oid = oc.opcintype) DESC  -- varchar: text, not bpchar
     LIMIT 1;
    RETURN coalesce(fn || '(%s, %s)', fallback);
END;
$$;

-- Each mapped target column as the checks compare it: the value on the
-- source side (the plan's expression, cast as the engine casts it, then to
-- the column's exact type and typmod, as the INSERT assigns it), on the
-- target side, and its hash template.
CREATE TYPE migrate._verify_column AS (column_name name, source_value text, target_value text,
                                       type_name text, hash_template text);
CREATE OR REPLACE FUNCTION migrate._verify_columns(p_plan text, p_target regclass)
RETURNS SETOF migrate._verify_column
LANGUAGE sql STABLE
AS $$
    SELECT m.column_name,
           CASE WHEN m.type_name IS NULL THEN m.expr
                WHEN m.type_name = pg_catalog.format_type(a.atttypid, a.atttypmod)
                THEN '(' || m.expr || ')::' || m.type_name
                ELSE '((' || m.expr || ')::' || m.type_name || ')::'
                     || pg_catalog.format_type(a.atttypid, a.atttypmod) END,
           't.' || pg_catalog.quote_ident(m.column_name),
           pg_catalog.format_type(a.atttypid, a.atttypmod),
           migrate._hash_template(a.atttypid)
      FROM migrate._mapped_columns(p_plan, p_target) m
      JOIN pg_catalog.pg_attribute a ON a.attrelid = p_target AND a.attname = m.column_name
     ORDER BY m.attnum
$$;

-- The pieces of every statement that compares a table (see the top of this
-- section), as a jsonb object of SQL fragments:
--   source, target          ' FROM ... AS s|t WHERE true[ AND (filter)]'
--   source_aggs, target_aggs  numeric[] of count(*) and the sum of the row hashes
--   source_column_aggs, target_column_aggs  numeric[] of count(*), then
--                           count(c) and sum(hash of c seeded by the key) per column
--   source_hashes, target_hashes  bigint[] of the per-row hashes, per column
--   source_key, target_key   the key (a composite key as ROW(...)::text)
--   source_exclude, target_exclude  ' AND key <> ALL ($1)': rejected keys, $1 text[]
--   key_type, key_count, columns (name[] in the order of the hashes)
--   key_sources, key_targets, key_types  per key column: its value on each side, its type
--   source_relid, target_relid  the source and target relations (oid)
--   key_names               the key's target columns
-- The row hash is the key's hash seeded with the XOR of every other column's
-- hash (seeded with the column's position; a NULL hashes to the position): one
-- expression per row, which costs about half of a count and a sum per
-- column.  The per-column aggregates only run when the row hashes differ,
-- to name the columns that differ.
CREATE OR REPLACE FUNCTION migrate._verify_sql(p_plan text, p_target regclass)
RETURNS jsonb
LANGUAGE plpgsql STABLE
AS $$
DECLARE
    tm migrate.table_map;
    vc migrate._verify_column[];
    c migrate._verify_column;
    seed_s text := '0';
    seed_t text := '0';
    row_s text[] := '{}';
    row_t text[] := '{}';
    aggs_s text := 'count(*)::numeric';
    aggs_t text := 'count(*)::numeric';
    hs text[] := '{}';
    ht text[] := '{}';
    cols name[] := '{}';
    keys_s text[] := '{}';
    keys_t text[] := '{}';
    key_type text;
    key_types text[] := '{}';
    key_columns jsonb;
    nkeys integer;
    pos integer := 0;
BEGIN
    SELECT * INTO tm FROM migrate.table_map WHERE plan = p_plan AND target = p_target;
    nkeys := pg_catalog.cardinality(tm.key);
    -- read once: each column's hash template is a catalog search
    vc := ARRAY(SELECT v FROM migrate._verify_columns(p_plan, p_target) v);
    FOREACH c IN ARRAY vc LOOP
        pos := pos + 1;
        CONTINUE WHEN c.column_name = ANY (tm.key);    -- hashed around the others, below
        -- CASE, not coalesce(): postgres_fdw does not ship coalesce()
        row_s := row_s || pg_catalog.format('CASE WHEN (%s) IS NULL THEN %s ELSE %s END', c.source_value, pos,
                                            pg_catalog.format(c.hash_template, c.source_value, pos));
        row_t := row_t || pg_catalog.format('CASE WHEN (%s) IS NULL THEN %s ELSE %s END', c.target_value, pos,
                                            pg_catalog.format(c.hash_template, c.target_value, pos));
    END LOOP;
    row_s := ARRAY[coalesce('(' || NULLIF(pg_catalog.array_to_string(row_s, ' # '), '') || ')', '0')];
    row_t := ARRAY[coalesce('(' || NULLIF(pg_catalog.array_to_string(row_t, ' # '), '') || ')', '0')];
    -- the key's hash seeds the hash of every value of its row
    FOR i IN REVERSE nkeys .. 1 LOOP
        SELECT * INTO c FROM pg_catalog.unnest(vc) v WHERE v.column_name = tm.key[i];
        IF NOT FOUND THEN
            RAISE EXCEPTION 'key column "%" of table % in migration plan "%" is not mapped',
                            tm.key[i], p_target, p_plan
                USING ERRCODE = 'undefined_column',
                      HINT = 'Map it with migrate_column().';
        END IF;
        seed_s := pg_catalog.format(c.hash_template, c.source_value, seed_s);
        seed_t := pg_catalog.format(c.hash_template, c.target_value, seed_t);
        row_s[1] := pg_catalog.format(c.hash_template, c.source_value, row_s[1]);
        row_t[1] := pg_catalog.format(c.hash_template, c.target_value, row_t[1]);
        keys_s := c.source_value || keys_s;
        keys_t := c.target_value || keys_t;
        key_types := c.type_name || key_types;
        key_type := c.type_name;
    END LOOP;
    FOREACH c IN ARRAY vc LOOP
        cols := cols || c.column_name;
        hs := hs || pg_catalog.format(c.hash_template, c.source_value, seed_s);
        ht := ht || pg_catalog.format(c.hash_template, c.target_value, seed_t);
        aggs_s := aggs_s || pg_catalog.format(', count(%s)::numeric, sum(%s)', c.source_value, hs[pg_catalog.cardinality(hs)]);
        aggs_t := aggs_t || pg_catalog.format(', count(%s)::numeric, sum(%s)', c.target_value, ht[pg_catalog.cardinality(ht)]);
    END LOOP;
    key_columns := pg_catalog.jsonb_build_object('key_sources', keys_s, 'key_targets', keys_t,
                                                 'key_types', key_types);
    IF nkeys > 1 THEN
        keys_s := ARRAY['ROW(' || pg_catalog.array_to_string(keys_s, ', ') || ')::text'];
        keys_t := ARRAY['ROW(' || pg_catalog.array_to_string(keys_t, ', ') || ')::text'];
        key_type := 'text';
    END IF;
    RETURN pg_catalog.jsonb_build_object(
        'source', pg_catalog.format(' FROM %s AS s WHERE true', tm.source)
                  || CASE WHEN tm.filter IS NOT NULL THEN ' AND (' || tm.filter || ')' ELSE '' END,
        'target', pg_catalog.format(' FROM %s AS t WHERE true', p_target),
        'source_aggs', 'ARRAY[count(*)::numeric, sum(' || row_s[1] || ')]',
        'target_aggs', 'ARRAY[count(*)::numeric, sum(' || row_t[1] || ')]',
        'source_column_aggs', 'ARRAY[' || aggs_s || ']',
        'target_column_aggs', 'ARRAY[' || aggs_t || ']',
        'source_hashes', 'ARRAY[' || pg_catalog.array_to_string(hs, ', ') || ']::bigint[]',
        'target_hashes', 'ARRAY[' || pg_catalog.array_to_string(ht, ', ') || ']::bigint[]',
        'source_key', keys_s[1],
        'target_key', keys_t[1],
        'source_exclude', pg_catalog.format(' AND (%s) <> ALL ($1::%s[])', keys_s[1], key_type),
        'target_exclude', pg_catalog.format(' AND (%s) <> ALL ($1::%s[])', keys_t[1], key_type),
        'key_type', key_type,
        'key_count', nkeys,
        'source_relid', pg_catalog.to_regclass(tm.source)::oid,
        'target_relid', p_target::oid,
        'key_names', tm.key,
        'columns', cols) || key_columns;
END;
$$;

-- The run a verification or diff is about: the given run of the plan, or
-- its last run that was not a dry run; a clear error when there is none or
-- it is still going.
CREATE OR REPLACE FUNCTION migrate._verify_run(p_plan text, p_run bigint)
RETURNS migrate.run
LANGUAGE plpgsql STABLE
AS $$
DECLARE
    r migrate.run;
BEGIN
    PERFORM migrate._plan(p_plan);
    IF p_run IS NULL THEN
        SELECT * INTO r FROM migrate.run WHERE plan = p_plan AND NOT dry_run
         ORDER BY run_id DESC LIMIT 1;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'migration plan "%" has never been run', p_plan
                USING ERRCODE = 'object_not_in_prerequisite_state',
                      HINT = 'Run it with migrate_run() first; a dry run writes no target row and cannot be verified.';
        END IF;
    ELSE
        SELECT * INTO r FROM migrate.run WHERE run_id = p_run;
        IF NOT FOUND OR r.plan <> p_plan THEN
            RAISE EXCEPTION 'migration run % of plan "%" does not exist', p_run, p_plan
                USING ERRCODE = 'undefined_object',
                      HINT = 'migrate.run lists the runs of every plan.';
        END IF;
        IF r.dry_run THEN
            RAISE EXCEPTION 'migration run % of plan "%" is a dry run: it wrote no target row', p_run, p_plan
                USING ERRCODE = 'object_not_in_prerequisite_state',
                      HINT = 'Verify a run that loaded the targets, or leave run out to take the last one.';
        END IF;
    END IF;
    IF r.state = 'running' THEN
        RAISE EXCEPTION 'migration run % of plan "%" is still running', r.run_id, p_plan
            USING ERRCODE = 'object_in_use',
                  HINT = pg_catalog.format('Wait for it to end, or stop it with migrate_cancel(%s).', r.run_id);
    END IF;
    RETURN r;
END;
$$;

-- The source relation of a mapped table, or a clear error when it is gone.
CREATE OR REPLACE FUNCTION migrate._verify_source(p_plan text, p_target regclass)
RETURNS regclass
LANGUAGE plpgsql STABLE
AS $$
DECLARE
    src text;
    rel regclass;
BEGIN
    SELECT source INTO src FROM migrate.table_map WHERE plan = p_plan AND target = p_target;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'table % is not mapped in migration plan "%"', p_target, p_plan
            USING ERRCODE = 'undefined_object',
                  HINT = 'Map it first with migrate_table().';
    END IF;
    rel := pg_catalog.to_regclass(src);
    IF rel IS NULL THEN
        RAISE EXCEPTION 'source relation % of table % in migration plan "%" does not exist', src, p_target, p_plan
            USING ERRCODE = 'undefined_table',
                  HINT = 'Recreate the foreign table (IMPORT FOREIGN SCHEMA) or remap the table with migrate_table().';
    END IF;
    RETURN rel;
END;
$$;

-- The source's side of a comparison, as a plain statement on the source
-- server, run while the target's runs here (src/verify.c).
CREATE FUNCTION migrate._compare_sides(source regclass, remote_sql text, target_sql text, keys text[])
RETURNS text[]
LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'migrate_compare_sides';

-- One value from each side of a comparison: p_wrap (a format() template,
-- '%s' by default) applied to p_source_sql, a statement over the source
-- (a foreign table or a local one), and to p_target_sql, the same over the
-- target, must give one row of one numeric[] ($1: the rejected keys,
-- text[]).  When postgres_fdw ships the whole source statement (an
-- aggregate, grouped or not), the remote SQL it deparsed is wrapped and
-- runs as a plain statement on the source, where it may use parallel
-- workers (the FDW's cursor may not), while the target's runs here;
-- otherwise the source is read through the FDW, then the target.  how: a
-- phrase that says which.
CREATE OR REPLACE FUNCTION migrate._both_sides(p_source regclass, p_source_sql text, p_target_sql text,
                                             p_keys text[], p_wrap text DEFAULT '%s',
                                             OUT source_result numeric[], OUT target_result numeric[],
                                             OUT how text)
LANGUAGE plpgsql
SET enable_sort = off   -- a grouped comparison has a handful of groups: hash them (also on the source, src/verify.c)
AS $$
DECLARE
    plan jsonb;
    top jsonb;
    pair text[];
BEGIN
    IF (SELECT relkind FROM pg_catalog.pg_class WHERE oid = p_source) <> 'f' THEN
        how := 'computed locally (the source is not a foreign table)';
    ELSE
        EXECUTE 'EXPLAIN (VERBOSE, COSTS OFF, FORMAT JSON) ' || p_source_sql INTO plan USING p_keys;
        top := plan->0->'Plan';
        IF top->>'Node Type' = 'Foreign Scan' AND coalesce(top->>'Relations', '') LIKE 'Aggregate on %' THEN
            IF top ? 'Remote SQL'
               AND EXISTS (SELECT FROM pg_catalog.pg_foreign_table ft
                             JOIN pg_catalog.pg_foreign_server fs ON fs.oid = ft.ftserver
                             JOIN pg_catalog.pg_foreign_data_wrapper w ON w.oid = fs.srvfdw
                            WHERE ft.ftrelid = p_source AND w.fdwname = 'postgres_fdw') THEN
                pair := migrate._compare_sides(p_source, pg_catalog.format(p_wrap, top->>'Remote SQL'),
                                               pg_catalog.format(p_wrap, p_target_sql), p_keys);
                IF pair IS NOT NULL THEN
                    source_result := pair[1]::numeric[];
                    target_result := pair[2]::numeric[];
                    how := 'computed on the source (aggregate pushed down, run beside the target''s)';
                    RETURN;
                END IF;
            END IF;
            how := 'computed on the source (aggregate pushed down)';
        ELSE
            how := 'source rows streamed once (the aggregate cannot be pushed down)';
        END IF;
    END IF;
    EXECUTE pg_catalog.format(p_wrap, p_source_sql) INTO source_result USING p_keys;
    EXECUTE pg_catalog.format(p_wrap, p_target_sql) INTO target_result USING p_keys;
END;
$$;

-- The keys of the rows a run rejected and did not load, as text in the
-- key's type output (keys that do not read as the key's type are left out:
-- such rows never reached the target).
CREATE OR REPLACE FUNCTION migrate._rejected_keys(p_run bigint, p_target regclass, p_key_type text)
RETURNS text[]
LANGUAGE plpgsql STABLE
AS $$
DECLARE
    raw text[];
    keys text[] := '{}';
    k text;
BEGIN
    SELECT pg_catalog.array_agg(DISTINCT source_key) INTO raw FROM migrate.reject
     WHERE run_id = p_run AND target = p_target AND NOT loaded AND source_key IS NOT NULL;
    IF raw IS NULL THEN
        RETURN NULL;
    END IF;
    BEGIN
        EXECUTE pg_catalog.format('SELECT pg_catalog.array_agg(DISTINCT (k::%s)::text) FROM pg_catalog.unnest($1) k',
                                  p_key_type) INTO keys USING raw;
        RETURN keys;
    EXCEPTION WHEN data_exception THEN
        keys := '{}';
    END;
    FOREACH k IN ARRAY raw LOOP
        BEGIN
            EXECUTE pg_catalog.format('SELECT ($1::%s)::text', p_key_type) INTO k USING k;
            keys := keys || k;
        EXCEPTION WHEN data_exception THEN
            NULL;
        END;
    END LOOP;
    RETURN keys;
END;
$$;

-- Markdown-safe text for a table cell.
CREATE OR REPLACE FUNCTION migrate._md(p_text text)
RETURNS text
LANGUAGE sql IMMUTABLE
AS $$
    SELECT pg_catalog.replace(pg_catalog.regexp_replace(coalesce(p_text, ''), '\s*\n\s*', ' ', 'g'), '|', '\|')
$$;

/* ---------------------------------------------------------------------
 * Foreign keys: declared on the target, declared with the plan, or
 * declared on a local source table between two mapped sources
 * --------------------------------------------------------------------- */

CREATE OR REPLACE FUNCTION migrate_foreign_key(plan text, target text, columns text,
                                               "references" text, ref_columns text DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql
AS $$
DECLARE
    tm migrate.table_map := migrate._table_map(plan, target);
    pl migrate.plan := migrate._plan(plan);
    ref regclass := migrate._resolve("references", pl.target_schema);
    cols name[];
    refcols name[];
    c text;
BEGIN
    IF ref IS NULL THEN
        RAISE EXCEPTION 'referenced table "%" of migration plan "%" does not exist', "references", plan
            USING ERRCODE = 'undefined_table';
    END IF;
    IF columns IS NULL THEN
        DELETE FROM migrate.foreign_key f WHERE f.plan = tm.plan AND f.target = tm.target;
        RETURN;
    END IF;
    FOREACH c IN ARRAY pg_catalog.string_to_array(columns, ',') LOOP
        cols := cols || migrate._column(tm.target, pg_catalog.btrim(c), plan);
    END LOOP;
    IF ref_columns IS NULL THEN     -- the referenced table's primary key
        SELECT pg_catalog.array_agg(a.attname ORDER BY k.ord) INTO refcols
          FROM pg_catalog.pg_index i
          CROSS JOIN LATERAL pg_catalog.unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
          JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
         WHERE i.indrelid = ref AND i.indisprimary;
        IF refcols IS NULL THEN
            RAISE EXCEPTION 'referenced table % of migration plan "%" has no primary key', ref, plan
                USING ERRCODE = 'invalid_foreign_key',
                      HINT = 'Name the referenced columns with ref_columns.';
        END IF;
    ELSE
        FOREACH c IN ARRAY pg_catalog.string_to_array(ref_columns, ',') LOOP
            refcols := refcols || migrate._column(ref, pg_catalog.btrim(c), plan);
        END LOOP;
    END IF;
    IF pg_catalog.cardinality(cols) <> pg_catalog.cardinality(refcols) THEN
        RAISE EXCEPTION 'foreign key of table % in migration plan "%" has % columns but references %',
                        tm.target, plan, pg_catalog.cardinality(cols), pg_catalog.cardinality(refcols)
            USING ERRCODE = 'invalid_foreign_key';
    END IF;
    INSERT INTO migrate.foreign_key AS f (plan, target, columns, ref_target, ref_columns)
    VALUES (tm.plan, tm.target, cols, ref, refcols)
    ON CONFLICT ON CONSTRAINT foreign_key_pkey DO UPDATE
       SET ref_target = EXCLUDED.ref_target, ref_columns = EXCLUDED.ref_columns;
END;
$$;

-- Every foreign key a verification checks for the given tables: declared
-- on the target; declared with migrate_foreign_key(); declared on a source
-- relation that is a local table, referencing another mapped source, where
-- every column on both ends is mapped as a plain source column (s.col).
-- One row per distinct (table, columns, referenced table, columns).
CREATE OR REPLACE FUNCTION migrate._verify_foreign_keys(p_plan text, p_targets regclass[])
RETURNS TABLE (target regclass, columns name[], ref_target regclass, ref_columns name[],
               origin text)
LANGUAGE sql STABLE
AS $$
    WITH mapped AS (   -- target column <- plain source column
        SELECT tm.target, pg_catalog.to_regclass(tm.source) AS source, m.column_name,
               pg_catalog.btrim(pg_catalog.substr(m.expr, 3), '"') AS source_column
          FROM migrate.table_map tm
          CROSS JOIN LATERAL migrate._mapped_columns(tm.plan, tm.target) m
         WHERE tm.plan = p_plan AND m.expr ~ '^s\.("[^"]+"|[a-z_][a-z0-9_$]*)$'
    ), fks AS (
        SELECT 1 AS pri, con.conrelid::regclass AS target,
               ARRAY(SELECT a.attname FROM pg_catalog.unnest(con.conkey) WITH ORDINALITY k(n, o)
                       JOIN pg_catalog.pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.n
                      ORDER BY k.o) AS columns,
               con.confrelid::regclass AS ref_target,
               ARRAY(SELECT a.attname FROM pg_catalog.unnest(con.confkey) WITH ORDINALITY k(n, o)
                       JOIN pg_catalog.pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.n
                      ORDER BY k.o) AS ref_columns,
               pg_catalog.format('declared on the target (%I)', con.conname) AS origin
          FROM pg_catalog.pg_constraint con
         WHERE con.contype = 'f' AND con.conrelid = ANY (p_targets)
        UNION ALL
        SELECT 2, f.target, f.columns, f.ref_target, f.ref_columns, 'declared with migrate_foreign_key()'
          FROM migrate.foreign_key f
         WHERE f.plan = p_plan AND f.target = ANY (p_targets)
        UNION ALL
        SELECT 3, tm.target, x.columns, rtm.target, x.ref_columns,
               pg_catalog.format('declared on the source %s (%I)', tm.source, con.conname)
          FROM migrate.table_map tm
          JOIN pg_catalog.pg_constraint con
            ON con.contype = 'f' AND con.conrelid = pg_catalog.to_regclass(tm.source)
          JOIN migrate.table_map rtm
            ON rtm.plan = tm.plan AND pg_catalog.to_regclass(rtm.source) = con.confrelid
          CROSS JOIN LATERAL (
              SELECT ARRAY(SELECT (SELECT mp.column_name FROM mapped mp
                                    WHERE mp.target = tm.target AND mp.source_column = a.attname LIMIT 1)
                             FROM pg_catalog.unnest(con.conkey) WITH ORDINALITY k(n, o)
                             JOIN pg_catalog.pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.n
                            ORDER BY k.o) AS columns,
                     ARRAY(SELECT (SELECT mp.column_name FROM mapped mp
                                    WHERE mp.target = rtm.target AND mp.source_column = a.attname LIMIT 1)
                             FROM pg_catalog.unnest(con.confkey) WITH ORDINALITY k(n, o)
                             JOIN pg_catalog.pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.n
                            ORDER BY k.o) AS ref_columns) x
         WHERE tm.plan = p_plan AND tm.target = ANY (p_targets)
           AND pg_catalog.array_position(x.columns, NULL) IS NULL
           AND pg_catalog.array_position(x.ref_columns, NULL) IS NULL
    )
    SELECT DISTINCT ON (target::oid, columns, ref_target::oid, ref_columns)
           target, columns, ref_target, ref_columns, origin
      FROM fks
     ORDER BY target::oid, columns, ref_target::oid, ref_columns, pri
$$;

/* ---------------------------------------------------------------------
 * migrate_verify
 * --------------------------------------------------------------------- */

-- Reconcile one table of a run; inserts its checks into migrate.verification
-- and returns their ids.
CREATE OR REPLACE FUNCTION migrate._verify_table(p_plan text, p_run migrate.run, p_target regclass)
RETURNS bigint[]
LANGUAGE plpgsql
AS $$
DECLARE
    tm migrate.table_map;
    src regclass := migrate._verify_source(p_plan, p_target);
    q jsonb := migrate._verify_sql(p_plan, p_target);
    keys text[] := migrate._rejected_keys(p_run.run_id, p_target, q->>'key_type');
    cols name[] := ARRAY(SELECT pg_catalog.jsonb_array_elements_text(q->'columns'))::name[];
    rules record;
    rule_aggs text := '';
    s_arr numeric[];
    t_arr numeric[];
    s_cols numeric[];
    t_cols numeric[];
    n integer := pg_catalog.cardinality(cols);
    from_s text := (q->>'source') || CASE WHEN keys IS NOT NULL THEN q->>'source_exclude' ELSE '' END;
    from_t text := (q->>'target') || CASE WHEN keys IS NOT NULL THEN q->>'target_exclude' ELSE '' END;
    diff_cols text[] := '{}';
    how text;
    ids bigint[] := '{}';
    id bigint;
    expected numeric;
    examples text;
    i integer := 0;
BEGIN
    SELECT * INTO tm FROM migrate.table_map WHERE plan = p_plan AND target = p_target;
    FOR rules IN SELECT rule_name, check_expr, on_fail FROM migrate.rule
                  WHERE plan = p_plan AND target = p_target ORDER BY rule_name LOOP
        rule_aggs := rule_aggs || pg_catalog.format(', (count(*) FILTER (WHERE NOT coalesce((%s), false)))::numeric',
                                                    rules.check_expr);
    END LOOP;

    BEGIN
        SELECT b.source_result, b.target_result, b.how INTO s_arr, t_arr, how
          FROM migrate._both_sides(src, 'SELECT ' || (q->>'source_aggs') || from_s,
                                   'SELECT ' || (q->>'target_aggs')
                                   || CASE WHEN rule_aggs = '' THEN '' ELSE ' || ARRAY[' || pg_catalog.substr(rule_aggs, 3) || ']' END
                                   || from_t,
                                   keys) b;
        -- the checksum differs: which columns do
        IF s_arr[1 : 2] IS DISTINCT FROM t_arr[1 : 2] THEN
            SELECT b.source_result, b.target_result INTO s_cols, t_cols
              FROM migrate._both_sides(src, 'SELECT ' || (q->>'source_column_aggs') || from_s,
                                       'SELECT ' || (q->>'target_column_aggs') || from_t, keys) b;
            FOR i IN 1 .. n LOOP
                IF s_cols[2 * i : 2 * i + 1] IS DISTINCT FROM t_cols[2 * i : 2 * i + 1] THEN
                    diff_cols := diff_cols || cols[i]::text;
                END IF;
            END LOOP;
        END IF;
    EXCEPTION WHEN OTHERS THEN
        RAISE EXCEPTION 'verifying table % of migration plan "%" failed: %', p_target, p_plan, SQLERRM
            USING ERRCODE = SQLSTATE,
                  DETAIL = pg_catalog.format('Source: %s.', tm.source),
                  HINT = 'Check that the source is reachable and that the plan''s expressions still apply to it.';
    END;

    -- row count
    INSERT INTO migrate.verification (run_id, target, check_name, source_value, target_value, ok, details)
    VALUES (p_run.run_id, p_target, 'row count', s_arr[1]::text, t_arr[1]::text, s_arr[1] = t_arr[1],
            'source rows' || coalesce(' where ' || tm.filter, '')
            || CASE WHEN keys IS NOT NULL
                    THEN pg_catalog.format('; %s key(s) rejected by run %s left out on both sides',
                                           pg_catalog.cardinality(keys), p_run.run_id)
                    ELSE '' END)
    RETURNING verification_id INTO id;
    ids := ids || id;

    -- checksum of the mapped columns
    INSERT INTO migrate.verification (run_id, target, check_name, source_value, target_value, ok, details)
    VALUES (p_run.run_id, p_target, 'checksum',
            pg_catalog.left(pg_catalog.md5(s_arr[1 : 2]::text), 16),
            pg_catalog.left(pg_catalog.md5(t_arr[1 : 2]::text), 16),
            s_arr[1 : 2] = t_arr[1 : 2],
            CASE WHEN s_arr[1 : 2] = t_arr[1 : 2] THEN pg_catalog.format('%s mapped columns match', n)
                 WHEN diff_cols = '{}' THEN 'differs, though no single column''s sum does'
                 ELSE pg_catalog.format('differs in %s', pg_catalog.array_to_string(diff_cols, ', ')) END
            || '; ' || how)
    RETURNING verification_id INTO id;
    ids := ids || id;

    -- each rule, over what the target holds now
    i := 2;
    FOR rules IN SELECT rule_name, check_expr, on_fail FROM migrate.rule
                  WHERE plan = p_plan AND target = p_target ORDER BY rule_name LOOP
        i := i + 1;
        expected := 0;
        IF rules.on_fail = 'warn' THEN
            SELECT count(DISTINCT source_key) INTO expected FROM migrate.reject
             WHERE run_id = p_run.run_id AND target = p_target AND reason = rules.rule_name AND loaded;
        END IF;
        examples := NULL;
        IF t_arr[i] <> expected THEN
            EXECUTE pg_catalog.format('SELECT pg_catalog.string_agg(k, '', '') FROM (SELECT (%s)::text AS k %s AND NOT coalesce((%s), false) ORDER BY %s LIMIT 5) x',
                                      q->>'target_key', q->>'target', rules.check_expr, q->>'target_key')
               INTO examples;
        END IF;
        INSERT INTO migrate.verification (run_id, target, check_name, source_value, target_value, ok, details)
        VALUES (p_run.run_id, p_target, 'rule ' || rules.rule_name, expected::text, t_arr[i]::text,
                t_arr[i] = expected,
                pg_catalog.format('%s rule: %s', rules.on_fail, rules.check_expr)
                || CASE WHEN rules.on_fail = 'warn' THEN '; expected: the rows the run loaded with this warning'
                        ELSE '; expected: no row fails it' END
                || coalesce('; failing keys: ' || examples, ''))
        RETURNING verification_id INTO id;
        ids := ids || id;
    END LOOP;
    RETURN ids;
END;
$$;

-- Orphans of one foreign key (MATCH SIMPLE: rows with a NULL in the key are
-- not orphans); inserts the check and returns its id.
CREATE OR REPLACE FUNCTION migrate._verify_foreign_key(p_run bigint, p_target regclass, p_columns name[],
                                                     p_ref regclass, p_ref_columns name[], p_origin text)
RETURNS bigint
LANGUAGE plpgsql
AS $$
DECLARE
    cond text;
    nonnull text;
    orphans bigint;
    examples text;
    keycols text;
    id bigint;
BEGIN
    SELECT pg_catalog.string_agg(pg_catalog.format('r.%I = t.%I', rc, c), ' AND '),
           pg_catalog.string_agg(pg_catalog.format('t.%I IS NOT NULL', c), ' AND ')
      INTO cond, nonnull
      FROM unnest(p_columns, p_ref_columns) AS u(c, rc);
    EXECUTE pg_catalog.format('SELECT count(*) FROM %s AS t WHERE %s AND NOT EXISTS (SELECT 1 FROM %s AS r WHERE %s)',
                              p_target, nonnull, p_ref, cond) INTO orphans;
    IF orphans > 0 THEN
        SELECT pg_catalog.string_agg(pg_catalog.format('t.%I', c), ', ') INTO keycols
          FROM pg_catalog.unnest(p_columns) c;
        EXECUTE pg_catalog.format('SELECT pg_catalog.string_agg(%s, '', '') FROM (SELECT DISTINCT %s FROM %s AS t WHERE %s AND NOT EXISTS (SELECT 1 FROM %s AS r WHERE %s) ORDER BY %s LIMIT 5) t',
                                  CASE WHEN pg_catalog.cardinality(p_columns) = 1 THEN keycols || '::text'
                                       ELSE 'ROW(' || keycols || ')::text' END,
                                  keycols, p_target, nonnull, p_ref, cond, keycols) INTO examples;
    END IF;
    INSERT INTO migrate.verification (run_id, target, check_name, source_value, target_value, ok, details)
    VALUES (p_run, p_target,
            pg_catalog.format('foreign key (%s) -> %s (%s)', pg_catalog.array_to_string(p_columns, ', '),
                              p_ref, pg_catalog.array_to_string(p_ref_columns, ', ')),
            '0', orphans::text, orphans = 0,
            p_origin || '; orphans: rows whose key has no referenced row'
            || coalesce('; missing references: ' || examples, ''))
    RETURNING verification_id INTO id;
    RETURN id;
END;
$$;

CREATE OR REPLACE FUNCTION migrate_verify(plan text, run bigint DEFAULT NULL)
RETURNS SETOF migrate.verification
LANGUAGE plpgsql
AS $$
DECLARE
    r migrate.run := migrate._verify_run(plan, run);
    t regclass;
    fk record;
    ids bigint[] := '{}';
    passed boolean;
    nfail bigint;
BEGIN
    -- every table of the run must still be mapped and have its source
    FOR t IN SELECT rt.target FROM migrate.run_table rt WHERE rt.run_id = r.run_id ORDER BY rt.load_order LOOP
        PERFORM migrate._verify_source(plan, t);
    END LOOP;
    FOR t IN SELECT rt.target FROM migrate.run_table rt WHERE rt.run_id = r.run_id ORDER BY rt.load_order LOOP
        ids := ids || migrate._verify_table(plan, r, t);
    END LOOP;
    FOR fk IN SELECT * FROM migrate._verify_foreign_keys(plan, ARRAY(SELECT rt.target FROM migrate.run_table rt
                                                                     WHERE rt.run_id = r.run_id))
               ORDER BY target::text, columns, ref_target::text, ref_columns LOOP
        ids := ids || migrate._verify_foreign_key(r.run_id, fk.target, fk.columns, fk.ref_target,
                                                  fk.ref_columns, fk.origin);
    END LOOP;
    SELECT bool_and(v.ok), count(*) FILTER (WHERE NOT v.ok) INTO passed, nfail
      FROM migrate.verification v WHERE v.verification_id = ANY (ids);
    passed := coalesce(passed, true);
    UPDATE migrate.run AS u SET verified = passed, verified_at = now() WHERE u.run_id = r.run_id;
    INSERT INTO migrate.event (run_id, plan, event, details)
    VALUES (r.run_id, r.plan, CASE WHEN passed THEN 'run verified' ELSE 'verification failed' END,
            pg_catalog.format('%s checks, %s failed', pg_catalog.cardinality(ids), nfail));
    RETURN QUERY SELECT * FROM migrate.verification v WHERE v.verification_id = ANY (ids)
                  ORDER BY v.verification_id;
END;
$$;

/* ---------------------------------------------------------------------
 * migrate_diff: bisection over key ranges
 * --------------------------------------------------------------------- */

-- Where to cut a key range of a column that is not an integer: up to 15
-- distinct values inside it (greater than p_lo, below p_hi or equal to it
-- with p_hi_incl), as text in key order.  From the target column's
-- histogram (pg_stats) when it has at least 4 bounds in the range, else at
-- the 16-quantiles of the keys of the range on one side (p_side_key,
-- p_side_where).  NULL: none.
CREATE OR REPLACE FUNCTION migrate._diff_cuts(p_ctx jsonb, p_keys text[], p_col integer, p_side_key text,
                                            p_side_where text, p_lo anyelement, p_hi anyelement,
                                            p_hi_incl boolean)
RETURNS text[]
LANGUAGE plpgsql
AS $$
DECLARE
    key_type text := p_ctx->'key_types'->>(p_col - 1);
    inside text := pg_catalog.format('c > %L::%s AND c %s %L::%s', p_lo, key_type,
                                     CASE WHEN p_hi_incl THEN '<=' ELSE '<' END, p_hi, key_type);
    cuts text[];
    n integer;
BEGIN
    IF p_ctx->'key_targets'->>(p_col - 1) = 't.' || pg_catalog.quote_ident(p_ctx->'key_names'->>(p_col - 1)) THEN
        EXECUTE pg_catalog.format(
            'SELECT pg_catalog.array_agg(c::text ORDER BY c) FROM (SELECT DISTINCT c'
            '  FROM pg_catalog.unnest((SELECT st.histogram_bounds::text::%s[] FROM pg_catalog.pg_stats st'
            '                           JOIN pg_catalog.pg_class r ON r.relname = st.tablename'
            '                           JOIN pg_catalog.pg_namespace ns ON ns.oid = r.relnamespace AND ns.nspname = st.schemaname'
            '                          WHERE r.oid = $1 AND st.attname = $2 LIMIT 1)) c) d WHERE %s',
            key_type, inside)
           INTO cuts USING (p_ctx->>'target_relid')::oid, p_ctx->'key_names'->>(p_col - 1);
        n := coalesce(pg_catalog.cardinality(cuts), 0);
        IF n >= 4 THEN
            RETURN ARRAY(SELECT DISTINCT ON (i) cuts[1 + (i * n) / 16] FROM pg_catalog.generate_series(0, 15) i
                          WHERE (i * n) / 16 > ((i - 1) * n) / 16 OR i = 0
                          ORDER BY i);
        END IF;
    END IF;
    EXECUTE pg_catalog.format(
        'SELECT pg_catalog.array_agg(c::text ORDER BY c) FROM (SELECT DISTINCT c'
        '  FROM pg_catalog.unnest((SELECT percentile_disc(ARRAY(SELECT g / 16.0 FROM pg_catalog.generate_series(1, 15) g))'
        '                                 WITHIN GROUP (ORDER BY k) FROM (SELECT %s AS k %s) x)) c) d WHERE %s',
        p_side_key, p_side_where, inside)
       INTO cuts USING p_keys;
    RETURN cuts;
END;
$$;

-- The keys of one key range that differ.  A range is a range of one key
-- column, from p_lo (included with p_lo_incl) to p_hi (included with
-- p_hi_incl), within a prefix: equality conditions on the key columns
-- before it (p_prefix_s, p_prefix_t: SQL ' AND ...' on each side).  p_ns,
-- p_nt: the rows of the range on each side when a comparison has found it
-- differs, else NULL.
--
-- The range is cut at up to 15 points (an integer range into equal
-- widths, another at its keys' quantiles: migrate._diff_cuts), each side's
-- checksums of the buckets come from one grouped statement
-- (width_bucket(key, cuts); migrate._both_sides(): on the source where
-- postgres_fdw ships it, beside the target's), and only the buckets that
-- differ are looked into: a few differences in N rows cost about 1.2 N
-- rows read a side.  A bucket that differs with at most leaf_rows rows a
-- side is compared row by row (key and per-column hashes: only hashes cross
-- the wire when the source can compute them); a range that cannot be cut
-- (one value of its column) goes on with the next key column, that value
-- added to the prefix, or is compared row by row.  p_ctx:
-- migrate._verify_sql() plus leaf_rows.  Besides the differing keys,
-- returns rows of kind NULL that count the work: key 'range' for each
-- bucket compared, key 'statement' for each statement a side.
CREATE OR REPLACE FUNCTION migrate._diff_range(p_ctx jsonb, p_keys text[], p_prefix_s text, p_prefix_t text,
                                             p_col integer, p_lo anyelement, p_lo_incl boolean,
                                             p_hi anyelement, p_hi_incl boolean, p_depth integer,
                                             p_ns numeric, p_nt numeric)
RETURNS TABLE (key text, kind text, columns name[])
LANGUAGE plpgsql
AS $$
DECLARE
    key_s text := p_ctx->'key_sources'->>(p_col - 1);
    key_t text := p_ctx->'key_targets'->>(p_col - 1);
    key_type text := p_ctx->'key_types'->>(p_col - 1);
    range_sql constant text := ' AND (%1$s) %2$s %3$L::%4$s AND (%1$s) %5$s %6$L::%4$s';
    where_s text;
    where_t text;
    cuts text[];
    b record;
    bucket record;
    lower_bound numeric;
    upper_bound numeric;
    width numeric;
    bucket_lo p_lo%TYPE;
    bucket_hi p_lo%TYPE;
    only_value p_lo%TYPE;
    source_top p_lo%TYPE;
BEGIN
    where_s := (p_ctx->>'source') || CASE WHEN p_keys IS NOT NULL THEN p_ctx->>'source_exclude' ELSE '' END
               || p_prefix_s
               || pg_catalog.format(range_sql, key_s, CASE WHEN p_lo_incl THEN '>=' ELSE '>' END, p_lo, key_type,
                                    CASE WHEN p_hi_incl THEN '<=' ELSE '<' END, p_hi);
    where_t := (p_ctx->>'target') || CASE WHEN p_keys IS NOT NULL THEN p_ctx->>'target_exclude' ELSE '' END
               || p_prefix_t
               || pg_catalog.format(range_sql, key_t, CASE WHEN p_lo_incl THEN '>=' ELSE '>' END, p_lo, key_type,
                                    CASE WHEN p_hi_incl THEN '<=' ELSE '<' END, p_hi);

    IF p_ns IS NULL OR greatest(p_ns, p_nt) > (p_ctx->>'leaf_rows')::integer THEN
        -- where to cut
        IF p_depth >= 64 THEN
            cuts := NULL;
        ELSIF key_type IN ('smallint', 'integer', 'bigint') THEN
            lower_bound := CASE WHEN p_lo_incl THEN p_lo::numeric ELSE p_lo::numeric + 1 END;
            upper_bound := CASE WHEN p_hi_incl THEN p_hi::numeric ELSE p_hi::numeric - 1 END;
            IF lower_bound < upper_bound THEN
                width := pg_catalog.ceil((upper_bound - lower_bound + 1) / 16);
                cuts := ARRAY(SELECT (lower_bound + width * i)::text FROM pg_catalog.generate_series(1, 15) i
                               WHERE lower_bound + width * i <= upper_bound);
            ELSIF lower_bound = upper_bound THEN
                only_value := lower_bound;
            END IF;
        ELSE
            -- the quantiles of the larger side (the target when close or unknown: it is local)
            IF p_ns IS NULL OR p_nt * 2 >= p_ns THEN
                cuts := migrate._diff_cuts(p_ctx, p_keys, p_col, key_t, where_t, p_lo, p_hi, p_hi_incl);
            ELSE
                cuts := migrate._diff_cuts(p_ctx, p_keys, p_col, key_s, where_s, p_lo, p_hi, p_hi_incl);
            END IF;
            IF cuts IS NULL OR cuts = '{}' THEN
                -- no value of the range above p_lo on that side: one value (or none) left
                EXECUTE pg_catalog.format('SELECT (SELECT %1$s %2$s ORDER BY 1 DESC LIMIT 1)', key_t, where_t)
                   INTO only_value USING p_keys;
                IF only_value IS NULL OR only_value = p_lo THEN
                    EXECUTE pg_catalog.format('SELECT (SELECT %1$s %2$s ORDER BY 1 DESC LIMIT 1)', key_s, where_s)
                       INTO source_top USING p_keys;
                    IF only_value IS NULL OR source_top > only_value THEN
                        only_value := source_top;
                    END IF;
                END IF;
                IF only_value IS NOT NULL AND only_value > p_lo THEN
                    -- a value above p_lo: cut there
                    cuts := ARRAY[only_value::text];
                    only_value := NULL;
                END IF;
            END IF;
        END IF;

        IF cuts IS NOT NULL AND cuts <> '{}' THEN
            -- one grouped statement a side: the checksums of every bucket
            SELECT * INTO b FROM migrate._both_sides(
                (p_ctx->>'source_relid')::oid::regclass,
                pg_catalog.format('SELECT pg_catalog.width_bucket(%s, %L::%s[]), %s %s GROUP BY 1',
                                  key_s, cuts, key_type, p_ctx->>'source_aggs', where_s),
                pg_catalog.format('SELECT pg_catalog.width_bucket(%s, %L::%s[]), %s %s GROUP BY 1',
                                  key_t, cuts, key_type, p_ctx->>'target_aggs', where_t),
                p_keys,
                'SELECT pg_catalog.array_agg(ARRAY[x.b::numeric] || x.a ORDER BY x.b) FROM (%s) AS x(b, a)');
            RETURN QUERY SELECT 'statement'::text, NULL::text, NULL::name[];
            FOR bucket IN
                WITH s AS (SELECT b.source_result[i][1] AS n, b.source_result[i : i][2 : 3] AS sums
                             FROM pg_catalog.generate_subscripts(b.source_result, 1) i),
                     t AS (SELECT b.target_result[i][1] AS n, b.target_result[i : i][2 : 3] AS sums
                             FROM pg_catalog.generate_subscripts(b.target_result, 1) i)
                SELECT coalesce(s.n, t.n)::integer AS n, coalesce(s.sums[1][1], 0) AS ns,
                       coalesce(t.sums[1][1], 0) AS nt, s.sums IS NOT DISTINCT FROM t.sums AS same
                  FROM s FULL JOIN t ON s.n = t.n
                 ORDER BY 1
            LOOP
                RETURN QUERY SELECT 'range'::text, NULL::text, NULL::name[];
                CONTINUE WHEN bucket.same;
                -- bucket 0: [p_lo, cuts[1]); i: [cuts[i], cuts[i + 1]); last: [cuts[n], p_hi]
                bucket_lo := CASE WHEN bucket.n = 0 THEN p_lo::text ELSE cuts[bucket.n] END;
                bucket_hi := CASE WHEN bucket.n = pg_catalog.cardinality(cuts) THEN p_hi::text
                                  ELSE cuts[bucket.n + 1] END;
                RETURN QUERY SELECT * FROM migrate._diff_range(
                    p_ctx, p_keys, p_prefix_s, p_prefix_t, p_col,
                    bucket_lo, CASE WHEN bucket.n = 0 THEN p_lo_incl ELSE true END,
                    bucket_hi, CASE WHEN bucket.n = pg_catalog.cardinality(cuts) THEN p_hi_incl ELSE false END,
                    p_depth + 1, bucket.ns, bucket.nt);
            END LOOP;
            RETURN;
        END IF;

        IF only_value IS NOT NULL AND p_col < (p_ctx->>'key_count')::integer THEN
            -- one value of this column: on to the next key column
            RETURN QUERY SELECT * FROM migrate._diff_walk(
                p_ctx, p_keys,
                p_prefix_s || pg_catalog.format(' AND (%s) = %L::%s', key_s, only_value, key_type),
                p_prefix_t || pg_catalog.format(' AND (%s) = %L::%s', key_t, only_value, key_type),
                p_col + 1);
            RETURN;
        END IF;
    END IF;

    -- a small range (or one that cannot be cut): row by row
    RETURN QUERY SELECT 'statement'::text, NULL::text, NULL::name[];
    RETURN QUERY EXECUTE pg_catalog.format(
        'SELECT (coalesce(s.k, t.k))::text,'
        '       CASE WHEN t.k IS NULL THEN ''missing'' WHEN s.k IS NULL THEN ''extra'' ELSE ''changed'' END,'
        '       CASE WHEN s.k IS NOT NULL AND t.k IS NOT NULL THEN'
        '            ARRAY(SELECT u.c FROM unnest($2::name[], s.h, t.h) AS u(c, a, b)'
        '                   WHERE u.a IS DISTINCT FROM u.b) END'
        '  FROM (SELECT %s AS k, %s AS h %s) s'
        '  FULL JOIN (SELECT %s AS k, %s AS h %s) t ON s.k = t.k'
        ' WHERE s.k IS NULL OR t.k IS NULL OR s.h IS DISTINCT FROM t.h'
        ' ORDER BY coalesce(s.k, t.k)',
        p_ctx->>'source_key', p_ctx->>'source_hashes', where_s,
        p_ctx->>'target_key', p_ctx->>'target_hashes', where_t)
    USING p_keys, ARRAY(SELECT pg_catalog.jsonb_array_elements_text(p_ctx->'columns'))::name[];
END;
$$;

-- Bisect key column p_col within a prefix (see migrate._diff_range) from
-- the least to the greatest value either side holds.
CREATE OR REPLACE FUNCTION migrate._diff_walk(p_ctx jsonb, p_keys text[], p_prefix_s text, p_prefix_t text,
                                            p_col integer)
RETURNS TABLE (key text, kind text, columns name[])
LANGUAGE plpgsql
AS $$
BEGIN
    RETURN QUERY EXECUTE pg_catalog.format(
        'SELECT * FROM migrate._diff_walk_typed($1, $2, $3, $4, $5, NULL::%1$s, NULL::%1$s)',
        p_ctx->'key_types'->>(p_col - 1))
    USING p_ctx, p_keys, p_prefix_s, p_prefix_t, p_col;
END;
$$;

-- migrate._diff_walk with p_lo, p_hi: NULLs of the column's type, to fix
-- the polymorphic type.
CREATE OR REPLACE FUNCTION migrate._diff_walk_typed(p_ctx jsonb, p_keys text[], p_prefix_s text, p_prefix_t text,
                                                  p_col integer, p_lo anyelement, p_hi anyelement)
RETURNS TABLE (key text, kind text, columns name[])
LANGUAGE plpgsql
AS $$
DECLARE
    key_s text := p_ctx->'key_sources'->>(p_col - 1);
    key_t text := p_ctx->'key_targets'->>(p_col - 1);
    lo_s p_lo%TYPE;
    hi_s p_lo%TYPE;
    lo_t p_lo%TYPE;
    hi_t p_lo%TYPE;
BEGIN
    -- ORDER BY ... LIMIT 1, not min() and max(): some ordered types (uuid
    -- before PostgreSQL 16) have no such aggregates
    EXECUTE pg_catalog.format('SELECT (SELECT %1$s %2$s%3$s%4$s AND (%1$s) IS NOT NULL ORDER BY 1 LIMIT 1),'
                              '       (SELECT %1$s %2$s%3$s%4$s AND (%1$s) IS NOT NULL ORDER BY 1 DESC LIMIT 1)',
                              key_s, p_ctx->>'source',
                              CASE WHEN p_keys IS NOT NULL THEN p_ctx->>'source_exclude' ELSE '' END, p_prefix_s)
       INTO lo_s, hi_s USING p_keys;
    EXECUTE pg_catalog.format('SELECT (SELECT %1$s %2$s%3$s%4$s AND (%1$s) IS NOT NULL ORDER BY 1 LIMIT 1),'
                              '       (SELECT %1$s %2$s%3$s%4$s AND (%1$s) IS NOT NULL ORDER BY 1 DESC LIMIT 1)',
                              key_t, p_ctx->>'target',
                              CASE WHEN p_keys IS NOT NULL THEN p_ctx->>'target_exclude' ELSE '' END, p_prefix_t)
       INTO lo_t, hi_t USING p_keys;
    p_lo := CASE WHEN lo_s IS NULL THEN lo_t WHEN lo_t IS NULL THEN lo_s ELSE least(lo_s, lo_t) END;
    p_hi := CASE WHEN hi_s IS NULL THEN hi_t WHEN hi_t IS NULL THEN hi_s ELSE greatest(hi_s, hi_t) END;
    IF p_lo IS NULL THEN
        RETURN;     -- both sides empty (a NULL in a key column is no key: not compared)
    END IF;
    RETURN QUERY SELECT * FROM migrate._diff_range(p_ctx, p_keys, p_prefix_s, p_prefix_t, p_col,
                                                   p_lo, true, p_hi, true, 0, NULL, NULL);
END;
$$;

CREATE OR REPLACE FUNCTION migrate_diff(plan text, "table" text, run bigint DEFAULT NULL,
                                        leaf_rows integer DEFAULT 256)
RETURNS TABLE (diff_id bigint, key text, kind text, columns name[])
LANGUAGE plpgsql
AS $$
#variable_conflict use_column
DECLARE
    tm migrate.table_map := migrate._table_map(plan, "table");
    r migrate.run;
    q jsonb;
    keys text[];
    key_type oid;
    id bigint;
    ranges bigint;
    statements bigint;
BEGIN
    IF leaf_rows IS NULL OR leaf_rows < 1 THEN
        RAISE EXCEPTION 'leaf_rows of migrate_diff() must be at least 1 (got %)', leaf_rows
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM migrate._verify_source(tm.plan, tm.target);
    FOR i IN 1 .. pg_catalog.cardinality(tm.key) LOOP
        SELECT CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END INTO key_type
          FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
         WHERE a.attrelid = tm.target AND a.attname = tm.key[i];
        BEGIN
            EXECUTE pg_catalog.format('SELECT NULL::%1$s < NULL::%1$s', key_type::regtype);
        EXCEPTION WHEN undefined_function THEN
            RAISE EXCEPTION 'migrate_diff() cannot split the key "%" of table % in migration plan "%": type % has no ordering',
                            tm.key[i], tm.target, tm.plan, key_type::regtype
                USING ERRCODE = 'feature_not_supported',
                      HINT = 'migrate_verify() checks such tables; to diff one, map it with a key of ordered types (integer, text, date, uuid ...).';
        END;
    END LOOP;
    r := migrate._verify_run(tm.plan, run);
    q := migrate._verify_sql(tm.plan, tm.target) || pg_catalog.jsonb_build_object('leaf_rows', leaf_rows);
    keys := migrate._rejected_keys(r.run_id, tm.target, q->>'key_type');
    id := pg_catalog.nextval('migrate.diff_id_seq');
    BEGIN
        WITH d AS (SELECT * FROM migrate._diff_walk(q, keys, '', '', 1)),
             i AS (INSERT INTO migrate.diff_result (diff_id, plan, run_id, target, key, kind, columns)
                   SELECT id, tm.plan, r.run_id, tm.target, d.key, d.kind, d.columns FROM d WHERE d.kind IS NOT NULL)
        SELECT count(*) FILTER (WHERE d.key = 'range'), count(*) FILTER (WHERE d.key = 'statement')
          INTO ranges, statements FROM d WHERE d.kind IS NULL;
    EXCEPTION WHEN OTHERS THEN
        RAISE EXCEPTION 'diffing table % of migration plan "%" failed: %', tm.target, tm.plan, SQLERRM
            USING ERRCODE = SQLSTATE,
                  DETAIL = pg_catalog.format('Source: %s.', tm.source),
                  HINT = 'Check that the source is reachable and that the plan''s expressions still apply to it.';
    END;
    INSERT INTO migrate.event (run_id, plan, event, details)
    SELECT r.run_id, tm.plan, 'diff',
           pg_catalog.format('diff %s of table %s: %s missing, %s extra, %s changed; %s key ranges compared by %s statements a side',
                             id, tm.target, count(*) FILTER (WHERE d.kind = 'missing'),
                             count(*) FILTER (WHERE d.kind = 'extra'), count(*) FILTER (WHERE d.kind = 'changed'),
                             ranges, statements)
      FROM migrate.diff_result d WHERE d.diff_id = id;
    RETURN QUERY SELECT d.diff_id, d.key, d.kind, d.columns FROM migrate.diff_result d
                  WHERE d.diff_id = id ORDER BY d.result_id;
END;
$$;

/* ---------------------------------------------------------------------
 * migrate_report
 * --------------------------------------------------------------------- */

-- The run as a Markdown document, also saved in migrate.run.report.
CREATE OR REPLACE FUNCTION migrate_report(run bigint)
RETURNS text
LANGUAGE plpgsql
AS $$
DECLARE
    r migrate.run;
    pl migrate.plan;
    doc text[] := '{}';
    rec record;
    last_verified timestamptz;
    problems text[] := '{}';
    warnings text[] := '{}';
    verdict text;
    ts constant text := 'YYYY-MM-DD HH24:MI:SS TZ';
BEGIN
    SELECT * INTO r FROM migrate.run u WHERE u.run_id = migrate_report.run;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'migration run % does not exist', migrate_report.run
            USING ERRCODE = 'undefined_object',
                  HINT = 'migrate.run lists the runs of every plan.';
    END IF;
    SELECT * INTO pl FROM migrate.plan WHERE plan_name = r.plan;

    doc := doc || pg_catalog.format('# Migration report: plan "%s", run %s', r.plan, r.run_id) || ''::text
           || '| | |'::text || '|---|---|'::text
           || pg_catalog.format('| plan | %s (source schema %s, target schema %s) |', migrate._md(r.plan),
                                coalesce(pl.source_schema::text, '-'), coalesce(pl.target_schema::text, '-'))
           || pg_catalog.format('| run | %s, mode %s%s |', r.run_id, r.mode, CASE WHEN r.dry_run THEN ', dry run' ELSE '' END)
           || pg_catalog.format('| run by | %s |', r.run_by)
           || pg_catalog.format('| started | %s |', pg_catalog.to_char(r.started_at, ts))
           || pg_catalog.format('| finished | %s |', coalesce(pg_catalog.to_char(r.finished_at, ts), 'still running'))
           || pg_catalog.format('| duration | %s s |', coalesce(pg_catalog.round(EXTRACT(epoch FROM r.finished_at - r.started_at), 1)::text, '-'))
           || pg_catalog.format('| state | %s |', r.state)
           || pg_catalog.format('| batch size | %s |', r.batch_size);
    IF r.error IS NOT NULL THEN
        doc := doc || pg_catalog.format('| error | %s |', migrate._md(r.error));
    END IF;
    SELECT sum(rows_read) AS rd, sum(rows_written) AS wr, sum(rows_rejected) AS rj, sum(rows_skipped) AS sk
      INTO rec FROM migrate.run_table WHERE run_id = r.run_id;
    doc := doc || pg_catalog.format('| rows | %s read, %s written, %s rejected, %s skipped |',
                                    coalesce(rec.rd, 0), coalesce(rec.wr, 0), coalesce(rec.rj, 0), coalesce(rec.sk, 0))
           || pg_catalog.format('| verification | %s |',
                                CASE WHEN r.verified THEN 'passed, ' || pg_catalog.to_char(r.verified_at, ts)
                                     WHEN NOT r.verified THEN 'FAILED, ' || pg_catalog.to_char(r.verified_at, ts)
                                     ELSE 'not verified' END);

    -- tables
    doc := doc || ''::text || '## Tables'::text || ''::text
           || '| table | source | state | read | written | rejected | skipped | warned | time | throughput |'::text
           || '|---|---|---|--:|--:|--:|--:|--:|--:|--:|'::text;
    FOR rec IN SELECT rt.*, EXTRACT(epoch FROM rt.finished_at - rt.started_at) AS secs
                 FROM migrate.run_table rt WHERE rt.run_id = r.run_id ORDER BY rt.load_order LOOP
        doc := doc || pg_catalog.format('| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |',
                                        migrate._md(rec.target::text), migrate._md(rec.source), rec.state,
                                        rec.rows_read, rec.rows_written, rec.rows_rejected, rec.rows_skipped,
                                        rec.rows_warned,
                                        coalesce(pg_catalog.round(rec.secs, 2) || ' s', '-'),
                                        CASE WHEN rec.secs > 0 THEN pg_catalog.round(rec.rows_read / rec.secs) || ' rows/s'
                                             ELSE '-' END);
        IF rec.error IS NOT NULL THEN
            problems := problems || pg_catalog.format('table %s failed: %s', rec.target, rec.error);
        END IF;
        IF rec.state NOT IN ('succeeded') AND rec.error IS NULL THEN
            problems := problems || pg_catalog.format('table %s is %s', rec.target, rec.state);
        END IF;
        IF rec.source_count IS NOT NULL AND rec.source_count <> rec.rows_read THEN
            warnings := warnings || pg_catalog.format('table %s: %s rows read but the source counts %s',
                                                      rec.target, rec.rows_read, rec.source_count);
        END IF;
    END LOOP;

    -- rejects
    doc := doc || ''::text || '## Rejected rows by reason'::text || ''::text;
    IF EXISTS (SELECT 1 FROM migrate.reject j WHERE j.run_id = r.run_id AND NOT j.loaded) THEN
        doc := doc || '| table | reason | rows | example keys | message |'::text || '|---|---|--:|---|---|'::text;
        FOR rec IN SELECT j.target, j.reason, count(*) AS n,
                          (pg_catalog.array_agg(j.source_key ORDER BY j.reject_id))[1:3] AS examples,
                          min(j.message) AS message
                     FROM migrate.reject j WHERE j.run_id = r.run_id AND NOT j.loaded
                    GROUP BY 1, 2 ORDER BY j.target::text, count(*) DESC, j.reason LOOP
            doc := doc || pg_catalog.format('| %s | %s | %s | %s | %s |', migrate._md(rec.target::text),
                                            migrate._md(rec.reason), rec.n,
                                            migrate._md(pg_catalog.array_to_string(rec.examples, ', ')),
                                            migrate._md(rec.message));
        END LOOP;
    ELSE
        doc := doc || 'No row was rejected.'::text;
    END IF;

    -- warnings: rows loaded with a finding, count mismatches
    FOR rec IN SELECT j.target, j.reason, count(*) AS n,
                      (pg_catalog.array_agg(j.source_key ORDER BY j.reject_id))[1:3] AS examples
                 FROM migrate.reject j WHERE j.run_id = r.run_id AND j.loaded
                GROUP BY 1, 2 ORDER BY j.target::text, j.reason LOOP
        warnings := warnings || pg_catalog.format('table %s: %s rows loaded with warning "%s" (keys %s)',
                                                  rec.target, rec.n, rec.reason,
                                                  pg_catalog.array_to_string(rec.examples, ', '));
    END LOOP;
    doc := doc || ''::text || '## Warnings'::text || ''::text;
    IF warnings = '{}' THEN
        doc := doc || 'None.'::text;
    ELSE
        doc := doc || ARRAY(SELECT '- ' || migrate._md(w) FROM pg_catalog.unnest(warnings) w);
    END IF;

    -- the last verification of the run
    doc := doc || ''::text || '## Verification'::text || ''::text;
    SELECT max(v.verified_at) INTO last_verified FROM migrate.verification v WHERE v.run_id = r.run_id;
    IF last_verified IS NULL THEN
        doc := doc || pg_catalog.format('Not verified: run `SELECT * FROM migrate_verify(%L, run => %s)`.',
                                        r.plan, r.run_id);
    ELSE
        doc := doc || pg_catalog.format('Verified %s by %s.',
                                        pg_catalog.to_char(last_verified, ts),
                                        (SELECT min(v.verified_by) FROM migrate.verification v
                                          WHERE v.run_id = r.run_id AND v.verified_at = last_verified))
               || ''::text || '| table | check | source | target | result | details |'::text
               || '|---|---|--:|--:|---|---|'::text;
        FOR rec IN SELECT * FROM migrate.verification v WHERE v.run_id = r.run_id AND v.verified_at = last_verified
                    ORDER BY v.verification_id LOOP
            doc := doc || pg_catalog.format('| %s | %s | %s | %s | %s | %s |', migrate._md(rec.target::text),
                                            migrate._md(rec.check_name), migrate._md(rec.source_value),
                                            migrate._md(rec.target_value), CASE WHEN rec.ok THEN 'ok' ELSE '**FAILED**' END,
                                            migrate._md(rec.details));
            IF NOT rec.ok THEN
                problems := problems || pg_catalog.format('verification of %s failed: %s', rec.target, rec.check_name);
            END IF;
        END LOOP;
    END IF;

    -- verdict
    IF r.state = 'running' THEN
        verdict := '**IN PROGRESS**: the run has not ended.';
    ELSIF r.state <> 'succeeded' THEN
        verdict := pg_catalog.format('**FAILED**: the run %s.', r.state);
    ELSIF r.dry_run THEN
        verdict := '**DRY RUN**: no target row was written.';
    ELSIF problems <> '{}' THEN
        verdict := '**FAILED**: the target does not match the source.';
    ELSIF last_verified IS NULL THEN
        verdict := '**NOT VERIFIED**: the run succeeded; verify it to certify the target.';
    ELSE
        verdict := '**PASSED**: the run succeeded and the target matches the source.';
    END IF;
    doc := doc || ''::text || '## Verdict'::text || ''::text || verdict
           || ARRAY(SELECT '- ' || migrate._md(p) FROM pg_catalog.unnest(problems) p);

    UPDATE migrate.run AS u SET report = pg_catalog.array_to_string(doc, E'\n') || E'\n'
     WHERE u.run_id = r.run_id;
    RETURN pg_catalog.array_to_string(doc, E'\n') || E'\n';
END;
$$;

-- ==== end of verification section ====




-- ==== assessment and automap (issue 5) ====

/*
 * Assessment and automap: migrate_automap() builds table and column
 * mappings by name, migrate_check() lists what is wrong with a plan before
 * a row moves, migrate_profile() measures the source data against the
 * mapping.  All three work on any source; with a mysql_fdw source they also
 * read the remote MySQL/MariaDB catalog (information_schema.COLUMNS) to
 * apply the MySQL cast rules (see docs/reference.md, migrate_automap).
 */

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
GRANT SELECT ON migrate.profile_result TO PUBLIC;

-- A name folded for matching: lower case, only letters and digits, so that
-- InvoiceLine, invoice_line and INVOICE_LINE are the same name.
CREATE OR REPLACE FUNCTION migrate._name_key(p_name text)
RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$ SELECT pg_catalog.lower(pg_catalog.regexp_replace(p_name, '[^[:alnum:]]', '', 'g')) $$;

-- true when loading value into a column of type target(typmod) would fail;
-- see src/assess.c.
CREATE OR REPLACE FUNCTION migrate._cast_fails(value anyelement, target regtype, typmod integer)
RETURNS boolean
AS 'MODULE_PATHNAME', 'migrate_cast_fails'
LANGUAGE C VOLATILE;

-- The type mysql_fdw can read a MySQL/MariaDB column as without losing or
-- refusing values: unsigned integers one size up, dates and times as text
-- (zero dates, TIME beyond 24 h), YEAR as smallint, ENUM and SET as text.
CREATE OR REPLACE FUNCTION migrate._mysql_read_type(p_data_type text, p_column_type text)
RETURNS text
LANGUAGE sql IMMUTABLE
AS $$
    SELECT CASE
           WHEN dt = 'tinyint' THEN 'smallint'
           WHEN dt = 'smallint' THEN CASE WHEN uns THEN 'integer' ELSE 'smallint' END
           WHEN dt = 'mediumint' THEN 'integer'
           WHEN dt IN ('int', 'integer') THEN CASE WHEN uns THEN 'bigint' ELSE 'integer' END
           WHEN dt = 'bigint' THEN CASE WHEN uns THEN 'numeric(20)' ELSE 'bigint' END
           WHEN dt IN ('decimal', 'numeric')
                THEN 'numeric' || coalesce(pg_catalog.substring(p_column_type, '\(\d+(?:,\d+)?\)'), '')
           WHEN dt = 'float' THEN 'real'
           WHEN dt IN ('double', 'real') THEN 'double precision'
           WHEN dt IN ('date', 'datetime', 'timestamp', 'time') THEN 'varchar(32)'
           WHEN dt = 'year' THEN 'smallint'
           WHEN dt IN ('char', 'varchar') THEN 'varchar' || coalesce(pg_catalog.substring(p_column_type, '\(\d+\)'), '')
           WHEN dt IN ('enum', 'set') THEN 'varchar'
           WHEN dt IN ('binary', 'varbinary', 'tinyblob', 'blob', 'mediumblob', 'longblob', 'bit',
                       'geometry', 'point', 'linestring', 'polygon') THEN 'bytea'
           ELSE 'text' END
      FROM (SELECT pg_catalog.lower(p_data_type) AS dt,
                   pg_catalog.lower(p_column_type) LIKE '%unsigned%' AS uns) x
$$;

-- The remote catalog of one MySQL/MariaDB database, read through a
-- temporary foreign table on information_schema.COLUMNS of the server.
CREATE OR REPLACE FUNCTION migrate._mysql_columns(p_server name, p_database text)
RETURNS TABLE (table_name text, column_name text, ordinal integer, data_type text,
               column_type text, nullable boolean)
LANGUAGE plpgsql
SET client_min_messages = warning
AS $$
BEGIN
    DROP FOREIGN TABLE IF EXISTS pg_temp.migrate_mysql_columns;
    EXECUTE pg_catalog.format(
        'CREATE FOREIGN TABLE pg_temp.migrate_mysql_columns ('
        '"TABLE_SCHEMA" varchar(64), "TABLE_NAME" varchar(64), "COLUMN_NAME" varchar(64),'
        ' "ORDINAL_POSITION" bigint, "DATA_TYPE" varchar(64), "COLUMN_TYPE" text,'
        ' "IS_NULLABLE" varchar(3)) SERVER %I'
        ' OPTIONS (dbname ''information_schema'', table_name ''COLUMNS'')', p_server);
    RETURN QUERY
        SELECT c."TABLE_NAME"::text, c."COLUMN_NAME"::text, c."ORDINAL_POSITION"::integer,
               pg_catalog.lower(c."DATA_TYPE"), pg_catalog.lower(c."COLUMN_TYPE"),
               c."IS_NULLABLE" = 'YES'
          FROM pg_temp.migrate_mysql_columns c
         WHERE c."TABLE_SCHEMA" = p_database;
    DROP FOREIGN TABLE pg_temp.migrate_mysql_columns;
END;
$$;

-- The mysql_fdw server and remote database and table of a foreign table;
-- no row when it is not a mysql_fdw foreign table.
CREATE OR REPLACE FUNCTION migrate._mysql_source(p_rel regclass)
RETURNS TABLE (server name, dbname text, table_name text)
LANGUAGE sql STABLE
AS $$
    SELECT s.srvname,
           (SELECT pg_catalog.substr(o, 8) FROM unnest(ft.ftoptions) o WHERE o LIKE 'dbname=%'),
           coalesce((SELECT pg_catalog.substr(o, 12) FROM unnest(ft.ftoptions) o WHERE o LIKE 'table_name=%'),
                    c.relname)
      FROM pg_catalog.pg_foreign_table ft
      JOIN pg_catalog.pg_class c ON c.oid = ft.ftrelid
      JOIN pg_catalog.pg_foreign_server s ON s.oid = ft.ftserver
      JOIN pg_catalog.pg_foreign_data_wrapper w ON w.oid = s.srvfdw
     WHERE ft.ftrelid = p_rel AND w.fdwname = 'mysql_fdw'
$$;

-- The source columns an expression reads (s.col / s."Col"), as names.
CREATE OR REPLACE FUNCTION migrate._expr_columns(p_expr text)
RETURNS name[]
LANGUAGE sql IMMUTABLE STRICT
AS $$
    SELECT coalesce(array_agg(DISTINCT CASE WHEN m[1] LIKE '"%'
                                            THEN pg_catalog.replace(pg_catalog.substr(m[1], 2, pg_catalog.length(m[1]) - 2), '""', '"')
                                            ELSE pg_catalog.lower(m[1]) END::name), '{}')
      FROM pg_catalog.regexp_matches(p_expr, '(?:^|[^[:alnum:]_."])s\.("(?:[^"]|"")+"|[[:alpha:]_][[:alnum:]_$]*)', 'g') m
$$;

/*
 * migrate_automap(plan): map every source relation of the plan's source
 * schema to the target table of the plan's target schema with the same
 * name (exactly, case-insensitively, or ignoring case and underscores:
 * InvoiceLine -> invoice_line), and each target column to the source column
 * of the same name in the same sense, with a cast expression where the
 * types need one.  Existing table and column mappings are kept.  With a
 * mysql_fdw source it first reads the remote catalog and (unless the plan's
 * options say {"automap": {"alter_source": false}}) widens foreign-table
 * columns mysql_fdw would misread, and creates the foreign tables IMPORT
 * FOREIGN SCHEMA skipped ({"automap": {"create_source": false}}).
 */
CREATE OR REPLACE FUNCTION migrate_automap(plan text)
RETURNS TABLE (target regclass, source text, column_name name, source_column name,
               expr text, action text)
LANGUAGE plpgsql
SET client_min_messages = warning
AS $$
#variable_conflict use_column
DECLARE
    pl migrate.plan := migrate._plan(plan);
    alter_source boolean := coalesce((pl.options->'automap'->>'alter_source')::boolean, true);
    create_source boolean := coalesce((pl.options->'automap'->>'create_source')::boolean, true);
    t record;
    c record;
    r record;
    src regclass;
    tm migrate.table_map;
    remote_db text;
    remote_srv name;
    cands text[];
    cand text;
    ref text;
    tname text;
    chosen text;
    err text;
    src_ns oid := (SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = pl.source_schema);
    tgt_ns oid := (SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = pl.target_schema);
BEGIN
    IF pl.source_schema IS NULL THEN
        RAISE EXCEPTION 'migration plan "%" has no source schema', plan
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Set it with migrate_plan(..., source_schema => ...); automap maps the relations of that schema.';
    END IF;

    -- the remote catalog of every mysql_fdw server/database the source uses
    CREATE TEMP TABLE IF NOT EXISTS migrate_automap_remote
        (server name, dbname text, table_name text, column_name text, ordinal integer,
         data_type text, column_type text, nullable boolean);
    TRUNCATE migrate_automap_remote;
    FOR r IN SELECT DISTINCT ms.server, ms.dbname
               FROM pg_catalog.pg_class rc
               CROSS JOIN LATERAL migrate._mysql_source(rc.oid) ms
              WHERE rc.relnamespace = src_ns AND rc.relkind = 'f'
             UNION
             SELECT pl.source_server, coalesce(pl.options->>'remote_schema', pl.source_schema)
               FROM pg_catalog.pg_foreign_server s
               JOIN pg_catalog.pg_foreign_data_wrapper w ON w.oid = s.srvfdw
              WHERE s.srvname = pl.source_server AND w.fdwname = 'mysql_fdw' LOOP
        BEGIN
            INSERT INTO migrate_automap_remote
            SELECT r.server, r.dbname, m.* FROM migrate._mysql_columns(r.server, r.dbname) m;
            remote_srv := coalesce(remote_srv, r.server);
            remote_db := coalesce(remote_db, r.dbname);
        EXCEPTION WHEN OTHERS THEN
            target := NULL; source := NULL; column_name := NULL; source_column := NULL; expr := NULL;
            action := pg_catalog.format('remote catalog of server %s, database %s not read: %s',
                                        r.server, r.dbname, SQLERRM);
            RETURN NEXT;
        END;
    END LOOP;

    -- remote tables with a target of the same name but no foreign table
    -- (IMPORT FOREIGN SCHEMA of mysql_fdw 2.8 skips tables with SET columns
    -- and fails on YEAR): create them with types that read every value
    IF create_source AND remote_srv IS NOT NULL THEN
        FOR r IN SELECT rt.table_name,
                        pg_catalog.string_agg(pg_catalog.quote_ident(rt.column_name) || ' '
                                              || migrate._mysql_read_type(rt.data_type, rt.column_type),
                                              ', ' ORDER BY rt.ordinal) AS cols
                   FROM migrate_automap_remote rt
                  WHERE rt.server = remote_srv AND rt.dbname = remote_db
                    AND EXISTS (SELECT 1 FROM pg_catalog.pg_class tc
                                 WHERE tc.relnamespace = tgt_ns
                                   AND tc.relkind IN ('r', 'p')
                                   AND migrate._name_key(tc.relname) = migrate._name_key(rt.table_name))
                    AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_class sc
                                     WHERE sc.relnamespace = src_ns
                                       AND migrate._name_key(sc.relname) = migrate._name_key(rt.table_name))
                  GROUP BY rt.table_name ORDER BY rt.table_name LOOP
            EXECUTE pg_catalog.format('CREATE FOREIGN TABLE %I.%I (%s) SERVER %I OPTIONS (dbname %L, table_name %L)',
                                      pl.source_schema, r.table_name, r.cols, remote_srv, remote_db, r.table_name);
            target := NULL;
            source := pg_catalog.format('%I.%I', pl.source_schema, r.table_name);
            column_name := NULL; source_column := NULL; expr := NULL;
            action := 'foreign table created (IMPORT FOREIGN SCHEMA skipped it)';
            RETURN NEXT;
        END LOOP;
    END IF;

    FOR t IN SELECT tc.oid::regclass AS rel, tc.relname
               FROM pg_catalog.pg_class tc
              WHERE tc.relnamespace = tgt_ns
                AND tc.relkind IN ('r', 'p') AND NOT tc.relispartition
              ORDER BY tc.relname LOOP
        target := t.rel; source := NULL; column_name := NULL; source_column := NULL; expr := NULL;
        SELECT * INTO tm FROM migrate.table_map m WHERE m.plan = pl.plan_name AND m.target = t.rel;
        IF FOUND THEN
            src := pg_catalog.to_regclass(tm.source);
            source := tm.source;
            action := 'table mapping kept';
        ELSE
            -- exact name, then case-insensitive, then ignoring case and underscores
            SELECT pg_catalog.array_agg(sc.oid::regclass ORDER BY sc.relname) INTO cands
              FROM pg_catalog.pg_class sc
             WHERE sc.relnamespace = src_ns
               AND sc.relkind IN ('r', 'v', 'm', 'f', 'p') AND NOT sc.relispartition
               AND migrate._name_key(sc.relname) = migrate._name_key(t.relname)
               AND (sc.relname = t.relname
                    OR NOT EXISTS (SELECT 1 FROM pg_catalog.pg_class x
                                    WHERE x.relnamespace = sc.relnamespace AND x.relname = t.relname
                                      AND x.relkind IN ('r', 'v', 'm', 'f', 'p')));
            IF cands IS NULL THEN
                action := 'no source relation';
                RETURN NEXT;
                CONTINUE;
            ELSIF pg_catalog.cardinality(cands) > 1 THEN
                action := 'not mapped: several source relations match: ' || pg_catalog.array_to_string(cands, ', ');
                RETURN NEXT;
                CONTINUE;
            END IF;
            src := cands[1]::regclass;
            BEGIN
                PERFORM migrate_table(pl.plan_name, src::text, t.rel::text);
            EXCEPTION WHEN OTHERS THEN
                source := src::text;
                action := 'not mapped: ' || SQLERRM;
                RETURN NEXT;
                CONTINUE;
            END;
            SELECT * INTO tm FROM migrate.table_map m WHERE m.plan = pl.plan_name AND m.target = t.rel;
            source := tm.source;
            action := 'table mapped';
        END IF;
        RETURN NEXT;
        IF src IS NULL THEN
            CONTINUE;
        END IF;

        FOR c IN SELECT a.attname, a.atttypid, a.atttypmod, a.attnotnull,
                        a.atthasdef OR a.attidentity <> '' AS has_default,
                        pg_catalog.format_type(a.atttypid, NULL) AS base_type,
                        sa.attname AS src_col, sa.atttypid AS src_type,
                        pg_catalog.format_type(sa.atttypid, sa.atttypmod) AS src_type_name,
                        rc.data_type, rc.column_type, cm.expr AS explicit
                   FROM pg_catalog.pg_attribute a
                   LEFT JOIN migrate.column_map cm
                     ON cm.plan = pl.plan_name AND cm.target = t.rel AND cm.column_name = a.attname
                   LEFT JOIN LATERAL (
                        SELECT s2.attname, s2.atttypid, s2.atttypmod
                          FROM pg_catalog.pg_attribute s2
                         WHERE s2.attrelid = src AND s2.attnum > 0 AND NOT s2.attisdropped
                           AND migrate._name_key(s2.attname) = migrate._name_key(a.attname)
                         ORDER BY s2.attname = a.attname DESC, pg_catalog.lower(s2.attname) = pg_catalog.lower(a.attname) DESC
                         LIMIT 1) sa ON true
                   LEFT JOIN LATERAL (
                        SELECT rt.data_type, rt.column_type
                          FROM migrate._mysql_source(src) ms
                          JOIN migrate_automap_remote rt
                            ON rt.server = ms.server AND rt.dbname = ms.dbname
                           AND rt.table_name = ms.table_name AND rt.column_name = sa.attname) rc ON true
                  WHERE a.attrelid = t.rel AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
                  ORDER BY a.attnum LOOP
            column_name := c.attname;
            source_column := c.src_col;
            expr := c.explicit;
            IF c.explicit IS NOT NULL THEN
                action := 'column mapping kept';
                RETURN NEXT;
                CONTINUE;
            END IF;
            IF c.src_col IS NULL THEN
                action := CASE WHEN c.attnotnull AND NOT c.has_default
                               THEN 'no source column: NOT NULL without default, map it with migrate_column()'
                               ELSE 'no source column: the default applies' END;
                RETURN NEXT;
                CONTINUE;
            END IF;

            -- a foreign column mysql_fdw would misread: widen it first
            IF alter_source AND c.data_type IS NOT NULL
               AND ((c.data_type IN ('date', 'datetime', 'timestamp', 'time')
                     AND c.src_type NOT IN ('text'::regtype, 'varchar'::regtype, 'bpchar'::regtype))
                    OR (c.data_type IN ('decimal', 'numeric') AND c.src_type_name = 'numeric')
                    OR (c.column_type LIKE '%unsigned%'
                        AND c.src_type IN ('int2'::regtype, 'int4'::regtype, 'int8'::regtype)
                        AND c.src_type_name <> migrate._mysql_read_type(c.data_type, c.column_type)
                        AND pg_catalog.format_type(c.src_type, NULL)
                            <> migrate._mysql_read_type(c.data_type, c.column_type))) THEN
                EXECUTE pg_catalog.format('ALTER FOREIGN TABLE %s ALTER COLUMN %I TYPE %s',
                                          src, c.src_col, migrate._mysql_read_type(c.data_type, c.column_type));
                c.src_type := pg_catalog.to_regtype(migrate._mysql_read_type(c.data_type, c.column_type));
                expr := NULL;
                action := pg_catalog.format('source column type changed from %s to %s (%s in MySQL)',
                                            c.src_type_name, migrate._mysql_read_type(c.data_type, c.column_type),
                                            c.column_type);
                RETURN NEXT;
            END IF;

            -- candidate expressions, most specific first; the first one the
            -- engine's own check accepts (migrate_column) wins
            ref := 's.' || pg_catalog.quote_ident(c.src_col);
            tname := c.base_type;
            cands := '{}';
            IF c.atttypid = 'bool'::regtype AND c.src_type IN ('int2'::regtype, 'int4'::regtype, 'int8'::regtype, 'numeric'::regtype) THEN
                cands := cands || pg_catalog.format('(%s <> 0)', ref);           -- tinyint(1)
            ELSIF c.atttypid = 'bool'::regtype AND c.src_type = 'bytea'::regtype THEN
                cands := cands || pg_catalog.format('(pg_catalog.get_byte(%s, 0) <> 0)', ref);   -- bit(1)
            ELSIF c.atttypid IN ('date'::regtype, 'timestamp'::regtype, 'timestamptz'::regtype)
                  AND c.src_type IN ('text'::regtype, 'varchar'::regtype, 'bpchar'::regtype)
                  AND (c.data_type IS NULL OR c.data_type IN ('date', 'datetime', 'timestamp')) THEN
                cands := cands || pg_catalog.format('(CASE WHEN %s LIKE ''0000-00-00%%'' THEN NULL ELSE %s END)::%s',
                                                    ref, ref, tname);       -- zero dates
            ELSIF c.data_type = 'set' OR (pg_catalog.format_type(c.atttypid, NULL) LIKE '%[]'
                                          AND c.src_type IN ('text'::regtype, 'varchar'::regtype)) THEN
                cands := cands || pg_catalog.format('pg_catalog.string_to_array(%s, '','')::%s', ref, tname);
            ELSIF c.data_type = 'year' AND c.atttypid = 'date'::regtype THEN
                cands := cands || pg_catalog.format('pg_catalog.make_date(nullif(%s, 0)::integer, 1, 1)', ref);
            END IF;
            cands := cands || ref || pg_catalog.format('(%s)::%s', ref, tname)
                           || pg_catalog.format('(%s)::text::%s', ref, tname);
            chosen := NULL;
            FOREACH cand IN ARRAY cands LOOP
                BEGIN
                    PERFORM migrate_column(pl.plan_name, t.rel::text, c.attname, cand);
                    chosen := cand;
                    EXIT;
                EXCEPTION WHEN OTHERS THEN
                    err := SQLERRM;
                END;
            END LOOP;
            IF chosen IS NULL THEN
                expr := NULL;
                action := 'not mapped: ' || err;
            ELSIF chosen = ref AND c.src_col = c.attname
                  AND (SELECT sa.atttypid = c.atttypid AND sa.atttypmod = c.atttypmod
                         FROM pg_catalog.pg_attribute sa
                        WHERE sa.attrelid = src AND sa.attname = c.src_col) THEN
                -- same name and type: the engine copies it without a cast
                PERFORM migrate_column(pl.plan_name, t.rel::text, c.attname, NULL);
                expr := ref;
                action := 'same name and type';
            ELSE
                expr := chosen;
                action := CASE WHEN chosen = ref THEN 'mapped' ELSE 'mapped with a cast' END;
            END IF;
            RETURN NEXT;
        END LOOP;
    END LOOP;

    -- source relations no target took
    FOR r IN SELECT pg_catalog.format('%I.%I', pl.source_schema, sc.relname) AS src
               FROM pg_catalog.pg_class sc
              WHERE sc.relnamespace = src_ns
                AND sc.relkind IN ('r', 'v', 'm', 'f', 'p') AND NOT sc.relispartition
                AND NOT EXISTS (SELECT 1 FROM migrate.table_map m
                                 WHERE m.plan = pl.plan_name AND pg_catalog.to_regclass(m.source) = sc.oid)
              ORDER BY sc.relname LOOP
        target := NULL; source := r.src; column_name := NULL; source_column := NULL; expr := NULL;
        action := 'no target table';
        RETURN NEXT;
    END LOOP;
END;
$$;

-- The type and typmod of each mapped expression of a table, as the engine
-- would compute it (a temporary view over the source, nothing is read);
-- error holds the planner's message where the expression does not plan.
CREATE OR REPLACE FUNCTION migrate._mapped_types(p_plan text, p_target regclass)
RETURNS TABLE (column_name name, expr text, expr_type oid, expr_typmod integer, error text)
LANGUAGE plpgsql
SET client_min_messages = warning
AS $$
DECLARE
    tm migrate.table_map;
    m record;
BEGIN
    SELECT * INTO tm FROM migrate.table_map x WHERE x.plan = p_plan AND x.target = p_target;
    FOR m IN SELECT * FROM migrate._mapped_columns(p_plan, p_target) LOOP
        column_name := m.column_name;
        expr := m.expr;
        expr_type := NULL; expr_typmod := NULL; error := NULL;
        BEGIN
            DROP VIEW IF EXISTS pg_temp.migrate_mapped_type;
            EXECUTE pg_catalog.format('CREATE TEMP VIEW migrate_mapped_type AS SELECT %s AS v FROM %s AS s',
                                      m.expr, tm.source);
            SELECT a.atttypid, a.atttypmod INTO expr_type, expr_typmod
              FROM pg_catalog.pg_attribute a
             WHERE a.attrelid = 'pg_temp.migrate_mapped_type'::regclass AND a.attname = 'v';
            DROP VIEW pg_temp.migrate_mapped_type;
        EXCEPTION WHEN OTHERS THEN
            error := SQLERRM;
        END;
        RETURN NEXT;
    END LOOP;
END;
$$;

-- Why a cast from (st, stm) to (tt, ttm) can lose or refuse values; NULL
-- when it cannot.  Returns severity and message.
CREATE OR REPLACE FUNCTION migrate._lossy_cast(st oid, stm integer, tt oid, ttm integer)
RETURNS TABLE (severity text, message text)
LANGUAGE plpgsql STABLE
AS $$
DECLARE
    sn text := pg_catalog.format_type(st, stm);
    tn text := pg_catalog.format_type(tt, ttm);
    strs oid[] := ARRAY['text'::regtype, 'varchar'::regtype, 'bpchar'::regtype, 'name'::regtype]::oid[];
    ints oid[] := ARRAY['int2'::regtype, 'int4'::regtype, 'int8'::regtype]::oid[];
    srank integer := pg_catalog.array_position(ints, st);
    trank integer := pg_catalog.array_position(ints, tt);
BEGIN
    IF st = tt AND stm = ttm THEN
        RETURN;
    END IF;
    severity := 'warning';
    IF tt = ANY (strs) AND ttm >= 0 THEN
        IF st = ANY (strs) AND stm >= 0 AND stm <= ttm THEN
            RETURN;
        END IF;
        message := pg_catalog.format('%s into %s: longer values are refused', sn, tn);
    ELSIF tt = ANY (strs) THEN
        RETURN;                                   -- unbounded text takes anything
    ELSIF st = ANY (strs) THEN
        severity := 'info';
        message := pg_catalog.format('%s parsed as %s: values that do not parse are refused', sn, tn);
    ELSIF trank IS NOT NULL AND srank IS NOT NULL THEN
        IF trank >= srank THEN RETURN; END IF;
        message := pg_catalog.format('%s into %s: out-of-range values are refused', sn, tn);
    ELSIF trank IS NOT NULL AND st IN ('numeric'::regtype, 'float4'::regtype, 'float8'::regtype) THEN
        message := pg_catalog.format('%s into %s: fractions are rounded, out-of-range values refused', sn, tn);
    ELSIF tt = 'numeric'::regtype AND ttm >= 0 THEN
        IF st = 'numeric'::regtype AND stm >= 0
           AND ((stm - 4) >> 16) - ((stm - 4) & 65535) <= ((ttm - 4) >> 16) - ((ttm - 4) & 65535)
           AND ((stm - 4) & 65535) <= ((ttm - 4) & 65535) THEN
            RETURN;
        ELSIF srank IS NOT NULL AND ((ttm - 4) >> 16) - ((ttm - 4) & 65535) >= (ARRAY[5, 10, 19])[srank] THEN
            RETURN;
        END IF;
        message := pg_catalog.format('%s into %s: precision narrowed, values are rounded or refused', sn, tn);
    ELSIF tt = 'float4'::regtype AND st IN ('float8'::regtype, 'numeric'::regtype, 'int4'::regtype, 'int8'::regtype) THEN
        message := pg_catalog.format('%s into %s: precision lost', sn, tn);
    ELSIF tt = 'float8'::regtype AND st IN ('numeric'::regtype, 'int8'::regtype) THEN
        message := pg_catalog.format('%s into %s: precision lost', sn, tn);
    ELSIF tt = 'date'::regtype AND st IN ('timestamp'::regtype, 'timestamptz'::regtype) THEN
        message := pg_catalog.format('%s into %s: the time of day is lost', sn, tn);
    ELSIF tt = 'timestamp'::regtype AND st = 'timestamptz'::regtype THEN
        message := pg_catalog.format('%s into %s: the time zone is lost (converted to the session''s)', sn, tn);
    ELSIF st IN ('timestamp'::regtype, 'timestamptz'::regtype, 'time'::regtype) AND ttm >= 0 AND (stm < 0 OR ttm < stm) THEN
        message := pg_catalog.format('%s into %s: fractional seconds are rounded', sn, tn);
    ELSIF tt = 'bool'::regtype AND NOT st = 'bool'::regtype THEN
        severity := 'info';
        message := pg_catalog.format('%s into %s: non-zero means true', sn, tn);
    ELSE
        RETURN;
    END IF;
    RETURN NEXT;
END;
$$;

/*
 * migrate_check(plan): what is wrong with a plan before any row moves.
 * Nothing is read from the source (expressions are planned, not run).
 */
CREATE OR REPLACE FUNCTION migrate_check(plan text)
RETURNS TABLE (severity text, table_name text, column_name name, message text)
LANGUAGE plpgsql
SET client_min_messages = warning
AS $$
#variable_conflict use_column
DECLARE
    pl migrate.plan := migrate._plan(plan);
    src_ns oid := (SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = pl.source_schema);
    tgt_ns oid := (SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = pl.target_schema);
    tm migrate.table_map;
    r record;
BEGIN
    CREATE TEMP TABLE IF NOT EXISTS migrate_check_finding
        (severity text, table_name text, column_name name, message text);
    TRUNCATE migrate_check_finding;

    FOR tm IN SELECT * FROM migrate.table_map m WHERE m.plan = pl.plan_name ORDER BY m.target::text LOOP
        IF pg_catalog.to_regclass(tm.source) IS NULL THEN
            INSERT INTO migrate_check_finding VALUES
                ('error', tm.target::text, NULL, pg_catalog.format('source relation %s does not exist', tm.source));
            CONTINUE;
        END IF;
        -- mappings that do not plan, and casts that can lose data
        FOR r IN SELECT mt.*, a.atttypid, a.atttypmod
                   FROM migrate._mapped_types(pl.plan_name, tm.target) mt
                   JOIN pg_catalog.pg_attribute a ON a.attrelid = tm.target AND a.attname = mt.column_name LOOP
            IF r.error IS NOT NULL THEN
                INSERT INTO migrate_check_finding VALUES
                    ('error', tm.target::text, r.column_name,
                     pg_catalog.format('mapping %s does not plan: %s', r.expr, r.error));
            ELSE
                INSERT INTO migrate_check_finding
                SELECT lc.severity, tm.target::text, r.column_name, lc.message || pg_catalog.format(' (%s)', r.expr)
                  FROM migrate._lossy_cast(r.expr_type, r.expr_typmod, r.atttypid, r.atttypmod) lc;
                BEGIN
                    PERFORM migrate._check_mapping(pl.plan_name, tm.target, r.column_name);
                EXCEPTION WHEN OTHERS THEN
                    INSERT INTO migrate_check_finding VALUES ('error', tm.target::text, r.column_name, SQLERRM);
                END;
            END IF;
        END LOOP;
        -- rules and filter
        BEGIN
            PERFORM migrate._check_mapping(pl.plan_name, tm.target);
        EXCEPTION WHEN OTHERS THEN
            IF NOT EXISTS (SELECT 1 FROM migrate_check_finding f WHERE f.message = SQLERRM) THEN
                INSERT INTO migrate_check_finding VALUES ('error', tm.target::text, NULL, SQLERRM);
            END IF;
        END;
        -- NOT NULL target columns that get nothing
        INSERT INTO migrate_check_finding
        SELECT 'error', tm.target::text, a.attname,
               'NOT NULL column has no mapping, no same-named source column and no default: every row would be refused'
          FROM pg_catalog.pg_attribute a
         WHERE a.attrelid = tm.target AND a.attnum > 0 AND NOT a.attisdropped AND a.attnotnull
           AND NOT a.atthasdef AND a.attidentity = '' AND a.attgenerated = ''
           AND a.attname NOT IN (SELECT m.column_name FROM migrate._mapped_columns(pl.plan_name, tm.target) m);
        -- keys
        IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_index i
                        WHERE i.indrelid = tm.target AND i.indisunique AND i.indpred IS NULL AND i.indexprs IS NULL
                          AND (SELECT pg_catalog.array_agg(a.attname) FROM pg_catalog.pg_attribute a
                                WHERE a.attrelid = tm.target AND a.attnum = ANY (i.indkey)) <@ tm.key) THEN
            INSERT INTO migrate_check_finding VALUES
                ('warning', tm.target::text, NULL,
                 pg_catalog.format('key (%s) is not unique in the target: duplicate source keys load twice and a re-run cannot skip or upsert',
                                   pg_catalog.array_to_string(tm.key, ', ')));
        END IF;
        INSERT INTO migrate_check_finding
        SELECT 'warning', tm.target::text, a.attname, 'key column is nullable in the target: source rows with a NULL key are never read'
          FROM pg_catalog.pg_attribute a
         WHERE a.attrelid = tm.target AND a.attname = ANY (tm.key) AND NOT a.attnotnull;
        -- foreign keys to tables the plan does not load
        INSERT INTO migrate_check_finding
        SELECT 'warning', tm.target::text, NULL,
               pg_catalog.format('foreign key %s references %s, which the plan does not load: rows are refused unless it already holds their keys',
                                 con.conname, con.confrelid::regclass)
          FROM pg_catalog.pg_constraint con
         WHERE con.conrelid = tm.target AND con.contype = 'f' AND con.confrelid <> tm.target
           AND NOT EXISTS (SELECT 1 FROM migrate.table_map m WHERE m.plan = pl.plan_name AND m.target = con.confrelid);
        INSERT INTO migrate_check_finding
        SELECT 'info', tm.target::text, NULL,
               pg_catalog.format('foreign key %s references its own table: a row must arrive in the same batch as, or after, the row it references',
                                 con.conname)
          FROM pg_catalog.pg_constraint con
         WHERE con.conrelid = tm.target AND con.contype = 'f' AND con.confrelid = tm.target;
    END LOOP;

    -- foreign-key cycles between tables of the plan
    INSERT INTO migrate_check_finding
    WITH RECURSIVE edge AS (
        SELECT DISTINCT con.conrelid AS a, con.confrelid AS b
          FROM pg_catalog.pg_constraint con
          JOIN migrate.table_map m1 ON m1.plan = pl.plan_name AND m1.target = con.conrelid
          JOIN migrate.table_map m2 ON m2.plan = pl.plan_name AND m2.target = con.confrelid
         WHERE con.contype = 'f' AND con.conrelid <> con.confrelid
    ), walk (start, node, path) AS (
        SELECT a, b, ARRAY[a, b] FROM edge
        UNION ALL
        SELECT w.start, e.b, w.path || e.b
          FROM walk w JOIN edge e ON e.a = w.node
         WHERE w.node <> w.start AND NOT e.b = ANY (w.path[2:])
    )
    SELECT DISTINCT ON (w.start) 'error', w.start::regclass::text, NULL::name,
           'foreign keys form a cycle (' || (SELECT pg_catalog.string_agg(p::regclass::text, ' -> ' ORDER BY o)
                                               FROM unnest(w.path) WITH ORDINALITY u(p, o))
           || '): no load order satisfies them; make one constraint DEFERRABLE, or drop it and add it after the run'
      FROM walk w WHERE w.node = w.start
     ORDER BY w.start, pg_catalog.cardinality(w.path);

    -- relations left unmapped on either side
    INSERT INTO migrate_check_finding
    SELECT 'warning', pg_catalog.format('%I.%I', pl.source_schema, sc.relname), NULL,
           'source relation is not mapped: its rows are not migrated'
      FROM pg_catalog.pg_class sc
     WHERE sc.relnamespace = src_ns AND sc.relkind IN ('r', 'v', 'm', 'f', 'p') AND NOT sc.relispartition
       AND NOT EXISTS (SELECT 1 FROM migrate.table_map m
                        WHERE m.plan = pl.plan_name AND pg_catalog.to_regclass(m.source) = sc.oid);
    INSERT INTO migrate_check_finding
    SELECT 'info', tc.oid::regclass::text, NULL,
           CASE WHEN EXISTS (SELECT 1 FROM pg_catalog.pg_index i WHERE i.indrelid = tc.oid AND i.indisprimary)
                THEN 'target table is not mapped'
                ELSE 'target table is not mapped and has no primary key: map it with migrate_table(..., key => ...)' END
      FROM pg_catalog.pg_class tc
     WHERE tc.relnamespace = tgt_ns AND tc.relkind IN ('r', 'p') AND NOT tc.relispartition
       AND NOT EXISTS (SELECT 1 FROM migrate.table_map m WHERE m.plan = pl.plan_name AND m.target = tc.oid);

    RETURN QUERY
        SELECT f.severity, f.table_name, f.column_name, f.message FROM migrate_check_finding f
         ORDER BY CASE f.severity WHEN 'error' THEN 1 WHEN 'warning' THEN 2 ELSE 3 END,
                  f.table_name, f.column_name NULLS FIRST, f.message;
END;
$$;

/*
 * migrate_profile(plan): one pass over each mapped source relation (after
 * its filter), measuring every source column and, for each target column,
 * how many mapped values the load would refuse (migrate._cast_fails: type,
 * typmod, domain) and how many are NULL for a NOT NULL column.  Replaces
 * the plan's earlier rows in migrate.profile_result and returns the new
 * ones.  Reads every source row: run it on a rehearsal copy or off-hours
 * for big tables.
 */
CREATE OR REPLACE FUNCTION migrate_profile(plan text)
RETURNS SETOF migrate.profile_result
LANGUAGE plpgsql
SET client_min_messages = warning
AS $$
DECLARE
    pl migrate.plan := migrate._plan(plan);
    tm migrate.table_map;
    sc record;
    mc record;
    sel text[];
    i integer;
    nsel integer;
    res text[];
    total bigint;
    note text;
    with_casts boolean;
    q text;
BEGIN
    DELETE FROM migrate.profile_result p WHERE p.plan = pl.plan_name;
    FOR tm IN SELECT * FROM migrate.table_map m WHERE m.plan = pl.plan_name ORDER BY m.target::text LOOP
        PERFORM migrate._verify_source(pl.plan_name, tm.target);
        -- the measures, as one SELECT list of text values:
        -- per source column: nulls, distinct, min, max, min length, max length;
        -- per mapped target column: cast failures, NOT NULL violations
        CREATE TEMP TABLE IF NOT EXISTS migrate_profile_cols
            (ord integer, source_column name, source_type text, target_column name, target_type text,
             expr text, first_measure integer, cast_measure integer);
        TRUNCATE migrate_profile_cols;
        with_casts := true;
        note := NULL;
        <<attempt>>
        LOOP
            sel := ARRAY['count(*)::text'];
            TRUNCATE migrate_profile_cols;
            FOR sc IN SELECT a.attnum, a.attname, a.atttypid, pg_catalog.format_type(a.atttypid, a.atttypmod) AS tname,
                             EXISTS (SELECT 1 FROM pg_catalog.pg_proc p
                                      WHERE p.proname = 'min' AND p.prokind = 'a'
                                        AND p.proargtypes[0] IN (a.atttypid,
                                            CASE WHEN t.typtype = 'e' THEN 'anyenum'::regtype END,
                                            CASE WHEN t.typcategory = 'A' THEN 'anyarray'::regtype END,
                                            CASE WHEN t.typcategory = 'S' THEN 'text'::regtype END)) AS has_min
                          FROM pg_catalog.pg_attribute a
                          JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
                         WHERE a.attrelid = pg_catalog.to_regclass(tm.source) AND a.attnum > 0 AND NOT a.attisdropped
                         ORDER BY a.attnum LOOP
                INSERT INTO migrate_profile_cols VALUES (sc.attnum, sc.attname, sc.tname, NULL, NULL, NULL,
                                                         pg_catalog.cardinality(sel) + 1, NULL);
                sel := sel
                    || pg_catalog.format('(count(*) - count(s.%I))::text', sc.attname)
                    || pg_catalog.format('count(DISTINCT s.%I)::text', sc.attname)
                    || CASE WHEN sc.has_min THEN pg_catalog.format('min(s.%I)::text', sc.attname) ELSE 'NULL' END
                    || CASE WHEN sc.has_min THEN pg_catalog.format('max(s.%I)::text', sc.attname) ELSE 'NULL' END
                    || CASE WHEN sc.atttypid = 'bytea'::regtype
                            THEN pg_catalog.format('min(pg_catalog.length(s.%I))::text', sc.attname)
                            ELSE pg_catalog.format('min(pg_catalog.char_length(s.%I::text))::text', sc.attname) END
                    || CASE WHEN sc.atttypid = 'bytea'::regtype
                            THEN pg_catalog.format('max(pg_catalog.length(s.%I))::text', sc.attname)
                            ELSE pg_catalog.format('max(pg_catalog.char_length(s.%I::text))::text', sc.attname) END;
            END LOOP;
            -- each mapped target column, attached to the one source column it reads
            FOR mc IN SELECT m.column_name, m.expr, a.atttypid, a.atttypmod, a.attnotnull,
                             pg_catalog.format_type(a.atttypid, a.atttypmod) AS tname,
                             pg_catalog.format_type(a.atttypid, NULL) AS base_type,
                             migrate._expr_columns(m.expr) AS reads
                        FROM migrate._mapped_columns(pl.plan_name, tm.target) m
                        JOIN pg_catalog.pg_attribute a ON a.attrelid = tm.target AND a.attname = m.column_name
                       ORDER BY m.attnum LOOP
                IF pg_catalog.cardinality(mc.reads) = 1
                   AND EXISTS (SELECT 1 FROM migrate_profile_cols p WHERE p.source_column = mc.reads[1]) THEN
                    IF NOT EXISTS (SELECT 1 FROM migrate_profile_cols p
                                    WHERE p.source_column = mc.reads[1] AND p.target_column IS NULL) THEN
                        -- a second target column from the same source column: a row of its own
                        INSERT INTO migrate_profile_cols
                        SELECT p.ord, p.source_column, p.source_type, NULL, NULL, NULL, p.first_measure
                          FROM migrate_profile_cols p WHERE p.source_column = mc.reads[1] LIMIT 1;
                    END IF;
                    UPDATE migrate_profile_cols p
                       SET target_column = mc.column_name, target_type = mc.tname, expr = mc.expr,
                           cast_measure = pg_catalog.cardinality(sel) + 1
                     WHERE p.source_column = mc.reads[1] AND p.target_column IS NULL;
                    sel := sel
                        || CASE WHEN with_casts
                                THEN pg_catalog.format('count(*) FILTER (WHERE migrate._cast_fails(%s, %s::regtype, %s))::text',
                                                       -- "(x)::type" (automap's form): probe x, so that
                                                       -- a failing cast counts instead of raising
                                                       coalesce((SELECT '(' || m[1] || ')' || coalesce(m[2], '')
                                                                   FROM pg_catalog.regexp_match(mc.expr,
                                                                        '^\((.*)\)(::text)?::' || pg_catalog.regexp_replace(mc.base_type, '([^[:alnum:] _])', '\\\1', 'g') || '$') m),
                                                                mc.expr),
                                                       mc.atttypid, mc.atttypmod)
                                ELSE 'NULL' END
                        || CASE WHEN mc.attnotnull
                                THEN pg_catalog.format('count(*) FILTER (WHERE (%s) IS NULL)::text', mc.expr)
                                ELSE '''0''' END;
                END IF;
            END LOOP;
            q := pg_catalog.format('SELECT ARRAY[%s] FROM %s AS s%s', pg_catalog.array_to_string(sel, ', '),
                                   tm.source, coalesce(' WHERE (' || tm.filter || ')', ''));
            BEGIN
                EXECUTE q INTO res;
                EXIT attempt;
            EXCEPTION WHEN OTHERS THEN
                IF NOT with_casts THEN
                    RAISE EXCEPTION 'profiling table % of migration plan "%" failed: %', tm.target, pl.plan_name, SQLERRM
                        USING ERRCODE = SQLSTATE,
                              HINT = 'Check the mappings with migrate_check().';
                END IF;
                note := 'cast failures not counted: ' || SQLERRM;
                with_casts := false;
            END;
        END LOOP;

        total := res[1]::bigint;
        RETURN QUERY
        INSERT INTO migrate.profile_result AS p
            (plan, target, source, source_column, source_type, target_column, target_type, expr,
             rows, nulls, distinct_values, min_value, max_value, min_length, max_length,
             cast_failures, not_null_violations, note)
        SELECT pl.plan_name, tm.target, tm.source, c.source_column, c.source_type, c.target_column,
               c.target_type, c.expr, total,
               res[c.first_measure]::bigint, res[c.first_measure + 1]::bigint,
               res[c.first_measure + 2], res[c.first_measure + 3],
               res[c.first_measure + 4]::integer, res[c.first_measure + 5]::integer,
               res[c.cast_measure]::bigint, res[c.cast_measure + 1]::bigint,
               CASE WHEN c.target_column IS NOT NULL AND NOT with_casts THEN note END
          FROM migrate_profile_cols c
         ORDER BY c.ord, c.target_column
        RETURNING p.*;
    END LOOP;
END;
$$;


-- ==== end of assessment section ====
