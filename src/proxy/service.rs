//! One request's phases, in order, in [`handle`]: resolve the client and
//! decide (the engine), then forward or answer (block page, 400), then log
//! the decision. Logging always runs, whatever the outcome.

use std::convert::Infallible;
use std::hash::{BuildHasher, Hasher};
use std::net::SocketAddr;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::uri::PathAndQuery;
use http::{Request, Response, StatusCode, Version};
use http_body_util::{Either, Full};
use hyper::body::Incoming;

use super::forward::{self, Hop, Upstream, UpstreamClient};
use super::pages::{Page, Shown, Wants};
use crate::engine::account::NoAccount;
use crate::engine::client::{ClientAddr, HeaderLines, canonical};
use crate::engine::who::IdentityFact;
use crate::engine::{
    AccountFact, Action, ClientSource, ClientText, Reason, RequestFacts, decide, host_without_port,
};
use crate::policy::Policy;
use crate::policy::server::{AllowedLogLevel, Timeouts};
use crate::telemetry::{self, RequestLog};

/// Streams the console's body, or carries one of netwarden's own pages.
pub type ProxyBody = Either<super::pool::UpstreamBody, Full<Bytes>>;

/// State every request shares.
pub struct Shared {
    /// The running policy; one `load` per request, no lock (hot reload swaps it).
    pub policy: ArcSwap<Policy>,
    pub upstream: Upstream,
    pub timeouts: Timeouts,
    pub log_allowed: AllowedLogLevel,
    pub ids: RequestIds,
    pub metrics: Arc<crate::telemetry::metrics::Metrics>,
    /// Alerts on blocked logins (none without an `alerts:` section);
    /// replaced when a reload changes that section.
    pub alerts: crate::alerts::Live,
    /// Requests each client address has open at the console
    /// (`limits.upstream_requests_per_address`), and those from outside
    /// the operators' networks together (`limits.upstream_requests_public`):
    /// one address cannot take every upstream connection, nor can the
    /// public take the operators' room.
    pub admission: Arc<super::admission::Admission>,
    /// Answers read ahead of their clients (`limits.response_buffer`), and
    /// the bound on their bytes together (`limits.response_buffers`).
    pub response_buffer: usize,
    pub response_buffers: usize,
    /// Failed sign-ins per client, and who is locked out (`lockout:`);
    /// kept across policy reloads.
    pub lockout: crate::lockout::Lockout,
    /// Client addresses that recently used the console, for the reload
    /// guard (`server.reload.guard`).
    pub recent: super::recent::Recent,
    /// Whether the client addresses look like a deployment mistake.
    pub client_ip_watch: super::diagnosis::ClientIpWatch,
    /// This replica's recent blocked sign-ins (`GET /events/blocked`).
    pub blocked: super::blocked::Ring,
    /// This replica's recent lockout releases (`GET /lockouts`).
    pub releases: super::blocked::Releases,
    /// When the console last answered and last failed (`GET /policy`).
    pub console: super::console_health::ConsoleHealth,
    /// The addresses this process listens on, set once bound: (role,
    /// address, PROXY protocol).
    pub listeners: std::sync::OnceLock<Vec<(&'static str, String, bool)>>,
    /// Published lists: what each feed did last, and the lists applied
    /// since start (every compile reads them before the disk).
    pub feeds: super::feeds::Board,
    /// The identity provider's keys (`identity.jwt`), kept across reloads
    /// that name the same keys.
    pub identity: crate::identity::Registry,
}

/// The rule label of a decision: the rule's shared name, or `default`,
/// `invalid_path`, `invalid_method` or `invalid_host` (shared statics).
fn rule_label(d: &crate::engine::Decision<'_, '_>) -> Arc<str> {
    use std::sync::OnceLock;
    static LABELS: [OnceLock<Arc<str>>; 4] = [const { OnceLock::new() }; 4];
    if let Some(r) = d.rule {
        return r.label.clone();
    }
    let name = d.rule_name();
    let slot = match name {
        "invalid_path" => 0,
        "invalid_method" => 1,
        "invalid_host" => 2,
        _ => 3,
    };
    LABELS[slot].get_or_init(|| name.into()).clone()
}

/// What is known of the connection a request arrived on.
#[derive(Clone, Copy, Debug)]
pub struct ConnInfo {
    /// The peer the engine sees: the TCP peer, or the PROXY protocol source.
    pub peer: SocketAddr,
    pub tls: bool,
    /// `false` on a PROXY protocol connection the proxy opened for itself
    /// (`UNKNOWN`, `LOCAL`): its forwarding headers are nobody's word.
    pub believe_headers: bool,
    /// When `peer` came from a PROXY protocol header: the load balancer
    /// (the TCP peer) that sent it.
    pub proxy_protocol_from: Option<std::net::IpAddr>,
}

/// Request ids: a per-process random seed through a bijective mixer, so ids
/// never repeat within a process and do not reveal the request count.
pub struct RequestIds {
    seed: u64,
    counter: AtomicU64,
}

impl Default for RequestIds {
    fn default() -> Self {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        h.write_u32(std::process::id());
        Self {
            seed: h.finish(),
            counter: AtomicU64::new(0),
        }
    }
}

impl RequestIds {
    pub fn next(&self) -> RequestId {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        // splitmix64 finalizer: a bijection on u64.
        let mut z = self
            .seed
            .wrapping_add(n.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        let mut hex = [0u8; 16];
        for (i, b) in hex.iter_mut().enumerate() {
            *b = b"0123456789abcdef"[((z >> (60 - 4 * i)) & 0xf) as usize];
        }
        RequestId(hex)
    }
}

/// A request id: 16 lowercase hex digits, on the stack.
#[derive(Clone, Copy)]
pub struct RequestId([u8; 16]);

impl RequestId {
    pub fn as_str(&self) -> &str {
        // Hex digits only.
        std::str::from_utf8(&self.0).unwrap_or("0000000000000000")
    }
}

impl HeaderLines for HeaderMap {
    fn for_each_line_rev(&self, name: &str, f: &mut dyn FnMut(&[u8]) -> ControlFlow<()>) {
        for v in self.get_all(name).iter().rev() {
            if f(v.as_bytes()).is_break() {
                return;
            }
        }
    }
}

fn version_text(v: Version) -> &'static str {
    match v {
        Version::HTTP_09 => "0.9",
        Version::HTTP_10 => "1.0",
        Version::HTTP_11 => "1.1",
        Version::HTTP_2 => "2",
        Version::HTTP_3 => "3",
        _ => "",
    }
}

/// Handles one request (its head and body, apart). Never fails: faults
/// become 400/502/504 pages.
///
/// This and the phases it awaits are `async` blocks, not `async fn`s: an
/// `async fn` keeps its by-value arguments twice in its future (as given,
/// and moved into its body), and every request's future is moved whole,
/// into hyper's slot and at each `.await` (issue 29: 7,128 bytes a
/// request, now 5,368).
#[expect(
    clippy::manual_async_fn,
    reason = "an async fn keeps its by-value arguments twice in its future"
)]
pub fn handle(
    shared: Arc<Shared>,
    client: UpstreamClient,
    conn: ConnInfo,
    tunnel: Arc<super::listener::TunnelCtx>,
    mut parts: http::request::Parts,
    body: Incoming,
) -> impl std::future::Future<Output = Result<Response<ProxyBody>, Infallible>> {
    async move {
        let start = Instant::now();
        let upstream_client = client;
        let request_id = shared.ids.next();
        let request_id = request_id.as_str();
        let policy = shared.policy.load_full();
        let peer = canonical(conn.peer.ip());
        let scheme = if conn.tls { "https" } else { "http" };
        let host = request_host(&parts);
        let host_decided = host_text(&host);
        let host_str = host_decided.ok().flatten();
        let user_agent = parts.headers.get(header::USER_AGENT).cloned();
        let wants = Wants::of(&parts.headers, policy.pages());
        let method = parts.method.clone();
        let version = version_text(parts.version);
        let now = crate::clock::now();
        // Phase: who the client is, when the policy reads identities (a
        // signed token's keys may need fetching: boxed, so that requests
        // without `identity:` do not carry the future).
        let identity = match policy.identity() {
            Some(settings) => Some(
                Box::pin(crate::identity::resolve(
                    &shared.identity,
                    settings,
                    &parts.headers,
                    policy.client_ip().trusted_proxies.contains(peer),
                    now,
                ))
                .await,
            ),
            None => None,
        };
        // A trusted auth proxy's identity headers that are not believed
        // (two values, a display name) never reach the console either, what
        // ever rule decides (fourth red-team review of issue 26).
        if let (
            Some(Err(_)),
            Some(crate::policy::identity::IdentitySettings {
                source: crate::policy::identity::Source::Headers(_),
                ..
            }),
        ) = (&identity, policy.identity())
        {
            for name in policy.identity_headers() {
                parts.headers.remove(name);
            }
        }
        let identity_fact = match &identity {
            Some(Ok(Some(id))) => IdentityFact::Verified(id),
            Some(Err(why)) => IdentityFact::Invalid(*why),
            _ => IdentityFact::Missing,
        };

        // "Why am I blocked?": answered here for everyone, never forwarded.
        // A request the engine would refuse (two Hosts, `get`) is not answered
        // here either: it goes on to its 400 like any other.
        if let Some(w) = policy.server().whoami.as_deref()
            && parts.uri.path() == w
            && host_decided
                .is_ok_and(|h| h.is_none_or(|h| crate::engine::request::check_host(h).is_ok()))
            && !crate::engine::request::is_miscased_standard_method(method.as_str())
        {
            let asked = super::whoami::Asked {
                method: &parts.method,
                headers: &parts.headers,
                peer,
                believe_headers: conn.believe_headers,
                proxy_protocol: conn.proxy_protocol_from.is_some(),
                host: host_str,
                request_id,
                wants,
                identity: identity_fact,
            };
            let answer = super::whoami::answer(&policy, &asked).map(Either::Right);
            return Ok(head_without_body(&method, answer));
        }

        // Phase: decide.
        let decide_start = Instant::now();
        // What a connection whose forwarding headers are not believed shows
        // the engine (empty: does not allocate).
        let no_headers = HeaderMap::new();
        let facts = |account| RequestFacts {
            client: ClientSource::Peer {
                peer,
                headers: if conn.believe_headers {
                    &parts.headers
                } else {
                    &no_headers
                },
            },
            method: method.as_str(),
            host: host_decided,
            path: parts.uri.path(),
            now,
            account,
            identity: identity_fact,
        };
        let mut decision = decide(policy.ruleset(), &facts(AccountFact::Unread));
        let mut decide_time = decide_start.elapsed();
        // A rule decides by the account the sign-in names (`accounts:`): read
        // it (the body's first part, bounded in size and time), then decide
        // again knowing it. A sign-in whose account cannot be read is refused
        // by that rule, never passed to a broader one.
        let account_spec = decision
            .rule
            .filter(|_| decision.reason == Reason::AccountNeeded)
            .and_then(|r| r.account.as_ref());
        let mut read_state = None;
        let body = if let Some(spec) = account_spec {
            let read = Box::pin(super::sign_in::read(&shared, spec, &parts, body)).await;
            read_state = read.as_ref().map(|r| match &r.found {
                Ok(_) => "read",
                Err(why) => why.as_str(),
            });
            let again = Instant::now();
            let folded = read
                .as_ref()
                .and_then(|r| r.found.as_ref().ok())
                .map(|name| crate::engine::account::fold(name));
            let account = match (&read, &folded) {
                (Some(_), Some(f)) => AccountFact::Named(f),
                (Some(r), None) => AccountFact::Unreadable(match &r.found {
                    Err(why) => *why,
                    Ok(_) => NoAccount::Unparseable,
                }),
                // The body broke off: nothing to forward either.
                (None, _) => AccountFact::Unreadable(NoAccount::Missing),
            };
            decision = decide(policy.ruleset(), &facts(account));
            decide_time += again.elapsed();
            match read {
                Some(r) => super::sign_in::Body::Read(r),
                None => super::sign_in::Body::Broken,
            }
        } else {
            super::sign_in::Body::Fresh(body)
        };
        shared
            .metrics
            .decision_seconds
            .observe(decide_time.as_secs_f64());
        if policy.forwarding().self_check {
            shared.client_ip_watch.observe(
                decision.client.ip,
                &decision.client.derivation,
                decision.reason,
                &shared.metrics,
            );
        }
        count_decision(&shared.metrics, &decision);
        let (decision, normalized) = decision.take_path();
        // Phase: log, whatever happens next. The line is written when `done`
        // is dropped: after the response head, or, if the client goes away
        // while the console is being asked (the future is dropped), with 499
        // (nginx's "client closed request"). A request the console received
        // always has its decision line.
        let mut done = Finish {
            shared: &shared,
            policy: &policy,
            decision,
            request_id,
            peer,
            method: method.as_str(),
            scheme,
            version,
            host: host_str,
            user_agent,
            start,
            path: LogPath::Own(String::new()),
            status: None,
            login_outcome: None,
            login_account: read_state,
            identity: identity
                .as_ref()
                .map(|i| identity_log(&shared, policy.identity(), i)),
        };

        // Phase: answer or forward. The decided client is `Copy`: the pages
        // show it without borrowing `done`, which the arms update.
        let client = done.decision.client;
        let page = |p: Page| render(&policy, p, &client, request_id, wants);
        let response: Response<ProxyBody> = match (done.decision.forwards(), normalized) {
            (_, None) => {
                done.path = LogPath::Own(parts.uri.path().to_string());
                page(Page::BadRequest)
            }
            (false, Some(path)) => {
                // A rule would let this client in, in its hours: say the
                // console is closed, and when it opens, not "use the VPN".
                let p = match (done.decision.reason, done.decision.closed) {
                    (Reason::AccountUnreadable(why), _) => Page::AccountUnreadable(why),
                    (Reason::IdentityMissing, _) => Page::NoIdentity(None),
                    (Reason::IdentityInvalid(why), _) => Page::NoIdentity(Some(why)),
                    (_, Some(rule)) => Page::Closed {
                        opens: crate::engine::time::next_opening(&rule.when, crate::clock::now()),
                    },
                    (_, None) if done.decision.login => Page::BlockedLogin,
                    (_, None) => Page::Blocked,
                };
                done.path = LogPath::Own(path.into_owned());
                page(p)
            }
            // A reverse proxy has no tunnel to offer: CONNECT is never forwarded.
            (true, Some(path)) if parts.method == http::Method::CONNECT => {
                done.path = LogPath::Own(path.into_owned());
                page(Page::BadRequest)
            }
            (true, Some(path)) => {
                // The path as forwarded; an unchanged one reuses the
                // request's own bytes.
                let pq = match (&path, parts.uri.path_and_query()) {
                    (std::borrow::Cow::Borrowed(_), Some(pq)) => Ok(pq.clone()),
                    _ => match parts.uri.query() {
                        Some(q) => PathAndQuery::try_from(format!("{path}?{q}")),
                        None => PathAndQuery::try_from(path.as_ref()),
                    },
                };
                match pq {
                    Err(_) => {
                        done.path = LogPath::Own(path.into_owned());
                        page(Page::BadRequest)
                    }
                    Ok(pq) => {
                        drop(path);
                        let lane = Lane {
                            conn,
                            tunnel,
                            upstream: &upstream_client,
                            wants,
                            identity: match &identity {
                                Some(Ok(Some(id))) => Some(id),
                                _ => None,
                            },
                        };
                        pass_on(&shared, &mut done, lane, parts, body, pq).await
                    }
                }
            }
        };

        done.status = Some(response.status().as_u16());
        drop(done);
        Ok(head_without_body(&method, response))
    }
}

