/*-------------------------------------------------------------------------
 *
 * slot.h
 *	  capture => 'slot': a logical replication slot (test_decoding) on the
 *	  PostgreSQL server behind a postgres_fdw source, read over libpq
 *	  through remote.c (src/slot.c).
 *
 * A plan has one slot per source server (its name: migrate_slot_name());
 * each table keeps its own position, the commit LSN of the last source
 * transaction whose changes it applied (migrate.sync_state.position).
 * Changes are only peeked, never consumed: the slot's confirmed position
 * moves (migrate_slot_advance) after the local commit that applied them,
 * to the least position of the plan's slot tables.
 *
 *-------------------------------------------------------------------------
 */
#ifndef MIGRATE_SLOT_H
#define MIGRATE_SLOT_H

/* the key's text of one change (old and new key of a key change are two
 * calls); key_text NULL: the table was truncated (the engine re-diffs it).
 * key_text lives only during the call; the sink runs in the caller's
 * memory context and may throw (the read is then abandoned). */
typedef void (*MigrateSlotKeySink) (void *arg, const char *key_text);

/* the slot's name for a plan (lower case, [a-z0-9_], at most 63 bytes) */
extern char *migrate_slot_name(const char *plan);

/*
 * Create the slot on the server of foreign table ftrelid unless it exists;
 * returns the LSN (text) from which it decodes.  Errors with a hint:
 * 55000 when the source's wal_level is not logical, 42501 when the role
 * of the user mapping is neither superuser nor REPLICATION, 42710 when a
 * slot of that name belongs to another database or plugin.  Creating a
 * slot waits until every transaction of the source cluster that holds a
 * transaction id has ended: on a loopback server, call it before the
 * local transaction writes anything (or it waits for itself until
 * cancelled).
 */
extern char *migrate_slot_create(Oid ftrelid, const char *slot_name);
/* true if it exists in the server's database (errors as create's 42710) */
extern bool migrate_slot_exists(Oid ftrelid, const char *slot_name);
/* drop it (no error when it does not exist) */
extern void migrate_slot_drop(Oid ftrelid, const char *slot_name);
/* the fence of a pass: the source's WAL insert position (never inside a
 * record, so a position or the slot may be set to it), returned once the
 * source has flushed its WAL that far (so a read sees every transaction
 * that committed before it) */
extern char *migrate_slot_current_lsn(Oid ftrelid);

/*
 * Peek the changes of ftrelid's remote table in transactions that
 * committed after LSN "after" (NULL: all the slot has) and at or before
 * "upto"; whole transactions, stopping after the one in which max_changes
 * changes (rows of test_decoding, BEGIN and COMMIT included, of any table;
 * <= 0: no limit) were reached.  Calls sink once per key of each
 * INSERT, UPDATE (old and new key when the key changed) and DELETE of that
 * table, and with NULL for a TRUNCATE.  key_column is the local foreign
 * table's column (its remote name is looked up).  Returns the commit LSN
 * of the last transaction read (whether or not it touched the table), or
 * NULL when there was none; *changes (if not NULL) is set to the number of
 * keys given to sink.  A slot that no longer exists raises 55000 with a
 * hint (a diff pass, then arm again); so does an invalidated one.  The
 * source table's replica identity must hold the key column (55000 with a
 * hint otherwise, checked before reading).  Memory: rows are streamed
 * (single-row mode), a transaction's keys wait in a tuplestore (work_mem,
 * then disk) until its COMMIT says whether it counts.
 */
extern char *migrate_slot_read(Oid ftrelid, const char *slot_name, const char *key_column,
							   const char *after, const char *upto, int64 max_changes,
							   MigrateSlotKeySink sink, void *arg, int64 *changes);

/* after the local commit: confirm the slot up to lsn (never backwards; a
 * lost slot raises 55000 as migrate_slot_read) */
extern void migrate_slot_advance(Oid ftrelid, const char *slot_name, const char *lsn);

#endif							/* MIGRATE_SLOT_H */
