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
    let content_type = header(req, "content-type").unwrap_or_default();
    if is_json_media_type(content_type) {
        Ok(())
    } else {
        Err(ApiError::new(
            415,
            "unsupported_content_type",
            format!("content-type must be application/json (or text/plain for sendBeacon), got {content_type:?}"),
        ))
    }
}

/// Whether a `Content-Type` names `application/json` or `text/plain`
/// (parameters such as `; charset=utf-8` allowed, nothing else).
pub fn is_json_media_type(content_type: &str) -> bool {
    let media = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    media == "application/json" || media == "text/plain"
}

#[cfg(test)]
mod tests {
    use super::is_json_media_type;

    #[test]
    fn only_json_or_plain_text_media_types() {
        assert!(is_json_media_type("application/json"));
        assert!(is_json_media_type("Application/JSON; charset=utf-8"));
        assert!(is_json_media_type("text/plain;charset=UTF-8"));
        assert!(!is_json_media_type("application/jsonx"));
        assert!(!is_json_media_type("text/plainx"));
        assert!(!is_json_media_type(""));
    }
}
