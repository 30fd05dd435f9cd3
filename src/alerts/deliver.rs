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
use http::header::{self, HeaderName, HeaderValue};
use http::{Request, StatusCode, Uri};
use http_body_util::Full;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use tokio::sync::mpsc;

use super::{Alert, payload};
use crate::policy::alerts::{AlertSettings, SinkConfig, SinkKind, UrlSource, check_url};
use crate::telemetry::metrics::{DeliveryLabels, Metrics, Name, SinkLabels};

/// First retry's delay; doubled on each retry up to [`BACKOFF_CAP`].
const BACKOFF_BASE: Duration = Duration::from_millis(500);
/// Longest wait between two tries (absent a `Retry-After`).
const BACKOFF_CAP: Duration = Duration::from_secs(30);

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
}

type SinkClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// A sink, resolved: URL and secrets read, client built.
pub struct Sink {
    pub name: Arc<str>,
    pub kind: SinkKind,
    url: Uri,
    hmac: Option<ring::hmac::Key>,
    signature_header: HeaderName,
    token: Option<HeaderValue>,
    client: SinkClient,
    timeout: Duration,
    instance: Arc<str>,
    key: &'static str,
    window: Duration,
    /// Where the runbooks are (`alerts.runbook_url`).
    runbook: Arc<str>,
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
        let (text, var) = match &cfg.url {
            UrlSource::Env(var) => (read(var)?, var.clone()),
            UrlSource::Literal(u) => (u.clone(), "url".to_string()),
        };
        let mut url = check_url(text.trim()).map_err(|reason| AlertError::BadUrl {
            sink: sink(),
            var: var.clone(),
            reason,
        })?;
        if cfg.kind == SinkKind::Alertmanager && url.path() == "/" {
            url = format!("{}/api/v2/alerts", text.trim().trim_end_matches('/'))
                .parse()
                .map_err(|_| AlertError::BadUrl {
                    sink: sink(),
                    var,
                    reason: "cannot add /api/v2/alerts to it".into(),
                })?;
        }
        let hmac = match &cfg.secret_env {
            Some(var) => Some(ring::hmac::Key::new(
                ring::hmac::HMAC_SHA256,
                read(var)?.as_bytes(),
            )),
            None => None,
        };
        let token = match &cfg.token_env {
            Some(var) => {
                let mut v = HeaderValue::try_from(format!("Bearer {}", read(var)?.trim()))
                    .map_err(|_| AlertError::BadToken {
                        sink: sink(),
                        var: var.clone(),
                    })?;
                v.set_sensitive(true);
                Some(v)
            }
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
        Ok(Sink {
            name: cfg.name.as_str().into(),
            kind: cfg.kind,
            url,
            hmac,
            // The policy compiler checked the name; the default is a fallback.
            signature_header: HeaderName::try_from(cfg.signature_header.as_str()).unwrap_or(
                HeaderName::from_static(crate::policy::alerts::defaults::SIGNATURE_HEADER),
            ),
            token,
            client,
            timeout: settings.timeout,
            instance,
            key: settings.key.as_str(),
            window: settings.window,
            runbook: settings.runbook_url.as_str().into(),
        })
    }

    /// The body this sink sends for `alert`.
    pub fn body(&self, alert: &Alert) -> Bytes {
        let (v, kind) = match self.kind {
            SinkKind::Webhook => (payload::webhook(alert, &self.instance, self.key), "webhook"),
            SinkKind::Slack => (payload::slack(alert, &self.instance), "slack"),
            SinkKind::Alertmanager => (
                payload::alertmanager(alert, &self.instance, self.key, self.window),
                "alertmanager",
            ),
        };
        let url = format!("{}#{}", self.runbook, payload::runbook_section(alert));
        Bytes::from(payload::with_runbook(v, kind, &url).to_string())
    }

    fn request(&self, body: Bytes) -> Request<Full<Bytes>> {
        let mut req = Request::post(self.url.clone())
            .header(header::CONTENT_TYPE, "application/json")
            .header(
                header::USER_AGENT,
                concat!("netwarden/", env!("CARGO_PKG_VERSION")),
            )
            .body(Full::new(Bytes::new()))
            .unwrap_or_default();
        if let Some(key) = &self.hmac {
            let tag = ring::hmac::sign(key, &body);
            let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
            if let Ok(v) = HeaderValue::try_from(format!("sha256={hex}")) {
                req.headers_mut().insert(self.signature_header.clone(), v);
            }
        }
        if let Some(t) = &self.token {
            req.headers_mut().insert(header::AUTHORIZATION, t.clone());
        }
        *req.body_mut() = Full::new(body);
        req
    }

