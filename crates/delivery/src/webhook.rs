//! A client's own endpoint, per Standard Webhooks 1.0
//! (<https://www.standardwebhooks.com>): `POST {url}` with one message per
//! conversion, `{"type", "timestamp", "data"}`, and the headers
//!
//! - `webhook-id`: `delivery_<outbox row id>`, the same on every retry of the
//!   row, so the receiver can use it as its idempotency key;
//! - `webhook-timestamp`: Unix seconds of this attempt;
//! - `webhook-signature`: `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`
//!   once per active secret, space-separated, so a client rotates its secret
//!   by listing the new one beside the old one until its receiver switched.
//!
//! Secrets are `whsec_` + base64 of 24 to 64 random bytes (the key is the
//! decoded bytes), as the reference libraries expect. Config: `secret` (one)
//! and/or `secrets` (a list); none → the message goes unsigned.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use super::{required, ConfigError, Kind, Queued};
use platform::outbound::HttpRequest;

/// The `type` of a conversion message, and of a test send's.
pub const CONVERSION_TYPE: &str = "conversion.created";
pub const TEST_TYPE: &str = "test";

const PREFIX: &str = "whsec_";

/// The signing keys of a webhook config (empty: unsigned).
pub(crate) fn keys(config: &Value) -> Result<Vec<Vec<u8>>, ConfigError> {
    let mut named: Vec<(String, &str)> = Vec::new();
    match config.get("secret") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => named.push(("secret".into(), s)),
        Some(_) => return Err(bad("secret", "must be a string")),
    }
    match config.get("secrets") {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                let s = item
                    .as_str()
                    .ok_or_else(|| bad(&format!("secrets[{i}]"), "must be a string"))?;
                named.push((format!("secrets[{i}]"), s));
            }
        }
        Some(_) => return Err(bad("secrets", "must be a list of strings")),
    }
    named
        .into_iter()
        .map(|(key, s)| {
            decode(s).ok_or_else(|| {
                bad(
                    &key,
                    "must be whsec_ followed by the base64 of 24 to 64 bytes",
                )
            })
        })
        .collect()
}

fn bad(key: &str, what: &str) -> ConfigError {
    ConfigError(format!("webhook destination config: {key} {what}"))
}

/// The key of a `whsec_<base64>` secret.
fn decode(secret: &str) -> Option<Vec<u8>> {
    let key = STANDARD.decode(secret.trim().strip_prefix(PREFIX)?).ok()?;
    (24..=64).contains(&key.len()).then_some(key)
}

/// `v1,<base64>` signatures of a message, one per key, space-separated.
pub(crate) fn signature(keys: &[Vec<u8>], id: &str, timestamp: i64, body: &[u8]) -> String {
    keys.iter()
        .map(|key| {
            let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key");
            mac.update(format!("{id}.{timestamp}.").as_bytes());
            mac.update(body);
            format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The message's `timestamp`: when the conversion happened, RFC 3339.
fn rfc3339(unix: i64) -> String {
    chrono::DateTime::from_timestamp(unix, 0)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// One message: `id` its `webhook-id`, `now` the send time (Unix seconds).
pub(crate) fn message(
    config: &Value,
    message_type: &str,
    id: &str,
    event: &Queued,
    now: i64,
) -> Result<HttpRequest, ConfigError> {
    let url = required(config, "url", Kind::Webhook)?;
    let keys = keys(config)?;
    let body = json!({
        "type": message_type,
        "timestamp": rfc3339(event.event_time),
        "data": {
            "event_id": event.event_id,
            "event_name": event.event_name,
            "event_time": event.event_time,
            "payload": event.event_payload,
            "user_data": event.user_data,
        },
    })
    .to_string()
    .into_bytes();
    let mut headers = vec![
        ("content-type".to_string(), "application/json".to_string()),
        ("webhook-id".to_string(), id.to_string()),
        ("webhook-timestamp".to_string(), now.to_string()),
    ];
    if !keys.is_empty() {
        headers.push(("webhook-signature".into(), signature(&keys, id, now, &body)));
    }
    Ok(HttpRequest {
        method: "POST".into(),
        url: url.to_string(),
        headers,
        body,
    })
}

/// The `webhook-id` of an outbox row: stable across its retries.
pub(crate) fn delivery_id(row: i64) -> String {
    format!("delivery_{row}")
}

/// A conversion message; webhook requests carry exactly one event.
pub(crate) fn request(
    config: &Value,
    events: &[Queued],
    now: i64,
) -> Result<HttpRequest, ConfigError> {
    match events {
        [event] => message(config, CONVERSION_TYPE, &delivery_id(event.id), event, now),
        _ => Err(ConfigError(format!(
            "a webhook message carries one event, not {}",
            events.len()
        ))),
    }
}
