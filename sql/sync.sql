/*
 * sync.sql: trickle sync and the parallel run (DESIGN.md "Strategies"):
 * migrate_sync(), capture arming and the change tables of capture =>
 * 'trigger' (migrate_capture_sql()), and the SQL helpers of src/sync.c,
 * which owns the apply path.  Every function pins search_path.
 */

-- migrate_sync(): one pass of every table of the plan with capture: a run
-- of mode 'sync' (src/sync.c), so the plan's lock refuses a second
-- concurrent sync, or a sync during a run, with 55006.  The plan was
-- checked by its incremental run; a pass does not check it again.
CREATE OR REPLACE FUNCTION migrate_sync(plan text, until text DEFAULT 'now', wait boolean DEFAULT true)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF until IS DISTINCT FROM 'now' THEN
        RAISE EXCEPTION 'until => % is not supported by migrate_sync()', pg_catalog.quote_nullable(until)
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'A pass applies what the source committed before it started: until => ''now''.';
    END IF;
    IF NOT EXISTS (SELECT FROM migrate.plan p WHERE p.plan_name OPERATOR(pg_catalog.=) migrate_sync.plan) THEN
        RAISE EXCEPTION 'migration plan "%" does not exist', plan
            USING ERRCODE = 'undefined_object';
    END IF;
    IF NOT EXISTS (SELECT FROM migrate.table_map m
                    WHERE m.plan OPERATOR(pg_catalog.=) migrate_sync.plan
                      AND m.capture OPERATOR(pg_catalog.<>) 'none') THEN
        RAISE EXCEPTION 'migration plan "%" has no table with capture', plan
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Choose one per table with migrate_table(..., capture => ''watermark'' | ''trigger'' | ''slot'' | ''diff''), then arm it with migrate_run(plan, mode => ''incremental'').';
    END IF;
    RETURN @extschema@.migrate_run(plan, mode => 'sync', wait => wait);
END;
$$;

-- migrate_drop_plan(): the plan and what its capture left at the sources
-- (the slot of capture => 'slot', the triggers and change tables migrate
-- installed on local sources) and the foreign tables migrate_file()
-- declared for it, as the plan's owner.  Its runs, rejects and
-- events stay (history); its mappings and sync state go with the plan.
CREATE OR REPLACE FUNCTION migrate_drop_plan(plan text)
RETURNS void
LANGUAGE C VOLATILE
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'migrate_call_as_owner';

