//! `GET /admin/analytics/{client_id}/devices`: see docs/API.md. The logic is
//! `analytics::read` (shared by the seven read components).

use spin_sdk::http::{Request, Response};
use spin_sdk::http_component;

#[http_component]
fn handle(req: Request) -> Response {
    analytics::read::serve(req, analytics::params::Endpoint::Devices)
}
