//! Password guessing from an allowed network: failed sign-ins counted per
//! key (the client address, the account with the client's network, or the
//! account alone), and a key that fails `after` times within `within` is
//! locked out, for longer on every repeat (docs/lockout.md).
//!
//! The state lives in this process ([`memory`]) or, with
//! `state: { store: redis }`, in Redis shared by every replica ([`redis`]),
//! with this process's memory as the fallback while Redis cannot be
//! reached. [`Lockout`] chooses; the request path sees only it.

pub mod memory;
pub mod redis;

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::engine::client::AddrKey;
pub use crate::policy::lockout::{KeyKind, Settings, defaults};
use crate::policy::state::OnStoreError;

/// What a failure did to its key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// Counted: `failures` within the window so far.
    Counted { failures: u32 },
    /// This failure locked the key, for `lock` (the `strike`th lock).
    Locked { lock: Duration, strike: u32 },
}

/// The part of an account hash a key keeps: 128 bits leave no collision to
/// fear among any number of accounts a console has.
pub type AccountId = [u8; 16];

/// What failures count against.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Key {
    /// The client address, IPv6 by its /64.
    Address(AddrKey),
    /// An account from the client's /24 (IPv4) or /64 (IPv6).
    AccountAndNetwork(AccountId, AddrKey),
    /// An account, from anywhere.
    Account(AccountId),
    /// A sign-in without an account under `account_and_network`: the
    /// client's /24 (IPv4) or /64 (IPv6), so that leaving the account out
    /// from many addresses of one network does not give each its own
    /// budget. Locked too while any account is locked in that network.
    Network(AddrKey),
    /// A sign-in without an account under `account`: one key for every
    /// network, as the account keys are (issue 22). Locked too while any
    /// account is locked.
    Unread,
}

impl Key {
    pub fn address(ip: IpAddr) -> Self {
        Key::Address(network_of(ip, 32))
    }

    /// The key of a sign-in by `kind`. With no account read: the client
    /// address with `address`, the client's network (/24, /64) with the
    /// kinds by account, so that leaving the account out or making it
    /// unreadable does not escape the count, not even from many addresses
    /// (second red-team review of accounts).
    pub fn of(kind: KeyKind, client: IpAddr, account: Option<AccountId>) -> Self {
        match (kind, account) {
            (KeyKind::AccountAndNetwork, Some(a)) => {
                Key::AccountAndNetwork(a, network_of(client, 24))
            }
            (KeyKind::Account, Some(a)) => Key::Account(a),
            (KeyKind::Address, _) => Key::address(client),
            (KeyKind::AccountAndNetwork, None) => Key::Network(network_of(client, 24)),
            (KeyKind::Account, None) => Key::Unread,
        }
    }

    /// The key of the sign-ins without an account that a lock on this
    /// account key also holds: while an account is locked, making its name
    /// unreadable (padding past `max_body`, a decoy field) must not open
    /// another way to guess it (issue 22). `None` for keys of no account.
    pub fn unread_scope(&self) -> Option<Key> {
        match *self {
            Key::AccountAndNetwork(_, n) => Some(Key::Network(n)),
            Key::Account(_) => Some(Key::Unread),
            _ => None,
        }
    }

    /// Whether this is the key of sign-ins whose account was not read
    /// under a key by account: their success resets nothing, since nobody
    /// knows whose it was (issue 22).
    pub fn is_unread(&self) -> bool {
        matches!(self, Key::Network(_) | Key::Unread)
    }
}

impl Key {
    /// The network of an account-and-network key (`192.0.2.0/24`).
    pub fn network(&self) -> Option<String> {
        match self {
            Key::AccountAndNetwork(_, a) => Some(match *a {
                AddrKey::V4(v) => format!("{}/24", std::net::Ipv4Addr::from(v)),
                AddrKey::V6(v) => format!("{}/64", std::net::Ipv6Addr::from(u128::from(v) << 64)),
            }),
            _ => None,
        }
    }

    /// Whether the key is an account's.
    pub fn is_account(&self) -> bool {
        matches!(self, Key::AccountAndNetwork(..) | Key::Account(_))
    }
}

