//! check-tracking-health end to end: metrics crossing thresholds both ways,
//! one open alert per problem, one notification per transition (counted at a
//! local fake webhook), manual resolution, and the summary.

use integration_tests::fake::{Fake, Reply};
use integration_tests::*;
use serde_json::{json, Value};
use uuid::Uuid;

struct Setup {
    db: TestDb,
    app: TestApp,
    hook: Fake,
    client: Uuid,
    dest: Uuid,
}

async fn setup_with(hook: Fake, extra: &[(&str, &str)]) -> Setup {
    let db = TestDb::new().await;
    let url = format!("{}/slack", hook.url);
    let mut vars = vec![
        ("alert_webhook_url", url.as_str()),
        ("alert_webhook_origin", hook.url.as_str()),
    ];
    vars.extend_from_slice(extra);
    let app = serve_admin_app(&db, &vars).await;
    let client = ClientSpec::new().insert(&db).await;
    let dest = destination(&db, client, "meta_capi", json!({})).await;
    Setup {
        db,
        app,
        hook,
        client,
        dest,
    }
}

async fn setup() -> Setup {
    setup_with(Fake::start(|_| Reply::text(200, "ok")).await, &[]).await
}

impl Setup {
    async fn sql(&self, sql: &str) {
        self.db.exec(sql).await;
    }

    /// `n` deliveries with this status and user data.
    async fn deliveries(&self, n: usize, status: &str, user_data: Value) {
        Deliveries::to(self.dest)
            .count(n)
            .status(status)
            .user_data(user_data)
            .insert(&self.db)
            .await;
    }

    async fn check(&self) -> Value {
        self.app
            .app
            .run_cron("tracking-health-check", 1)
            .await
            .unwrap()
            .unwrap();
        let detail: String = self
            .db.one("SELECT detail::text FROM job_runs WHERE job_name = 'check-tracking-health' ORDER BY id DESC LIMIT 1").await
            .get(0);
        serde_json::from_str(&detail).unwrap()
    }

    /// Open alerts as (type, scope, severity, metric_value).
    async fn open(&self) -> Vec<(String, String, String, f64)> {
        self.db.rows("SELECT alert_type, scope, severity, coalesce(metric_value, -1) FROM tracking_health_alerts
                  WHERE resolved_at IS NULL ORDER BY alert_type, scope").await
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
            .collect()
    }

    /// Messages the webhook received, as their `text`.
    fn messages(&self) -> Vec<String> {
        self.hook
            .requests()
            .iter()
            .map(|r| r.json()["text"].as_str().unwrap_or("").to_string())
            .collect()
    }
}

fn of_type<'a>(
    open: &'a [(String, String, String, f64)],
    kind: &str,
) -> Vec<&'a (String, String, String, f64)> {
    open.iter().filter(|a| a.0 == kind).collect()
}

#[tokio::test]
async fn the_backlog_alert_opens_updates_and_resolves_with_one_message_per_transition() {
    let s = setup().await;
    s.deliveries(10, "pending", json!({})).await;
    let report = s.check().await;
    assert_eq!(
        report["alerts_opened"], 0,
        "10 is not more than 10: {report}"
    );

    s.deliveries(1, "retrying", json!({})).await;
    let report = s.check().await;
    assert_eq!(report["alerts_opened"], 2, "{report}");
    let open = s.open().await;
    let backlog = of_type(&open, "failed_events_backlog");
    assert_eq!(backlog.len(), 2);
    assert_eq!(backlog[0].1, format!("destination:{}", s.dest));
    assert_eq!(backlog[1].1, "global");
    assert!(backlog.iter().all(|a| a.2 == "critical" && a.3 == 11.0));

    s.deliveries(4, "pending", json!({})).await;
    let report = s.check().await;
    assert_eq!(
        (
            report["alerts_opened"].as_i64(),
            report["alerts_updated"].as_i64()
        ),
        (Some(0), Some(2))
    );
    assert!(of_type(&s.open().await, "failed_events_backlog")
        .iter()
        .all(|a| a.3 == 15.0));
    let seen: i64 =
        s.db.one("SELECT count(*) FROM tracking_health_alerts WHERE last_seen_at > created_at")
            .await
            .get(0);
    assert_eq!(seen, 2);

    s.sql("UPDATE conversion_deliveries SET status = 'resolved'")
        .await;
    let report = s.check().await;
    assert_eq!(report["alerts_resolved"], 2);
    assert!(s.open().await.is_empty());
    let resolution: String =
        s.db.one("SELECT string_agg(DISTINCT resolution, ',') FROM tracking_health_alerts")
            .await
            .get(0);
    assert_eq!(resolution, "auto");
    s.check().await;

    let messages = s.messages();
    assert_eq!(messages.len(), 4, "{messages:?}");
    assert_eq!(messages.iter().filter(|m| m.contains("opened")).count(), 2);
    assert_eq!(
        messages.iter().filter(|m| m.contains("resolved")).count(),
        2
    );
    assert!(s.hook.requests().iter().all(|r| r.path == "/slack"));
}

