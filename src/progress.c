/*-------------------------------------------------------------------------
 *
 * progress.c
 *	  What a run tells the outside while it works: progress lines for
 *	  the waiting migrate_run() call (a worker's, and the live lines of the
 *	  tables being loaded), the peak of a worker's private memory, and
 *	  the rows of a range's first batch under a byte budget (before any
 *	  memory was measured).
 *
 * Progress lines go to a ring in the run's shared segment (launch.c prints
 * them as NOTICEs) and to the server log.  The peak memory is kept in the
 * run's row when it ends (catalog.c).  Both are used by every layer of a
 * worker (worker.c, load.c, defer.c, units.c), which is why they live in
 * none of them.
 *
 * Live progress (migrate.progress_interval) is written by the waiting
 * caller, not by the workers: every interval, launch.c's wait loop calls
 * migrate_progress_report(), which reads what the workers have committed
 * (migrate.run_table: the sums over all of a table's key-range units) and
 * queues one line per table being loaded.  So a table loaded by several
 * workers gets one line with its total, a batch that takes longer than the
 * interval (a slow source) does not silence the lines (they say how far
 * the committed batches got, and the rate falls), and the workers pay
 * nothing for it.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/snapmgr.h"

#include "migrate.h"

/* at most this many tables get a line per interval (the ring holds 32) */
#define MIGRATE_PROGRESS_MAX_TABLES	16

static void format_eta(char *buf, size_t len, double seconds);
static void report_tables(MigrateRunShared *shared, int64 run_id);

static int64 peak_anon_kb = 0;	/* highest RssAnon seen */
static int64 peak_private_kb = 0;	/* highest private peak, samples or not */

/*
 * Queue a progress line for the waiting backend (which prints it as a
 * NOTICE) and write it to the server log.  shared NULL (a helper): the log
 * only.
 */
void
migrate_worker_notice(MigrateRunShared *shared, const char *fmt,...)
{
	char		buf[MIGRATE_NOTICE_MAXLEN];
	va_list		ap;
	Latch	   *latch;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);

	elog(LOG, "migrate: %s", buf);
	if (shared == NULL)
		return;

	SpinLockAcquire(&shared->mutex);
	strlcpy(shared->notices[shared->notices_written % MIGRATE_NOTICE_SLOTS], buf,
			MIGRATE_NOTICE_MAXLEN);
	shared->notices_written++;
	latch = shared->caller_latch;
	SpinLockRelease(&shared->mutex);
	if (latch)
		SetLatch(latch);
}

/*
 * Sample this process's private memory (RssAnon) and keep the peak.  The
 * bulk of a backend's RSS is shared buffers, which say nothing about how
 * much the run itself holds.
 */
void
migrate_worker_sample_memory(void)
{
	FILE	   *f = fopen("/proc/self/status", "r");
	char		line[256];

	if (f == NULL)
		return;
	while (fgets(line, sizeof(line), f))
	{
		long		kb;

		if (sscanf(line, "RssAnon: %ld kB", &kb) == 1)
		{
			if (kb > peak_anon_kb)
				peak_anon_kb = kb;
			break;
		}
	}
	fclose(f);
}

/* The peak sampled so far, in kB (0: never sampled). */
int64
migrate_worker_peak_memory_kb(void)
{
	return peak_anon_kb;
}

/* Read the named "Name:   N kB" fields of /proc/self/status (-1: absent). */
static void
read_status(const char *const *names, int64 *kb, int n)
{
	FILE	   *f = fopen("/proc/self/status", "r");
	char		line[256];

	for (int i = 0; i < n; i++)
		kb[i] = -1;
	if (f == NULL)
		return;
	while (fgets(line, sizeof(line), f))
	{
		for (int i = 0; i < n; i++)
		{
			size_t		len = strlen(names[i]);
			long		v;

			if (strncmp(line, names[i], len) == 0 && line[len] == ':' &&
				sscanf(line + len + 1, " %ld", &v) == 1)
				kb[i] = v;
		}
	}
	fclose(f);
}

/*
 * Start a batch's memory measure: give the allocator's free memory back
 * (glibc keeps what a wide batch freed, which the next batch would reuse
 * unseen) and reset the process's high-water mark (VmHWM) to its current
 * RSS (Linux: "5" into clear_refs), so that migrate_worker_memory_peak()
 * sees this batch's peak, also one no sample catches (a FDW's client
 * buffers, freed before the batch ends).  Returns the current RssAnon in
 * kB (-1: unknown).
 */
int64
migrate_worker_memory_reset(void)
{
	static const char *const names[1] = {"RssAnon"};
	int64		kb[1];
	FILE	   *f;

	(void) migrate_worker_memory_peak();	/* keep the peak being reset */
#ifdef __GLIBC__
	(void) malloc_trim(0);
#endif
	f = fopen("/proc/self/clear_refs", "w");
	if (f != NULL)
	{
		fputs("5", f);
		fclose(f);
	}
	read_status(names, kb, 1);
	return kb[0];
}

