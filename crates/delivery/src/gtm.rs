//! Server-side Google Tag Manager, through its GA4 Measurement Protocol
//! client: `POST {url}/mp/collect?measurement_id=..&api_secret=..` with
//! `{client_id, events, user_data}`. One request per visitor.

use serde_json::{json, Value};

use super::{optional, required, ConfigError, Kind, Queued};
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

/// Percent-encodes a query value.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
