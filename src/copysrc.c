/*-------------------------------------------------------------------------
 *
 * copysrc.c
 *	  A binary COPY reader for postgres_fdw sources: the rows of one key
 *	  range of a foreign table, as a set-returning function the batch
 *	  statement reads instead of the foreign table.
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
 * column to that type, so the binary formats agree.  Rows go to the
 * tuplestore of a materialized SRF (spills to disk past work_mem: memory
 * stays bounded by the batch).  Waiting for the source answers cancel
 * requests and the run's stop check; an error in the middle of the COPY
 * drops the connection (remote.c), so the next batch reads on a new one.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/relation.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "commands/defrem.h"
#include "foreign/foreign.h"
#include "funcapi.h"
#include "libpq/pqformat.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/syscache.h"

#include "migrate.h"
#include "remote.h"

PG_FUNCTION_INFO_V1(migrate_copy_source_rows);

static char *option_or(List *options, const char *name, char *dflt);
static void check_result_type(ReturnSetInfo *rsinfo, TupleDesc desc, const char *ftname);
static void read_rows(MigrateRemote *r, ReturnSetInfo *rsinfo, FmgrInfo *recv, Oid *ioparams,
					  int natts, const char *ftname);

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
 */
Datum
migrate_copy_source_rows(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Oid			relid = PG_GETARG_OID(0);
	char	   *keycol = text_to_cstring(PG_GETARG_TEXT_PP(1));
	Oid			keytype = get_fn_expr_argtype(fcinfo->flinfo, 2);
	ForeignTable *ft;
	Relation	rel;
	TupleDesc	desc;
	int			natts;
	StringInfoData sql;
	MigrateRemote *r;
	FmgrInfo   *recv;
	Oid		   *ioparams;
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
	ft = GetForeignTable(relid);

	rel = relation_open(relid, AccessShareLock);
	desc = RelationGetDescr(rel);
	natts = desc->natts;
	/* the caller's column list must be the foreign table's, type for type */
	check_result_type(rsinfo, desc, ftname);
	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
	recv = palloc0(sizeof(FmgrInfo) * natts);
	ioparams = palloc0(sizeof(Oid) * natts);

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
		getTypeBinaryInputInfo(att->atttypid, &recvfn, &ioparams[i]);
		fmgr_info(recvfn, &recv[i]);
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
												"column_name", keycol));
		if (!PG_ARGISNULL(2))
			appendStringInfo(&sql, "r.%s > %s::%s AND ", remote_key,
							 quote_literal_cstr(OidOutputFunctionCall(outfn, PG_GETARG_DATUM(2))),
							 format_type_be(keytype));
		if (PG_ARGISNULL(3))
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("migrate._copy_source() of foreign table %s needs an upper bound", ftname)));
		appendStringInfo(&sql, "r.%s <= %s::%s", remote_key,
						 quote_literal_cstr(OidOutputFunctionCall(outfn, PG_GETARG_DATUM(3))),
						 format_type_be(keytype));
	}
	appendStringInfoString(&sql, ") TO STDOUT (FORMAT binary)");
	relation_close(rel, AccessShareLock);

	/* every catalog lookup is done: a use of the connection begins */
	r = migrate_remote_get(relid, hint_for_copy, MIGRATE_REMOTE_WRAP);
	PG_TRY();
	{
		migrate_remote_copy_begin(r, sql.data, "start reading");
		read_rows(r, rsinfo, recv, ioparams, natts, ftname);
	}
	PG_CATCH();
	{
		/* a bad row, or a failed conversion: the COPY is still running */
		migrate_remote_discard(r);
		PG_RE_THROW();
	}
	PG_END_TRY();
	migrate_remote_release(r);
	return (Datum) 0;
}

/*
 * The values of each column are made by the receive function of the
 * foreign table's column type, so the caller's column list (AS s(...))
 * must name the same types in the same order: a text value returned as a
 * bigint would be a pointer, the other way round a read of any memory.
 * The typmods may differ (the receive function applies the caller's).
 */
static void
check_result_type(ReturnSetInfo *rsinfo, TupleDesc desc, const char *ftname)
{
	TupleDesc	expected;

	if (rsinfo == NULL || !IsA(rsinfo, ReturnSetInfo) || rsinfo->expectedDesc == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("migrate._copy_source() of foreign table %s needs a column definition list", ftname),
				 errhint("Call it in FROM with AS s(column type, ...), the columns of the foreign table.")));
	expected = rsinfo->expectedDesc;
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
 * Read the binary COPY started on r to its end, each row converted with
 * the receive functions recv into the tuplestore of rsinfo.
 */
