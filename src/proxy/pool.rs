//! A worker's own pool of HTTP/1.1 connections to a plain-http upstream
//! (the sidecar case: the console on localhost), and its one multiplexed
//! HTTP/2 connection to an h2c upstream ([`H2c`]).
//!
//! Why not hyper-util's pooled client here: it is built for many hosts and
//! many threads (a pool keyed by scheme and authority behind a lock, connect
//! racing, boxed futures), and under load it cost more CPU per request than
//! the rest of the proxy (docs/benchmarks.md). A worker thread talks to one
//! upstream, so its pool is a list: take an idle connection, send, and put
//! the connection back when the response body has been read to its end
//! ([`UpstreamBody`]), as nginx's `keepalive` upstream cache does.
//!
//! A connection the upstream closed while idle is noticed before use
//! (`is_closed`), or, in the race where it closes as the request goes out,
//! hyper hands the unsent request back and it is sent on a new connection.
//! Requests that may have reached the upstream are never sent twice.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http::uri::Authority;
use http::{Request, Response, StatusCode};
use hyper::body::{Body, Frame, Incoming, SizeHint};

use super::body::RequestBody;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

/// Idle connections kept per worker; beyond this, a returned connection is
/// closed. nginx's `keepalive 64` is per worker too; this allows bursts.
const MAX_IDLE: usize = 512;

/// Why a request did not get a response head.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    #[error("cannot connect to the upstream: {0}")]
    Connect(std::io::Error),
    #[error("upstream connection: {0}")]
    Handshake(hyper::Error),
    #[error(transparent)]
    Request(hyper::Error),
    #[error("every connection to the upstream is busy")]
    Busy,
}

impl PoolError {
    pub fn is_connect(&self) -> bool {
        matches!(self, PoolError::Connect(_) | PoolError::Handshake(_))
    }
}

struct Idle {
    tx: SendRequest<RequestBody>,
    since: Instant,
}

/// A bound on requests open at once to a console whose connections
/// someone else pools (hyper-util's client, for `https://`): a request
/// waits up to the connect timeout for a slot, then is [`PoolError::Busy`].
/// With HTTP/1.1 a connection carries one request at a time, so this bounds
/// the busy connections; idle ones are capped to the same number.
pub struct Slots {
    slots: Arc<Semaphore>,
    wait: Duration,
}

impl Slots {
    pub fn new(max: usize, wait: Duration) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(max.max(1))),
            wait,
        }
    }

    pub async fn acquire(&self) -> Result<OwnedSemaphorePermit, PoolError> {
        match tokio::time::timeout(self.wait, self.slots.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            // Never closed; timed out: every slot stayed busy.
            _ => Err(PoolError::Busy),
        }
    }
}

/// One worker's connections to the upstream.
pub struct Pool {
    authority: Authority,
    connect_timeout: Duration,
    idle_timeout: Duration,
    idle: Mutex<VecDeque<Idle>>,
    /// One permit per connection this worker may open (its share of
    /// `limits.upstream_connections`); a connection holds its permit until
    /// it closes, so clients' fan-out cannot open connections without end.
    slots: Arc<Semaphore>,
    /// Woken when a connection comes back idle or closes (a slot frees).
    freed: Arc<Notify>,
    /// Whether a sweeper task is running (only while connections are idle).
    sweeping: AtomicBool,
}

impl Pool {
    pub fn new(
        authority: Authority,
        connect_timeout: Duration,
        idle_timeout: Duration,
        max_connections: usize,
    ) -> Self {
        Self {
            authority,
            connect_timeout,
            idle_timeout,
            idle: Mutex::new(VecDeque::new()),
            slots: Arc::new(Semaphore::new(max_connections.max(1))),
            freed: Arc::new(Notify::new()),
            sweeping: AtomicBool::new(false),
        }
    }

