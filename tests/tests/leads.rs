//! `POST /v1/leads` end to end: the real save-lead component on the local
//! host against Postgres, with local fakes for the remote geo provider and
//! the ad platforms.

use std::time::{Duration, Instant};

use integration_tests::fake::{sha256, Fake, Reply};
use integration_tests::*;
use serde_json::{json, Value};
use uuid::Uuid;

/// A client on shop.com selling in the US; `contact_required` is its lead_contact_required.
async fn client(db: &TestDb, contact_required: bool) -> Uuid {
    ClientSpec::new()
        .root_domain("shop.com")
        .lead_contact_required(contact_required)
        .default_country("US")
        .insert(db)
        .await
}

/// A small embedded geo database: Miami, Montreal, London (v4 and v6).
async fn seed_geoip(db: &TestDb) {
    db.exec(
        "INSERT INTO geoip_locations VALUES
                (1, 'US', 'FL', 'Florida', 'Miami', NULL),
                (2, 'CA', 'QC', 'Quebec', 'Montreal', NULL),
                (3, 'GB', NULL, 'England', 'London', NULL);
             INSERT INTO geoip_city_ranges VALUES
                ('23.0.0.0', '23.0.0.255', 1),
                ('24.48.0.0', '24.48.0.255', 2),
                ('81.2.69.0', '81.2.69.255', 3),
                ('2a00:1450::', '2a00:1450:ffff:ffff:ffff:ffff:ffff:ffff', 3);",
    )
    .await;
}

fn lead(client: Uuid, extra: Value) -> Value {
    let mut body = json!({
        "client_id": client, "event_id": Uuid::new_v4().to_string(), "anonymous_id": "anon-1",
        "email": "Jane.Doe@Example.com", "phone": "(305) 555-0123", "first_name": "Jane",
        "last_name": "Doe", "page_url": "https://shop.com/contact",
    });
    for (k, v) in extra.as_object().unwrap() {
        if v.is_null() {
            body.as_object_mut().unwrap().remove(k);
        } else {
            body[k] = v.clone();
        }
    }
    body
}

async fn post(app: &TestApp, body: &Value, visitor_ip: &str) -> (u16, Value) {
    post_raw(app, body.to_string(), &[("x-forwarded-for", visitor_ip)]).await
}

async fn post_raw(app: &TestApp, body: String, headers: &[(&str, &str)]) -> (u16, Value) {
    app.post("/v1/leads")
        .json_text(body)
        .header("user-agent", "Mozilla/5.0 test")
        .headers(headers)
        .send()
        .await
}

const PROXY: (&str, &str) = ("trusted_proxies", "127.0.0.1");

