/*-------------------------------------------------------------------------
 *
 * slot.c
 *	  capture => 'slot' (slot.h): the plan's logical replication slot
 *	  (output plugin test_decoding) on the PostgreSQL server behind a
 *	  postgres_fdw source, created, peeked, advanced and dropped over the
 *	  connection remote.c keeps for the server and the current user's
 *	  mapping; and the SQL helpers migrate._slot_pending_keys() and
 *	  migrate._slot_drop() (sql/sync.sql).
 *
 * - The slot functions write no table: they run in remote.c's read-only
 *   session, each statement its own remote transaction.  Creating a slot
 *   waits until every transaction of the source *cluster* that holds a
 *   transaction id has ended (the snapshot builder): on a loopback server
 *   the local transaction that creates it must not hold one yet.
 *
 * - A read only peeks (pg_logical_slot_peek_changes); the slot moves
 *   (migrate_slot_advance) after the local commit.  test_decoding prints a
 *   transaction's changes between "BEGIN <xid>" and "COMMIT <xid>", in
 *   commit order; the LSN of the COMMIT row (the end of the commit record)
 *   is the transaction's position.  A transaction counts when that LSN is
 *   past the table's position: never a change row's LSN, which for a
 *   transaction that began before the last applied one and committed after
 *   it is older than that position.  So the keys of a transaction wait in
 *   a tuplestore (memory bounded by work_mem, the rest on disk) until its
 *   COMMIT says whether they count.  The slot may re-deliver what the
 *   table applied already (its confirmed position is the least of the
 *   plan's tables, and after a source crash it may go back): those
 *   transactions come first and are skipped.
 *
 * - The source filters the rows of other tables out (their BEGIN and
 *   COMMIT rows stay), and numbers the rows it decoded, so that a read
 *   whose row limit was used up by re-delivered transactions is repeated
 *   with a limit past them.  Rows are streamed (single-row mode): nothing
 *   of them is kept.
 *
 * - Lines are parsed as test_decoding (PostgreSQL 10 and later) prints
 *   them: "table <schema>.<table>: INSERT|UPDATE|DELETE: <col>[<type>]:<value> ...",
 *   names after quote_identifier(), values quoted with '' doubled unless
 *   numeric, boolean (true/false) or bit (B'...'), "null",
 *   "unchanged-toast-datum"; an UPDATE of the replica identity prints
 *   "old-key: ... new-tuple: ...", a DELETE only the identity's columns
 *   ("(no-tuple-data)" without one); "table a.b, c.d: TRUNCATE: <flags>".
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/tupdesc.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "commands/defrem.h"
#include "common/md5.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "fmgr.h"
#include "foreign/foreign.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/latch.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/pg_lsn.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"

#include "migrate.h"
#include "remote.h"
#include "slot.h"

PG_FUNCTION_INFO_V1(migrate_sql_slot_pending_keys);
PG_FUNCTION_INFO_V1(migrate_sql_slot_drop);
PG_FUNCTION_INFO_V1(migrate_slot_test);

#define SLOT_PLUGIN "test_decoding"
#define SLOT_OPTIONS "'include-xids', '1', 'skip-empty-xacts', '1'"
/* how long the fence waits for the source to flush its WAL */
#define SLOT_FLUSH_WAIT_MS 30000

static const char *const hint_connection =
"Check that the source server is reachable and that its role may use replication slots.";
static const char *const hint_wal_level =
"Set wal_level = logical on the source and restart it.";
static const char *const hint_replication =
"Give the source role of the user mapping the REPLICATION attribute (ALTER ROLE ... REPLICATION), or map to a role that has it.";
static const char *const hint_lost =
"The slot was dropped or invalidated: run one pass with capture => 'diff' (migrate_table(..., capture => 'diff') and migrate_sync()), then capture => 'slot' and migrate_run(plan, mode => 'incremental') to arm it again.";
static const char *const hint_identity =
"Give the source table a primary key, or set REPLICA IDENTITY USING INDEX (an index over the key) or FULL on it, so that deletes and key changes carry the key.";

/* the source table of a foreign table, as the slot names it */
typedef struct SlotSource
{
	Oid			ftrelid;
	const char *ftname;			/* the local foreign table, for messages */
	const char *server;			/* its server's name */
	const char *schema;			/* remote names */
	const char *table;
	const char *column;			/* remote name of the key column (or NULL) */
} SlotSource;

/* the slot as the source's pg_replication_slots shows it */
typedef struct SlotInfo
{
	char	   *wal_level;
	bool		may_replicate;	/* superuser or REPLICATION */
	bool		exists;			/* a slot of that name, in any database */
	bool		here;			/* ... in the database of the connection */
	char	   *database;
	char	   *plugin;
	char	   *wal_status;		/* NULL before PostgreSQL 13 */
	char	   *confirmed;		/* confirmed_flush_lsn */
} SlotInfo;

/* one read (migrate_slot_read) */
typedef struct SlotRead
{
	SlotSource *src;
	const char *slot;
	XLogRecPtr	after;			/* InvalidXLogRecPtr: from the start */
	XLogRecPtr	upto;			/* InvalidXLogRecPtr: no fence */
	MigrateSlotKeySink sink;
	void	   *arg;
	MemoryContext caller_cxt;
	/* the keys of the transaction being read, until its COMMIT */
	Tuplestorestate *pending;
	TupleDesc	desc;
	TupleTableSlot *tts;
	bool		in_xact;
	bool		past_fence;		/* a COMMIT after upto was seen: the rest is ignored */
	bool		done;			/* max_rows reached: the rest is ignored */
	int64		max_rows;		/* of the transactions that count; 0: no limit */
	int64		xact_begin;		/* row number of the current transaction's BEGIN */
	int64		first_begin;	/* ... of the first transaction that counted, 0: none yet */
	XLogRecPtr	last;			/* commit LSN of the last transaction that counted */
	int64		keys;			/* keys given to sink */
	int64		rows;			/* rows the source decoded (row_number of the last row) */
	StringInfoData value;		/* scratch */
} SlotRead;

