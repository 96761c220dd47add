//! What ingest reads and writes in Postgres: the client with the cached parse
//! of a user agent, and the batch (events, sessions, rejected events, a newly
//! parsed user agent) in one statement (migrations/V4), under the visitor's
//! sessionization lock when the server assigns sessions.

use chrono::{DateTime, Duration};
use serde::Deserialize;
use serde_json::{json, Value};
use spin_sdk::pg4::ParameterValue;

use platform::db::{Db, DbError};
use platform::site::{Site, WidgetClient};

use crate::batch::{Batch, EventRow, Rejection};
use crate::device::{Device, PARSER};
use crate::sessions::{self, LastSession, Timed};

/// The client, and the cached parse of a user agent (`$2`) by parser `$3`.
const CLIENT_AND_USER_AGENT: &str = "
SELECT c.enabled, c.root_domain, c.allow_localhost,
       u.device_type, u.browser, u.browser_version, u.os, u.os_version,
       coalesce(u.is_bot, false) AS is_bot
  FROM clients c
  LEFT JOIN user_agents u ON u.user_agent = $2::text AND u.parser = $3::text
 WHERE c.id = $1::text::uuid";

/// Locks the visitor for sessionization and returns their latest session, if
/// any (migrations/V4).
const LOCK_AND_LAST_SESSION: &str =
    "SELECT * FROM lock_visitor_last_session($1::text::uuid, $2::text)";

/// The batch write (`ingest_write_batch`, migrations/V18): returns the ids
/// that were stored before (`duplicates`).
const WRITE_BATCH: &str = "
SELECT duplicates FROM ingest_write_batch($1::jsonb, $2::text, $3::text, $4::text, $5::text, $6::text,
    $7::text, $8::text, $9::bool, $10::text, $11::text, $12::text, $13::jsonb, $14::int8,
    $15::text, $16::text)";

/// A client's row, as ingest needs it, and the cached parse of the request's
/// user agent if there is one.
pub struct Client {
    pub enabled: bool,
    pub site: Site,
    pub cached_device: Option<Device>,
}

impl WidgetClient for Client {
    fn enabled(&self) -> bool {
        self.enabled
    }
    fn site(&self) -> &Site {
        &self.site
    }
}

#[derive(Deserialize)]
struct ClientRow {
    enabled: bool,
    root_domain: Option<String>,
    allow_localhost: bool,
    device_type: Option<String>,
    browser: Option<String>,
    browser_version: Option<String>,
    os: Option<String>,
    os_version: Option<String>,
    is_bot: bool,
}

pub fn load_client(db: &Db, client_id: &str, user_agent: &str) -> Result<Option<Client>, DbError> {
    let row: Option<ClientRow> = db.row(
        CLIENT_AND_USER_AGENT,
        &[
            client_id.to_string().into(),
            user_agent.to_string().into(),
            PARSER.to_string().into(),
        ],
    )?;
    Ok(row.map(|r| Client {
        enabled: r.enabled,
        site: Site {
            root_domain: r.root_domain,
            allow_localhost: r.allow_localhost,
        },
        cached_device: r.device_type.map(|device_type| Device {
            device_type,
            browser: r.browser,
            browser_version: r.browser_version,
            os: r.os,
            os_version: r.os_version,
            is_bot: r.is_bot,
        }),
    }))
}

/// Everything one batch writes.
pub struct BatchWrite<'a> {
    pub batch: &'a Batch,
    /// Sorted by (occurred_at, event_id): one lock order for every writer.
    pub accepted: &'a [EventRow],
    pub rejected: &'a [Rejection],
    pub device: &'a Device,
    /// The user agent to cache (None when it came from the cache).
    pub new_user_agent: Option<&'a str>,
    /// The visitor IP as stored.
    pub ip: Option<&'a str>,
    pub rejected_cap_per_hour: i64,
}

/// What a batch write did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Saved {
    /// The session of the latest event.
    pub session_id: Option<String>,
    /// Accepted event ids that were stored before (a retry): not stored again.
    pub duplicates: Vec<String>,
}

