#!/usr/bin/env bash
#
# test/bench/bench-undo.sh - cost of the undo log and of migrate_rollback (issue 14)
#
# On a throwaway PostgreSQL 15 cluster (pg_virtualenv), with a source table
# `orders` of ROWS rows (the 10 columns of /work/shared/BASELINES.md) reached
# through a postgres_fdw loopback server, measures (medians of REPS, the two
# variants of a comparison taking turns):
#   (a) an upsert load of ROWS rows into a target that already holds them
#       (every row overwritten): run_table.undo 'log' against the same plan
#       with options undo = 'off'; target: ratio <= 1.15
#   (b) an insert load into an empty target: undo 'empty' (nothing logged)
#       against undo = 'off'; target: no cost (ratio about 1)
#   (c) migrate_rollback() of an upsert run that changed 1 % and 10 % of a
#       populated target of ROWS/10 and of ROWS rows: the time must follow
#       the rows changed, not the table's size
# Every rollback is checked: the target's md5 equals the one before the run,
# or the script FAILS.  Targets are reported as met or missed, never
# asserted.  Report: test/bench/results-undo-latest.md.
#
# Usage (as root):
#   INSTALL=private bash test/bench/bench-undo.sh                 # no lock needed
#   ROWS=100000 REPS=1 INSTALL=private bash test/bench/bench-undo.sh   # quick
# Environment: ROWS (1000000), REPS (3), BATCH_SIZE (50000), FETCH_SIZE
# (10000), FSYNC (on), INSTALL (private | 1 | 0, as bench-sync.sh), OUT,
# PORT (the throwaway cluster's port; default: pg_virtualenv's choice),
# SECTIONS (the sections to measure, default "a b c"; a report of fewer
# says n/a for the others), PGOPTS (more server settings, "name=value ...",
# e.g. auto_explain's to profile).
#
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)

export ROWS=${ROWS:-1000000}
export REPS=${REPS:-3}
export BATCH_SIZE=${BATCH_SIZE:-50000}
export FETCH_SIZE=${FETCH_SIZE:-10000}
export FSYNC=${FSYNC:-on}
export INSTALL=${INSTALL:-private}
export OUT=${OUT:-$HERE/results-undo-latest.md}
export SECTIONS=${SECTIONS:-a b c}
has() { [[ " $SECTIONS " == *" $1 "* ]]; }

die() { echo "bench-undo.sh: ERROR: $*" >&2; exit 1; }
say() { echo "bench-undo.sh: $*" >&2; }

if [[ ${1:-} != --inner ]]; then
	[[ $(id -u) -eq 0 ]] || die "run as root: pg_virtualenv creates a cluster run by user postgres"
	[[ $ROWS =~ ^[0-9]+$ && $ROWS -ge 10000 ]] || die "ROWS must be an integer >= 10000 (got '$ROWS')"
	[[ $REPS =~ ^[0-9]+$ && $REPS -ge 1 ]] || die "REPS must be an integer >= 1 (got '$REPS')"
	EXTRA=()
	if [[ $INSTALL == 1 || $INSTALL == private ]]; then
		dest=()
		if [[ $INSTALL == private ]]; then
			PRIVATE_DIR=$(mktemp -d -t migrate-bench-install.XXXXXX)
			chmod 755 "$PRIVATE_DIR"
			trap 'rm -rf "$PRIVATE_DIR"' EXIT
			dest=(DESTDIR="$PRIVATE_DIR")
			EXTRA=(-o extension_destdir="$PRIVATE_DIR"
				-o dynamic_library_path="$PRIVATE_DIR/usr/lib/postgresql/15/lib:/usr/lib/postgresql/15/lib")
		fi
		say "make clean install ${dest[*]} in $REPO"
		log=$(mktemp)
		if ! { make -C "$REPO" PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config clean &&
			make -C "$REPO" PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config install "${dest[@]}"; } >"$log" 2>&1; then
			cat "$log" >&2
			rm -f "$log"
			die "make install failed"
		fi
		rm -f "$log"
	fi
	for o in ${PGOPTS:-}; do EXTRA+=(-o "$o"); done
	PGPORT=${PORT:-} pg_virtualenv -t -v 15 \
		-o shared_buffers=1GB -o max_wal_size=4GB -o synchronous_commit=on \
		-o fsync="$FSYNC" -o max_connections=100 "${EXTRA[@]}" \
		-- bash "$0" --inner
	exit $?
fi

