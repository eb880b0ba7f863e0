/*
 * file.sql: file sources (DESIGN.md "File sources"): migrate_file(), which
 * maps a target to a CSV, COPY text or line file (or a glob of them) read
 * by migrate's own foreign data wrapper migrate_file (src/filesrc.c,
 * src/fileread.c; the wrapper and its server are in catalog.sql).
 *
 * migrate_file() declares a foreign table of server migrate_files next to
 * the target (<target>_file, or source_table, in the target's schema) with a text column
 * per field (named by the file's header or by columns) and the record's
 * _file, _line, _pos, _raw and _error, then maps it with migrate_table():
 * everything that works on a source (mappings, rules, runs, verify, diff,
 * report) works on it.  Reading server files needs pg_read_server_files
 * or superuser, as COPY FROM a file does: checked here, by the wrapper's
 * validator, and again by every scan (a run executes as the plan's owner).
 */

-- The field names of the header of the first file of p_path (src/fileread.c).
CREATE OR REPLACE FUNCTION migrate._file_header(p_path text, p_options text[])
RETURNS text[]
AS 'MODULE_PATHNAME', 'migrate_file_header'
LANGUAGE C STRICT VOLATILE
SET search_path = pg_catalog, pg_temp;

CREATE OR REPLACE FUNCTION migrate_file(plan text,
                             target text,
                             path text,
                             format text DEFAULT 'csv',
                             header boolean DEFAULT true,
                             delimiter text DEFAULT NULL,
                             quote text DEFAULT '"',
                             escape text DEFAULT NULL,
                             "null" text DEFAULT NULL,
                             encoding text DEFAULT 'UTF8',
                             columns text[] DEFAULT NULL,
                             skip_lines integer DEFAULT 0,
                             mode text DEFAULT 'insert',
                             key text DEFAULT NULL,
                             options jsonb DEFAULT NULL,
                             source_table text DEFAULT NULL,
                             trim_blanks boolean DEFAULT false,
                             strict_quotes boolean DEFAULT false,
                             nul text DEFAULT 'reject',
                             ragged_lines boolean DEFAULT false,
                             line_end text DEFAULT NULL)
RETURNS regclass
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    cpath text := migrate._caller_search_path();
    pl migrate.plan := migrate._plan(plan);
    tgt regclass := migrate._resolve_in(target, pl.target_schema, cpath);
    opts text[];
    cols text[];
    nsp name;
    ftname name;
    old regclass;
    defs text := '';
    ftopts text := '';
    c text;
