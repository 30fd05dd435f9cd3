//! Who may have requests open at the console, and how many (issue 22).
//!
//! Two bounds, each waited on rather than refused at once (a browser's 100
//! parallel requests, an office behind one NAT address: waiting is fine,
//! a 503 is not), up to `timeouts.upstream_connect`:
//!
//! - **per address** (`limits.upstream_requests_per_address`, IPv6 by its
//!   /64): one address cannot hold the whole console. Never smaller than
//!   what one client connection may ask for at once (`limits.max_streams`).
//! - **public** (`limits.upstream_requests_public`): requests from clients
//!   outside the operators' networks (allowed by a rule open to everyone,
//!   such as `/static/**`) share this many places. The rest of
//!   `upstream_connections` stays for the operators: requests from the
//!   networks an `allow_from` rule vouches for (the office, the VPN) never
//!   wait behind them.
//!
//! A request holds its places until the console's answer has been read to
//! its end: with response buffering (`limits.response_buffer`), that is
//! when a small answer is in netwarden's memory, whether or not the client
//! reads it.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::conn_table::{AddrKey, Seeded};

/// Whose request it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Who {
    /// In a network an `allow_from` rule vouches for.
    Operator,
    /// Anyone else a rule allowed (a public rule's `action: allow`, a
    /// network that holds every address).
    Public,
}

/// Why a request got no place in time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// Its address kept `upstream_requests_per_address` requests open.
    PerAddress,
    /// The public places stayed taken.
    Public,
}

impl Refused {
    /// The `upstream_error` and metric outcome.
    pub fn as_str(self) -> &'static str {
        match self {
            Refused::PerAddress => "per_address",
            Refused::Public => "public",
        }
    }
}

/// The places every listener's requests share.
pub struct Admission {
    per_addr: Mutex<HashMap<AddrKey, Share, Seeded>>,
    share: usize,
    public: Arc<Semaphore>,
}

/// One address's requests open at the console, and, only while some wait
/// for a place, what wakes them. A plain count under one short lock:
/// taking and giving back a place is a map lookup and an increment, no
/// allocation (most requests never wait).
struct Share {
    held: usize,
    waiters: Option<Arc<tokio::sync::Notify>>,
}

/// The places one request holds; given back when dropped.
pub struct Held {
    _addr: AddrPlace,
    _public: Option<OwnedSemaphorePermit>,
}

struct AddrPlace {
    admission: Arc<Admission>,
    key: AddrKey,
}

impl Drop for AddrPlace {
    fn drop(&mut self) {
        let mut m = self.admission.lock();
        let Some(share) = m.get_mut(&self.key) else {
            return;
        };
        share.held = share.held.saturating_sub(1);
        match &share.waiters {
            // One waiter takes the place (tokio passes the wake-up on if
            // that one has just given up).
            Some(w) => w.notify_one(),
            None if share.held == 0 => {
                m.remove(&self.key);
            }
            None => {}
        }
    }
}

