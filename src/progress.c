/*-------------------------------------------------------------------------
 *
 * progress.c
 *	  What a worker tells the outside while it works: progress lines for
 *	  the waiting migrate_run() call, and the peak of its private memory.
 *
 * Progress lines go to a ring in the run's shared segment (launch.c prints
 * them as NOTICEs) and to the server log.  The peak memory is kept in the
 * run's row when it ends (catalog.c).  Both are used by every layer of a
 * worker (worker.c, load.c, defer.c, units.c), which is why they live in
 * none of them.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <stdio.h>

#include "migrate.h"

static int64 peak_anon_kb = 0;	/* highest RssAnon seen */

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
