-- Keys: integer keys are cut by arithmetic (sparse keys adapt), text and
-- composite keys by asking the source for the next bound; a filter is
-- applied at the source; rows the batches cannot reach fail the run loudly.
\set SHOW_CONTEXT never
SET client_min_messages = warning;
CREATE TABLE key_code (code text PRIMARY KEY, label text);
CREATE TABLE key_pair (a int, b int, v text, PRIMARY KEY (a, b));
CREATE TABLE key_item (id bigint PRIMARY KEY, sku text, qty int, price numeric);
SELECT migrate_plan('keys', source_schema => 'legacy');
SELECT migrate_table('keys', 'codes', 'key_code');
SELECT migrate_table('keys', 'pairs', 'key_pair');
SELECT migrate_table('keys', 'items', 'key_item', filter => 'qty > 3');
SET migrate.batch_size = 40;
SELECT migrate_run('keys') AS run \gset
SELECT * FROM test_counts(:run);
SELECT target, batches, source_count, last_key FROM migrate.run_table WHERE run_id = :run ORDER BY target::text;
SELECT count(*), min(code), max(code) FROM key_code;
SELECT count(*), count(DISTINCT (a, b)) FROM key_pair;
SELECT count(*) = (SELECT count(*) FROM legacy.items WHERE qty > 3) AS filtered_count, min(qty) FROM key_item;

-- a NULL key can never be in a key range: the count check catches it
CREATE TABLE key_null (id int PRIMARY KEY, v text);
SELECT migrate_plan('null_keys', source_schema => 'legacy');
SELECT migrate_table('null_keys', 'nullkeys', 'key_null');
SELECT test_error($$SELECT migrate_run('null_keys')$$);
SELECT state FROM migrate.run WHERE plan = 'null_keys';
