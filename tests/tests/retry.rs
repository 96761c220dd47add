//! retry-failed-events end to end: the cron component, the backoffice's retry
//! button and list, against a local fake of the ad platforms.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use integration_tests::fake::{Fake, Reply};
use integration_tests::*;
use serde_json::{json, Value};
use uuid::Uuid;

/// Queues `n` due rows `<prefix>-1..n` for a destination, `age` old.
async fn queue(db: &TestDb, dest: Uuid, prefix: &str, n: usize, age: &str) {
    Deliveries::to(dest)
        .count(n)
        .event_ids(prefix)
        .event_age(age)
        .payload(json!({ "action_source": "website" }))
        .user_data(json!({ "em": ["h"] }))
        .due()
        .insert(db)
        .await;
}

/// A Meta pixel `PX` of `client`.
async fn pixel(db: &TestDb, client: Uuid) -> Uuid {
    destination(
        db,
        client,
        "meta_capi",
        json!({ "pixel_id": "PX", "access_token": "T" }),
    )
    .await
}

/// Event ids Meta received, with how often.
fn received(fake: &Fake) -> HashMap<String, usize> {
    accepted(fake, &[])
}

/// Event ids Meta accepted (requests without any of `bad`), with how often.
fn accepted(fake: &Fake, bad: &[&str]) -> HashMap<String, usize> {
    let mut seen = HashMap::new();
    for r in fake.requests() {
        let data = r.json()["data"].as_array().cloned().unwrap_or_default();
        if data
            .iter()
            .any(|e| bad.contains(&e["event_id"].as_str().unwrap_or("")))
        {
            continue;
        }
        for e in data {
            *seen
                .entry(e["event_id"].as_str().unwrap().to_string())
                .or_insert(0) += 1;
        }
    }
    seen
}

/// A Meta fake: accepts everything but events whose id is in `bad`.
async fn meta(bad: &'static [&'static str]) -> Fake {
    Fake::start(move |r| {
        let body = r.json();
        let rejected = body["data"]
            .as_array()
            .map(|d| {
                d.iter()
                    .any(|e| bad.contains(&e["event_id"].as_str().unwrap_or("")))
            })
            .unwrap_or(false);
        if rejected {
            Reply::json(
                400,
                json!({ "error": { "message": "Invalid parameter", "code": 100 } }),
            )
        } else {
            Reply::json(
                200,
                json!({ "events_received": body["data"].as_array().map(|d| d.len()) }),
            )
        }
    })
    .await
}

async fn retry(app: &TestApp, body: Value, auth: &str) -> (u16, Value) {
    app.post("/admin/failed-events/retry")
        .auth(auth)
        .json(&body)
        .send()
        .await
}

async fn app_with(db: &TestDb, meta: &Fake, extra: &[(&str, &str)]) -> TestApp {
    let mut vars = vec![("meta_capi_base_url", meta.url.as_str())];
    vars.extend_from_slice(extra);
    serve_admin_app(db, &vars).await
}

#[tokio::test]
async fn the_cron_sends_due_events_of_one_pixel_in_one_request() {
    let db = TestDb::new().await;
    let fake = meta(&[]).await;
    let app = app_with(&db, &fake, &[]).await;
    let c = ClientSpec::new().insert(&db).await;
    let d = pixel(&db, c).await;
    queue(&db, d, "ev", 250, "1 hour").await;
    // Not due yet: left alone by the cron.
    db.exec("UPDATE conversion_deliveries SET next_retry_at = now() + interval '1 hour' WHERE event_id = 'ev-250'").await;

    app.app
        .run_cron("retry-failed-events", 1)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(fake.count(), 1);
    assert_eq!(fake.requests()[0].path, "/v26.0/PX/events");
    assert_eq!(received(&fake).len(), 249);
    assert_eq!(db.count("SELECT count(*) FROM conversion_deliveries WHERE status = 'resolved' AND resolved_at IS NOT NULL AND lease_owner IS NULL").await, 249);
    assert_eq!(
        db.count("SELECT count(*) FROM conversion_deliveries WHERE status = 'pending'")
            .await,
        1
    );
    assert_eq!(db.count("SELECT count(*) FROM delivery_attempts WHERE trigger = 'cron' AND outcome = 'resolved' AND http_status = 200").await, 249);
    let run = db
        .one("SELECT outcome, detail::text FROM job_runs WHERE job_name = 'retry-failed-events'")
        .await;
    assert_eq!(run.get::<_, String>(0), "succeeded");
    let detail: Value = serde_json::from_str(&run.get::<_, String>(1)).unwrap();
    assert_eq!(
        (
            detail["processed"].as_i64(),
            detail["resolved"].as_i64(),
            detail["requests"].as_i64()
        ),
        (Some(249), Some(249), Some(1))
    );
}

