//! The retry cron (every 5 minutes): delivers the outbox rows that are due,
//! within the run's time and event budget (crates/delivery/src/run.rs), and
//! records the run in job_runs.

use anyhow::Context;
use platform::jobs::{self, Trigger};

const JOB_NAME: &str = "retry-failed-events";

struct RetryFailedEvents;

impl spin_cron::Guest for RetryFailedEvents {
    fn handle_cron_event(metadata: spin_cron::Metadata) -> Result<(), spin_cron::Error> {
        jobs::run(JOB_NAME, Trigger::Cron(metadata.timestamp), |conn| {
            let limits = delivery::run::Limits::from_variables().map_err(anyhow::Error::msg)?;
            let summary = delivery::run::run(conn, "cron", &delivery::run::Scope::Due, &limits)
                .context("delivery run")?;
            Ok(summary.to_json())
        })
        .map(|_| ())
        .map_err(|e| spin_cron::Error::Other(e.to_string()))
    }
}

spin_cron::export!(RetryFailedEvents);