static void source_of(Oid ftrelid, const char *key_column, SlotSource *src);
static char **remote_row(MigrateRemote *r, const char *sql, const char *what, int nfields);
static void slot_info(MigrateRemote *r, const char *slot, SlotInfo *info);
static void check_may_replicate(MigrateRemote *r, SlotSource *src, const char *slot, SlotInfo *info);
static void check_slot_usable(MigrateRemote *r, SlotSource *src, const char *slot, SlotInfo *info);
static void report_lost(MigrateRemote *r, SlotSource *src, const char *slot, const char *detail) pg_attribute_noreturn();
static char *check_source_table(MigrateRemote *r, SlotSource *src, const char *slot);
static bool read_peek(MigrateRemote *r, SlotRead *sr, const char *prefix, int64 limit);
static void read_line(SlotRead *sr, const char *lsn, const char *line);
static void read_change(SlotRead *sr, const char *line);
static const char *parse_tuple(SlotRead *sr, const char *p, const char *line, bool old_key,
							   char **key, bool *found, bool *no_data);
static bool read_ident(const char **pp, StringInfo out);
static bool parse_value(const char **pp, StringInfo out, bool *isnull, bool *toasted);
static void bad_line(SlotRead *sr, const char *line) pg_attribute_noreturn();
static void pending_add(SlotRead *sr, const char *key);
static void pending_flush(SlotRead *sr);
static XLogRecPtr lsn_arg(const char *lsn);
static char *lsn_text(XLogRecPtr lsn);

/* "migrate_" and 16 hex digits of the plan name's md5: valid, unique enough, stable */
char *
migrate_slot_name(const char *plan)
{
	char		hex[33];		/* 32 hex digits */
	const char *errstr = NULL;

	if (!pg_md5_hash(plan, strlen(plan), hex, &errstr))
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("could not compute the replication slot name of migration plan \"%s\": %s",
						plan, errstr ? errstr : "md5 failed")));
	return psprintf("migrate_%.16s", hex);
}

/* Create the slot unless it exists; the LSN from which it decodes. */
char *
migrate_slot_create(Oid ftrelid, const char *slot_name)
{
	SlotSource	src;
	SlotInfo	info;
	MigrateRemote *r;
	char	  **row;
	char	   *lsn;

	source_of(ftrelid, NULL, &src);
	r = migrate_remote_get(ftrelid, hint_connection, MIGRATE_REMOTE_PASS);
	slot_info(r, slot_name, &info);
	if (info.exists)
	{
		check_slot_usable(r, &src, slot_name, &info);
		migrate_remote_release(r);
		return info.confirmed;
	}
	if (strcmp(info.wal_level, "logical") != 0)
	{
		migrate_remote_release(r);
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("cannot create replication slot \"%s\" on server \"%s\": its wal_level is \"%s\"",
						slot_name, src.server, info.wal_level),
				 errdetail("capture => 'slot' decodes the source's WAL, which needs wal_level = logical."),
				 errhint("%s", hint_wal_level)));
	}
	check_may_replicate(r, &src, slot_name, &info);
	row = remote_row(r, psprintf("SELECT s.lsn::pg_catalog.text FROM pg_catalog.pg_create_logical_replication_slot(%s, %s) s",
								 quote_literal_cstr(slot_name), quote_literal_cstr(SLOT_PLUGIN)),
					 "create the replication slot", 1);
	lsn = row ? row[0] : NULL;
	migrate_remote_release(r);
	if (lsn == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_ERROR),
				 errmsg("replication slot \"%s\" on server \"%s\" was created without a position",
						slot_name, src.server)));
	return lsn;
}

/* Whether the slot exists (in the database of ftrelid's server). */
bool
migrate_slot_exists(Oid ftrelid, const char *slot_name)
{
	SlotSource	src;
	SlotInfo	info;
	MigrateRemote *r;

	source_of(ftrelid, NULL, &src);
	r = migrate_remote_get(ftrelid, hint_connection, MIGRATE_REMOTE_PASS);
	slot_info(r, slot_name, &info);
	if (info.exists)
		check_slot_usable(r, &src, slot_name, &info);
	migrate_remote_release(r);
	return info.exists;
}

/* Drop the slot if it exists in the server's database. */
void
migrate_slot_drop(Oid ftrelid, const char *slot_name)
{
	SlotSource	src;
	SlotInfo	info;
	MigrateRemote *r;

	source_of(ftrelid, NULL, &src);
	r = migrate_remote_get(ftrelid, hint_connection, MIGRATE_REMOTE_PASS);
	slot_info(r, slot_name, &info);
	if (info.here)
	{
		check_may_replicate(r, &src, slot_name, &info);
		(void) remote_row(r, psprintf("SELECT pg_catalog.pg_drop_replication_slot(%s)",
									  quote_literal_cstr(slot_name)),
						  "drop the replication slot", 1);
	}
	migrate_remote_release(r);
}

/*
 * The fence of a pass: the source's WAL insert position, once its WAL is
 * flushed that far.  An insert position is never inside a record, so a
 * position (and the slot) may be set to it without cutting a commit record
 * in two (a transaction whose commit record began before the slot's
 * position would be skipped by the slot); and a read peeks only what is
 * flushed, so waiting for the flush makes every transaction committed
 * before the fence readable (asynchronous commits included: the WAL
 * writer flushes them within a few wal_writer_delay).
 */
char *
migrate_slot_current_lsn(Oid ftrelid)
{
	MigrateRemote *r;
	char	  **row;
	char	   *lsn;
	char	   *sql;
	TimestampTz give_up = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), SLOT_FLUSH_WAIT_MS);

	r = migrate_remote_get(ftrelid, hint_connection, MIGRATE_REMOTE_PASS);
	row = remote_row(r, "SELECT pg_catalog.pg_current_wal_insert_lsn()::pg_catalog.text",
					 "read the position of the source", 1);
	lsn = row && row[0] ? row[0] : NULL;
	if (lsn == NULL)
		elog(ERROR, "the source returned no WAL position");
	sql = psprintf("SELECT (pg_catalog.pg_current_wal_flush_lsn() OPERATOR(pg_catalog.>=) %s::pg_catalog.pg_lsn)::pg_catalog.text",
				   quote_literal_cstr(lsn));
	for (;;)
	{
		row = remote_row(r, sql, "read the position of the source", 1);
		if (row && row[0] && strcmp(row[0], "true") == 0)
			break;
		if (GetCurrentTimestamp() >= give_up)
		{
			migrate_remote_release(r);
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("the source of foreign table %s did not flush its WAL to %s", get_rel_name(ftrelid), lsn),
					 errhint("Check the source's WAL writer and disk.")));
		}
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 10, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
	migrate_remote_release(r);
	return lsn;
}

