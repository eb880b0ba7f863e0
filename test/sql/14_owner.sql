--
-- Who a call runs as (src/owner.c): migrate_call_as_owner runs a function's
-- implementation as the plan's owner, for callers that are members of the
-- owner (or superusers); the owner's code cannot switch back; the caller's
-- search_path is seen under pinned functions.  Probes are declared here the
-- way the extension declares its own (public wrapper, migrate._<name>).
--
\set SHOW_CONTEXT never
SET client_min_messages = warning;
CREATE ROLE regress_owner_alice;
CREATE ROLE regress_owner_bob;
CREATE ROLE regress_owner_team NOLOGIN;
GRANT regress_owner_team TO regress_owner_bob;
GRANT CREATE ON SCHEMA public TO regress_owner_alice;

CREATE FUNCTION owner_probe(plan text, note text) RETURNS text
LANGUAGE C SET search_path = pg_catalog, pg_temp
AS '$libdir/migrate', 'migrate_call_as_owner';
CREATE FUNCTION migrate._owner_probe(plan text, note text) RETURNS text
LANGUAGE sql SET search_path = pg_catalog, pg_temp
AS $$ SELECT current_user || ': ' || coalesce(note, '-') $$;
REVOKE ALL ON FUNCTION migrate._owner_probe(text, text) FROM PUBLIC;
-- a set-returning one, by run id
CREATE FUNCTION owner_probe_rows(run bigint) RETURNS TABLE (who name, n int)
LANGUAGE C SET search_path = pg_catalog, pg_temp
AS '$libdir/migrate', 'migrate_call_as_owner';
CREATE FUNCTION migrate._owner_probe_rows(run bigint) RETURNS TABLE (who name, n int)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $$ BEGIN RETURN QUERY SELECT current_user, g FROM generate_series(1, 3) g; END $$;
-- the owner's code trying to take the caller's role back
CREATE FUNCTION owner_escape(plan text) RETURNS text
LANGUAGE C SET search_path = pg_catalog, pg_temp
AS '$libdir/migrate', 'migrate_call_as_owner';
CREATE FUNCTION migrate._owner_escape(plan text) RETURNS text
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $$ BEGIN PERFORM set_config('role', 'none', true); RETURN current_user; END $$;
CREATE FUNCTION owner_escape2(plan text) RETURNS text
LANGUAGE C SET search_path = pg_catalog, pg_temp
AS '$libdir/migrate', 'migrate_call_as_owner';
CREATE FUNCTION migrate._owner_escape2(plan text) RETURNS text
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $$ BEGIN EXECUTE 'RESET SESSION AUTHORIZATION'; RETURN current_user; END $$;
-- the caller's search_path, seen from a pinned function and through the wrapper
CREATE FUNCTION path_probe(plan text) RETURNS text
LANGUAGE C SET search_path = pg_catalog, pg_temp
AS '$libdir/migrate', 'migrate_call_as_owner';
CREATE FUNCTION migrate._path_probe(plan text) RETURNS text
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $$ BEGIN RETURN migrate._caller_search_path() || ' (own: ' || current_setting('search_path') || ')'; END $$;

SET ROLE regress_owner_alice;
INSERT INTO migrate.plan (plan_name) VALUES ('owner_alice');
SELECT plan_name, owner FROM migrate.plan;
RESET ROLE;
INSERT INTO migrate.plan (plan_name, owner) VALUES ('owner_team', 'regress_owner_team');

-- the owner itself: runs as itself
SET ROLE regress_owner_alice;
SELECT owner_probe('owner_alice', 'own call');
-- another role: the plan is not visible (row-level security), so the
-- implementation runs as the caller (and would report the plan missing)
SET ROLE regress_owner_bob;
SELECT owner_probe('owner_alice', 'bob');
-- a member of the owning group: runs as the group
SELECT owner_probe('owner_team', 'member');
-- a superuser: runs as the owner, not as the superuser
RESET ROLE;
SELECT owner_probe('owner_alice', 'superuser');
SELECT current_user = session_user AS identity_restored;
-- set-returning implementations pass through (a run of alice's plan)
INSERT INTO migrate.run (plan, batch_size, owner, state, finished_at)
VALUES ('owner_alice', 100, 'regress_owner_alice', 'failed', now()) RETURNING run_id AS run \gset
SELECT * FROM owner_probe_rows(:run);
-- the owner's code cannot go back to the superuser
SELECT owner_escape('owner_alice');
SELECT owner_escape2('owner_alice');
SELECT current_user = session_user AS identity_restored;
-- ... nor when the error is caught in the caller's transaction
DO $$
BEGIN
    PERFORM owner_escape('owner_alice');
EXCEPTION WHEN insufficient_privilege THEN
    RAISE WARNING 'caught: %; identity restored: %', SQLERRM, current_user = session_user;
END $$;

-- the caller's search_path (a pinned function sees its caller's)
SET search_path = public, pg_catalog;
SELECT path_probe('owner_alice');
SELECT migrate._caller_search_path() AS top_level;
RESET search_path;

-- clean up
DELETE FROM migrate.run WHERE run_id = :run;
DELETE FROM migrate.plan WHERE plan_name IN ('owner_alice', 'owner_team');
DROP FUNCTION owner_probe(text, text), migrate._owner_probe(text, text),
              owner_probe_rows(bigint), migrate._owner_probe_rows(bigint),
              owner_escape(text), migrate._owner_escape(text),
              owner_escape2(text), migrate._owner_escape2(text),
              path_probe(text), migrate._path_probe(text);
REVOKE CREATE ON SCHEMA public FROM regress_owner_alice;
DROP ROLE regress_owner_alice, regress_owner_bob, regress_owner_team;
