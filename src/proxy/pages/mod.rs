//! The pages netwarden answers itself: the block page (403), and the 400,
//! 429, 502, 503 and 504 pages. HTML for browsers, JSON for API clients, in
//! the language the client asks for (`Accept-Language`, [`negotiate`]) among
//! those the policy offers (`pages:`). They say what happened in plain words
//! ([`words`]), the client address as netwarden saw it, a request id, what to
//! do and whom to contact; never a rule name, a network or any other
//! internal.

pub mod negotiate;
pub mod words;

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_LANGUAGE, CONTENT_TYPE, HeaderValue, VARY};
use http::{HeaderMap, Response, StatusCode};
use http_body_util::Full;

use crate::policy::pages::{Lang, PagesSettings, fill};
pub use negotiate::negotiate;

/// The built-in page; `pages.templates` (or `server.block_page`) replaces
/// it. Placeholders, each value HTML-escaped: `{{lang}}`, `{{title}}`,
/// `{{message}}`, `{{advice}}`, `{{contact}}` (the policy's line for the
/// language, or empty), `{{client_ip}}`, `{{request_id}}`, the labels
/// `{{label_what_to_do}}`, `{{label_your_address}}`,
/// `{{label_request_id}}`; and `{{whoami_link}}`, on a block page a
/// paragraph that links to the "why am I blocked?" page (empty otherwise).
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
    /// The request body stopped coming, or came too slowly (408).
    RequestTimeout,
    /// The console could not be reached or failed (502).
    BadGateway,
    /// The console did not answer in time (504).
    GatewayTimeout,
    /// Every connection to the console is busy (503).
    Busy,
    /// Too many failed sign-ins (429): the lock ends in this many seconds,
    /// and holds what `scope` says.
    LockedOut { retry_after: u64, scope: LockScope },
    /// Sign-ins are refused while the lockout store cannot be reached
    /// (`state.on_store_error: deny_login`; 503).
    SignInUnavailable,
    /// Denied outside a `when:` window of a rule that would let the client
    /// in, in its hours (403): closed at this hour, opening then.
    Closed {
        opens: Option<crate::engine::time::Opening>,
    },
    /// A sign-in to a rule that decides by the account, whose account
    /// cannot be believed (400): why.
    AccountUnreadable(crate::engine::account::NoAccount),
    /// A rule with `who:` and no identity, or one not believed (403).
    NoIdentity(Option<crate::engine::who::Invalid>),
}

/// What a lock holds, in the terms of its key (docs/lockout.md, Keys), so
/// that the page says what is paused and what is not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockScope {
    /// `key: address`: this client address.
    Address,
    /// `key: account_and_network`: this account, from this network.
    AccountFromNetwork,
    /// `key: account`: this account, from anywhere.
    Account,
    /// Sign-ins whose account was not read, while an account is locked.
    Unnamed,
}

impl Page {
    /// Every page, for previews and screenshots (a lock of 15 minutes; a
    /// console closed until Monday 08:00 Tokyo time).
    pub const ALL: [Page; 12] = [
        Page::Blocked,
        Page::BlockedLogin,
        Page::BadRequest,
        Page::RequestTimeout,
        Page::BadGateway,
        Page::GatewayTimeout,
        Page::Busy,
        Page::LockedOut {
            retry_after: 900,
            scope: LockScope::AccountFromNetwork,
        },
        Page::SignInUnavailable,
        Page::Closed {
            opens: Some(crate::engine::time::Opening {
                at: jiff::Timestamp::constant(1_796_598_000, 0),
                local: jiff::civil::date(2026, 12, 7).at(8, 0, 0, 0),
                offset_seconds: 9 * 3600,
            }),
        },
        Page::AccountUnreadable(crate::engine::account::NoAccount::Ambiguous),
        Page::NoIdentity(Some(crate::engine::who::Invalid::Expired)),
    ];

    pub fn status(self) -> StatusCode {
        match self {
            Page::BlockedLogin | Page::Blocked | Page::Closed { .. } | Page::NoIdentity(_) => {
                StatusCode::FORBIDDEN
            }
            Page::BadRequest | Page::AccountUnreadable(_) => StatusCode::BAD_REQUEST,
            Page::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            Page::BadGateway => StatusCode::BAD_GATEWAY,
            Page::GatewayTimeout => StatusCode::GATEWAY_TIMEOUT,
            Page::Busy | Page::SignInUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Page::LockedOut { .. } => StatusCode::TOO_MANY_REQUESTS,
        }
    }

