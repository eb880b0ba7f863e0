/*-------------------------------------------------------------------------
 *
 * sync.c
 *	  Trickle sync: arming a table's capture before an incremental run's
 *	  load, and one pass of a table in a sync run (migrate_sync(), a run of
 *	  mode "sync" with one "sync" unit per table).
 *
 * Each capture mode only yields changed keys (values of the table's
 * leading key, as the source maps it) and a position:
 *
 *	  watermark  source rows whose watermark is past position - lag (the
 *				 overlap re-reads late commits and skewed clocks); the new
 *				 position is max(watermark) taken before the keys are read
 *	  trigger	 the change table the source's triggers fill (sync.sql):
 *				 its rows are read in seq order, and deleted once applied
 *	  slot		 a logical replication slot on the source (slot.c): the
 *				 transactions committed after the table's position (a commit
 *				 LSN), peeked, never consumed
 *	  diff		 the bisection diff of diff.sql: missing, extra and changed
 *				 keys, plus the keys the plan quarantined (a row fixed at the
 *				 source arrives)
 *
 * One apply path for all four (apply_keys): the current source rows of the
 * keys are read into the stage (stage.c; "key = ANY(keys)", pushed down),
 * upserted from it with the table's batch statement (rules, set-wise
 * quarantine, bisection: a row the target or a rule refuses is quarantined
 * as in a load), which records the keys it wrote; then target rows with
 * one of the keys that were not written are deleted: the source no longer
 * has them, or their current version was rejected (a rejected row must
 * not stay stale in the target).  Re-reading current rows by key makes an
 * apply idempotent and immune to the order writers commit in.
 *
 * Transactions: the rows, their rejects and the new position commit
 * together (catalog.c writes migrate.sync_state).  A position at the
 * source moves only after that commit: a remote change table's applied
 * rows are listed in sync_state.prune and deleted in the next transaction
 * (postgres_fdw commits the remote side first, so deleting them in the
 * apply's transaction could lose them); a slot is advanced after the
 * commit, to the least position of the plan's slot tables, and changes at
 * or before a table's own position are skipped when the slot delivers
 * them again.  A pass killed anywhere leaves a committed position and
 * the rows that go with it: the next pass goes on from there.  The
 * change keys read from the source are peeked before the re-read opens
 * its snapshot of the source, so the re-read sees at least those changes.
 *
 * A cutover's final sync under the live tables' locks runs in the
 * cutover's own transaction (migrate_sync_local_*, for trigger capture
 * with a local change table): the same apply, without a run, a worker or
 * a transaction per table; what a pass looks up and plans is done before
 * the locks.
 *
 * Memory: a pass's keys are kept in a temporary table, never in memory;
 * each apply reads at most batch_size of them, in a memory context reset
 * per apply.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "pgstat.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/plancache.h"

#include "migrate.h"
#include "slot.h"

typedef MigrateTableLoad TableLoad;

/* a table's sync pass */
typedef struct SyncTable
{
	MigrateWork *w;
	MigrateUnit *u;
	TableLoad  *tl;
	MemoryContext cxt;			/* the pass's: the table's description */
	MemoryContext batchcxt;		/* one apply's, reset after it */
	char	   *capture;
	char	   *position;		/* NULL: nothing applied yet */
	char	   *change_relation;	/* trigger */
	bool		change_local;	/* trigger: the change table is a local table */
	char	   *slot_name;		/* slot */
	bool		armed;			/* the table has a sync_state row */
	char	   *watermark;		/* watermark: the source column */
	Oid			watermark_type;
	char	   *lag;			/* watermark: the overlap (interval text), or NULL */
	char	   *seen_lag;		/* the age of the oldest change applied, or NULL */
	Oid			source_oid;
	char	   *key_column;		/* trigger, slot: the plain source column of the leading key */
	char	   *target_key_type;	/* the leading target key column's type */
	char	   *keys;			/* temp table of the pass's keys: (n bigserial, k key type) */
	SPIPlanPtr	key_insert;		/* INSERT INTO keys (k) VALUES ($1::text::type) */
	bool		need_diff;		/* the source table was truncated: a diff pass follows */
	bool		reset_deferred; /* the next apply replaces the table's deferred keys */
	MigrateSyncApplied total;	/* this pass */
	MigrateCounts counts;		/* this pass, as run_range counts them */
} SyncTable;

static void sync_describe(SyncTable *st);
static void read_sync_state(SyncTable *st);
static void arm_table(SyncTable *st);
static void apply_keys(SyncTable *st, Datum keys, MigrateSyncApplied *a, MigrateCounts *counts);
static void delete_gone(SyncTable *st, const char *where_sql, Datum *args, Oid *argtypes,
						MigrateSyncApplied *a);
static bool delete_unless_referenced(TableLoad *tl, const char *sql, Oid *argtypes, Datum *args,
									 int64 *deleted);
static void keys_reset(SyncTable *st);
static int64 apply_batches(SyncTable *st, bool in_caller_txn, const char *position, bool move,
						   Datum prune);
static void pass_watermark(SyncTable *st);
static void pass_trigger(SyncTable *st);
static void pass_slot(SyncTable *st);
static void pass_diff(SyncTable *st);
static void prune_remote(SyncTable *st);
static void slot_key_sink(void *arg, const char *key_text);
static void sync_error_context(void *arg);

/* "syncing table t from s" on every error of a pass */
static void
sync_error_context(void *arg)
{
	SyncTable  *st = (SyncTable *) arg;

	if (st->tl && st->tl->target_name)
		errcontext("syncing table %s from %s (capture %s)", st->tl->target_name, st->tl->source,
				   st->capture ? st->capture : "?");
}

static char *
getvalue_copy(int col, MemoryContext cxt)
{
	char	   *v = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, col);

	return v ? MemoryContextStrdup(cxt, v) : NULL;
}

/*
 * The table's capture settings (table_map) and its state (sync_state, if
 * armed), in the current transaction; allocated in st->cxt.
 */
static void
read_sync_state(SyncTable *st)
{
	Oid			argtypes[2] = {TEXTOID, OIDOID};
	Datum		args[2] = {CStringGetTextDatum(st->w->plan), ObjectIdGetDatum(st->tl->target)};
	bool		isnull;
	int			ret;

	ret = SPI_execute_with_args("SELECT m.capture, m.watermark, m.lag::text, m.source::regclass::oid,"
								"       s.plan IS NOT NULL, s.position, s.change_relation, s.slot_name,"
								"       a.atttypid,"
								"       (SELECT c.relkind = 'r' FROM pg_catalog.pg_class c"
								"         WHERE c.oid = pg_catalog.to_regclass(s.change_relation)),"
								"       (SELECT pg_catalog.format_type(ta.atttypid, ta.atttypmod)"
								"          FROM pg_catalog.pg_attribute ta WHERE ta.attrelid = m.target"
								"           AND ta.attname = m.key[1])"
								"  FROM migrate.table_map m"
								"  LEFT JOIN migrate.sync_state s ON s.plan = m.plan AND s.target = m.target"
								"  LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = m.source::regclass"
								"       AND a.attname = m.watermark AND NOT a.attisdropped"
								" WHERE m.plan = $1 AND m.target = $2",
								2, argtypes, args, NULL, false, 1);
	if (ret != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "reading the capture of table %s failed: %s", st->tl->target_name,
			 SPI_result_code_string(ret));
	st->capture = getvalue_copy(1, st->cxt);
	st->watermark = getvalue_copy(2, st->cxt);
	st->lag = getvalue_copy(3, st->cxt);
	st->source_oid = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 4, &isnull));
	st->armed = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 5, &isnull));
	st->position = getvalue_copy(6, st->cxt);
	st->change_relation = getvalue_copy(7, st->cxt);
	st->slot_name = getvalue_copy(8, st->cxt);
	st->watermark_type = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 9, &isnull));
	if (isnull)
		st->watermark_type = InvalidOid;
	st->change_local = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 10, &isnull)) && !isnull;
	st->target_key_type = getvalue_copy(11, st->cxt);
}

