# migrate: data migration inside PostgreSQL (PGXS build)

MODULE_big = migrate
OBJS = src/migrate.o src/launch.o src/worker.o src/load.o src/route.o \
       src/lookup.o src/expr.o
EXTENSION = migrate
DATA = $(wildcard sql/migrate--*.sql)
PGFILEDESC = "migrate - data migration inside PostgreSQL"

# one pg_regress file per feature, in name order
REGRESS = $(patsubst sql/%.sql,%,$(sort $(filter-out sql/migrate--%,$(wildcard sql/*.sql))))
REGRESS_OPTS = --inputdir=. --outputdir=test/results

PG_CPPFLAGS = -Isrc -isystem $(shell $(PG_CONFIG) --includedir-server)
PG_CFLAGS = -Wall -Wextra

EXTRA_CLEAN = test/results

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# make installcheck with pg_regress output kept under test/results
installcheck: | test/results
test/results:
	mkdir -p $@
