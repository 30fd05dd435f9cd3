//! Forwarding: what the console receives, and what the client gets back.
//!
//! The upstream request carries the normalized path the engine decided on
//! and the query unchanged; hop-by-hop headers go (RFC 9110 §7.6.1); the
//! forwarding headers are replaced for untrusted peers and extended for
//! trusted ones.

use std::net::IpAddr;
use std::sync::Arc;

use super::body::RequestBody;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::request::Parts;
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Request, Response, Uri, Version};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;

use super::pool::{Pool, PoolError, UpstreamBody};
use crate::engine::client::IpText;
use crate::policy::server::{Timeouts, Upgrades};

/// hyper-util's pooled client, HTTP/1.1 or HTTP/2 by ALPN: for https
/// upstreams.
pub type TlsClient = Client<HttpsConnector<HttpConnector>, RequestBody>;

/// A worker's client to the console: its own HTTP/1.1 connection pool for a
/// plain-http upstream ([`super::pool::Pool`]); hyper-util's client, with
/// TLS and HTTP/2 by ALPN, for an https one; one multiplexed HTTP/2
/// connection for an h2c one ([`super::pool::H2c`]).
#[derive(Clone)]
pub enum UpstreamClient {
    Http(Arc<Pool>),
    Https(Arc<(TlsClient, super::pool::Slots)>),
    H2c(Arc<super::pool::H2c>),
}

/// Why the console gave no response head.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error(transparent)]
    Http(#[from] PoolError),
    #[error(transparent)]
    Https(#[from] hyper_util::client::legacy::Error),
}

impl UpstreamError {
    /// The console could not be reached at all (as opposed to failing or
    /// resetting after the request was sent).
    pub fn is_connect(&self) -> bool {
        match self {
            UpstreamError::Http(e) => e.is_connect(),
            UpstreamError::Https(e) => e.is_connect(),
        }
    }

    /// Every connection to the console was busy for the connect timeout.
    pub fn is_busy(&self) -> bool {
        matches!(self, UpstreamError::Http(PoolError::Busy))
    }
}

impl UpstreamClient {
    /// One per worker thread.
    /// `max_connections`: this worker's share of `limits.upstream_connections`;
    /// `max_idle`, of `limits.upstream_keepalive`.
    pub fn new(
        upstream: &Upstream,
        tls: rustls::ClientConfig,
        timeouts: &Timeouts,
        max_connections: usize,
        max_idle: usize,
        parked: prometheus_client::metrics::gauge::Gauge,
    ) -> Self {
        let connect_timeout = timeouts.upstream_connect;
        if upstream.h2c {
            UpstreamClient::H2c(Arc::new(super::pool::H2c::new(
                upstream.authority.clone(),
                connect_timeout,
            )))
        } else if upstream.scheme == Scheme::HTTPS {
            UpstreamClient::Https(Arc::new((
                crate::outbound::client(
                    tls,
                    connect_timeout,
                    timeouts.upstream_idle,
                    max_connections,
                ),
                super::pool::Slots::new(max_connections, connect_timeout),
            )))
        } else {
            UpstreamClient::Http(Arc::new(Pool::new(
                upstream.authority.clone(),
                connect_timeout,
                timeouts.upstream_idle,
                max_connections,
                max_idle,
                parked,
            )))
        }
    }

    /// Sends a request made by [`upstream_head`].
    #[expect(
        clippy::manual_async_fn,
        reason = "an async fn keeps its by-value arguments twice in its future"
    )]
    pub fn request(
        &self,
        mut req: Request<RequestBody>,
    ) -> impl std::future::Future<Output = Result<Response<UpstreamBody>, UpstreamError>> {
        async move {
            match self {
                UpstreamClient::Https(c) => {
                    let (client, slots) = &**c;
                    let slot = slots.acquire().await?;
                    Ok(client
                        .request(req)
                        .await?
                        .map(|body| UpstreamBody::in_slot(body, slot)))
                }
                // Boxed, so that its (large) future does not grow every
                // request's, whatever the upstream.
                UpstreamClient::H2c(c) => {
                    Ok(Box::pin(c.request(req)).await?.map(UpstreamBody::plain))
                }
                UpstreamClient::Http(pool) => {
                    // On a connection of its own, HTTP/1.1 wants the origin form
                    // (RFC 9112 §3.2.1) and a Host header.
                    let origin = req
                        .uri()
                        .path_and_query()
                        .cloned()
                        .map_or_else(|| Uri::from_static("/"), Uri::from);
                    if let Some(a) = req.uri().authority()
                        && !req.headers().contains_key(header::HOST)
                        && let Ok(h) = HeaderValue::from_str(a.as_str())
                    {
                        req.headers_mut().insert(header::HOST, h);
                    }
                    *req.uri_mut() = origin;
                    Ok(pool.request(req).await?)
                }
            }
        }
    }
}

