//! Google conversions through the Data Manager API (`google_dm`):
//! `POST {base}/v1/events:ingest` with an OAuth access token (refreshed by
//! `oauth`), one destination (the Google Ads operating account, the login
//! account when it is a manager, the conversion action as product
//! destination), up to 2,000 events, SHA-256 identifiers hex-encoded.
//!
//! Data Manager rejects a whole request for one bad event (no partial
//! failure), so every event is checked here first (`invalid`) and never
//! joins a batch if it would fail; bisection isolates what Google still
//! refuses. The request shape is checked in tests against Google's published
//! schema (`schema/datamanager-v1-ingest-events.json`, from the
//! `@google-ads/datamanager` client library).

use serde_json::{json, Map, Value};

use super::{optional, required, ConfigError, Endpoints, Kind, Outcome, Queued};
use platform::outbound::HttpRequest;

/// Events per request (`IngestEventsRequest.events`: at most 2,000).
pub const MAX_EVENTS: usize = 2000;
/// `UserData.userIdentifiers`: at most 10.
const MAX_IDENTIFIERS: usize = 10;
/// Google Ads accepts click conversions up to 90 days after the click; the
/// lead's time is the latest the click can be, so 90 days after it the
/// conversion can no longer be imported.
pub const DEADLINE_SECS: i64 = 90 * 24 * 3600;
/// How far in the future an event time may be (clock skew).
const FUTURE_SLACK_SECS: i64 = 600;

fn account_id(config: &Value, key: &str) -> Result<Option<String>, ConfigError> {
    let Some(raw) = optional(config, key) else {
        return Ok(None);
    };
    let id = raw.replace('-', "");
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ConfigError(format!(
            "google_dm destination config: {key} must be a Google Ads customer id (digits, dashes allowed)"
        )));
    }
    Ok(Some(id))
}

/// The request's `destinations`: one, from the config.
pub(crate) fn destination(config: &Value) -> Result<Value, ConfigError> {
    required(config, "operating_account_id", Kind::GoogleDm)?;
    let operating = account_id(config, "operating_account_id")?.unwrap_or_default();
    let action = required(config, "conversion_action_id", Kind::GoogleDm)?;
    let mut d = json!({
        "operatingAccount": { "accountType": "GOOGLE_ADS", "accountId": operating },
        "productDestinationId": action.trim(),
    });
    if let Some(login) = account_id(config, "login_account_id")? {
        d["loginAccount"] = json!({ "accountType": "GOOGLE_ADS", "accountId": login });
    }
    Ok(d)
}

/// One `Event`: our event_id as `transactionId` (Google deduplicates on it).
fn event(e: &Queued) -> Value {
    let mut out = Map::new();
    out.insert("transactionId".into(), json!(e.event_id));
    out.insert("eventTimestamp".into(), json!(timestamp(e.event_time)));
    out.insert("eventSource".into(), json!("WEB"));
    let ids = identifiers(&e.user_data);
    if !ids.is_empty() {
        out.insert("userData".into(), json!({ "userIdentifiers": ids }));
    }
    for key in ["adIdentifiers", "consent", "conversionValue", "currency"] {
        if let Some(v) = e.event_payload.get(key).filter(|v| !v.is_null()) {
            out.insert(key.into(), v.clone());
        }
    }
    Value::Object(out)
}

/// The queued user data: `{"userIdentifiers": [...]}` (as save-lead queues
/// it) or the bare list.
fn identifiers(user_data: &Value) -> Vec<Value> {
    let list = user_data.get("userIdentifiers").unwrap_or(user_data);
    list.as_array().cloned().unwrap_or_default()
}

