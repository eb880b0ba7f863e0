#!/usr/bin/env bash
#
# test/bench/bench-cutover.sh - blue-green cutover under a live writer (issue 14)
#
# On a throwaway PostgreSQL 15 cluster (pg_virtualenv), per repetition, in a
# fresh database: a live schema app with TABLES tables (t01 .. tNN: id
# bigserial PRIMARY KEY, k int, amount numeric(12,2), note text, n int) of
# ROWS rows each, a shadow schema app_next (v2: the same plus a mapped
# column amount_cents), plan "bg" (target_schema app_next, cutover_into app,
# capture => 'trigger' for every table), migrate_run(mode => 'incremental').
# Then pgbench (CLIENTS clients, -R RATE, -T DURATION, per-transaction log:
# -l --log-prefix) writes to the live tables: each transaction updates a
# random row of a random table and inserts a row into it.  PRE seconds in,
# migrate_cutover('bg') runs while it writes.  Measured, per repetition:
#   - the writer's latency (pgbench's per-transaction time: under -R it runs
#     from the transaction's scheduled start, so it includes any wait) of the
#     transactions that overlap the cutover window (from the call to its
#     return): p50, p99, max; and of the whole run for comparison;
#   - the swap's lock_held, lock_wait and attempts from migrate.cutover;
#   - the cutover's total time (wall clock around the call).
# Checked (the script fails otherwise): pgbench had no failed transaction,
# the cutover returned a run id, and nothing was lost or doubled: the new
# live tables hold TABLES x ROWS rows plus one per committed transaction.
# Targets (reported as met or missed, not asserted): writer max latency over
# the window < 1 s, lock_held < 200 ms.  Medians of REPS.
# Report: test/bench/results-cutover-latest.md.
#
# Usage (as root):
#   bash test/bench/bench-cutover.sh                       # INSTALL=private: no lock needed
#   INSTALL=1 flock /tmp/migrate-install.lock bash test/bench/bench-cutover.sh
#   ROWS=20000 REPS=1 bash test/bench/bench-cutover.sh     # quick
# Environment: TABLES (10), ROWS (100000), REPS (3), RATE (200), CLIENTS (4),
# DURATION (30), PRE (5), FSYNC (on), INSTALL (private | 1 | 0), OUT.
#
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)

export TABLES=${TABLES:-10}
export ROWS=${ROWS:-100000}
export REPS=${REPS:-3}
export RATE=${RATE:-200}
export CLIENTS=${CLIENTS:-4}
export DURATION=${DURATION:-30}
export PRE=${PRE:-5}
export FSYNC=${FSYNC:-on}
export INSTALL=${INSTALL:-private}
export OUT=${OUT:-$HERE/results-cutover-latest.md}
PGBENCH=/usr/lib/postgresql/15/bin/pgbench

die() { echo "bench-cutover.sh: ERROR: $*" >&2; exit 1; }
say() { echo "bench-cutover.sh: $*" >&2; }

