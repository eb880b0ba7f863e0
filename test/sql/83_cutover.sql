-- Blue-green cutover (issue 14): a schema version change inside one
-- database.  The live schema app (v1) is the source, trigger capture; the
-- shadow app_next (v2: renamed and computed columns) is the plan's
-- target_schema, options cutover_into = app.  migrate_cutover() syncs to a
-- fence, verifies, locks the live tables, syncs what arrived, swaps the
-- schemas and records it; refusals change nothing and keep no lock.
-- Depends on 00_setup (test_error).
\set SHOW_CONTEXT never
SET client_min_messages = warning;
CREATE ROLE regress_co_alice;      -- the plan owner
CREATE ROLE regress_co_ops;        -- a member of alice: runs the cutover
CREATE ROLE regress_co_app;        -- the application writing app
CREATE ROLE regress_co_mallory;    -- another role
GRANT regress_co_alice TO regress_co_ops;
-- renaming a schema needs CREATE on the database
DO $$ BEGIN EXECUTE format('GRANT CREATE ON DATABASE %I TO regress_co_alice', current_database()); END $$;
CREATE SCHEMA app AUTHORIZATION regress_co_alice;
CREATE SCHEMA app_next AUTHORIZATION regress_co_alice;

SET ROLE regress_co_alice;
CREATE TABLE app.customers (id int PRIMARY KEY, name text NOT NULL);
CREATE TABLE app.orders (id int PRIMARY KEY, customer_id int NOT NULL REFERENCES app.customers,
                         amount numeric(10,2));
INSERT INTO app.customers SELECT g, 'customer ' || g FROM generate_series(1, 20) g;
INSERT INTO app.orders SELECT g, g % 20 + 1, g * 1.5 FROM generate_series(1, 50) g;
GRANT USAGE ON SCHEMA app TO regress_co_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON app.customers, app.orders TO regress_co_app;
-- v2: name -> full_name, amount -> amount_cents
CREATE TABLE app_next.customers (id int PRIMARY KEY, full_name text NOT NULL);
CREATE TABLE app_next.orders (id int PRIMARY KEY, customer_id int NOT NULL REFERENCES app_next.customers,
                              amount_cents bigint);
SELECT migrate_plan('bluegreen', source_schema => 'app', target_schema => 'app_next',
                    options => '{"cutover_into": "app"}');
SELECT migrate_table('bluegreen', 'customers', 'customers', capture => 'trigger');
SELECT migrate_column('bluegreen', 'customers', 'full_name', 's.name');
SELECT migrate_table('bluegreen', 'orders', 'orders', capture => 'trigger');
SELECT migrate_column('bluegreen', 'orders', 'amount_cents', '(s.amount * 100)::bigint');
SELECT migrate_run('bluegreen', mode => 'incremental') > 0 AS loaded;
SELECT count(*) FROM app_next.customers;
RESET ROLE;

-- the application writes after the load: captured, synced by the cutover
SET ROLE regress_co_app;
INSERT INTO app.customers VALUES (21, 'customer 21');
UPDATE app.customers SET name = 'renamed 5' WHERE id = 5;
DELETE FROM app.orders WHERE id = 50;
INSERT INTO app.orders VALUES (51, 21, 9.99);
RESET ROLE;

-- a refused cutover, and the locks this backend holds on the live and
-- shadow tables afterwards, in the same transaction
CREATE FUNCTION test_cutover_refused(p_sql text)
RETURNS TABLE (error text, locks_held bigint, live_version text)
LANGUAGE plpgsql AS $$
BEGIN
    error := test_error(p_sql);
    SELECT count(*) INTO locks_held FROM pg_locks l
     WHERE l.pid = pg_backend_pid() AND l.locktype = 'relation'
       AND l.relation IN (SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                           WHERE n.nspname IN ('app', 'app_next') AND c.relkind = 'r');
    -- v1 has "name", v2 "full_name": which one app.customers is
    SELECT CASE WHEN EXISTS (SELECT FROM pg_attribute WHERE attrelid = 'app.customers'::regclass
                                AND attname = 'full_name') THEN 'v2' ELSE 'v1' END INTO live_version;
    RETURN NEXT;
END;
$$;

