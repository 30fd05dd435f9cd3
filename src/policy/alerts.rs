//! The `alerts:` section: where alerts on blocked login attempts go and how
//! attempts are aggregated. Secrets (webhook URLs, tokens, signing keys) are
//! never in the policy: a sink names the environment variables that hold
//! them, and `serve` / `alert-test` read them at startup.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::compile::Cx;
use super::pages::Lang;
use super::raw::{RawAlerts, RawSink, S};

/// Defaults, each with the reason for its value.
pub mod defaults {
    use std::time::Duration;

    /// The runbooks that come with netwarden (docs/operations.md), where
    /// no company wiki is named: each alert links its section.
    pub const RUNBOOK_URL: &str = "docs/operations.md";

    /// The default: long enough to fold a password-spraying run
    /// into one summary, short enough that the summary is still news.
    pub const WINDOW: Duration = Duration::from_secs(5 * 60);
    /// At most this many alerts (first attempts and summaries) per
    /// `STORM_PER`; beyond it, one storm summary. A pager that rings ten
    /// times a minute is already a storm.
    pub const STORM_MAX_ALERTS: u32 = 10;
    pub const STORM_PER: Duration = Duration::from_secs(60);
    /// Attempts waiting for the aggregator, and alerts waiting per sink. An
    /// attempt is ~1 KiB, so the queues stay under a few MiB when full.
    pub const QUEUE: usize = 1000;
    /// One delivery call: webhook receivers answer in milliseconds; Slack's
    /// documented budget is 3 s.
    pub const TIMEOUT: Duration = Duration::from_secs(5);
    /// Retrying stops after this; the alert is counted as given up.
    pub const GIVE_UP_AFTER: Duration = Duration::from_secs(5 * 60);
    /// On SIGTERM, pending alerts get this long to be delivered; kept under
    /// Kubernetes' default 30 s grace period together with the drain.
    pub const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);
    /// Header of the webhook's HMAC-SHA256 signature.
    pub const SIGNATURE_HEADER: &str = "x-netwarden-signature-256";
    /// Chatwork's API (`/v2/rooms/{room_id}/messages` is added).
    pub const CHATWORK_URL: &str = "https://api.chatwork.com";
    /// LINE WORKS' API (`/v1.0/bots/...` is added) and token endpoint.
    pub const LINE_WORKS_URL: &str = "https://www.worksapis.com";
    pub const LINE_WORKS_AUTH_URL: &str = "https://auth.worksmobile.com/oauth2/v2.0/token";
    /// PagerDuty's Events API v2 (the EU service's is
    /// https://events.eu.pagerduty.com/v2/enqueue).
    pub const PAGERDUTY_URL: &str = "https://events.pagerduty.com/v2/enqueue";
}

/// What attempts are grouped by.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AlertKey {
    /// The client address.
    #[default]
    Client,
    /// The client's /24 (IPv4) or /64 (IPv6).
    Subnet,
    /// The client's autonomous system (needs an ASN database; clients of
    /// unknown ASN are grouped by address).
    Asn,
}

impl AlertKey {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKey::Client => "client",
            AlertKey::Subnet => "subnet",
            AlertKey::Asn => "asn",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SinkKind {
    /// A generic JSON webhook, optionally signed with HMAC-SHA256.
    Webhook,
    /// A Slack-compatible incoming webhook (`{"text": ...}`).
    Slack,
    /// Prometheus Alertmanager's `POST /api/v2/alerts`.
    Alertmanager,
    /// Mail over SMTP (STARTTLS or implicit TLS, AUTH).
    Email,
    /// A Microsoft Teams Workflows webhook taking an Adaptive Card.
    Teams,
    /// Chatwork's `POST /v2/rooms/{room_id}/messages`.
    Chatwork,
    /// A LINE WORKS bot (Bot API 2.0, service-account JWT).
    LineWorks,
    /// PagerDuty Events API v2.
    PagerDuty,
}

impl SinkKind {
    /// Every kind's name, as the policy writes it.
    pub const NAMES: [&str; 8] = [
        "webhook",
        "slack",
        "alertmanager",
        "email",
        "teams",
        "chatwork",
        "line_works",
        "pagerduty",
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SinkKind::Webhook => "webhook",
            SinkKind::Slack => "slack",
            SinkKind::Alertmanager => "alertmanager",
            SinkKind::Email => "email",
            SinkKind::Teams => "teams",
            SinkKind::Chatwork => "chatwork",
            SinkKind::LineWorks => "line_works",
            SinkKind::PagerDuty => "pagerduty",
        }
    }

    pub fn parse(s: &str) -> Option<SinkKind> {
        Some(match s {
            "webhook" => SinkKind::Webhook,
            "slack" => SinkKind::Slack,
            "alertmanager" => SinkKind::Alertmanager,
            "email" => SinkKind::Email,
            "teams" => SinkKind::Teams,
            "chatwork" => SinkKind::Chatwork,
            "line_works" => SinkKind::LineWorks,
            "pagerduty" => SinkKind::PagerDuty,
            _ => return None,
        })
    }

