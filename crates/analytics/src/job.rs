//! The nightly rollup + retention job and the backfill, shared by the cron
//! component `analytics-rollup` and `POST /admin/analytics/rollup`. Both run
//! inside `platform::jobs::run` under one job name, so they never overlap.
//! The work is set-based SQL (migrations/V10): one statement per day rolled
//! up, one per partition dropped, one per batch deleted.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use anyhow::{Context, Result};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::Deserialize;
use serde_json::{json, Value};
use spin_sdk::pg4::ParameterValue;

use platform::db::Db;
use platform::vars::Vars;
use platform::ApiError;

use crate::params::MAX_RANGE_DAYS;

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
    /// `analytics_retention_batch_size`; each a whole number ≥ 1.
    pub fn from_vars(vars: &Vars) -> Result<Retention, ApiError> {
        let read = |name: &str| -> Result<Option<i64>, ApiError> {
            match vars.optional::<i64>(name)? {
                Some(n) if n < 1 => Err(ApiError::misconfigured(format!(
                    "variable {name} must be a whole number ≥ 1, got {n}"
                ))),
                other => Ok(other),
            }
        };
        let required = |name: &str| {
            read(name)?
                .ok_or_else(|| ApiError::misconfigured(format!("variable {name} must be set")))
        };
        Ok(Retention {
            raw_event_days: required("analytics_raw_event_retention_days")?,
            session_days: required("analytics_session_retention_days")?,
            daily_stats_days: read("analytics_daily_stats_retention_days")?,
            batch_size: required("analytics_retention_batch_size")?,
        })
    }
}

/// The dates of a backfill, `{"from", "to"}` (YYYY-MM-DD): ended days
/// (before `today`, UTC), within the raw-event retention (older events may be
/// gone), at most `MAX_RANGE_DAYS` of them.
pub fn backfill_range(
    body: &[u8],
    today: NaiveDate,
    r: &Retention,
) -> Result<(NaiveDate, NaiveDate), ApiError> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Body {
        from: String,
        to: String,
    }
    let body: Body = platform::json::parse_body(body)?;
    let date = |field: &str, s: &str| -> Result<NaiveDate, ApiError> {
        let bad = || ApiError::invalid(field, format!("{field} {s:?} is not a date (YYYY-MM-DD)"));
        if s.len() != 10 {
            return Err(bad());
        }
        NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| bad())
    };
    let (from, to) = (date("from", &body.from)?, date("to", &body.to)?);
    if from > to {
        return Err(ApiError::invalid(
            "from",
            format!("from {from} is after to {to}"),
        ));
    }
    if to >= today {
        return Err(ApiError::invalid(
            "to",
            format!("to {to} is not before today ({today} UTC); today is read from raw events"),
        ));
    }
    let oldest = today - Duration::days(r.raw_event_days);
    if from < oldest {
        return Err(ApiError::invalid(
            "from",
            format!(
                "from {from} is before {oldest}: raw events older than {} days may be gone",
                r.raw_event_days
            ),
        ));
    }
    if (to - from).num_days() + 1 > MAX_RANGE_DAYS {
        return Err(ApiError::invalid(
            "from",
            format!("at most {MAX_RANGE_DAYS} days at once"),
        ));
    }
    Ok((from, to))
}

fn text(v: impl ToString) -> ParameterValue {
    ParameterValue::Str(v.to_string())
}

fn parse_day(s: &str) -> Result<NaiveDate> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").with_context(|| format!("{s:?} is not a date"))
}

fn ms(t: Instant) -> f64 {
    (t.elapsed().as_secs_f64() * 1e4).round() / 10.0
}

/// Local days to roll up: each date with the time zones whose day it is.
pub type DueDays = BTreeMap<NaiveDate, BTreeSet<String>>;

/// What [`roll_up`] did.
#[derive(Debug, Default)]
struct Rolled {
    /// "YYYY-MM-DD" per date rolled up, with its zones.
    days: Vec<Value>,
    /// (date, zone) pairs left alone because their raw events may be gone.
    purged: Vec<String>,
    stats_rows: i64,
}

/// A text[] column, its NULLs left out.
fn texts(v: Option<Vec<Option<String>>>) -> Vec<String> {
    v.into_iter().flatten().flatten().collect()
}

