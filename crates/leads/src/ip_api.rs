//! The remote geo provider's protocol: ip-api.com's JSON API
//! (`GET {base}/json/{ip}?fields=...[&key=...]`), which other providers and
//! self-hosted services also speak.

use serde_json::Value;

use crate::geo::IpLocation;

/// The fields asked for.
pub const FIELDS: &str = "status,message,countryCode,region,regionName,city,zip";

/// The lookup URL for `ip` under `base` (an origin such as
/// `https://pro.ip-api.com`), with the API key if there is one.
pub fn url(base: &str, ip: &str, key: Option<&str>) -> String {
    let mut url = format!("{}/json/{ip}?fields={FIELDS}", base.trim_end_matches('/'));
    if let Some(key) = key.filter(|k| !k.is_empty()) {
        url.push_str("&key=");
        url.push_str(&key.replace(['&', '#', ' '], ""));
    }
    url
}

/// Reads a response body: `{"status":"success", "countryCode":"US", "region":"FL", ...}`.
/// Anything else (a `fail` status, not JSON, no country) is an error.
pub fn parse(body: &[u8]) -> Result<IpLocation, String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
    match v["status"].as_str() {
        Some("success") => {}
        Some(other) => {
            return Err(format!(
                "status {other}: {}",
                v["message"].as_str().unwrap_or("(no message)")
            ))
        }
        None => return Err("no status field".into()),
    }
    let text = |k: &str| {
        v[k].as_str()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| s.chars().take(200).collect::<String>())
    };
    let country_code = text("countryCode").and_then(|c| crate::normalize::country_code(&c));
    if country_code.is_none() {
        return Err("no countryCode in the answer".into());
    }
    Ok(IpLocation {
        country_code,
        region_code: text("region"),
        region_name: text("regionName"),
        city: text("city"),
        zip: text("zip"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_carry_fields_and_key() {
        assert_eq!(
            url("https://pro.ip-api.com/", "8.8.8.8", Some("K")),
            format!("https://pro.ip-api.com/json/8.8.8.8?fields={FIELDS}&key=K")
        );
        assert!(!url("http://127.0.0.1:9", "::1", None).contains("key="));
    }

    #[test]
    fn successful_answers_parse() {
        let l = parse(br#"{"status":"success","countryCode":"US","region":"FL","regionName":"Florida","city":"Miami","zip":"33101"}"#).unwrap();
        assert_eq!(l.country_code.as_deref(), Some("US"));
        assert_eq!(l.region_code.as_deref(), Some("FL"));
        assert_eq!(l.city.as_deref(), Some("Miami"));
        assert_eq!(l.zip.as_deref(), Some("33101"));
    }

    #[test]
    fn failures_and_garbage_are_errors() {
        assert!(parse(br#"{"status":"fail","message":"private range"}"#)
            .unwrap_err()
            .contains("private range"));
        assert!(parse(b"<html>oops</html>").is_err());
        assert!(parse(br#"{"city":"Miami"}"#).is_err());
        assert!(parse(br#"{"status":"success","countryCode":""}"#).is_err());
    }
}

/// How long to leave the provider alone after a 429: its `Retry-After` (or
/// ip-api's `X-Ttl`) in seconds, else `default_secs`, kept within 1 s–1 h.
pub fn pause_seconds(retry_after: Option<&str>, x_ttl: Option<&str>, default_secs: f64) -> f64 {
    let read = |v: Option<&str>| v.and_then(|v| v.trim().parse::<f64>().ok());
    read(retry_after)
        .or(read(x_ttl))
        .unwrap_or(default_secs)
        .clamp(1.0, 3600.0)
}

#[cfg(test)]
mod pause_tests {
    use super::pause_seconds;

    #[test]
    fn a_429_pauses_for_what_the_provider_says_within_bounds() {
        assert_eq!(pause_seconds(Some(" 30 "), Some("5"), 60.0), 30.0);
        assert_eq!(pause_seconds(None, Some("5"), 60.0), 5.0);
        assert_eq!(pause_seconds(Some("soon"), None, 60.0), 60.0);
        assert_eq!(pause_seconds(Some("0"), None, 60.0), 1.0);
        assert_eq!(pause_seconds(Some("86400"), None, 60.0), 3600.0);
    }
}