/* After the local commit: confirm the slot up to lsn, never backwards. */
void
migrate_slot_advance(Oid ftrelid, const char *slot_name, const char *lsn)
{
	SlotSource	src;
	SlotInfo	info;
	MigrateRemote *r;
	XLogRecPtr	to;

	if (lsn == NULL)
		return;
	to = lsn_arg(lsn);
	source_of(ftrelid, NULL, &src);
	r = migrate_remote_get(ftrelid, hint_connection, MIGRATE_REMOTE_PASS);
	slot_info(r, slot_name, &info);
	if (!info.exists)
		report_lost(r, &src, slot_name, NULL);
	check_slot_usable(r, &src, slot_name, &info);
	check_may_replicate(r, &src, slot_name, &info);
	/* pg_replication_slot_advance() refuses to go back */
	if (info.confirmed == NULL || lsn_arg(info.confirmed) < to)
		(void) remote_row(r, psprintf("SELECT pg_catalog.pg_replication_slot_advance(%s, %s::pg_catalog.pg_lsn)",
									  quote_literal_cstr(slot_name), quote_literal_cstr(lsn_text(to))),
						  "advance the replication slot", 1);
	migrate_remote_release(r);
}

/*
 * Peek the changes of ftrelid's source table in the transactions that
 * committed after "after" and at or before "upto" (slot.h).
 */
char *
migrate_slot_read(Oid ftrelid, const char *slot_name, const char *key_column,
				  const char *after, const char *upto, int64 max_changes,
				  MigrateSlotKeySink sink, void *arg, int64 *changes)
{
	SlotSource	src;
	SlotInfo	info;
	SlotRead	sr;
	MigrateRemote *r;
	MemoryContext cxt;
	MemoryContext old;
	char	   *prefix;
	volatile int64 limit = max_changes > 0 ? max_changes : 0;

	memset(&sr, 0, sizeof(sr));
	sr.after = after ? lsn_arg(after) : InvalidXLogRecPtr;
	sr.upto = upto ? lsn_arg(upto) : InvalidXLogRecPtr;
	source_of(ftrelid, key_column, &src);
	sr.src = &src;
	sr.slot = slot_name;
	sr.sink = sink;
	sr.arg = arg;
	sr.caller_cxt = CurrentMemoryContext;
	sr.max_rows = limit;

	r = migrate_remote_get(ftrelid, hint_connection, MIGRATE_REMOTE_PASS);
	slot_info(r, slot_name, &info);
	if (!info.exists)
		report_lost(r, &src, slot_name, NULL);
	check_slot_usable(r, &src, slot_name, &info);
	check_may_replicate(r, &src, slot_name, &info);
	prefix = check_source_table(r, &src, slot_name);

	cxt = AllocSetContextCreate(CurrentMemoryContext, "migrate slot read", ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(cxt);
	sr.desc = CreateTemplateTupleDesc(1);
	TupleDescInitEntry(sr.desc, (AttrNumber) 1, "key", TEXTOID, -1, 0);
	sr.tts = MakeSingleTupleTableSlot(sr.desc, &TTSOpsMinimalTuple);
	sr.pending = tuplestore_begin_heap(false, false, work_mem);
	initStringInfo(&sr.value);
	MemoryContextSwitchTo(old);

	PG_TRY();
	{
		/*
		 * Re-delivered transactions used up the source's row limit: once
		 * more with a greater one (the same rows come first again; the
		 * limit of the rows that count is kept here).
		 */
		while (!read_peek(r, &sr, prefix, limit) && !sr.past_fence && limit > 0 && sr.rows >= limit)
			limit = Max(limit * 2, sr.rows + max_changes);
	}
	PG_CATCH();
	{
		migrate_remote_discard(r);
		PG_RE_THROW();
	}
	PG_END_TRY();
	migrate_remote_release(r);

	if (changes)
		*changes = sr.keys;
	tuplestore_end(sr.pending);
	ExecDropSingleTupleTableSlot(sr.tts);
	MemoryContextDelete(cxt);
	return sr.last == InvalidXLogRecPtr ? NULL : lsn_text(sr.last);
}

/*
 * One peek of at most limit rows (0: no limit); whether a transaction
 * after sr->after was seen.
 */
static bool
read_peek(MigrateRemote *r, SlotRead *sr, const char *prefix, int64 limit)
{
	StringInfoData sql;
	PGresult   *res;
	MemoryContext row_cxt;
	bool		seen = false;

	initStringInfo(&sql);
	appendStringInfo(&sql,
					 "SELECT s.n, s.lsn, s.data FROM"
					 " (SELECT pg_catalog.row_number() OVER () AS n, c.lsn::pg_catalog.text AS lsn, c.data"
					 "    FROM pg_catalog.pg_logical_slot_peek_changes(%s, %s, %s, " SLOT_OPTIONS ") c) s"
					 " WHERE NOT pg_catalog.starts_with(s.data, 'table ')"
					 "    OR pg_catalog.starts_with(s.data, %s)"
					 "    OR pg_catalog.strpos(s.data, ': TRUNCATE:') > 0",
					 quote_literal_cstr(sr->slot),
					 sr->upto == InvalidXLogRecPtr ? "NULL" :
					 psprintf("%s::pg_catalog.pg_lsn", quote_literal_cstr(lsn_text(sr->upto))),
					 limit > 0 ? psprintf(INT64_FORMAT, Min(limit, (int64) PG_INT32_MAX)) : "NULL",
					 quote_literal_cstr(prefix));
	sr->in_xact = false;
	sr->past_fence = false;
	sr->done = false;
	sr->rows = 0;
	sr->first_begin = 0;
	tuplestore_clear(sr->pending);

	row_cxt = AllocSetContextCreate(CurrentMemoryContext, "migrate slot row", ALLOCSET_DEFAULT_SIZES);
	migrate_remote_send(r, sql.data, "read the replication slot");
	migrate_remote_single_row(r, "read the replication slot");
	while ((res = migrate_remote_result(r, "read the replication slot")) != NULL)
	{
		ExecStatusType status = PQresultStatus(res);

		if (status == PGRES_SINGLE_TUPLE)
		{
			MemoryContext old = MemoryContextSwitchTo(row_cxt);
			XLogRecPtr	before = sr->last;

			sr->rows = strtoi64(PQgetvalue(res, 0, 0), NULL, 10);
			if (!PQgetisnull(res, 0, 2))
				read_line(sr, PQgetvalue(res, 0, 1), PQgetvalue(res, 0, 2));
			seen |= sr->last != before;
			MemoryContextSwitchTo(old);
			MemoryContextReset(row_cxt);
			PQclear(res);
		}
		else if (status == PGRES_TUPLES_OK)
			PQclear(res);
		else
		{
			const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);

			/* dropped or invalidated since slot_info() looked */
			if (state && (strcmp(state, "42704") == 0 || strcmp(state, "55000") == 0))
			{
				const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
				char	   *detail = pstrdup(msg ? msg : "");

				PQclear(res);
				migrate_remote_discard(r);
				report_lost(NULL, sr->src, sr->slot, detail);
			}
			/* another session reads it (a sync or a verify of the plan) */
			if (state && strcmp(state, "55006") == 0)
			{
				PQclear(res);
				migrate_remote_discard(r);
				ereport(ERROR,
						(errcode(ERRCODE_OBJECT_IN_USE),
						 errmsg("replication slot \"%s\" on server \"%s\" is in use by another session",
								sr->slot, sr->src->server),
						 errhint("A sync or a verify of the plan reads it: try again when it is done.")));
			}
			migrate_remote_fail(r, res, "read the replication slot");
		}
	}
	MemoryContextDelete(row_cxt);
	return seen;
}

