-- Widget analytics by each client's reporting time zone (issue 8: "days are
-- cut in that time zone"). Until now every rollup day was a UTC day, so a
-- client in New York saw 19:00–19:00 "days". Unique visitors and sessions per
-- day are distinct counts, which cannot be re-cut from UTC days (or hours)
-- afterwards, so, as Google Analytics and Mixpanel do, each client has one
-- reporting time zone and its days are rolled up in it.
--
-- What changes:
--   clients.time_zone (IANA name, default UTC) decides the client's days;
--   widget_daily_stats.time_zone records the zone a row's day was cut in
--   (a client whose zone changes keeps its older days as they were cut);
--   analytics_rollup_days is per (time_zone, day): the rollup of local day D
--   for every client in that zone, written once D has ended there;
--   analytics_dropped_ranges replaces the per-day purge flag: retention logs
--   the time range of each event partition it drops, and a local day that
--   overlaps one is never recomputed (with zones, a dropped month cuts the
--   days at its edges in half, in every zone but UTC).

-- The zone names a client may have: PostgreSQL's IANA names, without the
-- posix/ and right/ variants and the pseudo-zones. A table (and a foreign
-- key) rather than a CHECK: pg_timezone_names reads the zone files (130 ms).
CREATE TABLE time_zone_names (name text PRIMARY KEY);
INSERT INTO time_zone_names
SELECT name FROM pg_timezone_names
 WHERE name !~ '^(posix|right)/' AND name NOT IN ('posixrules', 'localtime', 'Factory')
ON CONFLICT DO NOTHING;
INSERT INTO time_zone_names VALUES ('UTC') ON CONFLICT DO NOTHING;

ALTER TABLE clients ADD COLUMN time_zone text NOT NULL DEFAULT 'UTC' REFERENCES time_zone_names (name);
-- The rollup picks the clients of a zone.
CREATE INDEX clients_by_time_zone ON clients (time_zone, id);

-- Appended last: rows keep their column order for `SELECT *` functions.
ALTER TABLE widget_daily_stats ADD COLUMN time_zone text NOT NULL DEFAULT 'UTC';

INSERT INTO analytics_rollup_state (singleton, received_until) VALUES (true, '-infinity')
ON CONFLICT (singleton) DO NOTHING;

-- One row per event partition retention dropped: its raw events are gone.
CREATE TABLE analytics_dropped_ranges (
    lo             timestamptz NOT NULL,
    hi             timestamptz NOT NULL,
    partition_name text,
    events         bigint,
    dropped_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (lo, hi)
);
INSERT INTO analytics_dropped_ranges (lo, hi, dropped_at)
SELECT day::timestamp AT TIME ZONE 'UTC', (day + 1)::timestamp AT TIME ZONE 'UTC', raw_events_purged_at
  FROM analytics_rollup_days WHERE raw_events_purged_at IS NOT NULL;

DELETE FROM analytics_rollup_days WHERE rolled_up_at IS NULL;
ALTER TABLE analytics_rollup_days DROP COLUMN raw_events_purged_at;
ALTER TABLE analytics_rollup_days ALTER COLUMN rolled_up_at SET NOT NULL;
ALTER TABLE analytics_rollup_days ADD COLUMN time_zone text NOT NULL DEFAULT 'UTC';
ALTER TABLE analytics_rollup_days ALTER COLUMN time_zone DROP DEFAULT;
ALTER TABLE analytics_rollup_days DROP CONSTRAINT analytics_rollup_days_pkey;
ALTER TABLE analytics_rollup_days ADD PRIMARY KEY (time_zone, day);

DROP FUNCTION analytics_top_keys(uuid, date, date, text, integer);
DROP FUNCTION analytics_client_days(uuid, date, date);
DROP FUNCTION analytics_rollup_day(date);
DROP FUNCTION analytics_day_stats(date, uuid);
DROP FUNCTION analytics_changed_days(timestamptz, timestamptz, date);
DROP FUNCTION analytics_expired_event_partitions(timestamptz);
DROP FUNCTION analytics_drop_event_partition(text);
DROP FUNCTION analytics_delete_expired_sessions(timestamptz, integer);
DROP FUNCTION analytics_delete_expired_default_events(timestamptz, integer);

-- The UTC offset of p_zone at instant p_at.
CREATE FUNCTION analytics_utc_offset(p_zone text, p_at timestamptz)
RETURNS interval LANGUAGE sql STABLE AS $$
    SELECT (p_at AT TIME ZONE p_zone) - (p_at AT TIME ZONE 'UTC')
