#!/usr/bin/env bash
#
# test/mariadb/start.sh -- start a throwaway MariaDB for the tests, the demo
# and the MySQL benchmark, and load the Chinook sample database into it.
#
# Run as root (Debian package mariadb-server installed):
#
#     bash test/mariadb/start.sh          # port $MIGRATE_MARIADB_PORT, default 3307
#     bash test/mariadb/stop.sh           # stops it and deletes its files
#
# What it does:
#   - creates a fresh data directory under /tmp/migrate-mariadb-<port>/
#     (mariadb-install-db) and starts mariadbd --user=mysql on that port,
#     TCP on 127.0.0.1 only, with a socket of its own, utf8mb4 and the
#     server's default sql_mode; no configuration file is read (--no-defaults),
#     so a system MariaDB on the machine is neither used nor disturbed;
#   - creates the user mysql_fdw connects as: 'migrate'@'127.0.0.1' with
#     password 'migrate' ($MIGRATE_MARIADB_USER / $MIGRATE_MARIADB_PASSWORD),
#     allowed to read every database;
#   - loads test/data/chinook/Chinook_MySql.sql (database `Chinook`). The load
#     adds NO_BACKSLASH_ESCAPES to the session's sql_mode: four track names
#     contain a literal backslash that the default sql_mode would eat
#     (test/data/chinook/README.md). MIGRATE_MARIADB_CHINOOK=0 skips the load;
#   - loads test/data/mysql_types.sql (database migrate_types: MySQL types
#     with cast rules, for the tests), test/data/mysql_types12.sql
#     (database migrate_types12: what mysql_fdw cannot import or read as is)
#     and test/data/mysql_fk_cycles.sql (database migrate_cycles: sakila's
#     store/staff foreign-key cycle), test/data/mini_sakila.sql (database
#     mini_sakila: a sakila-shaped schema with its own oracle),
#     test/data/mysql_blobs12.sql (database migrate_blobs12: BLOBs of
#     200 kB and 1 MB, and 1,000 rows of 10 kB), test/data/mysql_shop15.sql
#     (databases migrate_shop15 and migrate_nokey15, for migrate_database).
#
# Prints the connection parameters. Root reaches the server through the
# socket (unix_socket authentication):
#     mariadb --socket=/tmp/migrate-mariadb-3307/mysqld.sock
#
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
PORT=${MIGRATE_MARIADB_PORT:-3307}
USER_NAME=${MIGRATE_MARIADB_USER:-migrate}
PASSWORD=${MIGRATE_MARIADB_PASSWORD:-migrate}
CHINOOK=${MIGRATE_MARIADB_CHINOOK:-1}
DIR=/tmp/migrate-mariadb-$PORT
SOCK=$DIR/mysqld.sock

die() { echo "start.sh: $*" >&2; exit 1; }

[[ $(id -u) -eq 0 ]] || die "run me as root (mariadbd runs as user mysql, root logs in through the socket)"
[[ $PORT =~ ^[0-9]+$ ]] || die "MIGRATE_MARIADB_PORT must be a port number (got '$PORT')"
command -v mariadbd >/dev/null || [[ -x /usr/sbin/mariadbd ]] || die "mariadbd not found: apt-get install mariadb-server"
MARIADBD=$(command -v mariadbd || echo /usr/sbin/mariadbd)

if [[ -S $SOCK ]] && mariadb-admin --socket="$SOCK" ping >/dev/null 2>&1; then
    die "a MariaDB is already running on $SOCK: stop it first with test/mariadb/stop.sh"
fi
rm -rf "$DIR"
mkdir -p "$DIR/data"
chown -R mysql:mysql "$DIR"

mariadb-install-db --no-defaults --user=mysql --datadir="$DIR/data" \
    --auth-root-authentication-method=socket --skip-test-db >"$DIR/install.log" 2>&1 \
    || { cat "$DIR/install.log" >&2; die "mariadb-install-db failed"; }

