//! `POST /v1/leads`: store the lead, fill a missing address from the
//! visitor's IP, queue the conversion for each destination in the same
//! statement as the lead, then try each delivery once, inline, with a short
//! deadline. What fails stays queued for the retry run; nothing is lost if
//! the instance dies after the commit (the rows' lease runs out).

use std::collections::HashMap;
use std::net::IpAddr;

use chrono::Utc;
use serde_json::{json, Value};
use spin_sdk::http::{Request, Response};

use delivery::{inline, Kind};
use platform::cors::with_cors;
use platform::outbound::{self, HttpRequest};
use platform::request::{header, require_json};
use platform::vars::Vars;
use platform::{client_ip, db, respond, site, ApiError};

use crate::config::Config;
use crate::conversions::{self, LeadConversion};
use crate::geo::{self, IpLocation};
use crate::lead::{self, Contact, LeadRequest};
use crate::locate::{locate, Provider};
use crate::store::{self, Client};
use crate::{ip_api, normalize};

/// Answers `POST /v1/leads`, with the CORS headers for an allowed origin.
pub fn save(req: &Request) -> Response {
    let origin = header(req, "origin");
    with_cors(accept(req).unwrap_or_else(ApiError::into_response), origin)
}

fn not_stored(e: db::DbError) -> ApiError {
    ApiError::db(e, "the lead was not stored")
}

