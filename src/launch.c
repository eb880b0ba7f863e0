/*-------------------------------------------------------------------------
 *
 * launch.c
 *	  migrate_run(): checks the request, starts the run's background worker
 *	  and, if asked to, waits for it while relaying its progress.
 *
 * Everything that can be checked in the caller's session is checked here,
 * before a worker starts, so that mistakes get an error naming the plan or
 * table.  The worker cannot see the caller's uncommitted changes, so a plan
 * defined in the still-open transaction is refused rather than run with
 * rows the worker does not see.
 *
 * A run executes as its plan's owner, whoever calls: the caller must be a
 * member of the owner role (a superuser or a pg_cron job running alice's
 * plan runs it as alice), the checks here run as the owner, and the
 * workers connect as the bootstrap superuser only to become the owner at
 * once, for good (src/owner.c: the owner's SQL cannot SET ROLE back).  So
 * the owner needs no LOGIN: a NOLOGIN group role may own plans.
 *
 * The caller and its worker share one small dynamic shared memory segment
 * (MigrateRunShared): inputs, a cancel flag, the run id, the outcome and a
 * ring of progress lines.  A cancelled wait (statement_timeout, Ctrl-C)
 * asks the worker to stop at the next batch boundary.  While it waits, the
 * caller also writes the live progress lines of the tables being loaded
 * (migrate.progress_interval, progress.c).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/transam.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "storage/dsm.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "migrate.h"
#include "owner.h"
#include "slot.h"

PG_FUNCTION_INFO_V1(migrate_run);

static void check_owner(Oid owner, const char *plan);
static void check_request(const char *plan, ArrayType *tables, char *tables_out, const char *mode);
static char **query_rolled_back(const char *sql, int nargs, Oid *argtypes, Datum *args,
								 const char *nulls, int ncols);
static void check_findings(Oid self, const char *plan, const char *tables);
static void create_slots_first(Oid owner, const char *plan);
static void wait_for(MigrateRunShared *shared, BackgroundWorkerHandle *handle,
					 MigratePhase phase, uint32 *seen);
static void raise_worker_error(MigrateRunShared *shared);
static int64 start_and_wait(dsm_segment *seg, MigrateRunShared *shared, const char *plan,
							Oid owner, bool wait);

/*
 * The plan's owner still exists (regrole keeps no dependency: a dropped
 * role leaves its oid) and the caller is a member of it (42501).
 */
static void
check_owner(Oid owner, const char *plan)
{
	if (GetUserNameFromId(owner, true) == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("the owner of migration plan \"%s\" does not exist", plan),
				 errdetail("The plan's owner (role %u) was dropped; its SQL runs as its owner.", owner),
				 errhint("A superuser may give the plan a new owner: UPDATE migrate.plan SET owner = ...")));
	migrate_check_member(owner, plan);
}

/*
 * Validate plan and tables in the caller's transaction (SPI), as the
 * plan's owner (planning the mappings may evaluate the owner's functions).
 * Writes the resolved tables as an oid[] literal into tables_out.  Throws
 * with a clear errcode on anything wrong.
 */
