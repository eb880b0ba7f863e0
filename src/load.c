/*-------------------------------------------------------------------------
 *
 * load.c
 *	  The batch engine: describes a table as its plan maps it, reads one
 *	  key range (a unit, cut by units.c) in batches, maps, validates and
 *	  loads each batch into the target table, and checkpoints it.
 *
 * One batch is one transaction:
 *
 *	  INSERT INTO target (cols)
 *	  SELECT m.cols FROM (SELECT (expr)::type AS col, ... FROM source s
 *						  WHERE key > $1 AND key <= $2 AND (filter) OFFSET 0) m
 *	  WHERE CASE WHEN <rules hold> AND <no predicted constraint refuses>
 *				 THEN true ELSE migrate._fail(...) END
 *	  [ON CONFLICT (key) DO UPDATE ... | DO NOTHING]
 *
 * followed by the unit's checkpoint (catalog.c, one statement), then
 * COMMIT, so rows, rejects and checkpoint are durable together or not at
 * all.  The key range predicates use parameters of the key's own type so
 * that the FDW ships them (postgres_fdw and mysql_fdw both push "key > $1
 * AND key <= $2" down; neither needs ORDER BY or LIMIT for it, which
 * mysql_fdw handles badly).  Integer keys are cut into batches by
 * arithmetic, adapting the step to the key density; other keys by asking
 * the source for the n-th key.  Between batches the loader asks the worker
 * whether to stop (MigrateWork.should_stop): it never calls back into
 * worker.c.
 *
 * The target's constraints are predicted in the same WHERE (predict.c,
 * set-wise quarantine): NOT NULL and CHECK always, unique and foreign keys
 * ("probes", an index probe per row) from the first batch of the range the
 * target refused with 23505 or 23503, which is then tried again with them.
 * When the statement still fails with a data error (a cast, a trigger, a
 * constraint nothing predicted), the batch's source rows are copied into a
 * temporary stage table and the statement is retried on halves of it,
 * recursively, in subtransactions: the good rows load, each bad row ends
 * in migrate.reject with its SQLSTATE and message (bisect_steps counts
 * these statements).  Other errors (the source went away, permissions, an
 * abort rule) fail the table.
 *
 * Memory and cleanup: a range's state (its description, the keys kept
 * between batches) is in a memory context of its own, deleted when the
 * range ends, also on error; each batch's work is in the batch
 * transaction's contexts, freed at commit.  The stage table and a dry
 * run's table are ON COMMIT DROP, created in the transaction that uses
 * them, so a failed batch leaves neither behind.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "pgstat.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/plancache.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "migrate.h"

/* the table being loaded: its description and the load's statements */
typedef MigrateTableLoad TableLoad;

static void describe_read_path(TableLoad *tl, const char *plan);
static void append_rules_filter(TableLoad *tl, StringInfo sql, bool from_stage);
static void append_on_conflict(TableLoad *tl, StringInfo sql);
static void prepare_reject_fill(TableLoad *tl);
static int64 reject_high_water(TableLoad *tl);
static void fill_reject_rows(TableLoad *tl, int64 high_water);
static void load_error_context(void *arg);
static int64 key_to_int64(TableLoad *tl, Datum d);
static Datum int64_to_key(TableLoad *tl, int64 v);

/* one key range, in functions of one step each (see migrate_load_range) */
typedef struct RangeCursor RangeCursor;
static void create_dry_target(TableLoad *tl);
static void prepare_range_statements(TableLoad *tl, MigrateUnit *u);
static void find_int_range(TableLoad *tl, MigrateUnit *u, RangeCursor *c);
static void range_begin(MigrateWork *w, MigrateUnit *u, TableLoad *tl, RangeCursor *c);
static bool batch_bounds(TableLoad *tl, RangeCursor *c, Datum *bounds);
static void load_batch(TableLoad *tl, SPIPlanPtr plan, bool lower_bound, Datum *bounds,
					   MigrateCounts *batch);
static void advance(TableLoad *tl, RangeCursor *c, Datum *bounds, const MigrateCounts *batch);
static void adapt_rows_goal(MigrateWork *w, TableLoad *tl, RangeCursor *c, const MigrateCounts *batch,
							int64 batch_kb);
static const char *range_batch(MigrateWork *w, MigrateUnit *u, TableLoad *tl, RangeCursor *c);
static void range_finish(MigrateWork *w, MigrateUnit *u, TableLoad *tl, RangeCursor *c);
static void range_release(TableLoad *tl);

/* Name the table and source in every error raised while loading it. */
static void
load_error_context(void *arg)
{
	TableLoad  *tl = (TableLoad *) arg;

	if (tl->target_name)
		errcontext("loading table %s from %s", tl->target_name, tl->source);
}

/* Run a parameterless statement through SPI and check its result code. */
void
migrate_spi_exec(const char *sql, int expected)
{
	int			ret = SPI_execute(sql, false, 0);

	if (ret != expected)
		elog(ERROR, "SPI_execute failed (%s): %s", SPI_result_code_string(ret), sql);
}

/* Prepare a statement that lives until SPI_freeplan. */
SPIPlanPtr
migrate_spi_prepare_keep(const char *sql, int nargs, Oid *argtypes)
{
	SPIPlanPtr	plan = SPI_prepare(sql, nargs, argtypes);

	if (plan == NULL)
		elog(ERROR, "SPI_prepare failed (%s): %s",
			 SPI_result_code_string(SPI_result), sql);
	if (SPI_keepplan(plan) != 0)
		elog(ERROR, "SPI_keepplan failed");
	return plan;
}

void
migrate_add_counts(MigrateCounts *sum, const MigrateCounts *add)
{
	sum->read += add->read;
	sum->written += add->written;
	sum->rejected += add->rejected;
	sum->skipped += add->skipped;
	sum->warned += add->warned;
	sum->rejected_setwise += add->rejected_setwise;
	sum->bisect_steps += add->bisect_steps;
	sum->loaded_sum += add->loaded_sum;
	sum->loaded_hashed |= add->loaded_hashed;
}

static int64
key_to_int64(TableLoad *tl, Datum d)
{
	switch (tl->key_type)
	{
		case INT2OID:
			return DatumGetInt16(d);
		case INT4OID:
			return DatumGetInt32(d);
		default:
			return DatumGetInt64(d);
	}
}

/* v must already be clamped to the key type's range */
static Datum
int64_to_key(TableLoad *tl, int64 v)
{
	switch (tl->key_type)
	{
		case INT2OID:
			return Int16GetDatum((int16) v);
		case INT4OID:
			return Int32GetDatum((int32) v);
		default:
			return Int64GetDatum(v);
	}
}

/*
 * How the batches of tl (described up to its key expression) are read:
 * min and max of the key are asked together with count(*) except from
 * postgres_fdw (which ships min and max as two cheap "ORDER BY key LIMIT
 * 1" queries, where count(*) would scan the whole remote table): see
 * units.c.  From postgres_fdw, batches may be read with a binary COPY
 * (copysrc.c) when every source column has a built-in type, the key is a
 * plain source column and there is no filter.  The key's type decides how
 * batches are cut.  Allocates in the caller's context, like
 * migrate_load_describe.
 */
