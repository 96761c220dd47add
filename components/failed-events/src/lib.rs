//! `GET /admin/failed-events` (admin): the backoffice's list of conversion
//! deliveries, newest first; see `delivery::outbox`.

use spin_sdk::http::{Method, Request, Response};
use spin_sdk::http_component;

use delivery::outbox::{self, ListQuery};
use platform::{auth, db, respond, ApiError};

#[http_component]
fn handle(req: Request) -> Response {
    match req.method() {
        Method::Get => list(&req).unwrap_or_else(ApiError::into_response),
        _ => respond::method_not_allowed(&["GET"]),
    }
}

fn list(req: &Request) -> Result<Response, ApiError> {
    auth::admin(req)?;
    let query = ListQuery::parse(req.query())?;
    Ok(respond::json(200, &outbox::list(&db::connect()?, &query)?))
}
