//! The tracking-health detector end to end: fixtures per leaf and boundary in
//! Postgres, the detect endpoint and the cron component through the local
//! host, the backoffice list.

use std::collections::HashMap;

use chrono::{DateTime, Duration, DurationRound, SecondsFormat, Utc};
use integration_tests::*;
use serde_json::{json, Value};
use uuid::Uuid;

/// The instant every fixture is relative to: a whole second an hour ago.
fn as_of() -> DateTime<Utc> {
    (Utc::now() - Duration::hours(1))
        .duration_trunc(Duration::seconds(1))
        .unwrap()
}

struct Fixture<'a> {
    db: &'a TestDb,
}

impl Fixture<'_> {
    async fn client(&self, name: &str, kind: &str, enabled: bool) -> Uuid {
        ClientSpec::new()
            .name(name)
            .client_type(kind)
            .enabled(enabled)
            .root_domain("shop.com")
            .insert(self.db)
            .await
    }

    /// `visitors` distinct visitors each sending one `name` event at `at`,
    /// the way a backfill inserts (only the required columns).
    async fn events(
        &self,
        client: Uuid,
        name: &str,
        visitors: i32,
        at: DateTime<Utc>,
        displayed_ms: i64,
        duration_s: f64,
    ) {
        self.db
            .client()
            .await
            .execute(
                "INSERT INTO session_events (client_id, person_id, event_name, occurred_at, widget_displayed_at, duration_s)
                 SELECT $1, $2 || '-' || g, $3, $4, $5, $6 FROM generate_series(1, $7) g",
                &[&client, &Uuid::new_v4().to_string(), &name, &at, &displayed_ms, &duration_s, &visitors],
            )
            .await
            .unwrap();
    }

    /// Qualifying widget visitors (shown, more than 10 s).
    async fn widget(&self, client: Uuid, visitors: i32, at: DateTime<Utc>) {
        self.events(client, "widget_impression", visitors, at, 1, 12.0)
            .await;
    }

    /// A production client that is healthy but for what the caller changes:
    /// 20 qualifying visitors, `chats` chat visitors, `forms` form events.
    async fn in_prod(&self, name: &str, chats: i32, forms: i32, at: DateTime<Utc>) -> Uuid {
        let c = self.client(name, "client", true).await;
        self.widget(c, 20, at).await;
        self.events(c, "chat_started", chats, at, 0, 0.0).await;
        self.events(c, "client_form_submitted", forms, at, 0, 0.0)
            .await;
        c
    }

    async fn verdicts(&self, day: DateTime<Utc>) -> HashMap<Uuid, String> {
        self.db
            .client()
            .await
            .query(
                "SELECT client_id, outcome FROM client_tracking_health_history WHERE day = ($1::timestamptz AT TIME ZONE 'UTC')::date",
                &[&day],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect()
    }
}

async fn detect(app: &TestApp, body: Value) -> (u16, Value) {
    app.post("/admin/tracking-health/detect")
        .admin()
        .json(&body)
        .send()
        .await
}

async fn app(db: &TestDb) -> TestApp {
    serve_admin_app(db, &[]).await
}

