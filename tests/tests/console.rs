//! The operator console (`/console/`): the static component over HTTP, and
//! the console itself in a real browser: tests/browser/console.mjs drives
//! Debian's Chromium with playwright-core against the application on the
//! local host, after this file seeded the database (failed deliveries
//! against a local fake of Meta, a check that opened alerts, clients for the
//! detector, a week of widget traffic through the real ingest endpoint).
//! Afterwards the database must show what the clicks did.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Duration as Days, Utc};
use integration_tests::fake::{Fake, Reply};
use integration_tests::*;
use serde_json::{json, Value};
use uuid::Uuid;

const SECRET: &str = "SECRET-ACCESS-TOKEN-4711";
const XSS_NAME: &str =
    "<img src=x onerror=\"window.__xss=1\"><script>window.__xss=1</script>Bold & Co";
const UA_MOBILE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1";
const UA_DESKTOP: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36";

fn browser_dir() -> PathBuf {
    root().join("tests/browser")
}

/// What the browser test needs; scripts/test installs it. Never skipped.
fn require_browser() -> String {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).exists(),
        "{chromium} is missing: the console's browser tests need Debian's Chromium \
         (scripts/test installs it: apt-get install -y chromium)"
    );
    assert!(
        browser_dir().join("node_modules/playwright-core").is_dir(),
        "tests/browser/node_modules is missing: run `npm ci` in tests/browser (scripts/test does)"
    );
    let node = std::process::Command::new("node").arg("--version").output();
    assert!(
        node.is_ok_and(|o| o.status.success()),
        "node is not on PATH: the console's browser tests run with Node.js"
    );
    chromium
}

async fn get(url: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let client = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut req = client.get(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap()
}

fn header(res: &reqwest::Response, name: &str) -> String {
    res.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

#[tokio::test]
async fn the_console_is_served_with_types_etags_and_a_strict_policy() {
    let db = TestDb::new().await;
    let app = serve_app(&db, &[]).await;
    let base = format!("{}/console", app.url);

    let res = get(&base, &[]).await;
    assert_eq!(res.status().as_u16(), 308);
    assert_eq!(header(&res, "location"), "/console/");

    let res = get(&format!("{base}/"), &[]).await;
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(header(&res, "content-type"), "text/html; charset=utf-8");
    assert_eq!(header(&res, "cache-control"), "no-cache");
    let csp = header(&res, "content-security-policy");
    assert!(
        csp.starts_with("default-src 'none'; script-src 'self'; style-src 'self'"),
        "{csp}"
    );
    let etag = header(&res, "etag");
    let html = res.text().await.unwrap();
    assert!(html.contains("<script type=\"module\" src=\"js/main.js\"></script>"));

    let res = get(&format!("{base}/"), &[("if-none-match", &etag)]).await;
    assert_eq!(res.status().as_u16(), 304);
    assert_eq!(header(&res, "etag"), etag);
    assert!(res.bytes().await.unwrap().is_empty());

    let res = get(&format!("{base}/js/main.js"), &[]).await;
    assert_eq!(
        (res.status().as_u16(), header(&res, "content-type")),
        (200, "text/javascript; charset=utf-8".to_string())
    );
    assert_ne!(header(&res, "etag"), etag);
    let res = get(&format!("{base}/console.css"), &[]).await;
    assert_eq!(header(&res, "content-type"), "text/css; charset=utf-8");

    let res = get(&format!("{base}/js/missing.js"), &[]).await;
    assert_eq!(res.status().as_u16(), 404);
    assert!(!header(&res, "content-security-policy").is_empty());
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_found");

    let res = app.post("/console/").response().await;
    assert_eq!(res.status().as_u16(), 405);
    assert_eq!(header(&res, "allow"), "GET, HEAD");
}

/// A Meta fake: pixel PXB is down (503); on PXA the event `lead-bad` is refused (400).
async fn meta() -> Fake {
    Fake::start(|r| {
        if r.path.contains("/PXB/") {
            return Reply::json(
                503,
                json!({ "error": { "message": "Service unavailable", "code": 2 } }),
            );
        }
        let data = r.json()["data"].as_array().cloned().unwrap_or_default();
        if data.iter().any(|e| e["event_id"] == "lead-bad") {
            Reply::json(
                400,
                json!({ "error": { "message": "Invalid parameter", "code": 100 } }),
            )
        } else {
            Reply::json(200, json!({ "events_received": data.len() }))
        }
    })
    .await
}

struct Seed<'a> {
    db: &'a TestDb,
}

impl Seed<'_> {
    async fn client(&self, name: &str, domain: &str) -> Uuid {
        ClientSpec::new()
            .name(name)
            .root_domain(domain)
            .insert(self.db)
            .await
    }

    async fn destination(&self, client: Uuid, pixel: &str) -> Uuid {
        let config = json!({ "pixel_id": pixel, "access_token": SECRET });
        destination(self.db, client, "meta_capi", config).await
    }

    /// Due deliveries with these event ids.
    async fn deliveries(&self, dest: Uuid, ids: &[String]) {
        Deliveries::to(dest)
            .ids(ids)
            .event_age("1 hour")
            .payload(json!({ "action_source": "website" }))
            .user_data(json!({ "em": ["h"] }))
            .due()
            .insert(self.db)
            .await;
    }

    /// `visitors` visitors each sending one `name` event at `at`, the way
    /// the detector's fixtures do (tests/tracking_health.rs).
    async fn detector_events(&self, client: Uuid, name: &str, visitors: i32, at: DateTime<Utc>) {
        self.db
            .client()
            .await
            .execute(
                "INSERT INTO session_events (client_id, person_id, event_name, occurred_at, widget_displayed_at, duration_s)
                 SELECT $1, $2 || '-' || g, $3, $4, 1, 12 FROM generate_series(1, $5) g",
                &[&client, &name, &name, &at, &visitors],
            )
            .await
            .unwrap();
    }

    async fn count(&self, sql: &str) -> i64 {
        self.db.count(sql).await
    }
}

