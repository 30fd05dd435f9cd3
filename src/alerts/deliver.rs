//! Delivery: one task per sink takes alerts from its bounded queue and
//! sends each with a timeout per call. Connect errors, timeouts, 408 and
//! 5xx are retried with exponential backoff and jitter; 429 waits as long
//! as `Retry-After` says (RFC 9110 §10.2.3); other answers are final.
//! Retrying stops at `give_up_after`, and the alert is counted as given up.

use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use tokio::sync::mpsc;

use super::message::{Message, Voice};
use super::{Alert, formats, line_works, mail, pagerduty, payload};
use crate::policy::alerts::{
    AlertKey, AlertSettings, KeySource, LineWorksTarget, SinkConfig, SinkDetails, SinkKind,
    UrlSource, check_url,
};
use crate::telemetry::metrics::{DeliveryLabels, Metrics, Name, SinkLabels};

/// First retry's delay; doubled on each retry up to [`BACKOFF_CAP`].
const BACKOFF_BASE: Duration = Duration::from_millis(500);
/// Longest wait between two tries (absent a `Retry-After`).
const BACKOFF_CAP: Duration = Duration::from_secs(30);
/// Longest wait a service's rate limit may impose before a try; past it
/// the alert is retried as usual (bounded by `give_up_after`).
const RATE_LIMIT_CAP: Duration = Duration::from_secs(5 * 60);
/// A private key file read at most.
const KEY_FILE_MAX: u64 = 64 * 1024;

pub const USER_AGENT: &str = concat!("netwarden/", env!("CARGO_PKG_VERSION"));

/// Why a sink cannot be used. Never shows a secret's value, only the name
/// of the variable that holds it.
#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    #[error("alert sink '{sink}': environment variable {var} is not set (or is empty)")]
    MissingEnv { sink: String, var: String },
    #[error("alert sink '{sink}': the URL in {var}: {reason}")]
    BadUrl {
        sink: String,
        var: String,
        reason: String,
    },
    #[error("alert sink '{sink}': the value of {var} cannot be sent in a header")]
    BadToken { sink: String, var: String },
    #[error("alert sink '{sink}': {source}")]
    Tls {
        sink: String,
        source: crate::tls::TlsError,
    },
    #[error("alert sink '{sink}': the private key in {from}: {source}")]
    Key {
        sink: String,
        from: String,
        source: line_works::KeyError,
    },
    #[error("alert sink '{sink}': {source}")]
    Mail {
        sink: String,
        source: mail::MailError,
    },
}

impl AlertError {
    /// The sink it is about.
    pub fn sink_name(&self) -> &str {
        match self {
            AlertError::MissingEnv { sink, .. }
            | AlertError::BadUrl { sink, .. }
            | AlertError::BadToken { sink, .. }
            | AlertError::Tls { sink, .. }
            | AlertError::Key { sink, .. }
            | AlertError::Mail { sink, .. } => sink,
        }
    }
}

pub type SinkClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// How a sink's alerts leave. One per sink, made once: the sizes of its
/// variants do not matter.
#[allow(clippy::large_enum_variant)]
enum Transport {
    /// One POST per alert.
    Http {
        url: Uri,
        content_type: &'static str,
        hmac: Option<(ring::hmac::Key, HeaderName)>,
        /// A bearer token or a service's own header (Chatwork's).
        auth: Option<(HeaderName, HeaderValue)>,
    },
    LineWorks(line_works::Bot),
    Email(Arc<mail::Mailer>),
}

/// A sink, resolved: URL and secrets read, client built.
pub struct Sink {
    pub name: Arc<str>,
    pub kind: SinkKind,
    voice: Voice,
    transport: Transport,
    client: SinkClient,
    timeout: Duration,
    instance: Arc<str>,
    key: AlertKey,
    window: Duration,
    /// Where the runbooks are (`alerts.runbook_url`).
    runbook: Arc<str>,
    /// PagerDuty's integration key (a secret: only ever in the body).
    routing_key: Option<String>,
    /// No call before this instant: a service's rate limit said so
    /// (Chatwork's `x-ratelimit-remaining: 0` until its reset).
    pause_until: std::sync::Mutex<Option<Instant>>,
    /// PagerDuty: lockout incidents to resolve when their locks end.
    open_locks: std::sync::Mutex<pagerduty::OpenLocks>,
}

