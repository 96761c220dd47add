//! The `POST /v1/leads` body: parsing with errors that name the field, and the
//! limits every field must respect.

use serde::Deserialize;
use serde_json::{Map, Value};

use platform::ApiError;

/// Largest accepted body.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
const MAX_TEXT: usize = 500;
const MAX_URL: usize = 2048;
const MAX_ID: usize = 200;
const MAX_FIELDS: usize = 100;
const MAX_JSON_BYTES: usize = 16 * 1024;

/// Address fields, as given by the visitor or extracted by the chat assistant.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct AddressFields {
    pub city: Option<String>,
    pub state: Option<String>,
    pub zip: Option<String>,
    pub country: Option<String>,
}

/// The request body. Unknown top-level fields are refused (a typo such as
/// `emial` would otherwise lose data silently); free-form data goes in `fields`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeadRequest {
    pub client_id: String,
    pub event_id: String,
    pub anonymous_id: Option<String>,
    pub session_id: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub city: Option<String>,
    pub state: Option<String>,
    pub zip: Option<String>,
    pub country: Option<String>,
    /// What a chat assistant extracted; its address fields use the same names.
    pub ai_context: Option<Map<String, Value>>,
    pub page_url: Option<String>,
    pub fbc: Option<String>,
    pub fbp: Option<String>,
    pub gclid: Option<String>,
    pub gbraid: Option<String>,
    pub wbraid: Option<String>,
    /// Consent flags, e.g. `{"ads": false}`; `ads: false` keeps the lead away
    /// from ad platforms.
    pub consent: Option<Map<String, Value>>,
    pub fields: Option<Map<String, Value>>,
}

impl LeadRequest {
    /// The visitor's own address fields.
    pub fn user_address(&self) -> AddressFields {
        AddressFields {
            city: self.city.clone(),
            state: self.state.clone(),
            zip: self.zip.clone(),
            country: self.country.clone(),
        }
    }

    /// The address fields of `ai_context` (strings only).
    pub fn ai_address(&self) -> AddressFields {
        let get = |k: &str| {
            self.ai_context
                .as_ref()
                .and_then(|m| m.get(k))
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        AddressFields {
            city: get("city"),
            state: get("state"),
            zip: get("zip"),
            country: get("country"),
        }
    }

    /// Whether the visitor refused ads (consent `ads` is false).
    pub fn ads_refused(&self) -> bool {
        self.consent
            .as_ref()
            .and_then(|c| c.get("ads"))
            .and_then(Value::as_bool)
            == Some(false)
    }
}

/// Parses and checks a body. Strings are trimmed; empty strings become absent.
pub fn parse(body: &[u8]) -> Result<LeadRequest, ApiError> {
    if body.len() > MAX_BODY_BYTES {
        return Err(ApiError::new(
            413,
            "body_too_large",
            format!(
                "the body is {} bytes; the limit is {MAX_BODY_BYTES}",
                body.len()
            ),
        ));
    }
    let mut lead: LeadRequest = platform::json::parse_body(body)?;
    for (name, value) in [
        ("anonymous_id", &mut lead.anonymous_id),
        ("session_id", &mut lead.session_id),
        ("email", &mut lead.email),
        ("phone", &mut lead.phone),
        ("first_name", &mut lead.first_name),
        ("last_name", &mut lead.last_name),
        ("city", &mut lead.city),
        ("state", &mut lead.state),
        ("zip", &mut lead.zip),
        ("country", &mut lead.country),
        ("page_url", &mut lead.page_url),
        ("fbc", &mut lead.fbc),
        ("fbp", &mut lead.fbp),
        ("gclid", &mut lead.gclid),
        ("gbraid", &mut lead.gbraid),
        ("wbraid", &mut lead.wbraid),
    ] {
        *value = value
            .take()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty());
        let limit = match name {
            "page_url" => MAX_URL,
            "anonymous_id" | "session_id" => MAX_ID,
            _ => MAX_TEXT,
        };
        if let Some(v) = value {
            if v.chars().count() > limit {
                return Err(ApiError::invalid(
                    name,
                    format!("{name} is longer than {limit} characters"),
                ));
            }
        }
    }
    lead.client_id = platform::ids::parse_uuid(lead.client_id.trim())
        .ok_or_else(|| ApiError::invalid("client_id", "client_id must be a UUID"))?;
    lead.event_id = lead.event_id.trim().to_string();
    if lead.event_id.is_empty() || lead.event_id.len() > MAX_ID {
        return Err(ApiError::invalid(
            "event_id",
            format!("event_id must be 1 to {MAX_ID} characters (it is the idempotency key)"),
        ));
    }
    if let Some(url) = &lead.page_url {
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            return Err(ApiError::invalid(
                "page_url",
                "page_url must be an http(s) URL",
            ));
        }
    }
    if let Some(c) = &lead.country {
        if crate::normalize::country_code(c).is_none() {
            return Err(ApiError::invalid(
                "country",
                "country must be a two-letter ISO 3166-1 code such as US",
            ));
        }
    }
    for (name, map) in [
        ("ai_context", &lead.ai_context),
        ("fields", &lead.fields),
        ("consent", &lead.consent),
    ] {
        if let Some(m) = map {
            if m.len() > MAX_FIELDS || Value::Object(m.clone()).to_string().len() > MAX_JSON_BYTES {
                return Err(ApiError::invalid(
                    name,
                    format!("{name} may have at most {MAX_FIELDS} keys and {MAX_JSON_BYTES} bytes"),
                ));
            }
        }
    }
    if let Some(consent) = &lead.consent {
        if let Some((k, _)) = consent.iter().find(|(_, v)| !v.is_boolean()) {
            return Err(ApiError::invalid(
                &format!("consent.{k}"),
                "consent flags must be true or false",
            ));
        }
    }
    Ok(lead)
}

