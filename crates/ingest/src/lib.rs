//! Event ingest, without I/O: everything `POST /v1/events` decides before it
//! writes — request validation, per-event validation, attribution from the
//! page URL and referrer, device from the user agent, the client IP and how
//! it is stored, and server-side sessionization. Tested natively.

pub mod attribution;
pub mod batch;
pub mod client_ip;
pub mod device;
pub mod sessions;
pub mod site;

pub use batch::{parse_batch, validate_event, Batch, EventRow, Rejection, RequestError};
