/*-------------------------------------------------------------------------
 *
 * predict.c
 *	  Set-wise quarantine: the target's constraints predicted in the batch
 *	  statement, so that a row the target would refuse is routed to
 *	  migrate.reject by migrate._fail() (route.c) in the same pass as the
 *	  rules, instead of failing the batch and being found by bisection.
 *
 * At range start (migrate_predict_describe) the target's constraints are
 * read from pg_catalog (after deferral has dropped what it drops) and
 * turned into predictions over the mapped row m, in PostgreSQL's own order
 * of checks for an inserted row:
 *
 *	  NOT NULL (by attnum), CHECK (by name), unique indexes (by OID),
 *	  foreign keys (by the name of their RI trigger).
 *
 * A row is refused by the FIRST prediction that fails, with the SQLSTATE,
 * message and detail the target would have given.  Exactness argument:
 * the bisection (the oracle) ends each bad row alone in a statement run
 * after the good rows before it (sequential insertion in stage order);
 * each prediction refuses a row only when that single-row INSERT would
 * fail with that very error, else it lets the row through (the target
 * then decides; a refusal fails the statement and bisection takes over).
 * Hence predictions cover only a PREFIX of the order above: the first
 * constraint that cannot be predicted exactly stops all later ones, as
 * the unpredicted one could fail first.  Not predicted at all: targets with
 * a user INSERT row trigger (it may change any column), rules, row level
 * security, generated columns, partitions, dry runs; a mapped column whose
 * typmod coercion (done by the INSERT, after the WHERE) is not one of the
 * known ones.  Typmod coercions run before any constraint: predictions see
 * the stored value (numeric rounding, char padding) and refuse nothing
 * when a length or precision would not fit (the INSERT raises that).
 *
 * Two tiers: NOT NULL and CHECK cost an expression per row and are always
 * on.  Unique keys (mode insert: an index probe of the target per row,
 * plus in-batch duplicates) and foreign keys (a probe of the referenced
 * table, which must not be loaded by this run or already succeeded) are
 * "probes", switched on for a range after its first batch the target
 * refused (load.c).  In-batch duplicates need the batch's arrival order:
 * a row may be refused for a duplicate, an orphan or a target duplicate
 * only if no earlier row of the batch that passed the per-row checks has
 * the same key on any unique index (the oracle would then report that
 * index first), except for the one index W (on the plan key, else the
 * primary key, and the first unique index by OID) whose duplicates are
 * refused when the group's first row is certain to load.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "nodes/pg_list.h"
#include "optimizer/optimizer.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/ruleutils.h"

#include "migrate.h"

#define CHK_ALIAS "__migrate_chk."

/* one column of the target, as the INSERT would store it */
typedef struct PredCol
{
	char	   *name;
	char	   *value;			/* SQL over m: the stored value */
	bool		mapped;
	bool		cast;			/* value is a cast of m's, which may raise */
} PredCol;

/* the predictions of a table (tl->predict) */
struct MigratePredictState
{
	int			ncols;
	PredCol    *cols;
	char	   *guard;			/* NULL or SQL: every typmod coercion fits */
	bool		checks_cast;	/* a CHECK reads a cast value: the guard first */
	List	   *fail;			/* per prediction: SQL, true when it refuses */
	List	   *null_tests;		/* the predictions that are "v IS NULL" */
	List	   *null_values;	/* and their v */
	int			ncheap;			/* NOT NULL and CHECK: the first ncheap */
	int			nuniq;			/* then nuniq unique indexes, then the FKs */
	List	   *uniq_part;		/* per unique index: "v1, v2" */
	List	   *uniq_notnull;	/* per unique index: its values are all non-null */
	int			w;				/* 0-based unique index refused in-batch, or -1 */
	char	   *vals;			/* ARRAY[...] of the row's values as text */
};

typedef struct MigratePredictState PredState;

static int
col_pos(PredState *ps, const char *name)
{
	for (int i = 0; i < ps->ncols; i++)
		if (strcmp(ps->cols[i].name, name) == 0)
			return i;
	return -1;
}

static MigratePrediction *
new_prediction(const char *sqlstate, char *message, int kind)
{
	MigratePrediction *p = palloc0(sizeof(MigratePrediction));

	strlcpy(p->sqlstate, sqlstate, sizeof(p->sqlstate));
	p->message = message;
	p->kind = kind;
	return p;
}

static void
and_append(StringInfo buf, const char *cond)
{
	appendStringInfo(buf, "%s%s", buf->len ? " AND " : "", cond);
}

/* a text[] literal's elements (SPI value of a text[] column) */
static List *
text_array(HeapTuple tup, TupleDesc desc, int col)
{
	bool		isnull;
	Datum		d = SPI_getbinval(tup, desc, col, &isnull);
	Datum	   *elems;
	int			n;
	List	   *out = NIL;

	if (isnull)
		return NIL;
	deconstruct_array(DatumGetArrayTypeP(d), TEXTOID, -1, false, TYPALIGN_INT, &elems, NULL, &n);
	for (int i = 0; i < n; i++)
		out = lappend(out, TextDatumGetCString(elems[i]));
	return out;
}

/*
 * The target's columns and how the INSERT stores each: mapped ones from
 * m (with their typmod applied where it changes the value, and a guard
 * that it fits), unmapped ones by their default.  Adds the NOT NULL
 * predictions.  false: nothing can be predicted for this table.
 */
