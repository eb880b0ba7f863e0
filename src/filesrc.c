/*-------------------------------------------------------------------------
 *
 * filesrc.c
 *	  File sources (DESIGN.md "File sources"): the foreign data wrapper
 *	  migrate_file, whose foreign tables read CSV, COPY text or plain line
 *	  files (or a glob of them, in name order) with migrate's own reader;
 *	  the header reader behind migrate_file(); and the lines the reader
 *	  cannot parse, which go to migrate.reject (22P04) while a run loads.
 *
 * Why not file_fdw: it pushes nothing down, so every key-range batch would
 * read the whole file again, and one malformed line aborts its scan.
 *
 * A foreign table of migrate_file has text columns for the fields (named
 * by the header or by migrate_file's columns), then these, found by name:
 *
 *	  _file  text    the file the record came from
 *	  _line  bigint  the physical line number of the record's first line
 *	  _pos   bigint  (file number << 40) | byte offset of the record: the
 *					 key batches are cut on; "_pos > $1 AND _pos <= $2" is
 *					 pushed down to where the reader starts and stops
 *	  _raw   text    a line that did not parse (else NULL)
 *	  _error text    why it did not parse
 *
 * Records: csv as COPY (FORMAT csv) reads them (an unquoted empty field or
 * the null string is NULL, a quoted "" is an empty string, quoted fields
 * may span lines); text as COPY's text format; lines one field per
 * physical line.  Blank lines are skipped.  A record that does not parse
 * (unterminated quote, text after a closing quote, too many or too few
 * fields, bad encoding, a NUL byte) is a line error; when such a record
 * spans several physical lines, only its first line is the error and the
 * reader starts again at the next line, so one stray quote costs one line,
 * not the rest of the file.  Each record is checked (or converted) from
 * the file's encoding to the database's before its fields are cut.  A
 * delimiter, quote or escape of one ASCII byte and the \n line end take
 * fast paths; others (several bytes, a character beyond ASCII, option
 * line_end) take the general reader, which matches them whole (fileread.c).
 *
 * Where a scan starts: the first record whose _pos is above the lower
 * bound.  Consecutive batches start where the previous scan stopped: the
 * backend remembers that place (file, offset, line) per relation, so a
 * load reads each file once.  Any other start (a resumed run, the second
 * range of a file) reads the file from its beginning to that place once,
 * as the record boundaries and line numbers are only known that way.
 *
 * While load.c runs a batch statement over the foreign table
 * (migrate_filesrc_load_begin), line errors become rejects (reason 22P04,
 * key "file:line", source_row {_file, _line, _raw}) counted as rows read;
 * any other scan returns them as rows with _raw and _error set.
 *
 * Privilege: as COPY FROM a file, reading needs pg_read_server_files (or
 * superuser): checked by the validator when a table names a path, and
 * again when a scan starts (a run executes as the plan's owner).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <fcntl.h>
#include <glob.h>
#include <sys/stat.h>
#include <unistd.h>

#include "access/reloptions.h"
#include "access/table.h"
#include "catalog/namespace.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_foreign_table.h"
#include "catalog/pg_operator.h"
#include "catalog/pg_opfamily.h"
#include "catalog/pg_type.h"
#include "commands/defrem.h"
#include "commands/explain.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "foreign/fdwapi.h"
#include "foreign/foreign.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "optimizer/optimizer.h"
#include "optimizer/pathnode.h"
#include "optimizer/planmain.h"
#include "optimizer/restrictinfo.h"
#include "storage/fd.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"

#include "fileread.h"
#include "migrate.h"

PG_FUNCTION_INFO_V1(migrate_file_fdw_handler);
PG_FUNCTION_INFO_V1(migrate_file_fdw_validator);

/* a foreign table of migrate_file, as its options and columns say */
typedef struct FileSource
{
	Oid			relid;
	char	   *pattern;
	FileFormat	fmt;
	int			natts;
	int			ncols;			/* data columns */
	int		   *col_att;		/* attribute index (0-based) of data column i */
	char	  **col_name;
	int			att_file,
				att_line,
				att_pos,
				att_raw,
				att_error;
} FileSource;

/* where the last scan of a relation stopped: the next record */
typedef struct FileResume
{
	Oid			relid;
	int			fileno;
	int64		covered;		/* no record starts in (covered, next_pos) */
	int64		next_pos;
	int64		next_line;
	char		path[MAXPGPATH];	/* the file as it was then: a file */
	int64		size;			/* rewritten since is read from its start */
	int64		mtime;
} FileResume;

