/*-------------------------------------------------------------------------
 *
 * worker.c
 *	  The background workers of a run: its coordinator and its helpers.
 *
 * Every worker first takes one of the cluster's worker slots
 * (migrate.max_workers_total; see migrate.h).  The coordinator drives the
 * run: it takes the plan's lock for the whole run (one run per plan; a
 * second one is refused; a run whose lock nobody holds is dead, see
 * migrate._reap; no SQL session can take it), marks runs of the plan
 * that a crash or a kill left "running" as interrupted, commits the run
 * row and one run_table row per table in foreign-key order, then cuts the
 * tables into units (units.c: key ranges; defer.c: deferred index and
 * foreign key rebuilds) and starts parallel - 1 helpers.  Coordinator and
 * helpers then run the same loop: claim the next pending unit whose tables
 * of lower foreign-key depth are all done (FOR UPDATE SKIP LOCKED), work
 * it (load.c, defer.c), repeat.  migrate_resume() starts a coordinator on
 * an existing run: units not succeeded go back to pending and continue
 * from their checkpoints.  Every state change is written by catalog.c;
 * the loaders ask this file whether to stop only through the callback
 * MigrateWork.should_stop, so they never call back into it.
 *
 * Every catalog touch is its own transaction.  An error in a helper marks
 * its unit failed; the coordinator sees that at its next check, stops the
 * helpers and fails the run.  A helper that vanishes (terminated, killed)
 * interrupts the run.  The run's error (with its SQLSTATE, detail and hint)
 * is handed to the waiting backend through the shared segment, which
 * re-raises it.  All workers run as the plan's owner (never as the role
 * that called migrate_run(), which may be a superuser or a pg_cron job):
 * they connect as the bootstrap superuser, which needs no LOGIN of the
 * owner, and become the owner before anything else, for good (owner.c:
 * the owner's SQL cannot SET ROLE back).  They work in the caller's
 * database, with the run's search_path (the caller's, kept in migrate.run)
 * for the owner's expressions; their own statements are fully qualified.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <stdio.h>

#include "access/xact.h"
#include "catalog/pg_collation.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "storage/dsm.h"
#include "storage/ipc.h"
#include "storage/lock.h"
#include "storage/proc.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"

#include "migrate.h"
#include "owner.h"
#include "remote.h"

static bool take_plan_lock(const char *plan);
static bool take_worker_slot(int max_total);
static int	free_worker_slots(int max_total);
static void take_coordinator_slot(MigrateRunShared *shared);
static void check_own_locks(MigrateWork *w);
static int64 worker_start_run(MigrateRunShared *shared);
static void worker_resume_run(MigrateRunShared *shared);
static void worker_plan_units(MigrateWork *w);
static void start_helpers(MigrateWork *w);
static void stop_helpers(void);
static const char *work_loop(MigrateWork *w);
static bool claim_unit(MigrateWork *w, MigrateUnit *u, MemoryContext cxt, bool *nothing_left);
static void sweep_tables(MigrateWork *w);
static const char *work_should_stop(MigrateWork *w);
static void worker_finish_run(MigrateWork *w, const char *state);
static void worker_fail_run(MigrateWork *w, ErrorData *edata);
static void worker_report(MigrateRunShared *shared, MigratePhase phase, int64 run_id,
						  ErrorData *edata);
static void connect_worker(Oid database_id, Oid owner);
static void set_run_search_path(const char *search_path);

static Oid	current_target = InvalidOid;	/* table being worked on, for failures */
static Oid	run_owner = InvalidOid;	/* the plan's owner: this worker's role */

/* this worker's slot and (coordinator) plan lock, checked at batch boundaries */
static LOCKTAG slot_tag;
static bool have_slot = false;
static LOCKTAG plan_tag;
static bool have_plan_lock = false;

/* coordinator: its helpers */
static BackgroundWorkerHandle *helper_handles[MIGRATE_MAX_PARALLEL];
static pid_t helper_pids[MIGRATE_MAX_PARALLEL];
static int	nhelpers = 0;
static bool helper_vanished = false;	/* the run ends interrupted */
static bool foreign_error = false;	/* raised for another worker's failure */


/*
 * Should this worker stop at this batch boundary?  Returns "cancelled"
 * (migrate_cancel(), or the caller's wait was cancelled), "interrupted"
 * (a helper stops because another worker failed), or NULL.  The
 * coordinator raises instead: another worker's error, or a helper gone.
 * Needs SPI and a transaction.
 */
