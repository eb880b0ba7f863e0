/*
 * cutover.sql: blue-green cutover (DESIGN.md "Strategies"): the swap of a
 * plan's shadow schema into its live schema and its reverse, which
 * src/cutover.c (migrate_cutover(), the fence, the verify gate, the locks)
 * calls under the live tables' locks.  Every function pins search_path.
 */

-- ==== the swap ====
--
-- The swap of a blue-green plan (HELPERS.md "The swap's contract"): its
-- targets, all in the shadow schema (plan.target_schema), replace the live
-- schema (options->>'cutover_into') by two schema renames, and what a
-- rename does not carry is carried over: grants, sequence positions, views
-- of other schemas over the live tables, and foreign keys of other schemas'
-- tables to them.  src/cutover.c calls these through fmgr, as the plan's
-- owner, under the live tables' locks; they run as their caller; the swap
-- and its reverse are revoked from PUBLIC.  Names go through %I / regclass output; the only SQL
-- text they execute besides their own is what pg_get_viewdef() and
-- pg_get_constraintdef() print of the catalog at the time (search_path
-- pinned to pg_catalog, pg_temp: every other name comes out qualified, so
-- a text taken before a rename names the schema, not the object, and
-- resolves to the new tables once it is re-executed after the renames).
-- Operators are plain: pg_catalog is searched first.

-- The targets of a blue-green plan with their live counterparts (live
-- NULL when the live schema lacks the name; live_name is the name the
-- target takes, schema-qualified).  Refuses a plan without cutover_into
-- (22023), a target outside the shadow schema (22023), a missing shadow
-- schema (3F000), and a caller who does not own both schemas or may not
-- rename schemas in the database (42501).
CREATE OR REPLACE FUNCTION migrate._cutover_pairs(plan text)
RETURNS TABLE (shadow regclass, live regclass, live_name text)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    pl migrate.plan := migrate._plan(plan);
    live_s name := pl.options ->> 'cutover_into';
    shadow_ns oid;
    live_ns oid;
    bad text;
BEGIN
    IF live_s IS NULL OR live_s = '' THEN
        RAISE EXCEPTION 'migration plan "%" has no cutover_into option', pl.plan_name
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'A blue-green plan names its live schema: migrate_plan(..., options => ''{"cutover_into": "<live schema>"}''); its target_schema is the shadow.';
    END IF;
    IF live_s = pl.target_schema THEN
        RAISE EXCEPTION 'migration plan "%" would cut schema "%" over into itself', pl.plan_name, live_s
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'target_schema is the shadow schema the plan loads; cutover_into names the live schema it replaces.';
    END IF;
    SELECT n.oid INTO shadow_ns FROM pg_namespace n WHERE n.nspname = pl.target_schema;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'shadow schema "%" of migration plan "%" does not exist', pl.target_schema, pl.plan_name
            USING ERRCODE = 'invalid_schema_name';
    END IF;
    SELECT n.oid INTO live_ns FROM pg_namespace n WHERE n.nspname = live_s;
    SELECT string_agg(pg_catalog.format('"%s"', n.nspname), ', ' ORDER BY n.nspname) INTO bad
      FROM pg_namespace n
     WHERE n.oid IN (shadow_ns, live_ns) AND NOT pg_has_role(n.nspowner, 'USAGE');
    IF bad IS NOT NULL THEN
        RAISE EXCEPTION 'role "%" must own schema % to cut migration plan "%" over', current_user, bad, pl.plan_name
            USING ERRCODE = 'insufficient_privilege',
                  HINT = pg_catalog.format('A cutover runs as the plan''s owner, which must own (or be a member of the owner of) the live schema "%s" and the shadow schema "%s".',
                                           live_s, pl.target_schema);
    END IF;
    IF NOT has_database_privilege(current_database(), 'CREATE') THEN
        RAISE EXCEPTION 'role "%" may not rename schemas in database "%"', current_user, current_database()
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'Renaming a schema needs CREATE on the database: GRANT CREATE ON DATABASE to the plan''s owner.';
    END IF;
    SELECT string_agg(m.target::text, ', ' ORDER BY m.target::text) INTO bad
      FROM migrate.table_map m JOIN pg_class c ON c.oid = m.target
     WHERE m.plan = pl.plan_name AND c.relnamespace <> shadow_ns;
    IF bad IS NOT NULL THEN
        RAISE EXCEPTION 'target % of migration plan "%" is not in its shadow schema "%"', bad, pl.plan_name, pl.target_schema
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'A blue-green plan loads only tables of its target_schema, which the cutover renames as a whole.';
    END IF;
    RETURN QUERY
        SELECT c.oid::regclass, lc.oid::regclass, pg_catalog.format('%I.%I', live_s, c.relname)
          FROM migrate.table_map m
          JOIN pg_class c ON c.oid = m.target
          LEFT JOIN pg_class lc ON lc.relnamespace = live_ns AND lc.relname = c.relname
                               AND lc.relkind IN ('r', 'p')
         WHERE m.plan = pl.plan_name
         ORDER BY c.relname;
END;
$$;
-- Not revoked from PUBLIC: _cutover_swap() calls it through SQL as the
-- plan's owner, and it is safe for any caller (it reads the caller's plan,
-- under row-level security, and pg_catalog; it changes nothing).

