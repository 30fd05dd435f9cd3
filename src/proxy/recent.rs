//! The client addresses that recently used the console, for the reload
//! guard: before a new policy goes live, each one's last allowed request
//! (and its last successful sign-in) is decided again by the candidate. A
//! candidate that would deny every one of them is an edit that locks the
//! admins out (`server.reload.guard`).
//!
//! Memory only, bounded, never logged: at most [`CAPACITY`] addresses
//! (IPv6 by its /64, so that one host cannot fill it with addresses of its
//! own prefix), each forgotten after the guard window. Only allowed
//! requests enter, so a denied client cannot push the admins out. Sharded
//! locks, and an address seen within `REFRESH` is not touched again: the
//! request path pays one hash and one uncontended lock.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::engine::client::AddrKey;

/// Addresses remembered: far more than any console's operators, small
/// enough to decide them all again on each reload (a few milliseconds).
pub const CAPACITY: usize = 4096;
/// How long an address counts as recent: a working day and the night
/// after, so that the morning's edit is checked against yesterday's admins.
pub const WINDOW: Duration = Duration::from_secs(24 * 3600);
const SHARDS: usize = 16;
const PER_SHARD: usize = CAPACITY / SHARDS;
/// An address seen this recently is not updated again (no allocation and
/// no write on most requests).
const REFRESH: Duration = Duration::from_secs(10);

/// A request to decide again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sample {
    pub method: Box<str>,
    pub host: Option<Box<str>>,
    /// Normalized, without the query.
    pub path: Box<str>,
}

/// What is remembered of one address.
#[derive(Clone, Debug)]
pub struct Seen {
    pub ip: IpAddr,
    pub at: Instant,
    /// Its last allowed request.
    pub request: Sample,
    /// Its last sign-in that the console accepted.
    pub sign_in: Option<Sample>,
}

pub struct Recent {
    shards: Vec<Mutex<HashMap<AddrKey, Seen>>>,
    window: Duration,
}

impl Recent {
    pub fn new(window: Duration) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            window,
        }
    }

    fn shard(&self, key: &AddrKey) -> &Mutex<HashMap<AddrKey, Seen>> {
        use std::hash::{Hash, Hasher};
        // The shard is no secret: an attacker who fills one (from allowed
        // addresses only) evicts at most that shard's oldest entries.
        let mut f = FixedHasher(0xcbf2_9ce4_8422_2325);
        key.hash(&mut f);
        &self.shards[(f.finish() as usize) % SHARDS]
    }

    /// An allowed request from `ip`, which arrived at `at`. Most calls end
    /// at a thread-local check (this worker noted this address within
    /// [`REFRESH`]): no hash, no lock.
    pub fn allowed(&self, ip: IpAddr, at: Instant, method: &str, host: Option<&str>, path: &str) {
        thread_local! {
            static LAST: std::cell::Cell<Option<(IpAddr, Instant)>> = const { std::cell::Cell::new(None) };
        }
        let fresh = LAST.with(|last| match last.get() {
            Some((seen, when)) if seen == ip && at.saturating_duration_since(when) < REFRESH => {
                true
            }
            _ => {
                last.set(Some((ip, at)));
                false
            }
        });
        if !fresh {
            self.note(ip, method, host, path, false);
        }
    }

    /// A sign-in from `ip` that the console accepted.
    pub fn signed_in(&self, ip: IpAddr, method: &str, host: Option<&str>, path: &str) {
        self.note(ip, method, host, path, true);
    }

    fn note(&self, ip: IpAddr, method: &str, host: Option<&str>, path: &str, sign_in: bool) {
        let key = AddrKey::of(ip);
        let now = Instant::now();
        let Ok(mut shard) = self.shard(&key).lock() else {
            return;
        };
        if let Some(seen) = shard.get_mut(&key) {
            if !sign_in && now.duration_since(seen.at) < REFRESH && seen.ip == ip {
                return;
            }
            let sample = sample(method, host, path);
            seen.ip = ip;
            seen.at = now;
            if sign_in {
                seen.sign_in = Some(sample);
            } else {
                seen.request = sample;
            }
            return;
        }
        if shard.len() >= PER_SHARD {
            // Full: forget the address seen longest ago.
            if let Some(oldest) = shard.iter().min_by_key(|(_, s)| s.at).map(|(k, _)| *k) {
                shard.remove(&oldest);
            }
        }
        let s = sample(method, host, path);
        shard.insert(
            key,
            Seen {
                ip,
                at: now,
                sign_in: sign_in.then(|| s.clone()),
                request: s,
            },
        );
    }

    /// Every address seen within the window; older ones are forgotten.
    pub fn snapshot(&self) -> Vec<Seen> {
        let now = Instant::now();
        let mut out = Vec::new();
        for shard in &self.shards {
            let Ok(mut shard) = shard.lock() else {
                continue;
            };
            shard.retain(|_, s| now.duration_since(s.at) <= self.window);
            out.extend(shard.values().cloned());
        }
        out
    }
}

fn sample(method: &str, host: Option<&str>, path: &str) -> Sample {
    Sample {
        method: method.into(),
        host: host.map(Into::into),
        path: path.into(),
    }
}

/// FNV-1a: a fixed, fast hash to pick a shard (not for the maps themselves,
/// which keep std's keyed hasher against collision floods).
struct FixedHasher(u64);

impl std::hash::Hasher for FixedHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x100_0000_01b3);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_is_bounded_and_forgets_the_oldest() {
        let r = Recent::new(Duration::from_secs(3600));
        for i in 0..(CAPACITY as u32 * 2) {
            let ip = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            r.note(ip, "GET", None, "/", false);
        }
        let n = r.snapshot().len();
        assert!(n <= CAPACITY, "{n}");
        assert!(n >= CAPACITY / 2, "{n}");
    }

    #[test]
    fn an_ipv6_prefix_is_one_entry() {
        let r = Recent::new(Duration::from_secs(3600));
        for i in 0..1000u16 {
            let ip: IpAddr = format!("2001:db8:1:2::{i:x}").parse().expect("ip");
            r.note(ip, "GET", None, "/", false);
        }
        assert_eq!(r.snapshot().len(), 1);
    }

    #[test]
    fn a_sign_in_is_kept_beside_the_last_request() {
        let r = Recent::new(Duration::from_secs(3600));
        let ip: IpAddr = "10.0.0.1".parse().expect("ip");
        r.signed_in(ip, "POST", Some("c.example"), "/login");
        r.note(ip, "GET", Some("c.example"), "/users", false);
        let s = r.snapshot();
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].sign_in.as_ref().map(|x| &*x.path), Some("/login"));
    }

    #[test]
    fn entries_past_the_window_are_forgotten() {
        let r = Recent::new(Duration::ZERO);
        r.note("10.0.0.1".parse().expect("ip"), "GET", None, "/", false);
        std::thread::sleep(Duration::from_millis(5));
        assert!(r.snapshot().is_empty());
    }
}
