/*-------------------------------------------------------------------------
 *
 * catalog_strategies.c
 *	  The catalog writes of the strategies (DESIGN.md "Strategies"):
 *	  migrate.sync_state (trickle sync, src/sync.c), and the records of
 *	  cutovers and rollbacks.
 *
 * The same rules as catalog.c, whose helpers these functions use
 * (catalog.h): each write runs through SPI in the caller's transaction, as
 * the extension's owner, so that row-level security can give every other
 * role SELECT only on these tables; a write commits with what it records
 * (an apply's rows, rejects and position; a swap; a rollback's restores).
 * The state of runs (run, run_table, run_range, event) stays in catalog.c.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/builtins.h"

#include "migrate.h"
#include "catalog.h"

/* ---------------------------------------------------------------------
 * Trickle sync: migrate.sync_state
 * --------------------------------------------------------------------- */

/* Capture of target armed by run_id, from position (NULL: all it has); counters kept. */
void
migrate_catalog_sync_armed(int64 run_id, const char *plan, Oid target, const char *capture,
						   const char *position, const char *change_relation, const char *slot_name)
{
	Oid			argtypes[7] = {INT8OID, TEXTOID, OIDOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID};
	Datum		args[7];
	char		nulls[7] = "       ";

	args[0] = Int64GetDatum(run_id);
	args[1] = CStringGetTextDatum(plan);
	args[2] = ObjectIdGetDatum(target);
	args[3] = CStringGetTextDatum(capture);
	args[4] = position ? CStringGetTextDatum(position) : (Datum) (nulls[4] = 'n');
	args[5] = change_relation ? CStringGetTextDatum(change_relation) : (Datum) (nulls[5] = 'n');
	args[6] = slot_name ? CStringGetTextDatum(slot_name) : (Datum) (nulls[6] = 'n');
	(void) migrate_catalog_exec("INSERT INTO migrate.sync_state AS s (plan, target, capture, position,"
						"   change_relation, slot_name, armed_at, armed_run)"
						" VALUES ($2, $3, $4, $5, $6, $7, pg_catalog.now(), $1)"
						" ON CONFLICT (plan, target) DO UPDATE SET capture = EXCLUDED.capture,"
						"   position = EXCLUDED.position, change_relation = EXCLUDED.change_relation,"
						"   slot_name = EXCLUDED.slot_name, prune = NULL, armed_at = EXCLUDED.armed_at,"
						"   armed_run = EXCLUDED.armed_run, last_error = NULL",
						7, argtypes, args, nulls, SPI_OK_INSERT, "writing migrate.sync_state");
}

/*
 * An apply of target committed with this: what it applied, its position
 * when move (else the position stays), the change rows to delete at the
 * source after the commit (prune: an int8[]; 0 for none), and the keys
 * whose delete a foreign key refused (a->deferred, a text[] added to the
 * table's; a->deferred_reset: the table's are dropped first).
 */
void
migrate_catalog_sync_applied(const char *plan, Oid target, bool move, const char *position,
							 Datum prune, const MigrateSyncApplied *a)
{
	Oid			argtypes[11] = {TEXTOID, OIDOID, BOOLOID, TEXTOID, INT8ARRAYOID, INT8OID, INT8OID,
	INT8OID, INT8OID, BOOLOID, TEXTARRAYOID};
	Datum		args[11];
	char		nulls[11] = "           ";

	args[0] = CStringGetTextDatum(plan);
	args[1] = ObjectIdGetDatum(target);
	args[2] = BoolGetDatum(move);
	args[3] = position ? CStringGetTextDatum(position) : (Datum) (nulls[3] = 'n');
	args[4] = prune ? prune : (Datum) (nulls[4] = 'n');
	args[5] = Int64GetDatum(a->inserted);
	args[6] = Int64GetDatum(a->updated);
	args[7] = Int64GetDatum(a->deleted);
	args[8] = Int64GetDatum(a->rejected);
	args[9] = BoolGetDatum(a->deferred_reset);
	args[10] = a->deferred;
	nulls[10] = a->deferred ? ' ' : 'n';
	if (migrate_catalog_exec("UPDATE migrate.sync_state SET position = CASE WHEN $3 THEN $4 ELSE position END,"
					 "   prune = $5, applied_inserted = applied_inserted + $6,"
					 "   applied_updated = applied_updated + $7, applied_deleted = applied_deleted + $8,"
					 "   applied_rejected = applied_rejected + $9,"
					 "   deferred = CASE WHEN $10 THEN NULL ELSE deferred END || $11"
					 " WHERE plan = $1 AND target = $2",
					 11, argtypes, args, nulls, SPI_OK_UPDATE, "updating migrate.sync_state") != 1)
		elog(ERROR, "table %u of plan \"%s\" has no sync state", target, plan);
}

