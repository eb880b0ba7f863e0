/*-------------------------------------------------------------------------
 *
 * mask.c
 *	  The masking functions for mappings of sensitive columns (DESIGN.md
 *	  "Who may do what"): migrate_mask_hash, migrate_mask_partial and
 *	  migrate_mask_redact.
 *
 * They are called once per row in a mapping expression, so they are C,
 * IMMUTABLE, STRICT and PARALLEL SAFE, and look up no names (no
 * search_path involved).  Each takes text or, through an anynonarray
 * overload of the same symbol, any value, which is masked in its text form
 * (the type's output function, found once per call site).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "common/cryptohash.h"
#include "common/sha2.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"

#include "migrate.h"

PG_FUNCTION_INFO_V1(migrate_mask_hash);
PG_FUNCTION_INFO_V1(migrate_mask_partial);
PG_FUNCTION_INFO_V1(migrate_mask_redact);

/* what migrate_mask_redact returns, and what migrate stores for a sensitive value */
#define MASK_REDACTED "***"

/* per call site: the output function of a non-text value argument */
typedef struct MaskCache
{
	Oid			type;
	bool		is_text;
	FmgrInfo	out;
} MaskCache;

/* The text form of argument 0, text or any type. */
static char *
mask_value_text(FunctionCallInfo fcinfo)
{
	MaskCache  *cache = (MaskCache *) fcinfo->flinfo->fn_extra;

	if (cache == NULL)
	{
		Oid			type = get_fn_expr_argtype(fcinfo->flinfo, 0);

		cache = MemoryContextAllocZero(fcinfo->flinfo->fn_mcxt, sizeof(MaskCache));
		cache->type = type;
		cache->is_text = (!OidIsValid(type) || type == TEXTOID || type == VARCHAROID ||
						  type == BPCHAROID || type == NAMEOID);
		if (!cache->is_text)
		{
			Oid			outfunc;
			bool		isvarlena;

			getTypeOutputInfo(type, &outfunc, &isvarlena);
			fmgr_info_cxt(outfunc, &cache->out, fcinfo->flinfo->fn_mcxt);
		}
		fcinfo->flinfo->fn_extra = cache;
	}
	if (!cache->is_text)
		return OutputFunctionCall(&cache->out, PG_GETARG_DATUM(0));
	if (cache->type == NAMEOID)
		return pstrdup(NameStr(*PG_GETARG_NAME(0)));
	return text_to_cstring(PG_GETARG_TEXT_PP(0));
}

/*
 * migrate_mask_hash(value text | anynonarray, salt text) returns text
 *
 * Lower-case hex of SHA-256(salt || value): stable for one salt, so masked
 * keys still join, and not reversible by a dictionary without the salt.
 */
Datum
migrate_mask_hash(PG_FUNCTION_ARGS)
{
	char	   *value = mask_value_text(fcinfo);
	text	   *salt = PG_GETARG_TEXT_PP(1);
	uint8		digest[PG_SHA256_DIGEST_LENGTH];
	char		hex[PG_SHA256_DIGEST_LENGTH * 2 + 1];
	pg_cryptohash_ctx *ctx;

	ctx = pg_cryptohash_create(PG_SHA256);
	if (ctx == NULL ||
		pg_cryptohash_init(ctx) < 0 ||
		pg_cryptohash_update(ctx, (const uint8 *) VARDATA_ANY(salt), VARSIZE_ANY_EXHDR(salt)) < 0 ||
		pg_cryptohash_update(ctx, (const uint8 *) value, strlen(value)) < 0 ||
		pg_cryptohash_final(ctx, digest, sizeof(digest)) < 0)
	{
		const char *why = ctx ? pg_cryptohash_error(ctx) : "out of memory";

		pg_cryptohash_free(ctx);
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("migrate_mask_hash() could not compute a SHA-256 digest: %s", why)));
	}
	pg_cryptohash_free(ctx);
	hex_encode((const char *) digest, sizeof(digest), hex);
	hex[sizeof(hex) - 1] = '\0';
	PG_RETURN_TEXT_P(cstring_to_text(hex));
}

/*
 * migrate_mask_partial(value text | anynonarray, keep_first int, keep_last int)
 * returns text
 *
 * The value with every character but the first keep_first and the last
 * keep_last replaced by '*' (characters, not bytes); a value of at most
 * keep_first + keep_last characters would show whole, so it is masked
 * entirely.  migrate_mask_partial('900000001', 0, 4) = '*****0001'.
 */
Datum
migrate_mask_partial(PG_FUNCTION_ARGS)
{
	char	   *value = mask_value_text(fcinfo);
	int32		keep_first = PG_GETARG_INT32(1);
	int32		keep_last = PG_GETARG_INT32(2);
	int			bytes = strlen(value);
	int			chars = pg_mbstrlen_with_len(value, bytes);
	StringInfoData out;
	const char *p = value;

	if (keep_first < 0 || keep_last < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("keep_first and keep_last of migrate_mask_partial() must not be negative")));

	initStringInfo(&out);
	for (int i = 0; i < chars; i++)
	{
		int			len = pg_mblen(p);
		bool		keep = ((int64) keep_first + keep_last < chars) &&
			(i < keep_first || i >= chars - keep_last);

		if (keep)
			appendBinaryStringInfo(&out, p, len);
		else
			appendStringInfoChar(&out, '*');
		p += len;
	}
	PG_RETURN_TEXT_P(cstring_to_text_with_len(out.data, out.len));
}

/*
 * migrate_mask_redact(value text | anynonarray) returns text
 *
 * '***' whatever the value (NULL stays NULL: STRICT).
 */
Datum
migrate_mask_redact(PG_FUNCTION_ARGS)
{
	PG_RETURN_TEXT_P(cstring_to_text(MASK_REDACTED));
}
