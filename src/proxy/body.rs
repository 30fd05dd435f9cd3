//! The request body as it goes to the console: the client's own stream, or,
//! for a sign-in whose account is read, the first bounded part read already
//! and then the rest of the stream. Either way the console receives the
//! same bytes (RFC 9112 §7: the framing may change, the content does not).

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::HeaderMap;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming, SizeHint};

/// A request body on its way to the console.
#[derive(Debug)]
pub enum RequestBody {
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

impl From<Incoming> for RequestBody {
    fn from(body: Incoming) -> Self {
        RequestBody::Stream(body)
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
        match self {
            RequestBody::Read(r) => r.head.as_deref().unwrap_or_default(),
            RequestBody::Stream(_) => &[],
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
        return Ok((RequestBody::Stream(body), Head::Oversized));
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
    Ok((RequestBody::Read(Box::new(out)), seen))
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            RequestBody::Stream(body) => Pin::new(body).poll_frame(cx),
            RequestBody::Read(r) => {
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

    fn is_end_stream(&self) -> bool {
        match self {
            RequestBody::Stream(body) => body.is_end_stream(),
            RequestBody::Read(r) => {
                r.head.is_none()
                    && r.trailers.is_none()
                    && r.rest.as_ref().is_none_or(Body::is_end_stream)
            }
        }
    }

    fn size_hint(&self) -> SizeHint {
        let r = match self {
            RequestBody::Stream(body) => return body.size_hint(),
            RequestBody::Read(r) => r,
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
