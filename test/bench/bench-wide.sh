#!/usr/bin/env bash
#
# test/bench/bench-wide.sh - wide rows: the worker's memory and throughput
# with batches bounded by bytes (issue 18), from MariaDB (mysql_fdw) and
# from PostgreSQL (postgres_fdw loopback), beside INSERT ... SELECT
#
# For each row width in WIDTHS (bytes; default 100 B, 1 KB, 32 KB, 1 MB) a
# table of about TOTAL_MB megabytes (id bigint PK, payload text of that
# width) in MariaDB database bench_wide and in PostgreSQL database
# bench_wide_src, copied into bench_wide_tgt with
#   (a) INSERT INTO t SELECT * FROM <foreign table>
#   (b) migrate_run() with migrate.batch_bytes = 0 (rows only: as before)
#   (c) migrate_run() with migrate.batch_bytes = BATCH_BYTES (the default)
# REPS times each (target truncated and CHECKPOINT before every timing).
# While each runs, the private memory (RssAnon of /proc/<pid>/status) of the
# processes doing the work (the migrate workers, by pg_stat_activity's
# backend_type; for (a) the backend) is sampled every few milliseconds;
# the report gives the medians of the seconds and of the peaks, and
# migrate.run.peak_rss_kb of the runs.
#
# Usage (as root): bash test/bench/bench-wide.sh
#   A private install (make install DESTDIR=<tmp>, read first by the cluster:
#   extension_destdir) and a throwaway cluster (pg_virtualenv) on
#   BENCH_PGPORT; MariaDB on MIGRATE_MARIADB_PORT (started and stopped here
#   unless one runs).  Writes OUT (test/bench/results-wide-latest.md).
# Environment: WIDTHS ("100 1024 32768 1048576"), TOTAL_MB (128), REPS (3),
# BATCH_BYTES (16MB), BENCH_PGPORT (5490), MIGRATE_MARIADB_PORT (3337).
#
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
export WIDTHS=${WIDTHS:-"100 1024 32768 1048576"}
export TOTAL_MB=${TOTAL_MB:-128}
export REPS=${REPS:-3}
export BATCH_BYTES=${BATCH_BYTES:-16MB}
export BENCH_PGPORT=${BENCH_PGPORT:-5490}
export MIGRATE_MARIADB_PORT=${MIGRATE_MARIADB_PORT:-3337}
export OUT=${OUT:-$HERE/results-wide-latest.md}
MYSOCK=/tmp/migrate-mariadb-$MIGRATE_MARIADB_PORT/mysqld.sock

die() { echo "bench-wide.sh: ERROR: $*" >&2; exit 1; }
say() { echo "bench-wide.sh: $*" >&2; }

