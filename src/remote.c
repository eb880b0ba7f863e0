/*-------------------------------------------------------------------------
 *
 * remote.c
 *	  The libpq connections of migrate, to the servers of postgres_fdw
 *	  foreign tables: the binary COPY reader (copysrc.c) and the source
 *	  side of comparisons (verify.c) run on them.  No other file opens one.
 *	  (src/mysqlsrc.c holds the MySQL client connections, by the same rules.)
 *
 * Shaped like postgres_fdw's connection.c (PostgreSQL 15):
 *
 * - Only servers of postgres_fdw (whose validator checked the options of
 *   the server and of the mapping, password_required 'false' by a
 *   superuser only).  One connection per user mapping, in a hash keyed by
 *   the mapping's OID, made with the libpq options of the server and of
 *   the mapping as postgres_fdw passes them (no debug options; its
 *   fallback_application_name and client_encoding).  For a non-superuser,
 *   postgres_fdw's check_conn_params() runs before connecting, and again
 *   before each use of a kept connection (a PUBLIC mapping's connection
 *   may have been made for a superuser): the mapping must carry a
 *   password, unless a superuser set password_required 'false', so libpq
 *   never takes one from .pgpass, a passfile, a service file or PGPASSWORD.
 *   After connecting, the server must have asked for it
 *   (PQconnectionUsedPassword).
 *
 * - The remote session gets postgres_fdw's settings (search_path =
 *   pg_catalog, timezone UTC, datestyle ISO, intervalstyle postgres,
 *   extra_float_digits 3) and default_transaction_read_only: every
 *   transaction on it is read-only (capture DDL, when it comes, is the one
 *   exception and will say so).  The replication slot functions of
 *   capture => 'slot' (src/slot.c: create, peek, advance, drop) write no
 *   table and run in that read-only session as they are.  Every statement
 *   is sent with the extended protocol (PQsendQueryParams), which refuses a
 *   string of several; a statement's rows may come one at a time
 *   (migrate_remote_single_row()), so that a reader's memory does not
 *   depend on how many there are.
 *
 * - Every wait (connect, a statement's result, COPY data) sleeps on the
 *   latch and the socket and runs CHECK_FOR_INTERRUPTS (cancel,
 *   statement_timeout, pg_terminate_backend); in a run's worker it also
 *   asks the run's stop check once a second (migrate_cancel), so a stalled
 *   source never holds a backend.  PostgreSQL 15 has no
 *   libpq-be-fe-helpers.h: remote_connect() and remote_wait() are what its
 *   libpqsrv_connect() and libpqsrv_get_result() do.
 *
 * - A use of a connection runs from migrate_remote_get() to
 *   migrate_remote_release() (verify's BEGIN .. COMMIT is one use).  An
 *   error in the middle of a use cancels the remote statement (PQcancel,
 *   then at most REMOTE_CANCEL_WAIT_MS for it to end) and drops the
 *   connection: at once in PG_CATCH around each wait, and from the
 *   (sub)transaction abort callbacks for a use an error left open.  The
 *   next use connects anew, so one failed batch does not spoil the next.
 *
 * - ALTER SERVER and ALTER USER MAPPING (syscache callbacks on
 *   FOREIGNSERVEROID and USERMAPPINGOID, matched by hash value as
 *   pgfdw_inval_callback does) close the connection, or, during a use,
 *   mark it to be closed when the use ends.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_user_mapping.h"
#include "commands/defrem.h"
#include "executor/spi.h"
#include "foreign/foreign.h"
#include "libpq-fe.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/fd.h"
#include "storage/latch.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "migrate.h"
#include "remote.h"

/* how long a cancelled statement may take to end before the connection is closed anyway */
#define REMOTE_CANCEL_WAIT_MS	2000
/* how often a long wait asks the run's stop check */
#define REMOTE_STOP_CHECK_MS	1000

