//! Lockout state in Redis, shared by every replica (`state: { store:
//! redis }`). Each step of a key is one Lua script: it reads and updates
//! the key's counters and their expiry atomically, in one round trip. The
//! semantics are those of [`super::memory`]; time is each replica's wall
//! clock in milliseconds (replicas keep it in step with NTP; a skew of a
//! second changes a 15-minute window by a second).
//!
//! A key `K` has three Redis keys, with one hash tag so that a Cluster keeps
//! them on one node: `{prefix}{K}:h` (a hash: `until`, `strikes`, `last`),
//! `{prefix}{K}:f` (failures in the window, a sorted set by time) and
//! `{prefix}{K}:p` (sign-ins in flight, a sorted set by when they are
//! forgotten if their replica never reports back).
//!
//! When a call fails or takes longer than `timeout`, the store is marked
//! down: sign-ins go to the fallback at once (no waiting on a dead server)
//! while one probe task pings Redis with backoff, and marks it up again
//! when it answers.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redis::aio::ConnectionManager;

use super::{Failure, Key, Settings};
use crate::policy::state::{OnStoreError, Redis as RedisSettings};

/// Whether a call is tried while the store is down; see [`Store::run`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Gate {
    IfUp,
    Always,
}

/// Redis could not be asked in time; the fallback decides.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Unavailable;

/// The health of the store, as the request path sees it.
const UNKNOWN: u8 = 0;
const UP: u8 = 1;
const DOWN: u8 = 2;

/// The first probe after a failure waits this long; each next one twice
/// as long, up to [`PROBE_MAX`]: a dead Redis costs a ping now and then.
const PROBE_MIN: Duration = Duration::from_millis(250);
const PROBE_MAX: Duration = Duration::from_secs(10);
/// A probe waits this long for PONG (longer than a sign-in waits: a slow
/// answer still says the server is there).
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// A sign-in in flight is forgotten after the upstream timeout and this
/// much more, if its replica never reports its outcome (it died).
const PENDING_GRACE: Duration = Duration::from_secs(5);

/// `KEYS`: h, f, p. `ARGV`: now, within, after, id, pending_until.
/// Returns {0} (go), {1, ms} (locked for ms), {2, ms} (wait: `after`
/// failures and sign-ins in flight already).
const BEGIN: &str = r"
local now = tonumber(ARGV[1])
local until_ = tonumber(redis.call('HGET', KEYS[1], 'until') or '0')
if until_ > now then return {1, until_ - now} end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. (now - tonumber(ARGV[2])))
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
local spent = redis.call('ZCARD', KEYS[2]) + redis.call('ZCARD', KEYS[3])
if spent >= tonumber(ARGV[3]) then return {2, 1000} end
local pending_until = tonumber(ARGV[5])
redis.call('ZADD', KEYS[3], pending_until, ARGV[4])
redis.call('PEXPIREAT', KEYS[3], pending_until)
return {0}
";

/// `KEYS`: h, f, p. `ARGV`: now, within, after, lock_for, max_lock, id.
/// Returns {0, failures} or {1, lock_ms, strike}.
const FAILURE: &str = r"
local now, within, after = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local lock_for, max_lock = tonumber(ARGV[4]), tonumber(ARGV[5])
redis.call('ZREM', KEYS[3], ARGV[6])
local h = redis.call('HMGET', KEYS[1], 'until', 'strikes', 'last')
local until_ = tonumber(h[1] or '0')
local strikes = tonumber(h[2] or '0')
local last = tonumber(h[3] or ARGV[1])
if now - math.max(until_, last) > max_lock then strikes = 0 end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. (now - within))
redis.call('ZADD', KEYS[2], now, ARGV[6])
local n = redis.call('ZCARD', KEYS[2])
if n > after then
  redis.call('ZREMRANGEBYRANK', KEYS[2], 0, n - after - 1)
  n = after
end
local out
if n >= after and until_ <= now then
  local lock = math.min(lock_for * math.pow(2, math.min(strikes, 31)), max_lock)
  strikes = strikes + 1
  until_ = now + lock
  redis.call('DEL', KEYS[2])
  out = {1, lock, strikes}
else
  redis.call('PEXPIRE', KEYS[2], within)
  out = {0, n}
end
redis.call('HSET', KEYS[1], 'until', until_, 'strikes', strikes, 'last', now)
local keep = within
if strikes > 0 then keep = math.max(until_ - now, 0) + max_lock end
redis.call('PEXPIRE', KEYS[1], math.max(keep, within))
return out
";

