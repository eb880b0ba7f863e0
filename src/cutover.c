/*-------------------------------------------------------------------------
 *
 * cutover.c
 *	  Blue-green cutover: migrate_cutover() (fence, final sync, verify
 *	  gate, the live tables' locks, the swap of sql/cutover.sql, the record
 *	  in migrate.cutover) and the reverse of a swap, for migrate_rollback()
 *	  of a cutover's run.
 *
 * A plan's target_schema is a shadow of the live schema that its option
 * cutover_into names; every table has capture (trigger, slot or
 * watermark).  migrate_cutover(plan, lock_timeout, max_attempts), in the
 * caller's transaction (READ COMMITTED, so that each statement here sees
 * what the sync workers committed; best alone in its transaction, whose
 * end releases the locks):
 *
 *	 1. checks: cutover_into, capture, not running, not cut over already,
 *		the pairs (migrate._cutover_pairs);
 *	 2. the fence: migrate_sync() (a run of mode sync, in a worker); the
 *		tables' synced_to positions after it;
 *	 3. the verify gate: migrate_verify() and an empty migrate_diff() of
 *		every table, keys changed since the fence in flight (stable_for =
 *		the time since the fence plus a margin; a key that changed while
 *		the diff read it too; a count or checksum of a table that changed
 *		while it was verified proves nothing, the diff judges it); a
 *		failure raises 55000 naming the table and check, before any lock
 *		is taken;
 *	 4. when every table has trigger capture with a local change table
 *		and no source is remote, the final sync will run in this backend:
 *		its tables are described now (sync.c migrate_sync_local_prepare:
 *		the table's mapping, the apply's temporary tables, its statements
 *		planned), before the locks; then catch-up syncs (in workers) of
 *		the tables with pending changes, so that little is left for the
 *		final sync under the locks; the plan lock (no other run or sync
 *		may start until we commit);
 *	 5. the lock loop: each attempt a subtransaction with lock_timeout that
 *		takes every live table IN EXCLUSIVE MODE (writers wait, readers
 *		do not) in one fixed order; a timeout or deadlock rolls the attempt
 *		back (no lock kept), sleeps a jittered backoff and tries again;
 *	 6. under the locks: the final sync.  In this backend (local_sync),
 *		in this transaction: the run row first (rejects name it), then per
 *		table, parents first, the change rows read and deleted by one
 *		statement, their keys applied as a worker's pass applies them
 *		(re-read, upsert, gone deleted, rejects quarantined), a foreign
 *		key's refusals (of this sync or left by earlier ones) retried after
 *		every table, the positions and counts written by one statement; it
 *		commits with the swap or not at all (a truncated source, whose
 *		pass needs a diff, rolls it back for a sync in workers).  Otherwise in workers (a sync run): of the
 *		tables with pending changes (none: no sync; the worker reads the
 *		sources, which EXCLUSIVE does not block, and writes the shadow) --
 *		of every table when a source is remote (postgres_fdw's snapshot in
 *		this transaction is as old as its first remote read, so pending
 *		changes there cannot be seen from here: a second sync must then
 *		change nothing, else 55000) or when rows a foreign key refused
 *		wait for their retry -- then the plan lock.  Then the fence
 *		re-checked (migrate._cutover_pending: nothing left to apply, else
 *		55000: the source moved past the fence), the run row, the swap
 *		(migrate._cutover_swap, as the owner, through fmgr);
 *	 7. the record: migrate.cutover (fence, attempts, lock_wait,
 *		lock_held, carried) and the event, in the same transaction.
 *
 * Identity: the caller must be a member of the plan's owner; everything
 * runs as the owner (owner.h) but the catalog writes, which catalog.c and
 * catalog_strategies.c make as the extension's owner in the caller's name.
 *
 * The reverse (migrate_cutover_reverse) takes the same locks on the
 * current live tables (the former shadow tables), refuses when they were
 * written since the swap (rows whose xmin is newer than the swap's
 * transaction; deletes from the tables' statistics, recorded at the swap)
 * unless forced, and calls migrate._cutover_unswap(carried).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_collation.h"
#include "catalog/pg_type.h"
#include "common/pg_prng.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "nodes/execnodes.h"
#include "parser/parse_func.h"
#include "pgstat.h"
#include "storage/latch.h"
#include "storage/lmgr.h"
#include "storage/lock.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/guc.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"
#include "utils/wait_event.h"

#include "migrate.h"
#include "owner.h"

PG_FUNCTION_INFO_V1(migrate_cutover);

/* the reverse's lock loop (migrate_rollback() has no such arguments) */
#define REVERSE_LOCK_TIMEOUT_MS	500
#define REVERSE_MAX_ATTEMPTS	10
/* workers of the final sync under the locks, at most */
#define SYNC_PARALLEL			4
/* catch-up syncs before the locks, at most */
#define CATCHUP_SYNCS			2
/* added to the time since the fence: a change's way to the target */
#define IN_FLIGHT_MARGIN		"2 seconds"
/*
 * Tables of a final sync in this backend, at most: each holds a few locks
 * (its temporary tables, the relations its plans use) until the commit
 */
#define LOCAL_MAX_TABLES		100
/* failures named in a refusal's detail */
#define MAX_FAILURES_SHOWN		10

/* one table of the cutover (migrate._cutover_pairs) */
typedef struct Pair
{
	Oid			shadow;
	Oid			live;			/* InvalidOid: the live schema lacks it */
	char	   *shadow_name;	/* regclass text, qualified */
	char	   *live_name;		/* qualified name in the live schema */
} Pair;

typedef struct Cutover
{
	char	   *plan;
	Oid			owner;
	char	   *extschema;		/* quoted schema of the public functions */
	char	   *shadow_schema;
	char	   *live_schema;
	char	   *retired_option; /* options->>'cutover_retired', or NULL */
	bool		remote;			/* a table's source is a foreign table: see remote_moved() */
	List	   *pairs;			/* Pair *, in live name order */
	char	   *caller_path;	/* the caller's search_path: the workers' */
	List	   *locals;			/* MigrateSyncLocal *: the final sync in this
								 * backend, parents first; NIL: in workers */
	int			lock_timeout_ms;
	char	   *lock_timeout_text;
	int			max_attempts;
	/* results */
	int			attempts;
	TimestampTz fence_at;
	char	   *fence;			/* jsonb text: per table, the position synced to */
	TimestampTz lock_start;
	TimestampTz locked_at;
	TimestampTz synced_at;		/* the final sync's end */
	TimestampTz swapped_at;
} Cutover;

static void spi_exec(const char *sql, int nargs, Oid *types, Datum *args, int expected,
					 const char *what);
static char *spi_value(int row, int col);
static Oid	internal_function(const char *name, int nargs, Oid *argtypes);
static Tuplestorestate *call_srf(Oid fn, int nargs, Datum *args, TupleDesc *desc);
static char *ext_schema(void);
static void read_plan(Cutover *c);
static void read_pairs(Cutover *c);
static int64 sync_once(Cutover *c, List *tables, bool locked);
static char *sync_progress(Cutover *c);
static char *sync_moved(const char *before, const char *after);
static bool fk_quarantined(Cutover *c);
static void take_fence(Cutover *c);
static void verify_gate(Cutover *c);
static int64 slot_pending(Cutover *c, Oid rel);
static List *pending_changes(Cutover *c, char **first_table, int64 *first_n, char **first_capture);
static int	lock_tables(const char *what, List *relids, List *names, int timeout_ms,
						const char *timeout_text, int max_attempts);
static void take_plan_lock(Cutover *c);
static char *sync_deleted(Cutover *c);
static char *swap_baseline(Cutover *c, List *relids, const char *deleted_before);
static char *interval_text(TimestampTz from, TimestampTz to);
static void check_not_cut_over(const char *plan);
static List *local_prepare(Cutover *c);
static bool local_sync(Cutover *c, int64 run_id);
static void release_plan_lock(Cutover *c);
static void local_retries(Cutover *c);
static int64 new_run(Cutover *c, Oid *targets, char **sources, int ntargets, MigrateIdentity *saved);

