-- test/sql/include/file_dir.sql: an empty directory :dir of this cluster's
-- own (the caller sets dir), written by the server (COPY TO PROGRAM), and
-- pg_temp.write_file(path, bytes) to put a file there; used by the file
-- source tests (90, 95, 96).
-- (the programs read what COPY sends them: one exiting first would break its pipe)
SELECT format('COPY (SELECT 1) TO PROGRAM %L', 'cat > /dev/null; rm -rf ' || :'dir' || ' && mkdir -p ' || :'dir') AS cmd \gset
:cmd;
CREATE FUNCTION pg_temp.write_file(p_path text, p_content bytea) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('COPY (SELECT %L) TO PROGRAM %L',
                   translate(encode(p_content, 'base64'), E'\n', ''), 'base64 -d > ' || p_path);
END $$;
