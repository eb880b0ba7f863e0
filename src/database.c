/*-------------------------------------------------------------------------
 *
 * database.c
 *	  migrate_database(): pgloader's one command in SQL.  Plans, imports,
 *	  creates the missing target tables, checks, runs, verifies and
 *	  reports a whole source database in one call, in a background job.
 *
 * The steps need their own transactions: a run's workers see only
 * committed tables and plans (launch.c refuses a plan this transaction
 * wrote), so the tables automap creates must be committed before the run
 * starts.  A function cannot commit, so migrate_database() starts a job
 * (a background worker) that connects as the caller and runs the steps
 * (sql/database.sql) in a transaction each:
 *
 *	 1. migrate._database_prepare: plan, import, automap with
 *		create_missing, check; stops on errors (nothing is left behind);
 *	 2. migrate_run(plan, parallel): the run, its NOTICE progress;
 *	 3. migrate._database_finish: identity sequences moved past the loaded
 *		keys, migrate_verify, migrate_report.
 *
 * The caller waits and prints what the job says: every NOTICE and WARNING
 * the job's SQL raises (migrate_run's progress lines included) goes
 * through an emit_log_hook into the ring of progress lines of the shared
 * segment (MigrateRunShared, as for a run), and an error comes back with
 * its SQLSTATE.  A cancelled wait (Ctrl-C, statement_timeout) cancels the
 * job's statement, which stops its run at the next batch boundary.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <signal.h>

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "parser/parse_func.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "storage/dsm.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/wait_event.h"

#include "migrate.h"
#include "owner.h"

/* the caller's settings a job takes over (those migrate_run reads) */
static const char *const job_settings[] = {
	"migrate.batch_size", "migrate.batch_bytes", "migrate.max_workers_total", "migrate.copy_source",
	"migrate.copy_stream", "migrate.progress_interval", "maintenance_work_mem"
};

#define JOB_NSETTINGS lengthof(job_settings)

typedef struct MigrateJobShared
{
	MigrateRunShared run;		/* identity, plan, parallel, ring, outcome */
	char		source_server[NAMEDATALEN];
	bool		has_remote_schema;
	char		remote_schema[NAMEDATALEN];
	char		target_schema[NAMEDATALEN];
	char		extschema[NAMEDATALEN]; /* where migrate_run() is */
	bool		has_setting[JOB_NSETTINGS];
	char		setting[JOB_NSETTINGS][64];
} MigrateJobShared;

PG_FUNCTION_INFO_V1(migrate_database);
extern PGDLLEXPORT void migrate_job_main(Datum main_arg);

static MigrateJobShared *job;	/* in the job: its segment */
static emit_log_hook_type prev_emit_log_hook = NULL;

static void job_wait(MigrateJobShared *shared, BackgroundWorkerHandle *handle, uint32 *seen);
static void job_call(const char *fname, int nargs, Oid *argtypes, Datum *args, bool *argnulls);
static int64 job_run(const char *extschema, const char *plan, int parallel);
static void job_emit_log(ErrorData *edata);

/* Copy a name argument into a fixed buffer, refusing one that does not fit. */
static void
copy_arg(char *dst, size_t size, const char *value, const char *what)
{
	if (strlen(value) >= size)
		ereport(ERROR,
				(errcode(ERRCODE_NAME_TOO_LONG),
				 errmsg("%s \"%s\" is too long", what, value),
				 errhint("Names have at most %d bytes.", (int) size - 1)));
	strlcpy(dst, value, size);
}

/*
 * migrate_database(plan, source_server, remote_schema, target_schema,
 * parallel) returns bigint: the run id.
 */
