/*-------------------------------------------------------------------------
 *
 * undo.c
 *	  The undo log of a run's writes (DESIGN.md "Strategies", rollback):
 *	  whether a table of a run keeps one (run_table.undo, decided when the
 *	  run is planned), and the SQL that makes each write of the run record
 *	  its undo rows in the same statement and transaction.
 *
 * run_table.undo is 'empty' when the target has no row when the run is
 * planned (the rollback empties it: nothing is logged), 'off' for dry
 * runs and when the plan's or the table's options say undo = 'off', and
 * 'log' otherwise.  A resume keeps the decision (planning happens once).
 *
 * Under 'log' every write of the run to the target is one statement that
 * also inserts, per key written, the key (its columns as text), the row
 * as it was (the target's row type as text; NULL: the key was absent) and
 * the xmin of the row it left (NULL: it deleted the row) into a temporary
 * table of the session (tl->undo_into, ON COMMIT DELETE ROWS).  The
 * statement runs as the plan's owner, who may not write migrate.undo;
 * before the batch commits, catalog_strategies.c moves those rows into
 * migrate.undo as the extension's owner (migrate_undo_flush).  The
 * pre-image of an upsert's overwritten row comes from the target read in
 * the statement's outer query: a data-modifying CTE and the query around
 * it share one snapshot, so the outer query sees the rows as they were
 * before the CTE changed them (test/sql/80_rollback.sql checks this).
 * Plain inserts and skip_existing overwrite nothing and record only the
 * keys and xmins.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "nodes/makefuncs.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

#include "migrate.h"

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
	const char *undo = "off";
	int			ret;

	ret = SPI_execute_with_args("SELECT coalesce(m.options->>'undo', p.options->>'undo', '') = 'off'"
								"  FROM migrate.run r JOIN migrate.plan p ON p.plan_name = r.plan"
								"  JOIN migrate.table_map m ON m.plan = r.plan AND m.target = $2"
								" WHERE r.run_id = $1",
								2, argtypes, args, NULL, true, 1);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "reading the undo option failed: %s", SPI_result_code_string(ret));
	off = SPI_processed != 1 ||
		DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
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
	}
	migrate_catalog_table_undo(w->run_id, target, undo);
}

/*
 * The run's undo decision for tl's target: under 'log', name the session's
 * temporary table the writes record into (created if missing, so that the
 * statements that name it can be prepared).  After migrate_load_describe.
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
	if (tl->run_id == 0 || tl->dry_run)
		return;
	ret = SPI_execute_with_args("SELECT undo = 'log' FROM migrate.run_table WHERE run_id = $1 AND target = $2",
								2, argtypes, args, NULL, true, 1);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "reading migrate.run_table failed: %s", SPI_result_code_string(ret));
	if (SPI_processed == 1 &&
		DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)))
	{
		tl->undo_into = MemoryContextStrdup(cxt, psprintf("pg_temp.migrate_undo_%u", tl->target));
		migrate_undo_begin(tl);
	}
	MemoryContextSwitchTo(cxt);	/* SPI calls return in SPI's context */
}

/*
 * Before a write of tl's target: its undo table exists in this session (a
 * transaction that created it and aborted took it along).  Cheap: a
 * catalog lookup.
 */
void
migrate_undo_begin(MigrateTableLoad *tl)
{
	MemoryContext cxt = CurrentMemoryContext;

	if (tl->undo_into == NULL)
		return;
	if (!OidIsValid(RangeVarGetRelid(makeRangeVar("pg_temp", psprintf("migrate_undo_%u", tl->target), -1),
									 NoLock, true)))
		migrate_catalog_undo_table(tl->undo_into);
	MemoryContextSwitchTo(cxt);
}

/* The writes' undo rows so far into migrate.undo, in their transaction. */
void
migrate_undo_flush(MigrateTableLoad *tl)
{
	MemoryContext cxt = CurrentMemoryContext;

	if (tl->undo_into)
		migrate_catalog_undo_flush(tl->run_id, tl->target, tl->undo_into);
	MemoryContextSwitchTo(cxt);
}

