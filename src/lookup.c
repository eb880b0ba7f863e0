/*-------------------------------------------------------------------------
 *
 * lookup.c
 *	  migrate_lookup(map, value): named value maps used in expressions.
 *
 * A mapping expression calls migrate_lookup once per source row, so a query
 * per call would dominate the load.  The first call at a call site loads the
 * whole map into a hash table kept in fn_extra (the FmgrInfo's memory
 * context, which lives as long as the statement), and later calls only
 * probe it.  Maps are small (codes, statuses); a map is read once per batch
 * statement, so edits to a map are seen by the next batch.
 *
 * Value maps are owned (migrate.lookup_map): the map is read as the
 * current user, under the catalog's row-level security, so a run (whose
 * workers are the plan's owner) sees only maps its owner may see, and a
 * map another role owns "does not exist".  The cache is keyed by the map
 * name and the user it was read as, so a call site evaluated as another
 * user (SET ROLE, a SECURITY DEFINER function) reads the map again.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

#include "migrate.h"

PG_FUNCTION_INFO_V1(migrate_lookup);

/* hash entry: dynahash keeps string keys inline, so the key is an array */
typedef struct LookupEntry
{
	char		from_value[MIGRATE_TEXT_MAXLEN];	/* hash key */
	char	   *to_value;		/* NULL when the map says NULL */
} LookupEntry;

/* what one call site caches in fn_extra */
typedef struct LookupCache
{
	char	   *map_name;
	Oid			userid;			/* the user the map was read as */
	HTAB	   *entries;
	Oid			value_type;		/* type of the value argument */
	FmgrInfo	value_out;		/* its output function */
	bool		value_is_text;
} LookupCache;

static LookupCache *lookup_load(FunctionCallInfo fcinfo, const char *map_name);

/*
 * Load map_name into a new cache in fcinfo->flinfo->fn_mcxt.  Uses SPI, so
 * it needs a transaction and a snapshot, which any SQL caller has.  Raises
 * when the map has no entries at all: that is nearly always a typo.
 */
static LookupCache *
lookup_load(FunctionCallInfo fcinfo, const char *map_name)
{
	MemoryContext fn_mcxt = fcinfo->flinfo->fn_mcxt;
	LookupCache *cache;
	HASHCTL		ctl;
	Oid			argtypes[1] = {TEXTOID};
	Datum		args[1];
	int			ret;
	uint64		i;

	cache = MemoryContextAllocZero(fn_mcxt, sizeof(LookupCache));
	cache->map_name = MemoryContextStrdup(fn_mcxt, map_name);
	cache->userid = GetUserId();

	ctl.keysize = MIGRATE_TEXT_MAXLEN;
	ctl.entrysize = sizeof(LookupEntry);
	ctl.hcxt = fn_mcxt;
	cache->entries = hash_create("migrate value map", 64, &ctl,
								 HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);

	if ((ret = SPI_connect()) != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed: %s", SPI_result_code_string(ret));

	args[0] = CStringGetTextDatum(map_name);
	/* fully qualified: runs under the caller's (or the run's) search_path */
	ret = SPI_execute_with_args("SELECT v.from_value, v.to_value FROM migrate.value_map v"
								" WHERE v.map_name OPERATOR(pg_catalog.=) $1",
								1, argtypes, args, NULL, true, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "reading value map \"%s\" failed: %s", map_name,
			 SPI_result_code_string(ret));

	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("value map \"%s\" does not exist", map_name),
				 errhint("Add entries with migrate_value_map('%s', from_value, to_value); a map of another role is not visible.",
						 map_name)));

	for (i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		char	   *from = SPI_getvalue(tup, SPI_tuptable->tupdesc, 1);
		char	   *to = SPI_getvalue(tup, SPI_tuptable->tupdesc, 2);
		LookupEntry *entry;
		bool		found;

		if (strlen(from) >= MIGRATE_TEXT_MAXLEN)
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("value map \"%s\" has a from_value longer than %d bytes",
							map_name, MIGRATE_TEXT_MAXLEN - 1)));
		entry = hash_search(cache->entries, from, HASH_ENTER, &found);
		entry->to_value = to ? MemoryContextStrdup(fn_mcxt, to) : NULL;
	}

	if ((ret = SPI_finish()) != SPI_OK_FINISH)
		elog(ERROR, "SPI_finish failed: %s", SPI_result_code_string(ret));

	cache->value_type = get_fn_expr_argtype(fcinfo->flinfo, 1);
	cache->value_is_text = (cache->value_type == TEXTOID ||
							cache->value_type == VARCHAROID ||
							!OidIsValid(cache->value_type));
	if (!cache->value_is_text)
	{
		Oid			outfunc;
		bool		isvarlena;

		getTypeOutputInfo(cache->value_type, &outfunc, &isvarlena);
		fmgr_info_cxt(outfunc, &cache->value_out, fn_mcxt);
	}
	return cache;
}

/*
 * migrate_lookup(map text, value text | anynonarray) returns text
 *
 * The mapped value, or NULL when value is not in the map.  STRICT.
 */
Datum
migrate_lookup(PG_FUNCTION_ARGS)
{
	LookupCache *cache = (LookupCache *) fcinfo->flinfo->fn_extra;
	char	   *map_name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	char	   *value;
	LookupEntry *entry;

	if (cache == NULL || strcmp(cache->map_name, map_name) != 0 ||
		cache->userid != GetUserId())
	{
		cache = lookup_load(fcinfo, map_name);
		fcinfo->flinfo->fn_extra = cache;
	}

	if (cache->value_is_text)
		value = text_to_cstring(PG_GETARG_TEXT_PP(1));
	else
		value = OutputFunctionCall(&cache->value_out, PG_GETARG_DATUM(1));

	if (strlen(value) >= MIGRATE_TEXT_MAXLEN)
		PG_RETURN_NULL();		/* longer than any key we accepted */

	entry = hash_search(cache->entries, value, HASH_FIND, NULL);
	if (entry == NULL)
		PG_RETURN_NULL();
	if (entry->to_value == NULL)
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(cstring_to_text(entry->to_value));
}
