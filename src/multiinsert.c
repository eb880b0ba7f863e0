/*-------------------------------------------------------------------------
 *
 * multiinsert.c
 *	  The batch's rows written the way COPY FROM writes them: the batch
 *	  statement's SELECT (mapping, rules, predictions, routing, all as on
 *	  the SQL path) sends its rows to a DestReceiver that checks the
 *	  target's constraints, writes them with table_multi_insert() in
 *	  buffers of up to 1,000 rows or 64 kB, and inserts their index
 *	  entries, as copyfrom.c's CopyMultiInsertBufferFlush() does.
 *
 * Why: through "INSERT ... SELECT" every row is one heap_insert() with its
 * own WAL record and buffer lookup; COPY's multi-insert writes a page at a
 * time (issue 16).
 *
 * Which tables take it (migrate_multi_insert_describe): a plain or a
 * partitioned table (each row routed to its partition as CopyFrom()
 * routes it, a buffer per partition; no foreign partition, no Citus
 * distributed table), no table of its tree with
 * BEFORE or INSTEAD OF row triggers on insert or transition tables (AFTER
 * ROW triggers, a foreign key's checks among them, and statement triggers
 * fire as CopyFrom() fires them), rules, row-level
 * security, a mapped generated column, deferrable unique or exclusion
 * constraints, loaded in mode insert with no undo log and no RETURNING
 * (sync).  A column left unmapped gets what the INSERT would give it, its
 * default (an identity's nextval(), the column's default, else its
 * domain's) evaluated per row by the SELECT; stored generated columns are
 * computed by the receiver, as CopyFrom() computes them.  Everything else, and
 * a dry run, keeps the SQL path; the run's events say which path each
 * table took and why (docs/architecture.md).
 *
 * File sources (filesrc.c) whose every mapped column is a field as it is
 * (s.<field>, cast to the column's type through its input function) go
 * further, as COPY FROM does: the batch's SELECT only reads the fields,
 * and the receiver converts each with the column's input function and
 * typmod (migrate_multi_insert_direct): no text-to-text copy per field, no
 * expression per row.  A batch that fails so (a field that does not cast,
 * a NULL, a duplicate key) is rolled back and loaded again by the batch
 * statement, whose predictions and bisection quarantine the bad rows
 * exactly as before; two such batches in a row end the direct attempts for
 * the range.  Such tables keep no loaded checksum (load.c does not
 * describe one): hashing every row would cost more than the verify's
 * re-read of a local file.
 *
 * What stays the same: the values are those the INSERT would store (the
 * SELECT applies the INSERT's assignment coercion, typmods included: the
 * length coercions of char, varchar, bit and varbit are called with
 * isExplicit false, so a value too long fails as it would); NOT NULL and
 * CHECK by ExecConstraints, unique keys by the index insertion, with the
 * same SQLSTATEs and messages, so the batch's quarantine (predict.c,
 * stage.c) works unchanged; INSERT privilege is checked as the executor
 * does.  The rows are written with the statement's command id, so the
 * SELECT's probes of the target do not see them, as with INSERT ... SELECT.
 * The loaded checksum's row hash is computed here from the row written
 * (rowhash.c), not by migrate._loaded() in the SELECT.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/tupconvert.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "executor/execPartition.h"
#include "executor/nodeModifyTable.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "parser/parse_type.h"
#include "parser/parsetree.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"

#include "migrate.h"

#define MI_MAX_ROWS		1000
#define MI_MAX_BYTES	65536
#define MI_MAX_BUFFERS	32		/* partitions buffered at once (copyfrom.c's too) */

/* the rows buffered for one table: the target, or one of its partitions */
typedef struct MiBuffer
{
	ResultRelInfo *rri;
	BulkInsertState bistate;
	TupleTableSlot *slots[MI_MAX_ROWS];	/* made as needed, its row type */
	int			nused;
} MiBuffer;

typedef struct MultiInsertDest
{
	DestReceiver pub;
	Relation	rel;
	ResultRelInfo *rri;
	EState	   *estate;
	CommandId	cid;
	int			natts;
	int		   *att_col;		/* target attribute i <- output column, -1: NULL */
	bool		convert;		/* the output columns are text fields (direct) */
	FmgrInfo   *in_funcs;		/* then: per target attribute, its input */
	Oid		   *in_ioparams;
	int32	   *in_typmods;
	StringInfoData field;		/* a field as a C string */
	MemoryContext rowcxt;		/* the converted values of one row */
	MigrateRowHash *row_hash;	/* NULL, or each row's hash is summed (rowhash.c) */
	MiBuffer   *buffers[MI_MAX_BUFFERS];	/* one a table written to */
	int			nbuffers;
	int			nused;			/* rows buffered, in all */
	Size		bytes;
	/* a partitioned target: each row routed as COPY FROM routes it */
	ModifyTableState *mtstate;
	PartitionTupleRouting *proute;
	TupleTableSlot *root_row;	/* the row before routing */
} MultiInsertDest;

