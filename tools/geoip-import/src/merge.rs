//! Address ranges and the merge of neighbours: MMDB files store CIDR blocks,
//! and many consecutive blocks share one place, so consecutive ranges with the
//! same location become one row.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The address family of a range (IPv4 addresses are kept as `u128` too).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    fn index(self) -> usize {
        match self {
            Family::V4 => 0,
            Family::V6 => 1,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        }
    }

    /// The address `n` of this family.
    pub fn addr(self, n: u128) -> IpAddr {
        match self {
            Family::V4 => IpAddr::V4(Ipv4Addr::from(n as u32)),
            Family::V6 => IpAddr::V6(Ipv6Addr::from(n)),
        }
    }
}

/// The family and number of an address.
pub fn split(addr: IpAddr) -> (Family, u128) {
    match addr {
        IpAddr::V4(a) => (Family::V4, u32::from(a) as u128),
        IpAddr::V6(a) => (Family::V6, u128::from(a)),
    }
}

/// The first and last address of a CIDR block.
pub fn cidr_bounds(addr: IpAddr, prefix: u8) -> (Family, u128, u128) {
    let (family, n) = split(addr);
    let bits = match family {
        Family::V4 => 32,
        Family::V6 => 128,
    };
    let host_bits = bits - u32::from(prefix.min(bits as u8));
    let host_mask = if host_bits == 128 {
        u128::MAX
    } else {
        (1u128 << host_bits) - 1
    };
    (family, n & !host_mask, (n & !host_mask) | host_mask)
}

/// Addresses `from..=to` of one family, all at one location.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub family: Family,
    pub from: u128,
    pub to: u128,
    pub location: u32,
}

impl Range {
    pub fn first_addr(self) -> IpAddr {
        self.family.addr(self.from)
    }

    pub fn last_addr(self) -> IpAddr {
        self.family.addr(self.to)
    }
}

impl fmt::Display for Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}–{}", self.first_addr(), self.last_addr())
    }
}

/// Why a range cannot follow the ones before it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrderError {
    /// `to` is before `from`.
    Reversed(Range),
    /// The range starts at or before the end of the previous one of its family.
    Overlap { range: Range, previous_to: IpAddr },
}

impl fmt::Display for OrderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OrderError::Reversed(r) => write!(f, "range {r} ends before it starts"),
            OrderError::Overlap { range, previous_to } => write!(
                f,
                "range {range} starts at or before the end of the previous range ({previous_to}): \
                 ranges must be sorted and must not overlap"
            ),
        }
    }
}

impl std::error::Error for OrderError {}

/// Merges a sorted stream of ranges: a range that starts right after the
/// pending one of its family (no gap) with the same location extends it;
/// anything else hands the pending one out. IPv4 and IPv6 ranges may
/// interleave; each family must be ascending and free of overlaps.
#[derive(Debug, Default)]
pub struct Merger {
    pending: [Option<Range>; 2],
    last_to: [Option<u128>; 2],
}

impl Merger {
    pub fn new() -> Merger {
        Merger::default()
    }

    /// Takes the next range; returns a finished range when one is complete.
    pub fn push(&mut self, range: Range) -> Result<Option<Range>, OrderError> {
        if range.to < range.from {
            return Err(OrderError::Reversed(range));
        }
        let i = range.family.index();
        if let Some(last) = self.last_to[i] {
            if range.from <= last {
                return Err(OrderError::Overlap {
                    range,
                    previous_to: range.family.addr(last),
                });
            }
        }
        self.last_to[i] = Some(range.to);
        match &mut self.pending[i] {
            Some(p) if p.location == range.location && p.to + 1 == range.from => {
                p.to = range.to;
                Ok(None)
            }
            pending => Ok(pending.replace(range)),
        }
    }