static const char *
work_should_stop(MigrateWork *w)
{
	Oid			argtypes[1] = {INT8OID};
	Datum		args[1] = {Int64GetDatum(w->run_id)};
	bool		isnull;
	int			ret;

	check_own_locks(w);
	if (w->shared)
	{
		bool		requested;

		SpinLockAcquire(&w->shared->mutex);
		requested = w->shared->cancel_requested;
		SpinLockRelease(&w->shared->mutex);
		if (requested)
		{
			/* the caller's wait was cancelled: say so where migrate_cancel would */
			(void) migrate_catalog_request_cancel(w->run_id, true);
			/* helpers see the flag in the catalog */
			return "cancelled";
		}
	}

	ret = SPI_execute_with_args("SELECT r.cancel_requested,"
								"       (SELECT u.sqlstate FROM migrate.run_range u"
								"         WHERE u.run_id = r.run_id AND u.state = 'failed' LIMIT 1),"
								"       (SELECT u.target::pg_catalog.text || ': ' || u.error FROM migrate.run_range u"
								"         WHERE u.run_id = r.run_id AND u.state = 'failed' LIMIT 1)"
								"  FROM migrate.run r WHERE r.run_id = $1",
								1, argtypes, args, NULL, false, 1);
	if (ret != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "reading migrate.run failed: %s", SPI_result_code_string(ret));
	if (DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)))
		return "cancelled";
	{
		char	   *sqlstate = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);

		if (sqlstate != NULL)
		{
			char	   *msg = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3);

			if (w->shared == NULL)
				return "interrupted";
			foreign_error = true;
			current_target = InvalidOid;
			ereport(ERROR,
					(errcode(strlen(sqlstate) == 5 ?
							 MAKE_SQLSTATE(sqlstate[0], sqlstate[1], sqlstate[2], sqlstate[3], sqlstate[4]) :
							 ERRCODE_INTERNAL_ERROR),
					 errmsg("%s", msg ? msg : "a worker failed"),
					 errdetail("A helper worker of run " INT64_FORMAT " failed; see migrate.run_range.",
							   w->run_id),
					 errhint("Fix the cause, then continue with migrate_resume(" INT64_FORMAT ").",
							 w->run_id)));
		}
	}

	/* a helper that is gone while it owns a running unit was terminated */
	for (int i = 0; i < nhelpers; i++)
	{
		pid_t		pid;
		Oid			htypes[2] = {INT8OID, INT4OID};
		Datum		hargs[2];

		if (helper_handles[i] == NULL ||
			GetBackgroundWorkerPid(helper_handles[i], &pid) != BGWH_STOPPED)
			continue;
		hargs[0] = Int64GetDatum(w->run_id);
		hargs[1] = Int32GetDatum(helper_pids[i]);
		ret = SPI_execute_with_args("SELECT 1 FROM migrate.run_range WHERE run_id = $1"
									" AND worker_pid = $2 AND state = 'running'",
									2, htypes, hargs, NULL, false, 1);
		if (ret != SPI_OK_SELECT)
			elog(ERROR, "reading migrate.run_range failed: %s", SPI_result_code_string(ret));
		if (SPI_processed > 0)
		{
			helper_vanished = true;
			foreign_error = true;
			current_target = InvalidOid;
			ereport(ERROR,
					(errcode(ERRCODE_ADMIN_SHUTDOWN),
					 errmsg("worker %d of run " INT64_FORMAT " of plan \"%s\" ended without finishing its work",
							(int) helper_pids[i], w->run_id, w->plan),
					 errdetail("It was terminated or crashed; its last batch was rolled back, its committed batches are kept."),
					 errhint("Continue the run with migrate_resume(" INT64_FORMAT ").", w->run_id)));
		}
		helper_handles[i] = NULL;	/* it finished normally */
	}
	return NULL;
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
	{
		LockReleaseAll(USER_LOCKMETHOD, true);
		have_slot = have_plan_lock = false;
	}

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
 * Take the plan's lock (session level, held until the run ends), or raise
 * "already running".  The lock's tag (see migrate.h) is one no SQL
 * advisory lock function produces, so no other session can hold it to
 * block the plan.  Needs SPI and a transaction.  Then marks runs of the
 * plan still "running" as interrupted: their worker is gone (the same
 * transition migrate._reap makes for runs whose lock nobody holds).
 */
