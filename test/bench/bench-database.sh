#!/usr/bin/env bash
#
# test/bench/bench-database.sh - migrate_database against pgloader on whole
# MySQL databases (issue 15, "Speed")
#
# Target: migrate_database(..., parallel => 2) on a MySQL source is at least
# as fast as pgloader with its default workers on the same database in the
# same run, table and index creation included.
#
# Sources, in a throwaway MariaDB (test/mariadb/start.sh, port
# $MIGRATE_MARIADB_PORT; started and stopped here unless one runs there):
#   Chinook     the sample database start.sh loads (11 tables, 15,607 rows)
#   bench_shop  generated here with SQL: 11 tables (region, warehouse,
#               category, customer, product, product_image, inventory,
#               orders, order_line, payment, review), about 1.7M rows x SCALE,
#               foreign keys, unique and secondary indexes, composite keys,
#               int unsigned, decimal, datetime, date, varchar, text,
#               tinyint(1), enum, and a BLOB of 2-4 kB (product_image.data)
# For each source, REPS times, alternating which goes first, each into a
# fresh empty PostgreSQL database (DROP / CREATE DATABASE, CHECKPOINT):
#   (a) pgloader mysql://... pgsql://...   (its defaults: it creates the
#       schema, tables, indexes and foreign keys, resets sequences)
#   (b) SELECT migrate_database(plan, server, remote_schema => db,
#       parallel => 2)                    (after CREATE EXTENSION mysql_fdw,
#       migrate, a server and a user mapping: timed apart, not in (b))
# Both must leave every source table with the source's row count (the
# script fails otherwise).  Reported: medians, the ratio pgloader / migrate
# (>= 1.0: the target is met), the indexes and foreign keys each created,
# and migrate_database's phases (prepare: plan, import, automap with
# create_missing, check; run: load, index, fk units (the sum of their durations); finish: sequences,
# verify, report) from its run's catalog rows.  With STATS=1 (default), a
# last migrate_database of Chinook under pg_stat_statements (track all) and
# track_functions: the statements and functions its time goes to.
#
# Usage (as root):
#   bash test/bench/bench-database.sh                  # INSTALL=private: no lock needed
#   REPS=1 SCALE=0.1 bash test/bench/bench-database.sh # quick
# Environment: REPS (3), SCALE (1: bench_shop size factor, may be a fraction),
# DATABASES ("Chinook bench_shop"), STATS (1), INSTALL (private | 1 | 0),
# MIGRATE_MARIADB_PORT (3327), BENCH_PGPORT (5488: the throwaway cluster's),
# PGLOADER_TIMEOUT (900 s), OUT (test/bench/results-database-latest.md).
#
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)

export REPS=${REPS:-3}
export SCALE=${SCALE:-1}
export DATABASES=${DATABASES:-Chinook bench_shop}
export STATS=${STATS:-1}
export INSTALL=${INSTALL:-private}
export MIGRATE_MARIADB_PORT=${MIGRATE_MARIADB_PORT:-3327}
export BENCH_PGPORT=${BENCH_PGPORT:-5488}
export PGLOADER_TIMEOUT=${PGLOADER_TIMEOUT:-900}
export OUT=${OUT:-$HERE/results-database-latest.md}
MYSOCK=/tmp/migrate-mariadb-$MIGRATE_MARIADB_PORT/mysqld.sock

die() { echo "bench-database.sh: ERROR: $*" >&2; exit 1; }
say() { echo "bench-database.sh: $*" >&2; }

