//! One delivery run, shared by the cron trigger and the backoffice button:
//! claim due rows (SKIP LOCKED + lease), dead-letter expired ones, send the
//! rest in batches per destination with bisection, record each batch's
//! outcomes as soon as it is known, and release what the run did not get to.
//! Bounded by a time budget and an event count; the rest waits for the next run.
//! The budget is shared between the destinations and one that times out is
//! not tried again in the run (`isolation`), so a slow platform cannot
//! starve the others.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{json, Value};
use spin_sdk::pg4::ParameterValue;

use crate::bisect::{self, EventOutcome, Sent};
use crate::isolation::{self, Isolation, Turn, MIN_REQUEST};
use crate::retry::{jitter, result_json, transition, within_deadline, DeliveryStatus, Trigger};
use crate::{oauth, Endpoints, Kind, Outcome, Queued};
use platform::db::{Db, DbError};
use platform::outbound;
use platform::vars::Vars;
use platform::ApiError;

/// Which rows a run takes.
#[derive(Debug, Clone, PartialEq)]
pub enum Scope {
    /// Pending or retrying rows whose next_retry_at has come (the cron).
    Due,
    /// Every pending or retrying row, due or not ("Retry All").
    All,
    /// These rows, due or not.
    Ids(Vec<i64>),
}

/// The run's limits and where the platforms are.
#[derive(Debug, Clone)]
pub struct Limits {
    pub endpoints: Endpoints,
    /// Per request.
    pub request_timeout: Duration,
    /// For the whole run.
    pub budget: Duration,
    pub max_events: usize,
}

/// What a run did: the seed's summary plus details.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Summary {
    pub processed: usize,
    pub resolved: usize,
    /// Failed and queued for another try.
    pub failed: usize,
    pub dead_lettered: usize,
    /// Claimed but not attempted (out of time, or their destination timed
    /// out): back in the queue.
    pub released: usize,
    pub requests: usize,
    /// Destinations whose request timed out: not tried again in the run.
    pub timed_out_destinations: Vec<String>,
}

impl Summary {
    pub fn to_json(&self) -> Value {
        json!({
            "success": true,
            "processed": self.processed,
            "resolved": self.resolved,
            "failed": self.failed,
            "dead_lettered": self.dead_lettered,
            "released": self.released,
            "requests": self.requests,
            "timed_out_destinations": self.timed_out_destinations,
        })
    }
}

/// A claimed row and its destination.
struct Claimed {
    destination_id: String,
    kind: Option<Kind>,
    config: Value,
    retry_count: i32,
    max_retries: i32,
    event: Queued,
}

/// A row of `CLAIM`.
#[derive(Deserialize)]
struct ClaimRow {
    id: i64,
    destination_id: String,
    destination: String,
    config: Value,
    event_id: String,
    event_name: String,
    event_time: f64,
    event_payload: Value,
    user_data: Value,
    retry_count: i32,
    max_retries: i32,
}

/// A row of `RECORD`: the status a delivery has now.
#[derive(Deserialize)]
pub struct Recorded {
    pub id: i64,
    pub status: DeliveryStatus,
}

const CLAIM: &str = "
SELECT id, destination_id::text AS destination_id, destination, config, event_id, event_name, event_time,
       event_payload, user_data, retry_count, max_retries
  FROM claim_deliveries($1::text::uuid, $2::int4, $3::int4, $4::bool,
                        string_to_array($5::text, ',')::bigint[], to_timestamp($6::float8))";
const RECORD: &str =
    "SELECT id, status FROM record_delivery_outcomes($1::text::uuid, $2::text, $3::jsonb)";
/// A webhook destination whose receiver answered 410 Gone.
const DISABLE: &str = "UPDATE client_destinations SET enabled = false WHERE id = $1::text::uuid";
const RELEASE: &str = "SELECT release_deliveries($1::text::uuid) AS released";

