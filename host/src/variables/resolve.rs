//! Application and component variables, resolved like Spin: an explicit
//! value (`--variable`), else the environment variable `SPIN_VARIABLE_<NAME>`,
//! else the manifest's default. A required variable nobody provides stops the
//! start-up, as it stops `spin up`. A component's variables, and its
//! `allowed_outbound_hosts`, are templates over the resolved values.

use std::collections::{BTreeMap, HashMap};

use anyhow::{bail, Result};

use crate::manifest::Manifest;
use crate::template::expand_template;

/// Where variable values come from besides the manifest's defaults.
#[derive(Debug, Clone, Default)]
pub struct VariableSources {
    /// Explicit values (the `--variable name=value` flags); win over everything.
    pub explicit: HashMap<String, String>,
    /// The environment, read for `SPIN_VARIABLE_<NAME>`.
    pub env: HashMap<String, String>,
}

impl VariableSources {
    /// The process environment and the given explicit values.
    pub fn from_process(explicit: HashMap<String, String>) -> Self {
        VariableSources {
            explicit,
            env: std::env::vars().collect(),
        }
    }
}

/// Resolved application variables.
#[derive(Debug, Clone, Default)]
pub struct AppVariables {
    values: BTreeMap<String, String>,
}

impl AppVariables {
    /// Resolves every application variable of `manifest`.
    pub fn resolve(manifest: &Manifest, sources: &VariableSources) -> Result<Self> {
        if let Some(name) = sources
            .explicit
            .keys()
            .find(|k| !manifest.variables.contains_key(*k))
        {
            bail!("--variable {name}: the manifest declares no application variable `{name}`");
        }
        let mut values = BTreeMap::new();
        let mut missing = Vec::new();
        for (name, decl) in &manifest.variables {
            let env_key = format!("SPIN_VARIABLE_{}", name.to_ascii_uppercase());
            let value = sources
                .explicit
                .get(name)
                .or_else(|| sources.env.get(&env_key))
                .cloned()
                .or_else(|| decl.default.clone());
            match value {
                Some(v) => {
                    values.insert(name.clone(), v);
                }
                None => missing.push(name.clone()),
            }
        }
        if !missing.is_empty() {
            let hint: Vec<String> = missing
                .iter()
                .map(|n| format!("SPIN_VARIABLE_{}", n.to_ascii_uppercase()))
                .collect();
            bail!(
                "no provider resolved required variable(s): {missing:?} (set {} or pass --variable)",
                hint.join(", ")
            );
        }
        Ok(AppVariables { values })
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.values.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Expands a `{{ name }}` template over these variables.
    pub fn expand(&self, template: &str) -> Result<String> {
        expand_template(template, |n| self.get(n).map(str::to_string))
    }

    /// A component's variables: its templates expanded.
    pub fn component_values(
        &self,
        templates: &BTreeMap<String, String>,
    ) -> Result<HashMap<String, String>> {
        templates
            .iter()
            .map(|(k, t)| Ok((k.clone(), self.expand(t)?)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn manifest() -> Manifest {
        Manifest::parse(
            r#"
spin_manifest_version = 2
[application]
name = "app"
[variables]
db_url = { required = true, secret = true }
greeting = { default = "hi" }
"#,
            PathBuf::from("."),
        )
        .unwrap()
    }

    #[test]
    fn explicit_beats_env_beats_default() {
        let m = manifest();
        let mut sources = VariableSources::default();
        let e = AppVariables::resolve(&m, &sources).unwrap_err();
        assert!(
            e.to_string()
                .contains("no provider resolved required variable(s): [\"db_url\"]"),
            "{e}"
        );
        sources
            .env
            .insert("SPIN_VARIABLE_DB_URL".into(), "from-env".into());
        let v = AppVariables::resolve(&m, &sources).unwrap();
        assert_eq!(v.get("db_url"), Some("from-env"));
        assert_eq!(v.get("greeting"), Some("hi"));
        sources.explicit.insert("db_url".into(), "explicit".into());
        sources
            .env
            .insert("SPIN_VARIABLE_GREETING".into(), "hello".into());
        let v = AppVariables::resolve(&m, &sources).unwrap();
        assert_eq!(v.get("db_url"), Some("explicit"));
        assert_eq!(v.get("greeting"), Some("hello"));
    }
}
