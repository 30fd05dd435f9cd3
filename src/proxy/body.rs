//! The request body as it goes to the console: the client's own stream, or,
//! for a sign-in whose account is read, the first bounded part read already
//! and then the rest of the stream. Either way the console receives the
//! same bytes (RFC 9112 §7: the framing may change, the content does not).
//!
//! While it is forwarded, the body is held to a pace (`timeouts.body_read`,
//! `timeouts.body_min_rate`): a client that stops sending, or trickles,
//! loses its request instead of holding a connection to the console.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::HeaderMap;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use tokio::time::{Instant, Sleep};

/// A request body on its way to the console.
#[derive(Debug)]
pub struct RequestBody {
    kind: Kind,
    /// Set by [`RequestBody::pace`]; `None` for bodies that are not held to
    /// a pace (empty ones, and before forwarding).
    pace: Option<Box<Pacing>>,
}

#[derive(Debug)]
enum Kind {
    /// The client's stream, untouched: every request but a sign-in whose
    /// account is read (one branch a frame).
    Stream(Incoming),
    /// A sign-in's body with its first part read already (boxed, so that
    /// the common case stays the size of hyper's body).
    Read(Box<ReadBody>),
}

#[derive(Debug, Default)]
pub struct ReadBody {
    /// Bytes read before forwarding, sent first.
    head: Option<Bytes>,
    /// Trailers that arrived while the head was read (the body had ended).
    trailers: Option<HeaderMap>,
    /// The rest of the client's stream; `None` once it has ended.
    rest: Option<Incoming>,
}

impl RequestBody {
    /// No body: a bodiless request sent a second time
    /// ([`super::pool::Pool::request`]).
    pub fn empty() -> Self {
        RequestBody {
            kind: Kind::Read(Box::default()),
            pace: None,
        }
    }
}

impl From<Incoming> for RequestBody {
    fn from(body: Incoming) -> Self {
        RequestBody {
            kind: Kind::Stream(body),
            pace: None,
        }
    }
}

/// Why a request body did not reach the console.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// The client's stream broke (reset, malformed chunking).
    #[error(transparent)]
    Client(#[from] hyper::Error),
    /// The client kept netwarden waiting for longer than its pace allows.
    #[error("the request body stalled (timeouts.body_read, timeouts.body_min_rate)")]
    Stalled,
}

/// How fast a body must come, nginx's `client_body_timeout` and Apache
/// mod_reqtimeout's `MinRate` together: no wait for the client longer than
/// `idle`, and in all no more waiting than `idle` plus one second per
/// `min_rate` bytes received (`0`: no rate). Only time spent waiting for
/// the client counts: a console that reads slowly costs the client nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pace {
    pub idle: Duration,
    pub min_rate: u64,
}

impl Pace {
    /// How much longer the client may keep netwarden waiting, having sent
    /// `received` bytes and made it wait `waited` already: at most `idle`,
    /// and with a rate of 0, always `idle`.
    fn allowance(self, received: u64, waited: Duration) -> Duration {
        let total = match self.min_rate {
            0 => return self.idle,
            rate => self
                .idle
                .saturating_add(Duration::from_millis(received.saturating_mul(1000) / rate)),
        };
        total.saturating_sub(waited).min(self.idle)
    }
}

#[derive(Debug)]
struct Pacing {
    pace: Pace,
    received: u64,
    /// Time spent waiting for the client, in waits that have ended.
    waited: Duration,
    /// When the current wait began.
    waiting_since: Option<Instant>,
    /// The current wait's end (made on the first wait: most bodies never
    /// make netwarden wait).
    timer: Option<Pin<Box<Sleep>>>,
    fate: Arc<AtomicU8>,
    /// The request's id, for the `body_timeout` line.
    request_id: [u8; 16],
}

impl Pacing {
    /// Counts a frame that arrived.
    fn arrived(&mut self, bytes: usize) {
        self.received = self.received.saturating_add(bytes as u64);
        if let Some(since) = self.waiting_since.take() {
            self.waited = self.waited.saturating_add(since.elapsed());
        }
    }

