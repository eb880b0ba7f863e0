/*
 * verify.sql: migrate_verify and the comparison machinery that diff.sql
 * also uses (row hashes, the SQL of both sides, rejected keys, foreign
 * keys to check).
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
 *
 * Who runs what (issue 11): migrate_verify (and migrate_diff) run as the
 * plan's owner through migrate_call_as_owner; their bodies
 * (migrate._migrate_verify, _migrate_diff) are not executable by PUBLIC.
 * The other internals here and in diff.sql stay executable by PUBLIC
 * because the owner's call runs them as the owner, and each is safe for
 * any caller: the SQL text some take (statements over the source and the
 * target, fragments of them) runs here, as the caller, with the caller's
 * rights; none reaches a remote server but through
 * migrate._compare_sides, which sends only what postgres_fdw deparses of a
 * local statement the caller may run (src/verify.c).  Every function pins
 * search_path; the statements that carry the owner's expressions run under
 * the caller's (migrate._caller_search_path()).
 */

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
-- target side, its hash template, and the source side's value in the
-- batch statement, whose mapped row m already holds the cast expression.
CREATE OR REPLACE FUNCTION migrate._verify_columns(p_plan text, p_target regclass)
RETURNS SETOF migrate._verify_column
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT m.column_name,
           CASE WHEN m.type_name IS NULL THEN m.expr
                WHEN m.type_name = pg_catalog.format_type(a.atttypid, a.atttypmod)
                THEN '(' || m.expr || ')::' || m.type_name
                ELSE '((' || m.expr || ')::' || m.type_name || ')::'
                     || pg_catalog.format_type(a.atttypid, a.atttypmod) END,
           't.' || pg_catalog.quote_ident(m.column_name),
           pg_catalog.format_type(a.atttypid, a.atttypmod),
           migrate._hash_template(a.atttypid),
           -- the batch statement's m.<column> is the expression cast to type_name (src/load.c)
           CASE WHEN m.type_name IS NULL OR m.type_name = pg_catalog.format_type(a.atttypid, a.atttypmod)
                THEN 'm.' || pg_catalog.quote_ident(m.column_name)
                ELSE '(m.' || pg_catalog.quote_ident(m.column_name) || ')::'
                     || pg_catalog.format_type(a.atttypid, a.atttypmod) END
      FROM migrate._mapped_columns(p_plan, p_target) m
      JOIN pg_catalog.pg_attribute a ON a.attrelid = p_target AND a.attname = m.column_name
     ORDER BY m.attnum
$$;

-- A relation as the caller names it (unqualified when the caller's
-- search_path finds it by name), for messages and check names.
CREATE OR REPLACE FUNCTION migrate._verify_relname(p_rel regclass)
RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM pg_catalog.set_config('search_path', migrate._caller_search_path(), true);
    RETURN p_rel::pg_catalog.text;
END;
$$;