/// How a request reached netwarden and how it goes on: the connection, its
/// tunnel context, the client to the console, the form pages take.
struct Lane<'a> {
    conn: ConnInfo,
    tunnel: Arc<super::listener::TunnelCtx>,
    upstream: &'a UpstreamClient,
    wants: Wants,
    /// The client's verified identity, for the reload guard's memory.
    identity: Option<&'a Arc<crate::engine::who::Identity>>,
}

/// An allowed request: a sign-in's phase first (the account, a lockout),
/// then the reload guard's note, then the console.
#[expect(
    clippy::manual_async_fn,
    reason = "an async fn keeps its by-value arguments twice in its future"
)]
fn pass_on(
    shared: &Arc<Shared>,
    done: &mut Finish<'_, '_>,
    lane: Lane<'_>,
    parts: http::request::Parts,
    body: super::sign_in::Body<'_>,
    pq: PathAndQuery,
) -> impl std::future::Future<Output = Response<ProxyBody>> {
    async move {
        let policy = done.policy;
        let client = done.decision.client;
        let (request_id, peer, method, host_str, start) = (
            done.request_id,
            done.peer,
            done.method,
            done.host,
            done.start,
        );
        let Lane {
            conn,
            tunnel,
            upstream: upstream_client,
            wants,
            identity,
        } = lane;
        let page = |p: Page| render(policy, p, &client, request_id, wants);
        let peer_trusted = policy.client_ip().trusted_proxies.contains(peer);
        let hop = Hop {
            client: client.ip,
            proto: forward::announced_proto(
                &parts.headers,
                peer_trusted && policy.forwarding().trust_proto,
                conn.tls,
            ),
            host: host_str,
        };
        // A sign-in on an enforced login route: its outcome is read from
        // the console's answer, and a locked-out client stops here.
        let sign_in = done
            .decision
            .rule
            .filter(|_| done.decision.enforced)
            .and_then(|r| r.outcome.as_ref().map(|o| (r, o)));
        let (sign_in, body) = match sign_in {
            Some((rule, spec)) => {
                // Boxed: the sign-in phase's future (a body read, a
                // Redis call) does not grow every request's.
                let (s, body) = Box::pin(super::sign_in::begin(
                    shared, policy, rule, spec, client.ip, &parts, body,
                ))
                .await;
                done.login_account = s.account_state.or(done.login_account);
                (Some((s, rule)), body)
            }
            None => (None, body.forward().ok_or(super::sign_in::Stop::BrokenBody)),
        };
        match body {
            Err(stop) => {
                done.path = LogPath::Forwarded(pq);
                let outcome = match stop {
                    super::sign_in::Stop::BrokenBody => None,
                    _ => Some("locked_out"),
                };
                done.login_outcome = outcome;
                if let (Some((_, rule)), Some(o)) = (&sign_in, outcome) {
                    super::sign_in::count_login(shared, rule, o);
                }
                match stop {
                    super::sign_in::Stop::Locked { retry_after, scope } => {
                        page(Page::LockedOut { retry_after, scope })
                    }
                    super::sign_in::Stop::StoreUnavailable => page(Page::SignInUnavailable),
                    super::sign_in::Stop::BrokenBody => page(Page::BadRequest),
                }
            }
            Ok(body) => {
                // The reload guard remembers who used the console:
                // clients that a network allowed (a public rule's
                // `action: allow` vouches for nobody), enforced or, in
                // a report-only policy, as it would be.
                let mut sign_in_sample = None;
                let vouched = vouched_by(&done.decision);
                // An operator's request (one from the office or the VPN, to
                // whatever rule) never waits behind the public's.
                let who = match (vouched, client.ip) {
                    (Some(_), _) => super::admission::Who::Operator,
                    (None, Some(ip)) if policy.ruleset().is_operator(ip, crate::clock::now()) => {
                        super::admission::Who::Operator
                    }
                    _ => super::admission::Who::Public,
                };
                if let (Some(rule), Some(ip)) = (vouched, client.ip) {
                    let seen = super::recent::Seen {
                        method,
                        host: host_str,
                        path: pq.path(),
                        peer,
                        proxy_protocol_from: conn.proxy_protocol_from,
                        headers: conn.believe_headers.then_some(&parts.headers),
                        account_group: done.decision.account_group,
                        identity,
                    };
                    shared.recent.allowed(ip, &rule.label, start, &seen);
                    // A sign-in is kept once the console accepts it;
                    // its headers are copied now, before they go.
                    if sign_in.is_some() {
                        sign_in_sample = Some(super::recent::sample(&seen));
                    }
                }
                // The log shows the path as forwarded; the clone shares bytes.
                done.path = LogPath::Forwarded(pq.clone());
                let response = forward(
                    shared,
                    policy,
                    tunnel,
                    upstream_client,
                    parts,
                    body,
                    pq,
                    &hop,
                    request_id,
                    &client,
                    wants,
                    who,
                    identity,
                )
                .await;
                // Only the console's own answers say how a sign-in went.
                if let Some((s, rule)) = sign_in
                    && let Either::Left(_) = response.body()
                {
                    done.login_outcome =
                        Some(
                            s.finish(shared, policy, request_id, client.ip, &response, || {
                                lockout_attempt(done, policy, rule)
                            }),
                        );
                    if let (Some("succeeded"), Some(ip), Some(sample)) =
                        (done.login_outcome, client.ip, sign_in_sample)
                    {
                        shared.recent.signed_in(ip, sample);
                    }
                }
                response
            }
        }
    }
}