/// The name this netwarden gives itself in alerts: `NETWARDEN_INSTANCE`,
/// else `HOSTNAME` (the Pod's name in Kubernetes), else `netwarden`.
pub fn instance_name(env: &dyn Fn(&str) -> Option<String>) -> String {
    env("NETWARDEN_INSTANCE")
        .or_else(|| env("HOSTNAME"))
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "netwarden".into())
}

/// Resolves every sink of `settings`, reading secrets through `env`; all
/// problems at once.
pub fn resolve_all(
    settings: &AlertSettings,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<Sink>, Vec<AlertError>> {
    let (sinks, errors) = resolve_each(settings, env);
    if errors.is_empty() {
        Ok(sinks)
    } else {
        Err(errors)
    }
}

/// The sinks that resolve, and the errors of those that do not.
pub fn resolve_each(
    settings: &AlertSettings,
    env: &dyn Fn(&str) -> Option<String>,
) -> (Vec<Sink>, Vec<AlertError>) {
    let instance: Arc<str> = instance_name(env).into();
    let mut sinks = Vec::new();
    let mut errors = Vec::new();
    for cfg in &settings.sinks {
        match Sink::resolve(cfg, settings, env, instance.clone()) {
            Ok(s) => sinks.push(s),
            Err(e) => errors.push(e),
        }
    }
    (sinks, errors)
}

/// An answer: HTTP's status or SMTP's reply code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    Http(StatusCode),
    Smtp(u16),
}

impl Answer {
    pub fn code(self) -> u16 {
        match self {
            Answer::Http(s) => s.as_u16(),
            Answer::Smtp(c) => c,
        }
    }
}

impl std::fmt::Display for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Answer::Http(s) => write!(f, "HTTP {}", s.as_u16()),
            Answer::Smtp(c) => write!(f, "SMTP {c}"),
        }
    }
}

