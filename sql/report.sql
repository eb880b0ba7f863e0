/*
 * report.sql: migrate_report, a run written up as Markdown.
 *
 * Current source of the SQL (how it is built: the top of sql/catalog.sql).
 * Every function and view here is written CREATE OR REPLACE and defined in
 * no other file of sql/; its grants and revokes follow it.  The install
 * script takes this file with CREATE OR REPLACE made CREATE; each upgrade
 * script replays it as it is, after the deltas of sql/updates/, so a
 * function is changed here only.  A function whose arguments or result
 * type change, or that is removed, also needs a DROP FUNCTION in
 * sql/updates/<current>--<next>.sql.  No CREATE TABLE here (catalog.sql).
 */

-- Markdown-safe text for a table cell.
CREATE OR REPLACE FUNCTION migrate._md(p_text text)
RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pg_catalog.replace(pg_catalog.regexp_replace(coalesce(p_text, ''), '\s*\n\s*', ' ', 'g'), '|', '\|')
$$;

/*
 * migrate_report(run): the run as a Markdown document, also saved in
 * migrate.run.report.  Runs as the run's owner (the caller must be a member
 * of it): the body is migrate._migrate_report.  Tables with sensitive
 * columns (migrate_sensitive) show no values: example keys of a sensitive
 * key, reject messages, verification details and error texts are '***'.
 * Since 0.8 it draws Mermaid charts (timeline, throughput, rejects by
 * reason): see "Charts" below.
 */
CREATE OR REPLACE FUNCTION migrate_report(run bigint)
RETURNS text
LANGUAGE C
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'migrate_call_as_owner';

-- A text of a table with sensitive columns, as the report shows it.
CREATE OR REPLACE FUNCTION migrate._report_masked(p_plan text, p_target regclass, p_text text,
                                                  p_key_only boolean DEFAULT false)
RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN p_text IS NULL THEN NULL
                WHEN NOT EXISTS (SELECT FROM migrate.sensitive_column sc
                                  WHERE sc.plan = p_plan AND sc.target = p_target) THEN p_text
                WHEN NOT p_key_only THEN '***'
                -- a key shows unless one of its columns is fed by a sensitive one
                WHEN EXISTS (SELECT FROM migrate.table_map tm
                              WHERE tm.plan = p_plan AND tm.target = p_target
                                AND tm.key && migrate._sensitive_targets(p_plan, p_target)) THEN '***'
                ELSE p_text END
$$;

/*
 * Charts (0.8): Mermaid blocks (```mermaid, drawn by GitHub and GitLab, a
 * code block anywhere else) in migrate_report: the run's timeline (gantt),
 * rejects by reason (pie) and throughput per table (xychart).  Their labels
 * are table, index, constraint and rule names and SQLSTATEs, never data
 * values, so masking (migrate._report_masked) has nothing to hide in them.
 * They run as the caller (the run's owner inside migrate_report) and are
 * left to PUBLIC like _md and _report_masked: the label functions are pure,
 * the section functions read only catalog rows row-level security lets the
 * caller see, and the sizes of relations (which any role may ask for).
 */

-- A label Mermaid cannot misread: every character but letters, digits,
-- space, '_', '.' and '-' as Mermaid's entity code #<decimal code point>;
-- (':' ends a gantt task's name, '#' and ';' end a gantt line, '%' starts a
-- comment, '"' ends a pie or xychart label, ',' separates axis labels).
-- Mermaid turns the codes back into the characters when it draws.
CREATE OR REPLACE FUNCTION migrate._mermaid_label(p_text text)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN p_text IS NULL OR p_text = '' THEN '-'
                ELSE (SELECT pg_catalog.string_agg(CASE WHEN c.ch ~ '^[[:alnum:] _.-]$' THEN c.ch
                                                        ELSE '#' || pg_catalog.ascii(c.ch) || ';' END,
                                                   '' ORDER BY c.n)
                        FROM pg_catalog.regexp_split_to_table(p_text, '') WITH ORDINALITY AS c(ch, n))
           END
$$;

-- What a unit of work is, in a chart: "load <range_no>" (a key range),
-- "index <name>", "fk <constraint>", "sync".  Names come from the stored DDL
-- (an index's or constraint's name, as pg_get_indexdef / format %I wrote it).
CREATE OR REPLACE FUNCTION migrate._unit_label(p_kind text, p_range_no integer, p_definition text)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE p_kind
             WHEN 'load' THEN 'load ' || p_range_no
             WHEN 'index' THEN 'index ' || coalesce(pg_catalog.substring(p_definition,
                                   '^CREATE (?:UNIQUE )?INDEX ("(?:[^"]|"")+"|[^ ]+) ON '), p_range_no::text)
             WHEN 'fk' THEN 'fk ' || coalesce(pg_catalog.substring(p_definition,
                                   ' ADD CONSTRAINT ("(?:[^"]|"")+"|[^ ]+) '), p_range_no::text)
             ELSE p_kind END
