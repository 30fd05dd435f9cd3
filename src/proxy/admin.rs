//! The admin listener: `/healthz` (the process is alive), `/readyz` (a
//! policy is loaded and every listener is up; false again while draining),
//! `GET /policy` (what is running, and how the last reload went), `POST
//! /reload`. Plain HTTP/1.1, meant for loopback or the Pod network only.
//!
//! With `server.admin_auth`, the controls (`/reload`, `/policy`, and
//! `/metrics` when asked) need `Authorization: Bearer <token>` (RFC 6750
//! §2.1); the probes never do, so a kubelet needs no secret.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::reload::{Outcome, Reloader};

/// Shared readiness: set once listeners are up, cleared on shutdown.
#[derive(Default)]
pub struct Health {
    pub ready: AtomicBool,
}

/// Admin connections at once: probes and a scraper need a handful; the
/// bound keeps a flood on the Pod network from taking file descriptors
/// the proxy needs.
const MAX_ADMIN_CONNECTIONS: usize = 64;

/// Admin connections one address may hold: the kubelet (the node's
/// address) and Prometheus need one or two each, so one address flooding
/// the port cannot take every slot and fail the probes.
const MAX_ADMIN_CONNECTIONS_PER_ADDRESS: usize = 8;

/// An admin connection closes after this, busy or not: probes and scrapes
/// reconnect, and a connection kept open holds no slot for long.
const ADMIN_CONNECTION_LIFETIME: Duration = Duration::from_secs(30);

/// Tokens shorter than this are refused at startup: a guessable token on a
/// listener that reloads the policy is no protection.
pub const MIN_TOKEN_BYTES: usize = 16;

/// The admin token, kept only as its SHA-256: the comparison then takes
/// the same time whatever the candidate, and no copy of the secret sits in
/// memory dumps of the policy.
pub struct Token {
    digest: [u8; 32],
    /// `/metrics` needs the token too.
    metrics: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error(
        "server.admin_auth.token_env names {0}, which is not set or empty: set it to a random token (for example `openssl rand -hex 32`), or remove admin_auth"
    )]
    Missing(String),
    #[error(
        "the admin token in {0} has characters an Authorization header cannot carry (spaces, control characters, non-ASCII): use letters, digits and -._~+/= (for example `openssl rand -hex 32`)"
    )]
    Unusable(String),
    #[error(
        "the admin token in {name} is {len} bytes: use at least {MIN_TOKEN_BYTES} (for example `openssl rand -hex 32`)"
    )]
    TooShort { name: String, len: usize },
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

impl Token {
    /// Reads the token from `lookup` (the process environment, or the
    /// demo's own values first). Surrounding whitespace is not part of it:
    /// a Secret made from a file often ends in a newline.
    pub fn resolve(
        auth: &crate::policy::server::AdminAuth,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, TokenError> {
        let value = lookup(&auth.token_env)
            .filter(|v| !v.trim().is_empty())
            .ok_or_else(|| TokenError::Missing(auth.token_env.clone()))?;
        let value = value.trim();
        // RFC 6750 §2.1 b64token: what a client can send after `Bearer `.
        if !value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~+/=".contains(&b))
        {
            return Err(TokenError::Unusable(auth.token_env.clone()));
        }
        if value.len() < MIN_TOKEN_BYTES {
            return Err(TokenError::TooShort {
                name: auth.token_env.clone(),
                len: value.len(),
            });
        }
        Ok(Self {
            digest: sha256(value.as_bytes()),
            metrics: auth.metrics,
        })
    }

    /// Whether a request carries the token: `Bearer` in any case (RFC 9110
    /// §11.1), one `Authorization` line.
    fn admits(&self, headers: &http::HeaderMap) -> bool {
        let mut lines = headers.get_all(http::header::AUTHORIZATION).iter();
        let (Some(line), None) = (lines.next(), lines.next()) else {
            return false;
        };
        let line = line.as_bytes();
        let Some((scheme, credentials)) = line
            .iter()
            .position(|&b| b == b' ')
            .map(|i| (&line[..i], line[i + 1..].trim_ascii()))
        else {
            return false;
        };
        if !scheme.eq_ignore_ascii_case(b"bearer") || credentials.is_empty() {
            return false;
        }
        let candidate = sha256(credentials);
        // Constant time over the digests: no early exit on the first byte
        // that differs.
        candidate
            .iter()
            .zip(self.digest.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }
}

/// An `admin_unauthorized` warning at most every 10 s, with how many were
/// refused since the last one: someone tries the controls, and a flood of
/// them cannot flood the log.
fn note_unauthorized(path: &str) {
    use std::sync::atomic::AtomicU64;
    static LAST: AtomicU64 = AtomicU64::new(0);
    static SINCE: AtomicU64 = AtomicU64::new(0);
    let refused = SINCE.fetch_add(1, Ordering::Relaxed) + 1;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let last = LAST.load(Ordering::Relaxed);
    if now >= last + 10
        && LAST
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    {
        SINCE.store(0, Ordering::Relaxed);
        tracing::warn!(
            event = "admin_unauthorized",
            path = %crate::telemetry::capped(path, 128),
            refused,
            "admin request without a valid bearer token"
        );
    }
}

fn unauthorized() -> Response<Full<Bytes>> {
    let mut r = text(
        StatusCode::UNAUTHORIZED,
        "this admin endpoint needs Authorization: Bearer <token> (server.admin_auth)\n",
    );
    r.headers_mut().insert(
        http::header::WWW_AUTHENTICATE,
        http::HeaderValue::from_static("Bearer realm=\"netwarden-admin\""),
    );
    r
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

fn json(status: StatusCode, v: &serde_json::Value) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(format!("{v}\n"))));
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    r
}

