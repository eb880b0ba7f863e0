#!/usr/bin/env bash
#
# test/bench/bench-dirty.sh - dirty-data benchmark of migrate (issue 12)
#
# In one run, on a throwaway PostgreSQL 15 cluster (pg_virtualenv), loads a
# generated table (ROWS rows) whose target has a foreign key to a loaded
# parent, a NOT NULL and a CHECK, through postgres_fdw:
#   (a) INSERT INTO items SELECT * FROM legacy.items_clean     (baseline)
#   (b) migrate_run of the clean rows
#   (c) migrate_run of the same rows with 2 % bad ones spread evenly
#       (1 % orphans of the FK, 0.5 % NULL into the NOT NULL, 0.5 % failing
#       the CHECK), routed set-wise to migrate.reject
#   (d) once, (c) with "setwise_quarantine": false (bisection), unless
#       BISECT=0
# REPS times each, taking turns (target truncated and CHECKPOINT before
# every timing), checks every count and reject, and prints a Markdown
# report, also written to test/bench/results-dirty-latest.md.
#
# Usage (as root; it installs the extension, so hold the lock mtest uses):
#   flock /tmp/migrate-install.lock bash test/bench/bench-dirty.sh
# Environment: ROWS (300000), REPS (3), BATCH_SIZE (50000, the default of
# migrate.batch_size), FETCH_SIZE (10000), FSYNC (on), BISECT (1), INSTALL
# (1: run `make install` first), OUT (report path).  See README.md.
#
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)

export ROWS=${ROWS:-300000}
export REPS=${REPS:-3}
export BATCH_SIZE=${BATCH_SIZE:-50000}
export FETCH_SIZE=${FETCH_SIZE:-10000}
export FSYNC=${FSYNC:-on}
export BISECT=${BISECT:-1}
export INSTALL=${INSTALL:-1}
export OUT=${OUT:-$HERE/results-dirty-latest.md}

die() { echo "bench-dirty.sh: ERROR: $*" >&2; exit 1; }
say() { echo "bench-dirty.sh: $*" >&2; }

# ---------------------------------------------------------------------------
# outer part: check, install, re-exec inside a throwaway cluster
# ---------------------------------------------------------------------------
if [[ ${1:-} != --inner ]]; then
	[[ $(id -u) -eq 0 ]] || die "run as root: pg_virtualenv creates a cluster run by user postgres"
	[[ $ROWS =~ ^[0-9]+$ && $ROWS -ge 1000 ]] || die "ROWS must be an integer >= 1000 (got '$ROWS')"
	[[ $REPS =~ ^[0-9]+$ && $REPS -ge 1 ]] || die "REPS must be an integer >= 1 (got '$REPS')"
	[[ $BATCH_SIZE =~ ^[0-9]+$ && $BATCH_SIZE -ge 1 ]] || die "BATCH_SIZE must be a positive integer"
	[[ $FSYNC == on || $FSYNC == off ]] || die "FSYNC must be on or off"
	command -v pg_virtualenv >/dev/null || die "pg_virtualenv not found (package postgresql-common)"

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
	EXTRA=()
	# EXPLAIN_DIR=dir: auto_explain plans of statements over 0.2 s there (debugging)
	if [[ -n ${EXPLAIN_DIR:-} ]]; then
		mkdir -p "$EXPLAIN_DIR" && chmod 777 "$EXPLAIN_DIR"
		EXTRA=(-o shared_preload_libraries=auto_explain -o auto_explain.log_min_duration=200
			-o auto_explain.log_analyze=on -o auto_explain.log_nested_statements=on
			-o logging_collector=on -o log_directory="$EXPLAIN_DIR")
	fi
	exec pg_virtualenv -t -v 15 \
		-o shared_buffers=1GB -o max_wal_size=4GB -o synchronous_commit=on \
		-o fsync="$FSYNC" "${EXTRA[@]}" \
		-- bash "$0" --inner
fi

# ---------------------------------------------------------------------------
# inner part: PGHOST/PGPORT/PGUSER/PGPASSWORD point at the throwaway cluster
# ---------------------------------------------------------------------------
[[ -n ${PGPORT:-} && -n ${PGPASSWORD:-} ]] || die "--inner is meant to run under pg_virtualenv"
set -E
trap 'echo "bench-dirty.sh: ERROR: line $LINENO failed: $BASH_COMMAND" >&2' ERR

# shared helpers: q, now, fsub, fdiv, rate, median
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PORT=$(q -c 'SHOW port')
SOCKDIR=$(q -c 'SHOW unix_socket_directories' | cut -d, -f1 | xargs)
PGVER=$(q -c 'SHOW server_version')
say "cluster: PostgreSQL $PGVER on port $PORT, fsync=$FSYNC; ROWS=$ROWS REPS=$REPS BATCH_SIZE=$BATCH_SIZE"