    /// The stable machine word for the JSON body (`code`).
    pub fn code(self) -> &'static str {
        match self {
            Page::BlockedLogin => "login_not_allowed_from_this_network",
            Page::Blocked => "not_allowed_from_this_network",
            Page::BadRequest => "bad_request",
            Page::RequestTimeout => "request_body_too_slow",
            Page::BadGateway => "console_unavailable",
            Page::GatewayTimeout => "console_timeout",
            Page::Busy => "console_busy",
            Page::LockedOut { .. } => "too_many_failed_sign_ins",
            Page::SignInUnavailable => "sign_in_unavailable",
            Page::Closed { .. } => "closed_at_this_hour",
            Page::AccountUnreadable(_) => "sign_in_account_unreadable",
            Page::NoIdentity(None) => "identity_required",
            Page::NoIdentity(Some(_)) => "identity_not_believed",
        }
    }
}

pub fn escape_html(s: &str) -> String {
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

/// The form a client wants a page in: HTML or JSON, and the language.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Wants {
    pub html: bool,
    pub lang: Lang,
}

impl Wants {
    /// From the request's `Accept` and `Accept-Language`, among what the
    /// policy offers. No allocation.
    pub fn of(headers: &HeaderMap, pages: &PagesSettings) -> Self {
        Self {
            html: wants_html(headers),
            lang: negotiate(
                headers
                    .get_all(http::header::ACCEPT_LANGUAGE)
                    .iter()
                    .map(HeaderValue::as_bytes),
                pages,
            ),
        }
    }
}

/// What one page shows.
pub struct Shown<'a> {
    pub page: Page,
    pub lang: Lang,
    pub client_ip: &'a str,
    pub request_id: &'a str,
    pub html: bool,
    /// The "why am I blocked?" path, linked from block pages.
    pub whoami: Option<&'a str>,
}

/// The page's body and content type.
pub fn body(settings: &PagesSettings, shown: &Shown<'_>) -> (String, &'static str) {
    let page = shown.page;
    let lang = shown.lang;
    let w = words::words(page, lang);
    let contact = settings.contact(lang);
    let whoami = shown
        .whoami
        .filter(|_| matches!(page, Page::Blocked | Page::BlockedLogin));
    if shown.html {
        let labels = words::labels(lang);
        let template = settings.template(lang).unwrap_or(DEFAULT_TEMPLATE);
        let body = fill(template, |name| {
            Some(match name {
                "lang" => lang.tag().to_string(),
                "title" => escape_html(w.title),
                "message" => escape_html(w.message),
                "advice" => escape_html(&w.advice),
                "contact" => escape_html(contact.unwrap_or(w.contact)),
                "client_ip" => escape_html(shown.client_ip),
                "request_id" => escape_html(shown.request_id),
                "label_what_to_do" => escape_html(labels.what_to_do),
                "label_your_address" => escape_html(labels.your_address),
                "label_request_id" => escape_html(labels.request_id),
                "whoami_link" => whoami.map_or_else(String::new, |w| {
                    format!(
                        "<p><a href=\"{}\">{}</a></p>",
                        escape_html(w),
                        escape_html(labels.whoami_link)
                    )
                }),
                _ => return None,
            })
        });
        (body, "text/html; charset=utf-8")
    } else {
        let mut v = serde_json::json!({
            "code": page.code(),
            "error": page.code(),
            "lang": lang.tag(),
            "message": w.message,
            "advice": w.advice,
            "client_ip": shown.client_ip,
            "request_id": shown.request_id,
        });
        v["contact"] = serde_json::json!(contact.unwrap_or(w.contact));
        if let Some(w) = whoami {
            v["whoami"] = serde_json::json!(w);
        }
        (v.to_string(), "application/json")
    }
}

/// Writes every page (and the whoami page) in every language `policy`
/// offers into `dir`, as `<code>.<lang>.html`, with a sample address and
/// request id; returns the files written. What a browser would get.
pub fn preview(
    policy: &crate::policy::Policy,
    dir: &std::path::Path,
) -> std::io::Result<Vec<std::path::PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let settings = policy.pages();
    let whoami = policy.server().whoami.as_deref();
    let mut written = Vec::new();
    for &lang in &settings.offered {
        let wants = Wants { html: true, lang };
        for page in Page::ALL {
            let shown = Shown {
                page,
                lang,
                client_ip: "192.0.2.44",
                request_id: "5c1f0e2a9b7d4e61",
                html: true,
                whoami,
            };
            let path = dir.join(format!("{}.{}.html", page.code(), lang.tag()));
            write_new(&path, body(settings, &shown).0.as_bytes())?;
            written.push(path);
        }
        let seen = super::whoami::Seen {
            client_ip: Some([192, 0, 2, 44].into()),
            found_by: "direct",
            sign_in: crate::engine::SignInFrom::Blocked,
            request_id: "5c1f0e2a9b7d4e61",
            identity: None,
        };
        let path = dir.join(format!("whoami.{}.html", lang.tag()));
        write_new(
            &path,
            super::whoami::body(settings, wants, &seen).0.as_bytes(),
        )?;
        written.push(path);
    }
    Ok(written)
}

