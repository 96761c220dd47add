//! `bench analytics`: widget analytics at scale.
//!
//! The data set is built in resumable phases (progress printed; a phase that
//! is complete is skipped, an interrupted one continues), recorded in a
//! `bench_meta` table of the benchmark database:
//!
//! 1. 10,000 clients in a mix of reporting time zones;
//! 2. `--millions` million raw events over the last 88 days (inside the
//!    90-day raw retention), in time order as ingest writes them, with the
//!    secondary indexes dropped during the load and rebuilt after it;
//! 3. their sessions;
//! 4. two years of synthetic daily stats before the raw window;
//! 5. the real rollups of the raw window, through the backfill endpoint,
//!    oldest day first (this also fills the visitor registry), up to the day
//!    before yesterday; the nightly job does the rest;
//! 6. the lists of every month and week part that has ended (the nightly
//!    job's fill, all at once).
//!
//! Every run then seeds a retention backlog (an expired partition with
//! `--expired-millions` million events and 1M sessions past the 365-day
//! period), fires the real `analytics-rollup` cron component once, times the
//! rollup of the busiest raw day through the backfill endpoint, empties the
//! caches (PostgreSQL restarted, the OS page cache dropped), measures what the
//! machine gives (a cold page read, a CPU reference), and drives each
//! read endpoint through the local host, one request at a time, on its own
//! clients: a cold pass, then the same requests again (warm).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tokio_postgres::Client;

use crate::{machine, ms, percentile};

const CLIENTS: i64 = 10_000;
const CHUNK: i64 = 1_000_000;
/// Raw events cover this many days before the data set's anchor: inside the
/// 90-day raw retention, so every raw event is live.
const RAW_DAYS: i64 = 88;
const STATS_DAYS: i64 = 730;
const SECRET: &str = "bench-admin-secret";

/// The reporting time zones of the bench clients (client i gets entry i mod n):
/// a third in the Americas, whose days end after the 02:00 UTC run.
const ZONES: &[&str] = &[
    "UTC",
    "Europe/London",
    "Europe/Paris",
    "Europe/Berlin",
    "America/New_York",
    "America/New_York",
    "America/Chicago",
    "America/Los_Angeles",
    "America/Sao_Paulo",
    "Asia/Tokyo",
    "Asia/Kolkata",
    "Australia/Sydney",
];

#[derive(clap::Args)]
pub struct Options {
    #[arg(
        long,
        default_value = "postgres://postgres@localhost:5432/tracking_analytics_bench?sslmode=disable"
    )]
    pub database_url: String,
    /// Raw events, in millions.
    #[arg(long, default_value_t = 50)]
    pub millions: i64,
    /// Events (millions) in the expired partition retention drops each run.
    #[arg(long, default_value_t = 1)]
    pub expired_millions: i64,
    /// Measured requests per endpoint (after 20 of warm-up).
    #[arg(long, default_value_t = 500)]
    pub requests: usize,
    /// Make (or complete) the data set, then stop.
    #[arg(long)]
    pub generate_only: bool,
    /// Only the read endpoints, on the data set as it is.
    #[arg(long)]
    pub reads_only: bool,
}

fn admin_token() -> Result<String> {
    let claims = serde_json::json!({ "sub": "bench", "role": "admin", "exp": 4_102_444_800i64 });
    Ok(jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )?)
}

async fn step(client: &Client, what: &str, sql: &str) -> Result<f64> {
    let t = Instant::now();
    client
        .batch_execute(sql)
        .await
        .with_context(|| what.to_string())?;
    let s = t.elapsed().as_secs_f64();
    println!("  {what}: {s:.1} s");
    Ok(s)
}

async fn meta(client: &Client, key: &str) -> Result<Option<String>> {
    Ok(client
        .query_opt("SELECT value FROM bench_meta WHERE key = $1", &[&key])
        .await?
        .map(|r| r.get(0)))
}

async fn set_meta(client: &Client, key: &str, value: &str) -> Result<()> {
    client
        .execute(
            "INSERT INTO bench_meta (key, value) VALUES ($1, $2)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            &[&key, &value],
        )
        .await?;
    Ok(())
}

