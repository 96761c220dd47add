//! deploy/ validates: the SpinApp has what SpinKube's `SpinApp` CRD
//! requires (checked against its documented reference: `apiVersion`
//! `core.spinkube.dev/v1alpha1`, `kind`, `metadata.name`, `spec.image`,
//! `spec.executor`; `replicas` an int32 not combined with autoscaling; each
//! variable a `name` with exactly one of `value` / `valueFrom`; probes as
//! `httpGet.path`), every variable spin.toml declares without a default or
//! as a secret is wired from the Secret (in the SpinApp and the cron
//! runner), every name wired is one spin.toml declares, every Secret key
//! referenced exists in the example Secret, and the probes hit a route.

use std::collections::{BTreeMap, BTreeSet};

use integration_tests::*;
use serde_yaml::Value;

fn yaml(name: &str) -> Value {
    let path = root().join("deploy").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{name} is not YAML: {e}"))
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter().try_fold(v, |v, k| v.get(k))?.as_str()
}

/// spin.toml's application variables: name → (has a default, secret).
fn manifest_variables() -> BTreeMap<String, (bool, bool)> {
    let manifest: toml::Value =
        toml::from_str(&std::fs::read_to_string(app_manifest()).unwrap()).unwrap();
    manifest["variables"]
        .as_table()
        .unwrap()
        .iter()
        .map(|(name, v)| {
            let default = v.get("default").is_some();
            let secret = v.get("secret").and_then(toml::Value::as_bool) == Some(true);
            (name.clone(), (default, secret))
        })
        .collect()
}

/// The variables that must come from the Secret: secrets and those without a default.
fn must_come_from_the_secret() -> BTreeSet<String> {
    manifest_variables()
        .into_iter()
        .filter(|(_, (default, secret))| *secret || !default)
        .map(|(name, _)| name)
        .collect()
}

fn secret_keys() -> BTreeSet<String> {
    let secret = yaml("secret.example.yaml");
    assert_eq!(str_at(&secret, &["kind"]), Some("Secret"));
    assert_eq!(str_at(&secret, &["apiVersion"]), Some("v1"));
    secret["stringData"]
        .as_mapping()
        .expect("stringData")
        .keys()
        .map(|k| k.as_str().unwrap().to_string())
        .collect()
}

fn secret_ref(value_from: &Value) -> (String, String) {
    let r = &value_from["secretKeyRef"];
    (
        str_at(r, &["name"]).expect("secretKeyRef.name").to_string(),
        str_at(r, &["key"]).expect("secretKeyRef.key").to_string(),
    )
}

#[test]
fn the_spinapp_has_what_the_crd_requires() {
    let app = yaml("spinapp.yaml");
    assert_eq!(
        str_at(&app, &["apiVersion"]),
        Some("core.spinkube.dev/v1alpha1")
    );
    assert_eq!(str_at(&app, &["kind"]), Some("SpinApp"));
    let name = str_at(&app, &["metadata", "name"]).expect("metadata.name");
    assert!(
        !name.is_empty()
            && name.len() <= 63
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
        "metadata.name must be a DNS label: {name}"
    );
    let spec = &app["spec"];
    // Required by the CRD.
    let image = str_at(spec, &["image"]).expect("spec.image");
    assert!(
        image.contains(':') || image.contains('@'),
        "pin a tag or digest: {image}"
    );
    assert_eq!(str_at(spec, &["executor"]), Some("containerd-shim-spin"));
    // replicas: int32, and not with enableAutoscaling.
    let replicas = spec["replicas"].as_i64().expect("spec.replicas");
    assert!((2..=i32::MAX as i64).contains(&replicas), "{replicas}");
    assert_ne!(spec["enableAutoscaling"].as_bool(), Some(true));
    for kind in ["requests", "limits"] {
        for r in ["cpu", "memory"] {
            assert!(
                spec["resources"][kind][r].as_str().is_some(),
                "spec.resources.{kind}.{r}"
            );
        }
    }
    // Probes: httpGet.path on a route the application serves.
    let manifest: toml::Value =
        toml::from_str(&std::fs::read_to_string(app_manifest()).unwrap()).unwrap();
    let routes: Vec<&str> = manifest["trigger"]["http"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["route"].as_str().unwrap())
        .collect();
    for probe in ["liveness", "readiness"] {
        let path = str_at(spec, &["checks", probe, "httpGet", "path"])
            .unwrap_or_else(|| panic!("spec.checks.{probe}.httpGet.path"));
        assert_eq!(path, "/healthz");
        assert!(routes.contains(&path), "{path} is not a route of spin.toml");
    }
    // Only fields the CRD documents.
    let known = [
        "checks",
        "components",
        "deploymentAnnotations",
        "enableAutoscaling",
        "executor",
        "image",
        "imagePullSecrets",
        "podAnnotations",
        "podLabels",
        "replicas",
        "resources",
        "runtimeConfig",
        "serviceAccountName",
        "serviceAnnotations",
        "serviceLabels",
        "variables",
        "volumeMounts",
        "volumes",
    ];
    for key in spec.as_mapping().unwrap().keys() {
        let key = key.as_str().unwrap();
        assert!(known.contains(&key), "spec.{key} is not a SpinApp field");
    }
}