$$;

/*
 * The "## Timeline" section: a gantt of the run, one section per table (in
 * load order), a bar per unit from its start to its end (to now while it
 * runs; at least 1 ms, so that it shows), done / active (running) / crit
 * (failed, cancelled, interrupted).  Absolute times, milliseconds, in the
 * session's time zone (Mermaid reads and draws them as local times, so the
 * axis shows the same clock); the axis reads to the millisecond for a run
 * under 10 s, to the second under a day, else day and minute.  Bounded: at
 * most p_units bars per table (the rest drawn as one bar, "N more units"),
 * at most p_tables tables (the rest as one section "other tables"), each
 * said in a line after the block; units not started are counted there too.
 */
CREATE OR REPLACE FUNCTION migrate._report_timeline(p_run bigint, p_path text,
                                                    p_tables integer DEFAULT 30, p_units integer DEFAULT 10)
RETURNS text[]
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    doc text[] := '{}';
    notes text[] := '{}';
    r migrate.run;
    t record;
    u record;
    span interval;
    not_started bigint;
    fmt constant text := 'YYYY-MM-DD HH24:MI:SS.MS';
BEGIN
    SELECT * INTO r FROM migrate.run x WHERE x.run_id = p_run;
    doc := doc || ''::text || '## Timeline'::text || ''::text;
    IF NOT EXISTS (SELECT FROM migrate.run_range rr WHERE rr.run_id = p_run AND rr.started_at IS NOT NULL) THEN
        RETURN doc || 'No unit of work of this run has started: no timeline.'::text;
    END IF;
    SELECT max(coalesce(rr.finished_at, pg_catalog.clock_timestamp())) - min(rr.started_at) INTO span
      FROM migrate.run_range rr WHERE rr.run_id = p_run AND rr.started_at IS NOT NULL;
    doc := doc || pg_catalog.format('When each unit of work ran: a section per table, a bar per unit (`load N`: key range N, `index` / `fk`: an index rebuilt or a foreign key re-added after the load, `sync`: a sync pass); times in %s.',
                                    pg_catalog.to_char(pg_catalog.now(), 'TZ'))
           || ''::text || '```mermaid'::text || 'gantt'::text
           || ('    title ' || migrate._mermaid_label(pg_catalog.format('Run %s of plan %s', r.run_id, r.plan)))
           || '    dateFormat YYYY-MM-DD HH:mm:ss.SSS'::text
           || ('    axisFormat ' || CASE WHEN span < interval '10 s' THEN '%H:%M:%S.%L'
                                         WHEN span < interval '1 day' THEN '%H:%M:%S'
                                         ELSE '%m-%d %H:%M' END);
    FOR t IN SELECT rt.target, migrate._relname(rt.target, p_path) AS tname,
                    pg_catalog.row_number() OVER (ORDER BY rt.load_order, rt.target::oid) AS tno
               FROM migrate.run_table rt WHERE rt.run_id = p_run
                AND EXISTS (SELECT FROM migrate.run_range rr WHERE rr.run_id = p_run AND rr.target = rt.target
                               AND rr.started_at IS NOT NULL)
              ORDER BY rt.load_order, rt.target::oid LIMIT p_tables LOOP
        doc := doc || ('    section ' || migrate._mermaid_label(t.tname));
        FOR u IN WITH x AS (SELECT rr.*, pg_catalog.row_number() OVER (ORDER BY rr.started_at, rr.range_no) AS uno,
                                   pg_catalog.date_trunc('milliseconds', rr.started_at) AS s,
                                   pg_catalog.date_trunc('milliseconds', coalesce(rr.finished_at, pg_catalog.clock_timestamp())) AS e
                              FROM migrate.run_range rr
                             WHERE rr.run_id = p_run AND rr.target = t.target AND rr.started_at IS NOT NULL)
                 SELECT migrate._unit_label(x.kind, x.range_no, x.definition) AS label, 1 AS n,
                        x.state, x.s, x.e, x.uno
                   FROM x WHERE x.uno <= p_units
                 UNION ALL
                 SELECT CASE WHEN count(*) = 1 THEN '1 more unit' ELSE count(*) || ' more units' END, count(*),
                        CASE WHEN bool_and(x.state = 'succeeded') THEN 'succeeded'
                             WHEN bool_or(x.state = 'running') THEN 'running'
                             WHEN bool_and(x.state IN ('succeeded', 'pending')) THEN 'pending' ELSE 'failed' END,
                        min(x.s), max(x.e), p_units + 1
                   FROM x WHERE x.uno > p_units HAVING count(*) > 0
                 ORDER BY uno LOOP
            doc := doc || pg_catalog.format('    %s : %s%s, %s', migrate._mermaid_label(u.label),
                                            CASE u.state WHEN 'succeeded' THEN 'done, ' WHEN 'running' THEN 'active, '
                                                         WHEN 'pending' THEN '' ELSE 'crit, ' END,
                                            pg_catalog.to_char(u.s, fmt),
                                            pg_catalog.to_char(greatest(u.e, u.s + interval '1 ms'), fmt));
            IF u.uno > p_units THEN
                notes := notes || pg_catalog.format('table %s: %s of its units are drawn as one bar ("%s", from the start of the first to the end of the last): at most %s units per table are drawn, in the order they started',
                                                    t.tname, u.n, u.label, p_units);
            END IF;
        END LOOP;
    END LOOP;
    -- tables beyond p_tables: one bar for all of them
    SELECT count(DISTINCT rr.target) AS tables, count(*) AS units,
           pg_catalog.date_trunc('milliseconds', min(rr.started_at)) AS s,
           pg_catalog.date_trunc('milliseconds', max(coalesce(rr.finished_at, pg_catalog.clock_timestamp()))) AS e,
           bool_and(rr.state = 'succeeded') AS ok, bool_or(rr.state = 'running') AS running
      INTO u
      FROM migrate.run_range rr
     WHERE rr.run_id = p_run AND rr.started_at IS NOT NULL
       AND rr.target NOT IN (SELECT rt.target FROM migrate.run_table rt WHERE rt.run_id = p_run
                                AND EXISTS (SELECT FROM migrate.run_range q WHERE q.run_id = p_run AND q.target = rt.target
                                               AND q.started_at IS NOT NULL)
                              ORDER BY rt.load_order, rt.target::oid LIMIT p_tables);
    IF u.tables > 0 THEN
        doc := doc || '    section other tables'::text
               || pg_catalog.format('    %s : %s, %s, %s',
                                    CASE WHEN u.tables = 1 THEN '1 more table' ELSE u.tables || ' more tables' END,
                                    CASE WHEN u.ok THEN 'done' WHEN u.running THEN 'active' ELSE 'crit' END,
                                    pg_catalog.to_char(u.s, fmt),
                                    pg_catalog.to_char(greatest(u.e, u.s + interval '1 ms'), fmt));
        notes := notes || pg_catalog.format('%s (%s units) drawn as one bar in section "other tables": the timeline draws the first %s tables in load order (the Tables section lists them all)',
                                            CASE WHEN u.tables = 1 THEN '1 more table' ELSE u.tables || ' more tables' END,
                                            u.units, p_tables);
    END IF;
    doc := doc || '```'::text;
    SELECT count(*) INTO not_started FROM migrate.run_range rr WHERE rr.run_id = p_run AND rr.started_at IS NULL;
    IF not_started > 0 THEN
        notes := notes || pg_catalog.format('%s units never started: they are not drawn', not_started);
    END IF;
    IF notes <> '{}' THEN
        doc := doc || ''::text
               || 'Not drawn one by one:'::text
               || ARRAY(SELECT '- ' || migrate._md(n) FROM pg_catalog.unnest(notes) n);
    END IF;
    RETURN doc;
