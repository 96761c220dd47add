//! The tracking-health check, every 15 minutes: metrics → alerts →
//! notifications (crates/health-checks), recorded in job_runs. A database it
//! cannot reach fails the run (non-zero cron result, a `failed` job run when
//! the row could be written) and leaves the alerts untouched.

use health_checks::{run_check, Thresholds, Webhook, JOB_NAME};
use platform::jobs::{self, Trigger};

struct CheckTrackingHealth;

impl spin_cron::Guest for CheckTrackingHealth {
    fn handle_cron_event(metadata: spin_cron::Metadata) -> Result<(), spin_cron::Error> {
        jobs::run(JOB_NAME, Trigger::Cron(metadata.timestamp), |conn| {
            let thresholds = Thresholds::from_variables().map_err(anyhow::Error::msg)?;
            run_check(conn, &thresholds, &Webhook::from_variables())
        })
        .map(|_| ())
        .map_err(|e| spin_cron::Error::Other(e.to_string()))
    }
}

spin_cron::export!(CheckTrackingHealth);