/*
 * delete_sql ("DELETE FROM target AS t WHERE ...") made to record the rows
 * it deletes; it then returns SPI_OK_INSERT, one row per row deleted.
 * Unchanged without an undo log.
 */
char *
migrate_undo_wrap_delete(MigrateTableLoad *tl, const char *delete_sql)
{
	StringInfoData sql;
	ListCell   *lc;

	if (tl->undo_into == NULL)
		return (char *) delete_sql;
	initStringInfo(&sql);
	appendStringInfo(&sql, "WITH d AS (%s RETURNING ARRAY[", delete_sql);
	foreach(lc, tl->keycols)
		appendStringInfo(&sql, "%s(t.%s)::text", foreach_current_index(lc) ? ", " : "",
						 quote_identifier(lfirst(lc)));
	appendStringInfo(&sql, "] AS k, t::text AS pre) INSERT INTO %s (key, pre, post_xmin)"
					 " SELECT d.k, d.pre, NULL FROM d", tl->undo_into);
	return sql.data;
}

/*
 * The end of the batch statement (sql holds "WITH w AS (INSERT ... [ON
 * CONFLICT ...]") under an undo log: RETURNING the keys written, whether
 * the statement inserted them and the xmin it left; the undo rows go to
 * tl->undo_into; a sync's keys to tl->returning_into as well.  The main
 * query inserts one row per row written (SPI_processed stays the rows
 * written).  Only upsert overwrites rows: it reads their old versions by
 * key, one index probe per updated row, in a subquery (never a join the
 * planner might turn into a scan of the whole target).
 */
void
migrate_undo_batch_sql(MigrateTableLoad *tl, StringInfo sql)
{
	ListCell   *lc;
	StringInfoData undo;
	bool		upsert = strcmp(tl->mode, "upsert") == 0;

	appendStringInfoString(sql, " RETURNING ");
	foreach(lc, tl->keycols)
		appendStringInfo(sql, "t.%s, ", quote_identifier(lfirst(lc)));
	/* xmax is 0 on a row the statement inserted, not on one it updated */
	appendStringInfoString(sql, "t.xmax::text = '0' AS __migrate_ins, t.xmin AS __migrate_post)");

	initStringInfo(&undo);
	appendStringInfo(&undo, "INSERT INTO %s (key, pre, post_xmin) SELECT ARRAY[", tl->undo_into);
	foreach(lc, tl->keycols)
		appendStringInfo(&undo, "%s(w.%s)::text", foreach_current_index(lc) ? ", " : "",
						 quote_identifier(lfirst(lc)));
	appendStringInfoString(&undo, "], ");
	if (upsert)
	{
		appendStringInfo(&undo, "CASE WHEN w.__migrate_ins THEN NULL ELSE (SELECT o::text FROM %s AS o WHERE ",
						 tl->into);
		foreach(lc, tl->keycols)
			appendStringInfo(&undo, "%so.%s = w.%s", foreach_current_index(lc) ? " AND " : "",
							 quote_identifier(lfirst(lc)), quote_identifier(lfirst(lc)));
		appendStringInfoString(&undo, ") END");
	}
	else
		appendStringInfoString(&undo, "NULL");
	appendStringInfoString(&undo, ", w.__migrate_post FROM w");

	if (tl->returning_into == NULL)
	{
		appendStringInfo(sql, " %s", undo.data);
		return;
	}
	appendStringInfo(sql, ", u AS (%s) INSERT INTO %s SELECT ", undo.data, tl->returning_into);
	foreach(lc, tl->keycols)
		appendStringInfo(sql, "w.%s, ", quote_identifier(lfirst(lc)));
	appendStringInfoString(sql, "w.__migrate_ins FROM w");
}