-- refusals: no cutover_into (22023); another role (42704: invisible plan);
-- bad arguments; a table without capture
SET ROLE regress_co_alice;
SELECT migrate_plan('plain', source_schema => 'app', target_schema => 'app_next');
SELECT migrate_table('plain', 'customers', 'customers', capture => 'trigger');
SELECT test_error($$SELECT migrate_cutover('plain')$$);
SELECT migrate_plan('nocapture', source_schema => 'app', target_schema => 'app_next',
                    options => '{"cutover_into": "app"}');
SELECT migrate_table('nocapture', 'customers', 'customers');
SELECT test_error($$SELECT migrate_cutover('nocapture')$$);
SELECT test_error($$SELECT migrate_cutover('bluegreen', lock_timeout => '0')$$);
SELECT test_error($$SELECT migrate_cutover('bluegreen', max_attempts => 0)$$);
RESET ROLE;
SET ROLE regress_co_mallory;
SELECT test_error($$SELECT migrate_cutover('bluegreen')$$);
RESET ROLE;
-- REPEATABLE READ: refused (its steps must see what the sync workers commit)
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT test_error($$SELECT migrate_cutover('bluegreen')$$);
ROLLBACK;

-- a tampered shadow row (changed in the shadow, not at the source): the
-- verify gate refuses with 55000 naming the table and check; nothing is
-- renamed and no lock is kept
SET ROLE regress_co_alice;
UPDATE app_next.customers SET full_name = 'tampered' WHERE id = 3;
SELECT * FROM test_cutover_refused($$SELECT migrate_cutover('bluegreen')$$);
-- the same fixed: the cutover's own first sync brought the source's writes
UPDATE app_next.customers SET full_name = 'customer 3' WHERE id = 3;
SELECT id, full_name FROM app_next.customers WHERE id IN (5, 21) ORDER BY id;
RESET ROLE;

-- locks not obtained: a session (postgres_fdw to this database) holds a
-- write lock on app.orders while the cutover tries three times for 50 ms:
-- 55P03, nothing renamed, no lock held afterwards
DO $$
BEGIN
    EXECUTE format('CREATE SERVER co_self FOREIGN DATA WRAPPER postgres_fdw OPTIONS (host %L, port %L, dbname %L)',
                   split_part(current_setting('unix_socket_directories'), ',', 1),
                   current_setting('port'), current_database());
END $$;
CREATE USER MAPPING FOR CURRENT_USER SERVER co_self;
CREATE SCHEMA co_remote;
CREATE FOREIGN TABLE co_remote.orders (id int, amount numeric) SERVER co_self
    OPTIONS (schema_name 'app', table_name 'orders');
CREATE FUNCTION test_cutover_blocked()
RETURNS TABLE (error text, locks_held bigint, live_version text)
LANGUAGE plpgsql AS $$
BEGIN
    -- the other session's transaction stays open until ours ends
    UPDATE co_remote.orders SET amount = amount WHERE id = 1;
    RETURN QUERY SELECT r.error, r.locks_held, r.live_version
                   FROM test_cutover_refused(
                        $q$SELECT migrate_cutover('bluegreen', lock_timeout => '50ms', max_attempts => 3)$q$) r;
END;
$$;
SELECT * FROM test_cutover_blocked();

-- the cutover, by a member of the owner: it returns its run
SET ROLE regress_co_ops;
SELECT migrate_cutover('bluegreen') AS cutover_run \gset
RESET ROLE;
-- names resolve to the new tables, with every write of the application
SELECT live_version FROM test_cutover_refused('SELECT 1');
SELECT id, full_name FROM app.customers WHERE id IN (3, 5, 21) ORDER BY id;
SELECT count(*), sum(amount_cents) FROM app.orders;
-- the old tables, in the retired schema, with the same sum
CREATE FUNCTION test_retired_orders(p_run bigint, OUT n bigint, OUT old_sum_cents bigint)
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('SELECT count(*), sum(amount * 100)::bigint FROM %I.orders', 'app_retired_' || p_run)
       INTO n, old_sum_cents;
