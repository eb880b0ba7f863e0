#!/usr/bin/env bash
#
# test/demo/run.sh -- end-to-end demo of the migrate extension: the Chinook
# sample database migrated from MariaDB into PostgreSQL.
#
# Run as root on a fresh Debian 12 machine, from the repository root:
#
#     bash test/demo/run.sh
#
# It installs the build and server packages (PostgreSQL 15, mysql_fdw,
# MariaDB), builds and installs the extension, starts a throwaway MariaDB
# loaded with Chinook (test/mariadb/start.sh: PascalCase tables, 15,607
# rows) and re-runs itself inside a throwaway PostgreSQL cluster
# (pg_virtualenv -t), where it:
#
#   1. creates database chinook with the snake_case target schema of
#      Chinook_PostgreSql.sql (keys, foreign keys, indexes; no rows);
#   2. reaches MariaDB through mysql_fdw: migrate_plan() imports the
#      MariaDB database Chinook into schema chinook_src;
#   3. migrate_automap() maps the 11 tables and 64 columns by name
#      (InvoiceLine.BillingPostalCode -> invoice_line.billing_postal_code);
#   4. migrate_check() and migrate_profile() assess the plan;
#   5. migrate_run() moves the rows; prints per-table counts and rejects;
#   6. compares every table with the PostgreSQL script's own data (EXCEPT
#      both ways) and checks the counter invariant; exits non-zero on a
#      difference;
#   7. migrate_verify() reconciles target and source (counts, checksums of
#      the mapped values, foreign keys, rules); exits non-zero if it fails;
#   8. migrate_rollback() undoes the run (the tables were empty when it
#      started: they are emptied), a second call changes nothing, and the
#      run is made again and verified;
#   9. prints migrate_report() of that run;
#  10. does it all again in one call, migrate_database(), into an empty
#      database (the tables created from MariaDB's catalog) and compares
#      every table with the PostgreSQL edition's data.
#
# MariaDB and the cluster are removed at the end, whatever happens.
#
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
PGVER=15

# ---------------------------------------------------------------------------
# outer part: packages, build, throwaway MariaDB and PostgreSQL cluster
# ---------------------------------------------------------------------------
if [[ "${1:-}" != --inner ]]; then
    if [[ $(id -u) -ne 0 ]]; then
        echo "run.sh: run me as root (apt-get, make install, MariaDB, pg_virtualenv)" >&2
        exit 2
    fi
    started=$(date +%s)
    export DEBIAN_FRONTEND=noninteractive
    echo "== installing packages"
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends \
        build-essential postgresql-$PGVER postgresql-server-dev-$PGVER \
        postgresql-contrib postgresql-common postgresql-$PGVER-mysql-fdw \
        mariadb-server libmariadb-dev >/dev/null

    echo "== building and installing the extension"
    PG_CONFIG=/usr/lib/postgresql/$PGVER/bin/pg_config
    make -s -C "$REPO" PG_CONFIG="$PG_CONFIG"
    make -s -C "$REPO" PG_CONFIG="$PG_CONFIG" install >/dev/null

    echo "== starting a throwaway MariaDB with Chinook (test/mariadb/start.sh)"
    trap 'bash "$REPO/test/mariadb/stop.sh"' EXIT
    bash "$REPO/test/mariadb/start.sh"

    echo "== starting a throwaway PostgreSQL cluster (pg_virtualenv -t)"
    rc=0
    pg_virtualenv -v $PGVER -t -- bash "$HERE/run.sh" --inner || rc=$?
    echo "== demo finished in $(( $(date +%s) - started )) s, exit status $rc"
    exit $rc
fi

# ---------------------------------------------------------------------------
# inner part: PGHOST, PGPORT, PGUSER point at the cluster; MariaDB listens
# on 127.0.0.1:$MIGRATE_MARIADB_PORT (default 3307), user/password migrate
# ---------------------------------------------------------------------------
psql_() { psql -X -q -v ON_ERROR_STOP=1 "$@" 2>&1; }
val() { psql -X -q -At -v ON_ERROR_STOP=1 "$@"; }
section() { printf '\n== %s\n' "$*"; }
MYPORT=${MIGRATE_MARIADB_PORT:-3307}
DB=${DEMO_DB:-chinook}

