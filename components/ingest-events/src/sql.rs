//! The statements of the ingest component.

/// The client, and the cached parse of a user agent (`$2`) by parser `$3`.
pub const CLIENT_AND_USER_AGENT: &str = "
SELECT c.enabled, c.root_domain, c.allow_localhost,
       u.device_type, u.browser, u.browser_version, u.os, u.os_version,
       coalesce(u.is_bot, false) AS is_bot
  FROM clients c
  LEFT JOIN user_agents u ON u.user_agent = $2::text AND u.parser = $3::text
 WHERE c.id = $1::text::uuid";

/// Is there an enabled client for an origin? `$1`: the candidate root domains
/// of the origin's host; `$2`: whether the host is local.
pub const ANY_CLIENT_FOR_ORIGIN: &str = "
SELECT EXISTS (
       SELECT 1 FROM clients
        WHERE enabled AND (root_domain = ANY($1::text[]) OR ($2::bool AND allow_localhost))) AS allowed";

/// Locks the visitor for sessionization and returns their latest session, if
/// any: `session_id`, `last_seen_us` (µs since the epoch), `utm_campaign`
/// (migrations/V4).
pub const LOCK_AND_LAST_SESSION: &str =
    "SELECT * FROM lock_visitor_last_session($1::text::uuid, $2::text)";

/// The batch write (`ingest_write_batch` in migrations/V4): events, their
/// sessions, rejected events and a newly parsed user agent, in one statement.
///
/// $1 events (jsonb array), $2 client_id, $3 person_id, $4 device_type,
/// $5 browser, $6 browser_version, $7 os, $8 os_version, $9 is_bot,
/// $10 client_ip, $11 locale, $12 screen, $13 rejections (jsonb array),
/// $14 rejected-events cap per hour, $15 the user agent to cache (null when
/// it came from the cache), $16 the parser's name.
pub const WRITE_BATCH: &str = "
SELECT * FROM ingest_write_batch($1::jsonb, $2::text, $3::text, $4::text, $5::text, $6::text,
    $7::text, $8::text, $9::bool, $10::text, $11::text, $12::text, $13::jsonb, $14::int8,
    $15::text, $16::text)";
