//! `fermyon:spin/variables@2.0.0`, the guest's view of its component
//! variables: `get` checks the name as Spin does at run time, then answers
//! the component's resolved value or `undefined`.

use std::collections::HashMap;

use wasmtime::component::{HasData, Linker};

use crate::bindings::variables;

/// What one instance's `variables.get` sees: its component's id and values.
pub struct VariablesView<'a> {
    pub component: &'a str,
    pub values: &'a HashMap<String, String>,
}

/// Adds `fermyon:spin/variables` to `linker`, each instance seen through `view`.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    view: fn(&mut T) -> VariablesView<'_>,
) -> wasmtime::Result<()> {
    variables::add_to_linker::<T, Variables>(linker, view)
}

struct Variables;

impl HasData for Variables {
    type Data<'a> = VariablesView<'a>;
}

impl variables::Host for VariablesView<'_> {
    async fn get(&mut self, name: String) -> wasmtime::Result<Result<String, variables::Error>> {
        Ok(
            get(self.component, self.values, &name).map_err(|e| match e {
                GetError::InvalidName(m) => variables::Error::InvalidName(m),
                GetError::Undefined(m) => variables::Error::Undefined(m),
            }),
        )
    }
}

/// Why `variables.get` failed, as the guest sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GetError {
    InvalidName(String),
    Undefined(String),
}

/// `fermyon:spin/variables.get` for component `component`.
pub fn get(
    component: &str,
    values: &HashMap<String, String>,
    name: &str,
) -> Result<String, GetError> {
    validate_key(name).map_err(|e| GetError::InvalidName(format!("{name:?}: {e}")))?;
    values
        .get(name)
        .cloned()
        .ok_or_else(|| GetError::Undefined(format!("no variable for {component:?}.{name:?}")))
}

/// Spin's run-time key check.
fn validate_key(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("must not be empty".into());
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_'))
    {
        return Err(format!("invalid character {c:?}. Variable names may contain only lower-case letters, numbers, and underscores."));
    }
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        return Err("must start with a lowercase letter.".into());
    }
    if !name.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit()) {
        return Err("must end with a lowercase letter or a number.".into());
    }
    if name.contains("__") {
        return Err("must not contain multiple consecutive underscores.".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_reports_like_spin() {
        let values = HashMap::from([("a".to_string(), "1".to_string())]);
        assert_eq!(get("c", &values, "a"), Ok("1".into()));
        assert_eq!(
            get("c", &values, "b"),
            Err(GetError::Undefined("no variable for \"c\".\"b\"".into()))
        );
        assert!(matches!(
            get("c", &values, "Bad"),
            Err(GetError::InvalidName(_))
        ));
        assert!(matches!(
            get("c", &values, "a__b"),
            Err(GetError::InvalidName(_))
        ));
    }
}
