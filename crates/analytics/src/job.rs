//! The nightly rollup + retention job and the backfill, shared by the cron
//! component `analytics-rollup` and `POST /admin/analytics/rollup`. Both run
//! inside `platform::jobs::run` under one job name, so they never overlap.
//! The work is set-based SQL (migrations/V10): one statement per day rolled
//! up, one per partition dropped, one per batch deleted.

use std::collections::BTreeSet;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde_json::{json, Value};
use spin_sdk::pg4::{Connection, Decode, ParameterValue};

/// The job name in `job_runs`, and its lock.
pub const JOB_NAME: &str = "analytics-rollup";

/// Events received this long before the previous run's cut are looked at
/// again: an ingest transaction open at the cut commits rows stamped earlier.
pub const WATERMARK_MARGIN_MINUTES: i64 = 10;

/// The retention periods and batch size (Spin variables).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub raw_event_days: i64,
    pub session_days: i64,
    /// None: daily stats are kept forever.
    pub daily_stats_days: Option<i64>,
    pub batch_size: i64,
}

impl Retention {
    /// `analytics_raw_event_retention_days`, `analytics_session_retention_days`,
    /// `analytics_daily_stats_retention_days` (empty: keep) and
    /// `analytics_retention_batch_size`.
    pub fn from_variables() -> Result<Retention> {
        let read = |name: &str| -> Result<Option<i64>> {
            let raw = spin_sdk::variables::get(name).with_context(|| format!("variable {name}"))?;
            if raw.trim().is_empty() {
                return Ok(None);
            }
            match raw.trim().parse::<i64>() {
                Ok(n) if n >= 1 => Ok(Some(n)),
                _ => bail!("variable {name} must be a whole number ≥ 1, got {raw:?}"),
            }
        };
        let required = |name: &str| -> Result<i64> {
            read(name)?.with_context(|| format!("variable {name} must be set"))
        };
        Ok(Retention {
            raw_event_days: required("analytics_raw_event_retention_days")?,
            session_days: required("analytics_session_retention_days")?,
            daily_stats_days: read("analytics_daily_stats_retention_days")?,
            batch_size: required("analytics_retention_batch_size")?,
        })
    }
}

fn text(v: impl ToString) -> ParameterValue {
    ParameterValue::Str(v.to_string())
}

fn one<T: Decode>(conn: &Connection, sql: &str, params: &[ParameterValue]) -> Result<T> {
    let rows = conn.query(sql, params)?;
    let v = rows
        .rows
        .first()
        .and_then(|r| r.first())
        .context("the statement returned no row")?;
    Ok(T::decode(v)?)
}

fn ms(t: Instant) -> f64 {
    (t.elapsed().as_secs_f64() * 1e4).round() / 10.0
}

