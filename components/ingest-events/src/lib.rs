//! `POST /v1/events` (and its CORS preflight): the widget's events into
//! Postgres. Validation, attribution and sessionization are in `crates/ingest`;
//! this component reads the request, asks the database about the client, and
//! writes the whole batch in one statement (events, their sessions and the
//! rejected events), so a failure writes nothing.

use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;
use serde_json::{json, Value};
use spin_sdk::http::{Method, Request, Response};
use spin_sdk::http_component;
use spin_sdk::pg4::ParameterValue;

use ingest::client_ip::{self, IpStorage};
use ingest::device::{parse_user_agent, Device, PARSER};
use ingest::sessions::{self, LastSession, Timed};
use ingest::site::{self, Site};
use ingest::{parse_batch, validate_event, EventRow, Rejection, RequestError};
use platform::cors::{self, with_cors};
use platform::db::{self, Db};
use platform::respond;

mod sql;

/// The configuration this component reads from Spin variables.
struct Config {
    session_timeout: Duration,
    trusted_proxies: Vec<ingest::client_ip::IpNet>,
    ip_storage: IpStorage,
    rejected_cap_per_hour: i64,
}

fn variable(name: &str) -> Result<String, String> {
    spin_sdk::variables::get(name).map_err(|e| format!("variable {name}: {e}"))
}

impl Config {
    fn load() -> Result<Config, String> {
        let minutes: i64 = variable("session_timeout_minutes")?
            .parse()
            .map_err(|_| "variable session_timeout_minutes must be a whole number".to_string())?;
        let cap: i64 = variable("rejected_events_cap_per_hour")?
            .parse()
            .map_err(|_| {
                "variable rejected_events_cap_per_hour must be a whole number".to_string()
            })?;
        Ok(Config {
            session_timeout: Duration::minutes(minutes),
            trusted_proxies: client_ip::parse_trusted(&variable("trusted_proxies")?)?,
            ip_storage: variable("ip_storage")?.parse()?,
            rejected_cap_per_hour: cap,
        })
    }
}

fn header<'a>(req: &'a Request, name: &str) -> Option<&'a str> {
    req.header(name).and_then(|h| h.as_str())
}

fn request_error(e: RequestError) -> Response {
    let body = respond::error_body(e.code, &e.message, e.field.as_deref());
    respond::json(e.status, &body)
}

fn client_error(status: u16, code: &'static str, message: String, field: Option<&str>) -> Response {
    request_error(RequestError {
        status,
        code,
        message,
        field: field.map(str::to_string),
    })
}

/// 503 when Postgres could not be reached, 500 when a statement failed:
/// either way nothing was written and the widget may resend.
fn not_stored(e: db::DbError) -> Response {
    respond::db_failure(&e, "events were not stored")
}

#[http_component]
fn handle(req: Request) -> Response {
    match req.method() {
        Method::Options => preflight(&req),
        Method::Post => ingest(&req),
        _ => respond::method_not_allowed(&["POST", "OPTIONS"]),
    }
}

/// A client's row, as ingest needs it, and the cached parse of the request's
/// user agent if there is one.
struct Client {
    enabled: bool,
    site: Site,
    cached_device: Option<Device>,
}

/// A row of `sql::CLIENT_AND_USER_AGENT`.
#[derive(Deserialize)]
struct ClientRow {
    enabled: bool,
    root_domain: Option<String>,
    allow_localhost: bool,
    device_type: Option<String>,
    browser: Option<String>,
    browser_version: Option<String>,
    os: Option<String>,
    os_version: Option<String>,
    is_bot: bool,
}

fn load_client(
    conn: &Db,
    client_id: &str,
    user_agent: &str,
) -> Result<Option<Client>, db::DbError> {
    let row: Option<ClientRow> = conn.row(
        sql::CLIENT_AND_USER_AGENT,
        &[
            ParameterValue::Str(client_id.to_string()),
            ParameterValue::Str(user_agent.to_string()),
            ParameterValue::Str(PARSER.to_string()),
        ],
    )?;
    Ok(row.map(|r| Client {
        enabled: r.enabled,
        site: Site {
            root_domain: r.root_domain,
            allow_localhost: r.allow_localhost,
        },
        cached_device: r.device_type.map(|device_type| Device {
            device_type,
            browser: r.browser,
            browser_version: r.browser_version,
            os: r.os,
            os_version: r.os_version,
            is_bot: r.is_bot,
        }),
    }))
}

