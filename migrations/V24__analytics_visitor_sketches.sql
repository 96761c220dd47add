-- True unique visitors over any range (issue 17). Until now a range's
-- unique_visitors was the sum of its days' (a visitor back on three days
-- counted three times). Each client-day now also keeps a HyperLogLog sketch
-- of its human visitors and one of its bot visitors (the postgresql-hll
-- extension; docs/METRICS.md states the error bound, docs/DEPLOY.md the
-- extension requirement). Sketches union: the read API's range figures are
-- the cardinality of the union of the range's days.
--
-- The extension: a superuser (or the managed service's admin role) runs
-- CREATE EXTENSION hll once; afterwards this is a no-op for the owner.
CREATE EXTENSION IF NOT EXISTS hll;

-- Appended after time_zone: analytics_day_stats returns whole rows.
-- NULL on a day rolled up before this migration whose raw events were gone
-- already: the read API counts such a day's visitors as before (summed).
ALTER TABLE widget_daily_stats
    ADD COLUMN visitors_sketch hll,
    ADD COLUMN bot_visitors_sketch hll;

-- Every sketch is hll_add_agg(hll_hash_text(person_id), 13): log2m 13
-- (8192 registers, relative standard error 1.04/sqrt(8192) = 1.15%), 5-bit
-- registers, exact while it holds few ids (explicit, then sparse): at most
-- ~5 KiB per client-day. Sketches union only with the same parameters.

-- The range figures read a client's days through analytics_client_days;
-- analytics_day_stats gains the two sketches (the rest as in V15).

CREATE OR REPLACE FUNCTION analytics_day_stats(p_day date, p_zones text[], p_client uuid, p_skip uuid[] DEFAULT '{}')
RETURNS SETOF widget_daily_stats LANGUAGE plpgsql STABLE
-- A day of every client is ~10^6 events: sorts and hashes in memory, not on disk.
SET work_mem = '128MB'
AS $fn$
DECLARE
    lo timestamptz;
    hi timestamptz;
BEGIN
    IF p_client IS NOT NULL THEN
        SELECT array_agg(c.time_zone) INTO p_zones FROM clients c WHERE c.id = p_client;
    END IF;
    SELECT min(analytics_day_start(z, p_day)), max(analytics_day_start(z, p_day + 1))
      INTO lo, hi FROM unnest(p_zones) z;
    IF lo IS NULL THEN
        RETURN;
    END IF;
    RETURN QUERY EXECUTE format($q$
    WITH cz AS (
        SELECT c.id, c.time_zone,
               analytics_day_start(c.time_zone, $1) AS lo, analytics_day_start(c.time_zone, $1 + 1) AS hi
          FROM clients c
         WHERE %s
    ),
    ev AS (
        SELECT e.client_id, e.person_id, e.session_id, e.event_name, e.occurred_at, e.event_id,
               e.is_bot, e.referrer_domain, e.utm_source, e.device_type, e.browser, e.os
          FROM session_events e
          JOIN cz ON cz.id = e.client_id
         WHERE e.occurred_at >= $3 AND e.occurred_at < $4
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
                      AND v.first_day < $1)) AS new_visitors,
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
    SELECT t.client_id, $1::date,
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
      LEFT JOIN mixes m ON m.client_id = t.client_id
    $q$, CASE WHEN p_client IS NULL THEN 'c.time_zone = ANY($2) AND NOT c.id = ANY($6)' ELSE 'c.id = $5' END)
    USING p_day, p_zones, lo, hi, p_client, p_skip;
END $fn$;


-- Days rolled up before this migration whose raw events are still here get
-- their sketches now (cut in the zone each row was cut in); the others keep
-- NULL. One pass over the events, per client and local day.
UPDATE widget_daily_stats s
   SET visitors_sketch = coalesce(x.people, hll_empty(13)),
       bot_visitors_sketch = coalesce(x.bots, hll_empty(13))
  FROM (SELECT d.client_id, d.day,
               hll_add_agg(hll_hash_text(e.person_id), 13) FILTER (WHERE NOT e.is_bot) AS people,
               hll_add_agg(hll_hash_text(e.person_id), 13) FILTER (WHERE e.is_bot) AS bots
          FROM widget_daily_stats d
          JOIN session_events e
            ON e.client_id = d.client_id
           AND e.occurred_at >= analytics_day_start(d.time_zone, d.day)
           AND e.occurred_at < analytics_day_start(d.time_zone, d.day + 1)
         GROUP BY d.client_id, d.day) x
 WHERE s.client_id = x.client_id AND s.day = x.day;
