//! Logs: JSON lines on stdout (or text for people), one `decision` event per
//! request, a `login_blocked` event for every blocked login attempt.
//!
//! Every field name is written once, here, and listed in [`fields`] and in
//! docs/logs.md. Field names follow OpenTelemetry's HTTP semantic conventions
//! where one exists. What is never logged: query strings, cookies,
//! `Authorization`, bodies, form fields (console data is personal data).

pub mod json;
pub mod metrics;
pub mod writer;

use std::time::Duration;

use tracing::Level;
pub use tracing_subscriber::fmt::writer::BoxMakeWriter;

use crate::engine::facts::Via;
use crate::engine::{Action, ClientText, Decision};
use crate::geo::Facts;
use crate::policy::server::AllowedLogLevel;

/// Stable field names of the `decision` and `login_blocked` events.
pub mod fields {
    /// Each name once: the constant, and its key as the decision line
    /// writes it (`,"name":`, in [`keyed`]), so that a line is written
    /// with one copy a key.
    macro_rules! names {
        ($($(#[$doc:meta])* $konst:ident = $name:literal;)*) => {
            $($(#[$doc])* pub const $konst: &str = $name;)*
            /// The keys of the decision line: `,"name":`.
            pub mod keyed {
                $(pub const $konst: &str = concat!(",\"", $name, "\":");)*
            }
        };
    }
    names! {
        EVENT = "event";
        REQUEST_ID = "request_id";
        CLIENT_ADDRESS = "client.address";
        CLIENT_SOURCE = "client.source";
        PEER_ADDRESS = "network.peer.address";
        METHOD = "http.request.method";
        URL_PATH = "url.path";
        URL_SCHEME = "url.scheme";
        SERVER_ADDRESS = "server.address";
        STATUS = "http.response.status_code";
        PROTOCOL_VERSION = "network.protocol.version";
        USER_AGENT = "user_agent.original";
        RULE = "rule";
        ACTION = "action";
        REASON = "reason";
        REASON_CODE = "reason_code";
        NETWORK = "network";
        LOGIN = "login";
        ENFORCED = "enforced";
        LOGIN_OUTCOME = "login.outcome";
        LOGIN_ACCOUNT = "login.account";
        /// The group of accounts (`accounts:`) the deciding rule matched.
        ACCOUNT_GROUP = "account.group";
        /// With `identity:`: `verified`, `missing`, or why it is not believed.
        IDENTITY_STATE = "identity.state";
        /// The verified identity's subject, as a keyed hash.
        IDENTITY_SUBJECT = "identity.subject_hash";
        IDENTITY_EMAIL_DOMAIN = "identity.email_domain";
        /// Only with `identity.log_email: true`.
        IDENTITY_EMAIL = "identity.email";
        /// The group the deciding rule's `who:` matched.
        IDENTITY_GROUP = "identity.group";
        DURATION_MS = "duration_ms";
        /// GeoIP facts: on denials, and on allowed requests with `log_geo_on_allow`.
        GEO_COUNTRY = "geo.country.iso_code";
        ASN = "network.asn";
        AS_ORG = "network.as_org";
        CONNECTION_TYPE = "network.connection_type";
        ANONYMOUS = "network.anonymous";
        VIA = "network.via";
        /// Report-only: a report-only rule's would-be denial (`ENFORCED` says
        /// whether the decision was applied).
        WOULD_DENY = "would_deny";
        REPORT_RULE = "report_rule";
    }

    /// Every field of a `decision` event.
    pub const DECISION: &[&str] = &[
        EVENT,
        REQUEST_ID,
        CLIENT_ADDRESS,
        CLIENT_SOURCE,
        PEER_ADDRESS,
        METHOD,
        URL_PATH,
        URL_SCHEME,
        SERVER_ADDRESS,
        STATUS,
        PROTOCOL_VERSION,
        USER_AGENT,
        RULE,
        ACTION,
        REASON,
        REASON_CODE,
        NETWORK,
        LOGIN,
        DURATION_MS,
        ENFORCED,
    ];
}

/// Longest user agent logged; longer ones are cut (they are free text sent
/// by the client).
pub const MAX_USER_AGENT: usize = 256;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Json,
    Text,
}

/// Where `decision` lines go directly when logs are JSON lines through the
/// batch writer: the one line per request is written field by field into a
/// per-thread buffer and appended to the writer, without the `tracing`
/// dispatch (a third of a line's cost, measured with callgrind; see
/// docs/benchmarks.md). Same fields, same order, same formatter as every
/// other event. Unset (tests, benchmarks, text logs): through `tracing`.
static DECISION_SINK: std::sync::OnceLock<writer::BatchWriter> = std::sync::OnceLock::new();

/// Installs the global subscriber writing to stdout through a background
/// thread ([`writer`]), so that a slow stdout never blocks a request. Keep
/// the guard alive: dropping it writes out what is buffered.
pub fn init(format: LogFormat) -> Option<writer::LogGuard> {
    let (make_writer, guard) = match writer::batch_writer(stdout_writer()) {
        Ok((w, guard)) => {
            if format == LogFormat::Json {
                let _ = DECISION_SINK.set(w.clone());
            }
            (BoxMakeWriter::new(w), Some(guard))
        }
        // No thread to be had: write directly (a line at a time).
        Err(_) => (BoxMakeWriter::new(std::io::stdout), None),
    };
    // Only fails if a subscriber is already installed (tests, the demo).
    let _ = tracing::subscriber::set_global_default(subscriber(format, make_writer));
    guard
}

/// The subscriber `init` installs, writing lines to `make_writer` (the
/// benchmarks give it a sink).
pub fn subscriber(
    format: LogFormat,
    make_writer: BoxMakeWriter,
) -> Box<dyn tracing::Subscriber + Send + Sync> {
    let builder = tracing_subscriber::fmt()
        .with_writer(make_writer)
        .with_target(false)
        .with_max_level(Level::INFO);
    match format {
        // Fields are written straight into the line (no serde_json values).
        LogFormat::Json => Box::new(builder.event_format(json::JsonLines).finish()),
        LogFormat::Text => Box::new(builder.with_ansi(false).finish()),
    }
}

/// Stdout's file descriptor as a plain file (batches are written whole, so
/// no further buffering); `Stdout` itself if it cannot be duplicated.
fn stdout_writer() -> Box<dyn std::io::Write + Send> {
    use std::os::fd::AsFd;
    match std::io::stdout().as_fd().try_clone_to_owned() {
        Ok(fd) => Box::new(std::fs::File::from(fd)),
        Err(_) => Box::new(std::io::stdout()),
    }
}

/// What the decision log line says of a request besides the decision.
pub struct RequestLog<'a> {
    pub request_id: &'a str,
    pub peer: std::net::IpAddr,
    pub method: &'a str,
    /// The normalized path (or, for a rejected path, the path as received).
    pub path: &'a str,
    pub scheme: &'a str,
    pub host: &'a str,
    pub version: &'a str,
    pub user_agent: &'a str,
    pub status: u16,
    pub duration: Duration,
    /// On a login route that forwarded or refused a sign-in: `failed`,
    /// `succeeded`, `unknown` (read from the console's answer), or
    /// `locked_out` (429 from netwarden).
    pub login_outcome: Option<&'static str>,
    /// A sign-in whose rule reads the account: `read`, or why not.
    pub login_account: Option<&'static str>,
    /// With `identity:`: who the client is, as far as logs may say.
    pub identity: Option<IdentityLog<'a>>,
}

/// What the decision line says of the client's identity: never the
/// subject itself, the e-mail only when the policy allows it.
#[derive(Clone, Copy, Debug, Default)]
pub struct IdentityLog<'a> {
    /// `verified`, `missing`, or the reason it is not believed.
    pub state: &'static str,
    pub subject_hash: Option<&'a str>,
    pub email_domain: Option<&'a str>,
    pub email: Option<&'a str>,
}

/// `s` cut to at most `max` bytes, on a character boundary.
/// Longest `url.path` logged: an attacker's 64 KiB path must not make
/// every denial a 64 KiB log line (the log writer is shared by everyone).
pub const MAX_LOGGED_PATH: usize = 1024;
/// Longest `server.address` logged: a DNS name is at most 253 bytes.
pub const MAX_LOGGED_HOST: usize = 255;
/// Longest `http.request.method` logged (and alerted): the registered
/// methods are at most 17 bytes (`UPDATEREDIRECTREF`); an extension
/// method of 64 KiB must not ride every log line and alert (the red-team
/// review of issue 28).
pub const MAX_LOGGED_METHOD: usize = 32;

/// `s` cut at `max` bytes (on a character boundary) with a marker that says
/// so and how long it was: `/aaa…[cut: 70000 bytes]`. Borrowed when short.
pub fn capped(s: &str, max: usize) -> std::borrow::Cow<'_, str> {
    if s.len() <= max {
        return std::borrow::Cow::Borrowed(s);
    }
    std::borrow::Cow::Owned(format!("{}…[cut: {} bytes]", cut(s, max), s.len()))
}

