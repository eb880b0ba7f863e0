/*-------------------------------------------------------------------------
 *
 * copysrc.c
 *	  A binary COPY reader for postgres_fdw sources: the rows of one key
 *	  range of a foreign table, read in place of the foreign table by the
 *	  batch statement, as a set-returning function or, streamed row by row,
 *	  as a custom scan the planner puts in that function's place.
 *
 * postgres_fdw always moves rows as text, and parsing that text is about
 * half of what a load through it costs the receiving backend.  For a
 * foreign table of postgres_fdw whose columns all have built-in types, the
 * engine (load.c) reads a batch with
 *
 *	  migrate._copy_source(ftable, lo, hi) AS s(col type, ...)
 *
 * which runs COPY (SELECT cols FROM remote WHERE key > lo AND key <= hi)
 * TO STDOUT (FORMAT binary) on the server of the foreign table, with the
 * connection remote.c keeps for the server and the caller's user mapping
 * (made as postgres_fdw makes its own, with its password rule), and
 * converts each value with the binary receive function of the local
 * column's type.  The caller needs SELECT on the foreign table, and its
 * column definition list must have the foreign table's column types (a
 * value is made by the receive function of its column's type: a mismatch
 * would return pointers or read memory).  The remote side casts each
 * column to that type, so the binary formats agree.  Waiting for the
 * source answers cancel requests and the run's stop check; an error in the
 * middle of the COPY drops the connection (remote.c), so the next batch
 * reads on a new one.
 *
 * Streamed (issue 16): a function in FROM is always materialized (the
 * FunctionScan fills a tuplestore, spilling past work_mem), so the batch's
 * rows were written out and read back, and the batch's inserts began only
 * after the source had sent its last row.  With migrate.copy_stream on
 * (the default), the planner hook below replaces the scan of
 * migrate._copy_source() by the custom scan "MigrateCopySource", which
 * starts the same COPY when the first row is asked for and returns each
 * row as it is decoded, in a memory context reset for the next: the
 * source produces while the batch inserts, and memory is one row plus
 * libpq's buffer.  Mapping, rules, predictions and routing above it are
 * the batch statement's, unchanged.  The scan checks EXECUTE on the
 * function, which the executor no longer calls.  An error while rows are
 * still coming (a duplicate key refused by the insert, say) leaves the
 * COPY running: the (sub)transaction abort drops the connection
 * (remote.c), as for an error in the function.  A whole-row reference to
 * the function's row keeps the function scan.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/relation.h"
#include "catalog/pg_class.h"
#include "catalog/pg_language.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "commands/defrem.h"
#include "commands/explain.h"
#include "executor/executor.h"
#include "foreign/foreign.h"
#include "funcapi.h"
#include "libpq/pqformat.h"
#include "mb/pg_wchar.h"
#include "nodes/extensible.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "optimizer/optimizer.h"
#include "optimizer/planner.h"
#include "optimizer/pathnode.h"
#include "optimizer/paths.h"
#include "optimizer/restrictinfo.h"
#include "parser/parsetree.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/ruleutils.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/syscache.h"
#include "utils/varlena.h"

#include "migrate.h"
#include "remote.h"

PG_FUNCTION_INFO_V1(migrate_copy_source_rows);

/* one binary COPY of a key range, being read */
typedef struct CopyReader
{
	MigrateRemote *remote;
	char	   *ftname;
	int			natts;
	FmgrInfo   *recv;			/* per column: the receive function of its type */
	Oid		   *ioparams;
	int32	   *typmods;		/* of the caller's column list */
	int32	   *flens;			/* the lengths of the row's fields */
	StringInfoData buf;			/* received; parsed up to buf.cursor */
	char	   *chunk;			/* or a message of libpq's, parsed in place */
	int			chunk_len;
	int			chunk_pos;		/* parsed up to here */
	MemoryContextCallback chunk_free;
	bool		header_done;
	bool		trailer;		/* the trailer was read */
	bool		done;			/* and the COPY has ended well */
	MemoryContext rowcxt;		/* the values of the row last returned */
	MemoryContext values_cxt;	/* rowcxt, or the scan's per-tuple memory */
} CopyReader;

/* the custom scan's state */
typedef struct CopyStreamState
{
	CustomScanState css;
	List	   *args;			/* ExprStates of the function's arguments */
	Oid			keytype;		/* the type of lo and hi */
	CopyReader *reader;			/* NULL: not started */
} CopyStreamState;

