-- Set-wise quarantine: rows the target's constraints would refuse (NOT
-- NULL, CHECK, foreign keys to loaded tables, duplicate keys in the batch
-- and against the target) are routed to migrate.reject by the batch
-- statement itself, with the SQLSTATE, message and detail the target gives,
-- exactly as bisection (the oracle: "setwise_quarantine": false) finds them.
\set SHOW_CONTEXT never
SET client_min_messages = warning;
\set regress_db :DBNAME
\c migrate_src
SET client_min_messages = warning;
CREATE TABLE sw_parent (id int PRIMARY KEY, label text);
INSERT INTO sw_parent SELECT g, 'p' || g FROM generate_series(1, 20) g;
CREATE TABLE sw_child (id int PRIMARY KEY, parent_id int, name text, qty int, amount text);
INSERT INTO sw_child
SELECT g,
       CASE WHEN g % 29 = 0 THEN 90 + g % 7 ELSE g % 20 + 1 END,        -- orphans
       CASE WHEN g % 37 = 0 OR g = 58 THEN NULL ELSE 'n' || g END,      -- NOT NULL (58 also an orphan)
       CASE WHEN g % 41 = 0 OR g = 87 THEN -g WHEN g % 43 = 0 THEN NULL ELSE g % 7 END,  -- CHECK; NULL passes
       (g * 1.5)::text                                                  -- CHECK amount < 400 from 267 on
  FROM generate_series(1, 300) g;
CREATE TABLE sw_pair (id int PRIMARY KEY, a int, b int, v text);
INSERT INTO sw_pair SELECT g, g / 3, g % 2, 'v' || g FROM generate_series(1, 90) g;
CREATE TABLE sw_cast (id int PRIMARY KEY, name text, amount text);
INSERT INTO sw_cast SELECT g, CASE WHEN g % 10 = 0 THEN NULL ELSE 'c' || g END,
                           CASE WHEN g % 25 = 0 THEN 'n/a' ELSE g::text END
  FROM generate_series(1, 100) g;
\c :regress_db
SET client_min_messages = warning;
CREATE SCHEMA sw_src;
IMPORT FOREIGN SCHEMA public LIMIT TO (sw_parent, sw_child, sw_pair, sw_cast) FROM SERVER src INTO sw_src;