/// Whether `path` needs the token under `token`.
fn guarded(token: &Token, path: &str) -> bool {
    match path {
        "/healthz" | "/readyz" => false,
        "/metrics" => token.metrics,
        // /reload, /policy, and any path added later: closed by default.
        _ => true,
    }
}

/// Answers one admin request.
pub async fn route(
    health: &Health,
    reloader: &Arc<Reloader>,
    token: Option<&Token>,
    peer: std::net::SocketAddr,
    req: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let (method, path) = (req.method().clone(), req.uri().path().to_string());
    let (method, path) = (&method, path.as_str());
    if let Some(token) = token
        && guarded(token, path)
        && !token.admits(req.headers())
    {
        reloader.metrics().admin_unauthorized.inc();
        note_unauthorized(path);
        return unauthorized();
    }
    if path == "/reload" {
        if method != Method::POST {
            return text(StatusCode::METHOD_NOT_ALLOWED, "use POST\n");
        }
        let force = match req.uri().query() {
            None | Some("") => false,
            Some("force=true") => true,
            Some(_) => {
                return text(
                    StatusCode::BAD_REQUEST,
                    "the only parameter /reload takes is force=true\n",
                );
            }
        };
        let outcome = reloader.reload("admin", force).await;
        let status = match outcome {
            Outcome::Failed { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Outcome::Refused { .. } => StatusCode::CONFLICT,
            _ => StatusCode::OK,
        };
        return json(status, &outcome.to_json());
    }
    if path == "/feeds/refresh" {
        if method != Method::POST {
            return text(StatusCode::METHOD_NOT_ALLOWED, "use POST\n");
        }
        return json(StatusCode::OK, &super::feeds::refresh_now(reloader).await);
    }
    if path == "/lockouts/release" {
        if method != Method::POST {
            return text(StatusCode::METHOD_NOT_ALLOWED, "use POST\n");
        }
        return release(reloader, peer, req).await;
    }
    if method != Method::GET && method != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
    }
    match path {
        "/healthz" => text(StatusCode::OK, "ok\n"),
        "/readyz" if health.ready.load(Ordering::Acquire) => {
            // Ready, with what runs degraded: probes read the status, people
            // the lines.
            let disabled = reloader.degraded();
            if disabled.is_empty() {
                return text(StatusCode::OK, "ready\n");
            }
            let mut body = String::from("ready\n");
            for why in disabled {
                body.push_str("degraded: ");
                body.push_str(&why);
                body.push('\n');
            }
            let mut r = text(StatusCode::OK, "");
            *r.body_mut() = Full::new(Bytes::from(body));
            r
        }
        "/readyz" => text(StatusCode::SERVICE_UNAVAILABLE, "not ready\n"),
        "/policy" => json(StatusCode::OK, &reloader.status_json()),
        "/events/blocked" => {
            let limit = match req.uri().query() {
                None | Some("") => 50,
                Some(q) => match q.strip_prefix("limit=").map(str::parse::<usize>) {
                    Some(Ok(n)) if n <= crate::proxy::blocked::CAPACITY => n,
                    _ => {
                        return text(
                            StatusCode::BAD_REQUEST,
                            "the only parameter is limit=N, N from 0 to 1000\n",
                        );
                    }
                },
            };
            json(
                StatusCode::OK,
                &serde_json::json!({
                    "capacity": crate::proxy::blocked::CAPACITY,
                    "events": reloader.blocked().recent(limit),
                }),
            )
        }
        "/lockouts" => match reloader.lockout().locks().await {
            Ok(locks) => json(
                StatusCode::OK,
                &serde_json::json!({
                    "store": if reloader.lockout().redis.is_some() { "redis" } else { "memory" },
                    "locks": locks,
                    "recent_releases": reloader.releases(),
                }),
            ),
            Err(_) => text(
                StatusCode::SERVICE_UNAVAILABLE,
                "the lockout store (Redis) did not answer: the list would be incomplete\n",
            ),
        },
        "/metrics" => {
            let mut r = Response::new(Full::new(Bytes::from(reloader.metrics().encode())));
            r.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static(
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                ),
            );
            r
        }
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

/// The longest body `POST /lockouts/release` reads.
const RELEASE_BODY_LIMIT: usize = 4096;

/// `POST /lockouts/release` with a JSON body naming what to release: one of
/// `account` (a name, hashed on arrival and never logged), `account_hash`
/// (12 to 32 hex digits, as the logs show it), `address`, `network`.
async fn release(
    reloader: &Reloader,
    peer: std::net::SocketAddr,
    req: Request<Incoming>,
) -> Response<Full<Bytes>> {
    use http_body_util::BodyExt;
    let limited = http_body_util::Limited::new(req.into_body(), RELEASE_BODY_LIMIT);
    let body = match tokio::time::timeout(Duration::from_secs(5), limited.collect()).await {
        Ok(Ok(b)) => b.to_bytes(),
        _ => {
            return text(
                StatusCode::BAD_REQUEST,
                "the body is missing, too large (4 KiB at most) or too slow\n",
            );
        }
    };
    let which = match parse_release(reloader, &body) {
        Ok(w) => w,
        Err(why) => return json(StatusCode::BAD_REQUEST, &serde_json::json!({"error": why})),
    };
    match reloader.lockout().release(&which).await {
        Ok(released) => {
            reloader.metrics().lockout_releases.inc();
            let target = which.target();
            tracing::warn!(
                event = "lockout_released",
                admin.address = %peer.ip(),
                selector = which.kind(),
                target = %target,
                released,
                "an operator released lockouts"
            );
            reloader.released(crate::proxy::blocked::Release {
                at: crate::telemetry::json::rfc3339(std::time::SystemTime::now()),
                admin_address: peer.ip(),
                selector: which.kind(),
                target,
                released: released as u64,
            });
            json(
                StatusCode::OK,
                &serde_json::json!({"released": released, "selector": which.kind()}),
            )
        }
        Err(_) => text(
            StatusCode::SERVICE_UNAVAILABLE,
            "the lockout store (Redis) did not answer; nothing shared was released\n",
        ),
    }
}

/// A JSON object's pairs, in order, duplicates kept.
struct Pairs(Vec<(String, serde_json::Value)>);

impl<'de> serde::Deserialize<'de> for Pairs {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Pairs;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut m: A) -> Result<Pairs, A::Error> {
                let mut out = Vec::new();
                while let Some(pair) = m.next_entry::<String, serde_json::Value>()? {
                    if out.len() >= 8 {
                        return Err(serde::de::Error::custom("too many keys"));
                    }
                    out.push(pair);
                }
                Ok(Pairs(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// The release a body asks for, or why it asks for none.
fn parse_release(
    reloader: &Reloader,
    body: &[u8],
) -> Result<crate::lockout::Release, &'static str> {
    use crate::lockout::Release;
    // Every pair as written: a key given twice (the last would win in a
    // map) is refused, so that the audit line's selector is the one
    // released (red-team review of issue 24).
    let Pairs(pairs) =
        serde_json::from_slice(body).map_err(|_| "the body must be a JSON object")?;
    let [(k, val)] = pairs.as_slice() else {
        return Err("name exactly one of account, account_hash, address, network");
    };
    let val = val.as_str().ok_or("the value must be a string")?;
    match k.as_str() {
        "account" if !crate::engine::account::fold(val).is_empty() && val.len() <= 4096 => {
            Ok(Release::Account(reloader.lockout().accounts.id(val)))
        }
        "account_hash"
            if (12..=32).contains(&val.len()) && val.bytes().all(|b| b.is_ascii_hexdigit()) =>
        {
            Ok(Release::AccountHash(val.to_ascii_lowercase()))
        }
        "address" => val
            .parse::<std::net::IpAddr>()
            .map(|ip| Release::Address(crate::engine::client::canonical(ip)))
            .map_err(|_| "address must be an IP address"),
        // In its plain form: no host bits, no leading zeros.
        "network" => match val.parse::<ipnet::IpNet>() {
            Ok(n) if n.trunc() == n && n.to_string() == val => Ok(Release::Network(n)),
            _ => Err("network must be a CIDR range in its plain form, such as 192.0.2.0/24"),
        },
        "account" => Err("account must be a name of up to 4096 bytes that is not blank"),
        "account_hash" => Err("account_hash must be 12 to 32 hex digits, as the logs show it"),
        _ => Err("name exactly one of account, account_hash, address, network"),
    }
}

pub async fn serve(
    listener: TcpListener,
    health: Arc<Health>,
    reloader: Arc<Reloader>,
    token: Option<Arc<Token>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let open = Arc::new(OpenConnections::default());
    loop {
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(accepted) => accepted,
                // EMFILE and friends: wait instead of spinning on accept.
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => return,
        };
        // An address past its share, or a full table: the oldest
        // connection (of that address, or of all) gives way, so that a
        // probe or an operator's command (answered within milliseconds)
        // always gets in, however many connections others hold open, from
        // other addresses or from the same one (red-team review of issue
        // 24: eight idle connections from 127.0.0.1 refused the operator's
        // `netwarden release` and the health check).
        let (slot, evicted) = open.enter(peer.ip());
        let (health, reloader, token) = (health.clone(), reloader.clone(), token.clone());
        tokio::spawn(async move {
            let _held = slot;
            let svc = service_fn(move |req| {
                let (health, reloader, token) = (health.clone(), reloader.clone(), token.clone());
                async move {
                    Ok::<_, Infallible>(
                        route(&health, &reloader, token.as_deref(), peer, req).await,
                    )
                }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(5))
                .serve_connection(TokioIo::new(stream), svc);
            tokio::select! {
                _ = tokio::time::timeout(ADMIN_CONNECTION_LIFETIME, conn) => {}
                () = evicted.notified() => {}
            }
        });
    }
}

/// The admin connections open now, oldest first: (id, its peer's address
/// key, what tells it to close).
type Queue =
    std::collections::VecDeque<(u64, super::conn_table::AddrKey, Arc<tokio::sync::Notify>)>;

/// The admin connections open now, and the next id.
#[derive(Default)]
struct OpenConnections {
    inner: std::sync::Mutex<(u64, Queue)>,
}

/// One admin connection's place; leaves the list when dropped.
struct AdminSlot {
    open: Arc<OpenConnections>,
    id: u64,
}

impl OpenConnections {
    /// Adds a connection, asking the oldest to close when
    /// [`MAX_ADMIN_CONNECTIONS`] are open; the new one's place and what
    /// tells it to close.
    fn enter(self: &Arc<Self>, ip: std::net::IpAddr) -> (AdminSlot, Arc<tokio::sync::Notify>) {
        let key = super::conn_table::AddrKey::of(ip);
        let notify = Arc::new(tokio::sync::Notify::new());
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let id = inner.0;
        inner.0 += 1;
        // This address's oldest, while it holds its share.
        while inner.1.iter().filter(|(_, k, _)| *k == key).count()
            >= MAX_ADMIN_CONNECTIONS_PER_ADDRESS
        {
            let Some(i) = inner.1.iter().position(|(_, k, _)| *k == key) else {
                break;
            };
            if let Some((_, _, oldest)) = inner.1.remove(i) {
                // Stored as a permit: the task sees it even if not yet waiting.
                oldest.notify_one();
            }
        }
        while inner.1.len() >= MAX_ADMIN_CONNECTIONS {
            if let Some((_, _, oldest)) = inner.1.pop_front() {
                oldest.notify_one();
            }
        }
        inner.1.push_back((id, key, notify.clone()));
        (
            AdminSlot {
                open: self.clone(),
                id,
            },
            notify,
        )
    }
}

impl Drop for AdminSlot {
    fn drop(&mut self) {
        let mut inner = self.open.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.1.retain(|(id, _, _)| *id != self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::server::AdminAuth;

    fn token(metrics: bool) -> Token {
        let auth = AdminAuth {
            token_env: "T".into(),
            metrics,
        };
        Token::resolve(&auth, |_| Some("s3cret-token-of-32-bytes-0123456\n".into()))
            .expect("long enough")
    }

    fn headers(lines: &[&str]) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        for l in lines {
            h.append(
                http::header::AUTHORIZATION,
                http::HeaderValue::from_str(l).expect("test header"),
            );
        }
        h
    }

    #[test]
    fn bearer_token_in_any_scheme_case_is_admitted() {
        let t = token(false);
        for ok in [
            "Bearer s3cret-token-of-32-bytes-0123456",
            "bearer s3cret-token-of-32-bytes-0123456",
            "BEARER  s3cret-token-of-32-bytes-0123456 ",
        ] {
            assert!(t.admits(&headers(&[ok])), "{ok}");
        }
    }

    #[test]
    fn wrong_missing_or_doubled_credentials_are_refused() {
        let t = token(false);
        for bad in [
            &[][..],
            &["Bearer s3cret-token-of-32-bytes-012345"],
            &["Basic czNjcmV0"],
            &["Bearer"],
            &["Bearer "],
            &["s3cret-token-of-32-bytes-0123456"],
            &["Bearer wrong", "Bearer s3cret-token-of-32-bytes-0123456"],
        ] {
            assert!(!t.admits(&headers(bad)), "{bad:?}");
        }
    }

    #[test]
    fn probes_stay_open_and_metrics_are_guarded_only_when_asked() {
        let (open, closed) = (token(false), token(true));
        for p in ["/healthz", "/readyz"] {
            assert!(!guarded(&closed, p));
        }
        for p in ["/reload", "/policy", "/anything"] {
            assert!(guarded(&open, p));
        }
        assert!(!guarded(&open, "/metrics"));
        assert!(guarded(&closed, "/metrics"));
    }

    #[tokio::test]
    async fn a_full_admin_table_asks_the_oldest_connection_to_close() {
        let open = Arc::new(OpenConnections::default());
        let ip = |i: usize| std::net::IpAddr::from([10, 0, (i / 250) as u8, (i % 250) as u8]);
        let mut held: Vec<_> = (0..MAX_ADMIN_CONNECTIONS)
            .map(|i| open.enter(ip(i)))
            .collect();
        let (_newest, _) = open.enter(ip(9999));
        // The oldest was told to close; the others were not.
        tokio::time::timeout(Duration::from_secs(1), held[0].1.notified())
            .await
            .expect("the oldest is asked to close");
        assert!(
            tokio::time::timeout(Duration::from_millis(50), held[1].1.notified())
                .await
                .is_err()
        );
        held.clear();
        assert_eq!(open.inner.lock().unwrap().1.len(), 1);
    }

    #[tokio::test]
    async fn an_address_past_its_share_asks_its_own_oldest_connection_to_close() {
        let open = Arc::new(OpenConnections::default());
        let me = std::net::IpAddr::from([127, 0, 0, 1]);
        let other = open.enter(std::net::IpAddr::from([127, 0, 0, 2]));
        let held: Vec<_> = (0..MAX_ADMIN_CONNECTIONS_PER_ADDRESS)
            .map(|_| open.enter(me))
            .collect();
        let (_operator, _) = open.enter(me);
        tokio::time::timeout(Duration::from_secs(1), held[0].1.notified())
            .await
            .expect("the address's oldest is asked to close");
        assert!(
            tokio::time::timeout(Duration::from_millis(50), other.1.notified())
                .await
                .is_err(),
            "another address's connection stays"
        );
    }

    #[test]
    fn missing_and_short_tokens_stop_startup() {
        let auth = AdminAuth {
            token_env: "T".into(),
            metrics: false,
        };
        assert!(matches!(
            Token::resolve(&auth, |_| None),
            Err(TokenError::Missing(_))
        ));
        assert!(matches!(
            Token::resolve(&auth, |_| Some(" \n".into())),
            Err(TokenError::Missing(_))
        ));
        assert!(matches!(
            Token::resolve(&auth, |_| Some("short".into())),
            Err(TokenError::TooShort { len: 5, .. })
        ));
        for unusable in [
            "abcdefgh\x01ijklmnop",
            "abcdefgh ijklmnop",
            "abcdefghijklmnopé",
        ] {
            assert!(
                matches!(
                    Token::resolve(&auth, |_| Some(unusable.into())),
                    Err(TokenError::Unusable(_))
                ),
                "{unusable:?}"
            );
        }
    }
}
