//! Does a new list look right? A list that does not is refused as a whole
//! and the last good one stays: an empty answer after a redirect, a
//! truncated download, a publisher's mistake, or an attacker who can
//! change the list must not empty a network or open the door.
//!
//! The checks, in order: empty; an entry wider than `widest` (per family);
//! with `public`, an entry in a private or reserved range; then, against
//! the last good list, a family whose addresses grew or shrank by more
//! than `max_change` percent. Changes are counted in addresses, per family,
//! because that is what a rule lets in: one `/8` added is a larger change
//! than a hundred `/32`s.

use std::fmt;

use ipnet::IpNet;

use crate::engine::prefix::RangeSet;

/// The bounds a new list must stay within (`feed:` keys of the same names).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The largest share, in percent of a family's addresses in the last
    /// good list, that one update may add, and that it may remove; `None`
    /// (`max_change: off`): no bound.
    pub max_change: Option<u32>,
    /// The shortest prefix length accepted, IPv4 and IPv6.
    pub widest_v4: u8,
    pub widest_v6: u8,
    /// Refuse a list that holds private or reserved addresses.
    pub public: bool,
}

pub mod defaults {
    /// Half of a family's addresses, added or removed, in one update. Real
    /// publishers change by a few percent a week (AWS, Cloudflare, GitHub);
    /// a truncated download or a different file changes far more.
    pub const MAX_CHANGE: u32 = 50;
    /// A `/8`: wider than anything Cloudflare (`/13`), AWS (`/11`), GCP or
    /// GitHub publish today, and 1/256 of the IPv4 internet; a `/4` or a
    /// `0.0.0.0/0` is refused. Deny lists that carry bogons (FireHOL's
    /// `224.0.0.0/3`) set their own.
    pub const WIDEST_V4: u8 = 8;
    /// A `/16`: wider than AWS's (`/24`) and Cloudflare's (`/29`) IPv6
    /// prefixes; `::/0` or `2000::/3` (all of global unicast) is refused.
    pub const WIDEST_V6: u8 = 16;
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_change: Some(defaults::MAX_CHANGE),
            widest_v4: defaults::WIDEST_V4,
            widest_v6: defaults::WIDEST_V6,
            public: false,
        }
    }
}

/// Why a list was not applied.
#[derive(Clone, Debug, PartialEq)]
pub enum Refusal {
    Empty,
    TooWide {
        prefix: IpNet,
        widest: u8,
    },
    NotPublic {
        prefix: IpNet,
        within: &'static str,
    },
    /// Half of a family's addresses or more, in all.
    CoversTooMuch {
        family: u8,
    },
    ChangedTooMuch {
        family: u8,
        added: u128,
        removed: u128,
        before: u128,
        max_change: u32,
    },
}

impl Refusal {
    /// A stable machine name (logs, metrics, alerts).
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::Empty => "empty",
            Refusal::TooWide { .. } => "too_wide",
            Refusal::NotPublic { .. } => "not_public",
            Refusal::CoversTooMuch { .. } => "too_wide",
            Refusal::ChangedTooMuch { .. } => "changed_too_much",
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Empty => f.write_str("the list holds no address"),
            Refusal::TooWide { prefix, widest } => write!(
                f,
                "{prefix} is wider than /{widest}, the widest this network takes (widest:)"
            ),
            Refusal::CoversTooMuch { family: 4 } => {
                f.write_str("together its prefixes hold a quarter of all IPv4 addresses or more")
            }
            Refusal::CoversTooMuch { .. } => f.write_str(
                "together its prefixes hold half of IPv6's global unicast (2000::/3) or more",
            ),
            Refusal::NotPublic { prefix, within } => {
                write!(
                    f,
                    "{prefix} is not public ({within}) and the list is public: true"
                )
            }
            Refusal::ChangedTooMuch {
                family,
                added,
                removed,
                before,
                max_change,
            } => write!(
                f,
                "its IPv{family} addresses changed by more than {max_change}% (+{added} -{removed} of {before}; the bound is max_change)"
            ),
        }
    }
}

/// What an update changes, prefix by prefix (both lists canonical).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Change {
    pub added: Vec<IpNet>,
    pub removed: Vec<IpNet>,
}

