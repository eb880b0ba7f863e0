#!/usr/bin/env bash
#
# test/bench/bench.sh - throughput and memory benchmark of migrate
#
# In one run, on a throwaway PostgreSQL 15 cluster (pg_virtualenv), copies a
# generated table `orders` (ROWS rows, 10 mixed columns) from database
# bench_src into database bench_tgt with
#   (a) INSERT INTO orders SELECT * FROM legacy.orders      (postgres_fdw)
#   (b) psql COPY ... TO STDOUT (FORMAT binary) | psql COPY ... FROM STDIN
#   (c) SELECT migrate_run('bench')                          (two rules)
#   (d) pgloader PG -> PG, when pgloader is installed and works
# and (PARALLEL_BENCH=1) two COPY pipes at once (the key's halves), a COPY
# pipe into orders_ix (two secondary indexes), migrate with two workers and
# into orders_ix with and without index deferral, each against them.
# REPS times each (target truncated and CHECKPOINT before every timing),
# checks the row counts, samples the migrate worker's memory from outside,
# runs migrate once more on a table of ROWS/4 rows, and prints a Markdown
# report, also written to test/bench/results-latest.md.
#
# Usage (as root):  sudo bash test/bench/bench.sh
# Environment: ROWS (2000000), REPS (3), BATCH_SIZE (100000), FETCH_SIZE
# (10000), FSYNC (on), PGLOADER (auto|off), PGLOADER_TIMEOUT (300 s),
# INSTALL (1: run `make install` first), OUT (report path).  See README.md.
#
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)

export ROWS=${ROWS:-2000000}
export REPS=${REPS:-3}
export BATCH_SIZE=${BATCH_SIZE:-100000}
export FETCH_SIZE=${FETCH_SIZE:-10000}
export FSYNC=${FSYNC:-on}
export PGLOADER=${PGLOADER:-auto}
export PGLOADER_TIMEOUT=${PGLOADER_TIMEOUT:-300}
export INSTALL=${INSTALL:-1}
export PARALLEL_BENCH=${PARALLEL_BENCH:-1}
export OUT=${OUT:-$HERE/results-latest.md}

die() { echo "bench.sh: ERROR: $*" >&2; exit 1; }
say() { echo "bench.sh: $*" >&2; }

# ---------------------------------------------------------------------------
# outer part: check, install, re-exec inside a throwaway cluster
# ---------------------------------------------------------------------------
if [[ ${1:-} != --inner ]]; then
	[[ $(id -u) -eq 0 ]] || die "run as root (sudo bash $0): pg_virtualenv creates a cluster run by user postgres"
	[[ $ROWS =~ ^[0-9]+$ && $ROWS -ge 4 ]] || die "ROWS must be an integer >= 4 (got '$ROWS')"
	[[ $REPS =~ ^[0-9]+$ && $REPS -ge 1 ]] || die "REPS must be an integer >= 1 (got '$REPS')"
	[[ $BATCH_SIZE =~ ^[0-9]+$ && $BATCH_SIZE -ge 1 ]] || die "BATCH_SIZE must be a positive integer"
	[[ $FETCH_SIZE =~ ^[0-9]+$ && $FETCH_SIZE -ge 1 ]] || die "FETCH_SIZE must be a positive integer"
	[[ $FSYNC == on || $FSYNC == off ]] || die "FSYNC must be on or off"
	command -v pg_virtualenv >/dev/null || die "pg_virtualenv not found (package postgresql-common)"
	[[ -x /usr/lib/postgresql/15/bin/postgres ]] || die "PostgreSQL 15 server not installed (postgresql-15)"

	if [[ $INSTALL == 1 ]]; then
		say "make install in $REPO"
		log=$(mktemp)
		if ! make -C "$REPO" PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config install >"$log" 2>&1; then
			cat "$log" >&2
			rm -f "$log"
			die "make install failed"
		fi
		rm -f "$log"
	fi

	export BENCH_T0=$(date +%s.%N)
	export BENCH_REPO=$REPO
	# pg_virtualenv adds fsync=off to every cluster it makes; a later -o wins
	# (the options go to postgresql.conf in order), so FSYNC=on restores the
	# durable default that synchronous_commit=on is meant to measure.
	exec pg_virtualenv -t -v 15 \
		-o shared_buffers=1GB -o max_wal_size=4GB -o synchronous_commit=on \
		-o fsync="$FSYNC" \
		-- bash "$0" --inner
