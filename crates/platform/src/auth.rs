//! Admin and client-user authentication for the `/admin/...` endpoints:
//! `Authorization: Bearer <JWT>`, HS256, signed with the Spin variable
//! `admin_jwt_secret`. The role is the `role` claim, or Supabase's
//! `app_metadata.role`; a client user's token lists the clients it may read
//! in `client_ids`. No token or a bad one → 401; a valid token without the
//! needed role or client → 403.

use jsonwebtoken::{decode, Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::Value;

use crate::error::ApiError;

/// Who a valid token says the caller is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub subject: Option<String>,
    pub role: Option<String>,
    /// Lower-case client UUIDs a client user may read.
    pub client_ids: Vec<String>,
}

impl Caller {
    pub fn is_admin(&self) -> bool {
        self.role.as_deref() == Some("admin")
    }

    /// Admins read every client; others only the clients their token lists.
    pub fn may_read_client(&self, client_id: &str) -> bool {
        self.is_admin()
            || self
                .client_ids
                .iter()
                .any(|c| c.eq_ignore_ascii_case(client_id))
    }
}

#[derive(Deserialize)]
struct Claims {
    sub: Option<String>,
    role: Option<String>,
    app_metadata: Option<Value>,
    #[serde(default)]
    client_ids: Vec<String>,
}

fn unauthorized(message: impl Into<String>) -> ApiError {
    ApiError::new(401, "unauthorized", message)
}

/// Clock skew allowed on `exp` and `nbf`, in seconds.
pub const LEEWAY_SECONDS: u64 = 5;

/// A token whose header lists `crit` extensions: none are understood here,
/// so RFC 7515 §4.1.11 says to refuse it.
fn refuse_crit(token: &str) -> Result<(), ApiError> {
    use base64::Engine;
    let header = token.split('.').next().unwrap_or_default();
    let crit = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header.trim_end_matches('='))
        .ok()
        .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
        .is_some_and(|h| h.get("crit").is_some());
    if crit {
        return Err(unauthorized(
            "the token's header lists critical extensions (crit), which are not supported",
        ));
    }
    Ok(())
}

/// Why a token was refused, in our words (never the library's).
fn why_refused(e: &jsonwebtoken::errors::Error) -> &'static str {
    use jsonwebtoken::errors::ErrorKind;
    match e.kind() {
        ErrorKind::ExpiredSignature => "the token has expired",
        ErrorKind::ImmatureSignature => "the token is not valid yet (nbf)",
        ErrorKind::InvalidSignature => "the token's signature does not match",
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
            "the token must be signed with HS256"
        }
        ErrorKind::MissingRequiredClaim(_) => "the token has no exp claim",
        _ => "the token is malformed",
    }
}

/// Checks the `Authorization` header value against `secret`.
pub fn authenticate(authorization: Option<&str>, secret: &str) -> Result<Caller, ApiError> {
    let header = authorization
        .ok_or_else(|| unauthorized("an Authorization: Bearer <token> header is required"))?;
    let token = header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| unauthorized("the Authorization header must be `Bearer <token>`"))?;
    if secret.is_empty() {
        return Err(unauthorized(
            "admin authentication is not configured (admin_jwt_secret is empty)",
        ));
    }
    refuse_crit(token)?;
    let mut validation = Validation::new(Algorithm::HS256);
    validation.validate_aud = false;
    validation.validate_nbf = true;
    validation.leeway = LEEWAY_SECONDS;
    validation.required_spec_claims.clear();
    validation.required_spec_claims.insert("exp".to_string());
    let data = decode::<Claims>(
        token,
        &DecodingKey::from_secret(secret.as_bytes()),
        &validation,
    )
    .map_err(|e| unauthorized(why_refused(&e)))?;
    let claims = data.claims;
    let app_role = claims
        .app_metadata
        .as_ref()
        .and_then(|m| m.get("role"))
        .and_then(Value::as_str)
        .map(str::to_string);
    Ok(Caller {
        subject: claims.sub,
        // An explicit admin role wins wherever it is given.
        role: match (claims.role, app_role) {
            (Some(r), _) if r == "admin" => Some(r),
            (_, Some(r)) if r == "admin" => Some(r),
            (r, a) => r.or(a),
        },
        client_ids: claims
            .client_ids
            .into_iter()
            .map(|c| c.to_ascii_lowercase())
            .collect(),
    })
}

/// `authenticate`, then require the admin role.
pub fn require_admin(authorization: Option<&str>, secret: &str) -> Result<Caller, ApiError> {
    let caller = authenticate(authorization, secret)?;
    if caller.is_admin() {
        Ok(caller)
    } else {
        Err(ApiError::new(
            403,
            "forbidden",
            "this endpoint needs the admin role",
        ))
    }
}

/// The secret admin tokens are signed with: the Spin variable
/// `admin_jwt_secret` (empty: every token is refused).
pub fn secret() -> String {
    spin_sdk::variables::get("admin_jwt_secret").unwrap_or_default()
}

