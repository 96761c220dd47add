//! What every component of the application shares: the one error type and
//! JSON responses, Spin variables, reading requests (query strings, headers,
//! the visitor's IP, which origins belong to a client, CORS), the database
//! connection, job runs, admin authentication and outbound HTTP with a
//! deadline.
//!
//! Kept free of business logic: domain crates sit beside this one.

pub mod auth;
pub mod client_ip;
pub mod cors;
pub mod db;
pub mod error;
pub mod ids;
pub mod jobs;
pub mod json;
pub mod outbound;
pub mod query;
pub mod request;
pub mod respond;
pub mod site;
pub mod vars;

pub use error::ApiError;

/// The application version reported by `/healthz` and recorded with job runs.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
