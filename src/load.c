/*-------------------------------------------------------------------------
 *
 * load.c
 *	  The batch engine: cuts a table into key ranges (the units workers
 *	  claim), reads a range in batches, maps, validates and loads each batch
 *	  into the target table, and checkpoints it.
 *
 * One batch is one transaction:
 *
 *	  INSERT INTO target (cols)
 *	  SELECT m.cols FROM (SELECT (expr)::type AS col, ... FROM source s
 *						  WHERE key > $1 AND key <= $2 AND (filter) OFFSET 0) m
 *	  WHERE CASE WHEN <rules hold> THEN true ELSE migrate._fail(...) END
 *	  [ON CONFLICT (key) DO UPDATE ... | DO NOTHING]
 *
 * followed by the checkpoint UPDATE of migrate.run_table, then COMMIT, so
 * rows, rejects and checkpoint are durable together or not at all.  The key
 * range predicates use parameters of the key's own type so that the FDW
 * ships them (postgres_fdw and mysql_fdw both push "key > $1 AND key <= $2"
 * down; neither needs ORDER BY or LIMIT for it, which mysql_fdw handles
 * badly).  Integer keys are cut by arithmetic on [min, max], adapting the
 * step to the key density; other keys by asking the source for the n-th key.
 *
 * When the statement fails with a data error (a cast, NOT NULL, unique,
 * foreign key or check violation), the batch's source rows are copied into
 * a temporary stage table once and the statement is retried on halves of
 * it, recursively, in subtransactions: the good rows load, each bad row ends
 * in migrate.reject with its SQLSTATE and message.  Other errors (the source
 * went away, permissions, an abort rule) fail the table.
 *
 * Memory: nothing here holds more than one batch's statement state; every
 * allocation is in the batch transaction's contexts, freed at commit.
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
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/plancache.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "migrate.h"

/*
 * The greatest key of the subquery "b" (key order), NULL when it is empty:
 * not max(), which some ordered key types (uuid before PostgreSQL 16) lack.
 */
#define LAST_KEY_OF_SUBQUERY " ORDER BY k DESC LIMIT 1)"

/* everything known about the table being loaded */
typedef struct TableLoad
{
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
	bool		minmax_count;	/* ask min and max with count(*): see below */
	bool		copy_path;		/* batches read by migrate._copy_source() */
	char	   *copy_key;		/* its key column (a source column name) */
	char	   *copy_coldefs;	/* "col type, ..." of the source */

	List	   *rule_names;
	List	   *rule_on_fail;
	List	   *rule_exprs;

	SPIPlanPtr	batch_first;	/* non-integer keys: batch with no lower bound */
	SPIPlanPtr	batch_next;		/* key > $1 AND key <= $2 */
	SPIPlanPtr	bound_first;	/* non-integer keys: where a batch ends */
	SPIPlanPtr	bound_next;
	SPIPlanPtr	reject_hwm;		/* highest reject_id so far */
	SPIPlanPtr	reject_keys;	/* keys of rejects still without their row */
	SPIPlanPtr	reject_fill;	/* fetch those rows by key, store them */
	SPIPlanPtr	stage_batch;	/* rn BETWEEN $1 AND $2 on the stage table */
	char	   *stage;			/* temp table name, once created */

	MigrateCounts total;
} TableLoad;

static void spi_exec(const char *sql, int expected);
static SPIPlanPtr spi_prepare_keep(const char *sql, int nargs, Oid *argtypes);
static void load_describe(TableLoad *tl, const char *plan);
static char *build_batch_sql(TableLoad *tl, bool from_stage, bool lower_bound);
static bool is_row_error(ErrorData *edata);
static bool attempt(TableLoad *tl, SPIPlanPtr plan, Datum *values,
					MigrateCounts *counts, ErrorData **edata_out);
static void stage_fill(TableLoad *tl, bool lower_bound, Datum *bounds);
static void stage_bisect(TableLoad *tl, int64 lo, int64 hi, MigrateCounts *counts);
static void stage_reject_row(TableLoad *tl, int64 rn, ErrorData *edata,
							 MigrateCounts *counts);
static void add_counts(MigrateCounts *sum, const MigrateCounts *add);
static void prepare_reject_fill(TableLoad *tl);
static int64 reject_high_water(TableLoad *tl);
static void fill_reject_rows(TableLoad *tl, int64 high_water);
static void load_error_context(void *arg);
static int64 key_to_int64(TableLoad *tl, Datum d);
static Datum int64_to_key(TableLoad *tl, int64 v);

/* Name the table and source in every error raised while loading it. */
static void
load_error_context(void *arg)
{
	TableLoad  *tl = (TableLoad *) arg;

	if (tl->target_name)
		errcontext("loading table %s from %s", tl->target_name, tl->source);
}

/* Run a parameterless statement through SPI and check its result code. */
static void
spi_exec(const char *sql, int expected)
{
	int			ret = SPI_execute(sql, false, 0);

	if (ret != expected)
		elog(ERROR, "SPI_execute failed (%s): %s", SPI_result_code_string(ret), sql);
}

/* Prepare a statement that lives until SPI_freeplan. */
static SPIPlanPtr
spi_prepare_keep(const char *sql, int nargs, Oid *argtypes)
{
	SPIPlanPtr	plan = SPI_prepare(sql, nargs, argtypes);

	if (plan == NULL)
		elog(ERROR, "SPI_prepare failed (%s): %s",
			 SPI_result_code_string(SPI_result), sql);
	if (SPI_keepplan(plan) != 0)
		elog(ERROR, "SPI_keepplan failed");
	return plan;
}

