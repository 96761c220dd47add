//! `admin-token`: prints an HS256 JWT for the application's `/admin`
//! endpoints, signed with the application's `admin_jwt_secret` (local use:
//! `scripts/dev` sets the secret, docs/API.md shows the calls).

use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, Result};
use clap::Parser;

#[derive(Parser)]
#[command(
    name = "admin-token",
    version,
    about = "Print an HS256 token for the admin endpoints (local use: the secret is the application's `admin_jwt_secret`)"
)]
struct Cli {
    /// Default: the environment variable SPIN_VARIABLE_ADMIN_JWT_SECRET.
    #[arg(long)]
    secret: Option<String>,
    #[arg(long, default_value = "admin")]
    role: String,
    /// A client a client user may read (repeatable).
    #[arg(long = "client-id")]
    client_ids: Vec<String>,
    /// How long the token is valid.
    #[arg(long, default_value_t = 24)]
    hours: i64,
}

fn token(cli: Cli) -> Result<String> {
    let secret = match cli.secret {
        Some(s) => s,
        None => std::env::var("SPIN_VARIABLE_ADMIN_JWT_SECRET").map_err(|_| {
            anyhow!("no secret: pass --secret or set SPIN_VARIABLE_ADMIN_JWT_SECRET")
        })?,
    };
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs() as i64;
    let claims = serde_json::json!({
        "sub": "spin-local",
        "role": cli.role,
        "client_ids": cli.client_ids,
        "exp": now + cli.hours * 3600,
    });
    Ok(jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )?)
}

fn main() -> ExitCode {
    match token(Cli::parse()) {
        Ok(token) => {
            println!("{token}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
