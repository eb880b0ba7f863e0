/*-------------------------------------------------------------------------
 *
 * defer.c
 *	  Index and foreign key deferral: a full load into an empty table runs
 *	  without the table's secondary indexes and foreign keys, which are
 *	  rebuilt and re-validated once its key ranges are loaded.
 *
 * With the plan option defer_indexes, the coordinator (in the transaction
 * that cuts the run into units) drops each non-unique index and each
 * foreign key of an empty target loaded in mode insert, and records how to
 * restore it as a unit of the run (run_range kind 'index' or 'fk'), so that
 * a crash leaves either both the drop and the unit, or neither; resuming
 * the run restores them.  Unique indexes and primary keys stay: they decide
 * which rows are refused.  Workers claim these units like key ranges, once
 * every range of the table is loaded, so indexes are built in parallel.
 *
 * Whatever the plan's options and the tables hold, the foreign keys among
 * the run's tables that reference their own table or close a cycle
 * (migrate._fk_cycle_breaks: no load order satisfies them) are dropped the
 * same way, each with an fk unit that waits for the loads of both its
 * tables (run_range.ref_target); the run's load order ignores them.  A
 * role that may not drop one (not the table's owner, or no REFERENCES on
 * the other table to add it back) leaves it in place, with a NOTICE.
 *
 * Rows a foreign key would have refused are the same either way: before
 * the constraint is added back (NOT VALID, then VALIDATE), the fk unit
 * moves the orphan rows to migrate.reject with SQLSTATE 23503 and the
 * message the constraint gives, and moves them from the table's written to
 * its rejected count.  Parents load before children, so the orphans are
 * exactly the rows a load with the constraint in place would have refused.
 * For a dropped cycle or self-reference the orphans are the rows whose
 * referenced row is missing once both tables are loaded (again and again
 * for a self-reference: a row whose parent was an orphan is one too), and
 * the rows of the run's tables that reference them through keys in place
 * (see migrate_run_deferred), each with its own key's message.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/snapmgr.h"

#include "migrate.h"

/*
 * Foreign keys (c) as fk units: name, the DDL that re-adds and validates
 * it, the statement that rejects its orphans (it takes the run id as $1),
 * the referenced table, its table; $2 is the plan.  With index_unit_sql,
 * for one target table ($1): each non-unique index not backing a
 * constraint (name, its CREATE INDEX), then each foreign key.  The units
 * are recorded by catalog.c.
 */
static const char *fk_unit_sql =
"SELECT 'fk', c.conname,"
/*
 * NULL, not a statement without its constraint, when the constraint was
 * dropped after the scan saw it (another worker re-adding it:
 * pg_get_constraintdef reads the latest catalog)
 */