/*
 * The last two: a batch that is loaded again (its rows were refused after
 * its scan ended, at the last index insertions) starts where the one
 * before it stopped.
 */
static FileResume last_stops[2];

/* load.c's batch statement over this relation: line errors are rejects */
static Oid	load_relid = InvalidOid;
static bool load_mask_raw;

#define FILE_REJECT_BUFFER	256

typedef struct FileScanState
{
	FileSource *src;
	char	  **paths;
	int			npaths;
	int			fileno;			/* current file; -1: not started; npaths: done */
	bool		file_open;		/* r holds it open */
	bool		file_done;
	FileReader	r;
	int		   *field_col;		/* field i of the open file -> data column */
	int64		lo;				/* records with lo < _pos <= hi */
	int64		hi;
	List	   *bound_states;	/* ExprState of the pushed-down bounds */
	List	   *bound_ops;		/* their strategies (int) */
	MemoryContext rowcxt;
	MemoryContext scancxt;
	Datum		file_datum;		/* _file of the open file, made once */
	int64		file_size;		/* and its size and mtime when opened */
	int64		file_mtime;
	bool		stop_valid;		/* where the scan stands in the open file, */
	int64		stop_covered;	/* kept in last_stops when it ends */
	int64		stop_pos;
	int64		stop_line;
	/* lines that do not parse, while loading: written FILE_REJECT_BUFFER at a time */
	MemoryContext rejcxt;
	int			nrej;
	Datum		rej_keys[FILE_REJECT_BUFFER];
	Datum		rej_rows[FILE_REJECT_BUFFER];
	Datum		rej_msgs[FILE_REJECT_BUFFER];
	Datum		rej_details[FILE_REJECT_BUFFER];
} FileScanState;

/* a pushed-down "_pos = ANY (array)", beside the btree strategies */
#define BOUND_ANY	100

static FileSource *describe_source(Relation rel);
static int	open_file_header(FileScanState *st, int fileno);
static void position_scan(FileScanState *st);
static void finish_scan(FileScanState *st);
static void flush_rejects(FileScanState *st);

Datum
migrate_file_fdw_validator(PG_FUNCTION_ARGS)
{
	List	   *options = untransformRelOptions(PG_GETARG_DATUM(0));
	Oid			catalog = PG_GETARG_OID(1);
	FileFormat	fmt;
	char	   *pattern;

	if (catalog != ForeignTableRelationId)
	{
		if (options != NIL)
			ereport(ERROR,
					(errcode(ERRCODE_FDW_INVALID_OPTION_NAME),
					 errmsg("migrate_file takes options on foreign tables only")));
		PG_RETURN_VOID();
	}
	migrate_file_parse_options(options, &fmt, &pattern);
	if (pattern == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_OPTION_NAME_NOT_FOUND),
				 errmsg("a foreign table of migrate_file needs the option path")));
	migrate_file_check_privilege();
	if (!is_absolute_path(pattern))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("path \"%s\" of a file source is not absolute", pattern),
				 errhint("Give the file's full path on the database server (a glob such as /data/*.csv is allowed).")));
	PG_RETURN_VOID();
}

/* The options and columns of a migrate_file foreign table. */
static FileSource *
describe_source(Relation rel)
{
	ForeignTable *ft = GetForeignTable(RelationGetRelid(rel));
	TupleDesc	desc = RelationGetDescr(rel);
	FileSource *src = palloc0(sizeof(FileSource));

	src->relid = RelationGetRelid(rel);
	migrate_file_parse_options(ft->options, &src->fmt, &src->pattern);
	if (src->pattern == NULL)
		elog(ERROR, "foreign table %s has no path", RelationGetRelationName(rel));
	src->natts = desc->natts;
	src->col_att = palloc(sizeof(int) * desc->natts);
	src->col_name = palloc(sizeof(char *) * desc->natts);
	src->att_file = src->att_line = src->att_pos = src->att_raw = src->att_error = -1;
	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute a = TupleDescAttr(desc, i);
		const char *name = NameStr(a->attname);
		int		   *special = NULL;
		Oid			want = TEXTOID;

		if (a->attisdropped)
			continue;
		if (strcmp(name, "_file") == 0)
			special = &src->att_file;
		else if (strcmp(name, "_line") == 0)
			special = &src->att_line, want = INT8OID;
		else if (strcmp(name, "_pos") == 0)
			special = &src->att_pos, want = INT8OID;
		else if (strcmp(name, "_raw") == 0)
			special = &src->att_raw;
		else if (strcmp(name, "_error") == 0)
			special = &src->att_error;
		if (a->atttypid != want)
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("column \"%s\" of file source %s must be of type %s",
							name, RelationGetRelationName(rel), format_type_be(want)),
					 errhint("migrate_file() declares the foreign table; fields arrive as text and are cast in the mappings.")));
		if (special)
			*special = i;
		else
		{
			src->col_att[src->ncols] = i;
			src->col_name[src->ncols] = pstrdup(name);
			src->ncols++;
		}
	}
	if (src->fmt.kind == 'l' && src->ncols != 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("file source %s of format lines must have exactly one field column",
						RelationGetRelationName(rel))));
	return src;
}

