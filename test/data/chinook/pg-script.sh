#!/bin/sh
# test/data/chinook/pg-script.sh ddl|data -- print Chinook_PostgreSql.sql,
# ready to run in the current schema of an existing database:
#   ddl   the CREATE TABLE, foreign keys and indexes only (the target shape)
#   data  all of it, with N'...' literals written as '...': PostgreSQL types
#         N'...' as bpchar, which strips trailing blanks ('Edinburgh '), so
#         the oracle would lose them (trap 2 of README.md). Quote-aware: a
#         whole literal is matched at a time, so an N inside one is kept.
# The DROP/CREATE DATABASE and \c lines are left out in both modes.
set -eu
script="$(dirname "$0")/Chinook_PostgreSql.sql"
case "${1:-}" in
ddl)  perl -0777 -ne 's/^(?:DROP|CREATE) DATABASE[^\n]*|^\\c [^\n]*//mg;
                     print join("\n\n", /^((?:CREATE TABLE|ALTER TABLE|CREATE INDEX)\b[^;]*;)/mg), "\n"' "$script" ;;
data) perl -0777 -pe 's/^(?:DROP|CREATE) DATABASE[^\n]*|^\\c [^\n]*//mg;
                     s/N?('\''[^'\'']*(?:'\'\''[^'\'']*)*'\'')/$1/g' "$script" ;;
*)    echo "usage: $0 ddl|data" >&2; exit 2 ;;
esac
