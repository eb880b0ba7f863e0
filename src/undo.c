/*-------------------------------------------------------------------------
 *
 * undo.c
 *	  The undo log of a run's writes (DESIGN.md "Strategies", rollback):
 *	  whether a table of a run keeps one (run_table.undo, decided when the
 *	  run is planned), and how each write of the run records its undo rows
 *	  in its own transaction.
 *
 * run_table.undo is 'empty' when the target has no row when the run is
 * planned (the rollback empties it: nothing is logged), 'off' for dry
 * runs and when the plan's or the table's options say undo = 'off', and
 * 'log' otherwise.  A resume keeps the decision (planning happens once).
 *
 * Under 'log' the run has an undo table for the target (sql/run.sql
 * migrate._undo_create: migrate.undo_<run>_<target oid>, the target's
 * columns as they were, owned by the extension's owner, readable by nobody
 * else), and every write of the run records into it, as tuples of that
 * table, without a second search for any row (no index scan):
 *	 - an upsert's overwritten row: the batch statement's ON CONFLICT DO
 *	   UPDATE ... WHERE migrate._undo_pre(ROW(t.ctid)) hands the existing
 *	   row's tid (of a partitioned target, the row itself: t) to
 *	   migrate_undo_pre() once it is locked, right before it is updated (the
 *	   WHERE of ON CONFLICT is evaluated once per row the statement
 *	   updates: after a concurrent update PostgreSQL retries without it);
 *	 - a key the statement inserted: its RETURNING keys, "inserted"
 *	   (xmax = 0) go to a DestReceiver here, not to SPI;
 *	 - a row a sync deletes: DELETE ... RETURNING t, to the same receiver.
 * Each entry carries the xmin the write left (the statement's
 * subtransaction's xid; NULL: deleted) and its order (top transaction id,
 * a counter).  Entries are formed in place, as tuples of the undo table,
 * in one buffer kept from batch to batch (a batch's rows: bounded by
 * batch_size; a palloc per row in memory fresh every batch was half of the
 * undo log's cost of an upsert, in perf; under a batch_bytes budget, which
 * measures the memory each batch takes anew, it is freed after each batch),
 * dropped with a failed statement, and written by migrate_undo_flush() with
 * heap_multi_insert() before the batch commits: undo rows and the rows they
 * undo commit together.  When the undo table's columns are the target's
 * (undo_layout), a row's data is copied after our columns byte for byte
 * instead of being deformed and formed again.  Plain inserts and
 * skip_existing overwrite nothing and record only keys.
 *
 * Runs made before 0.8 kept one migrate.undo row per key (key and row as
 * text); migrate._undo_log() reads both kinds for the rollback.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/detoast.h"
#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/transam.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_am.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "nodes/makefuncs.h"
#include "nodes/params.h"
#include "storage/bufmgr.h"
#include "tcop/dest.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/rel.h"
#include "utils/syscache.h"
#include "utils/typcache.h"

#include "migrate.h"

/* the undo table's own columns, before the target's */
#define UNDO_OP		0			/* "char": 'u' overwritten, 'd' deleted, 'i' inserted */
#define UNDO_POST	1			/* xid the write left; NULL: deleted */
#define UNDO_TXN	2			/* bigint: the top transaction's full id */
#define UNDO_ORD	3			/* bigint: order within the session */
#define UNDO_NOWN	4

/* multi-insert this many undo rows at a time */
#define UNDO_FLUSH_CHUNK	1000

/* a batch's buffer of undo rows is kept for the next batch up to this size */
#define UNDO_KEEP_BYTES		(64 * 1024 * 1024)