"       pg_catalog.format('ALTER TABLE %s ADD CONSTRAINT %I ', c.conrelid::regclass, c.conname)"
"       || pg_catalog.pg_get_constraintdef(c.oid)"
"       || pg_catalog.format(' NOT VALID; ALTER TABLE %s VALIDATE CONSTRAINT %I', c.conrelid::regclass, c.conname),"
"       pg_catalog.format('WITH o AS (DELETE FROM %s AS c WHERE %s AND NOT EXISTS (SELECT 1 FROM %s AS p WHERE %s) RETURNING c.*)"
" INSERT INTO migrate.reject (run_id, target, source_key, source_row, reason, message, detail)"
" SELECT $1, %L::regclass, %s, pg_catalog.to_jsonb(o) || %L::jsonb, ''23503'', %L,"
" %L || pg_catalog.concat_ws('', '', %s) || %L FROM o',"
"              c.conrelid::regclass, cols.not_null, c.confrelid::regclass, cols.joined,"
"              c.conrelid::regclass::text, k.key_text, sens.mask,"
"              pg_catalog.format('insert or update on table \"%s\" violates foreign key constraint \"%s\"',"
"                     cc.relname, c.conname),"
"              'Key (' || cols.names || ')=(', cols.values,"
"              ') is not present in table \"' || pc.relname || '\".'),"
"       c.confrelid, c.conrelid"
"  FROM pg_catalog.pg_constraint c"
"  JOIN pg_catalog.pg_class pc ON pc.oid = c.confrelid"
"  JOIN pg_catalog.pg_class cc ON cc.oid = c.conrelid"
/* target columns whose mapping reads a sensitive source column: shown as *** */
"  CROSS JOIN LATERAL ("
"       SELECT coalesce(pg_catalog.array_agg(mc.column_name), '{}') AS cols,"
"              coalesce(pg_catalog.jsonb_object_agg(mc.column_name, '***'), '{}') AS mask"
"         FROM migrate._mapped_columns($2, c.conrelid) mc"
"        WHERE migrate._expr_columns(mc.expr) && ARRAY(SELECT sc.source_column FROM migrate.sensitive_column sc"
"                                                       WHERE sc.plan = $2 AND sc.target = c.conrelid)) sens"
"  CROSS JOIN LATERAL ("
"       SELECT pg_catalog.string_agg(pg_catalog.format('c.%I IS NOT NULL', a.attname), ' AND ' ORDER BY n) AS not_null,"
"              pg_catalog.string_agg(pg_catalog.format('p.%I = c.%I', pa.attname, a.attname), ' AND ' ORDER BY n) AS joined,"
"              pg_catalog.string_agg(pg_catalog.quote_ident(a.attname), ', ' ORDER BY n) AS names,"
"              pg_catalog.string_agg(CASE WHEN a.attname = ANY (sens.cols) THEN '''***'''"
"                                         ELSE pg_catalog.format('o.%I', a.attname) END, ', ' ORDER BY n) AS values"
"         FROM unnest(c.conkey, c.confkey) WITH ORDINALITY AS x(ck, fk, n)"
"         JOIN pg_catalog.pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = x.ck"
"         JOIN pg_catalog.pg_attribute pa ON pa.attrelid = c.confrelid AND pa.attnum = x.fk) cols"
"  CROSS JOIN LATERAL ("
"       SELECT CASE WHEN m.key && sens.cols THEN '''***''::text'"
"                   WHEN pg_catalog.array_length(m.key, 1) = 1 THEN pg_catalog.format('(o.%I)::text', m.key[1])"
"                   ELSE pg_catalog.format('ROW(%s)::text', (SELECT pg_catalog.string_agg(pg_catalog.format('o.%I', kc), ', ' ORDER BY kn)"
"                                                   FROM unnest(m.key) WITH ORDINALITY AS y(kc, kn)))"
"              END AS key_text"
"         FROM migrate.table_map m WHERE m.plan = $2 AND m.target = c.conrelid) k";

static const char *index_unit_sql =
"SELECT 'index', i.indexrelid::regclass::text, pg_catalog.pg_get_indexdef(i.indexrelid), NULL,"
"       NULL::pg_catalog.oid, i.indrelid"
"  FROM pg_catalog.pg_index i"
" WHERE i.indrelid = $1 AND NOT i.indisunique AND NOT i.indisprimary"
"   AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint c WHERE c.conindid = i.indexrelid)";

/*
 * The same for the foreign keys among the run's tables ($1, oid[]) that
 * close a cycle or reference their own table (migrate._fk_cycle_breaks,
 * which the run's load order ignores too), with their tables.
 */
static const char *cycle_where =
" WHERE c.oid IN (SELECT b.con FROM migrate._fk_cycle_breaks($1) b)"
" ORDER BY c.conrelid::regclass::text, c.conname";

/*
 * Drop what can be deferred on an empty target loaded in mode insert and
 * record a unit to restore each.  Needs SPI and the planning transaction.
 */
