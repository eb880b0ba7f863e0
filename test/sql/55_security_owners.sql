--
-- The security model's positive controls (docs/security.md): two
-- non-superuser owners, each with only the grants docs/security.md lists,
-- define, check, profile, dry-run, run (at the same time), cancel, resume,
-- verify, diff and report their own plans and see their own rejects; neither
-- sees or changes anything of the other's.  Alice reads through postgres_fdw
-- (a user mapping a superuser allowed without password), bob a local schema.
-- Then the shape of the model: every function pins search_path (or is one of
-- the per-row functions that resolve no names), internal functions run by
-- PUBLIC are the reviewed ones, every catalog table has row-level security.
--
\set SHOW_CONTEXT never
\set regress_db :DBNAME
SET client_min_messages = warning;
CREATE ROLE regress_sec_alice LOGIN;
CREATE ROLE regress_sec_bob LOGIN;

-- alice: a foreign server and its tables (what docs/security.md grants)
GRANT USAGE ON FOREIGN SERVER src TO regress_sec_alice;
DO $$
BEGIN
    EXECUTE format('CREATE USER MAPPING FOR regress_sec_alice SERVER src OPTIONS (user %L, password_required %L)',
                   current_user, 'false');
END $$;
GRANT USAGE ON SCHEMA legacy TO regress_sec_alice;
GRANT SELECT ON legacy.customers, legacy.items TO regress_sec_alice;
CREATE TABLE sec_a_customer (id int PRIMARY KEY, name text, email text NOT NULL, country text);
CREATE TABLE sec_a_item (id bigint PRIMARY KEY, sku text, qty int, price numeric);
GRANT SELECT, INSERT ON sec_a_customer, sec_a_item TO regress_sec_alice;
-- a slow source for the cancel: 3 ms a row
\c migrate_src
CREATE FUNCTION sec_slow(v bigint) RETURNS bigint LANGUAGE plpgsql AS
$$ BEGIN PERFORM pg_sleep(0.003); RETURN v; END $$;
CREATE VIEW sec_slow_items AS SELECT id, sku, qty, price FROM items WHERE sec_slow(id) IS NOT NULL;
\c :regress_db
SET client_min_messages = warning;
\set SHOW_CONTEXT never
IMPORT FOREIGN SCHEMA public LIMIT TO (sec_slow_items) FROM SERVER src INTO legacy;
GRANT SELECT ON legacy.sec_slow_items TO regress_sec_alice;
CREATE TABLE sec_a_slow (id bigint PRIMARY KEY, sku text, qty int, price numeric);
GRANT SELECT, INSERT ON sec_a_slow TO regress_sec_alice;

-- bob: a local source schema
CREATE SCHEMA sec_b_src;
CREATE TABLE sec_b_src.parts (id int PRIMARY KEY, label text, weight numeric);
INSERT INTO sec_b_src.parts SELECT g, 'part ' || g, CASE WHEN g % 100 = 0 THEN -1 ELSE g END
  FROM generate_series(1, 3000) g;
GRANT USAGE ON SCHEMA sec_b_src TO regress_sec_bob;
GRANT SELECT ON sec_b_src.parts TO regress_sec_bob;
CREATE TABLE sec_b_part (id int PRIMARY KEY, label text, weight numeric CHECK (weight >= 0));
GRANT SELECT, INSERT ON sec_b_part TO regress_sec_bob;

-- ---- each defines, checks and profiles its plan ----
SET ROLE regress_sec_alice;
SELECT migrate_plan('sec_alice', source_schema => 'legacy');
SELECT migrate_table('sec_alice', 'customers', 'sec_a_customer');
SELECT migrate_table('sec_alice', 'items', 'sec_a_item');
SELECT migrate_column('sec_alice', 'sec_a_customer', 'email', 'lower(s.email)');
SELECT migrate_sensitive('sec_alice', 'sec_a_customer', 'name');
SELECT migrate_plan('sec_alice_slow', source_schema => 'legacy');
SELECT migrate_table('sec_alice_slow', 'sec_slow_items', 'sec_a_slow');
SELECT count(*) > 0 AS findings, count(*) FILTER (WHERE severity = 'error') AS errors FROM migrate_check('sec_alice');
SELECT count(*) > 0 AS profiled FROM migrate_profile('sec_alice');
SELECT count(*) AS profile_rows_with_names
  FROM migrate.profile_result WHERE plan = 'sec_alice' AND (min_value LIKE 'Customer%' OR max_value LIKE 'Customer%');