END;
$$;

/*
 * The "## Throughput and rejects" section: per table, largest first, the
 * rows read, the target's size now (pg_total_relation_size; '-' when the
 * table is gone), the load's time, rows/s and the reject ratio (rejected /
 * read); then an xychart of rows/s of the first p_tables of those tables
 * that took time.
 */
CREATE OR REPLACE FUNCTION migrate._report_throughput(p_run bigint, p_path text, p_tables integer DEFAULT 30)
RETURNS text[]
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    doc text[] := '{}';
    rec record;
    labels text[] := '{}';
    bars text[] := '{}';
    drawn integer := 0;
    more integer := 0;
BEGIN
    doc := doc || ''::text || '## Throughput and rejects'::text || ''::text
           || 'Each table, largest first: rows read from the source, the target''s size now, the load''s time and rate, and the share of the rows read that were rejected.'::text
           || ''::text
           || '| table | rows read | target size | time | rows/s | rejected | reject % |'::text
           || '|---|--:|--:|--:|--:|--:|--:|'::text;
    FOR rec IN SELECT rt.rows_read, rt.rows_rejected, migrate._relname(rt.target, p_path) AS tname,
                      pg_catalog.pg_total_relation_size(rt.target) AS bytes,
                      EXTRACT(epoch FROM rt.finished_at - rt.started_at) AS secs
                 FROM migrate.run_table rt WHERE rt.run_id = p_run
                ORDER BY rt.rows_read DESC, rt.load_order, rt.target::oid LOOP
        doc := doc || pg_catalog.format('| %s | %s | %s | %s | %s | %s | %s |',
                                        migrate._md(rec.tname), rec.rows_read,
                                        coalesce(pg_catalog.pg_size_pretty(rec.bytes), '-'),
                                        coalesce(pg_catalog.round(rec.secs, 2) || ' s', '-'),
                                        CASE WHEN rec.secs > 0 THEN pg_catalog.round(rec.rows_read / rec.secs)::text ELSE '-' END,
                                        rec.rows_rejected,
                                        CASE WHEN rec.rows_read > 0
                                             THEN pg_catalog.round(100.0 * rec.rows_rejected / rec.rows_read, 1) || '%'
                                             ELSE '-' END);
        IF rec.secs > 0 THEN
            IF drawn < p_tables THEN
                drawn := drawn + 1;
                labels := labels || ('"' || migrate._mermaid_label(rec.tname) || '"');
                bars := bars || pg_catalog.round(rec.rows_read / rec.secs)::text;
            ELSE
                more := more + 1;
            END IF;
        END IF;
    END LOOP;
    IF drawn = 0 THEN
        RETURN doc || ''::text || 'No table took measurable time: no throughput chart.'::text;
    END IF;
    doc := doc || ''::text
           || pg_catalog.format('Rows per second by table, largest table first%s:',
                                CASE WHEN more > 0 THEN pg_catalog.format(' (the %s largest; %s more are in the table above)', drawn, more)
                                     ELSE '' END)
           || ''::text || '```mermaid'::text || 'xychart-beta'::text
           || '    title "Throughput (rows/s)"'::text
           || ('    x-axis [' || pg_catalog.array_to_string(labels, ', ') || ']')
           || '    y-axis "rows/s"'::text
           || ('    bar [' || pg_catalog.array_to_string(bars, ', ') || ']')
           || '```'::text;
    RETURN doc;
