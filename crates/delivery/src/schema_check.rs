//! Tests only: checks a JSON request against Google's published protobuf
//! schema of the Data Manager API (`schema/datamanager-v1-ingest-events.json`,
//! the descriptors of the `@google-ads/datamanager` client library), in the
//! protobuf JSON mapping: every key a field of its message, every value of
//! the field's type, enum values by name, REQUIRED fields present, at most
//! one member of a oneof.

use serde_json::Value;

const SCHEMA: &str = include_str!("../schema/datamanager-v1-ingest-events.json");

fn types() -> Value {
    serde_json::from_str::<Value>(SCHEMA).unwrap()["types"].clone()
}

/// The errors of `value` as a `message` (e.g. `IngestEventsRequest`), each
/// with its JSON path; empty when it conforms.
pub fn check(message: &str, value: &Value) -> Vec<String> {
    let types = types();
    let mut errors = Vec::new();
    check_message(&types, message, None, value, "$", &mut errors);
    errors
}

/// Finds a type by name: nested in `parent` first, then top-level.
fn lookup<'a>(types: &'a Value, parent: Option<&'a Value>, name: &str) -> Option<&'a Value> {
    parent
        .and_then(|p| p["nested"].get(name))
        .or_else(|| types.get(name))
}

fn check_message(
    types: &Value,
    name: &str,
    parent: Option<&Value>,
    value: &Value,
    path: &str,
    errors: &mut Vec<String>,
) {
    let Some(desc) = lookup(types, parent, name) else {
        errors.push(format!("{path}: unknown type {name}"));
        return;
    };
    let Some(obj) = value.as_object() else {
        errors.push(format!("{path}: {name} must be an object"));
        return;
    };
    let fields = &desc["fields"];
    for (key, v) in obj {
        let Some(field) = fields.get(key) else {
            errors.push(format!("{path}.{key}: not a field of {name}"));
            continue;
        };
        let repeated = field["rule"] == "repeated";
        let ty = field["type"].as_str().unwrap_or("");
        if repeated {
            match v.as_array() {
                Some(items) => {
                    for (i, item) in items.iter().enumerate() {
                        check_value(types, desc, ty, item, &format!("{path}.{key}[{i}]"), errors);
                    }
                }
                None => errors.push(format!("{path}.{key}: must be a list")),
            }
        } else {
            check_value(types, desc, ty, v, &format!("{path}.{key}"), errors);
        }
    }
    for (key, field) in fields.as_object().into_iter().flatten() {
        if field["options"]["(google.api.field_behavior)"] == "REQUIRED" && !obj.contains_key(key) {
            errors.push(format!("{path}.{key}: required by {name}"));
        }
    }
    for (oneof, members) in desc["oneofs"].as_object().into_iter().flatten() {
        let set = members["oneof"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|m| m.as_str().is_some_and(|m| obj.contains_key(m)))
            .count();
        if set > 1 {
            errors.push(format!("{path}: more than one member of oneof {oneof}"));
        }
    }
}

fn check_value(
    types: &Value,
    parent: &Value,
    ty: &str,
    v: &Value,
    path: &str,
    errors: &mut Vec<String>,
) {
    let ok = match ty {
        "string" => v.is_string(),
        "bool" => v.is_boolean(),
        "double" | "float" => v.is_number(),
        "int32" | "int64" | "uint32" | "uint64" => v.is_i64() || v.is_u64() || v.is_string(),
        "google.protobuf.Timestamp" => v
            .as_str()
            .is_some_and(|s| chrono::DateTime::parse_from_rfc3339(s).is_ok() && s.ends_with('Z')),
        _ => match lookup(types, Some(parent), ty) {
            Some(t) if t.get("values").is_some() => {
                v.as_str().is_some_and(|s| t["values"].get(s).is_some())
            }
            Some(_) => {
                check_message(types, ty, Some(parent), v, path, errors);
                true
            }
            None => {
                errors.push(format!("{path}: unknown type {ty}"));
                true
            }
        },
    };
    if !ok {
        errors.push(format!("{path}: {v} is not a {ty}"));
    }
}
