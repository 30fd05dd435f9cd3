//! Aggregation: blocked attempts in, alerts out. Pure: time is an argument,
//! so the tests below drive it with made-up instants.
//!
//! - The first attempt for a key alerts at once and opens a window.
//! - Further attempts for that key within the window are counted; when the
//!   window ends, the count goes out as one summary and a new window opens.
//!   A window without attempts closes the key: its next attempt alerts at
//!   once again.
//! - A global cap (`max_alerts` per `per`) holds for first attempts and
//!   summaries together. Past it, attempts are counted by source into a
//!   storm, sent as one storm summary (top sources and counts) when the
//!   interval ends. An interval starts with the first attempt after the
//!   previous one ended.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use ipnet::IpNet;

use super::{Alert, Attempt, Storm, Summary};
use crate::policy::alerts::{AlertKey, AlertSettings};

/// Keys tracked at most; past it, attempts of new keys count into the storm.
const MAX_KEYS: usize = 100_000;
/// Distinct storm sources counted; the rest are summed as "other".
const MAX_STORM_SOURCES: usize = 10_000;
/// Sources listed in a storm summary.
pub const STORM_TOP: usize = 10;

/// What attempts are grouped by, for one attempt.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    Client(IpAddr),
    Subnet(IpNet),
    Asn(u32),
    /// The client address could not be resolved.
    UnknownClient,
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Client(ip) => write!(f, "{ip}"),
            Scope::Subnet(net) => write!(f, "{net}"),
            Scope::Asn(n) => write!(f, "AS{n}"),
            Scope::UnknownClient => f.write_str("unknown client"),
        }
    }
}

impl Scope {
    pub fn of(key: AlertKey, a: &Attempt) -> Scope {
        let Some(ip) = a.client else {
            return Scope::UnknownClient;
        };
        match key {
            AlertKey::Client => Scope::Client(ip),
            AlertKey::Subnet => {
                let prefix = if ip.is_ipv4() { 24 } else { 64 };
                // PANIC SAFETY: 24 and 64 are within both families' lengths.
                Scope::Subnet(IpNet::new(ip, prefix).expect("valid prefix length").trunc())
            }
            AlertKey::Asn => match a.facts.as_ref().and_then(|f| f.asn) {
                Some(n) => Scope::Asn(n),
                None => Scope::Client(ip),
            },
        }
    }
}

/// A key: the scope, and whether the attempts were enforced (report-only
/// would-be blocks are kept apart and marked).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Key {
    pub scope: Scope,
    pub enforced: bool,
}

struct Entry {
    window_end: Instant,
    /// When the first attempt counted in this window happened.
    since: Option<SystemTime>,
    count: u64,
    last: Arc<Attempt>,
}

#[derive(Default)]
struct StormAcc {
    attempts: u64,
    lockouts: u64,
    releases: u64,
    would_be: u64,
    sources: HashMap<Scope, u64>,
    other: u64,
    from: Option<SystemTime>,
    to: Option<SystemTime>,
}

impl StormAcc {
    fn add(&mut self, scope: Scope, enforced: bool, n: u64, from: SystemTime, to: SystemTime) {
        self.attempts += n;
        if !enforced {
            self.would_be += n;
        }
        if let Some(c) = self.sources.get_mut(&scope) {
            *c += n;
        } else if self.sources.len() < MAX_STORM_SOURCES {
            self.sources.insert(scope, n);
        } else {
            self.other += n;
        }
        self.from = Some(self.from.map_or(from, |f| f.min(from)));
        self.to = Some(self.to.map_or(to, |t| t.max(to)));
    }

    fn take(&mut self) -> Option<Storm> {
        if self.attempts == 0 && self.lockouts == 0 && self.releases == 0 {
            return None;
        }
        let acc = std::mem::take(self);
        let sources = acc.sources.len() as u64 + u64::from(acc.other > 0);
        let mut top: Vec<(Scope, u64)> = acc.sources.into_iter().collect();
        top.sort_unstable_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        top.truncate(STORM_TOP);
        let at = acc.to.unwrap_or(SystemTime::UNIX_EPOCH);
        Some(Storm {
            from: acc.from.unwrap_or(at),
            to: at,
            attempts: acc.attempts,
            would_be: acc.would_be,
            sources,
            top,
            lockouts: acc.lockouts,
            releases: acc.releases,
        })
    }
}

