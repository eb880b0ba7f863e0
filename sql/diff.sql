/*
 * diff.sql: migrate_diff, the bisection over key ranges that finds the
 * keys whose rows differ (on the machinery of verify.sql).
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

-- Every statement below that carries the owner's expressions (a source's
-- column values and filter, a target's key) runs under the caller's
-- search_path (migrate._caller_search_path()), as whoever called
-- migrate_diff (the plan's owner); the functions' own SQL under their
-- pinned path.

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
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    key_type text := p_ctx->'key_types'->>(p_col - 1);
    inside text := pg_catalog.format('c > %L::%s AND c %s %L::%s', p_lo, key_type,
                                     CASE WHEN p_hi_incl THEN '<=' ELSE '<' END, p_hi, key_type);
    cuts text[];
    n integer;
    expr_path constant text := migrate._caller_search_path();
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
    PERFORM pg_catalog.set_config('search_path', expr_path, true);
    EXECUTE pg_catalog.format(
        'SELECT pg_catalog.array_agg(c::text ORDER BY c) FROM (SELECT DISTINCT c'
        '  FROM pg_catalog.unnest((SELECT pg_catalog.percentile_disc(ARRAY(SELECT g / 16.0 FROM pg_catalog.generate_series(1, 15) g))'
        '                                 WITHIN GROUP (ORDER BY k) FROM (SELECT %s AS k %s) x)) c) d WHERE %s',
        p_side_key, p_side_where, inside)
       INTO cuts USING p_keys;
    PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
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
SET search_path = pg_catalog, pg_temp
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
    expr_path constant text := migrate._caller_search_path();
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
                PERFORM pg_catalog.set_config('search_path', expr_path, true);
                EXECUTE pg_catalog.format('SELECT (SELECT %1$s %2$s ORDER BY 1 DESC LIMIT 1)', key_t, where_t)
                   INTO only_value USING p_keys;
                IF only_value IS NULL OR only_value = p_lo THEN
                    EXECUTE pg_catalog.format('SELECT (SELECT %1$s %2$s ORDER BY 1 DESC LIMIT 1)', key_s, where_s)
                       INTO source_top USING p_keys;
                    IF only_value IS NULL OR source_top > only_value THEN
                        only_value := source_top;
                    END IF;
                END IF;
                PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
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
    PERFORM pg_catalog.set_config('search_path', expr_path, true);
    RETURN QUERY EXECUTE pg_catalog.format(
        'SELECT (coalesce(s.k, t.k))::text,'
        '       CASE WHEN t.k IS NULL THEN ''missing'' WHEN s.k IS NULL THEN ''extra'' ELSE ''changed'' END,'
        '       CASE WHEN s.k IS NOT NULL AND t.k IS NOT NULL THEN'
        '            ARRAY(SELECT u.c FROM unnest($2::pg_catalog.name[], s.h, t.h) AS u(c, a, b)'
        '                   WHERE u.a IS DISTINCT FROM u.b) END'
        '  FROM (SELECT %s AS k, %s AS h %s) s'
        '  FULL JOIN (SELECT %s AS k, %s AS h %s) t ON s.k = t.k'
        ' WHERE s.k IS NULL OR t.k IS NULL OR s.h IS DISTINCT FROM t.h'
        ' ORDER BY coalesce(s.k, t.k)',
        p_ctx->>'source_key', p_ctx->>'source_hashes', where_s,
        p_ctx->>'target_key', p_ctx->>'target_hashes', where_t)
    USING p_keys, ARRAY(SELECT pg_catalog.jsonb_array_elements_text(p_ctx->'columns'))::name[];
    PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
END;
$$;

-- Bisect key column p_col within a prefix (see migrate._diff_range) from
-- the least to the greatest value either side holds.
CREATE OR REPLACE FUNCTION migrate._diff_walk(p_ctx jsonb, p_keys text[], p_prefix_s text, p_prefix_t text,
                                            p_col integer)
RETURNS TABLE (key text, kind text, columns name[])
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
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
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    key_s text := p_ctx->'key_sources'->>(p_col - 1);
    key_t text := p_ctx->'key_targets'->>(p_col - 1);
    lo_s p_lo%TYPE;
    hi_s p_lo%TYPE;
    lo_t p_lo%TYPE;
    hi_t p_lo%TYPE;
    expr_path constant text := migrate._caller_search_path();
BEGIN
    -- ORDER BY ... LIMIT 1, not min() and max(): some ordered types (uuid
    -- before PostgreSQL 16) have no such aggregates
    PERFORM pg_catalog.set_config('search_path', expr_path, true);
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
    PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
    p_lo := CASE WHEN lo_s IS NULL THEN lo_t WHEN lo_t IS NULL THEN lo_s ELSE least(lo_s, lo_t) END;
    p_hi := CASE WHEN hi_s IS NULL THEN hi_t WHEN hi_t IS NULL THEN hi_s ELSE greatest(hi_s, hi_t) END;
    IF p_lo IS NULL THEN
        RETURN;     -- both sides empty (a NULL in a key column is no key: not compared)
    END IF;
    RETURN QUERY SELECT * FROM migrate._diff_range(p_ctx, p_keys, p_prefix_s, p_prefix_t, p_col,
                                                   p_lo, true, p_hi, true, 0, NULL, NULL);
END;
$$;

-- migrate_diff runs as the plan's owner (src/owner.c), like migrate_verify;
-- the body is migrate._migrate_diff.  "table" is resolved under the
-- caller's search_path (migrate._table_map).  The keys of a table whose key
-- is sensitive are stored and shown as '***'.  stable_for (since 0.6): a
-- parallel run: keys in flight (migrate._in_flight) are left out of both
-- sides, so not reported; the diff's event says how many.
CREATE OR REPLACE FUNCTION migrate_diff(plan text, "table" text, run bigint DEFAULT NULL,
                                        leaf_rows integer DEFAULT 256, stable_for interval DEFAULT NULL)
RETURNS TABLE (diff_id bigint, key text, kind text, columns name[])
LANGUAGE C VOLATILE
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'migrate_call_as_owner';

CREATE OR REPLACE FUNCTION migrate._migrate_diff(plan text, "table" text, run bigint, leaf_rows integer,
                                                stable_for interval)
RETURNS TABLE (diff_id bigint, key text, kind text, columns name[])
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
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
                            tm.key[i], migrate._verify_relname(tm.target), tm.plan, key_type::regtype
                USING ERRCODE = 'feature_not_supported',
                      HINT = 'migrate_verify() checks such tables; to diff one, map it with a key of ordered types (integer, text, date, uuid ...).';
        END;
    END LOOP;
    r := migrate._verify_run(tm.plan, run);
    q := migrate._verify_sql(tm.plan, tm.target) || pg_catalog.jsonb_build_object('leaf_rows', leaf_rows);
    q := migrate._verify_sql_in_flight(tm.plan, tm.target, stable_for, q);
    keys := migrate._rejected_keys(r.run_id, tm.target, q->>'key_type');
    id := pg_catalog.nextval('migrate.diff_id_seq');
    BEGIN
        WITH d AS (SELECT * FROM migrate._diff_walk(q, keys, '', '', 1)),
             i AS (INSERT INTO migrate.diff_result (diff_id, plan, run_id, target, key, kind, columns)
                   SELECT id, tm.plan, r.run_id, tm.target,
                          CASE WHEN (q->>'key_sensitive')::boolean THEN '***' ELSE d.key END,
                          d.kind, d.columns FROM d WHERE d.kind IS NOT NULL)
        SELECT count(*) FILTER (WHERE d.key = 'range'), count(*) FILTER (WHERE d.key = 'statement')
          INTO ranges, statements FROM d WHERE d.kind IS NULL;
    EXCEPTION WHEN OTHERS THEN
        RAISE EXCEPTION 'diffing table % of migration plan "%" failed: %', migrate._verify_relname(tm.target), tm.plan,
                        migrate._verify_mask_error(SQLERRM, ARRAY(SELECT pg_catalog.jsonb_array_elements_text(q->'sensitive'))::name[])
            USING ERRCODE = SQLSTATE,
                  DETAIL = pg_catalog.format('Source: %s.', tm.source),
                  HINT = 'Check that the source is reachable and that the plan''s expressions still apply to it.';
    END;
    PERFORM migrate._catalog_event(r.run_id, tm.plan, 'diff',
           (SELECT pg_catalog.format('diff %s of table %s: %s missing, %s extra, %s changed; %s key ranges compared by %s statements a side',
                             id, migrate._verify_relname(tm.target), count(*) FILTER (WHERE d.kind = 'missing'),
                             count(*) FILTER (WHERE d.kind = 'extra'), count(*) FILTER (WHERE d.kind = 'changed'),
                             ranges, statements)
                   || CASE WHEN q ? 'in_flight'
                           THEN pg_catalog.format('; %s key(s) in flight left out (%s)', q->>'in_flight', q->>'in_flight_how')
                           ELSE '' END
              FROM migrate.diff_result d WHERE d.diff_id = id));
    RETURN QUERY SELECT d.diff_id, d.key, d.kind, d.columns FROM migrate.diff_result d
                  WHERE d.diff_id = id ORDER BY d.result_id;
END;
$$;
REVOKE ALL ON FUNCTION migrate._migrate_diff(text, text, bigint, integer, interval) FROM PUBLIC;
