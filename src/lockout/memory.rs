//! The per-process lockout store (`state: memory`, and the fallback while
//! Redis cannot be reached). A key that fails `after` times within
//! `within` is locked out for `lock_for`, doubled on every repeat up to
//! `max_lock`. It keeps no clock of its own: every call gets `now`, so that
//! tests drive time.
//!
//! Memory is bounded: at most `max_entries` keys, the oldest evicted first
//! (counted), so that a spray of fresh source addresses cannot grow it.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{Failure, Key, Settings};

#[derive(Debug)]
struct Entry {
    /// Matches the entry's place in the eviction queue.
    generation: u64,
    /// When the failures in the window happened (at most `after`).
    failures: VecDeque<Duration>,
    locked_until: Option<Duration>,
    /// Locks so far; the next lasts `lock_for * 2^strikes`.
    strikes: u32,
    last_failure: Duration,
    /// Sign-ins forwarded and not answered yet: they count against `after`
    /// before their answer does, so a burst of parallel guesses gets no
    /// more than `after` through.
    pending: u32,
}

#[derive(Debug, Default)]
struct Inner {
    entries: HashMap<Key, Entry>,
    /// Keys in the order they were added, with their generation: the
    /// front is the oldest (stale pairs are skipped).
    order: VecDeque<(Key, u64)>,
    next_generation: u64,
    evicted: u64,
}

/// The per-process lockout state. Survives policy reloads (the settings
/// come with each call).
#[derive(Debug)]
pub struct Table {
    inner: Mutex<Inner>,
    epoch: Instant,
}

impl Default for Table {
    fn default() -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            epoch: Instant::now(),
        }
    }
}

impl Table {
    /// The time calls take, on the table's own monotonic scale.
    pub fn now(&self) -> Duration {
        self.epoch.elapsed()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A sign-in from `client` may go to the console: `Ok` holds its place
    /// among the pending ones until dropped; `Err` says for how long it may
    /// not (locked out, or `after` failures and pending sign-ins already).
    pub fn begin(&self, key: Key, now: Duration, s: &Settings) -> Result<Pending<'_>, Duration> {
        let mut inner = self.lock();
        inner.ensure(key, now, s);
        // PANIC SAFETY: `ensure` has just made it.
        let e = inner.entries.get_mut(&key).expect("entry present");
        if let Some(until) = e.locked_until.filter(|&u| u > now) {
            return Err(until - now);
        }
        while e
            .failures
            .front()
            .is_some_and(|&t| now.saturating_sub(t) > s.within)
        {
            e.failures.pop_front();
        }
        let spent = u32::try_from(e.failures.len()).unwrap_or(u32::MAX) + e.pending;
        if spent >= s.after {
            // The answers in flight decide; a moment is enough to know.
            return Err(Duration::from_secs(1));
        }
        e.pending += 1;
        Ok(Pending { table: self, key })
    }

    /// How long `client` stays locked out, if it is.
    pub fn locked(&self, key: Key, now: Duration) -> Option<Duration> {
        let inner = self.lock();
        let until = inner.entries.get(&key)?.locked_until?;
        (until > now).then(|| until - now)
    }

    /// Counts a failed sign-in from `client`.
    pub fn failure(&self, key: Key, now: Duration, s: &Settings) -> Failure {
        let mut inner = self.lock();
        inner.ensure(key, now, s);
        // PANIC SAFETY: inserted just above when absent, under the lock.
        let e = inner.entries.get_mut(&key).expect("entry present");
        // Repeats are forgotten after max_lock without a failure or a lock.
        let quiet_since = e
            .locked_until
            .map_or(e.last_failure, |u| u.max(e.last_failure));
        if now.saturating_sub(quiet_since) > s.max_lock {
            e.strikes = 0;
        }
        e.last_failure = now;
        while e
            .failures
            .front()
            .is_some_and(|&t| now.saturating_sub(t) > s.within)
        {
            e.failures.pop_front();
        }
        e.failures.push_back(now);
        if e.failures.len() > s.after as usize {
            e.failures.pop_front();
        }
        let failures = u32::try_from(e.failures.len()).unwrap_or(u32::MAX);
        let locked_now = e.locked_until.is_some_and(|u| u > now);
        if failures >= s.after && !locked_now {
            let factor = 1u32.checked_shl(e.strikes.min(31)).unwrap_or(u32::MAX);
            let lock = s.lock_for.saturating_mul(factor).min(s.max_lock);
            e.strikes = e.strikes.saturating_add(1);
            e.locked_until = Some(now + lock);
            e.failures.clear();
            return Failure::Locked {
                lock,
                strike: e.strikes,
            };
        }
        Failure::Counted { failures }
    }

