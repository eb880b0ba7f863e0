/*-------------------------------------------------------------------------
 *
 * rollback.c
 *	  migrate_rollback(run, force): a run's targets back to what they were
 *	  before it, from its undo log (src/undo.c); and
 *	  migrate_rollback_conflicts(run): the rows a rollback leaves alone.
 *
 * Both run as the plan's owner (migrate_call_as_owner, sql/run.sql) in the
 * caller's transaction, so a rollback is all or nothing: killed half way,
 * it left nothing done and a second call does it exactly.  Per table:
 *
 *	 'empty'  the table had no row when the run started: every row goes,
 *			  unless rows the run did not write are there (its row count is
 *			  not what the run wrote, or a later run wrote the table): then
 *			  the table is one conflict, emptied only when forced.
 *	 'log'	  the undo rows, one per key, gathered into a temporary table:
 *			  the row before the run's first write of the key, the xmin its
 *			  last write left (gather_typed() from the run's typed undo
 *			  table, in key order; a run of 0.7 or a target whose columns
 *			  changed: catalog_strategies.c, as text); a key whose row is
 *			  not what the run left (another xmin, absent, or present after
 *			  the run deleted it) is a conflict and is left alone unless
 *			  forced; the others are replayed: first the rows the run
 *			  deleted are inserted again (parents first: load order), then
 *			  the rows it overwrote are updated back and the rows it
 *			  inserted are deleted (children first: reverse load order);
 *			  the replayed undo rows are deleted, so what stays in the log
 *			  are the conflicts.
 *	 'off'	  no undo log (dry runs, runs before 0.7, undo = 'off'): refused.
 *
 * Each table is locked (SHARE ROW EXCLUSIVE) before it is checked, so no
 * writer changes a row between its check and its replay.  Every statement
 * is set-based over the run's rows and reaches the target through its key
 * index (a nested loop: hash and merge joins are off for the replay when
 * such an index exists), so the time grows with the rows the run changed,
 * not with the table.  migrate.rollback records each table
 * (catalog_strategies.c); a table recorded 'done' is never touched again,
 * so a second call changes nothing.  A run of mode 'cutover' is handed to
 * migrate_cutover_reverse() (cutover.c).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/regproc.h"
#include "utils/tuplestore.h"

#include "migrate.h"
#include "catalog.h"

PG_FUNCTION_INFO_V1(migrate_rollback_run);
PG_FUNCTION_INFO_V1(migrate_rollback_conflicts);

/* at most this many conflicting keys are named in the WARNING */
#define ROLLBACK_WARN_KEYS 10

typedef struct RollbackTable
{
	Oid			target;
	char	   *name;			/* regclass text */
	char	   *undo;			/* off, empty, log */
	char	   *done;			/* migrate.rollback.state, or NULL */
	int64		rows_written;
	char	   *rb;				/* 'log': the gathered undo rows (temp table) */
	bool		typed;			/* rb gathered from the run's typed undo table */
	bool		key_index;		/* an index leads with exactly the key columns */
	List	   *keycols;		/* key columns (quoted), in key order */
	List	   *keytypes;		/* their types */
	List	   *cols;			/* insertable columns (quoted) */
	List	   *setcols;		/* of those, updatable and not key */
	bool		key_sensitive;
	bool		skip;			/* nothing to do: done before */
	int64		conflicts;
	int64		deleted;
	int64		restored;
	int64		reinserted;
} RollbackTable;

static RollbackTable *read_tables(int64 run_id, const char *plan, int *ntables, char **mode);
static void describe_table(RollbackTable *t, const char *plan);
static void check_table(int64 run_id, RollbackTable *t);
static void replay_reinserts(RollbackTable *t, bool force);
static void replay_restores_deletes(RollbackTable *t, bool force);
static int64 exec_count(const char *sql, int expected, const char *what);
static char *key_join(RollbackTable *t, const char *alias);
static char *typed_key_join(RollbackTable *t, const char *alias);
static bool gather_typed(int64 run_id, RollbackTable *t);
static void warn_conflicts(int64 run_id, RollbackTable *t);

/* "x.k1 = (alias.key[1])::type1 AND ...": the target row x of an undo row */
static char *
key_join(RollbackTable *t, const char *alias)
{
	StringInfoData sql;
	ListCell   *c,
			   *ty;

	initStringInfo(&sql);
	forboth(c, t->keycols, ty, t->keytypes)
		appendStringInfo(&sql, "%sx.%s = (%s.key[%d])::%s", foreach_current_index(c) ? " AND " : "",
						 (char *) lfirst(c), alias, foreach_current_index(c) + 1, (char *) lfirst(ty));
	return sql.data;
}

