#!/usr/bin/env bash
# Run the TAP tests (test/t/*.pl) against the installed server and the
# migrate extension installed into it (make install first):
#   bash test/tap-tests.sh                                # all of them
#   bash test/tap-tests.sh test/t/003_kill_worker.pl      # some
# Each test makes its own throwaway clusters (PostgreSQL::Test::Cluster), and
# PostgreSQL refuses to run as root: as root, this runs `make taptest` as the
# postgres user on a copy of the tree; as anyone else, in place.  The server
# is the one of PG_CONFIG (default: pg_config on the PATH).  Needs
# libipc-run-perl; the pg_cron test needs postgresql-15-cron (else skipped).
# On failure, prints the end of the failing tests' logs.
set -euo pipefail
cd "$(dirname "$0")/.."

tests="${*:-}"
status=0
if [ "$(id -u)" -eq 0 ]; then
    dir=$(mktemp -d /tmp/migrate-tap.XXXXXX)
    # kept when a test fails (the logs are in $dir/migrate/tmp_check/log)
    trap '[ "$status" -ne 0 ] || rm -rf "$dir"' EXIT
    cp -a . "$dir/migrate"
    rm -rf "$dir/migrate/tmp_check"
    chown -R postgres: "$dir"
    cmd=$(printf 'cd %q && PATH=%q PG_CONFIG=%q make -s taptest' \
        "$dir/migrate" "$PATH" "${PG_CONFIG:-pg_config}")
    [ -z "$tests" ] || cmd+=$(printf ' PROVE_TESTS=%q' "$tests")
    su postgres -s /bin/bash -c "$cmd" || status=$?
    logdir=$dir/migrate/tmp_check/log
else
    make -s taptest ${tests:+PROVE_TESTS="$tests"} || status=$?
    logdir=tmp_check/log
fi

if [ "$status" -ne 0 ] && [ -d "$logdir" ]; then
    for f in "$logdir"/regress_log_*; do
        [ -f "$f" ] || continue
        if grep -E 'not ok [0-9]+' "$f" | grep -vq '# TODO' || grep -q 'Bail out' "$f" \
            || ! grep -q 'ok [0-9]' "$f"; then
            name=${f##*/regress_log_}
            echo "=== end of $f"
            tail -n 80 "$f"
            for s in "$logdir/${name}"_*.log; do
                [ -f "$s" ] || continue
                echo "=== end of server log $s"
                tail -n 40 "$s"
            done
        fi
    done
fi
exit "$status"
