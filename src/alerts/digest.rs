//! The morning digest (`alerts.digest`): once a day, what happened since
//! the last one, as a person wants to read it. Pure: the tally the
//! aggregator keeps, the next instant a digest is due, and the digest
//! itself. With a shared store, every replica adds its tally to the
//! store's and one of them sends the fleet's (`claims.rs`).

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use jiff::Timestamp;
use jiff::civil::Time;
use jiff::tz::TimeZone;

use super::Attempt;
use super::aggregate::Scope;
use crate::policy::alerts::AlertKey;

/// Distinct keys kept per count (addresses, subnets, ASNs, countries):
/// past this, attempts are counted in `others`, so a spray from a million
/// addresses costs a bounded table.
const MAX_KEYS: usize = 10_000;
/// How many of each count the digest shows.
pub const TOP: usize = 5;
pub const TOP_ADDRESSES: usize = 10;

/// Counts by key, bounded.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub by: HashMap<String, u64>,
    /// Attempts whose key did not fit.
    pub others: u64,
}

impl Counts {
    pub fn add(&mut self, key: &str, n: u64) {
        if let Some(c) = self.by.get_mut(key) {
            *c += n;
        } else if self.by.len() < MAX_KEYS {
            self.by.insert(key.to_string(), n);
        } else {
            self.others += n;
        }
    }

    /// The `n` largest, largest first (ties by key, so the order is
    /// stable).
    pub fn top(&self, n: usize) -> Vec<(String, u64)> {
        let mut v: Vec<(String, u64)> = self.by.iter().map(|(k, c)| (k.clone(), *c)).collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        v.truncate(n);
        v
    }
}

/// What the aggregator counts between two digests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tally {
    pub since: SystemTime,
    /// Enforced blocked sign-ins.
    pub blocked: u64,
    /// Report-only would-be blocks.
    pub would_be: u64,
    pub by_subnet: Counts,
    pub by_country: Counts,
    pub by_asn: Counts,
    pub by_address: Counts,
    pub lockouts: u64,
    pub releases: u64,
    pub reloads_refused: u64,
}

impl Tally {
    pub fn new(since: SystemTime) -> Self {
        Tally {
            since,
            blocked: 0,
            would_be: 0,
            by_subnet: Counts::default(),
            by_country: Counts::default(),
            by_asn: Counts::default(),
            by_address: Counts::default(),
            lockouts: 0,
            releases: 0,
            reloads_refused: 0,
        }
    }

    /// One blocked (or would-be blocked) sign-in.
    pub fn attempt(&mut self, a: &Attempt) {
        if !a.enforced {
            self.would_be += 1;
            return;
        }
        self.blocked += 1;
        let unknown = "?";
        match a.client {
            Some(ip) => {
                self.by_address.add(&ip.to_string(), 1);
                self.by_subnet
                    .add(&Scope::of(AlertKey::Subnet, a).to_string(), 1);
            }
            None => self.by_address.add(unknown, 1),
        }
        let facts = a.facts.as_ref();
        match facts.and_then(|f| f.country) {
            Some(c) => self.by_country.add(c.as_str(), 1),
            None => self.by_country.add(unknown, 1),
        }
        match facts.and_then(|f| f.asn) {
            Some(n) => {
                let org = facts.and_then(|f| f.as_org.as_deref()).unwrap_or("");
                let key = if org.is_empty() {
                    format!("AS{n}")
                } else {
                    format!("AS{n} {org}")
                };
                self.by_asn.add(&key, 1);
            }
            None => self.by_asn.add(unknown, 1),
        }
    }

    /// Whether nothing was counted.
    pub fn is_empty(&self) -> bool {
        self.blocked == 0
            && self.would_be == 0
            && self.lockouts == 0
            && self.releases == 0
            && self.reloads_refused == 0
    }

    /// The tally as counts for the shared store: (hash, field, n).
    pub fn to_counts(&self) -> Vec<(&'static str, String, u64)> {
        let mut out = vec![
            ("totals", "blocked".to_string(), self.blocked),
            ("totals", "would_be".to_string(), self.would_be),
            ("totals", "lockouts".to_string(), self.lockouts),
            ("totals", "releases".to_string(), self.releases),
            (
                "totals",
                "reloads_refused".to_string(),
                self.reloads_refused,
            ),
            ("totals", "replicas".to_string(), 1),
        ];
        for (hash, c) in [
            ("subnet", &self.by_subnet),
            ("country", &self.by_country),
            ("asn", &self.by_asn),
            ("address", &self.by_address),
        ] {
            // Each replica's top keys only: the fleet's table stays small.
            let top = c.top(SHARED_KEYS);
            let shown: u64 = top.iter().map(|(_, n)| n).sum();
            let rest = c.others + c.by.values().sum::<u64>() - shown;
            out.extend(top.into_iter().map(|(k, n)| (hash, k, n)));
            if rest > 0 {
                out.push((hash, OTHERS.to_string(), rest));
            }
        }
        out
    }