typedef struct MigrateUndo
{
	Oid			relid;			/* the run's undo table of the target */
	TupleDesc	desc;			/* its descriptor */
	Oid			rowtype;		/* the target's row type */
	TupleDesc	tdesc;			/* the target's descriptor (dropped columns too) */
	int		   *map;			/* target attribute i -> undo attribute, or -1 */
	int		   *keymap;			/* key column i -> undo attribute */
	int			nkeys;
	Datum	   *tvalues;		/* deformed target row */
	bool	   *tnulls;
	Datum	   *uvalues;		/* the undo row being formed */
	bool	   *unulls;
	int64		ord;
	bool		copy_rows;		/* undo columns after ours are the target's, in
								 * order: a row's data is copied as it is */
	int			own_len;		/* the data of our columns (NULL post or not) */
	int			own_off[UNDO_NOWN]; /* offset of each of our columns */
	bool		by_tid;			/* upserts pass the existing row's tid: the
								 * target is a heap table (not partitioned) */
	int32		tid_typmod;		/* of ROW(t.ctid) (migrate_undo_pre), or -1 */
	Relation	trel;			/* the target, open during a statement that
								 * passes tids (migrate_undo_execute) */
	bool		keep_buf;		/* buf kept from batch to batch: not under a
								 * batch_bytes budget, which measures the
								 * memory a batch takes anew */
	MemoryContext cxt;			/* buf and offsets */
	char	   *buf;			/* the batch's undo rows, formed in place */
	Size		buflen;
	Size		bufcap;
	Size	   *offsets;		/* entry i's tuple header at buf + offsets[i] */
	int			nentries;
	int			maxentries;
} MigrateUndo;

/* the undo log the running statement records into (migrate_undo_execute) */
static MigrateUndo *armed = NULL;

typedef struct UndoDest
{
	DestReceiver pub;
	MigrateUndo *undo;
	char		mode;			/* 'w': keys, inserted; 'd': the deleted row */
} UndoDest;

static void undo_layout(MigrateUndo *u);
static void undo_deform_row(MigrateUndo *u, HeapTuple tuple, TupleDesc tdesc, char op);

PG_FUNCTION_INFO_V1(migrate_undo_pre);

/*
 * Decide run_table.undo of target for the run being planned (the worker
 * runs as the plan's owner).  In the planning transaction.
 */
void
migrate_undo_decide(MigrateWork *w, Oid target)
{
	Oid			argtypes[2] = {INT8OID, OIDOID};
	Datum		args[2] = {Int64GetDatum(w->run_id), ObjectIdGetDatum(target)};
	bool		isnull;
	bool		off;
	bool		keyless;
	const char *undo = "off";
	int			ret;

	ret = SPI_execute_with_args("SELECT coalesce(m.options->>'undo', p.options->>'undo', '') = 'off',"
								"       pg_catalog.cardinality(m.key) = 0"
								"  FROM migrate.run r JOIN migrate.plan p ON p.plan_name = r.plan"
								"  JOIN migrate.table_map m ON m.plan = r.plan AND m.target = $2"
								" WHERE r.run_id = $1",
								2, argtypes, args, NULL, true, 1);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "reading the undo option failed: %s", SPI_result_code_string(ret));
	off = SPI_processed != 1 ||
		DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	keyless = SPI_processed == 1 &&
		DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
	if (!off && !w->dry_run)
	{
		char	   *nsp = get_namespace_name(get_rel_namespace(target));
		char	   *rel = get_rel_name(target);

		if (nsp == NULL || rel == NULL)
			elog(ERROR, "table %u of run " INT64_FORMAT " no longer exists", target, w->run_id);
		ret = SPI_execute(psprintf("SELECT EXISTS (SELECT 1 FROM %s)", quote_qualified_identifier(nsp, rel)),
						  true, 1);
		if (ret != SPI_OK_SELECT || SPI_processed != 1)
			elog(ERROR, "probing table %u for rows failed: %s", target, SPI_result_code_string(ret));
		undo = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull))
			? "log" : "empty";
		/* a keyless table (a file source) has no key to log its writes by */
		if (strcmp(undo, "log") == 0 && keyless)
			undo = "off";
	}
	migrate_catalog_table_undo(w->run_id, target, undo);
	if (strcmp(undo, "log") == 0)
		(void) migrate_catalog_undo_create(w->run_id, target);
}

