//! `GET /metrics`: what an operator scrapes, in the Prometheus text format.
//!
//! Every figure is read from Postgres by one statement at scrape time:
//! instances are short-lived (a fresh one per request, many replicas), so
//! nothing is counted in memory. Figures over "the window" (the Spin variable
//! `metrics_window_seconds`, 300 by default) are gauges of what happened in
//! the last window, not counters: scrape at least once per window. The one
//! counter, `tracking_ingest_rolled_up_events_total`, only grows (it is the
//! sum of the nightly rollups, kept forever by default).
//!
//! Labels are low-cardinality by construction: destination kinds, delivery
//! statuses and attempt outcomes, alert types and severities, job names.
//! No client, destination id or error text becomes a label.

pub mod exposition;

use serde::Deserialize;
use spin_sdk::pg4::ParameterValue;

use platform::db::{Db, DbError};
use platform::vars::Vars;
use platform::ApiError;

use exposition::{Exposition, Kind};

/// The default window of the windowed figures, in seconds.
pub const DEFAULT_WINDOW_SECONDS: i64 = 300;
/// The shortest and longest window accepted.
pub const WINDOW_RANGE: std::ops::RangeInclusive<i64> = 60..=86_400;

/// The destination kinds (conversion_deliveries.destination); each gets a
/// series even at zero, so a rate or an alert rule never sees it vanish.
pub const DESTINATIONS: [&str; 5] = [
    "meta_capi",
    "google_ec",
    "google_dm",
    "gtm_server",
    "webhook",
];
/// The outbox statuses that are depth (not yet delivered); `resolved` rows
/// are history and not counted (that would scan the whole outbox per scrape).
pub const QUEUED_STATUSES: [&str; 3] = ["pending", "retrying", "dead_letter"];
/// tracking_health_alerts.alert_type and severity.
pub const ALERT_TYPES: [&str; 5] = [
    "emq_low",
    "failed_events_backlog",
    "delivery_error_rate",
    "dead_letters",
    "ingest_silence",
];
pub const SEVERITIES: [&str; 2] = ["warning", "critical"];
/// Upper bounds of the delivery latency buckets, in milliseconds (the
/// inline deadline is 1.5 s, a run's request deadline 5 s).
pub const LATENCY_BOUNDS_MS: [i64; 10] = [25, 50, 100, 250, 500, 1000, 1500, 2500, 5000, 10000];

/// What the endpoint needs from the variables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    pub window_seconds: i64,
}

impl Config {
    /// `metrics_window_seconds` (empty: the default), within `WINDOW_RANGE`.
    pub fn from_vars(vars: &Vars) -> Result<Config, ApiError> {
        let window_seconds = vars
            .optional::<i64>("metrics_window_seconds")?
            .unwrap_or(DEFAULT_WINDOW_SECONDS);
        if !WINDOW_RANGE.contains(&window_seconds) {
            return Err(ApiError::misconfigured(format!(
                "variable metrics_window_seconds must be between {} and {}, got {window_seconds}",
                WINDOW_RANGE.start(),
                WINDOW_RANGE.end()
            )));
        }
        Ok(Config { window_seconds })
    }
}

