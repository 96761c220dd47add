//! `GET /admin/tracking-health/summary` (admin): the backoffice's health page
//! at a glance — overall green / yellow / red and the rule that decided it,
//! the last check, each metric of that check with value, threshold and
//! colour, the open alerts, per destination over 24 h attempts, success rate
//! and p50/p90/p99 latency, and ingest volume over 24 h against the same
//! hours a week before.

use serde::Deserialize;
use serde_json::{json, Value};
use spin_sdk::http::{Method, Request, Response};
use spin_sdk::http_component;

use health_checks::{status, Thresholds};
use platform::db::{self, Db};
use platform::{auth, respond};

/// A check older than this means the monitor itself is not running.
const STALE_AFTER_MINUTES: f64 = 45.0;

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

fn colour(status: &str) -> &'static str {
    match status {
        "critical" => "red",
        "warning" => "yellow",
        "insufficient_volume" => "grey",
        _ => "green",
    }
}

fn summary(conn: &Db, t: &Thresholds) -> Result<Value, db::DbError> {
    let (last_check, age_minutes, metrics) = match conn.row::<LastCheck>(LAST_CHECK, &[])? {
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
    let alerts: Vec<Value> = conn.rows(OPEN_ALERTS, &[])?;
    let destinations: Vec<Value> = conn
        .rows::<Value>(DESTINATIONS, &[])?
        .into_iter()
        .map(|mut d| {
            d["colour"] = json!(match d["success_rate"].as_f64() {
                Some(x) if x >= 0.99 => "green",
                Some(x) if x >= 0.95 => "yellow",
                Some(_) => "red",
                None => "grey",
            });
            d
        })
        .collect();
    let Ingest { today, week_ago } = conn.one(INGEST, &[])?;

    let has = |sev: &str| alerts.iter().any(|a| a["severity"] == sev);
    let stale = age_minutes.is_none_or(|m| m > STALE_AFTER_MINUTES);
    let (overall, rule) = if has("critical") {
        ("red", "at least one critical alert is open")
    } else if has("warning") {
        ("yellow", "warning alerts are open, none critical")
    } else if stale {
        (
            "yellow",
            "no alert open, but no check has run in the last 45 minutes",
        )
    } else {
        ("green", "no alert open and the last check is recent")
    };
    Ok(json!({
        "status": overall,
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

#[http_component]
fn handle(req: Request) -> Response {
    if *req.method() != Method::Get {
        return respond::method_not_allowed(&["GET"]);
    }
    if let Err(refusal) = auth::admin_or_refusal(&req) {
        return refusal;
    }
    let thresholds = match Thresholds::from_variables() {
        Ok(t) => t,
        Err(e) => return respond::error(500, "misconfigured", &e),
    };
    let conn = match db::connect() {
        Ok(c) => c,
        Err(e) => return respond::db_failure(&e, ""),
    };
    match summary(&conn, &thresholds) {
        Ok(body) => respond::json(200, &body),
        Err(e) => respond::db_failure(&e, ""),
    }
}
