-- A range's lists (events, traffic sources, devices) from one row per whole
-- month or week part instead of one row per day (issue 17). A cold 365-day
-- list read 365 day rows, each a random read of widget_daily_stats (p99
-- 49-132 ms on the 10 M bench); V31 made the summary read ~40 period rows.
--
-- A period's lists are the key-wise sums of its days' lists ({key: count},
-- each day's top N as the rollup kept them), so reading them gives the same
-- answer as summing the days. Unlike sums and sketches they are not kept up
-- to date by the rollup: merging a month's documents every night costs a
-- rewrite of every client's month and week. Instead:
--   * a row, where present, holds its period's lists: any change to one of
--     its days deletes it (the triggers below);
--   * the nightly job fills the rows of ended periods that have none
--     (analytics_fill_period_lists, newest first), so the migration fills
--     nothing and the rollup merges nothing;
--   * the reader (analytics_range_lists) reads the period rows present and
--     the range's days that none of them covers.
-- Writers of widget_daily_stats (the rollup, the backfill, retention) run
-- in the analytics-rollup job, one at a time: a fill never races a change.

CREATE TABLE widget_period_lists (
    client_id    uuid   NOT NULL REFERENCES clients (id),
    period       text   NOT NULL CHECK (period IN ('month', 'week')),
    first_day    date   NOT NULL CHECK (first_day = analytics_period_start(period, first_day)),
    -- The lists' denominator, so that a list reads one row per period.
    sessions     bigint NOT NULL,
    event_counts jsonb  NOT NULL,
    referrers    jsonb  NOT NULL,
    utm_sources  jsonb  NOT NULL,
    devices      jsonb  NOT NULL,
    browsers     jsonb  NOT NULL,
    os           jsonb  NOT NULL,
    PRIMARY KEY (client_id, period, first_day)
);

-- The periods holding a changed day lose their lists until the next fill.
CREATE FUNCTION analytics_period_lists_forget()
RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        DELETE FROM widget_period_lists l
         USING (SELECT DISTINCT a.client_id, p.period, analytics_period_start(p.period, a.day) AS first_day
                  FROM added a CROSS JOIN analytics_periods() p (period)) t
         WHERE l.client_id = t.client_id AND l.period = t.period AND l.first_day = t.first_day;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        DELETE FROM widget_period_lists l
         USING (SELECT DISTINCT r.client_id, p.period, analytics_period_start(p.period, r.day) AS first_day
                  FROM removed r CROSS JOIN analytics_periods() p (period)) t
         WHERE l.client_id = t.client_id AND l.period = t.period AND l.first_day = t.first_day;
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
-- have none, newest first (recent ranges are read most); returns how many.
-- Every period with days has a widget_period_stats row (V31), which also
-- holds its sessions.
CREATE FUNCTION analytics_fill_period_lists(p_before date, p_limit integer)
RETURNS integer LANGUAGE sql AS $$
    WITH todo AS (
        SELECT p.client_id, p.period, p.first_day, p.sessions
          FROM widget_period_stats p
         WHERE analytics_period_end(p.period, p.first_day) < p_before
           AND NOT EXISTS (SELECT FROM widget_period_lists l
                            WHERE l.client_id = p.client_id AND l.period = p.period
                              AND l.first_day = p.first_day)
         ORDER BY p.first_day DESC, p.client_id, p.period
         LIMIT p_limit
    ),
    counts AS (
        SELECT t.client_id, t.period, t.first_day, j.list, e.key, sum(e.value::int8) AS n
          FROM todo t
          JOIN widget_daily_stats s
            ON s.client_id = t.client_id
           AND s.day BETWEEN t.first_day AND analytics_period_end(t.period, t.first_day)
         CROSS JOIN LATERAL (VALUES ('event_counts', s.event_counts), ('referrers', s.referrers),
                                    ('utm_sources', s.utm_sources), ('devices', s.devices),
                                    ('browsers', s.browsers), ('os', s.os)) j (list, doc)
         CROSS JOIN LATERAL jsonb_each_text(j.doc) e
         GROUP BY 1, 2, 3, 4, 5
    ),
    filled AS (
        INSERT INTO widget_period_lists
        SELECT t.client_id, t.period, t.first_day, t.sessions,
               coalesce(jsonb_object_agg(c.key, c.n) FILTER (WHERE c.list = 'event_counts'), '{}'),
               coalesce(jsonb_object_agg(c.key, c.n) FILTER (WHERE c.list = 'referrers'), '{}'),
               coalesce(jsonb_object_agg(c.key, c.n) FILTER (WHERE c.list = 'utm_sources'), '{}'),
               coalesce(jsonb_object_agg(c.key, c.n) FILTER (WHERE c.list = 'devices'), '{}'),
               coalesce(jsonb_object_agg(c.key, c.n) FILTER (WHERE c.list = 'browsers'), '{}'),
               coalesce(jsonb_object_agg(c.key, c.n) FILTER (WHERE c.list = 'os'), '{}')
          FROM todo t
          LEFT JOIN counts c
            ON c.client_id = t.client_id AND c.period = t.period AND c.first_day = t.first_day
         GROUP BY t.client_id, t.period, t.first_day, t.sessions
        RETURNING 1
    )
    SELECT count(*)::int4 FROM filled
$$;

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