/// Adds to `due` the days of `items`, "YYYY-MM-DD zone" each, as the SQL
/// functions report a day in a zone (an IANA name has no space).
fn add_days(due: &mut DueDays, items: &[String]) -> Result<()> {
    for item in items {
        let (day, zone) = item
            .split_once(' ')
            .with_context(|| format!("{item:?} is not \"day zone\""))?;
        due.entry(parse_day(day)?)
            .or_default()
            .insert(zone.to_string());
    }
    Ok(())
}

/// Analyzes the partitions of `session_events` that hold rows but have never
/// been analyzed (a new month's, before autovacuum came by; any after a bulk
/// load). Without statistics the planner takes the day's events for one row
/// and joins the day's sessions by nested loop: 75 s for a day of 24,000
/// events instead of 0.5 s. Owner only: for another role, Postgres skips the
/// table with a warning.
fn analyze_new_partitions(conn: &Db) -> Result<()> {
    let names: Vec<String> = conn
        .value(
            "SELECT coalesce(jsonb_agg(format('%I.%I', s.schemaname, s.relname)), '[]') AS names
               FROM pg_inherits i
               JOIN pg_stat_user_tables s ON s.relid = i.inhrelid
              WHERE i.inhparent = 'session_events'::regclass
                AND s.last_analyze IS NULL AND s.last_autoanalyze IS NULL
                AND s.n_mod_since_analyze > 0",
            &[],
        )
        .context("finding partitions without statistics")?;
    for name in names {
        conn.execute(&format!("ANALYZE {name}"), &[])
            .with_context(|| format!("analyzing {name}"))?;
    }
    Ok(())
}

/// Rolls up each (date, zones) of `due` and the later days it makes stale,
/// in ascending date order, one transaction per date. `recut` (the backfill)
/// also cuts again, in its zone of now, the day of a client whose row for it
/// was cut in a zone it has left.
fn roll_up(conn: &Db, due: DueDays, recut: bool) -> Result<Rolled> {
    if !due.is_empty() {
        analyze_new_partitions(conn)?;
    }
    #[derive(Deserialize)]
    struct Day {
        rolled_zones: Option<Vec<Option<String>>>,
        purged_zones: Option<Vec<Option<String>>>,
        clients: i64,
        stale_days: Option<Vec<Option<String>>>,
    }
    let mut out = Rolled::default();
    let mut queue = due;
    while let Some((day, zones)) = queue.pop_first() {
        let zones: Vec<String> = zones.into_iter().collect();
        let started = Instant::now();
        let row: Day = conn
            .one(
                "SELECT rolled_zones, purged_zones, clients, stale_days
                   FROM analytics_rollup_day($1, $2, $3)",
                &[day.into(), zones.clone().into(), recut.into()],
            )
            .with_context(|| format!("rolling up {day} ({})", zones.join(", ")))?;
        let rolled = texts(row.rolled_zones);
        out.purged
            .extend(texts(row.purged_zones).iter().map(|z| format!("{day} {z}")));
        if rolled.is_empty() {
            continue;
        }
        out.days.push(json!({
            "day": day.to_string(),
            "time_zones": rolled,
            "ms": ms(started),
        }));
        out.stats_rows += row.clients;
        // Later days only (the function returns no others), so the queue
        // keeps moving forward.
        add_days(&mut queue, &texts(row.stale_days))?;
    }
    Ok(out)
}

/// Refreshes the visibility map of `widget_daily_stats` after a rollup, so
/// the read API's sums stay index-only scans (autovacuum may not come by for
/// weeks: a night changes a fraction of a percent of the table).
fn vacuum_stats(conn: &Db) -> Result<()> {
    conn.execute("VACUUM widget_daily_stats", &[])
        .context("vacuuming widget_daily_stats")?;
    Ok(())
}

