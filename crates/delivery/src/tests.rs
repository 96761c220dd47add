use super::*;
use crate::retry::backoff;
use crate::schema_check;
use serde_json::json;

const NOW: i64 = 1_700_000_000;

fn endpoints() -> Endpoints {
    Endpoints {
        meta_base_url: "http://127.0.0.1:9/".into(),
        meta_api_version: "v26.0".into(),
        google_ads_base_url: "http://127.0.0.1:8".into(),
        google_ads_api_version: "v18".into(),
        google_datamanager_base_url: "http://127.0.0.1:7/".into(),
        google_oauth_base_url: "http://127.0.0.1:6".into(),
    }
}

fn queued(id: i64) -> Queued {
    Queued {
        id,
        event_id: format!("ev-{id}"),
        event_name: "Lead".into(),
        event_time: 1_700_000_000,
        event_payload: json!({ "action_source": "website", "event_source_url": "https://a.example/x" }),
        user_data: json!({ "em": ["abc"] }),
    }
}

fn body(r: &HttpRequest) -> Value {
    serde_json::from_slice(&r.body).unwrap()
}

fn response(status: u16, body: &str, headers: &[(&str, &str)]) -> HttpResponse {
    HttpResponse {
        status,
        headers: headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        body: body.as_bytes().to_vec(),
    }
}

#[test]
fn meta_batches_events_for_a_pixel_with_the_token_in_the_body() {
    let config = json!({ "pixel_id": "123", "access_token": "SECRET", "test_event_code": "T1" });
    let r = request(
        Kind::MetaCapi,
        &config,
        &endpoints(),
        &[queued(1), queued(2)],
        NOW,
    )
    .unwrap();
    assert_eq!(r.url, "http://127.0.0.1:9/v26.0/123/events");
    assert!(!r.url.contains("SECRET"));
    let b = body(&r);
    assert_eq!(b["access_token"], "SECRET");
    assert_eq!(b["test_event_code"], "T1");
    assert_eq!(b["data"].as_array().unwrap().len(), 2);
    assert_eq!(
        b["data"][1],
        json!({
            "event_name": "Lead", "event_time": 1_700_000_000, "event_id": "ev-2",
            "action_source": "website", "event_source_url": "https://a.example/x",
            "user_data": { "em": ["abc"] }
        })
    );
}

#[test]
fn meta_events_carry_limited_data_use_only_where_the_client_enables_it() {
    let send = |config: Value| request(Kind::MetaCapi, &config, &endpoints(), &[queued(1)], NOW);
    let plain = body(&send(json!({ "pixel_id": "1", "access_token": "t" })).unwrap());
    assert!(plain["data"][0].get("data_processing_options").is_none());
    let ldu = json!({ "pixel_id": "1", "access_token": "t", "limited_data_use": true });
    let event = body(&send(ldu).unwrap())["data"][0].clone();
    // As Meta documents it: LDU, and country/state 0 for "geolocate it".
    assert_eq!(event["data_processing_options"], json!(["LDU"]));
    assert_eq!(event["data_processing_options_country"], 0);
    assert_eq!(event["data_processing_options_state"], 0);
    let bad = json!({ "pixel_id": "1", "access_token": "t", "limited_data_use": "yes" });
    assert!(send(bad).unwrap_err().0.contains("limited_data_use"));
}

#[test]
fn a_config_without_credentials_is_a_config_error() {
    let e = request(
        Kind::MetaCapi,
        &json!({ "pixel_id": "1" }),
        &endpoints(),
        &[queued(1)],
        NOW,
    );
    assert_eq!(
        e.unwrap_err(),
        ConfigError("meta_capi destination config has no access_token".into())
    );
    let e = request(
        Kind::Webhook,
        &json!({ "url": " " }),
        &endpoints(),
        &[queued(1)],
        NOW,
    );
    assert!(e.is_err());
}