static void
check_request(const char *plan, ArrayType *tables, char *tables_out, const char *mode)
{
	Oid			argtypes[2] = {TEXTOID, TEXTARRAYOID};
	Datum		args[2];
	char		nulls[2] = "  ";
	int			ret;
	uint64		i;

	if ((ret = SPI_connect()) != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed: %s", SPI_result_code_string(ret));

	args[0] = CStringGetTextDatum(plan);
	args[1] = tables ? PointerGetDatum(tables) : (Datum) 0;
	nulls[1] = tables ? ' ' : 'n';

	/* raises "plan does not exist" */
	ret = SPI_execute_with_args("SELECT migrate._plan($1)", 1, argtypes, args, nulls, true, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "reading migrate.plan failed: %s", SPI_result_code_string(ret));
	if (strcmp(mode, "incremental") == 0)
	{
		ret = SPI_execute_with_args("SELECT 1 FROM migrate.table_map WHERE plan = $1 AND capture <> 'none'",
									1, argtypes, args, nulls, true, 1);
		if (ret != SPI_OK_SELECT)
			elog(ERROR, "reading migrate.table_map failed: %s", SPI_result_code_string(ret));
		if (SPI_processed == 0)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("migration plan \"%s\" has no table with capture for an incremental run", plan),
					 errhint("Choose a capture per table with migrate_table(..., capture => 'watermark' | 'trigger' | 'slot' | 'diff'), or run mode => 'full'.")));
	}

	/*
	 * After a cutover the plan's tables are the live ones: a load or a sync
	 * would write into the application's tables, and its sources are the
	 * retired tables (a dry run too would read those).
	 */
	{
		ret = SPI_execute_with_args("SELECT c.run_id::pg_catalog.text, c.live_schema::pg_catalog.text"
									"  FROM migrate.cutover c WHERE c.plan = $1 AND c.state = 'swapped'"
									" ORDER BY c.run_id DESC LIMIT 1",
									1, argtypes, args, nulls, true, 1);
		if (ret != SPI_OK_SELECT)
			elog(ERROR, "reading migrate.cutover failed: %s", SPI_result_code_string(ret));
		if (SPI_processed > 0)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("migration plan \"%s\" was cut over (run %s): its tables are the live tables of schema \"%s\" now",
							plan, SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1),
							SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2)),
					 errhint("Roll the cutover back with migrate_rollback(%s) first, or plan the next migration under a new plan name.",
							 SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1))));
	}

	/*
	 * A file source reads server files as the plan's owner: say so now,
	 * not from a worker (DESIGN.md "File sources").
	 */
	ret = SPI_execute_with_args("SELECT p.owner::pg_catalog.text FROM migrate.plan p"
								" WHERE p.plan_name = $1 AND EXISTS (SELECT FROM migrate.table_map m"
								"   WHERE m.plan = p.plan_name AND m.options ? 'file')"
								"   AND NOT pg_catalog.pg_has_role(p.owner, 'pg_read_server_files', 'USAGE')",
								1, argtypes, args, nulls, true, 1);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "reading migrate.plan failed: %s", SPI_result_code_string(ret));
	if (SPI_processed > 0)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("owner %s of migration plan \"%s\" may not read server files, which its file sources need",
						SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1), plan),
				 errhint("A superuser can GRANT pg_read_server_files TO the plan's owner.")));

	if (tables)
	{
		char	   *lit;

		/* raises "table is not mapped in plan" */
		ret = SPI_execute_with_args("SELECT pg_catalog.array_agg((migrate._table_map($1, t)).target::pg_catalog.oid)::pg_catalog.text"
									"  FROM pg_catalog.unnest($2) t",
									2, argtypes, args, nulls, true, 0);
		if (ret != SPI_OK_SELECT || SPI_processed != 1)
			elog(ERROR, "resolving tables failed: %s", SPI_result_code_string(ret));
		lit = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
		if (lit == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("tables of migrate_run() for plan \"%s\" must not be empty", plan),
					 errhint("Pass NULL to run every table of the plan.")));
		if (strlen(lit) >= MIGRATE_TEXT_MAXLEN)
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("too many tables for one run of plan \"%s\"", plan),
					 errhint("Run the plan whole, or in several phases.")));
		strlcpy(tables_out, lit, MIGRATE_TEXT_MAXLEN);
	}

	ret = SPI_execute_with_args("SELECT pg_catalog.count(*) FROM migrate.table_map WHERE plan = $1",
								1, argtypes, args, nulls, true, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "reading migrate.table_map failed: %s", SPI_result_code_string(ret));
	{
		bool		isnull;

		if (DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)) == 0)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("migration plan \"%s\" has no tables", plan),
					 errhint("Map tables with migrate_table().")));
	}

	/* sources that disappeared since they were mapped */
	ret = SPI_execute_with_args("SELECT target::pg_catalog.text, source FROM migrate.table_map"
								" WHERE plan = $1 AND pg_catalog.to_regclass(source) IS NULL"
								"   AND ($2 IS NULL OR target = ANY ("
								"        SELECT (migrate._table_map($1, t)).target FROM pg_catalog.unnest($2) t))"
								" ORDER BY 1 LIMIT 1",
								2, argtypes, args, nulls, true, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "reading migrate.table_map failed: %s", SPI_result_code_string(ret));
	if (SPI_processed > 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("source relation %s of table %s in migration plan \"%s\" does not exist",
						SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2),
						SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1), plan),
				 errhint("Recreate the foreign table (IMPORT FOREIGN SCHEMA) or remap the table with migrate_table().")));

	/*
	 * Parse and type-check every mapping the run will use.  Planning the
	 * batch statements locks the targets; the check runs in a subtransaction
	 * that is rolled back, so those locks go with it and the worker (which
	 * may drop the targets' indexes) never waits for this session.  A sync
	 * pass is not checked again (its plan was, by the incremental run; a
	 * pass that cannot plan fails with the statement's error).
	 */
	if (strcmp(mode, "sync") != 0)
	{
		Oid			checktypes[2] = {TEXTOID, TEXTOID};
		Datum		checkargs[2] = {args[0], tables ? CStringGetTextDatum(tables_out) : (Datum) 0};

		(void) query_rolled_back("SELECT migrate._check_plan($1, $2::pg_catalog.oid[])",
								 2, checktypes, checkargs, nulls, 0);
	}

	/*
	 * The worker sees only committed rows: refuse a plan that this
	 * transaction has written and not committed yet.
	 */
	ret = SPI_execute_with_args("SELECT xmin FROM migrate.plan WHERE plan_name = $1"
								" UNION ALL SELECT xmin FROM migrate.table_map WHERE plan = $1"
								" UNION ALL SELECT xmin FROM migrate.column_map WHERE plan = $1"
								" UNION ALL SELECT xmin FROM migrate.rule WHERE plan = $1"
								" UNION ALL SELECT xmin FROM migrate.value_map",
								1, argtypes, args, nulls, true, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "reading the plan failed: %s", SPI_result_code_string(ret));
	for (i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		TransactionId xmin = DatumGetTransactionId(SPI_getbinval(SPI_tuptable->vals[i],
																  SPI_tuptable->tupdesc, 1, &isnull));

		if (TransactionIdIsCurrentTransactionId(xmin))
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("migration plan \"%s\" has changes that are not committed yet", plan),
					 errdetail("migrate_run() works in a background worker, which cannot see this transaction's uncommitted changes."),
					 errhint("COMMIT the plan first, then call migrate_run().")));
	}

	if ((ret = SPI_finish()) != SPI_OK_FINISH)
		elog(ERROR, "SPI_finish failed: %s", SPI_result_code_string(ret));
}

