/*-------------------------------------------------------------------------
 *
 * catalog.c
 *	  The one writer of a run's state: migrate.run, migrate.run_table,
 *	  migrate.run_range (the units of a run) and migrate.event.  The
 *	  strategies' tables (sync_state, cutover, rollback) are written by
 *	  catalog_strategies.c with this file's helpers (catalog.h).
 *
 * Every change of a run's, a table's or a unit's state is one function
 * here, and no other C file writes these tables (the SQL functions call
 * the migrate._catalog_* functions at the end of this file).  Each
 * function runs its statements through SPI in the caller's transaction:
 * the caller has SPI connected, a transaction and a snapshot, and commits
 * (the workers commit every catalog touch on its own; a batch's checkpoint
 * commits with the batch's rows).  Statements run as the extension's owner
 * (migrate_become_catalog_owner, search_path pinned, every name qualified):
 * row-level security gives every other role SELECT only on these tables, so
 * what a worker reads back from them was written here.  Events are recorded
 * in the name of the role the caller runs as (a worker: the plan's owner;
 * an SQL function: its caller), with the server's clock.  The SQL-callable
 * functions first check, as their caller, that the run or plan is one the
 * caller may see and act for.  Results are in the caller's memory context
 * (SPI's, until SPI_finish) unless said otherwise.  Every function can
 * throw; an error restores the caller's identity with the transaction.
 *
 * The states of runs, tables and units (migrate.run.state,
 * migrate.run_table.state, migrate.run_range.state) and which function
 * moves them:
 *
 *	 object  from                   to           function (when)
 *	 ------  ---------------------  -----------  ------------------------------
 *	 run     -                      running      run_start (migrate_run)
 *	 run     running                succeeded    run_end (every unit succeeded)
 *	 run     running                cancelled    run_end (migrate_cancel, or the
 *	                                             caller's wait was cancelled)
 *	 run     running                failed       run_fail (an error in a worker)
 *	 run     running                interrupted  run_fail (a helper vanished),
 *	                                             interrupt_dead_runs (no worker
 *	                                             holds the plan's lock)
 *	 run     failed, cancelled,     running      run_resume (migrate_resume)
 *	         interrupted
 *	 run     -                      succeeded    cutover_run (migrate_cutover, with
 *	                                             its swap)
 *	 run     succeeded              -            (final: nothing to resume)
 *
 *	 table   -                      pending      run_start
 *	 table   pending                running      table_started (a unit claimed)
 *	 table   pending, running       succeeded    tables_succeeded (its units all
 *	                                             succeeded)
 *	 table   any                    failed       run_fail, unit_failed (its unit
 *	                                             failed)
 *	 table   pending, running       cancelled    run_end
 *	 table   pending, running       interrupted  run_fail (other tables),
 *	                                             interrupt_dead_runs
 *	 table   not succeeded          pending      run_resume
 *
 *	 unit    -                      pending      add_load_unit, add_deferred_unit
 *	                                             (planning, one transaction)
 *	 unit    pending                running      claim_unit (its parents done)
 *	 unit    running                running      unit_checkpoint (each batch, only
 *	                                             by the worker that owns it)
 *	 unit    running                succeeded    unit_done
 *	 unit    running                cancelled,   unit_stopped (between batches)
 *	                                interrupted
 *	 unit    running                failed       unit_failed, run_fail (the
 *	                                             failing worker's unit)
 *	 unit    pending, running       cancelled    run_end
 *	 unit    running                interrupted  run_fail (other workers' units)
 *	 unit    pending, running       interrupted  interrupt_dead_runs
 *	 unit    not succeeded          pending      run_resume
 *
 * A unit belongs to the worker whose pid it records (worker_pid): only
 * that worker checkpoints it, ends it or stops it, so a worker that lost
 * its unit (the run was resumed elsewhere) fails instead of writing.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "parser/parser.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"

#include "migrate.h"
#include "owner.h"
#include "catalog.h"

PG_FUNCTION_INFO_V1(migrate_catalog_event_sql);
PG_FUNCTION_INFO_V1(migrate_catalog_verified_sql);
PG_FUNCTION_INFO_V1(migrate_catalog_report_sql);
PG_FUNCTION_INFO_V1(migrate_catalog_cancel_sql);
PG_FUNCTION_INFO_V1(migrate_catalog_reap_sql);

/* the error of a run found without its worker (also kept by _reap) */
#define DEAD_RUN_ERROR "the worker ended without finishing (server crash or terminated)"

static void insert_event(int64 run_id, const char *plan, const char *actor,
						 const char *event, const char *details);
static void check_unit_statements(int64 run_id, const MigrateUnit *u);
static bool on_target(RangeVar *rv, const MigrateUnit *u);

/*
 * Who an event is in the name of: the role this process runs as before it
 * switches to the catalog's owner.  Needs a transaction.
 */
static char *
current_actor(void)
{
	return GetUserNameFromId(GetUserId(), false);
}

/* ---------------------------------------------------------------------
 * Runs
 * ---------------------------------------------------------------------
 */

/*
 * A run starts: its row, one run_table row per table of the plan (or of
 * shared->tables) in foreign-key order, and the event.  The caller holds
 * the plan's lock and runs as the plan's owner, shared->owner_id: a plan
 * whose owner changed since migrate_run() checked it is refused.  run_by
 * is the role that called migrate_run().  Returns the run id.
 */
int64
migrate_catalog_run_start(const MigrateRunShared *shared)
{
	Oid			argtypes[12] = {TEXTOID, INT4OID, INT4OID, BOOLOID, TEXTOID, TEXTARRAYOID, INT4OID,
	TEXTOID, OIDOID, TEXTOID, TEXTOID, INT8OID};
	Datum		args[12];
	char		nulls[12] = "            ";
	bool		isnull;
	int64		run_id;
	int			ret;
	char	   *actor = current_actor();
	char	   *run_by = GetUserNameFromId(shared->role_id, true);
	MigrateIdentity saved;

	args[0] = CStringGetTextDatum(shared->plan);
	args[1] = Int32GetDatum(MyProcPid);
	args[2] = Int32GetDatum(shared->batch_size);
	args[3] = BoolGetDatum(shared->dry_run);
	args[4] = CStringGetTextDatum(shared->mode);
	nulls[5] = 'n';
	if (shared->has_tables)
	{
		/* the tables' names as the run's role sees them (its search_path) */
		Oid			ttypes[1] = {TEXTOID};
		Datum		targs[1] = {CStringGetTextDatum(shared->tables)};

		ret = SPI_execute_with_args("SELECT pg_catalog.array_agg(o::pg_catalog.regclass::pg_catalog.text)"
									"  FROM pg_catalog.unnest($1::pg_catalog.oid[]) o",
									1, ttypes, targs, NULL, true, 1);
		if (ret != SPI_OK_SELECT || SPI_processed != 1)
			elog(ERROR, "naming the tables of the run failed: %s", SPI_result_code_string(ret));
		args[5] = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
		nulls[5] = isnull ? 'n' : ' ';
	}
	args[6] = Int32GetDatum(shared->parallel);
	args[7] = CStringGetTextDatum(shared->search_path);
	args[8] = ObjectIdGetDatum(shared->owner_id);
	args[9] = CStringGetTextDatum(run_by ? run_by : actor);
	args[10] = CStringGetTextDatum(shared->maintenance_work_mem);
	nulls[10] = shared->maintenance_work_mem[0] ? ' ' : 'n';
	args[11] = Int64GetDatum(shared->batch_bytes);

	migrate_become_catalog_owner(&saved);
	ret = SPI_execute_with_args("INSERT INTO migrate.run (plan, mode, dry_run, worker_pid, batch_size, tables,"
								"                         parallel, search_path, defer_indexes, owner, run_by,"
								"                         maintenance_work_mem, batch_bytes)"
								" SELECT $1, $5, $4, $2, $3, $6,"
								"        $7, $8, coalesce((options->>'defer_indexes')::pg_catalog.bool, false), owner, $10, $11,"
								"        coalesce(CASE pg_catalog.jsonb_typeof(options->'batch_bytes')"
								"                   WHEN 'number' THEN (options->>'batch_bytes')::pg_catalog.int8"
								"                   WHEN 'string' THEN pg_catalog.pg_size_bytes(options->>'batch_bytes') END, $12)"
								"   FROM migrate.plan WHERE plan_name = $1 AND owner::pg_catalog.oid = $9"
								" RETURNING run_id",
								12, argtypes, args, nulls, false, 0);
	if (ret != SPI_OK_INSERT_RETURNING)
		elog(ERROR, "inserting into migrate.run failed: %s", SPI_result_code_string(ret));
	if (SPI_processed != 1)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("migration plan \"%s\" does not exist or has a new owner", shared->plan),
				 errhint("It was dropped or given to another role after migrate_run() was called; call migrate_run() again.")));
	run_id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));

	/*
	 * Tables in foreign-key order: a table's depth is the longest chain of
	 * plan tables it references; parents load before children.  The
	 * foreign keys that close a cycle or reference their own table
	 * (migrate._fk_cycle_breaks) do not count: the run drops them for the
	 * load (defer.c), so what is left is acyclic.
	 */
	args[1] = Int64GetDatum(run_id);
	argtypes[1] = INT8OID;
	args[5] = shared->has_tables ? CStringGetTextDatum(shared->tables) : (Datum) 0;
	nulls[5] = shared->has_tables ? ' ' : 'n';
	argtypes[5] = TEXTOID;
	ret = SPI_execute_with_args("WITH RECURSIVE t AS ("
								"   SELECT target::pg_catalog.oid AS rel, source FROM migrate.table_map"
								"    WHERE plan = $1 AND ($6::pg_catalog.oid[] IS NULL OR target::pg_catalog.oid = ANY ($6::pg_catalog.oid[]))"
								"      AND ($5 <> 'sync' OR capture <> 'none')),"
								" e AS (SELECT DISTINCT conrelid AS child, confrelid AS parent"
								"   FROM pg_catalog.pg_constraint WHERE contype = 'f'"
								"    AND conrelid IN (SELECT rel FROM t) AND confrelid IN (SELECT rel FROM t)"
								"    AND conrelid <> confrelid"
								"    AND oid NOT IN (SELECT b.con FROM migrate._fk_cycle_breaks(ARRAY(SELECT rel FROM t)) b)),"
								" d(rel, depth, path) AS ("
								"   SELECT rel, 0, ARRAY[rel] FROM t"
								"   UNION ALL"
								"   SELECT e.child, d.depth + 1, d.path || e.child FROM d JOIN e ON e.parent = d.rel"
								"    WHERE e.child <> ALL (d.path))"
								" INSERT INTO migrate.run_table (run_id, target, source, load_order, depth)"
								" SELECT $2, t.rel, t.source, pg_catalog.row_number() OVER (ORDER BY o.depth, t.rel::pg_catalog.regclass::pg_catalog.text), o.depth"
								"   FROM t JOIN (SELECT rel, pg_catalog.max(depth) AS depth FROM d GROUP BY rel) o USING (rel)",
								6, argtypes, args, nulls, false, 0);
	if (ret != SPI_OK_INSERT)
		elog(ERROR, "inserting into migrate.run_table failed: %s", SPI_result_code_string(ret));

	insert_event(run_id, shared->plan, actor, "run started",
				 psprintf("%s%s", shared->mode, shared->dry_run ? ", dry run" : ""));
	migrate_restore_identity(&saved);
	return run_id;
}