static void
describe_read_path(TableLoad *tl, const char *plan)
{
	MemoryContext tablecxt = CurrentMemoryContext;
	Oid			keyargtypes[3] = {TEXTOID, OIDOID, TEXTOID};
	Datum		keyargs[3];
	SPIPlanPtr	probe;
	CachedPlanSource *ps;
	StringInfoData sql;
	int			ret;

	keyargs[0] = CStringGetTextDatum(plan);
	keyargs[1] = ObjectIdGetDatum(tl->target);
	keyargs[2] = CStringGetTextDatum(tl->key_expr);
	ret = SPI_execute_with_args("SELECT NOT EXISTS (SELECT 1 FROM pg_catalog.pg_foreign_table ft"
								"   JOIN pg_catalog.pg_foreign_server fs ON fs.oid = ft.ftserver"
								"   JOIN pg_catalog.pg_foreign_data_wrapper w ON w.oid = fs.srvfdw"
								"  WHERE ft.ftrelid = m.source::regclass AND w.fdwname = 'postgres_fdw'),"
								"       (SELECT string_agg(pg_catalog.quote_ident(a.attname) || ' '"
								"                          || pg_catalog.format_type(a.atttypid, a.atttypmod), ', '"
								"                          ORDER BY a.attnum)"
								"          FROM pg_catalog.pg_attribute a WHERE a.attrelid = m.source::regclass"
								"           AND a.attnum > 0 AND NOT a.attisdropped),"
								"       (SELECT bool_and(a.atttypid < 16384 AND NOT a.attisdropped)"
								"          FROM pg_catalog.pg_attribute a WHERE a.attrelid = m.source::regclass"
								"           AND a.attnum > 0),"
								"       (SELECT a.attname FROM pg_catalog.pg_attribute a"
								"         WHERE a.attrelid = m.source::regclass AND a.attnum > 0 AND NOT a.attisdropped"
								"           AND 's.' || pg_catalog.quote_ident(a.attname) = $3),"
								"       (SELECT string_agg(pg_catalog.quote_ident(a.attname) || ' '"
								"                          || pg_catalog.format_type(a.atttypid, a.atttypmod)"
								"                          || CASE WHEN a.attcollation <> t.typcollation"
								"                                  THEN ' COLLATE ' || a.attcollation::regcollation::text"
								"                                  ELSE '' END, ', ' ORDER BY a.attnum)"
								"          FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_type t ON t.oid = a.atttypid"
								"         WHERE a.attrelid = m.source::regclass AND a.attnum > 0 AND NOT a.attisdropped)"
								"  FROM migrate.table_map m WHERE m.plan = $1 AND m.target = $2",
								3, keyargtypes, keyargs, NULL, true, 0);
	if (ret != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "reading the foreign data wrapper of %s failed: %s", tl->source,
			 SPI_result_code_string(ret));
	MemoryContextSwitchTo(tablecxt);
	{
		bool		isnull;
		bool		builtin;
		char	   *key;

		tl->minmax_count = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0],
													  SPI_tuptable->tupdesc, 1, &isnull));
		tl->copy_coldefs = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);
		if (tl->copy_coldefs)
			tl->copy_coldefs = MemoryContextStrdup(tablecxt, tl->copy_coldefs);
		builtin = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3, &isnull)) &&
			!isnull;
		key = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 4);
		tl->copy_key = key ? MemoryContextStrdup(tablecxt, key) : NULL;
		tl->stage_coldefs = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 5);
		if (tl->stage_coldefs)
			tl->stage_coldefs = MemoryContextStrdup(tablecxt, tl->stage_coldefs);
		tl->copy_path = migrate_copy_source && !tl->minmax_count && tl->filter == NULL &&
			builtin && tl->copy_key != NULL && tl->copy_coldefs != NULL;
	}

	/* the key's type: a probe of its expression, planned and dropped */
	initStringInfo(&sql);
	appendStringInfo(&sql, "SELECT (%s) FROM %s AS s", tl->key_expr, tl->source);
	probe = SPI_prepare(sql.data, 0, NULL);
	if (probe == NULL)
		elog(ERROR, "SPI_prepare failed (%s): %s", SPI_result_code_string(SPI_result), sql.data);
	ps = linitial(SPI_plan_get_plan_sources(probe));
	tl->key_type = TupleDescAttr(ps->resultDesc, 0)->atttypid;
	SPI_freeplan(probe);
	MemoryContextSwitchTo(tablecxt);
	tl->int_key = (tl->key_type == INT2OID || tl->key_type == INT4OID ||
				   tl->key_type == INT8OID);
}

/*
 * Describe target (tl->target) as plan maps it: its source, columns, key,
 * rules and how its batches can be read.  Needs SPI connected and a
 * transaction.  The description is allocated in the caller's memory
 * context (CurrentMemoryContext at the call), where this returns.
 */
void
migrate_load_describe(TableLoad *tl, const char *plan)
{
	MemoryContext tablecxt = CurrentMemoryContext;
	Oid			argtypes[2] = {TEXTOID, OIDOID};
	Datum		args[2];
	int			ret;
	uint64		i;
	char	   *key0;
	bool		isnull;

	args[0] = CStringGetTextDatum(plan);
	args[1] = ObjectIdGetDatum(tl->target);

	ret = SPI_execute_with_args("SELECT target::text, source, key::text[], filter, mode,"
								"       to_regclass(source) IS NOT NULL, options ? 'file', to_regclass(source)::oid"
								"  FROM migrate.table_map WHERE plan = $1 AND target = $2",
								2, argtypes, args, NULL, true, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "reading migrate.table_map failed: %s", SPI_result_code_string(ret));
	MemoryContextSwitchTo(tablecxt);	/* SPI calls return in SPI's context */
	if (SPI_processed != 1)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("table with oid %u is no longer mapped in migration plan \"%s\"",
						tl->target, plan)));
	{
		HeapTuple	tup = SPI_tuptable->vals[0];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		ArrayType  *keys;
		Datum	   *keyvals;
		int			nkeys;

		tl->target_name = MemoryContextStrdup(tablecxt, SPI_getvalue(tup, desc, 1));
		tl->source = MemoryContextStrdup(tablecxt, SPI_getvalue(tup, desc, 2));
		keys = DatumGetArrayTypeP(SPI_getbinval(tup, desc, 3, &isnull));
		deconstruct_array(keys, TEXTOID, -1, false, TYPALIGN_INT, &keyvals, NULL, &nkeys);
		tl->keycols = NIL;
		for (int k = 0; k < nkeys; k++)
			tl->keycols = lappend(tl->keycols,
								  MemoryContextStrdup(tablecxt, TextDatumGetCString(keyvals[k])));
		tl->filter = SPI_getvalue(tup, desc, 4);
		if (tl->filter)
			tl->filter = MemoryContextStrdup(tablecxt, tl->filter);
		/* a sync (returning_into set) upserts whatever the table's mode */
		tl->mode = tl->returning_into ? "upsert" : MemoryContextStrdup(tablecxt, SPI_getvalue(tup, desc, 5));
		tl->count_passes = strcmp(tl->mode, "skip_existing") == 0;
		/* a file source (filesrc.c): batches are cut on its records' _pos */
		tl->file_source = DatumGetBool(SPI_getbinval(tup, desc, 7, &isnull));
		tl->source_relid = DatumGetObjectId(SPI_getbinval(tup, desc, 8, &isnull));
		if (tl->file_source)
			tl->key_expr = "s._pos";
		if (!DatumGetBool(SPI_getbinval(tup, desc, 6, &isnull)))
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_TABLE),
					 errmsg("source relation %s of table %s in migration plan \"%s\" does not exist",
							tl->source, tl->target_name, plan),
					 errhint("Recreate the foreign table (IMPORT FOREIGN SCHEMA) or remap the table with migrate_table().")));
	}

	ret = SPI_execute_with_args("SELECT m.column_name, m.expr, m.type_name, m.column_name = ANY (s.cols)"
								"  FROM migrate._mapped_columns($1, $2) m,"
								"       (SELECT migrate._sensitive_targets($1, $2) AS cols) s",
								2, argtypes, args, NULL, true, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "reading column mappings failed: %s", SPI_result_code_string(ret));
	MemoryContextSwitchTo(tablecxt);
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("table %s in migration plan \"%s\" has no mapped column",
						tl->target_name, plan),
				 errhint("Map columns with migrate_column(), or give source and target columns the same names.")));
	key0 = tl->keycols ? linitial(tl->keycols) : "";
	for (i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		char	   *col = MemoryContextStrdup(tablecxt, SPI_getvalue(tup, desc, 1));
		char	   *expr = MemoryContextStrdup(tablecxt, SPI_getvalue(tup, desc, 2));

		tl->cols = lappend(tl->cols, col);
		tl->exprs = lappend(tl->exprs, expr);
		{
			char	   *type = SPI_getvalue(tup, desc, 3);	/* NULL: no cast */

			tl->types = lappend(tl->types, type ? MemoryContextStrdup(tablecxt, type) : NULL);
		}
		if (strcmp(col, key0) == 0 && !tl->file_source)
			tl->key_expr = expr;
		if (DatumGetBool(SPI_getbinval(tup, desc, 4, &isnull)))
		{
			ListCell   *k;

			tl->sensitive_cols = lappend(tl->sensitive_cols, col);
			foreach(k, tl->keycols)
				tl->key_sensitive |= strcmp(lfirst(k), col) == 0;
		}
	}
	if (tl->key_expr == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("key column \"%s\" of table %s in migration plan \"%s\" is not mapped",
						key0, tl->target_name, plan),
				 errhint("Map it with migrate_column().")));

	ret = SPI_execute_with_args("SELECT rule_name, on_fail, check_expr FROM migrate.rule"
								" WHERE plan = $1 AND target = $2 ORDER BY rule_name",
								2, argtypes, args, NULL, true, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "reading migrate.rule failed: %s", SPI_result_code_string(ret));
	MemoryContextSwitchTo(tablecxt);
	for (i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;

		tl->rule_names = lappend(tl->rule_names, MemoryContextStrdup(tablecxt, SPI_getvalue(tup, desc, 1)));
		tl->rule_on_fail = lappend(tl->rule_on_fail, MemoryContextStrdup(tablecxt, SPI_getvalue(tup, desc, 2)));
		tl->rule_exprs = lappend(tl->rule_exprs, MemoryContextStrdup(tablecxt, SPI_getvalue(tup, desc, 3)));
	}

	migrate_route_describe_sensitive(tl, plan);
	MemoryContextSwitchTo(tablecxt);
	describe_read_path(tl, plan);
	migrate_predict_describe(tl, plan);
	MemoryContextSwitchTo(tablecxt);
}

