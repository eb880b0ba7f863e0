--
-- Foreign-key cycles and self-references (issue 12): a two-table cycle
-- (store.manager_staff_id -> staff, staff.store_id -> store, both NOT
-- NULL), a three-table one and a self-reference load fully with plan +
-- automap + run, with one and two workers and with defer_indexes: the
-- constraints that close a cycle are dropped for the load and come back,
-- validated, once both of their tables are loaded; their orphans go to
-- migrate.reject with 23503 and the constraint's message.  A plan whose
-- migrate_check() finds an error does not run unless forced.
--
\set SHOW_CONTEXT never
SET client_min_messages = warning;
\set regress_db :DBNAME

-- the source (postgres_fdw loopback), with a few deliberate orphans
\c migrate_src
SET client_min_messages = warning;
CREATE TABLE cyc_store (store_id int PRIMARY KEY, manager_staff_id int NOT NULL, name text);
CREATE TABLE cyc_staff (staff_id int PRIMARY KEY, store_id int NOT NULL, name text);
-- stores 1-40 managed by staff 10, 20, ... 400; staff 1-400 work in stores 1-40
INSERT INTO cyc_store SELECT s, s * 10, 'store ' || s FROM generate_series(1, 40) s;
INSERT INTO cyc_staff SELECT p, (p - 1) / 10 + 1, 'staff ' || p FROM generate_series(1, 400) p;
-- store 41: its manager does not exist; staff 401: its store does not
-- exist; store 42 is managed by staff 401 (refused, so store 42 goes too);
-- store 43's manager does not exist, and staff 402 and 403 work there (so
-- they go too, refused by their own foreign key)
INSERT INTO cyc_store VALUES (41, 999, 'no manager'), (42, 401, 'manager refused'), (43, 998, 'no manager, staff');
INSERT INTO cyc_staff VALUES (401, 777, 'no store'), (402, 43, 'in store 43'), (403, 43, 'in store 43 too');
-- a -> b -> c -> a (a.b_id nullable: the constraint the run drops)
CREATE TABLE cyc_a (id int PRIMARY KEY, b_id int, v text);
CREATE TABLE cyc_b (id int PRIMARY KEY, c_id int NOT NULL, v text);
CREATE TABLE cyc_c (id int PRIMARY KEY, a_id int NOT NULL, v text);
INSERT INTO cyc_a SELECT i, CASE WHEN i % 10 = 0 THEN NULL ELSE i END, 'a' || i FROM generate_series(1, 30) i;
INSERT INTO cyc_b SELECT i, 31 - i, 'b' || i FROM generate_series(1, 30) i;
INSERT INTO cyc_c SELECT i, i, 'c' || i FROM generate_series(1, 30) i;
INSERT INTO cyc_a VALUES (31, 999, 'orphan');
-- employees 1-50 report to 2, 4, ... 100 (managers come later in key
-- order); 101's manager does not exist, 102 reports to 101, 103 to 102
CREATE TABLE cyc_employee (id int PRIMARY KEY, manager_id int, name text);
INSERT INTO cyc_employee SELECT i, CASE WHEN i <= 50 THEN i * 2 END, 'emp ' || i FROM generate_series(1, 100) i;
INSERT INTO cyc_employee VALUES (101, 555, 'lost'), (102, 101, 'under lost'), (103, 102, 'under under lost');
\c :regress_db
\set SHOW_CONTEXT never
SET client_min_messages = warning;
SET migrate.batch_size = 25;
CREATE SCHEMA cyc_src;
IMPORT FOREIGN SCHEMA public LIMIT TO (cyc_store, cyc_staff, cyc_a, cyc_b, cyc_c, cyc_employee)
    FROM SERVER src INTO cyc_src;