    /// A tally from the shared store's counts (`hash -> field -> n`);
    /// returns it with the number of replicas that added theirs.
    pub fn from_counts(
        since: SystemTime,
        counts: &HashMap<String, HashMap<String, u64>>,
    ) -> (Tally, u64) {
        let mut t = Tally::new(since);
        let get = |h: &str, f: &str| counts.get(h).and_then(|m| m.get(f)).copied().unwrap_or(0);
        t.blocked = get("totals", "blocked");
        t.would_be = get("totals", "would_be");
        t.lockouts = get("totals", "lockouts");
        t.releases = get("totals", "releases");
        t.reloads_refused = get("totals", "reloads_refused");
        for (hash, c) in [
            ("subnet", &mut t.by_subnet),
            ("country", &mut t.by_country),
            ("asn", &mut t.by_asn),
            ("address", &mut t.by_address),
        ] {
            for (k, n) in counts.get(hash).into_iter().flatten() {
                if k == OTHERS {
                    c.others += n;
                } else {
                    c.add(k, *n);
                }
            }
        }
        (t, get("totals", "replicas"))
    }
}

/// Keys per count each replica adds to the shared store.
const SHARED_KEYS: usize = 200;

/// The field that holds counts past a replica's top keys.
const OTHERS: &str = "(others)";

/// What the digest says besides counts: the guard's state when it is sent.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Extras {
    /// Grants whose `until:` falls within the next 7 days: network, CIDR,
    /// when.
    pub grants_ending: Vec<(String, String, SystemTime)>,
    /// Alert sinks disabled, each with why.
    pub disabled_sinks: Vec<String>,
    /// The self-check's lines (`/readyz`'s: published lists not current,
    /// the lockout store, client addresses that look wrong, keys).
    pub self_check: Vec<String>,
}

impl Extras {
    pub fn is_empty(&self) -> bool {
        self.grants_ending.is_empty()
            && self.disabled_sinks.is_empty()
            && self.self_check.is_empty()
    }
}

/// One digest.
#[derive(Clone, Debug)]
pub struct Digest {
    pub tally: Tally,
    pub to: SystemTime,
    pub extras: Extras,
    /// With a shared store: how many replicas' counts it adds up.
    pub replicas: Option<u64>,
}

impl Digest {
    /// Nothing to say: a one-line "quiet day".
    pub fn is_quiet(&self) -> bool {
        self.tally.is_empty() && self.extras.is_empty()
    }

    /// Problems the headline counts: refused reloads, disabled sinks, the
    /// self-check's lines.
    pub fn problems(&self) -> u64 {
        self.tally.reloads_refused
            + u64::try_from(self.extras.disabled_sinks.len() + self.extras.self_check.len())
                .unwrap_or(u64::MAX)
    }
}

pub use crate::policy::alerts::parse_at;

/// The first instant after `now` at which the clock in `zone` reads `at`
/// (a day whose `at` the clocks skip takes that time after the change,
/// 02:30 becoming 03:30, as calendars do: RFC 5545 §3.3.5).
pub fn next_at(at: Time, zone: &TimeZone, now: SystemTime) -> SystemTime {
    let ts = Timestamp::try_from(now).unwrap_or(Timestamp::UNIX_EPOCH);
    let today = zone.to_datetime(ts).date();
    for days in 0..3 {
        let Ok(date) = today.checked_add(jiff::Span::new().days(days)) else {
            continue;
        };
        // `to_timestamp` is the "compatible" disambiguation: a time in a
        // gap is moved forward by the gap's length, a time in a fold is
        // its first instant.
        let Ok(t) = zone.to_timestamp(date.to_datetime(at)) else {
            continue;
        };
        if t > ts {
            return SystemTime::try_from(t).unwrap_or(now + Duration::from_secs(86_400));
        }
    }
    now + Duration::from_secs(86_400)
}