[[ -n ${PGPORT:-} && -n ${PGPASSWORD:-} ]] || die "--inner is meant to run under pg_virtualenv"
set -E
trap 'echo "bench-undo.sh: ERROR: line $LINENO failed: $BASH_COMMAND" >&2' ERR
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
meets() { awk -v a="$1" -v b="$2" 'BEGIN { print (a != "n/a" && a <= b) ? "met" : "**missed**" }'; }

PORT=$(q -c 'SHOW port')
SOCKDIR=$(q -c 'SHOW unix_socket_directories' | cut -d, -f1 | xargs)
PGVER=$(q -c 'SHOW server_version')
SMALLT=$((ROWS / 10))
say "PostgreSQL $PGVER, ROWS=$ROWS REPS=$REPS BATCH_SIZE=$BATCH_SIZE fsync=$FSYNC"

t=$(now)
q -c 'CREATE DATABASE bench_src' -c 'CREATE DATABASE bench_tgt'
"${PSQL[@]}" -d bench_src -v rows="$ROWS" <<SQL
CREATE TABLE orders ($ORDERS_COLS);
INSERT INTO orders $ORDERS_ROWS;
VACUUM (FREEZE, ANALYZE) orders;
SQL
"${PSQL[@]}" -d bench_tgt -v rows="$ROWS" >/dev/null <<SQL
SET client_min_messages = warning;
CREATE EXTENSION postgres_fdw;
CREATE EXTENSION migrate;
CREATE SERVER srcsrv FOREIGN DATA WRAPPER postgres_fdw
    OPTIONS (host '$SOCKDIR', port '$PORT', dbname 'bench_src', fetch_size '$FETCH_SIZE');
CREATE USER MAPPING FOR CURRENT_USER SERVER srcsrv;
CREATE SCHEMA legacy;
IMPORT FOREIGN SCHEMA public FROM SERVER srcsrv INTO legacy;
ANALYZE legacy.orders;
-- the populated targets' rows before a run: the same keys, other values
CREATE TABLE seed ($ORDERS_COLS);
INSERT INTO seed $ORDERS_ROWS;
UPDATE seed SET note = 'before the run', amount = amount + 1;
VACUUM (FREEZE, ANALYZE) seed;
CREATE TABLE orders ($ORDERS_COLS);
CREATE TABLE orders_small ($ORDERS_COLS);
SELECT migrate_plan('up_log', source_schema => 'legacy');
SELECT migrate_table('up_log', 'orders', 'orders', mode => 'upsert');
SELECT migrate_plan('up_off', source_schema => 'legacy', options => '{"undo": "off"}');
SELECT migrate_table('up_off', 'orders', 'orders', mode => 'upsert');
SELECT migrate_plan('ins_empty', source_schema => 'legacy');
SELECT migrate_table('ins_empty', 'orders', 'orders');
SELECT migrate_plan('ins_off', source_schema => 'legacy', options => '{"undo": "off"}');
SELECT migrate_table('ins_off', 'orders', 'orders');
SQL
say "setup in $(fsub "$(now)" "$t") s"

tbl_md5() { q -d bench_tgt -c "SELECT count(*) || ' ' || md5(string_agg(md5(t::text), '' ORDER BY id)) FROM $1 t"; }
populate() {	# $1 table, $2 rows
	q -d bench_tgt -c "TRUNCATE $1" -c "INSERT INTO $1 SELECT * FROM seed WHERE id <= $2" \
		-c "VACUUM (FREEZE, ANALYZE) $1" -c "TRUNCATE migrate.undo" -c "$DROP_UNDO" -c 'CHECKPOINT'
}
empty() { q -d bench_tgt -c "TRUNCATE $1" -c "TRUNCATE migrate.undo" -c "$DROP_UNDO" -c 'CHECKPOINT'; }
# the runs' undo tables (0.8: migrate.undo_<run>_<oid>) go between runs
DROP_UNDO="SELECT count(migrate._undo_drop(run_id)) FROM migrate.run"
# rows of run $1's undo log of table $2, and the size of that log
undo_count() {
	q -d bench_tgt -c "SELECT (SELECT count(*) FROM migrate.undo WHERE run_id = $1)
	    + CASE WHEN u IS NULL THEN 0 ELSE (xpath('/row/c/text()', query_to_xml(format('SELECT count(*) AS c FROM %s', u),
	                                       false, true, '')))[1]::text::bigint END
	  FROM to_regclass(format('migrate.undo_%s_%s', $1, '$2'::regclass::oid)) u"
}
undo_size() {
	q -d bench_tgt -c "SELECT pg_size_pretty(pg_total_relation_size('migrate.undo') + coalesce(pg_total_relation_size(to_regclass(format('migrate.undo_%s_%s', $1, '$2'::regclass::oid))), 0))"
}
# one migrate_run; $1 plan, $2 expected undo, $3 expected rows written.  Sets ELAPSED, RUN_ID
run_load() {
	local t line
	t=$(now)
	RUN_ID=$(q -d bench_tgt -c "SET migrate.batch_size = $BATCH_SIZE" -c "SELECT migrate_run('$1')")
	ELAPSED=$(fsub "$(now)" "$t")
	line=$(q -d bench_tgt -F ' ' -c "SELECT r.state, t.undo, t.rows_written FROM migrate.run r JOIN migrate.run_table t USING (run_id) WHERE run_id = $RUN_ID")
	[[ $line == "succeeded $2 $3" ]] || die "$1: run $RUN_ID: [$line], expected [succeeded $2 $3]"
}

