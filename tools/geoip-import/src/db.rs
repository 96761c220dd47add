//! The database side: checks, the load into `*_new` tables and the swap.

use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use futures::SinkExt;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls, Transaction};

/// Where the database is, without credentials, for messages.
pub fn describe(url: &str) -> String {
    let Ok(config) = url.parse::<tokio_postgres::Config>() else {
        return "the database".to_string();
    };
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        #[cfg(unix)]
        Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => "localhost".to_string(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!(
        "{host}:{port}/{}",
        config
            .get_dbname()
            .or(config.get_user())
            .unwrap_or("postgres")
    )
}

pub async fn connect(url: &str) -> Result<Client> {
    let mut config: tokio_postgres::Config = url
        .parse()
        .map_err(|e| anyhow!("invalid database URL: {e}"))?;
    // The database's request timeouts (migrations/V16) do not suit a bulk load.
    config.options("-c statement_timeout=0 -c idle_in_transaction_session_timeout=0");
    let (client, conn) = tokio::time::timeout(Duration::from_secs(15), config.connect(NoTls))
        .await
        .map_err(|_| anyhow!("timed out"))
        .and_then(|r| {
            r.map_err(|e| {
                if e.code() == Some(&SqlState::INVALID_CATALOG_NAME) {
                    let message = e.as_db_error().map_or("", |d| d.message());
                    anyhow!("{message}: create and migrate it with spin-local migrate --create")
                } else {
                    e.into()
                }
            })
        })
        .with_context(|| format!("cannot connect to the database at {}", describe(url)))?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            eprintln!("geoip-import: database connection: {e}");
        }
    });
    // A role-level timeout must not cut the load short.
    client
        .batch_execute("SET statement_timeout = 0; SET idle_in_transaction_session_timeout = 0")
        .await?;
    Ok(client)
}