/// Drops the secondary indexes of `table` for a bulk load, remembering their
/// definitions in bench_meta so that an interrupted load still rebuilds them.
async fn drop_indexes(client: &Client, table: &str) -> Result<()> {
    let key = format!("indexes:{table}");
    if meta(client, &key).await?.is_some() {
        return Ok(());
    }
    let defs: Vec<(String, String)> = client
        .query(
            "SELECT c.relname::text, pg_get_indexdef(i.indexrelid)
               FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
              WHERE i.indrelid = $1::text::regclass AND NOT i.indisprimary",
            &[&table],
        )
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let joined = defs
        .iter()
        .map(|(_, d)| d.clone())
        .collect::<Vec<_>>()
        .join(";\n");
    set_meta(client, &key, &joined).await?;
    for (name, _) in &defs {
        client
            .batch_execute(&format!("DROP INDEX IF EXISTS {name}"))
            .await?;
    }
    Ok(())
}

/// Rebuilds what [`drop_indexes`] dropped.
async fn rebuild_indexes(client: &Client, table: &str) -> Result<()> {
    let key = format!("indexes:{table}");
    let Some(defs) = meta(client, &key).await? else {
        return Ok(());
    };
    client
        .batch_execute("SET maintenance_work_mem = '1GB'")
        .await?;
    for def in defs.split(";\n").filter(|d| !d.trim().is_empty()) {
        // A partitioned table's definition says ON ONLY (the parent alone).
        let def = def
            .replacen("CREATE INDEX", "CREATE INDEX IF NOT EXISTS", 1)
            .replacen(" ON ONLY ", " ON ", 1);
        step(
            client,
            &format!("rebuilding {}", def.split(" ON ").next().unwrap_or(&def)),
            &def,
        )
        .await?;
    }
    client
        .execute("DELETE FROM bench_meta WHERE key = $1", &[&key])
        .await?;
    Ok(())
}