# (a) upsert into a populated table, undo 'log' against 'off'
A_LOG=(n/a); A_OFF=(n/a); A_UNDO_ROWS=n/a; UNDO_SIZE=n/a; A_LOG_M=n/a; A_OFF_M=n/a; A_RATIO=n/a
has a && A_LOG=() && A_OFF=()
for rep in $(has a && seq 1 "$REPS"); do
	for v in log off; do
		populate orders "$ROWS"
		run_load "up_$v" "$v" "$ROWS"
		if [[ $v == log ]]; then
			A_LOG+=("$ELAPSED")
			A_UNDO_ROWS=$(undo_count "$RUN_ID" orders)
			UNDO_SIZE=$(undo_size "$RUN_ID" orders)
			[[ $A_UNDO_ROWS == "$ROWS" ]] || die "upsert run $RUN_ID logged $A_UNDO_ROWS undo rows, expected $ROWS"
		else
			A_OFF+=("$ELAPSED")
		fi
		say "(a) rep $rep upsert undo $v: $ELAPSED s"
	done
done
if has a; then
	A_LOG_M=$(median "${A_LOG[@]}"); A_OFF_M=$(median "${A_OFF[@]}"); A_RATIO=$(fdiv "$A_LOG_M" "$A_OFF_M")
fi

# (b) insert into an empty table, undo 'empty' against 'off'
B_EMPTY=(n/a); B_OFF=(n/a); B_EMPTY_M=n/a; B_OFF_M=n/a; B_RATIO=n/a; B_RB=n/a
has b && B_EMPTY=() && B_OFF=()
for rep in $(has b && seq 1 "$REPS"); do
	for v in empty off; do
		empty orders
		if [[ $v == empty ]]; then
			run_load ins_empty empty "$ROWS"; B_EMPTY+=("$ELAPSED")
			[[ $(undo_count "$RUN_ID" orders) == 0 ]] || die "insert into an empty table logged undo rows"
		else
			run_load ins_off off "$ROWS"; B_OFF+=("$ELAPSED")
		fi
		say "(b) rep $rep insert undo $v: $ELAPSED s"
	done
done
if has b; then
	B_EMPTY_M=$(median "${B_EMPTY[@]}"); B_OFF_M=$(median "${B_OFF[@]}"); B_RATIO=$(fdiv "$B_EMPTY_M" "$B_OFF_M")
	# the rollback of an 'empty' table (the last empty run's): deletes every row
	empty orders
	run_load ins_empty empty "$ROWS"
	t=$(now); q -d bench_tgt -c "SELECT * FROM migrate_rollback($RUN_ID)" >/dev/null; B_RB=$(fsub "$(now)" "$t")
	[[ $(q -d bench_tgt -c "SELECT count(*) FROM orders") == 0 ]] || die "rollback of $RUN_ID left rows"
fi

