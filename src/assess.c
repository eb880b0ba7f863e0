/*-------------------------------------------------------------------------
 *
 * assess.c
 *	  The one C helper of assessment (migrate_profile): does a value fit a
 *	  target column's type?
 *
 * migrate_profile() counts, per mapped column, the source values that the
 * load would refuse.  The engine loads "(expr)::type" with the INSERT's
 * assignment coercion to the column's type and typmod, so the same
 * coercion is built here, once per call site and input type, as an
 * expression tree over a Param (coerce_to_target_type, then
 * expression_planner), and evaluated for each value inside an internal
 * subtransaction: an error of class 22 (data exception) or 23 (integrity
 * constraint, e.g. a domain's CHECK) counts as "fails"; any other error is
 * rethrown.  PostgreSQL 15 has no soft input errors, so the subtransaction
 * is the only safe way to survive a failing input function.
 *
 * Memory: the coercion state lives in fn_mcxt (per call site, per query);
 * each evaluation allocates in a per-call context that is reset first.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "executor/executor.h"
#include "fmgr.h"
#include "nodes/makefuncs.h"
#include "optimizer/optimizer.h"
#include "parser/parse_coerce.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/resowner.h"

#include "migrate.h"

PG_FUNCTION_INFO_V1(migrate_cast_fails);

/* per call site state, in fn_mcxt */
typedef struct CastProbe
{
	Oid			intype;			/* input type the state was built for */
	Oid			target;			/* target type */
	int32		typmod;			/* target typmod */
	bool		castable;		/* false: no assignment coercion exists */
	ExprState  *state;			/* coercion over PARAM_EXTERN 1 */
	ParamListInfo params;		/* holds the value */
	ExprContext *econtext;
	MemoryContext evalcxt;		/* reset before each evaluation */
} CastProbe;

/*
 * Build the coercion from intype to (target, typmod) in fn_mcxt, as the
 * engine applies it: an explicit cast to the type, then the assignment of
 * the typmod.  castable is false when there is no coercion path.
 */
static CastProbe *
probe_build(FunctionCallInfo fcinfo, Oid intype, Oid target, int32 typmod)
{
	MemoryContext oldcxt = MemoryContextSwitchTo(fcinfo->flinfo->fn_mcxt);
	CastProbe  *probe = palloc0(sizeof(CastProbe));
	Param	   *param = makeNode(Param);
	Node	   *expr;

	probe->intype = intype;
	probe->target = target;
	probe->typmod = typmod;

	param->paramkind = PARAM_EXTERN;
	param->paramid = 1;
	param->paramtype = intype;
	param->paramtypmod = -1;
	param->paramcollid = get_typcollation(intype);
	param->location = -1;

	/* as the engine: (value)::type explicitly, then the INSERT's typmod */
	expr = coerce_to_target_type(NULL, (Node *) param, intype, target, -1,
								 COERCION_EXPLICIT, COERCE_EXPLICIT_CAST, -1);
	if (expr != NULL && typmod >= 0)
		expr = coerce_to_target_type(NULL, expr, target, target, typmod,
									 COERCION_ASSIGNMENT, COERCE_IMPLICIT_CAST, -1);
	probe->castable = expr != NULL;
	if (probe->castable)
	{
		probe->params = makeParamList(1);
		probe->params->params[0].ptype = intype;
		probe->params->params[0].pflags = PARAM_FLAG_CONST;
		expr = (Node *) expression_planner((Expr *) expr);
		probe->state = ExecInitExprWithParams((Expr *) expr, probe->params);
		probe->econtext = CreateStandaloneExprContext();
		probe->econtext->ecxt_param_list_info = probe->params;
		probe->evalcxt = AllocSetContextCreate(fcinfo->flinfo->fn_mcxt,
											   "migrate cast probe",
											   ALLOCSET_SMALL_SIZES);
	}
	MemoryContextSwitchTo(oldcxt);
	return probe;
}

/*
 * migrate._cast_fails(value anyelement, target regtype, typmod integer)
 * returns boolean
 *
 * true when loading value into a column of type target(typmod) would fail:
 * no assignment coercion exists, or the coercion raises a data exception
 * (22xxx) or a constraint error (23xxx, domains).  NULL values never fail
 * (NOT NULL is counted separately).  Needs a transaction; may be called
 * once per row.
 */
Datum
migrate_cast_fails(PG_FUNCTION_ARGS)
{
	Oid			intype = get_fn_expr_argtype(fcinfo->flinfo, 0);
	Oid			target;
	int32		typmod;
	CastProbe  *probe = (CastProbe *) fcinfo->flinfo->fn_extra;
	MemoryContext oldcxt = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;
	volatile bool fails = false;

	if (PG_ARGISNULL(0))
		PG_RETURN_BOOL(false);
	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("target type of migrate._cast_fails() must not be null")));
	target = PG_GETARG_OID(1);
	typmod = PG_ARGISNULL(2) ? -1 : PG_GETARG_INT32(2);
	if (!OidIsValid(intype))
		ereport(ERROR,
				(errcode(ERRCODE_INDETERMINATE_DATATYPE),
				 errmsg("could not determine the type of the value given to migrate._cast_fails()")));

	if (probe == NULL || probe->intype != intype || probe->target != target ||
		probe->typmod != typmod)
	{
		probe = probe_build(fcinfo, intype, target, typmod);
		fcinfo->flinfo->fn_extra = probe;
	}
	if (!probe->castable)
		PG_RETURN_BOOL(true);

	MemoryContextReset(probe->evalcxt);
	probe->params->params[0].value = PG_GETARG_DATUM(0);
	probe->params->params[0].isnull = false;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(probe->evalcxt);
	PG_TRY();
	{
		bool		isnull;

		ResetExprContext(probe->econtext);
		(void) ExecEvalExprSwitchContext(probe->state, probe->econtext, &isnull);
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcxt);
		CurrentResourceOwner = oldowner;
	}
	PG_CATCH();
	{
		ErrorData  *edata;
		int			class;

		edata = migrate_abort_subxact(oldcxt, oldowner);

		class = ERRCODE_TO_CATEGORY(edata->sqlerrcode);
		if (class != ERRCODE_DATA_EXCEPTION &&
			class != ERRCODE_INTEGRITY_CONSTRAINT_VIOLATION)
			ReThrowError(edata);
		FreeErrorData(edata);
		fails = true;
	}
	PG_END_TRY();

	PG_RETURN_BOOL(fails);
}