void
migrate_defer_table(MigrateWork *w, Oid target)
{
	Oid			argtypes[2] = {OIDOID, TEXTOID};
	Datum		args[2];
	bool		isnull;
	int			ret;
	SPITupleTable *items;
	uint64		nitems;
	int			nindexes = 0;
	char	   *relname = quote_qualified_identifier(get_namespace_name(get_rel_namespace(target)),
													 get_rel_name(target));

	args[0] = ObjectIdGetDatum(target);
	args[1] = CStringGetTextDatum(w->plan);
	ret = SPI_execute(psprintf("SELECT m.mode = 'insert' AND NOT EXISTS (SELECT 1 FROM %s)"
							   "  FROM migrate.table_map m WHERE m.plan = %s AND m.target = %u",
							   relname, quote_literal_cstr(w->plan), target),
					  false, 1);
	if (ret != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "checking table %s for deferral failed: %s", relname,
			 SPI_result_code_string(ret));
	if (!DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)))
	{
		migrate_worker_notice(w->shared, "%s keeps its indexes: deferral needs an empty table loaded in mode insert",
							  relname);
		return;
	}

	/* another session's lock on the table fails the run rather than hang it */
	if (SPI_execute("SET LOCAL lock_timeout = '60s'", false, 0) != SPI_OK_UTILITY)
		elog(ERROR, "SET lock_timeout failed");
	ret = SPI_execute_with_args(psprintf("%s UNION ALL %s WHERE c.conrelid = $1 AND c.contype = 'f'",
										  index_unit_sql, fk_unit_sql), 2, argtypes, args, NULL, false, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "reading the indexes of %s failed: %s", relname, SPI_result_code_string(ret));
	items = SPI_tuptable;
	nitems = SPI_processed;
	for (uint64 i = 0; i < nitems; i++)
	{
		char	   *kind = SPI_getvalue(items->vals[i], items->tupdesc, 1);
		char	   *name = SPI_getvalue(items->vals[i], items->tupdesc, 2);
		char	   *definition = SPI_getvalue(items->vals[i], items->tupdesc, 3);
		char	   *check_sql = SPI_getvalue(items->vals[i], items->tupdesc, 4);
		bool		isnull;
		Datum		ref = SPI_getbinval(items->vals[i], items->tupdesc, 5, &isnull);

		if (definition == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_IN_USE),
					 errmsg("%s of %s was dropped while the run was planned", name, relname),
					 errhint("Run the plan again.")));
		migrate_catalog_add_deferred_unit(w->run_id, target,
										  (strcmp(kind, "index") == 0 ? 1000 : 2000) + (int) i,
										  kind, definition, check_sql,
										  isnull ? InvalidOid : DatumGetObjectId(ref));
		if (strcmp(kind, "index") == 0)
		{
			nindexes++;
			ret = SPI_execute(psprintf("DROP INDEX %s", name), false, 0);
		}
		else
			ret = SPI_execute(psprintf("ALTER TABLE %s DROP CONSTRAINT %s", relname,
									   quote_identifier(name)), false, 0);
		if (ret != SPI_OK_UTILITY)
			elog(ERROR, "dropping %s of %s failed: %s", name, relname, SPI_result_code_string(ret));
	}
	if (nitems > 0)
		migrate_worker_notice(w->shared, "%s: %d index%s and " UINT64_FORMAT " foreign key%s deferred to the end of its load",
							  relname, nindexes, nindexes == 1 ? "" : "es",
							  nitems - nindexes, nitems - nindexes == 1 ? "" : "s");
}

/*
 * Drop the foreign keys among the run's tables (targets, ntargets) that
 * close a cycle or reference their own table, whatever the tables hold and
 * whether or not the plan defers indexes: no load order satisfies them.
 * Each gets an fk unit that waits for the loads of its table and of the
 * table it references (ref_target), rejects the orphans and adds it back,
 * validated.  Before migrate_defer_table (which then no longer sees them);
 * needs SPI and the planning transaction (drops and units commit together).
 */