/// The nightly run as of `as_of` (the cron trigger's time): rolls up, for
/// every client time zone, each local day that has ended since the previous
/// run, and every earlier day with events received since (late events); moves
/// the watermark, applies retention, then fills the lists of the periods
/// that have ended ([`fill_period_lists`]). Days older than the raw-event
/// retention are never recomputed: their events may be gone.
pub fn nightly(conn: &Db, as_of: DateTime<Utc>, r: &Retention) -> Result<Value> {
    #[derive(Deserialize)]
    struct Due {
        day: NaiveDate,
        zones: Option<Vec<Option<String>>>,
    }
    let today = as_of.date_naive();
    let oldest = today - Duration::days(r.raw_event_days);
    let started = Instant::now();
    // The cut, as text so it round-trips exactly.
    let cut: String = conn.value("SELECT now()::text AS cut", &[])?;
    let rows: Vec<Due> = conn
        .rows(
            "SELECT d.day, d.zones
               FROM analytics_due_days(
                    (SELECT received_until FROM analytics_rollup_state) - make_interval(mins => $2::int4),
                    $1::text::timestamptz) d",
            &[
                text(&cut),
                ParameterValue::Int32(WATERMARK_MARGIN_MINUTES as i32),
            ],
        )
        .context("finding the days to roll up")?;
    let mut due = DueDays::new();
    let mut too_old = Vec::new();
    for row in rows {
        if row.day < oldest {
            too_old.push(row.day.to_string());
            continue;
        }
        due.entry(row.day).or_default().extend(texts(row.zones));
    }
    let finding_ms = ms(started);
    let rolled = roll_up(conn, due, false)?;
    conn.execute(
        "UPDATE analytics_rollup_state SET received_until = $1::text::timestamptz",
        &[text(&cut)],
    )
    .context("moving the watermark")?;
    let vacuum_started = Instant::now();
    vacuum_stats(conn)?;
    let vacuum_ms = ms(vacuum_started);
    let rollup_ms = ms(started);

    let started = Instant::now();
    let retention = retention(conn, today, r)?;
    let retention_ms = ms(started);
    let period_lists = fill_period_lists(conn, today).context("filling the period lists")?;
    Ok(json!({
        "as_of": as_of.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "rollup": {
            "days": rolled.days, "stats_rows": rolled.stats_rows, "purged_days_skipped": rolled.purged,
            "too_old_days_skipped": too_old, "received_until": cut,
            "finding_days_ms": finding_ms, "vacuum_ms": vacuum_ms, "ms": rollup_ms,
        },
        "retention": retention,
        "retention_ms": retention_ms,
        "period_lists": period_lists,
    }))
}

/// Periods whose lists one statement fills (about 5 s), and the night's time
/// for them: after migration V32 every past period is to fill (12 minutes
/// for the 10 M bench's 1.5 M periods), so the first nights fill the newest
/// two minutes' worth each; afterwards a night has a few seconds' worth.
const LIST_FILL_BATCH: i64 = 10_000;
const LIST_FILL_BUDGET: std::time::Duration = std::time::Duration::from_secs(120);

/// Fills the lists of the months and week parts that have ended everywhere
/// (before yesterday, UTC: the run has just rolled up every zone's day
/// before it) and have none, newest first, a batch per transaction
/// (migrations/V32).
fn fill_period_lists(conn: &Db, today: NaiveDate) -> Result<Value> {
    let started = Instant::now();
    let mut filled = 0;
    loop {
        let n: i64 = conn.value(
            "SELECT analytics_fill_period_lists($1::text::date, $2) AS filled",
            &[
                text(today - Duration::days(1)),
                ParameterValue::Int32(LIST_FILL_BATCH as i32),
            ],
        )?;
        filled += n;
        let done = n < LIST_FILL_BATCH;
        if done || started.elapsed() >= LIST_FILL_BUDGET {
            return Ok(json!({ "filled": filled, "done": done, "ms": ms(started) }));
        }
    }
}

/// Recomputes the rollups of the dates `from..=to` (already validated) in
/// every client time zone where the date has ended.
pub fn backfill(conn: &Db, from: NaiveDate, to: NaiveDate) -> Result<Value> {
    #[derive(Deserialize)]
    struct ZoneDay {
        day: NaiveDate,
        time_zone: String,
        ended: bool,
    }
    let started = Instant::now();
    let rows: Vec<ZoneDay> = conn
        .rows(
            "SELECT d::date AS day, z.time_zone,
                    analytics_day_start(z.time_zone, d::date + 1) <= now() AS ended
               FROM generate_series($1::date, $2::date, interval '1 day') d,
                    (SELECT DISTINCT time_zone FROM clients) z
              ORDER BY 1, 2",
            &[from.into(), to.into()],
        )
        .context("listing the days")?;
    let mut due = DueDays::new();
    let mut not_ended = Vec::new();
    for row in rows {
        if row.ended {
            due.entry(row.day).or_default().insert(row.time_zone);
        } else {
            not_ended.push(format!("{} {}", row.day, row.time_zone));
        }
    }
    let rolled = roll_up(conn, due, true)?;
    vacuum_stats(conn)?;
    Ok(json!({
        "from": from.to_string(), "to": to.to_string(),
        "days": rolled.days.len(), "rolled": rolled.days, "stats_rows": rolled.stats_rows,
        "purged_days_skipped": rolled.purged, "not_ended_days_skipped": not_ended,
        "ms": ms(started),
    }))
}