Datum
migrate_database(PG_FUNCTION_ARGS)
{
	char	   *plan;
	int			parallel = PG_ARGISNULL(4) ? 2 : PG_GETARG_INT32(4);
	dsm_segment *seg;
	MigrateJobShared *shared;
	BackgroundWorkerHandle *handle;
	pid_t		pid;
	uint32		seen = 0;
	int64		run_id;
	bool		failed;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("migrate_database() needs a plan name and a source server"),
				 errhint("For example: SELECT migrate_database('shop', 'mysql_server', remote_schema => 'shop');")));
	plan = text_to_cstring(PG_GETARG_TEXT_PP(0));
	if (plan[0] == '\0' || strlen(plan) > MIGRATE_PLAN_MAXLEN)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("migration plan name must have 1 to %d bytes", MIGRATE_PLAN_MAXLEN)));
	if (parallel < 1 || parallel > MIGRATE_MAX_PARALLEL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("parallel must be between 1 and %d (got %d)", MIGRATE_MAX_PARALLEL, parallel)));
	if (GetTopTransactionIdIfAny() != InvalidTransactionId)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("migrate_database() cannot run in a transaction that has written"),
				 errdetail("Its steps run in a background job, which cannot see this transaction's uncommitted changes."),
				 errhint("COMMIT first (the server and user mapping too), then call migrate_database() in a transaction of its own.")));

	seg = dsm_create(sizeof(MigrateJobShared), 0);
	shared = dsm_segment_address(seg);
	memset(shared, 0, sizeof(MigrateJobShared));
	SpinLockInit(&shared->run.mutex);
	shared->run.database_id = MyDatabaseId;
	shared->run.role_id = GetUserId();
	shared->run.owner_id = GetUserId();
	shared->run.parallel = parallel;
	strlcpy(shared->run.plan, plan, sizeof(shared->run.plan));
	strlcpy(shared->run.search_path, GetConfigOption("search_path", false, false),
			sizeof(shared->run.search_path));
	copy_arg(shared->source_server, NAMEDATALEN, NameStr(*PG_GETARG_NAME(1)), "source server");
	shared->has_remote_schema = !PG_ARGISNULL(2);
	if (shared->has_remote_schema)
		copy_arg(shared->remote_schema, NAMEDATALEN, text_to_cstring(PG_GETARG_TEXT_PP(2)),
				 "remote schema");
	copy_arg(shared->target_schema, NAMEDATALEN,
			 PG_ARGISNULL(3) ? "public" : NameStr(*PG_GETARG_NAME(3)), "target schema");
	for (int i = 0; i < (int) JOB_NSETTINGS; i++)
	{
		const char *value = GetConfigOption(job_settings[i], true, false);

		shared->has_setting[i] = value != NULL && strlen(value) < sizeof(shared->setting[i]);
		if (shared->has_setting[i])
			strlcpy(shared->setting[i], value, sizeof(shared->setting[i]));
	}
	strlcpy(shared->extschema, get_namespace_name(get_func_namespace(fcinfo->flinfo->fn_oid)),
			NAMEDATALEN);
	shared->run.caller_latch = MyLatch;
	shared->run.phase = MIGRATE_PHASE_STARTING;

	handle = migrate_start_worker(seg, "migrate_job_main", "migrate job",
								  psprintf("migrate_database job for plan %s", plan),
								  "the background job of migrate_database() for plan",
								  "migrate_database() for plan", plan);

	PG_TRY();
	{
		job_wait(shared, handle, &seen);
	}
	PG_CATCH();
	{
		/* our wait was cancelled: cancel the job's statement (its run stops) */
		SpinLockAcquire(&shared->run.mutex);
		shared->run.caller_latch = NULL;
		SpinLockRelease(&shared->run.mutex);
		if (GetBackgroundWorkerPid(handle, &pid) == BGWH_STARTED)
			(void) kill(pid, SIGINT);
		PG_RE_THROW();
	}
	PG_END_TRY();

	SpinLockAcquire(&shared->run.mutex);
	shared->run.caller_latch = NULL;
	run_id = shared->run.run_id;
	failed = shared->run.failed;
	SpinLockRelease(&shared->run.mutex);
	migrate_relay_notices(&shared->run, &seen);
	if (failed)
		ereport(ERROR,
				(errcode(shared->run.sqlerrcode),
				 errmsg("%s", shared->run.errmsg),
				 shared->run.errdetail[0] ? errdetail("%s", shared->run.errdetail) : 0,
				 shared->run.errhint[0] ? errhint("%s", shared->run.errhint) : 0,
				 shared->run.errctx[0] ? errcontext("%s", shared->run.errctx) : 0,
				 errcontext("migrate_database() of plan \"%s\"", plan)));
	dsm_detach(seg);
	PG_RETURN_INT64(run_id);
}

