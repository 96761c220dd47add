//! `bench leads`: save-lead's latency with the embedded geo provider (the full
//! DB-IP Lite city data in Postgres) and with the remote provider behind a
//! local fake answering in 100 ms; and the embedded provider's raw lookup rate.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use integration_tests::fake::{Fake, Reply};
use serde_json::json;
use uuid::Uuid;

use crate::{drive_full, machine, ms, percentile, serve_app, Figures};

const CLIENT: &str = "00000000-0000-4000-8000-0000000001ea";

/// A random globally routable IPv4 address (xorshift; not cryptographic).
fn random_global_ip(state: &AtomicU64) -> IpAddr {
    loop {
        let mut x = state.load(Ordering::Relaxed);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        state.store(x, Ordering::Relaxed);
        let ip = IpAddr::V4(Ipv4Addr::from((x >> 16) as u32));
        if leads::ip_scope::is_global(ip) {
            return ip;
        }
    }
}

fn lead_body() -> String {
    json!({
        "client_id": CLIENT, "event_id": Uuid::new_v4().to_string(), "anonymous_id": Uuid::new_v4().to_string(),
        "email": "jane.doe@example.com", "phone": "(305) 555-0123", "first_name": "Jane", "last_name": "Doe",
        "page_url": "https://shop.example/contact",
    })
    .to_string()
}

async fn lookups(database_url: &str, connections: usize, duration: Duration) -> Result<Figures> {
    let deadline = Instant::now() + duration;
    let started = Instant::now();
    let mut workers = Vec::new();
    for w in 0..connections {
        let url = database_url.to_string();
        workers.push(tokio::spawn(async move {
            let client = crate::pg(&url).await?;
            let stmt = client
                .prepare("SELECT * FROM geoip_lookup($1::text::inet)")
                .await?;
            let seed = AtomicU64::new(0x9E37_79B9_7F4A_7C15 ^ (w as u64 + 1));
            let mut latencies = Vec::new();
            let mut found = 0usize;
            while Instant::now() < deadline {
                let ip = random_global_ip(&seed).to_string();
                let t = Instant::now();
                found += client.query(&stmt, &[&ip]).await?.len();
                latencies.push(t.elapsed());
            }
            anyhow::Ok((latencies, found))
        }));
    }
    let mut all = Vec::new();
    let mut found = 0;
    for w in workers {
        let (l, f) = w.await??;
        all.extend(l);
        found += f;
    }
    let elapsed = started.elapsed();
    all.sort();
    Ok(Figures {
        requests: all.len(),
        errors: all.len() - found,
        elapsed,
        p50: percentile(&all, 0.5),
        p99: percentile(&all, 0.99),
    })
}

pub async fn run(seconds: u64, database_url: String) -> Result<()> {
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    println!("machine: {}", machine());
    println!("preparing: migrating {database_url}");
    spin_local::migrate::migrate(&database_url, &root.join("migrations"), true).await?;
    let client = crate::pg(&database_url).await?;
    let ranges: i64 = client
        .query_one("SELECT count(*) FROM geoip_city_ranges", &[])
        .await?
        .get(0);
    if ranges < 1_000_000 {
        bail!("{database_url} holds {ranges} geo ranges: import the DB-IP data first (scripts/import-geoip --database-url ...)");
    }
    client
        .batch_execute(&format!(
            "DELETE FROM conversion_deliveries WHERE client_id = '{CLIENT}';
             DELETE FROM leads WHERE client_id = '{CLIENT}';
             DELETE FROM client_destinations WHERE client_id = '{CLIENT}';
             DELETE FROM geo_provider_pauses;
             INSERT INTO clients (id, name, root_domain, default_country)
             VALUES ('{CLIENT}', 'bench', 'shop.example', 'US') ON CONFLICT DO NOTHING;"
        ))
        .await?;
    let remote = Fake::start(|_| {
        Reply::json(200, json!({ "status": "success", "countryCode": "US", "region": "FL", "regionName": "Florida", "city": "Miami", "zip": "33101" }))
            .after(Duration::from_millis(100))
    })
    .await;
    println!(
        "{ranges} geo ranges; remote fake at {} answering in 100 ms",
        remote.url
    );

    let seed = Arc::new(AtomicU64::new(0x2545_F491_4F6C_DD1D));
    let mut rows = Vec::new();
    for provider in ["embedded", "remote"] {
        let vars = HashMap::from([
            ("database_url".to_string(), database_url.clone()),
            ("trusted_proxies".to_string(), "127.0.0.1".to_string()),
            ("geo_providers".to_string(), provider.to_string()),
            ("geo_remote_base_url".to_string(), remote.url.clone()),
            ("geo_remote_timeout_ms".to_string(), "1000".to_string()),
        ]);
        let (_, addr) = serve_app(vars).await?;
        for concurrency in [1usize, 16] {
            let seed = seed.clone();
            let headers: crate::HeaderMaker = Arc::new(move || {
                vec![(
                    "x-forwarded-for".into(),
                    random_global_ip(&seed).to_string(),
                )]
            });
            let body: crate::BodyMaker = Arc::new(|| Some(lead_body()));
            println!("save-lead, {provider} provider, concurrency {concurrency}: warming up 1 s, measuring {seconds} s ...");
            drive_full(
                addr,
                "/v1/leads",
                concurrency,
                Duration::from_secs(1),
                body.clone(),
                headers.clone(),
            )
            .await?;
            let f = drive_full(
                addr,
                "/v1/leads",
                concurrency,
                Duration::from_secs(seconds),
                body,
                headers,
            )
            .await?;
            if f.errors > 0 {
                bail!("{} of {} leads were not stored", f.errors, f.requests);
            }
            rows.push((format!("save-lead, {provider}"), concurrency, f));
        }
    }
    for connections in [1usize, 4] {
        println!("embedded lookups, {connections} connection(s): measuring {seconds} s ...");
        let f = lookups(&database_url, connections, Duration::from_secs(seconds)).await?;
        rows.push(("geoip_lookup() in SQL".to_string(), connections, f));
    }
    let geo: (i64, i64) = {
        let r = client
            .query_one(
                "SELECT count(*) FILTER (WHERE geo_lookup->>'outcome' = 'found'), count(*) FROM leads WHERE client_id = $1::text::uuid",
                &[&CLIENT],
            )
            .await?;
        (r.get(0), r.get(1))
    };

    println!();
    println!("save-lead (no destinations: the lead, its geo lookup and the write) and the embedded lookup");
    println!(
        "{:<26} {:>12} {:>10} {:>10} {:>10}",
        "what", "concurrency", "per s", "p50 ms", "p99 ms"
    );
    for (what, c, f) in &rows {
        println!(
            "{:<26} {:>12} {:>10.0} {:>10.2} {:>10.2}",
            what,
            c,
            f.requests as f64 / f.elapsed.as_secs_f64(),
            ms(f.p50),
            ms(f.p99)
        );
    }
    let lookups_found: Vec<String> = rows
        .iter()
        .filter(|(w, _, _)| w.starts_with("geoip"))
        .map(|(_, c, f)| {
            format!(
                "{c} conn: {:.1}% of random global IPv4 placed",
                100.0 * (f.requests - f.errors) as f64 / f.requests.max(1) as f64
            )
        })
        .collect();
    println!("{}", lookups_found.join("; "));
    println!(
        "leads stored in this run: {} ({} placed by an IP lookup)",
        geo.1, geo.0
    );
    println!("remote fake requests: {}", remote.count());
    Ok(())
}
