//! Room at the console for the people it exists for (issue 22, findings 3
//! and 4), through the real binary: clients that read nothing hold no
//! console connection for a small answer (response buffering); outside
//! clients stalling large answers on a public path cannot take the office's
//! connections (the public share); an operator's browser asking for 100
//! things at once, and an office behind one address asking for 1,000, get
//! every answer (a request over its address's share waits, never 503).
//! The stalling clients speak cleartext HTTP/2 with a stream window of 0:
//! they read nothing, and cost nothing to keep.

use crate::support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use support::proxy::{Netwarden, WAIT, connect_from, get};

/// A console: `/static/big` is 256 KiB (larger than the response buffer),
/// `/slow/…` answers 1 KiB after 50 ms, everything else 1 KiB at once.
/// Counts the requests it received.
struct Console {
    url: String,
    received: Arc<AtomicUsize>,
}

impl Console {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let received = Arc::new(AtomicUsize::new(0));
        let count = received.clone();
        tokio::spawn(async move {
            while let Ok((s, _)) = listener.accept().await {
                let count = count.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(
                        move |req: http::Request<hyper::body::Incoming>| {
                            let count = count.clone();
                            async move {
                                count.fetch_add(1, Ordering::SeqCst);
                                let path = req.uri().path().to_string();
                                if path.starts_with("/slow/") {
                                    tokio::time::sleep(Duration::from_millis(50)).await;
                                }
                                let size = if path == "/static/big" {
                                    256 * 1024
                                } else {
                                    1024
                                };
                                Ok::<_, hyper::Error>(http::Response::new(Full::new(Bytes::from(
                                    vec![b'x'; size],
                                ))))
                            }
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(s), svc)
                        .await;
                });
            }
        });
        Self { url, received }
    }

    fn received(&self) -> usize {
        self.received.load(Ordering::SeqCst)
    }
}

type H2 = hyper::client::conn::http2::SendRequest<Empty<Bytes>>;

