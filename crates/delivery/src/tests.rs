use super::*;
use crate::retry::backoff;
use serde_json::json;

fn endpoints() -> Endpoints {
    Endpoints {
        meta_base_url: "http://127.0.0.1:9/".into(),
        meta_api_version: "v21.0".into(),
        google_ads_base_url: "http://127.0.0.1:8".into(),
        google_ads_api_version: "v18".into(),
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
    )
    .unwrap();
    assert_eq!(r.url, "http://127.0.0.1:9/v21.0/123/events");
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
fn a_config_without_credentials_is_a_config_error() {
    let e = request(
        Kind::MetaCapi,
        &json!({ "pixel_id": "1" }),
        &endpoints(),
        &[queued(1)],
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
    );
    assert!(e.is_err());
}

#[test]
fn google_uploads_click_conversions_with_partial_failure() {
    let config = json!({
        "customer_id": "123-456-7890", "conversion_action_id": "42",
        "access_token": "ya29", "developer_token": "dev", "login_customer_id": "111-222-3333"
    });
    let r = request(Kind::GoogleEc, &config, &endpoints(), &[queued(1)]).unwrap();
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
    let r = request(Kind::GtmServer, &config, &endpoints(), &[q]).unwrap();
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

#[test]
fn webhooks_are_signed_with_hmac_sha256() {
    // RFC 4231-style known vector, as published for HMAC-SHA256.
    assert_eq!(
        webhook::sign("key", b"The quick brown fox jumps over the lazy dog"),
        "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
    );
    let r = request(
        Kind::Webhook,
        &json!({ "url": "https://hooks.example.com/x", "secret": "key" }),
        &endpoints(),
        &[queued(1)],
    )
    .unwrap();
    let sig = r.headers.iter().find(|(k, _)| k == "x-signature").unwrap();
    assert_eq!(sig.1, format!("sha256={}", webhook::sign("key", &r.body)));
    assert_eq!(body(&r)["events"][0]["event_id"], "ev-1");
    let unsigned = request(
        Kind::Webhook,
        &json!({ "url": "https://h/" }),
        &endpoints(),
        &[queued(1)],
    )
    .unwrap();
    assert!(unsigned.headers.iter().all(|(k, _)| k != "x-signature"));
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