    /// Closes idle connections once they pass the idle timeout, so that a
    /// burst's connections do not linger until the next request. Runs on
    /// the worker's runtime while any connection is idle, and stops (no
    /// timer at all) when none is.
    fn sweep_later(self: &Arc<Self>) {
        // Outside a runtime (a body dropped as the worker stops) there is
        // nothing to sweep for.
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if self.sweeping.swap(true, Ordering::AcqRel) {
            return;
        }
        let pool = Arc::downgrade(self);
        let step = (self.idle_timeout / 4).max(Duration::from_millis(50));
        rt.spawn(async move {
            loop {
                tokio::time::sleep(step).await;
                let Some(pool) = pool.upgrade() else { return };
                let mut idle = pool.lock();
                // The oldest are at the front.
                while idle
                    .front()
                    .is_some_and(|i| i.since.elapsed() > pool.idle_timeout || i.tx.is_closed())
                {
                    idle.pop_front();
                }
                if idle.is_empty() {
                    pool.sweeping.store(false, Ordering::Release);
                    return;
                }
            }
        });
    }

    fn lock(&self) -> MutexGuard<'_, VecDeque<Idle>> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The most recently returned usable connection, dropping the closed
    /// and the expired on the way.
    fn take_idle(&self) -> Option<SendRequest<RequestBody>> {
        let mut idle = self.lock();
        while let Some(i) = idle.pop_back() {
            if i.tx.is_closed() {
                continue;
            }
            if i.since.elapsed() > self.idle_timeout {
                // The oldest are at the front: they are all expired too.
                idle.clear();
                return None;
            }
            return Some(i.tx);
        }
        None
    }

    fn put_back(self: &Arc<Self>, tx: SendRequest<RequestBody>) {
        if tx.is_closed() {
            return;
        }
        let mut idle = self.lock();
        if idle.len() < MAX_IDLE {
            idle.push_back(Idle {
                tx,
                since: Instant::now(),
            });
            drop(idle);
            self.freed.notify_one();
            self.sweep_later();
        }
    }

    /// An idle connection, or a slot for a new one; waits (up to the
    /// connect timeout) while every connection is busy, then gives up.
    async fn checkout(&self) -> Result<Checkout, PoolError> {
        let deadline = tokio::time::Instant::now() + self.connect_timeout;
        loop {
            // Registered before looking, so that a connection freed
            // between the look and the wait still wakes this request.
            let freed = self.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            if let Some(tx) = self.take_idle() {
                return Ok(Checkout::Idle(tx));
            }
            if let Ok(permit) = self.slots.clone().try_acquire_owned() {
                return Ok(Checkout::New(permit));
            }
            if tokio::time::timeout_at(deadline, freed).await.is_err() {
                return Err(PoolError::Busy);
            }
        }
    }

    async fn connect(
        &self,
        permit: OwnedSemaphorePermit,
    ) -> Result<SendRequest<RequestBody>, PoolError> {
        let stream = connect_tcp(&self.authority, self.connect_timeout).await?;
        let (tx, conn) = http1::Builder::new()
            .handshake(TokioIo::new(stream))
            .await
            .map_err(PoolError::Handshake)?;
        // The connection runs on this worker's runtime; it ends when the
        // sender is dropped, the upstream closes it, or it is upgraded and
        // the tunnel ends.
        let freed = self.freed.clone();
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!(event = "upstream_connection_error", detail = %e);
            }
            // The slot is free again (a tunnel's connection ends here too).
            drop(permit);
            freed.notify_one();
        });
        Ok(tx)
    }

    /// Sends `req` (origin-form URI) on an idle connection or a new one.
    pub async fn request(
        self: &Arc<Self>,
        mut req: Request<RequestBody>,
    ) -> Result<Response<UpstreamBody>, PoolError> {
        // One retry, only for a request hyper hands back unsent (the idle
        // connection was closed under it).
        for _ in 0..2 {
            let (mut tx, fresh) = match self.checkout().await? {
                Checkout::Idle(tx) => (tx, false),
                Checkout::New(permit) => (self.connect(permit).await?, true),
            };
            if tx.ready().await.is_err() {
                if fresh {
                    return Err(PoolError::Connect(std::io::Error::other(
                        "the upstream closed a new connection",
                    )));
                }
                continue;
            }
            match tx.try_send_request(req).await {
                Ok(resp) => {
                    // After a 101 the connection is the tunnel's; otherwise
                    // it is reusable once the body has been read.
                    let back = (resp.status() != StatusCode::SWITCHING_PROTOCOLS)
                        .then(|| (self.clone(), tx));
                    return Ok(resp.map(|body| {
                        let mut body = UpstreamBody::new(body);
                        body.back = back;
                        body
                    }));
                }
                Err(mut e) => match e.take_message() {
                    Some(unsent) if !fresh => req = unsent,
                    _ => return Err(PoolError::Request(e.into_error())),
                },
            }
        }
        Err(PoolError::Connect(std::io::Error::other(
            "the upstream closed every connection tried",
        )))
    }
}

