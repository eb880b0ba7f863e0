/*-------------------------------------------------------------------------
 *
 * route.c
 *	  Per-row routing inside the engine's batch statement.
 *
 * The batch statement built by load.c is one INSERT ... SELECT whose WHERE
 * clause is
 *
 *	  CASE WHEN <every rule is true> THEN true
 *		   ELSE migrate._fail(ARRAY[<rule 1 is true>, ...], key, source_row) END
 *
 * so the set-based load keeps its speed and the rare failing row costs a
 * function call.  The target's predicted constraints (predict.c) join the
 * rules in that CASE: a 4th argument, ARRAY[n, the row's values...], says
 * that constraint n refuses the row; _fail() then writes the one reject the
 * target would have caused, with its SQLSTATE, message and detail
 * (route_reject_predicted; migrate_route_set_predictions gives the
 * constraints' texts per table) and counts it in rejected_setwise.  In mode skip_existing, where ON CONFLICT DO NOTHING hides
 * how many rows were read, "true" is migrate._pass(), which counts the row.
 * migrate._loaded() sums the verify's hash of each row written (load.c:
 * run_table.loaded_checksum).  _fail() writes one migrate.reject
 * row per failing rule (loaded = true for warn rules), raises for abort
 * rules, and tells the INSERT whether to keep the row.  Both run in the
 * statement's (sub)transaction, so rejects vanish with a rolled-back attempt
 * and commit with the batch: rows, rejects and checkpoint commit together.
 *
 * State lives in this process for the duration of one table: begin/end are
 * called by load.c around it; the counters are reset before every attempt.
 *
 * Also here: which columns of a table are sensitive and the masking of
 * their values in rejects and error texts (see the section at the end).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

#include "migrate.h"

PG_FUNCTION_INFO_V1(migrate_route_pass);
PG_FUNCTION_INFO_V1(migrate_route_fail);
PG_FUNCTION_INFO_V1(migrate_route_loaded);

/* one rule of the table being loaded */
typedef struct RouteRule
{
	char	   *name;
	char	   *on_fail;		/* reject, warn or abort */
	char	   *expr;
} RouteRule;

static struct
{
	bool		active;			/* inside migrate_route_begin/end */
	int64		run_id;
	Oid			target;
	char	   *target_name;	/* qualified, for messages */
	int			nrules;
	RouteRule  *rules;
	MemoryContext cxt;			/* holds rules; deleted by end */
	MigrateCounts counts;		/* of the current attempt */
	bool		abort_raised;	/* an abort rule failed: not a row error */
	int			npreds;			/* the target's predicted constraints */
	MigratePrediction *preds;
	int			pred_ncols;		/* row values that come with a refused row */
	List	   *pred_sensitive; /* their positions that are sensitive */
	SPIPlanPtr	insert_reject;	/* kept for the life of the process */
} route;

/*
 * Set the table whose rows the routing functions will see.  Lists are of C
 * strings, one entry per rule in the order load.c builds the ARRAY[...].
 */
void
migrate_route_begin(int64 run_id, Oid target, List *rule_names,
					List *rule_on_fail, List *rule_exprs)
{
	int			i = 0;
	ListCell   *lc1,
			   *lc2,
			   *lc3;

	migrate_route_end();
	route.cxt = AllocSetContextCreate(TopMemoryContext, "migrate route",
									  ALLOCSET_SMALL_SIZES);
	route.run_id = run_id;
	route.target = target;
	route.target_name = MemoryContextStrdup(route.cxt,
											quote_qualified_identifier(get_namespace_name(get_rel_namespace(target)),
																	   get_rel_name(target)));
	route.nrules = list_length(rule_names);
	route.rules = MemoryContextAllocZero(route.cxt,
										 sizeof(RouteRule) * Max(route.nrules, 1));
	forthree(lc1, rule_names, lc2, rule_on_fail, lc3, rule_exprs)
	{
		route.rules[i].name = MemoryContextStrdup(route.cxt, lfirst(lc1));
		route.rules[i].on_fail = MemoryContextStrdup(route.cxt, lfirst(lc2));
		route.rules[i].expr = MemoryContextStrdup(route.cxt, lfirst(lc3));
		i++;
	}
	route.active = true;
	migrate_route_reset_counts();
}