#[tokio::test]
async fn each_client_gets_exactly_the_leaf_its_signals_reach() {
    let db = TestDb::new().await;
    let f = Fixture { db: &db };
    let t = as_of();
    let recent = t - Duration::days(2);
    let prior = t - Duration::days(10);
    let mut expect: Vec<(Uuid, &str)> = Vec::new();

    // widget_stopped: 5 prior visitors and none in the last 7 days; 4 is not enough.
    let c = f.client("stopped-5", "client", true).await;
    f.widget(c, 5, prior).await;
    expect.push((c, "widget_stopped"));
    let c = f.client("prior-4", "client", true).await;
    f.widget(c, 4, prior).await;
    expect.push((c, "widget_not_in_prod"));
    // The 7-day edge: at exactly −7 d an impression is "last 7 days"; a second earlier it is prior.
    let c = f.client("edge-7d-inside", "client", true).await;
    f.widget(c, 5, prior).await;
    f.widget(c, 1, t - Duration::days(7)).await;
    expect.push((c, "widget_not_in_prod"));
    let c = f.client("edge-7d-outside", "client", true).await;
    f.widget(c, 5, prior).await;
    f.widget(c, 1, t - Duration::days(7) - Duration::seconds(1))
        .await;
    expect.push((c, "widget_stopped"));

    // 20 qualifying visitors is in production, 19 is not.
    expect.push((f.in_prod("healthy-20", 10, 1, recent).await, "healthy"));
    let c = f.client("visitors-19", "client", true).await;
    f.widget(c, 19, recent).await;
    f.events(c, "chat_started", 10, recent, 0, 0.0).await;
    f.events(c, "client_form_submitted", 1, recent, 0, 0.0)
        .await;
    expect.push((c, "widget_not_in_prod"));
    // Shown for exactly 10 s, or never displayed: not a widget visitor.
    let c = f.client("duration-10", "client", true).await;
    f.events(c, "widget_impression", 20, recent, 1, 10.0).await;
    expect.push((c, "widget_not_in_prod"));
    let c = f.client("displayed-0", "client", true).await;
    f.events(c, "widget_impression", 20, recent, 0, 30.0).await;
    expect.push((c, "widget_not_in_prod"));
    // The 30-day edge: exactly −30 d is outside, a second later inside; after as_of is outside.
    let c = f.in_prod("edge-30d-outside", 10, 1, recent).await;
    db.exec(&format!("DELETE FROM session_events WHERE client_id = '{c}' AND person_id LIKE '%-20' AND event_name = 'widget_impression'")).await;
    f.widget(c, 1, t - Duration::days(30)).await;
    f.widget(c, 1, t + Duration::seconds(1)).await;
    expect.push((c, "widget_not_in_prod"));
    let c = f.in_prod("edge-30d-inside", 10, 1, recent).await;
    db.exec(&format!("DELETE FROM session_events WHERE client_id = '{c}' AND person_id LIKE '%-20' AND event_name = 'widget_impression'")).await;
    f.widget(c, 1, t - Duration::days(30) + Duration::seconds(1))
        .await;
    expect.push((c, "healthy"));

    // Chats: 9 is unused; 10 with no form is form tracking lost.
    expect.push((f.in_prod("chats-9", 9, 1, recent).await, "widget_not_used"));
    expect.push((
        f.in_prod("forms-0", 10, 0, recent).await,
        "form_tracking_lost",
    ));
    // A client with no events at all.
    expect.push((
        f.client("no-events", "client", true).await,
        "widget_not_in_prod",
    ));
    // Onboarding and test clients are classified too.
    expect.push((
        f.in_prod("onboarding", 10, 0, recent).await,
        "form_tracking_lost",
    ));
    db.exec("UPDATE clients SET client_type = 'onboarding' WHERE name = 'onboarding'")
        .await;

    // Demo, former and disabled clients with broken signals are never flagged.
    let mut excluded = Vec::new();
    for (name, kind, enabled) in [
        ("demo", "demo", true),
        ("former", "former", true),
        ("disabled", "client", false),
    ] {
        let c = f.client(name, kind, enabled).await;
        f.widget(c, 5, prior).await;
        excluded.push(c);
    }

    let app = app(&db).await;
    let (status, body) = detect(
        &app,
        json!({ "as_of": t.to_rfc3339_opts(SecondsFormat::Secs, true) }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let verdicts = f.verdicts(t).await;
    for (client, outcome) in &expect {
        let name: String = db
            .client()
            .await
            .query_one("SELECT name FROM clients WHERE id = $1", &[client])
            .await
            .unwrap()
            .get(0);
        assert_eq!(
            verdicts.get(client).map(String::as_str),
            Some(*outcome),
            "client {name}"
        );
    }
    for c in &excluded {
        assert!(!verdicts.contains_key(c));
    }
    let counted: i64 = [
        "healthy",
        "widget_stopped",
        "widget_not_in_prod",
        "widget_not_used",
        "form_tracking_lost",
    ]
    .iter()
    .map(|o| body["counts"][o].as_i64().unwrap())
    .sum();
    assert_eq!(counted as usize, expect.len());
    assert_eq!(body["counts"]["widget_stopped"], 2);
    assert_eq!(body["counts"]["healthy"], 2);

    // The current verdicts hold exactly the flagged clients, with colour and signals.
    let flagged: i64 = db
        .one("SELECT count(*) FROM client_tracking_health")
        .await
        .get(0);
    assert_eq!(
        flagged as usize,
        expect.iter().filter(|(_, o)| *o != "healthy").count()
    );
    let row = db.one("SELECT h.color, h.widget_prior_23d, h.widget_last_7d FROM client_tracking_health h JOIN clients c ON c.id = h.client_id WHERE c.name = 'stopped-5'").await;
    assert_eq!(
        (
            row.get::<_, String>(0),
            row.get::<_, i64>(1),
            row.get::<_, i64>(2)
        ),
        ("red".to_string(), 5, 0)
    );
}

#[tokio::test]
async fn reruns_replace_the_day_and_since_follows_the_streak() {
    let db = TestDb::new().await;
    let f = Fixture { db: &db };
    let t = as_of();
    let c = f.in_prod("forms", 10, 0, t - Duration::hours(36)).await;
    let app = app(&db).await;
    let day1 = t - Duration::days(2);
    let day2 = t - Duration::days(1);
    for at in [day1, day2, t, t] {
        let (status, body) = detect(&app, json!({ "as_of": at.to_rfc3339() })).await;
        assert_eq!(status, 200, "{body}");
    }
    let days: i64 = db
        .client()
        .await
        .query_one(
            "SELECT count(*) FROM client_tracking_health_history WHERE client_id = $1",
            &[&c],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(days, 3, "a rerun of a day replaces it");
    // On day1 the events had not happened yet: its verdict differs, so the streak starts on day2.
    let since: String = db
        .client()
        .await
        .query_one(
            "SELECT to_char(since, 'YYYY-MM-DD') FROM client_tracking_health WHERE client_id = $1",
            &[&c],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(since, day2.format("%Y-%m-%d").to_string());

    // A form arrives: rerunning today replaces today's verdict, and the badge goes.
    f.events(
        c,
        "client_form_submitted",
        1,
        t - Duration::hours(1),
        0,
        0.0,
    )
    .await;
    detect(&app, json!({ "as_of": t.to_rfc3339() })).await;
    assert_eq!(f.verdicts(t).await[&c], "healthy");
    let flagged: i64 = db
        .one("SELECT count(*) FROM client_tracking_health")
        .await
        .get(0);
    assert_eq!(flagged, 0);
}

#[tokio::test]
async fn readers_never_see_the_verdicts_empty_during_a_run() {
    let db = TestDb::new().await;
    let f = Fixture { db: &db };
    for i in 0..50 {
        f.client(&format!("c{i}"), "client", true).await;
    }
    let app = app(&db).await;
    detect(&app, json!({})).await;
    let reader = db.client().await;
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop = done.clone();
    let watcher = tokio::spawn(async move {
        let mut min = i64::MAX;
        let mut reads = 0;
        while !stop.load(std::sync::atomic::Ordering::SeqCst) {
            let n: i64 = reader
                .query_one("SELECT count(*) FROM client_tracking_health", &[])
                .await
                .unwrap()
                .get(0);
            min = min.min(n);
            reads += 1;
        }
        (min, reads)
    });
    for _ in 0..10 {
        let (status, _) = detect(&app, json!({})).await;
        assert!(status == 200 || status == 409);
    }
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let (min, reads) = watcher.await.unwrap();
    assert!(reads > 10);
    assert_eq!(min, 50, "a reader saw a half-written verdict table");
}

#[tokio::test]
async fn the_nightly_cron_run_is_recorded_and_a_concurrent_click_gets_409() {
    let db = TestDb::new().await;
    let f = Fixture { db: &db };
    f.client("c", "client", true).await;
    let app = app(&db).await;
    app.app
        .run_cron("tracking-health-detect", 1)
        .await
        .unwrap()
        .unwrap();
    let (outcome, detail): (String, Value) = {
        let r = db
            .one("SELECT outcome, detail FROM job_runs WHERE job_name = 'detect-tracking-health'")
            .await;
        (r.get(0), r.get(1))
    };
    assert_eq!(outcome, "succeeded");
    assert_eq!(detail["counts"]["widget_not_in_prod"], 1);
    // A run as of now classifies from the stats it just refreshed.
    assert_eq!(detail["signals"], "mv_client_stats_30d");
    assert!(detail["refresh_ms"].as_f64().is_some() && detail["classify_ms"].as_f64().is_some());
    let stats: i64 = db
        .one("SELECT count(*) FROM mv_client_stats_30d")
        .await
        .get(0);
    assert_eq!(stats, 1);

    // A run in progress elsewhere holds the lock: the button answers 409.
    let holder = db.client().await;
    holder.batch_execute("BEGIN").await.unwrap();
    holder
        .execute(
            "SELECT pg_advisory_xact_lock(hashtextextended('job:' || $1, 0))",
            &[&"detect-tracking-health"],
        )
        .await
        .unwrap();
    let (status, body) = detect(&app, json!({})).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "detection_running");
    holder.batch_execute("COMMIT").await.unwrap();
    assert_eq!(detect(&app, json!({})).await.0, 200);
}

#[tokio::test]
async fn detect_refuses_bad_as_of_and_bad_tokens() {
    let db = TestDb::new().await;
    let app = app(&db).await;
    let (status, body) = detect(&app, json!({ "as_of": "yesterday" })).await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (400, Some("as_of"))
    );
    let future = (Utc::now() + Duration::hours(1)).to_rfc3339();
    let (status, body) = detect(&app, json!({ "as_of": future })).await;
    assert_eq!(status, 400);
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("future"));

    let post = |auth: Option<String>| {
        let mut req = app.post("/admin/tracking-health/detect").json(&json!({}));
        if let Some(a) = auth {
            req = req.auth(&a);
        }
        req.status()
    };
    assert_eq!(post(None).await, 401);
    assert_eq!(post(Some("Bearer nonsense".into())).await, 401);
    assert_eq!(
        post(Some(format!(
            "Bearer {}",
            token(json!({"role": "admin"}), "wrong-secret")
        )))
        .await,
        401
    );
    assert_eq!(
        post(Some(format!(
            "Bearer {}",
            token(json!({"role": "client"}), ADMIN_SECRET)
        )))
        .await,
        403
    );
    assert_eq!(
        post(Some(format!(
            "Bearer {}",
            token(
                json!({"role": "authenticated", "app_metadata": {"role": "admin"}}),
                ADMIN_SECRET
            )
        )))
        .await,
        200
    );
    // Without a configured secret nothing is accepted.
    let open = serve_app(&db, &[]).await;
    let status = open
        .post("/admin/tracking-health/detect")
        .admin()
        .status()
        .await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn the_backoffice_list_shows_badges_red_first_and_filters() {
    let db = TestDb::new().await;
    let f = Fixture { db: &db };
    let t = as_of();
    f.in_prod("amber-unused", 3, 1, t - Duration::days(1)).await;
    f.in_prod("red-forms", 10, 0, t - Duration::days(1)).await;
    f.in_prod("healthy", 10, 1, t - Duration::days(1)).await;
    f.client("a-demo", "demo", true).await;
    let app = app(&db).await;
    assert_eq!(
        detect(&app, json!({ "as_of": t.to_rfc3339() })).await.0,
        200
    );
    let list = |query: &'static str| {
        app.get(&format!("/admin/clients/tracking-health{query}"))
            .admin()
            .send()
    };
    let (status, all) = list("").await;
    assert_eq!(status, 200, "{all}");
    let names: Vec<&str> = all["clients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["red-forms", "amber-unused", "a-demo", "healthy"]);
    let red = &all["clients"][0];
    assert_eq!(red["badge"]["outcome"], "form_tracking_lost");
    assert_eq!(red["badge"]["color"], "red");
    assert!(red["badge"]["meaning"]
        .as_str()
        .unwrap()
        .contains("client_form_submitted"));
    assert!(!red["badge"]["what_to_do"].as_str().unwrap().is_empty());
    assert_eq!(red["badge"]["since"], t.format("%Y-%m-%d").to_string());
    assert_eq!(red["signals"]["conversation_visitors_30d"], 10);
    assert_eq!(all["clients"][2]["badge"], Value::Null);
    assert_eq!(all["clients"][2]["signals"], Value::Null);

    let (_, attention) = list("?needs_attention=true").await;
    assert_eq!(attention["count"], 2);
    let (_, unused) = list("?outcome=widget_not_used").await;
    assert_eq!(unused["clients"][0]["name"], "amber-unused");
    let (_, demo) = list("?client_type=demo").await;
    assert_eq!(demo["count"], 1);
    for (query, field) in [
        ("?outcome=broken", "outcome"),
        ("?client_type=vip", "client_type"),
        ("?needs_attention=yes", "needs_attention"),
        ("?colour=red", "colour"),
    ] {
        let (status, body) = list(query).await;
        assert_eq!(status, 400, "{query}");
        assert_eq!(body["error"]["field"], field);
    }
    let (_, body) = list("?outcome=broken").await;
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("widget_stopped"));
    assert_eq!(
        app.get("/admin/clients/tracking-health").status().await,
        401
    );
}

#[tokio::test]
async fn thresholds_follow_their_spin_variables() {
    let db = TestDb::new().await;
    let f = Fixture { db: &db };
    let t = as_of();
    let c = f.in_prod("nine-chats", 9, 1, t - Duration::days(1)).await;
    let default = app(&db).await;
    detect(&default, json!({ "as_of": t.to_rfc3339() })).await;
    assert_eq!(f.verdicts(t).await[&c], "widget_not_used");
    let lowered = serve_admin_app(&db, &[("tracking_health_min_chats", "9")]).await;
    let (status, body) = detect(&lowered, json!({ "as_of": t.to_rfc3339() })).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(f.verdicts(t).await[&c], "healthy");
    let broken = serve_admin_app(&db, &[("tracking_health_min_chats", "ten")]).await;
    let (status, body) = detect(&broken, json!({})).await;
    assert_eq!(status, 500);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("tracking_health_min_chats"),
        "{body}"
    );
}