impl Key {
    /// The key a Redis key name holds (the inverse of `Display`): for
    /// listing and releasing the locks every replica shares.
    pub fn from_text(text: &str) -> Option<Key> {
        fn net(t: &str) -> Option<(AddrKey, u8)> {
            let (addr, bits) = t.rsplit_once('/')?;
            let bits: u8 = bits.parse().ok()?;
            Some(match addr.parse::<IpAddr>().ok()? {
                IpAddr::V4(v4) => (AddrKey::V4(u32::from(v4)), bits),
                IpAddr::V6(v6) => (AddrKey::V6((u128::from(v6) >> 64) as u64), bits),
            })
        }
        fn id(hex: &str) -> Option<AccountId> {
            if hex.len() != 32 {
                return None;
            }
            let mut id = [0u8; 16];
            for (i, b) in id.iter_mut().enumerate() {
                *b = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
            }
            Some(id)
        }
        let (kind, rest) = text.split_once(':')?;
        match kind {
            "a" if rest == "any" => Some(Key::Unread),
            "a" => match net(rest)? {
                (a @ AddrKey::V4(_), 32) => Some(Key::Address(a)),
                (a @ AddrKey::V4(_), 24) => Some(Key::Network(a)),
                (a @ AddrKey::V6(_), 64) => Some(Key::Address(a)),
                _ => None,
            },
            "n" => {
                let (hex, n) = rest.split_once(':')?;
                Some(Key::AccountAndNetwork(id(hex)?, net(n)?.0))
            }
            "u" => Some(Key::Account(id(rest)?)),
            _ => None,
        }
    }

    /// What an operator sees of a key: its kind, its address or network,
    /// and its account's hash as the logs show it (12 hex digits).
    pub fn view(&self) -> (&'static str, Option<String>, Option<String>) {
        let text = self.to_string();
        let scope = |t: &str| t.rsplit(':').next().map(str::to_string);
        match self {
            Key::Address(_) => ("address", scope(&text), None),
            Key::Network(_) => ("unnamed_from_network", scope(&text), None),
            Key::Unread => ("unnamed", None, None),
            Key::AccountAndNetwork(id, _) => (
                "account_and_network",
                text.splitn(3, ':').nth(2).map(str::to_string),
                Some(account_tag(id)),
            ),
            Key::Account(id) => ("account", None, Some(account_tag(id))),
        }
    }
}

/// Which locks an operator releases (`POST /lockouts/release`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Release {
    /// An account, by its id (the name is hashed on arrival, never kept).
    Account(AccountId),
    /// An account by the hash the logs show: 12 to 32 hex digits.
    AccountHash(String),
    /// A client address: its address key and the holds on its network.
    Address(IpAddr),
    /// Every key whose address or network lies in this range.
    Network(ipnet::IpNet),
}

impl Release {
    /// What the audit line says of the selector (never an account name).
    pub fn kind(&self) -> &'static str {
        match self {
            Release::Account(_) => "account",
            Release::AccountHash(_) => "account_hash",
            Release::Address(_) => "address",
            Release::Network(_) => "network",
        }
    }

    /// What the audit line and the alert say it named: the account's hash
    /// as the logs show it (never its name), the hash given, the address
    /// or the network.
    pub fn target(&self) -> String {
        match self {
            Release::Account(id) => account_tag(id),
            Release::AccountHash(h) => h.clone(),
            Release::Address(ip) => ip.to_string(),
            Release::Network(net) => net.to_string(),
        }
    }

    /// Whether `key` is one this release lifts.
    pub fn picks(&self, key: &Key) -> bool {
        let account = match key {
            Key::AccountAndNetwork(id, _) | Key::Account(id) => Some(id),
            _ => None,
        };
        let addr = |a: &AddrKey| -> IpAddr {
            match *a {
                AddrKey::V4(v) => std::net::Ipv4Addr::from(v).into(),
                AddrKey::V6(v) => std::net::Ipv6Addr::from(u128::from(v) << 64).into(),
            }
        };
        match self {
            Release::Account(id) => account == Some(id),
            Release::AccountHash(prefix) => account.is_some_and(|id| {
                id.iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<String>()
                    .starts_with(prefix.as_str())
            }),
            // The address's own key. The hold on its network's unnamed
            // sign-ins goes with the last account lock there, never with
            // an address's release (red-team review of issue 24: releasing
            // any address of the network handed out `after` more unnamed
            // guesses at a locked account).
            Release::Address(ip) => *key == Key::address(*ip),
            Release::Network(net) => match key {
                Key::Address(a) | Key::Network(a) | Key::AccountAndNetwork(_, a) => {
                    net.contains(&addr(a))
                }
                _ => false,
            },
        }
    }
}