#[tokio::test]
async fn one_bad_event_in_a_batch_of_a_hundred_is_isolated_and_dead_lettered() {
    let db = TestDb::new().await;
    let fake = meta(&["ev-42"]).await;
    let app = app_with(&db, &fake, &[]).await;
    let c = ClientSpec::new().insert(&db).await;
    let d = pixel(&db, c).await;
    queue(&db, d, "ev", 100, "1 hour").await;
    let (status, summary) = retry(&app, json!({ "retry_all": true }), &admin_bearer()).await;
    assert_eq!(status, 200, "{summary}");
    assert_eq!(summary["success"], true);
    assert_eq!(
        (
            summary["processed"].as_i64(),
            summary["resolved"].as_i64(),
            summary["dead_lettered"].as_i64(),
            summary["failed"].as_i64()
        ),
        (Some(100), Some(99), Some(1), Some(0))
    );
    let seen = accepted(&fake, &["ev-42"]);
    assert!(!seen.contains_key("ev-42"));
    assert_eq!(seen.len(), 99);
    assert!(
        seen.values().all(|n| *n == 1),
        "a good event was sent twice"
    );
    assert!(fake.count() <= 15, "{} requests", fake.count());
    let dead = db.one("SELECT event_id, dead_letter_reason, last_error, last_http_status FROM conversion_deliveries WHERE status = 'dead_letter'").await;
    assert_eq!(dead.get::<_, String>(0), "ev-42");
    assert_eq!(dead.get::<_, String>(1), "rejected");
    assert!(dead.get::<_, String>(2).contains("Invalid parameter"));
    assert_eq!(dead.get::<_, i32>(3), 400);
}

#[tokio::test]
async fn failures_back_off_five_ten_twenty_forty_eighty_minutes_then_dead_letter() {
    let db = TestDb::new().await;
    let fake = Fake::start(|_| Reply::text(502, "<html>Bad Gateway</html>")).await;
    let app = app_with(&db, &fake, &[]).await;
    let c = ClientSpec::new().insert(&db).await;
    let d = pixel(&db, c).await;
    queue(&db, d, "ev", 1, "1 hour").await;
    // As save-lead leaves it after a failed inline attempt: retrying in 5 minutes.
    db.exec("UPDATE conversion_deliveries SET status = 'retrying', last_attempt_at = now() - interval '1 minute'").await;

    let mut delays = Vec::new();
    for _ in 0..5 {
        let (status, summary) = retry(&app, json!({ "retry_all": true }), &admin_bearer()).await;
        assert_eq!(status, 200, "{summary}");
        let r = db.one("SELECT status, retry_count, extract(epoch FROM next_retry_at - last_attempt_at)::float8 / 60, last_http_status, last_error FROM conversion_deliveries").await;
        if r.get::<_, String>(0) == "retrying" {
            delays.push((r.get::<_, i32>(1), r.get::<_, f64>(2)));
            assert_eq!(r.get::<_, i32>(3), 502);
            assert!(r.get::<_, String>(4).contains("Bad Gateway"));
        }
    }
    let expected = [(1, 10.0), (2, 20.0), (3, 40.0), (4, 80.0)];
    assert_eq!(delays.len(), 4, "{delays:?}");
    for ((rc, minutes), (want_rc, want)) in delays.iter().zip(expected) {
        assert_eq!(*rc, want_rc);
        assert!(
            *minutes >= want && *minutes <= want * 1.1 + 0.01,
            "retry {rc}: {minutes} min, want {want} (+10% jitter)"
        );
    }
    let r = db
        .one("SELECT status, retry_count, dead_letter_reason FROM conversion_deliveries")
        .await;
    assert_eq!(
        (
            r.get::<_, String>(0).as_str(),
            r.get::<_, i32>(1),
            r.get::<_, String>(2).as_str()
        ),
        ("dead_letter", 5, "max_retries")
    );
    assert_eq!(fake.count(), 5);
    assert_eq!(
        db.count(
            "SELECT count(*) FROM delivery_attempts WHERE trigger = 'manual' AND outcome = 'retry'"
        )
        .await,
        5
    );
}

