//! Server-side Google Tag Manager, through its GA4 Measurement Protocol
//! client: `POST {url}/mp/collect?measurement_id=..&api_secret=..` with
//! `{client_id, events, user_data}`. One request per visitor.
//!
//! The Measurement Protocol answers 2xx even for malformed events, so a 2xx
//! proves nothing: each event is checked against its limits before it is
//! sent (`invalid`), and the test send uses the validation endpoint.

use serde_json::{json, Value};

use super::{encode, optional, required, ConfigError, Kind, Queued};
use platform::outbound::HttpRequest;

pub(crate) fn request(config: &Value, events: &[Queued]) -> Result<HttpRequest, ConfigError> {
    let url = required(config, "url", Kind::GtmServer)?;
    let measurement_id = required(config, "measurement_id", Kind::GtmServer)?;
    let mut query = format!("measurement_id={}", encode(measurement_id));
    if let Some(secret) = optional(config, "api_secret") {
        query.push_str(&format!("&api_secret={}", encode(secret)));
    }
    let first = events.first();
    let client_id = first
        .and_then(|e| e.event_payload["client_id"].as_str())
        .unwrap_or("server");
    let body = json!({
        "client_id": client_id,
        "timestamp_micros": first.map(|e| e.event_time * 1_000_000),
        "events": events.iter().map(|e| {
            let mut params = e.event_payload["params"].clone();
            if !params.is_object() { params = json!({}); }
            params["event_id"] = json!(e.event_id);
            json!({ "name": e.event_name, "params": params })
        }).collect::<Vec<_>>(),
        "user_data": first.map(|e| e.user_data.clone()).unwrap_or(Value::Null),
    });
    Ok(HttpRequest {
        method: "POST".into(),
        url: format!("{}/mp/collect?{query}", url.trim_end_matches('/')),
        headers: vec![("content-type".into(), "application/json".into())],
        body: body.to_string().into_bytes(),
    })
}

/// GA4 takes event timestamps up to 72 hours back.
pub const DEADLINE_SECS: i64 = 72 * 3600;
/// The Measurement Protocol's limits.
const MAX_NAME: usize = 40;
const MAX_PARAMS: usize = 25;
const MAX_PARAM_VALUE: usize = 100;
const MAX_BODY: usize = 130 * 1024;

fn valid_name(name: &str) -> bool {
    name.len() <= MAX_NAME
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Why GA4 would drop this event (silently, with a 2xx), or None.
pub(crate) fn invalid(e: &Queued) -> Option<String> {
    if !valid_name(&e.event_name) {
        return Some(format!(
            "event name {:?}: GA4 takes letters, digits and _ (a letter first), at most {MAX_NAME}",
            e.event_name
        ));
    }
    let params = e.event_payload["params"].as_object();
    // event_id is added at send time.
    let count = params.map_or(0, |p| p.len() + usize::from(!p.contains_key("event_id")));
    if count > MAX_PARAMS {
        return Some(format!(
            "{count} parameters; GA4 takes at most {MAX_PARAMS}"
        ));
    }
    for (k, v) in params.into_iter().flatten() {
        if !valid_name(k) {
            return Some(format!("parameter name {k:?} is not a valid GA4 name"));
        }
        if v.as_str()
            .is_some_and(|s| s.chars().count() > MAX_PARAM_VALUE)
        {
            return Some(format!(
                "parameter {k} is longer than {MAX_PARAM_VALUE} characters"
            ));
        }
    }
    let size = e.event_payload.to_string().len() + e.user_data.to_string().len();
    if size >= MAX_BODY {
        return Some(format!(
            "{size} bytes; a GA4 request must stay under {MAX_BODY}"
        ));
    }
    None
}