static bool
take_plan_lock(const char *plan)
{
	LOCKTAG		tag;
	uint32		key;

	/* hashtext(plan)::oid, as migrate._plan_locked() finds it in pg_locks */
	key = DatumGetUInt32(DirectFunctionCall1Coll(hashtext, DEFAULT_COLLATION_OID,
												 CStringGetTextDatum(plan)));
	SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, MIGRATE_LOCK_CLASS, key, MIGRATE_LOCK_PLAN);
	if (LockAcquire(&tag, ExclusiveLock, true, true) != LOCKACQUIRE_NOT_AVAIL)
	{
		plan_tag = tag;
		have_plan_lock = true;
	}
	else
	{
		Oid			argtypes[1] = {TEXTOID};
		Datum		args[1] = {CStringGetTextDatum(plan)};
		char	   *other = NULL;
		int			ret;

		ret = SPI_execute_with_args("SELECT max(run_id)::text FROM migrate.run"
									" WHERE plan = $1 AND state = 'running'",
									1, argtypes, args, NULL, true, 1);
		if (ret == SPI_OK_SELECT && SPI_processed == 1)
			other = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_IN_USE),
				 errmsg("migration plan \"%s\" is already running%s%s%s", plan,
						other ? " (run " : " (its run is starting)", other ? other : "", other ? ")" : ""),
				 errdetail("Only one run of a plan may be active at a time."),
				 errhint("Wait for it to finish, or stop it with migrate_cancel(%s).",
						 other ? other : "run_id")));
	}

	/* we hold the lock: any run still "running" died without finishing */
	(void) migrate_catalog_interrupt_dead_runs(plan);
	return true;
}

/*
 * Take a free worker slot: one of max_total cluster-wide session locks
 * (see migrate.h), held until this process ends, so a crash or a kill
 * frees it too.  Returns false when all are held.  Trying each slot is
 * atomic, so two workers racing never share one.
 */
static bool
take_worker_slot(int max_total)
{
	for (int slot = 0; slot < max_total; slot++)
	{
		LOCKTAG		tag;

		SET_LOCKTAG_ADVISORY(tag, InvalidOid, MIGRATE_LOCK_CLASS, (uint32) slot, MIGRATE_LOCK_SLOT);
		if (LockAcquire(&tag, ExclusiveLock, true, true) != LOCKACQUIRE_NOT_AVAIL)
		{
			slot_tag = tag;
			have_slot = true;
			return true;
		}
	}
	return false;
}

/*
 * The run's own SQL (an expression, a rule, a target's trigger) runs in
 * this process and could give up its locks with pg_advisory_unlock_all(),
 * which releases every session lock of the advisory lock method: then the
 * worker stops here, at the next batch boundary, rather than run beyond
 * the cap or beside a second run of its plan.
 */
static void
check_own_locks(MigrateWork *w)
{
	if ((have_slot && !LockHeldByMe(&slot_tag, ExclusiveLock)) ||
		(have_plan_lock && !LockHeldByMe(&plan_tag, ExclusiveLock)))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("a worker of run " INT64_FORMAT " of plan \"%s\" lost its %s",
						w->run_id, w->plan,
						have_slot && !LockHeldByMe(&slot_tag, ExclusiveLock) ? "worker slot" : "plan lock"),
				 errdetail("A statement of the run released its session locks (pg_advisory_unlock_all())."),
				 errhint("Keep pg_advisory_unlock_all() out of mapping expressions, rules and the target's triggers; migrate_resume(" INT64_FORMAT ") continues the run.",
						 w->run_id)));
}

/*
 * How many of slots 0..max_total-1 no worker holds: how many helpers the
 * coordinator starts.  Only read (taking and releasing one here could make
 * another worker's try fail); each helper then takes its own slot, and one
 * that loses a race for it ends without working.
 */
static int
free_worker_slots(int max_total)
{
	LockData   *locks = GetLockStatusData();
	bool	   *held = palloc0(sizeof(bool) * max_total);
	int			nfree = 0;

	for (int i = 0; i < locks->nelements; i++)
	{
		LOCKTAG    *t = &locks->locks[i].locktag;

		if (t->locktag_type == LOCKTAG_ADVISORY && t->locktag_field1 == InvalidOid &&
			t->locktag_field2 == MIGRATE_LOCK_CLASS && t->locktag_field4 == MIGRATE_LOCK_SLOT &&
			t->locktag_field3 < (uint32) max_total && locks->locks[i].holdMask != 0)
			held[t->locktag_field3] = true;
	}
	for (int slot = 0; slot < max_total; slot++)
		nfree += held[slot] ? 0 : 1;
	pfree(held);
	return nfree;
}

