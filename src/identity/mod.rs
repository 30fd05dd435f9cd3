//! Who the client is, from the auth layer in front (issue 26,
//! `identity:`): a signed token (Cloudflare Access, Google IAP, AWS ALB, any
//! OIDC provider) checked against keys fetched from the provider, or the
//! headers a trusted auth proxy sets (oauth2-proxy, Authelia). The checks
//! themselves are pure ([`jwt`], [`keys`]); this file holds the key cache
//! and its fetching, and reads a request's headers.
//!
//! Keys are fetched when first needed (and at startup), again every
//! `refresh` in the background, and again when a token names a `kid` the
//! keys lack, at most once per `refetch_interval`: random `kid`s cannot
//! make netwarden hammer the key URL. A fetch that fails keeps the last
//! good keys; with none, every token is refused (`no_keys`): fail closed.

pub mod jwt;
pub mod keys;
mod ring;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::{ArcSwap, ArcSwapOption};
use http::HeaderMap;

use crate::engine::who::{Identity, Invalid, fold_email};
use crate::policy::identity::{HeaderSettings, IdentitySettings, JwtSettings, Keys, Source};
use keys::KeySet;

/// With no keys at all, a fetch is tried again at most this often (not
/// once per `refetch_interval`: the door stays shut meanwhile).
const EMPTY_RETRY: Duration = Duration::from_secs(10);
/// The longest user, e-mail or groups header believed.
const MAX_HEADER: usize = 4096;
/// AWS ALB: keys are fetched one per `kid`, and no list says which exist,
/// so each `kid` has its own `refetch_interval` (a random `kid` sent every
/// interval cannot keep a rotated key from being fetched: second red-team
/// review); all of them together at most once a second.
const NEW_KID_SPACING: Duration = Duration::from_secs(1);
/// `kid`s whose fetch is remembered.
const MAX_TRIED_KIDS: usize = 256;
/// Tokens verified recently, kept with their identity: a browser sends the
/// same token with every request of a session, and a signature check
/// costs 18-39 µs (docs/benchmarks.md). Bounded, and each entry at most
/// [`CACHE_FOR`] and never past the token's `exp`.
const CACHE_ENTRIES: usize = 4096;
/// A key the provider withdrew stops vouching for cached tokens at once
/// (the cache is emptied when the keys change); this bounds the rest.
const CACHE_FOR: Duration = Duration::from_secs(60);

/// The keys of one identity provider, and when they were fetched.
pub struct KeyStore {
    settings: Arc<JwtSettings>,
    keys: ArcSwap<KeySet>,
    state: Mutex<State>,
    /// One fetch at a time: requests that need one wait for it.
    fetching: tokio::sync::Mutex<()>,
    refreshing: AtomicBool,
    /// Tokens verified: the token itself (compared whole, in a map with
    /// std's keyed hasher) -> the identity, valid until (epoch seconds),
    /// cached at.
    verified: Mutex<std::collections::HashMap<Box<str>, Verified>>,
}

#[derive(Default)]
struct State {
    fetched_at: Option<Instant>,
    attempted_at: Option<Instant>,
    last_error: Option<String>,
    /// AWS ALB: when each `kid` was last fetched.
    tried: std::collections::HashMap<String, Instant>,
}

/// A token verified: its identity, the last second (epoch) it is valid
/// at, when it was verified, and under which settings (held, so that
/// their address is not reused while the entry lives).
type Verified = (Arc<Identity>, i64, Instant, Arc<JwtSettings>);

/// What `status` and `/readyz` say of the keys.
#[derive(Clone, Debug)]
pub struct KeyStatus {
    pub url: String,
    pub keys: usize,
    pub fetched_ago: Option<Duration>,
    pub last_error: Option<String>,
    /// Keys fetched one per `kid` as tokens name them (AWS ALB): none
    /// before the first token is no fault.
    pub per_kid: bool,
}

