//! `POST /v1/leads` (and its CORS preflight): stores a lead, fills a missing
//! address from the visitor's IP, queues the conversion for each of the
//! client's destinations in the same statement as the lead, then tries each
//! delivery once, inline, with a short deadline. What fails stays queued for
//! retry-failed-events; nothing is lost if this instance dies after the commit
//! (the queued rows' lease runs out and the retry run takes them).

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use chrono::Utc;
use serde::Deserialize;
use serde_json::{json, Value};
use spin_sdk::http::{Method, Request, Response};
use spin_sdk::http_component;
use spin_sdk::pg4::ParameterValue;

use delivery::bisect::EventOutcome;
use delivery::run;
use delivery::{Endpoints, Kind};
use ingest::client_ip::{self, IpNet, IpStorage};
use ingest::site::{self, Site};
use leads::geo::{self, IpLocation};
use leads::lead::{self, LeadError};
use leads::{conversions, ip_api, ip_scope, normalize};
use platform::cors::{self, with_cors};
use platform::db::{self, Db};
use platform::outbound::{self, HttpRequest};
use platform::respond;

mod sql;

const DBIP_ATTRIBUTION: &str = "IP Geolocation by DB-IP (https://db-ip.com)";

/// The geo providers, tried in the order the `geo_providers` variable lists them.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Provider {
    Embedded,
    Remote,
}

struct Config {
    trusted_proxies: Vec<IpNet>,
    ip_storage: IpStorage,
    providers: Vec<Provider>,
    remote_base_url: String,
    remote_key: String,
    remote_timeout: Duration,
    remote_pause: Duration,
    endpoints: Endpoints,
    inline_timeout: Duration,
}

fn variable(name: &str) -> Result<String, String> {
    spin_sdk::variables::get(name).map_err(|e| format!("variable {name}: {e}"))
}

fn millis(name: &str) -> Result<Duration, String> {
    variable(name)?
        .trim()
        .parse::<u64>()
        .map(Duration::from_millis)
        .map_err(|_| format!("variable {name} must be a whole number of milliseconds"))
}

impl Config {
    fn load() -> Result<Config, String> {
        let providers = variable("geo_providers")?
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty() && *s != "none")
            .map(|s| match s {
                "embedded" => Ok(Provider::Embedded),
                "remote" => Ok(Provider::Remote),
                other => Err(format!(
                    "variable geo_providers: unknown provider {other:?} (embedded, remote, none)"
                )),
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Config {
            trusted_proxies: client_ip::parse_trusted(&variable("trusted_proxies")?)?,
            ip_storage: variable("ip_storage")?.parse()?,
            providers,
            remote_base_url: variable("geo_remote_base_url")?,
            remote_key: variable("geo_remote_key")?,
            remote_timeout: millis("geo_remote_timeout_ms")?,
            remote_pause: Duration::from_secs(
                variable("geo_remote_pause_seconds")?
                    .trim()
                    .parse()
                    .map_err(|_| "variable geo_remote_pause_seconds must be a whole number")?,
            ),
            endpoints: Endpoints::from_variables()?,
            inline_timeout: millis("delivery_inline_timeout_ms")?,
        })
    }
}

fn header<'a>(req: &'a Request, name: &str) -> Option<&'a str> {
    req.header(name).and_then(|h| h.as_str())
}

fn lead_error(e: LeadError) -> Response {
    respond::json(
        e.status,
        &respond::error_body(e.code, &e.message, e.field.as_deref()),
    )
}

#[http_component]
fn handle(req: Request) -> Response {
    match req.method() {
        Method::Options => preflight(&req),
        Method::Post => save(&req),
        _ => respond::method_not_allowed(&["POST", "OPTIONS"]),
    }
}

/// A client's row as save-lead needs it.
struct Client {
    enabled: bool,
    site: Site,
    contact_required: bool,
    default_country: Option<String>,
    destinations: Vec<Destination>,
    remote_paused_for: Option<f64>,
}

struct Destination {
    id: String,
    kind: Kind,
    config: Value,
}

/// A row of `sql::CLIENT`.
#[derive(Deserialize)]
struct ClientRow {
    enabled: bool,
    root_domain: Option<String>,
    allow_localhost: bool,
    lead_contact_required: bool,
    default_country: Option<String>,
    destinations: Vec<Value>,
    remote_paused_for: Option<f64>,
}

