--
-- Issue 11, findings 6, 11, 12 and sensitive columns in rejects:
--  * no user text is ever a format string: filters, expressions, rules and
--    table names with % in them load exactly the rows they say;
--  * limits: migrate.max_workers and migrate.max_workers_total are for
--    superusers; parallel is bounded by the cap; index rebuilds use the
--    caller's maintenance_work_mem, or the plan's;
--  * the plan lock is not an SQL advisory lock: another role holding the
--    advisory locks of the plan's old key does not block a run;
--  * values of sensitive columns appear nowhere in rejects or run state,
--    while the other columns still show.
-- (Worker slots held by a live run: test/isolation/specs/worker_slots.spec.)
--
\set SHOW_CONTEXT never
SET client_min_messages = warning;
CREATE ROLE regress_lim_user LOGIN;

-- ---------------------------------------------------------------------
-- Format strings (finding 6)
-- ---------------------------------------------------------------------
CREATE TABLE lim_codes (code text PRIMARY KEY, label text);
CREATE TABLE lim_codes2 (code text PRIMARY KEY, label text);
CREATE TABLE "pct%s_parent" (code text PRIMARY KEY);
CREATE TABLE "pct%s_child" (id int PRIMARY KEY, code text REFERENCES "pct%s_parent");
CREATE TABLE legacy.lim_pct_child (id int, code text);
INSERT INTO legacy.lim_pct_child SELECT g, 'k' || lpad((g * 3)::text, 4, '0') FROM generate_series(19, 22) g;
SELECT migrate_plan('lim_fmt', source_schema => 'legacy', options => '{"defer_indexes": true, "reject_limit": null}');
-- a LIKE pattern ('label 1%': 111 rows), read in parallel (cut at quantiles)
SELECT migrate_table('lim_fmt', 'codes', 'lim_codes', filter => $$s.label LIKE 'label 1%'$$);
-- %s and %n in a filter, an expression and a rule
SELECT migrate_table('lim_fmt', 'codes', 'lim_codes2',
                     filter => $$s.label <> '%s%n%s%n' AND s.code LIKE 'k00%'$$);
SELECT migrate_column('lim_fmt', 'lim_codes2', 'label', $$s.label || ' %s%n'$$);
SELECT migrate_rule('lim_fmt', 'lim_codes2', 'not_5', $$label <> 'label 5 %s%n'$$);
-- the parent of a deferred foreign key named with %s: its orphans' detail
SELECT migrate_table('lim_fmt', 'codes', '"pct%s_parent"', filter => $$s.code <= 'k0060'$$);
SELECT migrate_table('lim_fmt', 'lim_pct_child', '"pct%s_child"');

-- another role holds every SQL advisory lock of the plan's old key (class
-- "migr", hashtext(plan), both the int4 pair and the int8 form): the run
-- is not blocked (finding 12)
SET ROLE regress_lim_user;
SELECT pg_advisory_lock(1835624306, hashtext('lim_fmt'));
SELECT pg_advisory_lock((1835624306::bigint << 32) | (hashtext('lim_fmt')::bigint & 4294967295));
SELECT pg_advisory_lock_shared(1835624306, hashtext('lim_fmt'));
RESET ROLE;
SELECT migrate._plan_locked('lim_fmt') AS locked;

SET migrate.batch_size = 20;
SELECT migrate_run('lim_fmt', parallel => 2) AS run \gset
SELECT pg_advisory_unlock_all();
SELECT state, error FROM migrate.run WHERE run_id = :run;
SELECT * FROM test_counts(:run);
SELECT count(*) AS loaded, count(*) = (SELECT count(*) FROM legacy.codes s WHERE s.label LIKE 'label 1%') AS exact,
       bool_and(label LIKE 'label 1%') AS all_match
  FROM lim_codes;
SELECT count(*) AS loaded, min(code), max(code), bool_and(label LIKE '% \%s\%n') AS suffixed,
       count(*) FILTER (WHERE label = 'label 5 %s%n') AS ruled_out
  FROM lim_codes2;
SELECT target, source_key, reason, message, detail, source_row
  FROM migrate.reject WHERE run_id = :run ORDER BY target::text, source_key;
