-- Widget analytics (seed 001): daily rollups per client, the state of the
-- nightly rollup, a first-seen registry for new vs returning visitors, and
-- the functions the rollup, retention and the read API run.
--
-- Definitions (one UTC day D, one client; the same SQL serves the rollup and
-- the read API's "today", so both count alike):
--   events are those with occurred_at in D; bots (is_bot) are left out of
--   every figure but bot_sessions / bot_visitors / bot_events;
--   a session counts on every day it has an event (a session spanning
--   midnight counts on both days); its duration that day is last − first
--   event of that day; its source, device and browser are those of its first
--   event that day; events without a session_id count as events only;
--   unique_visitors = distinct person_id; a visitor is new on D when no
--   earlier day of the registry (analytics_visitors) saw them;
--   converted_sessions = sessions with chat_started or client_form_submitted.

CREATE TABLE widget_daily_stats (
    client_id             uuid             NOT NULL REFERENCES clients (id),
    day                   date             NOT NULL,
    sessions              bigint           NOT NULL,
    unique_visitors       bigint           NOT NULL,
    new_visitors          bigint           NOT NULL,
    returning_visitors    bigint           NOT NULL,
    events                bigint           NOT NULL,
    impressions           bigint           NOT NULL,
    opens                 bigint           NOT NULL,
    chats_started         bigint           NOT NULL,
    messages              bigint           NOT NULL,
    forms_submitted       bigint           NOT NULL,
    converted_sessions    bigint           NOT NULL,
    -- Summable: the average is total / sessions, over one day or a range.
    total_session_seconds double precision NOT NULL,
    bot_sessions          bigint           NOT NULL,
    bot_visitors          bigint           NOT NULL,
    bot_events            bigint           NOT NULL,
    -- {name: count}: the day's top 100 event names; {key: sessions}: the top
    -- 20 referrer domains ('(direct)'), UTM sources ('(none)'), and every
    -- device type / the top 20 browsers and OSes ('(unknown)').
    event_counts          jsonb            NOT NULL,
    referrers             jsonb            NOT NULL,
    utm_sources           jsonb            NOT NULL,
    devices               jsonb            NOT NULL,
    browsers              jsonb            NOT NULL,
    os                    jsonb            NOT NULL,
    PRIMARY KEY (client_id, day)
);

-- The rollup replaces a whole day across clients.
CREATE INDEX widget_daily_stats_by_day ON widget_daily_stats (day);

-- Per UTC day: when its rollup was last written, and when retention removed
-- its raw events (a purged day is never recomputed: its rollup is all that is left).
CREATE TABLE analytics_rollup_days (
    day                  date PRIMARY KEY,
    rolled_up_at         timestamptz,
    clients              bigint,
    raw_events_purged_at timestamptz
);

-- The nightly job's watermark: every event received up to received_until
-- is in the rollups. The next run recomputes the days of events received
-- since (late events), with a margin for transactions still open at the cut.
CREATE TABLE analytics_rollup_state (
    singleton      boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    received_until timestamptz NOT NULL
);

-- First and last day each (human) visitor was seen, per client: what makes
-- a visitor new or returning after their raw events are gone. Written only by
-- the rollup; rows unseen for the session retention period are deleted.
CREATE TABLE analytics_visitors (
    client_id uuid NOT NULL REFERENCES clients (id),
    person_id text NOT NULL,
    first_day date NOT NULL,
    last_day  date NOT NULL,
    PRIMARY KEY (client_id, person_id)
);
CREATE INDEX analytics_visitors_by_last_day ON analytics_visitors (last_day);

-- Late-event detection (received_at > watermark) and retention's "any event
-- on this day?" checks. BRIN: a few pages per partition, next to nothing for
-- ingest to maintain, and both columns follow insertion order.
CREATE INDEX session_events_brin_received ON session_events USING brin (received_at, occurred_at);

-- The figures of UTC day p_day for one client, or every client when
-- p_client is null (one row per client with events). Dynamic SQL so each
-- call is planned for its arguments: one client uses (client_id, occurred_at).
CREATE FUNCTION analytics_day_stats(p_day date, p_client uuid)
RETURNS SETOF widget_daily_stats LANGUAGE plpgsql STABLE AS $fn$
BEGIN
    RETURN QUERY EXECUTE format($q$
    WITH ev AS (
        SELECT e.client_id, e.person_id, e.session_id, e.event_name, e.occurred_at, e.event_id,
               e.is_bot, e.referrer_domain, e.utm_source, e.device_type, e.browser, e.os
          FROM session_events e
         WHERE e.occurred_at >= ($1::timestamp AT TIME ZONE 'UTC')
           AND e.occurred_at < (($1 + 1)::timestamp AT TIME ZONE 'UTC') %s
    ),
    sess AS (
        SELECT client_id, session_id,
               extract(epoch FROM max(occurred_at) - min(occurred_at))::float8 AS seconds,
               bool_or(event_name IN ('chat_started', 'client_form_submitted')) AS converted,
               (array_agg(coalesce(referrer_domain, '(direct)') ORDER BY occurred_at, event_id))[1] AS referrer,
               (array_agg(coalesce(utm_source, '(none)') ORDER BY occurred_at, event_id))[1] AS utm_source,
               (array_agg(coalesce(device_type, '(unknown)') ORDER BY occurred_at, event_id))[1] AS device,
               (array_agg(coalesce(browser, '(unknown)') ORDER BY occurred_at, event_id))[1] AS browser,
               (array_agg(coalesce(os, '(unknown)') ORDER BY occurred_at, event_id))[1] AS os
          FROM ev
         WHERE NOT is_bot AND session_id IS NOT NULL
         GROUP BY client_id, session_id
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
                      AND v.first_day < $1)) AS new_visitors
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
               count(*) FILTER (WHERE is_bot) AS bot_events,
               count(DISTINCT person_id) FILTER (WHERE is_bot) AS bot_visitors,
               count(DISTINCT session_id) FILTER (WHERE is_bot) AS bot_sessions
          FROM ev GROUP BY client_id
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
           t.bot_sessions::int8, t.bot_visitors::int8, t.bot_events::int8,
           coalesce(n.counts, '{}'), coalesce(m.referrers, '{}'), coalesce(m.utm_sources, '{}'),
           coalesce(m.devices, '{}'), coalesce(m.browsers, '{}'), coalesce(m.os, '{}')
      FROM ev_tot t
      LEFT JOIN sess_tot s ON s.client_id = t.client_id
      LEFT JOIN people p ON p.client_id = t.client_id
      LEFT JOIN names n ON n.client_id = t.client_id
      LEFT JOIN mixes m ON m.client_id = t.client_id
    $q$, CASE WHEN p_client IS NULL THEN '' ELSE 'AND e.client_id = $2' END)
    USING p_day, p_client;
