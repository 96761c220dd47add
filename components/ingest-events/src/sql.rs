//! The statements of the ingest component.

/// Is there an enabled client for an origin? `$1`: the candidate root domains
/// of the origin's host; `$2`: whether the host is local.
pub const ANY_CLIENT_FOR_ORIGIN: &str = "
SELECT 1 FROM clients
 WHERE enabled AND (root_domain = ANY($1::text[]) OR ($2::bool AND allow_localhost))
 LIMIT 1";

/// A visitor's latest session: id, last seen (µs since the epoch), campaign.
pub const LAST_SESSION: &str = "
SELECT session_id, (extract(epoch FROM last_seen_at) * 1000000)::int8, utm_campaign
  FROM widget_sessions
 WHERE client_id = $1::text::uuid AND person_id = $2::text
 ORDER BY last_seen_at DESC
 LIMIT 1";

/// The whole batch in one statement: insert the events (skipping ones already
/// stored: a retry), fold the newly inserted ones into their sessions, and keep
/// the rejected events within the per-client hourly cap.
///
/// $1 events (jsonb array), $2 client_id, $3 person_id, $4 device_type,
/// $5 browser, $6 browser_version, $7 os, $8 os_version, $9 is_bot,
/// $10 client_ip, $11 locale, $12 screen, $13 rejections (jsonb array),
/// $14 rejected-events cap per hour.
pub const WRITE_BATCH: &str = "
WITH batch AS (
    SELECT * FROM jsonb_to_recordset($1::jsonb) AS e(
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
    SELECT b.event_id, $2::text::uuid, $3::text, b.session_id, b.event_name, b.occurred_at,
           b.widget_displayed_at, b.duration_s, b.page_url, b.domain, b.referrer, b.referrer_domain,
           b.utm_source, b.utm_medium, b.utm_campaign, b.utm_term, b.utm_content, b.gclid, b.fbclid, b.fbc,
           $4::text, $5::text, $7::text, $9::bool, $10::text, coalesce(b.properties, '{}'::jsonb)
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
    SELECT $2::text::uuid, p.session_id, $3::text, p.first_seen_at, p.last_seen_at, p.event_count,
           p.landing_page, p.referrer, p.referrer_domain, p.utm_source, p.utm_medium, p.utm_campaign,
           p.utm_term, p.utm_content, p.gclid, p.fbclid, p.fbc, $4::text, $5::text, $6::text,
           $7::text, $8::text, $9::bool, $11::text, $12::text, p.chat_started, p.form_submitted
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
         WHERE client_id = $2::text::uuid AND received_at > now() - interval '1 hour'
         LIMIT $14::int8) r
),
rejections AS (
    INSERT INTO rejected_events (client_id, event_index, event_id, field, reason, payload)
    SELECT $2::text::uuid, r.event_index, r.event_id, r.field, r.reason, r.payload
      FROM jsonb_to_recordset($13::jsonb) AS r(event_index int, event_id text, field text, reason text, payload jsonb)
     LIMIT greatest(0, $14::int8 - (SELECT n FROM recent_rejections))
    RETURNING 1
)
SELECT (SELECT count(*) FROM inserted)::int8 AS inserted,
       (SELECT count(*) FROM sessions)::int8 AS sessions,
       (SELECT count(*) FROM rejections)::int8 AS rejections_stored";
