//! Listeners: accept (bounded by `max_connections`), PROXY header, TLS
//! handshake, then HTTP/1.1 or HTTP/2 (told apart by the preface) with the
//! request service; an HTTP/1 connection idle for [`PARK_AFTER`] is parked
//! (hyper's connection and buffers dropped, the socket kept); idle
//! connections are closed; on shutdown each connection finishes its
//! requests and closes.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};

use super::conn_watch::{Checks, Fired, Sample, Watch};
use super::forward::UpstreamClient;
use super::proxy_protocol::{self, Replay};
use super::service::{ConnInfo, Shared, handle};
use crate::engine::client::canonical;
use crate::policy::server::{Limits, Timeouts};

/// A worker thread: a single-threaded runtime and its own upstream pool.
/// Connections are spread over workers, and a connection's requests, their
/// upstream connections and their tasks all stay on one thread, as nginx's
/// worker processes do: no cross-thread wakeups on the request path.
#[derive(Clone)]
pub struct Worker {
    pub handle: tokio::runtime::Handle,
    pub client: UpstreamClient,
}

/// Everything an accept loop needs.
#[derive(Clone)]
pub struct Listening {
    pub shared: Arc<Shared>,
    pub workers: Arc<[Worker]>,
    pub tls: Option<Arc<crate::tls::ServerTls>>,
    pub proxy_protocol: bool,
    pub timeouts: Timeouts,
    pub limits: Limits,
    pub connections: Arc<Semaphore>,
    pub shutdown: watch::Receiver<bool>,
    /// Dropped by each connection when it ends; the server waits for all.
    pub alive: mpsc::Sender<()>,
    /// Connections per client address, and eviction of idle ones.
    pub table: Arc<super::conn_table::ConnTable>,
    /// hyper's HTTP/1 and HTTP/2 settings, made once ([`http_builders`]).
    pub http: Arc<HttpBuilders>,
}

/// hyper's connection builders, with the listener's limits.
pub struct HttpBuilders {
    h1: hyper::server::conn::http1::Builder,
    h2: hyper::server::conn::http2::Builder<TokioExecutor>,
}

/// The builders every connection of a listener is served with.
pub fn http_builders(limits: &Limits) -> HttpBuilders {
    let mut h1 = hyper::server::conn::http1::Builder::new();
    // No head timer of hyper's: it would arm (and box) a timer for every
    // request. The first head is held to `header_read` from accept by the
    // timer in [`serve`]; a later head is a connection with no request
    // open: closed after `idle` like any idle one (and evicted first when
    // the table is full), however slowly its bytes come. hyper's timer
    // also ran between keep-alive requests, and at `header_read` it would
    // close them long before `idle` (and before the idle timeout of a load
    // balancer in front, which then sends a request on a connection
    // netwarden has just closed).
    h1.header_read_timeout(None)
        .max_buf_size(limits.max_header_bytes)
        .keep_alive(true);
    let mut h2 = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    h2.timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
        // A quarter of the connection's window a stream: an upload the
        // console is slow to read cannot take the whole window and leave
        // the connection's other requests unable to send a byte (their
        // bodies would then be cut as stalled; red-team finding). hyper's
        // default gives one stream all of it.
        .initial_stream_window_size(H2_STREAM_WINDOW)
        .initial_connection_window_size(H2_CONNECTION_WINDOW)
        // Streams beyond this are refused (RST_STREAM REFUSED_STREAM): one
        // connection cannot fan out without bound.
        .max_concurrent_streams(limits.max_streams);
    HttpBuilders { h1, h2 }
}

/// Pause after an accept error (out of file descriptors, say) before the
/// next accept, so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);
/// At most one `accept_error` line this often.
const ACCEPT_ERROR_LOG_EVERY: Duration = Duration::from_secs(10);