END $fn$;

-- Replaces the rollup of UTC day p_day for every client, then records the
-- day's visitors in the registry (after computing: "new" means not seen on
-- an earlier day, so a rerun gives the same figures). A day whose raw events
-- retention removed is left alone: returns rolled = false. Returns in
-- stale_days (YYYY-MM-DD, comma-separated) the later days that counted one
-- of this day's visitors as new: a late event showed they came earlier, so
-- those days need their rollup again.
CREATE FUNCTION analytics_rollup_day(p_day date)
RETURNS TABLE (rolled boolean, clients bigint, stale_days text)
LANGUAGE plpgsql AS $$
DECLARE
    n bigint;
    stale text;
BEGIN
    IF EXISTS (SELECT 1 FROM analytics_rollup_days r
                WHERE r.day = p_day AND r.raw_events_purged_at IS NOT NULL) THEN
        RETURN QUERY SELECT false, 0::int8, ''::text;
        RETURN;
    END IF;
    DELETE FROM widget_daily_stats s WHERE s.day = p_day;
    INSERT INTO widget_daily_stats SELECT * FROM analytics_day_stats(p_day, NULL);
    GET DIAGNOSTICS n = ROW_COUNT;
    SELECT coalesce(string_agg(DISTINCT to_char(v.first_day, 'YYYY-MM-DD'), ','), '') INTO stale
      FROM analytics_visitors v
      JOIN (SELECT DISTINCT e.client_id, e.person_id
              FROM session_events e
             WHERE e.occurred_at >= (p_day::timestamp AT TIME ZONE 'UTC')
               AND e.occurred_at < ((p_day + 1)::timestamp AT TIME ZONE 'UTC')
               AND NOT e.is_bot) p
        ON p.client_id = v.client_id AND p.person_id = v.person_id
     WHERE v.first_day > p_day;
    INSERT INTO analytics_visitors AS v (client_id, person_id, first_day, last_day)
    SELECT e.client_id, e.person_id, p_day, p_day
      FROM session_events e
     WHERE e.occurred_at >= (p_day::timestamp AT TIME ZONE 'UTC')
       AND e.occurred_at < ((p_day + 1)::timestamp AT TIME ZONE 'UTC')
       AND NOT e.is_bot
     GROUP BY e.client_id, e.person_id
     ORDER BY e.client_id, e.person_id
    ON CONFLICT (client_id, person_id) DO UPDATE
       SET first_day = least(v.first_day, excluded.first_day),
           last_day = greatest(v.last_day, excluded.last_day);
    INSERT INTO analytics_rollup_days AS r (day, rolled_up_at, clients)
    VALUES (p_day, clock_timestamp(), n)
    ON CONFLICT (day) DO UPDATE SET rolled_up_at = excluded.rolled_up_at, clients = excluded.clients;
    RETURN QUERY SELECT true, n, stale;
