//! The retry rule, in one place: what an attempt's outcome makes of its
//! outbox row. `record_delivery_outcomes` (SQL) writes what this decides.
//!
//! - 2xx → `resolved`.
//! - A permanent error → `dead_letter` with its reason (`rejected`,
//!   `config`, `expired`, ...).
//! - A retryable error → `retrying`, due again after `Retry-After` or the
//!   backoff, unless this was the row's last allowed retry: then
//!   `dead_letter` with reason `max_retries`.
//! - The first (inline) attempt is not a retry: `retry_count` counts the
//!   attempts after it.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::bisect::EventOutcome;
use crate::Outcome;

/// The states of an outbox row (`conversion_deliveries.status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    Pending,
    Retrying,
    Resolved,
    DeadLetter,
}

impl DeliveryStatus {
    pub const ALL: [DeliveryStatus; 4] = [
        DeliveryStatus::Pending,
        DeliveryStatus::Retrying,
        DeliveryStatus::Resolved,
        DeliveryStatus::DeadLetter,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Retrying => "retrying",
            DeliveryStatus::Resolved => "resolved",
            DeliveryStatus::DeadLetter => "dead_letter",
        }
    }

    pub fn parse(s: &str) -> Option<DeliveryStatus> {
        DeliveryStatus::ALL.into_iter().find(|d| d.as_str() == s)
    }
}

/// Who made an attempt (`delivery_attempts.trigger`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// save-lead's one attempt right after storing the lead.
    Inline,
    /// The retry cron.
    Cron,
    /// The backoffice's retry button.
    Manual,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Inline => "inline",
            Trigger::Cron => "cron",
            Trigger::Manual => "manual",
        }
    }
}

/// Backoff before retry number `retry_count + 1`: 5 min × 2^retry_count
/// (5, 10, 20, 40, 80 min), plus up to 10% jitter from `jitter` in [0, 1), so
/// rows that failed together do not all come back in the same second.
pub fn backoff(retry_count: u32, jitter: f64) -> Duration {
    let base = 5 * 60 * 2u64.saturating_pow(retry_count.min(16));
    let extra = (base as f64 * 0.1 * jitter.clamp(0.0, 1.0)) as u64;
    Duration::from_secs(base + extra)
}

/// What a row becomes after an attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    pub status: DeliveryStatus,
    pub retry_count: i32,
    /// When a retry is due, from now.
    pub retry_in: Option<Duration>,
    pub dead_letter_reason: Option<String>,
}

/// The row's next state after `outcome`, given its `retry_count` and
/// `max_retries` before the attempt; `jitter` in [0, 1).
pub fn transition(
    outcome: &Outcome,
    trigger: Trigger,
    retry_count: i32,
    max_retries: i32,
    jitter: f64,
) -> Transition {
    let retry_count = retry_count + i32::from(trigger != Trigger::Inline);
    let (status, retry_in, dead_letter_reason) = match outcome {
        Outcome::Resolved => (DeliveryStatus::Resolved, None, None),
        Outcome::DeadLetter { reason, .. } => {
            (DeliveryStatus::DeadLetter, None, Some(reason.clone()))
        }
        Outcome::Retry { .. } if retry_count >= max_retries => (
            DeliveryStatus::DeadLetter,
            None,
            Some("max_retries".to_string()),
        ),
        Outcome::Retry { after, .. } => (
            DeliveryStatus::Retrying,
            Some(after.unwrap_or_else(|| backoff(retry_count.max(0) as u32, jitter))),
            None,
        ),
    };
    Transition {
        status,
        retry_count,
        retry_in,
        dead_letter_reason,
    }
}

/// A retry that would come after the event's platform deadline (`deadline`
/// seconds after `event_time`) cannot succeed: the row is dead-lettered at
/// once as `expired` instead of failing a later batch.
pub fn within_deadline(
    t: Transition,
    event_time: i64,
    now: i64,
    deadline: Option<i64>,
) -> Transition {
    match (t.status, t.retry_in, deadline) {
        (DeliveryStatus::Retrying, Some(wait), Some(d))
            if now + wait.as_secs() as i64 > event_time + d =>
        {
            Transition {
                status: DeliveryStatus::DeadLetter,
                retry_in: None,
                dead_letter_reason: Some("expired".into()),
                ..t
            }
        }
        _ => t,
    }
}

