//! The nightly analytics job (cron, 02:00 UTC): rolls up each client's local
//! days that have ended since the last run, and every earlier day with late
//! events, into `widget_daily_stats`, then applies retention (see
//! `analytics::job`). Recorded in `job_runs` as `analytics-rollup`; "today"
//! is the cron trigger's time.

use chrono::{DateTime, Utc};

use analytics::job::{self, Retention, JOB_NAME};
use platform::jobs::{self, Trigger};

struct Rollup;

impl spin_cron::Guest for Rollup {
    fn handle_cron_event(metadata: spin_cron::Metadata) -> Result<(), spin_cron::Error> {
        let as_of = DateTime::<Utc>::from_timestamp(metadata.timestamp as i64, 0)
            .ok_or_else(|| spin_cron::Error::Other("bad cron timestamp".into()))?;
        jobs::run(JOB_NAME, Trigger::Cron(metadata.timestamp), |conn| {
            let retention = Retention::from_variables()?;
            job::nightly(conn, as_of, &retention)
        })
        .map(|_| ())
        .map_err(|e| spin_cron::Error::Other(e.to_string()))
    }
}

spin_cron::export!(Rollup);