/// An IPv4 address cut to `v4_bits`, or an IPv6 address's /64.
fn network_of(ip: IpAddr, v4_bits: u32) -> AddrKey {
    match crate::engine::client::canonical(ip) {
        IpAddr::V4(v4) => AddrKey::V4(u32::from(v4) & (u32::MAX << (32 - v4_bits.min(32)))),
        IpAddr::V6(v6) => AddrKey::V6((u128::from(v6) >> 64) as u64),
    }
}

/// The text a key has in Redis (and nowhere else): no account name, only
/// its keyed hash.
impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn net(f: &mut fmt::Formatter<'_>, a: &AddrKey, v4_bits: u8) -> fmt::Result {
            match *a {
                AddrKey::V4(v) => write!(f, "{}/{v4_bits}", std::net::Ipv4Addr::from(v)),
                AddrKey::V6(v) => {
                    write!(f, "{}/64", std::net::Ipv6Addr::from(u128::from(v) << 64))
                }
            }
        }
        fn hex(f: &mut fmt::Formatter<'_>, id: &AccountId) -> fmt::Result {
            id.iter().try_for_each(|b| write!(f, "{b:02x}"))
        }
        match self {
            Key::Address(a) => {
                f.write_str("a:")?;
                net(f, a, 32)
            }
            Key::AccountAndNetwork(id, a) => {
                f.write_str("n:")?;
                hex(f, id)?;
                f.write_str(":")?;
                net(f, a, 24)
            }
            Key::Account(id) => {
                f.write_str("u:")?;
                hex(f, id)
            }
            Key::Network(a) => {
                f.write_str("a:")?;
                net(f, a, 24)
            }
            Key::Unread => f.write_str("a:any"),
        }
    }
}

/// Account names become keyed hashes (HMAC-SHA256) after case folding; the
/// names themselves are never kept.
pub struct Accounts {
    key: ring::hmac::Key,
    /// Where the key came from, for the startup line.
    pub source: AccountKeySource,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AccountKeySource {
    /// The environment variable `lockout.account_key_env` names.
    Env(String),
    /// Made at startup: hashes differ from one process to the next.
    Random,
}

/// Key bytes an operator must give at least.
pub const MIN_ACCOUNT_KEY_BYTES: usize = 16;

impl Accounts {
    /// The key from `value` (an environment variable's), or a random one.
    pub fn new(env: Option<(&str, Option<&str>)>) -> Result<Self, String> {
        match env {
            Some((name, Some(v))) => {
                if v.len() < MIN_ACCOUNT_KEY_BYTES {
                    return Err(format!(
                        "{name} holds {} bytes; the account hash key needs at least {MIN_ACCOUNT_KEY_BYTES} (for example: openssl rand -hex 32)",
                        v.len()
                    ));
                }
                Ok(Self {
                    key: ring::hmac::Key::new(ring::hmac::HMAC_SHA256, v.as_bytes()),
                    source: AccountKeySource::Env(name.to_string()),
                })
            }
            _ => {
                let mut bytes = [0u8; 32];
                ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
                    .map_err(|_| {
                        "the system gave no random bytes for the account hash key".to_string()
                    })?;
                Ok(Self {
                    key: ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &bytes),
                    source: AccountKeySource::Random,
                })
            }
        }
    }

