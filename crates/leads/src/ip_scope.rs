//! Which visitor addresses may be sent to a geo lookup: only globally routable
//! ones. Everything the IANA IPv4 and IPv6 Special-Purpose Address Registries
//! list as not globally reachable is refused, and so are a few blocks the
//! registries mark reachable but that are never a visitor's own address
//! (anycast infrastructure such as AS112 and AMT, the 6to4 and Teredo
//! transition blocks, ORCHID identifiers): a geo database has nothing true to
//! say about them.
//!
//! IPv4-mapped (`::ffff:a.b.c.d`) and NAT64 (`64:ff9b::a.b.c.d`) addresses are
//! judged by the IPv4 address they carry. IPv6 outside `2000::/3`, the only
//! block IANA allocates for global unicast, is "reserved".

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{Ipv4Net, Ipv6Net};

const fn v4(a: u8, b: u8, c: u8, d: u8, len: u8) -> Ipv4Net {
    Ipv4Net::new_assert(Ipv4Addr::new(a, b, c, d), len)
}

#[allow(clippy::too_many_arguments)]
const fn v6(a: u16, b: u16, c: u16, d: u16, e: u16, f: u16, g: u16, h: u16, len: u8) -> Ipv6Net {
    Ipv6Net::new_assert(Ipv6Addr::new(a, b, c, d, e, f, g, h), len)
}

/// Non-global IPv4 blocks. The first match wins: a block comes before any
/// block that contains it.
#[rustfmt::skip]
const V4: &[(Ipv4Net, &str)] = &[
    (v4(0, 0, 0, 0, 32), "unspecified"),
    (v4(0, 0, 0, 0, 8), "this-network"),
    (v4(10, 0, 0, 0, 8), "private"),
    (v4(100, 64, 0, 0, 10), "cgnat"),
    (v4(127, 0, 0, 0, 8), "loopback"),
    (v4(169, 254, 0, 0, 16), "link-local"),
    (v4(172, 16, 0, 0, 12), "private"),
    (v4(192, 0, 0, 0, 24), "ietf-protocol"),
    (v4(192, 0, 2, 0, 24), "documentation"),
    (v4(192, 31, 196, 0, 24), "as112"),
    (v4(192, 52, 193, 0, 24), "amt"),
    (v4(192, 88, 99, 0, 24), "6to4-relay"),
    (v4(192, 168, 0, 0, 16), "private"),
    (v4(192, 175, 48, 0, 24), "as112"),
    (v4(198, 18, 0, 0, 15), "benchmarking"),
    (v4(198, 51, 100, 0, 24), "documentation"),
    (v4(203, 0, 113, 0, 24), "documentation"),
    (v4(224, 0, 0, 0, 4), "multicast"),
    (v4(255, 255, 255, 255, 32), "broadcast"),
    (v4(240, 0, 0, 0, 4), "reserved"),
];

/// Non-global IPv6 blocks, first match wins. `::ffff:0:0/96` and
/// `64:ff9b::/96` are handled before this table (by their IPv4 address).
#[rustfmt::skip]
const V6: &[(Ipv6Net, &str)] = &[
    (v6(0, 0, 0, 0, 0, 0, 0, 0, 128), "unspecified"),
    (v6(0, 0, 0, 0, 0, 0, 0, 1, 128), "loopback"),
    (v6(0x64, 0xff9b, 1, 0, 0, 0, 0, 0, 48), "nat64-local"),
    (v6(0x100, 0, 0, 0, 0, 0, 0, 0, 64), "discard"),
    (v6(0x100, 0, 0, 1, 0, 0, 0, 0, 64), "dummy"),
    (v6(0x2001, 0, 0, 0, 0, 0, 0, 0, 32), "teredo"),
    (v6(0x2001, 2, 0, 0, 0, 0, 0, 0, 48), "benchmarking"),
    (v6(0x2001, 0x10, 0, 0, 0, 0, 0, 0, 28), "orchid"),
    (v6(0x2001, 0x20, 0, 0, 0, 0, 0, 0, 28), "orchid"),
    (v6(0x2001, 0, 0, 0, 0, 0, 0, 0, 23), "ietf-protocol"),
    (v6(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0, 32), "documentation"),
    (v6(0x2002, 0, 0, 0, 0, 0, 0, 0, 16), "6to4"),
    (v6(0x2620, 0x4f, 0x8000, 0, 0, 0, 0, 0, 48), "as112"),
    (v6(0x3fff, 0, 0, 0, 0, 0, 0, 0, 20), "documentation"),
    (v6(0x5f00, 0, 0, 0, 0, 0, 0, 0, 16), "srv6"),
    (v6(0xfc00, 0, 0, 0, 0, 0, 0, 0, 7), "unique-local"),
    (v6(0xfe80, 0, 0, 0, 0, 0, 0, 0, 10), "link-local"),
    (v6(0xfec0, 0, 0, 0, 0, 0, 0, 0, 10), "site-local"),
    (v6(0xff00, 0, 0, 0, 0, 0, 0, 0, 8), "multicast"),
];