#[tokio::test]
async fn a_failed_run_leaves_the_previous_verdicts_and_is_recorded() {
    let db = TestDb::new().await;
    let f = Fixture { db: &db };
    let c = f.client("flagged", "client", true).await;
    let app = app(&db).await;
    assert_eq!(detect(&app, json!({})).await.0, 200);
    // Make the next run fail half-way: after the day's history, while writing the verdicts.
    db.exec("CREATE FUNCTION fail_verdicts() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'disk on fire'; END $$;
             CREATE TRIGGER fail_verdicts BEFORE INSERT ON client_tracking_health FOR EACH ROW EXECUTE FUNCTION fail_verdicts();").await;
    f.events(
        c,
        "widget_impression",
        30,
        Utc::now() - Duration::hours(2),
        1,
        20.0,
    )
    .await;
    let (status, body) = detect(&app, json!({})).await;
    assert_eq!(status, 500, "{body}");
    // The error is in job_runs and the log, not in the answer.
    assert_eq!(body["error"]["code"], "detection_failed", "{body}");
    assert!(!body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("disk on fire"));
    let kept: Vec<(Uuid, String)> = db
        .rows("SELECT client_id, outcome FROM client_tracking_health")
        .await
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(kept, vec![(c, "widget_not_in_prod".to_string())]);
    let history: i64 = db
        .one("SELECT count(*) FROM client_tracking_health_history")
        .await
        .get(0);
    assert_eq!(history, 1);
    let outcomes: Vec<String> = db
        .column(
            "SELECT outcome FROM job_runs WHERE job_name = 'detect-tracking-health' ORDER BY id",
        )
        .await;
    assert_eq!(outcomes, vec!["succeeded", "failed"]);
    let error: String = db
        .one("SELECT detail->>'error' FROM job_runs WHERE outcome = 'failed'")
        .await
        .get(0);
    assert!(error.contains("disk on fire"), "{error}");
}
