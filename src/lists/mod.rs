//! Published address lists: what a network's `feed:` (a URL) or
//! `dns_names:` holds, as data. Pure, below the policy compiler: the
//! compiler reads a list here the way it reads a `file:`, and the tasks
//! that fetch and resolve (in [`crate::feeds`]) hand what they got to the
//! same functions.
//!
//! - [`format`]: the publishers' formats (lines, JSON, CSV) -> prefixes.
//! - [`judge`]: whether a new list looks right next to the last good one
//!   (empty, too wide, private ranges, changed too much): a list that looks
//!   wrong is never applied.
//! - [`copy`]: the last good copy kept in `state_dir`, so that a restart
//!   with the publisher down starts from it.

pub mod copy;
pub mod format;
pub mod judge;

pub use copy::Copy;
pub use format::{Format, ParseError, parse};
pub use judge::{Change, Limits, Refusal, judge};

use ipnet::IpNet;

/// Sorts and removes duplicates: the canonical form in which lists are
/// stored, compared and counted.
pub fn canonical(mut prefixes: Vec<IpNet>) -> Vec<IpNet> {
    prefixes.sort_unstable_by_key(sort_key);
    prefixes.dedup();
    prefixes
}

/// (family, first address, length): IPv4 before IPv6, then by address.
fn sort_key(n: &IpNet) -> (u8, u128, u8) {
    match n {
        IpNet::V4(n) => (4, u32::from(n.network()).into(), n.prefix_len()),
        IpNet::V6(n) => (6, u128::from(n.network()), n.prefix_len()),
    }
}
