/*-------------------------------------------------------------------------
 *
 * cutover.c
 *	  Blue-green cutover: migrate_cutover() (fence, final sync, verify
 *	  gate, the live tables' locks, the swap of sql/cutover.sql, the record
 *	  in migrate.cutover) and the reverse of a swap, for migrate_rollback()
 *	  of a cutover's run.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "migrate.h"

/*
 * Reverse the swap that the cutover run run_id made (migrate_rollback()).
 * Being written (issue 14): until then it refuses.
 */
void
migrate_cutover_reverse(int64 run_id, bool force)
{
	(void) force;
	ereport(ERROR,
			(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			 errmsg("reversing cutover run " INT64_FORMAT " is not supported yet", run_id)));
}
