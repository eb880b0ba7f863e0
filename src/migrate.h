/*-------------------------------------------------------------------------
 *
 * migrate.h
 *	  Structures and entry points shared by the subsystems of migrate.
 *
 * src/migrate.c	_PG_init, GUCs, a worker's transaction, ending a failed
 *					subtransaction, version check
 * src/launch.c		migrate_run(): checks, worker start, waiting, relaying
 * src/worker.c		the background workers: coordinator and helpers, their loop
 * src/catalog.c	the only writer of run, run_table, run_range, event: the
 *					state machine of runs, tables and units
 * src/catalog_strategies.c	the writes of sync_state, cutover, rollback
 *					(with catalog.c's helpers, catalog.h)
 * src/units.c		cutting a table of a run into key ranges (units)
 * src/load.c		the batch engine: a table's description, batches of a range
 * src/defer.c		index and foreign key deferral: drop, rebuild, re-validate
 *					(also the foreign keys that close a cycle)
 * src/progress.c	a worker's progress lines and peak memory; the live
 *					progress lines of a waiting migrate_run()
 * src/copysrc.c	binary COPY reader of postgres_fdw sources
 * src/remote.c		libpq connections to postgres_fdw servers (remote.h)
 * src/slot.c		capture => 'slot': the source's logical replication slot (slot.h)
 * src/sync.c		trickle sync: arming capture, a table's pass (stage.c: the stage)
 * src/cutover.c	blue-green cutover: migrate_cutover(), reversing a swap
 * src/mysqlsrc.c	libmariadb connections to mysql_fdw servers: migrate._mysql_value()
 * src/verify.c		both sides of a comparison at once (verify, diff)
 * src/predict.c	the target's constraints predicted in the batch statement
 * src/rowhash.c	the verify's row hash of each row the multi-insert path writes
 * src/route.c		per-row routing of the batch statement (rules, counters),
 *					sensitive values masked in rejects and their texts
 * src/lookup.c		migrate_lookup() and its per-query cache
 * src/expr.c		refusal of anything but a single SQL expression
 * src/owner.c		who a call runs as: plan owners, switching identity (owner.h)
 *
 *-------------------------------------------------------------------------
 */
#ifndef MIGRATE_H
#define MIGRATE_H

#include "postgres.h"

#include "nodes/pg_list.h"
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

/*
 * Locks of migrate (worker.c): LOCKTAG_ADVISORY with field2 = this class
 * (ASCII "migr") and a field4 that the SQL advisory lock functions never
 * use (they use 1 and 2), so no session can take or block them from SQL.
 *	plan lock:	 (database, class, hashtext(plan), 3), held by a run's
 *				 coordinator for the whole run; also in migrate._plan_locked()
 *	worker slot: (InvalidOid, class, slot, 4), slot 0..max_workers_total-1,
 *				 cluster-wide, held by every worker of every run
 */
#define MIGRATE_LOCK_CLASS		0x6d696772
#define MIGRATE_LOCK_PLAN		3
#define MIGRATE_LOCK_SLOT		4
#define MIGRATE_MAX_WORKERS_TOTAL	1024

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
	Oid			role_id;		/* caller's role: run.run_by */
	Oid			owner_id;		/* the plan's owner: every worker runs as it */
	int			batch_size;		/* migrate.batch_size of the caller */
	int			batch_bytes;	/* migrate.batch_bytes of the caller */
	bool		dry_run;
	int			parallel;		/* workers, coordinator included */
	int64		resume_run_id;	/* migrate_resume(): the run to continue */
	int			max_workers_total;	/* the caller's migrate.max_workers_total */
	char		maintenance_work_mem[32];	/* the caller's, for index rebuilds */
	int			progress_interval;	/* the caller's migrate.progress_interval (s) */
	bool		has_tables;		/* tables => given */
	char		plan[MIGRATE_PLAN_MAXLEN + 1];
	char		mode[32];
	char		search_path[MIGRATE_TEXT_MAXLEN];	/* caller's search_path (new runs) */
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
	int64		rejected_setwise;	/* of rejected: refused by a prediction */
	int64		bisect_steps;	/* statements run on a stage table */
	/*
	 * The sum of the verify's row hashes of the rows written (migrate._loaded
	 * in the batch statement, tl->loaded_hash), and whether the statement
	 * computed it: what migrate_verify(reread => false) compares the target
	 * with (run_table.loaded_checksum).
	 */
	int128		loaded_sum;
	bool		loaded_hashed;
} MigrateCounts;

