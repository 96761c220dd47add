//! `bench`: drives the application on the local host and prints figures.
//! Results and the machine they were measured on go to docs/BENCHMARKS.md.
//!
//! `cargo run --release -p bench -- healthz` (see `--help`).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use clap::{Parser, Subcommand};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;

use spin_local::{App, LoadOptions, VariableSources};

mod alerts;
mod analytics;
mod detector;
mod ingest;
mod leads;
mod privacy;
mod retry;
mod retry_drain;

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// GET /healthz: requests/s and p50/p99 at concurrency 1 and 32, and the
    /// per-request instantiation cost.
    Healthz {
        /// Seconds of measurement per concurrency level (after 1 s of warm-up).
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// The database the app uses (created and migrated if missing).
        #[arg(
            long,
            default_value = "postgres://postgres@localhost:5432/tracking_bench?sslmode=disable"
        )]
        database_url: String,
        /// Instantiations measured for the instantiation cost.
        #[arg(long, default_value_t = 2000)]
        instantiations: usize,
    },
    /// POST /v1/events with batches of 1, 10 and 100 events at concurrency 32,
    /// against the native ceiling: the same rows inserted straight into
    /// Postgres (multi-row INSERT and COPY) at the same concurrency.
    Ingest {
        /// Seconds of measurement per run (after 1 s of warm-up).
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        #[arg(
            long,
            default_value = "postgres://postgres@localhost:5432/tracking_bench?sslmode=disable"
        )]
        database_url: String,
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
        /// Events per request, one run each (comma-separated).
        #[arg(long, value_delimiter = ',', default_value = "1,10,100")]
        batches: Vec<usize>,
    },
    /// The tracking-health detector: 10,000 clients and `--millions` million
    /// events over 35 days; stats refresh and classification timed at 1M and
    /// at the full size.
    Detector {
        #[arg(
            long,
            default_value = "postgres://postgres@localhost:5432/tracking_detector_bench?sslmode=disable"
        )]
        database_url: String,
        #[arg(long, default_value_t = 10)]
        millions: i64,
    },
    /// Widget analytics: 10,000 clients, `--millions` million raw events,
    /// sessions, two years of daily stats and the real rollups of the raw
    /// window (made once, resumable); then the nightly rollup + retention
    /// (the real cron component), one day's rollup, and p50/p99 of each read
    /// endpoint.
    Analytics(analytics::Options),
    /// POST /v1/leads with the embedded geo provider (the full DB-IP data:
    /// import it first with scripts/import-geoip) and with the remote
    /// provider behind a local fake answering in 100 ms; and the embedded
    /// provider's lookups per second straight from Postgres.
    Leads {
        /// Seconds of measurement per run (after 1 s of warm-up).
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// A database holding the imported DB-IP data (migrated if needed).
        #[arg(
            long,
            default_value = "postgres://postgres@localhost:5432/tracking_leads_bench?sslmode=disable"
        )]
        database_url: String,
    },
    /// check-tracking-health with `--millions` million delivery attempts and
    /// 1M outbox rows: the check's duration and the summary's p50/p99.
    Alerts {
        #[arg(
            long,
            default_value = "postgres://postgres@localhost:5432/tracking_alerts_bench?sslmode=disable"
        )]
        database_url: String,
        #[arg(long, default_value_t = 10)]
        millions: i64,
        #[arg(long, default_value_t = 200)]
        requests: usize,
    },
    /// The nightly data retention over `--millions` million delivery
    /// attempts, and one erase on a client with `--millions` million events.
    Privacy {
        #[arg(
            long,
            default_value = "postgres://postgres@localhost:5432/tracking_privacy_bench?sslmode=disable"
        )]
        database_url: String,
        #[arg(long, default_value_t = 10)]
        millions: i64,
    },
    /// Draining 10,000 pending Meta events against a local fake answering in
    /// 50 ms: deliveries per second and HTTP requests made.
    Retry {
        #[arg(
            long,
            default_value = "postgres://postgres@localhost:5432/tracking_bench?sslmode=disable"
        )]
        database_url: String,
        #[arg(long, default_value_t = 10_000)]
        events: i64,
    },
    /// Isolation: draining fast Meta pixels with and without a destination
    /// answering in 5 s; the fast ones' deliveries per second against the
    /// ceiling without the slow one, and how long the slow one held each run.
    RetryDrain(retry_drain::Options),
}