/// The contact fields after validation.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Contact {
    /// Normalized (trimmed, lower case).
    pub email: Option<String>,
    /// E.164.
    pub phone: Option<String>,
    /// Values that failed validation and were left out (only when the client
    /// accepts leads without a valid email or phone): `{field, value, reason}`.
    pub invalid: Vec<Value>,
}

/// Validates email and phone. With `contact_required` (the client's
/// `lead_contact_required`), an invalid email or phone is a 400 naming it, and
/// a lead needs at least one of them; without it, invalid values are set aside
/// and reported, and the lead is kept. `countries` read national numbers
/// (written without a country code): tried in order, the first that reads
/// the number wins.
pub fn validate_contact(
    lead: &LeadRequest,
    countries: &[&str],
    contact_required: bool,
) -> Result<Contact, ApiError> {
    let mut contact = Contact::default();
    if let Some(raw) = &lead.email {
        match crate::normalize::email(raw) {
            Some(e) => contact.email = Some(e),
            None if contact_required => {
                return Err(ApiError::invalid(
                    "email",
                    format!("{raw:?} is not a valid email address"),
                ))
            }
            None => contact.invalid.push(serde_json::json!({
                "field": "email", "value": raw, "reason": "not a valid email address"
            })),
        }
    }
    if let Some(raw) = &lead.phone {
        let mut parsed = crate::normalize::phone_e164(raw, None);
        for country in countries {
            if parsed.is_ok() {
                break;
            }
            parsed = crate::normalize::phone_e164(raw, Some(country)).map_err(|e| {
                // Report the reason for the most likely country (the first).
                match &parsed {
                    Err(first) if *country != countries[0] => first.clone(),
                    _ => e,
                }
            });
        }
        match parsed {
            Ok(p) => contact.phone = Some(p),
            Err(reason) if contact_required => {
                return Err(ApiError::invalid(
                    "phone",
                    format!("{raw:?} is not a valid phone number: {reason}"),
                ))
            }
            Err(reason) => contact.invalid.push(serde_json::json!({
                "field": "phone", "value": raw, "reason": reason
            })),
        }
    }
    if contact_required && contact.email.is_none() && contact.phone.is_none() {
        return Err(ApiError::invalid(
            "email",
            "a lead needs a valid email or phone (this client does not accept leads without one)",
        ));
    }
    Ok(contact)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLIENT: &str = "6f1c2a3e-1111-4c4c-9d9d-0123456789ab";

    fn body(extra: &str) -> Vec<u8> {
        format!(r#"{{"client_id":"{CLIENT}","event_id":"ev-1"{extra}}}"#).into_bytes()
    }

    #[test]
    fn a_minimal_lead_parses_and_trims() {
        let l = parse(&body(
            r#","email":"  A@B.co ","city":" ","ai_context":{"city":"Miami"}"#,
        ))
        .unwrap();
        assert_eq!(l.email.as_deref(), Some("A@B.co"));
        assert_eq!(l.city, None);
        assert_eq!(l.ai_address().city.as_deref(), Some("Miami"));
        assert!(!l.ads_refused());
    }

    #[test]
    fn errors_name_the_field() {
        let e = parse(&body(r#","email":5"#)).unwrap_err();
        assert_eq!(
            (e.status, e.code, e.field.as_deref()),
            (400, "invalid_field", Some("email"))
        );
        let e = parse(&body(r#","emial":"x@y.z""#)).unwrap_err();
        assert!(e.message.contains("unknown field `emial`"), "{}", e.message);
        let e = parse(b"{not json").unwrap_err();
        assert_eq!(e.code, "malformed_json");
        let e = parse(br#"{"event_id":"x"}"#).unwrap_err();
        assert!(
            e.message.contains("missing field `client_id`"),
            "{}",
            e.message
        );
        let e = parse(&body(r#","consent":{"ads":"no"}"#)).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("consent.ads"));
        let e = parse(&body(r#","country":"United States""#)).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("country"));
        let e = parse(&body(r#","page_url":"javascript:alert(1)""#)).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("page_url"));
        let e = parse(br#"{"client_id":"nope","event_id":"x"}"#).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("client_id"));
        let e = parse(&body(&format!(r#","first_name":"{}""#, "x".repeat(501)))).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("first_name"));
    }

    #[test]
    fn oversized_bodies_are_413() {
        let big = body(&format!(
            r#","fields":{{"note":"{}"}}"#,
            "x".repeat(MAX_BODY_BYTES)
        ));
        assert_eq!(parse(&big).unwrap_err().status, 413);
    }

    #[test]
    fn ads_consent_refusal_is_read() {
        assert!(parse(&body(r#","consent":{"ads":false}"#))
            .unwrap()
            .ads_refused());
        assert!(!parse(&body(r#","consent":{"ads":true}"#))
            .unwrap()
            .ads_refused());
    }

    #[test]
    fn contact_rules_depend_on_the_client() {
        let l = parse(&body(r#","email":"not-an-email","phone":"(415) 555-0123""#)).unwrap();
        let e = validate_contact(&l, &["US"], true).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("email"));
        let c = validate_contact(&l, &["US"], false).unwrap();
        assert_eq!(c.email, None);
        assert_eq!(c.phone.as_deref(), Some("+14155550123"));
        assert_eq!(c.invalid[0]["field"], "email");

        let l = parse(&body(r#","email":"jane@example.com","phone":"12""#)).unwrap();
        assert_eq!(
            validate_contact(&l, &["US"], true)
                .unwrap_err()
                .field
                .as_deref(),
            Some("phone")
        );
        assert_eq!(
            validate_contact(&l, &["US"], false)
                .unwrap()
                .email
                .as_deref(),
            Some("jane@example.com")
        );

        // A national number is read with the first country that fits it.
        let l = parse(&body(r#","phone":"030 1234567""#)).unwrap();
        let c = validate_contact(&l, &["US", "DE"], true).unwrap();
        assert_eq!(c.phone.as_deref(), Some("+49301234567"));
        let l = parse(&body(r#","phone":"+44 20 7946 0958""#)).unwrap();
        assert_eq!(
            validate_contact(&l, &["US"], true)
                .unwrap()
                .phone
                .as_deref(),
            Some("+442079460958")
        );

        let l = parse(&body("")).unwrap();
        assert!(validate_contact(&l, &[], true).is_err());
        assert_eq!(
            validate_contact(&l, &[], false).unwrap(),
            Contact::default()
        );
    }
}