/// A header value as text for the log: visible ASCII as it is; any other
/// byte (obs-text, RFC 9110 §5.5) written `\xNN`, so that a non-ASCII
/// User-Agent is seen, not logged as empty. Borrowed when plain ASCII.
pub fn header_text(b: &[u8]) -> std::borrow::Cow<'_, str> {
    if let Ok(s) = std::str::from_utf8(b)
        && s.bytes().all(|c| (0x20..0x7f).contains(&c) || c == b'\t')
    {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(b.len() * 2);
    for &c in b {
        if (0x20..0x7f).contains(&c) {
            out.push(char::from(c));
        } else {
            out.push_str("\\x");
            out.push(char::from(b"0123456789abcdef"[usize::from(c >> 4)]));
            out.push(char::from(b"0123456789abcdef"[usize::from(c & 0xf)]));
        }
    }
    std::borrow::Cow::Owned(out)
}

pub fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The GeoIP fields of the `tracing` events, from the known facts.
struct GeoFields<'a> {
    country: Option<String>,
    asn: Option<u32>,
    as_org: Option<&'a str>,
    connection_type: Option<&'static str>,
    anonymous: Option<String>,
}

impl<'a> GeoFields<'a> {
    fn new(geo: Option<&'a Facts>) -> Self {
        GeoFields {
            country: geo.and_then(|g| g.country).map(|c| c.to_string()),
            asn: geo.and_then(|g| g.asn),
            as_org: geo.and_then(|g| g.as_org.as_deref()),
            connection_type: geo.and_then(|g| g.connection_type),
            anonymous: geo
                .and_then(|g| g.anonymous)
                .map(|a| a.names().collect::<Vec<_>>().join(","))
                .filter(|a| !a.is_empty()),
        }
    }
}

