//! Loading an application: manifest, variables, components compiled and
//! pre-instantiated once, so each request or cron tick gets a fresh instance
//! cheaply, as under Spin.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};
use wasmtime::component::{Component, Linker};
use wasmtime::{Engine, Store};
use wasmtime_wasi_http::p2::bindings::ProxyPre;

use crate::allowed_hosts::AllowedHosts;
use crate::bindings::cron::SpinCronPre;
use crate::manifest::Manifest;
use crate::postgres::{probe::check_databases, Postgres, ZeroRowQueries};
use crate::routes::Router;
use crate::state::{self, ComponentConfig, InstanceState};
use crate::variables::{AppVariables, VariableSources};

/// How to load the application.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    pub variables: VariableSources,
    /// Connect once to every Postgres URL among the application variables
    /// and fail the start-up if one does not answer.
    pub check_databases: bool,
    /// Whether a Postgres `query` that returns no row fails (the default:
    /// Spin 4.0.0–4.0.2 hang on it) or answers the empty set.
    pub zero_row_queries: ZeroRowQueries,
}

pub(crate) struct HttpComponent {
    pub pre: ProxyPre<InstanceState>,
    pub config: Arc<ComponentConfig>,
}

pub(crate) struct CronComponent {
    pub pre: SpinCronPre<InstanceState>,
    pub config: Arc<ComponentConfig>,
}

/// A loaded application, ready to serve and to run cron jobs.
pub struct App {
    pub manifest: Manifest,
    pub variables: AppVariables,
    pub(crate) engine: Engine,
    pub(crate) router: Router,
    pub(crate) http: HashMap<String, HttpComponent>,
    pub(crate) cron: HashMap<String, CronComponent>,
    pub(crate) pg: Arc<Postgres>,
}

/// The engine: async host calls, the pooling allocator when the machine
/// allows it, and wasmtime's on-disk compilation cache.
fn engine() -> Result<Engine> {
    let mut config = wasmtime::Config::new();
    config.wasm_component_model(true);
    if let Ok(cache) = wasmtime::Cache::from_file(None) {
        config.cache(Some(cache));
    }
    let mut pooled = config.clone();
    let mut pooling = wasmtime::PoolingAllocationConfig::new();
    pooling
        .total_component_instances(1000)
        .total_memories(1000)
        .total_tables(1000)
        .max_memory_size(256 << 20);
    pooled.allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(pooling));
    Ok(Engine::new(&pooled).or_else(|_| Engine::new(&config))?)
}

impl App {
    /// Loads the application at `manifest_path`. Every error is one line
    /// saying what is wrong and where.
    pub async fn load(manifest_path: &Path, options: LoadOptions) -> Result<Arc<App>> {
        let manifest = Manifest::load(manifest_path)?;
        let variables = AppVariables::resolve(&manifest, &options.variables)
            .with_context(|| manifest_path.display().to_string())?;
        if options.check_databases {
            check_databases(variables.iter()).await?;
        }

        let engine = engine()?;
        let mut linker = Linker::<InstanceState>::new(&engine);
        state::add_to_linker(&mut linker)?;

        let mut http = HashMap::new();
        let mut cron = HashMap::new();
        let mut compiled: HashMap<String, (Component, Arc<ComponentConfig>)> = HashMap::new();
        let triggered = manifest
            .http_triggers
            .iter()
            .map(|t| (t.component.as_str(), true))
            .chain(
                manifest
                    .cron_triggers
                    .iter()
                    .map(|t| (t.component.as_str(), false)),
            );
        for (id, is_http) in triggered {
            if !compiled.contains_key(id) {
                let loaded = load_component(&engine, &manifest, &variables, id)?;
                compiled.insert(id.to_string(), loaded);
            }
            let (component, config) = &compiled[id];
            let pre = linker
                .instantiate_pre(component)
                .map_err(anyhow::Error::from)
                .with_context(|| format!("component `{id}`: cannot link it to the host"))?;
            if is_http {
                let pre = ProxyPre::new(pre).map_err(anyhow::Error::from).with_context(|| {
                    format!("component `{id}` is routed by [[trigger.http]] but does not export wasi:http/incoming-handler")
                })?;
                http.insert(
                    id.to_string(),
                    HttpComponent {
                        pre,
                        config: config.clone(),
                    },
                );
            } else {
                let pre = SpinCronPre::new(pre).map_err(anyhow::Error::from).with_context(|| {
                    format!("component `{id}` is scheduled by [[trigger.cron]] but does not export handle-cron-event")
                })?;
                cron.insert(
                    id.to_string(),
                    CronComponent {
                        pre,
                        config: config.clone(),
                    },
                );
            }
        }
        let router = Router::new(
            manifest
                .http_triggers
                .iter()
                .filter_map(|t| Some((t.route.as_deref()?, t.component.as_str()))),
        )?;
        Ok(Arc::new(App {
            manifest,
            variables,
            engine,
            router,
            http,
            cron,
            pg: Arc::new(Postgres::new(options.zero_row_queries)),
        }))
    }

    /// A fresh store for one instance of a component: a request or a cron tick.
    pub(crate) fn new_store(&self, config: &Arc<ComponentConfig>) -> Store<InstanceState> {
        Store::new(
            &self.engine,
            InstanceState::new(config.clone(), self.pg.clone()),
        )
    }
}

fn load_component(
    engine: &Engine,
    manifest: &Manifest,
    variables: &AppVariables,
    id: &str,
) -> Result<(Component, Arc<ComponentConfig>)> {
    let c = &manifest.components[id];
    if !c.source.exists() {
        bail!(
            "component `{id}`: source {} does not exist (build the components: scripts/build-components)",
            c.source.display()
        );
    }
    let component = Component::from_file(engine, &c.source).map_err(|e| {
        anyhow!(
            "component `{id}`: {} is not a valid component: {e}",
            c.source.display()
        )
    })?;
    let allowed: Vec<String> = c
        .allowed_outbound_hosts
        .iter()
        .map(|t| variables.expand(t))
        .collect::<Result<_>>()
        .with_context(|| format!("component `{id}`: allowed_outbound_hosts"))?;
    let allowed = AllowedHosts::parse(&allowed).with_context(|| format!("component `{id}`"))?;
    let values = variables
        .component_values(&c.variables)
        .with_context(|| format!("component `{id}`: variables"))?;
    let config = ComponentConfig {
        id: id.to_string(),
        variables: values,
        environment: c.environment.clone().into_iter().collect(),
        allowed_hosts: Arc::new(allowed),
    };
    Ok((component, Arc::new(config)))
}
