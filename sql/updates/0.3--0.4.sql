/*
 * updates/0.3--0.4.sql: the deltas from 0.3 to 0.4 (issue 11, least
 * privilege): plan and value map owners, the run's owner and
 * maintenance_work_mem, sensitive columns, row-level security on every
 * catalog table and the grants that go with it.  Same rules as
 * updates/0.2--0.3.sql: DDL and data fix-ups only; the functions follow.
 */

-- ==== owners ====
ALTER TABLE migrate.plan
    ADD COLUMN owner regrole NOT NULL DEFAULT pg_catalog.to_regrole(pg_catalog.quote_ident(CURRENT_USER));
-- the plans of 0.3 belong to the role that created them if it still
-- exists, else to the extension's owner (the ADD COLUMN gave them the
-- role running the upgrade)
UPDATE migrate.plan p
   SET owner = coalesce(pg_catalog.to_regrole(pg_catalog.quote_ident(p.created_by)),
                        (SELECT e.extowner::regrole FROM pg_catalog.pg_extension e
                          WHERE e.extname = 'migrate'));

CREATE TABLE migrate.lookup_map (
    map_name    text PRIMARY KEY CHECK (map_name <> ''),
    owner       regrole DEFAULT pg_catalog.to_regrole(pg_catalog.quote_ident(CURRENT_USER)),
    created_at  timestamptz NOT NULL DEFAULT now()
);
-- maps of 0.3 recorded no creator: they stay readable by every run (owner
-- NULL) and only a superuser changes them, or gives them an owner
INSERT INTO migrate.lookup_map (map_name, owner)
SELECT DISTINCT v.map_name, NULL::regrole FROM migrate.value_map v;
ALTER TABLE migrate.value_map ADD FOREIGN KEY (map_name) REFERENCES migrate.lookup_map
    ON UPDATE CASCADE ON DELETE CASCADE;

CREATE TABLE migrate.sensitive_column (
    plan          text NOT NULL,
    target        regclass NOT NULL,
    source_column name NOT NULL,
    PRIMARY KEY (plan, target, source_column),
    FOREIGN KEY (plan, target) REFERENCES migrate.table_map
        ON UPDATE CASCADE ON DELETE CASCADE
);
SELECT pg_catalog.pg_extension_config_dump('migrate.lookup_map', '');
SELECT pg_catalog.pg_extension_config_dump('migrate.sensitive_column', '');

ALTER TABLE migrate.run
    DROP CONSTRAINT run_parallel_check,
    ADD CONSTRAINT run_parallel_check CHECK (parallel >= 1 AND parallel <= 64),
    ADD COLUMN owner regrole,
    ADD COLUMN maintenance_work_mem text;
-- a run of 0.3 ran as the role that started it
UPDATE migrate.run r
   SET owner = coalesce((SELECT p.owner FROM migrate.plan p WHERE p.plan_name = r.plan),
                        pg_catalog.to_regrole(pg_catalog.quote_ident(r.run_by)));

-- ==== row-level security and grants (as in sql/catalog.sql) ====
REVOKE ALL ON migrate.plan, migrate.table_map, migrate.column_map, migrate.value_map,
              migrate.rule, migrate.foreign_key, migrate.run, migrate.run_table,
              migrate.run_range, migrate.reject, migrate.event, migrate.verification,
              migrate.diff_result, migrate.profile_result FROM PUBLIC;

/* ---------------------------------------------------------------------
 * Who may do what (docs/security.md).  Row-level security on every table:
 * a role sees and changes only rows of plans (and value maps) whose owner
 * it is a member of; superusers and the extension's owner (the owner of
 * these tables, which src/catalog.c writes as) bypass it.  This holds
 * however the tables are granted.
 *
 * - Plans and mappings: every role may define plans of its own (SELECT,
 *   INSERT, UPDATE, DELETE granted to PUBLIC, limited to its own rows).
 * - A run's state (run, run_table, run_range, event) is written only by
 *   migrate itself (src/catalog.c): everyone may read the rows of their own
 *   plans, nobody else may write them, so what a worker reads back from
 *   them was written by migrate; the event log is append-only, its who and
 *   when set by the server.
 * - Results (reject, verification, diff_result, profile_result) are
 *   written by the owner's own runs and calls, so the owner's role may add
 *   them (and delete its own diffs and profiles).
 * --------------------------------------------------------------------- */

ALTER TABLE migrate.plan ENABLE ROW LEVEL SECURITY;
CREATE POLICY owner_member ON migrate.plan
    USING (pg_catalog.pg_has_role(owner, 'MEMBER'))
    WITH CHECK (pg_catalog.pg_has_role(owner, 'MEMBER'));

ALTER TABLE migrate.table_map ENABLE ROW LEVEL SECURITY;
CREATE POLICY owner_member ON migrate.table_map
    USING (EXISTS (SELECT FROM migrate.plan p WHERE p.plan_name = table_map.plan));
ALTER TABLE migrate.column_map ENABLE ROW LEVEL SECURITY;
CREATE POLICY owner_member ON migrate.column_map
    USING (EXISTS (SELECT FROM migrate.plan p WHERE p.plan_name = column_map.plan));