static void
read_rows(MigrateRemote *r, ReturnSetInfo *rsinfo, FmgrInfo *recv, Oid *ioparams,
		  int natts, const char *ftname)
{
	Datum	   *values = palloc0(sizeof(Datum) * natts);
	bool	   *nulls = palloc0(sizeof(bool) * natts);
	StringInfoData buf;
	StringInfoData field;
	bool		header_done = false;
	bool		trailer = false;
	MemoryContext rowcxt;

	rowcxt = AllocSetContextCreate(CurrentMemoryContext, "migrate copy row",
								   ALLOCSET_DEFAULT_SIZES);
	initStringInfo(&buf);
	initStringInfo(&field);
	for (;;)
	{
		char	   *chunk;
		int			len = migrate_remote_copy_data(r, &chunk);

		CHECK_FOR_INTERRUPTS();
		if (len == -1)
			break;				/* the COPY is done */
		/* keep what is not parsed yet, then add the new data */
		if (buf.cursor > 0)
		{
			memmove(buf.data, buf.data + buf.cursor, buf.len - buf.cursor);
			buf.len -= buf.cursor;
			buf.cursor = 0;
		}
		appendBinaryStringInfo(&buf, chunk, len);
		PQfreemem(chunk);

		if (!header_done)
		{
			int32		extlen;

			if (buf.len < 19)
				continue;
			if (memcmp(buf.data, "PGCOPY\n\377\r\n\0", 11) != 0)
				elog(ERROR, "COPY from %s: not a binary COPY header", ftname);
			memcpy(&extlen, buf.data + 15, 4);
			extlen = pg_ntoh32(extlen);
			if (buf.len < 19 + extlen)
				continue;
			buf.cursor = 19 + extlen;
			header_done = true;
		}

		/* every complete row in the buffer */
		while (!trailer)
		{
			int			start = buf.cursor;
			int16		nfields;
			bool		complete = true;
			MemoryContext old;

			if (buf.len - buf.cursor < 2)
				break;
			memcpy(&nfields, buf.data + buf.cursor, 2);
			nfields = pg_ntoh16(nfields);
			if (nfields == -1)
			{
				trailer = true;
				break;
			}
			if (nfields != natts)
				elog(ERROR, "COPY from %s: %d fields for %d columns", ftname, nfields, natts);
			/* is the whole row here? */
			{
				int			pos = buf.cursor + 2;

				for (int i = 0; i < natts && complete; i++)
				{
					int32		flen;

					if (buf.len - pos < 4)
						complete = false;
					else
					{
						memcpy(&flen, buf.data + pos, 4);
						flen = pg_ntoh32(flen);
						pos += 4 + (flen > 0 ? flen : 0);
						if (pos > buf.len)
							complete = false;
					}
				}
			}
			if (!complete)
			{
				buf.cursor = start;
				break;
			}
			buf.cursor += 2;
			old = MemoryContextSwitchTo(rowcxt);
			for (int i = 0; i < natts; i++)
			{
				int32		flen;
				Form_pg_attribute att = TupleDescAttr(rsinfo->setDesc, i);

				memcpy(&flen, buf.data + buf.cursor, 4);
				flen = pg_ntoh32(flen);
				buf.cursor += 4;
				if (flen < 0)
				{
					values[i] = ReceiveFunctionCall(&recv[i], NULL, ioparams[i], att->atttypmod);
					nulls[i] = true;
					continue;
				}
				resetStringInfo(&field);
				appendBinaryStringInfo(&field, buf.data + buf.cursor, flen);
				buf.cursor += flen;
				values[i] = ReceiveFunctionCall(&recv[i], &field, ioparams[i], att->atttypmod);
				if (field.cursor != field.len)
					ereport(ERROR,
							(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
							 errmsg("incorrect binary data format in column %d of %s", i + 1, ftname)));
				nulls[i] = false;
			}
			MemoryContextSwitchTo(old);
			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
			MemoryContextReset(rowcxt);
		}
	}
	if (!trailer)
		elog(ERROR, "COPY from %s ended without its trailer", ftname);
	MemoryContextDelete(rowcxt);
	pfree(buf.data);
	pfree(field.data);
}
