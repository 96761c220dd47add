//! What ingest reads and writes in Postgres, in two statements per request
//! (migrations/V19): `ingest_context` (the client, the cached parse of the
//! user agent, the visitor's last session) and `ingest_write_batch` (events,
//! sessions, rejected events, a newly parsed user agent, at once). Sessions
//! are assigned here from the last session as read; the write checks, under
//! the visitor's lock, that it is still the last one.

use chrono::{DateTime, Duration};
use serde::Deserialize;
use serde_json::{json, Value};
use spin_sdk::pg4::ParameterValue;

use platform::db::{text_or_null, Db, DbError};
use platform::site::{Site, WidgetClient};

use crate::batch::{Batch, EventRow, Rejection};
use crate::consent::Refused;
use crate::device::{Device, PARSER};
use crate::sessions::{self, LastSession, Timed};

/// The two statements (public for `bench ingest`, which sends them natively
/// to measure the database's share of a request).
pub const CONTEXT: &str = "SELECT * FROM ingest_context($1::text, $2::text, $3::text, $4::text)";

pub const WRITE_BATCH: &str = "
SELECT conflict, last_session_id, last_seen_us, last_utm_campaign, duplicates
  FROM ingest_write_batch($1::jsonb, $2::text, $3::text, $4::text, $5::text, $6::text,
    $7::text, $8::text, $9::bool, $10::text, $11::text, $12::text, $13::jsonb, $14::int8,
    $15::text, $16::text, $17::bool, $18::text, $19::int8)";

/// How often a batch is sessionized again when another batch of the same
/// visitor moved its last session in between. Each conflict is another of
/// the visitor's batches committing, so n concurrent batches all land within
/// n attempts: 16 covers a visitor's open tabs and a flaky network's resends.
/// (5 let one of 8 concurrent batches answer 503 on a loaded machine.)
const SESSION_ATTEMPTS: usize = 16;

/// A client's row, as ingest needs it, the cached parse of the request's
/// user agent if there is one, and the visitor's last session.
pub struct Client {
    pub enabled: bool,
    pub site: Site,
    pub cached_device: Option<Device>,
    /// Read only when the server assigns sessions (the batch has none).
    pub last_session: Option<LastSession>,
    /// What the client does with events of visitors who refused consent.
    pub refused_consent: Refused,
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
struct ContextRow {
    enabled: bool,
    root_domain: Option<String>,
    allow_localhost: bool,
    device_type: Option<String>,
    browser: Option<String>,
    browser_version: Option<String>,
    os: Option<String>,
    os_version: Option<String>,
    is_bot: bool,
    session_id: Option<String>,
    last_seen_us: Option<i64>,
    utm_campaign: Option<String>,
    refused_consent_events: Option<String>,
}

fn last_session(
    id: Option<String>,
    last_seen_us: Option<i64>,
    utm_campaign: Option<String>,
) -> Option<LastSession> {
    Some(LastSession {
        id: id?,
        last_seen: DateTime::from_timestamp_micros(last_seen_us?)?,
        utm_campaign,
    })
}

/// The client (None: unknown), with the parse of `user_agent` if cached and,
/// for a batch without `session_id`, the visitor's last session.
pub fn load_client(db: &Db, batch: &Batch, user_agent: &str) -> Result<Option<Client>, DbError> {
    let person = if batch.session_id.is_none() {
        ParameterValue::Str(batch.person_id.clone())
    } else {
        ParameterValue::DbNull
    };
    let row: Option<ContextRow> = db.row(
        CONTEXT,
        &[
            batch.client_id.clone().into(),
            user_agent.to_string().into(),
            PARSER.to_string().into(),
            person,
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
        last_session: last_session(r.session_id, r.last_seen_us, r.utm_campaign),
        refused_consent: Refused::from_setting(r.refused_consent_events.as_deref()),
    }))
}

/// Puts accepted events in the write's order, (occurred_at, event_id): one
/// lock order for every writer, so concurrent retries cannot deadlock.
pub fn sort_for_write(accepted: &mut [EventRow]) {
    accepted.sort_by(|a, b| (a.occurred_at, &a.event_id).cmp(&(b.occurred_at, &b.event_id)));
}

/// Everything one batch writes.
pub struct BatchWrite<'a> {
    pub batch: &'a Batch,
    /// In the write's order ([`sort_for_write`]).
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

#[derive(Deserialize)]
struct Written {
    conflict: bool,
    last_session_id: Option<String>,
    last_seen_us: Option<i64>,
    last_utm_campaign: Option<String>,
    duplicates: Vec<String>,
}

