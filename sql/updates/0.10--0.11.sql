/*
 * updates/0.10--0.11.sql: the deltas from 0.10 to 0.11 (issue 17: file
 * sources read as another loader's test cases need them).  Same rules as
 * updates/0.2--0.3.sql: DDL and data fix-ups only; the functions follow.
 */

-- ==== file sources: trim_blanks, strict_quotes, nul ====
-- migrate_file() takes three more arguments (after the others, so calls
-- by position still mean what they meant); the foreign tables 0.10
-- declared have none of the new options, which read as their defaults.
-- (IF EXISTS: an update from before 0.10 reaches here without it.)
DROP FUNCTION IF EXISTS migrate_file(text, text, text, text, boolean, text, text, text, text, text,
                           text[], integer, text, text, jsonb, text);