pub async fn accept_loop(listener: TcpListener, l: Listening) {
    // Shared by the listener's connections (a connection holds a pointer,
    // not its own copy: an idle connection's memory is its task).
    let l = Arc::new(l);
    let mut shutdown = l.shutdown.clone();
    let mut next = 0usize;
    let (mut failed, mut last_logged) = (0u64, None);
    loop {
        if *shutdown.borrow() {
            return;
        }
        let permit = match l.connections.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(tokio::sync::TryAcquireError::Closed) => return,
            Err(tokio::sync::TryAcquireError::NoPermits) => {
                // Full: idle connections (keep-alive between requests, or
                // never a request yet) make room for whoever is waiting;
                // asked again every second while the table stays full.
                let mut again = tokio::time::interval(Duration::from_secs(1));
                loop {
                    tokio::select! {
                        p = l.connections.clone().acquire_owned() => match p {
                            Ok(p) => break p,
                            Err(_) => return,
                        },
                        _ = again.tick() => l.table.evict_idle(),
                        _ = shutdown.changed() => return,
                    }
                }
            }
        };
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // Out of file descriptors (EMFILE) repeats every
                    // backoff until a connection closes: one line, then a
                    // count at most every ACCEPT_ERROR_LOG_EVERY.
                    failed += 1;
                    if last_logged.is_none_or(|t: tokio::time::Instant| t.elapsed() >= ACCEPT_ERROR_LOG_EVERY) {
                        tracing::warn!(event = "accept_error", detail = %e, failures = failed, "accept failed");
                        last_logged = Some(tokio::time::Instant::now());
                        failed = 0;
                    }
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            _ = shutdown.changed() => return,
        };
        // Hand the socket to the next worker's reactor.
        let Ok(std_stream) = stream.into_std() else {
            continue;
        };
        let worker = l.workers[next % l.workers.len()].clone();
        next = next.wrapping_add(1);
        let l = l.clone();
        worker
            .handle
            .spawn(connection(std_stream, peer, l, worker.client, permit));
    }
}