#[test]
fn google_uploads_click_conversions_with_partial_failure() {
    let config = json!({
        "customer_id": "123-456-7890", "conversion_action_id": "42",
        "access_token": "ya29", "developer_token": "dev", "login_customer_id": "111-222-3333"
    });
    let r = request(Kind::GoogleEc, &config, &endpoints(), &[queued(1)], NOW).unwrap();
    assert_eq!(
        r.url,
        "http://127.0.0.1:8/v18/customers/1234567890:uploadClickConversions"
    );
    assert!(r
        .headers
        .contains(&("authorization".into(), "Bearer ya29".into())));
    assert!(r
        .headers
        .contains(&("developer-token".into(), "dev".into())));
    assert!(r
        .headers
        .contains(&("login-customer-id".into(), "1112223333".into())));
    let b = body(&r);
    assert_eq!(b["partialFailure"], true);
    let c = &b["conversions"][0];
    assert_eq!(
        c["conversionAction"],
        "customers/1234567890/conversionActions/42"
    );
    assert_eq!(c["conversionDateTime"], "2023-11-14 22:13:20+00:00");
    assert_eq!(c["orderId"], "ev-1");
    assert_eq!(c["userIdentifiers"], json!({ "em": ["abc"] }));
}

#[test]
fn gtm_server_uses_the_measurement_protocol() {
    let config =
        json!({ "url": "https://sgtm.example.com/", "measurement_id": "G-1", "api_secret": "s e" });
    let mut q = queued(1);
    q.event_name = "generate_lead".into();
    q.event_payload = json!({ "client_id": "anon-1", "params": { "page_location": "https://a/" } });
    let r = request(Kind::GtmServer, &config, &endpoints(), &[q], NOW).unwrap();
    assert_eq!(
        r.url,
        "https://sgtm.example.com/mp/collect?measurement_id=G-1&api_secret=s%20e"
    );
    let b = body(&r);
    assert_eq!(b["client_id"], "anon-1");
    assert_eq!(b["timestamp_micros"], 1_700_000_000_000_000i64);
    assert_eq!(
        b["events"][0],
        json!({ "name": "generate_lead", "params": { "page_location": "https://a/", "event_id": "ev-1" } })
    );
    assert_eq!(b["user_data"], json!({ "em": ["abc"] }));
}

/// A secret as clients get it: `whsec_` + base64 of 32 bytes.
const SECRET_A: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const SECRET_B: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";

