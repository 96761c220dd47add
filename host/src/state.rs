//! What one component instance sees of the host: WASI, outgoing HTTP checked
//! against `allowed_outbound_hosts`, Postgres and its variables.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use http_body_util::BodyExt;
use wasmtime::component::{Resource, ResourceTable};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{
    RequestOptions, WasiBody, WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks, WasiHttpView,
};

use crate::bindings::{pg, variables};
use crate::outbound::AllowedHosts;
use crate::pg::{Connection, PgPools};

/// A component as configured for this run: its id, resolved variables and outbound rules.
#[derive(Debug)]
pub struct ComponentConfig {
    pub id: String,
    pub variables: HashMap<String, String>,
    pub environment: Vec<(String, String)>,
    pub allowed_hosts: Arc<AllowedHosts>,
}

/// The data of one component instance's store.
pub struct InstanceState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    hooks: OutboundHttp,
    component: Arc<ComponentConfig>,
    pg: Arc<PgPools>,
}

impl InstanceState {
    pub fn new(component: Arc<ComponentConfig>, pg: Arc<PgPools>) -> Self {
        let mut wasi = WasiCtx::builder();
        wasi.inherit_stdout().inherit_stderr();
        for (k, v) in &component.environment {
            wasi.env(k, v);
        }
        InstanceState {
            wasi: wasi.build(),
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            hooks: OutboundHttp {
                allowed: component.allowed_hosts.clone(),
            },
            component,
            pg,
        }
    }
}

impl WasiView for InstanceState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for InstanceState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

/// Outgoing HTTP: like Spin, a request to a host the component may not reach
/// fails with `http-request-denied` when the guest awaits the response.
struct OutboundHttp {
    allowed: Arc<AllowedHosts>,
}

type SendFuture = Box<
    dyn Future<
            Output = wasmtime_wasi_http::Result<(
                http::Response<WasiBody>,
                Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
            )>,
        > + Send,
>;

impl WasiHttpHooks for OutboundHttp {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
    ) -> SendFuture {
        let uri = request.uri();
        let scheme = uri.scheme_str().unwrap_or("https").to_string();
        let host = uri.host().unwrap_or_default().to_string();
        let port = uri.port_u16();
        if !self.allowed.allows(&scheme, &host, port) {
            let authority = uri.authority().map(|a| a.to_string()).unwrap_or_default();
            eprintln!(
                "A component tried to make an outbound network connection to disallowed destination '{scheme}://{authority}'."
            );
            return Box::new(async { Err(wasmtime_wasi_http::Error::HttpRequestDenied) });
        }
        Box::new(async move {
            let (response, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
            Ok((
                response.map(|b| b.boxed_unsync()),
                Box::new(io) as Box<dyn Future<Output = _> + Send>,
            ))
        })
    }
}

impl variables::Host for InstanceState {
    async fn get(&mut self, name: String) -> wasmtime::Result<Result<String, variables::Error>> {
        Ok(
            crate::variables::get(&self.component.id, &self.component.variables, &name).map_err(
                |e| match e {
                    crate::variables::GetError::InvalidName(m) => variables::Error::InvalidName(m),
                    crate::variables::GetError::Undefined(m) => variables::Error::Undefined(m),
                },
            ),
        )
    }
}

impl pg::Host for InstanceState {}

impl pg::HostConnection for InstanceState {
    async fn open(
        &mut self,
        address: String,
    ) -> wasmtime::Result<Result<Resource<Connection>, pg::Error>> {
        match self.pg.open(&address, &self.component.allowed_hosts).await {
            Ok(conn) => Ok(Ok(self.table.push(conn)?)),
            Err(e) => Ok(Err(e)),
        }
    }

    async fn query(
        &mut self,
        conn: Resource<Connection>,
        statement: String,
        params: Vec<pg::ParameterValue>,
    ) -> wasmtime::Result<Result<pg::RowSet, pg::Error>> {
        Ok(self.table.get_mut(&conn)?.query(&statement, params).await)
    }

    async fn execute(
        &mut self,
        conn: Resource<Connection>,
        statement: String,
        params: Vec<pg::ParameterValue>,
    ) -> wasmtime::Result<Result<u64, pg::Error>> {
        Ok(self.table.get_mut(&conn)?.execute(&statement, params).await)
    }

    async fn drop(&mut self, conn: Resource<Connection>) -> wasmtime::Result<()> {
        self.table.delete(conn)?;
        Ok(())
    }
}