impl Change {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty()
    }

    /// `+3 -1 (+192.0.2.0/24, +198.51.100.0/24, -203.0.113.0/24, ...)`:
    /// counts and the first few of each, for the log.
    pub fn summary(&self, examples: usize) -> String {
        let shown: Vec<String> = self
            .added
            .iter()
            .take(examples)
            .map(|n| format!("+{n}"))
            .chain(self.removed.iter().take(examples).map(|n| format!("-{n}")))
            .collect();
        let more =
            self.added.len().saturating_sub(examples) + self.removed.len().saturating_sub(examples);
        let mut out = format!("+{} -{}", self.added.len(), self.removed.len());
        if !shown.is_empty() {
            out.push_str(&format!(" ({}", shown.join(", ")));
            if more > 0 {
                out.push_str(&format!(", {more} more"));
            }
            out.push(')');
        }
        out
    }
}

/// The prefixes in `new` and not in `old`, and the other way round.
pub fn diff(old: &[IpNet], new: &[IpNet]) -> Change {
    let key = |n: &IpNet| super::sort_key(n);
    let (mut i, mut j) = (0, 0);
    let mut change = Change::default();
    while i < old.len() || j < new.len() {
        match (old.get(i), new.get(j)) {
            (Some(a), Some(b)) if a == b => {
                i += 1;
                j += 1;
            }
            (Some(a), Some(b)) if key(a) < key(b) => {
                change.removed.push(*a);
                i += 1;
            }
            (Some(a), None) => {
                change.removed.push(*a);
                i += 1;
            }
            (_, Some(b)) => {
                change.added.push(*b);
                j += 1;
            }
            (None, None) => break,
        }
    }
    change
}

/// The most addresses of a family that published lists may hold, in all:
/// a quarter of IPv4 (FireHOL's level 1 deny list, bogons included, is
/// about a seventh), and half of IPv6's global unicast `2000::/3`
/// (an eighth of all IPv6 would still be every routable address).
pub const MOST_V4: u128 = 1 << 30;
pub const MOST_V6: u128 = 1 << 124;

/// Whether `set` holds more of a family than published lists may.
pub fn covers_too_much(set: &RangeSet) -> Option<u8> {
    let (v4, v6) = set.address_count();
    if u128::from(v4) >= MOST_V4 {
        Some(4)
    } else if v6 >= MOST_V6 {
        Some(6)
    } else {
        None
    }
}

/// Whether `list` stays within the bounds that hold for any list, the one
/// in force included: no prefix wider than `widest`, none private or
/// reserved with `public`, and in all less than [`MOST_V4`] and
/// [`MOST_V6`] (256 `/8`s are the whole IPv4 internet, 8,192 `/16`s all of
/// IPv6's global unicast, whatever `widest` says).
pub fn within(list: &[IpNet], limits: &Limits) -> Result<(), Refusal> {
    for n in list {
        let widest = match n {
            IpNet::V4(_) => limits.widest_v4,
            IpNet::V6(_) => limits.widest_v6,
        };
        if n.prefix_len() < widest {
            return Err(Refusal::TooWide { prefix: *n, widest });
        }
        if limits.public
            && let Some(within) = special(n)
        {
            return Err(Refusal::NotPublic { prefix: *n, within });
        }
    }
    match covers_too_much(&RangeSet::from_nets(list)) {
        Some(family) => Err(Refusal::CoversTooMuch { family }),
        None => Ok(()),
    }
}

/// Whether `new` (canonical) may replace `last` (the last good list, if
/// any): `Ok` with what changes, or why not.
pub fn judge(last: Option<&[IpNet]>, new: &[IpNet], limits: &Limits) -> Result<Change, Refusal> {
    if new.is_empty() {
        return Err(Refusal::Empty);
    }
    within(new, limits)?;
    let Some(last) = last else {
        return Ok(Change {
            added: new.to_vec(),
            removed: Vec::new(),
        });
    };
    if let Some(max_change) = limits.max_change {
        let (old_set, new_set) = (RangeSet::from_nets(last), RangeSet::from_nets(new));
        let (before4, before6) = old_set.address_count();
        let (added4, added6) = new_set.difference(&old_set).address_count();
        let (removed4, removed6) = old_set.difference(&new_set).address_count();
        for (family, before, added, removed) in [
            (
                4u8,
                u128::from(before4),
                u128::from(added4),
                u128::from(removed4),
            ),
            (6u8, before6, added6, removed6),
        ] {
            // A family the last list did not hold has nothing to be
            // measured against: `widest` bounds it.
            if before == 0 {
                continue;
            }
            // f64: the shares are what matters, and IPv6 counts exceed
            // any integer product.
            let limit = before as f64 * f64::from(max_change) / 100.0;
            if added as f64 > limit || removed as f64 > limit {
                return Err(Refusal::ChangedTooMuch {
                    family,
                    added,
                    removed,
                    before,
                    max_change,
                });
            }
        }
    }
    Ok(diff(last, new))
}

