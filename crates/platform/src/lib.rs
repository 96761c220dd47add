//! What every component of the application shares: the application version,
//! JSON responses and errors, the database connection, job runs, and outbound
//! HTTP with a deadline.
//!
//! Kept free of business logic: domain crates sit beside this one.

pub mod auth;
pub mod cors;
pub mod db;
pub mod ids;
pub mod jobs;
pub mod outbound;
pub mod respond;

/// The application version reported by `/healthz` and recorded with job runs.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