void
migrate_break_fk_cycles(MigrateWork *w, const Oid *targets, int ntargets)
{
	Oid			argtypes[2] = {OIDARRAYOID, TEXTOID};
	Datum		args[2];
	Datum	   *elems = palloc(sizeof(Datum) * Max(ntargets, 1));
	int			ret;
	SPITupleTable *items;
	uint64		nitems;
	Oid			last = InvalidOid;
	int			n = 0;

	for (int i = 0; i < ntargets; i++)
		elems[i] = ObjectIdGetDatum(targets[i]);
	args[0] = PointerGetDatum(construct_array(elems, ntargets, OIDOID, sizeof(Oid), true, TYPALIGN_INT));
	args[1] = CStringGetTextDatum(w->plan);
	ret = SPI_execute_with_args(psprintf("%s%s", fk_unit_sql, cycle_where), 2, argtypes, args, NULL, false, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "reading the foreign-key cycles of run " INT64_FORMAT " failed: %s",
			 w->run_id, SPI_result_code_string(ret));
	if (SPI_processed == 0)
		return;
	items = SPI_tuptable;
	nitems = SPI_processed;
	/* another session's lock on a table fails the run rather than hang it */
	if (SPI_execute("SET LOCAL lock_timeout = '60s'", false, 0) != SPI_OK_UTILITY)
		elog(ERROR, "SET lock_timeout failed");
	for (uint64 i = 0; i < nitems; i++)
	{
		char	   *name = SPI_getvalue(items->vals[i], items->tupdesc, 2);
		char	   *definition = SPI_getvalue(items->vals[i], items->tupdesc, 3);
		char	   *check_sql = SPI_getvalue(items->vals[i], items->tupdesc, 4);
		bool		isnull;
		Oid			ref = DatumGetObjectId(SPI_getbinval(items->vals[i], items->tupdesc, 5, &isnull));
		Oid			target = DatumGetObjectId(SPI_getbinval(items->vals[i], items->tupdesc, 6, &isnull));
		char	   *relname = quote_qualified_identifier(get_namespace_name(get_rel_namespace(target)),
														 get_rel_name(target));

		if (definition == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_IN_USE),
					 errmsg("foreign key %s of %s was dropped while the run was planned", name, relname),
					 errhint("Run the plan again.")));

		/*
		 * Dropping it needs the table's ownership, adding it back REFERENCES
		 * on the other: without them it stays, as in 0.4 (rows that reference
		 * rows not loaded yet are refused), rather than fail the run.
		 */
		if (!pg_class_ownercheck(target, GetUserId()) ||
			pg_class_aclcheck(ref, GetUserId(), ACL_REFERENCES) != ACLCHECK_OK)
		{
			migrate_worker_notice(w->shared, "%s: foreign key %s %s, but role \"%s\" may not drop and re-add it: it stays, and rows that reference rows not loaded yet are refused",
								  relname, name, ref == target ? "references its own table" : "closes a cycle",
								  GetUserNameFromId(GetUserId(), false));
			continue;
		}
		/* range numbers 3000 and up: clear of the key ranges and defer_table's */
		n = target == last ? n + 1 : 0;
		last = target;
		migrate_catalog_add_deferred_unit(w->run_id, target, 3000 + n, "fk", definition, check_sql, ref);
		ret = SPI_execute(psprintf("ALTER TABLE %s DROP CONSTRAINT %s", relname, quote_identifier(name)),
						  false, 0);
		if (ret != SPI_OK_UTILITY)
			elog(ERROR, "dropping %s of %s failed: %s", name, relname, SPI_result_code_string(ret));
		if (ref == target)
			migrate_worker_notice(w->shared, "%s: foreign key %s references its own table: dropped for the load, added back and validated once the table is loaded",
								  relname, name);
		else
			migrate_worker_notice(w->shared, "%s: foreign key %s closes a cycle: dropped for the load, added back and validated once %s and %s are loaded",
								  relname, name, relname,
								  quote_qualified_identifier(get_namespace_name(get_rel_namespace(ref)),
															 get_rel_name(ref)));
	}
}

/*
 * An index rebuild sorts with the maintenance_work_mem of the plan's
 * options ("maintenance_work_mem": "1GB") if it says, else with the one of
 * the session that called migrate_run() (kept in the run's row), never
 * more: every worker of every run may be building an index at once.  In
 * the unit's transaction (SET LOCAL).
 */
static void
set_index_memory(MigrateWork *w)
{
	Oid			argtypes[1] = {INT8OID};
	Datum		args[1] = {Int64GetDatum(w->run_id)};
	Oid			settypes[1] = {TEXTOID};
	Datum		setargs[1];
	char	   *value;
	int			ret;

	ret = SPI_execute_with_args("SELECT coalesce(p.options->>'maintenance_work_mem', r.maintenance_work_mem)"
								"  FROM migrate.run r LEFT JOIN migrate.plan p ON p.plan_name = r.plan"
								" WHERE r.run_id = $1",
								1, argtypes, args, NULL, true, 1);
	if (ret != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "reading migrate.run failed: %s", SPI_result_code_string(ret));
	value = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	if (value == NULL)
		return;					/* a run of an older version: the worker's own */
	setargs[0] = CStringGetTextDatum(value);
	ret = SPI_execute_with_args("SELECT pg_catalog.set_config('maintenance_work_mem', $1, true)",
								1, settypes, setargs, NULL, false, 1);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "setting maintenance_work_mem failed: %s", SPI_result_code_string(ret));
}

/* a foreign key in place that an fk unit's orphans may leave dangling */
typedef struct Dependent
{
	Oid			target;			/* its table */
	char	   *name;
	char	   *definition;		/* re-add, validate */
	char	   *check_sql;		/* reject its orphans ($1: run id) */
	int64		orphans;
} Dependent;

/*
 * The foreign keys in place among the run's tables that reference the
 * unit's table, or a table such a key's orphans are deleted from, and so
 * on (their rows would be left dangling by the orphans this unit rejects),
 * for the unit of a dropped cycle or self-reference (a deferred key's
 * table was empty: nothing referenced its rows before they were loaded).
 * NIL when there are none, or when this role may not drop one of them and
 * add it back (its table's owner, REFERENCES on the other): then the
 * unit's DELETE fails on them as in 0.4.  In the caller's memory context.
 */
