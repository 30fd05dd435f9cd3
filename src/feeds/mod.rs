//! Fetching published lists: one bounded, conditional HTTPS request (and
//! its redirects), the schedule between fetches, and the first fetch at
//! startup; resolving DNS names ([`dns`]). What a fetch brings back is read and judged by [`crate::lists`];
//! applying it is the proxy's (`proxy::feeds`), through the same compile,
//! policy tests and reload guard as an edit.

pub mod dns;

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, StatusCode, Uri, header};
use http_body_util::{BodyExt, Empty, Limited};

use crate::lists::Copy;
use crate::policy::feeds::Feed;

/// Redirects followed before a fetch gives up (curl's default is 50; a
/// list moved twice is already odd).
const MAX_REDIRECTS: usize = 5;

/// What a fetch came to.
#[derive(Debug)]
pub enum Fetched {
    /// 304: the list is as last fetched.
    NotModified,
    Body {
        body: Bytes,
        etag: Option<String>,
        last_modified: Option<String>,
    },
}

/// Why a fetch failed; `code()` is the stable name in logs and metrics.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("the answer is larger than max_bytes ({0} bytes)")]
    TooLarge(u64),
    #[error("the publisher answered {0}")]
    Status(StatusCode),
    #[error("more than {MAX_REDIRECTS} redirects")]
    Redirects,
    #[error("a redirect to '{0}', which is not https (allow_http is off)")]
    InsecureRedirect(String),
    #[error("a redirect without a usable Location")]
    BadRedirect,
    #[error("the TLS client cannot be set up: {0}")]
    Tls(String),
    #[error("cannot connect: {0}")]
    Connect(String),
    #[error("the answer was cut off: {0}")]
    Body(String),
    #[error("a 304 for another version than the one asked about")]
    OtherVersion,
}

impl FetchError {
    pub fn code(&self) -> &'static str {
        match self {
            FetchError::Timeout(_) => "timeout",
            FetchError::TooLarge(_) => "too_large",
            FetchError::Status(_) => "http_status",
            FetchError::Redirects | FetchError::InsecureRedirect(_) | FetchError::BadRedirect => {
                "redirect"
            }
            FetchError::Tls(_) => "tls",
            FetchError::Connect(_) => "connect",
            FetchError::Body(_) => "body",
            FetchError::OtherVersion => "http_status",
        }
    }
}

/// The URL as it may be shown (logs, `GET /policy`, alerts): scheme, host
/// and path, without a query string that may hold a token.
pub fn shown_url(url: &str) -> String {
    match url.parse::<Uri>() {
        Ok(u) => format!(
            "{}://{}{}",
            u.scheme_str().unwrap_or("https"),
            u.authority().map_or("", |a| a.as_str()),
            u.path()
        ),
        Err(_) => "(invalid url)".into(),
    }
}

/// What to fetch, and how carefully: a published list's, or an identity
/// layer's keys.
pub struct Get<'a> {
    pub url: &'a str,
    pub ca_file: Option<&'a std::path::Path>,
    pub timeout: Duration,
    pub max_bytes: u64,
    pub allow_http: bool,
    /// The `User-Agent` product comment: what is fetched.
    pub what: &'static str,
}

/// Fetches `feed`'s list once, conditionally on `last` (ETag,
/// If-Modified-Since), within its timeout and size cap.
pub async fn fetch(feed: &Feed, last: Option<&Copy>) -> Result<Fetched, FetchError> {
    let get = Get {
        url: &feed.url,
        ca_file: feed.ca_file.as_deref(),
        timeout: feed.timeout,
        max_bytes: feed.max_bytes,
        allow_http: feed.allow_http,
        what: "published list",
    };
    fetch_url(&get, last).await
}