/// One statement, one row: every figure as JSON. `$1` is the window in
/// seconds, `$2` the latency bounds (`{25,50,...}`): `bucket` is how many
/// bounds lie below an attempt's latency, i.e. the index of the first bucket
/// it falls in. Each part uses an index: the partial indexes on queued and
/// dead-letter rows, `delivery_attempts_by_time`, `job_runs_by_job`, the BRIN
/// on `event_keys.received_at`, `widget_daily_stats_totals` (index-only).
const FIGURES: &str = "
WITH w AS (SELECT now() - make_interval(secs => $1::float8) AS since)
SELECT
  (SELECT coalesce(json_agg(o), '[]') FROM (
      SELECT status, destination, count(*) AS deliveries
        FROM conversion_deliveries
       WHERE status IN ('pending', 'retrying', 'dead_letter')
       GROUP BY status, destination) o) AS outbox,
  (SELECT coalesce(json_agg(d), '[]') FROM (
      SELECT destination, extract(epoch FROM now() - min(next_retry_at))::float8 AS age_seconds
        FROM conversion_deliveries
       WHERE status IN ('pending', 'retrying') AND next_retry_at <= now()
       GROUP BY destination) d) AS oldest_due,
  (SELECT coalesce(json_agg(d), '[]') FROM (
      SELECT destination, count(*) AS deliveries
        FROM conversion_deliveries, w
       WHERE status = 'dead_letter' AND updated_at > w.since
       GROUP BY destination) d) AS new_dead_letters,
  (SELECT coalesce(json_agg(a), '[]') FROM (
      SELECT destination, outcome, count(*) AS attempts
        FROM delivery_attempts, w
       WHERE attempted_at > w.since
       GROUP BY destination, outcome) a) AS attempts,
  (SELECT coalesce(json_agg(l), '[]') FROM (
      SELECT destination,
             (SELECT count(*) FROM unnest($2::text::int[]) b WHERE b < latency_ms) AS bucket,
             count(*) AS attempts, sum(latency_ms)::float8 / 1000 AS seconds
        FROM delivery_attempts, w
       WHERE attempted_at > w.since AND latency_ms IS NOT NULL
       GROUP BY 1, 2) l) AS latency,
  (SELECT coalesce(json_agg(a), '[]') FROM (
      SELECT alert_type, severity, count(*) AS alerts
        FROM tracking_health_alerts WHERE resolved_at IS NULL
       GROUP BY alert_type, severity) a) AS open_alerts,
  (SELECT coalesce(json_agg(j ORDER BY j.job), '[]') FROM (
      SELECT job_name AS job, extract(epoch FROM max(finished_at))::float8 AS finished_at,
             extract(epoch FROM now() - max(finished_at))::float8 AS age_seconds
        FROM job_runs WHERE outcome = 'succeeded'
       GROUP BY job_name) j) AS jobs,
  (SELECT count(*) FROM event_keys, w WHERE received_at > w.since) AS accepted_events,
  (SELECT count(*) FROM rejected_events, w WHERE received_at > w.since) AS rejected_events,
  (SELECT coalesce(sum(events), 0)::bigint FROM widget_daily_stats) AS rolled_up_events";

#[derive(Debug, Deserialize)]
pub struct OutboxRow {
    pub status: String,
    pub destination: String,
    pub deliveries: u64,
}

#[derive(Debug, Deserialize)]
pub struct AgeRow {
    pub destination: String,
    pub age_seconds: f64,
}

#[derive(Debug, Deserialize)]
pub struct CountRow {
    pub destination: String,
    pub deliveries: u64,
}

#[derive(Debug, Deserialize)]
pub struct AttemptRow {
    pub destination: String,
    pub outcome: String,
    pub attempts: u64,
}

#[derive(Debug, Deserialize)]
pub struct LatencyRow {
    pub destination: String,
    pub bucket: usize,
    pub attempts: u64,
    pub seconds: f64,
}

#[derive(Debug, Deserialize)]
pub struct AlertRow {
    pub alert_type: String,
    pub severity: String,
    pub alerts: u64,
}

#[derive(Debug, Deserialize)]
pub struct JobRow {
    pub job: String,
    pub finished_at: f64,
    pub age_seconds: f64,
}

/// Every figure, as read.
#[derive(Debug, Deserialize)]
pub struct Figures {
    pub outbox: Vec<OutboxRow>,
    pub oldest_due: Vec<AgeRow>,
    pub new_dead_letters: Vec<CountRow>,
    pub attempts: Vec<AttemptRow>,
    pub latency: Vec<LatencyRow>,
    pub open_alerts: Vec<AlertRow>,
    pub jobs: Vec<JobRow>,
    pub accepted_events: u64,
    pub rejected_events: u64,
    pub rolled_up_events: u64,
}

/// Reads every figure (one statement).
pub fn collect(db: &Db, config: &Config) -> Result<Figures, DbError> {
    let bounds = LATENCY_BOUNDS_MS
        .iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(",");
    db.one(
        FIGURES,
        &[
            ParameterValue::Floating64(config.window_seconds as f64),
            ParameterValue::Str(format!("{{{bounds}}}")),
        ],
    )
}

/// The values of `names` (in that order, then any other the rows name,
/// sorted), so known series are written even at zero.
fn keys<'a>(known: &[&'a str], seen: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let mut all: Vec<&str> = known.to_vec();
    let mut extra: Vec<&str> = seen.filter(|s| !known.contains(s)).collect();
    extra.sort_unstable();
    extra.dedup();
    all.extend(extra);
    all
}