impl KeyStore {
    fn new(settings: Arc<JwtSettings>) -> Arc<Self> {
        Arc::new(Self {
            settings,
            keys: ArcSwap::from_pointee(KeySet::default()),
            state: Mutex::new(State::default()),
            fetching: tokio::sync::Mutex::new(()),
            refreshing: AtomicBool::new(false),
            verified: Mutex::new(std::collections::HashMap::new()),
        })
    }

    /// Whether this store fetches the keys `s` names, the same way.
    fn serves(&self, s: &JwtSettings) -> bool {
        let m = &self.settings;
        m.keys == s.keys
            && m.ca_file == s.ca_file
            && m.allow_http == s.allow_http
            && m.timeout == s.timeout
            && m.issuer == s.issuer
            && m.refresh == s.refresh
            && m.refetch_interval == s.refetch_interval
    }

    pub fn status(&self) -> KeyStatus {
        let st = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        KeyStatus {
            url: crate::feeds::shown_url(self.settings.keys.url()),
            keys: self.keys.load().keys.len(),
            fetched_ago: st.fetched_at.map(|t| t.elapsed()),
            last_error: st.last_error.clone(),
            per_kid: matches!(self.settings.keys, Keys::PemPerKid(_)),
        }
    }

    fn may_refetch(&self, kid: Option<&str>) -> bool {
        let st = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if matches!(self.settings.keys, Keys::PemPerKid(_)) {
            let spaced = st
                .attempted_at
                .is_none_or(|t| t.elapsed() >= NEW_KID_SPACING);
            let this_kid = kid.is_some_and(|k| {
                st.tried
                    .get(k)
                    .is_none_or(|t| t.elapsed() >= self.settings.refetch_interval)
            });
            return spaced && this_kid;
        }
        let wait = if self.keys.load().keys.is_empty() {
            EMPTY_RETRY.min(self.settings.refetch_interval)
        } else {
            self.settings.refetch_interval
        };
        st.attempted_at.is_none_or(|t| t.elapsed() >= wait)
    }

    fn refresh_due(&self) -> bool {
        if matches!(self.settings.keys, Keys::PemPerKid(_)) {
            return false;
        }
        let st = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        st.fetched_at
            .is_some_and(|t| t.elapsed() >= self.settings.refresh)
            && st.attempted_at.is_none_or(|t| {
                t.elapsed() >= self.settings.refetch_interval.min(self.settings.refresh)
            })
    }

    /// Fetches the keys (for `kid`, by `{url}/{kid}`) unless another
    /// request just did, or `forced` (the scheduled refresh).
    async fn refetch(&self, kid: Option<&str>, forced: bool) {
        let _one = self.fetching.lock().await;
        if !forced && !self.may_refetch(kid) {
            return;
        }
        {
            let mut st = self
                .state
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let now = Instant::now();
            st.attempted_at = Some(now);
            if let (Some(k), Keys::PemPerKid(_)) = (kid, &self.settings.keys) {
                if st.tried.len() >= MAX_TRIED_KIDS {
                    let interval = self.settings.refetch_interval;
                    st.tried.retain(|_, t| t.elapsed() < interval);
                    if st.tried.len() >= MAX_TRIED_KIDS {
                        st.tried.clear();
                    }
                }
                st.tried.insert(k.to_string(), now);
            }
        }
        let result = self.fetch(kid).await;
        let shown = crate::feeds::shown_url(self.settings.keys.url());
        let mut st = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match result {
            Ok(set) => {
                let n = set.keys.len();
                self.keys.store(Arc::new(set));
                // Tokens of a withdrawn key must not live on in the cache.
                self.verified
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .clear();
                st.fetched_at = Some(Instant::now());
                st.last_error = None;
                tracing::info!(
                    event = "identity_keys_fetched",
                    url = %shown,
                    keys = n,
                    "identity provider's keys fetched"
                );
            }
            Err(why) => {
                tracing::warn!(
                    event = "identity_keys_failed",
                    url = %shown,
                    error = %why,
                    keys_kept = self.keys.load().keys.len(),
                    "identity provider's keys could not be fetched; the last good keys are kept"
                );
                st.last_error = Some(why);
            }
        }
    }