/* "x.k1 = alias.k1 AND ...": the target row x of a typed undo row (rb's k<n>) */
static char *
typed_key_join(RollbackTable *t, const char *alias)
{
	StringInfoData sql;
	ListCell   *c;

	initStringInfo(&sql);
	foreach(c, t->keycols)
		appendStringInfo(&sql, "%sx.%s = %s.k%d", foreach_current_index(c) ? " AND " : "",
						 (char *) lfirst(c), alias, foreach_current_index(c) + 1);
	return sql.data;
}

/* the replay's join of undo rows to the target, as typed or as text keys */
static char *
replay_join(RollbackTable *t, const char *alias)
{
	return t->typed ? typed_key_join(t, alias) : key_join(t, alias);
}

static int64
exec_count(const char *sql, int expected, const char *what)
{
	int			ret = SPI_execute(sql, false, 0);

	if (ret != expected)
		elog(ERROR, "%s failed: %s", what, SPI_result_code_string(ret));
	return (int64) SPI_processed;
}

/* The run's tables in load order, with what a rollback already did. */
static RollbackTable *
read_tables(int64 run_id, const char *plan, int *ntables, char **mode)
{
	Oid			argtypes[1] = {INT8OID};
	Datum		args[1] = {Int64GetDatum(run_id)};
	RollbackTable *tables;
	MemoryContext cxt = CurrentMemoryContext;
	int			ret;
	bool		isnull;

	ret = SPI_execute_with_args("SELECT mode, state FROM migrate.run WHERE run_id = $1",
								1, argtypes, args, NULL, true, 1);
	if (ret != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "reading migrate.run failed: %s", SPI_result_code_string(ret));
	*mode = MemoryContextStrdup(cxt, SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1));
	if (strcmp(SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2), "running") == 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_IN_USE),
				 errmsg("run " INT64_FORMAT " of migration plan \"%s\" is running", run_id, plan),
				 errhint("Wait for it to end, or stop it with migrate_cancel(), then roll it back.")));

	ret = SPI_execute_with_args("SELECT t.target::pg_catalog.oid, t.target::text, t.undo, b.state,"
								"       t.rows_written"
								"  FROM migrate.run_table t LEFT JOIN migrate.rollback b"
								"    ON b.run_id = t.run_id AND b.target = t.target"
								" WHERE t.run_id = $1 ORDER BY t.load_order, t.target::text",
								1, argtypes, args, NULL, true, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "reading migrate.run_table failed: %s", SPI_result_code_string(ret));
	*ntables = (int) SPI_processed;
	tables = MemoryContextAllocZero(cxt, sizeof(RollbackTable) * Max(*ntables, 1));
	for (int i = 0; i < *ntables; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		char	   *done = SPI_getvalue(tup, desc, 4);

		tables[i].target = DatumGetObjectId(SPI_getbinval(tup, desc, 1, &isnull));
		tables[i].name = MemoryContextStrdup(cxt, SPI_getvalue(tup, desc, 2));
		tables[i].undo = MemoryContextStrdup(cxt, SPI_getvalue(tup, desc, 3));
		tables[i].done = done ? MemoryContextStrdup(cxt, done) : NULL;
		tables[i].rows_written = DatumGetInt64(SPI_getbinval(tup, desc, 5, &isnull));
		tables[i].skip = done && strcmp(done, "done") == 0;
	}
	return tables;
}

/*
 * The target's key (the mapping's, with the types of the target's
 * columns), its columns as an INSERT and an UPDATE restore them, and
 * whether a key column is sensitive.
 */