RESET ROLE;
SET ROLE regress_sec_bob;
SELECT migrate_plan('sec_bob', source_schema => 'sec_b_src');
SELECT migrate_table('sec_bob', 'parts', 'sec_b_part');
SELECT migrate_rule('sec_bob', 'sec_b_part', 'light', 'weight < 2900', on_fail => 'warn');
SELECT count(*) > 0 AS findings, count(*) FILTER (WHERE severity = 'error') AS errors FROM migrate_check('sec_bob');
SELECT count(*) > 0 AS profiled FROM migrate_profile('sec_bob');
RESET ROLE;

-- ---- dry runs ----
SET ROLE regress_sec_alice;
SELECT migrate_run('sec_alice', dry_run => true) > 0 AS dry_run_done;
SELECT count(*) AS nothing_loaded FROM sec_a_customer;
RESET ROLE;
SET ROLE regress_sec_bob;
SELECT migrate_run('sec_bob', dry_run => true) > 0 AS dry_run_done;
RESET ROLE;

-- ---- both run at the same time ----
SET ROLE regress_sec_alice;
SELECT migrate_run('sec_alice', wait => false) AS alice_run \gset
RESET ROLE;
SET ROLE regress_sec_bob;
SELECT migrate_run('sec_bob', wait => false) AS bob_run \gset
RESET ROLE;
DO $$
BEGIN
    FOR i IN 1 .. 600 LOOP
        EXIT WHEN NOT EXISTS (SELECT FROM migrate.run WHERE plan IN ('sec_alice', 'sec_bob') AND state = 'running');
        PERFORM pg_sleep(0.1);
    END LOOP;
END $$;
SELECT plan, state, run_by, owner FROM migrate.run WHERE run_id IN (:alice_run, :bob_run) ORDER BY plan;
SELECT * FROM test_counts(:alice_run);
SELECT * FROM test_counts(:bob_run);

-- ---- each sees its own run, rejects and events, and nothing of the other ----
SET ROLE regress_sec_alice;
SELECT run_state, target, table_state FROM migrate_status(:alice_run) ORDER BY target;
SELECT count(*) AS rejects, count(*) FILTER (WHERE source_row->>'name' = '***') AS names_masked,
       count(*) FILTER (WHERE source_row::text LIKE '%Customer %') AS names_shown
  FROM migrate.reject WHERE run_id = :alice_run;
SELECT (SELECT count(*) FROM migrate.plan WHERE plan_name = 'sec_bob') AS bob_plans,
       (SELECT count(*) FROM migrate.run WHERE run_id = :bob_run) AS bob_runs,
       (SELECT count(*) FROM migrate.run_table WHERE run_id = :bob_run) AS bob_tables,
       (SELECT count(*) FROM migrate.reject WHERE run_id = :bob_run) AS bob_rejects,
       (SELECT count(*) FROM migrate.event WHERE run_id = :bob_run) AS bob_events,
       (SELECT count(*) FROM migrate_status(:bob_run)) AS bob_status;
SELECT test_error('SELECT migrate_verify(''sec_bob'')');
SELECT regexp_replace(test_error(format('SELECT migrate_report(%s)', :bob_run)), 'run \d+', 'run N') AS refused;
SELECT regexp_replace(test_error(format('SELECT migrate_cancel(%s)', :bob_run)), 'run \d+', 'run N') AS refused;
RESET ROLE;
SET ROLE regress_sec_bob;
SELECT run_state, target, table_state FROM migrate_status(:bob_run);
SELECT reason, count(*), bool_and(loaded) AS loaded FROM migrate.reject WHERE run_id = :bob_run GROUP BY 1 ORDER BY 1;
SELECT (SELECT count(*) FROM migrate.plan WHERE plan_name LIKE 'sec_alice%') AS alice_plans,
       (SELECT count(*) FROM migrate.run WHERE run_id = :alice_run) AS alice_runs,
       (SELECT count(*) FROM migrate.reject WHERE run_id = :alice_run) AS alice_rejects,
       (SELECT count(*) FROM migrate.column_map WHERE plan = 'sec_alice') AS alice_columns;
SELECT test_error('SELECT migrate_diff(''sec_alice'', ''sec_a_customer'')');
SELECT regexp_replace(test_error(format('SELECT migrate_resume(%s)', :alice_run)), 'run \d+', 'run N') AS refused;
RESET ROLE;

-- ---- verify, diff, report: each its own ----
SET ROLE regress_sec_alice;
SELECT target, check_name, ok FROM migrate_verify('sec_alice', run => :alice_run)
 WHERE check_name IN ('row count', 'checksum') ORDER BY 1, 2;
