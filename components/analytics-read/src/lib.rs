//! `GET /admin/analytics/{client_id}/<endpoint>` (admin, or the client's
//! user): the dashboards' reads (`summary`, `trends`, `events`, `active`,
//! `sessions`, `traffic-sources`, `devices`; docs/API.md). The logic is
//! `analytics::read`.

use spin_sdk::http::{Request, Response};
use spin_sdk::http_component;

#[http_component]
fn handle(req: Request) -> Response {
    analytics::read::serve(&req)
}
