/*-------------------------------------------------------------------------
 *
 * migrate.c
 *	  Module entry point: _PG_init and the migrate.* settings; the helpers
 *	  every subsystem shares (a worker's transaction, ending a failed
 *	  subtransaction, an int128 in decimal, checking that the library and
 *	  the extension's SQL objects are the same version).
 *
 * Everything else lives in its own subsystem file (see migrate.h).  The
 * library does not need shared_preload_libraries: runs use dynamic
 * background workers, registered by migrate_run() when it is called.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <limits.h>

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/pg_extension.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/resowner.h"

#include "migrate.h"

PG_MODULE_MAGIC;

/* EXTVERSION of the Makefile: the version of the SQL objects this library expects */
#ifndef MIGRATE_VERSION
#error "MIGRATE_VERSION is not defined: build with the project's Makefile"
#endif

static bool version_matched = false;	/* this backend saw extversion = MIGRATE_VERSION */

int			migrate_batch_size = 50000;
int			migrate_batch_bytes = 16 * 1024 * 1024;
int			migrate_max_workers = 1;
int			migrate_max_workers_total = 8;
bool		migrate_copy_source = true;
bool		migrate_multi_insert = true;
int			migrate_progress_interval = 5;

void		_PG_init(void);

void
_PG_init(void)
{
	DefineCustomIntVariable("migrate.batch_size",
							"Rows per batch: the unit of commit, checkpoint and memory.",
							"Each batch's rows, rejects and checkpoint commit in one transaction.",
							&migrate_batch_size,
							50000,
							1,
							INT_MAX / 4,
							PGC_USERSET,
							0,
							NULL, NULL, NULL);

	/*
	 * A byte budget per batch besides the row count: a FDW that buffers a
	 * whole result set (mysql_fdw with text columns) holds a batch's rows
	 * in the worker at once, so wide rows need fewer rows per batch.
	 */
	DefineCustomIntVariable("migrate.batch_bytes",
							"Memory a batch may make a worker hold; 0 bounds batches by rows only.",
							"Rows per batch adapt to the memory earlier batches of the range took; a plan option batch_bytes overrides it.",
							&migrate_batch_bytes,
							16 * 1024 * 1024,
							0,
							INT_MAX,
							PGC_USERSET,
							GUC_UNIT_BYTE,
							NULL, NULL, NULL);

	DefineCustomIntVariable("migrate.max_workers",
							"Workers of a run when migrate_run() is called without parallel.",
							"The coordinator counts as one; each takes a background worker slot (max_worker_processes).",
							&migrate_max_workers,
							1,
							1,
							MIGRATE_MAX_PARALLEL,
							PGC_SUSET,
							0,
							NULL, NULL, NULL);

	/*
	 * A cap on the workers of all runs at once, cluster-wide: each worker
	 * holds one of this many slot locks (worker.c), so it holds whatever
	 * else runs.  Superuser-only, like max_parallel_workers' role: a
	 * migrator must not take the whole server.
	 */
	DefineCustomIntVariable("migrate.max_workers_total",
							"Workers of all migrate runs at once, in the whole cluster.",
							"Coordinators and helpers count; migrate_run() refuses a parallel above it, and a run starts fewer helpers when other runs hold the slots.",
							&migrate_max_workers_total,
							8,
							1,
							MIGRATE_MAX_WORKERS_TOTAL,
							PGC_SUSET,
							0,
							NULL, NULL, NULL);

	DefineCustomBoolVariable("migrate.multi_insert",
							 "Write a batch's rows with the table's multi-insert, as COPY FROM does, where the target allows it.",
							 "Plain tables without insert triggers, rules or row-level security, mode insert, no undo log; others take INSERT ... SELECT (src/multiinsert.c).",
							 &migrate_multi_insert,
							 true,
							 PGC_USERSET,
							 0,
							 NULL, NULL, NULL);

	DefineCustomBoolVariable("migrate.copy_source",
							 "Read postgres_fdw sources with a binary COPY instead of through the FDW.",
							 "Applies to foreign tables of postgres_fdw with built-in column types, a plain key column and no filter.",
							 &migrate_copy_source,
							 true,
							 PGC_USERSET,
							 0,
							 NULL, NULL, NULL);

	DefineCustomBoolVariable("migrate.copy_stream",
							 "Stream the rows of a binary COPY from a postgres_fdw source into the batch as they arrive.",
							 "Off: migrate._copy_source() is a materialized set-returning function (src/copysrc.c).",
							 &migrate_copy_stream,
							 true,
							 PGC_USERSET,
							 0,
							 NULL, NULL, NULL);
	migrate_copy_stream_init();

	/*
	 * Seconds between the live progress lines of a waiting migrate_run()
	 * (progress.c); the caller's value is taken when the run starts.
	 */
	DefineCustomIntVariable("migrate.progress_interval",
							"Seconds between the progress lines migrate_run() prints while a table loads (0: none).",
							"Only a waiting call prints them (wait => true); the line at the end of each table stays.",
							&migrate_progress_interval,
							5,
							0,
							MIGRATE_PROGRESS_INTERVAL_MAX,
							PGC_USERSET,
							GUC_UNIT_S,
							NULL, NULL, NULL);

	MarkGUCPrefixReserved("migrate");
}