    /// The id of an account name (folded first: `Alice` is `alice`).
    pub fn id(&self, account: &str) -> AccountId {
        let folded = crate::engine::account::fold(account);
        let tag = ring::hmac::sign(&self.key, folded.as_bytes());
        let mut id = [0u8; 16];
        id.copy_from_slice(&tag.as_ref()[..16]);
        id
    }
}

/// What the log shows of an account: the first six bytes of its id, enough
/// to tell one account's failures from another's, useless without the key.
pub fn account_tag(id: &AccountId) -> String {
    id[..6].iter().map(|b| format!("{b:02x}")).collect()
}

/// Where a sign-in's place comes from, and where its outcome goes.
pub enum Reservation<'a> {
    Memory(memory::Pending<'a>),
    Redis(redis::Reservation),
    /// `on_store_error: allow` while Redis is down: forwarded, not counted.
    Uncounted,
}

/// Why a sign-in may not go to the console.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Locked out, or `after` failures and pending sign-ins already: for
    /// this long.
    Wait(Duration),
    /// `on_store_error: deny_login` while Redis cannot be reached.
    StoreUnavailable,
}

/// The lockout state, wherever it lives; kept across policy reloads.
pub struct Lockout {
    pub memory: memory::Table,
    pub redis: Option<Arc<redis::Store>>,
    pub accounts: Accounts,
}

impl Lockout {
    pub fn new(redis: Option<Arc<redis::Store>>, accounts: Accounts) -> Self {
        Self {
            memory: memory::Table::default(),
            redis,
            accounts,
        }
    }

    /// A sign-in for `key` may go to the console (its place is held until
    /// its outcome is recorded or the reservation dropped), or not.
    pub async fn begin(&self, key: Key, s: &Settings) -> Result<Reservation<'_>, Refusal> {
        if let Some(store) = &self.redis {
            // A lock made in memory while Redis was down holds until it
            // ends, Redis back or not: an outage (even one an attacker
            // causes by overloading Redis) does not lift a lock in force
            // (second red-team review of accounts).
            if let Some(wait) = self.memory.locked(key, self.memory.now()) {
                return Err(Refusal::Wait(wait));
            }
            match store.begin(key, s).await {
                Ok(Ok(r)) => return Ok(Reservation::Redis(r)),
                Ok(Err(wait)) => return Err(Refusal::Wait(wait)),
                Err(redis::Unavailable) => match store.on_error {
                    OnStoreError::Memory => {}
                    OnStoreError::DenyLogin => return Err(Refusal::StoreUnavailable),
                    OnStoreError::Allow => return Ok(Reservation::Uncounted),
                },
            }
        }
        self.memory
            .begin(key, self.memory.now(), s)
            .map(Reservation::Memory)
            .map_err(Refusal::Wait)
    }
}

/// A lock as an operator sees it (`GET /lockouts`, `netwarden status`).
#[derive(Clone, Debug, serde::Serialize)]
pub struct LockView {
    /// `address`, `account_and_network`, `account`, `unnamed_from_network`
    /// or `unnamed` (sign-ins that did not name their account).
    pub key: &'static str,
    /// The client address or network the key holds, if any.
    pub scope: Option<String>,
    /// The account's hash as the logs and alerts show it (12 hex digits).
    pub account: Option<String>,
    /// When the lock ends (RFC 3339, UTC).
    pub until: String,
    /// Locks of this key so far (each lasts twice the one before).
    pub strikes: u32,
    /// `memory` (this replica) or `redis` (every replica).
    pub store: &'static str,
}

impl LockView {
    fn new(key: Key, until: std::time::SystemTime, strikes: u32, store: &'static str) -> Self {
        let (kind, scope, account) = key.view();
        LockView {
            key: kind,
            scope,
            account,
            until: crate::telemetry::json::rfc3339(until),
            strikes,
            store,
        }
    }
}