/*
 * A constraint of the target predicted in the batch statement (predict.c),
 * as route.c reports a row it refuses: the SQLSTATE, message and detail
 * the target would have given.  The detail is built from the row's values
 * (all target columns as text, attnum order): "Failing row contains
 * (...)." or "Key (names)=(values at key_pos) already exists." / "... is
 * not present in table \"ref_name\"."
 */
#define MIGRATE_PRED_ROW		1
#define MIGRATE_PRED_KEY_EXISTS	2
#define MIGRATE_PRED_KEY_MISSING	3

typedef struct MigratePrediction
{
	char		sqlstate[6];
	char	   *message;
	int			kind;
	char	   *key_names;
	List	   *key_pos;		/* int positions in the row's values */
	char	   *ref_name;
} MigratePrediction;

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
	int64		batch_bytes;	/* byte budget per batch, 0: rows only */
	int			parallel;
	int			max_workers_total;	/* slots this worker may take (0..n-1) */
	char		mode[32];		/* the run's mode: full, incremental, sync */

	/*
	 * Should this worker stop at this batch boundary?  Set by worker.c, the
	 * owner of the workers; called by the loaders (load.c) between batches,
	 * with SPI and a transaction.  Returns "cancelled", "interrupted" or
	 * NULL; may raise (the coordinator, when another worker failed).
	 */
	const char *(*should_stop) (struct MigrateWork *w);
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
	bool		key_sensitive;	/* set by load.c: run_table shows last_key as *** */
} MigrateUnit;

/*
 * A table whose units all succeeded, judged by its reject limits
 * (catalog.c, for worker.c's progress line and the run's failure)
 */
typedef struct MigrateTableDone
{
	Oid			target_oid;
	char	   *target;			/* regclass text */
	MigrateCounts counts;		/* the table's totals (warned not set) */
	double		seconds;		/* from its start to its last unit's end */
	int64		units;
	char	   *warning;		/* rejects above reject_warn: what to say, or NULL */
	char	   *error;			/* rejects above reject_limit: the table failed, or NULL */
} MigrateTableDone;

/* a table failed by its reject_limit: data_exception (documented) */
#define MIGRATE_ERRCODE_REJECT_LIMIT	ERRCODE_DATA_EXCEPTION

/*
 * Everything known about a table being loaded (load.c; units.c reads the
 * description part to cut the table into ranges).
 */