/* One row of the peek: a transaction's bounds or a change. */
static void
read_line(SlotRead *sr, const char *lsn, const char *line)
{
	if (sr->past_fence || sr->done)
		return;
	if (strncmp(line, "BEGIN", 5) == 0 && (line[5] == ' ' || line[5] == '\0'))
	{
		sr->in_xact = true;
		sr->xact_begin = sr->rows;
		tuplestore_clear(sr->pending);
	}
	else if (strncmp(line, "COMMIT", 6) == 0 && (line[6] == ' ' || line[6] == '\0'))
	{
		XLogRecPtr	commit = lsn_arg(lsn);

		if (sr->upto != InvalidXLogRecPtr && commit > sr->upto)
			sr->past_fence = true;	/* the next pass takes it */
		else if (sr->after == InvalidXLogRecPtr || commit > sr->after)
		{
			pending_flush(sr);
			sr->last = commit;
			/* as upto_nchanges: after the transaction that reached the limit */
			if (sr->first_begin == 0)
				sr->first_begin = sr->xact_begin;
			if (sr->max_rows > 0 && sr->rows - sr->first_begin + 1 >= sr->max_rows)
				sr->done = true;
		}
		sr->in_xact = false;
		tuplestore_clear(sr->pending);
	}
	else if (strncmp(line, "table ", 6) == 0 && sr->in_xact)
		read_change(sr, line);
	/* anything else (a logical message): not a change of a table */
}

/* A "table ..." row: the keys it gives, for the transaction's buffer. */
static void
read_change(SlotRead *sr, const char *line)
{
	const char *p = line + 6;
	bool		ours = false;
	StringInfoData schema;
	StringInfoData rel;
	char	   *key_old = NULL;
	char	   *key_new = NULL;
	bool		found_old = false;
	bool		found_new = false;
	bool		no_data = false;
	bool		is_delete = false;

	initStringInfo(&schema);
	initStringInfo(&rel);
	/* one relation, or a list of them (TRUNCATE) */
	for (;;)
	{
		resetStringInfo(&schema);
		resetStringInfo(&rel);
		if (!read_ident(&p, &schema) || *p++ != '.' || !read_ident(&p, &rel))
			bad_line(sr, line);
		ours |= strcmp(schema.data, sr->src->schema) == 0 && strcmp(rel.data, sr->src->table) == 0;
		if (p[0] != ',' || p[1] != ' ')
			break;
		p += 2;
	}
	if (p[0] != ':' || p[1] != ' ')
		bad_line(sr, line);
	p += 2;
	if (!ours)
		return;
	if (strncmp(p, "TRUNCATE:", 9) == 0)
	{
		pending_add(sr, NULL);
		return;
	}
	if (strncmp(p, "INSERT:", 7) == 0)
		parse_tuple(sr, p + 7, line, false, &key_new, &found_new, &no_data);
	else if (strncmp(p, "UPDATE:", 7) == 0)
	{
		p += 7;
		if (strncmp(p, " old-key:", 9) == 0)
			p = parse_tuple(sr, p + 9, line, true, &key_old, &found_old, &no_data);
		parse_tuple(sr, p, line, false, &key_new, &found_new, &no_data);
	}
	else if (strncmp(p, "DELETE:", 7) == 0)
	{
		is_delete = true;
		parse_tuple(sr, p + 7, line, false, &key_old, &found_old, &no_data);
		if (!found_old)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("replication slot \"%s\" on server \"%s\" shows a delete from %s.%s without its key column %s",
							sr->slot, sr->src->server, sr->src->schema, sr->src->table, sr->src->column),
					 errdetail("The source logs only the replica identity of a deleted row%s.",
							   no_data ? ", and the table has none" : ", which does not hold that column"),
					 errhint("%s", hint_identity)));
	}
	else
		bad_line(sr, line);
	/* an insert or update always shows every column of the new row */
	if (!is_delete && !found_new)
		bad_line(sr, line);

	/* a null key addresses no row */
	if (key_new)
		pending_add(sr, key_new);
	if (key_old && (key_new == NULL || strcmp(key_old, key_new) != 0))
		pending_add(sr, key_old);
}

/*
 * The columns of one tuple from p (each " name[type]:value"), until the
 * end of the line or, for an old key, " new-tuple:"; *found: the key
 * column is there, *key: its value (NULL if absent or null); *no_data:
 * "(no-tuple-data)".  Returns where it stopped.
 */
