-- Least privilege in the plan API, assessment and report (issue 11,
-- findings 8 and 10, plan owners, sensitive columns), tried as
-- unprivileged roles:
-- * a role with CREATE on a schema puts trojans (lower(name), "=" on
--   regclass and oid/regclass) in it; a role whose search_path includes it
--   calls the plan API, migrate_check, migrate_profile, migrate_automap:
--   no trojan runs (a side-effect table they write to stays empty), while
--   the same trojans do fire in the caller's own SQL (positive control);
-- * plans belong to their owner: another role cannot take, change or see
--   them; handing a plan over needs membership in the new owner;
-- * value maps belong to their owner: another role cannot read, add to or
--   change them, migrate_lookup does not find them, and a cached map is
--   not served to another user in the same backend;
-- * sensitive columns: profile min/max and the report show '***';
--   masking functions.
\set SHOW_CONTEXT never
SET client_min_messages = warning;
CREATE ROLE regress_sp_mallory;
CREATE ROLE regress_sp_alice;
CREATE ROLE regress_sp_bob;
CREATE ROLE regress_sp_team NOLOGIN;
GRANT regress_sp_team TO regress_sp_alice;

-- mallory's schema of trojans, on everybody's search_path by invitation
CREATE SCHEMA sp_shared;
GRANT USAGE ON SCHEMA sp_shared TO PUBLIC;
GRANT CREATE ON SCHEMA sp_shared TO regress_sp_mallory;
-- the source: a local table alice may read (mapping sources may be local)
CREATE SCHEMA sp_src;
CREATE TABLE sp_src.people (id int PRIMARY KEY, full_name text, ssn text, country text);
INSERT INTO sp_src.people
SELECT g, 'Person ' || g, lpad((900000000 + g)::text, 9, '0'), (ARRAY['DE', 'FR'])[g % 2 + 1]
  FROM generate_series(1, 20) g;
GRANT USAGE ON SCHEMA sp_src TO PUBLIC;
GRANT SELECT ON sp_src.people TO regress_sp_alice, regress_sp_bob;
-- the documented grants: a target schema of one's own
CREATE SCHEMA sp_alice AUTHORIZATION regress_sp_alice;
CREATE SCHEMA sp_bob AUTHORIZATION regress_sp_bob;

SET ROLE regress_sp_mallory;
CREATE TABLE sp_shared.pwned (who name, what text);
GRANT SELECT, INSERT, DELETE ON sp_shared.pwned TO PUBLIC;
CREATE FUNCTION sp_shared.lower(name) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO sp_shared.pwned VALUES (current_user, 'lower(name)');
    RETURN pg_catalog.lower($1::text);
END $$;
CREATE FUNCTION sp_shared.regeq(regclass, regclass) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO sp_shared.pwned VALUES (current_user, 'regclass = regclass');
    RETURN $1::oid OPERATOR(pg_catalog.=) $2::oid;
END $$;
CREATE OPERATOR sp_shared.= (LEFTARG = regclass, RIGHTARG = regclass, FUNCTION = sp_shared.regeq);
CREATE FUNCTION sp_shared.oidregeq(oid, regclass) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO sp_shared.pwned VALUES (current_user, 'oid = regclass');
    RETURN $1 OPERATOR(pg_catalog.=) $2::oid;
END $$;
CREATE OPERATOR sp_shared.= (LEFTARG = oid, RIGHTARG = regclass, FUNCTION = sp_shared.oidregeq);
-- and a harmless function, found only on a search_path with sp_shared
CREATE FUNCTION sp_shared.tag(text) RETURNS text LANGUAGE sql IMMUTABLE AS $$ SELECT '<' || $1 || '>' $$;
RESET ROLE;

CREATE TABLE sp_alice.people (id int PRIMARY KEY, full_name text NOT NULL, ssn text, country text);
ALTER TABLE sp_alice.people OWNER TO regress_sp_alice;

-- alice, with mallory's schema on her search_path
SET ROLE regress_sp_alice;
SET search_path = sp_shared, public;
-- positive control: the trojans are live on this search_path
SELECT lower('X'::name), 'sp_alice.people'::regclass = 'sp_alice.people'::regclass AS eq;
SELECT who, what FROM sp_shared.pwned ORDER BY what;
DELETE FROM sp_shared.pwned;