bool		migrate_copy_stream = true;

static set_rel_pathlist_hook_type prev_set_rel_pathlist = NULL;
static planner_hook_type prev_planner = NULL;

/* may the statement being planned stream its call of migrate._copy_source()? */
static bool copy_stream_statement = false;

static char *option_or(List *options, const char *name, char *dflt);
static CopyReader *copy_reader_begin(Oid relid, const char *keycol, Oid keytype,
									 Datum lo, bool lo_null, Datum hi, bool hi_null,
									 TupleDesc expected);
static bool copy_reader_next(CopyReader *rd, Datum *values, bool *nulls);
static Datum receive_field(CopyReader *rd, int i, char *data, int len);
static void copy_reader_end(CopyReader *rd);
static void free_chunk(void *arg);
static void check_result_type(TupleDesc expected, TupleDesc desc, const char *ftname);

static bool is_copy_source(Oid funcid);
static PlannedStmt *copy_stream_planner(Query *parse, const char *query_string,
										int cursorOptions, ParamListInfo boundParams);
static bool count_copy_sources(Node *node, int *count);
static void copy_stream_explain(CustomScanState *node, List *ancestors, ExplainState *es);
static void copy_stream_pathlist(PlannerInfo *root, RelOptInfo *rel, Index rti,
								 RangeTblEntry *rte);
static Plan *copy_stream_plan(PlannerInfo *root, RelOptInfo *rel, CustomPath *best_path,
							  List *tlist, List *clauses, List *custom_plans);
static Node *copy_stream_create_state(CustomScan *cscan);
static void copy_stream_begin(CustomScanState *node, EState *estate, int eflags);
static TupleTableSlot *copy_stream_exec(CustomScanState *node);
static TupleTableSlot *copy_stream_next(ScanState *ss);
static bool copy_stream_recheck(ScanState *ss, TupleTableSlot *slot);
static void copy_stream_end(CustomScanState *node);
static void copy_stream_rescan(CustomScanState *node);

static const CustomPathMethods copy_stream_path_methods = {
	.CustomName = "MigrateCopySource",
	.PlanCustomPath = copy_stream_plan,
};

static const CustomScanMethods copy_stream_scan_methods = {
	.CustomName = "MigrateCopySource",
	.CreateCustomScanState = copy_stream_create_state,
};

static const CustomExecMethods copy_stream_exec_methods = {
	.CustomName = "MigrateCopySource",
	.BeginCustomScan = copy_stream_begin,
	.ExecCustomScan = copy_stream_exec,
	.EndCustomScan = copy_stream_end,
	.ReScanCustomScan = copy_stream_rescan,
	.ExplainCustomScan = copy_stream_explain,
};

/* the hint of a connection error: reading rows can fall back to the FDW */
static const char *const hint_for_copy =
"Check the foreign server and user mapping, or SET migrate.copy_source = off to read through the foreign data wrapper.";

/* The option of a foreign table or column, or dflt. */
static char *
option_or(List *options, const char *name, char *dflt)
{
	ListCell   *lc;

	foreach(lc, options)
	{
		DefElem    *d = lfirst(lc);

		if (strcmp(d->defname, name) == 0)
			return defGetString(d);
	}
	return dflt;
}

/*
 * migrate._copy_source(ftable regclass, key text, lo anyelement, hi anyelement)
 * RETURNS SETOF record
 *
 * The rows of foreign table ftable whose column key is in (lo, hi] (lo
 * NULL: no lower bound), every column of the foreign table, in order.
 * (Called only where the planner kept the function scan: see the header.)
 */
Datum
migrate_copy_source_rows(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	CopyReader *rd;
	Datum	   *values;
	bool	   *nulls;

	if (rsinfo == NULL || !IsA(rsinfo, ReturnSetInfo) || rsinfo->expectedDesc == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("migrate._copy_source() needs a column definition list"),
				 errhint("Call it in FROM with AS s(column type, ...), the columns of the foreign table.")));
	rd = copy_reader_begin(PG_GETARG_OID(0), text_to_cstring(PG_GETARG_TEXT_PP(1)),
						   get_fn_expr_argtype(fcinfo->flinfo, 2),
						   PG_GETARG_DATUM(2), PG_ARGISNULL(2), PG_GETARG_DATUM(3), PG_ARGISNULL(3),
						   rsinfo->expectedDesc);
	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
	values = palloc0(sizeof(Datum) * rd->natts);
	nulls = palloc0(sizeof(bool) * rd->natts);
	while (copy_reader_next(rd, values, nulls))
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	copy_reader_end(rd);
	return (Datum) 0;
}