/* A pass of target ended: when, to which fence, and the lag it saw (NULL: none). */
void
migrate_catalog_sync_pass_done(int64 run_id, const char *plan, Oid target, const char *synced_to,
							   const char *lag)
{
	Oid			argtypes[5] = {INT8OID, TEXTOID, OIDOID, TEXTOID, TEXTOID};
	Datum		args[5];
	char		nulls[5] = "     ";

	args[0] = Int64GetDatum(run_id);
	args[1] = CStringGetTextDatum(plan);
	args[2] = ObjectIdGetDatum(target);
	args[3] = synced_to ? CStringGetTextDatum(synced_to) : (Datum) (nulls[3] = 'n');
	args[4] = lag ? CStringGetTextDatum(lag) : (Datum) (nulls[4] = 'n');
	(void) migrate_catalog_exec("UPDATE migrate.sync_state SET passes = passes + 1, last_sync_at = pg_catalog.now(),"
						"   last_sync_run = $1, synced_to = $4, lag = $5::pg_catalog.interval, last_error = NULL"
						" WHERE plan = $2 AND target = $3",
						5, argtypes, args, nulls, SPI_OK_UPDATE, "updating migrate.sync_state");
}

/*
 * Remove rejects of run_id for target after after_id that repeat one of the
 * plan (same key, reason and row: re-read unchanged, or applied again after
 * a kill), so a bad row is quarantined once.  Returns how many.
 */
int64
migrate_catalog_sync_dedupe_rejects(int64 run_id, Oid target, int64 after_id)
{
	Oid			argtypes[3] = {INT8OID, OIDOID, INT8OID};
	Datum		args[3] = {Int64GetDatum(run_id), ObjectIdGetDatum(target), Int64GetDatum(after_id)};

	return (int64) migrate_catalog_exec("DELETE FROM migrate.reject r WHERE r.run_id = $1 AND r.target = $2"
								"   AND r.reject_id > $3 AND EXISTS (SELECT 1 FROM migrate.reject o"
								"     JOIN migrate.run ro ON ro.run_id = o.run_id"
								"    WHERE ro.plan = (SELECT plan FROM migrate.run WHERE run_id = $1)"
								"      AND o.target = r.target AND o.reject_id <= $3"
								"      AND o.source_key IS NOT DISTINCT FROM r.source_key"
								"      AND o.reason = r.reason"
								"      AND o.source_row IS NOT DISTINCT FROM r.source_row)",
								3, argtypes, args, NULL, SPI_OK_DELETE, "removing repeated rejects");
}

/* ---------------------------------------------------------------------
 * Cutover: migrate.cutover (src/cutover.c)
 * --------------------------------------------------------------------- */

/*
 * The swap of run_id's cutover, in the swap's transaction: fence and
 * carried are jsonb texts, lock_wait and lock_held interval texts,
 * retired_schema NULL when there was no live schema; swapped by the role
 * this process runs as (the caller of migrate_cutover()).
 */
void
migrate_catalog_cutover_swapped(int64 run_id, const char *plan, const char *live_schema,
								const char *shadow_schema, const char *retired_schema,
								const char *fence, int attempts, const char *lock_wait,
								const char *lock_held, const char *carried)
{
	Oid			argtypes[11] = {INT8OID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, INT4OID,
	TEXTOID, TEXTOID, TEXTOID, TEXTOID};
	Datum		args[11];
	char		nulls[11] = "           ";

	args[0] = Int64GetDatum(run_id);
	args[1] = CStringGetTextDatum(plan);
	args[2] = CStringGetTextDatum(live_schema);
	args[3] = CStringGetTextDatum(shadow_schema);
	args[4] = retired_schema ? CStringGetTextDatum(retired_schema) : (Datum) (nulls[4] = 'n');
	args[5] = CStringGetTextDatum(fence);
	args[6] = Int32GetDatum(attempts);
	args[7] = CStringGetTextDatum(lock_wait);
	args[8] = CStringGetTextDatum(lock_held);
	args[9] = CStringGetTextDatum(carried);
	args[10] = CStringGetTextDatum(GetUserNameFromId(GetUserId(), false));
	(void) migrate_catalog_exec("INSERT INTO migrate.cutover (run_id, plan, live_schema, shadow_schema, retired_schema,"
								"   state, fence, attempts, lock_wait, lock_held, carried, swapped_by)"
								" VALUES ($1, $2, $3, $4, $5, 'swapped', $6::pg_catalog.jsonb, $7,"
								"   $8::pg_catalog.interval, $9::pg_catalog.interval, $10::pg_catalog.jsonb, $11)",
								11, argtypes, args, nulls, SPI_OK_INSERT, "recording the cutover");
}

/*
 * The swap of run_id was reversed (migrate_cutover_reverse()), by the role
 * this process runs as.  Returns 1, or 0 when it was not swapped.
 */
uint64
migrate_catalog_cutover_reversed(int64 run_id)
{
	Oid			argtypes[2] = {INT8OID, TEXTOID};
	Datum		args[2];

	args[0] = Int64GetDatum(run_id);
	args[1] = CStringGetTextDatum(GetUserNameFromId(GetUserId(), false));
	return migrate_catalog_exec("UPDATE migrate.cutover SET state = 'rolled_back', rolled_back_by = $2,"
								"   rolled_back_at = pg_catalog.now()"
								" WHERE run_id = $1 AND state = 'swapped'",
								2, argtypes, args, NULL, SPI_OK_UPDATE, "recording the reverse of the cutover");
}