# ---------------------------------------------------------------------------
# outer part: check, MariaDB, install, re-exec inside a throwaway cluster
# ---------------------------------------------------------------------------
if [[ ${1:-} != --inner ]]; then
	[[ $(id -u) -eq 0 ]] || die "run as root: MariaDB runs as user mysql, pg_virtualenv's cluster as postgres"
	[[ $REPS =~ ^[0-9]+$ && $REPS -ge 1 ]] || die "REPS must be a positive integer"
	[[ $SCALE =~ ^[0-9]*\.?[0-9]+$ ]] && awk -v s="$SCALE" 'BEGIN { exit !(s > 0 && s <= 20) }' ||
		die "SCALE must be a number in (0, 20]"
	[[ $INSTALL =~ ^(0|1|private)$ ]] || die "INSTALL must be 0, 1 or private"
	[[ $MIGRATE_MARIADB_PORT =~ ^[0-9]+$ && $BENCH_PGPORT =~ ^[0-9]+$ ]] || die "ports must be numbers"
	for d in $DATABASES; do
		[[ $d == Chinook || $d == bench_shop ]] || die "DATABASES: Chinook and/or bench_shop (got '$d')"
	done
	command -v pg_virtualenv >/dev/null || die "pg_virtualenv not found (package postgresql-common)"
	command -v pgloader >/dev/null || die "pgloader not found (Debian package pgloader)"

	PRIVATE_DIR='' BUILD_DIR='' STOP_MARIADB=0
	cleanup() {
		[[ $STOP_MARIADB == 0 ]] || bash "$REPO/test/mariadb/stop.sh"
		rm -rf "$PRIVATE_DIR" "$BUILD_DIR"
	}
	trap cleanup EXIT
	if ! mariadb-admin --socket="$MYSOCK" ping >/dev/null 2>&1; then
		say "starting a throwaway MariaDB on port $MIGRATE_MARIADB_PORT (with Chinook)"
		STOP_MARIADB=1
		MIGRATE_MARIADB_CHINOOK=1 bash "$REPO/test/mariadb/start.sh" >&2
	elif [[ " $DATABASES " == *" Chinook "* ]] &&
		[[ $(mariadb --socket="$MYSOCK" -N -B -e "SELECT count(*) FROM information_schema.schemata WHERE schema_name = 'Chinook'") != 1 ]]; then
		die "the MariaDB on port $MIGRATE_MARIADB_PORT has no Chinook database"
	fi

	EXTRA=()
	if [[ $INSTALL == 1 || $INSTALL == private ]]; then
		# private: into a directory of this run only (make install DESTDIR=),
		# which the cluster reads first (Debian's extension_destdir): no lock
		dest=()
		if [[ $INSTALL == private ]]; then
			PRIVATE_DIR=$(mktemp -d -t migrate-bench-install.XXXXXX)
			chmod 755 "$PRIVATE_DIR"
			dest=(DESTDIR="$PRIVATE_DIR")
			EXTRA=(-o extension_destdir="$PRIVATE_DIR"
				-o dynamic_library_path="$PRIVATE_DIR/usr/lib/postgresql/15/lib:/usr/lib/postgresql/15/lib")
		fi
		# a copy of the tree (uncommitted changes included, and said in the report)
		BUILD_DIR=$(mktemp -d -t migrate-bench-build.XXXXXX)
		git -C "$REPO" ls-files -z | (cd "$REPO" && xargs -0 cp --parents -t "$BUILD_DIR")
		say "make install ${dest[*]} from a copy of $REPO"
		log=$(mktemp)
		if ! { make -C "$BUILD_DIR" PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config &&
			make -C "$BUILD_DIR" PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config install "${dest[@]}"; } >"$log" 2>&1; then
			cat "$log" >&2
			rm -f "$log"
			die "make install failed"
		fi
		rm -f "$log"
	fi
	[[ $STATS == 1 ]] && EXTRA+=(-o shared_preload_libraries=pg_stat_statements)
	export BENCH_REPO=$REPO
	rc=0
	PGPORT=$BENCH_PGPORT pg_virtualenv -t -v 15 \
		-o shared_buffers=1GB -o max_wal_size=4GB -o fsync=on -o synchronous_commit=on \
		-o max_worker_processes=16 "${EXTRA[@]}" \
		-- bash "$0" --inner || rc=$?
	exit $rc
fi

# ---------------------------------------------------------------------------
# inner part: PGHOST/PGPORT/PGUSER/PGPASSWORD point at the throwaway cluster
# ---------------------------------------------------------------------------
[[ -n ${PGPORT:-} && -n ${PGPASSWORD:-} ]] || die "--inner is meant to run under pg_virtualenv"
set -E
trap 'echo "bench-database.sh: ERROR: line $LINENO failed: $BASH_COMMAND" >&2' ERR
WORK=$(mktemp -d -t migrate-bench-database.XXXXXX)
chmod 755 "$WORK"
trap 'rm -rf "$WORK"' EXIT

