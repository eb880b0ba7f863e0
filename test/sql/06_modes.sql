-- Modes: insert refuses rows whose key exists (quarantined as 23505),
-- upsert updates them, skip_existing leaves them and counts them skipped.
\set SHOW_CONTEXT never
SET client_min_messages = warning;
\set regress_db :DBNAME
CREATE TABLE mode_item (id bigint PRIMARY KEY, sku text, qty int, price numeric);
-- some rows are there already, one of them stale
INSERT INTO mode_item SELECT id, sku, qty, price FROM legacy.items WHERE id <= 70;
UPDATE mode_item SET sku = 'stale' WHERE id = 7;
SET migrate.batch_size = 100;

SELECT migrate_plan('modes', source_schema => 'legacy', options => '{"reject_limit": null}');
SELECT migrate_table('modes', 'items', 'mode_item', mode => 'skip_existing');
SELECT migrate_run('modes') AS run \gset
SELECT * FROM test_counts(:run);
SELECT sku FROM mode_item WHERE id = 7;

SELECT migrate_table('modes', 'items', 'mode_item', mode => 'upsert');
SELECT migrate_run('modes') AS run \gset
SELECT * FROM test_counts(:run);
SELECT sku FROM mode_item WHERE id = 7;
SELECT count(*) FROM mode_item;

-- an upsert re-run after the source changed brings the change over
\c migrate_src
UPDATE items SET qty = 999 WHERE id = 14;
\c :regress_db
SET client_min_messages = warning;
\set SHOW_CONTEXT never
SET migrate.batch_size = 100;
SELECT migrate_run('modes') AS run \gset
SELECT * FROM test_counts(:run);
SELECT qty FROM mode_item WHERE id = 14;

-- insert: every row already exists, each is quarantined, none is doubled
SELECT migrate_table('modes', 'items', 'mode_item', mode => 'insert');
SELECT migrate_run('modes') AS run \gset
SELECT * FROM test_counts(:run);
SELECT reason, count(*) FROM migrate.reject WHERE run_id = :run GROUP BY 1;
SELECT count(*), count(DISTINCT id) FROM mode_item;
\c migrate_src
UPDATE items SET qty = 14 % 13 WHERE id = 14;
\c :regress_db
