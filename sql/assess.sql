/*
 * assess.sql: the assessment: migrate_automap, migrate_check,
 * migrate_profile and their helpers (name matching, the MySQL/MariaDB
 * catalog reader and cast rules, lossy casts).
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
 * Assessment and automap: migrate_automap() builds table and column
 * mappings by name, migrate_check() lists what is wrong with a plan before
 * a row moves, migrate_profile() measures the source data against the
 * mapping.  All three work on any source; with a mysql_fdw source they also
 * read the remote MySQL/MariaDB catalog (information_schema.COLUMNS) to
 * apply the MySQL cast rules (see docs/reference.md, migrate_automap).
 */

-- A name folded for matching: lower case, only letters and digits, so that
-- InvoiceLine, invoice_line and INVOICE_LINE are the same name.
CREATE OR REPLACE FUNCTION migrate._name_key(p_name text)
RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
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
-- mysql_fdw 2.8 reads a text column into a buffer of the value's length,
-- any other type into 64 kB (bytea: 8 kB) and ends the scan, without an
-- error, at a longer value; and a text column of a non-string MySQL type
-- gets a buffer too short.  So strings that may pass 64 kB are text, other
-- strings (and unknown types) varchar; see migrate._mysql_long_values for
-- bytea.
CREATE OR REPLACE FUNCTION migrate._mysql_read_type(p_data_type text, p_column_type text)
RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
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
           WHEN dt IN ('char', 'varchar')
                THEN CASE WHEN coalesce(pg_catalog.substring(p_column_type, '\((\d+)\)')::integer, 0) >= 16384
                          THEN 'text'     -- up to 4 bytes a character: may pass 64 kB
                          ELSE 'varchar' || coalesce(pg_catalog.substring(p_column_type, '\(\d+\)'), '') END
           WHEN dt IN ('tinytext', 'text', 'mediumtext', 'longtext', 'json') THEN 'text'
           WHEN dt IN ('enum', 'set') THEN 'varchar'
           WHEN dt IN ('binary', 'varbinary', 'tinyblob', 'blob', 'mediumblob', 'longblob', 'bit',
                       'geometry', 'point', 'linestring', 'polygon') THEN 'bytea'
           ELSE 'varchar' END
      FROM (SELECT pg_catalog.lower(p_data_type) AS dt,
                   pg_catalog.lower(p_column_type) LIKE '%unsigned%' AS uns) x
$$;

-- MySQL/MariaDB columns whose values mysql_fdw 2.8 cannot read whole: a
-- bytea value longer than 8192 bytes ends its scan without an error (see
-- migrate._mysql_long_values).  migrate_plan declares a foreign table
-- without them, and automap maps them to migrate._mysql_value: BLOB (up to
-- 65,535 bytes), MEDIUMBLOB, LONGBLOB, and VARBINARY/BINARY longer than
-- 8192 bytes.
CREATE OR REPLACE FUNCTION migrate._mysql_long_binary(p_data_type text, p_column_type text)
RETURNS boolean
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pg_catalog.lower(p_data_type) IN ('blob', 'mediumblob', 'longblob')
           OR (pg_catalog.lower(p_data_type) IN ('varbinary', 'binary')
               AND coalesce(pg_catalog.substring(p_column_type, '\((\d+)\)')::bigint, 0) > 8192)
$$;

-- The remote catalog of one MySQL/MariaDB database, read through a
-- temporary foreign table on information_schema.COLUMNS of the server.
CREATE OR REPLACE FUNCTION migrate._mysql_columns(p_server name, p_database text)
RETURNS TABLE (table_name text, column_name text, ordinal integer, data_type text,
               column_type text, nullable boolean)
LANGUAGE plpgsql
SET client_min_messages = warning
SET search_path = pg_catalog, pg_temp
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