fn load_client(conn: &Db, client_id: &str) -> Result<Option<Client>, db::DbError> {
    let row: Option<ClientRow> =
        conn.row(sql::CLIENT, &[ParameterValue::Str(client_id.to_string())])?;
    Ok(row.map(|r| Client {
        enabled: r.enabled,
        site: Site {
            root_domain: r.root_domain,
            allow_localhost: r.allow_localhost,
        },
        contact_required: r.lead_contact_required,
        default_country: r.default_country,
        destinations: r
            .destinations
            .into_iter()
            .filter_map(|d| {
                Some(Destination {
                    id: d["id"].as_str()?.to_string(),
                    kind: Kind::parse(d["kind"].as_str()?)?,
                    config: d["config"].clone(),
                })
            })
            .collect(),
        remote_paused_for: r.remote_paused_for,
    }))
}

/// `OPTIONS /v1/leads`: allowed when the origin belongs to an enabled client.
fn preflight(req: &Request) -> Response {
    let Some(origin) = header(req, "origin").map(str::to_string) else {
        return respond::error(
            400,
            "missing_origin",
            "a CORS preflight needs an Origin header",
        );
    };
    let refused = || cors::origin_refused(&origin, "leads");
    let Some(host) = site::origin_host(&origin) else {
        return refused();
    };
    let conn = match db::connect() {
        Ok(c) => c,
        Err(e) => return respond::db_failure(&e, "the lead was not stored"),
    };
    let local = Site {
        root_domain: None,
        allow_localhost: true,
    }
    .allows_host(&host);
    let roots = site::candidate_roots(&host);
    match conn.value(sql::ANY_CLIENT_FOR_ORIGIN, &[roots.into(), local.into()]) {
        Ok(true) => {}
        Ok(false) => return refused(),
        Err(e) => return respond::db_failure(&e, "the lead was not stored"),
    }
    cors::preflight_allowed(&origin)
}

