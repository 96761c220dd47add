//! The nightly data retention (cron, 03:30 UTC): deletes what each table's
//! retention period no longer allows, in bounded batches, recorded in
//! `job_runs` as `data-retention` with the rows deleted per table. See
//! `privacy::retention` and docs/PRIVACY.md.

use chrono::Utc;

use platform::jobs;
use platform::vars::Vars;
use privacy::retention::{self, Retention, JOB_NAME};

struct Cron;

impl spin_cron::Guest for Cron {
    fn handle_cron_event(metadata: spin_cron::Metadata) -> Result<(), spin_cron::Error> {
        jobs::run_cron(JOB_NAME, metadata.timestamp, |db| {
            retention::run(db, Utc::now(), &Retention::from_vars(&Vars::spin())?)
        })
        .map_err(spin_cron::Error::Other)
    }
}

spin_cron::export!(Cron);
