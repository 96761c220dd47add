//! Database migrations: the plain SQL files in `migrations/` (refinery's
//! `V<n>__<name>.sql` naming), applied by refinery, which records what ran
//! in `refinery_schema_history` and applies each file once.
//!
//! TLS as Spin's runtime does it: attempted unless the address says
//! `sslmode=disable`, the server's certificate always verified (against the
//! system's trust store, plus the PEM file of libpq's `sslrootcert` when the
//! address names one, e.g. a cloud provider's CA bundle). `sslmode=require`
//! refuses a server without TLS; libpq's `verify-ca`/`verify-full` are read
//! as `require`, since verification is never skipped.

use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use tokio_postgres::config::SslMode;
use tokio_postgres::NoTls;

/// What a migration run did.
#[derive(Debug, Clone)]
pub struct MigrationReport {
    pub database_created: bool,
    pub applied: Vec<String>,
}

/// An address as tokio-postgres reads it, and the CA file it names.
struct Address {
    config: tokio_postgres::Config,
    root_cert: Option<String>,
}

/// Parses `url`, taking out what tokio-postgres does not read: libpq's
/// `sslrootcert`, and `sslmode=verify-ca|verify-full` (as `require`).
fn parse_address(url: &str) -> Result<Address> {
    let invalid = |e: &dyn std::fmt::Display| anyhow!("database URL is not valid: {e}");
    let mut root_cert = None;
    let mut url = url.to_string();
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let mut parsed = url::Url::parse(&url).map_err(|e| invalid(&e))?;
        let mut kept = Vec::new();
        for (k, v) in parsed.query_pairs() {
            match (k.as_ref(), v.as_ref()) {
                ("sslrootcert", path) => root_cert = Some(path.to_string()),
                ("sslmode", "verify-ca" | "verify-full") => {
                    kept.push(("sslmode".to_string(), "require".to_string()))
                }
                _ => kept.push((k.into_owned(), v.into_owned())),
            }
        }
        parsed.set_query(None);
        if !kept.is_empty() {
            parsed.query_pairs_mut().extend_pairs(kept);
        }
        url = parsed.to_string();
    }
    let config = url.parse().map_err(|e| invalid(&e))?;
    Ok(Address { config, root_cert })
}

/// Verifies servers against the system's roots and `root_cert`'s.
fn tls(root_cert: Option<&str>) -> Result<tokio_postgres_rustls::MakeRustlsConnect> {
    use rustls::pki_types::{pem::PemObject, CertificateDer};
    let mut roots = rustls::RootCertStore::empty();
    roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    if let Some(path) = root_cert {
        let certs = CertificateDer::pem_file_iter(path)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|e| anyhow!("sslrootcert {path}: {e}"))?;
        if certs.is_empty() {
            bail!("sslrootcert {path}: no certificate in the file");
        }
        for cert in certs {
            roots
                .add(cert)
                .map_err(|e| anyhow!("sslrootcert {path}: {e}"))?;
        }
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

async fn connect(address: &Address) -> Result<tokio_postgres::Client> {
    let config = &address.config;
    let client = if config.get_ssl_mode() == SslMode::Disable {
        let (client, connection) = config.connect(NoTls).await?;
        tokio::spawn(connection);
        client
    } else {
        let (client, connection) = config.connect(tls(address.root_cert.as_deref())?).await?;
        tokio::spawn(connection);
        client
    };
    Ok(client)
}

/// Creates the database named in `database_url` when `create` is set and it
/// does not exist, then applies the pending migrations from `dir`.
pub async fn migrate(database_url: &str, dir: &Path, create: bool) -> Result<MigrationReport> {
    let address = parse_address(database_url)?;
    let dbname = address
        .config
        .get_dbname()
        .ok_or_else(|| anyhow!("database URL names no database"))?
        .to_string();
    let mut database_created = false;
    if create {
        let mut admin = Address {
            config: address.config.clone(),
            root_cert: address.root_cert.clone(),
        };
        admin.config.dbname("postgres");
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
    let mut client = connect(&address)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libpq_tls_parameters_are_read_and_taken_out() {
        let a = parse_address(
            "postgres://u:p@db.example.com:6432/app?sslmode=verify-full&sslrootcert=/ca.pem&application_name=m",
        )
        .unwrap();
        assert_eq!(a.root_cert.as_deref(), Some("/ca.pem"));
        assert_eq!(a.config.get_ssl_mode(), SslMode::Require);
        assert_eq!(a.config.get_dbname(), Some("app"));
        assert_eq!(a.config.get_application_name(), Some("m"));

        let plain = parse_address("postgres://u@localhost/app?sslmode=disable").unwrap();
        assert_eq!(plain.config.get_ssl_mode(), SslMode::Disable);
        assert_eq!(plain.root_cert, None);
        // No sslmode: TLS is attempted, as under Spin.
        let default = parse_address("postgresql://u@localhost/app").unwrap();
        assert_eq!(default.config.get_ssl_mode(), SslMode::Prefer);
        assert!(parse_address("postgres://u@localhost/app?sslmode=sometimes").is_err());
    }
}
