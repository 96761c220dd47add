//! `GET /admin/tracking-health/summary`: the health page at a glance —
//! overall green / yellow / red and the rule that decided it, the last check,
//! each metric of that check with value, threshold and colour, the open
//! alerts, per destination over 24 h attempts, success rate and p50/p90/p99
//! latency, and ingest volume over 24 h against the same hours a week before.

use serde::Deserialize;
use serde_json::{json, Value};

use platform::db::{Db, DbError};

use crate::{status, Thresholds};

/// A check older than this means the monitor itself is not running.
pub const STALE_AFTER_MINUTES: f64 = 45.0;

const LAST_CHECK: &str = "
SELECT rfc3339(checked_at) AS checked_at,
       extract(epoch FROM now() - checked_at)::float8 / 60 AS age_minutes, results
  FROM tracking_health_checks ORDER BY checked_at DESC LIMIT 1";

const OPEN_ALERTS: &str = "
SELECT id, alert_type, scope, severity, message, metric_value, threshold,
       rfc3339(created_at) AS created_at, rfc3339(last_seen_at) AS last_seen_at
  FROM tracking_health_alerts WHERE resolved_at IS NULL
 ORDER BY severity = 'critical' DESC, created_at";

/// migrations/V11: per destination over 24 h.
const DESTINATIONS: &str = "
SELECT destination_id, destination, attempts, success_rate,
       jsonb_build_object('p50', p50, 'p90', p90, 'p99', p99) AS latency_ms
  FROM destination_delivery_stats_24h() ORDER BY attempts DESC";

const INGEST: &str = "
SELECT (SELECT count(*) FROM session_events WHERE received_at > now() - interval '24 hours') AS today,
       (SELECT count(*) FROM session_events
         WHERE received_at > now() - interval '8 days' AND received_at <= now() - interval '7 days')
       AS week_ago";

#[derive(Deserialize)]
struct LastCheck {
    checked_at: Option<String>,
    age_minutes: Option<f64>,
    results: Value,
}

#[derive(Deserialize)]
struct Ingest {
    today: i64,
    week_ago: i64,
}

/// The colour of a metric's status.
pub fn colour(status: &str) -> &'static str {
    match status {
        "critical" => "red",
        "warning" => "yellow",
        "insufficient_volume" => "grey",
        _ => "green",
    }
}

/// The colour of a destination's success rate over 24 h.
pub fn success_colour(rate: Option<f64>) -> &'static str {
    match rate {
        Some(x) if x >= 0.99 => "green",
        Some(x) if x >= 0.95 => "yellow",
        Some(_) => "red",
        None => "grey",
    }
}

/// The overall colour and the rule that set it, from the open alerts'
/// severities and the last check's age in minutes.
pub fn overall(alerts: &[Value], check_age_minutes: Option<f64>) -> (&'static str, &'static str) {
    let has = |sev: &str| alerts.iter().any(|a| a["severity"] == sev);
    if has("critical") {
        ("red", "at least one critical alert is open")
    } else if has("warning") {
        ("yellow", "warning alerts are open, none critical")
    } else if check_age_minutes.is_none_or(|m| m > STALE_AFTER_MINUTES) {
        (
            "yellow",
            "no alert open, but no check has run in the last 45 minutes",
        )
    } else {
        ("green", "no alert open and the last check is recent")
    }
}

pub fn summary(db: &Db, t: &Thresholds) -> Result<Value, DbError> {
    let (last_check, age_minutes, metrics) = match db.row::<LastCheck>(LAST_CHECK, &[])? {
        Some(r) => (r.checked_at, r.age_minutes, r.results),
        None => (None, None, Value::Null),
    };
    let metrics: Vec<Value> = metrics
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| m["scope"] == "global")
        .map(|m| {
            let s = status(m, t);
            json!({
                "metric": m["alert_type"], "value": m["metric_value"], "threshold": m["threshold"],
                "volume": m["volume"], "status": s, "colour": colour(s),
            })
        })
        .collect();
    let alerts: Vec<Value> = db.rows(OPEN_ALERTS, &[])?;
    let destinations: Vec<Value> = db
        .rows::<Value>(DESTINATIONS, &[])?
        .into_iter()
        .map(|mut d| {
            d["colour"] = json!(success_colour(d["success_rate"].as_f64()));
            d
        })
        .collect();
    let Ingest { today, week_ago } = db.one(INGEST, &[])?;
    let (status, rule) = overall(&alerts, age_minutes);
    Ok(json!({
        "status": status,
        "rule": rule,
        "last_check_at": last_check,
        "metrics": metrics,
        "open_alerts": alerts,
        "destinations_24h": destinations,
        "ingest": {
            "events_24h": today,
            "events_same_hours_week_before": week_ago,
            "change": if week_ago > 0 { json!((today - week_ago) as f64 / week_ago as f64) } else { Value::Null },
        },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_worst_open_alert_sets_the_colour_then_the_check_age() {
        let alert = |sev: &str| json!({ "severity": sev });
        assert_eq!(
            overall(&[alert("warning"), alert("critical")], Some(1.0)).0,
            "red"
        );
        assert_eq!(overall(&[alert("warning")], Some(1.0)).0, "yellow");
        assert_eq!(
            overall(&[], Some(1.0)),
            ("green", "no alert open and the last check is recent")
        );
        assert_eq!(overall(&[], Some(46.0)).0, "yellow");
        assert_eq!(overall(&[], None).0, "yellow");
        assert_eq!(success_colour(Some(0.97)), "yellow");
        assert_eq!(success_colour(None), "grey");
    }
}