/// `OPTIONS /v1/events`: allowed when the origin belongs to an enabled client
/// (the one named by `?client_id=` if given).
fn preflight(req: &Request) -> Response {
    let Some(origin) = header(req, "origin").map(str::to_string) else {
        return respond::error(
            400,
            "missing_origin",
            "a CORS preflight needs an Origin header",
        );
    };
    let Some(host) = site::origin_host(&origin) else {
        return respond::error(
            403,
            "origin_not_allowed",
            &format!("origin {origin:?} is not allowed"),
        );
    };
    let conn = match db::connect() {
        Ok(c) => c,
        Err(e) => return respond::db_failure(&e, ""),
    };
    let client_id = req
        .query()
        .split('&')
        .find_map(|kv| kv.strip_prefix("client_id="))
        .map(str::to_string);
    let allowed = match client_id {
        Some(id) => match load_client(&conn, &id, "") {
            Ok(Some(c)) => c.enabled && c.site.allows_origin(&origin),
            Ok(None) => false,
            Err(e) => return respond::db_failure(&e, ""),
        },
        None => {
            let roots: Vec<String> = site::candidate_roots(&host);
            let local = Site {
                root_domain: None,
                allow_localhost: true,
            }
            .allows_host(&host);
            match conn.value(sql::ANY_CLIENT_FOR_ORIGIN, &[roots.into(), local.into()]) {
                Ok(allowed) => allowed,
                Err(e) => return respond::db_failure(&e, ""),
            }
        }
    };
    if !allowed {
        return cors::origin_refused(&origin, "events");
    }
    cors::preflight_allowed(&origin)
}

fn ingest(req: &Request) -> Response {
    let origin = header(req, "origin").map(str::to_string);
    let content_type = header(req, "content-type")
        .unwrap_or_default()
        .to_ascii_lowercase();
    // text/plain is what navigator.sendBeacon sends, and needs no preflight.
    if !(content_type.starts_with("application/json") || content_type.starts_with("text/plain")) {
        return client_error(
            415,
            "unsupported_content_type",
            format!("content-type must be application/json (or text/plain for sendBeacon), got {content_type:?}"),
            None,
        );
    }
    let batch = match parse_batch(req.body()) {
        Ok(b) => b,
        Err(e) => return request_error(e),
    };
    let config = match Config::load() {
        Ok(c) => c,
        Err(e) => return respond::error(500, "misconfigured", &e),
    };
    let conn = match db::connect() {
        Ok(c) => c,
        Err(e) => return not_stored(e),
    };
    let user_agent: String = batch
        .user_agent
        .as_deref()
        .or(header(req, "user-agent"))
        .unwrap_or_default()
        .chars()
        .take(1000)
        .collect();
    let client = match load_client(&conn, &batch.client_id, &user_agent) {
        Ok(Some(c)) => c,
        Ok(None) => {
            return client_error(
                404,
                "unknown_client",
                format!("no client {}", batch.client_id),
                Some("client_id"),
            )
        }
        Err(e) => return not_stored(e),
    };
    if !client.enabled {
        return client_error(
            403,
            "client_disabled",
            format!("client {} is disabled", batch.client_id),
            Some("client_id"),
        );
    }
    if let Some(o) = &origin {
        if !client.site.allows_origin(o) {
            return client_error(
                403,
                "origin_not_allowed",
                format!("origin {o:?} is not the client's domain or a subdomain of it"),
                None,
            );
        }
    }
    let cors = origin.as_deref();

    let now = Utc::now();
    let mut accepted: Vec<EventRow> = Vec::new();
    let mut rejected: Vec<Rejection> = Vec::new();
    for (i, raw) in batch.events.iter().enumerate() {
        match validate_event(i, raw, now, &client.site) {
            Ok(e) => accepted.push(e),
            Err(r) => rejected.push(r),
        }
    }
    accepted.sort_by(|a, b| (a.occurred_at, &a.event_id).cmp(&(b.occurred_at, &b.event_id)));

    let ip = client_ip::client_ip(
        header(req, "spin-client-addr"),
        header(req, "x-forwarded-for"),
        &config.trusted_proxies,
    )
    .and_then(|ip| client_ip::stored(ip, config.ip_storage));
    // Parsing compiles the parser's rules in every fresh instance: only for
    // user agents not parsed before (then cached by the write below).
    let (device, new_user_agent) = match client.cached_device {
        Some(d) => (d, None),
        None => (parse_user_agent(&user_agent), Some(user_agent.as_str())),
    };

    let written = if batch.session_id.is_some() || accepted.is_empty() {
        let ids = vec![batch.session_id.clone().unwrap_or_default(); accepted.len()];
        write(
            &conn,
            &batch,
            &accepted,
            &ids,
            &rejected,
            &device,
            new_user_agent,
            ip.as_deref(),
            &config,
        )
    } else {
        sessionize_and_write(
            &conn,
            &batch,
            &accepted,
            &rejected,
            &device,
            new_user_agent,
            ip.as_deref(),
            &config,
        )
    };
    let session_id = match written {
        Ok(id) => id,
        Err(e) => return not_stored(e),
    };

    let status = match (accepted.is_empty(), rejected.is_empty()) {
        (_, true) => 200,
        (false, false) => 207,
        (true, false) => 422,
    };
    let rejected_json: Vec<Value> = rejected
        .iter()
        .map(|r| json!({ "index": r.index, "event_id": r.event_id, "field": r.field, "reason": r.reason }))
        .collect();
    with_cors(
        respond::json(
            status,
            &json!({ "accepted": accepted.len(), "rejected": rejected_json, "session_id": session_id }),
        ),
        cors,
    )
}

