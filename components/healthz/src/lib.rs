//! `GET /healthz`: the application version and whether Postgres answers.
//! 200 when it does, 503 with the error when it does not. Liveness and
//! readiness probes call it.

use serde_json::json;
use spin_sdk::http::{Method, Request, Response};
use spin_sdk::http_component;

use platform::{db, respond};

#[http_component]
fn handle(req: Request) -> Response {
    if !matches!(req.method(), Method::Get | Method::Head) {
        return respond::method_not_allowed(&["GET", "HEAD"]);
    }
    let started = std::time::Instant::now();
    let database =
        db::connect().and_then(|conn| match conn.value::<i32>("SELECT 1 AS one", &[])? {
            1 => Ok(()),
            other => Err(db::DbError::failed(format!("SELECT 1 answered {other}"))),
        });
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    match database {
        Ok(()) => respond::json(
            200,
            &json!({
                "status": "ok",
                "version": platform::VERSION,
                "database": { "ok": true, "latency_ms": latency_ms },
            }),
        ),
        Err(e) => respond::json(
            503,
            &json!({
                "status": "unavailable",
                "version": platform::VERSION,
                "database": { "ok": false, "error": e.to_string() },
            }),
        ),
    }
}
