//! Reading a request: headers, the body's content type, route parameters.

use spin_sdk::http::Request;

use crate::error::ApiError;

/// A header's value, when it is there and is text.
pub fn header<'a>(req: &'a Request, name: &str) -> Option<&'a str> {
    req.header(name).and_then(|h| h.as_str())
}

/// A route parameter (`:name` in the route), as Spin passes it.
pub fn path_param<'a>(req: &'a Request, name: &str) -> Option<&'a str> {
    header(req, &format!("spin-path-match-{name}"))
}

/// The body of a widget request is JSON: `application/json`, or
/// `text/plain` (what `navigator.sendBeacon` sends, needing no preflight).
pub fn require_json(req: &Request) -> Result<(), ApiError> {
    let content_type = header(req, "content-type")
        .unwrap_or_default()
        .to_ascii_lowercase();
    if content_type.starts_with("application/json") || content_type.starts_with("text/plain") {
        Ok(())
    } else {
        Err(ApiError::new(
            415,
            "unsupported_content_type",
            format!("content-type must be application/json (or text/plain for sendBeacon), got {content_type:?}"),
        ))
    }
}