/*
 * Describe the table for a sync (in a transaction): as its load does, but
 * always upserting, recording what the batch statement wrote; and the
 * checks capture needs.
 */
static void
sync_describe(SyncTable *st)
{
	TableLoad  *tl = st->tl;
	MemoryContext oldcxt = MemoryContextSwitchTo(st->cxt);

	/* returning_into set: described as upsert (see migrate_load_describe) */
	tl->returning_into = psprintf("pg_temp.migrate_applied_%u", tl->target);
	migrate_load_describe(tl, st->w->plan);
	tl->into = tl->target_name;
	migrate_undo_describe(tl);
	tl->stage = psprintf("pg_temp.migrate_stage_%u", tl->target);
	st->keys = psprintf("pg_temp.migrate_sync_keys_%u", tl->target);
	read_sync_state(st);
	MemoryContextSwitchTo(st->cxt);
	if (strcmp(st->capture, "none") == 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("table %s in migration plan \"%s\" has no capture", tl->target_name, st->w->plan),
				 errhint("Choose one with migrate_table(..., capture => 'watermark' | 'trigger' | 'slot' | 'diff').")));
	if (strcmp(st->capture, "trigger") == 0 || strcmp(st->capture, "slot") == 0)
	{
		if (tl->copy_key == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("capture %s of table %s in migration plan \"%s\" needs its leading key column \"%s\" mapped from a plain source column",
							st->capture, tl->target_name, st->w->plan, (char *) linitial(tl->keycols)),
					 errdetail("It is mapped from %s; the source's changes name source columns.", tl->key_expr),
					 errhint("Map the key column straight from a source column, or use capture => 'watermark' or 'diff'.")));
		st->key_column = tl->copy_key;
	}
	if (strcmp(st->capture, "diff") == 0 && list_length(tl->keycols) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("capture diff of table %s in migration plan \"%s\" needs a one-column key",
						tl->target_name, st->w->plan),
				 errhint("Use capture => 'watermark', 'trigger' or 'slot' for a table with a composite key.")));
	if (strcmp(st->capture, "diff") == 0 && tl->key_sensitive)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("capture diff of table %s in migration plan \"%s\" cannot work with a sensitive key",
						tl->target_name, st->w->plan),
				 errdetail("A diff shows sensitive keys as ***."),
				 errhint("Use capture => 'watermark', 'trigger' or 'slot'.")));
	if (strcmp(st->capture, "watermark") == 0 && !OidIsValid(st->watermark_type))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("watermark column \"%s\" of table %s in migration plan \"%s\" is not a column of %s",
						st->watermark ? st->watermark : "", tl->target_name, st->w->plan, tl->source),
				 errhint("Pass watermark => 'column' to migrate_table().")));
	MemoryContextSwitchTo(oldcxt);
}

/*
 * Arm the table's capture, in the current transaction (which has written
 * nothing yet when a slot is created; see worker.c): take the watermark's
 * start, install the triggers (or find a remote change table), create the
 * slot.  Its state starts at what capture sees from now on.
 */
static void
arm_table(SyncTable *st)
{
	TableLoad  *tl = st->tl;
	char	   *position = NULL;
	char	   *relation = NULL;
	char	   *slot = NULL;
	int			ret;

	if (strcmp(st->capture, "watermark") == 0)
	{
		StringInfoData sql;

		initStringInfo(&sql);
		appendStringInfo(&sql, "SELECT max(s.%s)::text FROM %s AS s", quote_identifier(st->watermark),
						 tl->source);
		if (tl->filter)
			appendStringInfo(&sql, " WHERE (%s)", tl->filter);
		ret = SPI_execute(sql.data, false, 1);
		if (ret != SPI_OK_SELECT || SPI_processed != 1)
			elog(ERROR, "reading the watermark of %s failed: %s", tl->source, SPI_result_code_string(ret));
		position = getvalue_copy(1, st->cxt);
	}
	else if (strcmp(st->capture, "trigger") == 0)
	{
		Oid			argtypes[2] = {TEXTOID, OIDOID};
		Datum		args[2] = {CStringGetTextDatum(st->w->plan), ObjectIdGetDatum(tl->target)};

		ret = SPI_execute_with_args("SELECT migrate._capture_arm_trigger($1, $2)::text",
									2, argtypes, args, NULL, false, 1);
		if (ret != SPI_OK_SELECT || SPI_processed != 1)
			elog(ERROR, "arming the triggers of %s failed: %s", tl->source, SPI_result_code_string(ret));
		relation = getvalue_copy(1, st->cxt);
	}
	else if (strcmp(st->capture, "slot") == 0)
	{
		slot = migrate_slot_name(st->w->plan);
		(void) migrate_slot_create(st->source_oid, slot);
	}
	migrate_catalog_sync_armed(st->w->run_id, st->w->plan, tl->target, st->capture, position,
							   relation, slot);
	st->armed = true;
	st->position = position;
	st->change_relation = relation;
	st->slot_name = slot;
	if (relation)
	{
		Datum		arg = CStringGetTextDatum(relation);
		Oid			type = TEXTOID;
		bool		isnull;

		ret = SPI_execute_with_args("SELECT relkind = 'r' FROM pg_catalog.pg_class WHERE oid = $1::regclass",
									1, &type, &arg, NULL, false, 1);
		if (ret != SPI_OK_SELECT || SPI_processed != 1)
			elog(ERROR, "reading the change table failed: %s", SPI_result_code_string(ret));
		st->change_local = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	}
	migrate_catalog_event(st->w->run_id, st->w->plan, "capture armed",
						  psprintf("{\"table\": \"%s\", \"capture\": \"%s\"}", tl->target_name, st->capture));
}

/*
 * Incremental run, before its load: arm the capture of target.  In a
 * transaction of its own (worker.c).
 */
void
migrate_sync_arm(MigrateWork *w, Oid target)
{
	MemoryContext cxt = AllocSetContextCreate(TopMemoryContext, "migrate sync arm",
											  ALLOCSET_SMALL_SIZES);
	SyncTable  *st = MemoryContextAllocZero(cxt, sizeof(SyncTable));
	Oid			argtypes[2] = {TEXTOID, OIDOID};
	Datum		args[2] = {CStringGetTextDatum(w->plan), ObjectIdGetDatum(target)};
	int			ret;

	ret = SPI_execute_with_args("SELECT 1 FROM migrate.table_map WHERE plan = $1 AND target = $2"
								" AND capture <> 'none'", 2, argtypes, args, NULL, false, 1);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "reading migrate.table_map failed: %s", SPI_result_code_string(ret));
	if (SPI_processed == 1)
	{
		st->w = w;
		st->cxt = cxt;
		st->tl = MemoryContextAllocZero(cxt, sizeof(TableLoad));
		st->tl->target = target;
		st->tl->run_id = w->run_id;
		sync_describe(st);
		arm_table(st);
	}
	MemoryContextDelete(cxt);
}

