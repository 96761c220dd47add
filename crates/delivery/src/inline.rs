//! save-lead's one inline attempt per queued delivery, right after the lead
//! is stored: each sent once with a short deadline, the outcomes recorded in
//! one statement. The rows are leased to this sender; if recording fails they
//! stay queued and the retry run takes them when the lease ends.

use std::time::Duration;

use serde_json::{json, Value};

use crate::bisect::EventOutcome;
use crate::retry::{jitter, result_json, transition, Trigger};
use crate::run::{self, send_batch};
use crate::{Endpoints, Kind, Queued};
use platform::db::Db;

/// One queued delivery and its destination.
pub struct Attempt<'a> {
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
        let sent = send_batch(a.kind, a.config, endpoints, &[a.event], timeout);
        summary.push((id, a.kind.as_str(), sent.outcome.name()));
        // A new row: no retries yet, and the inline attempt is not one.
        let t = transition(&sent.outcome, Trigger::Inline, 0, i32::MAX, jitter());
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
