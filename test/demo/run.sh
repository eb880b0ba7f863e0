#!/usr/bin/env bash
#
# test/demo/run.sh -- end-to-end demo of the migrate extension.
#
# Run as root on a fresh Debian 12 machine, from the repository root:
#
#     bash test/demo/run.sh
#
# It installs the build and server packages, builds and installs the
# extension, then re-runs itself inside a throw-away cluster
# (pg_virtualenv -t) where it:
#
#   1. creates a dirty legacy database, legacy_crm (generated, deterministic);
#   2. creates the clean target database, crm_v2 (PKs, FKs, CHECKs);
#   3. imports the legacy schema through postgres_fdw (the server connects to
#      itself over the unix socket, peer authentication as postgres);
#   4. defines the plan crm_to_v2 with the SQL API only and commits it;
#   5. rehearses it (dry_run => true), runs it for real, then re-runs one
#      phase (tables => ...) in mode skip_existing;
#   6. prints per-table counts, rejects by reason and target counts, and
#      checks the counter invariant rows_read = written + rejected + skipped
#      (and a few more cross-checks); exits non-zero when one fails.
#
# The data and therefore every count are deterministic; only timings vary.
#
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
PGVER=15

# ---------------------------------------------------------------------------
# outer part: packages, build, throw-away cluster
# ---------------------------------------------------------------------------
if [[ "${1:-}" != --inner ]]; then
    if [[ $(id -u) -ne 0 ]]; then
        echo "run.sh: run me as root (apt-get, make install, pg_virtualenv)" >&2
        exit 2
    fi
    started=$(date +%s)
    export DEBIAN_FRONTEND=noninteractive
    echo "== installing packages"
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends \
        build-essential postgresql-$PGVER postgresql-server-dev-$PGVER \
        postgresql-contrib postgresql-common >/dev/null

    echo "== building and installing the extension"
    PG_CONFIG=/usr/lib/postgresql/$PGVER/bin/pg_config
    make -s -C "$REPO" PG_CONFIG="$PG_CONFIG"
    make -s -C "$REPO" PG_CONFIG="$PG_CONFIG" install >/dev/null

    echo "== starting a throw-away cluster (pg_virtualenv -t)"
    rc=0
    pg_virtualenv -v $PGVER -t -- bash "$HERE/run.sh" --inner || rc=$?
    echo "== demo finished in $(( $(date +%s) - started )) s, exit status $rc"
    exit $rc
fi

# ---------------------------------------------------------------------------
# inner part: runs inside pg_virtualenv (PGHOST, PGPORT, PGUSER are set)
# ---------------------------------------------------------------------------
psql_() { psql -X -q -v ON_ERROR_STOP=1 "$@" 2>&1; }
val() { psql -X -q -At -v ON_ERROR_STOP=1 "$@"; }
section() { printf '\n== %s\n' "$*"; }

PORT=$(val -d postgres -c 'SHOW port')
section "cluster on port $PORT (user $PGUSER)"

psql_ -d postgres <<'SQL'
CREATE DATABASE legacy_crm;
CREATE DATABASE crm_v2;
SQL

# ---------------------------------------------------------------------------
section "1. the dirty legacy source: database legacy_crm"
# ---------------------------------------------------------------------------
psql_ -d legacy_crm <<'SQL'
-- articles: text key, prices stored as text with a currency prefix
CREATE TABLE articles (
    sku     text PRIMARY KEY,
    descr   text,
    price   text
);
INSERT INTO articles
SELECT 'SKU-' || lpad(i::text, 4, '0'),
       CASE WHEN i % 6 = 0 THEN '  ' ELSE '' END
         || (ARRAY['Widget','Gadget','Sprocket','Flange','Gizmo'])[1 + i % 5] || ' ' || i
         || CASE WHEN i % 4 = 0 THEN '   ' ELSE '' END,
       CASE WHEN i % 97 = 0 THEN 'EUR 0.00'              -- refused by CHECK (list_price > 0)
            ELSE 'EUR ' || to_char(1 + (i * 37) % 500 + (i % 100) / 100.0, 'FM9990.00') END
  FROM generate_series(1, 200) i;