/*
 * Run a query in a subtransaction that is rolled back afterwards, so that
 * the locks its planning takes on the targets (and any temporary table it
 * makes) go with it and a worker never waits for this session.  Returns
 * the first ncols columns of its first row as strings (NULL for a NULL
 * value) in the caller's memory context, or NULL when it returned no row
 * or ncols is 0.  An error is rethrown after the rollback.  Needs SPI.
 */
static char **
query_rolled_back(const char *sql, int nargs, Oid *argtypes, Datum *args,
				  const char *nulls, int ncols)
{
	MemoryContext oldcxt = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;
	char	  **volatile row = NULL;	/* set inside PG_TRY */

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(oldcxt);
	PG_TRY();
	{
		int			ret = SPI_execute_with_args(sql, nargs, argtypes, args, nulls, false, 0);

		if (ret != SPI_OK_SELECT)
			elog(ERROR, "%s failed: %s", sql, SPI_result_code_string(ret));
		if (ncols > 0 && SPI_processed > 0)
		{
			char	  **values = MemoryContextAlloc(oldcxt, sizeof(char *) * ncols);

			for (int i = 0; i < ncols; i++)
			{
				char	   *v = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, i + 1);

				values[i] = v ? MemoryContextStrdup(oldcxt, v) : NULL;
			}
			row = values;
		}
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcxt);
		CurrentResourceOwner = oldowner;
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		edata = migrate_abort_subxact(oldcxt, oldowner);
		ReThrowError(edata);
	}
	PG_END_TRY();
	return row;
}

/*
 * A plan whose migrate_check() finds an error does not run (42P17), unless
 * the caller passed force => true.  Only the findings of the run's tables
 * count when it runs some (tables, an oid[] literal, or NULL for all).
 * Calls migrate_check() (in the extension's schema, the one of
 * migrate_run(), self) as the caller: it checks as the plan's owner
 * itself.  In a subtransaction rolled back afterwards, so that the locks
 * its planning took on the targets (and its temporary table) go with it.
 */
