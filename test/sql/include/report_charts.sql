-- test/sql/include/report_charts.sql: the Mermaid blocks of a
-- migrate_report() read back as rows, to check their structure against the
-- catalog (used by 32_report and 88_report_charts; each drops them after).
-- the gantt block of a report as rows: section, bar label, tag, start, end
-- (raises on a line that is neither a setting, a section nor a bar)
CREATE OR REPLACE FUNCTION test_gantt(p_report text)
RETURNS TABLE (section text, label text, tag text, s timestamp, e timestamp)
LANGUAGE plpgsql AS $$
DECLARE
    l text;
    inside boolean := false;
    sec text;
    m text[];
BEGIN
    FOREACH l IN ARRAY regexp_split_to_array(p_report, E'\n') LOOP
        IF l = 'gantt' THEN inside := true; CONTINUE; END IF;
        CONTINUE WHEN NOT inside;
        EXIT WHEN l = '```';
        IF l ~ '^    section ' THEN sec := substr(l, 13); CONTINUE; END IF;
        m := regexp_match(l, '^    ([^:#;%"]+) : (?:(done|active|crit), )?(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}), (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3})$');
        IF m IS NOT NULL THEN
            section := sec; label := m[1]; tag := m[2]; s := m[3]::timestamp; e := m[4]::timestamp;
            RETURN NEXT;
        ELSIF l !~ '^    (title [^:#;%]+|dateFormat YYYY-MM-DD HH:mm:ss\.SSS|axisFormat %H:%M:%S(\.%L)?)$' THEN
            RAISE EXCEPTION 'unexpected gantt line: %', l;
        END IF;
    END LOOP;
END;
$$;
-- the pie block as rows: label, value
CREATE OR REPLACE FUNCTION test_pie(p_report text)
RETURNS TABLE (label text, n bigint)
LANGUAGE plpgsql AS $$
DECLARE
    l text;
    inside boolean := false;
    m text[];
BEGIN
    FOREACH l IN ARRAY regexp_split_to_array(p_report, E'\n') LOOP
        IF l = 'pie showData' THEN inside := true; CONTINUE; END IF;
        CONTINUE WHEN NOT inside;
        EXIT WHEN l = '```';
        m := regexp_match(l, '^    "([^"]*)" : (\d+)$');
        IF m IS NOT NULL THEN
            label := m[1]; n := m[2]::bigint; RETURN NEXT;
        ELSIF l <> '    title Rejects by reason' THEN
            RAISE EXCEPTION 'unexpected pie line: %', l;
        END IF;
    END LOOP;
END;
$$;
-- every bar of the gantt is one started unit of the run, with its times
-- (to the millisecond, at least 1 ms long), in its table's section
CREATE OR REPLACE FUNCTION test_gantt_matches(p_run bigint, p_report text)
RETURNS TABLE (bars bigint, sections bigint, units_started bigint, tables_started bigint,
               bars_matching_a_unit bigint, ordered boolean)
LANGUAGE sql AS $$
    WITH g AS (SELECT * FROM test_gantt(p_report)),
         u AS (SELECT migrate._mermaid_label(rr.target::text) AS section,
                      migrate._mermaid_label(migrate._unit_label(rr.kind, rr.range_no, rr.definition)) AS label,
                      CASE rr.state WHEN 'succeeded' THEN 'done' WHEN 'running' THEN 'active' ELSE 'crit' END AS tag,
                      date_trunc('milliseconds', rr.started_at)::timestamp AS s,
                      greatest(date_trunc('milliseconds', rr.finished_at),
                               date_trunc('milliseconds', rr.started_at) + interval '1 ms')::timestamp AS e
                 FROM migrate.run_range rr WHERE rr.run_id = p_run AND rr.started_at IS NOT NULL)
    SELECT (SELECT count(*) FROM g), (SELECT count(DISTINCT section) FROM g),
           (SELECT count(*) FROM u), (SELECT count(DISTINCT section) FROM u),
           (SELECT count(*) FROM g JOIN u ON (g.section, g.label, g.tag, g.s, g.e) = (u.section, u.label, u.tag, u.s, u.e)),
           (SELECT bool_and(g.s < g.e) FROM g)
$$;
