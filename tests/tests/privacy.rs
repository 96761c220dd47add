//! Privacy end to end (issue 16): the nightly data retention at each
//! table's boundary, erasing and exporting one person, an erase racing a
//! delivery, and events of visitors who refused analytics consent.

use std::time::Duration;

use chrono::Utc;
use integration_tests::fake::{Fake, Reply};
use integration_tests::*;
use serde_json::{json, Value};
use uuid::Uuid;

const CRON: &str = "data-retention";
const EMAIL: &str = "jane.doe@example.com";

async fn admin(app: &TestApp, path: &str, body: &Value) -> (u16, Value) {
    app.post(path).admin().json(body).send().await
}

/// A client on shop.com in the US.
async fn client(db: &TestDb) -> Uuid {
    ClientSpec::new()
        .root_domain("shop.com")
        .default_country("US")
        .insert(db)
        .await
}

async fn meta_destination(db: &TestDb, client: Uuid) -> Uuid {
    destination(
        db,
        client,
        "meta_capi",
        json!({"pixel_id": "P", "access_token": "T"}),
    )
    .await
}

/// A widget batch from `visitor`: one event per `hours_ago`, on a page
/// with a click id and a campaign, from a search; `extra` overrides keys.
fn visits(client: Uuid, visitor: &str, hours_ago: &[i64], extra: Value) -> Value {
    let events = hours_ago
        .iter()
        .map(|h| {
            let at = Utc::now() - chrono::Duration::hours(*h);
            let mut e = widget_event(
                "widget_open",
                at,
                "https://shop.com/p?gclid=G-123&utm_source=news#x",
            );
            e["referrer"] = json!("https://search.example/?q=jane+doe");
            e
        })
        .collect();
    let mut body = widget_batch(client, visitor, events);
    body["context"] = json!({"user_agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0"});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    body
}

/// `POST /v1/events` from a visitor behind the trusted proxy.
async fn ingest(app: &TestApp, body: &Value) -> (u16, Value) {
    app.post("/v1/events")
        .header("x-forwarded-for", "81.2.69.160")
        .json(body)
        .send()
        .await
}

fn lead(client: Uuid, visitor: &str, email: &str) -> Value {
    json!({"client_id": client, "event_id": Uuid::new_v4().to_string(), "anonymous_id": visitor,
           "email": email, "phone": "(305) 555-0123", "first_name": "Jane",
           "page_url": "https://shop.com/contact"})
}

/// Fires the nightly job; `n` tells runs apart (a schedule already run is
/// skipped, and the job reads the time itself).
async fn retention_run(app: &TestApp, n: u64) {
    app.app.run_cron(CRON, n).await.unwrap().unwrap();
}

async fn last_run(db: &TestDb) -> (String, Value) {
    let row = db
        .client()
        .await
        .query_one(
            "SELECT outcome, detail FROM job_runs WHERE job_name = 'data-retention' ORDER BY id DESC LIMIT 1",
            &[],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1))
}

