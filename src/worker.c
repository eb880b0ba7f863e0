/*-------------------------------------------------------------------------
 *
 * worker.c
 *	  The background worker that carries out one run of a plan.
 *
 * The worker owns the run's bookkeeping: it takes the plan's advisory lock
 * (one run per plan; a second one is refused), marks runs of the plan that
 * a crash or a kill left "running" as interrupted, commits the run row and
 * one run_table row per table in foreign-key order, then loads the tables
 * one after the other (load.c) and records the outcome.  It runs as the role
 * that called migrate_run(), in that role's database, with its search_path.
 *
 * Every catalog touch is its own transaction.  An error anywhere ends the
 * run: the table and the run are marked failed in a fresh transaction and
 * the error (with its SQLSTATE, detail and hint) is handed to the waiting
 * backend through the shared segment, which re-raises it.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <stdio.h>

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "storage/dsm.h"
#include "storage/ipc.h"
#include "storage/lock.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"

#include "migrate.h"

static int64 worker_start_run(MigrateRunShared *shared);
static const char *worker_run_tables(MigrateRunShared *shared, int64 run_id);
static void worker_finish_run(MigrateRunShared *shared, int64 run_id, const char *state);
static void worker_fail_run(MigrateRunShared *shared, int64 run_id, ErrorData *edata);
static void worker_report(MigrateRunShared *shared, MigratePhase phase, int64 run_id,
						  ErrorData *edata);
static void begin_catalog_txn(void);
static void end_catalog_txn(void);

static Oid	current_target = InvalidOid;	/* table being loaded, for failures */
static int64 peak_anon_kb = 0;	/* highest RssAnon seen */

/* Start a transaction with a snapshot and SPI, as every catalog touch does. */
static void
begin_catalog_txn(void)
{
	int			ret;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	if ((ret = SPI_connect()) != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed: %s", SPI_result_code_string(ret));
	PushActiveSnapshot(GetTransactionSnapshot());
}

static void
end_catalog_txn(void)
{
	int			ret;

	if ((ret = SPI_finish()) != SPI_OK_FINISH)
		elog(ERROR, "SPI_finish failed: %s", SPI_result_code_string(ret));
	PopActiveSnapshot();
	CommitTransactionCommand();
}

/*
 * Sample this process's private memory (RssAnon) and keep the peak.  The
 * bulk of a backend's RSS is shared buffers, which say nothing about how
 * much the run itself holds.
 */
void
migrate_worker_sample_memory(void)
{
	FILE	   *f = fopen("/proc/self/status", "r");
	char		line[256];

	if (f == NULL)
		return;
	while (fgets(line, sizeof(line), f))
	{
		long		kb;

		if (sscanf(line, "RssAnon: %ld kB", &kb) == 1)
		{
			if (kb > peak_anon_kb)
				peak_anon_kb = kb;
			break;
		}
	}
	fclose(f);
}

/*
 * Queue a progress line for the waiting backend (which prints it as a
 * NOTICE) and write it to the server log.
 */
void
migrate_worker_notice(MigrateRunShared *shared, const char *fmt,...)
{
	char		buf[MIGRATE_NOTICE_MAXLEN];
	va_list		ap;
	Latch	   *latch;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);

	elog(LOG, "migrate: %s", buf);

	SpinLockAcquire(&shared->mutex);
	strlcpy(shared->notices[shared->notices_written % MIGRATE_NOTICE_SLOTS], buf,
			MIGRATE_NOTICE_MAXLEN);
	shared->notices_written++;
	latch = shared->caller_latch;
	SpinLockRelease(&shared->mutex);
	if (latch)
		SetLatch(latch);
}

/*
 * Has anyone asked this run to stop?  The launching backend (its query was
 * cancelled) through shared memory, or any session through
 * migrate_cancel().  Needs SPI and a transaction.
 */
