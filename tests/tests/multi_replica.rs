//! Three replicas on one database, as under SpinKube: three `spin-local up`
//! processes on their own ports with every cron schedule enabled (fired
//! every 10 s here instead of minutes). Ingest for the same visitors goes
//! alternately and concurrently through all three, the retry button is
//! clicked on all three while their crons run, and the detector is started
//! on all three at once. Expected: no 5xx; one session row per visitor
//! session with every event; every queued conversion delivered exactly once
//! (counted at a fake Meta); each job's schedule run once, the other
//! replicas' copies `skipped`.

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{SecondsFormat, Utc};
use integration_tests::fake::{Fake, Reply};
use integration_tests::*;
use serde_json::{json, Value};
use uuid::Uuid;

const REPLICAS: usize = 3;
const CRON_EVERY_SECONDS: u64 = 10;

/// One `spin-local up` process, killed when dropped.
struct Replica {
    url: String,
    child: Child,
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// spin.toml with absolute component paths and every schedule fired every
/// `CRON_EVERY_SECONDS`, written under target/.
fn fast_cron_manifest() -> std::path::PathBuf {
    let root = root().canonicalize().unwrap();
    let text = std::fs::read_to_string(app_manifest()).unwrap();
    let mut out = String::new();
    for line in text.lines() {
        if line.starts_with("cron_expression = ") {
            out.push_str(&format!(
                "cron_expression = \"*/{CRON_EVERY_SECONDS} * * * * *\"\n"
            ));
        } else if let Some(rest) = line.strip_prefix("source = \"target/") {
            out.push_str(&format!("source = \"{}/target/{rest}\n", root.display()));
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    assert!(out.matches("*/10 * * * * *").count() >= 5, "five schedules");
    let dir = root
        .join("target/multi-replica")
        .join(Uuid::new_v4().simple().to_string());
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("spin.toml");
    std::fs::write(&path, out).unwrap();
    path
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn start(manifest: &std::path::Path, vars: &[(&str, String)]) -> Replica {
    let port = free_port();
    let mut cmd = Command::new(host_binary());
    cmd.args(["up", "-f"])
        .arg(manifest)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .env_remove("SPIN_VARIABLE_DATABASE_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (k, v) in vars {
        cmd.arg("--variable").arg(format!("{k}={v}"));
    }
    let child = cmd.spawn().unwrap();
    let replica = Replica {
        url: format!("http://127.0.0.1:{port}"),
        child,
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Ok(r) = http().get(format!("{}/healthz", replica.url)).send().await {
            if r.status().as_u16() == 200 {
                return replica;
            }
        }
        assert!(Instant::now() < deadline, "replica on {port} did not start");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn ts(t: chrono::DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_replicas_on_one_database_agree() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let client = Uuid::new_v4();
    c.execute(
        "INSERT INTO clients (id, name, client_type, root_domain) VALUES ($1, 'c', 'client', 'shop.com')",
        &[&client],
    )
    .await
    .unwrap();
    let dest: Uuid = c
        .query_one(
            "INSERT INTO client_destinations (client_id, kind, config)
             VALUES ($1, 'meta_capi', '{\"pixel_id\": \"PX\", \"access_token\": \"T\"}') RETURNING id",
            &[&client],
        )
        .await
        .unwrap()
        .get(0);
    // 600 due conversions, queued before the replicas start.
    const QUEUED: i32 = 600;
    c.execute(
        "INSERT INTO conversion_deliveries (client_id, destination_id, destination, event_id, event_name,
                                            event_time, event_payload, user_data, next_retry_at)
         SELECT $1, $2, 'meta_capi', 'conv-' || g, 'Lead', now() - interval '1 minute',
                '{\"action_source\": \"website\"}', '{\"em\": [\"h\"]}', now() - interval '1 second'
           FROM generate_series(1, $3) g",
        &[&client, &dest, &QUEUED],
    )
    .await
    .unwrap();

    // A Meta that takes 20 ms per request and accepts everything.
    let meta = Fake::start(|r| {
        let n = r.json()["data"].as_array().map_or(0, |d| d.len());
        Reply::json(200, json!({ "events_received": n })).after(Duration::from_millis(20))
    })
    .await;

    let manifest = fast_cron_manifest();
    let vars = [
        ("database_url", db.url.clone()),
        ("admin_jwt_secret", ADMIN_SECRET.to_string()),
        ("meta_capi_base_url", meta.url.clone()),
        // Small runs, so crons and clicks interleave over many claims.
        ("retry_max_events", "50".to_string()),
    ];
    let mut replicas = Vec::new();
    for _ in 0..REPLICAS {
        replicas.push(start(&manifest, &vars).await);
    }
    let urls: Vec<String> = replicas.iter().map(|r| r.url.clone()).collect();
    let statuses = std::sync::Arc::new(std::sync::Mutex::new(BTreeMap::<u16, usize>::new()));
    let note = {
        let statuses = statuses.clone();
        move |s: u16| *statuses.lock().unwrap().entry(s).or_default() += 1
    };

    // Ingest: 20 visitors, 6 batches of 3 events each, every batch through
    // the next replica, and each visitor's batches sent two at a time.
    const VISITORS: usize = 20;
    const BATCHES: usize = 6;
    let t0 = Utc::now() - chrono::Duration::minutes(20);
    let mut ingest = Vec::new();
    for v in 0..VISITORS {
        let urls = urls.clone();
        let note = note.clone();
        ingest.push(tokio::spawn(async move {
            let person = format!("visitor-{v}");
            for pair in 0..BATCHES / 2 {
                let mut sends = Vec::new();
                for b in [pair * 2, pair * 2 + 1] {
                    let events: Vec<Value> = (0..3)
                        .map(|e| {
                            let at = t0 + chrono::Duration::seconds((b * 3 + e) as i64 * 20);
                            json!({ "event_id": Uuid::new_v4(), "name": "widget_impression",
                                    "timestamp": ts(at), "page_url": "https://shop.com/" })
                        })
                        .collect();
                    let body = json!({ "client_id": client, "anonymous_id": person,
                                       "context": { "user_agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36" },
                                       "events": events });
                    let url = format!("{}/v1/events", urls[(v + b) % REPLICAS]);
                    sends.push(async move {
                        http()
                            .post(url)
                            .header("content-type", "application/json")
                            .body(body.to_string())
                            .send()
                            .await
                            .unwrap()
                            .status()
                            .as_u16()
                    });
                }
                for s in futures_join(sends).await {
                    note(s);
                }
            }
        }));
    }

    // The retry button on every replica, over and over, while the crons run.
    let mut clicks = Vec::new();
    for url in urls.clone() {
        let note = note.clone();
        clicks.push(tokio::spawn(async move {
            for _ in 0..6 {
                let res = http()
                    .post(format!("{url}/admin/failed-events/retry"))
                    .header("authorization", admin_bearer())
                    .json(&json!({ "retry_all": true }))
                    .send()
                    .await
                    .unwrap();
                note(res.status().as_u16());
                tokio::time::sleep(Duration::from_millis(700)).await;
            }
        }));
    }
    for t in ingest.into_iter().chain(clicks) {
        t.await.unwrap();
    }

    // The detector on every replica at once: one runs, the others 409.
    let detects: Vec<_> = urls
        .iter()
        .map(|url| {
            http()
                .post(format!("{url}/admin/tracking-health/detect"))
                .header("authorization", admin_bearer())
                .json(&json!({}))
                .send()
        })
        .collect();
    let mut ran = 0;
    for res in futures_join(detects).await {
        let res = res.unwrap();
        let status = res.status().as_u16();
        note(status);
        assert!(
            status == 200 || status == 409,
            "detector: {status} {}",
            res.text().await.unwrap_or_default()
        );
        ran += usize::from(status == 200);
    }
    assert!(ran >= 1, "no replica ran the detector");

    // Let at least two more schedules fire on every replica, and the
    // remaining queue drain.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let left: i64 = c
            .query_one(
                "SELECT count(*) FROM conversion_deliveries WHERE status <> 'resolved'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        let ticks: i64 = c
            .query_one(
                "SELECT count(DISTINCT scheduled_at) FROM job_runs WHERE job_name = 'heartbeat'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if left == 0 && ticks >= 3 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{left} undelivered, {ticks} heartbeat schedules"
        );
    }
    // Runs still going finish (a replica's instance may be mid-run).
    tokio::time::sleep(Duration::from_secs(2)).await;
    drop(replicas);
    let c = db.client().await;

    // No 5xx anywhere.
    let statuses = statuses.lock().unwrap().clone();
    assert!(
        statuses.keys().all(|s| *s < 500),
        "5xx answers: {statuses:?}"
    );

    // Ingest: every event stored, one session per visitor.
    let stored: i64 = c
        .query_one("SELECT count(*) FROM session_events", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored as usize, VISITORS * BATCHES * 3, "{statuses:?}");
    let sessions = c
        .query(
            "SELECT person_id, count(*), sum(event_count)::bigint FROM widget_sessions GROUP BY person_id",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(sessions.len(), VISITORS);
    for s in &sessions {
        let (person, n, events): (String, i64, i64) = (s.get(0), s.get(1), s.get(2));
        assert_eq!(n, 1, "{person}: {n} sessions");
        assert_eq!(events as usize, BATCHES * 3, "{person}");
    }

    // Deliveries: every conversion sent exactly once and resolved.
    let mut sent: BTreeMap<String, usize> = BTreeMap::new();
    for r in meta.requests() {
        for e in r.json()["data"].as_array().cloned().unwrap_or_default() {
            *sent
                .entry(e["event_id"].as_str().unwrap().to_string())
                .or_default() += 1;
        }
    }
    assert_eq!(sent.len(), QUEUED as usize);
    let twice: Vec<_> = sent.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "sent more than once: {twice:?}");
    let resolved: i64 = c
        .query_one(
            "SELECT count(*) FROM conversion_deliveries WHERE status = 'resolved'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(resolved, i64::from(QUEUED));

    // Jobs: each cron schedule of each job ran once; the other replicas'
    // copies were skipped; nothing failed or was left running.
    let runs = c
        .query(
            "SELECT job_name, extract(epoch FROM scheduled_at)::bigint, outcome, count(*)
               FROM job_runs WHERE trigger = 'cron'
              GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
            &[],
        )
        .await
        .unwrap();
    let mut per_schedule: BTreeMap<(String, i64), BTreeMap<String, i64>> = BTreeMap::new();
    for r in &runs {
        per_schedule
            .entry((r.get(0), r.get(1)))
            .or_default()
            .insert(r.get(2), r.get(3));
    }
    let jobs: std::collections::BTreeSet<&str> =
        per_schedule.keys().map(|(j, _)| j.as_str()).collect();
    assert_eq!(
        jobs.into_iter().collect::<Vec<_>>(),
        [
            "analytics-rollup",
            "check-tracking-health",
            "data-retention",
            "detect-tracking-health",
            "heartbeat",
            "retry-failed-events"
        ]
    );
    for ((job, at), outcomes) in &per_schedule {
        let succeeded = outcomes.get("succeeded").copied().unwrap_or(0);
        let skipped = outcomes.get("skipped").copied().unwrap_or(0);
        let total: i64 = outcomes.values().sum();
        assert_eq!(
            succeeded + skipped,
            total,
            "{job} at {at}: {outcomes:?} (failed or unfinished runs)"
        );
        assert!(
            succeeded <= 1,
            "{job} at {at} ran {succeeded} times: {outcomes:?}"
        );
        // The detector's schedule may have been skipped by every replica
        // while a button run held its lock; others run once.
        if job != "detect-tracking-health" {
            assert_eq!(succeeded, 1, "{job} at {at}: {outcomes:?}");
        }
        assert!(total as usize <= REPLICAS, "{job} at {at}: {outcomes:?}");
    }
    // Every replica fired (at least) the schedules seen after all had started.
    assert!(
        per_schedule
            .iter()
            .any(|(_, o)| o.values().sum::<i64>() as usize == REPLICAS),
        "no schedule was fired by all {REPLICAS} replicas: {per_schedule:?}"
    );
    let _ = std::fs::remove_dir_all(manifest.parent().unwrap());
}

/// A schedule fired again after it ran (a replica late by more than the
/// job's run time) is skipped; a replay of an old timestamp runs.
#[tokio::test]
async fn a_schedule_that_already_ran_is_skipped_and_a_replay_runs() {
    let db = TestDb::new().await;
    let app = serve_app(&db, &[]).await;
    let now = Utc::now().timestamp() as u64;
    for at in [now, now, now + 300, 1, 1] {
        app.app.run_cron("heartbeat", at).await.unwrap().unwrap();
    }
    let runs: Vec<(i64, String, Value)> = db
        .client()
        .await
        .query(
            "SELECT extract(epoch FROM scheduled_at)::bigint, outcome, detail FROM job_runs ORDER BY id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let outcomes: Vec<(i64, &str)> = runs.iter().map(|(t, o, _)| (*t, o.as_str())).collect();
    let now = now as i64;
    assert_eq!(
        outcomes,
        [
            (now, "succeeded"),
            (now, "skipped"),
            (now + 300, "succeeded"),
            (1, "succeeded"),
            (1, "succeeded"),
        ]
    );
    assert_eq!(
        runs[1].2["reason"],
        "another instance already ran this schedule"
    );
}

/// Runs every future on its own task, concurrently; their outputs in order.
async fn futures_join<F>(futures: Vec<F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}