fi

# ---------------------------------------------------------------------------
# inner part: PGHOST/PGPORT/PGUSER/PGPASSWORD point at the throwaway cluster
# ---------------------------------------------------------------------------
[[ -n ${PGPORT:-} && -n ${PGPASSWORD:-} ]] || die "--inner is meant to run under pg_virtualenv"

set -E
trap 'echo "bench.sh: ERROR: line $LINENO failed: $BASH_COMMAND" >&2' ERR
WORK=$(mktemp -d -t migrate-bench.XXXXXX)
chmod 755 "$WORK"
BG_PIDS=()
cleanup() {
	local p
	for p in "${BG_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	rm -rf "$WORK"
}
trap cleanup EXIT

# shared helpers: q, now, fsub, fdiv, rate, median, ORDERS_COLS, ORDERS_ROWS
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
maxof() { printf '%s\n' "$@" | sort -g | tail -1; }
mb() { awk -v k="$1" 'BEGIN { printf "%.1f MB", k / 1024 }'; }

PORT=$(q -c 'SHOW port')
SOCKDIR=$(q -c 'SHOW unix_socket_directories' | cut -d, -f1 | xargs)
PGVER=$(q -c 'SHOW server_version')
SMALL=$((ROWS / 4))
say "cluster: PostgreSQL $PGVER on port $PORT (socket $SOCKDIR), fsync=$FSYNC; ROWS=$ROWS REPS=$REPS"


# ---------------------------------------------------------------------------
# source
# ---------------------------------------------------------------------------
say "creating bench_src.orders ($ROWS rows) and orders_small ($SMALL rows)"
t=$(now)
q -c 'CREATE DATABASE bench_src' -c 'CREATE DATABASE bench_tgt'
"${PSQL[@]}" -d bench_src -v rows="$ROWS" -v small="$SMALL" <<SQL
CREATE TABLE orders ($ORDERS_COLS);
INSERT INTO orders $ORDERS_ROWS;
CREATE TABLE orders_small (LIKE orders INCLUDING ALL);
INSERT INTO orders_small SELECT * FROM orders WHERE id <= :small;
VACUUM (FREEZE, ANALYZE) orders, orders_small;
SQL
[[ $(q -d bench_src -c 'SELECT count(*) FROM orders') == "$ROWS" ]] || die "source has the wrong row count"
say "source ready in $(fsub "$(now)" "$t") s ($(q -d bench_src -c "SELECT pg_size_pretty(pg_table_size('orders'))") heap)"

# ---------------------------------------------------------------------------
# target: FDW, foreign tables, target tables, plans
# ---------------------------------------------------------------------------
say "setting up bench_tgt (postgres_fdw, migrate, plans)"
"${PSQL[@]}" -d bench_tgt >/dev/null <<SQL
SET client_min_messages = warning;
CREATE EXTENSION postgres_fdw;
CREATE EXTENSION migrate;
CREATE SERVER srcsrv FOREIGN DATA WRAPPER postgres_fdw
    OPTIONS (host '$SOCKDIR', port '$PORT', dbname 'bench_src', fetch_size '$FETCH_SIZE');
