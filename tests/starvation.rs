//! One address must not be able to starve the guard: each test holds a
//! resource from 127.0.0.2 and checks that netwarden stays cheap and that
//! an operator at 127.0.0.1 is still served. Loops are bounded in count and
//! time; the bounds on CPU are generous (a busy loop costs whole seconds,
//! waiting costs milliseconds): correctness, not speed.

mod support;

use std::time::Duration;

use support::proxy::{Netwarden, Upstream, connect_from, get};
use tokio::io::AsyncWriteExt;

const POLICY: &str = "version: 1
networks:
  office: [127.0.0.1]
  lb: [127.0.0.3]
client_ip: { trusted_proxies: [lb] }
rules:
  - { name: console, paths: [\"/**\"], allow_from: [office] }
";

/// User plus system CPU time of a process so far, from /proc.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc stat");
    // Fields after the command name (which is in parentheses).
    let rest = &stat[stat.rfind(')').expect("comm") + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f[11].parse::<f64>().expect("utime") + f[12].parse::<f64>().expect("stime");
    // Linux reports clock ticks of 1/100 s (USER_HZ) in /proc.
    let hz = 100.0;
    ticks / hz
}

#[tokio::test]
async fn a_stalled_proxy_signature_costs_nothing_while_it_waits() {
    let up = Upstream::start().await;
    let nw = Netwarden::start(
        POLICY,
        &[],
        &[
            "--listen",
            "127.0.0.1:0",
            "--proxy-protocol",
            "--upstream",
            &up.url(),
        ],
    );
    let addr = nw.addr("http");
    // 500 peers send the first bytes of a v1 or v2 signature and stop.
    let mut held = Vec::with_capacity(500);
    for i in 0..500 {
        let mut s = connect_from("127.0.0.2", addr).await;
        let part: &[u8] = if i % 2 == 0 { b"PROX" } else { b"\r\n\r\n\0" };
        s.write_all(part).await.expect("send");
        held.push(s);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = cpu_seconds(nw.pid());
    tokio::time::sleep(Duration::from_secs(3)).await;
    let spent = cpu_seconds(nw.pid()) - before;
    // Re-peeking every 5 ms cost about a core here; waiting for the socket
    // to become readable costs nothing.
    assert!(
        spent < 0.3,
        "{spent:.2} s of CPU in 3 s for 500 stalled connections"
    );
    // And an operator is served meanwhile.
    let r = get("127.0.0.1", addr, "/x", &[]).await;
    assert_eq!(r.status, 200, "{r:?}");
    drop(held);
}

fn policy_with(server: &str) -> String {
    format!("{POLICY}server:\n{server}\n")
}

async fn metric(nw: &Netwarden, name: &str) -> f64 {
    let r = get("127.0.0.1", nw.addr("admin"), "/metrics", &[]).await;
    support::proxy::parse_metrics(&r.body)
        .get(name)
        .copied()
        .unwrap_or_else(|| panic!("{name} missing"))
}

#[tokio::test]
async fn silent_connections_are_closed_after_the_header_timeout_from_accept() {
    let up = Upstream::start().await;
    let nw = Netwarden::in_front_of(
        &policy_with(
            "  timeouts: { header_read: 1s, idle: 60s }\n  limits: { max_connections: 10 }",
        ),
        &up,
    );
    let addr = nw.addr("http");
    // Ten connections that never send a byte fill every slot.
    let mut silent = Vec::new();
    for _ in 0..10 {
        silent.push(connect_from("127.0.0.2", addr).await);
    }
    // Within the header timeout of being accepted they are closed, and the
    // operator gets in (before: they held the slots for the 60 s idle time).
    let r = get("127.0.0.1", addr, "/x", &[]).await;
    assert_eq!(r.status, 200, "{r:?}");
    for mut s in silent {
        let mut b = [0u8; 1];
        let n = tokio::time::timeout(
            support::proxy::WAIT,
            tokio::io::AsyncReadExt::read(&mut s, &mut b),
        )
        .await
        .expect("closed in time");
        assert!(matches!(n, Ok(0) | Err(_)), "{n:?}");
    }
}

#[tokio::test]
async fn an_http2_connection_with_only_pings_is_idle() {
    use http_body_util::Empty;
    let up = Upstream::start().await;
    let nw = Netwarden::in_front_of(&policy_with("  timeouts: { idle: 1s }"), &up);
    let stream = connect_from("127.0.0.1", nw.addr("http")).await;
    let (mut send, conn) =
        hyper::client::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
            .timer(hyper_util::rt::TokioTimer::new())
            .keep_alive_interval(Duration::from_millis(100))
            .keep_alive_while_idle(true)
            .handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .expect("h2 prior knowledge");
    let conn = tokio::spawn(conn);
    let req = http::Request::get("http://console.test/x")
        .body(Empty::<bytes::Bytes>::new())
        .expect("request");
    let r = send.send_request(req).await.expect("response");
    assert_eq!(r.status(), 200);
    drop(r);
    // Then only PINGs, ten a second: netwarden closes it after 1 s idle.
    let ended = tokio::time::timeout(support::proxy::WAIT, conn).await;
    assert!(
        ended.is_ok(),
        "an HTTP/2 connection kept alive by PINGs alone was not closed"
    );
}

const WS: &[u8] =
    b"GET /ws HTTP/1.1\r\nHost: console.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

async fn open_tunnel(addr: std::net::SocketAddr) -> tokio::net::TcpStream {
    use tokio::io::AsyncReadExt;
    let mut s = connect_from("127.0.0.1", addr).await;
    s.write_all(WS).await.expect("send");
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        tokio::time::timeout(support::proxy::WAIT, s.read_exact(&mut byte))
            .await
            .expect("in time")
            .expect("read");
        head.push(byte[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    s
}

#[tokio::test]
async fn tunnels_count_against_the_connection_limit_and_close_when_idle() {
    use tokio::io::AsyncReadExt;
    let up = Upstream::start().await;
    let nw = Netwarden::in_front_of(
        &policy_with("  timeouts: { tunnel_idle: 2s }\n  limits: { max_connections: 6 }"),
        &up,
    );
    let addr = nw.addr("http");
    let mut tunnels = Vec::new();
    for _ in 0..5 {
        tunnels.push(open_tunnel(addr).await);
    }
    // Five tunnels, each still a connection of its own (before: 0 and 0).
    assert_eq!(metric(&nw, "netwarden_open_tunnels").await, 5.0);
    assert_eq!(metric(&nw, "netwarden_open_connections").await, 5.0);
    // A tunnel that moves bytes stays; idle ones are closed after 2 s.
    let mut busy = tunnels.pop().expect("tunnel");
    for _ in 0..6 {
        busy.write_all(b"x").await.expect("write");
        let mut b = [0u8; 1];
        tokio::time::timeout(support::proxy::WAIT, busy.read_exact(&mut b))
            .await
            .expect("echo in time")
            .expect("echo");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    for mut t in tunnels {
        let mut b = [0u8; 1];
        let n = tokio::time::timeout(support::proxy::WAIT, t.read(&mut b))
            .await
            .expect("idle tunnel closed in time");
        assert!(matches!(n, Ok(0) | Err(_)), "{n:?}");
    }
    assert_eq!(metric(&nw, "netwarden_open_tunnels").await, 1.0);
    drop(busy);
}

#[tokio::test]
async fn shutdown_closes_tunnels_within_the_drain_time() {
    let up = Upstream::start().await;
    let nw = Netwarden::in_front_of(&policy_with("  timeouts: { drain: 5s }"), &up);
    let _t = open_tunnel(nw.addr("http")).await;
    // terminate() fails the test if the process has not exited in time.
    assert_eq!(nw.terminate(), 0);
}