/* Sleep until the job finishes, printing its lines. */
static void
job_wait(MigrateJobShared *shared, BackgroundWorkerHandle *handle, uint32 *seen)
{
	for (;;)
	{
		MigratePhase now;
		pid_t		pid;

		migrate_relay_notices(&shared->run, seen);
		SpinLockAcquire(&shared->run.mutex);
		now = shared->run.phase;
		SpinLockRelease(&shared->run.mutex);
		if (now == MIGRATE_PHASE_FINISHED)
			return;
		if (GetBackgroundWorkerPid(handle, &pid) == BGWH_STOPPED)
		{
			SpinLockAcquire(&shared->run.mutex);
			now = shared->run.phase;
			SpinLockRelease(&shared->run.mutex);
			if (now == MIGRATE_PHASE_FINISHED)
				continue;
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("the background job of migrate_database() for plan \"%s\" exited unexpectedly",
							shared->run.plan),
					 errhint("See the server log.  migrate_status() shows the plan's run, if it started; migrate_resume() continues it.")));
		}
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 1000L, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
}

/*
 * In the job: NOTICE, INFO and WARNING messages go to the caller's ring
 * (and NOTICEs and INFOs not to the server log, which would not have
 * logged them at the default log_min_messages).
 */
static void
job_emit_log(ErrorData *edata)
{
	/* what a client of the job would see: client_min_messages as its SQL sets it */
	if (job && (edata->elevel == INFO || edata->elevel >= client_min_messages)
		&& edata->elevel >= INFO && edata->elevel < ERROR && edata->message)
	{
		MigrateRunShared *shared = &job->run;
		char	   *slot;
		Latch	   *latch;

		/* no elog here: this is inside the report of a message */
		SpinLockAcquire(&shared->mutex);
		slot = shared->notices[shared->notices_written % MIGRATE_NOTICE_SLOTS];
		snprintf(slot, MIGRATE_NOTICE_MAXLEN, "%s%s",
				 edata->elevel >= WARNING ? "WARNING: " : "", edata->message);
		shared->notices_written++;
		latch = shared->caller_latch;
		SpinLockRelease(&shared->mutex);
		if (latch)
			SetLatch(latch);
		if (edata->elevel < WARNING)
			edata->output_to_server = false;
	}
	if (prev_emit_log_hook)
		prev_emit_log_hook(edata);
}

/*
 * A step in a transaction of its own: migrate.<fname>(args), called
 * directly (it is revoked from PUBLIC: only this job calls it, as the
 * caller).
 */
static void
job_call(const char *fname, int nargs, Oid *argtypes, Datum *args, bool *argnulls)
{
	Oid			fn;
	FmgrInfo	flinfo;

	LOCAL_FCINFO(fcinfo, 4);

	Assert(nargs <= 4);
	migrate_begin_txn();
	fn = LookupFuncName(list_make2(makeString("migrate"), makeString(pstrdup(fname))),
						nargs, argtypes, false);
	fmgr_info(fn, &flinfo);
	InitFunctionCallInfoData(*fcinfo, &flinfo, nargs, InvalidOid, NULL, NULL);
	for (int i = 0; i < nargs; i++)
	{
		fcinfo->args[i].value = args[i];
		fcinfo->args[i].isnull = argnulls[i];
	}
	(void) FunctionCallInvoke(fcinfo);
	migrate_commit_txn();
}

/* The run, through SQL as any caller would start it; returns its id. */
static int64
job_run(const char *extschema, const char *plan, int parallel)
{
	Oid			types[2] = {TEXTOID, INT4OID};
	Datum		args[2] = {CStringGetTextDatum(plan), Int32GetDatum(parallel)};
	bool		isnull;
	int64		run_id;
	int			ret;

	migrate_begin_txn();
	/* force: step 1 ran migrate_check() and stopped on its errors */
	ret = SPI_execute_with_args(psprintf("SELECT %s.migrate_run($1, parallel => $2, force => true)",
										 quote_identifier(extschema)),
								2, types, args, NULL, false, 1);
	if (ret != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "migrate_run() of the job failed: %s", SPI_result_code_string(ret));
	run_id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	migrate_commit_txn();
	return run_id;
}