#[tokio::test]
async fn emq_warns_escalates_to_critical_and_resolves_and_ignores_low_volume() {
    let s = setup().await;
    // 19 poor events: below the minimum volume, no alert.
    s.deliveries(19, "resolved", json!({ "fbp": "x" })).await;
    s.check().await;
    assert!(of_type(&s.open().await, "emq_low").is_empty());

    // Email + phone + IP/UA: 3 + 2 + 1 = 6.0 → warning (< 7).
    s.sql("DELETE FROM conversion_deliveries").await;
    s.deliveries(25, "resolved", json!({ "em": ["h"], "ph": ["h"], "client_ip_address": "1.2.3.4", "client_user_agent": "UA" })).await;
    s.check().await;
    let emq = s.open().await;
    let emq = of_type(&emq, "emq_low");
    assert_eq!(emq.len(), 2, "global and the client: {emq:?}");
    assert!(emq.iter().all(|a| a.2 == "warning" && a.3 == 6.0));
    assert!(emq.iter().any(|a| a.1 == format!("client:{}", s.client)));

    // Only fbp now: 0.5 → critical, an escalation.
    s.sql("UPDATE conversion_deliveries SET user_data = '{\"fbp\": \"x\"}'")
        .await;
    let report = s.check().await;
    assert_eq!(
        (
            report["alerts_escalated"].as_i64(),
            report["alerts_opened"].as_i64()
        ),
        (Some(2), Some(0))
    );
    assert!(of_type(&s.open().await, "emq_low")
        .iter()
        .all(|a| a.2 == "critical" && a.3 == 0.5));

    // Every identifier: 10/10 → resolved.
    s.sql(r#"UPDATE conversion_deliveries SET user_data = '{"em":[1],"ph":[1],"fbc":"c","external_id":[1],"client_ip_address":"i","client_user_agent":"u","fbp":"p","fn":[1],"ln":[1],"ct":[1],"st":[1],"zp":[1],"country":[1]}'"#).await;
    let report = s.check().await;
    assert_eq!(report["alerts_resolved"], 2);
    let global = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["alert_type"] == "emq_low" && c["scope"] == "global")
        .unwrap()
        .clone();
    assert_eq!(
        (global["value"].as_f64(), global["status"].as_str()),
        (Some(10.0), Some("ok"))
    );
    let kinds: Vec<String> = s
        .messages()
        .iter()
        .map(|m| m.split_whitespace().nth(3).unwrap_or("").to_string())
        .collect();
    assert_eq!(
        kinds.iter().filter(|k| *k == "opened:").count(),
        2,
        "{:?}",
        s.messages()
    );
    assert_eq!(
        kinds.iter().filter(|k| *k == "escalated:").count(),
        2,
        "{:?}",
        s.messages()
    );
    assert_eq!(
        s.messages()
            .iter()
            .filter(|m| m.contains("resolved"))
            .count(),
        2
    );
}