impl Sink {
    fn resolve(
        cfg: &SinkConfig,
        settings: &AlertSettings,
        env: &dyn Fn(&str) -> Option<String>,
        instance: Arc<str>,
    ) -> Result<Sink, AlertError> {
        let sink = || cfg.name.clone();
        let read = |var: &str| {
            env(var)
                .filter(|v| !v.trim().is_empty())
                .ok_or_else(|| AlertError::MissingEnv {
                    sink: sink(),
                    var: var.to_string(),
                })
        };
        let url = match &cfg.url {
            Some(source) => Some(sink_url(cfg, source, &read)?),
            None => None,
        };
        let tls =
            crate::tls::client_config(cfg.ca.as_deref()).map_err(|source| AlertError::Tls {
                sink: sink(),
                source,
            })?;
        let client = crate::outbound::client(
            tls,
            settings.timeout,
            crate::policy::server::defaults::UPSTREAM_IDLE,
            // Deliveries to one sink are few at a time.
            8,
        );
        let bearer =
            |var: &str| -> Result<(HeaderName, HeaderValue), AlertError> {
                let mut v = HeaderValue::try_from(format!("Bearer {}", read(var)?.trim()))
                    .map_err(|_| AlertError::BadToken {
                        sink: sink(),
                        var: var.to_string(),
                    })?;
                v.set_sensitive(true);
                Ok((header::AUTHORIZATION, v))
            };
        let http = |url: Option<Uri>,
                    content_type,
                    auth: Option<(HeaderName, HeaderValue)>|
         -> Result<Transport, AlertError> {
            let hmac = match &cfg.secret_env {
                Some(var) => Some((
                    ring::hmac::Key::new(ring::hmac::HMAC_SHA256, read(var)?.as_bytes()),
                    // The policy compiler checked the name; the default is a fallback.
                    HeaderName::try_from(cfg.signature_header.as_str()).unwrap_or(
                        HeaderName::from_static(crate::policy::alerts::defaults::SIGNATURE_HEADER),
                    ),
                )),
                None => None,
            };
            Ok(Transport::Http {
                url: url.ok_or_else(|| AlertError::BadUrl {
                    sink: sink(),
                    var: "url".into(),
                    reason: "missing".into(),
                })?,
                content_type,
                hmac,
                auth,
            })
        };
        let mut routing_key = None;
        let transport = match &cfg.details {
            SinkDetails::Http => {
                let auth = cfg.token_env.as_deref().map(bearer).transpose()?;
                http(url, "application/json", auth)?
            }
            SinkDetails::Chatwork { room_id } => {
                let var = cfg.token_env.as_deref().unwrap_or("token_env");
                let mut token =
                    HeaderValue::try_from(read(var)?.trim()).map_err(|_| AlertError::BadToken {
                        sink: sink(),
                        var: var.to_string(),
                    })?;
                token.set_sensitive(true);
                let url = url
                    .map(|u| with_path(&u, &format!("/v2/rooms/{room_id}/messages")))
                    .transpose()
                    .map_err(|reason| bad_url(cfg, reason))?;
                http(
                    url,
                    "application/x-www-form-urlencoded",
                    Some((HeaderName::from_static("x-chatworktoken"), token)),
                )?
            }
            SinkDetails::PagerDuty { routing_key_env } => {
                routing_key = Some(read(routing_key_env)?.trim().to_string());
                http(url, "application/json", None)?
            }
            SinkDetails::LineWorks(lw) => {
                let pem = match &lw.private_key {
                    KeySource::Env(var) => read(var)?.into_bytes(),
                    KeySource::File(path) => {
                        crate::files::read(path, KEY_FILE_MAX).map_err(|e| AlertError::Key {
                            sink: sink(),
                            from: path.display().to_string(),
                            source: line_works::KeyError::Unreadable(e.to_string()),
                        })?
                    }
                };
                let from = match &lw.private_key {
                    KeySource::Env(var) => var.clone(),
                    KeySource::File(path) => path.display().to_string(),
                };
                let key = line_works::read_key(&pem).map_err(|source| AlertError::Key {
                    sink: sink(),
                    from,
                    source,
                })?;
                let path = match &lw.target {
                    LineWorksTarget::Channel(c) => {
                        format!("/v1.0/bots/{}/channels/{c}/messages", lw.bot_id)
                    }
                    LineWorksTarget::User(u) => {
                        format!("/v1.0/bots/{}/users/{u}/messages", lw.bot_id)
                    }
                };
                let message_url = url
                    .map(|u| with_path(&u, &path))
                    .transpose()
                    .map_err(|reason| bad_url(cfg, reason))?
                    .ok_or_else(|| bad_url(cfg, "missing".into()))?;
                let auth_url = check_url(&lw.auth_url).map_err(|reason| bad_url(cfg, reason))?;
                Transport::LineWorks(line_works::Bot::new(
                    message_url,
                    auth_url,
                    lw.client_id.clone(),
                    read(&lw.client_secret_env)?.trim().to_string(),
                    lw.service_account.clone(),
                    key,
                ))
            }
            SinkDetails::Email(e) => {
                let login = match (&e.username_env, &e.password_env) {
                    (Some(u), Some(p)) => Some((read(u)?.trim().to_string(), read(p)?)),
                    _ => None,
                };
                let m = mail::Mailer::new(e, login, cfg.ca.as_deref(), &instance).map_err(
                    |source| AlertError::Mail {
                        sink: sink(),
                        source,
                    },
                )?;
                Transport::Email(Arc::new(m))
            }
        };
        Ok(Sink {
            name: cfg.name.as_str().into(),
            kind: cfg.kind,
            voice: Voice {
                lang: cfg.language,
                zone: crate::engine::time::zone(&cfg.time_zone).unwrap_or(jiff::tz::TimeZone::UTC),
            },
            transport,
            client,
            timeout: settings.timeout,
            instance,
            key: settings.key,
            window: settings.window,
            runbook: settings.runbook_url.as_str().into(),
            routing_key,
            pause_until: std::sync::Mutex::new(None),
            open_locks: std::sync::Mutex::new(pagerduty::OpenLocks::default()),
        })
    }

    /// `alert` worded for this sink.
    pub fn message(&self, alert: &Alert) -> Message {
        let url = format!("{}#{}", self.runbook, payload::runbook_section(alert));
        super::message::message(alert, &self.voice, &self.instance, &url)
    }

