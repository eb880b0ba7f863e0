/*-------------------------------------------------------------------------
 *
 * migrate.c
 *	  Module entry point: _PG_init and the migrate.* settings.
 *
 * Everything else lives in its own subsystem file (see migrate.h).  The
 * library does not need shared_preload_libraries: runs use dynamic
 * background workers, registered by migrate_run() when it is called.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <limits.h>

#include "fmgr.h"
#include "utils/guc.h"

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