static void
describe_table(RollbackTable *t, const char *plan)
{
	Oid			argtypes[2] = {TEXTOID, OIDOID};
	Datum		args[2] = {CStringGetTextDatum(plan), ObjectIdGetDatum(t->target)};
	MemoryContext cxt = CurrentMemoryContext;
	int			ret;

	ret = SPI_execute_with_args("SELECT quote_ident(a.attname), format_type(a.atttypid, NULL),"
								"       k.n, a.attidentity = 'a', a.attname = ANY (migrate._sensitive_targets($1, $2))"
								"  FROM pg_catalog.pg_attribute a"
								"  LEFT JOIN (SELECT c.name, c.n FROM migrate.table_map m,"
								"             unnest(m.key::text[]) WITH ORDINALITY AS c(name, n)"
								"             WHERE m.plan = $1 AND m.target = $2) k ON k.name = a.attname::text"
								" WHERE a.attrelid = $2 AND a.attnum > 0 AND NOT a.attisdropped"
								"   AND a.attgenerated = '' ORDER BY k.n NULLS LAST, a.attnum",
								2, argtypes, args, NULL, true, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "reading the columns of %s failed: %s", t->name, SPI_result_code_string(ret));
	MemoryContextSwitchTo(cxt);
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		char	   *col = MemoryContextStrdup(cxt, SPI_getvalue(tup, desc, 1));
		bool		isnull;
		bool		is_key;

		(void) SPI_getbinval(tup, desc, 3, &is_key);
		is_key = !is_key;
		t->cols = lappend(t->cols, col);
		if (is_key)
		{
			t->keycols = lappend(t->keycols, col);
			t->keytypes = lappend(t->keytypes, MemoryContextStrdup(cxt, SPI_getvalue(tup, desc, 2)));
			if (DatumGetBool(SPI_getbinval(tup, desc, 5, &isnull)) && !isnull)
				t->key_sensitive = true;
		}
		else if (!DatumGetBool(SPI_getbinval(tup, desc, 4, &isnull)))
			t->setcols = lappend(t->setcols, col);
	}
	if (t->keycols == NIL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("table %s is no longer mapped in migration plan \"%s\": its key is unknown",
						t->name, plan),
				 errhint("Map it again with migrate_table() and the same key, then roll back.")));

	/* a valid, plain index whose leading columns are the key: replay probes it */
	ret = SPI_execute_with_args("SELECT EXISTS (SELECT FROM pg_catalog.pg_index i"
								"  WHERE i.indrelid = $2 AND i.indisvalid AND i.indpred IS NULL"
								"    AND i.indnkeyatts >= s.n"
								"    AND (SELECT pg_catalog.array_agg(k ORDER BY k)"
								"           FROM pg_catalog.unnest(((i.indkey::pg_catalog.int2[])[0:s.n - 1])) k) = s.ka)"
								"  FROM (SELECT pg_catalog.array_agg(a.attnum ORDER BY a.attnum) AS ka,"
								"               pg_catalog.count(*)::integer AS n"
								"          FROM migrate.table_map m, pg_catalog.unnest(m.key::text[]) c(name)"
								"          JOIN pg_catalog.pg_attribute a ON a.attrelid = $2 AND a.attname = c.name"
								"         WHERE m.plan = $1 AND m.target = $2) s",
								2, argtypes, args, NULL, true, 1);
	if (ret != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "reading the indexes of %s failed: %s", t->name, SPI_result_code_string(ret));
	{
		bool		isnull;

		t->key_index = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)) &&
			!isnull;
	}
}

/*
 * The undo rows of a run made since 0.8 (its undo table only, no row in
 * migrate.undo, the target's columns unchanged since the run), into t->rb
 * without a text round trip: one row per key, in key order (so a replay
 * probes the target's key index in order), the key twice: as text[] (key,
 * shown in conflicts, matched by _undo_forget) and typed (k1, k2, ...);
 * op ('i': the key was absent before the run), pre (the row before, the
 * target's row type), post (the xmin the run's last write left), absent
 * and conflict for check_table.  Read as the extension's owner, who alone
 * reads the undo table; the current role may read rb and set absent and
 * conflict.  False (nothing made): the text path (catalog_strategies.c)
 * gathers them.
 */