#[tokio::test]
async fn a_lead_is_enriched_from_the_embedded_database_queued_and_delivered_to_meta() {
    let db = TestDb::new().await;
    seed_geoip(&db).await;
    let meta = Fake::start(|_| Reply::json(200, json!({ "events_received": 1 }))).await;
    let app = serve_app(&db, &[PROXY, ("meta_capi_base_url", &meta.url)]).await;
    let c = client(&db, true).await;
    destination(
        &db,
        c,
        "meta_capi",
        json!({ "pixel_id": "PIX1", "access_token": "TOKEN-SECRET" }),
    )
    .await;

    let body = lead(
        c,
        json!({ "fbc": "fb.1.1700000000000.abc", "consent": { "ads": true } }),
    );
    let (status, res) = post(&app, &body, "23.0.0.5").await;
    assert_eq!(status, 201, "{res}");
    assert_eq!(res["duplicate"], false);
    assert_eq!(
        res["address"],
        json!({
            "city": "Miami", "state": "FL", "zip": null, "country": "US", "geo_source": "ip",
            "sources": { "city": "ip", "state": "ip", "country": "ip" }
        })
    );
    assert_eq!(res["geo_lookup"]["provider"], "embedded");
    assert_eq!(
        res["geo_lookup"]["attribution"],
        "IP Geolocation by DB-IP (https://db-ip.com)"
    );
    assert_eq!(res["deliveries"][0]["destination"], "meta_capi");
    assert_eq!(res["deliveries"][0]["status"], "resolved");

    // Meta got one event with hashed user data, the token in the body.
    let sent = meta.requests();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].path, "/v26.0/PIX1/events");
    let b = sent[0].json();
    assert_eq!(b["access_token"], "TOKEN-SECRET");
    let event = &b["data"][0];
    assert_eq!(event["event_name"], "Lead");
    assert_eq!(event["event_id"], body["event_id"]);
    assert_eq!(event["action_source"], "website");
    let u = &event["user_data"];
    assert_eq!(u["em"][0], sha256("jane.doe@example.com"));
    assert_eq!(u["ph"][0], sha256("13055550123"));
    assert_eq!(u["fn"][0], sha256("jane"));
    assert_eq!(u["ct"][0], sha256("miami"));
    assert_eq!(u["st"][0], sha256("fl"));
    assert_eq!(u["country"][0], sha256("us"));
    assert_eq!(u["external_id"][0], sha256("anon-1"));
    assert_eq!(u["client_ip_address"], "23.0.0.5");
    assert_eq!(u["client_user_agent"], "Mozilla/5.0 test");
    assert_eq!(u["fbc"], "fb.1.1700000000000.abc");

    // Raw PII only in leads; the outbox holds hashes and no credentials.
    let l = db.one("SELECT email, phone, city, state, country, geo_source, geo_sources::text, client_ip FROM leads").await;
    assert_eq!(l.get::<_, String>(0), "jane.doe@example.com");
    assert_eq!(l.get::<_, String>(1), "+13055550123");
    assert_eq!(l.get::<_, String>(3), "FL");
    assert_eq!(l.get::<_, String>(5), "ip");
    assert_eq!(
        l.get::<_, String>(7),
        "23.0.0.0",
        "stored truncated like events"
    );
    let d = db.one("SELECT status, event_id, event_payload::text || user_data::text, retry_count, resolved_at IS NOT NULL FROM conversion_deliveries").await;
    assert_eq!(d.get::<_, String>(0), "resolved");
    assert_eq!(d.get::<_, String>(1), body["event_id"].as_str().unwrap());
    let stored: String = d.get(2);
    assert!(
        !stored.contains("jane") && !stored.contains("TOKEN-SECRET"),
        "{stored}"
    );
    assert_eq!(d.get::<_, i32>(3), 0);
    assert!(d.get::<_, bool>(4));
    let a = db
        .one("SELECT trigger, outcome, http_status FROM delivery_attempts")
        .await;
    assert_eq!(
        (
            a.get::<_, String>(0),
            a.get::<_, String>(1),
            a.get::<_, i32>(2)
        ),
        ("inline".into(), "resolved".into(), 200)
    );
}

#[tokio::test]
async fn geo_fields_come_from_the_user_then_the_assistant_then_the_ip() {
    let db = TestDb::new().await;
    seed_geoip(&db).await;
    let app = serve_app(&db, &[PROXY]).await;
    let c = client(&db, true).await;

    // User city, assistant state and zip, IP the country.
    let (status, res) = post(
        &app,
        &lead(c, json!({ "city": "Tampa", "ai_context": { "state": "Florida", "zip": "33601", "city": "Orlando" } })),
        "23.0.0.5",
    )
    .await;
    assert_eq!(status, 201, "{res}");
    assert_eq!(res["address"]["city"], "Tampa");
    assert_eq!(res["address"]["state"], "FL");
    assert_eq!(res["address"]["zip"], "33601");
    assert_eq!(res["address"]["country"], "US");
    assert_eq!(
        res["address"]["sources"],
        json!({ "city": "user", "state": "ai", "zip": "ai", "country": "ip" })
    );
    assert_eq!(res["address"]["geo_source"], "ip");

    // A complete address needs no lookup.
    let (_, res) = post(
        &app,
        &lead(
            c,
            json!({ "city": "Montreal", "state": "Quebec", "zip": "H2X 1Y4", "country": "CA" }),
        ),
        "23.0.0.5",
    )
    .await;
    assert_eq!(res["geo_lookup"]["outcome"], "not_needed");
    assert_eq!(res["address"]["state"], "QC");
    assert_eq!(res["address"]["geo_source"], "user");

    // An IP in another country than the one the visitor gave fills nothing.
    let (_, res) = post(&app, &lead(c, json!({ "country": "DE" })), "23.0.0.5").await;
    assert_eq!(res["address"]["city"], Value::Null);
    assert_eq!(res["address"]["country"], "DE");

    // IPv6, outside the US: the region name is kept as published.
    let (_, res) = post(&app, &lead(c, json!({})), "2a00:1450::7").await;
    assert_eq!(res["address"]["city"], "London");
    assert_eq!(res["address"]["state"], "England");

    let sources: Vec<String> = db
        .column("SELECT coalesce(geo_source, '-') FROM leads ORDER BY created_at")
        .await;
    assert_eq!(sources, vec!["ip", "user", "user", "ip"]);
}