/* The coordinator's slot, before anything of the run is written. */
static void
take_coordinator_slot(MigrateRunShared *shared)
{
	if (!take_worker_slot(shared->max_workers_total))
		ereport(ERROR,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("too many migrate workers are running to start a run of plan \"%s\"",
						shared->plan),
				 errdetail("All %d worker slots (migrate.max_workers_total) are held by workers of other runs.",
						   shared->max_workers_total),
				 errhint("Wait for other runs to finish, or ask a superuser to raise migrate.max_workers_total. "
						 "A run that gets a slot starts only as many helpers as there are free slots, with a NOTICE.")));
}

/*
 * Take the plan's lock and commit the run's rows.  Returns the run id.
 */
static int64
worker_start_run(MigrateRunShared *shared)
{
	int64		run_id;

	migrate_begin_txn();
	take_coordinator_slot(shared);
	take_plan_lock(shared->plan);
	run_id = migrate_catalog_run_start(shared);
	migrate_commit_txn();
	return run_id;
}

/*
 * migrate_resume(): take the plan's lock and put the run back to running;
 * its units that did not succeed go back to pending, each continuing from
 * its checkpoint.
 */
static void
worker_resume_run(MigrateRunShared *shared)
{
	migrate_begin_txn();
	take_coordinator_slot(shared);
	take_plan_lock(shared->plan);
	migrate_catalog_run_resume(shared->resume_run_id, shared->plan);
	migrate_commit_txn();
}

/*
 * Cut the run's tables into units (key ranges; with defer_indexes, the
 * index and foreign key rebuilds) in one transaction, so that a crash
 * leaves either all of them or none.
 */
static void
worker_plan_units(MigrateWork *w)
{
	Oid			argtypes[1] = {INT8OID};
	Datum		args[1] = {Int64GetDatum(w->run_id)};
	bool		defer;
	bool		isnull;
	Oid		   *targets;
	int			ntargets;
	int			ret;

	migrate_begin_txn();
	ret = SPI_execute_with_args("SELECT planned, defer_indexes AND NOT dry_run FROM migrate.run WHERE run_id = $1",
								1, argtypes, args, NULL, false, 1);
	if (ret != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "reading migrate.run failed: %s", SPI_result_code_string(ret));
	if (DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)))
	{
		migrate_commit_txn();
		return;
	}
	defer = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
	ret = SPI_execute_with_args("SELECT target::pg_catalog.oid FROM migrate.run_table WHERE run_id = $1"
								" ORDER BY load_order", 1, argtypes, args, NULL, false, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "reading migrate.run_table failed: %s", SPI_result_code_string(ret));
	ntargets = SPI_processed;
	/* kept across the arming transactions of an incremental run */
	targets = MemoryContextAlloc(TopMemoryContext, sizeof(Oid) * Max(ntargets, 1));
	for (int i = 0; i < ntargets; i++)
		targets[i] = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[i],
													SPI_tuptable->tupdesc, 1, &isnull));
	/* before any batch: whether and how each table's writes can be undone */
	for (int i = 0; i < ntargets; i++)
		migrate_undo_decide(w, targets[i]);
	if (strcmp(w->mode, "sync") == 0)
	{
		/* a sync pass: one unit per table, parents first; nothing dropped */
		for (int i = 0; i < ntargets; i++)
			migrate_catalog_add_sync_unit(w->run_id, targets[i], 1);
	}
	else
	{
		/*
		 * incremental: capture is armed (a slot created, triggers
		 * installed, the watermark's start taken) before any row is read,
		 * so nothing written during the load is missed.  Each table in a
		 * transaction of its own that has written nothing when a slot is
		 * created: creating one waits for the transactions running on the
		 * source, which on a loopback source would include this one.
		 */
		if (strcmp(w->mode, "incremental") == 0 && !w->dry_run)
		{
			migrate_commit_txn();
			for (int i = 0; i < ntargets; i++)
			{
				current_target = targets[i];
				migrate_begin_txn();
				migrate_sync_arm(w, targets[i]);
				migrate_commit_txn();
			}
			migrate_begin_txn();
		}
		/* the foreign keys no load order satisfies, whatever the plan defers */
		if (!w->dry_run)
			migrate_break_fk_cycles(w, targets, ntargets);
		for (int i = 0; i < ntargets; i++)
		{
			current_target = targets[i];
			migrate_plan_ranges(w, targets[i]);
			if (defer)
				migrate_defer_table(w, targets[i]);
		}
	}
	current_target = InvalidOid;
	pfree(targets);
	migrate_catalog_run_planned(w->run_id);
	migrate_commit_txn();
	migrate_worker_notice(w->shared, "run " INT64_FORMAT " of plan \"%s\": %d table%s, %d worker%s%s",
						  w->run_id, w->plan, ntargets, ntargets == 1 ? "" : "s",
						  w->parallel, w->parallel == 1 ? "" : "s",
						  w->dry_run ? " (dry run: no target row is written)" : "");
}

