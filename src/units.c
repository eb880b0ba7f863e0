/*-------------------------------------------------------------------------
 *
 * units.c
 *	  Cutting a table of a run into key ranges: the units of work that the
 *	  run's workers claim (migrate.run_range, kind 'load').
 *
 * A table gets up to 2 ranges per worker when it has more than a batch of
 * keys; one worker gives one range, and so does a key whose mapping reads
 * a sensitive column (migrate.sensitive_column: bounds are stored).  An integer key is cut by arithmetic on
 * [min, max] of the source; any other key at its quantiles, found by
 * reading the keys alone in key order.  The ranges are recorded by
 * catalog.c in the coordinator's planning transaction (with the deferred
 * index and foreign key units of defer.c), so a crash leaves all of a
 * run's units or none.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"

#include "migrate.h"

static List *cut_int_key(MigrateWork *w, MigrateTableLoad *tl);
static List *cut_at_quantiles(MigrateWork *w, MigrateTableLoad *tl);

/*
 * Cut points of an integer key: ranges of equal width over [min, max].
 *
 * count(*) keeps the planner from turning min and max into two "ORDER BY
 * key LIMIT 1" scans, which mysql_fdw ships without the LIMIT (MariaDB then
 * sorts the table twice); as one aggregate every FDW that can pushes it
 * down.  From postgres_fdw (minmax_count false) the two cheap LIMIT 1
 * queries are what we want, where count(*) would scan the remote table.
 */
static List *
cut_int_key(MigrateWork *w, MigrateTableLoad *tl)
{
	StringInfoData sql;
	List	   *bounds = NIL;
	bool		isnull;
	int64		kmin,
				kmax;
	double		span;
	double		width;
	int			nranges;
	Datum		d;
	int			ret;

	initStringInfo(&sql);
	appendStringInfo(&sql, "SELECT min(%s)::bigint, max(%s)::bigint%s FROM %s AS s",
					 tl->key_expr, tl->key_expr, tl->minmax_count ? ", count(*)" : "",
					 tl->source);
	if (tl->filter)
		appendStringInfo(&sql, " WHERE (%s)", tl->filter);
	ret = SPI_execute(sql.data, false, 1);
	if (ret != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "reading the key range of %s failed: %s", tl->source,
			 SPI_result_code_string(ret));
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	if (isnull)
		return NIL;				/* no keys: one range */
	kmin = DatumGetInt64(d);
	kmax = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));

	/* the span in keys, as a double: max - min may not fit an int64 */
	span = (double) kmax - (double) kmin + 1;
	nranges = (int) Min((double) w->parallel * 2, Max(1.0, span / w->batch_size));
	width = span / nranges;
	for (int r = 1; r < nranges; r++)
		bounds = lappend(bounds, psprintf(INT64_FORMAT, (int64) (kmin - 1 + width * r)));
	return bounds;
}

/*
 * Cut points of any other key: its quantiles, found by reading the keys
 * alone in key order, rows / nranges at a time (ORDER BY and LIMIT are
 * pushed down where the FDW can).  Only the boundaries are kept.
 */
static List *
cut_at_quantiles(MigrateWork *w, MigrateTableLoad *tl)
{
	MemoryContext cxt = CurrentMemoryContext;
	StringInfoData sql;
	List	   *bounds = NIL;
	int64		rows;
	int			nranges;
	bool		isnull;
	Datum		last = (Datum) 0;
	SPIPlanPtr	next_bound;
	Oid			ktypes[1] = {tl->key_type};
	int			ret;

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
	if (nranges <= 1)
		return NIL;

	resetStringInfo(&sql);
	appendStringInfo(&sql, "SELECT (SELECT k FROM (SELECT (%s) AS k FROM %s AS s"
					 " WHERE (%s) IS NOT NULL AND ($1 IS NULL OR (%s) > $1)",
					 tl->key_expr, tl->source, tl->key_expr, tl->key_expr);
	if (tl->filter)
		appendStringInfo(&sql, " AND (%s)", tl->filter);
	appendStringInfo(&sql, " ORDER BY 1 LIMIT " INT64_FORMAT ") b" MIGRATE_LAST_KEY_OF_SUBQUERY,
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
			char	   *text = migrate_key_to_text(tl, last);

			bounds = lappend(bounds, text);
			last = migrate_key_from_text(tl, text, cxt);
			MemoryContextSwitchTo(old);
		}
	}
	return bounds;
}

/*
 * Cut a table of the run into key ranges and record them (pending), with
 * the planner's estimate of its rows.  Needs SPI and the planning
 * transaction; allocates in the current memory context.
 */
void
migrate_plan_ranges(MigrateWork *w, Oid target)
{
	MigrateTableLoad *tl = palloc0(sizeof(MigrateTableLoad));
	List	   *bounds = NIL;	/* cut points (text): range r is (bound r-1, bound r] */
	int			nranges;
	MemoryContext cxt = CurrentMemoryContext;

	tl->target = target;
	migrate_load_describe(tl, w->plan);
	MemoryContextSwitchTo(cxt);

	/* a sensitive key is never written as a range bound: one range */
	if (w->parallel > 1 && !tl->key_sensitive)
		/*
		 * A file: in bytes, ranges of at least a first batch's guess
		 * (load.c); four a worker, since the workers finish together only
		 * when the last ranges are small, and a range that starts where its
		 * worker's last one stopped finds its start at no cost (filesrc.c).
		 */
		bounds = tl->file_source ? migrate_filesrc_cut(tl, w->parallel * 4, 64 * w->batch_size) :
			tl->int_key ? cut_int_key(w, tl) : cut_at_quantiles(w, tl);
	MemoryContextSwitchTo(cxt);

	nranges = list_length(bounds) + 1;
	for (int r = 1; r <= nranges; r++)
		migrate_catalog_add_load_unit(w->run_id, target, r,
									  r > 1 ? (char *) list_nth(bounds, r - 2) : NULL,
									  r < nranges ? (char *) list_nth(bounds, r - 1) : NULL);
	migrate_catalog_table_estimate(w->run_id, target);
}