static bool
read_columns(MigrateTableLoad *tl, PredState *ps, List **preds)
{
	Oid			argtypes[1] = {OIDOID};
	Datum		args[1] = {ObjectIdGetDatum(tl->target)};
	MemoryContext cxt = CurrentMemoryContext;
	StringInfoData guard;
	StringInfoData vals;
	int			ret;
	char	   *relname = get_rel_name(tl->target);

	ret = SPI_execute_with_args("SELECT a.attname::text, a.atttypid, a.atttypmod, a.attnotnull,"
								"  pg_catalog.pg_get_expr(d.adbin, d.adrelid),"
								"  pg_catalog.format_type(a.atttypid, a.atttypmod),"
								"  CASE WHEN a.attidentity <> '' THEN pg_catalog.pg_get_serial_sequence(a.attrelid::pg_catalog.regclass::pg_catalog.text, a.attname) END,"
								"  a.attidentity <> '', a.attgenerated <> ''"
								" FROM pg_catalog.pg_attribute a"
								" LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum"
								" WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
								1, argtypes, args, NULL, true, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "reading the columns of %s failed: %s", tl->target_name, SPI_result_code_string(ret));
	MemoryContextSwitchTo(cxt);
	ps->ncols = SPI_processed;
	ps->cols = palloc0(sizeof(PredCol) * Max(ps->ncols, 1));
	initStringInfo(&guard);
	initStringInfo(&vals);
	for (int i = 0; i < ps->ncols; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		char	   *name = pstrdup(SPI_getvalue(tup, desc, 1));
		Oid			typid = DatumGetObjectId(SPI_getbinval(tup, desc, 2, &isnull));
		int32		typmod = DatumGetInt32(SPI_getbinval(tup, desc, 3, &isnull));
		bool		notnull = DatumGetBool(SPI_getbinval(tup, desc, 4, &isnull));
		char	   *defexpr = SPI_getvalue(tup, desc, 5);
		char	   *fmt = SPI_getvalue(tup, desc, 6);
		char	   *seq = SPI_getvalue(tup, desc, 7);
		bool		identity = DatumGetBool(SPI_getbinval(tup, desc, 8, &isnull));
		bool		generated = DatumGetBool(SPI_getbinval(tup, desc, 9, &isnull));
		ListCell   *c,
				   *t;
		char	   *base = psprintf("m.%s", quote_identifier(name));
		char	   *value = NULL;
		bool		mapped = false;
		bool		retype = false;

		if (generated)
			return false;		/* its value is computed by the INSERT */
		forboth(c, tl->cols, t, tl->types)
		{
			if (strcmp(lfirst(c), name) == 0)
			{
				mapped = true;
				retype = lfirst(t) != NULL;
			}
		}
		ps->cols[i].name = name;
		ps->cols[i].mapped = mapped;
		if (mapped)
		{
			if (!retype || (typmod < 0 && typid != BPCHAROID && typid != BITOID))
				value = base;
			else
			{
				switch (typid)
				{
					case NUMERICOID:
						{
							int32		tm = typmod - VARHDRSZ;
							int			p = (tm >> 16) & 0xffff;
							int			s = ((tm & 0x7ff) ^ 1024) - 1024;

							and_append(&guard, psprintf("(%s IS NULL OR pg_catalog.abs(pg_catalog.round(%s, %d)) < '1e%d'::pg_catalog.numeric)",
														base, base, s, p - s));
							value = psprintf("(%s)::%s", base, fmt);
							break;
						}
					case TIMESTAMPOID:
					case TIMESTAMPTZOID:
					case TIMEOID:
					case TIMETZOID:
					case INTERVALOID:
						value = psprintf("(%s)::%s", base, fmt);
						break;
					case VARCHAROID:
						and_append(&guard, psprintf("(%s IS NULL OR pg_catalog.char_length(%s) <= %d)",
													base, base, typmod - VARHDRSZ));
						value = base;
						break;
					case BPCHAROID:
						if (typmod >= 0)
							and_append(&guard, psprintf("(%s IS NULL OR pg_catalog.char_length(%s) <= %d)",
														base, base, typmod - VARHDRSZ));
						value = psprintf("(%s)::%s", base, fmt);
						break;
					case VARBITOID:
						and_append(&guard, psprintf("(%s IS NULL OR pg_catalog.bit_length(%s) <= %d)",
													base, base, typmod));
						value = base;
						break;
					case BITOID:
						if (typmod >= 0)
							and_append(&guard, psprintf("(%s IS NULL OR pg_catalog.bit_length(%s) = %d)",
														base, base, typmod));
						value = psprintf("(%s)::%s", base, fmt);
						break;
					default:
						return false;	/* a coercion we do not know */
				}
			}
			/* the leading key is never NULL: batches read "key <= $2" */
			if (notnull && (tl->file_source || strcmp(name, linitial(tl->keycols)) != 0))
			{
				char		tt = get_typtype(getBaseType(typid));
				MigratePrediction *p;

				p = new_prediction("23502",
								   psprintf("null value in column \"%s\" of relation \"%s\" violates not-null constraint",
											name, relname),
								   MIGRATE_PRED_ROW);
				*preds = lappend(*preds, p);
				if (tt != TYPTYPE_COMPOSITE)
				{
					ps->null_tests = lappend_int(ps->null_tests, list_length(ps->fail));
					ps->null_values = lappend(ps->null_values, base);
				}
				ps->fail = lappend(ps->fail, tt == TYPTYPE_COMPOSITE ?
								   psprintf("pg_catalog.num_nulls(%s) = 1", base) :
								   psprintf("%s IS NULL", base));
			}
			appendStringInfo(&vals, ", CASE WHEN pg_catalog.num_nulls(%s) = 0 THEN pg_catalog.format('%%s', %s) END",
							 value, value);
		}
		else
		{
			/* unmapped: the INSERT fills it; a NOT NULL one must be filled */
			if (identity && seq)
				value = psprintf("pg_catalog.nextval(%s::pg_catalog.regclass)", quote_literal_cstr(seq));
			else if (defexpr)
				value = psprintf("(%s)", defexpr);
			else if (notnull)
				return false;
			else
				value = "NULL";
			appendStringInfo(&vals, ", (SELECT CASE WHEN pg_catalog.num_nulls(x.v) = 0 THEN pg_catalog.format('%%s', x.v) END"
							 " FROM (SELECT %s AS v OFFSET 0) x)", value);
		}
		ps->cols[i].value = pstrdup(value);
		ps->cols[i].cast = mapped && value != base;
	}
	ps->guard = guard.len ? guard.data : NULL;
	ps->vals = psprintf("ARRAY[%s]::pg_catalog.text[]", vals.data + 2);
	return true;
}

