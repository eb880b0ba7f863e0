/* migrate--0.1--0.2.sql: upgrade from 0.1 to 0.2 */

\echo Use "ALTER EXTENSION migrate UPDATE TO '0.2'" to load this file. \quit

/*
 * The install script of 0.2 is this file appended to migrate--0.1.sql (see
 * the Makefile), so every statement here must work both on a fresh 0.1 and
 * on a database upgraded from 0.1: CREATE OR REPLACE for functions, ADD
 * COLUMN for tables.
 */

-- ==== engine: resume, parallel ranges, progress (issue 3) ====


-- ==== end of engine section ====




-- ==== verification, diff and report (issue 4) ====


-- ==== end of verification section ====




-- ==== assessment and automap (issue 5) ====


-- ==== end of assessment section ====
