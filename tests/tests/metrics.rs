//! `GET /metrics` end to end: seeded outbox, attempts, alerts, job runs and
//! ingest counts, scraped through the local host with the scrape token or an
//! admin JWT, parsed by an independent Prometheus text-format parser
//! (the `prometheus-parse` crate), and every value checked against the seed.

use integration_tests::*;
use prometheus_parse::{Sample, Scrape, Value};
use uuid::Uuid;

const SCRAPE_TOKEN: &str = "test-scrape-token";

async fn scrape(app: &TestApp, auth: Option<&str>) -> (u16, String, String) {
    let mut req = http().get(format!("{}/metrics", app.url));
    if let Some(auth) = auth {
        req = req.header("authorization", auth);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let content_type = res
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, content_type, res.text().await.unwrap())
}

fn parse(text: &str) -> Scrape {
    Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).expect("a Prometheus text exposition")
}

fn find<'a>(scrape: &'a Scrape, metric: &str, labels: &[(&str, &str)]) -> Option<&'a Sample> {
    scrape
        .samples
        .iter()
        .find(|s| s.metric == metric && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
}

/// The value of a gauge or counter sample; panics when it is missing.
fn value(scrape: &Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
    match find(scrape, metric, labels).map(|s| &s.value) {
        Some(Value::Gauge(v)) | Some(Value::Counter(v)) | Some(Value::Untyped(v)) => *v,
        other => panic!("{metric} {labels:?}: {other:?}"),
    }
}

async fn seed(db: &TestDb) {
    let c = db.client().await;
    let client = Uuid::new_v4();
    c.execute(
        "INSERT INTO clients (id, name) VALUES ($1, 'c')",
        &[&client],
    )
    .await
    .unwrap();
    let meta: Uuid = c
        .query_one(
            "INSERT INTO client_destinations (client_id, kind, config) VALUES ($1, 'meta_capi', '{}') RETURNING id",
            &[&client],
        )
        .await
        .unwrap()
        .get(0);
    let hook: Uuid = c
        .query_one(
            "INSERT INTO client_destinations (client_id, kind, config) VALUES ($1, 'webhook', '{}') RETURNING id",
            &[&client],
        )
        .await
        .unwrap()
        .get(0);
    // Outbox: 3 meta pending, due 10 and 5 minutes ago and in an hour; 2
    // webhook retrying, not due; 1 webhook dead-lettered now and 1 two hours
    // ago; 4 meta resolved (history, not depth).
    let rows: &[(&Uuid, &str, &str, i32, i32)] = &[
        (&meta, "meta_capi", "pending", -600, 0),
        (&meta, "meta_capi", "pending", -300, 0),
        (&meta, "meta_capi", "pending", 3600, 0),
        (&hook, "webhook", "retrying", 900, 0),
        (&hook, "webhook", "retrying", 1800, 0),
        (&hook, "webhook", "dead_letter", 0, 0),
        (&hook, "webhook", "dead_letter", 0, -7200),
        (&meta, "meta_capi", "resolved", 0, 0),
        (&meta, "meta_capi", "resolved", 0, 0),
        (&meta, "meta_capi", "resolved", 0, 0),
        (&meta, "meta_capi", "resolved", 0, 0),
    ];
    for (dest, kind, status, due_in, updated_in) in rows {
        c.execute(
            "INSERT INTO conversion_deliveries (client_id, destination_id, destination, event_id, event_name,
                                                event_time, event_payload, status, next_retry_at, updated_at)
             VALUES ($1, $2, $3, gen_random_uuid()::text, 'Lead', now(), '{}', $4,
                     now() + make_interval(secs => $5), now() + make_interval(secs => $6))",
            &[&client, dest, kind, status, &f64::from(*due_in), &f64::from(*updated_in)],
        )
        .await
        .unwrap();
    }
    // Attempts in the window: meta 3 resolved (20, 200, 700 ms) + 1 retrying
    // (3000 ms); webhook 1 dead_letter without latency. One meta attempt
    // two hours ago is outside the window.
    let attempts: &[(&str, &str, Option<i32>, i32)] = &[
        ("meta_capi", "resolved", Some(20), -10),
        ("meta_capi", "resolved", Some(200), -20),
        ("meta_capi", "resolved", Some(700), -30),
        ("meta_capi", "retrying", Some(3000), -40),
        ("webhook", "dead_letter", None, -50),
        ("meta_capi", "resolved", Some(9000), -7200),
    ];
    for (kind, outcome, latency, at) in attempts {
        c.execute(
            "INSERT INTO delivery_attempts (delivery_id, destination_id, destination, trigger, outcome,
                                            latency_ms, attempted_at)
             SELECT id, destination_id, destination, 'cron', $2, $3, now() + make_interval(secs => $4)
               FROM conversion_deliveries WHERE destination = $1 LIMIT 1",
            &[kind, outcome, latency, &f64::from(*at)],
        )
        .await
        .unwrap();
    }
    c.batch_execute(&format!(
        "INSERT INTO tracking_health_alerts (alert_type, scope, severity, message)
              VALUES ('dead_letters', 'global', 'critical', 'm'),
                     ('delivery_error_rate', 'destination:{meta}', 'warning', 'm');
         INSERT INTO tracking_health_alerts (alert_type, scope, severity, message, resolved_at, resolution)
              VALUES ('emq_low', 'global', 'warning', 'm', now(), 'auto');
         INSERT INTO job_runs (job_name, trigger, started_at, finished_at, outcome) VALUES
              ('heartbeat', 'cron', now() - interval '2 hours', now() - interval '2 hours', 'succeeded'),
              ('heartbeat', 'cron', now() - interval '121 seconds', now() - interval '120 seconds', 'succeeded'),
              ('heartbeat', 'cron', now() - interval '10 seconds', now() - interval '10 seconds', 'skipped'),
              ('retry-failed-events', 'cron', now() - interval '60 seconds', now() - interval '59 seconds', 'failed');
         INSERT INTO event_keys (client_id, event_id, occurred_at, received_at)
              SELECT '{client}', gen_random_uuid(), now(), now() - make_interval(secs => g)
                FROM generate_series(1, 7) g;
         INSERT INTO event_keys (client_id, event_id, occurred_at, received_at)
              VALUES ('{client}', gen_random_uuid(), now(), now() - interval '1 hour');
         INSERT INTO rejected_events (client_id, event_index, field, reason, payload, received_at) VALUES
              ('{client}', 0, 'event_name', 'invalid', '{{\"a\": 1}}', now()),
              ('{client}', 1, 'event_name', 'invalid', '{{\"a\": 2}}', now()),
              ('{client}', 2, 'event_name', 'invalid', '{{\"a\": 3}}', now() - interval '1 hour');
         INSERT INTO widget_daily_stats (client_id, day, sessions, unique_visitors, new_visitors, returning_visitors,
                     events, impressions, opens, chats_started, messages, forms_submitted, converted_sessions,
                     total_session_seconds, bot_sessions, bot_visitors, bot_events, event_counts, referrers,
                     utm_sources, devices, browsers, os)
              SELECT '{client}', current_date - d, 0, 0, 0, 0, d * 10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                     '{{}}', '{{}}', '{{}}', '{{}}', '{{}}', '{{}}'
                FROM generate_series(1, 2) d;"
    ))
    .await
    .unwrap();
}