/// What one step did besides the alerts it produced.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Step {
    /// Attempts counted into a summary or storm rather than alerted alone.
    pub aggregated: u64,
}

pub struct Aggregator {
    window: Duration,
    key: AlertKey,
    max_alerts: u32,
    per: Duration,
    entries: HashMap<Key, Entry>,
    /// Earliest window end among `entries` (None: none open).
    next_window_end: Option<Instant>,
    interval_end: Instant,
    sent: u32,
    storm: StormAcc,
}

impl Aggregator {
    pub fn new(s: &AlertSettings, now: Instant) -> Self {
        Self {
            window: s.window,
            key: s.key,
            max_alerts: s.storm_max_alerts,
            per: s.storm_per,
            entries: HashMap::new(),
            next_window_end: None,
            // The first attempt starts the first interval.
            interval_end: now,
            sent: 0,
            storm: StormAcc::default(),
        }
    }

    /// Takes what the request path sent.
    pub fn event(&mut self, e: super::Event, now: Instant, out: &mut Vec<Alert>) -> Step {
        match e {
            super::Event::Attempt(a) => self.attempt(a, now, out),
            super::Event::Lockout(l) => self.lockout(l, now, out),
            super::Event::StateStore(d) => {
                let step = self.tick(now, out);
                out.push(Alert::StateStore(Arc::new(d)));
                step
            }
            super::Event::StateStoreRestored(at) => {
                let step = self.tick(now, out);
                out.push(Alert::StateStoreRestored { at });
                step
            }
            super::Event::Released(r) => self.released(r, now, out),
            // Counted for the digest by the loop; nothing to alert.
            super::Event::ReloadRefused => self.tick(now, out),
            super::Event::Feed(p) => {
                let step = self.tick(now, out);
                out.push(Alert::Feed(Arc::new(p)));
                step
            }
            super::Event::SinkDisabled(d) => {
                let step = self.tick(now, out);
                out.push(Alert::SinkDisabled(Arc::new(d)));
                step
            }
        }
    }

    /// A lockout is alerted alone (each client is locked at most once per
    /// lock), within the storm cap; past it, counted in the storm summary.
    pub fn lockout(&mut self, l: super::Lockout, now: Instant, out: &mut Vec<Alert>) -> Step {
        let mut step = self.tick(now, out);
        if self.sent < self.max_alerts {
            self.sent += 1;
            out.push(Alert::Lockout(Arc::new(l)));
        } else {
            let at = l.attempt.at;
            self.storm.lockouts += 1;
            self.storm.from = Some(self.storm.from.map_or(at, |f| f.min(at)));
            self.storm.to = Some(self.storm.to.map_or(at, |t| t.max(at)));
            step.aggregated += 1;
        }
        step
    }

    /// An operator's release, like a lockout: alone within the storm cap,
    /// counted in the storm summary past it (the fourth red-team review: a
    /// burst of releases filled the sinks' queues ahead of the lockouts).
    pub fn released(&mut self, r: super::Released, now: Instant, out: &mut Vec<Alert>) -> Step {
        let mut step = self.tick(now, out);
        if self.sent < self.max_alerts {
            self.sent += 1;
            out.push(Alert::Released(Arc::new(r)));
        } else {
            let at = r.at;
            self.storm.releases += 1;
            self.storm.from = Some(self.storm.from.map_or(at, |f| f.min(at)));
            self.storm.to = Some(self.storm.to.map_or(at, |t| t.max(at)));
            step.aggregated += 1;
        }
        step
    }