/* ---------------------------------------------------------------------
 * For load.c and units.c
 * ---------------------------------------------------------------------
 */

/*
 * The files of a file source, with their sizes: batches never span two
 * files, and a file's records have _pos from FILE_POS(f, 0) to
 * FILE_POS(f, size).  Checks the privilege to read them.
 */
int
migrate_filesrc_files(Oid relid, int64 **sizes)
{
	Relation	rel = table_open(relid, AccessShareLock);
	FileSource *src = describe_source(rel);
	char	  **paths;
	int			npaths;

	table_close(rel, AccessShareLock);
	migrate_file_check_privilege();
	paths = migrate_file_expand(src->pattern, &npaths);
	*sizes = palloc(sizeof(int64) * npaths);
	for (int i = 0; i < npaths; i++)
	{
		struct stat st;

		if (stat(paths[i], &st) < 0)
			ereport(ERROR,
					(errcode_for_file_access(),
					 errmsg("could not stat file \"%s\": %m", paths[i])));
		if (S_ISDIR(st.st_mode))
			ereport(ERROR,
					(errcode(ERRCODE_WRONG_OBJECT_TYPE),
					 errmsg("\"%s\" is a directory", paths[i]),
					 errhint("Give a glob of its files, such as %s/*.csv.", paths[i])));
		if ((int64) st.st_size > FILE_POS_MASK)
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("file \"%s\" is larger than 1 TB", paths[i])));
		(*sizes)[i] = (int64) st.st_size;
	}
	return npaths;
}

/*
 * The range of a file source's unit to read: after last (-1: from the
 * start) up to hi, within the files' extent (their sizes, kept in tl for
 * the batches).  False when nothing is left.
 */
bool
migrate_filesrc_range(MigrateTableLoad *tl, int64 last, int64 hi, int64 *lo, int64 *max)
{
	tl->nfiles = migrate_filesrc_files(tl->source_relid, &tl->file_sizes);
	*lo = last;
	*max = Min(hi, FILE_POS(tl->nfiles - 1, tl->file_sizes[tl->nfiles - 1]));
	return *lo < *max;
}

/* the file the batch after lo starts in */
static int
batch_file(MigrateTableLoad *tl, int64 lo)
{
	int64		f = (lo + 1) >> FILE_POS_SHIFT;

	return (int) Min(f, (int64) tl->nfiles - 1);
}

/* Where the batch after lo starts: past the end of a file, in the next. */
int64
migrate_filesrc_batch_lo(MigrateTableLoad *tl, int64 lo)
{
	int			f = batch_file(tl, lo);

	while (f + 1 < tl->nfiles && lo + 1 >= FILE_POS(f, tl->file_sizes[f]))
	{
		f++;
		lo = FILE_POS(f, 0) - 1;
	}
	return lo;
}

/* The end of the file the batch after lo reads: no batch spans two. */
int64
migrate_filesrc_file_end(MigrateTableLoad *tl, int64 lo)
{
	int			f = batch_file(tl, lo);

	return FILE_POS(f, tl->file_sizes[f]);
}

/*
 * Cut points of a file source for parallel workers: nranges ranges of
 * about equal bytes over the files in order.  A cut may fall inside a
 * record: the record belongs to the range it starts in, and the next range
 * begins at the first record after the cut, which its worker finds by
 * delimiting the file's records up to there (no fields cut: a few percent
 * of reading them).
 */
