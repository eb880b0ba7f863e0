-- Included by test/sql/99_upgrade.sql in each database it compares: the
-- catalog of the migrate extension as rows (kind, name, detail), with no
-- OIDs in them, so that two databases can be compared row by row:
--   member       every member object of the extension (pg_depend 'e')
--   extension    its version, schema, and the tables pg_dump keeps
--                (extconfig, extcondition)
--   schema       schema migrate: owner-independent ACL
--   function     every function of the extension or in schema migrate:
--                arguments with defaults, result, language, kind,
--                volatility, strict, security definer, parallel, leakproof,
--                cost, rows, settings (search_path), body, library, ACL
--   relation     every relation in schema migrate or of the extension:
--                kind, persistence, RLS enabled and forced, options, ACL,
--                view definition
--   column       its columns: position, type, not null, default, identity,
--                generated, collation, ACL
--   constraint   pg_get_constraintdef, deferrable, validated
--   index        pg_get_indexdef
--   trigger      pg_get_triggerdef (not the internal ones of foreign keys)
--   policy       command, permissive, roles, USING and WITH CHECK
--   type         types in schema migrate: kind, default, not null, base
--                type, ACL, enum labels
--   sequence     pg_sequence: type, start, increment, bounds, cache, cycle
--   init_privs   pg_init_privs of the extension's objects (what pg_dump
--                compares grants against)
--   comment      comments on the extension's objects
CREATE TEMP VIEW extension_shape AS
WITH ext AS (
    SELECT e.oid, e.extname, e.extversion, e.extnamespace, e.extconfig, e.extcondition
      FROM pg_extension e WHERE e.extname = 'migrate'
), members AS (
    SELECT d.classid, d.objid, d.objsubid
      FROM pg_depend d, ext
     WHERE d.refclassid = 'pg_extension'::regclass AND d.refobjid = ext.oid AND d.deptype = 'e'
), procs AS (
    SELECT p.oid FROM pg_proc p
     WHERE p.oid IN (SELECT objid FROM members WHERE classid = 'pg_proc'::regclass)
        OR p.pronamespace = 'migrate'::regnamespace
), rels AS (
    SELECT c.oid FROM pg_class c
     WHERE c.oid IN (SELECT objid FROM members WHERE classid = 'pg_class'::regclass)
        OR c.relnamespace = 'migrate'::regnamespace
)
SELECT 'member' AS kind, pg_describe_object(classid, objid, objsubid) AS name, '' AS detail
  FROM members
UNION ALL
SELECT 'extension', extname,
       concat_ws(' | ', extversion, extnamespace::regnamespace::text,
                 (SELECT string_agg(c::regclass::text || ' WHERE ' || coalesce(w, ''), ', ' ORDER BY c::regclass::text)
                    FROM unnest(extconfig, extcondition) AS u(c, w)))
  FROM ext
UNION ALL
SELECT 'schema', nspname, coalesce(nspacl::text, '')
  FROM pg_namespace WHERE nspname = 'migrate'
UNION ALL
SELECT 'function', p.oid::regprocedure::text,
       concat_ws(' | ', pg_get_function_arguments(p.oid), pg_get_function_result(p.oid),
                 l.lanname, p.prokind, p.provolatile, p.proisstrict, p.prosecdef, p.proparallel,
                 p.proleakproof, p.procost, p.prorows, coalesce(p.proconfig::text, 'no settings'),
                 coalesce(p.proacl::text, 'default acl'), coalesce(p.probin, ''), p.prosrc)
  FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
 WHERE p.oid IN (SELECT oid FROM procs)
UNION ALL
SELECT 'relation', c.oid::regclass::text,
       concat_ws(' | ', c.relkind, c.relpersistence, 'rls ' || c.relrowsecurity,
                 'forced ' || c.relforcerowsecurity, coalesce(c.reloptions::text, 'no options'),
                 coalesce(c.relacl::text, 'default acl'),
                 CASE WHEN c.relkind IN ('v', 'm') THEN pg_get_viewdef(c.oid) END)
  FROM pg_class c
 WHERE c.oid IN (SELECT oid FROM rels) AND c.relkind NOT IN ('i', 'I')
