//! Who holds the connection slots: a count per client address, so that one
//! address cannot take every slot, and a way to make room when the table
//! is full by closing idle connections first (nginx drains its reusable
//! keep-alive connections the same way).

use std::collections::HashMap;
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

pub use crate::engine::client::AddrKey;

/// Idle connections asked to close each time the table is full.
pub const EVICT_BATCH: usize = 32;

/// The table's hasher: a folded multiply of the key with a per-process
/// random seed. The upstream share is taken and given back on every
/// request, and SipHash (std's default) cost more than the rest of the
/// bookkeeping; the seed keeps clients from choosing colliding keys, which
/// they could only do with addresses they really hold anyway.
#[derive(Clone, Copy)]
pub(crate) struct Seeded(u64);

impl Seeded {
    pub(crate) fn random() -> Self {
        // std's RandomState draws its keys from the OS once per process.
        Self(std::collections::hash_map::RandomState::new().hash_one(0u64))
    }
}

impl BuildHasher for Seeded {
    type Hasher = AddrHasher;
    fn build_hasher(&self) -> AddrHasher {
        AddrHasher { seed: self.0, h: 0 }
    }
}

pub(crate) struct AddrHasher {
    seed: u64,
    h: u64,
}

/// 64×64→128 multiply, halves folded (foldhash's and ahash's fallback mix).
fn fold(x: u64, k: u64) -> u64 {
    let p = u128::from(x ^ k) * 0x9E37_79B9_7F4A_7C15;
    (p as u64) ^ ((p >> 64) as u64)
}

impl Hasher for AddrHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut w = [0u8; 8];
            w[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(w));
        }
    }

    fn write_u64(&mut self, x: u64) {
        self.h = fold(self.h ^ x, self.seed);
    }

    fn finish(&self) -> u64 {
        fold(self.h, self.seed.rotate_left(32))
    }
}

impl AddrKey {
    pub fn of(ip: IpAddr) -> Self {
        match crate::engine::client::canonical(ip) {
            IpAddr::V4(v4) => AddrKey::V4(u32::from(v4)),
            IpAddr::V6(v6) => AddrKey::V6((u128::from(v6) >> 64) as u64),
        }
    }
}

/// The table every listener of a server shares.
pub struct ConnTable {
    per_addr: Mutex<HashMap<AddrKey, usize, Seeded>>,
    /// Connections one address may hold.
    cap: usize,
    /// Woken when the table is full: idle connections may close.
    pressure: Pressure,
    /// How many idle connections may still close for the last pressure.
    evict_budget: AtomicUsize,
    /// Whose idle connections close this round: the address holding the
    /// most, or (every other round) anyone's.
    evict_target: Mutex<Option<AddrKey>>,
    evict_rounds: AtomicU64,
}

/// One connection's count against its address; released when dropped.
pub struct AddrSlot {
    table: Arc<ConnTable>,
    key: AddrKey,
}

impl ConnTable {
    pub fn new(cap: usize) -> Self {
        Self {
            per_addr: Mutex::new(HashMap::with_hasher(Seeded::random())),
            cap: cap.max(1),
            pressure: Pressure::default(),
            evict_budget: AtomicUsize::new(0),
            evict_target: Mutex::new(None),
            evict_rounds: AtomicU64::new(0),
        }
    }

    /// Counts a connection from `ip`, or `None` when that address already
    /// holds its share.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<AddrSlot> {
        let key = AddrKey::of(ip);
        let mut m = self.per_addr.lock().unwrap_or_else(|e| e.into_inner());
        let n = m.entry(key).or_insert(0);
        if *n >= self.cap {
            return None;
        }
        *n += 1;
        Some(AddrSlot {
            table: self.clone(),
            key,
        })
    }

    /// Connections an address holds now (for tests and metrics).
    pub fn held(&self, ip: IpAddr) -> usize {
        let m = self.per_addr.lock().unwrap_or_else(|e| e.into_inner());
        m.get(&AddrKey::of(ip)).copied().unwrap_or(0)
    }

    /// The table is full: up to [`EVICT_BATCH`] idle connections may close.
    /// The first round (and every other one after it) closes only those of
    /// the address that holds the most connections, so that one filling
    /// the table loses its own idle connections, not everyone's; if that
    /// frees nothing, the next round takes anyone's.
    pub fn evict_idle(&self) {
        let round = self.evict_rounds.fetch_add(1, Ordering::Relaxed);
        let target = if round.is_multiple_of(2) {
            self.heaviest()
        } else {
            None
        };
        *self.evict_target.lock().unwrap_or_else(|e| e.into_inner()) = target;
        self.evict_budget.store(EVICT_BATCH, Ordering::Release);
        self.pressure.notify_all();
    }

    /// The address holding the most connections, if it holds more than one.
    fn heaviest(&self) -> Option<AddrKey> {
        let m = self.per_addr.lock().unwrap_or_else(|e| e.into_inner());
        m.iter()
            .max_by_key(|&(_, n)| *n)
            .filter(|&(_, n)| *n > 1)
            .map(|(k, _)| *k)
    }

    /// Completes when the table asks idle connections to make room.
    pub fn pressure(&self) -> PressureWait<'_> {
        PressureWait {
            pressure: &self.pressure,
            epoch: self.pressure.epoch.load(Ordering::Acquire),
            id: None,
            waker: None,
        }
    }

    /// Whether this (idle) connection, counted against `key` (`None`: a
    /// trusted proxy's, not counted), is one of those asked to close.
    pub fn take_eviction(&self, key: Option<AddrKey>) -> bool {
        let target = *self.evict_target.lock().unwrap_or_else(|e| e.into_inner());
        if target.is_some() && target != key {
            return false;
        }
        self.evict_budget
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |b| b.checked_sub(1))
            .is_ok()
    }
}

