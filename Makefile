# migrate: data migration inside PostgreSQL (PGXS build)

MODULE_big = migrate
# one C file per subsystem (src/*.c), each says what it owns at its top
OBJS = $(patsubst %.c,%.o,$(sort $(wildcard src/*.c)))
EXTENSION = migrate
EXTVERSION = 0.2
# the released 0.1 script and the upgrade scripts are kept as written; the
# install script of the current version is built from them (below), so a
# fresh install and an upgraded 0.1 cannot drift apart
DATA = sql/migrate--0.1.sql $(sort $(wildcard sql/migrate--*--*.sql))
DATA_built = sql/migrate--$(EXTVERSION).sql
PGFILEDESC = "migrate - data migration inside PostgreSQL"

# one pg_regress file per feature, in name order
REGRESS = $(patsubst sql/%.sql,%,$(sort $(filter-out sql/migrate--%,$(wildcard sql/*.sql))))
REGRESS_OPTS = --inputdir=. --outputdir=test/results

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
# libpq: the binary COPY reader of postgres_fdw sources (src/copysrc.c)
SHLIB_LINK_INTERNAL = -lpq
PG_CFLAGS = -Wall -Wextra

EXTRA_CLEAN = test/results test/isolation/results tmp_check

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# make installcheck with pg_regress output kept under test/results
installcheck: | test/results
test/results:
	mkdir -p $@

.PHONY: taptest
taptest:
	$(prove_installcheck)

sql/migrate--$(EXTVERSION).sql: sql/migrate--0.1.sql sql/migrate--0.1--0.2.sql
	{ echo '/* built by make from $^: do not edit */'; \
	  for f in $^; do sed '/^\\echo /d' $$f; done; } > $@