static void
add_counts(MigrateCounts *sum, const MigrateCounts *add)
{
	sum->read += add->read;
	sum->written += add->written;
	sum->rejected += add->rejected;
	sum->skipped += add->skipped;
	sum->warned += add->warned;
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
 * Read the table's mapping from the catalog (SPI connected, in a
 * transaction).  Results are allocated in TopMemoryContext-lived tl fields
 * by the caller's context: load.c calls this with CurrentMemoryContext set
 * to the table's context.
 */
static void
load_describe(TableLoad *tl, const char *plan)
{
	MemoryContext tablecxt = CurrentMemoryContext;
	Oid			argtypes[2] = {TEXTOID, OIDOID};
	Datum		args[2];
	Oid			keyargtypes[3] = {TEXTOID, OIDOID, TEXTOID};
	Datum		keyargs[3];
	int			ret;
	uint64		i;
	char	   *key0;
	SPIPlanPtr	probe;
	CachedPlanSource *ps;
	StringInfoData sql;

	args[0] = CStringGetTextDatum(plan);
	args[1] = ObjectIdGetDatum(tl->target);
	keyargs[0] = args[0];
	keyargs[1] = args[1];

	ret = SPI_execute_with_args("SELECT target::text, source, key::text[], filter, mode,"
								"       to_regclass(source) IS NOT NULL"
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
		tl->mode = MemoryContextStrdup(tablecxt, SPI_getvalue(tup, desc, 5));
		tl->count_passes = strcmp(tl->mode, "skip_existing") == 0;
		if (!DatumGetBool(SPI_getbinval(tup, desc, 6, &isnull)))
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_TABLE),
					 errmsg("source relation %s of table %s in migration plan \"%s\" does not exist",
							tl->source, tl->target_name, plan),
					 errhint("Recreate the foreign table (IMPORT FOREIGN SCHEMA) or remap the table with migrate_table().")));
	}

	ret = SPI_execute_with_args("SELECT column_name, expr, type_name"
								"  FROM migrate._mapped_columns($1, $2)",
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
	key0 = linitial(tl->keycols);
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
		if (strcmp(col, key0) == 0)
			tl->key_expr = expr;
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

	/*
	 * min and max of the key are asked together with count(*) except from
	 * postgres_fdw (which ships min and max as two cheap "ORDER BY key LIMIT
	 * 1" queries, where count(*) would scan the whole remote table): see
	 * migrate_plan_ranges.  From postgres_fdw, batches may be read with a
	 * binary COPY (copysrc.c) when every source column has a built-in type,
	 * the key is a plain source column and there is no filter.
	 */
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
								"           AND 's.' || pg_catalog.quote_ident(a.attname) = $3)"
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
		tl->copy_path = migrate_copy_source && !tl->minmax_count && tl->filter == NULL &&
			builtin && tl->copy_key != NULL && tl->copy_coldefs != NULL;
	}

	/* the key's type decides how batches are cut */
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
 * The batch statement.  from_stage: read the stage table by row number
 * instead of the source by key range.  lower_bound: with "key > $1".
 */
