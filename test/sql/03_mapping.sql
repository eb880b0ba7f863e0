-- Mapping: renamed, computed and cast columns, value maps through
-- migrate_lookup (also for non-text values), target defaults for unmapped
-- columns.
\set SHOW_CONTEXT never
SET client_min_messages = warning;
CREATE TABLE map_customer (
    customer_id int PRIMARY KEY,
    display_name text NOT NULL,
    email text,
    country_name text,
    active boolean,
    signup_date date,
    id_label text,
    source_system text NOT NULL DEFAULT 'legacy_crm'
);
SELECT migrate_value_map('map_country', 'DE', 'Germany');
SELECT migrate_value_map('map_country', 'FR', 'France');
SELECT migrate_value_map('map_parity', '0', 'even');
SELECT migrate_value_map('map_parity', '1', 'odd');
SELECT migrate_plan('mapping', source_schema => 'legacy');
SELECT migrate_table('mapping', 'customers', 'map_customer', key => 'customer_id');
SELECT migrate_column('mapping', 'map_customer', 'customer_id', 's.id');
SELECT migrate_column('mapping', 'map_customer', 'display_name', 'upper(s.name)');
SELECT migrate_column('mapping', 'map_customer', 'email', 'lower(s.email)');
SELECT migrate_column('mapping', 'map_customer', 'country_name', 'migrate_lookup(''map_country'', s.country)');
SELECT migrate_column('mapping', 'map_customer', 'active', 's.status = ''A''');
SELECT migrate_column('mapping', 'map_customer', 'signup_date', 's.signup::date');
SELECT migrate_column('mapping', 'map_customer', 'id_label', 'migrate_lookup(''map_parity'', s.id % 2)');
SELECT migrate_run('mapping') AS run \gset
SELECT * FROM test_counts(:run);
SELECT * FROM map_customer WHERE customer_id IN (1, 2, 3, 50) ORDER BY customer_id;
SELECT country_name, count(*) FROM map_customer GROUP BY 1 ORDER BY 1;

-- a value map that does not exist fails the run with a clear error
CREATE TABLE map_small (id int PRIMARY KEY, v text);
SELECT migrate_plan('mapping_bad', source_schema => 'legacy');
SELECT migrate_table('mapping_bad', 'customers', 'map_small');
SELECT migrate_column('mapping_bad', 'map_small', 'v', 'migrate_lookup(''no_such_map'', s.country)');
SELECT test_error($$SELECT migrate_run('mapping_bad')$$);
SELECT state, error FROM migrate.run WHERE plan = 'mapping_bad';
SELECT target, state, error FROM migrate.run_table
 WHERE run_id = (SELECT max(run_id) FROM migrate.run WHERE plan = 'mapping_bad');
SELECT count(*) FROM map_small;