$$;

-- The first instant of local day p_day in p_zone: the earliest instant whose
-- local date is p_day (chrono's `earliest()` in the read API). Postgres
-- reads a local midnight that happens twice (clocks going back at 01:00, as
-- in the Azores or Cuba) as the later one, so midnight is also read with
-- the offset of three hours before and the earlier kept when it is p_day.
-- When a DST change skips midnight, Postgres already gives the first
-- instant of the day. A plain expression, so the planner inlines it.
CREATE FUNCTION analytics_day_start(p_zone text, p_day date)
RETURNS timestamptz LANGUAGE sql STABLE AS $$
    SELECT least(
        p_day::timestamp AT TIME ZONE p_zone,
        CASE WHEN ((p_day::timestamp - analytics_utc_offset(p_zone, (p_day::timestamp AT TIME ZONE p_zone) - interval '3 hours'))
                       AT TIME ZONE 'UTC' AT TIME ZONE p_zone)::date = p_day
             THEN (p_day::timestamp - analytics_utc_offset(p_zone, (p_day::timestamp AT TIME ZONE p_zone) - interval '3 hours'))
                       AT TIME ZONE 'UTC'
        END)
$$;

-- Whether the raw events of local day p_day in p_zone are (partly) gone:
-- the day overlaps a partition retention dropped.
CREATE FUNCTION analytics_day_purged(p_zone text, p_day date)
RETURNS boolean LANGUAGE sql STABLE AS $$
    SELECT EXISTS (SELECT 1 FROM analytics_dropped_ranges x
                    WHERE x.lo < analytics_day_start(p_zone, p_day + 1)
                      AND x.hi > analytics_day_start(p_zone, p_day))
$$;

-- Whether local day p_day of zone p_zone is settled: its rollup is written,
-- or its raw events are (partly) gone, so its rollup is all there will be.
-- Retention removes only what belongs to settled days.
CREATE FUNCTION analytics_day_settled(p_zone text, p_day date)
RETURNS boolean LANGUAGE sql STABLE AS $$
    SELECT EXISTS (SELECT 1 FROM analytics_rollup_days r WHERE r.time_zone = p_zone AND r.day = p_day)
        OR analytics_day_purged(p_zone, p_day)
$$;

-- The figures of local day p_day for one client (p_client, in its zone), or
-- for every client whose zone is in p_zones but those in p_skip (p_client
-- null): one row per client with events, the same definitions as V10 with
-- the day cut in the client's zone. Dynamic SQL so each call is planned for its arguments: one
-- client reads (client_id, occurred_at); all clients read the day's range.
CREATE FUNCTION analytics_day_stats(p_day date, p_zones text[], p_client uuid, p_skip uuid[] DEFAULT '{}')
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
               count(*) FILTER (WHERE is_bot) AS bot_events
          FROM ev GROUP BY client_id
    ),
    -- Apart, so that the totals above hash instead of sorting every event.
    bots AS (
        SELECT client_id, count(DISTINCT person_id) AS visitors, count(DISTINCT session_id) AS sessions
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
           cz.time_zone
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

-- Replaces the rollup of local day p_day for every client whose zone is in
-- p_zones, then records the day's visitors in the registry (after computing:
-- "new" means not seen on an earlier day, so a rerun gives the same figures)
-- and marks (zone, day) rolled up. A zone where the day overlaps a dropped
-- partition is left alone (purged_zones): some of its raw events are gone.
-- stale_days ("YYYY-MM-DD zone" each): later local days, already
-- over, that counted one of this day's visitors as new in that client's
-- zone; a late event showed they came earlier, so those days need their
-- rollup again. (A later day not over yet is read live, and rolled up when
-- it ends.) A client whose row for p_day was cut in another zone (it has
-- changed zone since) keeps that row unless p_recut (the backfill) asks to
-- cut its day again in its zone of now.
CREATE FUNCTION analytics_rollup_day(p_day date, p_zones text[], p_recut boolean DEFAULT false)
RETURNS TABLE (rolled_zones text[], purged_zones text[], clients bigint, stale_days text[])
LANGUAGE plpgsql AS $$
DECLARE
    zs text[];
    gone text[];
    skip uuid[] := '{}';
    v_lo timestamptz;
    v_hi timestamptz;
    n bigint;
    stale text[];
