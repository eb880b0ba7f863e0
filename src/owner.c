/*-------------------------------------------------------------------------
 *
 * owner.c
 *	  Who a call of migrate runs as: a plan's (or run's) owner, the check
 *	  that the caller is a member of it, switching to the owner for the
 *	  owner's SQL and to the extension's owner for writes of a run's state,
 *	  the caller's search_path under pinned functions, the wrapper that
 *	  runs a SQL function's body as the plan's owner, and the settings
 *	  (configuration parameters) a plan's SQL runs with.
 *
 * The model (docs/security.md): a plan belongs to a role; whoever runs it
 * (the owner, a member of the owner, a superuser, a pg_cron job) runs the
 * owner's SQL as the owner, never with more rights.  We switch with
 * SetUserIdAndSecContext and SECURITY_LOCAL_USERID_CHANGE, the way
 * PostgreSQL runs index expressions as a table's owner: the owner's code
 * then cannot SET ROLE or SET SESSION AUTHORIZATION back to the caller
 * (GUC_NOT_WHILE_SEC_REST), which SET ROLE alone would allow.  Aborting
 * the (sub)transaction restores the caller's identity, so no PG_TRY is
 * needed around the switched code.
 *
 * Writes of a run's state (catalog.c) run as the extension's owner, which
 * owns the catalog tables and so bypasses their row-level security; nobody
 * else may write those tables.  Only migrate's own SQL may run under that
 * identity, with search_path pinned to pg_catalog, pg_temp.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/indexing.h"
#include "catalog/namespace.h"
#include "catalog/pg_extension.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "nodes/value.h"
#include "parser/parse_func.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"
#include "utils/guc.h"
#include "utils/guc_tables.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"

#include "owner.h"

PG_FUNCTION_INFO_V1(migrate_caller_search_path_sql);
PG_FUNCTION_INFO_V1(migrate_call_as_owner);
PG_FUNCTION_INFO_V1(migrate_check_settings);

/* Open a GUC level with search_path pinned; returns the level to close. */
static int
pin_search_path(void)
{
	int			level = NewGUCNestLevel();

	(void) set_config_option("search_path", MIGRATE_SAFE_SEARCH_PATH,
							 PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	return level;
}

/*
 * Read at most one row of the catalog as the current user (so under its
 * row-level security) with search_path pinned: SPI connected, the query
 * run, SPI_processed and SPI_tuptable set.  Returns the GUC level that
 * catalog_read_end() closes, with SPI, once the row has been read.
 */
static int
catalog_read(const char *sql, int nargs, Oid *argtypes, Datum *args, const char *what)
{
	int			level = pin_search_path();
	int			ret;

	if ((ret = SPI_connect()) != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed: %s", SPI_result_code_string(ret));
	ret = SPI_execute_with_args(sql, nargs, argtypes, args, NULL, true, 1);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "reading %s failed: %s", what, SPI_result_code_string(ret));
	return level;
}

static void
catalog_read_end(int level)
{
	int			ret;

	if ((ret = SPI_finish()) != SPI_OK_FINISH)
		elog(ERROR, "SPI_finish failed: %s", SPI_result_code_string(ret));
	AtEOXact_GUC(true, level);
}

/*
 * One oid from a one-parameter query (catalog_read).  found says whether
 * a row came back; a NULL value gives InvalidOid.
 */
static Oid
oid_query(const char *sql, Oid argtype, Datum arg, bool *found)
{
	int			level = catalog_read(sql, 1, &argtype, &arg, "the owner");
	Oid			result = InvalidOid;

	*found = SPI_processed == 1;
	if (*found)
	{
		bool		isnull;
		Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);

		if (!isnull)
			result = DatumGetObjectId(d);
	}
	catalog_read_end(level);
	return result;
}

Oid
migrate_plan_owner(const char *plan, bool missing_ok)
{
	bool		found;
	Oid			owner;

	owner = oid_query("SELECT owner::pg_catalog.oid FROM migrate.plan"
					  " WHERE plan_name OPERATOR(pg_catalog.=) $1",
					  TEXTOID, CStringGetTextDatum(plan), &found);
	if (!found && !missing_ok)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("migration plan \"%s\" does not exist", plan),
				 errhint("Create it with migrate_plan(); a plan of a role you are not a member of is not visible.")));
	return owner;
}