/// Fetches `get.url` once, conditionally on `last`, following at most
/// [`MAX_REDIRECTS`] redirects (never to another scheme, never from https
/// to http unless allowed), within its timeout and size cap.
pub async fn fetch_url(get: &Get<'_>, last: Option<&Copy>) -> Result<Fetched, FetchError> {
    let feed = get;
    let tls =
        crate::tls::client_config(feed.ca_file).map_err(|e| FetchError::Tls(e.to_string()))?;
    let client = crate::outbound::client::<Empty<Bytes>>(tls, feed.timeout, Duration::ZERO, 0);
    let work = async {
        let mut url: Uri = feed.url.parse().map_err(|_| FetchError::BadRedirect)?;
        for _ in 0..=MAX_REDIRECTS {
            let mut req = Request::get(url.clone())
                .header(
                    header::USER_AGENT,
                    format!("netwarden/{} ({})", env!("CARGO_PKG_VERSION"), feed.what),
                )
                .header(header::ACCEPT_ENCODING, "identity")
                .body(Empty::<Bytes>::new())
                .map_err(|_| FetchError::BadRedirect)?;
            if let Some(c) = last {
                let h = req.headers_mut();
                if let Some(v) = c
                    .etag
                    .as_deref()
                    .and_then(|v| HeaderValue::try_from(v).ok())
                {
                    h.insert(header::IF_NONE_MATCH, v);
                }
                if let Some(v) = c
                    .last_modified
                    .as_deref()
                    .and_then(|v| HeaderValue::try_from(v).ok())
                {
                    h.insert(header::IF_MODIFIED_SINCE, v);
                }
            }
            let resp = client.request(req).await.map_err(|e| {
                let mut detail = e.to_string();
                let mut source = std::error::Error::source(&e);
                while let Some(s) = source {
                    detail = format!("{detail}: {s}");
                    source = s.source();
                }
                FetchError::Connect(detail)
            })?;
            let status = resp.status();
            if status.is_redirection() && status != StatusCode::NOT_MODIFIED {
                url = redirect(&url, resp.headers(), feed.allow_http)?;
                continue;
            }
            // 304 only answers a conditional request (RFC 9110 §15.4.5):
            // one that sent no validator confirms nothing.
            let asked = last.is_some_and(|c| c.etag.is_some() || c.last_modified.is_some());
            if status == StatusCode::NOT_MODIFIED && asked {
                // It confirms only the version asked about (RFC 9111
                // §4.3.4): a 304 naming another ETag, or a later
                // Last-Modified, is no confirmation (red-team review).
                // A 304 carries the ETag a 200 would (RFC 9110 §15.4.5): none,
                // or another, is no confirmation of ours; nor is a
                // Last-Modified that is later, or that cannot be read.
                let header = |name| resp.headers().get(name).and_then(|v| v.to_str().ok());
                let stored = last.and_then(|c| c.etag.as_deref());
                let etag_differs = match (header(header::ETAG), stored) {
                    (Some(got), Some(had)) => got != had,
                    (None, Some(_)) => true,
                    _ => false,
                };
                let had = last
                    .and_then(|c| c.last_modified.as_deref())
                    .and_then(|v| httpdate::parse_http_date(v).ok());
                let newer = match header(header::LAST_MODIFIED) {
                    None => false,
                    Some(v) => match (httpdate::parse_http_date(v).ok(), had) {
                        (Some(got), Some(had)) => got > had,
                        (None, _) => true,
                        (Some(_), None) => false,
                    },
                };
                if etag_differs || newer {
                    return Err(FetchError::OtherVersion);
                }
                return Ok(Fetched::NotModified);
            }
            if status != StatusCode::OK {
                return Err(FetchError::Status(status));
            }
            let declared = resp
                .headers()
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            if declared.is_some_and(|n| n > feed.max_bytes) {
                return Err(FetchError::TooLarge(feed.max_bytes));
            }
            let text = |name| {
                resp.headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
            };
            let (etag, last_modified) = (text(header::ETAG), text(header::LAST_MODIFIED));
            let limit = usize::try_from(feed.max_bytes).unwrap_or(usize::MAX);
            let body = Limited::new(resp.into_body(), limit)
                .collect()
                .await
                .map_err(|e| {
                    if e.is::<http_body_util::LengthLimitError>() {
                        FetchError::TooLarge(feed.max_bytes)
                    } else {
                        FetchError::Body(e.to_string())
                    }
                })?
                .to_bytes();
            return Ok(Fetched::Body {
                body,
                etag,
                last_modified,
            });
        }
        Err(FetchError::Redirects)
    };
    tokio::time::timeout(feed.timeout, work)
        .await
        .unwrap_or(Err(FetchError::Timeout(feed.timeout)))
}

