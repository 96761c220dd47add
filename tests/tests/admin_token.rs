//! `tools/admin-token`: the token it prints verifies with the secret it was
//! given (HS256), carries the role, the client ids and an expiry `--hours`
//! ahead, and it refuses to mint one without a secret.

use std::process::{Command, Output};
use std::time::{SystemTime, UNIX_EPOCH};

use integration_tests::*;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{json, Value};

const SECRET_VAR: &str = "SPIN_VARIABLE_ADMIN_JWT_SECRET";

fn admin_token(args: &[&str], env_secret: Option<&str>) -> Output {
    let mut cmd = Command::new(workspace_binary("admin-token"));
    cmd.args(args).env_remove(SECRET_VAR);
    if let Some(secret) = env_secret {
        cmd.env(SECRET_VAR, secret);
    }
    cmd.output().unwrap()
}

/// Runs the tool expecting a token; returns it.
fn mint(args: &[&str], env_secret: Option<&str>) -> String {
    let out = admin_token(args, env_secret);
    assert!(
        out.status.success(),
        "admin-token failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// The token's claims if it verifies with `secret` (HS256, `exp` checked).
fn verify(token: &str, secret: &str) -> jsonwebtoken::errors::Result<Value> {
    let decoded = jsonwebtoken::decode::<Value>(
        token,
        &DecodingKey::from_secret(secret.as_bytes()),
        &Validation::new(Algorithm::HS256),
    )?;
    assert_eq!(decoded.header.alg, Algorithm::HS256);
    Ok(decoded.claims)
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// `exp` is `hours` from now (give or take the run).
fn assert_expires_in(claims: &Value, hours: i64) {
    let exp = claims["exp"].as_i64().expect("exp is a number");
    let expected = now() + hours * 3600;
    assert!((expected - 60..=expected).contains(&exp), "{claims}");
}

#[test]
fn admin_token_by_default_from_the_environment_secret() {
    let claims = verify(&mint(&[], Some("env-secret")), "env-secret").unwrap();
    assert_eq!(claims["sub"], "spin-local");
    assert_eq!(claims["role"], "admin");
    assert_eq!(claims["client_ids"], json!([]));
    assert_expires_in(&claims, 24);
}

#[test]
fn flags_set_secret_role_clients_and_lifetime() {
    let args = [
        "--secret",
        "flag-secret",
        "--role",
        "authenticated",
        "--client-id",
        "8d3f6a52-1c1e-4a55-9f0b-3f1f5d2b7c10",
        "--client-id",
        "11111111-2222-4333-8444-555555555555",
        "--hours",
        "2",
    ];
    // --secret wins over the environment.
    let token = mint(&args, Some("env-secret"));
    assert!(verify(&token, "env-secret").is_err());
    let claims = verify(&token, "flag-secret").unwrap();
    assert_eq!(claims["role"], "authenticated");
    assert_eq!(
        claims["client_ids"],
        json!([
            "8d3f6a52-1c1e-4a55-9f0b-3f1f5d2b7c10",
            "11111111-2222-4333-8444-555555555555"
        ])
    );
    assert_expires_in(&claims, 2);
}

#[test]
fn refuses_without_a_secret() {
    let out = admin_token(&[], None);
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no secret: pass --secret or set SPIN_VARIABLE_ADMIN_JWT_SECRET"),
        "{stderr}"
    );
}
