//! The `sessions` endpoint's opaque cursor: the position after the last
//! session of a page (`last_seen_at` in µs, `session_id`), signed with
//! HMAC-SHA256 under `admin_jwt_secret` and bound to the client, so a cursor
//! that was altered, forged or taken from another client is refused (400)
//! instead of reaching SQL.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

/// Where the next page starts: strictly after this session in the order
/// `last_seen_at DESC, session_id DESC`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    pub last_seen_us: i64,
    pub session_id: String,
}

fn mac(secret: &str, client_id: &str, payload: &str) -> Hmac<Sha256> {
    let mut m = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    m.update(b"analytics-sessions-cursor\n");
    m.update(client_id.to_ascii_lowercase().as_bytes());
    m.update(b"\n");
    m.update(payload.as_bytes());
    m
}

/// The cursor for `p` on `client_id`.
pub fn sign(p: &Position, client_id: &str, secret: &str) -> String {
    let payload =
        URL_SAFE_NO_PAD.encode(json!({ "t": p.last_seen_us, "s": p.session_id }).to_string());
    let tag = URL_SAFE_NO_PAD.encode(mac(secret, client_id, &payload).finalize().into_bytes());
    format!("{payload}.{tag}")
}

/// The position of a cursor this API issued for `client_id`, or None.
pub fn verify(cursor: &str, client_id: &str, secret: &str) -> Option<Position> {
    let (payload, tag) = cursor.split_once('.')?;
    let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
    mac(secret, client_id, payload).verify_slice(&tag).ok()?;
    let value: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
    Some(Position {
        last_seen_us: value.get("t")?.as_i64()?,
        session_id: value.get("s")?.as_str()?.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLIENT: &str = "6f1c8b7e-1234-4a5b-9c8d-0123456789ab";

    #[test]
    fn a_cursor_round_trips_and_any_change_is_refused() {
        let p = Position {
            last_seen_us: 1_795_342_500_123_456,
            session_id: "s-42".into(),
        };
        let c = sign(&p, CLIENT, "secret");
        assert_eq!(verify(&c, CLIENT, "secret"), Some(p.clone()));
        assert_eq!(verify(&c, &CLIENT.to_uppercase(), "secret"), Some(p));
        assert_eq!(verify(&c, CLIENT, "other secret"), None);
        assert_eq!(
            verify(&c, "00000000-0000-0000-0000-000000000000", "secret"),
            None
        );
        // Flip each character of the cursor in turn.
        for i in 0..c.len() {
            let mut bytes = c.clone().into_bytes();
            bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
            let tampered = String::from_utf8(bytes).unwrap();
            if tampered != c {
                assert_eq!(verify(&tampered, CLIENT, "secret"), None, "{tampered}");
            }
        }
        // A forged payload with a made-up tag.
        let forged = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(r#"{"t":1,"s":"x' OR 1=1"}"#),
            URL_SAFE_NO_PAD.encode([0u8; 32])
        );
        assert_eq!(verify(&forged, CLIENT, "secret"), None);
        assert_eq!(verify("garbage", CLIENT, "secret"), None);
    }
}
