//! `allowed_outbound_hosts`: Spin's syntax (`scheme://host[:port]` with `*`
//! wildcards, `*.suffix` hosts, IPs and CIDRs, port ranges `a..b`) and its
//! check, which compares hosts literally (`localhost` is not `127.0.0.1`).

use std::net::IpAddr;

use anyhow::{bail, Context, Result};

/// One parsed `allowed_outbound_hosts` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct AllowedHost {
    scheme: Option<String>,
    host: HostPattern,
    port: PortPattern,
}

#[derive(Debug, Clone, PartialEq)]
enum HostPattern {
    Any,
    Suffix(String),
    Literal(String),
    Cidr(IpAddr, u8),
}

#[derive(Debug, Clone, PartialEq)]
enum PortPattern {
    Any,
    Range(u16, u16),
}

/// A component's allowed outbound hosts.
#[derive(Debug, Clone, Default)]
pub struct AllowedHosts(Vec<AllowedHost>);

/// The port a scheme uses when the URL names none.
pub fn default_port(scheme: &str) -> Option<u16> {
    Some(match scheme {
        "postgres" => 5432,
        "mysql" => 3306,
        "redis" => 6379,
        "mqtt" => 1883,
        "http" => 80,
        "https" => 443,
        _ => return None,
    })
}

impl AllowedHosts {
    /// Parses the (already template-expanded) entries; empty entries are dropped, as in Spin.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Self> {
        let mut hosts = Vec::new();
        for entry in entries {
            let entry = entry.as_ref();
            if entry.is_empty() || entry == "http://" || entry == "https://" {
                continue;
            }
            hosts.push(
                parse_entry(entry)
                    .with_context(|| format!("allowed_outbound_hosts entry {entry:?}"))?,
            );
        }
        Ok(AllowedHosts(hosts))
    }

    /// Whether `scheme://host[:port]` may be reached. `port` is `None` when the URL names none.
    pub fn allows(&self, scheme: &str, host: &str, port: Option<u16>) -> bool {
        let Some(port) = port.or_else(|| default_port(scheme)) else {
            return false;
        };
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        self.0.iter().any(|a| {
            a.scheme.as_deref().is_none_or(|s| s == scheme)
                && a.port.matches(port)
                && a.host.matches(&host)
        })
    }
}

impl PortPattern {
    fn matches(&self, port: u16) -> bool {
        match self {
            PortPattern::Any => true,
            PortPattern::Range(lo, hi) => (*lo..*hi).contains(&port),
        }
    }
}

impl HostPattern {
    fn matches(&self, host: &str) -> bool {
        match self {
            HostPattern::Any => true,
            HostPattern::Suffix(suffix) => host.ends_with(suffix.as_str()),
            HostPattern::Literal(h) => h == host,
            HostPattern::Cidr(net, bits) => match host.parse::<IpAddr>() {
                Ok(ip) => in_cidr(ip, *net, *bits),
                Err(_) => false,
            },
        }
    }
}

fn in_cidr(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - bits)
            };
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - bits)
            };
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

fn parse_entry(entry: &str) -> Result<AllowedHost> {
    if entry == "*" {
        bail!("'*' is not allowed: use '*://*:*'");
    }
    let Some((scheme, rest)) = entry.split_once("://") else {
        bail!("does not contain a scheme (e.g., 'http://' or '*://')");
    };
    let scheme = match scheme {
        "*" => None,
        s if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphabetic()) => Some(s.to_string()),
        s => bail!("invalid scheme {s:?}"),
    };
    if rest.contains('/') && !rest.contains("::") && !looks_like_cidr(rest) {
        bail!("paths are not allowed");
    }
    let (host, port) = split_host_port(rest)?;
    let port = match port {
        None => match scheme.as_deref().and_then(default_port) {
            Some(p) => PortPattern::Range(p, p + 1),
            None => bail!(
                "no port was provided and the scheme {:?} does not have a known default port number",
                scheme.as_deref().unwrap_or("*")
            ),
        },
        Some("*") => PortPattern::Any,
        Some(p) => match p.split_once("..") {
            Some((lo, hi)) => PortPattern::Range(lo.parse()?, hi.parse()?),
            None => {
                let p: u16 = p.parse().with_context(|| format!("invalid port {p:?}"))?;
                PortPattern::Range(p, p.saturating_add(1))
            }
        },
    };
    let host = if host == "*" {
        HostPattern::Any
    } else if let Some(suffix) = host.strip_prefix("*.") {
        HostPattern::Suffix(format!(".{}", suffix.to_ascii_lowercase()))
    } else if let Some((net, bits)) = host.split_once('/') {
        HostPattern::Cidr(net.parse()?, bits.parse()?)
    } else if host.is_empty() {
        bail!("missing host");
    } else {
        HostPattern::Literal(
            host.trim_start_matches('[')
                .trim_end_matches(']')
                .to_ascii_lowercase(),
        )
    };
    Ok(AllowedHost { scheme, host, port })
}

fn looks_like_cidr(rest: &str) -> bool {
    rest.split_once('/')
        .is_some_and(|(_, after)| after.chars().take_while(|c| c.is_ascii_digit()).count() > 0)
}

/// Splits `host[:port]`, with `[v6]` hosts.
fn split_host_port(s: &str) -> Result<(&str, Option<&str>)> {
    if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']').context("unclosed '['")?;
        return Ok((host, after.strip_prefix(':')));
    }
    Ok(match s.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => (h, Some(p)),
        _ => (s, None),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_hosts_are_literal() {
        let a = AllowedHosts::parse(&["postgres://localhost:5432"]).unwrap();
        assert!(a.allows("postgres", "localhost", Some(5432)));
        assert!(a.allows("postgres", "localhost", None));
        assert!(!a.allows("postgres", "127.0.0.1", Some(5432)));
        assert!(!a.allows("postgres", "localhost", Some(5433)));
        assert!(!a.allows("http", "localhost", Some(5432)));
    }

    #[test]
    fn default_ports_wildcards_and_ranges() {
        let a = AllowedHosts::parse(&[
            "https://api.example.com",
            "http://*.test:*",
            "*://10.0.0.0/8:8000..8002",
        ])
        .unwrap();
        assert!(a.allows("https", "api.example.com", None));
        assert!(!a.allows("https", "api.example.com", Some(8443)));
        assert!(a.allows("http", "a.b.test", Some(1234)));
        assert!(!a.allows("http", "test", Some(1234)));
        assert!(a.allows("http", "10.1.2.3", Some(8001)));
        assert!(!a.allows("http", "10.1.2.3", Some(8002)));
        assert!(!a.allows("http", "11.1.2.3", Some(8001)));
    }

    #[test]
    fn rejects_malformed_entries() {
        assert!(AllowedHosts::parse(&["*"]).is_err());
        assert!(AllowedHosts::parse(&["localhost:80"]).is_err());
        assert!(AllowedHosts::parse(&["*://localhost"]).is_err());
        assert!(AllowedHosts::parse(&["https://example.com/path"]).is_err());
        assert!(AllowedHosts::parse(&[""]).unwrap().0.is_empty());
    }
}