/// Emits the `decision` event, and `login_blocked` for a blocked login.
/// `geo`: the client's known GeoIP facts, when they are to be logged.
pub fn log_decision(
    d: &Decision<'_, '_>,
    r: &RequestLog<'_>,
    geo: Option<&Facts>,
    allowed_level: AllowedLogLevel,
) {
    let reason = d.explanation();
    if let Some(sink) = DECISION_SINK.get() {
        // Allowed requests at debug: below the subscriber's level.
        if !(d.action == Action::Allow && allowed_level == AllowedLogLevel::Debug) {
            write_decision(sink, d, r, geo, &reason);
        }
        login_blocked(d, r, geo);
        return;
    }
    let ua = cut(r.user_agent, MAX_USER_AGENT);
    let GeoFields {
        country,
        asn,
        as_org,
        connection_type,
        anonymous,
    } = GeoFields::new(geo);
    let via = d.via.map(|v| v.to_string());
    let client = ClientText(&d.client);
    let peer = crate::engine::client::IpText::new(r.peer);
    let ms = r.duration.as_secs_f64() * 1000.0;
    macro_rules! decision_event {
        ($level:expr) => {
            tracing::event!(
                $level,
                event = "decision",
                request_id = r.request_id,
                client.address = %client,
                client.source = d.client.derivation.kind(),
                network.peer.address = %peer,
                http.request.method = r.method,
                url.path = r.path,
                url.scheme = r.scheme,
                server.address = r.host,
                http.response.status_code = r.status,
                network.protocol.version = r.version,
                user_agent.original = ua,
                rule = d.rule_name(),
                action = d.action.as_str(),
                reason = %reason,
                reason_code = d.reason.code(),
                network = d.network.unwrap_or(""),
                login = d.login,
                duration_ms = ms,
                network.via = via.as_deref(),
                enforced = d.enforced,
                login.outcome = r.login_outcome,
                login.account = r.login_account,
                account.group = d.account_group,
                identity.state = r.identity.map(|i| i.state),
                identity.subject_hash = r.identity.and_then(|i| i.subject_hash),
                identity.email_domain = r.identity.and_then(|i| i.email_domain),
                identity.email = r.identity.and_then(|i| i.email),
                identity.group = d.identity_group,
                would_deny = d.report.is_some().then_some(true),
                report_rule = d.report.map(|r| r.rule.name.as_str()),
                geo.country.iso_code = country.as_deref(),
                network.asn = asn,
                network.as_org = as_org,
                network.connection_type = connection_type,
                network.anonymous = anonymous.as_deref(),
                "decision"
            )
        };
    }
    match (d.action, allowed_level) {
        (Action::Allow, AllowedLogLevel::Debug) => decision_event!(Level::DEBUG),
        _ => decision_event!(Level::INFO),
    }
    login_blocked(d, r, geo);
}