#[tokio::test]
async fn each_retention_deletes_what_is_past_its_boundary_in_bounded_batches() {
    let db = TestDb::new().await;
    let c = client(&db).await;
    let d = meta_destination(&db, c).await;
    // For each table, one row an hour past its period and one an hour inside it.
    db.exec(
        &format!(
            "INSERT INTO conversion_deliveries (client_id, destination_id, destination, event_id, event_name,
                                                event_time, event_payload, status, resolved_at, updated_at)
             VALUES ('{c}', '{d}', 'meta_capi', 'res-old', 'Lead', now(), '{{}}', 'resolved',
                     now() - interval '30 days 1 hour', now()),
                    ('{c}', '{d}', 'meta_capi', 'res-young', 'Lead', now(), '{{}}', 'resolved',
                     now() - interval '29 days 23 hours', now()),
                    ('{c}', '{d}', 'meta_capi', 'dead-old', 'Lead', now(), '{{}}', 'dead_letter',
                     NULL, now() - interval '90 days 1 hour'),
                    ('{c}', '{d}', 'meta_capi', 'dead-young', 'Lead', now(), '{{}}', 'dead_letter',
                     NULL, now() - interval '89 days 23 hours'),
                    ('{c}', '{d}', 'meta_capi', 'pending-old', 'Lead', now() - interval '200 days', '{{}}',
                     'pending', NULL, now() - interval '200 days');
             INSERT INTO delivery_attempts (delivery_id, destination_id, destination, trigger, attempted_at, outcome)
             SELECT id, destination_id, destination, 'cron', now() - interval '30 days 1 hour', 'failed'
               FROM conversion_deliveries WHERE event_id IN ('pending-old', 'dead-young')
             UNION ALL
             SELECT id, destination_id, destination, 'cron', now() - interval '29 days 23 hours', 'failed'
               FROM conversion_deliveries WHERE event_id = 'pending-old';
             INSERT INTO tracking_health_alerts (alert_type, scope, severity, message, created_at, resolved_at, resolution)
             VALUES ('failed_events_backlog', 'old', 'warning', 'm', now() - interval '100 days',
                     now() - interval '90 days 1 hour', 'auto'),
                    ('failed_events_backlog', 'young', 'warning', 'm', now() - interval '100 days',
                     now() - interval '89 days 23 hours', 'auto'),
                    ('failed_events_backlog', 'open', 'warning', 'm', now() - interval '300 days', NULL, NULL);
             INSERT INTO alert_notifications (alert_id, transition, text, created_at, sent_at)
             SELECT id, 'opened', 'sent-old', now() - interval '90 days 1 hour', now() - interval '90 days'
               FROM tracking_health_alerts WHERE scope = 'open'
             UNION ALL
             SELECT id, 'opened', 'unsent-old', now() - interval '90 days 1 hour', NULL
               FROM tracking_health_alerts WHERE scope = 'open'
             UNION ALL
             SELECT id, 'opened', 'sent-young', now() - interval '89 days 23 hours', now()
               FROM tracking_health_alerts WHERE scope = 'open';
             INSERT INTO tracking_health_checks (checked_at, results)
             VALUES (now() - interval '90 days 1 hour', '{{}}'), (now() - interval '89 days 23 hours', '{{}}');
             INSERT INTO rejected_events (client_id, received_at, event_index, field, reason, payload)
             SELECT '{c}', now() - interval '14 days 1 hour', g, 'name', 'r', jsonb_build_object('old', g)
               FROM generate_series(1, 5) g;
             INSERT INTO rejected_events (client_id, received_at, event_index, field, reason, payload)
             VALUES ('{c}', now() - interval '13 days 23 hours', 0, 'name', 'r', '{{\"young\": 1}}');
             INSERT INTO user_agents (user_agent, device_type, is_bot, parser, parsed_at)
             VALUES ('old-ua', 'desktop', false, 'p', now() - interval '90 days 1 hour'),
                    ('young-ua', 'desktop', false, 'p', now() - interval '89 days 23 hours');
             INSERT INTO leads (client_id, event_id, email, created_at)
             VALUES ('{c}', 'lead-old', 'old@example.com', now() - interval '3 years');"
        ),
    )
    .await;
    // Batches of two: the five old rejected events take three statements.
    let app = serve_app(&db, &[("privacy_retention_batch_size", "2")]).await;
    retention_run(&app, 1).await;
    let (outcome, detail) = last_run(&db).await;
    assert_eq!(outcome, "succeeded", "{detail}");
    let deleted = &detail["deleted"];
    assert_eq!(deleted["resolved_deliveries"], 1, "{detail}");
    assert_eq!(deleted["dead_letters"], 1, "{detail}");
    // The two attempts an hour past 30 days (of pending-old and dead-young).
    assert_eq!(deleted["delivery_attempts"], 2, "{detail}");
    assert_eq!(deleted["alert_notifications"], 1, "{detail}");
    assert_eq!(deleted["resolved_alerts"], 1, "{detail}");
    assert_eq!(deleted["health_checks"], 1, "{detail}");
    assert_eq!(deleted["rejected_events"], 5, "{detail}");
    assert_eq!(deleted["user_agents"], 1, "{detail}");
    assert!(
        deleted.get("leads").is_none(),
        "leads are kept by default: {detail}"
    );
    assert_eq!(detail["unfinished"], json!([]));

    let left = |table: &str, column: &str| {
        format!("SELECT string_agg({column}, ',' ORDER BY {column}) FROM {table}")
    };
    let text = |sql: String| {
        let db = &db;
        async move {
            db.client()
                .await
                .query_one(&sql, &[])
                .await
                .unwrap()
                .get::<_, Option<String>>(0)
                .unwrap_or_default()
        }
    };
    assert_eq!(
        text(left("conversion_deliveries", "event_id")).await,
        "dead-young,pending-old,res-young"
    );
    assert_eq!(db.count("SELECT count(*) FROM delivery_attempts").await, 1);
    assert_eq!(
        text(left("alert_notifications", "text")).await,
        "sent-young,unsent-old"
    );
    assert_eq!(
        text(left("tracking_health_alerts", "scope")).await,
        "open,young"
    );
    assert_eq!(
        db.count("SELECT count(*) FROM tracking_health_checks")
            .await,
        1
    );
    assert_eq!(
        text(left("rejected_events", "payload::text")).await,
        "{\"young\": 1}"
    );
    assert_eq!(text(left("user_agents", "user_agent")).await, "young-ua");
    assert_eq!(db.count("SELECT count(*) FROM leads").await, 1);

    // Leads with a period: the old one goes; one batch per night at most
    // leaves the rest for the next night, and says so.
    db.exec(&format!(
        "INSERT INTO rejected_events (client_id, received_at, event_index, field, reason, payload)
             SELECT '{c}', now() - interval '20 days', g, 'name', 'r', jsonb_build_object('more', g)
               FROM generate_series(1, 3) g"
    ))
    .await;
    let app = serve_app(
        &db,
        &[
            ("privacy_leads_days", "365"),
            ("privacy_retention_batch_size", "2"),
            ("privacy_retention_max_batches", "1"),
        ],
    )
    .await;
    retention_run(&app, 2).await;
    let (_, detail) = last_run(&db).await;
    assert_eq!(detail["deleted"]["leads"], 1, "{detail}");
    assert_eq!(detail["deleted"]["rejected_events"], 2, "{detail}");
    assert_eq!(detail["unfinished"], json!(["rejected_events"]), "{detail}");
    assert_eq!(db.count("SELECT count(*) FROM leads").await, 0);
}