fn save(req: &Request) -> Response {
    let origin = header(req, "origin").map(str::to_string);
    let cors = origin.as_deref();
    let content_type = header(req, "content-type")
        .unwrap_or_default()
        .to_ascii_lowercase();
    // text/plain is what navigator.sendBeacon sends, and needs no preflight.
    if !(content_type.starts_with("application/json") || content_type.starts_with("text/plain")) {
        return respond::error(
            415,
            "unsupported_content_type",
            &format!("content-type must be application/json, got {content_type:?}"),
        );
    }
    let lead = match lead::parse(req.body()) {
        Ok(l) => l,
        Err(e) => return with_cors(lead_error(e), cors),
    };
    let config = match Config::load() {
        Ok(c) => c,
        Err(e) => return respond::error(500, "misconfigured", &e),
    };
    let conn = match db::connect() {
        Ok(c) => c,
        Err(e) => return respond::db_failure(&e, "the lead was not stored"),
    };
    let client = match load_client(&conn, &lead.client_id) {
        Ok(Some(c)) => c,
        Ok(None) => {
            return lead_error(LeadError {
                status: 404,
                code: "unknown_client",
                message: format!("no client {}", lead.client_id),
                field: Some("client_id".into()),
            })
        }
        Err(e) => return respond::db_failure(&e, "the lead was not stored"),
    };
    if !client.enabled {
        return lead_error(LeadError {
            status: 403,
            code: "client_disabled",
            message: format!("client {} is disabled", lead.client_id),
            field: Some("client_id".into()),
        });
    }
    if let Some(o) = cors {
        if !client.site.allows_origin(o) {
            return respond::error(
                403,
                "origin_not_allowed",
                &format!("origin {o:?} is not the client's domain or a subdomain of it"),
            );
        }
    }
    let ip = client_ip::client_ip(
        header(req, "spin-client-addr"),
        header(req, "x-forwarded-for"),
        &config.trusted_proxies,
    );

    let user = lead.user_address();
    let ai = lead.ai_address();
    let (location, lookup) = if geo::needs_lookup(&user, &ai) {
        locate(&conn, ip, &config, client.remote_paused_for)
    } else {
        (None, json!({ "outcome": "not_needed" }))
    };
    let address = geo::merge(&user, &ai, location.as_ref());
    // National phone numbers: read with the country the visitor or the
    // assistant gave, else the client's market, else where the IP is.
    let mut phone_countries: Vec<&str> = Vec::new();
    let given = address
        .sources
        .get("country")
        .is_some_and(|s| *s != geo::Source::Ip);
    let ordered = if given {
        [
            address.country.as_deref(),
            client.default_country.as_deref(),
        ]
    } else {
        [
            client.default_country.as_deref(),
            address.country.as_deref(),
        ]
    };
    for c in ordered.into_iter().flatten() {
        if !phone_countries.contains(&c) {
            phone_countries.push(c);
        }
    }
    let contact = match lead::validate_contact(&lead, &phone_countries, client.contact_required) {
        Ok(c) => c,
        Err(e) => return with_cors(lead_error(e), cors),
    };

    let lead_id = uuid::Uuid::new_v4().to_string();
    let now = Utc::now().timestamp();
    let user_agent: Option<String> =
        header(req, "user-agent").map(|ua| ua.chars().take(1000).collect());
    let full_ip = ip.map(|ip| ip.to_string());
    let conversion = conversions::LeadConversion {
        lead_id: &lead_id,
        client_id: &lead.client_id,
        event_id: &lead.event_id,
        event_time: now,
        page_url: lead.page_url.as_deref(),
        anonymous_id: lead.anonymous_id.as_deref(),
        session_id: lead.session_id.as_deref(),
        gclid: lead.gclid.as_deref(),
        ads_consent: lead
            .consent
            .as_ref()
            .and_then(|c| c.get("ads"))
            .and_then(Value::as_bool),
        contact: normalize::Contact {
            email: contact.email.as_deref(),
            phone_e164: contact.phone.as_deref(),
            first_name: lead.first_name.as_deref(),
            last_name: lead.last_name.as_deref(),
            city: address.city.as_deref(),
            state: address.state.as_deref(),
            zip: address.zip.as_deref(),
            country: address.country.as_deref(),
            external_id: lead.anonymous_id.as_deref(),
            client_ip: full_ip.as_deref(),
            user_agent: user_agent.as_deref(),
            fbc: lead.fbc.as_deref(),
            fbp: lead.fbp.as_deref(),
        },
    };
    let mut queued_by_destination: HashMap<String, (Kind, conversions::Queued)> = HashMap::new();
    let mut skipped = Vec::new();
    for d in &client.destinations {
        if lead.ads_refused() && d.kind.is_ad_platform() {
            skipped.push(json!({ "destination": d.kind.as_str(), "reason": "no ads consent" }));
            continue;
        }
        if let Some(q) = conversions::for_destination(d.kind.as_str(), &conversion) {
            queued_by_destination.insert(d.id.clone(), (d.kind, q));
        }
    }
    let deliveries: Vec<Value> = queued_by_destination
        .iter()
        .map(|(id, (kind, q))| {
            json!({
                "destination_id": id, "destination": kind.as_str(), "event_name": q.event_name,
                "event_time": now, "event_payload": q.event_payload, "user_data": q.user_data,
            })
        })
        .collect();
    let sources: serde_json::Map<String, Value> = address
        .sources
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v.as_str())))
        .collect();
    let row = json!({
        "id": lead_id, "client_id": lead.client_id, "event_id": lead.event_id,
        "anonymous_id": lead.anonymous_id, "session_id": lead.session_id,
        "email": contact.email, "phone": contact.phone,
        "first_name": lead.first_name, "last_name": lead.last_name,
        "city": address.city, "state": address.state, "zip": address.zip, "country": address.country,
        "geo_source": address.geo_source().map(|s| s.as_str()), "geo_sources": sources,
        "geo_lookup": lookup, "ai_context": lead.ai_context, "page_url": lead.page_url,
        "fbc": lead.fbc, "fbp": lead.fbp, "gclid": lead.gclid,
        "consent": lead.consent.clone().unwrap_or_default(),
        "fields": lead.fields.clone().unwrap_or_default(),
        "invalid_fields": contact.invalid,
        "client_ip": ip.and_then(|ip| client_ip::stored(ip, config.ip_storage)),
        "user_agent": user_agent,
    });

    let lease_owner = uuid::Uuid::new_v4().to_string();
    let lease_secs =
        (config.inline_timeout.as_secs() as i32 + 1) * (deliveries.len() as i32 + 1) + 30;
    let jsonb = |v: &Value| ParameterValue::Jsonb(serde_json::to_vec(v).unwrap_or_default());
    let saved: Result<SavedRow, _> = conn.one(
        sql::SAVE_LEAD,
        &[
            jsonb(&row),
            jsonb(&Value::Array(deliveries)),
            ParameterValue::Str(lease_owner.clone()),
            ParameterValue::Int32(lease_secs),
        ],
    );
    let SavedRow {
        lead_id: stored_id,
        created,
        queued,
    } = match saved {
        Ok(v) => v,
        Err(e) => return with_cors(respond::db_failure(&e, "the lead was not stored"), cors),
    };
    if !created {
        return with_cors(
            respond::json(200, &json!({ "lead_id": stored_id, "duplicate": true })),
            cors,
        );
    }

    let attempts: Vec<(i64, String)> = queued
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|q| Some((q["id"].as_i64()?, q["destination_id"].as_str()?.to_string())))
        .collect();
    let delivered = deliver_inline(
        &conn,
        &lease_owner,
        &attempts,
        &queued_by_destination,
        &lead.event_id,
        now,
        &client.destinations,
        &config,
    );
    let warnings: Vec<Value> = contact
        .invalid
        .iter()
        .map(|i| json!({ "field": i["field"], "message": format!("left out: {}", i["reason"].as_str().unwrap_or("invalid")) }))
        .collect();
    with_cors(
        respond::json(
            201,
            &json!({
                "lead_id": stored_id,
                "duplicate": false,
                "address": {
                    "city": address.city, "state": address.state, "zip": address.zip,
                    "country": address.country, "geo_source": address.geo_source().map(|s| s.as_str()),
                    "sources": row["geo_sources"],
                },
                "geo_lookup": row["geo_lookup"],
                "deliveries": delivered,
                "skipped_destinations": skipped,
                "warnings": warnings,
            }),
        ),
        cors,
    )
}

