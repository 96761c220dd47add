//! `GET /admin/clients/tracking-health` (admin): every client with its
//! tracking-health badge; see `tracking_health::clients`.

use spin_sdk::http::{Method, Request, Response};
use spin_sdk::http_component;

use platform::{auth, db, respond, ApiError};
use tracking_health::clients::{self, Filters};

#[http_component]
fn handle(req: Request) -> Response {
    match req.method() {
        Method::Get => list(&req).unwrap_or_else(ApiError::into_response),
        _ => respond::method_not_allowed(&["GET"]),
    }
}

fn list(req: &Request) -> Result<Response, ApiError> {
    auth::admin(req)?;
    let filters = Filters::parse(req.query())?;
    Ok(respond::json(
        200,
        &clients::list(&db::connect()?, &filters)?,
    ))
}
