//! The cron trigger, as the spin-trigger-cron plugin runs it: expressions of
//! exactly six fields (seconds first), evaluated in UTC with day-of-month AND
//! day-of-week both required to match; each tick instantiates the component
//! afresh and passes the wall-clock time in seconds; a failure is logged and
//! not retried.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, Result};
use chrono::Utc;
use croner::Cron;

use crate::app::App;

/// Parses a cron expression the way the Spin cron trigger does.
pub fn parse_schedule(expression: &str) -> Result<Cron> {
    Cron::new(expression)
        .with_seconds_required()
        .with_dom_and_dow()
        .parse()
        .map_err(|e| anyhow!("invalid cron_expression {expression:?}: {e}"))
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn six_fields_seconds_first() {
        let daily = parse_schedule("0 0 3 * * *").unwrap();
        let from = Utc.with_ymd_and_hms(2026, 11, 22, 5, 0, 0).unwrap();
        let next = daily.find_next_occurrence(&from, false).unwrap();
        assert_eq!(next, Utc.with_ymd_and_hms(2026, 11, 23, 3, 0, 0).unwrap());
        let every5 = parse_schedule("0 */5 * * * *").unwrap();
        let next = every5.find_next_occurrence(&from, false).unwrap();
        assert_eq!(next, Utc.with_ymd_and_hms(2026, 11, 22, 5, 5, 0).unwrap());
    }

    #[test]
    fn five_and_seven_fields_are_rejected_like_the_cron_trigger() {
        assert!(parse_schedule("0 3 * * *").is_err());
        assert!(parse_schedule("0 0 3 * * * 2027").is_err());
        assert!(parse_schedule("not a schedule").is_err());
    }
}