#[expect(
    clippy::manual_async_fn,
    reason = "an async fn keeps its by-value arguments twice in its future"
)]
/// One client connection, on the worker it was handed to: its PROXY
/// header, its place in the connection table, TLS, then HTTP. Its future is
/// the connection's task, for as long as the connection lives: what it
/// keeps room for is what an idle connection costs (issue 29).
fn connection(
    stream: std::net::TcpStream,
    tcp_peer: SocketAddr,
    l: Arc<Listening>,
    client: UpstreamClient,
    permit: OwnedSemaphorePermit,
) -> impl Future<Output = ()> {
    async move {
        // Registered with this worker's reactor.
        let mut stream = match TcpStream::from_std(stream) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(event = "accept_error", detail = %e, "cannot register connection");
                return;
            }
        };
        let _ = stream.set_nodelay(true);
        let accepted = tokio::time::Instant::now();
        // Held by the connection and by a tunnel it becomes: an upgraded
        // connection keeps its slot in max_connections, its count in the gauge
        // and the server's wait on shutdown.
        let mut slot = ConnSlot {
            _permit: permit,
            _open: OpenConnection::new(&l.shared.metrics),
            _alive: l.alive.clone(),
            _addr: None,
        };
        let mut peer = tcp_peer;
        let mut prefix = Vec::new();
        let mut believe_headers = true;
        let mut via_proxy_protocol = false;
        if l.proxy_protocol {
            let trusted = l
                .shared
                .policy
                .load()
                .client_ip()
                .trusted_proxies
                .contains(canonical(tcp_peer.ip()));
            let read = proxy_protocol::read(&mut stream, trusted);
            // The table does not count a connection before its PROXY header:
            // it gives way only in a round that takes anyone's.
            // Boxed: the connection's task keeps no room for it after.
            let Some(read) = Box::pin(evictable(
                &l,
                tcp_peer,
                None,
                tokio::time::timeout(l.timeouts.header_read, read),
            ))
            .await
            else {
                return;
            };
            match read {
                Ok(Ok((source, rest))) => {
                    match source {
                        proxy_protocol::Source::Client(addr) => {
                            peer = addr;
                            via_proxy_protocol = true;
                        }
                        proxy_protocol::Source::Direct => {}
                        proxy_protocol::Source::ProxyItself => believe_headers = false,
                    }
                    prefix = rest;
                }
                Ok(Err(e)) => {
                    tracing::warn!(event = "proxy_protocol_refused", network.peer.address = %tcp_peer.ip(), detail = %e, "connection refused");
                    return;
                }
                Err(_) => {
                    tracing::debug!(event = "proxy_protocol_timeout", network.peer.address = %tcp_peer.ip());
                    return;
                }
            }
        }
        // One address holds at most its share of the table. Trusted proxies
        // (without PROXY protocol, every client behind them shares their
        // address) are not counted.
        let policy = l.shared.policy.load();
        if !policy
            .client_ip()
            .trusted_proxies
            .contains(canonical(peer.ip()))
        {
            match l.table.admit(peer.ip()) {
                Some(a) => slot._addr = Some(a),
                None => {
                    l.shared
                        .metrics
                        .connections_refused
                        .get_or_create(&crate::telemetry::metrics::ReasonLabels {
                            reason: "per_address",
                        })
                        .inc();
                    tracing::debug!(event = "connection_refused", network.peer.address = %peer.ip(), reason = "per_address");
                    return;
                }
            }
        }
        drop(policy);
        let slot = Arc::new(slot);
        // Bytes read past the PROXY header are the start of the connection.
        let prefix = bytes::Bytes::from(prefix);
        let activity = Arc::new(Activity::default());
        match l.tls.as_ref().map(|t| t.acceptor()) {
            None => {
                serve(
                    Replay::new(prefix, Tracked::new(stream, activity.clone())),
                    ConnInfo {
                        peer,
                        tls: false,
                        believe_headers,
                        proxy_protocol_from: via_proxy_protocol.then_some(canonical(tcp_peer.ip())),
                    },
                    &l,
                    client,
                    activity,
                    slot,
                    accepted,
                )
                .await
            }
            Some(acceptor) => {
                // Boxed, as is the TLS connection's whole life below: a plain
                // connection's task then carries neither rustls's state nor
                // room for it (an idle connection's memory is its task).
                let handshake = Box::pin(tokio::time::timeout_at(
                    accepted + l.timeouts.header_read,
                    acceptor.accept(Replay::new(prefix, stream)),
                ));
                // A connection still in its handshake has no request: it is as
                // idle as a keep-alive one, and makes room the same way.
                let key = slot._addr.as_ref().map(super::conn_table::AddrSlot::key);
                // Taken out of its result at once, so that the task keeps
                // no room for the TLS stream beside the boxed connection.
                let tls = match evictable(&l, peer, key, handshake).await {
                    None => return,
                    Some(Ok(Ok(tls))) => tls,
                    Some(Ok(Err(e))) => {
                        tracing::debug!(event = "tls_handshake_failed", network.peer.address = %peer.ip(), detail = %e);
                        return;
                    }
                    Some(Err(_)) => {
                        tracing::debug!(event = "tls_handshake_timeout", network.peer.address = %peer.ip());
                        return;
                    }
                };
                Box::pin(serve(
                    Replay::new(bytes::Bytes::new(), Tracked::new(tls, activity.clone())),
                    ConnInfo {
                        peer,
                        tls: true,
                        believe_headers,
                        proxy_protocol_from: via_proxy_protocol.then_some(canonical(tcp_peer.ip())),
                    },
                    &l,
                    client,
                    activity,
                    slot,
                    accepted,
                ))
                .await
            }
        }
    }
}

