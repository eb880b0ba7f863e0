-- migrate_verify(reread => false): a table the run loaded into an empty
-- target is compared with the sum of the row hashes the run took as it
-- wrote (run_table.loaded_checksum); the source is only counted.  That sum
-- equals the checksum a re-read of the source computes (renamed, computed
-- and cast columns, a typmod that rounds, a composite key, several units
-- and batches); a changed target row or a source row gone is found; every
-- table the sum cannot vouch for is read again, saying why; a valid,
-- enforced foreign key constraint is trusted, a disabled one scanned.
\set SHOW_CONTEXT never
SET client_min_messages = warning;
\set regress_db :DBNAME
\c migrate_src
SET client_min_messages = warning;
CREATE TABLE al_parent (id int PRIMARY KEY, name text, price numeric);
INSERT INTO al_parent SELECT g, CASE WHEN g % 9 = 0 THEN NULL ELSE 'name ' || g END, g * 0.35
  FROM generate_series(1, 400) g;
CREATE TABLE al_child (a int, b int, parent_id int, note text, PRIMARY KEY (a, b));
INSERT INTO al_child SELECT g / 10, g % 10, g % 400 + 1, CASE WHEN g % 7 = 0 THEN '' ELSE 'n' || g END
  FROM generate_series(0, 1499) g;
\c :regress_db
SET client_min_messages = warning;
\set SHOW_CONTEXT never
SET datestyle = ISO, YMD;
IMPORT FOREIGN SCHEMA public LIMIT TO (al_parent, al_child) FROM SERVER src INTO legacy;

CREATE TABLE al_parent (id bigint PRIMARY KEY, label varchar(40), price numeric(8,1));
CREATE TABLE al_child (a int, b int, parent_id bigint REFERENCES al_parent, note text, PRIMARY KEY (a, b));
SELECT migrate_plan('aslo', source_schema => 'legacy');
-- upsert into an empty table writes every row once, like insert
SELECT migrate_table('aslo', 'al_parent', 'al_parent', mode => 'upsert');
SELECT migrate_column('aslo', 'al_parent', 'label', 'upper(s.name)');
-- numeric(8,1) rounds 0.35 to 0.4: the sum must hash what the table holds
SELECT migrate_column('aslo', 'al_parent', 'price', 's.price');
SELECT migrate_table('aslo', 'al_child', 'al_child', mode => 'upsert');
SET migrate.batch_size = 100;
SELECT migrate_run('aslo', parallel => 2) AS run \gset
RESET migrate.batch_size;
SELECT target, state, undo, rows_written, loaded_checksum IS NOT NULL AS has_checksum, batches > 3 AS several_batches
  FROM migrate.run_table WHERE run_id = :run ORDER BY target::text;

-- the source read again and the rows as loaded give the same checksum
CREATE TEMP TABLE reread AS SELECT * FROM migrate_verify('aslo', :run);
CREATE TEMP TABLE asloaded AS SELECT * FROM migrate_verify('aslo', :run, reread => false);
SELECT a.target, a.check_name, a.ok, r.ok AS ok_reread, a.source_value = r.source_value AS same_source_side,
       a.target_value = r.target_value AS same_target_side
  FROM asloaded a JOIN reread r USING (target, check_name)
 ORDER BY a.target::text, a.check_name;
SELECT target, check_name, regexp_replace(details, 'run \d+', 'run N') AS details
  FROM asloaded WHERE check_name IN ('checksum', 'row count') OR check_name LIKE 'foreign key%'
 ORDER BY target::text, check_name;
SELECT state, verified FROM migrate.run WHERE run_id = :run;

-- a target row changed since the run: the checksum fails, the count holds
UPDATE al_child SET note = 'changed' WHERE a = 3 AND b = 4;
SELECT target, check_name, ok, regexp_replace(details, 'run \d+', 'run N') AS details
  FROM migrate_verify('aslo', :run, reread => false)
 WHERE NOT ok ORDER BY target::text, check_name;
UPDATE al_child SET note = 'n34' WHERE a = 3 AND b = 4;
-- a source row gone: the count fails, the checksum (of what was loaded) holds
DELETE FROM legacy.al_parent WHERE id = 17;
SELECT target, check_name, ok, source_value, target_value
  FROM migrate_verify('aslo', :run, reread => false)
 WHERE NOT ok ORDER BY target::text, check_name;
INSERT INTO legacy.al_parent VALUES (17, 'name 17', 17 * 0.35);
SELECT bool_and(ok) AS all_ok FROM migrate_verify('aslo', :run, reread => false);