/// Where requests go.
#[derive(Clone, Debug)]
pub struct Upstream {
    /// `http` or `https`, as the forwarded request's URI says.
    pub scheme: Scheme,
    pub authority: Authority,
    /// `h2c://`: HTTP/2 over plain TCP, with prior knowledge.
    pub h2c: bool,
}

impl Upstream {
    pub fn from_uri(uri: &Uri) -> Option<Self> {
        let h2c = uri.scheme_str() == Some("h2c");
        Some(Self {
            scheme: if h2c {
                Scheme::HTTP
            } else {
                uri.scheme()?.clone()
            },
            authority: uri.authority()?.clone(),
            h2c,
        })
    }

    /// The URL as the operator wrote it (`h2c://` included).
    pub fn url(&self) -> String {
        let scheme = if self.h2c {
            "h2c"
        } else {
            self.scheme.as_str()
        };
        format!("{scheme}://{}", self.authority)
    }
}

/// Hop-by-hop headers (RFC 9110 §7.6.1, plus the non-standard ones still
/// seen in the wild). `Proxy-Authorization` is for this hop only;
/// `HTTP2-Settings` belongs to an h2c upgrade (RFC 9113 §3.2.1), which is
/// never forwarded.
const HOP_BY_HOP: [&str; 10] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authorization",
    "proxy-authenticate",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "http2-settings",
];

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");
const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Headers that `Connection` may not remove: the Host the rules decided
/// on, the body's framing, and every header netwarden writes itself. A
/// client that names them in `Connection` would otherwise change what the
/// console reads after the decision.
fn is_protected(name: &[u8]) -> bool {
    const PROTECTED: [&str; 8] = [
        "host",
        "content-length",
        "x-forwarded-for",
        "x-forwarded-proto",
        "x-forwarded-host",
        "x-real-ip",
        "forwarded",
        "x-request-id",
    ];
    PROTECTED
        .iter()
        .any(|p| p.as_bytes().eq_ignore_ascii_case(name))
}

/// Headers through which a client, a proxy or a framework tells a console
/// who the client is or what the request was before a proxy rewrote it.
/// The console must hear one story, the one netwarden decided on: the
/// forwarding headers are rewritten from the decision
/// ([`set_forwarding_headers`]), these are removed. `client_ip.strip_headers`
/// adds more; docs/security.md lists them with the frameworks that read them.
fn is_client_header(name: &str) -> bool {
    matches!(
        name,
        // Written by netwarden from the decision.
        "x-forwarded-for"
            | "x-real-ip"
            | "forwarded"
            | "x-forwarded-proto"
            | "x-forwarded-host"
            // CDNs' and load balancers' client-address headers.
            | "true-client-ip"
            | "cf-connecting-ip"
            | "fastly-client-ip"
            | "akamai-client-ip"
            | "x-client-ip"
            | "x-cluster-client-ip"
            | "x-envoy-external-address"
            | "x-originating-ip"
            | "x-remote-ip"
            | "x-remote-addr"
            | "x-proxyuser-ip"
            | "x-original-forwarded-for"
            | "forwarded-for"
            | "x-forwarded"
            | "client-ip"
            // CDNs' and platforms' own (fourth red-team review of issue 26).
            | "fly-client-ip"
            | "x-azure-clientip"
            | "x-azure-socketip"
            | "cf-connecting-ipv6"
            | "cdn-src-ip"
            | "ali-cdn-real-ip"
            | "x-vercel-forwarded-for"
            | "x-original-remote-addr"
            // Tornado's xheaders, Jupyter's trust_xheaders, and gunicorn
            // read these (issue 22: X-Scheme made a plain-HTTP request
            // HTTPS to Jupyter); npm's request-ip and Tomcat's
            // RemoteIpValve the rest.
            | "cluster-client-ip"
            | "do-connecting-ip"
            | "x-appengine-user-ip"
            | "x-forwarded-by"
            | "x-original-for"
            | "x-forwarded-client-cert"
            // What the request looked like before a proxy: scheme, port,
            // host, URL and method overrides that frameworks believe.
            | "x-forwarded-port"
            | "x-forwarded-server"
            | "x-forwarded-scheme"
            | "x-forwarded-protocol"
            | "x-scheme"
            | "x-forwarded-ssl"
            | "x-arr-ssl"
            | "x-original-proto"
            | "x-url-scheme"
            | "front-end-https"
            | "x-original-host"
            | "x-host"
            | "x-original-url"
            | "x-rewrite-url"
            | "x-original-uri"
            | "x-forwarded-uri"
            | "x-forwarded-prefix"
            | "x-original-prefix"
            // pgAdmin strips X-Script-Name from the path it routes, from
            // any client; gunicorn takes SCRIPT_NAME and PATH_INFO from a
            // trusted peer (netwarden, on localhost).
            | "x-script-name"
            | "script-name"
            | "path-info"
            | "x-http-method-override"
            | "x-http-method"
            | "x-method-override"
    )
}