/*
 * Start parallel - 1 helpers, or as many as there are free worker slots
 * (migrate.max_workers_total, with a NOTICE); all of those or none (the
 * error hints the setting).
 */
static void
start_helpers(MigrateWork *w)
{
	int			want = Min(w->parallel, w->max_workers_total) - 1;
	int			nstart = want > 0 ? Min(want, free_worker_slots(w->max_workers_total)) : 0;

	if (nstart < w->parallel - 1)
		migrate_worker_notice(w->shared,
							  "run " INT64_FORMAT " of plan \"%s\": %d of %d helper workers started: migrate.max_workers_total (%d) caps the workers of all runs",
							  w->run_id, w->plan, nstart, w->parallel - 1, w->max_workers_total);
	for (int i = 0; i < nstart; i++)
	{
		BackgroundWorker worker;
		BgwHandleStatus status;

		migrate_worker_template(&worker, "migrate_helper_main", "migrate worker",
								psprintf("migrate helper %d of run " INT64_FORMAT, i + 1, w->run_id));
		worker.bgw_main_arg = Int64GetDatum(w->run_id);
		/* the database and the plan's owner, which the helper becomes */
		memcpy(worker.bgw_extra, &MyDatabaseId, sizeof(Oid));
		memcpy(worker.bgw_extra + sizeof(Oid), &run_owner, sizeof(Oid));
		/* the cap the coordinator runs under: the helper's slots */
		memcpy(worker.bgw_extra + 2 * sizeof(Oid), &w->max_workers_total, sizeof(int));
		if (!RegisterDynamicBackgroundWorker(&worker, &helper_handles[nhelpers]))
			ereport(ERROR,
					(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
					 errmsg("could not start helper worker %d of %d for run " INT64_FORMAT " of plan \"%s\"",
							i + 2, w->parallel, w->run_id, w->plan),
					 errdetail("All background worker slots are in use."),
					 errhint("Raise max_worker_processes (now %d) and restart the server, or pass a smaller parallel; migrate_resume(" INT64_FORMAT ") continues the run.",
							 max_worker_processes, w->run_id)));
		status = WaitForBackgroundWorkerStartup(helper_handles[nhelpers], &helper_pids[nhelpers]);
		if (status != BGWH_STARTED)
			ereport(ERROR,
					(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
					 errmsg("helper worker %d of run " INT64_FORMAT " of plan \"%s\" did not start",
							i + 2, w->run_id, w->plan),
					 errhint("See the server log; migrate_resume(" INT64_FORMAT ") continues the run.", w->run_id)));
		nhelpers++;
	}
}

/* Terminate the helpers still running and wait until they are gone. */
static void
stop_helpers(void)
{
	for (int i = 0; i < nhelpers; i++)
	{
		if (helper_handles[i] == NULL)
			continue;
		TerminateBackgroundWorker(helper_handles[i]);
		(void) WaitForBackgroundWorkerShutdown(helper_handles[i]);
		helper_handles[i] = NULL;
	}
}

/*
 * Claim the next unit this worker may work on (see
 * migrate_catalog_claim_unit); its table is running from then on.  Needs
 * SPI and a transaction; the unit's strings are copied into cxt.
 */
static bool
claim_unit(MigrateWork *w, MigrateUnit *u, MemoryContext cxt, bool *nothing_left)
{
	if (!migrate_catalog_claim_unit(w->run_id, u, cxt, nothing_left))
		return false;
	migrate_catalog_table_started(w->run_id, u->target);
	return true;
}

/*
 * Coordinator: mark tables whose units all succeeded, and say so.  A table
 * whose rejects are above its reject_limit is failed by catalog.c (with
 * its error and an event, committed here); then the run fails with that
 * table's error (22000, see MIGRATE_ERRCODE_REJECT_LIMIT): its rows and
 * rejects stay, and migrate_resume() judges it again on its totals.  One
 * above its reject_warn gets a NOTICE.
 */
