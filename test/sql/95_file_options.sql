-- File sources read as other loaders read them (0.11): trim_blanks (blanks
-- around a field's unquoted text dropped, those inside quotes kept; an
-- unquoted blank field is then NULL), strict_quotes (a quote only around a
-- whole field: anything else is a 22P04 reject of its line), nul (a line
-- with a NUL byte is rejected by default; 'null' reads a field of NUL
-- bytes only as NULL, 'strip' removes NUL bytes); verify re-reads the
-- files with the same options; bad options are refused with 22023.
\set SHOW_CONTEXT never
SET client_min_messages = warning;
SET datestyle = ISO, YMD;
SELECT '/tmp/migrate_regress_opts_' || current_setting('port') AS dir \gset
\i test/sql/include/file_dir.sql

-- blanks: quoted or not, around quotes, inside quotes; a tab delimiter is not a blank
SELECT pg_temp.write_file(:'dir' || '/blanks.csv', convert_to(
       E'"quoted empty",""\n'
    || E'"nothing",\n'
    || E'"quoted blanks","   "\n'
    || E'"unquoted blanks",    \n'
    || E'"unquoted text",  two words  \n'
    || E'"quoted comma","a,b"\n'
    || E'"blanks around quotes",  " kept inside "  \n'
    || E'  "blanks before the first field",x\n', 'UTF8'));
CREATE TABLE blanks (id serial PRIMARY KEY, label text, v text);
SELECT migrate_plan('opts', options => '{"reject_limit": null}');
SELECT migrate_file('opts', 'blanks', :'dir' || '/blanks.csv', header => false,
                    columns => ARRAY['label', 'v'], trim_blanks => true) IS NOT NULL AS mapped;
-- the option is the foreign table's: any scan reads so
SELECT ftoptions FROM pg_foreign_table WHERE ftrelid = 'blanks_file'::regclass;
-- without the option, as COPY (FORMAT csv) reads the same file
CREATE TABLE blanks_kept (id serial PRIMARY KEY, label text, v text);
SELECT migrate_file('opts', 'blanks_kept', :'dir' || '/blanks.csv', header => false,
                    columns => ARRAY['label', 'v']) IS NOT NULL AS mapped;
SELECT migrate_run('opts') AS run \gset
SELECT b.label, quote_nullable(b.v) AS trimmed, quote_nullable(k.v) AS kept
  FROM blanks b JOIN blanks_kept k USING (id) ORDER BY id;
CREATE TEMP TABLE copy_reads (label text, v text);
SELECT format('COPY copy_reads FROM %L (FORMAT csv)', :'dir' || '/blanks.csv') AS cmd \gset
:cmd;
SELECT count(*) AS same_as_copy_without_trim
  FROM copy_reads c JOIN blanks_kept k ON k.label = c.label AND k.v IS NOT DISTINCT FROM c.v;
SELECT target, check_name, source_value = target_value AS same, ok FROM migrate_verify('opts', :run)
 ORDER BY 1, 2;

-- tab-delimited: tabs cut fields, spaces are trimmed
SELECT pg_temp.write_file(:'dir' || '/tabs.tsv', convert_to(E'a \t  b\t\n', 'UTF8'));
CREATE TABLE tabs (x text, y text, z text);
SELECT migrate_file('opts', 'tabs', :'dir' || '/tabs.tsv', header => false, delimiter => E'\t',
                    columns => ARRAY['x', 'y', 'z'], trim_blanks => true) IS NOT NULL AS mapped;
SELECT migrate_run('opts', tables => ARRAY['tabs']) IS NOT NULL AS ran;
SELECT quote_nullable(x) AS x, quote_nullable(y) AS y, quote_nullable(z) AS z FROM tabs;

-- strict quotes: a quote after text, text after a closing quote: rejected, the rest loads
SELECT pg_temp.write_file(:'dir' || '/strict.csv', convert_to(
       E'1,"whole"\n'
    || E'2,  "after blanks"\n'
    || E'3,"a"b\n'
    || E'4,a"b"\n'
    || E'5,plain\n'
    || E'6,"x" \n', 'UTF8'));
CREATE TABLE strict (id int PRIMARY KEY, v text);
CREATE TABLE strict_trim (id int PRIMARY KEY, v text);
SELECT migrate_file('opts', 'strict', :'dir' || '/strict.csv', header => false,
                    columns => ARRAY['id', 'v'], strict_quotes => true) IS NOT NULL AS mapped;
-- with trim_blanks, blanks around the quotes are no longer text outside them
SELECT migrate_file('opts', 'strict_trim', :'dir' || '/strict.csv', header => false,
                    columns => ARRAY['id', 'v'], strict_quotes => true, trim_blanks => true) IS NOT NULL AS mapped;
SELECT migrate_run('opts', tables => ARRAY['strict', 'strict_trim']) AS run2 \gset
SELECT 'strict' AS t, id, v FROM strict UNION ALL SELECT 'strict_trim', id, v FROM strict_trim ORDER BY 1, 2;
SELECT target, regexp_replace(source_key, '^.*/', '') AS key, reason, message, source_row->>'_raw' AS raw
  FROM migrate.reject WHERE run_id = :run2 ORDER BY 1, 2;
SELECT target, rows_read, rows_written, rows_rejected
  FROM migrate.run_table WHERE run_id = :run2 ORDER BY 1;