/*
 * expr (deparsed with every column as __migrate_chk.col) with each
 * column replaced by its stored value; NULL when the references found are
 * not exactly the expression's nvars Vars (a literal that looks like one).
 */
static char *
replace_columns(PredState *ps, const char *expr, int nvars)
{
	StringInfoData out;
	const char *p = expr;
	const char *hit;
	int			found = 0;

	initStringInfo(&out);
	while ((hit = strstr(p, CHK_ALIAS)) != NULL)
	{
		const char *id = hit + strlen(CHK_ALIAS);
		const char *end = id;
		char	   *name;
		int			i;

		if (*end == '"')
		{
			StringInfoData n;

			initStringInfo(&n);
			end++;
			while (*end && !(end[0] == '"' && end[1] != '"'))
			{
				if (end[0] == '"')
					end++;
				appendStringInfoChar(&n, *end++);
			}
			if (*end != '"')
				return NULL;
			end++;
			name = n.data;
		}
		else
		{
			while ((*end >= 'a' && *end <= 'z') || (*end >= '0' && *end <= '9') || *end == '_' || *end == '$' ||
				   (unsigned char) *end >= 0x80)
				end++;
			name = pnstrdup(id, end - id);
		}
		i = col_pos(ps, name);
		if (i < 0 || !ps->cols[i].mapped)
			return NULL;
		appendBinaryStringInfo(&out, p, hit - p);
		appendStringInfo(&out, "(%s)", ps->cols[i].value);
		ps->checks_cast |= ps->cols[i].cast;
		p = end;
		found++;
	}
	appendStringInfoString(&out, p);
	return found == nvars ? out.data : NULL;
}

/*
 * CHECK constraints by name (C order, as the relcache sorts them), each
 * "(expr) IS FALSE" over the stored values (NULL passes).  false: one
 * could not be predicted, so nothing after it may be.
 */
static bool
add_checks(MigrateTableLoad *tl, PredState *ps, List **preds)
{
	Oid			argtypes[1] = {OIDOID};
	Datum		args[1] = {ObjectIdGetDatum(tl->target)};
	MemoryContext cxt = CurrentMemoryContext;
	List	   *dpcontext;
	char	   *relname = get_rel_name(tl->target);
	int			ret;

	ret = SPI_execute_with_args("SELECT conname::text, conbin::pg_catalog.text,"
								"  0 < ALL (conkey)"
								" FROM pg_catalog.pg_constraint WHERE conrelid = $1 AND contype = 'c'"
								" ORDER BY conname COLLATE \"C\"",
								1, argtypes, args, NULL, true, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "reading the check constraints of %s failed: %s", tl->target_name,
			 SPI_result_code_string(ret));
	MemoryContextSwitchTo(cxt);
	dpcontext = deparse_context_for("__migrate_chk", tl->target);
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		char	   *name = pstrdup(SPI_getvalue(tup, desc, 1));
		Node	   *node = stringToNode(SPI_getvalue(tup, desc, 2));
		char	   *expr;

		if (!DatumGetBool(SPI_getbinval(tup, desc, 3, &isnull)) || isnull)
			return false;		/* tableoid */
		expr = replace_columns(ps, deparse_expression(node, dpcontext, true, false),
							   list_length(pull_var_clause(node, 0)));
		if (expr == NULL)
			return false;
		*preds = lappend(*preds,
						 new_prediction("23514",
										psprintf("new row for relation \"%s\" violates check constraint \"%s\"",
												 relname, name),
										MIGRATE_PRED_ROW));
		ps->fail = lappend(ps->fail, psprintf("(%s) IS FALSE", expr));
	}
	return true;
}

/* "a, b" of the names, each quoted or not */
static char *
join_names(List *names, bool quote)
{
	StringInfoData buf;
	ListCell   *lc;

	initStringInfo(&buf);
	foreach(lc, names)
		appendStringInfo(&buf, "%s%s", foreach_current_index(lc) ? ", " : "",
						 quote ? quote_identifier(lfirst(lc)) : (char *) lfirst(lc));
	return buf.data;
}

/*
 * Unique indexes by OID (the order the INSERT inserts into them), mode
 * insert: a probe of the target per row, and the data for the in-batch
 * windows.  false: one could not be predicted (partial, expressions,
 * deferrable, NULLS NOT DISTINCT, an exclusion constraint, a column not
 * mapped, a nondeterministic collation), so no later one nor any FK.
 */