-- Declare the mysql_fdw foreign table p_schema.p_table of MySQL table
-- p_database.p_table with the column definitions p_cols; p_longs names the
-- long binary columns left out of it (migrate._mysql_long_binary), which
-- its comment records for automap (migrate._mysql_value reads them).  As
-- the caller: it runs what the caller could run itself.
CREATE OR REPLACE FUNCTION migrate._mysql_declare(p_server name, p_database text, p_schema name,
                                                  p_table text, p_cols text, p_longs text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    EXECUTE pg_catalog.format('CREATE FOREIGN TABLE %I.%I (%s) SERVER %I OPTIONS (dbname %L, table_name %L)',
                              p_schema, p_table, p_cols, p_server, p_database, p_table);
    IF p_longs IS NOT NULL THEN
        EXECUTE pg_catalog.format('COMMENT ON FOREIGN TABLE %I.%I IS %L', p_schema, p_table,
                                  'MySQL columns left out (mysql_fdw cannot read values over 8192 bytes), '
                                  'read whole by migrate._mysql_value: ' || p_longs);
    END IF;
END;
$$;

-- migrate_plan(..., source_server => a mysql_fdw server): import the
-- remote database p_database into schema p_schema.  IMPORT FOREIGN SCHEMA
-- of mysql_fdw 2.8 fails on a type PostgreSQL does not have (YEAR,
-- TINYBLOB, GEOMETRY, INET6...; ENUM too without import_enum_as_text) and
-- skips a table with a SET column, so it imports only the tables whose
-- every column it maps to a type of ours (ENUM as text); migrate declares
-- the others from the remote catalog, with migrate._mysql_read_type, and
-- says which (NOTICE).  A table with a long binary column
-- (migrate._mysql_long_binary: mysql_fdw would end its scan at a value
-- over 8192 bytes) is declared without that column, and the foreign
-- table's comment names it; automap maps it to migrate._mysql_value.
-- automap then casts.
CREATE OR REPLACE FUNCTION migrate._mysql_import(p_server name, p_database text, p_schema name)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    names text[];
    defs text[];
    why text[];
    longs text[];
    import_all boolean;
    i integer;
BEGIN
    SELECT pg_catalog.array_agg(t.table_name ORDER BY t.table_name),
           pg_catalog.array_agg(t.cols ORDER BY t.table_name),
           pg_catalog.array_agg(t.odd ORDER BY t.table_name),
           pg_catalog.array_agg(t.long ORDER BY t.table_name)
      INTO names, defs, why, longs
      FROM (SELECT c.table_name,
                   coalesce(pg_catalog.string_agg(pg_catalog.quote_ident(c.column_name) || ' '
                                                  || migrate._mysql_read_type(c.data_type, c.column_type),
                                                  ', ' ORDER BY c.ordinal)
                                FILTER (WHERE NOT migrate._mysql_long_binary(c.data_type, c.column_type)), '') AS cols,
                   pg_catalog.string_agg(pg_catalog.format('%s (%s)', c.column_name, c.column_type), ', '
                                         ORDER BY c.ordinal)
                       FILTER (WHERE c.data_type NOT IN
                               ('tinyint', 'smallint', 'mediumint', 'int', 'integer', 'bigint',
                                'decimal', 'numeric', 'float', 'double', 'real',
                                'date', 'datetime', 'timestamp', 'time', 'char', 'varchar',
                                'tinytext', 'text', 'mediumtext', 'longtext', 'json', 'enum',
                                'binary', 'varbinary', 'blob', 'mediumblob', 'longblob', 'bit')) AS odd,
                   pg_catalog.string_agg(pg_catalog.format('%I (%s)', c.column_name, c.column_type), ', '
                                         ORDER BY c.ordinal)
                       FILTER (WHERE migrate._mysql_long_binary(c.data_type, c.column_type)) AS long
              FROM migrate._mysql_columns(p_server, p_database) c
             GROUP BY c.table_name) t;
    -- mysql_fdw writes the names of EXCEPT into its MySQL query unescaped:
    -- if a table to leave out has a quote or backslash in its name, migrate
    -- declares every table rather than pass that name
    import_all := NOT EXISTS (SELECT 1 FROM ROWS FROM (pg_catalog.unnest(names), pg_catalog.unnest(why), pg_catalog.unnest(longs)) u(n, w, l)
                               WHERE (u.w IS NOT NULL OR u.l IS NOT NULL) AND u.n ~ '[''\\]');
    IF import_all THEN
        EXECUTE pg_catalog.format('IMPORT FOREIGN SCHEMA %I %s FROM SERVER %I INTO %I OPTIONS (import_enum_as_text ''true'')',
                                  p_database,
                                  coalesce('EXCEPT (' || (SELECT pg_catalog.string_agg(pg_catalog.quote_ident(u.n), ', ')
                                                            FROM ROWS FROM (pg_catalog.unnest(names), pg_catalog.unnest(why), pg_catalog.unnest(longs)) u(n, w, l)
                                                           WHERE u.w IS NOT NULL OR u.l IS NOT NULL) || ')', ''),
                                  p_server, p_schema);
    END IF;
    FOR i IN 1 .. coalesce(pg_catalog.cardinality(names), 0) LOOP
        IF why[i] IS NOT NULL OR longs[i] IS NOT NULL OR NOT import_all THEN
            PERFORM migrate._mysql_declare(p_server, p_database, p_schema, names[i], defs[i], longs[i]);
            IF longs[i] IS NOT NULL THEN
                RAISE NOTICE 'foreign table %.% declared by migrate without its long binary columns %, which mysql_fdw cannot read whole: automap maps them to migrate._mysql_value()%',
                             pg_catalog.quote_ident(p_schema), pg_catalog.quote_ident(names[i]), longs[i],
                             coalesce('; IMPORT FOREIGN SCHEMA of mysql_fdw cannot import ' || why[i], '');
            ELSE
                RAISE NOTICE 'foreign table %.% declared by migrate: %',
                             pg_catalog.quote_ident(p_schema), pg_catalog.quote_ident(names[i]),
                             coalesce('IMPORT FOREIGN SCHEMA of mysql_fdw cannot import ' || why[i],
                                      'IMPORT FOREIGN SCHEMA of mysql_fdw cannot leave out a table whose name has a quote or backslash');
            END IF;
        END IF;
    END LOOP;
END;
$$;

-- The mysql_fdw server and remote database and table of a foreign table;
-- no row when it is not a mysql_fdw foreign table.
CREATE OR REPLACE FUNCTION migrate._mysql_source(p_rel regclass)
RETURNS TABLE (server name, dbname text, table_name text)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
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

-- migrate._mysql_value(ftable, column_name, key_column, key): the value of
-- MySQL column column_name (of the remote table of mysql_fdw foreign table
-- ftable) in the row whose key_column (a column of ftable) equals key,
-- read whole through migrate's own MySQL connection (src/mysqlsrc.c), not
-- through mysql_fdw.  PUBLIC may execute it: it runs as the caller, who
-- needs SELECT on ftable and USAGE on its server (with which the caller
-- could declare a foreign table on any column of that MySQL table
-- anyway) and the caller's user mapping.
CREATE OR REPLACE FUNCTION migrate._mysql_value(ftable regclass, column_name text, key_column name, key anyelement)
RETURNS bytea
AS 'MODULE_PATHNAME', 'migrate_mysql_value'
LANGUAGE C VOLATILE
SET search_path = pg_catalog, pg_temp;

-- The source columns an expression reads (s.col / s."Col"), as names.
CREATE OR REPLACE FUNCTION migrate._expr_columns(p_expr text)
RETURNS name[]
LANGUAGE sql IMMUTABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce(array_agg(DISTINCT CASE WHEN m[1] LIKE '"%'
                                            THEN pg_catalog.replace(pg_catalog.substr(m[1], 2, pg_catalog.length(m[1]) - 2), '""', '"')
                                            ELSE pg_catalog.lower(m[1]) END::name), '{}')
      FROM pg_catalog.regexp_matches(p_expr, '(?:^|[^[:alnum:]_."])s\.("(?:[^"]|"")+"|[[:alpha:]_][[:alnum:]_$]*)', 'g') m
$$;

-- The bytea columns of a mysql_fdw foreign table that hold values longer
-- than 8192 bytes, and how many.  mysql_fdw 2.8 reads a bytea value into a
-- buffer of MAX_BLOB_WIDTH bytes (8192 with MariaDB Connector/C, the
-- Debian/PGDG build) whatever max_blob_size says (the option is parsed
-- but unused), and ends the scan at a longer value without an error: the
-- rows after it are silently lost.  The count runs in MySQL (the WHERE
-- clause and count(*) are pushed down; nothing long is fetched).
CREATE OR REPLACE FUNCTION migrate._mysql_long_values(p_rel regclass)
RETURNS TABLE (column_name name, long_values bigint)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM migrate._mysql_source(p_rel)) THEN
        RETURN;
    END IF;
    FOR column_name IN SELECT a.attname FROM pg_catalog.pg_attribute a
                        WHERE a.attrelid = p_rel AND a.attnum > 0 AND NOT a.attisdropped
                          AND a.atttypid = 'bytea'::regtype
                        ORDER BY a.attnum LOOP
        EXECUTE pg_catalog.format('SELECT count(*) FROM %s WHERE pg_catalog.length(%I) > 8192',
                                  p_rel, column_name) INTO long_values;
        IF long_values > 0 THEN
            RETURN NEXT;
        END IF;
    END LOOP;
