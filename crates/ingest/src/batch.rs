//! The `POST /v1/events` body: whole-request checks (`parse_batch`) and
//! per-event checks (`validate_event`). A bad event is rejected on its own,
//! with its index, the field and the reason; the rest of the batch goes on.

use chrono::{DateTime, Duration, Utc};
use serde_json::{Map, Value};
use url::Url;

use platform::site::Site;
use platform::ApiError;

use crate::attribution::{self, Attribution};

pub const MAX_BODY_BYTES: usize = 1 << 20;
pub const MAX_EVENTS: usize = 500;
/// Events stamped further ahead than this are rejected (clock skew allowance).
pub const MAX_FUTURE: Duration = Duration::hours(24);
/// Events older than this are rejected (late retries beyond it are noise).
pub const MAX_PAST: Duration = Duration::days(7);
/// Serialized `properties` larger than this are rejected.
pub const MAX_PROPERTIES_BYTES: usize = 16 * 1024;
/// The widget's own event names; custom names follow `^[a-z][a-z0-9_]{0,63}$`.
pub const STANDARD_EVENTS: [&str; 6] = [
    "widget_impression",
    "widget_open",
    "chat_started",
    "message_sent",
    "client_form_submitted",
    "widget_error",
];

fn bad(code: &'static str, field: &str, message: impl Into<String>) -> ApiError {
    ApiError::bad_request(code, field, message)
}

/// A request that passed the whole-request checks.
#[derive(Debug, Clone)]
pub struct Batch {
    /// Lower-case hyphenated UUID.
    pub client_id: String,
    /// The widget's `anonymous_id`.
    pub person_id: String,
    pub session_id: Option<String>,
    pub user_agent: Option<String>,
    pub locale: Option<String>,
    pub screen: Option<String>,
    /// `context.consent.analytics`: `Some(false)` when the visitor refused
    /// analytics (see `consent`).
    pub analytics_consent: Option<bool>,
    pub events: Vec<Value>,
}

fn opt_string(
    obj: &Map<String, Value>,
    key: &str,
    field: &str,
    max: usize,
) -> Result<Option<String>, ApiError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.contains('\0') => Err(bad(
            "invalid_field",
            field,
            format!("{field} contains a NUL character (\\u0000), which cannot be stored"),
        )),
        Some(Value::String(s)) if s.chars().count() <= max => Ok(Some(s.clone())),
        Some(Value::String(_)) => Err(bad(
            "invalid_field",
            field,
            format!("{field} is longer than {max} characters"),
        )),
        Some(_) => Err(bad(
            "invalid_field",
            field,
            format!("{field} must be a string"),
        )),
    }
}

/// Whole-request checks of the body.
pub fn parse_batch(body: &[u8]) -> Result<Batch, ApiError> {
    if body.len() > MAX_BODY_BYTES {
        return Err(ApiError::new(
            413,
            "body_too_large",
            format!(
                "the body is {} bytes; the limit is {MAX_BODY_BYTES} (1 MiB)",
                body.len()
            ),
        ));
    }
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            400,
            "malformed_json",
            format!("the body is not valid JSON: {e}"),
        )
    })?;
    let Value::Object(obj) = value else {
        return Err(ApiError::new(
            400,
            "invalid_body",
            "the body must be a JSON object",
        ));
    };
    let client_id = match obj.get("client_id") {
        Some(Value::String(s)) => uuid::Uuid::parse_str(s)
            .map_err(|_| bad("invalid_field", "client_id", "client_id must be a UUID"))?
            .hyphenated()
            .to_string(),
        None | Some(Value::Null) => {
            return Err(bad("missing_field", "client_id", "client_id is required"))
        }
        Some(_) => {
            return Err(bad(
                "invalid_field",
                "client_id",
                "client_id must be a UUID string",
            ))
        }
    };
    let person_id = opt_string(&obj, "anonymous_id", "anonymous_id", 200)?
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| {
            bad(
                "missing_field",
                "anonymous_id",
                "anonymous_id is required (the widget's stable per-browser id)",
            )
        })?;
    let session_id =
        opt_string(&obj, "session_id", "session_id", 200)?.filter(|s| !s.trim().is_empty());
    let (user_agent, locale, screen, analytics_consent) = match obj.get("context") {
        None | Some(Value::Null) => (None, None, None, None),
        Some(Value::Object(ctx)) => (
            opt_string(ctx, "user_agent", "context.user_agent", 1000)?,
            opt_string(ctx, "locale", "context.locale", 50)?,
            opt_string(ctx, "screen", "context.screen", 50)?,
            analytics_consent(ctx.get("consent"))?,
        ),
        Some(_) => return Err(bad("invalid_field", "context", "context must be an object")),
    };
    let events = match obj.get("events") {
        Some(Value::Array(a)) if a.is_empty() => {
            return Err(bad("invalid_field", "events", "events must not be empty"))
        }
        Some(Value::Array(a)) if a.len() > MAX_EVENTS => {
            return Err(ApiError::new(
                413,
                "too_many_events",
                format!("{} events in one batch; the limit is {MAX_EVENTS}", a.len()),
            )
            .field("events"))
        }
        Some(Value::Array(a)) => a.clone(),
        None | Some(Value::Null) => {
            return Err(bad("missing_field", "events", "events is required"))
        }
        Some(_) => return Err(bad("invalid_field", "events", "events must be an array")),
    };
    Ok(Batch {
        client_id,
        person_id,
        session_id,
        user_agent,
        locale,
        screen,
        analytics_consent,
        events,
    })
}

