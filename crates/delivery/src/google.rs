//! Google Ads enhanced conversions for leads:
//! `POST {base}/{version}/customers/{customer_id}:uploadClickConversions`
//! with an OAuth access token and the developer token, `partialFailure` on so
//! one bad conversion does not reject the others.

use serde_json::{json, Map, Value};

use super::{optional, required, ConfigError, Endpoints, Kind, Outcome, Queued};
use platform::outbound::HttpRequest;

pub(crate) fn request(
    config: &Value,
    endpoints: &Endpoints,
    events: &[Queued],
) -> Result<HttpRequest, ConfigError> {
    let customer_id = required(config, "customer_id", Kind::GoogleEc)?.replace('-', "");
    let action = required(config, "conversion_action_id", Kind::GoogleEc)?;
    let token = required(config, "access_token", Kind::GoogleEc)?;
    let developer_token = required(config, "developer_token", Kind::GoogleEc)?;
    let conversions: Vec<Value> = events
        .iter()
        .map(|e| {
            let mut c = match &e.event_payload {
                Value::Object(m) => m.clone(),
                _ => Map::new(),
            };
            c.insert(
                "conversionAction".into(),
                json!(format!(
                    "customers/{customer_id}/conversionActions/{action}"
                )),
            );
            c.insert("conversionDateTime".into(), json!(date_time(e.event_time)));
            c.insert("orderId".into(), json!(e.event_id));
            c.insert("userIdentifiers".into(), e.user_data.clone());
            Value::Object(c)
        })
        .collect();
    let mut headers = vec![
        ("content-type".into(), "application/json".into()),
        ("authorization".into(), format!("Bearer {token}")),
        ("developer-token".into(), developer_token.to_string()),
    ];
    if let Some(login) = optional(config, "login_customer_id") {
        headers.push(("login-customer-id".into(), login.replace('-', "")));
    }
    Ok(HttpRequest {
        method: "POST".into(),
        url: format!(
            "{}/{}/customers/{customer_id}:uploadClickConversions",
            endpoints.google_ads_base_url.trim_end_matches('/'),
            endpoints.google_ads_api_version
        ),
        headers,
        body: json!({ "conversions": conversions, "partialFailure": true })
            .to_string()
            .into_bytes(),
    })
}

/// Google's format: `yyyy-mm-dd hh:mm:ss+00:00`.
fn date_time(unix: i64) -> String {
    chrono::DateTime::from_timestamp(unix, 0)
        .unwrap_or_default()
        .format("%Y-%m-%d %H:%M:%S+00:00")
        .to_string()
}

/// A 200 can still carry a partial failure: the conversions it names were
/// rejected (invalid payload), which retrying will not change.
pub(crate) fn classify_success(body: &str) -> Outcome {
    let v: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    match v.get("partialFailureError") {
        Some(e) if !e.is_null() => Outcome::DeadLetter {
            reason: "rejected".into(),
            error: format!(
                "partial failure: {}",
                e["message"].as_str().unwrap_or("(no message)")
            ),
        },
        _ => Outcome::Resolved,
    }
}
