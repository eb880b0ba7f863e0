-- File sources (migrate_file, src/filesrc.c, src/fileread.c): a CSV with a
-- header in another order than the table, streamed once; every kind of
-- malformed line goes to migrate.reject with 22P04, its file:line and the
-- raw line, while the rest loads; fields that do not cast are rejects like
-- any other; a glob of three files in name order; COPY text and fixed
-- width through format lines; a keyless target; verify re-reads the
-- file; reading needs pg_read_server_files (refused without it, nothing
-- read, nothing written; granted, the same call works).
\set SHOW_CONTEXT never
SET client_min_messages = warning;
SET datestyle = ISO, YMD;
-- the files are written by the server (COPY TO PROGRAM), into a directory of this cluster's own
SELECT '/tmp/migrate_regress_files_' || current_setting('port') AS dir \gset
\i test/sql/include/file_dir.sql
SELECT format('COPY (SELECT 1) TO PROGRAM %L', 'cat > /dev/null; mkdir ' || :'dir' || '/parts') AS cmd \gset
:cmd;

-- 20 data lines; the bad ones: 4 unterminated quote, 6 too many fields,
-- 8 too few, 10 non-numeric amount, 12 impossible date, 14 a NUL byte,
-- 16 bad UTF-8; line 18 holds a quoted field over two lines, 20 is CRLF,
-- and a blank line is skipped; line 22 has no name (NOT NULL, found set-wise)
SELECT pg_temp.write_file(:'dir' || '/people.csv',
    convert_to(E'amount,id,name,born\n'
      || E'1.50,1,Ann,2001-01-01\n'
      || E'2.50,2,"Bob, Jr.",2001-01-02\n'
      || E'3.50,3,"Say ""hi""",2001-01-03\n'
      || E'4.50,4,"Dan,2001-01-04\n'
      || E'5.50,5,Eve,2001-01-05\n'
      || E'6.50,6,Fay,2001-01-06,extra\n'
      || E'7.50,7,Gus,2001-01-07\n'
      || E'8.50,8,Hal\n'
      || E'9.50,9,Ida,2001-01-09\n'
      || E'ten,10,Jo,2001-01-10\n'
      || E'11.50,11,Kim,2001-01-11\n'
      || E'12.50,12,Lu,2001-02-31\n'
      || E'13.50,13,Max,2001-01-13\n', 'UTF8')
    || '\x31342e35302c31342c4e0061742c323030312d30312d31340a'::bytea     -- 14.50,14,N<NUL>at,...
    || convert_to(E'15.50,15,Oda,2001-01-15\n', 'UTF8')
    || '\x31362e35302c31362c50ff6c2c323030312d30312d31360a'::bytea     -- 16.50,16,P<0xff>l,...
    || convert_to(E'17.50,17,Quy,2001-01-17\n'
      || E'18.50,18,"two\nlines",2001-01-18\n'
      || E'\n'
      || E'19.50,19,,2001-01-19\n'
      || E'20.50,20,Sam,2001-01-20\r\n', 'UTF8'));

CREATE TABLE people (id int PRIMARY KEY, name text NOT NULL, amount numeric(8,2), born date);
SELECT migrate_plan('files', options => '{"reject_limit": null}');
SELECT migrate_file('files', 'people', :'dir' || '/people.csv');
-- the fields by the header's names, as text, and the record's own columns
SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute
 WHERE attrelid = 'people_file'::regclass AND attnum > 0 ORDER BY attnum;
SELECT source, key, options FROM migrate.table_map WHERE plan = 'files';
-- any scan returns a line that does not parse with _raw and _error
SELECT _line, _raw, _error FROM people_file WHERE _error IS NOT NULL ORDER BY _line;
SELECT _line, id, name FROM people_file WHERE id IN ('3', '18', '20') ORDER BY _line;

