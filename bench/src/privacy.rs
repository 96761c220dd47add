//! `bench privacy`: the nightly data retention over `--millions` million
//! delivery attempts (half of them, and half of the resolved deliveries,
//! past their 30 days), and one erase of a person of a client holding
//! `--millions` million events, timed, with the sequential scans Postgres
//! counted on the big tables during the erase (it must use indexes).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use serde_json::{json, Value};

use crate::{machine, serve_app};

const CLIENT: &str = "00000000-0000-4000-8000-00000000e4a5";
const SECRET: &str = "bench-admin-secret";
/// Events per visitor (each visitor: one session per 10 events).
const EVENTS_PER_VISITOR: i64 = 100;

async fn seq_scans(client: &tokio_postgres::Client) -> Result<i64> {
    client
        .batch_execute("SELECT pg_stat_clear_snapshot()")
        .await?;
    let row = client
        .query_one(
            "SELECT coalesce(sum(seq_scan), 0)::int8 FROM pg_stat_user_tables
              WHERE relname LIKE 'session_events%' OR relname IN ('widget_sessions', 'leads', 'conversion_deliveries')",
            &[],
        )
        .await?;
    Ok(row.get(0))
}

pub async fn run(database_url: String, millions: i64) -> Result<()> {
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let rows = millions * 1_000_000;
    println!("machine: {}", machine());
    println!("preparing: migrating {database_url}; {rows} delivery attempts, {rows} events (takes a few minutes)");
    spin_local::migrate::migrate(&database_url, &root.join("migrations"), true).await?;
    let client = crate::pg(&database_url).await?;
    let started = Instant::now();
    // Deliveries: one per 10 attempts, resolved over the last 60 days.
    client
        .batch_execute(&format!(
            "TRUNCATE conversion_deliveries, delivery_attempts, leads, widget_sessions, session_events,
                      event_keys, analytics_visitors, privacy_requests CASCADE;
             DELETE FROM client_destinations WHERE client_id = '{CLIENT}';
             INSERT INTO clients (id, name, default_country) VALUES ('{CLIENT}', 'bench privacy', 'US')
                 ON CONFLICT DO NOTHING;
             INSERT INTO client_destinations (client_id, kind, config)
             VALUES ('{CLIENT}', 'meta_capi', '{{\"pixel_id\": \"P\", \"access_token\": \"T\"}}');
             INSERT INTO conversion_deliveries (client_id, destination_id, destination, event_id, event_name,
                                                event_time, event_payload, status, resolved_at)
             SELECT '{CLIENT}', d.id, 'meta_capi', 'e' || g, 'Lead', now(), '{{}}', 'resolved',
                    now() - (g % 60) * interval '1 day' - interval '1 hour'
               FROM client_destinations d, generate_series(1, {rows} / 10) g WHERE d.client_id = '{CLIENT}';
             INSERT INTO delivery_attempts (delivery_id, destination_id, destination, trigger, attempted_at, outcome)
             SELECT c.id, c.destination_id, 'meta_capi', 'cron', c.resolved_at - a * interval '1 minute', 'ok'
               FROM conversion_deliveries c, generate_series(1, 10) a;
             ANALYZE conversion_deliveries; ANALYZE delivery_attempts;"
        ))
        .await?;
    println!(
        "  deliveries seeded in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    // Events: visitors of EVENTS_PER_VISITOR events each, in sessions of 10
    // events a minute apart, sessions a day apart, over the last 90 days,
    // each visitor at their own time of day (as real traffic spreads).
    let visitors = rows / EVENTS_PER_VISITOR;
    let t = Instant::now();
    client
        .batch_execute(&format!(
            "SELECT ensure_session_events_partitions((now() - interval '100 days')::date, 5);
             INSERT INTO session_events (client_id, person_id, session_id, event_name, occurred_at, page_url)
             SELECT '{CLIENT}', 'v' || v, 'v' || v || '-' || (e / 10), 'widget_open',
                    now() - ((v * 7 + e / 10) % 90) * interval '1 day'
                          - ((v * 977) % 1430 + e % 10) * interval '1 minute',
                    'https://shop.example/'
               FROM generate_series(1, {visitors}) v, generate_series(0, {EVENTS_PER_VISITOR} - 1) e;
             INSERT INTO widget_sessions (client_id, session_id, person_id, first_seen_at, last_seen_at, event_count)
             SELECT client_id, session_id, person_id, min(occurred_at), max(occurred_at), count(*)
               FROM session_events WHERE client_id = '{CLIENT}' GROUP BY 1, 2, 3;
             INSERT INTO leads (client_id, event_id, anonymous_id, email)
             VALUES ('{CLIENT}', 'lead-1', 'v42', 'jane@example.com');
             ANALYZE session_events; ANALYZE widget_sessions; ANALYZE leads;"
        ))
        .await?;
    println!("  events seeded in {:.0} s", t.elapsed().as_secs_f64());

    let (app, addr) = serve_app(HashMap::from([
        ("database_url".to_string(), database_url.clone()),
        ("admin_jwt_secret".to_string(), SECRET.to_string()),
    ]))
    .await?;

    println!("retention: the nightly job (defaults: 30 days for resolved deliveries and attempts)");
    let t = Instant::now();
    app.run_cron("data-retention", chrono::Utc::now().timestamp() as u64)
        .await?
        .map_err(anyhow::Error::msg)?;
    let retention_s = t.elapsed().as_secs_f64();
    let detail: Value = client
        .query_one(
            "SELECT detail FROM job_runs WHERE job_name = 'data-retention' ORDER BY id DESC LIMIT 1",
            &[],
        )
        .await?
        .get(0);
    let left: i64 = client
        .query_one("SELECT count(*) FROM delivery_attempts", &[])
        .await?
        .get(0);
    println!(
        "  {retention_s:.1} s; deleted {}; {left} attempts left",
        detail["deleted"]
    );

    println!(
        "erase: one person (v42, 100 events, 10 sessions, a lead) of a client with {rows} events"
    );
    let scans_before = seq_scans(&client).await?;
    let bearer = format!(
        "Bearer {}",
        integration_tests::token(json!({ "sub": "bench", "role": "admin" }), SECRET)
    );
    let t = Instant::now();
    let res = integration_tests::http()
        .post(format!("http://{addr}/admin/privacy/erase"))
        .header("authorization", bearer)
        .json(&json!({ "client_id": CLIENT, "email": "jane@example.com" }))
        .timeout(Duration::from_secs(600))
        .send()
        .await?;
    let erase_ms = t.elapsed().as_secs_f64() * 1000.0;
    let status = res.status();
    let body: Value = res.json().await?;
    if !status.is_success() {
        bail!("erase answered {status}: {body}");
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let scans = seq_scans(&client).await? - scans_before;
    println!(
        "  {erase_ms:.0} ms; erased {}; sequential scans of the big tables during it: {scans}",
        body["erased"]
    );

    println!("==> summary");
    println!(
        "    retention over {rows} delivery attempts: {retention_s:.1} s ({} rows deleted)",
        detail["deleted"]
    );
    println!(
        "    erase on a client with {rows} events: {erase_ms:.0} ms, {scans} sequential scans"
    );
    Ok(())
}
