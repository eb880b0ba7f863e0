-- The batch statement reads the source by key range, and postgres_fdw
-- ships the range (as parameters) to the source: no row outside the batch
-- crosses the wire, and no ORDER BY or LIMIT is needed.
\set SHOW_CONTEXT never
SET client_min_messages = warning;
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
SELECT test_error($$SELECT migrate_batch_statement('keys', 'no_table')$$);