RESET migrate.batch_size;

-- ---------------------------------------------------------------------
-- Limits (finding 11)
-- ---------------------------------------------------------------------
SET ROLE regress_lim_user;
SELECT test_error('SET migrate.max_workers = 4');
SELECT test_error('SET migrate.max_workers_total = 100');
SELECT test_error($$UPDATE migrate.run SET parallel = 1000$$);
RESET ROLE;
SHOW migrate.max_workers_total;
SELECT test_error($$UPDATE migrate.run SET parallel = 1000 WHERE run_id = $$ || :run);
SET migrate.max_workers_total = 2;
SELECT test_error($$SELECT migrate_run('lim_fmt', parallel => 3)$$);
SET migrate.max_workers_total = 1024;
SELECT test_error($$SELECT migrate_run('lim_fmt', parallel => 65)$$);
-- migrate.max_workers above the cap: the cap
SET migrate.max_workers = 4;
SET migrate.max_workers_total = 1;
TRUNCATE lim_codes, lim_codes2, "pct%s_child", "pct%s_parent";
SELECT migrate_run('lim_fmt') AS run \gset
SELECT state, parallel FROM migrate.run WHERE run_id = :run;
RESET migrate.max_workers;
RESET migrate.max_workers_total;

-- the run's own SQL cannot give up its worker slot (or plan lock) and go
-- on beyond the cap: pg_advisory_unlock_all() in an expression stops it
CREATE TABLE lim_unlock (code text PRIMARY KEY, label text);
SELECT migrate_plan('lim_unlock', source_schema => 'legacy');
SELECT migrate_table('lim_unlock', 'codes', 'lim_unlock');
SELECT migrate_column('lim_unlock', 'lim_unlock', 'label', 's.label || left(pg_advisory_unlock_all()::text, 0)');
SET migrate.batch_size = 100;
SELECT regexp_replace(regexp_replace(test_error($$SELECT migrate_run('lim_unlock')$$),
                      'run \d+', 'run N', 'g'), 'resume\(\d+\)', 'resume(N)') AS error;
SELECT state, error ~ 'lost its worker slot' AS lost_slot FROM migrate.run WHERE plan = 'lim_unlock';
RESET migrate.batch_size;