END;
$$;
SELECT * FROM test_retired_orders(:cutover_run);
SELECT to_regnamespace('app_next') IS NULL AS shadow_gone;
-- the record: migrate.cutover, the run of mode cutover, its event
SELECT c.run_id = :cutover_run AS same_run, c.plan, c.live_schema, c.shadow_schema,
       c.retired_schema = 'app_retired_' || :cutover_run AS retired_named, c.state,
       c.attempts, c.lock_wait >= '0' AND c.lock_held > '0' AND c.lock_held < '10 s' AS timed,
       c.swapped_by, c.rolled_back_at IS NULL AS not_rolled_back,
       pg_catalog.jsonb_typeof(c.fence->'positions') AS fence_positions,
       (SELECT pg_catalog.array_agg(k ORDER BY k) FROM pg_catalog.jsonb_object_keys(c.fence->'positions') k) AS fenced_tables,
       c.fence->'swap' ? 'xid' AS baseline
  FROM migrate.cutover c;
SELECT r.mode, r.state, r.run_by, r.owner, r.finished_at IS NOT NULL AS finished
  FROM migrate.run r WHERE r.run_id = :cutover_run;
SELECT run_id = :cutover_run AS same_run, plan, run_state, target, table_state, error
  FROM migrate_status(:cutover_run);
SELECT actor, regexp_replace(regexp_replace(details, '[0-9.]+ ms', 'N ms', 'g'), 'retired_[0-9]+', 'retired_N') AS details
  FROM migrate.event WHERE run_id = :cutover_run AND event = 'cutover';
-- the report's cutover section
SELECT regexp_replace(regexp_replace(regexp_replace(line, '[0-9.]+ ms', 'N ms', 'g'), 'retired_[0-9]+', 'retired_N'),
                      '[0-9]{4}-[0-9-]+ [0-9:]+ [A-Z]+', 'T') AS report
  FROM regexp_split_to_table(migrate_report(:cutover_run), E'\n') line
 WHERE line ~ '^## Cutover|^\| (swap|state|swapped|locks|carried over) \|';
-- a second cutover of the plan: 55000
SET ROLE regress_co_ops;
SELECT regexp_replace(test_error($$SELECT migrate_cutover('bluegreen')$$), '(run |\()[0-9]+', '\1N', 'g');
-- a load or a sync of it would write into the live tables: 55000 too
SELECT regexp_replace(test_error($$SELECT migrate_run('bluegreen')$$), '(run |\()[0-9]+', '\1N', 'g');
SELECT regexp_replace(test_error($$SELECT migrate_sync('bluegreen')$$), '(run |\()[0-9]+', '\1N', 'g');
SELECT regexp_replace(test_error($$SELECT migrate_run('bluegreen', dry_run => true)$$), '(run |\()[0-9]+', '\1N', 'g');
RESET ROLE;

-- migrate_rollback() of the cutover reverses the swap.  The application
-- wrote to the new tables since (the swap carried its grants): refused
-- with 55000, nothing renamed; forced, the swap is reversed and that row
-- stays in the shadow table; a second rollback is a no-op
SET ROLE regress_co_app;
INSERT INTO app.customers (id, full_name) VALUES (22, 'after the swap');
RESET ROLE;
SET ROLE regress_co_ops;
SELECT regexp_replace(test_error(format('SELECT * FROM migrate_rollback(%s)', :cutover_run)), 'run [0-9]+', 'run N');
SELECT live_version FROM test_cutover_refused('SELECT 1');
SET client_min_messages = error;    -- the WARNING counts writes from the statistics (timing)
SELECT * FROM migrate_rollback(:cutover_run, force => true);
SET client_min_messages = warning;
RESET ROLE;
SELECT live_version FROM test_cutover_refused('SELECT 1');
SELECT id, name FROM app.customers WHERE id IN (5, 21, 22) ORDER BY id;
SELECT id, full_name FROM app_next.customers WHERE id = 22;
SELECT to_regnamespace('app_retired_' || :cutover_run) IS NULL AS retired_gone;
SELECT c.state, c.rolled_back_by, c.rolled_back_at IS NOT NULL AS rolled_back_at_set
  FROM migrate.cutover c WHERE c.run_id = :cutover_run;
SELECT actor, regexp_replace(details, 'app\.customers \([^)]*\)', 'app.customers (...)') AS details
  FROM migrate.event WHERE run_id = :cutover_run AND event = 'cutover reversed';
SET ROLE regress_co_ops;
SELECT * FROM migrate_rollback(:cutover_run);   -- a NOTICE says so
RESET ROLE;
SELECT count(*) AS reversed_events FROM migrate.event WHERE run_id = :cutover_run AND event = 'cutover reversed';
SELECT plan, run_state, target, table_state FROM migrate_status(:cutover_run);