/*
 * Start reading the rows of foreign table relid whose column keycol is in
 * (lo, hi] (lo_null: no lower bound), as the columns of expected (the
 * caller's column list: the foreign table's types, in order).  Checks the
 * caller's SELECT privilege first.  The caller reads the rows with
 * copy_reader_next() and ends with copy_reader_end().
 */
static CopyReader *
copy_reader_begin(Oid relid, const char *keycol, Oid keytype, Datum lo, bool lo_null,
				  Datum hi, bool hi_null, TupleDesc expected)
{
	CopyReader *rd;
	ForeignTable *ft;
	Relation	rel;
	TupleDesc	desc;
	int			natts;
	StringInfoData sql;
	char	   *ftname = get_rel_name(relid);
	Oid			outfn;
	bool		isvarlena;
	AclResult	aclresult;

	if (get_rel_relkind(relid) != RELKIND_FOREIGN_TABLE)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("\"%s\" is not a foreign table", ftname ? ftname : "?"),
				 errhint("migrate._copy_source() reads foreign tables of postgres_fdw.")));
	/* what reading every column of the foreign table would need */
	aclresult = pg_class_aclcheck(relid, GetUserId(), ACL_SELECT);
	if (aclresult != ACLCHECK_OK &&
		pg_attribute_aclcheck_all(relid, GetUserId(), ACL_SELECT, ACLMASK_ALL) != ACLCHECK_OK)
		aclcheck_error(aclresult, OBJECT_FOREIGN_TABLE, ftname);
	if (hi_null)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("migrate._copy_source() of foreign table %s needs an upper bound", ftname)));
	ft = GetForeignTable(relid);

	rel = relation_open(relid, AccessShareLock);
	desc = RelationGetDescr(rel);
	natts = desc->natts;
	/* the caller's column list must be the foreign table's, type for type */
	check_result_type(expected, desc, ftname);
	rd = palloc0(sizeof(CopyReader));
	rd->ftname = ftname;
	rd->natts = natts;
	rd->recv = palloc0(sizeof(FmgrInfo) * natts);
	rd->ioparams = palloc0(sizeof(Oid) * natts);
	rd->typmods = palloc0(sizeof(int32) * natts);
	rd->flens = palloc0(sizeof(int32) * Max(natts, 1));

	/* the remote query: each column cast to the local column's type */
	initStringInfo(&sql);
	appendStringInfoString(&sql, "COPY (SELECT ");
	for (int i = 0; i < natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);
		List	   *colopts = GetForeignColumnOptions(relid, att->attnum);
		Oid			recvfn;

		if (att->attisdropped)
			elog(ERROR, "foreign table %s has a dropped column: not read by COPY", ftname);
		appendStringInfo(&sql, "%sr.%s::%s", i ? ", " : "",
						 quote_identifier(option_or(colopts, "column_name", NameStr(att->attname))),
						 format_type_with_typemod(att->atttypid, att->atttypmod));
		getTypeBinaryInputInfo(att->atttypid, &recvfn, &rd->ioparams[i]);
		fmgr_info(recvfn, &rd->recv[i]);
		rd->typmods[i] = TupleDescAttr(expected, i)->atttypmod;
	}
	appendStringInfo(&sql, " FROM %s.%s AS r WHERE ",
					 quote_identifier(option_or(ft->options, "schema_name",
												get_namespace_name(RelationGetNamespace(rel)))),
					 quote_identifier(option_or(ft->options, "table_name", ftname)));
	getTypeOutputInfo(keytype, &outfn, &isvarlena);
	{
		int			attnum = get_attnum(relid, keycol);
		const char *remote_key;

		if (attnum == InvalidAttrNumber)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_COLUMN),
					 errmsg("column \"%s\" of foreign table %s does not exist", keycol, ftname)));
		remote_key = quote_identifier(option_or(GetForeignColumnOptions(relid, attnum),
												"column_name", pstrdup(keycol)));
		if (!lo_null)
			appendStringInfo(&sql, "r.%s > %s::%s AND ", remote_key,
							 quote_literal_cstr(OidOutputFunctionCall(outfn, lo)),
							 format_type_be(keytype));
		appendStringInfo(&sql, "r.%s <= %s::%s", remote_key,
						 quote_literal_cstr(OidOutputFunctionCall(outfn, hi)),
						 format_type_be(keytype));
	}
	appendStringInfoString(&sql, ") TO STDOUT (FORMAT binary)");
	relation_close(rel, AccessShareLock);

	rd->rowcxt = AllocSetContextCreate(CurrentMemoryContext, "migrate copy row",
									   ALLOCSET_DEFAULT_SIZES);
	rd->values_cxt = rd->rowcxt;
	initStringInfo(&rd->buf);
	/* libpq's message, malloc'd, must not outlive a scan an error ends */
	rd->chunk_free.func = free_chunk;
	rd->chunk_free.arg = rd;
	MemoryContextRegisterResetCallback(CurrentMemoryContext, &rd->chunk_free);

	/* every catalog lookup is done: a use of the connection begins */
	rd->remote = migrate_remote_get(relid, hint_for_copy, MIGRATE_REMOTE_WRAP);
	PG_TRY();
	{
		migrate_remote_copy_begin(rd->remote, sql.data, "start reading");
	}
	PG_CATCH();
	{
		migrate_remote_discard(rd->remote);
		PG_RE_THROW();
	}
	PG_END_TRY();
	pfree(sql.data);
	return rd;
}