List *
migrate_filesrc_cut(MigrateTableLoad *tl, int nranges, int64 min_bytes)
{
	List	   *bounds = NIL;
	int64	   *sizes;
	int			n = migrate_filesrc_files(tl->source_relid, &sizes);
	int64		total = 0;
	int64		last = -1;

	for (int f = 0; f < n; f++)
		total += sizes[f];
	for (int k = 1; k < nranges; k++)
	{
		int64		g = (int64) ((double) total * k / nranges);
		int64		cum = 0;
		int			f = 0;
		int64		bound;

		while (f + 1 < n && cum + sizes[f] <= g)
			cum += sizes[f++];
		bound = g - cum >= sizes[f] ? FILE_POS(f + 1, 0) - 1 : FILE_POS(f, g - cum);
		/* ranges of fewer bytes than a batch's first guess are not worth a unit */
		if (bound > last && g - cum > 0 && total / nranges >= min_bytes)
		{
			bounds = lappend(bounds, psprintf(INT64_FORMAT, bound));
			last = bound;
		}
	}
	return bounds;
}

/* load.c's batch statement over relid starts (mask_raw: sensitive columns) */
void
migrate_filesrc_load_begin(Oid relid, bool mask_raw)
{
	load_relid = relid;
	load_mask_raw = mask_raw;
}

void
migrate_filesrc_load_end(void)
{
	load_relid = InvalidOid;
}

/* ---------------------------------------------------------------------
 * The foreign data wrapper
 * ---------------------------------------------------------------------
 */

/* fdw_private of a plan: the strategies of the bounds in fdw_exprs */
static void
fileGetForeignRelSize(PlannerInfo *root, RelOptInfo *baserel, Oid foreigntableid)
{
	/* a guess: the files are stat'ed only when a scan starts */
	(void) root;
	(void) foreigntableid;
	baserel->rows = 100000;
	baserel->tuples = 100000;
}

static void
fileGetForeignPaths(PlannerInfo *root, RelOptInfo *baserel, Oid foreigntableid)
{
	Cost		total = baserel->rows * (cpu_tuple_cost * 10);

	(void) foreigntableid;

	add_path(baserel, (Path *)
			 create_foreignscan_path(root, baserel, NULL, baserel->rows, 10, total,
									 NIL, NULL, NULL, NIL));
}

/*
 * Which restriction clauses bound _pos: "_pos op expr" (or commuted) with
 * an int8 comparison and an expression that does not read the relation.
 * They stay in the plan's quals too: the bounds only say where to start
 * and stop reading.
 */
static ForeignScan *
fileGetForeignPlan(PlannerInfo *root, RelOptInfo *baserel, Oid foreigntableid,
				   ForeignPath *best_path, List *tlist, List *scan_clauses, Plan *outer_plan)
{
	List	   *exprs = NIL;
	List	   *ops = NIL;
	AttrNumber	posatt = get_attnum(foreigntableid, "_pos");
	ListCell   *lc;

	(void) best_path;
	foreach(lc, baserel->baserestrictinfo)
	{
		RestrictInfo *ri = lfirst(lc);
		OpExpr	   *op;
		Node	   *l,
				   *r;
		Oid			opno;
		int			strategy;
		Oid			lefttype,
					righttype;

		if (posatt == InvalidAttrNumber)
			continue;
		/* _pos = ANY (array): the rows of rejects fetched again (load.c) */
		if (IsA(ri->clause, ScalarArrayOpExpr))
		{
			ScalarArrayOpExpr *sa = (ScalarArrayOpExpr *) ri->clause;
			Node	   *var = linitial(sa->args);
			Node	   *arr = lsecond(sa->args);

			if (sa->useOr && IsA(var, Var) && ((Var *) var)->varno == (int) baserel->relid &&
				((Var *) var)->varattno == posatt && sa->opno == get_opfamily_member(INTEGER_BTREE_FAM_OID, INT8OID, INT8OID, BTEqualStrategyNumber) &&
				exprType(arr) == INT8ARRAYOID &&
				!bms_is_member(baserel->relid, pull_varnos(root, arr)) && !contain_volatile_functions(arr))
			{
				exprs = lappend(exprs, arr);
				ops = lappend_int(ops, BOUND_ANY);
			}
			continue;
		}
		if (!IsA(ri->clause, OpExpr))
			continue;
		op = (OpExpr *) ri->clause;
		if (list_length(op->args) != 2)
			continue;
		l = linitial(op->args);
		r = lsecond(op->args);
		opno = op->opno;
		if (!(IsA(l, Var) && ((Var *) l)->varno == (int) baserel->relid && ((Var *) l)->varattno == posatt))
		{
			Node	   *t = l;

			l = r;
			r = t;
			opno = get_commutator(opno);
			if (!OidIsValid(opno) ||
				!(IsA(l, Var) && ((Var *) l)->varno == (int) baserel->relid && ((Var *) l)->varattno == posatt))
				continue;
		}
		if (bms_is_member(baserel->relid, pull_varnos(root, r)) || contain_volatile_functions(r))
			continue;
		if (!op_in_opfamily(opno, INTEGER_BTREE_FAM_OID))
			continue;
		get_op_opfamily_properties(opno, INTEGER_BTREE_FAM_OID, false, &strategy, &lefttype, &righttype);
		if (lefttype != INT8OID ||
			(righttype != INT8OID && righttype != INT4OID && righttype != INT2OID))
			continue;
		exprs = lappend(exprs, r);
		ops = lappend_int(ops, strategy);
	}
	scan_clauses = extract_actual_clauses(scan_clauses, false);
	return make_foreignscan(tlist, scan_clauses, baserel->relid, exprs, list_make1(ops),
							NIL, NIL, outer_plan);
}

