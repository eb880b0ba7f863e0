# test/bench/lib.sh - helpers shared by the benchmarks (sourced, not run)
#
# psql shorthands, arithmetic on seconds, medians, and the columns of the
# table `orders` of /work/shared/BASELINES.md (2M rows, 10 mixed types).
# ROWS must be set before rate() is called.

PSQL=(psql -X -q -v ON_ERROR_STOP=1)
q() { "${PSQL[@]}" -At "$@"; }		# q -d db -c sql: unaligned, tuples only
now() { date +%s.%N; }
fsub() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a - b }'; }
fdiv() { awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) print "n/a"; else printf "%.2f", a / b }'; }
rate() { awk -v n="$ROWS" -v s="$1" 'BEGIN { if (s <= 0) print "n/a"; else printf "%.0f", n / s }'; }
median() {
	printf '%s\n' "$@" | sort -g |
		awk '{ a[NR] = $1 } END { if (NR % 2) printf "%.3f", a[(NR + 1) / 2]; else printf "%.3f", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}

# the 10 columns of BASELINES.md, for CREATE TABLE orders (...)
ORDERS_COLS="
	id          bigint PRIMARY KEY,
	customer_id integer NOT NULL,
	email       text NOT NULL,
	status      varchar(16) NOT NULL,
	amount      numeric(12,2) NOT NULL,
	created_at  timestamp NOT NULL,
	updated_at  timestamptz,
	paid        boolean NOT NULL,
	note        text,
	ship_date   date"

# the generated rows of orders, for INSERT INTO orders $ORDERS_ROWS (psql
# variable :rows: how many)
ORDERS_ROWS="
SELECT i,
       (1 + (i * 7919) % 100000)::int,
       'customer' || (i % 100000) || '@example.com',
       (ARRAY['new', 'paid', 'shipped', 'delivered', 'cancelled'])[1 + i % 5],
       round(((i * 37) % 1000000) / 100.0, 2),
       timestamp '2020-01-01' + i * interval '13 seconds',
       CASE WHEN i % 10 <> 0 THEN timestamptz '2020-01-01 00:00+00' + i * interval '17 seconds' END,
       i % 3 <> 0,
       md5(i::text) || lpad(to_hex(i), 8, '0'),	-- 40 characters
       CASE WHEN i % 7 <> 0 THEN date '2020-01-01' + (i % 1500)::int END
  FROM generate_series(1::bigint, :rows) AS i"

# private_install_reexec SCRIPT [pg_virtualenv -o settings...]: build a copy
# of the repository, install it into a private directory (read first by the
# cluster: extension_destdir), and run "bash SCRIPT --inner" inside a
# throwaway cluster (pg_virtualenv) on BENCH_PGPORT with those settings.
# Exports BENCH_REVISION (the commit, +uncommitted when the tree differs).
# Returns the inner script's status; removes what it made.
private_install_reexec() {
	local script=$1; shift
	local private build log rc=0
	private=$(mktemp -d -t migrate-bench-install.XXXXXX)
	build=$(mktemp -d -t migrate-bench-build.XXXXXX)
	chmod 755 "$private"
	(cd "$REPO" && git ls-files -z --cached --others --exclude-standard | xargs -0 cp --parents -t "$build")
	log=$(mktemp)
	if ! { make -C "$build" PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config &&
		make -C "$build" PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config install DESTDIR="$private"; } >"$log" 2>&1; then
		cat "$log" >&2; rm -rf "$log" "$private" "$build"; echo "make install failed" >&2; return 1
	fi
	rm -f "$log"
	chmod -R a+rX "$private"
	export BENCH_REVISION
	BENCH_REVISION="$(git -C "$REPO" rev-parse --short HEAD)$(git -C "$REPO" diff --quiet HEAD || echo '+uncommitted')"
	local opts=()
	for o in "$@"; do opts+=(-o "$o"); done
	PGPORT=$BENCH_PGPORT pg_virtualenv -t -v 15 "${opts[@]}" \
		-o extension_destdir="$private" \
		-o dynamic_library_path="$private/usr/lib/postgresql/15/lib:/usr/lib/postgresql/15/lib" \
		-- bash "$script" --inner || rc=$?
	rm -rf "$private" "$build"
	return $rc
}
