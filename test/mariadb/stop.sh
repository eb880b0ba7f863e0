#!/usr/bin/env bash
#
# test/mariadb/stop.sh -- stop the throwaway MariaDB of test/mariadb/start.sh
# (port $MIGRATE_MARIADB_PORT, default 3307) and delete its files. Run as
# root. Does nothing, successfully, when it is not running.
#
set -uo pipefail

PORT=${MIGRATE_MARIADB_PORT:-3307}
DIR=/tmp/migrate-mariadb-$PORT

[[ $PORT =~ ^[0-9]+$ ]] || { echo "stop.sh: MIGRATE_MARIADB_PORT must be a port number" >&2; exit 1; }
[[ -d $DIR ]] || exit 0

if [[ -f $DIR/mysqld.pid ]]; then
    pid=$(cat "$DIR/mysqld.pid")
    mariadb-admin --socket="$DIR/mysqld.sock" shutdown >/dev/null 2>&1 || kill "$pid" 2>/dev/null
    for _ in $(seq 1 60); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.5
    done
    if kill -0 "$pid" 2>/dev/null; then
        echo "stop.sh: mariadbd $pid did not stop, killing it" >&2
        kill -9 "$pid" 2>/dev/null
    fi
fi
rm -rf "$DIR"
