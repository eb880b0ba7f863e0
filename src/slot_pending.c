/*
 * slot_pending.c: placeholders of slot.c (capture => 'slot') until it
 * lands; each refuses with 0A000.  Removed when src/slot.c is merged.
 */
#include "postgres.h"

#include "slot.h"

#pragma GCC diagnostic ignored "-Wunused-parameter"

static void
not_yet(void)
{
	ereport(ERROR,
			(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			 errmsg("capture slot is not available in this build"),
			 errhint("Use capture => 'trigger', 'watermark' or 'diff'.")));
}

char *
migrate_slot_name(const char *plan)
{
	not_yet();
	return NULL;
}

char *
migrate_slot_create(Oid ftrelid, const char *slot_name)
{
	not_yet();
	return NULL;
}

bool
migrate_slot_exists(Oid ftrelid, const char *slot_name)
{
	not_yet();
	return false;
}

void
migrate_slot_drop(Oid ftrelid, const char *slot_name)
{
	not_yet();
}

char *
migrate_slot_current_lsn(Oid ftrelid)
{
	not_yet();
	return NULL;
}

char *
migrate_slot_read(Oid ftrelid, const char *slot_name, const char *key_column,
				  const char *after, const char *upto, int64 max_changes,
				  MigrateSlotKeySink sink, void *arg, int64 *changes)
{
	not_yet();
	return NULL;
}

void
migrate_slot_advance(Oid ftrelid, const char *slot_name, const char *lsn)
{
	not_yet();
}
