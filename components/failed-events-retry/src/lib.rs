//! `POST /admin/failed-events/retry` (admin): the backoffice's retry button.
//! `{"retry_all": true}` delivers every pending or retrying row now, due or
//! not; `{"ids": [...]}` delivers those rows, re-queueing named dead letters
//! first. Same run as the cron (crates/delivery/src/run.rs): concurrent
//! clicks and the cron claim disjoint rows, so nothing is sent twice.

use serde::Deserialize;
use serde_json::json;
use spin_sdk::http::{Method, Request, Response};
use spin_sdk::http_component;
use spin_sdk::pg4::ParameterValue;

use delivery::run::{self, Limits, Scope};
use platform::db::{self, Db};
use platform::{auth, respond};

const MAX_IDS: usize = 1000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Body {
    retry_all: Option<bool>,
    ids: Option<Vec<i64>>,
}

fn bad_request(code: &str, message: &str, field: Option<&str>) -> Response {
    respond::json(400, &respond::error_body(code, message, field))
}

fn scope(body: &[u8]) -> Result<Scope, Response> {
    const SHAPE: &str = r#"the body must be {"retry_all": true} or {"ids": [<delivery id>, ...]}"#;
    let body: Body = serde_json::from_slice(body)
        .map_err(|e| bad_request("malformed_body", &format!("{SHAPE}: {e}"), None))?;
    match (body.retry_all, body.ids) {
        (Some(true), None) => Ok(Scope::All),
        (None, Some(ids)) => {
            if ids.is_empty() || ids.len() > MAX_IDS {
                return Err(bad_request(
                    "invalid_field",
                    &format!("ids must list 1 to {MAX_IDS} delivery ids"),
                    Some("ids"),
                ));
            }
            if let Some(bad) = ids.iter().find(|id| **id <= 0) {
                return Err(bad_request(
                    "invalid_field",
                    &format!("{bad} is not a delivery id"),
                    Some("ids"),
                ));
            }
            let mut ids = ids;
            ids.sort_unstable();
            ids.dedup();
            Ok(Scope::Ids(ids))
        }
        (Some(false), None) => Err(bad_request(
            "invalid_field",
            "retry_all must be true (or send ids)",
            Some("retry_all"),
        )),
        _ => Err(bad_request("malformed_body", SHAPE, None)),
    }
}

fn join(ids: &[i64]) -> String {
    ids.iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Unknown ids are a 404 and resolved ones a 400 (nothing to retry); dead
/// letters among them go back in the queue.
fn check_and_requeue(conn: &Db, ids: &[i64]) -> Result<(), Response> {
    let list = ParameterValue::Str(ids.iter().map(i64::to_string).collect::<Vec<_>>().join(","));
    let found: Vec<(i64, String)> = conn
        .rows::<delivery::run::Recorded>(
            "SELECT id, status FROM conversion_deliveries
              WHERE id = ANY (string_to_array($1::text, ',')::bigint[])",
            std::slice::from_ref(&list),
        )
        .map_err(|e| respond::db_failure(&e, ""))?
        .into_iter()
        .map(|r| (r.id, r.status))
        .collect();
    let unknown: Vec<i64> = ids
        .iter()
        .copied()
        .filter(|id| !found.iter().any(|(f, _)| f == id))
        .collect();
    if !unknown.is_empty() {
        return Err(respond::json(
            404,
            &respond::error_body(
                "unknown_ids",
                &format!("no delivery with id {}", join(&unknown)),
                Some("ids"),
            ),
        ));
    }
    let resolved: Vec<i64> = found
        .iter()
        .filter(|(_, s)| s == "resolved")
        .map(|(id, _)| *id)
        .collect();
    if !resolved.is_empty() {
        return Err(bad_request(
            "already_resolved",
            &format!("already delivered, nothing to retry: {}", join(&resolved)),
            Some("ids"),
        ));
    }
    conn.execute(
        "SELECT id FROM requeue_dead_letters(string_to_array($1::text, ',')::bigint[])",
        &[list],
    )
    .map_err(|e| respond::db_failure(&e, ""))?;
    Ok(())
}

#[http_component]
fn handle(req: Request) -> Response {
    if *req.method() != Method::Post {
        return respond::method_not_allowed(&["POST"]);
    }
    if let Err(refusal) = auth::admin_or_refusal(&req) {
        return refusal;
    }
    let scope = match scope(req.body()) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let limits = match Limits::from_variables() {
        Ok(l) => l,
        Err(e) => return respond::error(500, "misconfigured", &e),
    };
    let conn = match db::connect() {
        Ok(c) => c,
        Err(e) => return respond::db_failure(&e, ""),
    };
    if let Scope::Ids(ids) = &scope {
        if let Err(r) = check_and_requeue(&conn, ids) {
            return r;
        }
    }
    match run::run(&conn, "manual", &scope, &limits) {
        Ok(summary) => {
            let mut body = summary.to_json();
            if let Scope::Ids(ids) = &scope {
                // Named rows another run holds right now (it delivers them) or whose
                // destination is disabled.
                body["not_claimed"] = json!(ids
                    .len()
                    .saturating_sub(summary.processed + summary.released));
            }
            respond::json(200, &body)
        }
        Err(e) => respond::db_failure(&e, ""),
    }
}
