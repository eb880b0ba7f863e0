#!/usr/bin/env bash
#
# test/bench/bench-verify.sh - how long migrate_verify() takes, against
# reading the source and against the load itself
#
# On an EXISTING PostgreSQL 15 server (PGHOST/PGPORT/PGUSER of the
# environment; the extension must be installed there), creates databases
# bv_src and bv_tgt, a generated table `orders` (ROWS rows, the 10 columns of
# /work/shared/BASELINES.md) in bv_src, reaches it through a postgres_fdw
# loopback server with async_capable on, and times, REPS times each (median):
#   load      SELECT migrate_run('bench')        (two rules; target truncated, CHECKPOINT)
#   count     SELECT count(*) FROM legacy.orders (pushed down: the remote counts)
#   reread    SELECT count(o.*) FROM legacy.orders o (every row and column crosses the wire)
#   verify    SELECT * FROM migrate_verify('bench')
#   verify (no async)  the same with async_capable off (the source's statement runs on
#                      migrate's own connection: async_capable should not matter)
# then tampers with 3 target rows and times migrate_diff() (REPS times).  Checks
# that verify passes on the clean target and that diff finds exactly the 3
# keys.  Prints a Markdown report, also written to OUT.  Drops the two
# databases at the end (KEEP=1 keeps them).
#
# Usage:  PGHOST=... PGPORT=... PGUSER=postgres bash test/bench/bench-verify.sh
# Environment: ROWS (2000000), REPS (3), BATCH_SIZE (100000), FETCH_SIZE
# (10000), OUT (test/bench/results-verify-latest.md), KEEP (0).
# Unlike bench.sh it starts no cluster and installs nothing.
#
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROWS=${ROWS:-2000000}
REPS=${REPS:-3}
BATCH_SIZE=${BATCH_SIZE:-100000}
FETCH_SIZE=${FETCH_SIZE:-10000}
OUT=${OUT:-$HERE/results-verify-latest.md}
KEEP=${KEEP:-0}

die() { echo "bench-verify.sh: ERROR: $*" >&2; exit 1; }
say() { echo "bench-verify.sh: $*" >&2; }

[[ $ROWS =~ ^[0-9]+$ && $ROWS -ge 100 ]] || die "ROWS must be an integer >= 100 (got '$ROWS')"
[[ $REPS =~ ^[0-9]+$ && $REPS -ge 1 ]] || die "REPS must be an integer >= 1 (got '$REPS')"

# shared helpers: q, now, fsub, fdiv, rate, median, ORDERS_COLS, ORDERS_ROWS
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

q -d postgres -c 'SELECT 1' >/dev/null || die "cannot connect (PGHOST=${PGHOST:-} PGPORT=${PGPORT:-})"
[[ -n $(q -d postgres -c "SELECT 1 FROM pg_available_extensions WHERE name = 'migrate' AND default_version >= '0.2'") ]] ||
	die "extension migrate 0.2 is not installed on this server (make install with its PG_CONFIG)"
PORT=$(q -d postgres -c 'SHOW port')
SOCKDIR=$(q -d postgres -c 'SHOW unix_socket_directories' | cut -d, -f1 | xargs)
PGVER=$(q -d postgres -c 'SHOW server_version')

cleanup() {
	if [[ $KEEP != 1 ]]; then
		q -d postgres -c 'DROP DATABASE IF EXISTS bv_tgt' -c 'DROP DATABASE IF EXISTS bv_src' 2>/dev/null || true
	fi
}
trap cleanup EXIT


say "PostgreSQL $PGVER on port $PORT; ROWS=$ROWS REPS=$REPS; creating bv_src.orders"
q -d postgres -c 'DROP DATABASE IF EXISTS bv_tgt' -c 'DROP DATABASE IF EXISTS bv_src' \
	-c 'CREATE DATABASE bv_src' -c 'CREATE DATABASE bv_tgt'
"${PSQL[@]}" -d bv_src -v rows="$ROWS" <<SQL
CREATE TABLE orders ($ORDERS_COLS);
INSERT INTO orders $ORDERS_ROWS;
VACUUM (FREEZE, ANALYZE) orders;
SQL

"${PSQL[@]}" -d bv_tgt >/dev/null <<SQL
SET client_min_messages = warning;
CREATE EXTENSION postgres_fdw;
CREATE EXTENSION migrate;
CREATE SERVER srcsrv FOREIGN DATA WRAPPER postgres_fdw
    OPTIONS (host '$SOCKDIR', port '$PORT', dbname 'bv_src', fetch_size '$FETCH_SIZE', async_capable 'true');
CREATE USER MAPPING FOR CURRENT_USER SERVER srcsrv;
CREATE SCHEMA legacy;
IMPORT FOREIGN SCHEMA public LIMIT TO (orders) FROM SERVER srcsrv INTO legacy;
ANALYZE legacy.orders;
CREATE TABLE orders ($ORDERS_COLS);
SELECT migrate_plan('bench', source_schema => 'legacy');
SELECT migrate_table('bench', 'orders', 'orders');
SELECT migrate_rule('bench', 'orders', 'amount_ok', 'amount >= 0');
SELECT migrate_rule('bench', 'orders', 'email_ok', 'email LIKE ''%@%''');
SQL

timed() {	# $1: sql; prints seconds
	local t0 t1
	t0=$(now)
	q -d bv_tgt -c "SET migrate.batch_size = $BATCH_SIZE" -c "$1" >/dev/null 2>&1 || die "failed: $1"
	t1=$(now)
	fsub "$t1" "$t0"
}

