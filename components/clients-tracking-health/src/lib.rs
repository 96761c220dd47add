//! `GET /admin/clients/tracking-health` (admin): every client with its
//! tracking-health badge (or none), what the badge means and what to do, its
//! signals and since when; filters `needs_attention`, `outcome`,
//! `client_type`; red first, then the longest-standing.

use serde::Deserialize;
use serde_json::{json, Value};
use spin_sdk::http::{Method, Request, Response};
use spin_sdk::http_component;
use spin_sdk::pg4::ParameterValue;

use platform::{auth, db, respond};
use tracking_health::{outcome, OUTCOMES};

const CLIENT_TYPES: [&str; 5] = ["client", "onboarding", "test", "demo", "former"];

const LIST: &str = "
SELECT c.id::text AS client_id, c.name, c.client_type, c.enabled,
       h.outcome, to_char(h.since, 'YYYY-MM-DD') AS since,
       to_char(coalesce(h.detected_at, l.detected_at) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') AS detected_at,
       l.widget_visitors_30d, l.conversation_visitors_30d, l.form_submits_30d,
       l.widget_prior_23d, l.widget_last_7d, l.outcome AS verdict
  FROM clients c
  LEFT JOIN client_tracking_health h ON h.client_id = c.id
  LEFT JOIN LATERAL (
        SELECT * FROM client_tracking_health_history x
         WHERE x.client_id = c.id ORDER BY x.day DESC LIMIT 1) l ON true
 WHERE ($1::text IS NULL OR ($1::text = 'true') = (h.client_id IS NOT NULL))
   AND ($2::text IS NULL OR h.outcome = $2::text)
   AND ($3::text IS NULL OR c.client_type = $3::text)
 ORDER BY (h.color = 'red') DESC NULLS LAST, h.since ASC NULLS LAST, c.name, c.id";

fn bad_filter(field: &str, value: &str, allowed: &[&str]) -> Response {
    let message = format!(
        "{field}={value:?} is not allowed; use one of: {}",
        allowed.join(", ")
    );
    respond::json(
        400,
        &respond::error_body("invalid_filter", &message, Some(field)),
    )
}

/// The query string's filters, validated: `(needs_attention, outcome, client_type)`.
type Filters = (Option<String>, Option<String>, Option<String>);

fn filters(query: &str) -> Result<Filters, Response> {
    let (mut attention, mut outcome_filter, mut client_type) = (None, None, None);
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "needs_attention" if ["true", "false"].contains(&v) => attention = Some(v.to_string()),
            "needs_attention" => return Err(bad_filter(k, v, &["true", "false"])),
            "outcome" if outcome(v).is_some() => outcome_filter = Some(v.to_string()),
            "outcome" => {
                let names: Vec<&str> = OUTCOMES.iter().map(|o| o.name).collect();
                return Err(bad_filter(k, v, &names));
            }
            "client_type" if CLIENT_TYPES.contains(&v) => client_type = Some(v.to_string()),
            "client_type" => return Err(bad_filter(k, v, &CLIENT_TYPES)),
            other => {
                let message = format!("unknown parameter {other:?}; the filters are needs_attention, outcome, client_type");
                return Err(respond::json(
                    400,
                    &respond::error_body("invalid_filter", &message, Some(other)),
                ));
            }
        }
    }
    Ok((attention, outcome_filter, client_type))
}

/// A row of `LIST`.
#[derive(Deserialize)]
struct Row {
    client_id: String,
    name: Option<String>,
    client_type: Option<String>,
    enabled: bool,
    outcome: Option<String>,
    since: Option<String>,
    detected_at: Option<String>,
    widget_visitors_30d: Option<i64>,
    conversation_visitors_30d: Option<i64>,
    form_submits_30d: Option<i64>,
    widget_prior_23d: Option<i64>,
    widget_last_7d: Option<i64>,
    verdict: Option<String>,
}

fn text(p: Option<String>) -> ParameterValue {
    p.map(ParameterValue::Str).unwrap_or(ParameterValue::DbNull)
}

#[http_component]
fn handle(req: Request) -> Response {
    if *req.method() != Method::Get {
        return respond::method_not_allowed(&["GET"]);
    }
    if let Err(refusal) = auth::admin_or_refusal(&req) {
        return refusal;
    }
    let (attention, outcome_filter, client_type) = match filters(req.query()) {
        Ok(f) => f,
        Err(response) => return response,
    };
    let rows: Vec<Row> = match db::connect().and_then(|conn| {
        conn.rows(
            LIST,
            &[text(attention), text(outcome_filter), text(client_type)],
        )
    }) {
        Ok(rows) => rows,
        Err(e) => return respond::db_failure(&e, ""),
    };
    let clients: Vec<Value> = rows
        .into_iter()
        .map(|r| {
            let badge = r.outcome.as_deref().and_then(outcome).map(|o| {
                json!({
                    "outcome": o.name, "color": o.color, "meaning": o.meaning,
                    "what_to_do": o.what_to_do, "since": r.since,
                })
            });
            let signals = r.widget_visitors_30d.map(|_| {
                json!({
                    "widget_visitors_30d": r.widget_visitors_30d,
                    "conversation_visitors_30d": r.conversation_visitors_30d,
                    "form_submits_30d": r.form_submits_30d, "widget_prior_23d": r.widget_prior_23d,
                    "widget_last_7d": r.widget_last_7d, "verdict": r.verdict,
                    "detected_at": r.detected_at,
                })
            });
            json!({
                "client_id": r.client_id, "name": r.name, "client_type": r.client_type,
                "enabled": r.enabled, "badge": badge, "signals": signals,
            })
        })
        .collect();
    respond::json(200, &json!({ "count": clients.len(), "clients": clients }))
}
