//! JSON request bodies, read one way everywhere: errors name the field at
//! fault (a JSON path, or `body` for the body as a whole), and a NUL
//! character, which Postgres can store in neither `text` nor `jsonb`, is
//! refused where it stands.

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::ApiError;

/// The name between backticks in a serde message (`missing field `x``).
fn quoted(message: &str, after: &str) -> Option<String> {
    let rest = message.split(after).nth(1)?;
    Some(rest.split('`').next()?.to_string())
}

/// Parses a JSON body into `T`: 400 `malformed_json` (field `body`) when it
/// is not JSON, `invalid_body` when it is not the shape `T` is, and
/// `missing_field` / `invalid_field` naming the field otherwise.
pub fn parse_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(body);
    let parsed: T = serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            return ApiError::bad_request(
                "malformed_json",
                "body",
                format!("the body is not valid JSON: {inner}"),
            );
        }
        let message = inner.to_string();
        // The path may or may not end with the key the message names.
        let at = |name: String| {
            if path == "." || path.is_empty() {
                key(&name)
            } else if name.is_empty() {
                format!("{}{}", path.trim_end_matches('.'), key(&name))
            } else if path == name || path.ends_with(&format!(".{name}")) {
                path.clone()
            } else {
                field(&path, &name)
            }
        };
        if let Some(name) = quoted(&message, "missing field `") {
            return ApiError::bad_request("missing_field", &at(name), message);
        }
        for kind in ["unknown field `", "duplicate field `"] {
            if let Some(name) = quoted(&message, kind) {
                return ApiError::invalid(&at(name), message);
            }
        }
        if path == "." || path.is_empty() {
            ApiError::bad_request("invalid_body", "body", message)
        } else {
            ApiError::invalid(&path, message)
        }
    })?;
    if let Ok(value) = serde_json::from_slice::<Value>(body) {
        if let Some(path) = nul_path(&value) {
            let name = if path.is_empty() {
                "body".to_string()
            } else {
                field("", &path)
            };
            return Err(ApiError::invalid(
                &name,
                format!("{name} contains a NUL character (\\u0000), which cannot be stored"),
            ));
        }
    }
    Ok(parsed)
}

/// Where `value` holds a NUL character (`\u0000`), in a string or an
/// object key: Postgres stores neither in `text` nor in `jsonb`. The path is
/// relative to `value` (`properties.a[2]`, `fields["a b"]`), empty for
/// `value` itself.
pub fn nul_path(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => s.contains('\0').then(String::new),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| nul_path(v).map(|p| format!("[{i}]{}", dot(&p)))),
        Value::Object(map) => map.iter().find_map(|(k, v)| {
            if k.contains('\0') {
                return Some(key(k));
            }
            nul_path(v).map(|p| format!("{}{}", key(k), dot(&p)))
        }),
        _ => None,
    }
}

/// `rest` appended to a path: `.name` or `[i]` as it comes.
fn dot(rest: &str) -> String {
    if rest.is_empty() || rest.starts_with('[') {
        rest.to_string()
    } else {
        format!(".{rest}")
    }
}

/// An object key in a path: bare when it is an identifier, else quoted.
fn key(k: &str) -> String {
    if !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        k.to_string()
    } else {
        format!("[{}]", serde_json::to_string(k).unwrap_or_default())
    }
}

/// `value` with every NUL character (in strings and keys) replaced by U+FFFD,
/// so a refused input can still be kept for inspection.
pub fn without_nul(value: &Value) -> Value {
    let clean = |s: &str| s.replace('\0', "\u{FFFD}");
    match value {
        Value::String(s) => Value::String(clean(s)),
        Value::Array(items) => Value::Array(items.iter().map(without_nul).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (clean(k), without_nul(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Joins a field name and a path from [`nul_path`].
pub fn field(prefix: &str, path: &str) -> String {
    if prefix.is_empty() {
        path.trim_start_matches('.').to_string()
    } else {
        format!("{prefix}{}", dot(path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        name: String,
        tags: Option<Vec<String>>,
        extra: Option<serde_json::Map<String, Value>>,
    }

    fn error(body: &str) -> (String, Option<String>) {
        let e = parse_body::<Body>(body.as_bytes()).unwrap_err();
        (e.code.to_string(), e.field)
    }

    #[test]
    fn body_errors_name_the_field_at_fault() {
        let f = |s: &str| Some(s.to_string());
        assert_eq!(error("{"), ("malformed_json".into(), f("body")));
        assert_eq!(error("[]"), ("invalid_body".into(), f("body")));
        assert_eq!(error("null"), ("invalid_body".into(), f("body")));
        assert_eq!(error("1"), ("invalid_body".into(), f("body")));
        assert_eq!(error("{}"), ("missing_field".into(), f("name")));
        assert_eq!(
            error(r#"{"name": "a", "nmae": "b"}"#),
            ("invalid_field".into(), f("nmae"))
        );
        assert_eq!(
            error(r#"{"name": "a", "name": "b"}"#),
            ("invalid_field".into(), f("name"))
        );
        assert_eq!(error(r#"{"name": 5}"#), ("invalid_field".into(), f("name")));
        assert_eq!(
            error(r#"{"name": "a", "tags": ["x", 3]}"#),
            ("invalid_field".into(), f("tags[1]"))
        );
        assert_eq!(
            error(r#"{"name": "a\u0000"}"#),
            ("invalid_field".into(), f("name"))
        );
        assert_eq!(
            error(r#"{"name": "a", "extra": {"k\u0000": 1}}"#).1,
            f("extra[\"k\\u0000\"]")
        );
        // An empty key is named, never an empty field.
        assert_eq!(
            error(r#"{"": null}"#),
            ("invalid_field".into(), f("[\"\"]"))
        );
        assert!(parse_body::<Body>(br#"{"name": "a"}"#).is_ok());
    }

    #[test]
    fn nul_characters_are_found_with_their_path() {
        assert_eq!(nul_path(&json!("a\u{0}b")), Some(String::new()));
        assert_eq!(
            nul_path(&json!({"a": "ok", "b": {"c": [1, "x\u{0}"]}})).as_deref(),
            Some("b.c[1]")
        );
        assert_eq!(
            nul_path(&json!({"a b": {"k\u{0}": 1}})).as_deref(),
            Some("[\"a b\"][\"k\\u0000\"]")
        );
        assert_eq!(nul_path(&json!({"a": [1, 2], "b": null})), None);
        let clean = without_nul(&json!({"k\u{0}": ["a\u{0}b", 1]}));
        assert_eq!(clean, json!({"k\u{FFFD}": ["a\u{FFFD}b", 1]}));
        assert_eq!(nul_path(&clean), None);
        assert_eq!(field("events[3]", "properties.x"), "events[3].properties.x");
        assert_eq!(field("fields", "[\"a b\"]"), "fields[\"a b\"]");
        assert_eq!(field("", "email"), "email");
    }
}