typedef struct MigrateTableLoad
{
	/* the description, filled by migrate_load_describe */
	int64		run_id;
	Oid			target;
	char	   *target_name;	/* regclass text, quoted as needed */
	char	   *source;			/* quoted, schema-qualified */
	char	   *filter;			/* NULL or SQL over s */
	char	   *mode;			/* insert, upsert, skip_existing */
	bool		dry_run;
	int64		batch_size;
	char	   *into;			/* where rows go: target, or a temp table */

	List	   *cols;			/* target column names (char *) */
	List	   *exprs;			/* their source expressions */
	List	   *types;			/* their type names, without typmod */
	List	   *keycols;		/* key column names */
	char	   *key_expr;		/* source expression of the leading key column */
	Oid			key_type;		/* its type */
	bool		int_key;		/* int2/int4/int8: cut by arithmetic */
	bool		count_passes;	/* skip_existing: count every row read */
	bool		minmax_count;	/* ask min and max with count(*): see units.c */
	bool		copy_path;		/* batches read by migrate._copy_source() */
	char	   *copy_key;		/* its key column (a source column name) */
	char	   *copy_coldefs;	/* "col type, ..." of the source */
	char	   *stage_coldefs;	/* the same with collations: the stage table */
	bool		multi_insert;	/* rows written by multiinsert.c, not an INSERT */
	List	   *mi_cols;		/* its SELECT's value per target attribute (NULL: dropped) */
	const char *insert_path;	/* which, and why (the run's event) */
	bool		mi_direct;		/* file source: batches first tried with the
								 * fields converted by the receiver */
	List	   *mi_fields;		/* per target attribute: s.<field>, or NULL */
	int			mi_direct_fails;	/* direct attempts refused in a row */
	struct _SPI_plan *direct_first; /* SELECT of the fields of a batch */
	struct _SPI_plan *direct_next;
	bool		file_source;	/* a foreign table of migrate_file (filesrc.c) */
	Oid			source_relid;
	int			nfiles;			/* file sources: the files and their sizes */
	int64	   *file_sizes;

	/*
	 * Sensitive columns (migrate.sensitive_column): their values are shown
	 * as *** in rejects and error texts.
	 */
	List	   *sensitive_src;	/* sensitive source columns of the source */
	char	   *mask_json;		/* NULL, or {"col": "***", ...} of those */
	List	   *sensitive_cols; /* target columns whose mapping reads one */
	bool		key_sensitive;	/* a key column is one of them */

	List	   *rule_names;
	List	   *rule_on_fail;
	List	   *rule_exprs;

	/* the load's statements (load.c), kept until the range ends */
	struct _SPI_plan *batch_first;	/* non-integer keys: batch with no lower bound */
	struct _SPI_plan *batch_next;	/* key > $1 AND key <= $2 */
	struct _SPI_plan *bound_first;	/* non-integer keys: where a batch ends */
	struct _SPI_plan *bound_next;
	struct _SPI_plan *reject_hwm;	/* highest reject_id so far */
	struct _SPI_plan *reject_keys;	/* keys of rejects still without their row */
	struct _SPI_plan *reject_fill;	/* fetch those rows by key, store them */
	struct _SPI_plan *stage_batch;	/* rn BETWEEN $1 AND $2 on the stage table */
	char	   *stage;			/* stage table name, once a batch needed it */
	char	   *returning_into; /* sync: the batch statement records the keys it
								 * wrote, and whether it inserted them, here */
	char	   *undo_into;		/* run_table.undo 'log': the run's undo table of
								 * the target (undo.c), else NULL */
	struct MigrateUndo *undo;	/* and how the writes record into it */
	char	   *loaded_hash;	/* run_table.undo 'empty', not a sync: the
								 * verify's row hash over the mapped row
								 * (m.<col>), summed by migrate._loaded() */
	struct MigrateRowHash *row_hash;	/* or that hash computed by the
										 * multi-insert receiver (rowhash.c):
										 * then the statement has no _loaded() */

	/* set-wise quarantine (predict.c) */
	List	   *preds;			/* MigratePrediction, in PostgreSQL's order */
	struct MigratePredictState *predict;	/* NULL: nothing predicted */
	int			pred_ncols;		/* the row's values given to migrate._fail() */
	List	   *pred_sensitive; /* positions of sensitive ones among them */
	bool		probes;			/* FK probes on (after a refused batch) */
	bool		probe_keys;		/* and unique key probes (after a 23505) */
	int			stage_probes;	/* stage_batch was built with: probes + 2 probe_keys */

	MigrateCounts total;
} MigrateTableLoad;

/*
 * The greatest key of the subquery "b" (key order), NULL when it is empty:
 * not max(), which some ordered key types (uuid before PostgreSQL 16) lack.
 */
#define MIGRATE_LAST_KEY_OF_SUBQUERY " ORDER BY k DESC LIMIT 1)"

#define MIGRATE_MAX_PARALLEL	64

/* a file source's record as a reject's source_row: fields, _file, _line */
#define MIGRATE_FILE_ROW_DROP " - '_pos' - '_raw' - '_error'"

/* GUCs (migrate.c) */
extern int	migrate_batch_size;
extern int	migrate_batch_bytes;
extern int	migrate_max_workers;
extern int	migrate_max_workers_total;
extern bool migrate_copy_source;
extern bool migrate_copy_stream;
extern bool migrate_multi_insert;
extern int	migrate_progress_interval;

/* the largest migrate.progress_interval, in seconds (a day) */
#define MIGRATE_PROGRESS_INTERVAL_MAX	86400

/* migrate.c */
extern ErrorData *migrate_abort_subxact(MemoryContext caller_cxt, ResourceOwner caller_owner);
extern char *migrate_int128_to_cstring(int128 v);
extern struct ParamListInfoData *migrate_spi_params(struct _SPI_plan *plan, Datum *values);
extern void migrate_begin_txn(void);
extern void migrate_commit_txn(void);
extern void migrate_check_version(void);

/* worker.c */
extern PGDLLEXPORT void migrate_worker_main(Datum main_arg);
extern PGDLLEXPORT void migrate_helper_main(Datum main_arg);

/* launch.c */
struct dsm_segment;
struct BackgroundWorkerHandle;
struct BackgroundWorker;
extern void migrate_worker_template(struct BackgroundWorker *worker, const char *function,
									const char *type, const char *name);
extern void migrate_relay_notices(MigrateRunShared *shared, uint32 *seen);
extern struct BackgroundWorkerHandle *migrate_start_worker(struct dsm_segment *seg, const char *function,
														   const char *type, const char *name,
														   const char *what, const char *while_doing,
														   const char *plan);