/* ---------------------------------------------------------------------
 * Small helpers
 * --------------------------------------------------------------------- */

/* Run sql through SPI (as whoever we are now) and check the result. */
static void
spi_exec(const char *sql, int nargs, Oid *types, Datum *args, int expected, const char *what)
{
	int			ret = SPI_execute_with_args(sql, nargs, types, args, NULL, false, 0);

	if (ret != expected)
		elog(ERROR, "%s failed: %s", what, SPI_result_code_string(ret));
}

/* A value of the last SPI result as text (NULL for NULL), in the caller's context. */
static char *
spi_value(int row, int col)
{
	char	   *v = SPI_getvalue(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, col);

	return v ? MemoryContextStrdup(CurTransactionContext, v) : NULL;
}

/* The oid of migrate.<name>(argtypes): internal, REVOKEd from PUBLIC, called through fmgr. */
static Oid
internal_function(const char *name, int nargs, Oid *argtypes)
{
	Oid			fn = LookupFuncName(list_make2(makeString("migrate"), makeString(pstrdup(name))),
									nargs, argtypes, true);

	if (!OidIsValid(fn))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_FUNCTION),
				 errmsg("function migrate.%s of the extension migrate is missing", name),
				 errhint("Update the extension: ALTER EXTENSION migrate UPDATE.")));
	return fn;
}

/*
 * Call a set-returning SQL function by oid (no EXECUTE check: the caller
 * runs as the plan's owner and calls an internal function for it), in
 * materialize mode, as plpgsql returns sets.  Returns its rows (NULL: none)
 * and their descriptor.
 */
static Tuplestorestate *
call_srf(Oid fn, int nargs, Datum *args, TupleDesc *desc)
{
	FmgrInfo	flinfo;
	ReturnSetInfo rsinfo;
	TupleDesc	expected;
	Oid			rettype;

	LOCAL_FCINFO(fcinfo, FUNC_MAX_ARGS);


	switch (get_func_result_type(fn, &rettype, &expected))
	{
		case TYPEFUNC_COMPOSITE:
			break;
		case TYPEFUNC_SCALAR:
			/* SETOF a scalar: one column */
			expected = CreateTemplateTupleDesc(1);
			TupleDescInitEntry(expected, (AttrNumber) 1, "value", rettype, -1, 0);
			break;
		default:
			elog(ERROR, "function %u does not return rows", fn);
	}
	fmgr_info(fn, &flinfo);
	memset(&rsinfo, 0, sizeof(rsinfo));
	rsinfo.type = T_ReturnSetInfo;
	rsinfo.econtext = CreateStandaloneExprContext();
	rsinfo.expectedDesc = expected;
	rsinfo.allowedModes = (int) (SFRM_Materialize | SFRM_Materialize_Preferred);
	rsinfo.returnMode = SFRM_Materialize;
	InitFunctionCallInfoData(*fcinfo, &flinfo, nargs, InvalidOid, NULL, (Node *) &rsinfo);
	for (int i = 0; i < nargs; i++)
	{
		fcinfo->args[i].value = args[i];
		fcinfo->args[i].isnull = false;
	}
	(void) FunctionCallInvoke(fcinfo);
	if (rsinfo.returnMode != SFRM_Materialize)
		elog(ERROR, "function %u did not materialize its result", fn);
	*desc = rsinfo.setDesc ? rsinfo.setDesc : expected;
	/* the tuplestore lives in the query's memory, not the expression context's */
	return rsinfo.setResult;
}

/* The extension's schema (of migrate_sync, migrate_verify, ...), quoted.  Needs SPI. */
static char *
ext_schema(void)
{
	spi_exec("SELECT e.extnamespace::pg_catalog.regnamespace::text FROM pg_catalog.pg_extension e"
			 " WHERE e.extname = 'migrate'", 0, NULL, NULL, SPI_OK_SELECT, "reading pg_extension");
	if (SPI_processed != 1)
		elog(ERROR, "extension migrate is not installed");
	return spi_value(0, 1);
}

/* "n microseconds" between two timestamps, for an interval column. */
static char *
interval_text(TimestampTz from, TimestampTz to)
{
	return psprintf(INT64_FORMAT " microseconds", (int64) (to - from));
}

/* A cutover of the plan that is in effect refuses another one. */
static void
check_not_cut_over(const char *plan)
{
	Oid			types[1] = {TEXTOID};
	Datum		args[1] = {CStringGetTextDatum(plan)};

	spi_exec("SELECT c.run_id::text, c.live_schema::text FROM migrate.cutover c"
			 " WHERE c.plan = $1 AND c.state = 'swapped' ORDER BY c.run_id DESC LIMIT 1",
			 1, types, args, SPI_OK_SELECT, "reading migrate.cutover");
	if (SPI_processed > 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("migration plan \"%s\" was already cut over (run %s)", plan, spi_value(0, 1)),
				 errdetail("Its shadow tables are the live tables of schema \"%s\" now.", spi_value(0, 2)),
				 errhint("Roll the cutover back with migrate_rollback(%s) before cutting over again.",
						 spi_value(0, 1))));
}

/* ---------------------------------------------------------------------
 * The steps of migrate_cutover()
 * --------------------------------------------------------------------- */

/* The plan's schemas and options; every table has capture we can fence. */
static void
read_plan(Cutover *c)
{
	Oid			types[1] = {TEXTOID};
	Datum		args[1] = {CStringGetTextDatum(c->plan)};

	spi_exec("SELECT p.target_schema::text, p.options->>'cutover_into', p.options->>'cutover_retired'"
			 "  FROM migrate.plan p WHERE p.plan_name = $1",
			 1, types, args, SPI_OK_SELECT, "reading migrate.plan");
	if (SPI_processed != 1)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("migration plan \"%s\" does not exist", c->plan)));
	c->shadow_schema = spi_value(0, 1);
	c->live_schema = spi_value(0, 2);
	c->retired_option = spi_value(0, 3);
	if (c->live_schema == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("migration plan \"%s\" has no option cutover_into", c->plan),
				 errdetail("A cutover swaps the plan's target schema \"%s\" (the shadow) into the live schema that cutover_into names.",
						   c->shadow_schema),
				 errhint("Name the live schema: migrate_plan(..., target_schema => '<shadow>', options => '{\"cutover_into\": \"<live schema>\"}').")));
	if (c->retired_option && strlen(c->retired_option) >= NAMEDATALEN)
		ereport(ERROR,
				(errcode(ERRCODE_NAME_TOO_LONG),
				 errmsg("option cutover_retired of migration plan \"%s\" is too long", c->plan),
				 errhint("A schema name has at most %d bytes.", NAMEDATALEN - 1)));

	check_not_cut_over(c->plan);
	spi_exec("SELECT migrate._plan_locked($1)", 1, types, args, SPI_OK_SELECT, "reading the plan lock");
	if (strcmp(spi_value(0, 1), "t") == 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_IN_USE),
				 errmsg("migration plan \"%s\" is running", c->plan),
				 errhint("Wait for its run or sync to end (migrate_status()), or stop it with migrate_cancel(), then call migrate_cutover() again.")));

	spi_exec("SELECT tm.target::text, tm.capture FROM migrate.table_map tm WHERE tm.plan = $1"
			 " ORDER BY (tm.capture IN ('trigger', 'slot', 'watermark')), tm.target::text",
			 1, types, args, SPI_OK_SELECT, "reading migrate.table_map");
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("migration plan \"%s\" has no table to cut over", c->plan),
				 errhint("Map its tables with migrate_table() first.")));
	{
		char	   *target = spi_value(0, 1);
		char	   *capture = spi_value(0, 2);

		/* a table without capture cannot be synced under the locks */
		if (strcmp(capture, "none") == 0)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("table %s of migration plan \"%s\" has no capture: it cannot be cut over", target, c->plan),
					 errdetail("A cutover applies what the source committed after its last sync under the live tables' locks; without capture nothing says what that is."),
					 errhint("Give it capture => 'trigger' (or 'slot', 'watermark') with migrate_table() and arm it with migrate_run(plan, mode => 'incremental').")));
		/* a diff under the locks would scan both sides while writers wait */
		if (strcmp(capture, "diff") == 0)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("table %s of migration plan \"%s\" has capture diff, which migrate_cutover() does not support", target, c->plan),
					 errdetail("The final sync runs under the live tables' locks; a diff pass would scan both sides of the table while writers wait."),
					 errhint("Use capture => 'trigger' for a local or PostgreSQL source, 'slot' for a PostgreSQL source, or 'watermark'.")));
	}
	spi_exec("SELECT EXISTS (SELECT 1 FROM migrate.table_map tm JOIN pg_catalog.pg_class k"
			 "   ON k.oid = pg_catalog.to_regclass(tm.source) WHERE tm.plan = $1 AND k.relkind = 'f')::text",
			 1, types, args, SPI_OK_SELECT, "reading the plan's sources");
	c->remote = strcmp(spi_value(0, 1), "true") == 0;
}

