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
use spin_local::bindings::pg;

/// Sessions of other clients in `widget_sessions` before the runs.
const BASE_SESSIONS: usize = 200_000;
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

/// Bodies made before a measured run, so the load generator's JSON and
/// random ids do not take the cores from the host and Postgres while it is
/// measured (more than the run can send; made on the fly if it runs out).
fn prepared_bodies(batch: usize, seconds: u64) -> crate::BodyMaker {
    let per_second = if batch <= 10 { 2_000 } else { 20_000 / batch };
    let n = per_second * seconds as usize;
    let bodies: Vec<String> = (0..n).map(|_| batch_body(batch)).collect();
    let bodies = std::sync::Mutex::new(bodies);
    Arc::new(move || {
        let next = bodies.lock().ok().and_then(|mut b| b.pop());
        Some(next.unwrap_or_else(|| batch_body(batch)))
    })
}

const COLUMNS: &str = "event_id, client_id, person_id, session_id, event_name, occurred_at, widget_displayed_at, duration_s, \
    page_url, domain, referrer, referrer_domain, utm_source, utm_medium, utm_campaign, device_type, browser, os, client_ip, properties";

/// How the native runs write.
#[derive(Clone, Copy, PartialEq)]
enum Native {
    /// The rows alone: one multi-row `INSERT ... ON CONFLICT DO NOTHING`.
    Insert,
    /// The rows alone: one `COPY`.
    Copy,
    /// The route's own two statements (`ingest_context`, `ingest_write_batch`)
    /// with the parameters the component would send, prepared per request as
    /// Spin does: the database's share of a request, without host or wasm.
    Statements,
}

/// The native runs: `concurrency` connections writing `batch` events per
/// request, for `duration`.
async fn native(
    database_url: &str,
    mode: Native,
    batch: usize,
    concurrency: usize,
    duration: Duration,
    monitor: &tokio_postgres::Client,
    pg_cpu_after: &mut f64,
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
                if mode == Native::Statements {
                    route_statements(&client, batch, &person).await?;
                } else if mode == Native::Copy {
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
            anyhow::Ok((latencies, client))
        }));
    }
    let mut all = Vec::new();
    let mut clients = Vec::new();
    for w in workers {
        let (latencies, client) = w.await??;
        all.extend(latencies);
        clients.push(client);
    }
    let elapsed = started.elapsed();
    // Read the backends' CPU while their connections are still open.
    *pg_cpu_after = backends_cpu(monitor).await?;
    drop(clients);
    all.sort();
    Ok(Figures {
        requests: all.len(),
        errors: 0,
        elapsed,
        p50: percentile(&all, 0.5),
        p99: percentile(&all, 0.99),
    })
}

/// One request's database work as the route does it: the context read, then
/// the write of `batch` events of a new visitor, with the parameters the
/// ingest crate makes for the component (`store::write_params`), each
/// statement prepared unnamed and wrapped as `platform::db` sends it.
async fn route_statements(
    client: &tokio_postgres::Client,
    batch: usize,
    person: &str,
) -> Result<()> {
    use ::ingest::{device::Device, device::PARSER, sessions, store};
    let body = batch_body(batch);
    let mut parsed =
        ::ingest::parse_batch(body.as_bytes()).map_err(|e| anyhow::anyhow!(e.message))?;
    parsed.person_id = person.to_string();
    let site = platform::site::Site {
        root_domain: Some("shop.example".into()),
        allow_localhost: false,
    };
    let now = Utc::now();
    let mut events: Vec<::ingest::EventRow> = parsed
        .events
        .iter()
        .enumerate()
        .filter_map(|(i, raw)| ::ingest::validate_event(i, raw, now, &site).ok())
        .collect();
    store::sort_for_write(&mut events);
    let context = platform::db::as_one_row(store::CONTEXT);
    client
        .query(&context, &[&parsed.client_id, &UA, &PARSER, &person])
        .await?;
    let timed: Vec<sessions::Timed> = events
        .iter()
        .map(|e| sessions::Timed {
            at: e.occurred_at,
            utm_campaign: e.attribution.utm_campaign.as_deref(),
        })
        .collect();
    let ids = sessions::assign(&timed, None, chrono::Duration::minutes(30), || {
        Uuid::new_v4().to_string()
    });
    let device = Device {
        device_type: "desktop".into(),
        browser: Some("Chrome".into()),
        browser_version: Some("120.0.0.0".into()),
        os: Some("Windows 10".into()),
        os_version: None,
        is_bot: false,
    };
    let write = store::BatchWrite {
        batch: &parsed,
        accepted: &events,
        rejected: &[],
        device: &device,
        new_user_agent: None,
        ip: Some("127.0.0.0"),
        rejected_cap_per_hour: 1000,
    };
    let params = store::write_params(&write, &ids, Some(None))
        .into_iter()
        .map(host_param)
        .collect::<Result<Vec<_>>>()?;
    let params = spin_local::postgres::types::to_sql_params(params, pg::Error::BadParameter)
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let write_sql = platform::db::as_one_row(store::WRITE_BATCH);
    client
        .query(
            &write_sql,
            &spin_local::postgres::types::param_refs(&params),
        )
        .await?;
    Ok(())
}

