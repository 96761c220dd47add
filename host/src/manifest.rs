//! `spin.toml` (manifest version 2): the subset of Spin's schema this
//! application uses, parsed as strictly as Spin does (unknown keys are errors).
//! Validation needs only [`crate::template`] (component variables name
//! declared application variables) and [`crate::schedule`] (cron
//! expressions); the manifest knows nothing of the runtime.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Deserialize;

use crate::schedule::parse_schedule;
use crate::template::template_references;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    spin_manifest_version: toml::Value,
    application: RawApplication,
    #[serde(default)]
    variables: BTreeMap<String, Variable>,
    #[serde(default)]
    trigger: RawTriggers,
    #[serde(default)]
    component: BTreeMap<String, RawComponent>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApplication {
    name: String,
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    authors: Vec<String>,
    #[serde(default)]
    trigger: Option<toml::Table>,
}

/// An application variable (`[variables]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Variable {
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    pub default: Option<String>,
    #[serde(default)]
    pub secret: bool,
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct RawTriggers {
    #[serde(default)]
    http: Vec<RawHttpTrigger>,
    #[serde(default)]
    cron: Vec<RawCronTrigger>,
    #[serde(flatten)]
    other: BTreeMap<String, toml::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttpTrigger {
    #[serde(default)]
    id: Option<String>,
    route: RawRoute,
    component: String,
    #[serde(default)]
    executor: Option<toml::Table>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawRoute {
    Path(String),
    Private { private: bool },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCronTrigger {
    #[serde(default)]
    id: Option<String>,
    component: String,
    cron_expression: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawComponent {
    #[serde(default)]
    description: Option<String>,
    source: String,
    #[serde(default)]
    allowed_outbound_hosts: Vec<String>,
    #[serde(default)]
    variables: BTreeMap<String, String>,
    #[serde(default)]
    environment: BTreeMap<String, String>,
    #[serde(default)]
    build: Option<toml::Table>,
    #[serde(default)]
    files: Vec<toml::Value>,
    #[serde(default)]
    exclude_files: Vec<String>,
    #[serde(default)]
    key_value_stores: Vec<String>,
    #[serde(default)]
    sqlite_databases: Vec<String>,
}

/// A validated manifest.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// The directory relative paths are resolved against.
    pub dir: PathBuf,
    pub name: String,
    pub version: Option<String>,
    pub variables: BTreeMap<String, Variable>,
    pub http_triggers: Vec<HttpTrigger>,
    pub cron_triggers: Vec<CronTrigger>,
    pub components: BTreeMap<String, Component>,
}

/// `[[trigger.http]]`; `route` is `None` for `{ private = true }`.
#[derive(Debug, Clone)]
pub struct HttpTrigger {
    pub route: Option<String>,
    pub component: String,
}

/// `[[trigger.cron]]` (the spin-trigger-cron plugin's schema).
#[derive(Debug, Clone)]
pub struct CronTrigger {
    pub component: String,
    pub cron_expression: String,
}

/// `[component.<id>]`.
#[derive(Debug, Clone)]
pub struct Component {
    pub id: String,
    pub source: PathBuf,
    pub allowed_outbound_hosts: Vec<String>,
    /// Component variables: templates over application variables.
    pub variables: BTreeMap<String, String>,
    pub environment: BTreeMap<String, String>,
}

impl Manifest {
    /// Reads and validates `path`. Errors say what is wrong and where.
    pub fn load(path: &Path) -> Result<Manifest> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read manifest {}", path.display()))?;
        let dir = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        let dir = if dir.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            dir
        };
        Self::parse(&text, dir).with_context(|| format!("{}", path.display()))
    }

    /// Parses manifest text; relative paths are resolved against `dir`.
    pub fn parse(text: &str, dir: PathBuf) -> Result<Manifest> {
        let raw: RawManifest = toml::from_str(text).map_err(|e| {
            anyhow::anyhow!("malformed manifest: {}", e.to_string().replace('\n', " "))
        })?;
        if raw.spin_manifest_version.as_integer() != Some(2) {
            bail!(
                "spin_manifest_version must be 2, got {}",
                raw.spin_manifest_version
            );
        }
        if let Some(table) = &raw.application.trigger {
            for (kind, cfg) in table {
                let base_is_root = cfg
                    .get("base")
                    .and_then(|b| b.as_str())
                    .is_none_or(|b| b == "/");
                if kind != "http" || !base_is_root {
                    bail!("[application.trigger.{kind}]: only `base = \"/\"` is supported (Spin deprecates `base`)");
                }
            }
        }
        let _ = (&raw.application.description, &raw.application.authors);
        if let Some(kind) = raw.trigger.other.keys().next() {
            bail!("trigger type `{kind}` is not supported by the local host (http and cron are)");
        }
        for (name, var) in &raw.variables {
            check_snake_id(name).with_context(|| format!("variable `{name}`"))?;
            if var.required == var.default.is_some() {
                bail!("variable `{name}` must be `required` OR have a `default`");
            }
            let _ = &var.description;
        }

        let mut components = BTreeMap::new();
        for (id, c) in raw.component {
            check_kebab_id(&id).with_context(|| format!("component `{id}`"))?;
            let _ = (&c.description, &c.build, &c.exclude_files);
            if !c.files.is_empty()
                || !c.key_value_stores.is_empty()
                || !c.sqlite_databases.is_empty()
            {
                bail!("component `{id}`: files, key_value_stores and sqlite_databases are not supported by the local host");
            }
            for name in c.variables.keys() {
                check_snake_id(name)
                    .with_context(|| format!("component `{id}`: variable `{name}`"))?;
            }
            for (name, template) in &c.variables {
                for reference in template_references(template)
                    .with_context(|| format!("component `{id}`: variable `{name}`"))?
                {
                    if !raw.variables.contains_key(&reference) {
                        bail!("component `{id}`: variable `{name}`: invalid variable template: unknown variable \"{reference}\"");
                    }
                }
            }
            components.insert(
                id.clone(),
                Component {
                    source: dir.join(&c.source),
                    id,
                    allowed_outbound_hosts: c.allowed_outbound_hosts,
                    variables: c.variables,
                    environment: c.environment,
                },
            );
        }

        let mut http_triggers = Vec::new();
        for t in raw.trigger.http {
            let _ = (&t.id, &t.executor);
            if t.executor.is_some() {
                bail!(
                    "[[trigger.http]] for `{}`: only the default executor is supported",
                    t.component
                );
            }
            if !components.contains_key(&t.component) {
                bail!(
                    "[[trigger.http]] names component `{}`, which is not defined",
                    t.component
                );
            }
            let route = match t.route {
                RawRoute::Path(p) => Some(p),
                RawRoute::Private { private: true } => None,
                RawRoute::Private { private: false } => bail!(
                    "route must be a string pattern or '{{ private = true }}': '{}' has {{ private = false }}",
                    t.component
                ),
            };
            http_triggers.push(HttpTrigger {
                route,
                component: t.component,
            });
        }
        let mut cron_triggers = Vec::new();
        for t in raw.trigger.cron {
            let _ = &t.id;
            if !components.contains_key(&t.component) {
                bail!(
                    "[[trigger.cron]] names component `{}`, which is not defined",
                    t.component
                );
            }
            parse_schedule(&t.cron_expression)
                .with_context(|| format!("[[trigger.cron]] for `{}`", t.component))?;
            cron_triggers.push(CronTrigger {
                component: t.component,
                cron_expression: t.cron_expression,
            });
        }

        Ok(Manifest {
            dir,
            name: raw.application.name,
            version: raw.application.version,
            variables: raw.variables,
            http_triggers,
            cron_triggers,
            components,
        })
    }
}

/// Spin's variable names: lower-case `_`-separated words of ASCII letters and
/// digits, each starting with a letter.
pub fn check_snake_id(name: &str) -> Result<()> {
    check_id(name, '_', '-')
}

/// Spin's component ids: the same rules with `-` as the separator.
fn check_kebab_id(id: &str) -> Result<()> {
    check_id(id, '-', '_')
}

fn check_id(name: &str, sep: char, wrong_sep: char) -> Result<()> {
    if name.is_empty() {
        bail!("name must not be empty");
    }
    for word in name.split(sep) {
        if word.is_empty() {
            bail!("'{sep}'-separated words must not be empty");
        }
        if let Some(c) = word.chars().find(|c| !c.is_ascii_alphanumeric()) {
            if c == wrong_sep {
                bail!("words must be separated with '{sep}', not '{wrong_sep}'");
            }
            bail!("'{sep}'-separated words may only contain alphanumeric ASCII; got {c:?}");
        }
        if !word.starts_with(|c: char| c.is_ascii_alphabetic()) {
            bail!("'{sep}'-separated words must start with an ASCII letter");
        }
        if word.chars().any(|c| c.is_ascii_uppercase()) {
            bail!("identifiers must be lower-case");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Manifest> {
        Manifest::parse(text, PathBuf::from("."))
    }

    const MINIMAL: &str = r#"
spin_manifest_version = 2
[application]
name = "app"
[variables]
db = { required = true, secret = true }
greeting = { default = "hi" }
[[trigger.http]]
route = "/hello"
component = "hello"
[component.hello]
source = "hello.wasm"
allowed_outbound_hosts = ["postgres://{{ db }}"]
[component.hello.variables]
database_url = "postgres://{{ db }}/x"
"#;

    #[test]
    fn parses_a_minimal_manifest() {
        let m = parse(MINIMAL).unwrap();
        assert_eq!(m.name, "app");
        assert_eq!(m.http_triggers[0].route.as_deref(), Some("/hello"));
        assert!(m.variables["db"].required);
        assert_eq!(
            m.components["hello"].variables["database_url"],
            "postgres://{{ db }}/x"
        );
    }

    #[test]
    fn rejects_unknown_keys_versions_and_bad_variables() {
        let e =
            parse(&MINIMAL.replace("name = \"app\"", "name = \"app\"\ncolour = 1")).unwrap_err();
        assert!(e.to_string().contains("unknown field `colour`"), "{e}");
        let e = parse(&MINIMAL.replace("= 2", "= 1")).unwrap_err();
        assert!(
            e.to_string().contains("spin_manifest_version must be 2"),
            "{e}"
        );
        let e = parse(&MINIMAL.replace(
            "greeting = { default",
            "greeting = { required = true, default",
        ))
        .unwrap_err();
        assert!(
            e.to_string()
                .contains("must be `required` OR have a `default`"),
            "{e}"
        );
        let e = parse(&MINIMAL.replace("{{ db }}/x", "{{ nope }}/x")).unwrap_err();
        assert!(e.to_string().contains("unknown variable \"nope\""), "{e}");
        let e =
            parse(&MINIMAL.replace("component = \"hello\"", "component = \"other\"")).unwrap_err();
        assert!(
            e.to_string().contains("`other`, which is not defined"),
            "{e}"
        );
    }

    #[test]
    fn rejects_five_field_cron_expressions() {
        let text = format!(
            "{MINIMAL}\n[[trigger.cron]]\ncomponent = \"hello\"\ncron_expression = \"0 3 * * *\"\n"
        );
        let e = parse(&text).unwrap_err();
        assert!(format!("{e:#}").contains("cron"), "{e:#}");
        let ok = text.replace("\"0 3 * * *\"", "\"0 0 3 * * *\"");
        assert_eq!(parse(&ok).unwrap().cron_triggers.len(), 1);
    }

    #[test]
    fn variable_names_follow_spin() {
        assert!(check_snake_id("database_url").is_ok());
        assert!(check_snake_id("a1_b2").is_ok());
        assert!(check_snake_id("Database").is_err());
        assert!(check_snake_id("db-url").is_err());
        assert!(check_snake_id("1db").is_err());
        assert!(check_snake_id("db__url").is_err());
        assert!(check_kebab_id("save-lead").is_ok());
        assert!(check_kebab_id("save_lead").is_err());
    }
}
