-- File sources read as more loaders read them (0.12): ragged_lines (a
-- record of one line with fewer fields than columns reads the missing
-- trailing ones as NULL, one with more drops the extra ones; a record of
-- several lines is still held to the count, so a stray quote swallows
-- nothing), encoding ascii (7-bit and checked: a line with a byte above
-- 0x7F is a 22P04 reject; SQL_ASCII takes any byte); and a plan's
-- settings (configuration parameters its workers, verify and diff run
-- with: DateStyle, TimeZone), refused at migrate_plan when its owner could
-- not set them, and again by the workers; the caller's session keeps its own.
\set SHOW_CONTEXT never
SET client_min_messages = warning;
SET datestyle = ISO, YMD;
SET timezone = 'UTC';
SELECT '/tmp/migrate_regress_loader_' || current_setting('port') AS dir \gset
\i test/sql/include/file_dir.sql

-- ragged lines: a trailing delimiter, a short line, a long line, a quoted
-- field over two lines, and a record over two lines with an extra field
SELECT pg_temp.write_file(:'dir' || '/ragged.txt', convert_to(
       E'1|one|2006-11-11|\n'
    || E'2|short|\n'
    || E'3|shorter\n'
    || E'4|long|2014-01-23|hello|there|\n'
    || E'\n'
    || E'5|"quoted|over\ntwo lines"|2020-02-02|\n'
    || E'6|"spans\ntwo"|2020-02-02||extra\n'
    || E'7|last|2020-03-03|\n', 'UTF8'));
CREATE TABLE ragged (id int PRIMARY KEY, label text, day date);
CREATE TABLE counted (id int PRIMARY KEY, label text, day date);
SELECT migrate_plan('loader', options => '{"reject_limit": null}');
SELECT migrate_file('loader', 'ragged', :'dir' || '/ragged.txt', header => false, delimiter => '|',
                    columns => ARRAY['id', 'label', 'day', 'trailing'], ragged_lines => true) IS NOT NULL AS mapped;
SELECT ftoptions FROM pg_foreign_table WHERE ftrelid = 'ragged_file'::regclass;
-- the default: another number of fields is the line's reject
SELECT migrate_file('loader', 'counted', :'dir' || '/ragged.txt', header => false, delimiter => '|',
                    columns => ARRAY['id', 'label', 'day', 'trailing']) IS NOT NULL AS mapped;
SELECT migrate_run('loader') AS run \gset
SELECT 'ragged' AS t, id, label, day FROM ragged
UNION ALL SELECT 'counted', id, label, day FROM counted ORDER BY 1, 2;
SELECT target, regexp_replace(source_key, '^.*/', '') AS key, reason, message, source_row->>'_raw' AS raw
  FROM migrate.reject WHERE run_id = :run ORDER BY 1, 2;
SELECT target, rows_read, rows_written, rows_rejected
  FROM migrate.run_table WHERE run_id = :run ORDER BY 1;
SELECT target, check_name, ok FROM migrate_verify('loader', :run) ORDER BY 1, 2;
-- any scan of the foreign table reads so
SELECT id, label, day, "trailing" FROM ragged_file WHERE _error IS NULL ORDER BY _line;

-- encoding ascii: 7-bit, checked; SQL_ASCII: any byte, unchecked
SELECT pg_temp.write_file(:'dir' || '/ascii.txt', convert_to(E'1|plain\n2|h\u00e9h\u00e9\n3|again\n', 'UTF8'));
CREATE TABLE ascii7 (id int PRIMARY KEY, v text);
CREATE TABLE anybyte (id int PRIMARY KEY, v text);
SELECT migrate_file('loader', 'ascii7', :'dir' || '/ascii.txt', format => 'text', header => false,
                    delimiter => '|', encoding => 'ascii', columns => ARRAY['id', 'v']) IS NOT NULL AS mapped;
SELECT migrate_file('loader', 'anybyte', :'dir' || '/ascii.txt', format => 'text', header => false,
                    delimiter => '|', encoding => 'SQL_ASCII', columns => ARRAY['id', 'v']) IS NOT NULL AS mapped;
SELECT migrate_run('loader', tables => ARRAY['ascii7', 'anybyte']) AS run2 \gset
SELECT 'ascii7' AS t, id, v FROM ascii7 UNION ALL SELECT 'anybyte', id, v FROM anybyte ORDER BY 1, 2;
SELECT target, regexp_replace(source_key, '^.*/', '') AS key, reason, message
  FROM migrate.reject WHERE run_id = :run2 ORDER BY 1, 2;

-- a plan's settings: dates written day first, times of another zone
SELECT pg_temp.write_file(:'dir' || '/dmy.csv', convert_to(
       E'id,day,at\n1,13/11/2006,2014-10-02 00:33:13\n2,10/7/6,1999-10-02 00:33:12.5\n3,2006-05-12,2018-01-09 19:24:59\n', 'UTF8'));