    /// Takes one blocked attempt.
    pub fn attempt(&mut self, a: Attempt, now: Instant, out: &mut Vec<Alert>) -> Step {
        let mut step = self.tick(now, out);
        let key = Key {
            scope: Scope::of(self.key, &a),
            enforced: a.enforced,
        };
        let a = Arc::new(a);
        if let Some(e) = self.entries.get_mut(&key) {
            e.count += 1;
            e.since.get_or_insert(a.at);
            e.last = a;
            step.aggregated += 1;
            return step;
        }
        if self.sent < self.max_alerts && self.entries.len() < MAX_KEYS {
            self.sent += 1;
            let window_end = now + self.window;
            self.next_window_end = Some(
                self.next_window_end
                    .map_or(window_end, |t| t.min(window_end)),
            );
            self.entries.insert(
                key,
                Entry {
                    window_end,
                    since: None,
                    count: 0,
                    last: a.clone(),
                },
            );
            out.push(Alert::Attempt(a));
        } else {
            self.storm.add(key.scope, key.enforced, 1, a.at, a.at);
            step.aggregated += 1;
        }
        step
    }

    /// Ends what is due at `now`: the storm interval, then windows.
    pub fn tick(&mut self, now: Instant, out: &mut Vec<Alert>) -> Step {
        if now >= self.interval_end {
            if let Some(storm) = self.storm.take() {
                out.push(Alert::Storm(storm));
            }
            self.sent = 0;
            self.interval_end = now + self.per;
        }
        if self.next_window_end.is_some_and(|t| now >= t) {
            self.close_windows(now, out);
        }
        Step::default()
    }

    fn close_windows(&mut self, now: Instant, out: &mut Vec<Alert>) {
        let mut next: Option<Instant> = None;
        let (window, max) = (self.window, self.max_alerts);
        let (sent, storm) = (&mut self.sent, &mut self.storm);
        self.entries.retain(|key, e| {
            if now < e.window_end {
                next = Some(next.map_or(e.window_end, |t| t.min(e.window_end)));
                return true;
            }
            if e.count == 0 {
                return false;
            }
            let since = e.since.unwrap_or(e.last.at);
            if *sent < max {
                *sent += 1;
                out.push(Alert::Summary(Summary {
                    scope: key.scope.clone(),
                    enforced: key.enforced,
                    attempts: e.count,
                    from: since,
                    to: e.last.at,
                    last: e.last.clone(),
                }));
            } else {
                storm.add(key.scope.clone(), key.enforced, e.count, since, e.last.at);
            }
            e.count = 0;
            e.since = None;
            e.window_end = now + window;
            next = Some(next.map_or(e.window_end, |t| t.min(e.window_end)));
            true
        });
        self.next_window_end = next;
    }