#[tokio::test]
async fn rate_limits_timeouts_bad_tokens_and_expired_events_are_each_handled() {
    let db = TestDb::new().await;
    let limited = Fake::start(|_| Reply::json(429, json!({})).header("retry-after", "120")).await;
    let slow = Fake::start(|_| Reply::json(200, json!({})).after(Duration::from_secs(3))).await;
    let app = serve_admin_app(
        &db,
        &[
            ("meta_capi_base_url", &limited.url),
            LOOPBACK_DESTINATIONS,
            ("delivery_timeout_ms", "300"),
        ],
    )
    .await;
    let c = ClientSpec::new().insert(&db).await;
    let pixel = pixel(&db, c).await;
    let hook = destination(
        &db,
        c,
        "webhook",
        json!({ "url": format!("{}/hook", slow.url) }),
    )
    .await;
    let old_pixel = destination(
        &db,
        c,
        "meta_capi",
        json!({ "pixel_id": "OLD", "access_token": "T" }),
    )
    .await;
    queue(&db, pixel, "limited", 3, "1 hour").await;
    queue(&db, hook, "slow", 1, "1 hour").await;
    queue(&db, old_pixel, "old", 2, "8 days").await;

    let (status, summary) = retry(&app, json!({ "retry_all": true }), &admin_bearer()).await;
    assert_eq!(status, 200, "{summary}");
    let rows = db
        .rows(
            "SELECT split_part(event_id, '-', 1), status, coalesce(dead_letter_reason, ''), coalesce(last_error, ''),
                    extract(epoch FROM next_retry_at - last_attempt_at)::float8
               FROM conversion_deliveries ORDER BY event_id",
        )
        .await;
    for r in &rows {
        let (kind, status, reason, error, wait): (String, String, String, String, Option<f64>) =
            (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4));
        match kind.as_str() {
            "limited" => {
                assert_eq!(status, "retrying");
                assert!(
                    (119.0..=121.0).contains(&wait.unwrap()),
                    "Retry-After honoured: {wait:?}"
                );
            }
            "slow" => {
                assert_eq!(status, "retrying");
                assert!(
                    error.starts_with(
                        "timed out after 300 ms (the destination's share of this run:"
                    ),
                    "{error}"
                );
            }
            "old" => assert_eq!(
                (status.as_str(), reason.as_str()),
                ("dead_letter", "expired")
            ),
            other => panic!("{other}"),
        }
    }
    assert_eq!(
        limited.count(),
        1,
        "three events, one request; expired ones never sent"
    );
    assert_eq!(summary["dead_lettered"], 2);
    assert_eq!(summary["failed"], 4);

    // A bad token: dead at once, the platform's error kept.
    let denied = Fake::start(|_| {
        Reply::json(
            401,
            json!({ "error": { "message": "Invalid OAuth access token", "code": 190 } }),
        )
    })
    .await;
    let app = app_with(&db, &denied, &[]).await;
    db.exec("UPDATE conversion_deliveries SET next_retry_at = now() - interval '1 s' WHERE event_id LIKE 'limited%'").await;
    app.app
        .run_cron("retry-failed-events", 2)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(db.count("SELECT count(*) FROM conversion_deliveries WHERE event_id LIKE 'limited%' AND status = 'dead_letter' AND last_error LIKE '%Invalid OAuth%'").await, 3);
}