static char *
build_batch_sql(TableLoad *tl, bool from_stage, bool lower_bound)
{
	StringInfoData sql;
	ListCell   *lc1,
			   *lc2,
			   *lc3;
	bool		first;
	bool		has_rules = tl->rule_names != NIL;

	initStringInfo(&sql);
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

	/* the mapped row, typed as the target (typmods applied by the INSERT) */
	appendStringInfoString(&sql, " FROM (SELECT ");
	forthree(lc1, tl->cols, lc2, tl->exprs, lc3, tl->types)
	{
		if (lfirst(lc3))
			appendStringInfo(&sql, "(%s)::%s AS %s, ", (char *) lfirst(lc2),
							 (char *) lfirst(lc3), quote_identifier(lfirst(lc1)));
		else
			appendStringInfo(&sql, "%s AS %s, ", (char *) lfirst(lc2),
							 quote_identifier(lfirst(lc1)));
	}
	/*
	 * A row failing a rule is quarantined with its source row.  The stage
	 * is local: take the whole row.  From the source, a whole-row reference
	 * would build a second tuple for every row read (10% of the load time);
	 * only the key rides along, and the few failing rows are fetched again
	 * afterwards by key (fill_reject_rows).
	 */
	if (has_rules && from_stage)
		appendStringInfoString(&sql, "s AS __migrate_src, ");
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
					appendStringInfo(&sql, "%s AS __migrate_k%d, ", (char *) lfirst(e), k);
			}
		}
	}
	sql.len -= 2;
	sql.data[sql.len] = '\0';

	if (from_stage)
		appendStringInfo(&sql, " FROM %s AS s WHERE s.__migrate_rn BETWEEN $1 AND $2",
						 tl->stage);
	else if (tl->copy_path)
		appendStringInfo(&sql, " FROM migrate._copy_source(%s::regclass, %s, %s, $2) AS s(%s)",
						 quote_literal_cstr(tl->source), quote_literal_cstr(tl->copy_key),
						 lower_bound ? "$1" : psprintf("NULL::%s", format_type_be_qualified(tl->key_type)),
						 tl->copy_coldefs);
	else
	{
		appendStringInfo(&sql, " FROM %s AS s WHERE (%s) <= $2", tl->source, tl->key_expr);
		if (lower_bound)
			appendStringInfo(&sql, " AND (%s) > $1", tl->key_expr);
		if (tl->filter)
			appendStringInfo(&sql, " AND (%s)", tl->filter);
	}
	appendStringInfoString(&sql, " OFFSET 0) m");

	/*
	 * Rows that pass go straight to the INSERT; only skip_existing, where
	 * ON CONFLICT hides how many rows were read, pays a call per row.
	 */
	if (!has_rules)
	{
		if (tl->count_passes)
			appendStringInfoString(&sql, " WHERE migrate._pass()");
	}
	else
	{
		appendStringInfoString(&sql, " WHERE CASE WHEN ");
		first = true;
		foreach(lc1, tl->rule_exprs)
		{
			appendStringInfo(&sql, "%s((%s) IS TRUE)", first ? "" : " AND ", (char *) lfirst(lc1));
			first = false;
		}
		appendStringInfo(&sql, " THEN %s ELSE migrate._fail(ARRAY[",
						 tl->count_passes ? "migrate._pass()" : "true");
		first = true;
		foreach(lc1, tl->rule_exprs)
		{
			appendStringInfo(&sql, "%s((%s) IS TRUE)", first ? "" : ", ", (char *) lfirst(lc1));
			first = false;
		}
		appendStringInfoString(&sql, "], ");
		if (list_length(tl->keycols) == 1)
			appendStringInfo(&sql, "(m.%s)::text", quote_identifier(linitial(tl->keycols)));
		else
		{
			appendStringInfoString(&sql, "ROW(");
			first = true;
			foreach(lc1, tl->keycols)
			{
				appendStringInfo(&sql, "%sm.%s", first ? "" : ", ", quote_identifier(lfirst(lc1)));
				first = false;
			}
			appendStringInfoString(&sql, ")::text");
		}
		if (from_stage)
			appendStringInfoString(&sql, ", to_jsonb(m.__migrate_src) - '__migrate_rn') END");
		else
		{
			appendStringInfoString(&sql, ", jsonb_build_object('" MIGRATE_KEY_MARKER "', jsonb_build_array(");
			foreach(lc1, tl->keycols)
				appendStringInfo(&sql, "%sm.__migrate_k%d", foreach_current_index(lc1) ? ", " : "",
								 foreach_current_index(lc1));
			appendStringInfoString(&sql, "))) END");
		}
	}

	if (strcmp(tl->mode, "insert") != 0)
	{
		appendStringInfoString(&sql, " ON CONFLICT (");
		first = true;
		foreach(lc1, tl->keycols)
		{
			appendStringInfo(&sql, "%s%s", first ? "" : ", ", quote_identifier(lfirst(lc1)));
			first = false;
		}
		appendStringInfoString(&sql, ")");
		if (strcmp(tl->mode, "skip_existing") == 0)
			appendStringInfoString(&sql, " DO NOTHING");
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
				appendStringInfo(&sql, "%s%s = EXCLUDED.%s", nset == 0 ? " DO UPDATE SET " : ", ",
								 quote_identifier(lfirst(lc1)), quote_identifier(lfirst(lc1)));
				nset++;
			}
			/* only key columns: a no-op update, so every row counts as written */
			if (nset == 0)
				appendStringInfo(&sql, " DO UPDATE SET %s = EXCLUDED.%s",
								 quote_identifier(linitial(tl->keycols)),
								 quote_identifier(linitial(tl->keycols)));
		}
	}
	return sql.data;
}

/*
 * Errors that belong to a row rather than to the run: the data did not fit
 * (class 22), a constraint refused it (23, 44), or a target trigger raised.
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
		edata->sqlerrcode == ERRCODE_RAISE_EXCEPTION;
}

/*
 * Execute one batch statement in a subtransaction.  On success adds the
 * attempt's counts to *counts and returns true.  On a row error rolls the
 * subtransaction back (its rejects with it), returns false and hands the
 * error to the caller in *edata_out (in the caller's memory context).  Any
 * other error is rethrown.  Needs SPI connected and a transaction.
 */
static bool
attempt(TableLoad *tl, SPIPlanPtr plan, Datum *values,
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
		int			ret = SPI_execute_plan(plan, values, NULL, false, 0);
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
		add_counts(counts, &c);
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
	tl->reject_hwm = spi_prepare_keep("SELECT coalesce(max(reject_id), 0) FROM migrate.reject",
									  0, NULL);
	initStringInfo(&sql);
	appendStringInfo(&sql, "SELECT array_agg(DISTINCT (source_row #>> '{" MIGRATE_KEY_MARKER ",0}')::%s)"
					 " FROM migrate.reject WHERE reject_id > $1 AND run_id = $2 AND target = $3"
					 " AND source_row ? '" MIGRATE_KEY_MARKER "'",
					 format_type_be_qualified(tl->key_type));
	tl->reject_keys = spi_prepare_keep(sql.data, 3, types);

	resetStringInfo(&sql);
	appendStringInfoString(&sql, "UPDATE migrate.reject r SET source_row = f.row"
						   " FROM (SELECT jsonb_build_array(");
	foreach(lc, tl->keycols)
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
	appendStringInfo(&sql, ") AS k, to_jsonb(s) AS row FROM %s AS s WHERE (%s) = ANY ($4)",
					 tl->source, tl->key_expr);
	if (tl->filter)
		appendStringInfo(&sql, " AND (%s)", tl->filter);
	appendStringInfoString(&sql, ") f WHERE r.reject_id > $1 AND r.run_id = $2 AND r.target = $3"
						   " AND r.source_row -> '" MIGRATE_KEY_MARKER "' = f.k");
	types[3] = array_type;
	tl->reject_fill = spi_prepare_keep(sql.data, 4, types);
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
	ret = SPI_execute_plan(tl->reject_fill, args, nulls, false, 0);
	if (ret != SPI_OK_UPDATE)
		elog(ERROR, "storing the source rows of rejected rows failed: %s",
			 SPI_result_code_string(ret));
}