/// Runs `f` (a handshake, a PROXY header read) unless the connection table
/// asks idle connections to make room first: `None` then, and the caller
/// closes the connection. Before its first request a connection is idle.
async fn evictable<F: std::future::Future>(
    l: &Listening,
    peer: SocketAddr,
    key: Option<super::conn_table::AddrKey>,
    f: F,
) -> Option<F::Output> {
    tokio::pin!(f);
    loop {
        tokio::select! {
            out = &mut f => return Some(out),
            _ = l.table.pressure() => {
                if l.table.take_eviction(key) {
                    l.shared.metrics.connections_evicted.inc();
                    tracing::debug!(event = "connection_evicted", network.peer.address = %peer.ip(), during = "handshake");
                    return None;
                }
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
#[expect(
    clippy::manual_async_fn,
    reason = "an async fn keeps its by-value arguments twice in its future"
)]
fn serve<S>(
    mut io: Replay<Tracked<S>>,
    conn_info: ConnInfo,
    l: &Listening,
    client: UpstreamClient,
    activity: Arc<Activity>,
    slot: Arc<ConnSlot>,
    accepted: tokio::time::Instant,
) -> impl Future<Output = ()> + use<'_, S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    async move {
        let HttpBuilders { h1, h2 } = &*l.http;
        let peer = conn_info.peer;
        let slot_key = slot._addr.as_ref().map(super::conn_table::AddrSlot::key);
        let tunnel = Arc::new(TunnelCtx {
            slot,
            shutdown: l.shutdown.clone(),
            idle: l.timeouts.tunnel_idle,
            believe_headers: conn_info.believe_headers,
            proxy_protocol_from: conn_info.proxy_protocol_from,
        });
        let shared = l.shared.clone();
        let in_flight = activity.clone();
        // The last request that asked for an upgrade: its handle on the
        // socket, which hyper hands over when its connection ends (see the
        // parking below). Held here and by the service only: the socket
        // (its `Tracked` holds `activity`) must not hold it, or a socket
        // handed over and never taken would keep itself open.
        let upgrade_kept: Arc<std::sync::Mutex<Option<hyper::upgrade::OnUpgrade>>> = Arc::default();
        let kept = upgrade_kept.clone();
        // Kept here for the connection's life: each hyper connection on the
        // socket (again after each park) serves a copy of it.
        let service = service_fn(move |req| {
            let shared = shared.clone();
            let client = client.clone();
            let tunnel = tunnel.clone();
            let guard = InFlight::enter(in_flight.clone());
            if let Some(on) = req.extensions().get::<hyper::upgrade::OnUpgrade>() {
                *kept.lock().unwrap_or_else(|e| e.into_inner()) = Some(on.clone());
            }
            let (parts, body) = req.into_parts();
            Answer {
                handled: handle(shared, client, conn_info, tunnel, parts, body),
                guard: Some(guard),
            }
        });
        let mut shutdown = l.shutdown.clone();
        let mut draining = *shutdown.borrow();
        if draining {
            return;
        }
        // The connection's one timer, for its life (across parkings): a
        // connection that sends nothing (or only an HTTP/2 preface and PINGs)
        // must bring a whole request head within `header_read` of being
        // accepted; no request open for `idle` closes it; a response the
        // client takes nothing of for `send` closes it (it stopped reading,
        // or, HTTP/2, opens no window: such a connection is never idle, so
        // without this it would hold its slot for ever); an HTTP/1 connection
        // with nothing moving for `PARK_AFTER` is parked.
        let sample = || activity.sample();
        let mut watch = Watch::new(Checks::new(
            tokio::time::Instant::now(),
            accepted + l.timeouts.header_read,
            l.timeouts.idle,
            l.timeouts.send,
            PARK_AFTER,
            sample(),
        ));
        // HTTP/2 or HTTP/1, as hyper-util's auto builder tells them: by the
        // preface (read under the same watch as a request head).
        let h2_preface = loop {
            tokio::select! {
                biased;
                r = sniff_h2(&mut io) => match r {
                    Ok(h2) => break h2,
                    Err(e) => {
                        tracing::debug!(event = "connection_error", network.peer.address = %peer.ip(), detail = %e);
                        return;
                    }
                },
                _ = shutdown.changed(), if !draining => return,
                _ = l.table.pressure() => {
                    if evicted(l, slot_key, peer) {
                        return;
                    }
                }
                fired = watch.fired(sample, false) => {
                    timed_out(l, &activity, peer, fired);
                    return;
                }
            }
        };
        let mut conn = if h2_preface {
            Conn::H2(Box::pin(
                h2.serve_connection(TokioIo::new(io), service.clone()),
            ))
        } else {
            Conn::H1(Box::pin(
                h1.serve_connection(TokioIo::new(io), service.clone())
                    .with_upgrades(),
            ))
        };
        loop {
            // One hyper connection: the whole connection, or (HTTP/1) until
            // it is parked while idle.
            let mut parking = false;
            let res = loop {
                let may_park = !parking && !draining && matches!(conn, Conn::H1(_));
                tokio::select! {
                    biased;
                    res = &mut conn => break res,
                    _ = shutdown.changed(), if !draining => {
                        draining = true;
                        // An HTTP/1 connection with no request open closes
                        // now, whatever part of a next head has come: hyper
                        // closes at once only a connection whose last request
                        // is done, and one woken from parking has none yet
                        // (red-team review: a stalled head held the shutdown
                        // for the whole drain).
                        if matches!(conn, Conn::H1(_)) && activity.in_flight.load(Ordering::Relaxed) == 0 {
                            return;
                        }
                        conn.graceful_shutdown();
                    }
                    _ = l.table.pressure() => {
                        if activity.in_flight.load(Ordering::Relaxed) == 0 && evicted(l, slot_key, peer) {
                            return;
                        }
                    }
                    fired = watch.fired(sample, may_park) => match fired {
                        // Idle between requests: hyper's buffers and state go,
                        // the socket stays (nginx frees its buffers the same
                        // way).
                        Fired::Parkable => {
                            parking = true;
                            activity.parking.store(true, Ordering::Relaxed);
                            conn.graceful_shutdown();
                        }
                        other => {
                            timed_out(l, &activity, peer, other);
                            return;
                        }
                    },
                }
            };
            activity.parking.store(false, Ordering::Relaxed);
            let (res, conn_done) = (res, conn);
            if let Err(e) = res {
                connection_failed(l, peer, &e);
                return;
            }
            let Conn::H1(h1_conn) = conn_done else {
                return;
            };
            if !parking || draining {
                return;
            }
            // Taken apart in a block of its own, so that this future keeps no
            // room for hyper's `Parts` beside the socket and the service.
            // hyper's connection taken apart in a block of its own, so that
            // this future keeps no room for hyper's `Parts` across the wait
            // below.
            let apart = {
                match Pin::into_inner(h1_conn).into_parts() {
                    Some(parts) => {
                        let mut io = parts.io.into_inner();
                        // What hyper had read and not used (a request
                        // begun just then) goes first.
                        io.put_back(parts.read_buf);
                        Ok(io)
                    }
                    // A request asked for an upgrade and got an answer
                    // other than 101: hyper keeps the upgrade pending and,
                    // when its connection ends, hands the socket to it
                    // (red-team review of issue 29: such connections could
                    // not be parked). The socket comes back through the
                    // request's handle kept for this.
                    None => Err(upgrade_kept
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .take()),
                }
            };
            io = match apart {
                Ok(io) => io,
                Err(on) => {
                    let Some(on) = on else {
                        return;
                    };
                    let Ok(upgraded) = on.await else {
                        return;
                    };
                    let Ok(parts) = upgraded.downcast::<TokioIo<Replay<Tracked<S>>>>() else {
                        return;
                    };
                    let mut io = parts.io.into_inner();
                    io.put_back(parts.read_buf);
                    io
                }
            };
            // Parked: the socket alone, until the client sends again.
            if io.is_empty() {
                let _parked = OpenConnection::on(&l.shared.metrics.parked_connections);
                let woke = loop {
                    tokio::select! {
                        biased;
                        r = io.wait_for_byte() => break r,
                        _ = shutdown.changed(), if !draining => return,
                        _ = l.table.pressure() => {
                            if evicted(l, slot_key, peer) {
                                return;
                            }
                        }
                        fired = watch.fired(sample, false) => {
                            timed_out(l, &activity, peer, fired);
                            return;
                        }
                    }
                };
                if !matches!(woke, Ok(true)) {
                    // Closed by the client, or broken.
                    return;
                }
            }
            conn = Conn::H1(Box::pin(
                h1.serve_connection(TokioIo::new(io), service.clone())
                    .with_upgrades(),
            ));
        }
    }
}

