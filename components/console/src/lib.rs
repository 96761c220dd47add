//! `GET /console/...`: the operator console, static files embedded in the
//! component. What is served and how (types, ETags, cache, CSP, 404s) is
//! `console_assets::serve`; this only carries Spin's request and response.

use spin_sdk::http::{Request, Response};
use spin_sdk::http_component;

#[http_component]
fn handle(req: Request) -> Response {
    let header = |name: &str| req.header(name).and_then(|v| v.as_str());
    let method = req.method().to_string();
    let reply = console_assets::serve(&console_assets::Request {
        method: &method,
        path: req.path(),
        path_info: header("spin-path-info").unwrap_or(""),
        query: req.query(),
        if_none_match: header("if-none-match"),
    });
    let mut response = Response::builder();
    response.status(reply.status);
    for (name, value) in reply.headers {
        response.header(name, value);
    }
    response.body(reply.body.into_owned()).build()
}
