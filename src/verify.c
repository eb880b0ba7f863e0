/*-------------------------------------------------------------------------
 *
 * verify.c
 *	  Both sides of a comparison at once: the source's aggregate as a plain
 *	  statement on the source server, the target's here, side by side.
 *
 * migrate_verify() and migrate_diff() (sql/migrate--0.1--0.2.sql) compare an
 * aggregate over the source with the same aggregate over the target.  When
 * postgres_fdw ships the source's aggregate whole, it still runs it through
 * a cursor, and PostgreSQL never gives a cursor's plan parallel workers; and
 * unless the server is async_capable, the target's statement waits for it.
 *
 * migrate._compare_sides() is given the remote SQL postgres_fdw deparsed
 * (from EXPLAIN), so the source side means exactly what the FDW would run.
 * It sends it, as one statement in a read-only transaction, on the
 * connection remote.c keeps for the server and the caller's user mapping
 * (with postgres_fdw's session settings); runs the target's statement
 * through SPI while the source computes (both may run in parallel); then
 * waits for the source, still answering cancel requests.  After any error
 * the remote statement is cancelled and the connection dropped (remote.c).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"

#include "migrate.h"
#include "remote.h"

PG_FUNCTION_INFO_V1(migrate_compare_sides);

/*
 * The source's transaction (remote.c set postgres_fdw's session settings);
 * and no sort: a grouped comparison has a handful of groups, but the
 * planner, which cannot know that, would sort every row for them.
 */
#define REMOTE_BEGIN \
	"BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET LOCAL enable_sort = off"

static const char *const hint_for_statements =
"Check that the source is reachable and that the plan's expressions still apply to it.";

static char *local_value(const char *sql, Datum keys, bool keys_null, bool *shape_ok);

/*
 * The text of the single value of a statement run here through SPI, $1 the
 * keys (text[]); *shape_ok false if it is not one row of one column.
 */
static char *
local_value(const char *sql, Datum keys, bool keys_null, bool *shape_ok)
{
	MemoryContext caller = CurrentMemoryContext;
	Oid			argtypes[1] = {TEXTARRAYOID};
	Datum		args[1] = {keys};
	char		argnulls[1] = {keys_null ? 'n' : ' '};
	char	   *value = NULL;
	int			rc;

	if ((rc = SPI_connect()) != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed: %s", SPI_result_code_string(rc));
	rc = SPI_execute_with_args(sql, 1, argtypes, args, argnulls, true, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "the target's statement of a comparison failed: %s", SPI_result_code_string(rc));
	*shape_ok = SPI_processed == 1 && SPI_tuptable->tupdesc->natts == 1;
	if (*shape_ok)
	{
		char	   *v = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);

		if (v)
			value = MemoryContextStrdup(caller, v);
	}
	if ((rc = SPI_finish()) != SPI_OK_FINISH)
		elog(ERROR, "SPI_finish failed: %s", SPI_result_code_string(rc));
	return value;
}

/*
 * migrate._compare_sides(source regclass, remote_sql text, target_sql text,
 *                        keys text[]) RETURNS text[]
 *
 * {the value of remote_sql on the server of foreign table source, the
 * value of target_sql here ($1: keys)}; each statement must return one row
 * of one column.  NULL when one of them does not have that shape: the
 * caller then compares another way.
 */
Datum
migrate_compare_sides(PG_FUNCTION_ARGS)
{
	Oid			relid = PG_GETARG_OID(0);
	char	   *remote_sql = text_to_cstring(PG_GETARG_TEXT_PP(1));
	char	   *target_sql = text_to_cstring(PG_GETARG_TEXT_PP(2));
	char	   *ftname = get_rel_name(relid);
	MigrateRemote *r;
	PGresult   *res;
	char	   *target_value = NULL;
	char	   *source_value = NULL;
	bool		target_shape_ok = false;
	bool		source_shape_ok = false;
	Datum		elems[2];
	bool		elem_nulls[2];
	int			dims[1] = {2};
	int			lbs[1] = {1};
	AclResult	aclresult;

	if (get_rel_relkind(relid) != RELKIND_FOREIGN_TABLE)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("\"%s\" is not a foreign table", ftname ? ftname : "?")));
	aclresult = pg_class_aclcheck(relid, GetUserId(), ACL_SELECT);
	if (aclresult != ACLCHECK_OK)
		aclcheck_error(aclresult, OBJECT_FOREIGN_TABLE, ftname);

	r = migrate_remote_get(relid, hint_for_statements, MIGRATE_REMOTE_PASS);
	PG_TRY();
	{
		migrate_remote_command(r, REMOTE_BEGIN, "begin");
		migrate_remote_send(r, remote_sql, true, "run the source's statement");

		/* the target's side while the source computes */
		target_value = local_value(target_sql, PG_ARGISNULL(3) ? (Datum) 0 : PG_GETARG_DATUM(3),
								   PG_ARGISNULL(3), &target_shape_ok);

		res = migrate_remote_result(r, "run the source's statement");
		if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK)
			migrate_remote_fail(r, res, "run the source's statement");
		source_shape_ok = PQntuples(res) == 1 && PQnfields(res) == 1;
		if (source_shape_ok && !PQgetisnull(res, 0, 0))
			source_value = pstrdup(PQgetvalue(res, 0, 0));
		PQclear(res);
		while ((res = migrate_remote_result(r, "run the source's statement")) != NULL)
		{
			if (PQresultStatus(res) != PGRES_TUPLES_OK && PQresultStatus(res) != PGRES_COMMAND_OK)
				migrate_remote_fail(r, res, "run the source's statement");
			PQclear(res);
		}
		migrate_remote_command(r, "COMMIT", "commit");
	}
	PG_CATCH();
	{
		/* cancelled, or the target's statement failed: the source may still run */
		migrate_remote_discard(r);
		PG_RE_THROW();
	}
	PG_END_TRY();
	migrate_remote_release(r);

	if (!source_shape_ok || !target_shape_ok)
		PG_RETURN_NULL();
	elems[0] = source_value ? CStringGetTextDatum(source_value) : (Datum) 0;
	elem_nulls[0] = source_value == NULL;
	elems[1] = target_value ? CStringGetTextDatum(target_value) : (Datum) 0;
	elem_nulls[1] = target_value == NULL;
	PG_RETURN_ARRAYTYPE_P(construct_md_array(elems, elem_nulls, 1, dims, lbs,
											 TEXTOID, -1, false, TYPALIGN_INT));
}