/* The undo table's layout against the target's: which column goes where. */
static MigrateUndo *
undo_build(MigrateTableLoad *tl, Oid relid)
{
	MigrateUndo *u = palloc0(sizeof(MigrateUndo));
	Relation	urel = table_open(relid, AccessShareLock);
	Relation	trel = table_open(tl->target, AccessShareLock);
	ListCell   *lc;

	u->relid = relid;
	u->desc = CreateTupleDescCopy(RelationGetDescr(urel));
	u->tdesc = CreateTupleDescCopy(RelationGetDescr(trel));
	u->rowtype = RelationGetForm(trel)->reltype;
	u->by_tid = trel->rd_rel->relkind == RELKIND_RELATION &&
		trel->rd_rel->relam == HEAP_TABLE_AM_OID;
	table_close(trel, AccessShareLock);
	table_close(urel, AccessShareLock);

	u->map = palloc(sizeof(int) * Max(u->tdesc->natts, 1));
	for (int i = 0; i < u->tdesc->natts; i++)
	{
		Form_pg_attribute ta = TupleDescAttr(u->tdesc, i);

		u->map[i] = -1;
		for (int j = UNDO_NOWN; j < u->desc->natts && !ta->attisdropped; j++)
		{
			Form_pg_attribute ua = TupleDescAttr(u->desc, j);

			if (!ua->attisdropped && ua->atttypid == ta->atttypid &&
				strcmp(NameStr(ua->attname), NameStr(ta->attname)) == 0)
				u->map[i] = j;
		}
		/* a column added or retyped since the run was planned: its old values would be lost */
		if (u->map[i] < 0 && !ta->attisdropped)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("column \"%s\" of %s is not in its undo table %s",
							NameStr(ta->attname), tl->target_name, tl->undo_into),
					 errhint("The table changed since the run was planned; start a new run.")));
	}
	u->nkeys = list_length(tl->keycols);
	u->keymap = palloc(sizeof(int) * u->nkeys);
	foreach(lc, tl->keycols)
	{
		AttrNumber	att = get_attnum(tl->target, lfirst(lc));

		if (att == InvalidAttrNumber)
			elog(ERROR, "key column \"%s\" of %s not found", (char *) lfirst(lc), tl->target_name);
		u->keymap[foreach_current_index(lc)] = u->map[att - 1];
	}
	u->tvalues = palloc(sizeof(Datum) * Max(u->tdesc->natts, 1));
	u->tnulls = palloc(sizeof(bool) * Max(u->tdesc->natts, 1));
	u->uvalues = palloc(sizeof(Datum) * u->desc->natts);
	u->unulls = palloc(sizeof(bool) * u->desc->natts);
	u->cxt = AllocSetContextCreate(CurrentMemoryContext, "migrate undo", ALLOCSET_DEFAULT_SIZES);
	u->tid_typmod = -1;
	undo_layout(u);
	return u;
}

/*
 * Whether an overwritten or deleted row's data can be copied into its undo
 * row byte for byte (undo_copy_row): the undo table's columns after ours
 * are the target's, in the same order (no dropped column in the target),
 * and ours take a multiple of MAXALIGN bytes whether post is NULL or not,
 * so that every copied column keeps its alignment.  Sets u->own_off and
 * u->own_len for undo_copy_row.
 */
static void
undo_layout(MigrateUndo *u)
{
	int			len[2] = {0, 0};	/* our columns' data: post NULL, not NULL */
	int			off[2][UNDO_NOWN];

	u->copy_rows = u->desc->natts == UNDO_NOWN + u->tdesc->natts;
	for (int i = 0; i < u->tdesc->natts && u->copy_rows; i++)
		u->copy_rows = u->map[i] == UNDO_NOWN + i;
	for (int pass = 0; pass < 2; pass++)
	{
		for (int j = 0; j < UNDO_NOWN; j++)
		{
			Form_pg_attribute ua = TupleDescAttr(u->desc, j);

			if (ua->attlen <= 0 || !ua->attbyval)
			{
				u->copy_rows = false;
				return;
			}
			if (j == UNDO_POST && pass == 0)
				continue;
			len[pass] = att_align_nominal(len[pass], ua->attalign);
			off[pass][j] = len[pass];
			len[pass] += ua->attlen;
		}
	}
	memcpy(u->own_off, off[1], sizeof(u->own_off));
	u->own_len = len[1];
	if (len[0] != len[1] || (Size) len[1] != MAXALIGN(len[1]))
		u->copy_rows = false;
	for (int j = 0; j < UNDO_NOWN; j++)
		if (j != UNDO_POST && off[0][j] != off[1][j])
			u->copy_rows = false;
}

/*
 * The run's undo decision for tl's target: under 'log', its undo table
 * (created now if the run was planned before 0.8) and how to fill it.
 * After migrate_load_describe.
 */