/// Where a redirect leads (RFC 9110 §10.2.2: Location may be relative);
/// never from https to http unless the feed allows http.
fn redirect(from: &Uri, headers: &HeaderMap, allow_http: bool) -> Result<Uri, FetchError> {
    let location = headers
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .ok_or(FetchError::BadRedirect)?;
    let lower = location.to_ascii_lowercase();
    let to: Uri = if lower.starts_with("http://") || lower.starts_with("https://") {
        location.parse().map_err(|_| FetchError::BadRedirect)?
    } else if location.starts_with("//")
        || location
            .split(['/', '?', '#'])
            .next()
            .is_some_and(|first| first.contains(':'))
    {
        // Another scheme (file:, ftp:, data:) or a network-path reference:
        // not followed.
        return Err(FetchError::BadRedirect);
    } else {
        let path = if location.starts_with('/') {
            location.to_string()
        } else {
            let base = from.path();
            let dir = &base[..base.rfind('/').map_or(0, |i| i + 1)];
            format!("{dir}{location}")
        };
        Uri::builder()
            .scheme(from.scheme_str().unwrap_or("https"))
            .authority(from.authority().map_or("", |a| a.as_str()))
            .path_and_query(path)
            .build()
            .map_err(|_| FetchError::BadRedirect)?
    };
    if to.scheme_str() != Some("https") && !allow_http {
        return Err(FetchError::InsecureRedirect(shown_url(&to.to_string())));
    }
    Ok(to)
}

/// How long until the next fetch: `every` spread by ±10% after a success
/// (replicas started together do not fetch together); after `failures`
/// failures in a row, 30 s doubling each time, never more than `every`,
/// spread over its upper half. `jitter` is uniform in [0, 1).
pub fn next_delay(every: Duration, failures: u32, jitter: f64) -> Duration {
    let jitter = jitter.clamp(0.0, 1.0);
    if failures == 0 {
        return every.mul_f64(0.9 + 0.2 * jitter);
    }
    let base = Duration::from_secs(30).saturating_mul(1 << (failures - 1).min(16));
    base.min(every).mul_f64(0.5 + 0.5 * jitter)
}

/// A uniform draw in [0, 1) from the system's randomness (0.5 without it).
pub fn jitter() -> f64 {
    let mut b = [0u8; 4];
    match ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b) {
        Ok(()) => f64::from(u32::from_le_bytes(b)) / (f64::from(u32::MAX) + 1.0),
        Err(_) => 0.5,
    }
}