fn claim(
    conn: &Db,
    owner: &str,
    lease_secs: i32,
    max_rows: i32,
    scope: &Scope,
    started_epoch: f64,
) -> Result<Vec<Claimed>, DbError> {
    let ids = match scope {
        Scope::Ids(ids) => {
            ParameterValue::Str(ids.iter().map(i64::to_string).collect::<Vec<_>>().join(","))
        }
        _ => ParameterValue::DbNull,
    };
    let rows: Vec<ClaimRow> = conn.rows(
        CLAIM,
        &[
            ParameterValue::Str(owner.to_string()),
            ParameterValue::Int32(lease_secs),
            ParameterValue::Int32(max_rows),
            ParameterValue::Boolean(*scope == Scope::Due),
            ids,
            ParameterValue::Floating64(started_epoch),
        ],
    )?;
    Ok(rows
        .into_iter()
        .map(|r| Claimed {
            destination_id: r.destination_id,
            kind: Kind::parse(&r.destination),
            config: r.config,
            retry_count: r.retry_count,
            max_retries: r.max_retries,
            event: Queued {
                id: r.id,
                event_id: r.event_id,
                event_name: r.event_name,
                event_time: r.event_time as i64,
                event_payload: r.event_payload,
                user_data: r.user_data,
            },
        })
        .collect())
}

/// Records the outcomes of attempts on rows `owner` holds, in one statement;
/// returns each row's new status.
pub fn record(
    db: &Db,
    owner: &str,
    trigger: Trigger,
    results: Vec<Value>,
) -> Result<Vec<Recorded>, DbError> {
    db.rows(
        RECORD,
        &[
            ParameterValue::Str(owner.to_string()),
            ParameterValue::Str(trigger.as_str().to_string()),
            ParameterValue::Jsonb(serde_json::to_vec(&Value::Array(results)).unwrap_or_default()),
        ],
    )
}

/// Runs one delivery pass (the cron or the retry button). Each destination
/// gets its share of the budget and one that timed out is not tried again in
/// the run (`isolation`).
pub fn run(
    conn: &Db,
    trigger: Trigger,
    scope: &Scope,
    limits: &Limits,
) -> Result<Summary, DbError> {
    let started = Instant::now();
    let started_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64();
    let owner = uuid::Uuid::new_v4().to_string();
    let mut isolation = Isolation::new(limits.budget, limits.request_timeout);
    // The lease outlives the run by a margin, so a live run never loses its
    // rows, and a dead run's rows come back soon after its budget.
    let lease_secs = (limits.budget + limits.request_timeout).as_secs() as i32 + 60;
    let mut summary = Summary::default();
    let result = (|| {
        while summary.processed < limits.max_events && isolation.room(started.elapsed()) {
            // Large claims: rows of many destinations arrive interleaved by
            // due time, and each destination's share becomes one batch.
            let room = (limits.max_events - summary.processed).min(5000) as i32;
            let claimed = claim(conn, &owner, lease_secs, room, scope, started_epoch)?;
            if claimed.is_empty() {
                break;
            }
            let mut by_destination: BTreeMap<String, Vec<Claimed>> = BTreeMap::new();
            for c in claimed {
                by_destination
                    .entry(c.destination_id.clone())
                    .or_default()
                    .push(c);
            }
            // A destination that timed out earlier in the run is not tried
            // again: its rows stay leased to this run and are released at its end.
            by_destination.retain(|id, _| !isolation.skips(id));
            let mut waiting = by_destination.len();
            for (destination_id, rows) in &by_destination {
                let turn = isolation.turn(started.elapsed(), waiting);
                waiting -= 1;
                let timed_out = deliver_destination(
                    conn,
                    &owner,
                    trigger,
                    rows,
                    limits,
                    &turn,
                    started,
                    &mut summary,
                )?;
                if timed_out {
                    isolation.timed_out(destination_id);
                }
            }
        }
        Ok::<(), DbError>(())
    })();
    // Whatever happened, give back what was claimed and not recorded.
    let released: i32 = conn
        .value(RELEASE, &[ParameterValue::Str(owner.clone())])
        .unwrap_or(0);
    summary.released = released.max(0) as usize;
    summary.timed_out_destinations = isolation.timed_out_destinations();
    result.map(|_| summary)
}

