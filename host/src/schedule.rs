//! Cron expressions as the Spin cron trigger (the spin-trigger-cron plugin,
//! on croner) parses them: exactly six fields, seconds first, evaluated in
//! UTC, day-of-month AND day-of-week both required to match. The manifest
//! validates `cron_expression` with it; the cron trigger schedules with it.

use anyhow::{anyhow, Result};
use croner::Cron;

/// Parses a cron expression the way the Spin cron trigger does.
pub fn parse_schedule(expression: &str) -> Result<Cron> {
    Cron::new(expression)
        .with_seconds_required()
        .with_dom_and_dow()
        .parse()
        .map_err(|e| anyhow!("invalid cron_expression {expression:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

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