SELECT count(*) AS differences FROM migrate_diff('sec_alice', 'sec_a_item');
SELECT migrate_report(:alice_run) LIKE '%sec_a_customer%' AS report_names_table,
       migrate_report(:alice_run) LIKE '%Customer 50%' AS report_shows_a_name;
RESET ROLE;
SET ROLE regress_sec_bob;
SELECT target, check_name, ok FROM migrate_verify('sec_bob', run => :bob_run)
 WHERE check_name IN ('row count', 'checksum') ORDER BY 1, 2;
SELECT count(*) AS differences FROM migrate_diff('sec_bob', 'sec_b_part');
SELECT migrate_report(:bob_run) LIKE '%sec_b_part%' AS report_names_table;
RESET ROLE;

-- ---- alice cancels and resumes her slow run ----
SET ROLE regress_sec_alice;
SET migrate.batch_size = 50;
SELECT migrate_run('sec_alice_slow', wait => false) AS slow_run \gset
SELECT migrate_cancel(:slow_run);
DO $$
BEGIN
    FOR i IN 1 .. 600 LOOP
        EXIT WHEN (SELECT state FROM migrate.run WHERE plan = 'sec_alice_slow') <> 'running';
        PERFORM pg_sleep(0.1);
    END LOOP;
END $$;
SELECT state FROM migrate.run WHERE run_id = :slow_run;
SELECT migrate_resume(:slow_run) = :slow_run AS resumed;
SELECT state FROM migrate.run WHERE run_id = :slow_run;
SELECT * FROM test_counts(:slow_run);
SELECT count(*), count(DISTINCT id) FROM sec_a_slow;
SELECT actor, event FROM migrate.event WHERE run_id = :slow_run ORDER BY event_id;
RESET migrate.batch_size;
RESET ROLE;

-- ---- the shape of the model ----
-- functions of the extension that do not pin search_path: only the per-row
-- C functions of the batch statement and of expressions, which resolve no
-- names (pinning would cost a GUC save and restore on every row), and
-- _compare_sides, which plans the caller's own local statement as the caller
SELECT p.oid::regprocedure AS unpinned, l.lanname
  FROM pg_proc p JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e'
  JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'migrate'
  JOIN pg_language l ON l.oid = p.prolang
 WHERE NOT EXISTS (SELECT FROM unnest(p.proconfig) c WHERE c LIKE 'search_path=%')
 ORDER BY 1::text;
-- internal functions PUBLIC may execute (each safe for any caller)
SELECT p.oid::regprocedure AS public_internal
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace AND n.nspname = 'migrate'
 WHERE p.proname LIKE '\_%' AND has_function_privilege('public', p.oid, 'EXECUTE')
 ORDER BY 1::text;
-- every table of schema migrate has row-level security and a policy, but
-- the undo log (migrate.undo and the runs' undo tables undo_<run>_<oid>),
-- which only migrate reads and writes: row-level security on, no policy,
-- and no privilege for anybody but its owner
SELECT c.relname, c.relrowsecurity, count(pol.oid) > 0 AS has_policy
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = 'migrate'
  LEFT JOIN pg_policy pol ON pol.polrelid = c.oid
 WHERE c.relkind = 'r'
 GROUP BY c.relname, c.relrowsecurity
 HAVING NOT c.relrowsecurity OR (count(pol.oid) = 0) <> (c.relname ~ '^undo(_[0-9]+_[0-9]+)?$');
SELECT a.grantee::regrole, a.privilege_type
  FROM pg_class c, aclexplode(coalesce(c.relacl, acldefault('r', c.relowner))) a
 WHERE c.relnamespace = 'migrate'::regnamespace AND c.relname ~ '^undo(_[0-9]+_[0-9]+)?$'
   AND a.grantee <> c.relowner;

-- clean up
DELETE FROM migrate.run WHERE plan IN ('sec_alice', 'sec_alice_slow', 'sec_bob');
DELETE FROM migrate.plan WHERE plan_name IN ('sec_alice', 'sec_alice_slow', 'sec_bob');
DROP TABLE sec_a_customer, sec_a_item, sec_a_slow, sec_b_part;
DROP SCHEMA sec_b_src CASCADE;
DROP FOREIGN TABLE legacy.sec_slow_items;
DROP USER MAPPING FOR regress_sec_alice SERVER src;
REVOKE ALL ON FOREIGN SERVER src FROM regress_sec_alice;
REVOKE ALL ON SCHEMA legacy FROM regress_sec_alice;
REVOKE ALL ON legacy.customers, legacy.items FROM regress_sec_alice;
DROP ROLE regress_sec_alice, regress_sec_bob;