    /// Whether the kind's URL is a public address (its secret travels
    /// apart), so `url:` may be written in the policy.
    fn url_is_public(self) -> bool {
        matches!(
            self,
            SinkKind::Alertmanager | SinkKind::Chatwork | SinkKind::LineWorks | SinkKind::PagerDuty
        )
    }

    /// The service's own address, when it has one.
    fn default_url(self) -> Option<&'static str> {
        match self {
            SinkKind::Chatwork => Some(defaults::CHATWORK_URL),
            SinkKind::LineWorks => Some(defaults::LINE_WORKS_URL),
            SinkKind::PagerDuty => Some(defaults::PAGERDUTY_URL),
            _ => None,
        }
    }

    /// Where the kind's secrets are named.
    fn secrets_help(self) -> &'static str {
        match self {
            SinkKind::PagerDuty => "its integration key is named by routing_key_env",
            SinkKind::LineWorks => {
                "its secrets are named by client_secret_env and private_key_env (or private_key_file)"
            }
            SinkKind::Email => "its login is named by username_env and password_env",
            _ => "its URL (url_env) is the secret",
        }
    }
}

/// An SMTP connection's security.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmtpTls {
    /// Plain connection, then `STARTTLS` (RFC 3207), required: a server
    /// that does not offer it gets no mail.
    StartTls,
    /// TLS from the first byte (RFC 8314, port 465).
    Implicit,
    /// Clear text, to a relay on this host only.
    None,
}

impl SmtpTls {
    pub fn default_port(self) -> u16 {
        match self {
            SmtpTls::StartTls => 587,
            SmtpTls::Implicit => 465,
            SmtpTls::None => 25,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SmtpTls::StartTls => "starttls",
            SmtpTls::Implicit => "implicit",
            SmtpTls::None => "none",
        }
    }
}

/// An email sink's server and addresses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EmailConfig {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    /// Variables holding the SMTP AUTH login (both or neither).
    pub username_env: Option<String>,
    pub password_env: Option<String>,
    /// `netwarden <netwarden@example.com>`: checked as a mailbox.
    pub from: String,
    pub to: Vec<String>,
}

/// Where a LINE WORKS bot writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LineWorksTarget {
    Channel(String),
    User(String),
}

/// Where a private key comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeySource {
    Env(String),
    File(PathBuf),
}

/// A LINE WORKS bot: its app's ids and where its secrets are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LineWorksConfig {
    pub bot_id: String,
    pub client_id: String,
    pub service_account: String,
    pub target: LineWorksTarget,
    pub client_secret_env: String,
    pub private_key: KeySource,
    /// The token endpoint.
    pub auth_url: String,
}

/// What one kind of sink needs beyond a URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SinkDetails {
    /// One POST to the URL (webhook, Slack, Alertmanager, Teams).
    Http,
    Chatwork {
        room_id: String,
    },
    PagerDuty {
        routing_key_env: String,
    },
    LineWorks(LineWorksConfig),
    Email(EmailConfig),
}

/// Where a sink's URL comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UrlSource {
    /// The name of an environment variable holding the URL.
    Env(String),
    /// Written in the policy (Alertmanager only: its URL is no secret).
    Literal(String),
}

/// One sink, as the policy names it. Secrets are names of variables.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SinkConfig {
    pub name: String,
    pub kind: SinkKind,
    /// Where it posts; `None` for mail.
    pub url: Option<UrlSource>,
    /// Variable holding the HMAC-SHA256 signing key (webhook).
    pub secret_env: Option<String>,
    /// Variable holding a bearer token (webhook, Alertmanager).
    pub token_env: Option<String>,
    pub signature_header: String,
    /// CA certificates (PEM) for an https sink, besides the system roots.
    pub ca: Option<PathBuf>,
    /// The language its alerts are written in (default: the pages' first
    /// language, else English).
    pub language: Lang,
    /// The IANA zone its times are written in (default UTC); checked.
    pub time_zone: String,
    pub details: SinkDetails,
}

/// `alerts.digest`: once a day, at `at` in `time_zone`, to `sinks`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DigestSettings {
    /// `HH:MM`, checked.
    pub at: String,
    /// An IANA zone, checked (default UTC).
    pub time_zone: String,
    pub sinks: Vec<String>,
}

