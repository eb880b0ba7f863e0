#!/usr/bin/env bash
#
# test/bench/bench-mysql.sh - migrate against INSERT ... SELECT and pgloader,
# MariaDB -> PostgreSQL through mysql_fdw
#
# Creates table orders (ROWS rows, the 10 columns of /work/shared/BASELINES.md
# in MariaDB types: bigint PK, int, varchar email, varchar status,
# decimal(12,2), datetime, timestamp, tinyint(1), varchar(40), date) in
# database bench_my of the throwaway MariaDB (test/mariadb/start.sh; started
# and stopped here unless one already runs on $MIGRATE_MARIADB_PORT), then
# copies it into PostgreSQL table orders (bigint PK, ..., boolean, ...) with
#   (a) INSERT INTO orders SELECT ... FROM my_raw.orders   (mysql_fdw, as imported)
#   (a2) the same statement migrate_automap's mapping makes, from my_src.orders
#       (the foreign table migrate reads: dates read as text, zero dates -> NULL)
#   (b) SELECT migrate_run('bench_my')                      (plan by migrate_automap)
#   (c) pgloader mysql://... pgsql://...                    (Debian package)
# REPS times each (target truncated and CHECKPOINT before every timing),
# checks the row counts, and prints the medians and the ratios.
#
# Usage (as root):
#   bash test/bench/bench-mysql.sh     # PostgreSQL: the cluster PGHOST/PGPORT/PGUSER point
#                                      # at (migrate and mysql_fdw installed there); with no
#                                      # PGPORT set: make install and a pg_virtualenv cluster
# Environment: ROWS (1000000), REPS (3), BATCH_SIZE (100000), PGLOADER (auto|off),
# PGLOADER_TIMEOUT (600 s), MIGRATE_MARIADB_PORT (3307).
#
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
export ROWS=${ROWS:-1000000}
export REPS=${REPS:-3}
export BATCH_SIZE=${BATCH_SIZE:-100000}
export PGLOADER=${PGLOADER:-auto}
export PGLOADER_TIMEOUT=${PGLOADER_TIMEOUT:-600}
export MIGRATE_MARIADB_PORT=${MIGRATE_MARIADB_PORT:-3307}
MYSOCK=/tmp/migrate-mariadb-$MIGRATE_MARIADB_PORT/mysqld.sock

die() { echo "bench-mysql.sh: ERROR: $*" >&2; exit 1; }
say() { echo "bench-mysql.sh: $*" >&2; }

[[ $(id -u) -eq 0 ]] || die "run as root: MariaDB is started as root (user mysql)"
[[ $ROWS =~ ^[0-9]+$ && $ROWS -ge 1 ]] || die "ROWS must be a positive integer"
[[ $REPS =~ ^[0-9]+$ && $REPS -ge 1 ]] || die "REPS must be a positive integer"

if [[ ${1:-} != --inner ]]; then
	if ! mariadb-admin --socket="$MYSOCK" ping >/dev/null 2>&1; then
		say "starting a throwaway MariaDB on port $MIGRATE_MARIADB_PORT"
		MIGRATE_MARIADB_CHINOOK=0 bash "$REPO/test/mariadb/start.sh" >&2
		trap 'bash "$REPO/test/mariadb/stop.sh"' EXIT
	fi
	if [[ -z ${PGPORT:-} ]]; then
		say "no PGPORT: make install and a throwaway cluster (pg_virtualenv)"
		make -s -C "$REPO" PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config install >/dev/null
		rc=0
		pg_virtualenv -t -v 15 -o shared_buffers=1GB -o max_wal_size=4GB -o fsync=on \
			-- bash "$0" --inner || rc=$?
		exit $rc
	fi
	bash "$0" --inner
	exit $?
fi

# shared helpers: q, now, fsub, fdiv, rate, median, ORDERS_COLS
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
my() { mariadb --socket="$MYSOCK" "$@"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || a == 0) print "n/a"; else printf "%.2fx", b / a }'; }

say "PostgreSQL $(q -d postgres -c 'SHOW server_version') on ${PGHOST:-local}:$PGPORT; MariaDB on 127.0.0.1:$MIGRATE_MARIADB_PORT; ROWS=$ROWS REPS=$REPS"

