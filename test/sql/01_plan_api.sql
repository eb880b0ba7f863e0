-- Plan API: plans, table and column mappings, value maps and rules are
-- stored as given, updated when defined again, and refused with a clear
-- error (errcode, the object named, a hint) when wrong.
\set SHOW_CONTEXT never
SET client_min_messages = warning;
CREATE TABLE api_customer (id int PRIMARY KEY, full_name text NOT NULL, email text,
                           country text, active boolean, amount numeric(10,2));

SELECT migrate_plan('api', source_schema => 'legacy', options => '{"owner": "dba"}');
SELECT plan_name, source_schema, target_schema, options FROM migrate.plan;
-- defining it again updates it
SELECT migrate_plan('api', source_schema => 'legacy');
SELECT plan_name, source_schema, options FROM migrate.plan;

SELECT migrate_table('api', 'customers', 'api_customer');
SELECT plan, target, source, key, filter, mode FROM migrate.table_map WHERE plan = 'api';
SELECT migrate_column('api', 'api_customer', 'full_name', 'btrim(s.name)');
SELECT migrate_column('api', 'api_customer', 'active', 's.status = ''A''');
SELECT migrate_column('api', 'api_customer', 'amount', 'nullif(s.amount, ''n/a'')::numeric');
-- same target again: the mapping is updated, column mappings are kept
SELECT migrate_table('api', 'customers', 'api_customer', filter => 'id <= 100', mode => 'upsert');
SELECT plan, target, key, filter, mode FROM migrate.table_map WHERE plan = 'api';
SELECT column_name, expr FROM migrate.column_map WHERE plan = 'api' ORDER BY 1;
-- redefining a column mapping replaces it; NULL removes it
SELECT migrate_column('api', 'api_customer', 'full_name', 'upper(s.name)');
SELECT migrate_column('api', 'api_customer', 'country', 'lower(s.country)');
SELECT migrate_column('api', 'api_customer', 'country', NULL);
SELECT column_name, expr FROM migrate.column_map WHERE plan = 'api' ORDER BY 1;

SELECT migrate_value_map('api_country', 'DE', 'Germany');
SELECT migrate_value_map('api_country', 'FR', 'France');
SELECT migrate_value_map('api_country', 'FR', 'République française');
SELECT * FROM migrate.value_map WHERE map_name = 'api_country' ORDER BY from_value;
SELECT migrate_lookup('api_country', 'FR'), migrate_lookup('api_country', 'XX');

SELECT migrate_rule('api', 'api_customer', 'has_email', 'email IS NOT NULL');
SELECT migrate_rule('api', 'api_customer', 'amount_positive', 'amount > 0', on_fail => 'warn');
SELECT migrate_rule('api', 'api_customer', 'amount_positive', 'amount >= 0', on_fail => 'abort');
SELECT rule_name, check_expr, on_fail FROM migrate.rule WHERE plan = 'api' ORDER BY 1;

-- errors
SELECT test_error($$SELECT migrate_table('nope', 'customers', 'api_customer')$$);
SELECT test_error($$SELECT migrate_table('api', 'no_such_source', 'api_customer')$$);
SELECT test_error($$SELECT migrate_table('api', 'customers', 'no_such_target')$$);
SELECT test_error($$SELECT migrate_table('api', 'customers', 'api_customer', mode => 'merge')$$);
SELECT test_error($$SELECT migrate_table('api', 'customers', 'api_customer', key => 'nokey')$$);
SELECT test_error($$SELECT migrate_table('api', 'customers', 'api_customer', filter => 'id <')$$);
SELECT test_error($$SELECT migrate_table('api', 'customers', 'api_customer', filter => 'no_col > 1')$$);
-- a filter must hold together by itself where it is pasted ("AND (...)"):
-- one that closes the parentheses around it, or comments out what follows
-- it, would disable the key range; the filter stays as it was
SELECT test_error($$SELECT migrate_table('api', 'customers', 'api_customer', filter => 'id <= 5) OR (true')$$);
SELECT test_error($$SELECT migrate_table('api', 'customers', 'api_customer', filter => 'id <= 5] OR [true')$$);
SELECT test_error($$SELECT migrate_table('api', 'customers', 'api_customer', filter => '(id <= 5')$$);
SELECT test_error($$SELECT migrate_table('api', 'customers', 'api_customer', filter => 'id <= 5 -- and the rest')$$);
SELECT test_error($$SELECT migrate_rule('api', 'api_customer', 'bad', 'amount > 0) OR (true')$$);
SELECT test_error($$SELECT migrate_column('api', 'api_customer', 'email', 's.email) || (s.name')$$);
SELECT filter FROM migrate.table_map WHERE plan = 'api' AND target = 'api_customer'::regclass;
-- parentheses inside strings, quoted names and comments do not count
SELECT migrate_table('api', 'customers', 'api_customer', filter => $f$(name <> ')' AND "id" > 0 /* ) */) OR id = -1$f$, mode => 'upsert');
SELECT filter FROM migrate.table_map WHERE plan = 'api' AND target = 'api_customer'::regclass;
SELECT migrate_table('api', 'customers', 'api_customer', filter => 'id <= 100', mode => 'upsert');
CREATE TABLE api_nopk (id int, v text);
SELECT test_error($$SELECT migrate_table('api', 'customers', 'api_nopk')$$);
SELECT test_error($$SELECT migrate_table('api', 'customers', 'api_nopk', key => 'id', mode => 'upsert')$$);
SELECT test_error($$SELECT migrate_column('api', 'api_customer', 'no_col', 's.name')$$);
SELECT test_error($$SELECT migrate_column('api', 'no_table', 'email', 's.name')$$);
SELECT test_error($$SELECT migrate_column('api', 'api_customer', 'email', 's.no_such_column')$$);
SELECT test_error($$SELECT migrate_column('api', 'api_customer', 'email', 'lower(s.name')$$);
SELECT test_error($$SELECT migrate_column('api', 'api_customer', 'active', 's.name')$$);
SELECT test_error($$SELECT migrate_column('api', 'api_customer', 'email', 's.name) FROM pg_class; DROP TABLE api_customer; SELECT (1')$$);
SELECT test_error($$SELECT migrate_column('api', 'api_customer', 'email', '1 FROM pg_class')$$);
SELECT test_error($$SELECT migrate_rule('api', 'api_customer', 'bad', 'amount + 1')$$);
SELECT test_error($$SELECT migrate_rule('api', 'api_customer', 'bad', 'no_col > 0')$$);
SELECT test_error($$SELECT migrate_rule('api', 'api_customer', 'bad', 'amount > 0', on_fail => 'ignore')$$);
SELECT test_error($$SELECT migrate_plan('bad', source_schema => 'no_schema')$$);
SELECT test_error($$SELECT migrate_plan('bad', source_server => 'no_server')$$);
SELECT test_error($$SELECT migrate_value_map(NULL, 'a', 'b')$$);
-- the table still exists and nothing was half-written
SELECT count(*) FROM api_customer;
SELECT column_name, expr FROM migrate.column_map WHERE plan = 'api' ORDER BY 1;

-- plans are kept by pg_dump
SELECT c.relname FROM pg_extension e, unnest(e.extconfig) x JOIN pg_class c ON c.oid = x
 WHERE e.extname = 'migrate' ORDER BY 1;
