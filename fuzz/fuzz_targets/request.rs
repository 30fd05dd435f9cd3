//! One request as a client or a chain of proxies sends it: the peer, the
//! method, the Host, the path and the forwarding headers (`X-Forwarded-For`,
//! `Forwarded`, `X-Real-IP`, with hostile values), decided by a policy with
//! trusted proxies, then turned into the upstream's request head.
//!
//! Checked on every input: no panic; an untrusted peer is the client
//! whatever its headers say; the lines of each forwarding header sent
//! separately or joined with `, ` decide the same client (RFC 9110 §5.3);
//! a forwarded path is normal; the head sent upstream carries no hop-by-hop
//! header (but an allowed `Upgrade`, never `h2c`), the Host the decision
//! used, and one story of the client: `X-Forwarded-For`, `X-Real-IP` and
//! `Forwarded` name the decided client, and no other client-address header
//! (in any `_` spelling) is left.
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
use netwarden::engine::request::resolve_host;
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

const NAMES: [&str; 14] = [
    "x-forwarded-for",
    "forwarded",
    "x-real-ip",
    "x-forwarded-proto",
    "x-forwarded-host",
    "connection",
    "upgrade",
    "te",
    "host",
    "http2-settings",
    "x_forwarded_for",
    "x-forwarded_for",
    "true-client-ip",
    "x-original-url",
];

/// Client-address headers that must never reach the console as the
/// client wrote them (a sample of docs/security.md's list, written out
/// again on purpose), compared with `_` read as `-`.
const CLIENT_HEADERS: [&str; 6] = [
    "true-client-ip",
    "x-original-url",
    "x-forwarded-for",
    "x-real-ip",
    "forwarded",
    "x-forwarded-host",
];

/// RFC 9110 §7.6.1 and the non-standard ones, written out again on purpose:
/// the check must not share the list it checks (`forward::HOP_BY_HOP`).
const HOP_BY_HOP: [&str; 10] = [
    "http2-settings",
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
        headers.append(http::header::HOST, h);
    }
    // As the proxy finds it: every Host line, and no absolute target.
    let host = resolve_host(
        true,
        headers
            .get_all(http::header::HOST)
            .iter()
            .map(HeaderValue::as_bytes),
        None,
    );
    let (path, query) = match input.target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (input.target, None),
    };

    let decision = decide(
        policy.ruleset(),
        &RequestFacts {
            client: ClientSource::Peer {
                peer,
                headers: &headers,
            },
            method: input.method,
            host,
            path,
            now: netwarden::engine::time::Timestamp::UNIX_EPOCH,
            account: netwarden::engine::AccountFact::Unread,
            identity: netwarden::engine::who::IdentityFact::Missing,
        },
    );
    let _ = decision.explanation().to_string();
    let host = host.ok().flatten();
    if let Some(h) = host {
        let _ = host_without_port(h);
    }

    // RFC 9110 §5.3: the lines of the client-address header, joined with
    // `, `, are the same field; the client must not change.
    let name = policy.client_ip().header.name();
    let lines: Vec<&[u8]> = headers
        .get_all(name)
        .iter()
        .map(HeaderValue::as_bytes)
        .collect();
    if lines.len() > 1 {
        let mut joined = headers.clone();
        joined.remove(name);
        if let Ok(v) = HeaderValue::from_bytes(&lines.join(&b", "[..])) {
            joined.insert(HeaderName::from_static(name), v);
            let again = decide(
                policy.ruleset(),
                &RequestFacts {
                    client: ClientSource::Peer {
                        peer,
                        headers: &joined,
                    },
                    method: input.method,
                    host: Ok(host),
                    path,
                    now: netwarden::engine::time::Timestamp::UNIX_EPOCH,
                    account: netwarden::engine::AccountFact::Unread,
                    identity: netwarden::engine::who::IdentityFact::Missing,
                },
            );
            assert_eq!(
                (again.client.ip, again.client.derivation),
                (decision.client.ip, decision.client.derivation),
                "{input:?}"
            );
        }
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
    let upgrades = &policy.server().upgrades;
    let upgrade = forward::upgrade_request(parts.version, &parts.headers, upgrades);
    let hop = Hop {
        client: decision.client.ip,
        proto: if input.tls { "https" } else { "http" },
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
        &[],
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
    if let Some(u) = parts.headers.get("upgrade") {
        for p in u.as_bytes().split(|&b| b == b',') {
            let p = p.trim_ascii();
            let name = p.split(|&b| b == b'/').next().unwrap_or(p);
            assert!(name.eq_ignore_ascii_case(b"websocket"), "{input:?}");
        }
    }
    // The console's Host is the one the decision used, byte for byte.
    let forwarded_host: Vec<&[u8]> = parts
        .headers
        .get_all("host")
        .iter()
        .map(HeaderValue::as_bytes)
        .collect();
    match host {
        Some(h) => assert_eq!(forwarded_host, [h.as_bytes()], "{input:?}"),
        None => assert!(forwarded_host.is_empty(), "{input:?}"),
    }
    // One story of the client.
    let client_text = decision.client.ip.map(IpText::new);
    let client_text = client_text.as_ref().map_or("unknown", IpText::as_str);
    for name in ["x-forwarded-for", "x-real-ip"] {
        let values: Vec<&HeaderValue> = parts.headers.get_all(name).iter().collect();
        assert_eq!(values.len(), 1, "{name}: {input:?}");
        assert_eq!(values[0].as_bytes(), client_text.as_bytes(), "{input:?}");
    }
    let forwarded: Vec<&HeaderValue> = parts.headers.get_all("forwarded").iter().collect();
    assert_eq!(forwarded.len(), 1, "{input:?}");
    assert!(!forwarded[0].as_bytes().contains(&b','), "{input:?}");
    assert_eq!(
        parts.headers.get_all("x-forwarded-proto").iter().count(),
        1,
        "{input:?}"
    );
    for name in parts.headers.keys() {
        let dashed = name.as_str().replace('_', "-");
        if name.as_str().contains('_') {
            assert!(
                !CLIENT_HEADERS.contains(&dashed.as_str()),
                "{name}: {input:?}"
            );
        }
        if CLIENT_HEADERS[..2].contains(&dashed.as_str()) {
            panic!("{name} reached the console: {input:?}");
        }
    }
});
