//! The nightly tracking-health detector (seed 000): a verdict per client on
//! whether its widget or form tracking silently broke. The classification is
//! set-based SQL (`detect_tracking_health` in migrations/V5); this crate holds
//! the thresholds, the outcome catalogue the backoffice shows, and the run
//! that the cron component and the admin endpoint share.

use std::collections::BTreeMap;
use std::time::Instant;

use anyhow::{Context, Result};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Deserialize;
use serde_json::{json, Value};
use spin_sdk::pg4::ParameterValue;

use platform::db::Db;
use platform::vars::Vars;
use platform::ApiError;

pub mod clients;

/// The job name in `job_runs`, and its lock: cron and manual runs share it.
pub const JOB_NAME: &str = "detect-tracking-health";

/// `widget_stopped` needs at least this many distinct widget visitors in the
/// prior window (days −30 to −7) before a silent last week counts as a
/// regression. Splitting the baseline from the recent window keeps the check
/// from contradicting itself; at the floor, P(zero in 7 d | 5 per 23 d) ≈ 22 %:
/// noisy, but it catches low-volume regressions worth a look.
pub const MIN_PRIOR_VISITORS: i64 = 5;

/// Below this many widget visitors in 30 days a widget is not meaningfully in
/// production: real production starts around 100 visitors; under 20 is dev,
/// pre-prod or staff loads (the next tier up in the observed distribution was
/// ~22 / 97 visitors).
pub const MIN_WIDGET_VISITORS: i64 = 20;

/// A widget in production with fewer chats than this in 30 days is unused; at
/// 10 chats and a 10 % chat-to-form rate, one form is expected, so zero forms
/// (P = e^-1 ≈ 37 %) is worth flagging while 1–2-chat noise is filtered out.
pub const MIN_CHATS: i64 = 10;

/// The thresholds in force: the constants above unless Spin variables override them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thresholds {
    pub min_prior_visitors: i64,
    pub min_widget_visitors: i64,
    pub min_chats: i64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            min_prior_visitors: MIN_PRIOR_VISITORS,
            min_widget_visitors: MIN_WIDGET_VISITORS,
            min_chats: MIN_CHATS,
        }
    }
}

impl Thresholds {
    /// Reads `tracking_health_min_prior_visitors`, `..._min_widget_visitors`
    /// and `..._min_chats`; an empty value keeps the default.
    pub fn from_vars(vars: &Vars) -> Result<Thresholds, ApiError> {
        let d = Thresholds::default();
        let read =
            |name: &str, default: i64| Ok::<_, ApiError>(vars.optional(name)?.unwrap_or(default));
        Ok(Thresholds {
            min_prior_visitors: read("tracking_health_min_prior_visitors", d.min_prior_visitors)?,
            min_widget_visitors: read(
                "tracking_health_min_widget_visitors",
                d.min_widget_visitors,
            )?,
            min_chats: read("tracking_health_min_chats", d.min_chats)?,
        })
    }
}

/// A leaf of the decision tree, as the backoffice shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    pub name: &'static str,
    pub color: &'static str,
    pub meaning: &'static str,
    pub what_to_do: &'static str,
}

/// The badges, in the order the tree tests them.
pub const OUTCOMES: [Outcome; 4] = [
    Outcome {
        name: "widget_stopped",
        color: "red",
        meaning: "The widget was firing (at least 5 distinct visitors in the prior 23-day window) and is now silent (0 in the last 7 days). A real regression.",
        what_to_do: "Check the site: did the client redeploy? Change the GTM container? Did the loader URL break?",
    },
    Outcome {
        name: "widget_not_in_prod",
        color: "amber",
        meaning: "The widget barely fires (fewer than 20 distinct visitors over 30 days) and there is no prior widget activity to compare to: never installed, blocked by a consent manager, or a broken loader.",
        what_to_do: "Check the client's site for the loader snippet, that the loader URL is reachable, and the cookie-consent gating.",
    },
    Outcome {
        name: "widget_not_used",
        color: "amber",
        meaning: "The widget loads at scale (at least 20 visitors in 30 days) but fewer than 10 chats started in 30 days: copy, a broken chat start, placement, or bot traffic.",
        what_to_do: "Open the site in a private window and check that the widget opens and answers; review the copy and trigger configuration.",
    },
    Outcome {
        name: "form_tracking_lost",
        color: "red",
        meaning: "Real chats happened (at least 10 in 30 days) but no client_form_submitted event was detected: the form-detection strategies broke on the client's site.",
        what_to_do: "Inspect the form-tracking pages configuration; check whether the GTM container changed, the form provider was swapped, or detection strategies were disabled.",
    },
];

/// The outcome named `name`, if it is a badge.
pub fn outcome(name: &str) -> Option<&'static Outcome> {
    OUTCOMES.iter().find(|o| o.name == name)
}

/// When the detector runs: now (the nightly run, a click), or as of an
/// earlier instant (a backfill or replay).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AsOf {
    Now,
    At(DateTime<Utc>),
}

