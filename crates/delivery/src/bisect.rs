//! Isolating bad events. Meta rejects a whole request for one invalid event;
//! rather than dead-letter the 999 good ones with it, a rejected batch is
//! split in halves and each half sent again, until the events the platform
//! refuses are alone. k bad events in n cost about 2·k·log2(n) extra requests.

use crate::{Outcome, Queued};

/// The result of sending one request.
#[derive(Debug, Clone, PartialEq)]
pub struct Sent {
    pub outcome: Outcome,
    pub http_status: Option<u16>,
    pub latency_ms: u64,
}

/// The outcome for one event.
#[derive(Debug, Clone, PartialEq)]
pub struct EventOutcome {
    pub id: i64,
    pub sent: Sent,
}

/// Sends `events` with `send` (one request per call). A batch rejected as a
/// whole (`DeadLetter` with reason `rejected`) of more than one event is split
/// and retried; every other outcome applies to the whole batch. Stops sending
/// when `time_left()` says so: events not sent get no outcome (the caller
/// releases them for the next run).
pub fn deliver<F, T>(events: &[Queued], send: &mut F, time_left: &T, out: &mut Vec<EventOutcome>)
where
    F: FnMut(&[Queued]) -> Sent,
    T: Fn() -> bool,
{
    if events.is_empty() || !time_left() {
        return;
    }
    let sent = send(events);
    let rejected =
        matches!(&sent.outcome, Outcome::DeadLetter { reason, .. } if reason == "rejected");
    if rejected && events.len() > 1 {
        let (left, right) = events.split_at(events.len() / 2);
        deliver(left, send, time_left, out);
        deliver(right, send, time_left, out);
        return;
    }
    out.extend(events.iter().map(|e| EventOutcome {
        id: e.id,
        sent: sent.clone(),
    }));
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn events(n: i64) -> Vec<Queued> {
        (1..=n)
            .map(|id| Queued {
                id,
                event_id: format!("e{id}"),
                event_name: "Lead".into(),
                event_time: 0,
                event_payload: json!({}),
                user_data: json!({}),
            })
            .collect()
    }

    fn platform(bad: &'static [i64]) -> impl FnMut(&[Queued]) -> Sent {
        move |batch: &[Queued]| Sent {
            outcome: if batch.iter().any(|e| bad.contains(&e.id)) {
                Outcome::DeadLetter {
                    reason: "rejected".into(),
                    error: "HTTP 400".into(),
                }
            } else {
                Outcome::Resolved
            },
            http_status: Some(200),
            latency_ms: 1,
        }
    }

    #[test]
    fn one_bad_event_in_a_hundred_is_isolated_in_few_requests() {
        let mut requests = 0;
        let mut inner = platform(&[37]);
        let mut send = |b: &[Queued]| {
            requests += 1;
            inner(b)
        };
        let mut out = Vec::new();
        deliver(&events(100), &mut send, &|| true, &mut out);
        assert_eq!(out.len(), 100);
        let dead: Vec<i64> = out
            .iter()
            .filter(|o| o.sent.outcome.name() == "dead_letter")
            .map(|o| o.id)
            .collect();
        assert_eq!(dead, vec![37]);
        assert!(requests <= 15, "{requests} requests");
    }

    #[test]
    fn a_clean_batch_is_one_request_and_retries_are_not_split() {
        let mut requests = 0;
        let mut send = |_: &[Queued]| {
            requests += 1;
            Sent {
                outcome: Outcome::Retry {
                    error: "503".into(),
                    after: None,
                },
                http_status: Some(503),
                latency_ms: 1,
            }
        };
        let mut out = Vec::new();
        deliver(&events(50), &mut send, &|| true, &mut out);
        assert_eq!((requests, out.len()), (1, 50));
        assert!(out.iter().all(|o| o.sent.outcome.name() == "retry"));
    }

    #[test]
    fn config_errors_are_not_split_and_time_running_out_stops_sending() {
        let mut requests = 0;
        let mut send = |_: &[Queued]| {
            requests += 1;
            Sent {
                outcome: Outcome::DeadLetter {
                    reason: "config".into(),
                    error: "no pixel".into(),
                },
                http_status: None,
                latency_ms: 0,
            }
        };
        let mut out = Vec::new();
        deliver(&events(8), &mut send, &|| true, &mut out);
        assert_eq!((requests, out.len()), (1, 8));

        let budget = std::cell::Cell::new(3);
        let time_left = || {
            budget.set(budget.get() - 1);
            budget.get() >= 0
        };
        let mut inner = platform(&[1, 8]);
        let mut out = Vec::new();
        deliver(&events(8), &mut inner, &time_left, &mut out);
        assert!(out.len() < 8, "stopped early: {} outcomes", out.len());
    }
}