    /// Locks `key` until at least `now + lock` without counting a strike:
    /// the sign-ins without an account in a network where an account was
    /// just locked (see [`Key::unread_scope`]).
    pub fn hold(&self, key: Key, now: Duration, lock: Duration, s: &Settings) {
        let mut inner = self.lock();
        inner.ensure(key, now, s);
        if let Some(e) = inner.entries.get_mut(&key) {
            let until = now + lock;
            e.locked_until = Some(e.locked_until.map_or(until, |u| u.max(until)));
        }
    }

    /// A successful sign-in from `client`: with `reset_on_success`, its
    /// failures and repeats are forgotten (a lock in force stays).
    pub fn success(&self, key: Key, now: Duration, s: &Settings) {
        if !s.reset_on_success {
            return;
        }
        let mut inner = self.lock();
        let remove = match inner.entries.get_mut(&key) {
            Some(e) if e.locked_until.is_some_and(|u| u > now) || e.pending > 0 => {
                e.failures.clear();
                e.strikes = if e.locked_until.is_some_and(|u| u > now) {
                    e.strikes
                } else {
                    0
                };
                false
            }
            Some(_) => true,
            None => false,
        };
        if remove {
            inner.entries.remove(&key);
        }
    }

    /// The keys locked at `now`: each with how long it stays locked, its
    /// strikes so far.
    pub fn locks(&self, now: Duration) -> Vec<(Key, Duration, u32)> {
        let inner = self.lock();
        inner
            .entries
            .iter()
            .filter_map(|(k, e)| {
                let until = e.locked_until.filter(|&u| u > now)?;
                Some((*k, until - now, e.strikes))
            })
            .collect()
    }

    /// Lifts the locks of the keys `which` picks, and forgets their
    /// failures and repeats (an operator's release: the next failure starts
    /// from the first lock again); the number of locks that were in force.
    pub fn release(&self, which: impl Fn(&Key) -> bool, now: Duration) -> Vec<Key> {
        let mut inner = self.lock();
        let mut released = Vec::new();
        for (key, e) in inner.entries.iter_mut() {
            if !which(key) {
                continue;
            }
            if e.locked_until.is_some_and(|u| u > now) {
                released.push(*key);
            }
            e.locked_until = None;
            e.failures.clear();
            e.strikes = 0;
        }
        released
    }

    /// Keys held now.
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Keys evicted to stay within `max_entries` so far.
    pub fn evicted(&self) -> u64 {
        self.lock().evicted
    }
}

/// A sign-in on its way to the console; see [`Table::begin`].
#[derive(Debug)]
pub struct Pending<'t> {
    table: &'t Table,
    key: Key,
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        if let Some(e) = self.table.lock().entries.get_mut(&self.key) {
            e.pending = e.pending.saturating_sub(1);
        }
    }
}

impl Inner {
    /// Makes `key`'s entry if it has none (making room first).
    fn ensure(&mut self, key: Key, now: Duration, s: &Settings) {
        if self.entries.contains_key(&key) {
            return;
        }
        self.make_room(now, s);
        let generation = self.next_generation;
        self.next_generation += 1;
        self.order.push_back((key, generation));
        self.entries.insert(
            key,
            Entry {
                generation,
                failures: VecDeque::new(),
                locked_until: None,
                strikes: 0,
                last_failure: now,
                pending: 0,
            },
        );
    }

    /// Before adding a key: drops stale keys at the front of the queue, and
    /// evicts the oldest while the table is full.
    fn make_room(&mut self, now: Duration, s: &Settings) {
        // Locks in force and sign-ins in flight are passed over (moved to
        // the back) a few times before anything is evicted, so that a spray
        // of fresh addresses evicts the idle entries, not the locks.
        let mut passed_over = 0;
        // Keys removed by a success leave their pairs behind; when they
        // outnumber the live ones, drop them all (amortized, linear).
        if self.order.len() > 2 * self.entries.len().max(16) {
            let entries = &self.entries;
            self.order
                .retain(|(k, g)| entries.get(k).is_some_and(|e| e.generation == *g));
        }
        while let Some(&(key, generation)) = self.order.front() {
            let live = match self.entries.get(&key) {
                Some(e) if e.generation == generation => Some(e),
                _ => None,
            };
            let Some(e) = live else {
                self.order.pop_front();
                continue;
            };
            // Nothing left to remember: no lock in force, no failure in the
            // window, no repeat to double.
            let quiet_since = e
                .locked_until
                .map_or(e.last_failure, |u| u.max(e.last_failure));
            let stale =
                e.pending == 0 && now.saturating_sub(quiet_since) > s.within.max(s.max_lock);
            let keep = e.pending > 0 || e.locked_until.is_some_and(|u| u > now);
            let full = self.entries.len() >= s.max_entries.max(1);
            if stale {
                self.entries.remove(&key);
                self.order.pop_front();
            } else if full && keep && passed_over < 8 {
                passed_over += 1;
                self.order.pop_front();
                self.order.push_back((key, generation));
            } else if full {
                self.entries.remove(&key);
                self.order.pop_front();
                self.evicted += 1;
            } else {
                return;
            }
        }
    }
}

