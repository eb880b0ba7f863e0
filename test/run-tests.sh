#!/usr/bin/env bash
# Set up and run the whole test suite on a Debian 12 machine, as root:
#   sudo bash test/run-tests.sh
# Installs the Debian packages the build and the tests need, builds the
# extension with warnings as errors, installs it, and runs the pg_regress
# suite against a throwaway PostgreSQL 15 cluster (pg_virtualenv -t), with a
# real postgres_fdw loopback source and a throwaway MariaDB (mysql_fdw source,
# test/mariadb/start.sh, port $MIGRATE_MARIADB_PORT or 3307).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" != "--inner" ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends \
        build-essential postgresql-15 postgresql-server-dev-15 postgresql-contrib \
        postgresql-common libipc-run-perl mariadb-server postgresql-15-mysql-fdw >/dev/null
    # a released install script never changes: upgrades go in migrate--A--B.sql
    sha256sum --quiet -c test/released-scripts.sha256
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
make -s installcheck 2>&1 | tee "$log" || status=$?
if [ "$status" -ne 0 ] && [ -f test/results/regression.diffs ]; then
    cat test/results/regression.diffs
fi
# the plain closing line CI reads
passed=$(grep -cE '^(test |     )?[^ ]+ +\.\.\. ok' "$log" || true)
failed=$(grep -cE '\.\.\. FAILED' "$log" || true)
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] || status=1
exit "$status"