/* a connection cache entry (postgres_fdw's ConnCacheEntry) */
struct MigrateRemote
{
	Oid			umid;			/* hash key: the user mapping (must be first) */
	PGconn	   *conn;			/* NULL: not connected */
	WaitEventSet *wes;			/* latch, socket readable, postmaster death */
	uint32		server_hashvalue;	/* of the foreign server's OID */
	uint32		mapping_hashvalue;	/* of the user mapping's OID */
	int			use_level;		/* transaction nest level of the use, 0: idle */
	bool		invalidated;	/* options changed: close when the use ends */
	TimestampTz use_started;	/* when the current use began */
	/* for the messages of the current use */
	char		ftname[NAMEDATALEN];	/* the foreign table */
	const char *hint;			/* a static string */
	MigrateRemoteErrors errors;
};

static HTAB *remote_hash = NULL;

/* the stop check of a run's worker, and the state it stopped a wait in */
static MigrateRemoteStopCheck stop_check = NULL;
static struct MigrateWork *stop_arg = NULL;
static const char *stopped_state = NULL;
static TimestampTz next_stop_check = 0;

static void remote_init(void);
static void remote_connect(MigrateRemote *r, ForeignServer *server, UserMapping *um);
static void remote_configure_session(MigrateRemote *r);
static void remote_wait(MigrateRemote *r);
static void remote_check_stop(MigrateRemote *r);
static long remote_timeout(void);
static void remote_cancel(MigrateRemote *r);
static bool remote_cleanup_wait(MigrateRemote *r, TimestampTz end);
static void remote_close(MigrateRemote *r);
static void remote_abandon(MigrateRemote *r);
static void check_postgres_fdw(ForeignServer *server, const char *ftname);
static bool password_required(UserMapping *um);
static void check_conn_params(List *options, UserMapping *um, const char *ftname);
static void check_password_used(PGconn *conn, UserMapping *um, const char *ftname);
static char *chomp(const char *msg);
static void remote_xact_callback(XactEvent event, void *arg);
static void remote_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
									SubTransactionId parentSubid, void *arg);
static void remote_inval_callback(Datum arg, int cacheid, uint32 hashvalue);

/* The hash and the callbacks, once per backend. */
static void
remote_init(void)
{
	HASHCTL		ctl;

	ctl.keysize = sizeof(Oid);
	ctl.entrysize = sizeof(MigrateRemote);
	remote_hash = hash_create("migrate remote connections", 8, &ctl, HASH_ELEM | HASH_BLOBS);
	RegisterXactCallback(remote_xact_callback, NULL);
	RegisterSubXactCallback(remote_subxact_callback, NULL);
	CacheRegisterSyscacheCallback(FOREIGNSERVEROID, remote_inval_callback, (Datum) 0);
	CacheRegisterSyscacheCallback(USERMAPPINGOID, remote_inval_callback, (Datum) 0);
}

/*
 * The connection to the server of foreign table ftrelid for the current
 * user's mapping, connected if need be, and its use begun: the caller ends
 * it with migrate_remote_release().  hint (a static string) goes with
 * connection errors, errors says how failed statements are reported.
 * Needs a transaction; throws (connection refused, password rule, the
 * connection already in use by a statement that waits).
 */
MigrateRemote *
migrate_remote_get(Oid ftrelid, const char *hint, MigrateRemoteErrors errors)
{
	ForeignTable *ft = GetForeignTable(ftrelid);
	ForeignServer *server = GetForeignServer(ft->serverid);
	UserMapping *um = GetUserMapping(GetUserId(), ft->serverid);
	char	   *ftname = get_rel_name(ftrelid);
	MigrateRemote *r;
	bool		found;

	/* catalog lookups first: they may run the invalidation callback */
	check_postgres_fdw(server, ftname ? ftname : "?");
	if (remote_hash == NULL)
		remote_init();
	r = hash_search(remote_hash, &um->umid, HASH_ENTER, &found);
	if (!found)
	{
		r->conn = NULL;
		r->wes = NULL;
		r->use_level = 0;
		r->invalidated = false;
	}
	if (r->use_level > 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_IN_USE),
				 errmsg("the connection to the server of foreign table %s is in use", ftname),
				 errdetail("A statement on that server is still running in this session."),
				 errhint("Do not read that server from inside a comparison or a read of it.")));
	strlcpy(r->ftname, ftname ? ftname : "?", sizeof(r->ftname));
	r->hint = hint;
	r->errors = errors;

	if (r->conn && (r->invalidated || PQstatus(r->conn) != CONNECTION_OK ||
					PQtransactionStatus(r->conn) != PQTRANS_IDLE))
		remote_close(r);

	/*
	 * postgres_fdw's rule, before connecting and before each use of a kept
	 * connection: a PUBLIC mapping's may have been made for a superuser
	 * with a password libpq found elsewhere
	 */
	check_conn_params(um->options, um, r->ftname);
	if (r->conn)
		check_password_used(r->conn, um, r->ftname);

	/* from here the invalidation callback only marks the connection */
	r->use_level = GetCurrentTransactionNestLevel();
	r->use_started = GetCurrentTimestamp();
	if (r->conn == NULL)
		remote_connect(r, server, um);
	return r;
}