/*
 * The WHERE clause of the batch statement: the rules and the target's
 * predicted constraints (predict.c), routed by migrate._fail() (see
 * route.c).  Rows that pass go straight to the INSERT; only skip_existing,
 * where ON CONFLICT hides how many rows were read, pays a call per row.
 * With probes the rules and predictions are columns of the FROM item
 * (migrate_predict_from).
 */
static void
append_rules_filter(TableLoad *tl, StringInfo sql, bool from_stage)
{
	ListCell   *lc1;
	bool		first;
	bool		has_rules = tl->rule_names != NIL;
	bool		probes = tl->probes;
	char	   *pass = probes ? "m.__migrate_g <= 0" : migrate_predict_pass_sql(tl);
	char	   *gate = migrate_predict_rules_gate(tl, probes);
	char	   *detail = migrate_predict_detail_sql(tl, gate, probes);

	if (!has_rules && pass == NULL)
	{
		if (tl->count_passes)
			appendStringInfoString(sql, " WHERE migrate._pass()");
		return;
	}
	appendStringInfoString(sql, " WHERE CASE WHEN ");
	foreach(lc1, tl->rule_exprs)
		appendStringInfo(sql, "%s%s", foreach_current_index(lc1) ? " AND " : "",
						 migrate_predict_rule_outcome(lfirst(lc1), foreach_current_index(lc1), probes));
	if (pass)
		appendStringInfo(sql, "%s%s", has_rules ? " AND " : "", pass);
	appendStringInfo(sql, " THEN %s ELSE migrate._fail(ARRAY[",
					 tl->count_passes ? "migrate._pass()" : "true");
	foreach(lc1, tl->rule_exprs)
		appendStringInfo(sql, "%s%s", foreach_current_index(lc1) ? ", " : "",
						 migrate_predict_rule_outcome(lfirst(lc1), foreach_current_index(lc1), probes));
	appendStringInfoString(sql, has_rules ? "], " : "]::pg_catalog.bool[], ");
	if (tl->key_sensitive)
		appendStringInfoString(sql, "'***'::text");
	else if (tl->file_source && (from_stage || migrate_predict_whole_row(tl)))
		appendStringInfoString(sql, "m.__migrate_rk");
	else if (tl->file_source)
		appendStringInfoString(sql, "(m.__migrate_k0)::text");	/* made file:line by the fill */
	else if (list_length(tl->keycols) == 1)
		appendStringInfo(sql, "(m.%s)::text", quote_identifier(linitial(tl->keycols)));
	else
	{
		appendStringInfoString(sql, "ROW(");
		first = true;
		foreach(lc1, tl->keycols)
		{
			appendStringInfo(sql, "%sm.%s", first ? "" : ", ", quote_identifier(lfirst(lc1)));
			first = false;
		}
		appendStringInfoString(sql, ")::text");
	}
	if (from_stage || migrate_predict_whole_row(tl))
		appendStringInfo(sql, ", (to_jsonb(m.__migrate_src) - '__migrate_rn'%s)%s%s",
						 tl->file_source ? MIGRATE_FILE_ROW_DROP : "",
						 tl->mask_json ? " || " : "",
						 tl->mask_json ? psprintf("%s::jsonb", quote_literal_cstr(tl->mask_json)) : "");
	else
	{
		appendStringInfoString(sql, ", jsonb_build_object('" MIGRATE_KEY_MARKER "', jsonb_build_array(");
		if (tl->file_source)
			appendStringInfoString(sql, "m.__migrate_k0");
		foreach(lc1, tl->file_source ? NIL : tl->keycols)
			appendStringInfo(sql, "%sm.__migrate_k%d", foreach_current_index(lc1) ? ", " : "",
							 foreach_current_index(lc1));
		appendStringInfoString(sql, "))");
	}
	if (detail)
		appendStringInfo(sql, ", %s", detail);
	appendStringInfoString(sql, ") END");
}

/* ON CONFLICT of the modes upsert and skip_existing, on the key. */
static void
append_on_conflict(TableLoad *tl, StringInfo sql)
{
	ListCell   *lc1;
	bool		first;

	if (strcmp(tl->mode, "insert") == 0)
		return;
	appendStringInfoString(sql, " ON CONFLICT (");
	first = true;
	foreach(lc1, tl->keycols)
	{
		appendStringInfo(sql, "%s%s", first ? "" : ", ", quote_identifier(lfirst(lc1)));
		first = false;
	}
	appendStringInfoString(sql, ")");
	if (strcmp(tl->mode, "skip_existing") == 0)
		appendStringInfoString(sql, " DO NOTHING");
	else
	{
		int			nset = 0;

		foreach(lc1, tl->cols)
		{
			ListCell   *k;
			bool		is_key = false;

			foreach(k, tl->keycols)
				is_key |= strcmp(lfirst(k), lfirst(lc1)) == 0;
			if (is_key)
				continue;
			appendStringInfo(sql, "%s%s = EXCLUDED.%s", nset == 0 ? " DO UPDATE SET " : ", ",
							 quote_identifier(lfirst(lc1)), quote_identifier(lfirst(lc1)));
			nset++;
		}
		/* only key columns: a no-op update, so every row counts as written */
		if (nset == 0)
			appendStringInfo(sql, " DO UPDATE SET %s = EXCLUDED.%s",
							 quote_identifier(linitial(tl->keycols)),
							 quote_identifier(linitial(tl->keycols)));
	}
}

/*
 * The batch statement.  from_stage: read the stage table by row number
 * instead of the source by key range.  lower_bound: with "key > $1".
 */
