//! save-lead, without I/O: what `POST /v1/leads` decides before it writes —
//! validation of the lead, which addresses may be geo-located, the priority of
//! geo sources, and the normalized, hashed user data each ad platform matches
//! on. Tested natively.

pub mod conversions;
pub mod geo;
pub mod ip_api;
pub mod ip_scope;
pub mod lead;
pub mod normalize;
pub mod subdivisions;