CREATE TABLE dmy (id int PRIMARY KEY, day date, at timestamptz);
SELECT migrate_plan('dmy', options => '{"reject_limit": null, "settings": {"DateStyle": "ISO, DMY", "TimeZone": "Europe/Paris"}}');
SELECT migrate_file('dmy', 'dmy', :'dir' || '/dmy.csv') IS NOT NULL AS mapped;
SELECT migrate_run('dmy') AS run3 \gset
SELECT id, day, at FROM dmy ORDER BY id;
SELECT count(*) AS rejects FROM migrate.reject WHERE run_id = :run3;
-- verify and diff read the file with the same settings; the caller's session keeps its own
SELECT check_name, ok FROM migrate_verify('dmy', :run3) ORDER BY 1;
SELECT count(*) AS differences FROM migrate_diff('dmy', 'dmy');
SHOW DateStyle;
SHOW TimeZone;
-- two workers on the same file read it so too
TRUNCATE dmy;
SELECT migrate_run('dmy', parallel => 2) AS run4 \gset
SELECT count(*) AS rows, count(*) FILTER (WHERE day = '2006-11-13' OR day = '2006-07-10' OR day = '2006-05-12') AS read_day_first
  FROM dmy;
-- without the settings, the same file does not read as the same dates
CREATE TABLE mdy (id int PRIMARY KEY, day date, at timestamptz);
SELECT migrate_plan('mdy', options => '{"reject_limit": null}');
SELECT migrate_file('mdy', 'mdy', :'dir' || '/dmy.csv') IS NOT NULL AS mapped;
SELECT migrate_run('mdy') AS run5 \gset
SELECT id, day, at FROM mdy ORDER BY id;
SELECT regexp_replace(source_key, '^.*/', '') AS key, reason, message
  FROM migrate.reject WHERE run_id = :run5 ORDER BY 1;

-- settings a run could not set are refused, nothing stored
\set VERBOSITY sqlstate
SELECT migrate_plan('bad_settings', options => '{"settings": {"no_such_parameter": "1"}}');
SELECT migrate_plan('bad_settings', options => '{"settings": {"DateStyle": "sideways"}}');
SELECT migrate_plan('bad_settings', options => '{"settings": {"search_path": "evil"}}');
SELECT migrate_plan('bad_settings', options => '{"settings": {"role": "postgres"}}');
SELECT migrate_plan('bad_settings', options => '{"settings": ["DateStyle"]}');
SELECT migrate_plan('bad_settings', options => '{"settings": {"DateStyle": null}}');
SELECT migrate_file('loader', 'ragged', :'dir' || '/ragged.txt', header => false, ragged_lines => true,
                    format => 'lines');
SELECT migrate_file('loader', 'ascii7', :'dir' || '/ascii.txt', encoding => 'ascii7');
\set VERBOSITY default
SELECT count(*) AS stored FROM migrate.plan WHERE plan_name = 'bad_settings';

-- a plan of a role that is not a superuser: a superuser-only parameter is
-- refused when the plan is defined, and the run refuses it too when the
-- options were written another way; the legitimate settings work
CREATE ROLE loader_owner LOGIN;
GRANT pg_read_server_files TO loader_owner;
CREATE SCHEMA loader_owner AUTHORIZATION loader_owner;
SET ROLE loader_owner;
CREATE TABLE loader_owner.trig (id int PRIMARY KEY, day date);
CREATE TABLE loader_owner.fired (id int);
CREATE FUNCTION loader_owner.fire() RETURNS trigger LANGUAGE plpgsql AS
  $$BEGIN INSERT INTO loader_owner.fired VALUES (NEW.id); RETURN NEW; END$$;
CREATE TRIGGER fire BEFORE INSERT ON loader_owner.trig FOR EACH ROW EXECUTE FUNCTION loader_owner.fire();
\set VERBOSITY sqlstate
SELECT migrate_plan('owned', target_schema => 'loader_owner',
                    options => '{"reject_limit": null, "settings": {"session_replication_role": "replica"}}');
\set VERBOSITY default
SELECT migrate_plan('owned', target_schema => 'loader_owner',
                    options => '{"reject_limit": null, "settings": {"DateStyle": "ISO, DMY"}}');
SELECT migrate_file('owned', 'trig', :'dir' || '/dmy.csv') IS NOT NULL AS mapped;
SELECT migrate_column('owned', 'trig', 'day', 's.day::date');
SELECT migrate_run('owned') IS NOT NULL AS ran;
SELECT id, day FROM loader_owner.trig ORDER BY id;
SELECT count(*) AS triggers_fired FROM loader_owner.fired;
RESET ROLE;
-- written past migrate_plan (as the catalog's owner could): the run refuses it, nothing written
UPDATE migrate.plan SET options = options || '{"settings": {"session_replication_role": "replica"}}'
 WHERE plan_name = 'owned';
SET ROLE loader_owner;
TRUNCATE loader_owner.trig, loader_owner.fired;
SELECT migrate_run('owned');
SELECT count(*) AS written FROM loader_owner.trig;
SELECT count(*) AS triggers_fired FROM loader_owner.fired;
RESET ROLE;

DROP SCHEMA loader_owner CASCADE;
SELECT migrate_drop_plan('owned') IS NOT NULL AS dropped;
DROP ROLE loader_owner;
SELECT migrate_drop_plan(p) IS NOT NULL AS dropped FROM unnest(ARRAY['loader', 'dmy', 'mdy']) p;
DROP TABLE ragged, counted, ascii7, anybyte, dmy, mdy;
SELECT format('COPY (SELECT 1) TO PROGRAM %L', 'cat > /dev/null; rm -rf ' || :'dir') AS cmd \gset
:cmd;