-- An error text with the quoted values in it masked ('***'), for a table
-- with sensitive columns (a cast error quotes the value it could not read).
CREATE OR REPLACE FUNCTION migrate._verify_mask_error(p_message text, p_sensitive name[])
RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN coalesce(pg_catalog.cardinality(p_sensitive), 0) = 0 THEN p_message
                ELSE pg_catalog.regexp_replace(p_message, ': "[^"]*"', ': "***"', 'g') END
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
--   sensitive               target columns whose values must not show (migrate._sensitive_targets)
--   key_sensitive           whether the key is one of them (keys then show as '***')
-- The row hash is the key's hash seeded with the XOR of every other column's
-- hash (seeded with the column's position; a NULL hashes to the position): one
-- expression per row, which costs about half of a count and a sum per
-- column.  The per-column aggregates only run when the row hashes differ,
-- to name the columns that differ.
CREATE OR REPLACE FUNCTION migrate._verify_sql(p_plan text, p_target regclass)
RETURNS jsonb
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    tm migrate.table_map;
    vc migrate._verify_column[];
    c migrate._verify_column;
    seed_s text := '0';
    seed_t text := '0';
    row_s text[] := '{}';
    row_t text[] := '{}';
    row_l text[] := '{}';
    aggs_s text := 'pg_catalog.count(*)::numeric';
    aggs_t text := 'pg_catalog.count(*)::numeric';
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
    sensitive name[] := migrate._sensitive_targets(p_plan, p_target);
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
        row_l := row_l || pg_catalog.format('CASE WHEN (%s) IS NULL THEN %s ELSE %s END', c.loaded_value, pos,
                                            pg_catalog.format(c.hash_template, c.loaded_value, pos));
    END LOOP;
    row_s := ARRAY[coalesce('(' || NULLIF(pg_catalog.array_to_string(row_s, ' # '), '') || ')', '0')];
    row_t := ARRAY[coalesce('(' || NULLIF(pg_catalog.array_to_string(row_t, ' # '), '') || ')', '0')];
    row_l := ARRAY[coalesce('(' || NULLIF(pg_catalog.array_to_string(row_l, ' # '), '') || ')', '0')];
    -- the key's hash seeds the hash of every value of its row
    FOR i IN REVERSE nkeys .. 1 LOOP
        SELECT * INTO c FROM pg_catalog.unnest(vc) v WHERE v.column_name = tm.key[i];
        IF NOT FOUND THEN
            RAISE EXCEPTION 'key column "%" of table % in migration plan "%" is not mapped',
                            tm.key[i], migrate._verify_relname(p_target), p_plan
                USING ERRCODE = 'undefined_column',
                      HINT = 'Map it with migrate_column().';
        END IF;
        seed_s := pg_catalog.format(c.hash_template, c.source_value, seed_s);
        seed_t := pg_catalog.format(c.hash_template, c.target_value, seed_t);
        row_s[1] := pg_catalog.format(c.hash_template, c.source_value, row_s[1]);
        row_t[1] := pg_catalog.format(c.hash_template, c.target_value, row_t[1]);
        row_l[1] := pg_catalog.format(c.hash_template, c.loaded_value, row_l[1]);
        keys_s := c.source_value || keys_s;
        keys_t := c.target_value || keys_t;
        key_types := c.type_name || key_types;
        key_type := c.type_name;
    END LOOP;
    FOREACH c IN ARRAY vc LOOP
        cols := cols || c.column_name;
        hs := hs || pg_catalog.format(c.hash_template, c.source_value, seed_s);
        ht := ht || pg_catalog.format(c.hash_template, c.target_value, seed_t);
        aggs_s := aggs_s || pg_catalog.format(', pg_catalog.count(%s)::numeric, pg_catalog.sum(%s)', c.source_value, hs[pg_catalog.cardinality(hs)]);
        aggs_t := aggs_t || pg_catalog.format(', pg_catalog.count(%s)::numeric, pg_catalog.sum(%s)', c.target_value, ht[pg_catalog.cardinality(ht)]);
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
        'source_aggs', 'ARRAY[pg_catalog.count(*)::numeric, pg_catalog.sum(' || row_s[1] || ')]',
        'target_aggs', 'ARRAY[pg_catalog.count(*)::numeric, pg_catalog.sum(' || row_t[1] || ')]',
        -- one row's hash in the batch statement (src/load.c: run_table.loaded_checksum)
        'loaded_row_hash', row_l[1],
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
        'sensitive', sensitive,
        'key_sensitive', tm.key && sensitive,
        'columns', cols) || key_columns
        -- a file source's rejects are keyed by file and line (src/filesrc.c):
        -- left out of the source side by those; the target never held them
        || CASE WHEN tm.options ? 'file' THEN pg_catalog.jsonb_build_object(
               'source_exclude', ' AND (s._file || '':'' || s._line) <> ALL ($1::text[])',
               'target_exclude', ' AND true', 'key_type', 'text')
           ELSE '{}'::jsonb END;
END;
$$;

-- The run a verification or diff is about: the given run of the plan, or
-- its last run that was not a dry run; a clear error when there is none or
-- it is still going.
CREATE OR REPLACE FUNCTION migrate._verify_run(p_plan text, p_run bigint)
RETURNS migrate.run
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
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
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    src text;
    rel regclass;