/// The scrape answer's text.
pub fn render(f: &Figures, config: &Config) -> String {
    let mut e = Exposition::default();
    let window = config.window_seconds as f64;

    e.family(
        "tracking_metrics_window_seconds",
        Kind::Gauge,
        "Length of the window the windowed figures of this scrape cover.",
    );
    e.sample("tracking_metrics_window_seconds", &[], window);

    let destinations = keys(
        &DESTINATIONS,
        f.outbox
            .iter()
            .map(|r| r.destination.as_str())
            .chain(f.attempts.iter().map(|r| r.destination.as_str())),
    );

    e.family(
        "tracking_outbox_deliveries",
        Kind::Gauge,
        "Conversions in the outbox not yet delivered, by status and destination kind.",
    );
    let statuses = keys(&QUEUED_STATUSES, f.outbox.iter().map(|r| r.status.as_str()));
    for status in &statuses {
        for dest in &destinations {
            let n = f
                .outbox
                .iter()
                .filter(|r| r.status == *status && r.destination == *dest)
                .map(|r| r.deliveries)
                .sum::<u64>();
            e.sample(
                "tracking_outbox_deliveries",
                &[("status", status), ("destination", dest)],
                n as f64,
            );
        }
    }

    e.family(
        "tracking_outbox_oldest_due_age_seconds",
        Kind::Gauge,
        "How long the oldest delivery that is due (pending or retrying, due time passed) has waited past its due time; 0 when none is due.",
    );
    for dest in &destinations {
        let age = f
            .oldest_due
            .iter()
            .filter(|r| r.destination == *dest)
            .map(|r| r.age_seconds.max(0.0))
            .fold(0.0, f64::max);
        e.sample(
            "tracking_outbox_oldest_due_age_seconds",
            &[("destination", dest)],
            age,
        );
    }

    e.family(
        "tracking_outbox_new_dead_letters",
        Kind::Gauge,
        "Deliveries that became dead letters in the last window, by destination kind.",
    );
    for dest in &destinations {
        let n: u64 = f
            .new_dead_letters
            .iter()
            .filter(|r| r.destination == *dest)
            .map(|r| r.deliveries)
            .sum();
        e.sample(
            "tracking_outbox_new_dead_letters",
            &[("destination", dest)],
            n as f64,
        );
    }

    e.family(
        "tracking_delivery_attempts",
        Kind::Gauge,
        "Delivery attempts in the last window, by destination kind and outcome (the status the attempt left the delivery in).",
    );
    let mut attempts: Vec<&AttemptRow> = f.attempts.iter().collect();
    attempts.sort_by(|a, b| (&a.destination, &a.outcome).cmp(&(&b.destination, &b.outcome)));
    for r in &attempts {
        e.sample(
            "tracking_delivery_attempts",
            &[("destination", &r.destination), ("outcome", &r.outcome)],
            r.attempts as f64,
        );
    }

    e.family(
        "tracking_delivery_success_ratio",
        Kind::Gauge,
        "Share of the last window's delivery attempts that delivered (0..1), per destination kind with attempts.",
    );
    for dest in &destinations {
        let of_dest = || f.attempts.iter().filter(|r| r.destination == *dest);
        let total: u64 = of_dest().map(|r| r.attempts).sum();
        if total == 0 {
            continue;
        }
        let ok: u64 = of_dest()
            .filter(|r| r.outcome == "resolved")
            .map(|r| r.attempts)
            .sum();
        e.sample(
            "tracking_delivery_success_ratio",
            &[("destination", dest)],
            ok as f64 / total as f64,
        );
    }

    e.family(
        "tracking_delivery_latency_seconds",
        Kind::Histogram,
        "Latency of the last window's delivery attempts, per destination kind (a snapshot of the window: read it directly, not with rate()).",
    );
    let bounds: Vec<f64> = LATENCY_BOUNDS_MS
        .iter()
        .map(|ms| *ms as f64 / 1000.0)
        .collect();
    for dest in &destinations {
        let mut counts = vec![0u64; bounds.len() + 1];
        let mut sum = 0.0;
        for r in f.latency.iter().filter(|r| r.destination == *dest) {
            counts[r.bucket.min(bounds.len())] += r.attempts;
            sum += r.seconds;
        }
        e.histogram(
            "tracking_delivery_latency_seconds",
            &[("destination", dest)],
            &bounds,
            &counts,
            sum,
        );
    }

    e.family(
        "tracking_alerts_open",
        Kind::Gauge,
        "Open tracking-health alerts, by type and severity.",
    );
    let types = keys(
        &ALERT_TYPES,
        f.open_alerts.iter().map(|r| r.alert_type.as_str()),
    );
    let severities = keys(
        &SEVERITIES,
        f.open_alerts.iter().map(|r| r.severity.as_str()),
    );
    for t in &types {
        for s in &severities {
            let n: u64 = f
                .open_alerts
                .iter()
                .filter(|r| r.alert_type == *t && r.severity == *s)
                .map(|r| r.alerts)
                .sum();
            e.sample(
                "tracking_alerts_open",
                &[("alert_type", t), ("severity", s)],
                n as f64,
            );
        }
    }

    e.family(
        "tracking_job_last_success_age_seconds",
        Kind::Gauge,
        "Seconds since each job's last successful run finished (job_runs; a job that never succeeded has no series).",
    );
    for j in &f.jobs {
        e.sample(
            "tracking_job_last_success_age_seconds",
            &[("job", &j.job)],
            j.age_seconds.max(0.0),
        );
    }
    e.family(
        "tracking_job_last_success_timestamp_seconds",
        Kind::Gauge,
        "Unix time at which each job's last successful run finished.",
    );
    for j in &f.jobs {
        e.sample(
            "tracking_job_last_success_timestamp_seconds",
            &[("job", &j.job)],
            j.finished_at,
        );
    }

    e.family(
        "tracking_ingest_accepted_events",
        Kind::Gauge,
        "Widget events accepted (stored, duplicates excluded) in the last window.",
    );
    e.sample(
        "tracking_ingest_accepted_events",
        &[],
        f.accepted_events as f64,
    );
    e.family(
        "tracking_ingest_rejected_events",
        Kind::Gauge,
        "Widget events rejected in the last window, as kept in rejected_events (one per distinct payload, capped per client per hour).",
    );
    e.sample(
        "tracking_ingest_rejected_events",
        &[],
        f.rejected_events as f64,
    );
    e.family(
        "tracking_ingest_rolled_up_events_total",
        Kind::Counter,
        "Widget events in the daily rollups (widget_daily_stats): grows once per night.",
    );
    e.sample(
        "tracking_ingest_rolled_up_events_total",
        &[],
        f.rolled_up_events as f64,
    );

    e.finish()
}

