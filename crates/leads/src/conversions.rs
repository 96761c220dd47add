//! What save-lead queues for each destination kind: the event (no user data,
//! no credentials) and the user data hashed by that platform's rules. The
//! delivery adapters (crates/delivery) add credentials and URLs at send time.

use serde_json::{json, Value};

use crate::normalize::{self, Contact};

/// A stored lead, as its conversions need it.
#[derive(Debug, Clone)]
pub struct LeadConversion<'a> {
    pub lead_id: &'a str,
    pub client_id: &'a str,
    pub event_id: &'a str,
    /// Unix seconds.
    pub event_time: i64,
    pub page_url: Option<&'a str>,
    pub anonymous_id: Option<&'a str>,
    pub session_id: Option<&'a str>,
    pub gclid: Option<&'a str>,
    /// Google's click ids for iOS app (`gbraid`) and web (`wbraid`) clicks.
    pub gbraid: Option<&'a str>,
    pub wbraid: Option<&'a str>,
    /// `consent.ads`.
    pub ads_consent: Option<bool>,
    /// `consent.ad_personalization`, when the lead says.
    pub ad_personalization: Option<bool>,
    pub contact: Contact<'a>,
}

/// One outbox row's content.
#[derive(Debug, Clone, PartialEq)]
pub struct Queued {
    pub event_name: &'static str,
    pub event_payload: Value,
    pub user_data: Value,
}

/// The queued conversion for a destination kind (`meta_capi`, `google_ec`,
/// `google_dm`, `gtm_server`, `webhook`); `None` for a kind it does not know.
pub fn for_destination(kind: &str, lead: &LeadConversion) -> Option<Queued> {
    let c = &lead.contact;
    Some(match kind {
        "meta_capi" => Queued {
            event_name: "Lead",
            event_payload: strip_nulls(json!({
                "action_source": "website",
                "event_source_url": lead.page_url,
            })),
            user_data: normalize::meta_user_data(c),
        },
        "google_ec" => {
            let granted = |b: Option<bool>| {
                if b == Some(false) {
                    "DENIED"
                } else {
                    "GRANTED"
                }
            };
            Queued {
                event_name: "Lead",
                event_payload: strip_nulls(json!({
                    "gclid": lead.gclid,
                    "consent": { "adUserData": granted(lead.ads_consent) },
                })),
                user_data: normalize::google_user_identifiers(c),
            }
        }
        "google_dm" => {
            let status = |b: Option<bool>| {
                b.map(|b| {
                    if b {
                        "CONSENT_GRANTED"
                    } else {
                        "CONSENT_DENIED"
                    }
                })
            };
            let consent = strip_nulls(json!({
                "adUserData": status(lead.ads_consent),
                "adPersonalization": status(lead.ad_personalization),
            }));
            let ad_identifiers = strip_nulls(json!({
                "gclid": lead.gclid, "gbraid": lead.gbraid, "wbraid": lead.wbraid,
            }));
            let mut payload = serde_json::Map::new();
            if ad_identifiers.as_object().is_some_and(|m| !m.is_empty()) {
                payload.insert("adIdentifiers".into(), ad_identifiers);
            }
            if consent.as_object().is_some_and(|m| !m.is_empty()) {
                payload.insert("consent".into(), consent);
            }
            Queued {
                event_name: "Lead",
                event_payload: Value::Object(payload),
                user_data: normalize::data_manager_user_data(c),
            }
        }
        "gtm_server" => Queued {
            event_name: "generate_lead",
            event_payload: json!({
                "client_id": lead.anonymous_id.unwrap_or(lead.event_id),
                "params": strip_nulls(json!({
                    "page_location": lead.page_url,
                    "session_id": lead.session_id,
                })),
            }),
            user_data: normalize::ga4_user_data(c),
        },
        "webhook" => Queued {
            event_name: "lead",
            event_payload: strip_nulls(json!({
                "lead_id": lead.lead_id,
                "client_id": lead.client_id,
                "anonymous_id": lead.anonymous_id,
                "session_id": lead.session_id,
                "page_url": lead.page_url,
            })),
            // Hashed like Meta's: a client's endpoint gets no raw PII either.
            user_data: normalize::meta_user_data(c),
        },
        _ => return None,
    })
}

