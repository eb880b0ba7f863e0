-- Tampering with the target (plan of sql/30_verify.sql): verify fails,
-- naming the tables and columns, and migrate_diff() names exactly the keys
-- that were deleted, inserted or updated, including a NULL turned into an
-- empty string and a trailing blank, bisecting only the key ranges that
-- differ.
\set SHOW_CONTEXT never
SET client_min_messages = warning;
-- text key: NULL -> '', 'x' -> 'x ', '' -> NULL, one row deleted, one added
UPDATE ver_note SET note = '' WHERE code = 'k3';
UPDATE ver_note SET note = 'x ' WHERE code = 'k4';
UPDATE ver_note SET note = NULL WHERE code = 'k2';
DELETE FROM ver_note WHERE code = 'n0150';
INSERT INTO ver_note VALUES ('n0150a', 'note 150', 150);
-- integer key: two rows deleted, one added, one value changed, two values
-- swapped between rows (per-column sums alone would not see that)
DELETE FROM ver_order WHERE id IN (3, 402);
INSERT INTO ver_order VALUES (100001, 1, 1, NULL);
UPDATE ver_order SET total = total + 0.1 WHERE id = 250;
UPDATE ver_order SET placed = CASE id WHEN 12 THEN (SELECT placed FROM ver_order WHERE id = 14)
                                      ELSE (SELECT placed FROM ver_order WHERE id = 12) END
 WHERE id IN (12, 14);
-- a parent row gone: its children are orphans of the source's foreign key
DELETE FROM ver_parent WHERE id = 7;

SELECT target, check_name, source_value, target_value, ok, details
  FROM migrate_verify('verify') WHERE NOT ok;
SELECT verified FROM migrate.run WHERE run_id = (SELECT max(run_id) FROM migrate.run WHERE plan = 'verify');

-- diff names exactly the tampered keys, with the columns that changed
SELECT key, kind, columns FROM migrate_diff('verify', 'ver_note');
SELECT key, kind, columns FROM migrate_diff('verify', 'ver_order');
SELECT key, kind, columns FROM migrate_diff('verify', 'ver_parent');
SELECT key, kind, columns FROM migrate_diff('verify', 'ver_customer');

-- with small leaves the bisection compares few ranges: only those that differ are split
SELECT key, kind, columns FROM migrate_diff('verify', 'ver_note', leaf_rows => 4);
SELECT key, kind, columns FROM migrate_diff('verify', 'ver_order', leaf_rows => 4);
SELECT regexp_replace(details, 'diff \d+', 'diff N') AS details FROM migrate.event
 WHERE event = 'diff' ORDER BY event_id DESC LIMIT 2;
SELECT (regexp_match(details, '(\d+) statements'))[1]::int < 330 / 4 AS fewer_statements_than_leaves
  FROM migrate.event WHERE event = 'diff' ORDER BY event_id DESC LIMIT 1;

-- results are stored: join them to the target
SELECT d.kind, o.id, o.total FROM migrate.diff_result d
  LEFT JOIN ver_order o ON o.id = d.key::int
 WHERE d.diff_id = (SELECT max(diff_id) FROM migrate.diff_result)
 ORDER BY d.result_id;

-- rows the run rejected are not differences; a clean table has none
SELECT count(*) FROM migrate_diff('verify', 'ver_child');
SELECT count(*) FROM migrate_diff('keys', 'key_code', leaf_rows => 8);
SELECT count(*) FROM migrate_diff('keys', 'key_item', leaf_rows => 8);

-- repair the target from the diff; verify passes again
UPDATE ver_note SET note = NULL WHERE code = 'k3';
UPDATE ver_note SET note = 'x' WHERE code = 'k4';
UPDATE ver_note SET note = '' WHERE code = 'k2';
DELETE FROM ver_note WHERE code = 'n0150a';
INSERT INTO ver_note SELECT code, note, qty FROM legacy.ver_notes WHERE code = 'n0150';
DELETE FROM ver_order WHERE id = 100001;
INSERT INTO ver_order SELECT id, customer_id, total, placed + 1 FROM legacy.orders WHERE id IN (3, 402, 250, 12, 14)
    ON CONFLICT (id) DO UPDATE SET total = EXCLUDED.total, placed = EXCLUDED.placed;
INSERT INTO ver_parent SELECT * FROM ver_local.parent WHERE id = 7;
SELECT count(*), bool_and(ok) FROM migrate_verify('verify');
SELECT count(*) FROM migrate_diff('verify', 'ver_order', leaf_rows => 4);

-- composite keys: the first key column is bisected; a range of one value
-- of it goes on with the next column
SELECT count(*) FROM migrate_diff('keys', 'key_pair', leaf_rows => 4);
DELETE FROM key_pair WHERE (a, b) = (3, 7);
UPDATE key_pair SET v = v || ' ' WHERE (a, b) = (5, 0);
INSERT INTO key_pair VALUES (5, 10, 'new');
SELECT key, kind, columns FROM migrate_diff('keys', 'key_pair', leaf_rows => 4);
SELECT regexp_replace(details, 'diff \d+', 'diff N') AS details FROM migrate.event
 WHERE event = 'diff' ORDER BY event_id DESC LIMIT 1;
-- a text column first, with many rows for each of its values
\set regress_db :DBNAME
\c migrate_src
SET client_min_messages = warning;
CREATE TABLE diff_regions (region text, id int, amount numeric, PRIMARY KEY (region, id));
INSERT INTO diff_regions SELECT r, g, g * 1.5 FROM unnest(ARRAY['east', 'north', 'west']) r,
                                                   generate_series(1, 200) g;
\c :regress_db
SET client_min_messages = warning;
\set SHOW_CONTEXT never
IMPORT FOREIGN SCHEMA public LIMIT TO (diff_regions) FROM SERVER src INTO legacy;
CREATE TABLE diff_region (region text, id int, amount numeric, PRIMARY KEY (region, id));
SELECT migrate_plan('diff_regions', source_schema => 'legacy');
SELECT migrate_table('diff_regions', 'diff_regions', 'diff_region');
SELECT migrate_run('diff_regions') IS NOT NULL AS ran;
SELECT count(*) FROM migrate_diff('diff_regions', 'diff_region', leaf_rows => 8);
UPDATE diff_region SET amount = NULL WHERE region = 'north' AND id = 150;
DELETE FROM diff_region WHERE region = 'west' AND id = 1;
INSERT INTO diff_region VALUES ('south', 1, 1), ('east', 201, 1);
SELECT key, kind, columns FROM migrate_diff('diff_regions', 'diff_region', leaf_rows => 8);
SELECT regexp_replace(details, 'diff \d+', 'diff N') AS details FROM migrate.event
 WHERE event = 'diff' ORDER BY event_id DESC LIMIT 1;
-- repaired from the diff
DELETE FROM key_pair WHERE (a, b) = (5, 10);
INSERT INTO key_pair SELECT * FROM legacy.pairs WHERE (a, b) = (3, 7);
UPDATE key_pair k SET v = p.v FROM legacy.pairs p WHERE (k.a, k.b) = (5, 0) AND (p.a, p.b) = (5, 0);
SELECT count(*) FROM migrate_diff('keys', 'key_pair', leaf_rows => 4);