/// The `alerts:` section, compiled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlertSettings {
    pub window: Duration,
    pub key: AlertKey,
    pub storm_max_alerts: u32,
    pub storm_per: Duration,
    pub queue: usize,
    pub timeout: Duration,
    pub give_up_after: Duration,
    pub flush_timeout: Duration,
    /// Alert on report-only would-be blocks too (marked as such).
    pub report_only: bool,
    /// Alert when an operator releases lockouts (`POST /lockouts/release`).
    pub on_release: bool,
    /// Where the runbooks are (docs/operations.md, or the company's copy);
    /// each alert links `<runbook_url>#<its kind's section>`.
    pub runbook_url: String,
    pub sinks: Vec<SinkConfig>,
    pub digest: Option<DigestSettings>,
}

impl Default for AlertSettings {
    fn default() -> Self {
        Self {
            window: defaults::WINDOW,
            key: AlertKey::Client,
            storm_max_alerts: defaults::STORM_MAX_ALERTS,
            storm_per: defaults::STORM_PER,
            queue: defaults::QUEUE,
            timeout: defaults::TIMEOUT,
            give_up_after: defaults::GIVE_UP_AFTER,
            flush_timeout: defaults::FLUSH_TIMEOUT,
            report_only: true,
            on_release: false,
            runbook_url: defaults::RUNBOOK_URL.to_string(),
            sinks: Vec::new(),
            digest: None,
        }
    }
}

