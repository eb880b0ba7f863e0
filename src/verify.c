/*-------------------------------------------------------------------------
 *
 * verify.c
 *	  Both sides of a comparison at once: the source's aggregate as a plain
 *	  statement on the source server, the target's here, side by side.
 *
 * migrate_verify() and migrate_diff() (sql/verify.sql, sql/diff.sql)
 * compare an aggregate over the source with the same aggregate over the
 * target.  When postgres_fdw ships the source's aggregate whole, it still
 * runs it through a cursor, and PostgreSQL never gives a cursor's plan
 * parallel workers; and unless the server is async_capable, the target's
 * statement waits for it.
 *
 * migrate._compare_sides() is given the *local* statement over the foreign
 * table, never SQL for the remote server: it plans that statement here as
 * the caller (who needs SELECT on what it reads, ExecCheckRTPerms), and
 * only if the plan is one postgres_fdw Foreign Scan that computes the whole
 * aggregate of that one foreign table on its server, sends the remote SQL
 * postgres_fdw deparsed for it (a grouped statement wrapped in a fixed
 * array_agg, so that one row comes back).  So what reaches the source is
 * exactly what postgres_fdw itself would send for a statement the caller
 * may run: the function is safe for any caller.  It runs on the connection
 * remote.c keeps for the server and the caller's user mapping
 * (postgres_fdw's password rule and session settings), in a read-only
 * remote transaction, one statement at a time; the target's statement
 * runs here through SPI, read-only, while the source computes (both may
 * run in parallel); then it waits for the source, still answering cancel
 * requests.  After any error the remote statement is cancelled and the
 * connection dropped (remote.c).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "foreign/foreign.h"
#include "miscadmin.h"
#include "nodes/bitmapset.h"
#include "nodes/params.h"
#include "nodes/plannodes.h"
#include "parser/analyze.h"
#include "parser/parsetree.h"
#include "tcop/tcopprot.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/snapmgr.h"

#include "migrate.h"
#include "remote.h"

PG_FUNCTION_INFO_V1(migrate_compare_sides);

/*
 * The source's transaction (remote.c set postgres_fdw's session settings);
 * and no sort: a grouped comparison has a handful of groups, but the
 * planner, which cannot know that, would sort every row for them.
 */
#define REMOTE_BEGIN "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"
#define REMOTE_NO_SORT "SET LOCAL enable_sort = off"

/* a grouped statement's rows (bucket, aggregates) as one row: the only wrapper sent */
#define REMOTE_GROUPED_WRAP \
	"SELECT pg_catalog.array_agg(ARRAY[x.b::pg_catalog.numeric] OPERATOR(pg_catalog.||) x.a ORDER BY x.b) FROM (%s) AS x(b, a)"

static const char *const hint_for_statements =
"Check that the source is reachable and that the plan's expressions still apply to it.";

static char *local_value(const char *sql, Datum keys, bool keys_null, bool *shape_ok);
static char *pushed_down_sql(Oid relid, Oid serverid, const char *sql, Datum keys, bool keys_null);

/*
 * The remote SQL postgres_fdw deparsed for statement sql over foreign table
 * relid ($1: keys, text[], taken as a constant as EXECUTE ... USING does),
 * planned here as the current user, whose privileges it checks; NULL
 * unless the plan is a single Foreign Scan of postgres_fdw on server
 * serverid that computes the whole statement over relid alone (an
 * aggregate pushed down) with no remote parameters.  A grouped statement
 * of two columns comes back wrapped in REMOTE_GROUPED_WRAP.
 */