/// The value of `Upgrade` to forward when the request asks for a protocol
/// upgrade (HTTP/1.1 `Connection: upgrade` + `Upgrade: …`): only the
/// protocols `allowed` names (`server.upgrades`), in the client's order.
/// `None` when it asks for none of them: the request is then forwarded as
/// a plain request, without `Upgrade`.
pub fn upgrade_request(
    version: Version,
    headers: &HeaderMap,
    allowed: &Upgrades,
) -> Option<HeaderValue> {
    if version != Version::HTTP_11 {
        return None;
    }
    let asks = headers
        .get_all(header::CONNECTION)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"upgrade"));
    if !asks {
        return None;
    }
    let mut lines = headers.get_all(header::UPGRADE).iter();
    let first = lines.next()?;
    let several = lines.next().is_some();
    let protocols = || {
        headers
            .get_all(header::UPGRADE)
            .iter()
            .flat_map(|v| v.as_bytes().split(|&b| b == b','))
            .map(<[u8]>::trim_ascii)
            .filter(|p| !p.is_empty())
    };
    if !several && protocols().all(|p| allowed.allows(p)) {
        // The usual case (`Upgrade: websocket`): the client's own bytes.
        return protocols().next().map(|_| first.clone());
    }
    let kept: Vec<&[u8]> = protocols().filter(|p| allowed.allows(p)).collect();
    if kept.is_empty() {
        return None;
    }
    HeaderValue::from_bytes(&kept.join(&b", "[..])).ok()
}

/// Whether a 101 answer switches to a protocol the forwarded request asked
/// for (`asked`, already limited to `server.upgrades`). Anything else (no
/// `Upgrade`, another protocol, h2c to a WebSocket request) is a 502,
/// never a tunnel.
pub fn upgrade_accepted(response: &HeaderMap, asked: &HeaderValue) -> bool {
    let asked: Vec<&[u8]> = asked
        .as_bytes()
        .split(|&b| b == b',')
        .map(<[u8]>::trim_ascii)
        .collect();
    let mut any = false;
    for p in response
        .get_all(header::UPGRADE)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .map(<[u8]>::trim_ascii)
    {
        if !asked.iter().any(|a| a.eq_ignore_ascii_case(p)) {
            return false;
        }
        any = true;
    }
    any
}

/// Whether `name` is one of [`HOP_BY_HOP`].
fn is_hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "proxy-authorization"
            | "proxy-authenticate"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "http2-settings"
    )
}