    /// The client has nothing for us: `Ready` once it has kept us waiting
    /// longer than its pace allows.
    fn wait(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let since = *self.waiting_since.get_or_insert_with(Instant::now);
        let deadline = since + self.pace.allowance(self.received, self.waited);
        let timer = match &mut self.timer {
            Some(t) => {
                if t.deadline() != deadline {
                    t.as_mut().reset(deadline);
                }
                t
            }
            None => self
                .timer
                .insert(Box::pin(tokio::time::sleep_until(deadline))),
        };
        if timer.as_mut().poll(cx).is_ready() {
            self.fate.store(STALLED, Ordering::Relaxed);
            // Logged here, not by the caller: the console may have begun
            // its answer already, and the request's line then says 200.
            tracing::info!(
                event = "body_timeout",
                request_id = std::str::from_utf8(&self.request_id)
                    .unwrap_or_default()
                    .trim_end_matches('\0'),
                "the client stopped sending its request body, or sent it too slowly (timeouts.body_read, timeouts.body_min_rate); the console's request was aborted"
            );
            return Poll::Ready(());
        }
        Poll::Pending
    }
}

const STALLED: u8 = 1;
const BROKE: u8 = 2;

/// How a paced body ended, if not well; see [`RequestBody::pace`].
#[derive(Clone, Debug, Default)]
pub struct Fate(Option<Arc<AtomicU8>>);

impl Fate {
    fn is(&self, what: u8) -> bool {
        self.0
            .as_ref()
            .is_some_and(|s| s.load(Ordering::Relaxed) == what)
    }

    /// The client kept netwarden waiting past its pace.
    pub fn stalled(&self) -> bool {
        self.is(STALLED)
    }

    /// The client's stream broke: it went away mid-body, reset it, or sent
    /// malformed chunking. Its doing, not the console's.
    pub fn broke(&self) -> bool {
        self.is(BROKE)
    }
}

/// What [`read_head`] saw of the body.
#[derive(Debug, PartialEq, Eq)]
pub enum Head {
    /// The whole body, at most the limit.
    Whole,
    /// More than the limit (read or announced).
    Oversized,
    /// Not all there within the time allowed.
    Slow,
}

impl RequestBody {
    /// The bytes read so far.
    pub fn head(&self) -> &[u8] {
        match &self.kind {
            Kind::Read(r) => r.head.as_deref().unwrap_or_default(),
            Kind::Stream(_) => &[],
        }
    }

    /// Holds the rest of the body to `pace`. A body that falls behind ends
    /// in [`BodyError::Stalled`] (the console's request is aborted, its
    /// connection freed; a `body_timeout` line names `request_id`), and the
    /// returned [`Fate`] says so, or that the client's stream broke. An
    /// empty body costs nothing.
    pub fn pace(&mut self, pace: Pace, request_id: &str) -> Fate {
        if self.is_end_stream() {
            return Fate(None);
        }
        let fate = Arc::new(AtomicU8::new(0));
        let mut id = [0u8; 16];
        let n = request_id.len().min(16);
        id[..n].copy_from_slice(&request_id.as_bytes()[..n]);
        self.pace = Some(Box::new(Pacing {
            pace,
            received: 0,
            waited: Duration::ZERO,
            waiting_since: None,
            timer: None,
            fate: fate.clone(),
            request_id: id,
        }));
        Fate(Some(fate))
    }

    fn poll_inner(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match &mut self.kind {
            Kind::Stream(body) => Pin::new(body).poll_frame(cx),
            Kind::Read(r) => {
                if let Some(head) = r.head.take() {
                    return Poll::Ready(Some(Ok(Frame::data(head))));
                }
                if let Some(rest) = r.rest.as_mut() {
                    return Pin::new(rest).poll_frame(cx);
                }
                Poll::Ready(r.trailers.take().map(|t| Ok(Frame::trailers(t))))
            }
        }
    }
}

