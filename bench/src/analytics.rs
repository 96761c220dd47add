//! `bench analytics`: widget analytics at scale. Generates (set-based SQL,
//! progress printed) 10,000 clients, `--millions` million raw events over the
//! last 120 days, their sessions, 1M sessions past the 365-day retention and
//! two years of daily stats; then fires the real `analytics-rollup` cron
//! component once (yesterday's rollup + retention, timed from its job_runs
//! row) and drives each read endpoint through the local host, one request
//! at a time, reporting p50/p99.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tokio_postgres::NoTls;

use spin_local::{App, LoadOptions, VariableSources};

use crate::{machine, ms, percentile};

const CLIENTS: i64 = 10_000;
const CHUNK: i64 = 1_000_000;
const RAW_DAYS: i64 = 120;
const STATS_DAYS: i64 = 730;
const SECRET: &str = "bench-admin-secret";

fn admin_token() -> Result<String> {
    let claims = serde_json::json!({ "sub": "bench", "role": "admin", "exp": 4_102_444_800i64 });
    Ok(jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )?)
}

async fn step(client: &tokio_postgres::Client, what: &str, sql: &str) -> Result<f64> {
    let t = Instant::now();
    client
        .batch_execute(sql)
        .await
        .with_context(|| what.to_string())?;
    let s = t.elapsed().as_secs_f64();
    println!("  {what}: {s:.1} s");
    Ok(s)
}

