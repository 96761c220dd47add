//! Events of a visitor who refused analytics consent
//! (`context.consent.analytics = false`). The client chooses
//! (`clients.refused_consent_events`): `anonymous` keeps the events for the
//! counts but nothing that identifies or follows the visitor — a fresh
//! random visitor and session per batch, no IP, no click ids, page and
//! referrer URLs without query or fragment (UTM parameters are kept as
//! attribution: they name a campaign, not a person) and no raw payload of
//! rejected events; `drop` stores nothing at all.

use serde_json::json;
use url::Url;

use crate::batch::{Batch, EventRow, Rejection};

/// What a client does with consent-refused events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    Anonymous,
    Drop,
}

impl Refused {
    /// The column's value (`anonymous` unless it says `drop`).
    pub fn from_setting(s: Option<&str>) -> Refused {
        match s {
            Some("drop") => Refused::Drop,
            _ => Refused::Anonymous,
        }
    }

    /// As the ingest answer names it (`consent_refused`).
    pub fn as_str(self) -> &'static str {
        match self {
            Refused::Anonymous => "stored_anonymously",
            Refused::Drop => "not_stored",
        }
    }
}

/// `url` without its query and fragment.
fn bare(url: &str) -> String {
    match Url::parse(url) {
        Ok(mut u) => {
            u.set_query(None);
            u.set_fragment(None);
            u.to_string()
        }
        Err(_) => url.split(['?', '#']).next().unwrap_or_default().to_string(),
    }
}

/// Strips the batch of everything that identifies or links the visitor;
/// `fresh` makes the random visitor and session ids.
pub fn anonymize(
    batch: &mut Batch,
    events: &mut [EventRow],
    rejected: &mut [Rejection],
    mut fresh: impl FnMut() -> String,
) {
    batch.person_id = format!("anonymous-{}", fresh());
    batch.session_id = Some(fresh());
    for e in events.iter_mut() {
        e.page_url = e.page_url.as_deref().map(bare);
        e.referrer = e.referrer.as_deref().map(bare);
        e.attribution.gclid = None;
        e.attribution.fbclid = None;
        e.attribution.fbc = None;
    }
    for r in rejected.iter_mut() {
        r.raw = json!({ "omitted": "analytics consent refused", "event_id": r.event_id });
    }
}

/// Whether the batch's visitor refused analytics consent.
pub fn refused(batch: &Batch) -> bool {
    batch.analytics_consent == Some(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attribution::Attribution;
    use chrono::Utc;

    fn event() -> EventRow {
        EventRow {
            index: 0,
            event_id: "e1".into(),
            name: "widget_open".into(),
            occurred_at: Utc::now(),
            page_url: Some("https://shop.example/p?gclid=abc&utm_source=x#top".into()),
            domain: Some("shop.example".into()),
            referrer: Some("https://search.example/?q=alice+smith".into()),
            referrer_domain: Some("search.example".into()),
            widget_displayed_at: None,
            duration_s: None,
            properties: json!({}),
            attribution: Attribution {
                utm_source: Some("x".into()),
                gclid: Some("abc".into()),
                fbclid: Some("f".into()),
                fbc: Some("fb.1.1.f".into()),
                ..Attribution::default()
            },
        }
    }

    #[test]
    fn an_anonymous_batch_keeps_no_identifier() {
        let mut batch = crate::batch::parse_batch(
            br#"{"client_id": "6f1c8b7e-1234-4a5b-9c8d-0123456789ab", "anonymous_id": "visitor-7",
                 "session_id": "s-1", "context": {"consent": {"analytics": false}},
                 "events": [{}]}"#,
        )
        .unwrap();
        assert!(refused(&batch));
        let mut events = [event()];
        let mut rejected = [Rejection {
            index: 1,
            event_id: Some("e2".into()),
            field: "events[1].name".into(),
            reason: "x".into(),
            raw: json!({"page_url": "https://shop.example/?email=a@b.co"}),
        }];
        let mut n = 0;
        anonymize(&mut batch, &mut events, &mut rejected, || {
            n += 1;
            format!("r{n}")
        });
        assert_eq!(
            (batch.person_id.as_str(), batch.session_id.as_deref()),
            ("anonymous-r1", Some("r2"))
        );
        let e = &events[0];
        assert_eq!(e.page_url.as_deref(), Some("https://shop.example/p"));
        assert_eq!(e.referrer.as_deref(), Some("https://search.example/"));
        assert_eq!(
            (
                &e.attribution.gclid,
                &e.attribution.fbclid,
                &e.attribution.fbc
            ),
            (&None, &None, &None)
        );
        assert_eq!(e.attribution.utm_source.as_deref(), Some("x"));
        assert!(!rejected[0].raw.to_string().contains("a@b.co"));
    }

    #[test]
    fn consent_is_a_boolean_in_an_object() {
        let parse = |ctx: &str| {
            crate::batch::parse_batch(
                format!(r#"{{"client_id": "6f1c8b7e-1234-4a5b-9c8d-0123456789ab", "anonymous_id": "v", "context": {ctx}, "events": [{{}}]}}"#)
                    .as_bytes(),
            )
        };
        assert_eq!(
            parse(r#"{"consent": {"analytics": true}}"#)
                .unwrap()
                .analytics_consent,
            Some(true)
        );
        assert_eq!(
            parse(r#"{"consent": {"ads": false}}"#)
                .unwrap()
                .analytics_consent,
            None
        );
        assert_eq!(
            parse(r#"{"consent": {"analytics": "no"}}"#)
                .unwrap_err()
                .field
                .as_deref(),
            Some("context.consent.analytics")
        );
        assert_eq!(
            parse(r#"{"consent": 0}"#).unwrap_err().field.as_deref(),
            Some("context.consent")
        );
        assert_eq!(Refused::from_setting(Some("drop")), Refused::Drop);
        assert_eq!(Refused::from_setting(None), Refused::Anonymous);
    }
}