static void
fileExplainForeignScan(ForeignScanState *node, ExplainState *es)
{
	ForeignTable *ft = GetForeignTable(RelationGetRelid(node->ss.ss_currentRelation));
	FileFormat	fmt;
	char	   *pattern;

	migrate_file_parse_options(ft->options, &fmt, &pattern);
	ExplainPropertyText("Migrate File", pattern, es);
	if (list_length(((ForeignScan *) node->ss.ps.plan)->fdw_exprs) > 0)
		ExplainPropertyText("Bounds", "_pos pushed down", es);
}

static void
fileBeginForeignScan(ForeignScanState *node, int eflags)
{
	ForeignScan *plan = (ForeignScan *) node->ss.ps.plan;
	FileScanState *st;

	if (eflags & EXEC_FLAG_EXPLAIN_ONLY)
		return;
	st = palloc0(sizeof(FileScanState));
	st->src = describe_source(node->ss.ss_currentRelation);
	migrate_file_check_privilege();
	st->paths = migrate_file_expand(st->src->pattern, &st->npaths);
	st->fileno = -1;
	st->bound_states = ExecInitExprList(plan->fdw_exprs, (PlanState *) node);
	st->bound_ops = linitial(plan->fdw_private);
	st->scancxt = CurrentMemoryContext;
	st->rejcxt = AllocSetContextCreate(CurrentMemoryContext, "migrate file rejects",
									   ALLOCSET_DEFAULT_SIZES);
	st->rowcxt = AllocSetContextCreate(CurrentMemoryContext, "migrate file row",
									   ALLOCSET_DEFAULT_SIZES);
	st->field_col = palloc(sizeof(int) * Max(st->src->ncols, 1));
	node->fdw_state = st;
}

/* The bounds of this scan, from the pushed-down clauses' current values. */
static void
eval_bounds(ForeignScanState *node, FileScanState *st)
{
	ExprContext *econtext = node->ss.ps.ps_ExprContext;
	ListCell   *lc1,
			   *lc2;

	st->lo = PG_INT64_MIN;
	st->hi = PG_INT64_MAX;
	forboth(lc1, st->bound_states, lc2, st->bound_ops)
	{
		bool		isnull;
		Datum		d = ExecEvalExpr(lfirst(lc1), econtext, &isnull);
		int64		v;

		if (isnull)
		{
			st->hi = PG_INT64_MIN;	/* compares with NULL: no row */
			continue;
		}
		if (lfirst_int(lc2) == BOUND_ANY)
		{
			ArrayType  *a = DatumGetArrayTypeP(d);
			Datum	   *elems;
			bool	   *nulls;
			int			n;
			int64		amin = PG_INT64_MAX,
						amax = PG_INT64_MIN;

			deconstruct_array(a, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE, &elems, &nulls, &n);
			for (int i = 0; i < n; i++)
				if (!nulls[i])
				{
					amin = Min(amin, DatumGetInt64(elems[i]));
					amax = Max(amax, DatumGetInt64(elems[i]));
				}
			if (amax < amin)
				st->hi = PG_INT64_MIN;	/* no key: no row */
			else
			{
				st->lo = Max(st->lo, amin == PG_INT64_MIN ? amin : amin - 1);
				st->hi = Min(st->hi, amax);
			}
			continue;
		}
		switch (exprType((Node *) ((ExprState *) lfirst(lc1))->expr))
		{
			case INT2OID:
				v = DatumGetInt16(d);
				break;
			case INT4OID:
				v = DatumGetInt32(d);
				break;
			default:
				v = DatumGetInt64(d);
				break;
		}
		switch (lfirst_int(lc2))
		{
			case BTLessStrategyNumber:
				st->hi = Min(st->hi, v == PG_INT64_MIN ? v : v - 1);
				break;
			case BTLessEqualStrategyNumber:
				st->hi = Min(st->hi, v);
				break;
			case BTEqualStrategyNumber:
				st->lo = Max(st->lo, v == PG_INT64_MIN ? v : v - 1);
				st->hi = Min(st->hi, v);
				break;
			case BTGreaterEqualStrategyNumber:
				st->lo = Max(st->lo, v == PG_INT64_MIN ? v : v - 1);
				break;
			case BTGreaterStrategyNumber:
				st->lo = Max(st->lo, v);
				break;
		}
	}
}