/*
 * migrate_resume(): a failed, cancelled or interrupted run is running
 * again; its units and tables that did not succeed go back to pending,
 * each unit continuing from its checkpoint.  Raises for a run that does
 * not exist or that succeeded.  The caller holds the plan's lock (and has
 * marked the run interrupted if its worker was gone).
 */
void
migrate_catalog_run_resume(int64 run_id, const char *plan)
{
	Oid			argtypes[4] = {INT8OID, INT4OID, TEXTOID, TEXTOID};
	Datum		args[4];
	char	   *state;
	bool		isnull;
	Oid			owner;
	int			ret;
	char	   *actor = current_actor();
	Oid			runner = GetUserId();
	MigrateIdentity saved;

	args[0] = Int64GetDatum(run_id);
	args[1] = Int32GetDatum(MyProcPid);
	args[3] = CStringGetTextDatum(actor);
	migrate_become_catalog_owner(&saved);
	ret = SPI_execute_with_args("SELECT state, owner::pg_catalog.oid FROM migrate.run WHERE run_id = $1 FOR UPDATE",
								1, argtypes, args, NULL, false, 1);
	if (ret != SPI_OK_SELECT || SPI_processed != 1)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("migration run " INT64_FORMAT " does not exist", run_id)));
	state = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	owner = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
	/* the worker runs as the owner migrate_resume() found: it must still be the run's */
	if (isnull || owner != runner)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("migration run " INT64_FORMAT " of plan \"%s\" is not owned by role \"%s\"",
						run_id, plan, actor),
				 errhint("Its owner changed after migrate_resume() was called; call migrate_resume() again.")));
	args[2] = CStringGetTextDatum(state);
	if (strcmp(state, "succeeded") == 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("migration run " INT64_FORMAT " of plan \"%s\" succeeded: there is nothing to resume",
						run_id, plan),
				 errhint("Start a new run with migrate_run().")));
	ret = SPI_execute_with_args("WITH r AS (UPDATE migrate.run SET state = 'running', finished_at = NULL, error = NULL,"
								"   cancel_requested = false, resumes = resumes + 1, worker_pid = $2"
								"   WHERE run_id = $1 RETURNING run_id, plan),"
								" u AS (UPDATE migrate.run_range SET state = 'pending', worker_pid = NULL, error = NULL,"
								"   sqlstate = NULL, finished_at = NULL WHERE run_id = $1 AND state <> 'succeeded'),"
								" t AS (UPDATE migrate.run_table SET state = 'pending', error = NULL, finished_at = NULL"
								"   WHERE run_id = $1 AND state <> 'succeeded')"
								" INSERT INTO migrate.event (run_id, plan, actor, event, details)"
								" SELECT run_id, plan, $4, 'run resumed', 'from state ' || $3 FROM r",
								4, argtypes, args, NULL, false, 0);
	if (ret != SPI_OK_INSERT)
		elog(ERROR, "resuming run " INT64_FORMAT " failed: %s", run_id,
			 SPI_result_code_string(ret));
	migrate_restore_identity(&saved);
}

/*
 * Runs left "running" by a worker that is gone (a crash, a kill) become
 * interrupted, with their pending and running tables and units; a run's
 * error is kept if it has one, else says what happened; each gets a "run
 * interrupted" event.  plan given: the caller holds that plan's lock, so
 * every running run of the plan is dead (a coordinator starting).  plan
 * NULL: every running run whose plan's lock nobody holds (migrate._reap).
 * Rows another transaction has locked are left for the next look.
 * Returns how many runs were marked.
 */
int
migrate_catalog_interrupt_dead_runs(const char *plan)
{
	Oid			argtypes[2] = {TEXTOID, TEXTOID};
	Datum		args[2];
	char		nulls[2] = {plan ? ' ' : 'n', ' '};
	bool		isnull;
	int			ret;
	int			n;
	MigrateIdentity saved;

	args[0] = plan ? CStringGetTextDatum(plan) : (Datum) 0;
	args[1] = CStringGetTextDatum(current_actor());
	migrate_become_catalog_owner(&saved);
	ret = SPI_execute_with_args("WITH r AS (UPDATE migrate.run SET state = 'interrupted', finished_at = pg_catalog.now(),"
								"   error = coalesce(error, '" DEAD_RUN_ERROR "')"
								" WHERE run_id IN (SELECT d.run_id FROM migrate.run d WHERE d.state = 'running'"
								"                     AND CASE WHEN $1::pg_catalog.text IS NULL THEN NOT migrate._plan_locked(d.plan)"
								"                              ELSE d.plan = $1 END"
								"                   FOR UPDATE SKIP LOCKED) RETURNING run_id, plan),"
								" g AS (UPDATE migrate.run_range u SET state = 'interrupted' FROM r"
								"   WHERE u.run_id = r.run_id AND u.state IN ('pending', 'running')),"
								" t AS (UPDATE migrate.run_table t SET state = 'interrupted' FROM r"
								"   WHERE t.run_id = r.run_id AND t.state IN ('pending', 'running')),"
								" e AS (INSERT INTO migrate.event (run_id, plan, actor, event, details)"
								"   SELECT run_id, plan, $2, 'run interrupted', 'found without a live worker' FROM r)"
								" SELECT pg_catalog.count(*)::pg_catalog.int4 FROM r",
								2, argtypes, args, nulls, false, 0);
	if (ret != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "marking interrupted runs failed: %s", SPI_result_code_string(ret));
	n = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	migrate_restore_identity(&saved);
	return n;
}

/* The run's units are all recorded (add_*_unit, in the same transaction). */
void
migrate_catalog_run_planned(int64 run_id)
{
	Oid			argtypes[1] = {INT8OID};
	Datum		args[1] = {Int64GetDatum(run_id)};

	(void) migrate_catalog_exec("UPDATE migrate.run SET planned = true WHERE run_id = $1",
						1, argtypes, args, NULL,
						SPI_OK_UPDATE, "updating migrate.run");
}

/*
 * The run ends in state "succeeded" or "cancelled": units and tables still
 * pending or running are cancelled; the worker's peak memory is kept; an
 * event "run <state>".
 */
void
migrate_catalog_run_end(int64 run_id, const char *state, int64 peak_memory_kb,
						int64 peak_rss_kb)
{
	Oid			argtypes[5] = {INT8OID, TEXTOID, INT8OID, TEXTOID, INT8OID};
	Datum		args[5];

	Assert(strcmp(state, "succeeded") == 0 || strcmp(state, "cancelled") == 0);
	args[0] = Int64GetDatum(run_id);
	args[1] = CStringGetTextDatum(state);
	args[2] = Int64GetDatum(peak_memory_kb);
	args[3] = CStringGetTextDatum(current_actor());
	args[4] = Int64GetDatum(peak_rss_kb);
	(void) migrate_catalog_exec("WITH r AS (UPDATE migrate.run SET state = $2, finished_at = pg_catalog.now(),"
						"   peak_memory_kb = greatest(peak_memory_kb, $3),"
						"   peak_rss_kb = greatest(peak_rss_kb, $5) WHERE run_id = $1 RETURNING plan),"
						" g AS (UPDATE migrate.run_range SET state = 'cancelled'"
						"   WHERE run_id = $1 AND state IN ('pending', 'running')),"
						" t AS (UPDATE migrate.run_table SET state = 'cancelled'"
						"   WHERE run_id = $1 AND state IN ('pending', 'running'))"
						" INSERT INTO migrate.event (run_id, plan, actor, event)"
						" SELECT $1, plan, $4, 'run ' || $2 FROM r",
						5, argtypes, args, NULL,
						SPI_OK_INSERT, psprintf("recording the end of run " INT64_FORMAT "", run_id));
}