#[cfg(test)]
mod release_tests {
    use super::*;

    #[test]
    fn locks_are_listed_and_a_release_lifts_them_and_their_count() {
        let t = Table::default();
        let s = Settings {
            after: 2,
            ..Settings::default()
        };
        let a = Key::address("192.0.2.7".parse().expect("ip"));
        let b = Key::address("192.0.2.8".parse().expect("ip"));
        let now = Duration::from_secs(100);
        for key in [a, a, b] {
            t.failure(key, now, &s);
        }
        let locks = t.locks(now);
        assert_eq!(locks.len(), 1);
        assert_eq!(locks[0].0, a);
        assert_eq!(locks[0].2, 1);
        assert_eq!(t.release(|k| *k == a, now), [a]);
        assert!(t.locks(now).is_empty());
        assert!(t.begin(a, now, &s).is_ok());
        // b's one failure stays: only a was released.
        assert_eq!(
            t.failure(b, now, &s),
            Failure::Locked {
                lock: s.lock_for,
                strike: 1
            }
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::net::IpAddr;

    fn ip(s: &str) -> Key {
        Key::address(s.parse().expect("address"))
    }

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    fn settings() -> Settings {
        Settings {
            after: 3,
            within: secs(60),
            lock_for: secs(100),
            max_lock: secs(350),
            reset_on_success: true,
            max_entries: 1000,
            ..Settings::default()
        }
    }

    #[test]
    fn failures_within_the_window_lock_and_the_lock_expires() {
        let (t, s, a) = (Table::default(), settings(), ip("192.0.2.7"));
        assert_eq!(t.failure(a, secs(0), &s), Failure::Counted { failures: 1 });
        assert_eq!(t.failure(a, secs(10), &s), Failure::Counted { failures: 2 });
        assert_eq!(t.locked(a, secs(10)), None);
        assert_eq!(
            t.failure(a, secs(20), &s),
            Failure::Locked {
                lock: secs(100),
                strike: 1
            }
        );
        assert_eq!(t.locked(a, secs(20)), Some(secs(100)));
        assert_eq!(t.locked(a, secs(119)), Some(secs(1)));
        assert_eq!(t.locked(a, secs(120)), None);
        // Another address is not affected.
        assert_eq!(t.locked(ip("192.0.2.8"), secs(20)), None);
    }

    #[test]
    fn failures_outside_the_window_do_not_add_up() {
        let (t, s, a) = (Table::default(), settings(), ip("192.0.2.7"));
        t.failure(a, secs(0), &s);
        t.failure(a, secs(50), &s);
        // The first is 61 s old now.
        assert_eq!(t.failure(a, secs(61), &s), Failure::Counted { failures: 2 });
    }

    #[test]
    fn each_repeat_doubles_up_to_the_maximum() {
        let (t, s, a) = (Table::default(), settings(), ip("2001:db8:1:2::9"));
        let mut at = 0;
        let mut locks = Vec::new();
        for _ in 0..4 {
            let mut got = None;
            for _ in 0..3 {
                if let Failure::Locked { lock, .. } = t.failure(a, secs(at), &s) {
                    got = Some(lock);
                }
                at += 1;
            }
            let lock = got.expect("the third failure locks");
            locks.push(lock.as_secs());
            at += lock.as_secs();
        }
        assert_eq!(locks, [100, 200, 350, 350]);
        // A quiet max_lock after the last lock ends: back to the first step.
        at += 351;
        for _ in 0..2 {
            t.failure(a, secs(at), &s);
        }
        assert_eq!(
            t.failure(a, secs(at), &s),
            Failure::Locked {
                lock: secs(100),
                strike: 1
            }
        );
        // Same /64, same key.
        assert!(t.locked(ip("2001:db8:1:2::1"), secs(at - 1)).is_some());
    }

    #[test]
    fn a_success_forgets_failures_but_not_a_lock_in_force() {
        let (t, s, a) = (Table::default(), settings(), ip("192.0.2.7"));
        t.failure(a, secs(0), &s);
        t.failure(a, secs(1), &s);
        t.success(a, secs(2), &s);
        assert_eq!(t.failure(a, secs(3), &s), Failure::Counted { failures: 1 });
        t.failure(a, secs(4), &s);
        t.failure(a, secs(5), &s);
        t.success(a, secs(6), &s);
        assert!(
            t.locked(a, secs(6)).is_some(),
            "a success during a lock does not lift it"
        );
        // Without reset_on_success, failures stay.
        let s2 = Settings {
            reset_on_success: false,
            ..settings()
        };
        let b = ip("192.0.2.9");
        t.failure(b, secs(0), &s2);
        t.success(b, secs(1), &s2);
        assert_eq!(t.failure(b, secs(2), &s2), Failure::Counted { failures: 2 });
    }

    #[test]
    fn memory_stays_bounded_under_a_spray_of_fresh_addresses() {
        let s = Settings {
            max_entries: 1000,
            ..settings()
        };
        let t = Table::default();
        // A million distinct addresses, one failure each.
        for i in 0..1_000_000u32 {
            t.failure(Key::address(IpAddr::V4(i.into())), secs(0), &s);
        }
        assert_eq!(t.len(), 1000);
        assert_eq!(t.evicted(), 1_000_000 - 1000);
        let inner = t.lock();
        assert!(inner.order.len() <= 1000, "{}", inner.order.len());
    }

    #[test]
    fn churn_of_successes_does_not_grow_the_queue() {
        let s = settings();
        let t = Table::default();
        // A long lock at the front of the queue...
        let first = ip("192.0.2.1");
        for i in 0..3 {
            t.failure(first, secs(i), &s);
        }
        // ...and a key that fails and succeeds again and again behind it.
        let b = ip("192.0.2.2");
        for i in 0..10_000 {
            t.failure(b, secs(3), &s);
            t.success(b, secs(3), &s);
            assert!(
                t.lock().order.len() <= 40,
                "round {i}: {}",
                t.lock().order.len()
            );
        }
    }

    #[test]
    fn parallel_sign_ins_get_no_more_than_after_through() {
        let (t, s, a) = (Table::default(), settings(), ip("192.0.2.7"));
        let p1 = t.begin(a, secs(0), &s).expect("first");
        let p2 = t.begin(a, secs(0), &s).expect("second");
        let p3 = t.begin(a, secs(0), &s).expect("third");
        // after = 3: a fourth in flight is refused for a moment.
        assert_eq!(t.begin(a, secs(0), &s).err(), Some(secs(1)));
        t.failure(a, secs(1), &s);
        drop(p1);
        t.failure(a, secs(1), &s);
        drop(p2);
        assert!(matches!(t.failure(a, secs(1), &s), Failure::Locked { .. }));
        drop(p3);
        assert_eq!(t.begin(a, secs(1), &s).err(), Some(secs(100)));
        // Another address is not affected.
        assert!(t.begin(ip("192.0.2.8"), secs(1), &s).is_ok());
    }

    #[test]
    fn a_spray_of_fresh_addresses_evicts_idle_entries_before_locks() {
        let s = Settings {
            max_entries: 50,
            ..settings()
        };
        let t = Table::default();
        let locked = ip("192.0.2.20");
        for i in 0..3 {
            t.failure(locked, secs(i), &s);
        }
        for i in 0..60u32 {
            t.failure(
                Key::address(IpAddr::V4((0x0a00_0000 + i).into())),
                secs(3),
                &s,
            );
        }
        assert!(t.locked(locked, secs(4)).is_some(), "the lock was evicted");
        assert!(t.len() <= 50);
    }

    #[test]
    fn stale_keys_leave_without_counting_as_evictions() {
        let s = Settings {
            max_entries: 2,
            ..settings()
        };
        let t = Table::default();
        t.failure(ip("192.0.2.1"), secs(0), &s);
        t.failure(ip("192.0.2.2"), secs(0), &s);
        // Long after: both are stale.
        t.failure(ip("192.0.2.3"), secs(10_000), &s);
        assert_eq!(t.evicted(), 0);
        assert_eq!(t.len(), 1);
    }
}
