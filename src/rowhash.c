/*-------------------------------------------------------------------------
 *
 * rowhash.c
 *	  The verify's hash of a written row, computed in C by the multi-insert
 *	  receiver instead of as an expression in the batch statement.
 *
 * A table loaded into an empty target keeps run_table.loaded_checksum, the
 * sum of the verify's row hash over every row written (load.c), so that
 * migrate_verify(reread => false) can compare the target with it.  On the
 * SQL path the hash is the expression verify.sql builds
 * (_verify_sql's loaded_row_hash), evaluated per row in the batch
 * statement's WHERE clause and summed by migrate._loaded().  That
 * expression is some 40 interpreted steps a row: 15 % of a one-worker load
 * of a ten-column table (issue 16).  Here the same hash is computed from
 * the row the receiver writes, with the same functions in the same order:
 *
 *	 hash_k1(k1, hash_k2(k2, ... (h_c1 # h_c2 # ...)))
 *
 * where h_c is hash_c(value, position) for a non-key column and its
 * position when the value is NULL (verify.sql, _verify_sql).  Each hash_c
 * is taken from verify.sql's own template for the column's type
 * (migrate._hash_template), so both sides always agree on the function:
 * the extended hash function of the type's default hash opclass, called
 * with the column's collation, or one of the four rewrites the template
 * gives for date, timestamptz, boolean and bytea.  A column whose template
 * is the text-output fallback (its type has no hash function), or names a
 * function not resolved to exactly one, makes the whole table keep the SQL
 * expression: migrate_row_hash_describe() returns NULL.
 *
 * The values hashed are those written, after the INSERT's assignment
 * coercion, i.e. the ones the verify's target side (t.<col>) hashes.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/table.h"
#include "access/xact.h"
#include "catalog/pg_collation.h"
#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/fmgroids.h"
#include "utils/fmgrprotos.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/timestamp.h"

#include "migrate.h"

/* how a value is turned into what its hash function takes */
typedef enum RowHashConvert
{
	ROWHASH_AS_IS,				/* the opclass's function, with the value */
	ROWHASH_INT8,				/* hashint8extended, timestamp_hash_extended */
	ROWHASH_INT4,				/* hashint4extended */
	ROWHASH_TEXT,				/* hashtextextended, deterministic collation */
	ROWHASH_DATE,				/* timestamp_hash_extended(value::timestamp) */
	ROWHASH_TIMESTAMPTZ,		/* timestamp_hash_extended(timezone('00:00', v)) */
	ROWHASH_BOOL,				/* hashint4extended(value::integer) */
	ROWHASH_BYTEA				/* hashtextextended(md5(value)) */
} RowHashConvert;

typedef struct RowHashColumn
{
	int			attno;			/* 0-based attribute of the target */
	int64		position;		/* the column's position among the mapped */
	RowHashConvert convert;
	Oid			collation;		/* of the column (its hash function's) */
	FmgrInfo	fn;				/* ROWHASH_AS_IS: the hash function */
} RowHashColumn;

struct MigrateRowHash
{
	int			nkeys;
	RowHashColumn *keys;		/* in the key's order */
	int			ncols;
	RowHashColumn *cols;		/* the others */
	MemoryContext cxt;			/* what the hash functions allocate, per row */
};

static MigrateRowHash *describe(const char *plan, Relation target, MemoryContext cxt);

/*
 * A table that was empty when the run started (run_table.undo 'empty')
 * ends up holding exactly the rows the run wrote, so the sum of the
 * verify's row hashes over them, kept with each checkpoint, is the
 * target's checksum a verify can compare with, without reading the source
 * again (migrate_verify(reread => false)).  The hash is
 * migrate._verify_sql's over the mapped row m: tl->loaded_hash, the SQL
 * expression, and on the multi-insert path tl->row_hash, its C form.  A
 * table the verify could not describe is simply not hashed: the verify
 * reports that itself.  Called by load.c when a range begins.
 */