/// The request's authority: RFC 9112 §3.2, RFC 9113 §8.3.1: every authority
/// the request carries (Host lines, an absolute target, `:authority`) must
/// agree; the engine refuses the request otherwise. Its own bytes
/// (reference-counted, not copied): whatever they are, the engine checks
/// them; never a "no Host" in disguise.
fn request_host(
    parts: &http::request::Parts,
) -> Result<Option<HeaderValue>, crate::engine::request::HostError> {
    crate::engine::request::resolve_host(
        true,
        parts
            .headers
            .get_all(header::HOST)
            .iter()
            .map(HeaderValue::as_bytes),
        parts.uri.authority().map(http::uri::Authority::as_str),
    )
    .and_then(|h| match h {
        // The Host line itself: shared, not copied.
        Some(h) => match parts.headers.get(header::HOST) {
            Some(line) if std::ptr::eq(line.as_bytes(), h.as_bytes()) => Ok(Some(line.clone())),
            _ => HeaderValue::from_bytes(h.as_bytes())
                .map(Some)
                .map_err(|_| crate::engine::request::HostError::Invalid),
        },
        None => Ok(None),
    })
}

/// What the engine decides on: the Host as text, or why it is refused (not
/// UTF-8 is refused here; the engine refuses every non-ASCII one).
fn host_text(
    host: &Result<Option<HeaderValue>, crate::engine::request::HostError>,
) -> Result<Option<&str>, crate::engine::request::HostError> {
    match host {
        Ok(Some(h)) => std::str::from_utf8(h.as_bytes())
            .map(Some)
            .map_err(|_| crate::engine::request::HostError::Invalid),
        Ok(None) => Ok(None),
        Err(e) => Err(*e),
    }
}

