//! `bench retry`: draining a backlog of pending Meta events through the
//! backoffice's "Retry All" (the same run as the cron) against a local fake
//! Meta answering in 50 ms; deliveries per second and HTTP requests made,
//! against the seed's loop of one request per event.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use integration_tests::fake::{Fake, Reply};
use serde_json::{json, Value};

use crate::{machine, serve_app};

const CLIENT: &str = "00000000-0000-4000-8000-0000000e7e7e";
const SECRET: &str = "bench-admin-secret";
const PIXELS: i64 = 10;

pub async fn run(database_url: String, events: i64) -> Result<()> {
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    println!("machine: {}", machine());
    println!("preparing: migrating {database_url}, queueing {events} events over {PIXELS} pixels");
    spin_local::migrate::migrate(&database_url, &root.join("migrations"), true).await?;
    let client = crate::pg(&database_url).await?;
    client
        .batch_execute(&format!(
            "DELETE FROM conversion_deliveries WHERE client_id = '{CLIENT}';
             DELETE FROM client_destinations WHERE client_id = '{CLIENT}';
             INSERT INTO clients (id, name) VALUES ('{CLIENT}', 'bench retry') ON CONFLICT DO NOTHING;
             INSERT INTO client_destinations (client_id, kind, config)
             SELECT '{CLIENT}', 'meta_capi', jsonb_build_object('pixel_id', 'PX' || p, 'access_token', 'T')
               FROM generate_series(1, {PIXELS}) p;
             INSERT INTO conversion_deliveries (client_id, destination_id, destination, event_id, event_name,
                                                event_time, event_payload, user_data, next_retry_at)
             SELECT '{CLIENT}', d.id, 'meta_capi', 'bench-' || d.id || '-' || g, 'Lead', now() - interval '1 hour',
                    '{{\"action_source\": \"website\"}}', '{{\"em\": [\"973dfe463ec85785f5f95af5ba3906eedb2d931c24e69824a89ea65dba4e813b\"]}}',
                    now() - interval '1 second'
               FROM client_destinations d, generate_series(1, {events} / {PIXELS}) g
              WHERE d.client_id = '{CLIENT}';"
        ))
        .await?;
    let meta = Fake::start(|r| {
        let n = r.json()["data"].as_array().map(|d| d.len()).unwrap_or(0);
        Reply::json(200, json!({ "events_received": n })).after(Duration::from_millis(50))
    })
    .await;
    let (_, addr) = serve_app(HashMap::from([
        ("database_url".to_string(), database_url.clone()),
        ("meta_capi_base_url".to_string(), meta.url.clone()),
        ("admin_jwt_secret".to_string(), SECRET.to_string()),
    ]))
    .await?;
    let bearer = format!(
        "Bearer {}",
        integration_tests::token(json!({ "sub": "bench", "role": "admin" }), SECRET)
    );
    let started = Instant::now();
    let mut delivered = 0i64;
    let mut calls = 0;
    loop {
        let res = integration_tests::http()
            .post(format!("http://{addr}/admin/failed-events/retry"))
            .header("authorization", &bearer)
            .json(&json!({ "retry_all": true }))
            .send()
            .await?;
        let body: Value = res.json().await?;
        calls += 1;
        let processed = body["processed"].as_i64().unwrap_or(0);
        if body["success"] != true {
            bail!("retry failed: {body}");
        }
        delivered += body["resolved"].as_i64().unwrap_or(0);
        println!(
            "  run {calls}: {processed} processed, {delivered}/{events} delivered, {:.1} s",
            started.elapsed().as_secs_f64()
        );
        if processed == 0 {
            break;
        }
    }
    let elapsed = started.elapsed();
    let pending: i64 = client
        .query_one(
            "SELECT count(*) FROM conversion_deliveries WHERE client_id = $1::text::uuid AND status <> 'resolved'",
            &[&CLIENT],
        )
        .await?
        .get(0);
    let seed_secs = events as f64 * 0.050;
    println!();
    println!(
        "draining {events} pending Meta events ({PIXELS} pixels), fake Meta answering in 50 ms"
    );
    println!(
        "{:<34} {:>10} {:>12} {:>14}",
        "", "requests", "seconds", "deliveries/s"
    );
    println!(
        "{:<34} {:>10} {:>12.1} {:>14.0}",
        "batched per pixel (this run)",
        meta.count(),
        elapsed.as_secs_f64(),
        delivered as f64 / elapsed.as_secs_f64()
    );
    println!(
        "{:<34} {:>10} {:>12.1} {:>14.0}",
        "seed: one request per event (≥)",
        events,
        seed_secs,
        events as f64 / seed_secs
    );
    println!("retry calls: {calls}; left undelivered: {pending}");
    Ok(())
}
