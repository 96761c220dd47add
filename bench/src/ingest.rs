//! `bench ingest`: the ingest route against the native insert ceiling.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use bytes::Bytes;
use chrono::{SecondsFormat, Utc};
use futures::SinkExt;
use serde_json::json;
use uuid::Uuid;

use crate::{drive_with, machine, ms, percentile, Figures};
use spin_local::{App, LoadOptions, VariableSources};

const CLIENT: &str = "00000000-0000-4000-8000-00000000be9c";
const UA: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";
const PAGE: &str =
    "https://www.shop.example/pricing?utm_source=google&utm_medium=cpc&utm_campaign=spring";
const NAMES: [&str; 4] = [
    "widget_impression",
    "widget_open",
    "message_sent",
    "chat_started",
];

/// One request's body: `n` events of a new visitor, as the widget sends them.
fn batch_body(n: usize) -> String {
    let now = Utc::now();
    let events: Vec<_> = (0..n)
        .map(|i| {
            json!({
                "event_id": Uuid::new_v4(), "name": NAMES[i % NAMES.len()],
                "timestamp": now.to_rfc3339_opts(SecondsFormat::Millis, true),
                "page_url": PAGE, "referrer": "https://www.google.com/",
                "widget_displayed_at": now.timestamp_millis(), "duration_s": 12.5,
                "properties": { "variant": "b" },
            })
        })
        .collect();
    json!({ "client_id": CLIENT, "anonymous_id": Uuid::new_v4().to_string(), "context": { "user_agent": UA }, "events": events })
        .to_string()
}

const COLUMNS: &str = "event_id, client_id, person_id, session_id, event_name, occurred_at, widget_displayed_at, duration_s, \
    page_url, domain, referrer, referrer_domain, utm_source, utm_medium, utm_campaign, device_type, browser, os, client_ip, properties";

/// The native ceiling: `concurrency` connections inserting `batch` rows per
/// statement (multi-row INSERT) or per COPY, for `duration`.
async fn native(
    database_url: &str,
    copy: bool,
    batch: usize,
    concurrency: usize,
    duration: Duration,
) -> Result<Figures> {
    let deadline = Instant::now() + duration;
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let url = database_url.to_string();
        workers.push(tokio::spawn(async move {
            let client = crate::pg(&url).await?;
            let placeholders: Vec<String> = (0..batch)
                .map(|r| {
                    let b = r * 6;
                    format!(
                        "(${}::uuid, '{CLIENT}', ${}, ${}, ${}, now(), ${}, 12.5, '{PAGE}', 'shop.example', 'https://www.google.com/', 'google.com', 'google', 'cpc', 'spring', 'desktop', 'Chrome', 'Windows 10', '127.0.0.0', ${}::jsonb)",
                        b + 1, b + 2, b + 3, b + 4, b + 5, b + 6
                    )
                })
                .collect();
            let insert = client
                .prepare(&format!("INSERT INTO session_events ({COLUMNS}) VALUES {} ON CONFLICT DO NOTHING", placeholders.join(",")))
                .await?;
            let mut latencies = Vec::new();
            let props = json!({ "variant": "b" });
            while Instant::now() < deadline {
                let person = Uuid::new_v4().to_string();
                let session = Uuid::new_v4().to_string();
                let t = Instant::now();
                if copy {
                    let now = Utc::now().to_rfc3339();
                    let mut text = String::with_capacity(batch * 400);
                    for i in 0..batch {
                        text.push_str(&format!(
                            "{}\t{CLIENT}\t{person}\t{session}\t{}\t{now}\t{}\t12.5\t{PAGE}\tshop.example\thttps://www.google.com/\tgoogle.com\tgoogle\tcpc\tspring\tdesktop\tChrome\tWindows 10\t127.0.0.0\t{{\"variant\": \"b\"}}\n",
                            Uuid::new_v4(), NAMES[i % NAMES.len()], Utc::now().timestamp_millis()
                        ));
                    }
                    let sink = client.copy_in(&format!("COPY session_events ({COLUMNS}) FROM STDIN")).await?;
                    futures::pin_mut!(sink);
                    sink.send(Bytes::from(text)).await?;
                    sink.finish().await?;
                } else {
                    let ids: Vec<Uuid> = (0..batch).map(|_| Uuid::new_v4()).collect();
                    let ms = Utc::now().timestamp_millis();
                    let mut params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = Vec::with_capacity(batch * 6);
                    for (i, id) in ids.iter().enumerate() {
                        params.push(id);
                        params.push(&person);
                        params.push(&session);
                        params.push(&NAMES[i % NAMES.len()]);
                        params.push(&ms);
                        params.push(&props);
                    }
                    client.execute(&insert, &params).await?;
                }
                latencies.push(t.elapsed());
            }
            anyhow::Ok(latencies)
        }));
    }
    let mut all = Vec::new();
    for w in workers {
        all.extend(w.await??);
    }
    let elapsed = started.elapsed();
    all.sort();
    Ok(Figures {
        requests: all.len(),
        errors: 0,
        elapsed,
        p50: percentile(&all, 0.5),
        p99: percentile(&all, 0.99),
    })
}