/* The pairs (shadow, live) of migrate._cutover_pairs, as the owner. */
static void
read_pairs(Cutover *c)
{
	Oid			argtypes[1] = {TEXTOID};
	Datum		args[1] = {CStringGetTextDatum(c->plan)};
	Oid			fn = internal_function("_cutover_pairs", 1, argtypes);
	TupleDesc	desc;
	Tuplestorestate *ts = call_srf(fn, 1, args, &desc);
	TupleTableSlot *slot;
	MemoryContext oldcxt;

	if (ts == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("migration plan \"%s\" has no table to cut over", c->plan)));
	slot = MakeSingleTupleTableSlot(desc, &TTSOpsMinimalTuple);
	oldcxt = MemoryContextSwitchTo(CurTransactionContext);
	while (tuplestore_gettupleslot(ts, true, false, slot))
	{
		Pair	   *p = palloc0(sizeof(Pair));
		bool		isnull;
		Datum		d;

		p->shadow = DatumGetObjectId(slot_getattr(slot, 1, &isnull));
		p->shadow_name = quote_qualified_identifier(get_namespace_name(get_rel_namespace(p->shadow)),
													get_rel_name(p->shadow));
		d = slot_getattr(slot, 2, &isnull);
		p->live = isnull ? InvalidOid : DatumGetObjectId(d);
		d = slot_getattr(slot, 3, &isnull);
		p->live_name = isnull ? pstrdup("?") : TextDatumGetCString(d);
		c->pairs = lappend(c->pairs, p);
	}
	MemoryContextSwitchTo(oldcxt);
	ExecDropSingleTupleTableSlot(slot);
	tuplestore_end(ts);
}

/*
 * A sync run (migrate_sync(), in a worker) of every table (tables NIL) or
 * of those tables (oids); returns its run id.
 */
static int64
sync_once(Cutover *c, List *tables, bool locked)
{
	Oid			types[2] = {TEXTOID, OIDARRAYOID};
	Datum		args[2] = {CStringGetTextDatum(c->plan), (Datum) 0};
	bool		isnull;
	/* under the locks writers wait: the tables' passes in parallel workers */
	int			parallel = locked ? Min(Max(list_length(tables ? tables : c->pairs), 1), SYNC_PARALLEL) : 1;

	if (tables == NIL)
		spi_exec(psprintf("SELECT %s.migrate_run($1, mode => 'sync', parallel => %d)", c->extschema, parallel),
				 1, types, args, SPI_OK_SELECT, "migrate_run(mode => 'sync')");
	else
	{
		Datum	   *elems = palloc(sizeof(Datum) * list_length(tables));
		ListCell   *lc;

		foreach(lc, tables)
			elems[foreach_current_index(lc)] = ObjectIdGetDatum(lfirst_oid(lc));
		args[1] = PointerGetDatum(construct_array(elems, list_length(tables), OIDOID, sizeof(Oid), true,
												  TYPALIGN_INT));
		/* what migrate_sync() does, for some tables */
		spi_exec(psprintf("SELECT %s.migrate_run($1, mode => 'sync', tables => $2::pg_catalog.regclass[]::pg_catalog.text[],"
						  " parallel => %d)", c->extschema, parallel),
				 2, types, args, SPI_OK_SELECT, "migrate_run(mode => 'sync')");
	}
	return DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

/*
 * Where the plan's syncs stand, as text to compare: per table what they
 * applied (rows inserted, updated, deleted, rejected) or, for watermark
 * capture, whose every pass re-reads its overlap, the position.
 */
static char *
sync_progress(Cutover *c)
{
	Oid			types[1] = {TEXTOID};
	Datum		args[1] = {CStringGetTextDatum(c->plan)};

	spi_exec("SELECT coalesce(pg_catalog.jsonb_object_agg(s.target::text,"
			 "   CASE WHEN s.capture = 'watermark' THEN coalesce(s.position, '')"
			 "        ELSE (s.applied_inserted + s.applied_updated + s.applied_deleted"
			 "              + s.applied_rejected)::text END), '{}')::text"
			 "  FROM migrate.sync_state s WHERE s.plan = $1",
			 1, types, args, SPI_OK_SELECT, "reading migrate.sync_state");
	return spi_value(0, 1);
}

/* The tables whose entry differs between two sync_progress() texts, or NULL. */
static char *
sync_moved(const char *before, const char *after)
{
	Oid			types[2] = {TEXTOID, TEXTOID};
	Datum		args[2] = {CStringGetTextDatum(before), CStringGetTextDatum(after)};

	spi_exec("SELECT pg_catalog.string_agg(a.key, ', ' ORDER BY a.key)"
			 "  FROM pg_catalog.jsonb_each_text($2::pg_catalog.jsonb) a"
			 " WHERE a.value IS DISTINCT FROM $1::pg_catalog.jsonb->>a.key",
			 2, types, args, SPI_OK_SELECT, "comparing sync states");
	return spi_value(0, 1);
}

/* Rows of the plan that a foreign key refused and that are not loaded yet. */
static bool
fk_quarantined(Cutover *c)
{
	Oid			types[1] = {TEXTOID};
	Datum		args[1] = {CStringGetTextDatum(c->plan)};

	spi_exec("SELECT EXISTS (SELECT 1 FROM migrate.reject r JOIN migrate.run ru ON ru.run_id = r.run_id"
			 "   WHERE ru.plan = $1 AND r.reason = '23503' AND NOT r.loaded)::text",
			 1, types, args, SPI_OK_SELECT, "reading migrate.reject");
	return strcmp(spi_value(0, 1), "true") == 0;
}

/* The fence: a sync, then every table's capture and position. */
static void
take_fence(Cutover *c)
{
	Oid			types[1] = {TEXTOID};
	Datum		args[1] = {CStringGetTextDatum(c->plan)};

	c->fence_at = GetCurrentTimestamp();
	(void) sync_once(c, NIL, false);
	spi_exec("SELECT pg_catalog.jsonb_build_object('positions',"
			 "   coalesce(pg_catalog.jsonb_object_agg(s.target::text, pg_catalog.jsonb_build_object("
			 "     'capture', s.capture, 'synced_to', s.synced_to, 'sync_run', s.last_sync_run)), '{}'))::text"
			 "  FROM migrate.sync_state s WHERE s.plan = $1",
			 1, types, args, SPI_OK_SELECT, "reading migrate.sync_state");
	c->fence = spi_value(0, 1);
}

/*
 * The verify gate: migrate_verify() and migrate_diff() of every table with
 * keys changed since the fence in flight; 55000 on the first failure.
 */
static void
verify_gate(Cutover *c)
{
	Oid			types[4] = {TEXTOID, TEXTOID, TEXTOID, TEXTOID};
	Datum		args[4];
	char	   *stable_for;
	StringInfoData detail;
	ListCell   *lc;

	TimestampTz verify_start = GetCurrentTimestamp();

	stable_for = psprintf("%s", interval_text(c->fence_at, verify_start));
	args[0] = CStringGetTextDatum(c->plan);
	args[1] = CStringGetTextDatum(stable_for);
	/*
	 * A live source keeps changing while the checks read it, statement by
	 * statement: a count or checksum of a table that changed during the
	 * verification proves nothing either way, so for such a table the diff
	 * below, key by key, is the judge.  A row that differs without a
	 * captured change fails the diff, whatever writers do.
	 */
	args[2] = CStringGetTextDatum(DatumGetCString(DirectFunctionCall1(timestamptz_out,
																	  TimestampTzGetDatum(verify_start))));
	spi_exec(psprintf("SELECT v.target::text, v.check_name, v.source_value, v.target_value, v.details"
					  "  FROM %s.migrate_verify($1, stable_for => $2::pg_catalog.interval + '" IN_FLIGHT_MARGIN "') v"
					  " WHERE NOT v.ok AND NOT (v.check_name IN ('row count', 'checksum')"
					  "   AND EXISTS (SELECT 1 FROM migrate._in_flight_keys($1, v.target,"
					  "     pg_catalog.clock_timestamp() - $3::pg_catalog.timestamptz)))"
					  " ORDER BY v.verification_id", c->extschema),
			 3, types, args, SPI_OK_SELECT, "migrate_verify()");
	if (SPI_processed > 0)
	{
		char	   *target = spi_value(0, 1);
		char	   *check = spi_value(0, 2);

		initStringInfo(&detail);
		for (uint64 i = 0; i < SPI_processed && i < MAX_FAILURES_SHOWN; i++)
		{
			char	   *d = spi_value(i, 5);

			appendStringInfo(&detail, "%s%s of %s: source %s, target %s%s%s", i > 0 ? "; " : "",
							 spi_value(i, 2), spi_value(i, 1),
							 spi_value(i, 3) ? spi_value(i, 3) : "NULL",
							 spi_value(i, 4) ? spi_value(i, 4) : "NULL",
							 d ? " - " : "", d ? d : "");
		}
		if (SPI_processed > MAX_FAILURES_SHOWN)
			appendStringInfo(&detail, "; and " UINT64_FORMAT " more", SPI_processed - MAX_FAILURES_SHOWN);
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("cutover of migration plan \"%s\" refused: check \"%s\" of table %s failed",
						c->plan, check, target),
				 errdetail("%s.", detail.data),
				 errhint("Nothing was renamed. A shadow row that differs from its source without a captured change is not repaired by a sync: find it with migrate_diff(), fix it (or load the table again), then call migrate_cutover() again.")));
	}

	foreach(lc, c->pairs)
	{
		Pair	   *p = lfirst(lc);

		args[1] = CStringGetTextDatum(p->shadow_name);
		args[2] = CStringGetTextDatum(stable_for);
		args[3] = CStringGetTextDatum(DatumGetCString(DirectFunctionCall1(timestamptz_out,
																		  TimestampTzGetDatum(c->fence_at))));
		/* keys that changed while the diff read them are in flight too */
		spi_exec(psprintf("WITH d AS MATERIALIZED (SELECT d.diff_id, d.kind, d.key FROM %s.migrate_diff($1, $2,"
						  "   stable_for => $3::pg_catalog.interval + '" IN_FLIGHT_MARGIN "') d)"
						  " SELECT d.kind, d.key FROM d WHERE d.key NOT IN (SELECT k FROM migrate._in_flight_keys($1,"
						  "   $2::pg_catalog.regclass, pg_catalog.clock_timestamp() - $4::pg_catalog.timestamptz"
						  "   + '" IN_FLIGHT_MARGIN "') k WHERE k IS NOT NULL)"
						  " ORDER BY d.diff_id", c->extschema),
				 4, types, args, SPI_OK_SELECT, "migrate_diff()");
		if (SPI_processed > 0)
		{
			initStringInfo(&detail);
			for (uint64 i = 0; i < SPI_processed && i < MAX_FAILURES_SHOWN; i++)
				appendStringInfo(&detail, "%skey %s %s", i > 0 ? ", " : "", spi_value(i, 2), spi_value(i, 1));
			if (SPI_processed > MAX_FAILURES_SHOWN)
				appendStringInfo(&detail, " and " UINT64_FORMAT " more", SPI_processed - MAX_FAILURES_SHOWN);
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("cutover of migration plan \"%s\" refused: migrate_diff() of table %s found " UINT64_FORMAT " differing key%s",
							c->plan, p->shadow_name, SPI_processed, SPI_processed == 1 ? "" : "s"),
					 errdetail("%s.", detail.data),
					 errhint("Nothing was renamed. See migrate.diff_result of the diff's event, fix the shadow table, then call migrate_cutover() again.")));
		}
	}
}

