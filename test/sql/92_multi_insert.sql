-- The multi-insert path (src/multiinsert.c): a batch's rows written with
-- the table's multi-insert, as COPY FROM does, where the target allows it,
-- chosen per table and said in the run's events with the reason; the same
-- rows and the same rejects (SQLSTATE, message) as INSERT ... SELECT
-- (migrate.multi_insert off for the role the run connects as is the
-- oracle): assignment coercion with typmods (varchar too long is an error,
-- numeric rounds), NOT NULL, CHECK, unique keys in the batch and against
-- the target, dropped columns, a column without a default left out, and
-- columns left out that the INSERT fills: a default, a serial, an
-- identity, a domain's default, a stored generated column; a foreign key
-- and AFTER INSERT row and statement triggers, fired as an INSERT fires them;
-- a partitioned target (routing, a partition's own column order and NOT
-- NULL, no partition for a row) and a partition as the target.
\set SHOW_CONTEXT never
SET client_min_messages = warning;
\set regress_db :DBNAME
\c migrate_src
SET client_min_messages = warning;
CREATE TABLE mi_src (id int PRIMARY KEY, code text, amount text, note text, dup int);
INSERT INTO mi_src
SELECT g,
       CASE WHEN g % 50 = 0 THEN 'toolong' ELSE 'c' || g % 100 END,   -- varchar(5): 22001
       CASE WHEN g % 70 = 0 THEN 'x' ELSE (g * 1.005)::text END,      -- numeric(8,2): rounds; 'x' 22P02
       CASE WHEN g % 90 = 0 THEN NULL ELSE 'n' || g END,              -- NOT NULL: 23502
       CASE WHEN g % 60 = 0 THEN 7 ELSE g END                         -- unique: 23505 in the batch
  FROM generate_series(1, 1500) g;
\c :regress_db
SET client_min_messages = warning;
CREATE SCHEMA mi_legacy;
IMPORT FOREIGN SCHEMA public LIMIT TO (mi_src) FROM SERVER src INTO mi_legacy;