/// `context.consent`: an object whose `analytics` (and `ads`, read by
/// save-lead, not here) is a boolean when given.
fn analytics_consent(consent: Option<&Value>) -> Result<Option<bool>, ApiError> {
    match consent {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(c)) => match c.get("analytics") {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(bad(
                "invalid_field",
                "context.consent.analytics",
                "context.consent.analytics must be true or false",
            )),
        },
        Some(_) => Err(bad(
            "invalid_field",
            "context.consent",
            "context.consent must be an object",
        )),
    }
}

/// One accepted event, normalized.
#[derive(Debug, Clone, PartialEq)]
pub struct EventRow {
    pub index: usize,
    pub event_id: String,
    pub name: String,
    pub occurred_at: DateTime<Utc>,
    pub page_url: Option<String>,
    pub domain: Option<String>,
    pub referrer: Option<String>,
    pub referrer_domain: Option<String>,
    pub widget_displayed_at: Option<i64>,
    pub duration_s: Option<f64>,
    pub properties: Value,
    pub attribution: Attribution,
}

/// One rejected event: where, why, and the raw event (kept in `rejected_events`).
#[derive(Debug, Clone, PartialEq)]
pub struct Rejection {
    pub index: usize,
    pub event_id: Option<String>,
    pub field: String,
    pub reason: String,
    pub raw: Value,
}