/* Empty the pass's key table (created on first use; the session's). */
static void
keys_reset(SyncTable *st)
{
	StringInfoData sql;

	initStringInfo(&sql);
	appendStringInfo(&sql, "CREATE TEMP TABLE IF NOT EXISTS migrate_sync_keys_%u"
					 " (n bigserial PRIMARY KEY, k %s)", st->tl->target,
					 format_type_be_qualified(st->tl->key_type));
	migrate_spi_exec(sql.data, SPI_OK_UTILITY);
	resetStringInfo(&sql);
	appendStringInfo(&sql, "TRUNCATE %s RESTART IDENTITY", st->keys);
	migrate_spi_exec(sql.data, SPI_OK_UTILITY);
	if (st->key_insert == NULL)
	{
		Oid			type = TEXTOID;

		resetStringInfo(&sql);
		appendStringInfo(&sql, "INSERT INTO %s (k) VALUES ($1::%s)", st->keys,
						 format_type_be_qualified(st->tl->key_type));
		st->key_insert = migrate_spi_prepare_keep(sql.data, 1, &type);
	}
}

/*
 * Run DELETE sql in a subtransaction, adding the rows it deleted to
 * *deleted; returns false when a foreign key refused it (rolled back).
 */
static bool
delete_unless_referenced(TableLoad *tl, const char *sql, Oid *argtypes, Datum *args, int64 *deleted)
{
	MemoryContext oldcxt = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;
	volatile bool done = false;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(oldcxt);
	PG_TRY();
	{
		/* the rows it deletes go to the undo log (undo.c) */
		int			ret = migrate_undo_execute_sql(tl, sql, 1, argtypes, args, 'd');

		if (ret != SPI_OK_DELETE)
			elog(ERROR, "deleting rows the source no longer has failed: %s", SPI_result_code_string(ret));
		*deleted += SPI_processed;
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcxt);
		CurrentResourceOwner = oldowner;
		done = true;
	}
	PG_CATCH();
	{
		ErrorData  *edata = migrate_abort_subxact(oldcxt, oldowner);

		if (edata->sqlerrcode != ERRCODE_FOREIGN_KEY_VIOLATION)
			ReThrowError(edata);
		FreeErrorData(edata);
	}
	PG_END_TRY();
	return done;
}

/*
 * Delete the target rows "FROM ... WHERE ..." (where_sql, over $1 = the
 * keys) names, in a subtransaction.  A row the target's foreign keys still
 * need (a child not yet synced references it: parents sync first) is left
 * there and its key deferred (a->deferred): a unit after every pass of the
 * run tries it again (migrate_sync_unit).
 */
static void
delete_gone(SyncTable *st, const char *where_sql, Datum *args, Oid *argtypes, MigrateSyncApplied *a)
{
	TableLoad  *tl = st->tl;
	const char *key0 = quote_identifier(linitial(tl->keycols));
	Oid			ctid_type = TIDOID;
	ArrayBuildState *deferred = NULL;
	SPITupleTable *rows;
	uint64		n;
	int			ret;

	if (delete_unless_referenced(tl, migrate_undo_wrap_delete(tl, psprintf("DELETE%s", where_sql)),
								 argtypes, args, &a->deleted))
		return;

	/* one row at a time: the free ones go, the others wait */
	ret = SPI_execute_with_args(psprintf("SELECT t.ctid, t.%s::text%s", key0, where_sql),
								1, argtypes, args, NULL, false, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "reading rows the source no longer has failed: %s", SPI_result_code_string(ret));
	rows = SPI_tuptable;
	n = SPI_processed;
	for (uint64 i = 0; i < n; i++)
	{
		bool		isnull;
		Datum		ctid = SPI_getbinval(rows->vals[i], rows->tupdesc, 1, &isnull);

		if (!delete_unless_referenced(tl, migrate_undo_wrap_delete(tl, psprintf("DELETE FROM %s AS t WHERE t.ctid = $1",
																			tl->target_name)),
									  &ctid_type, &ctid, &a->deleted))
			deferred = accumArrayResult(deferred, SPI_getbinval(rows->vals[i], rows->tupdesc, 2, &isnull),
										false, TEXTOID, st->batchcxt);
	}
	if (deferred)
	{
		Datum		more = makeArrayResult(deferred, st->batchcxt);

		a->deferred = a->deferred ? DirectFunctionCall2(array_cat, a->deferred, more) : more;
	}
}

/* The table the batch statement records the keys it wrote in (ON COMMIT DROP), empty. */
static void
applied_create(SyncTable *st)
{
	TableLoad  *tl = st->tl;
	StringInfoData sql;
	ListCell   *lc;
	int			ret;

	initStringInfo(&sql);
	appendStringInfo(&sql, "CREATE TEMP TABLE migrate_applied_%u ON COMMIT DROP AS SELECT ", tl->target);
	foreach(lc, tl->keycols)
		appendStringInfo(&sql, "t.%s, ", quote_identifier(lfirst(lc)));
	appendStringInfo(&sql, "true AS __migrate_inserted FROM %s AS t LIMIT 0", tl->target_name);
	ret = SPI_execute(sql.data, false, 0);
	if (ret != SPI_OK_UTILITY && ret != SPI_OK_SELINTO)
		elog(ERROR, "creating the table of applied keys failed: %s", SPI_result_code_string(ret));
}

/*
 * Apply the n source rows of keys in the stage: upsert them, delete the
 * target rows of those keys that were not written; rejects after hwm (the
 * highest reject_id before) that repeat one are dropped.  Adds to *a and
 * *counts.
 */
static void
apply_stage(SyncTable *st, Datum keys, int64 n, int64 hwm, MigrateSyncApplied *a, MigrateCounts *counts)
{
	TableLoad  *tl = st->tl;
	StringInfoData sql;
	MigrateCounts c = {0};
	Oid			argtypes[1] = {get_array_type(tl->key_type)};
	Datum		args[1] = {keys};
	ListCell   *lc;
	bool		isnull;
	int			ret;

	migrate_stage_load(tl, n, &c);

	ret = SPI_execute(psprintf("SELECT count(*) FILTER (WHERE __migrate_inserted),"
							   " count(*) FILTER (WHERE NOT __migrate_inserted) FROM %s",
							   tl->returning_into), false, 1);
	if (ret != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "counting the applied rows failed: %s", SPI_result_code_string(ret));
	a->inserted += DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	a->updated += DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));

	/*
	 * The keys' target rows that were not written: gone from the source,
	 * out of its filter, or rejected in their current version.
	 */
	initStringInfo(&sql);
	appendStringInfo(&sql, " FROM %s AS t WHERE t.%s = ANY ($1::%s[]) AND NOT EXISTS (SELECT 1 FROM %s AS w WHERE ",
					 tl->target_name, quote_identifier(linitial(tl->keycols)), st->target_key_type,
					 tl->returning_into);
	foreach(lc, tl->keycols)
		appendStringInfo(&sql, "%sw.%s = t.%s", foreach_current_index(lc) ? " AND " : "",
						 quote_identifier(lfirst(lc)), quote_identifier(lfirst(lc)));
	appendStringInfoChar(&sql, ')');
	delete_gone(st, sql.data, args, argtypes, a);

	/* a row re-read unchanged, or applied again after a kill: quarantined once */
	a->rejected += c.rejected;
	if (c.rejected > 0)
		a->rejected -= migrate_catalog_sync_dedupe_rejects(st->w->run_id, tl->target, hwm);
	migrate_add_counts(counts, &c);

	migrate_undo_flush(tl);
}

/*
 * Apply keys (an array of the leading key's type): re-read their source
 * rows, upsert them, delete the target rows of those keys that were not
 * written.  In the caller's transaction; adds to *a and *counts.
 */
