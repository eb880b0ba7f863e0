/*
 * updates/0.8--0.9.sql: the deltas from 0.8 to 0.9 (issue 15: verify from
 * the run's own checksums; issue 18: batches bounded by bytes, the
 * process's real peak memory).  Same rules as updates/0.2--0.3.sql: DDL
 * and data fix-ups only; the functions follow.  Every change here has its
 * twin in sql/catalog.sql (test/sql/99_upgrade.sql compares them).
 */

-- ==== verify: checksums as loaded ====
ALTER TABLE migrate.run_table ADD COLUMN loaded_checksum numeric;
-- migrate_verify() gains reread (a new signature: the old one would make
-- a call by position ambiguous)
DROP FUNCTION IF EXISTS migrate_verify(text, bigint, interval);
DROP FUNCTION IF EXISTS migrate._migrate_verify(text, bigint, interval);
DROP FUNCTION IF EXISTS migrate._verify_table(text, migrate.run, regclass, interval);
ALTER TYPE migrate._verify_column ADD ATTRIBUTE loaded_value text;
DROP FUNCTION IF EXISTS migrate._verify_foreign_key(bigint, regclass, name[], regclass, name[], text);

-- ==== memory: batches bounded by bytes ====
ALTER TABLE migrate.run
    ADD COLUMN batch_bytes bigint NOT NULL DEFAULT 0 CHECK (batch_bytes >= 0),
    ADD COLUMN peak_rss_kb bigint;