/* progress.c */
extern void migrate_worker_notice(MigrateRunShared *shared, const char *fmt,...) pg_attribute_printf(2, 3);
extern void migrate_worker_sample_memory(void);
extern int64 migrate_worker_peak_memory_kb(void);
extern int64 migrate_worker_memory_reset(void);
extern int64 migrate_worker_memory_peak(void);
extern int64 migrate_worker_peak_rss_kb(void);
extern int64 migrate_first_rows_goal(MigrateWork *w, MigrateTableLoad *tl);
extern bool migrate_progress_report(MigrateRunShared *shared, int64 run_id);

/*
 * catalog.c: every write of run, run_table, run_range and event.  Each
 * needs SPI connected and a transaction (see catalog.c).
 */
extern int64 migrate_catalog_run_start(const MigrateRunShared *shared);
extern void migrate_catalog_run_resume(int64 run_id, const char *plan);
extern int	migrate_catalog_interrupt_dead_runs(const char *plan);
extern void migrate_catalog_run_planned(int64 run_id);
extern void migrate_catalog_run_end(int64 run_id, const char *state, int64 peak_memory_kb,
									int64 peak_rss_kb);
extern void migrate_catalog_run_peak(int64 run_id, int64 peak_rss_kb);
extern void migrate_catalog_run_fail(int64 run_id, const char *state, Oid target,
									 const char *message, int sqlerrcode, int64 peak_memory_kb,
									 int64 peak_rss_kb);
extern bool migrate_catalog_request_cancel(int64 run_id, bool by_worker);
extern void migrate_catalog_event(int64 run_id, const char *plan, const char *event,
								  const char *details);
extern void migrate_catalog_table_started(int64 run_id, Oid target);
extern List *migrate_catalog_tables_succeeded(int64 run_id);
extern void migrate_catalog_table_estimate(int64 run_id, Oid target);
extern void migrate_catalog_add_load_unit(int64 run_id, Oid target, int range_no,
										  const char *lo, const char *hi);
extern void migrate_catalog_add_deferred_unit(int64 run_id, Oid target, int range_no,
											  const char *kind, const char *definition,
											  const char *check_sql, Oid ref_target);
extern bool migrate_catalog_claim_unit(int64 run_id, MigrateUnit *u, MemoryContext cxt,
									   bool *nothing_left);
extern void migrate_catalog_unit_checkpoint(int64 run_id, const MigrateUnit *u,
											const MigrateCounts *batch, const char *last_key,
											const char *target_name);
extern void migrate_catalog_unit_orphans(int64 run_id, const MigrateUnit *u, int64 orphans);
extern void migrate_catalog_table_orphans(int64 run_id, Oid target, int64 orphans);
extern void migrate_catalog_unit_done(int64 run_id, const MigrateUnit *u, int64 source_count);
extern void migrate_catalog_unit_stopped(int64 run_id, const MigrateUnit *u, const char *state);
extern void migrate_catalog_unit_failed(int64 run_id, Oid target, const char *message,
										int sqlerrcode);

/* what one apply of a sync changed in the target */
typedef struct MigrateSyncApplied
{
	int64		inserted;
	int64		updated;
	int64		deleted;
	int64		rejected;
	Datum		deferred;		/* text[] of keys whose delete waits, or 0 */
	bool		deferred_reset; /* the table's deferred keys are replaced */
} MigrateSyncApplied;

extern void migrate_catalog_add_sync_unit(int64 run_id, Oid target, int range_no);
extern void migrate_catalog_sync_armed(int64 run_id, const char *plan, Oid target, const char *capture,
									   const char *position, const char *change_relation,
									   const char *slot_name);
extern void migrate_catalog_sync_applied(const char *plan, Oid target, bool move, const char *position,
										 Datum prune, const MigrateSyncApplied *a);
extern void migrate_catalog_sync_pass_done(int64 run_id, const char *plan, Oid target,
										   const char *synced_to, const char *lag);
extern int64 migrate_catalog_sync_dedupe_rejects(int64 run_id, Oid target, int64 after_id);
extern void migrate_catalog_sync_fk_rejects_loaded(const char *plan, Oid target, const char *in_target_sql);
extern void migrate_catalog_table_undo(int64 run_id, Oid target, const char *undo);
extern Oid	migrate_catalog_undo_create(int64 run_id, Oid target);
extern void migrate_catalog_rollback_gather(int64 run_id, Oid target, const char *into);
extern void migrate_catalog_rollback_record(int64 run_id, Oid target, const char *from, bool force,
											int64 deleted, int64 restored, int64 reinserted,
											int64 conflicts);

