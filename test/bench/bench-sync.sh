#!/usr/bin/env bash
#
# test/bench/bench-sync.sh - trickle-sync benchmark of migrate (issue 13)
#
# In one run, on a throwaway PostgreSQL 15 cluster (pg_virtualenv, wal_level
# logical), with a source table of ROWS rows per capture mode (the 10 columns
# of /work/shared/BASELINES.md, watermark column updated_at timestamptz with
# an index) reached through a postgres_fdw loopback server, measures:
#   (a) the full load: INSERT ... SELECT through the FDW and migrate_run(mode
#       => 'full') for reference, then per mode migrate_run(plan, mode =>
#       'incremental') (arms capture, then loads): the baseline of that table
#   (b) migrate_sync(plan) with nothing to apply
#   (c) ROWS/1000 rows changed at the source (updates, deletes, inserts;
#       watermark: updates and inserts only), then one migrate_sync: its time
#       as a fraction of the mode's full load; the target must then equal the
#       source (md5 of the ordered rows) or the mode FAILS
#   (e) ROWS/10 rows updated, one migrate_sync (memory against batch size)
#   (d) for LAG_MODES: pgbench doing RATE changes/s for DURATION s while
#       migrate_sync runs every SYNC_EVERY s; lag after each sync = now() -
#       max(updated_at) of the target (the writer stamps clock_timestamp()),
#       and migrate.sync_state.lag; then a final sync and the md5 check
# for each capture mode of MODES (watermark, trigger, slot, diff), medians of
# REPS, and the sync runs' migrate.run.peak_memory_kb.  Targets of issue 13
# are reported as met or missed, never asserted: only wrong data, a failed
# run or an SQL error fail the script.  Report: test/bench/results-sync-latest.md.
#
# Usage (as root; it installs the extension, so hold the lock mtest uses):
#   flock /tmp/migrate-install.lock bash test/bench/bench-sync.sh
#   ROWS=100000 REPS=1 DURATION=15 flock /tmp/migrate-install.lock bash test/bench/bench-sync.sh  # quick
# Environment: ROWS (1000000), REPS (3), MODES ("watermark trigger slot diff"),
# LAG_MODES ("trigger slot"), RATE (1000), DURATION (60), SYNC_EVERY (5),
# CLIENTS (4), BATCH_SIZE (50000), FETCH_SIZE (10000), WATERMARK_LAG
# ('2 seconds'), SYNC_TIMEOUT (600 s per statement), FSYNC (on), INSTALL (1),
# OUT, EXPLAIN_DIR (auto_explain of statements over 0.2 s, kept there).  See README.md.
#
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)

export ROWS=${ROWS:-1000000}
export REPS=${REPS:-3}
export MODES=${MODES:-watermark trigger slot diff}
export LAG_MODES=${LAG_MODES:-trigger slot}
export RATE=${RATE:-1000}
export DURATION=${DURATION:-60}
export SYNC_EVERY=${SYNC_EVERY:-5}
export CLIENTS=${CLIENTS:-4}
export BATCH_SIZE=${BATCH_SIZE:-50000}
export FETCH_SIZE=${FETCH_SIZE:-10000}
export WATERMARK_LAG=${WATERMARK_LAG:-2 seconds}
export SYNC_TIMEOUT=${SYNC_TIMEOUT:-600}
export FSYNC=${FSYNC:-on}
export INSTALL=${INSTALL:-1}
export OUT=${OUT:-$HERE/results-sync-latest.md}
PGBENCH=/usr/lib/postgresql/15/bin/pgbench

die() { echo "bench-sync.sh: ERROR: $*" >&2; exit 1; }
say() { echo "bench-sync.sh: $*" >&2; }