/// `NETWARDEN_SLACK_URL`: what a POSIX shell accepts as a variable name.
fn is_env_name(s: &str) -> bool {
    let mut bytes = s.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Whether `s` looks like a secret value pasted where a variable name goes.
fn looks_like_a_value(s: &str) -> bool {
    s.contains("://") || s.contains('/') || s.len() > 64
}

impl Cx<'_, '_> {
    /// `lang`: the sinks' default language (the pages' first).
    pub(super) fn alerts(
        &mut self,
        raw: Option<&S<RawAlerts>>,
        base: &Path,
        lang: Lang,
    ) -> Option<AlertSettings> {
        let raw = raw?;
        let r = &raw.value;
        let mut out = AlertSettings {
            window: self.duration(r.window.as_ref(), defaults::WINDOW),
            timeout: self.duration(r.timeout.as_ref(), defaults::TIMEOUT),
            give_up_after: self.duration(r.give_up_after.as_ref(), defaults::GIVE_UP_AFTER),
            flush_timeout: self.duration(r.flush_timeout.as_ref(), defaults::FLUSH_TIMEOUT),
            report_only: r.report_only.unwrap_or(true),
            on_release: r.on_release.unwrap_or(false),
            ..AlertSettings::default()
        };
        if let Some(u) = &r.runbook_url {
            let ok = !u.value.is_empty()
                && u.value.len() <= 2048
                && !u.value.contains('#')
                && u.value.chars().all(|c| c.is_ascii_graphic());
            if ok {
                out.runbook_url = u.value.clone();
            } else {
                self.error(
                    &u.referenced,
                    format!("alerts.runbook_url '{}' is not a URL netwarden can link", u.value),
                    Some("give the runbooks' address without a #section, e.g. https://wiki.example.com/netwarden/operations".into()),
                );
            }
        }
        if let Some(k) = &r.key {
            out.key = match k.value.as_str() {
                "client" => AlertKey::Client,
                "subnet" => AlertKey::Subnet,
                "asn" => AlertKey::Asn,
                other => {
                    self.error(
                        &k.referenced,
                        format!("alert key '{other}' is not known"),
                        Some("use client (the address), subnet (its /24 or /64) or asn".into()),
                    );
                    AlertKey::Client
                }
            };
        }
        if let Some(storm) = &r.storm {
            let m = &storm.value.max_alerts;
            match u32::try_from(m.value) {
                Ok(n) if n > 0 => out.storm_max_alerts = n,
                _ => self.error(
                    &m.referenced,
                    format!("max_alerts {} is out of range", m.value),
                    Some("give a number of alerts from 1 up, for example 10".into()),
                ),
            }
            out.storm_per = self.duration(storm.value.per.as_ref(), defaults::STORM_PER);
        }
        if let Some(q) = &r.queue {
            match usize::try_from(q.value) {
                Ok(n) if (1..=1_000_000).contains(&n) => out.queue = n,
                _ => self.error(
                    &q.referenced,
                    format!("queue {} is out of range", q.value),
                    Some("give a queue length between 1 and 1000000".into()),
                ),
            }
            // The storm cap bounds what reaches the queues per interval;
            // a queue shorter than it drops alerts the cap lets through
            // (the fourth red-team review of issue 24).
            if out.queue < out.storm_max_alerts as usize {
                self.warn(
                    &q.referenced,
                    format!(
                        "queue {} is shorter than storm.max_alerts {}: a burst the storm cap lets through can be dropped at a slow sink",
                        out.queue, out.storm_max_alerts
                    ),
                    Some(format!(
                        "give a queue of at least {} (the default is 1000)",
                        out.storm_max_alerts
                    )),
                );
            }
        }
        if r.sinks.is_empty() {
            self.warn(
                &raw.referenced,
                "the alerts section names no sinks: blocked logins are only logged".into(),
                Some("add a sink under alerts.sinks, or remove the section".into()),
            );
        }
        let mut names: Vec<&str> = Vec::new();
        for sink in &r.sinks {
            if let Some(s) = self.sink(sink, base, lang) {
                if names.contains(&s.name.as_str()) {
                    self.error(
                        &sink.value.name.referenced,
                        format!("two sinks are named '{}'", s.name),
                        Some("give each sink its own name; it labels metrics".into()),
                    );
                }
                names.push(&sink.value.name.value);
                out.sinks.push(s);
            }
        }
        if let Some(d) = &r.digest {
            out.digest = self.digest(d, &out.sinks);
        }
        Some(out)
    }

    fn digest(
        &mut self,
        raw: &S<super::raw::RawDigest>,
        sinks: &[SinkConfig],
    ) -> Option<DigestSettings> {
        let d = &raw.value;
        let mut ok = true;
        if parse_at(&d.at.value).is_none() {
            self.error(
                &d.at.referenced,
                format!("alerts.digest.at '{}' is not a time of day", d.at.value),
                Some("write it as HH:MM on a 24-hour clock, e.g. at: \"09:00\"".into()),
            );
            ok = false;
        }
        let time_zone = self.alert_zone(d.time_zone.as_ref(), "alerts.digest");
        ok &= time_zone.is_some();
        if d.sinks.value.is_empty() {
            self.error(
                &d.sinks.referenced,
                "alerts.digest names no sinks".into(),
                Some("name the sinks that get it, e.g. sinks: [mail]".into()),
            );
            ok = false;
        }
        for name in &d.sinks.value {
            match sinks.iter().find(|s| s.name == name.value) {
                None => {
                    self.error(
                        &name.referenced,
                        format!("alerts.digest: no sink is named '{}'", name.value),
                        Some("name one of alerts.sinks".into()),
                    );
                    ok = false;
                }
                Some(s) if matches!(s.kind, SinkKind::Alertmanager | SinkKind::PagerDuty) => {
                    self.error(
                        &name.referenced,
                        format!(
                            "alerts.digest: sink '{}' ({}) does not take a digest",
                            s.name,
                            s.kind.as_str()
                        ),
                        Some(
                            "a digest is for people to read: send it by mail, chat or webhook"
                                .into(),
                        ),
                    );
                    ok = false;
                }
                Some(_) => {}
            }
        }
        ok.then(|| DigestSettings {
            at: d.at.value.trim().to_string(),
            time_zone: time_zone.unwrap_or_default(),
            sinks: d.sinks.value.iter().map(|s| s.value.clone()).collect(),
        })
    }

    pub(super) fn env_name(&mut self, v: &S<String>, key: &str) -> Option<String> {
        if is_env_name(&v.value) {
            return Some(v.value.clone());
        }
        // Never echo what may be the secret itself.
        if looks_like_a_value(&v.value) {
            self.error(
                &v.referenced,
                format!("{key} must name an environment variable, and this looks like the value itself"),
                Some(format!(
                    "put the value in an environment variable, write its name here, and rotate the secret if this file was shared; {key} takes letters, digits and '_'"
                )),
            );
        } else {
            // Not echoed either: it may be a secret pasted here (the
            // second red-team review of issue 28).
            self.error(
                &v.referenced,
                format!("{key} does not name an environment variable"),
                Some("use letters, digits and '_', not starting with a digit (NETWARDEN_SMTP_PASSWORD); if this was the secret itself, rotate it".into()),
            );
        }
        None
    }

    fn sink(&mut self, raw: &S<RawSink>, base: &Path, lang: Lang) -> Option<SinkConfig> {
        let s = &raw.value;
        self.check_name(&s.name, "sink");
        let Some(kind) = SinkKind::parse(&s.kind.value) else {
            self.error(
                &s.kind.referenced,
                format!("sink type '{}' is not known", s.kind.value),
                Some(format!("use one of {}", SinkKind::NAMES.join(", "))),
            );
            return None;
        };
        self.fields_of_other_kinds(s, kind);
        let url = self.sink_url(raw, kind)?;
        let secret_env = match &s.secret_env {
            Some(v) if kind != SinkKind::Webhook => {
                self.error(
                    &v.referenced,
                    format!("a {} sink is not signed", kind.as_str()),
                    Some("secret_env (HMAC signing) is for webhook sinks".into()),
                );
                None
            }
            Some(v) => self.env_name(v, "secret_env"),
            None => None,
        };
        let token_env = match &s.token_env {
            Some(v) if matches!(kind, SinkKind::Slack | SinkKind::Teams) => {
                self.error(
                    &v.referenced,
                    format!(
                        "a {} incoming webhook takes no token: its URL is the secret",
                        kind.as_str()
                    ),
                    Some("remove token_env".into()),
                );
                None
            }
            Some(v)
                if !matches!(
                    kind,
                    SinkKind::Webhook | SinkKind::Alertmanager | SinkKind::Chatwork
                ) =>
            {
                self.error(
                    &v.referenced,
                    format!("a {} sink takes no token_env", kind.as_str()),
                    Some(kind.secrets_help().into()),
                );
                None
            }
            Some(v) => self.env_name(v, "token_env"),
            None if kind == SinkKind::Chatwork => {
                self.error(
                    &raw.referenced,
                    format!("chatwork sink '{}' needs its API token", s.name.value),
                    Some("name the variable that holds it: token_env: NETWARDEN_CHATWORK_TOKEN (sent as X-ChatWorkToken)".into()),
                );
                None
            }
            None => None,
        };
        let signature_header = match &s.signature_header {
            Some(h) if secret_env.is_none() => {
                self.error(
                    &h.referenced,
                    "signature_header without secret_env".into(),
                    Some("name the signing key's variable with secret_env".into()),
                );
                defaults::SIGNATURE_HEADER.to_string()
            }
            Some(h) => match http::HeaderName::from_bytes(h.value.as_bytes()) {
                Ok(name) => name.as_str().to_string(),
                Err(_) => {
                    self.error(
                        &h.referenced,
                        format!("'{}' is not a header name", h.value),
                        Some("for example X-Signature-256".into()),
                    );
                    defaults::SIGNATURE_HEADER.to_string()
                }
            },
            None => defaults::SIGNATURE_HEADER.to_string(),
        };
        let language = match &s.language {
            Some(tag) => {
                match Lang::from_tag(&tag.value) {
                    Some(l) => l,
                    None => {
                        self.error(
                        &tag.referenced,
                        format!("sink '{}': language '{}' is not one netwarden's alerts are written in", s.name.value, tag.value),
                        Some("use ja or en".into()),
                    );
                        lang
                    }
                }
            }
            None => lang,
        };
        let time_zone = self
            .alert_zone(s.time_zone.as_ref(), &format!("sink '{}'", s.name.value))
            .unwrap_or_else(|| "UTC".into());
        let details = match kind {
            SinkKind::Email => SinkDetails::Email(self.email(raw, base)?),
            SinkKind::Chatwork => match &s.room_id {
                Some(r)
                    if !r.value.is_empty()
                        && r.value.bytes().all(|b| b.is_ascii_digit())
                        && r.value.len() <= 20 =>
                {
                    SinkDetails::Chatwork {
                        room_id: r.value.clone(),
                    }
                }
                Some(r) => {
                    self.error(
                        &r.referenced,
                        format!("room_id '{}' is not a Chatwork room id", r.value),
                        Some("give the number after #!rid in the room's address, e.g. room_id: \"123456789\"".into()),
                    );
                    return None;
                }
                None => {
                    self.error(
                        &raw.referenced,
                        format!("chatwork sink '{}' needs room_id", s.name.value),
                        Some("give the number after #!rid in the room's address, e.g. room_id: \"123456789\"".into()),
                    );
                    return None;
                }
            },
            SinkKind::PagerDuty => match &s.routing_key_env {
                Some(v) => SinkDetails::PagerDuty {
                    routing_key_env: self.env_name(v, "routing_key_env")?,
                },
                None => {
                    self.error(
                        &raw.referenced,
                        format!("pagerduty sink '{}' needs its integration key", s.name.value),
                        Some("name the variable that holds the Events API v2 integration (routing) key: routing_key_env: NETWARDEN_PAGERDUTY_KEY".into()),
                    );
                    return None;
                }
            },
            SinkKind::LineWorks => SinkDetails::LineWorks(self.line_works(raw, base)?),
            SinkKind::Webhook | SinkKind::Slack | SinkKind::Alertmanager | SinkKind::Teams => {
                SinkDetails::Http
            }
        };
        Some(SinkConfig {
            name: s.name.value.clone(),
            kind,
            url,
            secret_env,
            token_env,
            signature_header,
            ca: s.ca.as_ref().map(|p| base.join(&p.value)),
            language,
            time_zone,
            details,
        })
    }

    /// A checked IANA zone name (`UTC` when none is given); `None` (and an
    /// error) when it names no zone.
    fn alert_zone(&mut self, z: Option<&S<String>>, what: &str) -> Option<String> {
        let Some(z) = z else {
            return Some("UTC".into());
        };
        match crate::engine::time::zone(&z.value) {
            Ok(_) => Some(z.value.clone()),
            Err(message) => {
                self.error(&z.referenced, format!("{what}: time_zone: {message}"), None);
                None
            }
        }
    }

    /// Where a sink posts: a secret URL from `url_env`, or (for services
    /// whose address is public) `url:` or the service's own.
    fn sink_url(&mut self, raw: &S<RawSink>, kind: SinkKind) -> Option<Option<UrlSource>> {
        let s = &raw.value;
        let url = match (&s.url, &s.url_env) {
            (_, _) if kind == SinkKind::Email => {
                if let Some(u) = s.url.as_ref().or(s.url_env.as_ref()) {
                    self.error(
                        &u.referenced,
                        "an email sink has no URL".into(),
                        Some("name the mail server with smtp: host:port".into()),
                    );
                }
                return Some(None);
            }
            (Some(u), None) if kind.url_is_public() => UrlSource::Literal(u.value.clone()),
            (Some(u), _) => {
                self.error(
                    &u.referenced,
                    format!(
                        "a {} sink's URL is a secret and is not written in the policy",
                        kind.as_str()
                    ),
                    Some(
                        "put it in an environment variable and name that with url_env; rotate it if this file was shared"
                            .into(),
                    ),
                );
                return None;
            }
            (None, Some(e)) => UrlSource::Env(self.env_name(e, "url_env")?),
            (None, None) => match kind.default_url() {
                Some(u) => UrlSource::Literal(u.into()),
                None => {
                    self.error(
                        &raw.referenced,
                        format!("sink '{}' has no URL", s.name.value),
                        Some(match kind {
                            SinkKind::Alertmanager => {
                                "give url: http://alertmanager:9093 or url_env: NAME".into()
                            }
                            _ => {
                                "name the environment variable that holds it: url_env: NAME".into()
                            }
                        }),
                    );
                    return None;
                }
            },
        };
        if let UrlSource::Literal(u) = &url
            && let Err(e) = check_url(u)
        {
            self.error(
                &s.url.as_ref().map_or(raw.referenced, |u| u.referenced),
                e,
                Some("for example http://alertmanager:9093".into()),
            );
        }
        Some(Some(url))
    }

    /// A key given to a kind of sink that does not read it is an error:
    /// it would be silently ignored (a `to:` on a Slack sink, a `room_id`
    /// on a webhook).
    fn fields_of_other_kinds(&mut self, s: &RawSink, kind: SinkKind) {
        use SinkKind::{Chatwork, Email, LineWorks, PagerDuty};
        let loc = |v: Option<&S<String>>| v.map(|v| v.referenced);
        let given = [
            ("room_id", loc(s.room_id.as_ref()), &[Chatwork][..]),
            (
                "routing_key_env",
                loc(s.routing_key_env.as_ref()),
                &[PagerDuty][..],
            ),
            ("smtp", loc(s.smtp.as_ref()), &[Email][..]),
            ("tls", loc(s.tls.as_ref()), &[Email][..]),
            ("username_env", loc(s.username_env.as_ref()), &[Email][..]),
            ("password_env", loc(s.password_env.as_ref()), &[Email][..]),
            ("from", loc(s.from.as_ref()), &[Email][..]),
            ("to", s.to.as_ref().map(|v| v.referenced), &[Email][..]),
            ("bot_id", loc(s.bot_id.as_ref()), &[LineWorks][..]),
            ("channel_id", loc(s.channel_id.as_ref()), &[LineWorks][..]),
            ("user_id", loc(s.user_id.as_ref()), &[LineWorks][..]),
            ("client_id", loc(s.client_id.as_ref()), &[LineWorks][..]),
            (
                "service_account",
                loc(s.service_account.as_ref()),
                &[LineWorks][..],
            ),
            (
                "client_secret_env",
                loc(s.client_secret_env.as_ref()),
                &[LineWorks][..],
            ),
            (
                "private_key_env",
                loc(s.private_key_env.as_ref()),
                &[LineWorks][..],
            ),
            (
                "private_key_file",
                loc(s.private_key_file.as_ref()),
                &[LineWorks][..],
            ),
            ("auth_url", loc(s.auth_url.as_ref()), &[LineWorks][..]),
        ];
        for (key, at, kinds) in given {
            if let Some(at) = at
                && !kinds.contains(&kind)
            {
                let owners: Vec<&str> = kinds.iter().map(|k| k.as_str()).collect();
                self.error(
                    &at,
                    format!("a {} sink does not read '{key}'", kind.as_str()),
                    Some(format!(
                        "'{key}' is for {} sinks; remove it here",
                        owners.join(", ")
                    )),
                );
            }
        }
    }

    fn email(&mut self, raw: &S<RawSink>, base: &Path) -> Option<EmailConfig> {
        let s = &raw.value;
        let _ = base;
        let tls = match s.tls.as_ref().map(|t| t.value.as_str()) {
            None | Some("starttls") => SmtpTls::StartTls,
            Some("implicit") => SmtpTls::Implicit,
            Some("none") => SmtpTls::None,
            Some(other) => {
                let at = s.tls.as_ref().map_or(raw.referenced, |t| t.referenced);
                self.error(
                    &at,
                    format!("tls '{other}' is not known"),
                    Some("use starttls (port 587, the default), implicit (port 465) or none (a relay on this host only)".into()),
                );
                return None;
            }
        };
        let Some(server) = &s.smtp else {
            self.error(
                &raw.referenced,
                format!("email sink '{}' needs its mail server", s.name.value),
                Some("give smtp: smtp.example.com:587 (STARTTLS) or smtp.example.com:465 with tls: implicit".into()),
            );
            return None;
        };
        let Some((host, port)) = split_host_port(&server.value, tls.default_port()) else {
            self.error(
                &server.referenced,
                format!("smtp '{}' is not host:port", server.value),
                Some("for example smtp: smtp.example.com:587".into()),
            );
            return None;
        };
        if tls == SmtpTls::None && !is_loopback_host(&host) {
            self.error(
                &s.tls.as_ref().map_or(raw.referenced, |t| t.referenced),
                format!("tls: none sends mail (and any password) in clear text to {host}"),
                Some("tls: none is for a relay on this host (localhost, 127.0.0.1, ::1); use starttls or implicit".into()),
            );
            return None;
        }
        let username_env = s
            .username_env
            .as_ref()
            .and_then(|v| self.env_name(v, "username_env"));
        let password_env = s
            .password_env
            .as_ref()
            .and_then(|v| self.env_name(v, "password_env"));
        if username_env.is_some() != password_env.is_some() {
            self.error(
                &raw.referenced,
                format!("email sink '{}': username_env and password_env go together", s.name.value),
                Some("name both variables for SMTP AUTH, or neither for a relay that takes mail without it".into()),
            );
            return None;
        }
        if username_env.is_some() && tls == SmtpTls::None {
            self.error(
                &raw.referenced,
                "SMTP AUTH without TLS would send the password in clear text".into(),
                Some("use tls: starttls or implicit".into()),
            );
            return None;
        }
        let Some(from) = &s.from else {
            self.error(
                &raw.referenced,
                format!("email sink '{}' needs from", s.name.value),
                Some("for example from: \"netwarden <netwarden@example.com>\"".into()),
            );
            return None;
        };
        if let Err(e) = from.value.parse::<lettre::message::Mailbox>() {
            self.error(
                &from.referenced,
                format!("from '{}' is not a mail address: {e}", from.value),
                Some("for example from: \"netwarden <netwarden@example.com>\"".into()),
            );
            return None;
        }
        let to: Vec<String> = match &s.to {
            Some(list) if !list.value.is_empty() => {
                list.value.iter().map(|t| t.value.clone()).collect()
            }
            _ => {
                self.error(
                    &s.to.as_ref().map_or(raw.referenced, |t| t.referenced),
                    format!("email sink '{}' needs to: its recipients", s.name.value),
                    Some("for example to: [security-ops@example.com]".into()),
                );
                return None;
            }
        };
        let mut ok = true;
        for t in s.to.iter().flat_map(|l| &l.value) {
            if let Err(e) = t.value.parse::<lettre::message::Mailbox>() {
                self.error(
                    &t.referenced,
                    format!("to '{}' is not a mail address: {e}", t.value),
                    Some("for example security-ops@example.com".into()),
                );
                ok = false;
            }
        }
        ok.then(|| EmailConfig {
            host,
            port,
            tls,
            username_env,
            password_env,
            from: from.value.clone(),
            to,
        })
    }

    fn line_works(&mut self, raw: &S<RawSink>, base: &Path) -> Option<LineWorksConfig> {
        let s = &raw.value;
        let name = &s.name.value;
        let mut need = |v: Option<&S<String>>, key: &str, help: &str| match v {
            Some(v) if is_id(&v.value) => Some(v.value.clone()),
            Some(v) => {
                self.error(
                    &v.referenced,
                    format!("{key} '{}' is not an id LINE WORKS gives", v.value),
                    Some(help.into()),
                );
                None
            }
            None => {
                self.error(
                    &raw.referenced,
                    format!("line_works sink '{name}' needs {key}"),
                    Some(help.into()),
                );
                None
            }
        };
        let bot_id = need(
            s.bot_id.as_ref(),
            "bot_id",
            "the bot's id, from the Developer Console's Bot page",
        );
        let client_id = need(
            s.client_id.as_ref(),
            "client_id",
            "the app's Client ID, from the Developer Console's API 2.0 page",
        );
        let service_account = need(
            s.service_account.as_ref(),
            "service_account",
            "the app's Service Account, such as abcde.serviceaccount@example.com",
        );
        let target = match (&s.channel_id, &s.user_id) {
            (Some(c), None) if is_id(&c.value) => Some(LineWorksTarget::Channel(c.value.clone())),
            (None, Some(u)) if is_id(&u.value) => Some(LineWorksTarget::User(u.value.clone())),
            (Some(_), Some(u)) => {
                self.error(
                    &u.referenced,
                    "give channel_id or user_id, not both".into(),
                    Some("one sink posts to one place; add a second sink for the other".into()),
                );
                None
            }
            (c, u) => {
                let at = c
                    .as_ref()
                    .or(u.as_ref())
                    .map_or(raw.referenced, |v| v.referenced);
                self.error(
                    &at,
                    format!("line_works sink '{name}' needs channel_id or user_id"),
                    Some("the channel the bot is in (channel_id), or the member it writes to (user_id)".into()),
                );
                None
            }
        };
        let client_secret_env = match &s.client_secret_env {
            Some(v) => self.env_name(v, "client_secret_env"),
            None => {
                self.error(
                    &raw.referenced,
                    format!("line_works sink '{name}' needs client_secret_env"),
                    Some("name the variable that holds the app's Client Secret".into()),
                );
                None
            }
        };
        let key = match (&s.private_key_env, &s.private_key_file) {
            (Some(v), None) => self.env_name(v, "private_key_env").map(KeySource::Env),
            (None, Some(f)) => Some(KeySource::File(base.join(&f.value))),
            (Some(_), Some(f)) => {
                self.error(
                    &f.referenced,
                    "give private_key_env or private_key_file, not both".into(),
                    None,
                );
                None
            }
            (None, None) => {
                self.error(
                    &raw.referenced,
                    format!("line_works sink '{name}' needs the service account's private key"),
                    Some("name the variable that holds it (private_key_env) or the file (private_key_file, a mounted Secret)".into()),
                );
                None
            }
        };
        let auth_url = match &s.auth_url {
            Some(u) => match check_url(&u.value) {
                Ok(_) => u.value.clone(),
                Err(e) => {
                    self.error(
                        &u.referenced,
                        e,
                        Some(format!("the default is {}", defaults::LINE_WORKS_AUTH_URL)),
                    );
                    return None;
                }
            },
            None => defaults::LINE_WORKS_AUTH_URL.into(),
        };
        Some(LineWorksConfig {
            bot_id: bot_id?,
            client_id: client_id?,
            service_account: service_account?,
            target: target?,
            client_secret_env: client_secret_env?,
            private_key: key?,
            auth_url,
        })
    }
}

/// `HH:MM` on a 24-hour clock.
pub fn parse_at(s: &str) -> Option<jiff::civil::Time> {
    let (h, m) = s.trim().split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (i8, i8) = (h.parse().ok()?, m.parse().ok()?);
    jiff::civil::Time::new(h, m, 0, 0).ok()
}

/// An id a service gives (LINE WORKS' bot, client, account and channel
/// ids): what goes in a URL path or a JWT claim without escaping.
fn is_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 256
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.@".contains(&b))
}