/* Changes the plan's slot holds for a slot table after its position. */
static int64
slot_pending(Cutover *c, Oid rel)
{
	Oid			argtypes[2] = {TEXTOID, REGCLASSOID};
	Datum		args[2] = {CStringGetTextDatum(c->plan), ObjectIdGetDatum(rel)};
	TupleDesc	desc;
	Tuplestorestate *ts = call_srf(internal_function("_slot_pending_keys", 2, argtypes), 2, args, &desc);
	int64		n;

	if (ts == NULL)
		return 0;
	n = tuplestore_tuple_count(ts);
	tuplestore_end(ts);
	return n;
}

/*
 * The tables (oids) whose capture has changes it has not applied
 * (migrate._cutover_pending); the first of them, its count and capture,
 * when asked.
 */
static List *
pending_changes(Cutover *c, char **first_table, int64 *first_n, char **first_capture)
{
	Oid			argtypes[1] = {TEXTOID};
	Datum		args[1] = {CStringGetTextDatum(c->plan)};
	Oid			fn = internal_function("_cutover_pending", 1, argtypes);
	TupleDesc	desc;
	Tuplestorestate *ts = call_srf(fn, 1, args, &desc);
	TupleTableSlot *slot;
	List	   *tables = NIL;

	if (first_table)
		*first_table = NULL;
	if (ts == NULL)
		return NIL;
	slot = MakeSingleTupleTableSlot(desc, &TTSOpsMinimalTuple);
	while (tuplestore_gettupleslot(ts, true, false, slot))
	{
		bool		isnull;
		bool		unknown;
		Datum		d = slot_getattr(slot, 3, &unknown);
		Oid			rel = DatumGetObjectId(slot_getattr(slot, 1, &isnull));
		/* NULL: a slot table, whose slot we ask */
		int64		n = unknown ? slot_pending(c, rel) : DatumGetInt64(d);

		if (n == 0)
			continue;
		if (first_table && *first_table == NULL)
		{
			*first_table = quote_qualified_identifier(get_namespace_name(get_rel_namespace(rel)),
													  get_rel_name(rel));
			*first_n = n;
			*first_capture = TextDatumGetCString(slot_getattr(slot, 2, &isnull));
		}
		tables = lappend_oid(tables, rel);
	}
	ExecDropSingleTupleTableSlot(slot);
	tuplestore_end(ts);
	return tables;
}

/*
 * Lock relids IN EXCLUSIVE MODE, in the given order, with one LOCK TABLE
 * per attempt in a subtransaction whose lock_timeout is timeout_ms; a
 * timeout (55P03) or a deadlock (40P01) rolls the attempt back, releasing
 * what it got, and the next attempt follows a short jittered backoff.
 * Returns the attempts made; raises 55P03 after max_attempts, holding no
 * lock.  what names the plan or run in the error.  The lock_timeout stays
 * set for the rest of the function (the swap's DDL waits no longer).
 */
