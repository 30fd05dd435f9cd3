//! Forwarding: what the console receives, and what the client gets back.
//!
//! The upstream request carries the normalized path the engine decided on
//! and the query unchanged; hop-by-hop headers go (RFC 9110 §7.6.1); the
//! forwarding headers are replaced for untrusted peers and extended for
//! trusted ones.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::request::Parts;
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Request, Response, Uri, Version};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use super::pool::{Pool, PoolError, UpstreamBody};
use crate::engine::client::IpText;

/// hyper-util's pooled client, HTTP/1.1 or HTTP/2 by ALPN: for https
/// upstreams.
pub type TlsClient = Client<HttpsConnector<HttpConnector>, Incoming>;

/// A worker's client to the console: its own HTTP/1.1 connection pool for a
/// plain-http upstream ([`super::pool::Pool`]); hyper-util's client, with
/// TLS and HTTP/2 by ALPN, for an https one; one multiplexed HTTP/2
/// connection for an h2c one ([`super::pool::H2c`]).
#[derive(Clone)]
pub enum UpstreamClient {
    Http(Arc<Pool>),
    Https(Box<TlsClient>),
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
}

impl UpstreamClient {
    /// One per worker thread.
    pub fn new(upstream: &Upstream, tls: rustls::ClientConfig, connect_timeout: Duration) -> Self {
        if upstream.h2c {
            UpstreamClient::H2c(Arc::new(super::pool::H2c::new(
                upstream.authority.clone(),
                connect_timeout,
            )))
        } else if upstream.scheme == Scheme::HTTPS {
            UpstreamClient::Https(Box::new(client(tls, connect_timeout)))
        } else {
            UpstreamClient::Http(Arc::new(Pool::new(
                upstream.authority.clone(),
                connect_timeout,
                POOL_IDLE,
            )))
        }
    }

    /// Sends a request made by [`upstream_head`].
    pub async fn request(
        &self,
        mut req: Request<Incoming>,
    ) -> Result<Response<UpstreamBody>, UpstreamError> {
        match self {
            UpstreamClient::Https(c) => Ok(c.request(req).await?.map(UpstreamBody::plain)),
            // Boxed, so that its (large) future does not grow every
            // request's, whatever the upstream.
            UpstreamClient::H2c(c) => Ok(Box::pin(c.request(req)).await?.map(UpstreamBody::plain)),
            UpstreamClient::Http(pool) => {
                // On a connection of its own, HTTP/1.1 wants the origin form
                // (RFC 9112 §3.2.1) and a Host header.
                let origin = req
                    .uri()
                    .path_and_query()
                    .cloned()
                    .map_or_else(|| Uri::from_static("/"), Uri::from);
                if let Some(a) = req.uri().authority() {
                    if !req.headers().contains_key(header::HOST) {
                        if let Ok(h) = HeaderValue::from_str(a.as_str()) {
                            req.headers_mut().insert(header::HOST, h);
                        }
                    }
                }
                *req.uri_mut() = origin;
                Ok(pool.request(req).await?)
            }
        }
    }
}

/// Idle pooled upstream connections are closed after this: shorter than
/// common server keep-alive timeouts (nginx 75 s, Node.js 5 s is the outlier
/// that hyper's pool retries around).
const POOL_IDLE: Duration = Duration::from_secs(60);

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

/// Builds the pooled client; `tls` verifies https upstreams. Generic over
/// the request body: the proxy streams `Incoming`, alert sinks send `Full`.
pub fn client<B>(
    tls: rustls::ClientConfig,
    connect_timeout: Duration,
) -> Client<HttpsConnector<HttpConnector>, B>
where
    B: hyper::body::Body + Send + 'static + Unpin,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(Some(connect_timeout));
    http.set_nodelay(true);
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .wrap_connector(http);
    Client::builder(TokioExecutor::new())
        .timer(TokioTimer::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(POOL_IDLE)
        .build(https)
}

/// Hop-by-hop headers (RFC 9110 §7.6.1, plus the non-standard ones still
/// seen in the wild). `Proxy-Authorization` is for this hop only.
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authorization",
    "proxy-authenticate",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The value of `Upgrade` when the request asks for a protocol upgrade
/// (HTTP/1.1 `Connection: upgrade` + `Upgrade: …`, e.g. WebSocket).
pub fn upgrade_request(version: Version, headers: &HeaderMap) -> Option<HeaderValue> {
    if version != Version::HTTP_11 {
        return None;
    }
    let asks = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
    if asks {
        headers.get(header::UPGRADE).cloned()
    } else {
        None
    }
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
    )
}

/// Removes hop-by-hop headers and every header named in `Connection`.
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
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
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

/// What the proxy knows of the connection a request came on.
pub struct Hop<'a> {
    /// The peer the engine saw (the PROXY protocol source when used).
    pub peer: IpAddr,
    /// Whether that peer is a trusted proxy (its forwarding headers are kept).
    pub peer_trusted: bool,
    /// `http` or `https`, as the client reached netwarden.
    pub scheme: &'a str,
    /// The host the client asked for.
    pub host: Option<&'a str>,
}