/// Whether `name` is a standard event name or a valid custom one.
pub fn valid_event_name(name: &str) -> bool {
    let mut chars = name.chars();
    STANDARD_EVENTS.contains(&name)
        || (name.len() <= 64
            && chars.next().is_some_and(|c| c.is_ascii_lowercase())
            && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
}

/// Per-event checks; `now` bounds the timestamp, `site` the page host.
pub fn validate_event(
    index: usize,
    raw: &Value,
    now: DateTime<Utc>,
    site: &Site,
) -> Result<EventRow, Rejection> {
    let event_id = raw
        .get("event_id")
        .and_then(Value::as_str)
        .map(str::to_string);
    let reject = |field: &str, reason: String| Rejection {
        index,
        event_id: event_id.clone(),
        field: platform::json::field(&format!("events[{index}]"), field),
        reason,
        raw: raw.clone(),
    };
    let Value::Object(e) = raw else {
        return Err(reject("", "an event must be a JSON object".into()));
    };
    if let Some(path) = platform::json::nul_path(raw) {
        return Err(reject(
            &path,
            "contains a NUL character (\\u0000), which cannot be stored".into(),
        ));
    }
    let event_id = match e.get("event_id") {
        Some(Value::String(s)) => uuid::Uuid::parse_str(s)
            .map_err(|_| reject("event_id", "event_id must be a UUID".into()))?
            .hyphenated()
            .to_string(),
        None | Some(Value::Null) => return Err(reject("event_id", "event_id is required".into())),
        Some(_) => return Err(reject("event_id", "event_id must be a UUID string".into())),
    };
    let name = match e.get("name") {
        Some(Value::String(n)) if valid_event_name(n) => n.clone(),
        Some(Value::String(n)) => {
            return Err(reject(
                "name",
                format!(
                    "{n:?} is not a known event name and does not match ^[a-z][a-z0-9_]{{0,63}}$"
                ),
            ))
        }
        None | Some(Value::Null) => return Err(reject("name", "name is required".into())),
        Some(_) => return Err(reject("name", "name must be a string".into())),
    };
    let occurred_at = match e.get("timestamp") {
        Some(Value::String(t)) => DateTime::parse_from_rfc3339(t)
            .map_err(|_| reject("timestamp", format!("{t:?} is not an RFC 3339 timestamp")))?
            .with_timezone(&Utc),
        None | Some(Value::Null) => {
            return Err(reject("timestamp", "timestamp is required".into()))
        }
        Some(_) => {
            return Err(reject(
                "timestamp",
                "timestamp must be an RFC 3339 string".into(),
            ))
        }
    };
    if occurred_at > now + MAX_FUTURE {
        return Err(reject(
            "timestamp",
            "timestamp is more than 24 hours in the future".into(),
        ));
    }
    if occurred_at < now - MAX_PAST {
        return Err(reject(
            "timestamp",
            "timestamp is more than 7 days in the past".into(),
        ));
    }
    let mut attribution = Attribution::default();
    let (page_url, domain) = match e.get("page_url") {
        None | Some(Value::Null) => (None, None),
        Some(Value::String(u)) => {
            let url = Url::parse(u)
                .ok()
                .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
                .ok_or_else(|| {
                    reject(
                        "page_url",
                        "page_url must be an absolute http(s) URL".into(),
                    )
                })?;
            let host = url.host_str().unwrap_or_default();
            if !site.allows_host(host) {
                return Err(reject(
                    "page_url",
                    format!("page host {host:?} is not the client's domain or a subdomain of it"),
                ));
            }
            attribution = attribution::from_page(&url, occurred_at.timestamp_millis());
            (Some(truncate(u, 2000)), attribution::domain(&url))
        }
        Some(_) => return Err(reject("page_url", "page_url must be a string".into())),
    };
    let (referrer, referrer_domain) = match e.get("referrer") {
        None | Some(Value::Null) => (None, None),
        Some(Value::String(r)) if r.is_empty() => (None, None),
        Some(Value::String(r)) => (Some(truncate(r, 2000)), attribution::referrer_domain(r)),
        Some(_) => return Err(reject("referrer", "referrer must be a string".into())),
    };
    let widget_displayed_at = match e.get("widget_displayed_at") {
        None | Some(Value::Null) => None,
        Some(v) => match v
            .as_i64()
            .or_else(|| v.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64))
        {
            Some(ms) if ms >= 0 => Some(ms),
            _ => {
                return Err(reject(
                    "widget_displayed_at",
                    "widget_displayed_at must be a non-negative integer (ms since the epoch)"
                        .into(),
                ))
            }
        },
    };
    let duration_s = match e.get("duration_s") {
        None | Some(Value::Null) => None,
        Some(v) => match v.as_f64() {
            Some(d) if d.is_finite() && d >= 0.0 => Some(d),
            _ => {
                return Err(reject(
                    "duration_s",
                    "duration_s must be a non-negative number".into(),
                ))
            }
        },
    };
    let properties = match e.get("properties") {
        None | Some(Value::Null) => Value::Object(Map::new()),
        Some(Value::Object(p)) => {
            let value = Value::Object(p.clone());
            if value.to_string().len() > MAX_PROPERTIES_BYTES {
                return Err(reject(
                    "properties",
                    format!("properties are larger than {MAX_PROPERTIES_BYTES} bytes"),
                ));
            }
            value
        }
        Some(_) => {
            return Err(reject(
                "properties",
                "properties must be a JSON object".into(),
            ))
        }
    };
    Ok(EventRow {
        index,
        event_id,
        name,
        occurred_at,
        page_url,
        domain,
        referrer,
        referrer_domain,
        widget_displayed_at,
        duration_s,
        properties,
        attribution,
    })
}

fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 22, 12, 0, 0).unwrap()
    }

    fn site() -> Site {
        Site {
            root_domain: Some("shop.com".into()),
            allow_localhost: false,
        }
    }

    fn event() -> Value {
        json!({
            "event_id": "6f1c8b7e-1234-4a5b-9c8d-0123456789ab", "name": "widget_impression",
            "timestamp": "2026-11-22T11:59:00Z", "page_url": "https://www.shop.com/a?utm_campaign=x",
            "referrer": "https://google.com/", "widget_displayed_at": 1795000000000i64, "duration_s": 12.5,
            "properties": {"k": 1}
        })
    }

    fn body(v: Value) -> Vec<u8> {
        v.to_string().into_bytes()
    }

    #[test]
    fn a_good_batch_and_event() {
        let b = parse_batch(&body(json!({"client_id": "6F1C8B7E-1234-4A5B-9C8D-0123456789AB", "anonymous_id": "p1", "events": [event()], "context": {"user_agent": "x"}}))).unwrap();
        assert_eq!(b.client_id, "6f1c8b7e-1234-4a5b-9c8d-0123456789ab");
        assert_eq!(b.user_agent.as_deref(), Some("x"));
        let e = validate_event(0, &b.events[0], now(), &site()).unwrap();
        assert_eq!(e.domain.as_deref(), Some("shop.com"));
        assert_eq!(e.referrer_domain.as_deref(), Some("google.com"));
        assert_eq!(e.attribution.utm_campaign.as_deref(), Some("x"));
        assert_eq!(e.duration_s, Some(12.5));
    }

    #[test]
    fn whole_request_errors_name_what_is_wrong() {
        let err = |b: &[u8]| parse_batch(b).unwrap_err();
        assert_eq!(err(b"{nope").code, "malformed_json");
        assert_eq!(err(b"[]").code, "invalid_body");
        assert_eq!(
            err(&body(json!({"anonymous_id": "p", "events": [{}]})))
                .field
                .as_deref(),
            Some("client_id")
        );
        assert_eq!(
            err(&body(
                json!({"client_id": "x", "anonymous_id": "p", "events": [{}]})
            ))
            .field
            .as_deref(),
            Some("client_id")
        );
        let e = err(&body(
            json!({"client_id": "6f1c8b7e-1234-4a5b-9c8d-0123456789ab", "events": [{}]}),
        ));
        assert_eq!(
            (e.code, e.field.as_deref()),
            ("missing_field", Some("anonymous_id"))
        );
        let many: Vec<Value> = (0..501).map(|_| json!({})).collect();
        let e = err(&body(
            json!({"client_id": "6f1c8b7e-1234-4a5b-9c8d-0123456789ab", "anonymous_id": "p", "events": many}),
        ));
        assert_eq!((e.status, e.code), (413, "too_many_events"));
        let big = vec![b' '; MAX_BODY_BYTES + 1];
        assert_eq!(err(&big).status, 413);
    }

    #[test]
    fn each_bad_event_is_rejected_with_its_field() {
        let field_of = |patch: Value| {
            let mut e = event();
            for (k, v) in patch.as_object().unwrap() {
                if v.is_null() {
                    e.as_object_mut().unwrap().remove(k);
                } else {
                    e[k] = v.clone();
                }
            }
            validate_event(3, &e, now(), &site()).unwrap_err().field
        };
        assert_eq!(field_of(json!({"event_id": null})), "events[3].event_id");
        assert_eq!(field_of(json!({"event_id": "12"})), "events[3].event_id");
        assert_eq!(field_of(json!({"name": "Bad Name"})), "events[3].name");
        assert_eq!(
            field_of(json!({"timestamp": "yesterday"})),
            "events[3].timestamp"
        );
        assert_eq!(
            field_of(json!({"timestamp": "2026-11-23T12:00:01Z"})),
            "events[3].timestamp"
        );
        assert_eq!(
            field_of(json!({"timestamp": "2026-11-15T11:59:59Z"})),
            "events[3].timestamp"
        );
        assert_eq!(field_of(json!({"properties": [1]})), "events[3].properties");
        assert_eq!(
            field_of(json!({"page_url": "https://evil.com/"})),
            "events[3].page_url"
        );
        assert_eq!(field_of(json!({"duration_s": -1})), "events[3].duration_s");
        assert_eq!(
            field_of(json!({"widget_displayed_at": "soon"})),
            "events[3].widget_displayed_at"
        );
        assert_eq!(
            validate_event(1, &json!(5), now(), &site())
                .unwrap_err()
                .field,
            "events[1]"
        );
        // Just inside both time bounds.
        let mut e = event();
        e["timestamp"] = json!("2026-11-23T12:00:00Z");
        assert!(validate_event(0, &e, now(), &site()).is_ok());
        e["timestamp"] = json!("2026-11-15T12:00:00Z");
        assert!(validate_event(0, &e, now(), &site()).is_ok());
    }

    #[test]
    fn event_names() {
        assert!(valid_event_name("chat_started"));
        assert!(valid_event_name("pricing_viewed2"));
        assert!(!valid_event_name("Pricing"));
        assert!(!valid_event_name("2fa"));
        assert!(!valid_event_name(""));
        assert!(!valid_event_name(&"a".repeat(65)));
        assert!(valid_event_name(&"a".repeat(64)));
    }
}