/// The decision's counters: decisions by action and rule, blocked sign-ins
/// (enforced, or what a report-only rule would have blocked).
fn count_decision(
    metrics: &crate::telemetry::metrics::Metrics,
    decision: &crate::engine::Decision<'_, '_>,
) {
    use crate::telemetry::metrics::{DecisionLabels, LoginLabels, Name};
    let rule = Name(rule_label(decision));
    let action = decision.action.as_str();
    // This worker's last decision counter: a request usually meets the
    // rule the one before it met, and then counting it is an atomic add
    // rather than a labelled lookup (a hash of the labels and a lock).
    // Series are never removed, so a kept counter is never a stale one; a
    // reload's rules have new names (new `Arc`s, kept alive here so that
    // no other name can take their place) and are looked up again.
    type Last = Option<(
        u64,
        Arc<str>,
        &'static str,
        prometheus_client::metrics::counter::Counter,
    )>;
    thread_local! {
        static LAST: std::cell::RefCell<Last> = const { std::cell::RefCell::new(None) };
    }
    let counted = LAST.with(|last| match &*last.borrow() {
        Some((id, r, a, counter))
            if *id == metrics.id && Arc::ptr_eq(r, &rule.0) && *a == action =>
        {
            counter.inc();
            true
        }
        _ => false,
    });
    if !counted {
        let counter = metrics
            .decisions
            .get_or_create(&DecisionLabels {
                action,
                rule: rule.clone(),
            })
            .clone();
        counter.inc();
        LAST.with(|last| {
            *last.borrow_mut() = Some((metrics.id, rule.0.clone(), action, counter));
        });
    }
    if decision.is_blocked_login() {
        metrics
            .login_blocked
            .get_or_create(&LoginLabels {
                rule,
                enforced: decision.enforced,
            })
            .inc();
    } else if let Some(hit) = decision.report.filter(|h| h.rule.login) {
        let rule = Name(hit.rule.label.clone());
        metrics
            .login_blocked
            .get_or_create(&LoginLabels {
                rule,
                enforced: false,
            })
            .inc();
    }
}