SELECT migrate_run('files') AS run \gset
SELECT state, rows_read, rows_written, rows_rejected, rows_read = rows_written + rows_rejected + rows_skipped AS balanced
  FROM migrate.run_table WHERE run_id = :run;
SELECT regexp_replace(source_key, '^.*/', '') AS key, reason, message,
       source_row - '_file' AS source_row
  FROM migrate.reject WHERE run_id = :run ORDER BY (regexp_replace(source_key, '^.*:', ''))::int;
SELECT * FROM people ORDER BY id;
-- verify reads the file again: rejected lines are left out by file and line
SELECT check_name, source_value, target_value, ok FROM migrate_verify('files', :run) ORDER BY check_name;

-- a glob: files in name order, each with its own header order
SELECT pg_temp.write_file(:'dir' || '/parts/b.csv', convert_to(E'id,qty\n3,30\n4,40\n', 'UTF8'));
SELECT pg_temp.write_file(:'dir' || '/parts/a.csv', convert_to(E'qty,id\n10,1\n20,2\n', 'UTF8'));
SELECT pg_temp.write_file(:'dir' || '/parts/c.csv', convert_to(E'id,qty\n5,50\nsix,60\n', 'UTF8'));
CREATE TABLE stock (id int PRIMARY KEY, qty int);
SELECT migrate_file('files', 'stock', :'dir' || '/parts/*.csv') IS NOT NULL AS mapped;
SELECT migrate_run('files', tables => ARRAY['stock']) AS run2 \gset
SELECT rows_read, rows_written, rows_rejected FROM migrate.run_table WHERE run_id = :run2;
SELECT id, qty FROM stock ORDER BY id;
SELECT regexp_replace(source_key, '^.*/', '') AS key, reason FROM migrate.reject WHERE run_id = :run2;
SELECT regexp_replace(_file, '^.*/', '') AS file, count(*) FROM stock_file GROUP BY 1 ORDER BY 1;
-- another plan does not take over this plan's foreign table: it declares its own
SELECT migrate_plan('files2');
SELECT migrate_file('files2', 'stock', :'dir' || '/parts/a.csv');
SELECT migrate_file('files2', 'stock', :'dir' || '/parts/a.csv', source_table => 'stock_a') AS declared;
SELECT count(*) AS still_three_files FROM (SELECT DISTINCT _file FROM stock_file) f;
SELECT migrate_drop_plan('files2') IS NOT NULL AS dropped;
-- its file source went with it; the other plan's stayed
SELECT to_regclass('stock_a') IS NULL AS stock_a_dropped, to_regclass('stock_file') IS NOT NULL AS stock_file_kept;

-- COPY text format, a keyless target
SELECT pg_temp.write_file(:'dir' || '/log.txt',
    convert_to(E'1\tstart\t\\N\n2\ttab\\there\tx\n3\tline\\nbreak\ty\n', 'UTF8'));
CREATE TABLE log_line (n int, msg text, extra text);
SELECT migrate_file('files', 'log_line', :'dir' || '/log.txt', format => 'text', header => false,
                    columns => ARRAY['n', 'msg', 'extra']) IS NOT NULL AS mapped;
SELECT key FROM migrate.table_map WHERE target = 'log_line'::regclass;
SELECT migrate_run('files', tables => ARRAY['log_line']) AS run3 \gset
SELECT n, msg, extra IS NULL AS extra_null FROM log_line ORDER BY n;
-- upsert needs a key
SELECT migrate_file('files', 'log_line', :'dir' || '/log.txt', format => 'text', header => false,
                    columns => ARRAY['n', 'msg', 'extra'], mode => 'upsert');