CREATE USER MAPPING FOR CURRENT_USER SERVER srcsrv;
CREATE SCHEMA legacy;
IMPORT FOREIGN SCHEMA public LIMIT TO (orders, orders_small) FROM SERVER srcsrv INTO legacy;
ANALYZE legacy.orders;
ANALYZE legacy.orders_small;
CREATE TABLE orders ($ORDERS_COLS);
CREATE TABLE orders_small ($ORDERS_COLS);
SELECT migrate_plan('bench', source_schema => 'legacy');
SELECT migrate_table('bench', 'orders', 'orders');
SELECT migrate_rule('bench', 'orders', 'amount_ok', 'amount >= 0');
SELECT migrate_rule('bench', 'orders', 'email_ok', 'email LIKE ''%@%''');
-- issue 3: the same table into a target with two secondary indexes
CREATE TABLE orders_ix ($ORDERS_COLS);
CREATE INDEX orders_ix_customer ON orders_ix (customer_id);
CREATE INDEX orders_ix_created ON orders_ix (created_at);
SELECT migrate_plan('bench_ix', source_schema => 'legacy');
SELECT migrate_table('bench_ix', 'orders', 'orders_ix');
SELECT migrate_rule('bench_ix', 'orders_ix', 'amount_ok', 'amount >= 0');
SELECT migrate_rule('bench_ix', 'orders_ix', 'email_ok', 'email LIKE ''%@%''');
SELECT migrate_plan('bench_ixd', source_schema => 'legacy', options => '{"defer_indexes": true}');
SELECT migrate_table('bench_ixd', 'orders', 'orders_ix');
SELECT migrate_rule('bench_ixd', 'orders_ix', 'amount_ok', 'amount >= 0');
SELECT migrate_rule('bench_ixd', 'orders_ix', 'email_ok', 'email LIKE ''%@%''');
SELECT migrate_plan('bench_small', source_schema => 'legacy');
SELECT migrate_table('bench_small', 'orders_small', 'orders_small');
SELECT migrate_rule('bench_small', 'orders_small', 'amount_ok', 'amount >= 0');
SELECT migrate_rule('bench_small', 'orders_small', 'email_ok', 'email LIKE ''%@%''');
SQL

# ---------------------------------------------------------------------------
# helpers for the timed runs
# ---------------------------------------------------------------------------
prepare() {	# $1: target table
	q -d bench_tgt -c "TRUNCATE $1" -c 'CHECKPOINT'
}

check_count() {	# $1: method, $2: table, $3: expected rows
	local n
	n=$(q -d bench_tgt -c "SELECT count(*) FROM $2")
	[[ $n == "$3" ]] || die "$1: target $2 has $n rows, expected $3"
}

# Poll /proc/<pid>/status of the migrate worker every 0.1 s until it exits.
# Writes "max_VmRSS max_RssAnon samples VmHWM pid first_t last_t why" to $1
# (kB, epoch seconds).
sample_worker() {
	local out=$1 pid="" i status rss anon hwm=0 max_rss=0 max_anon=0 n=0 first=0 last=0 why=exited
	for ((i = 0; i < 1200; i++)); do	# wait up to ~60 s for the worker
		pid=$(q -d bench_tgt -c "SELECT pid FROM pg_stat_activity WHERE backend_type = 'migrate worker' LIMIT 1" 2>/dev/null || true)
		[[ -n $pid ]] && break
		sleep 0.05
	done
	if [[ -z $pid ]]; then
		echo "0 0 0 0 none 0 0 not-found" >"$out"
		return 0
	fi
	first=$(now)
	while [[ -r /proc/$pid/status ]]; do
		# read the file in one go: line-by-line reads seek back and forth, and
		# /proc regenerates the text on every read, so lines can be missed
		status=$(cat "/proc/$pid/status" 2>/dev/null) || { why=read-failed; break; }
		if [[ $status =~ VmRSS:[[:space:]]+([0-9]+) ]]; then rss=${BASH_REMATCH[1]}; else rss=""; fi
		if [[ $status =~ RssAnon:[[:space:]]+([0-9]+) ]]; then anon=${BASH_REMATCH[1]}; else anon=""; fi
		if [[ $status =~ VmHWM:[[:space:]]+([0-9]+) ]]; then hwm=${BASH_REMATCH[1]}; fi
		if [[ -z $rss || -z $anon ]]; then
			why=no-rss	# a zombie: the worker has exited
			break
		fi
		if ((rss > max_rss)); then max_rss=$rss; fi
		if ((anon > max_anon)); then max_anon=$anon; fi
		n=$((n + 1))
		last=$(now)
		sleep 0.1
	done
	echo "$max_rss $max_anon $n $hwm $pid $first $last $why" >"$out"
}