static void
sweep_tables(MigrateWork *w)
{
	List	   *done;
	ListCell   *lc;
	MigrateTableDone *failed = NULL;

	migrate_begin_txn();
	done = migrate_catalog_tables_succeeded(w->run_id);
	foreach(lc, done)
	{
		MigrateTableDone *t = lfirst(lc);

		if (t->error)
		{
			if (failed == NULL)
				failed = t;
			continue;
		}
		migrate_worker_notice(w->shared,
							  "loaded %s: " INT64_FORMAT " read, " INT64_FORMAT " %s, " INT64_FORMAT " rejected, " INT64_FORMAT " skipped in %.1f s (%.0f rows/s%s" INT64_FORMAT " unit%s)",
							  t->target, t->counts.read, t->counts.written,
							  w->dry_run ? "would be written" : "written",
							  t->counts.rejected, t->counts.skipped,
							  t->seconds, t->seconds > 0 ? t->counts.read / t->seconds : 0.0,
							  ", ", t->units, t->units == 1 ? "" : "s");
		if (t->warning)
			migrate_worker_notice(w->shared, "%s", t->warning);
	}
	migrate_commit_txn();
	if (failed)
	{
		current_target = failed->target_oid;
		ereport(ERROR,
				(errcode(MIGRATE_ERRCODE_REJECT_LIMIT),
				 errmsg("%s", failed->error),
				 errdetail("Its rows stay loaded (" INT64_FORMAT " %s) and its rejects stay in migrate.reject (" INT64_FORMAT ").",
						   failed->counts.written, w->dry_run ? "would be written" : "written",
						   failed->counts.rejected),
				 errhint("Raise its reject_limit (migrate_table(..., options => '{\"reject_limit\": 0.5}'), or null for none) "
						 "and continue with migrate_resume(" INT64_FORMAT "), or fix the source data and run the table again.",
						 w->run_id)));
	}
}

/*
 * Claim and work units until none is left (returns "succeeded") or the
 * run stops ("cancelled", "interrupted").
 */
static const char *
work_loop(MigrateWork *w)
{
	MemoryContext unitcxt = AllocSetContextCreate(TopMemoryContext, "migrate unit",
												  ALLOCSET_SMALL_SIZES);

	for (;;)
	{
		MigrateUnit unit;
		const char *stop;
		bool		claimed;
		bool		nothing_left;

		CHECK_FOR_INTERRUPTS();
		MemoryContextReset(unitcxt);
		migrate_begin_txn();
		stop = w->should_stop(w);
		if (stop)
		{
			migrate_commit_txn();
			return stop;
		}
		claimed = claim_unit(w, &unit, unitcxt, &nothing_left);
		migrate_commit_txn();

		if (!claimed)
		{
			if (nothing_left)
				return "succeeded";
			if (w->shared)
				sweep_tables(w);
			/* units are running elsewhere or wait for their parents */
			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
							 100L, PG_WAIT_EXTENSION);
			ResetLatch(MyLatch);
			continue;
		}

		current_target = unit.target;
		if (strcmp(unit.kind, "load") == 0)
			stop = migrate_load_range(w, &unit);
		else if (strcmp(unit.kind, "sync") == 0)
		{
			migrate_sync_unit(w, &unit);
			stop = NULL;
		}
		else
		{
			migrate_run_deferred(w, &unit);
			stop = NULL;
		}
		current_target = InvalidOid;
		if (stop)
			return stop;
		if (w->shared)
			sweep_tables(w);
	}
}

/* Record the run's end (succeeded or cancelled) and tell the caller. */
static void
worker_finish_run(MigrateWork *w, const char *state)
{
	migrate_worker_sample_memory();
	migrate_begin_txn();
	migrate_catalog_run_end(w->run_id, state, migrate_worker_peak_memory_kb(),
							migrate_worker_peak_rss_kb());
	migrate_commit_txn();

	migrate_worker_notice(w->shared, "run " INT64_FORMAT " %s", w->run_id, state);
	worker_report(w->shared, MIGRATE_PHASE_FINISHED, w->run_id, NULL);
}

/*
 * Record a failed (or, when a helper vanished, interrupted) run, if it got
 * as far as having a row, and hand the error to the caller.  Runs after
 * AbortCurrentTransaction, with the helpers stopped.
 */
