//! `POST /admin/privacy/erase` and `POST /admin/privacy/export` (admin): a
//! data subject's request about one person of a client, named by
//! `anonymous_id`, `email` and/or `phone` in the body (never in the URL,
//! which access logs keep). See `privacy::requests` and docs/PRIVACY.md.

use spin_sdk::http::{Method, Request, Response};
use spin_sdk::http_component;

use platform::request::header;
use platform::{auth, db, respond, ApiError};
use privacy::{person, requests};

#[http_component]
fn handle(req: Request) -> Response {
    match req.method() {
        Method::Post => answer(&req).unwrap_or_else(ApiError::into_response),
        _ => respond::method_not_allowed(&["POST"]),
    }
}

fn answer(req: &Request) -> Result<Response, ApiError> {
    let caller = auth::admin(req)?;
    let request = person::parse(req.body())?;
    let db = db::connect()?;
    let who = requests::resolve(&db, request)?;
    let by = caller.subject.as_deref();
    let body = match header(req, "spin-matched-route") {
        Some("/admin/privacy/export") => requests::export(&db, &who, by)?,
        _ => requests::erase(&db, &who, by)?,
    };
    Ok(respond::json(200, &body))
}
