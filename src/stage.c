/*-------------------------------------------------------------------------
 *
 * stage.c
 *	  Rows the target refuses: one batch statement tried in a
 *	  subtransaction, the stage table a refused batch's source rows are
 *	  copied into, and the bisection that loads its good rows and
 *	  quarantines each bad one (load.c's batches and sync.c's applies).
 *
 * The stage is a temporary table with the source's columns and a row
 * number (__migrate_rn), ON COMMIT DROP: it lives as long as the batch's
 * transaction, so a failed batch leaves nothing behind.  A load fills it
 * with a key range of the source; a sync with the source rows of a set of
 * changed keys ("key = ANY($1)", planned with the keys as a constant so
 * that both FDWs ship it), and always loads from it.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

#include "migrate.h"

typedef MigrateTableLoad TableLoad;

static bool is_row_error(ErrorData *edata);
static void stage_reject_row(TableLoad *tl, int64 rn, ErrorData *edata, MigrateCounts *counts);
static void stage_create(TableLoad *tl);

/*
 * Rows of the stage being isolated that were rejected for an internal
 * error (XX000), the rows it holds, and the first such error's message.
 */
static int64 internal_rejects;
static char *internal_message;

/*
 * Errors that belong to a row rather than to the run: the data did not fit
 * (class 22), a constraint refused it (23, 44), or a target trigger raised.
 * An internal error (XX000) too, as a suspect: some input functions (hstore's,
 * say) report bad input so.  The bisection keeps it a row's error only when
 * other rows of the batch load (migrate_stage_isolate): raised by every
 * row, it is the run's and fails it.
 */
static bool
is_row_error(ErrorData *edata)
{
	int			class = ERRCODE_TO_CATEGORY(edata->sqlerrcode);

	if (migrate_route_abort_raised())
		return false;
	return class == ERRCODE_DATA_EXCEPTION ||
		class == ERRCODE_INTEGRITY_CONSTRAINT_VIOLATION ||
		class == ERRCODE_WITH_CHECK_OPTION_VIOLATION ||
		edata->sqlerrcode == ERRCODE_RAISE_EXCEPTION ||
		edata->sqlerrcode == ERRCODE_INTERNAL_ERROR;
}

/*
 * Execute one batch statement in a subtransaction.  On success adds the
 * attempt's counts to *counts and returns true.  On a row error rolls the
 * subtransaction back (its rejects with it), returns false and hands the
 * error to the caller in *edata_out (in the caller's memory context).  Any
 * other error is rethrown.  Needs SPI connected and a transaction.
 */
bool
migrate_stage_attempt(TableLoad *tl, SPIPlanPtr plan, Datum *values,
		MigrateCounts *counts, ErrorData **edata_out)
{
	MemoryContext oldcxt = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;
	volatile bool ok = false;

	migrate_route_reset_counts();
	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(oldcxt);

	PG_TRY();
	{
		int			ret = tl->multi_insert ? migrate_multi_insert_execute(tl, plan, values) :
			migrate_undo_execute(tl, plan, values, 'w');
		MigrateCounts c;

		if (ret != SPI_OK_INSERT)
			elog(ERROR, "batch statement failed: %s", SPI_result_code_string(ret));
		/* c.read counts the rows the routing functions saw: see build_batch_sql */
		migrate_route_get_counts(&c);
		c.written = SPI_processed;
		if (tl->count_passes)
			c.skipped = c.read - c.rejected - c.written;
		else
			c.read = c.written + c.rejected;

		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcxt);
		CurrentResourceOwner = oldowner;
		migrate_add_counts(counts, &c);
		ok = true;
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		edata = migrate_abort_subxact(oldcxt, oldowner);

		if (!is_row_error(edata))
			ReThrowError(edata);
		*edata_out = edata;
	}
	PG_END_TRY();

	return ok;
}

/*
 * Copy the batch's source rows into a stage table, numbered 1..n; returns
 * n.  The stage lives as long as the batch's transaction (ON COMMIT DROP),
 * so a failed batch leaves nothing behind; its columns are the source's,
 * declared from the catalog so that creating it asks nothing of the
 * source.
 */
int64
migrate_stage_fill_range(TableLoad *tl, bool lower_bound, Datum *bounds, MigrateCounts *counts)
{
	MigrateCounts lines;

	StringInfoData sql;
	Oid			argtypes[2] = {tl->key_type, tl->key_type};
	int			ret;

	stage_create(tl);
	initStringInfo(&sql);

	appendStringInfo(&sql, "INSERT INTO %s SELECT s.*, row_number() OVER () FROM %s AS s"
					 " WHERE (%s) <= $2", tl->stage, tl->source, tl->key_expr);
	if (lower_bound)
		appendStringInfo(&sql, " AND (%s) > $1", tl->key_expr);
	if (tl->filter)
		appendStringInfo(&sql, " AND (%s)", tl->filter);
	/* a file's lines that do not parse are rejected as it is read (filesrc.c) */
	migrate_route_reset_counts();
	ret = SPI_execute_with_args(sql.data, 2, argtypes, bounds, NULL, false, 0);
	if (ret != SPI_OK_INSERT)
		elog(ERROR, "filling the stage table failed: %s", SPI_result_code_string(ret));
	migrate_route_get_counts(&lines);
	counts->read += lines.rejected;
	counts->rejected += lines.rejected;
	return (int64) SPI_processed;
}