/// The `decision` line written straight to the log writer: the fields of
/// the `tracing` event in `log_decision`, in the same order. `serve` calls
/// it through [`log_decision`]; public for the benchmark.
pub fn write_decision(
    sink: &writer::BatchWriter,
    d: &Decision<'_, '_>,
    r: &RequestLog<'_>,
    geo: Option<&Facts>,
    reason: &dyn std::fmt::Display,
) {
    use fields::keyed as k;
    json::with_line(|out| {
        let mut l = json::Line::begin(out, std::time::SystemTime::now(), Level::INFO);
        l.fixed(",\"message\":\"decision\",\"event\":\"decision\"");
        l.word(k::REQUEST_ID, r.request_id);
        // Usually the client is the peer: its text is made once.
        let peer = crate::engine::client::IpText::new(r.peer);
        match d.client.ip {
            Some(ip) if ip == r.peer => l.word(k::CLIENT_ADDRESS, peer.as_str()),
            Some(ip) => l.word(
                k::CLIENT_ADDRESS,
                crate::engine::client::IpText::new(ip).as_str(),
            ),
            None => l.word(k::CLIENT_ADDRESS, "unknown"),
        }
        l.word(k::CLIENT_SOURCE, d.client.derivation.kind());
        l.word(k::PEER_ADDRESS, peer.as_str());
        l.text(k::METHOD, r.method);
        l.text(k::URL_PATH, r.path);
        l.word(k::URL_SCHEME, r.scheme);
        l.text(k::SERVER_ADDRESS, r.host);
        l.number(k::STATUS, u64::from(r.status));
        l.word(k::PROTOCOL_VERSION, r.version);
        l.text(k::USER_AGENT, cut(r.user_agent, MAX_USER_AGENT));
        // From `rule` to `login`: the same text for every request a rule
        // lets in from the same client through the same network (every
        // request of a keep-alive connection, most of them): kept per
        // thread, written again only when what it says changes.
        let repeats = (d.reason == crate::engine::Reason::InAllowedNetwork).then(|| Decided {
            client: d.client.ip,
            action: d.action,
            rule: d.rule_name(),
            network: d.network.unwrap_or(""),
            via: d.via,
            login: d.login,
        });
        decided_run(&mut l, repeats.as_ref(), |l| {
            l.word(k::RULE, d.rule_name());
            l.word(k::ACTION, d.action.as_str());
            if d.explanation_is_plain() {
                l.words(k::REASON, |w| crate::engine::explain_into(d, w));
            } else {
                l.display(fields::REASON, reason);
            }
            l.word(k::REASON_CODE, d.reason.code());
            l.word(k::NETWORK, d.network.unwrap_or(""));
            l.flag(k::LOGIN, d.login);
        });
        l.millis(k::DURATION_MS, r.duration);
        if let Some(v) = d.via {
            l.word(k::VIA, v.name());
        }
        l.flag(k::ENFORCED, d.enforced);
        if let Some(o) = r.login_outcome {
            l.word(k::LOGIN_OUTCOME, o);
        }
        if let Some(a) = r.login_account {
            l.word(k::LOGIN_ACCOUNT, a);
        }
        if let Some(g) = d.account_group {
            l.word(k::ACCOUNT_GROUP, g);
        }
        if let Some(i) = r.identity {
            l.text(k::IDENTITY_STATE, i.state);
            for (key, v) in [
                (k::IDENTITY_SUBJECT, i.subject_hash),
                (k::IDENTITY_EMAIL_DOMAIN, i.email_domain),
                (k::IDENTITY_EMAIL, i.email),
            ] {
                if let Some(v) = v {
                    l.text(key, v);
                }
            }
        }
        if let Some(g) = d.identity_group {
            l.word(k::IDENTITY_GROUP, g);
        }
        if let Some(hit) = d.report {
            l.flag(k::WOULD_DENY, true);
            l.word(k::REPORT_RULE, &hit.rule.name);
        }
        if let Some(g) = geo {
            if let Some(c) = g.country {
                l.display(fields::GEO_COUNTRY, &c);
            }
            if let Some(n) = g.asn {
                l.number(k::ASN, u64::from(n));
            }
            if let Some(o) = &g.as_org {
                l.text(k::AS_ORG, o);
            }
            if let Some(t) = g.connection_type {
                l.text(k::CONNECTION_TYPE, t);
            }
            if let Some(a) = g.anonymous {
                let names = a.names().collect::<Vec<_>>().join(",");
                if !names.is_empty() {
                    l.text(k::ANONYMOUS, &names);
                }
            }
        }
        sink.write_line(l.end().as_bytes());
    });
}

