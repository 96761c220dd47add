//! Delivery of queued conversions: the cron (every 5 minutes) delivers the
//! outbox rows that are due; `POST /admin/failed-events/retry` (admin) is the
//! backoffice's retry button (`{"retry_all": true}`, `{"ids": [...]}` or
//! `{"replay": {filters}}`).
//! Same run (crates/delivery/src/run.rs): concurrent clicks and the cron
//! claim disjoint rows, so nothing is sent twice. Also
//! `POST /admin/destinations/:id/test` (admin), the test send of one
//! destination (`delivery::test_send`), which needs the same platforms.

use spin_sdk::http::{Method, Request, Response};
use spin_sdk::http_component;

use delivery::retry::Trigger;
use delivery::run::{self, Limits, Scope};
use delivery::{outbox, test_send};
use platform::jobs;
use platform::request::path_param;
use platform::vars::Vars;
use platform::{auth, db, respond, ApiError};

/// The job name in `job_runs`.
const JOB_NAME: &str = "retry-failed-events";

struct Cron;

impl spin_cron::Guest for Cron {
    fn handle_cron_event(metadata: spin_cron::Metadata) -> Result<(), spin_cron::Error> {
        jobs::run_cron(JOB_NAME, metadata.timestamp, |db| {
            let limits = Limits::from_vars(&Vars::spin())?;
            Ok(run::run(db, Trigger::Cron, &Scope::Due, &limits)?.to_json())
        })
        .map_err(spin_cron::Error::Other)
    }
}

spin_cron::export!(Cron);

#[http_component]
fn handle(req: Request) -> Response {
    match req.method() {
        Method::Post if path_param(&req, "id").is_some() => {
            test(&req).unwrap_or_else(ApiError::into_response)
        }
        Method::Post => retry(&req).unwrap_or_else(ApiError::into_response),
        _ => respond::method_not_allowed(&["POST"]),
    }
}

fn retry(req: &Request) -> Result<Response, ApiError> {
    auth::admin(req)?;
    let scope = outbox::retry_scope(req.body())?;
    let limits = Limits::from_vars(&Vars::spin())?;
    let body = outbox::retry_now(&db::connect()?, &scope, &limits)?;
    Ok(respond::json(200, &body))
}

fn test(req: &Request) -> Result<Response, ApiError> {
    auth::admin(req)?;
    let raw = path_param(req, "id").unwrap_or_default();
    let id = platform::ids::parse_uuid(raw).ok_or_else(|| {
        ApiError::bad_request(
            "invalid_parameter",
            "id",
            format!("{raw:?} is not a destination id"),
        )
    })?;
    let limits = Limits::from_vars(&Vars::spin())?;
    let body = test_send::test_send(
        &db::connect()?,
        &id,
        req.body(),
        &limits.endpoints,
        limits.request_timeout,
    )?;
    Ok(respond::json(200, &body))
}