UNION ALL
SELECT 'column', a.attrelid::regclass::text || '.' || quote_ident(a.attname),
       concat_ws(' | ', row_number() OVER (PARTITION BY a.attrelid ORDER BY a.attnum),
                 format_type(a.atttypid, a.atttypmod), 'not null ' || a.attnotnull,
                 'default ' || coalesce(pg_get_expr(ad.adbin, ad.adrelid), 'none'),
                 'identity ' || a.attidentity::text, 'generated ' || a.attgenerated::text,
                 'collation ' || coalesce(co.collname, 'none'), coalesce(a.attacl::text, 'default acl'))
  FROM pg_attribute a
  LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
  LEFT JOIN pg_collation co ON co.oid = a.attcollation AND a.attcollation <> 0
 WHERE a.attrelid IN (SELECT oid FROM rels) AND a.attnum > 0 AND NOT a.attisdropped
UNION ALL
SELECT 'constraint', coalesce(con.conrelid::regclass::text, con.contypid::regtype::text) || '.' || quote_ident(con.conname),
       concat_ws(' | ', con.contype, pg_get_constraintdef(con.oid),
                 'deferrable ' || con.condeferrable, 'deferred ' || con.condeferred,
                 'validated ' || con.convalidated)
  FROM pg_constraint con
 WHERE con.conrelid IN (SELECT oid FROM rels)
    OR con.contypid IN (SELECT oid FROM pg_type WHERE typnamespace = 'migrate'::regnamespace)
UNION ALL
SELECT 'index', i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid)
  FROM pg_index i WHERE i.indrelid IN (SELECT oid FROM rels)
UNION ALL
SELECT 'trigger', t.tgrelid::regclass::text || '.' || quote_ident(t.tgname), pg_get_triggerdef(t.oid)
  FROM pg_trigger t WHERE t.tgrelid IN (SELECT oid FROM rels) AND NOT t.tgisinternal
UNION ALL
SELECT 'policy', pol.polrelid::regclass::text || '.' || quote_ident(pol.polname),
       concat_ws(' | ', pol.polcmd, 'permissive ' || pol.polpermissive,
                 (SELECT string_agg(CASE WHEN r = 0 THEN 'public' ELSE r::regrole::text END, ',' ORDER BY 1)
                    FROM unnest(pol.polroles) r),
                 'using ' || coalesce(pg_get_expr(pol.polqual, pol.polrelid), 'none'),
                 'with check ' || coalesce(pg_get_expr(pol.polwithcheck, pol.polrelid), 'none'))
  FROM pg_policy pol WHERE pol.polrelid IN (SELECT oid FROM rels)
UNION ALL
SELECT 'type', t.oid::regtype::text,
       concat_ws(' | ', t.typtype, t.typcategory, 'not null ' || t.typnotnull,
                 'default ' || coalesce(t.typdefault, 'none'),
                 'base ' || CASE WHEN t.typbasetype <> 0 THEN format_type(t.typbasetype, t.typtypmod) ELSE 'none' END,
                 coalesce(t.typacl::text, 'default acl'),
                 (SELECT string_agg(e.enumlabel, ',' ORDER BY e.enumsortorder) FROM pg_enum e WHERE e.enumtypid = t.oid))
  FROM pg_type t
 WHERE t.typnamespace = 'migrate'::regnamespace
    OR t.oid IN (SELECT objid FROM members WHERE classid = 'pg_type'::regclass)
UNION ALL
SELECT 'sequence', s.seqrelid::regclass::text,
       concat_ws(' | ', format_type(s.seqtypid, NULL), s.seqstart, s.seqincrement, s.seqmin, s.seqmax,
                 s.seqcache, s.seqcycle)
  FROM pg_sequence s WHERE s.seqrelid IN (SELECT oid FROM rels)
UNION ALL
SELECT 'init_privs', pg_describe_object(ip.classoid, ip.objoid, ip.objsubid),
       concat_ws(' | ', ip.privtype, ip.initprivs::text)
  FROM pg_init_privs ip
 WHERE (ip.classoid, ip.objoid) IN (SELECT classid, objid FROM members)
    OR (ip.classoid = 'pg_class'::regclass AND ip.objoid IN (SELECT oid FROM rels))
    OR (ip.classoid = 'pg_proc'::regclass AND ip.objoid IN (SELECT oid FROM procs))
UNION ALL
SELECT 'comment', pg_describe_object(ds.classoid, ds.objoid, ds.objsubid), ds.description
  FROM pg_description ds
 WHERE (ds.classoid, ds.objoid) IN (SELECT classid, objid FROM members)
    OR (ds.classoid = 'pg_class'::regclass AND ds.objoid IN (SELECT oid FROM rels))
    OR (ds.classoid = 'pg_proc'::regclass AND ds.objoid IN (SELECT oid FROM procs));
