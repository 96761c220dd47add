-- A range's lists (events, traffic sources, devices) from one row per whole
-- month or week part instead of one row per day (issue 17). A cold 365-day
-- list read 365 day rows, each a random read of widget_daily_stats (p99
-- 49-132 ms on the 10 M bench); V31 made the summary read ~40 period rows.
--
-- A period's lists are the key-wise sums of its days' lists ({key: count},
-- each day's top N as the rollup kept them), so reading them gives the same
-- answer as summing the days. Unlike sums and sketches they are not merged
-- by the rollup: that would rewrite every client's month and week documents
-- every night. Instead:
--   * every period with days has a row; its lists are NULL until filled,
--     and any change to one of its days makes them NULL again (the
--     triggers below; a period left without days loses its row at the
--     next fill);
--   * the nightly job fills the NULL rows of ended periods, newest first
--     (analytics_fill_period_lists, through a partial index of the NULL
--     rows), so the migration fills nothing and the rollup merges nothing;
--   * the reader (analytics_range_lists) reads the filled rows and the
--     range's days that none of them covers.
-- Writers of widget_daily_stats (the rollup, the backfill, retention) run
-- in the analytics-rollup job, one at a time: a fill never races a change.

CREATE TABLE widget_period_lists (
    client_id    uuid   NOT NULL REFERENCES clients (id),
    period       text   NOT NULL CHECK (period IN ('month', 'week')),
    first_day    date   NOT NULL CHECK (first_day = analytics_period_start(period, first_day)),
    -- All NULL (not filled) or none. sessions is the lists' denominator, so
    -- that a list reads one row per period.
    sessions     bigint,
    event_counts jsonb,
    referrers    jsonb,
    utm_sources  jsonb,
    devices      jsonb,
    browsers     jsonb,
    os           jsonb,
    PRIMARY KEY (client_id, period, first_day),
    CHECK (num_nulls(sessions, event_counts, referrers, utm_sources, devices, browsers, os) IN (0, 7))
);
CREATE INDEX widget_period_lists_unfilled ON widget_period_lists (first_day) WHERE sessions IS NULL;

-- Every period rolled up so far, to be filled by the nightly job.
INSERT INTO widget_period_lists (client_id, period, first_day)
SELECT client_id, period, first_day FROM widget_period_stats;
ANALYZE widget_period_lists;

-- The periods holding the days given (client and day, pairwise) have their
-- lists emptied until the next fill; a new period gets its row.
CREATE FUNCTION analytics_period_lists_empty(p_clients uuid[], p_days date[])
RETURNS void LANGUAGE sql AS $$
    INSERT INTO widget_period_lists (client_id, period, first_day)
    SELECT k.client_id, k.period, k.first_day
      FROM (SELECT DISTINCT d.client_id, p.period, analytics_period_start(p.period, d.day) AS first_day
              FROM unnest(p_clients, p_days) d (client_id, day) CROSS JOIN analytics_periods() p (period)) k
     -- Rows already empty (a night's open month and week) are left alone:
     -- ON CONFLICT would lock, and so write, each of them.
     WHERE NOT EXISTS (SELECT FROM widget_period_lists l
                        WHERE l.client_id = k.client_id AND l.period = k.period
                          AND l.first_day = k.first_day AND l.sessions IS NULL)
    ON CONFLICT (client_id, period, first_day) DO UPDATE
       SET sessions = NULL, event_counts = NULL, referrers = NULL, utm_sources = NULL,
           devices = NULL, browsers = NULL, os = NULL
     WHERE widget_period_lists.sessions IS NOT NULL
$$;

-- The days a statement wrote or removed, whatever the statement.
CREATE FUNCTION analytics_period_lists_forget()
RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        PERFORM analytics_period_lists_empty(array_agg(a.client_id), array_agg(a.day)) FROM added a;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        PERFORM analytics_period_lists_empty(array_agg(r.client_id), array_agg(r.day)) FROM removed r;
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION analytics_period_lists_truncate()
RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    TRUNCATE widget_period_lists;
    RETURN NULL;
END $$;

CREATE TRIGGER widget_period_lists_insert AFTER INSERT ON widget_daily_stats
    REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION analytics_period_lists_forget();
CREATE TRIGGER widget_period_lists_update AFTER UPDATE ON widget_daily_stats
    REFERENCING OLD TABLE AS removed NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION analytics_period_lists_forget();
CREATE TRIGGER widget_period_lists_delete AFTER DELETE ON widget_daily_stats
    REFERENCING OLD TABLE AS removed
    FOR EACH STATEMENT EXECUTE FUNCTION analytics_period_lists_forget();
CREATE TRIGGER widget_period_lists_truncate AFTER TRUNCATE ON widget_daily_stats
    FOR EACH STATEMENT EXECUTE FUNCTION analytics_period_lists_truncate();

-- Fills the lists of at most p_limit periods that end before p_before and
-- have none, newest first (recent ranges are read most), and deletes the
-- rows of those left without days; returns how many rows it took.
-- PL/pgSQL planned for its arguments (the batch's size). The planner takes
-- every jsonb_each_text for 100 keys and every period for 185 days: by
-- those estimates it would compile the statement (JIT, 1.5 s a batch) and
-- spill its sorts to disk; a batch of 10,000 periods needs about 100 MB.
CREATE FUNCTION analytics_fill_period_lists(p_before date, p_limit integer)
RETURNS integer LANGUAGE plpgsql
SET plan_cache_mode = force_custom_plan
SET jit = off
SET work_mem = '256MB'
AS $$
DECLARE
    taken integer;
BEGIN
    WITH todo AS MATERIALIZED (
        SELECT l.client_id, l.period, l.first_day
          FROM widget_period_lists l
         WHERE l.sessions IS NULL AND analytics_period_end(l.period, l.first_day) < p_before
         ORDER BY l.first_day DESC
         LIMIT p_limit
    ),
    -- Each period's days by key (OFFSET 0 keeps the subquery per period:
    -- joined, the planner cannot tell how few days a period has and reads
    -- the whole table).
    days AS (
        SELECT t.client_id, t.period, t.first_day, s.*
          FROM todo t
         CROSS JOIN LATERAL (
               SELECT s.sessions, s.event_counts, s.referrers, s.utm_sources, s.devices, s.browsers, s.os
                 FROM widget_daily_stats s
                WHERE s.client_id = t.client_id
                  AND s.day BETWEEN t.first_day AND analytics_period_end(t.period, t.first_day)
               OFFSET 0) s
    ),
    counts AS (
        SELECT d.client_id, d.period, d.first_day, j.list, e.key, sum(e.value::int8) AS n
          FROM days d
         CROSS JOIN LATERAL (VALUES ('event_counts', d.event_counts), ('referrers', d.referrers),
                                    ('utm_sources', d.utm_sources), ('devices', d.devices),
                                    ('browsers', d.browsers), ('os', d.os)) j (list, doc)
         CROSS JOIN LATERAL jsonb_each_text(j.doc) e
         GROUP BY 1, 2, 3, 4, 5
    ),
    totals AS (
        SELECT d.client_id, d.period, d.first_day, sum(d.sessions) AS sessions
          FROM days d
         GROUP BY 1, 2, 3
    ),
    lists AS (
        SELECT t.client_id, t.period, t.first_day, s.sessions,
               coalesce(jsonb_object_agg(c.key, c.n) FILTER (WHERE c.list = 'event_counts'), '{}') AS event_counts,
               coalesce(jsonb_object_agg(c.key, c.n) FILTER (WHERE c.list = 'referrers'), '{}') AS referrers,
               coalesce(jsonb_object_agg(c.key, c.n) FILTER (WHERE c.list = 'utm_sources'), '{}') AS utm_sources,
               coalesce(jsonb_object_agg(c.key, c.n) FILTER (WHERE c.list = 'devices'), '{}') AS devices,
               coalesce(jsonb_object_agg(c.key, c.n) FILTER (WHERE c.list = 'browsers'), '{}') AS browsers,
               coalesce(jsonb_object_agg(c.key, c.n) FILTER (WHERE c.list = 'os'), '{}') AS os
          FROM todo t
          LEFT JOIN totals s
            ON s.client_id = t.client_id AND s.period = t.period AND s.first_day = t.first_day
          LEFT JOIN counts c
            ON c.client_id = t.client_id AND c.period = t.period AND c.first_day = t.first_day
         GROUP BY t.client_id, t.period, t.first_day, s.sessions
    ),
    filled AS (
        UPDATE widget_period_lists w
           SET sessions = l.sessions, event_counts = l.event_counts, referrers = l.referrers,
               utm_sources = l.utm_sources, devices = l.devices, browsers = l.browsers, os = l.os
          FROM lists l
         WHERE l.sessions IS NOT NULL
           AND w.client_id = l.client_id AND w.period = l.period AND w.first_day = l.first_day
        RETURNING 1
    ),
    -- A period whose days are all gone (retention) has nothing to list.
    gone AS (
        DELETE FROM widget_period_lists w
         USING lists l
         WHERE l.sessions IS NULL
           AND w.client_id = l.client_id AND w.period = l.period AND w.first_day = l.first_day
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM filled) + (SELECT count(*) FROM gone) INTO taken;
    RETURN taken;
END $$;

-- The whole periods of a range p_from..p_to as key ranges of first_day,
-- lo <= first_day < hi: its whole months (from the first that starts in the
-- range, m1, to the last that ends in it, before me), and the whole week
-- parts before m1 (all of them if there is no whole month) and from me on.
-- The same cover as analytics_range_rows (V31).
CREATE FUNCTION analytics_range_periods(p_from date, p_to date)
RETURNS TABLE (period text, lo date, hi date) LANGUAGE sql IMMUTABLE AS $$
    SELECT 'month', analytics_period_end('month', p_from - 1) + 1,
           analytics_period_start('month', p_to + 1)
    UNION ALL
    SELECT 'week', analytics_period_end('week', p_from - 1) + 1,
           least(analytics_period_end('month', p_from - 1) + 1, analytics_period_start('week', p_to + 1))
    UNION ALL
    SELECT 'week', greatest(analytics_period_start('month', p_to + 1),
                            least(analytics_period_end('month', p_from - 1) + 1,
                                  analytics_period_start('week', p_to + 1))),
           analytics_period_start('week', p_to + 1)
$$;

-- The rows whose lists sum to one client's range p_from..p_to: the filled
-- rows of its whole months and of the whole week parts at its ends, and
-- every day of the range that none of them covers (a month or week part
-- not filled yet, or changed since, is read as its days).
CREATE FUNCTION analytics_range_lists(p_client uuid, p_from date, p_to date)
RETURNS TABLE (sessions bigint, event_counts jsonb, referrers jsonb, utm_sources jsonb,
               devices jsonb, browsers jsonb, os jsonb)
LANGUAGE sql STABLE AS $$
    WITH periods AS MATERIALIZED (
        SELECT l.*
          FROM analytics_range_periods(p_from, p_to) r
          JOIN widget_period_lists l
            ON l.client_id = p_client AND l.period = r.period
           AND l.first_day >= r.lo AND l.first_day < r.hi
         WHERE l.sessions IS NOT NULL
    ),
    -- As one array, so that the days are looked up by key, not joined
    -- (a join may read every day of the client).
    days AS MATERIALIZED (
        SELECT array_agg(p_from + i) AS days
          FROM generate_series(0, p_to - p_from) i
         WHERE NOT EXISTS (SELECT FROM periods p
                            WHERE p_from + i BETWEEN p.first_day AND analytics_period_end(p.period, p.first_day))
    )
    SELECT p.sessions, p.event_counts, p.referrers, p.utm_sources, p.devices, p.browsers, p.os
      FROM periods p
    UNION ALL
    SELECT s.sessions, s.event_counts, s.referrers, s.utm_sources, s.devices, s.browsers, s.os
      FROM widget_daily_stats s
     WHERE s.client_id = p_client AND s.day = ANY ((SELECT d.days FROM days d)::date[])
$$;
