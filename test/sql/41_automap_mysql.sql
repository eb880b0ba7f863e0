--
-- migrate_automap cast rules for MySQL/MariaDB types as mysql_fdw 2.8
-- imports them (database migrate_types of test/mariadb/start.sh):
-- tinyint(1) -> boolean, zero dates -> NULL, enum -> text/enum, set ->
-- text[], year -> integer, unsigned integers widened, decimal(p,s) kept;
-- tables IMPORT FOREIGN SCHEMA skips are created; a DBA override wins.
--
\set SHOW_CONTEXT never
SET client_min_messages = warning;
\set mariadb_port 3307
\getenv mariadb_port MIGRATE_MARIADB_PORT
CREATE EXTENSION IF NOT EXISTS mysql_fdw;
CREATE SERVER types_src FOREIGN DATA WRAPPER mysql_fdw
    OPTIONS (host '127.0.0.1', port :'mariadb_port');
CREATE USER MAPPING FOR CURRENT_USER SERVER types_src
    OPTIONS (username 'migrate', password 'migrate');
-- Extras has SET and YEAR columns: mysql_fdw cannot import it
CREATE SCHEMA types_src;
IMPORT FOREIGN SCHEMA migrate_types EXCEPT ("Extras") FROM SERVER types_src INTO types_src
    OPTIONS (import_enum_as_text 'true');
SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute
 WHERE attrelid = 'types_src."Gadget"'::regclass AND attnum > 0 ORDER BY attnum;

CREATE SCHEMA types_tgt;
CREATE TYPE types_tgt.color AS ENUM ('red', 'green', 'blue');
CREATE TABLE types_tgt.gadget (
    gadget_id   bigint PRIMARY KEY,
    is_active   boolean NOT NULL,
    small_count integer,
    big_count   numeric(20),
    made_at     timestamp,
    sold_on     date,
    color       types_tgt.color,
    price       numeric(8,2),
    label       varchar(10),
    note        text NOT NULL DEFAULT 'none'
);
CREATE TABLE types_tgt.extras (
    extras_id   integer PRIMARY KEY,
    tags        text[],
    model_year  integer
);
SELECT migrate_plan('types', source_server => 'types_src', source_schema => 'types_src',
                    target_schema => 'types_tgt', options => '{"remote_schema": "migrate_types"}');
SELECT target, source, column_name, source_column, expr, action
  FROM migrate_automap('types') ORDER BY target::text, column_name NULLS FIRST, action;
SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute
 WHERE attrelid = 'types_src."Gadget"'::regclass AND attnum > 0 ORDER BY attnum;

-- static findings: the label is narrowed from varchar(30) to varchar(10)
SELECT * FROM migrate_check('types');
-- the profile sees the label that will not fit, before any row moves
SELECT target, source_column, source_type, target_column, rows, nulls, distinct_values,
       min_value, max_value, min_length, max_length, cast_failures, not_null_violations
  FROM migrate_profile('types') ORDER BY target::text, profile_id;

-- the DBA overrides one cast: a later migrate_column wins, and automap keeps it
SELECT migrate_column('types', 'gadget', 'label', 'left(s."Label", 10)');
SELECT column_name, expr, action FROM migrate_automap('types')
 WHERE target = 'types_tgt.gadget'::regclass AND column_name IN ('label', 'is_active');
SELECT target_column, cast_failures FROM migrate_profile('types')
 WHERE target_column = 'label';

SELECT migrate_run('types') > 0 AS ran;
SELECT t.* FROM test_counts((SELECT max(run_id) FROM migrate.run WHERE plan = 'types')) t;
SELECT * FROM types_tgt.gadget ORDER BY gadget_id;
SELECT * FROM types_tgt.extras ORDER BY extras_id;

-- alter_source => false: automap leaves the foreign tables as imported
CREATE SCHEMA types_src2;
IMPORT FOREIGN SCHEMA migrate_types LIMIT TO ("Gadget") FROM SERVER types_src INTO types_src2
    OPTIONS (import_enum_as_text 'true');
CREATE SCHEMA types_tgt2;
CREATE TABLE types_tgt2.gadget (gadget_id bigint PRIMARY KEY, is_active boolean, made_at timestamp);
SELECT migrate_plan('types2', source_schema => 'types_src2', target_schema => 'types_tgt2',
                    options => '{"automap": {"alter_source": false}}');
SELECT column_name, expr, action FROM migrate_automap('types2') WHERE column_name IS NOT NULL
 ORDER BY column_name;
SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute
 WHERE attrelid = 'types_src2."Gadget"'::regclass AND attname IN ('GadgetId', 'MadeAt') ORDER BY attnum;

-- migrate_plan imports the MySQL schema itself (the source schema does not
-- exist yet): an ENUM column arrives as text (import_enum_as_text), which
-- automap casts to the target's enum; the run loads what the hand-imported
-- plan loaded (but for the label that plan cut with an override: 22001 here)
CREATE SCHEMA types_tgt3;
CREATE TABLE types_tgt3.gadget (LIKE types_tgt.gadget INCLUDING ALL);
SELECT migrate_plan('types3', source_server => 'types_src', source_schema => 'types_src3',
                    target_schema => 'types_tgt3', options => '{"remote_schema": "migrate_types", "reject_limit": null}');
SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute
 WHERE attrelid = 'types_src3."Gadget"'::regclass AND attname = 'Color';
SELECT count(*) > 0 AS mapped FROM migrate_automap('types3') WHERE target = 'types_tgt3.gadget'::regclass;
SELECT migrate_run('types3', tables => ARRAY['gadget']) > 0 AS ran;
SELECT t.* FROM test_counts((SELECT max(run_id) FROM migrate.run WHERE plan = 'types3')) t;
SELECT reason, message FROM migrate.reject WHERE run_id = (SELECT max(run_id) FROM migrate.run WHERE plan = 'types3');
SELECT count(*) AS same_rows_as_by_hand, count(*) FILTER (WHERE g3 IS DISTINCT FROM g) AS differing
  FROM types_tgt3.gadget g3 JOIN types_tgt.gadget g USING (gadget_id);