/*
 * End a use begun by migrate_remote_get(): the connection stays for the
 * next one if the remote side is idle (and its options did not change).
 */
void
migrate_remote_release(MigrateRemote *r)
{
	if (r->conn == NULL)
		return;
	if (PQtransactionStatus(r->conn) != PQTRANS_IDLE)
		remote_abandon(r);
	else if (r->invalidated)
		remote_close(r);
	r->use_level = 0;
}

/* Cancel what runs on the connection and drop it (after the caller's own error). */
void
migrate_remote_discard(MigrateRemote *r)
{
	remote_abandon(r);
}

/*
 * Connect r, as postgres_fdw's connect_pg_server() does but without
 * blocking: PQconnectStartParams(), then PQconnectPoll() while waiting on
 * the latch and the socket.  On error r stays unconnected.
 */
static void
remote_connect(MigrateRemote *r, ForeignServer *server, UserMapping *um)
{
	List	   *options = list_concat(list_copy(server->options), um->options);
	PQconninfoOption *defs = PQconndefaults();
	const char **keywords;
	const char **values;
	int			n = 0;
	ListCell   *lc;

	keywords = palloc(sizeof(char *) * (list_length(options) + 3));
	values = palloc(sizeof(char *) * (list_length(options) + 3));
	foreach(lc, options)
	{
		DefElem    *d = lfirst(lc);
		bool		libpq_option = false;

		/*
		 * only what libpq knows, as postgres_fdw's is_libpq_option(): not
		 * its debug options, nor what is set here
		 */
		for (PQconninfoOption *o = defs; o && o->keyword; o++)
			libpq_option |= strcmp(o->keyword, d->defname) == 0 && strchr(o->dispchar, 'D') == NULL;
		if (!libpq_option || strcmp(d->defname, "client_encoding") == 0 ||
			strcmp(d->defname, "fallback_application_name") == 0)
			continue;
		keywords[n] = d->defname;
		values[n] = defGetString(d);
		n++;
	}
	keywords[n] = "fallback_application_name";
	values[n++] = "migrate";
	keywords[n] = "client_encoding";
	values[n++] = GetDatabaseEncodingName();
	keywords[n] = NULL;
	values[n] = NULL;
	PQconninfoFree(defs);

	/* fd.c's limit on other files: one long-lived descriptor per connection */
	if (!AcquireExternalFD())
		ereport(ERROR,
				(errcode(ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION),
				 errmsg("could not connect to the server for foreign table %s", r->ftname),
				 errdetail("There are too many open files on the local server."),
				 errhint("Raise the server's max_files_per_process setting.")));
	r->conn = PQconnectStartParams(keywords, values, false);
	if (r->conn == NULL)
	{
		ReleaseExternalFD();
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory connecting to the server for foreign table %s", r->ftname)));
	}
	r->server_hashvalue = GetSysCacheHashValue1(FOREIGNSERVEROID, ObjectIdGetDatum(server->serverid));
	r->mapping_hashvalue = GetSysCacheHashValue1(USERMAPPINGOID, ObjectIdGetDatum(um->umid));
	r->invalidated = false;

	PG_TRY();
	{
		PostgresPollingStatusType status = PGRES_POLLING_WRITING;

		while (PQstatus(r->conn) != CONNECTION_BAD &&
			   status != PGRES_POLLING_OK && status != PGRES_POLLING_FAILED)
		{
			int			io = status == PGRES_POLLING_READING ? WL_SOCKET_READABLE : WL_SOCKET_WRITEABLE;
			long		timeout = remote_timeout();
			int			rc;

			rc = WaitLatchOrSocket(MyLatch,
								   WL_LATCH_SET | WL_EXIT_ON_PM_DEATH | io |
								   (timeout >= 0 ? WL_TIMEOUT : 0),
								   PQsocket(r->conn), timeout, PG_WAIT_EXTENSION);
			if (rc & WL_LATCH_SET)
				ResetLatch(MyLatch);
			CHECK_FOR_INTERRUPTS();
			remote_check_stop(r);
			if (rc & io)
				status = PQconnectPoll(r->conn);
		}
		if (PQstatus(r->conn) != CONNECTION_OK)
			ereport(ERROR,
					(errcode(ERRCODE_FDW_UNABLE_TO_ESTABLISH_CONNECTION),
					 errmsg("could not connect to the server for foreign table %s: %s",
							r->ftname, chomp(PQerrorMessage(r->conn))),
					 errhint("%s", r->hint)));

		/* after: the server must have asked for the password */
		check_password_used(r->conn, um, r->ftname);

		r->wes = CreateWaitEventSet(TopMemoryContext, 3);
		AddWaitEventToSet(r->wes, WL_LATCH_SET, PGINVALID_SOCKET, MyLatch, NULL);
		AddWaitEventToSet(r->wes, WL_SOCKET_READABLE, PQsocket(r->conn), NULL, NULL);
		AddWaitEventToSet(r->wes, WL_EXIT_ON_PM_DEATH, PGINVALID_SOCKET, NULL, NULL);

		remote_configure_session(r);
	}
	PG_CATCH();
	{
		remote_close(r);
		PG_RE_THROW();
	}
	PG_END_TRY();
	pfree(keywords);
	pfree(values);
}