static char *
pushed_down_sql(Oid relid, Oid serverid, const char *sql, Datum keys, bool keys_null)
{
	List	   *raw = pg_parse_query(sql);
	RawStmt    *rs;
	Query	   *query;
	List	   *rewritten;
	Oid			argtypes[1] = {TEXTARRAYOID};
	ParamListInfo params;
	PlannedStmt *stmt;
	ForeignScan *fs;
	int			member;
	int			ncolumns = 0;
	ListCell   *lc;
	char	   *remote;

	if (list_length(raw) != 1 || !IsA(((RawStmt *) linitial(raw))->stmt, SelectStmt))
		ereport(ERROR,
				(errcode(ERRCODE_SYNTAX_ERROR),
				 errmsg("the source's statement of a comparison over foreign table %s must be one SELECT",
						get_rel_name(relid))));
	rs = linitial(raw);
	query = parse_analyze_fixedparams(rs, sql, argtypes, 1, NULL);
	if (query->hasModifyingCTE || query->commandType != CMD_SELECT)
		ereport(ERROR,
				(errcode(ERRCODE_SYNTAX_ERROR),
				 errmsg("the source's statement of a comparison over foreign table %s must be one SELECT",
						get_rel_name(relid)),
				 errdetail("It writes (a data-modifying WITH).")));
	rewritten = pg_rewrite_query(query);
	if (list_length(rewritten) != 1)
		return NULL;
	query = linitial(rewritten);
	if (query->commandType != CMD_SELECT || query->utilityStmt != NULL || query->rowMarks != NIL)
		return NULL;
	foreach(lc, query->targetList)
		ncolumns += ((TargetEntry *) lfirst(lc))->resjunk ? 0 : 1;

	params = makeParamList(1);
	params->numParams = 1;
	params->params[0].value = keys;
	params->params[0].isnull = keys_null;
	params->params[0].pflags = PARAM_FLAG_CONST;
	params->params[0].ptype = TEXTARRAYOID;
	stmt = pg_plan_query(query, sql, 0, params);
	/* what executing it would check (EXPLAIN does too) */
	ExecCheckRTPerms(stmt->rtable, true);

	if (!IsA(stmt->planTree, ForeignScan) || stmt->subplans != NIL || stmt->planTree->initPlan != NIL)
		return NULL;
	fs = (ForeignScan *) stmt->planTree;
	if (fs->fs_server != serverid || fs->scan.scanrelid != 0 || fs->fdw_exprs != NIL ||
		bms_num_members(fs->fs_relids) != 1 || fs->fdw_private == NIL ||
		!IsA(linitial(fs->fdw_private), String))
		return NULL;
	member = bms_singleton_member(fs->fs_relids);
	if (rt_fetch(member, stmt->rtable)->relid != relid)
		return NULL;
	/* postgres_fdw's FdwScanPrivateSelectSql */
	remote = strVal(linitial(fs->fdw_private));
	if (query->groupClause == NIL && query->groupingSets == NIL)
		return pstrdup(remote);
	if (ncolumns != 2 || query->groupingSets != NIL)
		return NULL;
	return psprintf(REMOTE_GROUPED_WRAP, remote);
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
 * remote_sql (its name is kept from 0.2) is a statement *here* over the
 * foreign table source, as the caller could run it: {its value computed on
 * the server of source (pushed_down_sql), the value of target_sql here
 * ($1: keys)}; each statement must return one row of one column (a
 * grouped source statement: of two, (bucket, aggregates), its rows come
 * back as one array).  NULL when the source's statement is not computed
 * whole by the source, or one side does not have that shape: the caller
 * then compares another way.
 */
Datum
migrate_compare_sides(PG_FUNCTION_ARGS)
{
	Oid			relid = PG_GETARG_OID(0);
	char	   *source_sql = text_to_cstring(PG_GETARG_TEXT_PP(1));
	char	   *target_sql = text_to_cstring(PG_GETARG_TEXT_PP(2));
	char	   *ftname = get_rel_name(relid);
	Datum		keys = PG_ARGISNULL(3) ? (Datum) 0 : PG_GETARG_DATUM(3);
	char	   *remote_sql;
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

	/* planned under a snapshot, as any statement; the catalog lookups before the use */
	PushActiveSnapshot(GetTransactionSnapshot());
	remote_sql = pushed_down_sql(relid, GetForeignTable(relid)->serverid, source_sql, keys,
								 PG_ARGISNULL(3));
	PopActiveSnapshot();
	if (remote_sql == NULL)
		PG_RETURN_NULL();

	r = migrate_remote_get(relid, hint_for_statements, MIGRATE_REMOTE_PASS);
	PG_TRY();
	{
		migrate_remote_command(r, REMOTE_BEGIN, "begin");
		migrate_remote_command(r, REMOTE_NO_SORT, "begin");
		migrate_remote_send(r, remote_sql, "run the source's statement");

		/* the target's side while the source computes */
		target_value = local_value(target_sql, keys, PG_ARGISNULL(3), &target_shape_ok);

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