/// `KEYS`: h, f, p. `ARGV`: now, id, reset (1 or 0). A success: its place
/// is freed and, with reset, the failures and repeats are forgotten (a lock
/// in force stays).
const SUCCESS: &str = r"
redis.call('ZREM', KEYS[3], ARGV[2])
if ARGV[3] ~= '1' then return 0 end
redis.call('DEL', KEYS[2])
local until_ = tonumber(redis.call('HGET', KEYS[1], 'until') or '0')
if until_ > tonumber(ARGV[1]) then
  return 0
end
redis.call('DEL', KEYS[1])
return 1
";

/// `KEYS`: h. `ARGV`: now, until, max_lock. Locks the key until `until`
/// at least, without a strike (see `Key::unread_scope`); kept as long as a
/// lock of its own would be.
const HOLD: &str = r"
local now, want = tonumber(ARGV[1]), tonumber(ARGV[2])
local until_ = tonumber(redis.call('HGET', KEYS[1], 'until') or '0')
if want > until_ then
  redis.call('HSET', KEYS[1], 'until', want)
  until_ = want
end
local keep = until_ - now + tonumber(ARGV[3])
if redis.call('PTTL', KEYS[1]) < keep then redis.call('PEXPIRE', KEYS[1], keep) end
return 1
";

/// `KEYS`: claim. `ARGV`: ttl. 1 for the replica that claimed it.
const CLAIM: &str = r"
if redis.call('SET', KEYS[1], 1, 'NX', 'PX', ARGV[1]) then return 1 end
return 0
";

/// `KEYS`: count, claim. `ARGV`: n, ttl. Adds n to the count (kept two
/// windows), then claims; 1 for the replica that claimed it.
const ADD_AND_CLAIM: &str = r"
redis.call('INCRBY', KEYS[1], ARGV[1])
redis.call('PEXPIRE', KEYS[1], 2 * tonumber(ARGV[2]))
if redis.call('SET', KEYS[2], 1, 'NX', 'PX', ARGV[2]) then return 1 end
return 0
";

/// `KEYS`: count. Returns it and starts it again from zero.
const TAKE: &str = r"
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
redis.call('DEL', KEYS[1])
return n
";