/// Removes hop-by-hop headers and every header named in `Connection`
/// (but the protected ones: `is_protected`).
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // One pass over the names; most heads carry none, or only `Connection`
    // (`keep-alive`), so only the names present are removed.
    let mut present: [Option<HeaderName>; 4] = Default::default();
    let mut more = false;
    for name in headers.keys().filter(|n| is_hop_by_hop(n)) {
        match present.iter_mut().find(|p| p.is_none()) {
            Some(slot) => *slot = Some(name.clone()),
            None => more = true,
        }
    }
    if present[0].is_none() {
        return;
    }
    // `Connection: keep-alive` or `close` names only hop-by-hop headers:
    // checked in place, so the usual case parses and allocates nothing.
    let names_others = headers
        .get_all(header::CONNECTION)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .any(|t| {
            let t = t.trim_ascii();
            !t.is_empty()
                && !t.eq_ignore_ascii_case(b"close")
                && !HOP_BY_HOP
                    .iter()
                    .any(|h| t.eq_ignore_ascii_case(h.as_bytes()))
        });
    if names_others {
        let named: Vec<HeaderName> = headers
            .get_all(header::CONNECTION)
            .iter()
            .flat_map(|v| v.as_bytes().split(|&b| b == b','))
            .map(<[u8]>::trim_ascii)
            .filter(|t| !is_protected(t))
            .filter_map(|t| HeaderName::from_bytes(t).ok())
            .filter(|n| !is_hop_by_hop(n))
            .collect();
        for name in &named {
            headers.remove(name);
        }
    }
    if more {
        for name in HOP_BY_HOP {
            headers.remove(name);
        }
    } else {
        for name in present.into_iter().flatten() {
            headers.remove(name);
        }
    }
}

/// What the console is told about the request's client.
pub struct Hop<'a> {
    /// The client address the decision was made for; `None` when unknown
    /// (only rules that allow every client forward such requests).
    pub client: Option<IpAddr>,
    /// `http` or `https`: how the client reached netwarden, or what a
    /// trusted proxy says with `client_ip.trust_proto`.
    pub proto: &'static str,
    /// The host the client asked for (and the rules decided on).
    pub host: Option<&'a str>,
}

/// The scheme to announce: the trusted proxy's last `X-Forwarded-Proto`
/// entry when the policy trusts it and it says `http` or `https`, else
/// how the request reached netwarden.
pub fn announced_proto(headers: &HeaderMap, trust: bool, tls: bool) -> &'static str {
    let own = if tls { "https" } else { "http" };
    if !trust {
        return own;
    }
    let last = headers
        .get_all(&X_FORWARDED_PROTO)
        .iter()
        .next_back()
        .and_then(|v| v.as_bytes().rsplit(|&b| b == b',').next())
        .map(<[u8]>::trim_ascii);
    match last {
        Some(p) if p.eq_ignore_ascii_case(b"https") => "https",
        Some(p) if p.eq_ignore_ascii_case(b"http") => "http",
        _ => own,
    }
}

/// Removes every client-address header ([`is_client_header`], `extra`),
/// also when spelled with `_` for `-` (`X_Forwarded_For`), which some
/// frameworks (CGI, WSGI, PHP) merge with the dashed form.
fn remove_client_headers(headers: &mut HeaderMap, extra: &[HeaderName]) {
    remove_listed(headers, |n| {
        is_client_header(n) || extra.iter().any(|e| e.as_str() == n)
    });
}

/// Removes the headers auth proxies say who the user is with
/// ([`crate::policy::identity::is_identity_header`], and the ones
/// `identity.headers` names, `configured`):
/// - every `_` spelling of one, from anyone: netwarden reads the `-`
///   spelling, and a console that merges the two (CGI, WSGI, PHP) could
///   read the other (second red-team review of issue 26);
/// - from a client that is not a trusted proxy, every one: a console set up
///   to trust its auth proxy would believe it;
/// - from a trusted proxy whose headers netwarden reads (`headers_mode`),
///   every one but `configured`: the auth proxy vouches for those, not for
///   others a client may have sent through it.
pub fn remove_identity_headers(
    headers: &mut HeaderMap,
    configured: &[HeaderName],
    trusted: bool,
    headers_mode: bool,
) {
    let mut doomed: Vec<HeaderName> = Vec::new();
    for name in headers.keys() {
        let n = name.as_str();
        // Only a `_` spelling is copied (rare); the rest is read in place.
        let dashed = if n.contains('_') {
            std::borrow::Cow::Owned(n.replace('_', "-"))
        } else {
            std::borrow::Cow::Borrowed(n)
        };
        let identity = crate::policy::identity::is_identity_header(&dashed)
            || configured.iter().any(|c| c.as_str() == dashed);
        if !identity {
            continue;
        }
        let drop = n.contains('_')
            || !trusted
            || (headers_mode && !configured.iter().any(|c| c.as_str() == n));
        if drop && !doomed.contains(name) {
            doomed.push(name.clone());
        }
    }
    for name in &doomed {
        headers.remove(name);
    }
}

