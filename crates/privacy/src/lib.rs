//! Privacy and the data lifecycle (docs/PRIVACY.md): the nightly retention
//! of every table that grows (`retention`), and erasing or exporting one
//! person of a client (`person` reads the request, `requests` runs it). The
//! set-based work is SQL (migrations/V21: `retention_delete_batch`,
//! `privacy_erase`, `privacy_export`); this crate decides what to ask for.

pub mod person;
pub mod requests;
pub mod retention;

pub use person::Person;
pub use retention::Retention;