char *
migrate_load_batch_sql(TableLoad *tl, bool from_stage, bool lower_bound)
{
	StringInfoData sql;
	ListCell   *lc1,
			   *lc2,
			   *lc3;
	bool		first;
	bool		has_rules = tl->rule_names != NIL || migrate_predict_active(tl);
	StringInfoData inner;

	initStringInfo(&sql);
	if (tl->multi_insert)
	{
		/* the target's row, attribute by attribute, for multiinsert.c */
		appendStringInfoString(&sql, "SELECT ");
		first = true;
		foreach(lc1, tl->mi_cols)
		{
			if (lfirst(lc1) == NULL)
				continue;
			appendStringInfo(&sql, "%s%s", first ? "" : ", ", (char *) lfirst(lc1));
			first = false;
		}
	}
	else
	{
		if (tl->returning_into)
			appendStringInfoString(&sql, "WITH w AS (");
		appendStringInfo(&sql, "INSERT INTO %s AS t (", tl->into);
		first = true;
		foreach(lc1, tl->cols)
		{
			appendStringInfo(&sql, "%s%s", first ? "" : ", ", quote_identifier(lfirst(lc1)));
			first = false;
		}
		appendStringInfoString(&sql, ") OVERRIDING SYSTEM VALUE SELECT ");
		first = true;
		foreach(lc1, tl->cols)
		{
			appendStringInfo(&sql, "%sm.%s", first ? "" : ", ", quote_identifier(lfirst(lc1)));
			first = false;
		}
	}

	/* the mapped row, typed as the target (typmods applied by the INSERT) */
	initStringInfo(&inner);
	appendStringInfoString(&inner, "(SELECT ");
	forthree(lc1, tl->cols, lc2, tl->exprs, lc3, tl->types)
	{
		if (lfirst(lc3))
			appendStringInfo(&inner, "(%s)::%s AS %s, ", (char *) lfirst(lc2),
							 (char *) lfirst(lc3), quote_identifier(lfirst(lc1)));
		else
			appendStringInfo(&inner, "%s AS %s, ", (char *) lfirst(lc2),
							 quote_identifier(lfirst(lc1)));
	}
	/* probes of in-batch duplicates: the order rows arrive in (the stage's) */
	if (migrate_predict_needs_arrival(tl))
		appendStringInfoString(&inner, from_stage ? "s.__migrate_rn AS __migrate_a, " :
							   "pg_catalog.row_number() OVER () AS __migrate_a, ");
	/*
	 * A row failing a rule is quarantined with its source row.  The stage
	 * is local: take the whole row.  From the source, a whole-row reference
	 * would build a second tuple for every row read (10% of the load time);
	 * only the key rides along, and the few failing rows are fetched again
	 * afterwards by key (fill_reject_rows).
	 */
	if (has_rules && tl->file_source && (from_stage || migrate_predict_whole_row(tl)))
		appendStringInfoString(&inner, "s AS __migrate_src, (s._file || ':' || s._line) AS __migrate_rk, ");
	else if (has_rules && tl->file_source)
		appendStringInfoString(&inner, "s._pos AS __migrate_k0, ");
	else if (has_rules && (from_stage || migrate_predict_whole_row(tl)))
		appendStringInfoString(&inner, "s AS __migrate_src, ");
	else if (has_rules)
	{
		foreach(lc1, tl->keycols)
		{
			ListCell   *c,
					   *e;
			int			k = foreach_current_index(lc1);

			forboth(c, tl->cols, e, tl->exprs)
			{
				if (strcmp(lfirst(c), lfirst(lc1)) == 0)
					appendStringInfo(&inner, "%s AS __migrate_k%d, ", (char *) lfirst(e), k);
			}
		}
	}
	inner.len -= 2;
	inner.data[inner.len] = '\0';

	if (from_stage)
		appendStringInfo(&inner, " FROM %s AS s WHERE s.__migrate_rn BETWEEN $1 AND $2",
						 tl->stage);
	else if (tl->copy_path)
		appendStringInfo(&inner, " FROM migrate._copy_source(%s::regclass, %s, %s, $2) AS s(%s)",
						 quote_literal_cstr(tl->source), quote_literal_cstr(tl->copy_key),
						 lower_bound ? "$1" : psprintf("NULL::%s", format_type_be_qualified(tl->key_type)),
						 tl->copy_coldefs);
	else
	{
		appendStringInfo(&inner, " FROM %s AS s WHERE (%s) <= $2", tl->source, tl->key_expr);
		if (lower_bound)
			appendStringInfo(&inner, " AND (%s) > $1", tl->key_expr);
		if (tl->filter)
			appendStringInfo(&inner, " AND (%s)", tl->filter);
	}
	/*
	 * OFFSET 0 keeps the mapped row a subquery, so that an expression is
	 * computed once per row however often the rules, hash and INSERT name
	 * it.  A streamed source mapped column for column needs no such fence:
	 * pulled up, the row skips a subquery scan (5 % of a one-worker load).
	 */
	appendStringInfoString(&inner, tl->copy_path && !from_stage && !tl->probes &&
						   migrate_copy_source_as_columns(tl) ? ")" : " OFFSET 0)");
	if (tl->probes)
		appendStringInfo(&sql, " FROM %s", migrate_predict_from(tl, inner.data, migrate_predict_rules_gate(tl, true)));
	else
		appendStringInfo(&sql, " FROM %s m", inner.data);

	{
		int			len = sql.len;

		append_rules_filter(tl, &sql, from_stage);
		/* the verify's hash of each row written (route.c migrate._loaded) */
		if (tl->loaded_hash && tl->row_hash == NULL)
			appendStringInfo(&sql, " %s migrate._loaded(%s)", sql.len > len ? "AND" : "WHERE",
							 tl->loaded_hash);
	}
	append_on_conflict(tl, &sql);
	if (tl->undo_into)
		migrate_undo_batch_sql(tl, &sql);
	else if (tl->returning_into)
	{
		appendStringInfoString(&sql, " RETURNING ");
		foreach(lc1, tl->keycols)
			appendStringInfo(&sql, "t.%s, ", quote_identifier(lfirst(lc1)));
		/* xmax is 0 on a row the statement inserted, not on one it updated */
		appendStringInfo(&sql, "t.xmax::text = '0') INSERT INTO %s SELECT * FROM w",
						 tl->returning_into);
	}
	return sql.data;
}

/*
 * Rows that fail a rule are quarantined from the batch statement with only
 * their key ({"__migrate_key": [k1, ...]}, see build_batch_sql); these
 * statements then fetch those rows from the source by key (the leading key
 * column as "= ANY($1)", which the FDWs push down) and store them, in the
 * batch's transaction.  A row the source no longer returns keeps the marker.
 */