    /// What this sink sends for `alert`: usually one body; none or
    /// several for PagerDuty (a release resolves the locks it lifted).
    pub fn bodies(&self, alert: &Alert) -> Vec<Bytes> {
        let m = self.message(alert);
        let json = |v: serde_json::Value| Bytes::from(v.to_string());
        let runbook = || format!("{}#{}", self.runbook, payload::runbook_section(alert));
        let one = match self.kind {
            SinkKind::Webhook => json(payload::with_runbook(
                payload::webhook(alert, &self.instance, self.key.as_str(), &formats::text(&m)),
                "webhook",
                &runbook(),
            )),
            SinkKind::Alertmanager => json(payload::with_runbook(
                payload::alertmanager(
                    alert,
                    &self.instance,
                    self.key.as_str(),
                    self.window,
                    &m.title,
                ),
                "alertmanager",
                &runbook(),
            )),
            SinkKind::Slack => json(formats::slack(&m)),
            SinkKind::Teams => json(formats::teams(&m)),
            SinkKind::LineWorks => json(formats::line_works(&m)),
            SinkKind::Chatwork => Bytes::from(line_works::form(&[
                ("body", &formats::chatwork(&m)),
                ("self_unread", "0"),
            ])),
            SinkKind::Email => match &self.transport {
                Transport::Email(mailer) => {
                    Bytes::from(mailer.format(&formats::mail(&m), super::message::at(alert)))
                }
                _ => Bytes::new(),
            },
            SinkKind::PagerDuty => return self.pagerduty(alert, &m),
        };
        vec![one]
    }

    fn pagerduty(&self, alert: &Alert, m: &Message) -> Vec<Bytes> {
        let key = self.routing_key.as_deref().unwrap_or_default();
        let resolve = |k: &str| Bytes::from(pagerduty::resolve(key, k).to_string());
        match alert {
            Alert::Released(r) => {
                let lifted = self
                    .open_locks
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .released(r);
                lifted.iter().map(|k| resolve(k)).collect()
            }
            Alert::StateStoreRestored { .. } => {
                pagerduty::dedup_key(alert, self.key).map_or_else(Vec::new, |k| vec![resolve(&k)])
            }
            _ => {
                let Some(dedup) = pagerduty::dedup_key(alert, self.key) else {
                    return Vec::new();
                };
                if let Alert::Lockout(l) = alert {
                    self.open_locks
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .opened(dedup.clone(), l.lock, Instant::now());
                }
                let details =
                    payload::webhook(alert, &self.instance, self.key.as_str(), &formats::text(m));
                vec![Bytes::from(
                    pagerduty::trigger(alert, m, key, &dedup, details).to_string(),
                )]
            }
        }
    }

    /// The first body (what `alert-test` sends).
    pub fn body(&self, alert: &Alert) -> Bytes {
        self.bodies(alert).into_iter().next().unwrap_or_default()
    }

    /// One call, bounded by the sink's timeout.
    pub async fn send_once(&self, body: Bytes) -> Try {
        match &self.transport {
            Transport::Http {
                url,
                content_type,
                hmac,
                auth,
            } => {
                let mut req = Request::post(url.clone())
                    .header(header::CONTENT_TYPE, *content_type)
                    .header(header::USER_AGENT, USER_AGENT)
                    .body(Full::new(Bytes::new()))
                    .unwrap_or_default();
                if let Some((key, name)) = hmac {
                    let tag = ring::hmac::sign(key, &body);
                    let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
                    if let Ok(v) = HeaderValue::try_from(format!("sha256={hex}")) {
                        req.headers_mut().insert(name.clone(), v);
                    }
                }
                if let Some((name, value)) = auth {
                    req.headers_mut().insert(name.clone(), value.clone());
                }
                *req.body_mut() = Full::new(body);
                match post(&self.client, req, self.timeout, 0).await {
                    Ok((status, headers, _)) => {
                        self.note_rate_limit(&headers);
                        classify(
                            status,
                            headers.get(header::RETRY_AFTER),
                            headers.get(RATE_LIMIT_RESET),
                        )
                    }
                    Err(t) => t,
                }
            }
            Transport::LineWorks(bot) => bot.send(&self.client, body, self.timeout).await,
            Transport::Email(m) => m.send(&body, self.timeout).await,
        }
    }

