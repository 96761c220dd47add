-- Ingest in two statements instead of five (issue 14): what a request needs
-- to know is read by one function, `ingest_context` (the client, the cached
-- parse of the user agent, the visitor's last session), and the batch is
-- written by one, without BEGIN/COMMIT around them. Sessions are assigned
-- in Rust from the last session as read; the write takes the visitor's lock,
-- checks that session is still the last one, and answers `conflict` with the
-- fresh one otherwise (the caller assigns again and resends; rare: two
-- batches of one visitor at the same instant).
--
-- The per-row foreign keys from session_events and widget_sessions to
-- clients go: ingest checks the client before writing, and clients are
-- never deleted (a former client is disabled).

ALTER TABLE session_events DROP CONSTRAINT session_events_client_id_fkey;
ALTER TABLE widget_sessions DROP CONSTRAINT widget_sessions_client_id_fkey;

CREATE FUNCTION ingest_context(p_client_id text, p_user_agent text, p_parser text, p_person_id text)
RETURNS TABLE (enabled boolean, root_domain text, allow_localhost boolean,
               device_type text, browser text, browser_version text, os text, os_version text,
               is_bot boolean, session_id text, last_seen_us bigint, utm_campaign text)
LANGUAGE sql STABLE AS $$
    SELECT c.enabled, c.root_domain, c.allow_localhost,
           u.device_type, u.browser, u.browser_version, u.os, u.os_version,
           coalesce(u.is_bot, false), s.session_id, s.last_seen_us, s.utm_campaign
      FROM clients c
      LEFT JOIN user_agents u ON u.user_agent = p_user_agent AND u.parser = p_parser
      LEFT JOIN LATERAL (
            SELECT ws.session_id, (extract(epoch FROM ws.last_seen_at) * 1000000)::int8 AS last_seen_us,
                   ws.utm_campaign
              FROM widget_sessions ws
             WHERE ws.client_id = c.id AND ws.person_id = p_person_id
             ORDER BY ws.last_seen_at DESC
             LIMIT 1) s ON p_person_id IS NOT NULL
     WHERE c.id = p_client_id::uuid
$$;

DROP FUNCTION ingest_write_batch(jsonb, text, text, text, text, text, text, text, boolean, text,
                                 text, text, jsonb, bigint, text, text);

-- The whole batch in one statement (see V18): claim the event ids, insert
-- the events whose id is new, fold them into their sessions, keep the
-- rejected events once each within the hourly cap, cache a newly parsed
-- user agent (data-modifying CTEs run whether or not the final SELECT reads
-- them). With p_sessionized, first the visitor's lock and the check of
-- the last session the sessions were assigned from.
CREATE FUNCTION ingest_write_batch(
    p_events jsonb, p_client_id text, p_person_id text,
    p_device_type text, p_browser text, p_browser_version text, p_os text, p_os_version text,
    p_is_bot boolean, p_client_ip text, p_locale text, p_screen text,
    p_rejections jsonb, p_rejected_cap bigint, p_new_user_agent text, p_parser text,
    p_sessionized boolean, p_expect_session text, p_expect_last_seen_us bigint)
RETURNS TABLE (conflict boolean, last_session_id text, last_seen_us bigint, last_utm_campaign text,
               n_inserted bigint, n_sessions bigint, duplicates text[])
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    fresh record;
BEGIN
    IF p_sessionized THEN
        -- The sessions were assigned from the visitor's last session as read
        -- before: under the visitor's lock, check it is still the last one
        -- (this statement sees what committed while it waited).
        SELECT * INTO fresh FROM lock_visitor_last_session(p_client_id::text::uuid, p_person_id);
        IF fresh.session_id IS DISTINCT FROM p_expect_session
           OR fresh.last_seen_us IS DISTINCT FROM p_expect_last_seen_us THEN
            RETURN QUERY SELECT true, fresh.session_id, fresh.last_seen_us, fresh.utm_campaign,
                                0::int8, 0::int8, ARRAY[]::text[];
            RETURN;
        END IF;
    END IF;
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
    -- Per session: the counts, and the first touch (the attribution of its
    -- earliest event) by one sort rather than one per column.
    per_session AS (
        SELECT f.session_id, a.first_seen_at, a.last_seen_at, a.event_count,
               f.page_url AS landing_page, f.referrer, f.referrer_domain, f.utm_source,
               f.utm_medium, f.utm_campaign, f.utm_term, f.utm_content, f.gclid, f.fbclid,
               f.fbc, a.chat_started, a.form_submitted
          FROM (SELECT session_id, min(occurred_at) AS first_seen_at,
                       max(occurred_at) AS last_seen_at, count(*)::int AS event_count,
                       bool_or(event_name = 'chat_started') AS chat_started,
                       bool_or(event_name = 'client_form_submitted') AS form_submitted
                  FROM inserted GROUP BY session_id) a
          JOIN (SELECT DISTINCT ON (session_id) * FROM inserted
                 ORDER BY session_id, occurred_at) f ON f.session_id = a.session_id
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
    SELECT false, NULL::text, NULL::int8, NULL::text,
           (SELECT count(*) FROM inserted)::int8,
           (SELECT count(*) FROM sessions)::int8,
           ARRAY(SELECT b.event_id::text FROM batch b
                  WHERE b.event_id NOT IN (SELECT event_id FROM new_keys));
END $$;