/// Wakes every waiting connection at once. Every connection waits on it
/// beside its requests, and its task is polled on every request: tokio's
/// `Notify` takes its one lock on each of those polls, so that all
/// connections serialized on it. Here a poll is one atomic load; the lock
/// is taken only to register (once per wait) and to notify (rare).
#[derive(Default)]
struct Pressure {
    epoch: AtomicU64,
    next_id: AtomicU64,
    waiters: Mutex<HashMap<u64, Waker>>,
}

impl Pressure {
    fn notify_all(&self) {
        // The epoch first: a waiter registering after the lock below sees it.
        self.epoch.fetch_add(1, Ordering::AcqRel);
        let waiters = self.waiters.lock().unwrap_or_else(|e| e.into_inner());
        for w in waiters.values() {
            w.wake_by_ref();
        }
    }
}

/// [`ConnTable::pressure`]'s future.
pub struct PressureWait<'a> {
    pressure: &'a Pressure,
    epoch: u64,
    id: Option<u64>,
    /// The waker registered, to see without the lock that it is current.
    waker: Option<Waker>,
}

impl Future for PressureWait<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let p = this.pressure;
        if p.epoch.load(Ordering::Acquire) != this.epoch {
            return Poll::Ready(());
        }
        if this.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            return Poll::Pending;
        }
        let id = *this
            .id
            .get_or_insert_with(|| p.next_id.fetch_add(1, Ordering::Relaxed));
        p.waiters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, cx.waker().clone());
        this.waker = Some(cx.waker().clone());
        // A notification between the first load and the registration.
        if p.epoch.load(Ordering::Acquire) != this.epoch {
            return Poll::Ready(());
        }
        Poll::Pending
    }
}

impl Drop for PressureWait<'_> {
    fn drop(&mut self) {
        if let Some(id) = self.id {
            self.pressure
                .waiters
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&id);
        }
    }
}

impl AddrSlot {
    pub fn key(&self) -> AddrKey {
        self.key
    }
}

impl Drop for AddrSlot {
    fn drop(&mut self) {
        let mut m = self
            .table
            .per_addr
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(n) = m.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_address_holds_at_most_its_share_and_gets_it_back() {
        let t = Arc::new(ConnTable::new(2));
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let (s1, s2) = (t.admit(a).unwrap(), t.admit(a).unwrap());
        assert!(t.admit(a).is_none());
        assert!(t.admit("192.0.2.2".parse().unwrap()).is_some());
        drop(s1);
        assert_eq!(t.held(a), 1);
        assert!(t.admit(a).is_some());
        drop(s2);
    }

    #[test]
    fn ipv6_counts_by_its_64_and_mapped_ipv4_as_ipv4() {
        let t = Arc::new(ConnTable::new(1));
        let _a = t.admit("2001:db8:1:2::1".parse().unwrap()).unwrap();
        assert!(t.admit("2001:db8:1:2:ffff::9".parse().unwrap()).is_none());
        assert!(t.admit("2001:db8:1:3::1".parse().unwrap()).is_some());
        let _b = t.admit("192.0.2.7".parse().unwrap()).unwrap();
        assert!(t.admit("::ffff:192.0.2.7".parse().unwrap()).is_none());
    }

    #[test]
    fn keys_spread_over_the_hash_space() {
        let s = Seeded::random();
        // Neighbouring addresses, and /64s that differ only in high bits,
        // land in different buckets of a small table.
        for keys in [
            (0..64u32).map(AddrKey::V4).collect::<Vec<_>>(),
            (0..64u64).map(|i| AddrKey::V6(i << 48)).collect(),
        ] {
            let buckets: std::collections::HashSet<u64> =
                keys.iter().map(|k| s.hash_one(k) & 127).collect();
            assert!(buckets.len() > 32, "{} buckets", buckets.len());
        }
    }

    #[tokio::test]
    async fn pressure_wakes_every_waiter_and_forgets_the_gone() {
        let t = Arc::new(ConnTable::new(1));
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                let t = t.clone();
                tokio::spawn(async move { t.pressure().await })
            })
            .collect();
        // Registered, then one leaves before the notification.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let gone = {
            let t = t.clone();
            tokio::spawn(async move { t.pressure().await })
        };
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        gone.abort();
        let _ = gone.await;
        assert_eq!(t.pressure.waiters.lock().unwrap().len(), 3);
        t.evict_idle();
        for w in waiters {
            tokio::time::timeout(std::time::Duration::from_secs(5), w)
                .await
                .expect("woken")
                .expect("task");
        }
        assert!(t.pressure.waiters.lock().unwrap().is_empty());
    }

    #[test]
    fn eviction_takes_at_most_a_batch() {
        let t = ConnTable::new(1);
        assert!(!t.take_eviction(None));
        t.evict_idle();
        assert_eq!(
            (0..100).filter(|_| t.take_eviction(None)).count(),
            EVICT_BATCH
        );
    }

    #[test]
    fn the_heaviest_address_loses_its_idle_connections_first() {
        let t = Arc::new(ConnTable::new(100));
        let (heavy, light): (IpAddr, IpAddr) =
            ("192.0.2.9".parse().unwrap(), "192.0.2.1".parse().unwrap());
        let _held: Vec<_> = (0..5).map(|_| t.admit(heavy).unwrap()).collect();
        let _one = t.admit(light).unwrap();
        // First round: only the heaviest address.
        t.evict_idle();
        assert!(!t.take_eviction(Some(AddrKey::of(light))));
        assert!(!t.take_eviction(None));
        assert!(t.take_eviction(Some(AddrKey::of(heavy))));
        // Next round: anyone's.
        t.evict_idle();
        assert!(t.take_eviction(Some(AddrKey::of(light))));
    }
}
