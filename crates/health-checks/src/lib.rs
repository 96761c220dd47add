//! check-tracking-health: the thresholds (named constants with their reasons,
//! overridable by Spin variables), and the check run shared by the cron and
//! the HTTP trigger: compute every metric in SQL (`tracking_health_metrics`),
//! apply them to the alerts in one statement (`apply_tracking_health_check`:
//! open, update, escalate, auto-resolve, queue notifications), then send the
//! queued notifications to the alert webhook.

use std::time::Duration;

use anyhow::Context;
use serde_json::{json, Value};
use spin_sdk::pg4::ParameterValue;

use platform::db::Db;
use platform::outbound::{self, HttpRequest};
use platform::vars::Vars;
use platform::ApiError;

pub mod summary;

pub const JOB_NAME: &str = "check-tracking-health";

/// Meta rates Event Match Quality 0–10 and calls 6+ good: below 7 most leads
/// carry only one or two identifiers; below 4 matching is failing (the seed's
/// "EMQ < 4.0" page).
pub const EMQ_WARNING: f64 = 7.0;
pub const EMQ_CRITICAL: f64 = 4.0;
/// An average of fewer events swings with one lead: no EMQ alert below this.
pub const EMQ_MIN_EVENTS: i64 = 20;
/// The seed's "failed > 10": more than this many conversions waiting.
pub const BACKLOG_CRITICAL: i64 = 10;
/// More than 5 % of delivery attempts failing in an hour...
pub const ERROR_RATE_CRITICAL: f64 = 0.05;
/// ...out of at least this many, so 1 failure in 3 attempts pages nobody.
pub const ERROR_RATE_MIN_ATTEMPTS: i64 = 20;
/// No event accepted platform-wide for this long...
pub const SILENCE_MINUTES: i64 = 30;
/// ...while the same minutes a week earlier had at least this many: a total
/// outage, not a quiet night.
pub const SILENCE_MIN_EXPECTED: i64 = 20;

/// The thresholds a check uses.
#[derive(Debug, Clone, PartialEq)]
pub struct Thresholds {
    pub emq_warning: f64,
    pub emq_critical: f64,
    pub emq_min_events: i64,
    pub backlog_critical: i64,
    pub error_rate_critical: f64,
    pub error_rate_min_attempts: i64,
    pub silence_minutes: i64,
    pub silence_min_expected: i64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            emq_warning: EMQ_WARNING,
            emq_critical: EMQ_CRITICAL,
            emq_min_events: EMQ_MIN_EVENTS,
            backlog_critical: BACKLOG_CRITICAL,
            error_rate_critical: ERROR_RATE_CRITICAL,
            error_rate_min_attempts: ERROR_RATE_MIN_ATTEMPTS,
            silence_minutes: SILENCE_MINUTES,
            silence_min_expected: SILENCE_MIN_EXPECTED,
        }
    }
}

impl Thresholds {
    /// From the `health_*` variables; empty values keep the built-in constant.
    pub fn from_vars(vars: &Vars) -> Result<Thresholds, ApiError> {
        let d = Thresholds::default();
        let t = Thresholds {
            emq_warning: vars
                .optional("health_emq_warning")?
                .unwrap_or(d.emq_warning),
            emq_critical: vars
                .optional("health_emq_critical")?
                .unwrap_or(d.emq_critical),
            emq_min_events: vars
                .optional("health_emq_min_events")?
                .unwrap_or(d.emq_min_events),
            backlog_critical: vars
                .optional("health_backlog_critical")?
                .unwrap_or(d.backlog_critical),
            error_rate_critical: vars
                .optional("health_error_rate_critical")?
                .unwrap_or(d.error_rate_critical),
            error_rate_min_attempts: vars
                .optional("health_error_rate_min_attempts")?
                .unwrap_or(d.error_rate_min_attempts),
            silence_minutes: vars
                .optional("health_silence_minutes")?
                .unwrap_or(d.silence_minutes),
            silence_min_expected: vars
                .optional("health_silence_min_expected")?
                .unwrap_or(d.silence_min_expected),
        };
        if t.emq_critical > t.emq_warning || t.emq_critical.is_nan() {
            return Err(ApiError::misconfigured(
                "health_emq_critical must not be above health_emq_warning",
            ));
        }
        if t.silence_minutes < 1 {
            return Err(ApiError::misconfigured(
                "health_silence_minutes must be at least 1",
            ));
        }
        Ok(t)
    }
}

/// Where alert notifications go (Spin variable `alert_webhook_url`; empty: nowhere).
#[derive(Debug, Clone)]
pub struct Webhook {
    pub url: Option<String>,
    pub timeout: Duration,
}