bool
migrate_worker_cancel_requested(MigrateRunShared *shared, int64 run_id)
{
	Oid			argtypes[1] = {INT8OID};
	Datum		args[1] = {Int64GetDatum(run_id)};
	bool		requested;
	bool		isnull;
	int			ret;

	SpinLockAcquire(&shared->mutex);
	requested = shared->cancel_requested;
	SpinLockRelease(&shared->mutex);
	if (requested)
		return true;

	ret = SPI_execute_with_args("SELECT cancel_requested FROM migrate.run WHERE run_id = $1",
								1, argtypes, args, NULL, true, 1);
	if (ret != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "reading migrate.run failed: %s", SPI_result_code_string(ret));
	return DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

/* Tell the launching backend where the run stands, and wake it. */
static void
worker_report(MigrateRunShared *shared, MigratePhase phase, int64 run_id,
			  ErrorData *edata)
{
	Latch	   *latch;

	/*
	 * A finished run gives up the plan's lock before the caller hears of it,
	 * so that a migrate_run() right after this one is not refused.
	 */
	if (phase == MIGRATE_PHASE_FINISHED)
		LockReleaseAll(USER_LOCKMETHOD, true);

	SpinLockAcquire(&shared->mutex);
	shared->phase = phase;
	shared->run_id = run_id;
	if (edata)
	{
		shared->failed = true;
		shared->sqlerrcode = edata->sqlerrcode;
		strlcpy(shared->errmsg, edata->message ? edata->message : "", MIGRATE_TEXT_MAXLEN);
		strlcpy(shared->errdetail, edata->detail ? edata->detail : "", MIGRATE_TEXT_MAXLEN);
		strlcpy(shared->errhint, edata->hint ? edata->hint : "", MIGRATE_TEXT_MAXLEN);
		strlcpy(shared->errctx, edata->context ? edata->context : "", MIGRATE_TEXT_MAXLEN);
	}
	latch = shared->caller_latch;
	SpinLockRelease(&shared->mutex);
	if (latch)
		SetLatch(latch);
}

/*
 * Take the plan's lock and commit the run's rows.  Returns the run id, or 0
 * when another run of the plan holds the lock (reported to the caller).
 */
static int64
worker_start_run(MigrateRunShared *shared)
{
	Oid			argtypes[6] = {TEXTOID, INT4OID, INT4OID, BOOLOID, TEXTOID, TEXTOID};
	Datum		args[6];
	char		nulls[6] = "      ";
	bool		isnull;
	int64		run_id;
	int			ret;

	begin_catalog_txn();

	args[0] = CStringGetTextDatum(shared->plan);
	args[1] = Int32GetDatum(MIGRATE_LOCK_CLASS);
	ret = SPI_execute_with_args("SELECT pg_try_advisory_lock($2, hashtext($1))",
								2, argtypes, args, NULL, false, 1);
	if (ret != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "taking the plan lock failed: %s", SPI_result_code_string(ret));
	if (!DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)))
	{
		char	   *other = NULL;

		ret = SPI_execute_with_args("SELECT max(run_id)::text FROM migrate.run"
									" WHERE plan = $1 AND state = 'running'",
									1, argtypes, args, NULL, true, 1);
		if (ret == SPI_OK_SELECT && SPI_processed == 1)
			other = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_IN_USE),
				 errmsg("migration plan \"%s\" is already running%s%s%s", shared->plan,
						other ? " (run " : "", other ? other : "", other ? ")" : ""),
				 errdetail("Only one run of a plan may be active at a time."),
				 errhint("Wait for it to finish, or stop it with migrate_cancel(%s).",
						 other ? other : "run_id")));
	}

	/* we hold the lock: any run still "running" died without finishing */
	ret = SPI_execute_with_args("WITH r AS (UPDATE migrate.run SET state = 'interrupted',"
								"   finished_at = now(), error = 'the worker ended without finishing (server crash or terminated)'"
								" WHERE plan = $1 AND state = 'running' RETURNING run_id)"
								" UPDATE migrate.run_table t SET state = 'interrupted' FROM r"
								" WHERE t.run_id = r.run_id AND t.state IN ('pending', 'running')",
								1, argtypes, args, NULL, false, 0);
	if (ret != SPI_OK_UPDATE)
		elog(ERROR, "marking interrupted runs failed: %s", SPI_result_code_string(ret));

	args[1] = Int32GetDatum(MyProcPid);
	args[2] = Int32GetDatum(shared->batch_size);
	args[3] = BoolGetDatum(shared->dry_run);
	args[4] = CStringGetTextDatum(shared->mode);
	args[5] = shared->has_tables ? CStringGetTextDatum(shared->tables) : (Datum) 0;
	nulls[5] = shared->has_tables ? ' ' : 'n';
	ret = SPI_execute_with_args("INSERT INTO migrate.run (plan, mode, dry_run, worker_pid, batch_size, tables)"
								" SELECT $1, $5, $4, $2, $3, (SELECT array_agg(o::regclass::text) FROM unnest($6::oid[]) o)"
								"   FROM migrate.plan WHERE plan_name = $1"
								" RETURNING run_id",
								6, argtypes, args, nulls, false, 0);
	if (ret != SPI_OK_INSERT_RETURNING)
		elog(ERROR, "inserting into migrate.run failed: %s", SPI_result_code_string(ret));
	if (SPI_processed != 1)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("migration plan \"%s\" does not exist", shared->plan),
				 errhint("It was dropped after migrate_run() was called.")));
	run_id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));

	/*
	 * Tables in foreign-key order: a table's depth is the longest chain of
	 * plan tables it references; parents load before children.  Cycles are
	 * cut where they close (their rows may then be refused and rejected).
	 */
	args[1] = Int64GetDatum(run_id);
	argtypes[1] = INT8OID;
	ret = SPI_execute_with_args("WITH RECURSIVE t AS ("
								"   SELECT target::oid AS rel, source FROM migrate.table_map"
								"    WHERE plan = $1 AND ($6::oid[] IS NULL OR target::oid = ANY ($6::oid[]))),"
								" e AS (SELECT DISTINCT conrelid AS child, confrelid AS parent"
								"   FROM pg_catalog.pg_constraint WHERE contype = 'f'"
								"    AND conrelid IN (SELECT rel FROM t) AND confrelid IN (SELECT rel FROM t)"
								"    AND conrelid <> confrelid),"
								" d(rel, depth, path) AS ("
								"   SELECT rel, 0, ARRAY[rel] FROM t"
								"   UNION ALL"
								"   SELECT e.child, d.depth + 1, d.path || e.child FROM d JOIN e ON e.parent = d.rel"
								"    WHERE e.child <> ALL (d.path))"
								" INSERT INTO migrate.run_table (run_id, target, source, load_order)"
								" SELECT $2, t.rel, t.source, row_number() OVER (ORDER BY o.depth, t.rel::regclass::text)"
								"   FROM t JOIN (SELECT rel, max(depth) AS depth FROM d GROUP BY rel) o USING (rel)",
								6, argtypes, args, nulls, false, 0);
	if (ret != SPI_OK_INSERT)
		elog(ERROR, "inserting into migrate.run_table failed: %s", SPI_result_code_string(ret));

	ret = SPI_execute_with_args("INSERT INTO migrate.event (run_id, plan, event, details)"
								" VALUES ($2, $1, 'run started', $5 || CASE WHEN $4 THEN ', dry run' ELSE '' END)",
								6, argtypes, args, nulls, false, 0);
	if (ret != SPI_OK_INSERT)
		elog(ERROR, "inserting into migrate.event failed: %s", SPI_result_code_string(ret));

	end_catalog_txn();
	return run_id;
}