# ---------------------------------------------------------------------------
# outer part: MariaDB, private install, re-exec inside a throwaway cluster
# ---------------------------------------------------------------------------
if [[ ${1:-} != --inner ]]; then
	[[ $(id -u) -eq 0 ]] || die "run as root: MariaDB runs as user mysql, pg_virtualenv's cluster as postgres"
	[[ $REPS =~ ^[0-9]+$ && $REPS -ge 1 ]] || die "REPS must be a positive integer"
	[[ $TOTAL_MB =~ ^[0-9]+$ && $TOTAL_MB -ge 1 ]] || die "TOTAL_MB must be a positive integer"
	for w in $WIDTHS; do [[ $w =~ ^[0-9]+$ && $w -ge 16 && $w -le 8388608 ]] || die "WIDTHS: bytes, 16 .. 8 MB"; done
	PRIVATE_DIR='' BUILD_DIR='' STOP_MARIADB=0
	cleanup() {
		[[ $STOP_MARIADB == 0 ]] || bash "$REPO/test/mariadb/stop.sh"
		rm -rf "$PRIVATE_DIR" "$BUILD_DIR"
	}
	trap cleanup EXIT
	if ! mariadb-admin --socket="$MYSOCK" ping >/dev/null 2>&1; then
		say "starting a throwaway MariaDB on port $MIGRATE_MARIADB_PORT"
		STOP_MARIADB=1
		MIGRATE_MARIADB_CHINOOK=0 bash "$REPO/test/mariadb/start.sh" >&2
	fi
	PRIVATE_DIR=$(mktemp -d -t migrate-bench-install.XXXXXX)
	chmod 755 "$PRIVATE_DIR"
	BUILD_DIR=$(mktemp -d -t migrate-bench-build.XXXXXX)
	(cd "$REPO" && git ls-files -z --cached --others --exclude-standard | xargs -0 cp --parents -t "$BUILD_DIR")
	say "make install DESTDIR=$PRIVATE_DIR from a copy of $REPO ($(git -C "$REPO" rev-parse --short HEAD)$(git -C "$REPO" diff --quiet HEAD || echo ', with uncommitted changes'))"
	log=$(mktemp)
	if ! { make -C "$BUILD_DIR" PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config &&
		make -C "$BUILD_DIR" PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config install DESTDIR="$PRIVATE_DIR"; } >"$log" 2>&1; then
		cat "$log" >&2; rm -f "$log"; die "make install failed"
	fi
	rm -f "$log"
	chmod -R a+rX "$PRIVATE_DIR"
	export BENCH_REVISION
	BENCH_REVISION="$(git -C "$REPO" rev-parse --short HEAD)$(git -C "$REPO" diff --quiet HEAD || echo '+uncommitted')"
	rc=0
	PGPORT=$BENCH_PGPORT pg_virtualenv -t -v 15 \
		-o shared_buffers=512MB -o max_wal_size=4GB -o max_worker_processes=16 \
		-o extension_destdir="$PRIVATE_DIR" \
		-o dynamic_library_path="$PRIVATE_DIR/usr/lib/postgresql/15/lib:/usr/lib/postgresql/15/lib" \
		-- bash "$0" --inner || rc=$?
	exit $rc
fi

