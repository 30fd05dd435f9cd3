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
//!
//! An idle connection is parked after [`PARK_AFTER`], as the listener parks
//! its clients' connections: hyper's connection (its read buffer, its
//! request channel, its task: about 27 KB) is dropped and only the socket
//! and its slot are kept; the next request starts a hyper connection on the
//! socket again (no network exchange). A request that asks for an upgrade
//! goes on a connection of its own, which is never parked or pooled:
//! hyper hands an upgraded socket only to a connection it drives to the
//! end.

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

/// An idle connection to the upstream, kept for the next request.
struct Idle {
    kept: Kept,
    /// When its last answer ended (a parked connection keeps it).
    since: Instant,
}

enum Kept {
    /// hyper's connection, running.
    Live(Lent),
    /// The socket alone.
    Parked(Parked),
}

/// A parked connection: its socket and its slot, counted in
/// `netwarden_upstream_parked_connections` while it is kept.
struct Parked {
    stream: TcpStream,
    permit: OwnedSemaphorePermit,
    _counted: super::listener::OpenConnection,
}

/// A running connection's sender, and how to ask its task to hand the
/// socket back for parking rather than close it.
struct Lent {
    tx: SendRequest<RequestBody>,
    /// Set (to when the connection fell idle) before `tx` is dropped to
    /// park the connection.
    park: Arc<std::sync::OnceLock<Instant>>,
}

/// How long an upstream connection is idle before it is parked: as the
/// listener's (a second: under load a connection is never that quiet, so
/// parking costs nothing there).
const PARK_AFTER: Duration = super::listener::PARK_AFTER;

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
    /// Idle connections kept (this worker's share of
    /// `limits.upstream_keepalive`); beyond this, a connection whose
    /// request is done is closed, as nginx's `keepalive` does.
    max_idle: usize,
    idle: Mutex<VecDeque<Idle>>,
    /// One permit per connection this worker may open (its share of
    /// `limits.upstream_connections`); a connection holds its permit until
    /// it closes, so clients' fan-out cannot open connections without end.
    slots: Arc<Semaphore>,
    /// Woken when a connection comes back idle or closes (a slot frees).
    freed: Arc<Notify>,
    /// Whether a sweeper task is running (only while connections are idle).
    sweeping: AtomicBool,
    /// `netwarden_upstream_parked_connections`.
    parked: prometheus_client::metrics::gauge::Gauge,
}

impl Pool {
    pub fn new(
        authority: Authority,
        connect_timeout: Duration,
        idle_timeout: Duration,
        max_connections: usize,
        max_idle: usize,
        parked: prometheus_client::metrics::gauge::Gauge,
    ) -> Self {
        Self {
            parked,
            max_idle,
            authority,
            connect_timeout,
            idle_timeout,
            idle: Mutex::new(VecDeque::new()),
            slots: Arc::new(Semaphore::new(max_connections.max(1))),
            freed: Arc::new(Notify::new()),
            sweeping: AtomicBool::new(false),
        }
    }

