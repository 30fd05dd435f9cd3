//! "Why am I blocked?": a path on the proxy listeners (`server.whoami`,
//! default `/.well-known/netwarden/whoami`) that netwarden answers itself,
//! for every client, allowed or not, and never forwards. It shows a person
//! the address netwarden sees, how it was found, and whether sign-in is
//! allowed from it: what IT needs to hear from someone on the phone. No
//! network name, rule or other internal is shown.

use bytes::Bytes;
use http::header::{CONTENT_LANGUAGE, CONTENT_TYPE, HeaderValue, VARY};
use http::{HeaderMap, Method, Response, StatusCode};
use http_body_util::Full;

use super::pages::{Wants, escape_html, words};
use crate::engine::client::{self, Derivation};
use crate::engine::who::IdentityFact;
use crate::engine::{SignInFrom, sign_in_from};
use crate::policy::Policy;
use crate::policy::pages::PagesSettings;

/// The page's style: the block page's, so that both look alike.
const STYLE: &str = "body{font-family:system-ui,-apple-system,\"Segoe UI\",\"Hiragino Sans\",\"Yu Gothic UI\",Meiryo,\"Noto Sans CJK JP\",sans-serif;background:#f5f6f8;color:#1d2330;margin:0;line-break:strict;overflow-wrap:anywhere}:lang(ja){word-break:auto-phrase}main{max-width:36rem;margin:12vh auto;background:#fff;border-radius:10px;padding:2rem 2.5rem;box-shadow:0 2px 12px rgba(0,0,0,.08)}h1{font-size:1.35rem;margin-top:0}p{line-height:1.6}dl{display:grid;grid-template-columns:max-content minmax(0,1fr);gap:.3rem 1rem}dd{margin:0;font-family:ui-monospace,monospace}@media (max-width:30rem){main{margin:0;border-radius:0;padding:1.5rem 1.25rem;box-shadow:none}}";

/// How the address was found: a stable code.
fn found_by(d: &Derivation, proxy_protocol: bool) -> &'static str {
    match d {
        Derivation::Header { .. } | Derivation::AllHopsTrusted { .. } => "trusted_proxy",
        Derivation::Peer | Derivation::TrustedPeerNoHeader | Derivation::Given
            if proxy_protocol =>
        {
            "proxy_protocol"
        }
        Derivation::Peer | Derivation::TrustedPeerNoHeader | Derivation::Given => "direct",
        Derivation::Unknown { .. } => "unknown",
    }
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
    pub wants: Wants,
    /// Who the client is, as the auth layer in front vouched.
    pub identity: crate::engine::who::IdentityFact<'a>,
}

pub fn answer(policy: &Policy, asked: &Asked<'_>) -> Response<Full<Bytes>> {
    if asked.method != Method::GET && asked.method != Method::HEAD {
        let mut r = Response::new(Full::new(Bytes::from_static(b"use GET\n")));
        *r.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
        r.headers_mut()
            .insert(http::header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        super::pages::protect(r.headers_mut());
        return r;
    }
    let no_headers = HeaderMap::new();
    let headers = if asked.believe_headers {
        asked.headers
    } else {
        &no_headers
    };
    let found = client::resolve(policy.client_ip(), asked.peer, headers, |_| {});
    let how = found_by(&found.derivation, asked.proxy_protocol);
    let lang = asked.wants.lang;
    let sign_in = sign_in_from(
        policy.ruleset(),
        found.ip,
        asked.host.map(crate::engine::host_without_port),
        crate::clock::now(),
        asked.identity,
    );
    let address = found
        .ip
        .map_or_else(|| "unknown".to_string(), |ip| ip.to_string());
    tracing::info!(
        event = "whoami",
        request_id = asked.request_id,
        client.address = %address,
        client.source = how,
        network.peer.address = %asked.peer,
        sign_in = sign_in.as_str(),
        "a person asked how netwarden sees them"
    );
    let seen = Seen {
        client_ip: found.ip,
        found_by: how,
        sign_in,
        request_id: asked.request_id,
        identity: policy.identity().map(|_| asked.identity),
    };
    let (body, content_type) = body(policy.pages(), asked.wants, &seen);
    let mut r = Response::new(Full::new(Bytes::from(body)));
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    super::pages::protect(h);
    h.insert(CONTENT_LANGUAGE, HeaderValue::from_static(lang.tag()));
    h.insert(VARY, HeaderValue::from_static("Accept, Accept-Language"));
    if let Ok(v) = HeaderValue::from_str(asked.request_id) {
        h.insert("x-request-id", v);
    }
    r
}

/// What the page shows, already worked out.
pub struct Seen<'a> {
    pub client_ip: Option<std::net::IpAddr>,
    /// `direct`, `trusted_proxy`, `proxy_protocol` or `unknown`.
    pub found_by: &'static str,
    pub sign_in: SignInFrom,
    pub request_id: &'a str,
    /// With `identity:`: who the auth layer in front says the client is.
    pub identity: Option<crate::engine::who::IdentityFact<'a>>,
}