static bool
gather_typed(int64 run_id, RollbackTable *t)
{
	Oid			argtypes[2] = {INT8OID, OIDOID};
	Datum		args[2] = {Int64GetDatum(run_id), ObjectIdGetDatum(t->target)};
	char	   *undo;
	char	   *rowcols;
	char	   *grantee = GetUserNameFromId(GetUserId(), false);
	StringInfoData keys;
	StringInfoData textkey;
	StringInfoData typedkey;
	StringInfoData sql;
	ListCell   *c;
	bool		isnull;

	(void) migrate_catalog_exec("SELECT u.oid IS NOT NULL"
								"   AND NOT EXISTS (SELECT FROM migrate.undo o WHERE o.run_id = $1 AND o.target = $2)"
								"   AND NOT EXISTS (SELECT FROM pg_catalog.pg_attribute a"
								"        WHERE a.attrelid = $2 AND a.attnum > 0 AND NOT a.attisdropped"
								"          AND NOT EXISTS (SELECT FROM pg_catalog.pg_attribute b WHERE b.attrelid = u.oid"
								"                AND b.attname = a.attname AND NOT b.attisdropped"
								"                AND b.atttypid = a.atttypid)),"
								"       u.oid::pg_catalog.regclass::text,"
								"       (SELECT pg_catalog.string_agg(pg_catalog.format('u.%I', a.attname), ', ' ORDER BY a.attnum)"
								"          FROM pg_catalog.pg_attribute a"
								"         WHERE a.attrelid = $2 AND a.attnum > 0 AND NOT a.attisdropped)"
								"  FROM (SELECT pg_catalog.to_regclass(pg_catalog.format('migrate.undo_%s_%s', $1, $2::pg_catalog.oid))"
								"               ::pg_catalog.oid AS oid) u",
								2, argtypes, args, NULL, SPI_OK_SELECT, "reading the undo table's columns");
	if (SPI_processed != 1 ||
		!DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)) || isnull)
		return false;
	undo = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);
	rowcols = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3);

	initStringInfo(&keys);
	initStringInfo(&textkey);
	initStringInfo(&typedkey);
	foreach(c, t->keycols)
	{
		const char *sep = foreach_current_index(c) ? ", " : "";

		appendStringInfo(&keys, "%su.%s", sep, (char *) lfirst(c));
		appendStringInfo(&textkey, "%s(u.%s)::pg_catalog.text", sep, (char *) lfirst(c));
		appendStringInfo(&typedkey, ", u.%s AS k%d", (char *) lfirst(c), foreach_current_index(c) + 1);
	}

	/* an earlier call of the transaction (migrate_rollback_conflicts) made one */
	if (OidIsValid(RangeVarGetRelid(makeRangeVarFromNameList(stringToQualifiedNameList(t->rb)), NoLock, true)))
		(void) migrate_catalog_exec(psprintf("DROP TABLE %s", t->rb),
									0, NULL, NULL, NULL, SPI_OK_UTILITY, "dropping the rollback table");
	/*
	 * One sort: the window's partition order is the DISTINCT ON's, so the
	 * first write of a key gives op and pre, its last one post.
	 */
	initStringInfo(&sql);
	appendStringInfo(&sql, "CREATE TEMPORARY TABLE %s ON COMMIT DROP AS"
					 " SELECT DISTINCT ON (%s) ARRAY[%s] AS key, u.__migrate_op AS op,"
					 "   CASE WHEN u.__migrate_op <> 'i' THEN ROW(%s)::%s END AS pre,"
					 "   pg_catalog.last_value(u.__migrate_post) OVER w AS post,"
					 "   false AS absent, NULL::pg_catalog.text AS conflict%s"
					 "  FROM %s u"
					 " WINDOW w AS (PARTITION BY %s ORDER BY u.__migrate_txn, u.__migrate_ord"
					 "              ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)"
					 " ORDER BY %s, u.__migrate_txn, u.__migrate_ord",
					 t->rb, keys.data, textkey.data, rowcols, t->name, typedkey.data, undo,
					 keys.data, keys.data);
	(void) migrate_catalog_exec(sql.data, 0, NULL, NULL, NULL, SPI_OK_UTILITY, "reading the undo table");
	(void) migrate_catalog_exec(psprintf("ANALYZE %s", t->rb),
								0, NULL, NULL, NULL, SPI_OK_UTILITY, "analyzing the rollback table");
	(void) migrate_catalog_exec(psprintf("GRANT SELECT, UPDATE ON %s TO %s", t->rb, quote_identifier(grantee)),
								0, NULL, NULL, NULL, SPI_OK_UTILITY, "granting the rollback table");
	t->typed = true;
	return true;
}

/*
 * Lock the table, find its conflicts (sets t->conflicts); under 'log'
 * gather its undo rows first.
 */