/* Load the run's tables in order; returns the run's final state. */
static const char *
worker_run_tables(MigrateRunShared *shared, int64 run_id)
{
	Oid			argtypes[1] = {INT8OID};
	Datum		args[1] = {Int64GetDatum(run_id)};
	Oid		   *targets;
	int			ntargets;
	bool		cancelled = false;
	int			ret;

	begin_catalog_txn();
	ret = SPI_execute_with_args("SELECT target::oid FROM migrate.run_table WHERE run_id = $1"
								" ORDER BY load_order", 1, argtypes, args, NULL, true, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "reading migrate.run_table failed: %s", SPI_result_code_string(ret));
	ntargets = SPI_processed;
	targets = MemoryContextAlloc(TopMemoryContext, sizeof(Oid) * Max(ntargets, 1));
	for (int i = 0; i < ntargets; i++)
	{
		bool		isnull;

		targets[i] = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[i],
													SPI_tuptable->tupdesc, 1, &isnull));
	}
	end_catalog_txn();

	migrate_worker_notice(shared, "run " INT64_FORMAT " of plan \"%s\": %d table%s%s",
						  run_id, shared->plan, ntargets, ntargets == 1 ? "" : "s",
						  shared->dry_run ? " (dry run: no target row is written)" : "");

	for (int i = 0; i < ntargets && !cancelled; i++)
	{
		current_target = targets[i];
		cancelled = !migrate_load_table(shared, run_id, targets[i], shared->batch_size,
										shared->dry_run);
	}
	current_target = InvalidOid;
	pfree(targets);
	return cancelled ? "cancelled" : "succeeded";
}