/// A number in [0, 1) for backoff jitter.
pub fn jitter() -> f64 {
    (uuid::Uuid::new_v4().as_u128() % 1000) as f64 / 1000.0
}

/// The JSON `record_delivery_outcomes` takes for one attempt.
pub fn result_json(o: &EventOutcome, t: &Transition) -> Value {
    let error = match &o.sent.outcome {
        Outcome::Resolved => None,
        Outcome::Retry { error, .. } | Outcome::DeadLetter { error, .. } => Some(error.clone()),
    };
    json!({
        "id": o.id, "outcome": o.sent.outcome.name(), "http_status": o.sent.http_status,
        "error": error, "latency_ms": o.sent.latency_ms,
        "status": t.status.as_str(), "retry_count": t.retry_count,
        "retry_in_secs": t.retry_in.map(|d| d.as_secs_f64()),
        "dead_letter_reason": t.dead_letter_reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn retry(after: Option<u64>) -> Outcome {
        Outcome::Retry {
            error: "HTTP 503".into(),
            after: after.map(Duration::from_secs),
        }
    }

    #[test]
    fn a_failure_waits_the_backoff_or_retry_after() {
        let t = transition(&retry(None), Trigger::Cron, 0, 5, 0.0);
        assert_eq!(t.status, DeliveryStatus::Retrying);
        assert_eq!(
            (t.retry_count, t.retry_in),
            (1, Some(Duration::from_secs(600)))
        );
        let t = transition(&retry(Some(42)), Trigger::Manual, 2, 5, 0.0);
        assert_eq!(
            (t.retry_count, t.retry_in),
            (3, Some(Duration::from_secs(42)))
        );
    }

    #[test]
    fn the_inline_attempt_is_not_a_retry() {
        let t = transition(&retry(None), Trigger::Inline, 0, 5, 0.0);
        assert_eq!((t.status, t.retry_count), (DeliveryStatus::Retrying, 0));
        assert_eq!(t.retry_in, Some(Duration::from_secs(300)));
    }

    #[test]
    fn the_last_allowed_retry_dead_letters() {
        let t = transition(&retry(None), Trigger::Cron, 4, 5, 0.0);
        assert_eq!(t.status, DeliveryStatus::DeadLetter);
        assert_eq!(t.dead_letter_reason.as_deref(), Some("max_retries"));
        assert_eq!((t.retry_count, t.retry_in), (5, None));
        let dead = Outcome::DeadLetter {
            reason: "rejected".into(),
            error: "HTTP 400".into(),
        };
        let t = transition(&dead, Trigger::Cron, 0, 5, 0.0);
        assert_eq!(t.dead_letter_reason.as_deref(), Some("rejected"));
        assert_eq!(
            transition(&Outcome::Resolved, Trigger::Cron, 1, 5, 0.0).status,
            DeliveryStatus::Resolved
        );
    }

    #[test]
    fn a_retry_past_the_platforms_deadline_is_expired_now() {
        let now = 1_700_000_000;
        let week = 7 * 24 * 3600;
        // Due in 10 minutes; the event turns 7 days old in 5: expired now.
        let t = transition(&retry(None), Trigger::Cron, 0, 5, 0.0);
        let late = within_deadline(t.clone(), now - week + 300, now, Some(week));
        assert_eq!(late.status, DeliveryStatus::DeadLetter);
        assert_eq!(late.dead_letter_reason.as_deref(), Some("expired"));
        assert_eq!((late.retry_in, late.retry_count), (None, 1));
        // Due before the deadline, or no deadline: unchanged.
        assert_eq!(
            within_deadline(t.clone(), now - week + 900, now, Some(week)),
            t
        );
        assert_eq!(within_deadline(t.clone(), now - 10 * week, now, None), t);
        let done = transition(&Outcome::Resolved, Trigger::Cron, 0, 5, 0.0);
        assert_eq!(within_deadline(done.clone(), 0, now, Some(week)), done);
    }

    #[test]
    fn statuses_read_and_write_as_the_database_names_them() {
        for s in DeliveryStatus::ALL {
            assert_eq!(DeliveryStatus::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_value(s).unwrap(), json!(s.as_str()));
        }
        assert_eq!(DeliveryStatus::parse("done"), None);
    }
}
