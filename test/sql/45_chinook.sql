--
-- Acceptance: Chinook from a real MariaDB (test/mariadb/start.sh) through
-- mysql_fdw into the snake_case schema of Chinook_PostgreSql.sql, with
-- nothing but migrate_plan + migrate_automap + migrate_run; then every table
-- equals the PostgreSQL script's own data (EXCEPT both ways), 15,607 rows,
-- trailing blanks and backslashes kept.
--
\set SHOW_CONTEXT never
SET client_min_messages = warning;
\set mariadb_port 3307
\getenv mariadb_port MIGRATE_MARIADB_PORT
CREATE EXTENSION IF NOT EXISTS mysql_fdw;
CREATE SERVER chinook_src FOREIGN DATA WRAPPER mysql_fdw
    OPTIONS (host '127.0.0.1', port :'mariadb_port');
CREATE USER MAPPING FOR CURRENT_USER SERVER chinook_src
    OPTIONS (username 'migrate', password 'migrate');

-- the target: the DDL of the PostgreSQL script (keys, foreign keys, indexes)
CREATE SCHEMA chinook;
SET search_path = chinook, public;
\! sh test/data/chinook/pg-script.sh ddl > test/results/chinook_ddl.sql
\i test/results/chinook_ddl.sql
-- the oracle: the PostgreSQL script's own data, N'' literals fixed
CREATE SCHEMA chinook_expected;
SET search_path = chinook_expected, public;
\! sh test/data/chinook/pg-script.sh data > test/results/chinook_data.sql
-- 15,800 lines of INSERTs: not echoed (an error in them still shows)
\set ECHO none
\o /dev/null
\i test/results/chinook_data.sql
\o
\set ECHO all
RESET search_path;
-- the oracle holds the script's rows
SELECT c.relname AS table_name,
       (xpath('/row/n/text()', query_to_xml(format('SELECT count(*) AS n FROM chinook_expected.%I', c.relname),
                                            false, true, '')))[1]::text::bigint AS expected_rows
  FROM pg_class c
 WHERE c.relnamespace = 'chinook_expected'::regnamespace AND c.relkind = 'r'
 ORDER BY 1;

-- the plan: migrate_plan imports the MariaDB database Chinook into schema
-- chinook_src, automap maps the 11 tables and 64 columns
SELECT migrate_plan('chinook', source_server => 'chinook_src', source_schema => 'chinook_src',
                    target_schema => 'chinook', options => '{"remote_schema": "Chinook"}');
CREATE TEMP TABLE automapped AS SELECT * FROM migrate_automap('chinook');
SELECT action, count(*) FROM automapped GROUP BY action ORDER BY action;
SELECT target, source, column_name, source_column, expr, action
  FROM automapped ORDER BY target::text, column_name NULLS FIRST, source;
-- a second call keeps every mapping
SELECT action, count(*) FROM migrate_automap('chinook') GROUP BY action ORDER BY action;
SELECT count(*) AS tables FROM migrate.table_map WHERE plan = 'chinook';

-- assess before any row moves: the only finding is the self-reference of
-- employee (reports_to); the profile finds nothing the load would refuse
SELECT * FROM migrate_check('chinook');
SELECT target, count(*) AS columns, max(rows) AS rows, sum(nulls) AS nulls,
       sum(cast_failures) AS cast_failures, sum(not_null_violations) AS not_null_violations
  FROM migrate_profile('chinook') GROUP BY target ORDER BY target::text;
SELECT source_column, target_column, min_value, max_value, max_length
  FROM migrate.profile_result
 WHERE plan = 'chinook' AND target = 'chinook.invoice'::regclass AND target_column IN ('invoice_date', 'billing_city', 'total')
 ORDER BY target_column;

-- run it
SET migrate.batch_size = 1000;
SELECT migrate_run('chinook') > 0 AS ran;
SELECT t.* FROM test_counts((SELECT max(run_id) FROM migrate.run WHERE plan = 'chinook')) t;
SELECT sum(rows_written) AS rows_written, sum(rows_rejected) AS rejected,
       bool_and(rows_read = source_count) AS counts_match_source
  FROM migrate.run_table WHERE run_id = (SELECT max(run_id) FROM migrate.run WHERE plan = 'chinook');

-- every table equals the oracle, both ways
CREATE FUNCTION pg_temp.differences(p_table text)
RETURNS TABLE (missing bigint, extra bigint, target_rows bigint, expected_rows bigint)
LANGUAGE plpgsql AS $$
BEGIN
    RETURN QUERY EXECUTE format(
        'SELECT (SELECT count(*) FROM (TABLE chinook_expected.%1$I EXCEPT ALL TABLE chinook.%1$I) d),
                (SELECT count(*) FROM (TABLE chinook.%1$I EXCEPT ALL TABLE chinook_expected.%1$I) d),
                (SELECT count(*) FROM chinook.%1$I), (SELECT count(*) FROM chinook_expected.%1$I)', p_table);
END;
$$;
SELECT c.relname AS table_name, d.*
  FROM pg_class c CROSS JOIN LATERAL pg_temp.differences(c.relname) d
 WHERE c.relnamespace = 'chinook'::regnamespace AND c.relkind = 'r'
 ORDER BY 1;
SELECT sum(n) AS total_rows FROM (
    SELECT (xpath('/row/n/text()', query_to_xml(format('SELECT count(*) AS n FROM chinook.%I', relname), false, true, '')))[1]::text::bigint AS n
      FROM pg_class WHERE relnamespace = 'chinook'::regnamespace AND relkind = 'r') x;
-- the two traps of the data: trailing blanks and backslashes
SELECT count(*) AS edinburgh_with_blank FROM chinook.customer WHERE city = 'Edinburgh ';
SELECT count(*) AS invoices_edinburgh_with_blank FROM chinook.invoice WHERE billing_city = 'Edinburgh ';
SELECT track_id, name FROM chinook.track WHERE strpos(name, '\') > 0 ORDER BY track_id;
