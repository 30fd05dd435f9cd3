//! Sets of header names that every request's headers are looked up in
//! (identity headers, client-address headers): one hash of the name and
//! one comparison, instead of a comparison per listed name, and a prefix
//! check only against the prefixes that share the name's first byte.
//!
//! The sets are fixed when built; lookups never insert, so a client
//! choosing names cannot lengthen a probe (no hash flooding to fear), and
//! the hash can be a cheap one.

use std::collections::HashSet;
use std::hash::{BuildHasher, Hasher};

/// Names (lower case) and name prefixes.
pub struct NameSet {
    exact: HashSet<&'static str, Fold>,
    /// The prefixes, sorted by first byte; those starting with byte `b`
    /// are `prefixes[first[b]..first[b + 1]]`.
    prefixes: Vec<&'static str>,
    first: Box<[u16; 257]>,
}

impl NameSet {
    pub fn new(names: &[&'static str], prefixes: &[&'static str]) -> Self {
        let mut exact = HashSet::with_capacity_and_hasher(names.len(), Fold);
        exact.extend(names.iter().copied());
        let mut sorted: Vec<&'static str> =
            prefixes.iter().copied().filter(|p| !p.is_empty()).collect();
        sorted.sort_unstable_by_key(|p| p.as_bytes()[0]);
        let mut first = Box::new([0u16; 257]);
        for b in 0..256usize {
            let before = sorted
                .iter()
                .filter(|p| usize::from(p.as_bytes()[0]) < b)
                .count();
            first[b] = u16::try_from(before).unwrap_or(u16::MAX);
        }
        first[256] = u16::try_from(sorted.len()).unwrap_or(u16::MAX);
        NameSet {
            exact,
            prefixes: sorted,
            first,
        }
    }

    /// Whether `name` is listed, or starts with a listed prefix.
    pub fn contains(&self, name: &str) -> bool {
        if self.exact.contains(name) {
            return true;
        }
        let Some(&b) = name.as_bytes().first() else {
            return false;
        };
        let b = usize::from(b);
        let (from, to) = (usize::from(self.first[b]), usize::from(self.first[b + 1]));
        self.prefixes
            .get(from..to)
            .is_some_and(|ps| ps.iter().any(|p| name.starts_with(p)))
    }
}

/// A multiply-fold hash over eight bytes at a time (the sets are fixed:
/// see the module's note).
#[derive(Clone, Copy, Default)]
struct Fold;

impl BuildHasher for Fold {
    type Hasher = FoldHasher;
    fn build_hasher(&self) -> FoldHasher {
        FoldHasher(0x243f_6a88_85a3_08d3)
    }
}

struct FoldHasher(u64);

impl Hasher for FoldHasher {
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut chunks = bytes.chunks_exact(8);
        for c in chunks.by_ref() {
            let w = u64::from_le_bytes(c.try_into().unwrap_or([0; 8]));
            self.0 = (self.0 ^ w).wrapping_mul(K).rotate_left(29);
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut last = [0u8; 8];
            last[..rest.len()].copy_from_slice(rest);
            self.0 = (self.0 ^ u64::from_le_bytes(last))
                .wrapping_mul(K)
                .rotate_left(29);
        }
        self.0 ^= bytes.len() as u64;
    }

    fn write_u8(&mut self, i: u8) {
        self.0 = (self.0 ^ u64::from(i)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }

    fn finish(&self) -> u64 {
        let h = self.0;
        (h ^ (h >> 32)).wrapping_mul(0xd6e8_feb8_6659_fd93) ^ (h >> 29)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_names_and_prefixes_and_nothing_else() {
        let set = NameSet::new(
            &["x-forwarded-for", "forwarded", "a"],
            &["x-ssl-", "proxy-", "$ws"],
        );
        for yes in [
            "x-forwarded-for",
            "forwarded",
            "a",
            "x-ssl-client-cert",
            "x-ssl-",
            "proxy-authorization",
            "$wsra",
        ] {
            assert!(set.contains(yes), "{yes}");
        }
        for no in [
            "",
            "x-forwarded-fo",
            "x-forwarded-forx",
            "forwarde",
            "b",
            "x-ssl",
            "proxy",
            "$w",
            "host",
            "user-agent",
            "X-Forwarded-For",
        ] {
            assert!(!set.contains(no), "{no}");
        }
    }

    #[test]
    fn every_name_of_a_long_list_is_found() {
        let names: Vec<&'static str> = (0..500)
            .map(|i| &*Box::leak(format!("x-name-{i}-{}", "y".repeat(i % 23)).into_boxed_str()))
            .collect();
        let set = NameSet::new(&names, &[]);
        assert!(names.iter().all(|n| set.contains(n)));
        assert!(!set.contains("x-name-500-"));
    }
}