# ---------------------------------------------------------------------------
# outer part: check, install, re-exec inside a throwaway cluster
# ---------------------------------------------------------------------------
if [[ ${1:-} != --inner ]]; then
	[[ $(id -u) -eq 0 ]] || die "run as root: pg_virtualenv creates a cluster run by user postgres"
	[[ $ROWS =~ ^[0-9]+$ && $ROWS -ge 10000 ]] || die "ROWS must be an integer >= 10000 (got '$ROWS')"
	[[ $REPS =~ ^[0-9]+$ && $REPS -ge 1 ]] || die "REPS must be an integer >= 1 (got '$REPS')"
	for m in $MODES $LAG_MODES; do
		[[ $m =~ ^(watermark|trigger|slot|diff)$ ]] || die "unknown capture mode '$m' in MODES or LAG_MODES"
	done
	for v in RATE DURATION SYNC_EVERY CLIENTS BATCH_SIZE FETCH_SIZE SYNC_TIMEOUT; do
		[[ ${!v} =~ ^[0-9]+$ && ${!v} -ge 1 ]] || die "$v must be a positive integer (got '${!v}')"
	done
	[[ $FSYNC == on || $FSYNC == off ]] || die "FSYNC must be on or off"
	command -v pg_virtualenv >/dev/null || die "pg_virtualenv not found (package postgresql-common)"
	[[ -x $PGBENCH ]] || die "$PGBENCH not found (package postgresql-15)"

	EXTRA=()
	if [[ $INSTALL == 1 || $INSTALL == private ]]; then
		# clean first: PGXS does not track header dependencies, and objects
		# built against an older migrate.h would be linked in.  INSTALL=private:
		# into a directory of this run only (make install DESTDIR=), which the
		# cluster reads first (Debian's extension_destdir): no lock needed, the
		# shared installation is left alone.
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
	BENCH_T0=$(date +%s.%N)
	export BENCH_T0
	export BENCH_REPO=$REPO
	# wal_level=logical for capture => 'slot' (the loopback source is this
	# cluster); fsync=on after pg_virtualenv's own fsync=off (a later -o wins)
	# EXPLAIN_DIR=dir: auto_explain plans of statements over 0.2 s there (where a pass spends its time)
	if [[ -n ${EXPLAIN_DIR:-} ]]; then
		mkdir -p "$EXPLAIN_DIR" && chmod 777 "$EXPLAIN_DIR"
		EXTRA+=(-o shared_preload_libraries=auto_explain -o auto_explain.log_min_duration=200
			-o auto_explain.log_analyze=on -o auto_explain.log_nested_statements=on
			-o logging_collector=on -o log_directory="$EXPLAIN_DIR")
	fi
	pg_virtualenv -t -v 15 \
		-o shared_buffers=1GB -o max_wal_size=4GB -o synchronous_commit=on \
		-o fsync="$FSYNC" -o wal_level=logical -o max_replication_slots=10 \
		-o max_connections=100 "${EXTRA[@]}" \
		-- bash "$0" --inner
	exit $?
fi

# ---------------------------------------------------------------------------
# inner part: PGHOST/PGPORT/PGUSER/PGPASSWORD point at the throwaway cluster
# ---------------------------------------------------------------------------
[[ -n ${PGPORT:-} && -n ${PGPASSWORD:-} ]] || die "--inner is meant to run under pg_virtualenv"
set -E
trap 'echo "bench-sync.sh: ERROR: line $LINENO failed: $BASH_COMMAND" >&2' ERR
WORK=$(mktemp -d -t migrate-bench-sync.XXXXXX)
chmod 755 "$WORK"
# background processes (pgbench) of every phase, killed at exit by their pid
kill_bg() {
	local p
	if [[ -f $WORK/bg.pids ]]; then
		while read -r p; do kill "$p" 2>/dev/null || true; done <"$WORK/bg.pids"
		rm -f "$WORK/bg.pids"
	fi
}
cleanup() {
	kill_bg
	rm -rf "$WORK"
}
trap cleanup EXIT

# shared helpers: q, now, fsub, fdiv, rate, median, ORDERS_COLS, ORDERS_ROWS
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
maxof() { printf '%s\n' "$@" | sort -g | tail -1; }
pct() { awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) print "n/a"; else printf "%.1f %%", 100 * a / b }'; }
# $1 value, $2 limit: "met" when value < limit
meets() { awk -v a="$1" -v b="$2" 'BEGIN { print (a != "" && a < b) ? "met" : "**missed**" }'; }