# ---------------------------------------------------------------------------
# source in MariaDB
# ---------------------------------------------------------------------------
t=$(now)
my >/dev/null <<SQL
DROP DATABASE IF EXISTS bench_my;
CREATE DATABASE bench_my;
USE bench_my;
CREATE TABLE orders (
    id          bigint NOT NULL PRIMARY KEY,
    customer_id int NOT NULL,
    email       varchar(64) NOT NULL,
    status      varchar(16) NOT NULL,
    amount      decimal(12,2) NOT NULL,
    created_at  datetime NOT NULL,
    updated_at  timestamp NULL,
    paid        tinyint(1) NOT NULL,
    note        varchar(40),
    ship_date   date
);
SET time_zone = '+00:00';
INSERT INTO orders
SELECT seq, 1 + (seq * 7919) % 100000,
       CONCAT('customer', seq % 100000, '@example.com'),
       ELT(1 + seq % 5, 'new', 'paid', 'shipped', 'delivered', 'cancelled'),
       ((seq * 37) % 1000000) / 100.0,
       TIMESTAMPADD(SECOND, seq * 13, '2020-01-01'),
       IF(seq % 10 <> 0, TIMESTAMPADD(SECOND, seq * 17, '2020-01-01'), NULL),
       seq % 3 <> 0,
       CONCAT(MD5(seq), LPAD(HEX(seq), 8, '0')),
       IF(seq % 7 <> 0, DATE_ADD('2020-01-01', INTERVAL seq % 1500 DAY), NULL)
  FROM seq_1_to_$ROWS;
ANALYZE TABLE orders \G
SQL
[[ $(my -N -B -e 'SELECT count(*) FROM bench_my.orders') == "$ROWS" ]] || die "MariaDB source has the wrong row count"
say "MariaDB source ready in $(fsub "$(now)" "$t") s"

# ---------------------------------------------------------------------------
# target
# ---------------------------------------------------------------------------
q -d postgres -c 'DROP DATABASE IF EXISTS bench_tgt' -c 'CREATE DATABASE bench_tgt'
"${PSQL[@]}" -d bench_tgt >/dev/null <<SQL
SET client_min_messages = warning;
CREATE EXTENSION mysql_fdw;
CREATE EXTENSION migrate;
CREATE SERVER mysrv FOREIGN DATA WRAPPER mysql_fdw OPTIONS (host '127.0.0.1', port '$MIGRATE_MARIADB_PORT');
CREATE USER MAPPING FOR CURRENT_USER SERVER mysrv OPTIONS (username 'migrate', password 'migrate');
CREATE SCHEMA my_raw;
IMPORT FOREIGN SCHEMA bench_my FROM SERVER mysrv INTO my_raw;
CREATE TABLE orders ($ORDERS_COLS);
SELECT migrate_plan('bench_my', source_server => 'mysrv', source_schema => 'my_src',
                    options => '{"remote_schema": "bench_my"}');
SELECT * FROM migrate_automap('bench_my');
SQL
say "plan bench_my (migrate_automap):"
q -d bench_tgt -c "SELECT column_name || ' <- ' || expr FROM migrate._mapped_columns('bench_my', 'orders')" | sed 's/^/    /' >&2

prepare() { q -d bench_tgt -c "TRUNCATE orders" -c 'CHECKPOINT' >/dev/null; }
check_count() {
	local n
	n=$(q -d bench_tgt -c "SELECT count(*) FROM $2")
	[[ $n == "$ROWS" ]] || die "$1: target $2 has $n rows, expected $ROWS"
}