static bool
add_uniques(MigrateTableLoad *tl, PredState *ps, List **preds)
{
	Oid			argtypes[1] = {OIDOID};
	Datum		args[1] = {ObjectIdGetDatum(tl->target)};
	MemoryContext cxt = CurrentMemoryContext;
	int			ret;
	int			pk = -1;
	int			onkey = -1;
	uint64		n;
	SPITupleTable *tuptable;

	ret = SPI_execute_with_args("SELECT c.relname::text, i.indisprimary,"
								"  i.indisunique AND i.indisvalid AND i.indisready AND i.indimmediate"
								"  AND i.indpred IS NULL AND i.indexprs IS NULL AND NOT i.indnullsnotdistinct"
								"  AND NOT i.indisexclusion AND 0 < ALL (i.indkey::pg_catalog.int2[]),"
								"  (SELECT pg_catalog.array_agg(a.attname::pg_catalog.text ORDER BY k.n)"
								"     FROM pg_catalog.unnest(i.indkey::pg_catalog.int2[]) WITH ORDINALITY k(att, n)"
								"     JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.att),"
								"  (SELECT pg_catalog.array_agg(pg_catalog.format('OPERATOR(%I.%s)', opn.nspname, o.oprname) ORDER BY k.n)"
								"     FROM pg_catalog.unnest(i.indclass::pg_catalog.oid[]) WITH ORDINALITY k(opc, n)"
								"     JOIN pg_catalog.pg_opclass oc ON oc.oid = k.opc"
								"     JOIN pg_catalog.pg_amop ao ON ao.amopfamily = oc.opcfamily AND ao.amoplefttype = oc.opcintype"
								"      AND ao.amoprighttype = oc.opcintype AND ao.amopstrategy = 3"
								"     JOIN pg_catalog.pg_operator o ON o.oid = ao.amopopr"
								"     JOIN pg_catalog.pg_namespace opn ON opn.oid = o.oprnamespace),"
								"  (SELECT pg_catalog.array_agg(pg_catalog.format_type(oc.opcintype, NULL) ORDER BY k.n)"
								"     FROM pg_catalog.unnest(i.indclass::pg_catalog.oid[]) WITH ORDINALITY k(opc, n)"
								"     JOIN pg_catalog.pg_opclass oc ON oc.oid = k.opc),"
								"  (SELECT coalesce(pg_catalog.bool_and(coll.collisdeterministic), true)"
								"     FROM pg_catalog.unnest(i.indcollation::pg_catalog.oid[]) k(co)"
								"     JOIN pg_catalog.pg_collation coll ON coll.oid = k.co)"
								" FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid"
								" WHERE i.indrelid = $1 AND (i.indisunique OR i.indisexclusion)"
								" ORDER BY i.indexrelid",
								1, argtypes, args, NULL, true, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "reading the unique indexes of %s failed: %s", tl->target_name,
			 SPI_result_code_string(ret));
	MemoryContextSwitchTo(cxt);
	n = SPI_processed;
	tuptable = SPI_tuptable;
	for (uint64 i = 0; i < n; i++)
	{
		HeapTuple	tup = tuptable->vals[i];
		TupleDesc	desc = tuptable->tupdesc;
		bool		isnull;
		char	   *name = pstrdup(SPI_getvalue(tup, desc, 1));
		bool		primary = DatumGetBool(SPI_getbinval(tup, desc, 2, &isnull));
		bool		ok = DatumGetBool(SPI_getbinval(tup, desc, 3, &isnull)) && !isnull;
		List	   *cols = text_array(tup, desc, 4);
		List	   *ops = text_array(tup, desc, 5);
		List	   *types = text_array(tup, desc, 6);
		bool		deterministic = DatumGetBool(SPI_getbinval(tup, desc, 7, &isnull));
		StringInfoData probe;
		StringInfoData part;
		StringInfoData notnull;
		MigratePrediction *p;
		ListCell   *lc;
		bool		same_as_key;

		if (!ok || !deterministic || list_length(ops) != list_length(cols) ||
			list_length(types) != list_length(cols))
			return false;
		initStringInfo(&probe);
		initStringInfo(&part);
		initStringInfo(&notnull);
		appendStringInfo(&probe, "EXISTS (SELECT 1 FROM ONLY %s t WHERE ", tl->target_name);
		p = new_prediction("23505", psprintf("duplicate key value violates unique constraint \"%s\"", name),
						   MIGRATE_PRED_KEY_EXISTS);
		p->key_names = join_names(cols, true);
		foreach(lc, cols)
		{
			int			c = col_pos(ps, lfirst(lc));
			int			k = foreach_current_index(lc);

			if (c < 0 || !ps->cols[c].mapped)
				return false;
			appendStringInfo(&probe, "%st.%s %s (%s)::%s", k ? " AND " : "", quote_identifier(lfirst(lc)),
							 (char *) list_nth(ops, k), ps->cols[c].value, (char *) list_nth(types, k));
			appendStringInfo(&part, "%s%s", k ? ", " : "", ps->cols[c].value);
			p->key_pos = lappend_int(p->key_pos, c);
		}
		appendStringInfoString(&probe, " OFFSET 0)");	/* an index probe, never a hash of it all */
		appendStringInfo(&notnull, "pg_catalog.num_nulls(%s) = 0", part.data);
		*preds = lappend(*preds, p);
		ps->fail = lappend(ps->fail, probe.data);
		ps->uniq_part = lappend(ps->uniq_part, part.data);
		ps->uniq_notnull = lappend(ps->uniq_notnull, notnull.data);

		/* the index on the plan key (same columns in any order) */
		same_as_key = list_length(cols) == list_length(tl->keycols);
		foreach(lc, tl->keycols)
		{
			ListCell   *c;
			bool		found = false;

			foreach(c, cols)
				found |= strcmp(lfirst(c), lfirst(lc)) == 0;
			same_as_key &= found;
		}
		if (same_as_key && onkey < 0)
			onkey = ps->nuniq;
		if (primary)
			pk = ps->nuniq;
		ps->nuniq++;
	}
	/* in-batch duplicates are refused for the first index only */
	ps->w = (onkey >= 0 ? onkey : pk) == 0 ? 0 : -1;
	return true;
}