/*
 * In the PG_CATCH of an internal subtransaction begun in memory context
 * caller_cxt under resource owner caller_owner: take the error, roll the
 * subtransaction back, and return to the caller's context and owner.  The
 * error is allocated in caller_cxt; the caller rethrows or handles it.
 */
ErrorData *
migrate_abort_subxact(MemoryContext caller_cxt, ResourceOwner caller_owner)
{
	ErrorData  *edata;

	MemoryContextSwitchTo(caller_cxt);
	edata = CopyErrorData();
	FlushErrorState();
	RollbackAndReleaseCurrentSubTransaction();
	MemoryContextSwitchTo(caller_cxt);
	CurrentResourceOwner = caller_owner;
	return edata;
}

/* v in decimal, for a numeric parameter (PostgreSQL 15 has no int128 output) */
char *
migrate_int128_to_cstring(int128 v)
{
	char		buf[48];
	char	   *p = buf + sizeof(buf);
	uint128		u = v < 0 ? -(uint128) v : (uint128) v;

	*--p = '\0';
	do
	{
		*--p = '0' + (int) (u % 10);
		u /= 10;
	} while (u != 0);
	if (v < 0)
		*--p = '-';
	return pstrdup(p);
}

/*
 * Refuse to start work when the extension's SQL objects in this database are
 * not those of this library's version: after a package upgrade (new library
 * on disk, restart) and before ALTER EXTENSION migrate UPDATE, the C entry
 * points of the old SQL would otherwise run against a catalog they do not
 * know (e.g. "relation migrate.run_range does not exist" from the worker).
 *
 * Called at the SQL entry points that start work (migrate_run,
 * migrate_resume) and by the run's coordinator before it reads its shared
 * segment: a coordinator of another version than its caller cannot trust
 * the segment's layout, so it fails there, in the server log, and the
 * caller reports that the worker exited.  Reads pg_extension directly (no
 * SPI); starts and commits a transaction of its own when called outside
 * one.  A match is cached for the life of the backend; a mismatch is
 * checked again on the next call, so ALTER EXTENSION UPDATE in the same
 * session is seen.  Throws on a mismatch or when the extension is missing.
 */
void
migrate_check_version(void)
{
	bool		own_txn = false;
	Relation	rel;
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tup;
	char	   *extversion = NULL;

	if (version_matched)
		return;
	if (!IsTransactionState())
	{
		StartTransactionCommand();
		own_txn = true;
	}

	rel = table_open(ExtensionRelationId, AccessShareLock);
	ScanKeyInit(&key, Anum_pg_extension_extname, BTEqualStrategyNumber, F_NAMEEQ,
				CStringGetDatum("migrate"));
	scan = systable_beginscan(rel, ExtensionNameIndexId, true, NULL, 1, &key);
	tup = systable_getnext(scan);
	if (HeapTupleIsValid(tup))
	{
		bool		isnull;
		Datum		d = heap_getattr(tup, Anum_pg_extension_extversion,
									 RelationGetDescr(rel), &isnull);

		if (!isnull)
			extversion = text_to_cstring(DatumGetTextPP(d));
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);

	if (extversion == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("extension \"migrate\" is not installed in this database"),
				 errhint("Run CREATE EXTENSION migrate.")));
	if (strcmp(extversion, MIGRATE_VERSION) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("extension \"migrate\" is at version %s but its library is version %s",
						extversion, MIGRATE_VERSION),
				 errdetail("The migrate library installed on the server does not match the extension's SQL objects in this database."),
				 errhint("Run ALTER EXTENSION migrate UPDATE.")));
	pfree(extversion);
	if (own_txn)
		CommitTransactionCommand();
	version_matched = true;
}

/*
 * migrate_begin_txn / migrate_commit_txn: a worker's own transaction, with
 * SPI connected and a snapshot pushed (every catalog touch of a worker and
 * every batch is one).  Not for a backend already in a transaction.
 */
void
migrate_begin_txn(void)
{
	int			ret;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	if ((ret = SPI_connect()) != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed: %s", SPI_result_code_string(ret));
	PushActiveSnapshot(GetTransactionSnapshot());
}

void
migrate_commit_txn(void)
{
	int			ret;

	if ((ret = SPI_finish()) != SPI_OK_FINISH)
		elog(ERROR, "SPI_finish failed: %s", SPI_result_code_string(ret));
	PopActiveSnapshot();
	CommitTransactionCommand();
}

/*
 * The parameters of a prepared statement as a ParamListInfo (for
 * SPI_execute_plan_extended, whose callers send the rows to a receiver of
 * their own: undo.c, multiinsert.c): values, none NULL, typed as prepared.
 */
ParamListInfo
migrate_spi_params(SPIPlanPtr plan, Datum *values)
{
	int			nargs = SPI_getargcount(plan);
	ParamListInfo params = makeParamList(nargs);

	for (int i = 0; i < nargs; i++)
	{
		params->params[i].value = values[i];
		params->params[i].isnull = false;
		params->params[i].pflags = PARAM_FLAG_CONST;
		params->params[i].ptype = SPI_getargtypeid(plan, i);
	}
	return params;
}