section "PostgreSQL on port $(val -d postgres -c 'SHOW port'), MariaDB on 127.0.0.1:$MYPORT"
psql_ -d postgres -v db="$DB" <<'SQL'
DROP DATABASE IF EXISTS :"db";
CREATE DATABASE :"db";
SQL

# ---------------------------------------------------------------------------
section "1. the target: the snake_case schema of Chinook_PostgreSql.sql, empty"
# ---------------------------------------------------------------------------
sh "$REPO/test/data/chinook/pg-script.sh" ddl | psql_ -d "$DB"
psql_ -d "$DB" -c '\dt public.*'

# ---------------------------------------------------------------------------
section "2. the source: MariaDB database Chinook through mysql_fdw"
# ---------------------------------------------------------------------------
psql_ -d "$DB" -v myport="$MYPORT" <<'SQL'
CREATE EXTENSION mysql_fdw;
CREATE EXTENSION migrate;
CREATE SERVER mariadb FOREIGN DATA WRAPPER mysql_fdw OPTIONS (host '127.0.0.1', port :'myport');
CREATE USER MAPPING FOR CURRENT_USER SERVER mariadb OPTIONS (username 'migrate', password 'migrate');
-- creates schema chinook_src and imports the MariaDB database Chinook into it
SELECT migrate_plan('chinook', source_server => 'mariadb', source_schema => 'chinook_src',
                    target_schema => 'public', options => '{"remote_schema": "Chinook"}');
SELECT foreign_table_name FROM information_schema.foreign_tables
 WHERE foreign_table_schema = 'chinook_src' ORDER BY 1;
SQL

# ---------------------------------------------------------------------------
section "3. migrate_automap('chinook'): tables and columns matched by name"
# ---------------------------------------------------------------------------
psql_ -d "$DB" <<'SQL'
\pset footer off
CREATE TEMP TABLE automap AS SELECT * FROM migrate_automap('chinook');
SELECT action, count(*) FROM automap GROUP BY action ORDER BY action;
SELECT target, source, count(column_name) AS columns,
       string_agg(source_column || ' -> ' || column_name, ', ' ORDER BY column_name)
           FILTER (WHERE lower(source_column) <> column_name::text) AS renamed
  FROM automap WHERE target IS NOT NULL AND action NOT LIKE 'source column type%'
 GROUP BY target, source ORDER BY target::text;
SELECT target, column_name, expr, action FROM automap
 WHERE action LIKE '%cast%' OR action LIKE 'source column type%' ORDER BY target::text, column_name, action;
SQL

# ---------------------------------------------------------------------------
section "4. assessment: migrate_check('chinook') and migrate_profile('chinook')"
# ---------------------------------------------------------------------------
psql_ -d "$DB" <<'SQL'
\pset footer off
SELECT * FROM migrate_check('chinook');
SELECT target, count(*) AS columns, max(rows) AS rows, sum(nulls) AS nulls,
       sum(cast_failures) AS cast_failures, sum(not_null_violations) AS not_null_violations
  FROM migrate_profile('chinook') GROUP BY target ORDER BY target::text;
SQL

# ---------------------------------------------------------------------------
section "5. the run: migrate_run('chinook')"
# ---------------------------------------------------------------------------
t0=$(date +%s.%N)
psql_ -d "$DB" <<'SQL'
SET migrate.batch_size = 5000;
SELECT migrate_run('chinook') AS run_id \gset
\echo run id: :run_id
SQL
t1=$(date +%s.%N)
RUN=$(val -d "$DB" -c "SELECT max(run_id) FROM migrate.run WHERE plan = 'chinook'")
psql_ -d "$DB" -v run="$RUN" <<'SQL'
\pset footer off
SELECT run_id, plan, state, round(extract(epoch FROM finished_at - started_at), 2) AS seconds
  FROM migrate.run WHERE run_id = :run;
SELECT target, state, rows_read, rows_written, rows_rejected, rows_skipped, source_count, batches
  FROM migrate.run_table WHERE run_id = :run ORDER BY load_order;