#[tokio::test]
async fn the_full_ip_kept_for_meta_is_dropped_once_a_delivery_is_settled() {
    let db = TestDb::new().await;
    let c = client(&db).await;
    let d = meta_destination(&db, c).await;
    db.exec(
        &format!(
            "INSERT INTO conversion_deliveries (client_id, destination_id, destination, event_id, event_name,
                                                event_time, event_payload, user_data)
             SELECT '{c}', '{d}', 'meta_capi', 'e' || g, 'Lead', now(), '{{}}',
                    '{{\"em\": [\"h\"], \"client_ip_address\": \"81.2.69.160\"}}'
               FROM generate_series(1, 3) g;
             UPDATE conversion_deliveries SET status = 'resolved', resolved_at = now() WHERE event_id = 'e1';
             UPDATE conversion_deliveries SET status = 'dead_letter' WHERE event_id = 'e2';
             UPDATE conversion_deliveries SET status = 'retrying' WHERE event_id = 'e3';"
        ),
    )
    .await;
    let rows = db
        .client()
        .await
        .query(
            "SELECT event_id, user_data ? 'client_ip_address', user_data ? 'em'
               FROM conversion_deliveries ORDER BY event_id",
            &[],
        )
        .await
        .unwrap();
    let got: Vec<(String, bool, bool)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let row = |id: &str, ip, em| (id.to_string(), ip, em);
    assert_eq!(
        got,
        vec![
            row("e1", false, true),
            row("e2", false, true),
            row("e3", true, true)
        ]
    );
}

