//! `POST /v1/events`: the request → checks → one write → the answer.
//! Validation, attribution and sessionization are the pure modules of this
//! crate; the database part is `store`.

use chrono::Utc;
use serde_json::{json, Value};
use spin_sdk::http::{Request, Response};

use platform::cors::with_cors;
use platform::request::{header, require_json};
use platform::vars::Vars;
use platform::{client_ip, db, respond, site, ApiError};

use crate::batch::{parse_batch, validate_event, EventRow, Rejection};
use crate::bots;
use crate::config::Config;
use crate::consent::{self, Refused};
use crate::device::parse_user_agent;
use crate::store::{self, BatchWrite};

/// Answers `POST /v1/events`, with the CORS headers for an allowed origin.
pub fn receive(req: &Request) -> Response {
    let origin = header(req, "origin");
    let response = accept(req).unwrap_or_else(ApiError::into_response);
    with_cors(response, origin)
}

fn not_stored(e: db::DbError) -> ApiError {
    ApiError::db(e, "events were not stored")
}

fn accept(req: &Request) -> Result<Response, ApiError> {
    require_json(req)?;
    let mut batch = parse_batch(req.body())?;
    let config = Config::from_vars(&Vars::spin())?;
    let db = db::connect().map_err(not_stored)?;
    let user_agent: String = batch
        .user_agent
        .as_deref()
        .or(header(req, "user-agent"))
        .unwrap_or_default()
        .chars()
        .take(1000)
        .collect();
    let client = store::load_client(&db, &batch, &user_agent).map_err(not_stored)?;
    let client = site::admit(&batch.client_id, client, header(req, "origin"))?;

    let now = Utc::now();
    let (mut accepted, mut rejected): (Vec<EventRow>, Vec<Rejection>) = {
        let mut ok = Vec::new();
        let mut bad = Vec::new();
        for (i, raw) in batch.events.iter().enumerate() {
            match validate_event(i, raw, now, &client.site) {
                Ok(e) => ok.push(e),
                Err(r) => bad.push(r),
            }
        }
        (ok, bad)
    };
    // The same event twice in one batch: the first copy counts.
    let mut repeated: Vec<(usize, String)> = Vec::new();
    {
        let mut seen = std::collections::HashSet::new();
        accepted.retain(|e| {
            let first = seen.insert(e.event_id.clone());
            if !first {
                repeated.push((e.index, e.event_id.clone()));
            }
            first
        });
    }
    store::sort_for_write(&mut accepted);
    let refused = consent::refused(&batch).then_some(client.refused_consent);
    match refused {
        Some(Refused::Drop) => {
            let (status, mut body) = answer(accepted.len(), &[], &rejected, None);
            body["consent_refused"] = json!(Refused::Drop.as_str());
            return Ok(respond::json(status, &body));
        }
        Some(Refused::Anonymous) => {
            consent::anonymize(&mut batch, &mut accepted, &mut rejected, || {
                uuid::Uuid::new_v4().to_string()
            })
        }
        None => {}
    }

    let ip = client_ip::client_ip(
        header(req, "spin-client-addr"),
        header(req, "x-forwarded-for"),
        &config.trusted_proxies,
    )
    .and_then(|ip| client_ip::stored(ip, config.ip_storage))
    .filter(|_| refused.is_none());
    // Parsing compiles the parser's rules in every fresh instance: only for
    // user agents not parsed before (then cached by the write).
    let (mut device, mut new_user_agent) = match client.cached_device {
        Some(d) => (d, None),
        None => (parse_user_agent(&user_agent), Some(user_agent.as_str())),
    };
    // Faster than a person: this batch is a bot's, whatever its user agent
    // says (the user agent's own parse is cached later, not this verdict).
    let times: Vec<_> = accepted.iter().map(|e| e.occurred_at).collect();
    if !device.is_bot && bots::too_fast(&times) {
        device.is_bot = true;
        device.device_type = "bot".into();
        new_user_agent = None;
    }
    let write = BatchWrite {
        batch: &batch,
        accepted: &accepted,
        rejected: &rejected,
        device: &device,
        new_user_agent,
        ip: ip.as_deref(),
        rejected_cap_per_hour: config.rejected_cap_per_hour,
    };
    let saved = store::save(&db, &write, client.last_session, config.session_timeout)
        .map_err(not_stored)?;
    let mut duplicates: Vec<(usize, String)> = accepted
        .iter()
        .filter(|e| saved.duplicates.contains(&e.event_id))
        .map(|e| (e.index, e.event_id.clone()))
        .chain(repeated)
        .collect();
    duplicates.sort();
    let (status, mut body) = answer(accepted.len(), &duplicates, &rejected, saved.session_id);
    if let Some(refused) = refused {
        // A session id to send back would link the visitor's next batch.
        body["session_id"] = Value::Null;
        body["consent_refused"] = json!(refused.as_str());
    }
    Ok(respond::json(status, &body))
}

/// The status and body: 200 all stored (now or before), 207 some rejected,
/// 422 none stored. `accepted` counts the distinct events of the batch that
/// are stored for the client, new or already (`duplicates`: the events of
/// the batch stored before, or given twice, with their index).
pub fn answer(
    accepted: usize,
    duplicates: &[(usize, String)],
    rejected: &[Rejection],
    session_id: Option<String>,
) -> (u16, Value) {
    let status = match (accepted, rejected.is_empty()) {
        (_, true) => 200,
        (0, false) => 422,
        (_, false) => 207,
    };
    let rejected: Vec<Value> = rejected
        .iter()
        .map(|r| json!({ "index": r.index, "event_id": r.event_id, "field": r.field, "reason": r.reason }))
        .collect();
    let duplicates: Vec<Value> = duplicates
        .iter()
        .map(|(index, id)| json!({ "index": index, "event_id": id }))
        .collect();
    (
        status,
        json!({ "accepted": accepted, "duplicates": duplicates, "rejected": rejected, "session_id": session_id }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rejection(index: usize) -> Rejection {
        Rejection {
            index,
            event_id: None,
            field: format!("events[{index}].name"),
            reason: "name is required".into(),
            raw: json!({}),
        }
    }

    #[test]
    fn the_status_says_whether_all_some_or_none_were_stored() {
        assert_eq!(answer(3, &[], &[], Some("s".into())).0, 200);
        assert_eq!(answer(2, &[], &[rejection(1)], None).0, 207);
        let dup = [(1, "e1".to_string())];
        let (status, body) = answer(1, &dup, &[], None);
        assert_eq!((status, &body["duplicates"][0]["index"]), (200, &json!(1)));
        let (status, body) = answer(0, &[], &[rejection(0)], None);
        assert_eq!(status, 422);
        assert_eq!(body["rejected"][0]["field"], "events[0].name");
        assert!(body["rejected"][0].get("raw").is_none());
    }
}