#[tokio::test]
async fn the_error_rate_needs_volume_and_dead_letters_warn_once_per_batch() {
    let s = setup().await;
    s.deliveries(1, "resolved", json!({})).await;
    let id: i64 =
        s.db.one("SELECT id FROM conversion_deliveries")
            .await
            .get(0);
    let attempts = |ok: i32, failed: i32| {
        format!(
            "INSERT INTO delivery_attempts (delivery_id, destination_id, destination, trigger, outcome, latency_ms)
             SELECT {id}, '{}', 'meta_capi', 'cron', CASE WHEN g <= {ok} THEN 'resolved' ELSE 'retry' END, 40
               FROM generate_series(1, {}) g",
            s.dest,
            ok + failed
        )
    };
    // 1 failure in 3: too few attempts to judge.
    s.sql(&attempts(2, 1)).await;
    let report = s.check().await;
    let rate = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["alert_type"] == "delivery_error_rate" && c["scope"] == "global")
        .unwrap()
        .clone();
    assert_eq!(rate["status"], "insufficient_volume");
    assert!(of_type(&s.open().await, "delivery_error_rate").is_empty());
    // 2 failures in 25 (8 % > 5 %): critical, global and for the destination.
    s.sql("DELETE FROM delivery_attempts").await;
    s.sql(&attempts(23, 2)).await;
    s.check().await;
    let open = s.open().await;
    assert_eq!(of_type(&open, "delivery_error_rate").len(), 2);
    assert!(of_type(&open, "delivery_error_rate")
        .iter()
        .all(|a| a.2 == "critical" && (a.3 - 0.08).abs() < 1e-9));
    // 1 failure in 25 (4 %): resolved.
    s.sql("DELETE FROM delivery_attempts").await;
    s.sql(&attempts(24, 1)).await;
    s.check().await;
    assert!(of_type(&s.open().await, "delivery_error_rate").is_empty());

    // A dead letter since the last check: a warning; none new: resolved.
    s.sql("UPDATE conversion_deliveries SET status = 'dead_letter', updated_at = now()")
        .await;
    s.check().await;
    let open = s.open().await;
    assert_eq!(of_type(&open, "dead_letters").len(), 2);
    assert!(of_type(&open, "dead_letters")
        .iter()
        .all(|a| a.2 == "warning"));
    s.check().await;
    assert!(of_type(&s.open().await, "dead_letters").is_empty());
}

#[tokio::test]
async fn ingest_silence_is_critical_only_when_there_normally_are_events() {
    let s = setup().await;
    let events = |n: i32, ago: &str| {
        format!(
            "INSERT INTO session_events (client_id, person_id, event_name, occurred_at, received_at)
             SELECT '{}', 'p' || g, 'widget_open', now() - interval '{ago}', now() - interval '{ago}'
               FROM generate_series(1, {n}) g",
            s.client
        )
    };
    // A quiet platform (nothing a week ago either): no alert.
    s.check().await;
    assert!(of_type(&s.open().await, "ingest_silence").is_empty());
    // 25 events in the same minutes a week ago, none now: an outage.
    s.sql(&events(25, "7 days 10 minutes")).await;
    let report = s.check().await;
    assert_eq!(
        of_type(&s.open().await, "ingest_silence").len(),
        1,
        "{report}"
    );
    // Events flow again: resolved.
    s.sql(&events(1, "1 minute")).await;
    s.check().await;
    assert!(of_type(&s.open().await, "ingest_silence").is_empty());
}

#[tokio::test]
async fn a_webhook_that_is_down_delays_the_message_and_never_duplicates_it() {
    let down = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let flag = down.clone();
    let hook = Fake::start(move |_| {
        if flag.load(std::sync::atomic::Ordering::SeqCst) {
            Reply::text(503, "down")
        } else {
            Reply::text(200, "ok")
        }
    })
    .await;
    let s = setup_with(hook, &[]).await;
    s.deliveries(11, "pending", json!({})).await;
    let report = s.check().await;
    assert_eq!(report["alerts_opened"], 2);
    assert_eq!(report["notifications"]["waiting"], 1);
    assert_eq!(
        s.open().await.len(),
        2,
        "alert state written although the webhook is down"
    );
    s.check().await;
    down.store(false, std::sync::atomic::Ordering::SeqCst);
    let report = s.check().await;
    assert_eq!(report["notifications"]["sent"], 2, "{report}");
    s.check().await;
    let delivered: Vec<Value> = s.hook.requests().iter().map(|r| r.json()).collect();
    let ok_texts: Vec<&str> = delivered
        .iter()
        .skip(2)
        .map(|v| v["text"].as_str().unwrap())
        .collect();
    assert_eq!(
        ok_texts.len(),
        2,
        "two transitions, two messages after recovery: {ok_texts:?}"
    );
    let pending: i64 =
        s.db.one("SELECT count(*) FROM alert_notifications WHERE sent_at IS NULL")
            .await
            .get(0);
    assert_eq!(pending, 0);
}