    /// The key set after one fetch: the whole set (JWKS, discovery), or
    /// the current set with `kid`'s key added (ALB).
    async fn fetch(&self, kid: Option<&str>) -> Result<KeySet, String> {
        let s = &self.settings;
        let get = |url: &str| get(s, url.to_string());
        match &s.keys {
            Keys::Jwks(url) => KeySet::from_jwks(&get(url).await?),
            Keys::Discovery(url) => {
                let doc: serde_json::Value = serde_json::from_slice(&get(url).await?)
                    .map_err(|e| format!("the discovery document is not JSON: {e}"))?;
                // OpenID Connect Discovery 1.0 §4.3: the document's issuer
                // must be the one asked about.
                if let Some(want) = &s.issuer
                    && doc.get("issuer").and_then(serde_json::Value::as_str) != Some(want.as_str())
                {
                    return Err("the discovery document names another issuer".into());
                }
                let jwks = doc
                    .get("jwks_uri")
                    .and_then(serde_json::Value::as_str)
                    .ok_or("the discovery document has no jwks_uri")?;
                if !(jwks.starts_with("https://") || (s.allow_http && jwks.starts_with("http://")))
                {
                    return Err("the discovery document's jwks_uri is not https".into());
                }
                let authority = jwks.split("://").nth(1).and_then(|r| r.split('/').next());
                if authority.is_some_and(|a| a.contains('@')) {
                    return Err("the discovery document's jwks_uri holds credentials".into());
                }
                KeySet::from_jwks(&get(jwks).await?)
            }
            Keys::PemPerKid(base) => {
                let kid = kid
                    .filter(|k| keys::kid_is_safe(k))
                    .ok_or("no usable kid")?;
                let pem = get(&format!("{}/{kid}", base.trim_end_matches('/'))).await?;
                let mut set = KeySet::clone(&self.keys.load());
                set.add(keys::from_pem(kid, &pem)?);
                Ok(set)
            }
        }
    }

    /// Checks `token` at `now`: its key found (fetched again if its `kid`
    /// is new, as often as allowed), its signature and claims verified.
    ///
    /// `settings` are the policy's in force: a reload that changes how
    /// tokens are checked (audience, algorithms, signer, claims) applies
    /// at once, with the keys kept (third red-team review: the store's
    /// own copy was used until a restart), and tokens verified under other
    /// settings are not taken from the cache.
    pub async fn verify(
        self: &Arc<Self>,
        token: &str,
        settings: &Arc<JwtSettings>,
        now: jiff::Timestamp,
    ) -> Result<Arc<Identity>, Invalid> {
        if let Some(id) = self.cached(token, settings, now.as_second()) {
            return Ok(id);
        }
        let (identity, until) = self.check(token, settings, now).await?;
        let identity = Arc::new(identity);
        self.remember(token, settings, &identity, until, now.as_second());
        Ok(identity)
    }

    fn cached(&self, token: &str, settings: &Arc<JwtSettings>, now: i64) -> Option<Arc<Identity>> {
        let map = self
            .verified
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (id, until, at, by) = map.get(token)?;
        (now <= *until && at.elapsed() < CACHE_FOR && Arc::ptr_eq(by, settings)).then(|| id.clone())
    }

    fn remember(
        &self,
        token: &str,
        settings: &Arc<JwtSettings>,
        id: &Arc<Identity>,
        until: i64,
        now: i64,
    ) {
        let mut map = self
            .verified
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if map.len() >= CACHE_ENTRIES {
            map.retain(|_, (_, u, at, _)| now <= *u && at.elapsed() < CACHE_FOR);
            if map.len() >= CACHE_ENTRIES {
                map.clear();
            }
        }
        map.insert(
            token.into(),
            (id.clone(), until, Instant::now(), settings.clone()),
        );
    }

