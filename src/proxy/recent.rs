//! The client addresses that recently used the console, for the reload
//! guard: before a new policy goes live, each one's latest allowed request
//! under each rule (and its last successful sign-in) is decided again by
//! the candidate. A candidate that would deny every one of them is an edit
//! that locks the admins out (`server.reload.guard`).
//!
//! Memory only, bounded, never logged: at most [`CAPACITY`] addresses
//! (IPv6 by its /64, so that one host cannot fill it with addresses of its
//! own prefix), each forgotten after the guard window; when full, one that
//! never signed in goes first. Only clients that an `allow_from` network
//! vouched for enter, so a denied client, or anyone a public rule lets in,
//! cannot push the admins out. An address and rule this worker noted
//! within `REFRESH` cost the request path a thread-local compare; otherwise
//! one hash and one uncontended shard lock.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::engine::client::AddrKey;
use crate::engine::ruleset::Ruleset;
use crate::engine::{ClientSource, RequestFacts, decide};

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

/// A request to decide again, as it reached netwarden: its peer and its
/// forwarding headers, so that a candidate that changes `client_ip`
/// (drops a trusted proxy, reads another header) is judged by the client
/// address it would find.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sample {
    pub method: Box<str>,
    pub host: Option<Box<str>>,
    /// Normalized, without the query.
    pub path: Box<str>,
    /// The peer the engine saw (the PROXY protocol source on such listeners).
    pub peer: IpAddr,
    /// On a PROXY protocol connection, the load balancer that sent the
    /// header: a candidate that no longer trusts it refuses the connection.
    pub proxy_protocol_from: Option<IpAddr>,
    /// `X-Forwarded-For`, `Forwarded` and `X-Real-IP` lines (none from a
    /// connection whose headers are not believed); each line's last
    /// [`MAX_FORWARDING_BYTES`], at most [`MAX_FORWARDING_LINES`] lines.
    pub forwarding: Vec<(&'static str, Box<str>)>,
    /// The group of accounts the sign-in was decided in: a candidate's
    /// rules with `accounts:` read it in place of the account.
    pub account_group: Option<Box<str>>,
    /// The client's verified identity: a candidate's rules with `who:`
    /// decide by it as the running policy's did. Kept in memory only.
    pub identity: Option<Arc<crate::engine::who::Identity>>,
}

impl Sample {
    /// About how many bytes the sample holds.
    fn bytes(&self) -> usize {
        let lines: usize = self.forwarding.iter().map(|(_, v)| v.len() + 24).sum();
        self.method.len()
            + self.host.as_ref().map_or(0, |h| h.len())
            + self.path.len()
            + self.account_group.as_ref().map_or(0, |g| g.len())
            + self.identity.as_ref().map_or(0, |i| {
                i.subject.len()
                    + i.email.as_ref().map_or(0, |e| e.len())
                    + i.groups.iter().map(|g| g.len() + 16).sum::<usize>()
                    + i.claims
                        .iter()
                        .map(|(k, v)| k.len() + v.iter().map(|x| x.len() + 16).sum::<usize>())
                        .sum::<usize>()
                    + 64
            })
            + lines
            + 128
    }
}

/// The request as the proxy saw it, borrowed: copied into a [`Sample`] only
/// when it is noted.
pub struct Seen<'a> {
    pub method: &'a str,
    pub host: Option<&'a str>,
    pub path: &'a str,
    pub peer: IpAddr,
    pub proxy_protocol_from: Option<IpAddr>,
    pub headers: Option<&'a http::HeaderMap>,
    /// The group of accounts the deciding rule found the sign-in's
    /// account in (never the account).
    pub account_group: Option<&'a str>,
    /// The client's verified identity (`identity:`).
    pub identity: Option<&'a Arc<crate::engine::who::Identity>>,
}

/// The headers a client address can come from.
const FORWARDING: [&str; 3] = ["x-forwarded-for", "forwarded", "x-real-ip"];
/// The right end of a forwarding line is what a trusted proxy appended: the
/// part that decides.
pub const MAX_FORWARDING_BYTES: usize = 1024;
pub const MAX_FORWARDING_LINES: usize = 8;
/// Requests kept per address, one per rule that allowed it: an edit to any
/// rule an admin used within the window is seen, even when the address's
/// latest requests were to other rules (issue 22: with four, an admin's
/// fifth rule was forgotten and an edit to it locked them out). Bounded by
/// the rules a policy has (this many covers any policy written by hand);
/// past it, across reloads that rename rules, the rule seen longest ago
/// gives way.
pub const MAX_SAMPLES: usize = 256;
/// Bytes of samples a shard holds at most (4 MiB in all): with many rules,
/// long paths and forwarding lines, the addresses seen longest ago give way
/// before memory grows.
const SHARD_BYTES: usize = 256 * 1024;