END $$;

-- UTC days before p_before with events received in (p_since, p_until]:
-- late events whose days need a new rollup.
CREATE FUNCTION analytics_changed_days(p_since timestamptz, p_until timestamptz, p_before date)
RETURNS SETOF date LANGUAGE sql STABLE AS $$
    SELECT DISTINCT (e.occurred_at AT TIME ZONE 'UTC')::date
      FROM session_events e
     WHERE e.received_at > p_since AND e.received_at <= p_until
       AND e.occurred_at < (p_before::timestamp AT TIME ZONE 'UTC')
     ORDER BY 1
$$;

-- The range partitions of session_events with their bounds.
CREATE FUNCTION analytics_event_partitions()
RETURNS TABLE (name text, lo timestamptz, hi timestamptz) LANGUAGE sql STABLE AS $$
    SELECT c.relname::text,
           (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'FROM \(''([^'']+)''\)'))[1]::timestamptz,
           (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'TO \(''([^'']+)''\)'))[1]::timestamptz
      FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
     WHERE i.inhparent = 'session_events'::regclass
       AND pg_get_expr(c.relpartbound, c.oid) <> 'DEFAULT'
     ORDER BY 2
$$;

-- The monthly partitions of session_events entirely before p_cutoff, and
-- whether each may be dropped: only when every UTC day in it that has events
-- has a written rollup. Returns the bounds the drop needs.
CREATE FUNCTION analytics_expired_event_partitions(p_cutoff timestamptz)
RETURNS TABLE (partition_name text, lower_bound timestamptz, upper_bound timestamptz,
               droppable boolean, unrolled_days date[])
LANGUAGE plpgsql STABLE AS $$
DECLARE
    p record;
    missing date[];
    has_events boolean;
BEGIN
    FOR p IN SELECT * FROM analytics_event_partitions()
    LOOP
        CONTINUE WHEN p.hi > p_cutoff;
        SELECT coalesce(array_agg(d::date ORDER BY d), '{}') INTO missing
          FROM generate_series((p.lo AT TIME ZONE 'UTC')::date,
                               ((p.hi AT TIME ZONE 'UTC') - interval '1 microsecond')::date,
                               interval '1 day') d
         WHERE NOT EXISTS (SELECT 1 FROM analytics_rollup_days r
                            WHERE r.day = d::date
                              AND (r.rolled_up_at IS NOT NULL OR r.raw_events_purged_at IS NOT NULL));
        has_events := false;
        IF cardinality(missing) > 0 THEN
            EXECUTE format('SELECT EXISTS (SELECT 1 FROM %I e WHERE (e.occurred_at AT TIME ZONE ''UTC'')::date = ANY($1))',
                           p.name)
               INTO has_events USING missing;
        END IF;
        partition_name := p.name; lower_bound := p.lo; upper_bound := p.hi;
        droppable := NOT has_events;
        unrolled_days := CASE WHEN has_events THEN missing ELSE '{}'::date[] END;
        RETURN NEXT;
    END LOOP;
END $$;

