#!/usr/bin/env bash
# test/structure.sh -- the layout rules of docs/architecture.md, checked:
#   - pg_regress inputs in test/sql, each with its output in test/expected
#   - each SQL function defined in exactly one current source file (sql/*.sql)
#   - sql/updates/ holds the upgrade deltas
#   - only src/catalog.c writes migrate.run, run_table, run_range and event
#     (no C file but catalog.c, no current SQL file)
#   - only src/remote.c opens libpq connections, only src/mysqlsrc.c MySQL ones
#   - no C file over 1,500 lines
# Prints every violation; exits 1 if there is one.
set -uo pipefail
cd "$(dirname "$0")/.."
bad=0
fail() { echo "structure: $*"; bad=1; }

ls test/sql/*.sql >/dev/null 2>&1 || fail "no pg_regress inputs in test/sql"
for f in test/sql/*.sql; do
    n=$(basename "$f" .sql)
    [ -f "test/expected/$n.out" ] || fail "test/sql/$n.sql has no test/expected/$n.out"
done
for f in test/expected/*.out; do
    n=$(basename "$f" .out)
    [ -f "test/sql/$n.sql" ] || fail "test/expected/$n.out has no test/sql/$n.sql"
done
[ -d sql/updates ] && ls sql/updates/*.sql >/dev/null 2>&1 || fail "sql/updates/ holds no deltas"

# current SQL sources: sql/*.sql but the released and built scripts
current=$(ls sql/*.sql | grep -v '/migrate--')
[ -n "$current" ] || fail "no current SQL source files in sql/"
# function name -> files that define it
defs=$(for f in $current; do
    grep -oiE '^[[:space:]]*CREATE[[:space:]]+(OR[[:space:]]+REPLACE[[:space:]]+)?FUNCTION[[:space:]]+[A-Za-z0-9_."]+' "$f" \
        | awk -v f="$f" '{print tolower($NF), f}'
done | sort -u)
dups=$(echo "$defs" | awk 'NF {print $1}' | uniq -d)
for fn in $dups; do
    fail "function $fn is defined in more than one file: $(echo "$defs" | awk -v fn="$fn" '$1 == fn {printf "%s ", $2}')"
done
[ "$(echo "$defs" | awk 'NF' | wc -l)" -gt 20 ] || fail "fewer than 20 functions found in sql/*.sql (is the parser right?)"

# writers of the run state: catalog.c only
state_re='(INSERT[[:space:]]+INTO|UPDATE|DELETE[[:space:]]+FROM)[[:space:]]+(ONLY[[:space:]]+)?migrate\.(run|run_table|run_range|event)([^A-Za-z0-9_]|$)'
for f in src/*.c $current; do
    [ "$f" = src/catalog.c ] && continue
    grep -nE "$state_re" "$f" | sed "s|^|structure: $f writes the run state: |" | grep . && bad=1
done
[ -f src/catalog.c ] || fail "src/catalog.c is missing"
grep -qE "$state_re" src/catalog.c || fail "src/catalog.c writes no run state (is the pattern right?)"

# libpq connections: remote.c only
for f in src/*.c; do
    [ "$f" = src/remote.c ] && continue
    grep -nE 'PQconnect(db|dbParams|Start|StartParams)?[[:space:]]*\(|PQsetdbLogin' "$f" \
        | sed "s|^|structure: $f opens a libpq connection: |" | grep . && bad=1
done
[ -f src/remote.c ] || fail "src/remote.c is missing"
# MySQL/MariaDB client connections (libmariadb): mysqlsrc.c only
for f in src/*.c; do
    [ "$f" = src/mysqlsrc.c ] && continue
    grep -nE 'mysql_(real_connect|init|connect)[[:space:]]*\(' "$f" \
        | sed "s|^|structure: $f opens a MySQL connection: |" | grep . && bad=1
done

for f in src/*.c src/*.h; do
    n=$(wc -l < "$f")
    [ "$n" -le 1500 ] || fail "$f has $n lines (limit 1,500)"
done

[ "$bad" -eq 0 ] && echo "structure: ok"
exit "$bad"