/// Removes every header `listed` names, also when spelled with `_` for `-`.
fn remove_listed(headers: &mut HeaderMap, listed: impl Fn(&str) -> bool) {
    // Built only when a header is to go: most requests carry none of these
    // (the ones netwarden writes are replaced by `insert` below).
    let mut doomed: Vec<HeaderName> = Vec::new();
    for name in headers.keys() {
        let n = name.as_str();
        let drop = if n.contains('_') {
            listed(&n.replace('_', "-"))
        } else {
            listed(n)
        };
        if drop && !doomed.contains(name) {
            doomed.push(name.clone());
        }
    }
    for name in &doomed {
        headers.remove(name);
    }
}

/// Tells the console about the client netwarden decided on, and nothing
/// else: every client-address header is removed, then `X-Forwarded-For`,
/// `X-Real-IP` and `Forwarded` carry the decided client (`unknown` when it
/// is unknown), `X-Forwarded-Proto` the scheme and `X-Forwarded-Host` the
/// Host the rules saw. Whatever a console believes, leftmost or rightmost
/// hop, `X-Real-IP` or `Forwarded`, it reads the same client.
pub fn set_forwarding_headers(headers: &mut HeaderMap, hop: &Hop<'_>, extra: &[HeaderName]) {
    remove_client_headers(headers, extra);
    let values = HopValues::of(hop);
    headers.insert(X_FORWARDED_FOR, values.client.clone());
    headers.insert(X_REAL_IP, values.client);
    headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static(hop.proto));
    // The Host header's own bytes when they are the host (shared, not
    // copied).
    let host = hop.host.and_then(|h| match headers.get(header::HOST) {
        Some(v) if v.as_bytes() == h.as_bytes() => Some(v.clone()),
        _ => HeaderValue::from_str(h).ok(),
    });
    match host {
        Some(h) => {
            headers.insert(X_FORWARDED_HOST, h);
        }
        None => {
            headers.remove(X_FORWARDED_HOST);
        }
    }
    match values.forwarded {
        Some(v) => {
            headers.insert(header::FORWARDED, v);
        }
        None => {
            headers.remove(header::FORWARDED);
        }
    }
}

/// The values of `X-Forwarded-For` / `X-Real-IP` and `Forwarded` for one
/// hop: made once for a client, scheme and host, and shared (reference
/// counted) by the requests that repeat them, as the requests of a
/// keep-alive connection do. Each worker thread keeps the last one.
#[derive(Clone)]
struct HopValues {
    client: HeaderValue,
    forwarded: Option<HeaderValue>,
}

/// What [`HopValues`] were made from.
#[derive(Clone, PartialEq, Eq)]
struct HopKey {
    client: Option<IpAddr>,
    proto: &'static str,
    host: Option<Box<str>>,
}

impl HopValues {
    fn of(hop: &Hop<'_>) -> Self {
        std::thread_local! {
            static LAST: std::cell::RefCell<Option<(HopKey, HopValues)>> =
                const { std::cell::RefCell::new(None) };
        }
        let same = |k: &HopKey| {
            k.client == hop.client && k.proto == hop.proto && k.host.as_deref() == hop.host
        };
        let kept = LAST.with(|last| match last.try_borrow() {
            Ok(last) => last
                .as_ref()
                .filter(|(k, _)| same(k))
                .map(|(_, v)| v.clone()),
            Err(_) => None,
        });
        if let Some(v) = kept {
            return v;
        }
        let made = Self::make(hop);
        LAST.with(|last| {
            if let Ok(mut last) = last.try_borrow_mut() {
                let key = HopKey {
                    client: hop.client,
                    proto: hop.proto,
                    host: hop.host.map(Into::into),
                };
                *last = Some((key, made.clone()));
            }
        });
        made
    }