void
migrate_route_end(void)
{
	if (route.cxt)
		MemoryContextDelete(route.cxt);
	route.cxt = NULL;
	route.rules = NULL;
	route.nrules = 0;
	route.npreds = 0;
	route.preds = NULL;
	route.pred_sensitive = NIL;
	route.active = false;
}

/*
 * The table's predicted constraints (predict.c), after migrate_route_begin:
 * the entries a migrate._fail() 4th argument refers to by number.
 */
void
migrate_route_set_predictions(List *preds, int ncols, List *sensitive_pos)
{
	MemoryContext old = MemoryContextSwitchTo(route.cxt);
	ListCell   *lc;

	route.npreds = list_length(preds);
	route.preds = palloc0(sizeof(MigratePrediction) * Max(route.npreds, 1));
	foreach(lc, preds)
	{
		MigratePrediction *src = lfirst(lc);
		MigratePrediction *dst = &route.preds[foreach_current_index(lc)];

		memcpy(dst->sqlstate, src->sqlstate, sizeof(dst->sqlstate));
		dst->message = pstrdup(src->message);
		dst->kind = src->kind;
		dst->key_names = src->key_names ? pstrdup(src->key_names) : NULL;
		dst->key_pos = list_copy(src->key_pos);
		dst->ref_name = src->ref_name ? pstrdup(src->ref_name) : NULL;
	}
	route.pred_ncols = ncols;
	route.pred_sensitive = list_copy(sensitive_pos);
	MemoryContextSwitchTo(old);
}

/*
 * The reject of a row that prediction n (1-based) refuses: its message
 * and the detail the target gives (ExecBuildSlotValueDescription: each
 * value clipped to 64 bytes; ri_ReportViolation; BuildIndexValueDescription),
 * sensitive values masked as in a stage reject.  vals: the row's values.
 */
static void
route_reject_predicted(int n, char *source_key, Datum source_row, bool source_row_null,
					   Datum *vals, bool *vnulls, int nvals)
{
	MigratePrediction *p = &route.preds[n - 1];
	StringInfoData detail;
	List	   *masked = NIL;
	ListCell   *lc;
	char	   *message = p->message;

	if (nvals != route.pred_ncols)
		elog(ERROR, "migrate._fail() got %d row values for %d columns", nvals, route.pred_ncols);
	initStringInfo(&detail);
	if (p->kind == MIGRATE_PRED_ROW)
	{
		appendStringInfoString(&detail, "Failing row contains (");
		for (int i = 0; i < nvals; i++)
		{
			const char *v = vnulls[i] ? "null" : TextDatumGetCString(vals[i]);
			int			len = strlen(v);

			if (i > 0)
				appendStringInfoString(&detail, ", ");
			if (len <= 64)
				appendBinaryStringInfo(&detail, v, len);
			else
			{
				appendBinaryStringInfo(&detail, v, pg_mbcliplen(v, len, 64));
				appendStringInfoString(&detail, "...");
			}
		}
		appendStringInfoString(&detail, ").");
	}
	else
	{
		appendStringInfo(&detail, "Key (%s)=(", p->key_names);
		foreach(lc, p->key_pos)
		{
			int			i = lfirst_int(lc);

			appendStringInfo(&detail, "%s%s", foreach_current_index(lc) ? ", " : "",
							 vnulls[i] ? "null" : TextDatumGetCString(vals[i]));
		}
		if (p->kind == MIGRATE_PRED_KEY_EXISTS)
			appendStringInfoString(&detail, ") already exists.");
		else
			appendStringInfo(&detail, ") is not present in table \"%s\".", p->ref_name);
	}
	foreach(lc, route.pred_sensitive)
	{
		int			i = lfirst_int(lc);

		if (!vnulls[i])
			masked = lappend(masked, TextDatumGetCString(vals[i]));
	}
	if (masked != NIL)
		message = migrate_mask_values(message, masked);
	migrate_route_insert_reject(source_key, source_row, source_row_null, p->sqlstate, message,
								masked != NIL ? migrate_mask_values(detail.data, masked) : detail.data,
								false);
}

void
migrate_route_reset_counts(void)
{
	memset(&route.counts, 0, sizeof(route.counts));
	route.abort_raised = false;
}

void
migrate_route_get_counts(MigrateCounts *counts)
{
	*counts = route.counts;
}

bool
migrate_route_abort_raised(void)
{
	return route.abort_raised;
}

/*
 * Write one migrate.reject row in the current (sub)transaction.  The caller
 * must be connected to SPI or inside an executor: we connect ourselves.
 */