/// Special-purpose ranges (RFC 6890 and its updates) that a list of public
/// addresses never holds: private, shared, loopback, link-local,
/// documentation, benchmarking, multicast, reserved.
const SPECIAL: &[(&str, &str)] = &[
    ("0.0.0.0/8", "this network, RFC 791"),
    ("10.0.0.0/8", "private, RFC 1918"),
    ("100.64.0.0/10", "shared address space, RFC 6598"),
    ("127.0.0.0/8", "loopback, RFC 1122"),
    ("169.254.0.0/16", "link-local, RFC 3927"),
    ("172.16.0.0/12", "private, RFC 1918"),
    ("192.0.0.0/24", "IETF protocol assignments, RFC 6890"),
    ("192.0.2.0/24", "documentation, RFC 5737"),
    (
        "192.88.99.0/24",
        "6to4 relay anycast (deprecated), RFC 7526",
    ),
    ("192.168.0.0/16", "private, RFC 1918"),
    ("198.18.0.0/15", "benchmarking, RFC 2544"),
    ("198.51.100.0/24", "documentation, RFC 5737"),
    ("203.0.113.0/24", "documentation, RFC 5737"),
    ("224.0.0.0/4", "multicast, RFC 5771"),
    ("240.0.0.0/4", "reserved, RFC 1112"),
    (
        "::/96",
        "unspecified, loopback and IPv4-compatible (deprecated), RFC 4291",
    ),
    ("::ffff:0:0/96", "IPv4-mapped, RFC 4291"),
    ("64:ff9b::/96", "IPv4/IPv6 translation, RFC 6052"),
    (
        "64:ff9b:1::/48",
        "local-use IPv4/IPv6 translation, RFC 8215",
    ),
    ("100::/64", "discard-only, RFC 6666"),
    (
        "2001::/23",
        "IETF protocol assignments, RFC 2928 (Teredo, benchmarking, ORCHID)",
    ),
    ("2001:db8::/32", "documentation, RFC 3849"),
    ("2002::/16", "6to4, RFC 3056"),
    ("3fff::/20", "documentation, RFC 9637"),
    ("5f00::/16", "segment routing SIDs, RFC 9602"),
    ("fc00::/7", "unique local, RFC 4193"),
    ("fe80::/10", "link-local, RFC 4291"),
    ("fec0::/10", "site-local (deprecated), RFC 3879"),
    ("ff00::/8", "multicast, RFC 4291"),
];

