//! `bench alerts`: check-tracking-health with 10 million delivery attempts
//! and 1 million outbox rows in the tables (30 days of history): the check's
//! duration (goal: under 1 s — only indexes, no history scans) and the
//! summary endpoint's p50/p99.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use serde_json::{json, Value};

use crate::{machine, ms, percentile, serve_app};

const SECRET: &str = "bench-admin-secret";

pub async fn run(database_url: String, millions: i64, requests: usize) -> Result<()> {
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    println!("machine: {}", machine());
    println!("preparing: migrating {database_url}");
    spin_local::migrate::migrate(&database_url, &root.join("migrations"), true).await?;
    let client = crate::pg(&database_url).await?;
    let have: i64 = client
        .query_one("SELECT count(*) FROM delivery_attempts", &[])
        .await?
        .get(0);
    let target = millions * 1_000_000;
    if have < target {
        let started = Instant::now();
        println!("generating 1,000 clients, 2,000 destinations, 1M outbox rows over 30 days ...");
        client
            .batch_execute(
                "TRUNCATE delivery_attempts, alert_notifications, tracking_health_alerts, tracking_health_checks;
                 DELETE FROM conversion_deliveries; DELETE FROM client_destinations
                  WHERE client_id IN (SELECT id FROM clients WHERE name LIKE 'alerts-bench-%');
                 DELETE FROM clients WHERE name LIKE 'alerts-bench-%';
                 INSERT INTO clients (id, name)
                 SELECT gen_random_uuid(), 'alerts-bench-' || g FROM generate_series(1, 1000) g;
                 INSERT INTO client_destinations (client_id, kind, config)
                 SELECT c.id, k, '{}' FROM clients c, unnest(ARRAY['meta_capi', 'google_ec']) k
                  WHERE c.name LIKE 'alerts-bench-%';
                 CREATE TEMP TABLE d AS SELECT id, client_id, kind, row_number() OVER () AS n FROM client_destinations;
                 INSERT INTO conversion_deliveries (client_id, destination_id, destination, event_id, event_name,
                        event_time, event_payload, user_data, status, created_at, updated_at)
                 SELECT d.client_id, d.id, d.kind, 'b-' || g, 'Lead', t, '{}',
                        CASE WHEN g % 3 = 0 THEN '{\"em\":[1],\"ph\":[1],\"fbc\":\"c\"}'::jsonb
                             ELSE '{\"em\":[1],\"ph\":[1],\"external_id\":[1],\"client_ip_address\":\"i\",\"client_user_agent\":\"u\",\"fbp\":\"p\"}'::jsonb END,
                        CASE WHEN g % 5000 = 0 THEN 'pending' WHEN g % 7919 = 0 THEN 'dead_letter' ELSE 'resolved' END,
                        t, t
                   FROM generate_series(1, 1000000) g
                   JOIN d ON d.n = 1 + g % 2000
                  CROSS JOIN LATERAL (SELECT now() - (g % 2592000) * interval '1 second') ts(t);",
            )
            .await?;
        println!(
            "  outbox done in {:.0} s; attempts: {millions}M over 30 days, in 1M chunks",
            started.elapsed().as_secs_f64()
        );
        let (lo, hi): (i64, i64) = {
            let r = client
                .query_one("SELECT min(id), max(id) FROM conversion_deliveries", &[])
                .await?;
            (r.get(0), r.get(1))
        };
        for chunk in 0..millions {
            let t = Instant::now();
            client
                .execute(
                    "INSERT INTO delivery_attempts (delivery_id, destination_id, destination, trigger, attempted_at,
                                                    outcome, http_status, latency_ms)
                     SELECT c.id, c.destination_id, c.destination, 'cron',
                            now() - ((g * 7919) % 2592000) * interval '1 second',
                            CASE WHEN g % 50 = 0 THEN 'retry' ELSE 'resolved' END,
                            CASE WHEN g % 50 = 0 THEN 503 ELSE 200 END, 30 + (g % 400)
                       FROM generate_series($1::int8, $1::int8 + 999999) g
                       JOIN conversion_deliveries c ON c.id = $2::int8 + g % ($3::int8 - $2::int8 + 1)",
                    &[&(chunk * 1_000_000), &lo, &hi],
                )
                .await?;
            println!(
                "  attempts {}M/{millions}M ({:.0} s)",
                chunk + 1,
                t.elapsed().as_secs_f64()
            );
        }
        client.batch_execute("ANALYZE conversion_deliveries; ANALYZE delivery_attempts; ANALYZE client_destinations;").await?;
        println!("generated in {:.0} s", started.elapsed().as_secs_f64());
    } else {
        println!("reusing {have} delivery attempts");
    }
    let counts = client
        .query_one("SELECT (SELECT count(*) FROM delivery_attempts), (SELECT count(*) FROM conversion_deliveries)", &[])
        .await?;
    let (attempts, outbox): (i64, i64) = (counts.get(0), counts.get(1));

    let (_, addr) = serve_app(HashMap::from([
        ("database_url".to_string(), database_url.clone()),
        ("admin_jwt_secret".to_string(), SECRET.to_string()),
    ]))
    .await?;
    let bearer = format!(
        "Bearer {}",
        integration_tests::token(json!({ "sub": "bench", "role": "admin" }), SECRET)
    );
    let http = integration_tests::http();

    println!("check: 1 warm-up + 10 measured runs of POST /admin/tracking-health/check ...");
    let mut checks = Vec::new();
    for i in 0..11 {
        let t = Instant::now();
        let res = http
            .post(format!("http://{addr}/admin/tracking-health/check"))
            .header("authorization", &bearer)
            .send()
            .await?;
        let status = res.status().as_u16();
        let body: Value = res.json().await?;
        if status != 200 {
            bail!("check answered {status}: {body}");
        }
        if i > 0 {
            checks.push(t.elapsed());
        }
    }
    checks.sort();
    println!("summary: 20 warm-up + {requests} measured GET /admin/tracking-health/summary ...");
    let mut summaries = Vec::new();
    for i in 0..requests + 20 {
        let t = Instant::now();
        let res = http
            .get(format!("http://{addr}/admin/tracking-health/summary"))
            .header("authorization", &bearer)
            .send()
            .await?;
        if res.status().as_u16() != 200 {
            bail!("summary answered {}", res.status());
        }
        res.bytes().await?;
        if i >= 20 {
            summaries.push(t.elapsed());
        }
    }
    summaries.sort();
    let explain: Vec<String> = client
        .query(
            "EXPLAIN (ANALYZE, BUFFERS OFF, TIMING OFF, SUMMARY ON)
             SELECT * FROM tracking_health_metrics(7, 4, 20, 10, 0.05, 20, 30, 20, now() - interval '15 minutes')",
            &[],
        )
        .await?
        .iter()
        .map(|r| r.get::<_, String>(0))
        .filter(|l| l.contains("Execution Time"))
        .collect();

    println!();
    println!("check-tracking-health with {attempts} delivery attempts and {outbox} outbox rows (30 days)");
    println!(
        "{:<40} {:>10} {:>10} {:>10}",
        "", "p50 ms", "p99 ms", "max ms"
    );
    println!(
        "{:<40} {:>10.1} {:>10.1} {:>10.1}",
        "POST /admin/tracking-health/check (10)",
        ms(percentile(&checks, 0.5)),
        ms(percentile(&checks, 0.99)),
        ms(*checks.last().unwrap_or(&Duration::ZERO))
    );
    println!(
        "{:<40} {:>10.1} {:>10.1} {:>10.1}",
        format!("GET /admin/tracking-health/summary ({requests})"),
        ms(percentile(&summaries, 0.5)),
        ms(percentile(&summaries, 0.99)),
        ms(*summaries.last().unwrap_or(&Duration::ZERO))
    );
    println!("metrics query alone: {}", explain.join("; "));
    Ok(())
}
