//! The start-up check of `spin-local up`: every Postgres URL among the
//! application variables must answer, or the host does not start (a
//! one-line error naming the variable, host, port and database).

use anyhow::{anyhow, bail, Result};

/// Connects once to every Postgres URL among `variables` (name, value).
pub async fn check_databases<'a>(
    variables: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<()> {
    for (name, value) in variables {
        if !(value.starts_with("postgres://") || value.starts_with("postgresql://")) {
            continue;
        }
        let config: tokio_postgres::Config = value
            .parse()
            .map_err(|e| anyhow!("variable {name}: not a valid Postgres URL: {e}"))?;
        let hosts: Vec<String> = config
            .get_hosts()
            .iter()
            .map(|h| match h {
                tokio_postgres::config::Host::Tcp(h) => h.clone(),
                tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
            })
            .collect();
        let port = config.get_ports().first().copied().unwrap_or(5432);
        let db = config.get_dbname().unwrap_or("(default)").to_string();
        let connect = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            config.connect(tokio_postgres::NoTls),
        )
        .await;
        match connect {
            Ok(Ok((client, connection))) => {
                let task = tokio::spawn(connection);
                client.simple_query("SELECT 1").await.map_err(|e| {
                    anyhow!("Postgres at {}:{port} (database {db}, variable {name}) does not answer: {e}", hosts.join(","))
                })?;
                drop(client);
                let _ = task.await;
            }
            Ok(Err(e)) => bail!(
                "Postgres unreachable at {}:{port} (database {db}, variable {name}): {e}",
                hosts.join(",")
            ),
            Err(_) => bail!(
                "Postgres unreachable at {}:{port} (database {db}, variable {name}): no answer in 5 s",
                hosts.join(",")
            ),
        }
    }
    Ok(())
}
