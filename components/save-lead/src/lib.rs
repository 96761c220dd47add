//! `POST /v1/leads` (and its CORS preflight): stores a lead, enriches it,
//! queues and tries its conversions. The logic is `leads::endpoint`
//! (crates/leads).

use spin_sdk::http::{Method, Request, Response};
use spin_sdk::http_component;

#[http_component]
fn handle(req: Request) -> Response {
    match req.method() {
        Method::Options => platform::cors::preflight(&req, "leads"),
        Method::Post => leads::endpoint::save(&req),
        _ => platform::respond::method_not_allowed(&["POST", "OPTIONS"]),
    }
}