void
migrate_route_insert_reject(const char *source_key, Datum source_row,
							bool source_row_null, const char *reason,
							const char *message, const char *detail,
							bool loaded)
{
	Oid			argtypes[8] = {INT8OID, OIDOID, TEXTOID, JSONBOID, TEXTOID,
	TEXTOID, TEXTOID, BOOLOID};
	Datum		values[8];
	char		nulls[8] = "        ";
	int			ret;

	if ((ret = SPI_connect()) != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed: %s", SPI_result_code_string(ret));

	if (route.insert_reject == NULL)
	{
		SPIPlanPtr	plan;

		plan = SPI_prepare("INSERT INTO migrate.reject "
						   "(run_id, target, source_key, source_row, reason, message, detail, loaded) "
						   "VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
						   8, argtypes);
		if (plan == NULL)
			elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
		if (SPI_keepplan(plan) != 0)
			elog(ERROR, "SPI_keepplan failed");
		route.insert_reject = plan;
	}

	values[0] = Int64GetDatum(route.run_id);
	values[1] = ObjectIdGetDatum(route.target);
	values[2] = source_key ? CStringGetTextDatum(source_key) : (Datum) 0;
	nulls[2] = source_key ? ' ' : 'n';
	values[3] = source_row;
	nulls[3] = source_row_null ? 'n' : ' ';
	values[4] = CStringGetTextDatum(reason);
	values[5] = message ? CStringGetTextDatum(message) : (Datum) 0;
	nulls[5] = message ? ' ' : 'n';
	values[6] = detail ? CStringGetTextDatum(detail) : (Datum) 0;
	nulls[6] = detail ? ' ' : 'n';
	values[7] = BoolGetDatum(loaded);

	ret = SPI_execute_plan(route.insert_reject, values, nulls, false, 0);
	if (ret != SPI_OK_INSERT)
		elog(ERROR, "inserting into migrate.reject failed: %s",
			 SPI_result_code_string(ret));

	if ((ret = SPI_finish()) != SPI_OK_FINISH)
		elog(ERROR, "SPI_finish failed: %s", SPI_result_code_string(ret));
}

/*
 * Write n migrate.reject rows of one reason, not loaded, in one statement
 * (a file's lines that do not parse, src/filesrc.c), in the current
 * (sub)transaction.  keys, rows, messages, details: text, jsonb, text,
 * text datums.
 */
void
migrate_route_insert_rejects(int n, Datum *keys, Datum *rows, Datum *messages, Datum *details,
							 const char *reason)
{
	static SPIPlanPtr plan = NULL;
	Oid			argtypes[7] = {INT8OID, OIDOID, TEXTARRAYOID, JSONBARRAYOID, TEXTOID, TEXTARRAYOID, TEXTARRAYOID};
	Datum		values[7];
	int			ret;

	if (n <= 0)
		return;
	if ((ret = SPI_connect()) != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed: %s", SPI_result_code_string(ret));
	if (plan == NULL)
		plan = migrate_spi_prepare_keep("INSERT INTO migrate.reject"
										" (run_id, target, source_key, source_row, reason, message, detail, loaded)"
										" SELECT $1, $2, u.k, u.r, $5, u.m, u.d, false"
										"   FROM ROWS FROM (pg_catalog.unnest($3), pg_catalog.unnest($4), pg_catalog.unnest($6),"
										"                   pg_catalog.unnest($7)) AS u(k, r, m, d)",
										7, argtypes);
	values[0] = Int64GetDatum(route.run_id);
	values[1] = ObjectIdGetDatum(route.target);
	values[2] = PointerGetDatum(construct_array(keys, n, TEXTOID, -1, false, TYPALIGN_INT));
	values[3] = PointerGetDatum(construct_array(rows, n, JSONBOID, -1, false, TYPALIGN_INT));
	values[4] = CStringGetTextDatum(reason);
	values[5] = PointerGetDatum(construct_array(messages, n, TEXTOID, -1, false, TYPALIGN_INT));
	values[6] = PointerGetDatum(construct_array(details, n, TEXTOID, -1, false, TYPALIGN_INT));
	ret = SPI_execute_plan(plan, values, NULL, false, 0);
	if (ret != SPI_OK_INSERT || SPI_processed != (uint64) n)
		elog(ERROR, "inserting into migrate.reject failed: %s", SPI_result_code_string(ret));
	route.counts.read += n;
	route.counts.rejected += n;
	if ((ret = SPI_finish()) != SPI_OK_FINISH)
		elog(ERROR, "SPI_finish failed: %s", SPI_result_code_string(ret));
}

static void
route_check_active(const char *fname)
{
	if (!route.active)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("%s can only be called by the migrate engine", fname)));
}