/*
 * postgres_fdw's configure_remote_session(): settings that make the
 * remote output unambiguous, for the life of the session.
 */
static void
remote_configure_session(MigrateRemote *r)
{
	int			version = PQserverVersion(r->conn);

	migrate_remote_command(r, "SET search_path = pg_catalog", "configure the session");
	migrate_remote_command(r, "SET timezone = 'UTC'", "configure the session");
	migrate_remote_command(r, "SET datestyle = ISO", "configure the session");
	if (version >= 80400)
		migrate_remote_command(r, "SET intervalstyle = postgres", "configure the session");
	migrate_remote_command(r, version >= 90000 ? "SET extra_float_digits = 3" :
						   "SET extra_float_digits = 2", "configure the session");
	/* migrate only reads its sources */
	migrate_remote_command(r, "SET default_transaction_read_only = on", "configure the session");
}

/*
 * Send one statement, through the extended protocol (which refuses a
 * string of several); read its results with migrate_remote_result().
 */
void
migrate_remote_send(MigrateRemote *r, const char *sql, const char *what)
{
	if (!PQsendQueryParams(r->conn, sql, 0, NULL, NULL, NULL, NULL, 0))
		migrate_remote_fail(r, NULL, what);
}

/*
 * Right after migrate_remote_send(): the statement's rows come one per
 * result (PGRES_SINGLE_TUPLE), then an empty PGRES_TUPLES_OK (libpq's
 * single-row mode).
 */
void
migrate_remote_single_row(MigrateRemote *r, const char *what)
{
	if (!PQsetSingleRowMode(r->conn))
		migrate_remote_fail(r, NULL, what);
}

/*
 * The next result of the statement sent, or NULL when it is done: like
 * PQgetResult(), waiting on the latch and the socket (pgfdw_get_result).
 * The caller PQclear()s it.
 */
