//! OAuth access tokens for Google destinations, shared by every instance.
//! The config holds one of two grants: a refresh token with its OAuth client
//! (`refresh_token`, `client_id`, `client_secret`), or a service account's
//! key file as Google issues it (`service_account`: `client_email`,
//! `private_key`, `private_key_id`), for which a JWT signed with the key
//! (RS256, RFC 7523 bearer grant) is the request, scoped to the kind's API.
//! The access token either grant obtains at `{google_oauth_base_url}/token`
//! is kept in `oauth_tokens` with its expiry and used until a minute before
//! it runs out. One refresher at a time: a
//! run that finds the token stale takes a short refresh lease on the row
//! (an upsert that only succeeds when no live lease is held and the token is
//! still stale); the others wait for the new token instead of asking Google
//! too. `invalid_grant` (refresh token revoked or expired, service account
//! key deleted or disabled) is permanent: the conversions are dead-lettered
//! (`auth`) and that grant is not sent to Google again (its SHA-256 is
//! remembered) until the config changes.
//!
//! A config with only `access_token` (and no grant) uses it as is:
//! the legacy setup, which stops working when that token expires.

use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use spin_sdk::pg4::ParameterValue;

use crate::{optional, Endpoints, Kind, Outcome};
use platform::db::Db;
use platform::outbound::{self, HttpRequest};

/// A token is refreshed this long before it expires.
pub const REFRESH_MARGIN_SECS: f64 = 60.0;
/// How long a refresher holds the lease (then another may try).
const LEASE_SECS: i32 = 30;
/// How long a run waits for another's refresh before retrying later: at
/// most this, and never longer than the request deadline it was given (a
/// run's share for the destination, `isolation`), so a refresher that died
/// holding the lease cannot hold up the other destinations.
const WAIT: Duration = Duration::from_secs(10);

/// How long to wait for another instance's refresh, given the deadline.
fn wait_limit(timeout: Duration) -> Duration {
    WAIT.min(timeout)
}

#[derive(Deserialize)]
struct Cached {
    access_token: Option<String>,
    expires_at: Option<f64>,
    revoked_sha256: Option<String>,
}

const READ: &str = "
SELECT access_token, extract(epoch FROM expires_at)::float8 AS expires_at, revoked_sha256
  FROM oauth_tokens WHERE destination_id = $1::text::uuid";
const LEASE: &str = "
INSERT INTO oauth_tokens AS t (destination_id, refreshing_until)
VALUES ($1::text::uuid, now() + make_interval(secs => $2::int4))
ON CONFLICT (destination_id) DO UPDATE SET refreshing_until = EXCLUDED.refreshing_until
 WHERE (t.refreshing_until IS NULL OR t.refreshing_until < now())
   AND (t.expires_at IS NULL OR t.expires_at < now() + make_interval(secs => $3::int4))
RETURNING t.destination_id::text AS destination_id";
const STORE: &str = "
UPDATE oauth_tokens SET access_token = $2::text, expires_at = now() + make_interval(secs => $3::int4),
       refreshed_at = now(), refreshing_until = NULL, revoked_sha256 = NULL
 WHERE destination_id = $1::text::uuid";
const FAILED: &str = "
UPDATE oauth_tokens SET refreshing_until = NULL, revoked_sha256 = coalesce($2::text, revoked_sha256)
 WHERE destination_id = $1::text::uuid";
const FORGET: &str = "
UPDATE oauth_tokens SET access_token = NULL, expires_at = NULL WHERE destination_id = $1::text::uuid";

fn sha256_hex(s: &str) -> String {
    Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn config_error(key: &str) -> Outcome {
    Outcome::DeadLetter {
        reason: "config".into(),
        error: format!("Google destination config has no {key}"),
    }
}

fn retry(error: String) -> Outcome {
    Outcome::Retry { error, after: None }
}

/// Whether the destination's config asks for refreshed tokens.
pub fn uses_refresh(config: &Value) -> bool {
    optional(config, "refresh_token").is_some() || config.get("service_account").is_some()
}

/// The OAuth scope a destination kind's token needs.
pub fn scope(kind: Kind) -> &'static str {
    match kind {
        Kind::GoogleEc => "https://www.googleapis.com/auth/adwords",
        _ => "https://www.googleapis.com/auth/datamanager",
    }
}

/// How the config obtains access tokens.
enum Grant<'a> {
    Refresh {
        refresh_token: &'a str,
        client_id: &'a str,
        client_secret: &'a str,
    },
    ServiceAccount {
        client_email: &'a str,
        private_key: &'a str,
        private_key_id: Option<&'a str>,
    },
}