/// What is remembered of one address.
#[derive(Clone, Debug)]
pub struct Entry {
    pub ip: IpAddr,
    pub at: Instant,
    /// Its latest allowed request under each rule (the rule's name first).
    pub requests: Vec<(Arc<str>, Sample)>,
    /// Its last sign-in that the console accepted.
    pub sign_in: Option<Sample>,
}

impl Entry {
    /// About how many bytes the entry holds.
    fn bytes(&self) -> usize {
        self.samples().map(Sample::bytes).sum::<usize>() + 64
    }

    /// Every request kept, sign-in included.
    pub fn samples(&self) -> impl Iterator<Item = &Sample> {
        self.requests
            .iter()
            .map(|(_, s)| s)
            .chain(self.sign_in.as_ref())
    }
}

pub struct Recent {
    shards: Vec<Mutex<Shard>>,
    window: Duration,
}

#[derive(Default)]
struct Shard {
    entries: HashMap<AddrKey, Entry>,
    /// About how many bytes the entries hold, kept as they change (not
    /// summed again on every note).
    bytes: usize,
}

impl Shard {
    /// Forgets the address seen longest ago, and one that never signed in
    /// before one that did (a sign-in the console accepted takes
    /// credentials; a flood of allowed requests does not); never `keep`.
    fn evict_one(&mut self, keep: Option<AddrKey>) -> bool {
        let oldest = self
            .entries
            .iter()
            .filter(|(k, _)| Some(**k) != keep)
            .min_by_key(|(_, e)| (e.sign_in.is_some(), e.at))
            .map(|(k, _)| *k);
        let Some(gone) = oldest.and_then(|k| self.entries.remove(&k)) else {
            return false;
        };
        self.bytes = self.bytes.saturating_sub(gone.bytes());
        true
    }

    /// Keeps the shard within [`SHARD_BYTES`], the entry just updated last
    /// to go (and then its oldest requests).
    fn bound(&mut self, key: AddrKey) {
        while self.bytes > SHARD_BYTES {
            if !self.evict_one(Some(key)) {
                // Only this entry: drop its requests seen longest ago.
                let Some(e) = self.entries.get_mut(&key) else {
                    return;
                };
                if e.requests.len() <= 1 {
                    return;
                }
                let (_, gone) = e.requests.remove(0);
                self.bytes = self.bytes.saturating_sub(gone.bytes());
            }
        }
    }
}

impl Recent {
    pub fn new(window: Duration) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            window,
        }
    }

    fn shard(&self, key: &AddrKey) -> &Mutex<Shard> {
        use std::hash::{Hash, Hasher};
        // The shard is no secret: an attacker who fills one (from allowed
        // addresses only) evicts at most that shard's oldest entries.
        let mut f = FixedHasher(0xcbf2_9ce4_8422_2325);
        key.hash(&mut f);
        &self.shards[(f.finish() as usize) % SHARDS]
    }

    /// A request from client `ip` that rule `rule`'s networks allowed,
    /// which arrived at `at`. Most calls end at a thread-local check (this
    /// worker noted this address and rule within [`REFRESH`]): no hash, no
    /// lock.
    pub fn allowed(&self, ip: IpAddr, rule: &Arc<str>, at: Instant, seen: &Seen<'_>) {
        type Last = Option<(IpAddr, usize, Instant)>;
        thread_local! {
            static LAST: std::cell::Cell<Last> = const { std::cell::Cell::new(None) };
        }
        let rule_id = Arc::as_ptr(rule).cast::<u8>() as usize;
        let fresh = LAST.with(|last| match last.get() {
            Some((seen, r, when))
                if seen == ip && r == rule_id && at.saturating_duration_since(when) < REFRESH =>
            {
                true
            }
            _ => {
                last.set(Some((ip, rule_id, at)));
                false
            }
        });
        if !fresh {
            self.keep(ip, Some(rule), sample(seen));
        }
    }

    /// A sign-in from client `ip` that the console accepted.
    pub fn signed_in(&self, ip: IpAddr, sample: Sample) {
        self.keep(ip, None, sample);
    }

    /// `rule`: the rule that allowed the request; `None` for a sign-in.
    fn keep(&self, ip: IpAddr, rule: Option<&Arc<str>>, sample: Sample) {
        let key = AddrKey::of(ip);
        let now = Instant::now();
        let Ok(mut shard) = self.shard(&key).lock() else {
            return;
        };
        if let Some(entry) = shard.entries.get_mut(&key) {
            let before = entry.bytes();
            entry.ip = ip;
            entry.at = now;
            match rule {
                None => entry.sign_in = Some(sample),
                Some(rule) => {
                    match entry.requests.iter().position(|(r, _)| r == rule) {
                        Some(i) => entry.requests[i].1 = sample,
                        None if entry.requests.len() < MAX_SAMPLES => {
                            entry.requests.push((rule.clone(), sample));
                        }
                        // Full: the rule seen longest ago gives way.
                        None => {
                            entry.requests.remove(0);
                            entry.requests.push((rule.clone(), sample));
                        }
                    }
                    // Most recent last.
                    if let Some(i) = entry.requests.iter().position(|(r, _)| r == rule) {
                        let moved = entry.requests.remove(i);
                        entry.requests.push(moved);
                    }
                }
            }
            let after = entry.bytes();
            shard.bytes = shard.bytes.saturating_sub(before) + after;
            shard.bound(key);
            return;
        }
        if shard.entries.len() >= PER_SHARD {
            shard.evict_one(None);
        }
        let (requests, sign_in) = match rule {
            Some(rule) => (vec![(rule.clone(), sample)], None),
            None => (Vec::new(), Some(sample)),
        };
        let entry = Entry {
            ip,
            at: now,
            requests,
            sign_in,
        };
        shard.bytes += entry.bytes();
        shard.entries.insert(key, entry);
        shard.bound(key);
    }

    /// Every address seen within the window; older ones are forgotten.
    pub fn snapshot(&self) -> Vec<Entry> {
        let now = Instant::now();
        let mut out = Vec::new();
        for shard in &self.shards {
            let Ok(mut shard) = shard.lock() else {
                continue;
            };
            shard
                .entries
                .retain(|_, s| now.duration_since(s.at) <= self.window);
            shard.bytes = shard.entries.values().map(Entry::bytes).sum();
            out.extend(shard.entries.values().cloned());
        }
        out
    }
}