#[tokio::test]
async fn a_destination_that_hangs_is_tried_once_and_does_not_starve_the_others() {
    let db = TestDb::new().await;
    let meta = meta(&[]).await;
    let fast = Fake::start(|_| Reply::text(204, "")).await;
    // Answers its first request after 5 s, later ones at once.
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = calls.clone();
    let slow = Fake::start(move |_| {
        let delay = if seen.fetch_add(1, Ordering::SeqCst) == 0 {
            5
        } else {
            0
        };
        Reply::text(204, "").after(Duration::from_secs(delay))
    })
    .await;
    // A 6 s run and the default 5 s request timeout: three destinations, 2 s each.
    let app = app_with(
        &db,
        &meta,
        &[LOOPBACK_DESTINATIONS, ("retry_run_budget_ms", "6000")],
    )
    .await;
    let c = ClientSpec::new().insert(&db).await;
    // The slow one is served first (destinations go in id order): the worst case.
    let first = Uuid::parse_str("00000000-0000-4000-8000-000000000001").unwrap();
    let created = destination(
        &db,
        c,
        "webhook",
        json!({ "url": format!("{}/hook", slow.url) }),
    )
    .await;
    db.exec(&format!(
        "UPDATE client_destinations SET id = '{first}' WHERE id = '{created}'"
    ))
    .await;
    let px = pixel(&db, c).await;
    let hook = destination(
        &db,
        c,
        "webhook",
        json!({ "url": format!("{}/hook", fast.url) }),
    )
    .await;
    queue(&db, first, "slow", 3, "1 hour").await;
    queue(&db, px, "meta", 50, "1 hour").await;
    queue(&db, hook, "hook", 5, "1 hour").await;

    let started = Instant::now();
    app.app
        .run_cron("retry-failed-events", 1)
        .await
        .unwrap()
        .unwrap();
    let took = started.elapsed();
    // Everything due to the fast ones delivered; the slow one tried once,
    // cut at its share (2 s), not at the 5 s its fake takes.
    assert_eq!(received(&meta).len(), 50);
    assert_eq!(fast.count(), 5);
    assert_eq!(slow.count(), 1, "not tried again in the run");
    assert!(took < Duration::from_millis(4500), "the run took {took:?}");
    assert_eq!(
        db.count("SELECT count(*) FROM conversion_deliveries WHERE event_id NOT LIKE 'slow-%' AND status = 'resolved'").await,
        55
    );
    let detail: Value = serde_json::from_str(
        &db.value::<String>(
            "SELECT detail::text FROM job_runs WHERE job_name = 'retry-failed-events'",
        )
        .await,
    )
    .unwrap();
    assert_eq!(
        (
            detail["resolved"].as_i64(),
            detail["failed"].as_i64(),
            detail["released"].as_i64()
        ),
        (Some(55), Some(1), Some(2)),
        "{detail}"
    );
    assert_eq!(detail["timed_out_destinations"], json!([first]));
    // The attempted row: retrying, its attempt recorded with the reason.
    let r = db
        .one("SELECT retry_count, last_error, last_http_status IS NULL FROM conversion_deliveries WHERE event_id LIKE 'slow-%' AND status = 'retrying'")
        .await;
    assert_eq!(r.get::<_, i32>(0), 1);
    let error: String = r.get(1);
    let cut_at: u64 = error
        .strip_prefix("timed out after ")
        .and_then(|e| e.split_once(" ms"))
        .and_then(|(ms, _)| ms.parse().ok())
        .unwrap_or_else(|| panic!("{error}"));
    assert!((1500..=2000).contains(&cut_at), "{error}");
    assert!(
        error.ends_with("ms); not tried again in this run"),
        "{error}"
    );
    assert!(r.get::<_, bool>(2));
    assert_eq!(
        db.count(&format!("SELECT count(*) FROM delivery_attempts a WHERE a.destination_id = '{first}' AND a.outcome = 'retry' AND a.error LIKE 'timed out after%'")).await,
        1
    );
    // The two it did not get to: untouched, still due, not leased, not dead.
    assert_eq!(
        db.count("SELECT count(*) FROM conversion_deliveries WHERE event_id LIKE 'slow-%' AND status = 'pending' AND retry_count = 0 AND next_retry_at <= now() AND lease_owner IS NULL").await,
        2
    );
    assert_eq!(
        db.count("SELECT count(*) FROM conversion_deliveries WHERE status = 'dead_letter'")
            .await,
        0
    );
    // A later run delivers them.
    app.app
        .run_cron("retry-failed-events", 2)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(slow.count(), 3);
    assert_eq!(
        db.count("SELECT count(*) FROM conversion_deliveries WHERE event_id LIKE 'slow-%' AND status = 'resolved'").await,
        2
    );
}

