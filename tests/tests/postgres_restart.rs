//! Postgres stopped and started again under load, the application left
//! running. Widgets keep sending events and leads, an operator keeps
//! clicking retry, while the cluster is stopped for a few seconds and
//! started again. Expected: during the outage, 503 `database_unavailable`
//! with the JSON error (never another 5xx); nothing that was answered 2xx is
//! lost; every lead's conversion reaches the fake Meta; and once Postgres is
//! back, requests succeed again by themselves (the host's pool replaces its
//! dead connections; the app is not restarted).
//!
//! The restart cuts every other test's connections, so this test is
//! `#[ignore]`d in the parallel suite: `scripts/test` runs it alone after
//! the suite (`--run-ignored only`).

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use integration_tests::fake::{Fake, Reply};
use integration_tests::*;
use serde_json::{json, Value};
use uuid::Uuid;

/// The local cluster's version (`/etc/postgresql/<version>/main`).
fn cluster_version() -> String {
    let mut versions: Vec<String> = std::fs::read_dir("/etc/postgresql")
        .expect("a Debian PostgreSQL cluster in /etc/postgresql")
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    versions.sort();
    versions.into_iter().next().expect("a cluster version")
}

fn pg_ctlcluster(action: &str) {
    let out = Command::new("pg_ctlcluster")
        .args([
            "--skip-systemctl-redirect",
            &cluster_version(),
            "main",
            action,
        ])
        .args(if action == "stop" {
            &["-m", "fast"][..]
        } else {
            &[][..]
        })
        .output()
        .expect("pg_ctlcluster");
    assert!(
        out.status.success(),
        "pg_ctlcluster {action}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Waits until Postgres accepts connections again.
async fn wait_for_postgres() {
    let deadline = Instant::now() + Duration::from_secs(60);
    while tokio_postgres::connect(&admin_url(), tokio_postgres::NoTls)
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "Postgres did not come back");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Answers seen, by request kind and status; the bodies of the 5xx.
#[derive(Default)]
struct Seen {
    statuses: BTreeMap<(&'static str, u16), usize>,
    failures: Vec<(&'static str, u16, Value)>,
    /// Event ids of every ingest answered 2xx.
    events: Vec<String>,
    /// Event ids of every lead answered 2xx.
    leads: Vec<String>,
    /// The last answer of each kind, once Postgres was back.
    after: BTreeMap<&'static str, u16>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "restarts Postgres: scripts/test runs it alone after the suite"]
async fn a_postgres_restart_under_load_loses_nothing_and_heals_by_itself() {
    let db = TestDb::new().await;
    let meta = Fake::start(|r| {
        let n = r.json()["data"].as_array().map_or(0, |d| d.len());
        Reply::json(200, json!({ "events_received": n }))
    })
    .await;
    let app = Arc::new(serve_admin_app(&db, &[("meta_capi_base_url", &meta.url)]).await);
    let client = ClientSpec::new()
        .root_domain("shop.com")
        .lead_contact_required(false)
        .insert(&db)
        .await;
    destination(
        &db,
        client,
        "meta_capi",
        json!({ "pixel_id": "PX", "access_token": "T" }),
    )
    .await;

    let seen = Arc::new(Mutex::new(Seen::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let back = Arc::new(AtomicBool::new(false));
    let note = {
        let (seen, back) = (seen.clone(), back.clone());
        move |kind: &'static str, status: u16, body: &Value| {
            let mut s = seen.lock().unwrap();
            *s.statuses.entry((kind, status)).or_default() += 1;
            if status >= 500 {
                s.failures.push((kind, status, body.clone()));
            }
            if back.load(Ordering::SeqCst) {
                s.after.insert(kind, status);
            }
        }
    };

    let mut workers = Vec::new();
    // Three widgets sending batches of 5 events.
    for w in 0..3 {
        let (app, stop, seen, note) = (app.clone(), stop.clone(), seen.clone(), note.clone());
        workers.push(tokio::spawn(async move {
            let visitor = format!("visitor-{w}");
            while !stop.load(Ordering::SeqCst) {
                let events: Vec<Value> = (0..5)
                    .map(|i| {
                        let at = chrono::Utc::now() - chrono::Duration::seconds(10 - i);
                        widget_event("widget_impression", at, "https://shop.com/")
                    })
                    .collect();
                let ids: Vec<String> = events
                    .iter()
                    .map(|e| e["event_id"].as_str().unwrap().to_string())
                    .collect();
                let (status, body) = app
                    .post_json("/v1/events", &widget_batch(client, &visitor, events))
                    .await;
                note("ingest", status, &body);
                if (200..300).contains(&status) {
                    seen.lock().unwrap().events.extend(ids);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }));
    }
    // A form sending leads (each queues a conversion for Meta).
    {
        let (app, stop, seen, note) = (app.clone(), stop.clone(), seen.clone(), note.clone());
        workers.push(tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                let id = Uuid::new_v4().to_string();
                let lead = json!({ "client_id": client, "event_id": id, "anonymous_id": "anon-1",
                                   "email": format!("{id}@example.com"), "page_url": "https://shop.com/contact",
                                   "fbc": "fb.1.1700000000000.abc", "consent": { "ads": true } });
                let (status, body) = app.post_json("/v1/leads", &lead).await;
                note("lead", status, &body);
                if (200..300).contains(&status) {
                    seen.lock().unwrap().leads.push(id);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }));
    }
    // An operator clicking retry.
    {
        let (app, stop, note) = (app.clone(), stop.clone(), note.clone());
        workers.push(tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                let (status, body) = app.retry_all().await;
                note("retry", status, &body);
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        }));
    }

    // Load, then a three-second outage under load, then load again.
    tokio::time::sleep(Duration::from_secs(2)).await;
    pg_ctlcluster("stop");
    tokio::time::sleep(Duration::from_secs(3)).await;
    pg_ctlcluster("start");
    wait_for_postgres().await;
    // Let the pool meet its dead connections, then judge what follows.
    tokio::time::sleep(Duration::from_secs(2)).await;
    back.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::SeqCst);
    for w in workers {
        w.await.unwrap();
    }

    let seen = std::mem::take(&mut *seen.lock().unwrap());
    let statuses = &seen.statuses;
    // The outage was seen, as 503 database_unavailable and nothing else.
    assert!(
        statuses.keys().any(|(_, s)| *s == 503),
        "no request met the outage: {statuses:?}"
    );
    for (kind, status, body) in &seen.failures {
        assert_eq!(*status, 503, "{kind}: {body} ({statuses:?})");
        assert_eq!(
            body["error"]["code"], "database_unavailable",
            "{kind}: {body}"
        );
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{kind}: {body}"
        );
    }
    assert!(
        statuses
            .keys()
            .all(|(_, s)| (200..300).contains(s) || *s == 503),
        "answers other than 2xx and 503: {statuses:?}"
    );
    // Healed without a restart of the app: every kind's last answer is 2xx.
    for kind in ["ingest", "lead", "retry"] {
        let last = seen.after.get(kind).copied();
        assert!(
            last.is_some_and(|s| (200..300).contains(&s)),
            "{kind} after Postgres came back: {last:?} ({statuses:?})"
        );
    }

    // Nothing answered 2xx was lost.
    let stored: Vec<String> = db.column("SELECT event_id::text FROM session_events").await;
    let stored: std::collections::HashSet<String> = stored.into_iter().collect();
    let lost: Vec<&String> = seen
        .events
        .iter()
        .filter(|e| !stored.contains(*e))
        .collect();
    assert!(!seen.events.is_empty());
    assert!(lost.is_empty(), "{} accepted events lost", lost.len());
    let leads: Vec<String> = db.column("SELECT event_id FROM leads").await;
    let leads: std::collections::HashSet<String> = leads.into_iter().collect();
    assert!(!seen.leads.is_empty());
    assert!(
        seen.leads.iter().all(|l| leads.contains(l)),
        "accepted leads lost"
    );

    // Every accepted lead's conversion reaches Meta: retry runs finish what
    // the outage interrupted.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, body) = app.retry_all().await;
        assert_eq!(status, 200, "{body}");
        let open = db
            .count("SELECT count(*) FROM conversion_deliveries WHERE status <> 'resolved'")
            .await;
        if open == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "{open} deliveries still open");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let sent: std::collections::HashSet<String> = meta
        .requests()
        .iter()
        .flat_map(|r| r.json()["data"].as_array().cloned().unwrap_or_default())
        .map(|e| e["event_id"].as_str().unwrap().to_string())
        .collect();
    let undelivered: Vec<&String> = seen.leads.iter().filter(|l| !sent.contains(*l)).collect();
    assert!(
        undelivered.is_empty(),
        "never sent to Meta: {undelivered:?}"
    );
    eprintln!("answers: {statuses:?}");
}