-- Drops one expired partition (after checking it is one of session_events')
-- and marks its days purged. lock_timeout: dropping takes an exclusive lock
-- on session_events; rather than queue ingest behind a long reader, give up
-- and try again the next night.
CREATE FUNCTION analytics_drop_event_partition(p_name text)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    lo timestamptz;
    hi timestamptz;
    n bigint;
BEGIN
    SELECT x.lo, x.hi INTO lo, hi FROM analytics_event_partitions() x WHERE x.name = p_name;
    IF lo IS NULL THEN
        RAISE EXCEPTION '% is not a monthly partition of session_events', p_name;
    END IF;
    SET LOCAL lock_timeout = '5s';
    EXECUTE format('SELECT count(*) FROM %I', p_name) INTO n;
    EXECUTE format('DROP TABLE %I', p_name);
    INSERT INTO analytics_rollup_days AS r (day, raw_events_purged_at)
    SELECT d::date, now()
      FROM generate_series((lo AT TIME ZONE 'UTC')::date,
                           ((hi AT TIME ZONE 'UTC') - interval '1 microsecond')::date, interval '1 day') d
    ON CONFLICT (day) DO UPDATE SET raw_events_purged_at = excluded.raw_events_purged_at;
    RETURN n;
END $$;

-- One batch of expired sessions (last seen before p_before, and both their
-- first and last day rolled up), found per client through
-- widget_sessions_by_last_seen. Returns how many were deleted.
CREATE FUNCTION analytics_delete_expired_sessions(p_before timestamptz, p_batch integer)
RETURNS bigint LANGUAGE sql AS $$
    WITH victims AS (
        SELECT x.client_id, x.session_id
          FROM clients c
         CROSS JOIN LATERAL (
               SELECT s.client_id, s.session_id
                 FROM widget_sessions s
                WHERE s.client_id = c.id AND s.last_seen_at < p_before
                  AND EXISTS (SELECT 1 FROM analytics_rollup_days r
                               WHERE r.day = (s.last_seen_at AT TIME ZONE 'UTC')::date
                                 AND (r.rolled_up_at IS NOT NULL OR r.raw_events_purged_at IS NOT NULL))
                  AND EXISTS (SELECT 1 FROM analytics_rollup_days r
                               WHERE r.day = (s.first_seen_at AT TIME ZONE 'UTC')::date
                                 AND (r.rolled_up_at IS NOT NULL OR r.raw_events_purged_at IS NOT NULL))
                ORDER BY s.last_seen_at
                LIMIT p_batch) x
         LIMIT p_batch
    ), deleted AS (
        DELETE FROM widget_sessions w USING victims v
         WHERE w.client_id = v.client_id AND w.session_id = v.session_id
        RETURNING 1
    )
    SELECT count(*) FROM deleted
$$;

-- One batch of events in the default partition (imports outside every
-- monthly partition) before p_before whose day is rolled up.
CREATE FUNCTION analytics_delete_expired_default_events(p_before timestamptz, p_batch integer)
RETURNS bigint LANGUAGE sql AS $$
    WITH deleted AS (
        DELETE FROM session_events_default WHERE ctid = ANY (ARRAY(
            SELECT e.ctid FROM session_events_default e
             WHERE e.occurred_at < p_before
               AND EXISTS (SELECT 1 FROM analytics_rollup_days r
                            WHERE r.day = (e.occurred_at AT TIME ZONE 'UTC')::date
                              AND r.rolled_up_at IS NOT NULL)
             LIMIT p_batch))
        RETURNING 1
    )
    SELECT count(*) FROM deleted
$$;

-- One batch of registry rows for visitors unseen since before p_before.
CREATE FUNCTION analytics_delete_expired_visitors(p_before date, p_batch integer)
RETURNS bigint LANGUAGE sql AS $$
    WITH deleted AS (
        DELETE FROM analytics_visitors WHERE ctid = ANY (ARRAY(
            SELECT v.ctid FROM analytics_visitors v WHERE v.last_day < p_before LIMIT p_batch))
        RETURNING 1
    )
    SELECT count(*) FROM deleted
$$;

-- One batch of daily stats before p_before (only when a stats retention is set).
CREATE FUNCTION analytics_delete_expired_stats(p_before date, p_batch integer)
RETURNS bigint LANGUAGE sql AS $$
    WITH deleted AS (
        DELETE FROM widget_daily_stats WHERE ctid = ANY (ARRAY(
            SELECT s.ctid FROM widget_daily_stats s WHERE s.day < p_before LIMIT p_batch))
        RETURNING 1
    )
    SELECT count(*) FROM deleted
$$;

-- The read API's days: UTC days p_from..p_to of one client, from the rollups,
-- and computed from raw events for today and yesterday while their rollup is
-- not written yet (the nightly job runs at 02:00).
CREATE FUNCTION analytics_client_days(p_client uuid, p_from date, p_to date)
RETURNS SETOF widget_daily_stats LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_today date := (now() AT TIME ZONE 'UTC')::date;
    d date;
BEGIN
    RETURN QUERY
    SELECT * FROM widget_daily_stats s
     WHERE s.client_id = p_client AND s.day BETWEEN p_from AND p_to;
    FOR d IN
        SELECT g::date FROM generate_series(greatest(p_from, v_today - 1), least(p_to, v_today), interval '1 day') g
         WHERE NOT EXISTS (SELECT 1 FROM analytics_rollup_days r
                            WHERE r.day = g::date AND r.rolled_up_at IS NOT NULL)
    LOOP
        RETURN QUERY SELECT * FROM analytics_day_stats(d, p_client);
    END LOOP;
END $$;

-- Sums one jsonb {key: count} column over a client's days: the top p_limit keys.
CREATE FUNCTION analytics_top_keys(p_client uuid, p_from date, p_to date, p_column text, p_limit integer)
RETURNS TABLE (key text, n bigint) LANGUAGE plpgsql STABLE AS $$
BEGIN
    IF p_column NOT IN ('event_counts', 'referrers', 'utm_sources', 'devices', 'browsers', 'os') THEN
        RAISE EXCEPTION 'unknown column %', p_column;
    END IF;
    RETURN QUERY EXECUTE format(
        'SELECT j.key, sum(j.value::int8)::int8
           FROM analytics_client_days($1, $2, $3) s, jsonb_each_text(s.%I) j
          GROUP BY j.key ORDER BY 2 DESC, 1 LIMIT $4', p_column)
    USING p_client, p_from, p_to, p_limit;
END $$;