# the bad rows of items_dirty, spread evenly: i % 200 in (0, 100) orphans
# (1 %), 50 a NULL name (0.5 %), 150 a negative qty (0.5 %)
ITEMS_COLS="id bigint PRIMARY KEY, parent_id int, qty int, name text, amount numeric(12,2), note text"
ITEMS_ROWS="SELECT i, CASE WHEN :dirty AND i % 200 IN (0, 100) THEN 1000000 + (i % 997)::int ELSE 1 + (i % 1000)::int END,
       CASE WHEN :dirty AND i % 200 = 150 THEN -1 ELSE (i % 17)::int END,
       CASE WHEN :dirty AND i % 200 = 50 THEN NULL ELSE 'item ' || i END,
       round((i % 100000) / 100.0, 2), md5(i::text)
  FROM generate_series(1::bigint, :rows) AS i"
BAD=$(awk -v n="$ROWS" 'BEGIN { c = 0; for (i = 1; i <= n; i++) { r = i % 200; if (r == 0 || r == 100 || r == 50 || r == 150) c++ } print c }')

say "creating the source: parents, items_clean, items_dirty ($BAD bad rows)"
q -c 'CREATE DATABASE bench_src' -c 'CREATE DATABASE bench_tgt'
"${PSQL[@]}" -d bench_src -v rows="$ROWS" <<SQL
CREATE TABLE parents (id int PRIMARY KEY, label text);
INSERT INTO parents SELECT g, 'parent ' || g FROM generate_series(1, 1000) g;
CREATE TABLE items_clean ($ITEMS_COLS);
\set dirty false
INSERT INTO items_clean $ITEMS_ROWS;
CREATE TABLE items_dirty ($ITEMS_COLS);
\set dirty true
INSERT INTO items_dirty $ITEMS_ROWS;
VACUUM (FREEZE, ANALYZE) parents, items_clean, items_dirty;
SQL

say "setting up bench_tgt (postgres_fdw, migrate, plans)"
"${PSQL[@]}" -d bench_tgt >/dev/null <<SQL
SET client_min_messages = warning;
CREATE EXTENSION postgres_fdw;
CREATE EXTENSION migrate;
CREATE SERVER srcsrv FOREIGN DATA WRAPPER postgres_fdw
    OPTIONS (host '$SOCKDIR', port '$PORT', dbname 'bench_src', fetch_size '$FETCH_SIZE');
CREATE USER MAPPING FOR CURRENT_USER SERVER srcsrv;
CREATE SCHEMA legacy;
IMPORT FOREIGN SCHEMA public FROM SERVER srcsrv INTO legacy;
ANALYZE legacy.items_clean;
ANALYZE legacy.items_dirty;
-- the parent is loaded before (not by these runs): its FK is probed
CREATE TABLE parents (id int PRIMARY KEY, label text);
INSERT INTO parents SELECT * FROM legacy.parents;
CREATE TABLE items (id bigint PRIMARY KEY, parent_id int NOT NULL REFERENCES parents,
                    qty int CHECK (qty >= 0), name text NOT NULL, amount numeric(12,2), note text);
SELECT migrate_plan('clean', source_schema => 'legacy');
SELECT migrate_table('clean', 'items_clean', 'items');
SELECT migrate_plan('dirty', source_schema => 'legacy');
SELECT migrate_table('dirty', 'items_dirty', 'items');
SELECT migrate_plan('dirty_bisect', source_schema => 'legacy', options => '{"setwise_quarantine": false}');
SELECT migrate_table('dirty_bisect', 'items_dirty', 'items');
SQL

prepare() { q -d bench_tgt -c "TRUNCATE items" -c 'CHECKPOINT'; }