# shared helpers: q, now, fsub, fdiv, median
. "$HERE/lib.sh"
my() { mariadb --socket="$MYSOCK" "$@"; }
# pgloader_s migrate_s: "1.23" (pgloader / migrate), "met" or "**missed**"
ratio() { awk -v p="$1" -v m="$2" 'BEGIN { if (m == "" || m == 0) print "n/a"; else printf "%.2f", p / m }'; }
meets() { awk -v r="$1" 'BEGIN { print (r != "n/a" && r >= 1.0) ? "met" : "**missed**" }'; }
TGT=bench_db_target

PGVER=$(q -d postgres -c 'SHOW server_version')
MYVER=$(my -N -B -e 'SELECT version()')
PGLVER=$(pgloader --version 2>&1 | sed -n '1{s/^pgloader version //; s/"//g; p}')
say "PostgreSQL $PGVER on $PGHOST:$PGPORT, MariaDB $MYVER on 127.0.0.1:$MIGRATE_MARIADB_PORT, pgloader $PGLVER;" \
	"DATABASES='$DATABASES' REPS=$REPS SCALE=$SCALE"

# ---------------------------------------------------------------------------
# bench_shop in MariaDB
# ---------------------------------------------------------------------------
n() { awk -v a="$1" -v s="$SCALE" 'BEGIN { v = int(a * s); print (v < 1 ? 1 : v) }'; }
N_CUST=$(n 100000) N_PROD=$(n 20000) N_IMG=$(n 10000) N_ORD=$(n 300000) N_PAY=$(n 300000) N_REV=$(n 100000)
if [[ " $DATABASES " == *" bench_shop "* ]]; then
	t=$(now)
	my >/dev/null <<SQL
SET SESSION foreign_key_checks = 0, unique_checks = 0;
DROP DATABASE IF EXISTS bench_shop;
CREATE DATABASE bench_shop CHARACTER SET utf8mb4;
USE bench_shop;
CREATE TABLE region (
    id        tinyint unsigned NOT NULL PRIMARY KEY,
    name      varchar(32) NOT NULL UNIQUE
);
CREATE TABLE warehouse (
    id        smallint unsigned NOT NULL AUTO_INCREMENT PRIMARY KEY,
    region_id tinyint unsigned NOT NULL,
    name      varchar(64) NOT NULL,
    opened    date,
    KEY (region_id),
    FOREIGN KEY (region_id) REFERENCES region (id)
);
CREATE TABLE category (
    id        smallint unsigned NOT NULL PRIMARY KEY,
    parent_id smallint unsigned NULL,
    name      varchar(64) NOT NULL,
    KEY (parent_id),
    FOREIGN KEY (parent_id) REFERENCES category (id)
);
CREATE TABLE customer (
    id         int unsigned NOT NULL AUTO_INCREMENT PRIMARY KEY,
    region_id  tinyint unsigned NOT NULL,
    email      varchar(80) NOT NULL,
    name       varchar(80) NOT NULL,
    status     enum('active','dormant','closed') NOT NULL DEFAULT 'active',
    is_vip     tinyint(1) NOT NULL DEFAULT 0,
    balance    decimal(12,2) NOT NULL DEFAULT 0.00,
    created_at datetime NOT NULL,
    last_login datetime NULL,
    UNIQUE KEY customer_email (email),
    KEY (region_id),
    KEY (created_at),
    FOREIGN KEY (region_id) REFERENCES region (id)
);
CREATE TABLE product (
    id          int unsigned NOT NULL AUTO_INCREMENT PRIMARY KEY,
    category_id smallint unsigned NOT NULL,
    sku         varchar(20) NOT NULL,
    name        varchar(100) NOT NULL,
    description text,
    price       decimal(10,2) NOT NULL,
    weight_kg   decimal(8,3),
    active      tinyint(1) NOT NULL DEFAULT 1,
    created_at  datetime NOT NULL,
    UNIQUE KEY product_sku (sku),
    KEY (category_id),
    FOREIGN KEY (category_id) REFERENCES category (id)
);
CREATE TABLE product_image (
    id         int unsigned NOT NULL AUTO_INCREMENT PRIMARY KEY,
    product_id int unsigned NOT NULL,
    mime       varchar(32) NOT NULL,
    data       blob NOT NULL,
    KEY (product_id),
    FOREIGN KEY (product_id) REFERENCES product (id)
);
CREATE TABLE inventory (
    warehouse_id smallint unsigned NOT NULL,
    product_id   int unsigned NOT NULL,
    qty          int unsigned NOT NULL,
    updated_at   datetime NOT NULL,
    PRIMARY KEY (warehouse_id, product_id),
    KEY (product_id),
    FOREIGN KEY (warehouse_id) REFERENCES warehouse (id),
    FOREIGN KEY (product_id) REFERENCES product (id)
);
CREATE TABLE orders (
    id          int unsigned NOT NULL AUTO_INCREMENT PRIMARY KEY,
    customer_id int unsigned NOT NULL,
    status      enum('new','paid','shipped','delivered','cancelled') NOT NULL,
    ordered_at  datetime NOT NULL,
    shipped_at  datetime NULL,
    total       decimal(12,2) NOT NULL,
    gift        tinyint(1) NOT NULL DEFAULT 0,
    note        varchar(200),
    KEY (customer_id),
    KEY (ordered_at),
    KEY (status),
    FOREIGN KEY (customer_id) REFERENCES customer (id)
);
CREATE TABLE order_line (
    order_id   int unsigned NOT NULL,
    line_no    smallint unsigned NOT NULL,
    product_id int unsigned NOT NULL,
    qty        int unsigned NOT NULL,
    unit_price decimal(10,2) NOT NULL,
    discount   decimal(5,2) NOT NULL DEFAULT 0.00,
    PRIMARY KEY (order_id, line_no),
    KEY (product_id),
    FOREIGN KEY (order_id) REFERENCES orders (id),
    FOREIGN KEY (product_id) REFERENCES product (id)
);
CREATE TABLE payment (
    id       bigint unsigned NOT NULL AUTO_INCREMENT PRIMARY KEY,
    order_id int unsigned NOT NULL,
    method   enum('card','transfer','paypal','voucher') NOT NULL,
    amount   decimal(12,2) NOT NULL,
    paid_at  datetime NOT NULL,
    ok       tinyint(1) NOT NULL,
    KEY (order_id),
    KEY (paid_at),
    FOREIGN KEY (order_id) REFERENCES orders (id)
);
CREATE TABLE review (
    id          int unsigned NOT NULL AUTO_INCREMENT PRIMARY KEY,
    product_id  int unsigned NOT NULL,
    customer_id int unsigned NOT NULL,
    rating      tinyint unsigned NOT NULL,
    title       varchar(120),
    body        text,
    created_at  datetime NOT NULL,
    KEY (product_id),
    KEY (customer_id),
    FOREIGN KEY (product_id) REFERENCES product (id),
    FOREIGN KEY (customer_id) REFERENCES customer (id)
);