/// `host:port`, `[::1]:25` or `host` (with the mode's port).
fn split_host_port(s: &str, default_port: u16) -> Option<(String, u16)> {
    let s = s.trim();
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (h, after) = rest.split_once(']')?;
        match after.strip_prefix(':') {
            Some(p) => (h, p.parse().ok()?),
            None if after.is_empty() => (h, default_port),
            None => return None,
        }
    } else {
        match s.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') => (h, p.parse().ok()?),
            Some(_) => return None,
            None => (s, default_port),
        }
    };
    let ok = !host.is_empty()
        && port != 0
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.:".contains(&b));
    ok.then(|| (host.to_string(), port))
}

/// A host that is this machine: mail to it does not cross a network.
fn is_loopback_host(h: &str) -> bool {
    h.eq_ignore_ascii_case("localhost")
        || h.parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// An http or https URL with a host; a path is allowed (webhooks have one).
pub fn check_url(text: &str) -> Result<http::Uri, String> {
    let uri: http::Uri = text
        .parse()
        .map_err(|_| "the sink URL is not a valid URL".to_string())?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        _ => return Err("a sink URL must start with http:// or https://".into()),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err("the sink URL has no host".into());
    }
    Ok(uri)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_names_are_shell_variable_names() {
        assert!(is_env_name("NETWARDEN_SLACK_URL"));
        assert!(is_env_name("_X1"));
        for bad in ["", "1X", "A-B", "A B", "https://hooks.example/x"] {
            assert!(!is_env_name(bad), "{bad}");
        }
    }

    #[test]
    fn sink_urls_need_http_and_a_host() {
        assert!(check_url("http://127.0.0.1:9093").is_ok());
        assert!(check_url("https://hooks.example.com/services/T/B/X").is_ok());
        assert!(check_url("ftp://x").is_err());
        assert!(check_url("/api/v2/alerts").is_err());
        assert!(check_url("not a url").is_err());
    }
}
