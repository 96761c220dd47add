//! The nightly tracking-health detector (cron, 03:00 UTC): refreshes the
//! 30-day stats, classifies every eligible client, records the run in `job_runs`.

use platform::jobs::{self, Trigger};
use tracking_health::{run_detection, AsOf, Thresholds, JOB_NAME};

struct Detector;

impl spin_cron::Guest for Detector {
    fn handle_cron_event(metadata: spin_cron::Metadata) -> Result<(), spin_cron::Error> {
        jobs::run(JOB_NAME, Trigger::Cron(metadata.timestamp), |conn| {
            run_detection(conn, AsOf::Now, &Thresholds::from_variables()?)
        })
        .map(|_| ())
        .map_err(|e| spin_cron::Error::Other(e.to_string()))
    }
}

spin_cron::export!(Detector);
