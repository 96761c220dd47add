//! save-lead's one inline attempt per queued delivery, right after the lead
//! is stored: each sent once with a short deadline, the outcomes recorded in
//! one statement. The rows are leased to this sender; if recording fails they
//! stay queued and the retry run takes them when the lease ends.

use std::time::Duration;

use serde_json::{json, Value};

use crate::bisect::{EventOutcome, Sent};
use crate::retry::{jitter, result_json, transition, within_deadline, Trigger};
use crate::run::{self, send_batch};
use crate::{Endpoints, Kind, Outcome, Queued};
use platform::db::Db;

/// One queued delivery and its destination.
pub struct Attempt<'a> {
    pub destination_id: &'a str,
    pub kind: Kind,
    pub config: &'a Value,
    pub event: Queued,
}

/// Tries each delivery once; answers, per delivery, its new status and what
/// the attempt came to: `{delivery_id, destination, status, attempt}`.
pub fn attempt(
    db: &Db,
    lease_owner: &str,
    attempts: Vec<Attempt>,
    endpoints: &Endpoints,
    timeout: Duration,
) -> Vec<Value> {
    let mut results = Vec::new();
    let mut summary = Vec::new();
    for a in attempts {
        let id = a.event.id;
        let event_time = a.event.event_time;
        let now = chrono::Utc::now().timestamp();
        let sent = if let Some(why) = crate::invalid(a.kind, &a.event, now) {
            Sent {
                outcome: Outcome::DeadLetter {
                    reason: "invalid".into(),
                    error: why,
                },
                http_status: None,
                latency_ms: 0,
            }
        } else {
            match run::prepare(db, a.destination_id, a.kind, a.config, endpoints, timeout) {
                Ok(config) => {
                    let sent = send_batch(a.kind, &config, endpoints, &[a.event], timeout);
                    if sent.http_status == Some(401) && run::uses_oauth(a.kind, &config) {
                        crate::oauth::forget(db, a.destination_id);
                    }
                    sent
                }
                Err(outcome) => Sent {
                    outcome,
                    http_status: None,
                    latency_ms: 0,
                },
            }
        };
        summary.push((id, a.kind.as_str(), sent.outcome.name()));
        // A new row: no retries yet, and the inline attempt is not one.
        let t = transition(&sent.outcome, Trigger::Inline, 0, i32::MAX, jitter());
        let t = within_deadline(t, event_time, now, crate::deadline(a.kind));
        results.push(result_json(&EventOutcome { id, sent }, &t));
    }
    let recorded = run::record(db, lease_owner, Trigger::Inline, results).unwrap_or_else(|e| {
        eprintln!("save-lead: recording delivery outcomes failed: {e}");
        Vec::new()
    });
    summary
        .into_iter()
        .map(|(id, kind, outcome)| {
            let status = recorded
                .iter()
                .find(|r| r.id == id)
                .map_or("pending", |r| r.status.as_str());
            json!({ "delivery_id": id, "destination": kind, "status": status, "attempt": outcome })
        })
        .collect()
}