/* migrate._pass() returns boolean: count a row that passed every rule */
Datum
migrate_route_pass(PG_FUNCTION_ARGS)
{
	route_check_active("migrate._pass()");
	route.counts.read++;
	PG_RETURN_BOOL(true);
}

/*
 * migrate._loaded(hash bigint) returns boolean: add a written row's hash
 * (the verify's, over the mapped row) to the attempt's loaded_sum.  Last
 * in the WHERE clause of a table that was empty when the run started
 * (load.c); the planner may order the quals otherwise, which is harmless:
 * the sum is trusted only for tables without rejects or skipped rows.
 */
Datum
migrate_route_loaded(PG_FUNCTION_ARGS)
{
	route_check_active("migrate._loaded()");
	if (PG_ARGISNULL(0))
		elog(ERROR, "migrate._loaded(): the row hash is NULL");
	route.counts.loaded_sum += PG_GETARG_INT64(0);
	PG_RETURN_BOOL(true);
}

/* the same for a row the multi-insert receiver wrote and hashed (rowhash.c) */
void
migrate_route_add_loaded(int64 hash)
{
	route.counts.loaded_sum += hash;
}

/*
 * migrate._fail(ok boolean[], source_key text, source_row jsonb
 *				 [, predicted text[]]) returns boolean
 *
 * ok[i] says whether rule i held for this row.  Returns true (keep the row)
 * when only warn rules failed.  predicted (NULL: none) is ARRAY[n, the
 * row's values...] when the target's constraint n (predict.c) refuses the
 * row that the rules let through: then only that reject is written, as
 * the bisection would (a warn finding of a row that does not load is
 * rolled back with it).
 */
Datum
migrate_route_fail(PG_FUNCTION_ARGS)
{
	ArrayType  *ok_array;
	Datum	   *ok;
	bool	   *ok_nulls;
	int			nok;
	char	   *source_key = NULL;
	Datum		source_row = (Datum) 0;
	bool		source_row_null = PG_ARGISNULL(2);
	bool		rejected = false;
	bool		warned = false;
	int			i;
	int			predicted = 0;
	Datum	   *pvals = NULL;
	bool	   *pnulls = NULL;
	int			npvals = 0;

	route_check_active("migrate._fail()");
	if (PG_ARGISNULL(0))
		elog(ERROR, "migrate._fail() needs the rule outcomes");
	ok_array = PG_GETARG_ARRAYTYPE_P(0);
	deconstruct_array(ok_array, BOOLOID, 1, true, TYPALIGN_CHAR,
					  &ok, &ok_nulls, &nok);
	if (nok != route.nrules)
		elog(ERROR, "migrate._fail() got %d rule outcomes for %d rules",
			 nok, route.nrules);
	if (!PG_ARGISNULL(1))
		source_key = text_to_cstring(PG_GETARG_TEXT_PP(1));
	if (!source_row_null)
		source_row = PG_GETARG_DATUM(2);
	if (PG_NARGS() > 3 && !PG_ARGISNULL(3))
	{
		deconstruct_array(PG_GETARG_ARRAYTYPE_P(3), TEXTOID, -1, false, TYPALIGN_INT,
						  &pvals, &pnulls, &npvals);
		if (npvals < 1 || pnulls[0])
			elog(ERROR, "migrate._fail() needs the number of the refusing constraint");
		predicted = pg_strtoint32(TextDatumGetCString(pvals[0]));
		if (predicted < 1 || predicted > route.npreds)
			elog(ERROR, "migrate._fail() got constraint %d of %d", predicted, route.npreds);
	}

	/* abort rules first: nothing of this batch may load */
	for (i = 0; i < nok; i++)
	{
		if (!ok_nulls[i] && DatumGetBool(ok[i]))
			continue;
		if (strcmp(route.rules[i].on_fail, "abort") == 0)
		{
			route.abort_raised = true;
			ereport(ERROR,
					(errcode(ERRCODE_CHECK_VIOLATION),
					 errmsg("rule \"%s\" of table %s failed for key %s and aborts the run",
							route.rules[i].name, route.target_name,
							source_key ? source_key : "NULL"),
					 errdetail("Rule: %s", route.rules[i].expr),
					 errhint("Fix the source row or change the rule's on_fail to reject or warn.")));
		}
	}

	/* does a reject rule refuse the row? then no warn finding says "loaded" */
	for (i = 0; i < nok; i++)
	{
		if ((ok_nulls[i] || !DatumGetBool(ok[i])) &&
			strcmp(route.rules[i].on_fail, "reject") == 0)
			rejected = true;
	}

	/* the target would refuse it: one reject, as the bisection finds it */
	if (!rejected && predicted > 0)
	{
		route_reject_predicted(predicted, source_key, source_row, source_row_null,
							   pvals + 1, pnulls + 1, npvals - 1);
		route.counts.read++;
		route.counts.rejected++;
		route.counts.rejected_setwise++;
		PG_RETURN_BOOL(false);
	}

	for (i = 0; i < nok; i++)
	{
		if (!ok_nulls[i] && DatumGetBool(ok[i]))
			continue;
		if (strcmp(route.rules[i].on_fail, "warn") == 0)
			warned = true;
		migrate_route_insert_reject(source_key, source_row, source_row_null,
									route.rules[i].name,
									psprintf("rule \"%s\" failed", route.rules[i].name),
									psprintf("Rule: %s", route.rules[i].expr),
									!rejected);
	}

	route.counts.read++;
	if (rejected)
	{
		route.counts.rejected++;
		PG_RETURN_BOOL(false);
	}
	if (warned)
		route.counts.warned++;	/* loaded, with a finding */
	PG_RETURN_BOOL(true);
}