/// The component's parameter as the local host receives it (the kinds
/// `write_params` makes).
fn host_param(p: spin_sdk::pg4::ParameterValue) -> Result<pg::ParameterValue> {
    use spin_sdk::pg4::ParameterValue as G;
    Ok(match p {
        G::Boolean(v) => pg::ParameterValue::Boolean(v),
        G::Int64(v) => pg::ParameterValue::Int64(v),
        G::Str(v) => pg::ParameterValue::Str(v),
        G::Jsonb(v) => pg::ParameterValue::Jsonb(v),
        G::DbNull => pg::ParameterValue::DbNull,
        other => bail!("bench: no conversion for {other:?}"),
    })
}

/// CPU seconds a process has used (utime + stime of /proc/<pid>/stat).
fn process_cpu(pid: &str) -> f64 {
    let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    let Some((_, rest)) = text.rsplit_once(") ") else {
        return 0.0;
    };
    let fields: Vec<f64> = rest
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0.0))
        .collect();
    // USER_HZ is 100 on Linux.
    (fields.get(11).copied().unwrap_or(0.0) + fields.get(12).copied().unwrap_or(0.0)) / 100.0
}

/// CPU seconds used so far by the Postgres backends connected to the bench
/// database (other databases' load on the same server is left out).
async fn backends_cpu(monitor: &tokio_postgres::Client) -> Result<f64> {
    let rows = monitor
        .query(
            "SELECT pid::text FROM pg_stat_activity
              WHERE datname = current_database() AND pid <> pg_backend_pid()",
            &[],
        )
        .await?;
    Ok(rows.iter().map(|r| process_cpu(r.get(0))).sum())
}

/// A measured run: its figures and the CPU it used (this process, Postgres).
struct Run {
    label: String,
    batch: usize,
    figures: Figures,
    cpu: (f64, f64),
}

/// One native run after 1 s of warm-up, with the CPU it used.
async fn measure_native(
    database_url: &str,
    mode: Native,
    label: &str,
    batch: usize,
    concurrency: usize,
    duration: Duration,
    monitor: &tokio_postgres::Client,
) -> Result<Run> {
    println!(
        "{label}, {batch} events per request, concurrency {concurrency}: 1 s warm-up, {} s ...",
        duration.as_secs()
    );
    let mut ignored = 0.0;
    let warm = Duration::from_secs(1);
    native(
        database_url,
        mode,
        batch,
        concurrency,
        warm,
        monitor,
        &mut ignored,
    )
    .await?;
    let mut pg_after = 0.0;
    let pg_before = backends_cpu(monitor).await?;
    let before = process_cpu("self");
    let figures = native(
        database_url,
        mode,
        batch,
        concurrency,
        duration,
        monitor,
        &mut pg_after,
    )
    .await?;
    let after = process_cpu("self");
    Ok(Run {
        label: format!("{label}, {batch}"),
        batch,
        figures,
        cpu: (after - before, pg_after - pg_before),
    })
}

