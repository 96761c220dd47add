//! Conversion delivery, without I/O: turning queued outbox rows into the HTTP
//! request each destination expects, and the response into what happens to
//! the rows next. The components send the requests (`platform::outbound`) and
//! write the outcomes. Credentials come from the destination's config at send
//! time and never enter the outbox.

use std::time::Duration;

use platform::outbound::{HttpRequest, HttpResponse, SendError};
use platform::vars::Vars;
use platform::ApiError;
use serde_json::Value;

pub mod bisect;
pub mod datamanager;
mod google;
mod gtm;
pub mod inline;
pub mod isolation;
mod meta;
pub mod oauth;
pub mod outbox;
pub mod retry;
pub mod run;
pub mod test_send;
mod webhook;

/// The kinds of `client_destinations`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    MetaCapi,
    /// Legacy: Google Ads API `uploadClickConversions`, closed to new
    /// adopters in June 2026; kept for accounts already allowlisted.
    GoogleEc,
    /// Google Data Manager API `events:ingest`.
    GoogleDm,
    GtmServer,
    Webhook,
}

impl Kind {
    pub const ALL: [Kind; 5] = [
        Kind::MetaCapi,
        Kind::GoogleEc,
        Kind::GoogleDm,
        Kind::GtmServer,
        Kind::Webhook,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::MetaCapi => "meta_capi",
            Kind::GoogleEc => "google_ec",
            Kind::GoogleDm => "google_dm",
            Kind::GtmServer => "gtm_server",
            Kind::Webhook => "webhook",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Whether the destination is an ad platform (subject to ads consent).
    pub fn is_ad_platform(self) -> bool {
        !matches!(self, Kind::Webhook)
    }
}

/// Where the platforms' APIs are (Spin variables, so tests use local fakes).
#[derive(Debug, Clone)]
pub struct Endpoints {
    pub meta_base_url: String,
    pub meta_api_version: String,
    pub google_ads_base_url: String,
    pub google_ads_api_version: String,
    pub google_datamanager_base_url: String,
    /// The OAuth token endpoint is `{google_oauth_base_url}/token`.
    pub google_oauth_base_url: String,
}

impl Endpoints {
    /// From the Spin variables every delivering component declares.
    pub fn from_vars(vars: &Vars) -> Result<Endpoints, ApiError> {
        Ok(Endpoints {
            meta_base_url: vars.text("meta_capi_base_url")?,
            meta_api_version: vars.text("meta_capi_api_version")?,
            google_ads_base_url: vars.text("google_ads_base_url")?,
            google_ads_api_version: vars.text("google_ads_api_version")?,
            google_datamanager_base_url: vars.text("google_datamanager_base_url")?,
            google_oauth_base_url: vars.text("google_oauth_base_url")?,
        })
    }
}

/// One outbox row as the adapters need it.
#[derive(Debug, Clone, PartialEq)]
pub struct Queued {
    pub id: i64,
    pub event_id: String,
    pub event_name: String,
    /// Unix seconds.
    pub event_time: i64,
    pub event_payload: Value,
    pub user_data: Value,
}

/// What to do with the rows of one request after it was tried.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Resolved,
    /// Worth trying again: 429, 5xx, timeouts, transient platform errors.
    Retry {
        error: String,
        after: Option<Duration>,
    },
    /// Retrying cannot help: invalid payload, bad credentials, expired event.
    DeadLetter {
        reason: String,
        error: String,
    },
}

impl Outcome {
    /// The `delivery_attempts.outcome` name.
    pub fn name(&self) -> &'static str {
        match self {
            Outcome::Resolved => "resolved",
            Outcome::Retry { .. } => "retry",
            Outcome::DeadLetter { .. } => "dead_letter",
        }
    }
}

/// A destination whose config cannot produce a request (missing pixel id...).
/// The rows are dead-lettered: nothing but a config change will fix them.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigError(pub String);

fn required<'a>(config: &'a Value, key: &str, kind: Kind) -> Result<&'a str, ConfigError> {
    config
        .get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| ConfigError(format!("{} destination config has no {key}", kind.as_str())))
}

fn optional<'a>(config: &'a Value, key: &str) -> Option<&'a str> {
    config
        .get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
}

/// How many events one request may carry.
pub fn max_batch(kind: Kind) -> usize {
    match kind {
        // Meta accepts up to 1,000 events per request.
        Kind::MetaCapi => 1000,
        // uploadClickConversions takes up to 2,000 conversions per request.
        Kind::GoogleEc => 2000,
        Kind::GoogleDm => datamanager::MAX_EVENTS,
        // A Measurement Protocol request describes one user (client_id).
        Kind::GtmServer => 1,
        // Standard Webhooks: one message per conversion, its webhook-id the
        // row's, so receivers deduplicate on it.
        Kind::Webhook => 1,
    }
}

