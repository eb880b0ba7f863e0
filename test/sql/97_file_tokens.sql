-- File sources with delimiters, quotes and line ends of several bytes
-- (0.12): a delimiter or quote of any characters ('¦', '||', '¤'), option
-- line_end (a record ends at it outside quotes instead of at \n: pgloader's
-- "lines terminated by"), tokens converted to the files' encoding; lines
-- (what line_end ends) are numbered for the rejects' keys; a stray quote
-- still costs one line; skip_lines and a header; two workers give the
-- target one gives; verify re-reads; bad tokens are refused with 22023
-- (22P05: a delimiter the files' encoding has no such character for).
\set SHOW_CONTEXT never
SET client_min_messages = warning;
SET datestyle = ISO, YMD;
SELECT '/tmp/migrate_regress_tokens_' || current_setting('port') AS dir \gset
\i test/sql/include/file_dir.sql

-- fields terminated by '¦', lines by '¶'; line breaks before a record are
-- layout (the file's first line, after a '¶'), a quoted one is the field's
SELECT pg_temp.write_file(:'dir' || '/pilcrow.txt',
       convert_to(E'\nplop\u00a6bar\u00a6foo\u00b6plip\u00a6second line\u00a6bar\u00b6\r\n'
               || E'"\nquoted break"\u00a6x\u00a6y\u00b6\n', 'UTF8'));
CREATE TABLE lines (id serial PRIMARY KEY, f1 text, f2 text, f3 text);
SELECT migrate_plan('tokens', options => '{"reject_limit": null}');
SELECT migrate_file('tokens', 'lines', :'dir' || '/pilcrow.txt', header => false,
                    delimiter => E'\u00a6', line_end => E'\u00b6',
                    columns => ARRAY['f1', 'f2', 'f3']) IS NOT NULL AS mapped;
SELECT migrate_run('tokens') AS run \gset
SELECT id, quote_literal(f1) AS f1, f2, f3 FROM lines ORDER BY id;

-- a delimiter of two characters, quoted fields holding it and a line break,
-- doubled quotes, CRLF line ends, a stray quote, a line of the wrong width
SELECT pg_temp.write_file(:'dir' || '/pipes.csv', convert_to(
       E'id||name||note\r\n'
    || E'1||plain||no quotes\r\n'
    || E'2||"a || inside"||"two\r\nlines"\r\n'
    || E'3||"say ""hi"""||\r\n'
    || E'4||"stray||x\r\n'
    || E'5||after||the stray\r\n'
    || E'6||too||many||fields\r\n'
    || E'7||last||\r\n', 'UTF8'));
CREATE TABLE pipes (id int PRIMARY KEY, name text, note text);
SELECT migrate_file('tokens', 'pipes', :'dir' || '/pipes.csv', delimiter => '||') IS NOT NULL AS mapped;
SELECT migrate_run('tokens', tables => ARRAY['pipes']) AS run2 \gset
SELECT id, name, quote_nullable(note) AS note FROM pipes ORDER BY id;
SELECT regexp_replace(source_key, '^.*/', '') AS key, reason, message, source_row->>'_raw' AS raw
  FROM migrate.reject WHERE run_id = :run2 ORDER BY 1;
-- as the same file reads with a one-byte delimiter in its place (the fast path)
SELECT pg_temp.write_file(:'dir' || '/pipe1.csv', convert_to(replace(convert_from(pg_read_binary_file(:'dir' || '/pipes.csv'), 'UTF8'), '||', '|'), 'UTF8'));
CREATE TABLE pipe1 (id int PRIMARY KEY, name text, note text);
SELECT migrate_file('tokens', 'pipe1', :'dir' || '/pipe1.csv', delimiter => '|') IS NOT NULL AS mapped;
SELECT migrate_run('tokens', tables => ARRAY['pipe1']) IS NOT NULL AS ran;
SELECT count(*) AS same_rows FROM pipes p JOIN pipe1 q USING (id)
 WHERE replace(p.name, '||', '|') IS NOT DISTINCT FROM q.name AND p.note IS NOT DISTINCT FROM q.note;
SELECT (SELECT count(*) FROM pipes) AS two_byte, (SELECT count(*) FROM pipe1) AS one_byte;

-- a quote of a character of two bytes in UTF8, a file in LATIN1 whose
-- delimiter is one byte there ('§', 0xA7), a header after a line of junk
-- ended by line_end, text format with a delimiter of two characters
SELECT pg_temp.write_file(:'dir' || '/latin1.txt',
       convert_to(E'exported by a legacy system\u00b6id\u00a7name\u00b61\u00a7\u00a4caf\u00e9\u00a7 cr\u00e8me\u00a4\u00b62\u00a7na\u00efve\u00b6', 'LATIN1'));
CREATE TABLE latin1 (id int PRIMARY KEY, name text);
SELECT migrate_file('tokens', 'latin1', :'dir' || '/latin1.txt', encoding => 'LATIN1', skip_lines => 1,
                    delimiter => E'\u00a7', quote => E'\u00a4', line_end => E'\u00b6') IS NOT NULL AS mapped;
SELECT pg_temp.write_file(:'dir' || '/text.txt', convert_to(E'1::tab\\there\n2::\\N\n3::a:b\n', 'UTF8'));
CREATE TABLE text2 (id int PRIMARY KEY, v text);
SELECT migrate_file('tokens', 'text2', :'dir' || '/text.txt', format => 'text', header => false,
                    delimiter => '::', columns => ARRAY['id', 'v']) IS NOT NULL AS mapped;
SELECT migrate_run('tokens', tables => ARRAY['latin1', 'text2']) AS run3 \gset
SELECT id, name FROM latin1 ORDER BY id;
SELECT id, quote_nullable(v) AS v FROM text2 ORDER BY id;
SELECT count(*) AS rejects FROM migrate.reject WHERE run_id = :run3;
SELECT target, check_name, ok FROM migrate_verify('tokens', :run3) ORDER BY 1, 2;

-- a large file with line_end, two workers over byte ranges: the target one worker gives
SELECT pg_temp.write_file(:'dir' || '/big.txt', convert_to(
         (SELECT string_agg(format('%s%s%s%s%s', g, E'\u00a6', CASE WHEN g % 7 = 0 THEN '"quoted' || E'\u00b6' || 'end"' ELSE 'v' || g END,
                                   E'\u00a6', CASE WHEN g % 1000 = 0 THEN 'x' ELSE (g * 3)::text END), E'\u00b6')
            FROM generate_series(1, 60000) g), 'UTF8'));
CREATE TABLE big1 (id int PRIMARY KEY, v text, n int);
CREATE TABLE big2 (id int PRIMARY KEY, v text, n int);
SELECT migrate_file('tokens', t, :'dir' || '/big.txt', header => false, delimiter => E'\u00a6',
                    line_end => E'\u00b6', columns => ARRAY['id', 'v', 'n']) IS NOT NULL AS mapped
  FROM unnest(ARRAY['big1', 'big2']) t;
SELECT migrate_run('tokens', tables => ARRAY['big1']) AS run4 \gset
SET migrate.batch_size = 2000;
SELECT migrate_run('tokens', tables => ARRAY['big2'], parallel => 2) AS run5 \gset
RESET migrate.batch_size;
SELECT count(*) > 1 AS cut_in_ranges FROM migrate.run_range WHERE run_id = :run5;
SELECT (SELECT count(*) FROM big1) AS one_worker, (SELECT count(*) FROM big2) AS two_workers,
       (SELECT count(*) FROM big1 a FULL JOIN big2 b USING (id)
         WHERE a IS NULL OR b IS NULL OR a.v IS DISTINCT FROM b.v OR a.n IS DISTINCT FROM b.n) AS differing,
       (SELECT count(*) FROM big1 WHERE v LIKE E'"quoted\u00b6end"' OR v = E'quoted\u00b6end') AS quoted_line_ends;
-- the rejects (every 1000th record) are the same in both, keyed by line:
-- record 1000 starts on line 1142, after 142 records of two lines
SELECT r.run_id = :run4 AS one_worker, count(*) AS rejects, count(DISTINCT source_key) AS distinct_keys
  FROM migrate.reject r WHERE r.run_id IN (:run4, :run5) GROUP BY r.run_id ORDER BY 1 DESC;
SELECT regexp_replace(source_key, '^.*/', '') AS key, reason, source_row->>'id' AS id
  FROM migrate.reject WHERE run_id = :run4 ORDER BY length(source_key), source_key LIMIT 2;
SELECT count(*) AS same_rejects FROM migrate.reject a JOIN migrate.reject b USING (source_key)
 WHERE a.run_id = :run4 AND b.run_id = :run5;
SELECT target, check_name, ok FROM migrate_verify('tokens', :run5) ORDER BY 1, 2;

-- bad tokens: refused before anything is declared
\set VERBOSITY sqlstate
SELECT migrate_file('tokens', 'lines', :'dir' || '/pilcrow.txt', header => false, line_end => '',
                    columns => ARRAY['f1', 'f2', 'f3']);
SELECT migrate_file('tokens', 'lines', :'dir' || '/pilcrow.txt', header => false, delimiter => E'a\nb',
                    columns => ARRAY['f1', 'f2', 'f3']);
SELECT migrate_file('tokens', 'lines', :'dir' || '/pilcrow.txt', header => false, delimiter => '12345678',
                    columns => ARRAY['f1', 'f2', 'f3']);
SELECT migrate_file('tokens', 'lines', :'dir' || '/pilcrow.txt', header => false, delimiter => '##',
                    line_end => '#', columns => ARRAY['f1', 'f2', 'f3']);
SELECT migrate_file('tokens', 'lines', :'dir' || '/pilcrow.txt', header => false, delimiter => '"x',
                    columns => ARRAY['f1', 'f2', 'f3']);
SELECT migrate_file('tokens', 'lines', :'dir' || '/pilcrow.txt', header => false, delimiter => E'\u00a6',
                    nul => 'null', columns => ARRAY['f1', 'f2', 'f3']);
SELECT migrate_file('tokens', 'lines', :'dir' || '/pilcrow.txt', header => false, delimiter => E'\u20ac',
                    encoding => 'LATIN1', columns => ARRAY['f1', 'f2', 'f3']);
\set VERBOSITY default
-- the table's file source is the one declared before
SELECT ftoptions FROM pg_foreign_table WHERE ftrelid = 'lines_file'::regclass;

SELECT migrate_drop_plan('tokens') IS NOT NULL AS dropped;
DROP TABLE lines, pipes, pipe1, latin1, text2, big1, big2;
SELECT format('COPY (SELECT 1) TO PROGRAM %L', 'cat > /dev/null; rm -rf ' || :'dir') AS cmd \gset
:cmd;
