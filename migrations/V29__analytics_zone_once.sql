-- The client's zone read once per request (issue 17). The read API reads
-- the client's row (its zone, and whether it exists) before it parses the
-- request's dates; the functions it then called read the zone again:
-- analytics_client_live_days, analytics_day_stats (twice: the client's
-- zone, then its row in the statement). They now take the zone they are
-- given, and analytics_day_stats builds its clients from arrays, not from a
-- second read of clients.
--
-- Migrations only add (docs/DEPLOY.md): the three-argument
-- analytics_figures and analytics_client_live_days stay for the version
-- still running during a rollout, as wrappers that read the zone and call
-- the new ones. A later release may drop them.

-- One client's days when p_client is given (p_zones then holds its zone,
-- or NULL to have it read); otherwise every client of p_zones but p_skip.
-- Otherwise as in V25.
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
    v_zones text[];
BEGIN
    IF p_client IS NOT NULL THEN
        -- The read API passes the client's zone it has read; a caller
        -- that passes none (V25's live days, during a rollout) has it read.
        IF p_zones IS NULL THEN
            SELECT array_agg(c.time_zone) INTO p_zones FROM clients c WHERE c.id = p_client;
        ELSIF cardinality(p_zones) <> 1 THEN
            RAISE EXCEPTION 'analytics_day_stats: one client takes its one zone, not %', p_zones;
        END IF;
        v_ids := ARRAY[p_client];
        v_zones := p_zones;
        -- The read API's live days: a plan made once per connection (the
        -- query is static) and pruned to the day's partition when it runs.
        -- Planning each call (1.8 ms) cost more than running it (0.5 ms).
        PERFORM set_config('plan_cache_mode', 'force_generic_plan', true);
    ELSE
        SELECT coalesce(array_agg(c.id), '{}'), coalesce(array_agg(c.time_zone), '{}') INTO v_ids, v_zones
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
          FROM unnest(v_ids, v_zones) c (id, time_zone)
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

-- The client's days from p_from to p_to that are live (today, and days up to
-- a week back that the nightly job has not rolled up), from raw events.
-- Otherwise as in V15, with the zone given.
CREATE FUNCTION analytics_client_live_days(p_client uuid, p_zone text, p_from date, p_to date)
RETURNS SETOF widget_daily_stats LANGUAGE plpgsql STABLE AS $fn$
DECLARE
    today date := (now() AT TIME ZONE p_zone)::date;
    d date;
BEGIN
    IF p_zone IS NULL OR p_to < today - 6 THEN
        RETURN;
    END IF;
    FOR d IN
        SELECT g::date FROM generate_series(greatest(p_from, today - 6), least(p_to, today), interval '1 day') g
         WHERE NOT EXISTS (SELECT 1 FROM analytics_rollup_days r WHERE r.time_zone = p_zone AND r.day = g::date)
           AND NOT EXISTS (SELECT 1 FROM widget_daily_stats s WHERE s.client_id = p_client AND s.day = g::date)
    LOOP
        RETURN QUERY SELECT * FROM analytics_day_stats(d, ARRAY[p_zone], p_client);
    END LOOP;
END $fn$;

-- For the previous release, during a rollout.
CREATE OR REPLACE FUNCTION analytics_client_live_days(p_client uuid, p_from date, p_to date)
RETURNS SETOF widget_daily_stats LANGUAGE sql STABLE AS $fn$
    SELECT * FROM analytics_client_live_days(p_client, (SELECT c.time_zone FROM clients c WHERE c.id = p_client), p_from, p_to)
$fn$;

-- As in V26, with the zone given.
CREATE FUNCTION analytics_figures(p_client uuid, p_zone text, p_firsts date[], p_to date)
RETURNS json LANGUAGE plpgsql STABLE
-- Every call reads one client's days through its keys: a plan for any
-- arguments is as good as one for these.
SET plan_cache_mode = force_generic_plan
AS $fn$
BEGIN
    RETURN (
    -- Today (and yesterday until the nightly job) from raw events, once.
    WITH live AS MATERIALIZED (
        SELECT * FROM analytics_client_live_days(p_client, p_zone, p_firsts[1], p_to)
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

-- For the previous release, during a rollout.
CREATE OR REPLACE FUNCTION analytics_figures(p_client uuid, p_firsts date[], p_to date)
RETURNS json LANGUAGE sql STABLE AS $fn$
    SELECT analytics_figures(p_client, (SELECT c.time_zone FROM clients c WHERE c.id = p_client), p_firsts, p_to)
$fn$;
