//! Query strings, read one way everywhere: percent-decoded
//! (`application/x-www-form-urlencoded`, `+` is a space), every key one the
//! endpoint knows, none repeated. Anything else is a 400
//! `invalid_parameter` naming the parameter.

use crate::error::ApiError;

/// The parameters of a request's query string.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params {
    pairs: Vec<(String, String)>,
}

fn invalid(field: &str, message: impl Into<String>) -> ApiError {
    ApiError::bad_request("invalid_parameter", field, message)
}

impl Params {
    /// Parses `raw` (without the `?`), allowing only the keys in `known`.
    pub fn parse(raw: &str, known: &[&str]) -> Result<Params, ApiError> {
        let mut pairs: Vec<(String, String)> = Vec::new();
        for (key, value) in url::form_urlencoded::parse(raw.as_bytes()) {
            if key.is_empty() {
                return Err(invalid(
                    "query",
                    format!(
                        "a parameter without a name (={value:?}); the parameters are {}",
                        known.join(", ")
                    ),
                ));
            }
            if !known.contains(&key.as_ref()) {
                return Err(invalid(
                    &key,
                    format!(
                        "unknown parameter {key:?}; the parameters are {}",
                        known.join(", ")
                    ),
                ));
            }
            if value.contains('\0') {
                return Err(invalid(
                    &key,
                    format!("{key} contains a NUL character (%00)"),
                ));
            }
            if pairs.iter().any(|(k, _)| *k == key) {
                return Err(invalid(&key, format!("{key} is given more than once")));
            }
            pairs.push((key.into_owned(), value.into_owned()));
        }
        Ok(Params { pairs })
    }

    /// The value of `key`, when given and not empty.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, v)| k == key && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }

    /// The value of `key` read by `read`, which answers `None` for a value it
    /// refuses: then a 400 naming `key` and saying what was `expected`.
    pub fn read<T>(
        &self,
        key: &str,
        expected: &str,
        read: impl Fn(&str) -> Option<T>,
    ) -> Result<Option<T>, ApiError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => read(v)
                .map(Some)
                .ok_or_else(|| invalid(key, format!("{key} must be {expected}, got {v:?}"))),
        }
    }

    /// The value of `key` when it is one of `allowed`.
    pub fn one_of(&self, key: &str, allowed: &[&str]) -> Result<Option<String>, ApiError> {
        self.read(key, &format!("one of {}", allowed.join(", ")), |v| {
            allowed.contains(&v).then(|| v.to_string())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_percent_decoded() {
        let p = Params::parse(
            "status=dead%5Fletter&source=a+b&empty=",
            &["status", "source", "empty"],
        )
        .unwrap();
        assert_eq!(p.get("status"), Some("dead_letter"));
        assert_eq!(p.get("source"), Some("a b"));
        assert_eq!(p.get("empty"), None);
        assert_eq!(
            p.one_of("status", &["dead_letter"]).unwrap().as_deref(),
            Some("dead_letter")
        );
    }

    #[test]
    fn unknown_repeated_and_nameless_parameters_are_refused_by_name() {
        let e = Params::parse("limit=1&nope=2", &["limit"]).unwrap_err();
        assert_eq!(
            (e.status, e.code, e.field.as_deref()),
            (400, "invalid_parameter", Some("nope"))
        );
        let e = Params::parse("limit=1&limit=2", &["limit"]).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("limit"));
        let e = Params::parse("limit=%00", &["limit"]).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("limit"));
        let e = Params::parse("=x", &["limit"]).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("query"));
        let e = Params::parse("limit=x", &["limit"])
            .unwrap()
            .read("limit", "a whole number", |v| v.parse::<u32>().ok())
            .unwrap_err();
        assert!(
            e.message.contains("limit must be a whole number"),
            "{}",
            e.message
        );
    }
}