static void
check_findings(Oid self, const char *plan, const char *tables)
{
	Oid			argtypes[2] = {TEXTOID, TEXTOID};
	Datum		args[2];
	char		nulls[2] = "  ";
	char	  **first;
	int64		nerrors;
	char	   *table_name;
	char	   *column_name;
	char	   *message;
	int			ret;

	if ((ret = SPI_connect()) != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed: %s", SPI_result_code_string(ret));
	args[0] = CStringGetTextDatum(plan);
	args[1] = tables ? CStringGetTextDatum(tables) : (Datum) 0;
	nulls[1] = tables ? ' ' : 'n';
	first = query_rolled_back(psprintf("SELECT c.table_name, c.column_name, c.message,"
									   "       pg_catalog.count(*) OVER ()"
									   "  FROM %s.migrate_check($1) c"
									   " WHERE c.severity = 'error'"
									   "   AND ($2::pg_catalog.oid[] IS NULL OR c.table_name IN"
									   "        (SELECT o::pg_catalog.regclass::pg_catalog.text"
									   "           FROM pg_catalog.unnest($2::pg_catalog.oid[]) o))"
									   " LIMIT 1",
									   quote_identifier(get_namespace_name(get_func_namespace(self)))),
							  2, argtypes, args, nulls, 4);
	nerrors = first ? pg_strtoint64(first[3]) : 0;
	table_name = first ? first[0] : NULL;
	column_name = first ? first[1] : NULL;
	message = first ? first[2] : NULL;
	if (nerrors > 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_OBJECT_DEFINITION),
				 errmsg("migration plan \"%s\" has " INT64_FORMAT " error%s in migrate_check(): it does not run",
						plan, nerrors, nerrors == 1 ? "" : "s"),
				 errhint("The first: table %s%s%s: %s.  Fix the plan (see migrate_check(%s)), or run it anyway with migrate_run(..., force => true).",
						 table_name ? table_name : "(none)",
						 column_name ? ", column " : "", column_name ? column_name : "",
						 message ? message : "", quote_literal_cstr(plan))));
	if ((ret = SPI_finish()) != SPI_OK_FINISH)
		elog(ERROR, "SPI_finish failed: %s", SPI_result_code_string(ret));
}

/* Print the progress lines the worker queued since *seen (also database.c's job's). */
void
migrate_relay_notices(MigrateRunShared *shared, uint32 *seen)
{
	for (;;)
	{
		char		line[MIGRATE_NOTICE_MAXLEN];
		uint32		written;

		SpinLockAcquire(&shared->mutex);
		written = shared->notices_written;
		if (*seen == written)
		{
			SpinLockRelease(&shared->mutex);
			return;
		}
		/* a slow reader loses the oldest lines, never blocks the worker */
		if (written - *seen > MIGRATE_NOTICE_SLOTS)
			*seen = written - MIGRATE_NOTICE_SLOTS;
		strlcpy(line, shared->notices[*seen % MIGRATE_NOTICE_SLOTS], sizeof(line));
		(*seen)++;
		SpinLockRelease(&shared->mutex);

		ereport(NOTICE, (errmsg("%s", line)));
	}
}

/*
 * Sleep until the worker reaches phase (or finishes), relaying progress.
 * Waiting for the end, every migrate.progress_interval (the caller's, in
 * shared) it also queues the live progress lines of the tables being
 * loaded, read from what the workers committed (progress.c), so a line
 * comes even while one long batch runs.  Throws if the worker died
 * without saying how the run ended.
 */