/// The instants' digests are named by (the shared store's keys): Unix
/// seconds, the same on every replica.
pub fn period_name(due: SystemTime) -> String {
    due.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        .to_string()
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::*;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn the_next_digest_is_the_next_time_the_zones_clock_reads_at() {
        let tokyo = TimeZone::get("Asia/Tokyo").expect("tzdb");
        let nine = parse_at("09:00").expect("time");
        // 2026-12-07T12:10:00Z is 21:10 in Tokyo: tomorrow 09:00 JST,
        // 2026-12-08T00:00:00Z.
        assert_eq!(next_at(nine, &tokyo, at(1_796_645_400)), at(1_796_688_000));
        // At 08:59 JST: today's.
        assert_eq!(next_at(nine, &tokyo, at(1_796_687_940)), at(1_796_688_000));
        // Exactly at 09:00: the next day's (a digest is not sent twice).
        assert_eq!(
            next_at(nine, &tokyo, at(1_796_688_000)),
            at(1_796_688_000 + 86_400)
        );
        assert!(parse_at("9:00").is_none());
        assert!(parse_at("24:00").is_none());
        assert!(parse_at("09:60").is_none());
        assert_eq!(parse_at("23:59"), Time::new(23, 59, 0, 0).ok());
    }

    #[test]
    fn a_spring_forward_gap_takes_the_instant_after_it() {
        let ny = TimeZone::get("America/New_York").expect("tzdb");
        let half_two = parse_at("02:30").expect("time");
        // 2026-03-08 has no 02:30 in New York; from 2026-03-08T05:00Z
        // (00:00 EST) the next is 03:30 EDT = 07:30Z.
        let t = next_at(half_two, &ny, at(1_772_946_000));
        assert_eq!(t, at(1_772_955_000));
    }

    fn attempt(ip: [u8; 4], enforced: bool) -> Attempt {
        Attempt {
            client: Some(IpAddr::from(ip)),
            enforced,
            facts: Some(crate::geo::Facts {
                country: crate::geo::Country::parse("NL"),
                asn: Some(64500),
                as_org: Some("ExampleNet".into()),
                ..Default::default()
            }),
            ..Attempt::example()
        }
    }

    #[test]
    fn a_tally_counts_by_subnet_country_asn_and_address() {
        let mut t = Tally::new(at(0));
        for _ in 0..3 {
            t.attempt(&attempt([198, 51, 100, 23], true));
        }
        t.attempt(&attempt([198, 51, 100, 24], true));
        t.attempt(&attempt([203, 0, 113, 7], false));
        assert_eq!((t.blocked, t.would_be), (4, 1));
        assert_eq!(t.by_subnet.top(TOP), [("198.51.100.0/24".to_string(), 4)]);
        assert_eq!(t.by_country.top(TOP), [("NL".to_string(), 4)]);
        assert_eq!(t.by_asn.top(TOP), [("AS64500 ExampleNet".to_string(), 4)]);
        assert_eq!(
            t.by_address.top(TOP_ADDRESSES),
            [
                ("198.51.100.23".to_string(), 3),
                ("198.51.100.24".to_string(), 1)
            ]
        );
        assert!(!t.is_empty());
    }

    #[test]
    fn a_table_past_its_bound_counts_the_rest_as_others() {
        let mut c = Counts::default();
        for i in 0..(MAX_KEYS + 5) {
            c.add(&i.to_string(), 1);
        }
        assert_eq!(c.by.len(), MAX_KEYS);
        assert_eq!(c.others, 5);
    }

    #[test]
    fn the_fleet_adds_up_each_replicas_counts() {
        let mut a = Tally::new(at(0));
        a.attempt(&attempt([198, 51, 100, 23], true));
        a.lockouts = 1;
        let mut b = Tally::new(at(0));
        b.attempt(&attempt([198, 51, 100, 23], true));
        b.attempt(&attempt([192, 0, 2, 1], true));
        // What the store holds after both added theirs (HINCRBY).
        let mut store: HashMap<String, HashMap<String, u64>> = HashMap::new();
        for (h, f, n) in a.to_counts().into_iter().chain(b.to_counts()) {
            *store
                .entry(h.to_string())
                .or_default()
                .entry(f)
                .or_default() += n;
        }
        let (fleet, replicas) = Tally::from_counts(at(0), &store);
        assert_eq!(replicas, 2);
        assert_eq!(fleet.blocked, 3);
        assert_eq!(fleet.lockouts, 1);
        assert_eq!(
            fleet.by_address.top(TOP_ADDRESSES),
            [
                ("198.51.100.23".to_string(), 2),
                ("192.0.2.1".to_string(), 1)
            ]
        );
    }
}