void
migrate_row_hash_describe_load(MigrateTableLoad *tl, const char *plan)
{
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	Oid			argtypes[3] = {TEXTOID, OIDOID, INT8OID};
	Datum		args[3] = {CStringGetTextDatum(plan), ObjectIdGetDatum(tl->target), Int64GetDatum(tl->run_id)};

	tl->loaded_hash = NULL;
	tl->row_hash = NULL;
	if (tl->run_id == 0 || tl->dry_run || tl->returning_into)
		return;
	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(cxt);
	PG_TRY();
	{
		bool		isnull = true;
		int			ret = SPI_execute_with_args("SELECT migrate._verify_sql($1, $2::pg_catalog.regclass) ->> 'loaded_row_hash'"
												" FROM migrate.run_table WHERE run_id = $3 AND target = $2 AND undo = 'empty'",
												3, argtypes, args, NULL, true, 1);
		Datum		d;

		if (ret != SPI_OK_SELECT)
			elog(ERROR, "reading migrate.run_table failed: %s", SPI_result_code_string(ret));
		d = SPI_processed == 1 ? SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull) : (Datum) 0;
		if (!isnull)
			tl->loaded_hash = MemoryContextStrdup(cxt, TextDatumGetCString(d));
		/* the multi-insert receiver hashes the rows it writes itself */
		MemoryContextSwitchTo(cxt);
		if (tl->loaded_hash && tl->multi_insert)
			tl->row_hash = migrate_row_hash_describe(plan, tl->target);
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(cxt);
		CurrentResourceOwner = owner;
	}
	PG_CATCH();
	{
		ErrorData  *edata = migrate_abort_subxact(cxt, owner);

		elog(DEBUG1, "%s: no checksum while loading (%s)", tl->target_name, edata->message);
		FreeErrorData(edata);
		tl->loaded_hash = NULL;
		tl->row_hash = NULL;
	}
	PG_END_TRY();
}

/* the templates of verify.sql's migrate._hash_template() it rewrites */
static const struct
{
	const char *template;
	RowHashConvert convert;
}			rewrites[] =
{
	{"pg_catalog.timestamp_hash_extended((%s)::timestamp without time zone, %s)", ROWHASH_DATE},
	{"pg_catalog.timestamp_hash_extended(pg_catalog.timezone('00:00'::interval, %s), %s)", ROWHASH_TIMESTAMPTZ},
	{"pg_catalog.hashint4extended((%s)::integer, %s)", ROWHASH_BOOL},
	{"pg_catalog.hashtextextended(pg_catalog.md5(%s), %s)", ROWHASH_BYTEA},
};

/*
 * The row hash of plan's table target as the receiver computes it, or
 * NULL when some column needs the SQL expression.  SPI connected, in the
 * memory context the description is to live in.
 */
MigrateRowHash *
migrate_row_hash_describe(const char *plan, Oid target)
{
	MemoryContext cxt = CurrentMemoryContext;
	Relation	rel = table_open(target, AccessShareLock);
	MigrateRowHash *h = describe(plan, rel, cxt);

	table_close(rel, AccessShareLock);
	return h;
}

static MigrateRowHash *
describe(const char *plan, Relation target, MemoryContext cxt)
{
	TupleDesc	desc = RelationGetDescr(target);
	Oid			argtypes[2] = {TEXTOID, OIDOID};
	Datum		args[2] = {CStringGetTextDatum(plan), ObjectIdGetDatum(RelationGetRelid(target))};
	MigrateRowHash *h;
	bool		isnull;
	int			ret;

	/*
	 * The mapped columns in _verify_sql's order (their positions), each
	 * with its template, the function a plain template names (NULL when
	 * not exactly one), and its place in the key (NULL: not a key column).
	 */
	ret = SPI_execute_with_args("SELECT v.column_name::pg_catalog.text, v.hash_template, v.ordinality,"
								"       pg_catalog.to_regproc(pg_catalog.substring(v.hash_template, '^(.*)\\(%s, %s\\)$'))::pg_catalog.oid,"
								"       pg_catalog.array_position(tm.key, v.column_name), pg_catalog.cardinality(tm.key)"
								"  FROM migrate._verify_columns($1, $2) WITH ORDINALITY AS v,"
								"       migrate.table_map tm"
								" WHERE tm.plan = $1 AND tm.target = $2 ORDER BY v.ordinality",
								2, argtypes, args, NULL, true, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "reading the verify's columns of %s failed: %s",
			 RelationGetRelationName(target), SPI_result_code_string(ret));
	MemoryContextSwitchTo(cxt);

	if (SPI_processed == 0)
		return NULL;
	h = palloc0(sizeof(MigrateRowHash));
	h->nkeys = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 6, &isnull));
	h->keys = palloc0(sizeof(RowHashColumn) * Max(h->nkeys, 1));
	h->cols = palloc0(sizeof(RowHashColumn) * Max(SPI_processed, 1));
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	rdesc = SPI_tuptable->tupdesc;
		char	   *name = SPI_getvalue(tup, rdesc, 1);
		char	   *template = SPI_getvalue(tup, rdesc, 2);
		bool		fn_null,
					key_null;
		int64		position = DatumGetInt64(SPI_getbinval(tup, rdesc, 3, &isnull));
		Oid			fn = DatumGetObjectId(SPI_getbinval(tup, rdesc, 4, &fn_null));
		int			key_pos = DatumGetInt32(SPI_getbinval(tup, rdesc, 5, &key_null));
		RowHashColumn *c;
		int			attno = -1;

		for (int a = 0; a < desc->natts; a++)
		{
			Form_pg_attribute att = TupleDescAttr(desc, a);

			if (!att->attisdropped && strcmp(NameStr(att->attname), name) == 0)
				attno = a;
		}
		if (attno < 0 || template == NULL || (!key_null && (key_pos < 1 || key_pos > h->nkeys)))
			return NULL;
		c = key_null ? &h->cols[h->ncols++] : &h->keys[key_pos - 1];
		c->attno = attno;
		c->position = position;
		c->collation = TupleDescAttr(desc, attno)->attcollation;
		c->convert = ROWHASH_AS_IS;
		for (int r = 0; r < (int) lengthof(rewrites); r++)
			if (strcmp(template, rewrites[r].template) == 0)
				c->convert = rewrites[r].convert;
		if (c->convert != ROWHASH_AS_IS)
			continue;
		/* the fallback (hash of the text output) and anything else: SQL */
		if (fn_null || strcmp(template, "pg_catalog.hashtextextended((%s)::text, %s)") == 0)
			return NULL;
		fmgr_info(fn, &c->fn);
		/* the commonest functions, as they compute it, without the call */
		if (fn == F_HASHINT8EXTENDED || fn == F_TIMESTAMP_HASH_EXTENDED)
			c->convert = ROWHASH_INT8;
		else if (fn == F_HASHINT4EXTENDED)
			c->convert = ROWHASH_INT4;
		else if (fn == F_HASHTEXTEXTENDED && OidIsValid(c->collation) &&
				 get_collation_isdeterministic(c->collation))
			c->convert = ROWHASH_TEXT;
	}
	/* every key column is among the mapped ones */
	for (int k = 0; k < h->nkeys; k++)
		if (h->keys[k].position == 0)
			return NULL;
	h->cxt = AllocSetContextCreate(cxt, "migrate row hash", ALLOCSET_SMALL_SIZES);
	return h;
}