/*
 * The run ends in state "failed" (or "interrupted", when a helper
 * vanished) with the error message: the coordinator's running unit of
 * target fails with the error's SQLSTATE, the other running units are
 * interrupted; target's table fails, the other running tables are
 * interrupted; an event "run <state>".  target may be InvalidOid (the
 * error belongs to no table).
 */
void
migrate_catalog_run_fail(int64 run_id, const char *state, Oid target, const char *message,
						 int sqlerrcode, int64 peak_memory_kb, int64 peak_rss_kb)
{
	Oid			argtypes[9] = {INT8OID, TEXTOID, OIDOID, INT8OID, TEXTOID, INT4OID, TEXTOID, TEXTOID, INT8OID};
	Datum		args[9];

	Assert(strcmp(state, "failed") == 0 || strcmp(state, "interrupted") == 0);
	args[0] = Int64GetDatum(run_id);
	args[1] = CStringGetTextDatum(message);
	args[2] = ObjectIdGetDatum(target);
	args[3] = Int64GetDatum(peak_memory_kb);
	args[4] = CStringGetTextDatum(state);
	args[5] = Int32GetDatum(MyProcPid);
	args[6] = CStringGetTextDatum(unpack_sql_state(sqlerrcode));
	args[7] = CStringGetTextDatum(current_actor());
	args[8] = Int64GetDatum(peak_rss_kb);
	(void) migrate_catalog_exec("WITH r AS (UPDATE migrate.run SET state = $5, finished_at = pg_catalog.now(),"
						"   error = $2, peak_memory_kb = greatest(peak_memory_kb, $4),"
						"   peak_rss_kb = greatest(peak_rss_kb, $9)"
						"   WHERE run_id = $1 RETURNING plan),"
						" mine AS (UPDATE migrate.run_range SET state = 'failed', error = $2, sqlstate = $7,"
						"   finished_at = pg_catalog.clock_timestamp()"
						"   WHERE run_id = $1 AND worker_pid = $6 AND state = 'running' AND target = $3),"
						" others AS (UPDATE migrate.run_range SET state = 'interrupted'"
						"   WHERE run_id = $1 AND state = 'running' AND NOT (worker_pid = $6 AND target = $3)),"
						" tf AS (UPDATE migrate.run_table SET state = 'failed', error = $2,"
						"   finished_at = pg_catalog.now() WHERE run_id = $1 AND target = $3),"
						" ti AS (UPDATE migrate.run_table SET state = 'interrupted'"
						"   WHERE run_id = $1 AND target <> $3 AND state = 'running')"
						" INSERT INTO migrate.event (run_id, plan, actor, event, details)"
						" SELECT $1, plan, $8, 'run ' || $5, $2 FROM r",
						9, argtypes, args, NULL,
						SPI_OK_INSERT, psprintf("recording the failure of run " INT64_FORMAT "", run_id));
}

/* A helper's private peak memory goes into its run's (the greatest of all). */
void
migrate_catalog_run_peak(int64 run_id, int64 peak_rss_kb)
{
	Oid			argtypes[2] = {INT8OID, INT8OID};
	Datum		args[2] = {Int64GetDatum(run_id), Int64GetDatum(peak_rss_kb)};

	(void) migrate_catalog_exec("UPDATE migrate.run SET peak_rss_kb = greatest(peak_rss_kb, $2)"
						" WHERE run_id = $1",
						2, argtypes, args, NULL,
						SPI_OK_UPDATE, psprintf("recording the peak memory of run " INT64_FORMAT "", run_id));
}

/*
 * Ask a running run to stop at its next batch boundary (its workers see
 * cancel_requested), with a "cancel requested" event.  Returns false when
 * the run is not running.  by_worker: the coordinator records that the
 * waiting migrate_run() call was cancelled, once, in the name of the role
 * that called it; else a migrate_cancel() call, recorded on every call in
 * the name of the current user.
 */
bool
migrate_catalog_request_cancel(int64 run_id, bool by_worker)
{
	Oid			argtypes[2] = {INT8OID, TEXTOID};
	Datum		args[2];
	int			ret;
	bool		requested;
	MigrateIdentity saved;

	args[0] = Int64GetDatum(run_id);
	args[1] = CStringGetTextDatum(current_actor());
	migrate_become_catalog_owner(&saved);
	if (by_worker)
		ret = SPI_execute_with_args("WITH r AS (UPDATE migrate.run SET cancel_requested = true"
									"   WHERE run_id = $1 AND state = 'running' AND NOT cancel_requested"
									"   RETURNING run_id, plan, run_by)"
									" INSERT INTO migrate.event (run_id, plan, actor, event, details)"
									" SELECT run_id, plan, run_by, 'cancel requested',"
									"        'the waiting migrate_run() call was cancelled' FROM r",
									2, argtypes, args, NULL, false, 0);
	else
		ret = SPI_execute_with_args("WITH r AS (UPDATE migrate.run SET cancel_requested = true"
									"   WHERE run_id = $1 AND state = 'running' RETURNING run_id, plan)"
									" INSERT INTO migrate.event (run_id, plan, actor, event)"
									" SELECT run_id, plan, $2, 'cancel requested' FROM r",
									2, argtypes, args, NULL, false, 0);
	if (ret != SPI_OK_INSERT)
		elog(ERROR, "recording the cancel of run " INT64_FORMAT " failed: %s", run_id,
			 SPI_result_code_string(ret));
	requested = SPI_processed > 0;
	migrate_restore_identity(&saved);
	return requested;
}

/*
 * An entry in the audit log.  run_id 0: none (a plan's event); details may
 * be NULL.  Who and when are set by the server: the role this process runs
 * as (a worker: the plan's owner), the clock.
 */
void
migrate_catalog_event(int64 run_id, const char *plan, const char *event, const char *details)
{
	char	   *actor = current_actor();
	MigrateIdentity saved;

	migrate_become_catalog_owner(&saved);
	insert_event(run_id, plan, actor, event, details);
	migrate_restore_identity(&saved);
}

/* The INSERT of an event, as the catalog's owner, in the name of actor. */
static void
insert_event(int64 run_id, const char *plan, const char *actor, const char *event,
			 const char *details)
{
	Oid			argtypes[5] = {INT8OID, TEXTOID, TEXTOID, TEXTOID, TEXTOID};
	Datum		args[5];
	char		nulls[5] = "     ";
	int			ret;

	args[0] = Int64GetDatum(run_id);
	nulls[0] = run_id > 0 ? ' ' : 'n';
	args[1] = plan ? CStringGetTextDatum(plan) : (Datum) 0;
	nulls[1] = plan ? ' ' : 'n';
	args[2] = CStringGetTextDatum(event);
	args[3] = details ? CStringGetTextDatum(details) : (Datum) 0;
	nulls[3] = details ? ' ' : 'n';
	args[4] = CStringGetTextDatum(actor);
	ret = SPI_execute_with_args("INSERT INTO migrate.event (run_id, plan, event, details, actor)"
								" VALUES ($1, $2, $3, $4, $5)",
								5, argtypes, args, nulls, false, 0);
	if (ret != SPI_OK_INSERT)
		elog(ERROR, "inserting into migrate.event failed: %s", SPI_result_code_string(ret));
}

/*
 * A cutover's run (migrate_cutover(), cutover.c), recorded under the live
 * tables' locks just before its swap, in the swap's transaction: mode
 * cutover, already succeeded (it commits with the swap or not at all),
 * one succeeded run_table row per table (target: the shadow table, source:
 * the live name it takes), in the caller's name.  Returns the run id.
 */
int64
migrate_catalog_cutover_run(const char *plan, const Oid *targets, char **sources, int ntargets)
{
	Oid			argtypes[5] = {TEXTOID, TEXTOID, INT4OID, OIDARRAYOID, TEXTARRAYOID};
	Datum		args[5];
	Datum	   *t = palloc(sizeof(Datum) * Max(ntargets, 1));
	Datum	   *s = palloc(sizeof(Datum) * Max(ntargets, 1));
	bool		isnull;

	for (int i = 0; i < ntargets; i++)
	{
		t[i] = ObjectIdGetDatum(targets[i]);
		s[i] = CStringGetTextDatum(sources[i]);
	}
	args[0] = CStringGetTextDatum(plan);
	args[1] = CStringGetTextDatum(current_actor());
	args[2] = Int32GetDatum(migrate_batch_size);
	args[3] = PointerGetDatum(construct_array(t, ntargets, OIDOID, sizeof(Oid), true, TYPALIGN_INT));
	args[4] = PointerGetDatum(construct_array(s, ntargets, TEXTOID, -1, false, TYPALIGN_INT));
	if (migrate_catalog_exec("WITH r AS (INSERT INTO migrate.run (plan, mode, state, run_by, finished_at, worker_pid,"
							 "                              batch_size, owner)"
							 "   SELECT $1, 'cutover', 'succeeded', $2, pg_catalog.clock_timestamp(),"
							 "          pg_catalog.pg_backend_pid(), $3, owner FROM migrate.plan WHERE plan_name = $1"
							 "   RETURNING run_id),"
							 " t AS (INSERT INTO migrate.run_table (run_id, target, source, load_order, state,"
							 "                                      started_at, finished_at)"
							 "   SELECT r.run_id, u.t, u.s, u.n, 'succeeded', pg_catalog.now(), pg_catalog.clock_timestamp()"
							 "     FROM r, ROWS FROM (pg_catalog.unnest($4), pg_catalog.unnest($5)) WITH ORDINALITY u(t, s, n))"
							 " SELECT run_id FROM r",
							 5, argtypes, args, NULL, SPI_OK_SELECT, "recording the cutover's run") != 1)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("migration plan \"%s\" does not exist", plan)));
	return DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