/// Calls a one-batch delete function until a batch comes back short.
fn in_batches(conn: &Db, sql: &str, before: &str, batch: i64) -> Result<i64> {
    let mut total = 0;
    loop {
        let n: i64 = conn.value(sql, &[text(before), ParameterValue::Int32(batch as i32)])?;
        total += n;
        if n < batch {
            return Ok(total);
        }
    }
}

/// Deletes expired sessions in batches, walking the clients in id order
/// (each batch continues from the client the previous one ended on).
fn expired_sessions(conn: &Db, before: &str, batch: i64) -> Result<i64> {
    #[derive(Deserialize)]
    struct Batch {
        deleted: i64,
        next_client: Option<String>,
    }
    let mut total = 0;
    let mut from = "00000000-0000-0000-0000-000000000000".to_string();
    loop {
        let r: Batch = conn.one(
            "SELECT deleted, next_client::text AS next_client
               FROM analytics_delete_expired_sessions($1::text::timestamptz, $2, $3::text::uuid)",
            &[
                text(before),
                ParameterValue::Int32(batch as i32),
                text(&from),
            ],
        )?;
        total += r.deleted;
        match r.next_client {
            Some(next) if r.deleted >= batch => from = next,
            _ => return Ok(total),
        }
    }
}

/// The expired event partitions: (name, droppable, the local days
/// ("YYYY-MM-DD zone") with events whose rollup is missing).
fn expired_partitions(conn: &Db, cutoff: &str) -> Result<Vec<(String, bool, Vec<String>)>> {
    #[derive(Deserialize)]
    struct Partition {
        partition_name: String,
        droppable: bool,
        unrolled_days: Option<Vec<Option<String>>>,
    }
    let rows: Vec<Partition> = conn
        .rows(
            "SELECT partition_name, droppable, unrolled_days
               FROM analytics_expired_event_partitions($1::text::timestamptz)",
            &[text(cutoff)],
        )
        .context("listing expired partitions")?;
    Ok(rows
        .into_iter()
        .map(|p| (p.partition_name, p.droppable, texts(p.unrolled_days)))
        .collect())
}