static void
prepare_reject_fill(TableLoad *tl)
{
	StringInfoData sql;
	ListCell   *lc;
	Oid			types[4] = {INT8OID, INT8OID, OIDOID, InvalidOid};
	Oid			array_type = get_array_type(tl->key_type);

	if (!OidIsValid(array_type))
		elog(ERROR, "key type %s has no array type", format_type_be(tl->key_type));
	tl->reject_hwm = migrate_spi_prepare_keep("SELECT coalesce(max(reject_id), 0) FROM migrate.reject",
									  0, NULL);
	initStringInfo(&sql);
	appendStringInfo(&sql, "SELECT array_agg(DISTINCT (source_row #>> '{" MIGRATE_KEY_MARKER ",0}')::%s)"
					 " FROM migrate.reject WHERE reject_id > $1 AND run_id = $2 AND target = $3"
					 " AND source_row ? '" MIGRATE_KEY_MARKER "'",
					 format_type_be_qualified(tl->key_type));
	tl->reject_keys = migrate_spi_prepare_keep(sql.data, 3, types);

	resetStringInfo(&sql);
	/* a file's record: by its _pos, within the batch (pushed down), key file:line */
	if (tl->file_source)
		appendStringInfo(&sql, "UPDATE migrate.reject r SET source_row = f.row, source_key = f.file_line"
						 " FROM (SELECT jsonb_build_array(s._pos) AS k, s._file || ':' || s._line AS file_line,"
						 " to_jsonb(s)" MIGRATE_FILE_ROW_DROP "%s%s AS row FROM %s AS s WHERE s._pos = ANY ($4)",
						 tl->mask_json ? " || " : "",
						 tl->mask_json ? psprintf("%s::jsonb", quote_literal_cstr(tl->mask_json)) : "",
						 tl->source);
	else
		appendStringInfoString(&sql, "UPDATE migrate.reject r SET source_row = f.row"
							   " FROM (SELECT jsonb_build_array(");
	foreach(lc, tl->file_source ? NIL : tl->keycols)
	{
		ListCell   *c,
				   *e;

		forboth(c, tl->cols, e, tl->exprs)
		{
			if (strcmp(lfirst(c), lfirst(lc)) == 0)
				appendStringInfo(&sql, "%s%s", foreach_current_index(lc) ? ", " : "",
								 (char *) lfirst(e));
		}
	}
	if (!tl->file_source)
		appendStringInfo(&sql, ") AS k, to_jsonb(s)%s%s AS row FROM %s AS s WHERE (%s) = ANY ($4)",
						 tl->mask_json ? " || " : "",
						 tl->mask_json ? psprintf("%s::jsonb", quote_literal_cstr(tl->mask_json)) : "",
						 tl->source, tl->key_expr);
	if (tl->filter)
		appendStringInfo(&sql, " AND (%s)", tl->filter);
	appendStringInfoString(&sql, ") f WHERE r.reject_id > $1 AND r.run_id = $2 AND r.target = $3"
						   " AND r.source_row -> '" MIGRATE_KEY_MARKER "' = f.k");
	types[3] = array_type;
	/* planned with the keys as a constant: mysql_fdw binds no array parameter */
	tl->reject_fill = SPI_prepare_cursor(sql.data, 4, types, CURSOR_OPT_CUSTOM_PLAN);
	if (tl->reject_fill == NULL || SPI_keepplan(tl->reject_fill) != 0)
		elog(ERROR, "SPI_prepare failed (%s): %s", SPI_result_code_string(SPI_result), sql.data);
}

static int64
reject_high_water(TableLoad *tl)
{
	bool		isnull;
	int			ret = SPI_execute_plan(tl->reject_hwm, NULL, NULL, true, 1);

	if (ret != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "reading migrate.reject failed: %s", SPI_result_code_string(ret));
	return DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

static void
fill_reject_rows(TableLoad *tl, int64 high_water)
{
	Datum		args[4];
	char		nulls[4] = "    ";
	bool		isnull;
	int			ret;

	args[0] = Int64GetDatum(high_water);
	args[1] = Int64GetDatum(tl->run_id);
	args[2] = ObjectIdGetDatum(tl->target);
	ret = SPI_execute_plan(tl->reject_keys, args, nulls, false, 1);
	if (ret != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "reading the keys of rejected rows failed: %s", SPI_result_code_string(ret));
	args[3] = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	if (isnull)
		return;
	/*
	 * The planner guesses one new reject and would join them to the fetched
	 * rows by a nested loop, querying the source again for each reject:
	 * a hash join it is (the GUC level is undone right after).
	 */
	{
		int			nestlevel = NewGUCNestLevel();

		(void) set_config_option("enable_nestloop", "off", PGC_USERSET, PGC_S_SESSION,
								 GUC_ACTION_SAVE, true, 0, false);
		ret = SPI_execute_plan(tl->reject_fill, args, nulls, false, 0);
		AtEOXact_GUC(true, nestlevel);
	}
	if (ret != SPI_OK_UPDATE)
		elog(ERROR, "storing the source rows of rejected rows failed: %s",
			 SPI_result_code_string(ret));

	/* a sensitive key: a row the source no longer returns keeps no key value */
	if (tl->key_sensitive)
	{
		Oid			types[3] = {INT8OID, INT8OID, OIDOID};

		ret = SPI_execute_with_args("UPDATE migrate.reject SET source_row = '{\"" MIGRATE_KEY_MARKER "\": \"***\"}'"
									" WHERE reject_id > $1 AND run_id = $2 AND target = $3"
									" AND source_row ? '" MIGRATE_KEY_MARKER "'",
									3, types, args, NULL, false, 0);
		if (ret != SPI_OK_UPDATE)
			elog(ERROR, "masking the keys of rejected rows failed: %s",
				 SPI_result_code_string(ret));
	}
}

/* A key value from its text form (checkpoints and range bounds are text). */
Datum
migrate_key_from_text(TableLoad *tl, const char *text, MemoryContext cxt)
{
	Oid			infunc;
	Oid			ioparam;
	MemoryContext old = MemoryContextSwitchTo(cxt);
	Datum		d;

	getTypeInputInfo(tl->key_type, &infunc, &ioparam);
	d = OidInputFunctionCall(infunc, (char *) text, ioparam, -1);
	MemoryContextSwitchTo(old);
	return d;
}

char *
migrate_key_to_text(TableLoad *tl, Datum d)
{
	Oid			outfunc;
	bool		isvarlena;

	getTypeOutputInfo(tl->key_type, &outfunc, &isvarlena);
	return OidOutputFunctionCall(outfunc, d);
}

/*
 * Append " AND (key) > $n" / " AND (key) <= $n" for the bounds that are
 * given, adding their values to args (typed as the key, so FDWs ship them).
 */
static void
append_bounds(TableLoad *tl, StringInfo sql, bool has_lo, Datum lo, bool has_hi, Datum hi,
			  Datum *args, Oid *types, int *nargs)
{
	if (has_lo)
	{
		args[*nargs] = lo;
		types[*nargs] = tl->key_type;
		(*nargs)++;
		appendStringInfo(sql, " AND (%s) > $%d", tl->key_expr, *nargs);
	}
	if (has_hi)
	{
		args[*nargs] = hi;
		types[*nargs] = tl->key_type;
		(*nargs)++;
		appendStringInfo(sql, " AND (%s) <= $%d", tl->key_expr, *nargs);
	}
}

/* where the load of a range stands between two batches */
struct RangeCursor
{
	MemoryContext cxt;			/* the range's context: keys kept across batches */
	Datum		range_lo;		/* the range's start (u->lo), if it has one */
	Datum		range_hi;		/* non-integer keys: the range's end, if any */
	Datum		last_hi;		/* upper bound of the last batch */
	bool		have_last;		/* last_hi is set: batches say "key > $1" */
	bool		done;			/* the range is read */
	int64		int_lo;			/* integer keys: where the next batch starts */
	int64		int_max;		/* the range's greatest key */
	int64		step;			/* keys per batch, adapted to the key density */
	int64		rows_goal;		/* rows per batch: batch_size, or fewer for batch_bytes */
	int64		anon_base_kb;	/* RssAnon when the batch began (batch_bytes) */
	bool		told_wide;		/* the NOTICE on rows over the budget was sent */
	int16		key_len;		/* the key type's typlen and typbyval, read in */
	bool		key_byval;		/* a transaction (range_begin) */
};

/*
 * Dry run: the batch's rows go to an empty copy of the target (same
 * columns, defaults, constraints and unique indexes; no foreign keys) that
 * lives as long as the transaction, so nothing is left behind, whatever
 * happens to it.
 */
static void
create_dry_target(TableLoad *tl)
{
	migrate_spi_exec(psprintf("CREATE TEMP TABLE migrate_dry_%u"
					  " (LIKE %s INCLUDING DEFAULTS INCLUDING CONSTRAINTS"
					  " INCLUDING INDEXES INCLUDING GENERATED INCLUDING IDENTITY) ON COMMIT DROP",
					  tl->target, tl->target_name),
			 SPI_OK_UTILITY);
}

/*
 * Prepare the statements of the range's batches, kept until the range
 * ends (range_release): the batch statement with and without a lower
 * bound, the reject fill, and for non-integer keys the statements that
 * find where a batch ends (the $3-th key, within the range: the rows
 * goal, which batch_bytes may change from batch to batch).
 */
static void
prepare_range_statements(TableLoad *tl, MigrateUnit *u)
{
	Oid			argtypes[3] = {tl->key_type, tl->key_type, INT8OID};
	StringInfoData head;
	char	   *tail;

	tl->batch_next = migrate_spi_prepare_keep(migrate_load_batch_sql(tl, false, true), 2, argtypes);
	tl->batch_first = migrate_spi_prepare_keep(migrate_load_batch_sql(tl, false, false), 2, argtypes);
	if (tl->rule_names != NIL || tl->preds != NIL)
		prepare_reject_fill(tl);
	if (tl->int_key)
		return;

	initStringInfo(&head);
	appendStringInfo(&head, "SELECT (SELECT k FROM (SELECT (%s) AS k FROM %s AS s WHERE (%s) IS NOT NULL",
					 tl->key_expr, tl->source, tl->key_expr);
	if (u->hi)
		appendStringInfo(&head, " AND (%s) <= $2", tl->key_expr);
	if (tl->filter)
		appendStringInfo(&head, " AND (%s)", tl->filter);
	tail = " ORDER BY 1 LIMIT $3) b" MIGRATE_LAST_KEY_OF_SUBQUERY;
	tl->bound_first = migrate_spi_prepare_keep(psprintf("%s%s", head.data, tail), 3, argtypes);
	tl->bound_next = migrate_spi_prepare_keep(psprintf("%s AND (%s) > $1%s", head.data, tl->key_expr, tail),
									  3, argtypes);
}

/*
 * Integer keys: what is left of the range, as min and max of its keys
 * (pushed down; count(*) as in units.c), sets where the first batch
 * starts, or that the range is done.
 */
static void
find_int_range(TableLoad *tl, MigrateUnit *u, RangeCursor *c)
{
	StringInfoData sql;
	Datum		bargs[2];
	Oid			btypes[2];
	int			nargs = 0;
	bool		isnull;
	Datum		d;
	int			ret;

	if (tl->file_source)
	{
		/* the files' extent, not a scan (filesrc.c) */
		MemoryContext old = MemoryContextSwitchTo(c->cxt);

		c->done = !migrate_filesrc_range(tl, c->have_last ? key_to_int64(tl, c->last_hi) : -1,
										 u->hi ? pg_strtoint64(u->hi) : PG_INT64_MAX,
										 &c->int_lo, &c->int_max);
		MemoryContextSwitchTo(old);
		return;
	}
	initStringInfo(&sql);
	appendStringInfo(&sql, "SELECT min(%s)::bigint, max(%s)::bigint%s FROM %s AS s WHERE true",
					 tl->key_expr, tl->key_expr, tl->minmax_count ? ", count(*)" : "",
					 tl->source);
	append_bounds(tl, &sql, c->have_last, c->last_hi, u->hi != NULL,
				  u->hi ? migrate_key_from_text(tl, u->hi, c->cxt) : (Datum) 0,
				  bargs, btypes, &nargs);
	if (tl->filter)
		appendStringInfo(&sql, " AND (%s)", tl->filter);
	ret = SPI_execute_with_args(sql.data, nargs, btypes, bargs, NULL, false, 1);
	if (ret != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "reading the key range of %s failed: %s", tl->source,
			 SPI_result_code_string(ret));
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	if (isnull)
	{
		c->done = true;			/* nothing (more) in this range */
		return;
	}
	c->int_max = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
											 SPI_tuptable->tupdesc, 2, &isnull));
	if (c->have_last)
		c->int_lo = key_to_int64(tl, c->last_hi);
	else if (pg_sub_s64_overflow(DatumGetInt64(d), 1, &c->int_lo))
		c->int_lo = PG_INT64_MIN;	/* the first batch has no lower bound */
}