/*
 * Open file fileno of the scan and read its head: the header's names map
 * its fields to the table's columns (a file of a glob may order them
 * otherwise).  Returns the offset of its first data record.
 */
static int
open_file_header(FileScanState *st, int fileno)
{
	FileSource *src = st->src;
	List	   *names;
	ListCell   *lc;

	/* the reader's buffers live as long as the scan, not the row */
	MemoryContext old = MemoryContextSwitchTo(st->scancxt);

	if (st->file_open)
		migrate_file_close(&st->r);
	st->fileno = fileno;
	st->file_open = true;
	st->stop_valid = false;
	st->file_done = false;
	migrate_file_open(&st->r, &src->fmt, st->paths[fileno]);
	st->file_datum = CStringGetTextDatum(st->paths[fileno]);
	{
		struct stat sb;

		if (fstat(st->r.fd, &sb) < 0)
			ereport(ERROR,
					(errcode_for_file_access(),
					 errmsg("could not stat file \"%s\": %m", st->paths[fileno])));
		st->file_size = (int64) sb.st_size;
		st->file_mtime = (int64) sb.st_mtime;
	}
	names = migrate_file_skip_head(&st->r, src->fmt.header);
	MemoryContextSwitchTo(old);
	for (int i = 0; i < src->ncols; i++)
		st->field_col[i] = i;
	if (!src->fmt.header || names == NIL)
		return 0;
	if (list_length(names) != src->ncols)
		ereport(ERROR,
				(errcode(ERRCODE_BAD_COPY_FILE_FORMAT),
				 errmsg("the header of file \"%s\" has %d fields, file source %s has %d columns",
						st->paths[fileno], list_length(names), get_rel_name(src->relid), src->ncols),
				 errhint("Every file of a glob must have the same columns; call migrate_file() again for another layout.")));
	/* by name when the header names the columns, else in order (columns given) */
	foreach(lc, names)
	{
		int			col = -1;

		for (int c = 0; c < src->ncols && col < 0; c++)
			if (strcmp(src->col_name[c], lfirst(lc)) == 0)
				col = c;
		/* migrate_file() names a field after its column when they differ in case only */
		for (int c = 0; c < src->ncols && col < 0; c++)
			if (pg_strcasecmp(src->col_name[c], lfirst(lc)) == 0)
				col = c;
		if (col < 0)
		{
			for (int i = 0; i < src->ncols; i++)
				st->field_col[i] = i;
			break;
		}
		st->field_col[foreach_current_index(lc)] = col;
	}
	return 0;
}

/*
 * Put the scan at its first record: the first with _pos above lo, in the
 * first file that can hold one.  Where one of the last two scans of this
 * relation stopped, that is known; elsewhere the file is read from the
 * nearest such place before it (a worker's next range of the file), else
 * from its beginning.
 */
