/*-------------------------------------------------------------------------
 *
 * mysqlsrc.c
 *	  migrate's own MySQL/MariaDB client connections (libmariadb), to the
 *	  servers of mysql_fdw foreign tables: migrate._mysql_value() reads one
 *	  long binary value whole through them.  No other file opens one
 *	  (test/structure.sh), as remote.c alone opens libpq connections.
 *
 * Why: mysql_fdw 2.8 binds a bytea result column to a buffer of 8192 bytes
 * (MAX_BLOB_WIDTH; its max_blob_size option is parsed but unused) and ends
 * its scan, without an error, at a longer value.  migrate_plan therefore
 * declares a foreign table without its long BLOB columns, and automap maps
 * them to migrate._mysql_value(ftable, column, key column, key), which
 * fetches the value of one row here, sized by the value's real length
 * (the text protocol sends it length-prefixed: mysql_fetch_lengths).
 *
 * The rules, as remote.c's for postgres_fdw:
 *
 * - The caller must have SELECT on the foreign table and USAGE on its
 *   server (checked before anything remote happens), so the function
 *   reads nothing the caller could not declare a foreign table for
 *   itself.  The connection uses the server's options as mysql_fdw does
 *   (host, port, init_command, ssl_key, ssl_cert, ssl_ca, ssl_capath,
 *   ssl_cipher; not secure_auth, which libmariadb ignores, nor
 *   character_set: always utf8mb4, nor sql_mode, reconnect, fetch_size) and the user mapping of the current
 *   user (username, password).  A non-superuser's mapping must carry a
 *   password (postgres_fdw's rule; mysql_fdw has none), so the server's
 *   own identity (a unix socket login) is never lent.
 *
 * - One connection per user mapping (hash keyed by its OID), kept for the
 *   backend; closed when its server or mapping changes (syscache
 *   callbacks), after any error on it, at the end of a transaction an
 *   error left a use open in, and at backend exit.
 *
 * - The remote session is read-only (SET SESSION TRANSACTION READ ONLY:
 *   every autocommit statement is a read-only transaction), with a
 *   statement timeout (MariaDB max_statement_time, MySQL
 *   max_execution_time: statement_timeout, or MYSQL_DEFAULT_TIMEOUT_S)
 *   and client read/write timeouts of the same length, because a libmariadb
 *   call blocks and does not see PostgreSQL's interrupts.
 *
 * - Errors are FDW errors (ERRCODE_FDW_*) naming the server and foreign
 *   table; MySQL's messages never hold the password.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

/* libmariadb's ma_list.h has functions of the names of pg_list.h's (as mysql_fdw.h does) */
#define list_length mysql_list_length
#define list_delete mysql_list_delete
#define list_free mysql_list_free
#include <mysql.h>
#undef list_length
#undef list_delete
#undef list_free

#include "access/xact.h"
#include "catalog/pg_class.h"
#include "catalog/pg_foreign_server.h"
#include "catalog/pg_type.h"
#include "commands/defrem.h"
#include "fmgr.h"
#include "foreign/foreign.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/proc.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "migrate.h"

PG_FUNCTION_INFO_V1(migrate_mysql_value);

/* the remote statement timeout when statement_timeout is off */
#define MYSQL_DEFAULT_TIMEOUT_S		600
#define MYSQL_CONNECT_TIMEOUT_S		30
/* the largest value a bytea holds: what the client may receive */
#define MYSQL_MAX_PACKET			(1024L * 1024L * 1024L)
/* a connection idle longer than this is pinged before its next use */
#define MYSQL_IDLE_PING_MS			10000

typedef struct MysqlConn
{
	Oid			umid;			/* hash key: the user mapping (must be first) */
	MYSQL	   *conn;			/* NULL: not connected */
	uint32		server_hashvalue;
	uint32		mapping_hashvalue;
	bool		in_use;			/* a statement of ours is under way */
	TimestampTz last_used;		/* when its last statement ended */
	bool		invalidated;	/* options changed: close at the end of the use */
} MysqlConn;

static HTAB *mysql_hash = NULL;

static void mysql_init_cache(void);
static MysqlConn *mysql_get(ForeignServer *server, UserMapping *um, const char *ftname);
static void mysql_connect_entry(MysqlConn *c, ForeignServer *server, UserMapping *um,
								const char *ftname);
static void mysql_close_entry(MysqlConn *c);
static void mysql_fail(MysqlConn *c, ForeignServer *server, const char *ftname,
					   const char *what) pg_attribute_noreturn();