    /// Closes idle connections once they pass the idle timeout or the
    /// upstream closes them, and parks those idle for [`PARK_AFTER`], so
    /// that a burst's connections do not linger with their buffers. Runs on
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
        let step = (self.idle_timeout / 4).clamp(Duration::from_millis(50), PARK_AFTER);
        rt.spawn(async move {
            loop {
                tokio::time::sleep(step).await;
                let Some(pool) = pool.upgrade() else { return };
                if !pool.sweep() {
                    pool.sweeping.store(false, Ordering::Release);
                    return;
                }
            }
        });
    }

    /// One round of [`sweep_later`](Self::sweep_later); `false` when no
    /// connection is idle any more. A connection being parked leaves the
    /// list until its task hands the socket back ([`park`](Self::park)).
    fn sweep(&self) -> bool {
        let now = Instant::now();
        let mut closed = false;
        let mut idle = self.lock();
        idle.retain(|i| {
            let age = now.saturating_duration_since(i.since);
            age <= self.idle_timeout
                && match &i.kept {
                    Kept::Live(lent) if age >= PARK_AFTER && !lent.tx.is_closed() => {
                        // Dropping the sender (below) ends hyper's
                        // connection; its task sees the mark and parks.
                        let _ = lent.park.set(i.since);
                        false
                    }
                    Kept::Live(lent) => !lent.tx.is_closed(),
                    Kept::Parked(parked) => {
                        let open = still_open(&parked.stream);
                        closed |= !open;
                        open
                    }
                }
        });
        let any = !idle.is_empty();
        drop(idle);
        if closed {
            // A parked connection's slot is free at once.
            self.freed.notify_one();
        }
        any
    }

    fn lock(&self) -> MutexGuard<'_, VecDeque<Idle>> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The most recently returned usable connection, dropping the closed
    /// and the expired on the way.
    fn take_idle(&self) -> Option<Checkout> {
        let mut idle = self.lock();
        while let Some(i) = idle.pop_back() {
            let idle_for = i.since.elapsed();
            if idle_for > self.idle_timeout {
                // The oldest are at the front: they are all expired too.
                idle.clear();
                return None;
            }
            match i.kept {
                Kept::Live(lent) if lent.tx.is_closed() => {}
                Kept::Live(lent) => return Some(Checkout::Idle(lent, idle_for)),
                Kept::Parked(parked) if still_open(&parked.stream) => {
                    return Some(Checkout::Parked(parked, idle_for));
                }
                // Closed by the console: its slot is free now, for
                // whoever waits for one.
                Kept::Parked(..) => self.freed.notify_one(),
            }
        }
        None
    }

    fn put_back(self: &Arc<Self>, lent: Lent) {
        if lent.tx.is_closed() {
            return;
        }
        let mut idle = self.lock();
        if idle.len() < self.max_idle {
            idle.push_back(Idle {
                kept: Kept::Live(lent),
                since: Instant::now(),
            });
            drop(idle);
            self.freed.notify_one();
            self.sweep_later();
        }
    }

    /// A parked connection's socket, back from its task: kept in the
    /// list's order (by `since`), or closed if there is no room for it.
    fn park(self: &Arc<Self>, stream: TcpStream, permit: OwnedSemaphorePermit, since: Instant) {
        let mut idle = self.lock();
        if idle.len() < self.max_idle && since.elapsed() <= self.idle_timeout {
            let at = idle.partition_point(|i| i.since <= since);
            idle.insert(
                at,
                Idle {
                    kept: Kept::Parked(Parked {
                        stream,
                        permit,
                        _counted: super::listener::OpenConnection::on(&self.parked),
                    }),
                    since,
                },
            );
        } else {
            drop(permit);
        }
        drop(idle);
        self.freed.notify_one();
        self.sweep_later();
    }

    /// An idle connection, or a slot for a new one; waits (up to the
    /// connect timeout) while every connection is busy, then gives up. A
    /// request that asks for an upgrade (`own`) gets a slot for a new
    /// connection only, and closes an idle one to make room if it must.
    async fn checkout(&self, own: bool) -> Result<Checkout, PoolError> {
        let deadline = tokio::time::Instant::now() + self.connect_timeout;
        loop {
            // Registered before looking, so that a connection freed
            // between the look and the wait still wakes this request.
            let freed = self.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            if !own && let Some(idle) = self.take_idle() {
                return Ok(idle);
            }
            if let Ok(permit) = self.slots.clone().try_acquire_owned() {
                return Ok(Checkout::New(permit));
            }
            if own && let Some(idle) = self.take_idle() {
                // A parked connection's slot is free now; a running one's
                // when its task ends (and says so through `freed`).
                if let Checkout::Parked(..) = idle {
                    continue;
                }
                drop(idle);
            }
            if tokio::time::timeout_at(deadline, freed).await.is_err() {
                return Err(PoolError::Busy);
            }
        }
    }

    /// Starts hyper's connection on `stream` (no network exchange) and runs
    /// it on this worker's runtime until the sender is dropped, the
    /// upstream closes it, or (`upgrades`) the tunnel it became ends. A
    /// connection without upgrades hands its socket back to the pool when
    /// it is parked.
    async fn start(
        self: &Arc<Self>,
        stream: TcpStream,
        permit: OwnedSemaphorePermit,
        upgrades: bool,
    ) -> Result<Lent, PoolError> {
        let (tx, mut conn) = http1::Builder::new()
            .handshake(TokioIo::new(stream))
            .await
            .map_err(PoolError::Handshake)?;
        let park = Arc::new(std::sync::OnceLock::new());
        let freed = self.freed.clone();
        if upgrades {
            tokio::spawn(async move {
                if let Err(e) = conn.with_upgrades().await {
                    tracing::debug!(event = "upstream_connection_error", detail = %e);
                }
                // The slot is free again. After a 101 this is as soon as
                // hyper hands the socket to the tunnel: an open tunnel is
                // not counted in `upstream_connections` (docs/security.md,
                // red-team review of the fourteenth session).
                drop(permit);
                freed.notify_one();
            });
        } else {
            let pool = Arc::downgrade(self);
            let parking = park.clone();
            tokio::spawn(async move {
                match std::future::poll_fn(|cx| conn.poll_without_shutdown(cx)).await {
                    // The sender was dropped with no request open: to park
                    // the connection if marked, else to close it.
                    Ok(()) => {
                        if let (Some(&since), Some(pool)) = (parking.get(), pool.upgrade()) {
                            let parts = conn.into_parts();
                            // Bytes no request asked for: not an HTTP/1
                            // peer to talk to again.
                            if parts.read_buf.is_empty() {
                                pool.park(parts.io.into_inner(), permit, since);
                                return;
                            }
                        }
                    }
                    Err(e) => tracing::debug!(event = "upstream_connection_error", detail = %e),
                }
                drop(permit);
                freed.notify_one();
            });
        }
        Ok(Lent { tx, park })
    }

    /// Sends `req` (origin-form URI) on an idle connection or a new one.
    #[expect(
        clippy::manual_async_fn,
        reason = "an async fn keeps its by-value arguments twice in its future"
    )]
    pub fn request(
        self: &Arc<Self>,
        mut req: Request<RequestBody>,
    ) -> impl std::future::Future<Output = Result<Response<UpstreamBody>, PoolError>> {
        async move {
            // Only requests `upstream_head` let ask for an upgrade carry it.
            let upgrade = req.headers().contains_key(http::header::UPGRADE);
            // One retry: for a request hyper hands back unsent (the idle
            // connection was closed under it), or a bodiless GET or HEAD
            // sent on a connection idle for a while that the console closed
            // as it went out (its keep-alive timeout), on a new connection.
            let mut again = None;
            for _ in 0..2 {
                let own = upgrade || again.is_some();
                let (lent, fresh, idle_for) = match self.checkout(own).await? {
                    Checkout::Idle(lent, idle_for) => (lent, false, idle_for),
                    Checkout::Parked(p, idle_for) => (
                        self.start(p.stream, p.permit, false).await?,
                        false,
                        idle_for,
                    ),
                    Checkout::New(permit) => {
                        let stream = connect_tcp(&self.authority, self.connect_timeout).await?;
                        (
                            self.start(stream, permit, upgrade).await?,
                            true,
                            Duration::ZERO,
                        )
                    }
                };
                // Copied only then: under load a connection is never idle
                // that long, and the copy costs a header map.
                let resend = if idle_for >= RESEND_AFTER_IDLE {
                    resendable(&req)
                } else {
                    None
                };
                let Lent { mut tx, park } = lent;
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
                        // After an upgrade's answer the connection is the
                        // tunnel's, or closes (it is never parked); otherwise
                        // it is reusable once the body has been read.
                        let back = if upgrade || resp.status() == StatusCode::SWITCHING_PROTOCOLS {
                            Back::None
                        } else {
                            Back::Pool(self.clone(), Lent { tx, park })
                        };
                        return Ok(resp.map(|body| {
                            let mut body = UpstreamBody::new(body);
                            body.back = back;
                            body
                        }));
                    }
                    Err(mut e) => match (e.take_message(), resend) {
                        (Some(unsent), _) if !fresh => req = unsent,
                        (None, Some(copy)) if closed_under(e.error()) => {
                            req = copy;
                            again = Some(());
                        }
                        _ => return Err(PoolError::Request(e.into_error())),
                    },
                }
            }
            Err(PoolError::Connect(std::io::Error::other(
                "the upstream closed every connection tried",
            )))
        }
    }
}