PGresult *
migrate_remote_result(MigrateRemote *r, const char *what)
{
	PGresult   *res;

	PG_TRY();
	{
		while (PQisBusy(r->conn))
		{
			remote_wait(r);
			if (PQstatus(r->conn) == CONNECTION_BAD)
				break;
		}
	}
	PG_CATCH();
	{
		remote_abandon(r);
		PG_RE_THROW();
	}
	PG_END_TRY();
	if (PQstatus(r->conn) == CONNECTION_BAD)
		migrate_remote_fail(r, NULL, what);
	res = PQgetResult(r->conn);
	return res;
}

/* Run one statement that returns no rows (our own SQL); it must succeed. */
void
migrate_remote_command(MigrateRemote *r, const char *sql, const char *what)
{
	PGresult   *res;

	migrate_remote_send(r, sql, what);
	while ((res = migrate_remote_result(r, what)) != NULL)
	{
		if (PQresultStatus(res) != PGRES_COMMAND_OK)
			migrate_remote_fail(r, res, what);
		PQclear(res);
	}
}

/* Start a COPY ... TO STDOUT; its rows come from migrate_remote_copy_data(). */
void
migrate_remote_copy_begin(MigrateRemote *r, const char *sql, const char *what)
{
	PGresult   *res;

	migrate_remote_send(r, sql, what);
	res = migrate_remote_result(r, what);
	if (PQresultStatus(res) != PGRES_COPY_OUT)
		migrate_remote_fail(r, res, what);
	PQclear(res);
}

/*
 * The next row of the COPY (its length; *buf for the caller to
 * PQfreemem()), or -1 when the COPY has ended well.  Reads without
 * blocking and waits on the latch and the socket when no row is there.
 */
int
migrate_remote_copy_data(MigrateRemote *r, char **buf)
{
	for (;;)
	{
		int			len = PQgetCopyData(r->conn, buf, 1);
		PGresult   *res;

		if (len > 0)
			return len;
		if (len == 0)
		{
			PG_TRY();
			{
				remote_wait(r);
			}
			PG_CATCH();
			{
				remote_abandon(r);
				PG_RE_THROW();
			}
			PG_END_TRY();
			continue;
		}
		if (len < -1)
			migrate_remote_fail(r, NULL, "read rows");
		/* the COPY is over: its outcome, then the end of the statement */
		res = migrate_remote_result(r, "finish reading");
		if (PQresultStatus(res) != PGRES_COMMAND_OK)
			migrate_remote_fail(r, res, "finish reading");
		PQclear(res);
		while ((res = migrate_remote_result(r, "finish reading")) != NULL)
			PQclear(res);
		return -1;
	}
}

/*
 * Report a failed statement (res, or the connection's error when NULL),
 * after dropping the connection: its state is unknown.  Frees res.
 */
void
migrate_remote_fail(MigrateRemote *r, PGresult *res, const char *what)
{
	const char *field;
	char	   *msg;
	char	   *detail = NULL;
	int			code = ERRCODE_FDW_ERROR;

	if (r->errors == MIGRATE_REMOTE_PASS && res != NULL)
	{
		field = PQresultErrorField(res, PG_DIAG_SQLSTATE);
		if (field && strlen(field) == 5)
			code = MAKE_SQLSTATE(field[0], field[1], field[2], field[3], field[4]);
		field = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
		msg = chomp(field ? field : PQerrorMessage(r->conn));
		field = PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL);
		detail = field ? pstrdup(field) : NULL;
	}
	else
		msg = chomp(r->conn ? PQerrorMessage(r->conn) : "no connection");
	if (res)
		PQclear(res);
	remote_abandon(r);

	if (r->errors == MIGRATE_REMOTE_PASS)
		ereport(ERROR,
				(errcode(code),
				 errmsg_internal("%s", msg),
				 detail ? errdetail_internal("%s", detail) : 0,
				 errcontext("statement on the server of foreign table %s", r->ftname),
				 errhint("%s", r->hint)));
	ereport(ERROR,
			(errcode(ERRCODE_FDW_UNABLE_TO_ESTABLISH_CONNECTION),
			 errmsg("could not %s for foreign table %s: %s", what, r->ftname, msg),
			 errhint("%s", r->hint)));
}

/*
 * Wait until the socket has data (then read it), the latch is set or the
 * stop check is due; answers interrupts and the stop check (both throw).
 */