static void
wait_for(MigrateRunShared *shared, BackgroundWorkerHandle *handle,
		 MigratePhase phase, uint32 *seen)
{
	/* live progress lines, every interval, when waiting for the end */
	bool		progress = shared->progress_interval > 0 && phase == MIGRATE_PHASE_FINISHED;
	int64		interval_us = (int64) shared->progress_interval * USECS_PER_SEC;
	TimestampTz next_progress = GetCurrentTimestamp() + interval_us;

	for (;;)
	{
		MigratePhase now;
		pid_t		pid;
		int64		run_id;
		long		timeout_ms = 1000L;

		migrate_relay_notices(shared, seen);
		SpinLockAcquire(&shared->mutex);
		now = shared->phase;
		run_id = shared->run_id;
		SpinLockRelease(&shared->mutex);
		if (now >= phase || now == MIGRATE_PHASE_FINISHED)
			return;

		if (progress)
		{
			TimestampTz t = GetCurrentTimestamp();

			if (t >= next_progress)
			{
				if (now == MIGRATE_PHASE_RUNNING && run_id > 0)
				{
					progress = migrate_progress_report(shared, run_id);
					migrate_relay_notices(shared, seen);
				}
				next_progress = t + interval_us;
			}
			timeout_ms = Min(timeout_ms,
							 Max(1L, (long) ((next_progress - GetCurrentTimestamp()) / 1000)));
		}

		if (GetBackgroundWorkerPid(handle, &pid) == BGWH_STOPPED)
		{
			/* it may have reported just before exiting */
			SpinLockAcquire(&shared->mutex);
			now = shared->phase;
			SpinLockRelease(&shared->mutex);
			if (now >= phase || now == MIGRATE_PHASE_FINISHED)
				continue;
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("the background worker of migration plan \"%s\" exited unexpectedly%s",
							shared->plan, shared->run_id > 0 ? "" : ", before it started the run"),
					 shared->run_id > 0 ?
					 errdetail("Run " INT64_FORMAT " is left running: migrate_status() shows it interrupted, migrate_resume(" INT64_FORMAT ") continues it.",
							   shared->run_id, shared->run_id) : 0,
					 shared->run_id > 0 ?
					 errhint("See the server log: the worker was terminated or crashed.") :
					 errhint("See the server log: the migrate library could not be loaded by the worker (is it installed in $libdir?), or the worker was terminated.")));
		}

		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 timeout_ms, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
}

/* Re-raise the worker's error in this session, with its SQLSTATE. */
static void
raise_worker_error(MigrateRunShared *shared)
{
	ereport(ERROR,
			(errcode(shared->sqlerrcode),
			 errmsg("%s", shared->errmsg),
			 shared->errdetail[0] ? errdetail("%s", shared->errdetail) : 0,
			 shared->errhint[0] ? errhint("%s", shared->errhint) : 0,
			 shared->errctx[0] ? errcontext("%s", shared->errctx) : 0,
			 shared->run_id > 0 ?
			 errcontext("migrate run " INT64_FORMAT " of plan \"%s\"", shared->run_id, shared->plan) : 0));
}

/*
 * An incremental run's slots (capture => 'slot') are created here, as the
 * owner, before anything gives this transaction an id: creating a logical
 * slot waits for every transaction of the source's cluster that has one,
 * and on a loopback source this one would wait for the worker meanwhile
 * (the checks below write temporary objects).  The worker finds them.
 */
static void
create_slots_first(Oid owner, const char *plan)
{
	Oid			argtypes[1] = {TEXTOID};
	Datum		args[1] = {CStringGetTextDatum(plan)};
	MigrateIdentity saved;
	int			ret;

	migrate_become_owner(owner, &saved);
	if ((ret = SPI_connect()) != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed: %s", SPI_result_code_string(ret));
	ret = SPI_execute_with_args("SELECT pg_catalog.to_regclass(source)::pg_catalog.oid FROM migrate.table_map"
								" WHERE plan = $1 AND capture = 'slot'", 1, argtypes, args, NULL, true, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "reading migrate.table_map failed: %s", SPI_result_code_string(ret));
	if (SPI_processed > 0 && TransactionIdIsValid(GetTopTransactionIdIfAny()))
		ereport(ERROR,
				(errcode(ERRCODE_ACTIVE_SQL_TRANSACTION),
				 errmsg("an incremental run of migration plan \"%s\" cannot start in a transaction that has written", plan),
				 errdetail("Creating its replication slot waits for every transaction that has written, this one included."),
				 errhint("Call migrate_run() in a transaction of its own.")));
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		Oid			ftrelid = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));

		if (!isnull)
			(void) migrate_slot_create(ftrelid, migrate_slot_name(plan));
	}
	if ((ret = SPI_finish()) != SPI_OK_FINISH)
		elog(ERROR, "SPI_finish failed: %s", SPI_result_code_string(ret));
	migrate_restore_identity(&saved);
}