/*
 * The private memory peak since the last reset, in kB (-1: unknown): the
 * RSS high-water mark less the shared (buffers) and file pages, which only
 * grow while a backend works; so a lower bound of the anonymous peak.
 * Kept for peak_rss_kb.
 */
int64
migrate_worker_memory_peak(void)
{
	static const char *const names[4] = {"VmHWM", "RssShmem", "RssFile", "RssAnon"};
	int64		kb[4];
	int64		peak;

	read_status(names, kb, 4);
	if (kb[0] < 0 || kb[1] < 0 || kb[2] < 0)
		return -1;
	peak = Max(kb[0] - kb[1] - kb[2], kb[3]);
	if (peak > peak_private_kb)
		peak_private_kb = peak;
	return peak;
}

/* The process's private peak so far, in kB (run.peak_rss_kb). */
int64
migrate_worker_peak_rss_kb(void)
{
	(void) migrate_worker_memory_peak();
	return Max(peak_private_kb, peak_anon_kb);
}

/* An ETA as "42 s", "3 min 5 s" or "2 h 10 min" into buf. */
static void
format_eta(char *buf, size_t len, double seconds)
{
	int64		s = (int64) ceil(seconds);

	if (s < 60)
		snprintf(buf, len, INT64_FORMAT " s", s);
	else if (s < 3600)
		snprintf(buf, len, INT64_FORMAT " min " INT64_FORMAT " s", s / 60, s % 60);
	else
		snprintf(buf, len, INT64_FORMAT " h " INT64_FORMAT " min", s / 3600, (s % 3600) / 60);
}

/*
 * Queue the live progress lines of run run_id: one per table being loaded
 * (state running, with key-range units), from what its workers have
 * committed.  Needs a transaction; reads with a snapshot of its own, the
 * latest, so that a caller in REPEATABLE READ sees the workers' commits
 * too.  Reads only migrate's catalog, never a target (whose locks the
 * workers may need).
 */