-- the same targets twice: predictions off (bisection) and on
CREATE FUNCTION sw_targets(s text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('CREATE SCHEMA %I', s);
    EXECUTE format('CREATE TABLE %I.parent (id int PRIMARY KEY, label text)', s);
    EXECUTE format('CREATE TABLE %I.child (id int PRIMARY KEY, parent_id int REFERENCES %I.parent,'
                   ' name text NOT NULL, qty int CHECK (qty >= 0), amount numeric(10,2) CHECK (amount < 400))', s, s);
    EXECUTE format('CREATE TABLE %I.pair (a int, b int, v varchar(10) NOT NULL, PRIMARY KEY (a, b))', s);
    EXECUTE format('CREATE TABLE %I.castt (id int PRIMARY KEY, name text NOT NULL, amount numeric)', s);
    -- rows already in the target: duplicates in mode insert
    EXECUTE format('INSERT INTO %I.child VALUES (5, NULL, ''old'', 0, 0), (6, NULL, ''old'', 0, 0)', s);
    EXECUTE format('INSERT INTO %I.pair VALUES (7, 1, ''old'')', s);
END $$;
SELECT sw_targets('sw_off'), sw_targets('sw_on');
SELECT migrate_plan('sw_off', source_schema => 'sw_src', target_schema => 'sw_off',
                    options => '{"setwise_quarantine": false, "reject_limit": null}');
SELECT migrate_plan('sw_on', source_schema => 'sw_src', target_schema => 'sw_on',
                    options => '{"reject_limit": null}');
DO $$
DECLARE p text;
BEGIN
    FOREACH p IN ARRAY ARRAY['sw_off', 'sw_on'] LOOP
        PERFORM migrate_table(p, 'sw_parent', 'parent');
        PERFORM migrate_table(p, 'sw_child', 'child');
        -- rows 50, 100, ... share the key of the row before: duplicates within a batch
        PERFORM migrate_column(p, 'child', 'id', 'CASE WHEN s.id % 50 = 0 THEN s.id - 1 ELSE s.id END');
        PERFORM migrate_column(p, 'child', 'amount', 's.amount::numeric');
        -- a row a reject rule refuses gets no constraint reject; a warn
        -- finding of a row the target refuses is not kept (as bisection)
        PERFORM migrate_rule(p, 'child', 'not_111', 'id <> 111');
        PERFORM migrate_rule(p, 'child', 'qty_small', 'qty < 6', on_fail => 'warn');
        PERFORM migrate_table(p, 'sw_pair', 'pair', key => 'a, b');
    END LOOP;
END $$;
SET migrate.batch_size = 40;
SELECT migrate_run('sw_off') AS run_off \gset
SELECT migrate_run('sw_on') AS run_on \gset

-- counters: balanced; the predicted run needed no bisection
SELECT t.target::regclass, t.state, t.rows_read, t.rows_written, t.rows_rejected,
       t.rows_rejected_setwise, t.bisect_steps > 0 AS bisected,
       t.rows_read = t.rows_written + t.rows_rejected AS balanced
  FROM migrate.run_table t WHERE t.run_id IN (:run_off, :run_on) ORDER BY t.run_id, t.load_order;
SELECT sum(rows_rejected_setwise) AS setwise, sum(bisect_steps) AS steps
  FROM migrate.run_range WHERE run_id = :run_on;

-- the rejects: the same rows, reasons, messages and details as the oracle
CREATE VIEW sw_rejects AS
SELECT r.run_id, c.relname AS target, r.source_key, r.reason, r.message, r.detail, r.source_row, r.loaded
  FROM migrate.reject r JOIN pg_class c ON c.oid = r.target;
SELECT target, source_key, reason, message, detail, source_row, loaded FROM sw_rejects WHERE run_id = :run_off
EXCEPT
SELECT target, source_key, reason, message, detail, source_row, loaded FROM sw_rejects WHERE run_id = :run_on;
SELECT target, source_key, reason, message, detail, source_row, loaded FROM sw_rejects WHERE run_id = :run_on
EXCEPT
SELECT target, source_key, reason, message, detail, source_row, loaded FROM sw_rejects WHERE run_id = :run_off;
-- each class, as the target words it
SELECT target, reason, count(*), min(message) AS message, min(detail) AS detail
  FROM sw_rejects WHERE run_id = :run_on GROUP BY 1, 2 ORDER BY 1, 2;
-- a row breaking several constraints gets the first in PostgreSQL's order
SELECT source_key, reason, message, detail, loaded FROM sw_rejects
 WHERE run_id = :run_on AND source_key IN ('58', '87', '287', '49', '5', '111', '118') ORDER BY source_key::int, reason;
-- the refused in-batch duplicate is the later row (the earlier one loads)
SELECT source_key, source_row->>'id' AS source_id FROM sw_rejects
 WHERE run_id = :run_on AND reason = '23505' AND target = 'child' ORDER BY 1::int;
-- the loaded rows are the same
SELECT (SELECT count(*) FROM (SELECT * FROM sw_off.child EXCEPT SELECT * FROM sw_on.child) d) AS child_diff,
       (SELECT count(*) FROM (SELECT * FROM sw_on.child EXCEPT SELECT * FROM sw_off.child) d) AS child_diff2,
       (SELECT count(*) FROM (SELECT * FROM sw_off.pair EXCEPT SELECT * FROM sw_on.pair) d) AS pair_diff,
       (SELECT count(*) FROM (SELECT * FROM sw_on.pair EXCEPT SELECT * FROM sw_off.pair) d) AS pair_diff2,
       (SELECT count(*) FROM sw_on.child) AS child_rows, (SELECT count(*) FROM sw_on.pair) AS pair_rows;

-- a cast failure is nothing a constraint predicts: bisection isolates it,
-- the NOT NULL rows of the same table are still routed set-wise
SELECT migrate_plan('sw_cast', source_schema => 'sw_src', target_schema => 'sw_on',
                    options => '{"reject_limit": null}');
SELECT migrate_table('sw_cast', 'sw_cast', 'castt');
SELECT migrate_column('sw_cast', 'castt', 'amount', 's.amount::numeric');
SELECT migrate_run('sw_cast') AS run_cast \gset
SELECT rows_read, rows_written, rows_rejected, rows_rejected_setwise, bisect_steps > 0 AS bisected,
       rows_read = rows_written + rows_rejected AS balanced
  FROM migrate.run_table WHERE run_id = :run_cast;
SELECT reason, count(*), min(message) AS message FROM sw_rejects WHERE run_id = :run_cast GROUP BY 1 ORDER BY 1;

-- the statement shows the predictions (migrate_batch_statement)
SELECT position('migrate._fail(' IN s) > 0 AS routed, position('IS FALSE' IN s) > 0 AS checks
  FROM migrate_batch_statement('sw_on', 'sw_on.child') s;
