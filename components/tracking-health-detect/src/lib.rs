//! The tracking-health detector (crates/tracking-health): nightly by cron
//! (03:00 UTC), and `POST /admin/tracking-health/detect` (admin) now or as of
//! an instant (`{"as_of": "<RFC 3339>"}`) for backfills and replays. Both
//! share the job's lock: a run in progress makes the click answer 409.

use chrono::Utc;
use serde_json::json;
use spin_sdk::http::{Method, Request, Response};
use spin_sdk::http_component;

use platform::jobs::{self, Outcome, Trigger};
use platform::vars::Vars;
use platform::{auth, respond, ApiError};
use tracking_health::{run_detection, AsOf, Thresholds, JOB_NAME};

struct Cron;

impl spin_cron::Guest for Cron {
    fn handle_cron_event(metadata: spin_cron::Metadata) -> Result<(), spin_cron::Error> {
        jobs::run_cron(JOB_NAME, metadata.timestamp, |db| {
            run_detection(db, AsOf::Now, &Thresholds::from_vars(&Vars::spin())?)
        })
        .map_err(spin_cron::Error::Other)
    }
}

spin_cron::export!(Cron);

#[http_component]
fn handle(req: Request) -> Response {
    match req.method() {
        Method::Post => detect(&req).unwrap_or_else(ApiError::into_response),
        _ => respond::method_not_allowed(&["POST"]),
    }
}

fn detect(req: &Request) -> Result<Response, ApiError> {
    auth::admin(req)?;
    let as_of = AsOf::from_body(req.body(), Utc::now())?;
    let thresholds = Thresholds::from_vars(&Vars::spin())?;
    let report = jobs::run(JOB_NAME, Trigger::Http, |db| {
        run_detection(db, as_of, &thresholds)
    })
    .map_err(|e| ApiError::job(e, "detection_failed"))?;
    match report.outcome {
        Outcome::Succeeded(detail) => Ok(respond::json(
            200,
            &json!({ "run_id": report.run_id, "as_of": detail["as_of"], "counts": detail["counts"] }),
        )),
        Outcome::Skipped => Err(ApiError::new(
            409,
            "detection_running",
            "another tracking-health detection is running; try again when it has finished",
        )),
    }
}