static void
report_tables(MigrateRunShared *shared, int64 run_id)
{
	Oid			argtypes[2] = {INT8OID, INT4OID};
	Datum		args[2] = {Int64GetDatum(run_id), Int32GetDatum(MIGRATE_PROGRESS_MAX_TABLES)};
	SPIPlanPtr	plan;
	int			ret;
	int			guc_level;

	if ((ret = SPI_connect()) != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed: %s", SPI_result_code_string(ret));
	plan = SPI_prepare("SELECT rt.target::pg_catalog.oid, rt.rows_read, rt.rows_rejected,"
					   "       rt.estimated_rows, rt.source_count,"
					   "       pg_catalog.date_part('epoch', pg_catalog.clock_timestamp() - rt.started_at),"
					   "       u.loads, u.loads_done, u.deferred, u.deferred_done,"
					   "       pg_catalog.count(*) OVER (),"
					   "       (SELECT r.search_path FROM migrate.run r WHERE r.run_id = $1)"
					   "  FROM migrate.run_table rt,"
					   "       LATERAL (SELECT pg_catalog.count(*) FILTER (WHERE rr.kind = 'load') AS loads,"
					   "                       pg_catalog.count(*) FILTER (WHERE rr.kind = 'load'"
					   "                                                     AND rr.state = 'succeeded') AS loads_done,"
					   "                       pg_catalog.count(*) FILTER (WHERE rr.kind IN ('index', 'fk')) AS deferred,"
					   "                       pg_catalog.count(*) FILTER (WHERE rr.kind IN ('index', 'fk')"
					   "                                                     AND rr.state = 'succeeded') AS deferred_done"
					   "                  FROM migrate.run_range rr"
					   "                 WHERE rr.run_id = rt.run_id AND rr.target = rt.target) u"
					   " WHERE rt.run_id = $1 AND rt.state = 'running' AND rt.started_at IS NOT NULL"
					   "   AND u.loads > 0"
					   " ORDER BY rt.load_order LIMIT $2",
					   2, argtypes);
	if (plan == NULL)
		elog(ERROR, "preparing the progress query failed: %s", SPI_result_code_string(SPI_result));
	ret = SPI_execute_snapshot(plan, args, NULL, GetLatestSnapshot(), InvalidSnapshot,
							   true, false, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "reading migrate.run_table failed: %s", SPI_result_code_string(ret));

	/*
	 * Tables are named as the run's workers name them (the "loaded" line):
	 * under the run's search_path, set only while the names are made (no
	 * SQL runs under it).
	 */
	guc_level = NewGUCNestLevel();
	if (SPI_processed > 0)
	{
		char	   *path = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 12);

		if (path != NULL)
			(void) set_config_option("search_path", path, PGC_USERSET, PGC_S_SESSION,
									 GUC_ACTION_SAVE, true, 0, false);
	}
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		bool		est_null;
		bool		count_null;
		char	   *target = DatumGetCString(DirectFunctionCall1(regclassout,
																 SPI_getbinval(tup, desc, 1, &isnull)));
		int64		done = DatumGetInt64(SPI_getbinval(tup, desc, 2, &isnull));
		int64		rejected = DatumGetInt64(SPI_getbinval(tup, desc, 3, &isnull));
		int64		estimate = DatumGetInt64(SPI_getbinval(tup, desc, 4, &est_null));
		int64		source_count = DatumGetInt64(SPI_getbinval(tup, desc, 5, &count_null));
		double		elapsed = DatumGetFloat8(SPI_getbinval(tup, desc, 6, &isnull));
		int64		loads = DatumGetInt64(SPI_getbinval(tup, desc, 7, &isnull));
		int64		loads_done = DatumGetInt64(SPI_getbinval(tup, desc, 8, &isnull));
		int64		deferred = DatumGetInt64(SPI_getbinval(tup, desc, 9, &isnull));
		int64		deferred_done = DatumGetInt64(SPI_getbinval(tup, desc, 10, &isnull));
		int64		ntables = DatumGetInt64(SPI_getbinval(tup, desc, 11, &isnull));
		double		rate = elapsed > 0 ? done / elapsed : 0;

		if (loads_done == loads && !count_null)
		{
			/* every range is read: source_count is the table's exact count */
			if (deferred > deferred_done)
				migrate_worker_notice(shared, "loading %s: " INT64_FORMAT " of " INT64_FORMAT " rows (100%%), %.0f rows/s, " INT64_FORMAT " rejected; indexes and foreign keys: " INT64_FORMAT " of " INT64_FORMAT " restored",
									  target, done, source_count, rate, rejected,
									  deferred_done, deferred);
			else
				migrate_worker_notice(shared, "loading %s: " INT64_FORMAT " of " INT64_FORMAT " rows (100%%), %.0f rows/s, " INT64_FORMAT " rejected",
									  target, done, source_count, rate, rejected);
		}
		else if (est_null || estimate <= 0)
			migrate_worker_notice(shared, "loading %s: " INT64_FORMAT " rows (source count unknown), %.0f rows/s, " INT64_FORMAT " rejected",
								  target, done, rate, rejected);
		else if (done > estimate)
			migrate_worker_notice(shared, "loading %s: " INT64_FORMAT " rows (more than the ~" INT64_FORMAT " estimated), %.0f rows/s, " INT64_FORMAT " rejected",
								  target, done, estimate, rate, rejected);
		else
		{
			char		eta[64];
			double		percent = Min(99.9, 100.0 * done / estimate);

			if (rate > 0)
				format_eta(eta, sizeof(eta), (estimate - done) / rate);
			else
				strlcpy(eta, "unknown", sizeof(eta));
			migrate_worker_notice(shared, "loading %s: " INT64_FORMAT " of ~" INT64_FORMAT " rows (%.1f%%), %.0f rows/s, ETA %s, " INT64_FORMAT " rejected",
								  target, done, estimate, percent, rate, eta, rejected);
		}
		if (i == SPI_processed - 1 && ntables > (int64) SPI_processed)
			migrate_worker_notice(shared, "loading " INT64_FORMAT " more tables of run " INT64_FORMAT ": see migrate.progress",
								  ntables - (int64) SPI_processed, run_id);
	}
	AtEOXact_GUC(true, guc_level);

	if ((ret = SPI_finish()) != SPI_OK_FINISH)
		elog(ERROR, "SPI_finish failed: %s", SPI_result_code_string(ret));
}

/*
 * The waiting caller of run run_id (launch.c), every
 * migrate.progress_interval: queue the live progress lines of its tables
 * (report_tables).  In the caller's transaction, as the caller (a member
 * of the plan's owner: row-level security shows it the run).
 *
 * The lines must never change how the run ends: the read runs in a
 * subtransaction (rolled back: the caller keeps no lock on the catalog
 * and no memory from it over a long wait), and an error there (other than a cancel, which the wait
 * passes on to the run) is reported as a WARNING and returns false: the
 * caller stops asking.  Returns true otherwise.
 */