/* ---------------------------------------------------------------------
 * Tables of a run
 * ---------------------------------------------------------------------
 */

/* A unit of the table was claimed: the table is running (since its first). */
void
migrate_catalog_table_started(int64 run_id, Oid target)
{
	Oid			argtypes[2] = {INT8OID, OIDOID};
	Datum		args[2] = {Int64GetDatum(run_id), ObjectIdGetDatum(target)};

	(void) migrate_catalog_exec("UPDATE migrate.run_table SET state = 'running',"
						" started_at = coalesce(started_at, pg_catalog.clock_timestamp())"
						" WHERE run_id = $1 AND target = $2 AND state <> 'running'",
						2, argtypes, args, NULL,
						SPI_OK_UPDATE, "updating migrate.run_table");
}

/* what the catalog says of a completed table, for tables_succeeded */
typedef struct TableJudged
{
	char	   *plan;
	bool		over_warn;		/* rows_rejected > reject_warn * rows_read */
	bool		over_limit;		/* rows_rejected > reject_limit * rows_read */
	char	   *percent;		/* rows_rejected / rows_read, in %, one decimal */
	char	   *warn_percent;	/* the limits in % */
	char	   *limit_percent;
	char	   *top;			/* over_limit: its top reasons, or NULL */
} TableJudged;

/*
 * Tables of the run whose units all succeeded (its key ranges, and its
 * deferred index and fk units, whose orphans add to its rejects) are
 * complete: each is judged by its reject limits (migrate._reject_limits:
 * the table's options, else the plan's; 0.01 and 0.10 by default).  One
 * whose rows_rejected / rows_read is above reject_limit fails, with an
 * error naming it, the ratio and its three most frequent reasons (reason
 * and message, already masked in migrate.reject) and an event "reject
 * limit exceeded"; the others succeed (finished when their last unit
 * did), with an event "reject warning" when above reject_warn.  Findings
 * of warn rules (loaded rows) are not rejects.  Only the totals are
 * judged, never a part of a table, so a resumed run judges a table again
 * on all its rows with the limits as they are then.  Returns the tables
 * this call marked, as a List of MigrateTableDone (error set: failed).
 * Raises 22023 for an invalid limit in the options.
 */
List *
migrate_catalog_tables_succeeded(int64 run_id)
{
	Oid			argtypes[1] = {INT8OID};
	Datum		args[1] = {Int64GetDatum(run_id)};
	List	   *done = NIL;
	List	   *facts = NIL;
	ListCell   *lc;
	ListCell   *lcf;
	int			ret;
	char	   *actor = current_actor();
	MigrateIdentity saved;

	/* completed tables first (fenced), so that only they read their limits */
	migrate_become_catalog_owner(&saved);
	ret = SPI_execute_with_args("WITH d AS MATERIALIZED ("
								"   SELECT t.target, t.rows_read, t.rows_written, t.rows_rejected, t.rows_skipped,"
								"          extract(epoch FROM f.finished_at - t.started_at)::pg_catalog.float8 AS secs,"
								"          f.units, r.plan, r.mode"
								"     FROM migrate.run_table t JOIN migrate.run r ON r.run_id = t.run_id"
								"    CROSS JOIN LATERAL (SELECT pg_catalog.max(u.finished_at) AS finished_at,"
								"                               pg_catalog.count(*) AS units,"
								"                               pg_catalog.bool_and(u.state = 'succeeded') AS all_done"
								"                          FROM migrate.run_range u"
								"                         WHERE u.run_id = t.run_id AND u.target = t.target) f"
								"    WHERE t.run_id = $1 AND t.state IN ('pending', 'running')"
								"      AND f.units > 0 AND f.all_done)"
								" SELECT d.target::pg_catalog.oid, d.rows_read, d.rows_written, d.rows_rejected,"
								"        d.rows_skipped, d.secs, d.units, d.plan,"
								"        d.mode <> 'sync' AND d.rows_read > 0 AND d.rows_rejected > l.reject_warn * d.rows_read,"
								"        d.mode <> 'sync' AND d.rows_read > 0 AND l.reject_limit IS NOT NULL"
								"          AND d.rows_rejected > l.reject_limit * d.rows_read,"
								"        pg_catalog.round(100.0 * d.rows_rejected / NULLIF(d.rows_read, 0), 1)::pg_catalog.text,"
								"        pg_catalog.trim_scale(l.reject_warn * 100)::pg_catalog.text,"
								"        pg_catalog.trim_scale(l.reject_limit * 100)::pg_catalog.text,"
								"        CASE WHEN d.rows_read > 0 AND l.reject_limit IS NOT NULL"
								"                  AND d.rows_rejected > l.reject_limit * d.rows_read THEN"
								"          (SELECT pg_catalog.string_agg(pg_catalog.format('%s (%s row%s: %s)', x.reason, x.n,"
								"                                          CASE WHEN x.n = 1 THEN '' ELSE 's' END,"
								"                                          coalesce(pg_catalog.left(x.message, 120), 'no message')),"
								"                                        '; ' ORDER BY x.n DESC, x.reason, x.message)"
								"             FROM (SELECT j.reason, j.message, pg_catalog.count(*) AS n FROM migrate.reject j"
								"                    WHERE j.run_id = $1 AND j.target = d.target AND NOT j.loaded"
								"                    GROUP BY 1, 2 ORDER BY 3 DESC, 1, 2 LIMIT 3) x) END"
								"   FROM d CROSS JOIN LATERAL migrate._reject_limits(d.plan, d.target) l",
								1, argtypes, args, NULL, false, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "reading the completed tables of run " INT64_FORMAT " failed: %s", run_id,
			 SPI_result_code_string(ret));
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		MigrateTableDone *t = palloc0(sizeof(MigrateTableDone));
		TableJudged *f = palloc0(sizeof(TableJudged));
		bool		isnull;

		t->target_oid = DatumGetObjectId(SPI_getbinval(tup, desc, 1, &isnull));
		t->counts.read = DatumGetInt64(SPI_getbinval(tup, desc, 2, &isnull));
		t->counts.written = DatumGetInt64(SPI_getbinval(tup, desc, 3, &isnull));
		t->counts.rejected = DatumGetInt64(SPI_getbinval(tup, desc, 4, &isnull));
		t->counts.skipped = DatumGetInt64(SPI_getbinval(tup, desc, 5, &isnull));
		t->seconds = DatumGetFloat8(SPI_getbinval(tup, desc, 6, &isnull));
		t->units = DatumGetInt64(SPI_getbinval(tup, desc, 7, &isnull));
		f->plan = SPI_getvalue(tup, desc, 8);
		f->over_warn = DatumGetBool(SPI_getbinval(tup, desc, 9, &isnull));
		f->over_limit = DatumGetBool(SPI_getbinval(tup, desc, 10, &isnull));
		f->percent = SPI_getvalue(tup, desc, 11);
		f->warn_percent = SPI_getvalue(tup, desc, 12);
		f->limit_percent = SPI_getvalue(tup, desc, 13);
		f->top = SPI_getvalue(tup, desc, 14);
		done = lappend(done, t);
		facts = lappend(facts, f);
	}
	migrate_restore_identity(&saved);

	/* the tables' names as the worker's role sees them (its search_path) */
	forboth(lc, done, lcf, facts)
	{
		MigrateTableDone *t = lfirst(lc);
		TableJudged *f = lfirst(lcf);

		t->target = DatumGetCString(DirectFunctionCall1(regclassout,
														ObjectIdGetDatum(t->target_oid)));
		if (f->over_limit)
			t->error = psprintf("table %s of migration plan \"%s\": %s%% of its rows were rejected ("
								INT64_FORMAT " of " INT64_FORMAT " read), above its reject_limit of %s%%; top reasons: %s",
								t->target, f->plan, f->percent, t->counts.rejected, t->counts.read,
								f->limit_percent, f->top ? f->top : "none recorded");
		else if (f->over_warn)
			t->warning = psprintf("table %s: %s%% of its rows were rejected (" INT64_FORMAT " of "
								  INT64_FORMAT " read), above its reject_warn of %s%%",
								  t->target, f->percent, t->counts.rejected, t->counts.read,
								  f->warn_percent);
	}

	/* each table's state, and its event, in this transaction */
	forboth(lc, done, lcf, facts)
	{
		MigrateTableDone *t = lfirst(lc);
		TableJudged *f = lfirst(lcf);
		Oid			utypes[8] = {INT8OID, OIDOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID};
		Datum		uargs[8];
		char		unulls[8] = "        ";
		const char *event = t->error ? "reject limit exceeded" : t->warning ? "reject warning" : NULL;

		uargs[0] = Int64GetDatum(run_id);
		uargs[1] = ObjectIdGetDatum(t->target_oid);
		uargs[2] = CStringGetTextDatum(t->error ? "failed" : "succeeded");
		uargs[3] = t->error ? CStringGetTextDatum(t->error) : (Datum) 0;
		unulls[3] = t->error ? ' ' : 'n';
		uargs[4] = CStringGetTextDatum(f->plan);
		uargs[5] = CStringGetTextDatum(actor);
		uargs[6] = event ? CStringGetTextDatum(event) : (Datum) 0;
		unulls[6] = event ? ' ' : 'n';
		uargs[7] = t->warning ? CStringGetTextDatum(t->warning) : (Datum) 0;
		unulls[7] = t->warning ? ' ' : 'n';
		(void) migrate_catalog_exec("WITH t AS (UPDATE migrate.run_table SET state = $3, error = $4,"
							"   finished_at = (SELECT pg_catalog.max(u.finished_at) FROM migrate.run_range u"
							"                   WHERE u.run_id = $1 AND u.target = $2)"
							"   WHERE run_id = $1 AND target = $2 RETURNING 1)"
							" INSERT INTO migrate.event (run_id, plan, actor, event, details)"
							" SELECT $1, $5, $6, $7, coalesce($4, $8) FROM t WHERE $7 IS NOT NULL",
							8, utypes, uargs, unulls,
							SPI_OK_INSERT, psprintf("recording the end of table %s", t->target));
	}
	return done;
}

