/*
 * updates/0.11--0.12.sql: the deltas from 0.11 to 0.12 (issue 17: more of
 * another loader's test cases read as it reads them).  Same rules as
 * updates/0.2--0.3.sql: DDL and data fix-ups only; the functions follow.
 */

-- ==== file sources: ragged_lines ====
-- migrate_file() takes one more argument, after the others; foreign tables
-- declared before have no ragged_lines option, which reads as false.
-- (IF EXISTS: an update from before 0.11 reaches here without it.)
DROP FUNCTION IF EXISTS migrate_file(text, text, text, text, boolean, text, text, text, text, text,
                           text[], integer, text, text, jsonb, text, boolean, boolean, text);