static bool describe_path(MigrateTableLoad *tl, const char **reason);
static List *describe_source_fields(MigrateTableLoad *tl, MemoryContext cxt);
static char *direct_field(MigrateTableLoad *tl, const char *name, Oid typid, bool io,
						  List *source_fields, bool *direct);
static Datum convert_field(MultiInsertDest *d, int i, text *field);
static bool source_column_is(MigrateTableLoad *tl, const char *target_col, Oid typid, int32 typmod);

/*
 * Is target column target_col mapped to a column of the source, uncast,
 * of type typid and typmod?  Then the value read is already of the
 * target's typmod and an assignment's length coercion would only cost a
 * projection (the batch's SELECT then returns the scanned row itself).
 */
static bool
source_column_is(MigrateTableLoad *tl, const char *target_col, Oid typid, int32 typmod)
{
	ListCell   *c,
			   *e,
			   *t;

	/*
	 * Only a source read by binary COPY (copysrc.c receives each value with
	 * its column's typmod) or staged (the stage's columns are typed): another
	 * FDW's scan need not apply a typmod.
	 */
	if (!tl->copy_path || tl->file_source || !OidIsValid(tl->source_relid))
		return false;
	forthree(c, tl->cols, e, tl->exprs, t, tl->types)
	{
		char	   *column;
		AttrNumber	attnum;
		Oid			srctype;
		int32		srctypmod;
		Oid			srccoll;

		if (strcmp(lfirst(c), target_col) != 0)
			continue;
		if (lfirst(t) != NULL || (column = migrate_mapped_source_column(lfirst(e))) == NULL)
			return false;
		attnum = get_attnum(tl->source_relid, column);
		if (attnum <= 0)
			return false;
		get_atttypetypmodcoll(tl->source_relid, attnum, &srctype, &srctypmod, &srccoll);
		return srctype == typid && srctypmod == typmod;
	}
	return false;
}

/*
 * Can tl's target take the multi-insert path?  In the range's first
 * transaction, after the undo decision; sets tl->multi_insert (and
 * tl->mi_direct), and tl->insert_path: which path, or why not.  Fills
 * tl->mi_cols (per target attribute: the output expression of the batch's
 * SELECT, as a format over m.<col>).
 */
void
migrate_multi_insert_describe(MigrateTableLoad *tl)
{
	const char *why = NULL;

	if (!describe_path(tl, &why))
		tl->insert_path = psprintf("INSERT ... SELECT (%s)", why);
	else if (tl->mi_direct)
		tl->insert_path = "multi-insert, fields converted as COPY FROM converts them";
	else
		tl->insert_path = "multi-insert, as COPY FROM";
}