/*
 * Copy the batch's source rows into the stage table, numbered 1..n.
 * Returns through the stage's row count in SPI_processed.
 */
static void
stage_fill(TableLoad *tl, bool lower_bound, Datum *bounds)
{
	StringInfoData sql;
	Oid			argtypes[2] = {tl->key_type, tl->key_type};
	int			ret;

	initStringInfo(&sql);
	if (tl->stage == NULL)
	{
		tl->stage = MemoryContextStrdup(TopMemoryContext,
										psprintf("pg_temp.migrate_stage_%u", tl->target));
		appendStringInfo(&sql,
						 "DROP TABLE IF EXISTS %s; "
						 "CREATE TEMP TABLE migrate_stage_%u AS "
						 "SELECT s.*, 0::bigint AS __migrate_rn FROM %s AS s LIMIT 0",
						 tl->stage, tl->target, tl->source);
		spi_exec(sql.data, SPI_OK_UTILITY);
		resetStringInfo(&sql);
	}
	else
	{
		appendStringInfo(&sql, "TRUNCATE %s", tl->stage);
		spi_exec(sql.data, SPI_OK_UTILITY);
		resetStringInfo(&sql);
	}

	appendStringInfo(&sql, "INSERT INTO %s SELECT s.*, row_number() OVER () FROM %s AS s"
					 " WHERE (%s) <= $2", tl->stage, tl->source, tl->key_expr);
	if (lower_bound)
		appendStringInfo(&sql, " AND (%s) > $1", tl->key_expr);
	if (tl->filter)
		appendStringInfo(&sql, " AND (%s)", tl->filter);
	ret = SPI_execute_with_args(sql.data, 2, argtypes, bounds, NULL, false, 0);
	if (ret != SPI_OK_INSERT)
		elog(ERROR, "filling the stage table failed: %s", SPI_result_code_string(ret));
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
	if (list_length(tl->keycols) > 1)
		appendStringInfoString(&sql, "ROW(");
	foreach(lc, tl->keycols)
	{
		ListCell   *c,
				   *e;

		forboth(c, tl->cols, e, tl->exprs)
		{
			if (strcmp(lfirst(c), lfirst(lc)) == 0)
				appendStringInfo(&sql, "%s(%s)", first ? "" : ", ", (char *) lfirst(e));
		}
		first = false;
	}
	if (list_length(tl->keycols) > 1)
		appendStringInfoString(&sql, ")");
	appendStringInfo(&sql, "::text, to_jsonb(s) - '__migrate_rn' FROM %s AS s"
					 " WHERE s.__migrate_rn = $1", tl->stage);
	ret = SPI_execute_with_args(sql.data, 1, argtypes, args, NULL, false, 0);
	if (ret != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "reading row " INT64_FORMAT " of the stage failed: %s", rn,
			 SPI_result_code_string(ret));
	key = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	row = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull);

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
static void
stage_bisect(TableLoad *tl, int64 lo, int64 hi, MigrateCounts *counts)
{
	Datum		values[2] = {Int64GetDatum(lo), Int64GetDatum(hi)};
	ErrorData  *edata = NULL;
	int64		mid;

	CHECK_FOR_INTERRUPTS();
	if (attempt(tl, tl->stage_batch, values, counts, &edata))
		return;
	if (lo == hi)
	{
		stage_reject_row(tl, lo, edata, counts);
		FreeErrorData(edata);
		return;
	}
	FreeErrorData(edata);
	mid = lo + (hi - lo) / 2;
	stage_bisect(tl, lo, mid, counts);
	stage_bisect(tl, mid + 1, hi, counts);
}

/* A key value from its text form (checkpoints and range bounds are text). */
static Datum
key_from_text(TableLoad *tl, const char *text, MemoryContext cxt)
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

static char *
key_to_text(TableLoad *tl, Datum d)
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

/*
 * Cut a table of the run into key ranges (units of work), up to 2 per
 * worker when the table has more than a batch of keys: an integer key by
 * arithmetic on [min, max] of the source, any other key at its quantiles.
 * One worker gives one range.  Needs SPI and the planning transaction.
 */
