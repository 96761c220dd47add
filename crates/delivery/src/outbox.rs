//! The outbox as the backoffice sees it: `GET /admin/failed-events` (filters,
//! keyset pages, counts per status, credentials redacted) and what
//! `POST /admin/failed-events/retry` may retry (`retry_all`, named rows, or a
//! replay by filters; dead letters re-queued first, events past their
//! platform's deadline reported and left alone).

use serde::Deserialize;
use serde_json::{json, Value};
use spin_sdk::pg4::ParameterValue;

use platform::db::{text_or_null, Db};
use platform::query::Params;
use platform::ApiError;

use crate::retry::{DeliveryStatus, Trigger};
use crate::run::{self, Limits, Recorded, Scope};
use crate::Kind;

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

/// The list's filters and page.
#[derive(Debug, Clone, PartialEq)]
pub struct ListQuery {
    /// None: every status but resolved (the seed's `tracking_failed_events`).
    pub status: Option<DeliveryStatus>,
    pub destination: Option<Kind>,
    pub client_id: Option<String>,
    /// Rows with ids below this (`next_cursor` of the previous page).
    pub cursor: Option<i64>,
    pub limit: i64,
}

impl ListQuery {
    pub fn parse(raw: &str) -> Result<ListQuery, ApiError> {
        let p = Params::parse(
            raw,
            &["status", "destination", "client_id", "limit", "cursor"],
        )?;
        let statuses: Vec<&str> = DeliveryStatus::ALL.iter().map(|s| s.as_str()).collect();
        let kinds: Vec<&str> = Kind::ALL.iter().map(|k| k.as_str()).collect();
        Ok(ListQuery {
            status: p.read(
                "status",
                &format!("one of {}", statuses.join(", ")),
                DeliveryStatus::parse,
            )?,
            destination: p.read(
                "destination",
                &format!("one of {}", kinds.join(", ")),
                Kind::parse,
            )?,
            client_id: p.read("client_id", "a UUID", platform::ids::parse_uuid)?,
            cursor: p.read("cursor", "a next_cursor value from a previous page", |v| {
                v.parse::<i64>().ok().filter(|n| *n > 0)
            })?,
            limit: p
                .read("limit", "a whole number from 1 to 200", |v| {
                    v.parse::<i64>().ok().filter(|n| (1..=200).contains(n))
                })?
                .unwrap_or(50),
        })
    }
}

#[derive(Deserialize)]
struct Count {
    status: DeliveryStatus,
    n: i64,
}

/// One page of the list with the counts per status.
pub fn list(db: &Db, q: &ListQuery) -> Result<Value, ApiError> {
    let destination = q.destination.map(Kind::as_str);
    let mut items: Vec<Value> = db.rows(
        LIST,
        &[
            text_or_null(q.status.map(DeliveryStatus::as_str)),
            text_or_null(destination),
            text_or_null(q.client_id.as_deref()),
            q.cursor
                .map_or(ParameterValue::DbNull, ParameterValue::Int64),
            // One more than the page: whether there is a next page.
            ParameterValue::Int64(q.limit + 1),
        ],
    )?;
    for item in &mut items {
        item["destination_config"] = crate::redact(&item["destination_config"]);
    }
    let next_cursor = if items.len() as i64 > q.limit {
        items.truncate(q.limit as usize);
        items.last().map(|i| i["id"].to_string())
    } else {
        None
    };
    let mut counts = json!({ "pending": 0, "retrying": 0, "resolved": 0, "dead_letter": 0 });
    for c in db.rows::<Count>(
        COUNTS,
        &[
            text_or_null(destination),
            text_or_null(q.client_id.as_deref()),
        ],
    )? {
        counts[c.status.as_str()] = json!(c.n);
    }
    Ok(json!({ "items": items, "next_cursor": next_cursor, "counts": counts }))
}

/// The most rows one click may name.
pub const MAX_IDS: usize = 1000;