# ---------------------------------------------------------------------------
# inner part: PGHOST/PGPORT/PGUSER/PGPASSWORD point at the throwaway cluster
# ---------------------------------------------------------------------------
[[ -n ${PGPORT:-} ]] || die "--inner is meant to run under pg_virtualenv"
. "$HERE/lib.sh"
my() { mariadb --socket="$MYSOCK" "$@"; }
WORK=$(mktemp -d -t migrate-bench-wide.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

say "PostgreSQL $(q -d postgres -c 'SHOW server_version') on port $PGPORT; MariaDB on $MIGRATE_MARIADB_PORT; WIDTHS=$WIDTHS TOTAL_MB=$TOTAL_MB REPS=$REPS"

rows_of() { echo $((TOTAL_MB * 1048576 / $1)); }

# sources: MariaDB and PostgreSQL, one table per width
my -e "DROP DATABASE IF EXISTS bench_wide; CREATE DATABASE bench_wide"
# the MariaDB may be shared (tests): leave nothing behind
trap 'my -e "DROP DATABASE IF EXISTS bench_wide" || true; rm -rf "$WORK"' EXIT
q -d postgres -c 'DROP DATABASE IF EXISTS bench_wide_src' -c 'CREATE DATABASE bench_wide_src' \
	-c 'DROP DATABASE IF EXISTS bench_wide_tgt' -c 'CREATE DATABASE bench_wide_tgt'
for w in $WIDTHS; do
	n=$(rows_of "$w")
	t=$(now)
	# the payload: md5 hex repeated (MariaDB sends it whole; PostgreSQL stores it compressed)
	my bench_wide -e "CREATE TABLE wide_$w (id bigint NOT NULL PRIMARY KEY, payload mediumtext NOT NULL);
		INSERT INTO wide_$w SELECT seq, LEFT(REPEAT(MD5(seq), $w DIV 32 + 1), $w) FROM seq_1_to_$n;
		ANALYZE TABLE wide_$w" >/dev/null
	q -d bench_wide_src -c "CREATE TABLE wide_$w (id bigint PRIMARY KEY, payload text NOT NULL);
		INSERT INTO wide_$w SELECT g, left(repeat(md5(g::text), $w / 32 + 1), $w) FROM generate_series(1, $n) g;
		ANALYZE wide_$w" >/dev/null
	say "sources wide_$w: $n rows of $w bytes in $(fsub "$(now)" "$t") s"
done

"${PSQL[@]}" -d bench_wide_tgt >/dev/null <<SQL
SET client_min_messages = warning;
CREATE EXTENSION mysql_fdw;
CREATE EXTENSION postgres_fdw;
CREATE EXTENSION migrate;
CREATE SERVER mysrv FOREIGN DATA WRAPPER mysql_fdw OPTIONS (host '127.0.0.1', port '$MIGRATE_MARIADB_PORT');
CREATE USER MAPPING FOR CURRENT_USER SERVER mysrv OPTIONS (username 'migrate', password 'migrate');
CREATE SCHEMA my_raw;
IMPORT FOREIGN SCHEMA bench_wide FROM SERVER mysrv INTO my_raw;
CREATE SERVER pgsrv FOREIGN DATA WRAPPER postgres_fdw
    OPTIONS (host '${PGHOST:-localhost}', port '$PGPORT', dbname 'bench_wide_src');
CREATE USER MAPPING FOR CURRENT_USER SERVER pgsrv
    OPTIONS (user '${PGUSER:-postgres}', password '${PGPASSWORD:-}');
CREATE SCHEMA pgsrc_raw;
IMPORT FOREIGN SCHEMA public FROM SERVER pgsrv INTO pgsrc_raw;
SELECT migrate_plan('wide_my', source_schema => 'my_raw');
SELECT migrate_plan('wide_pg', source_schema => 'pgsrc_raw');
SQL
for w in $WIDTHS; do
	q -d bench_wide_tgt -c "CREATE TABLE wide_$w (id bigint PRIMARY KEY, payload text NOT NULL)" \
		-c "CREATE TABLE wide_pg_$w (id bigint PRIMARY KEY, payload text NOT NULL)" \
		-c "SELECT migrate_table('wide_my', 'wide_$w', 'wide_$w')" \
		-c "SELECT migrate_table('wide_pg', 'wide_$w', 'wide_pg_$w')" >/dev/null
done

# sample(outfile, sql finding the pids): the greatest RssAnon (kB) of those
# processes, every few ms until the file $WORK/stop appears
sample() {
	local out=$1 sql=$2 peak=0 pids='' i=0 kb p
	while [[ ! -e $WORK/stop ]]; do
		if ((i % 25 == 0)); then
			pids=$(q -d postgres -c "$sql" 2>/dev/null | tr '\n' ' ') || pids=''
		fi
		for p in $pids; do
			kb=$(awk '/^RssAnon:/ { print $2 }' "/proc/$p/status" 2>/dev/null) || kb=0
			[[ -n $kb && $kb -gt $peak ]] && peak=$kb
		done
		i=$((i + 1))
		sleep 0.004
	done
	echo "$peak" >"$out"
}
WORKERS_SQL="SELECT pid FROM pg_stat_activity WHERE backend_type LIKE 'migrate%'"
BACKEND_SQL="SELECT pid FROM pg_stat_activity WHERE application_name = 'bench-wide-insert'"

# timed(label, sql, pids sql, [GUC settings...]): sets T (seconds), M (peak kB)
timed() {
	local sql=$1 pidsql=$2 t
	shift 2
	q -d bench_wide_tgt -c 'CHECKPOINT' >/dev/null
	rm -f "$WORK/stop" "$WORK/peak"
	sample "$WORK/peak" "$pidsql" &
	local sp=$!
	t=$(now)
	PGAPPNAME=bench-wide-insert q -d bench_wide_tgt -c 'SET client_min_messages = warning' "$@" -c "$sql" >/dev/null
	T=$(fsub "$(now)" "$t")
	touch "$WORK/stop"
	wait "$sp"
	M=$(cat "$WORK/peak")
}

declare -A R
for src in my pg; do
	for w in $WIDTHS; do
		n=$(rows_of "$w")
		if [[ $src == my ]]; then tgt=wide_$w ftab=my_raw.wide_$w plan=wide_my
		else tgt=wide_pg_$w ftab=pgsrc_raw.wide_$w plan=wide_pg; fi
		for ((r = 1; r <= REPS; r++)); do
			q -d bench_wide_tgt -c "TRUNCATE $tgt" >/dev/null
			timed "INSERT INTO $tgt SELECT * FROM $ftab" "$BACKEND_SQL"
			R[$src,$w,insert,t]+="$T " R[$src,$w,insert,m]+="$M "
			[[ $(q -d bench_wide_tgt -c "SELECT count(*) FROM $tgt") == "$n" ]] || die "INSERT ... SELECT into $tgt: wrong count"
			for mode in rows bytes; do
				q -d bench_wide_tgt -c "TRUNCATE $tgt" >/dev/null
				bb=0; [[ $mode == bytes ]] && bb=$BATCH_BYTES
				timed "SELECT migrate_run('$plan', tables => ARRAY['$tgt'])" "$WORKERS_SQL" \
					-c "SET migrate.batch_bytes = '$bb'"
				R[$src,$w,$mode,t]+="$T " R[$src,$w,$mode,m]+="$M "
				R[$src,$w,$mode,rss]+="$(q -d bench_wide_tgt -c "SELECT peak_rss_kb FROM migrate.run WHERE plan = '$plan' ORDER BY run_id DESC LIMIT 1") "
				R[$src,$w,$mode,b]="$(q -d bench_wide_tgt -c "SELECT sum(batches) FROM migrate.run_table WHERE run_id = (SELECT max(run_id) FROM migrate.run WHERE plan = '$plan')")"
				[[ $(q -d bench_wide_tgt -c "SELECT count(*) FROM $tgt") == "$n" ]] || die "migrate_run into $tgt: wrong count"
			done
			say "$src wide_$w rep $r: insert ${R[$src,$w,insert,t]}/ rows ${R[$src,$w,rows,t]}/ bytes ${R[$src,$w,bytes,t]}"
		done
	done
done

med() { median $1; }
mb() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
{
	echo "# Wide rows: worker memory and throughput (issue 18)"
	echo
	echo "bench-wide.sh at $BENCH_REVISION, $(date -u '+%Y-%m-%d %H:%M UTC'); PostgreSQL $(q -d postgres -c 'SHOW server_version'), mysql_fdw, MariaDB $(my -N -B -e 'SELECT version()');"
	echo "about $TOTAL_MB MB per table, median of $REPS; migrate.batch_size 50000; byte bound $BATCH_BYTES."
	echo "Peak memory: the greatest RssAnon (/proc/<pid>/status) of the processes doing the work, sampled every few ms"
	echo "(the migrate worker; for INSERT ... SELECT the backend); peak_rss_kb: what the run recorded."
	echo
	echo "| source | row width | rows | method | seconds (runs) | MB/s | vs INSERT ... SELECT | peak RssAnon MB | run.peak_rss_kb MB | batches |"
	echo "|---|--:|--:|---|---|--:|--:|--:|--:|--:|"
	for src in my pg; do
		for w in $WIDTHS; do
			n=$(rows_of "$w")
			ti=$(med "${R[$src,$w,insert,t]}")
			for mode in insert rows bytes; do
				tm=$(med "${R[$src,$w,$mode,t]}")
				case $mode in
				insert) label='INSERT ... SELECT' ;;
				rows) label='migrate_run, batch_bytes 0 (rows only, as before)' ;;
				bytes) label="migrate_run, batch_bytes $BATCH_BYTES" ;;
				esac
				rss='-' bat='-'
				[[ $mode != insert ]] && rss=$(mb "$(med "${R[$src,$w,$mode,rss]}")") && bat=${R[$src,$w,$mode,b]}
				echo "| $([[ $src == my ]] && echo MariaDB || echo PostgreSQL) | $w | $n | $label | $tm (${R[$src,$w,$mode,t]% }) |" \
					"$(awk -v s="$tm" -v b="$TOTAL_MB" 'BEGIN { printf "%.1f", b / s }') | $(awk -v a="$tm" -v b="$ti" 'BEGIN { printf "%.2fx", b / a }') |" \
					"$(mb "$(med "${R[$src,$w,$mode,m]}")") | $rss | $bat |"
			done
		done
	done
	echo
	echo "Targets (issue 18): worker RssAnon <= 64 MB at every width from both sources with the byte bound;"
	echo "throughput with the byte bound >= 0.9x the rows-only run on the wide tables; narrow (100 B) unchanged within noise."
} | tee "$OUT"
