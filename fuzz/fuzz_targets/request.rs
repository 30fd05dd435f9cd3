//! One request as a client or a chain of proxies sends it: the peer, the
//! method, the Host, the path and the forwarding headers (`X-Forwarded-For`,
//! `Forwarded`, `X-Real-IP`, with hostile values), decided by a policy with
//! trusted proxies, then turned into the upstream's request head.
//!
//! Checked on every input: no panic; an untrusted peer is the client
//! whatever its headers say; a forwarded path is normal; the head sent
//! upstream carries no hop-by-hop header and, for an untrusted peer,
//! forwarding headers netwarden wrote itself.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::sync::OnceLock;

use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::uri::{PathAndQuery, Scheme};
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use netwarden::engine::client::{IpText, canonical};
use netwarden::engine::path::normalize;
use netwarden::engine::{ClientSource, RequestFacts, decide, host_without_port};
use netwarden::policy::{self, Policy};
use netwarden::proxy::forward::{self, Hop, Upstream};

const POLICY: &str = r#"
version: 1
networks:
  proxies: [10.0.0.0/8, "fd00::/8"]
  office: [192.0.2.0/24, "2001:db8::/32"]
client_ip:
  trusted_proxies: [proxies]
  header: HEADER
rules:
  - { name: login, paths: ["/login", "/admin/**"], methods: [POST], login: true, allow_from: [office] }
  - { name: static, paths: ["/static/*/app.js"], action: allow }
  - { name: console, paths: ["/**"], allow_from: [office] }
"#;

fn policies() -> &'static [Policy; 3] {
    static P: OnceLock<[Policy; 3]> = OnceLock::new();
    P.get_or_init(|| {
        ["x-forwarded-for", "forwarded", "x-real-ip"].map(|h| {
            policy::load_str(&POLICY.replace("HEADER", h), Path::new("fuzz.yaml"))
                .expect("the fuzz policy is valid")
                .policy
        })
    })
}

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    policy: u8,
    /// 0: a trusted proxy (10.x), 1: any IPv4, 2: any IPv6, 3: a trusted IPv6 (fd..).
    peer_kind: u8,
    peer: [u8; 16],
    tls: bool,
    method: &'a str,
    host: Option<&'a [u8]>,
    target: &'a str,
    headers: Vec<(u8, &'a [u8])>,
}

const NAMES: [&str; 8] = [
    "x-forwarded-for",
    "forwarded",
    "x-real-ip",
    "x-forwarded-proto",
    "x-forwarded-host",
    "connection",
    "upgrade",
    "te",
];

/// RFC 9110 §7.6.1 and the non-standard ones, written out again on purpose:
/// the check must not share the list it checks (`forward::HOP_BY_HOP`).
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

fuzz_target!(|input: Input<'_>| {
    let policy = &policies()[usize::from(input.policy) % 3];
    let b = input.peer;
    let peer = match input.peer_kind % 4 {
        0 => IpAddr::V4(Ipv4Addr::new(10, b[1], b[2], b[3])),
        1 => IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3])),
        2 => IpAddr::V6(Ipv6Addr::from(b)),
        _ => {
            let mut v6 = b;
            v6[0] = 0xfd;
            IpAddr::V6(Ipv6Addr::from(v6))
        }
    };
    let mut headers = HeaderMap::new();
    for (name, value) in &input.headers {
        if let Ok(v) = HeaderValue::from_bytes(value) {
            headers.append(NAMES[usize::from(*name) % NAMES.len()], v);
        }
    }
    if let Some(h) = input.host.and_then(|h| HeaderValue::from_bytes(h).ok()) {
        headers.insert(http::header::HOST, h);
    }
    let host = headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok());
    let (path, query) = match input.target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (input.target, None),
    };

    let decision = decide(
        policy,
        &RequestFacts {
            client: ClientSource::Peer {
                peer,
                headers: &headers,
            },
            method: input.method,
            host,
            path,
        },
    );
    let _ = decision.explanation().to_string();
    if let Some(h) = host {
        let _ = host_without_port(h);
    }

    let trusted = policy.client_ip().trusted_proxies.contains(canonical(peer));
    if !trusted {
        assert_eq!(decision.client.ip, Some(canonical(peer)), "{input:?}");
    }
    let Some(normal) = decision.path.clone() else {
        return;
    };
    assert_eq!(
        normalize(&normal).ok().as_deref(),
        Some(&*normal),
        "{input:?}"
    );

    // The head sent upstream.
    let pq = match query {
        Some(q) => PathAndQuery::try_from(format!("{normal}?{q}")),
        None => PathAndQuery::try_from(normal.as_ref()),
    };
    let (Ok(pq), Ok(method)) = (pq, http::Method::from_bytes(input.method.as_bytes())) else {
        return;
    };
    let mut request = http::Request::new(());
    *request.method_mut() = method;
    *request.headers_mut() = headers.clone();
    let (mut parts, ()) = request.into_parts();
    let upgrade = forward::upgrade_request(parts.version, &parts.headers);
    let hop = Hop {
        peer: canonical(peer),
        peer_trusted: trusted,
        scheme: if input.tls { "https" } else { "http" },
        host,
    };
    let upstream = Upstream {
        scheme: Scheme::HTTP,
        authority: "console.internal:8080".parse().expect("authority"),
        h2c: false,
    };
    if forward::upstream_head(
        &mut parts,
        &upstream,
        pq,
        &hop,
        "0123456789abcdef",
        upgrade.clone(),
    )
    .is_err()
    {
        return;
    }
    for name in HOP_BY_HOP {
        let allowed = upgrade.is_some() && (name == "connection" || name == "upgrade");
        assert!(
            allowed || !parts.headers.contains_key(name),
            "{name} kept: {input:?}"
        );
    }
    if !trusted {
        let peer_text = IpText::new(canonical(peer));
        let xff: Vec<&HeaderValue> = parts
            .headers
            .get_all(HeaderName::from_static("x-forwarded-for"))
            .iter()
            .collect();
        assert_eq!(xff.len(), 1, "{input:?}");
        assert_eq!(
            xff[0].as_bytes(),
            peer_text.as_str().as_bytes(),
            "{input:?}"
        );
        assert_eq!(
            parts.headers.get_all("forwarded").iter().count(),
            1,
            "{input:?}"
        );
        assert_eq!(
            parts.headers.get_all("x-forwarded-proto").iter().count(),
            1,
            "{input:?}"
        );
    }
});