/// The most rows one replay re-queues.
pub const MAX_REPLAY: i64 = 1000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RetryBody {
    retry_all: Option<bool>,
    ids: Option<Vec<i64>>,
    replay: Option<ReplayBody>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplayBody {
    client_id: Option<String>,
    destination_id: Option<String>,
    status: Option<String>,
    from: Option<String>,
    to: Option<String>,
    limit: Option<i64>,
}

/// A replay's filters, checked: rows not resolved, of this client and
/// destination, in this status, with `from <= event_time < to` (Unix
/// seconds), the oldest first, at most `limit`.
#[derive(Debug, Clone, PartialEq)]
pub struct Replay {
    pub client_id: Option<String>,
    pub destination_id: Option<String>,
    pub status: Option<DeliveryStatus>,
    pub from: Option<i64>,
    pub to: Option<i64>,
    pub limit: i64,
}

/// What the retry button asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum RetryRequest {
    /// `{"retry_all": true}` or `{"ids": [...]}`.
    Run(Scope),
    /// `{"replay": {filters}}`.
    Replay(Replay),
}

fn instant(field: &str, v: Option<String>) -> Result<Option<i64>, ApiError> {
    v.map(|v| {
        chrono::DateTime::parse_from_rfc3339(&v)
            .map(|t| t.timestamp())
            .map_err(|_| ApiError::invalid(field, format!("{field} must be an RFC 3339 instant")))
    })
    .transpose()
}

fn replay(r: ReplayBody) -> Result<Replay, ApiError> {
    let uuid = |field: &str, v: Option<String>| {
        v.map(|v| {
            platform::ids::parse_uuid(&v)
                .ok_or_else(|| ApiError::invalid(field, format!("{field} must be a UUID")))
        })
        .transpose()
    };
    let status = r
        .status
        .map(|s| match DeliveryStatus::parse(&s) {
            Some(DeliveryStatus::Resolved) | None => Err(ApiError::invalid(
                "replay.status",
                "replay.status must be pending, retrying or dead_letter",
            )),
            Some(st) => Ok(st),
        })
        .transpose()?;
    let from = instant("replay.from", r.from)?;
    let to = instant("replay.to", r.to)?;
    if let (Some(f), Some(t)) = (from, to) {
        if f >= t {
            return Err(ApiError::invalid(
                "replay.to",
                "replay.to must be after replay.from",
            ));
        }
    }
    let limit = r.limit.unwrap_or(MAX_REPLAY);
    if !(1..=MAX_REPLAY).contains(&limit) {
        return Err(ApiError::invalid(
            "replay.limit",
            format!("replay.limit must be from 1 to {MAX_REPLAY}"),
        ));
    }
    Ok(Replay {
        client_id: uuid("replay.client_id", r.client_id)?,
        destination_id: uuid("replay.destination_id", r.destination_id)?,
        status,
        from,
        to,
        limit,
    })
}

/// What the retry button asks for: `{"retry_all": true}`, `{"ids": [...]}`
/// or `{"replay": {client_id?, destination_id?, status?, from?, to?, limit?}}`.
pub fn retry_scope(body: &[u8]) -> Result<RetryRequest, ApiError> {
    const SHAPE: &str = r#"the body must be {"retry_all": true}, {"ids": [<delivery id>, ...]} or {"replay": {filters}}"#;
    let body: RetryBody = platform::json::parse_body(body)?;
    match (body.retry_all, body.ids, body.replay) {
        (None, None, Some(r)) => Ok(RetryRequest::Replay(replay(r)?)),
        (Some(true), None, None) => Ok(RetryRequest::Run(Scope::All)),
        (None, Some(ids), None) => {
            if ids.is_empty() || ids.len() > MAX_IDS {
                return Err(ApiError::invalid(
                    "ids",
                    format!("ids must list 1 to {MAX_IDS} delivery ids"),
                ));
            }
            if let Some(bad) = ids.iter().find(|id| **id <= 0) {
                return Err(ApiError::invalid(
                    "ids",
                    format!("{bad} is not a delivery id"),
                ));
            }
            let mut ids = ids;
            ids.sort_unstable();
            ids.dedup();
            Ok(RetryRequest::Run(Scope::Ids(ids)))
        }
        (Some(false), None, None) => Err(ApiError::invalid(
            "retry_all",
            "retry_all must be true (or send ids)",
        )),
        _ => Err(ApiError::bad_request("invalid_body", "body", SHAPE)),
    }
}