SELECT 'total' AS tables, sum(rows_read) AS rows_read, sum(rows_written) AS rows_written,
       sum(rows_rejected) AS rows_rejected
  FROM migrate.run_table WHERE run_id = :run;
SELECT target, reason, count(*) AS rows, min(source_key) AS example_key, min(message) AS example_message
  FROM migrate.reject WHERE run_id = :run GROUP BY 1, 2 ORDER BY 1, 2;
SQL
awk -v a="$t0" -v b="$t1" 'BEGIN { printf "migrate_run() took %.1f s\n", b - a }'

# ---------------------------------------------------------------------------
section "6. verification against Chinook_PostgreSql.sql's own data"
# ---------------------------------------------------------------------------
{ echo 'CREATE SCHEMA expected; SET search_path = expected;'
  sh "$REPO/test/data/chinook/pg-script.sh" data; } | psql -X -q -v ON_ERROR_STOP=1 -d "$DB" >/dev/null
psql_ -d "$DB" <<'SQL'
\pset footer off
CREATE TABLE expected.comparison AS
SELECT c.relname AS table_name,
       (xpath('/row/n/text()', query_to_xml(format('SELECT count(*) AS n FROM public.%I', c.relname), false, true, '')))[1]::text::bigint AS migrated,
       (xpath('/row/n/text()', query_to_xml(format('SELECT count(*) AS n FROM (TABLE expected.%1$I EXCEPT ALL TABLE public.%1$I) d', c.relname), false, true, '')))[1]::text::bigint AS missing,
       (xpath('/row/n/text()', query_to_xml(format('SELECT count(*) AS n FROM (TABLE public.%1$I EXCEPT ALL TABLE expected.%1$I) d', c.relname), false, true, '')))[1]::text::bigint AS extra
  FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'r';