/// Verifies a request with the Standard Webhooks reference library (the
/// `standardwebhooks` crate), not with our signing code.
fn verify(secret: &str, r: &HttpRequest) -> Result<(), String> {
    let mut headers = http::HeaderMap::new();
    for (k, v) in &r.headers {
        headers.insert(
            http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    standardwebhooks::Webhook::new(secret)
        .map_err(|e| e.to_string())?
        .verify(&r.body, &headers)
        .map_err(|e| e.to_string())
}

fn header<'a>(r: &'a HttpRequest, name: &str) -> Option<&'a str> {
    r.headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

#[test]
fn webhooks_follow_standard_webhooks_and_verify_with_the_reference_library() {
    let now = chrono::Utc::now().timestamp();
    let config = json!({ "url": "https://hooks.example.com/x", "secret": SECRET_A });
    let r = request(Kind::Webhook, &config, &endpoints(), &[queued(7)], now).unwrap();
    assert_eq!(header(&r, "webhook-id"), Some("delivery_7"));
    assert_eq!(
        header(&r, "webhook-timestamp"),
        Some(now.to_string().as_str())
    );
    assert!(header(&r, "webhook-signature").unwrap().starts_with("v1,"));
    verify(SECRET_A, &r).unwrap();
    // Another secret, a changed body or a changed id do not verify.
    assert!(verify(SECRET_B, &r).is_err());
    let mut tampered = r.clone();
    tampered.body.push(b' ');
    assert!(verify(SECRET_A, &tampered).is_err());
    let mut other_id = r.clone();
    other_id.headers[1].1 = "delivery_8".into();
    assert!(verify(SECRET_A, &other_id).is_err());
    // The payload: {type, timestamp, data}.
    let b = body(&r);
    assert_eq!(b["type"], "conversion.created");
    assert_eq!(b["timestamp"], "2023-11-14T22:13:20Z");
    assert_eq!(b["data"]["event_id"], "ev-7");
    assert_eq!(b["data"]["user_data"], json!({ "em": ["abc"] }));
    // The same row signs with the same id on a later attempt.
    let again = request(Kind::Webhook, &config, &endpoints(), &[queued(7)], now + 60).unwrap();
    assert_eq!(header(&again, "webhook-id"), Some("delivery_7"));
}

#[test]
fn rotating_secrets_sign_with_each_so_either_verifies() {
    let now = chrono::Utc::now().timestamp();
    let config = json!({ "url": "https://h/", "secret": SECRET_A, "secrets": [SECRET_B] });
    let r = request(Kind::Webhook, &config, &endpoints(), &[queued(1)], now).unwrap();
    let sig = header(&r, "webhook-signature").unwrap();
    assert_eq!(sig.split(' ').count(), 2, "{sig}");
    verify(SECRET_A, &r).unwrap();
    verify(SECRET_B, &r).unwrap();
    assert!(verify("whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", &r).is_err());
}

#[test]
fn webhook_configs_without_secret_go_unsigned_and_bad_secrets_are_named() {
    let unsigned = request(
        Kind::Webhook,
        &json!({ "url": "https://h/" }),
        &endpoints(),
        &[queued(1)],
        NOW,
    )
    .unwrap();
    assert!(header(&unsigned, "webhook-signature").is_none());
    assert_eq!(header(&unsigned, "webhook-id"), Some("delivery_1"));
    for (config, key) in [
        (json!({ "url": "https://h/", "secret": "plain" }), "secret"),
        // Not whsec_-prefixed, though base64.
        (
            json!({ "url": "https://h/", "secret": "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" }),
            "secret",
        ),
        // Too short a key.
        (
            json!({ "url": "https://h/", "secret": "whsec_AAAA" }),
            "secret",
        ),
        (
            json!({ "url": "https://h/", "secrets": [SECRET_A, 3] }),
            "secrets[1]",
        ),
        (
            json!({ "url": "https://h/", "secrets": SECRET_A }),
            "secrets",
        ),
    ] {
        let e = request(Kind::Webhook, &config, &endpoints(), &[queued(1)], NOW).unwrap_err();
        assert!(e.0.contains(&format!("{key} ")), "{config}: {}", e.0);
        assert!(!e.0.contains("MfKQ"), "the secret is not echoed: {}", e.0);
    }
    // A webhook message carries one event.
    assert!(request(
        Kind::Webhook,
        &json!({ "url": "https://h/" }),
        &endpoints(),
        &[queued(1), queued(2)],
        NOW
    )
    .is_err());
}

#[test]
fn responses_are_classified() {
    let c =
        |kind, status, body: &str, h: &[(&str, &str)]| classify(kind, &response(status, body, h));
    assert_eq!(c(Kind::MetaCapi, 200, "{}", &[]), Outcome::Resolved);
    assert_eq!(c(Kind::Webhook, 204, "", &[]), Outcome::Resolved);
    assert_eq!(
        c(Kind::MetaCapi, 429, "slow down", &[("Retry-After", "120")]),
        Outcome::Retry {
            error: "HTTP 429: slow down".into(),
            after: Some(Duration::from_secs(120))
        }
    );
    assert_eq!(c(Kind::GoogleEc, 503, "", &[]).name(), "retry");
    assert_eq!(c(Kind::Webhook, 408, "", &[]).name(), "retry");
    // Meta's throttling comes as a 400 with a code.
    assert_eq!(
        c(
            Kind::MetaCapi,
            400,
            r#"{"error":{"code":17,"message":"User request limit reached"}}"#,
            &[]
        )
        .name(),
        "retry"
    );
    assert_eq!(
        c(
            Kind::MetaCapi,
            400,
            r#"{"error":{"code":100,"message":"Invalid parameter"}}"#,
            &[]
        ),
        Outcome::DeadLetter {
            reason: "rejected".into(),
            error: r#"HTTP 400: {"error":{"code":100,"message":"Invalid parameter"}}"#.into()
        }
    );
    assert_eq!(
        c(Kind::MetaCapi, 401, "bad token", &[]).name(),
        "dead_letter"
    );
    assert_eq!(c(Kind::Webhook, 404, "", &[]).name(), "dead_letter");
    // A webhook receiver that is gone for good.
    assert_eq!(
        c(Kind::Webhook, 410, "", &[]),
        Outcome::DeadLetter {
            reason: "gone".into(),
            error: "HTTP 410: ".into()
        }
    );
    assert_eq!(c(Kind::MetaCapi, 410, "", &[]).name(), "dead_letter");
    assert_eq!(
        c(
            Kind::GoogleEc,
            200,
            r#"{"partialFailureError":{"message":"bad conversion"}}"#,
            &[]
        ),
        Outcome::DeadLetter {
            reason: "rejected".into(),
            error: "partial failure: bad conversion".into()
        }
    );
    assert_eq!(
        c(Kind::GoogleEc, 200, r#"{"results":[{}]}"#, &[]),
        Outcome::Resolved
    );
    assert_eq!(classify_send_error(&SendError::Timeout).name(), "retry");
}

#[test]
fn backoff_doubles_from_five_minutes_with_bounded_jitter() {
    let minutes: Vec<u64> = (0..5).map(|n| backoff(n, 0.0).as_secs() / 60).collect();
    assert_eq!(minutes, vec![5, 10, 20, 40, 80]);
    assert_eq!(backoff(0, 0.999).as_secs(), 300 + 29);
    assert!(backoff(2, 0.5) > backoff(2, 0.0));
}

#[test]
fn meta_events_older_than_seven_days_are_expired() {
    let now = 1_700_000_000;
    assert!(!expired(Kind::MetaCapi, now - 7 * 24 * 3600, now));
    assert!(expired(Kind::MetaCapi, now - 7 * 24 * 3600 - 1, now));
    assert!(!expired(Kind::Webhook, now - 30 * 24 * 3600, now));
}

#[test]
fn secrets_are_redacted_at_any_depth() {
    let config = json!({
        "pixel_id": "123", "access_token": "SECRET",
        "nested": { "api_secret": "S2", "Authorization": "Bearer x", "keep": 1 }
    });
    let r = redact(&config);
    assert_eq!(
        r,
        json!({
            "pixel_id": "123", "access_token": "[redacted]",
            "nested": { "api_secret": "[redacted]", "Authorization": "[redacted]", "keep": 1 }
        })
    );
    assert!(!r.to_string().contains("SECRET"));
}

fn dm_config() -> Value {
    json!({
        "operating_account_id": "123-456-7890", "login_account_id": "111-222-3333",
        "conversion_action_id": "987654", "access_token": "ya29.TOKEN",
        "refresh_token": "1//R", "client_id": "cid", "client_secret": "cs"
    })
}

fn dm_event(id: i64) -> Queued {
    Queued {
        id,
        event_id: format!("lead-{id}"),
        event_name: "Lead".into(),
        event_time: 1_700_000_000,
        event_payload: json!({
            "adIdentifiers": { "gclid": "Cj0KCQ" },
            "consent": { "adUserData": "CONSENT_GRANTED", "adPersonalization": "CONSENT_DENIED" }
        }),
        user_data: json!({ "userIdentifiers": [
            { "emailAddress": "973dfe463ec85785f5f95af5ba3906eedb2d931c24e69824a89ea65dba4e813b" },
            { "phoneNumber": "a0b1c2d3e4f5a0b1c2d3e4f5a0b1c2d3e4f5a0b1c2d3e4f5a0b1c2d3e4f5a0b1" },
            { "address": { "givenName": "a0b1c2d3e4f5a0b1c2d3e4f5a0b1c2d3e4f5a0b1c2d3e4f5a0b1c2d3e4f5a0b1",
                           "familyName": "a0b1c2d3e4f5a0b1c2d3e4f5a0b1c2d3e4f5a0b1c2d3e4f5a0b1c2d3e4f5a0b1",
                           "regionCode": "US", "postalCode": "33101" } }
        ] }),
    }
}

#[test]
fn data_manager_requests_follow_googles_published_schema() {
    let events: Vec<Queued> = (1..=3).map(dm_event).collect();
    let r = request(Kind::GoogleDm, &dm_config(), &endpoints(), &events, NOW).unwrap();
    assert_eq!(r.url, "http://127.0.0.1:7/v1/events:ingest");
    assert!(r
        .headers
        .contains(&("authorization".into(), "Bearer ya29.TOKEN".into())));
    let b = body(&r);
    let errors = schema_check::check("IngestEventsRequest", &b);
    assert!(errors.is_empty(), "{errors:#?}");
    assert_eq!(b["encoding"], "HEX");
    assert_eq!(
        b["destinations"],
        json!([{ "operatingAccount": { "accountType": "GOOGLE_ADS", "accountId": "1234567890" },
                 "loginAccount": { "accountType": "GOOGLE_ADS", "accountId": "1112223333" },
                 "productDestinationId": "987654" }])
    );
    let e = &b["events"][1];
    assert_eq!(e["transactionId"], "lead-2");
    assert_eq!(e["eventTimestamp"], "2023-11-14T22:13:20Z");
    assert_eq!(e["eventSource"], "WEB");
    assert_eq!(e["adIdentifiers"]["gclid"], "Cj0KCQ");
    assert_eq!(e["consent"]["adUserData"], "CONSENT_GRANTED");
    assert_eq!(
        e["userData"]["userIdentifiers"].as_array().unwrap().len(),
        3
    );
    assert!(b.get("validateOnly").is_none());
    // Secrets other than the bearer token never enter the request.
    let text = String::from_utf8(r.body.clone()).unwrap();
    assert!(!text.contains("1//R") && !text.contains("ya29"));

    // The checker is not a rubber stamp: it finds what Google would refuse.
    let mut bad = b.clone();
    bad["events"][0]["userData"]["userIdentifiers"][0]["hashedEmail"] = json!("x");
    bad["events"][1]["consent"]["adUserData"] = json!("GRANTED");
    bad["destinations"][0]
        .as_object_mut()
        .unwrap()
        .remove("productDestinationId");
    bad["encoding"] = json!("hex");
    let errors = schema_check::check("IngestEventsRequest", &bad);
    assert_eq!(errors.len(), 4, "{errors:#?}");
}

#[test]
fn data_manager_batches_up_to_two_thousand_and_needs_its_config() {
    assert_eq!(max_batch(Kind::GoogleDm), 2000);
    for (key, config) in [
        (
            "operating_account_id",
            json!({ "conversion_action_id": "1", "access_token": "t" }),
        ),
        (
            "conversion_action_id",
            json!({ "operating_account_id": "1", "access_token": "t" }),
        ),
        (
            "operating_account_id",
            json!({ "operating_account_id": "12x", "conversion_action_id": "1", "access_token": "t" }),
        ),
    ] {
        let e = request(Kind::GoogleDm, &config, &endpoints(), &[dm_event(1)], NOW).unwrap_err();
        assert!(e.0.contains(key), "{config}: {}", e.0);
    }
}

#[test]
fn data_manager_events_are_checked_before_they_join_a_batch() {
    let now = 1_700_000_000;
    assert_eq!(invalid(Kind::GoogleDm, &dm_event(1), now), None);
    let mut e = dm_event(1);
    e.user_data = json!({ "userIdentifiers": [{ "emailAddress": "jane@example.com" }] });
    assert!(invalid(Kind::GoogleDm, &e, now)
        .unwrap()
        .contains("userIdentifiers[0]"));
    let mut e = dm_event(1);
    e.user_data["userIdentifiers"][2]["address"]
        .as_object_mut()
        .unwrap()
        .remove("postalCode");
    assert!(invalid(Kind::GoogleDm, &e, now)
        .unwrap()
        .contains("userIdentifiers[2]"));
    let mut e = dm_event(1);
    e.user_data = json!({ "userIdentifiers": vec![json!({ "emailAddress": "a".repeat(64) }); 11] });
    assert!(invalid(Kind::GoogleDm, &e, now)
        .unwrap()
        .contains("at most 10"));
    let mut e = dm_event(1);
    e.user_data = json!({ "userIdentifiers": [] });
    e.event_payload = json!({});
    assert!(invalid(Kind::GoogleDm, &e, now)
        .unwrap()
        .contains("nothing to match on"));
    // A click id alone is enough.
    e.event_payload = json!({ "adIdentifiers": { "gbraid": "gb" } });
    assert_eq!(invalid(Kind::GoogleDm, &e, now), None);
    let mut e = dm_event(1);
    e.event_payload["consent"]["adUserData"] = json!("GRANTED");
    assert!(invalid(Kind::GoogleDm, &e, now)
        .unwrap()
        .contains("consent.adUserData"));
    let mut e = dm_event(1);
    e.event_time = now + 3600;
    assert!(invalid(Kind::GoogleDm, &e, now).unwrap().contains("future"));
    // Other kinds have no pre-check.
    assert_eq!(invalid(Kind::MetaCapi, &e, now), None);
}

#[test]
fn deadlines_follow_each_platform() {
    let now = 1_700_000_000;
    let day = 86_400;
    assert!(!expired(Kind::GoogleDm, now - 90 * day, now));
    assert!(expired(Kind::GoogleDm, now - 90 * day - 1, now));
    assert!(expired(Kind::GoogleEc, now - 91 * day, now));
    assert!(!expired(Kind::Webhook, now - 365 * day, now));
}

#[test]
fn data_manager_errors_are_classified() {
    let c = |status, body: &str| classify(Kind::GoogleDm, &response(status, body, &[]));
    assert_eq!(c(200, r#"{"requestId":"r1"}"#), Outcome::Resolved);
    // A refused token: retried with a new one.
    assert_eq!(
        c(401, r#"{"error":{"status":"UNAUTHENTICATED"}}"#).name(),
        "retry"
    );
    // No access to the account: the config, not the events (never bisected).
    assert!(matches!(c(403, "{}"), Outcome::DeadLetter { reason, .. } if reason == "config"));
    // An invalid request: rejected, so bisection isolates the bad event.
    assert!(matches!(
        c(400, r#"{"error":{"status":"INVALID_ARGUMENT"}}"#),
        Outcome::DeadLetter { reason, .. } if reason == "rejected"
    ));
    assert_eq!(c(503, "").name(), "retry");
}

#[test]
fn ga4_events_are_checked_against_the_measurement_protocols_limits() {
    let now = 1_700_000_000;
    let ok = |name: &str, params: Value| Queued {
        id: 1,
        event_id: "e".into(),
        event_name: name.into(),
        event_time: now,
        event_payload: json!({ "client_id": "c", "params": params }),
        user_data: json!({}),
    };
    assert_eq!(
        invalid(
            Kind::GtmServer,
            &ok("generate_lead", json!({ "page_location": "https://a/" })),
            now
        ),
        None
    );
    assert!(invalid(Kind::GtmServer, &ok(&"x".repeat(41), json!({})), now).is_some());
    assert!(invalid(Kind::GtmServer, &ok("1lead", json!({})), now).is_some());
    assert!(invalid(Kind::GtmServer, &ok("generate-lead", json!({})), now).is_some());
    let many: serde_json::Map<String, Value> =
        (0..25).map(|i| (format!("p{i}"), json!(i))).collect();
    // 25 of ours + the event_id added at send time: one too many.
    assert!(
        invalid(Kind::GtmServer, &ok("lead", Value::Object(many)), now)
            .unwrap()
            .contains("26 parameters")
    );
    assert!(invalid(
        Kind::GtmServer,
        &ok("lead", json!({ "v": "x".repeat(101) })),
        now
    )
    .is_some());
    assert!(invalid(
        Kind::GtmServer,
        &ok("lead", json!({ "v": "x".repeat(100) })),
        now
    )
    .is_none());
    let mut big = ok("lead", json!({}));
    big.user_data = json!({ "x": "y".repeat(140 * 1024) });
    assert!(invalid(Kind::GtmServer, &big, now)
        .unwrap()
        .contains("bytes"));
    // 72 hours back at most.
    assert!(!expired(Kind::GtmServer, now - 72 * 3600, now));
    assert!(expired(Kind::GtmServer, now - 72 * 3600 - 1, now));
}

#[test]
fn data_manager_request_status_says_what_processing_refused() {
    let body = json!({ "requestStatusPerDestination": [
        { "requestStatus": "PARTIAL_SUCCESS",
          "errorInfo": { "errorCounts": [
              { "recordCount": "2", "reason": "PROCESSING_ERROR_REASON_NO_CONSENT" } ] },
          "warningInfo": { "warningCounts": [
              { "recordCount": "1", "reason": "PROCESSING_WARNING_REASON_KEK_PERMISSION_DENIED" } ] } },
        { "requestStatus": "PROCESSING" } ] });
    let (failed, lines) = datamanager::request_status_summary(&body);
    assert!(failed);
    assert_eq!(
        lines,
        [
            "request status: PARTIAL_SUCCESS",
            "2 events: PROCESSING_ERROR_REASON_NO_CONSENT",
            "warning: 1 event: PROCESSING_WARNING_REASON_KEK_PERMISSION_DENIED",
            "request status: PROCESSING",
        ]
    );
    let (failed, lines) = datamanager::request_status_summary(
        &json!({ "requestStatusPerDestination": [{ "requestStatus": "SUCCESS" }] }),
    );
    assert!(!failed);
    assert_eq!(lines, ["request status: SUCCESS"]);
    assert_eq!(
        datamanager::request_status_summary(&json!({})),
        (false, vec![])
    );
}