END;
$$;

/*
 * migrate_automap(plan, create_missing): map every source relation of the plan's source
 * schema to the target table of the plan's target schema with the same
 * name (exactly, case-insensitively, or ignoring case and underscores:
 * InvoiceLine -> invoice_line), and each target column to the source column
 * of the same name in the same sense, with a cast expression where the
 * types need one.  Existing table and column mappings are kept.  With a
 * mysql_fdw source it first reads the remote catalog and (unless the plan's
 * options say {"automap": {"alter_source": false}}) widens foreign-table
 * columns mysql_fdw would misread, and creates the foreign tables IMPORT
 * FOREIGN SCHEMA skipped ({"automap": {"create_source": false}}).  With
 * create_missing it first creates the target tables the source has and
 * the target lacks (migrate._create_missing, sql/database.sql).
 * Runs as the plan's owner (the caller must be a member of it): the body is
 * migrate._migrate_automap, called by migrate_call_as_owner (src/owner.c).
 */
CREATE OR REPLACE FUNCTION migrate_automap(plan text, create_missing boolean DEFAULT false)
RETURNS TABLE (target regclass, source text, column_name name, source_column name,
               expr text, action text)
LANGUAGE C
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'migrate_call_as_owner';

CREATE OR REPLACE FUNCTION migrate._migrate_automap(plan text, create_missing boolean)
RETURNS TABLE (target regclass, source text, column_name name, source_column name,
               expr text, action text)