Oid
migrate_run_owner(int64 run_id, bool missing_ok)
{
	bool		found;
	Oid			owner;

	owner = oid_query("SELECT owner::pg_catalog.oid FROM migrate.run"
					  " WHERE run_id OPERATOR(pg_catalog.=) $1",
					  INT8OID, Int64GetDatum(run_id), &found);
	if (!found && !missing_ok)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("migration run " INT64_FORMAT " does not exist", run_id),
				 errhint("See migrate_status(); a run of a role you are not a member of is not visible.")));
	if (found && !OidIsValid(owner))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("migration run " INT64_FORMAT " has no owner", run_id),
				 errdetail("The role that owned its plan was dropped."),
				 errhint("A superuser may give the plan a new owner: UPDATE migrate.plan SET owner = ...")));
	return owner;
}

void
migrate_check_member(Oid owner, const char *plan)
{
	if (!is_member_of_role(GetUserId(), owner))
	{
		char	   *owner_name = GetUserNameFromId(owner, true);

		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for migration plan \"%s\"", plan),
				 errdetail("The plan belongs to role \"%s\"; its SQL runs as that role.",
						   owner_name ? owner_name : "?"),
				 errhint("Call it as a member of role \"%s\".", owner_name ? owner_name : "?")));
	}
}

void
migrate_become_owner(Oid owner, MigrateIdentity *saved)
{
	GetUserIdAndSecContext(&saved->userid, &saved->sec_context);
	saved->guc_nestlevel = 0;
	SetUserIdAndSecContext(owner, saved->sec_context | SECURITY_LOCAL_USERID_CHANGE);
}

/* The owner of the extension (of the catalog tables); cached per backend. */
static Oid
extension_owner(void)
{
	static Oid	cached = InvalidOid;
	Oid			ext_oid;
	Relation	rel;
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tup;

	if (OidIsValid(cached))
		return cached;
	ext_oid = get_extension_oid("migrate", false);
	rel = table_open(ExtensionRelationId, AccessShareLock);
	ScanKeyInit(&key, Anum_pg_extension_oid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(ext_oid));
	scan = systable_beginscan(rel, ExtensionOidIndexId, true, NULL, 1, &key);
	tup = systable_getnext(scan);
	if (!HeapTupleIsValid(tup))
		elog(ERROR, "extension migrate (%u) not found", ext_oid);
	cached = ((Form_pg_extension) GETSTRUCT(tup))->extowner;
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return cached;
}

void
migrate_become_catalog_owner(MigrateIdentity *saved)
{
	Oid			owner = extension_owner();

	GetUserIdAndSecContext(&saved->userid, &saved->sec_context);
	SetUserIdAndSecContext(owner, saved->sec_context | SECURITY_LOCAL_USERID_CHANGE);
	saved->guc_nestlevel = pin_search_path();
}

void
migrate_restore_identity(MigrateIdentity *saved)
{
	if (saved->guc_nestlevel > 0)
		AtEOXact_GUC(true, saved->guc_nestlevel);
	saved->guc_nestlevel = 0;
	SetUserIdAndSecContext(saved->userid, saved->sec_context);
}

char *
migrate_caller_search_path(void)
{
	struct config_generic **vars = get_guc_variables();
	int			n = GetNumConfigOptions();

	for (int i = 0; i < n; i++)
	{
		struct config_string *conf;

		if (strcmp(vars[i]->name, "search_path") != 0)
			continue;
		conf = (struct config_string *) vars[i];
		/* newest level first: skip the levels our own functions pinned */
		for (GucStack *stack = vars[i]->stack; stack; stack = stack->prev)
		{
			const char *prior = stack->prior.val.stringval;

			if (prior && strcmp(prior, MIGRATE_SAFE_SEARCH_PATH) != 0)
				return pstrdup(prior);
		}
		return pstrdup(*conf->variable ? *conf->variable : "");
	}
	elog(ERROR, "search_path is not a configuration parameter");
	return NULL;				/* keep compiler quiet */
}

/* migrate._caller_search_path() RETURNS text */
Datum
migrate_caller_search_path_sql(PG_FUNCTION_ARGS)
{
	PG_RETURN_TEXT_P(cstring_to_text(migrate_caller_search_path()));
}

/* the implementation migrate_call_as_owner is running (innermost), or NULL */
static const char *own_call_impl = NULL;

bool
migrate_in_own_call(const char *impl)
{
	return own_call_impl != NULL && (impl == NULL || strcmp(own_call_impl, impl) == 0);
}

/*
 * The SQL writers of catalog.c record what migrate_verify(),
 * migrate_report(), migrate_diff() and migrate_drop_plan() did: a plan's
 * owner calling one directly (to mark its own run verified without
 * verifying it, say) is refused; a superuser may, as it may write the
 * tables anyway.
 */
void
migrate_check_own_writer(const char *writer, const char *impl, const char *public_function)
{
	if (superuser() || migrate_in_own_call(impl))
		return;
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("%s records what %s did: it may not be called directly", writer,
					public_function ? public_function : "migrate's own functions"),
			 errdetail("Only migrate's own functions, or a superuser, may call it."),
			 public_function ? errhint("Call %s.", public_function) : 0));
}