void
migrate_plan_ranges(MigrateWork *w, Oid target)
{
	TableLoad  *tl = palloc0(sizeof(TableLoad));
	int			nranges = 1;
	int64		kmin = 0,
				kmax = 0;
	bool		have_keys = false;
	List	   *bounds = NIL;	/* cut points (text): range r is (bound r-1, bound r] */
	int			ret;
	Oid			argtypes[6] = {INT8OID, OIDOID, INT4OID, TEXTOID, TEXTOID, INT8OID};
	Datum		args[6];
	char		nulls[6] = "      ";
	MemoryContext cxt = CurrentMemoryContext;

	tl->target = target;
	load_describe(tl, w->plan);
	MemoryContextSwitchTo(cxt);

	if (tl->int_key && w->parallel > 1)
	{
		StringInfoData sql;

		initStringInfo(&sql);
		/*
		 * count(*) keeps the planner from turning min and max into two
		 * "ORDER BY key LIMIT 1" scans, which mysql_fdw ships without the
		 * LIMIT (MariaDB then sorts the table twice); as one aggregate every
		 * FDW that can pushes it down.
		 */
		appendStringInfo(&sql, "SELECT min(%s)::bigint, max(%s)::bigint%s FROM %s AS s",
						 tl->key_expr, tl->key_expr, tl->minmax_count ? ", count(*)" : "",
						 tl->source);
		if (tl->filter)
			appendStringInfo(&sql, " WHERE (%s)", tl->filter);
		ret = SPI_execute(sql.data, false, 1);
		if (ret != SPI_OK_SELECT || SPI_processed != 1)
			elog(ERROR, "reading the key range of %s failed: %s", tl->source,
				 SPI_result_code_string(ret));
		{
			bool		isnull;
			Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);

			if (!isnull)
			{
				have_keys = true;
				kmin = DatumGetInt64(d);
				kmax = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
			}
		}
		if (have_keys)
		{
			/* the span in keys, as a double: max - min may not fit an int64 */
			double		span = (double) kmax - (double) kmin + 1;
			double		width;

			nranges = (int) Min((double) w->parallel * 2, Max(1.0, span / w->batch_size));
			width = span / nranges;
			for (int r = 1; r < nranges; r++)
				bounds = lappend(bounds, psprintf(INT64_FORMAT, (int64) (kmin - 1 + width * r)));
		}
	}

	/*
	 * Any other key: cut at key quantiles, found by reading the keys alone
	 * in key order, rows / nranges at a time (ORDER BY and LIMIT are pushed
	 * down where the FDW can).  Only the boundaries are kept.
	 */
	if (!tl->int_key && w->parallel > 1)
	{
		StringInfoData sql;
		int64		rows;
		bool		isnull;
		Datum		last = (Datum) 0;
		SPIPlanPtr	next_bound;
		Oid			ktypes[1] = {tl->key_type};

		initStringInfo(&sql);
		appendStringInfo(&sql, "SELECT count(*) FROM %s AS s WHERE (%s) IS NOT NULL",
						 tl->source, tl->key_expr);
		if (tl->filter)
			appendStringInfo(&sql, " AND (%s)", tl->filter);
		ret = SPI_execute(sql.data, false, 1);
		if (ret != SPI_OK_SELECT || SPI_processed != 1)
			elog(ERROR, "counting the rows of %s failed: %s", tl->source,
				 SPI_result_code_string(ret));
		rows = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
		nranges = (int) Min((int64) w->parallel * 2, Max((int64) 1, rows / w->batch_size));
		if (nranges > 1)
		{
			resetStringInfo(&sql);
			appendStringInfo(&sql, "SELECT (SELECT k FROM (SELECT (%s) AS k FROM %s AS s"
							 " WHERE (%s) IS NOT NULL AND ($1 IS NULL OR (%s) > $1)",
							 tl->key_expr, tl->source, tl->key_expr, tl->key_expr);
			if (tl->filter)
				appendStringInfo(&sql, " AND (%s)", tl->filter);
			appendStringInfo(&sql, " ORDER BY 1 LIMIT " INT64_FORMAT ") b" LAST_KEY_OF_SUBQUERY,
							 rows / nranges);
			next_bound = SPI_prepare(sql.data, 1, ktypes);
			if (next_bound == NULL)
				elog(ERROR, "SPI_prepare failed (%s): %s", SPI_result_code_string(SPI_result), sql.data);
			for (int r = 1; r < nranges; r++)
			{
				char		nulls1[1] = {bounds == NIL ? 'n' : ' '};
				Datum		args1[1] = {last};

				ret = SPI_execute_plan(next_bound, args1, nulls1, false, 1);
				if (ret != SPI_OK_SELECT || SPI_processed != 1)
					elog(ERROR, "finding the key ranges of %s failed: %s", tl->source,
						 SPI_result_code_string(ret));
				last = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
				if (isnull)
					break;
				{
					MemoryContext old = MemoryContextSwitchTo(cxt);
					char	   *text = key_to_text(tl, last);

					bounds = lappend(bounds, text);
					last = key_from_text(tl, text, cxt);
					MemoryContextSwitchTo(old);
				}
			}
		}
	}

	nranges = list_length(bounds) + 1;
	args[0] = Int64GetDatum(w->run_id);
	args[1] = ObjectIdGetDatum(target);
	for (int r = 1; r <= nranges; r++)
	{
		args[2] = Int32GetDatum(r);
		nulls[3] = r > 1 ? ' ' : 'n';
		nulls[4] = r < nranges ? ' ' : 'n';
		if (r > 1)
			args[3] = CStringGetTextDatum(list_nth(bounds, r - 2));
		if (r < nranges)
			args[4] = CStringGetTextDatum(list_nth(bounds, r - 1));
		ret = SPI_execute_with_args("INSERT INTO migrate.run_range (run_id, target, range_no, lo, hi)"
									" VALUES ($1, $2, $3, $4, $5)",
									5, argtypes, args, nulls, false, 0);
		if (ret != SPI_OK_INSERT)
			elog(ERROR, "inserting into migrate.run_range failed: %s", SPI_result_code_string(ret));
	}

	/* the planner's estimate of the source, for percent and ETA */
	ret = SPI_execute_with_args("UPDATE migrate.run_table SET estimated_rows ="
								"  (SELECT nullif(reltuples, -1)::bigint FROM pg_catalog.pg_class"
								"    WHERE oid = (SELECT source FROM migrate.table_map m JOIN migrate.run r"
								"                   ON r.plan = m.plan WHERE r.run_id = $1 AND m.target = $2)::regclass)"
								" WHERE run_id = $1 AND target = $2",
								2, argtypes, args, NULL, false, 0);
	if (ret != SPI_OK_UPDATE)
		elog(ERROR, "updating migrate.run_table failed: %s", SPI_result_code_string(ret));
}