/// One visitor's session through the real ingest endpoint.
async fn visit(app: &TestApp, client: Uuid, n: usize, at: DateTime<Utc>) {
    let mobile = n.is_multiple_of(3);
    let mut names = vec!["widget_impression", "widget_open"];
    if n.is_multiple_of(2) {
        names.push("chat_started");
    }
    let page = if n.is_multiple_of(4) {
        "https://www.acme.example/pricing?utm_source=google"
    } else {
        "https://www.acme.example/"
    };
    let events: Vec<Value> = names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            json!({ "event_id": Uuid::new_v4(), "name": name, "page_url": page,
                    "timestamp": (at + Days::seconds(20 * i as i64)).to_rfc3339() })
        })
        .collect();
    let body = json!({
        "client_id": client, "anonymous_id": format!("visitor-{n}"), "session_id": format!("session-{n}"),
        "context": { "user_agent": if mobile { UA_MOBILE } else { UA_DESKTOP } },
        "events": events,
    });
    let res = app.post("/v1/events").json(&body).response().await;
    assert_eq!(res.status().as_u16(), 200, "{}", res.text().await.unwrap());
}

#[tokio::test]
async fn the_console_works_in_a_real_browser() {
    let chromium = require_browser();
    let fake = meta().await;
    let db = TestDb::new().await;
    let app = serve_admin_app(&db, &[("meta_capi_base_url", fake.url.as_str())]).await;
    let s = Seed { db: &db };
    let now = Utc::now();

    // Failed deliveries of a client whose name is markup: 13 on pixel A (one
    // of them refused for good), 2 on pixel B (down); attempts for the chart.
    let xss = s.client(XSS_NAME, "xss.example").await;
    let pxa = s.destination(xss, "PXA").await;
    let pxb = s.destination(xss, "PXB").await;
    let mut on_a: Vec<String> = (1..=12).map(|i| format!("lead-{i}")).collect();
    on_a.push("lead-bad".into());
    s.deliveries(pxa, &on_a).await;
    s.deliveries(pxb, &["lead-b1".into(), "lead-b2".into()])
        .await;
    db.client()
        .await
        .execute(
            "INSERT INTO delivery_attempts (delivery_id, destination_id, destination, trigger, outcome, latency_ms, attempted_at)
             SELECT (SELECT min(id) FROM conversion_deliveries), $1, 'meta_capi', 'inline', 'resolved', 10 * g,
                    now() - interval '2 hours'
               FROM generate_series(1, 40) g",
            &[&pxa],
        )
        .await
        .unwrap();

    // The detector's clients: one healthy, one whose widget stopped.
    let healthy = s.client("Healthy Co", "healthy.example").await;
    s.detector_events(healthy, "widget_impression", 20, now - Days::days(2))
        .await;
    s.detector_events(healthy, "chat_started", 10, now - Days::days(2))
        .await;
    s.detector_events(healthy, "client_form_submitted", 1, now - Days::days(2))
        .await;
    let stopped = s.client("Stopped Shop", "stopped.example").await;
    s.detector_events(stopped, "widget_impression", 5, now - Days::days(10))
        .await;

    // Widget traffic over the three days before today, through ingest.
    let acme = s.client("Acme Analytics", "acme.example").await;
    let today = now.date_naive();
    let mut per_day = BTreeMap::new();
    let mut n = 0;
    for (back, sessions) in [(3, 4), (2, 9), (1, 13)] {
        let day = today - Days::days(back);
        let noon = day.and_hms_opt(12, 0, 0).unwrap().and_utc();
        for i in 0..sessions {
            n += 1;
            visit(&app, acme, n, noon + Days::minutes(i)).await;
        }
        per_day.insert(day.to_string(), sessions);
    }
    let total: i64 = per_day.values().sum();
    let (from, to) = (today - Days::days(3), today - Days::days(1));
    let trends: Value = app
        .get(&format!(
            "/admin/analytics/{acme}/trends?from={from}&to={to}"
        ))
        .admin()
        .response()
        .await
        .json()
        .await
        .unwrap();
    let api_days: BTreeMap<String, i64> = trends["days"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["date"].as_str().unwrap().to_string(),
                d["sessions"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(api_days, per_day, "the API reads the seeded sessions");

    // A check opens the backlog alerts: 15 waiting overall, 13 on pixel A.
    app.app
        .run_cron("tracking-health-check", 1)
        .await
        .unwrap()
        .unwrap();
    let open_alerts = s
        .count("SELECT count(*) FROM tracking_health_alerts WHERE resolved_at IS NULL AND severity = 'critical'")
        .await;
    assert_eq!(open_alerts, 2);
    assert_eq!(
        s.count("SELECT count(*) FROM tracking_health_alerts WHERE resolved_at IS NULL")
            .await,
        2
    );

    let seed = json!({
        "open_alerts": open_alerts,
        "secret": SECRET,
        "xss_client": xss, "xss_name": XSS_NAME,
        "healthy_name": "Healthy Co", "stopped_name": "Stopped Shop",
        "analytics": acme, "sessions_per_day": per_day, "sessions_total": total,
    });
    let good = token(
        json!({ "sub": "console-test", "role": "admin" }),
        ADMIN_SECRET,
    );
    let bad = token(
        json!({ "sub": "console-test", "role": "admin" }),
        "another-secret",
    );
    let started = std::time::Instant::now();
    let child = tokio::process::Command::new("node")
        .arg(browser_dir().join("console.mjs"))
        .env("CONSOLE_URL", &app.url)
        .env("CONSOLE_TOKEN", &good)
        .env("CONSOLE_BAD_TOKEN", &bad)
        .env("CONSOLE_SEED", seed.to_string())
        .env("CHROMIUM", &chromium)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("starting node");
    let out = tokio::time::timeout(Duration::from_secs(240), child.wait_with_output())
        .await
        .expect("the browser test did not finish in 240 s")
        .unwrap();
    println!(
        "{}{}(browser test: {:.1} s)",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        started.elapsed().as_secs_f64()
    );
    assert!(out.status.success(), "the browser test failed (see above)");

    // What the clicks did, as the database saw it.
    assert_eq!(
        s.count("SELECT count(*) FROM tracking_health_alerts WHERE resolution = 'manual' AND resolved_by = 'console-test'")
            .await,
        2
    );
    let statuses: Vec<(String, i64)> = db
        .rows("SELECT status, count(*) FROM conversion_deliveries GROUP BY status ORDER BY status")
        .await
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let expected = [("dead_letter", 1), ("resolved", 12), ("retrying", 2)];
    assert_eq!(
        statuses,
        expected.map(|(k, n)| (k.to_string(), n)),
        "after Retry all, the selected retry and the re-queue"
    );
    assert!(
        s.count("SELECT count(*) FROM delivery_attempts WHERE trigger = 'manual'")
            .await
            >= 15
    );
    assert_eq!(
        s.count("SELECT count(*) FROM job_runs WHERE job_name = 'detect-tracking-health' AND trigger = 'http' AND outcome = 'succeeded'")
            .await,
        1
    );
    assert!(
        fake.requests()
            .iter()
            .any(|r| r.path.contains("/PXA/")
                && r.json()["data"].as_array().map(Vec::len) == Some(13))
    );
}
