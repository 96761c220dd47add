//! The nightly retention (`data-retention` job): for every table that grows
//! and has no retention of its own, delete what is older than its period,
//! in batches of `privacy_retention_batch_size` rows, each its own short
//! statement (no long locks), at most `privacy_retention_max_batches` per
//! table per night (the rest waits for the next night). Raw events,
//! sessions and daily stats have theirs in the analytics job.

use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Map, Value};

use platform::db::Db;
use platform::vars::Vars;
use platform::ApiError;

/// What is deleted, in this order, and the variable holding its period in
/// days (empty: kept forever). Defaults and reasons: docs/PRIVACY.md.
pub const TABLES: [(&str, &str); 9] = [
    ("resolved_deliveries", "privacy_resolved_deliveries_days"),
    ("dead_letters", "privacy_dead_letters_days"),
    ("delivery_attempts", "privacy_delivery_attempts_days"),
    ("alert_notifications", "privacy_alert_notifications_days"),
    ("resolved_alerts", "privacy_resolved_alerts_days"),
    ("health_checks", "privacy_health_checks_days"),
    ("rejected_events", "privacy_rejected_events_days"),
    ("user_agents", "privacy_user_agents_days"),
    ("leads", "privacy_leads_days"),
];

pub const JOB_NAME: &str = "data-retention";

/// The periods (days; `None`: keep) and the batch bounds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retention {
    pub periods: Vec<(&'static str, Option<u32>)>,
    pub batch_size: u32,
    pub max_batches: u32,
}

impl Retention {
    pub fn from_vars(vars: &Vars) -> Result<Retention, ApiError> {
        let mut periods = Vec::new();
        for (what, var) in TABLES {
            let days: Option<u32> = vars.optional(var)?;
            if days == Some(0) {
                return Err(ApiError::misconfigured(format!(
                    "variable {var} must be at least 1 day (empty keeps the rows)"
                )));
            }
            periods.push((what, days));
        }
        let batch_size: u32 = vars.number("privacy_retention_batch_size")?;
        let max_batches: u32 = vars.number("privacy_retention_max_batches")?;
        if batch_size == 0 || max_batches == 0 {
            return Err(ApiError::misconfigured(
                "privacy_retention_batch_size and privacy_retention_max_batches must be at least 1",
            ));
        }
        Ok(Retention {
            periods,
            batch_size,
            max_batches,
        })
    }

    /// Each table with a period and the instant before which its rows go.
    pub fn cutoffs(&self, now: DateTime<Utc>) -> Vec<(&'static str, DateTime<Utc>)> {
        self.periods
            .iter()
            .filter_map(|(what, days)| Some((*what, now - Duration::days(i64::from((*days)?)))))
            .collect()
    }
}

/// One night's retention: rows deleted per table, and the tables that had
/// more than `max_batches` batches to delete (finished the next night).
pub fn run(db: &Db, now: DateTime<Utc>, r: &Retention) -> anyhow::Result<Value> {
    let mut deleted = Map::new();
    let mut unfinished = Vec::new();
    for (what, before) in r.cutoffs(now) {
        let mut total: i64 = 0;
        let mut batches = 0;
        loop {
            let n: i64 = db.value(
                "SELECT retention_delete_batch($1::text, to_timestamp($2::float8), $3::int4) AS n",
                &[
                    what.to_string().into(),
                    (before.timestamp_micros() as f64 / 1e6).into(),
                    (r.batch_size as i32).into(),
                ],
            )?;
            total += n;
            batches += 1;
            if n < i64::from(r.batch_size) {
                break;
            }
            if batches >= r.max_batches {
                unfinished.push(what);
                break;
            }
        }
        deleted.insert(what.to_string(), json!(total));
    }
    Ok(json!({ "deleted": deleted, "unfinished": unfinished }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(extra: &[(&str, &str)]) -> Result<Retention, ApiError> {
        let mut all: Vec<(&str, &str)> = vec![
            ("privacy_resolved_deliveries_days", "30"),
            ("privacy_dead_letters_days", "90"),
            ("privacy_delivery_attempts_days", "30"),
            ("privacy_rejected_events_days", "14"),
            ("privacy_retention_batch_size", "5000"),
            ("privacy_retention_max_batches", "100"),
        ];
        all.extend_from_slice(extra);
        Retention::from_vars(&Vars::map(&all))
    }

    #[test]
    fn an_empty_period_keeps_the_rows_and_zero_is_refused() {
        let r = vars(&[]).unwrap();
        let now = DateTime::parse_from_rfc3339("2026-12-06T03:30:00Z")
            .unwrap()
            .to_utc();
        let cutoffs = r.cutoffs(now);
        let names: Vec<_> = cutoffs.iter().map(|(w, _)| *w).collect();
        assert_eq!(
            names,
            [
                "resolved_deliveries",
                "dead_letters",
                "delivery_attempts",
                "rejected_events"
            ]
        );
        assert_eq!(cutoffs[3].1.to_rfc3339(), "2026-11-22T03:30:00+00:00");
        assert!(vars(&[("privacy_leads_days", "0")]).is_err());
        assert!(vars(&[("privacy_user_agents_days", "soon")]).is_err());
    }
}