/// Retention after the rollup: drops the event partitions entirely past the
/// raw-event period once every local day with events in them is rolled up
/// (rolling up first any that is not), deletes the default partition's
/// expired events of rolled-up days, expired sessions and visitors (and
/// daily stats when a period is set) in batches, each its own transaction.
pub fn retention(conn: &Db, today: NaiveDate, r: &Retention) -> Result<Value> {
    let raw_cutoff = today - Duration::days(r.raw_event_days);
    let session_cutoff = today - Duration::days(r.session_days);
    let raw_cutoff_ts = format!("{raw_cutoff} 00:00:00+00");

    // A day never rolled up (a failed night, a client moved to a new zone)
    // would keep its partition forever: roll it up while its events are here.
    let partitions_started = Instant::now();
    let mut parts = expired_partitions(conn, &raw_cutoff_ts)?;
    let mut missing = DueDays::new();
    for (_, _, unrolled) in &parts {
        add_days(&mut missing, unrolled)?;
    }
    let mut rolled_first = Vec::new();
    if !missing.is_empty() {
        rolled_first = roll_up(conn, missing, false)?.days;
        parts = expired_partitions(conn, &raw_cutoff_ts)?;
    }
    let mut dropped = Vec::new();
    let mut kept = Vec::new();
    let mut events_dropped = 0i64;
    for (name, droppable, unrolled) in parts {
        if !droppable {
            kept.push(json!({
                "partition": name,
                "reason": format!("days not rolled up: {}", unrolled.join(", ")),
            }));
            continue;
        }
        match conn.value::<i64>(
            "SELECT analytics_drop_event_partition($1) AS events",
            &[text(&name)],
        ) {
            Ok(n) => {
                events_dropped += n;
                dropped.push(json!({ "partition": name, "events": n }));
            }
            // A lock timeout (a long reader): tomorrow's run tries again.
            Err(e) => kept.push(json!({ "partition": name, "reason": e.to_string() })),
        }
    }
    let partitions_ms = ms(partitions_started);
    let default_events = in_batches(
        conn,
        "SELECT analytics_delete_expired_default_events($1::text::timestamptz, $2) AS deleted",
        &raw_cutoff_ts,
        r.batch_size,
    )
    .context("deleting expired events of the default partition")?;
    // The event ids ingest remembers (one stored event per id) for as long as raw events are kept.
    let event_keys = in_batches(
        conn,
        "SELECT ingest_delete_expired_event_keys($1::text::timestamptz, $2) AS deleted",
        &raw_cutoff_ts,
        r.batch_size,
    )
    .context("deleting expired event keys")?;
    let sessions_started = Instant::now();
    let sessions = expired_sessions(conn, &format!("{session_cutoff} 00:00:00+00"), r.batch_size)
        .context("deleting expired sessions")?;
    let sessions_ms = ms(sessions_started);
    let visitors = in_batches(
        conn,
        "SELECT analytics_delete_expired_visitors($1::text::date, $2) AS deleted",
        &session_cutoff.to_string(),
        r.batch_size,
    )
    .context("deleting expired visitors")?;
    let stats = match r.daily_stats_days {
        None => 0,
        Some(days) => in_batches(
            conn,
            "SELECT analytics_delete_expired_stats($1::text::date, $2) AS deleted",
            &(today - Duration::days(days)).to_string(),
            r.batch_size,
        )
        .context("deleting expired daily stats")?,
    };
    Ok(json!({
        "raw_events_before": raw_cutoff.to_string(),
        "sessions_before": session_cutoff.to_string(),
        "rolled_up_first": rolled_first,
        "partitions_dropped": dropped,
        "partitions_kept": kept,
        "events_dropped": events_dropped,
        "partitions_ms": partitions_ms,
        "default_partition_events_deleted": default_events,
        "event_keys_deleted": event_keys,
        "sessions_deleted": sessions,
        "sessions_ms": sessions_ms,
        "visitors_deleted": visitors,
        "daily_stats_deleted": stats,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const RETENTION: Retention = Retention {
        raw_event_days: 90,
        session_days: 365,
        daily_stats_days: None,
        batch_size: 5000,
    };

    fn day(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn a_backfill_covers_ended_days_within_the_raw_event_retention() {
        let today = day("2026-11-30");
        let range = |b: &str| backfill_range(b.as_bytes(), today, &RETENTION);
        assert_eq!(
            range(r#"{"from": "2026-11-01", "to": "2026-11-29"}"#).unwrap(),
            (day("2026-11-01"), day("2026-11-29"))
        );
        for (body, code, field) in [
            (r#"{"to": "2026-11-29"}"#, "missing_field", "from"),
            (
                r#"{"from": "2026-11-1", "to": "2026-11-29"}"#,
                "invalid_field",
                "from",
            ),
            (
                r#"{"from": "2026-11-20", "to": "2026-11-10"}"#,
                "invalid_field",
                "from",
            ),
            (
                r#"{"from": "2026-11-20", "to": "2026-11-30"}"#,
                "invalid_field",
                "to",
            ),
            (
                r#"{"from": "2026-01-01", "to": "2026-11-29"}"#,
                "invalid_field",
                "from",
            ),
        ] {
            let e = range(body).unwrap_err();
            assert_eq!((e.code, e.field.as_deref()), (code, Some(field)), "{body}");
        }
        assert_eq!(range("{").unwrap_err().code, "malformed_json");
    }

    #[test]
    fn retention_periods_are_whole_numbers_of_at_least_one() {
        let vars = Vars::map(&[
            ("analytics_raw_event_retention_days", "90"),
            ("analytics_session_retention_days", "365"),
            ("analytics_retention_batch_size", "5000"),
        ]);
        assert_eq!(Retention::from_vars(&vars).unwrap(), RETENTION);
        let zero = Vars::map(&[("analytics_raw_event_retention_days", "0")]);
        assert!(Retention::from_vars(&zero)
            .unwrap_err()
            .message
            .contains("≥ 1"));
    }
}
