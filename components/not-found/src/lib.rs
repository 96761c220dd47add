//! Every path no other route matches (`/...`, the least specific route):
//! a JSON 404 instead of Spin's empty one, so every error of the
//! application has the same shape.

use spin_sdk::http::{Request, Response};
use spin_sdk::http_component;

use platform::ApiError;

#[http_component]
fn handle(req: Request) -> Response {
    let path = req.path().to_string();
    ApiError::new(
        404,
        "not_found",
        format!("no route {path:?}; see /openapi.json"),
    )
    .into_response()
}