"$MARIADBD" --no-defaults --user=mysql --datadir="$DIR/data" \
    --port="$PORT" --bind-address=127.0.0.1 --socket="$SOCK" \
    --pid-file="$DIR/mysqld.pid" --log-error="$DIR/error.log" \
    --character-set-server=utf8mb4 --collation-server=utf8mb4_general_ci \
    --skip-log-bin --innodb-buffer-pool-size=256M --innodb-flush-log-at-trx-commit=2 \
    --max-allowed-packet=64M >/dev/null 2>&1 &

for _ in $(seq 1 60); do
    mariadb-admin --socket="$SOCK" ping >/dev/null 2>&1 && break
    sleep 0.5
done
mariadb-admin --socket="$SOCK" ping >/dev/null 2>&1 \
    || { tail -20 "$DIR/error.log" >&2; die "mariadbd did not start on port $PORT"; }

mariadb --socket="$SOCK" <<SQL
CREATE USER '$USER_NAME'@'127.0.0.1' IDENTIFIED BY '$PASSWORD';
CREATE USER '$USER_NAME'@'localhost' IDENTIFIED BY '$PASSWORD';
GRANT SELECT, SHOW VIEW ON *.* TO '$USER_NAME'@'127.0.0.1';
GRANT SELECT, SHOW VIEW ON *.* TO '$USER_NAME'@'localhost';
SQL

if [[ $CHINOOK == 1 ]]; then
    # trap 1 of the Chinook README: keep the literal backslashes
    mariadb --socket="$SOCK" --default-character-set=utf8mb4 \
        --init-command="SET SESSION sql_mode=CONCAT(@@sql_mode,',NO_BACKSLASH_ESCAPES')" \
        <"$REPO/test/data/chinook/Chinook_MySql.sql"
    rows=$(mariadb --socket="$SOCK" -N -B -e "
        SELECT (SELECT count(*) FROM Chinook.Album) + (SELECT count(*) FROM Chinook.Artist)
             + (SELECT count(*) FROM Chinook.Customer) + (SELECT count(*) FROM Chinook.Employee)
             + (SELECT count(*) FROM Chinook.Genre) + (SELECT count(*) FROM Chinook.Invoice)
             + (SELECT count(*) FROM Chinook.InvoiceLine) + (SELECT count(*) FROM Chinook.MediaType)
             + (SELECT count(*) FROM Chinook.Playlist) + (SELECT count(*) FROM Chinook.PlaylistTrack)
             + (SELECT count(*) FROM Chinook.Track)")
    [[ $rows == 15607 ]] || die "Chinook loaded $rows rows, expected 15607"
    backslashes=$(mariadb --socket="$SOCK" -N -B -e \
        "SELECT count(*) FROM Chinook.Track WHERE Name LIKE '%\\\\\\\\%'")
    [[ $backslashes == 4 ]] || die "Chinook: $backslashes track names with a backslash, expected 4"
fi

# the MySQL types the cast-rule tests need (sql/41_automap_mysql.sql)
mariadb --socket="$SOCK" <"$REPO/test/data/mysql_types.sql"
mariadb --socket="$SOCK" --default-character-set=utf8mb4 <"$REPO/test/data/mysql_types12.sql"
# the foreign-key cycle of sakila (sql/61_fk_cycles_mysql.sql)
mariadb --socket="$SOCK" --default-character-set=utf8mb4 <"$REPO/test/data/mysql_fk_cycles.sql"
# a sakila-shaped database with its own oracle (sql/69_real_schema_mysql.sql)
mariadb --socket="$SOCK" --default-character-set=utf8mb4 <"$REPO/test/data/mini_sakila.sql"
# long BLOBs (sql/67_mysql_blobs.sql)
mariadb --socket="$SOCK" --default-character-set=utf8mb4 <"$REPO/test/data/mysql_blobs12.sql"
# whole databases for migrate_database (sql/43_migrate_database.sql)
mariadb --socket="$SOCK" --default-character-set=utf8mb4 <"$REPO/test/data/mysql_shop15.sql"

echo "MariaDB $(mariadb --socket="$SOCK" -N -B -e 'SELECT version()') running:" \
     "host 127.0.0.1 port $PORT user $USER_NAME password $PASSWORD socket $SOCK" \
     "$([[ $CHINOOK == 1 ]] && echo '(database Chinook: 15607 rows)')"