/*
 * The range's first transaction: describe the table, prepare its
 * statements, and find where the first batch starts: after the unit's
 * checkpoint, else after the range's start.
 */
static void
range_begin(MigrateWork *w, MigrateUnit *u, TableLoad *tl, RangeCursor *c)
{
	MemoryContext oldcxt;

	migrate_begin_txn();
	oldcxt = MemoryContextSwitchTo(c->cxt);
	migrate_load_describe(tl, w->plan);
	Assert(CurrentMemoryContext == c->cxt);
	tl->into = w->dry_run ? psprintf("pg_temp.migrate_dry_%u", u->target) : tl->target_name;
	tl->stage = psprintf("pg_temp.migrate_stage_%u", u->target);
	u->key_sensitive = tl->key_sensitive;
	if (!w->dry_run)
		migrate_undo_describe(tl);
	/* how the rows are written, said once per table (multiinsert.c) */
	migrate_multi_insert_describe(tl);
	/* fields converted by the writer: no checksum kept, none described */
	if (!w->dry_run && !tl->mi_direct)
		migrate_row_hash_describe_load(tl, w->plan);
	if (u->range_no == 1 && w->run_id != 0 && !w->dry_run)
		migrate_catalog_event(w->run_id, w->plan, "insert path",
							  psprintf("%s: %s", tl->target_name, tl->insert_path));
	MemoryContextSwitchTo(oldcxt);

	if (u->lo)
		c->range_lo = migrate_key_from_text(tl, u->lo, c->cxt);
	if (u->last_key)
		c->last_hi = migrate_key_from_text(tl, u->last_key, c->cxt);
	else if (u->lo)
		c->last_hi = c->range_lo;
	c->have_last = u->last_key || u->lo;
	if (u->hi && !tl->int_key)
		c->range_hi = migrate_key_from_text(tl, u->hi, c->cxt);
	get_typlenbyval(tl->key_type, &c->key_len, &c->key_byval);

	/* the batch statements of a dry run are prepared against its table */
	if (w->dry_run)
		create_dry_target(tl);
	migrate_route_begin(w->run_id, u->target, tl->rule_names, tl->rule_on_fail, tl->rule_exprs);
	migrate_route_set_predictions(tl->preds, tl->pred_ncols, tl->pred_sensitive);
	prepare_range_statements(tl, u);
	c->rows_goal = migrate_first_rows_goal(w, tl);
	/* a file's batches are cut in bytes: a first guess of 64 a row */
	c->step = c->rows_goal * (tl->file_source ? 64 : 1);
	if (tl->file_source)
		migrate_filesrc_load_begin(tl->source_relid, tl->sensitive_src != NIL);
	if (tl->int_key)
		find_int_range(tl, u, c);
	migrate_commit_txn();
}

/*
 * The bounds of the next batch: bounds[0] is its lower bound (when
 * c->have_last), bounds[1] its upper bound.  Returns false when no key is
 * left above the last batch (non-integer keys; the range is read).
 */
static bool
batch_bounds(TableLoad *tl, RangeCursor *c, Datum *bounds)
{
	bool		isnull;
	MemoryContext oldcxt;
	int			ret;
	Datum		args[3];

	if (tl->int_key)
	{
		int64		hi;

		if (tl->file_source)
			c->int_lo = migrate_filesrc_batch_lo(tl, c->int_lo);
		if (pg_add_s64_overflow(c->int_lo, c->step, &hi) || hi > c->int_max)
			hi = c->int_max;
		if (tl->file_source)
			hi = Min(hi, migrate_filesrc_file_end(tl, c->int_lo));	/* one file a batch */
		bounds[0] = c->have_last ? int64_to_key(tl, c->int_lo) : (Datum) 0;
		bounds[1] = int64_to_key(tl, hi);
		return true;
	}

	args[0] = bounds[0] = c->last_hi;
	args[1] = c->range_hi;
	args[2] = Int64GetDatum(c->rows_goal);
	ret = SPI_execute_plan(c->have_last ? tl->bound_next : tl->bound_first,
						   args, NULL, true, 1);
	if (ret != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "finding the next batch of %s failed: %s", tl->source,
			 SPI_result_code_string(ret));
	bounds[1] = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	if (isnull)
		return false;
	/* the bound lives in SPI memory: copy it out for the next batch */
	oldcxt = MemoryContextSwitchTo(c->cxt);
	bounds[1] = datumCopy(bounds[1], c->key_byval, c->key_len);
	MemoryContextSwitchTo(oldcxt);
	return true;
}