/*
 * Whether the run keeps an undo log of target ('off', 'empty', 'log'),
 * decided once when the run is planned (src/undo.c).
 */
void
migrate_catalog_table_undo(int64 run_id, Oid target, const char *undo)
{
	Oid			argtypes[3] = {INT8OID, OIDOID, TEXTOID};
	Datum		args[3] = {Int64GetDatum(run_id), ObjectIdGetDatum(target), CStringGetTextDatum(undo)};

	/* an empty table starts the sum of the verify's hashes of what the run writes */
	(void) migrate_catalog_exec("UPDATE migrate.run_table SET undo = $3,"
								" loaded_checksum = CASE WHEN $3 = 'empty' THEN 0 END"
								" WHERE run_id = $1 AND target = $2",
								3, argtypes, args, NULL, SPI_OK_UPDATE, "updating migrate.run_table");
}

/* The planner's estimate of the table's source rows, for percent and ETA. */
void
migrate_catalog_table_estimate(int64 run_id, Oid target)
{
	Oid			argtypes[2] = {INT8OID, OIDOID};
	Datum		args[2] = {Int64GetDatum(run_id), ObjectIdGetDatum(target)};

	(void) migrate_catalog_exec("UPDATE migrate.run_table SET estimated_rows ="
						"  (SELECT nullif(reltuples, -1)::pg_catalog.int8 FROM pg_catalog.pg_class"
						"    WHERE oid = (SELECT source FROM migrate.table_map m JOIN migrate.run r"
						"                   ON r.plan = m.plan WHERE r.run_id = $1 AND m.target = $2)::pg_catalog.regclass)"
						" WHERE run_id = $1 AND target = $2",
						2, argtypes, args, NULL,
						SPI_OK_UPDATE, "updating migrate.run_table");
}

/* ---------------------------------------------------------------------
 * Units of a run
 * ---------------------------------------------------------------------
 */

/* A pending key range of target: keys > lo (NULL: from the first), <= hi. */
void
migrate_catalog_add_load_unit(int64 run_id, Oid target, int range_no, const char *lo, const char *hi)
{
	Oid			argtypes[5] = {INT8OID, OIDOID, INT4OID, TEXTOID, TEXTOID};
	Datum		args[5];
	char		nulls[5] = "     ";

	args[0] = Int64GetDatum(run_id);
	args[1] = ObjectIdGetDatum(target);
	args[2] = Int32GetDatum(range_no);
	args[3] = lo ? CStringGetTextDatum(lo) : (Datum) 0;
	nulls[3] = lo ? ' ' : 'n';
	args[4] = hi ? CStringGetTextDatum(hi) : (Datum) 0;
	nulls[4] = hi ? ' ' : 'n';
	(void) migrate_catalog_exec("INSERT INTO migrate.run_range (run_id, target, range_no, lo, hi)"
						" VALUES ($1, $2, $3, $4, $5)",
						5, argtypes, args, nulls,
						SPI_OK_INSERT, "inserting into migrate.run_range");
}

/*
 * A pending rebuild of target (kind "index" or "fk"): definition is the
 * DDL that restores it, check_sql (fk; may be NULL) the statement that
 * rejects the orphans first, ref_target (fk; may be InvalidOid) the table
 * it references, whose loads it waits for too.  In the transaction that
 * drops what it restores.
 */
void
migrate_catalog_add_deferred_unit(int64 run_id, Oid target, int range_no, const char *kind,
								  const char *definition, const char *check_sql, Oid ref_target)
{
	Oid			argtypes[7] = {INT8OID, OIDOID, INT4OID, TEXTOID, TEXTOID, TEXTOID, OIDOID};
	Datum		args[7];
	char		nulls[7] = "       ";

	args[0] = Int64GetDatum(run_id);
	args[1] = ObjectIdGetDatum(target);
	args[2] = Int32GetDatum(range_no);
	args[3] = CStringGetTextDatum(kind);
	args[4] = CStringGetTextDatum(definition);
	args[5] = check_sql ? CStringGetTextDatum(check_sql) : (Datum) 0;
	nulls[5] = check_sql ? ' ' : 'n';
	args[6] = ObjectIdGetDatum(ref_target);
	nulls[6] = OidIsValid(ref_target) ? ' ' : 'n';
	(void) migrate_catalog_exec("INSERT INTO migrate.run_range (run_id, target, range_no, kind, definition, check_sql, ref_target)"
						" VALUES ($1, $2, $3, $4, $5, $6, $7)",
						7, argtypes, args, nulls,
						SPI_OK_INSERT, "inserting into migrate.run_range");
}

/*
 * Claim the next unit this worker may work on: pending, every table of
 * lower foreign-key depth done, and for index/fk units every key range of
 * its own table (and of the table an fk unit references) done; it becomes
 * running, owned by this process.  An fk unit counts at the depth of the
 * deeper of its two tables: one that closes a cycle references a table
 * loaded after its own, which must not wait for it.  Such a cycle unit
 * (its referenced table is not of lower depth) also waits for the other fk
 * units of its two tables (defer_indexes): their orphans, the rows the
 * constraints in place would have refused, leave first, as in a load
 * without deferral; those never wait for a cycle unit.  Fills *u
 * (strings copied into cxt) and returns true; or returns false, setting
 * *nothing_left when no unit is pending or running (and the run has been
 * cut into units).
 */
bool
migrate_catalog_claim_unit(int64 run_id, MigrateUnit *u, MemoryContext cxt, bool *nothing_left)
{
	Oid			argtypes[2] = {INT8OID, INT4OID};
	Datum		args[2];
	HeapTuple	tup;
	TupleDesc	desc;
	bool		isnull;
	int			ret;
	MigrateIdentity saved;

	args[0] = Int64GetDatum(run_id);
	args[1] = Int32GetDatum(MyProcPid);
	migrate_become_catalog_owner(&saved);
	ret = SPI_execute_with_args("UPDATE migrate.run_range u SET state = 'running', worker_pid = $2,"
								"       started_at = coalesce(u.started_at, pg_catalog.clock_timestamp()), finished_at = NULL"
								" WHERE (u.run_id, u.target, u.range_no) = ("
								"   SELECT c.run_id, c.target, c.range_no"
								"     FROM migrate.run_range c JOIN migrate.run_table t USING (run_id, target)"
								"     LEFT JOIN migrate.run_table rt ON rt.run_id = c.run_id AND rt.target = c.ref_target"
								"    WHERE c.run_id = $1 AND c.state = 'pending'"
								"      AND NOT EXISTS (SELECT 1 FROM migrate.run_range d"
								"                        JOIN migrate.run_table dt USING (run_id, target)"
								"                        LEFT JOIN migrate.run_table drt"
								"                          ON drt.run_id = d.run_id AND drt.target = d.ref_target"
								"                       WHERE d.run_id = $1 AND d.state <> 'succeeded'"
								"                         AND (d.kind <> 'sync' OR d.range_no = 1)"
								"                         AND greatest(dt.depth, drt.depth) < greatest(t.depth, rt.depth))"
								"      AND (c.kind = 'load' OR NOT EXISTS (SELECT 1 FROM migrate.run_range l"
								"            WHERE l.run_id = $1 AND l.target IN (c.target, c.ref_target) AND l.kind = 'load'"
								"              AND l.state <> 'succeeded'))"
								"      AND (c.kind <> 'fk' OR rt.depth IS NULL OR rt.depth < t.depth"
								"           OR NOT EXISTS (SELECT 1 FROM migrate.run_range f"
								"            JOIN migrate.run_table ft USING (run_id, target)"
								"            LEFT JOIN migrate.run_table frt ON frt.run_id = f.run_id AND frt.target = f.ref_target"
								"            WHERE f.run_id = $1 AND f.target IN (c.target, c.ref_target) AND f.kind = 'fk'"
								"              AND (frt.depth IS NULL OR frt.depth < ft.depth) AND f.state <> 'succeeded'))"
								"      AND (c.kind <> 'sync' OR c.range_no = 1 OR NOT EXISTS (SELECT 1 FROM migrate.run_range s"
								"            WHERE s.run_id = $1 AND s.kind = 'sync' AND s.range_no = 1 AND s.state <> 'succeeded'))"
								"    ORDER BY t.load_order, c.range_no"
								"    LIMIT 1 FOR UPDATE OF c SKIP LOCKED)"
								" RETURNING u.target::pg_catalog.oid, u.range_no, u.kind, u.lo, u.hi, u.last_key,"
								"           u.definition, u.check_sql,"
								"           (SELECT pg_catalog.count(*) FROM migrate.run_range o"
								"             WHERE o.run_id = u.run_id AND o.target = u.target) = 1",
								2, argtypes, args, NULL, false, 0);
	if (ret != SPI_OK_UPDATE_RETURNING)
		elog(ERROR, "claiming a unit of run " INT64_FORMAT " failed: %s", run_id,
			 SPI_result_code_string(ret));
	*nothing_left = false;
	if (SPI_processed == 0)
	{
		ret = SPI_execute_with_args("SELECT r.planned AND NOT EXISTS (SELECT 1 FROM migrate.run_range u"
									"  WHERE u.run_id = r.run_id AND u.state IN ('pending', 'running'))"
									"  FROM migrate.run r WHERE r.run_id = $1",
									1, argtypes, args, NULL, false, 1);
		if (ret != SPI_OK_SELECT || SPI_processed != 1)
			elog(ERROR, "reading migrate.run_range failed: %s", SPI_result_code_string(ret));
		*nothing_left = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
		migrate_restore_identity(&saved);
		return false;
	}
	tup = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	memset(u, 0, sizeof(*u));
	u->target = DatumGetObjectId(SPI_getbinval(tup, desc, 1, &isnull));
	u->range_no = DatumGetInt32(SPI_getbinval(tup, desc, 2, &isnull));
	{
		MemoryContext old = MemoryContextSwitchTo(cxt);
		char	   *v;

		u->kind = pstrdup(SPI_getvalue(tup, desc, 3));
		u->lo = (v = SPI_getvalue(tup, desc, 4)) ? pstrdup(v) : NULL;
		u->hi = (v = SPI_getvalue(tup, desc, 5)) ? pstrdup(v) : NULL;
		u->last_key = (v = SPI_getvalue(tup, desc, 6)) ? pstrdup(v) : NULL;
		u->definition = (v = SPI_getvalue(tup, desc, 7)) ? pstrdup(v) : NULL;
		u->check_sql = (v = SPI_getvalue(tup, desc, 8)) ? pstrdup(v) : NULL;
		u->only_unit = DatumGetBool(SPI_getbinval(tup, desc, 9, &isnull));
		MemoryContextSwitchTo(old);
	}
	migrate_restore_identity(&saved);
	/* under the worker's search_path, as the statements will run */
	check_unit_statements(run_id, u);
	return true;
}