void
migrate_undo_describe(MigrateTableLoad *tl)
{
	Oid			argtypes[2] = {INT8OID, OIDOID};
	Datum		args[2] = {Int64GetDatum(tl->run_id), ObjectIdGetDatum(tl->target)};
	MemoryContext cxt = CurrentMemoryContext;
	bool		isnull;
	int			ret;

	tl->undo_into = NULL;
	tl->undo = NULL;
	if (tl->run_id == 0 || tl->dry_run)
		return;
	ret = SPI_execute_with_args("SELECT t.undo = 'log', coalesce(r.batch_bytes, 0) > 0"
								"  FROM migrate.run_table t JOIN migrate.run r ON r.run_id = t.run_id"
								" WHERE t.run_id = $1 AND t.target = $2",
								2, argtypes, args, NULL, true, 1);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "reading migrate.run_table failed: %s", SPI_result_code_string(ret));
	if (SPI_processed == 1 &&
		DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)))
	{
		bool		budget = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
		Oid			relid = migrate_catalog_undo_create(tl->run_id, tl->target);

		MemoryContextSwitchTo(cxt);
		tl->undo_into = psprintf("migrate.undo_" INT64_FORMAT "_%u", tl->run_id, tl->target);
		tl->undo = undo_build(tl, relid);
		tl->undo->keep_buf = !budget;
	}
	MemoryContextSwitchTo(cxt);	/* SPI calls return in SPI's context */
}

/* Before a batch (its transaction) of tl's target: no entry yet. */
void
migrate_undo_begin(MigrateTableLoad *tl)
{
	MigrateUndo *u = tl->undo;

	if (u == NULL)
		return;
	/* the buffer is reused (its pages stay mapped) unless a batch made it big */
	if (!u->keep_buf || u->bufcap > UNDO_KEEP_BYTES)
	{
		MemoryContextReset(u->cxt);
		u->buf = NULL;
		u->offsets = NULL;
		u->bufcap = 0;
		u->maxentries = 0;
	}
	u->buflen = 0;
	u->nentries = 0;
	/* a transaction that created the undo table and aborted took it along */
	if (!SearchSysCacheExists1(RELOID, ObjectIdGetDatum(u->relid)))
	{
		MemoryContext cxt = CurrentMemoryContext;

		u->relid = migrate_catalog_undo_create(tl->run_id, tl->target);
		MemoryContextSwitchTo(cxt);
	}
}

/*
 * Room for a new entry of len bytes in u->buf, zeroed (as heap_form_tuple's
 * are: the padding before an aligned varlena must be zero); returns its
 * header.  The buffer grows by doubling; entries stay MAXALIGNed.
 */
static HeapTupleHeader
undo_alloc(MigrateUndo *u, Size len)
{
	HeapTupleHeader td;

	len = MAXALIGN(len);
	if (u->buflen + len > u->bufcap)
	{
		Size		cap = Max(Max(u->bufcap * 2, u->buflen + len), 65536);

		u->buf = u->buf ? repalloc_huge(u->buf, cap) : MemoryContextAllocHuge(u->cxt, cap);
		u->bufcap = cap;
	}
	if (u->nentries == u->maxentries)
	{
		int			n = u->maxentries ? u->maxentries * 2 : 1024;

		u->offsets = u->offsets ? repalloc_huge(u->offsets, sizeof(Size) * n)
			: MemoryContextAllocHuge(u->cxt, sizeof(Size) * n);
		u->maxentries = n;
	}
	td = (HeapTupleHeader) (u->buf + u->buflen);
	memset(td, 0, len);
	u->offsets[u->nentries++] = u->buflen;
	u->buflen += len;
	return td;
}

/* The header fields heap_form_tuple() sets, of an undo row of len bytes. */
static void
undo_header(MigrateUndo *u, HeapTupleHeader td, Size len, int hoff)
{
	HeapTupleHeaderSetDatumLength(td, len);
	HeapTupleHeaderSetTypeId(td, u->desc->tdtypeid);
	HeapTupleHeaderSetTypMod(td, u->desc->tdtypmod);
	ItemPointerSetInvalid(&td->t_ctid);
	HeapTupleHeaderSetNatts(td, u->desc->natts);
	td->t_hoff = hoff;
}

/* Our columns of an entry: op and the write's ids. */
static void
undo_own_values(MigrateUndo *u, char op)
{
	u->uvalues[UNDO_OP] = CharGetDatum(op);
	u->unulls[UNDO_OP] = false;
	u->uvalues[UNDO_POST] = TransactionIdGetDatum(GetCurrentTransactionId());
	u->unulls[UNDO_POST] = op == 'd';
	u->uvalues[UNDO_TXN] = Int64GetDatum((int64) U64FromFullTransactionId(GetTopFullTransactionId()));
	u->unulls[UNDO_TXN] = false;
	u->uvalues[UNDO_ORD] = Int64GetDatum(++u->ord);
	u->unulls[UNDO_ORD] = false;
}