static bool
describe_path(MigrateTableLoad *tl, const char **reason)
{
	List	   *source_fields = NIL;
	List	   *fields = NIL;	/* per attribute: its field, NULL: none */
	bool		direct;			/* the fields can be converted by the receiver */
	Oid			argtypes[1] = {OIDOID};
	Datum		args[1] = {ObjectIdGetDatum(tl->target)};
	MemoryContext cxt = CurrentMemoryContext;
	int			ret;

	tl->multi_insert = false;
	tl->mi_cols = NIL;
	tl->mi_direct = false;
	tl->mi_fields = NIL;
	tl->mi_direct_fails = 0;
	if (!migrate_multi_insert)
		*reason = "migrate.multi_insert is off";
	else if (tl->dry_run)
		*reason = "a dry run";
	else if (strcmp(tl->mode, "insert") != 0)
		*reason = psprintf("mode %s", tl->mode);
	else if (tl->undo_into)
		*reason = "the undo log (the target was not empty)";
	else if (tl->returning_into)
		*reason = "a sync";
	else
		*reason = NULL;
	if (*reason)
		return false;

	/*
	 * The target, and for a partitioned one each table of its tree (t.rels):
	 * what a partition has, its rows routed there have too.
	 */
	ret = SPI_execute_with_args("SELECT CASE"
								"  WHEN c.relkind NOT IN ('r', 'p') THEN 'not a plain table (relkind ' || c.relkind::pg_catalog.text || ')'"
								"  WHEN EXISTS (SELECT FROM pg_catalog.pg_class l WHERE l.oid = ANY (t.rels)"
								"               AND l.relkind NOT IN ('r', 'p'))"
								"       THEN 'a partition that is not a plain table (a foreign table, say)'"
								"  WHEN EXISTS (SELECT FROM pg_catalog.pg_class l WHERE l.oid = ANY (t.rels) AND l.relrowsecurity)"
								"       THEN 'row-level security'"
								"  WHEN EXISTS (SELECT FROM pg_catalog.pg_class l WHERE l.oid = ANY (t.rels) AND l.relhasrules)"
								"       THEN 'rules'"
								/*
								 * CopyFrom() writes row by row for BEFORE and INSTEAD OF row
								 * triggers; AFTER row triggers (a foreign key's checks) and
								 * statement triggers it fires around its multi-insert, as
								 * the receiver does.  (1 row, 2 before, 4 insert, 64 instead)
								 */
								"  WHEN EXISTS (SELECT FROM pg_catalog.pg_trigger tg WHERE tg.tgrelid = ANY (t.rels)"
								"               AND tg.tgenabled <> 'D' AND (tg.tgtype & 4) <> 0"
								"               AND (tg.tgtype & 1) <> 0 AND (tg.tgtype & 66) <> 0)"
								"       THEN 'BEFORE or INSTEAD OF row triggers on insert'"
								"  WHEN EXISTS (SELECT FROM pg_catalog.pg_trigger tg WHERE tg.tgrelid = ANY (t.rels)"
								"               AND tg.tgenabled <> 'D' AND (tg.tgtype & 4) <> 0 AND tg.tgnewtable IS NOT NULL)"
								"       THEN 'a trigger with a transition table'"
								"  WHEN EXISTS (SELECT FROM pg_catalog.pg_constraint k WHERE k.conrelid = ANY (t.rels)"
								"               AND (k.contype = 'x' OR (k.contype IN ('u', 'p') AND k.condeferrable)))"
								"       THEN 'a deferrable unique or an exclusion constraint'"
								"  WHEN pg_catalog.to_regclass('pg_catalog.pg_dist_partition') IS NOT NULL"
								"       THEN 'a Citus coordinator (its tables are loaded through its own INSERT)'"
								"  END"
								"  FROM pg_catalog.pg_class c,"
								"       LATERAL (SELECT pg_catalog.array_agg(x.oid) AS rels"
								"                  FROM (SELECT c.oid UNION"
								"                        SELECT p.relid FROM pg_catalog.pg_partition_tree(c.oid) p) x) t"
								" WHERE c.oid = $1",
								1, argtypes, args, NULL, true, 1);
	if (ret != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "reading the target %s failed: %s", tl->target_name, SPI_result_code_string(ret));
	MemoryContextSwitchTo(cxt);
	{
		char	   *r = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);

		if (r)
		{
			*reason = MemoryContextStrdup(cxt, r);
			return false;
		}
	}

	if (tl->file_source && tl->rule_names == NIL && tl->filter == NULL)
		source_fields = describe_source_fields(tl, cxt);
	direct = source_fields != NIL;

	/*
	 * Per attribute: mapped (its coerced value), dropped, generated (the
	 * receiver computes it), or what the INSERT would fill it with: its
	 * default (an identity's next value, the column's default, else its
	 * type's: a domain's), or NULL; and whether a cast from text to its type
	 * is its input function or binary (no function in pg_cast from text, as
	 * name or regclass have): see direct_field().
	 */
	ret = SPI_execute_with_args("SELECT a.attname, a.attisdropped, a.atttypid, a.atttypmod,"
								"       pg_catalog.format_type(a.atttypid, a.atttypmod),"
								"       CASE WHEN a.attgenerated <> '' THEN NULL"
								"            WHEN a.attidentity <> '' THEN 'pg_catalog.nextval('"
								"                 || pg_catalog.quote_literal(pg_catalog.pg_get_serial_sequence("
								"                        a.attrelid::pg_catalog.regclass::pg_catalog.text, a.attname::pg_catalog.text))"
								"                 || '::pg_catalog.regclass)'"
								"            WHEN a.atthasdef THEN (SELECT pg_catalog.pg_get_expr(d.adbin, d.adrelid)"
								"                                     FROM pg_catalog.pg_attrdef d"
								"                                    WHERE d.adrelid = a.attrelid AND d.adnum = a.attnum)"
								"            ELSE (SELECT pg_catalog.pg_get_expr(t.typdefaultbin, 0)"
								"                    FROM pg_catalog.pg_type t WHERE t.oid = a.atttypid) END,"
								"       NOT EXISTS (SELECT FROM pg_catalog.pg_type t, pg_catalog.pg_cast k"
								"                    WHERE t.oid = a.atttypid AND k.castsource = 'pg_catalog.text'::pg_catalog.regtype"
								"                      AND k.casttarget = CASE t.typtype WHEN 'd' THEN t.typbasetype ELSE t.oid END"
								"                      AND k.castmethod <> 'b'),"
								"       a.attgenerated <> ''"
								"  FROM pg_catalog.pg_attribute a"
								" WHERE a.attrelid = $1 AND a.attnum > 0 ORDER BY a.attnum",
								1, argtypes, args, NULL, true, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "reading the columns of %s failed: %s", tl->target_name, SPI_result_code_string(ret));
	MemoryContextSwitchTo(cxt);
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		char	   *name = SPI_getvalue(tup, desc, 1);
		bool		dropped = DatumGetBool(SPI_getbinval(tup, desc, 2, &isnull));
		Oid			typid = DatumGetObjectId(SPI_getbinval(tup, desc, 3, &isnull));
		int32		typmod = DatumGetInt32(SPI_getbinval(tup, desc, 4, &isnull));
		char	   *typname = SPI_getvalue(tup, desc, 5);
		char	   *def = SPI_getvalue(tup, desc, 6);
		bool		io = DatumGetBool(SPI_getbinval(tup, desc, 7, &isnull));
		bool		generated = DatumGetBool(SPI_getbinval(tup, desc, 8, &isnull));
		bool		mapped = false;
		char	   *value;
		char	   *expr = NULL;
		ListCell   *lc;

		if (dropped)
		{
			tl->mi_cols = lappend(tl->mi_cols, NULL);
			fields = lappend(fields, NULL);
			continue;
		}
		if (direct)
			fields = lappend(fields, direct_field(tl, name, typid, io, source_fields, &direct));
		foreach(lc, tl->cols)
			mapped |= strcmp(lfirst(lc), name) == 0;
		if (mapped && generated)
		{
			/* the INSERT's own error ("cannot insert a non-DEFAULT value") */
			*reason = psprintf("generated column %s is mapped", quote_identifier(name));
			tl->mi_cols = NIL;
			return false;
		}
		/*
		 * An unmapped column's default is evaluated per row by the SELECT,
		 * as the INSERT evaluates it: not by a file source's fields alone.
		 */
		if (!mapped && def)
			direct = false;
		value = mapped ? psprintf("m.%s", quote_identifier(name)) : def ? psprintf("(%s)", def) : NULL;
		if (value == NULL)
			/* NULL, or computed by the receiver (generated) */
			expr = psprintf("NULL::%s", typname);
		else if (mapped && typmod >= 0 && source_column_is(tl, name, typid, typmod))
			/* its type and typmod already: the receive function applied them */
			expr = value;
		else if (typmod >= 0 && (typid == BPCHAROID || typid == VARCHAROID || typid == BITOID || typid == VARBITOID))
			/* the INSERT's assignment: too long is an error, not a cut */
			expr = psprintf("pg_catalog.%s((%s)::pg_catalog.%s, %d, false)",
							typid == BPCHAROID ? "bpchar" : typid == VARCHAROID ? "varchar" :
							typid == BITOID ? "bit" : "varbit",
							value,
							typid == BPCHAROID ? "bpchar" : typid == VARCHAROID ? "varchar" :
							typid == BITOID ? "bit" : "varbit", typmod);
		else if (typmod >= 0 || !mapped)
			/* a default's deparsed text shows no implicit coercion: cast it */
			expr = psprintf("(%s)::%s", value, typname);
		else
			expr = value;
		tl->mi_cols = lappend(tl->mi_cols, MemoryContextStrdup(cxt, expr));
	}
	tl->multi_insert = true;
	if (direct)
	{
		tl->mi_direct = true;
		tl->mi_fields = fields;
	}
	return true;
}