impl Webhook {
    pub fn from_vars(vars: &Vars) -> Webhook {
        let url = vars.text("alert_webhook_url").unwrap_or_default();
        Webhook {
            url: Some(url.trim().to_string()).filter(|u| !u.is_empty()),
            timeout: Duration::from_secs(5),
        }
    }
}

const METRICS: &str = "
SELECT alert_type, scope, client_id::text AS client_id, destination_id::text AS destination_id,
       metric_value, threshold, volume, severity, message
  FROM tracking_health_metrics($1::float8, $2::float8, $3::int4, $4::int4, $5::float8, $6::int4,
                               $7::int4, $8::int4,
                               coalesce((SELECT max(checked_at) FROM tracking_health_checks),
                                        now() - interval '15 minutes'))";

fn metrics(conn: &Db, t: &Thresholds) -> anyhow::Result<Vec<Value>> {
    conn.rows(
        METRICS,
        &[
            ParameterValue::Floating64(t.emq_warning),
            ParameterValue::Floating64(t.emq_critical),
            ParameterValue::Int32(t.emq_min_events as i32),
            ParameterValue::Int32(t.backlog_critical as i32),
            ParameterValue::Floating64(t.error_rate_critical),
            ParameterValue::Int32(t.error_rate_min_attempts as i32),
            ParameterValue::Int32(t.silence_minutes as i32),
            ParameterValue::Int32(t.silence_min_expected as i32),
        ],
    )
    .context("computing the metrics")
}

/// How many notifications went out, and how many wait for the next check.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Sent {
    pub sent: usize,
    pub failed: usize,
}

/// Sends the queued notifications, oldest first, each at most once: a 2xx
/// marks it sent; a failure leaves it for the next call. Without a webhook
/// they are settled as `no_webhook`, so configuring one later does not
/// replay history.
pub fn send_notifications(conn: &Db, webhook: &Webhook) -> anyhow::Result<Sent> {
    let Some(url) = &webhook.url else {
        conn.execute(
            "UPDATE alert_notifications SET sent_at = now(), outcome = 'no_webhook' WHERE sent_at IS NULL",
            &[],
        )?;
        return Ok(Sent::default());
    };
    // Slack-compatible: `text` is what a Slack incoming webhook shows.
    let rows: Vec<(i64, Value)> = conn
        .rows::<Value>(
            "SELECT n.id, jsonb_build_object(
                    'text', n.text, 'transition', n.transition,
                    'alert', jsonb_build_object(
                        'id', a.id, 'alert_type', a.alert_type, 'scope', a.scope,
                        'severity', a.severity, 'metric_value', a.metric_value,
                        'threshold', a.threshold)) AS body
               FROM alert_notifications n JOIN tracking_health_alerts a ON a.id = n.alert_id
              WHERE n.sent_at IS NULL ORDER BY n.id LIMIT 100",
            &[],
        )?
        .into_iter()
        .map(|r| (r["id"].as_i64().unwrap_or_default(), r["body"].clone()))
        .collect();
    let mut sent = Sent::default();
    for (id, body) in rows {
        let request = HttpRequest {
            method: "POST".into(),
            url: url.clone(),
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.to_string().into_bytes(),
        };
        let error = match outbound::send(&request, webhook.timeout) {
            Ok(res) if (200..300).contains(&res.status) => None,
            Ok(res) => Some(format!("HTTP {}", res.status)),
            Err(e) => Some(e.to_string()),
        };
        match error {
            None => {
                conn.execute(
                    "UPDATE alert_notifications SET sent_at = now(), outcome = 'sent', attempts = attempts + 1 WHERE id = $1",
                    &[ParameterValue::Int64(id)],
                )?;
                sent.sent += 1;
            }
            Some(error) => {
                conn.execute(
                    "UPDATE alert_notifications SET attempts = attempts + 1, last_error = $2 WHERE id = $1",
                    &[ParameterValue::Int64(id), ParameterValue::Str(error)],
                )?;
                sent.failed += 1;
                // Keep the order of transitions: the rest waits for the next check.
                break;
            }
        }
    }
    Ok(sent)
}

/// The status of one metric row: its severity, `insufficient_volume`, or `ok`.
pub fn status(m: &Value, t: &Thresholds) -> &'static str {
    match m["severity"].as_str() {
        Some("critical") => "critical",
        Some("warning") => "warning",
        _ => {
            let volume = m["volume"].as_i64().unwrap_or(0);
            match m["alert_type"].as_str() {
                Some("emq_low") if volume < t.emq_min_events => "insufficient_volume",
                Some("delivery_error_rate") if volume < t.error_rate_min_attempts => {
                    "insufficient_volume"
                }
                Some("ingest_silence") if volume < t.silence_min_expected => "insufficient_volume",
                _ => "ok",
            }
        }
    }
}