/* Record row rn of the stage as refused by the target with edata. */
static void
stage_reject_row(TableLoad *tl, int64 rn, ErrorData *edata, MigrateCounts *counts)
{
	StringInfoData sql;
	Oid			argtypes[1] = {INT8OID};
	Datum		args[1] = {Int64GetDatum(rn)};
	ListCell   *lc;
	bool		first = true;
	int			ret;
	bool		isnull;
	char	   *key;
	Datum		row;

	initStringInfo(&sql);
	appendStringInfoString(&sql, "SELECT ");
	if (tl->file_source)
		appendStringInfoString(&sql, "(s._file || ':' || s._line");
	else if (list_length(tl->keycols) > 1)
		appendStringInfoString(&sql, "ROW(");
	foreach(lc, tl->keycols)
	{
		ListCell   *c,
				   *e;

		if (tl->file_source)
			break;
		forboth(c, tl->cols, e, tl->exprs)
		{
			if (strcmp(lfirst(c), lfirst(lc)) == 0)
				appendStringInfo(&sql, "%s(%s)", first ? "" : ", ", (char *) lfirst(e));
		}
		first = false;
	}
	if (list_length(tl->keycols) > 1 || tl->file_source)
		appendStringInfoString(&sql, ")");
	appendStringInfo(&sql, "::text, (to_jsonb(s) - '__migrate_rn'%s)",
					 tl->file_source ? MIGRATE_FILE_ROW_DROP : "");
	if (tl->mask_json)
		appendStringInfo(&sql, " || %s::jsonb", quote_literal_cstr(tl->mask_json));
	appendStringInfoString(&sql, ", ARRAY[NULL::text");
	foreach(lc, tl->sensitive_src)
		appendStringInfo(&sql, ", s.%s::text", quote_identifier(lfirst(lc)));
	appendStringInfo(&sql, "] FROM %s AS s WHERE s.__migrate_rn = $1", tl->stage);
	ret = SPI_execute_with_args(sql.data, 1, argtypes, args, NULL, false, 0);
	if (ret != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "reading row " INT64_FORMAT " of the stage failed: %s", rn,
			 SPI_result_code_string(ret));
	key = tl->key_sensitive ? "***" : SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	row = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull);
	if (tl->sensitive_src != NIL || tl->sensitive_cols != NIL)
	{
		List	   *values;

		values = migrate_route_sensitive_values(tl, rn,
												SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3, &isnull));

		migrate_route_insert_reject(key, row, isnull, unpack_sql_state(edata->sqlerrcode),
									migrate_mask_values(edata->message, values),
									migrate_mask_values(edata->detail, values), false);
	}
	else
		migrate_route_insert_reject(key, row, isnull, unpack_sql_state(edata->sqlerrcode),
									edata->message, edata->detail, false);
	counts->read++;
	counts->rejected++;
}

/*
 * Load stage rows lo..hi, splitting the range around rows the target
 * refuses.  A range of k rows with one bad row costs about 2 log2(k)
 * statements; good rows are loaded once.
 */
void
migrate_stage_bisect(TableLoad *tl, int64 lo, int64 hi, MigrateCounts *counts)
{
	Datum		values[2] = {Int64GetDatum(lo), Int64GetDatum(hi)};
	ErrorData  *edata = NULL;
	int64		mid;

	CHECK_FOR_INTERRUPTS();
	counts->bisect_steps++;
	if (migrate_stage_attempt(tl, tl->stage_batch, values, counts, &edata))
		return;
	if (lo == hi)
	{
		if (edata->sqlerrcode == ERRCODE_INTERNAL_ERROR && internal_rejects++ == 0)
			internal_message = MemoryContextStrdup(TopTransactionContext,
												   edata->message ? edata->message : "");
		stage_reject_row(tl, lo, edata, counts);
		FreeErrorData(edata);
		return;
	}
	FreeErrorData(edata);
	mid = lo + (hi - lo) / 2;
	migrate_stage_bisect(tl, lo, mid, counts);
	migrate_stage_bisect(tl, mid + 1, hi, counts);
}


/*
 * The stage of tl's current transaction (tl->stage), empty: created with
 * the source's columns, declared from the catalog so that creating it
 * asks nothing of the source.
 */
