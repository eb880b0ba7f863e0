#!/usr/bin/env bash
# Set up and run the whole test suite on a Debian 12 machine, as root:
#   sudo bash test/run-tests.sh
# Installs the Debian packages the build and the tests need, builds the
# extension with warnings as errors, installs it, and runs the pg_regress
# suite and the isolation specs against a throwaway PostgreSQL 15 cluster
# (pg_virtualenv -t), with a real postgres_fdw loopback source and a
# throwaway MariaDB (mysql_fdw source, test/mariadb/start.sh, port
# $MIGRATE_MARIADB_PORT or 3307), then the TAP tests (test/t, clusters of
# their own, run as the postgres user).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" != "--inner" ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends \
        build-essential postgresql-15 postgresql-server-dev-15 postgresql-contrib \
        postgresql-common libipc-run-perl mariadb-server postgresql-15-mysql-fdw libmariadb-dev \
        postgresql-15-cron >/dev/null
    # the released scripts never change: changes go in sql/*.sql and sql/updates/
    sha256sum --quiet -c test/released-scripts.sha256
    # the layout rules (one writer of run state, one owner of libpq connections, ...)
    bash test/structure.sh
    make -s clean
    make -s PG_CFLAGS="-Wall -Wextra -Werror"
    make -s install
    # a MariaDB of its own for the mysql_fdw tests, stopped whatever happens
    trap 'bash test/mariadb/stop.sh' EXIT
    bash test/mariadb/start.sh
    # a cluster of its own, removed afterwards whatever happens
    status=0
    pg_virtualenv -t -- bash "$0" --inner || status=$?
    exit "$status"
fi

# inside pg_virtualenv: PGHOST, PGPORT, PGUSER and PGPASSWORD point at the cluster
log=$(mktemp)
status=0
# pg_regress, then the isolation specs
make -s installcheck 2>&1 | tee "$log" || status=$?
for diffs in test/results/regression.diffs test/isolation/results/regression.diffs; do
    if [ "$status" -ne 0 ] && [ -f "$diffs" ]; then
        cat "$diffs"
    fi
done
# TAP tests: their own clusters, as the postgres user (servers refuse root)
tap_status=0
bash test/tap-tests.sh 2>&1 | tee -a "$log" || tap_status=$?

# the plain closing line CI reads (pg_regress and isolation tests, TAP files)
passed=$(grep -cE '^(test |     )?[^ ]+ +\.\.\. ok|^test/t/[^ ]+ \.+ ok$' "$log" || true)
failed=$(grep -cE '\.\.\. FAILED|^test/t/[^ ]+ +\(Wstat' "$log" || true)
if [ "$tap_status" -ne 0 ] && ! grep -qE '^test/t/[^ ]+ +\(Wstat' "$log"; then
    failed=$((failed + 1))      # the TAP run failed as a whole (bail out)
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$tap_status" -eq 0 ] || status=1
exit "$status"