LANGUAGE plpgsql
SET client_min_messages = warning
SET jit = off
SET search_path = pg_catalog, pg_temp
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
    note text;
    key_src name;
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
                        -- without the long binary columns (migrate._mysql_import)
                        coalesce(pg_catalog.string_agg(pg_catalog.quote_ident(rt.column_name) || ' '
                                                       || migrate._mysql_read_type(rt.data_type, rt.column_type),
                                                       ', ' ORDER BY rt.ordinal)
                                     FILTER (WHERE NOT migrate._mysql_long_binary(rt.data_type, rt.column_type)), '') AS cols,
                        pg_catalog.string_agg(pg_catalog.format('%I (%s)', rt.column_name, rt.column_type), ', '
                                              ORDER BY rt.ordinal)
                            FILTER (WHERE migrate._mysql_long_binary(rt.data_type, rt.column_type)) AS longs
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
            PERFORM migrate._mysql_declare(remote_srv, remote_db, pl.source_schema, r.table_name, r.cols, r.longs);
            target := NULL;
            source := pg_catalog.format('%I.%I', pl.source_schema, r.table_name);
            column_name := NULL; source_column := NULL; expr := NULL;
            action := 'foreign table created (IMPORT FOREIGN SCHEMA skipped it)'
                      || coalesce(', without its long binary columns ' || r.longs, '');
            RETURN NEXT;
        END LOOP;
    END IF;

    -- tables of the source without a target: created (sql/database.sql)
    IF create_missing THEN
        RETURN QUERY SELECT * FROM migrate._create_missing(pl.plan_name);
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
            IF src IS NOT NULL THEN
                SELECT pg_catalog.string_agg(pg_catalog.format('%I (%s values)', l.column_name, l.long_values), ', ')
                  INTO err FROM migrate._mysql_long_values(src) l;
                IF err IS NOT NULL THEN
                    action := 'table mapping kept, but mysql_fdw cannot read bytea values longer than 8192 bytes'
                              ' (its scan ends at the first, without an error, and the rows after it are lost): ' || err;
                END IF;
            END IF;
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
            SELECT pg_catalog.string_agg(pg_catalog.format('%I (%s values)', l.column_name, l.long_values), ', ')
              INTO err FROM migrate._mysql_long_values(src) l;
            IF err IS NOT NULL THEN
                source := src::text;
                action := 'not mapped: mysql_fdw cannot read bytea values longer than 8192 bytes'
                          ' (its scan ends at the first, without an error, and the rows after it are lost): '
                          || err || '; declare the foreign table without the column and map it to migrate._mysql_value() instead (docs/runbook.md)';
                RETURN NEXT;
                CONTINUE;
            END IF;
            BEGIN
                PERFORM @extschema@.migrate_table(pl.plan_name, src::text, t.rel::text);
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
        -- the source column of the table's key (one column), by which
        -- migrate._mysql_value reads a long binary value of a row
        key_src := NULL;
        IF pg_catalog.cardinality(tm.key) = 1 THEN
            SELECT s2.attname INTO key_src FROM pg_catalog.pg_attribute s2
             WHERE s2.attrelid = src AND s2.attnum > 0 AND NOT s2.attisdropped
               AND migrate._name_key(s2.attname) = migrate._name_key(tm.key[1])
             ORDER BY s2.attname = tm.key[1] DESC, pg_catalog.lower(s2.attname) = pg_catalog.lower(tm.key[1]) DESC
             LIMIT 1;
        END IF;

        FOR c IN SELECT a.attname, a.atttypid, a.atttypmod, a.attnotnull,
                        a.atthasdef OR a.attidentity <> '' AS has_default,
                        a.attidentity <> '' AS is_identity, a.attgenerated <> '' AS is_generated,
                        (SELECT pg_catalog.string_agg(pg_catalog.quote_ident(tg.tgname::text), ', ' ORDER BY tg.tgname)
                           FROM pg_catalog.pg_trigger tg
                          WHERE tg.tgrelid = t.rel AND NOT tg.tgisinternal AND tg.tgenabled <> 'D'
                            -- TRIGGER_TYPE_ROW (1), BEFORE (2), INSERT (4)
                            AND (tg.tgtype & 7) = 7) AS triggers,
                        pg_catalog.format_type(a.atttypid, NULL) AS base_type,
                        sa.attname AS src_col, sa.atttypid AS src_type,
                        pg_catalog.format_type(sa.atttypid, sa.atttypmod) AS src_type_name,
                        rc.data_type, rc.column_type, cm.expr AS explicit,
                        rl.column_name AS remote_long, rl.column_type AS remote_long_type
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
                   LEFT JOIN LATERAL (
                        -- a long binary MySQL column the foreign table leaves out
                        SELECT rt.column_name, rt.column_type
                          FROM migrate._mysql_source(src) ms
                          JOIN migrate_automap_remote rt
                            ON rt.server = ms.server AND rt.dbname = ms.dbname
                           AND rt.table_name = ms.table_name
                         WHERE sa.attname IS NULL
                           AND migrate._name_key(rt.column_name) = migrate._name_key(a.attname)
                           AND migrate._mysql_long_binary(rt.data_type, rt.column_type)
                         ORDER BY rt.column_name = a.attname DESC,
                                  pg_catalog.lower(rt.column_name) = pg_catalog.lower(a.attname) DESC
                         LIMIT 1) rl ON true
                  WHERE a.attrelid = t.rel AND a.attnum > 0 AND NOT a.attisdropped
                  ORDER BY a.attnum LOOP
            column_name := c.attname;
            source_column := c.src_col;
            expr := c.explicit;
            note := NULL;
            IF c.is_generated THEN
                -- the target computes it: an INSERT may not name it
                expr := NULL;
                action := 'generated column: the target computes it, not mapped';
                RETURN NEXT;
                CONTINUE;
            END IF;
            IF c.explicit IS NOT NULL THEN
                action := 'column mapping kept';
                RETURN NEXT;
                CONTINUE;
            END IF;
            IF c.src_col IS NULL AND c.remote_long IS NOT NULL THEN
                -- mysql_fdw cannot read it whole: migrate's own MySQL
                -- connection reads it, one query a row, by the row's key
                IF key_src IS NULL THEN
                    action := pg_catalog.format('not mapped: MySQL column %I (%s) is left out of the foreign table (mysql_fdw cannot read values over 8192 bytes),'
                                                ' and migrate._mysql_value needs the table''s key as one source column',
                                                c.remote_long, c.remote_long_type);
                ELSE
                    cand := pg_catalog.format('migrate._mysql_value(%L::regclass, %L, %L, s.%I)',
                                              src::text, c.remote_long, key_src, key_src);
                    BEGIN
                        PERFORM @extschema@.migrate_column(pl.plan_name, t.rel::text, c.attname, cand);
                        expr := cand;
                        action := pg_catalog.format('mapped to MySQL column %I (%s), read whole by migrate._mysql_value (one MySQL query a row;'
                                                    ' mysql_fdw cannot read values over 8192 bytes)',
                                                    c.remote_long, c.remote_long_type);
                    EXCEPTION WHEN OTHERS THEN
                        action := 'not mapped: ' || SQLERRM;
                    END;
                END IF;
                RETURN NEXT;
                CONTINUE;
            END IF;
            IF c.src_col IS NULL THEN
                -- left unmapped: the target's identity, default or BEFORE
                -- INSERT trigger fills it (part of the target's contract)
                action := CASE WHEN c.is_identity
                               THEN 'no source column: the identity generates it'
                               WHEN c.has_default
                               THEN 'no source column: the default applies'
                               WHEN c.triggers IS NOT NULL
                               THEN 'no source column: left to BEFORE INSERT trigger ' || c.triggers
                                    || CASE WHEN c.attnotnull THEN ' (NOT NULL: a row it does not fill is refused)' ELSE '' END
                               WHEN c.attnotnull
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
                    OR (migrate._mysql_read_type(c.data_type, c.column_type) = 'text'
                        AND c.src_type IN ('varchar'::regtype, 'bpchar'::regtype, 'json'::regtype))
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
                -- zero dates (0000-00-00), zero-in-date (2020-00-15,
                -- 2020-05-00) and the year 0: PostgreSQL has none of them
                cands := cands || pg_catalog.format('(CASE WHEN %s ~ ''^(0000|[0-9]{4}-00|[0-9]{4}-[0-9]{2}-00)'' THEN NULL ELSE %s END)::%s',
                                                    ref, ref, tname);
                note := 'zero dates (year, month or day 0, e.g. 0000-00-00) become NULL';
            ELSIF c.data_type = 'set' OR (pg_catalog.format_type(c.atttypid, NULL) LIKE '%[]'
                                          AND c.src_type IN ('text'::regtype, 'varchar'::regtype)) THEN
                cands := cands || pg_catalog.format('pg_catalog.string_to_array(%s, '','')::%s', ref, tname);
            ELSIF c.data_type = 'year' AND c.atttypid = 'date'::regtype THEN
                cands := cands || pg_catalog.format('pg_catalog.make_date(nullif(%s, 0)::integer, 1, 1)', ref);
                note := 'the zero year 0000 becomes NULL';
            ELSIF c.data_type = 'year' AND c.atttypid IN ('int2'::regtype, 'int4'::regtype, 'int8'::regtype, 'numeric'::regtype) THEN
                cands := cands || pg_catalog.format('nullif(%s, 0)', ref);
                note := 'the zero year 0000 becomes NULL';
            END IF;
            cands := cands || ref || pg_catalog.format('(%s)::%s', ref, tname)
                           || pg_catalog.format('(%s)::text::%s', ref, tname);
            chosen := NULL;
            FOREACH cand IN ARRAY cands LOOP
                BEGIN
                    PERFORM @extschema@.migrate_column(pl.plan_name, t.rel::text, c.attname, cand);
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
                PERFORM @extschema@.migrate_column(pl.plan_name, t.rel::text, c.attname, NULL);
                expr := ref;
                action := 'same name and type';
            ELSE
                expr := chosen;
                action := CASE WHEN chosen = ref THEN 'mapped'
                               WHEN note IS NOT NULL AND chosen = cands[1] THEN 'mapped with a cast: ' || note
                               ELSE 'mapped with a cast' END;
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
    -- dropped, not kept for the session: another role may call next
    DROP TABLE pg_temp.migrate_automap_remote;
END;
$$;
REVOKE ALL ON FUNCTION migrate._migrate_automap(text, boolean) FROM PUBLIC;

-- The type and typmod of each mapped expression of a table, as the engine
-- would compute it (a temporary view over the source, nothing is read);
-- error holds the planner's message where the expression does not plan.
CREATE OR REPLACE FUNCTION migrate._mapped_types(p_plan text, p_target regclass)
RETURNS TABLE (column_name name, expr text, expr_type oid, expr_typmod integer, error text)
LANGUAGE plpgsql
SET client_min_messages = warning
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    path text := migrate._caller_search_path();
    tm migrate.table_map;
    m record;
BEGIN
    SELECT * INTO tm FROM migrate.table_map x WHERE x.plan = p_plan AND x.target = p_target;
    FOR m IN SELECT * FROM migrate._mapped_columns(p_plan, p_target) LOOP
        column_name := m.column_name;
        expr := m.expr;
        expr_type := NULL; expr_typmod := NULL; error := NULL;
        BEGIN
            PERFORM migrate._check_expression(m.expr, 'expression');
            DROP VIEW IF EXISTS pg_temp.migrate_mapped_type;
            -- the view is parsed under the caller's search_path, and no
            -- other statement runs under it (undone by the block on error)
            PERFORM pg_catalog.set_config('search_path', path, true);
            EXECUTE pg_catalog.format('CREATE TEMP VIEW migrate_mapped_type AS SELECT %s AS v FROM %s AS s',
                                      m.expr, tm.source);
            PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
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
SET search_path = pg_catalog, pg_temp
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
 * Nothing is read from the source (expressions are planned, not run, under
 * the caller's search_path).  Runs as the plan's owner (the caller must be
 * a member of it): the body is migrate._migrate_check.
 */
CREATE OR REPLACE FUNCTION migrate_check(plan text)
RETURNS TABLE (severity text, table_name text, column_name name, message text)
LANGUAGE C
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'migrate_call_as_owner';

CREATE OR REPLACE FUNCTION migrate._migrate_check(plan text)
RETURNS TABLE (severity text, table_name text, column_name name, message text)
LANGUAGE plpgsql
SET client_min_messages = warning
SET jit = off
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    caller_path text := migrate._caller_search_path();
    pl migrate.plan := migrate._plan(plan);
    src_ns oid := (SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = pl.source_schema);
    tgt_ns oid := (SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = pl.target_schema);
    tm migrate.table_map;
    tname text;
    r record;
BEGIN
    CREATE TEMP TABLE IF NOT EXISTS migrate_check_finding
        (severity text, table_name text, column_name name, message text);
    TRUNCATE migrate_check_finding;

    FOR tm IN SELECT * FROM migrate.table_map m WHERE m.plan = pl.plan_name
               ORDER BY migrate._relname(m.target, caller_path) LOOP
        tname := migrate._relname(tm.target, caller_path);
        IF pg_catalog.to_regclass(tm.source) IS NULL THEN
            INSERT INTO migrate_check_finding VALUES
                ('error', tname, NULL, pg_catalog.format('source relation %s does not exist', tm.source));
            CONTINUE;
        END IF;
        -- mappings that do not plan, and casts that can lose data
        FOR r IN SELECT mt.*, a.atttypid, a.atttypmod
                   FROM migrate._mapped_types(pl.plan_name, tm.target) mt
                   JOIN pg_catalog.pg_attribute a ON a.attrelid = tm.target AND a.attname = mt.column_name LOOP
            IF r.error IS NOT NULL THEN
                INSERT INTO migrate_check_finding VALUES
                    ('error', tname, r.column_name,
                     pg_catalog.format('mapping %s does not plan: %s', r.expr, r.error));
            ELSE
                INSERT INTO migrate_check_finding
                SELECT lc.severity, tname, r.column_name, lc.message || pg_catalog.format(' (%s)', r.expr)
                  FROM migrate._lossy_cast(r.expr_type, r.expr_typmod, r.atttypid, r.atttypmod) lc;
                BEGIN
                    PERFORM migrate._check_mapping(pl.plan_name, tm.target, r.column_name);
                EXCEPTION WHEN OTHERS THEN
                    INSERT INTO migrate_check_finding VALUES ('error', tname, r.column_name, SQLERRM);
                END;
            END IF;
        END LOOP;
        -- rules and filter
        BEGIN
            PERFORM migrate._check_mapping(pl.plan_name, tm.target);
        EXCEPTION WHEN OTHERS THEN
            IF NOT EXISTS (SELECT 1 FROM migrate_check_finding f WHERE f.message = SQLERRM) THEN
                INSERT INTO migrate_check_finding VALUES ('error', tname, NULL, SQLERRM);
            END IF;
        END;
        -- NOT NULL target columns that get nothing: every row is refused,
        -- unless a BEFORE INSERT row trigger of the target fills them (the
        -- target's contract; we cannot see which columns it sets)
        INSERT INTO migrate_check_finding
        SELECT CASE WHEN trg.names IS NULL THEN 'error' ELSE 'warning' END, tname, a.attname,
               CASE WHEN trg.names IS NULL
                    THEN 'NOT NULL column has no mapping, no same-named source column and no default: every row would be refused'
                    ELSE 'NOT NULL column has no mapping, no same-named source column and no default: rows are refused unless BEFORE INSERT trigger '
                         || trg.names || ' fills it' END
          FROM pg_catalog.pg_attribute a
          LEFT JOIN LATERAL (
                SELECT pg_catalog.string_agg(pg_catalog.quote_ident(t.tgname::text), ', ' ORDER BY t.tgname) AS names
                  FROM pg_catalog.pg_trigger t
                 WHERE t.tgrelid = tm.target AND NOT t.tgisinternal AND t.tgenabled <> 'D'
                   -- TRIGGER_TYPE_ROW (1), BEFORE (2), INSERT (4)
                   AND (t.tgtype & 7) = 7) trg ON true
         WHERE a.attrelid = tm.target AND a.attnum > 0 AND NOT a.attisdropped AND a.attnotnull
           AND NOT a.atthasdef AND a.attidentity = '' AND a.attgenerated = ''
           AND a.attname NOT IN (SELECT m.column_name FROM migrate._mapped_columns(pl.plan_name, tm.target) m);
        -- keys
        IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_index i
                        WHERE i.indrelid = tm.target AND i.indisunique AND i.indpred IS NULL AND i.indexprs IS NULL
                          AND (SELECT pg_catalog.array_agg(a.attname) FROM pg_catalog.pg_attribute a
                                WHERE a.attrelid = tm.target AND a.attnum = ANY (i.indkey)) <@ tm.key) THEN
            INSERT INTO migrate_check_finding VALUES
                ('warning', tname, NULL,
                 pg_catalog.format('key (%s) is not unique in the target: duplicate source keys load twice and a re-run cannot skip or upsert',
                                   pg_catalog.array_to_string(tm.key, ', ')));
        END IF;
        INSERT INTO migrate_check_finding
        SELECT 'warning', tname, a.attname, 'key column is nullable in the target: source rows with a NULL key are never read'
          FROM pg_catalog.pg_attribute a
         WHERE a.attrelid = tm.target AND a.attname = ANY (tm.key) AND NOT a.attnotnull;
        -- foreign keys to tables the plan does not load
        INSERT INTO migrate_check_finding
        SELECT 'warning', tname, NULL,
               pg_catalog.format('foreign key %s references %s, which the plan does not load: rows are refused unless it already holds their keys',
                                 con.conname, migrate._relname(con.confrelid::regclass, caller_path))
          FROM pg_catalog.pg_constraint con
         WHERE con.conrelid = tm.target AND con.contype = 'f' AND con.confrelid <> tm.target
           AND NOT EXISTS (SELECT 1 FROM migrate.table_map m WHERE m.plan = pl.plan_name AND m.target = con.confrelid);
    END LOOP;

    -- self-references and foreign-key cycles between tables of the plan:
    -- what the run does with them (migrate._fk_cycle_breaks, which the run
    -- itself uses)
    INSERT INTO migrate_check_finding
    SELECT CASE WHEN priv.may THEN 'info' ELSE 'warning' END, migrate._relname(b.conrelid, caller_path),
           CASE WHEN pg_catalog.cardinality(con.conkey) = 1
                THEN (SELECT a.attname FROM pg_catalog.pg_attribute a
                       WHERE a.attrelid = con.conrelid AND a.attnum = con.conkey[1]) END,
           CASE WHEN NOT priv.may
                THEN pg_catalog.format('foreign key %s %s, but the plan owner may not drop it and add it back (that needs the ownership of %s and REFERENCES on %s): '
                                       'it stays, and rows that reference rows not loaded yet are refused (23503)',
                                       b.conname,
                                       CASE WHEN b.conrelid = b.confrelid THEN 'references its own table'
                                            ELSE 'closes a cycle (' || (SELECT pg_catalog.string_agg(migrate._relname(p, caller_path), ' -> ' ORDER BY o)
                                                                         FROM unnest(b.cycle) WITH ORDINALITY u(p, o)) || ')' END,
                                       migrate._relname(b.conrelid, caller_path), migrate._relname(b.confrelid, caller_path))
                WHEN b.conrelid = b.confrelid
                THEN pg_catalog.format('foreign key %s references its own table: the run drops it for the load and adds it back, validated, once the table is loaded; '
                                       'rows whose referenced row is missing go to migrate.reject with 23503',
                                       b.conname)
                ELSE pg_catalog.format('foreign keys form a cycle (%s): the run drops foreign key %s for the load and adds it back, validated, once %s and %s are loaded; '
                                       'rows whose referenced row is missing go to migrate.reject with 23503',
                                       (SELECT pg_catalog.string_agg(migrate._relname(p, caller_path), ' -> ' ORDER BY o)
                                          FROM unnest(b.cycle) WITH ORDINALITY u(p, o)),
                                       b.conname, migrate._relname(b.conrelid, caller_path),
                                       migrate._relname(b.confrelid, caller_path)) END
      FROM migrate._fk_cycle_breaks(ARRAY(SELECT m.target::pg_catalog.oid FROM migrate.table_map m
                                           WHERE m.plan = pl.plan_name)) b
      JOIN pg_catalog.pg_constraint con ON con.oid = b.con
      -- as the run's planning decides (src/defer.c): the owner's rights
      CROSS JOIN LATERAL (SELECT pg_catalog.pg_has_role((SELECT c.relowner FROM pg_catalog.pg_class c WHERE c.oid = b.conrelid), 'USAGE')
                                 AND pg_catalog.has_table_privilege(b.confrelid, 'REFERENCES') AS may) priv;

    -- relations left unmapped on either side
    INSERT INTO migrate_check_finding
    SELECT 'warning', pg_catalog.format('%I.%I', pl.source_schema, sc.relname), NULL,
           'source relation is not mapped: its rows are not migrated'
      FROM pg_catalog.pg_class sc
     WHERE sc.relnamespace = src_ns AND sc.relkind IN ('r', 'v', 'm', 'f', 'p') AND NOT sc.relispartition
       AND NOT EXISTS (SELECT 1 FROM migrate.table_map m
                        WHERE m.plan = pl.plan_name AND pg_catalog.to_regclass(m.source) = sc.oid);
    INSERT INTO migrate_check_finding
    SELECT 'info', migrate._relname(tc.oid::regclass, caller_path), NULL,
           CASE WHEN EXISTS (SELECT 1 FROM pg_catalog.pg_index i WHERE i.indrelid = tc.oid AND i.indisprimary)
                THEN 'target table is not mapped'
                ELSE 'target table is not mapped and has no primary key: map it with migrate_table(..., key => ...)' END
      FROM pg_catalog.pg_class tc
     WHERE tc.relnamespace = tgt_ns AND tc.relkind IN ('r', 'p') AND NOT tc.relispartition
       AND NOT EXISTS (SELECT 1 FROM migrate.table_map m WHERE m.plan = pl.plan_name AND m.target = tc.oid);
    -- what migrate_automap(..., create_missing => true) would create for
    -- the source relations without a target (sql/database.sql), to review
    IF EXISTS (SELECT 1 FROM migrate_check_finding f WHERE f.message LIKE 'source relation is not mapped%')
       AND EXISTS (SELECT 1 FROM pg_catalog.pg_foreign_server s
                     JOIN pg_catalog.pg_foreign_data_wrapper w ON w.oid = s.srvfdw
                    WHERE s.srvname = pl.source_server AND w.fdwname IN ('mysql_fdw', 'postgres_fdw')) THEN
        BEGIN
            INSERT INTO migrate_check_finding
            SELECT 'info', coalesce(cm.source, pl.target_schema), cm.column_name,
                   'migrate_automap(..., create_missing => true): ' || cm.action || coalesce(': ' || cm.expr, '')
              FROM migrate._create_missing(pl.plan_name, true) cm;
        EXCEPTION WHEN OTHERS THEN
            INSERT INTO migrate_check_finding
            VALUES ('info', pl.source_schema, NULL,
                    'migrate_automap(..., create_missing => true) could not read the source catalog: ' || SQLERRM);
        END;
    END IF;

    RETURN QUERY
        SELECT f.severity, f.table_name, f.column_name, f.message FROM migrate_check_finding f
         ORDER BY CASE f.severity WHEN 'error' THEN 1 WHEN 'warning' THEN 2 ELSE 3 END,
                  f.table_name, f.column_name NULLS FIRST, f.message;
    -- dropped, not kept for the session: another role may call next
    DROP TABLE pg_temp.migrate_check_finding;
END;
$$;
REVOKE ALL ON FUNCTION migrate._migrate_check(text) FROM PUBLIC;

/*
 * migrate_profile(plan): one pass over each mapped source relation (after
 * its filter), measuring every source column and, for each target column,
 * how many mapped values the load would refuse (migrate._cast_fails: type,
 * typmod, domain) and how many are NULL for a NOT NULL column.  Replaces
 * the plan's earlier rows in migrate.profile_result and returns the new
 * ones.  Reads every source row: run it on a rehearsal copy or off-hours
 * for big tables.  Min and max values of sensitive source columns, and of
 * the target columns they feed (migrate_sensitive), are stored as '***'.
 * Runs as the plan's owner (the caller must be a member of it): the body is
 * migrate._migrate_profile; the owner's expressions and filter are
 * evaluated under the caller's search_path, migrate's own SQL around them
 * is fully qualified.
 */
CREATE OR REPLACE FUNCTION migrate_profile(plan text)
RETURNS SETOF migrate.profile_result
LANGUAGE C
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'migrate_call_as_owner';

CREATE OR REPLACE FUNCTION migrate._migrate_profile(plan text)
RETURNS SETOF migrate.profile_result
LANGUAGE plpgsql
SET client_min_messages = warning
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    path text := migrate._caller_search_path();
    pl migrate.plan := migrate._plan(plan);
    tm migrate.table_map;
    secret_src name[];
    secret_tgt name[];
    sc record;
    mc record;
    sel text[];
    i integer;
    nsel integer;
    res text[];
    total bigint;
    note text;
    err text;
    with_casts boolean;
    q text;
BEGIN
    DELETE FROM migrate.profile_result p WHERE p.plan = pl.plan_name;
    FOR tm IN SELECT * FROM migrate.table_map m WHERE m.plan = pl.plan_name ORDER BY m.target::text LOOP
        PERFORM migrate._verify_source(pl.plan_name, tm.target);
        -- the owner's SQL is pasted into the profile's query: one expression each
        FOR mc IN SELECT m.column_name, m.expr FROM migrate._mapped_columns(pl.plan_name, tm.target) m LOOP
            BEGIN
                PERFORM migrate._check_expression(mc.expr, 'expression');
            EXCEPTION WHEN OTHERS THEN
                RAISE EXCEPTION 'mapping of column "%" of table % in migration plan "%" is invalid: %',
                                mc.column_name, migrate._relname(tm.target, path), pl.plan_name, SQLERRM
                    USING ERRCODE = SQLSTATE, HINT = 'Map it with migrate_column().';
            END;
        END LOOP;
        IF tm.filter IS NOT NULL THEN
            BEGIN
                PERFORM migrate._check_expression(tm.filter, 'filter');
            EXCEPTION WHEN OTHERS THEN
                RAISE EXCEPTION 'filter of table % in migration plan "%" is invalid: %',
                                migrate._relname(tm.target, path), pl.plan_name, SQLERRM
                    USING ERRCODE = SQLSTATE, HINT = 'Set it with migrate_table().';
            END;
        END IF;
        SELECT coalesce(pg_catalog.array_agg(x.source_column), '{}') INTO secret_src
          FROM migrate.sensitive_column x WHERE x.plan = pl.plan_name AND x.target = tm.target;
        secret_tgt := migrate._sensitive_targets(pl.plan_name, tm.target);
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
            sel := ARRAY['pg_catalog.count(*)::pg_catalog.text'];
            TRUNCATE migrate_profile_cols;
            FOR sc IN SELECT a.attnum, a.attname, a.atttypid, pg_catalog.format_type(a.atttypid, a.atttypmod) AS tname,
                             EXISTS (SELECT 1 FROM pg_catalog.pg_proc p
                                      WHERE p.proname = 'min' AND p.prokind = 'a'
                                        AND p.pronamespace = 'pg_catalog'::regnamespace
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
                    || pg_catalog.format('(pg_catalog.count(*) OPERATOR(pg_catalog.-) pg_catalog.count(s.%I))::pg_catalog.text', sc.attname)
                    || pg_catalog.format('pg_catalog.count(DISTINCT s.%I)::pg_catalog.text', sc.attname)
                    || CASE WHEN sc.has_min THEN pg_catalog.format('pg_catalog.min(s.%I)::pg_catalog.text', sc.attname) ELSE 'NULL' END
                    || CASE WHEN sc.has_min THEN pg_catalog.format('pg_catalog.max(s.%I)::pg_catalog.text', sc.attname) ELSE 'NULL' END
                    || CASE WHEN sc.atttypid = 'bytea'::regtype
                            THEN pg_catalog.format('pg_catalog.min(pg_catalog.length(s.%I))::pg_catalog.text', sc.attname)
                            ELSE pg_catalog.format('pg_catalog.min(pg_catalog.char_length(s.%I::pg_catalog.text))::pg_catalog.text', sc.attname) END
                    || CASE WHEN sc.atttypid = 'bytea'::regtype
                            THEN pg_catalog.format('pg_catalog.max(pg_catalog.length(s.%I))::pg_catalog.text', sc.attname)
                            ELSE pg_catalog.format('pg_catalog.max(pg_catalog.char_length(s.%I::pg_catalog.text))::pg_catalog.text', sc.attname) END;
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
                                THEN pg_catalog.format('pg_catalog.count(*) FILTER (WHERE migrate._cast_fails(%s, %s::pg_catalog.regtype, %s))::pg_catalog.text',
                                                       -- "(x)::type" (automap's form): probe x, so that
                                                       -- a failing cast counts instead of raising
                                                       coalesce((SELECT '(' || m[1] || ')' || coalesce(m[2], '')
                                                                   FROM pg_catalog.regexp_match(mc.expr,
                                                                        '^\((.*)\)(::text)?::' || pg_catalog.regexp_replace(mc.base_type, '([^[:alnum:] _])', '\\\1', 'g') || '$') m),
                                                                mc.expr),
                                                       mc.atttypid, mc.atttypmod)
                                ELSE 'NULL' END
                        || CASE WHEN mc.attnotnull
                                THEN pg_catalog.format('pg_catalog.count(*) FILTER (WHERE (%s) IS NULL)::pg_catalog.text', mc.expr)
                                ELSE '''0''' END;
                END IF;
            END LOOP;
            q := pg_catalog.format('SELECT ARRAY[%s] FROM %s AS s%s', pg_catalog.array_to_string(sel, ', '),
                                   tm.source, coalesce(' WHERE (' || tm.filter || ')', ''));
            BEGIN
                -- the owner's expressions under the caller's search_path,
                -- only for this statement (the block undoes it on error)
                PERFORM pg_catalog.set_config('search_path', path, true);
                EXECUTE q INTO res;
                PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
                EXIT attempt;
            EXCEPTION WHEN OTHERS THEN
                -- an error text can quote a value: none of a sensitive column
                err := CASE WHEN secret_src = '{}' THEN SQLERRM
                            ELSE 'the error is not shown: the table has sensitive columns' END;
                IF NOT with_casts THEN
                    RAISE EXCEPTION 'profiling table % of migration plan "%" failed: %',
                                    migrate._relname(tm.target, path), pl.plan_name, err
                        USING ERRCODE = SQLSTATE,
                              HINT = 'Check the mappings with migrate_check().';
                END IF;
                note := 'cast failures not counted: ' || err;
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
               CASE WHEN c.source_column = ANY (secret_src) OR c.target_column = ANY (secret_tgt)
                    THEN '***' ELSE res[c.first_measure + 2] END,
               CASE WHEN c.source_column = ANY (secret_src) OR c.target_column = ANY (secret_tgt)
                    THEN '***' ELSE res[c.first_measure + 3] END,
               res[c.first_measure + 4]::integer, res[c.first_measure + 5]::integer,
               res[c.cast_measure]::bigint, res[c.cast_measure + 1]::bigint,
               CASE WHEN c.target_column IS NOT NULL AND NOT with_casts THEN note END
          FROM migrate_profile_cols c
         ORDER BY c.ord, c.target_column
        RETURNING p.*;
    END LOOP;
    -- dropped, not kept for the session: another role may call next
    DROP TABLE IF EXISTS pg_temp.migrate_profile_cols;
END;
$$;
REVOKE ALL ON FUNCTION migrate._migrate_profile(text) FROM PUBLIC;