BEGIN
    SELECT coalesce(array_agg(z ORDER BY z) FILTER (WHERE NOT analytics_day_purged(z, p_day)), '{}'),
           coalesce(array_agg(z ORDER BY z) FILTER (WHERE analytics_day_purged(z, p_day)), '{}')
      INTO zs, gone
      FROM (SELECT DISTINCT unnest(p_zones) AS z) x;
    IF cardinality(zs) = 0 THEN
        RETURN QUERY SELECT zs, gone, 0::int8, '{}'::text[];
        RETURN;
    END IF;
    SELECT min(analytics_day_start(z, p_day)), max(analytics_day_start(z, p_day + 1))
      INTO v_lo, v_hi FROM unnest(zs) z;
    IF NOT p_recut THEN
        SELECT coalesce(array_agg(s.client_id), '{}') INTO skip
          FROM widget_daily_stats s JOIN clients c ON c.id = s.client_id
         WHERE s.day = p_day AND c.time_zone = ANY (zs) AND s.time_zone <> c.time_zone;
    END IF;
    DELETE FROM widget_daily_stats s
     USING clients c
     WHERE s.day = p_day AND c.id = s.client_id AND c.time_zone = ANY (zs) AND NOT c.id = ANY (skip);
    INSERT INTO widget_daily_stats SELECT * FROM analytics_day_stats(p_day, zs, NULL, skip);
    GET DIAGNOSTICS n = ROW_COUNT;
    -- The day's human visitors per client, once for both statements below.
    CREATE TEMP TABLE analytics_day_people ON COMMIT DROP AS
    SELECT DISTINCT e.client_id, e.person_id, b.time_zone
      FROM (SELECT c.id, c.time_zone, analytics_day_start(c.time_zone, p_day) AS lo,
                   analytics_day_start(c.time_zone, p_day + 1) AS hi
              FROM clients c WHERE c.time_zone = ANY (zs) AND NOT c.id = ANY (skip)) b
      JOIN session_events e ON e.client_id = b.id AND e.occurred_at >= b.lo AND e.occurred_at < b.hi
     WHERE e.occurred_at >= v_lo AND e.occurred_at < v_hi AND NOT e.is_bot;
    ANALYZE analytics_day_people;
    SELECT coalesce(array_agg(DISTINCT to_char(v.first_day, 'YYYY-MM-DD') || ' ' || p.time_zone), '{}')
      INTO stale
      FROM analytics_visitors v
      JOIN analytics_day_people p ON p.client_id = v.client_id AND p.person_id = v.person_id
     WHERE v.first_day > p_day
       AND analytics_day_start(p.time_zone, v.first_day + 1) <= now();
    INSERT INTO analytics_visitors AS v (client_id, person_id, first_day, last_day)
    SELECT p.client_id, p.person_id, p_day, p_day
      FROM analytics_day_people p
     ORDER BY p.client_id, p.person_id
    ON CONFLICT (client_id, person_id) DO UPDATE
       SET first_day = least(v.first_day, excluded.first_day),
           last_day = greatest(v.last_day, excluded.last_day);
    DROP TABLE analytics_day_people;
    INSERT INTO analytics_rollup_days AS r (time_zone, day, rolled_up_at, clients)
    SELECT z, p_day, clock_timestamp(), coalesce(w.n, 0)
      FROM unnest(zs) z
      LEFT JOIN (SELECT s.time_zone, count(*) AS n FROM widget_daily_stats s
                  WHERE s.day = p_day AND s.time_zone = ANY (zs) GROUP BY s.time_zone) w ON w.time_zone = z
    ON CONFLICT (time_zone, day) DO UPDATE SET rolled_up_at = excluded.rolled_up_at, clients = excluded.clients;
    RETURN QUERY SELECT zs, gone, n, stale;
END $$;