enum Checkout {
    Idle(SendRequest<RequestBody>),
    New(OwnedSemaphorePermit),
}

/// A TCP connection to the upstream, within `timeout`.
async fn connect_tcp(authority: &Authority, timeout: Duration) -> Result<TcpStream, PoolError> {
    let stream = tokio::time::timeout(timeout, TcpStream::connect(authority.as_str()))
        .await
        .map_err(|_| {
            PoolError::Connect(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "connect timed out",
            ))
        })?
        .map_err(PoolError::Connect)?;
    // Small requests and responses go out at once (nginx does the same on
    // keep-alive connections).
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// The upstream's response body; gives its connection back to the pool
/// when read to the end. Dropped early (the client went away), it closes
/// the connection instead: the rest of the body is still on the wire.
///
/// A small answer is read whole ahead of the client ([`read_ahead`](
/// Self::read_ahead)), as nginx's `proxy_buffering` does: the connection
/// and the request's places at the console are given back at once, and a
/// client that reads slowly, or nothing at all, holds only memory, within
/// a bound shared by all ([`Buffers`]).
pub struct UpstreamBody {
    body: Incoming,
    /// Frames read ahead of the client, given to it first.
    ahead: Ahead,
    /// The console's body has been read to its end (into `ahead`).
    ended: bool,
    /// The console's body broke while it was read ahead: the client meets
    /// the error after the frames that came before it.
    broke: Option<hyper::Error>,
    /// The bytes of `ahead`, counted against every request's [`Buffers`].
    reserved: Option<Reserved>,
    back: Option<(Arc<Pool>, SendRequest<RequestBody>)>,
    /// The request's places at the console (its address's share, and a
    /// public place), held until the body ends ([`super::admission`]).
    held: Option<super::admission::Held>,
    /// A request slot to an `https://` console ([`Slots`]), held until the
    /// body ends.
    slot: Option<OwnedSemaphorePermit>,
}

/// Frames read ahead of the client, in order. Most answers are one data
/// frame: that one is kept inline (a `Bytes`), anything more (further
/// frames, trailers) in a box, so that every response's body stays small
/// to move.
#[derive(Default)]
struct Ahead {
    first: Option<bytes::Bytes>,
    rest: Option<Box<std::collections::VecDeque<Frame<bytes::Bytes>>>>,
}

impl Ahead {
    fn push_back(&mut self, frame: Frame<bytes::Bytes>) {
        if self.first.is_none() && self.rest.is_none() {
            match frame.into_data() {
                Ok(data) => self.first = Some(data),
                Err(frame) => self.rest.get_or_insert_default().push_back(frame),
            }
        } else {
            self.rest.get_or_insert_default().push_back(frame);
        }
    }

    fn pop_front(&mut self) -> Option<Frame<bytes::Bytes>> {
        if let Some(data) = self.first.take() {
            return Some(Frame::data(data));
        }
        let rest = self.rest.as_mut()?;
        let frame = rest.pop_front();
        if rest.is_empty() {
            self.rest = None;
        }
        frame
    }

    fn is_empty(&self) -> bool {
        self.first.is_none() && self.rest.is_none()
    }

    /// Bytes of data held.
    fn data_len(&self) -> u64 {
        let rest: u64 = self
            .rest
            .iter()
            .flat_map(|r| r.iter())
            .filter_map(|f| f.data_ref().map(|d| d.len() as u64))
            .sum();
        self.first.as_ref().map_or(0, |d| d.len() as u64) + rest
    }
}

