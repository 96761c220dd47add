//! save-lead: everything `POST /v1/leads` decides and writes. The pure
//! modules (validation of the lead, which addresses may be geo-located, the
//! provider chain, the priority of geo sources, the normalized and hashed user
//! data each ad platform matches on) are tested natively; `store` is the SQL,
//! `endpoint` the request handling.

pub mod config;
pub mod conversions;
pub mod endpoint;
pub mod geo;
pub mod ip_api;
pub mod ip_scope;
pub mod lead;
pub mod locate;
pub mod normalize;
pub mod store;
pub mod subdivisions;
