//! Placing a visitor's IP: each configured provider in turn until one finds
//! it, with a report of what was tried (kept with the lead). The lookups
//! themselves are passed in, so the chain tests natively.

use std::net::IpAddr;
use std::str::FromStr;
use std::time::Instant;

use serde_json::{json, Value};

use crate::geo::IpLocation;
use crate::ip_scope;

/// DB-IP Lite's licence (CC BY 4.0) asks for this wherever its results are shown.
pub const DBIP_ATTRIBUTION: &str = "IP Geolocation by DB-IP (https://db-ip.com)";

/// A geo provider, as the `geo_providers` variable names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    /// The DB-IP Lite city data imported into Postgres.
    Embedded,
    /// An ip-api-style JSON API.
    Remote,
}

impl Provider {
    pub fn name(self) -> &'static str {
        match self {
            Provider::Embedded => "embedded",
            Provider::Remote => "remote",
        }
    }
}

impl FromStr for Provider {
    type Err = String;
    fn from_str(s: &str) -> Result<Provider, String> {
        match s {
            "embedded" => Ok(Provider::Embedded),
            "remote" => Ok(Provider::Remote),
            other => Err(format!(
                "unknown provider {other:?} (embedded, remote, none)"
            )),
        }
    }
}

/// The providers of a `geo_providers` value: comma-separated, in order;
/// `none` or nothing for none.
pub fn parse_providers(list: &str) -> Result<Vec<Provider>, String> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty() && *s != "none")
        .map(str::parse)
        .collect()
}

/// Looks `ip` up with each provider until one finds it. `lookup` answers
/// `Ok(None)` for an address the provider does not know and `Err` for a
/// provider that failed. Returns the location and the report.
pub fn locate(
    ip: Option<IpAddr>,
    providers: &[Provider],
    mut lookup: impl FnMut(Provider, IpAddr) -> Result<Option<IpLocation>, String>,
) -> (Option<IpLocation>, Value) {
    let Some(ip) = ip else {
        return (None, json!({ "outcome": "no_ip" }));
    };
    // Private, loopback, CGNAT, documentation...: no provider can place them.
    if let Some(reason) = ip_scope::reason(ip) {
        return (None, json!({ "outcome": "not_global", "reason": reason }));
    }
    let mut tried = Vec::new();
    for &provider in providers {
        let started = Instant::now();
        let result = lookup(provider, ip);
        let ms = started.elapsed().as_millis() as u64;
        let name = provider.name();
        match result {
            Ok(Some(location)) => {
                let mut report =
                    json!({ "outcome": "found", "provider": name, "ms": ms, "tried": tried });
                if provider == Provider::Embedded {
                    report["attribution"] = json!(DBIP_ATTRIBUTION);
                }
                return (Some(location), report);
            }
            Ok(None) => tried.push(json!({ "provider": name, "outcome": "not_found", "ms": ms })),
            Err(error) => tried
                .push(json!({ "provider": name, "outcome": "failed", "error": error, "ms": ms })),
        }
    }
    (None, json!({ "outcome": "not_found", "tried": tried }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn place(country: &str) -> IpLocation {
        IpLocation {
            country_code: Some(country.into()),
            ..IpLocation::default()
        }
    }

    #[test]
    fn providers_are_read_in_order() {
        assert_eq!(
            parse_providers(" remote , embedded").unwrap(),
            [Provider::Remote, Provider::Embedded]
        );
        assert_eq!(parse_providers("none").unwrap(), []);
        assert!(parse_providers("embedded,maxmind")
            .unwrap_err()
            .contains("maxmind"));
    }

    #[test]
    fn the_first_provider_that_finds_the_ip_wins_and_the_others_are_reported() {
        let ip: IpAddr = "8.8.8.8".parse().unwrap();
        let (found, report) =
            locate(
                Some(ip),
                &[Provider::Remote, Provider::Embedded],
                |p, _| match p {
                    Provider::Remote => Err("HTTP 500".into()),
                    Provider::Embedded => Ok(Some(place("US"))),
                },
            );
        assert_eq!(found, Some(place("US")));
        assert_eq!(report["provider"], "embedded");
        assert_eq!(report["attribution"], DBIP_ATTRIBUTION);
        assert_eq!(report["tried"][0]["outcome"], "failed");
        assert_eq!(report["tried"][0]["error"], "HTTP 500");
        let (found, report) = locate(Some(ip), &[Provider::Embedded], |_, _| Ok(None));
        assert_eq!((found, &report["outcome"]), (None, &json!("not_found")));
    }

    #[test]
    fn addresses_no_provider_can_place_are_not_looked_up() {
        let mut calls = 0;
        let (_, report) = locate(
            Some("10.1.2.3".parse().unwrap()),
            &[Provider::Embedded],
            |_, _| {
                calls += 1;
                Ok(None)
            },
        );
        assert_eq!((report["outcome"].as_str(), calls), (Some("not_global"), 0));
        assert_eq!(
            locate(None, &[Provider::Embedded], |_, _| Ok(None)).1["outcome"],
            "no_ip"
        );
    }
}