/// A `HEAD` answered by netwarden itself carries the headers a `GET` would,
/// and no body (RFC 9110 §9.3.2). hyper leaves out the body of an HTTP/1.1
/// answer, not of an HTTP/2 one, whose DATA after a HEAD is a protocol
/// error to the client. The console's own answers are left to hyper.
fn head_without_body(method: &http::Method, response: Response<ProxyBody>) -> Response<ProxyBody> {
    if method != http::Method::HEAD {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    match body {
        Either::Right(full) => {
            use hyper::body::Body as _;
            if let Some(len) = full.size_hint().exact() {
                parts
                    .headers
                    .insert(header::CONTENT_LENGTH, HeaderValue::from(len));
            }
            Response::from_parts(parts, Either::Right(Full::new(Bytes::new())))
        }
        upstream => Response::from_parts(parts, upstream),
    }
}

/// What the decision line and an alert say of a request; written when
/// dropped, so that logging always runs (pingora's logging phase).
struct Finish<'a, 'p> {
    shared: &'a Shared,
    policy: &'p Policy,
    decision: crate::engine::Decision<'p, 'static>,
    request_id: &'a str,
    peer: std::net::IpAddr,
    method: &'a str,
    scheme: &'static str,
    version: &'static str,
    host: Option<&'a str>,
    user_agent: Option<HeaderValue>,
    start: Instant,
    path: LogPath,
    /// The response status; `None` when the client went away first (499).
    status: Option<u16>,
    /// A sign-in's outcome (`failed`, `succeeded`, `unknown`, `locked_out`).
    login_outcome: Option<&'static str>,
    /// A sign-in whose rule reads the account: `read`, or why not.
    login_account: Option<&'static str>,
    /// With `identity:`: the identity's state, subject hash, e-mail.
    identity: Option<OwnedIdentityLog>,
}

/// [`telemetry::IdentityLog`], owned by the request's log phase.
struct OwnedIdentityLog {
    state: &'static str,
    subject_hash: Option<String>,
    email_domain: Option<Box<str>>,
    email: Option<Box<str>>,
}

/// What the log may say of an identity: the subject as the lockout's
/// keyed hash, the e-mail's domain, the e-mail only if the policy says.
fn identity_log(
    shared: &Shared,
    settings: Option<&crate::policy::identity::IdentitySettings>,
    found: &Result<Option<Arc<crate::engine::who::Identity>>, crate::engine::who::Invalid>,
) -> OwnedIdentityLog {
    match found {
        Ok(Some(id)) => OwnedIdentityLog {
            state: "verified",
            subject_hash: Some(crate::lockout::account_tag(
                &shared.lockout.accounts.id(&id.subject),
            )),
            email_domain: id.email_domain().map(Into::into),
            email: id
                .email
                .clone()
                .filter(|_| settings.is_some_and(|s| s.log_email)),
        },
        Ok(None) => OwnedIdentityLog {
            state: "missing",
            subject_hash: None,
            email_domain: None,
            email: None,
        },
        Err(why) => OwnedIdentityLog {
            state: why.code(),
            subject_hash: None,
            email_domain: None,
            email: None,
        },
    }
}

/// nginx's status for a request whose client closed the connection before
/// the response.
const CLIENT_CLOSED: u16 = 499;

impl Drop for Finish<'_, '_> {
    fn drop(&mut self) {
        let (shared, policy, decision) = (self.shared, self.policy, &self.decision);
        // Facts are looked up for denials (and, if asked, for allowed
        // requests); other requests pay nothing for GeoIP.
        let geo = policy.geo();
        let facts = match decision.client.ip {
            Some(ip)
                if !geo.is_empty() && (decision.action == Action::Deny || geo.log_on_allow) =>
            {
                Some(geo.facts(ip))
            }
            _ => None,
        };
        let user_agent = self
            .user_agent
            .as_ref()
            .map(|v| telemetry::header_text(v.as_bytes()))
            .unwrap_or_default();
        let user_agent = telemetry::cut(&user_agent, telemetry::MAX_USER_AGENT);
        let host = telemetry::capped(
            self.host.map(host_without_port).unwrap_or(""),
            telemetry::MAX_LOGGED_HOST,
        );
        let host = &*host;
        let logged_path = telemetry::capped(self.path.as_str(), telemetry::MAX_LOGGED_PATH);
        let method = telemetry::capped(self.method, telemetry::MAX_LOGGED_METHOD);
        if decision.is_blocked_login() {
            let kept = super::blocked::Blocked {
                at: telemetry::json::rfc3339(std::time::SystemTime::now()),
                client: crate::engine::ClientText(&decision.client).to_string(),
                peer: self.peer.to_string(),
                rule: decision.rule_name().to_string(),
                request_id: self.request_id.to_string(),
                enforced: decision.enforced,
                country: facts
                    .as_ref()
                    .and_then(|f| f.country.as_ref())
                    .map(ToString::to_string),
                asn: facts.as_ref().and_then(|f| f.asn),
                as_org: facts.as_ref().and_then(|f| f.as_org.clone()),
            };
            if shared.blocked.push(kept) {
                shared.metrics.blocked_sign_ins_evicted.inc();
            }
        }
        alert(
            &shared.alerts,
            decision,
            policy,
            facts.as_ref(),
            AlertContext {
                peer: self.peer,
                method: &method,
                host,
                path: &logged_path,
                user_agent,
                request_id: self.request_id,
            },
        );
        telemetry::log_decision(
            decision,
            &RequestLog {
                request_id: self.request_id,
                peer: self.peer,
                method: &method,
                path: &logged_path,
                scheme: self.scheme,
                host,
                version: self.version,
                user_agent,
                status: self.status.unwrap_or(CLIENT_CLOSED),
                duration: self.start.elapsed(),
                login_outcome: self.login_outcome,
                login_account: self.login_account,
                identity: self.identity.as_ref().map(|i| telemetry::IdentityLog {
                    state: i.state,
                    subject_hash: i.subject_hash.as_deref(),
                    email_domain: i.email_domain.as_deref(),
                    email: i.email.as_deref(),
                }),
            },
            facts.as_ref(),
            shared.log_allowed,
        );
    }
}

/// The failed sign-in that locked a client out, as an alert tells it.
fn lockout_attempt(
    done: &Finish<'_, '_>,
    policy: &Policy,
    rule: &crate::policy::Rule,
) -> crate::alerts::Attempt {
    let d = &done.decision;
    let geo = policy.geo();
    let user_agent = done
        .user_agent
        .as_ref()
        .map(|v| telemetry::header_text(v.as_bytes()).into_owned())
        .unwrap_or_default();
    crate::alerts::Attempt {
        at: std::time::SystemTime::now(),
        client: d.client.ip,
        client_source: d.client.derivation.kind(),
        derivation: d.client.derivation.to_string(),
        peer: done.peer,
        facts: d
            .client
            .ip
            .filter(|_| !geo.is_empty())
            .map(|ip| geo.facts(ip)),
        rule: rule.label.clone(),
        method: telemetry::capped(done.method, telemetry::MAX_LOGGED_METHOD).into_owned(),
        host: telemetry::capped(
            done.host.map(host_without_port).unwrap_or(""),
            telemetry::MAX_LOGGED_HOST,
        )
        .into_owned(),
        path: telemetry::capped(done.path.as_str(), telemetry::MAX_LOGGED_PATH).into_owned(),
        user_agent: telemetry::cut(&user_agent, telemetry::MAX_USER_AGENT).to_string(),
        request_id: done.request_id.to_string(),
        enforced: true,
    }
}

/// The path a decision line shows: the forwarded one (sharing the request's
/// bytes), or the one netwarden answered itself.
enum LogPath {
    Forwarded(PathAndQuery),
    Own(String),
}

impl LogPath {
    fn as_str(&self) -> &str {
        match self {
            LogPath::Forwarded(pq) => pq.path(),
            LogPath::Own(s) => s,
        }
    }
}

/// What an alert says of the request besides the decision.
struct AlertContext<'a> {
    peer: std::net::IpAddr,
    method: &'a str,
    host: &'a str,
    path: &'a str,
    user_agent: &'a str,
    request_id: &'a str,
}