static int
lock_tables(const char *what, List *relids, List *names, int timeout_ms, const char *timeout_text,
			int max_attempts)
{
	StringInfoData sql;
	StringInfoData list;
	ListCell   *lc;
	char		buf[32];
	char	   *volatile last_error = NULL;
	int			attempt;

	initStringInfo(&sql);
	initStringInfo(&list);
	appendStringInfoString(&sql, "LOCK TABLE ");
	foreach(lc, relids)
	{
		Oid			rel = lfirst_oid(lc);

		appendStringInfo(&sql, "%s%s", foreach_current_index(lc) > 0 ? ", " : "",
						 quote_qualified_identifier(get_namespace_name(get_rel_namespace(rel)),
													get_rel_name(rel)));
	}
	appendStringInfoString(&sql, " IN EXCLUSIVE MODE");
	foreach(lc, names)
		appendStringInfo(&list, "%s%s", foreach_current_index(lc) > 0 ? ", " : "", (char *) lfirst(lc));
	snprintf(buf, sizeof(buf), "%d", timeout_ms);

	for (attempt = 1; attempt <= max_attempts; attempt++)
	{
		MemoryContext oldcxt = CurrentMemoryContext;
		ResourceOwner oldowner = CurrentResourceOwner;
		volatile bool ok = false;

		BeginInternalSubTransaction(NULL);
		MemoryContextSwitchTo(oldcxt);
		PG_TRY();
		{
			int			ret;

			(void) set_config_option("lock_timeout", buf, PGC_USERSET, PGC_S_SESSION,
									 GUC_ACTION_LOCAL, true, 0, false);
			ret = SPI_execute(sql.data, false, 0);
			if (ret != SPI_OK_UTILITY)
				elog(ERROR, "locking the live tables failed: %s", SPI_result_code_string(ret));
			ReleaseCurrentSubTransaction();
			MemoryContextSwitchTo(oldcxt);
			CurrentResourceOwner = oldowner;
			ok = true;
		}
		PG_CATCH();
		{
			ErrorData  *edata = migrate_abort_subxact(oldcxt, oldowner);

			if (edata->sqlerrcode != ERRCODE_LOCK_NOT_AVAILABLE &&
				edata->sqlerrcode != ERRCODE_T_R_DEADLOCK_DETECTED)
				ReThrowError(edata);
			last_error = pstrdup(edata->message);
			FreeErrorData(edata);
		}
		PG_END_TRY();
		if (ok)
			return attempt;
		if (attempt < max_attempts)
		{
			/* writers go on meanwhile; jitter keeps two cutovers from lockstep */
			long		base = Min(50L * attempt, 500L);
			long		ms = (long) (base * (0.5 + pg_prng_double(&pg_global_prng_state)));

			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, ms,
							 PG_WAIT_EXTENSION);
			ResetLatch(MyLatch);
			CHECK_FOR_INTERRUPTS();
		}
	}
	ereport(ERROR,
			(errcode(ERRCODE_LOCK_NOT_AVAILABLE),
			 errmsg("%s could not lock its live tables in %d attempt%s", what, max_attempts,
					max_attempts == 1 ? "" : "s"),
			 errdetail("Each attempt waited at most %s for EXCLUSIVE locks on %s; the last: %s.",
					   timeout_text, list.data, last_error ? last_error : "?"),
			 errhint("Nothing was renamed and no lock is held. Find the sessions that hold or wait for locks on those tables in pg_locks (pg_blocking_pids()), or call again with a larger lock_timeout or max_attempts.")));
	return 0;					/* keep compiler quiet */
}

/*
 * The plan's lock (worker.c's tag), for this transaction: no run or sync
 * of the plan starts between the final sync and our commit.
 */
static void
take_plan_lock(Cutover *c)
{
	LOCKTAG		tag;
	uint32		key = DatumGetUInt32(DirectFunctionCall1Coll(hashtext, DEFAULT_COLLATION_OID,
															 CStringGetTextDatum(c->plan)));

	SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, MIGRATE_LOCK_CLASS, key, MIGRATE_LOCK_PLAN);
	if (LockAcquire(&tag, ExclusiveLock, false, true) == LOCKACQUIRE_NOT_AVAIL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_IN_USE),
				 errmsg("migration plan \"%s\" started running during its cutover", c->plan),
				 errhint("Nothing was renamed. Wait for the run (migrate_status()), then call migrate_cutover() again.")));
}

/* The cutover's run row (catalog.c), in the caller's name; then the owner's identity again. */
static int64
new_run(Cutover *c, Oid *targets, char **sources, int ntargets, MigrateIdentity *saved)
{
	int64		run_id;

	migrate_restore_identity(saved);
	run_id = migrate_catalog_cutover_run(c->plan, targets, sources, ntargets);
	migrate_become_owner(c->owner, saved);
	return run_id;
}

/* The plan's lock, released early: a worker's sync run must take it. */
static void
release_plan_lock(Cutover *c)
{
	LOCKTAG		tag;
	uint32		key = DatumGetUInt32(DirectFunctionCall1Coll(hashtext, DEFAULT_COLLATION_OID,
															 CStringGetTextDatum(c->plan)));

	SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, MIGRATE_LOCK_CLASS, key, MIGRATE_LOCK_PLAN);
	if (!LockRelease(&tag, ExclusiveLock, false))
		elog(ERROR, "the lock of migration plan \"%s\" was not held", c->plan);
}

/*
 * The final sync in this backend, when every table has trigger capture
 * with a local change table and no source is remote: each table described
 * now, before the locks (what a worker's pass would look up), parents
 * first as a sync run orders them.  NIL: the final sync runs in workers.
 */
static List *
local_prepare(Cutover *c)
{
	Oid			types[1] = {TEXTOID};
	Datum		args[1] = {CStringGetTextDatum(c->plan)};
	List	   *targets = NIL;
	List	   *locals = NIL;
	ListCell   *lc;
	int			nest;

	if (c->remote)
		return NIL;
	spi_exec("SELECT EXISTS (SELECT 1 FROM migrate.table_map tm"
			 "   LEFT JOIN migrate.sync_state s ON s.plan = tm.plan AND s.target = tm.target"
			 "   LEFT JOIN pg_catalog.pg_class k ON k.oid = pg_catalog.to_regclass(s.change_relation)"
			 "  WHERE tm.plan = $1 AND (tm.capture <> 'trigger' OR k.relkind IS DISTINCT FROM 'r'))::text",
			 1, types, args, SPI_OK_SELECT, "reading the plan's capture");
	if (strcmp(spi_value(0, 1), "true") == 0)
		return NIL;
	/* the order of a sync run's tables (catalog.c migrate_catalog_run_start) */
	spi_exec("WITH RECURSIVE t AS ("
			 "   SELECT tm.target::pg_catalog.oid AS rel FROM migrate.table_map tm"
			 "    WHERE tm.plan = $1 AND tm.capture <> 'none'),"
			 " e AS (SELECT DISTINCT k.conrelid AS child, k.confrelid AS parent"
			 "   FROM pg_catalog.pg_constraint k WHERE k.contype = 'f'"
			 "    AND k.conrelid IN (SELECT rel FROM t) AND k.confrelid IN (SELECT rel FROM t)"
			 "    AND k.conrelid <> k.confrelid"
			 "    AND k.oid NOT IN (SELECT b.con FROM migrate._fk_cycle_breaks(ARRAY(SELECT rel FROM t)) b)),"
			 " d(rel, depth, path) AS ("
			 "   SELECT rel, 0, ARRAY[rel] FROM t"
			 "   UNION ALL"
			 "   SELECT e.child, d.depth + 1, d.path || e.child FROM d JOIN e ON e.parent = d.rel"
			 "    WHERE e.child <> ALL (d.path))"
			 " SELECT d.rel FROM d GROUP BY d.rel"
			 "  ORDER BY pg_catalog.max(d.depth), d.rel::pg_catalog.regclass::pg_catalog.text",
			 1, types, args, SPI_OK_SELECT, "ordering the plan's tables");
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		MemoryContext old = MemoryContextSwitchTo(CurTransactionContext);

		targets = lappend_oid(targets, DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[i],
																	   SPI_tuptable->tupdesc, 1, &isnull)));
		MemoryContextSwitchTo(old);
	}
	if (list_length(targets) > LOCAL_MAX_TABLES)
		return NIL;
	/* described under the caller's search_path, as a worker would */
	nest = NewGUCNestLevel();
	(void) set_config_option("search_path", c->caller_path, PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	foreach(lc, targets)
	{
		MigrateSyncLocal *l = migrate_sync_local_prepare(c->plan, lfirst_oid(lc));

		if (l == NULL)
		{
			locals = NIL;		/* their memory goes with the transaction */
			break;
		}
		locals = lappend(locals, l);
	}
	AtEOXact_GUC(true, nest);
	return locals;
}

