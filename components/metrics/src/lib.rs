//! `GET /metrics`: operational figures from Postgres in the Prometheus text
//! format (crates/ops-metrics). A scraper sends
//! `Authorization: Bearer <metrics_scrape_token>` (empty disables it) or an
//! admin JWT.

use spin_sdk::http::{Method, Request, Response};
use spin_sdk::http_component;

use ops_metrics::{exposition, scrape, Config};
use platform::vars::Vars;
use platform::{auth, db, respond, ApiError};

#[http_component]
fn handle(req: Request) -> Response {
    match req.method() {
        Method::Get => answer(&req).unwrap_or_else(ApiError::into_response),
        _ => respond::method_not_allowed(&["GET"]),
    }
}

fn answer(req: &Request) -> Result<Response, ApiError> {
    let vars = Vars::spin();
    if !auth::bearer_is(req, &vars.text("metrics_scrape_token")?) {
        auth::admin(req)?;
    }
    let text = scrape(&db::connect()?, &Config::from_vars(&vars)?)?;
    Ok(Response::builder()
        .status(200)
        .header("content-type", exposition::CONTENT_TYPE)
        .header("cache-control", "no-store")
        .body(text)
        .build())
}
