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

#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/regproc.h"

#include "migrate.h"
#include "owner.h"
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
 * Rows of target that a foreign key refused (quarantined 23503) by runs of
 * plan and that are in the target now (a later pass loaded them, its
 * parent had arrived): loaded, so that the next sync does not retry them
 * and verify compares them.  in_target_sql is a generated "SELECT 1 FROM
 * <target> t WHERE t.<key> = r.source_key::<type>".
 */
void
migrate_catalog_sync_fk_rejects_loaded(const char *plan, Oid target, const char *in_target_sql)
{
	Oid			argtypes[2] = {TEXTOID, OIDOID};
	Datum		args[2] = {CStringGetTextDatum(plan), ObjectIdGetDatum(target)};

	(void) migrate_catalog_exec(psprintf("UPDATE migrate.reject r SET loaded = true FROM migrate.run ru"
										 " WHERE ru.run_id = r.run_id AND ru.plan = $1 AND r.target = $2"
										 "   AND r.reason = '23503' AND NOT r.loaded"
										 "   AND r.source_key IS NOT NULL AND r.source_key <> '***'"
										 "   AND EXISTS (%s)", in_target_sql),
								2, argtypes, args, NULL, SPI_OK_UPDATE, "marking loaded rejects");
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
 * The final sync of run_id's cutover applied these tables' changes in the
 * cutover's transaction (cutover.c, sync.c migrate_sync_local_apply): per
 * table the position it reached (the last change row; NULL: it stays),
 * the lag it saw (NULL: none) and what it applied; a pass each, as of
 * run_id.  One statement for every table.
 */
void
migrate_catalog_cutover_synced(int64 run_id, const char *plan, int n, const Oid *targets,
							   char **positions, char **lags, const MigrateSyncApplied *applied)
{
	Oid			argtypes[9] = {INT8OID, TEXTOID, OIDARRAYOID, TEXTARRAYOID, TEXTARRAYOID, INT8ARRAYOID,
	INT8ARRAYOID, INT8ARRAYOID, INT8ARRAYOID};
	Datum		args[9];
	Datum	   *cols[7];
	bool	   *nulls[2];
	int			dims[1] = {n};
	int			lbs[1] = {1};

	if (n == 0)
		return;
	for (int c = 0; c < 7; c++)
		cols[c] = palloc(sizeof(Datum) * n);
	nulls[0] = palloc(sizeof(bool) * n);
	nulls[1] = palloc(sizeof(bool) * n);
	for (int i = 0; i < n; i++)
	{
		cols[0][i] = ObjectIdGetDatum(targets[i]);
		nulls[0][i] = positions[i] == NULL;
		cols[1][i] = positions[i] ? CStringGetTextDatum(positions[i]) : (Datum) 0;
		nulls[1][i] = lags[i] == NULL;
		cols[2][i] = lags[i] ? CStringGetTextDatum(lags[i]) : (Datum) 0;
		cols[3][i] = Int64GetDatum(applied[i].inserted);
		cols[4][i] = Int64GetDatum(applied[i].updated);
		cols[5][i] = Int64GetDatum(applied[i].deleted);
		cols[6][i] = Int64GetDatum(applied[i].rejected);
	}
	args[0] = Int64GetDatum(run_id);
	args[1] = CStringGetTextDatum(plan);
	args[2] = PointerGetDatum(construct_array(cols[0], n, OIDOID, sizeof(Oid), true, TYPALIGN_INT));
	args[3] = PointerGetDatum(construct_md_array(cols[1], nulls[0], 1, dims, lbs, TEXTOID, -1, false, TYPALIGN_INT));
	args[4] = PointerGetDatum(construct_md_array(cols[2], nulls[1], 1, dims, lbs, TEXTOID, -1, false, TYPALIGN_INT));
	for (int c = 3; c < 7; c++)
		args[c + 2] = PointerGetDatum(construct_array(cols[c], n, INT8OID, sizeof(int64), FLOAT8PASSBYVAL,
													  TYPALIGN_DOUBLE));
	if (migrate_catalog_exec("UPDATE migrate.sync_state s SET position = coalesce(u.pos, s.position),"
							 "   synced_to = coalesce(u.pos, s.synced_to), passes = s.passes + 1,"
							 "   last_sync_at = pg_catalog.now(), last_sync_run = $1, lag = u.lag::pg_catalog.interval,"
							 "   last_error = NULL, applied_inserted = s.applied_inserted + u.i,"
							 "   applied_updated = s.applied_updated + u.up, applied_deleted = s.applied_deleted + u.d,"
							 "   applied_rejected = s.applied_rejected + u.r"
							 "  FROM ROWS FROM (pg_catalog.unnest($3), pg_catalog.unnest($4), pg_catalog.unnest($5),"
							 "    pg_catalog.unnest($6), pg_catalog.unnest($7), pg_catalog.unnest($8),"
							 "    pg_catalog.unnest($9)) u(target, pos, lag, i, up, d, r)"
							 " WHERE s.plan = $2 AND s.target = u.target",
							 9, argtypes, args, NULL, SPI_OK_UPDATE, "updating migrate.sync_state") != (uint64) n)
		elog(ERROR, "a table of plan \"%s\" has no sync state", plan);
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

/* ---------------------------------------------------------------------
 * Rollback: migrate.undo and migrate.rollback (src/undo.c, src/rollback.c)
 * --------------------------------------------------------------------- */

/*
 * The undo table of target in run_id (migrate.undo_<run>_<oid>, sql/run.sql
 * migrate._undo_create), created if missing, as the extension's owner:
 * only that owner reads it; undo.c writes it with heap_multi_insert().
 * Returns its oid.
 */
Oid
migrate_catalog_undo_create(int64 run_id, Oid target)
{
	Oid			argtypes[2] = {INT8OID, OIDOID};
	Datum		args[2] = {Int64GetDatum(run_id), ObjectIdGetDatum(target)};
	char	   *name = psprintf("undo_" INT64_FORMAT "_%u", run_id, target);
	Oid			nsp = get_namespace_oid("migrate", false);
	Oid			relid = get_relname_relid(name, nsp);

	if (OidIsValid(relid))
		return relid;
	(void) migrate_catalog_exec("SELECT migrate._undo_create($1, $2::pg_catalog.regclass)",
								2, argtypes, args, NULL, SPI_OK_SELECT, "creating the undo table");
	relid = get_relname_relid(name, nsp);
	if (!OidIsValid(relid))
		elog(ERROR, "undo table migrate.%s was not created", name);
	return relid;
}

/*
 * A temporary table into (ON COMMIT DROP) with target's undo rows of run_id
 * left, one per key: the row before the run's first write of it (pre; NULL:
 * absent), the xmin its last write left (post; NULL: deleted), and room
 * for whether the key's row is absent now and why it conflicts.  The current role (the plan's owner, who
 * replays them) may read it and set the reason.
 */
void
migrate_catalog_rollback_gather(int64 run_id, Oid target, const char *into)
{
	Oid			argtypes[2] = {INT8OID, OIDOID};
	Datum		args[2] = {Int64GetDatum(run_id), ObjectIdGetDatum(target)};
	char	   *grantee = GetUserNameFromId(GetUserId(), false);

	/* an earlier call of the transaction (migrate_rollback_conflicts) made one */
	if (OidIsValid(RangeVarGetRelid(makeRangeVarFromNameList(stringToQualifiedNameList(into)), NoLock, true)))
		(void) migrate_catalog_exec(psprintf("DROP TABLE %s", into),
									0, NULL, NULL, NULL, SPI_OK_UTILITY, "dropping the rollback table");
	(void) migrate_catalog_exec(psprintf("CREATE TEMPORARY TABLE %s (key pg_catalog.text[] PRIMARY KEY,"
										 " pre pg_catalog.text, post pg_catalog.xid, absent boolean, conflict pg_catalog.text)"
										 " ON COMMIT DROP", into),
								0, NULL, NULL, NULL, SPI_OK_UTILITY, "creating the rollback table");
	(void) migrate_catalog_exec(psprintf("INSERT INTO %s (key, pre, post)"
										 " SELECT DISTINCT ON (x.key) x.key, x.pre, x.post_xmin FROM"
										 "  (SELECT u.key, u.pass, u.txn, u.ord, u.post_xmin,"
										 "          pg_catalog.first_value(u.pre)"
										 "            OVER (PARTITION BY u.key ORDER BY u.pass, u.txn, u.ord) AS pre"
										 "     FROM migrate._undo_log($1, $2::pg_catalog.regclass) u) x"
										 " ORDER BY x.key, x.pass DESC, x.txn DESC, x.ord DESC", into),
								2, argtypes, args, NULL, SPI_OK_INSERT, "reading migrate.undo");
	(void) migrate_catalog_exec(psprintf("ANALYZE %s", into),
								0, NULL, NULL, NULL, SPI_OK_UTILITY, "analyzing the rollback table");
	(void) migrate_catalog_exec(psprintf("GRANT SELECT, UPDATE ON %s TO %s", into, quote_identifier(grantee)),
								0, NULL, NULL, NULL, SPI_OK_UTILITY, "granting the rollback table");
}

/*
 * A rollback of target of run_id is done: the undo rows it replayed go
 * (those of keys in from without a conflict; all when forced; from NULL:
 * the table had none), and migrate.rollback records it (counts added to a
 * previous call's, the conflicts replaced).
 */
void
migrate_catalog_rollback_record(int64 run_id, Oid target, const char *from, bool force,
								int64 deleted, int64 restored, int64 reinserted, int64 conflicts)
{
	Oid			argtypes[8] = {INT8OID, OIDOID, BOOLOID, INT8OID, INT8OID, INT8OID, INT8OID, TEXTOID};
	Datum		args[8];

	args[0] = Int64GetDatum(run_id);
	args[1] = ObjectIdGetDatum(target);
	args[2] = BoolGetDatum(force);
	args[3] = Int64GetDatum(deleted);
	args[4] = Int64GetDatum(restored);
	args[5] = Int64GetDatum(reinserted);
	args[6] = Int64GetDatum(conflicts);
	args[7] = CStringGetTextDatum(GetUserNameFromId(GetUserId(), false));
	/* no conflict left: every undo row was replayed, the log goes whole */
	if (from)
		(void) migrate_catalog_exec(psprintf("SELECT migrate._undo_forget($1, $2::pg_catalog.regclass, %s,"
											 " $3 OR $4 = 0)",
											 quote_literal_cstr(from)),
									4, (Oid[]) {INT8OID, OIDOID, BOOLOID, INT8OID},
									(Datum[]) {args[0], args[1], args[2], args[6]},
									NULL, SPI_OK_SELECT, "deleting from the undo log");
	(void) migrate_catalog_exec("INSERT INTO migrate.rollback AS b (run_id, target, state, rows_deleted,"
								"   rows_restored, rows_reinserted, conflicts, forced, rolled_back_by)"
								" VALUES ($1, $2, CASE WHEN $7 > 0 THEN 'conflicts' ELSE 'done' END,"
								"   $4, $5, $6, $7, $3, $8)"
								" ON CONFLICT (run_id, target) DO UPDATE SET state = EXCLUDED.state,"
								"   rows_deleted = b.rows_deleted + $4, rows_restored = b.rows_restored + $5,"
								"   rows_reinserted = b.rows_reinserted + $6, conflicts = $7,"
								"   forced = b.forced OR $3, rolled_back_by = $8, rolled_back_at = pg_catalog.now()",
								8, argtypes, args, NULL, SPI_OK_INSERT, "writing migrate.rollback");
}

PG_FUNCTION_INFO_V1(migrate_catalog_undo_drop_sql);

/*
 * migrate._catalog_undo_drop(plan text): the undo log of every run of the
 * plan goes (migrate_drop_plan()).  The caller must be a member of the
 * plan's owner (42501; a plan it cannot see: 42704).
 */
Datum
migrate_catalog_undo_drop_sql(PG_FUNCTION_ARGS)
{
	char	   *plan = text_to_cstring(PG_GETARG_TEXT_PP(0));
	Oid			argtypes[1] = {TEXTOID};
	Datum		args[1] = {PointerGetDatum(PG_GETARG_TEXT_PP(0))};

	migrate_catalog_spi_connect();
	migrate_check_member(migrate_plan_owner(plan, false), plan);
	(void) migrate_catalog_exec("DELETE FROM migrate.undo WHERE run_id IN"
								" (SELECT run_id FROM migrate.run WHERE plan = $1)",
								1, argtypes, args, NULL, SPI_OK_DELETE, "deleting from migrate.undo");
	(void) migrate_catalog_exec("SELECT migrate._undo_drop(run_id) FROM migrate.run WHERE plan = $1",
								1, argtypes, args, NULL, SPI_OK_SELECT, "dropping the undo tables");
	migrate_catalog_spi_finish();
	PG_RETURN_VOID();
}
