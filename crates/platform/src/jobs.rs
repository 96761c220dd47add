//! Scheduled and on-demand jobs, recorded in `job_runs`.
//!
//! Under SpinKube every replica fires every cron schedule and a failed run is
//! not retried, so each run:
//! - records itself in `job_runs` before doing anything (the backoffice sees
//!   when each job last ran and whether it failed);
//! - takes a per-job Postgres advisory lock on a second connection, so two
//!   copies never run at once: the later one is recorded as `skipped`;
//! - under the lock, a cron run of a schedule that already succeeded (a
//!   `succeeded` cron run of the job with the same scheduled second) is
//!   recorded as `skipped` as well: every replica fires every schedule, at
//!   slightly different instants, and a fast job may be over before the
//!   next replica tries, yet the schedule must run once. A timestamp more
//!   than [`REPLAY_AFTER_SECONDS`] from now is a deliberate replay
//!   (`spin-local cron --timestamp`) and always runs;
//! - records its outcome before it releases the lock, so a run that takes
//!   the lock next sees it;
//! - records its outcome (`succeeded` with the job's detail, or `failed` with
//!   the error) and returns the error, so the trigger logs a failure.
//!
//! The lock is transaction-scoped: if the component dies mid-run, its
//! connection closes and Postgres releases the lock. Under Spin the
//! connection may instead go back to the pool with the transaction open, so
//! the lock transaction carries an idle timeout of its own
//! ([`LOCK_IDLE_TIMEOUT`]), longer than any job but finite.

use serde_json::{json, Value};
use spin_sdk::pg4::ParameterValue;

use crate::db::{self, Db, DbError};

/// How long the lock transaction may sit idle while its job works on the
/// other connection (the database default, migrations/V16, is one minute):
/// as long as `job_stale_after_minutes`' default, after which a run counts
/// as abandoned anyway.
pub const LOCK_IDLE_TIMEOUT: &str = "60min";

/// The statement timeout of a job's connection: jobs run set-based
/// statements over whole tables (a day's rollup, a partition drop, a view
/// refresh), longer than the database default of two minutes allows.
pub const JOB_STATEMENT_TIMEOUT: &str = "30min";

/// A cron timestamp further than this from the database's clock is a
/// replay asked for by hand, not a schedule that replicas fire together.
pub const REPLAY_AFTER_SECONDS: i64 = 3600;

/// How a job run was started, as recorded in `job_runs.trigger`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// By a cron schedule; carries the trigger's timestamp (seconds since the epoch).
    Cron(u64),
    /// By an HTTP request (an admin button).
    Http,
}

/// What a job run came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Succeeded(Value),
    /// Another copy of the job held the lock.
    Skipped,
}

/// Why a run did not succeed (it is recorded as `failed` when it could be),
/// and whether that was because the database could not be reached: an HTTP
/// trigger answers 503 then, 500 otherwise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobError {
    pub message: String,
    pub unavailable: bool,
}

impl std::fmt::Display for JobError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl JobError {
    fn db(name: &str, e: DbError) -> JobError {
        JobError {
            message: format!("job {name}: {e}"),
            unavailable: e.is_unavailable(),
        }
    }
}

/// The result of [`run`]: the `job_runs` id and the outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub run_id: i64,
    pub outcome: Outcome,
}

