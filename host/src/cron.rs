//! The cron trigger, as the spin-trigger-cron plugin runs it: each
//! `[[trigger.cron]]` fires on its schedule (parsed by [`crate::schedule`]:
//! six fields, seconds first, UTC); each tick instantiates the component
//! afresh and passes the wall-clock time in seconds; a failure is logged and
//! not retried.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, Context, Result};
use chrono::Utc;

use crate::app::App;
use crate::bindings::cron::fermyon::spin_cron::cron_types;
use crate::schedule::parse_schedule;

/// Seconds since the epoch, now.
pub fn now_timestamp() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Starts one task per `[[trigger.cron]]`, each firing its component on schedule.
pub fn spawn_schedules(app: Arc<App>) -> Vec<tokio::task::JoinHandle<()>> {
    let mut handles = Vec::new();
    for trigger in app.manifest.cron_triggers.clone() {
        let app = app.clone();
        handles.push(tokio::spawn(async move {
            let Ok(schedule) = parse_schedule(&trigger.cron_expression) else {
                return;
            };
            loop {
                let now = Utc::now();
                let Ok(next) = schedule.find_next_occurrence(&now, false) else {
                    eprintln!(
                        "cron `{}`: no next occurrence of {:?}",
                        trigger.component, trigger.cron_expression
                    );
                    return;
                };
                let wait = (next - now).to_std().unwrap_or_default();
                tokio::time::sleep(wait).await;
                let app = app.clone();
                let id = trigger.component.clone();
                // A slow run must not delay the next tick.
                tokio::spawn(async move {
                    match app.run_cron(&id, now_timestamp()).await {
                        Ok(Ok(())) => tracing::info!("cron component {id} succeeded"),
                        Ok(Err(e)) => eprintln!("Component {id} failed: {e}"),
                        Err(e) => eprintln!("Component {id} trapped: {e:#}"),
                    }
                });
            }
        }));
    }
    handles
}

impl App {
    /// Runs cron component `id` once, as its schedule would, with `timestamp`
    /// (seconds since the epoch). The outer error is a host failure (a trap);
    /// the inner one is the error the component returned.
    pub async fn run_cron(&self, id: &str, timestamp: u64) -> Result<Result<(), String>> {
        let component = self.cron.get(id).ok_or_else(|| {
            anyhow!(
                "no cron component `{id}` (cron components: {:?})",
                self.cron_ids()
            )
        })?;
        let mut store = self.new_store(&component.config);
        let instance = component.pre.instantiate_async(&mut store).await?;
        let result = instance
            .call_handle_cron_event(&mut store, cron_types::Metadata { timestamp })
            .await
            .map_err(anyhow::Error::from)
            .context("cron handler trapped")?;
        Ok(result.map_err(|cron_types::Error::Other(m)| m))
    }

    /// The ids of the cron components.
    pub fn cron_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.cron.keys().cloned().collect();
        ids.sort();
        ids
    }
}
