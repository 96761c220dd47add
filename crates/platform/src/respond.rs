//! JSON responses. Every error the application returns has the same shape,
//! built by [`crate::error::ApiError`]:
//! `{"error": {"code": "...", "message": "...", "field": "..."?}}`.

use serde::Serialize;
use spin_sdk::http::Response;

use crate::error::ApiError;

/// A JSON response with the given status.
pub fn json<T: Serialize>(status: u16, body: &T) -> Response {
    let bytes = serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec());
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .header("cache-control", "no-store")
        .body(bytes)
        .build()
}

/// `405 Method Not Allowed` with the methods the route accepts.
pub fn method_not_allowed(allowed: &[&str]) -> Response {
    let allow = allowed.join(", ");
    let mut response = ApiError::new(
        405,
        "method_not_allowed",
        format!("this route accepts {allow}"),
    )
    .into_response();
    response.set_header("allow", allow);
    response
}