    /// Chatwork says how many calls are left until its reset; at none, the
    /// next call waits for the reset instead of being refused.
    fn note_rate_limit(&self, headers: &HeaderMap) {
        let remaining = headers
            .get("x-ratelimit-remaining")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        if remaining == Some(0)
            && let Some(wait) = headers
                .get(RATE_LIMIT_RESET)
                .and_then(|v| parse_reset(v, SystemTime::now()))
        {
            *self.pause_until.lock().unwrap_or_else(|e| e.into_inner()) =
                Some(Instant::now() + wait.min(RATE_LIMIT_CAP));
        }
    }

    /// How long to wait before the next call (a rate limit's pause).
    fn pause(&self) -> Option<Duration> {
        let mut slot = self.pause_until.lock().unwrap_or_else(|e| e.into_inner());
        let until = (*slot)?;
        let now = Instant::now();
        if until <= now {
            *slot = None;
            return None;
        }
        Some(until - now)
    }

    /// PagerDuty: the lockout incidents whose locks have ended, as
    /// resolve bodies; and when the next one ends.
    fn ended_locks(&self) -> (Vec<Bytes>, Option<Instant>) {
        let Some(key) = self.routing_key.as_deref() else {
            return (Vec::new(), None);
        };
        let mut open = self.open_locks.lock().unwrap_or_else(|e| e.into_inner());
        let ended = open
            .ended(Instant::now())
            .iter()
            .map(|k| Bytes::from(pagerduty::resolve(key, k).to_string()))
            .collect();
        (ended, open.next_end())
    }
}

/// Chatwork's reset header: the Unix time its limit resets.
const RATE_LIMIT_RESET: &str = "x-ratelimit-reset";

fn bad_url(cfg: &SinkConfig, reason: String) -> AlertError {
    AlertError::BadUrl {
        sink: cfg.name.clone(),
        var: match &cfg.url {
            Some(UrlSource::Env(v)) => v.clone(),
            _ => "url".into(),
        },
        reason,
    }
}

/// The sink's URL from the policy or the environment, checked.
fn sink_url(
    cfg: &SinkConfig,
    source: &UrlSource,
    read: &dyn Fn(&str) -> Result<String, AlertError>,
) -> Result<Uri, AlertError> {
    let (text, var) = match source {
        UrlSource::Env(var) => (read(var)?, var.clone()),
        UrlSource::Literal(u) => (u.clone(), "url".to_string()),
    };
    let url = check_url(text.trim()).map_err(|reason| AlertError::BadUrl {
        sink: cfg.name.clone(),
        var: var.clone(),
        reason,
    })?;
    if cfg.kind == SinkKind::Alertmanager && url.path() == "/" {
        return format!("{}/api/v2/alerts", text.trim().trim_end_matches('/'))
            .parse()
            .map_err(|_| AlertError::BadUrl {
                sink: cfg.name.clone(),
                var,
                reason: "cannot add /api/v2/alerts to it".into(),
            });
    }
    Ok(url)
}

/// `base` (a service's address, perhaps with a path prefix) with `path`
/// after its own.
fn with_path(base: &Uri, path: &str) -> Result<Uri, String> {
    let prefix = base.path().trim_end_matches('/');
    let mut parts = base.clone().into_parts();
    parts.path_and_query = Some(
        format!("{prefix}{path}")
            .parse()
            .map_err(|_| "cannot add the service's path to it".to_string())?,
    );
    Uri::from_parts(parts).map_err(|_| "cannot add the service's path to it".to_string())
}

/// One POST, bounded by `timeout` (the answer's body too, read up to
/// `read` bytes; 0 reads none).
pub async fn post(
    client: &SinkClient,
    req: Request<Full<Bytes>>,
    timeout: Duration,
    read: usize,
) -> Result<(StatusCode, HeaderMap, Bytes), Try> {
    let call = async {
        let resp = client.request(req).await.map_err(|e| Try::Retry {
            status: None,
            why: if e.is_connect() {
                "connect_error"
            } else {
                "error"
            },
            after: None,
        })?;
        let (parts, body) = resp.into_parts();
        let body = if read == 0 {
            Bytes::new()
        } else {
            Limited::new(body, read)
                .collect()
                .await
                .map(http_body_util::Collected::to_bytes)
                .unwrap_or_default()
        };
        Ok((parts.status, parts.headers, body))
    };
    match tokio::time::timeout(timeout, call).await {
        Err(_) => Err(Try::Retry {
            status: None,
            why: "timeout",
            after: None,
        }),
        Ok(r) => r,
    }
}