#[tokio::test]
async fn concurrent_checks_never_duplicate_an_alert() {
    let s = setup().await;
    s.deliveries(11, "pending", json!({})).await;
    let metrics = json!([{ "alert_type": "failed_events_backlog", "scope": "global", "metric_value": 11.0,
                           "threshold": 10.0, "severity": "critical", "message": "11 waiting" }]);
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let url = s.db.url.clone();
        let m = metrics.clone();
        tasks.push(tokio::spawn(async move {
            let (c, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(conn);
            c.query_one("SELECT opened FROM apply_tracking_health_check($1)", &[&m])
                .await
                .unwrap()
                .get::<_, i32>(0)
        }));
    }
    let mut opened = 0;
    for t in tasks {
        opened += t.await.unwrap();
    }
    assert_eq!(opened, 1);
    let open =
        s.db.count("SELECT count(*) FROM tracking_health_alerts WHERE resolved_at IS NULL")
            .await;
    let notes = s.db.count("SELECT count(*) FROM alert_notifications").await;
    assert_eq!((open, notes), (1, 1));
    // The index itself refuses a second open alert for the same problem.
    let dup = s
        .db
        .client()
        .await
        .execute("INSERT INTO tracking_health_alerts (alert_type, scope, severity, message) VALUES ('failed_events_backlog', 'global', 'warning', 'x')", &[])
        .await;
    let err = dup.unwrap_err();
    let db_err = err.as_db_error().expect("a database error");
    assert_eq!(db_err.constraint(), Some("tracking_health_alerts_one_open"));

    // Two checks over HTTP at once: one runs, the other waits its turn or is told 409.
    let post = || s.app.post("/admin/tracking-health/check").admin().status();
    let (a, b) = tokio::join!(post(), post());
    assert!([a, b].iter().all(|st| *st == 200 || *st == 409), "{a} {b}");
    let open = s.db.count("SELECT count(*) FROM tracking_health_alerts WHERE resolved_at IS NULL AND alert_type = 'failed_events_backlog' AND scope = 'global'").await;
    assert_eq!(open, 1);
}

#[tokio::test]
async fn alerts_are_resolved_by_hand_once() {
    let s = setup().await;
    s.deliveries(11, "pending", json!({})).await;
    s.check().await;
    let id: i64 =
        s.db.one("SELECT id FROM tracking_health_alerts WHERE scope = 'global'")
            .await
            .get(0);
    let resolve = |id: String, auth: String| {
        s.app
            .post(&format!("/admin/tracking-health/alerts/{id}/resolve"))
            .auth(&auth)
            .send()
    };
    let (st, body) = resolve(id.to_string(), admin_bearer()).await;
    assert_eq!(st, 200, "{body}");
    let r =
        s.db.client()
            .await
            .query_one(
                "SELECT resolution, resolved_by FROM tracking_health_alerts WHERE id = $1",
                &[&id],
            )
            .await
            .unwrap();
    assert_eq!(
        (r.get::<_, String>(0), r.get::<_, String>(1)),
        ("manual".to_string(), "tester".to_string())
    );
    assert!(s.messages().iter().any(|m| m.contains("resolved by hand")));
    assert_eq!(resolve(id.to_string(), admin_bearer()).await.0, 409);
    assert_eq!(resolve("999999".into(), admin_bearer()).await.0, 404);
    assert_eq!(resolve("abc".into(), admin_bearer()).await.0, 400);
    assert_eq!(resolve(id.to_string(), "Bearer x".into()).await.0, 401);
    let user = format!(
        "Bearer {}",
        token(json!({ "sub": "u", "role": "client" }), ADMIN_SECRET)
    );
    assert_eq!(resolve(id.to_string(), user).await.0, 403);
    // Still breached: the next check opens a new alert for it.
    let report = s.check().await;
    assert_eq!(report["alerts_opened"], 1);
}