/*
 * The values of each column are made by the receive function of the
 * foreign table's column type, so the caller's column list (AS s(...))
 * must name the same types in the same order: a text value returned as a
 * bigint would be a pointer, the other way round a read of any memory.
 * The typmods may differ (the receive function applies the caller's).
 */
static void
check_result_type(TupleDesc expected, TupleDesc desc, const char *ftname)
{
	if (expected->natts != desc->natts)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("the column definition list of migrate._copy_source() has %d columns, foreign table %s has %d",
						expected->natts, ftname, desc->natts),
				 errhint("List every column of the foreign table, in order, with its type.")));
	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute want = TupleDescAttr(desc, i);
		Form_pg_attribute got = TupleDescAttr(expected, i);

		if (got->attisdropped || want->atttypid != got->atttypid)
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("column %d of the column definition list of migrate._copy_source() is %s, column \"%s\" of foreign table %s is %s",
							i + 1, format_type_be(got->atttypid), NameStr(want->attname), ftname,
							format_type_be(want->atttypid)),
					 errhint("List every column of the foreign table, in order, with its type.")));
	}
}

/*
 * Field i of a row, len bytes at data inside the read buffer, by its
 * receive function.  The function reads a StringInfo over the buffer
 * itself, not a copy: as record_recv() does for its fields, the byte after
 * the field is set to the NUL a StringInfo ends with, and put back.
 */
static Datum
receive_field(CopyReader *rd, int i, char *data, int len)
{
	StringInfoData field;
	char		saved = data[len];
	Datum		value;

	field.data = data;
	field.len = len;
	field.maxlen = len + 1;
	field.cursor = 0;
	data[len] = '\0';
	value = ReceiveFunctionCall(&rd->recv[i], &field, rd->ioparams[i], rd->typmods[i]);
	data[len] = saved;
	if (field.cursor != field.len)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
				 errmsg("incorrect binary data format in column %d of %s", i + 1, rd->ftname)));
	return value;
}

/*
 * The row at *cursor of the len bytes at data into values and nulls, if
 * it is all there: then true, *cursor after it.  False at the trailer (it
 * sets rd->trailer) or when more bytes are needed.
 */