/// What one fetch of a feed means for its list, before anything is applied.
#[derive(Debug)]
pub enum Verdict {
    /// The publisher confirmed the list in use (304, or the same prefixes).
    Same(Copy),
    /// A new list that looks right: the copy to try, and what it changes.
    New(Copy, crate::lists::Change),
    /// The list could not be read or looks wrong: the last good one stays.
    Refused { code: &'static str, detail: String },
}

/// Reads and judges what `fetched` brought, against `last`, at `now`.
pub fn verdict(
    feed: &Feed,
    last: Option<&Copy>,
    fetched: Fetched,
    now: jiff::Timestamp,
) -> Verdict {
    let confirm = |c: &Copy, etag: Option<String>, lm: Option<String>| Copy {
        fetched_at: now,
        etag: etag.or_else(|| c.etag.clone()),
        last_modified: lm.or_else(|| c.last_modified.clone()),
        ..c.clone()
    };
    let (body, etag, last_modified) = match fetched {
        Fetched::NotModified => {
            return match last {
                Some(c) => Verdict::Same(confirm(c, None, None)),
                None => Verdict::Refused {
                    code: "http_status",
                    detail: "304 to a request that had no copy to compare".into(),
                },
            };
        }
        Fetched::Body {
            body,
            etag,
            last_modified,
        } => (body, etag, last_modified),
    };
    let parsed = match crate::lists::parse(&feed.format, &body) {
        Ok(p) => p,
        Err(e) => {
            return Verdict::Refused {
                code: "unparseable",
                detail: e.to_string(),
            };
        }
    };
    let previous = last.map(|c| c.prefixes.as_slice());
    match crate::lists::judge(previous, &parsed.prefixes, &feed.limits) {
        Err(r) => Verdict::Refused {
            code: r.code(),
            detail: r.to_string(),
        },
        Ok(change) => match last {
            Some(c) if change.is_empty() => Verdict::Same(confirm(c, etag, last_modified)),
            _ => Verdict::New(
                Copy {
                    source: shown_url(&feed.url),
                    prefixes: parsed.prefixes,
                    fetched_at: now,
                    changed_at: now,
                    etag,
                    last_modified,
                    generation: last.map_or(1, |c| c.generation + 1),
                    no_address_since: None,
                },
                change,
            ),
        },
    }
}

/// Before the first compile at startup: fetches each feed, and resolves each
/// DNS name, that has no copy in `state_dir` yet, and writes what passes
/// there. One that cannot be fetched or resolved is left without a copy,
/// and the policy then fails to load, saying so (fail closed). Returns what
/// went wrong, per network.
pub async fn prime(policy_path: &std::path::Path) -> Vec<(String, String)> {
    let path = policy_path.to_path_buf();
    let missing = tokio::task::spawn_blocking(move || crate::policy::feeds::missing(&path))
        .await
        .unwrap_or_default();
    let mut problems = Vec::new();
    for name in &missing.dns {
        let lookup = dns::resolve(&missing.dns_settings, &name.name).await;
        let mut nx = None;
        let now = crate::clock::now();
        // At startup there is no last answer to keep: NXDOMAIN is an
        // answer (the name holds nothing), a failure is none.
        let outcome = match dns::step(&name.name, None, lookup, &mut nx, Duration::ZERO, now) {
            dns::Step::New(copy, _) | dns::Step::Same(copy) => copy
                .write(&name.copy_path)
                .map(|()| copy.prefixes.len())
                .map_err(|e| format!("cannot write {}: {e}", name.copy_path.display())),
            dns::Step::Keep { code, detail } => Err(format!("{detail} ({code})")),
        };
        match outcome {
            Ok(n) => tracing::info!(
                event = "dns_resolved",
                network = %name.network,
                name = %name.name,
                addresses = n,
                "first answer for a DNS name"
            ),
            Err(detail) => {
                tracing::error!(
                    event = "dns_lookup_failed",
                    network = %name.network,
                    name = %name.name,
                    detail = %detail,
                    "a DNS name with no last answer could not be resolved"
                );
                problems.push((name.network.clone(), format!("{}: {detail}", name.name)));
            }
        }
    }
    for feed in missing.feeds {
        let now = crate::clock::now();
        let outcome = match fetch(&feed, None).await {
            Err(e) => Err(format!("{} ({})", e, e.code())),
            Ok(fetched) => match verdict(&feed, None, fetched, now) {
                Verdict::New(copy, _) | Verdict::Same(copy) => copy
                    .write(&feed.copy_path)
                    .map(|()| copy.prefixes.len())
                    .map_err(|e| format!("cannot write {}: {e}", feed.copy_path.display())),
                Verdict::Refused { code, detail } => Err(format!("refused ({code}): {detail}")),
            },
        };
        match outcome {
            Ok(n) => tracing::info!(
                event = "feed_fetched",
                network = %feed.network,
                url = %shown_url(&feed.url),
                prefixes = n,
                "first copy of a published list fetched"
            ),
            Err(detail) => {
                tracing::error!(
                    event = "feed_fetch_failed",
                    network = %feed.network,
                    url = %shown_url(&feed.url),
                    detail = %detail,
                    "a published list with no last good copy could not be fetched"
                );
                problems.push((feed.network.clone(), detail));
            }
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_success_waits_every_give_or_take_ten_percent() {
        let h = Duration::from_secs(3600);
        assert_eq!(next_delay(h, 0, 0.0), Duration::from_secs(3240));
        assert_eq!(next_delay(h, 0, 0.5), h);
        assert!(next_delay(h, 0, 0.999) < Duration::from_secs(3961));
    }

    #[test]
    fn failures_back_off_from_thirty_seconds_up_to_every() {
        let h = Duration::from_secs(3600);
        assert_eq!(next_delay(h, 1, 1.0), Duration::from_secs(30));
        assert_eq!(next_delay(h, 2, 1.0), Duration::from_secs(60));
        assert_eq!(next_delay(h, 3, 0.0), Duration::from_secs(60));
        assert_eq!(next_delay(h, 30, 1.0), h);
        assert_eq!(next_delay(h, u32::MAX, 1.0), h);
    }

    #[test]
    fn a_url_is_shown_without_its_query() {
        assert_eq!(
            shown_url("https://lists.example/v4?token=secret"),
            "https://lists.example/v4"
        );
    }
}