/// The request delivering `events` (at most `max_batch(kind)`, all for one
/// destination) with the destination's `config`, sent at `now` (Unix seconds).
pub fn request(
    kind: Kind,
    config: &Value,
    endpoints: &Endpoints,
    events: &[Queued],
    now: i64,
) -> Result<HttpRequest, ConfigError> {
    match kind {
        Kind::MetaCapi => meta::request(config, endpoints, events),
        Kind::GoogleEc => google::request(config, endpoints, events),
        Kind::GoogleDm => datamanager::request(config, endpoints, events, false),
        Kind::GtmServer => gtm::request(config, events),
        Kind::Webhook => webhook::request(config, events, now),
    }
}

/// What a response means for the rows it carried.
pub fn classify(kind: Kind, response: &HttpResponse) -> Outcome {
    let body = String::from_utf8_lossy(&response.body);
    let excerpt: String = body.chars().take(500).collect();
    let error = format!("HTTP {}: {excerpt}", response.status);
    let after = response.header("retry-after").and_then(retry_after);
    if kind == Kind::GoogleDm {
        if let Some(outcome) = datamanager::classify_error(response.status, error.clone()) {
            return outcome;
        }
    }
    match response.status {
        200..=299 => match kind {
            Kind::GoogleEc => google::classify_success(&body),
            _ => Outcome::Resolved,
        },
        429 | 500..=599 => Outcome::Retry { error, after },
        // Meta reports throttling and transient faults as 400 with a code.
        400 if kind == Kind::MetaCapi && meta::is_transient(&body) => {
            Outcome::Retry { error, after }
        }
        // Standard Webhooks: a receiver answering 410 wants no more messages;
        // the run disables the destination (`gone`).
        410 if kind == Kind::Webhook => Outcome::DeadLetter {
            reason: "gone".into(),
            error,
        },
        // Request timeout and conflicts in progress: try again.
        408 | 409 | 425 => Outcome::Retry { error, after },
        _ => Outcome::DeadLetter {
            reason: "rejected".into(),
            error,
        },
    }
}

/// What a failure to get any response means: always worth retrying, except a
/// destination the component may not reach (a deployment problem that a
/// retry after the fix will get through, so retried as well).
pub fn classify_send_error(e: &SendError) -> Outcome {
    Outcome::Retry {
        error: match e {
            SendError::Denied => {
                "destination not in allowed_outbound_hosts (check the destination URL and the spin.toml variables)".into()
            }
            other => other.to_string(),
        },
        after: None,
    }
}

/// `Retry-After` in seconds (the HTTP-date form is rare from APIs; ignored).
fn retry_after(v: &str) -> Option<Duration> {
    v.trim()
        .parse::<u64>()
        .ok()
        .map(|s| Duration::from_secs(s.min(24 * 3600)))
}

/// How old an event may be when it reaches the platform: Meta refuses
/// events more than 7 days old (one would fail the whole request); Google
/// imports click conversions up to 90 days after the click; the GA4
/// Measurement Protocol takes timestamps up to 72 hours back. None: no limit.
pub fn deadline(kind: Kind) -> Option<i64> {
    match kind {
        Kind::MetaCapi => Some(7 * 24 * 3600),
        Kind::GoogleEc | Kind::GoogleDm => Some(datamanager::DEADLINE_SECS),
        Kind::GtmServer => Some(gtm::DEADLINE_SECS),
        Kind::Webhook => None,
    }
}

/// Whether an event is past its platform's deadline: such rows are
/// dead-lettered as `expired` without being sent.
pub fn expired(kind: Kind, event_time: i64, now: i64) -> bool {
    deadline(kind).is_some_and(|d| now - event_time > d)
}

/// Why the platform would refuse this event (and with it the whole
/// request), checked before it joins a batch; None when it may be sent.
pub fn invalid(kind: Kind, event: &Queued, now: i64) -> Option<String> {
    match kind {
        Kind::GoogleDm => datamanager::invalid(event, now),
        Kind::GtmServer => gtm::invalid(event),
        _ => None,
    }
}

/// Percent-encodes a query or form value.
pub(crate) fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Config keys holding secrets.
const SECRET_KEYS: &[&str] = &[
    "access_token",
    "developer_token",
    "api_secret",
    "secret",
    "secrets",
    "refresh_token",
    "client_secret",
    "service_account",
    "password",
    "authorization",
];

/// A destination config with every secret replaced, for any response or log.
pub fn redact(config: &Value) -> Value {
    match config {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let secret = SECRET_KEYS.contains(&k.to_ascii_lowercase().as_str());
                    (
                        k.clone(),
                        if secret {
                            Value::String("[redacted]".into())
                        } else {
                            redact(v)
                        },
                    )
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(redact).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod schema_check;
#[cfg(test)]
mod tests;