static void
remote_wait(MigrateRemote *r)
{
	WaitEvent	ev;
	int			n;

	n = WaitEventSetWait(r->wes, remote_timeout(), &ev, 1, PG_WAIT_EXTENSION);
	if (n > 0 && (ev.events & WL_LATCH_SET))
		ResetLatch(MyLatch);
	CHECK_FOR_INTERRUPTS();
	remote_check_stop(r);
	if (n > 0 && (ev.events & WL_SOCKET_READABLE) && !PQconsumeInput(r->conn))
		migrate_remote_fail(r, NULL, "read from the server");
}

/* How long a wait may sleep: until the stop check is due, or for ever. */
static long
remote_timeout(void)
{
	TimestampTz now;

	if (stop_check == NULL)
		return -1L;
	now = GetCurrentTimestamp();
	return Max(10L, TimestampDifferenceMilliseconds(now, next_stop_check));
}

/*
 * In a run's worker, when a use has lasted a second, ask the run's stop
 * check (once a second); when the run stops, give up the wait with an
 * error, remembering the state for migrate_remote_stopped().
 */
static void
remote_check_stop(MigrateRemote *r)
{
	TimestampTz now;
	const char *state;
	int			rc;

	if (stop_check == NULL || !IsTransactionState())
		return;
	now = GetCurrentTimestamp();
	if (!TimestampDifferenceExceeds(r->use_started, now, REMOTE_STOP_CHECK_MS))
	{
		next_stop_check = TimestampTzPlusMilliseconds(r->use_started, REMOTE_STOP_CHECK_MS);
		return;
	}
	if (now < next_stop_check)
		return;
	next_stop_check = TimestampTzPlusMilliseconds(now, REMOTE_STOP_CHECK_MS);

	if ((rc = SPI_connect()) != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed: %s", SPI_result_code_string(rc));
	state = stop_check(stop_arg);
	if ((rc = SPI_finish()) != SPI_OK_FINISH)
		elog(ERROR, "SPI_finish failed: %s", SPI_result_code_string(rc));
	if (state == NULL)
		return;
	stopped_state = state;
	ereport(ERROR,
			(errcode(ERRCODE_QUERY_CANCELED),
			 errmsg("stopped waiting for the server of foreign table %s: the run is %s",
					r->ftname, state)));
}

/*
 * Cancel the statement running on r, if any, and wait at most
 * REMOTE_CANCEL_WAIT_MS for it to end (pgfdw_cancel_query); the caller
 * drops the connection anyway.  Never throws for a remote problem: runs
 * in error cleanup.
 */
static void
remote_cancel(MigrateRemote *r)
{
	PGconn	   *conn = r->conn;
	PGcancel   *cancel;
	char		errbuf[256];
	TimestampTz end;

	if (conn == NULL || PQstatus(conn) != CONNECTION_OK ||
		PQtransactionStatus(conn) != PQTRANS_ACTIVE)
		return;
	cancel = PQgetCancel(conn);
	if (cancel == NULL)
		return;
	if (!PQcancel(cancel, errbuf, sizeof(errbuf)))
	{
		PQfreeCancel(cancel);
		ereport(WARNING,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg("could not cancel the statement on the server of foreign table %s: %s",
						r->ftname, errbuf)));
		return;
	}
	PQfreeCancel(cancel);

	end = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), REMOTE_CANCEL_WAIT_MS);
	for (;;)
	{
		PGresult   *res;
		ExecStatusType status;

		if (PQisBusy(conn))
		{
			if (!remote_cleanup_wait(r, end))
				return;
			continue;
		}
		res = PQgetResult(conn);
		if (res == NULL)
			return;				/* the statement has ended */
		status = PQresultStatus(res);
		PQclear(res);
		if (status == PGRES_COPY_OUT)
		{
			/* the rest of the COPY, until the server notices the cancel */
			for (;;)
			{
				char	   *buf;
				int			len = PQgetCopyData(conn, &buf, 1);

				if (len > 0)
					PQfreemem(buf);
				else if (len == 0)
				{
					if (!remote_cleanup_wait(r, end))
						return;
				}
				else
					break;
			}
		}
		else if (status == PGRES_COPY_IN || status == PGRES_COPY_BOTH)
			return;
	}
}

