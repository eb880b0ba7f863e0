-- included by sql/99_upgrade.sql: one line per member object of the
-- extension, with the definition of functions and views and the columns,
-- defaults and constraints of tables
CREATE TEMP VIEW extension_shape AS
SELECT pg_describe_object(d.classid, d.objid, d.objsubid)
       || coalesce(' ' || pg_get_functiondef(p.oid), '')
       || coalesce(' ' || pg_get_viewdef(c.oid), '')
       || coalesce(' ' || (SELECT string_agg(a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
                                             || ' ' || a.attnotnull || ' ' || coalesce(pg_get_expr(ad.adbin, ad.adrelid), ''),
                                             ', ' ORDER BY a.attname)
                           FROM pg_attribute a
                           LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
                           WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped), '')
       || coalesce(' ' || (SELECT string_agg(con.conname || ' ' || pg_get_constraintdef(con.oid), ', ' ORDER BY con.conname)
                           FROM pg_constraint con WHERE con.conrelid = c.oid), '') AS shape
FROM pg_depend d
LEFT JOIN pg_proc p ON d.classid = 'pg_proc'::regclass AND p.oid = d.objid
LEFT JOIN pg_class c ON d.classid = 'pg_class'::regclass AND c.oid = d.objid
WHERE d.refclassid = 'pg_extension'::regclass
  AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'migrate')
  AND d.deptype = 'e';