CREATE OR REPLACE FUNCTION migrate._migrate_drop_plan(plan text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    pl migrate.plan := migrate._plan(plan);
    t regclass;
BEGIN
    IF migrate._plan_locked(pl.plan_name) THEN
        RAISE EXCEPTION 'migration plan "%" is running', pl.plan_name
            USING ERRCODE = 'object_in_use',
                  HINT = 'Wait for its run or sync to end, or stop it with migrate_cancel(run), then drop it.';
    END IF;
    FOR t IN SELECT s.target FROM migrate.sync_state s
              WHERE s.plan OPERATOR(pg_catalog.=) pl.plan_name AND s.capture OPERATOR(pg_catalog.=) 'trigger'
    LOOP
        PERFORM migrate._capture_disarm(pl.plan_name, t);
    END LOOP;
    IF EXISTS (SELECT FROM migrate.sync_state s
                WHERE s.plan OPERATOR(pg_catalog.=) pl.plan_name AND s.capture OPERATOR(pg_catalog.=) 'slot') THEN
        PERFORM migrate._slot_drop(pl.plan_name);
    END IF;
    -- the foreign tables migrate_file() declared for the plan, unless another plan reads them
    FOR t IN SELECT pg_catalog.to_regclass(m.source) FROM migrate.table_map m
              WHERE m.plan OPERATOR(pg_catalog.=) pl.plan_name AND m.options ? 'file'
                AND EXISTS (SELECT FROM pg_catalog.pg_foreign_table ft
                              JOIN pg_catalog.pg_foreign_server fs ON fs.oid OPERATOR(pg_catalog.=) ft.ftserver
                             WHERE ft.ftrelid OPERATOR(pg_catalog.=) pg_catalog.to_regclass(m.source)
                               AND fs.srvname OPERATOR(pg_catalog.=) 'migrate_files')
                AND NOT EXISTS (SELECT FROM migrate.table_map o
                                 WHERE o.plan OPERATOR(pg_catalog.<>) pl.plan_name
                                   AND pg_catalog.to_regclass(o.source) OPERATOR(pg_catalog.=) pg_catalog.to_regclass(m.source))
    LOOP
        BEGIN
            EXECUTE pg_catalog.format('DROP FOREIGN TABLE %s', t);
        EXCEPTION WHEN insufficient_privilege OR dependent_objects_still_exist THEN
            RAISE NOTICE 'file source % of migration plan "%" is kept: %', t, pl.plan_name, SQLERRM;
        END;
    END LOOP;
    -- recorded while the plan is there to say whose it was
    PERFORM migrate._catalog_event(NULL, pl.plan_name, 'plan dropped', NULL);
    PERFORM migrate._catalog_undo_drop(pl.plan_name);   -- no foreign key from migrate.undo
    DELETE FROM migrate.plan p WHERE p.plan_name OPERATOR(pg_catalog.=) pl.plan_name;
END;
$$;
REVOKE ALL ON FUNCTION migrate._migrate_drop_plan(text) FROM PUBLIC;

-- slot capture (src/slot.c)

-- The leading key values (text) of the changes that the plan's replication
-- slot holds for a slot table after the table's position in
-- migrate.sync_state (all of them if it has none): peeked, the slot does
-- not move.  A key change gives the old and the new key, a truncate NULL.
-- Runs as the caller, whose user mapping reaches the source; internal (the
-- lead's engine and verify call it as the plan's owner).
CREATE OR REPLACE FUNCTION migrate._slot_pending_keys(p_plan text, p_target regclass)
RETURNS SETOF text
LANGUAGE C STRICT VOLATILE
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'migrate_sql_slot_pending_keys';
REVOKE ALL ON FUNCTION migrate._slot_pending_keys(text, regclass) FROM PUBLIC;

-- Drop the plan's replication slot on each source server of its slot tables
-- (table_map.capture or sync_state.capture 'slot'); no error where it does
-- not exist.  For migrate_drop_plan(); internal.
CREATE OR REPLACE FUNCTION migrate._slot_drop(p_plan text)
RETURNS void
LANGUAGE C STRICT VOLATILE
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'migrate_sql_slot_drop';
REVOKE ALL ON FUNCTION migrate._slot_drop(text) FROM PUBLIC;

-- trigger capture
--
-- capture => 'trigger' (DESIGN.md "Strategies"): statement-level AFTER
-- triggers with transition tables write the changed leading key values of
-- the source table to a change table beside it,
--   <source schema>.<source table>_migrate_changes
--       (seq bigserial PRIMARY KEY, k <key type>, op "char", at timestamptz),
-- op 'I', 'U', 'D' (k the key of a new, updated (old and new key) or
-- deleted row; rows whose key is NULL are not recorded: no apply can find
-- them) or 'T' (k NULL: the table was truncated).  The trigger function
-- <table>_migrate_capture() is SECURITY DEFINER, owned by whoever ran the
-- DDL (locally the plan owner, remotely the source's DBA), with a pinned
-- search_path and fully qualified names: whatever role writes the source
-- needs no right on the change table, and PUBLIC has none.  The engine
-- (src/sync.c) reads SELECT seq, k FROM <relation> ORDER BY seq LIMIT n
-- and deletes the seqs it applied (after its own commit).
--
-- _capture_ddl, _capture_arm_trigger and _capture_disarm stay executable
-- by PUBLIC: they read the catalog under its row-level security (a caller
-- sees only plans of owners it is a member of) and run DDL with the
-- caller's own rights, nothing it could not run itself.  The body of
-- migrate_capture_sql, which reads the owner's user mapping, runs as the
-- plan's owner (migrate_call_as_owner) and is revoked from PUBLIC.

-- A name made of p_base and p_suffix that fits in NAMEDATALEN - 1 (63)
-- bytes: when it does not, p_base is cut (on a character boundary) and an
-- 8-digit hash of the whole of it keeps cut names apart.
CREATE OR REPLACE FUNCTION migrate._capture_name(p_base text, p_suffix text)
RETURNS name
LANGUAGE plpgsql IMMUTABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    base text := p_base;
    hash text := '_' || pg_catalog.substr(pg_catalog.md5(p_base), 1, 8);
BEGIN
    IF pg_catalog.octet_length(p_base || p_suffix) <= 63 THEN
        RETURN (p_base || p_suffix)::name;
    END IF;
    WHILE pg_catalog.octet_length(base || hash || p_suffix) > 63 LOOP
        base := pg_catalog.left(base, -1);
    END LOOP;
    RETURN (base || hash || p_suffix)::name;
END;
$$;

-- Text for a SQL comment line: no line break can end the comment early
-- (names and plan names may hold any character).
CREATE OR REPLACE FUNCTION migrate._capture_comment(p_text text)
RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pg_catalog.regexp_replace(coalesce(p_text, ''), '[\r\n\f\v]+', ' ', 'g')
$$;

-- What trigger capture of one table mapping installs, and where:
-- local: the source table itself; remote: the postgres_fdw foreign table,
-- its server and the remote schema, table and key column (the foreign
-- table's and its column's options, defaulting like postgres_fdw to the
-- local names).  The first key column must map from a plain source column
-- (s.<column>): the triggers record that column's values, and the engine
-- re-reads the rows "<that column> = ANY (keys)" on the source.
CREATE OR REPLACE FUNCTION migrate._capture_source(p_plan text, p_target regclass,
    OUT source regclass, OUT remote boolean, OUT server oid, OUT source_schema name,
    OUT source_table name, OUT key_column name, OUT local_key_column name, OUT key_type text,
    OUT changes name, OUT capture_function name, OUT local_schema name, OUT local_changes name)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    path text := migrate._caller_search_path();
    tm migrate.table_map;
    tname text := migrate._relname(p_target, path);
    rel record;
    expr text;
    m text[];
    fdw name;
BEGIN
    PERFORM migrate._plan(p_plan);
    SELECT * INTO tm FROM migrate.table_map t
     WHERE t.plan OPERATOR(pg_catalog.=) p_plan AND t.target OPERATOR(pg_catalog.=) p_target;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'table % is not mapped in migration plan "%"', tname, p_plan
            USING ERRCODE = 'undefined_object',
                  HINT = 'Map it first with migrate_table().';
    END IF;
    source := pg_catalog.to_regclass(tm.source);
    IF source IS NULL THEN
        RAISE EXCEPTION 'source relation % of table % in migration plan "%" does not exist',
                        tm.source, tname, p_plan
            USING ERRCODE = 'undefined_table';
    END IF;
    SELECT c.relkind, c.relname, n.nspname, c.relhassubclass, c.relispartition INTO rel
      FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
     WHERE c.oid OPERATOR(pg_catalog.=) source;
    local_schema := rel.nspname;

    -- the leading key column, as a plain source column
    SELECT mc.expr INTO expr FROM migrate._mapped_columns(p_plan, p_target) mc
     WHERE mc.column_name OPERATOR(pg_catalog.=) tm.key[1];
    m := pg_catalog.regexp_match(coalesce(expr, ''),
                                 '^\s*s\s*\.\s*(?:"((?:[^"]|"")+)"|([A-Za-z_][A-Za-z0-9_$]*))\s*$');
    IF m IS NOT NULL THEN
        local_key_column := coalesce(pg_catalog.replace(m[1], '""', '"'), pg_catalog.lower(m[2]));
        SELECT pg_catalog.format_type(a.atttypid, a.atttypmod),
               coalesce((SELECT pg_catalog.substr(o, 13) FROM pg_catalog.unnest(a.attfdwoptions) o
                          WHERE o LIKE 'column\_name=%'), a.attname)
          INTO key_type, key_column
          FROM pg_catalog.pg_attribute a
         WHERE a.attrelid OPERATOR(pg_catalog.=) source AND a.attnum > 0 AND NOT a.attisdropped
           AND a.attname OPERATOR(pg_catalog.=) local_key_column;
    END IF;
    IF key_type IS NULL THEN
        RAISE EXCEPTION 'capture trigger of table % in migration plan "%" needs its first key column "%" mapped from a plain source column',
                        tname, p_plan, tm.key[1]
            USING ERRCODE = 'feature_not_supported',
                  DETAIL = pg_catalog.format('It is mapped from %s.', coalesce(expr, 'nothing')),
                  HINT = pg_catalog.format('Map it as s.<column> with migrate_column(%L, %L, %L, ''s.<column>''), or use capture => ''diff''; the triggers record the source values of that column.',
                                           p_plan, tname, tm.key[1]);
    END IF;

    IF rel.relkind OPERATOR(pg_catalog.=) 'r' AND NOT rel.relhassubclass AND NOT rel.relispartition THEN
        remote := false;
        source_schema := rel.nspname;
        source_table := rel.relname;
        key_column := local_key_column;
    ELSIF rel.relkind OPERATOR(pg_catalog.=) 'f' THEN
        SELECT ft.ftserver, w.fdwname,
               coalesce((SELECT pg_catalog.substr(o, 13) FROM pg_catalog.unnest(ft.ftoptions) o
                          WHERE o LIKE 'schema\_name=%'), rel.nspname),
               coalesce((SELECT pg_catalog.substr(o, 12) FROM pg_catalog.unnest(ft.ftoptions) o
                          WHERE o LIKE 'table\_name=%'), rel.relname)
          INTO server, fdw, source_schema, source_table
          FROM pg_catalog.pg_foreign_table ft
          JOIN pg_catalog.pg_foreign_server fs ON fs.oid OPERATOR(pg_catalog.=) ft.ftserver
          JOIN pg_catalog.pg_foreign_data_wrapper w ON w.oid OPERATOR(pg_catalog.=) fs.srvfdw
         WHERE ft.ftrelid OPERATOR(pg_catalog.=) source;
        IF fdw IS DISTINCT FROM 'postgres_fdw' THEN
            RAISE EXCEPTION 'capture trigger of table % in migration plan "%" needs a PostgreSQL source, not a % foreign table',
                            tname, p_plan, fdw
                USING ERRCODE = 'feature_not_supported',
                      HINT = 'Trigger capture works on a local table or a postgres_fdw foreign table; use capture => ''diff'' for any source.';
        END IF;
        remote := true;
        local_changes := migrate._capture_name(rel.relname, '_migrate_changes');
    ELSE
        RAISE EXCEPTION 'capture trigger of table % in migration plan "%" needs a plain table as its source: % is %',
                        tname, p_plan, migrate._relname(source, path),
                        CASE WHEN rel.relkind OPERATOR(pg_catalog.=) 'p' OR rel.relhassubclass THEN 'partitioned or has inheritance children'
                             WHEN rel.relispartition THEN 'a partition'
                             WHEN rel.relkind OPERATOR(pg_catalog.=) 'v' THEN 'a view'
                             WHEN rel.relkind OPERATOR(pg_catalog.=) 'm' THEN 'a materialized view'
                             ELSE 'not a table' END
            USING ERRCODE = 'feature_not_supported',
                  HINT = CASE WHEN rel.relkind IN ('p', 'r') OR rel.relhassubclass
                              THEN 'Statement triggers on a parent do not see writes made directly to its partitions or children; use capture => ''diff'', or map the partitions one by one.'
                              ELSE 'Triggers record the writes of a table; map the table itself, or use capture => ''diff''.' END;
    END IF;
    changes := migrate._capture_name(source_table, '_migrate_changes');
    capture_function := migrate._capture_name(source_table, '_migrate_capture');
    IF NOT remote THEN
        local_changes := changes;
    END IF;
END;
$$;

-- The role a user mapping of p_owner (else PUBLIC's) on p_server connects
-- as, when the caller may read the mapping's options; NULL otherwise (no
-- "user" option: libpq's default, the local server's operating-system user).
CREATE OR REPLACE FUNCTION migrate._capture_remote_role(p_server oid, p_owner regrole)
RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT (SELECT pg_catalog.substr(o, 6) FROM pg_catalog.unnest(um.umoptions) o WHERE o LIKE 'user=%')
      FROM pg_catalog.pg_user_mappings um
     WHERE um.srvid OPERATOR(pg_catalog.=) p_server
       AND um.umuser OPERATOR(pg_catalog.=) ANY (ARRAY[p_owner::pg_catalog.oid, 0::pg_catalog.oid])
     ORDER BY um.umuser OPERATOR(pg_catalog.=) 0
     LIMIT 1
$$;

-- The DDL that installs trigger capture of one table mapping on its
-- source (see the top of this block).  remote => false: for the local
-- source table, run by _capture_arm_trigger as the plan owner (CREATE OR
-- REPLACE TRIGGER: re-arming needs only TRIGGER on the table); remote =>
-- true: for the source database of a postgres_fdw foreign table, run by
-- its DBA (DROP TRIGGER IF EXISTS and CREATE TRIGGER, PostgreSQL 11 and
-- later), with SELECT, DELETE on the change table for the role the plan
-- owner's user mapping connects as.  Idempotent: an existing change
-- table and its rows are kept.
CREATE OR REPLACE FUNCTION migrate._capture_ddl(plan text, target regclass, remote boolean)
RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    path text := migrate._caller_search_path();
    cs record;
    nl constant text := E'\n';
    chg text;
    fn text;
    tbl text;
    k text;
    body text;
    tag text := 'migrate_capture';
    n int := 0;
    role text;
    ddl text;
    trig record;
BEGIN
    cs := migrate._capture_source(plan, target);
    IF remote IS DISTINCT FROM cs.remote THEN
        RAISE EXCEPTION 'source % of table % in migration plan "%" is %', migrate._relname(cs.source, path),
                        migrate._relname(target, path), plan,
                        CASE WHEN cs.remote THEN 'a foreign table (remote => true)' ELSE 'a local table (remote => false)' END
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    chg := pg_catalog.format('%I.%I', cs.source_schema, cs.changes);
    fn := pg_catalog.format('%I.%I()', cs.source_schema, cs.capture_function);
    tbl := pg_catalog.format('%I.%I', cs.source_schema, cs.source_table);
    k := pg_catalog.quote_ident(cs.key_column);

    body := nl || 'BEGIN' || nl
        || '    IF TG_OP = ''INSERT'' THEN' || nl
        || pg_catalog.format('        INSERT INTO %s (k, op) SELECT n.%s, ''I'' FROM migrate_new n WHERE n.%s IS NOT NULL;', chg, k, k) || nl
        || '    ELSIF TG_OP = ''UPDATE'' THEN' || nl
        || '        -- old and new keys: an update of the key records both' || nl
        || pg_catalog.format('        INSERT INTO %s (k, op) SELECT c.k, ''U''', chg) || nl
        || pg_catalog.format('          FROM (SELECT o.%s AS k FROM migrate_old o UNION SELECT n.%s FROM migrate_new n) c', k, k) || nl
        || '         WHERE c.k IS NOT NULL;' || nl
        || '    ELSIF TG_OP = ''DELETE'' THEN' || nl
        || pg_catalog.format('        INSERT INTO %s (k, op) SELECT o.%s, ''D'' FROM migrate_old o WHERE o.%s IS NOT NULL;', chg, k, k) || nl
        || '    ELSE' || nl
        || '        -- TRUNCATE: no keys, the next sync compares the whole table' || nl
        || pg_catalog.format('        INSERT INTO %s (k, op) VALUES (NULL, ''T'');', chg) || nl
        || '    END IF;' || nl
        || '    RETURN NULL;' || nl
        || 'END;' || nl;
    -- a dollar quote no name inside the body can close
    WHILE pg_catalog.strpos(body, '$' || tag || '$') > 0 LOOP
        n := n + 1;
        tag := 'migrate_capture_' || n;
    END LOOP;

    ddl := pg_catalog.format('-- trigger capture of %s for table %s of migration plan "%s"',
                             migrate._capture_comment(tbl),
                             migrate._capture_comment(migrate._relname(target, path)),
                             migrate._capture_comment(plan)) || nl
        || pg_catalog.format('CREATE TABLE IF NOT EXISTS %s (', chg) || nl
        || '    seq bigserial PRIMARY KEY,' || nl
        || pg_catalog.format('    k %s,', cs.key_type) || nl
        || '    op "char" NOT NULL,' || nl
        || '    at timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp()' || nl
        || ');' || nl
        || pg_catalog.format('CREATE INDEX IF NOT EXISTS %I ON %s (at);',
                             migrate._capture_name(cs.changes, '_at'), chg) || nl
        || pg_catalog.format('REVOKE ALL ON TABLE %s FROM PUBLIC;', chg) || nl
        || pg_catalog.format('CREATE OR REPLACE FUNCTION %s RETURNS trigger', fn) || nl
        || 'LANGUAGE plpgsql SECURITY DEFINER' || nl
        || 'SET search_path = pg_catalog, pg_temp' || nl
        || pg_catalog.format('AS $%s$', tag) || body || pg_catalog.format('$%s$;', tag) || nl
        || pg_catalog.format('REVOKE ALL ON FUNCTION %s FROM PUBLIC;', fn) || nl;
    FOR trig IN SELECT * FROM (VALUES
            (1, 'migrate_capture_insert', 'INSERT', 'REFERENCING NEW TABLE AS migrate_new '),
            (2, 'migrate_capture_update', 'UPDATE', 'REFERENCING OLD TABLE AS migrate_old NEW TABLE AS migrate_new '),
            (3, 'migrate_capture_delete', 'DELETE', 'REFERENCING OLD TABLE AS migrate_old '),
            (4, 'migrate_capture_truncate', 'TRUNCATE', '')) AS t(ord, name, event, referencing)
            ORDER BY t.ord LOOP
        IF remote THEN
            ddl := ddl || pg_catalog.format('DROP TRIGGER IF EXISTS %I ON %s;', trig.name, tbl) || nl
                || pg_catalog.format('CREATE TRIGGER %I AFTER %s ON %s %sFOR EACH STATEMENT EXECUTE FUNCTION %s;',
                                     trig.name, trig.event, tbl, trig.referencing, fn) || nl;
        ELSE
            ddl := ddl || pg_catalog.format('CREATE OR REPLACE TRIGGER %I AFTER %s ON %s %sFOR EACH STATEMENT EXECUTE FUNCTION %s;',
                                            trig.name, trig.event, tbl, trig.referencing, fn) || nl;
        END IF;
    END LOOP;
    IF remote THEN
        role := migrate._capture_remote_role(cs.server, (SELECT p.owner FROM migrate.plan p
                                                          WHERE p.plan_name OPERATOR(pg_catalog.=) plan));
        IF role IS NOT NULL THEN
            ddl := ddl || pg_catalog.format('GRANT SELECT, DELETE ON TABLE %s TO %I;', chg, role) || nl;
        ELSE
            ddl := ddl || '-- the role migrate connects as (its user mapping names none, or it is not visible here):' || nl
                || pg_catalog.format('-- GRANT SELECT, DELETE ON TABLE %s TO <that role>;', chg) || nl;
        END IF;
    END IF;
    RETURN ddl;
END;
$$;

-- The trigger-capture DDL of every table of a plan whose source is a
-- postgres_fdw foreign table, one script per server, for the source's DBA.
-- Runs as the plan's owner (src/owner.c): its user mapping names the role
-- migrate connects as.  The body is migrate._migrate_capture_sql.
CREATE OR REPLACE FUNCTION migrate_capture_sql(plan text)
RETURNS text
LANGUAGE C VOLATILE
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'migrate_call_as_owner';

CREATE OR REPLACE FUNCTION migrate._migrate_capture_sql(plan text)
RETURNS text
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    pl migrate.plan := migrate._plan(plan);
    nl constant text := E'\n';
    srv record;
    t record;
    role text;
    script text := '';
    part text;
BEGIN
    FOR srv IN
        SELECT fs.oid, fs.srvname,
               (SELECT pg_catalog.substr(o, 8) FROM pg_catalog.unnest(fs.srvoptions) o WHERE o LIKE 'dbname=%') AS dbname,
               w.fdwname
          FROM pg_catalog.pg_foreign_server fs
          JOIN pg_catalog.pg_foreign_data_wrapper w ON w.oid OPERATOR(pg_catalog.=) fs.srvfdw
         WHERE fs.oid IN (SELECT ft.ftserver FROM migrate.table_map tm
                            JOIN pg_catalog.pg_foreign_table ft
                              ON ft.ftrelid OPERATOR(pg_catalog.=) pg_catalog.to_regclass(tm.source)
                           WHERE tm.plan OPERATOR(pg_catalog.=) pl.plan_name
                             AND tm.capture OPERATOR(pg_catalog.=) 'trigger')
         ORDER BY fs.srvname LOOP
        IF srv.fdwname OPERATOR(pg_catalog.<>) 'postgres_fdw' THEN
            script := script || pg_catalog.format('-- server "%s" (%s): trigger capture needs a PostgreSQL source; its tables in migration plan "%s" need capture => ''diff''.',
                                            migrate._capture_comment(srv.srvname), migrate._capture_comment(srv.fdwname),
                                            migrate._capture_comment(pl.plan_name)) || nl;
            CONTINUE;
        END IF;
        role := migrate._capture_remote_role(srv.oid, pl.owner);
        part := '';
        FOR t IN SELECT tm.target FROM migrate.table_map tm
                   JOIN pg_catalog.pg_foreign_table ft
                     ON ft.ftrelid OPERATOR(pg_catalog.=) pg_catalog.to_regclass(tm.source)
                  WHERE tm.plan OPERATOR(pg_catalog.=) pl.plan_name
                    AND tm.capture OPERATOR(pg_catalog.=) 'trigger'
                    AND ft.ftserver OPERATOR(pg_catalog.=) srv.oid
                  ORDER BY tm.source, tm.target::pg_catalog.oid LOOP
            part := part || nl || migrate._capture_ddl(pl.plan_name, t.target, true);
        END LOOP;
        script := script
            || pg_catalog.format('-- Trigger capture for migration plan "%s" (migrate_capture_sql()): run this on',
                                 migrate._capture_comment(pl.plan_name)) || nl
            || pg_catalog.format('-- database "%s" of server "%s", as the owner of the tables below (or a role',
                                 migrate._capture_comment(coalesce(srv.dbname, '(the server''s default)')),
                                 migrate._capture_comment(srv.srvname)) || nl
            || '-- with TRIGGER on them and CREATE on their schemas), PostgreSQL 11 or later.' || nl
            || '-- Per table: a change table <table>_migrate_changes, a SECURITY DEFINER function' || nl
            || '-- <table>_migrate_capture() that writes it, and statement triggers recording the keys' || nl
            || '-- that INSERT, UPDATE, DELETE change (and TRUNCATE).  Roles writing the tables need no' || nl
            || '-- right on either; PUBLIC has none.  Running it again keeps the change tables.' || nl
            || CASE WHEN role IS NOT NULL
                    THEN pg_catalog.format('-- Role "%s" (the user mapping of "%s" on server "%s") is granted SELECT, DELETE',
                                           migrate._capture_comment(role), migrate._capture_comment(pl.owner::pg_catalog.text),
                                           migrate._capture_comment(srv.srvname)) || nl
                         || '-- on each change table: migrate reads the keys and deletes the ones it applied.' || nl
                    ELSE pg_catalog.format('-- Grant SELECT, DELETE on each change table to the role the user mapping of "%s"',
                                           migrate._capture_comment(pl.owner::pg_catalog.text)) || nl
                         || pg_catalog.format('-- on server "%s" connects as (see the GRANT lines below).',
                                              migrate._capture_comment(srv.srvname)) || nl END
            || 'BEGIN;' || nl || part || 'COMMIT;' || nl;
    END LOOP;
    IF script OPERATOR(pg_catalog.=) '' THEN
        script := pg_catalog.format('-- migration plan "%s": no table with capture => ''trigger'' reads a remote source; nothing to install.',
                                 migrate._capture_comment(pl.plan_name)) || nl;
    END IF;
    RETURN script;
END;
$$;
REVOKE ALL ON FUNCTION migrate._migrate_capture_sql(text) FROM PUBLIC;

-- Arm trigger capture of one table mapping, as the caller (the engine
-- calls it as the plan owner); returns the relation the engine reads the
-- changed keys from.  Local source: runs _capture_ddl (needs TRIGGER on the
-- table and CREATE on its schema; the change table and function are the
-- caller's).  postgres_fdw source: the DBA has run migrate_capture_sql();
-- a foreign table <foreign table>_migrate_changes beside the source's
-- reads the remote change table, and is probed (read, and a delete of no
-- row) so that a missing table or grant fails here, not in the first sync.
CREATE OR REPLACE FUNCTION migrate._capture_arm_trigger(plan text, target regclass)
RETURNS regclass
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    path text := migrate._caller_search_path();
    tname text := migrate._relname(target, path);
    cs record;
    srcname text;
    chg text;
    rel regclass;
    srvname name;
    state text;
    msg text;
BEGIN
    cs := migrate._capture_source(plan, target);
    srcname := migrate._relname(cs.source, path);
    IF (SELECT tm.capture FROM migrate.table_map tm
         WHERE tm.plan OPERATOR(pg_catalog.=) _capture_arm_trigger.plan
           AND tm.target OPERATOR(pg_catalog.=) _capture_arm_trigger.target) OPERATOR(pg_catalog.<>) 'trigger' THEN
        RAISE EXCEPTION 'table % in migration plan "%" does not use capture trigger', tname, plan
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = pg_catalog.format('Set it with migrate_table(%L, ..., capture => ''trigger'').', plan);
    END IF;
    IF NOT pg_catalog.has_schema_privilege(cs.local_schema, 'CREATE') THEN
        RAISE EXCEPTION 'permission denied to arm capture trigger of table % in migration plan "%": no CREATE on schema %',
                        tname, plan, pg_catalog.quote_ident(cs.local_schema)
            USING ERRCODE = 'insufficient_privilege',
                  HINT = pg_catalog.format('The change table %s goes beside %s: GRANT CREATE ON SCHEMA %I TO %I.',
                                           pg_catalog.quote_ident(cs.local_changes), srcname, cs.local_schema, current_user);
    END IF;
    chg := pg_catalog.format('%I.%I', cs.local_schema, cs.local_changes);

    IF NOT cs.remote THEN
        IF NOT pg_catalog.has_table_privilege(cs.source, 'TRIGGER') THEN
            RAISE EXCEPTION 'permission denied to arm capture trigger of table % in migration plan "%": no TRIGGER on %',
                            tname, plan, srcname
                USING ERRCODE = 'insufficient_privilege',
                      HINT = pg_catalog.format('GRANT TRIGGER ON %s TO %I (its owner or a superuser can).', srcname, current_user);
        END IF;
        rel := pg_catalog.to_regclass(chg);
        IF rel IS NOT NULL AND ((SELECT c.relkind FROM pg_catalog.pg_class c WHERE c.oid OPERATOR(pg_catalog.=) rel)
                                OPERATOR(pg_catalog.<>) 'r'
                                OR NOT EXISTS (SELECT FROM pg_catalog.pg_attribute a
                                                WHERE a.attrelid OPERATOR(pg_catalog.=) rel AND a.attname OPERATOR(pg_catalog.=) 'seq')) THEN
            RAISE EXCEPTION 'relation % exists and is not the change table of %', chg, srcname
                USING ERRCODE = 'duplicate_table',
                      HINT = 'Rename or drop it; trigger capture keeps the changed keys in that name.';
        END IF;
        EXECUTE migrate._capture_ddl(plan, target, false);
        RETURN pg_catalog.to_regclass(chg);
    END IF;

    SELECT fs.srvname INTO srvname FROM pg_catalog.pg_foreign_server fs WHERE fs.oid OPERATOR(pg_catalog.=) cs.server;
    IF NOT pg_catalog.has_server_privilege(cs.server, 'USAGE') THEN
        RAISE EXCEPTION 'permission denied to arm capture trigger of table % in migration plan "%": no USAGE on server %',
                        tname, plan, pg_catalog.quote_ident(srvname)
            USING ERRCODE = 'insufficient_privilege',
                  HINT = pg_catalog.format('A foreign table for the change table goes beside %s: GRANT USAGE ON FOREIGN SERVER %I TO %I.',
                                           srcname, srvname, current_user);
    END IF;
    EXECUTE pg_catalog.format('CREATE FOREIGN TABLE IF NOT EXISTS %s (seq bigint, k %s, op "char", at timestamptz)'
                              ' SERVER %I OPTIONS (schema_name %L, table_name %L)',
                              chg, cs.key_type, srvname, cs.source_schema, cs.changes);
    EXECUTE pg_catalog.format('REVOKE ALL ON TABLE %s FROM PUBLIC', chg);
    rel := pg_catalog.to_regclass(chg);
    BEGIN
        EXECUTE pg_catalog.format('SELECT seq, k, op FROM %s ORDER BY seq LIMIT 1', chg);
        EXECUTE pg_catalog.format('DELETE FROM %s WHERE seq < 0', chg);
    EXCEPTION WHEN undefined_table OR undefined_column OR insufficient_privilege OR invalid_schema_name THEN
        GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, msg = MESSAGE_TEXT;
        IF state OPERATOR(pg_catalog.=) '42501' THEN
            RAISE EXCEPTION 'the change table %.% of % on server % cannot be read or pruned by migrate',
                            pg_catalog.quote_ident(cs.source_schema), pg_catalog.quote_ident(cs.changes),
                            srcname, pg_catalog.quote_ident(srvname)
                USING ERRCODE = 'insufficient_privilege', DETAIL = msg,
                      HINT = pg_catalog.format('On the source, grant SELECT, DELETE on it to the role of your user mapping (migrate_capture_sql(%L) has the GRANT).', plan);
        END IF;
        RAISE EXCEPTION 'trigger capture of % is not installed on server %: no change table %.%',
                        srcname, pg_catalog.quote_ident(srvname),
                        pg_catalog.quote_ident(cs.source_schema), pg_catalog.quote_ident(cs.changes)
            USING ERRCODE = 'object_not_in_prerequisite_state', DETAIL = msg,
                  HINT = pg_catalog.format('Have the source''s DBA run the script of SELECT migrate_capture_sql(%L) on the source, then arm again.', plan);
    END;
    RETURN rel;
END;
$$;

-- Undo the local part of arming: the triggers, function and change table
-- of a local source (the triggers go with the function they run, which
-- the armer owns: dropping a trigger outright needs the table's owner), or
-- the foreign table of a remote one (what the DBA installed on the source
-- stays: docs/runbook.md says how to remove it).  Nothing armed: nothing.
CREATE OR REPLACE FUNCTION migrate._capture_disarm(plan text, target regclass)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
SET client_min_messages = warning
AS $$
DECLARE
    cs record;
    fn regprocedure;
    other text;
BEGIN
    cs := migrate._capture_source(plan, target);
    IF cs.remote THEN
        EXECUTE pg_catalog.format('DROP FOREIGN TABLE IF EXISTS %I.%I', cs.local_schema, cs.local_changes);
        RETURN;
    END IF;
    fn := pg_catalog.to_regprocedure(pg_catalog.format('%I.%I()', cs.source_schema, cs.capture_function));
    IF fn IS NOT NULL THEN
        -- only our triggers on this table may go with it
        SELECT pg_catalog.string_agg(pg_catalog.pg_describe_object(d.classid, d.objid, d.objsubid), ', ') INTO other
          FROM pg_catalog.pg_depend d
          LEFT JOIN pg_catalog.pg_trigger tg
            ON d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_trigger'::pg_catalog.regclass
           AND tg.oid OPERATOR(pg_catalog.=) d.objid
         WHERE d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_proc'::pg_catalog.regclass
           AND d.refobjid OPERATOR(pg_catalog.=) fn
           AND d.deptype OPERATOR(pg_catalog.=) 'n'
           AND (tg.oid IS NULL OR tg.tgrelid OPERATOR(pg_catalog.<>) cs.source
                OR tg.tgname NOT IN ('migrate_capture_insert', 'migrate_capture_update',
                                     'migrate_capture_delete', 'migrate_capture_truncate'));
        IF other IS NOT NULL THEN
            RAISE EXCEPTION 'cannot disarm trigger capture of %: other objects use function %', cs.source, fn
                USING ERRCODE = 'dependent_objects_still_exist', DETAIL = other,
                      HINT = 'Drop those objects first.';
        END IF;
        EXECUTE pg_catalog.format('DROP FUNCTION %s CASCADE', fn);
    END IF;
    EXECUTE pg_catalog.format('DROP TABLE IF EXISTS %I.%I', cs.source_schema, cs.changes);
END;
$$;

-- in-flight keys (parallel run)
--
-- While the source stays live (a parallel run), migrate_verify(plan,
-- stable_for => ...) and migrate_diff(..., stable_for => ...) leave out of
-- both sides the keys that are *in flight*: changed at the source and not
-- yet applied, or changed within the window.  What each capture knows:
--   watermark  source rows whose watermark column is past now() -
--              stable_for (changed within the window) or past the table's
--              position minus its lag (a minute by default, as src/sync.c
--              re-reads: not yet synced for sure), whichever bound is
--              earlier; a watermark that is not a time only has the position
--   trigger    every key still in the change relation (rows the engine has
--              applied are deleted from it; those in sync_state.prune are
--              applied and only wait to be deleted); a pending TRUNCATE
--              puts every key of the target in flight
--   slot       migrate._slot_pending_keys(plan, target) (src/slot.c)
--   diff, none nothing: no change is known before the diff finds it
-- A key is the leading key value as text: the first key column's value as
-- the target holds it (the mapped source value, cast to the column's type).
-- Runs as its caller (under migrate_verify: the plan's owner), the plan's
-- expressions under the caller's search_path: safe for any caller, who
-- sees only the plans and sync state of roles it is a member of; it stays
-- executable by PUBLIC because the owner's verify calls it as the owner.

-- The keys in flight and a phrase saying how they were found.
CREATE OR REPLACE FUNCTION migrate._in_flight(p_plan text, p_target regclass, p_stable_for interval,
                                            OUT keys text[], OUT how text)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    tm migrate.table_map;
    ss migrate.sync_state;
    q jsonb;
    lead_s text;
    lead_t text;
    lead_type text;
    wm_type regtype;
    by_time text;
    by_position text;
    threshold text;
    rel regclass;
    truncated boolean := false;
    expr_path constant text := migrate._caller_search_path();
BEGIN
    IF p_stable_for < '0' THEN
        RAISE EXCEPTION 'stable_for of table % in migration plan "%" must not be negative (got %)',
                        migrate._verify_relname(p_target), p_plan, p_stable_for
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Pass the time a change needs to reach the target, for example stable_for => ''30 seconds''.';
    END IF;
    SELECT * INTO tm FROM migrate.table_map WHERE plan = p_plan AND target = p_target;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'table % is not mapped in migration plan "%"', migrate._verify_relname(p_target), p_plan
            USING ERRCODE = 'undefined_object',
                  HINT = 'Map it first with migrate_table().';
    END IF;
    SELECT * INTO ss FROM migrate.sync_state WHERE plan = p_plan AND target = p_target;
    q := migrate._verify_sql(p_plan, p_target);
    lead_s := q->'key_sources'->>0;
    lead_t := q->'key_targets'->>0;
    lead_type := q->'key_types'->>0;
    keys := '{}';

    IF tm.capture IN ('none', 'diff') THEN
        how := pg_catalog.format('capture %s: no change is known before a diff finds it', tm.capture);
        RETURN;
    END IF;
    IF tm.capture IN ('trigger', 'slot') AND ss.plan IS NULL THEN
        how := pg_catalog.format('capture %s is not armed (no sync state): no change is known', tm.capture);
        RETURN;
    END IF;

    IF tm.capture = 'watermark' THEN
        SELECT a.atttypid::regtype INTO wm_type FROM pg_catalog.pg_attribute a
         WHERE a.attrelid = pg_catalog.to_regclass(tm.source) AND a.attname = tm.watermark
           AND NOT a.attisdropped;
        IF wm_type IS NULL THEN
            RAISE EXCEPTION 'watermark column "%" of table % in migration plan "%" is not in its source %',
                            tm.watermark, migrate._verify_relname(p_target), p_plan, tm.source
                USING ERRCODE = 'undefined_column',
                      HINT = 'Remap the table with migrate_table(..., watermark => ''column'').';
        END IF;
        -- the thresholds as literals of the column's type, computed here
        -- (a cast of now() would not ship to the source)
        IF wm_type IN ('timestamptz'::regtype, 'timestamp'::regtype, 'date'::regtype) THEN
            IF p_stable_for IS NOT NULL THEN
                EXECUTE pg_catalog.format('SELECT ($1)::%s::text', wm_type)
                   INTO by_time USING pg_catalog.now() - p_stable_for;
            END IF;
            IF ss.position IS NOT NULL THEN
                -- the overlap the engine re-reads: a minute unless the table says (src/sync.c)
                EXECUTE pg_catalog.format('SELECT (($1)::%1$s - $2)::%1$s::text', wm_type)
                   INTO by_position USING ss.position, coalesce(tm.lag, '1 minute'::interval);
            END IF;
        ELSIF ss.position IS NOT NULL THEN
            by_position := ss.position;     -- a version number: lag (a time) does not apply
        END IF;
        IF by_time IS NULL THEN
            threshold := by_position;
        ELSIF by_position IS NULL THEN
            threshold := by_time;
        ELSE
            -- changed within the window, or not yet synced: the earlier bound
            EXECUTE pg_catalog.format('SELECT LEAST($1::%1$s, $2::%1$s)::text', wm_type)
               INTO threshold USING by_time, by_position;
        END IF;
        how := pg_catalog.format('capture watermark: source rows whose %I is after %s', tm.watermark,
                                 coalesce(threshold, 'nothing (no window and no position)'))
               || CASE WHEN threshold IS NULL THEN ''
                       WHEN threshold = by_time AND threshold = by_position
                       THEN pg_catalog.format(' (now() - %s, and the position minus lag)', p_stable_for)
                       WHEN threshold = by_time THEN pg_catalog.format(' (now() - %s)', p_stable_for)
                       WHEN by_position IS NOT NULL
                            AND wm_type IN ('timestamptz'::regtype, 'timestamp'::regtype, 'date'::regtype)
                       THEN pg_catalog.format(' (position %s minus lag %s: not yet synced)', ss.position,
                                              coalesce(tm.lag, '1 minute'::interval))
                       ELSE pg_catalog.format(' (position %s: not yet synced)', ss.position) END
               || CASE WHEN p_stable_for IS NOT NULL
                            AND wm_type NOT IN ('timestamptz'::regtype, 'timestamp'::regtype, 'date'::regtype)
                       THEN pg_catalog.format('; %s is not a time: stable_for does not apply to it', tm.watermark)
                       ELSE '' END
               || '; deletes are not seen';
        IF threshold IS NULL THEN
            RETURN;
        END IF;
        PERFORM pg_catalog.set_config('search_path', expr_path, true);
        EXECUTE pg_catalog.format('SELECT pg_catalog.array_agg(DISTINCT (%1$s)::text) %2$s AND s.%3$I > %4$L::%5$s'
                                  ' AND (%1$s) IS NOT NULL',
                                  lead_s, q->>'source', tm.watermark, threshold, wm_type)
           INTO keys;
        PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
    ELSIF tm.capture = 'trigger' THEN
        rel := pg_catalog.to_regclass(ss.change_relation);
        IF rel IS NULL THEN
            RAISE EXCEPTION 'change relation % of table % in migration plan "%" does not exist',
                            coalesce(ss.change_relation, '(none)'), migrate._verify_relname(p_target), p_plan
                USING ERRCODE = 'undefined_table',
                      HINT = 'Arm capture again: migrate_run(plan, mode => ''incremental'').';
        END IF;
        EXECUTE pg_catalog.format('SELECT pg_catalog.array_agg(DISTINCT c.k::text) FILTER (WHERE c.k IS NOT NULL),'
                                  '       coalesce(pg_catalog.bool_or(c.op = ''T''), false)'
                                  '  FROM %s AS c WHERE c.seq <> ALL (coalesce($1, ''{}''::bigint[]))', rel)
           INTO keys, truncated USING ss.prune;
        how := pg_catalog.format('capture trigger: keys in the change relation %s not yet applied', ss.change_relation);
    ELSE    -- slot
        IF pg_catalog.to_regprocedure('migrate._slot_pending_keys(text, regclass)') IS NULL THEN
            how := 'capture slot: pending changes cannot be read (migrate._slot_pending_keys is missing)';
            RETURN;
        END IF;
        EXECUTE 'SELECT pg_catalog.array_agg(DISTINCT k) FILTER (WHERE k IS NOT NULL), pg_catalog.bool_or(k IS NULL)'
                '  FROM migrate._slot_pending_keys($1, $2) AS k'
           INTO keys, truncated USING p_plan, p_target;
        truncated := coalesce(truncated, false);
        how := pg_catalog.format('capture slot: keys of changes in slot %s after position %s',
                                 coalesce(ss.slot_name::text, '-'), coalesce(ss.position, '-'));
    END IF;
    IF truncated THEN
        -- the source was truncated since: every key the target holds goes
        PERFORM pg_catalog.set_config('search_path', expr_path, true);
        EXECUTE pg_catalog.format('SELECT pg_catalog.array_agg(DISTINCT k) FROM (SELECT pg_catalog.unnest($1) AS k'
                                  ' UNION SELECT (%1$s)::text %2$s AND (%1$s) IS NOT NULL) x',
                                  lead_t, q->>'target')
           INTO keys USING keys;
        PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
        how := how || '; a TRUNCATE is pending: every key of the target';
    END IF;
    keys := coalesce(keys, '{}');
END;
$$;

-- The leading key values (text) in flight for one table (see above).
CREATE OR REPLACE FUNCTION migrate._in_flight_keys(plan text, target regclass, stable_for interval)
RETURNS SETOF text
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT k FROM pg_catalog.unnest((migrate._in_flight(plan, target, stable_for)).keys) AS k ORDER BY k
$$;