/* ---------------------------------------------------------------------
 * Sensitive columns (migrate.sensitive_column): their values never show
 * in a reject or an error text.  load.c builds the batch statement's
 * source_key and source_row already masked (the marker of a rule reject
 * is masked once its row is fetched), stage rejects mask message and
 * detail with the row's values (migrate_mask_values), defer.c's orphan
 * statement masks the target row.
 * ---------------------------------------------------------------------
 */

/*
 * Fill tl's sensitive source columns (those the source has) and their
 * mask {"col": "***", ...}; tl->sensitive_cols is filled by the
 * description of the columns.  Needs SPI; allocates in the caller's
 * context.
 */
void
migrate_route_describe_sensitive(MigrateTableLoad *tl, const char *plan)
{
	MemoryContext cxt = CurrentMemoryContext;
	Oid			argtypes[2] = {TEXTOID, OIDOID};
	Datum		args[2];
	StringInfoData mask;
	int			ret;

	args[0] = CStringGetTextDatum(plan);
	args[1] = ObjectIdGetDatum(tl->target);
	ret = SPI_execute_with_args("SELECT sc.source_column::text FROM migrate.sensitive_column sc"
								"  JOIN migrate.table_map m ON m.plan = sc.plan AND m.target = sc.target"
								"  JOIN pg_catalog.pg_attribute a ON a.attrelid = pg_catalog.to_regclass(m.source)"
								"   AND a.attname = sc.source_column AND a.attnum > 0 AND NOT a.attisdropped"
								" WHERE sc.plan = $1 AND sc.target = $2 ORDER BY 1",
								2, argtypes, args, NULL, true, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "reading migrate.sensitive_column failed: %s", SPI_result_code_string(ret));
	MemoryContextSwitchTo(cxt);
	tl->sensitive_src = NIL;
	tl->mask_json = NULL;
	if (SPI_processed == 0)
		return;
	initStringInfo(&mask);
	appendStringInfoChar(&mask, '{');
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		char	   *col = pstrdup(SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1));

		tl->sensitive_src = lappend(tl->sensitive_src, col);
		if (i > 0)
			appendStringInfoString(&mask, ", ");
		escape_json(&mask, col);
		appendStringInfoString(&mask, ": \"***\"");
	}
	appendStringInfoChar(&mask, '}');
	tl->mask_json = mask.data;
}

/*
 * The values of stage row rn that its error texts must not show: its
 * sensitive source columns (a cast error quotes those), and the mapped
 * values of its sensitive target columns (a unique or NOT NULL violation
 * quotes those), each computed on its own in a subtransaction, as one may
 * be the very cast that failed.  source_values: the text[] of the
 * former (the stage_reject_row query).  Needs SPI and a transaction.  C
 * strings, NULLs left out.
 */