/* the fields of tl's file source as mappings name them: s.<field> */
static List *
describe_source_fields(MigrateTableLoad *tl, MemoryContext cxt)
{
	Oid			argtypes[1] = {OIDOID};
	Datum		args[1] = {ObjectIdGetDatum(tl->source_relid)};
	List	   *fields = NIL;
	int			ret;

	/* (filesrc.c: text columns but for its own) */
	ret = SPI_execute_with_args("SELECT 's.' || pg_catalog.quote_ident(f.attname) FROM pg_catalog.pg_attribute f"
								" WHERE f.attrelid = $1 AND f.attnum > 0 AND NOT f.attisdropped"
								"   AND f.atttypid = 'pg_catalog.text'::pg_catalog.regtype"
								"   AND f.attname NOT IN ('_file', '_raw', '_error')",
								1, argtypes, args, NULL, true, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "reading the fields of %s failed: %s", tl->source, SPI_result_code_string(ret));
	MemoryContextSwitchTo(cxt);
	for (uint64 i = 0; i < SPI_processed; i++)
		fields = lappend(fields, SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1));
	return fields;
}

/*
 * Can the receiver convert column name's field itself (see the header)?
 * Its mapping must be a field of the source as it is, cast to the
 * column's own type (or text, for char and varchar), by the type's input
 * function or a binary cast (io; varchar and char: their input applies
 * the same length check as the assignment).  Returns the field (NULL: the
 * column is not mapped); clears *direct when it cannot.
 */
