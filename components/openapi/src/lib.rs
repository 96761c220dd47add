//! `GET /openapi.json` and `GET /openapi.yaml`: the HTTP contract
//! (docs/openapi.yaml, OpenAPI 3.1), so a running deployment describes itself.

use spin_sdk::http::{Method, Request, Response};
use spin_sdk::http_component;

use platform::respond;

const YAML: &str = include_str!("../../../docs/openapi.yaml");
const JSON: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/openapi.json"));

#[http_component]
fn handle(req: Request) -> Response {
    if !matches!(req.method(), Method::Get | Method::Head) {
        return respond::method_not_allowed(&["GET", "HEAD"]);
    }
    let (content_type, body) = if req.path().ends_with(".yaml") {
        ("application/yaml", YAML.as_bytes())
    } else {
        ("application/json", JSON)
    };
    Response::builder()
        .status(200)
        .header("content-type", content_type)
        .header("cache-control", "public, max-age=300")
        .header("access-control-allow-origin", "*")
        .body(body.to_vec())
        .build()
}
