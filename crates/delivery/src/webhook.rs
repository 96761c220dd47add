//! A client's own endpoint: `POST {url}` with `{"events": [...]}`, signed
//! with HMAC-SHA256 of the body (`x-signature: sha256=<hex>`) when the config
//! has a `secret`, so the receiver can tell the request is ours.

use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use super::{optional, required, ConfigError, Kind, Queued};
use platform::outbound::HttpRequest;

pub(crate) fn request(config: &Value, events: &[Queued]) -> Result<HttpRequest, ConfigError> {
    let url = required(config, "url", Kind::Webhook)?;
    let body = json!({
        "events": events.iter().map(|e| json!({
            "event_id": e.event_id,
            "event_name": e.event_name,
            "event_time": e.event_time,
            "payload": e.event_payload,
            "user_data": e.user_data,
        })).collect::<Vec<_>>(),
    })
    .to_string()
    .into_bytes();
    let mut headers = vec![("content-type".to_string(), "application/json".to_string())];
    if let Some(secret) = optional(config, "secret") {
        headers.push((
            "x-signature".into(),
            format!("sha256={}", sign(secret, &body)),
        ));
    }
    Ok(HttpRequest {
        method: "POST".into(),
        url: url.to_string(),
        headers,
        body,
    })
}

pub(crate) fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(body);
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