INSERT INTO region SELECT seq, CONCAT('region ', seq) FROM seq_1_to_10;
INSERT INTO warehouse SELECT seq, 1 + seq % 10, CONCAT('warehouse ', seq),
       IF(seq % 4 = 0, NULL, DATE_ADD('2015-01-01', INTERVAL seq * 37 DAY)) FROM seq_1_to_20;
INSERT INTO category SELECT seq, IF(seq <= 10, NULL, 1 + seq % 10), CONCAT('category ', seq) FROM seq_1_to_50;
INSERT INTO customer
SELECT seq, 1 + seq % 10, CONCAT('c', seq, '@example.com'), CONCAT('Customer ', MD5(seq)),
       ELT(1 + seq % 7 DIV 5 + seq % 11 DIV 10, 'active', 'dormant', 'closed'),
       seq % 13 = 0, ((seq * 7919) % 1000000) / 100.0,
       TIMESTAMPADD(SECOND, seq * 311, '2018-01-01'),
       IF(seq % 5 = 0, NULL, TIMESTAMPADD(SECOND, seq * 317, '2019-01-01'))
  FROM seq_1_to_$N_CUST;
INSERT INTO product
SELECT seq, 11 + seq % 40, CONCAT('SKU-', LPAD(seq, 8, '0')), CONCAT('Product ', seq, ' ', LEFT(MD5(seq), 12)),
       IF(seq % 9 = 0, NULL, REPEAT(CONCAT(MD5(seq), ' '), 1 + seq % 8)),
       1 + (seq * 37 % 100000) / 100.0, IF(seq % 6 = 0, NULL, (seq * 13 % 50000) / 1000.0),
       seq % 17 <> 0, TIMESTAMPADD(MINUTE, seq * 7, '2016-01-01')
  FROM seq_1_to_$N_PROD;