    async fn check(
        self: &Arc<Self>,
        token: &str,
        s: &JwtSettings,
        now: jiff::Timestamp,
    ) -> Result<(Identity, i64), Invalid> {
        let peeked = jwt::peek(token, s)?;
        let kid = peeked.kid.as_deref();
        if matches!(s.keys, Keys::PemPerKid(_)) && !kid.is_some_and(keys::kid_is_safe) {
            return Err(Invalid::UnknownKey);
        }
        if self.refresh_due() && !self.refreshing.swap(true, Ordering::AcqRel) {
            let me = self.clone();
            tokio::spawn(async move {
                me.refetch(None, true).await;
                me.refreshing.store(false, Ordering::Release);
            });
        }
        for attempt in 0..2 {
            let set = self.keys.load();
            let mut tried = false;
            for key in set.candidates(kid, peeked.alg) {
                match jwt::verify_until(&peeked, key, s, now.as_second()) {
                    Err(Invalid::Signature) => tried = true,
                    other => return other,
                }
            }
            if tried {
                return Err(Invalid::Signature);
            }
            if attempt == 0 {
                // Waits for a fetch under way (the one at startup), and
                // fetches again only if the interval allows.
                drop(set);
                self.refetch(kid, false).await;
                continue;
            }
            return Err(if set.keys.is_empty() {
                Invalid::NoKeys
            } else {
                Invalid::UnknownKey
            });
        }
        Err(Invalid::UnknownKey)
    }
}

/// One GET of a key URL, within the settings' timeout and size cap.
async fn get(s: &JwtSettings, url: String) -> Result<bytes::Bytes, String> {
    let get = crate::feeds::Get {
        url: &url,
        ca_file: s.ca_file.as_deref(),
        timeout: s.timeout,
        max_bytes: crate::policy::identity::defaults::MAX_KEY_BYTES,
        allow_http: s.allow_http,
        what: "identity keys",
    };
    match crate::feeds::fetch_url(&get, None).await {
        Ok(crate::feeds::Fetched::Body { body, .. }) => Ok(body),
        Ok(crate::feeds::Fetched::NotModified) => Err("answered 304".to_string()),
        Err(e) => Err(e.to_string()),
    }
}

/// The key store of the policy in force (one identity provider at a time;
/// a reload that names other keys starts a new store).
#[derive(Default)]
pub struct Registry {
    store: ArcSwapOption<KeyStore>,
}

impl Registry {
    pub fn store_for(&self, s: &Arc<JwtSettings>) -> Arc<KeyStore> {
        if let Some(current) = self.store.load_full()
            && current.serves(s)
        {
            return current;
        }
        let fresh = KeyStore::new(s.clone());
        self.store.store(Some(fresh.clone()));
        fresh
    }

    /// The keys' state, for `status` and `/readyz`.
    pub fn status(&self) -> Option<KeyStatus> {
        self.store.load().as_ref().map(|s| s.status())
    }

    /// Fetches the keys now (at startup and after a reload), so that the
    /// first sign-in does not wait for them.
    pub async fn prime(&self, settings: &IdentitySettings) {
        if let Source::Jwt(j) = &settings.source
            && !matches!(j.keys, Keys::PemPerKid(_))
        {
            let store = self.store_for(j);
            if store.keys.load().keys.is_empty() {
                store.refetch(None, false).await;
            }
        }
    }
}

/// Who the request's client is: `Ok(None)` when it presents no identity
/// (or, with `headers`, does not come from a trusted proxy: its headers
/// are not believed, and are removed before the console sees them).
pub async fn resolve(
    registry: &Registry,
    settings: &IdentitySettings,
    headers: &HeaderMap,
    peer_trusted: bool,
    now: jiff::Timestamp,
) -> Result<Option<Arc<Identity>>, Invalid> {
    match &settings.source {
        Source::Jwt(j) => {
            let mut lines = headers.get_all(&j.header).iter();
            let (Some(first), None) = (lines.next(), lines.next()) else {
                return match headers.get_all(&j.header).iter().count() {
                    0 => Ok(None),
                    _ => Err(Invalid::Ambiguous),
                };
            };
            let token = jwt::token(first.as_bytes(), j.bearer)?;
            if token.is_empty() {
                return Ok(None);
            }
            registry.store_for(j).verify(token, j, now).await.map(Some)
        }
        Source::Headers(h) if peer_trusted => from_headers(h, headers).map(|i| i.map(Arc::new)),
        Source::Headers(_) => Ok(None),
    }
}

