//! `POST /admin/tracking-health/detect` (admin): runs the detector now, or as
//! of an instant (`{"as_of": "<RFC 3339>"}`) for backfills and replays, and
//! answers the counts per outcome. A run already in progress (the nightly
//! cron or another click) holds the job's lock: this one answers 409 rather
//! than wait, and the caller may retry.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use spin_sdk::http::{Method, Request, Response};
use spin_sdk::http_component;

use platform::jobs::{self, Outcome, Trigger};
use platform::{auth, respond};
use tracking_health::{run_detection, AsOf, Thresholds, JOB_NAME};

fn bad_request(code: &str, message: &str, field: Option<&str>) -> Response {
    respond::json(400, &respond::error_body(code, message, field))
}

/// The `as_of` of the body: now when absent; never in the future.
fn as_of(body: &[u8], now: DateTime<Utc>) -> Result<AsOf, Response> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(AsOf::Now);
    }
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        bad_request(
            "malformed_json",
            &format!("the body is not valid JSON: {e}"),
            None,
        )
    })?;
    match value.get("as_of") {
        None | Some(Value::Null) => Ok(AsOf::Now),
        Some(Value::String(s)) => {
            let t = DateTime::parse_from_rfc3339(s)
                .map_err(|_| {
                    bad_request(
                        "invalid_field",
                        &format!("as_of {s:?} is not an RFC 3339 timestamp"),
                        Some("as_of"),
                    )
                })?
                .with_timezone(&Utc);
            if t > now {
                return Err(bad_request(
                    "invalid_field",
                    "as_of is in the future",
                    Some("as_of"),
                ));
            }
            Ok(AsOf::At(t))
        }
        Some(_) => Err(bad_request(
            "invalid_field",
            "as_of must be an RFC 3339 string",
            Some("as_of"),
        )),
    }
}

#[http_component]
fn handle(req: Request) -> Response {
    if *req.method() != Method::Post {
        return respond::method_not_allowed(&["POST"]);
    }
    if let Err(refusal) = auth::admin_or_refusal(&req) {
        return refusal;
    }
    let as_of = match as_of(req.body(), Utc::now()) {
        Ok(t) => t,
        Err(response) => return response,
    };
    let thresholds = match Thresholds::from_variables() {
        Ok(t) => t,
        Err(e) => return respond::error(500, "misconfigured", &format!("{e:#}")),
    };
    match jobs::run(JOB_NAME, Trigger::Http, |conn| {
        run_detection(conn, as_of, &thresholds)
    }) {
        Ok(report) => match report.outcome {
            Outcome::Succeeded(detail) => respond::json(
                200,
                &json!({ "run_id": report.run_id, "as_of": detail["as_of"], "counts": detail["counts"] }),
            ),
            Outcome::Skipped => respond::error(
                409,
                "detection_running",
                "another tracking-health detection is running; try again when it has finished",
            ),
        },
        Err(e) if e.unavailable => respond::error(503, "database_unavailable", &e.message),
        Err(e) => respond::error(500, "detection_failed", &e.message),
    }
}
