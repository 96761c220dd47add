//! The application database, through Spin's `spin:postgres/postgres@4.0.0`.
//!
//! Every statement goes through [`Db`]:
//! - [`Db::execute`] for statements whose rows are not needed;
//! - [`Db::rows`], [`Db::row`], [`Db::one`] and [`Db::value`] for reads, each
//!   row read by column name into a `serde` type.
//!
//! Reads travel as one JSON array in exactly one row, whatever the statement
//! matches: under Spin 4.0.0–4.0.2 a `query` that returns no row never returns
//! (spinframework/spin#3671) and a guest cannot time a host call out, so the
//! application never issues one (clippy's `disallowed-methods` refuses a raw
//! `Connection::query` outside this module; the local host refuses zero-row
//! queries at run time). A side effect: `timestamptz` values arrive as
//! RFC 3339 text, which pg4 could not decode as a column.
//!
//! The address comes from the Spin variable `database_url` (declared for every
//! component that uses the database), never from code.

use serde::de::DeserializeOwned;
use spin_sdk::pg4::{Connection, Decode, ParameterValue, PgError, QueryError};

/// Why the database could not be used, in words fit for a JSON error or a
/// job run, and whether it could not be reached (or was too busy to answer:
/// a 503 the caller may retry) or a statement failed (a 500).
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

    /// Whether the database could not be reached or was too busy (as opposed
    /// to a statement that failed): the first is a 503, the second a 500.
    pub fn is_unavailable(&self) -> bool {
        self.unavailable
    }
}

/// SQLSTATEs that say "not now" rather than "this statement is wrong": the
/// connection was lost (class 08), the server is short of resources (53),
/// shutting down or cancelled the statement, e.g. at `statement_timeout`
/// (57), a serialization failure or deadlock (40001, 40P01), a lock not
/// available (55P03). Sending the same request again later may work.
pub fn is_transient(sqlstate: &str) -> bool {
    sqlstate.starts_with("08")
        || sqlstate.starts_with("53")
        || sqlstate.starts_with("57")
        || matches!(sqlstate, "40001" | "40P01" | "55P03")
}

/// Whether a client-side error text (Spin's `{:?}` of tokio-postgres' error,
/// e.g. `Error { kind: Closed, cause: None }`) says the connection was lost:
/// Postgres restarted or the network dropped it while the pooled connection
/// was handed out. Sending again later opens a new connection.
pub fn is_connection_lost(text: &str) -> bool {
    text.starts_with("Error { kind: Closed") || text.starts_with("Error { kind: Io")
}

