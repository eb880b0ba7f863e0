-- Batches bounded by bytes (migrate.batch_bytes, plan option batch_bytes):
-- the rows per batch adapt to the memory earlier batches of the range took,
-- a row over the budget loads alone (a NOTICE and an event say so), and
-- the target equals the source whatever the batch sizes were.  The run
-- keeps its byte budget and the workers' real peak memory (peak_rss_kb).
\set SHOW_CONTEXT never
SET client_min_messages = warning;
CREATE SCHEMA bb_local;
-- 100 rows: 20 narrow, 40 of about 200 kB that hardly compress, 40 narrow
CREATE TABLE bb_local.docs (id int PRIMARY KEY, body text);
INSERT INTO bb_local.docs
SELECT g, CASE WHEN g BETWEEN 21 AND 60
               THEN (SELECT string_agg(md5(g::text || '.' || i), '') FROM generate_series(1, 6400) i)
               ELSE 'doc ' || g END
  FROM generate_series(1, 100) g;
CREATE TABLE bb_docs (id int PRIMARY KEY, body text);
SELECT migrate_plan('bb', source_schema => 'bb_local');
SELECT migrate_table('bb', 'docs', 'bb_docs');
SET migrate.batch_size = 20;

-- rows only: 100 rows in batches of 20
SET migrate.batch_bytes = 0;
SELECT migrate_run('bb') AS run_rows \gset
SELECT batch_bytes, state FROM migrate.run WHERE run_id = :run_rows;
SELECT rows_read, batches FROM migrate.run_range WHERE run_id = :run_rows;
TRUNCATE bb_docs;

-- a budget of 64 kB: fewer rows per batch once wide rows are seen, then
-- one per batch (a row takes more than the budget)
SET migrate.batch_bytes = '64kB';
SELECT migrate_run('bb') AS run_bytes \gset
SELECT batch_bytes, state FROM migrate.run WHERE run_id = :run_bytes;
SELECT r.rows_read, r.batches > b.batches AS more_batches, r.batches >= 3 * b.batches AS many_more
  FROM migrate.run_range r, migrate.run_range b
 WHERE r.run_id = :run_bytes AND b.run_id = :run_rows;
SELECT * FROM test_counts(:run_bytes);
SELECT count(*) AS events FROM migrate.event
 WHERE run_id = :run_bytes AND event = 'rows over batch_bytes'
   AND details LIKE 'rows of bb_docs take about % kB each, more than batch_bytes (64 kB): they load one per batch';
-- the target is the source
SELECT (SELECT count(*) FROM (SELECT * FROM bb_local.docs EXCEPT SELECT * FROM bb_docs) d) AS missing,
       (SELECT count(*) FROM (SELECT * FROM bb_docs EXCEPT SELECT * FROM bb_local.docs) d) AS extra;
-- the real peak: at least what the batch-end samples saw, and the wide rows
SELECT peak_rss_kb >= peak_memory_kb AS rss_covers_samples, peak_rss_kb > 200 AS holds_a_wide_row
  FROM migrate.run WHERE run_id = :run_bytes;
TRUNCATE bb_docs;

-- the plan's option beats the GUC (a number of bytes or a size)
UPDATE migrate.plan SET options = options || '{"batch_bytes": "32kB"}' WHERE plan_name = 'bb';
SELECT migrate_run('bb') AS run_opt \gset
SELECT batch_bytes FROM migrate.run WHERE run_id = :run_opt;
SELECT count(*) = 100 AS all_rows FROM bb_docs;
RESET migrate.batch_bytes;
RESET migrate.batch_size;

-- a non-integer key through postgres_fdw: every row, once
CREATE TABLE bb_codes (code text PRIMARY KEY, label text);
SELECT migrate_plan('bb_text', source_schema => 'legacy');
SELECT migrate_table('bb_text', 'codes', 'bb_codes');
SET migrate.batch_size = 40;
SET migrate.batch_bytes = '1kB';
SELECT migrate_run('bb_text') AS run_text \gset
SELECT rows_read, batches >= 250 / 40 AS batches FROM migrate.run_range WHERE run_id = :run_text;
SELECT count(*), count(DISTINCT code) FROM bb_codes;
SELECT (SELECT count(*) FROM (SELECT * FROM legacy.codes EXCEPT SELECT * FROM bb_codes) d) AS missing;
RESET migrate.batch_bytes;
RESET migrate.batch_size;

-- mysql_fdw buffers a result set whole, so a table without statistics
-- starts small (16 rows) unless its column types bound its rows: Chinook's
-- InvoiceLine (int, int, int, decimal(10,2), int; mysql_fdw imports the
-- decimal as numeric, which MySQL bounds to 65 digits) starts at batch_size,
-- in as many batches as without a byte budget
\set mariadb_port 3307
\getenv mariadb_port MIGRATE_MARIADB_PORT
CREATE EXTENSION IF NOT EXISTS mysql_fdw;
CREATE SERVER bb_my FOREIGN DATA WRAPPER mysql_fdw OPTIONS (host '127.0.0.1', port :'mariadb_port');
CREATE USER MAPPING FOR CURRENT_USER SERVER bb_my OPTIONS (username 'migrate', password 'migrate');
CREATE SCHEMA bb_mysql;
IMPORT FOREIGN SCHEMA "Chinook" LIMIT TO ("InvoiceLine") FROM SERVER bb_my INTO bb_mysql;
CREATE TABLE bb_il ("InvoiceLineId" int PRIMARY KEY, "InvoiceId" int, "TrackId" int,
                    "UnitPrice" numeric(10,2), "Quantity" int);
SELECT migrate_plan('bb_my', source_schema => 'bb_mysql');
SELECT migrate_table('bb_my', '"InvoiceLine"', 'bb_il');
SET migrate.batch_size = 500;
SET migrate.batch_bytes = 0;
SELECT migrate_run('bb_my') AS run_my_rows \gset
TRUNCATE bb_il;
SET migrate.batch_bytes = '16MB';
SELECT migrate_run('bb_my') AS run_my_bytes \gset
SELECT r.rows_read, r.batches, r.batches = b.batches AS same_batches
  FROM (SELECT sum(rows_read) AS rows_read, sum(batches) AS batches FROM migrate.run_range
         WHERE run_id = :run_my_bytes AND kind = 'load') r,
       (SELECT sum(batches) AS batches FROM migrate.run_range WHERE run_id = :run_my_rows AND kind = 'load') b;
SELECT count(*) AS rows, count(DISTINCT "InvoiceLineId") AS keys FROM bb_il;
RESET migrate.batch_bytes;
RESET migrate.batch_size;
SHOW migrate.batch_bytes;