fn accept(req: &Request) -> Result<Response, ApiError> {
    require_json(req)?;
    let lead = lead::parse(req.body())?;
    let config = Config::from_vars(&Vars::spin())?;
    let db = db::connect().map_err(not_stored)?;
    let client = store::load_client(&db, &lead.client_id).map_err(not_stored)?;
    let client = site::admit(&lead.client_id, client, header(req, "origin"))?;
    let ip = client_ip::client_ip(
        header(req, "spin-client-addr"),
        header(req, "x-forwarded-for"),
        &config.trusted_proxies,
    );
    let (user, ai) = (lead.user_address(), lead.ai_address());
    let (location, lookup) = if geo::needs_lookup(&user, &ai) {
        locate(ip, &config.providers, |provider, ip| match provider {
            Provider::Embedded => {
                store::embedded_lookup(&db, &ip.to_string()).map_err(|e| e.to_string())
            }
            Provider::Remote => remote_lookup(&db, ip, &config, client.remote_paused_for),
        })
    } else {
        (None, json!({ "outcome": "not_needed" }))
    };
    let address = geo::merge(&user, &ai, location.as_ref());
    let countries = geo::phone_countries(&address, client.default_country.as_deref());
    let contact = lead::validate_contact(&lead, &countries, client.contact_required)?;

    let lead_id = uuid::Uuid::new_v4().to_string();
    let now = Utc::now().timestamp();
    let user_agent: Option<String> =
        header(req, "user-agent").map(|ua| ua.chars().take(1000).collect());
    let full_ip = ip.map(|ip| ip.to_string());
    let conversion = LeadConversion {
        lead_id: &lead_id,
        client_id: &lead.client_id,
        event_id: &lead.event_id,
        event_time: now,
        page_url: lead.page_url.as_deref(),
        anonymous_id: lead.anonymous_id.as_deref(),
        session_id: lead.session_id.as_deref(),
        gclid: lead.gclid.as_deref(),
        gbraid: lead.gbraid.as_deref(),
        wbraid: lead.wbraid.as_deref(),
        ad_personalization: lead
            .consent
            .as_ref()
            .and_then(|c| c.get("ad_personalization"))
            .and_then(Value::as_bool),
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
    let (queued, skipped) = queue(&lead, &client, &conversion);
    let deliveries: Vec<Value> = queued
        .iter()
        .map(|(id, (kind, q))| {
            json!({
                "destination_id": id, "destination": kind.as_str(), "event_name": q.event_name,
                "event_time": now, "event_payload": q.event_payload, "user_data": q.user_data,
            })
        })
        .collect();
    let stored_ip = ip.and_then(|ip| client_ip::stored(ip, config.ip_storage));
    let row = lead_row(
        &lead_id, &lead, &contact, &address, &lookup, stored_ip, user_agent,
    );

    let lease_owner = uuid::Uuid::new_v4().to_string();
    let saved = store::save(
        &db,
        &row,
        &Value::Array(deliveries),
        &lease_owner,
        config.lease_seconds(queued.len()),
    )
    .map_err(not_stored)?;
    if !saved.created {
        return Ok(respond::json(
            200,
            &json!({ "lead_id": saved.lead_id, "duplicate": true }),
        ));
    }

    let attempts: Vec<inline::Attempt> = saved
        .queued
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|q| {
            let id = q["id"].as_i64()?;
            let destination_id = q["destination_id"].as_str()?;
            let (kind, conv) = queued.get(destination_id)?;
            let dest = client
                .destinations
                .iter()
                .find(|d| d.id == destination_id)?;
            Some(inline::Attempt {
                destination_id,
                kind: *kind,
                config: &dest.config,
                event: delivery::Queued {
                    id,
                    event_id: lead.event_id.clone(),
                    event_name: conv.event_name.to_string(),
                    event_time: now,
                    event_payload: conv.event_payload.clone(),
                    user_data: conv.user_data.clone(),
                },
            })
        })
        .collect();
    let delivered = inline::attempt(
        &db,
        &lease_owner,
        attempts,
        &config.endpoints,
        config.inline_timeout,
    );
    let warnings: Vec<Value> = contact
        .invalid
        .iter()
        .map(|i| json!({ "field": i["field"], "message": format!("left out: {}", i["reason"].as_str().unwrap_or("invalid")) }))
        .collect();
    Ok(respond::json(
        201,
        &json!({
            "lead_id": saved.lead_id,
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
    ))
}

type Queued = HashMap<String, (Kind, conversions::Queued)>;

/// The conversion each destination gets, by destination id, and the
/// destinations skipped (ad platforms without ads consent).
fn queue(lead: &LeadRequest, client: &Client, conversion: &LeadConversion) -> (Queued, Vec<Value>) {
    let mut queued = Queued::new();
    let mut skipped = Vec::new();
    for d in &client.destinations {
        if lead.ads_refused() && d.kind.is_ad_platform() {
            skipped.push(json!({ "destination": d.kind.as_str(), "reason": "no ads consent" }));
            continue;
        }
        if let Some(q) = conversions::for_destination(d.kind.as_str(), conversion) {
            queued.insert(d.id.clone(), (d.kind, q));
        }
    }
    (queued, skipped)
}

/// The `leads` row, as `save_lead` reads it.
fn lead_row(
    id: &str,
    lead: &LeadRequest,
    contact: &Contact,
    address: &geo::Address,
    lookup: &Value,
    client_ip: Option<String>,
    user_agent: Option<String>,
) -> Value {
    let sources: serde_json::Map<String, Value> = address
        .sources
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v.as_str())))
        .collect();
    json!({
        "id": id, "client_id": lead.client_id, "event_id": lead.event_id,
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
        "client_ip": client_ip,
        "user_agent": user_agent,
    })
}

/// The remote provider, bounded by its timeout. A 429 pauses it for everyone
/// (for `Retry-After` or `geo_remote_pause_seconds`), so a rate limit costs
/// one slow request rather than one per lead.
fn remote_lookup(
    db: &db::Db,
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
            let secs = ip_api::pause_seconds(
                response.header("retry-after"),
                response.header("x-ttl"),
                config.remote_pause.as_secs_f64(),
            );
            let _ = store::pause_remote(db, secs, "HTTP 429");
            Err(format!("rate limited (HTTP 429); paused for {secs:.0} s"))
        }
        other => Err(format!("HTTP {other}")),
    }
}