impl From<PgError> for DbError {
    fn from(e: PgError) -> Self {
        let message = describe(&e);
        match e {
            PgError::ConnectionFailed(_) => DbError::unavailable(message),
            PgError::QueryFailed(QueryError::DbError(d)) if is_transient(&d.code) => {
                DbError::unavailable(message)
            }
            PgError::QueryFailed(QueryError::Text(t)) if is_connection_lost(&t) => {
                DbError::unavailable(message)
            }
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

/// `sql` as a statement that returns exactly one row: its rows as a JSON
/// array (in the statement's order), `[]` when there are none. A statement
/// with `INSERT/UPDATE/DELETE ... RETURNING` works too (a data-modifying CTE
/// at the top level).
pub fn as_one_row(sql: &str) -> String {
    format!("WITH r AS (\n{sql}\n) SELECT coalesce(json_agg(r), '[]')::text FROM r")
}

/// An optional text parameter: the text, or SQL NULL.
pub fn text_or_null(v: Option<&str>) -> ParameterValue {
    v.map_or(ParameterValue::DbNull, |s| {
        ParameterValue::Str(s.to_string())
    })
}

/// A connection to the application database.
pub struct Db {
    conn: Connection,
}

/// Opens a connection to the application database.
pub fn connect() -> Result<Db, DbError> {
    let url = spin_sdk::variables::get("database_url")
        .map_err(|e| DbError::unavailable(format!("variable database_url: {e}")))?;
    Ok(Db {
        conn: Connection::open(&url)?,
    })
}

impl Db {
    /// Runs a statement whose rows, if any, are not needed; returns the
    /// number of rows it affected.
    pub fn execute(&self, sql: &str, params: &[ParameterValue]) -> Result<u64, DbError> {
        Ok(self.conn.execute(sql, params)?)
    }

    /// Every row of `sql`, each read by column name into a `T` (unnamed
    /// columns need an alias). Never a zero-row query: see the module docs.
    pub fn rows<T: DeserializeOwned>(
        &self,
        sql: &str,
        params: &[ParameterValue],
    ) -> Result<Vec<T>, DbError> {
        // The one place a query is sent, and it always returns one row.
        #[allow(clippy::disallowed_methods)]
        let set = self.conn.query(&as_one_row(sql), params)?;
        let text = match set.rows.first().and_then(|r| r.first()) {
            Some(v) => String::decode(v)?,
            None => return Err(DbError::failed("the wrapped statement returned no row")),
        };
        serde_json::from_str(&text).map_err(|e| DbError::failed(format!("reading the rows: {e}")))
    }

    /// The first row of `sql`, if it has one.
    pub fn row<T: DeserializeOwned>(
        &self,
        sql: &str,
        params: &[ParameterValue],
    ) -> Result<Option<T>, DbError> {
        Ok(self.rows(sql, params)?.into_iter().next())
    }

    /// The first row of a statement that always returns one (an aggregate, a
    /// function returning one row); an error if it returned none.
    pub fn one<T: DeserializeOwned>(
        &self,
        sql: &str,
        params: &[ParameterValue],
    ) -> Result<T, DbError> {
        self.row(sql, params)?
            .ok_or_else(|| DbError::failed("the statement returned no row"))
    }

    /// The value of the only column of the first row (`SELECT count(*) ...`).
    pub fn value<T: DeserializeOwned>(
        &self,
        sql: &str,
        params: &[ParameterValue],
    ) -> Result<T, DbError> {
        // Read straight into `T`: a large value (a JSON document) is not
        // built as a tree first, so a `T` of `Box<RawValue>` stays text.
        let row: std::collections::BTreeMap<String, T> = self.one(sql, params)?;
        let mut values = row.into_values();
        match (values.next(), values.next()) {
            (Some(v), None) => Ok(v),
            _ => Err(DbError::failed("the statement must return one column")),
        }
    }

    /// Runs `work` in a transaction: committed if it returns `Ok`, rolled
    /// back otherwise.
    pub fn transaction<R, E: From<DbError>>(
        &self,
        work: impl FnOnce(&Db) -> Result<R, E>,
    ) -> Result<R, E> {
        self.execute("BEGIN", &[])?;
        match work(self) {
            Ok(r) => {
                self.execute("COMMIT", &[])?;
                Ok(r)
            }
            Err(e) => {
                let _ = self.execute("ROLLBACK", &[]);
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;
    use spin_sdk::pg4::DbError as PgDbError;

    fn sqlstate(code: &str) -> PgError {
        PgError::QueryFailed(QueryError::DbError(PgDbError {
            as_text: String::new(),
            severity: "ERROR".into(),
            code: code.into(),
            message: "m".into(),
            detail: None,
            extras: vec![],
        }))
    }

    #[test]
    fn unreachable_is_told_apart_from_a_failed_statement() {
        let down = DbError::from(PgError::ConnectionFailed("refused".into()));
        assert!(down.is_unavailable());
        assert_eq!(down.to_string(), "connection failed: refused");
        let failed = DbError::from(PgError::QueryFailed(QueryError::Text("syntax".into())));
        assert!(!failed.is_unavailable());
        // A pooled connection the server closed (a Postgres restart), as
        // Spin words it.
        for lost in [
            "Error { kind: Closed, cause: None }",
            "Error { kind: Io, cause: Some(Os { code: 104, kind: ConnectionReset, message: \"Connection reset by peer\" }) }",
        ] {
            let e = DbError::from(PgError::QueryFailed(QueryError::Text(lost.into())));
            assert!(e.is_unavailable(), "{lost}");
        }
        let decode = "Error { kind: FromSql(0), cause: Some(WrongType) }";
        assert!(
            !DbError::from(PgError::QueryFailed(QueryError::Text(decode.into()))).is_unavailable()
        );
        assert!(!DbError::failed("no row").is_unavailable());
    }

    #[test]
    fn a_cancelled_or_blocked_statement_is_worth_retrying() {
        for code in [
            "57014", "57P01", "08006", "53300", "40001", "40P01", "55P03",
        ] {
            assert!(DbError::from(sqlstate(code)).is_unavailable(), "{code}");
        }
        for code in ["22P02", "23505", "42601", "P0001"] {
            assert!(!DbError::from(sqlstate(code)).is_unavailable(), "{code}");
        }
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

    #[test]
    fn every_read_is_one_row_of_json() {
        let sql = as_one_row("SELECT id FROM t WHERE false ORDER BY id");
        assert!(sql.starts_with("WITH r AS (\nSELECT id FROM t WHERE false ORDER BY id\n)"));
        assert!(sql.ends_with("SELECT coalesce(json_agg(r), '[]')::text FROM r"));
    }
}