#[tokio::test]
async fn the_summary_colours_follow_the_open_alerts() {
    let s = setup().await;
    let summary = || async {
        let res = s
            .app
            .get("/admin/tracking-health/summary")
            .admin()
            .response()
            .await;
        assert_eq!(res.status().as_u16(), 200);
        res.json::<Value>().await.unwrap()
    };
    let v = summary().await;
    assert_eq!(
        (v["status"].as_str(), v["last_check_at"].as_str()),
        (Some("yellow"), None),
        "no check yet: {v}"
    );
    s.check().await;
    let v = summary().await;
    assert_eq!(v["status"], "green", "{v}");
    assert!(v["rule"].as_str().unwrap().contains("no alert"));
    assert!(v["last_check_at"].as_str().unwrap().ends_with('Z'));

    // A warning (dead letter) → yellow.
    s.deliveries(1, "dead_letter", json!({})).await;
    s.check().await;
    let v = summary().await;
    assert_eq!(v["status"], "yellow", "{v}");
    let dl = v["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["metric"] == "dead_letters")
        .unwrap()
        .clone();
    assert_eq!(
        (dl["colour"].as_str(), dl["value"].as_f64()),
        (Some("yellow"), Some(1.0))
    );

    // A critical (backlog) → red.
    s.deliveries(11, "pending", json!({})).await;
    s.check().await;
    let v = summary().await;
    assert_eq!(v["status"], "red");
    assert!(v["open_alerts"].as_array().unwrap()[0]["severity"] == "critical");

    // Per destination over 24 h: attempts, success rate, latency percentiles.
    let id: i64 =
        s.db.one("SELECT min(id) FROM conversion_deliveries")
            .await
            .get(0);
    s.sql(&format!(
        "INSERT INTO delivery_attempts (delivery_id, destination_id, destination, trigger, outcome, latency_ms)
         SELECT {id}, '{}', 'meta_capi', 'cron', CASE WHEN g <= 90 THEN 'resolved' ELSE 'retry' END, g
           FROM generate_series(1, 100) g",
        s.dest
    ))
    .await;
    let v = summary().await;
    let d = &v["destinations_24h"][0];
    assert_eq!(
        (
            d["attempts"].as_i64(),
            d["success_rate"].as_f64(),
            d["colour"].as_str()
        ),
        (Some(100), Some(0.9), Some("red"))
    );
    assert_eq!(d["latency_ms"]["p50"].as_f64(), Some(50.5));
    assert!((d["latency_ms"]["p99"].as_f64().unwrap() - 99.01).abs() < 1e-6);
    assert_eq!(v["ingest"]["events_24h"], 0);

    assert_eq!(
        s.app.get("/admin/tracking-health/summary").status().await,
        401
    );
}

#[tokio::test]
async fn the_check_endpoint_takes_the_platform_token_and_a_lost_database_fails_loudly() {
    let s = setup_with(
        Fake::start(|_| Reply::text(200, "ok")).await,
        &[("platform_cron_token", "sched-token-123")],
    )
    .await;
    let post = |auth: &str| s.app.post("/admin/tracking-health/check").auth(auth).send();
    let (st, body) = post("Bearer sched-token-123").await;
    assert_eq!(st, 200, "{body}");
    for key in [
        "alerts_opened",
        "alerts_updated",
        "alerts_resolved",
        "checks",
    ] {
        assert!(body.get(key).is_some(), "{key} missing: {body}");
    }
    assert_eq!(post("Bearer wrong").await.0, 401);
    assert_eq!(post("Bearer sched-token-12").await.0, 401);

    // Postgres unreachable: the cron run fails, alerts untouched.
    s.deliveries(11, "pending", json!({})).await;
    let broken = serve_app(
        &s.db,
        &[
            (
                "database_url",
                "postgres://postgres@localhost:1/x?sslmode=disable",
            ),
            ("database_host", "localhost:1"),
        ],
    )
    .await;
    let err = broken
        .app
        .run_cron("tracking-health-check", 1)
        .await
        .unwrap()
        .unwrap_err();
    assert!(err.contains("connection"), "{err}");
    let open: i64 =
        s.db.one("SELECT count(*) FROM tracking_health_alerts")
            .await
            .get(0);
    assert_eq!(open, 0);
}