/*
 * One entry: the undo row formed from u->uvalues (as heap_form_tuple()
 * would, into u->buf), op and the write's ids.
 */
static void
undo_add(MigrateUndo *u, char op)
{
	int			natts = u->desc->natts;
	bool		hasnull = false;
	Size		hoff;
	Size		data_len;
	HeapTupleHeader td;

	undo_own_values(u, op);
	for (int i = 0; i < natts && !hasnull; i++)
		hasnull = u->unulls[i];
	hoff = MAXALIGN(SizeofHeapTupleHeader + (hasnull ? BITMAPLEN(natts) : 0));
	data_len = heap_compute_data_size(u->desc, u->uvalues, u->unulls);
	td = undo_alloc(u, hoff + data_len);
	undo_header(u, td, hoff + data_len, hoff);
	heap_fill_tuple(u->desc, u->uvalues, u->unulls, (char *) td + hoff, data_len,
					&td->t_infomask, hasnull ? td->t_bits : NULL);
}

/*
 * One entry of a row of the target whose data is copied as it is (see
 * undo_layout): the tuple undo_add() would form from it, byte for byte,
 * without deforming the row and forming it again.  th (thlen bytes): flat
 * (no TOAST pointer), with the target's natts.
 */
static void
undo_copy_row(MigrateUndo *u, HeapTupleHeader th, Size thlen, char op)
{
	int			natts = u->desc->natts;
	int			tnatts = u->tdesc->natts;
	bool		srcnull = (th->t_infomask & HEAP_HASNULL) != 0;
	bool		hasnull = srcnull || op == 'd';
	Size		sdata = thlen - th->t_hoff;
	Size		hoff = MAXALIGN(SizeofHeapTupleHeader + (hasnull ? BITMAPLEN(natts) : 0));
	Size		len = hoff + u->own_len + sdata;
	HeapTupleHeader td = undo_alloc(u, len);
	char	   *data = (char *) td + hoff;

	undo_own_values(u, op);
	undo_header(u, td, len, hoff);
	td->t_infomask = th->t_infomask & HEAP_HASVARWIDTH;
	if (hasnull)
	{
		td->t_infomask |= HEAP_HASNULL;
		/* td->t_bits is zeroed: set the bits of the values present */
		for (int j = 0; j < UNDO_NOWN; j++)
			if (!u->unulls[j])
				td->t_bits[j >> 3] |= 1 << (j & 7);
		for (int i = 0; i < tnatts; i++)
			if (!srcnull || !att_isnull(i, th->t_bits))
				td->t_bits[(i + UNDO_NOWN) >> 3] |= 1 << ((i + UNDO_NOWN) & 7);
	}
	for (int j = 0; j < UNDO_NOWN; j++)
		if (!u->unulls[j])
			store_att_byval(data + u->own_off[j], u->uvalues[j], TupleDescAttr(u->desc, j)->attlen);
	memcpy(data + u->own_len, (char *) th + th->t_hoff, sdata);
}

/* A row of the target (a composite datum, flat: no TOAST pointer) as it was. */
static void
undo_note_row(MigrateUndo *u, Datum row, char op)
{
	HeapTupleHeader th = DatumGetHeapTupleHeader(row);
	HeapTupleData tuple;

	if (HeapTupleHeaderGetTypeId(th) != u->rowtype)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("migrate._undo_pre() was given a row of another type than the statement's target"),
				 errhint("It is meant for migrate's own batch statements only.")));
	if (u->copy_rows && HeapTupleHeaderGetNatts(th) == u->tdesc->natts &&
		(th->t_infomask & HEAP_HASEXTERNAL) == 0)
	{
		undo_copy_row(u, th, HeapTupleHeaderGetDatumLength(th), op);
		return;
	}
	tuple.t_len = HeapTupleHeaderGetDatumLength(th);
	ItemPointerSetInvalid(&tuple.t_self);
	tuple.t_tableOid = InvalidOid;
	tuple.t_data = th;
	undo_deform_row(u, &tuple, u->tdesc, op);
}

/*
 * An entry of a row of the target (tuple; TOAST pointers in it are
 * fetched: the rows they point to go with the update) by deforming it
 * with tdesc (the target's own for a row from its page: its columns added
 * since the row was written have their missing values there).
 */