/// Bytes of answers read ahead of their clients, over all requests.
pub struct Buffers {
    used: std::sync::atomic::AtomicUsize,
    max: usize,
}

impl Buffers {
    pub fn new(max: usize) -> Self {
        Self {
            used: std::sync::atomic::AtomicUsize::new(0),
            max,
        }
    }

    /// `n` bytes, if they fit.
    fn reserve(self: &Arc<Self>, n: usize) -> Option<Reserved> {
        let mut used = self.used.load(Ordering::Relaxed);
        loop {
            let next = used.checked_add(n).filter(|&u| u <= self.max)?;
            match self
                .used
                .compare_exchange_weak(used, next, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => {
                    return Some(Reserved {
                        buffers: self.clone(),
                        n,
                    });
                }
                Err(now) => used = now,
            }
        }
    }

    /// Bytes held now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }
}

/// Bytes counted against [`Buffers`]; given back when dropped.
struct Reserved {
    buffers: Arc<Buffers>,
    n: usize,
}

impl Drop for Reserved {
    fn drop(&mut self) {
        self.buffers.used.fetch_sub(self.n, Ordering::AcqRel);
    }
}

impl UpstreamBody {
    fn new(body: Incoming) -> Self {
        Self {
            body,
            ahead: Ahead::default(),
            ended: false,
            broke: None,
            reserved: None,
            back: None,
            held: None,
            slot: None,
        }
    }

    /// A body from a client that keeps its own connections.
    pub fn plain(body: Incoming) -> Self {
        Self::new(body)
    }

    /// [`plain`](Self::plain), holding `slot` until the body ends.
    pub fn in_slot(body: Incoming, slot: OwnedSemaphorePermit) -> Self {
        let mut body = Self::new(body);
        body.slot = Some(slot);
        body
    }

    /// Keeps `held` until the body has been read to its end or dropped.
    pub fn hold(&mut self, held: super::admission::Held) {
        self.held = Some(held);
    }

    /// The console's body has ended: its connection goes back to the pool
    /// and the request's places are given back.
    fn release(&mut self) {
        self.held = None;
        self.slot = None;
        if let Some((pool, tx)) = self.back.take() {
            pool.put_back(tx);
        }
    }

    /// Starts reading ahead an answer whose length the console gave and
    /// which is at most `limit` bytes, its bytes counted against `buffers`
    /// (none taken when they are full): whatever has arrived is taken now.
    /// `true` when more is to come: [`read_rest`](Self::read_rest) then
    /// waits for it. Answers of unknown or larger length stream as they
    /// come (whatever was read goes first).
    pub fn read_ahead(
        &mut self,
        cx: &mut Context<'_>,
        limit: usize,
        buffers: &Arc<Buffers>,
    ) -> bool {
        let Some(len) = self.body.size_hint().exact() else {
            return false;
        };
        if self.body.is_end_stream() {
            self.ended = true;
            self.release();
            return false;
        }
        let Some(len) = usize::try_from(len).ok().filter(|&l| l <= limit) else {
            return false;
        };
        let Some(reserved) = buffers.reserve(len) else {
            return false;
        };
        self.reserved = Some(reserved);
        match self.take_arrived(cx) {
            Poll::Ready(end) => {
                self.end(end);
                false
            }
            Poll::Pending => true,
        }
    }