-- NUL bytes: a field of NULs only (a legacy export's NULL), NULs inside a field
SELECT pg_temp.write_file(:'dir' || '/nul.txt',
       convert_to(E'1|first|2006-11-11|\n', 'UTF8')
    || '\x327c6e756c6c20646174657c007c0a'::bytea          -- 2|null date|<NUL>|
    || '\x337c6e7500696e736964657c323030362d30312d30317c0a'::bytea  -- 3|nu<NUL>inside|2006-01-01|
    || '\x347c00007c323030362d30312d30327c0a'::bytea       -- 4|<NUL><NUL>|2006-01-02|
    || convert_to(E'5|"q|x"|2006-01-03|\n', 'UTF8'));
CREATE TABLE nul_reject (a int PRIMARY KEY, c text, b date);
CREATE TABLE nul_null (a int PRIMARY KEY, c text, b date);
CREATE TABLE nul_strip (a int PRIMARY KEY, c text, b date);
SELECT migrate_file('opts', t, :'dir' || '/nul.txt', header => false, delimiter => '|',
                    columns => ARRAY['a', 'c', 'b', 'trailing'], nul => n) IS NOT NULL AS mapped
  FROM (VALUES ('nul_reject', 'reject'), ('nul_null', 'null'), ('nul_strip', 'strip')) v(t, n);
SELECT migrate_run('opts', tables => ARRAY['nul_reject', 'nul_null', 'nul_strip']) AS run3 \gset
SELECT 'reject' AS nul, a, quote_nullable(c) AS c, b FROM nul_reject
UNION ALL SELECT 'null', a, quote_nullable(c), b FROM nul_null
UNION ALL SELECT 'strip', a, quote_nullable(c), b FROM nul_strip ORDER BY 1, 2;
SELECT target, regexp_replace(source_key, '^.*/', '') AS key, reason, message
  FROM migrate.reject WHERE run_id = :run3 ORDER BY 1, 2;
SELECT target, check_name, ok FROM migrate_verify('opts', :run3) ORDER BY 1, 2;

-- an input function that reports bad input as an internal error (hstore's
-- XX000): that row is rejected with it, the others load; a batch in which
-- every row fails so fails the run (the error is not the rows'), nothing written
CREATE EXTENSION hstore;
SELECT pg_temp.write_file(:'dir' || '/kv.tsv',
    convert_to(E'1\temail=>a@example.com,a=>b\n2\tk=>v\n3\tbaddata\n4\ta=>"quoted value",d=>x\n', 'UTF8'));
CREATE TABLE kv (id int PRIMARY KEY, kv hstore);
SELECT migrate_file('opts', 'kv', :'dir' || '/kv.tsv', format => 'text', header => false,
                    columns => ARRAY['id', 'kv']) IS NOT NULL AS mapped;
SELECT migrate_run('opts', tables => ARRAY['kv']) AS run4 \gset
SELECT id, kv FROM kv ORDER BY id;
SELECT regexp_replace(source_key, '^.*/', '') AS key, reason, message, source_row->>'kv' AS kv
  FROM migrate.reject WHERE run_id = :run4;
SELECT pg_temp.write_file(:'dir' || '/kv_bad.tsv', convert_to(E'1\tbad\n2\tworse\n', 'UTF8'));
CREATE TABLE kv_bad (id int PRIMARY KEY, kv hstore);
SELECT migrate_file('opts', 'kv_bad', :'dir' || '/kv_bad.tsv', format => 'text', header => false,
                    columns => ARRAY['id', 'kv']) IS NOT NULL AS mapped;
SELECT migrate_run('opts', tables => ARRAY['kv_bad']);
SELECT state, rows_written, rows_rejected FROM migrate.run_table
 WHERE target = 'kv_bad'::regclass ORDER BY run_id DESC LIMIT 1;
SELECT count(*) AS nothing_written FROM kv_bad;
SELECT count(*) AS no_reject FROM migrate.reject WHERE target = 'kv_bad'::regclass;

-- bad options: refused before anything is declared
\set VERBOSITY sqlstate
SELECT migrate_file('opts', 'tabs', :'dir' || '/tabs.tsv', format => 'text', header => false,
                    columns => ARRAY['x', 'y', 'z'], trim_blanks => true);
SELECT migrate_file('opts', 'tabs', :'dir' || '/tabs.tsv', format => 'lines', strict_quotes => true);
SELECT migrate_file('opts', 'tabs', :'dir' || '/tabs.tsv', header => false,
                    columns => ARRAY['x', 'y', 'z'], nul => 'zero');
SELECT migrate_file('opts', 'tabs', :'dir' || '/tabs.tsv', header => false,
                    columns => ARRAY['x', 'y', 'z'], nul => 'null', "null" => 'ø');
\set VERBOSITY default
SELECT migrate_file('opts', 'tabs', :'dir' || '/tabs.tsv', header => false,
                    columns => ARRAY['x', 'y', 'z'], nul => 'zero');
-- the table's file source is the one declared before
SELECT ftoptions FROM pg_foreign_table WHERE ftrelid = 'tabs_file'::regclass;

-- clean up
SELECT migrate_drop_plan('opts') IS NOT NULL AS dropped;
DROP TABLE blanks, blanks_kept, tabs, strict, strict_trim, nul_reject, nul_null, nul_strip, kv, kv_bad;
DROP EXTENSION hstore;
SELECT format('COPY (SELECT 1) TO PROGRAM %L', 'cat > /dev/null; rm -rf ' || :'dir') AS cmd \gset
:cmd;
