//! `POST /admin/tracking-health/check`: the same check on demand, for the
//! backoffice and for platforms without a cron trigger, whose external
//! scheduler calls this URL with `Authorization: Bearer <platform_cron_token>`
//! (a Spin variable; empty disables it) or an admin JWT. A check already
//! running holds the job lock: 409.

use spin_sdk::http::{Method, Request, Response};
use spin_sdk::http_component;

use health_checks::{run_check, Thresholds, Webhook, JOB_NAME};
use platform::jobs::{self, Outcome, Trigger};
use platform::{auth, respond};

/// Constant-time comparison, so the token cannot be guessed byte by byte.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn is_platform_scheduler(req: &Request) -> bool {
    let token = spin_sdk::variables::get("platform_cron_token").unwrap_or_default();
    let given = req
        .header("authorization")
        .and_then(|h| h.as_str())
        .and_then(|h| h.strip_prefix("Bearer "))
        .unwrap_or_default();
    !token.is_empty() && same(token.as_bytes(), given.trim().as_bytes())
}

#[http_component]
fn handle(req: Request) -> Response {
    if *req.method() != Method::Post {
        return respond::method_not_allowed(&["POST"]);
    }
    if !is_platform_scheduler(&req) {
        if let Err(refusal) = auth::admin_or_refusal(&req) {
            return refusal;
        }
    }
    let thresholds = match Thresholds::from_variables() {
        Ok(t) => t,
        Err(e) => return respond::error(500, "misconfigured", &e),
    };
    let webhook = Webhook::from_variables();
    match jobs::run(JOB_NAME, Trigger::Http, |conn| {
        run_check(conn, &thresholds, &webhook)
    }) {
        Ok(report) => match report.outcome {
            Outcome::Succeeded(mut detail) => {
                detail["run_id"] = serde_json::json!(report.run_id);
                respond::json(200, &detail)
            }
            Outcome::Skipped => respond::error(
                409,
                "check_running",
                "another tracking-health check is running; try again when it has finished",
            ),
        },
        Err(e) if e.unavailable => respond::error(503, "database_unavailable", &e.message),
        Err(e) => respond::error(500, "check_failed", &e.message),
    }
}
