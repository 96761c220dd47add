//! The statements of the save-lead component.

/// The client, its enabled destinations (with config: used to send, never
/// returned), and for how many seconds the remote geo provider is paused.
pub const CLIENT: &str = "
SELECT c.enabled, c.root_domain, c.allow_localhost, c.lead_contact_required, c.default_country,
       (SELECT coalesce(jsonb_agg(jsonb_build_object('id', d.id, 'kind', d.kind, 'config', d.config)
                                  ORDER BY d.created_at), '[]'::jsonb)
          FROM client_destinations d WHERE d.client_id = c.id AND d.enabled) AS destinations,
       (SELECT extract(epoch FROM p.paused_until - now())::float8 FROM geo_provider_pauses p
         WHERE p.provider = 'remote' AND p.paused_until > now()) AS remote_paused_for
  FROM clients c
 WHERE c.id = $1::text::uuid";

/// Is there an enabled client for an origin? `$1`: the candidate root domains
/// of the origin's host; `$2`: whether the host is local.
pub const ANY_CLIENT_FOR_ORIGIN: &str = "
SELECT EXISTS (
       SELECT 1 FROM clients
        WHERE enabled AND (root_domain = ANY($1::text[]) OR ($2::bool AND allow_localhost))) AS allowed";

/// The embedded IP-to-city database (migrations/V6).
pub const EMBEDDED_LOOKUP: &str = "
SELECT country_code, region_code, region_name, city, postal_code AS zip FROM geoip_lookup($1::text::inet)";

/// Pauses the remote provider for `$1` seconds after a 429.
pub const PAUSE_REMOTE: &str = "
INSERT INTO geo_provider_pauses (provider, paused_until, reason)
VALUES ('remote', now() + make_interval(secs => $1::float8), $2::text)
ON CONFLICT (provider) DO UPDATE SET paused_until = excluded.paused_until, reason = excluded.reason";

/// The lead and its outbox rows in one statement (migrations/V7): returns the
/// lead id, whether it is new, and the queued deliveries `[{id, destination_id}]`.
pub const SAVE_LEAD: &str = "
SELECT lead_id::text, created, queued FROM save_lead($1::jsonb, $2::jsonb, $3::text::uuid, $4::int4)";

/// The outcomes of the inline attempts (migrations/V7).
pub const RECORD_OUTCOMES: &str = "
SELECT id, status FROM record_delivery_outcomes($1::text::uuid, 'inline', $2::jsonb)";