static bool
copy_reader_row(CopyReader *rd, char *data, int len, int *cursor, Datum *values, bool *nulls)
{
	int16		nfields;
	int			pos = *cursor + 2;
	int			end;
	MemoryContext old;

	if (!rd->header_done || rd->trailer || len - *cursor < 2)
		return false;
	memcpy(&nfields, data + *cursor, 2);
	nfields = pg_ntoh16(nfields);
	if (nfields == -1)
	{
		rd->trailer = true;
		return false;
	}
	if (nfields != rd->natts)
		elog(ERROR, "COPY from %s: %d fields for %d columns", rd->ftname, nfields, rd->natts);
	/*
	 * Is the whole row here?  The lengths are kept: read again after
	 * receive_field() has put a byte back into the length that follows its
	 * field, each would wait for that store (a third of the reader's time).
	 */
	for (int i = 0; i < rd->natts; i++)
	{
		int32		flen;

		if (len - pos < 4)
			return false;
		memcpy(&flen, data + pos, 4);
		flen = pg_ntoh32(flen);
		rd->flens[i] = flen;
		pos += 4 + (flen > 0 ? flen : 0);
		if (pos > len)
			return false;
	}
	end = pos;

	old = MemoryContextSwitchTo(rd->values_cxt);
	pos = *cursor + 2;
	for (int i = 0; i < rd->natts; i++)
	{
		int32		flen = rd->flens[i];

		pos += 4;
		nulls[i] = flen < 0;
		if (flen < 0)
		{
			values[i] = ReceiveFunctionCall(&rd->recv[i], NULL, rd->ioparams[i], rd->typmods[i]);
			continue;
		}
		values[i] = receive_field(rd, i, data + pos, flen);
		pos += flen;
	}
	MemoryContextSwitchTo(old);
	*cursor = end;
	return true;
}

/*
 * The next row of rd into values and nulls (valid until the next call:
 * they live in rd->values_cxt), or false when the COPY has ended.
 *
 * The server sends a row a message.  A message that comes when nothing is
 * pending is parsed where libpq put it (rd->chunk), not copied into
 * rd->buf first: receive_field()'s NUL after a message's last field is
 * the one libpq ends each message with.  What a message leaves unparsed
 * (the header, a row split across messages) is collected in rd->buf.
 */
static bool
copy_reader_next(CopyReader *rd, Datum *values, bool *nulls)
{
	StringInfo	buf = &rd->buf;

	if (rd->values_cxt == rd->rowcxt)
		MemoryContextReset(rd->rowcxt);
	for (;;)
	{
		char	   *chunk;
		int			len;

		if (rd->chunk)
		{
			if (copy_reader_row(rd, rd->chunk, rd->chunk_len, &rd->chunk_pos, values, nulls))
				return true;
			appendBinaryStringInfo(buf, rd->chunk + rd->chunk_pos, rd->chunk_len - rd->chunk_pos);
			free_chunk(rd);
		}
		if (!rd->header_done && buf->len >= 19)
		{
			int32		extlen;

			if (memcmp(buf->data, "PGCOPY\n\377\r\n\0", 11) != 0)
				elog(ERROR, "COPY from %s: not a binary COPY header", rd->ftname);
			memcpy(&extlen, buf->data + 15, 4);
			extlen = pg_ntoh32(extlen);
			if (buf->len >= 19 + extlen)
			{
				buf->cursor = 19 + extlen;
				rd->header_done = true;
			}
		}
		if (copy_reader_row(rd, buf->data, buf->len, &buf->cursor, values, nulls))
			return true;

		/* more data: keep what is not parsed yet, then add the new */
		CHECK_FOR_INTERRUPTS();
		len = migrate_remote_copy_data(rd->remote, &chunk);
		if (len == -1)
		{
			if (!rd->trailer)
				elog(ERROR, "COPY from %s ended without its trailer", rd->ftname);
			rd->done = true;
			return false;
		}
		if (buf->cursor > 0)
		{
			memmove(buf->data, buf->data + buf->cursor, buf->len - buf->cursor);
			buf->len -= buf->cursor;
			buf->cursor = 0;
		}
		if (buf->len == 0 && rd->header_done)
		{
			rd->chunk = chunk;
			rd->chunk_len = len;
			rd->chunk_pos = 0;
			continue;
		}
		appendBinaryStringInfo(buf, chunk, len);
		PQfreemem(chunk);
	}
}

/* frees the message of libpq's rd parses in place, if any */
static void
free_chunk(void *arg)
{
	CopyReader *rd = (CopyReader *) arg;

	if (rd->chunk)
		PQfreemem(rd->chunk);
	rd->chunk = NULL;
}

/*
 * End reading rd: the connection stays for the next read if the COPY
 * ended, else it is cancelled and dropped (remote.c).
 */
static void
copy_reader_end(CopyReader *rd)
{
	if (rd->done)
		migrate_remote_release(rd->remote);
	else
		migrate_remote_discard(rd->remote);
	free_chunk(rd);
	MemoryContextDelete(rd->rowcxt);
	pfree(rd->buf.data);
}