# migrate_run(plan) timed; sets ELAPSED and RUN_ID; checks the counts
run_plan() {	# $1 plan, $2 expected rejects
	local t
	prepare
	t=$(now)
	RUN_ID=$(q -d bench_tgt -c "SET migrate.batch_size = $BATCH_SIZE" -c "SELECT migrate_run('$1')")
	ELAPSED=$(fsub "$(now)" "$t")
	read -r STATE READ WRITTEN REJECTED SETWISE STEPS < <(q -d bench_tgt -F ' ' -c "SELECT state, rows_read, rows_written, rows_rejected,
	        rows_rejected_setwise, bisect_steps FROM migrate.run_table WHERE run_id = $RUN_ID")
	[[ $STATE == succeeded && $READ == "$ROWS" && $REJECTED == "$2" && $WRITTEN == $((ROWS - $2)) ]] ||
		die "$1: run $RUN_ID is $STATE, read $READ, written $WRITTEN, rejected $REJECTED (expected $2)"
	[[ $(q -d bench_tgt -c "SELECT count(*) FROM items") == $((ROWS - $2)) ]] || die "$1: wrong row count"
	[[ $(q -d bench_tgt -c "SELECT count(*) FROM migrate.reject WHERE run_id = $RUN_ID") == "$2" ]] ||
		die "$1: wrong reject count"
}

T_INS=() T_CLEAN=() T_DIRTY=()
for ((rep = 1; rep <= REPS; rep++)); do
	prepare
	t=$(now)
	q -d bench_tgt -c "INSERT INTO items SELECT * FROM legacy.items_clean"
	e=$(fsub "$(now)" "$t")
	[[ $(q -d bench_tgt -c "SELECT count(*) FROM items") == "$ROWS" ]] || die "INSERT...SELECT: wrong row count"
	T_INS+=("$e")
	say "rep $rep/$REPS  INSERT...SELECT  $e s ($(rate "$e") rows/s)"

	run_plan clean 0
	T_CLEAN+=("$ELAPSED")
	say "rep $rep/$REPS  migrate clean    $ELAPSED s ($(rate "$ELAPSED") rows/s)"

	run_plan dirty "$BAD"
	T_DIRTY+=("$ELAPSED")
	DIRTY_SETWISE=$SETWISE DIRTY_STEPS=$STEPS DIRTY_RUN=$RUN_ID
	say "rep $rep/$REPS  migrate dirty    $ELAPSED s ($(rate "$ELAPSED") rows/s; $SETWISE set-wise rejects, $STEPS bisection steps)"
done
REASONS=$(q -d bench_tgt -c "SELECT string_agg(reason || ': ' || n, ', ' ORDER BY reason)
                               FROM (SELECT reason, count(*) n FROM migrate.reject WHERE run_id = $DIRTY_RUN GROUP BY 1) r")

B_TIME="" B_STEPS=""
if [[ $BISECT == 1 ]]; then
	run_plan dirty_bisect "$BAD"
	B_TIME=$ELAPSED B_STEPS=$STEPS
	say "once      migrate dirty, bisection  $ELAPSED s ($(rate "$ELAPSED") rows/s; $STEPS bisection steps)"
fi

M_INS=$(median "${T_INS[@]}")
M_CLEAN=$(median "${T_CLEAN[@]}")
M_DIRTY=$(median "${T_DIRTY[@]}")
R_DIRTY=$(fdiv "$M_CLEAN" "$M_DIRTY")		# dirty throughput / clean throughput
R_CLEAN=$(fdiv "$M_INS" "$M_CLEAN")		# clean throughput / INSERT...SELECT's
VERDICT=$(awk -v r="$R_DIRTY" 'BEGIN { print (r >= 0.5 ? "meets the 0.5 floor" : "BELOW the 0.5 floor") (r >= 0.8 ? " and the 0.8 aim" : "") }')

{
	echo "# Dirty-data benchmark (issue 12): set-wise quarantine"
	echo
	echo "$(date -u '+%Y-%m-%d %H:%M UTC'), PostgreSQL $PGVER, fsync=$FSYNC, ROWS=$ROWS, REPS=$REPS,"
	echo "migrate.batch_size=$BATCH_SIZE, postgres_fdw fetch_size=$FETCH_SIZE, one worker."
	echo "Target \`items\`: bigint PK, \`parent_id\` NOT NULL REFERENCES parents (1,000 rows,"
	echo "loaded before), \`qty\` CHECK (qty >= 0), \`name\` NOT NULL, numeric(12,2), text."
	echo "Dirty rows: $BAD of $ROWS ($(fdiv $((BAD * 100)) "$ROWS") %), spread evenly: 1 % FK orphans,"
	echo "0.5 % NULL names, 0.5 % negative qty. Rejects of the last dirty run: $REASONS."
	echo
	echo "| method | median s | rows/s | runs (s) |"
	echo "|---|---:|---:|---|"
	echo "| INSERT ... SELECT (clean, FDW) | $M_INS | $(rate "$M_INS") | ${T_INS[*]} |"
	echo "| migrate_run, clean | $M_CLEAN | $(rate "$M_CLEAN") | ${T_CLEAN[*]} |"
	echo "| migrate_run, 2 % dirty (set-wise) | $M_DIRTY | $(rate "$M_DIRTY") | ${T_DIRTY[*]} |"
	if [[ -n $B_TIME ]]; then
		echo "| migrate_run, 2 % dirty, \`setwise_quarantine: false\` (bisection, once) | $B_TIME | $(rate "$B_TIME") | $B_TIME |"
	fi
	echo
	echo "- dirty / clean throughput: **$R_DIRTY** ($VERDICT)"
	echo "- clean migrate / INSERT ... SELECT throughput: **$R_CLEAN**"
	echo "- set-wise run: $DIRTY_SETWISE rows rejected set-wise, $DIRTY_STEPS bisection steps"
	if [[ -n $B_TIME ]]; then
		echo "- bisection run: $B_STEPS bisection steps, $(fdiv "$B_TIME" "$M_DIRTY")x the set-wise time"
	fi
} | tee "$OUT"