impl Admission {
    /// `share`: requests one address may have open; `public`: requests
    /// all public clients together may.
    pub fn new(share: usize, public: usize) -> Self {
        Self {
            per_addr: Mutex::new(HashMap::with_hasher(Seeded::random())),
            share: share.max(1),
            public: Arc::new(Semaphore::new(public.max(1))),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<AddrKey, Share, Seeded>> {
        self.per_addr.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A place for `key` now, or what to wait on for one.
    fn try_take(self: &Arc<Self>, key: AddrKey) -> Result<AddrPlace, Arc<tokio::sync::Notify>> {
        let mut m = self.lock();
        let share = m.entry(key).or_insert(Share {
            held: 0,
            waiters: None,
        });
        if share.held < self.share {
            share.held += 1;
            return Ok(AddrPlace {
                admission: self.clone(),
                key,
            });
        }
        Err(share
            .waiters
            .get_or_insert_with(|| Arc::new(tokio::sync::Notify::new()))
            .clone())
    }

    /// A waiter for `key` gives up: the last one takes the wake-up handle
    /// away, and an address with nothing open is forgotten.
    fn stop_waiting(&self, key: AddrKey, waiters: Arc<tokio::sync::Notify>) {
        let mut m = self.lock();
        drop(waiters);
        if let Some(share) = m.get_mut(&key)
            && share
                .waiters
                .as_ref()
                .is_some_and(|w| Arc::strong_count(w) == 1)
        {
            share.waiters = None;
            if share.held == 0 {
                m.remove(&key);
            }
        }
    }

    /// A place at `key` by `deadline`.
    async fn take(
        self: &Arc<Self>,
        key: AddrKey,
        deadline: tokio::time::Instant,
    ) -> Option<AddrPlace> {
        loop {
            let waiters = match self.try_take(key) {
                Ok(place) => return Some(place),
                Err(w) => w,
            };
            // `Some(result)`: done; `None`: woken, look again (another may
            // have been quicker).
            let outcome = {
                let notified = waiters.notified();
                tokio::pin!(notified);
                // Registered before looking again, so that a place given
                // back between the look and the wait still wakes this one.
                notified.as_mut().enable();
                match self.try_take(key) {
                    Ok(place) => Some(Some(place)),
                    Err(_) if tokio::time::timeout_at(deadline, notified).await.is_ok() => None,
                    Err(_) => Some(None),
                }
            };
            self.stop_waiting(key, waiters);
            if let Some(result) = outcome {
                return result;
            }
        }
    }

    /// Places for a request from `ip` at once, if there are: the common
    /// case, without a future of its own. `None`: [`admit`](Self::admit)
    /// waits for them.
    pub fn try_admit(self: &Arc<Self>, ip: IpAddr, who: Who) -> Option<Held> {
        let key = AddrKey::of(ip);
        let addr = match self.try_take(key) {
            Ok(place) => place,
            Err(waiters) => {
                self.stop_waiting(key, waiters);
                return None;
            }
        };
        let public = match who {
            Who::Operator => None,
            Who::Public => Some(self.public.clone().try_acquire_owned().ok()?),
        };
        Some(Held {
            _addr: addr,
            _public: public,
        })
    }

    /// Places for a request from `ip`, waiting up to `wait` in all.
    pub async fn admit(
        self: &Arc<Self>,
        ip: IpAddr,
        who: Who,
        wait: Duration,
    ) -> Result<Held, Refused> {
        let key = AddrKey::of(ip);
        // Most requests find a place at once: no timer, no wait.
        let addr = match self.try_take(key) {
            Ok(place) => place,
            Err(waiters) => {
                self.stop_waiting(key, waiters);
                let deadline = tokio::time::Instant::now() + wait;
                self.take(key, deadline).await.ok_or(Refused::PerAddress)?
            }
        };
        let public = match who {
            Who::Operator => None,
            Who::Public => Some(match self.public.clone().try_acquire_owned() {
                Ok(p) => p,
                Err(_) => tokio::time::timeout(wait, self.public.clone().acquire_owned())
                    .await
                    .ok()
                    .and_then(Result::ok)
                    .ok_or(Refused::Public)?,
            }),
        };
        Ok(Held {
            _addr: addr,
            _public: public,
        })
    }

    /// Addresses with requests open or waiting (for tests).
    pub fn addresses(&self) -> usize {
        self.lock().len()
    }

    /// Public places free now (for tests).
    pub fn public_free(&self) -> usize {
        self.public.available_permits()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[tokio::test]
    async fn a_request_over_the_share_waits_for_a_place_and_then_gets_it() {
        let a = Arc::new(Admission::new(2, 8));
        let one = a.admit(ip("10.0.0.1"), Who::Operator, Duration::ZERO).await;
        let two = a.admit(ip("10.0.0.1"), Who::Operator, Duration::ZERO).await;
        assert!(one.is_ok() && two.is_ok());
        // No wait: refused.
        assert_eq!(
            a.admit(ip("10.0.0.1"), Who::Operator, Duration::ZERO)
                .await
                .err(),
            Some(Refused::PerAddress)
        );
        // Another address is not affected.
        assert!(
            a.admit(ip("10.0.0.2"), Who::Operator, Duration::ZERO)
                .await
                .is_ok()
        );
        // A waiter gets the place given back.
        let waiter = {
            let a = a.clone();
            tokio::spawn(async move {
                a.admit(ip("10.0.0.1"), Who::Operator, Duration::from_secs(5))
                    .await
                    .is_ok()
            })
        };
        tokio::task::yield_now().await;
        drop(one);
        assert!(waiter.await.expect("task"));
    }

    #[tokio::test]
    async fn the_quick_path_takes_a_free_place_and_leaves_a_full_share_to_the_wait() {
        let a = Arc::new(Admission::new(1, 1));
        let held = a.try_admit(ip("10.0.0.1"), Who::Public).expect("free");
        assert!(a.try_admit(ip("10.0.0.1"), Who::Operator).is_none());
        assert!(
            a.try_admit(ip("10.0.0.2"), Who::Public).is_none(),
            "public full"
        );
        assert!(a.try_admit(ip("10.0.0.2"), Who::Operator).is_some());
        drop(held);
        assert_eq!(a.addresses(), 0);
        assert!(a.try_admit(ip("10.0.0.2"), Who::Public).is_some());
    }

    #[tokio::test]
    async fn public_requests_cannot_take_the_operators_room() {
        let a = Arc::new(Admission::new(100, 3));
        let mut held = Vec::new();
        for i in 0..3 {
            let got = a
                .admit(ip(&format!("203.0.113.{i}")), Who::Public, Duration::ZERO)
                .await;
            held.push(got.expect("a public place"));
        }
        assert_eq!(
            a.admit(ip("203.0.113.9"), Who::Public, Duration::ZERO)
                .await
                .err(),
            Some(Refused::Public)
        );
        assert_eq!(a.public_free(), 0);
        assert!(
            a.admit(ip("203.0.113.9"), Who::Operator, Duration::ZERO)
                .await
                .is_ok()
        );
        drop(held);
        assert_eq!(a.public_free(), 3);
    }

    #[tokio::test]
    async fn the_table_forgets_addresses_with_nothing_open() {
        let a = Arc::new(Admission::new(4, 4));
        for i in 0..100u32 {
            let ip = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            let held = a.admit(ip, Who::Operator, Duration::ZERO).await;
            assert!(held.is_ok());
        }
        assert_eq!(a.addresses(), 0);
        let kept = a.admit(ip("10.1.1.1"), Who::Public, Duration::ZERO).await;
        assert_eq!(a.addresses(), 1);
        drop(kept);
        assert_eq!(a.addresses(), 0);
        // A refused request leaves nothing behind either.
        let full: Vec<_> = {
            let mut v = Vec::new();
            for _ in 0..4 {
                v.push(a.admit(ip("10.2.2.2"), Who::Operator, Duration::ZERO).await);
            }
            v
        };
        let refused = a.admit(ip("10.2.2.2"), Who::Operator, Duration::ZERO).await;
        assert!(refused.is_err());
        drop(full);
        assert_eq!(a.addresses(), 0);
    }
}