#[tokio::test]
async fn concurrent_runs_deliver_each_of_a_thousand_events_exactly_once() {
    let db = TestDb::new().await;
    let fake = Fake::start(|r| {
        Reply::json(
            200,
            json!({ "events_received": r.json()["data"].as_array().map(|d| d.len()) }),
        )
        .after(Duration::from_millis(30))
    })
    .await;
    // Small runs so that the two clickers and the cron interleave many times.
    let app = app_with(&db, &fake, &[("retry_max_events", "50")]).await;
    let c = ClientSpec::new().insert(&db).await;
    for i in 0..10 {
        let d = destination(
            &db,
            c,
            "meta_capi",
            json!({ "pixel_id": format!("PX{i}"), "access_token": "T" }),
        )
        .await;
        queue(&db, d, &format!("p{i}"), 100, "1 hour").await;
    }
    let app = std::sync::Arc::new(app);
    let clicker = |app: std::sync::Arc<TestApp>| async move {
        let mut resolved = 0;
        for _ in 0..40 {
            let (_, body) = retry(&app, json!({ "retry_all": true }), &admin_bearer()).await;
            resolved += body["resolved"].as_i64().unwrap();
            if body["processed"] == 0 {
                break;
            }
        }
        resolved
    };
    let a = tokio::spawn(clicker(app.clone()));
    let b = tokio::spawn(clicker(app.clone()));
    let mut cron_runs = 0;
    while !a.is_finished() || !b.is_finished() {
        app.app
            .run_cron("retry-failed-events", 10 + cron_runs)
            .await
            .unwrap()
            .unwrap();
        cron_runs += 1;
    }
    let _ = (a.await.unwrap(), b.await.unwrap());
    let seen = received(&fake);
    assert_eq!(seen.len(), 1000);
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "sent more than once: {twice:?}");
    assert_eq!(
        db.count("SELECT count(*) FROM conversion_deliveries WHERE status = 'resolved'")
            .await,
        1000
    );
    assert_eq!(
        db.count("SELECT count(*) FROM delivery_attempts").await,
        1000
    );
}

