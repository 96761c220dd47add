//! `POST /v1/events` (and its CORS preflight): the widget's events into
//! Postgres. The logic is `ingest::endpoint` (crates/ingest).

use spin_sdk::http::{Method, Request, Response};
use spin_sdk::http_component;

#[http_component]
fn handle(req: Request) -> Response {
    match req.method() {
        Method::Options => platform::cors::preflight(&req, "events"),
        Method::Post => ingest::endpoint::receive(&req),
        _ => platform::respond::method_not_allowed(&["POST", "OPTIONS"]),
    }
}