/*
 * Load one batch: the batch statement, and when a row of it is refused,
 * the stage table and its bisection (the good rows load, the bad ones are
 * rejected).  Sets *batch to the batch's counts.  In the batch's
 * transaction.
 */
static void
load_batch(TableLoad *tl, SPIPlanPtr plan, bool lower_bound, Datum *bounds,
		   MigrateCounts *batch)
{
	ErrorData  *edata = NULL;
	int64		reject_hwm = 0;
	int64		nstage;

	/* a file source's fields converted as COPY FROM does (multiinsert.c) */
	if (tl->mi_direct && migrate_multi_insert_direct(tl, lower_bound, bounds, batch))
		return;
	if (tl->reject_fill)
		reject_hwm = reject_high_water(tl);
	if (migrate_stage_attempt(tl, plan, bounds, batch, &edata))
	{
		if (tl->reject_fill && batch->rejected + batch->warned > 0)
			fill_reject_rows(tl, reject_hwm);
		return;
	}

	/*
	 * A batch the target refused for a foreign or unique key: from now on
	 * the batch statement probes those too (predict.c), and this batch is
	 * tried again so.
	 */
	while (migrate_predict_enable(tl, edata->sqlerrcode))
	{
		Oid			argtypes[2] = {tl->key_type, tl->key_type};

		FreeErrorData(edata);
		edata = NULL;
		SPI_freeplan(tl->batch_next);
		SPI_freeplan(tl->batch_first);
		tl->batch_next = tl->batch_first = NULL;
		tl->batch_next = migrate_spi_prepare_keep(migrate_load_batch_sql(tl, false, true), 2, argtypes);
		tl->batch_first = migrate_spi_prepare_keep(migrate_load_batch_sql(tl, false, false), 2, argtypes);
		if (migrate_stage_attempt(tl, lower_bound ? tl->batch_next : tl->batch_first, bounds, batch, &edata))
		{
			if (tl->reject_fill && batch->rejected + batch->warned > 0)
				fill_reject_rows(tl, reject_hwm);
			return;
		}
	}

	/* a row of this batch was refused: find it, load the rest */
	elog(DEBUG1, "batch of %s failed (%s), isolating bad rows",
		 tl->target_name, tl->mask_json || tl->sensitive_cols ? "message not shown: sensitive columns" : edata->message);
	FreeErrorData(edata);
	memset(batch, 0, sizeof(*batch));
	nstage = migrate_stage_fill_range(tl, lower_bound, bounds, batch);
	migrate_stage_isolate(tl, 1, nstage, batch);
}

/*
 * After a committed batch (outside a transaction: no catalog access here):
 * its upper bound is where the next one starts;
 * integer keys adapt the step to the key density seen, so that the next
 * batch holds about c->rows_goal rows (sparse keys get wider ranges, never
 * more than 8 times wider per batch).
 */
static void
advance(TableLoad *tl, RangeCursor *c, Datum *bounds, const MigrateCounts *batch)
{
	if (!c->key_byval && c->have_last && c->last_hi != c->range_lo)
		pfree(DatumGetPointer(c->last_hi));
	c->last_hi = bounds[1];
	c->have_last = true;

	if (tl->int_key)
	{
		int64		hi = key_to_int64(tl, bounds[1]);
		int64		span = hi - c->int_lo;

		if (hi >= c->int_max)
			c->done = true;
		c->int_lo = hi;
		if (batch->read == 0)
			c->step = c->step > PG_INT64_MAX / 8 ? PG_INT64_MAX : c->step * 8;
		else
		{
			double		want = (double) span * c->rows_goal / batch->read;

			c->step = (int64) Max(1.0, Min(want, (double) c->step * 8));
		}
	}
}

/*
 * With a byte budget: the rows goal of the next batch, from the memory
 * this batch made the worker hold (batch_kb: its private peak above its
 * start, which counts a FDW's buffered result set; the allocator's free
 * memory was given back before it, so none was reused unseen).  Rows that
 * each take more than the budget load one per batch, with a NOTICE and an
 * event, once per range.  In the batch's transaction.
 */
static void
adapt_rows_goal(MigrateWork *w, TableLoad *tl, RangeCursor *c, const MigrateCounts *batch,
				int64 batch_kb)
{
	double		row_bytes;
	double		goal;

	if (w->batch_bytes <= 0 || batch->read == 0 || batch_kb < 0)
		return;
	row_bytes = (double) batch_kb * 1024.0 / batch->read;
	goal = row_bytes > 0 ? w->batch_bytes / row_bytes : (double) w->batch_size;
	c->rows_goal = (int64) Max(1.0, Min(goal, (double) w->batch_size));
	elog(DEBUG1, "migrate: batch of %s: " INT64_FORMAT " rows, " INT64_FORMAT " kB held; next batch " INT64_FORMAT " rows",
		 tl->target_name, batch->read, batch_kb, c->rows_goal);
	if (goal < 1.0 && !c->told_wide)
	{
		char	   *msg = psprintf("rows of %s take about " INT64_FORMAT " kB each, more than batch_bytes (" INT64_FORMAT " kB): they load one per batch",
								   tl->target_name, (int64) (row_bytes / 1024), w->batch_bytes / 1024);

		c->told_wide = true;
		migrate_worker_notice(w->shared, "%s", msg);
		migrate_catalog_event(w->run_id, w->plan, "rows over batch_bytes", msg);
	}
}

/*
 * One batch, in one transaction: stop if the run says so (returns the
 * state the unit stopped in), else find the batch's bounds, load it and
 * checkpoint it.  Sets c->done when the range is read.
 */
static const char *
range_batch(MigrateWork *w, MigrateUnit *u, TableLoad *tl, RangeCursor *c)
{
	MigrateCounts batch = {0};
	Datum		bounds[2];
	int64		batch_kb = -1;
	bool		lower_bound = c->have_last;
	SPIPlanPtr	plan = c->have_last ? tl->batch_next : tl->batch_first;
	const char *stopped;

	CHECK_FOR_INTERRUPTS();
	migrate_begin_txn();
	stopped = w->should_stop(w);
	if (stopped)
	{
		migrate_catalog_unit_stopped(w->run_id, u, stopped);
		migrate_commit_txn();
		return stopped;
	}
	if (!batch_bounds(tl, c, bounds))
	{
		migrate_commit_txn();
		c->done = true;
		return NULL;
	}

	pgstat_report_activity(STATE_RUNNING,
						   psprintf("migrate run " INT64_FORMAT ": %s range %d, batch after " INT64_FORMAT " rows",
									w->run_id, tl->target_name, u->range_no, tl->total.read));
	if (w->dry_run)
		create_dry_target(tl);
	migrate_undo_begin(tl);
	if (w->batch_bytes > 0)
		c->anon_base_kb = migrate_worker_memory_reset();
	load_batch(tl, plan, lower_bound, bounds, &batch);
	batch.loaded_hashed = tl->loaded_hash != NULL;
	if (w->batch_bytes > 0)
	{
		int64		peak = migrate_worker_memory_peak();

		batch_kb = peak < 0 || c->anon_base_kb < 0 ? -1 : Max(peak - c->anon_base_kb, 0);
	}
	migrate_undo_flush(tl);

	/*
	 * The checkpoint, in the batch's transaction.  It only applies while
	 * this worker owns the unit: a worker that lost it (the run was
	 * resumed elsewhere) fails here and its batch rolls back.
	 */
	migrate_catalog_unit_checkpoint(w->run_id, u, &batch, migrate_key_to_text(tl, bounds[1]),
									tl->target_name);

	/* the batch's memory is still held here: sample the peak */
	migrate_worker_sample_memory();
	adapt_rows_goal(w, tl, c, &batch, batch_kb);
	migrate_commit_txn();

	migrate_add_counts(&tl->total, &batch);
	advance(tl, c, bounds, &batch);
	return NULL;
}