SELECT migrate_plan('sp_alice_plan', source_schema => 'sp_src', target_schema => 'sp_alice');
SELECT migrate_table('sp_alice_plan', 'people', 'people');
-- a column named in another case goes through the case-insensitive match
SELECT migrate_column('sp_alice_plan', 'people', 'FULL_NAME', 'pg_catalog.upper(s.full_name)');
SELECT migrate_rule('sp_alice_plan', 'people', 'named', 'full_name <> ''''');
SELECT migrate_sensitive('sp_alice_plan', 'people', 'SSN');
SELECT migrate_foreign_key('sp_alice_plan', 'people', 'id', 'people');
SELECT severity, table_name, column_name, message FROM migrate_check('sp_alice_plan');
SELECT source_column, target_column, rows, min_value, max_value FROM migrate_profile('sp_alice_plan')
 ORDER BY source_column, target_column;
SELECT count(*) FROM migrate_automap('sp_alice_plan');
SELECT migrate_value_map('sp_alice_map', 'DE', 'Germany');
SELECT migrate_lookup('sp_alice_map', 'DE');
-- no trojan ran in any of them
SELECT count(*) AS trojan_calls FROM sp_shared.pwned;
-- the owner's own expressions are checked on her search_path
SELECT migrate_column('sp_alice_plan', 'people', 'country', 'tag(s.country)');
SELECT migrate_column('sp_alice_plan', 'people', 'country', NULL);
RESET search_path;
SELECT test_error($$SELECT migrate_column('sp_alice_plan', 'people', 'country', 'tag(s.country)')$$);
SELECT plan_name, owner FROM migrate.plan WHERE plan_name = 'sp_alice_plan';
RESET ROLE;

-- bob: alice's plan is not his to take, see or change
SET ROLE regress_sp_bob;
SELECT test_error($$SELECT migrate_plan('sp_alice_plan', source_schema => 'sp_src', target_schema => 'sp_bob')$$);
SELECT test_error($$SELECT migrate_table('sp_alice_plan', 'sp_src.people', 'sp_bob.people')$$);
SELECT test_error($$SELECT migrate_column('sp_alice_plan', 'sp_alice.people', 'ssn', '''x''')$$);
SELECT test_error($$SELECT migrate_sensitive('sp_alice_plan', 'sp_alice.people', 'country')$$);
SELECT test_error($$SELECT * FROM migrate_check('sp_alice_plan')$$);
SELECT test_error($$SELECT * FROM migrate_profile('sp_alice_plan')$$);
SELECT test_error($$SELECT * FROM migrate_automap('sp_alice_plan')$$);
SELECT count(*) FROM migrate.plan WHERE plan_name = 'sp_alice_plan';
SELECT count(*) FROM migrate.column_map WHERE plan = 'sp_alice_plan';
SELECT count(*) FROM migrate.profile_result WHERE plan = 'sp_alice_plan';
UPDATE migrate.plan SET owner = 'regress_sp_bob' WHERE plan_name = 'sp_alice_plan';
-- alice's value map: not readable, not writable, not found by migrate_lookup
SELECT count(*) FROM migrate.value_map WHERE map_name = 'sp_alice_map';
SELECT count(*) FROM migrate.lookup_map WHERE map_name = 'sp_alice_map';
SELECT test_error($$SELECT migrate_value_map('sp_alice_map', 'DE', 'Hacked')$$);
SELECT test_error($$SELECT migrate_value_map('sp_alice_map', 'XX', 'Added')$$);
UPDATE migrate.value_map SET to_value = 'Hacked' WHERE map_name = 'sp_alice_map';
DELETE FROM migrate.value_map WHERE map_name = 'sp_alice_map';
SELECT test_error($$INSERT INTO migrate.value_map VALUES ('sp_alice_map', 'XX', 'Added')$$);
SELECT test_error($$SELECT migrate_lookup('sp_alice_map', 'DE')$$);
-- his own plan is his: the same name space, his own rows
SELECT migrate_plan('sp_bob_plan', source_schema => 'sp_src', target_schema => 'sp_bob');
SELECT plan_name, owner FROM migrate.plan ORDER BY plan_name;
RESET ROLE;

-- alice's map is unchanged
SELECT from_value, to_value FROM migrate.value_map WHERE map_name = 'sp_alice_map';

-- one backend, one call site, two users: the map cached for alice is not
-- served to bob (migrate_lookup keys its cache by user)
CREATE FUNCTION sp_lookup(v text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    RETURN migrate_lookup('sp_alice_map', v);
END $$;
BEGIN;
SET LOCAL ROLE regress_sp_alice;
SELECT sp_lookup('DE');
SET LOCAL ROLE regress_sp_bob;
SELECT test_error($$SELECT sp_lookup('DE')$$);
COMMIT;

-- handing a plan over: only to a role the owner is a member of
SET ROLE regress_sp_alice;
SELECT test_error($$UPDATE migrate.plan SET owner = 'regress_sp_bob' WHERE plan_name = 'sp_alice_plan'$$);
UPDATE migrate.plan SET owner = 'regress_sp_team' WHERE plan_name = 'sp_alice_plan';
SELECT plan_name, owner FROM migrate.plan WHERE plan_name = 'sp_alice_plan';
-- still hers to use, as a member of the team; but it runs as the team,
-- which has no rights on the tables yet: the check says so, it does not
-- borrow alice's rights
SELECT severity, table_name, message FROM migrate_check('sp_alice_plan') WHERE severity = 'error';
RESET ROLE;
GRANT USAGE ON SCHEMA sp_alice TO regress_sp_team;
GRANT SELECT, INSERT ON sp_alice.people, sp_src.people TO regress_sp_team;
SET ROLE regress_sp_alice;
SELECT severity, table_name, message FROM migrate_check('sp_alice_plan') WHERE severity = 'error';
UPDATE migrate.plan SET owner = 'regress_sp_alice' WHERE plan_name = 'sp_alice_plan';
RESET ROLE;

-- sensitive columns: validated, and their values never shown
SET ROLE regress_sp_alice;
SELECT test_error($$SELECT migrate_sensitive('sp_alice_plan', 'people', 'no_such_column')$$);
SELECT test_error($$SELECT migrate_sensitive('sp_alice_plan', 'no_such_table', 'ssn')$$);
SELECT test_error($$SELECT migrate_sensitive('sp_alice_plan', 'people', NULL)$$);
SELECT test_error($$SELECT migrate_sensitive('no_such_plan', 'people', 'ssn')$$);
SELECT migrate_sensitive('sp_alice_plan', 'sp_alice.people', 'ssn');   -- again: no-op
SELECT plan, target, source_column FROM migrate.sensitive_column;
-- a target column fed by a sensitive one is sensitive too
SELECT migrate_column('sp_alice_plan', 'people', 'country', 'pg_catalog.right(s.ssn, 2)');
SELECT migrate._sensitive_targets('sp_alice_plan', 'sp_alice.people');
SELECT source_column, target_column, min_value, max_value FROM migrate_profile('sp_alice_plan')
 ORDER BY source_column, target_column;
SELECT count(*) FILTER (WHERE min_value = '***' AND max_value = '***') AS masked, count(*) AS sensitive_rows
  FROM migrate.profile_result
 WHERE plan = 'sp_alice_plan' AND (source_column = 'ssn' OR target_column IN ('ssn', 'country'));
SELECT migrate_column('sp_alice_plan', 'people', 'country', NULL);

-- mapping rows written directly (not through migrate_column or
-- migrate_table) are checked again as single expressions, by migrate_check
-- and before a run starts
CREATE TABLE sp_alice.canary AS SELECT 1 AS n;
INSERT INTO migrate.column_map VALUES ('sp_alice_plan', 'sp_alice.people', 'country',
                                       's.country); DELETE FROM sp_alice.canary; SELECT (1');
SELECT severity, column_name, message FROM migrate_check('sp_alice_plan') WHERE severity = 'error';
SELECT test_error($$SELECT migrate_run('sp_alice_plan')$$);
SELECT test_error($$SELECT * FROM migrate_profile('sp_alice_plan')$$);
-- balanced, so that it would parse as three statements where pasted
UPDATE migrate.column_map SET expr = 's.country AS v FROM sp_src.people AS s; DELETE FROM sp_alice.canary; SELECT 1'
 WHERE plan = 'sp_alice_plan' AND column_name = 'country';
SELECT severity, column_name, message FROM migrate_check('sp_alice_plan') WHERE column_name = 'country';
SELECT test_error($$SELECT * FROM migrate_profile('sp_alice_plan')$$);
SELECT count(*) AS canary FROM sp_alice.canary;
DROP TABLE sp_alice.canary;
SELECT migrate_column('sp_alice_plan', 'people', 'country', NULL);
UPDATE migrate.table_map SET filter = 'true) OR (true' WHERE plan = 'sp_alice_plan';
SELECT test_error($$SELECT migrate_run('sp_alice_plan')$$);
UPDATE migrate.table_map SET filter = NULL WHERE plan = 'sp_alice_plan';

-- a run of her plan: rejects of the sensitive table, and the report
SELECT migrate_rule('sp_alice_plan', 'people', 'ssn_not_3', 'pg_catalog.right(ssn, 1) <> ''3''');
SELECT migrate_run('sp_alice_plan') AS sp_run \gset
SELECT state, error FROM migrate.run WHERE run_id = :sp_run;
SELECT count(*) AS loaded FROM sp_alice.people;
SELECT count(*) AS rejects FROM migrate.reject WHERE run_id = :sp_run;
SELECT migrate_report(:sp_run) AS report \gset
SELECT position('***' IN :'report') > 0 AS masked,
       :'report' ~ '9000000[0-9]' AS shows_ssn,
       :'report' LIKE '%| sp_alice.people |%' AS names_table;