static void
apply_keys(SyncTable *st, Datum keys, MigrateSyncApplied *a, MigrateCounts *counts)
{
	TableLoad  *tl = st->tl;
	bool		isnull;
	int64		hwm;
	int			ret;

	ret = SPI_execute("SELECT coalesce(max(reject_id), 0) FROM migrate.reject", false, 1);
	if (ret != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "reading migrate.reject failed: %s", SPI_result_code_string(ret));
	hwm = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));

	/* what the batch statement writes: the keys and whether it inserted them */
	applied_create(st);
	migrate_undo_begin(tl);
	apply_stage(st, keys, migrate_stage_fill_keys(tl, keys), hwm, a, counts);
	migrate_spi_exec(psprintf("DROP TABLE %s, %s", tl->returning_into, tl->stage), SPI_OK_UTILITY);
}

/*
 * Apply every key of the pass's key table, batch_size at a time.  When
 * position is given (move) the last apply's transaction commits it; with
 * in_caller_txn all applies are in the caller's transaction.  Each
 * apply is its own transaction otherwise (the caller has none), and the
 * position, if any, commits with the last.  Returns the keys applied.
 */
static int64
apply_batches(SyncTable *st, bool in_caller_txn, const char *position, bool move, Datum prune)
{
	int64		nkeys;
	int64		done = 0;
	bool		isnull;
	int			ret;

	if (!in_caller_txn)
		migrate_begin_txn();
	ret = SPI_execute(psprintf("SELECT coalesce(max(n), 0) FROM %s", st->keys), false, 1);
	if (ret != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "reading the keys to sync failed: %s", SPI_result_code_string(ret));
	nkeys = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));

	for (;;)
	{
		MigrateSyncApplied a = {0};
		MigrateCounts c = {0};
		bool		last;
		Datum		keys = (Datum) 0;
		Oid			argtypes[2] = {INT8OID, INT8OID};
		Datum		args[2] = {Int64GetDatum(done), Int64GetDatum(done + st->w->batch_size)};
		MemoryContext oldcxt;

		CHECK_FOR_INTERRUPTS();
		if (done < nkeys)
		{
			ret = SPI_execute_with_args(psprintf("SELECT array_agg(DISTINCT k) FROM %s WHERE n > $1 AND n <= $2"
												 " AND k IS NOT NULL", st->keys),
										2, argtypes, args, NULL, false, 1);
			if (ret != SPI_OK_SELECT || SPI_processed != 1)
				elog(ERROR, "reading the keys to sync failed: %s", SPI_result_code_string(ret));
			keys = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
			if (!isnull)
			{
				oldcxt = MemoryContextSwitchTo(st->batchcxt);
				keys = datumCopy(keys, false, -1);
				MemoryContextSwitchTo(oldcxt);
				pgstat_report_activity(STATE_RUNNING,
									   psprintf("migrate run " INT64_FORMAT ": sync of %s, keys " INT64_FORMAT " of " INT64_FORMAT,
												st->w->run_id, st->tl->target_name, done, nkeys));
				apply_keys(st, keys, &a, &c);
			}
			done += st->w->batch_size;
		}
		last = done >= nkeys;
		a.deferred_reset = st->reset_deferred;
		st->reset_deferred = false;
		if (!in_caller_txn || last)
		{
			migrate_catalog_sync_applied(st->w->plan, st->tl->target, move && last, position,
										 last ? prune : (Datum) 0, &a);
			/* the unit's last_key shows the position (a diff has none) */
			migrate_catalog_unit_checkpoint(st->w->run_id, st->u, &c,
											position ? position : st->position ? st->position : st->capture,
											st->tl->target_name);
		}
		else
			migrate_catalog_sync_applied(st->w->plan, st->tl->target, false, NULL, (Datum) 0, &a);
		st->total.inserted += a.inserted;
		st->total.updated += a.updated;
		st->total.deleted += a.deleted;
		st->total.rejected += a.rejected;
		migrate_add_counts(&st->counts, &c);
		migrate_worker_sample_memory();
		if (!in_caller_txn)
			migrate_commit_txn();
		MemoryContextReset(st->batchcxt);
		if (last)
			break;
		if (!in_caller_txn)
			migrate_begin_txn();
	}
	return nkeys;
}

/*
 * watermark: the new position is the source's max(watermark), taken
 * first; the keys are those of rows past the old position minus lag.
 */
static void
pass_watermark(SyncTable *st)
{
	TableLoad  *tl = st->tl;
	StringInfoData sql;
	char	   *fence;
	bool		timelike = st->watermark_type == TIMESTAMPTZOID ||
		st->watermark_type == TIMESTAMPOID || st->watermark_type == DATEOID;
	char	   *wmtype;
	int			ret;

	migrate_begin_txn();
	wmtype = format_type_be_qualified(st->watermark_type);
	keys_reset(st);
	initStringInfo(&sql);
	appendStringInfo(&sql, "SELECT max(s.%s)::text FROM %s AS s", quote_identifier(st->watermark), tl->source);
	if (tl->filter)
		appendStringInfo(&sql, " WHERE (%s)", tl->filter);
	ret = SPI_execute(sql.data, false, 1);
	if (ret != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "reading the watermark of %s failed: %s", tl->source, SPI_result_code_string(ret));
	fence = getvalue_copy(1, st->cxt);

	resetStringInfo(&sql);
	appendStringInfo(&sql, "INSERT INTO %s (k) SELECT DISTINCT (%s) FROM %s AS s WHERE true",
					 st->keys, tl->key_expr, tl->source);
	if (st->position)
	{
		/*
		 * The overlap: a minute unless the table says otherwise (time
		 * watermarks).  The bound is computed here and given as a constant:
		 * "timestamptz - interval" is not immutable, and postgres_fdw would
		 * ship every row to filter them locally.
		 */
		if (timelike)
		{
			Oid			types[2] = {TEXTOID, TEXTOID};
			Datum		vals[2] = {CStringGetTextDatum(st->position),
			CStringGetTextDatum(st->lag ? st->lag : "1 minute")};
			char	   *bound;

			ret = SPI_execute_with_args(psprintf("SELECT ($1::%s - $2::pg_catalog.interval)::%s::text", wmtype, wmtype),
										2, types, vals, NULL, false, 1);
			if (ret != SPI_OK_SELECT || SPI_processed != 1)
				elog(ERROR, "computing the watermark's overlap failed: %s", SPI_result_code_string(ret));
			bound = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
			appendStringInfo(&sql, " AND s.%s > %s::%s", quote_identifier(st->watermark),
							 quote_literal_cstr(bound), wmtype);
		}
		else if (st->lag)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("lag of table %s in migration plan \"%s\" needs a time watermark",
							tl->target_name, st->w->plan),
					 errdetail("Watermark column \"%s\" is of type %s.", st->watermark, format_type_be(st->watermark_type)),
					 errhint("Pass lag => NULL for a version-number watermark.")));
		else
			appendStringInfo(&sql, " AND s.%s > %s::%s", quote_identifier(st->watermark),
							 quote_literal_cstr(st->position), wmtype);
	}
	if (tl->filter)
		appendStringInfo(&sql, " AND (%s)", tl->filter);
	ret = SPI_execute(sql.data, false, 0);
	if (ret != SPI_OK_INSERT)
		elog(ERROR, "reading the changed keys of %s failed: %s", tl->source, SPI_result_code_string(ret));
	migrate_commit_txn();

	(void) apply_batches(st, false, fence ? fence : st->position, true, (Datum) 0);
	st->position = fence ? fence : st->position;
}

/*
 * Delete, at a remote source, the change rows an earlier transaction
 * applied (sync_state.prune), and forget them: after the apply's commit,
 * so that no change is lost if the commit fails.
 */