static void
position_scan(FileScanState *st)
{
	int64		want = st->lo == PG_INT64_MAX ? PG_INT64_MAX : Max(st->lo + 1, 0);
	int			fileno = (int) (want >> FILE_POS_SHIFT);

	if (fileno >= st->npaths)
	{
		finish_scan(st);
		return;
	}
	open_file_header(st, fileno);
	{
		FileResume *before = NULL;	/* a record start on the way to want */

		for (size_t k = 0; k < lengthof(last_stops); k++)
		{
			FileResume *stop = &last_stops[k];

			if (stop->relid != st->src->relid || stop->fileno != fileno ||
				FILE_POS(fileno, st->r.offset) > stop->next_pos ||
				strcmp(stop->path, st->paths[fileno]) != 0 ||
				stop->size != st->file_size || stop->mtime != st->file_mtime)
				continue;
			if (stop->covered < want && want <= stop->next_pos)
			{
				migrate_file_seek(&st->r, stop->next_pos & FILE_POS_MASK, stop->next_line);
				return;
			}
			if (stop->next_pos < want && (before == NULL || before->next_pos < stop->next_pos))
				before = stop;
		}
		if (before)
			migrate_file_seek(&st->r, before->next_pos & FILE_POS_MASK, before->next_line);
	}
	/* read up to the first record at or after want, keeping its place */
	while (FILE_POS(fileno, st->r.offset) < want)
	{
		int64		start_off;
		int64		start_line;

		if (!migrate_file_next(&st->r, st->src->ncols, true))
		{
			st->file_done = true;
			return;
		}
		start_off = st->r.rec_start;
		start_line = st->r.rec_line;
		if (FILE_POS(fileno, start_off) >= want)
		{
			migrate_file_seek(&st->r, start_off, start_line);
			return;
		}
	}
}

/* the scan has read all it will: close the file */
static void
finish_scan(FileScanState *st)
{
	flush_rejects(st);
	/* the place the next scan of this file may start at (last_stops) */
	if (st->stop_valid && st->file_open)
	{
		FileResume *stop = &last_stops[0];

		last_stops[1] = last_stops[0];
		stop->relid = st->src->relid;
		stop->fileno = st->fileno;
		stop->covered = st->stop_covered;
		stop->next_pos = st->stop_pos;
		stop->next_line = st->stop_line;
		strlcpy(stop->path, st->paths[st->fileno], MAXPGPATH);
		stop->size = st->file_size;
		stop->mtime = st->file_mtime;
	}
	st->stop_valid = false;
	if (st->file_open)
		migrate_file_close(&st->r);
	st->file_open = false;
	st->fileno = st->npaths;
}

/* Where this scan stands: no record starts in (covered, next_pos). */
static void
remember_stop(FileScanState *st, int64 covered, int64 next_pos, int64 next_line)
{
	st->stop_valid = true;
	st->stop_covered = covered;
	st->stop_pos = next_pos;
	st->stop_line = next_line;
}

/* A line error while loading: a reject (22P04), counted as a row read. */
static void
reject_line(FileScanState *st, const char *message)
{
	MemoryContext old = MemoryContextSwitchTo(st->rejcxt);
	FileReader *r = &st->r;
	char	   *key = psprintf("%s:" INT64_FORMAT, r->path, r->rec_line);
	JsonbParseState *ps = NULL;
	JsonbValue	k,
				v;
	Jsonb	   *row;

	pushJsonbValue(&ps, WJB_BEGIN_OBJECT, NULL);
#define PUSH_TEXT(name, value) \
	do { \
		k.type = jbvString; k.val.string.val = (name); k.val.string.len = strlen(name); \
		pushJsonbValue(&ps, WJB_KEY, &k); \
		v.type = jbvString; v.val.string.val = (value); v.val.string.len = strlen(value); \
		pushJsonbValue(&ps, WJB_VALUE, &v); \
	} while (0)
	PUSH_TEXT("_file", (char *) r->path);
	k.type = jbvString;
	k.val.string.val = "_line";
	k.val.string.len = 5;
	pushJsonbValue(&ps, WJB_KEY, &k);
	v.type = jbvNumeric;
	v.val.numeric = int64_to_numeric(r->rec_line);
	pushJsonbValue(&ps, WJB_VALUE, &v);
	PUSH_TEXT("_raw", load_mask_raw ? "***" : migrate_file_raw_text(r));
#undef PUSH_TEXT
	row = JsonbValueToJsonb(pushJsonbValue(&ps, WJB_END_OBJECT, NULL));
	st->rej_keys[st->nrej] = CStringGetTextDatum(key);
	st->rej_rows[st->nrej] = JsonbPGetDatum(row);
	st->rej_msgs[st->nrej] = CStringGetTextDatum(message);
	st->rej_details[st->nrej] = CStringGetTextDatum(psprintf("file \"%s\", line " INT64_FORMAT, r->path, r->rec_line));
	st->nrej++;
	MemoryContextSwitchTo(old);
	if (st->nrej == FILE_REJECT_BUFFER)
		flush_rejects(st);
}