static char *
direct_field(MigrateTableLoad *tl, const char *name, Oid typid, bool io, List *source_fields,
			 bool *direct)
{
	ListCell   *c,
			   *e,
			   *t;

	forthree(c, tl->cols, e, tl->exprs, t, tl->types)
	{
		Oid			cast = TEXTOID;
		int32		castmod;
		bool		is_field = false;
		ListCell   *f;

		if (strcmp(lfirst(c), name) != 0)
			continue;
		foreach(f, source_fields)
			is_field |= strcmp(lfirst(f), lfirst(e)) == 0;
		if (lfirst(t))
			parseTypeString(lfirst(t), &cast, &castmod, true);
		/* text assigned to char or varchar is their input with the typmod too */
		if (!is_field || !io ||
			(cast != typid && !(cast == TEXTOID && (typid == BPCHAROID || typid == VARCHAROID))))
			*direct = false;
		return lfirst(e);
	}
	return NULL;
}

/* Write buf's rows, then their index entries and AFTER ROW triggers. */
static void
mi_flush_buffer(MultiInsertDest *d, MiBuffer *buf)
{
	ResultRelInfo *rri = buf->rri;
	bool		after_row = rri->ri_TrigDesc && rri->ri_TrigDesc->trig_insert_after_row;

	if (buf->nused == 0)
		return;
	table_multi_insert(rri->ri_RelationDesc, buf->slots, buf->nused, d->cid, 0, buf->bistate);
	for (int i = 0; i < buf->nused; i++)
	{
		List	   *recheck = NIL;

		if (rri->ri_NumIndices > 0)
			recheck = ExecInsertIndexTuples(rri, buf->slots[i], d->estate, false, false, NULL, NIL);
		if (after_row)
			ExecARInsertTriggers(d->estate, rri, buf->slots[i], recheck, NULL);
		list_free(recheck);
		ResetPerTupleExprContext(d->estate);
		ExecClearTuple(buf->slots[i]);
	}
	buf->nused = 0;
}

/* Write every buffered row. */
static void
mi_flush(MultiInsertDest *d)
{
	for (int i = 0; i < d->nbuffers; i++)
		mi_flush_buffer(d, d->buffers[i]);
	d->nused = 0;
	d->bytes = 0;
}

/* Drop the (flushed) buffers. */
static void
mi_drop_buffers(MultiInsertDest *d)
{
	for (int b = 0; b < d->nbuffers; b++)
	{
		MiBuffer   *buf = d->buffers[b];

		for (int i = 0; i < MI_MAX_ROWS && buf->slots[i]; i++)
			ExecDropSingleTupleTableSlot(buf->slots[i]);
		FreeBulkInsertState(buf->bistate);
		pfree(buf);
	}
	d->nbuffers = 0;
}

/*
 * The buffer of table rri, made if it has none.  Past MI_MAX_BUFFERS
 * tables every row is written and the buffers made anew, which bounds the
 * memory of a table with many partitions.
 */
static MiBuffer *
mi_buffer(MultiInsertDest *d, ResultRelInfo *rri)
{
	MiBuffer   *buf;
	MemoryContext old;

	for (int i = d->nbuffers - 1; i >= 0; i--)
		if (d->buffers[i]->rri == rri)
			return d->buffers[i];
	if (d->nbuffers == MI_MAX_BUFFERS)
	{
		mi_flush(d);
		mi_drop_buffers(d);
	}
	/* in the EState's memory, not the SELECT's, which ends first */
	old = MemoryContextSwitchTo(d->estate->es_query_cxt);
	buf = palloc0(sizeof(MiBuffer));
	buf->rri = rri;
	buf->bistate = GetBulkInsertState();
	MemoryContextSwitchTo(old);
	d->buffers[d->nbuffers++] = buf;
	return buf;
}