/* undo.c: the undo log of a run's writes */
extern void migrate_undo_decide(MigrateWork *w, Oid target);
extern void migrate_undo_describe(MigrateTableLoad *tl);
extern void migrate_undo_begin(MigrateTableLoad *tl);
extern void migrate_undo_flush(MigrateTableLoad *tl);
extern void migrate_undo_batch_sql(MigrateTableLoad *tl, struct StringInfoData *sql);
extern char *migrate_undo_wrap_delete(MigrateTableLoad *tl, const char *delete_sql);
extern int	migrate_undo_execute(MigrateTableLoad *tl, struct _SPI_plan *plan, Datum *values, char mode);
extern int	migrate_undo_execute_sql(MigrateTableLoad *tl, const char *sql, int nargs, Oid *argtypes,
									 Datum *values, char mode);

/* cutovers (cutover.c): the run row (catalog.c), the swap's record (catalog_strategies.c) */
extern int64 migrate_catalog_cutover_run(const char *plan, const Oid *targets, char **sources,
										 int ntargets);
extern void migrate_catalog_cutover_swapped(int64 run_id, const char *plan, const char *live_schema,
											const char *shadow_schema, const char *retired_schema,
											const char *fence, int attempts, const char *lock_wait,
											const char *lock_held, const char *carried);
extern uint64 migrate_catalog_cutover_reversed(int64 run_id);
extern void migrate_catalog_cutover_synced(int64 run_id, const char *plan, int n, const Oid *targets,
										   char **positions, char **lags, const MigrateSyncApplied *applied);

/* units.c */
extern void migrate_plan_ranges(MigrateWork *w, Oid target);

/* the multi-insert path (multiinsert.c) */
extern void migrate_multi_insert_describe(MigrateTableLoad *tl);

/* rowhash.c */
typedef struct MigrateRowHash MigrateRowHash;
extern MigrateRowHash *migrate_row_hash_describe(const char *plan, Oid target);
extern void migrate_row_hash_describe_load(MigrateTableLoad *tl, const char *plan);
extern int64 migrate_row_hash(MigrateRowHash *h, Datum *values, bool *isnull);

extern int	migrate_multi_insert_execute(MigrateTableLoad *tl, struct _SPI_plan *plan, Datum *values);
extern bool migrate_multi_insert_direct(MigrateTableLoad *tl, bool lower_bound, Datum *bounds,
										MigrateCounts *batch);

/* file sources (filesrc.c) */
extern int	migrate_filesrc_files(Oid relid, int64 **sizes);
extern bool migrate_filesrc_range(MigrateTableLoad *tl, int64 last, int64 hi, int64 *lo, int64 *max);
extern int64 migrate_filesrc_batch_lo(MigrateTableLoad *tl, int64 lo);
extern int64 migrate_filesrc_file_end(MigrateTableLoad *tl, int64 lo);
extern List *migrate_filesrc_cut(MigrateTableLoad *tl, int nranges, int64 min_bytes);
extern void migrate_filesrc_load_begin(Oid relid, bool mask_raw);
extern void migrate_filesrc_load_end(void);

/* load.c */
extern const char *migrate_load_range(MigrateWork *w, MigrateUnit *u);
extern void migrate_load_describe(MigrateTableLoad *tl, const char *plan);
extern Datum migrate_key_from_text(MigrateTableLoad *tl, const char *text, MemoryContext cxt);
extern char *migrate_key_to_text(MigrateTableLoad *tl, Datum d);
extern char *migrate_load_batch_sql(MigrateTableLoad *tl, bool from_stage, bool lower_bound);
extern void migrate_spi_exec(const char *sql, int expected);
extern struct _SPI_plan *migrate_spi_prepare_keep(const char *sql, int nargs, Oid *argtypes);
extern void migrate_add_counts(MigrateCounts *sum, const MigrateCounts *add);

/* copysrc.c */
extern void migrate_copy_stream_init(void);
extern bool migrate_copy_source_as_columns(MigrateTableLoad *tl);
extern char *migrate_mapped_source_column(const char *expr);

/* stage.c */
extern bool migrate_stage_attempt(MigrateTableLoad *tl, struct _SPI_plan *plan, Datum *values,
								  MigrateCounts *counts, ErrorData **edata_out);
