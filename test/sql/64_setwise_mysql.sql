--
-- Set-wise quarantine from a real MariaDB source (mysql_fdw, database
-- Chinook of test/mariadb/start.sh): tracks whose genre is not loaded (FK),
-- without a composer (NOT NULL) or longer than 10 minutes (CHECK) are routed
-- without bisection, with the rejects bisection (the oracle) finds.
--
\set SHOW_CONTEXT never
SET client_min_messages = warning;
\set mariadb_port 3307
\getenv mariadb_port MIGRATE_MARIADB_PORT
CREATE EXTENSION IF NOT EXISTS mysql_fdw;
CREATE SERVER sw_my FOREIGN DATA WRAPPER mysql_fdw
    OPTIONS (host '127.0.0.1', port :'mariadb_port');
CREATE USER MAPPING FOR CURRENT_USER SERVER sw_my
    OPTIONS (username 'migrate', password 'migrate');
CREATE SCHEMA sw_my;
IMPORT FOREIGN SCHEMA "Chinook" LIMIT TO ("Genre", "Track") FROM SERVER sw_my INTO sw_my;

CREATE FUNCTION sw_my_targets(s text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('CREATE SCHEMA %I', s);
    EXECUTE format('CREATE TABLE %I.genre (genre_id int PRIMARY KEY, name varchar(120))', s);
    EXECUTE format('CREATE TABLE %I.track (track_id int PRIMARY KEY, name varchar(200) NOT NULL,'
                   ' genre_id int REFERENCES %I.genre, composer varchar(220) NOT NULL,'
                   ' milliseconds int CHECK (milliseconds < 600000), unit_price numeric(10,2))', s, s);
END $$;
SELECT sw_my_targets('sw_my_off'), sw_my_targets('sw_my_on');
SELECT migrate_plan('sw_my_off', source_schema => 'sw_my', target_schema => 'sw_my_off',
                    options => '{"setwise_quarantine": false, "reject_limit": null}');
SELECT migrate_plan('sw_my_on', source_schema => 'sw_my', target_schema => 'sw_my_on',
                    options => '{"reject_limit": null}');
DO $$
DECLARE p text;
BEGIN
    FOREACH p IN ARRAY ARRAY['sw_my_off', 'sw_my_on'] LOOP
        -- genres 21..25 are not loaded: their tracks are orphans
        PERFORM migrate_table(p, '"Genre"', 'genre', filter => 's."GenreId" <= 20');
        PERFORM migrate_column(p, 'genre', 'genre_id', 's."GenreId"');
        PERFORM migrate_column(p, 'genre', 'name', 's."Name"');
        PERFORM migrate_table(p, '"Track"', 'track');
        PERFORM migrate_column(p, 'track', 'track_id', 's."TrackId"');
        PERFORM migrate_column(p, 'track', 'name', 's."Name"');
        PERFORM migrate_column(p, 'track', 'genre_id', 's."GenreId"');
        PERFORM migrate_column(p, 'track', 'composer', 's."Composer"');
        PERFORM migrate_column(p, 'track', 'milliseconds', 's."Milliseconds"');
        PERFORM migrate_column(p, 'track', 'unit_price', 's."UnitPrice"');
    END LOOP;
END $$;
SET migrate.batch_size = 500;
SELECT migrate_run('sw_my_off') AS run_off \gset
SELECT migrate_run('sw_my_on') AS run_on \gset
SELECT t.target::regclass, t.state, t.rows_read, t.rows_written, t.rows_rejected,
       t.rows_rejected_setwise, t.bisect_steps > 0 AS bisected,
       t.rows_read = t.rows_written + t.rows_rejected AS balanced
  FROM migrate.run_table t WHERE t.run_id IN (:run_off, :run_on) ORDER BY t.run_id, t.load_order;
CREATE VIEW sw_my_rejects AS
SELECT r.run_id, c.relname AS target, r.source_key, r.reason, r.message, r.detail, r.source_row, r.loaded
  FROM migrate.reject r JOIN pg_class c ON c.oid = r.target;
-- the same rejects as the oracle, both ways
SELECT count(*) AS only_off FROM (
  SELECT target, source_key, reason, message, detail, source_row, loaded FROM sw_my_rejects WHERE run_id = :run_off
  EXCEPT
  SELECT target, source_key, reason, message, detail, source_row, loaded FROM sw_my_rejects WHERE run_id = :run_on) d;
SELECT count(*) AS only_on FROM (
  SELECT target, source_key, reason, message, detail, source_row, loaded FROM sw_my_rejects WHERE run_id = :run_on
  EXCEPT
  SELECT target, source_key, reason, message, detail, source_row, loaded FROM sw_my_rejects WHERE run_id = :run_off) d;
SELECT reason, count(*), min(message) AS message FROM sw_my_rejects WHERE run_id = :run_on GROUP BY 1 ORDER BY 1;
SELECT source_key, reason, detail FROM sw_my_rejects WHERE run_id = :run_on ORDER BY source_key::int LIMIT 3;
-- the same rows loaded
SELECT (SELECT count(*) FROM (SELECT * FROM sw_my_off.track EXCEPT SELECT * FROM sw_my_on.track) d) AS diff,
       (SELECT count(*) FROM (SELECT * FROM sw_my_on.track EXCEPT SELECT * FROM sw_my_off.track) d) AS diff2,
       (SELECT count(*) FROM sw_my_on.track) AS tracks;
