//! `POST /v1/events` end to end: the real ingest component on the local host
//! against Postgres.

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use integration_tests::*;
use serde_json::{json, Value};
use uuid::Uuid;

const UA_DESKTOP: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";

async fn client(db: &TestDb, root: &str, kind: &str, enabled: bool, localhost: bool) -> Uuid {
    ClientSpec::new()
        .client_type(kind)
        .enabled(enabled)
        .root_domain(root)
        .allow_localhost(localhost)
        .insert(db)
        .await
}

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn event(name: &str, at: DateTime<Utc>, page: &str) -> Value {
    widget_event(name, at, page)
}

/// A batch from a desktop Chrome in the US.
fn batch(client: Uuid, person: &str, events: Vec<Value>) -> Value {
    let mut body = widget_batch(client, person, events);
    body["context"] = json!({ "user_agent": UA_DESKTOP, "locale": "en-US", "screen": "1920x1080" });
    body
}

async fn post(app: &TestApp, body: &Value) -> (u16, Value) {
    app.post_json("/v1/events", body).await
}

async fn post_with(app: &TestApp, body: String, headers: &[(&str, &str)]) -> (u16, Value) {
    app.post("/v1/events")
        .json_text(body)
        .headers(headers)
        .send()
        .await
}

#[tokio::test]
async fn a_batch_is_stored_with_attribution_device_and_its_session() {
    let db = TestDb::new().await;
    let app = serve_app(&db, &[]).await;
    let c = client(&db, "shop.com", "client", true, false).await;
    let t0 = Utc::now() - Duration::minutes(10);
    let page = "https://www.shop.com/pricing?utm_source=google&utm_medium=cpc&utm_campaign=spring&gclid=G1&fbclid=F1";
    let mut first = event("widget_impression", t0, page);
    first["referrer"] = json!("https://www.google.com/search?q=shop");
    first["widget_displayed_at"] = json!(t0.timestamp_millis());
    first["duration_s"] = json!(14.5);
    first["properties"] = json!({ "variant": "b" });
    let events = vec![
        first,
        event(
            "chat_started",
            t0 + Duration::minutes(1),
            "https://shop.com/pricing",
        ),
        event(
            "message_sent",
            t0 + Duration::minutes(2),
            "https://shop.com/pricing",
        ),
    ];
    let (status, body) = post(&app, &batch(c, "person-1", events)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["accepted"], 3);
    assert_eq!(body["rejected"], json!([]));
    let session_id = body["session_id"].as_str().unwrap().to_string();

    let row = db
        .client()
        .await
        .query_one(
            "SELECT person_id, session_id, domain, referrer_domain, utm_source, utm_medium, utm_campaign, gclid, fbc,
                    device_type, browser, os, is_bot, client_ip, widget_displayed_at, duration_s, properties
               FROM session_events WHERE client_id = $1 AND event_name = 'widget_impression'",
            &[&c],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "person-1");
    assert_eq!(row.get::<_, String>(1), session_id);
    assert_eq!(row.get::<_, String>(2), "shop.com");
    assert_eq!(row.get::<_, String>(3), "google.com");
    assert_eq!(row.get::<_, String>(4), "google");
    assert_eq!(row.get::<_, String>(5), "cpc");
    assert_eq!(row.get::<_, String>(6), "spring");
    assert_eq!(row.get::<_, String>(7), "G1");
    assert_eq!(
        row.get::<_, String>(8),
        format!("fb.1.{}.F1", t0.timestamp_millis())
    );
    assert_eq!(row.get::<_, String>(9), "desktop");
    assert_eq!(row.get::<_, String>(10), "Chrome");
    assert_eq!(row.get::<_, String>(11), "Windows 10");
    assert!(!row.get::<_, bool>(12));
    // Never the raw address: truncated to /24.
    assert_eq!(row.get::<_, String>(13), "127.0.0.0");
    assert_eq!(row.get::<_, i64>(14), t0.timestamp_millis());
    assert_eq!(row.get::<_, f64>(15), 14.5);
    assert_eq!(row.get::<_, Value>(16), json!({ "variant": "b" }));

    let s = db
        .client()
        .await
        .query_one(
            "SELECT event_count, landing_page, referrer_domain, utm_campaign, device_type, chat_started, form_submitted, locale, screen
               FROM widget_sessions WHERE client_id = $1 AND session_id = $2",
            &[&c, &session_id],
        )
        .await
        .unwrap();
    assert_eq!(s.get::<_, i32>(0), 3);
    assert_eq!(s.get::<_, String>(1), page);
    assert_eq!(s.get::<_, String>(2), "google.com");
    assert_eq!(s.get::<_, String>(3), "spring");
    assert_eq!(s.get::<_, String>(4), "desktop");
    assert!(s.get::<_, bool>(5));
    assert!(!s.get::<_, bool>(6));
    assert_eq!(s.get::<_, String>(7), "en-US");
    assert_eq!(s.get::<_, String>(8), "1920x1080");
}

