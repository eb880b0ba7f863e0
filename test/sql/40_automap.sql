--
-- migrate_automap, migrate_check and migrate_profile on the postgres_fdw
-- fixture (schema legacy): name matching across case and snake_case,
-- existing mappings kept, generic casts, static findings, the profile.
--
\set SHOW_CONTEXT never
SET client_min_messages = warning;
CREATE SCHEMA am;
CREATE TABLE am.customers (
    id          integer PRIMARY KEY,
    name        text,
    email       varchar(16),                 -- narrower than the source: lossy
    country     char(2),
    status      text NOT NULL,
    amount      numeric(8,2),                -- from text: 'n/a' fails the cast
    signup      date,
    region      text NOT NULL                -- no source column, no default
);
CREATE TABLE am."Orders" (                   -- CamelCase target, snake_case source
    "Id"         integer PRIMARY KEY,
    "CustomerId" integer REFERENCES am.customers,
    "Total"      numeric(6,2),
    "Placed"     timestamp
);
-- a foreign-key cycle: codes -> pairs -> codes
CREATE TABLE am.pairs (a integer, b integer, v text, code text, PRIMARY KEY (a, b));
CREATE TABLE am.codes (code text PRIMARY KEY, label text, a integer, b integer,
                       FOREIGN KEY (a, b) REFERENCES am.pairs);
ALTER TABLE am.pairs ADD FOREIGN KEY (code) REFERENCES am.codes;
CREATE TABLE am.audit (note text);           -- no source, no primary key
-- folding ignores underscores: item_s takes legacy.items
CREATE TABLE am.item_s (id bigint PRIMARY KEY);

SELECT migrate_plan('am', source_schema => 'legacy', target_schema => 'am');
-- an explicit mapping made before automap is kept
SELECT migrate_table('am', 'customers', 'customers');
SELECT migrate_column('am', 'customers', 'email', 'lower(s.email)');
-- (other test files add source tables to legacy: only nullkeys is shown
-- of those left unmapped)
SELECT target, source, column_name, source_column, expr, action
  FROM migrate_automap('am')
 WHERE action <> 'no target table' OR source = 'legacy.nullkeys'
 ORDER BY target::text NULLS LAST, column_name NULLS FIRST, source;
SELECT target, column_name, expr FROM migrate.column_map WHERE plan = 'am' ORDER BY 1, 2;

-- errors
SELECT test_error($$SELECT migrate_automap('nope')$$);
SELECT migrate_plan('am_nosrc', target_schema => 'am');
SELECT test_error($$SELECT migrate_automap('am_nosrc')$$);

-- static findings, before any row moves
SELECT * FROM migrate_check('am')
 WHERE table_name NOT LIKE 'legacy.%' OR table_name = 'legacy.nullkeys';
SELECT test_error($$SELECT * FROM migrate_check('nope')$$);
-- a BEFORE INSERT row trigger may fill the NOT NULL column: a warning that
-- names it, not an error (a disabled trigger does not count)
CREATE FUNCTION am.fill_region() RETURNS trigger LANGUAGE plpgsql AS
$$ BEGIN NEW.region := coalesce(NEW.region, 'EU'); RETURN NEW; END $$;
CREATE TRIGGER fill_region BEFORE INSERT ON am.customers FOR EACH ROW EXECUTE FUNCTION am.fill_region();
SELECT severity, column_name, message FROM migrate_check('am') WHERE column_name = 'region';
ALTER TABLE am.customers DISABLE TRIGGER fill_region;
SELECT severity, column_name FROM migrate_check('am') WHERE column_name = 'region';
DROP TRIGGER fill_region ON am.customers;
DROP FUNCTION am.fill_region();

-- the profile: counts, lengths, what the load will refuse
SELECT target, source_column, source_type, target_column, target_type, rows, nulls,
       distinct_values, min_value, max_value, min_length, max_length,
       cast_failures, not_null_violations
  FROM migrate_profile('am') ORDER BY target::text, profile_id;
SELECT count(*) AS stored FROM migrate.profile_result WHERE plan = 'am';
-- a second profile replaces the first
SELECT count(*) FROM migrate_profile('am');
SELECT count(*) AS stored FROM migrate.profile_result WHERE plan = 'am';
SELECT test_error($$SELECT * FROM migrate_profile('nope')$$);

-- the cast probe itself
SELECT migrate._cast_fails('12.345'::text, 'numeric'::regtype, (8 << 16 | 2) + 4) AS fits,
       migrate._cast_fails('1234567.8'::text, 'numeric'::regtype, (8 << 16 | 2) + 4) AS too_big,
       migrate._cast_fails('abc'::text, 'integer'::regtype, -1) AS not_a_number,
       migrate._cast_fails('abcd '::varchar, 'varchar'::regtype, 4 + 4) AS trailing_blank_fits,
       migrate._cast_fails(3000000000::bigint, 'integer'::regtype, -1) AS out_of_range,
       migrate._cast_fails(NULL::text, 'integer'::regtype, -1) AS null_never_fails,
       migrate._cast_fails(now(), 'integer'::regtype, -1) AS no_cast;
SELECT migrate._name_key('InvoiceLine') = migrate._name_key('invoice_line') AS folded,
       migrate._expr_columns('coalesce(s."BillingCity", s.city, s."a""b") || s') AS reads;