declare -a T_LOAD T_COUNT T_REREAD T_VERIFY T_VERIFY_SYNC
for ((r = 1; r <= REPS; r++)); do
	q -d bv_tgt -c 'TRUNCATE orders' -c 'CHECKPOINT'
	T_LOAD+=("$(timed "SELECT migrate_run('bench')")")
	[[ $(q -d bv_tgt -c 'SELECT count(*) FROM orders') == "$ROWS" ]] || die "load: wrong target count"
	q -d bv_tgt -c 'VACUUM ANALYZE orders'
	T_COUNT+=("$(timed 'SELECT count(*) FROM legacy.orders')")
	T_REREAD+=("$(timed 'SELECT count(o.*) FROM legacy.orders o')")
	T_VERIFY+=("$(timed "SELECT * FROM migrate_verify('bench')")")
	[[ $(q -d bv_tgt -c 'SELECT verified FROM migrate.run ORDER BY run_id DESC LIMIT 1') == t ]] ||
		die "verify did not pass on a clean target"
	HOW=$(q -d bv_tgt -c "SELECT details FROM migrate.verification WHERE check_name = 'checksum' ORDER BY verification_id DESC LIMIT 1")
	q -d bv_tgt -c "ALTER SERVER srcsrv OPTIONS (SET async_capable 'false')"
	T_VERIFY_SYNC+=("$(timed "SELECT * FROM migrate_verify('bench')")")
	q -d bv_tgt -c "ALTER SERVER srcsrv OPTIONS (SET async_capable 'true')"
	say "rep $r: load ${T_LOAD[-1]} s, count ${T_COUNT[-1]} s, reread ${T_REREAD[-1]} s, verify ${T_VERIFY[-1]} s (no async ${T_VERIFY_SYNC[-1]} s)"
done

# a few differences in millions of rows
q -d bv_tgt -c "DELETE FROM orders WHERE id = $((ROWS / 3))" \
	-c "UPDATE orders SET note = note || ' ' WHERE id = $((ROWS / 2))" \
	-c "UPDATE orders SET updated_at = NULL WHERE id = $((ROWS - 5)) AND updated_at IS NOT NULL"
declare -a T_DIFF
for ((r = 1; r <= REPS; r++)); do
	T_DIFF+=("$(timed "SELECT * FROM migrate_diff('bench', 'orders')")")
done
DIFF_KEYS=$(q -d bv_tgt -c "SELECT string_agg(key || ' ' || kind, ', ' ORDER BY result_id) FROM migrate.diff_result WHERE diff_id = (SELECT max(diff_id) FROM migrate.diff_result)")
DIFF_EVENT=$(q -d bv_tgt -c "SELECT details FROM migrate.event WHERE event = 'diff' ORDER BY event_id DESC LIMIT 1")

M_LOAD=$(median "${T_LOAD[@]}")
M_COUNT=$(median "${T_COUNT[@]}")
M_REREAD=$(median "${T_REREAD[@]}")
M_VERIFY=$(median "${T_VERIFY[@]}")
M_VERIFY_SYNC=$(median "${T_VERIFY_SYNC[@]}")
M_DIFF=$(median "${T_DIFF[@]}")

{
	echo "# migrate_verify() benchmark, $(date -u +%Y-%m-%d)"
	echo
	echo "PostgreSQL $PGVER, $(nproc) cores (shared, noisy), ROWS=$ROWS, median of $REPS;"
	echo "postgres_fdw loopback, fetch_size $FETCH_SIZE, async_capable on; table of 10 columns, 2 rules."
	echo
	echo "| what | seconds (median) | rows/s | verify is N x faster |"
	echo "|---|--:|--:|--:|"
	echo "| load: migrate_run() | $M_LOAD | $(rate "$M_LOAD") | $(fdiv "$M_LOAD" "$M_VERIFY") |"
	echo "| re-read every row through the FDW: count(o.*) | $M_REREAD | $(rate "$M_REREAD") | $(fdiv "$M_REREAD" "$M_VERIFY") |"
	echo "| count(*) through the FDW (pushed down) | $M_COUNT | $(rate "$M_COUNT") | $(fdiv "$M_COUNT" "$M_VERIFY") |"
	echo "| **migrate_verify()** | $M_VERIFY | $(rate "$M_VERIFY") | 1.00 |"
	echo "| migrate_verify(), async_capable off | $M_VERIFY_SYNC | $(rate "$M_VERIFY_SYNC") | $(fdiv "$M_VERIFY_SYNC" "$M_VERIFY") |"
	echo
	echo "| migrate_diff() after changing 3 rows | seconds (median) | re-read / diff | diff / verify |"
	echo "|---|--:|--:|--:|"
	echo "| **migrate_diff('bench', 'orders')** | $M_DIFF | $(fdiv "$M_REREAD" "$M_DIFF") | $(fdiv "$M_DIFF" "$M_VERIFY") |"
	echo
	echo "All timings: load ${T_LOAD[*]}; count ${T_COUNT[*]}; reread ${T_REREAD[*]}; verify ${T_VERIFY[*]}; verify without async ${T_VERIFY_SYNC[*]}; diff ${T_DIFF[*]}."
	echo
	echo "Checksum: $HOW."
	echo
	echo "Diff found: $DIFF_KEYS ($DIFF_EVENT)."
} | tee "$OUT"

[[ $(q -d bv_tgt -c "SELECT count(*) FROM migrate.diff_result WHERE diff_id = (SELECT max(diff_id) FROM migrate.diff_result)") == 3 ]] ||
	die "diff did not find exactly the 3 changed keys"