static const char *
parse_tuple(SlotRead *sr, const char *p, const char *line, bool old_key,
			char **key, bool *found, bool *no_data)
{
	StringInfoData name;

	initStringInfo(&name);
	while (*p == ' ')
	{
		bool		isnull;
		bool		toasted;
		bool		is_key;
		const char *type_end;

		p++;
		if (old_key && strncmp(p, "new-tuple:", 10) == 0)
			return p + 10;
		if (strncmp(p, "(no-tuple-data)", 15) == 0)
		{
			*no_data = true;
			p += 15;
			continue;
		}
		resetStringInfo(&name);
		if (!read_ident(&p, &name) || *p != '[' || (type_end = strstr(p, "]:")) == NULL)
			bad_line(sr, line);
		p = type_end + 2;
		is_key = strcmp(name.data, sr->src->column) == 0;
		resetStringInfo(&sr->value);
		if (!parse_value(&p, is_key ? &sr->value : NULL, &isnull, &toasted))
			bad_line(sr, line);
		if (!is_key)
			continue;
		*found = true;
		if (isnull)
			continue;
		if (toasted)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("replication slot \"%s\" on server \"%s\" does not show the value of key column %s of %s.%s",
							sr->slot, sr->src->server, sr->src->column, sr->src->schema, sr->src->table),
					 errdetail("The value is stored out of line (TOAST) and did not change."),
					 errhint("Use capture => 'trigger' or 'diff' for a table whose key values are this long.")));
		*key = pstrdup(sr->value.data);
	}
	if (*p != '\0')
		bad_line(sr, line);
	return p;
}

/* An identifier as quote_identifier() prints it: "..." with "" doubled, or [a-z0-9_]+. */
static bool
read_ident(const char **pp, StringInfo out)
{
	const char *p = *pp;

	if (*p == '"')
	{
		for (p++;; p++)
		{
			if (*p == '\0')
				return false;
			if (*p == '"')
			{
				if (p[1] != '"')
					break;
				p++;
			}
			appendStringInfoChar(out, *p);
		}
		*pp = p + 1;
		return true;
	}
	while ((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_')
		appendStringInfoChar(out, *p++);
	*pp = p;
	return out->len > 0;
}

/*
 * A value as test_decoding prints it; its text into out (if not NULL).
 * Stops before the next " " or at the end.
 */
static bool
parse_value(const char **pp, StringInfo out, bool *isnull, bool *toasted)
{
	const char *p = *pp;

	*isnull = false;
	*toasted = false;
	if (*p == '\'' || (p[0] == 'B' && p[1] == '\''))
	{
		/* quoted, '' doubled; bit strings B'0101' have no quote inside */
		for (p += *p == 'B' ? 2 : 1;; p++)
		{
			if (*p == '\0')
				return false;
			if (*p == '\'')
			{
				if (p[1] != '\'')
					break;
				p++;
			}
			if (out)
				appendStringInfoChar(out, *p);
		}
		p++;
	}
	else
	{
		const char *end = strchr(p, ' ');
		int			len = end ? end - p : (int) strlen(p);

		if (len == 4 && strncmp(p, "null", 4) == 0)
			*isnull = true;
		else if (len == 21 && strncmp(p, "unchanged-toast-datum", 21) == 0)
			*toasted = true;
		else if (len == 0)
			return false;
		else if (out)
			appendBinaryStringInfo(out, p, len);
		p += len;
	}
	*pp = p;
	return *p == ' ' || *p == '\0';
}

static void
bad_line(SlotRead *sr, const char *line)
{
	ereport(ERROR,
			(errcode(ERRCODE_FDW_INVALID_DATA_TYPE),
			 errmsg("replication slot \"%s\" on server \"%s\" gave a line migrate cannot read",
					sr->slot, sr->src->server),
			 errdetail_internal("%.200s", line),
			 errhint("The slot must use the output plugin test_decoding.")));
}

/* The transaction's buffer of keys (NULL: a truncate). */
static void
pending_add(SlotRead *sr, const char *key)
{
	Datum		value = key ? CStringGetTextDatum(key) : (Datum) 0;
	bool		isnull = key == NULL;

	tuplestore_putvalues(sr->pending, sr->desc, &value, &isnull);
}

/* The transaction counts: its keys to the sink, in the caller's context. */
static void
pending_flush(SlotRead *sr)
{
	tuplestore_rescan(sr->pending);
	while (tuplestore_gettupleslot(sr->pending, true, false, sr->tts))
	{
		bool		isnull;
		Datum		value = slot_getattr(sr->tts, 1, &isnull);
		char	   *key = isnull ? NULL : TextDatumGetCString(value);
		MemoryContext old = MemoryContextSwitchTo(sr->caller_cxt);

		sr->sink(sr->arg, key);
		MemoryContextSwitchTo(old);
		sr->keys++;
		if (key)
			pfree(key);
	}
	tuplestore_clear(sr->pending);
}

/* The remote names of foreign table ftrelid (and of its column key_column). */
static void
source_of(Oid ftrelid, const char *key_column, SlotSource *src)
{
	ForeignTable *ft;
	ListCell   *lc;

	memset(src, 0, sizeof(*src));
	src->ftrelid = ftrelid;
	src->ftname = get_rel_name(ftrelid);
	if (src->ftname == NULL || get_rel_relkind(ftrelid) != RELKIND_FOREIGN_TABLE)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("relation %u is not a foreign table", ftrelid),
				 errhint("capture => 'slot' reads the source of a postgres_fdw foreign table.")));
	ft = GetForeignTable(ftrelid);
	src->server = GetForeignServer(ft->serverid)->servername;
	src->schema = get_namespace_name(get_rel_namespace(ftrelid));
	src->table = src->ftname;
	foreach(lc, ft->options)
	{
		DefElem    *d = lfirst(lc);

		if (strcmp(d->defname, "schema_name") == 0)
			src->schema = defGetString(d);
		else if (strcmp(d->defname, "table_name") == 0)
			src->table = defGetString(d);
	}
	if (key_column == NULL)
		return;
	{
		AttrNumber	attnum = get_attnum(ftrelid, key_column);

		if (attnum == InvalidAttrNumber)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_COLUMN),
					 errmsg("column \"%s\" of foreign table %s does not exist", key_column, src->ftname),
					 errhint("capture => 'slot' needs the key column of the table's mapping.")));
		src->column = key_column;
		foreach(lc, GetForeignColumnOptions(ftrelid, attnum))
		{
			DefElem    *d = lfirst(lc);

			if (strcmp(d->defname, "column_name") == 0)
				src->column = defGetString(d);
		}
	}
}