/// How long an HTTP/1 connection waits with nothing moving before it is
/// parked: hyper's connection (its read and write buffers, about 16 KiB)
/// is dropped and the socket alone is kept until the client sends again.
/// Under load a connection is never this quiet, so parking costs nothing
/// there; an idle keep-alive connection then holds a few hundred bytes.
pub(super) const PARK_AFTER: Duration = Duration::from_secs(1);

/// The hyper connection a client connection is served by.
enum Conn<F1, F2> {
    H1(Pin<Box<F1>>),
    H2(Pin<Box<F2>>),
}

impl<IO, S, E, B>
    Conn<
        hyper::server::conn::http1::UpgradeableConnection<IO, S>,
        hyper::server::conn::http2::Connection<IO, S, E>,
    >
where
    S: hyper::service::HttpService<hyper::body::Incoming, ResBody = B>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    IO: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    E: hyper::rt::bounds::Http2ServerConnExec<S::Future, B>,
{
    fn graceful_shutdown(&mut self) {
        match self {
            Conn::H1(c) => c.as_mut().graceful_shutdown(),
            Conn::H2(c) => c.as_mut().graceful_shutdown(),
        }
    }
}

impl<IO, S, E, B> std::future::Future
    for Conn<
        hyper::server::conn::http1::UpgradeableConnection<IO, S>,
        hyper::server::conn::http2::Connection<IO, S, E>,
    >
