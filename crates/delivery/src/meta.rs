//! Meta Conversions API: `POST {base}/{version}/{pixel_id}/events` with
//! `{"data": [...], "access_token": ...}`. The token goes in the body, not
//! the URL, so it stays out of access logs.

use serde_json::{json, Map, Value};

use super::{optional, required, ConfigError, Endpoints, Kind, Queued};
use platform::outbound::HttpRequest;

pub(crate) fn request(
    config: &Value,
    endpoints: &Endpoints,
    events: &[Queued],
) -> Result<HttpRequest, ConfigError> {
    let pixel_id = required(config, "pixel_id", Kind::MetaCapi)?;
    let token = required(config, "access_token", Kind::MetaCapi)?;
    let version = optional(config, "api_version").unwrap_or(&endpoints.meta_api_version);
    // Limited Data Use (US state privacy laws), when the client enables it:
    // country and state 0 ask Meta to geolocate each event.
    let ldu = match config.get("limited_data_use") {
        None | Some(Value::Null) | Some(Value::Bool(false)) => false,
        Some(Value::Bool(true)) => true,
        Some(_) => {
            return Err(ConfigError(
                "meta_capi destination config: limited_data_use must be true or false".into(),
            ))
        }
    };
    let data: Vec<Value> = events
        .iter()
        .map(|e| {
            let mut event = match &e.event_payload {
                Value::Object(m) => m.clone(),
                _ => Map::new(),
            };
            event.insert("event_name".into(), json!(e.event_name));
            event.insert("event_time".into(), json!(e.event_time));
            event.insert("event_id".into(), json!(e.event_id));
            event.insert("user_data".into(), e.user_data.clone());
            if ldu {
                event.insert("data_processing_options".into(), json!(["LDU"]));
                event.insert("data_processing_options_country".into(), json!(0));
                event.insert("data_processing_options_state".into(), json!(0));
            }
            Value::Object(event)
        })
        .collect();
    let mut body = json!({ "data": data, "access_token": token });
    if let Some(code) = optional(config, "test_event_code") {
        body["test_event_code"] = json!(code);
    }
    Ok(HttpRequest {
        method: "POST".into(),
        url: format!(
            "{}/{}/{}/events",
            endpoints.meta_base_url.trim_end_matches('/'),
            version,
            pixel_id
        ),
        headers: vec![("content-type".into(), "application/json".into())],
        body: body.to_string().into_bytes(),
    })
}

/// Graph API error codes that mean "later" rather than "never": unknown or
/// transient errors (1, 2), and the rate limits (4, 17, 32, 341, 613, 80004).
pub(crate) fn is_transient(body: &str) -> bool {
    let Ok(v) = serde_json::from_str::<Value>(body) else {
        return false;
    };
    let error = &v["error"];
    if error["is_transient"].as_bool() == Some(true) {
        return true;
    }
    matches!(
        error["code"].as_i64(),
        Some(1 | 2 | 4 | 17 | 32 | 341 | 613 | 80004)
    )
}
