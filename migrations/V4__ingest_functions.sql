-- The ingest component's statements as functions: PL/pgSQL keeps their plans
-- per connection (pooled connections live long), where a plain statement
-- through spin:postgres is parsed and planned on every request (~0.8 ms for
-- the batch write).

-- Takes the visitor's sessionization lock for the rest of the transaction and
-- returns the visitor's latest session (last seen in µs since the epoch).
CREATE FUNCTION lock_visitor_last_session(p_client_id uuid, p_person_id text)
RETURNS TABLE (session_id text, last_seen_us bigint, utm_campaign text)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended(p_client_id::text || '/' || p_person_id, 0));
    RETURN QUERY
    SELECT s.session_id, (extract(epoch FROM s.last_seen_at) * 1000000)::int8, s.utm_campaign
      FROM widget_sessions s
     WHERE s.client_id = p_client_id AND s.person_id = p_person_id
     ORDER BY s.last_seen_at DESC
     LIMIT 1;
END $$;

-- The whole batch in one statement: insert the events (skipping ones already
-- stored: a retry), fold the newly inserted ones into their sessions, keep the
-- rejected events within the per-client hourly cap, and cache a newly parsed
-- user agent. Returns how many rows each part wrote.
CREATE FUNCTION ingest_write_batch(
    p_events jsonb, p_client_id text, p_person_id text,
    p_device_type text, p_browser text, p_browser_version text, p_os text, p_os_version text,
    p_is_bot boolean, p_client_ip text, p_locale text, p_screen text,
    p_rejections jsonb, p_rejected_cap bigint, p_new_user_agent text, p_parser text)
RETURNS TABLE (n_inserted bigint, n_sessions bigint, n_rejections_stored bigint, n_user_agents_cached bigint)
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
        SELECT p_client_id::text::uuid, r.event_index, r.event_id, r.field, r.reason, r.payload
          FROM jsonb_to_recordset(p_rejections::jsonb) AS r(event_index int, event_id text, field text, reason text, payload jsonb)
         LIMIT greatest(0, p_rejected_cap::int8 - (SELECT n FROM recent_rejections))
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
           (SELECT count(*) FROM user_agent_cache)::int8;
END $$;