static void
undo_deform_row(MigrateUndo *u, HeapTuple tuple, TupleDesc tdesc, char op)
{
	Assert(tdesc->natts == u->tdesc->natts);
	heap_deform_tuple(tuple, tdesc, u->tvalues, u->tnulls);
	memset(u->unulls, true, sizeof(bool) * u->desc->natts);
	for (int i = 0; i < u->tdesc->natts; i++)
	{
		Datum		v = u->tvalues[i];

		if (u->map[i] < 0)
			continue;
		if (!u->tnulls[i] && TupleDescAttr(u->tdesc, i)->attlen == -1 &&
			VARATT_IS_EXTERNAL(DatumGetPointer(v)))
			v = PointerGetDatum(detoast_external_attr((struct varlena *) DatumGetPointer(v)));
		u->uvalues[u->map[i]] = v;
		u->unulls[u->map[i]] = u->tnulls[i];
	}
	undo_add(u, op);
}

/*
 * The existing row of an upsert by its tid (ROW(t.ctid), see
 * migrate_undo_batch_sql): read from its page, where the statement holds
 * it locked, and copied once into its undo row, instead of the executor
 * building a whole-row datum of it (deforming it and forming it again) to
 * be copied in turn.
 */
static void
undo_note_tid(MigrateUndo *u, HeapTupleHeader rec)
{
	HeapTupleData tuple;
	Buffer		buf;

	if (HeapTupleHeaderGetTypMod(rec) != u->tid_typmod)
	{
		TupleDesc	d = lookup_rowtype_tupdesc(RECORDOID, HeapTupleHeaderGetTypMod(rec));
		bool		ok = d->natts == 1 && TupleDescAttr(d, 0)->atttypid == TIDOID;

		ReleaseTupleDesc(d);
		if (!ok)
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("migrate._undo_pre() was given a row of another type than the statement's target"),
					 errhint("It is meant for migrate's own batch statements only.")));
		u->tid_typmod = HeapTupleHeaderGetTypMod(rec);
	}
	if (u->trel == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("migrate._undo_pre() was given a row's tid outside of an upsert batch statement"),
				 errhint("It is meant for migrate's own batch statements only.")));
	if (rec->t_infomask & HEAP_HASNULL)
		return;
	/* the one column, a tid (6 bytes, aligned on 2), right at t_hoff */
	memcpy(&tuple.t_self, (char *) rec + rec->t_hoff, sizeof(ItemPointerData));
	if (!heap_fetch(u->trel, SnapshotAny, &tuple, &buf, false))
		elog(ERROR, "the row of %s being updated at (%u,%u) was not found",
			 RelationGetRelationName(u->trel), ItemPointerGetBlockNumber(&tuple.t_self),
			 ItemPointerGetOffsetNumber(&tuple.t_self));
	/* the tuple is ours, locked: its data cannot change while pinned */
	if (u->copy_rows && HeapTupleHeaderGetNatts(tuple.t_data) == u->tdesc->natts &&
		!HeapTupleHasExternal(&tuple))
		undo_copy_row(u, tuple.t_data, tuple.t_len, 'u');
	else
	{
		/* a column added since the range began (undo_build checks once per range) */
		if (RelationGetDescr(u->trel)->natts != u->tdesc->natts)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("table %s was altered during the run", RelationGetRelationName(u->trel)),
					 errhint("The table changed since the run was planned; start a new run.")));
		undo_deform_row(u, &tuple, RelationGetDescr(u->trel), 'u');
	}
	ReleaseBuffer(buf);
}

/*
 * migrate._undo_pre(row record) RETURNS boolean: see sql/run.sql.  Given
 * ROW(t.ctid) (a heap target, migrate_undo_batch_sql): the locked row is
 * read from its page (undo_note_tid).  Given t, the existing row's
 * whole-row value, built flat (its TOASTed values fetched) by the executor.
 */
Datum
migrate_undo_pre(PG_FUNCTION_ARGS)
{
	HeapTupleHeader rec;

	if (armed == NULL || PG_ARGISNULL(0))
		PG_RETURN_BOOL(true);
	rec = PG_GETARG_HEAPTUPLEHEADER(0);
	if (HeapTupleHeaderGetTypeId(rec) == RECORDOID)
		undo_note_tid(armed, rec);
	else
		undo_note_row(armed, PointerGetDatum(rec), 'u');
	PG_RETURN_BOOL(true);
}

