//! JSON responses. Every error the application returns has the same shape:
//! `{"error": {"code": "...", "message": "...", "field": "..."?}}`.

use serde::Serialize;
use serde_json::{json, Value};
use spin_sdk::http::Response;

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

/// The body of an error response; `field` names the input that is wrong, if any.
pub fn error_body(code: &str, message: &str, field: Option<&str>) -> Value {
    let mut error = json!({ "code": code, "message": message });
    if let Some(field) = field {
        error["field"] = json!(field);
    }
    json!({ "error": error })
}

/// An error response: status, a stable machine-readable code and a sentence for people.
pub fn error(status: u16, code: &str, message: &str) -> Response {
    json(status, &error_body(code, message, None))
}

/// `405 Method Not Allowed` with the methods the route accepts.
pub fn method_not_allowed(allowed: &[&str]) -> Response {
    let allow = allowed.join(", ");
    let body = error_body(
        "method_not_allowed",
        &format!("this route accepts {allow}"),
        None,
    );
    let bytes = serde_json::to_vec(&body).unwrap_or_default();
    Response::builder()
        .status(405)
        .header("content-type", "application/json")
        .header("allow", allow)
        .body(bytes)
        .build()
}

/// The answer to a database failure: 503 `database_unavailable` when the
/// database could not be reached (the caller may retry), else 500
/// `database_error`; `context` says what did not happen ("the lead was not stored").
pub fn db_failure(e: &crate::db::DbError, context: &str) -> Response {
    let message = if context.is_empty() {
        e.to_string()
    } else {
        format!("{context}: {e}")
    };
    if e.is_unavailable() {
        error(503, "database_unavailable", &message)
    } else {
        error(500, "database_error", &message)
    }
}