pub async fn run(seconds: u64, database_url: String, concurrency: usize) -> Result<()> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    println!("machine: {}", machine());
    println!("preparing: migrating {database_url}, emptying the event tables");
    spin_local::migrate::migrate(&database_url, &root.join("migrations"), true).await?;
    let client = crate::pg(&database_url).await?;
    client
        .batch_execute(&format!(
            "TRUNCATE session_events, widget_sessions, rejected_events;
             INSERT INTO clients (id, name, root_domain) VALUES ('{CLIENT}', 'bench', 'shop.example') ON CONFLICT DO NOTHING;"
        ))
        .await?;
    let sources = VariableSources {
        explicit: HashMap::from([("database_url".to_string(), database_url.clone())]),
        env: HashMap::new(),
    };
    let app: Arc<App> = App::load(
        &root.join("spin.toml"),
        LoadOptions {
            variables: sources,
            check_databases: true,
            ..Default::default()
        },
    )
    .await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(spin_local::server::serve(app, listener));
    let duration = Duration::from_secs(seconds);
    let warm = Duration::from_secs(1);

    let mut rows: Vec<(String, usize, Figures)> = Vec::new();
    for batch in [1usize, 10, 100] {
        println!("POST /v1/events, batch {batch}, concurrency {concurrency}: 1 s warm-up, {seconds} s ...");
        let make: crate::BodyMaker = Arc::new(move || Some(batch_body(batch)));
        drive_with(addr, "/v1/events", concurrency, warm, make.clone()).await?;
        let f = drive_with(addr, "/v1/events", concurrency, duration, make).await?;
        if f.errors > 0 {
            bail!(
                "{} of {} ingest requests did not answer 200",
                f.errors,
                f.requests
            );
        }
        rows.push((format!("ingest route, batch {batch}"), batch, f));
    }
    for (copy, label) in [(false, "native multi-row INSERT"), (true, "native COPY")] {
        println!("{label}, 100 rows per statement, concurrency {concurrency}: 1 s warm-up, {seconds} s ...");
        native(&database_url, copy, 100, concurrency, warm).await?;
        let f = native(&database_url, copy, 100, concurrency, duration).await?;
        rows.push((format!("{label}, 100 rows"), 100, f));
    }

    let eps = |batch: usize, f: &Figures| (f.requests * batch) as f64 / f.elapsed.as_secs_f64();
    println!();
    println!("Ingest at concurrency {concurrency} ({seconds} s each)");
    println!(
        "{:<34} {:>12} {:>12} {:>10} {:>10}",
        "run", "requests/s", "events/s", "p50 ms", "p99 ms"
    );
    for (label, batch, f) in &rows {
        println!(
            "{:<34} {:>12.0} {:>12.0} {:>10.2} {:>10.2}",
            label,
            f.requests as f64 / f.elapsed.as_secs_f64(),
            eps(*batch, f),
            ms(f.p50),
            ms(f.p99)
        );
    }
    let route100 = eps(100, &rows[2].2);
    let insert = eps(100, &rows[3].2);
    let copy = eps(100, &rows[4].2);
    println!(
        "ratio at batch 100: {:.2} of multi-row INSERT, {:.2} of COPY (goal: at least 0.5)",
        route100 / insert,
        route100 / copy
    );
    Ok(())
}