/// A row of `sql::SAVE_LEAD`.
#[derive(Deserialize)]
struct SavedRow {
    lead_id: String,
    created: bool,
    queued: Value,
}

/// Looks the IP up with each configured provider until one finds it. Returns
/// the location and a report of what was tried (kept with the lead).
fn locate(
    conn: &Db,
    ip: Option<IpAddr>,
    config: &Config,
    remote_paused_for: Option<f64>,
) -> (Option<IpLocation>, Value) {
    let Some(ip) = ip else {
        return (None, json!({ "outcome": "no_ip" }));
    };
    // Private, loopback, CGNAT, documentation...: no provider can place them.
    if let Some(reason) = ip_scope::reason(ip) {
        return (None, json!({ "outcome": "not_global", "reason": reason }));
    }
    let mut tried = Vec::new();
    for provider in &config.providers {
        let started = Instant::now();
        let (name, result) = match provider {
            Provider::Embedded => ("embedded", embedded_lookup(conn, ip)),
            Provider::Remote => ("remote", remote_lookup(conn, ip, config, remote_paused_for)),
        };
        let ms = started.elapsed().as_millis() as u64;
        match result {
            Ok(Some(location)) => {
                let mut report =
                    json!({ "outcome": "found", "provider": name, "ms": ms, "tried": tried });
                if *provider == Provider::Embedded {
                    // DB-IP Lite's licence (CC BY 4.0) asks for this wherever its results are shown.
                    report["attribution"] = json!(DBIP_ATTRIBUTION);
                }
                return (Some(location), report);
            }
            Ok(None) => tried.push(json!({ "provider": name, "outcome": "not_found", "ms": ms })),
            Err(error) => tried
                .push(json!({ "provider": name, "outcome": "failed", "error": error, "ms": ms })),
        }
    }
    (None, json!({ "outcome": "not_found", "tried": tried }))
}

fn embedded_lookup(conn: &Db, ip: IpAddr) -> Result<Option<IpLocation>, String> {
    conn.row(sql::EMBEDDED_LOOKUP, &[ParameterValue::Str(ip.to_string())])
        .map_err(|e| e.to_string())
}