pub async fn run(
    seconds: u64,
    database_url: String,
    concurrency: usize,
    batches: Vec<usize>,
) -> Result<()> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    println!("machine: {}", machine());
    println!("preparing: migrating {database_url}, emptying the event tables");
    spin_local::migrate::migrate(&database_url, &root.join("migrations"), true).await?;
    let client = crate::pg(&database_url).await?;
    client
        .batch_execute(&format!(
            "TRUNCATE session_events, widget_sessions, rejected_events, event_keys;
             INSERT INTO clients (id, name, root_domain) VALUES ('{CLIENT}', 'bench', 'shop.example') ON CONFLICT DO NOTHING;"
        ))
        .await?;
    // A running service's tables are not empty: plans a connection keeps
    // (PL/pgSQL's) made on an empty table would be sequential scans that last
    // until the next autoanalyze, measuring a state production leaves within
    // a minute. So the runs start on a base of other clients' sessions.
    println!("preparing: {BASE_SESSIONS} sessions of 1,000 other clients, ANALYZE");
    client
        .batch_execute(&format!(
            "INSERT INTO widget_sessions (client_id, session_id, person_id, first_seen_at, last_seen_at, event_count)
             SELECT md5('bench-base-' || (i % 1000))::uuid, 'base-' || i, 'base-person-' || i,
                    now() - i * interval '1 second', now() - i * interval '1 second', 3
               FROM generate_series(1, {BASE_SESSIONS}) i;
             ANALYZE widget_sessions, event_keys, session_events;"
        ))
        .await?;
    let (_, addr) = crate::serve_app(HashMap::from([(
        "database_url".to_string(),
        database_url.clone(),
    )]))
    .await?;
    let duration = Duration::from_secs(seconds);
    let warm = Duration::from_secs(1);

    let mut rows: Vec<Run> = Vec::new();
    for &batch in &batches {
        println!("POST /v1/events, batch {batch}, concurrency {concurrency}: 1 s warm-up, {seconds} s ...");
        let make: crate::BodyMaker = Arc::new(move || Some(batch_body(batch)));
        drive_with(addr, "/v1/events", concurrency, warm, make.clone()).await?;
        let make = prepared_bodies(batch, seconds);
        let before = (process_cpu("self"), backends_cpu(&client).await?);
        let f = drive_with(addr, "/v1/events", concurrency, duration, make).await?;
        let after = (process_cpu("self"), backends_cpu(&client).await?);
        if f.errors > 0 {
            bail!(
                "{} of {} ingest requests did not answer 200",
                f.errors,
                f.requests
            );
        }
        rows.push(Run {
            label: format!("ingest route, batch {batch}"),
            batch,
            figures: f,
            cpu: (after.0 - before.0, after.1 - before.1),
        });
        let label = "native, the route's statements";
        rows.push(
            measure_native(
                &database_url,
                Native::Statements,
                label,
                batch,
                concurrency,
                duration,
                &client,
            )
            .await?,
        );
    }
    for (mode, label) in [
        (Native::Insert, "native multi-row INSERT"),
        (Native::Copy, "native COPY"),
    ] {
        rows.push(
            measure_native(
                &database_url,
                mode,
                label,
                100,
                concurrency,
                duration,
                &client,
            )
            .await?,
        );
    }

    let eps = |r: &Run| (r.figures.requests * r.batch) as f64 / r.figures.elapsed.as_secs_f64();
    println!();
    println!("Ingest at concurrency {concurrency} ({seconds} s each); CPU ms per request: this process (host + load generator) / the bench database's Postgres backends");
    println!(
        "{:<38} {:>11} {:>10} {:>8} {:>8} {:>11} {:>11}",
        "run", "requests/s", "events/s", "p50 ms", "p99 ms", "cpu host", "cpu pg"
    );
    for r in &rows {
        let n = r.figures.requests.max(1) as f64;
        println!(
            "{:<38} {:>11.0} {:>10.0} {:>8.2} {:>8.2} {:>11.2} {:>11.2}",
            r.label,
            n / r.figures.elapsed.as_secs_f64(),
            eps(r),
            ms(r.figures.p50),
            ms(r.figures.p99),
            r.cpu.0 * 1000.0 / n,
            r.cpu.1 * 1000.0 / n,
        );
    }
    let by_label = |label: &str| rows.iter().find(|r| r.label.starts_with(label));
    let (Some(insert), Some(copy)) = (by_label("native multi-row"), by_label("native COPY")) else {
        bail!("the native runs are missing");
    };
    let (insert, copy) = (eps(insert), eps(copy));
    if let Some(r100) = rows
        .iter()
        .find(|r| r.batch == 100 && r.label.starts_with("ingest"))
    {
        println!(
            "ratio at batch 100: {:.2} of multi-row INSERT, {:.2} of COPY (goal: at least 0.5)",
            eps(r100) / insert,
            eps(r100) / copy
        );
    }
    if let Some(statements) = by_label("native, the route's statements, 100") {
        println!(
            "the route's statements sent natively (100 events): {:.2} of multi-row INSERT, the database's own ceiling for the route",
            eps(statements) / insert
        );
    }
    for (batch, goal) in [(1usize, "1,000 requests/s"), (10, "10,000 events/s")] {
        if let Some(r) = rows
            .iter()
            .find(|r| r.batch == batch && r.label.starts_with("ingest"))
        {
            println!("batch {batch}: {:.0} events/s (goal: {goal})", eps(r));
        }
    }
    Ok(())
}
