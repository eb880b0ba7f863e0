/*
 * plan.sql: the plan API: migrate_plan, migrate_table, migrate_column,
 * migrate_value_map, migrate_sensitive, migrate_rule, migrate_foreign_key,
 * migrate_lookup and the masking functions, and the helpers that resolve
 * names and check mappings, rules and filters without reading a row
 * (migrate._check_expression and the migrate._check_* functions).
 *
 * Current source of the SQL (how it is built: the top of sql/catalog.sql).
 * Every function and view here is written CREATE OR REPLACE and defined in
 * no other file of sql/; its grants and revokes follow it.  The install
 * script takes this file with CREATE OR REPLACE made CREATE; each upgrade
 * script replays it as it is, after the deltas of sql/updates/, so a
 * function is changed here only.  A function whose arguments or result
 * type change, or that is removed, also needs a DROP FUNCTION in
 * sql/updates/<current>--<next>.sql.  No CREATE TABLE here (catalog.sql).
 */

/*
 * Name resolution (issue 11, "Who may do what"): every function here pins
 * search_path to pg_catalog, pg_temp, so that nothing another role put on
 * the caller's search_path (a "lower(name)" or an "=" operator of its own)
 * runs inside them.  Only two things use the caller's search_path, which
 * the public function reads once with migrate._caller_search_path(): the
 * relation names the caller passes (migrate._resolve_in), and the owner's
 * own SQL (expressions, filters, rules), which is planned but not run under
 * it (migrate._explain).  Relations are shown in messages as the caller
 * would write them (migrate._relname).
 */