static void
prune_remote(SyncTable *st)
{
	Oid			argtypes[2] = {TEXTOID, OIDOID};
	Datum		args[2] = {CStringGetTextDatum(st->w->plan), ObjectIdGetDatum(st->tl->target)};
	MigrateSyncApplied none = {0};
	bool		isnull;
	Datum		prune;
	int			ret;

	migrate_begin_txn();
	ret = SPI_execute_with_args("SELECT prune FROM migrate.sync_state WHERE plan = $1 AND target = $2",
								2, argtypes, args, NULL, false, 1);
	if (ret != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "reading migrate.sync_state failed: %s", SPI_result_code_string(ret));
	prune = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	if (!isnull)
	{
		Oid			type = INT8ARRAYOID;

		ret = SPI_execute_with_args(psprintf("DELETE FROM %s WHERE seq = ANY ($1)", st->change_relation),
									1, &type, &prune, NULL, false, 0);
		if (ret != SPI_OK_DELETE)
			elog(ERROR, "deleting applied changes from %s failed: %s", st->change_relation,
				 SPI_result_code_string(ret));
		migrate_catalog_sync_applied(st->w->plan, st->tl->target, false, NULL, (Datum) 0, &none);
	}
	migrate_commit_txn();
}

/*
 * trigger: the change rows up to the pass's fence (the greatest seq when
 * it starts), batch_size at a time in seq order; a local change table
 * loses its applied rows in the apply's transaction, a remote one after
 * it (prune_remote).
 */
static void
pass_trigger(SyncTable *st)
{
	int64		fence;
	bool		isnull;
	int			ret;
	char	   *lag = NULL;

	if (!st->change_local)
		prune_remote(st);
	migrate_begin_txn();
	ret = SPI_execute(psprintf("SELECT coalesce(max(seq), 0) FROM %s", st->change_relation), false, 1);
	if (ret != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "reading %s failed: %s", st->change_relation, SPI_result_code_string(ret));
	fence = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	migrate_commit_txn();

	for (;;)
	{
		Oid			argtypes[1] = {INT8OID};
		Datum		args[1] = {Int64GetDatum(fence)};
		Datum		seqs;
		int64		nchanges;
		char	   *last;
		MemoryContext oldcxt;

		CHECK_FOR_INTERRUPTS();
		migrate_begin_txn();
		keys_reset(st);
		/* the change rows first: the re-read's snapshot of the source is later */
		ret = SPI_execute_with_args(psprintf("SELECT array_agg(seq), max(seq)::text, count(*),"
											 "   bool_or(op = 'T'), (pg_catalog.now() - min(at))::text"
											 " FROM (SELECT seq, op, at FROM %s WHERE seq <= $1 ORDER BY seq LIMIT %d) c",
											 st->change_relation, st->w->batch_size),
									1, argtypes, args, NULL, false, 1);
		if (ret != SPI_OK_SELECT || SPI_processed != 1)
			elog(ERROR, "reading the changes in %s failed: %s", st->change_relation, SPI_result_code_string(ret));
		nchanges = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3, &isnull));
		if (nchanges == 0)
		{
			migrate_commit_txn();
			break;
		}
		oldcxt = MemoryContextSwitchTo(st->batchcxt);
		seqs = datumCopy(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull), false, -1);
		last = pstrdup(SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2));
		if (DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 4, &isnull)))
			st->need_diff = true;
		if (lag == NULL)
			lag = MemoryContextStrdup(st->cxt, SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 5));
		MemoryContextSwitchTo(oldcxt);
		{
			Oid			type = INT8ARRAYOID;

			ret = SPI_execute_with_args(psprintf("INSERT INTO %s (k) SELECT DISTINCT k FROM %s"
												 " WHERE seq = ANY ($1) AND k IS NOT NULL",
												 st->keys, st->change_relation),
										1, &type, &seqs, NULL, false, 0);
			if (ret != SPI_OK_INSERT)
				elog(ERROR, "reading the changed keys in %s failed: %s", st->change_relation,
					 SPI_result_code_string(ret));
			if (st->change_local)
			{
				ret = SPI_execute_with_args(psprintf("DELETE FROM %s WHERE seq = ANY ($1)", st->change_relation),
											1, &type, &seqs, NULL, false, 0);
				if (ret != SPI_OK_DELETE)
					elog(ERROR, "deleting applied changes from %s failed: %s", st->change_relation,
						 SPI_result_code_string(ret));
			}
		}
		(void) apply_batches(st, true, last, true, st->change_local ? (Datum) 0 : seqs);
		migrate_commit_txn();
		st->position = MemoryContextStrdup(st->cxt, last);
		MemoryContextReset(st->batchcxt);
		if (!st->change_local)
			prune_remote(st);
	}
	st->seen_lag = lag;
}

/* slot.c's sink: one changed key into the pass's key table */
static void
slot_key_sink(void *arg, const char *key_text)
{
	SyncTable  *st = (SyncTable *) arg;
	Datum		value;
	int			ret;

	if (key_text == NULL)
	{
		st->need_diff = true;	/* the source table was truncated */
		return;
	}
	value = CStringGetTextDatum(key_text);
	ret = SPI_execute_plan(st->key_insert, &value, NULL, false, 0);
	if (ret != SPI_OK_INSERT)
		elog(ERROR, "storing a changed key failed: %s", SPI_result_code_string(ret));
	pfree(DatumGetPointer(value));
}

/*
 * slot: whole transactions committed after the table's position, up to
 * the source's WAL position when the pass starts, about batch_size changes
 * a transaction of ours; then the slot is confirmed up to the least
 * position of the plan's slot tables.
 */
static void
pass_slot(SyncTable *st)
{
	char	   *fence;
	Oid			argtypes[2] = {TEXTOID, TEXTOID};

	migrate_begin_txn();
	fence = MemoryContextStrdup(st->cxt, migrate_slot_current_lsn(st->source_oid));
	migrate_commit_txn();

	for (;;)
	{
		char	   *lsn;
		int64		nchanges = 0;

		CHECK_FOR_INTERRUPTS();
		migrate_begin_txn();
		keys_reset(st);
		lsn = migrate_slot_read(st->source_oid, st->slot_name, st->key_column, st->position, fence,
								st->w->batch_size, slot_key_sink, st, &nchanges);
		/*
		 * None left: every transaction that committed before the fence was
		 * read, so the table stands at the fence (also when none was its).
		 */
		if (lsn == NULL)
			lsn = fence;
		lsn = MemoryContextStrdup(st->cxt, lsn);
		(void) apply_batches(st, true, lsn, true, (Datum) 0);
		migrate_commit_txn();
		st->position = lsn;

		/* after our commit: the slot keeps what some table still needs */
		migrate_begin_txn();
		{
			Datum		args[2] = {CStringGetTextDatum(st->w->plan), CStringGetTextDatum(st->slot_name)};
			bool		isnull;
			int			ret;

			ret = SPI_execute_with_args("SELECT min(position::pg_catalog.pg_lsn)::text FROM migrate.sync_state"
										" WHERE plan = $1 AND slot_name = $2 AND capture = 'slot'"
										" HAVING bool_and(position IS NOT NULL)",
										2, argtypes, args, NULL, false, 1);
			if (ret != SPI_OK_SELECT)
				elog(ERROR, "reading migrate.sync_state failed: %s", SPI_result_code_string(ret));
			if (SPI_processed == 1)
			{
				char	   *upto = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);

				(void) isnull;
				if (upto)
					migrate_slot_advance(st->source_oid, st->slot_name, upto);
			}
		}
		migrate_commit_txn();
		if (strcmp(lsn, fence) == 0)
			break;
	}
}