const MAPPED: Ipv6Net = v6(0, 0, 0, 0, 0, 0xffff, 0, 0, 96);
const NAT64: Ipv6Net = v6(0x64, 0xff9b, 0, 0, 0, 0, 0, 0, 96);
const GLOBAL_UNICAST: Ipv6Net = v6(0x2000, 0, 0, 0, 0, 0, 0, 0, 3);

/// Whether the address is globally routable, so may be sent to a geo lookup.
pub fn is_global(ip: IpAddr) -> bool {
    reason(ip).is_none()
}

/// The short name of the special-purpose block that makes the address
/// non-global ("private", "loopback", "cgnat", "documentation", ...), or
/// `None` for a globally routable address.
pub fn reason(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(a) => reason_v4(a),
        IpAddr::V6(a) => reason_v6(a),
    }
}

fn reason_v4(ip: Ipv4Addr) -> Option<&'static str> {
    V4.iter()
        .find(|(net, _)| net.contains(&ip))
        .map(|(_, why)| *why)
}

fn reason_v6(ip: Ipv6Addr) -> Option<&'static str> {
    if MAPPED.contains(&ip) || NAT64.contains(&ip) {
        let [.., a, b, c, d] = ip.octets();
        return reason_v4(Ipv4Addr::new(a, b, c, d));
    }
    if let Some((_, why)) = V6.iter().find(|(net, _)| net.contains(&ip)) {
        return Some(why);
    }
    if !GLOBAL_UNICAST.contains(&ip) {
        return Some("reserved");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        #[rustfmt::skip]
        let cases: &[(&str, Option<&str>)] = &[
            // IPv4
            ("0.0.0.0", Some("unspecified")),
            ("0.255.255.255", Some("this-network")),
            ("1.0.0.0", None),
            ("1.1.1.1", None),
            ("8.8.8.8", None),
            ("9.255.255.255", None),
            ("10.0.0.0", Some("private")),
            ("10.255.255.255", Some("private")),
            ("11.0.0.0", None),
            ("100.63.255.255", None),
            ("100.64.0.0", Some("cgnat")),
            ("100.127.255.255", Some("cgnat")),
            ("100.128.0.0", None),
            ("126.255.255.255", None),
            ("127.0.0.1", Some("loopback")),
            ("128.0.0.0", None),
            ("169.253.255.255", None),
            ("169.254.169.254", Some("link-local")),
            ("169.255.0.0", None),
            ("172.15.255.255", None),
            ("172.16.0.0", Some("private")),
            ("172.31.255.255", Some("private")),
            ("172.32.0.0", None),
            ("191.255.255.255", None),
            ("192.0.0.0", Some("ietf-protocol")),
            ("192.0.0.255", Some("ietf-protocol")),
            ("192.0.1.0", None),
            ("192.0.2.1", Some("documentation")),
            ("192.0.3.0", None),
            ("192.31.196.1", Some("as112")),
            ("192.52.193.1", Some("amt")),
            ("192.88.99.1", Some("6to4-relay")),
            ("192.88.100.0", None),
            ("192.167.255.255", None),
            ("192.168.0.0", Some("private")),
            ("192.168.255.255", Some("private")),
            ("192.169.0.0", None),
            ("192.175.48.1", Some("as112")),
            ("198.17.255.255", None),
            ("198.18.0.0", Some("benchmarking")),
            ("198.19.255.255", Some("benchmarking")),
            ("198.20.0.0", None),
            ("198.51.100.7", Some("documentation")),
            ("203.0.112.255", None),
            ("203.0.113.0", Some("documentation")),
            ("203.0.114.0", None),
            ("223.255.255.255", None),
            ("224.0.0.0", Some("multicast")),
            ("239.255.255.255", Some("multicast")),
            ("240.0.0.0", Some("reserved")),
            ("255.255.255.254", Some("reserved")),
            ("255.255.255.255", Some("broadcast")),
            // IPv6
            ("::", Some("unspecified")),
            ("::1", Some("loopback")),
            ("::2", Some("reserved")),
            ("::8.8.8.8", Some("reserved")),
            ("::ffff:10.0.0.1", Some("private")),
            ("::ffff:127.0.0.1", Some("loopback")),
            ("::ffff:8.8.8.8", None),
            ("64:ff9b::8.8.8.8", None),
            ("64:ff9b::192.168.1.1", Some("private")),
            ("64:ff9b:1::1", Some("nat64-local")),
            ("100::1", Some("discard")),
            ("100:0:0:1::1", Some("dummy")),
            ("1fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", Some("reserved")),
            ("2000::1", None),
            ("2001::1", Some("teredo")),
            ("2001:0:4136:e378:8000:63bf:3fff:fdd2", Some("teredo")),
            ("2001:1::1", Some("ietf-protocol")),
            ("2001:2::1", Some("benchmarking")),
            ("2001:2:1::1", Some("ietf-protocol")),
            ("2001:10::1", Some("orchid")),
            ("2001:20::1", Some("orchid")),
            ("2001:1ff:ffff:ffff:ffff:ffff:ffff:ffff", Some("ietf-protocol")),
            ("2001:200::1", None),
            ("2001:db7:ffff:ffff:ffff:ffff:ffff:ffff", None),
            ("2001:db8::1", Some("documentation")),
            ("2001:db9::", None),
            ("2001:4860:4860::8888", None),
            ("2002::1", Some("6to4")),
            ("2002:c000:204::1", Some("6to4")),
            ("2003::1", None),
            ("2606:4700::1111", None),
            ("2620:4f:8000::1", Some("as112")),
            ("2620:4f:8001::1", None),
            ("2a00:1450:4001:81c::200e", None),
            ("3fff::1", Some("documentation")),
            ("3fff:fff:ffff::1", Some("documentation")),
            ("3fff:1000::1", None),
            ("4000::1", Some("reserved")),
            ("5f00::1", Some("srv6")),
            ("fbff:ffff::1", Some("reserved")),
            ("fc00::1", Some("unique-local")),
            ("fd12::1", Some("unique-local")),
            ("fe80::1", Some("link-local")),
            ("febf:ffff::1", Some("link-local")),
            ("fec0::1", Some("site-local")),
            ("ff02::1", Some("multicast")),
        ];
        for (text, expected) in cases {
            let ip: IpAddr = text.parse().unwrap();
            assert_eq!(reason(ip), *expected, "{text}");
            assert_eq!(is_global(ip), expected.is_none(), "{text}");
        }
    }

    /// First match wins, so no block may come after a block containing it.
    #[test]
    fn no_block_is_shadowed() {
        for (i, (later, _)) in V4.iter().enumerate() {
            for (earlier, _) in &V4[..i] {
                assert!(!earlier.contains(later), "{later} is shadowed by {earlier}");
            }
        }
        for (i, (later, _)) in V6.iter().enumerate() {
            for (earlier, _) in &V6[..i] {
                assert!(!earlier.contains(later), "{later} is shadowed by {earlier}");
            }
        }
    }
}
