//! `bench retry-drain`: isolation in a delivery run. `--events` due Meta
//! events over `--fast` pixels (a local fake Meta answering in 50 ms) are
//! drained through "Retry All" (the cron's run) twice in the same process:
//! alone (the ceiling), then with one more destination, a webhook whose fake
//! answers after `--slow-ms`, holding `--slow-events` due conversions and
//! served first in every run (the worst case). Prints the fast destinations'
//! deliveries per second in both, and how long the slow one held each run.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use integration_tests::fake::{Fake, Reply};
use serde_json::{json, Value};

use crate::{machine, serve_app};

const CLIENT: &str = "00000000-0000-4000-8000-00000000d4a1";
/// The slow destination's id: the lowest, so each run serves it first.
const SLOW: &str = "00000000-0000-4000-8000-000000000001";
const SECRET: &str = "bench-admin-secret";

#[derive(clap::Args)]
pub struct Options {
    #[arg(
        long,
        default_value = "postgres://postgres@localhost:5432/tracking_bench?sslmode=disable"
    )]
    database_url: String,
    /// Due events over the fast destinations.
    #[arg(long, default_value_t = 10_000)]
    events: i64,
    /// Fast destinations (Meta pixels).
    #[arg(long, default_value_t = 9)]
    fast: i64,
    /// Due conversions of the slow destination.
    #[arg(long, default_value_t = 100)]
    slow_events: i64,
    /// How long the slow destination's fake takes to answer.
    #[arg(long, default_value_t = 5000)]
    slow_ms: u64,
}

/// One drain: until every fast event is delivered.
struct Drain {
    elapsed: Duration,
    delivered: i64,
    runs: usize,
    /// Per run, the wall time of the retry call.
    run_secs: Vec<f64>,
}

async fn prepare(db: &tokio_postgres::Client, o: &Options, slow_url: Option<&str>) -> Result<()> {
    let (events, fast) = (o.events, o.fast);
    db.batch_execute(&format!(
        "DELETE FROM delivery_attempts WHERE destination_id IN
             (SELECT id FROM client_destinations WHERE client_id = '{CLIENT}');
         DELETE FROM conversion_deliveries WHERE client_id = '{CLIENT}';
         DELETE FROM client_destinations WHERE client_id = '{CLIENT}';
         INSERT INTO clients (id, name) VALUES ('{CLIENT}', 'bench retry-drain') ON CONFLICT DO NOTHING;
         INSERT INTO client_destinations (client_id, kind, config)
         SELECT '{CLIENT}', 'meta_capi', jsonb_build_object('pixel_id', 'PX' || p, 'access_token', 'T')
           FROM generate_series(1, {fast}) p;
         INSERT INTO conversion_deliveries (client_id, destination_id, destination, event_id, event_name,
                                            event_time, event_payload, user_data, next_retry_at)
         SELECT '{CLIENT}', d.id, 'meta_capi', 'drain-' || d.id || '-' || g, 'Lead', now() - interval '1 hour',
                '{{\"action_source\": \"website\"}}', '{{\"em\": [\"973dfe463ec85785f5f95af5ba3906eedb2d931c24e69824a89ea65dba4e813b\"]}}',
                now() - interval '1 second'
           FROM client_destinations d, generate_series(1, {events} / {fast}) g
          WHERE d.client_id = '{CLIENT}';"
    ))
    .await?;
    if let Some(url) = slow_url {
        let slow_events = o.slow_events;
        db.batch_execute(&format!(
            "INSERT INTO client_destinations (id, client_id, kind, config)
             VALUES ('{SLOW}', '{CLIENT}', 'webhook', jsonb_build_object('url', '{url}/hook'));
             INSERT INTO conversion_deliveries (client_id, destination_id, destination, event_id, event_name,
                                                event_time, event_payload, user_data, next_retry_at)
             SELECT '{CLIENT}', '{SLOW}', 'webhook', 'slow-' || g, 'Lead', now() - interval '1 hour',
                    '{{}}', '{{}}', now() - interval '2 seconds'
               FROM generate_series(1, {slow_events}) g;"
        ))
        .await?;
    }
    db.batch_execute("ANALYZE conversion_deliveries").await?;
    Ok(())
}