/// The page's body and content type (also `netwarden pages`' preview).
pub fn body(pages: &PagesSettings, wants: Wants, seen: &Seen<'_>) -> (String, &'static str) {
    let lang = wants.lang;
    let (how, sign_in) = (seen.found_by, seen.sign_in);
    let address = seen
        .client_ip
        .map_or_else(|| "unknown".to_string(), |ip| ip.to_string());
    let w = words::whoami_words(lang);
    let contact = pages.contact(lang);
    // The client's own identity, shown to the client: the e-mail (or the
    // subject) and groups, or why there is none.
    let identity = seen.identity.map(|f| match f {
        IdentityFact::Verified(id) => {
            let who = id.email.as_deref().unwrap_or(&id.subject);
            if id.groups.is_empty() {
                who.to_string()
            } else {
                let groups: Vec<&str> = id.groups.iter().map(|g| &**g).collect();
                format!("{who} ({})", groups.join(", "))
            }
        }
        IdentityFact::Missing => w.no_identity.to_string(),
        IdentityFact::Invalid(why) => format!("{} ({})", w.identity_not_believed, why.code()),
    });
    if wants.html {
        // The policy's contact line replaces the general "contact IT".
        let (unexpected, contact) = match contact {
            Some(c) => (
                w.unexpected_then_contact,
                format!("<p>{}</p>\n", escape_html(c)),
            ),
            None => (w.unexpected, String::new()),
        };
        (
            format!(
                "<!doctype html>\n<html lang=\"{lang}\">\n<head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><meta name=\"robots\" content=\"noindex\"><title>{title}</title>\n<style>{STYLE}</style></head>\n<body><main>\n<h1>{title}</h1>\n<dl>\n<dt>{l_addr}</dt><dd>{address}</dd>\n<dt>{l_found}</dt><dd>{found}</dd>\n<dt>{l_id}</dt><dd>{id}</dd>\n{who}</dl>\n<p><strong>{sign_in}</strong></p>\n<p>{unexpected}</p>\n{contact}</main></body>\n</html>\n",
                lang = lang.tag(),
                title = escape_html(w.title),
                l_addr = escape_html(w.your_address),
                address = escape_html(&address),
                l_found = escape_html(w.found),
                found = escape_html(words::found_by(how, lang)),
                l_id = escape_html(w.request_id),
                id = escape_html(seen.request_id),
                who = identity.as_deref().map_or_else(String::new, |i| format!(
                    "<dt>{}</dt><dd>{}</dd>\n",
                    escape_html(w.identity),
                    escape_html(i)
                )),
                sign_in = escape_html(words::sign_in(sign_in, lang)),
                unexpected = escape_html(unexpected),
            ),
            "text/html; charset=utf-8",
        )
    } else {
        let mut v = serde_json::json!({
            "client_ip": seen.client_ip.map(|ip| ip.to_string()),
            "found_by": how,
            "sign_in": sign_in.as_str(),
            "lang": lang.tag(),
            "message": words::sign_in(sign_in, lang),
            "request_id": seen.request_id,
        });
        if let Some(c) = contact {
            v["contact"] = serde_json::json!(c);
        }
        if let Some(f) = seen.identity {
            v["identity"] = match f {
                IdentityFact::Verified(id) => serde_json::json!({
                    "state": "verified",
                    "email": id.email.as_deref(),
                    "groups": id.groups.iter().map(|g| &**g).collect::<Vec<_>>(),
                }),
                IdentityFact::Missing => serde_json::json!({ "state": "missing" }),
                IdentityFact::Invalid(why) => serde_json::json!({ "state": why.code() }),
            };
        }
        (v.to_string(), "application/json")
    }
}
