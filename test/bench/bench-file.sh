#!/usr/bin/env bash
#
# test/bench/bench-file.sh - file sources (issue 17): migrate_file() and
# migrate_run() against COPY FROM the same file, same run, medians of REPS
#
# A CSV (with a header) of ROWS rows of the 10 columns of BASELINES.md
# (`orders`) is written by the server into a directory of the throwaway
# cluster; the target is an empty `orders` (primary key) and every timing
# starts from TRUNCATE and CHECKPOINT.  Measured:
#   (a) COPY orders FROM 'file' (FORMAT csv, HEADER): the baseline
#   (b) INSERT INTO orders SELECT ... FROM a file_fdw table: for reference
#   (c) migrate_run() over migrate_file(), one worker
#   (d) the same over a copy of the file with 1 % malformed lines (an
#       unterminated quote, an extra field, a missing field, in turn): those
#       go to migrate.reject, the rest loads; rate against (c)
#   (e) migrate_run(parallel => 2) over the same file (byte-range units)
#   (f) for reference, two COPY FROM streams at once, of the file's two
#       halves: what two writers into this table reach on this machine
# Targets (issue 17): (c) >= 1.0x (a); (e) >= 1.5x (a); (d) >= 0.8x (c);
# memory bounded by the batch: migrate.run.peak_rss_kb of the runs.
# Reported as met or missed, never asserted.
#
# Usage (as root): bash test/bench/bench-file.sh
# Environment: ROWS (1000000), REPS (3), BENCH_PGPORT (5491), OUT
# (test/bench/results-file-latest.md).
#
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
export ROWS=${ROWS:-1000000}
export REPS=${REPS:-3}
export BENCH_PGPORT=${BENCH_PGPORT:-5491}
export OUT=${OUT:-$HERE/results-file-latest.md}
. "$HERE/lib.sh"

die() { echo "bench-file.sh: ERROR: $*" >&2; exit 1; }
say() { echo "bench-file.sh: $*" >&2; }

if [[ ${1:-} != --inner ]]; then
	[[ $(id -u) -eq 0 ]] || die "run as root: pg_virtualenv's cluster runs as postgres"
	[[ $ROWS =~ ^[0-9]+$ && $ROWS -ge 10000 ]] || die "ROWS must be an integer >= 10000"
	[[ $REPS =~ ^[0-9]+$ && $REPS -ge 1 ]] || die "REPS must be a positive integer"
	# fsync on (pg_virtualenv turns it off): commits are really flushed, as in bench.sh
	private_install_reexec "$0" shared_buffers=512MB max_wal_size=4GB max_worker_processes=16 fsync=on
	exit $?
fi

DB=bench_file
DIR=/tmp/migrate-bench-files-$PGPORT
q -d postgres -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB"
Q() { q -d $DB "$@"; }
Q -c "CREATE EXTENSION migrate; CREATE EXTENSION file_fdw; CREATE SERVER files FOREIGN DATA WRAPPER file_fdw"
rm -rf "$DIR"; mkdir -p "$DIR/parts"; chmod -R 777 "$DIR"
say "writing $ROWS rows to $DIR/orders.csv"
Q -c "CREATE TABLE gen ($ORDERS_COLS)"
Q -v rows="$ROWS" <<<"INSERT INTO gen $ORDERS_ROWS"
Q -c "COPY gen TO '$DIR/orders.csv' (FORMAT csv, HEADER)"
# 1 % malformed: every 100th line broken one of three ways (an
# unterminated quote, an extra field, a missing field)
awk 'NR > 1 && NR % 100 == 0 { k = (NR / 100) % 3
		if (k == 0) sub(/,/, ",\"")
		else if (k == 1) $0 = $0 ",extra"
		else sub(/,[^,]*$/, "") }
	{ print }' "$DIR/orders.csv" >"$DIR/dirty.csv"
chmod 644 "$DIR/dirty.csv"
half=$(( (ROWS + 1) / 2 + 1 ))
{ head -n "$half" "$DIR/orders.csv"; } >"$DIR/half1.csv"
{ head -n 1 "$DIR/orders.csv"; tail -n +"$((half + 1))" "$DIR/orders.csv"; } >"$DIR/half2.csv"
chmod 644 "$DIR/half1.csv" "$DIR/half2.csv"
Q -c "DROP TABLE gen"
Q -c "CREATE TABLE orders ($ORDERS_COLS)"
cols=$(Q -c "SELECT string_agg(attname || ' text', ', ' ORDER BY attnum) FROM pg_attribute WHERE attrelid = 'orders'::regclass AND attnum > 0")
Q -c "CREATE FOREIGN TABLE orders_ff ($cols) SERVER files OPTIONS (filename '$DIR/orders.csv', format 'csv', header 'true')"
Q -c "SET client_min_messages = warning;
      SELECT migrate_plan('f1', options => '{\"reject_limit\": null}'); SELECT migrate_file('f1', 'orders', '$DIR/orders.csv');
      SELECT migrate_plan('fd', options => '{\"reject_limit\": null}'); SELECT migrate_file('fd', 'orders', '$DIR/dirty.csv', source_table => 'orders_dirty');
      SELECT migrate_plan('f2', options => '{\"reject_limit\": null}'); SELECT migrate_file('f2', 'orders', '$DIR/orders.csv', source_table => 'orders_two');" >/dev/null
