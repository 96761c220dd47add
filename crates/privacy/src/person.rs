//! Who an erase or export request is about: a client and at least one
//! identifier, normalized the way leads are stored (and delivered), so that
//! `Alice@Example.com ` finds the lead saved as `alice@example.com`.

use serde::Deserialize;
use serde_json::{json, Value};

use leads::normalize;
use platform::json::parse_body;
use platform::{ids, ApiError};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Body {
    client_id: String,
    anonymous_id: Option<String>,
    email: Option<String>,
    phone: Option<String>,
}

/// A person of a client, as asked for (before the phone is normalized, which
/// needs the client's default country).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub client_id: String,
    pub anonymous_id: Option<String>,
    pub email: Option<String>,
    phone: Option<String>,
}

/// A person of a client with normalized identifiers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    pub client_id: String,
    pub anonymous_id: Option<String>,
    /// Trimmed and lower-cased, as `leads` stores it.
    pub email: Option<String>,
    /// E.164, as `leads` stores it.
    pub phone: Option<String>,
}

fn given(s: Option<String>) -> Option<String> {
    s.map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}

/// Reads `{client_id, anonymous_id?, email?, phone?}`: 400 when the client
/// id is not a UUID, an identifier is malformed, or none is given.
pub fn parse(body: &[u8]) -> Result<Request, ApiError> {
    let b: Body = parse_body(body)?;
    let client_id = ids::parse_uuid(&b.client_id)
        .ok_or_else(|| ApiError::invalid("client_id", "client_id must be a UUID"))?;
    let anonymous_id = given(b.anonymous_id);
    let email = match given(b.email) {
        Some(raw) => Some(
            normalize::email(&raw)
                .ok_or_else(|| ApiError::invalid("email", "email is not an email address"))?,
        ),
        None => None,
    };
    let phone = given(b.phone);
    if anonymous_id.is_none() && email.is_none() && phone.is_none() {
        return Err(ApiError::bad_request(
            "missing_identifier",
            "body",
            "name the person: anonymous_id, email or phone (at least one)",
        ));
    }
    for (field, value) in [("anonymous_id", &anonymous_id), ("phone", &phone)] {
        if value.as_ref().is_some_and(|v| v.chars().count() > 254) {
            return Err(ApiError::invalid(
                field,
                format!("{field} is longer than 254 characters"),
            ));
        }
    }
    Ok(Request {
        client_id,
        anonymous_id,
        email,
        phone,
    })
}

impl Request {
    /// The person, the phone read with the client's default country (as
    /// save-lead reads it when a number has no country code).
    pub fn person(self, default_country: Option<&str>) -> Result<Person, ApiError> {
        let phone = match self.phone {
            Some(raw) => Some(normalize::phone_e164(&raw, default_country).map_err(|why| {
                ApiError::invalid("phone", format!("phone is not a phone number ({why})"))
            })?),
            None => None,
        };
        Ok(Person {
            client_id: self.client_id,
            anonymous_id: self.anonymous_id,
            email: self.email,
            phone,
        })
    }
}

impl Person {
    /// What the append-only `privacy_requests` log keeps of the person:
    /// SHA-256 of each identifier given, never the identifier.
    pub fn hashes(&self) -> Value {
        let hash = |v: &Option<String>| v.as_deref().map(normalize::sha256_hex);
        json!({
            "anonymous_id_sha256": hash(&self.anonymous_id),
            "email_sha256": hash(&self.email),
            "phone_sha256": hash(&self.phone),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLIENT: &str = "6f1c8b7e-1234-4a5b-9c8d-0123456789ab";

    fn err(body: Value) -> (u16, String, Option<String>) {
        let e = parse(body.to_string().as_bytes()).unwrap_err();
        (e.status, e.code.to_string(), e.field)
    }

    #[test]
    fn identifiers_are_normalized_as_leads_store_them() {
        let r = parse(
            json!({"client_id": CLIENT.to_uppercase(), "email": " Alice@Example.COM ", "phone": "(415) 555-0100"})
                .to_string()
                .as_bytes(),
        )
        .unwrap();
        assert_eq!(r.client_id, CLIENT);
        let p = r.person(Some("US")).unwrap();
        assert_eq!(p.email.as_deref(), Some("alice@example.com"));
        assert_eq!(p.phone.as_deref(), Some("+14155550100"));
        assert_eq!(p.anonymous_id, None);
    }

    #[test]
    fn the_log_keeps_hashes_only() {
        let p = parse(
            json!({"client_id": CLIENT, "email": "a@b.co"})
                .to_string()
                .as_bytes(),
        )
        .unwrap()
        .person(None)
        .unwrap();
        let h = p.hashes();
        assert_eq!(h["email_sha256"], normalize::sha256_hex("a@b.co"));
        assert!(h["phone_sha256"].is_null());
        assert!(!h.to_string().contains("a@b.co"));
    }

    #[test]
    fn bad_requests_name_what_is_wrong() {
        let missing = err(json!({"client_id": CLIENT, "email": "  "}));
        assert_eq!(
            missing,
            (400, "missing_identifier".into(), Some("body".into()))
        );
        assert_eq!(
            err(json!({"client_id": "x", "email": "a@b.co"}))
                .2
                .as_deref(),
            Some("client_id")
        );
        assert_eq!(
            err(json!({"client_id": CLIENT, "email": "nope"}))
                .2
                .as_deref(),
            Some("email")
        );
        assert_eq!(err(json!({"email": "a@b.co"})).1, "missing_field");
        assert_eq!(
            err(json!({"client_id": CLIENT, "name": "x"})).2.as_deref(),
            Some("name")
        );
        let bad_phone = parse(
            json!({"client_id": CLIENT, "phone": "call me"})
                .to_string()
                .as_bytes(),
        )
        .unwrap()
        .person(None)
        .unwrap_err();
        assert_eq!(bad_phone.field.as_deref(), Some("phone"));
    }
}
