//! Outbound Postgres, as Spin's `factor-outbound-pg` provides it to
//! components: `spin:postgres/postgres@4.0.0` on a connection pool, with
//! `allowed_outbound_hosts` checked before connecting, Spin's type mapping
//! and Spin's errors.
//!
//! - [`pool`]: addresses, the allowed-hosts check, the TLS refusal, one pool
//!   per address and pool hygiene (knows nothing of the WIT types);
//! - [`types`]: tokio-postgres values, parameters and errors to and from the
//!   WIT types;
//! - [`query`]: `query` and `execute`, and the zero-row refusal
//!   ([`ZeroRowQueries`], spinframework/spin#3671);
//! - [`host`]: the guest interface, on the shared [`Postgres`] state;
//! - [`probe`]: the start-up check that every Postgres URL answers.

pub mod host;
pub mod pool;
pub mod probe;
pub mod query;
pub mod types;

pub use host::{Postgres, PostgresView};
pub use pool::Connection;
pub use query::ZeroRowQueries;