/// One check: metrics, alerts, notifications. Returns the endpoint's report.
pub fn run_check(conn: &Db, t: &Thresholds, webhook: &Webhook) -> anyhow::Result<Value> {
    let metrics = metrics(conn, t)?;
    let applied: Value = conn
        .one(
            "SELECT opened, updated, escalated, resolved, check_id FROM apply_tracking_health_check($1::jsonb)",
            &[ParameterValue::Jsonb(serde_json::to_vec(&metrics)?)],
        )
        .context("applying the alerts")?;
    // Alert state is written; a webhook that is down only delays the messages.
    let notifications = match send_notifications(conn, webhook) {
        Ok(s) => json!({ "sent": s.sent, "waiting": s.failed }),
        Err(e) => json!({ "error": format!("{e:#}") }),
    };
    let checks: Vec<Value> = metrics
        .iter()
        .map(|m| {
            json!({
                "alert_type": m["alert_type"], "scope": m["scope"], "value": m["metric_value"],
                "threshold": m["threshold"], "volume": m["volume"], "status": status(m, t),
            })
        })
        .collect();
    Ok(json!({
        "alerts_opened": applied["opened"],
        "alerts_updated": applied["updated"],
        "alerts_escalated": applied["escalated"],
        "alerts_resolved": applied["resolved"],
        "check_id": applied["check_id"],
        "notifications": notifications,
        "checks": checks,
    }))
}

/// Resolves an open alert by hand (`by`: who) and sends its notification (or
/// leaves it for the next check when the webhook is down). 404 for no such
/// alert, 409 if already resolved.
pub fn resolve(db: &Db, id: i64, by: &str, webhook: &Webhook) -> Result<Value, ApiError> {
    #[derive(serde::Deserialize)]
    struct Resolved {
        was_open: bool,
    }
    let resolved: Option<Resolved> = db.row(
        "SELECT was_open FROM resolve_tracking_health_alert($1::int8, $2::text)",
        &[
            ParameterValue::Int64(id),
            ParameterValue::Str(by.to_string()),
        ],
    )?;
    match resolved.map(|r| r.was_open) {
        None => Err(ApiError::new(404, "unknown_alert", format!("no alert {id}")).field("id")),
        Some(false) => Err(ApiError::new(
            409,
            "already_resolved",
            format!("alert {id} is already resolved"),
        )),
        Some(true) => {
            let notified = send_notifications(db, webhook)
                .map(|s| json!({ "sent": s.sent, "waiting": s.failed }))
                .unwrap_or_else(|e| json!({ "error": format!("{e:#}") }));
            Ok(json!({ "id": id, "resolution": "manual", "notifications": notified }))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_variables_keep_the_constants() {
        assert_eq!(
            Thresholds::from_vars(&Vars::map(&[])).unwrap(),
            Thresholds::default()
        );
    }

    #[test]
    fn variables_override_and_are_checked() {
        let t = Thresholds::from_vars(&Vars::map(&[
            ("health_backlog_critical", "50"),
            ("health_emq_warning", "6.5"),
        ]))
        .unwrap();
        assert_eq!((t.backlog_critical, t.emq_warning), (50, 6.5));
        assert!(
            Thresholds::from_vars(&Vars::map(&[("health_backlog_critical", "many")]))
                .unwrap_err()
                .message
                .contains("health_backlog_critical")
        );
        assert!(Thresholds::from_vars(&Vars::map(&[("health_emq_critical", "8")])).is_err());
        assert!(Thresholds::from_vars(&Vars::map(&[("health_silence_minutes", "0")])).is_err());
    }

    #[test]
    fn statuses_say_when_volume_is_too_low_to_judge() {
        let t = Thresholds::default();
        let m = |kind: &str, severity: Option<&str>, volume: i64| json!({ "alert_type": kind, "severity": severity, "volume": volume });
        assert_eq!(status(&m("emq_low", None, 5), &t), "insufficient_volume");
        assert_eq!(status(&m("emq_low", None, 50), &t), "ok");
        assert_eq!(status(&m("emq_low", Some("warning"), 50), &t), "warning");
        assert_eq!(
            status(&m("delivery_error_rate", None, 3), &t),
            "insufficient_volume"
        );
        assert_eq!(
            status(&m("failed_events_backlog", Some("critical"), 11), &t),
            "critical"
        );
        assert_eq!(status(&m("failed_events_backlog", None, 0), &t), "ok");
    }
}
