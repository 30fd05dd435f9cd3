//! Sorted, disjoint address ranges: the prefix structure behind every network.
//!
//! A network is compiled once into two sorted vectors of inclusive ranges (one
//! for IPv4, one for IPv6) in which no two ranges overlap or touch. A lookup is
//! one binary search, `O(log n)` with no allocation; 120,000 prefixes take at
//! most 17 probes. Set algebra (`include` is a union, `except` a difference) is
//! a linear merge done at compile time, so the request path never sees it.
//!
//! A trie would answer "longest matching prefix"; netwarden only ever asks "is
//! this address in the set", for which merged ranges are smaller and simpler.
//! The property tests at the bottom check the structure against a naive scan.

use std::net::IpAddr;

use ipnet::IpNet;

/// An address family's integer: `u32` for IPv4, `u128` for IPv6.
pub trait Addr: Copy + Ord + std::fmt::Debug {
    const MAX: Self;
    fn succ(self) -> Option<Self>;
    fn pred(self) -> Option<Self>;
}

macro_rules! impl_addr {
    ($t:ty) => {
        impl Addr for $t {
            const MAX: Self = <$t>::MAX;
            fn succ(self) -> Option<Self> {
                self.checked_add(1)
            }
            fn pred(self) -> Option<Self> {
                self.checked_sub(1)
            }
        }
    };
}
impl_addr!(u32);
impl_addr!(u128);

/// Sorted, disjoint, non-adjacent inclusive ranges of one address family.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ranges<T: Addr> {
    ranges: Vec<(T, T)>,
}

impl<T: Addr> Ranges<T> {
    /// Builds the canonical form of any ranges (overlapping, unsorted, adjacent).
    pub fn from_unsorted(mut input: Vec<(T, T)>) -> Self {
        input.sort_unstable();
        let mut ranges: Vec<(T, T)> = Vec::with_capacity(input.len());
        for (lo, hi) in input {
            match ranges.last_mut() {
                // Overlapping or adjacent (prev.hi + 1 >= lo): extend the previous range.
                Some(prev) if prev.1.succ().is_none_or(|next| next >= lo) => {
                    if hi > prev.1 {
                        prev.1 = hi;
                    }
                }
                _ => ranges.push((lo, hi)),
            }
        }
        ranges.shrink_to_fit();
        Self { ranges }
    }

    pub fn contains(&self, x: T) -> bool {
        // The first range starting after x; the one before it is the only candidate.
        let i = self.ranges.partition_point(|&(lo, _)| lo <= x);
        i > 0 && self.ranges[i - 1].1 >= x
    }

    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    pub fn len(&self) -> usize {
        self.ranges.len()
    }

    pub fn union(&self, other: &Self) -> Self {
        let mut all = Vec::with_capacity(self.ranges.len() + other.ranges.len());
        all.extend_from_slice(&self.ranges);
        all.extend_from_slice(&other.ranges);
        Self::from_unsorted(all)
    }

    /// `self` minus every address in `other`.
    pub fn difference(&self, other: &Self) -> Self {
        let mut out = Vec::with_capacity(self.ranges.len());
        let mut cut = other.ranges.iter().peekable();
        for &(lo, hi) in &self.ranges {
            let mut lo = Some(lo);
            // Skip cuts entirely below this range.
            while cut.peek().is_some_and(|&&(_, chi)| Some(chi) < lo) {
                cut.next();
            }
            while let (Some(l), Some(&&(clo, chi))) = (lo, cut.peek()) {
                if clo > hi {
                    break;
                }
                if clo > l {
                    // PANIC SAFETY: clo > l >= 0, so clo has a predecessor.
                    out.push((l, clo.pred().expect("clo > l")));
                }
                if chi >= hi {
                    lo = None;
                    break;
                }
                lo = chi.succ();
                cut.next();
            }
            if let Some(l) = lo {
                out.push((l, hi));
            }
        }
        Self { ranges: out }
    }
}