/*
 * Defence in depth for the units' stored statements (only migrate writes
 * run_range, yet nothing is executed verbatim on trust): an index unit's
 * definition must be exactly one CREATE INDEX on the unit's table; an fk
 * unit's exactly ALTER TABLE <table> ADD CONSTRAINT c FOREIGN KEY ... NOT
 * VALID then ALTER TABLE <table> VALIDATE CONSTRAINT c, and its check_sql
 * exactly one WITH o AS (DELETE FROM <table> ...) INSERT INTO
 * migrate.reject ... (as defer.c writes them).  Raises XX001 otherwise.
 */
static void
check_unit_statements(int64 run_id, const MigrateUnit *u)
{
	List	   *stmts;
	const char *bad = NULL;

	if (strcmp(u->kind, "load") == 0 || strcmp(u->kind, "sync") == 0)
		return;					/* they run no statement of the catalog */
	if (u->definition == NULL)
		bad = "it has no definition";
	else if (strcmp(u->kind, "index") == 0)
	{
		stmts = raw_parser(u->definition, RAW_PARSE_DEFAULT);
		if (list_length(stmts) != 1 ||
			!IsA(((RawStmt *) linitial(stmts))->stmt, IndexStmt))
			bad = "its definition is not one CREATE INDEX";
		else if (!on_target(((IndexStmt *) ((RawStmt *) linitial(stmts))->stmt)->relation, u))
			bad = "its index is not on the unit's table";
	}
	else if (strcmp(u->kind, "fk") == 0)
	{
		AlterTableStmt *add = NULL;
		AlterTableStmt *validate = NULL;
		AlterTableCmd *addcmd = NULL;
		AlterTableCmd *valcmd = NULL;

		stmts = raw_parser(u->definition, RAW_PARSE_DEFAULT);
		if (list_length(stmts) == 2 &&
			IsA(((RawStmt *) linitial(stmts))->stmt, AlterTableStmt) &&
			IsA(((RawStmt *) lsecond(stmts))->stmt, AlterTableStmt))
		{
			add = (AlterTableStmt *) ((RawStmt *) linitial(stmts))->stmt;
			validate = (AlterTableStmt *) ((RawStmt *) lsecond(stmts))->stmt;
			if (list_length(add->cmds) == 1 && list_length(validate->cmds) == 1)
			{
				addcmd = linitial(add->cmds);
				valcmd = linitial(validate->cmds);
			}
		}
		if (addcmd == NULL || add->objtype != OBJECT_TABLE || validate->objtype != OBJECT_TABLE ||
			addcmd->subtype != AT_AddConstraint || valcmd->subtype != AT_ValidateConstraint ||
			!IsA(addcmd->def, Constraint) ||
			((Constraint *) addcmd->def)->contype != CONSTR_FOREIGN ||
			!((Constraint *) addcmd->def)->skip_validation ||
			((Constraint *) addcmd->def)->conname == NULL || valcmd->name == NULL ||
			strcmp(((Constraint *) addcmd->def)->conname, valcmd->name) != 0)
			bad = "its definition is not ADD CONSTRAINT ... FOREIGN KEY ... NOT VALID, then VALIDATE CONSTRAINT";
		else if (!on_target(add->relation, u) || !on_target(validate->relation, u))
			bad = "its foreign key is not on the unit's table";
		else if (u->check_sql != NULL)
		{
			InsertStmt *ins = NULL;
			CommonTableExpr *cte = NULL;

			stmts = raw_parser(u->check_sql, RAW_PARSE_DEFAULT);
			if (list_length(stmts) == 1 && IsA(((RawStmt *) linitial(stmts))->stmt, InsertStmt))
				ins = (InsertStmt *) ((RawStmt *) linitial(stmts))->stmt;
			if (ins && ins->withClause && list_length(ins->withClause->ctes) == 1)
				cte = linitial(ins->withClause->ctes);
			if (ins == NULL || ins->relation->schemaname == NULL ||
				strcmp(ins->relation->schemaname, "migrate") != 0 ||
				strcmp(ins->relation->relname, "reject") != 0 || ins->returningList != NIL ||
				cte == NULL || cte->ctequery == NULL || !IsA(cte->ctequery, DeleteStmt) ||
				!on_target(((DeleteStmt *) cte->ctequery)->relation, u))
				bad = "its orphan statement is not WITH o AS (DELETE FROM <its table> ...) INSERT INTO migrate.reject ...";
		}
	}
	else
		bad = "its kind is unknown";
	if (bad)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("unit %d of table %s in run " INT64_FORMAT " is not one migrate wrote: %s",
						u->range_no, get_rel_name(u->target), run_id, bad),
				 errdetail("A unit's statements are checked before they run; this one is refused."),
				 errhint("Start a new run of the plan with migrate_run().")));
}

/* Does rv name the unit's table (under the current search_path)? */
static bool
on_target(RangeVar *rv, const MigrateUnit *u)
{
	return rv != NULL && RangeVarGetRelid(rv, NoLock, true) == u->target;
}

/*
 * A batch of the unit committed: add its counts to the unit and to its
 * table, and move both checkpoints to last_key (the table's shows *** for
 * a sensitive key, u->key_sensitive).  MUST run in the batch's
 * own transaction, after its rows are written, so that rows, rejects and
 * checkpoint commit together.  Raises (rolling the batch back) when this
 * worker no longer owns the unit: the run was resumed or stopped by
 * another worker.  target_name names the table in errors.  One statement.
 */