where
    S: hyper::service::HttpService<hyper::body::Incoming, ResBody = B>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    IO: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    E: hyper::rt::bounds::Http2ServerConnExec<S::Future, B>,
{
    type Output = hyper::Result<()>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.get_mut() {
            Conn::H1(c) => c.as_mut().poll(cx),
            Conn::H2(c) => c.as_mut().poll(cx),
        }
    }
}

/// Whether this idle connection is one the full table asks to close
/// (counted and said if so).
fn evicted(l: &Listening, key: Option<super::conn_table::AddrKey>, peer: SocketAddr) -> bool {
    if !l.table.take_eviction(key) {
        return false;
    }
    l.shared.metrics.connections_evicted.inc();
    tracing::debug!(event = "connection_evicted", network.peer.address = %peer.ip());
    true
}

/// What the connection's timer found, said and counted; the connection
/// then closes.
fn timed_out(l: &Listening, activity: &Activity, peer: SocketAddr, fired: Fired) {
    match fired {
        Fired::FirstRequestLate => first_request_expired(l, activity, peer),
        Fired::Stuck => send_timed_out(l, peer),
        Fired::Idle | Fired::Parkable => {
            tracing::debug!(event = "idle_timeout", network.peer.address = %peer.ip());
        }
    }
}

/// The first request's head did not come within `header_read` of accept.
fn first_request_expired(l: &Listening, activity: &Activity, peer: SocketAddr) {
    if activity.moved.load(Ordering::Relaxed) > 0 {
        // Something came, but no whole head: a slow head.
        l.shared
            .metrics
            .requests_rejected
            .get_or_create(&crate::telemetry::metrics::ReasonLabels {
                reason: "header_timeout",
            })
            .inc();
        tracing::info!(
            event = "request_rejected",
            network.peer.address = %peer.ip(),
            reason = "header_timeout",
            "no whole request head within timeouts.header_read of the connection being accepted"
        );
    } else {
        tracing::debug!(event = "first_request_timeout", network.peer.address = %peer.ip());
    }
}

fn send_timed_out(l: &Listening, peer: SocketAddr) {
    l.shared.metrics.send_timeouts.inc();
    tracing::info!(
        event = "send_timeout",
        network.peer.address = %peer.ip(),
        "a response waited timeouts.send for the client to take a byte; connection closed"
    );
}