/// Phases 1–4 (5 needs the app: see [`roll_up_raw_window`]).
async fn generate(client: &Client, millions: i64) -> Result<()> {
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS bench_meta (key text PRIMARY KEY, value text NOT NULL)",
        )
        .await?;
    if let Some(m) = meta(client, "events_millions").await? {
        if m != millions.to_string() {
            bail!("this database holds a {m}M-event data set; pass --millions {m} or use another --database-url");
        }
    }
    // The end of the raw window, fixed when the data set is first made.
    let anchor = match meta(client, "anchor").await? {
        Some(a) => a,
        None => {
            let a: String = client
                .query_one("SELECT date_trunc('minute', now())::text", &[])
                .await?
                .get(0);
            set_meta(client, "anchor", &a).await?;
            set_meta(client, "events_millions", &millions.to_string()).await?;
            a
        }
    };
    println!("data set: {CLIENTS} clients, {millions}M events over the {RAW_DAYS} days before {anchor}, {STATS_DAYS} days of stats");

    // 1. Clients (their time zones are set before the stats: see 4).
    client
        .batch_execute(&format!(
            "INSERT INTO clients (id, name, root_domain)
             SELECT md5('bench-' || i)::uuid, 'bench-' || i, 'shop.example'
               FROM generate_series(1, {CLIENTS}) i
             ON CONFLICT (id) DO NOTHING"
        ))
        .await?;

    // 2. Raw events, chunk by chunk (each chunk one transaction with its count).
    let done: i64 = meta(client, "event_chunks")
        .await?
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(0);
    if done < millions {
        client
            .batch_execute(&format!(
                "SELECT ensure_session_events_partitions(('{anchor}'::timestamptz - interval '{RAW_DAYS} days')::date, 5)"
            ))
            .await?;
        drop_indexes(client, "session_events").await?;
        let started = Instant::now();
        for k in done..millions {
            let t = Instant::now();
            // Event ids follow the load order, so the primary key is appended
            // to (a random v4 id per event only slows the load down).
            client
                .batch_execute(&format!(
                    "BEGIN;
                     INSERT INTO session_events (event_id, client_id, person_id, session_id, event_name, occurred_at,
                                                 received_at, referrer_domain, utm_source, device_type, browser, os, is_bot)
                     SELECT lpad(to_hex(n), 32, '0')::uuid, cid, pid, pid || '-' || to_char(at, 'YYYYMMDD'), name, at,
                            at + interval '2 seconds', ref, utm, dev, br, os, bot
                       FROM (SELECT {k} * {CHUNK} + g AS n,
                                    md5('bench-' || (1 + (random() * ({CLIENTS} - 1))::int))::uuid AS cid,
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
                               FROM (SELECT g, '{anchor}'::timestamptz - interval '{RAW_DAYS} days'
                                            + ({k} + g::float8 / {CHUNK}) / {millions} * interval '{RAW_DAYS} days' AS ts
                                       FROM generate_series(0, {CHUNK} - 1) g) s) e;
                     UPDATE bench_meta SET value = '{next}' WHERE key = 'event_chunks';
                     INSERT INTO bench_meta VALUES ('event_chunks', '{next}') ON CONFLICT DO NOTHING;
                     COMMIT;",
                    next = k + 1
                ))
                .await?;
            let left = millions - k - 1;
            let per = started.elapsed().as_secs_f64() / (k - done + 1) as f64;
            println!(
                "  events: {}M of {millions}M ({:.1} s; about {:.0} min left)",
                k + 1,
                t.elapsed().as_secs_f64(),
                per * left as f64 / 60.0
            );
        }
    }
    rebuild_indexes(client, "session_events").await?;

    // 3. Sessions of those events.
    if meta(client, "sessions").await?.is_none() {
        drop_indexes(client, "widget_sessions").await?;
        step(
            client,
            "sessions from the events",
            "BEGIN;
             INSERT INTO widget_sessions (client_id, session_id, person_id, first_seen_at, last_seen_at, event_count,
                                          referrer_domain, utm_source, device_type, browser, os, is_bot,
                                          chat_started, form_submitted)
             SELECT client_id, session_id, min(person_id), min(occurred_at), max(occurred_at), count(*),
                    min(referrer_domain), min(utm_source), min(device_type), min(browser), min(os), bool_or(is_bot),
                    bool_or(event_name = 'chat_started'), bool_or(event_name = 'client_form_submitted')
               FROM session_events GROUP BY client_id, session_id
             ON CONFLICT DO NOTHING;
             INSERT INTO bench_meta VALUES ('sessions', 'done');
             COMMIT;",
        )
        .await?;
    }
    rebuild_indexes(client, "widget_sessions").await?;

    // 4. The clients' reporting time zones, then synthetic daily stats for
    //    the two years before the raw window, each day marked rolled up in
    //    every zone.
    let zones = ZONES
        .iter()
        .map(|z| format!("'{z}'"))
        .collect::<Vec<_>>()
        .join(",");
    client
        .batch_execute(&format!(
            "UPDATE clients SET time_zone = (ARRAY[{zones}])[1 + substr(name, 7)::int % {n}]
              WHERE name LIKE 'bench-%'",
            n = ZONES.len()
        ))
        .await
        .context("setting the clients' time zones")?;
    if meta(client, "stats").await?.is_none() {
        step(
            client,
            "daily stats before the raw window (10,000 clients x 2 years)",
            &format!(
                "BEGIN;
                 INSERT INTO widget_daily_stats
                 SELECT c.id, d::date, s, v, v / 3, v - v / 3, s * 4, s * 2, s / 2, s / 4, s / 2, s / 8,
                        s / 4, s * 95.0, 1, 1, 5,
                        jsonb_build_object('widget_impression', s * 2, 'widget_open', s / 2, 'chat_started', s / 4,
                                           'message_sent', s / 2, 'client_form_submitted', s / 8, 'pricing_viewed', s / 3),
                        jsonb_build_object('(direct)', s / 2, 'google.com', s / 4, 'bing.com', s / 8, 'facebook.com', s / 8),
                        jsonb_build_object('(none)', s / 2, 'google', s / 4, 'newsletter', s / 4),
                        jsonb_build_object('desktop', s / 2, 'mobile', s / 3, 'tablet', s - s / 2 - s / 3),
                        jsonb_build_object('Chrome', s / 2, 'Safari', s / 4, 'Firefox', s / 8, 'Edge', s / 8),
                        jsonb_build_object('Windows', s / 2, 'macOS', s / 4, 'iOS', s / 8, 'Android', s / 8),
                        c.time_zone,
                        -- The day's v visitors, from a pool that drifts by day (visitors return).
                        (SELECT hll_add_agg(hll_hash_text(c.id::text || ':' || ((d::date - '2000-01-01'::date) / 7 + g)), 13)
                           FROM generate_series(1, v) g),
                        hll_add(hll_empty(13), hll_hash_text(c.id::text || ':bot'))
                   FROM generate_series(('{anchor}'::timestamptz - interval '{STATS_DAYS} days')::date,
                                        ('{anchor}'::timestamptz - interval '{RAW_DAYS} days')::date - 1,
                                        interval '1 day') d,
                        clients c,
                        LATERAL (SELECT 5 + (hashtext(c.id::text || d::text) & 63) AS s,
                                        3 + (hashtext(d::text || c.id::text) & 31) AS v) x
                  WHERE c.name LIKE 'bench-%'
                  ORDER BY d, c.id;
                 INSERT INTO analytics_rollup_days (time_zone, day, rolled_up_at, clients)
                 SELECT z.time_zone, d::date, now(), z.n
                   FROM (SELECT time_zone, count(*) AS n FROM clients GROUP BY time_zone) z,
                        generate_series(('{anchor}'::timestamptz - interval '{STATS_DAYS} days')::date,
                                        ('{anchor}'::timestamptz - interval '{RAW_DAYS} days')::date - 1,
                                        interval '1 day') d
                 ON CONFLICT DO NOTHING;
                 INSERT INTO bench_meta VALUES ('stats', 'done');
                 COMMIT;"
            ),
        )
        .await?;
    }
    Ok(())
}