/*
 * Run one statement of ours that returns at most one row of nfields text
 * values; the row (palloc'd, NULL for a null value) or NULL.
 */
static char **
remote_row(MigrateRemote *r, const char *sql, const char *what, int nfields)
{
	PGresult   *res;
	char	  **row = NULL;

	migrate_remote_send(r, sql, what);
	while ((res = migrate_remote_result(r, what)) != NULL)
	{
		if (PQresultStatus(res) != PGRES_TUPLES_OK)
			migrate_remote_fail(r, res, what);
		if (PQnfields(res) < nfields)
		{
			PQclear(res);
			migrate_remote_discard(r);
			elog(ERROR, "could not %s: the source returned too few columns", what);
		}
		if (PQntuples(res) > 0 && row == NULL)
		{
			row = palloc0(sizeof(char *) * nfields);
			for (int i = 0; i < nfields; i++)
				row[i] = PQgetisnull(res, 0, i) ? NULL : pstrdup(PQgetvalue(res, 0, i));
		}
		PQclear(res);
	}
	return row;
}

/* The source's settings and the slot's row of pg_replication_slots. */
static void
slot_info(MigrateRemote *r, const char *slot, SlotInfo *info)
{
	char	  **row;

	/* to_jsonb(): wal_status is not there before PostgreSQL 13 */
	row = remote_row(r, psprintf("SELECT pg_catalog.current_setting('wal_level'),"
								 " (SELECT (a.rolsuper OR a.rolreplication)::pg_catalog.text"
								 "    FROM pg_catalog.pg_roles a WHERE a.rolname OPERATOR(pg_catalog.=) CURRENT_USER),"
								 " (s.slot_name IS NOT NULL)::pg_catalog.text,"
								 " (s.database OPERATOR(pg_catalog.=) pg_catalog.current_database())::pg_catalog.text,"
								 " s.database::pg_catalog.text, s.plugin::pg_catalog.text,"
								 " pg_catalog.to_jsonb(s) OPERATOR(pg_catalog.->>) 'wal_status',"
								 " s.confirmed_flush_lsn::pg_catalog.text"
								 " FROM (SELECT 1) d LEFT JOIN pg_catalog.pg_replication_slots s"
								 " ON s.slot_name OPERATOR(pg_catalog.=) %s",
								 quote_literal_cstr(slot)),
					 "look up the replication slot", 8);
	if (row == NULL)
		elog(ERROR, "the source returned no row for replication slot \"%s\"", slot);
	info->wal_level = row[0] ? row[0] : "";
	info->may_replicate = row[1] && strcmp(row[1], "true") == 0;
	info->exists = row[2] && strcmp(row[2], "true") == 0;
	info->here = row[3] && strcmp(row[3], "true") == 0;
	info->database = row[4];
	info->plugin = row[5];
	info->wal_status = row[6];
	info->confirmed = row[7];
}

static void
check_may_replicate(MigrateRemote *r, SlotSource *src, const char *slot, SlotInfo *info)
{
	if (info->may_replicate)
		return;
	if (r)
		migrate_remote_release(r);
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("permission denied to use replication slot \"%s\" on server \"%s\"",
					slot, src->server),
			 errdetail("The role of the user mapping is neither a superuser nor has the REPLICATION attribute on the source."),
			 errhint("%s", hint_replication)));
}

/* An existing slot of that name must be ours: this database, test_decoding, not lost. */
static void
check_slot_usable(MigrateRemote *r, SlotSource *src, const char *slot, SlotInfo *info)
{
	bool		ours = info->plugin && strcmp(info->plugin, SLOT_PLUGIN) == 0;

	if ((!info->here || !ours) && r)
		migrate_remote_release(r);
	if (!info->here)
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("replication slot \"%s\" on server \"%s\" belongs to database \"%s\"",
						slot, src->server, info->database ? info->database : "?"),
				 errdetail("Replication slot names are shared by the databases of a PostgreSQL server."),
				 errhint("Read the plan's slot tables from one database of that server, or drop the other slot.")));
	if (!ours)
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("replication slot \"%s\" on server \"%s\" uses output plugin \"%s\", not test_decoding",
						slot, src->server, info->plugin ? info->plugin : "(none)"),
				 errhint("Drop that slot on the source, then arm capture again.")));
	if (info->wal_status && strcmp(info->wal_status, "lost") == 0)
		report_lost(r, src, slot, "The source removed WAL the slot still needed (max_slot_wal_keep_size).");
}

static void
report_lost(MigrateRemote *r, SlotSource *src, const char *slot, const char *detail)
{
	if (r)
		migrate_remote_release(r);
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("replication slot \"%s\" on server \"%s\" is lost", slot, src->server),
			 detail ? errdetail_internal("%s", detail) :
			 errdetail("The slot does not exist on the source."),
			 errhint("%s", hint_lost)));
}

/*
 * The source table (and the key column) must exist, not be partitioned,
 * and its replica identity must carry the key column; returns the prefix
 * of its rows in the slot ("table <schema>.<table>: ", as the source
 * quotes it).
 */