static void mysql_run(MysqlConn *c, ForeignServer *server, const char *ftname,
					  const char *sql, const char *what);
static const char *option_value(List *options, const char *name);
static char *backquote(const char *name);
static char *to_utf8(const char *s);
static void mysql_xact_callback(XactEvent event, void *arg);
static void mysql_inval_callback(Datum arg, int cacheid, uint32 hashvalue);
static void mysql_exit_callback(int code, Datum arg);

static void
mysql_init_cache(void)
{
	HASHCTL		ctl;

	ctl.keysize = sizeof(Oid);
	ctl.entrysize = sizeof(MysqlConn);
	mysql_hash = hash_create("migrate mysql connections", 8, &ctl, HASH_ELEM | HASH_BLOBS);
	RegisterXactCallback(mysql_xact_callback, NULL);
	CacheRegisterSyscacheCallback(FOREIGNSERVEROID, mysql_inval_callback, (Datum) 0);
	CacheRegisterSyscacheCallback(USERMAPPINGOID, mysql_inval_callback, (Datum) 0);
	on_proc_exit(mysql_exit_callback, (Datum) 0);
}

/* The value of option name in a DefElem list, or NULL. */
static const char *
option_value(List *options, const char *name)
{
	ListCell   *lc;

	foreach(lc, options)
	{
		DefElem    *d = lfirst(lc);

		if (strcmp(d->defname, name) == 0)
			return defGetString(d);
	}
	return NULL;
}

/* A MySQL identifier in backticks, a backtick in it doubled. */
static char *
backquote(const char *name)
{
	StringInfoData s;

	initStringInfo(&s);
	appendStringInfoChar(&s, '`');
	for (const char *p = name; *p; p++)
	{
		if (*p == '`')
			appendStringInfoChar(&s, '`');
		appendStringInfoChar(&s, *p);
	}
	appendStringInfoChar(&s, '`');
	return s.data;
}

/* The connection speaks utf8mb4: names and keys are sent in UTF-8. */
static char *
to_utf8(const char *s)
{
	return (char *) pg_server_to_any(s, strlen(s), PG_UTF8);
}

/*
 * The connection of mapping um, connected if need be, marked in use (the
 * caller clears in_use when its statement is done).
 */
static MysqlConn *
mysql_get(ForeignServer *server, UserMapping *um, const char *ftname)
{
	MysqlConn  *c;
	bool		found;

	/* postgres_fdw's rule: a non-superuser brings a password */
	if (!superuser_arg(um->userid))
	{
		const char *pw = option_value(um->options, "password");

		if (pw == NULL || pw[0] == '\0')
			ereport(ERROR,
					(errcode(ERRCODE_S_R_E_PROHIBITED_SQL_STATEMENT_ATTEMPTED),
					 errmsg("password is required to read foreign table %s", ftname),
					 errdetail("Non-superusers must provide a password in the user mapping of server %s.",
							   server->servername),
					 errhint("Add a password to the user mapping.")));
	}
	if (mysql_hash == NULL)
		mysql_init_cache();
	c = hash_search(mysql_hash, &um->umid, HASH_ENTER, &found);
	if (!found)
	{
		c->conn = NULL;
		c->in_use = false;
		c->invalidated = false;
	}
	/*
	 * still in use: an error (out of memory) left the last call before it
	 * ended, in a subtransaction that the caller went on after; a call
	 * never runs inside another, so the connection's state is unknown
	 */
	if (c->conn && (c->in_use || c->invalidated))
		mysql_close_entry(c);
	/*
	 * a connection idle for a while may have been dropped by the server
	 * (wait_timeout): ask, and connect anew if so
	 */
	if (c->conn && TimestampDifferenceExceeds(c->last_used, GetCurrentTimestamp(), MYSQL_IDLE_PING_MS) &&
		mysql_ping(c->conn) != 0)
		mysql_close_entry(c);
	if (c->conn == NULL)
		mysql_connect_entry(c, server, um, ftname);
	c->in_use = true;
	return c;
}