bool
migrate_progress_report(MigrateRunShared *shared, int64 run_id)
{
	MemoryContext oldcxt = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;
	volatile bool ok = true;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(oldcxt);
	PG_TRY();
	{
		report_tables(shared, run_id);
		/* read only: rolling back frees its memory and locks at once */
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcxt);
		CurrentResourceOwner = oldowner;
	}
	PG_CATCH();
	{
		ErrorData  *edata = migrate_abort_subxact(oldcxt, oldowner);

		/* a cancel (Ctrl-C, statement_timeout) is the wait's, not ours */
		if (edata->sqlerrcode == ERRCODE_QUERY_CANCELED || edata->elevel >= FATAL)
			ReThrowError(edata);
		ereport(WARNING,
				(errcode(edata->sqlerrcode),
				 errmsg("live progress of migration run " INT64_FORMAT " stopped: %s", run_id, edata->message),
				 errdetail("The run goes on; migrate.progress shows where it stands."),
				 errhint("Set migrate.progress_interval to 0 to turn the progress lines off.")));
		FreeErrorData(edata);
		ok = false;
	}
	PG_END_TRY();
	return ok;
}

/*
 * Rows of a range's first batch: batch_size, or with a byte budget as many
 * rows as the source's statistics (pg_stats of the source relation: a
 * local table or an analyzed foreign table) say fit in it.  Without them,
 * a source whose FDW buffers a whole result set (mysql_fdw) starts with as
 * many rows as fit at the widest its column types allow (fixed-size types,
 * varchar(n) as 4 bytes a character, numeric(p) by its digits, numeric
 * as MySQL's widest DECIMAL), or with few
 * rows (MIGRATE_FIRST_ROWS) when a column is unbounded (text, bytea);
 * the others (they stream) with batch_size; later batches adapt to what
 * they measure.  In a transaction, with SPI.
 */
#define MIGRATE_FIRST_ROWS	16

int64
migrate_first_rows_goal(MigrateWork *w, MigrateTableLoad *tl)
{
	Oid			argtypes[1] = {TEXTOID};
	Datum		args[1];
	bool		isnull;
	Datum		width;
	Datum		buffers;
	int			ret;

	if (w->batch_bytes <= 0)
		return w->batch_size;
	args[0] = CStringGetTextDatum(tl->source);
	ret = SPI_execute_with_args("SELECT (SELECT pg_catalog.sum(st.avg_width)::pg_catalog.float8"
								"          FROM pg_catalog.pg_stats st"
								"          JOIN pg_catalog.pg_namespace n ON n.nspname = st.schemaname"
								"          JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid AND c.relname = st.tablename"
								"         WHERE c.oid = pg_catalog.to_regclass($1)),"
								"       EXISTS (SELECT FROM pg_catalog.pg_foreign_table ft"
								"          JOIN pg_catalog.pg_foreign_server fs ON fs.oid = ft.ftserver"
								"          JOIN pg_catalog.pg_foreign_data_wrapper fw ON fw.oid = fs.srvfdw"
								"         WHERE ft.ftrelid = pg_catalog.to_regclass($1) AND fw.fdwname = 'mysql_fdw'),"
								/* NULL when a column has no bound */
								"       (SELECT CASE WHEN pg_catalog.count(*) = pg_catalog.count(w) THEN pg_catalog.sum(w) END"
								"          FROM (SELECT CASE WHEN t.typlen > 0 THEN t.typlen"
								"                       WHEN t.oid IN ('pg_catalog.varchar'::pg_catalog.regtype, 'pg_catalog.bpchar'::pg_catalog.regtype)"
								"                            AND a.atttypmod > 4 THEN 4 * (a.atttypmod - 4) + 4"
								"                       WHEN t.oid = 'pg_catalog.numeric'::pg_catalog.regtype AND a.atttypmod > 4"
								"                            THEN ((a.atttypmod - 4) >> 16) / 2 + 16"
								/* mysql_fdw imports DECIMAL as numeric: MySQL's has at most 65 digits */
								"                       WHEN t.oid = 'pg_catalog.numeric'::pg_catalog.regtype THEN 48"
								"                       END::pg_catalog.float8 AS w"
								"                  FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_type t ON t.oid = a.atttypid"
								"                 WHERE a.attrelid = pg_catalog.to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped) ws)",
								1, argtypes, args, NULL, true, 1);
	if (ret != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "reading the statistics of %s failed: %s", tl->source,
			 SPI_result_code_string(ret));
	width = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	if (!isnull && DatumGetFloat8(width) > 0)
		/* a row in memory takes more than its stored width: count it twice */
		return (int64) Max(1.0, Min((double) w->batch_size,
									w->batch_bytes / (2.0 * DatumGetFloat8(width))));
	buffers = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull);
	if (DatumGetBool(buffers))
	{
		width = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3, &isnull);
		if (!isnull && DatumGetFloat8(width) > 0)
			return (int64) Max(1.0, Min((double) w->batch_size,
										w->batch_bytes / (2.0 * DatumGetFloat8(width))));
		return Min((int64) w->batch_size, MIGRATE_FIRST_ROWS);
	}
	return w->batch_size;
}
