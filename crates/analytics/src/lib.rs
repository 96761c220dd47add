//! Widget analytics (seed 001): what a client's dashboard shows, and the
//! nightly job that keeps it cheap to read and storage bounded.
//!
//! - [`params`]: the read API's query parameters, validated (natively tested);
//! - [`cursor`]: the signed, opaque `sessions` cursor (natively tested);
//! - [`read`]: the read endpoints, one function each component calls;
//! - [`job`]: the nightly rollup + retention and the backfill.
//!
//! The figures themselves are SQL (migrations/V10, reworked by V15 for each
//! client's time zone): the same function computes a local day for the
//! rollup and for "today" in the read API.

pub mod cursor;
pub mod job;
pub mod params;
pub mod read;