fn join(ids: &[i64]) -> String {
    ids.iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Named rows must exist (404) and not be delivered already (400); dead
/// letters among them go back in the queue.
pub fn check_and_requeue(db: &Db, ids: &[i64]) -> Result<(), ApiError> {
    let list = ParameterValue::Str(ids.iter().map(i64::to_string).collect::<Vec<_>>().join(","));
    let found: Vec<Recorded> = db.rows(
        "SELECT id, status FROM conversion_deliveries
          WHERE id = ANY (string_to_array($1::text, ',')::bigint[])",
        std::slice::from_ref(&list),
    )?;
    let unknown: Vec<i64> = ids
        .iter()
        .copied()
        .filter(|id| !found.iter().any(|f| f.id == *id))
        .collect();
    if !unknown.is_empty() {
        return Err(ApiError::new(
            404,
            "unknown_ids",
            format!("no delivery with id {}", join(&unknown)),
        )
        .field("ids"));
    }
    let resolved: Vec<i64> = found
        .iter()
        .filter(|f| f.status == DeliveryStatus::Resolved)
        .map(|f| f.id)
        .collect();
    if !resolved.is_empty() {
        return Err(ApiError::bad_request(
            "already_resolved",
            "ids",
            format!("already delivered, nothing to retry: {}", join(&resolved)),
        ));
    }
    db.execute(
        "SELECT id FROM requeue_dead_letters(string_to_array($1::text, ',')::bigint[])",
        &[list],
    )?;
    Ok(())
}

#[derive(Deserialize)]
struct Matched {
    id: i64,
    destination: String,
    event_time: f64,
}

const REPLAY: &str = "
SELECT id, destination, extract(epoch FROM event_time)::float8 AS event_time
  FROM conversion_deliveries
 WHERE status <> 'resolved'
   AND ($1::text IS NULL OR client_id = $1::text::uuid)
   AND ($2::text IS NULL OR destination_id = $2::text::uuid)
   AND ($3::text IS NULL OR status = $3::text)
   AND ($4::float8 IS NULL OR event_time >= to_timestamp($4::float8))
   AND ($5::float8 IS NULL OR event_time < to_timestamp($5::float8))
 ORDER BY event_time, id
 LIMIT $6::int8";

/// A replay: the matching rows past their platform's deadline are counted
/// and left as they are; the others (dead letters re-queued) go through the
/// same run as the button.
fn replay_now(db: &Db, r: &Replay, limits: &Limits) -> Result<Value, ApiError> {
    let instant = |v: Option<i64>| {
        v.map_or(ParameterValue::DbNull, |t| {
            ParameterValue::Floating64(t as f64)
        })
    };
    let matched: Vec<Matched> = db.rows(
        REPLAY,
        &[
            text_or_null(r.client_id.as_deref()),
            text_or_null(r.destination_id.as_deref()),
            text_or_null(r.status.map(DeliveryStatus::as_str)),
            instant(r.from),
            instant(r.to),
            ParameterValue::Int64(r.limit),
        ],
    )?;
    let now = chrono::Utc::now().timestamp();
    let (expired, ids): (Vec<&Matched>, Vec<&Matched>) = matched.iter().partition(|m| {
        Kind::parse(&m.destination).is_some_and(|k| crate::expired(k, m.event_time as i64, now))
    });
    let ids: Vec<i64> = ids.iter().map(|m| m.id).collect();
    let mut body = if ids.is_empty() {
        run::Summary::default().to_json()
    } else {
        let list = ParameterValue::Str(join(&ids).replace(", ", ","));
        let requeued: Vec<Value> = db.rows(
            "SELECT id FROM requeue_dead_letters(string_to_array($1::text, ',')::bigint[])",
            std::slice::from_ref(&list),
        )?;
        let summary = run::run(db, Trigger::Manual, &Scope::Ids(ids.clone()), limits)?;
        let mut body = summary.to_json();
        body["requeued"] = json!(requeued.len());
        body["not_claimed"] = json!(ids
            .len()
            .saturating_sub(summary.processed + summary.released));
        body
    };
    body["matched"] = json!(matched.len());
    body["expired"] = json!(expired.len());
    if body.get("requeued").is_none() {
        body["requeued"] = json!(0);
    }
    Ok(body)
}

/// The retry button: re-queues named dead letters, then the same run as the
/// cron for what was asked. `not_claimed`: named rows another run holds
/// right now (it delivers them) or whose destination is disabled.
pub fn retry_now(db: &Db, request: &RetryRequest, limits: &Limits) -> Result<Value, ApiError> {
    let scope = match request {
        RetryRequest::Replay(r) => return replay_now(db, r, limits),
        RetryRequest::Run(scope) => scope,
    };
    if let Scope::Ids(ids) = scope {
        check_and_requeue(db, ids)?;
    }
    let summary = run::run(db, Trigger::Manual, scope, limits)?;
    let mut body = summary.to_json();
    if let Scope::Ids(ids) = scope {
        body["not_claimed"] = json!(ids
            .len()
            .saturating_sub(summary.processed + summary.released));
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_filters_are_checked_and_decoded() {
        let q = ListQuery::parse("status=dead%5Fletter&destination=meta_capi&limit=10").unwrap();
        assert_eq!(q.status, Some(DeliveryStatus::DeadLetter));
        assert_eq!((q.destination, q.limit), (Some(Kind::MetaCapi), 10));
        assert_eq!(ListQuery::parse("").unwrap().limit, 50);
        for (raw, field) in [
            ("status=done", "status"),
            ("destination=tiktok", "destination"),
            ("client_id=x", "client_id"),
            ("limit=500", "limit"),
            ("cursor=0", "cursor"),
            ("colour=red", "colour"),
        ] {
            let e = ListQuery::parse(raw).unwrap_err();
            assert_eq!((e.status, e.field.as_deref()), (400, Some(field)), "{raw}");
        }
    }

    #[test]
    fn the_retry_button_takes_all_or_named_rows() {
        assert_eq!(
            retry_scope(br#"{"retry_all": true}"#).unwrap(),
            RetryRequest::Run(Scope::All)
        );
        assert_eq!(
            retry_scope(br#"{"ids": [3, 1, 3]}"#).unwrap(),
            RetryRequest::Run(Scope::Ids(vec![1, 3]))
        );
        let field = |b: &[u8]| retry_scope(b).unwrap_err().field;
        assert_eq!(field(br#"{"ids": []}"#).as_deref(), Some("ids"));
        assert_eq!(field(br#"{"ids": [0]}"#).as_deref(), Some("ids"));
        assert_eq!(
            field(br#"{"retry_all": false}"#).as_deref(),
            Some("retry_all")
        );
        assert_eq!(
            retry_scope(br#"{"retry_all": true, "ids": [1]}"#)
                .unwrap_err()
                .code,
            "invalid_body"
        );
        assert_eq!(retry_scope(b"nope").unwrap_err().code, "malformed_json");
        assert_eq!(field(br#"{"ids": ["x"]}"#).as_deref(), Some("ids[0]"));
        assert_eq!(field(br#"{"retryAll": true}"#).as_deref(), Some("retryAll"));
    }

    #[test]
    fn a_replay_takes_checked_filters() {
        let r = retry_scope(
            br#"{"replay": {"client_id": "6F1C0B8E-1111-4222-8333-944445555666", "status": "dead_letter",
                            "from": "2026-11-01T00:00:00Z", "to": "2026-11-02T00:00:00+01:00", "limit": 10}}"#,
        )
        .unwrap();
        assert_eq!(
            r,
            RetryRequest::Replay(Replay {
                client_id: Some("6f1c0b8e-1111-4222-8333-944445555666".into()),
                destination_id: None,
                status: Some(DeliveryStatus::DeadLetter),
                from: Some(1_793_491_200),
                to: Some(1_793_574_000),
                limit: 10,
            })
        );
        let RetryRequest::Replay(all) = retry_scope(br#"{"replay": {}}"#).unwrap() else {
            panic!("a replay");
        };
        assert_eq!(all.limit, MAX_REPLAY);
        let field = |b: &[u8]| retry_scope(b).unwrap_err().field;
        for (body, f) in [
            (
                &br#"{"replay": {"status": "resolved"}}"#[..],
                "replay.status",
            ),
            (br#"{"replay": {"client_id": "x"}}"#, "replay.client_id"),
            (
                br#"{"replay": {"destination_id": "x"}}"#,
                "replay.destination_id",
            ),
            (br#"{"replay": {"from": "yesterday"}}"#, "replay.from"),
            (
                br#"{"replay": {"from": "2026-11-02T00:00:00Z", "to": "2026-11-01T00:00:00Z"}}"#,
                "replay.to",
            ),
            (br#"{"replay": {"limit": 0}}"#, "replay.limit"),
            (br#"{"replay": {"limit": 1001}}"#, "replay.limit"),
        ] {
            assert_eq!(
                field(body).as_deref(),
                Some(f),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        assert!(field(br#"{"replay": {"colour": "red"}}"#).is_some());
        assert_eq!(
            retry_scope(br#"{"replay": {}, "retry_all": true}"#)
                .unwrap_err()
                .code,
            "invalid_body"
        );
    }
}