SELECT line FROM pg_catalog.regexp_split_to_table(:'report', E'\n') line
 WHERE line LIKE '| sp_alice.people | ssn_not_3 |%';
RESET ROLE;

-- bob's plan cannot use alice's map: his run finds no such map
CREATE TABLE sp_bob.people (id int PRIMARY KEY, country text);
ALTER TABLE sp_bob.people OWNER TO regress_sp_bob;
SET ROLE regress_sp_bob;
SELECT migrate_table('sp_bob_plan', 'sp_src.people', 'people');
SELECT migrate_column('sp_bob_plan', 'people', 'country', 'migrate_lookup(''sp_alice_map'', s.country)');
SELECT test_error($$SELECT migrate_run('sp_bob_plan')$$);
SELECT count(*) AS loaded, count(*) FILTER (WHERE country = 'Germany') AS alices_values FROM sp_bob.people;
-- nor can he report on alice's run
SELECT regexp_replace(test_error(format('SELECT migrate_report(%s)', :sp_run)), 'run [0-9]+ ', 'run <id> ');
RESET ROLE;

-- masking functions
SELECT migrate_mask_partial('900000001', 0, 4) AS partial,
       migrate_mask_partial('900000001', 2, 2) AS both_ends,
       migrate_mask_partial('1234', 2, 2) AS too_short,
       migrate_mask_partial('äöüß', 1, 0) AS characters,
       migrate_mask_partial(123456789, 0, 3) AS any_type,
       migrate_mask_partial(NULL::text, 0, 4) AS null_in;