/*
 * The planner hook (installed by _PG_init): the scan of a call of
 * migrate._copy_source() in FROM becomes the streaming custom scan.
 */
void
migrate_copy_stream_init(void)
{
	prev_set_rel_pathlist = set_rel_pathlist_hook;
	set_rel_pathlist_hook = copy_stream_pathlist;
	prev_planner = planner_hook;
	planner_hook = copy_stream_planner;
	RegisterCustomScanMethods(&copy_stream_scan_methods);
}

/*
 * Is funcid this library's migrate_copy_source_rows, whatever its SQL
 * name?  (Its fmgr_info would not say: a function with SET search_path is
 * called through fmgr_security_definer.)
 */
static bool
is_copy_source(Oid funcid)
{
	HeapTuple	tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(funcid));
	bool		is = false;

	if (!HeapTupleIsValid(tup))
		return false;
	if (((Form_pg_proc) GETSTRUCT(tup))->prolang == ClanguageId)
	{
		bool		srcnull,
					binnull;
		Datum		src = SysCacheGetAttr(PROCOID, tup, Anum_pg_proc_prosrc, &srcnull);
		Datum		bin = SysCacheGetAttr(PROCOID, tup, Anum_pg_proc_probin, &binnull);
		char	   *srcname = srcnull ? "" : TextDatumGetCString(src);

		is = !binnull && strcmp(srcname, "migrate_copy_source_rows") == 0 &&
			load_external_function(TextDatumGetCString(bin), srcname, false, NULL) ==
			(void *) migrate_copy_source_rows;
	}
	ReleaseSysCache(tup);
	return is;
}

/*
 * A streamed COPY holds the server's connection (remote.c: one per user
 * mapping) until its last row, so a statement streams only when it calls
 * migrate._copy_source() once, and is no cursor (whose fetches would leave
 * the connection held between statements).
 */
static PlannedStmt *
copy_stream_planner(Query *parse, const char *query_string, int cursorOptions,
					ParamListInfo boundParams)
{
	bool		saved = copy_stream_statement;
	PlannedStmt *result;
	int			count = 0;

	copy_stream_statement = false;
	if (migrate_copy_stream &&
		(cursorOptions & (CURSOR_OPT_BINARY | CURSOR_OPT_SCROLL | CURSOR_OPT_NO_SCROLL |
						  CURSOR_OPT_INSENSITIVE | CURSOR_OPT_ASENSITIVE | CURSOR_OPT_HOLD |
						  CURSOR_OPT_FAST_PLAN)) == 0)
	{
		(void) count_copy_sources((Node *) parse, &count);
		copy_stream_statement = count == 1;
	}
	PG_TRY();
	{
		if (prev_planner)
			result = prev_planner(parse, query_string, cursorOptions, boundParams);
		else
			result = standard_planner(parse, query_string, cursorOptions, boundParams);
	}
	PG_FINALLY();
	{
		copy_stream_statement = saved;
	}
	PG_END_TRY();
	return result;
}

/* Count the calls of migrate._copy_source() in FROM, subqueries included. */
static bool
count_copy_sources(Node *node, int *count)
{
	if (node == NULL)
		return false;
	if (IsA(node, Query))
		return query_tree_walker((Query *) node, count_copy_sources, count, QTW_EXAMINE_RTES_BEFORE);
	if (IsA(node, RangeTblEntry))
	{
		RangeTblEntry *rte = (RangeTblEntry *) node;
		ListCell   *lc;

		if (rte->rtekind == RTE_FUNCTION)
			foreach(lc, rte->functions)
			{
				Node	   *f = ((RangeTblFunction *) lfirst(lc))->funcexpr;

				if (IsA(f, FuncExpr) && ((FuncExpr *) f)->funcretset &&
					is_copy_source(((FuncExpr *) f)->funcid))
					(*count)++;
			}
		return false;
	}
	return expression_tree_walker(node, count_copy_sources, count);
}

