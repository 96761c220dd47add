//! `GET /admin/clients/tracking-health`: every client with its badge (or
//! none), what the badge means and what to do, its signals and since when;
//! filters `needs_attention`, `outcome`, `client_type`; red first, then the
//! longest-standing.

use serde::Deserialize;
use serde_json::{json, Value};
use spin_sdk::pg4::ParameterValue;

use platform::db::Db;
use platform::query::Params;
use platform::ApiError;

use crate::{outcome, OUTCOMES};

pub const CLIENT_TYPES: [&str; 5] = ["client", "onboarding", "test", "demo", "former"];

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

/// The list's filters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filters {
    pub needs_attention: Option<bool>,
    pub outcome: Option<String>,
    pub client_type: Option<String>,
}

impl Filters {
    pub fn parse(raw: &str) -> Result<Filters, ApiError> {
        let p = Params::parse(raw, &["needs_attention", "outcome", "client_type"])?;
        let outcomes: Vec<&str> = OUTCOMES.iter().map(|o| o.name).collect();
        Ok(Filters {
            needs_attention: p.read("needs_attention", "true or false", |v| v.parse().ok())?,
            outcome: p.one_of("outcome", &outcomes)?,
            client_type: p.one_of("client_type", &CLIENT_TYPES)?,
        })
    }
}

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

fn client_json(r: Row) -> Value {
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
}

/// The clients matching `f`, with the count.
pub fn list(db: &Db, f: &Filters) -> Result<Value, ApiError> {
    let text = |v: Option<String>| v.map_or(ParameterValue::DbNull, ParameterValue::Str);
    let rows: Vec<Row> = db.rows(
        LIST,
        &[
            text(f.needs_attention.map(|b| b.to_string())),
            text(f.outcome.clone()),
            text(f.client_type.clone()),
        ],
    )?;
    let clients: Vec<Value> = rows.into_iter().map(client_json).collect();
    Ok(json!({ "count": clients.len(), "clients": clients }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_are_checked_by_name() {
        let f = Filters::parse("needs_attention=true&outcome=widget_stopped").unwrap();
        assert_eq!(f.needs_attention, Some(true));
        assert_eq!(f.outcome.as_deref(), Some("widget_stopped"));
        for (raw, field) in [
            ("needs_attention=yes", "needs_attention"),
            ("outcome=healthy", "outcome"),
            ("client_type=vip", "client_type"),
            ("colour=red", "colour"),
        ] {
            let e = Filters::parse(raw).unwrap_err();
            assert_eq!((e.status, e.field.as_deref()), (400, Some(field)), "{raw}");
        }
    }
}