/// Rows of each table that still hold something of the person: their
/// visitor id, their email, or the ids of what was stored for them before
/// (`event_ids`: their events; `leads`: their leads).
async fn traces(
    db: &TestDb,
    c: Uuid,
    visitor: &str,
    event_ids: &[Uuid],
    leads: &[Uuid],
) -> Vec<(&'static str, i64)> {
    let client = db.client().await;
    let mut out = Vec::new();
    // Every query sees the same parameters, typed once.
    let params = "WITH p AS (SELECT $1::uuid AS c, $2::text AS v, $3::text AS em, $4::uuid[] AS ev, $5::uuid[] AS ld) ";
    for (table, sql) in [
        ("session_events", "SELECT count(*) FROM session_events, p WHERE client_id = p.c AND (person_id = p.v OR event_id = ANY(p.ev))"),
        ("event_keys", "SELECT count(*) FROM event_keys, p WHERE client_id = p.c AND event_id = ANY(p.ev)"),
        ("widget_sessions", "SELECT count(*) FROM widget_sessions, p WHERE client_id = p.c AND person_id = p.v"),
        ("analytics_visitors", "SELECT count(*) FROM analytics_visitors, p WHERE client_id = p.c AND person_id = p.v"),
        ("leads", "SELECT count(*) FROM leads, p WHERE client_id = p.c AND (anonymous_id = p.v OR email = p.em OR id = ANY(p.ld))"),
        ("conversion_deliveries", "SELECT count(*) FROM conversion_deliveries, p WHERE client_id = p.c AND lead_id = ANY(p.ld)"),
        ("delivery_attempts",
         "SELECT count(*) FROM delivery_attempts a JOIN conversion_deliveries d ON d.id = a.delivery_id, p
           WHERE d.client_id = p.c AND d.lead_id = ANY(p.ld)"),
        ("rejected_events",
         "SELECT count(*) FROM rejected_events, p WHERE client_id = p.c AND (strpos(payload::text, p.v) > 0 OR strpos(payload::text, p.em) > 0)"),
    ] {
        let n: i64 = client
            .query_one(&format!("{params}{sql}"), &[&c, &visitor, &EMAIL, &event_ids, &leads])
            .await
            .unwrap_or_else(|e| panic!("{table}: {e:?}"))
            .get(0);
        out.push((table, n));
    }
    out
}

#[tokio::test]
async fn an_erase_removes_every_trace_of_the_person_keeps_the_rollups_and_is_logged_with_hashes() {
    let db = TestDb::new().await;
    let meta = Fake::start(|_| Reply::json(200, json!({"events_received": 1}))).await;
    let app = serve_app(
        &db,
        &[
            ("meta_capi_base_url", &meta.url),
            ("admin_jwt_secret", ADMIN_SECRET),
            ("trusted_proxies", "127.0.0.1"),
        ],
    )
    .await;
    let c = client(&db).await;
    meta_destination(&db, c).await;
    // Jane (visitor v-jane) on two days, with a lead delivered to Meta and a
    // rejected event naming her; Bob (v-bob) stays.
    // Yesterday noon (UTC), so that the day rolled up below holds them.
    let noon = Utc::now()
        .date_naive()
        .pred_opt()
        .unwrap()
        .and_hms_opt(12, 0, 0)
        .unwrap()
        .and_utc();
    let y = (Utc::now() - noon).num_hours();
    for (visitor, hours) in [("v-jane", vec![y, y - 1, 1]), ("v-bob", vec![y, 2])] {
        let (status, body) = ingest(&app, &visits(c, visitor, &hours, json!({}))).await;
        assert_eq!(status, 200, "{body}");
    }
    let bad = json!({"client_id": c, "anonymous_id": "v-jane", "events": [
        {"event_id": Uuid::new_v4(), "name": "Bad Name", "timestamp": Utc::now().to_rfc3339(),
         "properties": {"email": EMAIL}}]});
    assert_eq!(ingest(&app, &bad).await.0, 422);
    let (status, body) = app
        .post_json("/v1/leads", &lead(c, "v-jane", "Jane.Doe@Example.com"))
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(meta.count(), 1);
    // Yesterday rolled up (the real rollup function): stats and visitor rows.
    db.exec("SELECT analytics_rollup_day(current_date - 1, ARRAY['UTC'])")
        .await;
    let stats = "SELECT coalesce(sum(unique_visitors), 0)::int8 * 1000 + coalesce(sum(events), 0)::int8 FROM widget_daily_stats";
    let before = db.count(stats).await;
    assert!(before > 0);
    let ids = |sql: &'static str| {
        let db = &db;
        async move {
            let rows = db.client().await.query(sql, &[]).await.unwrap();
            rows.iter()
                .map(|r| r.get::<_, Uuid>(0))
                .collect::<Vec<Uuid>>()
        }
    };
    let events = ids("SELECT event_id FROM session_events WHERE person_id = 'v-jane'").await;
    let leads = ids("SELECT id FROM leads WHERE anonymous_id = 'v-jane'").await;
    // Every table holds something of Jane before (delivery_attempts: the inline send).
    let stored = traces(&db, c, "v-jane", &events, &leads).await;
    assert!(stored.iter().all(|(_, n)| *n > 0), "{stored:?}");

    // The export lists what is stored.
    let person = json!({"client_id": c, "email": " JANE.DOE@example.com "});
    let (status, export) = admin(&app, "/admin/privacy/export", &person).await;
    assert_eq!(status, 200, "{export}");
    let data = &export["data"];
    assert_eq!(data["leads"][0]["email"], EMAIL, "{export}");
    assert_eq!(data["anonymous_ids"], json!(["v-jane"]));
    assert_eq!(data["session_events"].as_array().unwrap().len(), 3);
    assert_eq!(data["conversion_deliveries"][0]["status"], "resolved");
    assert_eq!(data["rejected_events"].as_array().unwrap().len(), 1);
    assert!(!export.to_string().contains("v-bob"));

    let (status, erased) = admin(&app, "/admin/privacy/erase", &person).await;
    assert_eq!(status, 200, "{erased}");
    let e = &erased["erased"];
    assert_eq!(
        (
            e["session_events"].as_i64(),
            e["leads"].as_i64(),
            e["conversion_deliveries"].as_i64(),
            e["rejected_events"].as_i64()
        ),
        (Some(3), Some(1), Some(1), Some(1)),
        "{erased}"
    );
    assert!(e["widget_sessions"].as_i64().unwrap() >= 2, "{erased}");
    assert_eq!(e["analytics_visitors"], 1, "{erased}");
    let left: Vec<_> = traces(&db, c, "v-jane", &events, &leads)
        .await
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .collect();
    assert!(left.is_empty(), "left after the erase: {left:?}");
    assert_eq!(db.count(stats).await, before, "rollups unchanged");
    assert_eq!(
        db.count("SELECT count(*) FROM session_events WHERE person_id = 'v-bob'")
            .await,
        2
    );
    // Idempotent: again, nothing more.
    let (status, again) = admin(&app, "/admin/privacy/erase", &person).await;
    assert_eq!(status, 200);
    assert!(
        again["erased"]
            .as_object()
            .unwrap()
            .values()
            .all(|n| n == 0),
        "{again}"
    );
    // The log: hashes only, and append-only.
    let log = db
        .client()
        .await
        .query(
            "SELECT kind, identifier_hashes::text, requested_by FROM privacy_requests ORDER BY id",
            &[],
        )
        .await
        .unwrap();
    let kinds: Vec<String> = log.iter().map(|r| r.get(0)).collect();
    assert_eq!(kinds, ["export", "erase", "erase"]);
    for r in &log {
        let hashes: String = r.get(1);
        assert!(
            hashes.contains(&integration_tests::fake::sha256(EMAIL)),
            "{hashes}"
        );
        assert!(!hashes.contains("jane"), "{hashes}");
        assert_eq!(r.get::<_, Option<String>>(2).as_deref(), Some("tester"));
    }
    let tamper = db
        .client()
        .await
        .execute("DELETE FROM privacy_requests", &[])
        .await;
    assert!(format!("{:?}", tamper.unwrap_err()).contains("append-only"));
    assert_eq!(db.count("SELECT count(*) FROM privacy_requests").await, 3);
}