static void
copy_stream_pathlist(PlannerInfo *root, RelOptInfo *rel, Index rti, RangeTblEntry *rte)
{
	RangeTblFunction *rtfunc;
	CustomPath *cpath;
	Bitmapset  *attrs = NULL;
	ListCell   *lc;

	if (prev_set_rel_pathlist)
		prev_set_rel_pathlist(root, rel, rti, rte);
	if (!copy_stream_statement || rte->rtekind != RTE_FUNCTION || IS_DUMMY_REL(rel) ||
		list_length(rte->functions) != 1 || rte->funcordinality ||
		!bms_is_empty(rel->lateral_relids) || rel->reloptkind != RELOPT_BASEREL)
		return;
	rtfunc = linitial(rte->functions);
	if (!IsA(rtfunc->funcexpr, FuncExpr) || rtfunc->funccolcount <= 0 ||
		list_length(rtfunc->funccoltypes) != rtfunc->funccolcount ||
		((FuncExpr *) rtfunc->funcexpr)->funcresulttype != RECORDOID ||
		list_length(((FuncExpr *) rtfunc->funcexpr)->args) != 4)
		return;
	if (!is_copy_source(((FuncExpr *) rtfunc->funcexpr)->funcid))
		return;
	/* the row as a whole (s AS __migrate_src) is the function scan's to build */
	pull_varattnos((Node *) rel->reltarget->exprs, rti, &attrs);
	foreach(lc, rel->baserestrictinfo)
		pull_varattnos((Node *) ((RestrictInfo *) lfirst(lc))->clause, rti, &attrs);
	if (bms_is_member(InvalidAttrNumber - FirstLowInvalidHeapAttributeNumber, attrs))
		return;

	cpath = makeNode(CustomPath);
	cpath->path.pathtype = T_CustomScan;
	cpath->path.parent = rel;
	cpath->path.pathtarget = rel->reltarget;
	cpath->path.rows = rel->rows;
	/* the only way to read it: no other path is kept */
	cpath->path.startup_cost = 0;
	cpath->path.total_cost = rel->rows * cpu_tuple_cost;
	cpath->flags = CUSTOMPATH_SUPPORT_PROJECTION;
	cpath->methods = &copy_stream_path_methods;
	rel->pathlist = NIL;
	rel->partial_pathlist = NIL;
	add_path(rel, &cpath->path);
}

/*
 * The plan: no scanned relation (scanrelid 0), the function's columns as
 * the scan tuple (custom_scan_tlist), its arguments to evaluate when the
 * scan starts (custom_exprs), its OID for the EXECUTE check.
 */
static Plan *
copy_stream_plan(PlannerInfo *root, RelOptInfo *rel, CustomPath *best_path,
				 List *tlist, List *clauses, List *custom_plans)
{
	RangeTblEntry *rte = planner_rt_fetch(rel->relid, root);
	RangeTblFunction *rtfunc = linitial(rte->functions);
	FuncExpr   *fexpr = (FuncExpr *) rtfunc->funcexpr;
	CustomScan *cscan = makeNode(CustomScan);
	List	   *scan_tlist = NIL;
	ListCell   *t,
			   *m,
			   *c;

	(void) best_path;
	(void) custom_plans;
	forthree(t, rtfunc->funccoltypes, m, rtfunc->funccoltypmods, c, rtfunc->funccolcollations)
	{
		AttrNumber	attno = list_length(scan_tlist) + 1;

		scan_tlist = lappend(scan_tlist,
							 makeTargetEntry((Expr *) makeVar(rel->relid, attno, lfirst_oid(t),
															  lfirst_int(m), lfirst_oid(c), 0),
											 attno, NULL, false));
	}
	cscan->scan.plan.targetlist = tlist;
	cscan->scan.plan.qual = extract_actual_clauses(clauses, false);
	cscan->scan.scanrelid = 0;
	cscan->custom_scan_tlist = scan_tlist;
	cscan->custom_exprs = list_make1(copyObject(fexpr));
	cscan->custom_private = list_make2_oid(fexpr->funcid, exprType(lthird(fexpr->args)));
	cscan->methods = &copy_stream_scan_methods;
	return &cscan->scan.plan;
}

static Node *
copy_stream_create_state(CustomScan *cscan)
{
	CopyStreamState *state = (CopyStreamState *) newNode(sizeof(CopyStreamState), T_CustomScanState);

	(void) cscan;
	state->css.methods = &copy_stream_exec_methods;
	return (Node *) state;
}