/* A wait of error cleanup: no interrupts; false when the time is up or the connection failed. */
static bool
remote_cleanup_wait(MigrateRemote *r, TimestampTz end)
{
	long		timeout = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), end);
	WaitEvent	ev;
	int			n;

	if (timeout <= 0 || r->wes == NULL)
		return false;
	n = WaitEventSetWait(r->wes, timeout, &ev, 1, PG_WAIT_EXTENSION);
	if (n > 0 && (ev.events & WL_LATCH_SET))
		ResetLatch(MyLatch);
	if (n > 0 && (ev.events & WL_SOCKET_READABLE) && !PQconsumeInput(r->conn))
		return false;
	return true;
}

/* Close r's connection (postgres_fdw's disconnect_pg_server). */
static void
remote_close(MigrateRemote *r)
{
	if (r->wes)
		FreeWaitEventSet(r->wes);
	r->wes = NULL;
	if (r->conn)
	{
		PQfinish(r->conn);
		ReleaseExternalFD();
	}
	r->conn = NULL;
	r->use_level = 0;
	r->invalidated = false;
}

/* After an error in a use: cancel what runs, then close. */
static void
remote_abandon(MigrateRemote *r)
{
	remote_cancel(r);
	remote_close(r);
}

/* The user mapping's password_required option (postgres_fdw's, default true). */
static bool
password_required(UserMapping *um)
{
	ListCell   *lc;

	foreach(lc, um->options)
	{
		DefElem    *d = lfirst(lc);

		if (strcmp(d->defname, "password_required") == 0)
			return defGetBoolean(d);
	}
	return true;
}

/*
 * Only postgres_fdw's servers: their options passed its validator (a
 * password only in a user mapping, password_required 'false' only by a
 * superuser), which another wrapper's need not have.
 */
static void
check_postgres_fdw(ForeignServer *server, const char *ftname)
{
	ForeignDataWrapper *fdw = GetForeignDataWrapper(server->fdwid);

	if (strcmp(fdw->fdwname, "postgres_fdw") != 0 || !OidIsValid(fdw->fdwvalidator) ||
		strcmp(get_func_name(fdw->fdwvalidator), "postgres_fdw_validator") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("foreign table %s is not a table of postgres_fdw", ftname),
				 errdetail("Its server %s uses the foreign data wrapper %s.",
						   server->servername, fdw->fdwname),
				 errhint("migrate connects itself only to servers of postgres_fdw.")));
}

/*
 * postgres_fdw's check_conn_params(): a non-superuser's user mapping must
 * carry a non-empty password, so that libpq takes none from .pgpass, a
 * passfile, a service file or the environment; unless a superuser set
 * password_required 'false' on the mapping.  (Only a mapping may hold a
 * password: postgres_fdw's validator.)
 */
static void
check_conn_params(List *options, UserMapping *um, const char *ftname)
{
	ListCell   *lc;

	if (superuser_arg(um->userid))
		return;
	foreach(lc, options)
	{
		DefElem    *d = lfirst(lc);

		if (strcmp(d->defname, "password") == 0 && defGetString(d)[0] != '\0')
			return;
	}
	if (!password_required(um))
		return;
	ereport(ERROR,
			(errcode(ERRCODE_S_R_E_PROHIBITED_SQL_STATEMENT_ATTEMPTED),
			 errmsg("password is required to read foreign table %s", ftname),
			 errdetail("Non-superusers must provide a password in the user mapping."),
			 errhint("Add a password to the user mapping, or ask a superuser to set password_required 'false' on it.")));
}

/*
 * And after connecting (connect_pg_server): the server must have asked for
 * that password, else a non-superuser rides on this server's identity.
 */