/* Entry point of the job, registered by migrate_database(). */
void
migrate_job_main(Datum main_arg)
{
	dsm_segment *seg;
	MigrateIdentity saved;
	volatile int64 run_id = 0;
	MigratePhase done = MIGRATE_PHASE_FINISHED;

	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	seg = dsm_attach(DatumGetUInt32(main_arg));
	if (seg == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("migrate_database job could not map its shared memory segment")));
	job = dsm_segment_address(seg);

	BackgroundWorkerInitializeConnectionByOid(job->run.database_id, InvalidOid, 0);
	migrate_check_version();
	SetConfigOption("application_name", "migrate job", PGC_USERSET, PGC_S_SESSION);
	pgstat_report_appname("migrate job");
	/* the caller's settings; NOTICEs reach emit_log_hook only when logged */
	for (int i = 0; i < (int) JOB_NSETTINGS; i++)
		if (job->has_setting[i])
			SetConfigOption(job_settings[i], job->setting[i], PGC_SUSET, PGC_S_SESSION);
	SetConfigOption("log_min_messages", "info", PGC_SUSET, PGC_S_SESSION);
	SetConfigOption("search_path", job->run.search_path, PGC_USERSET, PGC_S_SESSION);
	prev_emit_log_hook = emit_log_hook;
	emit_log_hook = job_emit_log;

	/* as the caller, for good (a transaction that commits keeps it) */
	migrate_begin_txn();
	migrate_become_owner(job->run.role_id, &saved);
	migrate_commit_txn();
	pgstat_report_activity(STATE_RUNNING, psprintf("migrate_database: plan %s", job->run.plan));

	PG_TRY();
	{
		Oid			types[4] = {TEXTOID, NAMEOID, TEXTOID, NAMEOID};
		Datum		args[4];
		bool		nulls[4] = {false, false, !job->has_remote_schema, false};
		Oid			fin_types[2] = {TEXTOID, INT8OID};
		Datum		fin_args[2];
		bool		fin_nulls[2] = {false, false};

		args[0] = CStringGetTextDatum(job->run.plan);
		args[1] = CStringGetDatum(job->source_server);
		args[2] = job->has_remote_schema ? CStringGetTextDatum(job->remote_schema) : (Datum) 0;
		args[3] = CStringGetDatum(job->target_schema);
		job_call("_database_prepare", 4, types, args, nulls);

		run_id = job_run(job->extschema, job->run.plan, job->run.parallel);

		fin_args[0] = args[0];
		fin_args[1] = Int64GetDatum(run_id);
		job_call("_database_finish", 2, fin_types, fin_args, fin_nulls);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		HOLD_INTERRUPTS();
		MemoryContextSwitchTo(TopMemoryContext);
		emit_log_hook = prev_emit_log_hook;		/* the error is the caller's to print */
		edata = CopyErrorData();
		FlushErrorState();
		AbortCurrentTransaction();
		RESUME_INTERRUPTS();
		SpinLockAcquire(&job->run.mutex);
		job->run.failed = true;
		job->run.sqlerrcode = edata->sqlerrcode;
		strlcpy(job->run.errmsg, edata->message ? edata->message : "", MIGRATE_TEXT_MAXLEN);
		strlcpy(job->run.errdetail, edata->detail ? edata->detail : "", MIGRATE_TEXT_MAXLEN);
		strlcpy(job->run.errhint, edata->hint ? edata->hint : "", MIGRATE_TEXT_MAXLEN);
		strlcpy(job->run.errctx, edata->context ? edata->context : "", MIGRATE_TEXT_MAXLEN);
		SpinLockRelease(&job->run.mutex);
	}
	PG_END_TRY();

	{
		Latch	   *latch;

		SpinLockAcquire(&job->run.mutex);
		job->run.run_id = run_id;
		job->run.phase = done;
		latch = job->run.caller_latch;
		SpinLockRelease(&job->run.mutex);
		if (latch)
			SetLatch(latch);
	}
	pgstat_report_activity(STATE_IDLE, NULL);
	dsm_detach(seg);
	proc_exit(0);
}