/// Reads the figures and renders them.
pub fn scrape(db: &Db, config: &Config) -> Result<String, ApiError> {
    let figures = collect(db, config).map_err(|e| ApiError::db(e, "reading the metrics"))?;
    Ok(render(&figures, config))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_destination_kind_has_its_series() {
        let kinds: Vec<&str> = delivery::Kind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(DESTINATIONS.to_vec(), kinds);
    }

    fn figures(v: serde_json::Value) -> Figures {
        serde_json::from_value(v).unwrap()
    }

    fn empty() -> serde_json::Value {
        json!({
            "outbox": [], "oldest_due": [], "new_dead_letters": [], "attempts": [],
            "latency": [], "open_alerts": [], "jobs": [],
            "accepted_events": 0, "rejected_events": 0, "rolled_up_events": 0
        })
    }

    fn line<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
        text.lines().find(|l| l.starts_with(prefix))
    }

    const CONFIG: Config = Config {
        window_seconds: 300,
    };

    #[test]
    fn the_window_comes_from_a_variable_within_bounds() {
        let c = |v: &str| Config::from_vars(&Vars::map(&[("metrics_window_seconds", v)]));
        assert_eq!(c("").unwrap().window_seconds, DEFAULT_WINDOW_SECONDS);
        assert_eq!(c(" 900 ").unwrap().window_seconds, 900);
        assert_eq!(c("59").unwrap_err().status, 500);
        assert_eq!(c("86401").unwrap_err().status, 500);
        assert_eq!(c("five").unwrap_err().status, 500);
    }

    #[test]
    fn known_series_are_written_at_zero() {
        let text = render(&figures(empty()), &CONFIG);
        for status in QUEUED_STATUSES {
            for dest in DESTINATIONS {
                let series = format!(
                    "tracking_outbox_deliveries{{status=\"{status}\",destination=\"{dest}\"}} 0"
                );
                assert!(text.contains(&series), "{series}\n{text}");
            }
        }
        assert_eq!(
            text.matches("tracking_alerts_open{").count(),
            ALERT_TYPES.len() * SEVERITIES.len()
        );
        assert!(!text.contains("tracking_delivery_success_ratio{"));
        assert!(!text.contains("tracking_job_last_success_age_seconds{"));
        assert!(text.contains("tracking_metrics_window_seconds 300\n"));
    }

    #[test]
    fn figures_become_samples() {
        let mut v = empty();
        v["outbox"] = json!([
            {"status": "retrying", "destination": "meta_capi", "deliveries": 4},
            {"status": "dead_letter", "destination": "webhook", "deliveries": 2}
        ]);
        v["oldest_due"] = json!([{"destination": "meta_capi", "age_seconds": 61.5}]);
        v["attempts"] = json!([
            {"destination": "meta_capi", "outcome": "resolved", "attempts": 3},
            {"destination": "meta_capi", "outcome": "retrying", "attempts": 1}
        ]);
        v["latency"] = json!([
            {"destination": "meta_capi", "bucket": 0, "attempts": 1, "seconds": 0.02},
            {"destination": "meta_capi", "bucket": 3, "attempts": 2, "seconds": 0.4},
            {"destination": "meta_capi", "bucket": 10, "attempts": 1, "seconds": 12.0}
        ]);
        v["open_alerts"] =
            json!([{"alert_type": "dead_letters", "severity": "critical", "alerts": 1}]);
        v["jobs"] = json!([{"job": "heartbeat", "finished_at": 1.7e9, "age_seconds": 42.0}]);
        v["accepted_events"] = json!(17);
        let text = render(&figures(v), &CONFIG);
        let has = |s: &str| assert!(text.contains(s), "{s}\n{text}");
        has("tracking_outbox_deliveries{status=\"retrying\",destination=\"meta_capi\"} 4\n");
        has("tracking_outbox_deliveries{status=\"dead_letter\",destination=\"webhook\"} 2\n");
        has("tracking_outbox_oldest_due_age_seconds{destination=\"meta_capi\"} 61.5\n");
        has("tracking_outbox_oldest_due_age_seconds{destination=\"webhook\"} 0\n");
        has("tracking_delivery_success_ratio{destination=\"meta_capi\"} 0.75\n");
        has("tracking_delivery_latency_seconds_bucket{destination=\"meta_capi\",le=\"0.025\"} 1\n");
        has("tracking_delivery_latency_seconds_bucket{destination=\"meta_capi\",le=\"0.1\"} 1\n");
        has("tracking_delivery_latency_seconds_bucket{destination=\"meta_capi\",le=\"0.25\"} 3\n");
        has("tracking_delivery_latency_seconds_bucket{destination=\"meta_capi\",le=\"10\"} 3\n");
        has("tracking_delivery_latency_seconds_bucket{destination=\"meta_capi\",le=\"+Inf\"} 4\n");
        has("tracking_delivery_latency_seconds_count{destination=\"meta_capi\"} 4\n");
        has("tracking_alerts_open{alert_type=\"dead_letters\",severity=\"critical\"} 1\n");
        has("tracking_job_last_success_age_seconds{job=\"heartbeat\"} 42\n");
        has("tracking_ingest_accepted_events 17\n");
        assert!(line(
            &text,
            "tracking_delivery_latency_seconds_sum{destination=\"meta_capi\"}"
        )
        .is_some_and(|l| l.ends_with(" 12.42")));
    }

    #[test]
    fn every_family_has_help_and_type_once_and_conventional_names() {
        let text = render(&figures(empty()), &CONFIG);
        let types: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .collect();
        let mut names: Vec<&str> = types.iter().map(|t| t.split(' ').next().unwrap()).collect();
        let n = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), n, "a family is declared twice");
        for t in types {
            let (name, kind) = t.split_once(' ').unwrap();
            assert!(name.starts_with("tracking_"), "{name}");
            assert!(
                name.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                "{name}"
            );
            assert_eq!(kind == "counter", name.ends_with("_total"), "{name}");
            assert!(!name.contains("_ms") && !name.contains("millis"), "{name}");
        }
    }
}