static void
check_password_used(PGconn *conn, UserMapping *um, const char *ftname)
{
	if (superuser_arg(um->userid) || !password_required(um) || PQconnectionUsedPassword(conn))
		return;
	ereport(ERROR,
			(errcode(ERRCODE_S_R_E_PROHIBITED_SQL_STATEMENT_ATTEMPTED),
			 errmsg("password is required to read foreign table %s", ftname),
			 errdetail("Non-superuser cannot connect if the server does not request a password."),
			 errhint("Target server's authentication method must be changed or password_required=false set in the user mapping attributes.")));
}

/* A libpq message without its trailing newline, palloc'd. */
static char *
chomp(const char *msg)
{
	char	   *s = pstrdup(msg ? msg : "");
	int			len = strlen(s);

	while (len > 0 && (s[len - 1] == '\n' || s[len - 1] == ' '))
		s[--len] = '\0';
	return s;
}

/*
 * A run's worker asks check (with SPI connected) during long remote waits;
 * NULL check: no more.
 */
void
migrate_remote_set_stop_check(MigrateRemoteStopCheck check, struct MigrateWork *w)
{
	stop_check = check;
	stop_arg = w;
	next_stop_check = 0;
}

/*
 * The state the stop check returned when it made a wait give up (the
 * error then raised is why the caller's work ended), or NULL; reading it
 * clears it.
 */
const char *
migrate_remote_stopped(void)
{
	const char *state = stopped_state;

	stopped_state = NULL;
	return state;
}

/*
 * At the end of a transaction: a use an error left open is cancelled and
 * dropped (its remote state is unknown); an idle connection stays unless
 * its options changed.  Interrupts are held here.
 */
static void
remote_xact_callback(XactEvent event, void *arg)
{
	HASH_SEQ_STATUS scan;
	MigrateRemote *r;

	(void) arg;
	if (event == XACT_EVENT_PRE_COMMIT || event == XACT_EVENT_PARALLEL_PRE_COMMIT ||
		event == XACT_EVENT_PRE_PREPARE)
		return;
	hash_seq_init(&scan, remote_hash);
	while ((r = hash_seq_search(&scan)) != NULL)
	{
		if (r->conn == NULL)
			r->use_level = 0;	/* a use whose connecting failed */
		else if (r->use_level > 0 || PQtransactionStatus(r->conn) != PQTRANS_IDLE)
			remote_abandon(r);
		else if (r->invalidated)
			remote_close(r);
		r->use_level = 0;
	}
}

/*
 * At the abort of a subtransaction, the uses begun in it (or deeper) are
 * cancelled and dropped; at its commit they belong to the parent.
 */
static void
remote_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
						SubTransactionId parentSubid, void *arg)
{
	HASH_SEQ_STATUS scan;
	MigrateRemote *r;
	int			level;

	(void) mySubid;
	(void) parentSubid;
	(void) arg;
	if (event != SUBXACT_EVENT_ABORT_SUB && event != SUBXACT_EVENT_COMMIT_SUB)
		return;
	level = GetCurrentTransactionNestLevel();
	hash_seq_init(&scan, remote_hash);
	while ((r = hash_seq_search(&scan)) != NULL)
	{
		if (r->use_level < level)
			continue;
		if (event == SUBXACT_EVENT_ABORT_SUB)
			remote_abandon(r);
		else
			r->use_level = level - 1;
	}
}

/*
 * After a change to a pg_foreign_server or pg_user_mapping row (or a cache
 * reset, hashvalue 0), close the connections made with it, or mark those
 * in use to be closed when their use ends (pgfdw_inval_callback).
 */
static void
remote_inval_callback(Datum arg, int cacheid, uint32 hashvalue)
{
	HASH_SEQ_STATUS scan;
	MigrateRemote *r;

	(void) arg;
	hash_seq_init(&scan, remote_hash);
	while ((r = hash_seq_search(&scan)) != NULL)
	{
		if (r->conn == NULL)
			continue;
		if (hashvalue == 0 ||
			(cacheid == FOREIGNSERVEROID && r->server_hashvalue == hashvalue) ||
			(cacheid == USERMAPPINGOID && r->mapping_hashvalue == hashvalue))
		{
			if (r->use_level == 0)
				remote_close(r);
			else
				r->invalidated = true;
		}
	}
}
