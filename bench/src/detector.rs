//! `bench detector`: the tracking-health detector over 10,000 clients and
//! millions of events over 35 days: the stats refresh and the classification
//! timed separately, at 1M events and at the full size.

use std::time::Instant;

use anyhow::Result;

use crate::machine;

const CLIENTS: i32 = 10_000;
const CHUNK: i64 = 1_000_000;

/// Times the steps the detector runs, with the statements it runs: the
/// refresh and the nightly classification (from the refreshed stats), and a
/// replay as of an hour ago (signals computed from the events).
async fn measure(client: &tokio_postgres::Client) -> Result<(f64, f64, f64)> {
    let t = Instant::now();
    client
        .batch_execute("REFRESH MATERIALIZED VIEW CONCURRENTLY mv_client_stats_30d")
        .await?;
    let refresh = t.elapsed().as_secs_f64();
    let t = Instant::now();
    client
        .query(
            "SELECT * FROM detect_tracking_health(now(), 5, 20, 10, true)",
            &[],
        )
        .await?;
    let classify = t.elapsed().as_secs_f64();
    let t = Instant::now();
    client
        .query(
            "SELECT * FROM detect_tracking_health(now() - interval '1 hour', 5, 20, 10, false)",
            &[],
        )
        .await?;
    let replay = t.elapsed().as_secs_f64();
    Ok((refresh, classify, replay))
}

pub async fn run(database_url: String, millions: i64) -> Result<()> {
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    println!("machine: {}", machine());
    spin_local::migrate::migrate(&database_url, &root.join("migrations"), true).await?;
    let client = crate::pg(&database_url).await?;
    println!("preparing: {CLIENTS} clients, emptying session_events");
    client
        .batch_execute(&format!(
            "TRUNCATE session_events, widget_sessions, client_tracking_health, client_tracking_health_history;
             INSERT INTO clients (id, name, client_type, root_domain)
             SELECT md5('bench-' || i)::uuid, 'bench-' || i,
                    (ARRAY['client','client','client','onboarding','test','demo','former'])[1 + i % 7], 'shop.example'
               FROM generate_series(1, {CLIENTS}) i
             ON CONFLICT (id) DO NOTHING;"
        ))
        .await?;
    let mut rows = Vec::new();
    for m in 1..=millions {
        let t = Instant::now();
        // Events over the last 35 days; each client draws from its own 400 visitors.
        client
            .batch_execute(&format!(
                "INSERT INTO session_events (client_id, person_id, event_name, occurred_at, widget_displayed_at, duration_s)
                 SELECT md5('bench-' || (1 + (random() * ({CLIENTS} - 1))::int))::uuid,
                        'v' || (random() * 400)::int,
                        (ARRAY['widget_impression','widget_impression','widget_impression','widget_impression',
                               'widget_impression','widget_impression','chat_started','message_sent',
                               'message_sent','client_form_submitted'])[1 + (random() * 9)::int],
                        now() - random() * interval '35 days',
                        CASE WHEN random() < 0.9 THEN 1 ELSE 0 END,
                        random() * 30
                   FROM generate_series(1, {CHUNK})"
            ))
            .await?;
        println!(
            "  inserted {m}M events ({:.1} s)",
            t.elapsed().as_secs_f64()
        );
        if m == 1 || m == millions {
            // Fresh statistics for every table the detector reads (clients
            // included), and the visibility map autovacuum keeps for
            // insert-only tables, which the index-only signal scans rely on.
            client.batch_execute("VACUUM (ANALYZE)").await?;
            // The first refresh after new data also warms the cache: measure the second.
            measure(&client).await?;
            let (refresh, classify, replay) = measure(&client).await?;
            println!("  at {m}M events: refresh {refresh:.2} s, classification {classify:.3} s, replay {replay:.2} s");
            rows.push((m, refresh, classify, replay));
        }
    }
    let in_30d: i64 = client
        .query_one(
            "SELECT count(*) FROM session_events WHERE occurred_at > now() - interval '30 days'",
            &[],
        )
        .await?
        .get(0);
    println!();
    println!("Tracking-health detector, {CLIENTS} clients (3/7 client, 1/7 onboarding, 1/7 test, 2/7 excluded)");
    println!(
        "{:>10} {:>12} {:>18} {:>22}",
        "events", "refresh s", "classification s", "replay (as_of) s"
    );
    for (m, refresh, classify, replay) in &rows {
        println!(
            "{:>9}M {:>12.2} {:>18.3} {:>22.2}",
            m, refresh, classify, replay
        );
    }
    if let [(m1, r1, c1, p1), .., (mn, rn, cn, pn)] = rows.as_slice() {
        println!(
            "growth {m1}M -> {mn}M ({:.0}x events): refresh {:.1}x, classification {:.1}x, replay {:.1}x; events in the last 30 days at {mn}M: {in_30d}",
            *mn as f64 / *m1 as f64,
            rn / r1,
            cn / c1,
            pn / p1
        );
    }
    Ok(())
}