PORT=$(q -c 'SHOW port')
SOCKDIR=$(q -c 'SHOW unix_socket_directories' | cut -d, -f1 | xargs)
PGVER=$(q -c 'SHOW server_version')
CHANGES=$((ROWS / 1000))		# (c): 0.1 %
BIG=$((ROWS / 10))			# (e): 10 %
SMALL_BATCH=$(((BATCH_SIZE + 4) / 5))	# (f): (e) again at a fifth of the batch
# which migrate library the cluster loads (INSTALL=private: the run's own)
LIBPATH=$(q -c "LOAD '\$libdir/migrate'" -c "SELECT string_agg(DISTINCT split_part(l, ' ', -1), ', ')
                FROM regexp_split_to_table(pg_read_file('/proc/self/maps'), E'\\n') l WHERE l LIKE '%/migrate.so'")
say "migrate library: $LIBPATH"
say "cluster: PostgreSQL $PGVER on port $PORT, wal_level $(q -c 'SHOW wal_level'), fsync=$FSYNC; ROWS=$ROWS REPS=$REPS MODES='$MODES'"

# ---------------------------------------------------------------------------
# source: one table per capture mode (same rows), index on the watermark
# ---------------------------------------------------------------------------
say "creating the source tables ($ROWS rows each): $(for m in $MODES; do printf 'orders_%s ' "$m"; done)"
t=$(now)
q -c 'CREATE DATABASE bench_src' -c 'CREATE DATABASE bench_tgt'
"${PSQL[@]}" -d bench_src -v rows="$ROWS" <<SQL
CREATE TABLE orders_seed ($ORDERS_COLS);
INSERT INTO orders_seed $ORDERS_ROWS;
SQL
TABLES=()
for m in $MODES; do
	TABLES+=("orders_$m")
	"${PSQL[@]}" -d bench_src <<SQL
CREATE TABLE orders_$m ($ORDERS_COLS);
INSERT INTO orders_$m SELECT * FROM orders_seed;
CREATE INDEX orders_${m}_updated_at ON orders_$m (updated_at);
VACUUM (FREEZE, ANALYZE) orders_$m;
SQL
done
q -d bench_src -c 'DROP TABLE orders_seed'
say "source ready in $(fsub "$(now)" "$t") s"

say "setting up bench_tgt (postgres_fdw, migrate, targets)"
"${PSQL[@]}" -d bench_tgt >/dev/null <<SQL
SET client_min_messages = warning;
CREATE EXTENSION postgres_fdw;
CREATE EXTENSION migrate;
CREATE SERVER srcsrv FOREIGN DATA WRAPPER postgres_fdw
    OPTIONS (host '$SOCKDIR', port '$PORT', dbname 'bench_src', fetch_size '$FETCH_SIZE');
CREATE USER MAPPING FOR CURRENT_USER SERVER srcsrv;
CREATE SCHEMA legacy;
IMPORT FOREIGN SCHEMA public FROM SERVER srcsrv INTO legacy;
CREATE TABLE orders_ref ($ORDERS_COLS);
SQL
for m in $MODES; do
	q -d bench_tgt -c "ANALYZE legacy.orders_$m" -c "CREATE TABLE orders_$m ($ORDERS_COLS)"
done
FIRST=${TABLES[0]}
"${PSQL[@]}" -d bench_tgt >/dev/null <<SQL
SELECT migrate_plan('ref_full', source_schema => 'legacy');
SELECT migrate_table('ref_full', '$FIRST', 'orders_ref');
SQL

prepare() { q -d bench_tgt -c "TRUNCATE $1" -c 'CHECKPOINT'; }

# count and md5 of the ordered rows; $1 database, $2 table
tbl_md5() {
	q -d "$1" -c "SELECT count(*) || ' ' || coalesce(md5(string_agg(md5(t::text), '' ORDER BY id)), '-') FROM $2 t"
}

# the target equals the source, or print what differs and return 1
same_rows() {	# $1 table, $2 what for
	local s t
	s=$(tbl_md5 bench_src "$1")
	t=$(tbl_md5 bench_tgt "$1")
	if [[ $s == "$t" ]]; then
		return 0
	fi
	say "$2: target $1 differs from the source: source [$s], target [$t]"
	q -d bench_tgt -F ' ' -c "SELECT kind, count(*), (array_agg(id ORDER BY id))[1:8]
	    FROM (SELECT coalesce(s.id, t.id) AS id,
	                 CASE WHEN t.id IS NULL THEN 'missing' WHEN s.id IS NULL THEN 'extra' ELSE 'differs' END AS kind
	            FROM legacy.$1 s FULL JOIN $1 t ON s.id = t.id
	           WHERE s.id IS NULL OR t.id IS NULL OR row(s.*)::text <> row(t.*)::text) d
	   GROUP BY kind" >&2 || true
	return 1
}

# one migrate_run; $1 plan, $2 mode, $3 table.  Sets ELAPSED, RUN_ID, PEAK_KB, ENGINE_S
run_load() {
	local t line state rread rwritten rrejected
	prepare "$3"
	t=$(now)
	if [[ $2 == full ]]; then
		RUN_ID=$(q -d bench_tgt -c "SET migrate.batch_size = $BATCH_SIZE" -c "SET statement_timeout = '${SYNC_TIMEOUT}s'" \
			-c "SELECT migrate_run('$1', mode => '$2')")
	else
		# wait => false, then poll: on a loopback source the worker creates the
		# slot, which waits for every transaction with an xid to end, the
		# caller's waiting one included (src/slot.c, TAP 013)
		RUN_ID=$(q -d bench_tgt -c "SET migrate.batch_size = $BATCH_SIZE" -c "SELECT migrate_run('$1', mode => '$2', wait => false)")
		until [[ $(q -d bench_tgt -c "SELECT state FROM migrate.run WHERE run_id = $RUN_ID") != running ]]; do
			[[ $(fsub "$(now)" "$t" | cut -d. -f1) -lt $SYNC_TIMEOUT ]] || die "$1 ($2): run $RUN_ID still running after $SYNC_TIMEOUT s"
			sleep 0.05
		done
	fi
	ELAPSED=$(fsub "$(now)" "$t")
	line=$(q -d bench_tgt -F ' ' -c "SELECT r.state, t.rows_read, t.rows_written, t.rows_rejected, coalesce(r.peak_memory_kb, 0),
	            round(extract(epoch FROM t.finished_at - t.started_at)::numeric, 3)
	       FROM migrate.run r JOIN migrate.run_table t USING (run_id) WHERE run_id = $RUN_ID")
	read -r state rread rwritten rrejected PEAK_KB ENGINE_S <<<"$line"
	[[ $state == succeeded && $rwritten == "$ROWS" && $rrejected == 0 ]] ||
		die "$1 ($2): run $RUN_ID is $state, read $rread, written $rwritten, rejected $rrejected; expected $ROWS rows"
	[[ $(q -d bench_tgt -c "SELECT count(*) FROM $3") == "$ROWS" ]] || die "$1 ($2): target $3 has the wrong row count"
}

# one migrate_sync pass; $1 plan.  Sets ELAPSED, RUN_ID, PEAK_KB, ENGINE_S
sync_once() {
	local t ret line state
	t=$(now)
	ret=$(q -d bench_tgt -c "SET migrate.batch_size = $BATCH_SIZE" -c "SET statement_timeout = '${SYNC_TIMEOUT}s'" \
		-c "SELECT migrate_sync('$1')")
	ELAPSED=$(fsub "$(now)" "$t")
	# migrate_sync returns the sync run's id; fall back to the plan's latest sync run
	RUN_ID=$(q -d bench_tgt -c "SELECT coalesce((SELECT run_id FROM migrate.run WHERE run_id = ${ret:-0}::bigint AND mode = 'sync'),
	                                             (SELECT max(run_id) FROM migrate.run WHERE plan = '$1' AND mode = 'sync'))")
	[[ -n $RUN_ID ]] || die "migrate_sync('$1') returned '$ret' and the plan has no sync run"
	line=$(q -d bench_tgt -F ' ' -c "SELECT state, coalesce(peak_memory_kb, 0),
	            round(extract(epoch FROM finished_at - started_at)::numeric, 3) FROM migrate.run WHERE run_id = $RUN_ID")
	read -r state PEAK_KB ENGINE_S <<<"$line"
	[[ $state == succeeded ]] || die "migrate_sync('$1'): run $RUN_ID is $state: $(q -d bench_tgt -c "SELECT error FROM migrate.run WHERE run_id = $RUN_ID")"
}

# applied counters of a table's sync_state: "inserted updated deleted rejected"
applied() {	# $1 plan
	q -d bench_tgt -F ' ' -c "SELECT applied_inserted, applied_updated, applied_deleted, applied_rejected
	                            FROM migrate.sync_state WHERE plan = '$1'"
}
applied_delta() {	# $1 before, $2 after: "+i ins, +u upd, +d del, +r rej"
	local a b
	read -ra a <<<"$1"
	read -ra b <<<"$2"
	printf '%s ins, %s upd, %s del, %s rej' $((b[0] - a[0])) $((b[1] - a[1])) $((b[2] - a[2])) $((b[3] - a[3]))
}

# (c)/(e): change rows spread evenly over the table in one transaction.
# $1 mode, $2 how many, $3 offset (0 .. step-1), $4 updates only (1) or not.
# Keys k*step+offset: k % 10 = 8 deleted (not for watermark or $4), k % 10 = 9
# replaced by an insert of a new key (not for $4), the others updated.
change_rows() {
	local m=$1 n=$2 off=$3 only=$4 step del ins
	step=$((ROWS / n))
	del="k % 10 = 8"
	ins="k % 10 = 9"
	[[ $m == watermark ]] && del=false
	[[ $only == 1 ]] && { del=false; ins=false; }
	"${PSQL[@]}" -d bench_src >/dev/null <<SQL
BEGIN;
CREATE TEMP TABLE ch ON COMMIT DROP AS
    SELECT k, k * $step + $off + 1 AS id FROM generate_series(0, $n - 1) k;
UPDATE orders_$m o SET amount = o.amount + 1, status = 'changed', updated_at = clock_timestamp()
  FROM ch WHERE o.id = ch.id AND NOT ($del) AND NOT ($ins);
DELETE FROM orders_$m o USING ch WHERE o.id = ch.id AND ($del);
INSERT INTO orders_$m (id, customer_id, email, status, amount, created_at, updated_at, paid, note, ship_date)
SELECT 1000000000 + $off * $ROWS + k, 1, 'new' || k || '@example.com', 'new', 1.00,
       localtimestamp, clock_timestamp(), false, 'inserted by the bench', NULL
  FROM ch WHERE $ins;
COMMIT;
SQL
}

# ---------------------------------------------------------------------------
# (a) reference: INSERT ... SELECT and migrate_run(mode => 'full'), taking turns
# ---------------------------------------------------------------------------
T_INSERT=() T_FULL=() FULL_PEAKS=()
for ((rep = 1; rep <= REPS; rep++)); do
	prepare orders_ref
	t=$(now)
	q -d bench_tgt -c "INSERT INTO orders_ref SELECT * FROM legacy.$FIRST"
	e=$(fsub "$(now)" "$t")
	[[ $(q -d bench_tgt -c 'SELECT count(*) FROM orders_ref') == "$ROWS" ]] || die "INSERT ... SELECT: wrong row count"
	T_INSERT+=("$e")
	say "rep $rep/$REPS  INSERT ... SELECT          $e s ($(rate "$e") rows/s)"
	run_load ref_full full orders_ref
	T_FULL+=("$ELAPSED")
	FULL_PEAKS+=("$PEAK_KB")
	say "rep $rep/$REPS  migrate_run mode full      $ELAPSED s ($(rate "$ELAPSED") rows/s; engine $ENGINE_S s, peak_memory_kb $PEAK_KB)"
done
q -d bench_tgt -c 'TRUNCATE orders_ref'
printf '%s\n' "${T_INSERT[@]}" >"$WORK/ref.insert"
printf '%s\n' "${T_FULL[@]}" >"$WORK/ref.full"
printf '%s\n' "${FULL_PEAKS[@]}" >"$WORK/ref.peaks"

# ---------------------------------------------------------------------------
# one capture mode: (a) incremental loads, (b) empty passes, (c) 0.1 % passes,
# (e) a 10 % pass, (d) lag under load.  Runs in a subshell with errexit;
# writes its figures to $WORK/<mode>.res (name=value lines).
# ---------------------------------------------------------------------------
put() { printf 'R_%s=%q\n' "$1" "$2" >>"$RES"; }

phase() {
	local m=$1 plan="sync_$1" tbl="orders_$1" wm="" lagopt="" rep before after
	local T_INC=() INC_PEAKS=() T_NOOP=() E_NOOP=() T_CH=() E_CH=() CH_PEAKS=() DELTAS=()
	RES=$WORK/$m.res
	: >"$RES"
	[[ $m == watermark ]] && { wm=", watermark => 'updated_at'"; lagopt=", lag => interval '$WATERMARK_LAG'"; }
	"${PSQL[@]}" -d bench_tgt >/dev/null <<SQL
SELECT migrate_plan('$plan', source_schema => 'legacy');
SELECT migrate_table('$plan', '$tbl', '$tbl', capture => '$m'$wm$lagopt);
SQL
	if [[ $m == trigger ]]; then
		# the source's DBA part: change table, triggers, grants
		q -d bench_tgt -c "SELECT migrate_capture_sql('$plan')" >"$WORK/capture.sql"
		[[ -s $WORK/capture.sql ]] || die "migrate_capture_sql('$plan') returned nothing"
		"${PSQL[@]}" -d bench_src -f "$WORK/capture.sql" >/dev/null
		say "[$m] capture DDL ($(wc -l <"$WORK/capture.sql") lines) run on bench_src"
	fi

	# (a) the full load that arms capture: this table's baseline
	for ((rep = 1; rep <= REPS; rep++)); do
		run_load "$plan" incremental "$tbl"
		T_INC+=("$ELAPSED")
		INC_PEAKS+=("$PEAK_KB")
		say "[$m] rep $rep/$REPS  migrate_run incremental  $ELAPSED s ($(rate "$ELAPSED") rows/s; engine $ENGINE_S s, peak_memory_kb $PEAK_KB)"
	done
	put T_INC "${T_INC[*]}"
	put INC_PEAKS "${INC_PEAKS[*]}"
	same_rows "$tbl" "[$m] after the incremental load" || die "[$m] the load does not equal the source"

	# (b) passes with nothing to apply
	for ((rep = 1; rep <= REPS; rep++)); do
		before=$(applied "$plan")
		sync_once "$plan"
		T_NOOP+=("$ELAPSED")
		E_NOOP+=("$ENGINE_S")
		after=$(applied "$plan")
		say "[$m] rep $rep/$REPS  empty sync pass          $ELAPSED s (engine $ENGINE_S s; applied $(applied_delta "$before" "$after"))"
	done
	put T_NOOP "${T_NOOP[*]}"
	put E_NOOP "${E_NOOP[*]}"

	# (c) 0.1 % of the rows changed, then one pass; the target must equal the source
	for ((rep = 1; rep <= REPS; rep++)); do
		change_rows "$m" "$CHANGES" "$rep" 0
		q -d bench_tgt -c 'CHECKPOINT'
		before=$(applied "$plan")
		sync_once "$plan"
		after=$(applied "$plan")
		T_CH+=("$ELAPSED")
		E_CH+=("$ENGINE_S")
		CH_PEAKS+=("$PEAK_KB")
		DELTAS+=("$(applied_delta "$before" "$after")")
		say "[$m] rep $rep/$REPS  0.1 % sync pass          $ELAPSED s (engine $ENGINE_S s; applied ${DELTAS[-1]}; peak_memory_kb $PEAK_KB)"
		same_rows "$tbl" "[$m] rep $rep after the 0.1 % pass" ||
			die "[$m] after a sync of $CHANGES changes the target does not equal the source"
	done
	put T_CH "${T_CH[*]}"
	put E_CH "${E_CH[*]}"
	put CH_PEAKS "${CH_PEAKS[*]}"
	put CH_DELTA "${DELTAS[-1]}"

	# (e) 10 % of the rows updated, one pass: memory bounded by the batch
	change_rows "$m" "$BIG" 7 1
	before=$(applied "$plan")
	sync_once "$plan"
	after=$(applied "$plan")
	put T_BIG "$ELAPSED"
	put BIG_PEAK "$PEAK_KB"
	put BIG_DELTA "$(applied_delta "$before" "$after")"
	say "[$m] 10 % sync pass ($BIG rows)       $ELAPSED s (engine $ENGINE_S s; applied $(applied_delta "$before" "$after"); peak_memory_kb $PEAK_KB)"
	same_rows "$tbl" "[$m] after the 10 % pass" || die "[$m] after a sync of $BIG updates the target does not equal the source"

	# (f) the same at a fifth of the batch size: memory follows the batch, not the changes
	# (not for diff: its diff of 10 % alone takes about 10 full loads)
	if [[ $m != diff ]]; then
		change_rows "$m" "$BIG" 8 1
		BATCH_SIZE=$SMALL_BATCH sync_once "$plan"
		put T_BIG_SMALL "$ELAPSED"
		put BIG_SMALL_PEAK "$PEAK_KB"
		say "[$m] 10 % sync pass, batch_size $SMALL_BATCH  $ELAPSED s (engine $ENGINE_S s; peak_memory_kb $PEAK_KB)"
		same_rows "$tbl" "[$m] after the 10 % pass at batch_size $SMALL_BATCH" ||
			die "[$m] after a sync of $BIG updates (batch_size $SMALL_BATCH) the target does not equal the source"
	fi

	[[ " $LAG_MODES " == *" $m "* ]] || return 0

	# (d) lag under load: pgbench writes RATE changes/s, a sync every SYNC_EVERY s
	q -d bench_src -c "CREATE SEQUENCE IF NOT EXISTS bench_ins_seq START 2000000000"
	q -d bench_tgt -c "CREATE INDEX ON $tbl (updated_at)"	# for max(updated_at) after each pass
	# watermark: no deletes (a watermark does not see them), 90 % updates
	local upd=80
	[[ $m == watermark ]] && upd=90
	cat >"$WORK/writer.sql" <<SQL
\\set r random(1, 100)
\\set id random(1, $ROWS)
\\if :r <= $upd
UPDATE $tbl SET amount = amount + 0.01, updated_at = clock_timestamp() WHERE id = :id;
\\elif :r <= 90
DELETE FROM $tbl WHERE id = :id;
\\else
INSERT INTO $tbl (id, customer_id, email, status, amount, created_at, updated_at, paid, note, ship_date)
VALUES (nextval('bench_ins_seq'), :id, 'w' || :id || '@example.com', 'new', 2.00, localtimestamp, clock_timestamp(), true, 'pgbench', NULL);
\\endif
SQL
	local pgpid t0 t1 lag_after slag stale nsync=0 LAGS=() SLAGS=() STALES=() T_LOOP=() PEAKS_LOOP=()
	"$PGBENCH" -n -f "$WORK/writer.sql" -R "$RATE" -T "$DURATION" -c "$CLIENTS" -j 2 bench_src \
		>"$WORK/pgbench.out" 2>"$WORK/pgbench.err" &
	pgpid=$!
	echo "$pgpid" >>"$WORK/bg.pids"
	say "[$m] lag: pgbench (pid $pgpid) at $RATE changes/s for $DURATION s, migrate_sync every $SYNC_EVERY s"
	sleep "$SYNC_EVERY"
	while kill -0 "$pgpid" 2>/dev/null; do
		t0=$(now)
		# staleness just before the pass: age of the newest change the target has
		stale=$(q -d bench_tgt -c "SELECT round(extract(epoch FROM now() - max(updated_at))::numeric, 3) FROM $tbl")
		sync_once "$plan"
		nsync=$((nsync + 1))
		T_LOOP+=("$ELAPSED")
		PEAKS_LOOP+=("$PEAK_KB")
		lag_after=$(q -d bench_tgt -c "SELECT round(extract(epoch FROM now() - max(updated_at))::numeric, 3) FROM $tbl")
		slag=$(q -d bench_tgt -c "SELECT coalesce(round(extract(epoch FROM lag)::numeric, 3)::text, '') FROM migrate.sync_state WHERE plan = '$plan'")
		# only passes that ended while the writer still ran measure lag under load
		if kill -0 "$pgpid" 2>/dev/null; then
			LAGS+=("$lag_after")
			[[ -n $slag ]] && SLAGS+=("$slag")
			((nsync > 1)) && STALES+=("$stale")
		fi
		say "[$m] lag: pass $nsync  $ELAPSED s; newest change applied $lag_after s old; sync_state.lag ${slag:-null}; before the pass $stale s"
		t1=$(now)
		sleep "$(awk -v a="$SYNC_EVERY" -v d="$(fsub "$t1" "$t0")" 'BEGIN { s = a - d; printf "%.3f", (s > 0 ? s : 0) }')"
	done
	wait "$pgpid" || die "[$m] pgbench failed: $(tail -5 "$WORK/pgbench.err")"
	put PGB_TPS "$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$WORK/pgbench.out" | head -1)"
	put PGB_TX "$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$WORK/pgbench.out")"
	put PGB_LAT "$(sed -n 's/^latency average = \(.*\)$/\1/p' "$WORK/pgbench.out")"
	put LAGS "${LAGS[*]}"
	put SLAGS "${SLAGS[*]}"
	put STALES "${STALES[*]}"
	put T_LOOP "${T_LOOP[*]}"
	put PEAKS_LOOP "${PEAKS_LOOP[*]}"
	# the writer has stopped: one more pass, then the target equals the source
	sync_once "$plan"
	put T_FINAL "$ELAPSED"
	same_rows "$tbl" "[$m] after the writer and a final pass" ||
		die "[$m] after pgbench and a final sync the target does not equal the source"
	say "[$m] lag: final pass $ELAPSED s, the target equals the source"
	put LAG_OK 1
}

FAILED=0
for m in $MODES; do
	say "=== capture => '$m' ==="
	set +e
	(
		set -e
		trap 'echo "bench-sync.sh: ERROR: [$m] line $LINENO failed: $BASH_COMMAND" >&2' ERR
		trap kill_bg EXIT	# a failed phase leaves no pgbench behind
		phase "$m"
		put OK 1
	)
	rc=$?
	set -e
	# a slot left behind by a failed phase keeps WAL: drop the plan's slots
	q -d bench_src -c "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots
	                    WHERE database = 'bench_src' AND NOT active" >/dev/null 2>&1 || true
	if [[ $rc -ne 0 ]]; then
		say "[$m] FAILED (exit $rc); going on with the other modes"
		FAILED=1
	fi
done

# ---------------------------------------------------------------------------
# report
# ---------------------------------------------------------------------------
mapfile -t T_INSERT <"$WORK/ref.insert"
mapfile -t T_FULL <"$WORK/ref.full"
mapfile -t FULL_PEAKS <"$WORK/ref.peaks"
M_INSERT=$(median "${T_INSERT[@]}")
M_FULL=$(median "${T_FULL[@]}")
TOTAL_S=$(fsub "$(now)" "${BENCH_T0:-$(now)}")
GIT_REV=$(git -C "$BENCH_REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [[ -n $(git -C "$BENCH_REPO" status --porcelain -- src sql Makefile 2>/dev/null) ]]; then
	GIT_REV="$GIT_REV + uncommitted changes in src/sql"
fi

# load a mode's figures into variables prefixed R_ (empty when not measured)
load_res() {
	local v
	for v in OK T_INC INC_PEAKS T_NOOP E_NOOP T_CH E_CH CH_PEAKS CH_DELTA T_BIG BIG_PEAK BIG_DELTA T_BIG_SMALL BIG_SMALL_PEAK \
		PGB_TPS PGB_TX PGB_LAT LAGS SLAGS STALES T_LOOP PEAKS_LOOP T_FINAL LAG_OK; do
		unset "R_$v"
	done
	# shellcheck disable=SC1090
	[[ -f $WORK/$1.res ]] && . "$WORK/$1.res"
	return 0
}
arr_median() { [[ -n ${1:-} ]] && median $1 || echo ""; }	# unquoted: a list in one word
arr_max() { [[ -n ${1:-} ]] && maxof $1 || echo ""; }
mm() { [[ -n ${1:-} ]] && echo "$(median $1) / $(maxof $1)" || echo "n/a"; }	# "median / max"

{
	echo "# Trickle-sync benchmark (issue 13) - $(date -u '+%Y-%m-%d %H:%M UTC')"
	echo
	echo "ROWS=$ROWS per source table, REPS=$REPS (medians), migrate.batch_size=$BATCH_SIZE, postgres_fdw"
	echo "fetch_size=$FETCH_SIZE; PostgreSQL $PGVER, wal_level=logical, shared_buffers=1GB,"
	echo "synchronous_commit=on, fsync=$FSYNC; $(nproc) CPUs; migrate at $GIT_REV ($LIBPATH)."
	echo "Source (bench_src) and target (bench_tgt) are two databases of one cluster (postgres_fdw"
	echo "loopback): the slot decodes the target's WAL too, and both sides share the CPUs."
	echo "Times are wall-clock seconds around the client command; loads after TRUNCATE and CHECKPOINT."
	echo
	echo "## (a) Full load"
	echo
	echo "| method | median s | rows/s | vs INSERT ... SELECT (time) | runs (s) | peak_memory_kb (max) |"
	echo "|---|---:|---:|---:|---|---:|"
	echo "| INSERT ... SELECT through postgres_fdw | $M_INSERT | $(rate "$M_INSERT") | 1.00 | ${T_INSERT[*]} | |"
	echo "| migrate_run(mode => 'full') | $M_FULL | $(rate "$M_FULL") | $(fdiv "$M_FULL" "$M_INSERT") | ${T_FULL[*]} | $(maxof "${FULL_PEAKS[@]}") |"
	for m in $MODES; do
		load_res "$m"
		if [[ -n ${R_T_INC:-} ]]; then
			mi=$(arr_median "$R_T_INC")
			echo "| migrate_run(mode => 'incremental'), capture $m | $mi | $(rate "$mi") | $(fdiv "$mi" "$M_INSERT") | $R_T_INC | $(arr_max "$R_INC_PEAKS") |"
		else
			echo "| migrate_run(mode => 'incremental'), capture $m | not measured (failed) | | | | |"
		fi
	done
	echo
	echo "## (b), (c), (e) Sync passes"
	echo
	echo "(b) a pass with nothing to apply (target: under 1 s for watermark, trigger, slot);"
	echo "(c) $CHANGES rows (0.1 %) changed in one transaction, then one pass: 80 % updates, 10 % deletes,"
	echo "10 % inserts (watermark: 90 % updates, no deletes); time as a share of the same mode's incremental"
	echo "full load (targets: trigger, slot under 10 %, diff under 30 %); after each pass the target"
	echo "equals the source (md5 of the ordered rows, checked, the script fails otherwise);"
	echo "(e) $BIG rows (10 %) updated, then one pass."
	echo
	echo "| capture | (b) empty pass median s (engine s) | (b) target | (c) 0.1 % pass median s (engine s) | (c) / full load | (c) target | (c) applied (last pass) | (e) 10 % pass s | runs (b) / (c) |"
	echo "|---|---:|---|---:|---:|---|---|---:|---|"
	for m in $MODES; do
		load_res "$m"
		if [[ -z ${R_T_NOOP:-} ]]; then
			echo "| $m | not measured | | | | | | | |"
			continue
		fi
		mi=$(arr_median "${R_T_INC:-}")
		mn=$(arr_median "$R_T_NOOP")
		mc=$(arr_median "${R_T_CH:-}")
		case $m in
		watermark) tn=$(meets "$mn" 1) tc="(none)" ;;
		trigger | slot) tn=$(meets "$mn" 1) tc=$(meets "$(fdiv "$mc" "$mi")" 0.10) ;;
		diff) tn="(none)" tc=$(meets "$(fdiv "$mc" "$mi")" 0.30) ;;
		esac
		[[ -z $mc ]] && tc="not measured"
		echo "| $m | $mn ($(arr_median "$R_E_NOOP")) | $tn | ${mc:-n/a} (${R_E_CH:+$(arr_median "$R_E_CH")}) | ${mc:+$(pct "$mc" "$mi")} | $tc | ${R_CH_DELTA:-} | ${R_T_BIG:-n/a} | $R_T_NOOP / ${R_T_CH:-} |"
	done
	if [[ -n ${LAG_MODES// /} ]]; then
		echo
		echo "## (d) Lag under load"
		echo
		echo "pgbench: $CLIENTS clients, -R $RATE -T $DURATION, each transaction one change (80 % update of a"
		echo "random row, 10 % delete, 10 % insert), stamped updated_at = clock_timestamp(); migrate_sync every"
		echo "$SYNC_EVERY s. **lag after a pass** = now() - max(updated_at) of the target right after the pass"
		echo "(passes that ended while the writer ran); **before a pass** = the same just before the next pass"
		echo "starts (the staleness a reader of the target sees at worst); sync_state.lag as the engine reports it."
		echo "Target: under 10 s for trigger and slot."
		echo
		echo "| capture | passes | pass s median / max | lag after a pass median / max s | before a pass median / max s | sync_state.lag median / max s | target | pgbench tps | final pass s, equal |"
		echo "|---|---:|---|---|---|---|---|---:|---|"
		for m in $LAG_MODES; do
			[[ " $MODES " == *" $m "* ]] || continue
			load_res "$m"
			if [[ -z ${R_LAGS:-} ]]; then
				echo "| $m | not measured | | | | | | | |"
				continue
			fi
			n=$(wc -w <<<"$R_T_LOOP")
			echo "| $m | $n | $(mm "$R_T_LOOP") | $(mm "$R_LAGS") | $(mm "${R_STALES:-}") | $(mm "${R_SLAGS:-}") | $(meets "$(arr_max "$R_LAGS")" 10) | ${R_PGB_TPS%.*} | ${R_T_FINAL:-} ${R_LAG_OK:+yes} |"
		done
	fi
	echo
	echo "## Memory of the sync worker (migrate.run.peak_memory_kb, max)"
	echo
	echo "| capture | full load (incremental, $ROWS rows) | (c) passes ($CHANGES changes) | (e) pass ($BIG updates) | (f) pass ($BIG updates, batch_size $SMALL_BATCH) | (d) passes under load |"
	echo "|---|---:|---:|---:|---:|---:|"
	for m in $MODES; do
		load_res "$m"
		echo "| $m | $(arr_max "${R_INC_PEAKS:-}") | $(arr_max "${R_CH_PEAKS:-}") | ${R_BIG_PEAK:-} | ${R_BIG_SMALL_PEAK:-n/a} (${R_T_BIG_SMALL:-} s) | $(arr_max "${R_PEAKS_LOOP:-}") |"
	done
	echo
	echo "All in kB, batch_size $BATCH_SIZE unless said. Memory bounded by the batch: the (e) pass ($BIG changed"
	echo "keys, $(((BIG + BATCH_SIZE - 1) / BATCH_SIZE)) batch(es)) should peak near the full load, not grow $((BIG / CHANGES))x over the (c) pass, and"
	echo "the (f) pass (the same number of changes in batches of $SMALL_BATCH) lower than (e)."
	echo
	for m in $MODES; do
		load_res "$m"
		[[ -n ${R_OK:-} ]] || echo "- capture $m: **FAILED** (see the script's output); figures above are partial."
	done
	echo "Total benchmark time (data generation included): $TOTAL_S s."
} >"$WORK/report.md"

cp "$WORK/report.md" "$OUT"
echo
cat "$WORK/report.md"
echo
say "report written to $OUT"
[[ $FAILED == 0 ]] || die "at least one capture mode failed (see above)"