/// A cleartext HTTP/2 connection from `from`; `window` is its streams'
/// initial window (0: the server may send no body at all).
async fn h2(from: &str, to: SocketAddr, window: u32) -> H2 {
    let io = TokioIo::new(connect_from(from, to).await);
    let (tx, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .initial_stream_window_size(window)
        .adaptive_window(false)
        .handshake(io)
        .await
        .expect("HTTP/2 handshake");
    tokio::spawn(conn);
    tx
}

fn request(path: &str) -> http::Request<Empty<Bytes>> {
    http::Request::builder()
        .uri(format!("http://console.test{path}"))
        .body(Empty::new())
        .expect("request")
}

/// `streams` requests for `path` on one stalled connection from `from`,
/// each held unread until the set is dropped.
async fn stall(
    set: &mut tokio::task::JoinSet<()>,
    from: &str,
    to: SocketAddr,
    path: &str,
    streams: usize,
) {
    let tx = h2(from, to, 0).await;
    for _ in 0..streams {
        let mut tx = tx.clone();
        let req = request(path);
        set.spawn(async move {
            let held = tx.send_request(req).await;
            std::future::pending::<()>().await;
            drop(held);
        });
    }
}

/// `n` requests for `path` at once on one connection that reads
/// everything; their statuses.
async fn parallel(from: &str, to: SocketAddr, path: &str, n: usize) -> Vec<u16> {
    let tx = h2(from, to, 65_535).await;
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..n {
        let mut tx = tx.clone();
        let req = request(path);
        set.spawn(async move {
            let resp = tokio::time::timeout(WAIT, tx.send_request(req))
                .await
                .expect("an answer in time")
                .expect("a response");
            let status = resp.status().as_u16();
            let _ = tokio::time::timeout(WAIT, resp.into_body().collect()).await;
            status
        });
    }
    let mut out = Vec::with_capacity(n);
    while let Some(s) = set.join_next().await {
        out.push(s.expect("task"));
    }
    out
}

async fn until(what: &str, ok: impl Fn() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A client that reads nothing of 32 small answers holds none of the
/// console's 8 connections: each answer is read whole into netwarden and
/// the connection given back (nginx's proxy_buffering). Before, the 8 were
/// held until `timeouts.send` and every other request got 503.
#[tokio::test]
async fn a_client_that_reads_nothing_holds_no_console_connection_for_a_small_answer() {
    let console = Console::start().await;
    let policy = "version: 1
networks:
  office: [127.0.0.0/24]
rules:
  - { name: console, allow_from: [office] }
server:
  limits: { upstream_connections: 8 }
  timeouts: { upstream_connect: 2s }
";
    let nw = Netwarden::start(
        policy,
        &[],
        &["--listen", "127.0.0.1:0", "--upstream", &console.url],
    );
    let addr = nw.addr("http");
    let mut stalled = tokio::task::JoinSet::new();
    stall(&mut stalled, "127.0.0.2", addr, "/small", 32).await;
    // Every one of them reaches the console, 8 connections or not.
    until("the console to answer all 32", || console.received() >= 32).await;
    for _ in 0..4 {
        let r = get("127.0.0.3", addr, "/page", &[]).await;
        assert_eq!(r.status, 200, "{r:?}");
    }
    stalled.abort_all();
}

/// The attack: 20 outside addresses, allowed nowhere but the
/// public `/static/**`, each with one connection of 64 streams that read
/// nothing of a large file, 1,280 in all against 1,024 console
/// connections. Public requests share a quarter of them; the office's
/// requests get answers (four out of four), an operator's browser gets
/// its 100 parallel requests answered, and an office behind one address
/// its 1,000 on 10 connections, with the attack running.
#[tokio::test]
async fn stalled_outside_clients_cannot_take_the_offices_room_at_the_console() {
    let console = Console::start().await;
    let policy = "version: 1
networks:
  office: [127.0.0.1]
rules:
  - { name: static, paths: [\"/static/**\"], action: allow }
  - { name: console, paths: [\"/**\"], allow_from: [office] }
server:
  timeouts: { upstream_connect: 2s }
";
    let nw = Netwarden::start(
        policy,
        &[],
        &["--listen", "127.0.0.1:0", "--upstream", &console.url],
    );
    let addr = nw.addr("http");
    let mut stalled = tokio::task::JoinSet::new();
    for i in 1..=20 {
        stall(
            &mut stalled,
            &format!("127.0.1.{i}"),
            addr,
            "/static/big",
            64,
        )
        .await;
    }
    // The public share (a quarter of 1,024) fills up.
    until("the public share to fill", || console.received() >= 256).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = console.received();
    assert!(before < 300, "public requests past their share: {before}");
    for _ in 0..4 {
        let asked = Instant::now();
        let r = get("127.0.0.1", addr, "/console", &[]).await;
        assert_eq!(r.status, 200, "{r:?}");
        // Said, not asserted (a loaded CI machine is slow): the issue's
        // measure is "within a second".
        eprintln!("office request answered in {:?}", asked.elapsed());
    }
    // An operator's browser: 100 requests at once on one connection.
    let statuses = parallel("127.0.0.1", addr, "/slow/chunk", 100).await;
    assert!(statuses.iter().all(|&s| s == 200), "{statuses:?}");
    // An office behind one address: 10 such connections at once.
    let asked = Instant::now();
    let mut offices = tokio::task::JoinSet::new();
    for _ in 0..10 {
        offices.spawn(async move { parallel("127.0.0.1", addr, "/slow/chunk", 100).await });
    }
    let mut answered = 0;
    while let Some(statuses) = offices.join_next().await {
        let statuses = statuses.expect("task");
        assert!(statuses.iter().all(|&s| s == 200), "{statuses:?}");
        answered += statuses.len();
    }
    assert_eq!(answered, 1000);
    eprintln!("1,000 office requests answered in {:?}", asked.elapsed());
    stalled.abort_all();
}
