/*-------------------------------------------------------------------------
 *
 * expr.c
 *	  Refuses anything but one SQL expression where the plan stores one.
 *
 * Mapping expressions, rules and filters are pasted into the engine's batch
 * statement, so a text like "1) FROM x; DROP TABLE y; SELECT (1" must never
 * get that far.  We parse "SELECT (<text>)" with the raw grammar and accept
 * it only if it is exactly one SELECT with one target and nothing else.
 * The text must also hold together by itself where it is pasted, inside
 * parentheses: "s.id <= 5) OR (true" parses as one expression after
 * "SELECT (", yet pasted into "AND (...)" it would disable the key range.
 * So its parentheses and brackets must balance on their own (counted on
 * the core scanner's tokens, so those in strings, quoted names and
 * comments do not count), and it is parsed without a trailing newline, so
 * a trailing "--" comment cannot swallow what follows it.
 * Type checking against the source and target happens in SQL (EXPLAIN of
 * the statement the engine will run, see migrate._check_mapping).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "common/keywords.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "nodes/parsenodes.h"
#include "parser/parser.h"
#include "parser/scanner.h"
#include "utils/builtins.h"

#include "migrate.h"

PG_FUNCTION_INFO_V1(migrate_check_expression);

static void check_balanced(const char *expr, const char *what);

/*
 * Raises a syntax error unless every "(" and "[" of expr is closed within
 * expr, in order.  Scanner errors (an unterminated string or comment) are
 * raised as they are.
 */
static void
check_balanced(const char *expr, const char *what)
{
	core_yy_extra_type yyextra;
	core_yyscan_t yyscanner;
	core_YYSTYPE yylval;
	YYLTYPE		yylloc;
	char		stack[64];
	int			depth = 0;
	int			tok;

	yyscanner = scanner_init(expr, &yyextra, &ScanKeywords, ScanKeywordTokens);
	while ((tok = core_yylex(&yylval, &yylloc, yyscanner)) != 0)
	{
		if (tok == '(' || tok == '[')
		{
			if (depth == lengthof(stack))
				ereport(ERROR,
						(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
						 errmsg("%s nests parentheses more than %d deep", what, (int) lengthof(stack))));
			stack[depth++] = (char) tok;
		}
		else if (tok == ')' || tok == ']')
		{
			if (depth == 0 || stack[depth - 1] != (tok == ')' ? '(' : '['))
				ereport(ERROR,
						(errcode(ERRCODE_SYNTAX_ERROR),
						 errmsg("%s closes a parenthesis or bracket it did not open", what),
						 errdetail("At character %d.", yylloc + 1),
						 errhint("An expression must be complete in itself: balance its parentheses and brackets.")));
			depth--;
		}
	}
	scanner_finish(yyscanner);
	if (depth != 0)
		ereport(ERROR,
				(errcode(ERRCODE_SYNTAX_ERROR),
				 errmsg("%s leaves a parenthesis or bracket open", what),
				 errhint("An expression must be complete in itself: balance its parentheses and brackets.")));
}

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

	check_balanced(expr, what);
	initStringInfo(&sql);
	appendStringInfo(&sql, "SELECT (%s)", expr);

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