/* The next free slot of buf, of its table's row type, cleared. */
static TupleTableSlot *
mi_next_slot(MultiInsertDest *d, MiBuffer *buf)
{
	if (buf->slots[buf->nused] == NULL)
	{
		MemoryContext old = MemoryContextSwitchTo(d->estate->es_query_cxt);

		buf->slots[buf->nused] = table_slot_create(buf->rri->ri_RelationDesc, NULL);
		MemoryContextSwitchTo(old);
	}
	ExecClearTuple(buf->slots[buf->nused]);
	return buf->slots[buf->nused];
}

/*
 * Target attribute i's value from its field (NULL: a NULL field), by the
 * type's input function and the column's typmod, as COPY FROM converts it
 * (a strict input function is not called for NULL, a domain's is).
 */
static Datum
convert_field(MultiInsertDest *d, int i, text *field)
{
	MemoryContext old = MemoryContextSwitchTo(d->rowcxt);
	Datum		value;

	if (field)
	{
		resetStringInfo(&d->field);
		appendBinaryStringInfo(&d->field, VARDATA_ANY(field), VARSIZE_ANY_EXHDR(field));
	}
	value = InputFunctionCall(&d->in_funcs[i], field ? d->field.data : NULL,
							  d->in_ioparams[i], d->in_typmods[i]);
	MemoryContextSwitchTo(old);
	return value;
}

static bool
mi_receive(TupleTableSlot *slot, DestReceiver *self)
{
	MultiInsertDest *d = (MultiInsertDest *) self;
	ResultRelInfo *rri = d->rri;
	MiBuffer   *buf = NULL;
	TupleTableSlot *row;
	TupleTableSlot *dst;
	Relation	rel;

	if (d->proute)
		row = ExecClearTuple(d->root_row);
	else
	{
		buf = mi_buffer(d, rri);
		row = mi_next_slot(d, buf);
	}
	slot_getallattrs(slot);
	if (d->convert)
		MemoryContextReset(d->rowcxt);
	for (int i = 0; i < d->natts; i++)
	{
		int			col = d->att_col[i];

		row->tts_isnull[i] = col < 0 || slot->tts_isnull[col];
		row->tts_values[i] = row->tts_isnull[i] ? (Datum) 0 : slot->tts_values[col];
		if (d->convert && d->in_funcs[i].fn_oid != InvalidOid)
			row->tts_values[i] = convert_field(d, i, row->tts_isnull[i] ? NULL : DatumGetTextPP(row->tts_values[i]));
	}
	/* before the slot is materialized: its values are the SELECT's until then */
	if (d->row_hash)
		migrate_route_add_loaded(migrate_row_hash(d->row_hash, row->tts_values, row->tts_isnull));
	ExecStoreVirtualTuple(row);
	dst = row;
	if (d->proute)
	{
		/* the partition, as ExecInsert() and CopyFrom() find it */
		TupleConversionMap *map;

		rri = ExecFindPartition(d->mtstate, d->rri, d->proute, row, d->estate);
		buf = mi_buffer(d, rri);
		dst = mi_next_slot(d, buf);
		map = rri->ri_RootToPartitionMap;
		if (map)
			dst = execute_attr_map_slot(map->attrMap, row, dst);
		else
		{
			memcpy(dst->tts_values, row->tts_values, sizeof(Datum) * d->natts);
			memcpy(dst->tts_isnull, row->tts_isnull, sizeof(bool) * d->natts);
			ExecStoreVirtualTuple(dst);
		}
	}
	rel = rri->ri_RelationDesc;
	dst->tts_tableOid = RelationGetRelid(rel);	/* a CHECK may read tableoid */
	if (rel->rd_att->constr && rel->rd_att->constr->has_generated_stored)
	{
		/* as CopyFrom() does; in the EState's per-row memory */
		ResetPerTupleExprContext(d->estate);
		ExecComputeStoredGenerated(rri, d->estate, dst, CMD_INSERT);
	}
	/* on the virtual row: once materialized, its values would be deformed again */
	if (rel->rd_att->constr)
		ExecConstraints(rri, dst, d->estate);
	/* a partition loaded as the target is checked as an INSERT into it is */
	if (d->proute == NULL && rel->rd_rel->relispartition)
		ExecPartitionCheck(rri, dst, d->estate, true);
	ExecMaterializeSlot(dst);	/* the SELECT's row memory is reset next */
	d->bytes += ((HeapTupleTableSlot *) dst)->tuple ? ((HeapTupleTableSlot *) dst)->tuple->t_len : 0;
	buf->nused++;
	if (++d->nused == MI_MAX_ROWS || d->bytes >= MI_MAX_BYTES)
		mi_flush(d);
	return true;
}