-- customers: blanks in names, mixed-case / missing / invalid emails,
-- country and status codes, signup date as text
CREATE TABLE customers (
    id          integer PRIMARY KEY,
    cust_name   text,
    email_addr  text,
    ctry        text,
    stat        text,
    signup      text,
    phone       text            -- not migrated
);
INSERT INTO customers
SELECT i,
       CASE WHEN i % 5 = 0 THEN '  ' ELSE '' END
         || (ARRAY['Anna','Ben','Chloe','David','Emma','Felix','Greta','Hugo'])[1 + i % 8]
         || CASE WHEN i % 9 = 0 THEN '   ' ELSE ' ' END
         || (ARRAY['Mueller','Smith','Dubois','Rossi','Jansen','Novak','Garcia'])[1 + i % 7]
         || CASE WHEN i % 3 = 0 THEN ' ' ELSE '' END,
       CASE WHEN i % 50 = 0 THEN NULL                              -- missing
            WHEN i % 75 = 0 THEN '   '                             -- blank
            WHEN i % 61 = 0 THEN 'customer' || i || ' at example.com'  -- invalid
            WHEN i % 997 = 0 THEN 'customer' || (i - 1) || '@example.com' -- duplicate
            ELSE CASE i % 3 WHEN 0 THEN 'Customer' || i || '@Example.COM'
                            WHEN 1 THEN 'customer' || i || '@example.com'
                            ELSE ' CUSTOMER' || i || '@EXAMPLE.COM ' END END,
       CASE WHEN i % 211 = 0 THEN 'XX'                             -- unknown code
            WHEN i % 13 = 0 THEN 'gb'
            ELSE (ARRAY['D','F','GB','USA','NL','I','E'])[1 + (i * 37) % 7] END,
       CASE WHEN i % 401 = 0 THEN 'Z'                              -- not in the map
            WHEN i % 17 = 0 THEN 'a'
            WHEN i % 10 = 8 THEN 'I'
            WHEN i % 10 = 9 THEN 'X'
            ELSE 'A' END,
       CASE WHEN i % 333 = 0 THEN '31/02/2019'                     -- not a date
            WHEN i % 250 = 0 THEN 'unknown'
            ELSE to_char(date '2015-01-01' + (i * 13) % 3000, 'YYYY-MM-DD') END,
       '+49 30 ' || (1000000 + i)
  FROM generate_series(1, 3000) i;

-- orders: orphan customer ids, amounts as text (some not numbers, some
-- negative), status codes, dates as text
CREATE TABLE orders (
    ord_no  integer PRIMARY KEY,
    cust    integer,
    amt     text,
    st      char(1),
    odate   text
);
INSERT INTO orders
SELECT i,
       CASE WHEN i % 500 = 0 THEN 90000 + i ELSE 1 + (i * 7919) % 3000 END,
       CASE WHEN i % 397 = 0 THEN 'n/a'
            WHEN i % 641 = 0 THEN '-12.50'
            WHEN i % 1000 = 7 THEN '25000.00'              -- implausible: warn
            ELSE to_char(((i * 31) % 50000) / 100.0, 'FM99990.00') END,
       (ARRAY['N','S','S','D','D','C'])[1 + i % 6],
       CASE WHEN i % 450 = 0 THEN '2099-01-01'
            ELSE to_char(date '2020-01-01' + (i * 7) % 1500, 'YYYY-MM-DD') END
  FROM generate_series(1, 6000) i;

-- order_items: composite key, quantities as text
CREATE TABLE order_items (
    order_id    integer,
    line_no     integer,
    article     text,
    qty         text,
    price       numeric,
    PRIMARY KEY (order_id, line_no)
);
INSERT INTO order_items
SELECT o, l,
       'SKU-' || lpad((1 + (o * 13 + l * 7) % 200)::text, 4, '0'),
       CASE WHEN (o * l) % 293 = 0 THEN '0' ELSE (1 + (o * l) % 5)::text END,
       round(1 + ((o * l * 37) % 50000) / 100.0, 2)
  FROM generate_series(1, 6000) o, generate_series(1, 3) l
 WHERE l <= 1 + o % 3;

SELECT 'articles' AS legacy_table, count(*) FROM articles
UNION ALL SELECT 'customers', count(*) FROM customers
UNION ALL SELECT 'orders', count(*) FROM orders
UNION ALL SELECT 'order_items', count(*) FROM order_items;
SQL