# One migrate run with the external sampler.  $1 plan, $2 table, $3 rows,
# $4 more migrate_run() arguments (", parallel => 2").
# Sets ELAPSED, RUN_ID, PEAK_KB, ENGINE_S, EXT_RSS, EXT_ANON, EXT_N, EXT_HWM.
migrate_once() {
	local plan=$1 tbl=$2 rows=$3 args=${4:-} t0 t1 sp line
	prepare "$tbl"
	sample_worker "$WORK/sample" &
	sp=$!
	BG_PIDS+=("$sp")
	t0=$(now)
	RUN_ID=$(q -d bench_tgt -c "SET migrate.batch_size = $BATCH_SIZE" \
		-c "SELECT migrate_run('$plan'$args)" 2>"$WORK/notices") ||
		{ cat "$WORK/notices" >&2; die "migrate_run('$plan') failed"; }
	t1=$(now)
	wait "$sp" || true
	ELAPSED=$(fsub "$t1" "$t0")
	check_count "migrate" "$tbl" "$rows"
	line=$(q -d bench_tgt -F ' ' -c "SELECT r.state, t.rows_read, t.rows_written, t.rows_rejected,
	            coalesce(r.peak_memory_kb, 0),
	            round(extract(epoch FROM t.finished_at - t.started_at)::numeric, 3)
	       FROM migrate.run r JOIN migrate.run_table t USING (run_id)
	      WHERE run_id = $RUN_ID")
	read -r state rread rwritten rrejected PEAK_KB ENGINE_S <<<"$line"
	[[ $state == succeeded && $rread == "$rows" && $rwritten == "$rows" && $rrejected == 0 ]] ||
		die "migrate run $RUN_ID: state=$state read=$rread written=$rwritten rejected=$rrejected, expected $rows rows"
	read -r EXT_RSS EXT_ANON EXT_N EXT_HWM EXT_PID EXT_FIRST EXT_LAST EXT_WHY <"$WORK/sample"
	if [[ $EXT_N -gt 0 ]]; then
		say "  sampler: pid $EXT_PID, $EXT_N samples from +$(fsub "$EXT_FIRST" "$t0") s to +$(fsub "$EXT_LAST" "$t0") s of the run, stopped: $EXT_WHY"
	else
		say "warning: the external sampler got no sample of the migrate worker in run $RUN_ID ($EXT_WHY)"
	fi
	grep -h 'loaded' "$WORK/notices" | sed 's/^/    /' >&2 || true
}

# ---------------------------------------------------------------------------
# pgloader (optional)
# ---------------------------------------------------------------------------
PGLOADER_NOTE=""
PGLOADER_OK=0
if [[ $PGLOADER == off ]]; then
	PGLOADER_NOTE="skipped (PGLOADER=off)"
elif ! command -v pgloader >/dev/null; then
	PGLOADER_NOTE="skipped (pgloader not installed)"
else
	PGLOADER_VERSION=$(pgloader --version 2>/dev/null || true)
	PGLOADER_VERSION=${PGLOADER_VERSION%%$'\n'*}
	PGLOADER_VERSION=${PGLOADER_VERSION#pgloader version }
	PGLOADER_VERSION=${PGLOADER_VERSION//\"/}
	# data only: the target table exists (same DDL, with its PK); no truncate,
	# no index drop/rebuild, so the load is comparable with the other methods.
	# prefetch rows = 10000: with the default (100000) pgloader 3.6 needs ~2 GB
	# and can die at its default heap size (BASELINES.md).
	cat >"$WORK/pg.load" <<EOF
LOAD DATABASE
     FROM pgsql://$PGUSER:$PGPASSWORD@localhost:$PORT/bench_src
     INTO pgsql://$PGUSER:$PGPASSWORD@localhost:$PORT/bench_tgt
WITH data only, prefetch rows = 10000
INCLUDING ONLY TABLE NAMES MATCHING 'orders' IN SCHEMA 'public';
EOF
	PGLOADER_OK=1
fi

# GNU time reports pgloader's peak RSS (max resident set, kB)
TIMECMD=()
[[ -x /usr/bin/time ]] && TIMECMD=(/usr/bin/time -f '%M' -o "$WORK/pgl.time")
pgloader_once() {	# sets ELAPSED, PGL_RSS (kB); returns 1 on failure
	local t0 t1 rc=0
	prepare orders
	t0=$(now)
	"${TIMECMD[@]}" timeout "$PGLOADER_TIMEOUT" pgloader --root-dir "$WORK/pgloader" \
		--logfile "$WORK/pgloader.log" --client-min-messages warning \
		"$WORK/pg.load" >"$WORK/pgl.out" 2>&1 || rc=$?
	t1=$(now)
	ELAPSED=$(fsub "$t1" "$t0")
	PGL_RSS=$(tail -1 "$WORK/pgl.time" 2>/dev/null || echo 0)
	if [[ $rc -ne 0 ]]; then
		local why
		why=$(grep -m1 -E ' (ERROR|FATAL|CRITICAL) |[Hh]eap exhausted' "$WORK/pgl.out" || tail -1 "$WORK/pgl.out" || true)
		[[ $rc == 124 ]] && why="timeout after ${PGLOADER_TIMEOUT} s (PGLOADER_TIMEOUT)"
		PGLOADER_NOTE="failed (exit $rc): ${why:0:200}"
		tail -20 "$WORK/pgl.out" >&2
		return 1
	fi
	local n
	n=$(q -d bench_tgt -c 'SELECT count(*) FROM orders')
	if [[ $n != "$ROWS" ]]; then
		PGLOADER_NOTE="failed: loaded $n rows, expected $ROWS"
		return 1
	fi
	return 0
}
# ---------------------------------------------------------------------------
# the measurements
# ---------------------------------------------------------------------------
T_INSERT=() T_COPY=() T_MIGRATE=() T_PGLOADER=()
PEAKS=() EXT_RSSES=() EXT_ANONS=() EXT_NS=() ENGINES=() PGL_RSSES=()

for ((rep = 1; rep <= REPS; rep++)); do
	# (a) INSERT ... SELECT through postgres_fdw
	prepare orders
	t0=$(now)
	q -d bench_tgt -c 'INSERT INTO orders SELECT * FROM legacy.orders'
	t1=$(now)
	ELAPSED=$(fsub "$t1" "$t0")
	check_count "INSERT ... SELECT" orders "$ROWS"
	T_INSERT+=("$ELAPSED")
	say "rep $rep/$REPS  INSERT...SELECT  ${ELAPSED} s  ($(rate "$ELAPSED") rows/s)"

	# (b) binary COPY pipe, one stream
	prepare orders
	t0=$(now)
	"${PSQL[@]}" -d bench_src -c 'COPY orders TO STDOUT (FORMAT binary)' |
		"${PSQL[@]}" -d bench_tgt -c 'COPY orders FROM STDIN (FORMAT binary)'
	t1=$(now)
	ELAPSED=$(fsub "$t1" "$t0")
	check_count "COPY pipe" orders "$ROWS"
	T_COPY+=("$ELAPSED")
	say "rep $rep/$REPS  COPY binary pipe ${ELAPSED} s  ($(rate "$ELAPSED") rows/s)"

	# (c) migrate_run with two rules
	migrate_once bench orders "$ROWS"
	T_MIGRATE+=("$ELAPSED")
	PEAKS+=("$PEAK_KB")
	EXT_RSSES+=("$EXT_RSS")
	EXT_ANONS+=("$EXT_ANON")
	EXT_NS+=("$EXT_N")
	ENGINES+=("$ENGINE_S")
	say "rep $rep/$REPS  migrate_run      ${ELAPSED} s  ($(rate "$ELAPSED") rows/s; run $RUN_ID, peak_memory_kb $PEAK_KB, sampler RssAnon max $EXT_ANON kB / VmRSS max $EXT_RSS kB over $EXT_N samples)"

	# (d) pgloader
	if [[ $PGLOADER_OK == 1 ]]; then
		if pgloader_once; then
			T_PGLOADER+=("$ELAPSED")
			PGL_RSSES+=("$PGL_RSS")
			say "rep $rep/$REPS  pgloader         ${ELAPSED} s  ($(rate "$ELAPSED") rows/s; max RSS $PGL_RSS kB)"
		else
			say "pgloader $PGLOADER_NOTE; dropping it from the comparison"
			PGLOADER_OK=0
			T_PGLOADER=()
		fi
	fi
done

# issue 3: parallel workers and index deferral, same data, same run
T_INSERT_IX=() T_P2=() T_IX_P1=() T_IX_P2=() T_IX_P2D=() T_COPY_IX=() T_COPY2=()
HALF=$((ROWS / 2))
copy_pipe() {	# $1: target table, $2: WHERE of the source rows (a COPY pipe of them)
	"${PSQL[@]}" -d bench_src -c "COPY (SELECT * FROM orders WHERE $2) TO STDOUT (FORMAT binary)" |
		"${PSQL[@]}" -d bench_tgt -c "COPY $1 FROM STDIN (FORMAT binary)"
}
if [[ $PARALLEL_BENCH == 1 ]]; then
	for ((rep = 1; rep <= REPS; rep++)); do
		# the baselines of two workers and of orders_ix: two COPY pipes at
		# once (the key's halves), and one COPY pipe into orders_ix
		prepare orders
		t0=$(now)
		copy_pipe orders "id <= $HALF" &
		c1=$!
		copy_pipe orders "id > $HALF" &
		c2=$!
		wait "$c1" && wait "$c2" || die "two COPY pipes failed"
		t1=$(now)
		ELAPSED=$(fsub "$t1" "$t0")
		check_count "two COPY pipes" orders "$ROWS"
		T_COPY2+=("$ELAPSED")
		say "rep $rep/$REPS  two COPY pipes at once into orders  ${ELAPSED} s"
		prepare orders_ix
		t0=$(now)
		copy_pipe orders_ix true
		t1=$(now)
		ELAPSED=$(fsub "$t1" "$t0")
		check_count "COPY pipe" orders_ix "$ROWS"
		T_COPY_IX+=("$ELAPSED")
		say "rep $rep/$REPS  COPY pipe into orders_ix  ${ELAPSED} s"
		prepare orders_ix
		t0=$(now)
		q -d bench_tgt -c 'INSERT INTO orders_ix SELECT * FROM legacy.orders'
		t1=$(now)
		ELAPSED=$(fsub "$t1" "$t0")
		check_count "INSERT ... SELECT" orders_ix "$ROWS"
		T_INSERT_IX+=("$ELAPSED")
		say "rep $rep/$REPS  INSERT...SELECT into orders_ix (2 secondary indexes)  ${ELAPSED} s"
		migrate_once bench orders "$ROWS" ", parallel => 2"
		T_P2+=("$ELAPSED")
		say "rep $rep/$REPS  migrate parallel 2 into orders  ${ELAPSED} s"
		migrate_once bench_ix orders_ix "$ROWS" ", parallel => 1"
		T_IX_P1+=("$ELAPSED")
		say "rep $rep/$REPS  migrate parallel 1 into orders_ix  ${ELAPSED} s"
		migrate_once bench_ix orders_ix "$ROWS" ", parallel => 2"
		T_IX_P2+=("$ELAPSED")
		say "rep $rep/$REPS  migrate parallel 2 into orders_ix  ${ELAPSED} s"
		migrate_once bench_ixd orders_ix "$ROWS" ", parallel => 2"
		T_IX_P2D+=("$ELAPSED")
		[[ $(q -d bench_tgt -c "SELECT count(*) FROM pg_index WHERE indrelid = 'orders_ix'::regclass") == 3 ]] ||
			die "orders_ix does not have its 3 indexes back after the deferred load"
		say "rep $rep/$REPS  migrate parallel 2, indexes deferred, into orders_ix  ${ELAPSED} s"
	done
fi

# memory is bounded by the batch, not by the table: a run over ROWS/4 rows
migrate_once bench_small orders_small "$SMALL"
SMALL_S=$ELAPSED SMALL_PEAK=$PEAK_KB SMALL_RSS=$EXT_RSS SMALL_ANON=$EXT_ANON SMALL_N=$EXT_N
say "small run        ${SMALL_S} s  ($SMALL rows; peak_memory_kb $SMALL_PEAK, sampler RssAnon max $SMALL_ANON kB / VmRSS max $SMALL_RSS kB)"

# ---------------------------------------------------------------------------
# report
# ---------------------------------------------------------------------------
M_INSERT=$(median "${T_INSERT[@]}")
M_COPY=$(median "${T_COPY[@]}")
M_MIGRATE=$(median "${T_MIGRATE[@]}")
M_ENGINE=$(median "${ENGINES[@]}")
TOTAL_S=$(fsub "$(now)" "${BENCH_T0:-$(now)}")

row() {	# method, times...
	local name=$1
	shift
	local m
	m=$(median "$@")
	printf '| %s | %s | %s | %s | %s |\n' "$name" "$m" "$(rate "$m")" \
		"$(fdiv "$M_INSERT" "$m")" "$(printf '%s ' "$@" | sed 's/ $//')"
}

GIT_REV=$(git -C "$BENCH_REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [[ -n $(git -C "$BENCH_REPO" status --porcelain -- src sql Makefile 2>/dev/null) ]]; then
	GIT_REV="$GIT_REV + uncommitted changes in src/sql"
fi

{
	echo "# migrate benchmark - $(date -u '+%Y-%m-%d %H:%M UTC')"
	echo
	echo "ROWS=$ROWS, REPS=$REPS, migrate.batch_size=$BATCH_SIZE, postgres_fdw fetch_size=$FETCH_SIZE;"
	echo "PostgreSQL $PGVER, shared_buffers=1GB, max_wal_size=4GB, synchronous_commit=on, fsync=$FSYNC;"
	echo "$(nproc) CPUs, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo) RAM; migrate at $GIT_REV."
	echo "Source and target are two databases of one cluster. Times are wall-clock seconds around"
	echo "the client command (psql start included), target truncated and CHECKPOINT before each."
	echo
	echo "| method | median s | median rows/s | throughput vs INSERT...SELECT | all runs (s) |"
	echo "|---|---|---|---|---|"
	row 'INSERT INTO orders SELECT * FROM legacy.orders (postgres_fdw)' "${T_INSERT[@]}"
	row 'COPY (FORMAT binary) TO STDOUT \| COPY FROM STDIN, one stream' "${T_COPY[@]}"
	row "migrate_run('bench'), 2 rules, batch_size $BATCH_SIZE" "${T_MIGRATE[@]}"
	if [[ $PGLOADER_OK == 1 && ${#T_PGLOADER[@]} -gt 0 ]]; then
		row "pgloader $PGLOADER_VERSION PG->PG (data only, prefetch rows = 10000)" "${T_PGLOADER[@]}"
	fi
	echo
	echo "- migrate / INSERT...SELECT throughput: **$(fdiv "$M_INSERT" "$M_MIGRATE")**"
	echo "- migrate / COPY pipe throughput: **$(fdiv "$M_COPY" "$M_MIGRATE")**"
	if [[ ${#T_P2[@]} -gt 0 ]]; then
		echo
		echo "Parallel workers and index deferral (issue 3). orders_ix is orders with two secondary"
		echo "indexes (customer_id, created_at). Ratios are throughput against the single-stream"
		echo "INSERT INTO orders SELECT (PK only) above, against the same INSERT into orders_ix, and"
		echo "against the single COPY pipe into the same table (orders: the one above; orders_ix: its own)."
		echo
		echo "| method | median s | median rows/s | vs INSERT...SELECT (orders) | vs INSERT...SELECT (orders_ix) | vs one COPY pipe (same table) | all runs (s) |"
		echo "|---|---|---|---|---|---|---|"
		M_INSERT_IX=$(median "${T_INSERT_IX[@]}")
		M_COPY_IX=$(median "${T_COPY_IX[@]}")
		prow() {	# method, COPY pipe median of its table, times...
			local name=$1 mcopy=$2
			shift 2
			local m
			m=$(median "$@")
			printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$name" "$m" "$(rate "$m")" \
				"$(fdiv "$M_INSERT" "$m")" "$(fdiv "$M_INSERT_IX" "$m")" "$(fdiv "$mcopy" "$m")" \
				"$(printf '%s ' "$@" | sed 's/ $//')"
		}
		prow 'INSERT INTO orders_ix SELECT * FROM legacy.orders' "$M_COPY_IX" "${T_INSERT_IX[@]}"
		prow 'COPY pipe into orders, one stream' "$M_COPY" "${T_COPY[@]}"
		prow 'COPY pipe into orders, two streams at once (key halves)' "$M_COPY" "${T_COPY2[@]}"
		prow 'COPY pipe into orders_ix, one stream' "$M_COPY_IX" "${T_COPY_IX[@]}"
		prow 'migrate_run, parallel => 1, into orders' "$M_COPY" "${T_MIGRATE[@]}"
		prow 'migrate_run, parallel => 2, into orders' "$M_COPY" "${T_P2[@]}"
		prow 'migrate_run, parallel => 1, into orders_ix' "$M_COPY_IX" "${T_IX_P1[@]}"
		prow 'migrate_run, parallel => 2, into orders_ix' "$M_COPY_IX" "${T_IX_P2[@]}"
		prow 'migrate_run, parallel => 2, defer_indexes, into orders_ix' "$M_COPY_IX" "${T_IX_P2D[@]}"
		echo
		echo "- parallel 2 with index deferral / single-stream INSERT...SELECT (into orders_ix): **$(fdiv "$M_INSERT_IX" "$(median "${T_IX_P2D[@]}")")**"
		echo "- parallel 2 / single-stream INSERT...SELECT (into orders): **$(fdiv "$M_INSERT" "$(median "${T_P2[@]}")")**"
		echo "- parallel 2 / one COPY pipe (into orders): **$(fdiv "$M_COPY" "$(median "${T_P2[@]}")")**; two COPY pipes at once / one COPY pipe: **$(fdiv "$M_COPY" "$(median "${T_COPY2[@]}")")** (what two streams gain on this machine)"
		echo "- parallel 2 with index deferral / one COPY pipe (into orders_ix): **$(fdiv "$M_COPY_IX" "$(median "${T_IX_P2D[@]}")")**"
	fi
	echo "- migrate engine time (run_table started_at to finished_at), median: $M_ENGINE s ($(rate "$M_ENGINE") rows/s); the rest of the wall time is worker start, plan checks and bookkeeping"
	echo
	echo "Memory of the migrate worker (max over the $REPS runs of $ROWS rows; one run of $SMALL rows):"
	echo
	echo "| run | rows | migrate.run.peak_memory_kb | sampler max RssAnon | sampler max VmRSS | samples |"
	echo "|---|---|---|---|---|---|"
	echo "| orders | $ROWS | $(maxof "${PEAKS[@]}") kB | $(maxof "${EXT_ANONS[@]}") kB | $(maxof "${EXT_RSSES[@]}") kB | $(printf '%s ' "${EXT_NS[@]}" | sed 's/ $//') |"
	echo "| orders_small | $SMALL | $SMALL_PEAK kB | $SMALL_ANON kB | $SMALL_RSS kB | $SMALL_N |"
	echo
	echo "The sampler reads /proc/<pid>/status of the 'migrate worker' process every 0.1 s (samples:"
	echo "per run). RssAnon is the process's private memory and should not grow with the table;"
	echo "VmRSS adds the shared buffers the worker touched, so it grows with the data written."
	if [[ $PGLOADER_OK == 1 && ${#PGL_RSSES[@]} -gt 0 ]]; then
		echo "pgloader max RSS (GNU time): $(maxof "${PGL_RSSES[@]}") kB."
	else
		echo "pgloader: ${PGLOADER_NOTE:-not run}."
	fi
	echo
	echo "Total benchmark time (data generation and setup included): $TOTAL_S s."
} >"$WORK/report.md"

cp "$WORK/report.md" "$OUT"
echo
cat "$WORK/report.md"
echo
say "report written to $OUT"