/// What one call came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Try {
    Delivered(Answer),
    /// Worth another try: after `after` if the receiver said so.
    Retry {
        status: Option<Answer>,
        why: &'static str,
        after: Option<Duration>,
    },
    /// The receiver refused it; trying again would not help.
    Rejected(Answer),
}

/// An HTTP answer: 2xx delivered; 429 retried after `Retry-After` (or
/// Chatwork's `x-ratelimit-reset`); 5xx and 408 retried; others refused.
pub fn classify(
    status: StatusCode,
    retry_after: Option<&HeaderValue>,
    reset: Option<&HeaderValue>,
) -> Try {
    let answer = Answer::Http(status);
    if status.is_success() {
        Try::Delivered(answer)
    } else if status == StatusCode::TOO_MANY_REQUESTS {
        let now = SystemTime::now();
        Try::Retry {
            status: Some(answer),
            why: "rate_limited",
            after: retry_after
                .and_then(|v| parse_retry_after(v, now))
                .or_else(|| reset.and_then(|v| parse_reset(v, now)))
                .map(|d| d.min(RATE_LIMIT_CAP)),
        }
    } else if status.is_server_error() || status == StatusCode::REQUEST_TIMEOUT {
        Try::Retry {
            status: Some(answer),
            why: "server_error",
            after: None,
        }
    } else {
        Try::Rejected(answer)
    }
}

/// A reset time in Unix seconds, as a wait from `now` (none when past).
pub fn parse_reset(v: &HeaderValue, now: SystemTime) -> Option<Duration> {
    let at: u64 = v.to_str().ok()?.trim().parse().ok()?;
    let now = now.duration_since(SystemTime::UNIX_EPOCH).ok()?.as_secs();
    Some(Duration::from_secs(at.saturating_sub(now)))
}

/// `Retry-After`: delay-seconds or an HTTP-date (RFC 9110 §10.2.3).
pub fn parse_retry_after(v: &HeaderValue, now: SystemTime) -> Option<Duration> {
    let s = v.to_str().ok()?.trim();
    if let Ok(secs) = s.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(s).ok()?;
    Some(at.duration_since(now).unwrap_or_default())
}

/// Exponential backoff with "equal jitter": half the delay fixed, half
/// random, so that retries of many netwardens do not synchronize.
/// `jitter` is in [0, 1).
pub fn backoff(retry: u32, jitter: f64) -> Duration {
    let exp = BACKOFF_BASE.saturating_mul(1u32.checked_shl(retry.min(16)).unwrap_or(u32::MAX));
    let d = exp.min(BACKOFF_CAP);
    d / 2 + d.mul_f64(jitter.clamp(0.0, 1.0) / 2.0)
}

/// A number in [0, 1) from the standard library's per-process random keys.
fn jitter() -> f64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// What one sink did last, for `GET /policy` and `netwarden status`.
#[derive(Default)]
pub struct Record {
    last: std::sync::Mutex<Option<(SystemTime, &'static str)>>,
    delivered: AtomicU64,
    not_delivered: AtomicU64,
}

impl Record {
    fn note(&self, outcome: &'static str) {
        if outcome == "delivered" {
            self.delivered.fetch_add(1, Ordering::Relaxed);
        } else {
            self.not_delivered.fetch_add(1, Ordering::Relaxed);
        }
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = Some((SystemTime::now(), outcome));
    }

    /// The last delivery (`at`, `outcome`: `delivered`, `rejected` or
    /// `gave_up`) or null, and the counts since the sink started.
    pub fn to_json(&self) -> serde_json::Value {
        let last = *self.last.lock().unwrap_or_else(|e| e.into_inner());
        serde_json::json!({
            "last_delivery": last.map(|(at, outcome)| serde_json::json!({
                "at": crate::telemetry::json::rfc3339(at),
                "outcome": outcome,
            })),
            "delivered": self.delivered.load(Ordering::Relaxed),
            "not_delivered": self.not_delivered.load(Ordering::Relaxed),
        })
    }
}

/// Delivers one alert (each body this sink makes of it), retrying until
/// `give_up_after`. Returns the outcome label: `delivered`, `rejected` or
/// `gave_up` (the worst of its bodies); `None` when this sink had nothing
/// to send for it (a PagerDuty release that names no open lock).
pub async fn deliver(
    sink: &Sink,
    alert: &Alert,
    give_up_after: Duration,
    metrics: &Metrics,
) -> Option<&'static str> {
    let mut outcome = None;
    for body in sink.bodies(alert) {
        let this = deliver_body(sink, alert.kind(), body, give_up_after, metrics).await;
        if outcome.is_none_or(|o| o == "delivered") {
            outcome = Some(this);
        }
    }
    outcome
}