/// The remote provider, bounded by its timeout. A 429 pauses it for everyone
/// (for `Retry-After` or `geo_remote_pause_seconds`), so a rate limit costs
/// one slow request rather than one per lead.
fn remote_lookup(
    conn: &Db,
    ip: IpAddr,
    config: &Config,
    paused_for: Option<f64>,
) -> Result<Option<IpLocation>, String> {
    if let Some(secs) = paused_for {
        return Err(format!("paused after a 429 for another {secs:.0} s"));
    }
    let key = Some(config.remote_key.as_str()).filter(|k| !k.is_empty());
    let request = HttpRequest {
        method: "GET".into(),
        url: ip_api::url(&config.remote_base_url, &ip.to_string(), key),
        headers: vec![("accept".into(), "application/json".into())],
        body: Vec::new(),
    };
    let response = outbound::send(&request, config.remote_timeout).map_err(|e| e.to_string())?;
    match response.status {
        200 => ip_api::parse(&response.body).map(Some),
        429 => {
            let secs = response
                .header("retry-after")
                .and_then(|v| v.trim().parse::<f64>().ok())
                .or_else(|| {
                    response
                        .header("x-ttl")
                        .and_then(|v| v.trim().parse::<f64>().ok())
                })
                .unwrap_or(config.remote_pause.as_secs_f64())
                .clamp(1.0, 3600.0);
            let _ = conn.execute(
                sql::PAUSE_REMOTE,
                &[
                    ParameterValue::Floating64(secs),
                    ParameterValue::Str("HTTP 429".into()),
                ],
            );
            Err(format!("rate limited (HTTP 429); paused for {secs:.0} s"))
        }
        other => Err(format!("HTTP {other}")),
    }
}

/// One attempt per queued delivery, each bounded by `delivery_inline_timeout_ms`;
/// the outcomes are recorded in one statement.
#[allow(clippy::too_many_arguments)]
fn deliver_inline(
    conn: &Db,
    lease_owner: &str,
    attempts: &[(i64, String)],
    queued: &HashMap<String, (Kind, conversions::Queued)>,
    event_id: &str,
    event_time: i64,
    destinations: &[Destination],
    config: &Config,
) -> Vec<Value> {
    let mut results = Vec::new();
    let mut summary = Vec::new();
    for (delivery_id, destination_id) in attempts {
        let (Some((kind, q)), Some(dest)) = (
            queued.get(destination_id),
            destinations.iter().find(|d| &d.id == destination_id),
        ) else {
            continue;
        };
        let event = delivery::Queued {
            id: *delivery_id,
            event_id: event_id.to_string(),
            event_name: q.event_name.to_string(),
            event_time,
            event_payload: q.event_payload.clone(),
            user_data: q.user_data.clone(),
        };
        // The inline attempt is not a retry: retry_count stays 0.
        let sent = run::send_batch(
            *kind,
            &dest.config,
            &config.endpoints,
            &[event],
            config.inline_timeout,
        );
        let name = sent.outcome.name();
        results.push(run::result_json(
            &EventOutcome {
                id: *delivery_id,
                sent,
            },
            0,
        ));
        summary.push((*delivery_id, kind.as_str(), name));
    }
    let recorded: HashMap<i64, String> = conn
        .rows::<run::Recorded>(
            sql::RECORD_OUTCOMES,
            &[
                ParameterValue::Str(lease_owner.to_string()),
                ParameterValue::Jsonb(
                    serde_json::to_vec(&Value::Array(results)).unwrap_or_default(),
                ),
            ],
        )
        .map(|rows| rows.into_iter().map(|r| (r.id, r.status)).collect())
        .unwrap_or_else(|e| {
            // The rows stay leased and queued; the retry run takes them when the lease ends.
            eprintln!("save-lead: recording delivery outcomes failed: {e}");
            HashMap::new()
        });
    summary
        .into_iter()
        .map(|(id, kind, outcome)| {
            json!({
                "delivery_id": id, "destination": kind,
                "status": recorded.get(&id).cloned().unwrap_or_else(|| "pending".into()),
                "attempt": outcome,
            })
        })
        .collect()
}