/// The tables of migration V6 exist, and no other import is running here.
pub async fn check(client: &Client) -> Result<()> {
    let row = client
        .query_one(
            "SELECT to_regclass('geoip_city_ranges') IS NOT NULL \
                AND to_regclass('geoip_locations') IS NOT NULL \
                AND to_regclass('geoip_imports') IS NOT NULL \
                AND to_regprocedure('geoip_lookup(inet)') IS NOT NULL",
            &[],
        )
        .await?;
    if !row.get::<_, bool>(0) {
        bail!(
            "the database has no geoip tables (migration V6__geoip.sql): run spin-local migrate first"
        );
    }
    // A previous import's backend may still be exiting when the next one
    // starts (its lock goes with the session): wait a little before refusing.
    for attempt in 0..50 {
        let locked: bool = client
            .query_one(
                "SELECT pg_try_advisory_lock(hashtextextended('job:geoip-import', 0))",
                &[],
            )
            .await?
            .get(0);
        if locked {
            return Ok(());
        }
        if attempt == 0 {
            eprintln!("geoip-import: another import holds the lock; waiting up to 5 s");
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    bail!("another geoip-import is running on this database")
}

/// Starts the load: fresh `*_new` tables shaped like the live ones (columns,
/// defaults, constraints, indexes), created in this transaction so that COPY
/// can write frozen rows and a failure leaves nothing behind.
pub async fn create_new_tables(tx: &Transaction<'_>) -> Result<()> {
    tx.batch_execute(
        "DROP TABLE IF EXISTS geoip_city_ranges_new, geoip_locations_new;
         CREATE TABLE geoip_locations_new (LIKE geoip_locations INCLUDING ALL);
         CREATE TABLE geoip_city_ranges_new (LIKE geoip_city_ranges INCLUDING ALL);",
    )
    .await?;
    Ok(())
}

pub const RANGES_COPY: &str = "COPY geoip_city_ranges_new (ip_from, ip_to, location_id) \
     FROM STDIN (FORMAT binary, FREEZE)";

/// Loads the places (COPY text rows).
pub async fn copy_locations(tx: &Transaction<'_>, text: Vec<u8>) -> Result<u64> {
    let sink = tx
        .copy_in(
            "COPY geoip_locations_new (id, country_code, region_code, region_name, city, postal_code) \
             FROM STDIN (FREEZE)",
        )
        .await?;
    futures::pin_mut!(sink);
    let text = Bytes::from(text);
    let mut at = 0;
    while at < text.len() {
        let end = (at + (1 << 20)).min(text.len());
        sink.send(text.slice(at..end)).await?;
        at = end;
    }
    Ok(sink.finish().await?)
}

pub async fn analyze(tx: &Transaction<'_>) -> Result<()> {
    tx.batch_execute("ANALYZE geoip_city_ranges_new, geoip_locations_new")
        .await?;
    Ok(())
}

fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Locks the live tables for the swap. Lookups lock the two tables in either
/// order (planning an inlined `geoip_lookup` locks the ranges first, a cached
/// plan may lock the places first), so holding one while waiting for the other
/// could deadlock with a lookup and make it fail. Each attempt therefore waits
/// less than `deadlock_timeout` (lookups queue behind a waiting lock, for at
/// most that long), gives up both locks if it times out, and tries again.
async fn lock_live(tx: &Transaction<'_>) -> Result<()> {
    const ATTEMPTS: u32 = 100;
    let deadlock_ms: i32 = tx
        .query_one(
            "SELECT setting::int FROM pg_settings WHERE name = 'deadlock_timeout'",
            &[],
        )
        .await?
        .get(0);
    let wait_ms = (deadlock_ms / 2).clamp(10, 200);
    let started = std::time::Instant::now();
    for attempt in 1..=ATTEMPTS {
        tx.batch_execute(&format!(
            "SAVEPOINT swap_lock; SET LOCAL lock_timeout = '{wait_ms}ms'"
        ))
        .await?;
        match tx
            .batch_execute("LOCK TABLE geoip_city_ranges, geoip_locations IN ACCESS EXCLUSIVE MODE")
            .await
        {
            Ok(()) => {
                tx.batch_execute("RELEASE SAVEPOINT swap_lock; SET LOCAL lock_timeout = 0")
                    .await?;
                return Ok(());
            }
            Err(e)
                if matches!(
                    e.code(),
                    Some(&SqlState::LOCK_NOT_AVAILABLE) | Some(&SqlState::T_R_DEADLOCK_DETECTED)
                ) =>
            {
                tx.batch_execute("ROLLBACK TO SAVEPOINT swap_lock").await?;
                if attempt % 10 == 0 {
                    eprintln!(
                        "geoip-import: the live tables are busy (a long query?); still trying to swap ({attempt}/{ATTEMPTS})"
                    );
                }
                let pause = 20 * u64::from(attempt.min(25));
                tokio::time::sleep(Duration::from_millis(pause)).await;
            }
            Err(e) => return Err(e).context("locking the live geoip tables"),
        }
    }
    bail!(
        "could not lock the live geoip tables for the swap: they stayed busy for {:.0} s; nothing was changed",
        started.elapsed().as_secs_f64()
    )
}

/// What the import row records.
pub struct ImportRow<'a> {
    pub source: &'a str,
    pub version: Option<&'a str>,
    pub attribution: &'a str,
    pub ranges: i64,
    pub locations: i64,
    pub duration_ms: i64,
}

/// The swap, inside the load's transaction: the live tables are dropped, the
/// new ones and their indexes take their names, the import is recorded. Until
/// the commit, readers see the old data; after it, the new.
pub async fn swap(tx: &Transaction<'_>, row: ImportRow<'_>) -> Result<()> {
    lock_live(tx).await?;
    // Each new index takes the name of the live index with the same
    // definition (LIKE ... INCLUDING ALL names them after the new table).
    let mut renames = Vec::new();
    for (new, live) in [
        ("geoip_city_ranges_new", "geoip_city_ranges"),
        ("geoip_locations_new", "geoip_locations"),
    ] {
        let pairs = tx
            .query(
                r"SELECT n.indexname::text, l.indexname::text
                  FROM pg_indexes n
                  LEFT JOIN pg_indexes l
                    ON l.schemaname = n.schemaname AND l.tablename = $2
                   AND regexp_replace(l.indexdef, ' INDEX \S+ ON \S+ ', ' INDEX ON ')
                     = regexp_replace(n.indexdef, ' INDEX \S+ ON \S+ ', ' INDEX ON ')
                  WHERE n.schemaname = current_schema() AND n.tablename = $1
                  ORDER BY 1",
                &[&new, &live],
            )
            .await?;
        let live_count: i64 = tx
            .query_one(
                "SELECT count(*) FROM pg_indexes WHERE schemaname = current_schema() AND tablename = $1",
                &[&live],
            )
            .await?
            .get(0);
        if pairs.len() as i64 != live_count {
            bail!("{new} has {} indexes, {live} has {live_count}", pairs.len());
        }
        for p in pairs {
            let new_index: String = p.get(0);
            let live_index: Option<String> = p.get(1);
            let live_index = live_index
                .ok_or_else(|| anyhow!("index {new_index} has no counterpart on {live}"))?;
            renames.push((new_index, live_index));
        }
    }
    let mut sql = String::from(
        "DROP TABLE geoip_city_ranges;
         DROP TABLE geoip_locations;
         ALTER TABLE geoip_city_ranges_new RENAME TO geoip_city_ranges;
         ALTER TABLE geoip_locations_new RENAME TO geoip_locations;\n",
    );
    for (new_index, live_index) in &renames {
        sql.push_str(&format!(
            "ALTER INDEX {} RENAME TO {};\n",
            ident(new_index),
            ident(live_index)
        ));
    }
    tx.batch_execute(&sql)
        .await
        .context("swapping the tables")?;
    tx.execute(
        "INSERT INTO geoip_imports (source, version, attribution, ranges, locations, duration_ms) \
         VALUES ($1, $2, $3, $4, $5, $6)",
        &[
            &row.source,
            &row.version,
            &row.attribution,
            &row.ranges,
            &row.locations,
            &row.duration_ms,
        ],
    )
    .await?;
    Ok(())
}

/// After the commit: `geoip_lookup` finds the first range through the new tables.
pub async fn lookup_works(client: &Client) -> Result<bool> {
    let row = client
        .query_opt(
            "SELECT (SELECT count(*) FROM geoip_lookup(ip_from)) = 1 \
             FROM geoip_city_ranges ORDER BY ip_from LIMIT 1",
            &[],
        )
        .await?;
    Ok(row.is_none_or(|r| r.get(0)))
}