BEGIN
    IF tgt IS NULL THEN
        RAISE EXCEPTION 'target table "%" of migration plan "%" does not exist', target, plan
            USING ERRCODE = 'undefined_table',
                  HINT = pg_catalog.format('Create it first; unqualified names are looked up in schema "%s".', pl.target_schema);
    END IF;
    IF path IS NULL OR path = '' THEN
        RAISE EXCEPTION 'migrate_file() needs the path of a file (or a glob) on the database server'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF format IS NULL OR format NOT IN ('csv', 'text', 'lines') THEN
        RAISE EXCEPTION 'format "%" of a file source is not known', format
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Use csv, text or lines.';
    END IF;
    IF skip_lines IS NULL OR skip_lines < 0 THEN
        RAISE EXCEPTION 'skip_lines of a file source must be 0 or more'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF NOT pg_catalog.pg_has_role(CURRENT_USER, 'pg_read_server_files', 'USAGE') THEN
        RAISE EXCEPTION 'permission denied to read server files as role "%"', CURRENT_USER
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = 'A file source reads files of the database server, as COPY FROM a file does.',
                  HINT = 'A superuser can GRANT pg_read_server_files TO the plan''s owner.';
    END IF;

    opts := ARRAY['format', format, 'header', CASE WHEN header THEN 'true' ELSE 'false' END,
                  'encoding', coalesce(encoding, 'UTF8'), 'skip_lines', skip_lines::text];
    IF delimiter IS NOT NULL THEN opts := opts || ARRAY['delimiter', delimiter]; END IF;
    IF quote IS NOT NULL THEN opts := opts || ARRAY['quote', quote]; END IF;
    IF escape IS NOT NULL THEN opts := opts || ARRAY['escape', escape]; END IF;
    IF "null" IS NOT NULL THEN opts := opts || ARRAY['null', "null"]; END IF;
    -- (0.11) options a foreign table of 0.10 lacks: only when not the default
    IF trim_blanks THEN opts := opts || ARRAY['trim_blanks', 'true']; END IF;
    IF strict_quotes THEN opts := opts || ARRAY['strict_quotes', 'true']; END IF;
    IF nul IS DISTINCT FROM 'reject' THEN opts := opts || ARRAY['nul', coalesce(nul, '')]; END IF;
    -- (0.12)
    IF ragged_lines THEN opts := opts || ARRAY['ragged_lines', 'true']; END IF;
    IF line_end IS NOT NULL THEN opts := opts || ARRAY['line_end', line_end]; END IF;

    IF format = 'lines' THEN
        cols := ARRAY['line'];
    ELSIF columns IS NOT NULL THEN
        cols := columns;
    ELSIF header THEN
        -- also checks the privilege and that the path matches a file
        SELECT pg_catalog.array_agg(coalesce(NULLIF(pg_catalog.btrim(h.name), ''), 'column' || h.n) ORDER BY h.n)
          INTO cols
          FROM pg_catalog.unnest(migrate._file_header(path, opts)) WITH ORDINALITY AS h(name, n);
    ELSE
        RAISE EXCEPTION 'file source of table % in migration plan "%" has neither a header nor columns', target, plan
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Pass header => true for a file whose first line names its fields, or columns => ARRAY[''a'', ''b'', ...].';
    END IF;
    -- a field named like a target column but for case (USPS, usps) takes the column's name
    cols := ARRAY(SELECT coalesce((SELECT a.attname FROM pg_catalog.pg_attribute a
                                    WHERE a.attrelid = tgt AND a.attnum > 0 AND NOT a.attisdropped
                                      AND pg_catalog.lower(a.attname) = pg_catalog.lower(f.name)
                                      AND NOT EXISTS (SELECT FROM pg_catalog.pg_attribute e
                                                       WHERE e.attrelid = tgt AND e.attname = f.name)
                                    ORDER BY a.attname = pg_catalog.lower(a.attname) DESC LIMIT 1), f.name)
                    FROM pg_catalog.unnest(cols) WITH ORDINALITY AS f(name, n) ORDER BY f.n);
    IF pg_catalog.cardinality(cols) IS NULL OR pg_catalog.cardinality(cols) = 0 THEN
        RAISE EXCEPTION 'file source of table % in migration plan "%" has no field', target, plan
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    FOREACH c IN ARRAY cols LOOP
        IF c IS NULL OR c = '' OR c IN ('_file', '_line', '_pos', '_raw', '_error') THEN
            RAISE EXCEPTION 'field name "%" of the file source of table % cannot be used', c, target
                USING ERRCODE = 'invalid_name',
                      HINT = '_file, _line, _pos, _raw and _error are the record''s own columns; rename the field with columns => ARRAY[...].';
        END IF;
        IF (SELECT pg_catalog.count(*) FROM pg_catalog.unnest(cols) x WHERE x = c) > 1 THEN
            RAISE EXCEPTION 'field "%" appears twice in the file source of table %', c, target
                USING ERRCODE = 'duplicate_column',
                      HINT = 'Name the fields with columns => ARRAY[...].';
        END IF;
        defs := defs || pg_catalog.format('%I text, ', c);
    END LOOP;
    FOR i IN 1 .. pg_catalog.cardinality(opts) BY 2 LOOP
        ftopts := ftopts || pg_catalog.format('%I %L, ', opts[i], opts[i + 1]);
    END LOOP;

    SELECT n.nspname, coalesce(source_table, pg_catalog.left(cl.relname, 58) || '_file') INTO nsp, ftname
      FROM pg_catalog.pg_class cl JOIN pg_catalog.pg_namespace n ON n.oid = cl.relnamespace
     WHERE cl.oid = tgt;
    old := pg_catalog.to_regclass(pg_catalog.format('%I.%I', nsp, ftname));
    -- another plan's file source is not replaced under it
    SELECT tm.plan INTO c FROM migrate.table_map tm
     WHERE pg_catalog.to_regclass(tm.source) = old AND old IS NOT NULL
       AND NOT (tm.plan = migrate_file.plan AND tm.target = tgt)
     LIMIT 1;
    IF c IS NOT NULL THEN
        RAISE EXCEPTION 'file source %.% is the source of a table in migration plan "%"', nsp, ftname, c
            USING ERRCODE = 'duplicate_table',
                  HINT = 'Pass source_table => ''<name>'' to declare another foreign table for this file.';
    END IF;
    IF old IS NOT NULL THEN
        IF NOT EXISTS (SELECT FROM pg_catalog.pg_foreign_table ft
                         JOIN pg_catalog.pg_foreign_server s ON s.oid = ft.ftserver
                        WHERE ft.ftrelid = old AND s.srvname = 'migrate_files') THEN
            RAISE EXCEPTION 'relation %.% exists and is not a file source', nsp, ftname
                USING ERRCODE = 'duplicate_table',
                      HINT = 'migrate_file() declares the foreign table <target>_file next to the target: rename or drop the relation.';
        END IF;
        EXECUTE pg_catalog.format('DROP FOREIGN TABLE %I.%I', nsp, ftname);
    END IF;
    EXECUTE pg_catalog.format('CREATE FOREIGN TABLE %I.%I (%s_file text, _line bigint, _pos bigint, _raw text, _error text)'
                              ' SERVER migrate_files OPTIONS (%spath %L)',
                              nsp, ftname, defs, ftopts, path);
    PERFORM @extschema@.migrate_table(plan, pg_catalog.format('%I.%I', nsp, ftname), tgt::text,
                                      key => key, mode => mode, options => options);
    RETURN pg_catalog.format('%I.%I', nsp, ftname)::regclass;
END;
$$;