/*
 * diff: the keys the bisection diff finds (missing, extra, changed), and
 * those the plan quarantined, which the diff leaves out.
 */
static void
pass_diff(SyncTable *st)
{
	TableLoad  *tl = st->tl;
	Oid			argtypes[2] = {TEXTOID, TEXTOID};
	Datum		args[2] = {CStringGetTextDatum(st->w->plan), CStringGetTextDatum(tl->target_name)};
	char	   *type;
	int			ret;

	migrate_begin_txn();
	type = format_type_be_qualified(tl->key_type);
	keys_reset(st);
	/* against the plan's last run that ended (not this one, which runs) */
	ret = SPI_execute_with_args(psprintf("INSERT INTO %s (k) SELECT DISTINCT d.key::%s"
										 "  FROM migrate._migrate_diff($1, $2,"
										 "    (SELECT max(run_id) FROM migrate.run WHERE plan = $1"
										 "        AND state <> 'running' AND NOT dry_run), 256, NULL) d",
										 st->keys, type),
								2, argtypes, args, NULL, false, 0);
	if (ret != SPI_OK_INSERT)
		elog(ERROR, "diffing %s failed: %s", tl->target_name, SPI_result_code_string(ret));
	{
		Oid			qtypes[2] = {TEXTOID, OIDOID};
		Datum		qargs[2] = {CStringGetTextDatum(st->w->plan), ObjectIdGetDatum(tl->target)};

		ret = SPI_execute_with_args(psprintf("INSERT INTO %s (k) SELECT DISTINCT r.source_key::%s"
											 "  FROM migrate.reject r JOIN migrate.run ru ON ru.run_id = r.run_id"
											 " WHERE ru.plan = $1 AND r.target = $2 AND NOT r.loaded"
											 "   AND r.source_key IS NOT NULL AND r.source_key <> '***'",
											 st->keys, type),
									2, qtypes, qargs, NULL, false, 0);
		if (ret != SPI_OK_INSERT)
			elog(ERROR, "reading the quarantined keys of %s failed: %s", tl->target_name,
				 SPI_result_code_string(ret));
	}
	migrate_commit_txn();
	(void) apply_batches(st, false, NULL, false, (Datum) 0);
	st->need_diff = false;
}

/*
 * The keys whose delete a foreign key refused (sync_state.deferred), and
 * the keys the plan quarantined because a foreign key refused their row
 * (23503: a child that committed with its parent after the parent's pass),
 * once every pass of the run is done: children have synced their deletes,
 * parents their inserts by now.  Deletes still refused stay deferred, with
 * a NOTICE; rows still refused are quarantined again (once, see
 * apply_keys) and retried by the next sync.
 */
static void
retry_deferred(SyncTable *st)
{
	Oid			argtypes[2] = {TEXTOID, OIDOID};
	Datum		args[2] = {CStringGetTextDatum(st->w->plan), ObjectIdGetDatum(st->tl->target)};
	bool		isnull;
	int			ret;

	migrate_begin_txn();
	keys_reset(st);
	ret = SPI_execute_with_args(psprintf("INSERT INTO %s (k) SELECT DISTINCT d::%s FROM ("
										 " SELECT d FROM migrate.sync_state s, unnest(s.deferred) d"
										 "  WHERE s.plan = $1 AND s.target = $2"
										 " UNION SELECT r.source_key FROM migrate.reject r"
										 "   JOIN migrate.run ru ON ru.run_id = r.run_id"
										 "  WHERE ru.plan = $1 AND r.target = $2 AND r.reason = '23503'"
										 "    AND NOT r.loaded AND r.source_key IS NOT NULL"
										 "    AND r.source_key <> '***') q(d)",
										 st->keys, format_type_be_qualified(st->tl->key_type)),
								2, argtypes, args, NULL, false, 0);
	if (ret != SPI_OK_INSERT)
		elog(ERROR, "reading the deferred keys failed: %s", SPI_result_code_string(ret));
	migrate_commit_txn();
	st->reset_deferred = true;
	(void) apply_batches(st, false, NULL, false, (Datum) 0);

	/* a quarantined child whose row is in the target now: the finding stays, as loaded */
	migrate_begin_txn();
	migrate_catalog_sync_fk_rejects_loaded(st->w->plan, st->tl->target,
										   psprintf("SELECT 1 FROM %s t WHERE t.%s = r.source_key::%s",
													quote_qualified_identifier(get_namespace_name(get_rel_namespace(st->tl->target)),
																			   get_rel_name(st->tl->target)),
													quote_identifier(linitial(st->tl->keycols)),
													format_type_be_qualified(st->tl->key_type)));
	migrate_commit_txn();

	migrate_begin_txn();
	ret = SPI_execute_with_args("SELECT cardinality(deferred) FROM migrate.sync_state WHERE plan = $1 AND target = $2",
								2, argtypes, args, NULL, false, 1);
	if (ret != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "reading migrate.sync_state failed: %s", SPI_result_code_string(ret));
	{
		int32		left = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));

		if (!isnull && left > 0)
			migrate_worker_notice(st->w->shared, "sync of %s: %d row%s the source deleted %s still referenced in the target; deleted by a later pass once their children are",
								  st->tl->target_name, left, left == 1 ? "" : "s", left == 1 ? "is" : "are");
	}
	migrate_commit_txn();
}

/*
 * One sync pass of a table: a claimed "sync" unit of a sync run.  Called
 * outside a transaction; every transaction it opens commits or fails the
 * run.  A table never armed (no incremental run) is armed now; trigger and
 * slot capture then start with a diff pass, which finds what changed
 * before.
 */