# (c) rollback of 1 % and 10 % changed rows, on ROWS/10 and ROWS rows
declare -A C_RB C_RUN C_N
for size in "$SMALLT" "$ROWS"; do
	for pct in 1 10; do C_RB[$size.$pct]=n/a; C_RUN[$size.$pct]=n/a; C_N[$size.$pct]=n/a; done
	has c || continue
	tbl=orders; [[ $size == "$ROWS" ]] || tbl=orders_small
	for pct in 1 10; do
		plan="rb_${size}_${pct}"
		q -d bench_tgt -c "SELECT migrate_plan('$plan', source_schema => 'legacy')" \
			-c "SELECT migrate_table('$plan', 'orders', '$tbl', mode => 'upsert', filter => 'id <= $size AND id % $((100 / pct)) = 0')" >/dev/null
		n=$((size * pct / 100))
		times=(); runs=()
		for rep in $(seq 1 "$REPS"); do
			populate "$tbl" "$size"
			before=$(tbl_md5 "$tbl")
			run_load "$plan" log "$n"
			runt=$ELAPSED
			t=$(now); q -d bench_tgt -c "SELECT * FROM migrate_rollback($RUN_ID)" >/dev/null; el=$(fsub "$(now)" "$t")
			[[ $(tbl_md5 "$tbl") == "$before" ]] || die "rollback of run $RUN_ID ($plan) is not exact"
			times+=("$el"); runs+=("$runt")
			say "(c) rep $rep table $size rows, $pct % changed ($n rows): run $runt s, rollback $el s (exact)"
		done
		C_RB[$size.$pct]=$(median "${times[@]}"); C_RUN[$size.$pct]=$(median "${runs[@]}"); C_N[$size.$pct]=$n
	done
done
# rollback time per changed row, small against big table at 10 %
C_GROWTH=n/a; C_PCT=n/a; C_SAME_N=n/a
if has c; then
	C_GROWTH=$(fdiv "${C_RB[$ROWS.10]}" "${C_RB[$SMALLT.10]}")
	C_PCT=$(fdiv "${C_RB[$ROWS.10]}" "${C_RB[$ROWS.1]}")
	C_SAME_N=$(fdiv "${C_RB[$ROWS.1]}" "${C_RB[$SMALLT.10]}")
fi

{
	echo "# Undo log and rollback benchmark (issue 14)"
	echo
	echo "$(date -u +'%Y-%m-%d %H:%M UTC'), PostgreSQL $PGVER, $(nproc) CPUs, ROWS=$ROWS, REPS=$REPS (medians),"
	echo "batch_size $BATCH_SIZE, fsync=$FSYNC, source: postgres_fdw loopback (fetch_size $FETCH_SIZE),"
	echo "git $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?'). Script: test/bench/bench-undo.sh."
	echo
	echo "## (a) upsert of $ROWS rows into a populated table (every row overwritten)"
	echo
	echo "| undo | load s (median) | runs |"
	echo "|---|---:|---|"
	echo "| log | $A_LOG_M | ${A_LOG[*]} |"
	echo "| off | $A_OFF_M | ${A_OFF[*]} |"
	echo
	echo "Ratio log/off: **$A_RATIO** (target <= 1.15: $(meets "$A_RATIO" 1.15)); $A_UNDO_ROWS undo rows per run, the undo log $UNDO_SIZE after the last."
	echo
	echo "## (b) insert of $ROWS rows into an empty table"
	echo
	echo "| undo | load s (median) | runs |"
	echo "|---|---:|---|"
	echo "| empty | $B_EMPTY_M | ${B_EMPTY[*]} |"
	echo "| off | $B_OFF_M | ${B_OFF[*]} |"
	echo
	echo "Ratio empty/off: **$B_RATIO** (nothing is logged; target about 1: $(meets "$B_RATIO" 1.05)). Its rollback (DELETE of all $ROWS rows): $B_RB s."
	echo
	echo "## (c) migrate_rollback() of an upsert run, by table size and rows changed"
	echo
	echo "| table rows | changed | rows changed | run s | rollback s | rollback rows/s |"
	echo "|---:|---:|---:|---:|---:|---:|"
	for size in "$SMALLT" "$ROWS"; do
		for pct in 1 10; do
			k=$size.$pct
			r=n/a; [[ ${C_RB[$k]} == n/a ]] || r=$(ROWS=${C_N[$k]} rate "${C_RB[$k]}")
			echo "| $size | $pct % | ${C_N[$k]} | ${C_RUN[$k]} | ${C_RB[$k]} | $r |"
		done
	done
	echo
	echo "Same rows changed (${C_N[$ROWS.1]}), table 10x larger: rollback time ratio $C_SAME_N (about 1: grows with rows changed, not table size: $(meets "$C_SAME_N" 1.5));"
	echo "10x more rows changed on the same table: ratio $C_PCT; same 10 % on a 10x larger table: ratio $C_GROWTH."
	echo "Every rollback was checked exact (md5 of the table equal to before the run)."
} >"$OUT"
say "report: $OUT"
cat "$OUT" >&2