/// Reads the first `limit` bytes of `body` (more only if one frame brings
/// them), for at most `wait`; the returned body still holds every byte.
/// Errors are the client's (a broken or reset body).
pub async fn read_head(
    body: Incoming,
    limit: usize,
    wait: Duration,
) -> Result<(RequestBody, Head), hyper::Error> {
    // A Content-Length over the limit: nothing is read, nothing waited for.
    if body.size_hint().exact().is_some_and(|n| n > limit as u64) {
        return Ok((RequestBody::from(body), Head::Oversized));
    }
    let mut out = ReadBody {
        rest: Some(body),
        ..ReadBody::default()
    };
    let mut buf = BytesMut::new();
    let deadline = tokio::time::Instant::now() + wait;
    let seen = loop {
        let Some(rest) = out.rest.as_mut() else {
            break Head::Whole;
        };
        if rest.is_end_stream() {
            out.rest = None;
            break Head::Whole;
        }
        if buf.len() > limit {
            break Head::Oversized;
        }
        let frame = match tokio::time::timeout_at(deadline, rest.frame()).await {
            Err(_) => break Head::Slow,
            Ok(None) => {
                out.rest = None;
                break Head::Whole;
            }
            Ok(Some(frame)) => frame?,
        };
        match frame.into_data() {
            Ok(data) => buf.extend_from_slice(&data),
            Err(frame) => {
                // Trailers end the body.
                out.trailers = frame.into_trailers().ok();
                out.rest = None;
                break Head::Whole;
            }
        }
    };
    let seen = match seen {
        Head::Whole if buf.len() > limit => Head::Oversized,
        other => other,
    };
    if !buf.is_empty() {
        out.head = Some(buf.freeze());
    }
    let body = RequestBody {
        kind: Kind::Read(Box::new(out)),
        pace: None,
    };
    Ok((body, seen))
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.get_mut();
        let polled = this.poll_inner(cx);
        let Some(pacing) = this.pace.as_deref_mut() else {
            return polled.map(|f| f.map(|f| f.map_err(BodyError::from)));
        };
        match polled {
            Poll::Pending => match pacing.wait(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(BodyError::Stalled))),
                Poll::Pending => Poll::Pending,
            },
            Poll::Ready(Some(Ok(frame))) => {
                pacing.arrived(frame.data_ref().map_or(0, Bytes::len));
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                pacing.fate.store(BROKE, Ordering::Relaxed);
                Poll::Ready(Some(Err(BodyError::from(e))))
            }
            Poll::Ready(None) => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Stream(body) => body.is_end_stream(),
            Kind::Read(r) => {
                r.head.is_none()
                    && r.trailers.is_none()
                    && r.rest.as_ref().is_none_or(Body::is_end_stream)
            }
        }
    }

    fn size_hint(&self) -> SizeHint {
        let r = match &self.kind {
            Kind::Stream(body) => return body.size_hint(),
            Kind::Read(r) => r,
        };
        let head = r.head.as_ref().map_or(0, |h| h.len() as u64);
        let (lower, upper) = match &r.rest {
            Some(rest) => {
                let h = rest.size_hint();
                (h.lower(), h.upper())
            }
            None => (0, Some(0)),
        };
        let mut hint = SizeHint::new();
        hint.set_lower(lower.saturating_add(head));
        if let Some(upper) = upper {
            hint.set_upper(upper.saturating_add(head));
        }
        hint
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PACE: Pace = Pace {
        idle: Duration::from_secs(20),
        min_rate: 500,
    };

    #[test]
    fn each_wait_is_at_most_idle() {
        assert_eq!(PACE.allowance(0, Duration::ZERO), Duration::from_secs(20));
        // A megabyte received earns credit, but one wait is still 20 s.
        assert_eq!(
            PACE.allowance(1_000_000, Duration::ZERO),
            Duration::from_secs(20)
        );
    }

    #[test]
    fn waiting_in_all_is_idle_plus_a_second_per_min_rate_bytes() {
        // 10 s of waits so far, 2,500 bytes: 20 + 5 - 10 = 15 s left.
        assert_eq!(
            PACE.allowance(2_500, Duration::from_secs(10)),
            Duration::from_secs(15)
        );
        // A trickle: a byte per 19 s wait, 100 waits in, no time left.
        assert_eq!(
            PACE.allowance(100, Duration::from_secs(19 * 100)),
            Duration::ZERO
        );
    }

    #[test]
    fn a_rate_of_zero_bounds_only_each_wait() {
        let pace = Pace {
            idle: Duration::from_secs(20),
            min_rate: 0,
        };
        assert_eq!(
            pace.allowance(0, Duration::from_secs(3600)),
            Duration::from_secs(20)
        );
    }
}