extern int64 migrate_stage_fill_range(MigrateTableLoad *tl, bool lower_bound, Datum *bounds,
									  MigrateCounts *counts);
extern int64 migrate_stage_fill_keys(MigrateTableLoad *tl, Datum keys);
extern void migrate_stage_bisect(MigrateTableLoad *tl, int64 lo, int64 hi, MigrateCounts *counts);
extern void migrate_stage_isolate(MigrateTableLoad *tl, int64 lo, int64 hi, MigrateCounts *counts);
extern void migrate_stage_load(MigrateTableLoad *tl, int64 n, MigrateCounts *counts);

/* sync.c */
extern void migrate_sync_arm(MigrateWork *w, Oid target);
extern void migrate_sync_unit(MigrateWork *w, MigrateUnit *u);

/*
 * A table of a cutover's final sync in the cutover's own transaction
 * (sync.c, for cutover.c): trigger capture with a local change table.
 */
typedef struct MigrateSyncLocal
{
	Oid			target;
	struct SyncTable *st;		/* sync.c's description of the table */
	struct _SPI_plan *take;		/* reads and deletes a batch of change rows */
	struct _SPI_plan *fill;		/* their source rows into the stage */
	char	   *empty_sql;		/* empties the stage and the applied keys */
	bool		used;			/* they are not empty */
	MigrateSyncApplied applied; /* what the applies did (deferred: recorded) */
	int64		changes;		/* change rows applied */
	char	   *position;		/* the last change row applied (seq), or NULL */
	char	   *lag;			/* the age of the oldest change applied, or NULL */
	bool		retry;			/* a foreign key refused a delete or a row */
} MigrateSyncLocal;

extern MigrateSyncLocal *migrate_sync_local_prepare(const char *plan, Oid target);
extern bool migrate_sync_local_apply(MigrateSyncLocal *l, int64 run_id);
extern void migrate_sync_local_retry(MigrateSyncLocal *l);

/* defer.c */
extern void migrate_break_fk_cycles(MigrateWork *w, const Oid *targets, int ntargets);
extern void migrate_defer_table(MigrateWork *w, Oid target);
extern void migrate_run_deferred(MigrateWork *w, MigrateUnit *u);

/* predict.c */
extern void migrate_predict_describe(MigrateTableLoad *tl, const char *plan);
extern bool migrate_predict_enable(MigrateTableLoad *tl, int sqlerrcode);
extern bool migrate_predict_active(MigrateTableLoad *tl);
extern bool migrate_predict_needs_arrival(MigrateTableLoad *tl);
extern bool migrate_predict_whole_row(MigrateTableLoad *tl);
extern char *migrate_predict_pass_sql(MigrateTableLoad *tl);
extern char *migrate_predict_detail_sql(MigrateTableLoad *tl, const char *gate, bool probes);
extern char *migrate_predict_from(MigrateTableLoad *tl, const char *inner, const char *gate);
extern char *migrate_predict_rule_outcome(const char *expr, int i, bool probes);
extern char *migrate_predict_rules_gate(MigrateTableLoad *tl, bool probes);

/* route.c */
extern void migrate_route_begin(int64 run_id, Oid target, List *rule_names,
								List *rule_on_fail, List *rule_exprs);
extern void migrate_route_set_predictions(List *preds, int ncols, List *sensitive_pos);
extern void migrate_route_reset_counts(void);
extern void migrate_route_add_loaded(int64 hash);
extern void migrate_route_get_counts(MigrateCounts *counts);
extern bool migrate_route_abort_raised(void);
extern void migrate_route_end(void);
extern char *migrate_mask_values(const char *text, List *values);
extern void migrate_route_describe_sensitive(MigrateTableLoad *tl, const char *plan);
extern List *migrate_route_sensitive_values(MigrateTableLoad *tl, int64 rn, Datum source_values);
extern void migrate_route_insert_rejects(int n, Datum *keys, Datum *rows, Datum *messages,
										 Datum *details, const char *reason);
extern void migrate_route_insert_reject(const char *source_key, Datum source_row,
										bool source_row_null, const char *reason,
										const char *message, const char *detail,
										bool loaded);

/* cutover.c: reverse the swap of a run of mode 'cutover' (migrate_rollback()) */
extern void migrate_cutover_reverse(int64 run_id, bool force);

/* remote.c: libpq connections to postgres_fdw servers, declared in remote.h */

#endif							/* MIGRATE_H */