CREATE FUNCTION mi_targets(s text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('CREATE SCHEMA %I', s);
    -- a dropped column in the middle, and one without a default the plan leaves out
    EXECUTE format('CREATE TABLE %I.t (id int PRIMARY KEY, gone int, code varchar(5), amount numeric(8,2) CHECK (amount < 1400),'
                   ' note text NOT NULL, dup int UNIQUE, spare text)', s);
    EXECUTE format('ALTER TABLE %I.t DROP COLUMN gone', s);
    -- a foreign key (its checks are AFTER ROW triggers), a row and a statement trigger after insert
    EXECUTE format('CREATE TABLE %I.parent (k int PRIMARY KEY)', s);
    EXECUTE format('INSERT INTO %I.parent SELECT g FROM generate_series(1, 1500) g WHERE g %% 11 <> 0', s);
    EXECUTE format('CREATE TABLE %I.fk (id int PRIMARY KEY, dup int REFERENCES %I.parent (k))', s, s);
    EXECUTE format('CREATE TABLE %I.fk_log (id int, stmt boolean)', s);
    EXECUTE format('CREATE FUNCTION %I.log_row() RETURNS trigger LANGUAGE plpgsql'
                   ' AS $f$BEGIN INSERT INTO %I.fk_log VALUES (NEW.id, false); RETURN NULL; END$f$', s, s);
    EXECUTE format('CREATE FUNCTION %I.log_stmt() RETURNS trigger LANGUAGE plpgsql'
                   ' AS $f$BEGIN INSERT INTO %I.fk_log VALUES (NULL, true); RETURN NULL; END$f$', s, s);
    EXECUTE format('CREATE TRIGGER log_row AFTER INSERT ON %I.fk FOR EACH ROW EXECUTE FUNCTION %I.log_row()', s, s);
    EXECUTE format('CREATE TRIGGER log_stmt AFTER INSERT ON %I.fk FOR EACH STATEMENT EXECUTE FUNCTION %I.log_stmt()', s, s);
    -- a table the path refuses: a BEFORE ROW trigger
    EXECUTE format('CREATE TABLE %I.trig (id int PRIMARY KEY, code text)', s);
    EXECUTE format('CREATE FUNCTION %I.noop() RETURNS trigger LANGUAGE plpgsql AS ''BEGIN RETURN NEW; END''', s);
    EXECUTE format('CREATE TRIGGER noop BEFORE INSERT ON %I.trig FOR EACH ROW EXECUTE FUNCTION %I.noop()', s, s);
    -- what the INSERT fills in, the receiver too
    EXECUTE format('CREATE DOMAIN %I.day AS int DEFAULT 7 CHECK (VALUE > 0)', s);
    EXECUTE format('CREATE TABLE %I.dflt (id int PRIMARY KEY, code text, at timestamptz DEFAULT now(),'
                   ' n serial, g bigint GENERATED ALWAYS AS IDENTITY, d %I.day, tag varchar(4) DEFAULT ''ab'','
                   ' twice int GENERATED ALWAYS AS (id * 2) STORED)', s, s);
    -- partitioned: rows routed as COPY routes them, to a partition of another
    -- column order (a map), a NOT NULL of the partition's own, no partition
    -- past 1400; and a partition loaded as the target, its bound checked
    EXECUTE format('CREATE TABLE %I.part (id int PRIMARY KEY, code text, note text) PARTITION BY RANGE (id)', s);
    EXECUTE format('CREATE TABLE %I.part_1 PARTITION OF %I.part FOR VALUES FROM (MINVALUE) TO (700)', s, s);
    EXECUTE format('CREATE TABLE %I.part_2 (gone int, note text NOT NULL, code text, id int NOT NULL)', s);
    EXECUTE format('ALTER TABLE %I.part_2 DROP COLUMN gone', s);
    EXECUTE format('ALTER TABLE %I.part ATTACH PARTITION %I.part_2 FOR VALUES FROM (700) TO (1400)', s, s);
    EXECUTE format('CREATE TABLE %I.lp (id int PRIMARY KEY, code text) PARTITION BY RANGE (id)', s);
    EXECUTE format('CREATE TABLE %I.leaf PARTITION OF %I.lp FOR VALUES FROM (1) TO (1000)', s, s);
    PERFORM migrate_plan(s, source_schema => 'mi_legacy', target_schema => s,
                         options => '{"reject_limit": null}');
    PERFORM migrate_table(s, 'mi_src', 't');
    PERFORM migrate_column(s, 't', 'amount', 's.amount::numeric');
    PERFORM migrate_table(s, 'mi_src', 'trig');
    PERFORM migrate_table(s, 'mi_src', 'fk');
    PERFORM migrate_table(s, 'mi_src', 'dflt');
    PERFORM migrate_table(s, 'mi_src', 'part');
    PERFORM migrate_table(s, 'mi_src', 'leaf');
END $$;
SELECT mi_targets('mi_multi'), mi_targets('mi_sql');

SET migrate.batch_size = 400;
SELECT migrate_run('mi_multi') IS NOT NULL AS ran;
ALTER ROLE CURRENT_USER SET migrate.multi_insert = off;
SELECT migrate_run('mi_sql') IS NOT NULL AS ran;
ALTER ROLE CURRENT_USER RESET migrate.multi_insert;

-- which path each table took, and why
SELECT r.plan, e.details FROM migrate.event e JOIN migrate.run r USING (run_id)
 WHERE e.event = 'insert path' AND r.plan IN ('mi_multi', 'mi_sql') ORDER BY 1, 2;

-- the same rows
SELECT (SELECT count(*) FROM mi_multi.t) AS rows_multi, (SELECT count(*) FROM mi_sql.t) AS rows_sql,
       (SELECT md5(string_agg(t::text, ',' ORDER BY id)) FROM mi_multi.t) =
       (SELECT md5(string_agg(t::text, ',' ORDER BY id)) FROM mi_sql.t) AS same_rows;
SELECT * FROM mi_multi.t WHERE id IN (1, 2, 3) ORDER BY id;
-- the same counters and rejects
SELECT r.plan, t.target::text, t.rows_read, t.rows_written, t.rows_rejected
  FROM migrate.run_table t JOIN migrate.run r USING (run_id)
 WHERE r.plan IN ('mi_multi', 'mi_sql') AND t.target::text LIKE '%.t' ORDER BY 2, 1;
SELECT j.reason, j.message, count(*) FILTER (WHERE r.plan = 'mi_multi') AS multi,
       count(*) FILTER (WHERE r.plan = 'mi_sql') AS sql
  FROM migrate.reject j JOIN migrate.run r USING (run_id)
 WHERE r.plan IN ('mi_multi', 'mi_sql') AND j.target::text LIKE '%.t'
 GROUP BY 1, 2 ORDER BY 1, 2;
SELECT count(*) AS keys_rejected_differently FROM (
    (SELECT source_key, reason FROM migrate.reject j JOIN migrate.run r USING (run_id)
      WHERE r.plan = 'mi_multi' AND j.target = 'mi_multi.t'::regclass
     EXCEPT SELECT source_key, reason FROM migrate.reject j JOIN migrate.run r USING (run_id)
      WHERE r.plan = 'mi_sql' AND j.target = 'mi_sql.t'::regclass)
    UNION ALL
    (SELECT source_key, reason FROM migrate.reject j JOIN migrate.run r USING (run_id)
      WHERE r.plan = 'mi_sql' AND j.target = 'mi_sql.t'::regclass
     EXCEPT SELECT source_key, reason FROM migrate.reject j JOIN migrate.run r USING (run_id)
      WHERE r.plan = 'mi_multi' AND j.target = 'mi_multi.t'::regclass)) d;

-- the columns the INSERT fills, filled alike (now() is each run's own)
SELECT (SELECT md5(string_agg((id, code, n, g, d, tag, twice)::text, ',' ORDER BY id)) FROM mi_multi.dflt) =
       (SELECT md5(string_agg((id, code, n, g, d, tag, twice)::text, ',' ORDER BY id)) FROM mi_sql.dflt) AS same_rows,
       (SELECT count(*) FROM mi_multi.dflt WHERE at IS NOT NULL) AS at_filled;
SELECT id, code, n, g, d, tag, twice FROM mi_multi.dflt WHERE id IN (1, 2, 1500) ORDER BY id;

-- a foreign key and AFTER triggers: the same rows, rejects and trigger calls
SELECT (SELECT count(*) FROM mi_multi.fk) AS fk_multi, (SELECT count(*) FROM mi_sql.fk) AS fk_sql,
       (SELECT md5(string_agg(fk::text, ',' ORDER BY id)) FROM mi_multi.fk) =
       (SELECT md5(string_agg(fk::text, ',' ORDER BY id)) FROM mi_sql.fk) AS same_rows,
       (SELECT count(*) FROM mi_multi.fk_log WHERE NOT stmt) AS row_calls_multi,
       (SELECT count(*) FROM mi_sql.fk_log WHERE NOT stmt) AS row_calls_sql,
       (SELECT count(*) FROM mi_multi.fk_log WHERE stmt) AS stmt_calls_multi,
       (SELECT count(*) FROM mi_sql.fk_log WHERE stmt) AS stmt_calls_sql;
SELECT r.plan, j.reason, j.message, count(*)
  FROM migrate.reject j JOIN migrate.run r USING (run_id)
 WHERE r.plan IN ('mi_multi', 'mi_sql') AND j.target::text LIKE '%.fk'
 GROUP BY 1, 2, 3 ORDER BY 1, 2, 3;

-- partitions: the same rows where they belong, the same rejects
SELECT tableoid::regclass::text AS partition, count(*) FROM mi_multi.part GROUP BY 1
 UNION ALL SELECT tableoid::regclass::text, count(*) FROM mi_sql.part GROUP BY 1 ORDER BY 1;
SELECT (SELECT md5(string_agg((p)::text, ',' ORDER BY id)) FROM mi_multi.part p) =
       (SELECT md5(string_agg((p)::text, ',' ORDER BY id)) FROM mi_sql.part p) AS same_rows,
       (SELECT md5(string_agg((p)::text, ',' ORDER BY id)) FROM mi_multi.part_2 p) =
       (SELECT md5(string_agg((p)::text, ',' ORDER BY id)) FROM mi_sql.part_2 p) AS same_part_2,
       (SELECT count(*) FROM mi_multi.leaf) AS leaf_multi, (SELECT count(*) FROM mi_sql.leaf) AS leaf_sql;
SELECT j.target::text LIKE '%.part' AS part, j.reason, j.message,
       count(*) FILTER (WHERE r.plan = 'mi_multi') AS multi, count(*) FILTER (WHERE r.plan = 'mi_sql') AS sql
  FROM migrate.reject j JOIN migrate.run r USING (run_id)
 WHERE r.plan IN ('mi_multi', 'mi_sql') AND (j.target::text LIKE '%.part' OR j.target::text LIKE '%.leaf')
 GROUP BY 1, 2, 3 ORDER BY 1, 2, 3;

-- a second run into the loaded table: every key refused against the target, on either path
SELECT migrate_run('mi_multi', tables => ARRAY['t']) IS NOT NULL AS ran;
SELECT rows_read, rows_written, rows_rejected FROM migrate.run_table
 WHERE run_id = (SELECT max(run_id) FROM migrate.run WHERE plan = 'mi_multi');

-- without INSERT privilege the path writes nothing, as INSERT would not
CREATE ROLE mi_reader;
GRANT USAGE ON SCHEMA mi_multi, mi_legacy TO mi_reader;
GRANT SELECT ON ALL TABLES IN SCHEMA mi_multi TO mi_reader;
GRANT SELECT ON mi_legacy.mi_src TO mi_reader;
GRANT USAGE ON FOREIGN SERVER src TO mi_reader;
CREATE USER MAPPING FOR mi_reader SERVER src OPTIONS (password_required 'false');
TRUNCATE mi_multi.t;
UPDATE migrate.plan SET owner = 'mi_reader' WHERE plan_name = 'mi_multi';
SELECT migrate_run('mi_multi', tables => ARRAY['t']);
SELECT count(*) AS written FROM mi_multi.t;
UPDATE migrate.plan SET owner = CURRENT_USER::regrole WHERE plan_name = 'mi_multi';

SELECT migrate_drop_plan('mi_multi'), migrate_drop_plan('mi_sql');
DROP USER MAPPING FOR mi_reader SERVER src;
DROP OWNED BY mi_reader;
DROP ROLE mi_reader;
DROP SCHEMA mi_multi, mi_sql, mi_legacy CASCADE;
RESET migrate.batch_size;