-- The (day, zones) the nightly run rolls up: every local day of a zone in
-- use that ended in (p_since, p_until], and every local day (ended by
-- p_until) of events received in (p_since, p_until]: late events, and on the
-- first run (p_since = -infinity) every day with events. Ascending.
CREATE FUNCTION analytics_due_days(p_since timestamptz, p_until timestamptz)
RETURNS TABLE (day date, zones text[]) LANGUAGE sql STABLE
-- The planner's estimate over the whole event table sets off JIT, whose
-- compilation (0.7 s at 50 M events) costs more than the query (0.1 s).
SET jit = off
AS $$
    WITH zones AS (SELECT DISTINCT time_zone FROM clients),
    ended AS (
        SELECT z.time_zone, d::date AS day
          FROM zones z,
               generate_series((greatest(p_since, p_until - interval '400 days') AT TIME ZONE z.time_zone)::date - 1,
                               (p_until AT TIME ZONE z.time_zone)::date, interval '1 day') d
         WHERE p_since > '-infinity'
           AND analytics_day_start(z.time_zone, d::date + 1) > p_since
           AND analytics_day_start(z.time_zone, d::date + 1) <= p_until
    ),
    -- An event that occurred after p_since belongs to a day that ended after
    -- it: one of `ended`, or one not over yet. Only events from before
    -- p_since can add days (all of them on the first run).
    late AS (
        SELECT DISTINCT c.time_zone, (e.occurred_at AT TIME ZONE c.time_zone)::date AS day
          FROM session_events e
          JOIN clients c ON c.id = e.client_id
         WHERE e.received_at > p_since AND e.received_at <= p_until
           AND (e.occurred_at <= p_since OR p_since = '-infinity')
    ),
    due AS (
        SELECT * FROM ended
        UNION
        SELECT * FROM late WHERE analytics_day_start(late.time_zone, late.day + 1) <= p_until
    )
    SELECT day, array_agg(time_zone ORDER BY time_zone) FROM due GROUP BY day ORDER BY day
$$;

-- The monthly partitions of session_events entirely before p_cutoff, and
-- whether each may be dropped: only when every local day that overlaps it,
-- in every zone in use, is settled or has no events of that zone's clients
-- that are not rolled up. A day is looked at whole, across partitions: once
-- the partition goes, a day at its edge is purged and can no longer be
-- rolled up, even with its events in the next month. "Not rolled up" is per
-- client: a client that moved from another zone has its days there already.
-- unrolled_days lists the days that hold the drop back ("YYYY-MM-DD zone"):
-- the nightly job rolls them up, then asks again.
CREATE FUNCTION analytics_expired_event_partitions(p_cutoff timestamptz)
RETURNS TABLE (partition_name text, lower_bound timestamptz, upper_bound timestamptz,
               droppable boolean, unrolled_days text[])
LANGUAGE plpgsql STABLE AS $$
DECLARE
    p record;
BEGIN
    FOR p IN SELECT * FROM analytics_event_partitions()
    LOOP
        CONTINUE WHEN p.hi > p_cutoff;
        SELECT coalesce(array_agg(format('%s %s', d::date, z.time_zone) ORDER BY z.time_zone, d), '{}')
          INTO unrolled_days
          FROM (SELECT DISTINCT time_zone FROM clients) z,
               generate_series((p.lo AT TIME ZONE z.time_zone)::date,
                               ((p.hi - interval '1 microsecond') AT TIME ZONE z.time_zone)::date,
                               interval '1 day') d
         WHERE NOT analytics_day_settled(z.time_zone, d::date)
           AND EXISTS (
               SELECT 1 FROM session_events e JOIN clients c ON c.id = e.client_id
                WHERE c.time_zone = z.time_zone
                  AND e.occurred_at >= analytics_day_start(z.time_zone, d::date)
                  AND e.occurred_at < analytics_day_start(z.time_zone, d::date + 1)
                  AND NOT EXISTS (SELECT 1 FROM widget_daily_stats s
                                   WHERE s.client_id = e.client_id AND s.day = d::date));
        partition_name := p.name; lower_bound := p.lo; upper_bound := p.hi;
        droppable := cardinality(unrolled_days) = 0;
        RETURN NEXT;
    END LOOP;
END $$;