END;
$$;

/*
 * Rejects by reason (rule name or SQLSTATE) over all tables of the run, as
 * a pie: the p_reasons most frequent, the rest as one slice "other reasons";
 * its slices add up to the run's rejects (migrate.reject rows not loaded:
 * a row that fails several rules counts once for each).  A sentence instead
 * when nothing was rejected.
 */
CREATE OR REPLACE FUNCTION migrate._report_reject_chart(p_run bigint, p_reasons integer DEFAULT 9)
RETURNS text[]
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    doc text[] := '{}';
    total bigint;
    reasons bigint;
BEGIN
    SELECT count(*), count(DISTINCT j.reason) INTO total, reasons
      FROM migrate.reject j WHERE j.run_id = p_run AND NOT j.loaded;
    IF total = 0 THEN
        RETURN ARRAY['No row was rejected, so there is no chart of rejects.'];
    END IF;
    doc := doc || ''::text
           || pg_catalog.format('Rejects by reason, %s in all%s (a row that fails several rules counts once for each):',
                                total, CASE WHEN reasons > p_reasons
                                            THEN pg_catalog.format('; the %s most frequent of %s reasons, the rest as "other reasons"',
                                                                   p_reasons, reasons)
                                            ELSE '' END)
           || ''::text || '```mermaid'::text || 'pie showData'::text
           || '    title Rejects by reason'::text
           || ARRAY(SELECT pg_catalog.format('    "%s" : %s', migrate._mermaid_label(g.label), g.n)
                      FROM (SELECT coalesce(CASE WHEN x.rank <= p_reasons THEN x.reason END, 'other reasons') AS label,
                                   sum(x.n) AS n, min(x.rank) AS rank
                              FROM (SELECT j.reason, count(*) AS n,
                                           pg_catalog.row_number() OVER (ORDER BY count(*) DESC, j.reason) AS rank
                                      FROM migrate.reject j WHERE j.run_id = p_run AND NOT j.loaded
                                     GROUP BY j.reason) x
                             GROUP BY x.rank <= p_reasons, 1) g
                     ORDER BY g.rank)
           || '```'::text;
    RETURN doc;
END;
$$;

CREATE OR REPLACE FUNCTION migrate._migrate_report(run bigint)
RETURNS text
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    path text := migrate._caller_search_path();
    r migrate.run;
    pl migrate.plan;
    doc text[] := '{}';
    rec record;
    lim_warn numeric;
    lim_limit numeric;
    last_verified timestamptz;
    problems text[] := '{}';
    problems_fk text[];
    warnings text[] := '{}';
    verdict text;
    masked boolean;
    ts constant text := 'YYYY-MM-DD HH24:MI:SS TZ';