/// Sets the forwarding headers: replaced for an untrusted peer, the chain
/// kept and the peer appended for a trusted one. One allocation a header
/// at most: these are written on every forwarded request.
pub fn set_forwarding_headers(headers: &mut HeaderMap, hop: &Hop<'_>) {
    let peer = IpText::new(hop.peer);
    let peer = peer.as_str();
    // `prev, peer` for a trusted peer's existing chain; `peer` otherwise.
    let extend = |headers: &HeaderMap, name: &HeaderName, last: &str| -> Option<HeaderValue> {
        let mut out = String::new();
        if hop.peer_trusted {
            for line in headers.get_all(name).iter().filter_map(|v| v.to_str().ok()) {
                out.push_str(line);
                out.push_str(", ");
            }
        }
        if out.is_empty() {
            return HeaderValue::from_str(last).ok();
        }
        out.push_str(last);
        HeaderValue::try_from(out).ok()
    };
    let set = |headers: &mut HeaderMap, name: HeaderName, value: Option<HeaderValue>| match value {
        Some(v) => {
            headers.insert(name, v);
        }
        None => {
            headers.remove(name);
        }
    };

    let xff = extend(headers, &X_FORWARDED_FOR, peer);
    set(headers, X_FORWARDED_FOR, xff);

    let keep_proto = hop.peer_trusted && headers.contains_key(&X_FORWARDED_PROTO);
    if !keep_proto {
        let proto = match hop.scheme {
            "https" => HeaderValue::from_static("https"),
            _ => HeaderValue::from_static("http"),
        };
        headers.insert(X_FORWARDED_PROTO, proto);
    }
    let keep_host = hop.peer_trusted && headers.contains_key(&X_FORWARDED_HOST);
    if !keep_host {
        // The Host header's own bytes when they are the host (shared, not
        // copied).
        let host = hop.host.and_then(|h| match headers.get(header::HOST) {
            Some(v) if v.as_bytes() == h.as_bytes() => Some(v.clone()),
            _ => HeaderValue::from_str(h).ok(),
        });
        set(headers, X_FORWARDED_HOST, host);
    }

    // RFC 7239 §4: for, proto and (if it can be a quoted-string) host.
    let mut element = String::with_capacity(64);
    element.push_str("for=");
    match hop.peer {
        IpAddr::V4(_) => element.push_str(peer),
        // RFC 7239 §6: IPv6 is bracketed and quoted.
        IpAddr::V6(_) => {
            element.push_str("\"[");
            element.push_str(peer);
            element.push_str("]\"");
        }
    }
    element.push_str(";proto=");
    element.push_str(hop.scheme);
    if let Some(h) = hop.host {
        if h.bytes()
            .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
        {
            element.push_str(";host=\"");
            element.push_str(h);
            element.push('"');
        }
    }
    let forwarded = extend(headers, &header::FORWARDED, &element);
    set(headers, header::FORWARDED, forwarded);
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
) -> Result<(), http::Error> {
    // HTTP/2 clients send :authority, not Host; the console expects Host.
    if !parts.headers.contains_key(header::HOST) {
        if let Some(h) = hop.host.and_then(|h| HeaderValue::from_str(h).ok()) {
            parts.headers.insert(header::HOST, h);
        }
    }
    strip_hop_by_hop(&mut parts.headers);
    if let Some(proto) = upgrade {
        parts
            .headers
            .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        parts.headers.insert(header::UPGRADE, proto);
    }
    set_forwarding_headers(&mut parts.headers, hop);
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
    fn untrusted_peer_forwarding_headers_are_replaced() {
        let mut h = headers(&[
            ("x-forwarded-for", "203.0.113.7"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "evil.example"),
            ("forwarded", "for=203.0.113.7"),
        ]);
        let hop = Hop {
            peer: "192.0.2.1".parse().unwrap(),
            peer_trusted: false,
            scheme: "http",
            host: Some("console.example.com"),
        };
        set_forwarding_headers(&mut h, &hop);
        assert_eq!(all(&h, "x-forwarded-for"), ["192.0.2.1"]);
        assert_eq!(all(&h, "x-forwarded-proto"), ["http"]);
        assert_eq!(all(&h, "x-forwarded-host"), ["console.example.com"]);
        assert_eq!(
            all(&h, "forwarded"),
            ["for=192.0.2.1;proto=http;host=\"console.example.com\""]
        );
    }

    #[test]
    fn trusted_peer_chain_is_kept_and_the_peer_appended() {
        let mut h = headers(&[
            ("x-forwarded-for", "203.0.113.7"),
            ("x-forwarded-for", "10.0.0.2"),
            ("x-forwarded-proto", "https"),
            ("forwarded", "for=203.0.113.7"),
        ]);
        let hop = Hop {
            peer: "2001:db8::1".parse().unwrap(),
            peer_trusted: true,
            scheme: "http",
            host: None,
        };
        set_forwarding_headers(&mut h, &hop);
        assert_eq!(
            all(&h, "x-forwarded-for"),
            ["203.0.113.7, 10.0.0.2, 2001:db8::1"]
        );
        assert_eq!(all(&h, "x-forwarded-proto"), ["https"]);
        assert_eq!(
            all(&h, "forwarded"),
            ["for=203.0.113.7, for=\"[2001:db8::1]\";proto=http"]
        );
    }

    #[test]
    fn upgrade_needs_connection_upgrade_on_http1() {
        let h = headers(&[
            ("connection", "keep-alive, Upgrade"),
            ("upgrade", "websocket"),
        ]);
        assert_eq!(upgrade_request(Version::HTTP_11, &h).unwrap(), "websocket");
        assert!(upgrade_request(Version::HTTP_2, &h).is_none());
        let h = headers(&[("upgrade", "websocket")]);
        assert!(upgrade_request(Version::HTTP_11, &h).is_none());
    }
}