/// Loads spin.toml with `vars` and serves it on an ephemeral port.
pub(crate) async fn serve_app(
    vars: HashMap<String, String>,
) -> Result<(Arc<App>, std::net::SocketAddr)> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let app: Arc<App> = App::load(
        &root.join("spin.toml"),
        LoadOptions {
            variables: VariableSources {
                explicit: vars,
                env: HashMap::new(),
            },
            check_databases: true,
            ..Default::default()
        },
    )
    .await
    .context("loading spin.toml (build the components first: scripts/build-components)")?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(spin_local::server::serve(app.clone(), listener));
    Ok((app, addr))
}

/// A native connection for loading and measuring: the database's request
/// timeouts (migrations/V16) are switched off for it, as bulk loads run long.
pub(crate) async fn pg(url: &str) -> Result<tokio_postgres::Client> {
    let mut config: tokio_postgres::Config = url.parse()?;
    config.options("-c statement_timeout=0 -c idle_in_transaction_session_timeout=0");
    let (client, conn) = config.connect(tokio_postgres::NoTls).await?;
    tokio::spawn(conn);
    Ok(client)
}

/// Latency figures of one run.
pub(crate) struct Figures {
    pub requests: usize,
    pub errors: usize,
    pub elapsed: Duration,
    pub p50: Duration,
    pub p99: Duration,
}

pub(crate) fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx]
}

pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The machine, for the record.
pub(crate) fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let mem_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0 / 1024.0)
        .unwrap_or(0.0);
    format!("{cores} cores ({cpu}), {mem_gib:.0} GiB")
}

/// Makes the body of each request (None: a GET).
pub(crate) type BodyMaker = Arc<dyn Fn() -> Option<String> + Send + Sync>;

/// Makes extra headers for each request.
pub(crate) type HeaderMaker = Arc<dyn Fn() -> Vec<(String, String)> + Send + Sync>;

/// `concurrency` keep-alive connections sending GET `path` back to back for `duration`.
async fn drive(
    addr: std::net::SocketAddr,
    path: &str,
    concurrency: usize,
    duration: Duration,
) -> Result<Figures> {
    drive_with(addr, path, concurrency, duration, Arc::new(|| None)).await
}

/// Like [`drive`], with a request body (POSTed as JSON) made per request.
pub(crate) async fn drive_with(
    addr: std::net::SocketAddr,
    path: &str,
    concurrency: usize,
    duration: Duration,
    make_body: BodyMaker,
) -> Result<Figures> {
    drive_full(
        addr,
        path,
        concurrency,
        duration,
        make_body,
        Arc::new(Vec::new),
    )
    .await
}