-- Drops one expired partition (after checking it is one of session_events')
-- and logs its range in analytics_dropped_ranges. lock_timeout: dropping takes
-- an exclusive lock on session_events; rather than queue ingest behind a
-- long reader, give up and try again the next night.
CREATE FUNCTION analytics_drop_event_partition(p_name text)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    v_lo timestamptz;
    v_hi timestamptz;
    n bigint;
BEGIN
    SELECT x.lo, x.hi INTO v_lo, v_hi FROM analytics_event_partitions() x WHERE x.name = p_name;
    IF v_lo IS NULL THEN
        RAISE EXCEPTION '% is not a monthly partition of session_events', p_name;
    END IF;
    SET LOCAL lock_timeout = '5s';
    EXECUTE format('SELECT count(*) FROM %I', p_name) INTO n;
    EXECUTE format('DROP TABLE %I', p_name);
    INSERT INTO analytics_dropped_ranges (lo, hi, partition_name, events)
    VALUES (v_lo, v_hi, p_name, n)
    ON CONFLICT (lo, hi) DO UPDATE SET events = excluded.events, dropped_at = now();
    RETURN n;
END $$;

-- One batch of expired sessions (last seen before p_before, both their first
-- and last local day settled), walking clients in id order from
-- p_from_client so each client is probed about once per run. Returns how
-- many were deleted and the client to continue from.
CREATE FUNCTION analytics_delete_expired_sessions(p_before timestamptz, p_batch integer, p_from_client uuid)
RETURNS TABLE (deleted bigint, next_client uuid) LANGUAGE sql AS $$
    WITH victims AS (
        SELECT x.client_id, x.session_id
          FROM clients c
         CROSS JOIN LATERAL (
               SELECT s.client_id, s.session_id
                 FROM widget_sessions s
                WHERE s.client_id = c.id AND s.last_seen_at < p_before
                  AND analytics_day_settled(c.time_zone, (s.last_seen_at AT TIME ZONE c.time_zone)::date)
                  AND analytics_day_settled(c.time_zone, (s.first_seen_at AT TIME ZONE c.time_zone)::date)
                ORDER BY s.last_seen_at
                LIMIT p_batch) x
         WHERE c.id >= p_from_client
         ORDER BY c.id
         LIMIT p_batch
    ), gone AS (
        DELETE FROM widget_sessions w USING victims v
         WHERE w.client_id = v.client_id AND w.session_id = v.session_id
        RETURNING w.client_id
    )
    SELECT (SELECT count(*) FROM gone), (SELECT g.client_id FROM gone g ORDER BY g.client_id DESC LIMIT 1)
$$;

-- One batch of events in the default partition (imports outside every
-- monthly partition) before p_before whose local day is settled.
CREATE FUNCTION analytics_delete_expired_default_events(p_before timestamptz, p_batch integer)
RETURNS bigint LANGUAGE sql AS $$
    WITH deleted AS (
        DELETE FROM session_events_default WHERE ctid = ANY (ARRAY(
            SELECT e.ctid FROM session_events_default e JOIN clients c ON c.id = e.client_id
             WHERE e.occurred_at < p_before
               AND analytics_day_settled(c.time_zone, (e.occurred_at AT TIME ZONE c.time_zone)::date)
             LIMIT p_batch))
        RETURNING 1
    )
    SELECT count(*) FROM deleted
$$;

-- The read API's live days: the client's local days of the last week (in
-- p_from..p_to) that have no rollup yet, computed from raw events with the
-- rollup's own SQL: today, yesterday until the nightly job has rolled it up,
-- and any day a failed night left behind. Everything else is read from
-- widget_daily_stats.
CREATE FUNCTION analytics_client_live_days(p_client uuid, p_from date, p_to date)
RETURNS SETOF widget_daily_stats LANGUAGE plpgsql STABLE AS $$
DECLARE
    zone text := (SELECT c.time_zone FROM clients c WHERE c.id = p_client);
    today date := (now() AT TIME ZONE zone)::date;
    d date;
BEGIN
    IF zone IS NULL OR p_to < today - 6 THEN
        RETURN;
    END IF;
    FOR d IN
        SELECT g::date FROM generate_series(greatest(p_from, today - 6), least(p_to, today), interval '1 day') g
         WHERE NOT EXISTS (SELECT 1 FROM analytics_rollup_days r WHERE r.time_zone = zone AND r.day = g::date)
           AND NOT EXISTS (SELECT 1 FROM widget_daily_stats s WHERE s.client_id = p_client AND s.day = g::date)
    LOOP
        RETURN QUERY SELECT * FROM analytics_day_stats(d, NULL, p_client);
    END LOOP;
END $$;

-- A client's days p_from..p_to: the rollups plus the live days. A plain SQL
-- function, so the planner inlines it and a caller that sums a few columns
-- reads them from widget_daily_stats_totals alone (an index-only scan).
CREATE FUNCTION analytics_client_days(p_client uuid, p_from date, p_to date)
RETURNS SETOF widget_daily_stats LANGUAGE sql STABLE AS $$
    SELECT * FROM widget_daily_stats s WHERE s.client_id = p_client AND s.day BETWEEN p_from AND p_to
    UNION ALL
    SELECT * FROM analytics_client_live_days(p_client, p_from, p_to)
$$;

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
