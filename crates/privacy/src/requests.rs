//! Erasing and exporting a person (`POST /admin/privacy/erase|export`):
//! each one SQL function call, so one transaction — an erase interrupted
//! mid-way erases nothing — recorded in `privacy_requests` with hashes only.

use serde::Deserialize;
use serde_json::{json, Value};

use spin_sdk::pg4::ParameterValue;

use platform::db::{text_or_null, Db};
use platform::ApiError;

use crate::person::{Person, Request};

/// Events listed in one export, newest first (the rest are counted by the
/// analytics rollups, which hold no identifiers).
pub const MAX_EXPORT_EVENTS: i32 = 10_000;

#[derive(Deserialize)]
struct ClientRow {
    default_country: Option<String>,
}

/// The person of a known client: 404 when the client does not exist.
pub fn resolve(db: &Db, request: Request) -> Result<Person, ApiError> {
    let client: Option<ClientRow> = db.row(
        "SELECT default_country FROM clients WHERE id = $1::text::uuid",
        &[request.client_id.clone().into()],
    )?;
    let Some(client) = client else {
        return Err(ApiError::new(
            404,
            "client_not_found",
            format!("no client {}", request.client_id),
        )
        .field("client_id"));
    };
    request.person(client.default_country.as_deref())
}

fn who(p: &Person, requested_by: Option<&str>) -> Vec<ParameterValue> {
    vec![
        p.client_id.clone().into(),
        text_or_null(p.anonymous_id.as_deref()),
        text_or_null(p.email.as_deref()),
        text_or_null(p.phone.as_deref()),
        ParameterValue::Jsonb(p.hashes().to_string().into_bytes()),
        text_or_null(requested_by),
    ]
}

/// Erases everything stored about `p` (the answer counts rows per table);
/// 409 while one of their deliveries is being sent, so a cancelled event
/// is never sent. Asking again erases nothing more and answers zeros.
pub fn erase(db: &Db, p: &Person, requested_by: Option<&str>) -> Result<Value, ApiError> {
    let outcome: Value = db.value(
        "SELECT privacy_erase($1::text::uuid, $2::text, $3::text, $4::text, $5::jsonb, $6::text) AS outcome",
        &who(p, requested_by),
    )?;
    erase_answer(&p.client_id, outcome)
}

/// The answer to an erase from what `privacy_erase` returned.
pub fn erase_answer(client_id: &str, outcome: Value) -> Result<Value, ApiError> {
    if let Some(seconds) = outcome.get("in_flight_seconds").and_then(Value::as_f64) {
        return Err(ApiError::new(
            409,
            "delivery_in_flight",
            format!(
                "a conversion of this person is being sent right now; nothing was erased; try again in {} s",
                seconds.max(1.0)
            ),
        ));
    }
    Ok(json!({ "client_id": client_id, "erased": outcome["erased"] }))
}

/// Everything stored about `p`, as one JSON document.
pub fn export(db: &Db, p: &Person, requested_by: Option<&str>) -> Result<Value, ApiError> {
    let mut params = who(p, requested_by);
    params.push(MAX_EXPORT_EVENTS.into());
    let data: Value = db.value(
        "SELECT privacy_export($1::text::uuid, $2::text, $3::text, $4::text, $5::jsonb, $6::text, $7::int4) AS data",
        &params,
    )?;
    Ok(json!({ "client_id": p.client_id, "max_events": MAX_EXPORT_EVENTS, "data": data }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_leased_delivery_refuses_the_erase_with_the_wait() {
        let e = erase_answer("c", json!({"in_flight_seconds": 12.0})).unwrap_err();
        assert_eq!((e.status, e.code), (409, "delivery_in_flight"));
        assert!(e.message.contains("12 s"), "{}", e.message);
        let ok = erase_answer("c", json!({"erased": {"leads": 1}})).unwrap();
        assert_eq!(ok, json!({"client_id": "c", "erased": {"leads": 1}}));
    }
}