/* Connect c with the server's and the mapping's options (mysql_fdw's mysql_connect). */
static void
mysql_connect_entry(MysqlConn *c, ForeignServer *server, UserMapping *um, const char *ftname)
{
	const char *host = option_value(server->options, "host");
	const char *port = option_value(server->options, "port");
	const char *init_command = option_value(server->options, "init_command");
	const char *ssl_key = option_value(server->options, "ssl_key");
	const char *ssl_cert = option_value(server->options, "ssl_cert");
	const char *ssl_ca = option_value(server->options, "ssl_ca");
	const char *ssl_capath = option_value(server->options, "ssl_capath");
	const char *ssl_cipher = option_value(server->options, "ssl_cipher");
	const char *user = option_value(um->options, "username");
	const char *password = option_value(um->options, "password");
	unsigned int timeout = StatementTimeout > 0 ? Max(1, StatementTimeout / 1000) : MYSQL_DEFAULT_TIMEOUT_S;
	unsigned int connect_timeout = Min(timeout, MYSQL_CONNECT_TIMEOUT_S);
	unsigned long max_packet = MYSQL_MAX_PACKET;
	my_bool		reconnect = 0;
	char		sql[128];

	c->conn = mysql_init(NULL);
	if (c->conn == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_OUT_OF_MEMORY),
				 errmsg("out of memory connecting to MySQL server %s for foreign table %s",
						server->servername, ftname)));
	c->server_hashvalue = GetSysCacheHashValue1(FOREIGNSERVEROID, ObjectIdGetDatum(server->serverid));
	c->mapping_hashvalue = GetSysCacheHashValue1(USERMAPPINGOID, ObjectIdGetDatum(um->umid));
	c->invalidated = false;

	mysql_options(c->conn, MYSQL_SET_CHARSET_NAME, "utf8mb4");
	mysql_options(c->conn, MYSQL_OPT_CONNECT_TIMEOUT, &connect_timeout);
	mysql_options(c->conn, MYSQL_OPT_READ_TIMEOUT, &timeout);
	mysql_options(c->conn, MYSQL_OPT_WRITE_TIMEOUT, &timeout);
	mysql_options(c->conn, MYSQL_OPT_MAX_ALLOWED_PACKET, &max_packet);
	mysql_options(c->conn, MYSQL_OPT_RECONNECT, &reconnect);
	if (init_command)
		mysql_options(c->conn, MYSQL_INIT_COMMAND, init_command);
	if (ssl_key || ssl_cert || ssl_ca || ssl_capath || ssl_cipher)
		mysql_ssl_set(c->conn, ssl_key, ssl_cert, ssl_ca, ssl_capath, ssl_cipher);

	if (!mysql_real_connect(c->conn, host ? host : "127.0.0.1", user, password, NULL,
							port ? (unsigned int) pg_strtoint32(port) : 3306, NULL, 0))
	{
		char	   *msg = pstrdup(mysql_error(c->conn));

		mysql_close_entry(c);
		ereport(ERROR,
				(errcode(ERRCODE_FDW_UNABLE_TO_ESTABLISH_CONNECTION),
				 errmsg("could not connect to MySQL server %s for foreign table %s: %s",
						server->servername, ftname, msg),
				 errhint("Check the options of server %s and of the user mapping for the current user.",
						 server->servername)));
	}
	/* migrate only reads its sources; and no statement runs for ever */
	c->in_use = true;
	mysql_run(c, server, ftname, "SET SESSION TRANSACTION READ ONLY", "make the session read-only");
	if (strstr(mysql_get_server_info(c->conn), "MariaDB") != NULL)
		snprintf(sql, sizeof(sql), "SET SESSION max_statement_time = %u", timeout);
	else
		snprintf(sql, sizeof(sql), "SET SESSION max_execution_time = %lu", (unsigned long) timeout * 1000UL);
	mysql_run(c, server, ftname, sql, "set the statement timeout");
	c->in_use = false;
	c->last_used = GetCurrentTimestamp();
}

/* Run one statement of ours that returns no rows. */
static void
mysql_run(MysqlConn *c, ForeignServer *server, const char *ftname, const char *sql, const char *what)
{
	if (mysql_real_query(c->conn, sql, strlen(sql)) != 0)
		mysql_fail(c, server, ftname, what);
}

/* Report MySQL's error on c after closing it: its state is unknown. */
static void
mysql_fail(MysqlConn *c, ForeignServer *server, const char *ftname, const char *what)
{
	char	   *msg = pstrdup(c->conn ? mysql_error(c->conn) : "no connection");
	const char *state = c->conn ? mysql_sqlstate(c->conn) : "HY000";
	unsigned int err = c->conn ? mysql_errno(c->conn) : 0;
	int			code = ERRCODE_FDW_ERROR;

	mysql_close_entry(c);
	/* the server ended the statement at its timeout (MariaDB 1969, MySQL 3024) */
	if (err == 1969 || err == 3024)
		code = ERRCODE_QUERY_CANCELED;
	ereport(ERROR,
			(errcode(code),
			 errmsg("could not %s on MySQL server %s for foreign table %s: %s",
					what, server->servername, ftname, msg),
			 errdetail("MySQL error %u, SQLSTATE %s.", err, state)));
}

