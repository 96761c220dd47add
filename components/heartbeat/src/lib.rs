//! The heartbeat cron job: proves the scheduler runs and keeps house. Each run
//! creates the monthly `session_events` partitions for this month and the next
//! two (so ingest never falls into the default partition), marks runs left `running` longer than `job_stale_after_minutes`
//! as `abandoned` (their component died mid-run) and deletes runs older than
//! `job_runs_retention_days`.

use anyhow::Context;
use platform::db::Db;
use platform::jobs;
use platform::vars::Vars;
use serde_json::json;

const JOB_NAME: &str = "heartbeat";

struct Heartbeat;

impl spin_cron::Guest for Heartbeat {
    fn handle_cron_event(metadata: spin_cron::Metadata) -> Result<(), spin_cron::Error> {
        jobs::run_cron(JOB_NAME, metadata.timestamp, tidy_job_runs).map_err(spin_cron::Error::Other)
    }
}

spin_cron::export!(Heartbeat);

fn tidy_job_runs(conn: &Db) -> anyhow::Result<serde_json::Value> {
    let vars = Vars::spin();
    let stale_minutes: i32 = vars.number("job_stale_after_minutes")?;
    let retention_days: i32 = vars.number("job_runs_retention_days")?;
    let abandoned = conn
        .execute(
            "UPDATE job_runs
                SET outcome = 'abandoned', finished_at = clock_timestamp(),
                    detail = jsonb_build_object('error', 'still running after ' || $1 || ' minutes')
              WHERE outcome = 'running' AND started_at < now() - make_interval(mins => $1)",
            &[stale_minutes.into()],
        )
        .context("marking abandoned runs")?;
    let deleted = conn
        .execute(
            "DELETE FROM job_runs WHERE started_at < now() - make_interval(days => $1)",
            &[retention_days.into()],
        )
        .context("deleting old runs")?;
    let partitions_created: i32 = conn
        .value(
            "SELECT ensure_session_events_partitions(now()::date, 3) AS created",
            &[],
        )
        .context("creating event partitions")?;
    Ok(
        json!({ "abandoned": abandoned, "deleted": deleted, "partitions_created": partitions_created }),
    )
}