# ---------------------------------------------------------------------------
# outer part: check, install, re-exec inside a throwaway cluster
# ---------------------------------------------------------------------------
if [[ ${1:-} != --inner ]]; then
	[[ $(id -u) -eq 0 ]] || die "run as root: pg_virtualenv creates a cluster run by user postgres"
	for v in TABLES ROWS REPS RATE CLIENTS DURATION PRE; do
		[[ ${!v} =~ ^[0-9]+$ && ${!v} -ge 1 ]] || die "$v must be a positive integer (got '${!v}')"
	done
	((TABLES <= 99)) || die "TABLES must be at most 99"
	((PRE + 5 < DURATION)) || die "DURATION must leave at least 5 s after PRE"
	[[ $FSYNC == on || $FSYNC == off ]] || die "FSYNC must be on or off"
	[[ $INSTALL =~ ^(0|1|private)$ ]] || die "INSTALL must be 0, 1 or private"
	command -v pg_virtualenv >/dev/null || die "pg_virtualenv not found (package postgresql-common)"
	[[ -x $PGBENCH ]] || die "$PGBENCH not found (package postgresql-15)"

	EXTRA=()
	if [[ $INSTALL == 1 || $INSTALL == private ]]; then
		# clean first (PGXS does not track header dependencies).  private:
		# into a directory of this run only (make install DESTDIR=), which the
		# cluster reads first (Debian's extension_destdir): no lock needed.
		dest=()
		if [[ $INSTALL == private ]]; then
			PRIVATE_DIR=$(mktemp -d -t migrate-bench-install.XXXXXX)
			chmod 755 "$PRIVATE_DIR"
			trap 'rm -rf "$PRIVATE_DIR"' EXIT
			dest=(DESTDIR="$PRIVATE_DIR")
			EXTRA=(-o extension_destdir="$PRIVATE_DIR"
				-o dynamic_library_path="$PRIVATE_DIR/usr/lib/postgresql/15/lib:/usr/lib/postgresql/15/lib")
		fi
		# a copy of the tree: make clean must not disturb a build in the worktree
		BUILD_DIR=$(mktemp -d -t migrate-bench-build.XXXXXX)
		trap 'rm -rf "${PRIVATE_DIR:-}" "$BUILD_DIR"' EXIT
		git -C "$REPO" ls-files -z | (cd "$REPO" && xargs -0 cp --parents -t "$BUILD_DIR")
		# uncommitted changes are measured too (and said in the report)
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
	BENCH_T0=$(date +%s.%N)
	export BENCH_T0 BENCH_REPO=$REPO
	pg_virtualenv -t -v 15 \
		-o shared_buffers=512MB -o max_wal_size=4GB -o synchronous_commit=on \
		-o fsync="$FSYNC" -o max_connections=100 "${EXTRA[@]}" \
		-- bash "$0" --inner
	exit $?
fi

# ---------------------------------------------------------------------------
# inner part: PGHOST/PGPORT/PGUSER/PGPASSWORD point at the throwaway cluster
# ---------------------------------------------------------------------------
[[ -n ${PGPORT:-} && -n ${PGPASSWORD:-} ]] || die "--inner is meant to run under pg_virtualenv"
set -E
trap 'echo "bench-cutover.sh: ERROR: line $LINENO failed: $BASH_COMMAND" >&2' ERR
WORK=$(mktemp -d -t migrate-bench-cutover.XXXXXX)
chmod 755 "$WORK"
PGB_PID=
cleanup() {
	[[ -z $PGB_PID ]] || kill "$PGB_PID" 2>/dev/null || true
	rm -rf "$WORK"
}
trap cleanup EXIT

# shared helpers: q, now, fsub, fdiv, median
. "$HERE/lib.sh"
maxof() { printf '%s\n' "$@" | sort -g | tail -1; }
# $1 value, $2 limit: "met" when value < limit
meets() { awk -v a="$1" -v b="$2" 'BEGIN { print (a != "" && a < b) ? "met" : "**missed**" }'; }

