/*-------------------------------------------------------------------------
 *
 * remote.h
 *	  libpq connections to the servers of postgres_fdw foreign tables
 *	  (src/remote.c, the only file that opens them).
 *
 * A caller gets the cached connection of a foreign table's server (of
 * postgres_fdw) and of the current user's mapping, after postgres_fdw's
 * password rule; sends one statement at a time (or a COPY) on it, in a
 * read-only remote session, and
 * reads the results; every wait answers interrupts and, in a run's
 * workers, the run's stop check.  After an error in the middle of a use,
 * remote.c cancels the remote statement and drops the connection (also
 * from its transaction callbacks); the next use connects anew.  A handle
 * must not be used after an error was raised through it.
 *
 *-------------------------------------------------------------------------
 */
#ifndef MIGRATE_REMOTE_H
#define MIGRATE_REMOTE_H

#include "libpq-fe.h"

struct MigrateWork;

/* a cached connection in use by one caller (opaque) */
typedef struct MigrateRemote MigrateRemote;

/* how a failed remote statement is reported */
typedef enum MigrateRemoteErrors
{
	MIGRATE_REMOTE_WRAP,		/* "could not <what> for foreign table t: ..." */
	MIGRATE_REMOTE_PASS			/* the remote SQLSTATE, message and detail */
} MigrateRemoteErrors;

/*
 * A run's stop check (worker.c's migrate_work_should_stop): NULL to go on,
 * or the state the run stops in.  Called with SPI connected, at most once
 * a second while a remote wait lasts.
 */
typedef const char *(*MigrateRemoteStopCheck) (struct MigrateWork *w);

extern MigrateRemote *migrate_remote_get(Oid ftrelid, const char *hint,
										 MigrateRemoteErrors errors);
extern void migrate_remote_command(MigrateRemote *r, const char *sql, const char *what);
extern void migrate_remote_send(MigrateRemote *r, const char *sql, const char *what);
extern void migrate_remote_single_row(MigrateRemote *r, const char *what);
extern PGresult *migrate_remote_result(MigrateRemote *r, const char *what);
extern void migrate_remote_fail(MigrateRemote *r, PGresult *res, const char *what) pg_attribute_noreturn();
extern void migrate_remote_copy_begin(MigrateRemote *r, const char *sql, const char *what);
extern int	migrate_remote_copy_data(MigrateRemote *r, char **buf);
extern void migrate_remote_release(MigrateRemote *r);
extern void migrate_remote_discard(MigrateRemote *r);

extern void migrate_remote_set_stop_check(MigrateRemoteStopCheck check, struct MigrateWork *w);
extern const char *migrate_remote_stopped(void);

#endif							/* MIGRATE_REMOTE_H */