    /// One call, bounded by the sink's timeout.
    pub async fn send_once(&self, body: Bytes) -> Try {
        let sent = self.client.request(self.request(body));
        match tokio::time::timeout(self.timeout, sent).await {
            Err(_) => Try::Retry {
                status: None,
                why: "timeout",
                after: None,
            },
            Ok(Err(e)) => Try::Retry {
                status: None,
                why: if e.is_connect() {
                    "connect_error"
                } else {
                    "error"
                },
                after: None,
            },
            Ok(Ok(resp)) => classify(resp.status(), resp.headers().get(header::RETRY_AFTER)),
        }
    }
}

/// What one call came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Try {
    Delivered(StatusCode),
    /// Worth another try: after `after` if the receiver said so.
    Retry {
        status: Option<StatusCode>,
        why: &'static str,
        after: Option<Duration>,
    },
    /// The receiver refused it; trying again would not help.
    Rejected(StatusCode),
}

pub fn classify(status: StatusCode, retry_after: Option<&HeaderValue>) -> Try {
    if status.is_success() {
        Try::Delivered(status)
    } else if status == StatusCode::TOO_MANY_REQUESTS {
        Try::Retry {
            status: Some(status),
            why: "rate_limited",
            after: retry_after.and_then(|v| parse_retry_after(v, SystemTime::now())),
        }
    } else if status.is_server_error() || status == StatusCode::REQUEST_TIMEOUT {
        Try::Retry {
            status: Some(status),
            why: "server_error",
            after: None,
        }
    } else {
        Try::Rejected(status)
    }
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

/// Delivers one alert, retrying until `give_up_after`. Returns the outcome
/// label: `delivered`, `rejected` or `gave_up`.
pub async fn deliver(
    sink: &Sink,
    alert: &Alert,
    give_up_after: Duration,
    metrics: &Metrics,
) -> &'static str {
    let body = sink.body(alert);
    let deadline = Instant::now() + give_up_after;
    let mut retry = 0u32;
    loop {
        let last = sink.send_once(body.clone()).await;
        match last {
            Try::Delivered(status) => {
                tracing::info!(
                    event = "alert_delivered",
                    sink = &*sink.name,
                    kind = alert.kind(),
                    status = status.as_u16(),
                    tries = retry + 1,
                    "alert delivered"
                );
                return "delivered";
            }
            Try::Rejected(status) => {
                tracing::warn!(
                    event = "alert_rejected",
                    sink = &*sink.name,
                    kind = alert.kind(),
                    status = status.as_u16(),
                    "alert sink refused the alert; check its URL and token"
                );
                return "rejected";
            }
            Try::Retry { status, why, after } => {
                let wait = after.unwrap_or_else(|| backoff(retry, jitter()));
                if Instant::now() + wait >= deadline {
                    tracing::warn!(
                        event = "alert_gave_up",
                        sink = &*sink.name,
                        kind = alert.kind(),
                        error = why,
                        status = status.map(|s| s.as_u16()),
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
/// queue is closed and empty.
pub async fn run(
    sink: Arc<Sink>,
    mut rx: mpsc::Receiver<Arc<Alert>>,
    pending: Arc<AtomicU64>,
    give_up_after: Duration,
    metrics: Arc<Metrics>,
    record: Arc<Record>,
) {
    while let Some(alert) = rx.recv().await {
        let outcome = deliver(&sink, &alert, give_up_after, &metrics).await;
        pending.fetch_sub(1, Ordering::Relaxed);
        record.note(outcome);
        metrics
            .alert_deliveries
            .get_or_create(&DeliveryLabels {
                sink: Name(sink.name.clone()),
                outcome,
            })
            .inc();
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
            classify(StatusCode::OK, None),
            Try::Delivered(StatusCode::OK)
        );
        assert_eq!(
            classify(StatusCode::ACCEPTED, None),
            Try::Delivered(StatusCode::ACCEPTED)
        );
        assert!(matches!(
            classify(StatusCode::BAD_GATEWAY, None),
            Try::Retry {
                why: "server_error",
                after: None,
                ..
            }
        ));
        assert!(matches!(
            classify(StatusCode::TOO_MANY_REQUESTS, Some(&HeaderValue::from_static("3"))),
            Try::Retry { after: Some(d), .. } if d == Duration::from_secs(3)
        ));
        assert_eq!(
            classify(StatusCode::NOT_FOUND, None),
            Try::Rejected(StatusCode::NOT_FOUND)
        );
        assert_eq!(
            classify(StatusCode::MOVED_PERMANENTLY, None),
            Try::Rejected(StatusCode::MOVED_PERMANENTLY)
        );
    }
}