async fn drain(
    db: &tokio_postgres::Client,
    addr: std::net::SocketAddr,
    bearer: &str,
    fast_events: i64,
) -> Result<Drain> {
    let started = Instant::now();
    let mut run_secs = Vec::new();
    let mut delivered = 0;
    for _ in 0..50 {
        let t = Instant::now();
        let res = integration_tests::http()
            .post(format!("http://{addr}/admin/failed-events/retry"))
            .header("authorization", bearer)
            .json(&json!({ "retry_all": true }))
            .send()
            .await?;
        let body: Value = res.json().await?;
        if body["success"] != true {
            bail!("retry failed: {body}");
        }
        run_secs.push(t.elapsed().as_secs_f64());
        delivered = db
            .query_one(
                "SELECT count(*) FROM conversion_deliveries
                  WHERE client_id = $1::text::uuid AND destination = 'meta_capi' AND status = 'resolved'",
                &[&CLIENT],
            )
            .await?
            .get(0);
        println!(
            "  run {}: {} processed, {} timed out, {delivered}/{fast_events} fast delivered, {:.1} s",
            run_secs.len(),
            body["processed"],
            body["timed_out_destinations"]
                .as_array()
                .map_or(0, Vec::len),
            started.elapsed().as_secs_f64()
        );
        if delivered >= fast_events || body["processed"] == 0 {
            break;
        }
    }
    Ok(Drain {
        elapsed: started.elapsed(),
        delivered,
        runs: run_secs.len(),
        run_secs,
    })
}

pub async fn run(o: Options) -> Result<()> {
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let fast_events = o.events / o.fast * o.fast;
    println!("machine: {}", machine());
    println!(
        "preparing: migrating {}; {fast_events} events over {} fast pixels, {} on a destination answering in {} ms",
        o.database_url, o.fast, o.slow_events, o.slow_ms
    );
    spin_local::migrate::migrate(&o.database_url, &root.join("migrations"), true).await?;
    let db = crate::pg(&o.database_url).await?;
    let meta = Fake::start(|r| {
        let n = r.json()["data"].as_array().map(|d| d.len()).unwrap_or(0);
        Reply::json(200, json!({ "events_received": n })).after(Duration::from_millis(50))
    })
    .await;
    let slow_ms = o.slow_ms;
    let slow =
        Fake::start(move |_| Reply::text(204, "").after(Duration::from_millis(slow_ms))).await;
    let (_, addr) = serve_app(HashMap::from([
        ("database_url".to_string(), o.database_url.clone()),
        ("meta_capi_base_url".to_string(), meta.url.clone()),
        (
            "destination_hosts".to_string(),
            "http://127.0.0.1:*".to_string(),
        ),
        ("admin_jwt_secret".to_string(), SECRET.to_string()),
    ]))
    .await?;
    let bearer = format!(
        "Bearer {}",
        integration_tests::token(json!({ "sub": "bench", "role": "admin" }), SECRET)
    );

    println!("ceiling: the fast destinations alone");
    prepare(&db, &o, None).await?;
    let alone = drain(&db, addr, &bearer, fast_events).await?;
    println!("with the slow destination (served first in every run)");
    prepare(&db, &o, Some(&slow.url)).await?;
    let mixed = drain(&db, addr, &bearer, fast_events).await?;
    let held: Vec<(i64, f64, f64)> = db
        .query(
            "SELECT count(*), coalesce(avg(latency_ms), 0)::float8, coalesce(max(latency_ms), 0)::float8
               FROM delivery_attempts WHERE destination_id = $1::text::uuid",
            &[&SLOW],
        )
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let (slow_attempts, slow_avg_ms, slow_max_ms) = held.first().copied().unwrap_or_default();
    let slow_resolved: i64 = db
        .query_one(
            "SELECT count(*) FROM conversion_deliveries WHERE destination_id = $1::text::uuid AND status = 'resolved'",
            &[&SLOW],
        )
        .await?
        .get(0);

    let rate = |d: &Drain| d.delivered as f64 / d.elapsed.as_secs_f64();
    println!();
    println!(
        "draining {fast_events} Meta events over {} pixels (fake: 50 ms), plus {} webhook conversions answering in {} ms",
        o.fast, o.slow_events, o.slow_ms
    );
    println!(
        "{:<40} {:>6} {:>10} {:>14} {:>16}",
        "", "runs", "seconds", "fast deliv./s", "of the ceiling"
    );
    for (name, d) in [
        ("ceiling: fast destinations alone", &alone),
        ("with the slow destination", &mixed),
    ] {
        println!(
            "{:<40} {:>6} {:>10.1} {:>14.0} {:>15.0}%",
            name,
            d.runs,
            d.elapsed.as_secs_f64(),
            rate(d),
            100.0 * rate(d) / rate(&alone)
        );
    }
    println!(
        "slow destination: {slow_attempts} attempts in {} runs (one per run), each held its run {:.0} ms on average (max {:.0} ms); {slow_resolved} of its conversions delivered, the rest left due",
        mixed.runs, slow_avg_ms, slow_max_ms
    );
    println!(
        "run wall times alone: {:?} s; with the slow one: {:?} s",
        alone
            .run_secs
            .iter()
            .map(|s| (s * 10.0).round() / 10.0)
            .collect::<Vec<_>>(),
        mixed
            .run_secs
            .iter()
            .map(|s| (s * 10.0).round() / 10.0)
            .collect::<Vec<_>>()
    );
    if alone.delivered < fast_events || mixed.delivered < fast_events {
        bail!("not everything was delivered");
    }
    Ok(())
}