static List *
dependent_fks(MigrateWork *w, MigrateUnit *u)
{
	Oid			argtypes[4] = {OIDOID, TEXTOID, INT8OID, INT4OID};
	Datum		args[4];
	List	   *deps = NIL;
	int			ret;

	args[0] = ObjectIdGetDatum(u->target);
	args[1] = CStringGetTextDatum(w->plan);
	args[2] = Int64GetDatum(w->run_id);
	args[3] = Int32GetDatum(u->range_no);
	ret = SPI_execute_with_args(psprintf("%s WHERE c.contype = 'f' AND c.conparentid = 0"
										 /* only for a unit of a cycle (the tables are loaded) */
										 "   AND EXISTS (SELECT 1 FROM migrate.run_range r"
										 "        JOIN migrate.run_table t USING (run_id, target)"
										 "        JOIN migrate.run_table rt ON rt.run_id = r.run_id AND rt.target = r.ref_target"
										 "       WHERE r.run_id = $3 AND r.target = $1 AND r.range_no = $4 AND rt.depth >= t.depth)"
										 "   AND c.conrelid IN (SELECT t.target FROM migrate.run_table t WHERE t.run_id = $3)"
										 "   AND c.confrelid IN (WITH RECURSIVE d (rel) AS ("
										 "        SELECT $1::pg_catalog.oid"
										 "        UNION SELECT k.conrelid FROM pg_catalog.pg_constraint k JOIN d ON k.confrelid = d.rel"
										 "         WHERE k.contype = 'f' AND k.conparentid = 0"
										 "           AND k.conrelid IN (SELECT t.target FROM migrate.run_table t WHERE t.run_id = $3))"
										 "      SELECT rel FROM d)"
										 " ORDER BY c.conrelid::regclass::text, c.conname",
										 fk_unit_sql),
								4, argtypes, args, NULL, false, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "reading the foreign keys that reference %s failed: %s",
			 get_rel_name(u->target), SPI_result_code_string(ret));
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		Dependent  *d = palloc0(sizeof(Dependent));
		bool		isnull;
		Oid			ref = DatumGetObjectId(SPI_getbinval(tup, desc, 5, &isnull));

		d->name = SPI_getvalue(tup, desc, 2);
		d->definition = SPI_getvalue(tup, desc, 3);
		/* the unit's retry loop tries again, with a catalog that has settled */
		if (d->definition == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_LOCK_NOT_AVAILABLE),
					 errmsg("foreign key %s referencing %s changed while it was read",
							quote_identifier(d->name), get_rel_name(u->target))));
		d->check_sql = SPI_getvalue(tup, desc, 4);
		d->target = DatumGetObjectId(SPI_getbinval(tup, desc, 6, &isnull));
		if (!pg_class_ownercheck(d->target, GetUserId()) ||
			pg_class_aclcheck(ref, GetUserId(), ACL_REFERENCES) != ACLCHECK_OK)
			return NIL;
		deps = lappend(deps, d);
	}
	return deps;
}

/* Run an orphan statement ($1: the run id); returns the rows it rejected. */
static int64
reject_orphans(MigrateWork *w, const char *check_sql, Oid target)
{
	Oid			argtypes[1] = {INT8OID};
	Datum		args[1] = {Int64GetDatum(w->run_id)};
	int			ret;

	ret = SPI_execute_with_args(check_sql, 1, argtypes, args, NULL, false, 0);
	if (ret != SPI_OK_INSERT)
		elog(ERROR, "rejecting the orphans of %s failed: %s", get_rel_name(target),
			 SPI_result_code_string(ret));
	return (int64) SPI_processed;
}

/*
 * Work an index or fk unit: rebuild the index, or reject the orphans and
 * re-add and validate the foreign key.  One transaction.
 *
 * The rows an fk unit rejects may be referenced by rows of the run's
 * tables through foreign keys in place (a cycle: staff of a store whose
 * manager is missing): those keys are dropped in the same transaction,
 * every orphan statement runs until none finds a row (the staff go too,
 * with their own key's 23503), and they are added back, validated.
 */