static void
worker_fail_run(MigrateWork *w, ErrorData *edata)
{
	if (w->run_id > 0)
	{
		PG_TRY();
		{
			migrate_worker_sample_memory();
			migrate_begin_txn();
			migrate_catalog_run_fail(w->run_id, helper_vanished ? "interrupted" : "failed",
									 current_target,
									 edata->message ? edata->message : "unknown error",
									 edata->sqlerrcode, migrate_worker_peak_memory_kb(),
									 migrate_worker_peak_rss_kb());
			migrate_commit_txn();
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
	worker_report(w->shared, MIGRATE_PHASE_FINISHED, w->run_id, edata);
}

/*
 * Connect to the caller's database as the bootstrap superuser (no LOGIN
 * check: the owner may be a NOLOGIN group role) and become the plan's
 * owner at once, for the rest of the process: transactions start, and
 * aborted ones return to, the owner, and the owner's SQL cannot SET ROLE,
 * RESET ROLE or set_config('role', ...) its way back.
 */
static void
connect_worker(Oid database_id, Oid owner)
{
	MigrateIdentity saved;

	BackgroundWorkerInitializeConnectionByOid(database_id, InvalidOid, 0);
	migrate_check_version();
	SetConfigOption("application_name", "migrate worker", PGC_USERSET, PGC_S_SESSION);
	/* until the run's own is known (set_run_search_path) */
	SetConfigOption("search_path", MIGRATE_SAFE_SEARCH_PATH, PGC_USERSET, PGC_S_SESSION);
	pgstat_report_appname("migrate worker");

	/* in a transaction that commits: only an abort restores the identity */
	migrate_begin_txn();
	migrate_become_owner(owner, &saved);
	migrate_commit_txn();
	run_owner = owner;
}

/* The run's search_path (the caller's), for the owner's expressions. */
static void
set_run_search_path(const char *search_path)
{
	if (search_path)
		SetConfigOption("search_path", search_path, PGC_USERSET, PGC_S_SESSION);
}

/*
 * Entry point of a run's coordinator, registered by migrate_run() and
 * migrate_resume().  main_arg is the handle of the shared segment
 * describing the run.
 */
void
migrate_worker_main(Datum main_arg)
{
	dsm_segment *seg;
	MigrateRunShared *shared;
	MigrateWork *w;

	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	seg = dsm_attach(DatumGetUInt32(main_arg));
	if (seg == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("migrate worker could not map its shared memory segment"),
				 errdetail("The backend that called migrate_run() went away before the worker started.")));
	shared = dsm_segment_address(seg);

	connect_worker(shared->database_id, shared->owner_id);
	if (shared->resume_run_id == 0)
		set_run_search_path(shared->search_path);
	pgstat_report_activity(STATE_RUNNING, psprintf("migrate: starting a run of plan %s",
												   shared->plan));

	w = MemoryContextAllocZero(TopMemoryContext, sizeof(MigrateWork));
	w->shared = shared;
	w->should_stop = work_should_stop;
	strlcpy(w->plan, shared->plan, sizeof(w->plan));
	w->max_workers_total = Max(shared->max_workers_total, 1);
	migrate_remote_set_stop_check(work_should_stop, w);

	PG_TRY();
	{
		const char *state;

		if (shared->resume_run_id > 0)
		{
			w->run_id = shared->resume_run_id;
			worker_resume_run(shared);
		}
		else
			w->run_id = worker_start_run(shared);

		/* what the run was started with, also when it is resumed */
		migrate_begin_txn();
		{
			Oid			argtypes[1] = {INT8OID};
			Datum		args[1] = {Int64GetDatum(w->run_id)};
			bool		isnull;
			int			ret;

			ret = SPI_execute_with_args("SELECT dry_run, batch_size, parallel, search_path, mode, batch_bytes FROM migrate.run WHERE run_id = $1",
										1, argtypes, args, NULL, false, 1);
			if (ret != SPI_OK_SELECT || SPI_processed != 1)
				elog(ERROR, "reading migrate.run failed: %s", SPI_result_code_string(ret));
			/* the run's search_path (written by migrate), also when resumed */
			set_run_search_path(SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 4));
			w->dry_run = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
			w->batch_size = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
			w->parallel = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3, &isnull));
			strlcpy(w->mode, SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 5), sizeof(w->mode));
			w->batch_bytes = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 6, &isnull));
			if (isnull)
				w->batch_bytes = 0;
		}
		/* the plan's settings, for its expressions (as the owner may set them) */
		migrate_set_plan_settings(w->plan);
		migrate_commit_txn();

		worker_report(shared, MIGRATE_PHASE_RUNNING, w->run_id, NULL);
		worker_plan_units(w);
		start_helpers(w);
		state = work_loop(w);

		/* the helpers finish their units (or stop, when cancelled) */
		for (int i = 0; i < nhelpers; i++)
		{
			if (helper_handles[i])
				(void) WaitForBackgroundWorkerShutdown(helper_handles[i]);
		}
		/* a helper's failure, or a helper gone, raises here */
		migrate_begin_txn();
		(void) w->should_stop(w);
		migrate_commit_txn();
		sweep_tables(w);
		worker_finish_run(w, state);
	}
	PG_CATCH();
	{
		ErrorData  *edata;
		const char *stopped;

		HOLD_INTERRUPTS();
		MemoryContextSwitchTo(TopMemoryContext);
		edata = CopyErrorData();
		EmitErrorReport();
		FlushErrorState();
		AbortCurrentTransaction();
		migrate_route_end();
		stop_helpers();
		RESUME_INTERRUPTS();
		if (foreign_error && !helper_vanished)
			current_target = InvalidOid;
		if ((stopped = migrate_remote_stopped()) != NULL)
			worker_finish_run(w, stopped);	/* a wait for the source ended by the stop check */
		else
			worker_fail_run(w, edata);
	}
	PG_END_TRY();

	pgstat_report_activity(STATE_IDLE, NULL);
	dsm_detach(seg);
	proc_exit(0);
}