static void
mi_startup(DestReceiver *self, int operation, TupleDesc typeinfo)
{
	(void) self;
	(void) operation;
	(void) typeinfo;
}

static void
mi_shutdown(DestReceiver *self)
{
	mi_flush((MultiInsertDest *) self);
}

static void
mi_destroy(DestReceiver *self)
{
	(void) self;
}

/*
 * Execute the batch's SELECT (plan, its parameters values) into the
 * target.  Returns SPI_OK_INSERT with SPI_processed the rows written, as
 * the INSERT would.  In the batch's (sub)transaction, SPI connected.
 */
int
migrate_multi_insert_execute(MigrateTableLoad *tl, SPIPlanPtr plan, Datum *values)
{
	MultiInsertDest d;
	RangeTblEntry *rte;
	SPIExecuteOptions options;
	ParamListInfo params;
	Bitmapset  *cols = NULL;
	int			ncol = 0;
	int			ret;
	ListCell   *lc;

	memset(&d, 0, sizeof(d));
	d.estate = CreateExecutorState();
	rte = makeNode(RangeTblEntry);
	rte->rtekind = RTE_RELATION;
	rte->relid = tl->target;
	rte->relkind = get_rel_relkind(tl->target);
	rte->rellockmode = RowExclusiveLock;
	rte->requiredPerms = ACL_INSERT;
	foreach(lc, tl->mi_cols)
		if (lfirst(lc))
			cols = bms_add_member(cols, foreach_current_index(lc) + 1 - FirstLowInvalidHeapAttributeNumber);
	rte->insertedCols = cols;
	ExecCheckRTPerms(list_make1(rte), true);
	ExecInitRangeTable(d.estate, list_make1(rte));
	d.rri = makeNode(ResultRelInfo);
	ExecInitResultRelation(d.estate, d.rri, 1);
	CheckValidResultRel(d.rri, CMD_INSERT);
	d.rel = d.rri->ri_RelationDesc;
	if (d.rel->rd_rel->relkind == RELKIND_PARTITIONED_TABLE)
	{
		/* the routing CopyFrom() sets up: a ModifyTableState without a plan */
		d.mtstate = makeNode(ModifyTableState);
		d.mtstate->ps.plan = NULL;
		d.mtstate->ps.state = d.estate;
		d.mtstate->operation = CMD_INSERT;
		d.mtstate->mt_nrels = 1;
		d.mtstate->resultRelInfo = d.rri;
		d.mtstate->rootResultRelInfo = d.rri;
		d.proute = ExecSetupPartitionTupleRouting(d.estate, d.rel);
		d.root_row = MakeSingleTupleTableSlot(RelationGetDescr(d.rel), &TTSOpsVirtual);
	}
	else
		ExecOpenIndices(d.rri, false);
	d.natts = RelationGetDescr(d.rel)->natts;
	d.att_col = palloc(sizeof(int) * Max(d.natts, 1));
	d.convert = plan == tl->direct_first || plan == tl->direct_next;
	foreach(lc, d.convert ? tl->mi_fields : tl->mi_cols)
		d.att_col[foreach_current_index(lc)] = lfirst(lc) ? ncol++ : -1;
	if (list_length(tl->mi_cols) != d.natts)
		elog(ERROR, "table %s changed during its load (%d columns, %d described)",
			 tl->target_name, d.natts, list_length(tl->mi_cols));
	if (d.convert)
	{
		TupleDesc	desc = RelationGetDescr(d.rel);

		d.in_funcs = palloc0(sizeof(FmgrInfo) * d.natts);
		d.in_ioparams = palloc(sizeof(Oid) * d.natts);
		d.in_typmods = palloc(sizeof(int32) * d.natts);
		for (int i = 0; i < d.natts; i++)
		{
			Form_pg_attribute a = TupleDescAttr(desc, i);
			Oid			func;

			if (a->attisdropped)
				continue;
			getTypeInputInfo(a->atttypid, &func, &d.in_ioparams[i]);
			fmgr_info(func, &d.in_funcs[i]);
			d.in_typmods[i] = a->atttypmod;
		}
		initStringInfo(&d.field);
		d.rowcxt = AllocSetContextCreate(CurrentMemoryContext, "migrate field conversion",
										 ALLOCSET_SMALL_SIZES);
	}
	/* (a direct batch's table keeps no loaded checksum: see load.c) */
	d.row_hash = d.convert ? NULL : tl->row_hash;
	d.cid = GetCurrentCommandId(true);
	d.pub.receiveSlot = mi_receive;
	d.pub.rStartup = mi_startup;
	d.pub.rShutdown = mi_shutdown;
	d.pub.rDestroy = mi_destroy;
	d.pub.mydest = DestNone;

	params = migrate_spi_params(plan, values);
	memset(&options, 0, sizeof(options));
	options.params = params;
	options.read_only = false;
	options.dest = &d.pub;
	/*
	 * The triggers an INSERT statement fires, as CopyFrom() fires them: a
	 * query level of their own (a SELECT's executor skips triggers), the
	 * BEFORE STATEMENT ones, each row's AFTER ROW ones queued as its buffer
	 * is written (mi_flush), the AFTER STATEMENT ones, then the queue.
	 */
	AfterTriggerBeginQuery();
	ExecBSInsertTriggers(d.estate, d.rri);
	ret = SPI_execute_plan_extended(plan, &options);
	/* (a SELECT into a receiver of DestNone says SPI_OK_UTILITY) */
	if (ret != SPI_OK_SELECT && ret != SPI_OK_UTILITY)
		elog(ERROR, "batch statement failed: %s", SPI_result_code_string(ret));
	ExecASInsertTriggers(d.estate, d.rri, NULL);
	AfterTriggerEndQuery(d.estate);

	mi_drop_buffers(&d);
	if (d.convert)
		MemoryContextDelete(d.rowcxt);
	if (d.proute)
	{
		ExecDropSingleTupleTableSlot(d.root_row);
		/* the partitions' ResultRelInfos, their indexes and map slots */
		ExecCleanupTupleRouting(d.mtstate, d.proute);
	}
	/* (ExecCloseResultRelations closes the indexes too) */
	ExecResetTupleTable(d.estate->es_tupleTable, false);
	ExecCloseResultRelations(d.estate);
	ExecCloseRangeTableRelations(d.estate);
	FreeExecutorState(d.estate);
	return SPI_OK_INSERT;
}