static void
check_table(int64 run_id, RollbackTable *t)
{
	Oid			argtypes[3] = {INT8OID, OIDOID, INT8OID};
	Datum		args[3] = {Int64GetDatum(run_id), ObjectIdGetDatum(t->target), Int64GetDatum(t->rows_written)};
	bool		isnull;
	int			ret;

	(void) exec_count(psprintf("LOCK TABLE %s IN SHARE ROW EXCLUSIVE MODE", t->name), SPI_OK_UTILITY,
					  "locking the table");
	if (strcmp(t->undo, "empty") == 0)
	{
		/* rows the run did not write: a count not the run's, or a later run */
		ret = SPI_execute_with_args(psprintf("SELECT (SELECT count(*) FROM %s) <> $3"
											 "    OR EXISTS (SELECT 1 FROM migrate.run_table l"
											 "               JOIN migrate.run lr ON lr.run_id = l.run_id"
											 "               WHERE l.target = $2 AND l.run_id > $1"
											 "                 AND l.rows_written > 0 AND NOT lr.dry_run"
											 "                 AND NOT EXISTS (SELECT 1 FROM migrate.rollback b"
											 "                                 WHERE b.run_id = l.run_id AND b.target = $2"
											 "                                   AND b.state = 'done'))", t->name),
									3, argtypes, args, NULL, false, 1);
		if (ret != SPI_OK_SELECT || SPI_processed != 1)
			elog(ERROR, "checking %s failed: %s", t->name, SPI_result_code_string(ret));
		t->conflicts = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)) ? 1 : 0;
		return;
	}
	t->rb = psprintf("pg_temp.migrate_rollback_%u", t->target);
	if (gather_typed(run_id, t))
	{
		/*
		 * The target's xmin of each key, probed by key; only the keys whose
		 * row is not what the run left are written (absent, a conflict).
		 */
		char	   *cur = psprintf("(SELECT x.xmin FROM %s AS x WHERE %s)", t->name, typed_key_join(t, "r"));

		(void) exec_count(psprintf("UPDATE %s AS r SET (absent, conflict) = (SELECT c.cur IS NULL, CASE"
								   "   WHEN r.post IS NULL THEN CASE WHEN c.cur IS NOT NULL"
								   "     THEN 'present again since the run' END"
								   "   WHEN c.cur IS NULL THEN 'deleted since the run'"
								   "   WHEN NOT (c.cur = r.post) THEN 'changed since the run' END"
								   "  FROM (SELECT %s AS cur OFFSET 0) c)"
								   " WHERE NOT COALESCE(%s = r.post, false)",
								   t->rb, cur, cur),
						  SPI_OK_UPDATE, "checking the rows to roll back");
		t->conflicts = exec_count(psprintf("SELECT 1 FROM %s WHERE conflict IS NOT NULL", t->rb),
								  SPI_OK_SELECT, "counting the conflicts");
		return;
	}
	migrate_catalog_rollback_gather(run_id, t->target, t->rb);
	(void) exec_count(psprintf("UPDATE %s AS u SET absent = c.cur IS NULL, conflict = CASE"
							   "   WHEN u.post IS NULL THEN CASE WHEN c.cur IS NOT NULL"
							   "     THEN 'present again since the run' END"
							   "   WHEN c.cur IS NULL THEN 'deleted since the run'"
							   "   WHEN NOT (c.cur = u.post) THEN 'changed since the run' END"
							   "  FROM (SELECT r.key, (SELECT x.xmin FROM %s AS x WHERE %s) AS cur FROM %s AS r) c"
							   " WHERE c.key = u.key",
							   t->rb, t->name, key_join(t, "r"), t->rb),
					  SPI_OK_UPDATE, "checking the rows to roll back");
	t->conflicts = exec_count(psprintf("SELECT 1 FROM %s WHERE conflict IS NOT NULL", t->rb),
							  SPI_OK_SELECT, "counting the conflicts");
}

/*
 * Phase 1, parents first (load order): the rows the run deleted (absent
 * now, with a row before the run) are inserted again.  They reference only
 * rows that were there before the run: present, or inserted again here
 * before them.
 */