-- index rebuilds sort with the caller's maintenance_work_mem (kept in the
-- run), or the plan's option, never a fixed 512MB: the index expression
-- reports the setting it is built under
CREATE TABLE legacy.lim_mwm (id int, v int);
INSERT INTO legacy.lim_mwm SELECT g, g FROM generate_series(1, 10) g;
CREATE TABLE lim_mwm (id int PRIMARY KEY, v int);
CREATE FUNCTION lim_mwm_probe(v int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF v = 1 THEN
        RAISE EXCEPTION 'built with maintenance_work_mem %', current_setting('maintenance_work_mem');
    END IF;
    RETURN v;
END $$;
CREATE INDEX lim_mwm_probe_idx ON lim_mwm (lim_mwm_probe(v));
SELECT migrate_plan('lim_mwm', source_schema => 'legacy', options => '{"defer_indexes": true}');
SELECT migrate_table('lim_mwm', 'lim_mwm', 'lim_mwm');
SET maintenance_work_mem = '5MB';
SELECT test_error($$SELECT migrate_run('lim_mwm')$$);
SELECT state, maintenance_work_mem FROM migrate.run WHERE plan = 'lim_mwm';
TRUNCATE lim_mwm;
CREATE INDEX lim_mwm_probe_idx ON lim_mwm (lim_mwm_probe(v));
SELECT migrate_plan('lim_mwm', source_schema => 'legacy',
                    options => '{"defer_indexes": true, "maintenance_work_mem": "7MB"}');
SELECT test_error($$SELECT migrate_run('lim_mwm')$$);
RESET maintenance_work_mem;

-- ---------------------------------------------------------------------
-- Sensitive columns in rejects
-- ---------------------------------------------------------------------
CREATE TABLE legacy.lim_people (id int, ssn text, name text);
INSERT INTO legacy.lim_people VALUES
    (1, '900000001', 'Ann'),
    (2, '900000001', 'Bob'),        -- unique violation on the sensitive column
    (3, '9000O0003', 'Cid'),        -- cast error on it
    (4, '900000004', 'Dan'),
    (5, '900000005', 'Mallory'),    -- fails a rule
    (6, '900000006', NULL),         -- NOT NULL violation: the detail shows the row
    (7, '900000007', 'Gus');
CREATE TABLE lim_people (id int PRIMARY KEY, ssn bigint UNIQUE, name text NOT NULL);
CREATE TABLE legacy.lim_visit (id int, person_ssn text, note text);
INSERT INTO legacy.lim_visit VALUES (1, '900000001', 'ok'), (2, '900000099', 'orphan');
CREATE TABLE lim_visit (id int PRIMARY KEY, person_ssn bigint REFERENCES lim_people (ssn), note text);
CREATE INDEX ON lim_visit (note);
CREATE TABLE legacy.lim_card (card_no text, holder text);
INSERT INTO legacy.lim_card VALUES ('4111222233334444', 'Ann'), ('5500666677778888', 'Eve');
CREATE TABLE lim_card (card text PRIMARY KEY, holder text);
SELECT migrate_plan('lim_sens', source_schema => 'legacy', options => '{"defer_indexes": true, "reject_limit": null}');
SELECT migrate_table('lim_sens', 'lim_people', 'lim_people');
SELECT migrate_column('lim_sens', 'lim_people', 'ssn', 's.ssn::bigint');
SELECT migrate_rule('lim_sens', 'lim_people', 'no_mallory', $$name IS DISTINCT FROM 'Mallory'$$);
SELECT migrate_table('lim_sens', 'lim_visit', 'lim_visit');
SELECT migrate_column('lim_sens', 'lim_visit', 'person_ssn', 's.person_ssn::bigint');
-- the key itself is sensitive
SELECT migrate_table('lim_sens', 'lim_card', 'lim_card');
SELECT migrate_column('lim_sens', 'lim_card', 'card', 's.card_no');
SELECT migrate_rule('lim_sens', 'lim_card', 'no_eve', $$holder <> 'Eve'$$);
INSERT INTO migrate.sensitive_column VALUES ('lim_sens', 'lim_people', 'ssn'),
    ('lim_sens', 'lim_visit', 'person_ssn'), ('lim_sens', 'lim_card', 'card_no');
SET migrate.batch_size = 2;
SELECT migrate_run('lim_sens', parallel => 2) AS run \gset
RESET migrate.batch_size;
SELECT state, error FROM migrate.run WHERE run_id = :run;
SELECT * FROM test_counts(:run);
-- the rejects say why, and show the other columns
SELECT target, source_key, reason, message, detail, source_row
  FROM migrate.reject WHERE run_id = :run ORDER BY target::text, source_key, reason;
-- no sensitive value anywhere in the rejects or the run's state
SELECT 'reject' AS tbl, count(*) FROM migrate.reject r
 WHERE r::text ~ '90000000[0-9]|9000O0003|900000099|4111222233334444|5500666677778888'
UNION ALL
SELECT 'run', count(*) FROM migrate.run r
 WHERE r::text ~ '90000000[0-9]|9000O0003|900000099|4111222233334444|5500666677778888'
UNION ALL
SELECT 'run_table', count(*) FROM migrate.run_table r
 WHERE r::text ~ '90000000[0-9]|9000O0003|900000099|4111222233334444|5500666677778888'
UNION ALL
SELECT 'run_range', count(*) FROM migrate.run_range r
 WHERE (to_jsonb(r) - 'last_key')::text ~ '90000000[0-9]|9000O0003|900000099|4111222233334444|5500666677778888'
UNION ALL
SELECT 'event', count(*) FROM migrate.event r
 WHERE r::text ~ '90000000[0-9]|9000O0003|900000099|4111222233334444|5500666677778888';
-- a sensitive key is not cut into ranges (their bounds would be stored)
-- and its table shows its checkpoint as ***; the unit's own checkpoint
-- keeps the key, which migrate_resume() continues after (a known limit)
-- (the other tables' last_key is whichever of their ranges' workers
-- checkpointed last: only whether it is masked is asserted)
SELECT target, last_key = '***' AS masked, last_key IS NOT NULL AS checkpointed
  FROM migrate.run_table WHERE run_id = :run ORDER BY target::text;
SELECT target, range_no, lo, hi, last_key IS NOT NULL AS checkpointed
  FROM migrate.run_range WHERE run_id = :run AND kind = 'load' ORDER BY target::text, range_no;
-- positive control: the loaded rows keep their values
SELECT id, ssn, name FROM lim_people ORDER BY id;
SELECT * FROM lim_card;

-- an abort rule on a row with a sensitive key: the run's error names the
-- rule and not the key
CREATE TABLE lim_card2 (card text PRIMARY KEY, holder text);
SELECT migrate_plan('lim_abort', source_schema => 'legacy');
SELECT migrate_table('lim_abort', 'lim_card', 'lim_card2');
SELECT migrate_column('lim_abort', 'lim_card2', 'card', 's.card_no');
SELECT migrate_rule('lim_abort', 'lim_card2', 'no_eve', $$holder <> 'Eve'$$, on_fail => 'abort');
INSERT INTO migrate.sensitive_column VALUES ('lim_abort', 'lim_card2', 'card_no');
SELECT test_error($$SELECT migrate_run('lim_abort')$$);
SELECT state, error FROM migrate.run WHERE plan = 'lim_abort';
SELECT count(*) AS leaks FROM migrate.run_range r JOIN migrate.run USING (run_id)
 WHERE plan = 'lim_abort' AND r::text ~ '4111222233334444|5500666677778888';

-- an unprivileged owner (the documented grants) runs her own plan and
-- sees her own rejects, masked for her too; another role sees none
CREATE ROLE regress_lim_owner;
CREATE SCHEMA lim_osrc;
CREATE TABLE lim_osrc.people (id int PRIMARY KEY, ssn text, name text);
INSERT INTO lim_osrc.people VALUES (1, '900000011', 'Ann'), (2, '9000000x2', 'Bob'), (3, '900000011', 'Cid');
CREATE SCHEMA lim_otgt;
CREATE TABLE lim_otgt.people (id int PRIMARY KEY, ssn bigint UNIQUE, name text);
GRANT USAGE ON SCHEMA lim_osrc, lim_otgt TO regress_lim_owner;
GRANT SELECT ON lim_osrc.people TO regress_lim_owner;
GRANT SELECT, INSERT, UPDATE, DELETE ON lim_otgt.people TO regress_lim_owner;
SET ROLE regress_lim_owner;
SELECT migrate_plan('lim_owned', source_schema => 'lim_osrc', target_schema => 'lim_otgt',
                    options => '{"reject_limit": null}');
SELECT migrate_table('lim_owned', 'people', 'people');
SELECT migrate_column('lim_owned', 'people', 'ssn', 's.ssn::bigint');
INSERT INTO migrate.sensitive_column VALUES ('lim_owned', 'lim_otgt.people', 'ssn');
SELECT migrate_run('lim_owned') AS run \gset
SELECT state, owner FROM migrate.run WHERE run_id = :run;
SELECT source_key, reason, message, detail, source_row FROM migrate.reject WHERE run_id = :run ORDER BY source_key;
SELECT count(*) AS leaks FROM migrate.reject r WHERE r::text ~ '900000011|9000000x2';
SELECT id, ssn, name FROM lim_otgt.people ORDER BY id;
RESET ROLE;
SET ROLE regress_lim_user;
SELECT count(*) AS rejects_others_see FROM migrate.reject WHERE run_id = :run;
RESET ROLE;

-- clean up the owner's plan (its rows name the role)
DELETE FROM migrate.run WHERE plan = 'lim_owned';
DELETE FROM migrate.event WHERE plan = 'lim_owned';
DELETE FROM migrate.plan WHERE plan_name = 'lim_owned';
DROP SCHEMA lim_osrc, lim_otgt CASCADE;
DROP ROLE regress_lim_user, regress_lim_owner;