PGVER=$(q -c 'SHOW server_version')
LIBPATH=$(q -c "LOAD '\$libdir/migrate'" -c "SELECT string_agg(DISTINCT split_part(l, ' ', -1), ', ')
                FROM regexp_split_to_table(pg_read_file('/proc/self/maps'), E'\\n') l WHERE l LIKE '%/migrate.so'")
say "PostgreSQL $PGVER, migrate library $LIBPATH; TABLES=$TABLES ROWS=$ROWS REPS=$REPS RATE=$RATE CLIENTS=$CLIENTS"

TNAMES=()
for ((i = 1; i <= TABLES; i++)); do TNAMES+=("$(printf 't%02d' "$i")"); done

# the writer: one random table per transaction, an update and an insert
{
	echo "\\set t random(1, $TABLES)"
	echo "\\set id random(1, $ROWS)"
	echo 'BEGIN;'
	for ((i = 1; i <= TABLES; i++)); do
		if ((i == 1)); then echo "\\if :t = 1"; else echo "\\elif :t = $i"; fi
		echo "UPDATE app.${TNAMES[i - 1]} SET amount = amount + 1, n = n + 1 WHERE id = :id;"
		echo "INSERT INTO app.${TNAMES[i - 1]} (k, amount, note, n) VALUES (:id, 1.00, 'pgbench ' || :client_id, 0);"
	done
	echo '\endif'
	echo 'END;'
} >"$WORK/writer.sql"

# one repetition in database bench_$1; writes name=value lines to $WORK/rep$1.res
one_rep() {
	local rep=$1 db=bench_$1 t sql run t0 t1 cut_s line
	q -c "CREATE DATABASE $db"
	sql="SET client_min_messages = warning;
CREATE EXTENSION migrate;
CREATE SCHEMA app;
CREATE SCHEMA app_next;
SELECT migrate_plan('bg', target_schema => 'app_next', options => '{\"cutover_into\": \"app\"}');"
	for t in "${TNAMES[@]}"; do
		sql+="
CREATE TABLE app.$t (id bigserial PRIMARY KEY, k int NOT NULL, amount numeric(12,2) NOT NULL, note text, n int NOT NULL);
INSERT INTO app.$t (k, amount, note, n) SELECT g % 1000, g * 0.25, md5(g::text), 0 FROM generate_series(1, $ROWS) g;
CREATE TABLE app_next.$t (id bigserial PRIMARY KEY, k int NOT NULL, amount numeric(12,2) NOT NULL, note text, n int NOT NULL,
                          amount_cents bigint);
SELECT migrate_table('bg', 'app.$t', '$t', capture => 'trigger');
SELECT migrate_column('bg', '$t', 'amount_cents', '(s.amount * 100)::bigint');"
	done
	q -d "$db" -c "$sql" >/dev/null
	q -d "$db" -c 'VACUUM ANALYZE' -c 'CHECKPOINT'
	t0=$(now)
	q -d "$db" -c "SET client_min_messages = warning" -c "SELECT migrate_run('bg', mode => 'incremental')" >/dev/null
	say "rep $rep: incremental load of $TABLES x $ROWS rows in $(fsub "$(now)" "$t0") s"

	# the writer, then the cutover PRE seconds in
	rm -f "$WORK"/pgb_log*
	(cd "$WORK" && exec "$PGBENCH" -n -c "$CLIENTS" -j 2 -R "$RATE" -T "$DURATION" -l --log-prefix=pgb_log \
		-f "$WORK/writer.sql" "$db" >"$WORK/pgbench.out" 2>"$WORK/pgbench.err") &
	PGB_PID=$!
	sleep "$PRE"
	t0=$(now)
	# a refused or failed cutover is reported (with the writer's figures), not fatal
	local ok=1 cerr=''
	run=$(q -d "$db" -c "SET client_min_messages = warning" -c "SELECT migrate_cutover('bg')" 2>"$WORK/cutover.err") || ok=0
	t1=$(now)
	cut_s=$(fsub "$t1" "$t0")
	if [[ $ok == 1 && ! $run =~ ^[0-9]+$ ]]; then ok=0; fi
	if [[ $ok == 0 ]]; then
		cerr=$(grep -m1 'ERROR' "$WORK/cutover.err" | sed 's/^.*ERROR: *//; s/|/\\|/g' | cut -c1-300)
		say "rep $rep: migrate_cutover FAILED after $cut_s s: $cerr"
	fi
	wait "$PGB_PID" || die "rep $rep: pgbench failed: $(tail -5 "$WORK/pgbench.err")"
	PGB_PID=
	if awk -v t="$t1" -v p="$PRE" -v d="$DURATION" -v t0="$t0" 'BEGIN { exit !(t - t0 + p > d - 1) }'; then
		say "rep $rep: WARNING: the cutover ended less than 1 s before the writer stopped"
	fi

	local processed failed
	processed=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$WORK/pgbench.out")
	failed=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' "$WORK/pgbench.out")
	[[ ${failed:-0} == 0 ]] || die "rep $rep: $failed pgbench transactions failed"
	# nothing lost, nothing doubled: every committed transaction inserted one row
	local total expect
	total=$(q -d "$db" -c "SELECT $(printf "(SELECT count(*) FROM app.%s) + " "${TNAMES[@]}") 0")
	expect=$((TABLES * ROWS + processed))
	[[ $total == "$expect" ]] || die "rep $rep: the new live tables hold $total rows, expected $expect ($processed transactions)"
	local attempts='' held='' lwait=''
	if [[ $ok == 1 ]]; then
		[[ $(q -d "$db" -c "SELECT count(*) FROM pg_attribute WHERE attrelid = 'app.t01'::regclass AND attname = 'amount_cents'") == 1 ]] ||
			die "rep $rep: app is not the v2 schema after the cutover"
		line=$(q -d "$db" -F ' ' -c "SELECT attempts, round(extract(epoch FROM lock_held)::numeric * 1000, 1),
		                                      round(extract(epoch FROM coalesce(lock_wait, '0'))::numeric * 1000, 1)
		                                 FROM migrate.cutover WHERE run_id = $run")
		[[ -n $line ]] || die "rep $rep: no migrate.cutover row for run $run"
		read -r attempts held lwait <<<"$line"
	fi

	# latencies: pgbench log lines "client tx time_us script epoch_s epoch_us [lag_us]";
	# the end is epoch_s.epoch_us, the start end - time; in the window when they overlap
	cat "$WORK"/pgb_log* >"$WORK/lat.log"
	local nonnum
	nonnum=$(awk '$3 !~ /^[0-9]+$/' "$WORK/lat.log" | wc -l)
	[[ $nonnum == 0 ]] || die "rep $rep: $nonnum failed or skipped transactions in the pgbench log"
	awk -v a="$t0" -v b="$t1" '{ e = $5 + $6 / 1e6; s = e - $3 / 1e6; if (s <= b && e >= a) print $3 / 1000 }' \
		"$WORK/lat.log" | sort -g >"$WORK/win.ms"
	awk '{ print $3 / 1000 }' "$WORK/lat.log" | sort -g >"$WORK/all.ms"
	pctl() { awk -v q="$2" '{ a[NR] = $1 } END { if (NR == 0) { print ""; exit } i = int(q * NR + 0.999999); if (i < 1) i = 1; if (i > NR) i = NR; printf "%.1f", a[i] }' "$1"; }
	{
		echo "OK=$ok"
		printf 'ERR=%s\n' "$cerr"
		echo "CUT_S=$cut_s"
		echo "ATTEMPTS=$attempts"
		echo "HELD=$held"
		echo "LWAIT=$lwait"
		echo "WIN_N=$(wc -l <"$WORK/win.ms")"
		echo "WIN_P50=$(pctl "$WORK/win.ms" 0.50)"
		echo "WIN_P99=$(pctl "$WORK/win.ms" 0.99)"
		echo "WIN_MAX=$(tail -1 "$WORK/win.ms")"
		echo "ALL_N=$(wc -l <"$WORK/all.ms")"
		echo "ALL_P50=$(pctl "$WORK/all.ms" 0.50)"
		echo "ALL_P99=$(pctl "$WORK/all.ms" 0.99)"
		echo "ALL_MAX=$(tail -1 "$WORK/all.ms")"
		echo "TPS=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$WORK/pgbench.out" | head -1)"
		echo "PROCESSED=$processed"
	} >"$WORK/rep$rep.res"
	say "rep $rep: cutover $([[ $ok == 1 ]] && echo ok || echo FAILED) $cut_s s, attempts $attempts, lock_wait $lwait ms, lock_held $held ms;" \
		"writer in the window: $(sed -n 's/^WIN_N=//p' "$WORK/rep$rep.res") tx, p50 $(pctl "$WORK/win.ms" 0.50)" \
		"p99 $(pctl "$WORK/win.ms" 0.99) max $(tail -1 "$WORK/win.ms") ms; $processed tx, 0 failed, $total rows"
	q -c "DROP DATABASE $db" >/dev/null
}

for ((rep = 1; rep <= REPS; rep++)); do
	one_rep "$rep"
done

# ---------------------------------------------------------------------------
# report
# ---------------------------------------------------------------------------
col() {	# $1 variable: its values over the repetitions (empty ones left out)
	local r v out=()
	for ((r = 1; r <= REPS; r++)); do
		v=$(sed -n "s/^$1=//p" "$WORK/rep$r.res")
		[[ -z $v ]] || out+=("$v")
	done
	echo "${out[*]}"
}
med() { local v; v=$(col "$1"); [[ -n $v ]] && median $v || echo "n/a"; }
NOK=0
for ((r = 1; r <= REPS; r++)); do [[ $(sed -n 's/^OK=//p' "$WORK/rep$r.res") == 1 ]] && NOK=$((NOK + 1)); done
GIT_REV=$(git -C "$BENCH_REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [[ -n $(git -C "$BENCH_REPO" status --porcelain -- src sql Makefile 2>/dev/null) ]]; then
	GIT_REV="$GIT_REV + uncommitted changes in src/sql"
fi
TOTAL_S=$(fsub "$(now)" "${BENCH_T0:-$(now)}")
M_MAX=$(med WIN_MAX)
M_HELD=$(med HELD)
{
	echo "# Cutover benchmark (issue 14) - $(date -u '+%Y-%m-%d %H:%M UTC')"
	echo
	echo "$TABLES live tables of $ROWS rows (schema app, v1) -> shadow app_next (v2: one mapped column more),"
	echo "capture => 'trigger', migrate_run(mode => 'incremental') then, while pgbench writes, migrate_cutover('bg')"
	echo "(defaults: lock_timeout 500ms, max_attempts 10). pgbench: $CLIENTS clients, -R $RATE, -T $DURATION,"
	echo "each transaction an UPDATE of a random row and an INSERT into one random live table; the cutover"
	echo "starts $PRE s in. PostgreSQL $PGVER, synchronous_commit=on, fsync=$FSYNC; $(nproc) CPUs;"
	echo "migrate at $GIT_REV ($LIBPATH). REPS=$REPS, medians."
	echo
	echo "Writer latency = pgbench's per-transaction time (-l; under -R measured from the scheduled start,"
	echo "so it includes any wait for a lock), of the transactions overlapping the cutover window (from the"
	echo "call of migrate_cutover to its return). lock_held, lock_wait, attempts: migrate.cutover."
	echo "Checked each repetition: 0 failed transactions, and the new live tables hold $TABLES x $ROWS rows"
	echo "plus one per committed transaction (nothing lost, nothing doubled)."
	echo
	echo "**Cutovers that succeeded: $NOK of $REPS.** Lock figures are medians of the successful ones;"
	echo "latency figures cover every repetition (a refused cutover's window too)."
	for ((r = 1; r <= REPS; r++)); do
		if [[ $(sed -n 's/^OK=//p' "$WORK/rep$r.res") != 1 ]]; then
			echo "- repetition $r: migrate_cutover failed after $(sed -n 's/^CUT_S=//p' "$WORK/rep$r.res") s: \`$(sed -n 's/^ERR=//p' "$WORK/rep$r.res")\`"
		fi
	done
	echo
	echo "| figure | median | target | runs |"
	echo "|---|---:|---|---|"
	echo "| writer latency p50 over the cutover window (ms) | $(med WIN_P50) | | $(col WIN_P50) |"
	echo "| writer latency p99 over the cutover window (ms) | $(med WIN_P99) | | $(col WIN_P99) |"
	echo "| writer latency max over the cutover window (ms) | $M_MAX | < 1000: $( ((NOK > 0)) && meets "$M_MAX" 1000 || echo "not judged: no cutover succeeded") | $(col WIN_MAX) |"
	echo "| transactions in the window | $(med WIN_N) | | $(col WIN_N) |"
	echo "| swap lock_held (ms) | $M_HELD | < 200: $([[ $M_HELD == n/a ]] && echo "not measured" || meets "$M_HELD" 200) | $(col HELD) |"
	echo "| lock_wait, all attempts (ms) | $(med LWAIT) | | $(col LWAIT) |"
	echo "| attempts | $(med ATTEMPTS) | | $(col ATTEMPTS) |"
	echo "| migrate_cutover total (s) | $(med CUT_S) | | $(col CUT_S) |"
	echo "| writer latency p50 / p99 / max, whole run (ms) | $(med ALL_P50) / $(med ALL_P99) / $(med ALL_MAX) | | max: $(col ALL_MAX) |"
	echo "| pgbench tps / transactions | $(med TPS) / $(med PROCESSED) | | $(col PROCESSED) |"
	echo
	echo "Worst single repetition: max latency $(maxof $(col WIN_MAX)) ms, lock_held $(maxof $(col HELD)) ms."
	echo
	echo "Script: test/bench/bench-cutover.sh (TABLES=$TABLES ROWS=$ROWS REPS=$REPS RATE=$RATE CLIENTS=$CLIENTS DURATION=$DURATION PRE=$PRE)."
	echo "Total benchmark time: $TOTAL_S s."
} >"$WORK/report.md"
cp "$WORK/report.md" "$OUT"
cat "$WORK/report.md"
say "report written to $OUT"