/// Rolls up each day of `days` and the later days it makes stale (ascending),
/// one transaction per day. Returns (days written, days refused because
/// retention purged them, stats rows written).
fn roll_up(conn: &Connection, days: &[NaiveDate]) -> Result<(Vec<String>, Vec<String>, i64)> {
    let (mut done, mut purged, mut rows) = (Vec::new(), Vec::new(), 0);
    let mut queue: BTreeSet<NaiveDate> = days.iter().copied().collect();
    while let Some(day) = queue.pop_first() {
        let r = conn
            .query(
                "SELECT rolled, clients, stale_days FROM analytics_rollup_day($1::text::date)",
                &[text(day)],
            )
            .with_context(|| format!("rolling up {day}"))?;
        let row = r
            .rows
            .first()
            .context("analytics_rollup_day returned no row")?;
        if !bool::decode(&row[0])? {
            purged.push(day.to_string());
            continue;
        }
        done.push(day.to_string());
        rows += i64::decode(&row[1])?;
        let stale = String::decode(&row[2])?;
        queue.extend(
            stale
                .split(',')
                .filter_map(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
                .filter(|d| *d > day),
        );
    }
    Ok((done, purged, rows))
}

/// The nightly run as of `as_of` (the cron trigger's time): rolls up
/// yesterday (UTC) and every earlier day with events received since the
/// previous run, moves the watermark, then applies retention. Days older than
/// the raw-event retention are never recomputed: their events may be gone.
pub fn nightly(conn: &Connection, as_of: DateTime<Utc>, r: &Retention) -> Result<Value> {
    let today = as_of.date_naive();
    let oldest = today - Duration::days(r.raw_event_days);
    let started = Instant::now();
    // The cut, as text so it round-trips exactly.
    let cut: String = one(conn, "SELECT now()::text", &[])?;
    let rows = conn
        .query(
            "SELECT to_char(d, 'YYYY-MM-DD')
               FROM analytics_changed_days(
                    coalesce((SELECT received_until FROM analytics_rollup_state)
                             - make_interval(mins => $3::int4), '-infinity'),
                    $1::text::timestamptz, $2::text::date) d",
            &[
                text(&cut),
                text(today),
                ParameterValue::Int32(WATERMARK_MARGIN_MINUTES as i32),
            ],
        )
        .context("finding days with late events")?;
    let mut days: Vec<NaiveDate> = rows
        .rows
        .iter()
        .filter_map(|row| String::decode(&row[0]).ok())
        .filter_map(|s| NaiveDate::parse_from_str(&s, "%Y-%m-%d").ok())
        .collect();
    days.push(today - Duration::days(1));
    days.sort();
    days.dedup();
    let (too_old, days): (Vec<NaiveDate>, Vec<NaiveDate>) =
        days.into_iter().partition(|d| *d < oldest);
    let (done, purged, stats_rows) = roll_up(conn, &days)?;
    conn.execute(
        "INSERT INTO analytics_rollup_state (singleton, received_until)
         VALUES (true, $1::text::timestamptz)
         ON CONFLICT (singleton) DO UPDATE SET received_until = excluded.received_until",
        &[text(&cut)],
    )
    .context("moving the watermark")?;
    let rollup_ms = ms(started);

    let started = Instant::now();
    let retention = retention(conn, today, r)?;
    Ok(json!({
        "as_of": as_of.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "rollup": {
            "days": done, "stats_rows": stats_rows, "purged_days_skipped": purged,
            "too_old_days_skipped": too_old.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "received_until": cut, "ms": rollup_ms,
        },
        "retention": retention,
        "retention_ms": ms(started),
    }))
}

/// Recomputes the rollups of `from..=to` (already validated).
pub fn backfill(conn: &Connection, from: NaiveDate, to: NaiveDate) -> Result<Value> {
    let started = Instant::now();
    let days: Vec<NaiveDate> = from.iter_days().take_while(|d| *d <= to).collect();
    let (done, purged, stats_rows) = roll_up(conn, &days)?;
    Ok(json!({
        "from": from.to_string(), "to": to.to_string(),
        "days": done.len(), "stats_rows": stats_rows,
        "purged_days_skipped": purged, "ms": ms(started),
    }))
}

/// Calls a one-batch delete function until a batch comes back short.
fn in_batches(conn: &Connection, sql: &str, before: &str, batch: i64) -> Result<i64> {
    let mut total = 0;
    loop {
        let n: i64 = one(
            conn,
            sql,
            &[text(before), ParameterValue::Int32(batch as i32)],
        )?;
        total += n;
        if n < batch {
            return Ok(total);
        }
    }
}

/// Retention after the rollup: drops the event partitions entirely past the
/// raw-event period whose days are all rolled up, deletes the default
/// partition's expired rolled-up events, expired sessions and visitors (and
/// daily stats when a period is set) in batches, each its own transaction.
pub fn retention(conn: &Connection, today: NaiveDate, r: &Retention) -> Result<Value> {
    let raw_cutoff = today - Duration::days(r.raw_event_days);
    let session_cutoff = today - Duration::days(r.session_days);
    let raw_cutoff_ts = format!("{raw_cutoff} 00:00:00+00");

    let parts = conn
        .query(
            "SELECT partition_name, droppable, array_to_string(unrolled_days, ',')
               FROM analytics_expired_event_partitions($1::text::timestamptz)",
            &[text(&raw_cutoff_ts)],
        )
        .context("listing expired partitions")?;
    let mut dropped = Vec::new();
    let mut kept = Vec::new();
    let mut events_dropped = 0i64;
    for row in &parts.rows {
        let name = String::decode(&row[0])?;
        if !bool::decode(&row[1])? {
            let unrolled = String::decode(&row[2]).unwrap_or_default();
            kept.push(
                json!({ "partition": name, "reason": format!("days not rolled up: {unrolled}") }),
            );
            continue;
        }
        match one::<i64>(
            conn,
            "SELECT analytics_drop_event_partition($1)",
            &[text(&name)],
        ) {
            Ok(n) => {
                events_dropped += n;
                dropped.push(json!({ "partition": name, "events": n }));
            }
            // A lock timeout (a long reader): tomorrow's run tries again.
            Err(e) => kept.push(json!({ "partition": name, "reason": format!("{e:#}") })),
        }
    }
    let default_events = in_batches(
        conn,
        "SELECT analytics_delete_expired_default_events($1::text::timestamptz, $2)",
        &raw_cutoff_ts,
        r.batch_size,
    )
    .context("deleting expired events of the default partition")?;
    let sessions = in_batches(
        conn,
        "SELECT analytics_delete_expired_sessions($1::text::timestamptz, $2)",
        &format!("{session_cutoff} 00:00:00+00"),
        r.batch_size,
    )
    .context("deleting expired sessions")?;
    let visitors = in_batches(
        conn,
        "SELECT analytics_delete_expired_visitors($1::text::date, $2)",
        &session_cutoff.to_string(),
        r.batch_size,
    )
    .context("deleting expired visitors")?;
    let stats = match r.daily_stats_days {
        None => 0,
        Some(days) => in_batches(
            conn,
            "SELECT analytics_delete_expired_stats($1::text::date, $2)",
            &(today - Duration::days(days)).to_string(),
            r.batch_size,
        )
        .context("deleting expired daily stats")?,
    };
    Ok(json!({
        "raw_events_before": raw_cutoff.to_string(),
        "sessions_before": session_cutoff.to_string(),
        "partitions_dropped": dropped,
        "partitions_kept": kept,
        "events_dropped": events_dropped,
        "default_partition_events_deleted": default_events,
        "sessions_deleted": sessions,
        "visitors_deleted": visitors,
        "daily_stats_deleted": stats,
    }))
}