# ---------------------------------------------------------------------------
section "2. the clean target schema: database crm_v2"
# ---------------------------------------------------------------------------
psql_ -d crm_v2 <<'SQL'
CREATE TABLE products (
    sku         text PRIMARY KEY CHECK (sku ~ '^SKU-[0-9]{4}$'),
    name        text NOT NULL,
    list_price  numeric(10,2) NOT NULL CHECK (list_price > 0)
);
CREATE TABLE customers (
    id            integer PRIMARY KEY,
    full_name     text NOT NULL CHECK (full_name <> ''),
    email         text UNIQUE CHECK (email = lower(email)),
    country_code  varchar(2) NOT NULL CHECK (country_code ~ '^[A-Z]{2}$'),
    status        text NOT NULL CHECK (status IN ('active', 'inactive', 'closed')),
    signup_date   date
);
CREATE TABLE orders (
    id            integer PRIMARY KEY,
    customer_id   integer NOT NULL REFERENCES customers,
    amount        numeric(12,2) NOT NULL CHECK (amount >= 0),
    status        text NOT NULL CHECK (status IN ('new', 'shipped', 'delivered', 'cancelled')),
    ordered_on    date NOT NULL
);
CREATE TABLE order_lines (
    order_id      integer NOT NULL REFERENCES orders,
    line_no       integer NOT NULL,
    sku           text NOT NULL REFERENCES products,
    quantity      integer NOT NULL CHECK (quantity > 0),
    unit_price    numeric(10,2) NOT NULL,
    PRIMARY KEY (order_id, line_no)
);
SQL

# ---------------------------------------------------------------------------
section "3. FDW access to the source, the extension"
# ---------------------------------------------------------------------------
psql_ -d crm_v2 -v port="$PORT" <<'SQL'
CREATE EXTENSION postgres_fdw;
CREATE EXTENSION migrate;
CREATE SERVER legacy_srv FOREIGN DATA WRAPPER postgres_fdw
    OPTIONS (host '/var/run/postgresql', port :'port', dbname 'legacy_crm');
CREATE USER MAPPING FOR CURRENT_USER SERVER legacy_srv;
CREATE SCHEMA legacy;
IMPORT FOREIGN SCHEMA public FROM SERVER legacy_srv INTO legacy;
SELECT foreign_table_name FROM information_schema.foreign_tables
 WHERE foreign_table_schema = 'legacy' ORDER BY 1;
SQL

# ---------------------------------------------------------------------------
section "4. the plan crm_to_v2 (SQL API only), committed"
# ---------------------------------------------------------------------------
psql_ -d crm_v2 <<'SQL'
\o /dev/null
BEGIN;
SELECT migrate_plan('crm_to_v2', source_schema => 'legacy');

-- value maps (global, named)
SELECT migrate_value_map('country', f, t)
  FROM (VALUES ('D','DE'), ('F','FR'), ('GB','GB'), ('USA','US'),
               ('NL','NL'), ('I','IT'), ('E','ES')) v(f, t);
SELECT migrate_value_map('customer_status', f, t)
  FROM (VALUES ('A','active'), ('I','inactive'), ('X','closed')) v(f, t);
SELECT migrate_value_map('order_status', f, t)
  FROM (VALUES ('N','new'), ('S','shipped'), ('D','delivered'), ('C','cancelled')) v(f, t);

-- products <- legacy.articles (text key sku, same name on both sides)
SELECT migrate_table('crm_to_v2', 'articles', 'products');
SELECT migrate_column('crm_to_v2', 'products', 'name', 'btrim(s.descr)');
SELECT migrate_column('crm_to_v2', 'products', 'list_price',
                      'replace(s.price, ''EUR '', '''')::numeric');

-- customers <- legacy.customers
SELECT migrate_table('crm_to_v2', 'customers', 'customers');
SELECT migrate_column('crm_to_v2', 'customers', 'full_name',
                      'regexp_replace(btrim(s.cust_name), ''\s+'', '' '', ''g'')');
SELECT migrate_column('crm_to_v2', 'customers', 'email',
                      'nullif(lower(btrim(s.email_addr)), '''')');
SELECT migrate_column('crm_to_v2', 'customers', 'country_code',
                      'migrate_lookup(''country'', upper(btrim(s.ctry)))');
SELECT migrate_column('crm_to_v2', 'customers', 'status',
                      'migrate_lookup(''customer_status'', upper(s.stat))');
SELECT migrate_column('crm_to_v2', 'customers', 'signup_date', 's.signup::date');
SELECT migrate_rule('crm_to_v2', 'customers', 'email_format',
                    'email IS NULL OR email ~ ''^[^@ ]+@[^@ ]+\.[a-z]+$''', on_fail => 'reject');
SELECT migrate_rule('crm_to_v2', 'customers', 'country_known',
                    'country_code IS NOT NULL', on_fail => 'reject');