#[tokio::test]
async fn metrics_are_scraped_parsed_and_match_the_database() {
    let db = TestDb::new().await;
    seed(&db).await;
    let app = serve_app(
        &db,
        &[
            ("admin_jwt_secret", ADMIN_SECRET),
            ("metrics_scrape_token", SCRAPE_TOKEN),
        ],
    )
    .await;

    let (status, content_type, text) = scrape(&app, Some(&format!("Bearer {SCRAPE_TOKEN}"))).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
    let (status, _, by_admin) = scrape(&app, Some(&admin_bearer())).await;
    assert_eq!(status, 200);
    let m = parse(&text);
    assert!(parse(&by_admin).samples.len() == m.samples.len());

    assert_eq!(value(&m, "tracking_metrics_window_seconds", &[]), 300.0);
    let outbox = |status: &str, dest: &str| {
        value(
            &m,
            "tracking_outbox_deliveries",
            &[("status", status), ("destination", dest)],
        )
    };
    assert_eq!(outbox("pending", "meta_capi"), 3.0);
    assert_eq!(outbox("retrying", "webhook"), 2.0);
    assert_eq!(outbox("dead_letter", "webhook"), 2.0);
    assert_eq!(outbox("pending", "google_ec"), 0.0);
    assert!(find(&m, "tracking_outbox_deliveries", &[("status", "resolved")]).is_none());
    assert!(matches!(
        find(&m, "tracking_outbox_deliveries", &[]).unwrap().value,
        Value::Gauge(_)
    ));

    // The oldest due meta delivery was due 600 s before the seed.
    let age = value(
        &m,
        "tracking_outbox_oldest_due_age_seconds",
        &[("destination", "meta_capi")],
    );
    assert!((600.0..660.0).contains(&age), "{age}");
    assert_eq!(
        value(
            &m,
            "tracking_outbox_oldest_due_age_seconds",
            &[("destination", "webhook")]
        ),
        0.0
    );
    assert_eq!(
        value(
            &m,
            "tracking_outbox_new_dead_letters",
            &[("destination", "webhook")]
        ),
        1.0
    );

    let attempts = |dest: &str, outcome: &str| {
        value(
            &m,
            "tracking_delivery_attempts",
            &[("destination", dest), ("outcome", outcome)],
        )
    };
    assert_eq!(attempts("meta_capi", "resolved"), 3.0);
    assert_eq!(attempts("meta_capi", "retrying"), 1.0);
    assert_eq!(attempts("webhook", "dead_letter"), 1.0);
    assert_eq!(
        value(
            &m,
            "tracking_delivery_success_ratio",
            &[("destination", "meta_capi")]
        ),
        0.75
    );
    assert_eq!(
        value(
            &m,
            "tracking_delivery_success_ratio",
            &[("destination", "webhook")]
        ),
        0.0
    );
    assert!(find(
        &m,
        "tracking_delivery_success_ratio",
        &[("destination", "gtm_server")]
    )
    .is_none());

    // Latency histogram of meta: 20, 200, 700, 3000 ms.
    let histogram = find(
        &m,
        "tracking_delivery_latency_seconds",
        &[("destination", "meta_capi")],
    )
    .expect("a meta latency histogram");
    let Value::Histogram(buckets) = &histogram.value else {
        panic!("{:?}", histogram.value)
    };
    let at = |le: f64| {
        buckets
            .iter()
            .find(|b| b.less_than == le)
            .unwrap_or_else(|| panic!("bucket {le}: {buckets:?}"))
            .count
    };
    assert_eq!(at(0.025), 1.0);
    assert_eq!(at(0.1), 1.0);
    assert_eq!(at(0.25), 2.0);
    assert_eq!(at(0.5), 2.0);
    assert_eq!(at(1.0), 3.0);
    assert_eq!(at(2.5), 3.0);
    assert_eq!(at(5.0), 4.0);
    assert_eq!(at(f64::INFINITY), 4.0);
    assert_eq!(
        value(
            &m,
            "tracking_delivery_latency_seconds_count",
            &[("destination", "meta_capi")]
        ),
        4.0
    );
    let sum = value(
        &m,
        "tracking_delivery_latency_seconds_sum",
        &[("destination", "meta_capi")],
    );
    assert!((sum - 3.92).abs() < 1e-9, "{sum}");

    let alerts = |t: &str, s: &str| {
        value(
            &m,
            "tracking_alerts_open",
            &[("alert_type", t), ("severity", s)],
        )
    };
    assert_eq!(alerts("dead_letters", "critical"), 1.0);
    assert_eq!(alerts("delivery_error_rate", "warning"), 1.0);
    assert_eq!(alerts("emq_low", "warning"), 0.0);

    let heartbeat = value(
        &m,
        "tracking_job_last_success_age_seconds",
        &[("job", "heartbeat")],
    );
    assert!((120.0..180.0).contains(&heartbeat), "{heartbeat}");
    assert!(find(
        &m,
        "tracking_job_last_success_age_seconds",
        &[("job", "retry-failed-events")]
    )
    .is_none());
    let finished = value(
        &m,
        "tracking_job_last_success_timestamp_seconds",
        &[("job", "heartbeat")],
    );
    let now = chrono::Utc::now().timestamp() as f64;
    assert!((now - 180.0..now - 110.0).contains(&finished), "{finished}");

    assert_eq!(value(&m, "tracking_ingest_accepted_events", &[]), 7.0);
    assert_eq!(value(&m, "tracking_ingest_rejected_events", &[]), 2.0);
    let rolled = find(&m, "tracking_ingest_rolled_up_events_total", &[]).unwrap();
    assert_eq!(rolled.value, Value::Counter(30.0));
    assert!(m
        .docs
        .contains_key("tracking_ingest_rolled_up_events_total"));
}