/*
 * Foreign keys by the name of their RI check trigger (AFTER triggers fire
 * in name order), mode insert: "a fk column is NULL OR EXISTS (a parent)"
 * with the constraint's own equality operators.  Only parents this run
 * does not load or has loaded (a parent being loaded may gain the row
 * before the check runs), readable by the loader, without row level
 * security (RI checks bypass it, a probe would not), not self-referencing,
 * MATCH SIMPLE (or one column), not deferrable.  The first FK that cannot
 * be predicted stops the later ones.
 */
static void
add_fkeys(MigrateTableLoad *tl, PredState *ps, List **preds)
{
	Oid			argtypes[2] = {OIDOID, INT8OID};
	Datum		args[2] = {ObjectIdGetDatum(tl->target), Int64GetDatum(tl->run_id)};
	MemoryContext cxt = CurrentMemoryContext;
	char	   *relname = get_rel_name(tl->target);
	int			ret;
	uint64		n;
	SPITupleTable *tuptable;

	ret = SPI_execute_with_args("SELECT c.conname::text, r.relname::text,"
								"  pg_catalog.format('%s%I.%I', CASE WHEN r.relkind = 'r' THEN 'ONLY ' ELSE '' END, rn.nspname, r.relname),"
								"  c.confrelid <> c.conrelid AND (c.confmatchtype = 's' OR pg_catalog.cardinality(c.conkey) = 1)"
								"  AND NOT c.condeferrable AND r.relkind IN ('r', 'p') AND NOT r.relrowsecurity"
								"  AND pg_catalog.has_table_privilege(c.confrelid, 'SELECT')"
								"  AND NOT EXISTS (SELECT 1 FROM migrate.run_table rt WHERE rt.run_id = $2"
								"                   AND rt.target = c.confrelid AND rt.state <> 'succeeded')"
								"  AND (SELECT coalesce(pg_catalog.bool_and(coll.collisdeterministic), true)"
								"         FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_collation coll ON coll.oid = a.attcollation"
								"        WHERE (a.attrelid = c.conrelid AND a.attnum = ANY (c.conkey))"
								"           OR (a.attrelid = c.confrelid AND a.attnum = ANY (c.confkey))),"
								"  (SELECT pg_catalog.array_agg(a.attname::pg_catalog.text ORDER BY k.n)"
								"     FROM pg_catalog.unnest(c.conkey) WITH ORDINALITY k(att, n)"
								"     JOIN pg_catalog.pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.att),"
								"  (SELECT pg_catalog.array_agg(a.attname::pg_catalog.text ORDER BY k.n)"
								"     FROM pg_catalog.unnest(c.confkey) WITH ORDINALITY k(att, n)"
								"     JOIN pg_catalog.pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.att),"
								"  (SELECT pg_catalog.array_agg(pg_catalog.format('OPERATOR(%I.%s)', opn.nspname, o.oprname) ORDER BY k.n)"
								"     FROM pg_catalog.unnest(c.conpfeqop) WITH ORDINALITY k(op, n)"
								"     JOIN pg_catalog.pg_operator o ON o.oid = k.op"
								"     JOIN pg_catalog.pg_namespace opn ON opn.oid = o.oprnamespace),"
								"  (SELECT pg_catalog.array_agg(pg_catalog.format_type(o.oprright, NULL) ORDER BY k.n)"
								"     FROM pg_catalog.unnest(c.conpfeqop) WITH ORDINALITY k(op, n)"
								"     JOIN pg_catalog.pg_operator o ON o.oid = k.op),"
								"  t.tgenabled <> 'D'"
								" FROM pg_catalog.pg_constraint c"
								" JOIN pg_catalog.pg_class r ON r.oid = c.confrelid"
								" JOIN pg_catalog.pg_namespace rn ON rn.oid = r.relnamespace"
								" JOIN pg_catalog.pg_trigger t ON t.tgconstraint = c.oid AND t.tgrelid = c.conrelid"
								"  AND t.tgfoid = 'pg_catalog.\"RI_FKey_check_ins\"'::pg_catalog.regproc"
								" WHERE c.conrelid = $1 AND c.contype = 'f'"
								" ORDER BY t.tgname COLLATE \"C\"",
								2, argtypes, args, NULL, true, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "reading the foreign keys of %s failed: %s", tl->target_name,
			 SPI_result_code_string(ret));
	MemoryContextSwitchTo(cxt);
	n = SPI_processed;
	tuptable = SPI_tuptable;
	for (uint64 i = 0; i < n; i++)
	{
		HeapTuple	tup = tuptable->vals[i];
		TupleDesc	desc = tuptable->tupdesc;
		bool		isnull;
		char	   *name = pstrdup(SPI_getvalue(tup, desc, 1));
		char	   *refname = pstrdup(SPI_getvalue(tup, desc, 2));
		char	   *ref = pstrdup(SPI_getvalue(tup, desc, 3));
		bool		ok = DatumGetBool(SPI_getbinval(tup, desc, 4, &isnull)) && !isnull;
		List	   *cols = text_array(tup, desc, 5);
		List	   *refcols = text_array(tup, desc, 6);
		List	   *ops = text_array(tup, desc, 7);
		List	   *types = text_array(tup, desc, 8);
		bool		enabled = DatumGetBool(SPI_getbinval(tup, desc, 9, &isnull));
		StringInfoData cond;
		StringInfoData probe;
		MigratePrediction *p;
		ListCell   *lc;

		if (!enabled)
			continue;			/* not enforced: refuses nothing */
		if (!ok || list_length(refcols) != list_length(cols) || list_length(ops) != list_length(cols) ||
			list_length(types) != list_length(cols))
			return;
		initStringInfo(&cond);
		initStringInfo(&probe);
		p = new_prediction("23503",
						   psprintf("insert or update on table \"%s\" violates foreign key constraint \"%s\"",
									relname, name),
						   MIGRATE_PRED_KEY_MISSING);
		p->key_names = join_names(cols, false);
		p->ref_name = refname;
		foreach(lc, cols)
		{
			int			c = col_pos(ps, lfirst(lc));
			int			k = foreach_current_index(lc);

			if (c < 0 || !ps->cols[c].mapped)
				return;
			appendStringInfo(&cond, "%s IS NULL OR ", ps->cols[c].value);
			appendStringInfo(&probe, "%sr.%s %s (%s)::%s", k ? " AND " : "",
							 quote_identifier(list_nth(refcols, k)), (char *) list_nth(ops, k),
							 ps->cols[c].value, (char *) list_nth(types, k));
			p->key_pos = lappend_int(p->key_pos, c);
		}
		*preds = lappend(*preds, p);
		ps->fail = lappend(ps->fail, psprintf("NOT (%sEXISTS (SELECT 1 FROM %s r WHERE %s))",
											  cond.data, ref, probe.data));
	}
}