/// Writes the batch. Sessions come from the batch's `session_id`, or are
/// assigned from `last` (the visitor's last session as read with the
/// client); if another batch of the visitor moved it meanwhile, they are
/// assigned again from the fresh one.
pub fn save(
    db: &Db,
    w: &BatchWrite,
    mut last: Option<LastSession>,
    session_timeout: Duration,
) -> Result<Saved, DbError> {
    if w.batch.session_id.is_some() || w.accepted.is_empty() {
        let ids = vec![w.batch.session_id.clone().unwrap_or_default(); w.accepted.len()];
        return write(db, w, &ids, None).map(|written| Saved {
            session_id: ids.last().cloned(),
            duplicates: written.duplicates,
        });
    }
    let timed: Vec<Timed> = w
        .accepted
        .iter()
        .map(|e| Timed {
            at: e.occurred_at,
            utm_campaign: e.attribution.utm_campaign.as_deref(),
        })
        .collect();
    for _ in 0..SESSION_ATTEMPTS {
        let ids = sessions::assign(&timed, last.clone(), session_timeout, || {
            uuid::Uuid::new_v4().to_string()
        });
        let written = write(db, w, &ids, Some(last.as_ref()))?;
        if !written.conflict {
            return Ok(Saved {
                session_id: ids.last().cloned(),
                duplicates: written.duplicates,
            });
        }
        last = last_session(
            written.last_session_id,
            written.last_seen_us,
            written.last_utm_campaign,
        );
    }
    Err(DbError::unavailable(
        "the visitor's session kept changing under concurrent batches; try again",
    ))
}

/// One event as `ingest_write_batch` reads it (serialized straight from
/// the validated row: no intermediate JSON tree on the hot path).
#[derive(serde::Serialize)]
struct EventOut<'a> {
    event_id: &'a str,
    session_id: &'a str,
    event_name: &'a str,
    occurred_at: String,
    widget_displayed_at: Option<i64>,
    duration_s: Option<f64>,
    page_url: Option<&'a str>,
    domain: Option<&'a str>,
    referrer: Option<&'a str>,
    referrer_domain: Option<&'a str>,
    #[serde(flatten)]
    attribution: &'a crate::attribution::Attribution,
    properties: &'a Value,
}

/// The events of a batch as `ingest_write_batch` reads them (a JSON array).
pub fn events_json(accepted: &[EventRow], session_ids: &[String]) -> Vec<u8> {
    let events: Vec<EventOut> = accepted
        .iter()
        .zip(session_ids)
        .map(|(e, sid)| EventOut {
            event_id: &e.event_id,
            session_id: sid,
            event_name: &e.name,
            occurred_at: e.occurred_at.to_rfc3339(),
            widget_displayed_at: e.widget_displayed_at,
            duration_s: e.duration_s,
            page_url: e.page_url.as_deref(),
            domain: e.domain.as_deref(),
            referrer: e.referrer.as_deref(),
            referrer_domain: e.referrer_domain.as_deref(),
            attribution: &e.attribution,
            properties: &e.properties,
        })
        .collect();
    serde_json::to_vec(&events).unwrap_or_default()
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

/// `ingest_write_batch`'s arguments; `expected`: for server-made sessions,
/// the last session they were assigned from (`None` inside: the visitor had
/// none). Public for `bench ingest`, which sends the same write natively.
pub fn write_params(
    w: &BatchWrite,
    session_ids: &[String],
    expected: Option<Option<&LastSession>>,
) -> Vec<ParameterValue> {
    let d = w.device;
    let expected_session = expected.flatten();
    vec![
        ParameterValue::Jsonb(events_json(w.accepted, session_ids)),
        w.batch.client_id.clone().into(),
        w.batch.person_id.clone().into(),
        d.device_type.clone().into(),
        text_or_null(d.browser.as_deref()),
        text_or_null(d.browser_version.as_deref()),
        text_or_null(d.os.as_deref()),
        text_or_null(d.os_version.as_deref()),
        d.is_bot.into(),
        text_or_null(w.ip),
        text_or_null(w.batch.locale.as_deref()),
        text_or_null(w.batch.screen.as_deref()),
        ParameterValue::Jsonb(serde_json::to_vec(&rejections_json(w.rejected)).unwrap_or_default()),
        w.rejected_cap_per_hour.into(),
        text_or_null(w.new_user_agent),
        PARSER.to_string().into(),
        expected.is_some().into(),
        text_or_null(expected_session.map(|s| s.id.as_str())),
        expected_session.map_or(ParameterValue::DbNull, |s| {
            s.last_seen.timestamp_micros().into()
        }),
    ]
}

/// One write (see [`write_params`]).
fn write(
    db: &Db,
    w: &BatchWrite,
    session_ids: &[String],
    expected: Option<Option<&LastSession>>,
) -> Result<Written, DbError> {
    db.one(WRITE_BATCH, &write_params(w, session_ids, expected))
}
