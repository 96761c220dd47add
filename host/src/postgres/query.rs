//! The statements a guest runs on its connection: `query` and `execute`,
//! with their parameters and results converted as Spin converts them
//! ([`super::types`]) and the transaction tracked for pool hygiene.
//!
//! Spin 4.0.0–4.0.2 never return from a `query` whose statement yields no
//! row (spinframework/spin#3671: the host waits for the column list, which it
//! only learns from the first row), and a guest cannot time a host call out.
//! The local host therefore refuses such a query by default with an error
//! naming the statement, so a test that reaches one fails instead of a
//! production request hanging. [`ZeroRowQueries::Allow`] turns the check off,
//! to run components written for a Spin without the bug (3.x, or a release
//! with spinframework/spin#3673).

use deadpool_postgres::Object;

use super::pool::Connection;
use super::types::{columns, param_refs, query_failed, row_values, to_sql_params};
use crate::bindings::pg::{Error, ParameterValue, QueryError, RowSet};

/// What `query` does with a statement that returns no row.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ZeroRowQueries {
    /// Fail it, naming the statement: Spin 4.0.0–4.0.2 would hang on it.
    #[default]
    Refuse,
    /// Return the empty row set, as Spin 3.x and fixed 4.x releases do.
    Allow,
}

/// `connection.query`.
pub async fn query(
    conn: &mut Connection,
    statement: &str,
    params: Vec<ParameterValue>,
    zero_rows: ZeroRowQueries,
) -> Result<RowSet, Error> {
    conn.track_transaction(statement);
    let params = to_sql_params(params, Error::BadParameter)?;
    let client = client(conn)?;
    let stmt = client.prepare(statement).await.map_err(query_failed)?;
    let rows = client
        .query(&stmt, &param_refs(&params))
        .await
        .map_err(query_failed)?;
    if rows.is_empty() && zero_rows == ZeroRowQueries::Refuse {
        return Err(zero_rows_refused(statement));
    }
    let mut out = Vec::with_capacity(rows.len());
    for row in &rows {
        out.push(row_values(row).map_err(query_failed)?);
    }
    Ok(RowSet {
        columns: columns(stmt.columns()),
        rows: out,
    })
}

/// `connection.execute`.
pub async fn execute(
    conn: &mut Connection,
    statement: &str,
    params: Vec<ParameterValue>,
) -> Result<u64, Error> {
    conn.track_transaction(statement);
    let params = to_sql_params(params, Error::ValueConversionFailed)?;
    client(conn)?
        .execute(statement, &param_refs(&params))
        .await
        .map_err(query_failed)
}

fn client(conn: &Connection) -> Result<&Object, Error> {
    conn.client()
        .ok_or_else(|| Error::Other("connection already closed".into()))
}

/// The error a zero-row `query` gets; it names the statement (shortened).
fn zero_rows_refused(statement: &str) -> Error {
    let mut shown: String = statement.split_whitespace().collect::<Vec<_>>().join(" ");
    if shown.chars().count() > 300 {
        shown = shown.chars().take(300).collect::<String>() + "…";
    }
    eprintln!("spin-local: refused a query that returned no row: {shown}");
    Error::QueryFailed(QueryError::Text(format!(
        "spin-local refused this query: it returned no row, and under Spin 4.0.0-4.0.2 a \
         query that returns no row never returns (spinframework/spin#3671); use execute, or \
         a statement that always returns one row (platform::db::Db): {shown}"
    )))
}