static bool
undo_receive(TupleTableSlot *slot, DestReceiver *self)
{
	UndoDest   *d = (UndoDest *) self;
	MigrateUndo *u = d->undo;

	slot_getallattrs(slot);
	if (d->mode == 'd')
	{
		if (!slot->tts_isnull[0])
			undo_note_row(u, slot->tts_values[0], 'd');
		return true;
	}
	/* keys..., inserted: an updated key's row was noted by migrate_undo_pre */
	if (slot->tts_isnull[u->nkeys] || !DatumGetBool(slot->tts_values[u->nkeys]))
		return true;
	memset(u->unulls, true, sizeof(bool) * u->desc->natts);
	for (int k = 0; k < u->nkeys; k++)
	{
		u->uvalues[u->keymap[k]] = slot->tts_values[k];
		u->unulls[u->keymap[k]] = slot->tts_isnull[k];
	}
	undo_add(u, 'i');
	return true;
}

static void
undo_startup(DestReceiver *self pg_attribute_unused(), int operation pg_attribute_unused(),
			 TupleDesc typeinfo pg_attribute_unused())
{
}

static void
undo_shutdown(DestReceiver *self pg_attribute_unused())
{
}

/*
 * Run plan (its parameters: values, none NULL) for tl's target, recording
 * the undo entries of what it writes (mode 'w': the batch statement of
 * migrate_undo_batch_sql; 'd': a DELETE of migrate_undo_wrap_delete).
 * Without an undo log, plain SPI_execute_plan().  Returns as that would
 * (SPI_OK_INSERT, SPI_OK_DELETE: the RETURNING rows are the log's); a
 * statement that fails leaves no entry.
 */
int
migrate_undo_execute(MigrateTableLoad *tl, SPIPlanPtr plan, Datum *values, char mode)
{
	MigrateUndo *u = tl->undo;
	MigrateUndo *prev = armed;
	UndoDest	dest;
	SPIExecuteOptions options;
	ParamListInfo params;
	int			saved;
	Size		saved_len;
	int			ret;

	if (u == NULL)
		return SPI_execute_plan(plan, values, NULL, false, 0);
	params = migrate_spi_params(plan, values);
	memset(&dest, 0, sizeof(dest));
	dest.pub.receiveSlot = undo_receive;
	dest.pub.rStartup = undo_startup;
	dest.pub.rShutdown = undo_shutdown;
	dest.pub.rDestroy = undo_shutdown;
	dest.pub.mydest = DestNone;
	dest.undo = u;
	dest.mode = mode;
	memset(&options, 0, sizeof(options));
	options.params = params;
	options.read_only = false;
	options.tcount = 0;
	options.dest = &dest.pub;

	saved = u->nentries;
	saved_len = u->buflen;
	/* the lock the statement takes anyway; held to the end of the transaction */
	if (u->by_tid && mode == 'w')
		u->trel = table_open(tl->target, RowExclusiveLock);
	armed = u;
	PG_TRY();
	{
		ret = SPI_execute_plan_extended(plan, &options);
	}
	PG_CATCH();
	{
		armed = prev;
		u->nentries = saved;
		u->buflen = saved_len;
		u->trel = NULL;			/* closed by the abort of the (sub)transaction */
		PG_RE_THROW();
	}
	PG_END_TRY();
	armed = prev;
	if (u->trel != NULL)
		table_close(u->trel, NoLock);
	u->trel = NULL;
	if (ret == SPI_OK_INSERT_RETURNING)
		ret = SPI_OK_INSERT;
	else if (ret == SPI_OK_DELETE_RETURNING)
		ret = SPI_OK_DELETE;
	return ret;
}

/* migrate_undo_execute() of a statement not prepared yet (SPI_execute_with_args()). */
int
migrate_undo_execute_sql(MigrateTableLoad *tl, const char *sql, int nargs, Oid *argtypes,
						 Datum *values, char mode)
{
	SPIPlanPtr	plan;
	int			ret;

	if (tl->undo == NULL)
		return SPI_execute_with_args(sql, nargs, argtypes, values, NULL, false, 0);
	plan = SPI_prepare(sql, nargs, argtypes);
	if (plan == NULL)
		elog(ERROR, "SPI_prepare failed (%s): %s", SPI_result_code_string(SPI_result), sql);
	ret = migrate_undo_execute(tl, plan, values, mode);
	SPI_freeplan(plan);
	return ret;
}