#[tokio::test]
async fn erase_requests_without_a_person_or_for_an_unknown_client_are_refused() {
    let db = TestDb::new().await;
    let app = serve_app(&db, &[("admin_jwt_secret", ADMIN_SECRET)]).await;
    let c = client(&db).await;
    let cases = [
        (json!({"client_id": c}), 400, "missing_identifier", "body"),
        (
            json!({"client_id": c, "email": "not-an-email"}),
            400,
            "invalid_field",
            "email",
        ),
        (
            json!({"client_id": c, "phone": "call me"}),
            400,
            "invalid_field",
            "phone",
        ),
        (
            json!({"client_id": "nope", "email": EMAIL}),
            400,
            "invalid_field",
            "client_id",
        ),
        (
            json!({"client_id": Uuid::new_v4(), "email": EMAIL}),
            404,
            "client_not_found",
            "client_id",
        ),
    ];
    for path in ["/admin/privacy/erase", "/admin/privacy/export"] {
        for (body, status, code, field) in &cases {
            let (got, res) = admin(&app, path, body).await;
            assert_eq!(
                (got, &res["error"]["code"], &res["error"]["field"]),
                (*status, &json!(code), &json!(field)),
                "{path} {body}"
            );
        }
        let (status, _) = app
            .post_json(path, &json!({"client_id": c, "email": EMAIL}))
            .await;
        assert_eq!(status, 401);
    }
    assert_eq!(db.count("SELECT count(*) FROM privacy_requests").await, 0);
}