/* Record the run's end (succeeded or cancelled) and tell the caller. */
static void
worker_finish_run(MigrateRunShared *shared, int64 run_id, const char *state)
{
	Oid			argtypes[3] = {INT8OID, TEXTOID, INT8OID};
	Datum		args[3];
	int			ret;

	migrate_worker_sample_memory();
	begin_catalog_txn();
	args[0] = Int64GetDatum(run_id);
	args[1] = CStringGetTextDatum(state);
	args[2] = Int64GetDatum(peak_anon_kb);
	ret = SPI_execute_with_args("WITH r AS (UPDATE migrate.run SET state = $2, finished_at = now(),"
								"   peak_memory_kb = $3 WHERE run_id = $1 RETURNING plan),"
								" t AS (UPDATE migrate.run_table SET state = 'cancelled'"
								"   WHERE run_id = $1 AND state IN ('pending', 'running'))"
								" INSERT INTO migrate.event (run_id, plan, event)"
								" SELECT $1, plan, 'run ' || $2 FROM r",
								3, argtypes, args, NULL, false, 0);
	if (ret != SPI_OK_INSERT)
		elog(ERROR, "recording the end of run " INT64_FORMAT " failed: %s", run_id,
			 SPI_result_code_string(ret));
	end_catalog_txn();

	migrate_worker_notice(shared, "run " INT64_FORMAT " %s", run_id, state);
	worker_report(shared, MIGRATE_PHASE_FINISHED, run_id, NULL);
}

/*
 * Record a failed run (if it got as far as having a row) and hand the error
 * to the caller.  Runs after AbortCurrentTransaction.
 */
static void
worker_fail_run(MigrateRunShared *shared, int64 run_id, ErrorData *edata)
{
	if (run_id > 0)
	{
		PG_TRY();
		{
			Oid			argtypes[4] = {INT8OID, TEXTOID, OIDOID, INT8OID};
			Datum		args[4];
			int			ret;

			migrate_worker_sample_memory();
			begin_catalog_txn();
			args[0] = Int64GetDatum(run_id);
			args[1] = CStringGetTextDatum(edata->message ? edata->message : "unknown error");
			args[2] = ObjectIdGetDatum(current_target);
			args[3] = Int64GetDatum(peak_anon_kb);
			ret = SPI_execute_with_args("WITH r AS (UPDATE migrate.run SET state = 'failed', finished_at = now(),"
										"   error = $2, peak_memory_kb = $4 WHERE run_id = $1 RETURNING plan),"
										" t AS (UPDATE migrate.run_table SET state = 'failed', error = $2,"
										"   finished_at = now() WHERE run_id = $1 AND target = $3)"
										" INSERT INTO migrate.event (run_id, plan, event, details)"
										" SELECT $1, plan, 'run failed', $2 FROM r",
										4, argtypes, args, NULL, false, 0);
			if (ret != SPI_OK_INSERT)
				elog(ERROR, "recording the failure of run " INT64_FORMAT " failed: %s",
					 run_id, SPI_result_code_string(ret));
			end_catalog_txn();
		}
		PG_CATCH();
		{
			/* the error itself still reaches the caller and the log */
			EmitErrorReport();
			FlushErrorState();
			AbortCurrentTransaction();
		}
		PG_END_TRY();
	}
	worker_report(shared, MIGRATE_PHASE_FINISHED, run_id, edata);
}

/*
 * Entry point, registered by migrate_run().  main_arg is the handle of the
 * shared segment describing the run.
 */
void
migrate_worker_main(Datum main_arg)
{
	dsm_segment *seg;
	MigrateRunShared *shared;
	volatile int64 run_id = 0;	/* set in PG_TRY, read in PG_CATCH */

	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	seg = dsm_attach(DatumGetUInt32(main_arg));
	if (seg == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("migrate worker could not map its shared memory segment"),
				 errdetail("The backend that called migrate_run() went away before the worker started.")));
	shared = dsm_segment_address(seg);

	BackgroundWorkerInitializeConnectionByOid(shared->database_id, shared->role_id, 0);
	SetConfigOption("application_name", "migrate worker", PGC_USERSET, PGC_S_SESSION);
	SetConfigOption("search_path", shared->search_path, PGC_USERSET, PGC_S_SESSION);
	pgstat_report_appname("migrate worker");
	pgstat_report_activity(STATE_RUNNING, psprintf("migrate: starting a run of plan %s",
												   shared->plan));

	PG_TRY();
	{
		const char *state;

		run_id = worker_start_run(shared);
		worker_report(shared, MIGRATE_PHASE_RUNNING, run_id, NULL);
		state = worker_run_tables(shared, run_id);
		worker_finish_run(shared, run_id, state);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		HOLD_INTERRUPTS();
		MemoryContextSwitchTo(TopMemoryContext);
		edata = CopyErrorData();
		EmitErrorReport();
		FlushErrorState();
		AbortCurrentTransaction();
		migrate_route_end();
		RESUME_INTERRUPTS();
		worker_fail_run(shared, run_id, edata);
	}
	PG_END_TRY();

	pgstat_report_activity(STATE_IDLE, NULL);
	dsm_detach(seg);
	proc_exit(0);
}
