/*-------------------------------------------------------------------------
 *
 * migrate.h
 *	  Structures and entry points shared by the subsystems of migrate.
 *
 * src/migrate.c	_PG_init, GUCs, ending a failed subtransaction
 * src/launch.c		migrate_run(): checks, worker start, waiting, relaying
 * src/worker.c		the background worker: run bookkeeping, table order
 * src/load.c		the batch engine: key ranges of a table, batches of a range
 * src/defer.c		index and foreign key deferral: drop, rebuild, re-validate
 * src/copysrc.c	binary COPY reader of postgres_fdw sources
 * src/remote.c		libpq connections to postgres_fdw servers (remote.h)
 * src/verify.c		both sides of a comparison at once (verify, diff)
 * src/route.c		per-row routing of the batch statement (rules, counters)
 * src/lookup.c		migrate_lookup() and its per-query cache
 * src/expr.c		refusal of anything but a single SQL expression
 *
 *-------------------------------------------------------------------------
 */
#ifndef MIGRATE_H
#define MIGRATE_H

#include "postgres.h"

#include "storage/latch.h"
#include "storage/spin.h"
#include "utils/resowner.h"

#define MIGRATE_PLAN_MAXLEN		200
#define MIGRATE_TEXT_MAXLEN		2048
#define MIGRATE_NOTICE_SLOTS	32
#define MIGRATE_NOTICE_MAXLEN	512

/*
 * The source_row of a reject stored by the batch statement until the row
 * is fetched by its key (load.c): {"__migrate_key": [k1, ...]}
 */
#define MIGRATE_KEY_MARKER		"__migrate_key"

/* advisory lock class used to keep one run per plan (ASCII "migr"); also in migrate._plan_locked() */
#define MIGRATE_LOCK_CLASS		0x6d696772

/* what the worker has got to, as seen by the launching backend */
typedef enum MigratePhase
{
	MIGRATE_PHASE_STARTING = 0,	/* worker not yet attached */
	MIGRATE_PHASE_RUNNING,		/* run row committed, run_id valid */
	MIGRATE_PHASE_FINISHED		/* run ended (or was refused) */
} MigratePhase;

/*
 * The dynamic shared memory segment that links migrate_run() and its worker.
 * Inputs are written before the worker starts and never change; outputs are
 * protected by the spinlock.
 */
typedef struct MigrateRunShared
{
	slock_t		mutex;

	/* inputs */
	Oid			database_id;	/* caller's database */
	Oid			role_id;		/* caller's role: the worker runs as it */
	int			batch_size;		/* migrate.batch_size of the caller */
	bool		dry_run;
	int			parallel;		/* workers, coordinator included */
	int64		resume_run_id;	/* migrate_resume(): the run to continue */
	bool		has_tables;		/* tables => given */
	char		plan[MIGRATE_PLAN_MAXLEN + 1];
	char		mode[32];
	char		search_path[MIGRATE_TEXT_MAXLEN];	/* caller's search_path */
	char		tables[MIGRATE_TEXT_MAXLEN];	/* regclass[] literal */

	/* caller -> worker */
	bool		cancel_requested;	/* stop at the next batch boundary */
	Latch	   *caller_latch;	/* NULL once the caller stops waiting */

	/* worker -> caller */
	MigratePhase phase;
	int64		run_id;
	bool		failed;
	int			sqlerrcode;
	char		errmsg[MIGRATE_TEXT_MAXLEN];
	char		errdetail[MIGRATE_TEXT_MAXLEN];
	char		errhint[MIGRATE_TEXT_MAXLEN];
	char		errctx[MIGRATE_TEXT_MAXLEN];	/* the error's CONTEXT lines */
	uint32		notices_written;	/* ring of progress lines */
	char		notices[MIGRATE_NOTICE_SLOTS][MIGRATE_NOTICE_MAXLEN];
} MigrateRunShared;

/* per-table counters of one batch attempt or of a whole table */
typedef struct MigrateCounts
{
	int64		read;
	int64		written;
	int64		rejected;
	int64		skipped;
	int64		warned;
} MigrateCounts;

/*
 * What a worker process (the run's coordinator or a helper) works on.  The
 * coordinator has the shared segment of the call that started it; helpers
 * read everything from migrate.run.
 */
typedef struct MigrateWork
{
	MigrateRunShared *shared;	/* coordinator only, else NULL */
	int64		run_id;
	char		plan[MIGRATE_PLAN_MAXLEN + 1];
	bool		dry_run;
	int			batch_size;
	int			parallel;
} MigrateWork;

/* one claimed unit of a run (migrate.run_range row) */
typedef struct MigrateUnit
{
	Oid			target;
	int			range_no;
	char	   *kind;			/* load, index, fk */
	char	   *lo;				/* NULL: unbounded */
	char	   *hi;
	char	   *last_key;		/* checkpoint to continue after, or NULL */
	char	   *definition;		/* index/fk: DDL */
	char	   *check_sql;		/* fk: orphan statement */
	bool		only_unit;		/* the table's single unit */
} MigrateUnit;

#define MIGRATE_MAX_PARALLEL	64

/* GUCs (migrate.c) */
extern int	migrate_batch_size;
extern int	migrate_max_workers;
extern bool migrate_copy_source;

/* migrate.c */
extern ErrorData *migrate_abort_subxact(MemoryContext caller_cxt, ResourceOwner caller_owner);

/* worker.c */
extern PGDLLEXPORT void migrate_worker_main(Datum main_arg);
extern PGDLLEXPORT void migrate_helper_main(Datum main_arg);
extern void migrate_worker_notice(MigrateRunShared *shared, const char *fmt,...) pg_attribute_printf(2, 3);
extern const char *migrate_work_should_stop(MigrateWork *w);
extern void migrate_unit_done(MigrateWork *w, MigrateUnit *u, int64 source_count);
extern void migrate_unit_stopped(MigrateWork *w, MigrateUnit *u, const char *state);

/* load.c */
extern const char *migrate_load_range(MigrateWork *w, MigrateUnit *u);
extern void migrate_plan_ranges(MigrateWork *w, Oid target);

/* defer.c */
extern void migrate_defer_table(MigrateWork *w, Oid target);
extern void migrate_run_deferred(MigrateWork *w, MigrateUnit *u);

/* route.c */
extern void migrate_route_begin(int64 run_id, Oid target, List *rule_names,
								List *rule_on_fail, List *rule_exprs);
extern void migrate_route_reset_counts(void);
extern void migrate_route_get_counts(MigrateCounts *counts);
extern bool migrate_route_abort_raised(void);
extern void migrate_route_end(void);
extern void migrate_route_insert_reject(const char *source_key, Datum source_row,
										bool source_row_null, const char *reason,
										const char *message, const char *detail,
										bool loaded);

extern void migrate_worker_sample_memory(void);

/* remote.c: libpq connections to postgres_fdw servers, declared in remote.h */

#endif							/* MIGRATE_H */