/// A connection hyper ended with an error: a refused request is counted
/// and logged (attacks should be visible: it never reaches the engine, so
/// it has no decision line); anything else is the client's going away.
fn connection_failed(l: &Listening, peer: SocketAddr, e: &(dyn std::error::Error + 'static)) {
    match rejection(e) {
        Some(reason) => {
            l.shared
                .metrics
                .requests_rejected
                .get_or_create(&crate::telemetry::metrics::ReasonLabels { reason })
                .inc();
            tracing::info!(
                event = "request_rejected",
                network.peer.address = %peer.ip(),
                reason,
                detail = %e,
                "request refused by the HTTP parser"
            );
        }
        None => {
            tracing::debug!(event = "connection_error", network.peer.address = %peer.ip(), detail = %e)
        }
    }
}

/// HTTP/2's connection preface (RFC 9113 §3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Reads until the bytes are HTTP/2's preface or cannot be (as hyper-util's
/// auto builder does), and puts them back in front.
async fn sniff_h2<S: AsyncRead + Unpin>(io: &mut Replay<S>) -> std::io::Result<bool> {
    use tokio::io::AsyncReadExt as _;
    let mut buf = [0u8; 24];
    let mut filled = 0;
    let h2 = loop {
        if filled == H2_PREFACE.len() {
            break true;
        }
        // Through the replay: bytes read past a PROXY header come first.
        let n = io.read(&mut buf[filled..]).await?;
        let matches = n > 0 && buf[filled..filled + n] == H2_PREFACE[filled..filled + n];
        filled += n;
        if !matches {
            break false;
        }
    };
    io.put_back(bytes::Bytes::copy_from_slice(&buf[..filled]));
    Ok(h2)
}

/// HTTP/2 flow-control windows for clients' bodies: memory per connection
/// stays hyper's default (1 MiB), but four stalled streams, not one, are
/// needed to fill it.
const H2_CONNECTION_WINDOW: u32 = 1024 * 1024;
const H2_STREAM_WINDOW: u32 = H2_CONNECTION_WINDOW / 4;

/// Why hyper refused a request before it reached the service, as a
/// stable word; `None` for errors that are not a refused request (the
/// client went away, an I/O error).
fn rejection(e: &(dyn std::error::Error + 'static)) -> Option<&'static str> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(h) = err.downcast_ref::<hyper::Error>() {
            return if h.is_parse_too_large() {
                Some("too_large")
            } else if h.is_parse() {
                Some("malformed")
            } else if h.is_timeout() {
                Some("header_timeout")
            } else {
                None
            };
        }
        cur = err.source();
    }
    None
}

/// What a connection holds while it lives. Shared (`Arc`) with a tunnel
/// the connection becomes, so that an upgraded connection still counts.
pub struct ConnSlot {
    _permit: OwnedSemaphorePermit,
    _open: OpenConnection,
    _alive: mpsc::Sender<()>,
    _addr: Option<super::conn_table::AddrSlot>,
}

/// What a request needs to turn its connection into a tunnel.
pub struct TunnelCtx {
    pub slot: Arc<ConnSlot>,
    pub shutdown: watch::Receiver<bool>,
    /// Closed after this long with no byte moving either way.
    pub idle: Duration,
    /// Whether the connection's forwarding headers count (not on a PROXY
    /// protocol connection the proxy opened for itself): a tunnel is
    /// decided again as its request came.
    pub believe_headers: bool,
    /// The load balancer that sent the connection's PROXY header, if any.
    pub proxy_protocol_from: Option<std::net::IpAddr>,
}

pin_project_lite::pin_project! {
    /// A request's answer: open ([`InFlight`]) until its body has been
    /// sent. A future of its own, not an `async` block, which would keep
    /// the request a second time beside the handler's future.
    struct Answer<F> {
        #[pin]
        handled: F,
        guard: Option<InFlight>,
    }
}

impl<F, B> Future for Answer<F>
where
    F: Future<Output = Result<http::Response<B>, std::convert::Infallible>>,
{
    type Output = Result<http::Response<Guarded<B>>, std::convert::Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Ok(resp) = std::task::ready!(this.handled.poll(cx));
        // Polled again after `Ready` it would have no guard: hyper never
        // does, and the answer then counts as already sent.
        let guard = this.guard.take();
        Poll::Ready(Ok(resp.map(|body| Guarded::new(body, guard))))
    }
}

/// A response body that keeps its request counted as open (for the idle
/// timeout) until the last byte is sent or the body is dropped, and that
/// tells the connection when it waits for the client (for `timeouts.send`).
pub struct Guarded<B> {
    body: B,
    guard: Option<InFlight>,
    /// Counted in `Activity::sending`: its next frame is ready, or about to
    /// be asked for, and hyper has not taken it (the client has not made
    /// room). Not while the console is being waited for.
    sending: bool,
}

impl<B> Guarded<B> {
    fn new(body: B, guard: Option<InFlight>) -> Self {
        if let Some(g) = &guard {
            g.0.sending.fetch_add(1, Ordering::Relaxed);
        }
        Self {
            body,
            sending: guard.is_some(),
            guard,
        }
    }