-- a disabled foreign key constraint is not trusted: its orphans are looked for
ALTER TABLE al_child DISABLE TRIGGER ALL;
INSERT INTO al_child VALUES (999, 1, 12345, 'orphan');
SELECT target, check_name, ok, target_value
  FROM migrate_verify('aslo', :run, reread => false) WHERE check_name LIKE 'foreign key%';
DELETE FROM al_child WHERE a = 999;
ALTER TABLE al_child ENABLE TRIGGER ALL;

-- stable_for asks for the source: read again
SELECT check_name, ok, details LIKE '%source read again: stable_for is given%' AS says_why
  FROM migrate_verify('aslo', :run, stable_for => '0 seconds', reread => false)
 WHERE target = 'al_parent'::regclass AND check_name = 'checksum';

-- a second run into the now populated tables: it keeps no checksum (its
-- tables were not empty), and the first run's sum no longer vouches
SELECT migrate_run('aslo') AS run2 \gset
SELECT target, undo, loaded_checksum IS NULL AS no_checksum FROM migrate.run_table WHERE run_id = :run2 ORDER BY target::text;
SELECT target, ok, regexp_replace(substring(details FROM 'source read again: .*'), 'run \d+', 'run N') AS why
  FROM migrate_verify('aslo', :run2, reread => false) WHERE check_name = 'checksum' ORDER BY target::text;
SELECT target, ok, regexp_replace(substring(details FROM 'source read again: .*'), 'run \d+', 'run N') AS why
  FROM migrate_verify('aslo', :run, reread => false) WHERE check_name = 'checksum' ORDER BY target::text;

-- rejected rows: the sum covers only what was written, so the source is read
CREATE TABLE al_parent_r (id bigint PRIMARY KEY, label varchar(40), price numeric(8,1));
SELECT migrate_plan('aslo_r', source_schema => 'legacy', options => '{"reject_limit": null}');
SELECT migrate_table('aslo_r', 'al_parent', 'al_parent_r');
SELECT migrate_column('aslo_r', 'al_parent_r', 'label', 's.name');
SELECT migrate_rule('aslo_r', 'al_parent_r', 'named', 'label IS NOT NULL');
SELECT migrate_run('aslo_r') AS run3 \gset
SELECT rows_written, rows_rejected, loaded_checksum IS NOT NULL AS has_checksum FROM migrate.run_table WHERE run_id = :run3;
SELECT check_name, ok, regexp_replace(substring(details FROM 'source read again: .*'), 'run \d+', 'run N') AS why
  FROM migrate_verify('aslo_r', :run3, reread => false) WHERE check_name IN ('checksum', 'row count') ORDER BY 1;

-- a dry run keeps no checksum
SELECT migrate_run('aslo_r', dry_run => true) AS run4 \gset
SELECT undo, loaded_checksum IS NULL AS no_checksum FROM migrate.run_table WHERE run_id = :run4;

-- migrate._loaded() outside the engine is refused
SELECT test_error('SELECT migrate._loaded(1)');

-- the multi-insert path hashes each row as it writes it (src/rowhash.c),
-- with the verify's own function for every type: its special cases (date,
-- timestamptz with infinity, boolean, bytea), arrays, an enum, a domain,
-- collated text, char(n), numeric, a composite key; NULLs in every column.
-- A type without a hash function (point) keeps the SQL expression.  Either
-- way the sum equals the target's checksum and the source's.
\c migrate_src
SET client_min_messages = warning;
CREATE TYPE al_mood AS ENUM ('sad', 'ok', 'happy');
CREATE DOMAIN al_day AS date;
CREATE TABLE al_types (k1 int, k2 text, d date, tz timestamptz, b boolean, raw bytea, ia int[], ta text[],
                       mood al_mood, dd al_day, c char(5), v varchar(12) COLLATE "C", n numeric(10,3),
                       ts timestamp, PRIMARY KEY (k1, k2));
INSERT INTO al_types
SELECT g % 50, 'k' || (g / 50),
       CASE WHEN g % 11 <> 0 THEN date '2001-02-03' + g END,
       CASE WHEN g % 13 = 1 THEN 'infinity' WHEN g % 13 <> 0 THEN timestamptz '2020-05-06 07:08:09+02' + g * interval '1 hour 7 seconds' END,
       CASE WHEN g % 5 <> 0 THEN g % 2 = 0 END,
       CASE WHEN g % 6 <> 0 THEN decode(md5(g::text), 'hex') END,
       CASE WHEN g % 7 <> 0 THEN ARRAY[g, NULL, g * 2] END,
       CASE WHEN g % 8 <> 0 THEN ARRAY['a' || g, 'b'] END,
       (ARRAY['sad', 'ok', 'happy', NULL])[1 + g % 4]::al_mood,
       CASE WHEN g % 9 <> 0 THEN date '1999-12-31' - g END,
       CASE WHEN g % 10 <> 0 THEN 'c' || (g % 100) END,
       CASE WHEN g % 12 <> 0 THEN 'Väl ' || g END,
       CASE WHEN g % 14 <> 0 THEN g / 7.0 END,
       CASE WHEN g % 15 <> 0 THEN timestamp '2010-01-01' + g * interval '1 minute' END
  FROM generate_series(0, 2999) g;