-- 2 to 4 kB per image
INSERT INTO product_image
SELECT seq, 1 + (seq * 7) % $N_PROD, IF(seq % 3 = 0, 'image/png', 'image/jpeg'),
       REPEAT(UNHEX(SHA2(seq, 256)), 64 + seq % 64)
  FROM seq_1_to_$N_IMG;
INSERT INTO inventory
SELECT w.seq, p.seq, (w.seq * p.seq) % 500, TIMESTAMPADD(MINUTE, p.seq, '2024-01-01')
  FROM seq_1_to_5 w, seq_1_to_$N_PROD p;
INSERT INTO orders
SELECT seq, 1 + (seq * 7919) % $N_CUST, ELT(1 + seq % 5, 'new', 'paid', 'shipped', 'delivered', 'cancelled'),
       TIMESTAMPADD(SECOND, seq * 97, '2020-01-01'),
       IF(seq % 5 IN (2, 3), TIMESTAMPADD(SECOND, seq * 97 + 86400 * (1 + seq % 4), '2020-01-01'), NULL),
       ((seq * 37) % 1000000) / 100.0, seq % 20 = 0,
       IF(seq % 4 = 0, CONCAT('deliver to the back door, ', MD5(seq)), NULL)
  FROM seq_1_to_$N_ORD;
-- 1 to 4 lines per order
INSERT INTO order_line
SELECT o.seq, l.seq, 1 + (o.seq * 31 + l.seq * 7) % $N_PROD, 1 + (o.seq + l.seq) % 9,
       ((o.seq * 13 + l.seq) % 20000) / 100.0 + 1, IF((o.seq + l.seq) % 10 = 0, 5.00, 0.00)
  FROM seq_1_to_$N_ORD o JOIN seq_1_to_4 l ON l.seq <= 1 + o.seq % 4;
INSERT INTO payment
SELECT seq, 1 + (seq * 3) % $N_ORD, ELT(1 + seq % 4, 'card', 'transfer', 'paypal', 'voucher'),
       ((seq * 41) % 1000000) / 100.0, TIMESTAMPADD(SECOND, seq * 97 + 3600, '2020-01-01'), seq % 50 <> 0
  FROM seq_1_to_$N_PAY;
INSERT INTO review
SELECT seq, 1 + (seq * 17) % $N_PROD, 1 + (seq * 7919) % $N_CUST, 1 + seq % 5,
       IF(seq % 3 = 0, NULL, CONCAT('Review ', seq)),
       IF(seq % 7 = 0, NULL, REPEAT(CONCAT(SHA1(seq), ' lorem ipsum dolor sit amet '), 1 + seq % 5)),
       TIMESTAMPADD(SECOND, seq * 601, '2021-01-01')
  FROM seq_1_to_$N_REV;
ANALYZE TABLE region, warehouse, category, customer, product, product_image, inventory, orders,
              order_line, payment, review;
SQL
	say "MariaDB bench_shop generated in $(fsub "$(now)" "$t") s"
fi