ALTER TABLE migrate.rule ENABLE ROW LEVEL SECURITY;
CREATE POLICY owner_member ON migrate.rule
    USING (EXISTS (SELECT FROM migrate.plan p WHERE p.plan_name = rule.plan));
ALTER TABLE migrate.foreign_key ENABLE ROW LEVEL SECURITY;
CREATE POLICY owner_member ON migrate.foreign_key
    USING (EXISTS (SELECT FROM migrate.plan p WHERE p.plan_name = foreign_key.plan));
ALTER TABLE migrate.sensitive_column ENABLE ROW LEVEL SECURITY;
CREATE POLICY owner_member ON migrate.sensitive_column
    USING (EXISTS (SELECT FROM migrate.plan p WHERE p.plan_name = sensitive_column.plan));

-- value maps: a map without owner (made before 0.4) is read by all, changed by none
ALTER TABLE migrate.lookup_map ENABLE ROW LEVEL SECURITY;
CREATE POLICY reader ON migrate.lookup_map FOR SELECT
    USING (owner IS NULL OR pg_catalog.pg_has_role(owner, 'MEMBER'));
CREATE POLICY owner_member ON migrate.lookup_map
    USING (owner IS NOT NULL AND pg_catalog.pg_has_role(owner, 'MEMBER'))
    WITH CHECK (owner IS NOT NULL AND pg_catalog.pg_has_role(owner, 'MEMBER'));
ALTER TABLE migrate.value_map ENABLE ROW LEVEL SECURITY;
CREATE POLICY reader ON migrate.value_map FOR SELECT
    USING (EXISTS (SELECT FROM migrate.lookup_map m WHERE m.map_name = value_map.map_name));
CREATE POLICY owner_member ON migrate.value_map
    USING (EXISTS (SELECT FROM migrate.lookup_map m WHERE m.map_name = value_map.map_name
                      AND m.owner IS NOT NULL AND pg_catalog.pg_has_role(m.owner, 'MEMBER')))
    WITH CHECK (EXISTS (SELECT FROM migrate.lookup_map m WHERE m.map_name = value_map.map_name
                           AND m.owner IS NOT NULL AND pg_catalog.pg_has_role(m.owner, 'MEMBER')));

-- a run's state: read by the owner's members, written by migrate alone
ALTER TABLE migrate.run ENABLE ROW LEVEL SECURITY;
CREATE POLICY owner_member ON migrate.run FOR SELECT
    USING (pg_catalog.pg_has_role(owner, 'MEMBER'));
ALTER TABLE migrate.run_table ENABLE ROW LEVEL SECURITY;
CREATE POLICY owner_member ON migrate.run_table FOR SELECT
    USING (EXISTS (SELECT FROM migrate.run r WHERE r.run_id = run_table.run_id));
ALTER TABLE migrate.run_range ENABLE ROW LEVEL SECURITY;
CREATE POLICY owner_member ON migrate.run_range FOR SELECT
    USING (EXISTS (SELECT FROM migrate.run r WHERE r.run_id = run_range.run_id));
ALTER TABLE migrate.event ENABLE ROW LEVEL SECURITY;
CREATE POLICY owner_member ON migrate.event FOR SELECT
    USING (CASE WHEN run_id IS NOT NULL
                THEN EXISTS (SELECT FROM migrate.run r WHERE r.run_id = event.run_id)
                ELSE EXISTS (SELECT FROM migrate.plan p WHERE p.plan_name = event.plan) END);

-- results: the owner's runs and calls write them
ALTER TABLE migrate.reject ENABLE ROW LEVEL SECURITY;
CREATE POLICY owner_member ON migrate.reject
    USING (EXISTS (SELECT FROM migrate.run r WHERE r.run_id = reject.run_id));
ALTER TABLE migrate.verification ENABLE ROW LEVEL SECURITY;
CREATE POLICY owner_member ON migrate.verification
    USING (EXISTS (SELECT FROM migrate.run r WHERE r.run_id = verification.run_id));
ALTER TABLE migrate.diff_result ENABLE ROW LEVEL SECURITY;
CREATE POLICY owner_member ON migrate.diff_result
    USING (EXISTS (SELECT FROM migrate.plan p WHERE p.plan_name = diff_result.plan));
ALTER TABLE migrate.profile_result ENABLE ROW LEVEL SECURITY;
CREATE POLICY owner_member ON migrate.profile_result
    USING (EXISTS (SELECT FROM migrate.plan p WHERE p.plan_name = profile_result.plan));

GRANT SELECT, INSERT, UPDATE, DELETE
   ON migrate.plan, migrate.table_map, migrate.column_map, migrate.rule,
      migrate.foreign_key, migrate.sensitive_column, migrate.lookup_map,
      migrate.value_map TO PUBLIC;
GRANT SELECT ON migrate.run, migrate.run_table, migrate.run_range, migrate.event TO PUBLIC;
GRANT SELECT, INSERT ON migrate.reject, migrate.verification TO PUBLIC;
GRANT UPDATE (source_row) ON migrate.reject TO PUBLIC;
GRANT SELECT, INSERT, DELETE ON migrate.diff_result, migrate.profile_result TO PUBLIC;
GRANT USAGE ON SEQUENCE migrate.diff_id_seq TO PUBLIC;