T_INSERT=() T_INSERT2=() T_MIGRATE=() T_MIGRATE2=() T_PGLOADER=()
SAME_SQL=$(q -d bench_tgt -c "SELECT 'INSERT INTO orders (' || string_agg(quote_ident(column_name), ', ' ORDER BY attnum)
                                     || ') SELECT ' || string_agg(expr, ', ' ORDER BY attnum) || ' FROM my_src.orders AS s'
                                FROM migrate._mapped_columns('bench_my', 'orders')")
for ((r = 1; r <= REPS; r++)); do
	prepare
	t=$(now)
	q -d bench_tgt -c "INSERT INTO orders SELECT id, customer_id, email, status, amount, created_at,
	                          updated_at, paid <> 0, note, ship_date FROM my_raw.orders" >/dev/null
	T_INSERT+=("$(fsub "$(now)" "$t")")
	check_count "INSERT ... SELECT" orders
	say "rep $r: INSERT ... SELECT ${T_INSERT[-1]} s"

	prepare
	t=$(now)
	q -d bench_tgt -c "$SAME_SQL" >/dev/null
	T_INSERT2+=("$(fsub "$(now)" "$t")")
	check_count "INSERT ... SELECT (migrate's mapping)" orders
	say "rep $r: INSERT ... SELECT with migrate's mapping ${T_INSERT2[-1]} s"

	prepare
	t=$(now)
	q -d bench_tgt -c "SET migrate.batch_size = $BATCH_SIZE" -c "SET client_min_messages = warning" \
		-c "SELECT migrate_run('bench_my')" >/dev/null
	T_MIGRATE+=("$(fsub "$(now)" "$t")")
	check_count "migrate_run" orders
	say "rep $r: migrate_run ${T_MIGRATE[-1]} s"

	# two workers, key ranges of the same table (pgloader below runs 2 workers too)
	prepare
	t=$(now)
	q -d bench_tgt -c "SET migrate.batch_size = $BATCH_SIZE" -c "SET client_min_messages = warning" \
		-c "SELECT migrate_run('bench_my', parallel => 2)" >/dev/null
	T_MIGRATE2+=("$(fsub "$(now)" "$t")")
	check_count "migrate_run parallel 2" orders
	say "rep $r: migrate_run parallel 2 ${T_MIGRATE2[-1]} s"
done

# pgloader MySQL -> PostgreSQL, into schema pgl (it creates the table)
if [[ $PGLOADER != off ]] && command -v pgloader >/dev/null; then
	if [[ -n ${PGHOST:-} && ${PGHOST:0:1} == / ]]; then
		PGURI="pgsql://${PGUSER:-postgres}@unix:$PGHOST:$PGPORT/bench_tgt"
	else
		PGURI="pgsql://${PGUSER:-postgres}:${PGPASSWORD:-}@${PGHOST:-localhost}:$PGPORT/bench_tgt"
	fi
	WORK=$(mktemp -d)
	cat >"$WORK/load" <<LOAD
LOAD DATABASE
     FROM mysql://migrate:migrate@127.0.0.1:$MIGRATE_MARIADB_PORT/bench_my
     INTO $PGURI
 WITH include drop, create tables, create indexes, workers = 2, concurrency = 1,
      prefetch rows = 10000
 ALTER SCHEMA 'bench_my' RENAME TO 'pgl';
LOAD
	for ((r = 1; r <= REPS; r++)); do
		q -d bench_tgt -c 'DROP SCHEMA IF EXISTS pgl CASCADE' -c 'CHECKPOINT' >/dev/null
		t=$(now)
		if timeout "$PGLOADER_TIMEOUT" pgloader --no-ssl-cert-verification "$WORK/load" >"$WORK/log" 2>&1; then
			T_PGLOADER+=("$(fsub "$(now)" "$t")")
			check_count pgloader pgl.orders
			say "rep $r: pgloader ${T_PGLOADER[-1]} s"
		else
			say "pgloader failed (log below); left out"; tail -20 "$WORK/log" >&2
			break
		fi
	done
	rm -rf "$WORK"
fi

mi=$(median "${T_INSERT[@]}")
mi2=$(median "${T_INSERT2[@]}")
SRCCOUNT0=$(now); q -d bench_tgt -c 'SELECT count(*) FROM my_src.orders' >/dev/null; SRCCOUNT=$(fsub "$(now)" "$SRCCOUNT0")
mm=$(median "${T_MIGRATE[@]}")
mm2=$(median "${T_MIGRATE2[@]}")
mp=""
[[ ${#T_PGLOADER[@]} -gt 0 ]] && mp=$(median "${T_PGLOADER[@]}")
cat <<REPORT

## MariaDB -> PostgreSQL, $ROWS rows, median of $REPS (batch_size $BATCH_SIZE)

| method | seconds (runs) | rows/s |
|---|---|---|
| INSERT INTO orders SELECT ... FROM mysql_fdw table | $mi (${T_INSERT[*]}) | $(rate "$mi") |
| the same with migrate's mapping, from my_src.orders | $mi2 (${T_INSERT2[*]}) | $(rate "$mi2") |
| migrate_run (plan by migrate_automap) | $mm (${T_MIGRATE[*]}) | $(rate "$mm") |
| migrate_run, parallel => 2 | $mm2 (${T_MIGRATE2[*]}) | $(rate "$mm2") |
| pgloader MySQL -> PostgreSQL | ${mp:-n/a} (${T_PGLOADER[*]:-not run}) | $( [[ -n $mp ]] && rate "$mp" || echo n/a) |

migrate vs INSERT ... SELECT: $(ratio "$mm" "$mi") (target >= 1.0x); vs the same mapping by hand: $(ratio "$mm" "$mi2")
(migrate also runs the independent count(*) of the source: $SRCCOUNT s here)
migrate vs pgloader: $( [[ -n $mp ]] && ratio "$mm" "$mp" || echo n/a) (target >= 1.2x)
migrate parallel => 2 vs INSERT ... SELECT: $(ratio "$mm2" "$mi"); vs pgloader (workers = 2): $( [[ -n $mp ]] && ratio "$mm2" "$mp" || echo n/a)
REPORT