static char *
check_source_table(MigrateRemote *r, SlotSource *src, const char *slot)
{
	char	  **row;

	row = remote_row(r, psprintf("SELECT 'table ' OPERATOR(pg_catalog.||) pg_catalog.quote_ident(n.nspname)"
								 " OPERATOR(pg_catalog.||) '.' OPERATOR(pg_catalog.||) pg_catalog.quote_ident(c.relname)"
								 " OPERATOR(pg_catalog.||) ': ',"
								 " c.relkind::pg_catalog.text, (a.attnum IS NOT NULL)::pg_catalog.text,"
								 " (c.relreplident OPERATOR(pg_catalog.=) 'f' OR EXISTS (SELECT FROM pg_catalog.pg_index i"
								 "   WHERE i.indrelid OPERATOR(pg_catalog.=) c.oid"
								 "     AND CASE c.relreplident WHEN 'd' THEN i.indisprimary WHEN 'i' THEN i.indisreplident"
								 "         ELSE false END"
								 "     AND a.attnum OPERATOR(pg_catalog.=) ANY (i.indkey)))::pg_catalog.text"
								 " FROM pg_catalog.pg_class c"
								 " JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace"
								 " LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid OPERATOR(pg_catalog.=) c.oid"
								 "  AND a.attname OPERATOR(pg_catalog.=) %s AND a.attnum > 0 AND NOT a.attisdropped"
								 " WHERE n.nspname OPERATOR(pg_catalog.=) %s AND c.relname OPERATOR(pg_catalog.=) %s",
								 quote_literal_cstr(src->column), quote_literal_cstr(src->schema),
								 quote_literal_cstr(src->table)),
					 "look up the source table", 4);
	if (row == NULL)
	{
		migrate_remote_release(r);
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("source table %s.%s of foreign table %s does not exist on server \"%s\"",
						src->schema, src->table, src->ftname, src->server),
				 errhint("Check the foreign table's schema_name and table_name options.")));
	}
	if (row[1] == NULL || strcmp(row[1], "r") != 0)
	{
		bool		partitioned = row[1] && strcmp(row[1], "p") == 0;

		migrate_remote_release(r);
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("source %s.%s of foreign table %s on server \"%s\" is %s",
						src->schema, src->table, src->ftname, src->server,
						partitioned ? "a partitioned table" : "not a table"),
				 partitioned ?
				 errdetail("Replication slot \"%s\" shows the changes of its partitions under their own names.", slot) :
				 errdetail("Replication slot \"%s\" shows only the changes of tables.", slot),
				 errhint("Use capture => 'trigger' or 'diff' for it.")));
	}
	if (row[2] == NULL || strcmp(row[2], "true") != 0)
	{
		migrate_remote_release(r);
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("key column %s of foreign table %s does not exist in source table %s.%s on server \"%s\"",
						src->column, src->ftname, src->schema, src->table, src->server),
				 errhint("Check the column's column_name option.")));
	}
	if (row[3] == NULL || strcmp(row[3], "true") != 0)
	{
		migrate_remote_release(r);
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("the replica identity of source table %s.%s on server \"%s\" does not hold key column %s",
						src->schema, src->table, src->server, src->column),
				 errdetail("Replication slot \"%s\" could not show the key of a deleted row or the old key of a key change.", slot),
				 errhint("%s", hint_identity)));
	}
	return row[0];
}

static XLogRecPtr
lsn_arg(const char *lsn)
{
	bool		bad = false;
	XLogRecPtr	v = pg_lsn_in_internal(lsn, &bad);

	if (bad)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
				 errmsg("invalid slot position \"%s\"", lsn),
				 errhint("A position of capture => 'slot' is an LSN such as 0/16B3748.")));
	return v;
}

static char *
lsn_text(XLogRecPtr lsn)
{
	return psprintf("%X/%X", LSN_FORMAT_ARGS(lsn));
}

/* ---------------------------------------------------------------------
 * SQL: migrate._slot_pending_keys(plan, target), migrate._slot_drop(plan)
 * --------------------------------------------------------------------- */

/* a sink that appends keys to a set-returning function's tuplestore */
typedef struct KeySetSink
{
	Tuplestorestate *store;
	TupleDesc	desc;
} KeySetSink;

static void
keyset_sink(void *arg, const char *key_text)
{
	KeySetSink *k = arg;
	Datum		value = key_text ? CStringGetTextDatum(key_text) : (Datum) 0;
	bool		isnull = key_text == NULL;

	tuplestore_putvalues(k->store, k->desc, &value, &isnull);
}

/*
 * A slot table of a plan: its source foreign table, the source column of
 * its first key column, its position and slot (sync_state), through SPI
 * as the caller.
 */
static void
slot_table(const char *plan, Oid target, Oid *ftrelid, char **column, char **position, char **slot)
{
	Oid			types[2] = {TEXTOID, REGCLASSOID};
	Datum		values[2] = {CStringGetTextDatum(plan), ObjectIdGetDatum(target)};
	MemoryContext outer = CurrentMemoryContext;
	MemoryContext old;
	int			rc;
	bool		isnull;
	char	   *expr;
	char	   *v;
	const char *p;
	StringInfoData col;
	const char *tname = get_rel_name(target) ? get_rel_name(target) : "?";

	if ((rc = SPI_connect()) != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed: %s", SPI_result_code_string(rc));
	rc = SPI_execute_with_args("SELECT pg_catalog.to_regclass(tm.source)::pg_catalog.oid, m.expr, ss.position,"
							   "       ss.slot_name::pg_catalog.text"
							   "  FROM migrate.table_map tm"
							   "  LEFT JOIN migrate._mapped_columns(tm.plan, tm.target) m"
							   "    ON m.column_name OPERATOR(pg_catalog.=) tm.key[1]"
							   "  LEFT JOIN migrate.sync_state ss"
							   "    ON ss.plan OPERATOR(pg_catalog.=) tm.plan AND ss.target OPERATOR(pg_catalog.=) tm.target"
							   " WHERE tm.plan OPERATOR(pg_catalog.=) $1 AND tm.target OPERATOR(pg_catalog.=) $2",
							   2, types, values, NULL, true, 1);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "SPI_execute failed: %s", SPI_result_code_string(rc));
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("table %s is not in migration plan \"%s\"", tname, plan),
				 errhint("Add it with migrate_table().")));
	*ftrelid = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	if (isnull)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("the source of table %s in migration plan \"%s\" does not exist", tname, plan),
				 errhint("Check the table's source with migrate_table().")));
	expr = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);

	old = MemoryContextSwitchTo(outer);
	v = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3);
	*position = v ? pstrdup(v) : NULL;
	v = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 4);
	*slot = v ? pstrdup(v) : migrate_slot_name(plan);
	/* the first key column maps from a plain source column: s.<name> */
	initStringInfo(&col);
	p = expr ? expr : "";
	if (strncmp(p, "s.", 2) != 0 || (p += 2, !read_ident(&p, &col)) || *p != '\0')
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("the first key column of table %s in migration plan \"%s\" is not a plain source column",
						tname, plan),
				 errdetail("Its mapping is %s.", expr ? expr : "missing"),
				 errhint("capture => 'slot' finds changed rows by the source column the key maps from.")));
	*column = col.data;
	MemoryContextSwitchTo(old);
	if ((rc = SPI_finish()) != SPI_OK_FINISH)
		elog(ERROR, "SPI_finish failed: %s", SPI_result_code_string(rc));
}

