//! Spin variables, the only place configuration comes from. Configuration
//! structs read them through [`Vars`], so they test natively with a map.
//! A missing or malformed variable is a 500 `misconfigured` naming it.

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

use crate::error::ApiError;

type Lookup<'a> = Box<dyn Fn(&str) -> Result<String, String> + 'a>;

/// The numbers variables hold, and how an error describes them.
pub trait Number: FromStr {
    const KIND: &'static str;
}

macro_rules! whole {
    ($($t:ty),*) => { $(impl Number for $t { const KIND: &'static str = "a whole number"; })* };
}
whole!(i32, i64, u32, u64, usize);

impl Number for f64 {
    const KIND: &'static str = "a number";
}

/// Where variables are read from: Spin at run time, a map in tests.
pub struct Vars<'a> {
    lookup: Lookup<'a>,
}

impl Vars<'static> {
    /// The component's Spin variables.
    pub fn spin() -> Vars<'static> {
        Vars {
            lookup: Box::new(|name| spin_sdk::variables::get(name).map_err(|e| e.to_string())),
        }
    }

    /// Fixed values (tests); a name not given reads as empty.
    pub fn map(values: &[(&str, &str)]) -> Vars<'static> {
        let map: HashMap<String, String> = values
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Vars {
            lookup: Box::new(move |name| Ok(map.get(name).cloned().unwrap_or_default())),
        }
    }
}

impl Vars<'_> {
    /// The raw value.
    pub fn text(&self, name: &str) -> Result<String, ApiError> {
        (self.lookup)(name).map_err(|e| ApiError::misconfigured(format!("variable {name}: {e}")))
    }

    /// The value parsed as `T` (surrounding space ignored).
    pub fn number<T: Number>(&self, name: &str) -> Result<T, ApiError> {
        self.optional(name)?.ok_or_else(|| {
            ApiError::misconfigured(format!("variable {name} must be set to {}", T::KIND))
        })
    }

    /// The value parsed as `T`, or `None` when it is empty.
    pub fn optional<T: Number>(&self, name: &str) -> Result<Option<T>, ApiError> {
        let raw = self.text(name)?;
        let raw = raw.trim();
        if raw.is_empty() {
            return Ok(None);
        }
        raw.parse().map(Some).map_err(|_| {
            ApiError::misconfigured(format!("variable {name} must be {}, got {raw:?}", T::KIND))
        })
    }

    /// A whole number of milliseconds.
    pub fn millis(&self, name: &str) -> Result<Duration, ApiError> {
        Ok(Duration::from_millis(self.number(name)?))
    }

    /// A whole number of seconds.
    pub fn seconds(&self, name: &str) -> Result<Duration, ApiError> {
        Ok(Duration::from_secs(self.number(name)?))
    }

    /// The value, `T::from_str`'s error message naming the variable.
    pub fn parsed<T: FromStr<Err = String>>(&self, name: &str) -> Result<T, ApiError> {
        self.text(name)?
            .trim()
            .parse()
            .map_err(|e| ApiError::misconfigured(format!("variable {name}: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_parsed_and_errors_name_the_variable() {
        let vars = Vars::map(&[("a", " 42 "), ("b", "many"), ("c", "")]);
        assert_eq!(vars.number::<u32>("a").unwrap(), 42);
        assert_eq!(vars.millis("a").unwrap(), Duration::from_millis(42));
        let e = vars.number::<u32>("b").unwrap_err();
        assert_eq!((e.status, e.code), (500, "misconfigured"));
        assert!(
            e.message.contains("variable b must be a whole number") && e.message.contains("many")
        );
        assert!(vars
            .number::<f64>("b")
            .unwrap_err()
            .message
            .contains("must be a number"));
        assert_eq!(vars.optional::<u32>("c").unwrap(), None);
        assert!(vars
            .number::<u32>("c")
            .unwrap_err()
            .message
            .contains("variable c"));
    }
}