    fn make(hop: &Hop<'_>) -> Self {
        let client = hop.client.map(IpText::new);
        let client_text = client.as_ref().map_or("unknown", IpText::as_str);
        let value =
            HeaderValue::from_str(client_text).unwrap_or(HeaderValue::from_static("unknown"));
        // RFC 7239 §4: for, proto and host (a quoted-string; hosts that
        // reached here passed the Host check, so they need no escaping).
        let mut element = String::with_capacity(64);
        element.push_str("for=");
        match hop.client {
            Some(IpAddr::V4(_)) => element.push_str(client_text),
            // RFC 7239 §6: IPv6 is bracketed and quoted.
            Some(IpAddr::V6(_)) => {
                element.push_str("\"[");
                element.push_str(client_text);
                element.push_str("]\"");
            }
            // RFC 7239 §6.2: the client is not known.
            None => element.push_str("unknown"),
        }
        element.push_str(";proto=");
        element.push_str(hop.proto);
        if let Some(h) = hop.host
            && h.bytes()
                .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
        {
            element.push_str(";host=\"");
            element.push_str(h);
            element.push('"');
        }
        HopValues {
            client: value,
            forwarded: HeaderValue::try_from(element).ok(),
        }
    }
}

/// Turns the client's request head into the upstream's: the URI (normalized
/// path, query unchanged), hop-by-hop and forwarding headers, request id,
/// Host kept as the client sent it.
pub fn upstream_head(
    parts: &mut Parts,
    upstream: &Upstream,
    path_and_query: PathAndQuery,
    hop: &Hop<'_>,
    request_id: &str,
    upgrade: Option<HeaderValue>,
    strip: &[HeaderName],
) -> Result<(), http::Error> {
    // HTTP/2 clients send :authority, not Host; the console expects Host.
    if !parts.headers.contains_key(header::HOST)
        && let Some(h) = hop.host.and_then(|h| HeaderValue::from_str(h).ok())
    {
        parts.headers.insert(header::HOST, h);
    }
    strip_hop_by_hop(&mut parts.headers);
    if let Some(proto) = upgrade {
        parts
            .headers
            .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        parts.headers.insert(header::UPGRADE, proto);
    }
    set_forwarding_headers(&mut parts.headers, hop, strip);
    if let Ok(v) = HeaderValue::from_str(request_id) {
        parts.headers.insert(X_REQUEST_ID, v);
    }
    // Over HTTP/2 the URI's authority is the `:authority` the console sees:
    // the client's Host (RFC 9113 §8.3.1); the h2c connection goes to the
    // configured address whatever it says ([`super::pool::H2c`]).
    let authority = match hop.host.filter(|_| upstream.h2c).map(Authority::try_from) {
        Some(Ok(host)) => host,
        _ => upstream.authority.clone(),
    };
    parts.uri = Uri::builder()
        .scheme(upstream.scheme.clone())
        .authority(authority)
        .path_and_query(path_and_query)
        .build()?;
    // The pooled client picks HTTP/1.1 or HTTP/2 by ALPN.
    parts.version = Version::HTTP_11;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(list: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in list {
            h.append(
                HeaderName::from_bytes(n.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    fn all(h: &HeaderMap, name: &str) -> Vec<String> {
        h.get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn hop_by_hop_and_connection_named_headers_are_removed() {
        let mut h = headers(&[
            ("connection", "keep-alive, x-secret-hop"),
            ("keep-alive", "timeout=5"),
            ("x-secret-hop", "1"),
            ("te", "trailers"),
            ("transfer-encoding", "chunked"),
            ("proxy-authorization", "Basic eA=="),
            ("accept", "text/html"),
        ]);
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("accept"));
    }

    #[test]
    fn a_header_named_in_a_later_connection_line_is_removed_whatever_its_case() {
        let mut h = headers(&[
            ("connection", "close"),
            ("connection", " Keep-Alive ,, X-Secret-Hop "),
            ("x-secret-hop", "1"),
            ("accept", "text/html"),
        ]);
        strip_hop_by_hop(&mut h);
        assert_eq!(h.keys().map(|k| k.as_str()).collect::<Vec<_>>(), ["accept"]);
    }

    #[test]
    fn connection_naming_only_hop_by_hop_headers_keeps_the_rest() {
        let mut h = headers(&[
            ("connection", "keep-alive, Upgrade, close"),
            ("upgrade", "websocket"),
            ("content-type", "text/plain"),
            ("content-length", "3"),
        ]);
        strip_hop_by_hop(&mut h);
        let mut left: Vec<_> = h.keys().map(|k| k.as_str()).collect();
        left.sort_unstable();
        assert_eq!(left, ["content-length", "content-type"]);
    }

    #[test]
    fn connection_cannot_remove_host_framing_or_what_netwarden_writes() {
        let mut h = headers(&[
            (
                "connection",
                "Host, Content-Length, X-Forwarded-For, Forwarded, X-Real-IP, X-Request-Id, x-other",
            ),
            ("host", "console.example.com"),
            ("content-length", "3"),
            ("x-forwarded-for", "192.0.2.1"),
            ("x-other", "1"),
        ]);
        strip_hop_by_hop(&mut h);
        let mut left: Vec<_> = h.keys().map(|k| k.as_str()).collect();
        left.sort_unstable();
        assert_eq!(left, ["content-length", "host", "x-forwarded-for"]);
    }

    #[test]
    fn http2_settings_is_always_removed() {
        let mut h = headers(&[
            ("connection", "Upgrade, HTTP2-Settings"),
            ("upgrade", "h2c"),
            ("http2-settings", "AAMAAABkAAQCAAAAAAIAAAAA"),
            ("accept", "*/*"),
        ]);
        strip_hop_by_hop(&mut h);
        assert_eq!(h.keys().map(|k| k.as_str()).collect::<Vec<_>>(), ["accept"]);
        let mut h = headers(&[("http2-settings", "AAMAAABk"), ("accept", "*/*")]);
        strip_hop_by_hop(&mut h);
        assert_eq!(h.keys().map(|k| k.as_str()).collect::<Vec<_>>(), ["accept"]);
    }

    fn hop(client: &str, host: Option<&'static str>) -> Hop<'static> {
        Hop {
            client: client.parse().ok(),
            proto: "http",
            host,
        }
    }

    #[test]
    fn the_console_hears_only_the_decided_client() {
        let mut h = headers(&[
            ("x-forwarded-for", "203.0.113.7"),
            ("x-forwarded-for", "10.0.0.2"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "evil.example"),
            ("forwarded", "for=203.0.113.7"),
            ("x-real-ip", "203.0.113.7"),
            ("true-client-ip", "203.0.113.7"),
            ("cf-connecting-ip", "203.0.113.7"),
            ("x-client-ip", "203.0.113.7"),
            ("x-cluster-client-ip", "203.0.113.7"),
            ("fastly-client-ip", "203.0.113.7"),
            ("x-original-url", "/admin"),
            ("x-http-method-override", "DELETE"),
            // Issue 22: Tornado (Jupyter), gunicorn, pgAdmin.
            ("x-scheme", "https"),
            ("x-forwarded-protocol", "ssl"),
            ("cluster-client-ip", "203.0.113.7"),
            ("x-script-name", "/admin"),
            ("script_name", "/admin"),
            ("x-forwarded-by", "203.0.113.7"),
            ("x_forwarded_for", "203.0.113.7"),
            ("x-forwarded_for", "203.0.113.7"),
            ("x_real_ip", "203.0.113.7"),
            ("x-my-client", "203.0.113.7"),
            ("x_my_client", "203.0.113.7"),
            ("x_custom_thing", "kept"),
            ("accept", "*/*"),
        ]);
        let extra = [HeaderName::from_static("x-my-client")];
        set_forwarding_headers(
            &mut h,
            &hop("192.0.2.1", Some("console.example.com")),
            &extra,
        );
        let mut names: Vec<_> = h.keys().map(|k| k.as_str()).collect();
        names.sort_unstable();
        assert_eq!(
            names,
            [
                "accept",
                "forwarded",
                "x-forwarded-for",
                "x-forwarded-host",
                "x-forwarded-proto",
                "x-real-ip",
                "x_custom_thing"
            ]
        );
        assert_eq!(all(&h, "x-forwarded-for"), ["192.0.2.1"]);
        assert_eq!(all(&h, "x-real-ip"), ["192.0.2.1"]);
        assert_eq!(all(&h, "x-forwarded-proto"), ["http"]);
        assert_eq!(all(&h, "x-forwarded-host"), ["console.example.com"]);
        assert_eq!(
            all(&h, "forwarded"),
            ["for=192.0.2.1;proto=http;host=\"console.example.com\""]
        );
    }

    #[test]
    fn ipv6_and_unknown_clients_are_written_as_rfc_7239_says() {
        let mut h = HeaderMap::new();
        set_forwarding_headers(&mut h, &hop("2001:db8::1", None), &[]);
        assert_eq!(all(&h, "x-forwarded-for"), ["2001:db8::1"]);
        assert_eq!(all(&h, "forwarded"), ["for=\"[2001:db8::1]\";proto=http"]);
        assert!(!h.contains_key("x-forwarded-host"));
        let mut h = headers(&[("x-forwarded-host", "evil.example")]);
        set_forwarding_headers(&mut h, &hop("not an address", None), &[]);
        assert_eq!(all(&h, "x-forwarded-for"), ["unknown"]);
        assert_eq!(all(&h, "forwarded"), ["for=unknown;proto=http"]);
        assert!(!h.contains_key("x-forwarded-host"));
    }

    #[test]
    fn a_trusted_proxys_proto_is_announced_only_when_the_policy_says_so() {
        let h = headers(&[("x-forwarded-proto", "http, https")]);
        assert_eq!(announced_proto(&h, true, false), "https");
        assert_eq!(announced_proto(&h, false, false), "http");
        let h = headers(&[("x-forwarded-proto", "gopher")]);
        assert_eq!(announced_proto(&h, true, true), "https");
        assert_eq!(announced_proto(&HeaderMap::new(), true, false), "http");
    }

    #[test]
    fn only_allowed_upgrades_are_forwarded() {
        let ws = Upgrades::default();
        let h = headers(&[
            ("connection", "keep-alive, Upgrade"),
            ("upgrade", "websocket"),
        ]);
        assert_eq!(
            upgrade_request(Version::HTTP_11, &h, &ws).unwrap(),
            "websocket"
        );
        assert!(upgrade_request(Version::HTTP_2, &h, &ws).is_none());
        let h = headers(&[("upgrade", "websocket")]);
        assert!(upgrade_request(Version::HTTP_11, &h, &ws).is_none());
        let h = headers(&[
            ("connection", "Upgrade, HTTP2-Settings"),
            ("upgrade", "h2c"),
        ]);
        assert!(upgrade_request(Version::HTTP_11, &h, &ws).is_none());
        let h = headers(&[("connection", "upgrade"), ("upgrade", "h2c, WebSocket")]);
        assert_eq!(
            upgrade_request(Version::HTTP_11, &h, &ws).unwrap(),
            "WebSocket"
        );
        let h = headers(&[
            ("connection", "upgrade"),
            ("upgrade", "websocket"),
            ("upgrade", "h2c"),
        ]);
        assert_eq!(
            upgrade_request(Version::HTTP_11, &h, &ws).unwrap(),
            "websocket"
        );
        let h = headers(&[("connection", "upgrade"), ("upgrade", "websocket")]);
        assert!(upgrade_request(Version::HTTP_11, &h, &Upgrades(Vec::new())).is_none());
    }

    #[test]
    fn a_101_must_switch_to_a_protocol_that_was_asked_for() {
        let asked = HeaderValue::from_static("websocket");
        assert!(upgrade_accepted(
            &headers(&[("upgrade", "WebSocket")]),
            &asked
        ));
        assert!(!upgrade_accepted(&headers(&[("upgrade", "h2c")]), &asked));
        assert!(!upgrade_accepted(
            &headers(&[("upgrade", "websocket, h2c")]),
            &asked
        ));
        assert!(!upgrade_accepted(&HeaderMap::new(), &asked));
    }
}