sel=$(Q -c "SELECT string_agg(format('(%I)::%s', attname, format_type(atttypid, atttypmod)), ', ' ORDER BY attnum) FROM pg_attribute WHERE attrelid = 'orders'::regclass AND attnum > 0")

reset() { Q -c "TRUNCATE orders" -c "CHECKPOINT"; }
timeit() { local t0 t1; reset; t0=$(now); "$@" >/dev/null; t1=$(now); fsub "$t1" "$t0"; }
declare -a A B C D E F
two_copies() {
	Q -c "COPY orders FROM '$DIR/half1.csv' (FORMAT csv, HEADER)" & local p=$!
	Q -c "COPY orders FROM '$DIR/half2.csv' (FORMAT csv, HEADER)"
	wait "$p"
}
peak=()
for rep in $(seq 1 "$REPS"); do
	say "rep $rep of $REPS"
	A+=("$(timeit Q -c "COPY orders FROM '$DIR/orders.csv' (FORMAT csv, HEADER)")")
	B+=("$(timeit Q -c "INSERT INTO orders SELECT $sel FROM orders_ff")")
	C+=("$(timeit Q -c "SET client_min_messages = warning; SELECT migrate_run('f1')")")
	peak+=("$(Q -c "SELECT peak_rss_kb FROM migrate.run WHERE plan = 'f1' ORDER BY run_id DESC LIMIT 1")")
	D+=("$(timeit Q -c "SET client_min_messages = warning; SELECT migrate_run('fd')")")
	E+=("$(timeit Q -c "SET client_min_messages = warning; SELECT migrate_run('f2', parallel => 2)")")
	F+=("$(timeit two_copies)")
done
rej=$(Q -c "SELECT rows_rejected FROM migrate.run_table t JOIN migrate.run r USING (run_id) WHERE r.plan = 'fd' ORDER BY run_id DESC LIMIT 1")
written=$(Q -c "SELECT rows_written FROM migrate.run_table t JOIN migrate.run r USING (run_id) WHERE r.plan = 'f1' ORDER BY run_id DESC LIMIT 1")
mA=$(median "${A[@]}") mB=$(median "${B[@]}") mC=$(median "${C[@]}") mD=$(median "${D[@]}") mE=$(median "${E[@]}") mF=$(median "${F[@]}")
mp=$(median "${peak[@]}")
verdict() { awk -v r="$1" -v t="$2" 'BEGIN { print (r >= t) ? "met" : "missed" }'; }
rc=$(fdiv "$mA" "$mC") re=$(fdiv "$mA" "$mE") rd=$(fdiv "$mC" "$mD")
size=$(du -m "$DIR/orders.csv" | cut -f1)
{
	echo "# File sources benchmark (issue 17)"
	echo
	echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(q -d postgres -c 'SELECT version()' | cut -d, -f1), $(nproc) CPUs, ROWS=$ROWS ($size MB of CSV), REPS=$REPS (medians),"
	echo "git $BENCH_REVISION. Script: test/bench/bench-file.sh. The target \`orders\` has its primary key; every timing starts from TRUNCATE and CHECKPOINT."
	echo
	echo "| load | s (median) | runs | rows/s | vs COPY |"
	echo "|---|---:|---|---:|---:|"
	echo "| (a) COPY FROM 'file' (FORMAT csv) | $mA | ${A[*]} | $(rate "$mA") | 1.00 |"
	echo "| (b) INSERT ... SELECT from file_fdw | $mB | ${B[*]} | $(rate "$mB") | $(fdiv "$mA" "$mB") |"
	echo "| (c) migrate_run, 1 worker | $mC | ${C[*]} | $(rate "$mC") | $rc |"
	echo "| (d) migrate_run, 1 worker, 1 % malformed lines ($rej rejected) | $mD | ${D[*]} | $(rate "$mD") | $(fdiv "$mA" "$mD") |"
	echo "| (e) migrate_run, 2 workers (byte ranges of the one file) | $mE | ${E[*]} | $(rate "$mE") | $re |"
	echo "| (f) two COPY FROM at once (the file's halves), for reference | $mF | ${F[*]} | $(rate "$mF") | $(fdiv "$mA" "$mF") |"
	echo
	echo "- (c) one worker against COPY: **$rc** (target >= 1.0: **$(verdict "$rc" 1.0)**); $written rows written."
	echo "- (e) two workers against COPY: **$re** (target >= 1.5: **$(verdict "$re" 1.5)**); against two COPY streams (f): $(fdiv "$mF" "$mE")."
	echo "- (d) 1 % malformed lines against the clean file: **$rd** (target >= 0.8: **$(verdict "$rd" 0.8)**)."
	echo "- Worker memory (migrate.run.peak_rss_kb of (c), median): $mp kB, for a file of $size MB."
} >"$OUT"
cat "$OUT"
rm -rf "$DIR"