/// One destination's turn: dead-letters what cannot be sent, sends the rest
/// in batches (bisecting rejected ones) within the turn's share, records the
/// outcomes. Answers whether a request to it timed out; then it sends
/// nothing more and its unsent rows get no outcome (released for the next run).
#[allow(clippy::too_many_arguments)]
fn deliver_destination(
    conn: &Db,
    owner: &str,
    trigger: Trigger,
    rows: &[Claimed],
    limits: &Limits,
    turn: &Turn,
    started: Instant,
    summary: &mut Summary,
) -> Result<bool, DbError> {
    let timed_out = Cell::new(false);
    let time_left = || !timed_out.get() && turn.timeout(started.elapsed()).is_some();
    let now = chrono::Utc::now().timestamp();
    let mut outcomes: Vec<EventOutcome> = Vec::new();
    let mut sendable: Vec<Queued> = Vec::new();
    let kind = rows[0].kind;
    for c in rows {
        match kind {
            None => outcomes.push(dead(c.event.id, "config", "unknown destination kind")),
            Some(k) if crate::expired(k, c.event.event_time, now) => {
                outcomes.push(dead(c.event.id, "expired", &expired_error(k)))
            }
            Some(k) => match crate::invalid(k, &c.event, now) {
                Some(why) => outcomes.push(dead(c.event.id, "invalid", &why)),
                None => sendable.push(c.event.clone()),
            },
        }
    }
    let destination_id = &rows[0].destination_id;
    let config = match (kind, turn.timeout(started.elapsed())) {
        (Some(k), Some(timeout)) if !sendable.is_empty() => prepare(
            conn,
            destination_id,
            k,
            &rows[0].config,
            &limits.endpoints,
            timeout,
        )
        .map_err(|outcome| (outcome, timeout)),
        _ => Ok(rows[0].config.clone()),
    };
    let config = match config {
        Ok(config) => config,
        Err((outcome, timeout)) => {
            let mut sent = Sent {
                outcome,
                http_status: None,
                latency_ms: 0,
            };
            note_timeout(&mut sent, &timed_out, timeout, turn);
            outcomes.extend(sendable.drain(..).map(|e| EventOutcome {
                id: e.id,
                sent: sent.clone(),
            }));
            rows[0].config.clone()
        }
    };
    if let Some(kind) = kind {
        for batch in sendable.chunks(crate::max_batch(kind)) {
            // A receiver that answered 410 gets nothing more: the
            // rest are kept as dead letters for a replay.
            if outcomes.iter().any(is_gone) {
                outcomes.extend(batch.iter().map(|e| {
                    dead(
                        e.id,
                        "gone",
                        "the receiver answered 410 Gone: destination disabled",
                    )
                }));
                continue;
            }
            let mut send = |events: &[Queued]| {
                summary.requests += 1;
                let timeout = turn
                    .timeout(started.elapsed())
                    .unwrap_or_else(|| limits.request_timeout.min(MIN_REQUEST));
                let mut sent = send_batch(kind, &config, &limits.endpoints, events, timeout);
                note_timeout(&mut sent, &timed_out, timeout, turn);
                sent
            };
            bisect::deliver(batch, &mut send, &time_left, &mut outcomes);
        }
    }
    if outcomes.is_empty() {
        return Ok(timed_out.get());
    }
    let counts: BTreeMap<i64, (i32, i32, i64)> = rows
        .iter()
        .map(|c| {
            (
                c.event.id,
                (c.retry_count, c.max_retries, c.event.event_time),
            )
        })
        .collect();
    let deadline = kind.and_then(crate::deadline);
    let now = chrono::Utc::now().timestamp();
    let results: Vec<Value> = outcomes
        .iter()
        .map(|o| {
            let (retries, max, time) = counts.get(&o.id).copied().unwrap_or((0, 0, 0));
            let t = transition(&o.sent.outcome, trigger, retries, max, jitter());
            result_json(o, &within_deadline(t, time, now, deadline))
        })
        .collect();
    // A token Google refused: the next attempt gets a new one.
    if outcomes.iter().any(|o| o.sent.http_status == Some(401))
        && kind.is_some_and(|k| uses_oauth(k, &config))
    {
        oauth::forget(conn, destination_id);
    }
    if outcomes.iter().any(is_gone) {
        conn.execute(DISABLE, &[ParameterValue::Str(destination_id.clone())])?;
    }
    for r in record(conn, owner, trigger, results)? {
        summary.processed += 1;
        match r.status {
            DeliveryStatus::Resolved => summary.resolved += 1,
            DeliveryStatus::DeadLetter => summary.dead_lettered += 1,
            _ => summary.failed += 1,
        }
    }
    Ok(timed_out.get())
}