/*
 * migrate_run(plan, mode, tables, parallel, dry_run, wait, force) returns bigint
 *
 * Refuses a plan whose migrate_check() finds an error unless force.
 * Returns the run id.  With wait (the default) returns when the run has
 * ended, raising the run's error if it failed.
 */
Datum
migrate_run(PG_FUNCTION_ARGS)
{
	char	   *plan;
	char	   *mode = PG_ARGISNULL(1) ? "full" : text_to_cstring(PG_GETARG_TEXT_PP(1));
	ArrayType  *tables = PG_ARGISNULL(2) ? NULL : PG_GETARG_ARRAYTYPE_P(2);
	bool		dry_run = PG_ARGISNULL(4) ? false : PG_GETARG_BOOL(4);
	bool		wait = PG_ARGISNULL(5) ? true : PG_GETARG_BOOL(5);
	/* the 0.1 to 0.4 SQL had no force: never called so (version check) */
	bool		force = PG_NARGS() > 6 && !PG_ARGISNULL(6) && PG_GETARG_BOOL(6);
	dsm_segment *seg;
	MigrateRunShared *shared;
	Oid			owner;
	MigrateIdentity saved;

	migrate_check_version();
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("migration plan name must not be null")));
	plan = text_to_cstring(PG_GETARG_TEXT_PP(0));
	if (strlen(plan) > MIGRATE_PLAN_MAXLEN)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("migration plan \"%s\" does not exist", plan)));

	if (strcmp(mode, "full") != 0 && strcmp(mode, "incremental") != 0 && strcmp(mode, "sync") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("run mode \"%s\" is not supported", mode),
				 errhint("Use mode => 'full', or 'incremental' to arm the tables' capture before the load (then migrate_sync()).")));
	if (strcmp(mode, "full") != 0 && dry_run)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a dry run of migration plan \"%s\" cannot be of mode %s", plan, mode),
				 errhint("Dry-run the plan with mode => 'full'.")));
	if (!PG_ARGISNULL(3) && (PG_GETARG_INT32(3) < 1 || PG_GETARG_INT32(3) > MIGRATE_MAX_PARALLEL ||
							 PG_GETARG_INT32(3) > migrate_max_workers_total))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("parallel => %d is out of range for migration plan \"%s\"", PG_GETARG_INT32(3), plan),
				 errhint("Pass 1 to %d workers (the coordinator counts as one; migrate.max_workers_total is %d), or omit it to use migrate.max_workers.",
						 Min(MIGRATE_MAX_PARALLEL, migrate_max_workers_total), migrate_max_workers_total)));
	if (RecoveryInProgress())
		ereport(ERROR,
				(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
				 errmsg("cannot run migration plan \"%s\" during recovery", plan)));

	/*
	 * The run is the owner's.  A plan the caller may not see is left to
	 * check_request, as the caller, to report as missing.
	 */
	owner = migrate_plan_owner(plan, true);
	if (OidIsValid(owner))
		check_owner(owner, plan);
	if (OidIsValid(owner) && strcmp(mode, "incremental") == 0)
		create_slots_first(owner, plan);

	seg = dsm_create(sizeof(MigrateRunShared), 0);
	shared = dsm_segment_address(seg);
	memset(shared, 0, sizeof(MigrateRunShared));
	SpinLockInit(&shared->mutex);
	strlcpy(shared->search_path, migrate_caller_search_path(), sizeof(shared->search_path));

	/*
	 * Check as the owner, under the caller's search_path as the workers
	 * will run (migrate_run itself pins pg_catalog, pg_temp); an error
	 * restores identity and setting with the (sub)transaction.
	 */
	{
		int			level = NewGUCNestLevel();

		(void) set_config_option("search_path", shared->search_path, PGC_USERSET, PGC_S_SESSION,
								 GUC_ACTION_SAVE, true, 0, false);
		if (OidIsValid(owner))
			migrate_become_owner(owner, &saved);
		check_request(plan, tables, shared->tables, mode);
		if (OidIsValid(owner))
			migrate_restore_identity(&saved);
		if (OidIsValid(owner) && !force && strcmp(mode, "sync") != 0)
			check_findings(fcinfo->flinfo->fn_oid, plan, tables ? shared->tables : NULL);
		AtEOXact_GUC(true, level);
	}
	if (!OidIsValid(owner))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("migration plan \"%s\" does not exist", plan)));

	shared->dry_run = dry_run;
	shared->parallel = PG_ARGISNULL(3) ? Min(migrate_max_workers, migrate_max_workers_total) :
		PG_GETARG_INT32(3);
	shared->has_tables = tables != NULL;
	strlcpy(shared->mode, mode, sizeof(shared->mode));
	PG_RETURN_INT64(start_and_wait(seg, shared, plan, owner, wait));
}