#[tokio::test]
async fn metrics_need_the_scrape_token_or_an_admin() {
    let db = TestDb::new().await;
    let app = serve_app(
        &db,
        &[
            ("admin_jwt_secret", ADMIN_SECRET),
            ("metrics_scrape_token", SCRAPE_TOKEN),
        ],
    )
    .await;
    let user = format!(
        "Bearer {}",
        token(serde_json::json!({ "role": "client" }), ADMIN_SECRET)
    );
    for (auth, expected) in [
        (None, 401),
        (Some("Bearer wrong-token"), 401),
        (Some(format!("Bearer {SCRAPE_TOKEN}x").as_str()), 401),
        (Some(user.as_str()), 403),
    ] {
        let (status, content_type, body) = scrape(&app, auth).await;
        assert_eq!(status, expected, "{auth:?}: {body}");
        assert_eq!(content_type, "application/json");
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert!(body["error"]["code"].is_string(), "{body}");
    }
    // An empty database scrapes fine: zeros, no job series.
    let (status, _, text) = scrape(&app, Some(&admin_bearer())).await;
    assert_eq!(status, 200);
    let m = parse(&text);
    assert_eq!(
        value(
            &m,
            "tracking_outbox_deliveries",
            &[("status", "pending"), ("destination", "webhook")]
        ),
        0.0
    );
    assert!(find(&m, "tracking_job_last_success_age_seconds", &[]).is_none());
    let res = http()
        .post(format!("{}/metrics", app.url))
        .header("authorization", admin_bearer())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 405);
    assert_eq!(res.headers()["allow"], "GET");
}

#[tokio::test]
async fn without_a_scrape_token_only_admins_scrape() {
    let db = TestDb::new().await;
    let app = serve_app(&db, &[("admin_jwt_secret", ADMIN_SECRET)]).await;
    assert_eq!(scrape(&app, Some("Bearer ")).await.0, 401);
    assert_eq!(scrape(&app, Some(&admin_bearer())).await.0, 200);
}
