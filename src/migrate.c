/*-------------------------------------------------------------------------
 *
 * migrate.c
 *	  Module entry point: _PG_init and the migrate.* settings; the one
 *	  helper every subsystem shares (ending a failed subtransaction).
 *
 * Everything else lives in its own subsystem file (see migrate.h).  The
 * library does not need shared_preload_libraries: runs use dynamic
 * background workers, registered by migrate_run() when it is called.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <limits.h>

#include "access/xact.h"
#include "fmgr.h"
#include "utils/guc.h"
#include "utils/resowner.h"

#include "migrate.h"

PG_MODULE_MAGIC;

int			migrate_batch_size = 50000;
int			migrate_max_workers = 1;
bool		migrate_copy_source = true;

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

	DefineCustomIntVariable("migrate.max_workers",
							"Workers of a run when migrate_run() is called without parallel.",
							"The coordinator counts as one; each takes a background worker slot (max_worker_processes).",
							&migrate_max_workers,
							1,
							1,
							MIGRATE_MAX_PARALLEL,
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