    /// When [`tick`](Self::tick) next has something to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        let storm = (self.storm.attempts > 0).then_some(self.interval_end);
        match (storm, self.next_window_end) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// On shutdown: every pending count goes out now (within the cap; the
    /// rest in the storm summary).
    pub fn flush(&mut self, out: &mut Vec<Alert>) {
        let mut keys: Vec<Key> = self
            .entries
            .iter()
            .filter(|(_, e)| e.count > 0)
            .map(|(k, _)| k.clone())
            .collect();
        keys.sort_by(|a, b| a.scope.cmp(&b.scope).then(a.enforced.cmp(&b.enforced)));
        for key in keys {
            let Some(e) = self.entries.remove(&key) else {
                continue;
            };
            let since = e.since.unwrap_or(e.last.at);
            if self.sent < self.max_alerts {
                self.sent += 1;
                out.push(Alert::Summary(Summary {
                    scope: key.scope,
                    enforced: key.enforced,
                    attempts: e.count,
                    from: since,
                    to: e.last.at,
                    last: e.last,
                }));
            } else {
                self.storm
                    .add(key.scope, key.enforced, e.count, since, e.last.at);
            }
        }
        self.entries.clear();
        self.next_window_end = None;
        if let Some(storm) = self.storm.take() {
            out.push(Alert::Storm(storm));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(max: u32) -> AlertSettings {
        AlertSettings {
            window: Duration::from_secs(60),
            storm_max_alerts: max,
            storm_per: Duration::from_secs(60),
            ..AlertSettings::default()
        }
    }

    fn attempt(ip: &str, secs: u64) -> Attempt {
        Attempt {
            at: SystemTime::UNIX_EPOCH + Duration::from_secs(secs),
            client: Some(ip.parse().expect("test address")),
            ..Attempt::example()
        }
    }

    fn kinds(out: &[Alert]) -> Vec<&'static str> {
        out.iter().map(Alert::kind).collect()
    }

    #[test]
    fn the_first_attempt_alerts_at_once_and_a_burst_becomes_one_summary() {
        let t0 = Instant::now();
        let mut agg = Aggregator::new(&settings(10), t0);
        let mut out = Vec::new();
        agg.attempt(attempt("203.0.113.7", 0), t0, &mut out);
        assert_eq!(kinds(&out), ["attempt"]);
        let mut aggregated = 0;
        for i in 1..=5 {
            aggregated += agg
                .attempt(
                    attempt("203.0.113.7", i),
                    t0 + Duration::from_secs(i),
                    &mut out,
                )
                .aggregated;
        }
        assert_eq!(aggregated, 5);
        assert_eq!(out.len(), 1, "nothing more until the window ends");
        assert_eq!(agg.next_deadline(), Some(t0 + Duration::from_secs(60)));
        agg.tick(t0 + Duration::from_secs(59), &mut out);
        assert_eq!(out.len(), 1);
        agg.tick(t0 + Duration::from_secs(60), &mut out);
        assert_eq!(kinds(&out), ["attempt", "summary"]);
        let Alert::Summary(s) = &out[1] else {
            panic!("not a summary")
        };
        assert_eq!(s.attempts, 5);
        assert_eq!(s.scope.to_string(), "203.0.113.7");
        assert_eq!(s.from, SystemTime::UNIX_EPOCH + Duration::from_secs(1));
        assert_eq!(s.to, SystemTime::UNIX_EPOCH + Duration::from_secs(5));
    }

    #[test]
    fn a_quiet_window_closes_the_key_so_the_next_attempt_alerts_at_once() {
        let t0 = Instant::now();
        let mut agg = Aggregator::new(&settings(10), t0);
        let mut out = Vec::new();
        agg.attempt(attempt("203.0.113.7", 0), t0, &mut out);
        agg.tick(t0 + Duration::from_secs(61), &mut out);
        assert_eq!(agg.next_deadline(), None);
        agg.attempt(
            attempt("203.0.113.7", 200),
            t0 + Duration::from_secs(200),
            &mut out,
        );
        assert_eq!(kinds(&out), ["attempt", "attempt"]);
    }

    #[test]
    fn different_clients_alert_separately_and_subnets_group_them() {
        let t0 = Instant::now();
        let mut agg = Aggregator::new(&settings(10), t0);
        let mut out = Vec::new();
        agg.attempt(attempt("203.0.113.7", 0), t0, &mut out);
        agg.attempt(attempt("203.0.113.8", 0), t0, &mut out);
        assert_eq!(kinds(&out), ["attempt", "attempt"]);

        let mut s = settings(10);
        s.key = AlertKey::Subnet;
        let mut agg = Aggregator::new(&s, t0);
        let mut out = Vec::new();
        agg.attempt(attempt("203.0.113.7", 0), t0, &mut out);
        agg.attempt(attempt("203.0.113.8", 0), t0, &mut out);
        agg.attempt(attempt("2001:db8:1:2::1", 0), t0, &mut out);
        agg.attempt(attempt("2001:db8:1:2::ffff", 0), t0, &mut out);
        assert_eq!(kinds(&out), ["attempt", "attempt"]);
        agg.flush(&mut out);
        let scopes: Vec<String> = out
            .iter()
            .filter_map(|a| match a {
                Alert::Summary(s) => Some(s.scope.to_string()),
                _ => None,
            })
            .collect();
        assert_eq!(scopes, ["203.0.113.0/24", "2001:db8:1:2::/64"]);
    }

    #[test]
    fn asn_keys_fall_back_to_the_address_when_the_asn_is_unknown() {
        let mut a = attempt("203.0.113.7", 0);
        assert_eq!(Scope::of(AlertKey::Asn, &a).to_string(), "203.0.113.7");
        a.facts = Some(crate::geo::Facts {
            asn: Some(64500),
            ..Default::default()
        });
        assert_eq!(Scope::of(AlertKey::Asn, &a).to_string(), "AS64500");
        a.client = None;
        assert_eq!(Scope::of(AlertKey::Asn, &a), Scope::UnknownClient);
    }

    #[test]
    fn lockouts_alert_alone_within_the_cap_and_join_the_storm_past_it() {
        let t0 = Instant::now();
        let mut agg = Aggregator::new(&settings(2), t0);
        let mut out = Vec::new();
        let lock = |ip: &str| crate::alerts::Lockout {
            attempt: attempt(ip, 0),
            failures: 5,
            lock: Duration::from_secs(900),
            strike: 1,
            account: None,
            network: None,
        };
        agg.lockout(lock("203.0.113.7"), t0, &mut out);
        agg.attempt(attempt("203.0.113.8", 0), t0, &mut out);
        // The cap (2) is reached: the next lockout is counted, not sent.
        let step = agg.lockout(lock("203.0.113.9"), t0, &mut out);
        assert_eq!(step.aggregated, 1);
        assert_eq!(kinds(&out), ["lockout", "attempt"]);
        agg.tick(t0 + Duration::from_secs(60), &mut out);
        let Some(Alert::Storm(s)) = out.iter().find(|a| a.kind() == "storm") else {
            panic!("no storm summary: {:?}", kinds(&out))
        };
        assert_eq!((s.attempts, s.lockouts), (0, 1));
    }

    #[test]
    fn releases_count_against_the_cap_and_join_the_storm_past_it() {
        let t0 = Instant::now();
        let mut agg = Aggregator::new(&settings(2), t0);
        let mut out = Vec::new();
        let release = || crate::alerts::Released {
            at: SystemTime::UNIX_EPOCH,
            by: std::net::IpAddr::from([127, 0, 0, 1]),
            selector: "address",
            target: "203.0.113.7".into(),
            released: 1,
        };
        for _ in 0..5 {
            agg.released(release(), t0, &mut out);
        }
        assert_eq!(kinds(&out), ["lockout_released", "lockout_released"]);
        agg.tick(t0 + Duration::from_secs(60), &mut out);
        let Some(Alert::Storm(s)) = out.iter().find(|a| a.kind() == "storm") else {
            panic!("no storm summary: {:?}", kinds(&out))
        };
        assert_eq!((s.attempts, s.lockouts, s.releases), (0, 0, 3));
    }

    #[test]
    fn report_only_attempts_are_kept_apart_from_enforced_ones() {
        let t0 = Instant::now();
        let mut agg = Aggregator::new(&settings(10), t0);
        let mut out = Vec::new();
        agg.attempt(attempt("203.0.113.7", 0), t0, &mut out);
        let mut would_be = attempt("203.0.113.7", 1);
        would_be.enforced = false;
        agg.attempt(would_be, t0, &mut out);
        assert_eq!(kinds(&out), ["attempt", "attempt"]);
        let Alert::Attempt(a) = &out[1] else {
            panic!("not an attempt")
        };
        assert!(!a.enforced);
    }

    #[test]
    fn the_storm_cap_turns_many_sources_into_one_storm_summary() {
        let t0 = Instant::now();
        let mut agg = Aggregator::new(&settings(3), t0);
        let mut out = Vec::new();
        let mut aggregated = 0;
        for i in 0..50u64 {
            let ip = format!("198.51.100.{}", i % 25);
            aggregated += agg.attempt(attempt(&ip, i), t0, &mut out).aggregated;
        }
        assert_eq!(kinds(&out), ["attempt", "attempt", "attempt"]);
        assert_eq!(aggregated, 47);
        assert_eq!(agg.next_deadline(), Some(t0 + Duration::from_secs(60)));
        agg.tick(t0 + Duration::from_secs(60), &mut out);
        // The three alerted keys' later attempts are due as summaries too,
        // within the new interval's budget.
        let storm = out
            .iter()
            .find_map(|a| match a {
                Alert::Storm(s) => Some(s),
                _ => None,
            })
            .expect("a storm summary");
        // 22 sources beyond the cap, 2 attempts each except ... count them:
        // 50 attempts over 25 addresses; addresses .0-.2 alerted first.
        assert_eq!(storm.attempts, 50 - 3 - 3);
        assert_eq!(storm.sources, 22);
        assert_eq!(storm.top.len(), STORM_TOP);
        assert!(storm.top.iter().all(|(_, n)| *n == 2));
        let summaries: u64 = out
            .iter()
            .filter_map(|a| match a {
                Alert::Summary(s) => Some(s.attempts),
                _ => None,
            })
            .sum();
        assert_eq!(summaries, 3, "one more attempt each for .0, .1 and .2");
    }

    #[test]
    fn summaries_use_the_budget_and_later_first_attempts_go_to_the_storm() {
        let t0 = Instant::now();
        let mut agg = Aggregator::new(&settings(2), t0);
        let mut out = Vec::new();
        for ip in ["192.0.2.1", "192.0.2.2"] {
            agg.attempt(attempt(ip, 0), t0, &mut out);
            agg.attempt(attempt(ip, 1), t0, &mut out);
        }
        // At t1 the interval ends and both windows close: two summaries use
        // the new budget, so a new source is counted into the storm.
        let t1 = t0 + Duration::from_secs(60);
        agg.attempt(attempt("192.0.2.3", 60), t1, &mut out);
        assert_eq!(kinds(&out), ["attempt", "attempt", "summary", "summary"]);
        out.clear();
        agg.tick(t1 + Duration::from_secs(60), &mut out);
        assert_eq!(kinds(&out), ["storm"]);
        let Alert::Storm(s) = &out[0] else {
            panic!("not a storm")
        };
        assert_eq!((s.attempts, s.sources), (1, 1));
        assert_eq!(s.top[0].0.to_string(), "192.0.2.3");
    }

    #[test]
    fn a_summary_due_beyond_the_cap_folds_into_the_storm() {
        let t0 = Instant::now();
        let mut s = settings(1);
        s.window = Duration::from_secs(10);
        let mut agg = Aggregator::new(&s, t0);
        let mut out = Vec::new();
        agg.attempt(attempt("192.0.2.1", 0), t0, &mut out);
        agg.attempt(attempt("192.0.2.1", 1), t0, &mut out);
        agg.tick(t0 + Duration::from_secs(10), &mut out);
        assert_eq!(kinds(&out), ["attempt"]);
        assert_eq!(agg.next_deadline(), Some(t0 + Duration::from_secs(20)));
        agg.tick(t0 + Duration::from_secs(60), &mut out);
        assert_eq!(kinds(&out), ["attempt", "storm"]);
        let Alert::Storm(s) = &out[1] else {
            panic!("not a storm")
        };
        assert_eq!(
            s.top,
            [(Scope::Client("192.0.2.1".parse().expect("ip")), 1)]
        );
    }

    #[test]
    fn flush_sends_every_pending_count() {
        let t0 = Instant::now();
        let mut agg = Aggregator::new(&settings(10), t0);
        let mut out = Vec::new();
        agg.attempt(attempt("203.0.113.7", 0), t0, &mut out);
        agg.attempt(attempt("203.0.113.7", 1), t0, &mut out);
        agg.attempt(attempt("203.0.113.9", 1), t0, &mut out);
        out.clear();
        agg.flush(&mut out);
        assert_eq!(kinds(&out), ["summary"]);
        assert_eq!(agg.next_deadline(), None);
    }

    #[test]
    fn unknown_clients_share_one_key() {
        let t0 = Instant::now();
        let mut agg = Aggregator::new(&settings(10), t0);
        let mut out = Vec::new();
        for i in 0..3 {
            let mut a = attempt("192.0.2.1", i);
            a.client = None;
            agg.attempt(a, t0, &mut out);
        }
        assert_eq!(kinds(&out), ["attempt"]);
    }
}