static void
stage_create(TableLoad *tl)
{
	StringInfoData sql;

	initStringInfo(&sql);
	if (tl->stage_coldefs)
		appendStringInfo(&sql, "CREATE TEMP TABLE migrate_stage_%u (%s, __migrate_rn bigint) ON COMMIT DROP",
						 tl->target, tl->stage_coldefs);
	else
		appendStringInfo(&sql, "CREATE TEMP TABLE migrate_stage_%u ON COMMIT DROP AS "
						 "SELECT s.*, 0::bigint AS __migrate_rn FROM %s AS s LIMIT 0",
						 tl->target, tl->source);
	migrate_spi_exec(sql.data, SPI_OK_UTILITY);
}

/*
 * Copy the source rows whose leading key is one of keys (an array of the
 * key's type) into the stage, numbered 1..n; returns n.  The array is a
 * constant of the statement's plan, which is what the FDWs push down
 * (mysql_fdw binds no array parameter).
 */
int64
migrate_stage_fill_keys(TableLoad *tl, Datum keys)
{
	StringInfoData sql;
	Oid			argtypes[1] = {get_array_type(tl->key_type)};
	Datum		args[1] = {keys};
	SPIPlanPtr	plan;
	int			ret;

	if (!OidIsValid(argtypes[0]))
		elog(ERROR, "key type %s has no array type", format_type_be(tl->key_type));
	stage_create(tl);
	initStringInfo(&sql);
	appendStringInfo(&sql, "INSERT INTO %s SELECT s.*, row_number() OVER () FROM %s AS s"
					 " WHERE (%s) = ANY ($1)", tl->stage, tl->source, tl->key_expr);
	if (tl->filter)
		appendStringInfo(&sql, " AND (%s)", tl->filter);
	plan = SPI_prepare_cursor(sql.data, 1, argtypes, CURSOR_OPT_CUSTOM_PLAN);
	if (plan == NULL)
		elog(ERROR, "SPI_prepare failed (%s): %s", SPI_result_code_string(SPI_result), sql.data);
	ret = SPI_execute_plan(plan, args, NULL, false, 0);
	if (ret != SPI_OK_INSERT)
		elog(ERROR, "filling the stage table failed: %s", SPI_result_code_string(ret));
	SPI_freeplan(plan);
	return (int64) SPI_processed;
}

/*
 * Load stage rows lo..hi (all of them tried at once, then, if the target
 * refuses one, bisected): the stage statement is prepared again when the
 * predictions changed since it was (probes switched on).  Adds to *counts.
 */
void
migrate_stage_isolate(TableLoad *tl, int64 lo, int64 hi, MigrateCounts *counts)
{
	if (tl->stage_batch != NULL && tl->stage_probes != tl->probes + 2 * tl->probe_keys)
	{
		SPI_freeplan(tl->stage_batch);
		tl->stage_batch = NULL;
	}
	if (tl->stage_batch == NULL)
	{
		Oid			rntypes[2] = {INT8OID, INT8OID};

		tl->stage_batch = migrate_spi_prepare_keep(migrate_load_batch_sql(tl, true, false), 2, rntypes);
		tl->stage_probes = tl->probes + 2 * tl->probe_keys;
	}
	if (hi < lo)
		return;
	internal_rejects = 0;
	internal_message = NULL;
	migrate_stage_bisect(tl, lo, hi, counts);
	/* every row refused with an internal error: not the rows' fault (rejects roll back) */
	if (internal_rejects > 0 && internal_rejects == hi - lo + 1)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("every row of a batch of %s failed with an internal error: %s",
						tl->target_name, tl->mask_json || tl->sensitive_cols ? "(message not shown: sensitive columns)" : internal_message),
				 errhint("An error every row raises points at the target or the server, not at the data: see the server log.")));
}

/*
 * Load the whole stage (1..n) as one statement; when the target refuses a
 * row for a foreign or unique key, switch those probes on (predict.c) and
 * try again; when it still refuses one, bisect.  Adds to *counts.
 */
void
migrate_stage_load(TableLoad *tl, int64 n, MigrateCounts *counts)
{
	Datum		values[2] = {Int64GetDatum(1), Int64GetDatum(n)};
	ErrorData  *edata = NULL;

	if (n <= 0)
		return;
	for (;;)
	{
		MigrateCounts attempt_counts = {0};

		migrate_stage_isolate(tl, 1, 0, counts);	/* prepares only */
		if (migrate_stage_attempt(tl, tl->stage_batch, values, &attempt_counts, &edata))
		{
			migrate_add_counts(counts, &attempt_counts);
			return;
		}
		if (!migrate_predict_enable(tl, edata->sqlerrcode))
			break;
		FreeErrorData(edata);
		edata = NULL;
	}
	FreeErrorData(edata);
	migrate_stage_isolate(tl, 1, n, counts);
}
