-- Idempotent ingest (issue 21): one stored event per (client_id, event_id)
-- whatever its timestamp. session_events is partitioned by occurred_at, so
-- its unique key must include it and cannot tell a retry with a new
-- timestamp from a new event: event_keys claims each id once per client
-- (kept for the raw-event retention: the nightly job deletes older keys).
-- A resent batch also stores its rejected events once, and a rejected event
-- that is not an object (JSON null) is kept as the JSON value null.

CREATE TABLE event_keys (
    client_id   uuid        NOT NULL,
    event_id    uuid        NOT NULL,
    occurred_at timestamptz NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (client_id, event_id)
);
-- Retention deletes by age: append-mostly, so BRIN is enough.
CREATE INDEX event_keys_received ON event_keys USING brin (received_at);

-- The events stored before this migration claim their ids.
INSERT INTO event_keys (client_id, event_id, occurred_at, received_at)
SELECT DISTINCT ON (client_id, event_id) client_id, event_id, occurred_at, received_at
  FROM session_events
 ORDER BY client_id, event_id, received_at;

-- One stored copy of each rejected payload per client.
DELETE FROM rejected_events r
 USING rejected_events k
 WHERE k.client_id = r.client_id AND md5(k.payload::text) = md5(r.payload::text) AND k.id < r.id;
CREATE UNIQUE INDEX rejected_events_once ON rejected_events (client_id, md5(payload::text));

DROP FUNCTION ingest_write_batch(jsonb, text, text, text, text, text, text, text, boolean, text,
                                 text, text, jsonb, bigint, text, text);

-- The whole batch in one statement: claim the event ids, insert the events
-- whose id is new, fold them into their sessions, keep the rejected events
-- (once each) within the per-client hourly cap, and cache a newly parsed user
-- agent. Returns how many rows each part wrote and the ids that were
-- duplicates.
CREATE FUNCTION ingest_write_batch(
    p_events jsonb, p_client_id text, p_person_id text,
    p_device_type text, p_browser text, p_browser_version text, p_os text, p_os_version text,
    p_is_bot boolean, p_client_ip text, p_locale text, p_screen text,
    p_rejections jsonb, p_rejected_cap bigint, p_new_user_agent text, p_parser text)
RETURNS TABLE (n_inserted bigint, n_sessions bigint, n_rejections_stored bigint,
               n_user_agents_cached bigint, duplicates text[])
