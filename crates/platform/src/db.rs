//! The Postgres connection, opened through Spin's `spin:postgres/postgres@4.0.0`.
//!
//! The address comes from the Spin variable `database_url` (declared for every
//! component that uses the database), never from code.

use spin_sdk::pg4::{Connection, PgError, QueryError};

/// Why the database could not be used, in words fit for a JSON error or a
/// job run, and whether it could not be reached at all (a 503 the caller may
/// retry) or a statement failed (a 500).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbError {
    message: String,
    unavailable: bool,
}

impl std::fmt::Display for DbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for DbError {}

impl DbError {
    /// A statement failed or answered something unexpected.
    pub fn failed(message: impl Into<String>) -> DbError {
        DbError {
            message: message.into(),
            unavailable: false,
        }
    }

    /// The database could not be reached (or its address is not configured).
    pub fn unavailable(message: impl Into<String>) -> DbError {
        DbError {
            message: message.into(),
            unavailable: true,
        }
    }

    /// Whether the database could not be reached (as opposed to a statement
    /// that failed): the first is a 503, the second a 500.
    pub fn is_unavailable(&self) -> bool {
        self.unavailable
    }
}

impl From<PgError> for DbError {
    fn from(e: PgError) -> Self {
        let message = describe(&e);
        match e {
            PgError::ConnectionFailed(_) => DbError::unavailable(message),
            _ => DbError::failed(message),
        }
    }
}

/// A value that could not be decoded is a failed statement; a wrapped
/// Postgres error keeps its kind.
impl From<spin_sdk::pg4::Error> for DbError {
    fn from(e: spin_sdk::pg4::Error) -> Self {
        match e {
            spin_sdk::pg4::Error::PgError(pg) => DbError::from(pg),
            other => DbError::failed(other.to_string()),
        }
    }
}

/// Whether `e` (or an error it wraps) says the database could not be reached.
pub fn is_unavailable(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause
            .downcast_ref::<DbError>()
            .is_some_and(DbError::is_unavailable)
            || matches!(
                cause.downcast_ref::<PgError>(),
                Some(PgError::ConnectionFailed(_))
            )
    })
}

/// A one-line description of a Postgres error.
pub fn describe(e: &PgError) -> String {
    match e {
        PgError::ConnectionFailed(m) => format!("connection failed: {m}"),
        PgError::BadParameter(m) => format!("bad parameter: {m}"),
        PgError::QueryFailed(QueryError::Text(m)) => format!("query failed: {m}"),
        PgError::QueryFailed(QueryError::DbError(d)) => {
            format!("query failed: {} ({} {})", d.message, d.severity, d.code)
        }
        PgError::ValueConversionFailed(m) => format!("value conversion failed: {m}"),
        PgError::Other(m) => m.clone(),
    }
}

/// Opens a connection to the application database.
pub fn connect() -> Result<Connection, DbError> {
    let url = spin_sdk::variables::get("database_url")
        .map_err(|e| DbError::unavailable(format!("variable database_url: {e}")))?;
    Ok(Connection::open(&url)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn unreachable_is_told_apart_from_a_failed_statement() {
        let down = DbError::from(PgError::ConnectionFailed("refused".into()));
        assert!(down.is_unavailable());
        assert_eq!(down.to_string(), "connection failed: refused");
        let failed = DbError::from(PgError::QueryFailed(QueryError::Text("syntax".into())));
        assert!(!failed.is_unavailable());
        assert!(!DbError::failed("no row").is_unavailable());
    }

    #[test]
    fn unavailability_is_found_through_context() {
        let e = anyhow::Error::from(PgError::ConnectionFailed("refused".into()));
        assert!(is_unavailable(&e.context("rolling up 2026-11-30")));
        let e: anyhow::Result<()> = Err(DbError::unavailable("no address")).context("a job");
        assert!(is_unavailable(&e.unwrap_err()));
        let e: anyhow::Result<()> = Err(DbError::failed("bad")).context("a job");
        assert!(!is_unavailable(&e.unwrap_err()));
        assert!(!is_unavailable(&anyhow::anyhow!(
            "connection failed: in words only"
        )));
    }
}