/*
 * The tables of the final sync in this backend whose foreign keys refused
 * a delete (sync_state.deferred) or a row (quarantined 23503, not loaded
 * since): tried again after every table's apply, as a sync run's retry
 * units do.  With the plan's lock held (no sync changes them meanwhile).
 */
static void
local_retries(Cutover *c)
{
	Oid			types[1] = {TEXTOID};
	Datum		args[1] = {CStringGetTextDatum(c->plan)};

	spi_exec("SELECT s.target::pg_catalog.oid FROM migrate.sync_state s"
			 " WHERE s.plan = $1 AND pg_catalog.cardinality(s.deferred) > 0"
			 " UNION SELECT r.target::pg_catalog.oid FROM migrate.reject r"
			 "   JOIN migrate.run ru ON ru.run_id = r.run_id"
			 "  WHERE ru.plan = $1 AND r.reason = '23503' AND NOT r.loaded",
			 1, types, args, SPI_OK_SELECT, "reading the plan's deferred keys");
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		Oid			rel = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
		ListCell   *lc;

		foreach(lc, c->locals)
		{
			MigrateSyncLocal *l = lfirst(lc);

			if (l->target == rel)
				l->retry = true;
		}
	}
}

/*
 * Under the locks: the final sync in this backend (c->locals), in a
 * subtransaction of the swap's transaction, so that it commits with the
 * swap or not at all: every table's changes applied (parents first), the
 * foreign keys' refusals retried, the positions and counts recorded in one
 * statement.  False: a table's source was truncated (its pass needs a
 * diff), everything rolled back for a sync in workers.
 */