void
migrate_catalog_unit_checkpoint(int64 run_id, const MigrateUnit *u, const MigrateCounts *batch,
								const char *last_key, const char *target_name)
{
	Oid			argtypes[14] = {INT8OID, OIDOID, INT8OID, INT8OID, INT8OID,
	INT8OID, INT8OID, TEXTOID, INT4OID, INT4OID, BOOLOID, INT8OID, INT8OID, TEXTOID};
	Datum		args[14];
	char		nulls[14] = "              ";
	int			ret;
	MigrateIdentity saved;

	args[0] = Int64GetDatum(run_id);
	args[1] = ObjectIdGetDatum(u->target);
	args[2] = Int64GetDatum(batch->read);
	args[3] = Int64GetDatum(batch->written);
	args[4] = Int64GetDatum(batch->rejected);
	args[5] = Int64GetDatum(batch->skipped);
	args[6] = Int64GetDatum(batch->warned);
	args[7] = CStringGetTextDatum(last_key);
	args[8] = Int32GetDatum(u->range_no);
	args[9] = Int32GetDatum(MyProcPid);
	args[10] = BoolGetDatum(u->key_sensitive);
	args[11] = Int64GetDatum(batch->rejected_setwise);
	args[12] = Int64GetDatum(batch->bisect_steps);
	/* a batch that did not hash its rows leaves the table without a checksum */
	if (batch->loaded_hashed)
		args[13] = CStringGetTextDatum(migrate_int128_to_cstring(batch->loaded_sum));
	else
		nulls[13] = 'n';
	migrate_become_catalog_owner(&saved);
	ret = SPI_execute_with_args("WITH u AS (UPDATE migrate.run_range SET rows_read = rows_read + $3,"
								"   rows_written = rows_written + $4, rows_rejected = rows_rejected + $5,"
								"   rows_skipped = rows_skipped + $6, rows_warned = rows_warned + $7,"
								"   rows_rejected_setwise = rows_rejected_setwise + $12, bisect_steps = bisect_steps + $13,"
								"   batches = batches + 1, last_key = $8"
								"   WHERE run_id = $1 AND target = $2 AND range_no = $9"
								"     AND worker_pid = $10 AND state = 'running' RETURNING 1)"
								" UPDATE migrate.run_table SET rows_read = rows_read + $3,"
								" rows_written = rows_written + $4, rows_rejected = rows_rejected + $5,"
								" rows_skipped = rows_skipped + $6, rows_warned = rows_warned + $7,"
								" rows_rejected_setwise = rows_rejected_setwise + $12, bisect_steps = bisect_steps + $13,"
								" batches = batches + 1, last_key = CASE WHEN $11 THEN '***' ELSE $8 END,"
								" loaded_checksum = loaded_checksum + $14::pg_catalog.numeric"
								" WHERE run_id = $1 AND target = $2 AND EXISTS (SELECT 1 FROM u)",
								14, argtypes, args, nulls, false, 0);
	if (ret != SPI_OK_UPDATE)
		elog(ERROR, "checkpoint of %s failed: %s", target_name,
			 SPI_result_code_string(ret));
	if (SPI_processed != 1)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("range %d of table %s in run " INT64_FORMAT " is no longer owned by this worker",
						u->range_no, target_name, run_id),
				 errdetail("The run was resumed or stopped by another worker; this batch is rolled back."),
				 errhint("Only one worker may own a range.")));
	migrate_restore_identity(&saved);
}

/*
 * An fk unit moved orphans rows of its table to migrate.reject (in this
 * transaction): they were counted written by the key ranges, they are
 * rejects.
 */
void
migrate_catalog_unit_orphans(int64 run_id, const MigrateUnit *u, int64 orphans)
{
	Oid			argtypes[4] = {INT8OID, OIDOID, INT4OID, INT8OID};
	Datum		args[4];

	args[0] = Int64GetDatum(run_id);
	args[1] = ObjectIdGetDatum(u->target);
	args[2] = Int32GetDatum(u->range_no);
	args[3] = Int64GetDatum(orphans);
	(void) migrate_catalog_exec("WITH u AS (UPDATE migrate.run_range SET rows_written = rows_written - $4,"
						"   rows_rejected = rows_rejected + $4"
						"   WHERE run_id = $1 AND target = $2 AND range_no = $3)"
						" UPDATE migrate.run_table SET rows_written = rows_written - $4,"
						"   rows_rejected = rows_rejected + $4, loaded_checksum = CASE WHEN $4 = 0 THEN loaded_checksum END"
						"   WHERE run_id = $1 AND target = $2",
						4, argtypes, args, NULL,
						SPI_OK_UPDATE, psprintf("updating the counts of %s", get_rel_name(u->target)));
}

/*
 * The same for orphans an fk unit rejected from another table (whose rows
 * referenced its own orphans): they move from written to rejected in that
 * table and in its last key range, so that its units still add up to it.
 */
void
migrate_catalog_table_orphans(int64 run_id, Oid target, int64 orphans)
{
	Oid			argtypes[3] = {INT8OID, OIDOID, INT8OID};
	Datum		args[3];

	args[0] = Int64GetDatum(run_id);
	args[1] = ObjectIdGetDatum(target);
	args[2] = Int64GetDatum(orphans);
	(void) migrate_catalog_exec("WITH u AS (UPDATE migrate.run_range SET rows_written = rows_written - $3,"
						"   rows_rejected = rows_rejected + $3"
						"   WHERE run_id = $1 AND target = $2 AND range_no = (SELECT pg_catalog.max(l.range_no)"
						"     FROM migrate.run_range l WHERE l.run_id = $1 AND l.target = $2 AND l.kind = 'load'))"
						" UPDATE migrate.run_table SET rows_written = rows_written - $3,"
						"   rows_rejected = rows_rejected + $3, loaded_checksum = CASE WHEN $3 = 0 THEN loaded_checksum END"
						"   WHERE run_id = $1 AND target = $2",
						3, argtypes, args, NULL,
						SPI_OK_UPDATE, psprintf("updating the counts of %s", get_rel_name(target)));
}

/*
 * The unit succeeded (in its last transaction): record it, and add its
 * independent source count to its table's (source_count < 0: none, as for
 * index and fk units).  Raises when this worker no longer owns the unit.
 */
void
migrate_catalog_unit_done(int64 run_id, const MigrateUnit *u, int64 source_count)
{
	Oid			argtypes[5] = {INT8OID, OIDOID, INT4OID, INT4OID, INT8OID};
	Datum		args[5];
	char		nulls[5] = "     ";
	int			ret;
	MigrateIdentity saved;

	args[0] = Int64GetDatum(run_id);
	args[1] = ObjectIdGetDatum(u->target);
	args[2] = Int32GetDatum(u->range_no);
	args[3] = Int32GetDatum(MyProcPid);
	args[4] = Int64GetDatum(source_count);
	nulls[4] = source_count < 0 ? 'n' : ' ';
	migrate_become_catalog_owner(&saved);
	ret = SPI_execute_with_args("WITH u AS (UPDATE migrate.run_range SET state = 'succeeded',"
								"   finished_at = pg_catalog.clock_timestamp(), source_count = $5"
								"   WHERE run_id = $1 AND target = $2 AND range_no = $3"
								"     AND worker_pid = $4 AND state = 'running' RETURNING 1)"
								" UPDATE migrate.run_table SET source_count = CASE WHEN $5 IS NULL"
								"   THEN source_count ELSE coalesce(source_count, 0) + $5 END"
								" WHERE run_id = $1 AND target = $2 AND EXISTS (SELECT 1 FROM u)",
								5, argtypes, args, nulls, false, 0);
	if (ret != SPI_OK_UPDATE)
		elog(ERROR, "recording the end of a unit failed: %s", SPI_result_code_string(ret));
	if (SPI_processed != 1)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("unit %d of table %s in run " INT64_FORMAT " was taken over by another worker",
						u->range_no, get_rel_name(u->target), run_id),
				 errhint("Only one worker may own a unit; this one stops.")));
	migrate_restore_identity(&saved);
}

/*
 * The unit stopped between two batches, in state "cancelled" or
 * "interrupted"; its checkpoint stays for a resume.  A unit this worker no
 * longer owns is left alone.
 */
void
migrate_catalog_unit_stopped(int64 run_id, const MigrateUnit *u, const char *state)
{
	Oid			argtypes[5] = {INT8OID, OIDOID, INT4OID, INT4OID, TEXTOID};
	Datum		args[5];

	Assert(strcmp(state, "cancelled") == 0 || strcmp(state, "interrupted") == 0);
	args[0] = Int64GetDatum(run_id);
	args[1] = ObjectIdGetDatum(u->target);
	args[2] = Int32GetDatum(u->range_no);
	args[3] = Int32GetDatum(MyProcPid);
	args[4] = CStringGetTextDatum(state);
	(void) migrate_catalog_exec("UPDATE migrate.run_range SET state = $5, finished_at = pg_catalog.clock_timestamp()"
						" WHERE run_id = $1 AND target = $2 AND range_no = $3"
						"   AND worker_pid = $4 AND state = 'running'",
						5, argtypes, args, NULL,
						SPI_OK_UPDATE, "recording a stopped unit");
}

/*
 * A helper failed with the error message: its running unit fails (with the
 * error's SQLSTATE, which the coordinator re-raises), and so does target's
 * table.  In a transaction of its own after the failed one was aborted.
 */
void
migrate_catalog_unit_failed(int64 run_id, Oid target, const char *message, int sqlerrcode)
{
	Oid			argtypes[5] = {INT8OID, INT4OID, TEXTOID, TEXTOID, OIDOID};
	Datum		args[5];

	args[0] = Int64GetDatum(run_id);
	args[1] = Int32GetDatum(MyProcPid);
	args[2] = CStringGetTextDatum(message);
	args[3] = CStringGetTextDatum(unpack_sql_state(sqlerrcode));
	args[4] = ObjectIdGetDatum(target);
	(void) migrate_catalog_exec("WITH u AS (UPDATE migrate.run_range SET state = 'failed', error = $3,"
						"   sqlstate = $4, finished_at = pg_catalog.clock_timestamp()"
						"   WHERE run_id = $1 AND worker_pid = $2 AND state = 'running' RETURNING 1)"
						" UPDATE migrate.run_table SET state = 'failed', error = $3, finished_at = pg_catalog.now()"
						" WHERE run_id = $1 AND target = $5",
						5, argtypes, args, NULL,
						SPI_OK_UPDATE, "recording a helper's failure");
}

/* ---------------------------------------------------------------------
 * Trickle sync (sync.c): sync units and migrate.sync_state, each write in
 * the transaction of what it records (an apply's rows, rejects, position).
 * --------------------------------------------------------------------- */

/*
 * A unit of a table in a sync run: its pass (range 1, when the run is
 * planned), or the retry of deletes a foreign key refused (range 2, which
 * waits for every pass of the run).
 */