/*
 * Entry point of a helper, started by the coordinator.  main_arg is the run
 * id; bgw_extra holds the database and the plan's owner.  An error marks
 * the helper's unit (and table) failed, for the coordinator to see.
 */
void
migrate_helper_main(Datum main_arg)
{
	MigrateWork *w;
	Oid			database_id;
	Oid			owner;
	char	   *search_path = NULL;

	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	memcpy(&database_id, MyBgworkerEntry->bgw_extra, sizeof(Oid));
	memcpy(&owner, MyBgworkerEntry->bgw_extra + sizeof(Oid), sizeof(Oid));

	w = MemoryContextAllocZero(TopMemoryContext, sizeof(MigrateWork));
	memcpy(&w->max_workers_total, MyBgworkerEntry->bgw_extra + 2 * sizeof(Oid), sizeof(int));
	w->run_id = DatumGetInt64(main_arg);
	w->should_stop = work_should_stop;
	migrate_remote_set_stop_check(work_should_stop, w);

	connect_worker(database_id, owner);

	/* lost the race for a free slot (another run took it): the run goes on without us */
	if (!take_worker_slot(w->max_workers_total))
	{
		elog(LOG, "migrate helper of run " INT64_FORMAT " found no free worker slot (migrate.max_workers_total = %d) and ends without working",
			 w->run_id, w->max_workers_total);
		proc_exit(0);
	}

	migrate_begin_txn();
	{
		Oid			argtypes[2] = {INT8OID, OIDOID};
		Datum		args[2] = {Int64GetDatum(w->run_id), ObjectIdGetDatum(owner)};
		bool		isnull;
		int			ret;
		char	   *v;

		/* as the owner: a run of another owner is not found */
		ret = SPI_execute_with_args("SELECT plan, dry_run, batch_size, parallel, search_path, mode, batch_bytes"
									"  FROM migrate.run WHERE run_id = $1 AND owner::pg_catalog.oid = $2",
									2, argtypes, args, NULL, false, 1);
		if (ret != SPI_OK_SELECT || SPI_processed != 1)
			elog(ERROR, "run " INT64_FORMAT " of role %u not found: %s", w->run_id, owner,
				 SPI_result_code_string(ret));
		strlcpy(w->plan, SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1), sizeof(w->plan));
		w->dry_run = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
		w->batch_size = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3, &isnull));
		w->parallel = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 4, &isnull));
		v = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 5);
		if (v)
			search_path = MemoryContextStrdup(TopMemoryContext, v);
		strlcpy(w->mode, SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 6), sizeof(w->mode));
		w->batch_bytes = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 7, &isnull));
		if (isnull)
			w->batch_bytes = 0;
	}
	migrate_set_plan_settings(w->plan);
	migrate_commit_txn();
	set_run_search_path(search_path);
	pgstat_report_activity(STATE_RUNNING, psprintf("migrate: helper of run " INT64_FORMAT, w->run_id));

	PG_TRY();
	{
		(void) work_loop(w);
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
		if (migrate_remote_stopped())
			proc_exit(0);		/* the run stops: the coordinator records it */
		migrate_begin_txn();
		migrate_catalog_unit_failed(w->run_id, current_target,
									edata->message ? edata->message : "unknown error",
									edata->sqlerrcode);
		migrate_commit_txn();
	}
	PG_END_TRY();

	/* the run's peak memory is the greatest of its workers' */
	migrate_begin_txn();
	migrate_catalog_run_peak(w->run_id, migrate_worker_peak_rss_kb());
	migrate_commit_txn();

	pgstat_report_activity(STATE_IDLE, NULL);
	proc_exit(0);
}
