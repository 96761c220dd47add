//! `POST /admin/tracking-health/alerts/:id/resolve` (admin): resolves an open
//! alert by hand and sends its notification (or leaves it for the next check
//! when the webhook is down). 404 for no such alert, 409 if already resolved.

use serde_json::json;
use spin_sdk::http::{Method, Request, Response};
use spin_sdk::http_component;
use spin_sdk::pg4::ParameterValue;

use health_checks::{send_notifications, Webhook};
use platform::{auth, db, respond};

#[http_component]
fn handle(req: Request) -> Response {
    if *req.method() != Method::Post {
        return respond::method_not_allowed(&["POST"]);
    }
    let caller = match auth::admin_or_refusal(&req) {
        Ok(c) => c,
        Err(refusal) => return refusal,
    };
    let raw = req
        .header("spin-path-match-id")
        .and_then(|h| h.as_str())
        .unwrap_or_default()
        .to_string();
    let Some(id) = raw.parse::<i64>().ok().filter(|id| *id > 0) else {
        return respond::json(
            400,
            &respond::error_body(
                "invalid_parameter",
                &format!("{raw:?} is not an alert id"),
                Some("id"),
            ),
        );
    };
    let conn = match db::connect() {
        Ok(c) => c,
        Err(e) => return respond::db_failure(&e, ""),
    };
    let by = caller.subject.unwrap_or_else(|| "admin".into());
    #[derive(serde::Deserialize)]
    struct Resolved {
        was_open: bool,
    }
    let resolved = match conn.row::<Resolved>(
        "SELECT was_open FROM resolve_tracking_health_alert($1::int8, $2::text)",
        &[ParameterValue::Int64(id), ParameterValue::Str(by)],
    ) {
        Ok(r) => r,
        Err(e) => return respond::db_failure(&e, ""),
    };
    match resolved.map(|r| r.was_open) {
        None => respond::json(
            404,
            &respond::error_body("unknown_alert", &format!("no alert {id}"), Some("id")),
        ),
        Some(false) => respond::error(
            409,
            "already_resolved",
            &format!("alert {id} is already resolved"),
        ),
        Some(true) => {
            let notified = send_notifications(&conn, &Webhook::from_variables())
                .map(|s| json!({ "sent": s.sent, "waiting": s.failed }))
                .unwrap_or_else(|e| json!({ "error": format!("{e:#}") }));
            respond::json(
                200,
                &json!({ "id": id, "resolution": "manual", "notifications": notified }),
            )
        }
    }
}