async fn deliver_body(
    sink: &Sink,
    kind: &'static str,
    body: Bytes,
    give_up_after: Duration,
    metrics: &Metrics,
) -> &'static str {
    let deadline = Instant::now() + give_up_after;
    let mut retry = 0u32;
    loop {
        if let Some(wait) = sink.pause() {
            if Instant::now() + wait >= deadline {
                tracing::warn!(
                    event = "alert_gave_up",
                    sink = &*sink.name,
                    kind,
                    error = "rate_limited",
                    tries = retry,
                    "alert not delivered; the sink's rate limit outlasts give_up_after"
                );
                return "gave_up";
            }
            tokio::time::sleep(wait).await;
        }
        let last = sink.send_once(body.clone()).await;
        match last {
            Try::Delivered(status) => {
                tracing::info!(
                    event = "alert_delivered",
                    sink = &*sink.name,
                    kind,
                    status = status.code(),
                    tries = retry + 1,
                    "alert delivered"
                );
                return "delivered";
            }
            Try::Rejected(status) => {
                tracing::warn!(
                    event = "alert_rejected",
                    sink = &*sink.name,
                    kind,
                    status = status.code(),
                    "alert sink refused the alert; check its address and secrets"
                );
                return "rejected";
            }
            Try::Retry { status, why, after } => {
                let wait = after.unwrap_or_else(|| backoff(retry, jitter()));
                if Instant::now() + wait >= deadline {
                    tracing::warn!(
                        event = "alert_gave_up",
                        sink = &*sink.name,
                        kind,
                        error = why,
                        status = status.map(Answer::code),
                        tries = retry + 1,
                        "alert not delivered; gave up"
                    );
                    return "gave_up";
                }
                metrics
                    .alert_delivery_retries
                    .get_or_create(&SinkLabels {
                        sink: Name(sink.name.clone()),
                    })
                    .inc();
                tracing::debug!(
                    event = "alert_retry",
                    sink = &*sink.name,
                    error = why,
                    wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                );
                tokio::time::sleep(wait).await;
                retry += 1;
            }
        }
    }
}