/// [`run`] for a cron trigger firing at `timestamp`: `Err` with the reason
/// when the run failed (a run skipped for another copy is no error).
pub fn run_cron<F>(name: &str, timestamp: u64, work: F) -> Result<(), String>
where
    F: FnOnce(&Db) -> anyhow::Result<Value>,
{
    run(name, Trigger::Cron(timestamp), work)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Runs `work` as job `name`, recording the run in `job_runs`.
///
/// `work` gets its own connection; the advisory lock is held on another.
/// Returns `Err` with the reason when the run failed (and was recorded as such),
/// or when the database could not be reached at all (nothing can be recorded then).
pub fn run<F>(name: &str, trigger: Trigger, work: F) -> Result<Report, JobError>
where
    F: FnOnce(&Db) -> anyhow::Result<Value>,
{
    let conn = db::connect().map_err(|e| JobError::db(name, e))?;
    let run_id = start(&conn, name, trigger).map_err(|e| JobError::db(name, e))?;

    let lock_conn = match db::connect() {
        Ok(c) => c,
        Err(e) => {
            return fail(
                &conn,
                run_id,
                name,
                anyhow::Error::new(e).context("lock connection"),
            )
        }
    };
    match try_lock(&lock_conn, name) {
        Ok(true) => {}
        Ok(false) => {
            finish(
                &conn,
                run_id,
                "skipped",
                &json!({ "reason": "another run of this job holds the lock" }),
            )
            .map_err(|e| JobError::db(name, e))?;
            return Ok(Report {
                run_id,
                outcome: Outcome::Skipped,
            });
        }
        Err(e) => {
            return fail(
                &conn,
                run_id,
                name,
                anyhow::Error::new(e).context("advisory lock"),
            )
        }
    }

    if let Trigger::Cron(scheduled) = trigger {
        match already_ran(&conn, name, run_id, scheduled) {
            Ok(false) => {}
            Ok(true) => {
                let recorded = finish(
                    &conn,
                    run_id,
                    "skipped",
                    &json!({ "reason": "another instance already ran this schedule" }),
                );
                let _ = lock_conn.execute("COMMIT", &[]);
                recorded.map_err(|e| JobError::db(name, e))?;
                return Ok(Report {
                    run_id,
                    outcome: Outcome::Skipped,
                });
            }
            Err(e) => {
                let _ = lock_conn.execute("COMMIT", &[]);
                return fail(
                    &conn,
                    run_id,
                    name,
                    anyhow::Error::new(e).context("schedule check"),
                );
            }
        }
    }

    let result = conn
        .execute(
            "SELECT set_config('statement_timeout', $1, false)",
            &[JOB_STATEMENT_TIMEOUT.to_string().into()],
        )
        .map_err(anyhow::Error::new)
        .and_then(|_| work(&conn));
    // The outcome is recorded before the lock is released, so the next
    // holder sees it; then the lock goes whatever happened (closing the
    // connection would release it too).
    let report = match result {
        Ok(detail) => finish(&conn, run_id, "succeeded", &detail)
            .map_err(|e| JobError::db(name, e))
            .map(|()| Report {
                run_id,
                outcome: Outcome::Succeeded(detail),
            }),
        Err(e) => fail(&conn, run_id, name, e),
    };
    let _ = lock_conn.execute("COMMIT", &[]);
    report
}

/// Whether another cron run of this job for the same scheduled second has
/// succeeded (never for a replay: see [`REPLAY_AFTER_SECONDS`]).
fn already_ran(conn: &Db, name: &str, run_id: i64, scheduled: u64) -> Result<bool, DbError> {
    conn.value(
        "SELECT abs(extract(epoch FROM now()) - $3::bigint) <= $4::bigint
                AND EXISTS (SELECT 1 FROM job_runs
                             WHERE job_name = $1 AND trigger = 'cron' AND outcome = 'succeeded'
                               AND id <> $2 AND scheduled_at = to_timestamp($3::bigint)) AS ran",
        &[
            name.to_string().into(),
            run_id.into(),
            ParameterValue::Int64(scheduled as i64),
            ParameterValue::Int64(REPLAY_AFTER_SECONDS),
        ],
    )
}

fn start(conn: &Db, name: &str, trigger: Trigger) -> Result<i64, DbError> {
    let (kind, scheduled_at) = match trigger {
        Trigger::Cron(ts) => ("cron", ParameterValue::Int64(ts as i64)),
        Trigger::Http => ("http", ParameterValue::DbNull),
    };
    conn.value(
        "INSERT INTO job_runs (job_name, trigger, scheduled_at, app_version)
         VALUES ($1, $2, to_timestamp($3::bigint), $4) RETURNING id",
        &[
            name.to_string().into(),
            kind.to_string().into(),
            scheduled_at,
            crate::VERSION.to_string().into(),
        ],
    )
}

fn try_lock(lock_conn: &Db, name: &str) -> Result<bool, DbError> {
    lock_conn.execute("BEGIN", &[])?;
    lock_conn.value(
        "SELECT pg_try_advisory_xact_lock(hashtextextended('job:' || $1, 0)) AS locked
           FROM set_config('idle_in_transaction_session_timeout', $2, true)",
        &[
            name.to_string().into(),
            LOCK_IDLE_TIMEOUT.to_string().into(),
        ],
    )
}

fn finish(conn: &Db, run_id: i64, outcome: &str, detail: &Value) -> Result<(), DbError> {
    let detail = serde_json::to_vec(detail).map_err(|e| DbError::failed(e.to_string()))?;
    conn.execute(
        "UPDATE job_runs SET outcome = $2, detail = $3, finished_at = clock_timestamp() WHERE id = $1",
        &[run_id.into(), outcome.to_string().into(), ParameterValue::Jsonb(detail)],
    )?;
    Ok(())
}

/// Records the run as failed with `error` and returns it as a [`JobError`].
fn fail(conn: &Db, run_id: i64, name: &str, error: anyhow::Error) -> Result<Report, JobError> {
    let unavailable = db::is_unavailable(&error);
    let error = format!("{error:#}");
    let recorded = finish(conn, run_id, "failed", &json!({ "error": error }));
    let message = match recorded {
        Ok(()) => format!("job {name} failed: {error}"),
        Err(e) => format!("job {name} failed: {error} (and recording it failed: {e})"),
    };
    Err(JobError {
        message,
        unavailable,
    })
}
