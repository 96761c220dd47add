//! CORS for the endpoints the widget calls from customers' pages
//! (`/v1/events`, `/v1/leads`): an origin may call when it is the page of an
//! enabled client (its `root_domain` or a subdomain, or `localhost` for a
//! client that allows it) — the one named by `?client_id=` when given. Both
//! routes answer their preflights through [`preflight`].

use spin_sdk::http::{Request, Response};
use spin_sdk::pg4::ParameterValue;

use crate::db;
use crate::error::ApiError;
use crate::query::Params;
use crate::request::header;
use crate::site::{self, Site};

/// Whether an enabled client (`client_id`, or any) has a page at `host`.
/// `$1`: the host's candidate root domains; `$2`: whether the host is local.
const CLIENT_FOR_ORIGIN: &str = "
SELECT EXISTS (
       SELECT 1 FROM clients
        WHERE enabled AND ($3::text IS NULL OR id = $3::text::uuid)
          AND (root_domain = ANY($1::text[]) OR ($2::bool AND allow_localhost))) AS allowed";

/// Adds the CORS answer for an allowed origin.
pub fn with_cors(mut response: Response, origin: Option<&str>) -> Response {
    if let Some(origin) = origin {
        response.set_header("access-control-allow-origin", origin);
        response.set_header("vary", "Origin");
    }
    response
}

/// The 403 for an origin that may not call.
pub fn origin_refused(origin: &str, what: &str) -> ApiError {
    ApiError::new(
        403,
        "origin_not_allowed",
        format!("origin {origin:?} is not allowed to send {what}"),
    )
}

/// `OPTIONS` on a widget route that accepts `what` ("events", "leads"):
/// 204 with the CORS headers for an allowed origin, else the error.
pub fn preflight(req: &Request, what: &str) -> Response {
    answer_preflight(req, what).unwrap_or_else(ApiError::into_response)
}

fn answer_preflight(req: &Request, what: &str) -> Result<Response, ApiError> {
    let origin = header(req, "origin").ok_or_else(|| {
        ApiError::new(
            400,
            "missing_origin",
            "a CORS preflight needs an Origin header",
        )
    })?;
    let params = Params::parse(req.query(), &["client_id"])?;
    let client_id = params.read("client_id", "a UUID", crate::ids::parse_uuid)?;
    let host = site::origin_host(origin).ok_or_else(|| origin_refused(origin, what))?;
    let local = Site {
        root_domain: None,
        allow_localhost: true,
    }
    .allows_host(&host);
    let allowed: bool = db::connect()?.value(
        CLIENT_FOR_ORIGIN,
        &[
            site::candidate_roots(&host).into(),
            local.into(),
            client_id.map_or(ParameterValue::DbNull, ParameterValue::Str),
        ],
    )?;
    if !allowed {
        return Err(origin_refused(origin, what));
    }
    let response = Response::builder()
        .status(204)
        .header("access-control-allow-methods", "POST, OPTIONS")
        .header("access-control-allow-headers", "content-type")
        .header("access-control-max-age", "600")
        .build();
    Ok(with_cors(response, Some(origin)))
}