fn strip_nulls(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(m.into_iter().filter(|(_, v)| !v.is_null()).collect()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lead() -> LeadConversion<'static> {
        LeadConversion {
            lead_id: "L1",
            client_id: "C1",
            event_id: "ev-1",
            event_time: 1_700_000_000,
            page_url: Some("https://shop.example.com/contact"),
            anonymous_id: Some("anon-1"),
            session_id: None,
            gclid: Some("gclid-1"),
            gbraid: None,
            wbraid: None,
            ads_consent: None,
            ad_personalization: None,
            contact: Contact {
                email: Some("test@example.com"),
                client_ip: Some("203.0.113.9"),
                ..Contact::default()
            },
        }
    }

    #[test]
    fn meta_gets_a_website_lead_with_hashed_user_data() {
        let q = for_destination("meta_capi", &lead()).unwrap();
        assert_eq!(q.event_name, "Lead");
        assert_eq!(
            q.event_payload,
            json!({ "action_source": "website", "event_source_url": "https://shop.example.com/contact" })
        );
        assert_eq!(
            q.user_data["em"][0],
            "973dfe463ec85785f5f95af5ba3906eedb2d931c24e69824a89ea65dba4e813b"
        );
        assert_eq!(q.user_data["client_ip_address"], "203.0.113.9");
        assert!(!q.user_data.to_string().contains("test@example.com"));
    }

    #[test]
    fn google_carries_gclid_and_consent() {
        let q = for_destination("google_ec", &lead()).unwrap();
        assert_eq!(
            q.event_payload,
            json!({ "gclid": "gclid-1", "consent": { "adUserData": "GRANTED" } })
        );
        let mut denied = lead();
        denied.ads_consent = Some(false);
        let q = for_destination("google_ec", &denied).unwrap();
        assert_eq!(q.event_payload["consent"]["adUserData"], "DENIED");
    }

    #[test]
    fn data_manager_gets_click_ids_consent_and_hex_identifiers() {
        let mut l = lead();
        l.wbraid = Some("wb-1");
        l.ads_consent = Some(true);
        l.contact.first_name = Some(" Jane-Marie ");
        l.contact.last_name = Some("O'Doe");
        l.contact.country = Some("us");
        l.contact.zip = Some("33101-1234");
        let q = for_destination("google_dm", &l).unwrap();
        assert_eq!(
            q.event_payload,
            json!({ "adIdentifiers": { "gclid": "gclid-1", "wbraid": "wb-1" },
                    "consent": { "adUserData": "CONSENT_GRANTED" } })
        );
        let ids = q.user_data["userIdentifiers"].as_array().unwrap();
        assert_eq!(
            ids[0]["emailAddress"],
            "973dfe463ec85785f5f95af5ba3906eedb2d931c24e69824a89ea65dba4e813b"
        );
        let address = &ids[1]["address"];
        assert_eq!(address["givenName"], normalize::sha256_hex("janemarie"));
        assert_eq!(address["familyName"], normalize::sha256_hex("odoe"));
        assert_eq!(
            (
                address["regionCode"].as_str(),
                address["postalCode"].as_str()
            ),
            (Some("US"), Some("33101"))
        );
        // No consent given either way and no click: nothing made up.
        let mut bare = lead();
        bare.gclid = None;
        let q = for_destination("google_dm", &bare).unwrap();
        assert_eq!(q.event_payload, json!({}));
        // An address needs all four parts.
        assert_eq!(q.user_data["userIdentifiers"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn gtm_and_webhooks_have_their_own_shapes() {
        let q = for_destination("gtm_server", &lead()).unwrap();
        assert_eq!(q.event_name, "generate_lead");
        assert_eq!(q.event_payload["client_id"], "anon-1");
        let q = for_destination("webhook", &lead()).unwrap();
        assert_eq!(q.event_payload["lead_id"], "L1");
        assert!(q.event_payload.get("session_id").is_none());
        assert!(!q.user_data.to_string().contains("test@example.com"));
        assert!(for_destination("fax", &lead()).is_none());
    }
}