/*
 * Read the predictions of tl's target (SPI, a transaction; allocates in
 * the caller's context): tl->preds (for route.c) and tl->predict.  None
 * when the plan turned them off, for a dry run, or when the target may do
 * what a prediction cannot see (see the top of this file).
 */
void
migrate_predict_describe(MigrateTableLoad *tl, const char *plan)
{
	Oid			argtypes[2] = {TEXTOID, OIDOID};
	Datum		args[2];
	MemoryContext cxt = CurrentMemoryContext;
	PredState  *ps;
	List	   *preds = NIL;
	bool		isnull;
	int			ret;

	tl->preds = NIL;
	tl->predict = NULL;
	if (tl->dry_run)
		return;
	args[0] = CStringGetTextDatum(plan);
	args[1] = ObjectIdGetDatum(tl->target);
	ret = SPI_execute_with_args("SELECT coalesce((m.options->>'setwise_quarantine')::pg_catalog.bool,"
								"                (p.options->>'setwise_quarantine')::pg_catalog.bool, true)"
								"   AND c.relkind = 'r' AND NOT c.relhasrules AND NOT c.relrowsecurity"
								"   AND pg_catalog.has_table_privilege(c.oid, 'SELECT')"
								"   AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_trigger t WHERE t.tgrelid = c.oid"
								"                    AND NOT t.tgisinternal AND t.tgenabled <> 'D'"
								"                    AND (t.tgtype & 5) = 5)"
								"  FROM migrate.table_map m JOIN migrate.plan p ON p.plan_name = m.plan"
								"  JOIN pg_catalog.pg_class c ON c.oid = m.target"
								" WHERE m.plan = $1 AND m.target = $2",
								2, argtypes, args, NULL, true, 1);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "reading the options of %s failed: %s", tl->target_name, SPI_result_code_string(ret));
	MemoryContextSwitchTo(cxt);
	if (SPI_processed != 1 ||
		!DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)) || isnull)
		return;

	ps = palloc0(sizeof(PredState));
	ps->w = -1;
	if (!read_columns(tl, ps, &preds))
		return;
	if (add_checks(tl, ps, &preds))
	{
		ps->ncheap = list_length(preds);
		if (strcmp(tl->mode, "insert") == 0 && add_uniques(tl, ps, &preds))
			add_fkeys(tl, ps, &preds);
	}
	else
		ps->ncheap = list_length(preds);
	if (preds == NIL)
		return;
	tl->preds = preds;
	tl->predict = ps;
	tl->pred_ncols = ps->ncols;
	tl->pred_sensitive = NIL;
	for (int i = 0; i < ps->ncols; i++)
	{
		ListCell   *lc;

		foreach(lc, tl->sensitive_cols)
		{
			if (strcmp(lfirst(lc), ps->cols[i].name) == 0)
				tl->pred_sensitive = lappend_int(tl->pred_sensitive, i);
		}
	}
}

/*
 * A batch failed with sqlerrcode: switch on the probes that predict it
 * (foreign keys for 23503, unique keys for 23505).  Returns whether
 * anything new is on (the batch is then tried again).
 */
bool
migrate_predict_enable(MigrateTableLoad *tl, int sqlerrcode)
{
	PredState  *ps = tl->predict;
	int			nfk;

	if (ps == NULL)
		return false;
	nfk = list_length(tl->preds) - ps->ncheap - ps->nuniq;
	if (sqlerrcode == ERRCODE_FOREIGN_KEY_VIOLATION && nfk > 0 && !tl->probes)
	{
		tl->probes = true;
		return true;
	}
	if (sqlerrcode == ERRCODE_UNIQUE_VIOLATION && ps->nuniq > 0 && !tl->probe_keys)
	{
		tl->probes = tl->probe_keys = true;
		return true;
	}
	return false;
}

/* "CASE WHEN NOT gate THEN -1 WHEN NOT guard THEN -2 WHEN f1 THEN 1 ... ELSE 0 END" */
static void
append_first_failure(StringInfo sql, PredState *ps, const char *gate, int from, int to)
{
	if (gate == NULL && ps->guard == NULL && from >= to)
	{
		appendStringInfoChar(sql, '0');
		return;
	}
	appendStringInfoString(sql, "CASE");
	if (gate)
		appendStringInfo(sql, " WHEN NOT (%s) THEN -1", gate);
	if (ps->guard)
		appendStringInfo(sql, " WHEN NOT (%s) THEN -2", ps->guard);
	for (int i = from; i < to; i++)
		appendStringInfo(sql, " WHEN %s THEN %d", (char *) list_nth(ps->fail, i), i + 1);
	appendStringInfoString(sql, " ELSE 0 END");
}