void
migrate_catalog_add_sync_unit(int64 run_id, Oid target, int range_no)
{
	Oid			argtypes[3] = {INT8OID, OIDOID, INT4OID};
	Datum		args[3] = {Int64GetDatum(run_id), ObjectIdGetDatum(target), Int32GetDatum(range_no)};

	(void) migrate_catalog_exec("INSERT INTO migrate.run_range (run_id, target, range_no, kind)"
						" VALUES ($1, $2, $3, 'sync')",
						3, argtypes, args, NULL, SPI_OK_INSERT, "inserting into migrate.run_range");
}

/* ---------------------------------------------------------------------
 * SQL-callable: the writes of the SQL functions (plan, verify, diff,
 * report, cancel, status), so that they too go through this file.  Each
 * first checks, as its caller, that the run or plan is one the caller may
 * see (row-level security) and whose owner it is a member of; then writes
 * as the catalog's owner, in the caller's name.
 * ---------------------------------------------------------------------
 */

void
migrate_catalog_spi_connect(void)
{
	int			ret;

	if ((ret = SPI_connect()) != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed: %s", SPI_result_code_string(ret));
}

/*
 * Run one of this file's writes as the extension's owner (see the top of
 * this file) and check that SPI gave expected; what names the write in the
 * error.  Returns SPI_processed (SPI_tuptable is the statement's).
 */
uint64
migrate_catalog_exec(const char *sql, int nargs, Oid *argtypes, Datum *args,
			 const char *nulls, int expected, const char *what)
{
	MigrateIdentity saved;
	int			ret;

	migrate_become_catalog_owner(&saved);
	ret = SPI_execute_with_args(sql, nargs, argtypes, args, nulls, false, 0);
	if (ret != expected)
		elog(ERROR, "%s failed: %s", what, SPI_result_code_string(ret));
	migrate_restore_identity(&saved);
	return SPI_processed;
}

void
migrate_catalog_spi_finish(void)
{
	int			ret;

	if ((ret = SPI_finish()) != SPI_OK_FINISH)
		elog(ERROR, "SPI_finish failed: %s", SPI_result_code_string(ret));
}

/*
 * As the caller: the run exists for it (42704 otherwise: row-level
 * security hides other owners' runs) and it is a member of the run's owner
 * (42501).  Needs SPI.  Returns the run's plan.
 */
char *
migrate_catalog_check_run_caller(int64 run_id)
{
	Oid			argtypes[1] = {INT8OID};
	Datum		args[1] = {Int64GetDatum(run_id)};
	bool		isnull;
	Oid			owner;
	char	   *plan;
	int			ret;

	ret = SPI_execute_with_args("SELECT r.owner::pg_catalog.oid, r.plan FROM migrate.run r WHERE r.run_id = $1",
								1, argtypes, args, NULL, true, 1);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "reading migrate.run failed: %s", SPI_result_code_string(ret));
	if (SPI_processed != 1)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("migration run " INT64_FORMAT " does not exist", run_id),
				 errhint("See migrate_status(); a run of a role you are not a member of is not visible.")));
	owner = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	plan = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);
	/* a run without owner (made before 0.4) is seen by superusers only */
	if (!isnull)
		migrate_check_member(owner, plan);
	return plan;
}

/*
 * migrate._catalog_event(run bigint, plan text, event text, details text)
 * returns void
 *
 * An entry in the audit log (run and details may be NULL), in the name of
 * the caller, for a run or plan of the caller's.
 */
Datum
migrate_catalog_event_sql(PG_FUNCTION_ARGS)
{
	char	   *plan = PG_ARGISNULL(1) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(1));
	char	   *details = PG_ARGISNULL(3) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(3));
	char	   *event;

	if (PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("event of migrate._catalog_event() must not be null")));
	event = text_to_cstring(PG_GETARG_TEXT_PP(2));
	migrate_catalog_spi_connect();
	if (!PG_ARGISNULL(0))
	{
		char	   *run_plan = migrate_catalog_check_run_caller(PG_GETARG_INT64(0));

		if (plan != NULL && strcmp(plan, run_plan) != 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("migration run " INT64_FORMAT " is not a run of plan \"%s\"",
							PG_GETARG_INT64(0), plan)));
	}
	else if (plan != NULL)
		migrate_check_member(migrate_plan_owner(plan, false), plan);
	else if (!superuser())
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("an event of migrate._catalog_event() must name a run or a plan")));
	migrate_check_event_writer(PG_ARGISNULL(0) ? plan : NULL, event, details);
	migrate_catalog_event(PG_ARGISNULL(0) ? 0 : PG_GETARG_INT64(0), plan, event, details);
	migrate_catalog_spi_finish();
	PG_RETURN_VOID();
}

/*
 * migrate._catalog_verified(run bigint, passed boolean, details text)
 * returns void
 *
 * migrate_verify() checked the run: run.verified and verified_at, and the
 * event "run verified" or "verification failed" with details.
 */
Datum
migrate_catalog_verified_sql(PG_FUNCTION_ARGS)
{
	Oid			argtypes[4] = {INT8OID, BOOLOID, TEXTOID, TEXTOID};
	Datum		args[4];
	char		nulls[4] = "    ";
	int			ret;
	MigrateIdentity saved;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("run and passed of migrate._catalog_verified() must not be null")));
	args[0] = PG_GETARG_DATUM(0);
	args[1] = PG_GETARG_DATUM(1);
	args[2] = PG_ARGISNULL(2) ? (Datum) 0 : PG_GETARG_DATUM(2);
	nulls[2] = PG_ARGISNULL(2) ? 'n' : ' ';
	args[3] = CStringGetTextDatum(current_actor());
	migrate_catalog_spi_connect();
	(void) migrate_catalog_check_run_caller(PG_GETARG_INT64(0));
	migrate_check_own_writer("migrate._catalog_verified()", "_migrate_verify", "migrate_verify()");
	migrate_become_catalog_owner(&saved);
	ret = SPI_execute_with_args("WITH r AS (UPDATE migrate.run SET verified = $2, verified_at = pg_catalog.now()"
								"   WHERE run_id = $1 RETURNING run_id, plan)"
								" INSERT INTO migrate.event (run_id, plan, actor, event, details)"
								" SELECT run_id, plan, $4, CASE WHEN $2 THEN 'run verified' ELSE 'verification failed' END, $3"
								"   FROM r",
								4, argtypes, args, nulls, false, 0);
	if (ret != SPI_OK_INSERT)
		elog(ERROR, "recording the verification of run " INT64_FORMAT " failed: %s",
			 PG_GETARG_INT64(0), SPI_result_code_string(ret));
	if (SPI_processed != 1)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("migration run " INT64_FORMAT " does not exist", PG_GETARG_INT64(0))));
	migrate_restore_identity(&saved);
	migrate_catalog_spi_finish();
	PG_RETURN_VOID();
}

/*
 * migrate._catalog_report(run bigint, report text) returns void
 *
 * Keep the last report of the run (migrate_report()) in run.report.
 */
Datum
migrate_catalog_report_sql(PG_FUNCTION_ARGS)
{
	Oid			argtypes[2] = {INT8OID, TEXTOID};
	Datum		args[2];
	char		nulls[2] = "  ";

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("run of migrate._catalog_report() must not be null")));
	args[0] = PG_GETARG_DATUM(0);
	args[1] = PG_ARGISNULL(1) ? (Datum) 0 : PG_GETARG_DATUM(1);
	nulls[1] = PG_ARGISNULL(1) ? 'n' : ' ';
	migrate_catalog_spi_connect();
	(void) migrate_catalog_check_run_caller(PG_GETARG_INT64(0));
	migrate_check_own_writer("migrate._catalog_report()", "_migrate_report", "migrate_report()");
	(void) migrate_catalog_exec("UPDATE migrate.run SET report = $2 WHERE run_id = $1",
						2, argtypes, args, nulls,
						SPI_OK_UPDATE, psprintf("saving the report of run " INT64_FORMAT "", PG_GETARG_INT64(0)));
	migrate_catalog_spi_finish();
	PG_RETURN_VOID();
}

/*
 * migrate._catalog_cancel(run bigint) returns boolean
 *
 * migrate_cancel(): ask the run to stop at its next batch boundary, with
 * an event in the caller's name.  False when the run is not running.
 */
Datum
migrate_catalog_cancel_sql(PG_FUNCTION_ARGS)
{
	bool		requested;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("run of migrate._catalog_cancel() must not be null")));
	migrate_catalog_spi_connect();
	(void) migrate_catalog_check_run_caller(PG_GETARG_INT64(0));
	requested = migrate_catalog_request_cancel(PG_GETARG_INT64(0), false);
	migrate_catalog_spi_finish();
	PG_RETURN_BOOL(requested);
}

/*
 * migrate._catalog_reap() returns integer
 *
 * Runs left "running" whose plan's lock nobody holds (their worker is
 * gone) become interrupted; returns how many.  The same transition a
 * coordinator makes when it takes a plan's lock.  Safe for any caller: it
 * changes only runs that are dead, as they are, whoever owns them.
 */
Datum
migrate_catalog_reap_sql(PG_FUNCTION_ARGS)
{
	int			n;

	migrate_catalog_spi_connect();
	n = migrate_catalog_interrupt_dead_runs(NULL);
	migrate_catalog_spi_finish();
	PG_RETURN_INT32(n);
}