CREATE TABLE al_points (id int PRIMARY KEY, p point, note text);
INSERT INTO al_points SELECT g, CASE WHEN g % 4 <> 0 THEN point(g, -g) END, 'p' || g FROM generate_series(1, 500) g;
\c :regress_db
SET client_min_messages = warning;
\set SHOW_CONTEXT never
CREATE TYPE al_mood AS ENUM ('sad', 'ok', 'happy');
CREATE DOMAIN al_day AS date;
IMPORT FOREIGN SCHEMA public LIMIT TO (al_types, al_points) FROM SERVER src INTO legacy;
CREATE TABLE al_types (LIKE legacy.al_types, PRIMARY KEY (k1, k2));
CREATE TABLE al_points (LIKE legacy.al_points, PRIMARY KEY (id));
SELECT migrate_plan('aslo_mi', source_schema => 'legacy');
SELECT migrate_table('aslo_mi', 'al_types', 'al_types');
SELECT migrate_table('aslo_mi', 'al_points', 'al_points');
SET migrate.batch_size = 700;
SELECT migrate_run('aslo_mi') AS run5 \gset
RESET migrate.batch_size;
SELECT regexp_replace(details, '^(\w+): ', '\1 -> ') AS insert_path
  FROM migrate.event WHERE run_id = :run5 AND event = 'insert path' ORDER BY details;
SELECT target, rows_written, loaded_checksum IS NOT NULL AS has_checksum
  FROM migrate.run_table WHERE run_id = :run5 ORDER BY target::text;
CREATE TEMP TABLE reread5 AS SELECT * FROM migrate_verify('aslo_mi', :run5);
CREATE TEMP TABLE asloaded5 AS SELECT * FROM migrate_verify('aslo_mi', :run5, reread => false);
SELECT a.target, a.check_name, a.ok, r.ok AS ok_reread, a.source_value = r.source_value AS same_source_side,
       a.target_value = r.target_value AS same_target_side,
       a.details LIKE '%compared with the rows as run % wrote them%' AS as_loaded
  FROM asloaded5 a JOIN reread5 r USING (target, check_name)
 WHERE a.check_name IN ('checksum', 'row count')
 ORDER BY a.target::text, a.check_name;
-- and a value changed after the run is found through each special case
UPDATE al_types SET tz = tz + interval '1 microsecond' WHERE k1 = 3 AND k2 = 'k2';
SELECT ok FROM migrate_verify('aslo_mi', :run5, reread => false) WHERE target = 'al_types'::regclass AND check_name = 'checksum';
UPDATE al_types SET tz = tz - interval '1 microsecond' WHERE k1 = 3 AND k2 = 'k2';
UPDATE al_types SET raw = raw || '\x00'::bytea WHERE k1 = 4 AND k2 = 'k3';
SELECT ok FROM migrate_verify('aslo_mi', :run5, reread => false) WHERE target = 'al_types'::regclass AND check_name = 'checksum';
UPDATE al_types SET raw = substring(raw FROM 1 FOR length(raw) - 1) WHERE k1 = 4 AND k2 = 'k3';
UPDATE al_types SET b = NOT b WHERE k1 = 1 AND k2 = 'k0';
SELECT ok FROM migrate_verify('aslo_mi', :run5, reread => false) WHERE target = 'al_types'::regclass AND check_name = 'checksum';
UPDATE al_types SET b = NOT b WHERE k1 = 1 AND k2 = 'k0';
SELECT bool_and(ok) AS all_ok_again FROM migrate_verify('aslo_mi', :run5, reread => false);

SELECT migrate_drop_plan('aslo_mi');
DROP TABLE al_types, al_points;
DROP FOREIGN TABLE legacy.al_types, legacy.al_points;
DROP TYPE al_mood;
DROP DOMAIN al_day;

SELECT migrate_drop_plan('aslo');
SELECT migrate_drop_plan('aslo_r');
DROP TABLE al_child, al_parent, al_parent_r;
DROP FOREIGN TABLE legacy.al_parent, legacy.al_child;
\c migrate_src
DROP TABLE al_child, al_parent, al_types, al_points;
DROP TYPE al_mood;
DROP DOMAIN al_day;