/*
 * migrate._catalog_event(): within migrate's own calls, or the "plan
 * defined" event (plan given, no run) that migrate_plan() writes as its
 * caller, with the options the plan has now as details: only the truth.
 */
void
migrate_check_event_writer(const char *plan_without_run, const char *event, const char *details)
{
	bool		truthful = false;

	if (plan_without_run != NULL && details != NULL && strcmp(event, "plan defined") == 0 &&
		!superuser() && !migrate_in_own_call(NULL))
	{
		Oid			argtypes[2] = {TEXTOID, TEXTOID};
		Datum		args[2] = {CStringGetTextDatum(plan_without_run), CStringGetTextDatum(details)};
		int			level = catalog_read("SELECT 1 FROM migrate.plan p WHERE p.plan_name OPERATOR(pg_catalog.=) $1"
										 "   AND p.options::pg_catalog.text OPERATOR(pg_catalog.=) $2",
										 2, argtypes, args, "a plan's options");

		truthful = SPI_processed == 1;
		catalog_read_end(level);
	}
	if (!truthful)
		migrate_check_own_writer("migrate._catalog_event()", NULL, NULL);
}

/* ---------------------------------------------------------------------
 * A plan's settings (options->'settings'): the configuration parameters
 * its owner's SQL runs with in a run's workers and in verify and diff,
 * which evaluate the same mappings (pgloader's SET clause).
 * ---------------------------------------------------------------------
 */

/* Parameters a plan may not set: who it runs as, and where names resolve. */
static void
check_setting_name(const char *name)
{
	if (pg_strcasecmp(name, "search_path") == 0 || pg_strcasecmp(name, "role") == 0 ||
		pg_strcasecmp(name, "session_authorization") == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a plan's settings may not set \"%s\"", name),
				 errhint("A run resolves names by the search_path of its caller, as the plan's owner.")));
}

/*
 * Set (or with check_only, only validate) each setting of a jsonb object
 * as the current user may: a superuser's plan can set superuser-only
 * parameters, another's cannot.  action GUC_ACTION_SET: for the rest of a
 * worker's session; GUC_ACTION_SAVE: until the GUC level open is closed.
 */
static void
apply_settings(Jsonb *settings, bool check_only, GucAction action)
{
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	char	   *name = NULL;

	if (!JB_ROOT_IS_OBJECT(settings) || JB_ROOT_IS_SCALAR(settings))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("settings of a plan must be a JSON object of parameter names and values"),
				 errhint("For example options => '{\"settings\": {\"DateStyle\": \"ISO, DMY\"}}'.")));
	it = JsonbIteratorInit(&settings->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		char	   *value;

		if (tok == WJB_KEY)
		{
			name = pnstrdup(v.val.string.val, v.val.string.len);
			check_setting_name(name);
			continue;
		}
		if (tok != WJB_VALUE)
			continue;
		if (v.type == jbvString)
			value = pnstrdup(v.val.string.val, v.val.string.len);
		else if (v.type == jbvNumeric)
			value = DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(v.val.numeric)));
		else if (v.type == jbvBool)
			value = v.val.boolean ? "on" : "off";
		else
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("setting \"%s\" of a plan must be a string, a number or a boolean", name)));
		(void) set_config_option(name, value, superuser() ? PGC_SUSET : PGC_USERSET,
								 PGC_S_SESSION, action, !check_only, 0, false);
	}
}

/* A plan's settings as the current user reads them, or NULL. */
static Jsonb *
plan_settings(const char *plan)
{
	Oid			argtype = TEXTOID;
	Datum		arg = CStringGetTextDatum(plan);
	Jsonb	   *result = NULL;
	int			level = catalog_read("SELECT options OPERATOR(pg_catalog.->) 'settings' FROM migrate.plan"
									 " WHERE plan_name OPERATOR(pg_catalog.=) $1",
									 1, &argtype, &arg, "a plan's settings");

	if (SPI_processed == 1)
	{
		bool		isnull;
		Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);

		if (!isnull)
			result = DatumGetJsonbPCopy(d);	/* in the caller's context */
	}
	catalog_read_end(level);
	return result;
}

/* For the rest of a worker's session (in a transaction that commits). */
void
migrate_set_plan_settings(const char *plan)
{
	Jsonb	   *settings = plan_settings(plan);

	if (settings)
		apply_settings(settings, false, GUC_ACTION_SET);
}

