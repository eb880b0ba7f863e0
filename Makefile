# migrate: data migration inside PostgreSQL (PGXS build)

MODULE_big = migrate
# one C file per subsystem (src/*.c), each says what it owns at its top
OBJS = $(patsubst %.c,%.o,$(sort $(wildcard src/*.c)))
# PGXS does not track headers: every object is rebuilt when one changes
# (a stale object with another layout of MigrateRunShared misreads it)
MIGRATE_HEADERS = $(wildcard src/*.h)
EXTENSION = migrate
EXTVERSION = 0.12
# SQL: sql/*.sql is the current source, one file per subsystem, catalog
# first (its top comment says how the scripts are built).  The install
# script of the current version is built from them; the upgrade script from
# each released version in UPGRADE_FROM is built from the deltas of
# sql/updates/ (from that version on, in the order of UPDATES) and the
# current function files.  The scripts released before that (DATA) are kept
# as released, frozen and checksummed (test/released-scripts.sha256); 0.2
# has no install script of its own: CREATE EXTENSION migrate VERSION '0.2'
# runs 0.1 then 0.1--0.2.
SQL_SOURCES = sql/catalog.sql sql/security.sql sql/plan.sql sql/run.sql sql/verify.sql sql/diff.sql \
              sql/report.sql sql/assess.sql sql/database.sql sql/sync.sql sql/cutover.sql sql/file.sql
SQL_FUNCTIONS = $(filter-out sql/catalog.sql,$(SQL_SOURCES))
UPDATES = sql/updates/0.2--0.3.sql sql/updates/0.3--0.4.sql sql/updates/0.4--0.5.sql sql/updates/0.5--0.6.sql sql/updates/0.6--0.7.sql sql/updates/0.7--0.8.sql sql/updates/0.8--0.9.sql sql/updates/0.9--0.10.sql sql/updates/0.10--0.11.sql sql/updates/0.11--0.12.sql
UPGRADE_FROM = 0.2 0.3 0.4 0.5 0.6 0.7 0.8 0.9 0.10 0.11
DATA = sql/migrate--0.1.sql sql/migrate--0.1--0.2.sql
DATA_built = sql/migrate--$(EXTVERSION).sql \
             $(foreach v,$(UPGRADE_FROM),sql/migrate--$(v)--$(EXTVERSION).sql)
PGFILEDESC = "migrate - data migration inside PostgreSQL"

# one pg_regress file per feature, in name order: test/sql/*.sql, expected
# in test/expected (files they include: test/sql/include)
REGRESS = $(patsubst test/sql/%.sql,%,$(sort $(wildcard test/sql/*.sql)))
REGRESS_OPTS = --inputdir=test --outputdir=test/results

# isolation specs (two sessions racing), run by make installcheck after
# pg_regress: test/isolation/specs/*.spec, expected in test/isolation/expected
ISOLATION = $(patsubst test/isolation/specs/%.spec,%,$(sort $(wildcard test/isolation/specs/*.spec)))
ISOLATION_OPTS = --inputdir=test/isolation --outputdir=test/isolation/results

# TAP tests (test/t/*.pl, PostgreSQL::Test::Cluster) make their own clusters
# from the installed server: `make taptest`, as a user that may run
# PostgreSQL (not root).  Not part of installcheck, which runs against the
# server of PGHOST/PGPORT.
PROVE_TESTS = test/t/*.pl
PROVE_FLAGS = -I test/t

PG_CPPFLAGS = -Isrc -isystem $(shell $(PG_CONFIG) --includedir-server) -I$(shell $(PG_CONFIG) --includedir)
PG_CPPFLAGS += -DMIGRATE_VERSION=\"$(EXTVERSION)\"
# libpq: the binary COPY reader of postgres_fdw sources (src/copysrc.c);
# libmariadb (Debian libmariadb-dev): long MySQL values (src/mysqlsrc.c)
PG_CPPFLAGS += -isystem /usr/include/mariadb
SHLIB_LINK_INTERNAL = -lpq -lmariadb
PG_CFLAGS = -Wall -Wextra

EXTRA_CLEAN = test/results test/isolation/results tmp_check sql/*.tmp

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

$(OBJS): $(MIGRATE_HEADERS)

# make installcheck with pg_regress output kept under test/results
installcheck: | test/results
test/results:
	mkdir -p $@

.PHONY: taptest
taptest:
	$(prove_installcheck)

# The install script: guard, then the current files with CREATE OR REPLACE
# made CREATE, so that an object defined twice fails the install.
sql/migrate--$(EXTVERSION).sql: $(SQL_SOURCES) Makefile
	@! grep -nE '^(CREATE|ALTER|DROP) ' $(SQL_FUNCTIONS) | grep -vE ':CREATE OR REPLACE (FUNCTION|VIEW) ' \
	  | sed 's/$$/  <- function files hold only CREATE OR REPLACE FUNCTION|VIEW (see sql\/catalog.sql)/' | grep . >&2
	{ printf '%s\n' '\echo Use "CREATE EXTENSION migrate" to load this file. \quit' \
	    '/* built by make from $(SQL_SOURCES): do not edit */'; \
	  for f in $(SQL_SOURCES); do echo; \
	    sed -E 's/^CREATE OR REPLACE (FUNCTION|VIEW) /CREATE \1 /' $$f || exit 1; done; } > $@.tmp
	mv $@.tmp $@

# The upgrade script from a released version: guard, the deltas from that
# version on, then the current function files as they are (CREATE OR
# REPLACE).
sql/migrate--%--$(EXTVERSION).sql: $(UPDATES) $(SQL_FUNCTIONS) Makefile
	{ printf '%s\n' '\echo Use "ALTER EXTENSION migrate UPDATE" to load this file. \quit' \
	    '/* built by make from sql/updates/ ($*--$(EXTVERSION)) and $(SQL_FUNCTIONS): do not edit */'; \
	  on=; for u in $(UPDATES); do \
	    case $$u in sql/updates/$*--*) on=1;; esac; \
	    if [ -n "$$on" ]; then echo; cat $$u || exit 1; fi; done; \
	  [ -n "$$on" ] || { echo "no delta in sql/updates/ starts at $*" >&2; exit 1; }; \
	  for f in $(SQL_FUNCTIONS); do echo; cat $$f || exit 1; done; } > $@.tmp
	mv $@.tmp $@
