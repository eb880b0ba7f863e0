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

-- the smallest integer of the key type is a valid key
\set regress_db :DBNAME
\c migrate_src
CREATE TABLE minkeys (id int PRIMARY KEY, code text);
INSERT INTO minkeys VALUES (-2147483648, 'GB'), (0, 'FR'), (2147483647, 'DE');
\c :regress_db
\set SHOW_CONTEXT never
SET client_min_messages = warning;
IMPORT FOREIGN SCHEMA public LIMIT TO (minkeys) FROM SERVER src INTO legacy;
-- char(n) keeps its length; upsert with a long key name; a table of key columns only
CREATE TABLE key_min (id int PRIMARY KEY, code char(2));
CREATE TABLE key_long (code_number int PRIMARY KEY, label text);
CREATE TABLE key_only (a int, b int, PRIMARY KEY (a, b));
SELECT migrate_plan('edge_keys', source_schema => 'legacy', options => '{"reject_limit": null}');
SELECT migrate_table('edge_keys', 'minkeys', 'key_min');
SELECT migrate_table('edge_keys', 'items', 'key_long', key => 'code_number', mode => 'upsert');
SELECT migrate_column('edge_keys', 'key_long', 'code_number', 's.id');
SELECT migrate_column('edge_keys', 'key_long', 'label', 's.sku');
SELECT migrate_table('edge_keys', 'pairs', 'key_only', mode => 'upsert');
SELECT migrate_run('edge_keys') AS run \gset
SELECT migrate_run('edge_keys') AS run \gset
SELECT * FROM test_counts(:run);
SELECT id, code, length(code) FROM key_min ORDER BY id;
SELECT count(*) FROM key_long;
-- a rule is checked over the mapped row: unmapped target columns are not in it
CREATE TABLE key_rule (id int PRIMARY KEY, code text, created timestamptz NOT NULL DEFAULT now());
SELECT migrate_table('edge_keys', 'minkeys', 'key_rule');
SELECT test_error($$SELECT migrate_rule('edge_keys', 'key_rule', 'has_created', 'created IS NOT NULL')$$);
SELECT migrate_rule('edge_keys', 'key_rule', 'has_code', 'code <> ''''');

-- a uuid key (no min() or max() for uuid before PostgreSQL 16): batches,
-- key ranges for parallel workers, verify and diff
\c migrate_src
CREATE TABLE uuidkeys (id uuid PRIMARY KEY, n int);
INSERT INTO uuidkeys SELECT md5(g::text)::uuid, g FROM generate_series(1, 500) g;
\c :regress_db
\set SHOW_CONTEXT never
SET client_min_messages = warning;
IMPORT FOREIGN SCHEMA public LIMIT TO (uuidkeys) FROM SERVER src INTO legacy;
CREATE TABLE key_uuid (id uuid PRIMARY KEY, n int);
SELECT migrate_plan('uuid_keys', source_schema => 'legacy');
SELECT migrate_table('uuid_keys', 'uuidkeys', 'key_uuid');
SET migrate.batch_size = 40;
SELECT migrate_run('uuid_keys') AS run \gset
SELECT * FROM test_counts(:run);
SELECT batches FROM migrate.run_table WHERE run_id = :run;
TRUNCATE key_uuid;
SELECT migrate_run('uuid_keys', parallel => 2) AS run \gset
SELECT * FROM test_counts(:run);
SELECT count(*) AS ranges FROM migrate.run_range WHERE run_id = :run AND kind = 'load';
SELECT count(*), count(DISTINCT id) FROM key_uuid;
SELECT check_name, ok FROM migrate_verify('uuid_keys');
DELETE FROM key_uuid WHERE n = 77;
UPDATE key_uuid SET n = -n WHERE n IN (5, 400);
SELECT k.key, k.kind, k.columns, s.n FROM migrate_diff('uuid_keys', 'key_uuid', leaf_rows => 16) k
  JOIN legacy.uuidkeys s ON s.id = k.key::uuid ORDER BY s.n;
RESET migrate.batch_size;
