/*-------------------------------------------------------------------------
 *
 * expr.c
 *	  Refuses anything but one SQL expression where the plan stores one.
 *
 * Mapping expressions, rules and filters are pasted into the engine's batch
 * statement, so a text like "1) FROM x; DROP TABLE y; SELECT (1" must never
 * get that far.  We parse "SELECT (<text>)" with the raw grammar and accept
 * it only if it is exactly one SELECT with one target and nothing else.
 * Type checking against the source and target happens in SQL (EXPLAIN of
 * the statement the engine will run, see migrate._check_mapping).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "lib/stringinfo.h"
#include "nodes/parsenodes.h"
#include "parser/parser.h"
#include "utils/builtins.h"

#include "migrate.h"

PG_FUNCTION_INFO_V1(migrate_check_expression);

/*
 * migrate._check_expression(expr text, what text) returns void
 *
 * Raises a syntax error (with the parser's own message) when expr is not a
 * single expression.  Runs in the caller's transaction; allocates in the
 * current memory context only.
 */
Datum
migrate_check_expression(PG_FUNCTION_ARGS)
{
	char	   *expr = text_to_cstring(PG_GETARG_TEXT_PP(0));
	char	   *what = text_to_cstring(PG_GETARG_TEXT_PP(1));
	StringInfoData sql;
	List	   *stmts;
	SelectStmt *select;

	initStringInfo(&sql);
	appendStringInfo(&sql, "SELECT (%s\n)", expr);

	stmts = raw_parser(sql.data, RAW_PARSE_DEFAULT);

	if (list_length(stmts) != 1 ||
		!IsA(linitial_node(RawStmt, stmts)->stmt, SelectStmt))
		ereport(ERROR,
				(errcode(ERRCODE_SYNTAX_ERROR),
				 errmsg("%s is not a single SQL expression", what)));

	select = (SelectStmt *) linitial_node(RawStmt, stmts)->stmt;
	if (list_length(select->targetList) != 1 ||
		select->fromClause != NIL || select->whereClause != NULL ||
		select->groupClause != NIL || select->havingClause != NULL ||
		select->windowClause != NIL || select->sortClause != NIL ||
		select->limitCount != NULL || select->limitOffset != NULL ||
		select->lockingClause != NIL || select->withClause != NULL ||
		select->intoClause != NULL || select->distinctClause != NIL ||
		select->op != SETOP_NONE || select->valuesLists != NIL)
		ereport(ERROR,
				(errcode(ERRCODE_SYNTAX_ERROR),
				 errmsg("%s is not a single SQL expression", what),
				 errhint("Write one expression, without FROM, WHERE or a trailing clause; use a scalar subquery for lookups.")));

	PG_RETURN_VOID();
}