/// What the decision line's run from `rule` to `login` says of an allowed
/// request ([`decided_run`]): all of it, compared by value (a reload's
/// rule at a freed rule's address is not the same rule).
#[derive(Clone, Copy, PartialEq, Eq)]
struct Decided<'a> {
    client: Option<std::net::IpAddr>,
    action: Action,
    rule: &'a str,
    network: &'a str,
    via: Option<Via>,
    login: bool,
}

/// [`Decided`], kept.
type KeptDecided = (
    Option<std::net::IpAddr>,
    Action,
    Box<str>,
    Box<str>,
    Option<Via>,
    bool,
);

impl Decided<'_> {
    fn kept(&self) -> KeptDecided {
        (
            self.client,
            self.action,
            self.rule.into(),
            self.network.into(),
            self.via,
            self.login,
        )
    }

    fn is(&self, k: &KeptDecided) -> bool {
        self.client == k.0
            && self.action == k.1
            && self.rule == &*k.2
            && self.network == &*k.3
            && self.via == k.4
            && self.login == k.5
    }
}

/// Writes a run of fields with `write`, or, when `key` says it is the run
/// this thread wrote last, copies that text (it says the same).
fn decided_run(
    l: &mut json::Line<'_>,
    key: Option<&Decided<'_>>,
    write: impl FnOnce(&mut json::Line<'_>),
) {
    std::thread_local! {
        static KEPT: std::cell::RefCell<Option<(KeptDecided, String)>> =
            const { std::cell::RefCell::new(None) };
    }
    let Some(key) = key else {
        write(l);
        return;
    };
    let copied = KEPT.with(|kept| match kept.try_borrow() {
        Ok(kept) => match &*kept {
            Some((k, text)) if key.is(k) => {
                l.fixed_text(text);
                true
            }
            _ => false,
        },
        Err(_) => false,
    });
    if copied {
        return;
    }
    let start = l.mark();
    write(l);
    let text = l.since(start).to_owned();
    KEPT.with(|kept| {
        if let Ok(mut kept) = kept.try_borrow_mut() {
            *kept = Some((key.kept(), text));
        }
    });
}

/// The `login_blocked` event for a blocked login, or one a report-only rule
/// would have blocked: the line alerting keys on.
fn login_blocked(d: &Decision<'_, '_>, r: &RequestLog<'_>, geo: Option<&Facts>) {
    // A blocked login (enforced, or not in a report-only policy), or one a
    // report-only rule would have blocked: the line alerting keys on.
    let would_be = d.would_be();
    let blocked = if d.is_blocked_login() {
        Some(d)
    } else {
        would_be.as_ref().filter(|w| w.login)
    };
    if let Some(b) = blocked {
        let reason = b.explanation();
        let client = ClientText(&d.client);
        let peer = crate::engine::client::IpText::new(r.peer);
        let ua = cut(r.user_agent, MAX_USER_AGENT);
        let GeoFields {
            country,
            asn,
            as_org,
            connection_type,
            anonymous,
        } = GeoFields::new(geo);
        tracing::warn!(
            event = "login_blocked",
            request_id = r.request_id,
            client.address = %client,
            client.source = d.client.derivation.kind(),
            network.peer.address = %peer,
            http.request.method = r.method,
            url.path = r.path,
            server.address = r.host,
            user_agent.original = ua,
            rule = b.rule_name(),
            reason = %reason,
            enforced = b.enforced,
            geo.country.iso_code = country.as_deref(),
            network.asn = asn,
            network.as_org = as_org,
            network.connection_type = connection_type,
            network.anonymous = anonymous.as_deref(),
            "blocked login attempt"
        );
    }
}

/// Log capture for this module's tests.
#[cfg(test)]
pub(crate) mod test_support {
    /// Shared memory to write log lines into.
    #[derive(Clone, Default)]
    pub struct Buf(pub std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("lock").extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use test_support::Buf;

    fn lines(buf: &Buf) -> Vec<serde_json::Map<String, serde_json::Value>> {
        let text = String::from_utf8(buf.0.lock().expect("lock").clone()).expect("utf-8");
        text.lines()
            .map(|l| {
                let serde_json::Value::Object(mut m) = serde_json::from_str(l).expect("JSON line")
                else {
                    panic!("not an object: {l}")
                };
                m.remove("timestamp");
                m
            })
            .collect()
    }

    /// The run from `rule` to `login` is kept per thread and copied when
    /// the next allowed request repeats it: every line still says its own
    /// client, rule and network, however they alternate, and the copy is
    /// the text the fields would have written.
    #[test]
    fn a_kept_run_is_copied_only_when_it_says_the_same() {
        let policy = crate::policy::load_str(
            "version: 1\nnetworks:\n  office: [203.0.113.0/24]\n  vpn: [198.51.100.0/24]\nrules:\n  - { name: admin, paths: [/admin], allow_from: [vpn] }\n  - { name: console, allow_from: [office, vpn] }\n",
            std::path::Path::new("p.yaml"),
        )
        .expect("valid")
        .policy;
        let headers = http::HeaderMap::new();
        let decide = |peer: std::net::IpAddr, path: &'static str| {
            let facts = crate::engine::RequestFacts {
                client: crate::engine::ClientSource::Peer {
                    peer,
                    headers: &headers,
                },
                method: "GET",
                host: Ok(Some("console.test")),
                path,
                now: jiff::Timestamp::UNIX_EPOCH,
                account: crate::engine::AccountFact::Unread,
                identity: crate::engine::who::IdentityFact::Missing,
            };
            crate::engine::decide(policy.ruleset(), &facts)
        };
        let office: std::net::IpAddr = "203.0.113.7".parse().expect("ip");
        let office2: std::net::IpAddr = "203.0.113.8".parse().expect("ip");
        let vpn: std::net::IpAddr = "198.51.100.7".parse().expect("ip");
        let asked = [
            (office, "/x", "console", "office"),
            (office, "/x", "console", "office"),
            (office2, "/x", "console", "office"),
            (vpn, "/x", "console", "vpn"),
            (vpn, "/admin", "admin", "vpn"),
            (vpn, "/admin", "admin", "vpn"),
            (office, "/x", "console", "office"),
        ];
        let buf = Buf::default();
        let (w, guard) = writer::batch_writer(Box::new(buf.clone())).expect("writer");
        for (peer, path, _, _) in asked {
            let d = decide(peer, path);
            let r = RequestLog {
                request_id: "0123456789abcdef",
                peer,
                method: "GET",
                path,
                scheme: "http",
                host: "console.test",
                version: "1.1",
                user_agent: "ua",
                status: 200,
                duration: Duration::from_micros(1),
                login_outcome: None,
                login_account: None,
                identity: None,
            };
            write_decision(&w, &d, &r, None, &d.explanation());
        }
        drop(guard);
        let got = lines(&buf);
        assert_eq!(got.len(), asked.len());
        for (line, (peer, _, rule, network)) in got.iter().zip(asked) {
            assert_eq!(line["rule"], rule);
            assert_eq!(line["network"], network);
            assert_eq!(line["action"], "allow");
            assert_eq!(
                line["reason"],
                format!("client {peer} is in network '{network}' allowed by rule '{rule}'")
            );
        }
    }

    /// The direct `decision` line and the `tracing` one carry the same
    /// fields, in the same order, with the same values.
    #[test]
    fn the_direct_decision_line_is_the_tracing_line() {
        let policy = crate::policy::load_str(
            "version: 1\nnetworks:\n  office: [203.0.113.0/24]\nrules:\n  - { name: sso, paths: [/sso], mode: report, allow_from: [office] }\n  - { name: all, action: allow }\n",
            std::path::Path::new("p.yaml"),
        )
        .expect("valid")
        .policy;
        let headers = http::HeaderMap::new();
        let peer: std::net::IpAddr = "192.0.2.9".parse().expect("ip");
        let facts = crate::engine::RequestFacts {
            client: crate::engine::ClientSource::Peer {
                peer,
                headers: &headers,
            },
            method: "GET",
            host: Ok(Some("console.test")),
            path: "/sso",
            now: jiff::Timestamp::UNIX_EPOCH,
            account: crate::engine::AccountFact::Unread,
            identity: crate::engine::who::IdentityFact::Missing,
        };
        let d = crate::engine::decide(policy.ruleset(), &facts);
        assert!(d.report.is_some(), "the report-only rule would deny");
        let geo = Facts {
            country: crate::geo::Country::parse("NL"),
            asn: Some(64500),
            as_org: Some("Example \"Net\"".into()),
            connection_type: Some("Cable/DSL"),
            anonymous: None,
        };
        let r = RequestLog {
            request_id: "0123456789abcdef",
            peer,
            method: "GET",
            path: "/sso",
            scheme: "http",
            host: "console.test",
            version: "1.1",
            user_agent: "curl/8 \"quoted\"",
            status: 200,
            duration: Duration::from_micros(1234),
            login_outcome: None,
            login_account: None,
            identity: None,
        };

        let direct = Buf::default();
        let (w, guard) = writer::batch_writer(Box::new(direct.clone())).expect("writer");
        write_decision(&w, &d, &r, Some(&geo), &d.explanation());
        drop(guard);

        let traced = Buf::default();
        let out = traced.clone();
        let sub = subscriber(LogFormat::Json, BoxMakeWriter::new(move || out.clone()));
        tracing::subscriber::with_default(sub, || {
            log_decision(&d, &r, Some(&geo), AllowedLogLevel::Info);
        });
        let (direct_buf, traced_buf) = (direct.clone(), traced.clone());
        let (direct, traced) = (lines(&direct), lines(&traced));
        assert_eq!(direct.len(), 1);
        let decision = traced
            .iter()
            .find(|m| m["event"] == "decision")
            .expect("a traced decision line");
        assert_eq!(&direct[0], decision);
        // Field order too: the raw lines are equal after the timestamp.
        let raw = |b: &Buf| -> Vec<String> {
            String::from_utf8(b.0.lock().expect("lock").clone())
                .expect("utf-8")
                .lines()
                .filter(|l| l.contains("\"event\":\"decision\""))
                .map(|l| l.split_once("\",\"level\"").expect("level").1.to_string())
                .collect()
        };
        assert_eq!(raw(&direct_buf), raw(&traced_buf));
        assert_eq!(direct[0]["would_deny"], true);
        assert_eq!(direct[0]["network.as_org"], "Example \"Net\"");
        for f in fields::DECISION {
            assert!(direct[0].contains_key(*f), "{f}");
        }
    }

    #[test]
    fn user_agent_is_cut_on_a_char_boundary() {
        let ua = "é".repeat(200);
        let c = cut(&ua, MAX_USER_AGENT);
        assert!(c.len() <= MAX_USER_AGENT && c.chars().all(|ch| ch == 'é'));
        assert_eq!(cut("curl/8", MAX_USER_AGENT), "curl/8");
    }

    #[test]
    fn long_values_are_capped_with_a_marker_that_says_so() {
        assert!(matches!(
            capped("/short", 10),
            std::borrow::Cow::Borrowed("/short")
        ));
        let long = format!("/{}", "a".repeat(2999));
        let c = capped(&long, MAX_LOGGED_PATH);
        assert!(c.ends_with("…[cut: 3000 bytes]"), "{c}");
        assert!(c.starts_with(&long[..MAX_LOGGED_PATH]));
        assert_eq!(c.len(), MAX_LOGGED_PATH + "…[cut: 3000 bytes]".len());
    }

    #[test]
    fn non_ascii_header_bytes_are_logged_escaped() {
        assert!(matches!(
            header_text(b"curl/8.5"),
            std::borrow::Cow::Borrowed("curl/8.5")
        ));
        assert_eq!(
            header_text("Mozilla/5.0 (日本)".as_bytes()),
            "Mozilla/5.0 (\\xe6\\x97\\xa5\\xe6\\x9c\\xac)"
        );
        assert_eq!(header_text(b"a\x00\xffb"), "a\\x00\\xffb");
    }
}
