//! A small local host for Spin applications, on wasmtime: it reads the
//! application's `spin.toml` and runs the same `.wasm` components Spin runs
//! (HTTP routes, cron triggers, variables, outbound Postgres and HTTP with
//! `allowed_outbound_hosts` enforced). It is the dev server and the test
//! harness; production runs on Spin itself.
//!
//! Like Spin's factor crates, each capability is a module of its own, and
//! [`state`] wires them into one component instance. The modules, in
//! dependency order (each uses only modules above it; no cycles):
//!
//! | module | owns |
//! |---|---|
//! | [`template`] | `{{ name }}` templates: references, expansion |
//! | [`schedule`] | cron expressions as the cron trigger parses them |
//! | [`allowed_hosts`] | `allowed_outbound_hosts`: syntax and the literal host check |
//! | [`routes`] | HTTP route matching |
//! | [`migrate`] | the SQL migrations (`spin-local migrate`) |
//! | [`manifest`] | `spin.toml`, parsed and validated (uses `template`, `schedule`) |
//! | [`variables::resolve`] | application variables and component values (uses `manifest`, `template`) |
//! | [`postgres::pool`] | Postgres addresses, allowed hosts, TLS refusal, pools, pool hygiene |
//! | [`postgres::probe`] | the start-up check that every Postgres URL answers |
//! | [`bindings`] | the WIT bindings; names `postgres::pool::Connection` as the connection resource |
//! | [`postgres::types`] | tokio-postgres ⇄ `spin:postgres@4.0.0` types and errors |
//! | [`postgres::query`] | `query`/`execute`, the zero-row refusal ([`ZeroRowQueries`]) |
//! | [`postgres::host`] | the `spin:postgres` interface on a [`postgres::PostgresView`] |
//! | [`variables::host`] | the `spin:variables` interface on a [`variables::host::VariablesView`] |
//! | [`outbound_http`] | the `wasi:http` `send_request` hook (allowed hosts, `http-request-denied`) |
//! | [`state`] | one instance's state; gives each capability its view; the linker |
//! | [`app`] | loading: engine, components compiled and pre-instantiated, stores |
//! | [`server`] | the HTTP trigger: Spin's headers, 404/500, an instance per request |
//! | [`cron`] | the cron trigger: schedules, one run of a cron component |
//!
//! The capability modules never name [`state::InstanceState`]: they
//! implement their interface on a view that `state` builds, so a capability
//! can be read, tested and changed on its own. The manifest knows nothing of
//! the runtime.

// The Postgres error type is fixed by the WIT interface it implements.
#![allow(clippy::result_large_err)]

pub mod allowed_hosts;
pub mod app;
pub mod bindings;
pub mod cron;
pub mod manifest;
pub mod migrate;
pub mod outbound_http;
pub mod postgres;
pub mod routes;
pub mod schedule;
pub mod server;
pub mod state;
pub mod template;
pub mod variables;

pub use app::{App, LoadOptions};
pub use postgres::ZeroRowQueries;
pub use variables::VariableSources;