// Each thread's connections to the stores it used, by store id.
// netwarden's workers are single-threaded runtimes: a connection driven by
// another runtime would cost two thread wake-ups a round trip (measured
// with benches/sign_in.sh), so each worker has its own, made on first use.
thread_local! {
    static LOCAL: std::cell::RefCell<Vec<(u64, ConnectionManager)>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// Tells stores apart in [`LOCAL`].
static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// The store, its scripts and its health.
pub struct Store {
    id: u64,
    client: redis::Client,
    config: redis::aio::ConnectionManagerConfig,
    /// The probe's own connection, on the runtime that started the store.
    conn: ConnectionManager,
    prefix: String,
    timeout: Duration,
    pub on_error: OnStoreError,
    /// How long a reservation stays if its replica never reports back.
    pending_for: Duration,
    health: AtomicU8,
    begin: redis::Script,
    failure: redis::Script,
    success: redis::Script,
    hold: redis::Script,
    claim: redis::Script,
    add_claim: redis::Script,
    take: redis::Script,
    /// Told of every change of health: `true` up, `false` down with why.
    on_change: Box<dyn Fn(Health<'_>) + Send + Sync>,
}

/// A change of the store's health.
#[derive(Clone, Copy, Debug)]
pub enum Health<'a> {
    /// Redis answered (the first time, or again after being down).
    Up { again: bool },
    /// Redis did not answer in time, or refused: the fallback decides.
    Down { error: &'a str },
}

/// Why a store could not be made.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("{0} is not set: it must hold the redis:// or rediss:// URL of the lockout store")]
    NoUrl(String),
    #[error("{name} does not hold a Redis URL netwarden can use: {why}")]
    BadUrl { name: String, why: String },
    #[error("state.ca_file {path}: {why}")]
    Ca { path: String, why: String },
}

impl Store {
    /// A store for `settings`, connecting in the background: startup does
    /// not wait for Redis (a sign-in before it answers uses the fallback).
    pub fn start(
        settings: &RedisSettings,
        url: Option<&str>,
        upstream_timeout: Duration,
        on_change: Box<dyn Fn(Health<'_>) + Send + Sync>,
    ) -> Result<Arc<Self>, SetupError> {
        let url = url.ok_or_else(|| SetupError::NoUrl(settings.url_env.clone()))?;
        let bad = |why: String| SetupError::BadUrl {
            name: settings.url_env.clone(),
            why,
        };
        let client = match &settings.ca_file {
            Some(ca) => {
                let pem = std::fs::read(ca).map_err(|e| SetupError::Ca {
                    path: ca.display().to_string(),
                    why: e.to_string(),
                })?;
                redis::Client::build_with_tls(
                    url,
                    redis::TlsCertificates {
                        client_tls: None,
                        root_cert: Some(pem),
                    },
                )
            }
            None => redis::Client::open(url),
        }
        // The error text never holds the URL (or its password): redis-rs
        // names the kind of problem only.
        .map_err(|e| bad(e.to_string()))?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(PROBE_TIMEOUT))
            .set_response_timeout(Some(PROBE_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(PROBE_MAX);
        let conn = ConnectionManager::new_lazy_with_config(client.clone(), config.clone())
            .map_err(|e| bad(e.to_string()))?;
        let store = Arc::new(Self {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            client,
            config,
            conn,
            prefix: settings.prefix.clone(),
            timeout: settings.timeout,
            on_error: settings.on_store_error,
            pending_for: upstream_timeout + PENDING_GRACE,
            health: AtomicU8::new(UNKNOWN),
            begin: redis::Script::new(BEGIN),
            failure: redis::Script::new(FAILURE),
            success: redis::Script::new(SUCCESS),
            hold: redis::Script::new(HOLD),
            claim: redis::Script::new(CLAIM),
            add_claim: redis::Script::new(ADD_AND_CLAIM),
            take: redis::Script::new(TAKE),
            on_change,
        });
        tokio::spawn(probe(Arc::downgrade(&store), Duration::ZERO));
        Ok(store)
    }

    /// Whether Redis answered last time it was asked.
    pub fn is_up(&self) -> bool {
        self.health.load(Ordering::Relaxed) == UP
    }

    fn keys(&self, key: &Key) -> [String; 3] {
        let base = format!("{}{{{key}}}", self.prefix);
        [
            format!("{base}:h"),
            format!("{base}:f"),
            format!("{base}:p"),
        ]
    }

    /// This thread's connection to the store, made (lazily: it connects on
    /// its first command) if it has none.
    fn local(&self) -> Option<ConnectionManager> {
        LOCAL.with(|l| {
            let mut l = l.borrow_mut();
            if let Some((_, c)) = l.iter().find(|(id, _)| *id == self.id) {
                return Some(c.clone());
            }
            let c =
                ConnectionManager::new_lazy_with_config(self.client.clone(), self.config.clone())
                    .ok()?;
            l.push((self.id, c.clone()));
            Some(c)
        })
    }

    /// Drops this thread's connection after a failure: the next command
    /// makes a fresh one, rather than meet the old one's error once more.
    fn forget_local(&self) {
        LOCAL.with(|l| l.borrow_mut().retain(|(id, _)| *id != self.id));
    }

    /// Runs a script within the timeout; a failure marks the store down.
    /// `Gate::IfUp`: not tried while the store is down (the request path
    /// must not wait on a dead server); `Gate::Always`: a step after the
    /// console's answer, in the background, tried even so, so that a
    /// failure is not lost and a place held in flight is freed when a
    /// short outage (an overloaded Redis) ends (second red-team review of
    /// accounts).
    async fn run<T: redis::FromRedisValue>(
        self: &Arc<Self>,
        gate: Gate,
        script: &redis::Script,
        keys: &[String],
        args: &[String],
    ) -> Result<T, Unavailable> {
        if gate == Gate::IfUp && !self.is_up() {
            return Err(Unavailable);
        }
        let mut inv = script.prepare_invoke();
        for k in keys {
            inv.key(k);
        }
        for a in args {
            inv.arg(a);
        }
        let Some(mut conn) = self.local() else {
            self.down("cannot make a connection");
            return Err(Unavailable);
        };
        match tokio::time::timeout(self.timeout, inv.invoke_async::<T>(&mut conn)).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => {
                self.forget_local();
                self.down(&e.to_string());
                Err(Unavailable)
            }
            Err(_) => {
                self.forget_local();
                self.down("no answer within state.timeout");
                Err(Unavailable)
            }
        }
    }

    fn down(self: &Arc<Self>, error: &str) {
        if self.health.swap(DOWN, Ordering::AcqRel) != DOWN {
            (self.on_change)(Health::Down { error });
            tokio::spawn(probe(Arc::downgrade(self), PROBE_MIN));
        }
    }

    /// A sign-in for `key` may go (`Ok(Ok)`, its place held), may not for
    /// a while (`Ok(Err)`), or Redis could not tell.
    pub async fn begin(
        self: &Arc<Self>,
        key: Key,
        s: &Settings,
    ) -> Result<Result<Reservation, Duration>, Unavailable> {
        self.begin_at(key, s, now_ms()).await
    }

    /// [`begin`](Self::begin) at `now` (milliseconds since the epoch):
    /// tests drive the clock.
    pub async fn begin_at(
        self: &Arc<Self>,
        key: Key,
        s: &Settings,
        now: u64,
    ) -> Result<Result<Reservation, Duration>, Unavailable> {
        let keys = self.keys(&key);
        let id = reservation_id();
        let pending_until = now + ms(self.pending_for);
        let got: Vec<i64> = self
            .run(
                Gate::IfUp,
                &self.begin,
                &keys,
                &[
                    now.to_string(),
                    ms(s.within).to_string(),
                    s.after.to_string(),
                    id.clone(),
                    pending_until.to_string(),
                ],
            )
            .await?;
        Ok(match got.as_slice() {
            [0, ..] => Ok(Reservation {
                store: Some(self.clone()),
                keys,
                id,
            }),
            [_, wait, ..] => Err(Duration::from_millis(u64::try_from(*wait).unwrap_or(1000))),
            // A reply the script cannot give: refuse rather than open.
            _ => Err(Duration::from_secs(1)),
        })
    }

    /// Counts a failed sign-in.
    pub async fn failure(
        self: &Arc<Self>,
        r: Reservation,
        s: &Settings,
    ) -> Result<Failure, Unavailable> {
        self.failure_at(r, s, now_ms()).await
    }

    /// [`failure`](Self::failure) at `now` (milliseconds since the epoch).
    pub async fn failure_at(
        self: &Arc<Self>,
        mut r: Reservation,
        s: &Settings,
        now: u64,
    ) -> Result<Failure, Unavailable> {
        r.store = None;
        let got: Vec<i64> = self
            .run(
                Gate::Always,
                &self.failure,
                &r.keys,
                &[
                    now.to_string(),
                    ms(s.within).to_string(),
                    s.after.to_string(),
                    ms(s.lock_for).to_string(),
                    ms(s.max_lock).to_string(),
                    r.id.clone(),
                ],
            )
            .await?;
        Ok(match got.as_slice() {
            [1, lock, strike, ..] => Failure::Locked {
                lock: Duration::from_millis(u64::try_from(*lock).unwrap_or(0)),
                strike: u32::try_from(*strike).unwrap_or(u32::MAX),
            },
            [_, n, ..] => Failure::Counted {
                failures: u32::try_from(*n).unwrap_or(0),
            },
            _ => Failure::Counted { failures: 0 },
        })
    }

    /// A successful sign-in.
    pub async fn success(
        self: &Arc<Self>,
        r: Reservation,
        s: &Settings,
    ) -> Result<(), Unavailable> {
        self.success_at(r, s, now_ms()).await
    }

    /// [`success`](Self::success) at `now` (milliseconds since the epoch).
    pub async fn success_at(
        self: &Arc<Self>,
        mut r: Reservation,
        s: &Settings,
        now: u64,
    ) -> Result<(), Unavailable> {
        r.store = None;
        let reset = if s.reset_on_success { "1" } else { "0" };
        self.run::<i64>(
            Gate::Always,
            &self.success,
            &r.keys,
            &[now.to_string(), r.id.clone(), reset.into()],
        )
        .await
        .map(drop)
    }

    /// Locks `key` for `lock` from now at least, without a strike.
    pub async fn hold(
        self: &Arc<Self>,
        key: Key,
        lock: Duration,
        s: &Settings,
    ) -> Result<(), Unavailable> {
        let now = now_ms();
        let keys = self.keys(&key);
        self.run::<i64>(
            Gate::Always,
            &self.hold,
            &keys[..1],
            &[
                now.to_string(),
                (now + ms(lock)).to_string(),
                ms(s.max_lock).to_string(),
            ],
        )
        .await
        .map(drop)
    }

    /// Every key locked now, across every replica: a SCAN of this
    /// store's key names (one page at a time, bounded), then each one's
    /// lock. For `GET /lockouts`; never on the request path.
    pub async fn locks(self: &Arc<Self>) -> Result<Vec<(Key, u64, u32)>, Unavailable> {
        let mut conn = self.conn.clone();
        let pattern = format!("{}{{*}}:h", glob_escape(&self.prefix));
        let now = now_ms();
        let mut out = Vec::new();
        let mut cursor: u64 = 0;
        // At most this many pages of 1,000 names: a bound on the work one
        // request does, far above the keys `max_entries` allows per replica.
        for _ in 0..1000 {
            let mut cmd = redis::cmd("SCAN");
            cmd.arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(1000);
            let scan = cmd.query_async::<(u64, Vec<String>)>(&mut conn);
            let (next, names) = tokio::time::timeout(PROBE_TIMEOUT, scan)
                .await
                .map_err(|_| Unavailable)?
                .map_err(|_| Unavailable)?;
            for name in names {
                let Some(key) = name
                    .strip_prefix(&self.prefix)
                    .and_then(|n| n.strip_prefix('{'))
                    .and_then(|n| n.strip_suffix("}:h"))
                    .and_then(Key::from_text)
                else {
                    continue;
                };
                let mut cmd = redis::cmd("HMGET");
                cmd.arg(&name).arg("until").arg("strikes");
                let get = cmd.query_async::<(Option<u64>, Option<u32>)>(&mut conn);
                let (until, strikes) = tokio::time::timeout(PROBE_TIMEOUT, get)
                    .await
                    .map_err(|_| Unavailable)?
                    .map_err(|_| Unavailable)?;
                if let Some(until) = until.filter(|&u| u > now) {
                    out.push((key, until, strikes.unwrap_or(0)));
                }
            }
            cursor = next;
            if cursor == 0 {
                break;
            }
        }
        Ok(out)
    }

    /// Lifts the locks of `keys` in Redis, with their failures and repeats.
    pub async fn release_locks(self: &Arc<Self>, keys: &[Key]) -> Result<(), Unavailable> {
        let mut conn = self.conn.clone();
        for key in keys {
            let [h, f, _] = self.keys(key);
            let mut cmd = redis::cmd("DEL");
            cmd.arg(h).arg(f);
            let del = cmd.exec_async(&mut conn);
            tokio::time::timeout(PROBE_TIMEOUT, del)
                .await
                .map_err(|_| Unavailable)?
                .map_err(|_| Unavailable)?;
        }
        Ok(())
    }

    /// Frees a place without an outcome (the console's answer said
    /// nothing, or did not come).
    async fn release(self: Arc<Self>, keys: [String; 3], id: String) {
        // Tried even while the store is down (a short outage may be over);
        // if it fails, the reservation expires by itself.
        let Some(mut conn) = self.local() else {
            return;
        };
        let cmd = redis::cmd("ZREM").arg(&keys[2]).arg(&id).clone();
        let _ = tokio::time::timeout(self.timeout, cmd.exec_async(&mut conn)).await;
    }

    /// Claims `name` for `ttl`: `true` for the one replica that claimed
    /// it first. An alert claimed is sent by that replica only.
    pub async fn claim(self: &Arc<Self>, name: &str, ttl: Duration) -> Result<bool, Unavailable> {
        let keys = [format!("{}alert:{{{name}}}:claim", self.prefix)];
        let claimed: i64 = self
            .run(
                Gate::IfUp,
                &self.claim,
                &keys,
                &[ms(ttl).max(1).to_string()],
            )
            .await?;
        Ok(claimed == 1)
    }

    /// Adds `n` attempts to `name`'s shared count, and claims its summary
    /// for `ttl`: `true` for the one replica that sends it.
    pub async fn add_and_claim(
        self: &Arc<Self>,
        name: &str,
        n: u64,
        ttl: Duration,
    ) -> Result<bool, Unavailable> {
        let base = format!("{}alert:{{{name}}}", self.prefix);
        let keys = [format!("{base}:count"), format!("{base}:summary")];
        let claimed: i64 = self
            .run(
                Gate::IfUp,
                &self.add_claim,
                &keys,
                &[n.to_string(), ms(ttl).max(1).to_string()],
            )
            .await?;
        Ok(claimed == 1)
    }

    /// Adds a replica's digest counts for `period` (HINCRBY per field),
    /// kept for `ttl`.
    pub async fn digest_add(
        self: &Arc<Self>,
        period: &str,
        counts: &[(&'static str, String, u64)],
        ttl: Duration,
    ) -> Result<(), Unavailable> {
        if !self.is_up() {
            return Err(Unavailable);
        }
        let mut pipe = redis::pipe();
        let mut hashes: Vec<String> = Vec::new();
        for (hash, field, n) in counts {
            let key = format!("{}digest:{{{period}}}:{hash}", self.prefix);
            pipe.hincr(&key, field, *n).ignore();
            if !hashes.contains(&key) {
                hashes.push(key);
            }
        }
        for key in &hashes {
            pipe.pexpire(key, i64::try_from(ms(ttl)).unwrap_or(i64::MAX))
                .ignore();
        }
        let Some(mut conn) = self.local() else {
            return Err(Unavailable);
        };
        match tokio::time::timeout(self.timeout, pipe.exec_async(&mut conn)).await {
            Ok(Ok(())) => Ok(()),
            _ => {
                self.forget_local();
                Err(Unavailable)
            }
        }
    }

    /// The fleet's digest counts for `period`: hash -> field -> count.
    pub async fn digest_read(
        self: &Arc<Self>,
        period: &str,
    ) -> Result<
        std::collections::HashMap<String, std::collections::HashMap<String, u64>>,
        Unavailable,
    > {
        const HASHES: [&str; 5] = ["totals", "subnet", "country", "asn", "address"];
        let mut pipe = redis::pipe();
        for h in HASHES {
            pipe.hgetall(format!("{}digest:{{{period}}}:{h}", self.prefix));
        }
        let Some(mut conn) = self.local() else {
            return Err(Unavailable);
        };
        let got: Vec<std::collections::HashMap<String, u64>> =
            match tokio::time::timeout(self.timeout, pipe.query_async(&mut conn)).await {
                Ok(Ok(v)) => v,
                _ => {
                    self.forget_local();
                    return Err(Unavailable);
                }
            };
        Ok(HASHES.iter().map(|h| (*h).to_string()).zip(got).collect())
    }

    /// Takes `name`'s shared count (every replica's attempts added since
    /// the last summary).
    pub async fn take_count(self: &Arc<Self>, name: &str) -> Result<u64, Unavailable> {
        let keys = [format!("{}alert:{{{name}}}:count", self.prefix)];
        let n: i64 = self.run(Gate::IfUp, &self.take, &keys, &[]).await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }
}

/// Pings a store that is down (or not yet known) until it answers, with
/// backoff; ends when the store is gone (shutdown).
async fn probe(store: std::sync::Weak<Store>, first_wait: Duration) {
    let mut wait = first_wait;
    loop {
        tokio::time::sleep(wait).await;
        let Some(s) = store.upgrade() else {
            return;
        };
        let mut conn = s.conn.clone();
        let ping = redis::cmd("PING").clone();
        let answered = matches!(
            tokio::time::timeout(PROBE_TIMEOUT, ping.query_async::<String>(&mut conn)).await,
            Ok(Ok(_))
        );
        if answered {
            let before = s.health.swap(UP, Ordering::AcqRel);
            (s.on_change)(Health::Up {
                again: before == DOWN,
            });
            return;
        }
        if s.health.swap(DOWN, Ordering::AcqRel) == UNKNOWN {
            (s.on_change)(Health::Down {
                error: "no answer at startup",
            });
        }
        wait = (wait * 2).clamp(PROBE_MIN, PROBE_MAX);
    }
}

/// A sign-in's place in Redis; freed (in the background) if dropped
/// without an outcome.
pub struct Reservation {
    store: Option<Arc<Store>>,
    keys: [String; 3],
    id: String,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if let Some(store) = self.store.take() {
            let (keys, id) = (std::mem::take(&mut self.keys), std::mem::take(&mut self.id));
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(store.release(keys, id));
            }
        }
    }
}

/// `text` with Redis's glob characters escaped, for a SCAN pattern.
fn glob_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, ms)
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// A member for the sets: unique across replicas and requests.
fn reservation_id() -> String {
    let mut b = [0u8; 12];
    // A failed fill leaves zeros; the time and counter below keep it unique
    // within this process.
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b);
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut out = String::with_capacity(40);
    for byte in b {
        out.push_str(&format!("{byte:02x}"));
    }
    out.push_str(&format!("-{n:x}"));
    out
}
