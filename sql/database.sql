/*
 * database.sql: tables created from the source catalog
 * (migrate_automap(plan, create_missing => true)) and the steps of
 * migrate_database(), pgloader's one command in SQL (src/database.c runs
 * them in a background job, committing between them).
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
 * The source model.  A reader fills four temporary tables from the
 * remote catalog of one source database (MySQL/MariaDB through mysql_fdw:
 * information_schema; PostgreSQL through postgres_fdw: pg_catalog), with
 * the target's types already chosen, and migrate._create_missing() turns
 * them into DDL:
 *   migrate_model_table  (table_name, base: a table, not a view)
 *   migrate_model_column (table_name, column_name, ordinal, type, not_null,
 *                         default_expr, identity, check_kind enum|set,
 *                         check_values, note)
 *   migrate_model_key    (table_name, name, kind p|u|i, columns, prefixes,
 *                         def: a PostgreSQL index definition, note)
 *   migrate_model_fk     (table_name, name, columns, ref_table, ref_columns,
 *                         on_update, on_delete)
 * Names are the source's; migrate._created_name() folds them.
 */
CREATE OR REPLACE FUNCTION migrate._model_reset()
RETURNS void
LANGUAGE plpgsql
SET client_min_messages = warning
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    DROP TABLE IF EXISTS pg_temp.migrate_model_table, pg_temp.migrate_model_column,
                         pg_temp.migrate_model_key, pg_temp.migrate_model_fk;
    CREATE TEMP TABLE migrate_model_table (table_name text PRIMARY KEY, base boolean NOT NULL);
    CREATE TEMP TABLE migrate_model_column
        (table_name text, column_name text, ordinal integer, type text, not_null boolean,
         default_expr text, identity boolean, check_kind text, check_values text[], note text);
    CREATE TEMP TABLE migrate_model_key
        (table_name text, name text, kind "char", columns text[], prefixes integer[],
         def text, note text);
    CREATE TEMP TABLE migrate_model_fk
        (table_name text, name text, columns text[], ref_table text, ref_columns text[],
         on_update text, on_delete text);
END;
$$;

-- The name a created table or column gets from a MySQL source (p_fold):
-- the source's in lower case, unless another name of the same list
-- (p_names: the source's tables, or the table's columns) folds to it too;
-- then, and from a PostgreSQL source, the source's as it is.
CREATE OR REPLACE FUNCTION migrate._created_name(p_name text, p_names text[], p_fold boolean)
RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN NOT p_fold OR (SELECT pg_catalog.count(*) FROM pg_catalog.unnest(p_names) n
                                     WHERE pg_catalog.lower(n) = pg_catalog.lower(p_name)) > 1
                THEN p_name ELSE pg_catalog.lower(p_name) END
$$;

/*
 * The PostgreSQL type of a created column for a MySQL/MariaDB column (the
 * cast rules of docs/reference.md, migrate_automap): tinyint(1) and bit(1)
 * boolean, unsigned integers one size up (an auto_increment bigint
 * unsigned stays bigint, as identity), decimal(p,s) numeric(p,s), dates
 * and times as such (zero dates become NULL), CHAR as varchar (MySQL drops
 * CHAR's trailing blanks), ENUM text (with a CHECK), SET text[], BLOBs and
 * binary strings bytea, inet4/inet6 inet, uuid uuid; anything else text.
 */
CREATE OR REPLACE FUNCTION migrate._mysql_target_type(p_data_type text, p_column_type text,
                                                      p_auto_increment boolean DEFAULT false)
RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE
           WHEN dt = 'tinyint' AND ct ~ '^tinyint\(1\)' AND NOT uns AND NOT p_auto_increment THEN 'boolean'
           WHEN dt = 'tinyint' THEN 'smallint'
           WHEN dt = 'smallint' THEN CASE WHEN uns THEN 'integer' ELSE 'smallint' END
           WHEN dt = 'mediumint' THEN 'integer'
           WHEN dt IN ('int', 'integer') THEN CASE WHEN uns THEN 'bigint' ELSE 'integer' END
           WHEN dt = 'bigint' THEN CASE WHEN uns AND NOT p_auto_increment THEN 'numeric(20)' ELSE 'bigint' END
           WHEN dt IN ('decimal', 'numeric')
                THEN 'numeric' || coalesce(pg_catalog.substring(ct, '\(\d+(?:,\d+)?\)'), '')
           WHEN dt = 'float' THEN 'real'
           WHEN dt IN ('double', 'real') THEN 'double precision'
           WHEN dt = 'date' THEN 'date'
           WHEN dt IN ('datetime', 'timestamp')
                THEN 'timestamp' || coalesce(pg_catalog.substring(ct, '\(\d\)'), '')
           WHEN dt = 'time' THEN 'time' || coalesce(pg_catalog.substring(ct, '\(\d\)'), '')
           WHEN dt = 'year' THEN 'smallint'
           WHEN dt IN ('char', 'varchar')
                THEN 'varchar' || coalesce(pg_catalog.substring(ct, '\(\d+\)'), '')
           WHEN dt IN ('tinytext', 'text', 'mediumtext', 'longtext') THEN 'text'
           WHEN dt = 'json' THEN 'json'
           WHEN dt = 'enum' THEN 'text'
           WHEN dt = 'set' THEN 'text[]'
           WHEN dt = 'bit' AND ct IN ('bit(1)', 'bit') THEN 'boolean'
           WHEN dt IN ('binary', 'varbinary', 'tinyblob', 'blob', 'mediumblob', 'longblob', 'bit',
                       'geometry', 'point', 'linestring', 'polygon', 'multipoint',
                       'multilinestring', 'multipolygon', 'geometrycollection') THEN 'bytea'
           WHEN dt IN ('inet4', 'inet6') THEN 'inet'
           WHEN dt = 'uuid' THEN 'uuid'
           ELSE 'text' END
      FROM (SELECT pg_catalog.lower(p_data_type) AS dt, pg_catalog.lower(p_column_type) AS ct,
                   pg_catalog.lower(p_column_type) LIKE '%unsigned%' AS uns) x
$$;