static void
copy_stream_begin(CustomScanState *node, EState *estate, int eflags)
{
	CopyStreamState *state = (CopyStreamState *) node;
	CustomScan *cscan = (CustomScan *) node->ss.ps.plan;
	Oid			funcid = linitial_oid(cscan->custom_private);
	AclResult	aclresult;

	(void) estate;
	/* what calling the function would check */
	aclresult = pg_proc_aclcheck(funcid, GetUserId(), ACL_EXECUTE);
	if (aclresult != ACLCHECK_OK)
		aclcheck_error(aclresult, OBJECT_FUNCTION, get_func_name(funcid));
	state->keytype = lsecond_oid(cscan->custom_private);
	if (eflags & EXEC_FLAG_EXPLAIN_ONLY)
		return;
	state->args = ExecInitExprList(((FuncExpr *) linitial(cscan->custom_exprs))->args, &node->ss.ps);
}

static TupleTableSlot *
copy_stream_exec(CustomScanState *node)
{
	return ExecScan(&node->ss, copy_stream_next, copy_stream_recheck);
}

/* The next row, the COPY started on the first call. */
static TupleTableSlot *
copy_stream_next(ScanState *ss)
{
	CopyStreamState *state = (CopyStreamState *) ss;
	TupleTableSlot *slot = ss->ss_ScanTupleSlot;

	if (state->reader == NULL)
	{
		ExprContext *econtext = ss->ps.ps_ExprContext;
		Datum		args[4];
		bool		nulls[4];
		MemoryContext old;

		if (list_length(state->args) != 4)
			elog(ERROR, "migrate._copy_source() takes 4 arguments, the plan has %d",
				 list_length(state->args));
		for (int i = 0; i < 4; i++)
			args[i] = ExecEvalExpr(list_nth(state->args, i), econtext, &nulls[i]);
		if (nulls[0] || nulls[1])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("migrate._copy_source() needs a foreign table and its key column")));
		/* the reader lives as long as the scan */
		old = MemoryContextSwitchTo(ss->ps.state->es_query_cxt);
		state->reader = copy_reader_begin(DatumGetObjectId(args[0]), TextDatumGetCString(args[1]),
										  state->keytype, args[2], nulls[2], args[3], nulls[3],
										  slot->tts_tupleDescriptor);
		/* a row lives until ExecScan() asks for the next: it resets this */
		state->reader->values_cxt = econtext->ecxt_per_tuple_memory;
		MemoryContextSwitchTo(old);
	}
	ExecClearTuple(slot);
	if (!state->reader->done &&
		copy_reader_next(state->reader, slot->tts_values, slot->tts_isnull))
		ExecStoreVirtualTuple(slot);
	return slot;
}

static bool
copy_stream_recheck(ScanState *ss, TupleTableSlot *slot)
{
	(void) ss;
	(void) slot;
	return true;
}

static void
copy_stream_end(CustomScanState *node)
{
	CopyStreamState *state = (CopyStreamState *) node;

	if (state->reader)
		copy_reader_end(state->reader);
	state->reader = NULL;
}

/* EXPLAIN VERBOSE shows the call, as for the function scan. */
static void
copy_stream_explain(CustomScanState *node, List *ancestors, ExplainState *es)
{
	CustomScan *cscan = (CustomScan *) node->ss.ps.plan;
	List	   *context;

	if (!es->verbose)
		return;
	context = set_deparse_context_plan(es->deparse_cxt, &cscan->scan.plan, ancestors);
	ExplainPropertyText("Function Call",
						deparse_expression(linitial(cscan->custom_exprs), context, false, false),
						es);
}

/* Read again from the start: a new COPY (the first row asked starts it). */
static void
copy_stream_rescan(CustomScanState *node)
{
	copy_stream_end(node);
}

/*
 * The source column a mapping's expression is, when it is one as it is
 * (s.<column>, parsed as the SQL parser would), else NULL.
 */
char *
migrate_mapped_source_column(const char *expr)
{
	List	   *names;

	if (!SplitIdentifierString(pstrdup(expr), '.', &names) ||
		list_length(names) != 2 || strcmp(linitial(names), "s") != 0)
		return NULL;
	return lsecond(names);
}

/*
 * Is every column of tl mapped from a source column as it is (s.<column>)?
 * Then load.c lets the planner pull the mapped row up (no OFFSET 0).
 */
bool
migrate_copy_source_as_columns(MigrateTableLoad *tl)
{
	ListCell   *e,
			   *t;

	forboth(e, tl->exprs, t, tl->types)
		if (lfirst(t) != NULL || migrate_mapped_source_column(lfirst(e)) == NULL)
			return false;
	return true;
}