List *
migrate_route_sensitive_values(MigrateTableLoad *tl, int64 rn, Datum source_values)
{
	List	   *volatile values = NIL;
	ListCell   *lc1,
			   *lc2,
			   *lc3;
	Oid			argtypes[1] = {INT8OID};
	Datum		args[1] = {Int64GetDatum(rn)};
	MemoryContext cxt = CurrentMemoryContext;
	Datum	   *elems;
	bool	   *nulls;
	int			n;

	deconstruct_array(DatumGetArrayTypePCopy(source_values), TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
	for (int i = 0; i < n; i++)
	{
		if (!nulls[i])
			values = lappend(values, TextDatumGetCString(elems[i]));
	}

	forthree(lc1, tl->cols, lc2, tl->exprs, lc3, tl->types)
	{
		ResourceOwner owner = CurrentResourceOwner;

		if (!list_member(tl->sensitive_cols, lfirst(lc1)))
			continue;
		BeginInternalSubTransaction(NULL);
		MemoryContextSwitchTo(cxt);
		PG_TRY();
		{
			char	   *sql = lfirst(lc3) ?
				psprintf("SELECT ((%s)::%s)::text FROM %s AS s WHERE s.__migrate_rn = $1",
						 (char *) lfirst(lc2), (char *) lfirst(lc3), tl->stage) :
				psprintf("SELECT (%s)::text FROM %s AS s WHERE s.__migrate_rn = $1",
						 (char *) lfirst(lc2), tl->stage);
			int			ret = SPI_execute_with_args(sql, 1, argtypes, args, NULL, true, 1);
			char	   *v;

			if (ret != SPI_OK_SELECT || SPI_processed != 1)
				elog(ERROR, "reading row " INT64_FORMAT " of the stage failed: %s", rn,
					 SPI_result_code_string(ret));
			v = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
			MemoryContextSwitchTo(cxt);
			if (v)
				values = lappend(values, pstrdup(v));
			ReleaseCurrentSubTransaction();
			MemoryContextSwitchTo(cxt);
			CurrentResourceOwner = owner;
		}
		PG_CATCH();
		{
			/* the mapping fails for this row: the source values cover it */
			FreeErrorData(migrate_abort_subxact(cxt, owner));
		}
		PG_END_TRY();
	}
	return values;
}

/* a byte that continues a word: a value next to one is part of a longer token */
static bool
word_byte(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		c == '_' || (unsigned char) c >= 0x80;
}

static int
longer_first(const ListCell *a, const ListCell *b)
{
	size_t		la = strlen(lfirst(a));
	size_t		lb = strlen(lfirst(b));

	return la > lb ? -1 : (la < lb ? 1 : 0);
}

/*
 * text (NULL: NULL) with every occurrence of each of values (C strings,
 * NULLs skipped) replaced by ***, longest value first.  A value shorter
 * than 4 bytes is replaced only where it stands alone (no letter, digit or
 * underscore next to it), so that a value "a" or "1" does not garble
 * every word of the message while it is still masked wherever a message
 * quotes it ("(1)", "\"a\"", ", 1,").  Returns a new string.
 */
char *
migrate_mask_values(const char *text, List *values)
{
	List	   *sorted;
	ListCell   *lc;
	char	   *cur;

	if (text == NULL)
		return NULL;
	cur = pstrdup(text);
	sorted = NIL;
	foreach(lc, values)
	{
		if (lfirst(lc) != NULL && ((char *) lfirst(lc))[0] != '\0')
			sorted = lappend(sorted, lfirst(lc));
	}
	list_sort(sorted, longer_first);
	foreach(lc, sorted)
	{
		const char *v = lfirst(lc);
		size_t		vlen = strlen(v);
		bool		alone = vlen < 4;
		StringInfoData out;
		const char *p = cur;
		const char *hit;

		initStringInfo(&out);
		while ((hit = strstr(p, v)) != NULL)
		{
			bool		replace = !alone ||
				((hit == cur || !word_byte(hit[-1])) && !word_byte(hit[vlen]));

			appendBinaryStringInfo(&out, p, hit - p);
			appendStringInfoString(&out, replace ? "***" : v);
			p = hit + vlen;
		}
		appendStringInfoString(&out, p);
		pfree(cur);
		cur = out.data;
	}
	list_free(sorted);
	return cur;
}