-- The values of a MySQL ENUM or SET column type: enum('a','b''c') -> {a,b'c}.
CREATE OR REPLACE FUNCTION migrate._mysql_type_values(p_column_type text)
RETURNS text[]
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pg_catalog.array_agg(pg_catalog.replace(pg_catalog.replace(m[1], '''''', ''''), '\\', '\')
                                ORDER BY o)
      FROM pg_catalog.regexp_matches(pg_catalog.substring(p_column_type, '^[a-z]+\((.*)\)$'),
                                     '''((?:[^'']|'''')*)''', 'g') WITH ORDINALITY AS r(m, o)
$$;

/*
 * The DEFAULT of a created column for a MySQL/MariaDB COLUMN_DEFAULT, or
 * NULL (no default): MariaDB quotes literals ('abc'), MySQL does not;
 * CURRENT_TIMESTAMP and the like become CURRENT_TIMESTAMP; a zero date
 * (the column's values of 0000-00-00 become NULL) or a value of the
 * column's type PostgreSQL refuses is no default.
 */
CREATE OR REPLACE FUNCTION migrate._mysql_default(p_default text, p_data_type text, p_type text)
RETURNS text
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    d text := pg_catalog.btrim(p_default);
    v text;
    expr text;
BEGIN
    IF d IS NULL OR pg_catalog.upper(d) = 'NULL' OR d = '' AND p_type <> 'text' AND p_type NOT LIKE 'varchar%' THEN
        RETURN NULL;
    END IF;
    IF pg_catalog.lower(d) ~ '^(current_timestamp|now|localtimestamp|localtime)(\(\d*\))?$' THEN
        RETURN CASE WHEN p_type = 'date' THEN 'CURRENT_DATE'
                    WHEN p_type LIKE 'time%' AND p_type NOT LIKE 'timestamp%' THEN 'LOCALTIME'
                    ELSE 'LOCALTIMESTAMP' END;
    ELSIF pg_catalog.lower(d) ~ '^(curdate|current_date)(\(\))?$' THEN
        RETURN 'CURRENT_DATE';
    ELSIF d ~ '^''.*''$' THEN
        v := pg_catalog.replace(pg_catalog.replace(pg_catalog.substr(d, 2, pg_catalog.length(d) - 2),
                                                   '''''', ''''), '\\', '\');
    ELSIF pg_catalog.lower(d) ~ '^b''[01]+''$' THEN
        v := pg_catalog.substring(d, 3, pg_catalog.length(d) - 3);
        IF p_type = 'boolean' THEN
            RETURN CASE WHEN v ~ '1' THEN 'true' ELSE 'false' END;
        END IF;
        RETURN NULL;
    ELSIF d ~ '^[-+]?[0-9]*\.?[0-9]+([eE][-+]?[0-9]+)?$' THEN
        v := d;
    ELSIF d ~ '\(' THEN
        RETURN NULL;            -- an expression (MariaDB, MySQL 8): not translated
    ELSE
        v := d;                 -- MySQL: the literal, unquoted
    END IF;
    IF v ~ '^0000-00-00' OR (p_data_type IN ('date', 'datetime', 'timestamp') AND v ~ '^[0-9]{4}-00|^[0-9]{4}-[0-9]{2}-00') THEN
        RETURN NULL;
    END IF;
    expr := CASE WHEN p_type = 'boolean' AND v ~ '^[0-9]+$' THEN CASE WHEN v::numeric <> 0 THEN 'true' ELSE 'false' END
                 WHEN p_type = 'text[]' THEN pg_catalog.format('pg_catalog.string_to_array(%L, '','')', v)
                 ELSE pg_catalog.format('%L::%s', v, p_type) END;
    BEGIN
        EXECUTE 'SELECT ' || expr;
    EXCEPTION WHEN OTHERS THEN
        RETURN NULL;
    END;
    RETURN expr;
END;
$$;

/*
 * The model of MySQL/MariaDB database p_database of mysql_fdw server
 * p_server, read through temporary foreign tables on the server's
 * information_schema (TABLES, COLUMNS, STATISTICS, KEY_COLUMN_USAGE,
 * REFERENTIAL_CONSTRAINTS).  As the caller, with its user mapping.
 * No merge joins: mysql_fdw pushes their ORDER BY down, and MySQL sorts
 * names by its case-insensitive collation (orders_ibfk_1 before
 * order_line_ibfk_1), which is not ours ("mergejoin input data is out of
 * order").
 */
CREATE OR REPLACE FUNCTION migrate._mysql_model(p_server name, p_database text)
RETURNS void
LANGUAGE plpgsql
SET client_min_messages = warning
-- small temporary tables without statistics: JIT would cost more than the
-- queries; no merge join over the foreign tables: mysql_fdw pushes its
-- ORDER BY to MySQL, whose case-insensitive collation sorts otherwise
SET jit = off
SET enable_mergejoin = off
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    ft text;
BEGIN
    PERFORM migrate._model_reset();
    DROP FOREIGN TABLE IF EXISTS pg_temp.migrate_my_tables, pg_temp.migrate_my_columns,
                                 pg_temp.migrate_my_statistics, pg_temp.migrate_my_kcu,
                                 pg_temp.migrate_my_rc, pg_temp.migrate_my_checks;
    ft := ' SERVER ' || pg_catalog.quote_ident(p_server) || ' OPTIONS (dbname ''information_schema'', table_name %L)';
    EXECUTE pg_catalog.format('CREATE FOREIGN TABLE pg_temp.migrate_my_tables ("TABLE_SCHEMA" varchar(64),'
                              ' "TABLE_NAME" varchar(64), "TABLE_TYPE" varchar(64))' || ft, 'TABLES');
    EXECUTE pg_catalog.format('CREATE FOREIGN TABLE pg_temp.migrate_my_columns ("TABLE_SCHEMA" varchar(64),'
                              ' "TABLE_NAME" varchar(64), "COLUMN_NAME" varchar(64), "ORDINAL_POSITION" bigint,'
                              ' "COLUMN_DEFAULT" text, "IS_NULLABLE" varchar(3), "DATA_TYPE" varchar(64),'
                              ' "COLUMN_TYPE" text, "EXTRA" varchar(256))' || ft, 'COLUMNS');
    EXECUTE pg_catalog.format('CREATE FOREIGN TABLE pg_temp.migrate_my_statistics ("TABLE_SCHEMA" varchar(64),'
                              ' "TABLE_NAME" varchar(64), "NON_UNIQUE" bigint, "INDEX_NAME" varchar(64),'
                              ' "SEQ_IN_INDEX" bigint, "COLUMN_NAME" varchar(64), "SUB_PART" bigint,'
                              ' "INDEX_TYPE" varchar(16))' || ft, 'STATISTICS');
    EXECUTE pg_catalog.format('CREATE FOREIGN TABLE pg_temp.migrate_my_kcu ("CONSTRAINT_SCHEMA" varchar(64),'
                              ' "CONSTRAINT_NAME" varchar(64), "TABLE_SCHEMA" varchar(64), "TABLE_NAME" varchar(64),'
                              ' "COLUMN_NAME" varchar(64), "ORDINAL_POSITION" bigint,'
                              ' "REFERENCED_TABLE_SCHEMA" varchar(64), "REFERENCED_TABLE_NAME" varchar(64),'
                              ' "REFERENCED_COLUMN_NAME" varchar(64))' || ft, 'KEY_COLUMN_USAGE');
    EXECUTE pg_catalog.format('CREATE FOREIGN TABLE pg_temp.migrate_my_checks ("CONSTRAINT_SCHEMA" varchar(64),'
                              ' "TABLE_NAME" varchar(64), "CONSTRAINT_NAME" varchar(64), "CHECK_CLAUSE" text)' || ft,
                              'CHECK_CONSTRAINTS');
    EXECUTE pg_catalog.format('CREATE FOREIGN TABLE pg_temp.migrate_my_rc ("CONSTRAINT_SCHEMA" varchar(64),'
                              ' "CONSTRAINT_NAME" varchar(64), "TABLE_NAME" varchar(64),'
                              ' "UPDATE_RULE" varchar(64), "DELETE_RULE" varchar(64))' || ft, 'REFERENTIAL_CONSTRAINTS');

    INSERT INTO migrate_model_table
    SELECT t."TABLE_NAME", t."TABLE_TYPE" IN ('BASE TABLE', 'SYSTEM VERSIONED')
      FROM pg_temp.migrate_my_tables t WHERE t."TABLE_SCHEMA" = p_database;

    INSERT INTO migrate_model_column
    SELECT c."TABLE_NAME", c."COLUMN_NAME", c."ORDINAL_POSITION",
           x.type,
           c."IS_NULLABLE" = 'NO'
               -- a NOT NULL date whose default is a zero date: its zero dates become NULL
               AND NOT (pg_catalog.lower(c."DATA_TYPE") IN ('date', 'datetime', 'timestamp')
                        AND coalesce(c."COLUMN_DEFAULT", '') ~ '^''?0000-00-00'),
           d.expr,
           x.ai AND x.type IN ('smallint', 'integer', 'bigint'),
           CASE WHEN pg_catalog.lower(c."DATA_TYPE") IN ('enum', 'set') THEN pg_catalog.lower(c."DATA_TYPE") END,
           CASE WHEN pg_catalog.lower(c."DATA_TYPE") IN ('enum', 'set') THEN migrate._mysql_type_values(c."COLUMN_TYPE") END,
           pg_catalog.concat_ws('; ',
               CASE WHEN pg_catalog.lower(c."DATA_TYPE") IN ('date', 'datetime', 'timestamp')
                    THEN 'zero dates become NULL' END,
               CASE WHEN c."EXTRA" ~* 'on update' THEN 'ON UPDATE CURRENT_TIMESTAMP is not kept' END,
               CASE WHEN c."EXTRA" ~* 'generated' THEN 'a generated column in MySQL: its values are copied' END,
               CASE WHEN c."COLUMN_DEFAULT" IS NOT NULL AND pg_catalog.upper(c."COLUMN_DEFAULT") <> 'NULL' AND NOT x.ai
                         AND d.expr IS NULL
                    THEN pg_catalog.format('default %s not kept', c."COLUMN_DEFAULT") END)
      FROM pg_temp.migrate_my_columns c
     CROSS JOIN LATERAL (SELECT c."EXTRA" ~* 'auto_increment' AS ai) a
     CROSS JOIN LATERAL (SELECT migrate._mysql_target_type(c."DATA_TYPE", c."COLUMN_TYPE", a.ai) AS type, a.ai) x
     -- once a column: it tries the default in a subtransaction
     CROSS JOIN LATERAL (SELECT CASE WHEN NOT x.ai
                                     THEN migrate._mysql_default(c."COLUMN_DEFAULT", pg_catalog.lower(c."DATA_TYPE"), x.type)
                                END AS expr OFFSET 0) d
     WHERE c."TABLE_SCHEMA" = p_database;

    INSERT INTO migrate_model_key
    SELECT s."TABLE_NAME", s."INDEX_NAME",
           CASE WHEN s."INDEX_NAME" = 'PRIMARY' THEN 'p' WHEN pg_catalog.max(s."NON_UNIQUE") = 0 THEN 'u' ELSE 'i' END,
           pg_catalog.array_agg(s."COLUMN_NAME"::text ORDER BY s."SEQ_IN_INDEX"),
           pg_catalog.array_agg(s."SUB_PART"::integer ORDER BY s."SEQ_IN_INDEX"),
           NULL,
           CASE WHEN pg_catalog.max(s."INDEX_TYPE") IN ('FULLTEXT', 'SPATIAL')
                THEN pg_catalog.format('%s index not created', pg_catalog.max(s."INDEX_TYPE"))
                WHEN pg_catalog.bool_or(s."COLUMN_NAME" IS NULL)
                THEN 'functional index not created' END
      FROM pg_temp.migrate_my_statistics s
     WHERE s."TABLE_SCHEMA" = p_database
     GROUP BY s."TABLE_NAME", s."INDEX_NAME";

    -- CHECK constraints (MariaDB 10.2, MySQL 8.0.16), MySQL's quoting made
    -- PostgreSQL's; the json_valid() of MariaDB's JSON columns is the type's
    INSERT INTO migrate_model_key
    SELECT ck."TABLE_NAME", ck."CONSTRAINT_NAME", 'c', NULL, NULL,
           pg_catalog.replace(ck."CHECK_CLAUSE", '`', '"'), NULL
      FROM pg_temp.migrate_my_checks ck
     WHERE ck."CONSTRAINT_SCHEMA" = p_database AND ck."CHECK_CLAUSE" !~* '^json_valid\(';

    INSERT INTO migrate_model_fk
    SELECT k."TABLE_NAME", k."CONSTRAINT_NAME",
           pg_catalog.array_agg(k."COLUMN_NAME"::text ORDER BY k."ORDINAL_POSITION"),
           CASE WHEN pg_catalog.max(k."REFERENCED_TABLE_SCHEMA") = p_database
                THEN pg_catalog.max(k."REFERENCED_TABLE_NAME") END,
           pg_catalog.array_agg(k."REFERENCED_COLUMN_NAME"::text ORDER BY k."ORDINAL_POSITION"),
           pg_catalog.max(r."UPDATE_RULE"), pg_catalog.max(r."DELETE_RULE")
      FROM pg_temp.migrate_my_kcu k
      LEFT JOIN pg_temp.migrate_my_rc r
        ON r."CONSTRAINT_SCHEMA" = k."CONSTRAINT_SCHEMA" AND r."CONSTRAINT_NAME" = k."CONSTRAINT_NAME"
       AND r."TABLE_NAME" = k."TABLE_NAME"
     WHERE k."TABLE_SCHEMA" = p_database AND k."REFERENCED_TABLE_NAME" IS NOT NULL
     GROUP BY k."TABLE_NAME", k."CONSTRAINT_NAME";

    DROP FOREIGN TABLE pg_temp.migrate_my_tables, pg_temp.migrate_my_columns,
                       pg_temp.migrate_my_statistics, pg_temp.migrate_my_kcu, pg_temp.migrate_my_rc,
                       pg_temp.migrate_my_checks;
END;
$$;

/*
 * The model of schema p_schema of a PostgreSQL database reached through
 * postgres_fdw server p_server, read through temporary foreign tables on
 * its pg_catalog (readable by any role there).  Column types are those of
 * the imported foreign tables (IMPORT FOREIGN SCHEMA keeps them); keys,
 * unique constraints and foreign keys come from pg_constraint, the other
 * indexes from pg_indexes (their definitions), identity and serial columns
 * become identity columns; other defaults are kept where the remote
 * information_schema shows them (to the table's owner) and they plan here.
 */
CREATE OR REPLACE FUNCTION migrate._pg_model(p_server name, p_schema text, p_local_schema name)
RETURNS void
LANGUAGE plpgsql
SET client_min_messages = warning
-- small temporary tables without statistics: JIT would cost more than the queries
SET jit = off
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    ft text := ' SERVER ' || pg_catalog.quote_ident(p_server) || ' OPTIONS (schema_name %L, table_name %L)';
    r record;
    expr text;
BEGIN
    PERFORM migrate._model_reset();
    DROP FOREIGN TABLE IF EXISTS pg_temp.migrate_pg_class, pg_temp.migrate_pg_namespace,
                                 pg_temp.migrate_pg_attribute, pg_temp.migrate_pg_constraint,
                                 pg_temp.migrate_pg_indexes, pg_temp.migrate_pg_depend,
                                 pg_temp.migrate_pg_columns, pg_temp.migrate_pg_checks;
    EXECUTE pg_catalog.format('CREATE FOREIGN TABLE pg_temp.migrate_pg_namespace (oid oid, nspname name)' || ft,
                              'pg_catalog', 'pg_namespace');
    EXECUTE pg_catalog.format('CREATE FOREIGN TABLE pg_temp.migrate_pg_class (oid oid, relname name,'
                              ' relnamespace oid, relkind "char")' || ft, 'pg_catalog', 'pg_class');
    EXECUTE pg_catalog.format('CREATE FOREIGN TABLE pg_temp.migrate_pg_attribute (attrelid oid, attnum int2,'
                              ' attname name, attnotnull boolean, attisdropped boolean, attidentity "char")' || ft,
                              'pg_catalog', 'pg_attribute');
    EXECUTE pg_catalog.format('CREATE FOREIGN TABLE pg_temp.migrate_pg_constraint (oid oid, conname name,'
                              ' contype "char", conrelid oid, confrelid oid, conkey int2[], confkey int2[],'
                              ' confupdtype "char", confdeltype "char", conindid oid)' || ft,
                              'pg_catalog', 'pg_constraint');
    EXECUTE pg_catalog.format('CREATE FOREIGN TABLE pg_temp.migrate_pg_indexes (schemaname name, tablename name,'
                              ' indexname name, indexdef text)' || ft, 'pg_catalog', 'pg_indexes');
    EXECUTE pg_catalog.format('CREATE FOREIGN TABLE pg_temp.migrate_pg_depend (classid oid, objid oid,'
                              ' refobjid oid, refobjsubid integer, deptype "char")' || ft, 'pg_catalog', 'pg_depend');
    EXECUTE pg_catalog.format('CREATE FOREIGN TABLE pg_temp.migrate_pg_columns (table_schema name, table_name name,'
                              ' column_name name, column_default text)' || ft, 'information_schema', 'columns');
    EXECUTE pg_catalog.format('CREATE FOREIGN TABLE pg_temp.migrate_pg_checks (constraint_schema name,'
                              ' constraint_name name, check_clause text)' || ft, 'information_schema', 'check_constraints');

    CREATE TEMP TABLE migrate_pg_rel AS
    SELECT c.oid, c.relname::text AS relname, c.relkind
      FROM pg_temp.migrate_pg_class c JOIN pg_temp.migrate_pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname = p_schema AND c.relkind IN ('r', 'p', 'v', 'm', 'f');
    CREATE TEMP TABLE migrate_pg_att AS
    SELECT a.attrelid, a.attnum, a.attname::text AS attname, a.attnotnull, a.attidentity
      FROM pg_temp.migrate_pg_attribute a
     WHERE a.attrelid IN (SELECT oid FROM migrate_pg_rel) AND a.attnum > 0 AND NOT a.attisdropped;

    INSERT INTO migrate_model_table SELECT relname, relkind IN ('r', 'p') FROM migrate_pg_rel;

    -- columns: the types of the imported foreign table of the same name
    INSERT INTO migrate_model_column
    SELECT rel.relname, a.attname, a.attnum,
           pg_catalog.format_type(la.atttypid, la.atttypmod),
           a.attnotnull, NULL,
           a.attidentity IN ('a', 'd')
               OR EXISTS (SELECT 1 FROM pg_temp.migrate_pg_depend d
                           JOIN pg_temp.migrate_pg_class s ON s.oid = d.objid AND s.relkind = 'S'
                          WHERE d.refobjid = a.attrelid AND d.refobjsubid = a.attnum AND d.deptype IN ('a', 'i')),
           NULL, NULL, NULL
      FROM migrate_pg_att a
      JOIN migrate_pg_rel rel ON rel.oid = a.attrelid
      JOIN pg_catalog.pg_class lc ON lc.relname = rel.relname
                                  AND lc.relnamespace = (SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = p_local_schema)
      JOIN pg_catalog.pg_attribute la ON la.attrelid = lc.oid AND la.attname = a.attname AND NOT la.attisdropped;
    UPDATE migrate_model_column m SET identity = false
     WHERE identity AND type NOT IN ('smallint', 'integer', 'bigint');
    -- defaults the remote shows (to the table's owner) and that plan here
    FOR r IN SELECT m.ctid AS id, m.type, c.column_default
               FROM migrate_model_column m
               JOIN pg_temp.migrate_pg_columns c
                 ON c.table_schema = p_schema AND c.table_name = m.table_name AND c.column_name = m.column_name
              WHERE c.column_default IS NOT NULL AND NOT m.identity
                AND c.column_default !~* 'nextval\(' LOOP
        expr := pg_catalog.format('(%s)::%s', r.column_default, r.type);
        BEGIN
            EXECUTE 'SELECT ' || expr || ' FROM (SELECT) x WHERE false';
            UPDATE migrate_model_column SET default_expr = expr WHERE ctid = r.id;
        EXCEPTION WHEN OTHERS THEN
            UPDATE migrate_model_column SET note = pg_catalog.format('default %s not kept', r.column_default)
             WHERE ctid = r.id;
        END;
    END LOOP;

    -- primary keys and unique constraints, then foreign keys
    INSERT INTO migrate_model_key
    SELECT rel.relname, c.conname, c.contype,
           (SELECT pg_catalog.array_agg(a.attname ORDER BY k.o)
              FROM pg_catalog.unnest(c.conkey) WITH ORDINALITY k(n, o)
              JOIN migrate_pg_att a ON a.attrelid = c.conrelid AND a.attnum = k.n),
           NULL, NULL, NULL
      FROM pg_temp.migrate_pg_constraint c JOIN migrate_pg_rel rel ON rel.oid = c.conrelid
     WHERE c.contype IN ('p', 'u');
    -- CHECK constraints, where the remote shows their text (to the table's owner)
    INSERT INTO migrate_model_key
    SELECT rel.relname, c.conname, 'c', NULL, NULL, ck.check_clause, NULL
      FROM pg_temp.migrate_pg_constraint c
      JOIN migrate_pg_rel rel ON rel.oid = c.conrelid
      JOIN pg_temp.migrate_pg_checks ck ON ck.constraint_schema = p_schema AND ck.constraint_name = c.conname
     WHERE c.contype = 'c';
    -- other indexes: their definitions, without the schema (put back on create)
    INSERT INTO migrate_model_key
    SELECT i.tablename, i.indexname, 'i', NULL, NULL, i.indexdef, NULL
      FROM pg_temp.migrate_pg_indexes i
     WHERE i.schemaname = p_schema
       AND NOT EXISTS (SELECT 1 FROM pg_temp.migrate_pg_constraint c
                         JOIN pg_temp.migrate_pg_class ic ON ic.oid = c.conindid
                         JOIN migrate_pg_rel rel ON rel.oid = c.conrelid
                        WHERE ic.relname = i.indexname AND rel.relname = i.tablename
                          AND c.contype IN ('p', 'u', 'x'));
    INSERT INTO migrate_model_fk
    SELECT rel.relname, c.conname,
           (SELECT pg_catalog.array_agg(a.attname ORDER BY k.o)
              FROM pg_catalog.unnest(c.conkey) WITH ORDINALITY k(n, o)
              JOIN migrate_pg_att a ON a.attrelid = c.conrelid AND a.attnum = k.n),
           fr.relname,
           (SELECT pg_catalog.array_agg(a.attname ORDER BY k.o)
              FROM pg_catalog.unnest(c.confkey) WITH ORDINALITY k(n, o)
              JOIN migrate_pg_att a ON a.attrelid = c.confrelid AND a.attnum = k.n),
           CASE c.confupdtype WHEN 'c' THEN 'CASCADE' WHEN 'n' THEN 'SET NULL' WHEN 'd' THEN 'SET DEFAULT'
                              WHEN 'r' THEN 'RESTRICT' ELSE 'NO ACTION' END,
           CASE c.confdeltype WHEN 'c' THEN 'CASCADE' WHEN 'n' THEN 'SET NULL' WHEN 'd' THEN 'SET DEFAULT'
                              WHEN 'r' THEN 'RESTRICT' ELSE 'NO ACTION' END
      FROM pg_temp.migrate_pg_constraint c
      JOIN migrate_pg_rel rel ON rel.oid = c.conrelid
      LEFT JOIN migrate_pg_rel fr ON fr.oid = c.confrelid      -- NULL: another schema
     WHERE c.contype = 'f';

    DROP TABLE migrate_pg_rel, migrate_pg_att;
    DROP FOREIGN TABLE pg_temp.migrate_pg_class, pg_temp.migrate_pg_namespace,
                       pg_temp.migrate_pg_attribute, pg_temp.migrate_pg_constraint,
                       pg_temp.migrate_pg_indexes, pg_temp.migrate_pg_depend, pg_temp.migrate_pg_columns,
                       pg_temp.migrate_pg_checks;
END;
$$;

/*
 * migrate_automap(plan, create_missing => true), first part: create in the
 * plan's target schema a table for each table of the source schema that
 * has no target of its name yet (automap's name matching), from the
 * source's catalog (migrate._mysql_model, migrate._pg_model): columns with
 * the cast rules' types, NOT NULL, defaults, identity for auto_increment
 * and serial, CHECKs for ENUM and SET values, the primary key (or, as
 * InnoDB does, the first unique key on NOT NULL columns), unique keys,
 * indexes and foreign keys; and map it (migrate_table).  Views of the
 * source get no table.  One row per object created or left out, as
 * automap reports, with its DDL in expr.  With p_dry (migrate_check) it
 * only says what it would create: the same rows, nothing executed.  As
 * the plan's owner (migrate._migrate_automap, migrate._migrate_check);
 * PUBLIC may call it: it does what its caller may do, on a plan the
 * caller sees (row-level security).
 */
CREATE OR REPLACE FUNCTION migrate._create_missing(p_plan text, p_dry boolean DEFAULT false)
RETURNS TABLE (target regclass, source text, column_name name, source_column name,
               expr text, action text)
LANGUAGE plpgsql
SET client_min_messages = warning
-- its temporary tables have no statistics: the planner's guesses put the
-- key UPDATE below over jit_above_cost, and compiling it took 0.6 s
SET jit = off
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    pl migrate.plan := migrate._plan(p_plan);
    src_ns oid := (SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = pl.source_schema);
    tgt_ns oid := (SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = pl.target_schema);
    fdw name := (SELECT w.fdwname FROM pg_catalog.pg_foreign_server s
                   JOIN pg_catalog.pg_foreign_data_wrapper w ON w.oid = s.srvfdw
                  WHERE s.srvname = pl.source_server);
    fold boolean := fdw = 'mysql_fdw';
    will text := CASE WHEN p_dry THEN 'would be created' ELSE 'created' END;
    t record;
    k record;
    f record;
    names text[];
    ddl text;
    tgt text;
    iname text;
    elems text;
BEGIN
    target := NULL; source := NULL; column_name := NULL; source_column := NULL; expr := NULL;
    IF pl.source_server IS NULL OR fdw IS NULL OR fdw NOT IN ('mysql_fdw', 'postgres_fdw') THEN
        action := pg_catalog.format('no table created: create_missing reads the catalog of a mysql_fdw or postgres_fdw server (plan "%s" has %s)',
                                    pl.plan_name, coalesce('server ' || pl.source_server || ' of ' || fdw, 'no source server'));
        RETURN NEXT;
        RETURN;
    END IF;

    -- the source relations without a target
    DROP TABLE IF EXISTS pg_temp.migrate_create_todo, pg_temp.migrate_create_col;
    CREATE TEMP TABLE migrate_create_todo AS
    SELECT sc.oid::regclass AS src,
           coalesce((SELECT pg_catalog.substr(o, 12) FROM pg_catalog.pg_foreign_table ft, pg_catalog.unnest(ft.ftoptions) o
                      WHERE ft.ftrelid = sc.oid AND o LIKE 'table_name=%'), sc.relname::text) AS remote_name,
           NULL::text AS created, NULL::text[] AS pk
      FROM pg_catalog.pg_class sc
     WHERE sc.relnamespace = src_ns AND sc.relkind IN ('f', 'r', 'v', 'm', 'p') AND NOT sc.relispartition
       AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_class tc
                        WHERE tc.relnamespace = tgt_ns AND tc.relkind IN ('r', 'p')
                          AND migrate._name_key(tc.relname) = migrate._name_key(sc.relname))
       AND NOT EXISTS (SELECT 1 FROM migrate.table_map m
                        WHERE m.plan = pl.plan_name AND pg_catalog.to_regclass(m.source) = sc.oid);
    IF NOT EXISTS (SELECT 1 FROM migrate_create_todo) THEN
        DROP TABLE migrate_create_todo;
        RETURN;
    END IF;
    IF fdw = 'mysql_fdw' THEN
        PERFORM migrate._mysql_model(pl.source_server, coalesce(pl.options->>'remote_schema', pl.source_schema));
    ELSE
        PERFORM migrate._pg_model(pl.source_server, coalesce(pl.options->>'remote_schema', pl.source_schema),
                                  pl.source_schema);
    END IF;
    -- a referencing column gets its referenced column's type, which the
    -- rules may have chosen otherwise (bigint unsigned: numeric(20), but
    -- bigint when auto_increment), so that the foreign key can be made
    UPDATE migrate_model_column c SET type = p.type
      FROM migrate_model_fk fk
     CROSS JOIN LATERAL ROWS FROM (pg_catalog.unnest(fk.columns), pg_catalog.unnest(fk.ref_columns)) u(col, ref_col)
      JOIN migrate_model_column p ON p.table_name = fk.ref_table AND p.column_name = u.ref_col
     WHERE c.table_name = fk.table_name AND c.column_name = u.col AND c.type <> p.type;
    SELECT pg_catalog.array_agg(table_name) INTO names FROM migrate_model_table;
    UPDATE migrate_create_todo d SET created = migrate._created_name(d.remote_name, names, fold)
      FROM migrate_model_table mt WHERE mt.table_name = d.remote_name AND mt.base;
    CREATE TEMP TABLE migrate_create_col AS
    SELECT c.*, migrate._created_name(c.column_name,
                                      pg_catalog.array_agg(c.column_name) OVER (PARTITION BY c.table_name), fold) AS created
      FROM migrate_model_column c;
    -- the key: the primary key, or the first unique key of NOT NULL columns without prefixes
    UPDATE migrate_create_todo d
       SET pk = coalesce((SELECT k.columns FROM migrate_model_key k WHERE k.table_name = d.remote_name AND k.kind = 'p'),
                         (SELECT k.columns FROM migrate_model_key k
                           WHERE k.table_name = d.remote_name AND k.kind = 'u' AND k.note IS NULL
                             AND NOT EXISTS (SELECT 1 FROM pg_catalog.unnest(k.prefixes) p WHERE p IS NOT NULL)
                             AND NOT EXISTS (SELECT 1 FROM pg_catalog.unnest(k.columns) kc
                                               JOIN migrate_model_column c
                                                 ON c.table_name = k.table_name AND c.column_name = kc
                                              WHERE NOT c.not_null)
                           ORDER BY k.name LIMIT 1))
     WHERE d.created IS NOT NULL;

    -- 1. tables: columns, NOT NULL, defaults, identity, CHECKs, primary key
    FOR t IN SELECT d.*, mt.base FROM migrate_create_todo d
               LEFT JOIN migrate_model_table mt ON mt.table_name = d.remote_name
              ORDER BY d.remote_name LOOP
        target := NULL; source := t.src::text; column_name := NULL; source_column := NULL; expr := NULL;
        IF t.created IS NULL THEN
            action := CASE WHEN t.base IS NULL THEN 'no table created: the source catalog has no table of this name'
                           ELSE 'no table created: a view in the source' END;
            RETURN NEXT;
            CONTINUE;
        END IF;
        tgt := pg_catalog.format('%I.%I', pl.target_schema, t.created);
        SELECT pg_catalog.string_agg(
                   pg_catalog.format('%I %s', c.created, c.type)
                   || CASE WHEN c.identity THEN ' GENERATED BY DEFAULT AS IDENTITY' ELSE '' END
                   || CASE WHEN c.not_null OR c.column_name = ANY (t.pk) THEN ' NOT NULL' ELSE '' END
                   || coalesce(' DEFAULT ' || c.default_expr, '')
                   || CASE c.check_kind
                      WHEN 'enum' THEN pg_catalog.format(' CHECK (%I IN (%s))', c.created,
                                                         (SELECT pg_catalog.string_agg(pg_catalog.quote_literal(v), ', ')
                                                            FROM pg_catalog.unnest(c.check_values) v))
                      WHEN 'set' THEN pg_catalog.format(' CHECK (%I OPERATOR(pg_catalog.<@) %L::text[])', c.created,
                                                        c.check_values)
                      ELSE '' END,
                   ', ' ORDER BY c.ordinal)
          INTO ddl FROM migrate_create_col c WHERE c.table_name = t.remote_name;
        IF t.pk IS NOT NULL THEN
            ddl := ddl || ', PRIMARY KEY (' || (SELECT pg_catalog.string_agg(pg_catalog.quote_ident(c.created), ', ' ORDER BY u.o)
                                                  FROM pg_catalog.unnest(t.pk) WITH ORDINALITY u(kc, o)
                                                  JOIN migrate_create_col c ON c.table_name = t.remote_name AND c.column_name = u.kc) || ')';
        END IF;
        expr := pg_catalog.format('CREATE TABLE %s (%s)', tgt, ddl);
        IF NOT p_dry THEN
            EXECUTE expr;
            target := tgt::regclass;
        END IF;
        action := pg_catalog.format('table %s %s', tgt, will)
                  || CASE WHEN t.pk IS NULL THEN ', not mapped: the source has no primary key or unique key on NOT NULL columns; map it with migrate_table(..., key => ...)'
                          WHEN NOT EXISTS (SELECT 1 FROM migrate_model_key k WHERE k.table_name = t.remote_name AND k.kind = 'p')
                          THEN ', its primary key the source''s first unique key on NOT NULL columns (as InnoDB''s)'
                          ELSE '' END;
        RETURN NEXT;
        expr := NULL;
        FOR k IN SELECT c.created, c.column_name, c.note FROM migrate_create_col c
                  WHERE c.table_name = t.remote_name AND c.note IS NOT NULL AND c.note <> '' ORDER BY c.ordinal LOOP
            column_name := k.created;
            source_column := k.column_name;
            action := 'column ' || will || ': ' || k.note;
            RETURN NEXT;
        END LOOP;
        column_name := NULL; source_column := NULL;
        IF t.pk IS NOT NULL AND NOT p_dry THEN
            BEGIN
                PERFORM @extschema@.migrate_table(pl.plan_name, t.src::text, tgt);
            EXCEPTION WHEN OTHERS THEN
                action := 'not mapped: ' || SQLERRM;
                RETURN NEXT;
            END;
        END IF;
    END LOOP;

    -- 2. unique keys and indexes of the created tables
    FOR k IN SELECT d.created AS tname, d.src, d.pk, mk.*
               FROM migrate_create_todo d JOIN migrate_model_key mk ON mk.table_name = d.remote_name
              WHERE d.created IS NOT NULL AND mk.kind IN ('u', 'i', 'c')
                AND NOT (mk.kind = 'u' AND mk.columns IS NOT DISTINCT FROM d.pk)
              ORDER BY d.created, mk.name LOOP
        tgt := pg_catalog.format('%I.%I', pl.target_schema, k.tname);
        target := CASE WHEN NOT p_dry THEN tgt::regclass END;
        source := k.src::text;
        expr := NULL;
        IF k.note IS NOT NULL THEN
            action := pg_catalog.format('index %s: %s', k.name, k.note);
            RETURN NEXT;
            CONTINUE;
        END IF;
        iname := CASE WHEN fold THEN pg_catalog.lower(k.tname || '_' || k.name) ELSE k.name END;
        IF pg_catalog.length(iname) > 63 OR EXISTS (SELECT 1 FROM pg_catalog.pg_class c
                                                     WHERE c.relnamespace = tgt_ns AND c.relname = iname) THEN
            iname := NULL;          -- PostgreSQL chooses one
        END IF;
        IF k.kind = 'c' THEN
            -- column names as created: MySQL's (quoted) folded where automap folds them
            expr := k.def;
            IF fold THEN
                SELECT pg_catalog.string_agg(CASE WHEN o % 2 = 0 THEN pg_catalog.quote_ident(
                                                       coalesce((SELECT c.created FROM migrate_create_col c
                                                                  WHERE c.table_name = k.table_name AND c.column_name = part), part))
                                                  ELSE part END, '' ORDER BY o)
                  INTO expr
                  FROM pg_catalog.regexp_split_to_table(k.def, '"') WITH ORDINALITY x(part, o);
            END IF;
            expr := pg_catalog.format('ALTER TABLE %s ADD CONSTRAINT %I CHECK (%s)', tgt,
                                      CASE WHEN fold THEN pg_catalog.lower(k.name) ELSE k.name END, expr);
        ELSIF k.def IS NOT NULL THEN
            -- a PostgreSQL definition: CREATE [UNIQUE] INDEX name ON [ONLY] schema.table USING ...
            expr := pg_catalog.regexp_replace(k.def, '^(CREATE (UNIQUE )?INDEX )\S+ ON (ONLY )?\S+ ',
                                              '\1' || pg_catalog.replace(pg_catalog.replace(
                                                  coalesce(pg_catalog.quote_ident(iname) || ' ', '') || 'ON ' || tgt || ' ',
                                                  '\', '\\'), '&', '\&'));
        ELSE
            SELECT pg_catalog.string_agg(
                       CASE WHEN u.p IS NULL THEN pg_catalog.quote_ident(c.created)
                            -- a prefix: an expression, in ( )
                            WHEN c.type = 'bytea' THEN pg_catalog.format('(pg_catalog.substr(%I, 1, %s))', c.created, u.p)
                            ELSE pg_catalog.format('(pg_catalog."left"(%I, %s))', c.created, u.p) END,
                       ', ' ORDER BY u.o)
              INTO elems
              FROM ROWS FROM (pg_catalog.unnest(k.columns), pg_catalog.unnest(k.prefixes)) WITH ORDINALITY u(col, p, o)
              JOIN migrate_create_col c ON c.table_name = k.table_name AND c.column_name = u.col;
            expr := pg_catalog.format('CREATE %sINDEX %s ON %s (%s)', CASE WHEN k.kind = 'u' THEN 'UNIQUE ' ELSE '' END,
                                      coalesce(pg_catalog.quote_ident(iname), ''), tgt, elems);
        END IF;
        iname := CASE k.kind WHEN 'u' THEN 'unique index' WHEN 'c' THEN 'check' ELSE 'index' END;
        IF p_dry THEN
            action := pg_catalog.format('%s %s would be created', iname, k.name);
        ELSE
            BEGIN
                EXECUTE expr;
                action := pg_catalog.format('%s %s created', iname, k.name);
            EXCEPTION WHEN OTHERS THEN
                action := pg_catalog.format('%s %s not created: %s', iname, k.name, SQLERRM);
            END;
        END IF;
        RETURN NEXT;
    END LOOP;

    -- 3. foreign keys whose two tables are in the target
    FOR f IN SELECT d.created AS tname, d.src, fk.*,
                    coalesce((SELECT r.created FROM migrate_create_todo r WHERE r.remote_name = fk.ref_table),
                             (SELECT tc.relname::text FROM pg_catalog.pg_class tc
                               WHERE tc.relnamespace = tgt_ns AND tc.relkind IN ('r', 'p')
                                 AND migrate._name_key(tc.relname) = migrate._name_key(fk.ref_table)
                               ORDER BY tc.relname = fk.ref_table DESC LIMIT 1)) AS ref_created
               FROM migrate_create_todo d JOIN migrate_model_fk fk ON fk.table_name = d.remote_name
              WHERE d.created IS NOT NULL
              ORDER BY d.created, fk.name LOOP
        tgt := pg_catalog.format('%I.%I', pl.target_schema, f.tname);
        target := CASE WHEN NOT p_dry THEN tgt::regclass END;
        source := f.src::text;
        expr := NULL;
        IF f.ref_created IS NULL THEN
            action := pg_catalog.format('foreign key %s not created: its referenced table %s is not in the target',
                                        f.name, coalesce(f.ref_table, 'of another database'));
            RETURN NEXT;
            CONTINUE;
        END IF;
        expr := pg_catalog.format('ALTER TABLE %s ADD CONSTRAINT %I FOREIGN KEY (%s) REFERENCES %I.%I (%s) ON UPDATE %s ON DELETE %s',
                                  tgt, pg_catalog.left(CASE WHEN fold THEN pg_catalog.lower(f.name) ELSE f.name END, 63),
                                  (SELECT pg_catalog.string_agg(pg_catalog.quote_ident(coalesce(c.created, u.col)), ', ' ORDER BY u.o)
                                     FROM pg_catalog.unnest(f.columns) WITH ORDINALITY u(col, o)
                                     LEFT JOIN migrate_create_col c ON c.table_name = f.table_name AND c.column_name = u.col),
                                  pl.target_schema, f.ref_created,
                                  (SELECT pg_catalog.string_agg(pg_catalog.quote_ident(coalesce(c.created, u.col)), ', ' ORDER BY u.o)
                                     FROM pg_catalog.unnest(f.ref_columns) WITH ORDINALITY u(col, o)
                                     LEFT JOIN migrate_create_col c ON c.table_name = f.ref_table AND c.column_name = u.col),
                                  CASE WHEN f.on_update IN ('CASCADE', 'SET NULL', 'SET DEFAULT', 'RESTRICT') THEN f.on_update ELSE 'NO ACTION' END,
                                  CASE WHEN f.on_delete IN ('CASCADE', 'SET NULL', 'SET DEFAULT', 'RESTRICT') THEN f.on_delete ELSE 'NO ACTION' END);
        IF p_dry THEN
            action := pg_catalog.format('foreign key %s would be created', f.name);
        ELSE
            BEGIN
                EXECUTE expr;
                action := pg_catalog.format('foreign key %s created', f.name);
            EXCEPTION WHEN OTHERS THEN
                action := pg_catalog.format('foreign key %s not created: %s', f.name, SQLERRM);
            END;
        END IF;
        RETURN NEXT;
    END LOOP;
    DROP TABLE migrate_create_todo, migrate_create_col, migrate_model_table, migrate_model_column,
               migrate_model_key, migrate_model_fk;
END;
$$;

/*
 * migrate_database(plan, source_server, remote_schema, target_schema,
 * parallel): pgloader's one command in SQL.  From a mysql_fdw or
 * postgres_fdw server, into target_schema (created if missing): plans
 * (foreign tables in schema <plan>_source), creates the missing target
 * tables (automap's create_missing), checks (stops on errors, leaving
 * nothing behind), runs with index and foreign key deferral, moves identity
 * sequences past the loaded keys, verifies and reports.  Returns the run
 * id.  Steps run in a background job, each in its transaction, as the
 * caller (src/database.c); their NOTICEs (migrate_run's progress
 * included) are printed here.  remote_schema NULL: public for PostgreSQL,
 * for MySQL the server's one database (an error lists them when it has
 * several).
 */
CREATE OR REPLACE FUNCTION migrate_database(plan text, source_server name, remote_schema text DEFAULT NULL,
                                            target_schema name DEFAULT 'public', parallel integer DEFAULT 2)
RETURNS bigint
LANGUAGE C
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'migrate_database';

-- The databases of a mysql_fdw server the caller's mapping sees, but the
-- system ones.
CREATE OR REPLACE FUNCTION migrate._mysql_databases(p_server name)
RETURNS SETOF text
LANGUAGE plpgsql
SET client_min_messages = warning
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    DROP FOREIGN TABLE IF EXISTS pg_temp.migrate_my_schemata;
    EXECUTE pg_catalog.format('CREATE FOREIGN TABLE pg_temp.migrate_my_schemata ("SCHEMA_NAME" varchar(64))'
                              ' SERVER %I OPTIONS (dbname ''information_schema'', table_name ''SCHEMATA'')', p_server);
    RETURN QUERY SELECT s."SCHEMA_NAME"::text FROM pg_temp.migrate_my_schemata s
                  WHERE s."SCHEMA_NAME" NOT IN ('information_schema', 'mysql', 'performance_schema', 'sys')
                  ORDER BY 1;
    DROP FOREIGN TABLE pg_temp.migrate_my_schemata;
END;
$$;

-- migrate_database, step 1 (a transaction): plan, import, create, map, check.
CREATE OR REPLACE FUNCTION migrate._database_prepare(p_plan text, p_server name, p_remote_schema text,
                                                     p_target_schema name)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    fdw name := (SELECT w.fdwname FROM pg_catalog.pg_foreign_server s
                   JOIN pg_catalog.pg_foreign_data_wrapper w ON w.oid = s.srvfdw
                  WHERE s.srvname = p_server);
    remote text := p_remote_schema;
    src name := pg_catalog.left(p_plan, 56) || '_source';
    dbs text[];
    r record;
    created integer := 0;
    indexes integer := 0;
    fks integer := 0;
    problems text[] := '{}';
    nerr integer;
BEGIN
    IF fdw IS NULL THEN
        RAISE EXCEPTION 'foreign server "%" does not exist', p_server
            USING ERRCODE = 'undefined_object',
                  HINT = 'Create it with CREATE SERVER ... FOREIGN DATA WRAPPER mysql_fdw (or postgres_fdw), and a user mapping for you.';
    ELSIF fdw NOT IN ('mysql_fdw', 'postgres_fdw') THEN
        RAISE EXCEPTION 'migrate_database() reads a MySQL/MariaDB (mysql_fdw) or PostgreSQL (postgres_fdw) server; "%" is of %', p_server, fdw
            USING ERRCODE = 'feature_not_supported',
                  HINT = 'Plan other sources step by step: migrate_plan(), migrate_table(), migrate_run().';
    END IF;
    IF EXISTS (SELECT 1 FROM migrate.plan p WHERE p.plan_name = p_plan) THEN
        RAISE EXCEPTION 'migration plan "%" exists already', p_plan
            USING ERRCODE = 'duplicate_object',
                  HINT = 'migrate_database() makes a new plan: choose another name, run this one with migrate_run(), or drop it with migrate_drop_plan().';
    END IF;
    IF remote IS NULL AND fdw = 'postgres_fdw' THEN
        remote := 'public';
    ELSIF remote IS NULL THEN
        dbs := ARRAY(SELECT migrate._mysql_databases(p_server));
        IF pg_catalog.cardinality(dbs) = 1 THEN
            remote := dbs[1];
        ELSE
            RAISE EXCEPTION 'server "%" has % databases: say which with remote_schema', p_server, pg_catalog.cardinality(dbs)
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = coalesce('They are: ' || pg_catalog.array_to_string(dbs, ', ') || '.', 'The user mapping''s MySQL user sees none.');
        END IF;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_namespace n WHERE n.nspname = src) THEN
        RAISE EXCEPTION 'schema "%" exists already: migrate_database() imports the source''s foreign tables into it', src
            USING ERRCODE = 'duplicate_schema',
                  HINT = 'Drop it, or choose another plan name.';
    END IF;
    EXECUTE pg_catalog.format('CREATE SCHEMA IF NOT EXISTS %I', p_target_schema);

    RAISE NOTICE 'migrate_database: plan "%": % database % of server % into schema % (foreign tables in %)',
                 p_plan, CASE WHEN fdw = 'mysql_fdw' THEN 'MySQL' ELSE 'PostgreSQL' END,
                 pg_catalog.quote_ident(remote), pg_catalog.quote_ident(p_server),
                 pg_catalog.quote_ident(p_target_schema), pg_catalog.quote_ident(src);
    PERFORM @extschema@.migrate_plan(p_plan, source_server => p_server, source_schema => src,
                                     target_schema => p_target_schema,
                                     options => pg_catalog.jsonb_build_object('remote_schema', remote,
                                                                              'defer_indexes', true));
    FOR r IN SELECT * FROM @extschema@.migrate_automap(p_plan, create_missing => true) LOOP
        IF r.action ~ '^table .* created' THEN
            created := created + 1;
        ELSIF r.action ~ '^(unique )?index .* created$' THEN
            indexes := indexes + 1;
        ELSIF r.action ~ '^foreign key .* created$' THEN
            fks := fks + 1;
        END IF;
        IF r.action ~ '(^not mapped|not created|not mapped:|no table created: the source catalog|^no source relation|no source column: NOT NULL)' THEN
            problems := problems || pg_catalog.format('%s%s: %s', coalesce(r.target::text, r.source),
                                                      coalesce('.' || pg_catalog.quote_ident(r.column_name), ''), r.action);
        END IF;
    END LOOP;
    RAISE NOTICE 'migrate_database: % tables created (% indexes, % foreign keys), % tables mapped',
                 created, indexes, fks, (SELECT pg_catalog.count(*) FROM migrate.table_map m WHERE m.plan = p_plan);
    FOR r IN SELECT u.p FROM pg_catalog.unnest(problems) u(p) LOOP
        RAISE WARNING 'migrate_database: %', r.p;
    END LOOP;
    -- base tables of the source that nothing loads: refuse rather than leave rows behind
    SELECT pg_catalog.count(*) INTO nerr FROM pg_catalog.unnest(problems) u(p)
     WHERE u.p ~ '(not mapped|no table created: the source catalog)';
    IF nerr > 0 THEN
        RAISE EXCEPTION 'migrate_database: % source table(s) of plan "%" cannot be migrated: nothing was migrated', nerr, p_plan
            USING ERRCODE = 'invalid_object_definition',
                  DETAIL = pg_catalog.array_to_string(problems, '; '),
                  HINT = 'Plan those step by step: migrate_plan(), migrate_automap(plan, create_missing => true), then migrate_table(..., key => ...) for a table without a key, and migrate_run().';
    END IF;
    SELECT pg_catalog.count(*) INTO nerr FROM @extschema@.migrate_check(p_plan) c WHERE c.severity = 'error';
    IF nerr > 0 THEN
        FOR r IN SELECT * FROM @extschema@.migrate_check(p_plan) c WHERE c.severity = 'error' LOOP
            RAISE WARNING 'migrate_database: migrate_check: %: %', r.table_name || coalesce(', column ' || r.column_name, ''),
                          r.message;
        END LOOP;
        RAISE EXCEPTION 'migration plan "%" has % error(s) in migrate_check(): nothing was migrated', p_plan, nerr
            USING ERRCODE = 'invalid_object_definition',
                  HINT = 'The WARNINGs above name them.  Plan step by step to fix them (migrate_plan, migrate_automap, migrate_column), then migrate_run().';
    END IF;
END;
$$;
REVOKE ALL ON FUNCTION migrate._database_prepare(text, name, text, name) FROM PUBLIC;

/*
 * Move each identity or serial sequence of the plan's targets past the
 * greatest loaded key (the load wrote explicit keys, which sequences do
 * not see): what pgloader's "reset sequences" does.  As the caller (the
 * plan's owner), on plans it sees.
 */
CREATE OR REPLACE FUNCTION migrate._reset_identities(p_plan text)
RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r record;
    top numeric;
    n integer := 0;
BEGIN
    FOR r IN SELECT m.target, a.attname, pg_catalog.pg_get_serial_sequence(m.target::text, a.attname) AS seq
               FROM migrate.table_map m
               JOIN pg_catalog.pg_attribute a ON a.attrelid = m.target AND a.attnum > 0 AND NOT a.attisdropped
              WHERE m.plan = p_plan
                AND pg_catalog.pg_get_serial_sequence(m.target::text, a.attname) IS NOT NULL LOOP
        EXECUTE pg_catalog.format('SELECT pg_catalog.max(%I)::numeric FROM %s', r.attname, r.target) INTO top;
        IF top IS NOT NULL THEN
            PERFORM pg_catalog.setval(r.seq::regclass, top::bigint, true);
            n := n + 1;
        END IF;
    END LOOP;
    RETURN n;
END;
$$;

-- migrate_database, step 3 (a transaction): sequences, verify, report.
CREATE OR REPLACE FUNCTION migrate._database_finish(p_plan text, p_run bigint)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    n integer;
    checks integer := 0;
    failed integer := 0;
    r record;
BEGIN
    n := migrate._reset_identities(p_plan);
    IF n > 0 THEN
        RAISE NOTICE 'migrate_database: % identity sequence(s) moved past the loaded keys', n;
    END IF;
    -- the tables were empty: checked against what the run wrote, the source
    -- only counted (migrate_verify(plan, run) reads it again)
    FOR r IN SELECT * FROM @extschema@.migrate_verify(p_plan, p_run, reread => false) v
              ORDER BY v.ok, v.target::text, v.check_name LOOP
        checks := checks + 1;
        IF NOT r.ok THEN
            failed := failed + 1;
            IF failed <= 20 THEN
                RAISE WARNING 'migrate_database: verify failed: %, %: source %, target %', r.target, r.check_name,
                              r.source_value, r.target_value || coalesce(' (' || r.details || ')', '');
            END IF;
        END IF;
    END LOOP;
    RAISE NOTICE 'migrate_database: run % of plan "%": verify % (% checks, % failed; source counted, target checked against the rows as loaded); the report: SELECT migrate_report(%);',
                 p_run, p_plan, CASE WHEN failed = 0 THEN 'passed' ELSE 'FAILED' END, checks, failed, p_run
        USING HINT = pg_catalog.format('To compare every value with the source read again: SELECT * FROM migrate_verify(%L, %s);',
                                       p_plan, p_run);
    PERFORM @extschema@.migrate_report(p_run);
END;
$$;
REVOKE ALL ON FUNCTION migrate._database_finish(text, bigint) FROM PUBLIC;