/// How long a connection has been idle before a request sent on it keeps
/// a copy to send again if the console closes it meanwhile: keep-alive
/// timeouts are a second or more (gunicorn's 2 s, uvicorn's 5 s); a
/// connection idle for less is not about to be closed.
const RESEND_AFTER_IDLE: Duration = Duration::from_millis(250);

/// A copy of a request that may be sent twice (RFC 9110 §9.2.2: an
/// idempotent method; and no body to keep): `GET` and `HEAD` without a
/// body. Its extensions are not copied (none that the console sees).
fn resendable(req: &Request<RequestBody>) -> Option<Request<RequestBody>> {
    if !matches!(*req.method(), http::Method::GET | http::Method::HEAD)
        || !req.body().is_end_stream()
    {
        return None;
    }
    let mut copy = Request::new(RequestBody::empty());
    *copy.method_mut() = req.method().clone();
    *copy.uri_mut() = req.uri().clone();
    *copy.version_mut() = req.version();
    *copy.headers_mut() = req.headers().clone();
    Some(copy)
}

/// Whether a request's exchange failed because the console closed the
/// connection before answering: it ended the connection (hyper's
/// "incomplete message") or reset it.
fn closed_under(e: &hyper::Error) -> bool {
    if e.is_incomplete_message() {
        return true;
    }
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            return matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
            );
        }
        cause = c.source();
    }
    false
}