SELECT * FROM expected.comparison ORDER BY table_name;
SELECT sum(migrated) AS rows_migrated, sum(missing) AS missing, sum(extra) AS extra FROM expected.comparison;
SELECT (SELECT count(*) FROM public.customer WHERE city = 'Edinburgh ')
     + (SELECT count(*) FROM public.invoice WHERE billing_city = 'Edinburgh ') AS trailing_blanks_kept,
       (SELECT count(*) FROM public.track WHERE strpos(name, '\') > 0) AS backslashes_kept;
SQL
bad=$(val -d "$DB" -v run="$RUN" <<'SQL'
SELECT (SELECT count(*) FROM migrate.run_table
         WHERE run_id = :run
           AND (state <> 'succeeded' OR rows_read <> rows_written + rows_rejected + rows_skipped
                OR rows_read IS DISTINCT FROM source_count))
     + (SELECT count(*) FROM expected.comparison WHERE missing <> 0 OR extra <> 0)
     + (SELECT CASE WHEN sum(migrated) = 15607 THEN 0 ELSE 1 END FROM expected.comparison)
SQL
)
if [[ $bad != 0 ]]; then
    echo "FAILED: the migrated data differs from Chinook_PostgreSql.sql or a counter check failed" >&2
    exit 1
fi
echo "OK: 11 tables, 15607 rows, identical to Chinook_PostgreSql.sql; rows_read = written + rejected + skipped = source count(*)"

# ---------------------------------------------------------------------------
section "7. migrate_verify('chinook'): the extension's own reconciliation with the source"
# ---------------------------------------------------------------------------
psql_ -d "$DB" <<'SQL'
\pset footer off
CREATE TEMP TABLE v AS SELECT * FROM migrate_verify('chinook');
SELECT check_name, count(*) AS tables, count(*) FILTER (WHERE ok) AS ok
  FROM v GROUP BY check_name ORDER BY check_name;
SELECT target, check_name, details FROM v WHERE NOT ok ORDER BY target::text, check_name;
SQL
verified=$(val -d "$DB" -c "SELECT verified FROM migrate.run WHERE run_id = $RUN")
if [[ $verified != t ]]; then
    echo "FAILED: migrate_verify() did not pass" >&2
    exit 1
fi

# ---------------------------------------------------------------------------
section "8. migrate_rollback($RUN): the run undone (its tables were empty: emptied), then run again"
# ---------------------------------------------------------------------------
psql_ -d "$DB" -v run="$RUN" <<'SQL'
\pset footer off
SELECT target, undo FROM migrate.run_table WHERE run_id = :run ORDER BY load_order;
SELECT target, rows_deleted, rows_restored, rows_reinserted, conflicts
  FROM migrate_rollback(:run) ORDER BY target::text;
SQL
left=$(val -d "$DB" <<'SQL'
SELECT sum((xpath('/row/n/text()', query_to_xml(format('SELECT count(*) AS n FROM public.%I', table_name), false, true, '')))[1]::text::bigint)
  FROM expected.comparison
SQL
)
echo "rows left in the 11 tables after the rollback: $left"
again=$(val -d "$DB" -c "SELECT count(*) FROM migrate_rollback($RUN) WHERE rows_deleted + rows_restored + rows_reinserted > 0" 2>/dev/null)
echo "tables a second migrate_rollback($RUN) changed: $again"
if [[ $left != 0 || $again != 0 ]]; then
    echo "FAILED: migrate_rollback() left rows behind, or a second call changed something" >&2
    exit 1
fi
RUN=$(val -d "$DB" -c "SET migrate.batch_size = 5000; SELECT migrate_run('chinook')" | tail -1)
verified=$(val -d "$DB" -c "SELECT count(*) FILTER (WHERE NOT ok) FROM migrate_verify('chinook', $RUN)")
echo "run $RUN loaded the tables again; migrate_verify(): $verified failed checks"
if [[ $verified != 0 ]]; then
    echo "FAILED: migrate_verify() of the run after the rollback did not pass" >&2
    exit 1
fi

# ---------------------------------------------------------------------------
section "9. migrate_report($RUN): the run as a Markdown document (saved in migrate.run.report)"
# ---------------------------------------------------------------------------
psql_ -d "$DB" -At -c "SELECT migrate_report($RUN)" | sed -n 1,60p

# ---------------------------------------------------------------------------
section "10. the same in one call: migrate_database() into an empty database (tables created from MariaDB's catalog)"
# ---------------------------------------------------------------------------
psql_ -d postgres -v db="${DB}_onecall" <<'SQL'
DROP DATABASE IF EXISTS :"db";
CREATE DATABASE :"db";
SQL
psql_ -d "${DB}_onecall" -v myport="$MYPORT" <<'SQL'
CREATE EXTENSION mysql_fdw;
CREATE EXTENSION migrate;
CREATE SERVER mariadb FOREIGN DATA WRAPPER mysql_fdw OPTIONS (host '127.0.0.1', port :'myport');
CREATE USER MAPPING FOR CURRENT_USER SERVER mariadb OPTIONS (username 'migrate', password 'migrate');
\timing on
SELECT migrate_database('chinook', 'mariadb', remote_schema => 'Chinook', target_schema => 'public');
\timing off
\dt public.*
SQL
# every created table against the PostgreSQL edition's data of step 6 (in
# database $DB: matched by name without underscores, columns by position)
differ=0
for t in $(val -d "${DB}_onecall" -c "SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace AND relkind = 'r' ORDER BY 1"); do
    e=$(val -d "$DB" -c "SELECT relname FROM pg_class WHERE relnamespace = 'expected'::regnamespace AND relkind = 'r' AND replace(relname, '_', '') = '$t'")
    a=$(psql -X -q -At -d "${DB}_onecall" -c "COPY (SELECT * FROM public.$t) TO STDOUT" | sort | md5sum)
    b=$(psql -X -q -At -d "$DB" -c "COPY (SELECT * FROM expected.$e) TO STDOUT" | sort | md5sum)
    n=$(val -d "${DB}_onecall" -c "SELECT count(*) FROM public.$t")
    if [[ $a == "$b" ]]; then echo "$t: $n rows, equal to expected.$e"; else echo "$t: DIFFERS from expected.$e"; differ=1; fi
done
if [[ $differ != 0 ]]; then
    echo "FAILED: migrate_database() loaded rows that differ from the PostgreSQL edition's" >&2
    exit 1
fi

section "demo OK"