/* hashint8extended() (utils/adt/hashfunc.c) */
static inline int64
int8_hash(int64 value, int64 seed)
{
	uint32		lohalf = (uint32) value;
	uint32		hihalf = (uint32) (value >> 32);

	lohalf ^= (value >= 0) ? hihalf : ~hihalf;
	return DatumGetInt64(hash_uint32_extended(lohalf, (uint64) seed));
}

/* hash_c(value, seed) of one column */
static int64
column_hash(const RowHashColumn *c, Datum value, int64 seed)
{
	Datum		s = Int64GetDatum(seed);

	switch (c->convert)
	{
		case ROWHASH_AS_IS:
			return DatumGetInt64(FunctionCall2Coll((FmgrInfo *) &c->fn, c->collation, value, s));
		case ROWHASH_INT8:
			return int8_hash(DatumGetInt64(value), seed);
		case ROWHASH_INT4:
			return DatumGetInt64(hash_uint32_extended((uint32) DatumGetInt32(value), (uint64) seed));
		case ROWHASH_TEXT:
			{
				text	   *t = DatumGetTextPP(value);

				/* hashtextextended() with a deterministic collation */
				return DatumGetInt64(hash_any_extended((unsigned char *) VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t),
													   (uint64) seed));
			}
		case ROWHASH_DATE:
			return int8_hash(DatumGetTimestamp(DirectFunctionCall1(date_timestamp, value)), seed);
		case ROWHASH_TIMESTAMPTZ:
			{
				Interval	utc = {0};

				return int8_hash(DatumGetTimestamp(DirectFunctionCall2(timestamptz_izone,
																	   IntervalPGetDatum(&utc), value)),
								 seed);
			}
		case ROWHASH_BOOL:
			return DatumGetInt64(hash_uint32_extended(DatumGetBool(value) ? 1 : 0, (uint64) seed));
		case ROWHASH_BYTEA:
			/* md5() of bytea is text of the default collation */
			return DatumGetInt64(DirectFunctionCall2Coll(hashtextextended, DEFAULT_COLLATION_OID,
														 DirectFunctionCall1(md5_bytea, value), s));
	}
	pg_unreachable();
}

/* The verify's hash of the row in values/isnull (by target attribute). */
int64
migrate_row_hash(MigrateRowHash *h, Datum *values, bool *isnull)
{
	MemoryContext old;
	int64		hash = 0;

	MemoryContextReset(h->cxt);
	old = MemoryContextSwitchTo(h->cxt);
	for (int i = 0; i < h->ncols; i++)
	{
		RowHashColumn *c = &h->cols[i];

		hash ^= isnull[c->attno] ? c->position : column_hash(c, values[c->attno], c->position);
	}
	for (int k = h->nkeys - 1; k >= 0; k--)
	{
		RowHashColumn *c = &h->keys[k];

		/* as migrate._loaded() says of the expression's NULL */
		if (isnull[c->attno])
			elog(ERROR, "migrate._loaded(): the row hash is NULL");
		hash = column_hash(c, values[c->attno], hash);
	}
	MemoryContextSwitchTo(old);
	return hash;
}
