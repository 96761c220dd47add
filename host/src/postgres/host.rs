//! `spin:postgres/postgres@4.0.0` for the guest: `connection.open` through
//! the pools ([`super::pool`]), `query` and `execute` ([`super::query`]),
//! each connection a resource in the instance's table. Errors opening a
//! connection are `connection-failed`, as under Spin.

use wasmtime::component::{HasData, Linker, Resource, ResourceTable};

use super::pool::{Connection, PgPools};
use super::query::{self, ZeroRowQueries};
use crate::allowed_hosts::AllowedHosts;
use crate::bindings::pg;

/// The Postgres capability as every instance of the application shares it:
/// the pools, and what `query` does with a statement that returns no row.
pub struct Postgres {
    pools: PgPools,
    zero_rows: ZeroRowQueries,
}

impl Postgres {
    pub fn new(zero_rows: ZeroRowQueries) -> Postgres {
        Postgres {
            pools: PgPools::default(),
            zero_rows,
        }
    }
}

/// What one instance's Postgres calls see: the shared pools, its
/// component's outbound rules, and its resource table.
pub struct PostgresView<'a> {
    pub postgres: &'a Postgres,
    pub allowed_hosts: &'a AllowedHosts,
    pub table: &'a mut ResourceTable,
}

/// Adds `spin:postgres/postgres` to `linker`, each instance seen through `view`.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    view: fn(&mut T) -> PostgresView<'_>,
) -> wasmtime::Result<()> {
    pg::add_to_linker::<T, PostgresHost>(linker, view)
}

struct PostgresHost;

impl HasData for PostgresHost {
    type Data<'a> = PostgresView<'a>;
}

impl pg::Host for PostgresView<'_> {}

impl pg::HostConnection for PostgresView<'_> {
    async fn open(
        &mut self,
        address: String,
    ) -> wasmtime::Result<Result<Resource<Connection>, pg::Error>> {
        match self.postgres.pools.open(&address, self.allowed_hosts).await {
            Ok(conn) => Ok(Ok(self.table.push(conn)?)),
            Err(message) => Ok(Err(pg::Error::ConnectionFailed(message))),
        }
    }

    async fn query(
        &mut self,
        conn: Resource<Connection>,
        statement: String,
        params: Vec<pg::ParameterValue>,
    ) -> wasmtime::Result<Result<pg::RowSet, pg::Error>> {
        let conn = self.table.get_mut(&conn)?;
        Ok(query::query(conn, &statement, params, self.postgres.zero_rows).await)
    }

    async fn execute(
        &mut self,
        conn: Resource<Connection>,
        statement: String,
        params: Vec<pg::ParameterValue>,
    ) -> wasmtime::Result<Result<u64, pg::Error>> {
        let conn = self.table.get_mut(&conn)?;
        Ok(query::execute(conn, &statement, params).await)
    }

    async fn drop(&mut self, conn: Resource<Connection>) -> wasmtime::Result<()> {
        self.table.delete(conn)?;
        Ok(())
    }
}
