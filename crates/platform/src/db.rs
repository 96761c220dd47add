//! The Postgres connection, opened through Spin's `spin:postgres/postgres@4.0.0`.
//!
//! The address comes from the Spin variable `database_url` (declared for every
//! component that uses the database), never from code.

use spin_sdk::pg4::{Connection, PgError, QueryError};

/// Why the database could not be used, in words fit for a JSON error or a job run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbError(pub String);

impl std::fmt::Display for DbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DbError {}

impl DbError {
    /// Whether the database could not be reached (as opposed to a statement
    /// that failed): the first is a 503, the second a 500.
    pub fn is_unavailable(&self) -> bool {
        self.0.starts_with("connection failed") || self.0.starts_with("variable database_url")
    }
}

impl From<PgError> for DbError {
    fn from(e: PgError) -> Self {
        DbError(describe(&e))
    }
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
        .map_err(|e| DbError(format!("variable database_url: {e}")))?;
    Ok(Connection::open(&url)?)
}