    /// Frames that have arrived, until the end (`Ready`, with the error
    /// that broke the body if one did) or until none is there (`Pending`).
    fn take_arrived(&mut self, cx: &mut Context<'_>) -> Poll<Option<hyper::Error>> {
        loop {
            match Pin::new(&mut self.body).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => self.ahead.push_back(frame),
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(e)),
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    /// The console's body was read to its end (or broke): its connection
    /// and the request's places are given back at once.
    fn end(&mut self, broke: Option<hyper::Error>) {
        self.ended = true;
        match broke {
            None => self.release(),
            // A broken body: the client gets what arrived, then the error
            // (as when streaming); the connection is not reused.
            Some(e) => {
                self.broke = Some(e);
                self.back = None;
                self.held = None;
                self.slot = None;
            }
        }
    }

    /// The rest of an answer [`read_ahead`](Self::read_ahead) began, by
    /// `deadline`; if it does not come in time, it streams as it comes.
    pub async fn read_rest(&mut self, deadline: tokio::time::Instant) {
        let rest = std::future::poll_fn(|cx| self.take_arrived(cx));
        if let Ok(end) = tokio::time::timeout_at(deadline, rest).await {
            self.end(end);
        }
    }
}

impl Drop for UpstreamBody {
    /// hyper's server does not poll a body that says it has ended (an empty
    /// body, a HEAD response): give the connection back here then.
    fn drop(&mut self) {
        if let Some((pool, tx)) = self.back.take() {
            if self.body.is_end_stream() {
                pool.put_back(tx);
            }
        }
    }
}

impl Body for UpstreamBody {
    type Data = bytes::Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = &mut *self;
        if let Some(frame) = this.ahead.pop_front() {
            if this.ahead.is_empty() {
                this.reserved = None;
            }
            return Poll::Ready(Some(Ok(frame)));
        }
        if this.ended {
            return Poll::Ready(this.broke.take().map(Err));
        }
        let polled = Pin::new(&mut this.body).poll_frame(cx);
        if let Poll::Ready(None) = polled {
            this.release();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.ahead.is_empty() && self.broke.is_none() && (self.ended || self.body.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        let ahead = self.ahead.data_len();
        if self.ended {
            return SizeHint::with_exact(ahead);
        }
        let inner = self.body.size_hint();
        let mut hint = SizeHint::new();
        hint.set_lower(inner.lower() + ahead);
        if let Some(upper) = inner.upper() {
            hint.set_upper(upper + ahead);
        }
        hint
    }
}

/// A worker's one HTTP/2 connection to an `h2c://` upstream (prior
/// knowledge, no TLS), shared by all its requests (HTTP/2 multiplexes) and
/// opened again when the upstream closes it. The connection goes to the
/// configured address; each request's URI authority is only its
/// `:authority`, so a client cannot make netwarden open connections by
/// varying its Host.
pub struct H2c {
    authority: Authority,
    connect_timeout: Duration,
    sender: tokio::sync::Mutex<Option<hyper::client::conn::http2::SendRequest<RequestBody>>>,
}

impl H2c {
    pub fn new(authority: Authority, connect_timeout: Duration) -> Self {
        Self {
            authority,
            connect_timeout,
            sender: tokio::sync::Mutex::new(None),
        }
    }

    async fn connect(
        &self,
    ) -> Result<hyper::client::conn::http2::SendRequest<RequestBody>, PoolError> {
        let stream = connect_tcp(&self.authority, self.connect_timeout).await?;
        let (tx, conn) =
            hyper::client::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                .timer(hyper_util::rt::TokioTimer::new())
                .handshake(TokioIo::new(stream))
                .await
                .map_err(PoolError::Handshake)?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(event = "upstream_connection_error", detail = %e);
            }
        });
        Ok(tx)
    }

    /// Sends `req` (absolute URI: its authority becomes `:authority`).
    pub async fn request(
        &self,
        req: Request<RequestBody>,
    ) -> Result<Response<Incoming>, PoolError> {
        // One retry, on a new connection, when the shared one turns out
        // closed before the request went out.
        for _ in 0..2 {
            let (mut tx, fresh) = {
                let mut slot = self.sender.lock().await;
                match slot.as_ref().filter(|tx| !tx.is_closed()) {
                    Some(tx) => (tx.clone(), false),
                    None => {
                        let tx = self.connect().await?;
                        *slot = Some(tx.clone());
                        (tx, true)
                    }
                }
            };
            match tx.ready().await {
                Ok(()) => return tx.send_request(req).await.map_err(PoolError::Request),
                Err(e) if fresh => return Err(PoolError::Handshake(e)),
                Err(_) => continue,
            }
        }
        Err(PoolError::Connect(std::io::Error::other(
            "the upstream closed every connection tried",
        )))
    }
}
