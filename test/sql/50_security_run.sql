--
-- A run executes as its plan's owner (issue 11; docs/security.md): the
-- owner's mapping SQL runs as the owner whoever calls migrate_run (here a
-- superuser), cannot SET ROLE / RESET ROLE / set_config('role') back, and
-- other roles cannot see, run, resume or cancel the plan's runs nor change
-- its mappings, even with DML granted on the catalog.  A run's state
-- (run, run_range, event) is written by migrate alone: a role granted
-- INSERT, UPDATE, DELETE on those tables still cannot forge, change or
-- delete a row, while its own runs append events in its name.
--
\set SHOW_CONTEXT never
SET client_min_messages = warning;
CREATE ROLE regress_run_alice;          -- no LOGIN: the workers need none
CREATE ROLE regress_run_bob;
CREATE ROLE regress_run_carol BYPASSRLS; -- sees every row, owns nothing

-- alice's source (a local schema) and target, with only the grants the
-- documentation gives a migrator role
CREATE SCHEMA sec_src;
CREATE TABLE sec_src.items (id int PRIMARY KEY, v text);
INSERT INTO sec_src.items SELECT g, 'v' || g FROM generate_series(1, 40) g;
GRANT USAGE ON SCHEMA sec_src TO regress_run_alice;
GRANT SELECT ON sec_src.items TO regress_run_alice;
CREATE SCHEMA sec_tgt;
CREATE TABLE sec_tgt.items (id int PRIMARY KEY, v text);
GRANT USAGE ON SCHEMA sec_tgt TO regress_run_alice;
GRANT SELECT, INSERT, UPDATE, DELETE ON sec_tgt.items TO regress_run_alice;
SELECT 'sec_tgt.items'::regclass::oid AS tgt_oid \gset

