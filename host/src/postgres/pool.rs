//! Connections to Postgres, as Spin's host opens them: the address parsed
//! and checked against the component's `allowed_outbound_hosts` (hosts
//! compared literally) before connecting, one deadpool pool per address
//! (recycled with `Clean`), and a guest's connection handed out as a pooled
//! client.
//!
//! Unlike Spin, TLS is not attempted: addresses must say `sslmode=disable`,
//! which is what local URLs should say under Spin too. Also unlike Spin, a
//! connection whose guest left a transaction open is closed rather than
//! returned to the pool, so that one request's transaction cannot leak into
//! the next (pool hygiene).
//!
//! Nothing here knows the WIT types: a failure to open is the message of
//! the guest's `connection-failed` error.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Mutex;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use tokio_postgres::config::{Host, SslMode};

use crate::allowed_hosts::AllowedHosts;

/// Pools per address, shared by every instance of the application.
#[derive(Default)]
pub struct PgPools {
    pools: Mutex<HashMap<String, Pool>>,
}

/// A guest's `connection` resource: a pooled client.
pub struct Connection {
    client: Option<Object>,
    /// The guest began a transaction and has not ended it: if it goes away
    /// now, the connection is closed rather than returned to the pool.
    in_transaction: bool,
}

impl Drop for Connection {
    fn drop(&mut self) {
        if self.in_transaction {
            if let Some(client) = self.client.take() {
                drop(Object::take(client));
            }
        }
    }
}

impl PgPools {
    /// `connection.open`: checks the address against `allowed`, then takes a
    /// pooled client. The error is the `connection-failed` message.
    pub async fn open(&self, address: &str, allowed: &AllowedHosts) -> Result<Connection, String> {
        let mut config = tokio_postgres::Config::from_str(address).map_err(|e| e.to_string())?;
        for (i, host) in config.get_hosts().iter().enumerate() {
            let Host::Tcp(host) = host else {
                return Err("Unix sockets are not supported on WebAssembly".into());
            };
            let port = config
                .get_ports()
                .get(i)
                .or(config.get_ports().first())
                .copied();
            if !allowed.allows("postgres", host, port) {
                let shown = match port {
                    Some(p) => format!("{host}:{p}"),
                    None => host.clone(),
                };
                eprintln!("A component tried to make an outbound network connection to disallowed destination 'postgres://{shown}'.");
                return Err(format!("address postgres://{shown} is not permitted"));
            }
        }
        if config.get_ssl_mode() != SslMode::Disable {
            return Err(
                "the local host connects without TLS only: add sslmode=disable to the address \
                 (under Spin, an address without it negotiates TLS)"
                    .into(),
            );
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        let pool = self.pool(address, config)?;
        let client = pool.get().await.map_err(|e| format!("{e}"))?;
        Ok(Connection {
            client: Some(client),
            in_transaction: false,
        })
    }

    fn pool(&self, address: &str, config: tokio_postgres::Config) -> Result<Pool, String> {
        let mut pools = self.pools.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(pool) = pools.get(address) {
            return Ok(pool.clone());
        }
        let manager = Manager::from_config(
            config,
            tokio_postgres::NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Clean,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(64)
            .runtime(Runtime::Tokio1)
            .create_timeout(Some(Duration::from_secs(10)))
            .build()
            .map_err(|e| e.to_string())?;
        pools.insert(address.to_string(), pool.clone());
        Ok(pool)
    }
}

impl Connection {
    /// The pooled client; `None` once the connection is closed.
    pub fn client(&self) -> Option<&Object> {
        self.client.as_ref()
    }

    /// Notes whether `statement`, about to run, opens or ends a transaction.
    pub fn track_transaction(&mut self, statement: &str) {
        let head = statement
            .trim_start()
            .get(..8)
            .unwrap_or(statement)
            .to_ascii_uppercase();
        if head.starts_with("BEGIN") || head.starts_with("START") {
            self.in_transaction = true;
        } else if ["COMMIT", "ROLLBACK", "END", "ABORT"]
            .iter()
            .any(|k| head.starts_with(k))
        {
            self.in_transaction = false;
        }
    }
}