/// Hands a blocked login attempt (or, if alerts take them, a report-only
/// would-be block) to the alerts. Other requests cost one branch.
fn alert(
    alerts: &crate::alerts::Live,
    decision: &crate::engine::Decision<'_, '_>,
    policy: &Policy,
    facts: Option<&crate::geo::Facts>,
    r: AlertContext<'_>,
) {
    let (rule, enforced) = if decision.is_blocked_login() {
        (rule_label(decision), decision.enforced)
    } else {
        match decision.report {
            Some(hit) if hit.rule.login => (hit.rule.label.clone(), false),
            _ => return,
        }
    };
    let Some(alerts) = alerts.current() else {
        return;
    };
    if !enforced && !alerts.report_only() {
        return;
    }
    let geo = policy.geo();
    let facts = match (facts, decision.client.ip) {
        (Some(f), _) => Some(f.clone()),
        (None, Some(ip)) if !geo.is_empty() => Some(geo.facts(ip)),
        _ => None,
    };
    alerts.notify(crate::alerts::Attempt {
        at: std::time::SystemTime::now(),
        client: decision.client.ip,
        client_source: decision.client.derivation.kind(),
        derivation: decision.client.derivation.to_string(),
        peer: r.peer,
        facts,
        rule,
        method: r.method.to_string(),
        host: r.host.to_string(),
        path: r.path.to_string(),
        user_agent: r.user_agent.to_string(),
        request_id: r.request_id.to_string(),
        enforced,
    });
}

