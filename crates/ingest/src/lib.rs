//! Event ingest: everything `POST /v1/events` decides and writes. The pure
//! modules (request and per-event validation, attribution from the page URL
//! and referrer, device from the user agent, server-side sessionization) are
//! tested natively; `store` is the SQL, `endpoint` the request handling.

pub mod attribution;
pub mod batch;
pub mod bots;
pub mod config;
pub mod consent;
pub mod device;
pub mod endpoint;
pub mod sessions;
pub mod store;

pub use batch::{parse_batch, validate_event, Batch, EventRow, Rejection};