static bool
local_sync(Cutover *c, int64 run_id)
{
	MemoryContext oldcxt = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;
	int			n = list_length(c->locals);
	Oid		   *targets = palloc(sizeof(Oid) * Max(n, 1));
	char	  **positions = palloc(sizeof(char *) * Max(n, 1));
	char	  **lags = palloc(sizeof(char *) * Max(n, 1));
	MigrateSyncApplied *applied = palloc0(sizeof(MigrateSyncApplied) * Max(n, 1));
	int			synced = 0;
	bool		ok = true;
	ListCell   *lc;
	int			nest;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(oldcxt);
	nest = NewGUCNestLevel();
	(void) set_config_option("search_path", c->caller_path, PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	/* the plans local_prepare built: none is made under the locks */
	(void) set_config_option("plan_cache_mode", "force_generic_plan", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	foreach(lc, c->locals)
	{
		if (!migrate_sync_local_apply((MigrateSyncLocal *) lfirst(lc), run_id))
		{
			ok = false;
			break;
		}
	}
	if (ok)
	{
		foreach(lc, c->locals)
			migrate_sync_local_retry((MigrateSyncLocal *) lfirst(lc));
	}
	AtEOXact_GUC(true, nest);
	if (ok)
	{
		foreach(lc, c->locals)
		{
			MigrateSyncLocal *l = lfirst(lc);

			if (l->changes == 0 && !l->retry)
				continue;
			targets[synced] = l->target;
			positions[synced] = l->position;
			lags[synced] = l->lag;
			applied[synced] = l->applied;
			synced++;
		}
		migrate_catalog_cutover_synced(run_id, c->plan, synced, targets, positions, lags, applied);
		ReleaseCurrentSubTransaction();
	}
	else
		RollbackAndReleaseCurrentSubTransaction();
	MemoryContextSwitchTo(oldcxt);
	CurrentResourceOwner = oldowner;
	return ok;
}

/*
 * Each table's applied_deleted (migrate.sync_state) as jsonb text keyed by
 * oid: before the final sync, so that the baseline knows its deletes.
 */
static char *
sync_deleted(Cutover *c)
{
	Oid			types[1] = {TEXTOID};
	Datum		args[1] = {CStringGetTextDatum(c->plan)};

	spi_exec("SELECT coalesce(pg_catalog.jsonb_object_agg(s.target::pg_catalog.oid::text, s.applied_deleted),"
			 "   '{}')::text FROM migrate.sync_state s WHERE s.plan = $1",
			 1, types, args, SPI_OK_SELECT, "reading migrate.sync_state");
	return spi_value(0, 1);
}

/*
 * What the reverse compares against to find writes made after the swap
 * (fence->'swap'): xid, the first transaction id not yet assigned (a row
 * whose xmin is that or newer was written after the swap: the final sync's
 * workers committed before; the tables have no other writer under the
 * locks), and per table the statistics' deleted count (deletes leave no
 * row) with the deletes the final sync applied (sync_deleted: its worker's
 * counters may reach the statistics after we read them).
 */
static char *
swap_baseline(Cutover *c, List *relids, const char *deleted_before)
{
	Datum		args[3];
	Oid			types[3] = {OIDARRAYOID, TEXTOID, TEXTOID};
	Datum	   *elems = palloc(sizeof(Datum) * Max(list_length(relids), 1));
	ListCell   *lc;

	foreach(lc, relids)
		elems[foreach_current_index(lc)] = ObjectIdGetDatum(lfirst_oid(lc));
	args[0] = PointerGetDatum(construct_array(elems, list_length(relids), OIDOID, sizeof(Oid), true,
											  TYPALIGN_INT));
	args[1] = CStringGetTextDatum(deleted_before);
	args[2] = CStringGetTextDatum(c->plan);
	spi_exec("SELECT pg_catalog.jsonb_build_object('xid',"
			 "   (pg_catalog.pg_snapshot_xmax(pg_catalog.pg_current_snapshot())::text::numeric % 4294967296)::text,"
			 "   'tables', coalesce(pg_catalog.jsonb_object_agg(o::text, pg_catalog.jsonb_build_object("
			 "     'deleted', pg_catalog.pg_stat_get_tuples_deleted(o),"
			 "     'sync_deleted', coalesce((SELECT s.applied_deleted FROM migrate.sync_state s"
			 "                                WHERE s.plan = $3 AND s.target = o), 0)"
			 "                     - coalesce(($2::pg_catalog.jsonb->>o::text)::bigint, 0))), '{}'))::text"
			 "  FROM pg_catalog.unnest($1) o",
			 3, types, args, SPI_OK_SELECT, "reading the tables' statistics");
	return spi_value(0, 1);
}

/* ---------------------------------------------------------------------
 * migrate_cutover()
 * --------------------------------------------------------------------- */

/*
 * migrate_cutover(plan text, lock_timeout interval, max_attempts integer)
 * returns bigint: the cutover's run id.  See the top of this file.
 */
Datum
migrate_cutover(PG_FUNCTION_ARGS)
{
	Cutover    *c = palloc0(sizeof(Cutover));
	MigrateIdentity saved;
	Interval   *lt;
	int64		ms;
	int64		run_id = 0;
	List	   *relids = NIL;
	List	   *names = NIL;
	Oid		   *targets;
	char	  **sources;
	int			ntargets = 0;
	char	   *retired;
	NameData	retired_name;
	char	   *carried;
	char	   *baseline;
	char	   *deleted_before;
	char	   *first_table;
	char	   *first_capture;
	int64		first_n;
	ListCell   *lc;
	Datum		swapped;
	bool		had_live;
	Oid			swap_args[2] = {TEXTOID, NAMEOID};

	migrate_check_version();
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("migration plan name must not be null")));
	c->plan = text_to_cstring(PG_GETARG_TEXT_PP(0));
	if (PG_ARGISNULL(1) || PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("lock_timeout and max_attempts of migrate_cutover() of plan \"%s\" must not be null", c->plan)));
	lt = PG_GETARG_INTERVAL_P(1);
	ms = (lt->time / 1000) + (int64) lt->day * 86400000 + (int64) lt->month * 30 * 86400000;
	c->lock_timeout_text = DatumGetCString(DirectFunctionCall1(interval_out, IntervalPGetDatum(lt)));
	if (ms < 1 || ms > INT_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("lock_timeout of migrate_cutover() of plan \"%s\" is out of range (got %s)", c->plan,
						c->lock_timeout_text),
				 errhint("Pass how long writers may wait for each lock attempt, for example lock_timeout => '500ms'.")));
	c->lock_timeout_ms = (int) ms;
	c->max_attempts = PG_GETARG_INT32(2);
	if (c->max_attempts < 1 || c->max_attempts > 1000)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max_attempts of migrate_cutover() of plan \"%s\" must be between 1 and 1000 (got %d)",
						c->plan, c->max_attempts)));
	if (IsolationUsesXactSnapshot())
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TRANSACTION_STATE),
				 errmsg("migrate_cutover() of plan \"%s\" needs isolation level READ COMMITTED", c->plan),
				 errdetail("Each of its steps must see what the sync workers committed."),
				 errhint("SET default_transaction_isolation = 'read committed' for the call.")));
	if (RecoveryInProgress())
		ereport(ERROR,
				(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
				 errmsg("cannot cut over migration plan \"%s\" during recovery", c->plan)));

	/* as the caller: a plan it cannot see does not exist; it must be a member */
	c->owner = migrate_plan_owner(c->plan, true);
	if (!OidIsValid(c->owner))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("migration plan \"%s\" does not exist", c->plan)));
	migrate_check_member(c->owner, c->plan);

	/* before anything sets it: the search_path a worker would run under */
	c->caller_path = pstrdup(migrate_caller_search_path());
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	c->extschema = ext_schema();
	migrate_become_owner(c->owner, &saved);

	/* 1. checks and pairs */
	read_plan(c);
	read_pairs(c);
	foreach(lc, c->pairs)
	{
		Pair	   *p = lfirst(lc);

		if (OidIsValid(p->live))
		{
			relids = lappend_oid(relids, p->live);
			names = lappend(names, p->live_name);
		}
	}

	/* 2. fence; 3. verify gate; 4. catch up while changes arrive */
	take_fence(c);
	verify_gate(c);
	c->locals = local_prepare(c);
	for (int i = 0; i < CATCHUP_SYNCS; i++)
	{
		List	   *pending = pending_changes(c, NULL, NULL, NULL);

		if (pending == NIL)
			break;
		(void) sync_once(c, pending, false);
	}
	targets = palloc(sizeof(Oid) * Max(list_length(c->pairs), 1));
	sources = palloc(sizeof(char *) * Max(list_length(c->pairs), 1));
	foreach(lc, c->pairs)
	{
		Pair	   *p = lfirst(lc);

		targets[ntargets] = p->shadow;
		sources[ntargets++] = p->live_name;
	}
	/*
	 * The final sync in this backend: no run or sync of the plan from now
	 * on, so the deletes applied so far are known before the locks.
	 */
	deleted_before = NULL;
	if (c->locals != NIL)
	{
		take_plan_lock(c);
		deleted_before = sync_deleted(c);
		local_retries(c);
	}

	/* 5. the locks (an empty list: no live table, nothing to wait for) */
	c->lock_start = GetCurrentTimestamp();
	if (relids != NIL)
		c->attempts = lock_tables(psprintf("cutover of migration plan \"%s\"", c->plan), relids, names,
								  c->lock_timeout_ms, c->lock_timeout_text, c->max_attempts);
	c->locked_at = GetCurrentTimestamp();

	/* 6. under the locks: the final sync, the fence re-checked, the swap */
	check_not_cut_over(c->plan);
	if (deleted_before == NULL)
		deleted_before = sync_deleted(c);
	if (c->locals != NIL)
	{
		/*
		 * Every change committed before the locks, applied in this
		 * transaction (its rejects under the cutover's run, which commits
		 * with the swap or not at all).  A truncated source needs a pass
		 * with a diff: rolled back, the plan's lock let go for the workers.
		 */
		run_id = new_run(c, targets, sources, ntargets, &saved);
		if (!local_sync(c, run_id))
		{
			List	   *pending = pending_changes(c, NULL, NULL, NULL);

			release_plan_lock(c);
			if (pending != NIL)
				(void) sync_once(c, pending, true);
			take_plan_lock(c);
		}
		c->synced_at = GetCurrentTimestamp();
	}
	else if (c->remote || fk_quarantined(c))
	{
		/*
		 * A remote source is read through postgres_fdw in this transaction,
		 * whose remote snapshot is as old as its first remote read: what is
		 * pending there cannot be seen from here, so every table syncs (in
		 * a worker, with fresh snapshots), and one more sync must find
		 * nothing to apply.  So do rows a foreign key refused: their retry
		 * follows every table's pass.
		 */
		char	   *moved = NULL;

		(void) sync_once(c, NIL, true);
		c->synced_at = GetCurrentTimestamp();
		if (c->remote)
		{
			char	   *before = sync_progress(c);

			(void) sync_once(c, NIL, true);
			moved = sync_moved(before, sync_progress(c));
		}
		take_plan_lock(c);
		if (moved)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("cutover of migration plan \"%s\" refused: the source moved past the fence during the final sync",
							c->plan),
					 errdetail("A second sync under the live tables' locks still found changes to apply to %s.", moved),
					 errhint("Nothing was renamed. The source's writers are not behind the live tables' locks (a remote source): pause them, or call migrate_cutover() again when they are quiet.")));
	}
	else
	{
		/* only the tables with changes: a pass of a table costs ~15 ms */
		List	   *pending = pending_changes(c, NULL, NULL, NULL);

		if (pending != NIL)
			(void) sync_once(c, pending, true);
		c->synced_at = GetCurrentTimestamp();
		take_plan_lock(c);
	}
	if (pending_changes(c, &first_table, &first_n, &first_capture) != NIL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("cutover of migration plan \"%s\" refused: the source moved past the fence during the final sync",
						c->plan),
				 errdetail("Table %s has " INT64_FORMAT " change%s its capture (%s) did not apply under the live tables' locks.",
						   first_table, first_n, first_n == 1 ? "" : "s", first_capture),
				 errhint("Nothing was renamed. The source's writers are not behind the live tables' locks (a remote source): pause them, or call migrate_cutover() again when they are quiet.")));

	if (c->locals == NIL)
		run_id = new_run(c, targets, sources, ntargets, &saved);

	retired = c->retired_option ? c->retired_option :
		psprintf("%s_retired_" INT64_FORMAT, c->live_schema, run_id);
	if (strlen(retired) >= NAMEDATALEN)
		ereport(ERROR,
				(errcode(ERRCODE_NAME_TOO_LONG),
				 errmsg("the retired schema's name \"%s\" of migration plan \"%s\" is too long", retired, c->plan),
				 errhint("Name it with the plan's option cutover_retired (at most %d bytes).", NAMEDATALEN - 1)));
	namestrcpy(&retired_name, retired);
	{
		List	   *shadows = NIL;

		foreach(lc, c->pairs)
			shadows = lappend_oid(shadows, ((Pair *) lfirst(lc))->shadow);
		baseline = swap_baseline(c, shadows, deleted_before);
	}
	had_live = OidIsValid(get_namespace_oid(c->live_schema, true));
	swapped = OidFunctionCall2(internal_function("_cutover_swap", 2, swap_args),
							   CStringGetTextDatum(c->plan), NameGetDatum(&retired_name));
	carried = DatumGetCString(DirectFunctionCall1(jsonb_out, swapped));
	c->swapped_at = GetCurrentTimestamp();
	migrate_restore_identity(&saved);

	/* 7. the record, with the swap; fence: the positions, and what the reverse compares against */
	{
		Oid			types[2] = {TEXTOID, TEXTOID};
		Datum		args[2] = {CStringGetTextDatum(c->fence), CStringGetTextDatum(baseline)};
		spi_exec("SELECT ($1::pg_catalog.jsonb || pg_catalog.jsonb_build_object('swap', $2::pg_catalog.jsonb))::text",
				 2, types, args, SPI_OK_SELECT, "building the fence");
		c->fence = spi_value(0, 1);
		migrate_catalog_cutover_swapped(run_id, c->plan, c->live_schema, c->shadow_schema,
										had_live ? retired : NULL, c->fence, c->attempts,
										interval_text(c->lock_start, c->locked_at),
										interval_text(c->locked_at, c->swapped_at), carried);
		migrate_catalog_event(run_id, c->plan, "cutover",
							  psprintf("schema %s swapped into %s (the live one retired as %s): %d table%s, %d lock attempt%s, locks waited %.1f ms, held %.1f ms (final sync %.1f ms)",
									   quote_identifier(c->shadow_schema), quote_identifier(c->live_schema),
									   had_live ? quote_identifier(retired) : "(none)",
									   ntargets, ntargets == 1 ? "" : "s", c->attempts,
									   c->attempts == 1 ? "" : "s",
									   (double) (c->locked_at - c->lock_start) / 1000.0,
									   (double) (c->swapped_at - c->locked_at) / 1000.0,
									   (double) (c->synced_at - c->locked_at) / 1000.0));
	}
	if (SPI_finish() != SPI_OK_FINISH)
		elog(ERROR, "SPI_finish failed");
	PG_RETURN_INT64(run_id);
}