/// Writes the batch; sessions come from the batch's `session_id`, or are
/// assigned here (under the visitor's lock) when it has none.
pub fn save(db: &Db, w: &BatchWrite, session_timeout: Duration) -> Result<Saved, DbError> {
    if w.batch.session_id.is_some() || w.accepted.is_empty() {
        let ids = vec![w.batch.session_id.clone().unwrap_or_default(); w.accepted.len()];
        return write(db, w, &ids);
    }
    // Concurrent batches of one visitor agree on the session.
    db.transaction(|db| {
        let last: Option<LastSessionRow> = db.row(
            LOCK_AND_LAST_SESSION,
            &[
                w.batch.client_id.clone().into(),
                w.batch.person_id.clone().into(),
            ],
        )?;
        let last = last.map(|r| LastSession {
            id: r.session_id,
            last_seen: DateTime::from_timestamp_micros(r.last_seen_us).unwrap_or_default(),
            utm_campaign: r.utm_campaign,
        });
        let timed: Vec<Timed> = w
            .accepted
            .iter()
            .map(|e| Timed {
                at: e.occurred_at,
                utm_campaign: e.attribution.utm_campaign.as_deref(),
            })
            .collect();
        let ids = sessions::assign(&timed, last, session_timeout, || {
            uuid::Uuid::new_v4().to_string()
        });
        write(db, w, &ids)
    })
}

#[derive(Deserialize)]
struct LastSessionRow {
    session_id: String,
    last_seen_us: i64,
    utm_campaign: Option<String>,
}

/// The events of a batch as `ingest_write_batch` reads them.
pub fn events_json(accepted: &[EventRow], session_ids: &[String]) -> Value {
    accepted
        .iter()
        .zip(session_ids)
        .map(|(e, sid)| {
            let a = &e.attribution;
            json!({
                "event_id": e.event_id, "session_id": sid, "event_name": e.name,
                "occurred_at": e.occurred_at.to_rfc3339(), "widget_displayed_at": e.widget_displayed_at,
                "duration_s": e.duration_s, "page_url": e.page_url, "domain": e.domain,
                "referrer": e.referrer, "referrer_domain": e.referrer_domain,
                "utm_source": a.utm_source, "utm_medium": a.utm_medium, "utm_campaign": a.utm_campaign,
                "utm_term": a.utm_term, "utm_content": a.utm_content,
                "gclid": a.gclid, "fbclid": a.fbclid, "fbc": a.fbc, "properties": e.properties,
            })
        })
        .collect()
}

/// The rejected events as `ingest_write_batch` keeps them (a NUL character,
/// which Postgres cannot store, kept as U+FFFD).
pub fn rejections_json(rejected: &[Rejection]) -> Value {
    rejected
        .iter()
        .map(|r| {
            json!({
                "event_index": r.index, "event_id": r.event_id.as_deref().map(|id| id.replace('\0', "\u{FFFD}")),
                "field": r.field.replace('\0', "\u{FFFD}"), "reason": r.reason,
                "payload": platform::json::without_nul(&r.raw),
            })
        })
        .collect()
}

#[derive(Deserialize)]
struct Written {
    duplicates: Vec<String>,
}

fn write(db: &Db, w: &BatchWrite, session_ids: &[String]) -> Result<Saved, DbError> {
    let opt = |s: Option<&str>| s.map_or(ParameterValue::DbNull, |s| s.to_string().into());
    let jsonb = |v: Value| ParameterValue::Jsonb(serde_json::to_vec(&v).unwrap_or_default());
    let d = w.device;
    let written: Written = db.one(
        WRITE_BATCH,
        &[
            jsonb(events_json(w.accepted, session_ids)),
            w.batch.client_id.clone().into(),
            w.batch.person_id.clone().into(),
            d.device_type.clone().into(),
            opt(d.browser.as_deref()),
            opt(d.browser_version.as_deref()),
            opt(d.os.as_deref()),
            opt(d.os_version.as_deref()),
            d.is_bot.into(),
            opt(w.ip),
            opt(w.batch.locale.as_deref()),
            opt(w.batch.screen.as_deref()),
            jsonb(rejections_json(w.rejected)),
            w.rejected_cap_per_hour.into(),
            opt(w.new_user_agent),
            PARSER.to_string().into(),
        ],
    )?;
    Ok(Saved {
        session_id: session_ids.last().cloned(),
        duplicates: written.duplicates,
    })
}