enum Checkout {
    /// An idle connection, and how long it was idle.
    Idle(Lent, Duration),
    Parked(Parked, Duration),
    New(OwnedSemaphorePermit),
}

/// Whether a parked connection is still open and quiet: the upstream has
/// neither closed it nor sent anything on it (it owes no answer, so a
/// byte is a fault). One `MSG_PEEK`, which does not wait: the socket is
/// non-blocking.
fn still_open(stream: &TcpStream) -> bool {
    let mut byte = [std::mem::MaybeUninit::<u8>::uninit()];
    matches!(
        socket2::SockRef::from(stream).peek(&mut byte),
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock
    )
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
/// a bound on all such answers together (`limits.response_buffers`).
///
/// Every response is moved several times on its way to the client, so the
/// common cases are kept small: a streaming body, or an answer read whole
/// as one frame, inline; anything rarer in a box.
pub struct UpstreamBody {
    source: Source,
    /// Where the console's connection goes when the answer has ended.
    back: Back,
    /// The request's places at the console (its address's share, and a
    /// public place), held until the answer ends ([`super::admission`]).
    held: Option<super::admission::Held>,
    /// Bytes of this answer counted in [`READ_AHEAD`].
    reserved: u32,
}

enum Source {
    /// Streaming from the console.
    Live(Incoming),
    /// Read whole: its one data frame, until given to the client.
    Whole(Option<bytes::Bytes>),
    /// Rarer: several frames or trailers read ahead, a read-ahead cut short
    /// (the rest streams), or a body that broke while read ahead.
    Mixed(Box<Mixed>),
}

struct Mixed {
    ahead: VecDeque<Frame<bytes::Bytes>>,
    /// The console's body after what was read ahead; `None` when it ended.
    rest: Option<Incoming>,
    /// What broke the body while it was read ahead: the client meets it
    /// after the frames that came before it (as when streaming).
    broke: Option<hyper::Error>,
}

enum Back {
    None,
    /// A connection of this worker's pool, put back when the answer ends.
    Pool(Arc<Pool>, Lent),
    /// A request slot to an `https://` console ([`Slots`]), freed when
    /// dropped.
    Slot {
        _permit: OwnedSemaphorePermit,
    },
}

/// Bytes of answers read ahead of their clients, in this process.
static READ_AHEAD: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Counts `n` more bytes read ahead, if they fit within `max`.
fn reserve(n: usize, max: usize) -> bool {
    let mut used = READ_AHEAD.load(Ordering::Relaxed);
    loop {
        let Some(next) = used.checked_add(n).filter(|&u| u <= max) else {
            return false;
        };
        match READ_AHEAD.compare_exchange_weak(used, next, Ordering::AcqRel, Ordering::Relaxed) {
            Ok(_) => return true,
            Err(now) => used = now,
        }
    }
}

impl UpstreamBody {
    fn new(body: Incoming) -> Self {
        Self {
            source: Source::Live(body),
            back: Back::None,
            held: None,
            reserved: 0,
        }
    }

    /// A body from a client that keeps its own connections.
    pub fn plain(body: Incoming) -> Self {
        Self::new(body)
    }

    /// [`plain`](Self::plain), holding `slot` until the body ends.
    pub fn in_slot(body: Incoming, slot: OwnedSemaphorePermit) -> Self {
        let mut body = Self::new(body);
        body.back = Back::Slot { _permit: slot };
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
        // An https slot is freed by the drop.
        if let Back::Pool(pool, lent) = std::mem::replace(&mut self.back, Back::None) {
            pool.put_back(lent);
        }
    }

    /// The read-ahead bytes have all gone to the client (or will not).
    fn unreserve(&mut self) {
        if self.reserved > 0 {
            READ_AHEAD.fetch_sub(self.reserved as usize, Ordering::AcqRel);
            self.reserved = 0;
        }
    }

    /// Starts reading ahead an answer whose length the console gave and
    /// which is at most `limit` bytes, while all such answers together stay
    /// within `max_total` bytes: whatever has arrived is taken now. `true`
    /// when more is to come: [`read_rest`](Self::read_rest) then waits for
    /// it. Answers of unknown or larger length stream as they come.
    pub fn read_ahead(&mut self, cx: &mut Context<'_>, limit: usize, max_total: usize) -> bool {
        let Source::Live(body) = &mut self.source else {
            return false;
        };
        if body.is_end_stream() {
            self.source = Source::Whole(None);
            self.release();
            return false;
        }
        let Some(len) = body.size_hint().exact() else {
            return false;
        };
        let Some(len) = usize::try_from(len).ok().filter(|&l| l <= limit) else {
            return false;
        };
        if !reserve(len, max_total) {
            return false;
        }
        // PANIC SAFETY: `limit` is at most 16 MiB (policy::server).
        self.reserved = u32::try_from(len).unwrap_or(u32::MAX);
        // The first data frame is held here, not in a box: most answers
        // are that frame and the end, both there already.
        let mut first: Option<bytes::Bytes> = None;
        loop {
            match Pin::new(&mut *body).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) if first.is_none() => match frame.into_data() {
                    Ok(data) => first = Some(data),
                    Err(frame) => {
                        self.box_up(None, Some(frame));
                        return self.read_more(cx).is_pending();
                    }
                },
                Poll::Ready(Some(Ok(frame))) => {
                    self.box_up(first, Some(frame));
                    return self.read_more(cx).is_pending();
                }
                Poll::Ready(None) => {
                    self.source = Source::Whole(first);
                    self.release();
                    return false;
                }
                Poll::Ready(Some(Err(e))) => {
                    self.box_up(first, None);
                    self.broke(e);
                    return false;
                }
                Poll::Pending if first.is_none() => return true,
                Poll::Pending => {
                    self.box_up(first, None);
                    return true;
                }
            }
        }
    }

    /// Moves a live body and what was read of it into a box.
    fn box_up(&mut self, first: Option<bytes::Bytes>, frame: Option<Frame<bytes::Bytes>>) {
        let rest = match std::mem::replace(&mut self.source, Source::Whole(None)) {
            Source::Live(body) => Some(body),
            other => {
                self.source = other;
                return;
            }
        };
        let mut ahead = VecDeque::new();
        ahead.extend(first.map(Frame::data));
        ahead.extend(frame);
        self.source = Source::Mixed(Box::new(Mixed {
            ahead,
            rest,
            broke: None,
        }));
    }

    /// The body broke while read ahead: the connection is not reused.
    fn broke(&mut self, e: hyper::Error) {
        if let Source::Mixed(m) = &mut self.source {
            m.rest = None;
            m.broke = Some(e);
        }
        self.back = Back::None;
        self.held = None;
    }

    /// Reads on into the box until the end (`Ready`) or until nothing is
    /// there (`Pending`).
    fn read_more(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            let polled = match &mut self.source {
                Source::Live(body) => Pin::new(body).poll_frame(cx),
                Source::Mixed(m) => match &mut m.rest {
                    Some(body) => Pin::new(body).poll_frame(cx),
                    None => return Poll::Ready(()),
                },
                Source::Whole(_) => return Poll::Ready(()),
            };
            match polled {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(frame))) => {
                    if matches!(self.source, Source::Live(_)) {
                        self.box_up(None, Some(frame));
                    } else if let Source::Mixed(m) = &mut self.source {
                        m.ahead.push_back(frame);
                    }
                }
                Poll::Ready(None) => {
                    match &mut self.source {
                        Source::Mixed(m) => m.rest = None,
                        _ => self.source = Source::Whole(None),
                    }
                    self.release();
                    return Poll::Ready(());
                }
                Poll::Ready(Some(Err(e))) => {
                    if matches!(self.source, Source::Live(_)) {
                        self.box_up(None, None);
                    }
                    self.broke(e);
                    return Poll::Ready(());
                }
            }
        }
    }

    /// The rest of an answer [`read_ahead`](Self::read_ahead) began, by
    /// `deadline`; if it does not come in time, it streams as it comes.
    pub async fn read_rest(&mut self, deadline: tokio::time::Instant) {
        let rest = std::future::poll_fn(|cx| self.read_more(cx));
        let _ = tokio::time::timeout_at(deadline, rest).await;
    }
}

