/*
 * updates/0.7--0.8.sql: the deltas from 0.7 to 0.8 (issue 15: one-call
 * database migration, tables created from the source catalog, live
 * progress, report charts).  Same rules as updates/0.2--0.3.sql: DDL and
 * data fix-ups only; the functions follow.  Every change here has its twin
 * in sql/catalog.sql (test/sql/99_upgrade.sql compares them).
 */

-- ==== automap: create_missing ====
-- migrate_automap(plan) gains create_missing (a new signature: the old one
-- would make a one-argument call ambiguous)
DROP FUNCTION IF EXISTS migrate_automap(text);
DROP FUNCTION IF EXISTS migrate._migrate_automap(text);

-- ==== progress ====

-- ==== report ====