/*
 * NOT NULL and CHECK only, in the batch statement's WHERE over m: the
 * condition that none refuses the row (true when a typmod would not fit:
 * the INSERT raises that), or NULL when there are none.
 */
char *
migrate_predict_pass_sql(MigrateTableLoad *tl)
{
	PredState  *ps = tl->predict;
	StringInfoData sql;
	ListCell   *lc;
	int			nnull;

	if (ps == NULL || ps->ncheap == 0)
		return NULL;
	/*
	 * The guard only matters for a row that fails: it comes last, unless
	 * a CHECK reads a cast value (the cast must not raise before the INSERT
	 * raises its own error for an earlier column).
	 */
	initStringInfo(&sql);
	appendStringInfoChar(&sql, '(');
	if (ps->guard && ps->checks_cast)
		appendStringInfo(&sql, "NOT (%s) OR ", ps->guard);
	appendStringInfoChar(&sql, '(');
	/*
	 * The NOT NULLs as one num_nulls(v1, v2, ...) = 0: a third of the steps
	 * of as many NOT (v IS NULL), evaluated for every row.
	 */
	nnull = 0;
	foreach(lc, ps->null_values)
		if (list_nth_int(ps->null_tests, foreach_current_index(lc)) < ps->ncheap)
			appendStringInfo(&sql, "%s%s", nnull++ ? ", " : "pg_catalog.num_nulls(", (char *) lfirst(lc));
	if (nnull)
		appendStringInfoString(&sql, ") = 0");
	for (int i = 0; i < ps->ncheap; i++)
		if (!list_member_int(ps->null_tests, i))
			appendStringInfo(&sql, "%sNOT (%s)", nnull++ ? " AND " : "", (char *) list_nth(ps->fail, i));
	appendStringInfoChar(&sql, ')');
	if (ps->guard && !ps->checks_cast)
		appendStringInfo(&sql, " OR NOT (%s)", ps->guard);
	appendStringInfoChar(&sql, ')');
	return sql.data;
}

/*
 * The 4th argument of migrate._fail() for a row that did not pass: NULL,
 * or ARRAY[n, the row's values...] when prediction n (1-based) refuses it,
 * the first in PostgreSQL's order, evaluated only for rows the rules
 * (gate: the reject and abort rules, or NULL) let through.  probes: the
 * levels of migrate_predict_from computed it as m.__migrate_g.
 */
char *
migrate_predict_detail_sql(MigrateTableLoad *tl, const char *gate, bool probes)
{
	PredState  *ps = tl->predict;
	StringInfoData sql;

	if (ps == NULL)
		return NULL;
	initStringInfo(&sql);
	if (probes)
	{
		appendStringInfo(&sql, "CASE WHEN m.__migrate_g > 0 THEN ARRAY[m.__migrate_g::pg_catalog.text] || %s END",
						 ps->vals);
		return sql.data;
	}
	if (ps->ncheap == 0)
		return NULL;
	appendStringInfo(&sql, "(SELECT CASE WHEN x.f > 0 THEN ARRAY[x.f::pg_catalog.text] || %s END FROM (SELECT ",
					 ps->vals);
	append_first_failure(&sql, ps, gate, 0, ps->ncheap);
	appendStringInfoString(&sql, " AS f OFFSET 0) x)");
	return sql.data;
}

/*
 * With probes: the FROM item of the batch statement, levels over inner
 * (the mapped subquery, with __migrate_a its arrival order), named m:
 *	 rules as columns m.__migrate_r1.. (rule_exprs), then the per-row
 *	 predictions (m.__migrate_p: -1 a rule refuses, -2 a typmod does not
 *	 fit, n the NOT NULL or CHECK n, 0 none), then for each unique index
 *	 whether an earlier row of the batch that passed them has its key
 *	 (m.__migrate_e0..), then the probes (m.__migrate_f: -3 a key also
 *	 earlier in the batch, undecided), and the in-batch duplicates of W
 *	 (m.__migrate_g, what migrate._fail() gets).
 */
