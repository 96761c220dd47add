-- Range uniques without reading every day's sketch (issue 17). A range's
-- visitors are the cardinality of the union of its days' sketches (V24); a
-- 365-day summary read 730 of them from the heap, each on another page. Each
-- client's calendar month now also keeps the union of its days' sketches, so
-- a range reads its whole months as one row each and only the days at its
-- edges one by one (docs/METRICS.md, docs/ARCHITECTURE.md).
--
-- Invariant: a client's month row is the union of exactly the
-- widget_daily_stats rows of that client and month, whichever statement
-- wrote them (the rollup, retention, a backfill, a test). Triggers keep it:
-- an insert unions the new days in; an update or delete recomputes the
-- months it touched from their remaining days. A month without days has no
-- row. Live days (not rolled up yet) are in neither table: readers union
-- them separately.
CREATE TABLE widget_month_sketches (
    client_id                uuid   NOT NULL REFERENCES clients (id),
    -- The first day of the calendar month (of the client's local days).
    month                    date   NOT NULL CHECK (month = date_trunc('month', month)::date),
    visitors_sketch          hll,
    bot_visitors_sketch      hll,
    -- The days of the month without a sketch (rolled up before V24 with
    -- their raw events gone) add their own counts, as the readers do per day.
    unsketched_visitors      bigint NOT NULL,
    unsketched_bot_visitors  bigint NOT NULL,
    PRIMARY KEY (client_id, month)
);

-- hll_union is strict: a NULL side leaves the other.
CREATE FUNCTION analytics_hll_union(a hll, b hll)
RETURNS hll LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(hll_union(a, b), a, b)
$$;

CREATE FUNCTION analytics_month_sketches_add()
RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO widget_month_sketches AS m
    SELECT a.client_id, date_trunc('month', a.day)::date,
           hll_union_agg(a.visitors_sketch), hll_union_agg(a.bot_visitors_sketch),
           coalesce(sum(a.unique_visitors) FILTER (WHERE a.visitors_sketch IS NULL), 0),
           coalesce(sum(a.bot_visitors) FILTER (WHERE a.bot_visitors_sketch IS NULL), 0)
      FROM added a
     GROUP BY 1, 2
    ON CONFLICT (client_id, month) DO UPDATE
       SET visitors_sketch = analytics_hll_union(m.visitors_sketch, excluded.visitors_sketch),
           bot_visitors_sketch = analytics_hll_union(m.bot_visitors_sketch, excluded.bot_visitors_sketch),
           unsketched_visitors = m.unsketched_visitors + excluded.unsketched_visitors,
           unsketched_bot_visitors = m.unsketched_bot_visitors + excluded.unsketched_bot_visitors;
    RETURN NULL;
END $$;

-- A sketch cannot forget: a changed or removed day rebuilds its month from
-- the days left.
CREATE FUNCTION analytics_month_sketches_redo()
RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    CREATE TEMP TABLE analytics_touched_months ON COMMIT DROP AS
    SELECT DISTINCT r.client_id, date_trunc('month', r.day)::date AS month FROM removed r;
    IF TG_OP = 'UPDATE' THEN
        INSERT INTO analytics_touched_months
        SELECT DISTINCT a.client_id, date_trunc('month', a.day)::date FROM added a
        EXCEPT SELECT * FROM analytics_touched_months;
    END IF;
    DELETE FROM widget_month_sketches m
     USING analytics_touched_months t
     WHERE m.client_id = t.client_id AND m.month = t.month;
    -- Month by month through the (client_id, day) key: a join would hash
    -- the whole table.
    INSERT INTO widget_month_sketches
    SELECT t.client_id, t.month, d.visitors, d.bots, d.unsketched, d.unsketched_bots
      FROM analytics_touched_months t
     CROSS JOIN LATERAL (
           SELECT count(*) AS days,
                  hll_union_agg(s.visitors_sketch) AS visitors, hll_union_agg(s.bot_visitors_sketch) AS bots,
                  coalesce(sum(s.unique_visitors) FILTER (WHERE s.visitors_sketch IS NULL), 0) AS unsketched,
                  coalesce(sum(s.bot_visitors) FILTER (WHERE s.bot_visitors_sketch IS NULL), 0) AS unsketched_bots
             FROM widget_daily_stats s
            WHERE s.client_id = t.client_id
              AND s.day >= t.month AND s.day < (t.month + interval '1 month')::date) d
     WHERE d.days > 0;
    DROP TABLE analytics_touched_months;
    RETURN NULL;
END $$;

-- Transition tables allow one event per trigger.
CREATE TRIGGER widget_month_sketches_insert AFTER INSERT ON widget_daily_stats
    REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION analytics_month_sketches_add();
CREATE TRIGGER widget_month_sketches_update AFTER UPDATE ON widget_daily_stats
    REFERENCING OLD TABLE AS removed NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION analytics_month_sketches_redo();
CREATE TRIGGER widget_month_sketches_delete AFTER DELETE ON widget_daily_stats
    REFERENCING OLD TABLE AS removed
    FOR EACH STATEMENT EXECUTE FUNCTION analytics_month_sketches_redo();

-- The months rolled up so far.
INSERT INTO widget_month_sketches
SELECT s.client_id, date_trunc('month', s.day)::date,
       hll_union_agg(s.visitors_sketch), hll_union_agg(s.bot_visitors_sketch),
       coalesce(sum(s.unique_visitors) FILTER (WHERE s.visitors_sketch IS NULL), 0),
       coalesce(sum(s.bot_visitors) FILTER (WHERE s.bot_visitors_sketch IS NULL), 0)
  FROM widget_daily_stats s
 GROUP BY 1, 2;

-- The rolled-up part of one client's range p_from..p_to, for a union of
-- visitors: each calendar month wholly inside the range as its month row,
-- the days outside those months as their day rows. A plain SQL function:
-- the planner inlines it into the reader's statement.
CREATE FUNCTION analytics_range_sketches(p_client uuid, p_from date, p_to date)
RETURNS TABLE (visitors_sketch hll, bot_visitors_sketch hll,
               unsketched_visitors bigint, unsketched_bot_visitors bigint)
LANGUAGE sql STABLE AS $$
    -- From the first month that starts in the range to the last that ends in it.
    SELECT m.visitors_sketch, m.bot_visitors_sketch, m.unsketched_visitors, m.unsketched_bot_visitors
      FROM widget_month_sketches m
     WHERE m.client_id = p_client
       AND m.month >= (date_trunc('month', p_from - 1) + interval '1 month')::date
       AND m.month < date_trunc('month', p_to + 1)::date
    UNION ALL
    -- The days before the first whole month (all of them if there is none),
    -- then those after the last: two index ranges, no day read twice.
    SELECT s.visitors_sketch, s.bot_visitors_sketch,
           CASE WHEN s.visitors_sketch IS NULL THEN s.unique_visitors ELSE 0 END,
           CASE WHEN s.bot_visitors_sketch IS NULL THEN s.bot_visitors ELSE 0 END
      FROM widget_daily_stats s
     WHERE s.client_id = p_client
       AND s.day >= p_from
       AND s.day < least(p_to + 1, (date_trunc('month', p_from - 1) + interval '1 month')::date)
    UNION ALL
    SELECT s.visitors_sketch, s.bot_visitors_sketch,
           CASE WHEN s.visitors_sketch IS NULL THEN s.unique_visitors ELSE 0 END,
           CASE WHEN s.bot_visitors_sketch IS NULL THEN s.bot_visitors ELSE 0 END
      FROM widget_daily_stats s
     WHERE s.client_id = p_client
       AND s.day >= greatest(date_trunc('month', p_to + 1)::date,
                             (date_trunc('month', p_from - 1) + interval '1 month')::date)
       AND s.day <= p_to
$$;

-- The read API's live days (today, and yesterday until the nightly job) are
-- analytics_day_stats of one client. Its statement was EXECUTEd, planned
-- anew on every call: 1.8 ms of planning for 0.5 ms of work, once per live
-- day and request. Now it is static: one client's calls reuse a generic plan
-- (partitions pruned when it runs); a rollup's, over thousands of clients,
-- is planned for them each time. Otherwise as in V24.
CREATE OR REPLACE FUNCTION analytics_day_stats(p_day date, p_zones text[], p_client uuid, p_skip uuid[] DEFAULT '{}')
RETURNS SETOF widget_daily_stats LANGUAGE plpgsql STABLE
-- A day of every client is ~10^6 events: sorts and hashes in memory, not on disk.
SET work_mem = '128MB'
-- Restored on return; the body chooses per call.
SET plan_cache_mode = auto
AS $fn$
DECLARE
    v_lo timestamptz;
    v_hi timestamptz;
    v_ids uuid[];
BEGIN
    IF p_client IS NOT NULL THEN
        SELECT array_agg(c.time_zone), array_agg(c.id) INTO p_zones, v_ids FROM clients c WHERE c.id = p_client;
        -- The read API's live days: a plan made once per connection (the
        -- query is static) and pruned to the day's partition when it runs.
        -- Planning each call (1.8 ms) cost more than running it (0.5 ms).
        PERFORM set_config('plan_cache_mode', 'force_generic_plan', true);
    ELSE
        SELECT coalesce(array_agg(c.id), '{}') INTO v_ids
          FROM clients c WHERE c.time_zone = ANY (p_zones) AND NOT c.id = ANY (p_skip);
        -- A rollup's clients are thousands: plan for them each time.
        PERFORM set_config('plan_cache_mode', 'force_custom_plan', true);
    END IF;
    SELECT min(analytics_day_start(z, p_day)), max(analytics_day_start(z, p_day + 1))
      INTO v_lo, v_hi FROM unnest(p_zones) z;
    IF v_lo IS NULL THEN
        RETURN;
    END IF;
    RETURN QUERY
    WITH cz AS (
        SELECT c.id, c.time_zone,
               analytics_day_start(c.time_zone, p_day) AS lo, analytics_day_start(c.time_zone, p_day + 1) AS hi
          FROM clients c
         WHERE c.id = ANY (v_ids)
    ),
    ev AS (
        SELECT e.client_id, e.person_id, e.session_id, e.event_name, e.occurred_at, e.event_id,
               e.is_bot, e.referrer_domain, e.utm_source, e.device_type, e.browser, e.os
          FROM session_events e
          JOIN cz ON cz.id = e.client_id
         WHERE e.occurred_at >= v_lo AND e.occurred_at < v_hi
           AND e.occurred_at >= cz.lo AND e.occurred_at < cz.hi
    ),
    -- Per session: its span and whether it converted (hashed), and the
    -- attributes of its first event (one sort; ordered aggregates would sort
    -- each session five times).
    sess_span AS (
        SELECT client_id, session_id,
               extract(epoch FROM max(occurred_at) - min(occurred_at))::float8 AS seconds,
               bool_or(event_name IN ('chat_started', 'client_form_submitted')) AS converted
          FROM ev
         WHERE NOT is_bot AND session_id IS NOT NULL
         GROUP BY client_id, session_id
    ),
    sess_first AS (
        SELECT DISTINCT ON (client_id, session_id) client_id, session_id,
               coalesce(referrer_domain, '(direct)') AS referrer,
               coalesce(utm_source, '(none)') AS utm_source,
               coalesce(device_type, '(unknown)') AS device,
               coalesce(browser, '(unknown)') AS browser,
               coalesce(os, '(unknown)') AS os
          FROM ev
         WHERE NOT is_bot AND session_id IS NOT NULL
         ORDER BY client_id, session_id, occurred_at, event_id
    ),
    sess AS (
        SELECT f.*, s.seconds, s.converted
          FROM sess_first f JOIN sess_span s USING (client_id, session_id)
    ),
    sess_tot AS (
        SELECT client_id, count(*) AS sessions, count(*) FILTER (WHERE converted) AS converted,
               coalesce(sum(seconds), 0)::float8 AS seconds
          FROM sess GROUP BY client_id
    ),
    people AS (
        SELECT p.client_id, count(*) AS visitors,
               count(*) FILTER (WHERE NOT EXISTS (
                   SELECT 1 FROM analytics_visitors v
                    WHERE v.client_id = p.client_id AND v.person_id = p.person_id
                      AND v.first_day < p_day)) AS new_visitors,
               hll_add_agg(hll_hash_text(p.person_id), 13) AS sketch
          FROM (SELECT DISTINCT client_id, person_id FROM ev WHERE NOT is_bot) p
         GROUP BY p.client_id
    ),
    ev_tot AS (
        SELECT client_id,
               count(*) FILTER (WHERE NOT is_bot) AS events,
               count(*) FILTER (WHERE NOT is_bot AND event_name = 'widget_impression') AS impressions,
               count(*) FILTER (WHERE NOT is_bot AND event_name = 'widget_open') AS opens,
               count(*) FILTER (WHERE NOT is_bot AND event_name = 'chat_started') AS chats,
               count(*) FILTER (WHERE NOT is_bot AND event_name = 'message_sent') AS messages,
               count(*) FILTER (WHERE NOT is_bot AND event_name = 'client_form_submitted') AS forms,
               count(*) FILTER (WHERE is_bot) AS bot_events
          FROM ev GROUP BY client_id
    ),
    -- Apart, so that the totals above hash instead of sorting every event.
    bots AS (
        SELECT client_id, count(DISTINCT person_id) AS visitors, count(DISTINCT session_id) AS sessions,
               hll_add_agg(hll_hash_text(person_id), 13) AS sketch
          FROM ev WHERE is_bot GROUP BY client_id
    ),
    names AS (
        SELECT client_id, jsonb_object_agg(event_name, n) AS counts
          FROM (SELECT client_id, event_name, count(*) AS n,
                       row_number() OVER (PARTITION BY client_id ORDER BY count(*) DESC, event_name) AS rk
                  FROM ev WHERE NOT is_bot GROUP BY client_id, event_name) x
         WHERE rk <= 100
         GROUP BY client_id
    ),
    dims AS (
        SELECT client_id, dim, key, count(*) AS n,
               row_number() OVER (PARTITION BY client_id, dim ORDER BY count(*) DESC, key) AS rk
          FROM (SELECT client_id, 'r' AS dim, referrer AS key FROM sess
                UNION ALL SELECT client_id, 'u', utm_source FROM sess
                UNION ALL SELECT client_id, 'd', device FROM sess
                UNION ALL SELECT client_id, 'b', browser FROM sess
                UNION ALL SELECT client_id, 'o', os FROM sess) x
         GROUP BY client_id, dim, key
    ),
    mixes AS (
        SELECT client_id,
               jsonb_object_agg(key, n) FILTER (WHERE dim = 'r') AS referrers,
               jsonb_object_agg(key, n) FILTER (WHERE dim = 'u') AS utm_sources,
               jsonb_object_agg(key, n) FILTER (WHERE dim = 'd') AS devices,
               jsonb_object_agg(key, n) FILTER (WHERE dim = 'b') AS browsers,
               jsonb_object_agg(key, n) FILTER (WHERE dim = 'o') AS os
          FROM dims WHERE rk <= 20 OR dim = 'd'
         GROUP BY client_id
    )
    SELECT t.client_id, p_day,
           coalesce(s.sessions, 0)::int8, coalesce(p.visitors, 0)::int8, coalesce(p.new_visitors, 0)::int8,
           (coalesce(p.visitors, 0) - coalesce(p.new_visitors, 0))::int8,
           t.events::int8, t.impressions::int8, t.opens::int8, t.chats::int8, t.messages::int8, t.forms::int8,
           coalesce(s.converted, 0)::int8, coalesce(s.seconds, 0)::float8,
           coalesce(b.sessions, 0)::int8, coalesce(b.visitors, 0)::int8, t.bot_events::int8,
           coalesce(n.counts, '{}'), coalesce(m.referrers, '{}'), coalesce(m.utm_sources, '{}'),
           coalesce(m.devices, '{}'), coalesce(m.browsers, '{}'), coalesce(m.os, '{}'),
           cz.time_zone,
           coalesce(p.sketch, hll_empty(13)), coalesce(b.sketch, hll_empty(13))
      FROM ev_tot t
      JOIN cz ON cz.id = t.client_id
      LEFT JOIN sess_tot s ON s.client_id = t.client_id
      LEFT JOIN bots b ON b.client_id = t.client_id
      LEFT JOIN people p ON p.client_id = t.client_id
      LEFT JOIN names n ON n.client_id = t.client_id
      LEFT JOIN mixes m ON m.client_id = t.client_id;
END $fn$;

-- The read API's lists now read a range once for all their columns
-- (crates/analytics/src/read.rs).
DROP FUNCTION analytics_top_keys(uuid, date, date, text, integer);
-- The read API builds each statement's days itself, reading the live days
-- once (crates/analytics/src/read.rs): analytics_client_days has no caller.
DROP FUNCTION analytics_client_days(uuid, date, date);