BEGIN
    SELECT source INTO src FROM migrate.table_map WHERE plan = p_plan AND target = p_target;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'table % is not mapped in migration plan "%"', migrate._verify_relname(p_target), p_plan
            USING ERRCODE = 'undefined_object',
                  HINT = 'Map it first with migrate_table().';
    END IF;
    rel := pg_catalog.to_regclass(src);
    IF rel IS NULL THEN
        RAISE EXCEPTION 'source relation % of table % in migration plan "%" does not exist', src,
                        migrate._verify_relname(p_target), p_plan
            USING ERRCODE = 'undefined_table',
                  HINT = 'Recreate the foreign table (IMPORT FOREIGN SCHEMA) or remap the table with migrate_table().';
    END IF;
    RETURN rel;
END;
$$;

-- The source's side of a comparison computed on the source server, while
-- the target's runs here (src/verify.c).  remote_sql (so named since 0.2)
-- is a statement *here* over the foreign table source, not SQL for the
-- remote server: it is planned as the caller, and only what postgres_fdw
-- deparses of it is sent (read-only, one statement).  Safe for any caller;
-- it resolves no names of its own (the statements' names resolve under the
-- caller's search_path, as EXECUTE would).
CREATE OR REPLACE FUNCTION migrate._compare_sides(source regclass, remote_sql text, target_sql text, keys text[])
RETURNS text[]
LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'migrate_compare_sides';

-- One value from each side of a comparison: p_wrap (a format() template,
-- '%s' by default) applied to p_source_sql, a statement over the source
-- (a foreign table or a local one), and to p_target_sql, the same over the
-- target, must give one row of one numeric[] ($1: the rejected keys,
-- text[]).  When postgres_fdw ships the whole source statement (an
-- aggregate, grouped or not), migrate._compare_sides runs what it deparsed
-- as a plain statement on the source, where it may use parallel workers
-- (the FDW's cursor may not), while the target's runs here; otherwise the
-- source is read through the FDW, then the target.  The statements carry
-- the owner's expressions: they run under the caller's search_path
-- (migrate._caller_search_path()), as whoever called this (the owner,
-- under migrate_verify and migrate_diff), and nothing else does.  Safe for
-- any caller: it runs the caller's statements as the caller.  how: a
-- phrase that says which way.
CREATE OR REPLACE FUNCTION migrate._both_sides(p_source regclass, p_source_sql text, p_target_sql text,
                                             p_keys text[], p_wrap text DEFAULT '%s',
                                             OUT source_result numeric[], OUT target_result numeric[],
                                             OUT how text)
LANGUAGE plpgsql
SET enable_sort = off   -- a grouped comparison has a handful of groups: hash them (also on the source, src/verify.c)
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    plan jsonb;
    top jsonb;
    pair text[];
    expr_path constant text := migrate._caller_search_path();
    foreign_pg boolean;
BEGIN
    SELECT w.fdwname = 'postgres_fdw' INTO foreign_pg
      FROM pg_catalog.pg_foreign_table ft
      JOIN pg_catalog.pg_foreign_server fs ON fs.oid = ft.ftserver
      JOIN pg_catalog.pg_foreign_data_wrapper w ON w.oid = fs.srvfdw
     WHERE ft.ftrelid = p_source;
    IF (SELECT c.relkind FROM pg_catalog.pg_class c WHERE c.oid = p_source) <> 'f' THEN
        how := 'computed locally (the source is not a foreign table)';
    ELSE
        PERFORM pg_catalog.set_config('search_path', expr_path, true);
        EXECUTE 'EXPLAIN (VERBOSE, COSTS OFF, FORMAT JSON) ' || p_source_sql INTO plan USING p_keys;
        PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
        top := plan->0->'Plan';
        IF top->>'Node Type' = 'Foreign Scan' AND coalesce(top->>'Relations', '') LIKE 'Aggregate on %' THEN
            IF top ? 'Remote SQL' AND foreign_pg THEN
                -- the local statement: _compare_sides sends what postgres_fdw deparses of it
                PERFORM pg_catalog.set_config('search_path', expr_path, true);
                pair := migrate._compare_sides(p_source, p_source_sql,
                                               pg_catalog.format(p_wrap, p_target_sql), p_keys);
                PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
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
    PERFORM pg_catalog.set_config('search_path', expr_path, true);
    EXECUTE pg_catalog.format(p_wrap, p_source_sql) INTO source_result USING p_keys;
    EXECUTE pg_catalog.format(p_wrap, p_target_sql) INTO target_result USING p_keys;
    PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
END;
$$;

-- Keys as text in the key's type output (p_key_type); keys that do not
-- read as that type are left out (such rows never reached the target).
CREATE OR REPLACE FUNCTION migrate._keys_as(p_keys text[], p_key_type text)
RETURNS text[]
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    keys text[] := '{}';
    k text;
BEGIN
    IF p_keys IS NULL THEN
        RETURN NULL;
    END IF;
    BEGIN
        EXECUTE pg_catalog.format('SELECT coalesce(pg_catalog.array_agg(DISTINCT (k::%s)::text), ''{}'')'
                                  '  FROM pg_catalog.unnest($1) k WHERE k IS NOT NULL',
                                  p_key_type) INTO keys USING p_keys;
        RETURN keys;
    EXCEPTION WHEN data_exception THEN
        keys := '{}';
    END;
    FOREACH k IN ARRAY p_keys LOOP
        CONTINUE WHEN k IS NULL;
        BEGIN
            EXECUTE pg_catalog.format('SELECT ($1::%s)::text', p_key_type) INTO k USING k;
            keys := keys || k;
        EXCEPTION WHEN data_exception THEN
            NULL;
        END;
    END LOOP;
    RETURN ARRAY(SELECT DISTINCT u.key FROM pg_catalog.unnest(keys) AS u(key));
END;
$$;

-- The keys of the rows quarantined and not loaded, as text in the key's
-- type output (migrate._keys_as): those of the run, and, since 0.6, those
-- of the table's last load (the run itself, or for a sync run the last
-- full or incremental run before it) and of every sync run of the plan
-- after that load:
-- trickle sync quarantines a row whose current source version fails a rule
-- and removes it from the target.
CREATE OR REPLACE FUNCTION migrate._rejected_keys(p_run bigint, p_target regclass, p_key_type text)
RETURNS text[]
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r migrate.run;
    base bigint;
    raw text[];
BEGIN
    SELECT * INTO r FROM migrate.run WHERE run_id = p_run;
    SELECT max(b.run_id) INTO base FROM migrate.run b
     WHERE b.plan = r.plan AND b.run_id <= p_run AND NOT b.dry_run AND b.mode <> 'sync'
       AND EXISTS (SELECT FROM migrate.run_table bt WHERE bt.run_id = b.run_id AND bt.target = p_target);
    SELECT pg_catalog.array_agg(DISTINCT j.source_key) INTO raw
      FROM migrate.reject j JOIN migrate.run jr ON jr.run_id = j.run_id
     WHERE j.target = p_target AND NOT j.loaded AND j.source_key IS NOT NULL
       AND (j.run_id = p_run OR j.run_id = base
            OR (jr.plan = r.plan AND jr.mode = 'sync' AND NOT jr.dry_run AND j.run_id > coalesce(base, p_run)));
    RETURN migrate._keys_as(raw, p_key_type);
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
SET search_path = pg_catalog, pg_temp
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

-- The fragments of migrate._verify_sql() with the keys in flight left out
-- of both sides (migrate._in_flight(): leading key values), for a parallel
-- run; adds in_flight (their number) and in_flight_how.  p_stable_for
-- NULL: q as it is.
CREATE OR REPLACE FUNCTION migrate._verify_sql_in_flight(p_plan text, p_target regclass, p_stable_for interval,
                                                       q jsonb)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    f record;
    lead_type text := q->'key_types'->>0;
    keys text[];
BEGIN
    IF p_stable_for IS NULL THEN
        RETURN q;
    END IF;
    SELECT * INTO f FROM migrate._in_flight(p_plan, p_target, p_stable_for);
    keys := migrate._keys_as(f.keys, lead_type);
    IF keys = '{}' THEN
        RETURN q || pg_catalog.jsonb_build_object('in_flight', 0, 'in_flight_how', f.how);
    END IF;
    -- a constant array: postgres_fdw ships it with the rest
    RETURN q || pg_catalog.jsonb_build_object(
        'source', (q->>'source') || pg_catalog.format(' AND (%s) <> ALL (%L::%s[])', q->'key_sources'->>0, keys, lead_type),
        'target', (q->>'target') || pg_catalog.format(' AND (%s) <> ALL (%L::%s[])', q->'key_targets'->>0, keys, lead_type),
        'in_flight', pg_catalog.cardinality(keys),
        'in_flight_how', f.how);
END;
$$;

-- Reconcile one table of a run; inserts its checks into migrate.verification
-- and returns their ids.  p_stable_for: a parallel run (migrate_verify).
CREATE OR REPLACE FUNCTION migrate._verify_table(p_plan text, p_run migrate.run, p_target regclass,
                                               p_stable_for interval, p_reread boolean)
RETURNS bigint[]
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
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
    c_arr numeric[];     -- the checksum's source side: (rows, sum of row hashes)
    rt migrate.run_table;
    as_loaded boolean := false;
    why_reread text;
    n integer := pg_catalog.cardinality(cols);
    from_s text;
    from_t text;
    diff_cols text[] := '{}';
    how text;
    ids bigint[] := '{}';
    id bigint;
    expected numeric;
    examples text;
    i integer := 0;
BEGIN
    SELECT * INTO tm FROM migrate.table_map WHERE plan = p_plan AND target = p_target;
    -- a parallel run: what is in flight is reported, and left out of the rest
    q := migrate._verify_sql_in_flight(p_plan, p_target, p_stable_for, q);
    from_s := (q->>'source') || CASE WHEN keys IS NOT NULL THEN q->>'source_exclude' ELSE '' END;
    from_t := (q->>'target') || CASE WHEN keys IS NOT NULL THEN q->>'target_exclude' ELSE '' END;
    IF q ? 'in_flight' THEN
        INSERT INTO migrate.verification (run_id, target, check_name, source_value, target_value, ok, details)
        VALUES (p_run.run_id, p_target, 'in flight', q->>'in_flight', NULL, true,
                pg_catalog.format('%s key(s) changed within %s or not yet synced, left out of the checks below; %s',
                                  q->>'in_flight', p_stable_for, q->>'in_flight_how'))
        RETURNING verification_id INTO id;
        ids := ids || id;
    END IF;
    FOR rules IN SELECT rule_name, check_expr, on_fail FROM migrate.rule
                  WHERE plan = p_plan AND target = p_target ORDER BY rule_name LOOP
        rule_aggs := rule_aggs || pg_catalog.format(', (pg_catalog.count(*) FILTER (WHERE NOT coalesce((%s), false)))::numeric',
                                                    rules.check_expr);
    END LOOP;

    /*
     * reread => false: a table the run loaded into an empty target, with
     * nothing rejected or skipped and no later run of the plan on it, holds
     * exactly the rows the run wrote, whose hashes the run summed as it
     * wrote them (run_table.loaded_checksum): the target is compared with
     * that, and the source only counted, not read again.
     */
    IF NOT p_reread THEN
        SELECT * INTO rt FROM migrate.run_table WHERE run_id = p_run.run_id AND target = p_target;
        why_reread := CASE
            WHEN p_stable_for IS NOT NULL THEN 'stable_for is given'
            WHEN rt.loaded_checksum IS NULL THEN
                pg_catalog.format('run %s kept no checksum of it (%s)', p_run.run_id,
                                  CASE rt.undo WHEN 'empty' THEN 'a batch was not hashed, or an fk unit moved rows out'
                                               WHEN 'log' THEN 'the table was not empty when the run started'
                                               ELSE 'the run kept no undo log to know the table was empty' END)
            WHEN p_run.state <> 'succeeded' OR rt.state <> 'succeeded' THEN
                pg_catalog.format('run %s did not succeed', p_run.run_id)
            WHEN rt.rows_rejected + rt.rows_skipped + rt.rows_warned > 0 OR keys IS NOT NULL THEN
                'rows of it were rejected or skipped'
            WHEN EXISTS (SELECT FROM migrate.run_table lt JOIN migrate.run lr USING (run_id)
                          WHERE lt.target = p_target AND lr.plan = p_plan AND lt.run_id > p_run.run_id
                            AND NOT lr.dry_run) THEN
                'a later run of the plan wrote to it'
            END;
        as_loaded := why_reread IS NULL;
    END IF;

    BEGIN
        IF as_loaded THEN
            PERFORM pg_catalog.set_config('search_path', migrate._caller_search_path(), true);
            EXECUTE 'SELECT ARRAY[pg_catalog.count(*)::numeric]' || from_s INTO s_arr;
            EXECUTE 'SELECT ' || (q->>'target_aggs')
                    || CASE WHEN rule_aggs = '' THEN '' ELSE ' || ARRAY[' || pg_catalog.substr(rule_aggs, 3) || ']' END
                    || from_t INTO t_arr;
            PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
            c_arr := ARRAY[rt.rows_written::numeric, rt.loaded_checksum];
            how := pg_catalog.format('compared with the rows as run %s wrote them (the source counted, not read again)',
                                     p_run.run_id);
        ELSE
            SELECT b.source_result, b.target_result, b.how INTO s_arr, t_arr, how
              FROM migrate._both_sides(src, 'SELECT ' || (q->>'source_aggs') || from_s,
                                       'SELECT ' || (q->>'target_aggs')
                                       || CASE WHEN rule_aggs = '' THEN '' ELSE ' || ARRAY[' || pg_catalog.substr(rule_aggs, 3) || ']' END
                                       || from_t,
                                       keys) b;
            c_arr := s_arr[1 : 2];
            IF why_reread IS NOT NULL THEN
                how := how || '; source read again: ' || why_reread;
            END IF;
        END IF;
        -- the checksum differs: which columns do
        IF NOT as_loaded AND s_arr[1 : 2] IS DISTINCT FROM t_arr[1 : 2] THEN
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
        RAISE EXCEPTION 'verifying table % of migration plan "%" failed: %', migrate._verify_relname(p_target), p_plan,
                        migrate._verify_mask_error(SQLERRM, ARRAY(SELECT pg_catalog.jsonb_array_elements_text(q->'sensitive'))::name[])
            USING ERRCODE = SQLSTATE,
                  DETAIL = pg_catalog.format('Source: %s.', tm.source),
                  HINT = 'Check that the source is reachable and that the plan''s expressions still apply to it.';
    END;

    -- row count
    INSERT INTO migrate.verification (run_id, target, check_name, source_value, target_value, ok, details)
    VALUES (p_run.run_id, p_target, 'row count', s_arr[1]::text, t_arr[1]::text, s_arr[1] = t_arr[1],
            'source rows' || coalesce(' where ' || tm.filter, '')
            || CASE WHEN keys IS NOT NULL
                    THEN pg_catalog.format('; %s key(s) rejected by run %s%s left out on both sides',
                                           pg_catalog.cardinality(keys), p_run.run_id,
                                           CASE WHEN p_run.mode = 'sync' OR EXISTS (
                                                    SELECT FROM migrate.reject j JOIN migrate.run jr USING (run_id)
                                                     WHERE j.target = p_target AND jr.mode = 'sync'
                                                       AND jr.plan = p_plan AND j.run_id <> p_run.run_id)
                                                THEN ' or by syncs' ELSE '' END)
                    ELSE '' END
            || CASE WHEN (q->>'in_flight')::integer > 0
                    THEN pg_catalog.format('; %s key(s) in flight left out on both sides', q->>'in_flight')
                    ELSE '' END)
    RETURNING verification_id INTO id;
    ids := ids || id;

    -- checksum of the mapped columns
    INSERT INTO migrate.verification (run_id, target, check_name, source_value, target_value, ok, details)
    VALUES (p_run.run_id, p_target, 'checksum',
            pg_catalog.left(pg_catalog.md5(c_arr::text), 16),
            pg_catalog.left(pg_catalog.md5(t_arr[1 : 2]::text), 16),
            c_arr = t_arr[1 : 2],
            CASE WHEN c_arr = t_arr[1 : 2] THEN pg_catalog.format('%s mapped columns match', n)
                 WHEN as_loaded THEN 'differs: the table changed since the run, or rows were lost or doubled;'
                                     ' migrate_verify(reread => true) names the columns, migrate_diff() the keys'
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
            -- a sensitive key shows as '***'; the rule is the owner's expression
            PERFORM pg_catalog.set_config('search_path', migrate._caller_search_path(), true);
            EXECUTE pg_catalog.format('SELECT pg_catalog.string_agg(k, '', '') FROM (SELECT %s AS k %s AND NOT coalesce((%s), false) ORDER BY %s LIMIT 5) x',
                                      CASE WHEN (q->>'key_sensitive')::boolean THEN '''***'''::text
                                           ELSE '(' || (q->>'target_key') || ')::text' END,
                                      q->>'target', rules.check_expr, q->>'target_key')
               INTO examples;
            PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
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
                                                     p_ref regclass, p_ref_columns name[], p_origin text,
                                                     p_trust_enforced boolean DEFAULT false)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    cond text;
    nonnull text;
    orphans bigint;
    examples text;
    keycols text;
    id bigint;
    run_plan text := (SELECT r.plan FROM migrate.run r WHERE r.run_id = p_run);
    check_name text;
    masked boolean := p_columns && migrate._sensitive_targets(run_plan, p_target)
                      OR p_ref_columns && migrate._sensitive_targets(run_plan, p_ref);
    enforced name;
BEGIN
    -- reread => false: a valid foreign key constraint of the target whose
    -- triggers are all enabled has no orphans (PostgreSQL checked them)
    IF p_trust_enforced THEN
        SELECT con.conname INTO enforced
          FROM pg_catalog.pg_constraint con
         WHERE con.contype = 'f' AND con.conrelid = p_target AND con.confrelid = p_ref AND con.convalidated
           AND ARRAY(SELECT a.attname FROM pg_catalog.unnest(con.conkey) WITH ORDINALITY k(n, o)
                       JOIN pg_catalog.pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.n
                      ORDER BY k.o) = p_columns
           AND ARRAY(SELECT a.attname FROM pg_catalog.unnest(con.confkey) WITH ORDINALITY k(n, o)
                       JOIN pg_catalog.pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.n
                      ORDER BY k.o) = p_ref_columns
           AND NOT EXISTS (SELECT FROM pg_catalog.pg_trigger tg WHERE tg.tgconstraint = con.oid AND tg.tgenabled = 'D')
         LIMIT 1;
    END IF;
    IF enforced IS NOT NULL THEN
        check_name := pg_catalog.format('foreign key (%s) -> %s (%s)', pg_catalog.array_to_string(p_columns, ', '),
                                        migrate._verify_relname(p_ref), pg_catalog.array_to_string(p_ref_columns, ', '));
        INSERT INTO migrate.verification (run_id, target, check_name, source_value, target_value, ok, details)
        VALUES (p_run, p_target, check_name, '0', '0', true,
                p_origin || pg_catalog.format('; constraint %I is valid and enforced, so PostgreSQL has checked every row:'
                                              ' not scanned again (reread => true scans for orphans)', enforced))
        RETURNING verification_id INTO id;
        RETURN id;
    END IF;
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
                                  CASE WHEN masked THEN '''***'''::text
                                       WHEN pg_catalog.cardinality(p_columns) = 1 THEN keycols || '::text'
                                       ELSE 'ROW(' || keycols || ')::text' END,
                                  keycols, p_target, nonnull, p_ref, cond, keycols) INTO examples;
    END IF;
    -- the referenced table named as the caller would name it
    check_name := pg_catalog.format('foreign key (%s) -> %s (%s)', pg_catalog.array_to_string(p_columns, ', '),
                                    migrate._verify_relname(p_ref), pg_catalog.array_to_string(p_ref_columns, ', '));
    INSERT INTO migrate.verification (run_id, target, check_name, source_value, target_value, ok, details)
    VALUES (p_run, p_target, check_name,
            '0', orphans::text, orphans = 0,
            p_origin || '; orphans: rows whose key has no referenced row'
            || coalesce('; missing references: ' || examples, ''))
    RETURNING verification_id INTO id;
    RETURN id;