char *
migrate_predict_from(MigrateTableLoad *tl, const char *inner, const char *gate)
{
	PredState  *ps = tl->predict;
	StringInfoData sql;
	StringInfoData lvl;
	ListCell   *lc;
	int			r = 1;
	int			nfk = list_length(tl->preds) - ps->ncheap - ps->nuniq;

	initStringInfo(&sql);
	appendStringInfoString(&sql, inner);

	/* the rules as columns */
	if (tl->rule_exprs != NIL)
	{
		initStringInfo(&lvl);
		appendStringInfoString(&lvl, "(SELECT m.*");
		foreach(lc, tl->rule_exprs)
			appendStringInfo(&lvl, ", ((%s) IS TRUE) AS __migrate_r%d", (char *) lfirst(lc), r++);
		appendStringInfo(&lvl, " FROM %s m OFFSET 0)", sql.data);
		sql = lvl;
	}

	/* per-row: NOT NULL, CHECK */
	initStringInfo(&lvl);
	appendStringInfoString(&lvl, "(SELECT m.*, ");
	append_first_failure(&lvl, ps, gate, 0, ps->ncheap);
	appendStringInfo(&lvl, " AS __migrate_p FROM %s m OFFSET 0)", sql.data);
	sql = lvl;

	/*
	 * Another row of the batch that passed them has the same key, per
	 * unique index: for W, an earlier one (arrival order); for the others
	 * any (a superset: such rows are only left undecided).
	 */
	if (ps->nuniq > 0)
	{
		initStringInfo(&lvl);
		appendStringInfoString(&lvl, "(SELECT m.*");
		for (int j = 0; j < ps->nuniq; j++)
		{
			if (j == ps->w && tl->probe_keys)
				appendStringInfo(&lvl, ", CASE WHEN %s THEN pg_catalog.count(*) FILTER (WHERE m.__migrate_p = 0)"
								 " OVER (PARTITION BY %s ORDER BY m.__migrate_a"
								 " ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) > 0 ELSE false END AS __migrate_e%d",
								 (char *) list_nth(ps->uniq_notnull, j), (char *) list_nth(ps->uniq_part, j), j);
			else
				appendStringInfo(&lvl, ", CASE WHEN %s THEN pg_catalog.count(*) FILTER (WHERE m.__migrate_p = 0)"
								 " OVER (PARTITION BY %s) > 1 ELSE false END AS __migrate_e%d",
								 (char *) list_nth(ps->uniq_notnull, j), (char *) list_nth(ps->uniq_part, j), j);
		}
		appendStringInfo(&lvl, " FROM %s m)", sql.data);
		sql = lvl;
	}

	/*
	 * The probes, in order; undecided when the batch has the key earlier.
	 * Foreign keys only (no unique violation seen yet): the unique keys
	 * are probed for the rows an FK refuses, which must not be reported
	 * as orphans if the target has their key.
	 */
	initStringInfo(&lvl);
	appendStringInfoString(&lvl, "(SELECT m.*, CASE WHEN m.__migrate_p <> 0 THEN m.__migrate_p");
	if (!tl->probe_keys)
	{
		appendStringInfoString(&lvl, " WHEN NOT (false");
		for (int k = 0; k < nfk; k++)
			appendStringInfo(&lvl, " OR %s", (char *) list_nth(ps->fail, ps->ncheap + ps->nuniq + k));
		appendStringInfoString(&lvl, ") THEN 0 ELSE CASE");
	}
	for (int j = 0; j < ps->nuniq; j++)
		appendStringInfo(&lvl, " WHEN %s THEN %d WHEN m.__migrate_e%d THEN -3",
						 (char *) list_nth(ps->fail, ps->ncheap + j), ps->ncheap + j + 1, j);
	for (int k = 0; k < nfk; k++)
	{
		int			i = ps->ncheap + ps->nuniq + k;

		appendStringInfo(&lvl, " WHEN %s THEN %d", (char *) list_nth(ps->fail, i), i + 1);
	}
	appendStringInfo(&lvl, " ELSE 0 END%s AS __migrate_f FROM %s m OFFSET 0)",
					 tl->probe_keys ? "" : " END", sql.data);
	sql = lvl;

	/*
	 * W's duplicates: the group's first row that passed the per-row
	 * checks (the one without an earlier row) loads for sure when nothing
	 * refused or held it back; then every later one is refused.
	 */
	initStringInfo(&lvl);
	if (ps->w >= 0 && tl->probe_keys)
		appendStringInfo(&lvl, "(SELECT m.*, CASE WHEN m.__migrate_f = -3 AND m.__migrate_e%d"
						 " AND pg_catalog.bool_and(m.__migrate_f = 0) FILTER (WHERE m.__migrate_p = 0 AND NOT m.__migrate_e%d)"
						 " OVER (PARTITION BY %s) THEN %d ELSE m.__migrate_f END AS __migrate_g FROM %s m) m",
						 ps->w, ps->w, (char *) list_nth(ps->uniq_part, ps->w), ps->ncheap + ps->w + 1, sql.data);
	else
		appendStringInfo(&lvl, "(SELECT m.*, m.__migrate_f AS __migrate_g FROM %s m) m", sql.data);
	return lvl.data;
}

/* Does any unique index need the rows' arrival order? */
bool
migrate_predict_needs_arrival(MigrateTableLoad *tl)
{
	return tl->probes && tl->probe_keys && tl->predict && tl->predict->w >= 0;
}

/*
 * Do rejects of the batch statement carry their whole source row?  When
 * in-batch duplicates are refused: several source rows share the key, so
 * the row cannot be fetched again by key afterwards.
 */
bool
migrate_predict_whole_row(MigrateTableLoad *tl)
{
	return tl->probes && tl->probe_keys && tl->predict && tl->predict->w >= 0;
}

/* Does the batch statement route predictions (NOT NULL, CHECK, probes)? */
bool
migrate_predict_active(MigrateTableLoad *tl)
{
	return tl->predict && (tl->probes || tl->predict->ncheap > 0);
}

/* rule lc's outcome, never NULL: its expression, or with probes its column */
char *
migrate_predict_rule_outcome(const char *expr, int i, bool probes)
{
	if (probes)
		return psprintf("m.__migrate_r%d", i + 1);
	return psprintf("((%s) IS TRUE)", expr);
}

/*
 * The rules that keep a row from the target (reject, abort) all hold: a
 * prediction is only evaluated then, as the target sees no other row.
 * NULL when there are none.
 */
char *
migrate_predict_rules_gate(MigrateTableLoad *tl, bool probes)
{
	StringInfoData gate;
	ListCell   *lc1,
			   *lc2;

	initStringInfo(&gate);
	forboth(lc1, tl->rule_exprs, lc2, tl->rule_on_fail)
	{
		if (strcmp(lfirst(lc2), "warn") == 0)
			continue;
		appendStringInfo(&gate, "%s%s", gate.len ? " AND " : "", migrate_predict_rule_outcome(lfirst(lc1), foreach_current_index(lc1), probes));
	}
	return gate.len ? gate.data : NULL;
}
