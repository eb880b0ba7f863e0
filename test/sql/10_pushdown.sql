-- The batch statement reads the source by key range, and postgres_fdw
-- ships the range (as parameters) to the source: no row outside the batch
-- crosses the wire, and no ORDER BY or LIMIT is needed.
\set SHOW_CONTEXT never
SET client_min_messages = warning;
-- through the foreign data wrapper
SET migrate.copy_source = off;
SELECT migrate_batch_statement('keys', 'key_item');
SELECT migrate_batch_statement('rules', 'rule_customer');
SELECT format('PREPARE batch(bigint, bigint) AS %s', migrate_batch_statement('keys', 'key_item')) \gexec
SET plan_cache_mode = force_generic_plan;
EXPLAIN (VERBOSE, COSTS OFF) EXECUTE batch(0, 100);
DEALLOCATE batch;
SELECT format('PREPARE batch(integer, integer) AS %s', migrate_batch_statement('rules', 'rule_customer')) \gexec
EXPLAIN (VERBOSE, COSTS OFF) EXECUTE batch(0, 100);
DEALLOCATE batch;
RESET plan_cache_mode;
-- the binary COPY reader of postgres_fdw sources (the default): the same
-- range, shipped as COPY (SELECT ... WHERE key > lo AND key <= hi)
RESET migrate.copy_source;
SELECT migrate_batch_statement('rules', 'rule_customer');
SELECT format('PREPARE batch(integer, integer) AS %s', migrate_batch_statement('rules', 'rule_customer')) \gexec
EXPLAIN (VERBOSE, COSTS OFF) EXECUTE batch(0, 100);
DEALLOCATE batch;
-- both read exactly the rows of the range
SELECT count(*) FROM migrate._copy_source('legacy.customers'::regclass, 'id', 40, 100)
    AS s(id int, name text, email text, country text, status text, amount text, signup text);
SELECT (SELECT count(*) FROM (
          SELECT * FROM migrate._copy_source('legacy.customers'::regclass, 'id', NULL::int, 200)
              AS s(id int, name text, email text, country text, status text, amount text, signup text)
          EXCEPT ALL SELECT * FROM legacy.customers) d) AS copy_only,
       (SELECT count(*) FROM (
          SELECT * FROM legacy.customers EXCEPT ALL
          SELECT * FROM migrate._copy_source('legacy.customers'::regclass, 'id', NULL::int, 200)
              AS s(id int, name text, email text, country text, status text, amount text, signup text)) d) AS fdw_only;
-- a local table is no foreign table
SELECT test_error($$SELECT * FROM migrate._copy_source('migrate.plan'::regclass, 'plan_name', NULL::text, 'x') AS s(a text)$$);
SELECT test_error($$SELECT migrate_batch_statement('keys', 'no_table')$$);