/// What a page may load: nothing but its own inline style and `data:`
/// images, so that a template (the company's own too) cannot make a
/// blocked person's browser ask another host, run a script, or be framed.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The headers every page netwarden answers itself carries, besides its
/// type and language.
pub fn protect(h: &mut HeaderMap) {
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        http::header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    h.insert("x-dns-prefetch-control", HeaderValue::from_static("off"));
    h.insert(
        http::header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
}

/// Writes a file that this call creates: an old file (or a link someone
/// left in a shared directory) is removed first, never written through.
fn write_new(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    if std::fs::symlink_metadata(path).is_ok() {
        std::fs::remove_file(path)?;
    }
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)?
        .write_all(bytes)
}

/// The whole response: status, body, and the headers every page has.
pub fn render(settings: &PagesSettings, shown: &Shown<'_>) -> Response<Full<Bytes>> {
    let (body, content_type) = body(settings, shown);
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = shown.page.status();
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    protect(h);
    h.insert(CONTENT_LANGUAGE, HeaderValue::from_static(shown.lang.tag()));
    // The body depends on both (RFC 9110 §12.5.5).
    h.insert(VARY, HeaderValue::from_static("Accept, Accept-Language"));
    if let Ok(v) = HeaderValue::from_str(shown.request_id) {
        h.insert("x-request-id", v);
    }
    // RFC 9110 §10.2.3, in seconds.
    match shown.page {
        Page::LockedOut { retry_after, .. } => {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn shown<'a>(page: Page, lang: Lang, client_ip: &'a str, html: bool) -> Shown<'a> {
        Shown {
            page,
            lang,
            client_ip,
            request_id: "abc123",
            html,
            whoami: Some("/.well-known/netwarden/whoami"),
        }
    }

    fn html(settings: &PagesSettings, page: Page, lang: Lang) -> String {
        body(settings, &shown(page, lang, "192.0.2.1", true)).0
    }

    #[test]
    fn block_page_html_says_what_and_what_to_do_without_internals() {
        let resp = render(
            &PagesSettings::default(),
            &shown(Page::BlockedLogin, Lang::En, "192.0.2.1", true),
        );
        assert_eq!(resp.status(), StatusCode::FORBIDDEN);
        assert_eq!(resp.headers()[CONTENT_TYPE], "text/html; charset=utf-8");
        assert_eq!(resp.headers()[CONTENT_LANGUAGE], "en");
        assert_eq!(resp.headers()[VARY], "Accept, Accept-Language");
        let page = html(&PagesSettings::default(), Page::BlockedLogin, Lang::En);
        assert!(
            page.contains(
                "Sign-in to this console is only allowed from the company network or VPN."
            )
        );
        assert!(page.contains("192.0.2.1") && page.contains("abc123") && page.contains("VPN"));
        assert!(page.contains("<html lang=\"en\">"));
        assert!(!page.contains("{{"), "every placeholder is filled");
        assert!(
            page.contains("<a href=\"/.well-known/netwarden/whoami\">"),
            "block pages link to the whoami page"
        );
    }

    #[test]
    fn every_page_is_written_in_each_language_with_no_placeholder_left() {
        let cjk = |s: &str| s.chars().any(|c| ('\u{3040}'..='\u{9fff}').contains(&c));
        for page in Page::ALL {
            let en = html(&PagesSettings::default(), page, Lang::En);
            let ja = html(&PagesSettings::default(), page, Lang::Ja);
            assert!(!en.contains("{{") && !ja.contains("{{"), "{page:?}");
            assert!(!cjk(&en), "{page:?} English page has Japanese: {en}");
            assert!(cjk(&ja) && ja.contains("<html lang=\"ja\">"), "{page:?}");
            assert!(ja.contains("リクエストID"), "{page:?}");
        }
    }

    #[test]
    fn json_keeps_a_stable_code_and_speaks_the_language() {
        for (lang, message) in [
            (
                Lang::En,
                "This console can only be used from the company network or VPN.",
            ),
            (
                Lang::Ja,
                "このコンソールは、社内ネットワークまたは社内VPNからのみご利用いただけます。",
            ),
        ] {
            let (b, ct) = body(
                &PagesSettings::default(),
                &shown(Page::Blocked, lang, "2001:db8::1", false),
            );
            assert_eq!(ct, "application/json");
            let v: serde_json::Value = serde_json::from_str(&b).unwrap();
            assert_eq!(v["code"], "not_allowed_from_this_network");
            assert_eq!(v["error"], "not_allowed_from_this_network");
            assert_eq!(v["lang"], lang.tag());
            assert_eq!(v["message"], message);
            assert_eq!(v["client_ip"], "2001:db8::1");
            assert_eq!(v["request_id"], "abc123");
        }
    }

    #[test]
    fn a_locked_out_client_is_told_when_to_try_again_without_internals() {
        let page = Page::LockedOut {
            retry_after: 14 * 60 + 1,
            scope: LockScope::AccountFromNetwork,
        };
        let resp = render(
            &PagesSettings::default(),
            &shown(page, Lang::En, "192.0.2.1", false),
        );
        assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(resp.headers()[http::header::RETRY_AFTER], "841");
        let (b, _) = body(
            &PagesSettings::default(),
            &shown(page, Lang::En, "192.0.2.1", false),
        );
        let v: serde_json::Value = serde_json::from_str(&b).unwrap();
        assert_eq!(v["code"], "too_many_failed_sign_ins");
        assert!(
            v["advice"]
                .as_str()
                .unwrap()
                .starts_with("Try again in 15 minutes."),
            "{v}"
        );
        let (b, _) = body(
            &PagesSettings::default(),
            &shown(page, Lang::Ja, "192.0.2.1", false),
        );
        let v: serde_json::Value = serde_json::from_str(&b).unwrap();
        assert!(v["advice"].as_str().unwrap().starts_with("15分後に"), "{v}");
    }

    /// Issue 23's review of the Japanese: every page, with and without a
    /// contact line, in both languages, reads as written: no 「あなた」,
    /// no 「アドレス」 alone (it reads as an e-mail address), no half-width
    /// space after 「。」, and whom to ask said once.
    #[test]
    fn every_page_reads_as_written_in_each_language() {
        let with_contact = PagesSettings {
            contact: [
                Some("Call the IT desk on extension 1234.".into()),
                Some("お問い合わせは情報システム部（内線1234）までお願いします。".into()),
            ],
            ..PagesSettings::default()
        };
        let mut pages: Vec<Page> = Page::ALL.to_vec();
        for scope in [
            LockScope::Address,
            LockScope::AccountFromNetwork,
            LockScope::Account,
            LockScope::Unnamed,
        ] {
            for retry_after in [1, 30, 59, 60, 61, 900] {
                pages.push(Page::LockedOut { retry_after, scope });
            }
        }
        for settings in [PagesSettings::default(), with_contact] {
            for &page in &pages {
                for lang in [Lang::En, Lang::Ja] {
                    let (html, _) = body(&settings, &shown(page, lang, "192.0.2.1", true));
                    let text = html.replace("<p>", "\n").replace("</p>", "");
                    if lang == Lang::Ja {
                        assert!(!text.contains("あなた"), "{page:?}: {text}");
                        assert!(!text.contains("。 "), "{page:?}: {text}");
                        let lone = text
                            .match_indices("アドレス")
                            .filter(|(i, _)| !text[..*i].ends_with("IP"));
                        assert_eq!(lone.count(), 0, "{page:?}: {text}");
                        assert!(
                            text.matches("お問い合わせ").count() <= 1,
                            "{page:?}: {text}"
                        );
                    } else {
                        assert!(
                            text.matches("contact IT").count() + text.matches("IT desk").count()
                                <= 1,
                            "{page:?}: {text}"
                        );
                    }
                }
            }
        }
        // Retry-After and the words round alike.
        let words = |retry_after| {
            words::words(
                Page::LockedOut {
                    retry_after,
                    scope: LockScope::Address,
                },
                Lang::En,
            )
            .advice
            .into_owned()
        };
        assert_eq!(words(30), "Try again in 30 seconds.");
        assert_eq!(words(60), "Try again in 1 minute.");
        assert_eq!(words(61), "Try again in 2 minutes.");
    }

    #[test]
    fn hostile_values_stay_text_and_are_never_read_as_placeholders() {
        let t = "<p>{{client_ip}}</p><p>{{message}}</p>{{unknown}}{{ {{request_id}}";
        let out = fill(t, |name| match name {
            "client_ip" => Some(escape_html("<script>{{message}}</script>")),
            "message" => Some("M".into()),
            "request_id" => Some("R".into()),
            _ => None,
        });
        assert_eq!(
            out,
            "<p>&lt;script&gt;{{message}}&lt;/script&gt;</p><p>M</p>{{unknown}}{{ R"
        );
    }
}