# "table<TAB>rows" of every base table of MariaDB database $1, lower-cased names, sorted
source_counts() {
	local sql
	sql=$(my -N -B -e "SET SESSION group_concat_max_len = 1000000;
		SELECT GROUP_CONCAT(CONCAT('SELECT ''', LOWER(table_name), ''', COUNT(*) FROM \`', table_schema, '\`.\`',
		                           table_name, '\`') SEPARATOR ' UNION ALL ')
		  FROM information_schema.tables WHERE table_schema = '$1' AND table_type = 'BASE TABLE'")
	my -N -B -e "$sql" | LC_ALL=C sort
}
# the same for the tables of database $TGT in the schemas matching regexp $1
target_counts() {
	printf '%s\n\\gexec\n' "SELECT format('SELECT %L || E''\\t'' || count(*) FROM %I.%I', lower(c.relname), n.nspname, c.relname)
	   FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
	  WHERE c.relkind IN ('r', 'p') AND n.nspname ~ '$1'" | q -d "$TGT" | LC_ALL=C sort
}
# indexes and foreign keys in the schemas matching $1: "<indexes> <fks>"
target_objects() {
	q -d "$TGT" -F ' ' -c "SELECT (SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
	                         JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname ~ '$1'),
	                        (SELECT count(*) FROM pg_constraint k JOIN pg_namespace n ON n.oid = k.connamespace
	                          WHERE k.contype = 'f' AND n.nspname ~ '$1')"
}
check_counts() {	# what db schemas-regexp
	local got
	got=$(target_counts "$3")
	if [[ $got != "$SRC_COUNTS" ]]; then
		diff <(echo "$SRC_COUNTS") <(echo "$got") | sed 's/^/    /' >&2 || true
		die "$1 of $2: the target's tables or row counts differ from the source (< source, > target)"
	fi
}
fresh_target() {
	q -d postgres -c "DROP DATABASE IF EXISTS $TGT WITH (FORCE)" -c "CREATE DATABASE $TGT"
}

PGL_SCHEMAS='^(?!(pg_|information_schema$))'
PGL_URI="pgsql://$PGUSER:$PGPASSWORD@$PGHOST:$PGPORT/$TGT"
# pgloader, its defaults: creates schema, tables, indexes, foreign keys
run_pgloader() {	# db rep
	local t s log=$WORK/pgloader-$1-$2.log
	fresh_target
	q -d "$TGT" -c CHECKPOINT
	t=$(now)
	if ! timeout "$PGLOADER_TIMEOUT" pgloader --no-ssl-cert-verification --root-dir "$WORK/pgl" \
		"mysql://migrate:migrate@127.0.0.1:$MIGRATE_MARIADB_PORT/$1" "$PGL_URI" >"$log" 2>&1; then
		tail -30 "$log" >&2
		die "pgloader of $1 failed (rep $2)"
	fi
	s=$(fsub "$(now)" "$t")
	check_counts pgloader "$1" "$PGL_SCHEMAS"
	T_PGL+=("$s")
	O_PGL=$(target_objects "$PGL_SCHEMAS")
	say "$1 rep $2: pgloader $s s (indexes, foreign keys: $O_PGL)"
}

# migrate_database into schema public; its phases from the run's catalog rows
run_migrate() {		# db rep [profile]
	local t s setup out run ph
	fresh_target
	t=$(now)
	q -d "$TGT" >/dev/null <<SQL
SET client_min_messages = warning;
CREATE EXTENSION mysql_fdw;
CREATE EXTENSION migrate;
CREATE SERVER mysrv FOREIGN DATA WRAPPER mysql_fdw OPTIONS (host '127.0.0.1', port '$MIGRATE_MARIADB_PORT');
CREATE USER MAPPING FOR CURRENT_USER SERVER mysrv OPTIONS (username 'migrate', password 'migrate');
SQL
	setup=$(fsub "$(now)" "$t")
	if [[ ${3:-} == profile ]]; then
		q -d "$TGT" -c "CREATE EXTENSION pg_stat_statements" \
			-c "ALTER DATABASE $TGT SET pg_stat_statements.track = 'all'" \
			-c "ALTER DATABASE $TGT SET track_functions = 'all'" >/dev/null
	fi
	q -d "$TGT" -c CHECKPOINT
	[[ ${3:-} == profile ]] && q -d "$TGT" -c "SELECT pg_stat_statements_reset()" -c "SELECT pg_stat_reset()" >/dev/null
	t=$(now)
	if ! out=$(q -d "$TGT" 2>"$WORK/migrate.err" <<SQL
SELECT extract(epoch FROM clock_timestamp()) AS t0 \gset
SELECT migrate_database('bench', 'mysrv', remote_schema => '$1', target_schema => 'public', parallel => 2) AS run \gset
SELECT extract(epoch FROM clock_timestamp()) AS t1 \gset
-- prepare | run | finish | load, index, fk units: the sum of their durations (seconds)
SELECT round(extract(epoch FROM r.started_at) - :t0, 3),
       round(extract(epoch FROM r.finished_at - r.started_at), 3),
       round(:t1 - extract(epoch FROM r.finished_at), 3),
       (SELECT round(extract(epoch FROM sum(g.finished_at - g.started_at)), 3)
          FROM migrate.run_range g WHERE g.run_id = r.run_id AND g.kind = 'load'),
       (SELECT round(extract(epoch FROM sum(g.finished_at - g.started_at)), 3)
          FROM migrate.run_range g WHERE g.run_id = r.run_id AND g.kind = 'index'),
       (SELECT round(extract(epoch FROM sum(g.finished_at - g.started_at)), 3)
          FROM migrate.run_range g WHERE g.run_id = r.run_id AND g.kind = 'fk'),
       r.state
  FROM migrate.run r WHERE r.run_id = :run;
SQL
	); then
		cat "$WORK/migrate.err" >&2
		die "migrate_database of $1 failed (rep $2)"
	fi
	s=$(fsub "$(now)" "$t")
	grep -q 'verify passed' "$WORK/migrate.err" || { grep -E 'NOTICE|WARNING' "$WORK/migrate.err" | tail -20 >&2; die "migrate_database of $1: verify did not pass (rep $2)"; }
	[[ $(cut -d'|' -f7 <<<"$out") == succeeded ]] || die "migrate_database of $1: run state $out"
	check_counts migrate_database "$1" '^public$'
	O_MIG=$(target_objects '^public$')
	[[ ${3:-} == profile ]] && { T_PROF=$s; PH_PROF=$out; return; }
	T_MIG+=("$s") T_SETUP+=("$setup")
	PH_PRE+=("$(cut -d'|' -f1 <<<"$out")") PH_RUN+=("$(cut -d'|' -f2 <<<"$out")") PH_FIN+=("$(cut -d'|' -f3 <<<"$out")")
	PH_LOAD+=("$(cut -d'|' -f4 <<<"$out")") PH_IDX+=("$(cut -d'|' -f5 <<<"$out")") PH_FK+=("$(cut -d'|' -f6 <<<"$out")")
	say "$1 rep $2: migrate_database $s s (setup $setup s; prepare|run|finish|load|index|fk: $(cut -d'|' -f1-6 <<<"$out"); indexes, foreign keys: $O_MIG)"
}

GIT_REV=$(git -C "$BENCH_REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [[ -n $(git -C "$BENCH_REPO" status --porcelain -- src sql Makefile 2>/dev/null) ]]; then
	GIT_REV="$GIT_REV + uncommitted changes in src/sql"
fi
{
	echo "# migrate_database vs pgloader, whole MySQL databases (test/bench/bench-database.sh)"
	echo
	echo "$(date -u '+%Y-%m-%d %H:%M UTC'), migrate $GIT_REV, PostgreSQL $PGVER (throwaway cluster: shared_buffers 1GB,"
	echo "max_wal_size 4GB, fsync and synchronous_commit on), MariaDB $MYVER (throwaway, same machine),"
	echo "pgloader $PGLVER (its defaults: no options), $(nproc) CPUs **shared with other sessions' work**"
	echo "(load average at the start: $(cut -d' ' -f1-3 /proc/loadavg)): medians of $REPS, noisy."
	echo "Each timing into a fresh empty database; pgloader and migrate alternate (odd reps pgloader first)."
	echo "Both left every source table with the source's row count (checked), migrate_database's verify passed."
	echo
	echo "| database | tables | rows | pgloader s (runs) | migrate_database s (runs) | pgloader / migrate | target (>= 1.0) |"
	echo "|---|---|---|---|---|---|---|"
} >"$WORK/head.md"
: >"$WORK/table.md"
: >"$WORK/detail.md"

for db in $DATABASES; do
	SRC_COUNTS=$(source_counts "$db")
	ntab=$(wc -l <<<"$SRC_COUNTS")
	nrows=$(awk -F'\t' '{ s += $2 } END { print s }' <<<"$SRC_COUNTS")
	say "$db: $ntab tables, $nrows rows"
	T_PGL=() T_MIG=() T_SETUP=() PH_PRE=() PH_RUN=() PH_FIN=() PH_LOAD=() PH_IDX=() PH_FK=()
	for ((r = 1; r <= REPS; r++)); do
		if ((r % 2)); then
			run_pgloader "$db" "$r"
			run_migrate "$db" "$r"
		else
			run_migrate "$db" "$r"
			run_pgloader "$db" "$r"
		fi
	done
	mp=$(median "${T_PGL[@]}") mm=$(median "${T_MIG[@]}")
	rt=$(ratio "$mp" "$mm")
	echo "| $db | $ntab | $nrows | $mp (${T_PGL[*]}) | $mm (${T_MIG[*]}) | $rt | $(meets "$rt") |" >>"$WORK/table.md"
	{
		echo
		echo "### $db: $ntab tables, $nrows rows"
		echo
		echo "Created: pgloader $(cut -d' ' -f1 <<<"$O_PGL") indexes and $(cut -d' ' -f2 <<<"$O_PGL") foreign keys;" \
			"migrate_database $(cut -d' ' -f1 <<<"$O_MIG") indexes and $(cut -d' ' -f2 <<<"$O_MIG") foreign keys."
		echo "Not in the migrate figure: CREATE EXTENSION mysql_fdw and migrate, the server and the user mapping:" \
			"median $(median "${T_SETUP[@]}") s (${T_SETUP[*]})."
		echo
		echo "migrate_database's phases (medians; from migrate.run and migrate.run_range):"
		echo
		echo "| phase | seconds (runs) | share |"
		echo "|---|---|---|"
		echo "| prepare: plan, IMPORT FOREIGN SCHEMA, automap create_missing, check (call to run.started_at) | $(median "${PH_PRE[@]}") (${PH_PRE[*]}) | $(fdiv "$(median "${PH_PRE[@]}")" "$mm") |"
		echo "| run (run.started_at to run.finished_at) | $(median "${PH_RUN[@]}") (${PH_RUN[*]}) | $(fdiv "$(median "${PH_RUN[@]}")" "$mm") |"
		echo "| - its load units (sum of their durations, in 2 workers) | $(median "${PH_LOAD[@]}") (${PH_LOAD[*]}) | |"
		echo "| - its index units (sum) | $(median "${PH_IDX[@]:-0}") (${PH_IDX[*]}) | |"
		echo "| - its foreign key units (sum) | $(median "${PH_FK[@]:-0}") (${PH_FK[*]}) | |"
		echo "| finish: sequences, verify, report (run.finished_at to return) | $(median "${PH_FIN[@]}") (${PH_FIN[*]}) | $(fdiv "$(median "${PH_FIN[@]}")" "$mm") |"
	} >>"$WORK/detail.md"
done

# ---------------------------------------------------------------------------
# profile: where a small database's time goes
# ---------------------------------------------------------------------------
if [[ $STATS == 1 ]]; then
	pdb=$(awk '{ print $1 }' <<<"$DATABASES")
	SRC_COUNTS=$(source_counts "$pdb")
	run_migrate "$pdb" profile profile
	sleep 2		# the job and the run's workers report their statistics as they exit
	{
		echo
		echo "## Profile: one more migrate_database of $pdb, $T_PROF s (prepare|run|finish: $(cut -d'|' -f1-3 <<<"$PH_PROF") s)"
		echo
		echo "pg_stat_statements (track all: nested statements too, their time is included in their callers')"
		echo "and track_functions = all, in the target database.  Top statements by total time:"
		echo
		echo "| ms total | calls | ms/call | statement |"
		echo "|---|---|---|---|"
		q -d "$TGT" -F '|' -c "SELECT round(total_exec_time::numeric, 1), calls, round((total_exec_time / calls)::numeric, 2),
		                              replace(replace(left(regexp_replace(query, '\s+', ' ', 'g'), 160), '|', '\|'), '\`', '')
		                         FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
		                          AND query !~* 'pg_stat_statements'
		                        ORDER BY total_exec_time DESC LIMIT 30" | sed 's/^/| /; s/$/ |/'
		echo
		echo "Functions (pg_stat_user_functions) by total time (self: without the functions they call):"
		echo
		echo "| ms total | ms self | calls | function |"
		echo "|---|---|---|---|"
		q -d "$TGT" -F '|' -c "SELECT round(total_time::numeric, 1), round(self_time::numeric, 1), calls, schemaname || '.' || funcname
		                         FROM pg_stat_user_functions ORDER BY total_time DESC LIMIT 25" | sed 's/^/| /; s/$/ |/'
	} >"$WORK/profile.md"
else
	: >"$WORK/profile.md"
fi

cat "$WORK/head.md" "$WORK/table.md" "$WORK/detail.md" "$WORK/profile.md" | tee "$OUT"
q -d postgres -c "DROP DATABASE IF EXISTS $TGT WITH (FORCE)"
say "report written to $OUT"