-- the target schema, three times
CREATE FUNCTION test_cyc_target(p_schema text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format($ddl$
        CREATE SCHEMA %1$I;
        CREATE TABLE %1$I.cyc_store (store_id int PRIMARY KEY, manager_staff_id int NOT NULL, name text);
        CREATE TABLE %1$I.cyc_staff (staff_id int PRIMARY KEY,
                                     store_id int NOT NULL CONSTRAINT cyc_staff_store_fk REFERENCES %1$I.cyc_store,
                                     name text);
        CREATE INDEX cyc_staff_store ON %1$I.cyc_staff (store_id);
        ALTER TABLE %1$I.cyc_store ADD CONSTRAINT cyc_store_manager_fk
            FOREIGN KEY (manager_staff_id) REFERENCES %1$I.cyc_staff;
        CREATE TABLE %1$I.cyc_a (id int PRIMARY KEY, b_id int, v text);
        CREATE TABLE %1$I.cyc_b (id int PRIMARY KEY, c_id int NOT NULL, v text);
        CREATE TABLE %1$I.cyc_c (id int PRIMARY KEY, a_id int NOT NULL CONSTRAINT cyc_c_a_fk REFERENCES %1$I.cyc_a, v text);
        ALTER TABLE %1$I.cyc_a ADD CONSTRAINT cyc_a_b_fk FOREIGN KEY (b_id) REFERENCES %1$I.cyc_b;
        ALTER TABLE %1$I.cyc_b ADD CONSTRAINT cyc_b_c_fk FOREIGN KEY (c_id) REFERENCES %1$I.cyc_c;
        CREATE TABLE %1$I.cyc_employee (id int PRIMARY KEY,
                                        manager_id int CONSTRAINT cyc_employee_manager_fk REFERENCES %1$I.cyc_employee,
                                        name text);
    $ddl$, p_schema);
END $$;
SELECT test_cyc_target('cyc1'), test_cyc_target('cyc2'), test_cyc_target('cyc3');

-- the foreign keys of a schema, as pg_constraint has them
CREATE FUNCTION test_cyc_fks(p_schema text)
RETURNS TABLE (tab text, conname name, def text, convalidated boolean)
LANGUAGE sql AS $$
    SELECT c.conrelid::regclass::text, c.conname, pg_get_constraintdef(c.oid), c.convalidated
      FROM pg_constraint c
     WHERE c.connamespace = p_schema::regnamespace AND c.contype = 'f'
     ORDER BY 1, 2
$$;
CREATE TEMP TABLE cyc_fks_before AS SELECT * FROM test_cyc_fks('cyc1');
SELECT * FROM cyc_fks_before;

-- the oracle: the source's rows but the orphans (10 of them, listed), and
-- a checksum of a table's rows in key order
CREATE TEMP TABLE cyc_orphans (tab text, id int);
INSERT INTO cyc_orphans VALUES ('cyc_store', 41), ('cyc_store', 42), ('cyc_store', 43),
    ('cyc_staff', 401), ('cyc_staff', 402), ('cyc_staff', 403),
    ('cyc_a', 31), ('cyc_employee', 101), ('cyc_employee', 102), ('cyc_employee', 103);
CREATE FUNCTION test_cyc_sum(p_rel regclass, p_tab text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    sum text;
BEGIN
    EXECUTE format('SELECT count(*) || '' rows, '' || md5(coalesce(string_agg(t::text, '','' ORDER BY (to_jsonb(t)->>%L)::int), ''''))'
                   '  FROM %s t WHERE NOT EXISTS (SELECT 1 FROM cyc_orphans o WHERE o.tab = %L AND o.id = (to_jsonb(t)->>%L)::int)',
                   CASE p_tab WHEN 'cyc_store' THEN 'store_id' WHEN 'cyc_staff' THEN 'staff_id' ELSE 'id' END,
                   p_rel, p_tab,
                   CASE p_tab WHEN 'cyc_store' THEN 'store_id' WHEN 'cyc_staff' THEN 'staff_id' ELSE 'id' END)
       INTO sum;
    RETURN sum;
END $$;
-- does every table of a schema hold exactly the oracle's rows?
CREATE FUNCTION test_cyc_match(p_schema text)
RETURNS TABLE (tab text, target text, matches boolean)
LANGUAGE sql AS $$
    SELECT t, test_cyc_sum(format('%I.%I', p_schema, t)::regclass, t),
           test_cyc_sum(format('%I.%I', p_schema, t)::regclass, t) = test_cyc_sum(format('cyc_src.%I', t)::regclass, t)
      FROM unnest(ARRAY['cyc_store', 'cyc_staff', 'cyc_a', 'cyc_b', 'cyc_c', 'cyc_employee']) t
$$;
-- what was left out of the oracle: the source minus its orphans
SELECT t, test_cyc_sum(format('cyc_src.%I', t)::regclass, t) AS oracle
  FROM unnest(ARRAY['cyc_store', 'cyc_staff', 'cyc_a', 'cyc_b', 'cyc_c', 'cyc_employee']) t;

-- one worker, plan + automap
SELECT migrate_plan('cyc1', source_schema => 'cyc_src', target_schema => 'cyc1');
SELECT count(*) AS mapped FROM migrate_automap('cyc1') WHERE action <> 'no target table';
-- what the run will do, as info: the same constraints the run drops
SELECT * FROM migrate_check('cyc1') WHERE severity <> 'warning' OR message LIKE '%foreign key%';
SELECT conrelid, conname, cycle FROM migrate._fk_cycle_breaks(
    ARRAY(SELECT target::oid FROM migrate.table_map WHERE plan = 'cyc1')) ORDER BY conrelid::text, conname;
SELECT migrate_run('cyc1', parallel => 1) AS run1 \gset
SELECT state, error FROM migrate.run WHERE run_id = :run1;
-- parents first: the load order ignores the dropped constraints
SELECT target, load_order, depth, state, rows_read, rows_written, rows_rejected
  FROM migrate.run_table WHERE run_id = :run1 ORDER BY load_order;
SELECT target, range_no, kind, ref_target, state FROM migrate.run_range
 WHERE run_id = :run1 AND kind <> 'load' ORDER BY target::text, range_no;
-- the orphans, each with the constraint's own message
SELECT target, source_key, reason, message, detail FROM migrate.reject WHERE run_id = :run1
 ORDER BY target::text, source_key::int;
-- every constraint is back as it was, validated
SELECT (SELECT count(*) FROM test_cyc_fks('cyc1')) AS fks,
       (SELECT count(*) FROM test_cyc_fks('cyc1') a JOIN cyc_fks_before b USING (conname, def)
         WHERE a.convalidated) AS same_and_validated;
SELECT * FROM test_cyc_match('cyc1');

-- two workers
SELECT migrate_plan('cyc2', source_schema => 'cyc_src', target_schema => 'cyc2');
SELECT count(*) AS mapped FROM migrate_automap('cyc2') WHERE action <> 'no target table';
SELECT migrate_run('cyc2', parallel => 2) AS run2 \gset
SELECT state, parallel, error FROM migrate.run WHERE run_id = :run2;
SELECT target, load_order, depth, state, rows_read, rows_written, rows_rejected
  FROM migrate.run_table WHERE run_id = :run2 ORDER BY load_order;
-- each fk unit started after every load unit of its two tables ended
SELECT f.target, f.range_no, f.ref_target,
       f.started_at >= (SELECT max(l.finished_at) FROM migrate.run_range l
                         WHERE l.run_id = f.run_id AND l.kind = 'load' AND l.target IN (f.target, f.ref_target)) AS after_loads
  FROM migrate.run_range f WHERE f.run_id = :run2 AND f.kind = 'fk' ORDER BY f.target::text, f.range_no;
-- same rejects as with one worker
SELECT count(*) AS rejects,
       (SELECT count(*) FROM (SELECT target::text, source_key, reason, message, detail FROM migrate.reject WHERE run_id = :run1
                              EXCEPT
                              SELECT replace(target::text, 'cyc2.', 'cyc1.'), source_key, reason, message, detail
                                FROM migrate.reject WHERE run_id = :run2) d) AS different
  FROM migrate.reject WHERE run_id = :run2;
SELECT (SELECT count(*) FROM test_cyc_fks('cyc2')) AS fks,
       (SELECT count(*) FROM test_cyc_fks('cyc2') a JOIN cyc_fks_before b USING (conname)
         WHERE a.convalidated AND a.def = replace(b.def, 'cyc1.', 'cyc2.')) AS same_and_validated;
SELECT * FROM test_cyc_match('cyc2');

-- defer_indexes, two workers: every foreign key and index dropped, the
-- cycle's constraints come back once both tables are loaded
SELECT migrate_plan('cyc3', source_schema => 'cyc_src', target_schema => 'cyc3',
                    options => '{"defer_indexes": true}');
SELECT count(*) AS mapped FROM migrate_automap('cyc3') WHERE action <> 'no target table';
SELECT migrate_run('cyc3', parallel => 2) AS run3 \gset
SELECT state, error FROM migrate.run WHERE run_id = :run3;
SELECT target, load_order, depth, state, rows_read, rows_written, rows_rejected
  FROM migrate.run_table WHERE run_id = :run3 ORDER BY load_order;
SELECT target, range_no, kind, ref_target, state FROM migrate.run_range
 WHERE run_id = :run3 AND kind <> 'load' ORDER BY target::text, range_no;
SELECT f.target, f.range_no,
       f.started_at >= (SELECT max(l.finished_at) FROM migrate.run_range l
                         WHERE l.run_id = f.run_id AND l.kind = 'load' AND l.target IN (f.target, f.ref_target)) AS after_loads
  FROM migrate.run_range f WHERE f.run_id = :run3 AND f.kind = 'fk' ORDER BY f.target::text, f.range_no;
-- a cycle's unit comes after the other fk units of its tables (staff 401,
-- refused by staff's own foreign key, takes store 42 with it)
SELECT c.target, o.target AS other, c.started_at >= o.finished_at AS after_other
  FROM migrate.run_range c JOIN migrate.run_range o
    ON o.run_id = c.run_id AND o.kind = 'fk' AND o.range_no < 3000 AND o.target IN (c.target, c.ref_target)
 WHERE c.run_id = :run3 AND c.kind = 'fk' AND c.range_no >= 3000 ORDER BY c.target::text, o.target::text;
SELECT count(*) AS rejects,
       (SELECT count(*) FROM (SELECT target::text, source_key, reason, message, detail FROM migrate.reject WHERE run_id = :run1
                              EXCEPT
                              SELECT replace(target::text, 'cyc3.', 'cyc1.'), source_key, reason, message, detail
                                FROM migrate.reject WHERE run_id = :run3) d) AS different
  FROM migrate.reject WHERE run_id = :run3;
SELECT (SELECT count(*) FROM test_cyc_fks('cyc3')) AS fks,
       (SELECT count(*) FROM test_cyc_fks('cyc3') a JOIN cyc_fks_before b USING (conname)
         WHERE a.convalidated AND a.def = replace(b.def, 'cyc1.', 'cyc3.')) AS same_and_validated,
       (SELECT count(*) FROM pg_indexes WHERE schemaname = 'cyc3' AND indexname = 'cyc_staff_store') AS index_back;
SELECT * FROM test_cyc_match('cyc3');

-- every table's units add up to it, and read = written + rejected
SELECT t.run_id - :run1 AS run, t.target::text ~ 'cyc_st' AS cycle_table,
       bool_and(t.rows_read = t.rows_written + t.rows_rejected + t.rows_skipped) AS balanced,
       bool_and((t.rows_read, t.rows_written, t.rows_rejected) = (u.rd, u.wr, u.rj)) AS units_add_up
  FROM migrate.run_table t
  JOIN (SELECT run_id, target, sum(rows_read) AS rd, sum(rows_written) AS wr, sum(rows_rejected) AS rj
          FROM migrate.run_range GROUP BY 1, 2) u USING (run_id, target)
 WHERE t.run_id IN (:run1, :run2, :run3) GROUP BY 1, 2 ORDER BY 1, 2;

-- a second run into the loaded tables (mode upsert): the cycle is dropped
-- and restored again; the orphans are refused again, the rows stay the same
UPDATE migrate.table_map SET mode = 'upsert' WHERE plan = 'cyc1';
SELECT migrate_run('cyc1') AS run4 \gset
SELECT state, (SELECT count(*) FROM migrate.reject r WHERE r.run_id = :run4) AS rejects
  FROM migrate.run WHERE run_id = :run4;
SELECT (SELECT count(*) FROM test_cyc_fks('cyc1') WHERE convalidated) AS validated_fks;
SELECT * FROM test_cyc_match('cyc1');

-- a run that fails after its planning (an abort rule on staff 150): the
-- cycle's constraint stays dropped, its unit pending, until the resumed
-- run completes; then it is back, validated, and the rows are the oracle's
SELECT test_cyc_target('cyc4');
SELECT migrate_plan('cyc4', source_schema => 'cyc_src', target_schema => 'cyc4');
SELECT count(*) AS mapped FROM migrate_automap('cyc4') WHERE action <> 'no target table';
SELECT migrate_rule('cyc4', 'cyc_staff', 'not_150', 'staff_id <> 150', on_fail => 'abort');
SELECT test_error($$SELECT migrate_run('cyc4', parallel => 1)$$);
SELECT max(run_id) AS run7 FROM migrate.run WHERE plan = 'cyc4' \gset
SELECT state FROM migrate.run WHERE run_id = :run7;
SELECT target, kind, state FROM migrate.run_range WHERE run_id = :run7 AND kind = 'fk' ORDER BY target::text;
SELECT tab, conname FROM test_cyc_fks('cyc4');
SELECT migrate_rule('cyc4', 'cyc_staff', 'not_150', NULL);
SELECT migrate_resume(:run7) = :run7 AS resumed;
SELECT state, resumes FROM migrate.run WHERE run_id = :run7;
SELECT (SELECT count(*) FROM test_cyc_fks('cyc4')) AS fks,
       (SELECT count(*) FROM test_cyc_fks('cyc4') a JOIN cyc_fks_before b USING (conname)
         WHERE a.convalidated AND a.def = replace(b.def, 'cyc1.', 'cyc4.')) AS same_and_validated;
SELECT count(*) AS rejects,
       (SELECT count(*) FROM (SELECT target::text, source_key, reason, message, detail FROM migrate.reject WHERE run_id = :run1
                              EXCEPT
                              SELECT replace(target::text, 'cyc4.', 'cyc1.'), source_key, reason, message, detail
                                FROM migrate.reject WHERE run_id = :run7) d) AS different
  FROM migrate.reject WHERE run_id = :run7;
SELECT * FROM test_cyc_match('cyc4');

-- a plan owner that may not drop the constraint (not the table's owner:
-- the grants of a migrator role) leaves it in place, and says so; rows
-- that arrive in key order still load
CREATE ROLE regress_cyc_migrator;
CREATE SCHEMA cyc_local;
CREATE TABLE cyc_local.emp (id int PRIMARY KEY, manager_id int, name text);
INSERT INTO cyc_local.emp SELECT i, nullif(i - 1, 0), 'e' || i FROM generate_series(1, 40) i;
CREATE SCHEMA cyc5;
CREATE TABLE cyc5.emp (id int PRIMARY KEY, manager_id int CONSTRAINT emp_manager_fk REFERENCES cyc5.emp, name text);
GRANT USAGE ON SCHEMA cyc_local, cyc5 TO regress_cyc_migrator;
GRANT SELECT ON cyc_local.emp TO regress_cyc_migrator;
GRANT SELECT, INSERT ON cyc5.emp TO regress_cyc_migrator;
SELECT oid AS fk_oid FROM pg_constraint WHERE conname = 'emp_manager_fk' \gset
SET ROLE regress_cyc_migrator;
SELECT migrate_plan('cyc5', source_schema => 'cyc_local', target_schema => 'cyc5');
SELECT migrate_table('cyc5', 'emp', 'emp');
SELECT severity, table_name, column_name, message FROM migrate_check('cyc5') WHERE message LIKE 'foreign key%';
RESET ROLE;
SELECT migrate_run('cyc5') AS run8 \gset
SELECT state, (SELECT count(*) FROM migrate.run_range u WHERE u.run_id = :run8 AND u.kind <> 'load') AS fk_units,
       (SELECT rows_written FROM migrate.run_table t WHERE t.run_id = :run8) AS written,
       (SELECT oid FROM pg_constraint WHERE conname = 'emp_manager_fk') = :fk_oid AS same_constraint
  FROM migrate.run WHERE run_id = :run8;

-- a plan whose migrate_check() finds an error does not run (42P17, the
-- hint names the first finding), unless forced
CREATE TABLE cyc_err (staff_id int PRIMARY KEY, name text, region text NOT NULL);
CREATE TABLE cyc_ok (staff_id int PRIMARY KEY, name text);
-- (reject_limit null: the forced run may quarantine every row)
SELECT migrate_plan('cycerr', source_schema => 'cyc_src', options => '{"reject_limit": null}');
SELECT migrate_table('cycerr', 'cyc_staff', 'cyc_err');
SELECT migrate_table('cycerr', 'cyc_staff', 'cyc_ok');
SELECT severity, table_name, column_name, message FROM migrate_check('cycerr') WHERE severity = 'error';
SELECT test_error($$SELECT migrate_run('cycerr')$$);
SELECT count(*) AS runs FROM migrate.run WHERE plan = 'cycerr';
-- the run of the table without errors only is allowed
SELECT migrate_run('cycerr', tables => ARRAY['cyc_ok']) AS run5 \gset
SELECT target, state, rows_written FROM migrate.run_table WHERE run_id = :run5;
-- forced: it runs, and the target refuses every row (23502)
SELECT migrate_run('cycerr', tables => ARRAY['cyc_err'], force => true) AS run6 \gset
SELECT target, state, rows_read, rows_written, rows_rejected FROM migrate.run_table WHERE run_id = :run6;
SELECT reason, count(*) FROM migrate.reject WHERE run_id = :run6 GROUP BY 1;