/* migrate._slot_pending_keys(plan, target): the keys the slot holds for the table after its position. */
Datum
migrate_sql_slot_pending_keys(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char	   *plan = text_to_cstring(PG_GETARG_TEXT_PP(0));
	Oid			target = PG_GETARG_OID(1);
	Oid			ftrelid;
	char	   *column;
	char	   *position;
	char	   *slot;
	KeySetSink	k;

	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
	slot_table(plan, target, &ftrelid, &column, &position, &slot);
	k.store = rsinfo->setResult;
	k.desc = rsinfo->setDesc;
	(void) migrate_slot_read(ftrelid, slot, column, position, NULL, 0, keyset_sink, &k, NULL);
	return (Datum) 0;
}

/* migrate._slot_drop(plan): the plan's slot on each server of its slot tables. */
Datum
migrate_sql_slot_drop(PG_FUNCTION_ARGS)
{
	char	   *plan = text_to_cstring(PG_GETARG_TEXT_PP(0));
	Oid			types[2] = {TEXTOID, TEXTOID};
	Datum		values[2] = {CStringGetTextDatum(plan), CStringGetTextDatum(migrate_slot_name(plan))};
	MemoryContext outer = CurrentMemoryContext;
	List	   *ftrelids = NIL;
	List	   *slots = NIL;
	ListCell   *a;
	ListCell   *b;
	int			rc;

	if ((rc = SPI_connect()) != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed: %s", SPI_result_code_string(rc));
	/* one foreign table per server and slot name */
	rc = SPI_execute_with_args("SELECT DISTINCT ON (ft.ftserver, sl.name) ft.ftrelid, sl.name"
							   "  FROM migrate.table_map tm"
							   "  LEFT JOIN migrate.sync_state ss"
							   "    ON ss.plan OPERATOR(pg_catalog.=) tm.plan AND ss.target OPERATOR(pg_catalog.=) tm.target"
							   "  JOIN pg_catalog.pg_foreign_table ft"
							   "    ON ft.ftrelid OPERATOR(pg_catalog.=) pg_catalog.to_regclass(tm.source)"
							   " CROSS JOIN LATERAL (SELECT DISTINCT n FROM pg_catalog.unnest(ARRAY[ss.slot_name::pg_catalog.text,"
							   "        $2]) n WHERE n IS NOT NULL) sl(name)"
							   " WHERE tm.plan OPERATOR(pg_catalog.=) $1"
							   "   AND (tm.capture OPERATOR(pg_catalog.=) 'slot' OR ss.capture OPERATOR(pg_catalog.=) 'slot')"
							   " ORDER BY ft.ftserver, sl.name, ft.ftrelid",
							   2, types, values, NULL, true, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "SPI_execute failed: %s", SPI_result_code_string(rc));
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		MemoryContext old;
		Oid			relid = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
		char	   *name = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2);

		old = MemoryContextSwitchTo(outer);
		ftrelids = lappend_oid(ftrelids, relid);
		slots = lappend(slots, pstrdup(name));
		MemoryContextSwitchTo(old);
	}
	if ((rc = SPI_finish()) != SPI_OK_FINISH)
		elog(ERROR, "SPI_finish failed: %s", SPI_result_code_string(rc));
	forboth(a, ftrelids, b, slots)
		migrate_slot_drop(lfirst_oid(a), lfirst(b));
	PG_RETURN_VOID();
}

/* the test's sink: keys joined by commas, a truncate as <T> */
static void
test_sink(void *arg, const char *key_text)
{
	StringInfo	s = arg;

	if (s->len > 0)
		appendStringInfoChar(s, ',');
	appendStringInfoString(s, key_text ? key_text : "<T>");
}

/*
 * Not in any SQL script: the TAP test (test/t/013_slot_capture.pl)
 * declares it to call the C API directly.  op: name (arg: plan), create,
 * exists, drop, lsn, advance (arg: lsn), read (arg: "key column|after|upto|max",
 * empty: NULL); read returns "k1,k2,...|last|changes", a truncate as <T>.
 */
Datum
migrate_slot_test(PG_FUNCTION_ARGS)
{
	char	   *op = text_to_cstring(PG_GETARG_TEXT_PP(0));
	Oid			ftrelid = PG_ARGISNULL(1) ? InvalidOid : PG_GETARG_OID(1);
	char	   *slot = PG_ARGISNULL(2) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(2));
	char	   *arg = PG_ARGISNULL(3) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(3));
	char	   *out = NULL;

	if (strcmp(op, "name") == 0)
		out = migrate_slot_name(arg);
	else if (strcmp(op, "create") == 0)
		out = migrate_slot_create(ftrelid, slot);
	else if (strcmp(op, "exists") == 0)
		out = migrate_slot_exists(ftrelid, slot) ? "t" : "f";
	else if (strcmp(op, "drop") == 0)
		migrate_slot_drop(ftrelid, slot);
	else if (strcmp(op, "lsn") == 0)
		out = migrate_slot_current_lsn(ftrelid);
	else if (strcmp(op, "advance") == 0)
		migrate_slot_advance(ftrelid, slot, arg);
	else if (strcmp(op, "read") == 0)
	{
		char	   *f[4] = {NULL, NULL, NULL, NULL};
		char	   *s = arg ? arg : "";
		StringInfoData keys;
		int64		n = 0;
		char	   *last;

		for (int i = 0; i < 4 && s; i++)
		{
			char	   *bar = strchr(s, '|');

			if (bar)
				*bar = '\0';
			f[i] = *s ? s : NULL;
			s = bar ? bar + 1 : NULL;
		}
		initStringInfo(&keys);
		last = migrate_slot_read(ftrelid, slot, f[0], f[1], f[2], f[3] ? strtoi64(f[3], NULL, 10) : 0,
								 test_sink, &keys, &n);
		out = psprintf("%s|%s|" INT64_FORMAT, keys.data, last ? last : "", n);
	}
	else
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown operation \"%s\"", op)));
	if (out == NULL)
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(cstring_to_text(out));
}