-- migrate_lookup(map, value) reads the map as the current user (row-level
-- security: a run reads it as its plan's owner), see src/lookup.c; no
-- search_path is used (its one query is fully qualified), and a SET clause
-- would cost a GUC save and restore per row.
CREATE OR REPLACE FUNCTION migrate_lookup(map text, value text)
RETURNS text
AS 'MODULE_PATHNAME', 'migrate_lookup'
LANGUAGE C STABLE STRICT PARALLEL SAFE;

CREATE OR REPLACE FUNCTION migrate_lookup(map text, value anynonarray)
RETURNS text
AS 'MODULE_PATHNAME', 'migrate_lookup'
LANGUAGE C STABLE STRICT PARALLEL SAFE;

/*
 * Masking functions for mappings (src/mask.c), for sensitive columns:
 * migrate_column(plan, target, 'ssn', 'migrate_mask_partial(s.ssn, 0, 4)').
 * They resolve no names (C), so they need no pinned search_path.
 *   migrate_mask_hash(value, salt): hex SHA-256 of salt || value, the same
 *     for the same value and salt (joins still match), useless without the
 *     salt.
 *   migrate_mask_partial(value, keep_first, keep_last): characters other
 *     than the first keep_first and last keep_last made '*'; a value of at
 *     most keep_first + keep_last characters is masked entirely.
 *   migrate_mask_redact(value): '***', whatever the value.
 * NULL in, NULL out; the anynonarray forms take the value's text form.
 */
CREATE OR REPLACE FUNCTION migrate_mask_hash(value text, salt text)
RETURNS text
AS 'MODULE_PATHNAME', 'migrate_mask_hash'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE OR REPLACE FUNCTION migrate_mask_hash(value anynonarray, salt text)
RETURNS text
AS 'MODULE_PATHNAME', 'migrate_mask_hash'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE OR REPLACE FUNCTION migrate_mask_partial(value text, keep_first integer, keep_last integer)
RETURNS text
AS 'MODULE_PATHNAME', 'migrate_mask_partial'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE OR REPLACE FUNCTION migrate_mask_partial(value anynonarray, keep_first integer, keep_last integer)
RETURNS text
AS 'MODULE_PATHNAME', 'migrate_mask_partial'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE OR REPLACE FUNCTION migrate_mask_redact(value text)
RETURNS text
AS 'MODULE_PATHNAME', 'migrate_mask_redact'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE OR REPLACE FUNCTION migrate_mask_redact(value anynonarray)
RETURNS text
AS 'MODULE_PATHNAME', 'migrate_mask_redact'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

-- Refuses anything but one SQL expression; raises the parser's error
-- otherwise.  Raw parsing only: no name is looked up.
CREATE OR REPLACE FUNCTION migrate._check_expression(expr text, what text)
RETURNS void
AS 'MODULE_PATHNAME', 'migrate_check_expression'
LANGUAGE C STRICT
SET search_path = pg_catalog, pg_temp;

-- Plan (EXPLAIN, never execute) a statement of the owner's SQL under the
-- caller's search_path p_path.  The setting is local to this function (its
-- SET clause restores the pinned path at exit, and on error).  It runs
-- nothing the caller could not run itself, as the caller.
CREATE OR REPLACE FUNCTION migrate._explain(p_sql text, p_path text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM pg_catalog.set_config('search_path', coalesce(p_path, 'pg_catalog, pg_temp'), true);
    EXECUTE 'EXPLAIN (COSTS OFF) ' || p_sql;
END;
$$;

-- A relation as the caller would name it: unqualified when the caller's
-- search_path p_path finds it by its name (what messages show).
CREATE OR REPLACE FUNCTION migrate._relname(p_rel regclass, p_path text)
RETURNS text
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_rel IS NULL THEN
        RETURN NULL;
    END IF;
    PERFORM pg_catalog.set_config('search_path', coalesce(p_path, 'pg_catalog, pg_temp'), true);
    RETURN p_rel::pg_catalog.text;
END;
$$;

-- The plan row, or a clear error.
CREATE OR REPLACE FUNCTION migrate._plan(p_plan text)
RETURNS migrate.plan
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r migrate.plan;
BEGIN
    SELECT * INTO r FROM migrate.plan WHERE plan_name OPERATOR(pg_catalog.=) p_plan;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'migration plan "%" does not exist', p_plan
            USING ERRCODE = 'undefined_object',
                  HINT = 'Create it with migrate_plan().';
    END IF;
    RETURN r;
END;
$$;

-- Resolve a relation name the caller passed: unqualified names are looked
-- up in p_default_schema first, then on the caller's search_path p_path.
-- NULL when it does not exist.  Name lookup only: nothing of the caller's
-- search_path runs.
CREATE OR REPLACE FUNCTION migrate._resolve_in(p_name text, p_default_schema name, p_path text)
RETURNS regclass
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    parts text[] := pg_catalog.parse_ident(p_name);
    rel regclass;
BEGIN
    IF pg_catalog.cardinality(parts) OPERATOR(pg_catalog.=) 1 AND p_default_schema IS NOT NULL THEN
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
    PERFORM pg_catalog.set_config('search_path', coalesce(p_path, 'pg_catalog, pg_temp'), true);
    rel := pg_catalog.to_regclass(p_name);
    PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
    RETURN rel;
EXCEPTION WHEN invalid_name OR syntax_error THEN
    RETURN NULL;
END;
$$;

-- The same, on the search_path of the caller of migrate's public function.
CREATE OR REPLACE FUNCTION migrate._resolve(p_name text, p_default_schema name)
RETURNS regclass
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$ SELECT migrate._resolve_in(p_name, p_default_schema, migrate._caller_search_path()) $$;

-- The mapping of one target table of a plan, or a clear error.
CREATE OR REPLACE FUNCTION migrate._table_map(p_plan text, p_target text)
RETURNS migrate.table_map
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
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
    SELECT * INTO r FROM migrate.table_map t
     WHERE t.plan OPERATOR(pg_catalog.=) p_plan AND t.target OPERATOR(pg_catalog.=) rel;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'table % is not mapped in migration plan "%"',
                        migrate._relname(rel, migrate._caller_search_path()), p_plan
            USING ERRCODE = 'undefined_object',
                  HINT = 'Map it first with migrate_table().';
    END IF;
    RETURN r;
END;
$$;

-- The attribute number of a target column, matching exactly or, failing
-- that, case-insensitively; a clear error when there is none.
CREATE OR REPLACE FUNCTION migrate._column(p_rel regclass, p_column text, p_plan text)
RETURNS name
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    col name;
BEGIN
    SELECT a.attname INTO col FROM pg_catalog.pg_attribute a
     WHERE a.attrelid OPERATOR(pg_catalog.=) p_rel AND a.attnum > 0 AND NOT a.attisdropped
       AND a.attname OPERATOR(pg_catalog.=) p_column;
    IF NOT FOUND THEN
        SELECT a.attname INTO col FROM pg_catalog.pg_attribute a
         WHERE a.attrelid OPERATOR(pg_catalog.=) p_rel AND a.attnum > 0 AND NOT a.attisdropped
           AND pg_catalog.lower(a.attname::pg_catalog.text) OPERATOR(pg_catalog.=) pg_catalog.lower(p_column);
    END IF;
    IF col IS NULL THEN
        RAISE EXCEPTION 'column "%" of table % does not exist (migration plan "%")',
                        p_column, migrate._relname(p_rel, migrate._caller_search_path()), p_plan
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
-- the target's type and typmod and needs no conversion at all.  type_name
-- is schema-qualified where the type is not in pg_catalog, so that it means
-- the same on any search_path.
CREATE OR REPLACE FUNCTION migrate._mapped_columns(p_plan text, p_target regclass)
RETURNS TABLE (column_name name, expr text, type_name text, attnum smallint)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT a.attname,
           coalesce(cm.expr, 's.' || pg_catalog.quote_ident(sa.attname)),
           CASE WHEN cm.expr IS NULL AND sa.atttypid OPERATOR(pg_catalog.=) a.atttypid
                     AND sa.atttypmod OPERATOR(pg_catalog.=) a.atttypmod
                THEN NULL
                -- char and bit without a length mean length 1: carry them as
                -- text and varbit, the INSERT checks the length
                WHEN a.atttypid OPERATOR(pg_catalog.=) 'pg_catalog.bpchar'::pg_catalog.regtype THEN 'text'
                WHEN a.atttypid OPERATOR(pg_catalog.=) 'pg_catalog.bit'::pg_catalog.regtype THEN 'bit varying'
                ELSE pg_catalog.format_type(a.atttypid, NULL) END,
           a.attnum
      FROM migrate.table_map tm
      JOIN pg_catalog.pg_attribute a
        ON a.attrelid OPERATOR(pg_catalog.=) tm.target AND a.attnum > 0 AND NOT a.attisdropped
       AND a.attgenerated OPERATOR(pg_catalog.=) ''
      LEFT JOIN migrate.column_map cm
        ON cm.plan OPERATOR(pg_catalog.=) tm.plan AND cm.target OPERATOR(pg_catalog.=) tm.target
       AND cm.column_name OPERATOR(pg_catalog.=) a.attname
      LEFT JOIN pg_catalog.pg_attribute sa
        ON sa.attrelid OPERATOR(pg_catalog.=) pg_catalog.to_regclass(tm.source)
       AND sa.attname OPERATOR(pg_catalog.=) a.attname
       AND sa.attnum > 0 AND NOT sa.attisdropped
     WHERE tm.plan OPERATOR(pg_catalog.=) p_plan AND tm.target OPERATOR(pg_catalog.=) p_target
       AND (cm.expr IS NOT NULL OR sa.attname IS NOT NULL)
     ORDER BY a.attnum
$$;

-- The target columns of a table mapping whose values come from a sensitive
-- source column (migrate_sensitive): the column's mapping reads it, or it
-- is the same-named source column.  Their values are shown as '***'.
CREATE OR REPLACE FUNCTION migrate._sensitive_targets(p_plan text, p_target regclass)
RETURNS name[]
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce(pg_catalog.array_agg(m.column_name ORDER BY m.attnum), '{}')
      FROM migrate._mapped_columns(p_plan, p_target) m
     WHERE EXISTS (SELECT FROM migrate.sensitive_column sc
                    WHERE sc.plan OPERATOR(pg_catalog.=) p_plan
                      AND sc.target OPERATOR(pg_catalog.=) p_target
                      AND sc.source_column OPERATOR(pg_catalog.=) ANY (migrate._expr_columns(m.expr)))
$$;

-- Parse and type-check a mapping: the INSERT ... SELECT the engine would run,
-- planned but not executed (no row is read from the source), under the
-- caller's search_path (the owner's expressions mean what they mean there).
-- Each expression and the filter is checked again as one expression (the
-- rows may have been written directly, and migrate_run() relies on this
-- check before a worker pastes them into its SQL).
-- p_column: check only that column (and not the filter).
CREATE OR REPLACE FUNCTION migrate._check_mapping(p_plan text, p_target regclass, p_column name DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    path text := migrate._caller_search_path();
    tname text := migrate._relname(p_target, path);
    tm migrate.table_map;
    r record;
BEGIN
    SELECT * INTO tm FROM migrate.table_map t
     WHERE t.plan OPERATOR(pg_catalog.=) p_plan AND t.target OPERATOR(pg_catalog.=) p_target;
    IF p_column IS NULL THEN
        FOR r IN SELECT k FROM pg_catalog.unnest(tm.key) k
                  WHERE k OPERATOR(pg_catalog.<>) ALL (SELECT m.column_name FROM migrate._mapped_columns(p_plan, p_target) m) LOOP
            RAISE EXCEPTION 'key column "%" of table % in migration plan "%" is not mapped',
                            r.k, tname, p_plan
                USING ERRCODE = 'undefined_column',
                      HINT = 'Map it with migrate_column(); batches are cut on the source side of the key.';
        END LOOP;
    END IF;
    IF p_column IS NULL THEN
        FOR r IN SELECT u.rule_name, u.check_expr FROM migrate.rule u
                  WHERE u.plan OPERATOR(pg_catalog.=) p_plan AND u.target OPERATOR(pg_catalog.=) p_target
                  ORDER BY u.rule_name LOOP
            PERFORM migrate._check_rule(p_plan, p_target, r.rule_name, r.check_expr);
        END LOOP;
    END IF;
    FOR r IN SELECT * FROM migrate._mapped_columns(p_plan, p_target) m
              WHERE p_column IS NULL OR m.column_name OPERATOR(pg_catalog.=) p_column LOOP
        BEGIN
            PERFORM migrate._check_expression(r.expr, 'expression');
            -- a file's fields are text: cast as the engine does, (expr)::type
            PERFORM migrate._explain(pg_catalog.format('INSERT INTO %s (%I) SELECT %s FROM %s AS s',
                                                       p_target, r.column_name,
                                                       CASE WHEN tm.options ? 'file' AND r.type_name IS NOT NULL
                                                            THEN pg_catalog.format('(%s)::%s', r.expr, r.type_name)
                                                            ELSE r.expr END,
                                                       tm.source), path);
        EXCEPTION WHEN OTHERS THEN
            RAISE EXCEPTION 'mapping of column "%" of table % in migration plan "%" is invalid: %',
                            r.column_name, tname, p_plan, SQLERRM
                USING ERRCODE = SQLSTATE,
                      DETAIL = pg_catalog.format('Expression: %s', r.expr),
                      HINT = 'Map it with migrate_column(); expressions are SQL over the source row (alias s) and must be assignable to the target column.';
        END;
    END LOOP;
    IF tm.filter IS NOT NULL AND p_column IS NULL THEN
        BEGIN
            PERFORM migrate._check_expression(tm.filter, 'filter');
            PERFORM migrate._explain(pg_catalog.format('SELECT 1 FROM %s AS s WHERE (%s)',
                                                       tm.source, tm.filter), path);
        EXCEPTION WHEN OTHERS THEN
            RAISE EXCEPTION 'filter of table % in migration plan "%" is invalid: %',
                            tname, p_plan, SQLERRM
                USING ERRCODE = SQLSTATE,
                      DETAIL = pg_catalog.format('Filter: %s', tm.filter),
                      HINT = 'The filter is a boolean SQL expression over the source row, pushed down to the source.';
        END;
    END IF;
END;
$$;

-- A rule must be a boolean expression over the mapped row (target column
-- names and types), exactly as the engine evaluates it; planned under the
-- caller's search_path like a mapping.
CREATE OR REPLACE FUNCTION migrate._check_rule(p_plan text, p_target regclass, p_name text, p_expr text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    path text := migrate._caller_search_path();
    tm migrate.table_map;
    cols text;
BEGIN
    SELECT * INTO tm FROM migrate.table_map t
     WHERE t.plan OPERATOR(pg_catalog.=) p_plan AND t.target OPERATOR(pg_catalog.=) p_target;
    SELECT pg_catalog.string_agg(CASE WHEN m.type_name IS NULL THEN m.expr
                                      ELSE '(' || m.expr || ')::' || m.type_name END
                                 || ' AS ' || pg_catalog.quote_ident(m.column_name), ', ' ORDER BY m.attnum)
      INTO cols FROM migrate._mapped_columns(p_plan, p_target) m;
    BEGIN
        PERFORM migrate._check_expression(p_expr, 'rule');
        PERFORM migrate._explain(pg_catalog.format('SELECT 1 FROM (SELECT %s FROM %s AS s) m WHERE CASE WHEN (%s) THEN true END',
                                                   coalesce(cols, '1 AS __none'), tm.source, p_expr), path);
    EXCEPTION WHEN OTHERS THEN
        RAISE EXCEPTION 'rule "%" of table % in migration plan "%" is invalid: %',
                        p_name, migrate._relname(p_target, path), p_plan, SQLERRM
            USING ERRCODE = SQLSTATE,
                  DETAIL = pg_catalog.format('Rule: %s', p_expr),
                  HINT = 'A rule is a boolean SQL expression over the mapped row, by target column names; unmapped target columns are not part of it.';
    END;
END;
$$;

-- A plan's settings (0.12; options->'settings', an object of configuration
-- parameters and values its runs' workers, verify and diff set before
-- evaluating its expressions): validated as the caller could set them,
-- nothing set (src/owner.c).
CREATE OR REPLACE FUNCTION migrate._check_settings(p_settings jsonb)
RETURNS void
AS 'MODULE_PATHNAME', 'migrate_check_settings'
LANGUAGE C STRICT VOLATILE
SET search_path = pg_catalog, pg_temp;

-- Reject limits (issue 12): the options reject_warn and reject_limit of a
-- plan's or a table's options, checked.  Each is a fraction of a table's
-- rows read: a number from 0 to 1; reject_limit may also be JSON null (no
-- limit).  Raises 22023 naming what (the plan or the table) otherwise.
CREATE OR REPLACE FUNCTION migrate._check_reject_options(p_options jsonb, p_what text)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    k text;
    v jsonb;
BEGIN
    FOREACH k IN ARRAY ARRAY['reject_warn', 'reject_limit'] LOOP
        CONTINUE WHEN p_options IS NULL OR NOT p_options OPERATOR(pg_catalog.?) k;
        v := p_options OPERATOR(pg_catalog.->) k;
        IF k OPERATOR(pg_catalog.=) 'reject_limit'
           AND pg_catalog.jsonb_typeof(v) OPERATOR(pg_catalog.=) 'null' THEN
            CONTINUE;
        END IF;
        IF pg_catalog.jsonb_typeof(v) OPERATOR(pg_catalog.<>) 'number'
           OR v::pg_catalog.numeric OPERATOR(pg_catalog.<) 0
           OR v::pg_catalog.numeric OPERATOR(pg_catalog.>) 1 THEN
            RAISE EXCEPTION 'option % of % must be a number from 0 to 1%, not %', k, p_what,
                            CASE WHEN k OPERATOR(pg_catalog.=) 'reject_limit' THEN ' or null' ELSE '' END,
                            v::pg_catalog.text
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = 'It is a fraction of a table''s rows read: 0.05 means 5 %. '
                             '"reject_limit": null never fails a table for its rejects.';
        END IF;
    END LOOP;
END;
$$;

-- The reject limits a table of a plan runs with: the table's options
-- (migrate.table_map.options) where they name one, else the plan's, else
-- the defaults reject_warn 0.01 and reject_limit 0.10.  reject_limit NULL:
-- no limit.  Both checked (22023 naming the plan or the table).  Read when
-- the table's load is complete, so a changed limit counts for a resume.
CREATE OR REPLACE FUNCTION migrate._reject_limits(p_plan text, p_target regclass,
                                                  OUT reject_warn numeric, OUT reject_limit numeric)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    po jsonb;
    tbl jsonb;
    o jsonb;
BEGIN
    SELECT p.options INTO po FROM migrate.plan p WHERE p.plan_name OPERATOR(pg_catalog.=) p_plan;
    SELECT t.options INTO tbl FROM migrate.table_map t
     WHERE t.plan OPERATOR(pg_catalog.=) p_plan AND t.target OPERATOR(pg_catalog.=) p_target;
    PERFORM migrate._check_reject_options(po, pg_catalog.format('migration plan "%s"', p_plan));
    PERFORM migrate._check_reject_options(tbl, pg_catalog.format('table %s in migration plan "%s"',
                                                                 migrate._relname(p_target, migrate._caller_search_path()),
                                                                 p_plan));
    o := '{"reject_warn": 0.01, "reject_limit": 0.10}'::jsonb
         OPERATOR(pg_catalog.||) coalesce(po, '{}')
         OPERATOR(pg_catalog.||) coalesce(tbl, '{}');
    reject_warn := (o OPERATOR(pg_catalog.->>) 'reject_warn')::pg_catalog.numeric;
    reject_limit := (o OPERATOR(pg_catalog.->>) 'reject_limit')::pg_catalog.numeric;
END;
$$;

-- Check every table of a plan (or the given ones); migrate_run() calls it
-- before it starts a worker.
CREATE OR REPLACE FUNCTION migrate._check_plan(p_plan text, p_targets oid[] DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    t regclass;
    src regclass;
    l record;
BEGIN
    FOR t, src IN SELECT m.target, pg_catalog.to_regclass(m.source) FROM migrate.table_map m
              WHERE m.plan OPERATOR(pg_catalog.=) p_plan
                AND (p_targets IS NULL OR m.target::oid OPERATOR(pg_catalog.=) ANY (p_targets))
              ORDER BY m.target::pg_catalog.text LOOP
        PERFORM migrate._check_mapping(p_plan, t);
        PERFORM migrate._reject_limits(p_plan, t);
        -- a mysql_fdw scan ends, without an error, at a bytea value it
        -- cannot read (migrate._mysql_long_values): the rows after it
        -- would be lost unseen, so the run does not start
        FOR l IN SELECT * FROM migrate._mysql_long_values(src) LOOP
            RAISE EXCEPTION 'table % of migration plan "%" cannot be read whole: column "%" of source % holds % values longer than 8192 bytes, which mysql_fdw cannot read',
                            migrate._relname(t, migrate._caller_search_path()), p_plan, l.column_name, src, l.long_values
                USING ERRCODE = 'string_data_right_truncation',
                      DETAIL = 'mysql_fdw 2.8 reads a bytea value into 8192 bytes whatever max_blob_size says, and ends the scan at a longer one without an error.',
                      HINT = 'Let migrate_plan(..., source_server => ...) declare the foreign table without the column, and migrate_automap() map it to migrate._mysql_value() (docs/runbook.md).';
        END LOOP;
    END LOOP;
END;
$$;

/*
 * migrate_plan(name, ...): create or update a plan.  A new plan belongs to
 * the role that creates it (migrate.plan.owner); a run of it executes as
 * that owner, and only members of the owner see or change it and its
 * mappings (row-level security).  Defining it again (as a member of the
 * owner) updates it and keeps its owner; a name that belongs to another
 * role is refused (42501).  To hand a plan over, a member of both roles
 * runs UPDATE migrate.plan SET owner = 'new_role' WHERE plan_name = ...
 * (row-level security: the new owner must be a role it is a member of).
 */
CREATE OR REPLACE FUNCTION migrate_plan(name text,
                             source_server name DEFAULT NULL,
                             source_schema name DEFAULT NULL,
                             target_schema name DEFAULT 'public',
                             options jsonb DEFAULT '{}')
RETURNS text
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF name IS NULL OR name OPERATOR(pg_catalog.=) '' THEN
        RAISE EXCEPTION 'migration plan name must not be empty'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF source_server IS NOT NULL AND NOT EXISTS
        (SELECT 1 FROM pg_catalog.pg_foreign_server s
          WHERE s.srvname OPERATOR(pg_catalog.=) migrate_plan.source_server) THEN
        RAISE EXCEPTION 'foreign server "%" of migration plan "%" does not exist', source_server, name
            USING ERRCODE = 'undefined_object',
                  HINT = 'Create it with CREATE SERVER ... FOREIGN DATA WRAPPER.';
    END IF;
    IF source_schema IS NOT NULL AND NOT EXISTS
        (SELECT 1 FROM pg_catalog.pg_namespace n
          WHERE n.nspname OPERATOR(pg_catalog.=) migrate_plan.source_schema) THEN
        IF source_server IS NULL THEN
            RAISE EXCEPTION 'source schema "%" of migration plan "%" does not exist', source_schema, name
                USING ERRCODE = 'invalid_schema_name',
                      HINT = 'Create it and IMPORT FOREIGN SCHEMA into it, or pass source_server so that migrate_plan() imports it.';
        END IF;
        -- Import the remote schema of the same name (or options->>'remote_schema').
        EXECUTE pg_catalog.format('CREATE SCHEMA %I', source_schema);
        IF EXISTS (SELECT FROM pg_catalog.pg_foreign_server s
                     JOIN pg_catalog.pg_foreign_data_wrapper w ON w.oid OPERATOR(pg_catalog.=) s.srvfdw
                     JOIN pg_catalog.pg_proc h ON h.oid OPERATOR(pg_catalog.=) w.fdwhandler
                    WHERE s.srvname OPERATOR(pg_catalog.=) migrate_plan.source_server
                      AND h.proname OPERATOR(pg_catalog.=) 'mysql_fdw_handler') THEN
            PERFORM migrate._mysql_import(source_server,
                                          coalesce(options OPERATOR(pg_catalog.->>) 'remote_schema', source_schema),
                                          source_schema);
        ELSE
            EXECUTE pg_catalog.format('IMPORT FOREIGN SCHEMA %I FROM SERVER %I INTO %I',
                                      coalesce(options OPERATOR(pg_catalog.->>) 'remote_schema', source_schema),
                                      source_server, source_schema);
        END IF;
    END IF;
    IF target_schema IS NULL OR NOT EXISTS
        (SELECT 1 FROM pg_catalog.pg_namespace n
          WHERE n.nspname OPERATOR(pg_catalog.=) migrate_plan.target_schema) THEN
        RAISE EXCEPTION 'target schema "%" of migration plan "%" does not exist', target_schema, name
            USING ERRCODE = 'invalid_schema_name';
    END IF;
    IF options IS NULL OR pg_catalog.jsonb_typeof(options) OPERATOR(pg_catalog.<>) 'object' THEN
        RAISE EXCEPTION 'options of migration plan "%" must be a JSON object', name
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM migrate._check_reject_options(options, pg_catalog.format('migration plan "%s"', name));
    IF options OPERATOR(pg_catalog.?) 'settings' THEN
        PERFORM migrate._check_settings(options OPERATOR(pg_catalog.->) 'settings');
    END IF;

    BEGIN
        INSERT INTO migrate.plan AS p (plan_name, source_server, source_schema, target_schema, options)
        VALUES (migrate_plan.name, migrate_plan.source_server, migrate_plan.source_schema,
                migrate_plan.target_schema, migrate_plan.options)
        ON CONFLICT (plan_name) DO UPDATE
           SET source_server = EXCLUDED.source_server,
               source_schema = EXCLUDED.source_schema,
               target_schema = EXCLUDED.target_schema,
               options = EXCLUDED.options,
               updated_at = pg_catalog.now();
    EXCEPTION WHEN insufficient_privilege THEN
        -- the name is taken by a plan this role may not see (row-level security)
        RAISE EXCEPTION 'migration plan "%" belongs to another role', migrate_plan.name
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'Choose another plan name, or ask a member of its owner to change it.';
    END;
    PERFORM migrate._catalog_event(NULL, migrate_plan.name, 'plan defined', migrate_plan.options::pg_catalog.text);
    RETURN migrate_plan.name;
END;
$$;

CREATE OR REPLACE FUNCTION migrate_table(plan text,
                              source text,
                              target text,
                              key text DEFAULT NULL,
                              filter text DEFAULT NULL,
                              mode text DEFAULT 'insert',
                              watermark text DEFAULT NULL,
                              options jsonb DEFAULT NULL,
                              capture text DEFAULT NULL,
                              lag interval DEFAULT NULL)
RETURNS regclass
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    path text := migrate._caller_search_path();
    pl migrate.plan := migrate._plan(plan);
    src regclass := migrate._resolve_in(source, pl.source_schema, path);
    tgt regclass := migrate._resolve_in(target, pl.target_schema, path);
    tname text := migrate._relname(tgt, path);
    keycols name[];
    k text;
    wm name;
    -- a file source (sql/file.sql): needs no key in mode insert
    is_file boolean := EXISTS (SELECT FROM pg_catalog.pg_foreign_table ft
                                 JOIN pg_catalog.pg_foreign_server fs ON fs.oid OPERATOR(pg_catalog.=) ft.ftserver
                                 JOIN pg_catalog.pg_foreign_data_wrapper w ON w.oid OPERATOR(pg_catalog.=) fs.srvfdw
                                WHERE ft.ftrelid OPERATOR(pg_catalog.=) src AND w.fdwname OPERATOR(pg_catalog.=) 'migrate_file');
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
    IF (SELECT c.relkind FROM pg_catalog.pg_class c WHERE c.oid OPERATOR(pg_catalog.=) tgt)
       NOT IN ('r', 'p') THEN
        RAISE EXCEPTION 'target % of migration plan "%" is not a table', tname, plan
            USING ERRCODE = 'wrong_object_type';
    END IF;
    IF mode IS NULL OR mode NOT IN ('insert', 'upsert', 'skip_existing') THEN
        RAISE EXCEPTION 'invalid mode "%" for table % in migration plan "%"', mode, tname, plan
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Use insert, upsert or skip_existing.';
    END IF;

    -- per-table overrides of the plan's options (reject_warn, reject_limit)
    IF options IS NOT NULL THEN
        IF pg_catalog.jsonb_typeof(options) OPERATOR(pg_catalog.<>) 'object' THEN
            RAISE EXCEPTION 'options of table % in migration plan "%" must be a JSON object', tname, plan
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = 'For example options => ''{"reject_limit": 0.5}''.';
        END IF;
        PERFORM migrate._check_reject_options(options,
                                              pg_catalog.format('table %s in migration plan "%s"', tname, plan));
    END IF;

    IF key IS NULL THEN
        SELECT pg_catalog.array_agg(a.attname ORDER BY k.ord) INTO keycols
          FROM pg_catalog.pg_index i
          CROSS JOIN LATERAL pg_catalog.unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
          JOIN pg_catalog.pg_attribute a
            ON a.attrelid OPERATOR(pg_catalog.=) i.indrelid AND a.attnum OPERATOR(pg_catalog.=) k.attnum
         WHERE i.indrelid OPERATOR(pg_catalog.=) tgt AND i.indisprimary;
        -- a file's records are cut by their _pos: in mode insert it needs no
        -- key, nor a primary key its fields do not give (a serial filled by its default)
        IF is_file AND mode = 'insert' AND (keycols IS NULL OR EXISTS (
               SELECT FROM pg_catalog.unnest(keycols) AS kc(col)
                WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_attribute sa
                                   WHERE sa.attrelid OPERATOR(pg_catalog.=) src
                                     AND sa.attname OPERATOR(pg_catalog.=) kc.col AND NOT sa.attisdropped)
                  AND NOT EXISTS (SELECT FROM migrate.column_map cm
                                   WHERE cm.plan OPERATOR(pg_catalog.=) migrate_table.plan
                                     AND cm.target OPERATOR(pg_catalog.=) tgt
                                     AND cm.column_name OPERATOR(pg_catalog.=) kc.col))) THEN
            keycols := '{}';
        ELSIF keycols IS NULL THEN
            RAISE EXCEPTION 'target table % of migration plan "%" has no primary key', tname, plan
                USING ERRCODE = 'invalid_table_definition',
                      HINT = 'Pass key => ''column[, column...]'' naming unique, not-null target columns; batches are cut on the key.';
        END IF;
    ELSE
        FOREACH k IN ARRAY pg_catalog.string_to_array(key, ',') LOOP
            keycols := keycols || migrate._column(tgt, pg_catalog.btrim(k), plan);
        END LOOP;
    END IF;

    -- capture (trickle sync): NULL keeps what the table had ('none' when new)
    IF capture IS NOT NULL AND capture NOT IN ('none', 'watermark', 'trigger', 'slot', 'diff') THEN
        RAISE EXCEPTION 'invalid capture "%" for table % in migration plan "%"', capture, tname, plan
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Use none, watermark, trigger, slot or diff.';
    END IF;
    IF capture = 'watermark' AND watermark IS NULL THEN
        RAISE EXCEPTION 'capture watermark of table % in migration plan "%" needs a watermark column', tname, plan
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Pass watermark => ''column'', a source column every write moves forward (an update timestamp or a version number).';
    END IF;
    IF lag IS NOT NULL AND lag < '0' THEN
        RAISE EXCEPTION 'lag of table % in migration plan "%" must not be negative', tname, plan
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    IF (mode IN ('upsert', 'skip_existing') OR coalesce(capture, 'none') <> 'none') AND NOT EXISTS (
        SELECT 1 FROM pg_catalog.pg_index i
         WHERE i.indrelid OPERATOR(pg_catalog.=) tgt AND i.indisunique AND i.indpred IS NULL
           AND i.indexprs IS NULL
           AND (SELECT pg_catalog.array_agg(a.attname ORDER BY a.attname)
                  FROM pg_catalog.pg_attribute a
                 WHERE a.attrelid OPERATOR(pg_catalog.=) tgt
                   AND a.attnum OPERATOR(pg_catalog.=) ANY (i.indkey))
               OPERATOR(pg_catalog.=) (SELECT pg_catalog.array_agg(c ORDER BY c) FROM pg_catalog.unnest(keycols) c)) THEN
        RAISE EXCEPTION '% of table % in migration plan "%" needs a unique index on its key (%)',
                        CASE WHEN coalesce(capture, 'none') <> 'none'
                             THEN pg_catalog.format('capture %s', capture)
                             ELSE pg_catalog.format('mode %s', mode) END,
                        tname, plan, pg_catalog.array_to_string(keycols, ', ')
            USING ERRCODE = 'invalid_table_definition',
                  HINT = 'Create a unique index or primary key on the key columns, or use mode insert.';
    END IF;

    IF watermark IS NOT NULL THEN
        wm := migrate._column(src, watermark, plan);
    END IF;

    INSERT INTO migrate.table_map AS t (plan, target, source, key, filter, mode, watermark, options,
                                        capture, lag)
    VALUES (migrate_table.plan, tgt,
            pg_catalog.format('%I.%I', (SELECT n.nspname FROM pg_catalog.pg_namespace n
                                          JOIN pg_catalog.pg_class c
                                            ON c.relnamespace OPERATOR(pg_catalog.=) n.oid
                                         WHERE c.oid OPERATOR(pg_catalog.=) src),
                              (SELECT c.relname FROM pg_catalog.pg_class c WHERE c.oid OPERATOR(pg_catalog.=) src)),
            keycols, migrate_table.filter, migrate_table.mode, wm,
            coalesce(migrate_table.options, '{}') OPERATOR(pg_catalog.||)
                CASE WHEN is_file THEN '{"file": true}'::jsonb ELSE '{}'::jsonb END,
            coalesce(migrate_table.capture, 'none'), migrate_table.lag)
    ON CONFLICT ON CONSTRAINT table_map_pkey DO UPDATE
       SET source = EXCLUDED.source, key = EXCLUDED.key, filter = EXCLUDED.filter,
           mode = EXCLUDED.mode, watermark = EXCLUDED.watermark,
           capture = CASE WHEN migrate_table.capture IS NULL THEN t.capture ELSE EXCLUDED.capture END,
           lag = CASE WHEN migrate_table.capture IS NULL AND migrate_table.lag IS NULL
                      THEN t.lag ELSE EXCLUDED.lag END,
           -- options given are merged into the table's (a key given again replaces its value)
           options = (t.options OPERATOR(pg_catalog.-) 'file'::text) OPERATOR(pg_catalog.||) EXCLUDED.options;

    -- Every key column must be mapped (batches are cut on its source side);
    -- a renamed key is mapped next with migrate_column(), so only say so.
    FOREACH k IN ARRAY keycols LOOP
        IF NOT EXISTS (SELECT 1 FROM migrate._mapped_columns(plan, tgt) m
                        WHERE m.column_name OPERATOR(pg_catalog.=) k) THEN
            RAISE NOTICE 'key column "%" of table % has no same-named source column in migration plan "%"',
                         k, tname, plan
                USING HINT = 'Map it with migrate_column() before running the plan.';
        END IF;
    END LOOP;
    IF migrate_table.filter IS NOT NULL THEN
        BEGIN
            PERFORM migrate._check_expression(migrate_table.filter, 'filter');
        EXCEPTION WHEN OTHERS THEN
            RAISE EXCEPTION 'filter of table % in migration plan "%" is invalid: %', tname, plan, SQLERRM
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
            PERFORM migrate._explain(pg_catalog.format('SELECT 1 FROM %s AS s WHERE (%s)',
                                                       src, migrate_table.filter), path);
        EXCEPTION WHEN OTHERS THEN
            RAISE EXCEPTION 'filter of table % in migration plan "%" is invalid: %', tname, plan, SQLERRM
                USING ERRCODE = SQLSTATE,
                      DETAIL = pg_catalog.format('Filter: %s', migrate_table.filter),
                      HINT = 'The filter is a boolean SQL expression over the source row, pushed down to the source.';
        END;
    END IF;
    RETURN tgt;
END;
$$;

CREATE OR REPLACE FUNCTION migrate_column(plan text, target text, "column" text, expr text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    path text := migrate._caller_search_path();
    tm migrate.table_map := migrate._table_map(plan, target);
    col name := migrate._column(tm.target, "column", plan);
BEGIN
    IF expr IS NULL THEN
        DELETE FROM migrate.column_map c
         WHERE c.plan OPERATOR(pg_catalog.=) tm.plan AND c.target OPERATOR(pg_catalog.=) tm.target
           AND c.column_name OPERATOR(pg_catalog.=) col;
        RETURN;
    END IF;
    BEGIN
        PERFORM migrate._check_expression(expr, 'expression');
    EXCEPTION WHEN OTHERS THEN
        RAISE EXCEPTION 'mapping of column "%" of table % in migration plan "%" is invalid: %',
                        col, migrate._relname(tm.target, path), plan, SQLERRM
            USING ERRCODE = SQLSTATE, DETAIL = pg_catalog.format('Expression: %s', expr);
    END;
    INSERT INTO migrate.column_map AS c (plan, target, column_name, expr)
    VALUES (tm.plan, tm.target, col, migrate_column.expr)
    ON CONFLICT ON CONSTRAINT column_map_pkey DO UPDATE SET expr = EXCLUDED.expr;
    PERFORM migrate._check_mapping(tm.plan, tm.target, col);
END;
$$;

CREATE OR REPLACE FUNCTION migrate_value_map(map text, from_value text, to_value text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    v_owner regrole;
BEGIN
    IF map IS NULL OR map OPERATOR(pg_catalog.=) '' OR from_value IS NULL THEN
        RAISE EXCEPTION 'value map name and from_value must not be null'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    -- the first entry makes the map, owned by the current role
    INSERT INTO migrate.lookup_map (map_name) VALUES (map) ON CONFLICT DO NOTHING;
    SELECT m.owner INTO v_owner FROM migrate.lookup_map m WHERE m.map_name OPERATOR(pg_catalog.=) map;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'value map "%" belongs to another role', map
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'Choose another map name, or ask a member of its owner to change it.';
    ELSIF v_owner IS NULL
          AND NOT (SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.rolname OPERATOR(pg_catalog.=) CURRENT_USER) THEN
        RAISE EXCEPTION 'value map "%" has no owner and only a superuser may change it', map
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'A superuser gives it an owner: UPDATE migrate.lookup_map SET owner = ''role'' WHERE map_name = ...';
    END IF;
    INSERT INTO migrate.value_map AS v (map_name, from_value, to_value)
    VALUES (map, from_value, to_value)
    ON CONFLICT (map_name, from_value) DO UPDATE SET to_value = EXCLUDED.to_value;
END;
$$;

/*
 * migrate_sensitive(plan, target, source_column): mark a source column of a
 * table mapping as sensitive.  Its values, and those of every target column
 * fed by it (migrate._sensitive_targets), never appear in what migrate
 * stores or reports (rejects, profile results, verification details, diff
 * results, the report, error texts): they show as '***', even to the
 * owner.  Marking it again is a no-op; DELETE FROM migrate.sensitive_column
 * unmarks it.
 */
CREATE OR REPLACE FUNCTION migrate_sensitive(plan text, target text, source_column text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    tm migrate.table_map := migrate._table_map(plan, target);
    src regclass := pg_catalog.to_regclass(tm.source);
    col name;
BEGIN
    IF source_column IS NULL OR source_column OPERATOR(pg_catalog.=) '' THEN
        RAISE EXCEPTION 'source column of migrate_sensitive() must not be null or empty (migration plan "%")', plan
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF src IS NULL THEN
        RAISE EXCEPTION 'source relation % of table % in migration plan "%" does not exist',
                        tm.source, migrate._relname(tm.target, migrate._caller_search_path()), plan
            USING ERRCODE = 'undefined_table',
                  HINT = 'Map the table again with migrate_table().';
    END IF;
    col := migrate._column(src, source_column, plan);
    INSERT INTO migrate.sensitive_column AS c (plan, target, source_column)
    VALUES (tm.plan, tm.target, col)
    ON CONFLICT ON CONSTRAINT sensitive_column_pkey DO NOTHING;
END;
$$;

CREATE OR REPLACE FUNCTION migrate_rule(plan text, target text, name text, check_expr text,
                             on_fail text DEFAULT 'reject')
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    tm migrate.table_map := migrate._table_map(plan, target);
    tname text := migrate._relname(tm.target, migrate._caller_search_path());
BEGIN
    IF name IS NULL OR name OPERATOR(pg_catalog.=) '' THEN
        RAISE EXCEPTION 'rule name must not be empty' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF on_fail IS NULL OR on_fail NOT IN ('reject', 'warn', 'abort') THEN
        RAISE EXCEPTION 'invalid on_fail "%" for rule "%" of table % in migration plan "%"',
                        on_fail, name, tname, plan
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Use reject, warn or abort.';
    END IF;
    IF check_expr IS NULL THEN
        DELETE FROM migrate.rule r
         WHERE r.plan OPERATOR(pg_catalog.=) tm.plan AND r.target OPERATOR(pg_catalog.=) tm.target
           AND r.rule_name OPERATOR(pg_catalog.=) name;
        RETURN;
    END IF;
    PERFORM migrate._check_rule(tm.plan, tm.target, name, check_expr);
    INSERT INTO migrate.rule AS r (plan, target, rule_name, check_expr, on_fail)
    VALUES (tm.plan, tm.target, name, check_expr, on_fail)
    ON CONFLICT ON CONSTRAINT rule_pkey DO UPDATE
       SET check_expr = EXCLUDED.check_expr, on_fail = EXCLUDED.on_fail;
END;
$$;

-- A foreign key the plan implies but the target does not declare
-- (migrate.foreign_key), checked by migrate_verify() like a declared one.
CREATE OR REPLACE FUNCTION migrate_foreign_key(plan text, target text, columns text,
                                               "references" text, ref_columns text DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    path text := migrate._caller_search_path();
    tm migrate.table_map := migrate._table_map(plan, target);
    pl migrate.plan := migrate._plan(plan);
    ref regclass := migrate._resolve_in("references", pl.target_schema, path);
    tname text := migrate._relname(tm.target, path);
    cols name[];
    refcols name[];
    c text;
BEGIN
    IF ref IS NULL THEN
        RAISE EXCEPTION 'referenced table "%" of migration plan "%" does not exist', "references", plan
            USING ERRCODE = 'undefined_table';
    END IF;
    IF columns IS NULL THEN
        DELETE FROM migrate.foreign_key f WHERE f.plan OPERATOR(pg_catalog.=) tm.plan AND f.target OPERATOR(pg_catalog.=) tm.target;
        RETURN;
    END IF;
    FOREACH c IN ARRAY pg_catalog.string_to_array(columns, ',') LOOP
        cols := cols || migrate._column(tm.target, pg_catalog.btrim(c), plan);
    END LOOP;
    IF ref_columns IS NULL THEN     -- the referenced table's primary key
        SELECT pg_catalog.array_agg(a.attname ORDER BY k.ord) INTO refcols
          FROM pg_catalog.pg_index i
          CROSS JOIN LATERAL pg_catalog.unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
          JOIN pg_catalog.pg_attribute a
            ON a.attrelid OPERATOR(pg_catalog.=) i.indrelid AND a.attnum OPERATOR(pg_catalog.=) k.attnum
         WHERE i.indrelid OPERATOR(pg_catalog.=) ref AND i.indisprimary;
        IF refcols IS NULL THEN
            RAISE EXCEPTION 'referenced table % of migration plan "%" has no primary key', migrate._relname(ref, path), plan
                USING ERRCODE = 'invalid_foreign_key',
                      HINT = 'Name the referenced columns with ref_columns.';
        END IF;
    ELSE
        FOREACH c IN ARRAY pg_catalog.string_to_array(ref_columns, ',') LOOP
            refcols := refcols || migrate._column(ref, pg_catalog.btrim(c), plan);
        END LOOP;
    END IF;
    IF pg_catalog.cardinality(cols) OPERATOR(pg_catalog.<>) pg_catalog.cardinality(refcols) THEN
        RAISE EXCEPTION 'foreign key of table % in migration plan "%" has % columns but references %',
                        tname, plan, pg_catalog.cardinality(cols), pg_catalog.cardinality(refcols)
            USING ERRCODE = 'invalid_foreign_key';
    END IF;
    INSERT INTO migrate.foreign_key AS f (plan, target, columns, ref_target, ref_columns)
    VALUES (tm.plan, tm.target, cols, ref, refcols)
    ON CONFLICT ON CONSTRAINT foreign_key_pkey DO UPDATE
       SET ref_target = EXCLUDED.ref_target, ref_columns = EXCLUDED.ref_columns;
END;
$$;