#[tokio::test]
async fn a_dead_run_leaves_nothing_stuck_and_a_lost_database_marks_nothing_resolved() {
    let db = TestDb::new().await;
    let fake = meta(&[]).await;
    let app = app_with(&db, &fake, &[]).await;
    let c = ClientSpec::new().insert(&db).await;
    let d = pixel(&db, c).await;
    queue(&db, d, "dead", 3, "1 hour").await;
    queue(&db, d, "live", 2, "1 hour").await;
    // A run that died holding three rows (lease expired), and a live one holding two.
    db.exec("UPDATE conversion_deliveries SET lease_owner = gen_random_uuid(), lease_expires_at = now() - interval '1 s' WHERE event_id LIKE 'dead%';
             UPDATE conversion_deliveries SET lease_owner = gen_random_uuid(), lease_expires_at = now() + interval '10 min' WHERE event_id LIKE 'live%';").await;
    app.app
        .run_cron("retry-failed-events", 1)
        .await
        .unwrap()
        .unwrap();
    let seen = received(&fake);
    assert_eq!(seen.len(), 3);
    assert!(seen.keys().all(|k| k.starts_with("dead")));
    assert_eq!(db.count("SELECT count(*) FROM conversion_deliveries WHERE event_id LIKE 'live%' AND status = 'pending'").await, 2);

    // The database goes away while Meta is answering: the run cannot record
    // the outcome, and nothing is marked resolved.
    let db2 = TestDb::new().await;
    let name = db2.name.clone();
    let cutter = Fake::start(move |_| {
        let name = name.clone();
        tokio::spawn(async move {
            let (client, conn) = tokio_postgres::connect(&admin_url(), tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(conn);
            client
                .execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1",
                    &[&name],
                )
                .await
                .unwrap();
        });
        Reply::json(200, json!({})).after(Duration::from_millis(500))
    })
    .await;
    let app2 = app_with(&db2, &cutter, &[]).await;
    let c2 = ClientSpec::new().insert(&db2).await;
    let d2 = pixel(&db2, c2).await;
    queue(&db2, d2, "cut", 5, "1 hour").await;
    let (status, body) = retry(&app2, json!({ "retry_all": true }), &admin_bearer()).await;
    assert!(status == 500 || status == 503, "{status} {body}");
    assert_eq!(cutter.count(), 1);
    assert_eq!(
        db2.count("SELECT count(*) FROM conversion_deliveries WHERE status = 'resolved'")
            .await,
        0
    );
    // Still leased by the broken run: the lease runs out and they are retried.
    assert_eq!(db2.count("SELECT count(*) FROM conversion_deliveries WHERE status = 'pending' AND lease_expires_at > now()").await, 5);
}

#[tokio::test]
async fn named_dead_letters_are_requeued_and_bad_requests_are_refused() {
    let db = TestDb::new().await;
    let fake = meta(&[]).await;
    let app = app_with(&db, &fake, &[]).await;
    let c = ClientSpec::new().insert(&db).await;
    let d = pixel(&db, c).await;
    queue(&db, d, "ev", 3, "1 hour").await;
    db.exec("UPDATE conversion_deliveries SET status = 'dead_letter', dead_letter_reason = 'max_retries', retry_count = 5 WHERE event_id = 'ev-1'").await;
    db.exec("UPDATE conversion_deliveries SET status = 'resolved' WHERE event_id = 'ev-3'")
        .await;
    let id = |e: &str| format!("SELECT id FROM conversion_deliveries WHERE event_id = '{e}'");
    let dead: i64 = db.one(&id("ev-1")).await.get(0);
    let done: i64 = db.one(&id("ev-3")).await.get(0);

    let (status, summary) = retry(&app, json!({ "ids": [dead] }), &admin_bearer()).await;
    assert_eq!(status, 200, "{summary}");
    assert_eq!(
        (summary["processed"].as_i64(), summary["resolved"].as_i64()),
        (Some(1), Some(1))
    );
    assert_eq!(
        received(&fake).keys().cloned().collect::<Vec<_>>(),
        vec!["ev-1".to_string()]
    );
    assert_eq!(
        db.one("SELECT status FROM conversion_deliveries WHERE event_id = 'ev-2'")
            .await
            .get::<_, String>(0),
        "pending"
    );

    let cases = [
        (json!({ "ids": [done] }), 400, "already_resolved"),
        (json!({ "ids": [987654] }), 404, "unknown_ids"),
        (json!({ "ids": [] }), 400, "invalid_field"),
        (json!({ "ids": ["x"] }), 400, "invalid_field"),
        (json!({ "retry_all": false }), 400, "invalid_field"),
        (
            json!({ "retry_all": true, "ids": [dead] }),
            400,
            "invalid_body",
        ),
        (json!({ "retryAll": true }), 400, "invalid_field"),
    ];
    for (body, status, code) in cases {
        let (s, res) = retry(&app, body.clone(), &admin_bearer()).await;
        assert_eq!(
            (s, res["error"]["code"].as_str()),
            (status, Some(code)),
            "{body}: {res}"
        );
    }
    let (s, _) = retry(&app, json!({ "retry_all": true }), "Bearer nonsense").await;
    assert_eq!(s, 401);
    let user = format!(
        "Bearer {}",
        token(
            json!({ "sub": "u", "role": "client", "client_ids": [c] }),
            ADMIN_SECRET
        )
    );
    let (s, _) = retry(&app, json!({ "retry_all": true }), &user).await;
    assert_eq!(s, 403);
    assert_eq!(fake.count(), 1);
}

#[tokio::test]
async fn the_backoffice_list_filters_pages_and_redacts_credentials() {
    let db = TestDb::new().await;
    let fake = meta(&[]).await;
    let app = app_with(&db, &fake, &[]).await;
    let c = ClientSpec::new().insert(&db).await;
    let other = ClientSpec::new().insert(&db).await;
    let d = destination(
        &db,
        c,
        "meta_capi",
        json!({ "pixel_id": "PX", "access_token": "SECRET-TOKEN" }),
    )
    .await;
    let h = destination(
        &db,
        other,
        "webhook",
        json!({ "url": "https://h.example/x", "secret": "HOOK-SECRET" }),
    )
    .await;
    queue(&db, d, "m", 5, "1 hour").await;
    queue(&db, h, "w", 2, "1 hour").await;
    db.exec(
        "UPDATE conversion_deliveries SET status = 'dead_letter' WHERE event_id IN ('m-1', 'm-2')",
    )
    .await;
    db.exec("UPDATE conversion_deliveries SET status = 'resolved' WHERE event_id = 'm-5'")
        .await;
    let get = |q: &str| app.get(&format!("/admin/failed-events{q}")).admin().send();
    let (s, all) = get("").await;
    assert_eq!(s, 200, "{all}");
    assert_eq!(
        all["items"].as_array().unwrap().len(),
        6,
        "resolved ones are not failed events"
    );
    assert_eq!(
        all["counts"],
        json!({ "pending": 4, "retrying": 0, "resolved": 1, "dead_letter": 2 })
    );
    assert!(!all.to_string().contains("SECRET-TOKEN") && !all.to_string().contains("HOOK-SECRET"));
    let meta_item = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["destination"] == "meta_capi")
        .unwrap();
    assert_eq!(
        meta_item["destination_config"]["access_token"],
        "[redacted]"
    );
    assert_eq!(meta_item["destination_config"]["pixel_id"], "PX");

    let (_, dead) = get("?status=dead_letter").await;
    let ids: Vec<&str> = dead["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["event_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec!["m-2", "m-1"]);
    let (_, hooks) = get(&format!("?destination=webhook&client_id={other}")).await;
    assert_eq!(hooks["items"].as_array().unwrap().len(), 2);

    let (_, page1) = get(&format!("?client_id={c}&limit=2")).await;
    let cursor = page1["next_cursor"].as_str().unwrap().to_string();
    let (_, page2) = get(&format!("?client_id={c}&limit=2&cursor={cursor}")).await;
    assert_eq!(page2["items"].as_array().unwrap().len(), 2);
    assert_eq!(page2["next_cursor"], Value::Null);
    let first: Vec<i64> = page1["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_i64().unwrap())
        .collect();
    let second: Vec<i64> = page2["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_i64().unwrap())
        .collect();
    assert!(first.iter().all(|a| second.iter().all(|b| a > b)));

    for (q, field) in [
        ("?status=failed", "status"),
        ("?limit=0", "limit"),
        ("?cursor=abc", "cursor"),
        ("?client_id=x", "client_id"),
        ("?sort=id", "sort"),
    ] {
        let (s, res) = get(q).await;
        assert_eq!(
            (s, res["error"]["field"].as_str()),
            (400, Some(field)),
            "{q}: {res}"
        );
    }
    assert_eq!(app.get("/admin/failed-events").status().await, 401);
}
