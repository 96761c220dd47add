//! Outbound HTTP with a deadline. `spin_sdk::http::send` sets no timeouts, and
//! a geo lookup or an ad platform that hangs must not hold a request open, so
//! this sends through `wasi:http/outgoing-handler` directly: transport
//! timeouts in `request-options` (honoured by Spin and by the local host), and
//! an overall deadline enforced by polling the response against a clock.

use std::time::Duration;

use wasi::clocks::monotonic_clock;
use wasi::http::outgoing_handler;
use wasi::http::types::{
    ErrorCode, Fields, IncomingBody, Method, OutgoingBody, OutgoingRequest, RequestOptions, Scheme,
};
use wasi::io::poll;
use wasi::io::streams::StreamError;

/// A request to send.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpRequest {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// What came back. Only the first `max_body` bytes of the body are kept.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The first value of a header (names compared case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Why no response came back.
#[derive(Debug, Clone, PartialEq)]
pub enum SendError {
    /// The deadline passed first.
    Timeout,
    /// The destination is not in the component's `allowed_outbound_hosts`.
    Denied,
    /// The URL could not be used.
    BadUrl(String),
    /// Connection refused, DNS failure, protocol error...
    Failed(String),
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendError::Timeout => f.write_str("timed out"),
            SendError::Denied => f.write_str("destination not allowed by allowed_outbound_hosts"),
            SendError::BadUrl(m) => write!(f, "bad URL: {m}"),
            SendError::Failed(m) => f.write_str(m),
        }
    }
}

const MAX_BODY: usize = 256 * 1024;

/// Splits `scheme://authority/path?query`.
fn split_url(url: &str) -> Result<(Scheme, &str, &str), SendError> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| SendError::BadUrl(format!("{url:?} has no scheme")))?;
    let scheme = match scheme.to_ascii_lowercase().as_str() {
        "http" => Scheme::Http,
        "https" => Scheme::Https,
        other => {
            return Err(SendError::BadUrl(format!(
                "scheme {other:?} is not http(s)"
            )))
        }
    };
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() {
        return Err(SendError::BadUrl(format!("{url:?} has no host")));
    }
    Ok((scheme, authority, path))
}

fn error_code(e: ErrorCode) -> SendError {
    match e {
        ErrorCode::HttpRequestDenied => SendError::Denied,
        ErrorCode::ConnectionTimeout
        | ErrorCode::ConnectionReadTimeout
        | ErrorCode::ConnectionWriteTimeout
        | ErrorCode::HttpResponseTimeout
        | ErrorCode::DnsTimeout => SendError::Timeout,
        other => SendError::Failed(format!("{other:?}")),
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Sends `req` and waits at most `timeout` for the whole response.
pub fn send(req: &HttpRequest, timeout: Duration) -> Result<HttpResponse, SendError> {
    let deadline = monotonic_clock::now().saturating_add(nanos(timeout));
    let (scheme, authority, path) = split_url(&req.url)?;
    let headers: Vec<(String, Vec<u8>)> = req
        .headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.as_bytes().to_vec()))
        .collect();
    let fields =
        Fields::from_list(&headers).map_err(|e| SendError::BadUrl(format!("bad header: {e:?}")))?;
    let request = OutgoingRequest::new(fields);
    let method = match req.method.to_ascii_uppercase().as_str() {
        "GET" => Method::Get,
        "POST" => Method::Post,
        "PUT" => Method::Put,
        "DELETE" => Method::Delete,
        "PATCH" => Method::Patch,
        other => Method::Other(other.to_string()),
    };
    let bad = |what: &str| SendError::BadUrl(format!("invalid {what} in {:?}", req.url));
    request.set_method(&method).map_err(|_| bad("method"))?;
    request
        .set_scheme(Some(&scheme))
        .map_err(|_| bad("scheme"))?;
    request
        .set_authority(Some(authority))
        .map_err(|_| bad("authority"))?;
    request
        .set_path_with_query(Some(path))
        .map_err(|_| bad("path"))?;
    let body = request
        .body()
        .map_err(|_| SendError::Failed("request body unavailable".into()))?;

    let options = RequestOptions::new();
    let t = Some(nanos(timeout));
    // Hosts may not support every option; the deadline below still holds.
    let _ = options.set_connect_timeout(t);
    let _ = options.set_first_byte_timeout(t);
    let _ = options.set_between_bytes_timeout(t);
    let future = outgoing_handler::handle(request, Some(options)).map_err(error_code)?;

    write_body(body, &req.body)?;

    let timer = monotonic_clock::subscribe_instant(deadline);
    let response = loop {
        if let Some(result) = future.get() {
            break result
                .map_err(|_| SendError::Failed("response already taken".into()))?
                .map_err(error_code)?;
        }
        let ready = future.subscribe();
        poll::poll(&[&ready, &timer]);
        if timer.ready() && future.get().is_none() {
            return Err(SendError::Timeout);
        }
    };
    let status = response.status();
    let headers = response
        .headers()
        .entries()
        .into_iter()
        .map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned()))
        .collect();
    let incoming = response
        .consume()
        .map_err(|_| SendError::Failed("response body unavailable".into()))?;
    let body = read_body(incoming, &timer)?;
    Ok(HttpResponse {
        status,
        headers,
        body,
    })
}

fn write_body(body: OutgoingBody, bytes: &[u8]) -> Result<(), SendError> {
    {
        let stream = body
            .write()
            .map_err(|_| SendError::Failed("request body stream unavailable".into()))?;
        // blocking_write_and_flush takes at most 4096 bytes at a time.
        for chunk in bytes.chunks(4096) {
            stream
                .blocking_write_and_flush(chunk)
                .map_err(|e| SendError::Failed(format!("writing the request body: {e:?}")))?;
        }
    }
    OutgoingBody::finish(body, None)
        .map_err(|e| SendError::Failed(format!("finishing the request body: {e:?}")))
}

fn read_body(incoming: IncomingBody, timer: &poll::Pollable) -> Result<Vec<u8>, SendError> {
    let mut out = Vec::new();
    {
        let stream = incoming
            .stream()
            .map_err(|_| SendError::Failed("response body stream unavailable".into()))?;
        loop {
            match stream.read(64 * 1024) {
                Ok(chunk) if chunk.is_empty() => {
                    let ready = stream.subscribe();
                    poll::poll(&[&ready, timer]);
                    if timer.ready() && !ready.ready() {
                        return Err(SendError::Timeout);
                    }
                }
                Ok(chunk) => {
                    let room = MAX_BODY.saturating_sub(out.len());
                    out.extend_from_slice(&chunk[..chunk.len().min(room)]);
                }
                Err(StreamError::Closed) => break,
                Err(e) => return Err(SendError::Failed(format!("reading the response: {e:?}"))),
            }
        }
    }
    let _ = IncomingBody::finish(incoming);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_scheme_authority_and_path() {
        let (s, a, p) = split_url("https://graph.facebook.com/v21.0/123/events?x=1").unwrap();
        assert!(matches!(s, Scheme::Https));
        assert_eq!((a, p), ("graph.facebook.com", "/v21.0/123/events?x=1"));
        let (s, a, p) = split_url("http://127.0.0.1:8080").unwrap();
        assert!(matches!(s, Scheme::Http));
        assert_eq!((a, p), ("127.0.0.1:8080", "/"));
        let (_, a, p) = split_url("http://h?q=1").unwrap();
        assert_eq!((a, p), ("h", "?q=1"));
        assert!(split_url("ftp://x/").is_err());
        assert!(split_url("no-scheme").is_err());
        assert!(split_url("http:///path").is_err());
    }
}