/// POST /admin/analytics/rollup for one day; returns the component's report.
async fn backfill(addr: std::net::SocketAddr, token: &str, day: &str) -> Result<serde_json::Value> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let req = http::Request::post("/admin/analytics/rollup")
        .header("host", "127.0.0.1")
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(
            serde_json::json!({ "from": day, "to": day }).to_string(),
        )))?;
    let res = sender.send_request(req).await?;
    let status = res.status();
    let body = res.into_body().collect().await?.to_bytes();
    if status != 200 {
        bail!(
            "backfill of {day} answered {status}: {}",
            String::from_utf8_lossy(&body)
        );
    }
    Ok(serde_json::from_slice(&body)?)
}

/// Phase 5: the real rollups of the raw window, day by day through the
/// backfill endpoint, up to the day before yesterday (ended in every zone);
/// the nightly job does the rest. Resumable: `rolled_through` in bench_meta.
async fn roll_up_raw_window(
    client: &Client,
    addr: std::net::SocketAddr,
    token: &str,
) -> Result<()> {
    let days: Vec<String> = client
        .query(
            &format!(
                // The backfill takes days within the 90-day raw retention.
                "SELECT to_char(d, 'YYYY-MM-DD')
                   FROM generate_series(
                          greatest((SELECT value::timestamptz FROM bench_meta WHERE key = 'anchor') - interval '{RAW_DAYS} days',
                                   current_date - 89,
                                   coalesce((SELECT value::date + 1 FROM bench_meta WHERE key = 'rolled_through'), '-infinity')),
                          current_date - 2, interval '1 day') d"
            ),
            &[],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    if days.is_empty() {
        return Ok(());
    }
    println!(
        "rolling up the raw window through the backfill endpoint: {} days",
        days.len()
    );
    let started = Instant::now();
    for (i, day) in days.iter().enumerate() {
        let t = Instant::now();
        let report = backfill(addr, token, day).await?;
        set_meta(client, "rolled_through", day).await?;
        let per = started.elapsed().as_secs_f64() / (i + 1) as f64;
        println!(
            "  {day}: {:.1} s, {} stats rows ({} of {}; about {:.0} min left)",
            t.elapsed().as_secs_f64(),
            report["rollup"]["stats_rows"],
            i + 1,
            days.len(),
            per * (days.len() - i - 1) as f64 / 60.0
        );
    }
    Ok(())
}

/// Phase 6: the lists of every month and week part that has ended
/// (migrations/V32), in the nightly job's batches but all at once: what the
/// first nights after the migration do. Resumable: only periods without
/// lists are filled.
async fn fill_period_lists(client: &Client) -> Result<()> {
    const BATCH: i32 = 10_000;
    let started = Instant::now();
    let mut filled = 0i64;
    loop {
        let n: i32 = client
            .query_one(
                "SELECT analytics_fill_period_lists(current_date - 1, $1)",
                &[&BATCH],
            )
            .await
            .context("filling the period lists")?
            .get(0);
        filled += i64::from(n);
        if n < BATCH {
            break;
        }
        println!(
            "  period lists: {filled} filled ({:.0} s)",
            started.elapsed().as_secs_f64()
        );
    }
    if filled > 0 {
        println!(
            "  period lists: {filled} filled in {:.1} s",
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

/// What the nightly job's retention finds each run: an expired partition
/// (five months back) with `expired_millions` million events whose days are
/// rolled up, and 1M sessions past the 365-day period.
async fn seed_retention_backlog(client: &Client, expired_millions: i64) -> Result<()> {
    step(
        client,
        "retention backlog: 1M sessions past 365 days",
        &format!(
            "INSERT INTO widget_sessions (client_id, session_id, person_id, first_seen_at, last_seen_at, event_count, device_type)
             SELECT md5('bench-' || (1 + g % {CLIENTS}))::uuid, 'old-' || g, 'old', t, t, 3, 'desktop'
               FROM (SELECT g, now() - interval '400 days' - (g % 30) * interval '1 day' AS t
                       FROM generate_series(1, 1000000) g) x
             ON CONFLICT DO NOTHING"
        ),
    )
    .await?;
    let month = "date_trunc('month', now() - interval '150 days')";
    step(
        client,
        &format!("retention backlog: an expired partition with {expired_millions}M events"),
        &format!(
            "SELECT ensure_session_events_partitions({month}::date, 1);
             INSERT INTO session_events (client_id, person_id, session_id, event_name, occurred_at, received_at, device_type)
             SELECT md5('bench-' || (1 + g % {CLIENTS}))::uuid, 'old', 'old', 'widget_impression', at,
                    at + interval '2 seconds', 'desktop'
               FROM (SELECT g, {month} + (g % (27 * 86400)) * interval '1 second' AS at
                       FROM generate_series(1, {expired_millions} * {CHUNK}) g) x
              WHERE NOT EXISTS (SELECT 1 FROM session_events
                                 WHERE occurred_at >= {month} AND occurred_at < {month} + interval '1 month');
             INSERT INTO analytics_rollup_days (time_zone, day, rolled_up_at, clients)
             SELECT z.time_zone, d::date, now(), 0
               FROM (SELECT DISTINCT time_zone FROM clients) z,
                    generate_series({month} - interval '1 day', {month} + interval '1 month', interval '1 day') d
             ON CONFLICT DO NOTHING"
        ),
    )
    .await?;
    Ok(())
}

/// Empties the caches between the data and the reads: PostgreSQL's shared
/// buffers (a restart of the local Debian cluster, `pg_ctlcluster`) and the
/// OS page cache (`/proc/sys/vm/drop_caches`, root only). Says what it did;
/// what it could not do is reported, not fatal.
async fn evict_caches(database_url: &str) -> String {
    let mut done = Vec::new();
    let version = match crate::pg(database_url).await {
        Ok(c) => c
            .query_one(
                "SELECT current_setting('server_version_num')::int / 10000",
                &[],
            )
            .await
            .map(|r| r.get::<_, i32>(0).to_string())
            .unwrap_or_default(),
        Err(_) => String::new(),
    };
    let restart = std::process::Command::new("pg_ctlcluster")
        .args([
            "--skip-systemctl-redirect",
            &version,
            "main",
            "restart",
            "-m",
            "fast",
        ])
        .output();
    match restart {
        Ok(out) if out.status.success() => done.push("PostgreSQL restarted".to_string()),
        Ok(out) => done.push(format!(
            "PostgreSQL not restarted ({})",
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Err(e) => done.push(format!("PostgreSQL not restarted ({e})")),
    }
    let _ = std::process::Command::new("sync").status();
    match std::fs::write("/proc/sys/vm/drop_caches", "3") {
        Ok(()) => done.push("OS page cache dropped".to_string()),
        Err(e) => done.push(format!("OS page cache kept ({e})")),
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while crate::pg(database_url).await.is_err() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    done.join(", ")
}

/// What this machine gives the cold and the warm pass, measured right after
/// the caches are emptied so that runs on different machines can be told
/// apart: one cold 8 KB page read through PostgreSQL (400 random blocks of
/// the oldest raw-event partition, which no read endpoint touches: a cold
/// request costs about its pages read times this), and a CPU reference (a
/// PL/pgSQL loop of 5 M additions, best of three).
async fn machine_probe(client: &Client) -> Result<String> {
    let part: Option<(String, i32)> = client
        .query_opt(
            "SELECT c.oid::regclass::text, c.relpages FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
              WHERE i.inhparent = 'session_events'::regclass AND c.relpages > 1000
              ORDER BY c.relname LIMIT 1",
            &[],
        )
        .await?
        .map(|r| (r.get(0), r.get(1)));
    let Some((part, pages)) = part else {
        return Ok("no raw-event partition to probe".into());
    };
    client.batch_execute("SET track_io_timing = on").await?;
    // EXPLAIN's JSON comes as json.
    let plan: serde_json::Value = client
        .query_one(
            &format!(
                "EXPLAIN (ANALYZE, BUFFERS, TIMING OFF, FORMAT JSON)
                 SELECT count(*) FROM {part}
                  WHERE ctid = ANY (ARRAY(SELECT format('(%s,1)', (random() * ({pages} - 1))::int)::tid
                                            FROM generate_series(1, 400)))"
            ),
            &[],
        )
        .await?
        .get(0);
    let (read_ms, blocks) = (
        plan[0]["Plan"]["I/O Read Time"].as_f64().unwrap_or(0.0),
        plan[0]["Plan"]["Shared Read Blocks"]
            .as_f64()
            .unwrap_or(0.0),
    );
    let mut cpu = Duration::MAX;
    for _ in 0..3 {
        let t = Instant::now();
        client
            .batch_execute("DO $$ DECLARE s int8 := 0; BEGIN FOR i IN 1..5000000 LOOP s := s + i; END LOOP; END $$")
            .await?;
        cpu = cpu.min(t.elapsed());
    }
    let page = if blocks > 0.0 {
        format!(
            "a cold page read {:.3} ms ({blocks} random blocks of {part})",
            read_ms / blocks
        )
    } else {
        format!("no page of {part} read from disk (caches not emptied?)")
    };
    Ok(format!(
        "{page}, CPU reference {:.0} ms (5 M PL/pgSQL additions)",
        ms(cpu)
    ))
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

pub async fn run(o: Options) -> Result<()> {
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    println!("machine: {}", machine());
    spin_local::migrate::migrate(&o.database_url, &root.join("migrations"), true).await?;
    let client = crate::pg(&o.database_url).await?;
    if !o.reads_only {
        generate(&client, o.millions).await?;
    }

    let (app, addr) = crate::serve_app(HashMap::from([
        ("database_url".to_string(), o.database_url.clone()),
        ("admin_jwt_secret".to_string(), SECRET.to_string()),
    ]))
    .await?;
    let token = admin_token()?;

    if !o.reads_only {
        roll_up_raw_window(&client, addr, &token).await?;
        fill_period_lists(&client).await?;
        step(&client, "VACUUM ANALYZE", "VACUUM (ANALYZE)").await?;
    }
    if o.generate_only {
        return Ok(());
    }

    let counts = client
        .query_one(
            "SELECT (SELECT count(*) FROM session_events), (SELECT count(*) FROM widget_sessions),
                    (SELECT count(*) FROM widget_daily_stats), (SELECT count(*) FROM analytics_visitors),
                    pg_size_pretty(pg_database_size(current_database()))",
            &[],
        )
        .await?;
    let (events, sessions, stats, visitors, size): (i64, i64, i64, i64, String) = (
        counts.get(0),
        counts.get(1),
        counts.get(2),
        counts.get(3),
        counts.get(4),
    );
    println!("data: {events} events, {sessions} sessions, {stats} daily stats rows, {visitors} registry visitors, database {size}");

    let mut nightly = None;
    let mut one_day = None;
    if !o.reads_only {
        seed_retention_backlog(&client, o.expired_millions).await?;
        // The seeding wrote ~1 GB: flush it now rather than inside the job.
        step(&client, "CHECKPOINT", "CHECKPOINT").await?;
        // As if the previous night's run had been 24 hours ago: this run
        // rolls up the local days that ended since, one per zone.
        client
            .batch_execute(
                "UPDATE analytics_rollup_state SET received_until = now() - interval '24 hours'",
            )
            .await?;
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

        // One full day rolled up again: the busiest day the backfill may touch.
        let (day, day_events): (String, i64) = {
            let r = client
                .query_one(
                    "SELECT to_char(d, 'YYYY-MM-DD'),
                            (SELECT count(*) FROM session_events
                              WHERE occurred_at >= d AND occurred_at < d + interval '1 day')
                       FROM (SELECT (current_date - 3)::timestamptz AS d) x",
                    &[],
                )
                .await?;
            (r.get(0), r.get(1))
        };
        println!("rollup of one day ({day}, {day_events} events in the UTC day) through the backfill endpoint ...");
        let t = Instant::now();
        let report = backfill(addr, &token, &day).await?;
        let s = t.elapsed().as_secs_f64();
        println!("  {s:.1} s: {report}");
        one_day = Some((day, day_events, s, report));
    }

    // Each endpoint reads its own clients (shuffled), so the cold pass is
    // the first read of every client's rows since the caches were emptied.
    let ids: Vec<String> = client
        .query(
            &format!("SELECT md5('bench-' || g)::uuid::text FROM generate_series(1, {CLIENTS}) g ORDER BY random()"),
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
        ("events (365 d)", format!("events?from={from_365}")),
        ("traffic-sources (30 d)", "traffic-sources".into()),
        (
            "traffic-sources (365 d)",
            format!("traffic-sources?from={from_365}"),
        ),
        ("devices (30 d)", "devices".into()),
        ("devices (365 d)", format!("devices?from={from_365}")),
        ("active", "active".into()),
        ("sessions (30 d, page 1)", "sessions?limit=50".into()),
        (
            "sessions (device filter)",
            "sessions?limit=50&device=mobile".into(),
        ),
    ];
    if endpoints.len() * o.requests + endpoints.len() > ids.len() {
        println!("note: more requests than clients: some cold requests read a client read before");
    }
    let evicted = evict_caches(&o.database_url).await;
    println!("caches: {evicted}");
    // A new connection: the restart ended the old one. Best effort:
    // `track_io_timing` needs a superuser.
    let probe = match machine_probe(&crate::pg(&o.database_url).await?).await {
        Ok(p) => p,
        Err(e) => format!("not measured ({e})"),
    };
    println!("this machine: {probe}");
    let mut rows = Vec::new();
    for pass in ["cold", "warm"] {
        println!(
            "read endpoints, {pass} pass: {} requests each, each endpoint its own clients ...",
            o.requests
        );
        for (j, (label, query)) in endpoints.iter().enumerate() {
            let ids_ref = &ids;
            let path = |i: usize| {
                format!(
                    "/admin/analytics/{}/{query}",
                    ids_ref[(j * o.requests + i) % ids_ref.len()]
                )
            };
            // One request on a client outside every measured set: the
            // component and the connection, not the data.
            let spare = format!(
                "/admin/analytics/{}/{query}",
                ids_ref[ids_ref.len() - 1 - j]
            );
            drive(addr, &token, 1, |_| spare.clone()).await?;
            let (p50, p99) = drive(addr, &token, o.requests, &path).await?;
            println!("  {label}: p50 {:.2} ms, p99 {:.2} ms", ms(p50), ms(p99));
            rows.push((pass, *label, p50, p99));
        }
    }

    println!();
    println!("Widget analytics: {CLIENTS} clients, {events} raw events, {sessions} sessions, {stats} daily stats rows ({size})");
    println!("caches before the cold pass: {evicted}");
    println!("this machine: {probe}");
    println!(
        "{:<28} {:>10} {:>10} {:>10} {:>10}",
        "read endpoint", "cold p50", "cold p99", "warm p50", "warm p99"
    );
    for (label, _) in &endpoints {
        let of = |pass: &str| {
            rows.iter()
                .find(|r| r.0 == pass && r.1 == *label)
                .map_or((0.0, 0.0), |r| (ms(r.2), ms(r.3)))
        };
        let ((c50, c99), (w50, w99)) = (of("cold"), of("warm"));
        println!("{label:<28} {c50:>10.2} {c99:>10.2} {w50:>10.2} {w99:>10.2}");
    }
    if let Some((total, d)) = nightly {
        println!(
            "nightly job {total:.1} s: rollup of {} in {} ms; retention {} ms: {} partitions dropped ({} events), {} sessions, {} visitors deleted; {} period lists filled in {} ms",
            d["rollup"]["days"],
            d["rollup"]["ms"],
            d["retention_ms"],
            d["retention"]["partitions_dropped"].as_array().map_or(0, |a| a.len()),
            d["retention"]["events_dropped"],
            d["retention"]["sessions_deleted"],
            d["retention"]["visitors_deleted"],
            d["period_lists"]["filled"],
            d["period_lists"]["ms"],
        );
    }
    if let Some((day, n, s, report)) = one_day {
        println!(
            "rollup of {day} ({n} events, {} stats rows): {s:.1} s",
            report["rollup"]["stats_rows"]
        );
    }
    Ok(())
}
