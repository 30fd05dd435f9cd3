//! "Why am I blocked?": a path on the proxy listeners (`server.whoami`,
//! default `/.well-known/netwarden/whoami`) that netwarden answers itself,
//! for every client, allowed or not, and never forwards. It shows a person
//! the address netwarden sees, how it was found, and whether sign-in is
//! allowed from it: what IT needs to hear from someone on the phone. No
//! network name, rule or other internal is shown.

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use http::{HeaderMap, Method, Response, StatusCode};
use http_body_util::Full;

use crate::engine::client::{self, Derivation};
use crate::engine::{SignInFrom, sign_in_from};
use crate::policy::Policy;

/// How the address was found, in words a person can repeat.
fn found_by(d: &Derivation, proxy_protocol: bool) -> (&'static str, &'static str) {
    match d {
        Derivation::Header { .. } | Derivation::AllHopsTrusted { .. } => (
            "trusted_proxy",
            "from what a trusted proxy in front of this gateway reported",
        ),
        Derivation::Peer | Derivation::TrustedPeerNoHeader | Derivation::Given
            if proxy_protocol =>
        {
            (
                "proxy_protocol",
                "from the load balancer in front of this gateway (PROXY protocol)",
            )
        }
        Derivation::Peer | Derivation::TrustedPeerNoHeader | Derivation::Given => {
            ("direct", "directly from your connection")
        }
        Derivation::Unknown { .. } => (
            "unknown",
            "it could not be found: a proxy in front sent an address that cannot be used",
        ),
    }
}

fn sign_in_words(s: SignInFrom) -> &'static str {
    match s {
        SignInFrom::Allowed => "Sign-in is allowed from this address.",
        SignInFrom::Partly => {
            "Sign-in is allowed from this address on some of the console's sign-in pages only."
        }
        SignInFrom::Blocked => {
            "Sign-in is not allowed from this address. Connect to the company network or VPN and check again."
        }
        SignInFrom::NoRoute => "This gateway does not check sign-ins.",
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// What a request on the whoami path gets.
pub struct Asked<'a> {
    pub method: &'a Method,
    pub headers: &'a HeaderMap,
    pub peer: std::net::IpAddr,
    pub believe_headers: bool,
    pub proxy_protocol: bool,
    pub host: Option<&'a str>,
    pub request_id: &'a str,
    pub html: bool,
}

pub fn answer(policy: &Policy, asked: &Asked<'_>) -> Response<Full<Bytes>> {
    if asked.method != Method::GET && asked.method != Method::HEAD {
        let mut r = Response::new(Full::new(Bytes::from_static(b"use GET\n")));
        *r.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
        r.headers_mut()
            .insert(http::header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    let no_headers = HeaderMap::new();
    let headers = if asked.believe_headers {
        asked.headers
    } else {
        &no_headers
    };
    let found = client::resolve(policy.client_ip(), asked.peer, headers, |_| {});
    let (how, how_words) = found_by(&found.derivation, asked.proxy_protocol);
    let sign_in = sign_in_from(
        policy.ruleset(),
        found.ip,
        asked.host.map(crate::engine::host_without_port),
        crate::clock::now(),
    );
    let address = found
        .ip
        .map_or_else(|| "unknown".to_string(), |ip| ip.to_string());
    tracing::info!(
        event = "whoami",
        request_id = asked.request_id,
        client.address = %address,
        client.source = how,
        sign_in = sign_in.as_str(),
        "a person asked how netwarden sees them"
    );
    let (body, content_type) = if asked.html {
        (
            format!(
                "<!doctype html>\n<html lang=\"en\">\n<head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><meta name=\"robots\" content=\"noindex\"><title>How this gateway sees you</title>\n<style>body{{font-family:system-ui,sans-serif;background:#f5f6f8;color:#1d2330;margin:0}}main{{max-width:36rem;margin:12vh auto;background:#fff;border-radius:10px;padding:2rem 2.5rem;box-shadow:0 2px 12px rgba(0,0,0,.08)}}dl{{display:grid;grid-template-columns:max-content 1fr;gap:.3rem 1rem}}dd{{margin:0;font-family:ui-monospace,monospace}}</style></head>\n<body><main>\n<h1>How this gateway sees you</h1>\n<dl>\n<dt>Your address</dt><dd>{}</dd>\n<dt>Found</dt><dd>{}</dd>\n<dt>Request id</dt><dd>{}</dd>\n</dl>\n<p><strong>{}</strong></p>\n<p>If this address is not what you expect, contact IT and give them the request id above.</p>\n</main></body>\n</html>\n",
                escape(&address),
                escape(how_words),
                escape(asked.request_id),
                escape(sign_in_words(sign_in)),
            ),
            "text/html; charset=utf-8",
        )
    } else {
        (
            serde_json::json!({
                "client_ip": found.ip.map(|ip| ip.to_string()),
                "found_by": how,
                "sign_in": sign_in.as_str(),
                "message": sign_in_words(sign_in),
                "request_id": asked.request_id,
            })
            .to_string(),
            "application/json",
        )
    };
    let mut r = Response::new(Full::new(Bytes::from(body)));
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    if let Ok(v) = HeaderValue::from_str(asked.request_id) {
        h.insert("x-request-id", v);
    }
    r
}