/*
 * Trust no FDW: an independent count of the range (up to its last
 * committed batch; rows with a NULL key count in range 1, they are never
 * read) against the rows the range read, over all its sessions.  Then the
 * unit is done.  One transaction.
 */
static void
range_finish(MigrateWork *w, MigrateUnit *u, TableLoad *tl, RangeCursor *c)
{
	Oid			argtypes[3] = {INT8OID, OIDOID, INT4OID};
	Datum		args[3];
	int64		source_count;
	int64		rows_read;
	char	   *upper;
	StringInfoData sql;
	Datum		cargs[2];
	Oid			ctypes[2];
	int			nargs = 0;
	bool		isnull;
	int			ret;

	migrate_begin_txn();
	args[0] = Int64GetDatum(w->run_id);
	args[1] = ObjectIdGetDatum(u->target);
	args[2] = Int32GetDatum(u->range_no);
	ret = SPI_execute_with_args("SELECT rows_read, last_key FROM migrate.run_range"
								" WHERE run_id = $1 AND target = $2 AND range_no = $3",
								3, argtypes, args, NULL, false, 1);
	if (ret != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "reading migrate.run_range failed: %s", SPI_result_code_string(ret));
	rows_read = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	upper = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);
	if (upper == NULL)
		upper = u->hi;

	/* a file is read by migrate itself: nothing to count it again with */
	if (tl->file_source)
	{
		migrate_catalog_unit_done(w->run_id, u, rows_read);
		migrate_commit_txn();
		return;
	}
	initStringInfo(&sql);
	appendStringInfo(&sql, "SELECT count(*) FROM %s AS s WHERE ((true", tl->source);
	append_bounds(tl, &sql, u->lo != NULL, c->range_lo, upper != NULL,
				  upper ? migrate_key_from_text(tl, upper, c->cxt) : (Datum) 0,
				  cargs, ctypes, &nargs);
	appendStringInfoChar(&sql, ')');
	if (u->range_no == 1)
		appendStringInfo(&sql, " OR (%s) IS NULL", tl->key_expr);
	appendStringInfoChar(&sql, ')');
	if (tl->filter)
		appendStringInfo(&sql, " AND (%s)", tl->filter);
	ret = SPI_execute_with_args(sql.data, nargs, ctypes, cargs, NULL, true, 0);
	if (ret != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "counting the rows of %s failed: %s", tl->source,
			 SPI_result_code_string(ret));
	source_count = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
											   SPI_tuptable->tupdesc, 1, &isnull));
	/*
	 * A live source (mode incremental) moves under the load: the captured
	 * changes close the difference, and the sync and migrate_verify() are
	 * the check.
	 */
	if (source_count != rows_read && strcmp(w->mode, "incremental") == 0)
		ereport(DEBUG1,
				(errmsg("source %s returned " INT64_FORMAT " rows for table %s, count(*) now says " INT64_FORMAT " (live source, mode incremental)",
						tl->source, rows_read, tl->target_name, source_count)));
	else if (source_count != rows_read)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_ERROR),
				 errmsg("source %s returned " INT64_FORMAT " rows for table %s but count(*) says " INT64_FORMAT,
						tl->source, rows_read, tl->target_name, source_count),
				 errdetail("Rows whose key is NULL are never read; the source may also have changed during the run, or the foreign data wrapper dropped rows."),
				 errhint("Check the source, then run migrate_run() again (mode upsert or skip_existing keeps loaded rows).")));

	migrate_catalog_unit_done(w->run_id, u, source_count);
	migrate_commit_txn();
}

/*
 * Give back what a range holds outside its memory context: the routing
 * state and the kept statements.  On success and on error (before the
 * failed transaction is aborted; nothing here needs it).
 */
static void
range_release(TableLoad *tl)
{
	SPIPlanPtr *plans[] = {&tl->batch_first, &tl->batch_next, &tl->bound_first,
		&tl->bound_next, &tl->stage_batch, &tl->reject_hwm, &tl->reject_keys,
	&tl->reject_fill, &tl->direct_first, &tl->direct_next};

	migrate_route_end();
	migrate_filesrc_load_end();
	for (size_t i = 0; i < lengthof(plans); i++)
	{
		if (*plans[i])
			SPI_freeplan(*plans[i]);
		*plans[i] = NULL;
	}
}

/*
 * Load one key range (unit) of a table.  Called by a worker outside any
 * transaction, with the unit claimed; runs one transaction per batch,
 * continuing after the unit's checkpoint, and ends with an independent
 * count of the range.  Returns NULL when the range is done, or the state it
 * stopped in ("cancelled", "interrupted") between two batches.  Everything
 * the range holds is in its own memory context, deleted on the way out,
 * also when an error leaves (the error's transaction is then the caller's
 * to abort); its temp tables live no longer than a transaction.
 */
const char *
migrate_load_range(MigrateWork *w, MigrateUnit *u)
{
	MemoryContext rangecxt = AllocSetContextCreate(TopMemoryContext, "migrate range",
												   ALLOCSET_DEFAULT_SIZES);
	TableLoad  *tl = MemoryContextAllocZero(rangecxt, sizeof(TableLoad));
	RangeCursor *c = MemoryContextAllocZero(rangecxt, sizeof(RangeCursor));
	ErrorContextCallback errcallback;
	const char *volatile stopped = NULL;

	tl->run_id = w->run_id;
	tl->target = u->target;
	tl->dry_run = w->dry_run;
	tl->batch_size = w->batch_size;
	c->cxt = rangecxt;
	c->step = w->batch_size;
	c->rows_goal = w->batch_size;

	PG_TRY();
	{
		/* pushed inside: PG_END_TRY puts back the stack PG_TRY saw */
		errcallback.callback = load_error_context;
		errcallback.arg = tl;
		errcallback.previous = error_context_stack;
		error_context_stack = &errcallback;

		range_begin(w, u, tl, c);
		while (!c->done && stopped == NULL)
			stopped = range_batch(w, u, tl, c);
		if (stopped == NULL)
			range_finish(w, u, tl, c);

		error_context_stack = errcallback.previous;
	}
	PG_FINALLY();
	{
		range_release(tl);
		MemoryContextDelete(rangecxt);
	}
	PG_END_TRY();
	return stopped;
}

PG_FUNCTION_INFO_V1(migrate_batch_statement);

/*
 * migrate_batch_statement(plan text, target text) returns text
 *
 * The statement of a table's batches, as the worker builds it (the first
 * batch of a non-integer key omits "key > $1").  Read-only.
 */
Datum
migrate_batch_statement(PG_FUNCTION_ARGS)
{
	char	   *plan = text_to_cstring(PG_GETARG_TEXT_PP(0));
	text	   *target = PG_GETARG_TEXT_PP(1);
	TableLoad  *tl = palloc0(sizeof(TableLoad));
	MemoryContext cxt = CurrentMemoryContext;
	Oid			argtypes[2] = {TEXTOID, TEXTOID};
	Datum		args[2] = {PG_GETARG_DATUM(0), PointerGetDatum(target)};
	bool		isnull;
	char	   *sql;
	int			ret;

	if ((ret = SPI_connect()) != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed: %s", SPI_result_code_string(ret));
	/* raises the usual errors for an unknown plan or table */
	ret = SPI_execute_with_args("SELECT (migrate._table_map($1, $2)).target::oid",
								2, argtypes, args, NULL, true, 1);
	if (ret != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "resolving the table failed: %s", SPI_result_code_string(ret));
	tl->target = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0],
												SPI_tuptable->tupdesc, 1, &isnull));
	MemoryContextSwitchTo(cxt);
	migrate_load_describe(tl, plan);
	tl->into = tl->target_name;
	sql = migrate_load_batch_sql(tl, false, true);
	if ((ret = SPI_finish()) != SPI_OK_FINISH)
		elog(ERROR, "SPI_finish failed: %s", SPI_result_code_string(ret));
	PG_RETURN_TEXT_P(cstring_to_text(sql));
}
