//! What save-lead reads and writes in Postgres: the client with its enabled
//! destinations, the embedded IP-to-city data, the remote provider's pause,
//! and the lead with its outbox rows in one statement (migrations/V7).

use serde::Deserialize;
use serde_json::Value;
use spin_sdk::pg4::ParameterValue;

use delivery::Kind;
use platform::db::{Db, DbError};
use platform::site::{Site, WidgetClient};

use crate::geo::IpLocation;

/// The client, its enabled destinations (with config: used to send, never
/// returned), and for how many seconds the remote geo provider is paused.
const CLIENT: &str = "
SELECT c.enabled, c.root_domain, c.allow_localhost, c.lead_contact_required, c.default_country,
       (SELECT coalesce(jsonb_agg(jsonb_build_object('id', d.id, 'kind', d.kind, 'config', d.config)
                                  ORDER BY d.created_at), '[]'::jsonb)
          FROM client_destinations d WHERE d.client_id = c.id AND d.enabled) AS destinations,
       (SELECT extract(epoch FROM p.paused_until - now())::float8 FROM geo_provider_pauses p
         WHERE p.provider = 'remote' AND p.paused_until > now()) AS remote_paused_for
  FROM clients c
 WHERE c.id = $1::text::uuid";

/// The embedded IP-to-city database (migrations/V6).
const EMBEDDED_LOOKUP: &str = "
SELECT country_code, region_code, region_name, city, postal_code AS zip
  FROM geoip_lookup($1::text::inet)";

/// Pauses the remote provider for `$1` seconds after a 429.
const PAUSE_REMOTE: &str = "
INSERT INTO geo_provider_pauses (provider, paused_until, reason)
VALUES ('remote', now() + make_interval(secs => $1::float8), $2::text)
ON CONFLICT (provider) DO UPDATE SET paused_until = excluded.paused_until, reason = excluded.reason";

/// The lead and its outbox rows in one statement (migrations/V7): the lead
/// id, whether it is new, and the queued deliveries `[{id, destination_id}]`.
const SAVE_LEAD: &str = "
SELECT lead_id::text, created, queued FROM save_lead($1::jsonb, $2::jsonb, $3::text::uuid, $4::int4)";

/// A client's row as save-lead needs it.
pub struct Client {
    pub enabled: bool,
    pub site: Site,
    pub contact_required: bool,
    pub default_country: Option<String>,
    pub destinations: Vec<Destination>,
    /// Seconds the remote geo provider stays paused after a 429.
    pub remote_paused_for: Option<f64>,
}

impl WidgetClient for Client {
    fn enabled(&self) -> bool {
        self.enabled
    }
    fn site(&self) -> &Site {
        &self.site
    }
}

/// An enabled destination of the client.
pub struct Destination {
    pub id: String,
    pub kind: Kind,
    pub config: Value,
}

#[derive(Deserialize)]
struct ClientRow {
    enabled: bool,
    root_domain: Option<String>,
    allow_localhost: bool,
    lead_contact_required: bool,
    default_country: Option<String>,
    destinations: Vec<Value>,
    remote_paused_for: Option<f64>,
}

pub fn load_client(db: &Db, client_id: &str) -> Result<Option<Client>, DbError> {
    let row: Option<ClientRow> = db.row(CLIENT, &[client_id.to_string().into()])?;
    Ok(row.map(|r| Client {
        enabled: r.enabled,
        site: Site {
            root_domain: r.root_domain,
            allow_localhost: r.allow_localhost,
        },
        contact_required: r.lead_contact_required,
        default_country: r.default_country,
        destinations: r
            .destinations
            .into_iter()
            .filter_map(|d| {
                Some(Destination {
                    id: d["id"].as_str()?.to_string(),
                    kind: Kind::parse(d["kind"].as_str()?)?,
                    config: d["config"].clone(),
                })
            })
            .collect(),
        remote_paused_for: r.remote_paused_for,
    }))
}

pub fn embedded_lookup(db: &Db, ip: &str) -> Result<Option<IpLocation>, DbError> {
    db.row(EMBEDDED_LOOKUP, &[ip.to_string().into()])
}

pub fn pause_remote(db: &Db, seconds: f64, reason: &str) -> Result<(), DbError> {
    db.execute(PAUSE_REMOTE, &[seconds.into(), reason.to_string().into()])?;
    Ok(())
}

/// What [`save`] stored.
#[derive(Deserialize)]
pub struct Saved {
    pub lead_id: String,
    /// False when a lead with this `event_id` was stored before.
    pub created: bool,
    /// `[{id, destination_id}]`: the outbox rows queued, leased to the caller.
    pub queued: Value,
}

/// Stores the lead (`lead`: a `leads` row as JSON) and its outbox rows,
/// leased to `lease_owner` for `lease_seconds`.
pub fn save(
    db: &Db,
    lead: &Value,
    deliveries: &Value,
    lease_owner: &str,
    lease_seconds: i32,
) -> Result<Saved, DbError> {
    let jsonb = |v: &Value| ParameterValue::Jsonb(serde_json::to_vec(v).unwrap_or_default());
    db.one(
        SAVE_LEAD,
        &[
            jsonb(lead),
            jsonb(deliveries),
            lease_owner.to_string().into(),
            lease_seconds.into(),
        ],
    )
}