async fn generate(client: &tokio_postgres::Client, millions: i64) -> Result<()> {
    println!("generating: {CLIENTS} clients, {millions}M events over {RAW_DAYS} days, sessions, {STATS_DAYS} days of stats");
    step(
        client,
        "reset",
        &format!(
            "TRUNCATE session_events, widget_sessions, widget_daily_stats, analytics_rollup_days,
                      analytics_rollup_state, analytics_visitors, job_runs;
             SELECT ensure_session_events_partitions((now() - interval '{RAW_DAYS} days')::date, 7);
             INSERT INTO clients (id, name, root_domain)
             SELECT md5('bench-' || i)::uuid, 'bench-' || i, 'shop.example' FROM generate_series(1, {CLIENTS}) i
             ON CONFLICT (id) DO NOTHING;"
        ),
    )
    .await?;
    // Chunk k covers its slice of the 120 days, in time order as ingest would
    // write it; a visitor pool per client drifts by day, so visitors return.
    for k in 0..millions {
        let t = Instant::now();
        client
            .batch_execute(&format!(
                "INSERT INTO session_events (client_id, person_id, session_id, event_name, occurred_at, received_at,
                                             referrer_domain, utm_source, device_type, browser, os, is_bot)
                 SELECT cid, pid, pid || '-' || to_char(at, 'YYYYMMDD'), name, at, at + interval '2 seconds',
                        ref, utm, dev, br, os, bot
                   FROM (SELECT md5('bench-' || (1 + (random() * ({CLIENTS} - 1))::int))::uuid AS cid,
                                'v' || ((extract(epoch FROM ts)::int8 / 86400) * 3 + (random() * 10)::int) % 300 AS pid,
                                (ARRAY['widget_impression','widget_impression','widget_impression','widget_open',
                                       'chat_started','message_sent','message_sent','client_form_submitted',
                                       'pricing_viewed'])[1 + (random() * 8)::int] AS name,
                                ts AS at,
                                (ARRAY[NULL, NULL, 'google.com', 'bing.com', 'facebook.com', 'news.example'])[1 + (random() * 5)::int] AS ref,
                                (ARRAY[NULL, NULL, NULL, 'google', 'newsletter', 'meta'])[1 + (random() * 5)::int] AS utm,
                                (ARRAY['desktop', 'desktop', 'mobile', 'mobile', 'tablet'])[1 + (random() * 4)::int] AS dev,
                                (ARRAY['Chrome', 'Chrome', 'Safari', 'Firefox', 'Edge'])[1 + (random() * 4)::int] AS br,
                                (ARRAY['Windows', 'macOS', 'iOS', 'Android'])[1 + (random() * 3)::int] AS os,
                                random() < 0.03 AS bot
                           FROM (SELECT now() - interval '{RAW_DAYS} days'
                                        + ({k} + g::float8 / {CHUNK}) / {millions} * interval '{RAW_DAYS} days' AS ts
                                   FROM generate_series(1, {CHUNK}) g) s) e"
            ))
            .await?;
        println!(
            "  events: {}M of {millions}M ({:.1} s)",
            k + 1,
            t.elapsed().as_secs_f64()
        );
    }
    step(
        client,
        "sessions from the events",
        "INSERT INTO widget_sessions (client_id, session_id, person_id, first_seen_at, last_seen_at, event_count,
                                      referrer_domain, utm_source, device_type, browser, os, is_bot,
                                      chat_started, form_submitted)
         SELECT client_id, session_id, min(person_id), min(occurred_at), max(occurred_at), count(*),
                min(referrer_domain), min(utm_source), min(device_type), min(browser), min(os), bool_or(is_bot),
                bool_or(event_name = 'chat_started'), bool_or(event_name = 'client_form_submitted')
           FROM session_events GROUP BY client_id, session_id",
    )
    .await?;
    step(
        client,
        "1M sessions past the 365-day retention",
        &format!(
            "INSERT INTO widget_sessions (client_id, session_id, person_id, first_seen_at, last_seen_at, event_count, device_type)
             SELECT md5('bench-' || (1 + g % {CLIENTS}))::uuid, 'old-' || g, 'old', t, t, 3, 'desktop'
               FROM (SELECT g, now() - interval '400 days' - (g % 30) * interval '1 day' AS t
                       FROM generate_series(1, 1000000) g) x"
        ),
    )
    .await?;
    // Two years of daily stats for every client, except yesterday and today
    // (yesterday is the rollup the benchmark times; today is read raw).
    step(
        client,
        "daily stats (2 years x 10,000 clients)",
        &format!(
            "INSERT INTO widget_daily_stats
             SELECT md5('bench-' || i)::uuid, d::date, s, v, v / 3, v - v / 3, s * 4, s * 2, s / 2, s / 4, s / 2, s / 8,
                    s / 4, s * 95.0, 1, 1, 5,
                    jsonb_build_object('widget_impression', s * 2, 'widget_open', s / 2, 'chat_started', s / 4,
                                       'message_sent', s / 2, 'client_form_submitted', s / 8, 'pricing_viewed', s / 3),
                    jsonb_build_object('(direct)', s / 2, 'google.com', s / 4, 'bing.com', s / 8, 'facebook.com', s / 8),
                    jsonb_build_object('(none)', s / 2, 'google', s / 4, 'newsletter', s / 4),
                    jsonb_build_object('desktop', s / 2, 'mobile', s / 3, 'tablet', s - s / 2 - s / 3),
                    jsonb_build_object('Chrome', s / 2, 'Safari', s / 4, 'Firefox', s / 8, 'Edge', s / 8),
                    jsonb_build_object('Windows', s / 2, 'macOS', s / 4, 'iOS', s / 8, 'Android', s / 8)
               FROM generate_series(1, {CLIENTS}) i,
                    generate_series(current_date - {STATS_DAYS}, current_date - 2, interval '1 day') d,
                    LATERAL (SELECT 5 + (hashtext(i::text || d::text) & 63) AS s,
                                    3 + (hashtext(d::text || i::text) & 31) AS v) x;
             INSERT INTO analytics_rollup_days (day, rolled_up_at, clients)
             SELECT d::date, now(), {CLIENTS}
               FROM generate_series(current_date - {STATS_DAYS}, current_date - 2, interval '1 day') d;
             -- Only yesterday is new for the nightly run.
             INSERT INTO analytics_rollup_state VALUES (true, now());"
        ),
    )
    .await?;
    step(client, "ANALYZE", "ANALYZE").await?;
    Ok(())
}

/// `n` sequential GETs of paths made by `path`, each must answer 200.
async fn drive(
    addr: std::net::SocketAddr,
    token: &str,
    n: usize,
    path: impl Fn(usize) -> String,
) -> Result<(Duration, Duration)> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let mut times = Vec::with_capacity(n);
    for i in 0..n {
        let req = http::Request::get(path(i))
            .header("host", "127.0.0.1")
            .header("authorization", format!("Bearer {token}"))
            .body(Full::new(Bytes::new()))?;
        sender.ready().await?;
        let t = Instant::now();
        let res = sender.send_request(req).await?;
        let status = res.status();
        let body = res.into_body().collect().await?.to_bytes();
        times.push(t.elapsed());
        if status != 200 {
            bail!(
                "{} answered {status}: {}",
                path(i),
                String::from_utf8_lossy(&body)
            );
        }
    }
    times.sort();
    Ok((percentile(&times, 0.5), percentile(&times, 0.99)))
}