static void
replay_reinserts(RollbackTable *t, bool force)
{
	StringInfoData sql;
	ListCell   *lc;

	if (strcmp(t->undo, "log") != 0)
		return;
	initStringInfo(&sql);
	appendStringInfo(&sql, "INSERT INTO %s (", t->name);
	foreach(lc, t->cols)
		appendStringInfo(&sql, "%s%s", foreach_current_index(lc) ? ", " : "", (char *) lfirst(lc));
	appendStringInfoString(&sql, ") OVERRIDING SYSTEM VALUE SELECT ");
	if (t->typed)
	{
		foreach(lc, t->cols)
			appendStringInfo(&sql, "%s(r.pre).%s", foreach_current_index(lc) ? ", " : "", (char *) lfirst(lc));
		appendStringInfo(&sql, " FROM %s AS r WHERE r.op <> 'i' AND r.absent AND (r.conflict IS NULL OR %s)",
						 t->rb, force ? "true" : "false");
		t->reinserted = exec_count(sql.data, SPI_OK_INSERT, "inserting the rows the run deleted");
		return;
	}
	foreach(lc, t->cols)
		appendStringInfo(&sql, "%s(v.row).%s", foreach_current_index(lc) ? ", " : "", (char *) lfirst(lc));
	/* r.pre::target is parsed once per row (OFFSET 0 keeps it a subquery) */
	appendStringInfo(&sql, " FROM (SELECT r.pre::%s AS row FROM %s AS r"
					 " WHERE r.pre IS NOT NULL AND r.absent AND (r.conflict IS NULL OR %s) OFFSET 0) v",
					 t->name, t->rb, force ? "true" : "false");
	t->reinserted = exec_count(sql.data, SPI_OK_INSERT, "inserting the rows the run deleted");
}

/*
 * Phase 2, children first (reverse load order): the rows the run
 * overwrote are updated back (a child then references what it did before
 * the run), then the rows it inserted are deleted (nothing restored points
 * at them any more); an 'empty' table is emptied.
 */
static void
replay_restores_deletes(RollbackTable *t, bool force)
{
	StringInfoData sql;
	ListCell   *lc;
	const char *replay = force ? "true" : "false";
	int			nest = 0;

	if (strcmp(t->undo, "empty") == 0)
	{
		if (t->conflicts == 0 || force)
			t->deleted = exec_count(psprintf("DELETE FROM %s", t->name), SPI_OK_DELETE,
									"emptying the table");
		return;
	}
	/*
	 * Each undo row probes the target's key index (a nested loop), so the
	 * cost follows the run's rows: a hash or merge join reads the whole
	 * table.  Only where such an index exists, undone at the end.
	 */
	if (t->key_index)
	{
		nest = NewGUCNestLevel();
		(void) set_config_option("enable_hashjoin", "off", PGC_USERSET, PGC_S_SESSION,
								 GUC_ACTION_SAVE, true, 0, false);
		(void) set_config_option("enable_mergejoin", "off", PGC_USERSET, PGC_S_SESSION,
								 GUC_ACTION_SAVE, true, 0, false);
	}
	initStringInfo(&sql);
	if (t->setcols != NIL)
	{
		appendStringInfo(&sql, "UPDATE %s AS x SET ", t->name);
		if (t->typed)
		{
			foreach(lc, t->setcols)
				appendStringInfo(&sql, "%s%s = (r.pre).%s", foreach_current_index(lc) ? ", " : "",
								 (char *) lfirst(lc), (char *) lfirst(lc));
			appendStringInfo(&sql, " FROM %s AS r WHERE r.op <> 'i' AND NOT r.absent"
							 " AND (r.conflict IS NULL OR %s) AND %s", t->rb, replay, replay_join(t, "r"));
		}
		else
		{
			foreach(lc, t->setcols)
				appendStringInfo(&sql, "%s%s = (v.row).%s", foreach_current_index(lc) ? ", " : "",
								 (char *) lfirst(lc), (char *) lfirst(lc));
			appendStringInfo(&sql, " FROM (SELECT r.key, r.pre::%s AS row FROM %s AS r"
							 " WHERE r.pre IS NOT NULL AND NOT r.absent AND (r.conflict IS NULL OR %s) OFFSET 0) v"
							 " WHERE %s", t->name, t->rb, replay, key_join(t, "v"));
		}
		t->restored = exec_count(sql.data, SPI_OK_UPDATE, "restoring the rows the run overwrote");
	}
	else
		t->restored = exec_count(psprintf("SELECT 1 FROM %s AS r WHERE %s AND NOT r.absent"
										  " AND (r.conflict IS NULL OR %s)", t->rb,
										  t->typed ? "r.op <> 'i'" : "r.pre IS NOT NULL", replay),
								 SPI_OK_SELECT, "counting the rows the run overwrote");
	t->deleted = exec_count(psprintf("DELETE FROM %s AS x USING %s AS r WHERE %s"
									 " AND NOT r.absent AND (r.conflict IS NULL OR %s) AND %s",
									 t->name, t->rb, t->typed ? "r.op = 'i'" : "r.pre IS NULL",
									 replay, replay_join(t, "r")),
							SPI_OK_DELETE, "deleting the rows the run inserted");
	if (t->key_index)
		AtEOXact_GUC(true, nest);
}

