//! docs/openapi.yaml is a valid OpenAPI 3.1 document (checked by
//! openapi-spec-validator, an independent implementation), describes exactly
//! the routes spin.toml serves, and is what the application serves at
//! /openapi.json and /openapi.yaml.

use std::collections::BTreeSet;

use integration_tests::*;
use serde_json::Value;

fn spec() -> Value {
    let text = std::fs::read_to_string(root().join("docs/openapi.yaml")).unwrap();
    serde_yaml::from_str(&text).expect("docs/openapi.yaml is YAML")
}

#[test]
fn the_contract_is_valid_openapi() {
    let validator = root().join("target/pyenv/bin/openapi-spec-validator");
    assert!(
        validator.exists(),
        "{} is missing: scripts/test installs it (tests/fuzz/requirements.txt)",
        validator.display()
    );
    let out = std::process::Command::new(validator)
        .arg(root().join("docs/openapi.yaml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(spec()["openapi"], "3.1.0");
}

/// The routes of spin.toml as OpenAPI paths (`:name` → `{name}`), each
/// wildcard route replaced by the paths the contract lists under it.
#[test]
fn the_contract_and_spin_toml_have_the_same_routes() {
    let manifest: toml::Value =
        toml::from_str(&std::fs::read_to_string(app_manifest()).unwrap()).unwrap();
    let spec = spec();
    let documented: BTreeSet<String> = spec["paths"].as_object().unwrap().keys().cloned().collect();
    let mut served = BTreeSet::new();
    for trigger in manifest["trigger"]["http"].as_array().unwrap() {
        let route = trigger["route"].as_str().unwrap();
        let path: String = route
            .split('/')
            .map(|s| match s.strip_prefix(':') {
                Some(name) => format!("{{{name}}}"),
                None => s.to_string(),
            })
            .collect::<Vec<_>>()
            .join("/");
        match path.strip_suffix("/...") {
            // The catch-all JSON 404 and the console's static files are not API operations.
            Some("") | Some("/console") => {}
            Some(prefix) => {
                let under: Vec<&String> = documented
                    .iter()
                    .filter(|p| p.starts_with(&format!("{prefix}/")))
                    .collect();
                assert!(
                    !under.is_empty(),
                    "{route}: no documented path under {prefix}/"
                );
                served.extend(under.into_iter().cloned());
            }
            None => {
                served.insert(path);
            }
        }
    }
    assert_eq!(
        served, documented,
        "spin.toml routes ≠ docs/openapi.yaml paths"
    );
}

#[tokio::test]
async fn the_application_serves_its_contract() {
    let db = TestDb::new().await;
    let app = serve_app(&db, &[]).await;
    let served: Value = http()
        .get(format!("{}/openapi.json", app.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(served, spec());
    let res = http()
        .get(format!("{}/openapi.yaml", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["content-type"], "application/yaml");
    let text = res.text().await.unwrap();
    assert_eq!(
        text,
        std::fs::read_to_string(root().join("docs/openapi.yaml")).unwrap()
    );
}
