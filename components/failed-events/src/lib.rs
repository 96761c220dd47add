//! `GET /admin/failed-events` (admin): the backoffice's list of conversion
//! deliveries, newest first. Filters `status` (pending, retrying, resolved,
//! dead_letter; default: every status but resolved, the seed's
//! `tracking_failed_events`), `destination`, `client_id`; `limit` (1–200)
//! and `cursor` (from `next_cursor`) page through. Destination credentials
//! are redacted; user data is hashed already.

use serde_json::{json, Value};
use spin_sdk::http::{Method, Request, Response};
use spin_sdk::http_component;
use spin_sdk::pg4::ParameterValue;

use platform::{auth, db, ids, respond};

const STATUSES: [&str; 4] = ["pending", "retrying", "resolved", "dead_letter"];
const DESTINATIONS: [&str; 4] = ["meta_capi", "google_ec", "gtm_server", "webhook"];

const LIST: &str = "
SELECT d.id, d.client_id, d.destination, d.destination_id, c.name AS destination_name,
       c.config AS destination_config, d.event_id, d.event_name,
       rfc3339(d.event_time) AS event_time, d.status, d.retry_count, d.max_retries,
       rfc3339(d.next_retry_at) AS next_retry_at, d.last_error, d.last_http_status,
       d.dead_letter_reason, rfc3339(d.first_attempt_at) AS first_attempt_at,
       rfc3339(d.last_attempt_at) AS last_attempt_at, rfc3339(d.resolved_at) AS resolved_at,
       rfc3339(d.created_at) AS created_at, d.event_payload, d.user_data, d.lead_id
  FROM conversion_deliveries d
  JOIN client_destinations c ON c.id = d.destination_id
 WHERE (($1::text IS NULL AND d.status <> 'resolved') OR d.status = $1::text)
   AND ($2::text IS NULL OR d.destination = $2::text)
   AND ($3::text IS NULL OR d.client_id = $3::text::uuid)
   AND ($4::int8 IS NULL OR d.id < $4::int8)
 ORDER BY d.id DESC
 LIMIT $5::int8";

/// Counts per status under the same destination and client filters.
const COUNTS: &str = "
SELECT status, count(*) AS n FROM conversion_deliveries
 WHERE ($1::text IS NULL OR destination = $1::text)
   AND ($2::text IS NULL OR client_id = $2::text::uuid)
 GROUP BY status";

struct Query {
    status: Option<String>,
    destination: Option<String>,
    client_id: Option<String>,
    cursor: Option<i64>,
    limit: i64,
}

fn bad(field: &str, message: String) -> Response {
    respond::json(
        400,
        &respond::error_body("invalid_parameter", &message, Some(field)),
    )
}

fn decode_query(raw: &str) -> Result<Query, Response> {
    let mut q = Query {
        status: None,
        destination: None,
        client_id: None,
        cursor: None,
        limit: 50,
    };
    for pair in raw.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if v.is_empty() {
            continue;
        }
        match k {
            "status" if STATUSES.contains(&v) => q.status = Some(v.into()),
            "status" => {
                return Err(bad(
                    "status",
                    format!("status must be one of {}", STATUSES.join(", ")),
                ))
            }
            "destination" if DESTINATIONS.contains(&v) => q.destination = Some(v.into()),
            "destination" => {
                return Err(bad(
                    "destination",
                    format!("destination must be one of {}", DESTINATIONS.join(", ")),
                ))
            }
            "client_id" if ids::is_uuid(v) => q.client_id = Some(v.to_ascii_lowercase()),
            "client_id" => return Err(bad("client_id", "client_id must be a UUID".into())),
            "limit" => match v.parse::<i64>() {
                Ok(n) if (1..=200).contains(&n) => q.limit = n,
                _ => {
                    return Err(bad(
                        "limit",
                        "limit must be a whole number from 1 to 200".into(),
                    ))
                }
            },
            "cursor" => match v.parse::<i64>() {
                Ok(n) if n > 0 => q.cursor = Some(n),
                _ => {
                    return Err(bad(
                        "cursor",
                        "cursor must be a next_cursor value from a previous page".into(),
                    ))
                }
            },
            other => return Err(bad(other, format!("unknown parameter {other:?}"))),
        }
    }
    Ok(q)
}

fn opt(v: &Option<String>) -> ParameterValue {
    v.clone()
        .map(ParameterValue::Str)
        .unwrap_or(ParameterValue::DbNull)
}

/// A row of `LIST` as the list shows it: the destination's credentials redacted.
fn item(mut row: Value) -> Value {
    row["destination_config"] = delivery::redact(&row["destination_config"]);
    row
}

#[derive(serde::Deserialize)]
struct Count {
    status: String,
    n: i64,
}

#[http_component]
fn handle(req: Request) -> Response {
    if *req.method() != Method::Get {
        return respond::method_not_allowed(&["GET"]);
    }
    if let Err(refusal) = auth::admin_or_refusal(&req) {
        return refusal;
    }
    let q = match decode_query(req.query()) {
        Ok(q) => q,
        Err(r) => return r,
    };
    let conn = match db::connect() {
        Ok(c) => c,
        Err(e) => return respond::db_failure(&e, ""),
    };
    let listed = conn.rows::<Value>(
        LIST,
        &[
            opt(&q.status),
            opt(&q.destination),
            opt(&q.client_id),
            q.cursor
                .map(ParameterValue::Int64)
                .unwrap_or(ParameterValue::DbNull),
            ParameterValue::Int64(q.limit + 1),
        ],
    );
    let counted = conn.rows::<Count>(COUNTS, &[opt(&q.destination), opt(&q.client_id)]);
    let (listed, counted) = match (listed, counted) {
        (Ok(l), Ok(c)) => (l, c),
        (Err(e), _) | (_, Err(e)) => return respond::db_failure(&e, ""),
    };
    let mut items: Vec<Value> = listed.into_iter().map(item).collect();
    let next_cursor = if items.len() as i64 > q.limit {
        items.truncate(q.limit as usize);
        items.last().map(|i| i["id"].to_string())
    } else {
        None
    };
    let mut counts = json!({ "pending": 0, "retrying": 0, "resolved": 0, "dead_letter": 0 });
    for c in counted {
        counts[c.status] = json!(c.n);
    }
    respond::json(
        200,
        &json!({ "items": items, "next_cursor": next_cursor, "counts": counts }),
    )
}
