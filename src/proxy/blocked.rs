//! This replica's recent blocked sign-ins, for `GET /events/blocked` and
//! `netwarden status`: who tried to sign in from a network that is not
//! allowed, without reading JSON lines. A ring of at most [`CAPACITY`]
//! entries: under a flood the oldest go first, counted
//! (`netwarden_blocked_sign_ins_evicted_total`), and memory stays bounded.
//! Only blocked sign-ins enter (rare, and already one warning line each),
//! so one lock is enough.
//!
//! Beside it, the operators' last [`RELEASES`] lockout releases, for the
//! same page: the lock an alert announced is gone, and who lifted it.

use std::collections::VecDeque;
use std::sync::Mutex;

/// Entries kept: a bad day's blocked sign-ins at one replica; about 300
/// bytes each.
pub const CAPACITY: usize = 1000;

/// One blocked sign-in, as `status` shows it. No account name (the body is
/// never read for a blocked sign-in) and no user agent.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Blocked {
    /// RFC 3339, UTC.
    pub at: String,
    /// The client address as decided (`unknown` when it could not be).
    pub client: String,
    /// The TCP peer (a trusted proxy, when the client is behind one).
    pub peer: String,
    pub rule: String,
    pub request_id: String,
    /// `false` when a report-only policy would have blocked it.
    pub enforced: bool,
    pub country: Option<String>,
    pub asn: Option<u32>,
    pub as_org: Option<String>,
}

#[derive(Default)]
pub struct Ring {
    entries: Mutex<VecDeque<Blocked>>,
}

impl Ring {
    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Blocked>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Keeps `b`; `true` when the oldest entry gave way for it.
    pub fn push(&self, b: Blocked) -> bool {
        let mut e = self.lock();
        let evicted = e.len() >= CAPACITY;
        if evicted {
            e.pop_front();
        }
        e.push_back(b);
        evicted
    }

    /// The newest `limit` entries, newest first.
    pub fn recent(&self, limit: usize) -> Vec<Blocked> {
        self.lock().iter().rev().take(limit).cloned().collect()
    }
}

/// Releases kept for `status` (the log keeps every one).
pub const RELEASES: usize = 50;

/// One operator's release at this replica.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Release {
    /// RFC 3339, UTC.
    pub at: String,
    /// The admin client that asked.
    pub admin_address: std::net::IpAddr,
    /// `account`, `account_hash`, `address` or `network`.
    pub selector: &'static str,
    /// The account's hash (never its name), the address or the network.
    pub target: String,
    /// How many locks it lifted.
    pub released: u64,
}

#[derive(Default)]
pub struct Releases {
    entries: Mutex<VecDeque<Release>>,
}

impl Releases {
    pub fn push(&self, r: Release) {
        let mut e = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if e.len() >= RELEASES {
            e.pop_front();
        }
        e.push_back(r);
    }

    /// Newest first.
    pub fn recent(&self) -> Vec<Release> {
        let e = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        e.iter().rev().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blocked(n: usize) -> Blocked {
        Blocked {
            at: format!("t{n}"),
            client: "192.0.2.1".into(),
            peer: "192.0.2.1".into(),
            rule: "login".into(),
            request_id: format!("r{n}"),
            enforced: true,
            country: None,
            asn: None,
            as_org: None,
        }
    }

    #[test]
    fn the_ring_keeps_the_newest_and_counts_what_gave_way() {
        let r = Ring::default();
        let evicted = (0..CAPACITY + 5).filter(|&n| r.push(blocked(n))).count();
        assert_eq!(evicted, 5);
        let recent = r.recent(3);
        let ids: Vec<&str> = recent.iter().map(|b| b.request_id.as_str()).collect();
        assert_eq!(
            ids,
            [
                format!("r{}", CAPACITY + 4),
                format!("r{}", CAPACITY + 3),
                format!("r{}", CAPACITY + 2)
            ]
        );
        assert_eq!(r.recent(usize::MAX).len(), CAPACITY);
    }
}