impl Drop for UpstreamBody {
    /// hyper's server does not poll a body that says it has ended (an empty
    /// body, a HEAD response): give the connection back here then.
    fn drop(&mut self) {
        self.unreserve();
        if let Back::Pool(pool, lent) = std::mem::replace(&mut self.back, Back::None) {
            let ended = match &self.source {
                Source::Live(body) => body.is_end_stream(),
                Source::Whole(_) => true,
                Source::Mixed(m) => m.rest.as_ref().is_none_or(Body::is_end_stream),
            };
            if ended {
                pool.put_back(lent);
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
        let polled = match &mut this.source {
            Source::Live(body) => Pin::new(body).poll_frame(cx),
            Source::Whole(data) => {
                let frame = data.take().map(|d| Ok(Frame::data(d)));
                this.unreserve();
                return Poll::Ready(frame);
            }
            Source::Mixed(m) => {
                if let Some(frame) = m.ahead.pop_front() {
                    if m.ahead.is_empty() {
                        this.unreserve();
                    }
                    return Poll::Ready(Some(Ok(frame)));
                }
                if let Some(e) = m.broke.take() {
                    return Poll::Ready(Some(Err(e)));
                }
                match &mut m.rest {
                    Some(body) => Pin::new(body).poll_frame(cx),
                    None => return Poll::Ready(None),
                }
            }
        };
        if let Poll::Ready(None) = polled {
            this.release();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        match &self.source {
            Source::Live(body) => body.is_end_stream(),
            Source::Whole(data) => data.is_none(),
            Source::Mixed(m) => {
                m.ahead.is_empty()
                    && m.broke.is_none()
                    && m.rest.as_ref().is_none_or(Body::is_end_stream)
            }
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.source {
            Source::Live(body) => body.size_hint(),
            Source::Whole(data) => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
            Source::Mixed(m) => {
                let ahead: u64 = m
                    .ahead
                    .iter()
                    .filter_map(|f| f.data_ref().map(|d| d.len() as u64))
                    .sum();
                let Some(rest) = &m.rest else {
                    return SizeHint::with_exact(ahead);
                };
                let inner = rest.size_hint();
                let mut hint = SizeHint::new();
                hint.set_lower(inner.lower() + ahead);
                if let Some(upper) = inner.upper() {
                    hint.set_upper(upper + ahead);
                }
                hint
            }
        }
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