/// How `ruleset` would treat a kept request at `now`: `None` when it would
/// be forwarded; else the index of the rule that denies it (`None` inside:
/// the default, or a PROXY header from a load balancer the ruleset no
/// longer trusts, whose connection it would refuse).
pub fn denied_by(ruleset: &Ruleset, s: &Sample, now: jiff::Timestamp) -> Option<Option<usize>> {
    if let Some(lb) = s.proxy_protocol_from
        && !ruleset.client_ip().trusted_proxies.contains(lb)
    {
        return Some(None);
    }
    let facts = RequestFacts {
        client: ClientSource::Peer {
            peer: s.peer,
            headers: &s.forwarding,
        },
        method: &s.method,
        host: Ok(s.host.as_deref()),
        path: &s.path,
        now,
        account: crate::engine::AccountFact::Grouped(s.account_group.as_deref()),
        identity: s
            .identity
            .as_deref()
            .map_or(crate::engine::who::IdentityFact::Missing, |i| {
                crate::engine::who::IdentityFact::Verified(i)
            }),
    };
    let d = decide(ruleset, &facts);
    (!d.forwards()).then(|| {
        d.rule
            .and_then(|r| ruleset.rules().iter().position(|x| std::ptr::eq(x, r)))
    })
}

/// An owned copy of what is kept of a request.
pub fn sample(seen: &Seen<'_>) -> Sample {
    let mut forwarding = Vec::new();
    if let Some(headers) = seen.headers {
        for name in FORWARDING {
            for v in headers.get_all(name).iter().take(MAX_FORWARDING_LINES) {
                let v = String::from_utf8_lossy(v.as_bytes());
                let mut cut = v.len().saturating_sub(MAX_FORWARDING_BYTES);
                while !v.is_char_boundary(cut) {
                    cut += 1;
                }
                forwarding.push((name, v[cut..].into()));
            }
        }
    }
    Sample {
        method: seen.method.into(),
        host: seen.host.map(Into::into),
        path: seen.path.into(),
        peer: seen.peer,
        proxy_protocol_from: seen.proxy_protocol_from,
        forwarding,
        account_group: seen.account_group.map(Into::into),
        identity: seen.identity.cloned(),
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

    fn get(path: &str) -> Seen<'_> {
        Seen {
            method: "GET",
            host: None,
            path,
            peer: IpAddr::from([127, 0, 0, 1]),
            proxy_protocol_from: None,
            headers: None,
            account_group: None,
            identity: None,
        }
    }

    fn rule(name: &str) -> Arc<str> {
        name.into()
    }

    #[test]
    fn it_is_bounded_and_forgets_the_oldest() {
        let r = Recent::new(Duration::from_secs(3600));
        for i in 0..(CAPACITY as u32 * 2) {
            let ip = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            r.keep(ip, Some(&rule("console")), sample(&get("/")));
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
            r.keep(ip, Some(&rule("console")), sample(&get("/")));
        }
        assert_eq!(r.snapshot().len(), 1);
    }

    #[test]
    fn a_sign_in_is_kept_beside_the_last_request() {
        let r = Recent::new(Duration::from_secs(3600));
        let ip: IpAddr = "10.0.0.1".parse().expect("ip");
        r.signed_in(ip, sample(&get("/login")));
        r.keep(ip, Some(&rule("console")), sample(&get("/users")));
        let s = r.snapshot();
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].sign_in.as_ref().map(|x| &*x.path), Some("/login"));
    }

    #[test]
    fn entries_past_the_window_are_forgotten() {
        let r = Recent::new(Duration::ZERO);
        r.keep(
            "10.0.0.1".parse().expect("ip"),
            Some(&rule("console")),
            sample(&get("/")),
        );
        std::thread::sleep(Duration::from_millis(5));
        assert!(r.snapshot().is_empty());
    }

    #[test]
    fn forwarding_lines_are_kept_by_their_right_end_and_bounded() {
        let mut h = http::HeaderMap::new();
        let long = format!("{}, 198.51.100.7", "203.0.113.1, ".repeat(200));
        h.append("x-forwarded-for", long.parse().expect("value"));
        for _ in 0..20 {
            h.append("forwarded", "for=192.0.2.1".parse().expect("value"));
        }
        h.append("cookie", "secret".parse().expect("value"));
        let s = sample(&Seen {
            headers: Some(&h),
            ..get("/")
        });
        let xff: Vec<_> = s
            .forwarding
            .iter()
            .filter(|(n, _)| *n == "x-forwarded-for")
            .collect();
        assert_eq!(xff.len(), 1);
        assert!(xff[0].1.len() <= MAX_FORWARDING_BYTES && xff[0].1.ends_with("198.51.100.7"));
        assert_eq!(
            s.forwarding
                .iter()
                .filter(|(n, _)| *n == "forwarded")
                .count(),
            MAX_FORWARDING_LINES
        );
        assert!(!s.forwarding.iter().any(|(n, _)| *n == "cookie"));
    }

    #[test]
    fn one_request_is_kept_per_rule_that_allowed_it() {
        let r = Recent::new(Duration::from_secs(3600));
        let ip: IpAddr = "10.0.0.1".parse().expect("ip");
        let (console, assets) = (rule("console"), rule("assets"));
        r.keep(ip, Some(&console), sample(&get("/users")));
        r.keep(ip, Some(&assets), sample(&get("/static/app.css")));
        r.keep(ip, Some(&console), sample(&get("/orders")));
        let e = &r.snapshot()[0];
        let paths: Vec<&str> = e.requests.iter().map(|(_, s)| &*s.path).collect();
        assert_eq!(paths, ["/static/app.css", "/orders"]);
        // Every rule an admin used is kept (issue 22: the fifth was
        // forgotten), up to the bound.
        for i in 0..10 {
            r.keep(ip, Some(&rule(&format!("r{i}"))), sample(&get("/x")));
        }
        assert_eq!(r.snapshot()[0].requests.len(), 12);
        for i in 0..(MAX_SAMPLES + 10) {
            r.keep(ip, Some(&rule(&format!("s{i}"))), sample(&get("/x")));
        }
        assert_eq!(r.snapshot()[0].requests.len(), MAX_SAMPLES);
    }

    #[test]
    fn long_requests_from_many_addresses_stay_within_the_byte_bound() {
        let r = Recent::new(Duration::from_secs(3600));
        let long = format!("/{}", "x".repeat(8000));
        for i in 0..2000u32 {
            let ip = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            for n in 0..4 {
                r.keep(ip, Some(&rule(&format!("r{n}"))), sample(&get(&long)));
            }
        }
        let total: usize = r.snapshot().iter().map(Entry::bytes).sum();
        assert!(total <= SHARDS * SHARD_BYTES, "{total}");
        assert!(!r.snapshot().is_empty());
    }

    #[test]
    fn a_flood_of_allowed_addresses_does_not_push_out_those_who_signed_in() {
        let r = Recent::new(Duration::from_secs(3600));
        let admin: IpAddr = "10.9.9.9".parse().expect("ip");
        r.signed_in(admin, sample(&get("/login")));
        for i in 0..(CAPACITY as u32 * 3) {
            let ip = IpAddr::from(std::net::Ipv4Addr::from(0x0b00_0000 + i));
            r.keep(ip, Some(&rule("status")), sample(&get("/status")));
        }
        assert!(r.snapshot().iter().any(|e| e.ip == admin));
    }
}