static void
mysql_close_entry(MysqlConn *c)
{
	if (c->conn)
		mysql_close(c->conn);
	c->conn = NULL;
	c->in_use = false;
	c->invalidated = false;
}

/*
 * migrate._mysql_value(ftable regclass, column_name text, key_column name,
 *                      key anyelement) returns bytea
 *
 * The value of MySQL column column_name of the row of ftable's remote
 * table whose key_column (a column of the foreign table) equals key, read
 * whole; NULL for a NULL value.  No such row (deleted since the scan) or
 * several raise an error, so a value is never silently dropped.
 */
Datum
migrate_mysql_value(PG_FUNCTION_ARGS)
{
	Oid			ftrelid;
	char	   *column;
	char	   *key_column;
	Oid			keytype;
	char	   *ftname;
	ForeignTable *ft;
	ForeignServer *server;
	ForeignDataWrapper *fdw;
	UserMapping *um;
	AttrNumber	keyatt;
	const char *dbname;
	const char *table_name;
	char	   *keytext;
	StringInfoData sql;
	MysqlConn  *c;
	MYSQL_RES  *res;
	MYSQL_ROW	row;
	unsigned long *lengths;
	bytea	   *result = NULL;
	my_ulonglong nrows;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("migrate._mysql_value needs a foreign table, a column and a key column")));
	ftrelid = PG_GETARG_OID(0);
	column = text_to_cstring(PG_GETARG_TEXT_PP(1));
	key_column = NameStr(*PG_GETARG_NAME(2));
	keytype = get_fn_expr_argtype(fcinfo->flinfo, 3);

	/* the caller's rights first: nothing remote, nothing learnt before */
	ftname = get_rel_name(ftrelid);
	if (ftname == NULL || get_rel_relkind(ftrelid) != RELKIND_FOREIGN_TABLE)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("relation %u is not a foreign table", ftrelid)));
	if (pg_class_aclcheck(ftrelid, GetUserId(), ACL_SELECT) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for foreign table %s", ftname)));
	ft = GetForeignTable(ftrelid);
	server = GetForeignServer(ft->serverid);
	if (pg_foreign_server_aclcheck(server->serverid, GetUserId(), ACL_USAGE) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for foreign server %s", server->servername),
				 errdetail("migrate._mysql_value reads foreign table %s on its server directly.", ftname)));
	fdw = GetForeignDataWrapper(server->fdwid);
	if (strcmp(fdw->fdwname, "mysql_fdw") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("foreign table %s is not a table of mysql_fdw", ftname),
				 errdetail("Its server %s uses the foreign data wrapper %s.",
						   server->servername, fdw->fdwname)));
	keyatt = get_attnum(ftrelid, key_column);
	if (keyatt == InvalidAttrNumber)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("column \"%s\" of foreign table %s does not exist", key_column, ftname)));
	if (PG_ARGISNULL(3))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("null key of foreign table %s: cannot read column \"%s\"", ftname, column),
				 errhint("migrate._mysql_value reads a row by a key that is never null.")));
	dbname = option_value(ft->options, "dbname");
	table_name = option_value(ft->options, "table_name");
	if (dbname == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_OPTION_NAME_NOT_FOUND),
				 errmsg("foreign table %s has no dbname option", ftname)));
	um = GetUserMapping(GetUserId(), server->serverid);

	/* the key's text (an integer's has only digits and a sign) */
	{
		Oid			outfn;
		bool		varlena;

		getTypeOutputInfo(keytype, &outfn, &varlena);
		keytext = OidOutputFunctionCall(outfn, PG_GETARG_DATUM(3));
	}

	c = mysql_get(server, um, ftname);
	initStringInfo(&sql);
	appendStringInfo(&sql, "SELECT %s FROM %s.%s WHERE %s = ",
					 backquote(to_utf8(column)), backquote(to_utf8(dbname)),
					 backquote(to_utf8(table_name ? table_name : ftname)),
					 backquote(to_utf8(key_column)));
	if (keytype == INT2OID || keytype == INT4OID || keytype == INT8OID)
	{
		/*
		 * an integer as a number: MySQL may compare an integer column
		 * with a string as doubles, which cannot tell bigints over 2^53
		 * apart (its index lookups convert the string exactly)
		 */
		appendStringInfoString(&sql, keytext);
	}
	else
	{
		char	   *k = to_utf8(keytext);
		size_t		len = strlen(k);
		char	   *esc = palloc(len * 2 + 1);

		/* in the connection's character set and sql_mode (NO_BACKSLASH_ESCAPES) */
		mysql_real_escape_string(c->conn, esc, k, len);
		appendStringInfo(&sql, "'%s'", esc);
	}
	appendStringInfoString(&sql, " LIMIT 2");

	if (mysql_real_query(c->conn, sql.data, sql.len) != 0)
		mysql_fail(c, server, ftname, "read a value");
	res = mysql_store_result(c->conn);
	if (res == NULL)
		mysql_fail(c, server, ftname, "read a value");
	nrows = mysql_num_rows(res);
	if (nrows == 1 && (row = mysql_fetch_row(res)) != NULL &&
		(lengths = mysql_fetch_lengths(res)) != NULL)
	{
		if (row[0] != NULL)
		{
			if (lengths[0] > MaxAllocSize - VARHDRSZ)
			{
				mysql_free_result(res);
				c->in_use = false;
				ereport(ERROR,
						(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
						 errmsg("value of column \"%s\" of foreign table %s is too long for a bytea (%lu bytes)",
								column, ftname, lengths[0])));
			}
			result = palloc(VARHDRSZ + lengths[0]);
			SET_VARSIZE(result, VARHDRSZ + lengths[0]);
			memcpy(VARDATA(result), row[0], lengths[0]);
		}
	}
	mysql_free_result(res);
	c->in_use = false;
	c->last_used = GetCurrentTimestamp();
	if (nrows == 0)
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("no row of foreign table %s has %s = %s: cannot read its column \"%s\"",
						ftname, key_column, keytext, column),
				 errdetail("The row was read from MySQL, then deleted or changed before its value was fetched."),
				 errhint("Run the table again when the source is quiet.")));
	if (nrows > 1)
		ereport(ERROR,
				(errcode(ERRCODE_CARDINALITY_VIOLATION),
				 errmsg("several rows of foreign table %s have %s = %s: cannot read its column \"%s\"",
						ftname, key_column, keytext, column),
				 errhint("migrate._mysql_value needs a unique key of the MySQL table.")));
	if (result == NULL)
		PG_RETURN_NULL();
	PG_RETURN_BYTEA_P(result);
}