#[tokio::test]
async fn sessions_split_after_thirty_minutes_of_inactivity_and_on_a_new_campaign() {
    let db = TestDb::new().await;
    let app = serve_app(&db, &[]).await;
    let c = client(&db, "shop.com", "client", true, false).await;
    let t0 = Utc::now() - Duration::hours(3);
    let p = "https://shop.com/";
    let (_, a) = post(
        &app,
        &batch(
            c,
            "p",
            vec![
                event("widget_open", t0, p),
                event("widget_open", t0 + Duration::minutes(30), p),
            ],
        ),
    )
    .await;
    // 30 minutes exactly continues; 30 minutes and one second does not.
    let (_, b) = post(
        &app,
        &batch(
            c,
            "p",
            vec![event("widget_open", t0 + Duration::minutes(60), p)],
        ),
    )
    .await;
    let (_, d) = post(
        &app,
        &batch(
            c,
            "p",
            vec![event(
                "widget_open",
                t0 + Duration::minutes(90) + Duration::seconds(1),
                p,
            )],
        ),
    )
    .await;
    assert_eq!(a["session_id"], b["session_id"]);
    assert_ne!(b["session_id"], d["session_id"]);
    // A different campaign starts a new session even within the timeout.
    let (_, e) = post(
        &app,
        &batch(
            c,
            "p",
            vec![event(
                "widget_open",
                t0 + Duration::minutes(95),
                "https://shop.com/?utm_campaign=fall",
            )],
        ),
    )
    .await;
    let (_, f) = post(
        &app,
        &batch(
            c,
            "p",
            vec![event("widget_open", t0 + Duration::minutes(96), p)],
        ),
    )
    .await;
    assert_ne!(d["session_id"], e["session_id"]);
    assert_eq!(e["session_id"], f["session_id"]);
    assert_eq!(db.count("SELECT count(*) FROM widget_sessions").await, 3);
    let counts: Vec<i32> = db
        .column("SELECT event_count FROM widget_sessions ORDER BY first_seen_at")
        .await;
    assert_eq!(counts, vec![3, 1, 2]);
    // Another visitor never joins these sessions.
    let (_, g) = post(
        &app,
        &batch(
            c,
            "other",
            vec![event("widget_open", t0 + Duration::minutes(96), p)],
        ),
    )
    .await;
    assert_ne!(g["session_id"], f["session_id"]);
}

