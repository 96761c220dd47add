//! The tracking-health check (crates/health-checks): metrics → alerts →
//! notifications, every 15 minutes by cron, and on demand by
//! `POST /admin/tracking-health/check` for the backoffice and for platforms
//! without a cron trigger, whose scheduler calls it with
//! `Authorization: Bearer <platform_cron_token>` (empty disables that) or an
//! admin JWT. A check already running holds the job lock: 409. A database it
//! cannot reach fails the run and leaves the alerts untouched.

use spin_sdk::http::{Method, Request, Response};
use spin_sdk::http_component;

use health_checks::{run_check, Thresholds, Webhook, JOB_NAME};
use platform::jobs::{self, Outcome, Trigger};
use platform::vars::Vars;
use platform::{auth, respond, ApiError};

struct Cron;

impl spin_cron::Guest for Cron {
    fn handle_cron_event(metadata: spin_cron::Metadata) -> Result<(), spin_cron::Error> {
        let vars = Vars::spin();
        jobs::run_cron(JOB_NAME, metadata.timestamp, |db| {
            run_check(
                db,
                &Thresholds::from_vars(&vars)?,
                &Webhook::from_vars(&vars),
            )
        })
        .map_err(spin_cron::Error::Other)
    }
}

spin_cron::export!(Cron);

#[http_component]
fn handle(req: Request) -> Response {
    match req.method() {
        Method::Post => check(&req).unwrap_or_else(ApiError::into_response),
        _ => respond::method_not_allowed(&["POST"]),
    }
}

fn check(req: &Request) -> Result<Response, ApiError> {
    let vars = Vars::spin();
    if !auth::bearer_is(req, &vars.text("platform_cron_token")?) {
        auth::admin(req)?;
    }
    let thresholds = Thresholds::from_vars(&vars)?;
    let webhook = Webhook::from_vars(&vars);
    let report = jobs::run(JOB_NAME, Trigger::Http, |db| {
        run_check(db, &thresholds, &webhook)
    })
    .map_err(|e| ApiError::job(e, "check_failed"))?;
    match report.outcome {
        Outcome::Succeeded(mut detail) => {
            detail["run_id"] = serde_json::json!(report.run_id);
            Ok(respond::json(200, &detail))
        }
        Outcome::Skipped => Err(ApiError::new(
            409,
            "check_running",
            "another tracking-health check is running; try again when it has finished",
        )),
    }
}