/// A request that timed out: the destination's turn ends, and the error
/// says after how long and why it is not tried again in this run.
fn note_timeout(sent: &mut Sent, timed_out: &Cell<bool>, timeout: Duration, turn: &Turn) {
    if isolation::is_timeout(sent) {
        timed_out.set(true);
        if let Outcome::Retry { error, .. } = &mut sent.outcome {
            *error = isolation::timeout_error(error, timeout, turn.share);
        }
    }
}

fn expired_error(kind: Kind) -> String {
    let days = crate::deadline(kind).unwrap_or(0) / 86_400;
    format!(
        "event_time is more than {days} days old: {} would refuse it",
        kind.as_str()
    )
}

/// Whether sends to this destination need an OAuth access token refreshed
/// by `oauth` (every Data Manager destination; Ads API ones with a refresh
/// token).
pub(crate) fn uses_oauth(kind: Kind, config: &Value) -> bool {
    kind == Kind::GoogleDm || (kind == Kind::GoogleEc && oauth::uses_refresh(config))
}

/// The destination's config ready to send with (a fresh access token where
/// the destination uses OAuth), or what happens to its events instead.
pub fn prepare(
    db: &Db,
    destination_id: &str,
    kind: Kind,
    config: &Value,
    endpoints: &Endpoints,
    timeout: Duration,
) -> Result<Value, Outcome> {
    if uses_oauth(kind, config) {
        oauth::with_access_token(db, destination_id, kind, config, endpoints, timeout)
    } else {
        Ok(config.clone())
    }
}

fn is_gone(o: &EventOutcome) -> bool {
    matches!(&o.sent.outcome, Outcome::DeadLetter { reason, .. } if reason == "gone")
}

fn dead(id: i64, reason: &str, error: &str) -> EventOutcome {
    EventOutcome {
        id,
        sent: Sent {
            outcome: Outcome::DeadLetter {
                reason: reason.into(),
                error: error.into(),
            },
            http_status: None,
            latency_ms: 0,
        },
    }
}

/// Sends one request carrying `events` to a destination and classifies the answer.
pub fn send_batch(
    kind: Kind,
    config: &Value,
    endpoints: &Endpoints,
    events: &[Queued],
    timeout: Duration,
) -> Sent {
    let started = Instant::now();
    let (outcome, http_status) = match crate::request(
        kind,
        config,
        endpoints,
        events,
        chrono::Utc::now().timestamp(),
    ) {
        Err(e) => (
            Outcome::DeadLetter {
                reason: "config".into(),
                error: e.0,
            },
            None,
        ),
        Ok(request) => match outbound::send(&request, timeout) {
            Ok(response) => (crate::classify(kind, &response), Some(response.status)),
            Err(e) => (crate::classify_send_error(&e), None),
        },
    };
    Sent {
        outcome,
        http_status,
        latency_ms: started.elapsed().as_millis() as u64,
    }
}

impl Limits {
    /// From the Spin variables every delivering component declares.
    pub fn from_vars(vars: &Vars) -> Result<Limits, ApiError> {
        Ok(Limits {
            endpoints: Endpoints::from_vars(vars)?,
            request_timeout: vars.millis("delivery_timeout_ms")?,
            budget: vars.millis("retry_run_budget_ms")?,
            max_events: vars.number("retry_max_events")?,
        })
    }
}