void
migrate_sync_unit(MigrateWork *w, MigrateUnit *u)
{
	MemoryContext cxt = AllocSetContextCreate(TopMemoryContext, "migrate sync", ALLOCSET_DEFAULT_SIZES);
	SyncTable  *st = MemoryContextAllocZero(cxt, sizeof(SyncTable));
	ErrorContextCallback errcallback;

	st->w = w;
	st->u = u;
	st->cxt = cxt;
	st->batchcxt = AllocSetContextCreate(cxt, "migrate sync apply", ALLOCSET_DEFAULT_SIZES);
	st->tl = MemoryContextAllocZero(cxt, sizeof(TableLoad));
	st->tl->target = u->target;
	st->tl->run_id = w->run_id;
	st->tl->batch_size = w->batch_size;

	PG_TRY();
	{
		errcallback.callback = sync_error_context;
		errcallback.arg = st;
		errcallback.previous = error_context_stack;
		error_context_stack = &errcallback;

		migrate_begin_txn();
		sync_describe(st);
		u->key_sensitive = st->tl->key_sensitive;
		migrate_route_begin(w->run_id, u->target, st->tl->rule_names, st->tl->rule_on_fail,
							st->tl->rule_exprs);
		migrate_route_set_predictions(st->tl->preds, st->tl->pred_ncols, st->tl->pred_sensitive);
		if (!st->armed)
		{
			arm_table(st);
			st->need_diff = strcmp(st->capture, "trigger") == 0 || strcmp(st->capture, "slot") == 0;
		}
		migrate_commit_txn();

		if (u->range_no == 2)
			retry_deferred(st);
		else
		{
			/* capture armed now: what changed before is found by a diff first */
			if (st->need_diff)
				pass_diff(st);
			if (strcmp(st->capture, "watermark") == 0)
				pass_watermark(st);
			else if (strcmp(st->capture, "trigger") == 0)
				pass_trigger(st);
			else if (strcmp(st->capture, "slot") == 0)
				pass_slot(st);
			else
				pass_diff(st);
			/* a truncate at the source: what is left there is found by a diff */
			if (st->need_diff)
				pass_diff(st);
		}

		migrate_begin_txn();
		if (u->range_no == 1)
		{
			Oid			argtypes[2] = {TEXTOID, OIDOID};
			Datum		args[2] = {CStringGetTextDatum(w->plan), ObjectIdGetDatum(u->target)};
			int			ret;

			migrate_catalog_sync_pass_done(w->run_id, w->plan, u->target, st->position, st->seen_lag);
			ret = SPI_execute_with_args("SELECT 1 FROM migrate.sync_state WHERE plan = $1 AND target = $2"
										" AND cardinality(deferred) > 0"
										" UNION ALL SELECT 1 FROM migrate.reject r JOIN migrate.run ru ON ru.run_id = r.run_id"
										" WHERE ru.plan = $1 AND r.target = $2 AND r.reason = '23503' AND NOT r.loaded",
										2, argtypes, args, NULL, false, 1);
			if (ret != SPI_OK_SELECT)
				elog(ERROR, "reading migrate.sync_state failed: %s", SPI_result_code_string(ret));
			if (SPI_processed == 1)
				migrate_catalog_add_sync_unit(w->run_id, u->target, 2);
		}
		migrate_catalog_unit_done(w->run_id, u, st->counts.read);
		migrate_commit_txn();
		migrate_worker_notice(w->shared, "sync of %s: " INT64_FORMAT " inserted, " INT64_FORMAT " updated, "
							  INT64_FORMAT " deleted, " INT64_FORMAT " rejected",
							  st->tl->target_name, st->total.inserted, st->total.updated,
							  st->total.deleted, st->total.rejected);
		error_context_stack = errcallback.previous;
	}
	PG_FINALLY();
	{
		SPIPlanPtr *plans[] = {&st->tl->stage_batch, &st->key_insert};

		migrate_route_end();
		for (size_t i = 0; i < lengthof(plans); i++)
		{
			if (*plans[i])
				SPI_freeplan(*plans[i]);
			*plans[i] = NULL;
		}
		MemoryContextDelete(cxt);
	}
	PG_END_TRY();
}

/* ---------------------------------------------------------------------
 * A cutover's final sync, in the caller's transaction (cutover.c)
 * --------------------------------------------------------------------- */

/* A statement of the final sync, kept, its generic plan built now (not under the locks). */
static SPIPlanPtr
local_plan(const char *sql, int nargs, Oid *argtypes)
{
	SPIPlanPtr	plan = migrate_spi_prepare_keep(sql, nargs, argtypes);
	CachedPlan *cplan = SPI_plan_get_cached_plan(plan);

	if (cplan)
		ReleaseCachedPlan(cplan, CurrentResourceOwner);
	return plan;
}

/* The end of the transaction frees the final sync's kept plans with its memory. */
static void
local_free_plans(void *arg)
{
	MigrateSyncLocal *l = (MigrateSyncLocal *) arg;
	SPIPlanPtr *plans[] = {&l->st->tl->stage_batch, &l->take, &l->fill};

	for (size_t i = 0; i < lengthof(plans); i++)
	{
		if (*plans[i])
			SPI_freeplan(*plans[i]);
		*plans[i] = NULL;
	}
}

/*
 * Describe target for a cutover's final sync in this backend, in the
 * caller's transaction (SPI connected; as the plan's owner, under the
 * run's search_path), before the live tables' locks: everything a pass
 * looks up is looked up now, the apply's temporary tables created (ON
 * COMMIT DROP: they last as long as the cutover's transaction) and its
 * statements planned (generic plans; the caller forces them under the
 * locks).  NULL unless its capture is trigger with a local change table
 * (a slot, a watermark or a remote change table syncs in a worker).
 * Lives until the transaction ends.
 */
MigrateSyncLocal *
migrate_sync_local_prepare(const char *plan, Oid target)
{
	MemoryContext cxt = AllocSetContextCreate(CurTransactionContext, "migrate final sync",
											  ALLOCSET_DEFAULT_SIZES);
	MemoryContext oldcxt = MemoryContextSwitchTo(cxt);
	MigrateSyncLocal *l = palloc0(sizeof(MigrateSyncLocal));
	MemoryContextCallback *cb = palloc0(sizeof(MemoryContextCallback));
	SyncTable  *st = palloc0(sizeof(SyncTable));
	TableLoad  *tl;
	MigrateCounts none = {0};
	StringInfoData sql;
	Oid			keys_type;
	char	   *key_type;

	st->w = palloc0(sizeof(MigrateWork));
	strlcpy(st->w->plan, plan, sizeof(st->w->plan));
	st->w->batch_size = migrate_batch_size;
	st->cxt = cxt;
	st->batchcxt = AllocSetContextCreate(cxt, "migrate final sync apply", ALLOCSET_DEFAULT_SIZES);
	tl = st->tl = palloc0(sizeof(TableLoad));
	tl->target = target;
	tl->batch_size = migrate_batch_size;
	sync_describe(st);
	MemoryContextSwitchTo(cxt);
	if (!st->armed || strcmp(st->capture, "trigger") != 0 || !st->change_local ||
		st->change_relation == NULL)
	{
		MemoryContextSwitchTo(oldcxt);
		MemoryContextDelete(cxt);
		return NULL;
	}
	l->target = target;
	l->st = st;
	cb->func = local_free_plans;
	cb->arg = l;
	MemoryContextRegisterResetCallback(cxt, cb);

	key_type = format_type_be_qualified(tl->key_type);
	keys_type = get_array_type(tl->key_type);
	/* the applied keys' table and the stage, empty; the batch statement */
	applied_create(st);
	(void) migrate_stage_fill_keys(tl, PointerGetDatum(construct_empty_array(tl->key_type)));
	migrate_stage_isolate(tl, 1, 0, &none);
	MemoryContextSwitchTo(cxt);
	{
		CachedPlan *cplan = SPI_plan_get_cached_plan(tl->stage_batch);

		if (cplan)
			ReleaseCachedPlan(cplan, CurrentResourceOwner);
	}

	/* a batch of change rows read and deleted; the reject_id before its apply */
	initStringInfo(&sql);
	appendStringInfo(&sql, "WITH d AS (DELETE FROM %s AS c WHERE c.seq IN (SELECT x.seq FROM %s AS x"
					 "   ORDER BY x.seq LIMIT %d) RETURNING c.seq, c.k, c.op, c.at)"
					 " SELECT pg_catalog.array_agg(DISTINCT d.k::%s) FILTER (WHERE d.k IS NOT NULL),"
					 "   pg_catalog.count(*), pg_catalog.max(d.seq)::text,"
					 "   coalesce(pg_catalog.bool_or(d.op = 'T'), false),"
					 "   (pg_catalog.now() - pg_catalog.min(d.at))::text,"
					 "   (SELECT coalesce(pg_catalog.max(r.reject_id), 0) FROM migrate.reject r) FROM d",
					 st->change_relation, st->change_relation, st->w->batch_size, key_type);
	l->take = local_plan(sql.data, 0, NULL);
	/* their source rows into the stage, as migrate_stage_fill_keys does */
	resetStringInfo(&sql);
	appendStringInfo(&sql, "INSERT INTO %s SELECT s.*, row_number() OVER () FROM %s AS s"
					 " WHERE (%s) = ANY ($1)", tl->stage, tl->source, tl->key_expr);
	if (tl->filter)
		appendStringInfo(&sql, " AND (%s)", tl->filter);
	l->fill = local_plan(sql.data, 1, &keys_type);
	l->empty_sql = psprintf("DELETE FROM %s; DELETE FROM %s", tl->stage, tl->returning_into);
	MemoryContextSwitchTo(oldcxt);
	return l;
}

