//! `POST /admin/destinations/{id}/test` (admin): one synthetic conversion
//! through the destination's real adapter in the platform's validation mode
//! — Meta with a `test_event_code` (Test Events), Data Manager and the Ads
//! API with `validateOnly`, GA4 through `/debug/mp/collect`, webhooks as a
//! Standard Webhooks message of type `test` — answering what the platform
//! said; for Data Manager also what `requestStatus:retrieve` says of the
//! request Google accepted. Nothing is written to the outbox.

use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{json, Value};
use spin_sdk::pg4::ParameterValue;

use crate::{webhook, Endpoints, Kind, Outcome, Queued};
use platform::db::Db;
use platform::outbound::{self, HttpRequest};
use platform::ApiError;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TestBody {
    test_event_code: Option<String>,
}

#[derive(Deserialize)]
struct Destination {
    kind: String,
    config: Value,
}

const DESTINATION: &str = "SELECT kind, config FROM client_destinations WHERE id = $1::text::uuid";

/// The e-mail the synthetic conversion carries (hashed, as always).
const TEST_EMAIL: &str = "test@example.com";

fn sha256_hex(s: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The synthetic conversion, shaped as save-lead queues it for `kind`.
fn synthetic(kind: Kind, now: i64) -> Queued {
    let hashed = sha256_hex(TEST_EMAIL);
    let (event_name, event_payload, user_data) = match kind {
        Kind::MetaCapi => (
            "Lead",
            json!({ "action_source": "website" }),
            json!({ "em": [hashed], "client_user_agent": "tracking-backbone test send" }),
        ),
        Kind::GoogleDm => (
            "Lead",
            json!({ "consent": { "adUserData": "CONSENT_GRANTED" } }),
            json!({ "userIdentifiers": [{ "emailAddress": hashed }] }),
        ),
        Kind::GoogleEc => (
            "Lead",
            json!({ "consent": { "adUserData": "GRANTED" } }),
            json!([{ "hashedEmail": hashed }]),
        ),
        Kind::GtmServer => (
            "generate_lead",
            json!({ "client_id": "test-send", "params": {} }),
            json!({ "sha256_email_address": [hashed] }),
        ),
        Kind::Webhook => ("lead", json!({ "test": true }), json!({ "em": [hashed] })),
    };
    Queued {
        id: 0,
        event_id: format!("test-{}", uuid::Uuid::new_v4()),
        event_name: event_name.into(),
        event_time: now,
        event_payload,
        user_data,
    }
}

/// The request of the validation mode, or why there is none.
fn validation_request(
    kind: Kind,
    config: &Value,
    endpoints: &Endpoints,
    event: &Queued,
    test_event_code: Option<&str>,
    now: i64,
) -> Result<HttpRequest, String> {
    let one = std::slice::from_ref(event);
    match kind {
        Kind::MetaCapi => {
            let code = test_event_code
                .or_else(|| crate::optional(config, "test_event_code"))
                .ok_or("a Meta test send needs a test_event_code (Events Manager → Test events), in the body or the destination's config")?;
            let mut config = config.clone();
            config["test_event_code"] = json!(code);
            crate::request(kind, &config, endpoints, one, now).map_err(|e| e.0)
        }
        Kind::GoogleDm => {
            crate::datamanager::request(config, endpoints, one, true).map_err(|e| e.0)
        }
        Kind::GoogleEc => {
            let mut r = crate::request(kind, config, endpoints, one, now).map_err(|e| e.0)?;
            let mut body: Value = serde_json::from_slice(&r.body).unwrap_or_default();
            body["validateOnly"] = json!(true);
            r.body = body.to_string().into_bytes();
            Ok(r)
        }
        Kind::GtmServer => {
            let mut r = crate::request(kind, config, endpoints, one, now).map_err(|e| e.0)?;
            r.url = r.url.replacen("/mp/collect?", "/debug/mp/collect?", 1);
            Ok(r)
        }
        Kind::Webhook => {
            let id = format!("test_{}", uuid::Uuid::new_v4().simple());
            webhook::message(config, webhook::TEST_TYPE, &id, event, now).map_err(|e| e.0)
        }
    }
}

/// The platform's messages worth showing: GA4's validation messages,
/// Google's and Meta's error messages.
fn messages(body: &Value) -> Vec<Value> {
    let mut out = Vec::new();
    if let Some(list) = body["validationMessages"].as_array() {
        out.extend(list.iter().cloned());
    }
    if let Some(m) = body["error"]["message"].as_str() {
        out.push(json!(m));
    }
    if let Some(m) = body["error"]["error_user_msg"].as_str() {
        out.push(json!(m));
    }
    if let Some(m) = body["messages"].as_array() {
        out.extend(m.iter().cloned());
    }
    out
}

/// Data Manager's `requestStatus:retrieve` answer for `request_id`, or why
/// it could not be read.
fn request_status(
    config: &Value,
    endpoints: &Endpoints,
    request_id: &str,
    timeout: Duration,
) -> Result<Value, String> {
    let request = crate::datamanager::request_status_request(config, endpoints, request_id)
        .map_err(|e| e.0)?;
    let response = outbound::send(&request, timeout).map_err(|e| e.to_string())?;
    let body: Value = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
    if (200..300).contains(&response.status) {
        Ok(body)
    } else {
        Err(format!(
            "HTTP {} {}",
            response.status,
            body["error"]["message"].as_str().unwrap_or("")
        ))
    }
}

/// Runs the test send of destination `id` (a UUID, checked by the caller).
pub fn test_send(
    db: &Db,
    id: &str,
    body: &[u8],
    endpoints: &Endpoints,
    timeout: Duration,
) -> Result<Value, ApiError> {
    let body: TestBody = if body.iter().all(u8::is_ascii_whitespace) {
        TestBody {
            test_event_code: None,
        }
    } else {
        platform::json::parse_body(body)?
    };
    let found: Vec<Destination> = db.rows(DESTINATION, &[ParameterValue::Str(id.to_string())])?;
    let Some(d) = found.into_iter().next() else {
        return Err(ApiError::new(
            404,
            "unknown_destination",
            format!("no destination with id {id}"),
        )
        .field("id"));
    };
    let Some(kind) = Kind::parse(&d.kind) else {
        return Err(ApiError::bad_request(
            "unknown_kind",
            "id",
            format!("destination kind {:?} has no adapter", d.kind),
        ));
    };
    let now = chrono::Utc::now().timestamp();
    let event = synthetic(kind, now);
    let answer = |ok: bool, extra: Value| {
        let mut v = json!({ "destination_id": id, "destination": kind.as_str(), "ok": ok, "event_id": event.event_id });
        if let (Some(v), Some(extra)) = (v.as_object_mut(), extra.as_object()) {
            v.extend(extra.clone());
        }
        v
    };
    let config = match crate::run::prepare(db, id, kind, &d.config, endpoints, timeout) {
        Ok(config) => config,
        Err(Outcome::DeadLetter { error, .. } | Outcome::Retry { error, .. }) => {
            return Ok(answer(
                false,
                json!({ "error": error, "stage": "credentials" }),
            ));
        }
        Err(Outcome::Resolved) => d.config.clone(),
    };
    let request = match validation_request(
        kind,
        &config,
        endpoints,
        &event,
        body.test_event_code.as_deref(),
        now,
    ) {
        Ok(r) => r,
        Err(error) => return Ok(answer(false, json!({ "error": error, "stage": "config" }))),
    };
    let started = Instant::now();
    let sent = outbound::send(&request, timeout);
    let latency_ms = started.elapsed().as_millis() as u64;
    Ok(match sent {
        Err(e) => answer(
            false,
            json!({ "error": crate::classify_send_error(&e).name(), "detail": e.to_string(), "stage": "send", "latency_ms": latency_ms }),
        ),
        Ok(response) => {
            let text = String::from_utf8_lossy(&response.body);
            let parsed: Value = serde_json::from_str(&text)
                .unwrap_or_else(|_| json!(text.chars().take(2000).collect::<String>()));
            let mut messages = messages(&parsed);
            // GA4 answers 2xx even for an invalid event: its debug
            // endpoint's validation messages say whether it is.
            let mut ok = (200..300).contains(&response.status)
                && (kind != Kind::GtmServer || messages.is_empty());
            let mut extra = json!({ "status": response.status, "latency_ms": latency_ms,
                                    "response": parsed });
            if let (true, Kind::GoogleDm, Some(request_id)) =
                (ok, kind, parsed["requestId"].as_str())
            {
                let status = request_status(&config, endpoints, request_id, timeout);
                match status {
                    Ok(body) => {
                        let (failed, lines) = crate::datamanager::request_status_summary(&body);
                        ok &= !failed;
                        messages.extend(lines.into_iter().map(Value::String));
                        extra["request_status"] = body;
                    }
                    Err(e) => extra["request_status_error"] = json!(e),
                }
            }
            extra["messages"] = json!(messages);
            answer(ok, extra)
        }
    })
}