/// RFC 3339 in UTC, as protobuf's JSON mapping writes a Timestamp.
fn timestamp(unix: i64) -> String {
    chrono::DateTime::from_timestamp(unix, 0)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The `events:ingest` request. `config` carries the access token (put
/// there by `oauth` at send time); `validate_only` asks Google to check the
/// request without importing it.
pub(crate) fn request(
    config: &Value,
    endpoints: &Endpoints,
    events: &[Queued],
    validate_only: bool,
) -> Result<HttpRequest, ConfigError> {
    let destination = destination(config)?;
    let token = required(config, "access_token", Kind::GoogleDm)?;
    let mut body = json!({
        "destinations": [destination],
        "encoding": "HEX",
        "events": events.iter().map(event).collect::<Vec<_>>(),
    });
    if validate_only {
        body["validateOnly"] = json!(true);
    }
    Ok(HttpRequest {
        method: "POST".into(),
        url: format!(
            "{}/v1/events:ingest",
            endpoints.google_datamanager_base_url.trim_end_matches('/')
        ),
        headers: vec![
            ("content-type".into(), "application/json".into()),
            ("authorization".into(), format!("Bearer {token}")),
        ],
        body: body.to_string().into_bytes(),
    })
}

/// `GET {base}/v1/requestStatus:retrieve?requestId=…`: how Google processed
/// an accepted request, per destination. `events:ingest` answers 200 once
/// the request is well-formed; what then happened to its events (a gclid
/// Google does not know, consent denied, terms not signed) only this says.
pub fn request_status_request(
    config: &Value,
    endpoints: &Endpoints,
    request_id: &str,
) -> Result<HttpRequest, ConfigError> {
    let token = required(config, "access_token", Kind::GoogleDm)?;
    Ok(HttpRequest {
        method: "GET".into(),
        url: format!(
            "{}/v1/requestStatus:retrieve?requestId={}",
            endpoints.google_datamanager_base_url.trim_end_matches('/'),
            crate::encode(request_id)
        ),
        headers: vec![("authorization".into(), format!("Bearer {token}"))],
        body: Vec::new(),
    })
}

/// What a `RetrieveRequestStatusResponse` says: whether any destination
/// failed (`FAILED`, `PARTIAL_SUCCESS`), and one line per status and per
/// error or warning count (`"1 event: PROCESSING_ERROR_REASON_INVALID_GCLID"`).
pub fn request_status_summary(body: &Value) -> (bool, Vec<String>) {
    let mut failed = false;
    let mut lines = Vec::new();
    let per_destination = body["requestStatusPerDestination"].as_array();
    for d in per_destination.into_iter().flatten() {
        let status = d["requestStatus"]
            .as_str()
            .unwrap_or("REQUEST_STATUS_UNKNOWN");
        failed |= matches!(status, "FAILED" | "PARTIAL_SUCCESS");
        lines.push(format!("request status: {status}"));
        for (info, counts, prefix) in [
            ("errorInfo", "errorCounts", ""),
            ("warningInfo", "warningCounts", "warning: "),
        ] {
            for c in d[info][counts].as_array().into_iter().flatten() {
                // int64 travels as a JSON string.
                let n = c["recordCount"]
                    .as_str()
                    .and_then(|n| n.parse::<i64>().ok())
                    .or_else(|| c["recordCount"].as_i64())
                    .unwrap_or(0);
                let reason = c["reason"].as_str().unwrap_or("unspecified");
                let noun = if n == 1 { "event" } else { "events" };
                lines.push(format!("{prefix}{n} {noun}: {reason}"));
            }
        }
    }
    (failed, lines)
}

fn is_hex_sha256(v: &Value) -> bool {
    v.as_str()
        .is_some_and(|s| s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
}

/// Why Data Manager would refuse this event (and with it the whole request),
/// or None. Checked before an event joins a batch.
pub fn invalid(e: &Queued, now: i64) -> Option<String> {
    if e.event_id.trim().is_empty() {
        return Some("no event_id for transactionId".into());
    }
    if e.event_time > now + FUTURE_SLACK_SECS {
        return Some("event time is in the future".into());
    }
    let ids = identifiers(&e.user_data);
    if ids.len() > MAX_IDENTIFIERS {
        return Some(format!(
            "{} user identifiers; Data Manager takes at most {MAX_IDENTIFIERS}",
            ids.len()
        ));
    }
    for (i, id) in ids.iter().enumerate() {
        let Some(obj) = id.as_object().filter(|o| o.len() == 1) else {
            return Some(format!(
                "userIdentifiers[{i}] must hold exactly one identifier"
            ));
        };
        let ok = match obj.iter().next() {
            Some((k, v)) if k == "emailAddress" || k == "phoneNumber" => is_hex_sha256(v),
            Some((k, a)) if k == "address" => {
                is_hex_sha256(&a["givenName"])
                    && is_hex_sha256(&a["familyName"])
                    && a["regionCode"]
                        .as_str()
                        .is_some_and(|r| r.len() == 2 && r.bytes().all(|b| b.is_ascii_uppercase()))
                    && a["postalCode"]
                        .as_str()
                        .is_some_and(|p| !p.trim().is_empty())
            }
            _ => false,
        };
        if !ok {
            return Some(format!(
                "userIdentifiers[{i}] is not a hex SHA-256 emailAddress/phoneNumber or a complete address"
            ));
        }
    }
    let ad = &e.event_payload["adIdentifiers"];
    let clicks: Vec<&str> = ["gclid", "gbraid", "wbraid"]
        .into_iter()
        .filter(|k| ad[*k].as_str().is_some_and(|s| !s.trim().is_empty()))
        .collect();
    if ids.is_empty() && clicks.is_empty() {
        return Some("nothing to match on: no user identifier and no gclid/gbraid/wbraid".into());
    }
    for (k, v) in e.event_payload["consent"].as_object().into_iter().flatten() {
        if !matches!(v.as_str(), Some("CONSENT_GRANTED" | "CONSENT_DENIED")) {
            return Some(format!(
                "consent.{k} must be CONSENT_GRANTED or CONSENT_DENIED"
            ));
        }
    }
    None
}

/// What a Data Manager error means. Google's errors are
/// `{"error": {"code", "message", "status", "details"}}`.
pub(crate) fn classify_error(status: u16, error: String) -> Option<Outcome> {
    match status {
        // The access token was refused (expired early, revoked): the run
        // forgets it and the next attempt gets a new one.
        401 => Some(Outcome::Retry { error, after: None }),
        // The account or conversion action is not reachable with these
        // credentials: a config problem, not one of the events.
        403 | 404 => Some(Outcome::DeadLetter {
            reason: "config".into(),
            error,
        }),
        _ => None,
    }
}