    /// The ranges still pending, once the input has ended.
    pub fn finish(&mut self) -> impl Iterator<Item = Range> {
        let [a, b] = std::mem::take(&mut self.pending);
        a.into_iter().chain(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(from: &str, to: &str, location: u32) -> Range {
        let (family, from) = split(from.parse().unwrap());
        let (_, to) = split(to.parse().unwrap());
        Range {
            family,
            from,
            to,
            location,
        }
    }

    fn merge_all(input: &[Range]) -> Vec<Range> {
        let mut m = Merger::new();
        let mut out: Vec<Range> = input.iter().filter_map(|r| m.push(*r).unwrap()).collect();
        out.extend(m.finish());
        out
    }

    #[test]
    fn adjacent_ranges_with_one_location_become_one() {
        let out = merge_all(&[
            v4("1.0.0.0", "1.0.0.255", 1),
            v4("1.0.1.0", "1.0.1.255", 1),
            v4("1.0.2.0", "1.0.3.255", 1),
            v4("1.0.4.0", "1.0.4.255", 2),
        ]);
        assert_eq!(
            out,
            vec![v4("1.0.0.0", "1.0.3.255", 1), v4("1.0.4.0", "1.0.4.255", 2)]
        );
    }

    #[test]
    fn a_gap_or_another_location_keeps_ranges_apart() {
        let input = [
            v4("1.0.0.0", "1.0.0.255", 1),
            v4("1.0.2.0", "1.0.2.255", 1), // gap before it
            v4("1.0.3.0", "1.0.3.255", 2), // other place
            v4("1.0.4.0", "1.0.4.255", 1), // back to the first place
        ];
        assert_eq!(merge_all(&input), input.to_vec());
    }

    #[test]
    fn families_are_merged_separately_and_may_interleave() {
        let (_, a) = split("2001:db8::".parse().unwrap());
        let six = |from: u128, to: u128, location| Range {
            family: Family::V6,
            from,
            to,
            location,
        };
        let out = merge_all(&[
            v4("1.0.0.0", "1.0.0.255", 1),
            six(a, a + 0xff, 1),
            v4("1.0.1.0", "1.0.1.255", 1),
            six(a + 0x100, a + 0x1ff, 1),
        ]);
        assert_eq!(
            out,
            vec![v4("1.0.0.0", "1.0.1.255", 1), six(a, a + 0x1ff, 1)]
        );
    }

    #[test]
    fn the_last_addresses_of_a_family_merge_without_overflow() {
        let out = merge_all(&[
            v4("255.255.255.0", "255.255.255.254", 3),
            v4("255.255.255.255", "255.255.255.255", 3),
        ]);
        assert_eq!(out, vec![v4("255.255.255.0", "255.255.255.255", 3)]);
        let mut m = Merger::new();
        let last = Range {
            family: Family::V6,
            from: u128::MAX - 1,
            to: u128::MAX,
            location: 1,
        };
        assert_eq!(m.push(last), Ok(None));
        assert_eq!(m.finish().collect::<Vec<_>>(), vec![last]);
    }

    #[test]
    fn unsorted_overlapping_or_reversed_input_is_an_error() {
        let mut m = Merger::new();
        m.push(v4("1.0.1.0", "1.0.1.255", 1)).unwrap();
        let err = m.push(v4("1.0.0.0", "1.0.0.255", 1)).unwrap_err();
        assert!(err.to_string().contains("must be sorted"), "{err}");
        assert!(m.push(v4("1.0.1.255", "1.0.2.0", 1)).is_err());
        assert!(matches!(
            m.push(v4("1.0.9.9", "1.0.9.0", 1)),
            Err(OrderError::Reversed(_))
        ));
    }

    #[test]
    fn cidr_blocks_span_their_addresses() {
        let b = |s: &str, p| {
            let (f, from, to) = cidr_bounds(s.parse().unwrap(), p);
            (f, f.addr(from).to_string(), f.addr(to).to_string())
        };
        assert_eq!(
            b("8.8.8.0", 24),
            (Family::V4, "8.8.8.0".into(), "8.8.8.255".into())
        );
        assert_eq!(
            b("0.0.0.0", 0),
            (Family::V4, "0.0.0.0".into(), "255.255.255.255".into())
        );
        assert_eq!(
            b("2001:4860::", 32),
            (
                Family::V6,
                "2001:4860::".into(),
                "2001:4860:ffff:ffff:ffff:ffff:ffff:ffff".into()
            )
        );
        assert_eq!(
            b("::", 0),
            (
                Family::V6,
                "::".into(),
                "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff".into()
            )
        );
    }
}