/*
 * The batch's undo entries into the run's undo table, in the batch's
 * transaction (before its checkpoint commits), a thousand rows per
 * heap_multi_insert(): no index, no trigger, nothing else to maintain.
 */
void
migrate_undo_flush(MigrateTableLoad *tl)
{
	MigrateUndo *u = tl->undo;
	TupleTableSlot **slots;
	HeapTupleData *tuples;
	Relation	rel;
	CommandId	cid;
	int			nslots;

	if (u == NULL || u->nentries == 0)
		return;
	rel = table_open(u->relid, RowExclusiveLock);
	if (RelationGetDescr(rel)->natts != u->desc->natts)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("undo table %s of %s was altered", tl->undo_into, tl->target_name)));
	nslots = Min(u->nentries, UNDO_FLUSH_CHUNK);
	slots = palloc(sizeof(TupleTableSlot *) * nslots);
	tuples = palloc(sizeof(HeapTupleData) * nslots);
	for (int i = 0; i < nslots; i++)
		slots[i] = MakeSingleTupleTableSlot(RelationGetDescr(rel), &TTSOpsHeapTuple);
	cid = GetCurrentCommandId(true);
	for (int i = 0; i < u->nentries; i += nslots)
	{
		int			n = Min(nslots, u->nentries - i);

		for (int j = 0; j < n; j++)
		{
			HeapTupleHeader td = (HeapTupleHeader) (u->buf + u->offsets[i + j]);

			tuples[j].t_len = HeapTupleHeaderGetDatumLength(td);
			ItemPointerSetInvalid(&tuples[j].t_self);
			tuples[j].t_tableOid = InvalidOid;
			tuples[j].t_data = td;
			ExecStoreHeapTuple(&tuples[j], slots[j], false);
		}
		/* the table is only ever appended to: no free space to look for */
		table_multi_insert(rel, slots, n, cid, TABLE_INSERT_SKIP_FSM, NULL);
		for (int j = 0; j < n; j++)
			ExecClearTuple(slots[j]);
	}
	for (int i = 0; i < nslots; i++)
		ExecDropSingleTupleTableSlot(slots[i]);
	pfree(slots);
	pfree(tuples);
	table_close(rel, NoLock);
	CommandCounterIncrement();
	u->buflen = 0;
	u->nentries = 0;
}

/*
 * delete_sql ("DELETE FROM target AS t WHERE ...") made to hand the rows
 * it deletes to the undo log (run it with migrate_undo_execute_sql(...,
 * 'd')).  Unchanged without an undo log.
 */
char *
migrate_undo_wrap_delete(MigrateTableLoad *tl, const char *delete_sql)
{
	if (tl->undo == NULL)
		return (char *) delete_sql;
	return psprintf("%s RETURNING t", delete_sql);
}

/*
 * The end of the batch statement (sql holds "INSERT ... [ON CONFLICT ...]",
 * for a sync inside "WITH w AS (") under an undo log: an upsert notes each
 * row it overwrites (migrate._undo_pre in the WHERE of DO UPDATE: once per
 * row updated, on the locked row as it is); RETURNING the keys written and
 * whether the statement inserted them (of an upsert: xmax 0; insert and
 * skip_existing return only rows they inserted, and a partitioned target
 * cannot return xmax), to the receiver of migrate_undo_execute(); a sync's
 * keys go to tl->returning_into, which returns them in turn.  SPI_processed
 * stays the rows written.
 */
void
migrate_undo_batch_sql(MigrateTableLoad *tl, StringInfo sql)
{
	ListCell   *lc;

	if (strcmp(tl->mode, "upsert") == 0)
		appendStringInfoString(sql, tl->undo->by_tid ? " WHERE migrate._undo_pre(ROW(t.ctid))"
							   : " WHERE migrate._undo_pre(t)");
	appendStringInfoString(sql, " RETURNING ");
	foreach(lc, tl->keycols)
		appendStringInfo(sql, "t.%s, ", quote_identifier(lfirst(lc)));
	if (strcmp(tl->mode, "upsert") == 0)
		appendStringInfoString(sql, "t.xmax = '0'::pg_catalog.xid");
	else
		appendStringInfoString(sql, "true");
	if (tl->returning_into)
		appendStringInfo(sql, ") INSERT INTO %s SELECT * FROM w RETURNING *", tl->returning_into);
}