impl<'a> Grant<'a> {
    /// The grant in `config`, `None` for a static `access_token`.
    fn from_config(config: &'a Value) -> Result<Option<Grant<'a>>, Outcome> {
        if let Some(key) = config.get("service_account") {
            let field = |k: &str| {
                optional(key, k).ok_or_else(|| config_error(&format!("service_account.{k}")))
            };
            return Ok(Some(Grant::ServiceAccount {
                client_email: field("client_email")?,
                private_key: field("private_key")?,
                private_key_id: optional(key, "private_key_id"),
            }));
        }
        let Some(refresh_token) = optional(config, "refresh_token") else {
            return Ok(None);
        };
        Ok(Some(Grant::Refresh {
            refresh_token,
            client_id: optional(config, "client_id").ok_or_else(|| config_error("client_id"))?,
            client_secret: optional(config, "client_secret")
                .ok_or_else(|| config_error("client_secret"))?,
        }))
    }

    /// Identifies the grant, to remember one Google refused.
    fn fingerprint(&self) -> String {
        match self {
            Grant::Refresh { refresh_token, .. } => sha256_hex(refresh_token),
            Grant::ServiceAccount { private_key, .. } => sha256_hex(private_key),
        }
    }

    /// The token request's form body.
    fn form(&self, token_url: &str, scope: &str, now: i64) -> Result<String, Outcome> {
        Ok(match self {
            Grant::Refresh {
                refresh_token,
                client_id,
                client_secret,
            } => format!(
                "grant_type=refresh_token&refresh_token={}&client_id={}&client_secret={}",
                crate::encode(refresh_token),
                crate::encode(client_id),
                crate::encode(client_secret)
            ),
            Grant::ServiceAccount {
                client_email,
                private_key,
                private_key_id,
            } => {
                let assertion = service_account_jwt(
                    client_email,
                    private_key,
                    *private_key_id,
                    token_url,
                    scope,
                    now,
                )?;
                format!(
                    "grant_type={}&assertion={}",
                    crate::encode("urn:ietf:params:oauth:grant-type:jwt-bearer"),
                    crate::encode(&assertion)
                )
            }
        })
    }

    /// What to tell the operator when Google refuses the grant for good.
    fn remedy(&self) -> &'static str {
        match self {
            Grant::Refresh { .. } => {
                "reconnect the Google account and update the destination's refresh_token"
            }
            Grant::ServiceAccount { .. } => {
                "the service account or its key was deleted or disabled: create a key and update the destination's service_account"
            }
        }
    }
}

/// The signed assertion of Google's service-account flow: issued by the
/// account, for `scope`, to the token endpoint, valid for an hour.
fn service_account_jwt(
    client_email: &str,
    private_key: &str,
    private_key_id: Option<&str>,
    token_url: &str,
    scope: &str,
    now: i64,
) -> Result<String, Outcome> {
    use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
    let key =
        EncodingKey::from_rsa_pem(private_key.as_bytes()).map_err(|_| Outcome::DeadLetter {
            reason: "config".into(),
            error: "service_account.private_key is not an RSA private key in PEM".into(),
        })?;
    let mut header = Header::new(Algorithm::RS256);
    header.kid = private_key_id.map(str::to_string);
    let claims = serde_json::json!({
        "iss": client_email, "scope": scope, "aud": token_url,
        "iat": now, "exp": now + 3600,
    });
    encode(&header, &claims, &key).map_err(|e| Outcome::DeadLetter {
        reason: "config".into(),
        error: format!("service_account key cannot sign: {e}"),
    })
}

/// The config with a usable `access_token` in it, or what happens to the
/// conversions instead (retry later; dead letter for a bad config or a
/// revoked grant).
pub fn with_access_token(
    db: &Db,
    destination_id: &str,
    kind: Kind,
    config: &Value,
    endpoints: &Endpoints,
    timeout: Duration,
) -> Result<Value, Outcome> {
    let Some(grant) = Grant::from_config(config)? else {
        return match optional(config, "access_token") {
            Some(_) => Ok(config.clone()),
            None => Err(config_error(
                "refresh_token (with client_id and client_secret) or service_account",
            )),
        };
    };
    let token = access_token(db, destination_id, &grant, scope(kind), endpoints, timeout)?;
    let mut config = config.clone();
    config["access_token"] = Value::String(token);
    Ok(config)
}