/* migrate._check_settings(settings jsonb) RETURNS void: refuses what a run could not set */
Datum
migrate_check_settings(PG_FUNCTION_ARGS)
{
	apply_settings(PG_GETARG_JSONB_P(0), true, GUC_ACTION_SET);
	PG_RETURN_VOID();
}

/* Call the implementation, known as migrate's own call while it runs. */
static Datum
invoke_own_call(FunctionCallInfo impl_fcinfo, const char *impl_name)
{
	const char *outer = own_call_impl;
	Datum		result;

	own_call_impl = impl_name;
	PG_TRY();
	{
		result = FunctionCallInvoke(impl_fcinfo);
	}
	PG_FINALLY();
	{
		own_call_impl = outer;
	}
	PG_END_TRY();
	return result;
}

/*
 * The body of a public function F that runs as the plan's owner: declared
 * LANGUAGE C AS 'MODULE_PATHNAME', 'migrate_call_as_owner'.  Its first
 * argument names the plan (text) or a run (bigint).  It becomes the owner,
 * if the caller is not the owner already and is a member of it, and calls
 * migrate._F (same argument types) with the same arguments and result
 * context, so set-returning implementations work too (materialize mode,
 * as plpgsql does).  A plan or run the caller cannot see is left to the
 * implementation, run as the caller, to report.  The implementation need
 * not be executable by the caller: it is called directly, not through SQL.
 */
Datum
migrate_call_as_owner(PG_FUNCTION_ARGS)
{
	Oid			self = fcinfo->flinfo->fn_oid;
	HeapTuple	proc;
	Form_pg_proc procform;
	char	   *impl_name;
	Oid			argtypes[FUNC_MAX_ARGS];
	int			nargs;
	Oid			impl;
	Oid			owner = InvalidOid;
	char	   *plan_label = NULL;
	FmgrInfo	impl_flinfo;
	MigrateIdentity saved;
	bool		switched = false;
	int			settings_level = 0;
	Datum		result;

	LOCAL_FCINFO(impl_fcinfo, FUNC_MAX_ARGS);

	proc = SearchSysCache1(PROCOID, ObjectIdGetDatum(self));
	if (!HeapTupleIsValid(proc))
		elog(ERROR, "cache lookup failed for function %u", self);
	procform = (Form_pg_proc) GETSTRUCT(proc);
	nargs = procform->pronargs;
	memcpy(argtypes, procform->proargtypes.values, nargs * sizeof(Oid));
	impl_name = psprintf("_%s", NameStr(procform->proname));
	ReleaseSysCache(proc);

	impl = LookupFuncName(list_make2(makeString("migrate"), makeString(impl_name)),
						  nargs, argtypes, false);

	if (nargs >= 1 && !PG_ARGISNULL(0))
	{
		if (argtypes[0] == TEXTOID)
		{
			plan_label = TextDatumGetCString(PG_GETARG_DATUM(0));
			owner = migrate_plan_owner(plan_label, true);
		}
		else if (argtypes[0] == INT8OID)
		{
			int64		run_id = PG_GETARG_INT64(0);

			owner = migrate_run_owner(run_id, true);
			plan_label = psprintf("of run " INT64_FORMAT, run_id);
		}
		else
			elog(ERROR, "migrate_call_as_owner: the first argument of %s must be a plan or a run",
				 impl_name + 1);
	}

	if (OidIsValid(owner) && owner != GetUserId())
	{
		migrate_check_member(owner, plan_label);
		migrate_become_owner(owner, &saved);
		switched = true;
	}

	/* verify and diff evaluate the mappings as a run does: with its settings */
	if (plan_label && argtypes[0] == TEXTOID &&
		(strcmp(impl_name, "_migrate_verify") == 0 || strcmp(impl_name, "_migrate_diff") == 0))
	{
		Jsonb	   *settings = plan_settings(plan_label);

		if (settings)
		{
			settings_level = NewGUCNestLevel();
			apply_settings(settings, false, GUC_ACTION_SAVE);
		}
	}

	fmgr_info(impl, &impl_flinfo);
	InitFunctionCallInfoData(*impl_fcinfo, &impl_flinfo, nargs,
							 fcinfo->fncollation, fcinfo->context, fcinfo->resultinfo);
	for (int i = 0; i < nargs; i++)
	{
		impl_fcinfo->args[i].value = fcinfo->args[i].value;
		impl_fcinfo->args[i].isnull = fcinfo->args[i].isnull;
	}
	result = invoke_own_call(impl_fcinfo, impl_name);
	fcinfo->isnull = impl_fcinfo->isnull;
	if (settings_level > 0)
		AtEOXact_GUC(true, settings_level);

	if (switched)
		migrate_restore_identity(&saved);
	return result;
}