/* An error left a use open: that connection's state is unknown, drop it. */
static void
mysql_xact_callback(XactEvent event, void *arg)
{
	HASH_SEQ_STATUS scan;
	MysqlConn  *c;

	(void) arg;
	if (event != XACT_EVENT_ABORT && event != XACT_EVENT_PARALLEL_ABORT &&
		event != XACT_EVENT_COMMIT && event != XACT_EVENT_PARALLEL_COMMIT)
		return;
	hash_seq_init(&scan, mysql_hash);
	while ((c = hash_seq_search(&scan)) != NULL)
	{
		if (c->conn && (c->in_use || c->invalidated))
			mysql_close_entry(c);
		c->in_use = false;
	}
}

/* ALTER SERVER / USER MAPPING: close the connections made with it. */
static void
mysql_inval_callback(Datum arg, int cacheid, uint32 hashvalue)
{
	HASH_SEQ_STATUS scan;
	MysqlConn  *c;

	(void) arg;
	hash_seq_init(&scan, mysql_hash);
	while ((c = hash_seq_search(&scan)) != NULL)
	{
		if (c->conn == NULL)
			continue;
		if (hashvalue == 0 ||
			(cacheid == FOREIGNSERVEROID && c->server_hashvalue == hashvalue) ||
			(cacheid == USERMAPPINGOID && c->mapping_hashvalue == hashvalue))
		{
			if (c->in_use)
				c->invalidated = true;
			else
				mysql_close_entry(c);
		}
	}
}

/* At backend exit: say goodbye to every MySQL server (COM_QUIT). */
static void
mysql_exit_callback(int code, Datum arg)
{
	HASH_SEQ_STATUS scan;
	MysqlConn  *c;

	(void) code;
	(void) arg;
	if (mysql_hash == NULL)
		return;
	hash_seq_init(&scan, mysql_hash);
	while ((c = hash_seq_search(&scan)) != NULL)
		mysql_close_entry(c);
}