/// The rule whose network vouched for the client: an `allow_from` rule
/// (none of whose networks holds every address) allowed it, enforced or,
/// in a report-only policy, as it would. Only such clients are the admins
/// the reload guard protects.
fn vouched_by<'p>(d: &crate::engine::Decision<'p, '_>) -> Option<&'p crate::policy::Rule> {
    d.rule.filter(|r| {
        r.vouches
            && d.action == crate::engine::Action::Allow
            && d.reason == crate::engine::Reason::InAllowedNetwork
    })
}

/// One of netwarden's own pages, showing the client address as decided,
/// in the policy's words for the language the client asked for.
fn render(
    policy: &Policy,
    page: Page,
    client: &ClientAddr,
    request_id: &str,
    wants: Wants,
) -> Response<ProxyBody> {
    let client = ClientText(client).to_string();
    let shown = Shown {
        page,
        lang: wants.lang,
        client_ip: &client,
        request_id,
        html: wants.html,
        whoami: policy.server().whoami.as_deref(),
    };
    super::pages::render(policy.pages(), &shown).map(Either::Right)
}

/// Sends the request to the console and streams its answer back.
#[allow(clippy::too_many_arguments)]
#[expect(
    clippy::manual_async_fn,
    reason = "an async fn keeps its by-value arguments twice in its future"
)]
fn forward(
    shared: &Arc<Shared>,
    policy: &Policy,
    tunnel: Arc<super::listener::TunnelCtx>,
    upstream_client: &UpstreamClient,
    mut parts: http::request::Parts,
    mut body: super::body::RequestBody,
    pq: PathAndQuery,
    hop: &Hop<'_>,
    request_id: &str,
    client: &ClientAddr,
    wants: Wants,
    who: super::admission::Who,
    identity: Option<&Arc<crate::engine::who::Identity>>,
) -> impl std::future::Future<Output = Response<ProxyBody>> {
    async move {
        let page = |p: Page| render(policy, p, client, request_id, wants);
        // The client's share of the console: the decided client (behind a
        // trusted proxy, the client it names), or the peer when unknown.
        // Over the share, a request waits for a place (as long as for a
        // connection) rather than fail: a browser's parallel requests, an
        // office behind one address (issue 22).
        let share_ip = client
            .ip
            .or(client.peer)
            .unwrap_or(std::net::Ipv4Addr::UNSPECIFIED.into());
        let admitted = match shared.admission.try_admit(share_ip, who) {
            Some(held) => Ok(held),
            // Boxed: the wait does not grow every request's future.
            None => {
                Box::pin(
                    shared
                        .admission
                        .admit(share_ip, who, shared.timeouts.upstream_connect),
                )
                .await
            }
        };
        let held = match admitted {
            Ok(held) => held,
            Err(refused) => {
                shared
                    .metrics
                    .upstream_requests
                    .get_or_create(&crate::telemetry::metrics::OutcomeLabels {
                        outcome: refused.as_str(),
                    })
                    .inc();
                tracing::warn!(
                    event = "upstream_error",
                    request_id,
                    error = refused.as_str(),
                    "no place at the console within timeouts.upstream_connect (limits.upstream_requests_per_address, or limits.upstream_requests_public for clients outside the operators' networks)"
                );
                return page(Page::Busy);
            }
        };
        // Only the protocols `server.upgrades` names; the rest of the request
        // goes on as a plain one, without `Upgrade`.
        let upgrade =
            forward::upgrade_request(parts.version, &parts.headers, &policy.server().upgrades);
        let client_upgrade = upgrade
            .as_ref()
            .and_then(|_| parts.extensions.remove::<hyper::upgrade::OnUpgrade>());
        let asked = upgrade.clone();
        // A tunnel is decided again while it is open: keep its request as it
        // came (only for upgrades, which are rare).
        let opened = upgrade.as_ref().map(|_| {
            super::recent::sample(&super::recent::Seen {
                method: parts.method.as_str(),
                host: hop.host,
                path: pq.path(),
                peer: client
                    .peer
                    .unwrap_or(std::net::Ipv4Addr::UNSPECIFIED.into()),
                proxy_protocol_from: tunnel.proxy_protocol_from,
                headers: tunnel.believe_headers.then_some(&parts.headers),
                // A tunnel is a GET, which no rule with `accounts:` matches.
                account_group: None,
                // Decided again with the identity it was opened with (the
                // token may expire meanwhile: the tunnel lives on, as a
                // session the console opened would).
                identity,
            })
        });
        let client_version = parts.version;
        // Who-the-user-is headers count only from the auth proxy in front.
        forward::remove_identity_headers(
            &mut parts.headers,
            policy.identity_headers(),
            client
                .peer
                .is_some_and(|p| policy.client_ip().trusted_proxies.contains(p)),
            !policy.identity_headers().is_empty(),
        );
        if forward::upstream_head(
            &mut parts,
            &shared.upstream,
            pq,
            hop,
            request_id,
            upgrade,
            &policy.forwarding().strip_headers,
        )
        .is_err()
        {
            return page(Page::BadRequest);
        }
        // A client that stops sending its body, or trickles it, loses the
        // request rather than holding a connection to the console.
        let fate = body.pace(
            super::body::Pace {
                idle: shared.timeouts.body_read,
                min_rate: shared.timeouts.body_min_rate,
            },
            request_id,
        );
        let sent = upstream_client.request(Request::from_parts(parts, body));
        let started = Instant::now();
        let result = tokio::time::timeout(shared.timeouts.upstream_response, sent).await;
        // A failed exchange the client caused: its body stalled, or broke.
        let failed = matches!(result, Ok(Err(_)));
        let stalled = failed && fate.stalled();
        let broke = failed && fate.broke();
        let outcome = match &result {
            _ if stalled => "body_timeout",
            _ if broke => "client_error",
            Err(_) => "timeout",
            Ok(Err(e)) if e.is_busy() => "busy",
            Ok(Err(e)) if e.is_connect() => "connect_error",
            Ok(Err(_)) => "error",
            Ok(Ok(_)) => "ok",
        };
        let m = &shared.metrics;
        if outcome == "ok" {
            m.upstream_ok.inc();
            shared.console.answered(started);
        } else {
            shared.console.failed(Instant::now(), outcome);
            m.upstream_requests
                .get_or_create(&crate::telemetry::metrics::OutcomeLabels { outcome })
                .inc();
        }
        m.upstream_seconds.observe(started.elapsed().as_secs_f64());
        let mut resp = match result {
            Ok(Err(e)) if broke => {
                tracing::info!(
                    event = "body_error",
                    request_id,
                    detail = %e,
                    "the client's request body broke (it went away, reset it, or framed it badly); the console's request was aborted"
                );
                return page(Page::BadRequest);
            }
            Ok(Err(_)) if stalled => {
                let mut page = page(Page::RequestTimeout);
                if client_version != Version::HTTP_2 {
                    // The rest of the body will never be read: the connection
                    // cannot carry another request.
                    page.headers_mut().insert(
                        http::header::CONNECTION,
                        http::HeaderValue::from_static("close"),
                    );
                }
                return page;
            }
            Err(_) => {
                tracing::warn!(
                    event = "upstream_error",
                    request_id,
                    error = "timeout",
                    "upstream did not answer in time"
                );
                return page(Page::GatewayTimeout);
            }
            Ok(Err(e)) if e.is_busy() => {
                tracing::warn!(
                    event = "upstream_error",
                    request_id,
                    error = "busy",
                    "every connection to the upstream stayed busy"
                );
                return page(Page::Busy);
            }
            Ok(Err(e)) => {
                let kind = if e.is_connect() { "connect" } else { "request" };
                tracing::warn!(event = "upstream_error", request_id, error = kind, detail = %e, "upstream request failed");
                return page(Page::BadGateway);
            }
            Ok(Ok(resp)) => resp,
        };
        if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
            // A tunnel only to a protocol the client asked for and the policy
            // allows: a console that answers 101 to anything else (h2c above
            // all, whose requests would never be decided) gets a 502.
            let switches = asked
                .as_ref()
                .is_some_and(|a| forward::upgrade_accepted(resp.headers(), a));
            match (client_upgrade.filter(|_| switches), opened, asked) {
                (Some(client_side), Some(opened), Some(protocols)) => {
                    let upstream_side = hyper::upgrade::on(&mut resp);
                    tokio::spawn(super::tunnel::run(
                        client_side,
                        upstream_side,
                        tunnel,
                        shared.clone(),
                        opened,
                        protocols,
                        request_id.to_string(),
                    ));
                }
                _ => {
                    tracing::warn!(
                        event = "upstream_error",
                        request_id,
                        error = "unrequested_upgrade",
                        "upstream switched protocols without an allowed upgrade being asked for"
                    );
                    return page(Page::BadGateway);
                }
            }
        } else {
            forward::strip_hop_by_hop(resp.headers_mut());
        }
        // RFC 9110 §6.2: an intermediary answers in its own version, not the
        // console's; an HTTP/1.0 console must not cost an HTTP/1.1 client its
        // keep-alive (hyper writes the response's version).
        if client_version == Version::HTTP_11 || client_version == Version::HTTP_10 {
            *resp.version_mut() = client_version;
        }
        resp.body_mut().hold(held);
        // A small answer is read whole now: the console's connection and the
        // request's places go back before the client reads any of it, so a
        // client that reads nothing holds nothing at the console (issue 22;
        // nginx's proxy_buffering). A tunnel's 101 has no body to read.
        if shared.response_buffer > 0 && resp.status() != StatusCode::SWITCHING_PROTOCOLS {
            let body = resp.body_mut();
            let more = std::future::poll_fn(|cx| {
                std::task::Poll::Ready(body.read_ahead(
                    cx,
                    shared.response_buffer,
                    shared.response_buffers,
                ))
            })
            .await;
            if more {
                // Boxed: the wait does not grow every request's future.
                let deadline =
                    tokio::time::Instant::from_std(started) + shared.timeouts.upstream_response;
                Box::pin(body.read_rest(deadline)).await;
            }
        }
        resp.map(Either::Left)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_unique_and_fixed_width() {
        let ids = RequestIds::default();
        let mut seen = std::collections::HashSet::new();
        for _ in 0..10_000 {
            let id = ids.next().as_str().to_string();
            assert_eq!(id.len(), 16);
            assert!(seen.insert(id));
        }
    }
}
