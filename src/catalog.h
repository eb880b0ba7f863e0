/*-------------------------------------------------------------------------
 *
 * catalog.h
 *	  What catalog.c shares with catalog_strategies.c, the only other file
 *	  that writes migrate's state tables: the statement runner that writes
 *	  as the extension's owner, SPI connection helpers and the caller check
 *	  of the SQL-callable writes.  No other C file includes this.
 *
 *-------------------------------------------------------------------------
 */
#ifndef MIGRATE_CATALOG_H
#define MIGRATE_CATALOG_H

/*
 * Run sql as the extension's owner (search_path pinned, names qualified),
 * in the caller's transaction with SPI connected; errors unless SPI gives
 * expected (what names the write).  Returns SPI_processed.
 */
extern uint64 migrate_catalog_exec(const char *sql, int nargs, Oid *argtypes, Datum *args,
								   const char *nulls, int expected, const char *what);
extern void migrate_catalog_spi_connect(void);
extern void migrate_catalog_spi_finish(void);

/*
 * As the caller: run_id exists for it (42704: row-level security hides
 * other owners' runs) and it is a member of the run's owner (42501).
 * Needs SPI.  Returns the run's plan.
 */
extern char *migrate_catalog_check_run_caller(int64 run_id);

#endif							/* MIGRATE_CATALOG_H */