#[tokio::test]
async fn an_erase_during_a_delivery_run_never_lets_the_cancelled_event_be_sent() {
    let db = TestDb::new().await;
    // Meta answers after 3 s: the run holds the lease meanwhile.
    let meta = Fake::start(|_| {
        Reply::json(200, json!({"events_received": 1})).after(Duration::from_secs(3))
    })
    .await;
    let app = serve_app(
        &db,
        &[
            ("meta_capi_base_url", &meta.url),
            ("admin_jwt_secret", ADMIN_SECRET),
            ("delivery_inline_timeout_ms", "100"),
            ("delivery_timeout_ms", "10000"),
        ],
    )
    .await;
    let c = client(&db).await;
    meta_destination(&db, c).await;
    // Two people, each with a lead whose inline send timed out: queued.
    for (visitor, email) in [("v-a", "a@example.com"), ("v-b", "b@example.com")] {
        let (status, body) = app.post_json("/v1/leads", &lead(c, visitor, email)).await;
        assert_eq!(status, 201, "{body}");
    }
    db.exec("UPDATE conversion_deliveries SET status = 'retrying', next_retry_at = now() - interval '1 second', lease_owner = NULL, lease_expires_at = NULL").await;
    let sent_before = meta.count();
    // b is erased before the run: the run never sees it.
    let (status, _) = admin(
        &app,
        "/admin/privacy/erase",
        &json!({"client_id": c, "email": "b@example.com"}),
    )
    .await;
    assert_eq!(status, 200);
    // The run leases a's row and waits for Meta; erasing a meanwhile is refused.
    let runner = app.app.clone();
    let run = tokio::spawn(async move { runner.run_cron("retry-failed-events", 1).await });
    let mut refused = None;
    for _ in 0..400 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if db
            .count("SELECT count(*) FROM conversion_deliveries WHERE lease_expires_at > now()")
            .await
            > 0
        {
            refused = Some(
                admin(
                    &app,
                    "/admin/privacy/erase",
                    &json!({"client_id": c, "email": "a@example.com"}),
                )
                .await,
            );
            break;
        }
    }
    let (status, body) = refused.expect("the run leased the row");
    assert_eq!(
        (status, &body["error"]["code"]),
        (409, &json!("delivery_in_flight")),
        "{body}"
    );
    run.await.unwrap().unwrap().unwrap();
    let sent: Vec<String> = meta.requests()[sent_before..]
        .iter()
        .flat_map(|r| r.json()["data"].as_array().cloned().unwrap_or_default())
        .map(|e| {
            e["user_data"]["em"][0]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    assert_eq!(sent, vec![integration_tests::fake::sha256("a@example.com")]);
    // Once the run is over, a can be erased too.
    let (status, body) = admin(
        &app,
        "/admin/privacy/erase",
        &json!({"client_id": c, "email": "a@example.com"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        db.count("SELECT count(*) FROM conversion_deliveries").await,
        0
    );
}

#[tokio::test]
async fn events_of_visitors_who_refused_consent_are_kept_without_identifiers_or_not_at_all() {
    let db = TestDb::new().await;
    let app = serve_app(&db, &[("trusted_proxies", "127.0.0.1")]).await;
    let c = client(&db).await;
    let refused = json!({"context": {"user_agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0",
                                     "consent": {"analytics": false}}});
    let (status, body) = ingest(&app, &visits(c, "v-private", &[3, 2], refused.clone())).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["accepted"].as_i64(), &body["consent_refused"]),
        (Some(2), &json!("stored_anonymously"))
    );
    assert!(body["session_id"].is_null());
    let row = db
        .client()
        .await
        .query_one(
            "SELECT count(*), count(DISTINCT person_id), bool_and(person_id LIKE 'anonymous-%'),
                    count(client_ip), max(page_url), max(referrer), count(gclid), max(utm_source)
               FROM session_events WHERE client_id = $1",
            &[&c],
        )
        .await
        .unwrap();
    assert_eq!(
        (
            row.get::<_, i64>(0),
            row.get::<_, i64>(1),
            row.get::<_, bool>(2)
        ),
        (2, 1, true)
    );
    assert_eq!(row.get::<_, i64>(3), 0, "no IP");
    assert_eq!(row.get::<_, String>(4), "https://shop.com/p");
    assert_eq!(row.get::<_, String>(5), "https://search.example/");
    assert_eq!(row.get::<_, i64>(6), 0, "no click id");
    assert_eq!(row.get::<_, String>(7), "news", "the campaign is kept");
    assert_eq!(db.count("SELECT count(*) FROM widget_sessions WHERE person_id = 'v-private' OR gclid IS NOT NULL").await, 0);
    // A second batch is another anonymous visitor: nothing links the two.
    ingest(&app, &visits(c, "v-private", &[1], refused.clone())).await;
    assert_eq!(
        db.count("SELECT count(DISTINCT person_id) FROM session_events")
            .await,
        2
    );
    // A consenting visitor is stored as before.
    let (status, body) = ingest(&app, &visits(c, "v-ok", &[1], json!({}))).await;
    assert_eq!((status, body.get("consent_refused")), (200, None));
    assert_eq!(db.count("SELECT count(*) FROM session_events WHERE person_id = 'v-ok' AND client_ip IS NOT NULL").await, 1);

    // A client that keeps nothing of them.
    db.exec(&format!(
        "UPDATE clients SET refused_consent_events = 'drop' WHERE id = '{c}'"
    ))
    .await;
    let before = db.count("SELECT count(*) FROM session_events").await;
    let (status, body) = ingest(&app, &visits(c, "v-private", &[1], refused)).await;
    assert_eq!(
        (status, &body["consent_refused"]),
        (200, &json!("not_stored")),
        "{body}"
    );
    assert_eq!(
        db.count("SELECT count(*) FROM session_events").await,
        before
    );
}