-- who ran the owner's SQL: a function recording current_user, and ones
-- that try to become someone else first (a superuser owns them all; they
-- run as their caller)
CREATE TABLE sec_log (who name, what text);
GRANT INSERT ON sec_log TO regress_run_alice;
CREATE FUNCTION sec_record(v text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO public.sec_log VALUES (current_user, 'mapped ' || v);
    RETURN v;
END $$;
CREATE FUNCTION sec_set_config(v text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_catalog.set_config('role', session_user::text, false);
    INSERT INTO public.sec_log VALUES (current_user, 'after set_config');
    RETURN v;
END $$;
CREATE FUNCTION sec_set_role(v text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE 'SET ROLE ' || pg_catalog.quote_ident(session_user::text);
    INSERT INTO public.sec_log VALUES (current_user, 'after SET ROLE');
    RETURN v;
END $$;
CREATE FUNCTION sec_reset_role(v text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    RESET ROLE;
    INSERT INTO public.sec_log VALUES (current_user, 'after RESET ROLE');
    RETURN v;
END $$;

-- the run state of a run, without volatile fields
CREATE FUNCTION sec_run(p_run bigint)
RETURNS TABLE (state text, run_by_me boolean, owner regrole, rows_written bigint, rows_rejected bigint)
LANGUAGE sql AS $$
    SELECT r.state, r.run_by = current_user, r.owner, t.rows_written, t.rows_rejected
      FROM migrate.run r JOIN migrate.run_table t USING (run_id) WHERE r.run_id = p_run
$$;

-- alice defines her plan and runs it herself
SET ROLE regress_run_alice;
SELECT migrate_plan('sec_alice', source_schema => 'sec_src', target_schema => 'sec_tgt');
SELECT migrate_table('sec_alice', 'sec_src.items', 'items');
SELECT migrate_column('sec_alice', 'items', 'v', 'public.sec_record(s.v)');
SELECT plan_name, owner FROM migrate.plan;
SELECT migrate_run('sec_alice') AS run_a \gset
SELECT * FROM sec_run(:run_a);
SELECT count(*) FROM sec_tgt.items;
SELECT event, actor FROM migrate.event WHERE run_id = :run_a ORDER BY event_id;
RESET ROLE;
SELECT who, count(*) FROM sec_log GROUP BY who;
DELETE FROM sec_log;
DELETE FROM sec_tgt.items;

-- a superuser running alice's plan runs it as alice
SELECT migrate_run('sec_alice') AS run_b \gset
SELECT * FROM sec_run(:run_b);
SELECT who, count(*) FROM sec_log GROUP BY who;
SELECT event, actor FROM migrate.event WHERE run_id = :run_b ORDER BY event_id;
DELETE FROM sec_log;
DELETE FROM sec_tgt.items;

-- bob: alice's plan and runs do not exist for him
SET ROLE regress_run_bob;
SELECT count(*) AS plans_bob_sees FROM migrate.plan WHERE plan_name = 'sec_alice';
SELECT count(*) AS runs_bob_sees FROM migrate.run WHERE run_id IN (:run_a, :run_b);
SELECT count(*) AS events_bob_sees FROM migrate.event WHERE run_id IN (:run_a, :run_b) OR plan = 'sec_alice';
SELECT test_error($$SELECT migrate_run('sec_alice')$$);
SELECT regexp_replace(test_error(format('SELECT migrate_resume(%s)', :run_b)), 'run \d+', 'run N');
SELECT regexp_replace(test_error(format('SELECT migrate_cancel(%s)', :run_b)), 'run \d+', 'run N');
SELECT count(*) AS status_rows FROM migrate_status(:run_b);
-- ... nor can he change her mappings, though PUBLIC has DML on them
UPDATE migrate.column_map SET expr = 'current_user' WHERE plan = 'sec_alice';
DELETE FROM migrate.table_map WHERE plan = 'sec_alice';
SELECT regexp_replace(test_error($$SELECT migrate_plan('sec_alice', source_schema => 'sec_src')$$), 'run \d+', 'run N');
SELECT test_error(format($$INSERT INTO migrate.column_map (plan, target, column_name, expr) VALUES ('sec_alice', %s, 'id', '0')$$, :tgt_oid));
-- ... nor reach her runs through the internal writers
SELECT regexp_replace(test_error(format('SELECT migrate._catalog_event(%s, NULL, ''forged'', NULL)', :run_b)), 'run \d+', 'run N');
SELECT test_error($$SELECT migrate._catalog_event(NULL, 'sec_alice', 'forged', NULL)$$);
SELECT test_error($$SELECT migrate._catalog_event(NULL, NULL, 'forged', NULL)$$);
SELECT regexp_replace(test_error(format('SELECT migrate._catalog_verified(%s, true, NULL)', :run_b)), 'run \d+', 'run N');
SELECT regexp_replace(test_error(format('SELECT migrate._catalog_report(%s, ''forged'')', :run_b)), 'run \d+', 'run N');
SELECT regexp_replace(test_error(format('SELECT migrate._catalog_cancel(%s)', :run_b)), 'run \d+', 'run N');
SELECT migrate._reap() AS reaped_nothing;
RESET ROLE;
SELECT expr FROM migrate.column_map WHERE plan = 'sec_alice';
SELECT count(*) AS tables_kept FROM migrate.table_map WHERE plan = 'sec_alice';

-- carol sees every row (BYPASSRLS) but is no member of alice: refused
SET ROLE regress_run_carol;
SELECT test_error($$SELECT migrate_run('sec_alice')$$);
SELECT regexp_replace(test_error(format('SELECT migrate_resume(%s)', :run_b)), 'run \d+', 'run N');
SELECT regexp_replace(test_error(format('SELECT migrate_cancel(%s)', :run_b)), 'run \d+', 'run N');
SELECT regexp_replace(test_error(format('SELECT migrate._catalog_report(%s, ''forged'')', :run_b)), 'run \d+', 'run N');
RESET ROLE;
SELECT count(*) AS forged_events FROM migrate.event WHERE event = 'forged';
SELECT report IS NULL AS no_forged_report, verified IS NULL AS not_verified FROM migrate.run WHERE run_id = :run_b;

-- run state is migrate's alone: even granted DML, alice cannot forge,
-- change or delete events, runs or units of her own plan
GRANT INSERT, UPDATE, DELETE ON migrate.event, migrate.run, migrate.run_range TO regress_run_alice, regress_run_bob;
SELECT count(*) AS events_before FROM migrate.event WHERE plan = 'sec_alice' \gset
SET ROLE regress_run_alice;
DELETE FROM migrate.event WHERE plan = 'sec_alice';
UPDATE migrate.event SET actor = 'postgres', details = 'forged' WHERE plan = 'sec_alice';
UPDATE migrate.run SET state = 'succeeded', error = 'forged' WHERE plan = 'sec_alice';
DELETE FROM migrate.run WHERE plan = 'sec_alice';
UPDATE migrate.run_range SET definition = 'DROP TABLE sec_tgt.items' WHERE run_id = :run_b;
SELECT test_error($$INSERT INTO migrate.event (plan, actor, event) VALUES ('sec_alice', 'postgres', 'forged')$$);
SELECT test_error($$INSERT INTO migrate.run (plan, batch_size, owner) VALUES ('sec_alice', 10, 'regress_run_alice')$$);
SELECT test_error(format($$INSERT INTO migrate.run_range (run_id, target, range_no, kind, definition) VALUES (%s, 'sec_tgt.items', 99, 'index', 'DROP TABLE sec_tgt.items')$$, :run_b));
-- nor, called directly, record what migrate's functions found on her own
-- run: verified without verifying, a report or an event of her making
SELECT regexp_replace(test_error(format('SELECT migrate._catalog_verified(%s, true, ''forged'')', :run_b)), 'run \d+', 'run N');
SELECT regexp_replace(test_error(format('SELECT migrate._catalog_report(%s, ''forged'')', :run_b)), 'run \d+', 'run N');
SELECT regexp_replace(test_error(format('SELECT migrate._catalog_event(%s, ''sec_alice'', ''note'', ''forged'')', :run_b)), 'run \d+', 'run N');
SELECT test_error($$SELECT migrate._catalog_event(NULL, 'sec_alice', 'plan defined', '{"forged": true}')$$);
-- her own calls still append events, in her name, at the server's time
SELECT migrate_report(:run_b) IS NOT NULL AS reported;
SELECT migrate_plan('sec_alice', source_schema => 'sec_src', target_schema => 'sec_tgt') AS redefined;
RESET ROLE;
SET ROLE regress_run_bob;
DELETE FROM migrate.event WHERE plan = 'sec_alice';
UPDATE migrate.run SET state = 'failed' WHERE plan = 'sec_alice';
RESET ROLE;
SELECT count(*) - :events_before AS events_added FROM migrate.event WHERE plan = 'sec_alice';
SELECT event, actor, at > now() - interval '1 hour' AS server_time FROM migrate.event
 WHERE plan = 'sec_alice' ORDER BY event_id DESC LIMIT 1;
SELECT count(*) AS notes FROM migrate.event WHERE event = 'note';
SELECT state, error FROM migrate.run WHERE run_id = :run_b;
SELECT count(*) AS forged FROM migrate.event WHERE event = 'forged' OR details = 'forged';
SELECT count(*) AS ranges_with_definition FROM migrate.run_range WHERE run_id = :run_b AND definition IS NOT NULL;
SELECT count(*) AS target_kept FROM pg_class WHERE oid = 'sec_tgt.items'::regclass;

-- the owner's SQL cannot switch back to the session's superuser: a run
-- (started by a superuser) whose mapping tries fails its rows, and no
-- statement after the attempt ran
SELECT migrate_column('sec_alice', 'items', 'v', 'public.sec_set_config(s.v)');
SELECT regexp_replace(test_error($$SELECT migrate_run('sec_alice')$$), 'run \d+', 'run N', 'g') AS set_config_run;
SELECT migrate_column('sec_alice', 'items', 'v', 'public.sec_set_role(s.v)');
SELECT regexp_replace(test_error($$SELECT migrate_run('sec_alice')$$), 'run \d+', 'run N', 'g') AS set_role_run;
SELECT migrate_column('sec_alice', 'items', 'v', 'public.sec_reset_role(s.v)');
SELECT regexp_replace(test_error($$SELECT migrate_run('sec_alice')$$), 'run \d+', 'run N', 'g') AS reset_role_run;
SELECT state, run_by = current_user AS run_by_me, owner, error
  FROM migrate.run WHERE plan = 'sec_alice' AND run_id > :run_b ORDER BY run_id;
SELECT count(*) AS rejects FROM migrate.reject j JOIN migrate.run r USING (run_id)
 WHERE r.plan = 'sec_alice' AND r.run_id > :run_b AND j.reason <> '42501';
SELECT count(*) AS statements_after_escape FROM sec_log;
SELECT count(*) AS rows_loaded FROM sec_tgt.items;
SELECT current_user = session_user AS identity_kept;

-- resume and cancel act as the owner too: a superuser resumes alice's
-- failed run once the mapping is fixed; it is still alice's
SELECT migrate_column('sec_alice', 'items', 'v', 'public.sec_record(s.v)');
SELECT max(run_id) AS run_c FROM migrate.run WHERE plan = 'sec_alice' \gset
SELECT migrate_resume(:run_c) = :run_c AS resumed;
SELECT state, run_by = current_user AS run_by_me, owner FROM migrate.run WHERE run_id = :run_c;
SELECT who, count(*) FROM sec_log GROUP BY who;
SELECT migrate_cancel(:run_c) AS cancelled_a_finished_run;
SELECT event, actor FROM migrate.event WHERE run_id = :run_c AND event IN ('run resumed', 'run succeeded');

-- the superuser's own plan still runs as the superuser
CREATE TABLE sec_own (id int PRIMARY KEY, v text);
SELECT migrate_plan('sec_super', source_schema => 'sec_src');
SELECT migrate_table('sec_super', 'sec_src.items', 'sec_own');
SELECT migrate_column('sec_super', 'sec_own', 'v', 'public.sec_record(s.v)');
DELETE FROM sec_log;
SELECT migrate_run('sec_super') AS run_s \gset
SELECT state, owner::text = current_user AS owned_by_me FROM migrate.run WHERE run_id = :run_s;
SELECT who = current_user AS ran_as_me, count(*) FROM sec_log GROUP BY 1;

-- nothing is executed verbatim from a run's bookkeeping (finding 5): a
-- unit whose stored statements are not what migrate writes is refused when
-- the run resumes (only the table owner could write them: here a superuser)
UPDATE migrate.run SET state = 'failed', finished_at = now() WHERE run_id = :run_s;
INSERT INTO migrate.run_range (run_id, target, range_no, kind, definition, state)
VALUES (:run_s, 'sec_own', 1000, 'index', 'DROP TABLE sec_log', 'failed');
SELECT regexp_replace(test_error(format('SELECT migrate_resume(%s)', :run_s)), 'run \d+', 'run N') AS drop_table;
UPDATE migrate.run_range SET definition = 'CREATE INDEX sec_log_who ON public.sec_log (who)'
 WHERE run_id = :run_s AND range_no = 1000;
SELECT regexp_replace(test_error(format('SELECT migrate_resume(%s)', :run_s)), 'run \d+', 'run N') AS other_table;
UPDATE migrate.run_range SET definition = 'CREATE INDEX sec_own_v ON public.sec_own (v); DROP TABLE sec_log'
 WHERE run_id = :run_s AND range_no = 1000;
SELECT regexp_replace(test_error(format('SELECT migrate_resume(%s)', :run_s)), 'run \d+', 'run N') AS two_statements;
-- the genuine shapes run: an index, then a foreign key whose orphan
-- statement is refused until it has the shape migrate writes
UPDATE migrate.run_range SET definition = 'CREATE INDEX sec_own_v ON public.sec_own USING btree (v)'
 WHERE run_id = :run_s AND range_no = 1000;
INSERT INTO migrate.run_range (run_id, target, range_no, kind, definition, check_sql, state)
VALUES (:run_s, 'sec_own', 2000, 'fk',
        'ALTER TABLE public.sec_own ADD CONSTRAINT sec_own_fk FOREIGN KEY (id) REFERENCES sec_src.items(id) NOT VALID;'
        ' ALTER TABLE public.sec_own VALIDATE CONSTRAINT sec_own_fk',
        'DELETE FROM public.sec_log', 'failed');
SELECT regexp_replace(test_error(format('SELECT migrate_resume(%s)', :run_s)), 'run \d+', 'run N') AS bad_orphans;
UPDATE migrate.run_range
   SET check_sql = 'WITH o AS (DELETE FROM public.sec_own AS c WHERE NOT EXISTS (SELECT 1 FROM sec_src.items AS p WHERE p.id = c.id) RETURNING c.*)'
                   ' INSERT INTO migrate.reject (run_id, target, source_key, source_row, reason, message)'
                   ' SELECT $1, ''sec_own''::regclass, o.id::text, to_jsonb(o), ''23503'', ''orphan'' FROM o'
 WHERE run_id = :run_s AND range_no = 2000;
SELECT migrate_resume(:run_s) = :run_s AS resumed;
SELECT range_no, kind, state FROM migrate.run_range WHERE run_id = :run_s AND kind <> 'load' ORDER BY range_no;
SELECT state FROM migrate.run WHERE run_id = :run_s;
SELECT to_regclass('sec_log') IS NOT NULL AS log_kept, to_regclass('sec_log_who') IS NULL AS no_foreign_index,
       to_regclass('sec_own_v') IS NOT NULL AS index_built,
       (SELECT convalidated FROM pg_constraint WHERE conname = 'sec_own_fk') AS fk_validated;

-- a plan whose owner was dropped runs as nobody: refused
CREATE ROLE regress_run_gone;
INSERT INTO migrate.plan (plan_name, owner) VALUES ('sec_gone', 'regress_run_gone');
DROP ROLE regress_run_gone;
SELECT regexp_replace(test_error($$SELECT migrate_run('sec_gone')$$), 'role \d+', 'role N') AS owner_gone;
DELETE FROM migrate.plan WHERE plan_name = 'sec_gone';

-- clean up
DELETE FROM migrate.run WHERE plan IN ('sec_alice', 'sec_super');
DELETE FROM migrate.event WHERE plan IN ('sec_alice', 'sec_super');
DELETE FROM migrate.plan WHERE plan_name IN ('sec_alice', 'sec_super');
REVOKE ALL ON migrate.event, migrate.run, migrate.run_range FROM regress_run_alice, regress_run_bob;
DROP TABLE sec_own, sec_log;
DROP FUNCTION sec_record(text), sec_set_config(text), sec_set_role(text), sec_reset_role(text), sec_run(bigint);
DROP SCHEMA sec_src, sec_tgt CASCADE;
DROP ROLE regress_run_alice, regress_run_bob, regress_run_carol;
