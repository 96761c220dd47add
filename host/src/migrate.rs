//! Database migrations: the plain SQL files in `migrations/` (refinery's
//! `V<n>__<name>.sql` naming), applied by refinery, which records what ran
//! in `refinery_schema_history` and applies each file once.

use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use tokio_postgres::NoTls;

/// What a migration run did.
#[derive(Debug, Clone)]
pub struct MigrationReport {
    pub database_created: bool,
    pub applied: Vec<String>,
}

async fn connect(config: &tokio_postgres::Config) -> Result<tokio_postgres::Client> {
    let (client, connection) = config.connect(NoTls).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// Creates the database named in `database_url` when `create` is set and it
/// does not exist, then applies the pending migrations from `dir`.
pub async fn migrate(database_url: &str, dir: &Path, create: bool) -> Result<MigrationReport> {
    let config: tokio_postgres::Config = database_url
        .parse()
        .map_err(|e| anyhow!("database URL is not valid: {e}"))?;
    let dbname = config
        .get_dbname()
        .ok_or_else(|| anyhow!("database URL names no database"))?
        .to_string();
    let mut database_created = false;
    if create {
        let mut admin = config.clone();
        admin.dbname("postgres");
        let client = connect(&admin)
            .await
            .context("cannot reach Postgres to create the database")?;
        let exists = client
            .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&dbname])
            .await?
            .is_some();
        if !exists {
            let quoted = format!("\"{}\"", dbname.replace('"', "\"\""));
            client
                .batch_execute(&format!("CREATE DATABASE {quoted}"))
                .await?;
            database_created = true;
        }
    }
    let mut client = connect(&config)
        .await
        .with_context(|| format!("cannot connect to database {dbname}"))?;
    // The database's statement and idle timeouts (migrations/V16) are for
    // requests: a migration may rewrite a large table.
    client
        .batch_execute("SET statement_timeout = 0; SET idle_in_transaction_session_timeout = 0")
        .await?;
    if !dir.is_dir() {
        bail!("migrations directory {} does not exist", dir.display());
    }
    let migrations = refinery::load_sql_migrations(dir)
        .with_context(|| format!("reading migrations from {}", dir.display()))?;
    let report = refinery::Runner::new(&migrations)
        .set_abort_divergent(true)
        .run_async(&mut client)
        .await
        .map_err(|e| anyhow!("migration failed: {e}"))?;
    Ok(MigrationReport {
        database_created,
        applied: report
            .applied_migrations()
            .iter()
            .map(|m| m.to_string())
            .collect(),
    })
}
