//! docs/openapi.yaml, the contract, also as JSON: converted once here, so
//! the component serves both without parsing YAML per request.

use std::path::Path;

fn main() {
    let yaml = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.yaml");
    println!("cargo:rerun-if-changed={}", yaml.display());
    let text = std::fs::read_to_string(&yaml).expect("docs/openapi.yaml");
    let value: serde_json::Value = serde_yaml::from_str(&text).expect("docs/openapi.yaml is YAML");
    let out = Path::new(&std::env::var("OUT_DIR").unwrap()).join("openapi.json");
    std::fs::write(out, serde_json::to_vec(&value).unwrap()).unwrap();
}