pub async fn run(
    database_url: String,
    millions: i64,
    requests: usize,
    skip_generate: bool,
) -> Result<()> {
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    println!("machine: {}", machine());
    if !skip_generate {
        spin_local::migrate::migrate(&database_url, &root.join("migrations"), true).await?;
    }
    let (client, conn) = tokio_postgres::connect(&database_url, NoTls).await?;
    tokio::spawn(conn);
    if !skip_generate {
        generate(&client, millions).await?;
    }
    let counts = client
        .query_one(
            "SELECT (SELECT count(*) FROM session_events), (SELECT count(*) FROM widget_sessions),
                    (SELECT count(*) FROM widget_daily_stats),
                    (SELECT count(*) FROM session_events
                      WHERE occurred_at >= current_date - 1 AND occurred_at < current_date),
                    pg_size_pretty(pg_database_size(current_database()))",
            &[],
        )
        .await?;
    let (events, sessions, stats, yesterday, size): (i64, i64, i64, i64, String) = (
        counts.get(0),
        counts.get(1),
        counts.get(2),
        counts.get(3),
        counts.get(4),
    );
    println!("data: {events} events ({yesterday} yesterday), {sessions} sessions, {stats} daily stats rows, database {size}");

    let sources = VariableSources {
        explicit: HashMap::from([
            ("database_url".to_string(), database_url.clone()),
            ("admin_jwt_secret".to_string(), SECRET.to_string()),
        ]),
        env: HashMap::new(),
    };
    let app: Arc<App> = App::load(
        &root.join("spin.toml"),
        LoadOptions {
            variables: sources,
            check_databases: true,
        },
    )
    .await
    .context("loading spin.toml (build the components first: scripts/build-components)")?;

    let mut nightly = None;
    if !skip_generate {
        println!("nightly job: the analytics-rollup cron component, once ...");
        let t = Instant::now();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs();
        app.run_cron("analytics-rollup", now)
            .await?
            .map_err(anyhow::Error::msg)?;
        let total = t.elapsed().as_secs_f64();
        let detail: serde_json::Value = client
            .query_one(
                "SELECT detail FROM job_runs WHERE job_name = 'analytics-rollup' ORDER BY id DESC LIMIT 1",
                &[],
            )
            .await?
            .get(0);
        println!("  {total:.1} s: {detail}");
        nightly = Some((total, detail));
        client.batch_execute("ANALYZE").await?;
    }

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(spin_local::server::serve(app.clone(), listener));
    let token = admin_token()?;
    let ids: Vec<String> = client
        .query(
            &format!("SELECT md5('bench-' || (1 + (random() * ({CLIENTS} - 1))::int))::uuid::text FROM generate_series(1, {requests})"),
            &[],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let from_365 = (chrono::Utc::now().date_naive() - chrono::Duration::days(364)).to_string();
    let endpoints: Vec<(&str, String)> = vec![
        ("summary (30 d)", "summary".into()),
        ("summary (365 d)", format!("summary?from={from_365}")),
        ("trends (30 d)", "trends".into()),
        ("trends (365 d)", format!("trends?from={from_365}")),
        ("events (30 d)", "events".into()),
        ("traffic-sources (30 d)", "traffic-sources".into()),
        ("devices (30 d)", "devices".into()),
        ("active", "active".into()),
        ("sessions (30 d, page 1)", "sessions?limit=50".into()),
        (
            "sessions (device filter)",
            "sessions?limit=50&device=mobile".into(),
        ),
    ];
    let mut rows = Vec::new();
    for (label, query) in &endpoints {
        // Warm-up: 20 requests, then the measured ones.
        let ids_ref = &ids;
        let path = |i: usize| format!("/admin/analytics/{}/{query}", ids_ref[i % ids_ref.len()]);
        drive(addr, &token, 20, &path).await?;
        let (p50, p99) = drive(addr, &token, requests, &path).await?;
        println!("  {label}: p50 {:.2} ms, p99 {:.2} ms", ms(p50), ms(p99));
        rows.push((label, p50, p99));
    }

    println!();
    println!("Widget analytics: {CLIENTS} clients, {events} raw events, {sessions} sessions, {stats} daily stats rows ({size})");
    println!("{:<28} {:>10} {:>10}", "read endpoint", "p50 ms", "p99 ms");
    for (label, p50, p99) in &rows {
        println!("{:<28} {:>10.2} {:>10.2}", label, ms(*p50), ms(*p99));
    }
    if let Some((total, detail)) = nightly {
        println!(
            "nightly job {total:.1} s: rollup of {} ({yesterday} events) {} ms, retention {} ms: {}",
            detail["rollup"]["days"], detail["rollup"]["ms"], detail["retention_ms"], detail["retention"]
        );
    }
    Ok(())
}