-- The views and materialized views (relkind 'm') of schemas other than
-- p_skip that use the tables p_tables directly, each view after the views
-- of that set it uses (depth), with its definition as it is now (names
-- schema-qualified: search_path is pg_catalog).  For the swap and its
-- reverse; it only reads the catalog, so PUBLIC may execute it (they call
-- it through SQL as the plan's owner).
CREATE OR REPLACE FUNCTION migrate._cutover_views(p_tables oid[], p_skip oid[])
RETURNS TABLE (oid oid, vname text, relkind "char", relowner oid, reloptions text[], def text, depth integer)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    WITH RECURSIVE direct AS (
        SELECT DISTINCT rw.ev_class AS v
          FROM pg_depend d
          JOIN pg_rewrite rw ON rw.oid = d.objid
          JOIN pg_class vc ON vc.oid = rw.ev_class
         WHERE d.classid = 'pg_rewrite'::regclass AND d.refclassid = 'pg_class'::regclass
           AND d.refobjid = ANY (p_tables) AND rw.ev_class <> d.refobjid
           AND vc.relkind IN ('v', 'm') AND vc.relnamespace <> ALL (p_skip)
    ), uses AS (
        SELECT DISTINCT rw.ev_class AS a, d.refobjid AS b
          FROM pg_depend d JOIN pg_rewrite rw ON rw.oid = d.objid
         WHERE d.classid = 'pg_rewrite'::regclass AND d.refclassid = 'pg_class'::regclass
           AND rw.ev_class IN (SELECT direct.v FROM direct) AND d.refobjid IN (SELECT direct.v FROM direct)
           AND rw.ev_class <> d.refobjid
    ), lvl AS (
        SELECT direct.v, 0 AS depth FROM direct
        UNION ALL
        SELECT uses.a, lvl.depth + 1 FROM lvl JOIN uses ON uses.b = lvl.v
    )
    SELECT vc.oid, vc.oid::regclass::text, vc.relkind, vc.relowner, vc.reloptions,
           CASE WHEN vc.relkind = 'v' THEN pg_get_viewdef(vc.oid, true) END, o.depth
      FROM (SELECT lvl.v, max(lvl.depth) AS depth FROM lvl GROUP BY lvl.v) o
      JOIN pg_class vc ON vc.oid = o.v
$$;

-- The swap (precondition: the caller holds EXCLUSIVE locks on the live
-- tables, in this transaction): renames the live schema to retired and the
-- shadow to live, then carries over grants, sequence positions, views and
-- foreign keys of other schemas.  Everything it needs is read before the
-- renames and checked (ownership, materialized views, locks) before
-- anything changes; an error leaves the transaction to roll back.  Returns
-- the record _cutover_unswap() reverses it from (migrate.cutover.carried).
CREATE OR REPLACE FUNCTION migrate._cutover_swap(plan text, retired name)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    pl migrate.plan := migrate._plan(plan);
    live_s name := pl.options ->> 'cutover_into';
    shadow_s name := pl.target_schema;
    live_ns oid;
    shadow_ns oid;
    tabs jsonb;
    old_oids oid[];
    grants jsonb := '[]';
    seqs jsonb := '[]';
    views jsonb := '[]';
    fks jsonb := '[]';
    left_rel jsonb := '[]';
    bad text;
    r record;
    g record;
    e jsonb;
    opts text;
    mx bigint;
    old_last bigint;
    new_last bigint;
    to_val bigint;
    st text;
    msg text;
BEGIN
    SELECT jsonb_agg(jsonb_build_object(
               'name', c.relname,
               'new_oid', p.shadow::oid::bigint, 'new_table', p.live_name,
               'old_oid', p.live::oid::bigint,
               'old_table', CASE WHEN p.live IS NOT NULL AND retired IS NOT NULL
                                 THEN pg_catalog.format('%I.%I', retired, c.relname) END)
             ORDER BY c.relname),
           coalesce(array_agg(p.live::oid) FILTER (WHERE p.live IS NOT NULL), '{}')
      INTO tabs, old_oids
      FROM migrate._cutover_pairs(pl.plan_name) p JOIN pg_class c ON c.oid = p.shadow;
    IF tabs IS NULL THEN
        RAISE EXCEPTION 'migration plan "%" has no tables to cut over', pl.plan_name
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Map the tables of the shadow schema with migrate_table().';
    END IF;
    shadow_ns := (SELECT n.oid FROM pg_namespace n WHERE n.nspname = shadow_s);
    live_ns := (SELECT n.oid FROM pg_namespace n WHERE n.nspname = live_s);

    -- no live schema yet: the shadow becomes it, nothing to carry over
    IF live_ns IS NULL THEN
        EXECUTE pg_catalog.format('ALTER SCHEMA %I RENAME TO %I', shadow_s, live_s);
        RETURN jsonb_build_object('plan', pl.plan_name, 'live_schema', live_s, 'shadow_schema', shadow_s,
                                  'shadow_schema_oid', shadow_ns::bigint,
                                  'retired_schema', NULL, 'retired_schema_oid', NULL,
                                  'tables', tabs, 'grants', grants, 'sequences', seqs, 'views', views,
                                  'foreign_keys', fks, 'left_in_retired', left_rel);
    END IF;

    IF retired IS NULL OR retired = '' THEN
        RAISE EXCEPTION 'the swap of migration plan "%" needs a name for the retired schema', pl.plan_name
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = pg_catalog.format('The live schema "%s" is renamed to it.', live_s);
    END IF;
    IF EXISTS (SELECT FROM pg_namespace n WHERE n.nspname = retired) THEN
        RAISE EXCEPTION 'schema "%" already exists', retired
            USING ERRCODE = 'duplicate_schema',
                  HINT = pg_catalog.format('The live schema "%s" is renamed to the retired schema: choose another name, or drop the old one.', live_s);
    END IF;
    SELECT string_agg(t.o::regclass::text, ', ' ORDER BY t.o::regclass::text) INTO bad
      FROM unnest(old_oids) t(o)
     WHERE NOT EXISTS (SELECT FROM pg_locks l
                        WHERE l.locktype = 'relation' AND l.pid = pg_backend_pid() AND l.granted
                          AND l.database = (SELECT d.oid FROM pg_database d WHERE d.datname = current_database())
                          AND l.relation = t.o AND l.mode IN ('ExclusiveLock', 'AccessExclusiveLock'));
    IF bad IS NOT NULL THEN
        RAISE EXCEPTION 'live table % is not locked for the swap of migration plan "%"', bad, pl.plan_name
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'The swap runs under EXCLUSIVE locks on the live tables, taken in the same transaction (migrate_cutover() takes them).';
    END IF;

    -- what points in from other schemas: materialized views are refused
    SELECT string_agg(u.vname, ', ' ORDER BY u.vname) INTO bad
      FROM migrate._cutover_views(old_oids, ARRAY[live_ns, shadow_ns]) u WHERE u.relkind = 'm';
    IF bad IS NOT NULL THEN
        RAISE EXCEPTION 'materialized view % uses the live tables of schema "%"', bad, live_s
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'A cutover cannot re-point a materialized view: drop it before the cutover and create it again after.';
    END IF;
    -- views using the live tables directly, each after the views it uses;
    -- their text is taken now, naming live_s.table
    FOR r IN
        SELECT u.oid, u.vname, u.relowner, u.reloptions, u.def
          FROM migrate._cutover_views(old_oids, ARRAY[live_ns, shadow_ns]) u WHERE u.relkind = 'v'
         ORDER BY u.depth, u.vname
    LOOP
        IF NOT pg_has_role(r.relowner, 'USAGE') THEN
            RAISE EXCEPTION 'role "%" must own view % to re-point it at the new tables of schema "%"', current_user, r.vname, live_s
                USING ERRCODE = 'insufficient_privilege',
                      HINT = 'Make the plan''s owner a member of the view''s owner, or drop the view before the cutover and create it again after.';
        END IF;
        views := views || jsonb_build_array(jsonb_build_object(
                     'oid', r.oid::bigint, 'view', r.vname,
                     'options', to_jsonb(coalesce(r.reloptions, '{}')), 'definition', r.def));
    END LOOP;
    -- foreign keys of other schemas' tables to the live tables
    FOR r IN
        SELECT c.conname, c.conrelid, c.conrelid::regclass::text AS tname, tc.relowner, c.convalidated,
               pg_get_constraintdef(c.oid) AS def, c.confrelid::regclass::text AS refname
          FROM pg_constraint c JOIN pg_class tc ON tc.oid = c.conrelid
         WHERE c.contype = 'f' AND c.confrelid = ANY (old_oids) AND c.conparentid = 0
           AND tc.relnamespace NOT IN (live_ns, shadow_ns)
         ORDER BY 3, 1
    LOOP
        IF NOT pg_has_role(r.relowner, 'USAGE') THEN
            RAISE EXCEPTION 'role "%" must own table % to re-point its foreign key "%" at the new tables of schema "%"',
                            current_user, r.tname, r.conname, live_s
                USING ERRCODE = 'insufficient_privilege',
                      HINT = 'Make the plan''s owner a member of the table''s owner, or drop the foreign key before the cutover and add it again after.';
        END IF;
        fks := fks || jsonb_build_array(jsonb_build_object(
                   'table', r.tname, 'table_oid', r.conrelid::bigint, 'name', r.conname,
                   'references', r.refname,
                   'definition_before', r.def, 'validated_before', r.convalidated,
                   'definition', regexp_replace(r.def, '\s+NOT VALID$', '') || ' NOT VALID',
                   'validate', pg_catalog.format('ALTER TABLE %s VALIDATE CONSTRAINT %I', r.tname, r.conname)));
    END LOOP;

    -- the locks the DDL below takes on objects outside the two schemas,
    -- taken before anything changes (a writer of a referencing table that
    -- waits for a live table would otherwise deadlock with the swap; here
    -- the caller's lock_timeout applies and nothing is renamed yet)
    FOR e IN SELECT x.e FROM jsonb_array_elements(views || fks) AS x(e)
    LOOP
        EXECUTE pg_catalog.format('LOCK TABLE %s IN ACCESS EXCLUSIVE MODE',
                                  coalesce(e ->> 'oid', e ->> 'table_oid')::oid::regclass);
    END LOOP;

    EXECUTE pg_catalog.format('ALTER SCHEMA %I RENAME TO %I', live_s, retired);
    EXECUTE pg_catalog.format('ALTER SCHEMA %I RENAME TO %I', shadow_s, live_s);

    -- grants: what the live tables, their columns and the live schema
    -- granted that the new ones do not (the old owner's rights included,
    -- as grants: ownership stays with the new tables' owner)
    FOR r IN
        WITH t AS (
            SELECT x.new_oid, x.old_oid FROM jsonb_to_recordset(tabs) AS x(new_oid oid, old_oid oid)
             WHERE x.old_oid IS NOT NULL
        ), lv AS (
            SELECT 'table' AS kind, t.new_oid AS obj, NULL::name AS col, a.grantee, a.privilege_type AS priv,
                   bool_or(a.is_grantable) AS grantable
              FROM t JOIN pg_class oc ON oc.oid = t.old_oid
             CROSS JOIN LATERAL aclexplode(coalesce(oc.relacl, acldefault('r', oc.relowner))) a
             GROUP BY 1, 2, 3, 4, 5
            UNION ALL
            SELECT 'column', t.new_oid, oa.attname, a.grantee, a.privilege_type, bool_or(a.is_grantable)
              FROM t JOIN pg_attribute oa ON oa.attrelid = t.old_oid AND oa.attnum > 0
                                        AND NOT oa.attisdropped AND oa.attacl IS NOT NULL
              JOIN pg_attribute na ON na.attrelid = t.new_oid AND na.attname = oa.attname AND NOT na.attisdropped
             CROSS JOIN LATERAL aclexplode(oa.attacl) a
             GROUP BY 1, 2, 3, 4, 5
            UNION ALL
            SELECT 'schema', shadow_ns, NULL, a.grantee, a.privilege_type, bool_or(a.is_grantable)
              FROM pg_namespace n
             CROSS JOIN LATERAL aclexplode(coalesce(n.nspacl, acldefault('n', n.nspowner))) a
             WHERE n.oid = live_ns
             GROUP BY 1, 2, 3, 4, 5
        ), sh AS (
            SELECT 'table' AS kind, t.new_oid AS obj, NULL::name AS col, a.grantee, a.privilege_type AS priv,
                   bool_or(a.is_grantable) AS grantable
              FROM t JOIN pg_class nc ON nc.oid = t.new_oid
             CROSS JOIN LATERAL aclexplode(coalesce(nc.relacl, acldefault('r', nc.relowner))) a
             GROUP BY 1, 2, 3, 4, 5
            UNION ALL
            SELECT 'column', t.new_oid, na.attname, a.grantee, a.privilege_type, bool_or(a.is_grantable)
              FROM t JOIN pg_attribute na ON na.attrelid = t.new_oid AND na.attnum > 0
                                        AND NOT na.attisdropped AND na.attacl IS NOT NULL
             CROSS JOIN LATERAL aclexplode(na.attacl) a
             GROUP BY 1, 2, 3, 4, 5
            UNION ALL
            SELECT 'schema', shadow_ns, NULL, a.grantee, a.privilege_type, bool_or(a.is_grantable)
              FROM pg_namespace n
             CROSS JOIN LATERAL aclexplode(coalesce(n.nspacl, acldefault('n', n.nspowner))) a
             WHERE n.oid = shadow_ns
             GROUP BY 1, 2, 3, 4, 5
        )
        SELECT lv.kind, lv.obj, lv.col, lv.grantee, lv.priv, lv.grantable, sh.grantee IS NOT NULL AS had,
               CASE lv.kind WHEN 'schema' THEN pg_catalog.format('SCHEMA %I', live_s)
                            ELSE 'TABLE ' || lv.obj::regclass::text END AS target,
               CASE WHEN lv.grantee = 0 THEN NULL ELSE pg_get_userbyid(lv.grantee) END AS rolname
          FROM lv
          LEFT JOIN sh ON sh.kind = lv.kind AND sh.obj = lv.obj AND sh.col IS NOT DISTINCT FROM lv.col
                      AND sh.grantee = lv.grantee AND sh.priv = lv.priv
         WHERE (sh.grantee IS NULL OR (lv.grantable AND NOT sh.grantable))
           AND lv.grantee <> CASE lv.kind WHEN 'schema' THEN (SELECT n.nspowner FROM pg_namespace n WHERE n.oid = lv.obj)
                                          ELSE (SELECT c.relowner FROM pg_class c WHERE c.oid = lv.obj) END
         ORDER BY lv.kind DESC, lv.obj::regclass::text, lv.col, 9 NULLS FIRST, lv.priv
    LOOP
        EXECUTE pg_catalog.format('GRANT %s%s ON %s TO %s%s', r.priv,
                                  CASE WHEN r.col IS NOT NULL THEN pg_catalog.format(' (%I)', r.col) ELSE '' END,
                                  r.target, coalesce(quote_ident(r.rolname), 'PUBLIC'),
                                  CASE WHEN r.grantable THEN ' WITH GRANT OPTION' ELSE '' END);
        grants := grants || jsonb_build_array(jsonb_build_object(
                      'on', r.kind, 'oid', r.obj::bigint,
                      'name', CASE r.kind WHEN 'schema' THEN live_s::text ELSE r.obj::regclass::text END,
                      'column', r.col, 'grantee', r.rolname, 'privilege', r.priv,
                      'grant_option', r.grantable, 'grant_option_only', r.had));
    END LOOP;

    -- views, again, now naming the new tables
    FOR e IN SELECT v.e FROM jsonb_array_elements(views) WITH ORDINALITY AS v(e, i) ORDER BY v.i
    LOOP
        opts := (SELECT ' WITH (' || string_agg(pg_catalog.format('%I = %L', split_part(o.o, '=', 1),
                                                                   substr(o.o, strpos(o.o, '=') + 1)), ', ') || ')'
                   FROM jsonb_array_elements_text(e -> 'options') AS o(o));
        BEGIN
            EXECUTE pg_catalog.format('CREATE OR REPLACE VIEW %s%s AS %s', (e ->> 'oid')::oid::regclass,
                                      coalesce(opts, ''), regexp_replace(e ->> 'definition', ';\s*$', ''));
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT;
            RAISE EXCEPTION 'view % does not fit the new tables of schema "%": %', e ->> 'view', live_s, msg
                USING ERRCODE = st,
                      HINT = 'The view''s columns must stay as they are (new ones may follow): change or drop the view before the cutover, or keep the columns it uses in the shadow tables.';
        END;
    END LOOP;

    -- foreign keys, again, now referencing the new tables, NOT VALID (no
    -- scan under the locks: VALIDATE CONSTRAINT afterwards does not block
    -- writers)
    FOR e IN SELECT f.e FROM jsonb_array_elements(fks) WITH ORDINALITY AS f(e, i) ORDER BY f.i
    LOOP
        BEGIN
            EXECUTE pg_catalog.format('ALTER TABLE %s DROP CONSTRAINT %I', (e ->> 'table_oid')::oid::regclass, e ->> 'name');
            EXECUTE pg_catalog.format('ALTER TABLE %s ADD CONSTRAINT %I %s', (e ->> 'table_oid')::oid::regclass,
                                      e ->> 'name', e ->> 'definition');
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT;
            RAISE EXCEPTION 'foreign key "%" of table % does not fit the new tables of schema "%": %',
                            e ->> 'name', e ->> 'table', live_s, msg
                USING ERRCODE = st,
                      HINT = 'The referenced columns must keep a unique constraint in the shadow tables; or drop the foreign key before the cutover and add it again after.';
        END;
    END LOOP;

    -- sequences: each integer column of a new table fed by a sequence
    -- (identity, default or owned) continues beyond its max and beyond the
    -- old table's sequence of the same column.  Last, after what can fail:
    -- setval() is not rolled back with a refused swap.
    FOR r IN
        SELECT x.name, x.new_oid, x.old_oid, a.attname, ns.seq AS new_seq, os.seq AS old_seq
          FROM jsonb_to_recordset(tabs) AS x(name name, new_oid oid, old_oid oid)
          JOIN pg_attribute a ON a.attrelid = x.new_oid AND a.attnum > 0 AND NOT a.attisdropped
                             AND a.atttypid IN ('int2'::regtype, 'int4'::regtype, 'int8'::regtype)
          CROSS JOIN LATERAL (
              SELECT q.seq FROM (
                  SELECT d.objid AS seq, CASE d.deptype WHEN 'i' THEN 0 ELSE 2 END AS pri
                    FROM pg_depend d
                   WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass
                     AND d.refobjid = x.new_oid AND d.refobjsubid = a.attnum AND d.deptype IN ('a', 'i')
                  UNION ALL
                  SELECT d.refobjid, 1
                    FROM pg_attrdef ad
                    JOIN pg_depend d ON d.classid = 'pg_attrdef'::regclass AND d.objid = ad.oid
                                    AND d.refclassid = 'pg_class'::regclass
                   WHERE ad.adrelid = x.new_oid AND ad.adnum = a.attnum) q
                JOIN pg_class s ON s.oid = q.seq AND s.relkind = 'S'
               ORDER BY q.pri LIMIT 1) ns
          LEFT JOIN pg_attribute oa ON oa.attrelid = x.old_oid AND oa.attname = a.attname AND NOT oa.attisdropped
          LEFT JOIN LATERAL (
              SELECT q.seq FROM (
                  SELECT d.objid AS seq, CASE d.deptype WHEN 'i' THEN 0 ELSE 2 END AS pri
                    FROM pg_depend d
                   WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass
                     AND d.refobjid = oa.attrelid AND d.refobjsubid = oa.attnum AND d.deptype IN ('a', 'i')
                  UNION ALL
                  SELECT d.refobjid, 1
                    FROM pg_attrdef ad
                    JOIN pg_depend d ON d.classid = 'pg_attrdef'::regclass AND d.objid = ad.oid
                                    AND d.refclassid = 'pg_class'::regclass
                   WHERE ad.adrelid = oa.attrelid AND ad.adnum = oa.attnum) q
                JOIN pg_class s ON s.oid = q.seq AND s.relkind = 'S'
               ORDER BY q.pri LIMIT 1) os ON true
         ORDER BY x.name, a.attnum
    LOOP
        EXECUTE pg_catalog.format('SELECT max(%I)::bigint FROM %s', r.attname, r.new_oid::regclass) INTO mx;
        new_last := pg_sequence_last_value(r.new_seq::regclass);
        old_last := CASE WHEN r.old_seq IS NOT NULL THEN pg_sequence_last_value(r.old_seq::regclass) END;
        to_val := greatest(mx, old_last, new_last);
        IF to_val < (SELECT s.seqmin FROM pg_sequence s WHERE s.seqrelid = r.new_seq)
           OR (SELECT s.seqincrement FROM pg_sequence s WHERE s.seqrelid = r.new_seq) < 0 THEN
            to_val := NULL;     -- nextval's first value is beyond already
        END IF;
        IF to_val IS NOT NULL THEN
            PERFORM setval(r.new_seq::regclass, to_val, true);
        END IF;
        -- the old sequence's grants too (a serial column's inserts need USAGE)
        FOR g IN
            WITH lv AS (
                SELECT a.grantee, a.privilege_type AS priv, bool_or(a.is_grantable) AS grantable
                  FROM pg_class oc CROSS JOIN LATERAL aclexplode(coalesce(oc.relacl, acldefault('s', oc.relowner))) a
                 WHERE oc.oid = r.old_seq GROUP BY 1, 2
            ), sh AS (
                SELECT a.grantee, a.privilege_type AS priv, bool_or(a.is_grantable) AS grantable
                  FROM pg_class nc CROSS JOIN LATERAL aclexplode(coalesce(nc.relacl, acldefault('s', nc.relowner))) a
                 WHERE nc.oid = r.new_seq GROUP BY 1, 2
            )
            SELECT lv.grantee, lv.priv, lv.grantable, sh.grantee IS NOT NULL AS had,
                   CASE WHEN lv.grantee = 0 THEN NULL ELSE pg_get_userbyid(lv.grantee) END AS rolname
              FROM lv LEFT JOIN sh ON sh.grantee = lv.grantee AND sh.priv = lv.priv
             WHERE (sh.grantee IS NULL OR (lv.grantable AND NOT sh.grantable))
               AND lv.grantee <> (SELECT c.relowner FROM pg_class c WHERE c.oid = r.new_seq)
               AND r.old_seq <> r.new_seq
             ORDER BY 5 NULLS FIRST, 2
        LOOP
            EXECUTE pg_catalog.format('GRANT %s ON SEQUENCE %s TO %s%s', g.priv, r.new_seq::regclass,
                                      coalesce(quote_ident(g.rolname), 'PUBLIC'),
                                      CASE WHEN g.grantable THEN ' WITH GRANT OPTION' ELSE '' END);
            grants := grants || jsonb_build_array(jsonb_build_object(
                          'on', 'sequence', 'oid', r.new_seq::bigint, 'name', r.new_seq::regclass::text,
                          'column', NULL, 'grantee', g.rolname, 'privilege', g.priv,
                          'grant_option', g.grantable, 'grant_option_only', g.had));
        END LOOP;
        seqs := seqs || jsonb_build_array(jsonb_build_object(
                    'table', r.new_oid::regclass::text, 'table_oid', r.new_oid::bigint, 'column', r.attname,
                    'sequence', r.new_seq::regclass::text, 'sequence_oid', r.new_seq::bigint,
                    'old_sequence', r.old_seq::regclass::text, 'old_sequence_oid', r.old_seq::bigint,
                    'max', mx, 'old_value', old_last, 'new_value_before', new_last, 'set_to', to_val));
    END LOOP;

    -- what stays behind: relations of the live schema the shadow had no
    -- name for, with what outside the retired schema still uses them (a
    -- default's sequence, a view, a foreign key): dropping the retired
    -- schema with CASCADE would take those along
    SELECT coalesce(jsonb_agg(jsonb_build_object('name', pg_catalog.format('%I.%I', retired, c.relname),
                                                 'kind', CASE c.relkind WHEN 'r' THEN 'table' WHEN 'p' THEN 'table'
                                                         WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view'
                                                         WHEN 'S' THEN 'sequence' WHEN 'f' THEN 'foreign table' END,
                                                 'used_by', (
                SELECT coalesce(jsonb_agg(DISTINCT u.rel::regclass::text ORDER BY u.rel::regclass::text), '[]')
                  FROM (SELECT ad.adrelid AS rel
                          FROM pg_depend d JOIN pg_attrdef ad ON ad.oid = d.objid
                         WHERE d.classid = 'pg_attrdef'::regclass AND d.refclassid = 'pg_class'::regclass
                           AND d.refobjid = c.oid
                        UNION
                        SELECT rw.ev_class
                          FROM pg_depend d JOIN pg_rewrite rw ON rw.oid = d.objid
                         WHERE d.classid = 'pg_rewrite'::regclass AND d.refclassid = 'pg_class'::regclass
                           AND d.refobjid = c.oid
                        UNION
                        SELECT co.conrelid
                          FROM pg_depend d JOIN pg_constraint co ON co.oid = d.objid
                         WHERE d.classid = 'pg_constraint'::regclass AND d.refclassid = 'pg_class'::regclass
                           AND d.refobjid = c.oid) u
                  JOIN pg_class uc ON uc.oid = u.rel
                 WHERE uc.relnamespace <> live_ns))
                              ORDER BY c.relname), '[]')
      INTO left_rel
      FROM pg_class c
     WHERE c.relnamespace = live_ns AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
       AND NOT EXISTS (SELECT FROM pg_class s WHERE s.relnamespace = shadow_ns AND s.relname = c.relname);

    RETURN jsonb_build_object('plan', pl.plan_name, 'live_schema', live_s, 'shadow_schema', shadow_s,
                              'shadow_schema_oid', shadow_ns::bigint,
                              'retired_schema', retired, 'retired_schema_oid', live_ns::bigint,
                              'tables', tabs, 'grants', grants, 'sequences', seqs, 'views', views,
                              'foreign_keys', fks, 'left_in_retired', left_rel);
END;
$$;
REVOKE ALL ON FUNCTION migrate._cutover_swap(text, name) FROM PUBLIC;

-- The reverse of a swap, from the record _cutover_swap() returned
-- (precondition: the caller holds EXCLUSIVE locks on the current live
-- tables, the swap's new ones, in this transaction): revokes the grants
-- the swap added, renames live back to shadow and retired back to live,
-- re-points the views and foreign keys of other schemas that use the new
-- tables at the old ones (a foreign key valid before the swap is validated
-- again; one added since, or not valid before, comes back NOT VALID), and
-- sets each old sequence beyond what the new tables issued meanwhile.
-- Objects are found by the OIDs of the record, checked against the
-- catalog; the SQL it runs is its own and the catalog's, never the
-- record's.
CREATE OR REPLACE FUNCTION migrate._cutover_unswap(carried jsonb)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    live_s name := carried ->> 'live_schema';
    shadow_s name := carried ->> 'shadow_schema';
    retired_s name := carried ->> 'retired_schema';
    new_ns oid := (carried ->> 'shadow_schema_oid')::oid;
    old_ns oid := (carried ->> 'retired_schema_oid')::oid;
    new_oids oid[];
    old_oids oid[];
    views jsonb := '[]';
    fks jsonb := '[]';
    revoked jsonb := '[]';
    seqs jsonb := '[]';
    bad text;
    r record;
    e jsonb;
    opts text;
    st text;
    msg text;
    mx bigint;
    old_last bigint;
    new_last bigint;
    to_val bigint;
BEGIN
    IF live_s IS NULL OR shadow_s IS NULL OR new_ns IS NULL
       OR jsonb_typeof(carried -> 'tables') IS DISTINCT FROM 'array'
       OR (retired_s IS NULL) <> (old_ns IS NULL) THEN
        RAISE EXCEPTION 'the record of the swap to reverse is incomplete'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Pass what _cutover_swap() returned (migrate.cutover.carried).';
    END IF;
    IF NOT EXISTS (SELECT FROM pg_namespace n WHERE n.oid = new_ns AND n.nspname = live_s) THEN
        RAISE EXCEPTION 'schema "%" is not the one the swap put in place', live_s
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'The schemas were renamed or replaced since the cutover: put them back by hand.';
    END IF;
    IF retired_s IS NOT NULL AND NOT EXISTS (SELECT FROM pg_namespace n WHERE n.oid = old_ns AND n.nspname = retired_s) THEN
        RAISE EXCEPTION 'retired schema "%" is not there any more', retired_s
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'It was dropped or renamed since the cutover: the swap cannot be reversed.';
    END IF;
    IF EXISTS (SELECT FROM pg_namespace n WHERE n.nspname = shadow_s) THEN
        RAISE EXCEPTION 'schema "%" already exists', shadow_s
            USING ERRCODE = 'duplicate_schema',
                  HINT = pg_catalog.format('The live schema "%s" is renamed back to the shadow''s name: rename or drop that schema first.', live_s);
    END IF;
    SELECT string_agg(pg_catalog.format('"%s"', n.nspname), ', ' ORDER BY n.nspname) INTO bad
      FROM pg_namespace n
     WHERE n.oid IN (new_ns, old_ns) AND NOT pg_has_role(n.nspowner, 'USAGE');
    IF bad IS NOT NULL THEN
        RAISE EXCEPTION 'role "%" must own schema % to reverse the swap', current_user, bad
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'A cutover is reversed as the plan''s owner, which must own (or be a member of the owner of) both schemas.';
    END IF;
    IF NOT has_database_privilege(current_database(), 'CREATE') THEN
        RAISE EXCEPTION 'role "%" may not rename schemas in database "%"', current_user, current_database()
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'Renaming a schema needs CREATE on the database: GRANT CREATE ON DATABASE to the plan''s owner.';
    END IF;
    SELECT coalesce(array_agg(x.new_oid), '{}'), coalesce(array_agg(x.old_oid) FILTER (WHERE x.old_oid IS NOT NULL), '{}')
      INTO new_oids, old_oids
      FROM jsonb_to_recordset(carried -> 'tables') AS x(new_oid oid, old_oid oid);
    SELECT string_agg(x.new_table, ', ' ORDER BY x.new_table) INTO bad
      FROM jsonb_to_recordset(carried -> 'tables') AS x(new_oid oid, new_table text)
     WHERE NOT EXISTS (SELECT FROM pg_class c WHERE c.oid = x.new_oid AND c.relnamespace = new_ns);
    IF bad IS NOT NULL THEN
        RAISE EXCEPTION 'table % of the swap is not in schema "%" any more', bad, live_s
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'It was dropped or moved since the cutover: the swap cannot be reversed.';
    END IF;
    SELECT string_agg(x.old_table, ', ' ORDER BY x.old_table) INTO bad
      FROM jsonb_to_recordset(carried -> 'tables') AS x(old_oid oid, old_table text)
     WHERE x.old_oid IS NOT NULL
       AND NOT EXISTS (SELECT FROM pg_class c WHERE c.oid = x.old_oid AND c.relnamespace = old_ns);
    IF bad IS NOT NULL THEN
        RAISE EXCEPTION 'retired table % is not in schema "%" any more', bad, retired_s
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'It was dropped or moved since the cutover: the swap cannot be reversed.';
    END IF;
    SELECT string_agg(t.o::regclass::text, ', ' ORDER BY t.o::regclass::text) INTO bad
      FROM unnest(new_oids) t(o)
     WHERE NOT EXISTS (SELECT FROM pg_locks l
                        WHERE l.locktype = 'relation' AND l.pid = pg_backend_pid() AND l.granted
                          AND l.database = (SELECT d.oid FROM pg_database d WHERE d.datname = current_database())
                          AND l.relation = t.o AND l.mode IN ('ExclusiveLock', 'AccessExclusiveLock'));
    IF bad IS NOT NULL THEN
        RAISE EXCEPTION 'live table % is not locked to reverse the swap', bad
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'The reverse runs under EXCLUSIVE locks on the current live tables, taken in the same transaction.';
    END IF;

    IF old_ns IS NOT NULL THEN
        SELECT string_agg(u.vname, ', ' ORDER BY u.vname) INTO bad
          FROM migrate._cutover_views(new_oids, ARRAY[new_ns, old_ns]) u WHERE u.relkind = 'm';
        IF bad IS NOT NULL THEN
            RAISE EXCEPTION 'materialized view % uses the live tables of schema "%"', bad, live_s
                USING ERRCODE = 'object_not_in_prerequisite_state',
                      HINT = 'The reverse cannot re-point a materialized view: drop it first and create it again after.';
        END IF;
        -- the views of other schemas over the new tables, as they are now
        -- (naming live_s.table, which is the old table after the renames)
        FOR r IN
            SELECT u.oid, u.vname, u.relowner, u.reloptions, u.def,
                   (SELECT w.e ->> 'definition' FROM jsonb_array_elements(carried -> 'views') AS w(e)
                     WHERE (w.e ->> 'oid')::oid = u.oid) AS def_before
              FROM migrate._cutover_views(new_oids, ARRAY[new_ns, old_ns]) u WHERE u.relkind = 'v'
             ORDER BY u.depth, u.vname
        LOOP
            IF NOT pg_has_role(r.relowner, 'USAGE') THEN
                RAISE EXCEPTION 'role "%" must own view % to re-point it at the old tables of schema "%"', current_user, r.vname, live_s
                    USING ERRCODE = 'insufficient_privilege',
                          HINT = 'Make the plan''s owner a member of the view''s owner, or drop the view first and create it again after.';
            END IF;
            views := views || jsonb_build_array(jsonb_build_object(
                         'oid', r.oid::bigint, 'view', r.vname,
                         'options', to_jsonb(coalesce(r.reloptions, '{}')), 'definition', r.def,
                         'changed_since_swap', r.def_before IS DISTINCT FROM r.def));
        END LOOP;
        -- the foreign keys of other schemas' tables to the new tables
        FOR r IN
            SELECT c.conname, c.conrelid, c.conrelid::regclass::text AS tname, tc.relowner,
                   pg_get_constraintdef(c.oid) AS def,
                   (SELECT (f.e ->> 'validated_before')::boolean FROM jsonb_array_elements(carried -> 'foreign_keys') AS f(e)
                     WHERE (f.e ->> 'table_oid')::oid = c.conrelid AND f.e ->> 'name' = c.conname) AS valid_before
              FROM pg_constraint c JOIN pg_class tc ON tc.oid = c.conrelid
             WHERE c.contype = 'f' AND c.confrelid = ANY (new_oids) AND c.conparentid = 0
               AND tc.relnamespace NOT IN (new_ns, old_ns)
             ORDER BY 3, 1
        LOOP
            IF NOT pg_has_role(r.relowner, 'USAGE') THEN
                RAISE EXCEPTION 'role "%" must own table % to re-point its foreign key "%" at the old tables of schema "%"',
                                current_user, r.tname, r.conname, live_s
                    USING ERRCODE = 'insufficient_privilege',
                          HINT = 'Make the plan''s owner a member of the table''s owner, or drop the foreign key first and add it again after.';
            END IF;
            fks := fks || jsonb_build_array(jsonb_build_object(
                       'table', r.tname, 'table_oid', r.conrelid::bigint, 'name', r.conname,
                       'validated', coalesce(r.valid_before, false),
                       'definition', regexp_replace(r.def, '\s+NOT VALID$', '')
                                     || CASE WHEN coalesce(r.valid_before, false) THEN '' ELSE ' NOT VALID' END));
        END LOOP;
    END IF;

    FOR e IN SELECT x.e FROM jsonb_array_elements(views || fks) AS x(e)
    LOOP
        EXECUTE pg_catalog.format('LOCK TABLE %s IN ACCESS EXCLUSIVE MODE',
                                  coalesce(e ->> 'oid', e ->> 'table_oid')::oid::regclass);
    END LOOP;

    -- the grants the swap added, revoked (with what was granted on from them)
    FOR r IN
        SELECT g.e ->> 'on' AS kind, (g.e ->> 'oid')::oid AS obj, g.e ->> 'column' AS col,
               g.e ->> 'grantee' AS grantee, g.e ->> 'privilege' AS priv,
               coalesce((g.e ->> 'grant_option_only')::boolean, false) AS option_only
          FROM jsonb_array_elements(coalesce(carried -> 'grants', '[]')) WITH ORDINALITY AS g(e, i)
         ORDER BY g.i
    LOOP
        IF r.priv IS NULL OR r.priv NOT IN ('SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE', 'REFERENCES',
                                            'TRIGGER', 'USAGE', 'CREATE')
           OR NOT (r.kind = 'schema' AND r.obj = new_ns
                   OR r.kind IN ('table', 'column') AND r.obj = ANY (new_oids)
                   OR r.kind = 'sequence' AND r.obj IN (SELECT (s.e ->> 'sequence_oid')::oid
                                                          FROM jsonb_array_elements(coalesce(carried -> 'sequences', '[]')) AS s(e))) THEN
            RAISE EXCEPTION 'the record of the swap names a grant it cannot have made: % on %', r.priv, r.obj
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = 'Pass what _cutover_swap() returned (migrate.cutover.carried).';
        END IF;
        CONTINUE WHEN r.grantee IS NOT NULL AND to_regrole(quote_ident(r.grantee)) IS NULL;   -- dropped since
        CONTINUE WHEN r.kind = 'sequence' AND NOT EXISTS (SELECT FROM pg_class c WHERE c.oid = r.obj AND c.relkind = 'S');
        CONTINUE WHEN r.kind = 'column' AND NOT EXISTS (SELECT FROM pg_attribute a WHERE a.attrelid = r.obj
                                                         AND a.attname = r.col AND NOT a.attisdropped);
        EXECUTE pg_catalog.format('REVOKE %s%s%s ON %s FROM %s CASCADE',
                                  CASE WHEN r.option_only THEN 'GRANT OPTION FOR ' ELSE '' END, r.priv,
                                  CASE WHEN r.kind = 'column' THEN pg_catalog.format(' (%I)', r.col) ELSE '' END,
                                  CASE r.kind WHEN 'schema' THEN pg_catalog.format('SCHEMA %I', live_s)
                                              WHEN 'sequence' THEN 'SEQUENCE ' || r.obj::regclass::text
                                              ELSE 'TABLE ' || r.obj::regclass::text END,
                                  coalesce(quote_ident(r.grantee), 'PUBLIC'));
        revoked := revoked || jsonb_build_array(jsonb_build_object(
                       'on', r.kind, 'name', CASE r.kind WHEN 'schema' THEN live_s::text ELSE r.obj::regclass::text END,
                       'column', r.col, 'grantee', r.grantee, 'privilege', r.priv, 'grant_option_only', r.option_only));
    END LOOP;

    EXECUTE pg_catalog.format('ALTER SCHEMA %I RENAME TO %I', live_s, shadow_s);
    IF retired_s IS NOT NULL THEN
        EXECUTE pg_catalog.format('ALTER SCHEMA %I RENAME TO %I', retired_s, live_s);
    END IF;

    FOR e IN SELECT v.e FROM jsonb_array_elements(views) WITH ORDINALITY AS v(e, i) ORDER BY v.i
    LOOP
        opts := (SELECT ' WITH (' || string_agg(pg_catalog.format('%I = %L', split_part(o.o, '=', 1),
                                                                   substr(o.o, strpos(o.o, '=') + 1)), ', ') || ')'
                   FROM jsonb_array_elements_text(e -> 'options') AS o(o));
        BEGIN
            EXECUTE pg_catalog.format('CREATE OR REPLACE VIEW %s%s AS %s', (e ->> 'oid')::oid::regclass,
                                      coalesce(opts, ''), regexp_replace(e ->> 'definition', ';\s*$', ''));
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT;
            RAISE EXCEPTION 'view % does not fit the old tables of schema "%": %', e ->> 'view', live_s, msg
                USING ERRCODE = st,
                      HINT = 'It was changed since the cutover to use what only the new tables have: change or drop it, then reverse the cutover.';
        END;
    END LOOP;
    FOR e IN SELECT f.e FROM jsonb_array_elements(fks) WITH ORDINALITY AS f(e, i) ORDER BY f.i
    LOOP
        BEGIN
            EXECUTE pg_catalog.format('ALTER TABLE %s DROP CONSTRAINT %I', (e ->> 'table_oid')::oid::regclass, e ->> 'name');
            EXECUTE pg_catalog.format('ALTER TABLE %s ADD CONSTRAINT %I %s', (e ->> 'table_oid')::oid::regclass,
                                      e ->> 'name', e ->> 'definition');
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT;
            RAISE EXCEPTION 'foreign key "%" of table % does not fit the old tables of schema "%": %',
                            e ->> 'name', e ->> 'table', live_s, msg
                USING ERRCODE = st,
                      HINT = 'Rows added since the cutover may reference keys only the new tables have: fix or delete them, then reverse the cutover.';
        END;
    END LOOP;

    -- the old sequences continue beyond what the new ones issued
    FOR r IN
        SELECT (s.e ->> 'table_oid')::oid AS tbl, s.e ->> 'column' AS col,
               (s.e ->> 'sequence_oid')::oid AS new_seq, (s.e ->> 'old_sequence_oid')::oid AS old_seq
          FROM jsonb_array_elements(coalesce(carried -> 'sequences', '[]')) WITH ORDINALITY AS s(e, i)
         WHERE s.e ->> 'old_sequence_oid' IS NOT NULL
         ORDER BY s.i
    LOOP
        CONTINUE WHEN NOT EXISTS (SELECT FROM pg_class c WHERE c.oid = r.old_seq AND c.relkind = 'S');
        mx := NULL;
        IF r.tbl = ANY (new_oids) AND EXISTS (SELECT FROM pg_attribute a WHERE a.attrelid = r.tbl AND a.attname = r.col
                                                AND NOT a.attisdropped
                                                AND a.atttypid IN ('int2'::regtype, 'int4'::regtype, 'int8'::regtype)) THEN
            EXECUTE pg_catalog.format('SELECT max(%I)::bigint FROM %s', r.col, r.tbl::regclass) INTO mx;
        END IF;
        new_last := CASE WHEN EXISTS (SELECT FROM pg_class c WHERE c.oid = r.new_seq AND c.relkind = 'S')
                         THEN pg_sequence_last_value(r.new_seq::regclass) END;
        old_last := pg_sequence_last_value(r.old_seq::regclass);
        to_val := greatest(mx, new_last, old_last);
        IF to_val < (SELECT s.seqmin FROM pg_sequence s WHERE s.seqrelid = r.old_seq)
           OR (SELECT s.seqincrement FROM pg_sequence s WHERE s.seqrelid = r.old_seq) < 0 THEN
            to_val := NULL;
        END IF;
        IF to_val IS NOT NULL THEN
            PERFORM setval(r.old_seq::regclass, to_val, true);
        END IF;
        seqs := seqs || jsonb_build_array(jsonb_build_object(
                    'sequence', r.old_seq::regclass::text, 'old_value', old_last, 'new_sequence_value', new_last,
                    'max', mx, 'set_to', to_val));
    END LOOP;

    RETURN jsonb_build_object('live_schema', live_s, 'shadow_schema', shadow_s, 'retired_schema', retired_s,
                              'grants_revoked', revoked, 'views', views, 'foreign_keys', fks, 'sequences', seqs);
END;
$$;
REVOKE ALL ON FUNCTION migrate._cutover_unswap(jsonb) FROM PUBLIC;

-- ==== migrate_cutover() ====

-- migrate_cutover(): the blue-green cutover of a plan whose target_schema
-- is a shadow of the live schema options->>'cutover_into' (src/cutover.c):
-- a sync to a fence, the verify gate (migrate_verify and an empty
-- migrate_diff of every table, keys changed since the fence in flight),
-- the live tables locked IN EXCLUSIVE MODE (each attempt waits at most
-- lock_timeout; max_attempts of them), the final sync under the locks, the
-- fence re-checked, the swap (migrate._cutover_swap) and its record
-- (migrate.cutover, a run of mode 'cutover'), all in the caller's
-- transaction.  Returns the cutover's run id.  Runs as the plan's owner;
-- the caller must be a member of it.
CREATE OR REPLACE FUNCTION migrate_cutover(plan text, lock_timeout interval DEFAULT '500ms',
                                           max_attempts integer DEFAULT 10)
RETURNS bigint
LANGUAGE C VOLATILE
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'migrate_cutover';

-- What the capture of each table of a plan has not applied yet (src/cutover.c
-- checks it under the live tables' locks, after the final sync): trigger:
-- rows of the change table beyond those applied but not yet pruned
-- (sync_state.prune); slot: NULL (src/cutover.c counts the changes the
-- slot holds after the table's position, migrate._slot_pending_keys);
-- watermark: source rows whose
-- watermark is past the position (max(watermark) when the last pass began;
-- deletes are not seen).  Runs as its caller (the plan's owner under
-- migrate_cutover), reading only what the caller may read; the plan's
-- filter under the caller's search_path.  Internal.
CREATE OR REPLACE FUNCTION migrate._cutover_pending(p_plan text)
RETURNS TABLE (target regclass, capture text, pending bigint)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r record;
    rel regclass;
    wm_type regtype;
    expr_path constant text := migrate._caller_search_path();
BEGIN
    FOR r IN SELECT tm.target, tm.capture, tm.source, tm.filter, tm.watermark,
                    ss.change_relation, ss.prune, ss.position, ss.plan IS NOT NULL AS armed
               FROM migrate.table_map tm
               LEFT JOIN migrate.sync_state ss ON ss.plan = tm.plan AND ss.target = tm.target
              WHERE tm.plan = p_plan
              ORDER BY tm.target::text
    LOOP
        target := r.target;
        capture := r.capture;
        pending := NULL;
        IF NOT r.armed THEN
            RAISE EXCEPTION 'capture of table % in migration plan "%" is not armed', r.target, p_plan
                USING ERRCODE = 'object_not_in_prerequisite_state',
                      HINT = 'Arm it with migrate_run(plan, mode => ''incremental'').';
        ELSIF r.capture = 'trigger' THEN
            rel := pg_catalog.to_regclass(r.change_relation);
            IF rel IS NULL THEN
                RAISE EXCEPTION 'change relation % of table % in migration plan "%" does not exist',
                                coalesce(r.change_relation, '(none)'), r.target, p_plan
                    USING ERRCODE = 'undefined_table',
                          HINT = 'Arm capture again: migrate_run(plan, mode => ''incremental'').';
            END IF;
            EXECUTE pg_catalog.format('SELECT pg_catalog.count(*) FROM %s AS c'
                                      ' WHERE c.seq <> ALL (coalesce($1, ''{}''::bigint[]))', rel)
               INTO pending USING r.prune;
        ELSIF r.capture = 'slot' THEN
            -- NULL: src/cutover.c asks migrate._slot_pending_keys (revoked
            -- from PUBLIC) through fmgr as the owner
            pending := NULL;
        ELSIF r.capture = 'watermark' THEN
            SELECT a.atttypid::regtype INTO wm_type FROM pg_catalog.pg_attribute a
             WHERE a.attrelid = pg_catalog.to_regclass(r.source) AND a.attname = r.watermark
               AND NOT a.attisdropped;
            -- no position yet (the source had no row): every row is pending
            PERFORM pg_catalog.set_config('search_path', expr_path, true);
            EXECUTE pg_catalog.format('SELECT pg_catalog.count(*) FROM %s AS s WHERE %s%s',
                                      r.source,
                                      CASE WHEN r.position IS NULL THEN 'true'
                                           ELSE pg_catalog.format('s.%I > %L::%s', r.watermark, r.position, wm_type) END,
                                      CASE WHEN r.filter IS NOT NULL THEN ' AND (' || r.filter || ')' ELSE '' END)
               INTO pending;
            PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
        END IF;
        RETURN NEXT;
    END LOOP;
END;
$$;
REVOKE ALL ON FUNCTION migrate._cutover_pending(text) FROM PUBLIC;