SELECT migrate_rule('crm_to_v2', 'customers', 'email_present',
                    'email IS NOT NULL', on_fail => 'warn');

-- orders <- legacy.orders; the key is renamed (ord_no -> id): migrate_table()
-- says so in a NOTICE, the next call maps it
SELECT migrate_table('crm_to_v2', 'orders', 'orders');
SELECT migrate_column('crm_to_v2', 'orders', 'id', 's.ord_no');
SELECT migrate_column('crm_to_v2', 'orders', 'customer_id', 's.cust');
SELECT migrate_column('crm_to_v2', 'orders', 'amount', 's.amt::numeric');
SELECT migrate_column('crm_to_v2', 'orders', 'status', 'migrate_lookup(''order_status'', s.st)');
SELECT migrate_column('crm_to_v2', 'orders', 'ordered_on', 's.odate::date');
SELECT migrate_rule('crm_to_v2', 'orders', 'not_in_future',
                    'ordered_on <= date ''2025-01-01''', on_fail => 'reject');
SELECT migrate_rule('crm_to_v2', 'orders', 'amount_plausible',
                    'amount < 10000', on_fail => 'warn');

-- order_lines <- legacy.order_items (composite key order_id, line_no)
SELECT migrate_table('crm_to_v2', 'order_items', 'order_lines');
SELECT migrate_column('crm_to_v2', 'order_lines', 'sku', 's.article');
SELECT migrate_column('crm_to_v2', 'order_lines', 'quantity', 's.qty::integer');
SELECT migrate_column('crm_to_v2', 'order_lines', 'unit_price', 's.price');
COMMIT;   -- migrate_run() refuses a plan with uncommitted changes
\o

\pset footer off
SELECT target, source, key, mode FROM migrate.table_map WHERE plan = 'crm_to_v2' ORDER BY target::text;
SELECT target, column_name, expr FROM migrate.column_map WHERE plan = 'crm_to_v2' ORDER BY target::text, column_name;
SELECT target, rule_name, on_fail, check_expr FROM migrate.rule WHERE plan = 'crm_to_v2' ORDER BY target::text, rule_name;
SQL

# ---------------------------------------------------------------------------
# report helpers
# ---------------------------------------------------------------------------
report_run() {     # $1 = run id
    psql_ -d crm_v2 -v run="$1" <<'SQL'
\pset footer off
SELECT run_id, plan, state, dry_run, batch_size, tables,
       round(extract(epoch FROM finished_at - started_at), 2) AS seconds
  FROM migrate.run WHERE run_id = :run;
SELECT target, state, rows_read, rows_written, rows_rejected, rows_skipped,
       rows_warned, source_count, batches
  FROM migrate.run_table WHERE run_id = :run ORDER BY load_order;
SELECT target, reason, loaded, count(*) AS rows,
       (array_agg(source_key ORDER BY reject_id))[1] AS example_key,
       left((array_agg(message ORDER BY reject_id))[1], 60) AS example_message
  FROM migrate.reject WHERE run_id = :run
 GROUP BY target, reason, loaded
 ORDER BY target::text, loaded, reason;
SQL
}

# the invariant and cross-checks of one run; prints them, returns 1 on a failure
check_run() {      # $1 = run id
    local bad
    psql_ -d crm_v2 -v run="$1" <<'SQL'
\pset footer off
SELECT target, rows_read,
       rows_written + rows_rejected + rows_skipped AS "written+rejected+skipped",
       rows_read = rows_written + rows_rejected + rows_skipped AS invariant_holds,
       rows_read = source_count AS matches_source_count
  FROM migrate.run_table WHERE run_id = :run ORDER BY load_order;
SQL
    bad=$(val -d crm_v2 -v run="$1" <<'SQL'
SELECT count(*) FROM migrate.run_table rt
 WHERE rt.run_id = :run
   AND (rt.state <> 'succeeded'
        OR rt.rows_read <> rt.rows_written + rt.rows_rejected + rt.rows_skipped
        OR rt.rows_read IS DISTINCT FROM rt.source_count
        -- every rejected row is in migrate.reject, with its reason
        OR rt.rows_rejected <> (SELECT count(DISTINCT source_key) FROM migrate.reject j
                                 WHERE j.run_id = rt.run_id AND j.target = rt.target AND NOT j.loaded)
        OR rt.rows_warned <> (SELECT count(DISTINCT source_key) FROM migrate.reject j
                               WHERE j.run_id = rt.run_id AND j.target = rt.target AND j.loaded))
SQL
)
    if [[ "$bad" != 0 ]]; then
        echo "FAILED: $bad table(s) of run $1 break the counter invariant or a cross-check" >&2
        return 1
    fi
    echo "OK: run $1: rows_read = rows_written + rows_rejected + rows_skipped = source count(*)" \
         "for every table; rejected and warned rows all in migrate.reject"
}