fn access_token(
    db: &Db,
    destination_id: &str,
    grant: &Grant,
    scope: &str,
    endpoints: &Endpoints,
    timeout: Duration,
) -> Result<String, Outcome> {
    let id = ParameterValue::Str(destination_id.to_string());
    let db_error = |e: platform::db::DbError| retry(format!("token cache: {e}"));
    let started = Instant::now();
    let fingerprint = grant.fingerprint();
    loop {
        let cached: Vec<Cached> = db.rows(READ, std::slice::from_ref(&id)).map_err(db_error)?;
        let now = chrono::Utc::now().timestamp() as f64;
        if let Some(c) = cached.first() {
            if c.revoked_sha256.as_deref() == Some(fingerprint.as_str()) {
                return Err(revoked(grant, "this grant was refused before"));
            }
            if let (Some(token), Some(exp)) = (&c.access_token, c.expires_at) {
                if exp > now + REFRESH_MARGIN_SECS {
                    return Ok(token.clone());
                }
            }
        }
        let leased: Vec<Value> = db
            .rows(
                LEASE,
                &[
                    id.clone(),
                    ParameterValue::Int32(LEASE_SECS),
                    ParameterValue::Int32(REFRESH_MARGIN_SECS as i32),
                ],
            )
            .map_err(db_error)?;
        if !leased.is_empty() {
            return refresh(db, &id, grant, scope, &fingerprint, endpoints, timeout);
        }
        if started.elapsed() >= wait_limit(timeout) {
            return Err(retry(
                "another instance is refreshing the Google access token".into(),
            ));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn revoked(grant: &Grant, detail: &str) -> Outcome {
    Outcome::DeadLetter {
        reason: "auth".into(),
        error: format!(
            "Google refused the grant (invalid_grant: {detail}): {}",
            grant.remedy()
        ),
    }
}

fn refresh(
    db: &Db,
    id: &ParameterValue,
    grant: &Grant,
    scope: &str,
    fingerprint: &str,
    endpoints: &Endpoints,
    timeout: Duration,
) -> Result<String, Outcome> {
    let release = |revoked: Option<&str>| {
        let _ = db.execute(
            FAILED,
            &[
                id.clone(),
                revoked.map_or(ParameterValue::DbNull, |s| ParameterValue::Str(s.into())),
            ],
        );
    };
    let token_url = format!(
        "{}/token",
        endpoints.google_oauth_base_url.trim_end_matches('/')
    );
    let body = grant
        .form(&token_url, scope, chrono::Utc::now().timestamp())
        .inspect_err(|_| release(None))?;
    let request = HttpRequest {
        method: "POST".into(),
        url: token_url,
        headers: vec![(
            "content-type".into(),
            "application/x-www-form-urlencoded".into(),
        )],
        body: body.into_bytes(),
    };
    let answer = outbound::send(&request, timeout);
    let response = match answer {
        Ok(r) => r,
        Err(e) => {
            release(None);
            return Err(retry(format!("token endpoint: {e}")));
        }
    };
    let body: Value = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
    // Only Google's error code and description: never the request's secrets.
    let what = format!(
        "{} {}",
        body["error"].as_str().unwrap_or(""),
        body["error_description"].as_str().unwrap_or("")
    );
    match (response.status, body["access_token"].as_str()) {
        (200..=299, Some(token)) => {
            let expires_in = body["expires_in"]
                .as_i64()
                .unwrap_or(3600)
                .clamp(60, 86_400) as i32;
            db.execute(
                STORE,
                &[
                    id.clone(),
                    ParameterValue::Str(token.to_string()),
                    ParameterValue::Int32(expires_in),
                ],
            )
            .map_err(|e| retry(format!("token cache: {e}")))?;
            Ok(token.to_string())
        }
        (400 | 401, _) if body["error"] == "invalid_grant" => {
            release(Some(fingerprint));
            Err(revoked(grant, what.trim()))
        }
        (400 | 401, _)
            if matches!(
                body["error"].as_str(),
                Some("invalid_client" | "unauthorized_client")
            ) =>
        {
            release(None);
            Err(Outcome::DeadLetter {
                reason: "auth".into(),
                error: format!(
                    "Google refused the OAuth client ({}): check client_id and client_secret",
                    what.trim()
                ),
            })
        }
        (status, _) => {
            release(None);
            Err(retry(format!(
                "token endpoint: HTTP {status} {}",
                what.trim()
            )))
        }
    }
}

/// Drops a cached token Google refused (HTTP 401), so the next send refreshes.
pub fn forget(db: &Db, destination_id: &str) {
    let _ = db.execute(FORGET, &[ParameterValue::Str(destination_id.to_string())]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waiting_for_another_refresh_never_outlasts_the_deadline() {
        assert_eq!(wait_limit(Duration::from_secs(2)), Duration::from_secs(2));
        assert_eq!(wait_limit(Duration::from_secs(60)), WAIT);
    }
}