/* Write the buffered line errors (one statement), in the scan's transaction. */
static void
flush_rejects(FileScanState *st)
{
	if (st->nrej == 0)
		return;
	migrate_route_insert_rejects(st->nrej, st->rej_keys, st->rej_rows, st->rej_msgs, st->rej_details,
								 "22P04");
	st->nrej = 0;
	MemoryContextReset(st->rejcxt);
}

static TupleTableSlot *
fileIterateForeignScan(ForeignScanState *node)
{
	FileScanState *st = node->fdw_state;
	TupleTableSlot *slot = node->ss.ss_ScanTupleSlot;
	FileSource *src = st->src;
	FileReader *r = &st->r;
	MemoryContext old;

	ExecClearTuple(slot);
	if (st->fileno < 0)
	{
		eval_bounds(node, st);
		if (st->lo >= st->hi)
			return slot;
		position_scan(st);
	}
	MemoryContextReset(st->rowcxt);
	old = MemoryContextSwitchTo(st->rowcxt);
	for (;;)
	{
		int64		pos;
		const char *error;

		if (st->fileno >= st->npaths)
			break;
		if (st->file_done || !migrate_file_next(r, src->ncols, false))
		{
			/* on to the next file, if the bounds reach it */
			if (st->fileno + 1 >= st->npaths || FILE_POS(st->fileno + 1, 0) > st->hi)
			{
				finish_scan(st);
				break;
			}
			open_file_header(st, st->fileno + 1);
			continue;
		}
		pos = FILE_POS(st->fileno, r->rec_start);
		if (pos > st->hi)
		{
			remember_stop(st, st->hi, pos, r->rec_line);
			finish_scan(st);
			break;
		}
		error = r->error;
		if (error && strcmp(error, "missing data for a column") == 0)
			error = psprintf("missing data for column \"%s\"", src->col_name[r->nfields]);
		if (error && load_relid == src->relid)
		{
			reject_line(st, error);
			continue;
		}

		memset(slot->tts_isnull, true, sizeof(bool) * src->natts);
		if (error)
		{
			if (src->att_raw >= 0)
			{
				slot->tts_values[src->att_raw] = CStringGetTextDatum(migrate_file_raw_text(r));
				slot->tts_isnull[src->att_raw] = false;
			}
			if (src->att_error >= 0)
			{
				slot->tts_values[src->att_error] = CStringGetTextDatum(error);
				slot->tts_isnull[src->att_error] = false;
			}
		}
		else
			for (int i = 0; i < r->nfields; i++)
			{
				int			att = src->col_att[st->field_col[i]];

				if (r->fstart[i] < 0)
					continue;
				slot->tts_values[att] = FILE_FIELD_DATUM(r, i);
				slot->tts_isnull[att] = false;
			}
		if (src->att_file >= 0)
		{
			slot->tts_values[src->att_file] = st->file_datum;
			slot->tts_isnull[src->att_file] = false;
		}
		if (src->att_line >= 0)
		{
			slot->tts_values[src->att_line] = Int64GetDatum(r->rec_line);
			slot->tts_isnull[src->att_line] = false;
		}
		if (src->att_pos >= 0)
		{
			slot->tts_values[src->att_pos] = Int64GetDatum(pos);
			slot->tts_isnull[src->att_pos] = false;
		}
		/* the place after this record, should the scan end here */
		remember_stop(st, pos, FILE_POS(st->fileno, r->offset), r->line);
		MemoryContextSwitchTo(old);
		return ExecStoreVirtualTuple(slot);
	}
	MemoryContextSwitchTo(old);
	return slot;
}

static void
fileReScanForeignScan(ForeignScanState *node)
{
	FileScanState *st = node->fdw_state;

	finish_scan(st);
	st->fileno = -1;
}

static void
fileEndForeignScan(ForeignScanState *node)
{
	FileScanState *st = node->fdw_state;

	if (st)
		finish_scan(st);
}

Datum
migrate_file_fdw_handler(PG_FUNCTION_ARGS)
{
	FdwRoutine *routine = makeNode(FdwRoutine);

	routine->GetForeignRelSize = fileGetForeignRelSize;
	routine->GetForeignPaths = fileGetForeignPaths;
	routine->GetForeignPlan = fileGetForeignPlan;
	routine->ExplainForeignScan = fileExplainForeignScan;
	routine->BeginForeignScan = fileBeginForeignScan;
	routine->IterateForeignScan = fileIterateForeignScan;
	routine->ReScanForeignScan = fileReScanForeignScan;
	routine->EndForeignScan = fileEndForeignScan;
	PG_RETURN_POINTER(routine);
}