# ---------------------------------------------------------------------------
section "5. rehearsal: migrate_run('crm_to_v2', dry_run => true)"
# ---------------------------------------------------------------------------
psql_ -d crm_v2 <<'SQL'
SET migrate.batch_size = 1000;
SELECT migrate_run('crm_to_v2', dry_run => true) AS dry_run_id \gset
\echo dry run id: :dry_run_id
SQL
DRY=$(val -d crm_v2 -c "SELECT max(run_id) FROM migrate.run WHERE dry_run")
report_run "$DRY"
check_run "$DRY"
psql_ -d crm_v2 <<'SQL'
\pset footer off
SELECT 'target rows after the dry run (must be 0)' AS what,
       (SELECT count(*) FROM products) + (SELECT count(*) FROM customers)
     + (SELECT count(*) FROM orders) + (SELECT count(*) FROM order_lines) AS rows;
SQL
[[ $(val -d crm_v2 -c "SELECT (SELECT count(*) FROM products) + (SELECT count(*) FROM customers)
       + (SELECT count(*) FROM orders) + (SELECT count(*) FROM order_lines)") == 0 ]] \
    || { echo "FAILED: the dry run wrote target rows" >&2; exit 1; }

# ---------------------------------------------------------------------------
section "6. the real run: migrate_run('crm_to_v2')"
# ---------------------------------------------------------------------------
psql_ -d crm_v2 <<'SQL'
SET migrate.batch_size = 1000;
SELECT migrate_run('crm_to_v2') AS run_id \gset
\echo run id: :run_id
SQL
RUN=$(val -d crm_v2 -c "SELECT max(run_id) FROM migrate.run WHERE NOT dry_run")
report_run "$RUN"
psql_ -d crm_v2 <<'SQL'
\pset footer off
SELECT 'products' AS target_table, count(*) AS rows FROM products
UNION ALL SELECT 'customers', count(*) FROM customers
UNION ALL SELECT 'orders', count(*) FROM orders
UNION ALL SELECT 'order_lines', count(*) FROM order_lines;
-- a few cleaned rows
SELECT id, full_name, email, country_code, status, signup_date
  FROM customers ORDER BY id LIMIT 5;
SQL
check_run "$RUN"
bad=$(val -d crm_v2 -v run="$RUN" <<'SQL'
SELECT count(*)
  FROM (VALUES ('products'::regclass, (SELECT count(*) FROM products)),
               ('customers', (SELECT count(*) FROM customers)),
               ('orders', (SELECT count(*) FROM orders)),
               ('order_lines', (SELECT count(*) FROM order_lines))) v(target, n)
  JOIN migrate.run_table rt ON rt.target = v.target AND rt.run_id = :run
 WHERE rt.rows_written <> v.n
SQL
)
[[ "$bad" == 0 ]] || { echo "FAILED: target row counts differ from rows_written" >&2; exit 1; }
echo "OK: target row counts = rows_written of run $RUN"

# ---------------------------------------------------------------------------
section "7. phased re-run: orders and order_lines again, mode skip_existing"
# ---------------------------------------------------------------------------
psql_ -d crm_v2 <<'SQL'
SELECT migrate_table('crm_to_v2', 'orders', 'orders', mode => 'skip_existing');
SELECT migrate_table('crm_to_v2', 'order_items', 'order_lines', mode => 'skip_existing');
SET migrate.batch_size = 1000;
SELECT migrate_run('crm_to_v2', tables => ARRAY['orders', 'order_lines']) AS rerun_id \gset
\echo re-run id: :rerun_id
SQL
RERUN=$(val -d crm_v2 -c "SELECT max(run_id) FROM migrate.run WHERE NOT dry_run")
report_run "$RERUN"
check_run "$RERUN"

section "run history (migrate_status, migrate.event)"
psql_ -d crm_v2 <<'SQL'
\pset footer off
SELECT run_id, plan, run_state, target, table_state, rows_read, rows_written,
       rows_rejected, rows_skipped
  FROM migrate_status();
SELECT event_id, run_id, event, details FROM migrate.event ORDER BY event_id;
SQL

section "demo OK"
