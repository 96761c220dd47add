//! `POST /admin/tracking-health/alerts/:id/resolve` (admin): resolves an open
//! alert by hand and sends its notification; see `health_checks::resolve`.

use spin_sdk::http::{Method, Request, Response};
use spin_sdk::http_component;

use health_checks::Webhook;
use platform::request::path_param;
use platform::vars::Vars;
use platform::{auth, db, respond, ApiError};

#[http_component]
fn handle(req: Request) -> Response {
    match req.method() {
        Method::Post => resolve(&req).unwrap_or_else(ApiError::into_response),
        _ => respond::method_not_allowed(&["POST"]),
    }
}

fn resolve(req: &Request) -> Result<Response, ApiError> {
    let caller = auth::admin(req)?;
    let raw = path_param(req, "id").unwrap_or_default();
    let id = raw
        .parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| {
            ApiError::bad_request(
                "invalid_parameter",
                "id",
                format!("{raw:?} is not an alert id"),
            )
        })?;
    let by = caller.subject.unwrap_or_else(|| "admin".into());
    let webhook = Webhook::from_vars(&Vars::spin());
    let body = health_checks::resolve(&db::connect()?, id, &by, &webhook)?;
    Ok(respond::json(200, &body))
}