#[test]
fn every_secret_or_required_variable_is_wired_from_the_secret() {
    let declared = manifest_variables();
    let needed = must_come_from_the_secret();
    assert!(needed.contains("database_url") && needed.contains("metrics_scrape_token"));
    let keys = secret_keys();

    // The SpinApp: spec.variables.
    let app = yaml("spinapp.yaml");
    let mut from_secret = BTreeSet::new();
    let mut names = BTreeSet::new();
    for v in app["spec"]["variables"]
        .as_sequence()
        .expect("spec.variables")
    {
        let name = str_at(v, &["name"]).expect("variables[].name");
        assert!(
            declared.contains_key(name),
            "{name} is not a variable of spin.toml"
        );
        assert!(names.insert(name.to_string()), "{name} is set twice");
        let has_value = v.get("value").is_some();
        let has_from = v.get("valueFrom").is_some();
        assert!(
            has_value != has_from,
            "{name}: exactly one of value / valueFrom"
        );
        if has_from {
            let (secret, key) = secret_ref(&v["valueFrom"]);
            assert_eq!(secret, "tracking-backbone", "{name}");
            assert!(keys.contains(&key), "{name}: the Secret has no key {key}");
            from_secret.insert(name.to_string());
        } else {
            let secret = declared[name].1;
            assert!(
                !secret,
                "{name} is a secret: take it from the Secret, not a literal"
            );
        }
    }
    let missing: Vec<_> = needed.difference(&from_secret).collect();
    assert!(
        missing.is_empty(),
        "SpinApp: not wired from the Secret: {missing:?}"
    );

    // The cron runner: the same variables as SPIN_VARIABLE_<NAME>.
    let cron = yaml("cron-runner.yaml");
    assert_eq!(str_at(&cron, &["kind"]), Some("Deployment"));
    let container = &cron["spec"]["template"]["spec"]["containers"][0];
    let mut cron_from_secret = BTreeSet::new();
    for e in container["env"].as_sequence().expect("env") {
        let env = str_at(e, &["name"]).unwrap();
        let name = env
            .strip_prefix("SPIN_VARIABLE_")
            .unwrap_or_else(|| panic!("{env}"))
            .to_ascii_lowercase();
        assert!(
            declared.contains_key(&name),
            "{env} names no variable of spin.toml"
        );
        if let Some(from) = e.get("valueFrom") {
            let (_, key) = secret_ref(from);
            assert_eq!(key, name, "{env}");
            assert!(keys.contains(&key), "{env}: the Secret has no key {key}");
            cron_from_secret.insert(name);
        }
    }
    let missing: Vec<_> = needed.difference(&cron_from_secret).collect();
    assert!(
        missing.is_empty(),
        "cron runner: not wired from the Secret: {missing:?}"
    );
    // Both run the same artifact.
    let image = str_at(&app, &["spec", "image"]).unwrap();
    let args: Vec<&str> = container["args"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(args.windows(2).any(|w| w == ["--from", image]), "{args:?}");
}

#[test]
fn the_migration_job_runs_spin_local_migrate_from_the_secret() {
    let job = yaml("migrate-job.yaml");
    assert_eq!(str_at(&job, &["apiVersion"]), Some("batch/v1"));
    assert_eq!(str_at(&job, &["kind"]), Some("Job"));
    let pod = &job["spec"]["template"]["spec"];
    assert_eq!(str_at(pod, &["restartPolicy"]), Some("Never"));
    let container = &pod["containers"][0];
    let args: Vec<&str> = container["args"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(args.first(), Some(&"migrate"));
    let env = container["env"].as_sequence().unwrap();
    let url = env
        .iter()
        .find(|e| str_at(e, &["name"]) == Some("SPIN_VARIABLE_DATABASE_URL"))
        .expect("SPIN_VARIABLE_DATABASE_URL");
    let (_, key) = secret_ref(&url["valueFrom"]);
    assert!(secret_keys().contains(&key), "the Secret has no key {key}");
    // The image copies migrations/ where the Job looks.
    let dockerfile = std::fs::read_to_string(root().join("deploy/migrate.Dockerfile")).unwrap();
    assert!(dockerfile.contains("COPY migrations /migrations"));
    assert!(args.windows(2).any(|w| w == ["--dir", "/migrations"]));
}

#[test]
fn kustomize_lists_the_workloads_and_the_docs_link_deploy() {
    let k = yaml("kustomization.yaml");
    let resources: Vec<&str> = k["resources"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    for r in &resources {
        assert!(root().join("deploy").join(r).exists(), "{r}");
    }
    assert!(resources.contains(&"spinapp.yaml") && resources.contains(&"cron-runner.yaml"));
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    assert!(readme.contains("docs/DEPLOY.md"));
    assert!(root().join("docs/DEPLOY.md").exists());
}