#[tokio::test]
async fn non_global_addresses_are_never_looked_up() {
    let db = TestDb::new().await;
    let geo = Fake::start(|_| {
        Reply::json(200, json!({ "status": "success", "countryCode": "US", "region": "FL", "regionName": "Florida", "city": "Miami", "zip": "33101" }))
    })
    .await;
    let app = serve_app(
        &db,
        &[
            PROXY,
            ("geo_providers", "remote"),
            ("geo_remote_base_url", &geo.url),
        ],
    )
    .await;
    let c = client(&db, false).await;
    for ip in [
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "100.64.0.1",
        "169.254.1.1",
        "127.0.0.2",
        "0.0.0.0",
        "192.0.2.1",
        "198.51.100.7",
        "203.0.113.9",
        "198.18.0.1",
        "224.0.0.1",
        "240.0.0.1",
        "::1",
        "fd00::1",
        "fe80::1",
        "::ffff:10.0.0.1",
        "2001:db8::1",
        "64:ff9b::a00:1",
    ] {
        let (status, res) = post(&app, &lead(c, json!({})), ip).await;
        assert_eq!(status, 201, "{ip}: {res}");
        assert_eq!(res["geo_lookup"]["outcome"], "not_global", "{ip}: {res}");
    }
    // Without a trusted proxy the peer is 127.0.0.1: loopback, not looked up either.
    let (_, res) = post_raw(&app, lead(c, json!({})).to_string(), &[]).await;
    assert_eq!(res["geo_lookup"]["reason"], "loopback");
    assert_eq!(geo.count(), 0);

    // A global address is.
    let (_, res) = post(&app, &lead(c, json!({})), "23.0.0.5").await;
    assert_eq!(res["geo_lookup"]["provider"], "remote");
    assert_eq!(res["address"]["zip"], "33101");
    assert_eq!(geo.count(), 1);
    assert!(geo.requests()[0].path.starts_with("/json/23.0.0.5?fields="));
}

#[tokio::test]
async fn a_slow_broken_or_rate_limited_remote_provider_never_fails_the_lead() {
    let db = TestDb::new().await;
    seed_geoip(&db).await;
    let geo = Fake::start(|r| {
        if r.path.starts_with("/json/23.0.0.5") {
            // Far longer than the 200 ms timeout: a lead that waited would
            // get "Late" and no "timed out" (no clock is read by the test).
            Reply::json(
                200,
                json!({ "status": "success", "countryCode": "US", "city": "Late" }),
            )
            .after(Duration::from_secs(60))
        } else if r.path.starts_with("/json/24.48.0.1") {
            Reply::text(200, "<html>502 Bad Gateway</html>")
        } else {
            Reply::json(429, json!({ "message": "slow down" })).header("retry-after", "120")
        }
    })
    .await;
    let app = serve_app(
        &db,
        &[
            PROXY,
            ("geo_providers", "remote,embedded"),
            ("geo_remote_base_url", &geo.url),
            ("geo_remote_timeout_ms", "200"),
            ("geo_remote_key", "KEY1"),
        ],
    )
    .await;
    let c = client(&db, true).await;

    // Slow: given up on at the timeout, the embedded database answers.
    let (status, res) = post(&app, &lead(c, json!({})), "23.0.0.5").await;
    assert_eq!(status, 201, "{res}");
    assert_eq!(res["geo_lookup"]["tried"][0]["error"], "timed out");
    assert_eq!(res["geo_lookup"]["provider"], "embedded");
    assert_eq!(res["address"]["city"], "Miami");

    // Garbage: ignored, embedded answers.
    let (status, res) = post(&app, &lead(c, json!({})), "24.48.0.1").await;
    assert_eq!(status, 201);
    assert!(
        res["geo_lookup"]["tried"][0]["error"]
            .as_str()
            .unwrap()
            .starts_with("not JSON"),
        "{res}"
    );
    assert_eq!(res["address"]["state"], "QC");

    // 429: the provider is paused, the next lead does not call it.
    let (status, res) = post(&app, &lead(c, json!({})), "81.2.69.1").await;
    assert_eq!(status, 201);
    assert!(
        res["geo_lookup"]["tried"][0]["error"]
            .as_str()
            .unwrap()
            .contains("429"),
        "{res}"
    );
    assert_eq!(res["address"]["city"], "London");
    let calls = geo.count();
    let (_, res) = post(&app, &lead(c, json!({})), "81.2.69.2").await;
    assert!(
        res["geo_lookup"]["tried"][0]["error"]
            .as_str()
            .unwrap()
            .contains("paused"),
        "{res}"
    );
    assert_eq!(geo.count(), calls);
    let paused = db.count("SELECT (extract(epoch FROM paused_until - now()) BETWEEN 100 AND 120)::int::int8 FROM geo_provider_pauses").await;
    assert_eq!(paused, 1, "Retry-After honoured");
    assert!(geo.requests()[0].path.ends_with("&key=KEY1"));
    assert_eq!(db.count("SELECT count(*) FROM leads").await, 4);
}