impl AsOf {
    /// The `as_of` of `POST /admin/tracking-health/detect`'s body (empty, or
    /// `{"as_of": "<RFC 3339>"}`): now when absent; never in the future.
    pub fn from_body(body: &[u8], now: DateTime<Utc>) -> Result<AsOf, ApiError> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Body {
            as_of: Option<String>,
        }
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(AsOf::Now);
        }
        let Body { as_of } = platform::json::parse_body(body)?;
        let Some(s) = as_of else {
            return Ok(AsOf::Now);
        };
        let t = DateTime::parse_from_rfc3339(&s)
            .map_err(|_| {
                ApiError::invalid("as_of", format!("as_of {s:?} is not an RFC 3339 timestamp"))
            })?
            .with_timezone(&Utc);
        if t > now {
            return Err(ApiError::invalid("as_of", "as_of is in the future"));
        }
        Ok(AsOf::At(t))
    }
}

/// Refreshes `mv_client_stats_30d` (without blocking its readers), then
/// classifies every eligible client in one transaction (the verdict swap and
/// the day's history): from the refreshed stats for a run as of now, from the
/// events for an earlier instant. Returns the counts per outcome and the time
/// each step took: the detail recorded in `job_runs`.
pub fn run_detection(conn: &Db, when: AsOf, t: &Thresholds) -> Result<Value> {
    let (as_of, from_stats) = match when {
        AsOf::Now => (Utc::now(), true),
        AsOf::At(at) => (at, false),
    };
    let started = Instant::now();
    conn.execute(
        "REFRESH MATERIALIZED VIEW CONCURRENTLY mv_client_stats_30d",
        &[],
    )
    .context("refreshing mv_client_stats_30d")?;
    let refresh_ms = started.elapsed().as_secs_f64() * 1000.0;

    let classify = Instant::now();
    #[derive(Deserialize)]
    struct Count {
        outcome: String,
        clients: i64,
    }
    let rows: Vec<Count> = conn
        .rows(
            "SELECT outcome, clients FROM detect_tracking_health($1::text::timestamptz, $2::int8, $3::int8, $4::int8, $5::bool)",
            &[
                ParameterValue::Str(as_of.to_rfc3339_opts(SecondsFormat::Micros, true)),
                ParameterValue::Int64(t.min_prior_visitors),
                ParameterValue::Int64(t.min_widget_visitors),
                ParameterValue::Int64(t.min_chats),
                ParameterValue::Boolean(from_stats),
            ],
        )
        .context("classifying")?;
    let classify_ms = classify.elapsed().as_secs_f64() * 1000.0;

    let mut counts: BTreeMap<String, i64> = ["healthy"]
        .into_iter()
        .chain(OUTCOMES.iter().map(|o| o.name))
        .map(|n| (n.to_string(), 0))
        .collect();
    for row in rows {
        counts.insert(row.outcome, row.clients);
    }
    Ok(json!({
        "as_of": as_of.to_rfc3339_opts(SecondsFormat::Secs, true),
        "signals": if from_stats { "mv_client_stats_30d" } else { "session_events" },
        "counts": counts,
        "thresholds": {
            "min_prior_visitors": t.min_prior_visitors,
            "min_widget_visitors": t.min_widget_visitors,
            "min_chats": t.min_chats,
        },
        "refresh_ms": refresh_ms,
        "classify_ms": classify_ms,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn as_of_is_now_an_instant_or_a_named_error() {
        let now = Utc::now();
        assert_eq!(AsOf::from_body(b"", now).unwrap(), AsOf::Now);
        assert_eq!(
            AsOf::from_body(br#"{"as_of": null}"#, now).unwrap(),
            AsOf::Now
        );
        assert_eq!(
            AsOf::from_body(br#"{"as_of": "2026-01-02T03:04:05Z"}"#, now).unwrap(),
            AsOf::At("2026-01-02T03:04:05Z".parse().unwrap())
        );
        for body in [
            &br#"{"as_of": "yesterday"}"#[..],
            br#"{"as_of": 5}"#,
            br#"{"as_of": "2999-01-01T00:00:00Z"}"#,
        ] {
            assert_eq!(
                AsOf::from_body(body, now).unwrap_err().field.as_deref(),
                Some("as_of")
            );
        }
        assert_eq!(
            AsOf::from_body(b"{", now).unwrap_err().code,
            "malformed_json"
        );
    }

    #[test]
    fn empty_variables_keep_the_constants() {
        let vars = Vars::map(&[("tracking_health_min_chats", "12")]);
        let t = Thresholds::from_vars(&vars).unwrap();
        assert_eq!(
            (t.min_chats, t.min_widget_visitors),
            (12, MIN_WIDGET_VISITORS)
        );
        let bad = Vars::map(&[("tracking_health_min_chats", "a few")]);
        assert!(Thresholds::from_vars(&bad)
            .unwrap_err()
            .message
            .contains("tracking_health_min_chats"));
    }

    #[test]
    fn outcomes_follow_the_tree_order_and_colors() {
        let names: Vec<&str> = OUTCOMES.iter().map(|o| o.name).collect();
        assert_eq!(
            names,
            [
                "widget_stopped",
                "widget_not_in_prod",
                "widget_not_used",
                "form_tracking_lost"
            ]
        );
        assert_eq!(outcome("widget_stopped").unwrap().color, "red");
        assert_eq!(outcome("form_tracking_lost").unwrap().color, "red");
        assert_eq!(outcome("widget_not_used").unwrap().color, "amber");
        assert!(outcome("healthy").is_none());
    }
}