SELECT migrate_mask_hash('900000001', 'salt') = migrate_mask_hash('900000001', 'salt') AS stable,
       migrate_mask_hash('900000001', 'salt') <> migrate_mask_hash('900000001', 'pepper') AS salted,
       migrate_mask_hash('900000001', 'salt') = encode(sha256(convert_to('salt' || '900000001', 'UTF8')), 'hex') AS sha256,
       migrate_mask_hash(42, 's') = migrate_mask_hash('42', 's') AS any_type,
       migrate_mask_hash(NULL::text, 'salt') IS NULL AS null_in;
SELECT migrate_mask_redact('900000001') AS redact, migrate_mask_redact(42) AS any_type,
       migrate_mask_redact(NULL::text) IS NULL AS null_in;
SELECT test_error($$SELECT migrate_mask_partial('x', -1, 0)$$);
SELECT p.proname, p.provolatile, p.proisstrict, p.proparallel
  FROM pg_proc p WHERE p.proname LIKE 'migrate\_mask\_%' ORDER BY 1, p.oid::regprocedure::text;

-- every function of the plan API, assessment and report pins search_path,
-- but C functions that resolve no names (migrate_lookup's one query is
-- qualified; a SET clause would cost a GUC save and restore per row)
SELECT p.proname, l.lanname, count(*) AS functions,
       bool_and(coalesce(p.proconfig @> ARRAY['search_path=pg_catalog, pg_temp'], false)) AS pinned
  FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
 WHERE p.proname IN ('_cast_fails', '_check_expression', '_check_mapping', '_check_plan', '_check_rule',
                      '_column', '_explain', '_expr_columns', '_lossy_cast', '_mapped_columns',
                      '_mapped_types', '_md', '_migrate_automap', '_migrate_check', '_migrate_profile',
                      '_migrate_report', '_mysql_columns', '_mysql_read_type', '_mysql_source', '_name_key',
                      '_plan', '_relname', '_report_masked', '_resolve', '_resolve_in',
                      '_sensitive_targets', '_table_map', 'migrate_automap', 'migrate_check', 'migrate_column',
                      'migrate_foreign_key', 'migrate_lookup', 'migrate_mask_hash', 'migrate_mask_partial', 'migrate_mask_redact',
                      'migrate_plan', 'migrate_profile', 'migrate_report', 'migrate_rule', 'migrate_sensitive',
                      'migrate_table', 'migrate_value_map')
   AND p.pronamespace IN ('migrate'::regnamespace,
                          (SELECT extnamespace FROM pg_extension WHERE extname = 'migrate'))
 GROUP BY 1, 2