/// A sink's task: deliver what its queue holds, one at a time, until the
/// queue is closed and empty. A PagerDuty sink also resolves each lockout
/// incident when its lock ends.
pub async fn run(
    sink: Arc<Sink>,
    mut rx: mpsc::Receiver<Arc<Alert>>,
    pending: Arc<AtomicU64>,
    give_up_after: Duration,
    metrics: Arc<Metrics>,
    record: Arc<Record>,
) {
    let note = |outcome: &'static str| {
        record.note(outcome);
        metrics
            .alert_deliveries
            .get_or_create(&DeliveryLabels {
                sink: Name(sink.name.clone()),
                outcome,
            })
            .inc();
    };
    loop {
        let (ended, next) = sink.ended_locks();
        for body in ended {
            note(deliver_body(&sink, "lockout_ended", body, give_up_after, &metrics).await);
        }
        let alert = tokio::select! {
            a = rx.recv() => a,
            () = sleep_until(next), if next.is_some() => continue,
        };
        let Some(alert) = alert else {
            break;
        };
        // Its own task: a delivery that panics (a bug, or an answer no one
        // foresaw) costs that alert, never the sink's task and every alert
        // after it (the red-team review of issue 28).
        let one = {
            let (sink, alert, metrics) = (sink.clone(), alert.clone(), metrics.clone());
            tokio::spawn(async move { deliver(&sink, &alert, give_up_after, &metrics).await })
        };
        let outcome = match one.await {
            Ok(outcome) => outcome,
            Err(e) => {
                tracing::error!(
                    event = "alert_gave_up",
                    sink = &*sink.name,
                    kind = alert.kind(),
                    error = "internal",
                    panicked = e.is_panic(),
                    "alert not delivered: its delivery failed inside netwarden"
                );
                Some("gave_up")
            }
        };
        pending.fetch_sub(1, Ordering::Relaxed);
        if let Some(outcome) = outcome {
            note(outcome);
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    if let Some(at) = at {
        tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_with_half_of_it_jittered() {
        assert_eq!(backoff(0, 0.0), Duration::from_millis(250));
        assert_eq!(backoff(1, 0.0), Duration::from_millis(500));
        assert_eq!(
            backoff(2, 0.999_999),
            Duration::from_millis(2000) - Duration::from_nanos(1000)
        );
        assert_eq!(backoff(10, 0.0), BACKOFF_CAP / 2);
        assert_eq!(backoff(u32::MAX, 0.5), BACKOFF_CAP.mul_f64(0.75));
        for _ in 0..100 {
            let j = jitter();
            assert!((0.0..1.0).contains(&j));
        }
    }

    #[test]
    fn a_rate_limit_without_retry_after_waits_for_its_reset() {
        let reset = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .expect("after 1970")
            .as_secs()
            + 30;
        let v = HeaderValue::try_from(reset.to_string()).expect("digits");
        match classify(StatusCode::TOO_MANY_REQUESTS, None, Some(&v)) {
            Try::Retry {
                after: Some(d),
                why: "rate_limited",
                ..
            } => assert!((29..=30).contains(&d.as_secs()), "{d:?}"),
            other => panic!("{other:?}"),
        }
        let far = HeaderValue::from_static("99999999999");
        assert!(matches!(
            classify(StatusCode::TOO_MANY_REQUESTS, None, Some(&far)),
            Try::Retry { after: Some(d), .. } if d == RATE_LIMIT_CAP
        ));
    }

    #[test]
    fn service_paths_follow_the_base_path() {
        let u: Uri = "http://127.0.0.1:9/prefix/".parse().expect("uri");
        assert_eq!(
            with_path(&u, "/v2/rooms/1/messages")
                .expect("joined")
                .to_string(),
            "http://127.0.0.1:9/prefix/v2/rooms/1/messages"
        );
        let u: Uri = "https://api.chatwork.com".parse().expect("uri");
        assert_eq!(
            with_path(&u, "/v2/rooms/1/messages")
                .expect("joined")
                .to_string(),
            "https://api.chatwork.com/v2/rooms/1/messages"
        );
    }

    #[test]
    fn retry_after_takes_seconds_or_a_date() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777);
        let v = |s: &'static str| HeaderValue::from_static(s);
        assert_eq!(
            parse_retry_after(&v("120"), now),
            Some(Duration::from_secs(120))
        );
        // RFC 9110's example date is 784111777 + 0 s.
        assert_eq!(
            parse_retry_after(&v("Sun, 06 Nov 1994 08:49:47 GMT"), now),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            parse_retry_after(&v("Sun, 06 Nov 1994 08:49:27 GMT"), now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after(&v("soon"), now), None);
        assert_eq!(parse_retry_after(&v("-1"), now), None);
    }

    #[test]
    fn answers_are_classified() {
        assert_eq!(
            classify(StatusCode::OK, None, None),
            Try::Delivered(Answer::Http(StatusCode::OK))
        );
        assert_eq!(
            classify(StatusCode::ACCEPTED, None, None),
            Try::Delivered(Answer::Http(StatusCode::ACCEPTED))
        );
        assert!(matches!(
            classify(StatusCode::BAD_GATEWAY, None, None),
            Try::Retry {
                why: "server_error",
                after: None,
                ..
            }
        ));
        assert!(matches!(
            classify(StatusCode::TOO_MANY_REQUESTS, Some(&HeaderValue::from_static("3")), None),
            Try::Retry { after: Some(d), .. } if d == Duration::from_secs(3)
        ));
        assert_eq!(
            classify(StatusCode::NOT_FOUND, None, None),
            Try::Rejected(Answer::Http(StatusCode::NOT_FOUND))
        );
        assert_eq!(
            classify(StatusCode::MOVED_PERMANENTLY, None, None),
            Try::Rejected(Answer::Http(StatusCode::MOVED_PERMANENTLY))
        );
    }
}
