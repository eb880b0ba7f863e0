/*-------------------------------------------------------------------------
 *
 * owner.h
 *	  Who a call of migrate runs as (src/owner.c): a plan's owner, the
 *	  membership check, switching to the owner for the owner's SQL and to
 *	  the extension's owner for catalog writes, and the caller's
 *	  search_path under pinned functions.
 *
 *-------------------------------------------------------------------------
 */
#ifndef MIGRATE_OWNER_H
#define MIGRATE_OWNER_H

/* what migrate_become_* changed, for migrate_restore_identity */
typedef struct MigrateIdentity
{
	Oid			userid;
	int			sec_context;
	int			guc_nestlevel;	/* 0: no GUC level was opened */
} MigrateIdentity;

/* the search_path every function of migrate pins */
#define MIGRATE_SAFE_SEARCH_PATH "pg_catalog, pg_temp"

/*
 * The owner of a plan, read as the current user (row-level security: a
 * plan the caller may not see does not exist).  InvalidOid if missing_ok
 * and there is no such plan; else raises 42704.  Needs a transaction.
 */
extern Oid	migrate_plan_owner(const char *plan, bool missing_ok);

/* The owner of a run (migrate.run.owner), likewise. */
extern Oid	migrate_run_owner(int64 run_id, bool missing_ok);

/* Raises 42501 unless the current user is a member of owner. */
extern void migrate_check_member(Oid owner, const char *plan);

/*
 * Become the plan's owner: SQL run until migrate_restore_identity runs as
 * owner and cannot SET ROLE or SET SESSION AUTHORIZATION its way back
 * (SECURITY_LOCAL_USERID_CHANGE).  Transaction abort restores the identity
 * too.
 */
extern void migrate_become_owner(Oid owner, MigrateIdentity *saved);

/*
 * Become the extension's owner (the owner of the catalog tables), with
 * search_path pinned to MIGRATE_SAFE_SEARCH_PATH, for writes of a run's
 * state that no other role may make (src/catalog.c).  Only migrate's own,
 * fully qualified SQL may run until migrate_restore_identity.
 */
extern void migrate_become_catalog_owner(MigrateIdentity *saved);

extern void migrate_restore_identity(MigrateIdentity *saved);

/*
 * The search_path of whoever called the innermost function of migrate that
 * pins MIGRATE_SAFE_SEARCH_PATH (the value before those function-level
 * settings), palloc'd.  The current value if no such level is open.
 */
extern char *migrate_caller_search_path(void);

/*
 * Whether migrate_call_as_owner is running implementation impl (such as
 * "_migrate_verify") as its innermost call, or any one when impl is NULL:
 * the writers of what those calls found (catalog.c) take no direct call.
 */
extern bool migrate_in_own_call(const char *impl);

/* Raise 42501 unless a superuser or migrate's own call impl (any: NULL) calls writer. */
extern void migrate_check_own_writer(const char *writer, const char *impl, const char *public_function);

/* migrate._catalog_event()'s check: own calls, or migrate_plan()'s true "plan defined". */
extern void migrate_check_event_writer(const char *plan_without_run, const char *event,
									   const char *details);

/*
 * Set the plan's settings (options->'settings', read as the current user)
 * for the rest of the session: a run's workers, after becoming the owner.
 */
extern void migrate_set_plan_settings(const char *plan);

#endif							/* MIGRATE_OWNER_H */