/*
 * A file source's batch (lower_bound: "_pos > bounds[0]"; "_pos <=
 * bounds[1]") loaded with the fields converted by the receiver, in a
 * subtransaction as migrate_stage_attempt() runs it.  True when it loaded
 * (*batch: its counts); false when a row was refused, nothing of it kept:
 * the caller loads the batch with the batch statement.
 */
bool
migrate_multi_insert_direct(MigrateTableLoad *tl, bool lower_bound, Datum *bounds,
							MigrateCounts *batch)
{
	ErrorData  *edata = NULL;

	if (tl->direct_first == NULL)
	{
		Oid			argtypes[2] = {tl->key_type, tl->key_type};
		StringInfoData sql;
		ListCell   *lc;
		bool		first = true;

		initStringInfo(&sql);
		appendStringInfoString(&sql, "SELECT ");
		foreach(lc, tl->mi_fields)
		{
			if (lfirst(lc) == NULL)
				continue;
			appendStringInfo(&sql, "%s%s", first ? "" : ", ", (char *) lfirst(lc));
			first = false;
		}
		appendStringInfo(&sql, " FROM %s AS s WHERE (%s) <= $2", tl->source, tl->key_expr);
		tl->direct_first = migrate_spi_prepare_keep(sql.data, 2, argtypes);
		appendStringInfo(&sql, " AND (%s) > $1", tl->key_expr);
		tl->direct_next = migrate_spi_prepare_keep(sql.data, 2, argtypes);
	}
	if (migrate_stage_attempt(tl, lower_bound ? tl->direct_next : tl->direct_first, bounds, batch, &edata))
	{
		tl->mi_direct_fails = 0;
		return true;
	}
	elog(DEBUG1, "direct batch of %s refused (%s): loaded by the batch statement",
		 tl->target_name, tl->sensitive_cols ? "message not shown: sensitive columns" : edata->message);
	FreeErrorData(edata);
	memset(batch, 0, sizeof(*batch));
	/* data the fields do not fit: the batch statement's predictions are quicker */
	if (++tl->mi_direct_fails >= 2)
		tl->mi_direct = false;
	return false;
}