/* The key shown for an undo row r (masked when a key column is sensitive). */
static const char *
key_text_sql(RollbackTable *t)
{
	if (t->key_sensitive)
		return "'***'::text";
	return "CASE WHEN pg_catalog.cardinality(r.key) = 1 THEN r.key[1] ELSE r.key::text END";
}

/* Name the first conflicting keys of t in a WARNING. */
static void
warn_conflicts(int64 run_id, RollbackTable *t)
{
	StringInfoData keys;
	int			ret;

	initStringInfo(&keys);
	if (t->rb)
	{
		ret = SPI_execute(psprintf("SELECT %s, r.conflict FROM %s AS r WHERE r.conflict IS NOT NULL"
								   " ORDER BY r.key LIMIT %d", key_text_sql(t), t->rb, ROLLBACK_WARN_KEYS),
						  false, 0);
		if (ret != SPI_OK_SELECT)
			elog(ERROR, "reading the conflicts failed: %s", SPI_result_code_string(ret));
		for (uint64 i = 0; i < SPI_processed; i++)
			appendStringInfo(&keys, "%skey %s (%s)", i ? ", " : "",
							 SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1),
							 SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2));
		if (t->conflicts > ROLLBACK_WARN_KEYS)
			appendStringInfo(&keys, " and " INT64_FORMAT " more", t->conflicts - ROLLBACK_WARN_KEYS);
	}
	else
		appendStringInfoString(&keys, "the table has rows the run did not write");
	ereport(WARNING,
			(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
			 errmsg("rollback of run " INT64_FORMAT " left " INT64_FORMAT " row%s of %s alone: changed since the run",
					run_id, t->conflicts, t->conflicts == 1 ? "" : "s", t->name),
			 errdetail("%s", keys.data),
			 errhint("See migrate_rollback_conflicts(" INT64_FORMAT "); migrate_rollback(" INT64_FORMAT
					 ", force => true) overwrites them.", run_id, run_id)));
}

/*
 * No JIT for the rollback's statements: each runs once, over the run's
 * rows, and compiling costs tens of milliseconds a statement.  Returns the
 * GUC nest level that AtEOXact_GUC() ends.
 */
static int
no_jit(void)
{
	int			nest = NewGUCNestLevel();

	(void) set_config_option("jit", "off", PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	return nest;
}

/*
 * The run's tables, checked: refuses a table without an undo log.  Sets
 * *all_done when a rollback already did every table.
 */
static RollbackTable *
prepare_tables(int64 run_id, const char *plan, int *ntables, bool *all_done, char **mode)
{
	RollbackTable *tables = read_tables(run_id, plan, ntables, mode);

	*all_done = true;
	if (strcmp(*mode, "cutover") == 0)
		return tables;
	for (int i = 0; i < *ntables; i++)
	{
		RollbackTable *t = &tables[i];

		if (t->skip)
			continue;
		*all_done = false;
		if (strcmp(t->undo, "off") == 0)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("run " INT64_FORMAT " of migration plan \"%s\" kept no undo log of table %s",
							run_id, plan, t->name),
					 errdetail("Dry runs, runs made before migrate 0.7 and plans or tables with options undo = 'off' keep none."),
					 errhint("Restore the table from a backup taken before the run.")));
	}
	if (*all_done)
		return tables;
	for (int i = 0; i < *ntables; i++)
	{
		if (tables[i].skip)
			continue;
		if (strcmp(tables[i].undo, "log") == 0)
			describe_table(&tables[i], plan);
		check_table(run_id, &tables[i]);
	}
	return tables;
}

/*
 * migrate._migrate_rollback(run bigint, force boolean) RETURNS TABLE
 * (target regclass, rows_deleted bigint, rows_restored bigint,
 * rows_reinserted bigint, conflicts bigint), as the plan's owner.
 */