BEGIN
    SELECT * INTO r FROM migrate.run u WHERE u.run_id = _migrate_report.run;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'migration run % does not exist', _migrate_report.run
            USING ERRCODE = 'undefined_object',
                  HINT = 'migrate.run lists the runs of every plan.';
    END IF;
    SELECT * INTO pl FROM migrate.plan WHERE plan_name = r.plan;
    masked := EXISTS (SELECT FROM migrate.sensitive_column sc WHERE sc.plan = r.plan);

    doc := doc || pg_catalog.format('# Migration report: plan "%s", run %s', r.plan, r.run_id) || ''::text
           || '| | |'::text || '|---|---|'::text
           || pg_catalog.format('| plan | %s (source schema %s, target schema %s) |', migrate._md(r.plan),
                                coalesce(pl.source_schema::text, '-'), coalesce(pl.target_schema::text, '-'))
           || pg_catalog.format('| run | %s, mode %s%s |', r.run_id, r.mode, CASE WHEN r.dry_run THEN ', dry run' ELSE '' END)
           || pg_catalog.format('| run by | %s |', r.run_by)
           || pg_catalog.format('| started | %s |', pg_catalog.to_char(r.started_at, ts))
           || pg_catalog.format('| finished | %s |', coalesce(pg_catalog.to_char(r.finished_at, ts), 'still running'))
           || pg_catalog.format('| duration | %s s |', coalesce(pg_catalog.round(EXTRACT(epoch FROM r.finished_at - r.started_at), 1)::text, '-'))
           || pg_catalog.format('| state | %s |', r.state)
           || pg_catalog.format('| batch size | %s rows%s |', r.batch_size,
                                CASE WHEN r.batch_bytes > 0 THEN ', ' || pg_catalog.pg_size_pretty(r.batch_bytes) ELSE '' END);
    IF r.peak_rss_kb IS NOT NULL OR r.peak_memory_kb IS NOT NULL THEN
        doc := doc || pg_catalog.format('| peak memory | %s kB (greatest worker peak), %s kB sampled at batch ends |',
                                        coalesce(r.peak_rss_kb::text, '-'), coalesce(r.peak_memory_kb::text, '-'));
    END IF;
    IF r.error IS NOT NULL THEN
        doc := doc || pg_catalog.format('| error | %s |', migrate._md(CASE WHEN masked THEN '***' ELSE r.error END));
    END IF;
    SELECT sum(rows_read) AS rd, sum(rows_written) AS wr, sum(rows_rejected) AS rj, sum(rows_skipped) AS sk
      INTO rec FROM migrate.run_table WHERE run_id = r.run_id;
    doc := doc || pg_catalog.format('| rows | %s read, %s written, %s rejected, %s skipped |',
                                    coalesce(rec.rd, 0), coalesce(rec.wr, 0), coalesce(rec.rj, 0), coalesce(rec.sk, 0))
           || pg_catalog.format('| verification | %s |',
                                CASE WHEN r.verified THEN 'passed, ' || pg_catalog.to_char(r.verified_at, ts)
                                     WHEN NOT r.verified THEN 'FAILED, ' || pg_catalog.to_char(r.verified_at, ts)
                                     ELSE 'not verified' END);

    -- tables
    doc := doc || ''::text || '## Tables'::text || ''::text
           || '| table | source | state | read | written | rejected | skipped | warned | time | throughput |'::text
           || '|---|---|---|--:|--:|--:|--:|--:|--:|--:|'::text;
    FOR rec IN SELECT rt.*, EXTRACT(epoch FROM rt.finished_at - rt.started_at) AS secs,
                      migrate._relname(rt.target, path) AS tname,
                      migrate._report_masked(r.plan, rt.target, rt.error) AS err
                 FROM migrate.run_table rt WHERE rt.run_id = r.run_id ORDER BY rt.load_order LOOP
        doc := doc || pg_catalog.format('| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |',
                                        migrate._md(rec.tname), migrate._md(rec.source), rec.state,
                                        rec.rows_read, rec.rows_written, rec.rows_rejected, rec.rows_skipped,
                                        rec.rows_warned,
                                        coalesce(pg_catalog.round(rec.secs, 2) || ' s', '-'),
                                        CASE WHEN rec.secs > 0 THEN pg_catalog.round(rec.rows_read / rec.secs) || ' rows/s'
                                             ELSE '-' END);
        IF rec.error IS NOT NULL THEN
            problems := problems || pg_catalog.format('table %s failed: %s', rec.tname, rec.err);
        END IF;
        IF rec.state NOT IN ('succeeded') AND rec.error IS NULL THEN
            problems := problems || pg_catalog.format('table %s is %s', rec.tname, rec.state);
        END IF;
        -- rejects above the table's reject_warn or reject_limit (as the options are now)
        BEGIN
            SELECT l.reject_warn, l.reject_limit INTO lim_warn, lim_limit
              FROM migrate._reject_limits(r.plan, rec.target) l;
        EXCEPTION WHEN invalid_parameter_value THEN
            lim_warn := NULL;       -- options changed by hand since: the run said so
        END;
        IF rec.rows_read > 0 AND rec.rows_rejected > lim_warn * rec.rows_read THEN
            warnings := warnings || pg_catalog.format('table %s: %s%% of its rows were rejected (%s of %s read), above its %s of %s%%',
                                                      rec.tname, pg_catalog.round(100.0 * rec.rows_rejected / rec.rows_read, 1),
                                                      rec.rows_rejected, rec.rows_read,
                                                      CASE WHEN rec.rows_rejected > lim_limit * rec.rows_read
                                                           THEN 'reject_limit' ELSE 'reject_warn' END,
                                                      pg_catalog.trim_scale(100 * CASE WHEN rec.rows_rejected > lim_limit * rec.rows_read
                                                                                       THEN lim_limit ELSE lim_warn END));
        END IF;
        IF rec.source_count IS NOT NULL AND rec.source_count <> rec.rows_read THEN
            warnings := warnings || pg_catalog.format('table %s: %s rows read but the source counts %s',
                                                      rec.tname, rec.rows_read, rec.source_count);
        END IF;
    END LOOP;

    -- charts (since 0.8): the timeline of the units, throughput and rejects
    doc := doc || migrate._report_timeline(r.run_id, path) || migrate._report_throughput(r.run_id, path);

    -- a cutover (since 0.7): the swap, its locks and what it carried over
    -- (migrate.cutover); the foreign keys it re-pointed NOT VALID, to VALIDATE
    IF r.mode = 'cutover' THEN
        doc := doc || ''::text || '## Cutover'::text || ''::text;
        SELECT * INTO rec FROM migrate.cutover c WHERE c.run_id = r.run_id;
        IF NOT FOUND THEN
            doc := doc || 'No swap is recorded for this run.'::text;
        ELSE
            doc := doc || '| | |'::text || '|---|---|'::text
                   || pg_catalog.format('| swap | schema %s into %s, the live one retired as %s |',
                                        migrate._md(pg_catalog.quote_ident(rec.shadow_schema)),
                                        migrate._md(pg_catalog.quote_ident(rec.live_schema)),
                                        coalesce(migrate._md(pg_catalog.quote_ident(rec.retired_schema)), '- (there was none)'))
                   || pg_catalog.format('| state | %s |', CASE WHEN rec.state = 'rolled_back'
                                        THEN pg_catalog.format('rolled back by %s, %s', rec.rolled_back_by,
                                                               pg_catalog.to_char(rec.rolled_back_at, ts))
                                        ELSE rec.state END)
                   || pg_catalog.format('| swapped | by %s, %s |', rec.swapped_by, pg_catalog.to_char(rec.swapped_at, ts))
                   || pg_catalog.format('| locks | %s attempt(s), waited %s ms, held %s ms |', rec.attempts,
                                        pg_catalog.round(EXTRACT(epoch FROM rec.lock_wait) * 1000, 1),
                                        pg_catalog.round(EXTRACT(epoch FROM rec.lock_held) * 1000, 1))
                   || pg_catalog.format('| carried over | %s grant(s), %s sequence(s), %s view(s), %s foreign key(s); %s relation(s) left in the retired schema |',
                                        coalesce(pg_catalog.jsonb_array_length(rec.carried->'grants'), 0),
                                        coalesce(pg_catalog.jsonb_array_length(rec.carried->'sequences'), 0),
                                        coalesce(pg_catalog.jsonb_array_length(rec.carried->'views'), 0),
                                        coalesce(pg_catalog.jsonb_array_length(rec.carried->'foreign_keys'), 0),
                                        coalesce(pg_catalog.jsonb_array_length(rec.carried->'left_in_retired'), 0));
            IF rec.state = 'swapped' THEN
                SELECT pg_catalog.array_agg(f.e->>'validate' ORDER BY f.e->>'validate') INTO problems_fk
                  FROM pg_catalog.jsonb_array_elements(coalesce(rec.carried->'foreign_keys', '[]')) f(e)
                 WHERE f.e ? 'validate';
                IF problems_fk IS NOT NULL THEN
                    warnings := warnings || pg_catalog.format('the cutover re-pointed %s foreign key(s) NOT VALID: run %s',
                                                              pg_catalog.cardinality(problems_fk),
                                                              pg_catalog.array_to_string(problems_fk, '; '));
                END IF;
            END IF;
        END IF;
    END IF;

    -- trickle sync (since 0.6): where each table with capture stands now
    -- (migrate.sync_state); a watermark position of a sensitive column is '***'
    IF r.mode IN ('sync', 'incremental')
       OR EXISTS (SELECT FROM migrate.table_map tm WHERE tm.plan = r.plan AND tm.capture <> 'none') THEN
        doc := doc || ''::text || '## Sync'::text || ''::text;
        IF NOT EXISTS (SELECT FROM migrate.table_map tm WHERE tm.plan = r.plan AND tm.capture <> 'none') THEN
            doc := doc || 'No table of the plan has capture.'::text;
        ELSE
            doc := doc || '| table | capture | position | last sync | lag | passes | inserted | updated | deleted | rejected |'::text
                   || '|---|---|---|---|--:|--:|--:|--:|--:|--:|'::text;
            FOR rec IN SELECT st.*, migrate._relname(st.target, path) AS tname,
                              EXISTS (SELECT FROM migrate.sensitive_column sc
                                       WHERE sc.plan = st.plan AND sc.target = st.target
                                         AND sc.source_column = st.watermark) AS wm_sensitive
                         FROM @extschema@.migrate_sync_status(r.plan) st
                        WHERE st.capture <> 'none'
                        ORDER BY migrate._relname(st.target, path) LOOP
                doc := doc || pg_catalog.format('| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |',
                                                migrate._md(rec.tname), rec.capture,
                                                migrate._md(CASE WHEN rec.position IS NULL THEN '-'
                                                                 WHEN rec.capture = 'watermark' AND rec.wm_sensitive THEN '***'
                                                                 ELSE rec.position END),
                                                coalesce(pg_catalog.to_char(rec.last_sync_at, ts) || ' (run ' || rec.last_sync_run || ')',
                                                         CASE WHEN rec.armed_at IS NULL THEN 'not armed' ELSE 'never' END),
                                                coalesce(rec.lag::text, '-'), rec.passes,
                                                rec.applied_inserted, rec.applied_updated, rec.applied_deleted,
                                                rec.applied_rejected);
                IF rec.last_error IS NOT NULL THEN
                    warnings := warnings || pg_catalog.format('table %s: its last sync failed: %s', rec.tname,
                                                              migrate._report_masked(r.plan, rec.target, rec.last_error));
                END IF;
            END LOOP;
        END IF;
    END IF;

    -- rollback (since 0.7): what migrate_rollback() did to the run's tables
    IF EXISTS (SELECT FROM migrate.rollback b WHERE b.run_id = r.run_id) THEN
        doc := doc || ''::text || '## Rollback'::text || ''::text
               || '| table | state | deleted | restored | reinserted | conflicts | forced | by | at |'::text
               || '|---|---|--:|--:|--:|--:|---|---|---|'::text;
        FOR rec IN SELECT b.*, migrate._relname(b.target, path) AS tname
                     FROM migrate.rollback b WHERE b.run_id = r.run_id
                    ORDER BY migrate._relname(b.target, path) LOOP
            doc := doc || pg_catalog.format('| %s | %s | %s | %s | %s | %s | %s | %s | %s |',
                                            migrate._md(rec.tname),
                                            CASE rec.state WHEN 'done' THEN 'rolled back' ELSE 'conflicts left' END,
                                            rec.rows_deleted, rec.rows_restored, rec.rows_reinserted, rec.conflicts,
                                            CASE WHEN rec.forced THEN 'yes' ELSE 'no' END,
                                            migrate._md(rec.rolled_back_by), pg_catalog.to_char(rec.rolled_back_at, ts));
            IF rec.state = 'conflicts' THEN
                warnings := warnings || pg_catalog.format('table %s: its rollback left %s rows changed since the run alone (see migrate_rollback_conflicts(%s))',
                                                          rec.tname, rec.conflicts, r.run_id);
            END IF;
        END LOOP;
    END IF;

    -- rejects
    doc := doc || ''::text || '## Rejected rows by reason'::text || ''::text;
    IF EXISTS (SELECT 1 FROM migrate.reject j WHERE j.run_id = r.run_id AND NOT j.loaded) THEN
        doc := doc || '| table | reason | rows | example keys | message |'::text || '|---|---|--:|---|---|'::text;
        FOR rec IN SELECT g.*, migrate._relname(g.target, path) AS tname
                     FROM (SELECT j.target, j.reason, count(*) AS n,
                                  (pg_catalog.array_agg(j.source_key ORDER BY j.reject_id))[1:3] AS examples,
                                  min(j.message) AS message
                             FROM migrate.reject j WHERE j.run_id = r.run_id AND NOT j.loaded
                            GROUP BY 1, 2) g
                    ORDER BY migrate._relname(g.target, path), g.n DESC, g.reason LOOP
            doc := doc || pg_catalog.format('| %s | %s | %s | %s | %s |', migrate._md(rec.tname),
                                            migrate._md(rec.reason), rec.n,
                                            migrate._md(migrate._report_masked(r.plan, rec.target,
                                                        pg_catalog.array_to_string(rec.examples, ', '), true)),
                                            migrate._md(migrate._report_masked(r.plan, rec.target, rec.message)));
        END LOOP;
    END IF;
    doc := doc || migrate._report_reject_chart(r.run_id);

    -- warnings: rows loaded with a finding, count mismatches
    FOR rec IN SELECT g.*, migrate._relname(g.target, path) AS tname
                 FROM (SELECT j.target, j.reason, count(*) AS n,
                              (pg_catalog.array_agg(j.source_key ORDER BY j.reject_id))[1:3] AS examples
                         FROM migrate.reject j WHERE j.run_id = r.run_id AND j.loaded
                        GROUP BY 1, 2) g
                ORDER BY migrate._relname(g.target, path), g.reason LOOP
        warnings := warnings || pg_catalog.format('table %s: %s rows loaded with warning "%s" (keys %s)',
                                                  rec.tname, rec.n, rec.reason,
                                                  migrate._report_masked(r.plan, rec.target,
                                                      pg_catalog.array_to_string(rec.examples, ', '), true));
    END LOOP;
    doc := doc || ''::text || '## Warnings'::text || ''::text;
    IF warnings = '{}' THEN
        doc := doc || 'None.'::text;
    ELSE
        doc := doc || ARRAY(SELECT '- ' || migrate._md(w) FROM pg_catalog.unnest(warnings) w);
    END IF;

    -- the last verification of the run
    doc := doc || ''::text || '## Verification'::text || ''::text;
    SELECT max(v.verified_at) INTO last_verified FROM migrate.verification v WHERE v.run_id = r.run_id;
    IF last_verified IS NULL THEN
        doc := doc || pg_catalog.format('Not verified: run `SELECT * FROM migrate_verify(%L, run => %s)`.',
                                        r.plan, r.run_id);
    ELSE
        doc := doc || pg_catalog.format('Verified %s by %s.',
                                        pg_catalog.to_char(last_verified, ts),
                                        (SELECT min(v.verified_by) FROM migrate.verification v
                                          WHERE v.run_id = r.run_id AND v.verified_at = last_verified))
               || ''::text || '| table | check | source | target | result | details |'::text
               || '|---|---|--:|--:|---|---|'::text;
        FOR rec IN SELECT v.*, migrate._relname(v.target, path) AS tname
                     FROM migrate.verification v WHERE v.run_id = r.run_id AND v.verified_at = last_verified
                    ORDER BY v.verification_id LOOP
            doc := doc || pg_catalog.format('| %s | %s | %s | %s | %s | %s |', migrate._md(rec.tname),
                                            migrate._md(rec.check_name), migrate._md(rec.source_value),
                                            migrate._md(rec.target_value), CASE WHEN rec.ok THEN 'ok' ELSE '**FAILED**' END,
                                            migrate._md(migrate._report_masked(r.plan, rec.target, rec.details)));
            IF NOT rec.ok THEN
                problems := problems || pg_catalog.format('verification of %s failed: %s', rec.tname, rec.check_name);
            END IF;
        END LOOP;
    END IF;

    -- verdict
    IF r.state = 'running' THEN
        verdict := '**IN PROGRESS**: the run has not ended.';
    ELSIF r.state <> 'succeeded' THEN
        verdict := pg_catalog.format('**FAILED**: the run %s.', r.state);
    ELSIF r.dry_run THEN
        verdict := '**DRY RUN**: no target row was written.';
    ELSIF problems <> '{}' THEN
        verdict := '**FAILED**: the target does not match the source.';
    ELSIF last_verified IS NULL THEN
        verdict := '**NOT VERIFIED**: the run succeeded; verify it to certify the target.';
    ELSE
        verdict := '**PASSED**: the run succeeded and the target matches the source.';
    END IF;
    doc := doc || ''::text || '## Verdict'::text || ''::text || verdict
           || ARRAY(SELECT '- ' || migrate._md(p) FROM pg_catalog.unnest(problems) p);

    PERFORM migrate._catalog_report(r.run_id, pg_catalog.array_to_string(doc, E'\n') || E'\n');
    RETURN pg_catalog.array_to_string(doc, E'\n') || E'\n';
END;
$$;
REVOKE ALL ON FUNCTION migrate._migrate_report(bigint) FROM PUBLIC;