END;
$$;

-- migrate_verify runs as the plan's owner (src/owner.c): its caller must be
-- a member of the owner; a superuser verifying alice's plan runs alice's
-- expressions as alice.  The body is migrate._migrate_verify.  stable_for
-- (since 0.6): a parallel run against a live source: the keys in flight
-- (changed within that window or not yet synced, migrate._in_flight) are
-- left out of every table's counts and checksums and reported as one
-- 'in flight' check a table.
CREATE OR REPLACE FUNCTION migrate_verify(plan text, run bigint DEFAULT NULL, stable_for interval DEFAULT NULL,
                                          reread boolean DEFAULT true)
RETURNS SETOF migrate.verification
LANGUAGE C VOLATILE
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'migrate_call_as_owner';

CREATE OR REPLACE FUNCTION migrate._migrate_verify(plan text, run bigint, stable_for interval, reread boolean)
RETURNS SETOF migrate.verification
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r migrate.run := migrate._verify_run(plan, run);
    t regclass;
    fk record;
    ids bigint[] := '{}';
    passed boolean;
    nfail bigint;
BEGIN
    IF stable_for < '0' THEN
        RAISE EXCEPTION 'stable_for of migrate_verify() must not be negative (got %)', stable_for
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Pass the time a change needs to reach the target, for example stable_for => ''30 seconds''.';
    END IF;
    -- every table of the run must still be mapped and have its source
    FOR t IN SELECT rt.target FROM migrate.run_table rt WHERE rt.run_id = r.run_id ORDER BY rt.load_order LOOP
        PERFORM migrate._verify_source(plan, t);
    END LOOP;
    FOR t IN SELECT rt.target FROM migrate.run_table rt WHERE rt.run_id = r.run_id ORDER BY rt.load_order LOOP
        ids := ids || migrate._verify_table(plan, r, t, stable_for, coalesce(reread, true));
    END LOOP;
    FOR fk IN SELECT * FROM migrate._verify_foreign_keys(plan, ARRAY(SELECT rt.target FROM migrate.run_table rt
                                                                     WHERE rt.run_id = r.run_id))
               ORDER BY target::text, columns, ref_target::text, ref_columns LOOP
        ids := ids || migrate._verify_foreign_key(r.run_id, fk.target, fk.columns, fk.ref_target,
                                                  fk.ref_columns, fk.origin, NOT coalesce(reread, true));
    END LOOP;
    SELECT bool_and(v.ok), count(*) FILTER (WHERE NOT v.ok) INTO passed, nfail
      FROM migrate.verification v WHERE v.verification_id = ANY (ids);
    passed := coalesce(passed, true);
    PERFORM migrate._catalog_verified(r.run_id, passed,
            pg_catalog.format('%s checks, %s failed', pg_catalog.cardinality(ids), nfail)
            || CASE WHEN stable_for IS NOT NULL
                    THEN pg_catalog.format(', keys in flight within %s left out', stable_for) ELSE '' END);
    RETURN QUERY SELECT * FROM migrate.verification v WHERE v.verification_id = ANY (ids)
                  ORDER BY v.verification_id;
END;
$$;
REVOKE ALL ON FUNCTION migrate._migrate_verify(text, bigint, interval, boolean) FROM PUBLIC;