Datum
migrate_rollback_run(PG_FUNCTION_ARGS)
{
	int64		run_id = PG_GETARG_INT64(0);
	bool		force = !PG_ARGISNULL(1) && PG_GETARG_BOOL(1);
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	RollbackTable *tables;
	char	   *plan;
	char	   *mode;
	int			ntables;
	bool		all_done;
	int64		sum[4] = {0, 0, 0, 0};
	int			nest;

	InitMaterializedSRF(fcinfo, 0);
	migrate_catalog_spi_connect();
	plan = migrate_catalog_check_run_caller(run_id);
	nest = no_jit();
	tables = prepare_tables(run_id, plan, &ntables, &all_done, &mode);
	if (strcmp(mode, "cutover") == 0)
	{
		AtEOXact_GUC(true, nest);
		migrate_catalog_spi_finish();
		migrate_cutover_reverse(run_id, force);
		PG_RETURN_VOID();
	}
	if (all_done)
		ereport(NOTICE,
				(errmsg("run " INT64_FORMAT " of migration plan \"%s\" was already rolled back: nothing to do",
						run_id, plan)));
	else
	{
		for (int i = 0; i < ntables; i++)
			if (!tables[i].skip)
				replay_reinserts(&tables[i], force);
		for (int i = ntables - 1; i >= 0; i--)
			if (!tables[i].skip)
				replay_restores_deletes(&tables[i], force);
	}
	for (int i = 0; i < ntables; i++)
	{
		RollbackTable *t = &tables[i];
		Datum		values[5];
		bool		nulls[5] = {false, false, false, false, false};
		int64		left = force ? 0 : t->conflicts;

		if (!t->skip)
		{
			if (left > 0)
				warn_conflicts(run_id, t);
			migrate_catalog_rollback_record(run_id, t->target, t->rb, force, t->deleted, t->restored,
											t->reinserted, left);
			sum[0] += t->deleted;
			sum[1] += t->restored;
			sum[2] += t->reinserted;
			sum[3] += left;
		}
		values[0] = ObjectIdGetDatum(t->target);
		values[1] = Int64GetDatum(t->deleted);
		values[2] = Int64GetDatum(t->restored);
		values[3] = Int64GetDatum(t->reinserted);
		values[4] = Int64GetDatum(left);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	if (!all_done)
		migrate_catalog_event(run_id, plan, "run rolled back",
							  psprintf(INT64_FORMAT " rows deleted, " INT64_FORMAT " restored, "
									   INT64_FORMAT " reinserted, " INT64_FORMAT " conflicts left%s",
									   sum[0], sum[1], sum[2], sum[3], force ? " (forced)" : ""));
	AtEOXact_GUC(true, nest);
	migrate_catalog_spi_finish();
	PG_RETURN_VOID();
}

/*
 * migrate._migrate_rollback_conflicts(run bigint) RETURNS TABLE (target
 * regclass, key text, reason text): the rows a rollback of the run now
 * leaves alone (key NULL: the whole table), as the plan's owner.  Checks
 * as a rollback does, replays nothing.
 */
Datum
migrate_rollback_conflicts(PG_FUNCTION_ARGS)
{
	int64		run_id = PG_GETARG_INT64(0);
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	RollbackTable *tables;
	char	   *plan;
	char	   *mode;
	int			ntables;
	bool		all_done;
	int			nest;

	InitMaterializedSRF(fcinfo, 0);
	migrate_catalog_spi_connect();
	plan = migrate_catalog_check_run_caller(run_id);
	nest = no_jit();
	tables = prepare_tables(run_id, plan, &ntables, &all_done, &mode);
	for (int i = 0; i < ntables && !all_done && strcmp(mode, "cutover") != 0; i++)
	{
		RollbackTable *t = &tables[i];
		Datum		values[3];
		bool		nulls[3] = {false, false, false};
		int			ret;

		if (t->skip || t->conflicts == 0)
			continue;
		values[0] = ObjectIdGetDatum(t->target);
		if (t->rb == NULL)
		{
			nulls[1] = true;
			values[2] = CStringGetTextDatum("the table has rows the run did not write");
			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
			continue;
		}
		ret = SPI_execute(psprintf("SELECT %s, r.conflict FROM %s AS r WHERE r.conflict IS NOT NULL"
								   " ORDER BY r.key", key_text_sql(t), t->rb), false, 0);
		if (ret != SPI_OK_SELECT)
			elog(ERROR, "reading the conflicts failed: %s", SPI_result_code_string(ret));
		for (uint64 j = 0; j < SPI_processed; j++)
		{
			bool		isnull;

			values[1] = SPI_getbinval(SPI_tuptable->vals[j], SPI_tuptable->tupdesc, 1, &isnull);
			values[2] = SPI_getbinval(SPI_tuptable->vals[j], SPI_tuptable->tupdesc, 2, &nulls[2]);
			nulls[1] = isnull;
			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
		}
	}
	AtEOXact_GUC(true, nest);
	migrate_catalog_spi_finish();
	PG_RETURN_VOID();
}