/*
 * One apply of keys (an array of the key's type) for a final sync, with
 * the tables and plans of migrate_sync_local_prepare; rejects after hwm
 * that repeat one are dropped.  Its counts are added to l; deferred keys
 * are recorded now.
 */
static void
local_apply_keys(MigrateSyncLocal *l, Datum keys, int64 hwm, bool reset_deferred)
{
	SyncTable  *st = l->st;
	TableLoad  *tl = st->tl;
	MigrateSyncApplied a = {0};
	int			ret;

	if (l->used)
		migrate_spi_exec(l->empty_sql, SPI_OK_DELETE);
	l->used = true;
	ret = SPI_execute_plan(l->fill, &keys, NULL, false, 0);
	if (ret != SPI_OK_INSERT)
		elog(ERROR, "filling the stage table failed: %s", SPI_result_code_string(ret));
	migrate_undo_begin(tl);
	migrate_route_begin(st->w->run_id, tl->target, tl->rule_names, tl->rule_on_fail, tl->rule_exprs);
	migrate_route_set_predictions(tl->preds, tl->pred_ncols, tl->pred_sensitive);
	PG_TRY();
	{
		apply_stage(st, keys, (int64) SPI_processed, hwm, &a, &st->counts);
	}
	PG_FINALLY();
	{
		migrate_route_end();
	}
	PG_END_TRY();
	l->applied.inserted += a.inserted;
	l->applied.updated += a.updated;
	l->applied.deleted += a.deleted;
	l->applied.rejected += a.rejected;
	/* a delete a foreign key refused, a row it refused: tried again after every table */
	if (a.deferred || a.rejected > 0)
		l->retry = true;
	if (a.deferred || reset_deferred)
	{
		MigrateSyncApplied d = {0};

		d.deferred = a.deferred;
		d.deferred_reset = reset_deferred;
		migrate_catalog_sync_applied(st->w->plan, tl->target, false, NULL, (Datum) 0, &d);
	}
}

/*
 * Apply every change in l's change table that this statement can see
 * (under the live tables' locks, when the source is a live table, every
 * change there will be), as a pass does, in the caller's transaction:
 * batch_size change rows at a time, read and deleted by one statement,
 * their keys re-read from the source, upserted, the gone deleted, rejects
 * quarantined under run_id (which must exist).  Returns false at a change
 * row of a truncate (a diff pass must follow: the caller rolls back and
 * syncs in a worker).  Adds to l.  The caller records the position
 * (l->position) and the counts (migrate_catalog_cutover_synced).
 */
bool
migrate_sync_local_apply(MigrateSyncLocal *l, int64 run_id)
{
	SyncTable  *st = l->st;
	ErrorContextCallback errcallback;
	bool		ok = true;

	st->w->run_id = run_id;
	st->tl->run_id = run_id;
	errcallback.callback = sync_error_context;
	errcallback.arg = st;
	errcallback.previous = error_context_stack;
	error_context_stack = &errcallback;
	for (;;)
	{
		HeapTuple	row;
		TupleDesc	desc;
		bool		isnull;
		int64		n;
		Datum		keys;
		int			ret;

		CHECK_FOR_INTERRUPTS();
		ret = SPI_execute_plan(l->take, NULL, NULL, false, 0);
		if (ret != SPI_OK_SELECT || SPI_processed != 1)
			elog(ERROR, "reading the changes in %s failed: %s", st->change_relation, SPI_result_code_string(ret));
		row = SPI_tuptable->vals[0];
		desc = SPI_tuptable->tupdesc;
		n = DatumGetInt64(SPI_getbinval(row, desc, 2, &isnull));
		if (n == 0)
			break;
		if (DatumGetBool(SPI_getbinval(row, desc, 4, &isnull)))
		{
			ok = false;
			break;
		}
		l->position = MemoryContextStrdup(st->cxt, SPI_getvalue(row, desc, 3));
		if (l->lag == NULL)
			l->lag = MemoryContextStrdup(st->cxt, SPI_getvalue(row, desc, 5));
		l->changes += n;
		keys = SPI_getbinval(row, desc, 1, &isnull);
		if (!isnull)
		{
			int64		hwm = DatumGetInt64(SPI_getbinval(row, desc, 6, &isnull));
			MemoryContext oldcxt = MemoryContextSwitchTo(st->batchcxt);

			keys = datumCopy(keys, false, -1);
			MemoryContextSwitchTo(oldcxt);
			local_apply_keys(l, keys, hwm, false);
		}
		MemoryContextReset(st->batchcxt);
		if (n < st->w->batch_size)
			break;
	}
	error_context_stack = errcallback.previous;
	return ok;
}

/*
 * After every table's apply, parents first: the keys of l's table whose
 * delete a foreign key refused, and the rows it refused (23503), applied
 * again (children have synced their deletes, parents their rows by now),
 * as a pass's retry does.  What is still refused stays deferred or
 * quarantined for the next sync.
 */
void
migrate_sync_local_retry(MigrateSyncLocal *l)
{
	SyncTable  *st = l->st;
	TableLoad  *tl = st->tl;
	Oid			argtypes[2] = {TEXTOID, OIDOID};
	Datum		args[2] = {CStringGetTextDatum(st->w->plan), ObjectIdGetDatum(tl->target)};
	ErrorContextCallback errcallback;
	bool		isnull;
	Datum		keys;
	int			ret;

	if (!l->retry)
		return;
	errcallback.callback = sync_error_context;
	errcallback.arg = st;
	errcallback.previous = error_context_stack;
	error_context_stack = &errcallback;
	ret = SPI_execute_with_args(psprintf("SELECT pg_catalog.array_agg(DISTINCT q.d::%s),"
										 "   (SELECT coalesce(pg_catalog.max(r.reject_id), 0) FROM migrate.reject r)"
										 " FROM (SELECT d FROM migrate.sync_state s, pg_catalog.unnest(s.deferred) d"
										 "  WHERE s.plan = $1 AND s.target = $2"
										 " UNION SELECT r.source_key FROM migrate.reject r"
										 "   JOIN migrate.run ru ON ru.run_id = r.run_id"
										 "  WHERE ru.plan = $1 AND r.target = $2 AND r.reason = '23503'"
										 "    AND NOT r.loaded AND r.source_key IS NOT NULL"
										 "    AND r.source_key <> '***') q(d)",
										 format_type_be_qualified(tl->key_type)),
								2, argtypes, args, NULL, false, 1);
	if (ret != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "reading the deferred keys failed: %s", SPI_result_code_string(ret));
	keys = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	if (!isnull)
	{
		int64		hwm = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
		MemoryContext oldcxt = MemoryContextSwitchTo(st->batchcxt);

		keys = datumCopy(keys, false, -1);
		MemoryContextSwitchTo(oldcxt);
		local_apply_keys(l, keys, hwm, true);
		/* a quarantined child whose row is in the target now: the finding stays, as loaded */
		migrate_catalog_sync_fk_rejects_loaded(st->w->plan, tl->target,
											   psprintf("SELECT 1 FROM %s t WHERE t.%s = r.source_key::%s",
														quote_qualified_identifier(get_namespace_name(get_rel_namespace(tl->target)),
																				   get_rel_name(tl->target)),
														quote_identifier(linitial(tl->keycols)),
														format_type_be_qualified(tl->key_type)));
		MemoryContextReset(st->batchcxt);
	}
	error_context_stack = errcallback.previous;
}