LANGUAGE plpgsql AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    WITH batch AS (
        SELECT * FROM jsonb_to_recordset(p_events::jsonb) AS e(
            event_id uuid, session_id text, event_name text, occurred_at timestamptz,
            widget_displayed_at bigint, duration_s float8, page_url text, domain text,
            referrer text, referrer_domain text, utm_source text, utm_medium text,
            utm_campaign text, utm_term text, utm_content text, gclid text, fbclid text,
            fbc text, properties jsonb)
    ),
    -- Claims each event id for the client; an id claimed before (a retry,
    -- even with another timestamp) is a duplicate and is not stored again.
    new_keys AS (
        INSERT INTO event_keys (client_id, event_id, occurred_at)
        SELECT p_client_id::text::uuid, b.event_id, b.occurred_at
          FROM batch b
         ORDER BY b.event_id
        ON CONFLICT (client_id, event_id) DO NOTHING
        RETURNING event_id
    ),
    inserted AS (
        INSERT INTO session_events (
            event_id, client_id, person_id, session_id, event_name, occurred_at,
            widget_displayed_at, duration_s, page_url, domain, referrer, referrer_domain,
            utm_source, utm_medium, utm_campaign, utm_term, utm_content, gclid, fbclid, fbc,
            device_type, browser, os, is_bot, client_ip, properties)
        SELECT b.event_id, p_client_id::text::uuid, p_person_id::text, b.session_id, b.event_name, b.occurred_at,
               b.widget_displayed_at, b.duration_s, b.page_url, b.domain, b.referrer, b.referrer_domain,
               b.utm_source, b.utm_medium, b.utm_campaign, b.utm_term, b.utm_content, b.gclid, b.fbclid, b.fbc,
               p_device_type::text, p_browser::text, p_os::text, p_is_bot::bool, p_client_ip::text, coalesce(b.properties, '{}'::jsonb)
          FROM batch b
          JOIN new_keys k ON k.event_id = b.event_id
         -- One lock order for every writer: concurrent retries cannot deadlock.
         ORDER BY b.occurred_at, b.event_id
        ON CONFLICT (event_id, occurred_at) DO NOTHING
        RETURNING session_id, occurred_at, event_name, page_url, referrer, referrer_domain,
                  utm_source, utm_medium, utm_campaign, utm_term, utm_content, gclid, fbclid, fbc
    ),
    per_session AS (
        SELECT session_id,
               min(occurred_at) AS first_seen_at,
               max(occurred_at) AS last_seen_at,
               count(*)::int AS event_count,
               -- First touch: the attribution of the session's earliest event.
               (array_agg(page_url ORDER BY occurred_at))[1] AS landing_page,
               (array_agg(referrer ORDER BY occurred_at))[1] AS referrer,
               (array_agg(referrer_domain ORDER BY occurred_at))[1] AS referrer_domain,
               (array_agg(utm_source ORDER BY occurred_at))[1] AS utm_source,
               (array_agg(utm_medium ORDER BY occurred_at))[1] AS utm_medium,
               (array_agg(utm_campaign ORDER BY occurred_at))[1] AS utm_campaign,
               (array_agg(utm_term ORDER BY occurred_at))[1] AS utm_term,
               (array_agg(utm_content ORDER BY occurred_at))[1] AS utm_content,
               (array_agg(gclid ORDER BY occurred_at))[1] AS gclid,
               (array_agg(fbclid ORDER BY occurred_at))[1] AS fbclid,
               (array_agg(fbc ORDER BY occurred_at))[1] AS fbc,
               bool_or(event_name = 'chat_started') AS chat_started,
               bool_or(event_name = 'client_form_submitted') AS form_submitted
          FROM inserted
         GROUP BY session_id
    ),
    sessions AS (
        INSERT INTO widget_sessions AS s (
            client_id, session_id, person_id, first_seen_at, last_seen_at, event_count,
            landing_page, referrer, referrer_domain, utm_source, utm_medium, utm_campaign,
            utm_term, utm_content, gclid, fbclid, fbc, device_type, browser, browser_version,
            os, os_version, is_bot, locale, screen, chat_started, form_submitted)
        SELECT p_client_id::text::uuid, p.session_id, p_person_id::text, p.first_seen_at, p.last_seen_at, p.event_count,
               p.landing_page, p.referrer, p.referrer_domain, p.utm_source, p.utm_medium, p.utm_campaign,
               p.utm_term, p.utm_content, p.gclid, p.fbclid, p.fbc, p_device_type::text, p_browser::text, p_browser_version::text,
               p_os::text, p_os_version::text, p_is_bot::bool, p_locale::text, p_screen::text, p.chat_started, p.form_submitted
          FROM per_session p
         ORDER BY p.session_id
        ON CONFLICT (client_id, session_id) DO UPDATE SET
            first_seen_at   = least(s.first_seen_at, excluded.first_seen_at),
            last_seen_at    = greatest(s.last_seen_at, excluded.last_seen_at),
            event_count     = s.event_count + excluded.event_count,
            landing_page    = CASE WHEN excluded.first_seen_at < s.first_seen_at THEN excluded.landing_page ELSE s.landing_page END,
            referrer        = CASE WHEN excluded.first_seen_at < s.first_seen_at THEN excluded.referrer ELSE s.referrer END,
            referrer_domain = CASE WHEN excluded.first_seen_at < s.first_seen_at THEN excluded.referrer_domain ELSE s.referrer_domain END,
            utm_source      = CASE WHEN excluded.first_seen_at < s.first_seen_at THEN excluded.utm_source ELSE s.utm_source END,
            utm_medium      = CASE WHEN excluded.first_seen_at < s.first_seen_at THEN excluded.utm_medium ELSE s.utm_medium END,
            utm_campaign    = CASE WHEN excluded.first_seen_at < s.first_seen_at THEN excluded.utm_campaign ELSE s.utm_campaign END,
            utm_term        = CASE WHEN excluded.first_seen_at < s.first_seen_at THEN excluded.utm_term ELSE s.utm_term END,
            utm_content     = CASE WHEN excluded.first_seen_at < s.first_seen_at THEN excluded.utm_content ELSE s.utm_content END,
            gclid           = coalesce(s.gclid, excluded.gclid),
            fbclid          = coalesce(s.fbclid, excluded.fbclid),
            fbc             = coalesce(s.fbc, excluded.fbc),
            chat_started    = s.chat_started OR excluded.chat_started,
            form_submitted  = s.form_submitted OR excluded.form_submitted
        RETURNING 1
    ),
    recent_rejections AS (
        SELECT count(*) AS n FROM (
            SELECT 1 FROM rejected_events
             WHERE client_id = p_client_id::text::uuid AND received_at > now() - interval '1 hour'
             LIMIT p_rejected_cap::int8) r
    ),
    rejections AS (
        INSERT INTO rejected_events (client_id, event_index, event_id, field, reason, payload)
        SELECT p_client_id::text::uuid, r.event_index, r.event_id, r.field, r.reason,
               coalesce(r.payload, 'null'::jsonb)
          FROM jsonb_to_recordset(p_rejections::jsonb) AS r(event_index int, event_id text, field text, reason text, payload jsonb)
         LIMIT greatest(0, p_rejected_cap::int8 - (SELECT n FROM recent_rejections))
        ON CONFLICT (client_id, md5(payload::text)) DO NOTHING
        RETURNING 1
    ),
    user_agent_cache AS (
        INSERT INTO user_agents (user_agent, device_type, browser, browser_version, os, os_version, is_bot, parser)
        SELECT p_new_user_agent::text, p_device_type::text, p_browser::text, p_browser_version::text, p_os::text, p_os_version::text, p_is_bot::bool, p_parser::text
         WHERE p_new_user_agent::text IS NOT NULL
        ON CONFLICT (user_agent) DO UPDATE SET
            device_type = excluded.device_type, browser = excluded.browser,
            browser_version = excluded.browser_version, os = excluded.os,
            os_version = excluded.os_version, is_bot = excluded.is_bot,
            parser = excluded.parser, parsed_at = now()
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM inserted)::int8,
           (SELECT count(*) FROM sessions)::int8,
           (SELECT count(*) FROM rejections)::int8,
           (SELECT count(*) FROM user_agent_cache)::int8,
           ARRAY(SELECT b.event_id::text FROM batch b
                  WHERE b.event_id NOT IN (SELECT event_id FROM new_keys));
END $$;

-- Deletes up to p_batch event keys received before p_before (the raw-event
-- retention); returns how many.
CREATE FUNCTION ingest_delete_expired_event_keys(p_before timestamptz, p_batch integer)
RETURNS bigint LANGUAGE sql AS $$
    WITH gone AS (
        DELETE FROM event_keys WHERE ctid = ANY (ARRAY(
            SELECT ctid FROM event_keys WHERE received_at < p_before LIMIT p_batch))
        RETURNING 1
    )
    SELECT count(*) FROM gone
$$;