/// A set of IPv4 and IPv6 addresses.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RangeSet {
    v4: Ranges<u32>,
    v6: Ranges<u128>,
}

impl RangeSet {
    pub fn from_nets<'a>(nets: impl IntoIterator<Item = &'a IpNet>) -> Self {
        let (mut v4, mut v6) = (Vec::new(), Vec::new());
        for net in nets {
            match net {
                IpNet::V4(n) => v4.push((u32::from(n.network()), u32::from(n.broadcast()))),
                IpNet::V6(n) => v6.push((u128::from(n.network()), u128::from(n.broadcast()))),
            }
        }
        Self {
            v4: Ranges::from_unsorted(v4),
            v6: Ranges::from_unsorted(v6),
        }
    }

    /// Whether `ip` is in the set. The caller passes a canonical address (see
    /// `engine::client::canonical`): an IPv4-mapped IPv6 address is looked up
    /// here as IPv6 and will not match IPv4 ranges.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match ip {
            IpAddr::V4(a) => self.v4.contains(u32::from(a)),
            IpAddr::V6(a) => self.v6.contains(u128::from(a)),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty()
    }

    /// How many IPv4 and IPv6 addresses the set holds (IPv6 saturating).
    pub fn address_count(&self) -> (u64, u128) {
        let v4 = self
            .v4
            .ranges
            .iter()
            .map(|&(lo, hi)| u64::from(hi - lo) + 1)
            .sum();
        let v6 = self.v6.ranges.iter().fold(0u128, |acc, &(lo, hi)| {
            acc.saturating_add((hi - lo).saturating_add(1))
        });
        (v4, v6)
    }

    /// Number of disjoint ranges, IPv4 and IPv6.
    pub fn range_count(&self) -> (usize, usize) {
        (self.v4.len(), self.v6.len())
    }

    pub fn union(&self, other: &Self) -> Self {
        Self {
            v4: self.v4.union(&other.v4),
            v6: self.v6.union(&other.v6),
        }
    }

    pub fn difference(&self, other: &Self) -> Self {
        Self {
            v4: self.v4.difference(&other.v4),
            v6: self.v6.difference(&other.v6),
        }
    }

    /// The addresses in both.
    pub fn intersection(&self, other: &Self) -> Self {
        self.difference(&self.difference(other))
    }

    /// Every IPv4 and IPv6 address.
    pub fn everything() -> Self {
        Self {
            v4: Ranges {
                ranges: vec![(0, u32::MAX)],
            },
            v6: Ranges {
                ranges: vec![(0, u128::MAX)],
            },
        }
    }

    /// The set as the fewest CIDRs that cover exactly its addresses.
    pub fn to_nets(&self) -> Vec<IpNet> {
        let mut out = Vec::new();
        for &(lo, hi) in &self.v4.ranges {
            out.extend(ipnet::Ipv4Subnets::new(lo.into(), hi.into(), 0).map(IpNet::V4));
        }
        for &(lo, hi) in &self.v6.ranges {
            out.extend(ipnet::Ipv6Subnets::new(lo.into(), hi.into(), 0).map(IpNet::V6));
        }
        out
    }

    /// One address of the set, if it has any (the first IPv4 one, else the
    /// first IPv6 one).
    pub fn first(&self) -> Option<IpAddr> {
        self.v4
            .ranges
            .first()
            .map(|&(lo, _)| IpAddr::from(std::net::Ipv4Addr::from(lo)))
            .or_else(|| {
                self.v6
                    .ranges
                    .first()
                    .map(|&(lo, _)| IpAddr::from(std::net::Ipv6Addr::from(lo)))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn adjacent_and_overlapping_prefixes_merge() {
        let set = RangeSet::from_nets(&nets(&["10.0.0.0/25", "10.0.0.128/25", "10.0.0.7/32"]));
        assert_eq!(set.range_count(), (1, 0));
        assert!(set.contains("10.0.0.255".parse().unwrap()));
        assert!(!set.contains("10.0.1.0".parse().unwrap()));
    }

    #[test]
    fn difference_carves_holes_and_edges() {
        let all = RangeSet::from_nets(&nets(&["203.0.113.0/24"]));
        let guest = RangeSet::from_nets(&nets(&["203.0.113.128/25", "203.0.113.0/32"]));
        let corp = all.difference(&guest);
        assert!(!corp.contains("203.0.113.0".parse().unwrap()));
        assert!(corp.contains("203.0.113.1".parse().unwrap()));
        assert!(corp.contains("203.0.113.127".parse().unwrap()));
        assert!(!corp.contains("203.0.113.128".parse().unwrap()));
        assert!(!corp.contains("203.0.113.255".parse().unwrap()));
    }

    #[test]
    fn whole_address_space_has_no_overflow() {
        let set = RangeSet::from_nets(&nets(&["0.0.0.0/0", "::/0"]));
        assert!(set.contains(IpAddr::V4(Ipv4Addr::BROADCAST)));
        assert!(set.contains(IpAddr::V6(Ipv6Addr::from(u128::MAX))));
        let minus = set.difference(&RangeSet::from_nets(&nets(&["255.255.255.255/32"])));
        assert!(!minus.contains(IpAddr::V4(Ipv4Addr::BROADCAST)));
        assert!(minus.contains("255.255.255.254".parse().unwrap()));
    }

    // A small universe (addresses 0..64 inside 10.0.0.0/26) so that random
    // prefixes overlap often and every address can be checked.
    fn small_net() -> impl Strategy<Value = IpNet> {
        (0u32..64, 26u8..=32).prop_map(|(host, len)| {
            let addr = Ipv4Addr::from(0x0a00_0000 | host);
            IpNet::V4(ipnet::Ipv4Net::new(addr, len).unwrap().trunc())
        })
    }

    fn naive(list: &[IpNet], ip: IpAddr) -> bool {
        list.iter().any(|n| n.contains(&ip))
    }

    proptest! {
        #[test]
        fn lookup_equals_naive_scan(list in prop::collection::vec(small_net(), 0..12), probe in 0u32..80) {
            let set = RangeSet::from_nets(&list);
            let ip = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + probe));
            prop_assert_eq!(set.contains(ip), naive(&list, ip));
        }

        #[test]
        fn set_algebra_equals_naive(a in prop::collection::vec(small_net(), 0..8),
                                    b in prop::collection::vec(small_net(), 0..8)) {
            let (sa, sb) = (RangeSet::from_nets(&a), RangeSet::from_nets(&b));
            let (union, diff) = (sa.union(&sb), sa.difference(&sb));
            for probe in 0u32..80 {
                let ip = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + probe));
                prop_assert_eq!(union.contains(ip), naive(&a, ip) || naive(&b, ip));
                prop_assert_eq!(diff.contains(ip), naive(&a, ip) && !naive(&b, ip));
            }
        }

        #[test]
        fn random_ipv6_lookup_equals_naive(prefixes in prop::collection::vec((any::<u128>(), 0u8..=128), 0..20),
                                           probes in prop::collection::vec(any::<u128>(), 1..20)) {
            let list: Vec<IpNet> = prefixes.iter()
                .map(|&(a, l)| IpNet::V6(ipnet::Ipv6Net::new(Ipv6Addr::from(a), l).unwrap().trunc()))
                .collect();
            let set = RangeSet::from_nets(&list);
            // Probe random addresses and every prefix's own first and last address.
            let edges = list.iter().flat_map(|n| match n {
                IpNet::V6(n) => [u128::from(n.network()), u128::from(n.broadcast())],
                IpNet::V4(_) => unreachable!(),
            });
            for p in probes.iter().copied().chain(edges) {
                let ip = IpAddr::V6(Ipv6Addr::from(p));
                prop_assert_eq!(set.contains(ip), naive(&list, ip));
            }
        }
    }
}