/// Assigns sessions under a per-visitor advisory lock, so concurrent batches
/// of one visitor agree on the session, then writes.
#[allow(clippy::too_many_arguments)]
fn sessionize_and_write(
    conn: &Db,
    batch: &ingest::Batch,
    accepted: &[EventRow],
    rejected: &[Rejection],
    device: &Device,
    new_user_agent: Option<&str>,
    ip: Option<&str>,
    config: &Config,
) -> Result<Option<String>, db::DbError> {
    conn.transaction(|conn| {
        let last: Option<LastSessionRow> = conn.row(
            sql::LOCK_AND_LAST_SESSION,
            &[
                ParameterValue::Str(batch.client_id.clone()),
                ParameterValue::Str(batch.person_id.clone()),
            ],
        )?;
        let last = last.map(|r| LastSession {
            id: r.session_id,
            last_seen: DateTime::from_timestamp_micros(r.last_seen_us).unwrap_or_default(),
            utm_campaign: r.utm_campaign,
        });
        let timed: Vec<Timed> = accepted
            .iter()
            .map(|e| Timed {
                at: e.occurred_at,
                utm_campaign: e.attribution.utm_campaign.as_deref(),
            })
            .collect();
        let ids = sessions::assign(&timed, last, config.session_timeout, || {
            uuid::Uuid::new_v4().to_string()
        });
        write(
            conn,
            batch,
            accepted,
            &ids,
            rejected,
            device,
            new_user_agent,
            ip,
            config,
        )
    })
}

/// A row of `sql::LOCK_AND_LAST_SESSION`.
#[derive(Deserialize)]
struct LastSessionRow {
    session_id: String,
    last_seen_us: i64,
    utm_campaign: Option<String>,
}

/// One statement: the accepted events, their sessions, the rejected events.
/// Returns the session of the latest event.
#[allow(clippy::too_many_arguments)]
fn write(
    conn: &Db,
    batch: &ingest::Batch,
    accepted: &[EventRow],
    session_ids: &[String],
    rejected: &[Rejection],
    device: &Device,
    new_user_agent: Option<&str>,
    ip: Option<&str>,
    config: &Config,
) -> Result<Option<String>, db::DbError> {
    let events: Vec<Value> = accepted
        .iter()
        .zip(session_ids)
        .map(|(e, sid)| {
            let a = &e.attribution;
            json!({
                "event_id": e.event_id, "session_id": sid, "event_name": e.name,
                "occurred_at": e.occurred_at.to_rfc3339(), "widget_displayed_at": e.widget_displayed_at,
                "duration_s": e.duration_s, "page_url": e.page_url, "domain": e.domain,
                "referrer": e.referrer, "referrer_domain": e.referrer_domain,
                "utm_source": a.utm_source, "utm_medium": a.utm_medium, "utm_campaign": a.utm_campaign,
                "utm_term": a.utm_term, "utm_content": a.utm_content,
                "gclid": a.gclid, "fbclid": a.fbclid, "fbc": a.fbc, "properties": e.properties,
            })
        })
        .collect();
    let rejections: Vec<Value> = rejected
        .iter()
        .map(|r| json!({ "event_index": r.index, "event_id": r.event_id, "field": r.field, "reason": r.reason, "payload": r.raw }))
        .collect();
    let opt = |s: Option<&str>| {
        s.map(|s| ParameterValue::Str(s.to_string()))
            .unwrap_or(ParameterValue::DbNull)
    };
    let jsonb = |v: &Value| ParameterValue::Jsonb(serde_json::to_vec(v).unwrap_or_default());
    conn.execute(
        sql::WRITE_BATCH,
        &[
            jsonb(&Value::Array(events)),
            ParameterValue::Str(batch.client_id.clone()),
            ParameterValue::Str(batch.person_id.clone()),
            ParameterValue::Str(device.device_type.clone()),
            opt(device.browser.as_deref()),
            opt(device.browser_version.as_deref()),
            opt(device.os.as_deref()),
            opt(device.os_version.as_deref()),
            ParameterValue::Boolean(device.is_bot),
            opt(ip),
            opt(batch.locale.as_deref()),
            opt(batch.screen.as_deref()),
            jsonb(&Value::Array(rejections)),
            ParameterValue::Int64(config.rejected_cap_per_hour),
            opt(new_user_agent),
            ParameterValue::Str(PARSER.to_string()),
        ],
    )?;
    Ok(session_ids.last().cloned())
}