/* What migrate_run_deferred does, in a subtransaction; adds to *orphans. */
static void
restore_unit(MigrateWork *w, MigrateUnit *u, int64 *orphans_out)
{
	int			ret;
	int64		orphans = 0;

	if (strcmp(u->kind, "fk") == 0)
	{
		List	   *deps = dependent_fks(w, u);
		ListCell   *lc;
		int64		found;

		foreach(lc, deps)
		{
			Dependent  *d = lfirst(lc);

			ret = SPI_execute(psprintf("ALTER TABLE %s DROP CONSTRAINT %s",
									   quote_qualified_identifier(get_namespace_name(get_rel_namespace(d->target)),
																  get_rel_name(d->target)),
									   quote_identifier(d->name)), false, 0);
			if (ret != SPI_OK_UTILITY)
				elog(ERROR, "dropping %s of %s failed: %s", d->name, get_rel_name(d->target),
					 SPI_result_code_string(ret));
		}

		/*
		 * Again while any finds some: rows of a table that references itself,
		 * or of the tables that reference it, may have referenced the
		 * orphans just rejected.
		 */
		do
		{
			int64		n;

			found = 0;
			while ((n = reject_orphans(w, u->check_sql, u->target)) > 0)
			{
				orphans += n;
				found += n;
			}
			foreach(lc, deps)
			{
				Dependent  *d = lfirst(lc);

				n = reject_orphans(w, d->check_sql, d->target);
				d->orphans += n;
				found += n;
			}
		} while (found > 0 && deps != NIL);

		/* the orphans were counted written by the ranges: they are rejects */
		migrate_catalog_unit_orphans(w->run_id, u, orphans);
		foreach(lc, deps)
		{
			Dependent  *d = lfirst(lc);

			if (d->orphans > 0)
				migrate_catalog_table_orphans(w->run_id, d->target, d->orphans);
			ret = SPI_execute(d->definition, false, 0);
			if (ret != SPI_OK_UTILITY)
				elog(ERROR, "restoring \"%s\" failed: %s", d->definition, SPI_result_code_string(ret));
		}
	}
	if (strcmp(u->kind, "index") == 0)
		set_index_memory(w);
	ret = SPI_execute(u->definition, false, 0);
	if (ret != SPI_OK_UTILITY)
		elog(ERROR, "restoring \"%s\" failed: %s", u->definition, SPI_result_code_string(ret));
	*orphans_out += orphans;
}

void
migrate_run_deferred(MigrateWork *w, MigrateUnit *u)
{
	int			ret;
	int64		orphans = 0;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	if ((ret = SPI_connect()) != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed: %s", SPI_result_code_string(ret));
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING,
						   psprintf("migrate run " INT64_FORMAT ": %s", w->run_id, u->definition));

	/*
	 * A unit's DDL locks the tables it touches, and other workers may be
	 * loading tables that reference them (their foreign key checks lock
	 * these): it waits at most a short lock_timeout, below deadlock_timeout,
	 * so that it, not a load, gives way; then it tries again a little later.
	 */
	if (SPI_execute("SET LOCAL lock_timeout = '200ms'", false, 0) != SPI_OK_UTILITY)
		elog(ERROR, "SET lock_timeout failed");
	for (int attempt = 1;; attempt++)
	{
		MemoryContext oldcxt = CurrentMemoryContext;
		ResourceOwner oldowner = CurrentResourceOwner;
		ErrorData  *edata = NULL;

		BeginInternalSubTransaction(NULL);
		MemoryContextSwitchTo(oldcxt);
		PG_TRY();
		{
			restore_unit(w, u, &orphans);
			ReleaseCurrentSubTransaction();
			MemoryContextSwitchTo(oldcxt);
			CurrentResourceOwner = oldowner;
		}
		PG_CATCH();
		{
			edata = migrate_abort_subxact(oldcxt, oldowner);
			if ((edata->sqlerrcode != ERRCODE_LOCK_NOT_AVAILABLE &&
				 edata->sqlerrcode != ERRCODE_T_R_DEADLOCK_DETECTED) || attempt >= 600)
				ReThrowError(edata);
		}
		PG_END_TRY();
		if (edata == NULL)
			break;
		FreeErrorData(edata);
		orphans = 0;
		CHECK_FOR_INTERRUPTS();
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 100L, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
	migrate_catalog_unit_done(w->run_id, u, -1);
	if ((ret = SPI_finish()) != SPI_OK_FINISH)
		elog(ERROR, "SPI_finish failed: %s", SPI_result_code_string(ret));
	PopActiveSnapshot();
	CommitTransactionCommand();
}
