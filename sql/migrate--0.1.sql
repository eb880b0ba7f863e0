/* migrate--0.1.sql: catalog and plan API of the migrate extension */

\echo Use "CREATE EXTENSION migrate" to load this file. \quit

CREATE SCHEMA migrate;

/*
 * Plans and mappings.  Kept by pg_dump (pg_extension_config_dump below), so a
 * dump of the target database carries the DBA's plans with it.
 */
CREATE TABLE migrate.plan (
    plan_name       text PRIMARY KEY CHECK (plan_name <> '' AND octet_length(plan_name) < 200),
    source_server   name,
    source_schema   name,
    target_schema   name NOT NULL DEFAULT 'public',
    options         jsonb NOT NULL DEFAULT '{}'
                    CHECK (jsonb_typeof(options) = 'object'),
    created_by      name NOT NULL DEFAULT current_user,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE migrate.table_map (
    plan        text NOT NULL REFERENCES migrate.plan ON UPDATE CASCADE ON DELETE CASCADE,
    target      regclass NOT NULL,
    source      text NOT NULL CHECK (source <> ''),    -- schema-qualified, quoted
    key         name[] NOT NULL CHECK (cardinality(key) > 0), -- target columns
    filter      text,                                  -- SQL over source columns
    mode        text NOT NULL DEFAULT 'insert'
                CHECK (mode IN ('insert', 'upsert', 'skip_existing')),
    watermark   name,
    PRIMARY KEY (plan, target)
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

/*
 * Runs and their results.  Written by the background worker, one committed
 * transaction per batch (rows, rejects and checkpoint together).
 */
CREATE TABLE migrate.run (
    run_id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    plan        text NOT NULL,
    mode        text NOT NULL DEFAULT 'full' CHECK (mode IN ('full')),
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
    PRIMARY KEY (run_id, target)
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

SELECT pg_catalog.pg_extension_config_dump('migrate.plan', '');
SELECT pg_catalog.pg_extension_config_dump('migrate.table_map', '');
SELECT pg_catalog.pg_extension_config_dump('migrate.column_map', '');
SELECT pg_catalog.pg_extension_config_dump('migrate.value_map', '');
SELECT pg_catalog.pg_extension_config_dump('migrate.rule', '');

GRANT USAGE ON SCHEMA migrate TO PUBLIC;
GRANT SELECT ON ALL TABLES IN SCHEMA migrate TO PUBLIC;

/* ---------------------------------------------------------------------
 * C entry points
 * --------------------------------------------------------------------- */

CREATE FUNCTION migrate_lookup(map text, value text)
RETURNS text
AS 'MODULE_PATHNAME', 'migrate_lookup'
LANGUAGE C STABLE STRICT PARALLEL SAFE;

CREATE FUNCTION migrate_lookup(map text, value anynonarray)
RETURNS text
AS 'MODULE_PATHNAME', 'migrate_lookup'
LANGUAGE C STABLE STRICT PARALLEL SAFE;

-- Refuses anything but one SQL expression; raises the parser's error otherwise.
CREATE FUNCTION migrate._check_expression(expr text, what text)
RETURNS void
AS 'MODULE_PATHNAME', 'migrate_check_expression'
LANGUAGE C STRICT;

CREATE FUNCTION migrate_run(plan text,
                            mode text DEFAULT 'full',
                            tables text[] DEFAULT NULL,
                            parallel integer DEFAULT NULL,
                            dry_run boolean DEFAULT false,
                            wait boolean DEFAULT true)
RETURNS bigint
AS 'MODULE_PATHNAME', 'migrate_run'
LANGUAGE C;

-- Called by the engine's batch statement for each row; see src/route.c.
CREATE FUNCTION migrate._pass()
RETURNS boolean
AS 'MODULE_PATHNAME', 'migrate_route_pass'
LANGUAGE C VOLATILE;

CREATE FUNCTION migrate._fail(rule_ok boolean[], source_key text, source_row jsonb)
RETURNS boolean
AS 'MODULE_PATHNAME', 'migrate_route_fail'
LANGUAGE C VOLATILE;

/* ---------------------------------------------------------------------
 * Plan API (thin SQL wrappers over the catalog)
 * --------------------------------------------------------------------- */

-- The plan row, or a clear error.
CREATE FUNCTION migrate._plan(p_plan text)
RETURNS migrate.plan
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r migrate.plan;
BEGIN
    SELECT * INTO r FROM migrate.plan WHERE plan_name = p_plan;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'migration plan "%" does not exist', p_plan
            USING ERRCODE = 'undefined_object',
                  HINT = 'Create it with migrate_plan().';
    END IF;
    RETURN r;
END;
$$;

-- Resolve a relation name; unqualified names are looked up in default_schema
-- first, then on the search_path.  NULL when it does not exist.
CREATE FUNCTION migrate._resolve(p_name text, p_default_schema name)
RETURNS regclass
LANGUAGE plpgsql STABLE
AS $$
DECLARE
    parts text[] := pg_catalog.parse_ident(p_name);
    rel regclass;
BEGIN
    IF pg_catalog.cardinality(parts) = 1 AND p_default_schema IS NOT NULL THEN
        rel := pg_catalog.to_regclass(pg_catalog.quote_ident(p_default_schema) || '.'
                                      || pg_catalog.quote_ident(parts[1]));
        IF rel IS NULL THEN
            rel := pg_catalog.to_regclass(pg_catalog.quote_ident(p_default_schema) || '.'
                                          || p_name);
        END IF;
        IF rel IS NOT NULL THEN
            RETURN rel;
        END IF;
    END IF;
    RETURN pg_catalog.to_regclass(p_name);
EXCEPTION WHEN invalid_name OR syntax_error THEN
    RETURN NULL;
END;
$$;

-- The mapping of one target table of a plan, or a clear error.
CREATE FUNCTION migrate._table_map(p_plan text, p_target text)
RETURNS migrate.table_map
LANGUAGE plpgsql STABLE
AS $$
DECLARE
    pl migrate.plan := migrate._plan(p_plan);
    rel regclass := migrate._resolve(p_target, pl.target_schema);
    r migrate.table_map;
BEGIN
    IF rel IS NULL THEN
        RAISE EXCEPTION 'target table "%" of migration plan "%" does not exist', p_target, p_plan
            USING ERRCODE = 'undefined_table';
    END IF;
    SELECT * INTO r FROM migrate.table_map WHERE plan = p_plan AND target = rel;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'table % is not mapped in migration plan "%"', rel, p_plan
            USING ERRCODE = 'undefined_object',
                  HINT = 'Map it first with migrate_table().';
    END IF;
    RETURN r;
END;
$$;

-- The attribute number of a target column, matching exactly or, failing
-- that, case-insensitively; a clear error when there is none.
CREATE FUNCTION migrate._column(p_rel regclass, p_column text, p_plan text)
RETURNS name
LANGUAGE plpgsql STABLE
AS $$
DECLARE
    col name;
BEGIN
    SELECT attname INTO col FROM pg_catalog.pg_attribute
     WHERE attrelid = p_rel AND attnum > 0 AND NOT attisdropped AND attname = p_column;
    IF NOT FOUND THEN
        SELECT attname INTO col FROM pg_catalog.pg_attribute
         WHERE attrelid = p_rel AND attnum > 0 AND NOT attisdropped
           AND lower(attname) = lower(p_column);
    END IF;
    IF col IS NULL THEN
        RAISE EXCEPTION 'column "%" of table % does not exist (migration plan "%")',
                        p_column, p_rel, p_plan
            USING ERRCODE = 'undefined_column';
    END IF;
    RETURN col;
END;
$$;

-- The mapped expression of each target column, as the engine will build it:
-- explicit mapping, else the same-named source column; columns with neither
-- are left out (the target's default applies).  type_name is the type the
-- engine casts the expression to (without typmod: the INSERT applies it with
-- assignment semantics), NULL where the source column already has exactly
-- the target's type and typmod and needs no conversion at all.
CREATE FUNCTION migrate._mapped_columns(p_plan text, p_target regclass)
RETURNS TABLE (column_name name, expr text, type_name text, attnum smallint)
LANGUAGE sql STABLE
AS $$
    SELECT a.attname,
           coalesce(cm.expr, 's.' || pg_catalog.quote_ident(sa.attname)),
           CASE WHEN cm.expr IS NULL AND sa.atttypid = a.atttypid AND sa.atttypmod = a.atttypmod
                THEN NULL
                -- char and bit without a length mean length 1: carry them as
                -- text and varbit, the INSERT checks the length
                WHEN a.atttypid = 'pg_catalog.bpchar'::pg_catalog.regtype THEN 'text'
                WHEN a.atttypid = 'pg_catalog.bit'::pg_catalog.regtype THEN 'bit varying'
                ELSE pg_catalog.format_type(a.atttypid, NULL) END,
           a.attnum
      FROM migrate.table_map tm
      JOIN pg_catalog.pg_attribute a
        ON a.attrelid = tm.target AND a.attnum > 0 AND NOT a.attisdropped
       AND a.attgenerated = ''
      LEFT JOIN migrate.column_map cm
        ON cm.plan = tm.plan AND cm.target = tm.target AND cm.column_name = a.attname
      LEFT JOIN pg_catalog.pg_attribute sa
        ON sa.attrelid = pg_catalog.to_regclass(tm.source) AND sa.attname = a.attname
       AND sa.attnum > 0 AND NOT sa.attisdropped
     WHERE tm.plan = p_plan AND tm.target = p_target
       AND (cm.expr IS NOT NULL OR sa.attname IS NOT NULL)
     ORDER BY a.attnum
$$;

-- Parse and type-check a mapping: the INSERT ... SELECT the engine would run,
-- planned but not executed (no row is read from the source).  p_column:
-- check only that column (and not the filter).
CREATE FUNCTION migrate._check_mapping(p_plan text, p_target regclass, p_column name DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql
AS $$
DECLARE
    tm migrate.table_map;
    r record;
BEGIN
    SELECT * INTO tm FROM migrate.table_map WHERE plan = p_plan AND target = p_target;
    IF p_column IS NULL THEN
        FOR r IN SELECT k FROM unnest(tm.key) k
                  WHERE k NOT IN (SELECT m.column_name FROM migrate._mapped_columns(p_plan, p_target) m) LOOP
            RAISE EXCEPTION 'key column "%" of table % in migration plan "%" is not mapped',
                            r.k, p_target, p_plan
                USING ERRCODE = 'undefined_column',
                      HINT = 'Map it with migrate_column(); batches are cut on the source side of the key.';
        END LOOP;
    END IF;
    IF p_column IS NULL THEN
        FOR r IN SELECT rule_name, check_expr FROM migrate.rule
                  WHERE plan = p_plan AND target = p_target ORDER BY rule_name LOOP
            PERFORM migrate._check_rule(p_plan, p_target, r.rule_name, r.check_expr);
        END LOOP;
    END IF;
    FOR r IN SELECT * FROM migrate._mapped_columns(p_plan, p_target) m
              WHERE p_column IS NULL OR m.column_name = p_column LOOP
        BEGIN
            EXECUTE pg_catalog.format('EXPLAIN (COSTS OFF) INSERT INTO %s (%I) SELECT %s FROM %s AS s',
                                      p_target, r.column_name, r.expr, tm.source);
        EXCEPTION WHEN OTHERS THEN
            RAISE EXCEPTION 'mapping of column "%" of table % in migration plan "%" is invalid: %',
                            r.column_name, p_target, p_plan, SQLERRM
                USING ERRCODE = SQLSTATE,
                      DETAIL = pg_catalog.format('Expression: %s', r.expr),
                      HINT = 'Map it with migrate_column(); expressions are SQL over the source row (alias s) and must be assignable to the target column.';
        END;
    END LOOP;
    IF tm.filter IS NOT NULL AND p_column IS NULL THEN
        BEGIN
            EXECUTE pg_catalog.format('EXPLAIN (COSTS OFF) SELECT 1 FROM %s AS s WHERE (%s)',
                                      tm.source, tm.filter);
        EXCEPTION WHEN OTHERS THEN
            RAISE EXCEPTION 'filter of table % in migration plan "%" is invalid: %',
                            p_target, p_plan, SQLERRM
                USING ERRCODE = SQLSTATE,
                      DETAIL = pg_catalog.format('Filter: %s', tm.filter),
                      HINT = 'The filter is a boolean SQL expression over the source row, pushed down to the source.';
        END;
    END IF;
END;
$$;

-- A rule must be a boolean expression over the mapped row (target column
-- names and types), exactly as the engine evaluates it.
CREATE FUNCTION migrate._check_rule(p_plan text, p_target regclass, p_name text, p_expr text)
RETURNS void
LANGUAGE plpgsql
AS $$
DECLARE
    tm migrate.table_map;
    cols text;
BEGIN
    SELECT * INTO tm FROM migrate.table_map WHERE plan = p_plan AND target = p_target;
    SELECT string_agg(CASE WHEN m.type_name IS NULL THEN m.expr
                           ELSE '(' || m.expr || ')::' || m.type_name END
                      || ' AS ' || pg_catalog.quote_ident(m.column_name), ', ' ORDER BY m.attnum)
      INTO cols FROM migrate._mapped_columns(p_plan, p_target) m;
    BEGIN
        PERFORM migrate._check_expression(p_expr, 'rule');
        EXECUTE pg_catalog.format('EXPLAIN (COSTS OFF) SELECT 1 FROM (SELECT %s FROM %s AS s) m WHERE CASE WHEN (%s) THEN true END',
                                  coalesce(cols, '1 AS __none'), tm.source, p_expr);
    EXCEPTION WHEN OTHERS THEN
        RAISE EXCEPTION 'rule "%" of table % in migration plan "%" is invalid: %',
                        p_name, p_target, p_plan, SQLERRM
            USING ERRCODE = SQLSTATE,
                  DETAIL = pg_catalog.format('Rule: %s', p_expr),
                  HINT = 'A rule is a boolean SQL expression over the mapped row, by target column names; unmapped target columns are not part of it.';
    END;
END;
$$;

-- Check every table of a plan (or the given ones); migrate_run() calls it
-- before it starts a worker.
CREATE FUNCTION migrate._check_plan(p_plan text, p_targets oid[] DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql
AS $$
DECLARE
    t regclass;
BEGIN
    FOR t IN SELECT target FROM migrate.table_map
              WHERE plan = p_plan AND (p_targets IS NULL OR target::oid = ANY (p_targets))
              ORDER BY target::text LOOP
        PERFORM migrate._check_mapping(p_plan, t);
    END LOOP;
END;
$$;

CREATE FUNCTION migrate_plan(name text,
                             source_server name DEFAULT NULL,
                             source_schema name DEFAULT NULL,
                             target_schema name DEFAULT 'public',
                             options jsonb DEFAULT '{}')
RETURNS text
LANGUAGE plpgsql
AS $$
BEGIN
    IF name IS NULL OR name = '' THEN
        RAISE EXCEPTION 'migration plan name must not be empty'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF source_server IS NOT NULL AND NOT EXISTS
        (SELECT 1 FROM pg_catalog.pg_foreign_server WHERE srvname = source_server) THEN
        RAISE EXCEPTION 'foreign server "%" of migration plan "%" does not exist', source_server, name
            USING ERRCODE = 'undefined_object',
                  HINT = 'Create it with CREATE SERVER ... FOREIGN DATA WRAPPER.';
    END IF;
    IF source_schema IS NOT NULL AND NOT EXISTS
        (SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = source_schema) THEN
        IF source_server IS NULL THEN
            RAISE EXCEPTION 'source schema "%" of migration plan "%" does not exist', source_schema, name
                USING ERRCODE = 'invalid_schema_name',
                      HINT = 'Create it and IMPORT FOREIGN SCHEMA into it, or pass source_server so that migrate_plan() imports it.';
        END IF;
        -- Import the remote schema of the same name (or options->>'remote_schema').
        EXECUTE pg_catalog.format('CREATE SCHEMA %I', source_schema);
        EXECUTE pg_catalog.format('IMPORT FOREIGN SCHEMA %I FROM SERVER %I INTO %I',
                                  coalesce(options->>'remote_schema', source_schema),
                                  source_server, source_schema);
    END IF;
    IF target_schema IS NULL OR NOT EXISTS
        (SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = target_schema) THEN
        RAISE EXCEPTION 'target schema "%" of migration plan "%" does not exist', target_schema, name
            USING ERRCODE = 'invalid_schema_name';
    END IF;
    IF options IS NULL OR pg_catalog.jsonb_typeof(options) <> 'object' THEN
        RAISE EXCEPTION 'options of migration plan "%" must be a JSON object', name
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    INSERT INTO migrate.plan AS p (plan_name, source_server, source_schema, target_schema, options)
    VALUES (migrate_plan.name, migrate_plan.source_server, migrate_plan.source_schema,
            migrate_plan.target_schema, migrate_plan.options)
    ON CONFLICT (plan_name) DO UPDATE
       SET source_server = EXCLUDED.source_server,
           source_schema = EXCLUDED.source_schema,
           target_schema = EXCLUDED.target_schema,
           options = EXCLUDED.options,
           updated_at = now();
    INSERT INTO migrate.event (plan, event, details)
    VALUES (migrate_plan.name, 'plan defined', migrate_plan.options::text);
    RETURN migrate_plan.name;
END;
$$;

CREATE FUNCTION migrate_table(plan text,
                              source text,
                              target text,
                              key text DEFAULT NULL,
                              filter text DEFAULT NULL,
                              mode text DEFAULT 'insert',
                              watermark text DEFAULT NULL)
RETURNS regclass
LANGUAGE plpgsql
AS $$
DECLARE
    pl migrate.plan := migrate._plan(plan);
    src regclass := migrate._resolve(source, pl.source_schema);
    tgt regclass := migrate._resolve(target, pl.target_schema);
    keycols name[];
    k text;
    wm name;
BEGIN
    IF src IS NULL THEN
        RAISE EXCEPTION 'source relation "%" of migration plan "%" does not exist', source, plan
            USING ERRCODE = 'undefined_table',
                  HINT = CASE WHEN pl.source_schema IS NULL
                         THEN 'Create a foreign table for it (IMPORT FOREIGN SCHEMA) or schema-qualify the name.'
                         ELSE pg_catalog.format('Looked in schema "%s" and on the search_path.', pl.source_schema) END;
    END IF;
    IF tgt IS NULL THEN
        RAISE EXCEPTION 'target table "%" of migration plan "%" does not exist', target, plan
            USING ERRCODE = 'undefined_table',
                  HINT = pg_catalog.format('Create it first; unqualified names are looked up in schema "%s".', pl.target_schema);
    END IF;
    IF (SELECT relkind FROM pg_catalog.pg_class WHERE oid = tgt) NOT IN ('r', 'p') THEN
        RAISE EXCEPTION 'target % of migration plan "%" is not a table', tgt, plan
            USING ERRCODE = 'wrong_object_type';
    END IF;
    IF mode IS NULL OR mode NOT IN ('insert', 'upsert', 'skip_existing') THEN
        RAISE EXCEPTION 'invalid mode "%" for table % in migration plan "%"', mode, tgt, plan
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Use insert, upsert or skip_existing.';
    END IF;

    IF key IS NULL THEN
        SELECT array_agg(a.attname ORDER BY k.ord) INTO keycols
          FROM pg_catalog.pg_index i
          CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
          JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
         WHERE i.indrelid = tgt AND i.indisprimary;
        IF keycols IS NULL THEN
            RAISE EXCEPTION 'target table % of migration plan "%" has no primary key', tgt, plan
                USING ERRCODE = 'invalid_table_definition',
                      HINT = 'Pass key => ''column[, column...]'' naming unique, not-null target columns; batches are cut on the key.';
        END IF;
    ELSE
        FOREACH k IN ARRAY pg_catalog.string_to_array(key, ',') LOOP
            keycols := keycols || migrate._column(tgt, pg_catalog.btrim(k), plan);
        END LOOP;
    END IF;

    IF mode IN ('upsert', 'skip_existing') AND NOT EXISTS (
        SELECT 1 FROM pg_catalog.pg_index i
         WHERE i.indrelid = tgt AND i.indisunique AND i.indpred IS NULL
           AND i.indexprs IS NULL
           AND (SELECT array_agg(a.attname ORDER BY a.attname)
                  FROM pg_catalog.pg_attribute a
                 WHERE a.attrelid = tgt AND a.attnum = ANY (i.indkey))
               = (SELECT array_agg(c ORDER BY c) FROM unnest(keycols) c)) THEN
        RAISE EXCEPTION 'mode % of table % in migration plan "%" needs a unique index on its key (%)',
                        mode, tgt, plan, pg_catalog.array_to_string(keycols, ', ')
            USING ERRCODE = 'invalid_table_definition',
                  HINT = 'Create a unique index or primary key on the key columns, or use mode insert.';
    END IF;

    IF watermark IS NOT NULL THEN
        wm := migrate._column(src, watermark, plan);
    END IF;

    INSERT INTO migrate.table_map AS t (plan, target, source, key, filter, mode, watermark)
    VALUES (migrate_table.plan, tgt,
            pg_catalog.format('%I.%I', (SELECT nspname FROM pg_catalog.pg_namespace n
                                          JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid
                                         WHERE c.oid = src),
                              (SELECT relname FROM pg_catalog.pg_class WHERE oid = src)),
            keycols, migrate_table.filter, migrate_table.mode, wm)
    ON CONFLICT ON CONSTRAINT table_map_pkey DO UPDATE
       SET source = EXCLUDED.source, key = EXCLUDED.key, filter = EXCLUDED.filter,
           mode = EXCLUDED.mode, watermark = EXCLUDED.watermark;

    -- Every key column must be mapped (batches are cut on its source side);
    -- a renamed key is mapped next with migrate_column(), so only say so.
    FOREACH k IN ARRAY keycols LOOP
        IF NOT EXISTS (SELECT 1 FROM migrate._mapped_columns(plan, tgt) m WHERE m.column_name = k) THEN
            RAISE NOTICE 'key column "%" of table % has no same-named source column in migration plan "%"',
                         k, tgt, plan
                USING HINT = 'Map it with migrate_column() before running the plan.';
        END IF;
    END LOOP;
    IF migrate_table.filter IS NOT NULL THEN
        BEGIN
            PERFORM migrate._check_expression(migrate_table.filter, 'filter');
        EXCEPTION WHEN OTHERS THEN
            RAISE EXCEPTION 'filter of table % in migration plan "%" is invalid: %', tgt, plan, SQLERRM
                USING ERRCODE = SQLSTATE,
                      DETAIL = pg_catalog.format('Filter: %s', migrate_table.filter);
        END;
    END IF;
    -- Same-named columns whose types do not assign are the DBA's next
    -- migrate_column() calls: say so now, refuse at migrate_run().
    FOR k IN SELECT m.column_name FROM migrate._mapped_columns(plan, tgt) m LOOP
        BEGIN
            PERFORM migrate._check_mapping(plan, tgt, k);
        EXCEPTION WHEN OTHERS THEN
            RAISE NOTICE '%', SQLERRM
                USING HINT = 'Map the column with migrate_column() before running the plan.';
        END;
    END LOOP;
    IF migrate_table.filter IS NOT NULL THEN
        BEGIN
            EXECUTE pg_catalog.format('EXPLAIN (COSTS OFF) SELECT 1 FROM %s AS s WHERE (%s)',
                                      src, migrate_table.filter);
        EXCEPTION WHEN OTHERS THEN
            RAISE EXCEPTION 'filter of table % in migration plan "%" is invalid: %', tgt, plan, SQLERRM
                USING ERRCODE = SQLSTATE,
                      DETAIL = pg_catalog.format('Filter: %s', migrate_table.filter),
                      HINT = 'The filter is a boolean SQL expression over the source row, pushed down to the source.';
        END;
    END IF;
    RETURN tgt;
END;
$$;

CREATE FUNCTION migrate_column(plan text, target text, "column" text, expr text)
RETURNS void
LANGUAGE plpgsql
AS $$
DECLARE
    tm migrate.table_map := migrate._table_map(plan, target);
    col name := migrate._column(tm.target, "column", plan);
BEGIN
    IF expr IS NULL THEN
        DELETE FROM migrate.column_map c
         WHERE c.plan = tm.plan AND c.target = tm.target AND c.column_name = col;
        RETURN;
    END IF;
    BEGIN
        PERFORM migrate._check_expression(expr, 'expression');
    EXCEPTION WHEN OTHERS THEN
        RAISE EXCEPTION 'mapping of column "%" of table % in migration plan "%" is invalid: %',
                        col, tm.target, plan, SQLERRM
            USING ERRCODE = SQLSTATE, DETAIL = pg_catalog.format('Expression: %s', expr);
    END;
    INSERT INTO migrate.column_map AS c (plan, target, column_name, expr)
    VALUES (tm.plan, tm.target, col, migrate_column.expr)
    ON CONFLICT ON CONSTRAINT column_map_pkey DO UPDATE SET expr = EXCLUDED.expr;
    PERFORM migrate._check_mapping(tm.plan, tm.target, col);
END;
$$;

CREATE FUNCTION migrate_value_map(map text, from_value text, to_value text)
RETURNS void
LANGUAGE plpgsql
AS $$
#variable_conflict use_column
BEGIN
    IF map IS NULL OR map = '' OR from_value IS NULL THEN
        RAISE EXCEPTION 'value map name and from_value must not be null'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    INSERT INTO migrate.value_map AS v (map_name, from_value, to_value)
    VALUES (map, from_value, to_value)
    ON CONFLICT (map_name, from_value) DO UPDATE SET to_value = EXCLUDED.to_value;
END;
$$;

CREATE FUNCTION migrate_rule(plan text, target text, name text, check_expr text,
                             on_fail text DEFAULT 'reject')
RETURNS void
LANGUAGE plpgsql
AS $$
DECLARE
    tm migrate.table_map := migrate._table_map(plan, target);
BEGIN
    IF name IS NULL OR name = '' THEN
        RAISE EXCEPTION 'rule name must not be empty' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF on_fail IS NULL OR on_fail NOT IN ('reject', 'warn', 'abort') THEN
        RAISE EXCEPTION 'invalid on_fail "%" for rule "%" of table % in migration plan "%"',
                        on_fail, name, tm.target, plan
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Use reject, warn or abort.';
    END IF;
    IF check_expr IS NULL THEN
        DELETE FROM migrate.rule r
         WHERE r.plan = tm.plan AND r.target = tm.target AND r.rule_name = name;
        RETURN;
    END IF;
    PERFORM migrate._check_rule(tm.plan, tm.target, name, check_expr);
    INSERT INTO migrate.rule AS r (plan, target, rule_name, check_expr, on_fail)
    VALUES (tm.plan, tm.target, name, check_expr, on_fail)
    ON CONFLICT ON CONSTRAINT rule_pkey DO UPDATE
       SET check_expr = EXCLUDED.check_expr, on_fail = EXCLUDED.on_fail;
END;
$$;

/* ---------------------------------------------------------------------
 * Watching runs
 * --------------------------------------------------------------------- */

CREATE VIEW migrate.progress AS
SELECT rt.run_id, r.plan, rt.target, rt.state, rt.rows_read, rt.rows_written,
       rt.rows_rejected, rt.rows_skipped, rt.source_count, rt.batches, rt.last_key,
       round(rt.rows_read / nullif(extract(epoch FROM coalesce(rt.finished_at, clock_timestamp()) - rt.started_at), 0))::bigint
           AS rows_per_second,
       rt.started_at, rt.finished_at
  FROM migrate.run_table rt
  JOIN migrate.run r USING (run_id)
 WHERE r.state = 'running';

GRANT SELECT ON migrate.progress TO PUBLIC;

CREATE FUNCTION migrate_status(run bigint DEFAULT NULL)
RETURNS TABLE (run_id bigint, plan text, run_state text, target regclass, table_state text,
               rows_read bigint, rows_written bigint, rows_rejected bigint, rows_skipped bigint,
               last_key text, started_at timestamptz, finished_at timestamptz, error text)
LANGUAGE sql STABLE
AS $$
    SELECT r.run_id, r.plan, r.state, rt.target, rt.state,
           rt.rows_read, rt.rows_written, rt.rows_rejected, rt.rows_skipped,
           rt.last_key, rt.started_at, rt.finished_at, coalesce(rt.error, r.error)
      FROM migrate.run r
      LEFT JOIN migrate.run_table rt USING (run_id)
     WHERE r.run_id = coalesce($1, (SELECT max(run_id) FROM migrate.run))
     ORDER BY rt.load_order
$$;

-- Ask a running run to stop at its next batch boundary (state cancelled).
-- Returns false when the run is not running.
CREATE FUNCTION migrate_cancel(run bigint)
RETURNS boolean
LANGUAGE plpgsql
AS $$
DECLARE
    st text;
BEGIN
    SELECT r.state INTO st FROM migrate.run r WHERE r.run_id = $1;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'migration run % does not exist', $1
            USING ERRCODE = 'undefined_object';
    END IF;
    UPDATE migrate.run r SET cancel_requested = true WHERE r.run_id = $1 AND r.state = 'running';
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    INSERT INTO migrate.event (run_id, plan, event)
    SELECT r.run_id, r.plan, 'cancel requested' FROM migrate.run r WHERE r.run_id = $1;
    RETURN true;
END;
$$;

-- The INSERT ... SELECT the engine runs for each batch of a table ($1, $2:
-- the key range), so a DBA can EXPLAIN VERBOSE it and see what is pushed
-- down to the source.
CREATE FUNCTION migrate_batch_statement(plan text, target text)
RETURNS text
AS 'MODULE_PATHNAME', 'migrate_batch_statement'
LANGUAGE C STRICT;
