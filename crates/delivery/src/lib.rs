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
mod google;
mod gtm;
pub mod inline;
mod meta;
pub mod outbox;
pub mod retry;
pub mod run;
mod webhook;

/// The kinds of `client_destinations`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    MetaCapi,
    GoogleEc,
    GtmServer,
    Webhook,
}

impl Kind {
    pub const ALL: [Kind; 4] = [
        Kind::MetaCapi,
        Kind::GoogleEc,
        Kind::GtmServer,
        Kind::Webhook,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::MetaCapi => "meta_capi",
            Kind::GoogleEc => "google_ec",
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
}

impl Endpoints {
    /// From the Spin variables every delivering component declares.
    pub fn from_vars(vars: &Vars) -> Result<Endpoints, ApiError> {
        Ok(Endpoints {
            meta_base_url: vars.text("meta_capi_base_url")?,
            meta_api_version: vars.text("meta_capi_api_version")?,
            google_ads_base_url: vars.text("google_ads_base_url")?,
            google_ads_api_version: vars.text("google_ads_api_version")?,
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
        // A Measurement Protocol request describes one user (client_id).
        Kind::GtmServer => 1,
        Kind::Webhook => 100,
    }
}

/// The request delivering `events` (at most `max_batch(kind)`, all for one
/// destination) with the destination's `config`.
pub fn request(
    kind: Kind,
    config: &Value,
    endpoints: &Endpoints,
    events: &[Queued],
) -> Result<HttpRequest, ConfigError> {
    match kind {
        Kind::MetaCapi => meta::request(config, endpoints, events),
        Kind::GoogleEc => google::request(config, endpoints, events),
        Kind::GtmServer => gtm::request(config, events),
        Kind::Webhook => webhook::request(config, events),
    }
}

/// What a response means for the rows it carried.
pub fn classify(kind: Kind, response: &HttpResponse) -> Outcome {
    let body = String::from_utf8_lossy(&response.body);
    let excerpt: String = body.chars().take(500).collect();
    let error = format!("HTTP {}: {excerpt}", response.status);
    let after = response.header("retry-after").and_then(retry_after);
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

/// Meta rejects events whose event_time is more than 7 days old; such rows are
/// dead-lettered as `expired` without being sent.
pub fn expired(kind: Kind, event_time: i64, now: i64) -> bool {
    kind == Kind::MetaCapi && now - event_time > 7 * 24 * 3600
}

/// Config keys holding secrets.
const SECRET_KEYS: &[&str] = &[
    "access_token",
    "developer_token",
    "api_secret",
    "secret",
    "refresh_token",
    "client_secret",
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
mod tests;
