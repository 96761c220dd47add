-- The summary's and trends' figures as one PL/pgSQL function (issue 17).
-- Sent by the component, their statement was planned on every request:
-- 1.5-2 ms of the summary's 3.5-5 ms in Postgres on the 10 M bench. A
-- function's statement keeps one generic plan per connection. The formulas
-- are docs/METRICS.md's; crates/analytics/src/read.rs decides the buckets.

-- The figures of a client's days in consecutive buckets: bucket i runs from
-- p_firsts[i] (ascending) to the day before p_firsts[i + 1], the last one to
-- p_to. A JSON array, one object per bucket: 'date' (its first day), 'to'
-- (its last) and the figures. The summary asks for two buckets: the range
-- before, and the range.
CREATE FUNCTION analytics_figures(p_client uuid, p_firsts date[], p_to date)
RETURNS json LANGUAGE plpgsql STABLE
-- Every call reads one client's days through its keys: a plan for any
-- arguments is as good as one for these.
SET plan_cache_mode = force_generic_plan
AS $fn$
BEGIN
    RETURN (
    -- Today (and yesterday until the nightly job) from raw events, once.
    WITH live AS MATERIALIZED (
        SELECT * FROM analytics_client_live_days(p_client, p_firsts[1], p_to)
    ),
    -- The summed columns, from the covering index widget_daily_stats_totals.
    days AS (
        SELECT s.day, s.sessions, s.unique_visitors, s.new_visitors, s.events, s.impressions, s.opens,
               s.chats_started, s.messages, s.forms_submitted, s.converted_sessions,
               s.total_session_seconds, s.bot_sessions, s.bot_visitors, s.bot_events
          FROM widget_daily_stats s
         WHERE s.client_id = p_client AND s.day BETWEEN p_firsts[1] AND p_to
        UNION ALL
        SELECT l.day, l.sessions, l.unique_visitors, l.new_visitors, l.events, l.impressions, l.opens,
               l.chats_started, l.messages, l.forms_submitted, l.converted_sessions,
               l.total_session_seconds, l.bot_sessions, l.bot_visitors, l.bot_events
          FROM live l
    ),
    buckets AS (
        SELECT i, p_firsts[i] AS first_day, coalesce(p_firsts[i + 1] - 1, p_to) AS last_day
          FROM generate_subscripts(p_firsts, 1) i
    ),
    -- Counts are sums. day_visitors is a one-day bucket's exact count.
    n AS (
        SELECT b.i, b.first_day, b.last_day,
               coalesce(sum(s.sessions), 0)::int8 AS sessions,
               coalesce(sum(s.unique_visitors), 0)::int8 AS day_visitors,
               coalesce(sum(s.new_visitors), 0)::int8 AS new_visitors,
               coalesce(sum(s.events), 0)::int8 AS events,
               coalesce(sum(s.impressions), 0)::int8 AS impressions,
               coalesce(sum(s.opens), 0)::int8 AS opens,
               coalesce(sum(s.chats_started), 0)::int8 AS chats_started,
               coalesce(sum(s.messages), 0)::int8 AS messages,
               coalesce(sum(s.forms_submitted), 0)::int8 AS forms_submitted,
               coalesce(sum(s.converted_sessions), 0)::int8 AS converted_sessions,
               coalesce(sum(s.total_session_seconds), 0)::float8 AS total_session_seconds,
               coalesce(sum(s.bot_sessions), 0)::int8 AS bot_sessions,
               coalesce(sum(s.bot_visitors), 0)::int8 AS day_bot_visitors,
               coalesce(sum(s.bot_events), 0)::int8 AS bot_events
          FROM buckets b
          LEFT JOIN days s ON width_bucket(s.day, p_firsts) = b.i
         GROUP BY b.i, b.first_day, b.last_day
    ),
    -- Visitors once per bucket: one day's exact count, or the cardinality of
    -- the union of the whole months', the other days' and the live days'
    -- sketches (V24, V25); days without a sketch add their own count.
    t AS (
        SELECT n.*,
               CASE WHEN n.first_day = n.last_day THEN n.day_visitors ELSE v.visitors END AS unique_visitors,
               CASE WHEN n.first_day = n.last_day THEN n.day_bot_visitors ELSE v.bot_visitors END AS bot_visitors
          FROM n,
               LATERAL (
                 SELECT round(coalesce(hll_cardinality(hll_union_agg(k.visitors_sketch)), 0))::int8
                          + coalesce(sum(k.unsketched_visitors), 0)::int8 AS visitors,
                        round(coalesce(hll_cardinality(hll_union_agg(k.bot_visitors_sketch)), 0))::int8
                          + coalesce(sum(k.unsketched_bot_visitors), 0)::int8 AS bot_visitors
                   FROM (SELECT r.* FROM analytics_range_sketches(p_client, n.first_day, n.last_day) r
                          WHERE n.first_day < n.last_day
                         UNION ALL
                         SELECT l.visitors_sketch, l.bot_visitors_sketch, 0, 0 FROM live l
                          WHERE n.first_day < n.last_day AND l.day BETWEEN n.first_day AND n.last_day) k) v
    )
    -- json, not jsonb: built as written, 2 ms less for 365 buckets. An
    -- estimate of the union can fall below the exact count of new visitors:
    -- new is capped at unique.
    SELECT json_agg(json_build_object(
               'date', to_char(t.first_day, 'YYYY-MM-DD'),
               'to', to_char(t.last_day, 'YYYY-MM-DD'),
               'sessions', t.sessions,
               'unique_visitors', t.unique_visitors,
               'new_visitors', least(t.new_visitors, t.unique_visitors),
               'returning_visitors', greatest(t.unique_visitors - t.new_visitors, 0),
               'events', t.events,
               'impressions', t.impressions,
               'opens', t.opens,
               'chats_started', t.chats_started,
               'messages', t.messages,
               'forms_submitted', t.forms_submitted,
               'converted_sessions', t.converted_sessions,
               'conversion_rate', CASE WHEN t.sessions > 0
                   THEN round(t.converted_sessions::numeric / t.sessions, 4) ELSE 0 END,
               'avg_session_duration_s', CASE WHEN t.sessions > 0
                   THEN round((t.total_session_seconds / t.sessions)::numeric, 1) ELSE 0 END,
               'bot_sessions', t.bot_sessions,
               'bot_visitors', t.bot_visitors,
               'bot_events', t.bot_events) ORDER BY t.i)
      FROM t);
END $fn$;
