//! The pages netwarden answers itself: the block page (403), and the 400,
//! 502, 503 and 504 pages. HTML for browsers, JSON for API clients. They say what
//! happened in plain words, the client address as netwarden saw it, a request
//! id and what to do; never a rule name, a network or any other internal.

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use http::{HeaderMap, Response, StatusCode};
use http_body_util::Full;

/// The built-in block page; a `block_page:` template file replaces it. The
/// same placeholders work in both: `{{title}}`, `{{message}}`,
/// `{{client_ip}}`, `{{request_id}}`, `{{advice}}` (values are HTML-escaped),
/// and `{{whoami_link}}`: on a block page, a paragraph that links to the
/// "why am I blocked?" page (`server.whoami`); empty otherwise.
pub const DEFAULT_TEMPLATE: &str = include_str!("block_page.html");

/// What a page says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Page {
    /// A denied sign-in.
    BlockedLogin,
    /// Any other denied request.
    Blocked,
    /// The path was rejected (400).
    BadRequest,
    /// The console could not be reached or failed (502).
    BadGateway,
    /// The console did not answer in time (504).
    GatewayTimeout,
    /// Every connection to the console is busy (503).
    Busy,
    /// Too many failed sign-ins from this client (429); the lock ends in
    /// this many seconds.
    LockedOut { retry_after: u64 },
    /// Sign-ins are refused while the lockout store cannot be reached
    /// (`state.on_store_error: deny_login`; 503).
    SignInUnavailable,
}

impl Page {
    pub fn status(self) -> StatusCode {
        match self {
            Page::BlockedLogin | Page::Blocked => StatusCode::FORBIDDEN,
            Page::BadRequest => StatusCode::BAD_REQUEST,
            Page::BadGateway => StatusCode::BAD_GATEWAY,
            Page::GatewayTimeout => StatusCode::GATEWAY_TIMEOUT,
            Page::Busy | Page::SignInUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Page::LockedOut { .. } => StatusCode::TOO_MANY_REQUESTS,
        }
    }

    fn code(self) -> &'static str {
        match self {
            Page::BlockedLogin => "login_not_allowed_from_this_network",
            Page::Blocked => "not_allowed_from_this_network",
            Page::BadRequest => "bad_request",
            Page::BadGateway => "console_unavailable",
            Page::GatewayTimeout => "console_timeout",
            Page::Busy => "console_busy",
            Page::LockedOut { .. } => "too_many_failed_sign_ins",
            Page::SignInUnavailable => "sign_in_unavailable",
        }
    }

    fn title(self) -> &'static str {
        match self {
            Page::BlockedLogin | Page::Blocked => "Access from this network is not allowed",
            Page::BadRequest => "This request cannot be accepted",
            Page::BadGateway => "The console is unavailable",
            Page::GatewayTimeout => "The console did not answer in time",
            Page::Busy => "The console is busy",
            Page::LockedOut { .. } => "Too many failed sign-ins",
            Page::SignInUnavailable => "Sign-in is paused",
        }
    }

    fn message(self) -> &'static str {
        match self {
            Page::BlockedLogin => {
                "Sign-in to this console is only allowed from the company network or VPN."
            }
            Page::Blocked => "This console can only be used from the company network or VPN.",
            Page::BadRequest => {
                "The address of this request is malformed or ambiguous, so it was refused."
            }
            Page::BadGateway => {
                "The console behind this gateway could not be reached or failed to answer."
            }
            Page::GatewayTimeout => "The console behind this gateway took too long to answer.",
            Page::Busy => "The console behind this gateway has too many requests open right now.",
            Page::LockedOut { .. } => {
                "There were too many failed sign-ins from this network, so sign-in is paused for it."
            }
            Page::SignInUnavailable => {
                "Sign-in is paused for a moment: the gateway cannot check failed sign-ins right now."
            }
        }
    }

    fn advice(self) -> std::borrow::Cow<'static, str> {
        if let Page::LockedOut { retry_after } = self {
            // Whole minutes, rounded up: "try again in 15 minutes".
            let minutes = retry_after.div_ceil(60).max(1);
            let unit = if minutes == 1 { "minute" } else { "minutes" };
            return format!(
                "Try again in {minutes} {unit}. If you did not try to sign in, contact IT and give them the request id below."
            )
            .into();
        }
        match self {
            Page::BlockedLogin | Page::Blocked => {
                "Connect to the company VPN and try again. If you are on the company network and still see \
                 this page, contact IT and give them the request id below."
            }
            Page::BadRequest => {
                "Check the address you opened, or go back to the console's home page."
            }
            Page::BadGateway
            | Page::GatewayTimeout
            | Page::Busy
            | Page::LockedOut { .. }
            | Page::SignInUnavailable => {
                "Try again in a minute. If it persists, contact IT and give them the request id below."
            }
        }
        .into()
    }
}

/// Renders pages; holds the block page template.
#[derive(Clone, Debug)]
pub struct Pages {
    template: String,
}

