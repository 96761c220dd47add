//! The visitor's IP: the peer address Spin reports in `spin-client-addr`, or,
//! when that peer is a configured trusted proxy, the first address in
//! `X-Forwarded-For` (read right to left) that is not a trusted proxy.
//! Stored truncated (IPv4 /24, IPv6 /48) unless configured otherwise.

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

pub use ipnet::IpNet;

/// How the IP is kept with each event (the `ip_storage` variable).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpStorage {
    Truncated,
    Raw,
    None,
}

impl FromStr for IpStorage {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "truncated" | "" => Ok(IpStorage::Truncated),
            "raw" => Ok(IpStorage::Raw),
            "none" => Ok(IpStorage::None),
            other => Err(format!(
                "ip_storage must be truncated, raw or none, got {other:?}"
            )),
        }
    }
}

/// Parses the `trusted_proxies` variable: comma-separated IPs or CIDRs.
pub fn parse_trusted(list: &str) -> Result<Vec<IpNet>, String> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<IpNet>()
                .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| format!("trusted_proxies: {s:?} is not an IP or CIDR"))
        })
        .collect()
}

fn parse_addr(s: &str) -> Option<IpAddr> {
    let s = s.trim();
    s.parse::<SocketAddr>()
        .map(|a| a.ip())
        .or_else(|_| {
            s.trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<IpAddr>()
        })
        .ok()
}

/// The visitor's address.
pub fn client_ip(
    peer: Option<&str>,
    forwarded_for: Option<&str>,
    trusted: &[IpNet],
) -> Option<IpAddr> {
    let peer = peer.and_then(parse_addr)?;
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(ip));
    if !is_trusted(&peer) {
        return Some(peer);
    }
    let Some(xff) = forwarded_for else {
        return Some(peer);
    };
    let mut last = peer;
    for hop in xff.split(',').rev() {
        match parse_addr(hop) {
            Some(ip) if is_trusted(&ip) => last = ip,
            Some(ip) => return Some(ip),
            // A malformed hop: nothing left of it can be trusted.
            None => return Some(last),
        }
    }
    Some(last)
}

/// What is stored for `ip` under `mode`.
pub fn stored(ip: IpAddr, mode: IpStorage) -> Option<String> {
    match mode {
        IpStorage::None => None,
        IpStorage::Raw => Some(ip.to_string()),
        IpStorage::Truncated => {
            let prefix = if ip.is_ipv4() { 24 } else { 48 };
            IpNet::new(ip, prefix)
                .ok()
                .map(|n| n.trunc().addr().to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_unless_behind_a_trusted_proxy() {
        let trusted = parse_trusted("10.0.0.0/8, 192.0.2.1").unwrap();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(
            client_ip(Some("203.0.113.9:5555"), Some("1.2.3.4"), &trusted),
            Some(ip("203.0.113.9"))
        );
        assert_eq!(
            client_ip(
                Some("10.1.1.1:80"),
                Some("198.51.100.7, 10.2.2.2"),
                &trusted
            ),
            Some(ip("198.51.100.7"))
        );
        assert_eq!(
            client_ip(
                Some("10.1.1.1:80"),
                Some("6.6.6.6, 198.51.100.7, 192.0.2.1"),
                &trusted
            ),
            Some(ip("198.51.100.7"))
        );
        assert_eq!(
            client_ip(Some("10.1.1.1:80"), None, &trusted),
            Some(ip("10.1.1.1"))
        );
        assert_eq!(
            client_ip(Some("[2001:db8::1]:443"), None, &trusted),
            Some(ip("2001:db8::1"))
        );
        assert_eq!(client_ip(None, Some("1.2.3.4"), &trusted), None);
        assert!(parse_trusted("nope").is_err());
    }

    #[test]
    fn truncation() {
        let v4: IpAddr = "203.0.113.77".parse().unwrap();
        let v6: IpAddr = "2001:db8:abcd:12::1".parse().unwrap();
        assert_eq!(
            stored(v4, IpStorage::Truncated).as_deref(),
            Some("203.0.113.0")
        );
        assert_eq!(
            stored(v6, IpStorage::Truncated).as_deref(),
            Some("2001:db8:abcd::")
        );
        assert_eq!(stored(v4, IpStorage::Raw).as_deref(), Some("203.0.113.77"));
        assert_eq!(stored(v4, IpStorage::None), None);
    }
}