    fn set_sending(&mut self, sending: bool) {
        if self.sending == sending {
            return;
        }
        self.sending = sending;
        if let Some(g) = &self.guard {
            if sending {
                g.0.sending.fetch_add(1, Ordering::Relaxed);
            } else {
                g.0.sending.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }
}

impl<B> Drop for Guarded<B> {
    fn drop(&mut self) {
        self.set_sending(false);
    }
}

impl<B: hyper::body::Body + Unpin> hyper::body::Body for Guarded<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        if let Some(g) = &self.guard {
            g.0.taken.fetch_add(1, Ordering::Relaxed);
        }
        let r = Pin::new(&mut self.body).poll_frame(cx);
        match &r {
            // hyper asks for the next frame once this one is sent.
            Poll::Ready(Some(Ok(_))) => self.set_sending(true),
            // The console has nothing yet: not the client's doing.
            Poll::Pending => self.set_sending(false),
            Poll::Ready(None) | Poll::Ready(Some(Err(_))) => {
                self.set_sending(false);
                self.guard = None;
            }
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}

/// Whether a connection moves bytes, and how many requests it has open.
/// I/O bumps a counter (no clock read per read or write); the idle check
/// samples it.
#[derive(Default)]
pub(super) struct Activity {
    moved: AtomicU64,
    in_flight: AtomicUsize,
    /// Requests begun on this connection.
    requests: AtomicU64,
    /// Responses waiting for hyper to take their next frame.
    sending: AtomicUsize,
    /// Frames hyper asked responses for.
    taken: AtomicU64,
    /// Set while an idle HTTP/1 connection is being parked: hyper's
    /// shutdown of its connection then leaves the socket open.
    parking: std::sync::atomic::AtomicBool,
}

/// How finely the idle timeout is checked: it fires between `idle` and
/// `idle * (1 + 1/IDLE_STEPS)` after the last activity.
const IDLE_STEPS: u32 = 4;

impl Activity {
    fn touch(&self) {
        self.moved.fetch_add(1, Ordering::Relaxed);
    }

    /// The counters the connection's timer checks.
    fn sample(&self) -> Sample {
        Sample {
            requests: self.requests.load(Ordering::Relaxed),
            in_flight: self.in_flight.load(Ordering::Relaxed) != 0,
            taken: self.taken.load(Ordering::Relaxed),
            sending: self.sending.load(Ordering::Relaxed) != 0,
            moved: self.moved.load(Ordering::Relaxed),
        }
    }

    /// Completes once no byte has moved either way for `idle` (a tunnel).
    pub(super) async fn quiet_for(&self, idle: Duration) {
        quiet_for(idle, || (self.moved.load(Ordering::Relaxed), false)).await
    }
}

/// Completes once `sample` has returned the same count, and not busy, for
/// `idle`; checked every `idle / IDLE_STEPS` (no clock read per request or
/// per byte: the request path only bumps counters).
async fn quiet_for(idle: Duration, sample: impl Fn() -> (u64, bool)) {
    let step = (idle / IDLE_STEPS).max(Duration::from_millis(50));
    let mut seen = sample().0;
    let mut quiet = Duration::ZERO;
    loop {
        tokio::time::sleep(step).await;
        let (now, busy) = sample();
        if now == seen && !busy {
            quiet += step;
            if quiet >= idle {
                return;
            }
        } else {
            quiet = Duration::ZERO;
            seen = now;
        }
    }
}

/// Counts a connection in `netwarden_open_connections` while it lives.
pub(super) struct OpenConnection(prometheus_client::metrics::gauge::Gauge);

impl OpenConnection {
    pub(super) fn new(m: &crate::telemetry::metrics::Metrics) -> Self {
        Self::on(&m.open_connections)
    }

    /// Counted in `gauge` instead (`netwarden_open_tunnels`).
    pub(super) fn on(gauge: &prometheus_client::metrics::gauge::Gauge) -> Self {
        gauge.inc();
        Self(gauge.clone())
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Counts a request as open until dropped.
pub struct InFlight(Arc<Activity>);

impl InFlight {
    fn enter(a: Arc<Activity>) -> Self {
        a.requests.fetch_add(1, Ordering::Relaxed);
        a.in_flight.fetch_add(1, Ordering::Relaxed);
        Self(a)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A stream that records when it last moved bytes.
pub(super) struct Tracked<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S> Tracked<S> {
    pub(super) fn new(inner: S, activity: Arc<Activity>) -> Self {
        activity.touch();
        Self { inner, activity }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Tracked<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.touch();
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tracked<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        // A parked connection lives on: hyper closing its side of an idle
        // connection must not close the socket.
        if self.activity.parking.load(Ordering::Relaxed) {
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