/*
 * Load one key range (unit) of a table.  Called by a worker outside any
 * transaction, with the unit claimed; runs one transaction per batch,
 * continuing after the unit's checkpoint, and ends with an independent
 * count of the range.  Returns NULL when the range is done, or the state it
 * stopped in ("cancelled", "interrupted") between two batches.
 */
const char *
migrate_load_range(MigrateWork *w, MigrateUnit *u)
{
	MemoryContext tablecxt = AllocSetContextCreate(TopMemoryContext, "migrate table",
												   ALLOCSET_DEFAULT_SIZES);
	MemoryContext oldcxt;
	TableLoad  *tl;
	bool		done = false;
	const char *stopped = NULL;
	int64		int_lo = 0,
				int_max = 0,
				step;
	Datum		range_lo = (Datum) 0;
	Datum		range_hi = (Datum) 0;	/* non-integer keys: the range's end */
	Datum		last_hi = (Datum) 0;	/* upper bound of the last batch */
	bool		have_last = false;
	ErrorContextCallback errcallback;
	int			ret;
	int64		batch_size = w->batch_size;

	oldcxt = MemoryContextSwitchTo(tablecxt);
	tl = palloc0(sizeof(TableLoad));
	errcallback.callback = load_error_context;
	errcallback.arg = tl;
	errcallback.previous = error_context_stack;
	error_context_stack = &errcallback;
	tl->run_id = w->run_id;
	tl->target = u->target;
	tl->dry_run = w->dry_run;
	tl->batch_size = batch_size;
	step = batch_size;
	MemoryContextSwitchTo(oldcxt);

	/* describe, prepare, find where to start: one transaction */
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	if ((ret = SPI_connect()) != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed: %s", SPI_result_code_string(ret));
	PushActiveSnapshot(GetTransactionSnapshot());
	{
		Oid			argtypes[2];

		oldcxt = MemoryContextSwitchTo(tablecxt);
		load_describe(tl, w->plan);
		Assert(CurrentMemoryContext == tablecxt);
		if (w->dry_run)
			tl->into = psprintf("pg_temp.migrate_dry_%u", u->target);
		else
			tl->into = tl->target_name;
		MemoryContextSwitchTo(oldcxt);

		if (u->lo)
			range_lo = key_from_text(tl, u->lo, tablecxt);
		/* continue after the checkpoint, else after the range's start */
		if (u->last_key)
			last_hi = key_from_text(tl, u->last_key, tablecxt);
		else if (u->lo)
			last_hi = range_lo;
		have_last = u->last_key || u->lo;

		if (w->dry_run)
		{
			/* same columns, defaults, constraints and unique indexes; no FKs */
			spi_exec(psprintf("DROP TABLE IF EXISTS %s; CREATE TEMP TABLE migrate_dry_%u"
							  " (LIKE %s INCLUDING DEFAULTS INCLUDING CONSTRAINTS"
							  " INCLUDING INDEXES INCLUDING GENERATED INCLUDING IDENTITY)",
							  tl->into, u->target, tl->target_name),
					 SPI_OK_UTILITY);
		}

		migrate_route_begin(w->run_id, u->target, tl->rule_names, tl->rule_on_fail, tl->rule_exprs);

		argtypes[0] = argtypes[1] = tl->key_type;
		tl->batch_next = spi_prepare_keep(build_batch_sql(tl, false, true), 2, argtypes);
		tl->batch_first = spi_prepare_keep(build_batch_sql(tl, false, false), 2, argtypes);
		if (tl->rule_names != NIL)
			prepare_reject_fill(tl);
		if (!tl->int_key)
		{
			StringInfoData sql;

			/* where a batch ends: the batch_size-th key, within the range */
			initStringInfo(&sql);
			appendStringInfo(&sql, "SELECT (SELECT k FROM (SELECT (%s) AS k FROM %s AS s WHERE (%s) IS NOT NULL",
							 tl->key_expr, tl->source, tl->key_expr);
			if (u->hi)
				appendStringInfo(&sql, " AND (%s) <= $2", tl->key_expr);
			if (tl->filter)
				appendStringInfo(&sql, " AND (%s)", tl->filter);
			appendStringInfo(&sql, "%%s ORDER BY 1 LIMIT " INT64_FORMAT ") b" LAST_KEY_OF_SUBQUERY,
							 batch_size);
			tl->bound_first = spi_prepare_keep(psprintf(sql.data, ""), 2, argtypes);
			tl->bound_next = spi_prepare_keep(psprintf(sql.data,
													   psprintf(" AND (%s) > $1", tl->key_expr)),
											  2, argtypes);
			if (u->hi)
				range_hi = key_from_text(tl, u->hi, tablecxt);
		}
		else
		{
			/* what is left of the range: min and max, pushed down */
			StringInfoData sql;
			Datum		bargs[2];
			Oid			btypes[2];
			int			nargs = 0;
			bool		isnull;
			Datum		d;

			initStringInfo(&sql);
			/* count(*): see migrate_plan_ranges */
			appendStringInfo(&sql, "SELECT min(%s)::bigint, max(%s)::bigint%s FROM %s AS s WHERE true",
							 tl->key_expr, tl->key_expr, tl->minmax_count ? ", count(*)" : "",
							 tl->source);
			append_bounds(tl, &sql, have_last, last_hi, u->hi != NULL,
						  u->hi ? key_from_text(tl, u->hi, tablecxt) : (Datum) 0,
						  bargs, btypes, &nargs);
			if (tl->filter)
				appendStringInfo(&sql, " AND (%s)", tl->filter);
			ret = SPI_execute_with_args(sql.data, nargs, btypes, bargs, NULL, false, 1);
			if (ret != SPI_OK_SELECT || SPI_processed != 1)
				elog(ERROR, "reading the key range of %s failed: %s", tl->source,
					 SPI_result_code_string(ret));
			d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
			if (isnull)
				done = true;	/* nothing (more) in this range */
			else
			{
				int64		kmin = DatumGetInt64(d);

				int_max = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
													  SPI_tuptable->tupdesc, 2, &isnull));
				if (have_last)
					int_lo = key_to_int64(tl, last_hi);
				else if (pg_sub_s64_overflow(kmin, 1, &int_lo))
					int_lo = PG_INT64_MIN;	/* the first batch has no lower bound */
			}
		}
	}
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();

	while (!done)
	{
		MigrateCounts batch = {0};
		Datum		bounds[2];
		bool		lower_bound;
		ErrorData  *edata = NULL;
		char	   *hi_text;
		SPIPlanPtr	plan;
		int64		reject_hwm = 0;

		CHECK_FOR_INTERRUPTS();
		SetCurrentStatementStartTimestamp();
		StartTransactionCommand();
		if ((ret = SPI_connect()) != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed: %s", SPI_result_code_string(ret));
		PushActiveSnapshot(GetTransactionSnapshot());

		stopped = migrate_work_should_stop(w);
		if (stopped)
		{
			migrate_unit_stopped(w, u, stopped);
			SPI_finish();
			PopActiveSnapshot();
			CommitTransactionCommand();
			break;
		}

		/* where does this batch end? */
		if (tl->int_key)
		{
			int64		hi;

			if (pg_add_s64_overflow(int_lo, step, &hi) || hi > int_max)
				hi = int_max;
			bounds[0] = have_last ? int64_to_key(tl, int_lo) : (Datum) 0;
			bounds[1] = int64_to_key(tl, hi);
			lower_bound = have_last;
			plan = have_last ? tl->batch_next : tl->batch_first;
		}
		else
		{
			bool		isnull;

			lower_bound = have_last;
			bounds[0] = last_hi;
			bounds[1] = range_hi;
			ret = SPI_execute_plan(have_last ? tl->bound_next : tl->bound_first,
								   bounds, NULL, true, 1);
			if (ret != SPI_OK_SELECT || SPI_processed != 1)
				elog(ERROR, "finding the next batch of %s failed: %s", tl->source,
					 SPI_result_code_string(ret));
			bounds[1] = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
			if (isnull)
			{
				/* no key above the last batch: the range is read */
				SPI_finish();
				PopActiveSnapshot();
				CommitTransactionCommand();
				break;
			}
			/* the bound lives in SPI memory: copy it out for the next batch */
			{
				int16		typlen;
				bool		typbyval;

				get_typlenbyval(tl->key_type, &typlen, &typbyval);
				oldcxt = MemoryContextSwitchTo(tablecxt);
				bounds[1] = datumCopy(bounds[1], typbyval, typlen);
				MemoryContextSwitchTo(oldcxt);
			}
			plan = have_last ? tl->batch_next : tl->batch_first;
		}

		pgstat_report_activity(STATE_RUNNING,
							   psprintf("migrate run " INT64_FORMAT ": %s range %d, batch after " INT64_FORMAT " rows",
										w->run_id, tl->target_name, u->range_no, tl->total.read));

		if (tl->reject_fill)
			reject_hwm = reject_high_water(tl);
		if (attempt(tl, plan, bounds, &batch, &edata))
		{
			if (tl->reject_fill && batch.rejected + batch.warned > 0)
				fill_reject_rows(tl, reject_hwm);
		}
		else
		{
			/* a row of this batch was refused: find it, load the rest */
			int64		nstage;

			elog(DEBUG1, "batch of %s failed (%s), isolating bad rows",
				 tl->target_name, edata->message);
			FreeErrorData(edata);
			stage_fill(tl, lower_bound, bounds);
			nstage = SPI_processed;
			if (tl->stage_batch == NULL)
			{
				Oid			rntypes[2] = {INT8OID, INT8OID};

				tl->stage_batch = spi_prepare_keep(build_batch_sql(tl, true, false), 2, rntypes);
			}
			memset(&batch, 0, sizeof(batch));
			if (nstage > 0)
				stage_bisect(tl, 1, nstage, &batch);
		}

		/*
		 * The checkpoint, in the batch's transaction.  It only applies while
		 * this worker owns the unit: a worker that lost it (the run was
		 * resumed elsewhere) fails here and its batch rolls back.
		 */
		{
			Oid			argtypes[11] = {INT8OID, OIDOID, INT8OID, INT8OID, INT8OID,
			INT8OID, INT8OID, TEXTOID, INT4OID, INT4OID, BOOLOID};
			Datum		args[11];

			hi_text = key_to_text(tl, bounds[1]);
			args[0] = Int64GetDatum(w->run_id);
			args[1] = ObjectIdGetDatum(u->target);
			args[2] = Int64GetDatum(batch.read);
			args[3] = Int64GetDatum(batch.written);
			args[4] = Int64GetDatum(batch.rejected);
			args[5] = Int64GetDatum(batch.skipped);
			args[6] = Int64GetDatum(batch.warned);
			args[7] = CStringGetTextDatum(hi_text);
			args[8] = Int32GetDatum(u->range_no);
			args[9] = Int32GetDatum(MyProcPid);
			args[10] = BoolGetDatum(w->dry_run);
			ret = SPI_execute_with_args("WITH u AS (UPDATE migrate.run_range SET rows_read = rows_read + $3,"
										"   rows_written = rows_written + $4, rows_rejected = rows_rejected + $5,"
										"   rows_skipped = rows_skipped + $6, rows_warned = rows_warned + $7,"
										"   batches = batches + 1, last_key = $8"
										"   WHERE run_id = $1 AND target = $2 AND range_no = $9"
										"     AND worker_pid = $10 AND state = 'running' RETURNING 1)"
										" UPDATE migrate.run_table SET rows_read = rows_read + $3,"
										" rows_written = rows_written + $4, rows_rejected = rows_rejected + $5,"
										" rows_skipped = rows_skipped + $6, rows_warned = rows_warned + $7,"
										" batches = batches + 1, last_key = $8"
										" WHERE run_id = $1 AND target = $2 AND EXISTS (SELECT 1 FROM u)",
										10, argtypes, args, NULL, false, 0);
			if (ret != SPI_OK_UPDATE)
				elog(ERROR, "checkpoint of %s failed: %s", tl->target_name,
					 SPI_result_code_string(ret));
			if (SPI_processed != 1)
				ereport(ERROR,
						(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
						 errmsg("range %d of table %s in run " INT64_FORMAT " is no longer owned by this worker",
								u->range_no, tl->target_name, w->run_id),
						 errdetail("The run was resumed or stopped by another worker; this batch is rolled back."),
						 errhint("Only one worker may own a range.")));
			if (w->dry_run)
				spi_exec(psprintf("TRUNCATE %s", tl->into), SPI_OK_UTILITY);
		}

		/* the batch's memory is still held here: sample the peak */
		migrate_worker_sample_memory();
		SPI_finish();
		PopActiveSnapshot();
		CommitTransactionCommand();

		add_counts(&tl->total, &batch);
		if (have_last && !tl->int_key && last_hi != range_lo)
			pfree(DatumGetPointer(last_hi));
		last_hi = bounds[1];
		have_last = true;

		if (tl->int_key)
		{
			int64		got = batch.read;
			int64		span = key_to_int64(tl, bounds[1]) - int_lo;

			if (key_to_int64(tl, bounds[1]) >= int_max)
				done = true;
			int_lo = key_to_int64(tl, bounds[1]);

			/*
			 * Adapt the step to the key density seen: sparse keys get wider
			 * ranges, never more than 8 times wider per batch.
			 */
			if (got == 0)
				step = step > PG_INT64_MAX / 8 ? PG_INT64_MAX : step * 8;
			else
			{
				double		want = (double) span * batch_size / got;

				step = (int64) Max(1.0, Min(want, (double) step * 8));
			}
		}
	}

	/*
	 * Trust no FDW: an independent count of the range (up to its last
	 * committed batch; rows with a NULL key count in range 1, they are
	 * never read) against the rows the range read, over all its sessions.
	 */
	if (!stopped)
	{
		SetCurrentStatementStartTimestamp();
		StartTransactionCommand();
		if ((ret = SPI_connect()) != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed: %s", SPI_result_code_string(ret));
		PushActiveSnapshot(GetTransactionSnapshot());
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
			if (upper)
				upper = MemoryContextStrdup(tablecxt, upper);

			initStringInfo(&sql);
			appendStringInfo(&sql, "SELECT count(*) FROM %s AS s WHERE ((true", tl->source);
			append_bounds(tl, &sql, u->lo != NULL, range_lo, upper != NULL,
						  upper ? key_from_text(tl, upper, tablecxt) : (Datum) 0,
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
			if (source_count != rows_read)
				ereport(ERROR,
						(errcode(ERRCODE_FDW_ERROR),
						 errmsg("source %s returned " INT64_FORMAT " rows for table %s but count(*) says " INT64_FORMAT,
								tl->source, rows_read, tl->target_name, source_count),
						 errdetail("Rows whose key is NULL are never read; the source may also have changed during the run, or the foreign data wrapper dropped rows."),
						 errhint("Check the source, then run migrate_run() again (mode upsert or skip_existing keeps loaded rows).")));

			migrate_unit_done(w, u, source_count);
			if (tl->stage)
				spi_exec(psprintf("DROP TABLE IF EXISTS %s", tl->stage), SPI_OK_UTILITY);
			if (w->dry_run)
				spi_exec(psprintf("DROP TABLE IF EXISTS %s", tl->into), SPI_OK_UTILITY);
		}
		SPI_finish();
		PopActiveSnapshot();
		CommitTransactionCommand();
	}

	error_context_stack = errcallback.previous;
	migrate_route_end();
	if (tl->batch_first)
		SPI_freeplan(tl->batch_first);
	if (tl->batch_next)
		SPI_freeplan(tl->batch_next);
	if (tl->bound_first)
		SPI_freeplan(tl->bound_first);
	if (tl->bound_next)
		SPI_freeplan(tl->bound_next);
	if (tl->stage_batch)
		SPI_freeplan(tl->stage_batch);
	if (tl->reject_fill)
	{
		SPI_freeplan(tl->reject_hwm);
		SPI_freeplan(tl->reject_keys);
		SPI_freeplan(tl->reject_fill);
	}
	if (tl->stage)
		pfree(tl->stage);
	MemoryContextDelete(tablecxt);
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
	load_describe(tl, plan);
	tl->into = tl->target_name;
	sql = build_batch_sql(tl, false, true);
	if ((ret = SPI_finish()) != SPI_OK_FINISH)
		elog(ERROR, "SPI_finish failed: %s", SPI_result_code_string(ret));
	PG_RETURN_TEXT_P(cstring_to_text(sql));
}