/// A trusted auth proxy's headers: one line each, printable, bounded.
pub fn from_headers(h: &HeaderSettings, headers: &HeaderMap) -> Result<Option<Identity>, Invalid> {
    let one = |name: &http::HeaderName| -> Result<Option<&str>, Invalid> {
        let mut it = headers.get_all(name).iter();
        match (it.next(), it.next()) {
            (None, _) => Ok(None),
            (Some(_), Some(_)) => Err(Invalid::Ambiguous),
            (Some(v), None) => {
                let s = v.to_str().map_err(|_| Invalid::Malformed)?.trim();
                if s.len() > MAX_HEADER {
                    return Err(Invalid::Oversized);
                }
                Ok((!s.is_empty()).then_some(s))
            }
        }
    };
    let Some(user) = one(&h.user)? else {
        return Ok(None);
    };
    // One value each: a comma or semicolon is two values merged (RFC 9110
    // §5.3: a proxy may join a client's header line with its own), and
    // which the console reads is anyone's guess (second red-team review).
    let single = |v: &str| -> Result<(), Invalid> {
        if v.contains([',', ';']) {
            Err(Invalid::Ambiguous)
        } else {
            Ok(())
        }
    };
    single(user)?;
    let email = match &h.email {
        Some(n) => match one(n)? {
            Some(e) => {
                single(e)?;
                if !crate::engine::who::is_address(e) {
                    return Err(Invalid::Malformed);
                }
                Some(fold_email(e))
            }
            None => None,
        },
        None => None,
    };
    let groups = match &h.groups {
        Some(n) => one(n)?
            .map(|g| {
                g.split(',')
                    .map(str::trim)
                    .filter(|g| !g.is_empty())
                    .take(256)
                    .map(Into::into)
                    .collect()
            })
            .unwrap_or_default(),
        None => Vec::new(),
    };
    Ok(Some(Identity {
        subject: user.into(),
        email,
        groups,
        claims: Vec::new(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_merged_or_decorated_header_identity_is_not_believed() {
        let h = oauth2_proxy();
        let with = |email: &str| {
            let mut m = HeaderMap::new();
            m.insert("x-auth-request-user", "kato".parse().expect("v"));
            m.insert("x-auth-request-email", email.parse().expect("v"));
            from_headers(&h, &m)
        };
        assert_eq!(
            with("kato@example.jp, kato@contractor.example"),
            Err(Invalid::Ambiguous)
        );
        assert_eq!(
            with("kato@contractor.example;x@example.jp"),
            Err(Invalid::Ambiguous)
        );
        assert_eq!(with("Kato <kato@example.jp>"), Err(Invalid::Malformed));
        assert_eq!(with("kato@a@b"), Err(Invalid::Malformed));
        assert!(with("kato@example.jp").is_ok_and(|i| i.is_some()));
    }

    fn oauth2_proxy() -> HeaderSettings {
        HeaderSettings {
            user: http::HeaderName::from_static("x-auth-request-user"),
            email: Some(http::HeaderName::from_static("x-auth-request-email")),
            groups: Some(http::HeaderName::from_static("x-auth-request-groups")),
        }
    }

    #[test]
    fn header_identities_are_read_once_each() {
        let mut h = HeaderMap::new();
        assert_eq!(from_headers(&oauth2_proxy(), &h), Ok(None));
        h.insert("x-auth-request-user", "yamada".parse().expect("v"));
        h.insert(
            "x-auth-request-email",
            "Yamada@Example.JP".parse().expect("v"),
        );
        h.insert("x-auth-request-groups", "admins, ops,,".parse().expect("v"));
        let id = from_headers(&oauth2_proxy(), &h)
            .expect("ok")
            .expect("some");
        assert_eq!(id.email.as_deref(), Some("yamada@example.jp"));
        assert_eq!(id.groups, vec![Box::<str>::from("admins"), "ops".into()]);
        h.append("x-auth-request-user", "root".parse().expect("v"));
        assert_eq!(from_headers(&oauth2_proxy(), &h), Err(Invalid::Ambiguous));
    }
}