/* ---------------------------------------------------------------------
 * The reverse of a swap (migrate_rollback() of a cutover's run)
 * --------------------------------------------------------------------- */

/*
 * Reverse the swap that the cutover run run_id made: the current live
 * tables (the plan's targets, moved into the live schema by the swap) are
 * locked as a cutover locks them, then migrate._cutover_unswap(carried).
 * Writes made to them since the swap (rows newer than the swap's
 * transaction; inserts, updates and deletes the statistics counted since)
 * would stay behind in the shadow schema: refused (55000) unless force.
 * A second call is a no-op (NOTICE).
 */
void
migrate_cutover_reverse(int64 run_id, bool force)
{
	Oid			types[2] = {INT8OID, TEXTOID};
	Datum		args[2];
	Oid			owner;
	MigrateIdentity saved;
	char	   *plan;
	char	   *state;
	char	   *carried;
	char	   *xid;
	List	   *relids = NIL;
	List	   *names = NIL;
	StringInfoData written;
	int			attempts;
	uint64		n;
	Oid			unswap_args[1] = {JSONBOID};

	owner = migrate_run_owner(run_id, false);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	args[0] = Int64GetDatum(run_id);
	spi_exec("SELECT c.plan, c.state, c.carried::text, c.fence->'swap'->>'xid', c.rolled_back_by::text,"
			 "       c.rolled_back_at::text FROM migrate.cutover c WHERE c.run_id = $1",
			 1, types, args, SPI_OK_SELECT, "reading migrate.cutover");
	if (SPI_processed != 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("migration run " INT64_FORMAT " is not a cutover", run_id),
				 errhint("migrate.cutover lists the cutovers; a cutover that failed changed nothing and has no run.")));
	plan = spi_value(0, 1);
	state = spi_value(0, 2);
	carried = spi_value(0, 3);
	xid = spi_value(0, 4);
	migrate_check_member(owner, plan);
	if (strcmp(state, "rolled_back") == 0)
	{
		ereport(NOTICE,
				(errmsg("cutover run " INT64_FORMAT " of migration plan \"%s\" was already reversed (by %s): nothing to do",
						run_id, plan, spi_value(0, 5))));
		if (SPI_finish() != SPI_OK_FINISH)
			elog(ERROR, "SPI_finish failed");
		return;
	}

	migrate_become_owner(owner, &saved);
	args[1] = CStringGetTextDatum(plan);
	/* the current live tables: the plan's targets, in live name order */
	spi_exec("SELECT tm.target::pg_catalog.oid, tm.target::text FROM migrate.table_map tm"
			 "  JOIN pg_catalog.pg_class k ON k.oid = tm.target"
			 " WHERE tm.plan = $2 ORDER BY k.relname",
			 2, types, args, SPI_OK_SELECT, "reading migrate.table_map");
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		MemoryContext old = MemoryContextSwitchTo(CurTransactionContext);

		relids = lappend_oid(relids, DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[i],
																	 SPI_tuptable->tupdesc, 1, &isnull)));
		names = lappend(names, pstrdup(SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2)));
		MemoryContextSwitchTo(old);
	}
	attempts = relids == NIL ? 0 :
		lock_tables(psprintf("reversing cutover run " INT64_FORMAT " of migration plan \"%s\"", run_id, plan),
					relids, names, REVERSE_LOCK_TIMEOUT_MS, "500ms", REVERSE_MAX_ATTEMPTS);

	/* written since the swap: newer rows, or counters past the baseline */
	initStringInfo(&written);
	if (xid)
	{
		ListCell   *lc;

		foreach(lc, relids)
		{
			Oid			rel = lfirst_oid(lc);
			Oid			t2[2] = {OIDOID, TEXTOID};
			Datum		a2[2] = {ObjectIdGetDatum(rel), CStringGetTextDatum(xid)};
			char	   *newer;
			char	   *counted;

			spi_exec(psprintf("SELECT (SELECT pg_catalog.count(*) FROM %s t"
							  "          WHERE pg_catalog.age(t.xmin) <= pg_catalog.age($2::pg_catalog.xid))::text,"
							  "       (SELECT GREATEST(0, pg_catalog.pg_stat_get_tuples_deleted($1)"
							  "                 - (b->>'deleted')::bigint - (b->>'sync_deleted')::bigint))::text"
							  "  FROM (SELECT c.fence->'swap'->'tables'->($1::text) AS b FROM migrate.cutover c"
							  "         WHERE c.run_id = " INT64_FORMAT ") x",
							  (char *) list_nth(names, foreach_current_index(lc)), run_id),
					 2, t2, a2, SPI_OK_SELECT, "looking for writes since the swap");
			newer = spi_value(0, 1);
			counted = SPI_processed == 1 ? spi_value(0, 2) : NULL;
			if ((newer && strcmp(newer, "0") != 0) || (counted && strcmp(counted, "0") != 0))
				appendStringInfo(&written, "%s%s (%s row%s inserted or updated since the swap, %s deleted)",
								 written.len > 0 ? "; " : "", (char *) list_nth(names, foreach_current_index(lc)),
								 newer, strcmp(newer, "1") == 0 ? "" : "s",
								 counted ? counted : "?");
		}
	}
	if (written.len > 0 && !force)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("cutover run " INT64_FORMAT " of migration plan \"%s\" cannot be reversed: its live tables were written since the swap",
						run_id, plan),
				 errdetail("%s.", written.data),
				 errhint("Reversing would leave those writes in the tables that go back to the shadow schema. Copy them to the retired tables first, or pass force => true to reverse anyway.")));
	if (written.len > 0)
		ereport(WARNING,
				(errmsg("cutover run " INT64_FORMAT " of migration plan \"%s\" reversed by force: writes since the swap stay in the shadow tables",
						run_id, plan),
				 errdetail("%s.", written.data)));

	(void) OidFunctionCall1(internal_function("_cutover_unswap", 1, unswap_args),
							DirectFunctionCall1(jsonb_in, CStringGetDatum(carried)));
	migrate_restore_identity(&saved);

	n = migrate_catalog_cutover_reversed(run_id);
	if (n != 1)
		elog(ERROR, "cutover run " INT64_FORMAT " was reversed concurrently", run_id);
	migrate_catalog_event(run_id, plan, "cutover reversed",
						  psprintf("%d lock attempt%s%s%s", attempts, attempts == 1 ? "" : "s",
								   written.len > 0 ? "; forced over writes since the swap: " : "",
								   written.len > 0 ? written.data : ""));
	if (SPI_finish() != SPI_OK_FINISH)
		elog(ERROR, "SPI_finish failed");
}