impl Default for Pages {
    fn default() -> Self {
        Self {
            template: DEFAULT_TEMPLATE.to_string(),
        }
    }
}

fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Whether the client prefers HTML (a browser) over JSON.
pub fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get_all(http::header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("text/html"))
}

impl Pages {
    /// Uses `template` (the contents of a `block_page:` file) for every page.
    pub fn with_template(template: String) -> Self {
        Self { template }
    }

    /// `whoami`: the "why am I blocked?" path, linked from block pages.
    pub fn render(
        &self,
        page: Page,
        client_ip: &str,
        request_id: &str,
        html: bool,
        whoami: Option<&str>,
    ) -> Response<Full<Bytes>> {
        let whoami = whoami.filter(|_| matches!(page, Page::Blocked | Page::BlockedLogin));
        let (body, content_type) = if html {
            let link = whoami.map_or_else(String::new, |w| {
                format!(
                    "<p><a href=\"{}\">How this gateway sees your connection</a></p>",
                    escape_html(w)
                )
            });
            let body = self
                .template
                .replace("{{title}}", &escape_html(page.title()))
                .replace("{{message}}", &escape_html(page.message()))
                .replace("{{client_ip}}", &escape_html(client_ip))
                .replace("{{request_id}}", &escape_html(request_id))
                .replace("{{advice}}", &escape_html(&page.advice()))
                .replace("{{whoami_link}}", &link);
            (body, "text/html; charset=utf-8")
        } else {
            let mut v = serde_json::json!({
                "error": page.code(),
                "message": page.message(),
                "client_ip": client_ip,
                "request_id": request_id,
                "advice": page.advice(),
            });
            if let Some(w) = whoami {
                v["whoami"] = serde_json::json!(w);
            }
            let body = v.to_string();
            (body, "application/json")
        };
        let mut resp = Response::new(Full::new(Bytes::from(body)));
        *resp.status_mut() = page.status();
        let h = resp.headers_mut();
        h.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Ok(v) = HeaderValue::from_str(request_id) {
            h.insert("x-request-id", v);
        }
        // RFC 9110 §10.2.3, in seconds.
        match page {
            Page::LockedOut { retry_after } => {
                h.insert(
                    http::header::RETRY_AFTER,
                    HeaderValue::from(retry_after.max(1)),
                );
            }
            Page::SignInUnavailable => {
                h.insert(http::header::RETRY_AFTER, HeaderValue::from_static("30"));
            }
            _ => {}
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    fn body(resp: Response<Full<Bytes>>) -> String {
        let collected = block_on(resp.into_body().collect());
        let bytes = match collected {
            Ok(c) => c.to_bytes(),
            Err(never) => match never {},
        };
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn block_page_html_says_what_and_what_to_do_without_internals() {
        let resp = Pages::default().render(
            Page::BlockedLogin,
            "192.0.2.1",
            "abc123",
            true,
            Some("/.well-known/netwarden/whoami"),
        );
        assert_eq!(resp.status(), StatusCode::FORBIDDEN);
        assert_eq!(resp.headers()[CONTENT_TYPE], "text/html; charset=utf-8");
        let html = body(resp);
        assert!(
            html.contains(
                "Sign-in to this console is only allowed from the company network or VPN."
            )
        );
        assert!(html.contains("192.0.2.1") && html.contains("abc123") && html.contains("VPN"));
        assert!(!html.contains("{{"), "every placeholder is filled");
        assert!(
            html.contains("<a href=\"/.well-known/netwarden/whoami\">"),
            "block pages link to the whoami page"
        );
    }

    #[test]
    fn json_for_api_clients() {
        let resp = Pages::default().render(Page::Blocked, "2001:db8::1", "r1", false, None);
        let v: serde_json::Value = serde_json::from_str(&body(resp)).unwrap();
        assert_eq!(v["error"], "not_allowed_from_this_network");
        assert_eq!(v["client_ip"], "2001:db8::1");
        assert_eq!(v["request_id"], "r1");
    }

    #[test]
    fn a_locked_out_client_is_told_when_to_try_again_without_internals() {
        let resp = Pages::default().render(
            Page::LockedOut {
                retry_after: 14 * 60 + 1,
            },
            "192.0.2.1",
            "r1",
            false,
            Some("/w"),
        );
        assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(resp.headers()[http::header::RETRY_AFTER], "841");
        let v: serde_json::Value = serde_json::from_str(&body(resp)).unwrap();
        assert_eq!(v["error"], "too_many_failed_sign_ins");
        assert!(
            v["advice"]
                .as_str()
                .unwrap()
                .starts_with("Try again in 15 minutes."),
            "{v}"
        );
    }

    #[test]
    fn template_values_are_escaped() {
        let pages = Pages::with_template("<p>{{client_ip}}</p>".into());
        let resp = pages.render(Page::Blocked, "<script>", "r", true, None);
        assert_eq!(body(resp), "<p>&lt;script&gt;</p>");
    }
}