/// The special-purpose range `n` overlaps, if any.
fn special(n: &IpNet) -> Option<&'static str> {
    static PARSED: std::sync::OnceLock<Vec<(IpNet, &'static str)>> = std::sync::OnceLock::new();
    let table = PARSED.get_or_init(|| {
        SPECIAL
            .iter()
            .filter_map(|(range, what)| range.parse().ok().map(|r| (r, *what)))
            .collect()
    });
    table
        .iter()
        .find_map(|(r, what)| (r.contains(n) || n.contains(r)).then_some(*what))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(list: &[&str]) -> Vec<IpNet> {
        super::super::canonical(
            list.iter()
                .map(|s| crate::addr::parse_prefix(s).expect("net"))
                .collect(),
        )
    }

    #[test]
    fn the_special_table_parses() {
        for (r, _) in SPECIAL {
            assert!(r.parse::<IpNet>().is_ok(), "{r}");
        }
    }

    #[test]
    fn an_empty_list_is_refused() {
        assert_eq!(judge(None, &[], &Limits::default()), Err(Refusal::Empty));
    }

    #[test]
    fn the_whole_internet_is_refused_but_real_publishers_widest_prefixes_pass() {
        let l = Limits::default();
        for wide in ["0.0.0.0/0", "0.0.0.0/4", "64.0.0.0/2", "::/0", "2000::/3"] {
            let r = judge(None, &nets(&[wide, "192.0.2.0/24"]), &l).unwrap_err();
            assert_eq!(r.code(), "too_wide", "{wide}");
        }
        // Cloudflare's /12 and /29, AWS's /11 and /24.
        let real = nets(&[
            "104.16.0.0/12",
            "2a06:98c0::/29",
            "52.0.0.0/11",
            "2600:1f00::/24",
        ]);
        assert!(judge(None, &real, &l).is_ok());
    }

    #[test]
    fn the_whole_internet_in_slash_eights_is_refused_whatever_widest_says() {
        let all: Vec<String> = (0..=255).map(|a| format!("{a}.0.0.0/8")).collect();
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        let r = judge(None, &nets(&all), &Limits::default()).unwrap_err();
        assert_eq!(r.code(), "too_wide");
        assert!(r.to_string().contains("a quarter of all IPv4"), "{r}");
        // A quarter less one /8 passes.
        assert!(judge(None, &nets(&all[..63]), &Limits::default()).is_ok());
        // All of global unicast as 8,192 /16s (red-team review).
        let v6: Vec<String> = (0x2000..0x4000).map(|a| format!("{a:x}::/16")).collect();
        let v6: Vec<&str> = v6.iter().map(String::as_str).collect();
        let r = judge(None, &nets(&v6), &Limits::default()).unwrap_err();
        assert!(r.to_string().contains("global unicast"), "{r}");
    }

    #[test]
    fn public_lists_refuse_private_and_reserved_ranges() {
        let l = Limits {
            public: true,
            ..Limits::default()
        };
        for p in [
            "10.1.0.0/16",
            "192.168.1.1/32",
            "fd00::/48",
            "::1/128",
            "8.0.0.0/8",
            "2002:a00::/24",
            "2001::/32",
            "64:ff9b::a00:1",
            "fec0::/16",
            "5f00::/16",
            "::2/128",
            "::127.0.0.1/128",
            "192.88.99.0/24",
        ] {
            let r = judge(None, &nets(&[p]), &l);
            if p == "8.0.0.0/8" {
                assert!(r.is_ok());
            } else {
                assert_eq!(r.unwrap_err().code(), "not_public", "{p}");
            }
        }
        // 0.0.0.0/5 holds 0.0.0.0/8 and 10.0.0.0/8.
        let wide = Limits { widest_v4: 0, ..l };
        assert_eq!(
            judge(None, &nets(&["0.0.0.0/5"]), &wide)
                .unwrap_err()
                .code(),
            "not_public"
        );
    }

    #[test]
    fn a_list_that_shrinks_or_grows_past_max_change_is_refused_per_family() {
        let l = Limits::default();
        let last = nets(&["192.0.2.0/24", "198.51.100.0/24", "2001:db8::/48"]);
        // Shrunk to half: at the bound, accepted.
        assert!(judge(Some(&last), &nets(&["192.0.2.0/24", "2001:db8::/48"]), &l).is_ok());
        // Shrunk to a quarter of the IPv4 addresses: refused.
        let r = judge(Some(&last), &nets(&["192.0.2.0/25", "2001:db8::/48"]), &l).unwrap_err();
        assert_eq!(r.code(), "changed_too_much");
        assert!(r.to_string().contains("IPv4"), "{r}");
        // Grown by a /16: refused, though only one prefix was added.
        let grown = nets(&[
            "192.0.2.0/24",
            "198.51.100.0/24",
            "10.0.0.0/16",
            "2001:db8::/48",
        ]);
        assert_eq!(
            judge(Some(&last), &grown, &l).unwrap_err().code(),
            "changed_too_much"
        );
        // IPv6 gone entirely: refused.
        let r = judge(Some(&last), &nets(&["192.0.2.0/24", "198.51.100.0/24"]), &l).unwrap_err();
        assert!(r.to_string().contains("IPv6"), "{r}");
        // A family the last list did not hold is bounded by widest only.
        let v4 = nets(&["192.0.2.0/24"]);
        assert!(judge(Some(&v4), &nets(&["192.0.2.0/24", "2001:db8::/32"]), &l).is_ok());
        // max_change: off.
        let off = Limits {
            max_change: None,
            ..Limits::default()
        };
        assert!(judge(Some(&last), &nets(&["203.0.113.9"]), &off).is_ok());
    }

    #[test]
    fn the_change_names_what_was_added_and_removed() {
        let c = judge(
            Some(&nets(&["192.0.2.0/24", "198.51.100.0/24"])),
            &nets(&["192.0.2.0/24", "198.51.100.0/25", "198.51.100.128/25"]),
            &Limits::default(),
        )
        .expect("same addresses");
        assert_eq!(
            c.summary(1),
            "+2 -1 (+198.51.100.0/25, -198.51.100.0/24, 1 more)"
        );
        assert_eq!(Change::default().summary(3), "+0 -0");
    }
}