#[tokio::test]
async fn a_failed_inline_delivery_leaves_the_row_queued_for_retry() {
    let db = TestDb::new().await;
    let meta =
        Fake::start(|_| Reply::json(503, json!({ "error": { "message": "unavailable" } }))).await;
    let google =
        Fake::start(|_| Reply::json(400, json!({ "error": { "message": "INVALID_ARGUMENT" } })))
            .await;
    let hook = Fake::start(|_| Reply::text(200, "ok").after(Duration::from_secs(3))).await;
    let app = serve_app(
        &db,
        &[
            ("meta_capi_base_url", &meta.url),
            ("google_ads_base_url", &google.url),
            LOOPBACK_DESTINATIONS,
            ("delivery_inline_timeout_ms", "300"),
        ],
    )
    .await;
    let c = client(&db, true).await;
    destination(
        &db,
        c,
        "meta_capi",
        json!({ "pixel_id": "P", "access_token": "T" }),
    )
    .await;
    destination(&db, c, "google_ec", json!({ "customer_id": "1", "conversion_action_id": "2", "access_token": "a", "developer_token": "d" })).await;
    destination(
        &db,
        c,
        "webhook",
        json!({ "url": format!("{}/hook", hook.url), "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" }),
    )
    .await;
    destination(&db, c, "gtm_server", json!({ "url": "http://127.0.0.1:9" })).await;

    let (status, res) = post(&app, &lead(c, json!({})), "127.0.0.1").await;
    assert_eq!(status, 201, "{res}");
    let rows = db
        .rows(
            "SELECT destination, status, retry_count, last_http_status, coalesce(last_error, ''), coalesce(dead_letter_reason, ''),
                    extract(epoch FROM next_retry_at - now())::float8, lease_owner IS NULL
               FROM conversion_deliveries ORDER BY destination",
        )
        .await;
    let by = |kind: &str| rows.iter().find(|r| r.get::<_, String>(0) == kind).unwrap();
    // 5xx: retried in about 5 minutes (with up to 10% jitter).
    let m = by("meta_capi");
    assert_eq!(
        (
            m.get::<_, String>(1).as_str(),
            m.get::<_, i32>(2),
            m.get::<_, Option<i32>>(3)
        ),
        ("retrying", 0, Some(503))
    );
    let wait: f64 = m.get(6);
    assert!((280.0..=335.0).contains(&wait), "{wait}");
    assert!(m.get::<_, bool>(7), "lease released");
    // 4xx: retrying cannot help.
    let g = by("google_ec");
    assert_eq!(
        (
            g.get::<_, String>(1).as_str(),
            g.get::<_, String>(5).as_str()
        ),
        ("dead_letter", "rejected")
    );
    assert!(g.get::<_, String>(4).contains("INVALID_ARGUMENT"));
    // Timeout: retried.
    let w = by("webhook");
    assert_eq!(
        (
            w.get::<_, String>(1).as_str(),
            w.get::<_, String>(4).as_str()
        ),
        ("retrying", "timed out")
    );
    // A config that cannot produce a request: dead-lettered with the reason.
    let t = by("gtm_server");
    assert_eq!(
        (
            t.get::<_, String>(1).as_str(),
            t.get::<_, String>(5).as_str()
        ),
        ("dead_letter", "config")
    );
    assert!(t.get::<_, String>(4).contains("measurement_id"));
    assert_eq!(
        db.count("SELECT count(*) FROM delivery_attempts WHERE trigger = 'inline'")
            .await,
        4
    );
    let statuses: Vec<&str> = res["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses.len(), 4);
    // The webhook was signed (Standard Webhooks; verified in tests/retry.rs).
    let h = &hook.requests()[0];
    assert!(h.headers["webhook-signature"].starts_with("v1,"));
}

#[tokio::test]
async fn the_outbox_row_is_committed_before_the_inline_send() {
    let db = TestDb::new().await;
    let meta =
        Fake::start(|_| Reply::json(200, json!({})).after(Duration::from_millis(1500))).await;
    let app = serve_app(
        &db,
        &[
            ("meta_capi_base_url", &meta.url),
            ("delivery_inline_timeout_ms", "5000"),
        ],
    )
    .await;
    let c = client(&db, true).await;
    destination(
        &db,
        c,
        "meta_capi",
        json!({ "pixel_id": "P", "access_token": "T" }),
    )
    .await;
    let request = tokio::spawn(app.post("/v1/leads").json(&lead(c, json!({}))).status());
    // While Meta is answering, the lead and its delivery are already there,
    // pending and leased: if this instance died now, the retry run would
    // deliver it once the lease ran out.
    let deadline = Instant::now() + Duration::from_secs(10);
    while meta.count() == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let r = db.one("SELECT status, lease_owner IS NOT NULL, lease_expires_at > now(), (SELECT count(*) FROM leads) FROM conversion_deliveries").await;
    assert_eq!(r.get::<_, String>(0), "pending");
    assert!(r.get::<_, bool>(1) && r.get::<_, bool>(2));
    assert_eq!(r.get::<_, i64>(3), 1);
    assert_eq!(request.await.unwrap(), 201);
    assert_eq!(
        db.value::<String>("SELECT status FROM conversion_deliveries")
            .await,
        "resolved"
    );
}

#[tokio::test]
async fn the_same_event_id_twice_returns_the_first_lead_and_queues_once() {
    let db = TestDb::new().await;
    let meta = Fake::start(|_| Reply::json(200, json!({}))).await;
    let app = serve_app(&db, &[("meta_capi_base_url", &meta.url)]).await;
    let c = client(&db, true).await;
    destination(
        &db,
        c,
        "meta_capi",
        json!({ "pixel_id": "P", "access_token": "T" }),
    )
    .await;
    let body = lead(c, json!({}));
    let (s1, r1) = post(&app, &body, "127.0.0.1").await;
    let mut changed = body.clone();
    changed["first_name"] = json!("Someone Else");
    let (s2, r2) = post(&app, &changed, "127.0.0.1").await;
    assert_eq!((s1, s2), (201, 200));
    assert_eq!(r1["lead_id"], r2["lead_id"]);
    assert_eq!(r2["duplicate"], true);
    assert_eq!(db.count("SELECT count(*) FROM leads").await, 1);
    assert_eq!(
        db.count("SELECT count(*) FROM conversion_deliveries").await,
        1
    );
    assert_eq!(meta.count(), 1);
    assert_eq!(
        db.value::<String>("SELECT first_name FROM leads").await,
        "Jane"
    );
}

#[tokio::test]
async fn without_ads_consent_only_non_ad_destinations_are_queued() {
    let db = TestDb::new().await;
    let hook = Fake::start(|_| Reply::text(204, "")).await;
    let app = serve_app(&db, &[LOOPBACK_DESTINATIONS]).await;
    let c = client(&db, true).await;
    destination(
        &db,
        c,
        "meta_capi",
        json!({ "pixel_id": "P", "access_token": "T" }),
    )
    .await;
    destination(&db, c, "webhook", json!({ "url": hook.url })).await;
    let (status, res) = post(
        &app,
        &lead(c, json!({ "consent": { "ads": false } })),
        "127.0.0.1",
    )
    .await;
    assert_eq!(status, 201, "{res}");
    assert_eq!(res["skipped_destinations"][0]["destination"], "meta_capi");
    assert_eq!(
        db.count("SELECT count(*) FROM conversion_deliveries").await,
        1
    );
    assert_eq!(
        db.one("SELECT destination, status FROM conversion_deliveries")
            .await
            .get::<_, String>(1),
        "resolved"
    );
    let sent = hook.requests()[0].json();
    assert_eq!(
        sent["data"]["user_data"]["em"][0],
        sha256("jane.doe@example.com")
    );
    assert!(!hook.requests()[0].body.windows(4).any(|w| w == b"Jane"));
}

#[tokio::test]
async fn bad_input_is_refused_with_the_field_named_and_nothing_stored() {
    let db = TestDb::new().await;
    let app = serve_app(&db, &[]).await;
    let strict = client(&db, true).await;
    let lenient = client(&db, false).await;
    let ip = "127.0.0.1";

    let cases: Vec<(Value, u16, &str, Option<&str>)> = vec![
        (
            lead(strict, json!({ "email": "jane@" })),
            400,
            "invalid_field",
            Some("email"),
        ),
        (
            lead(strict, json!({ "phone": "call me maybe" })),
            400,
            "invalid_field",
            Some("phone"),
        ),
        (
            lead(strict, json!({ "email": null, "phone": null })),
            400,
            "invalid_field",
            Some("email"),
        ),
        (
            lead(strict, json!({ "email": 42 })),
            400,
            "invalid_field",
            Some("email"),
        ),
        (
            lead(strict, json!({ "emial": "x@y.z" })),
            400,
            "invalid_field",
            None,
        ),
        (
            lead(Uuid::new_v4(), json!({})),
            404,
            "unknown_client",
            Some("client_id"),
        ),
        (
            json!({ "client_id": "nope", "event_id": "e" }),
            400,
            "invalid_field",
            Some("client_id"),
        ),
    ];
    for (body, status, code, field) in cases {
        let (s, res) = post(&app, &body, ip).await;
        assert_eq!(s, status, "{body}: {res}");
        assert_eq!(res["error"]["code"], code, "{res}");
        if let Some(f) = field {
            assert_eq!(res["error"]["field"], f, "{res}");
        }
    }
    let (s, res) = post_raw(&app, "{\"client_id\":".into(), &[]).await;
    assert_eq!(
        (s, res["error"]["code"].as_str()),
        (400, Some("malformed_json"))
    );
    let huge = lead(strict, json!({ "fields": { "notes": "x".repeat(70_000) } }));
    assert_eq!(post(&app, &huge, ip).await.0, 413);
    let (s, res) = post_raw(
        &app,
        lead(strict, json!({})).to_string(),
        &[("origin", "https://evil.example")],
    )
    .await;
    assert_eq!(
        (s, res["error"]["code"].as_str()),
        (403, Some("origin_not_allowed"))
    );
    let res = app
        .post("/v1/leads")
        .header("content-type", "application/xml")
        .body("<a/>")
        .response()
        .await;
    assert_eq!(res.status().as_u16(), 415);
    assert_eq!(db.count("SELECT count(*) FROM leads").await, 0);

    // A client that accepts leads without a valid contact keeps the lead and says what it left out.
    let (s, res) = post(
        &app,
        &lead(lenient, json!({ "email": "jane@", "phone": "12" })),
        ip,
    )
    .await;
    assert_eq!(s, 201, "{res}");
    let fields: Vec<&str> = res["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, vec!["email", "phone"]);
    let r = db
        .one(
            "SELECT email IS NULL AND phone IS NULL, jsonb_array_length(invalid_fields) FROM leads",
        )
        .await;
    assert!(r.get::<_, bool>(0));
    assert_eq!(r.get::<_, i32>(1), 2);

    // CORS: the client's own origin is allowed, preflight included.
    let (s, _) = post_raw(
        &app,
        lead(strict, json!({})).to_string(),
        &[("origin", "https://www.shop.com")],
    )
    .await;
    assert_eq!(s, 201);
    let pre = app
        .options("/v1/leads")
        .header("origin", "https://www.shop.com")
        .response()
        .await;
    assert_eq!(pre.status().as_u16(), 204);
    assert_eq!(
        pre.headers()["access-control-allow-origin"],
        "https://www.shop.com"
    );
}

#[tokio::test]
async fn postgres_down_answers_503_and_sends_nothing() {
    let db = TestDb::new().await;
    let meta = Fake::start(|_| Reply::json(200, json!({}))).await;
    let app = serve_app(
        &db,
        &[
            (
                "database_url",
                "postgres://postgres@localhost:1/x?sslmode=disable",
            ),
            ("database_host", "localhost:1"),
            ("meta_capi_base_url", &meta.url),
        ],
    )
    .await;
    let (status, res) = post(&app, &lead(Uuid::new_v4(), json!({})), "127.0.0.1").await;
    assert_eq!(status, 503, "{res}");
    assert_eq!(res["error"]["code"], "database_unavailable");
    assert_eq!(meta.count(), 0);
}
