//! `GET /admin/tracking-health/summary` (admin): the health page at a
//! glance; see `health_checks::summary`.

use spin_sdk::http::{Method, Request, Response};
use spin_sdk::http_component;

use health_checks::{summary, Thresholds};
use platform::vars::Vars;
use platform::{auth, db, respond, ApiError};

#[http_component]
fn handle(req: Request) -> Response {
    match req.method() {
        Method::Get => answer(&req).unwrap_or_else(ApiError::into_response),
        _ => respond::method_not_allowed(&["GET"]),
    }
}

fn answer(req: &Request) -> Result<Response, ApiError> {
    auth::admin(req)?;
    let thresholds = Thresholds::from_vars(&Vars::spin())?;
    let body = summary::summary(&db::connect()?, &thresholds)?;
    Ok(respond::json(200, &body))
}