/// Whether the request carries `Authorization: Bearer <token>` with this
/// exact token (an empty token matches nothing). Compared in constant time,
/// so the token cannot be guessed byte by byte.
pub fn bearer_is(req: &spin_sdk::http::Request, token: &str) -> bool {
    let given = crate::request::header(req, "authorization")
        .and_then(|h| h.strip_prefix("Bearer "))
        .unwrap_or_default()
        .trim();
    !token.is_empty()
        && token.len() == given.len()
        && token
            .bytes()
            .zip(given.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// The caller of a request, whatever its role (401 without a valid token).
pub fn caller(req: &spin_sdk::http::Request) -> Result<Caller, ApiError> {
    authenticate(crate::request::header(req, "authorization"), &secret())
}

/// The caller of an admin endpoint (401 without a valid token, 403 without
/// the admin role).
pub fn admin(req: &spin_sdk::http::Request) -> Result<Caller, ApiError> {
    require_admin(crate::request::header(req, "authorization"), &secret())
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{encode, EncodingKey, Header};
    use serde_json::json;

    const SECRET: &str = "test-secret";

    fn token(claims: Value, secret: &str, alg: Algorithm) -> String {
        encode(
            &Header::new(alg),
            &claims,
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    }

    fn bearer(claims: Value) -> String {
        format!("Bearer {}", token(claims, SECRET, Algorithm::HS256))
    }

    fn exp() -> i64 {
        4_102_444_800 // 2100-01-01
    }

    fn chrono_now() -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
    }

    #[test]
    fn admins_by_role_or_supabase_app_metadata() {
        let a = require_admin(
            Some(&bearer(json!({"sub": "u1", "role": "admin", "exp": exp()}))),
            SECRET,
        )
        .unwrap();
        assert_eq!(a.subject.as_deref(), Some("u1"));
        let b = require_admin(
            Some(&bearer(
                json!({"role": "authenticated", "app_metadata": {"role": "admin"}, "exp": exp()}),
            )),
            SECRET,
        );
        assert!(b.is_ok());
    }

    #[test]
    fn missing_or_bad_tokens_are_401_and_wrong_roles_403() {
        let status = |auth: Option<&str>| require_admin(auth, SECRET).unwrap_err().status;
        assert_eq!(status(None), 401);
        assert_eq!(status(Some("Basic abc")), 401);
        assert_eq!(status(Some("Bearer not.a.jwt")), 401);
        let other_secret = format!(
            "Bearer {}",
            token(
                json!({"role": "admin", "exp": exp()}),
                "other",
                Algorithm::HS256
            )
        );
        assert_eq!(status(Some(&other_secret)), 401);
        let expired = bearer(json!({"role": "admin", "exp": 1_000_000}));
        assert_eq!(status(Some(&expired)), 401);
        let hs512 = format!(
            "Bearer {}",
            token(
                json!({"role": "admin", "exp": exp()}),
                SECRET,
                Algorithm::HS512
            )
        );
        assert_eq!(status(Some(&hs512)), 401);
        let no_exp = bearer(json!({"role": "admin"}));
        assert_eq!(status(Some(&no_exp)), 401);
        // At most LEEWAY_SECONDS of clock skew.
        let now = chrono_now();
        let just_expired = bearer(json!({"role": "admin", "exp": now - 30}));
        assert_eq!(status(Some(&just_expired)), 401);
        let skewed = bearer(json!({"role": "admin", "exp": now - 2}));
        assert!(require_admin(Some(&skewed), SECRET).is_ok());
        let not_yet = bearer(json!({"role": "admin", "exp": exp(), "nbf": now + 60}));
        assert_eq!(status(Some(&not_yet)), 401);
        let mut header = Header::new(Algorithm::HS256);
        header.extras.insert("crit", vec!["exp"]);
        let crit = format!(
            "Bearer {}",
            encode(
                &header,
                &json!({"role": "admin", "exp": exp()}),
                &EncodingKey::from_secret(SECRET.as_bytes())
            )
            .unwrap()
        );
        assert_eq!(status(Some(&crit)), 401);
        // A token with alg none: refused in our words, not the library's.
        let none = "Bearer eyJhbGciOiJub25lIn0.eyJyb2xlIjoiYWRtaW4ifQ.";
        let e = require_admin(Some(none), SECRET).unwrap_err();
        assert_eq!(e.status, 401);
        assert!(!e.message.contains("variant"), "{}", e.message);
        assert_eq!(
            status(Some(&bearer(json!({"role": "client", "exp": exp()})))),
            403
        );
        assert_eq!(status(Some(&bearer(json!({"exp": exp()})))), 403);
        assert_eq!(
            require_admin(Some(&bearer(json!({"role": "admin", "exp": exp()}))), "")
                .unwrap_err()
                .status,
            401
        );
    }

    #[test]
    fn client_users_read_only_their_clients() {
        let c = authenticate(
            Some(&bearer(json!({"role": "client", "client_ids": ["6F1C8B7E-1234-4A5B-9C8D-0123456789AB"], "exp": exp()}))),
            SECRET,
        )
        .unwrap();
        assert!(c.may_read_client("6f1c8b7e-1234-4a5b-9c8d-0123456789ab"));
        assert!(!c.may_read_client("00000000-0000-0000-0000-000000000000"));
        assert!(!c.is_admin());
    }
}
