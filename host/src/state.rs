//! What one component instance sees of the host, wiring the capability
//! modules together: WASI, outgoing HTTP ([`crate::outbound_http`]),
//! variables ([`crate::variables::host`]) and Postgres
//! ([`crate::postgres`]), each given its view of the instance's state.

use std::collections::HashMap;
use std::sync::Arc;

use wasmtime::component::{Linker, ResourceTable};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::allowed_hosts::AllowedHosts;
use crate::outbound_http::OutboundHttp;
use crate::postgres::{self, Postgres, PostgresView};
use crate::variables::host::{self as variables, VariablesView};

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
    pg: Arc<Postgres>,
}

impl InstanceState {
    pub fn new(component: Arc<ComponentConfig>, pg: Arc<Postgres>) -> Self {
        let mut wasi = WasiCtx::builder();
        wasi.inherit_stdout().inherit_stderr();
        for (k, v) in &component.environment {
            wasi.env(k, v);
        }
        InstanceState {
            wasi: wasi.build(),
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            hooks: OutboundHttp::new(component.allowed_hosts.clone()),
            component,
            pg,
        }
    }

    fn variables(&mut self) -> VariablesView<'_> {
        VariablesView {
            component: &self.component.id,
            values: &self.component.variables,
        }
    }

    fn postgres(&mut self) -> PostgresView<'_> {
        PostgresView {
            postgres: &self.pg,
            allowed_hosts: &self.component.allowed_hosts,
            table: &mut self.table,
        }
    }
}

/// Adds every interface a component may import to `linker`: WASI p2,
/// `wasi:http`, Spin's variables and Postgres.
pub fn add_to_linker(linker: &mut Linker<InstanceState>) -> wasmtime::Result<()> {
    wasmtime_wasi::p2::add_to_linker_async(linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(linker)?;
    postgres::host::add_to_linker(linker, InstanceState::postgres)?;
    variables::add_to_linker(linker, InstanceState::variables)?;
    Ok(())
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