HAVING NOT bool_and(coalesce(p.proconfig @> ARRAY['search_path=pg_catalog, pg_temp'], false))
 ORDER BY 1;
SELECT count(*) AS pinned_functions
  FROM pg_proc p
 WHERE p.proname IN ('_cast_fails', '_check_expression', '_check_mapping', '_check_plan', '_check_rule',
                      '_column', '_explain', '_expr_columns', '_lossy_cast', '_mapped_columns',
                      '_mapped_types', '_md', '_migrate_automap', '_migrate_check', '_migrate_profile',
                      '_migrate_report', '_mysql_columns', '_mysql_read_type', '_mysql_source', '_name_key',
                      '_plan', '_relname', '_report_masked', '_resolve', '_resolve_in',
                      '_sensitive_targets', '_table_map', 'migrate_automap', 'migrate_check', 'migrate_column',
                      'migrate_foreign_key', 'migrate_lookup', 'migrate_mask_hash', 'migrate_mask_partial', 'migrate_mask_redact',
                      'migrate_plan', 'migrate_profile', 'migrate_report', 'migrate_rule', 'migrate_sensitive',
                      'migrate_table', 'migrate_value_map')
   AND p.proconfig @> ARRAY['search_path=pg_catalog, pg_temp'];

-- the implementations behind migrate_call_as_owner are not PUBLIC's
SELECT p.oid::regprocedure, has_function_privilege('regress_sp_bob', p.oid, 'EXECUTE') AS bob_may
  FROM pg_proc p
 WHERE p.pronamespace = 'migrate'::regnamespace
   AND p.proname IN ('_migrate_check', '_migrate_profile', '_migrate_automap', '_migrate_report')
 ORDER BY p.proname;

DELETE FROM migrate.plan WHERE plan_name IN ('sp_alice_plan', 'sp_bob_plan');
DELETE FROM migrate.lookup_map WHERE map_name = 'sp_alice_map';
DROP FUNCTION sp_lookup(text);
DROP SCHEMA sp_shared, sp_src, sp_alice, sp_bob CASCADE;
DROP ROLE regress_sp_mallory, regress_sp_alice, regress_sp_bob, regress_sp_team;