impl Lockout {
    /// Every lock in force: this replica's memory, and with Redis, every
    /// replica's (an error when Redis cannot be asked: the list would be
    /// incomplete).
    pub async fn locks(&self) -> Result<Vec<LockView>, redis::Unavailable> {
        let now = self.memory.now();
        let wall = std::time::SystemTime::now();
        let mut out: Vec<LockView> = self
            .memory
            .locks(now)
            .into_iter()
            .map(|(k, left, strikes)| LockView::new(k, wall + left, strikes, "memory"))
            .collect();
        if let Some(store) = &self.redis {
            for (k, until_ms, strikes) in store.locks().await? {
                let until = std::time::UNIX_EPOCH + Duration::from_millis(until_ms);
                out.push(LockView::new(k, until, strikes, "redis"));
            }
        }
        Ok(out)
    }

    /// Lifts the locks `which` picks, in memory and in Redis; how many were
    /// in force. A released account's hold on its network's unnamed
    /// sign-ins goes too once no other account is locked there.
    pub async fn release(&self, which: &Release) -> Result<usize, redis::Unavailable> {
        let released = self.lift(|k| which.picks(k)).await?;
        let holds: Vec<Key> = released.iter().filter_map(Key::unread_scope).collect();
        if !holds.is_empty() {
            let still = self.locked_keys().await?;
            let orphan = |h: &Key| {
                holds.contains(h) && !still.iter().any(|k| k.unread_scope().as_ref() == Some(h))
            };
            self.lift(orphan).await?;
        }
        Ok(released.len())
    }

    /// Lifts the locks `which` picks; the keys that were locked.
    async fn lift(&self, which: impl Fn(&Key) -> bool) -> Result<Vec<Key>, redis::Unavailable> {
        let mut released = self.memory.release(&which, self.memory.now());
        if let Some(store) = &self.redis {
            let keys: Vec<Key> = store
                .locks()
                .await?
                .into_iter()
                .map(|(k, _, _)| k)
                .filter(|k| which(k))
                .collect();
            store.release_locks(&keys).await?;
            released.extend(keys);
        }
        Ok(released)
    }

