//! The `alerts:` section: where alerts on blocked login attempts go and how
//! attempts are aggregated. Secrets (webhook URLs, tokens, signing keys) are
//! never in the policy: a sink names the environment variables that hold
//! them, and `serve` / `alert-test` read them at startup.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::compile::Cx;
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
}

impl SinkKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SinkKind::Webhook => "webhook",
            SinkKind::Slack => "slack",
            SinkKind::Alertmanager => "alertmanager",
        }
    }
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
    pub url: UrlSource,
    /// Variable holding the HMAC-SHA256 signing key (webhook).
    pub secret_env: Option<String>,
    /// Variable holding a bearer token (webhook, Alertmanager).
    pub token_env: Option<String>,
    pub signature_header: String,
    /// CA certificates (PEM) for an https sink, besides the system roots.
    pub ca: Option<PathBuf>,
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
    pub(super) fn alerts(
        &mut self,
        raw: Option<&S<RawAlerts>>,
        base: &Path,
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
            if let Some(s) = self.sink(sink, base) {
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
        Some(out)
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
            self.error(
                &v.referenced,
                format!("'{}' is not an environment variable name", v.value),
                Some("use letters, digits and '_', not starting with a digit".into()),
            );
        }
        None
    }

    fn sink(&mut self, raw: &S<RawSink>, base: &Path) -> Option<SinkConfig> {
        let s = &raw.value;
        self.check_name(&s.name, "sink");
        let kind = match s.kind.value.as_str() {
            "webhook" => SinkKind::Webhook,
            "slack" => SinkKind::Slack,
            "alertmanager" => SinkKind::Alertmanager,
            other => {
                self.error(
                    &s.kind.referenced,
                    format!("sink type '{other}' is not known"),
                    Some("use webhook, slack or alertmanager".into()),
                );
                return None;
            }
        };
        let url = match (&s.url, &s.url_env) {
            (Some(u), None) if kind == SinkKind::Alertmanager => {
                UrlSource::Literal(u.value.clone())
            }
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
            (None, None) => {
                self.error(
                    &raw.referenced,
                    format!("sink '{}' has no URL", s.name.value),
                    Some(match kind {
                        SinkKind::Alertmanager => {
                            "give url: http://alertmanager:9093 or url_env: NAME".into()
                        }
                        _ => "name the environment variable that holds it: url_env: NAME".into(),
                    }),
                );
                return None;
            }
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
            Some(v) if kind == SinkKind::Slack => {
                self.error(
                    &v.referenced,
                    "a Slack incoming webhook takes no token: its URL is the secret".into(),
                    Some("remove token_env".into()),
                );
                None
            }
            Some(v) => self.env_name(v, "token_env"),
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
        Some(SinkConfig {
            name: s.name.value.clone(),
            kind,
            url,
            secret_env,
            token_env,
            signature_header,
            ca: s.ca.as_ref().map(|p| base.join(&p.value)),
        })
    }
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