/// Like [`drive_with`], with extra headers made per request. Any 2xx is a success.
pub(crate) async fn drive_full(
    addr: std::net::SocketAddr,
    path: &str,
    concurrency: usize,
    duration: Duration,
    make_body: BodyMaker,
    make_headers: HeaderMaker,
) -> Result<Figures> {
    let deadline = Instant::now() + duration;
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let path = path.to_string();
        let make_body = make_body.clone();
        let make_headers = make_headers.clone();
        workers.push(tokio::spawn(async move {
            let stream = tokio::net::TcpStream::connect(addr).await?;
            stream.set_nodelay(true)?;
            let (mut sender, conn) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
            tokio::spawn(conn);
            let mut latencies = Vec::new();
            let mut errors = 0usize;
            while Instant::now() < deadline {
                let mut req = match make_body() {
                    None => http::Request::get(&path)
                        .header("host", "127.0.0.1")
                        .body(Full::new(Bytes::new()))?,
                    Some(body) => http::Request::post(&path)
                        .header("host", "127.0.0.1")
                        .header("content-type", "application/json")
                        .body(Full::new(Bytes::from(body)))?,
                };
                for (k, v) in make_headers() {
                    req.headers_mut().insert(
                        http::HeaderName::from_bytes(k.as_bytes())?,
                        http::HeaderValue::from_str(&v)?,
                    );
                }
                let t = Instant::now();
                let res = sender.send_request(req).await?;
                let ok = res.status().is_success();
                res.into_body().collect().await?;
                latencies.push(t.elapsed());
                if !ok {
                    errors += 1;
                }
            }
            anyhow::Ok((latencies, errors))
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for w in workers {
        let (l, e) = w.await??;
        all.extend(l);
        errors += e;
    }
    let elapsed = started.elapsed();
    all.sort();
    Ok(Figures {
        requests: all.len(),
        errors,
        elapsed,
        p50: percentile(&all, 0.50),
        p99: percentile(&all, 0.99),
    })
}

async fn healthz(seconds: u64, database_url: String, instantiations: usize) -> Result<()> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    println!("machine: {}", machine());
    println!("preparing: migrating {database_url}");
    spin_local::migrate::migrate(&database_url, &root.join("migrations"), true).await?;
    let (app, addr) =
        serve_app(HashMap::from([("database_url".to_string(), database_url)])).await?;

    let mut rows = Vec::new();
    for concurrency in [1usize, 32] {
        println!("concurrency {concurrency}: warming up 1 s, then measuring {seconds} s ...");
        drive(addr, "/healthz", concurrency, Duration::from_secs(1)).await?;
        let f = drive(addr, "/healthz", concurrency, Duration::from_secs(seconds)).await?;
        if f.errors > 0 {
            bail!("{} of {} requests did not answer 200", f.errors, f.requests);
        }
        println!("  {} requests", f.requests);
        rows.push((concurrency, f));
    }

    println!("instantiation: {instantiations} fresh instances of `healthz` ...");
    let mut times = Vec::with_capacity(instantiations);
    for _ in 0..instantiations {
        let t = Instant::now();
        app.instantiate_http("healthz").await?;
        times.push(t.elapsed());
    }
    times.sort();
    let mean = times.iter().sum::<Duration>() / times.len().max(1) as u32;

    println!();
    println!("GET /healthz on the local host (one SELECT 1 through spin:postgres per request)");
    println!(
        "{:>12} {:>12} {:>10} {:>10}",
        "concurrency", "requests/s", "p50 ms", "p99 ms"
    );
    for (c, f) in &rows {
        println!(
            "{:>12} {:>12.0} {:>10.3} {:>10.3}",
            c,
            f.requests as f64 / f.elapsed.as_secs_f64(),
            ms(f.p50),
            ms(f.p99)
        );
    }
    println!(
        "instantiation per request: mean {:.1} µs, p50 {:.1} µs, p99 {:.1} µs",
        mean.as_secs_f64() * 1e6,
        percentile(&times, 0.5).as_secs_f64() * 1e6,
        percentile(&times, 0.99).as_secs_f64() * 1e6
    );
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Healthz {
            seconds,
            database_url,
            instantiations,
        } => healthz(seconds, database_url, instantiations).await,
        Command::Ingest {
            seconds,
            database_url,
            concurrency,
            batches,
        } => ingest::run(seconds, database_url, concurrency, batches).await,
        Command::Detector {
            database_url,
            millions,
        } => detector::run(database_url, millions).await,
        Command::Analytics(options) => analytics::run(options).await,
        Command::Leads {
            seconds,
            database_url,
        } => leads::run(seconds, database_url).await,
        Command::Alerts {
            database_url,
            millions,
            requests,
        } => alerts::run(database_url, millions, requests).await,
        Command::Retry {
            database_url,
            events,
        } => retry::run(database_url, events).await,
        Command::RetryDrain(options) => retry_drain::run(options).await,
        Command::Privacy {
            database_url,
            millions,
        } => privacy::run(database_url, millions).await,
    }
}
