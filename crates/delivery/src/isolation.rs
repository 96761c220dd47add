//! Isolation in a delivery run: one slow or failing destination must not
//! starve the others.
//!
//! - A run serves the destinations of each claim one after the other. When a
//!   destination's turn comes it gets an equal share of the run's time left:
//!   what is left of the budget divided by the destinations still waiting
//!   in this claim (itself included), at least one short request
//!   ([`MIN_REQUEST`], or the request timeout if shorter). Time a fast
//!   destination does not use goes to those after it.
//! - Each request's deadline is the request timeout cut to what is left of
//!   the share; no request starts with less than the minimum left.
//! - A destination whose request timed out is not tried again in this run
//!   (nor in its later claims): the rows of that request are recorded as a
//!   retry with the reason ([`timeout_error`]); its other rows are released
//!   untouched, still due, for the next run.
//!
//! Times are durations since the run started, so the rule is tested
//! without a clock.

use std::collections::BTreeSet;
use std::time::Duration;

use platform::outbound::SendError;

use crate::bisect::Sent;
use crate::Outcome;

/// The shortest deadline a request is started with: a platform that cannot
/// answer within it when the run is that crowded waits for the next run.
pub const MIN_REQUEST: Duration = Duration::from_secs(1);

/// The run's time rule and the destinations that timed out in it.
#[derive(Debug, Clone)]
pub struct Isolation {
    budget: Duration,
    request_timeout: Duration,
    timed_out: BTreeSet<String>,
}

/// One destination's turn in a run.
#[derive(Debug, Clone, PartialEq)]
pub struct Turn {
    /// The time this destination may use.
    pub share: Duration,
    /// When its share ends (since the run started).
    ends: Duration,
    request_timeout: Duration,
    min_request: Duration,
}

impl Isolation {
    pub fn new(budget: Duration, request_timeout: Duration) -> Isolation {
        Isolation {
            budget,
            request_timeout,
            timed_out: BTreeSet::new(),
        }
    }

    fn min_request(&self) -> Duration {
        self.request_timeout.min(MIN_REQUEST)
    }

    /// Whether the run, `elapsed` after it started, has room for a request.
    pub fn room(&self, elapsed: Duration) -> bool {
        self.budget.saturating_sub(elapsed) >= self.min_request()
    }

    /// The turn of a destination starting `elapsed` after the run started,
    /// with `waiting` destinations of the claim (itself included) still to
    /// be served.
    pub fn turn(&self, elapsed: Duration, waiting: usize) -> Turn {
        let left = self.budget.saturating_sub(elapsed);
        let equal = left / u32::try_from(waiting.max(1)).unwrap_or(u32::MAX);
        let share = equal.max(self.min_request().min(left));
        Turn {
            share,
            ends: elapsed + share,
            request_timeout: self.request_timeout,
            min_request: self.min_request(),
        }
    }

    /// Whether this destination timed out earlier in the run.
    pub fn skips(&self, destination_id: &str) -> bool {
        self.timed_out.contains(destination_id)
    }

    /// Marks a destination as timed out: not tried again in this run.
    pub fn timed_out(&mut self, destination_id: &str) {
        self.timed_out.insert(destination_id.to_string());
    }

    /// The destinations that timed out in this run.
    pub fn timed_out_destinations(&self) -> Vec<String> {
        self.timed_out.iter().cloned().collect()
    }
}

impl Turn {
    /// The deadline of a request started `elapsed` after the run started:
    /// the request timeout cut to what is left of the share; None when less
    /// than the minimum is left (the destination's turn is over).
    pub fn timeout(&self, elapsed: Duration) -> Option<Duration> {
        let left = self.ends.saturating_sub(elapsed);
        (left >= self.min_request).then(|| left.min(self.request_timeout))
    }
}

/// Whether a request got no answer before its deadline (the destination's
/// own request or its OAuth token endpoint's).
pub fn is_timeout(sent: &Sent) -> bool {
    let timed_out = SendError::Timeout.to_string();
    sent.http_status.is_none()
        && matches!(&sent.outcome, Outcome::Retry { error, .. }
            if *error == timed_out || error.ends_with(&format!(": {timed_out}")))
}