#[tokio::test]
async fn a_retried_batch_stores_nothing_twice_and_answers_the_same() {
    let db = TestDb::new().await;
    let app = serve_app(&db, &[]).await;
    let c = client(&db, "shop.com", "client", true, false).await;
    let t0 = Utc::now() - Duration::minutes(5);
    let mut events: Vec<Value> = (0..10)
        .map(|i| {
            event(
                "message_sent",
                t0 + Duration::seconds(i),
                "https://shop.com/",
            )
        })
        .collect();
    events.push(json!({ "name": "widget_open", "timestamp": ts(t0) }));
    let body = batch(c, "p", events);
    let first = post(&app, &body).await;
    let second = post(&app, &body).await;
    assert_eq!(first.0, 207);
    // The same answer, but for the events it now lists as stored before.
    assert_eq!(first.1["duplicates"], json!([]));
    let ids: Vec<Value> = second.1["duplicates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["index"].clone())
        .collect();
    assert_eq!(ids, (0..10).map(|i| json!(i)).collect::<Vec<_>>());
    let mut again = second.clone();
    again.1["duplicates"] = json!([]);
    assert_eq!(first, again);
    assert_eq!(db.count("SELECT count(*) FROM session_events").await, 10);
    assert_eq!(
        db.count("SELECT sum(event_count)::int8 FROM widget_sessions")
            .await,
        10
    );
}

#[tokio::test]
async fn valid_events_are_stored_and_each_rejected_one_is_explained_and_kept() {
    let db = TestDb::new().await;
    let app = serve_app(&db, &[]).await;
    let c = client(&db, "shop.com", "client", true, false).await;
    let now = Utc::now();
    let good = |i: i64| {
        event(
            "widget_impression",
            now - Duration::minutes(i),
            "https://shop.com/",
        )
    };
    let mut future = good(0);
    future["timestamp"] = json!(ts(now + Duration::hours(25)));
    let mut old = good(0);
    old["timestamp"] = json!(ts(now - Duration::days(8)));
    let mut bad_props = good(0);
    bad_props["properties"] = json!("x");
    let mut foreign = good(0);
    foreign["page_url"] = json!("https://evil.com/");
    let events = vec![
        good(1),
        json!({ "name": "widget_open", "timestamp": ts(now) }),
        good(2),
        json!({ "event_id": Uuid::new_v4(), "name": "Widget Open", "timestamp": ts(now) }),
        future,
        old,
        bad_props,
        foreign,
        good(3),
    ];
    let (status, body) = post(&app, &batch(c, "p", events)).await;
    assert_eq!(status, 207, "{body}");
    assert_eq!(body["accepted"], 3);
    let rejected: Vec<(i64, String)> = body["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["index"].as_i64().unwrap(),
                r["field"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        rejected,
        vec![
            (1, "events[1].event_id".to_string()),
            (3, "events[3].name".to_string()),
            (4, "events[4].timestamp".to_string()),
            (5, "events[5].timestamp".to_string()),
            (6, "events[6].properties".to_string()),
            (7, "events[7].page_url".to_string()),
        ]
    );
    assert!(body["rejected"][2]["reason"]
        .as_str()
        .unwrap()
        .contains("24 hours in the future"));
    assert!(body["rejected"][3]["reason"]
        .as_str()
        .unwrap()
        .contains("7 days in the past"));
    assert_eq!(db.count("SELECT count(*) FROM session_events").await, 3);
    let kept = db
        .rows(
            "SELECT event_index, field, reason, payload FROM rejected_events ORDER BY event_index",
        )
        .await;
    assert_eq!(kept.len(), 6);
    assert_eq!(kept[1].get::<_, String>(1), "events[3].name");
    assert_eq!(kept[1].get::<_, Value>(3)["name"], "Widget Open");

    // Nothing valid at all: 422, and still nothing lost.
    let (status, body) = post(&app, &batch(c, "p", vec![json!({ "name": "x" })])).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["accepted"], 0);
    assert_eq!(db.count("SELECT count(*) FROM rejected_events").await, 7);
}

#[tokio::test]
async fn rejected_events_are_capped_per_client() {
    let db = TestDb::new().await;
    let app = serve_app(&db, &[("rejected_events_cap_per_hour", "3")]).await;
    let c = client(&db, "shop.com", "client", true, false).await;
    let bad: Vec<Value> = (0..5).map(|i| json!({ "name": "x", "n": i })).collect();
    let (status, body) = post(&app, &batch(c, "p", bad.clone())).await;
    assert_eq!(status, 422);
    assert_eq!(body["rejected"].as_array().unwrap().len(), 5);
    let more: Vec<Value> = (5..10).map(|i| json!({ "name": "x", "n": i })).collect();
    post(&app, &batch(c, "p", more)).await;
    assert_eq!(db.count("SELECT count(*) FROM rejected_events").await, 3);
}

#[tokio::test]
async fn whole_request_errors_say_what_is_wrong_and_store_nothing() {
    let db = TestDb::new().await;
    let app = serve_app(&db, &[]).await;
    let c = client(&db, "shop.com", "client", true, false).await;
    let off = client(&db, "off.com", "client", false, false).await;
    let ok_event = || event("widget_open", Utc::now(), "https://shop.com/");
    // (body, extra headers, expected status, expected error code)
    type Case<'a> = (String, Vec<(&'a str, &'a str)>, u16, &'a str);
    let cases: Vec<Case> = vec![
        (
            "{\"client_id\": ".to_string(),
            vec![],
            400,
            "malformed_json",
        ),
        (
            json!({ "client_id": c, "events": [ok_event()] }).to_string(),
            vec![],
            400,
            "missing_field",
        ),
        (
            json!({ "client_id": "nope", "anonymous_id": "p", "events": [ok_event()] }).to_string(),
            vec![],
            400,
            "invalid_field",
        ),
        (
            batch(c, "p", (0..501).map(|_| ok_event()).collect()).to_string(),
            vec![],
            413,
            "too_many_events",
        ),
        (
            format!("{{\"pad\": \"{}\"}}", "x".repeat(1 << 20)),
            vec![],
            413,
            "body_too_large",
        ),
        (
            batch(Uuid::new_v4(), "p", vec![ok_event()]).to_string(),
            vec![],
            404,
            "unknown_client",
        ),
        (
            batch(
                off,
                "p",
                vec![event("widget_open", Utc::now(), "https://off.com/")],
            )
            .to_string(),
            vec![],
            403,
            "client_disabled",
        ),
        (
            batch(c, "p", vec![ok_event()]).to_string(),
            vec![("origin", "https://evil.com")],
            403,
            "origin_not_allowed",
        ),
        (
            batch(c, "p", vec![ok_event()]).to_string(),
            vec![("content-type", "application/x-www-form-urlencoded")],
            415,
            "unsupported_content_type",
        ),
    ];
    for (body, headers, status, code) in cases {
        let mut req = app.post("/v1/events").body(body);
        if !headers.iter().any(|(k, _)| *k == "content-type") {
            req = req.header("content-type", "application/json");
        }
        let res = req.headers(&headers).response().await;
        assert_eq!(res.status().as_u16(), status, "{code}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["error"]["code"], code, "{body}");
        assert!(!body["error"]["message"].as_str().unwrap().is_empty());
    }
    assert_eq!(db.count("SELECT count(*) FROM session_events").await, 0);
    assert_eq!(db.count("SELECT count(*) FROM rejected_events").await, 0);
    assert_eq!(app.get("/v1/events").status().await, 405);
}

#[tokio::test]
async fn cors_answers_only_the_clients_origins() {
    let db = TestDb::new().await;
    let app = serve_app(&db, &[]).await;
    let c = client(&db, "shop.com", "client", true, false).await;
    let t = client(&db, "staging.test", "test", true, true).await;
    let preflight = |origin: &'static str, query: String| {
        app.options(&format!("/v1/events{query}"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .response()
    };
    let res = preflight("https://www.shop.com", String::new()).await;
    assert_eq!(res.status(), 204);
    assert_eq!(
        res.headers()["access-control-allow-origin"],
        "https://www.shop.com"
    );
    assert!(res.headers()["access-control-allow-methods"]
        .to_str()
        .unwrap()
        .contains("POST"));
    let res = preflight("https://evil.com", String::new()).await;
    assert_eq!(res.status(), 403);
    assert!(res.headers().get("access-control-allow-origin").is_none());
    // localhost only for clients that allow it.
    assert_eq!(
        preflight("http://localhost:5173", format!("?client_id={t}"))
            .await
            .status(),
        204
    );
    assert_eq!(
        preflight("http://localhost:5173", format!("?client_id={c}"))
            .await
            .status(),
        403
    );

    let (status, _) = post_with(
        &app,
        batch(
            c,
            "p",
            vec![event("widget_open", Utc::now(), "https://shop.com/")],
        )
        .to_string(),
        &[("origin", "https://shop.com")],
    )
    .await;
    assert_eq!(status, 200);
    let res = app
        .post("/v1/events")
        .header("content-type", "text/plain;charset=UTF-8")
        .header("origin", "https://m.shop.com")
        .body(
            batch(
                c,
                "p",
                vec![event("widget_open", Utc::now(), "https://m.shop.com/")],
            )
            .to_string(),
        )
        .response()
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()["access-control-allow-origin"],
        "https://m.shop.com"
    );
    let (status, _) = post_with(
        &app,
        batch(
            t,
            "p",
            vec![event("widget_open", Utc::now(), "http://localhost:5173/")],
        )
        .to_string(),
        &[("origin", "http://localhost:5173")],
    )
    .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn parallel_batches_of_one_session_keep_its_row_consistent() {
    let db = TestDb::new().await;
    let app = serve_app(&db, &[]).await;
    let c = client(&db, "shop.com", "client", true, false).await;
    let t0 = Utc::now() - Duration::minutes(20);
    let mut tasks = Vec::new();
    for i in 0..16 {
        let events: Vec<Value> = (0..5)
            .map(|j| {
                event(
                    if i == 7 && j == 0 {
                        "client_form_submitted"
                    } else {
                        "message_sent"
                    },
                    t0 + Duration::seconds(i * 5 + j),
                    "https://shop.com/",
                )
            })
            .collect();
        // One visitor names its session; the other leaves it to the server.
        let mut body = batch(
            c,
            if i % 2 == 0 {
                "names-its-session"
            } else {
                "server-sessionized"
            },
            events,
        );
        if i % 2 == 0 {
            body["session_id"] = json!("widget-session-1");
        }
        tasks.push(tokio::spawn(app.post("/v1/events").json(&body).status()));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    let rows = db.rows("SELECT session_id, event_count, first_seen_at = (SELECT min(occurred_at) FROM session_events e WHERE e.session_id = s.session_id),
                    last_seen_at = (SELECT max(occurred_at) FROM session_events e WHERE e.session_id = s.session_id),
                    event_count = (SELECT count(*) FROM session_events e WHERE e.session_id = s.session_id)
               FROM widget_sessions s ORDER BY session_id").await;
    // One session named by the widget, one the server made for the rest.
    assert_eq!(
        rows.len(),
        2,
        "server-side sessionization split one visitor's concurrent batches"
    );
    for r in &rows {
        assert_eq!(r.get::<_, i32>(1), 40);
        assert!(r.get::<_, bool>(2) && r.get::<_, bool>(3) && r.get::<_, bool>(4));
    }
    assert_eq!(
        db.count("SELECT count(*) FROM widget_sessions WHERE form_submitted")
            .await,
        1
    );
}

#[tokio::test]
async fn postgres_down_answers_503_and_writes_nothing() {
    let db = TestDb::new().await;
    let c = client(&db, "shop.com", "client", true, false).await;
    let app = serve_app(
        &db,
        &[
            (
                "database_url",
                "postgres://postgres@localhost:1/x?sslmode=disable",
            ),
            ("database_host", "localhost:1"),
        ],
    )
    .await;
    let (status, body) = post(
        &app,
        &batch(
            c,
            "p",
            vec![event("widget_open", Utc::now(), "https://shop.com/")],
        ),
    )
    .await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "database_unavailable");
    assert_eq!(db.count("SELECT count(*) FROM session_events").await, 0);
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_forwarded_address_is_used() {
    let db = TestDb::new().await;
    let app = serve_app(
        &db,
        &[("trusted_proxies", "127.0.0.1"), ("ip_storage", "raw")],
    )
    .await;
    let c = client(&db, "shop.com", "client", true, false).await;
    let (status, _) = post_with(
        &app,
        batch(
            c,
            "p",
            vec![event("widget_open", Utc::now(), "https://shop.com/")],
        )
        .to_string(),
        &[("x-forwarded-for", "198.51.100.23, 127.0.0.1")],
    )
    .await;
    assert_eq!(status, 200);
    let ip: String = db.value("SELECT client_ip FROM session_events").await;
    assert_eq!(ip, "198.51.100.23");
}

#[tokio::test]
async fn each_user_agent_is_parsed_once_and_reparsed_when_the_parser_changes() {
    const STALE: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:132.0) Gecko/20100101 Firefox/132.0";
    let db = TestDb::new().await;
    let app = serve_app(&db, &[]).await;
    let c = client(&db, "shop.com", "client", true, false).await;
    let p = "https://shop.com/";
    post(
        &app,
        &batch(c, "a", vec![event("widget_open", Utc::now(), p)]),
    )
    .await;
    post(
        &app,
        &batch(c, "b", vec![event("widget_open", Utc::now(), p)]),
    )
    .await;
    let cached: Vec<(String, String, String)> = db
        .rows("SELECT user_agent, device_type, parser FROM user_agents")
        .await
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(cached.len(), 1);
    assert_eq!(
        (cached[0].0.as_str(), cached[0].1.as_str()),
        (UA_DESKTOP, "desktop")
    );
    let parser = cached[0].2.clone();

    // A cached answer is used as is (here a deliberately wrong one)...
    let odd = "OddAgent/1.0";
    let current = db.client().await;
    current
        .execute(
            "INSERT INTO user_agents (user_agent, device_type, is_bot, parser) VALUES ($1, 'tablet', false, $2), ('Mozilla/5.0 (X11; Linux x86_64; rv:132.0) Gecko/20100101 Firefox/132.0', 'tablet', false, 'some-older-parser')",
            &[&odd, &parser],
        )
        .await
        .unwrap();
    for (person, ua) in [("c", odd), ("d", STALE)] {
        let mut body = batch(c, person, vec![event("widget_open", Utc::now(), p)]);
        body["context"]["user_agent"] = json!(ua);
        assert_eq!(post(&app, &body).await.0, 200);
    }
    let devices: Vec<(String, String)> = current
        .query("SELECT person_id, device_type FROM widget_sessions WHERE person_id IN ('c', 'd') ORDER BY person_id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        devices,
        vec![
            ("c".to_string(), "tablet".to_string()),
            ("d".to_string(), "desktop".to_string())
        ]
    );
    // ...and a row of an older parser is parsed again and replaced.
    let stale: (String, String) = {
        let r = current
            .query_one(
                "SELECT device_type, parser FROM user_agents WHERE user_agent = $1",
                &[&STALE],
            )
            .await
            .unwrap();
        (r.get(0), r.get(1))
    };
    assert_eq!(stale, ("desktop".to_string(), parser));
}

#[tokio::test]
async fn bots_are_stored_flagged_by_user_agent_or_by_speed() {
    let db = TestDb::new().await;
    let app = serve_app(&db, &[]).await;
    let c = client(&db, "shop.com", "client", true, false).await;
    let t0 = Utc::now() - Duration::minutes(5);
    // An HTTP library.
    let mut body = batch(
        c,
        "script",
        vec![event("widget_impression", t0, "https://shop.com/")],
    );
    body["context"]["user_agent"] = json!("python-requests/2.32.3");
    let (status, _) = post(&app, &body).await;
    assert_eq!(status, 200);
    // A browser's user agent, but 12 events in under a second.
    let fast: Vec<Value> = (0..12)
        .map(|i| {
            event(
                "message_sent",
                t0 + Duration::milliseconds(i * 50),
                "https://shop.com/",
            )
        })
        .collect();
    let (status, _) = post(&app, &batch(c, "too-fast", fast)).await;
    assert_eq!(status, 200);
    // A person: the same browser, events seconds apart.
    let human: Vec<Value> = (0..12)
        .map(|i| {
            event(
                "message_sent",
                t0 + Duration::seconds(i * 3),
                "https://shop.com/",
            )
        })
        .collect();
    let (status, _) = post(&app, &batch(c, "person", human)).await;
    assert_eq!(status, 200);
    let flagged = |person: &'static str| {
        let db = &db;
        async move {
            db.count(&format!("SELECT count(*) FILTER (WHERE is_bot AND device_type = 'bot') FROM session_events WHERE person_id = '{person}'")).await
        }
    };
    assert_eq!(flagged("script").await, 1);
    assert_eq!(flagged("too-fast").await, 12);
    assert_eq!(flagged("person").await, 0);
    // The browser's own parse stays cached as a browser.
    assert_eq!(
        db.count(&format!(
            "SELECT count(*) FROM user_agents WHERE user_agent = '{UA_DESKTOP}' AND NOT is_bot"
        ))
        .await,
        1
    );
}
