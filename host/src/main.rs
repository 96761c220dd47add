//! `spin-local`: run a Spin application locally (`up`), fire one cron
//! component (`cron`), or apply the database migrations (`migrate`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{anyhow, Context, Result};
use clap::{Parser, Subcommand};

use spin_local::{App, LoadOptions, VariableSources, ZeroRowQueries};

#[derive(Parser)]
#[command(
    name = "spin-local",
    version,
    about = "A local Spin-compatible host: dev server and test harness"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args)]
struct AppArgs {
    /// The application manifest.
    #[arg(short = 'f', long = "from", default_value = "spin.toml")]
    manifest: PathBuf,
    /// Set an application variable, as `spin up --variable name=value`.
    #[arg(long = "variable", value_name = "NAME=VALUE")]
    variables: Vec<String>,
    /// Let a Postgres `query` that returns no row answer the empty set. By
    /// default it fails, naming the statement, because Spin 4.0.0-4.0.2 never
    /// return from such a query (spinframework/spin#3671); allow it only for
    /// components meant for a Spin without that bug (3.x, or a fixed 4.x).
    #[arg(long)]
    allow_zero_row_queries: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the HTTP routes and run the cron schedules.
    Up {
        #[command(flatten)]
        app: AppArgs,
        #[arg(long, default_value = "127.0.0.1:3000")]
        listen: SocketAddr,
        /// Do not run the cron schedules.
        #[arg(long)]
        no_cron: bool,
        /// Start even if a Postgres URL among the variables does not answer.
        #[arg(long)]
        skip_db_check: bool,
    },
    /// Run one cron component once, now, as its schedule would.
    Cron {
        /// The component id, e.g. `heartbeat`.
        component: String,
        #[command(flatten)]
        app: AppArgs,
        /// The timestamp passed to the component (seconds since the epoch); default now.
        #[arg(long)]
        timestamp: Option<u64>,
    },
    /// Create the database if needed and apply the SQL migrations.
    Migrate {
        /// Default: the environment variable SPIN_VARIABLE_DATABASE_URL.
        #[arg(long)]
        database_url: Option<String>,
        #[arg(long, default_value = "migrations")]
        dir: PathBuf,
        /// Create the database if it does not exist.
        #[arg(long)]
        create: bool,
    },
}

fn parse_variables(raw: &[String]) -> Result<HashMap<String, String>> {
    raw.iter()
        .map(|kv| {
            let (k, v) = kv
                .split_once('=')
                .ok_or_else(|| anyhow!("--variable {kv:?}: expected NAME=VALUE"))?;
            Ok((k.to_string(), v.to_string()))
        })
        .collect()
}

async fn load(args: &AppArgs, check_databases: bool) -> Result<std::sync::Arc<App>> {
    let sources = VariableSources::from_process(parse_variables(&args.variables)?);
    App::load(
        &args.manifest,
        LoadOptions {
            variables: sources,
            check_databases,
            zero_row_queries: if args.allow_zero_row_queries {
                ZeroRowQueries::Allow
            } else {
                ZeroRowQueries::Refuse
            },
        },
    )
    .await
}

async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Up {
            app,
            listen,
            no_cron,
            skip_db_check,
        } => {
            let app = load(&app, !skip_db_check).await?;
            let listener = tokio::net::TcpListener::bind(listen)
                .await
                .with_context(|| format!("cannot listen on {listen}"))?;
            println!("Serving http://{listen}");
            println!("Available Routes:");
            for t in &app.manifest.http_triggers {
                if let Some(route) = &t.route {
                    println!("  {}: http://{listen}{route}", t.component);
                }
            }
            if !no_cron {
                for t in &app.manifest.cron_triggers {
                    println!("  {}: cron {:?} (UTC)", t.component, t.cron_expression);
                }
                spin_local::cron::spawn_schedules(app.clone());
            }
            tokio::select! {
                r = spin_local::server::serve(app, listener) => r,
                _ = tokio::signal::ctrl_c() => Ok(()),
            }
        }
        Command::Cron {
            component,
            app,
            timestamp,
        } => {
            let app = load(&app, false).await?;
            let ts = timestamp.unwrap_or_else(spin_local::cron::now_timestamp);
            match app.run_cron(&component, ts).await? {
                Ok(()) => {
                    println!("cron component {component} succeeded");
                    Ok(())
                }
                Err(e) => Err(anyhow!("cron component {component} failed: {e}")),
            }
        }
        Command::Migrate {
            database_url,
            dir,
            create,
        } => {
            let url = match database_url {
                Some(u) => u,
                None => std::env::var("SPIN_VARIABLE_DATABASE_URL").map_err(|_| {
                    anyhow!("no database: pass --database-url or set SPIN_VARIABLE_DATABASE_URL")
                })?,
            };
            let report = spin_local::migrate::migrate(&url, &dir, create).await?;
            if report.database_created {
                println!("created the database");
            }
            if report.applied.is_empty() {
                println!("migrations: up to date");
            }
            for m in report.applied {
                println!("applied {m}");
            }
            Ok(())
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    match run(Cli::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