/// The error recorded for the rows of a request that timed out.
pub fn timeout_error(error: &str, timeout: Duration, share: Duration) -> String {
    format!(
        "{error} after {} ms (the destination's share of this run: {} ms); not tried again in this run",
        timeout.as_millis(),
        share.as_millis()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(secs: f64) -> Duration {
        Duration::from_secs_f64(secs)
    }

    fn sent(outcome: Outcome, http_status: Option<u16>) -> Sent {
        Sent {
            outcome,
            http_status,
            latency_ms: 0,
        }
    }

    #[test]
    fn each_destination_gets_an_equal_share_of_what_is_left() {
        let run = Isolation::new(s(25.0), s(5.0));
        let first = run.turn(s(0.0), 5);
        assert_eq!(first.share, s(5.0));
        assert_eq!(first.timeout(s(0.0)), Some(s(5.0)));
        // A fast destination used 0.5 s: the next four share the rest.
        let second = run.turn(s(0.5), 4);
        assert_eq!(second.share, s(24.5 / 4.0));
        // Requests never run past the share.
        assert_eq!(second.timeout(s(0.5)), Some(s(5.0)));
        assert_eq!(second.timeout(s(4.0)), Some(s(0.5 + 24.5 / 4.0 - 4.0)));
        assert_eq!(second.timeout(s(0.5 + 24.5 / 4.0 - 0.9)), None);
        // The last one gets everything left.
        let last = run.turn(s(10.0), 1);
        assert_eq!((last.share, last.timeout(s(10.0))), (s(15.0), Some(s(5.0))));
    }

    #[test]
    fn a_crowded_run_still_gives_each_destination_one_short_request() {
        let run = Isolation::new(s(25.0), s(5.0));
        let turn = run.turn(s(0.0), 100);
        assert_eq!(turn.share, MIN_REQUEST);
        assert_eq!(turn.timeout(s(0.0)), Some(MIN_REQUEST));
        assert_eq!(turn.timeout(s(0.1)), None);
        // Near the end of the run: what is left, and no request under the minimum.
        assert_eq!(run.turn(s(24.5), 3).share, s(0.5));
        assert_eq!(run.turn(s(24.5), 3).timeout(s(24.5)), None);
        assert!(run.room(s(24.0)) && !run.room(s(24.1)));
        // A request timeout under the minimum is the minimum.
        let quick = Isolation::new(s(2.0), s(0.3));
        assert_eq!(quick.turn(s(0.0), 100).timeout(s(0.0)), Some(s(0.3)));
        assert!(quick.room(s(1.6)) && !quick.room(s(1.8)));
    }

    #[test]
    fn a_slow_destination_costs_at_most_its_share() {
        // Three destinations, the slow one first: whatever it does, the two
        // after it keep two thirds of the run.
        let run = Isolation::new(s(6.0), s(5.0));
        let slow = run.turn(s(0.0), 3);
        assert_eq!(slow.timeout(s(0.0)), Some(s(2.0)));
        let next = run.turn(s(2.0), 2);
        assert_eq!(next.share, s(2.0));
        // The slow one last: the full request timeout, still inside the budget.
        let slow_last = run.turn(s(0.2), 1);
        assert_eq!(slow_last.timeout(s(0.2)), Some(s(5.0)));
    }

    #[test]
    fn a_destination_that_timed_out_is_skipped_for_the_rest_of_the_run() {
        let mut run = Isolation::new(s(25.0), s(5.0));
        assert!(!run.skips("d1"));
        run.timed_out("d1");
        run.timed_out("d1");
        assert!(run.skips("d1") && !run.skips("d2"));
        assert_eq!(run.timed_out_destinations(), vec!["d1".to_string()]);
    }

    #[test]
    fn timeouts_are_told_apart_from_other_failures() {
        let retry = |e: &str| Outcome::Retry {
            error: e.into(),
            after: None,
        };
        assert!(is_timeout(&sent(
            crate::classify_send_error(&SendError::Timeout),
            None
        )));
        assert!(is_timeout(&sent(retry("token endpoint: timed out"), None)));
        assert!(!is_timeout(&sent(retry("HTTP 504: timed out"), Some(504))));
        assert!(!is_timeout(&sent(
            crate::classify_send_error(&SendError::Failed("refused".into())),
            None
        )));
        assert!(!is_timeout(&sent(Outcome::Resolved, Some(200))));
        let e = timeout_error("timed out", s(2.0), s(2.5));
        assert_eq!(
            e,
            "timed out after 2000 ms (the destination's share of this run: 2500 ms); not tried again in this run"
        );
    }
}