    /// Every key locked now, in memory and in Redis.
    async fn locked_keys(&self) -> Result<Vec<Key>, redis::Unavailable> {
        let mut keys: Vec<Key> = self
            .memory
            .locks(self.memory.now())
            .into_iter()
            .map(|(k, _, _)| k)
            .collect();
        if let Some(store) = &self.redis {
            keys.extend(store.locks().await?.into_iter().map(|(k, _, _)| k));
        }
        Ok(keys)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_group_as_the_kind_says() {
        let a: IpAddr = "192.0.2.7".parse().expect("ip");
        let b: IpAddr = "192.0.2.200".parse().expect("ip");
        let c: IpAddr = "198.51.100.7".parse().expect("ip");
        let id = [7u8; 16];
        let k = |kind, ip, acc| Key::of(kind, ip, acc);
        assert_ne!(
            k(KeyKind::Address, a, Some(id)),
            k(KeyKind::Address, b, Some(id))
        );
        assert_eq!(
            k(KeyKind::AccountAndNetwork, a, Some(id)),
            k(KeyKind::AccountAndNetwork, b, Some(id)),
            "one /24"
        );
        assert_ne!(
            k(KeyKind::AccountAndNetwork, a, Some(id)),
            k(KeyKind::AccountAndNetwork, c, Some(id))
        );
        assert_eq!(
            k(KeyKind::Account, a, Some(id)),
            k(KeyKind::Account, c, Some(id))
        );
        // No account: the address with `address`, the network otherwise.
        assert_eq!(k(KeyKind::Address, a, None), Key::address(a));
        assert_eq!(
            k(KeyKind::AccountAndNetwork, a, None),
            k(KeyKind::AccountAndNetwork, b, None)
        );
        assert_eq!(
            k(KeyKind::AccountAndNetwork, a, None).to_string(),
            "a:192.0.2.0/24"
        );
        assert_ne!(
            k(KeyKind::AccountAndNetwork, a, None),
            k(KeyKind::AccountAndNetwork, c, None)
        );
        // `account` counts the unread from anywhere as one, as it counts an
        // account from anywhere (issue 22).
        assert_eq!(k(KeyKind::Account, a, None), k(KeyKind::Account, c, None));
        assert_eq!(k(KeyKind::Account, a, None).to_string(), "a:any");
        // A lock on an account key also holds its unread sign-ins.
        assert_eq!(
            k(KeyKind::AccountAndNetwork, b, Some(id)).unread_scope(),
            Some(k(KeyKind::AccountAndNetwork, a, None))
        );
        assert_eq!(
            k(KeyKind::Account, a, Some(id)).unread_scope(),
            Some(Key::Unread)
        );
        assert_eq!(Key::address(a).unread_scope(), None);
        assert!(k(KeyKind::Account, a, None).is_unread());
        assert!(!k(KeyKind::Address, a, None).is_unread());
        let v6: IpAddr = "2001:db8:1:2::9".parse().expect("ip");
        assert_eq!(
            k(KeyKind::AccountAndNetwork, v6, Some(id)).to_string(),
            "n:07070707070707070707070707070707:2001:db8:1:2::/64"
        );
        assert_eq!(
            k(KeyKind::AccountAndNetwork, a, Some(id)).to_string(),
            "n:07070707070707070707070707070707:192.0.2.0/24"
        );
        assert_eq!(Key::address(a).to_string(), "a:192.0.2.7/32");
    }

    #[test]
    fn keys_read_back_from_their_text_and_releases_pick_what_they_say() {
        let a: IpAddr = "192.0.2.7".parse().expect("ip");
        let v6: IpAddr = "2001:db8:1:2::9".parse().expect("ip");
        let id = [7u8; 16];
        for key in [
            Key::address(a),
            Key::of(KeyKind::AccountAndNetwork, a, Some(id)),
            Key::of(KeyKind::AccountAndNetwork, v6, Some(id)),
            Key::of(KeyKind::Account, a, Some(id)),
            Key::of(KeyKind::AccountAndNetwork, a, None),
            Key::Unread,
        ] {
            assert_eq!(Key::from_text(&key.to_string()), Some(key), "{key}");
        }
        assert_eq!(Key::from_text("x:1"), None);
        assert_eq!(Key::from_text("u:07"), None);
        let alice = Key::of(KeyKind::AccountAndNetwork, a, Some(id));
        assert!(Release::Account(id).picks(&alice));
        assert!(!Release::Account([8; 16]).picks(&alice));
        assert!(Release::AccountHash("070707070707".into()).picks(&alice));
        assert!(!Release::AccountHash("080707070707".into()).picks(&alice));
        assert!(Release::Network("192.0.2.0/24".parse().expect("net")).picks(&alice));
        assert!(!Release::Network("198.51.100.0/24".parse().expect("net")).picks(&alice));
        assert!(Release::Address(a).picks(&Key::address(a)));
        assert!(
            !Release::Address(a).picks(&Key::of(KeyKind::AccountAndNetwork, a, None)),
            "the network's hold goes with its last account lock only"
        );
        assert!(
            !Release::Address(a).picks(&alice),
            "an account is released by its name"
        );
        let (kind, scope, account) = alice.view();
        assert_eq!(
            (kind, scope.as_deref(), account.as_deref()),
            (
                "account_and_network",
                Some("192.0.2.0/24"),
                Some("070707070707")
            )
        );
    }

    #[test]
    fn account_ids_fold_case_and_depend_on_the_key() {
        let one = Accounts::new(Some(("K", Some("0123456789abcdef0123")))).expect("key");
        let two = Accounts::new(Some(("K", Some("another key of 16+ bytes")))).expect("key");
        assert_eq!(one.id("Alice"), one.id(" alice"));
        assert_ne!(one.id("alice"), one.id("bob"));
        assert_ne!(one.id("alice"), two.id("alice"));
        assert!(Accounts::new(Some(("K", Some("short")))).is_err());
        let random = Accounts::new(Some(("K", None))).expect("random");
        assert_eq!(random.source, AccountKeySource::Random);
        assert_eq!(account_tag(&[0xab; 16]), "abababababab");
    }
}