/*
 * Start a background worker of this library that gets seg's handle and
 * notifies this backend, and wait for it to be running.  what and while
 * name it in the errors: "could not start <what> \"plan\"", "the server
 * shut down while starting <while_doing> \"plan\"".  Also database.c's job.
 */
/*
 * A dynamic background worker of this library, connected to a database,
 * never restarted, that notifies this backend: the fields every migrate
 * worker shares (the run's coordinator, its helpers, migrate_database's
 * job).  The caller sets bgw_main_arg and bgw_extra.
 */
void
migrate_worker_template(BackgroundWorker *worker, const char *function, const char *type,
						const char *name)
{
	memset(worker, 0, sizeof(*worker));
	worker->bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker->bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker->bgw_restart_time = BGW_NEVER_RESTART;
	snprintf(worker->bgw_library_name, BGW_MAXLEN, "migrate");
	snprintf(worker->bgw_function_name, BGW_MAXLEN, "%s", function);
	snprintf(worker->bgw_name, BGW_MAXLEN, "%s", name);
	snprintf(worker->bgw_type, BGW_MAXLEN, "%s", type);
	worker->bgw_notify_pid = MyProcPid;
}

BackgroundWorkerHandle *
migrate_start_worker(dsm_segment *seg, const char *function, const char *type,
					 const char *name, const char *what, const char *while_doing,
					 const char *plan)
{
	BackgroundWorker worker;
	BackgroundWorkerHandle *handle;
	pid_t		pid;

	migrate_worker_template(&worker, function, type, name);
	worker.bgw_main_arg = UInt32GetDatum(dsm_segment_handle(seg));

	if (!RegisterDynamicBackgroundWorker(&worker, &handle))
		ereport(ERROR,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("could not start %s \"%s\"", what, plan),
				 errdetail("All background worker slots are in use."),
				 errhint("Raise max_worker_processes (now %d) and restart the server, or wait for other background workers to finish.",
						 max_worker_processes)));
	if (WaitForBackgroundWorkerStartup(handle, &pid) == BGWH_POSTMASTER_DIED)
		ereport(ERROR,
				(errcode(ERRCODE_ADMIN_SHUTDOWN),
				 errmsg("the server shut down while starting %s \"%s\"", while_doing, plan)));
	return handle;
}

/*
 * Start the coordinator of a run described by shared (inputs filled in
 * but for the caller's and the owner's identity) and wait for it to have
 * the run going (wait false) or ended.  Returns the run id.
 */
