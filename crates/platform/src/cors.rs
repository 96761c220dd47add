//! CORS for the endpoints the widget calls from customers' pages
//! (`/v1/events`, `/v1/leads`): which origin may call is the component's
//! decision (the client's domain); the answers are the same everywhere.

use spin_sdk::http::Response;

/// Adds the CORS answer for an allowed origin.
pub fn with_cors(mut response: Response, origin: Option<&str>) -> Response {
    if let Some(origin) = origin {
        response.set_header("access-control-allow-origin", origin);
        response.set_header("vary", "Origin");
    }
    response
}

/// The 204 answer to an allowed preflight.
pub fn preflight_allowed(origin: &str) -> Response {
    let response = Response::builder()
        .status(204)
        .header("access-control-allow-methods", "POST, OPTIONS")
        .header("access-control-allow-headers", "content-type")
        .header("access-control-max-age", "600")
        .build();
    with_cors(response, Some(origin))
}

/// The 403 for an origin that may not call.
pub fn origin_refused(origin: &str, what: &str) -> Response {
    crate::respond::error(
        403,
        "origin_not_allowed",
        &format!("origin {origin:?} is not allowed to send {what}"),
    )
}
