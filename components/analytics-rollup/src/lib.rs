//! The analytics rollup (crates/analytics, `job`): nightly by cron (02:00
//! UTC) it rolls up each client's local days that have ended since the last
//! run, and every earlier day with late events, then applies retention;
//! `POST /admin/analytics/rollup` (admin) with `{"from", "to"}` recomputes
//! those dates in every zone where they have ended. Both run as job
//! `analytics-rollup`, so a backfill during the nightly run answers 409.

use chrono::{DateTime, Utc};
use serde_json::json;
use spin_sdk::http::{Method, Request, Response};
use spin_sdk::http_component;

use analytics::job::{self, Retention, JOB_NAME};
use platform::jobs::{self, Outcome, Trigger};
use platform::vars::Vars;
use platform::{auth, respond, ApiError};

struct Cron;

impl spin_cron::Guest for Cron {
    fn handle_cron_event(metadata: spin_cron::Metadata) -> Result<(), spin_cron::Error> {
        // "Today" is the trigger's time.
        let as_of = DateTime::<Utc>::from_timestamp(metadata.timestamp as i64, 0)
            .ok_or_else(|| spin_cron::Error::Other("bad cron timestamp".into()))?;
        jobs::run_cron(JOB_NAME, metadata.timestamp, |db| {
            job::nightly(db, as_of, &Retention::from_vars(&Vars::spin())?)
        })
        .map_err(spin_cron::Error::Other)
    }
}

spin_cron::export!(Cron);

#[http_component]
fn handle(req: Request) -> Response {
    match req.method() {
        Method::Post => backfill(&req).unwrap_or_else(ApiError::into_response),
        _ => respond::method_not_allowed(&["POST"]),
    }
}

fn backfill(req: &Request) -> Result<Response, ApiError> {
    auth::admin(req)?;
    let retention = Retention::from_vars(&Vars::spin())?;
    let (from, to) = job::backfill_range(req.body(), Utc::now().date_naive(), &retention)?;
    let report = jobs::run(JOB_NAME, Trigger::Http, |db| job::backfill(db, from, to))
        .map_err(|e| ApiError::job(e, "rollup_failed"))?;
    match report.outcome {
        Outcome::Succeeded(detail) => Ok(respond::json(
            200,
            &json!({ "run_id": report.run_id, "rollup": detail }),
        )),
        Outcome::Skipped => Err(ApiError::new(
            409,
            "rollup_running",
            "the analytics rollup is running; try again when it has finished",
        )),
    }
}
