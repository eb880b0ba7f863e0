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
 * It sends it, in a read-only transaction with postgres_fdw's session
 * settings, on the connection copysrc.c keeps for the server and the
 * caller's user mapping; runs the target's statement through SPI while the
 * source computes (both may run in parallel); then waits for the source,
 * still answering cancel requests.  After any error the connection is
 * cancelled and dropped.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "libpq-fe.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/latch.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"

#include "migrate.h"

PG_FUNCTION_INFO_V1(migrate_compare_sides);

/*
 * postgres_fdw's remote session settings (connection.c), for this
 * transaction; and no sort: a grouped comparison has a handful of groups,
 * but the planner, which cannot know that, would sort every row for them.
 */
#define REMOTE_BEGIN \
	"BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; " \
	"SET LOCAL search_path = pg_catalog; SET LOCAL timezone = 'UTC'; " \
	"SET LOCAL datestyle = ISO; SET LOCAL intervalstyle = postgres; " \
	"SET LOCAL extra_float_digits = 3; SET LOCAL enable_sort = off"

static void remote_error(PGconn *conn, PGresult *res, const char *ftname);
static PGresult *remote_wait(PGconn *conn);
static char *local_value(const char *sql, Datum keys, bool keys_null, bool *shape_ok);

/*
 * The error of a remote statement, with its SQLSTATE; drops the connection
 * first (its transaction is aborted).
 */
static void
remote_error(PGconn *conn, PGresult *res, const char *ftname)
{
	const char *sqlstate = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	const char *primary = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
	const char *detail = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL) : NULL;
	char	   *msg = pstrdup(primary ? primary : PQerrorMessage(conn));
	char	   *det = detail ? pstrdup(detail) : NULL;
	int			len = strlen(msg);
	int			code = ERRCODE_FDW_ERROR;

	while (len > 0 && (msg[len - 1] == '\n' || msg[len - 1] == ' '))
		msg[--len] = '\0';
	if (sqlstate && strlen(sqlstate) == 5)
		code = MAKE_SQLSTATE(sqlstate[0], sqlstate[1], sqlstate[2], sqlstate[3], sqlstate[4]);
	if (res)
		PQclear(res);
	migrate_source_disconnect();
	ereport(ERROR,
			(errcode(code),
			 errmsg("%s", msg),
			 det ? errdetail("%s", det) : 0,
			 errcontext("statement on the server of foreign table %s", ftname),
			 errhint("Check that the source is reachable and that the plan's expressions still apply to it.")));
}

/* The next result of the statement in flight, waiting on the socket and the latch. */
static PGresult *
remote_wait(PGconn *conn)
{
	while (PQisBusy(conn))
	{
		int			rc = WaitLatchOrSocket(MyLatch,
										   WL_LATCH_SET | WL_SOCKET_READABLE | WL_EXIT_ON_PM_DEATH,
										   PQsocket(conn), -1L, PG_WAIT_EXTENSION);

		if (rc & WL_LATCH_SET)
			ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		if ((rc & WL_SOCKET_READABLE) && !PQconsumeInput(conn))
			return NULL;
	}
	return PQgetResult(conn);
}

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
	PGconn	   *conn;
	PGresult   *res;
	char	   *target_value = NULL;
	char	   *source_value = NULL;
	bool		target_shape_ok = false;
	bool		source_shape_ok = false;
	Datum		elems[2];
	bool		elem_nulls[2];
	int			dims[1] = {2};
	int			lbs[1] = {1};

	if (get_rel_relkind(relid) != RELKIND_FOREIGN_TABLE)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("\"%s\" is not a foreign table", ftname ? ftname : "?")));

	conn = migrate_source_connect(relid);
	res = PQexec(conn, REMOTE_BEGIN);
	if (PQresultStatus(res) != PGRES_COMMAND_OK)
		remote_error(conn, res, ftname);
	PQclear(res);
	if (!PQsendQuery(conn, remote_sql))
		remote_error(conn, NULL, ftname);

	PG_TRY();
	{
		/* the target's side while the source computes */
		target_value = local_value(target_sql, PG_ARGISNULL(3) ? (Datum) 0 : PG_GETARG_DATUM(3),
								   PG_ARGISNULL(3), &target_shape_ok);

		res = remote_wait(conn);
		if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK)
			remote_error(conn, res, ftname);
		source_shape_ok = PQntuples(res) == 1 && PQnfields(res) == 1;
		if (source_shape_ok && !PQgetisnull(res, 0, 0))
			source_value = pstrdup(PQgetvalue(res, 0, 0));
		PQclear(res);
		while ((res = remote_wait(conn)) != NULL)
		{
			if (PQresultStatus(res) != PGRES_TUPLES_OK && PQresultStatus(res) != PGRES_COMMAND_OK)
				remote_error(conn, res, ftname);
			PQclear(res);
		}
		res = PQexec(conn, "COMMIT");
		if (PQresultStatus(res) != PGRES_COMMAND_OK)
			remote_error(conn, res, ftname);
		PQclear(res);
	}
	PG_CATCH();
	{
		/* cancelled, or the target's statement failed: the source may still run */
		migrate_source_disconnect();
		PG_RE_THROW();
	}
	PG_END_TRY();

	if (!source_shape_ok || !target_shape_ok)
		PG_RETURN_NULL();
	elems[0] = source_value ? CStringGetTextDatum(source_value) : (Datum) 0;
	elem_nulls[0] = source_value == NULL;
	elems[1] = target_value ? CStringGetTextDatum(target_value) : (Datum) 0;
	elem_nulls[1] = target_value == NULL;
	PG_RETURN_ARRAYTYPE_P(construct_md_array(elems, elem_nulls, 1, dims, lbs,
											 TEXTOID, -1, false, TYPALIGN_INT));
}
