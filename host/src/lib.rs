//! A small local host for Spin applications, on wasmtime: it reads the
//! application's `spin.toml` and runs the same `.wasm` components Spin runs
//! (HTTP routes, cron triggers, variables, outbound Postgres and HTTP with
//! `allowed_outbound_hosts` enforced). It is the dev server and the test
//! harness; production runs on Spin itself.

// The Postgres error type is fixed by the WIT interface it implements.
#![allow(clippy::result_large_err)]

pub mod app;
pub mod bindings;
pub mod cron;
pub mod manifest;
pub mod migrate;
pub mod outbound;
pub mod pg;
pub mod routes;
pub mod server;
pub mod state;
pub mod variables;

pub use app::{App, LoadOptions};
pub use pg::ZeroRowQueries;
pub use variables::VariableSources;