static int64
start_and_wait(dsm_segment *seg, MigrateRunShared *shared, const char *plan, Oid owner,
			   bool wait)
{
	BackgroundWorkerHandle *handle;
	uint32		seen = 0;
	int64		run_id;
	bool		failed;

	shared->database_id = MyDatabaseId;
	shared->role_id = GetUserId();
	shared->owner_id = owner;
	shared->batch_size = migrate_batch_size;
	shared->batch_bytes = migrate_batch_bytes;
	shared->max_workers_total = migrate_max_workers_total;
	strlcpy(shared->maintenance_work_mem, GetConfigOptionByName("maintenance_work_mem", NULL, false),
			sizeof(shared->maintenance_work_mem));
	shared->progress_interval = migrate_progress_interval;
	strlcpy(shared->plan, plan, sizeof(shared->plan));
	shared->caller_latch = MyLatch;
	shared->phase = MIGRATE_PHASE_STARTING;

	handle = migrate_start_worker(seg, "migrate_worker_main", "migrate worker",
								  psprintf("migrate worker for plan %s", plan),
								  "a background worker for migration plan", "a run of plan", plan);

	PG_TRY();
	{
		wait_for(shared, handle, wait ? MIGRATE_PHASE_FINISHED : MIGRATE_PHASE_RUNNING, &seen);
	}
	PG_CATCH();
	{
		/* our wait was cancelled: ask the run to stop at a batch boundary */
		SpinLockAcquire(&shared->mutex);
		shared->cancel_requested = true;
		shared->caller_latch = NULL;
		SpinLockRelease(&shared->mutex);
		PG_RE_THROW();
	}
	PG_END_TRY();

	SpinLockAcquire(&shared->mutex);
	shared->caller_latch = NULL;
	run_id = shared->run_id;
	failed = shared->failed;
	SpinLockRelease(&shared->mutex);

	migrate_relay_notices(shared, &seen);
	if (failed)
		raise_worker_error(shared);

	/* the worker keeps the segment mapped for as long as it runs */
	dsm_detach(seg);
	return run_id;
}

PG_FUNCTION_INFO_V1(migrate_resume);

/*
 * migrate_resume(run bigint, wait boolean) returns bigint
 *
 * Continue an interrupted, cancelled or failed run from its checkpoints, in
 * a new coordinator (with the run's own parallel, batch size and dry_run).
 */
Datum
migrate_resume(PG_FUNCTION_ARGS)
{
	int64		run_id;
	bool		wait = PG_ARGISNULL(1) ? true : PG_GETARG_BOOL(1);
	dsm_segment *seg;
	MigrateRunShared *shared;
	char	   *plan;
	char	   *state;
	Oid			argtypes[1] = {INT8OID};
	Datum		args[1];
	int			ret;
	Oid			owner;

	migrate_check_version();
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("run id of migrate_resume() must not be null")));
	run_id = PG_GETARG_INT64(0);
	if (RecoveryInProgress())
		ereport(ERROR,
				(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
				 errmsg("cannot resume migration run " INT64_FORMAT " during recovery", run_id)));

	if ((ret = SPI_connect()) != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed: %s", SPI_result_code_string(ret));
	args[0] = Int64GetDatum(run_id);
	/* it resumes as its owner: 42704 for a run the caller may not see */
	owner = migrate_run_owner(run_id, false);
	/*
	 * A "running" run whose plan lock nobody holds has lost its worker: the
	 * new coordinator marks it interrupted and continues it.
	 */
	ret = SPI_execute_with_args("SELECT r.plan, CASE WHEN r.state = 'running' AND NOT migrate._plan_locked(r.plan)"
								"       THEN 'interrupted' ELSE r.state END"
								"  FROM migrate.run r WHERE r.run_id = $1",
								1, argtypes, args, NULL, false, 1);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "reading migrate.run failed: %s", SPI_result_code_string(ret));
	if (SPI_processed != 1)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("migration run " INT64_FORMAT " does not exist", run_id),
				 errhint("See migrate.run for the runs there are.")));
	plan = pstrdup(SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1));
	state = pstrdup(SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2));
	check_owner(owner, plan);
	if (strcmp(state, "running") == 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_IN_USE),
				 errmsg("migration run " INT64_FORMAT " of plan \"%s\" is still running", run_id, plan),
				 errhint("Wait for it, or stop it with migrate_cancel(" INT64_FORMAT ") first.", run_id)));
	if (strcmp(state, "succeeded") == 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("migration run " INT64_FORMAT " of plan \"%s\" succeeded: there is nothing to resume",
						run_id, plan),
				 errhint("Start a new run with migrate_run().")));
	if ((ret = SPI_finish()) != SPI_OK_FINISH)
		elog(ERROR, "SPI_finish failed: %s", SPI_result_code_string(ret));
	seg = dsm_create(sizeof(MigrateRunShared), 0);
	shared = dsm_segment_address(seg);
	memset(shared, 0, sizeof(MigrateRunShared));
	SpinLockInit(&shared->mutex);
	shared->resume_run_id = run_id;
	strlcpy(shared->mode, "full", sizeof(shared->mode));
	PG_RETURN_INT64(start_and_wait(seg, shared, plan, owner, wait));
}