-- fixed width through format lines: one field, cut in the mappings
SELECT pg_temp.write_file(:'dir' || '/fixed.txt', convert_to(E'0001Alpha     0012\n0002Beta      0345\n', 'UTF8'));
CREATE TABLE fixed (id int PRIMARY KEY, name text, qty int);
SELECT migrate_file('files', 'fixed', :'dir' || '/fixed.txt', format => 'lines') IS NOT NULL AS mapped;
SELECT migrate_column('files', 'fixed', 'id', 'substr(s.line, 1, 4)::int');
SELECT migrate_column('files', 'fixed', 'name', 'rtrim(substr(s.line, 5, 10))');
SELECT migrate_column('files', 'fixed', 'qty', 'substr(s.line, 15, 4)::int');
SELECT migrate_run('files', tables => ARRAY['fixed']) IS NOT NULL AS ran;
SELECT * FROM fixed ORDER BY id;

-- COPY's quoting within a line (text around a quoted stretch is the field's),
-- a header in upper case naming the target's columns, a serial key the file does not give
SELECT pg_temp.write_file(:'dir' || '/codes.csv', convert_to(E'CODE,Label\nAB,"x"y\nCD,  "q" \nEF,a"b""c"\n', 'UTF8'));
CREATE TABLE codes (id serial PRIMARY KEY, code text, label text);
SELECT migrate_file('files', 'codes', :'dir' || '/codes.csv') IS NOT NULL AS mapped;
SELECT attname FROM pg_attribute WHERE attrelid = 'codes_file'::regclass AND attnum BETWEEN 1 AND 2 ORDER BY attnum;
SELECT key FROM migrate.table_map WHERE target = 'codes'::regclass;
SELECT migrate_run('files', tables => ARRAY['codes']) IS NOT NULL AS ran;
SELECT id, code, '[' || label || ']' AS label FROM codes ORDER BY id;

-- bad input: a missing file, no header nor columns, a bad option
\set VERBOSITY sqlstate
SELECT migrate_file('files', 'fixed', :'dir' || '/nope.csv');
\set VERBOSITY default
SELECT migrate_file('files', 'fixed', :'dir' || '/fixed.txt', header => false);
SELECT migrate_file('files', 'fixed', :'dir' || '/fixed.txt', format => 'xml');
SELECT migrate_file('files', 'fixed', 'relative.csv', columns => ARRAY['a']);

-- privilege: a role without pg_read_server_files reads nothing, declares nothing
CREATE ROLE file_nobody LOGIN;
CREATE SCHEMA file_nobody AUTHORIZATION file_nobody;
SET ROLE file_nobody;
SELECT migrate_plan('nobody_files', target_schema => 'file_nobody', options => '{"reject_limit": null}');
CREATE TABLE file_nobody.t (id int PRIMARY KEY, name text);
SELECT migrate_file('nobody_files', 'file_nobody.t', :'dir' || '/people.csv');
CREATE FOREIGN TABLE file_nobody.direct (id text) SERVER migrate_files OPTIONS (path '/etc/passwd');
SELECT count(*) FROM people_file;
RESET ROLE;
SELECT count(*) AS declared FROM pg_class WHERE relnamespace = 'file_nobody'::regnamespace AND relkind = 'f';
-- positive control: granted, the same calls work
GRANT pg_read_server_files TO file_nobody;
SET ROLE file_nobody;
SELECT migrate_file('nobody_files', 'file_nobody.t', :'dir' || '/people.csv', columns => ARRAY['amount', 'id', 'name', 'born']) IS NOT NULL AS mapped;
SELECT migrate_run('nobody_files') IS NOT NULL AS ran;
SELECT count(*) FROM file_nobody.t;
RESET ROLE;
-- the run executes as the plan's owner: revoked, the owner's run reads nothing
REVOKE pg_read_server_files FROM file_nobody;
TRUNCATE file_nobody.t;
SELECT migrate_run('nobody_files');
SELECT count(*) FROM file_nobody.t;

DROP SCHEMA file_nobody CASCADE;
SELECT migrate_drop_plan('nobody_files') IS NOT NULL AS dropped;
DROP ROLE file_nobody;
SELECT format('COPY (SELECT 1) TO PROGRAM %L', 'cat > /dev/null; rm -rf ' || :'dir') AS cmd \gset
:cmd;
