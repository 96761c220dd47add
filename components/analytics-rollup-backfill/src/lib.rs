//! `POST /admin/analytics/rollup` (admin) with `{"from", "to"}` (dates):
//! recomputes the rollups of those dates in every client time zone where
//! they have ended. Shares the nightly job's lock: while it runs the answer
//! is 409. Today (UTC) is refused (it is read from raw events), and so are
//! days past the raw-event retention (their events may be gone).

use chrono::{Duration, NaiveDate, Utc};
use serde_json::{json, Value};
use spin_sdk::http::{Method, Request, Response};
use spin_sdk::http_component;

use analytics::job::{self, Retention, JOB_NAME};
use analytics::params::MAX_RANGE_DAYS;
use platform::jobs::{self, Outcome, Trigger};
use platform::{auth, respond};

fn bad(code: &str, message: &str, field: Option<&str>) -> Response {
    respond::json(400, &respond::error_body(code, message, field))
}

fn date(body: &Value, field: &str) -> Result<NaiveDate, Response> {
    let s = body.get(field).and_then(Value::as_str).ok_or_else(|| {
        bad(
            "missing_field",
            &format!("{field} (YYYY-MM-DD) is required"),
            Some(field),
        )
    })?;
    if s.len() != 10 {
        return Err(bad(
            "invalid_field",
            &format!("{field} {s:?} is not a date (YYYY-MM-DD)"),
            Some(field),
        ));
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| {
        bad(
            "invalid_field",
            &format!("{field} {s:?} is not a date (YYYY-MM-DD)"),
            Some(field),
        )
    })
}

fn range(body: &[u8], today: NaiveDate, r: &Retention) -> Result<(NaiveDate, NaiveDate), Response> {
    let body: Value = serde_json::from_slice(body).map_err(|e| {
        bad(
            "malformed_json",
            &format!("the body is not valid JSON: {e}"),
            None,
        )
    })?;
    let (from, to) = (date(&body, "from")?, date(&body, "to")?);
    if from > to {
        return Err(bad(
            "invalid_field",
            &format!("from {from} is after to {to}"),
            Some("from"),
        ));
    }
    if to >= today {
        return Err(bad(
            "invalid_field",
            &format!("to {to} is not before today ({today} UTC); today is read from raw events"),
            Some("to"),
        ));
    }
    let oldest = today - Duration::days(r.raw_event_days);
    if from < oldest {
        return Err(bad(
            "invalid_field",
            &format!(
                "from {from} is before {oldest}: raw events older than {} days may be gone",
                r.raw_event_days
            ),
            Some("from"),
        ));
    }
    if (to - from).num_days() + 1 > MAX_RANGE_DAYS {
        return Err(bad(
            "invalid_field",
            &format!("at most {MAX_RANGE_DAYS} days at once"),
            Some("from"),
        ));
    }
    Ok((from, to))
}

#[http_component]
fn handle(req: Request) -> Response {
    if *req.method() != Method::Post {
        return respond::method_not_allowed(&["POST"]);
    }
    if let Err(refusal) = auth::admin_or_refusal(&req) {
        return refusal;
    }
    let retention = match Retention::from_variables() {
        Ok(r) => r,
        Err(e) => return respond::error(500, "misconfigured", &format!("{e:#}")),
    };
    let (from, to) = match range(req.body(), Utc::now().date_naive(), &retention) {
        Ok(r) => r,
        Err(response) => return response,
    };
    match jobs::run(JOB_NAME, Trigger::Http, |conn| {
        job::backfill(conn, from, to)
    }) {
        Ok(report) => match report.outcome {
            Outcome::Succeeded(detail) => {
                respond::json(200, &json!({ "run_id": report.run_id, "rollup": detail }))
            }
            Outcome::Skipped => respond::error(
                409,
                "rollup_running",
                "the analytics rollup is running; try again when it has finished",
            ),
        },
        Err(e) if e.unavailable => respond::error(503, "database_unavailable", &e.message),
        Err(e) => respond::error(500, "rollup_failed", &e.message),
    }
}
