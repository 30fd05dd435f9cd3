//! `netwarden serve` as a real process on loopback, in front of a recording
//! upstream, with clients bound to chosen loopback source addresses.

use crate::support;

use std::time::Duration;

use support::proxy::{Netwarden, Upstream, connect_from, exchange_one, get, post};

/// 127.0.0.1 is the office, ::1 the VPN, 127.0.0.2 is outside, 127.0.0.3 is
/// a trusted load balancer.
fn policy(extra_server: &str) -> String {
    format!(
        "version: 1
networks:
  office: [127.0.0.1]
  vpn: [\"::1\"]
  corporate: {{ include: [office, vpn] }}
  lb: [127.0.0.3]
client_ip: {{ trusted_proxies: [lb] }}
rules:
  - {{ name: r_health, paths: [/healthz], action: allow }}
  - {{ name: r_login, paths: [/login], methods: [POST], login: true, allow_from: [corporate] }}
  - {{ name: r_console, paths: [\"/**\"], allow_from: [corporate] }}
server:
  timeouts: {{ upstream_response: 1s, drain: 10s }}
{extra_server}
"
    )
}

fn start(up: &Upstream, extra_args: &[&str]) -> Netwarden {
    let mut args = vec!["--listen", "127.0.0.1:0", "--upstream"];
    let url = up.url();
    args.push(&url);
    args.extend_from_slice(extra_args);
    Netwarden::start(&policy(""), &[], &args)
}

#[tokio::test]
async fn allowed_request_reaches_the_upstream_with_the_normalized_path_and_query() {
    let up = Upstream::start().await;
    let nw = start(&up, &[]);
    let r = get(
        "127.0.0.1",
        nw.addr("http"),
        "/a/./b/../%63//d?x=1&y=%2F",
        &[
            "X-Forwarded-For: 198.51.100.9",
            "Forwarded: for=198.51.100.9",
            "Keep-Alive: timeout=5",
        ],
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.body.starts_with("upstream ok"));
    // Hop-by-hop headers from the upstream (and those it named) are removed.
    assert_eq!(r.header("x-hop"), None, "{r:?}");
    let seen = up.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].target, "/a/c/d?x=1&y=%2F");
    // Spoofed forwarding headers from an untrusted peer are replaced.
    assert_eq!(seen[0].header("x-forwarded-for"), ["127.0.0.1"]);
    assert_eq!(
        seen[0].header("forwarded"),
        ["for=127.0.0.1;proto=http;host=\"console.test\""]
    );
    assert_eq!(seen[0].header("x-forwarded-proto"), ["http"]);
    assert_eq!(seen[0].header("host"), ["console.test"]);
    assert!(seen[0].header("keep-alive").is_empty());
    assert_eq!(seen[0].header("x-request-id").len(), 1);
}

#[tokio::test]
async fn denied_request_never_reaches_the_upstream() {
    let up = Upstream::start().await;
    let nw = start(&up, &[]);
    let r = get("127.0.0.2", nw.addr("http"), "/customers/1", &[]).await;
    assert_eq!(r.status, 403);
    assert_eq!(r.header("content-type"), Some("application/json"));
    let v: serde_json::Value = serde_json::from_str(&r.body).expect("JSON block body");
    assert_eq!(v["client_ip"], "127.0.0.2");
    assert_eq!(
        v["message"],
        "This console can only be used from the company network or VPN."
    );
    assert_eq!(v["request_id"].as_str(), r.header("x-request-id"));
    // Browsers get the HTML page, with no internals in it.
    let r = get(
        "127.0.0.2",
        nw.addr("http"),
        "/customers/1",
        &["Accept: text/html,*/*"],
    )
    .await;
    assert_eq!(r.status, 403);
    assert!(
        r.body.contains("<html") && r.body.contains("127.0.0.2"),
        "{}",
        r.body
    );
    for internal in ["corporate", "office", "r_console", "rule"] {
        assert!(!r.body.contains(internal), "block page leaks '{internal}'");
    }
    assert!(up.seen().is_empty(), "{:?}", up.seen());
}

#[tokio::test]
async fn blocked_login_is_logged_with_every_field_and_no_secrets() {
    let up = Upstream::start().await;
    let nw = start(&up, &[]);
    let r = post(
        "127.0.0.2",
        nw.addr("http"),
        "/login?password=hunter2",
        &[
            "Cookie: session=s3cr3t",
            "Authorization: Bearer t0ken",
            "User-Agent: test-agent/1.0",
        ],
    )
    .await;
    assert_eq!(r.status, 403);
    assert!(
        r.body
            .contains("Sign-in to this console is only allowed from the company network or VPN.")
    );
    let id = r.header("x-request-id").expect("request id").to_string();
    let d = nw.wait_log(|v| v["event"] == "decision" && v["request_id"] == id.as_str());
    for f in netwarden::telemetry::fields::DECISION {
        assert!(d.get(*f).is_some(), "decision line lacks {f}: {d}");
    }
    assert_eq!(d["client.address"], "127.0.0.2");
    assert_eq!(d["client.source"], "peer");
    assert_eq!(d["network.peer.address"], "127.0.0.2");
    assert_eq!(d["http.request.method"], "POST");
    assert_eq!(d["url.path"], "/login");
    assert_eq!(d["server.address"], "console.test");
    assert_eq!(d["http.response.status_code"], 403);
    assert_eq!(d["user_agent.original"], "test-agent/1.0");
    assert_eq!(d["rule"], "r_login");
    assert_eq!(d["action"], "deny");
    assert_eq!(d["login"], true);
    let blocked = nw.wait_log(|v| v["event"] == "login_blocked" && v["request_id"] == id.as_str());
    assert_eq!(blocked["level"], "WARN");
    assert_eq!(blocked["enforced"], true);
    let all = nw
        .logs()
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n");
    for secret in ["hunter2", "s3cr3t", "t0ken", "password="] {
        assert!(!all.contains(secret), "log leaks {secret}");
    }
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_console_hears_the_decided_client_and_spoofing_is_ignored() {
    let up = Upstream::start().await;
    let nw = start(&up, &[]);
    let r = get(
        "127.0.0.3",
        nw.addr("http"),
        "/x",
        &["X-Forwarded-For: 127.0.0.1", "X-Forwarded-Proto: https"],
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    let seen = up.seen();
    // One story: the client the decision was made for, not the chain; the
    // proxy's X-Forwarded-Proto is believed only with client_ip.trust_proto.
    assert_eq!(seen[0].header("x-forwarded-for"), ["127.0.0.1"]);
    assert_eq!(seen[0].header("x-real-ip"), ["127.0.0.1"]);
    assert_eq!(seen[0].header("x-forwarded-proto"), ["http"]);
    // The same header from an untrusted peer changes nothing.
    let r = get(
        "127.0.0.2",
        nw.addr("http"),
        "/x",
        &["X-Forwarded-For: 127.0.0.1"],
    )
    .await;
    assert_eq!(r.status, 403);
    // Through the trusted proxy, an outside client is denied.
    let r = get(
        "127.0.0.3",
        nw.addr("http"),
        "/x",
        &["X-Forwarded-For: 198.51.100.7"],
    )
    .await;
    assert_eq!(r.status, 403);
    let v: serde_json::Value = serde_json::from_str(&r.body).expect("JSON");
    assert_eq!(v["client_ip"], "198.51.100.7");
}

#[tokio::test]
async fn ipv6_loopback_client_is_the_vpn() {
    let up = Upstream::start().await;
    let nw = Netwarden::start(
        &policy(""),
        &[],
        &["--listen", "[::1]:0", "--upstream", &up.url()],
    );
    let r = get("::1", nw.addr("http"), "/x", &[]).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        up.seen()[0].header("forwarded"),
        ["for=\"[::1]\";proto=http;host=\"console.test\""]
    );
}

#[tokio::test]
async fn rejected_paths_get_400_and_never_reach_the_upstream() {
    let up = Upstream::start().await;
    let nw = start(&up, &[]);
    for path in [
        "/a%2Fb",
        "/a%5Cb",
        "/static/..;/x",
        "/a%00",
        "/%ff",
        "/a%zz",
    ] {
        let r = get("127.0.0.1", nw.addr("http"), path, &[]).await;
        assert_eq!(r.status, 400, "{path}: {r:?}");
    }
    assert!(up.seen().is_empty());
    // An absolute target names the host too: it must be the Host's.
    let r = get(
        "127.0.0.1",
        nw.addr("http"),
        "http://other.example/abs?q=1",
        &[],
    )
    .await;
    assert_eq!(r.status, 400, "{r:?}");
    assert!(up.seen().is_empty());
    let r = get(
        "127.0.0.1",
        nw.addr("http"),
        "http://console.test/abs?q=1",
        &[],
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(up.seen()[0].target, "/abs?q=1");
}

#[tokio::test]
async fn dead_upstream_is_502_and_slow_upstream_is_504() {
    // A port that nothing listens on.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr");
    let nw = Netwarden::start(
        &policy(""),
        &[],
        &[
            "--listen",
            "127.0.0.1:0",
            "--upstream",
            &format!("http://{dead}"),
        ],
    );
    let r = get("127.0.0.1", nw.addr("http"), "/x", &["Accept: text/html"]).await;
    assert_eq!(r.status, 502);
    assert!(r.body.contains("The console is unavailable"));

    let up = Upstream::start().await;
    let nw = start(&up, &[]);
    let r = get("127.0.0.1", nw.addr("http"), "/slow", &[]).await;
    assert_eq!(r.status, 504, "{r:?}");
    assert!(r.body.contains("console_timeout"));
    let r = get("127.0.0.1", nw.addr("http"), "/reset", &[]).await;
    assert_eq!(r.status, 502, "{r:?}");
    let e = nw.wait_log(|v| v["event"] == "upstream_error" && v["error"] == "request");
    assert!(e["request_id"].is_string());
}

#[tokio::test]
async fn slowloris_headers_are_cut_off_and_huge_headers_refused() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let up = Upstream::start().await;
    let nw = Netwarden::start(
        &policy("  limits: { max_header_bytes: 16384 }")
            .replace("drain: 10s", "drain: 10s, header_read: 1s, idle: 1s"),
        &[],
        &["--listen", "127.0.0.1:0", "--upstream", &up.url()],
    );
    // Half a request head, then silence: closed after the header timeout.
    let mut s = connect_from("127.0.0.1", nw.addr("http")).await;
    s.write_all(b"GET / HTTP/1.1\r\nHost: c\r\nX-Slow: ")
        .await
        .expect("send");
    let mut raw = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut raw)).await;
    assert!(closed.is_ok(), "slow client still connected after 10 s");
    // A head over max_header_bytes is refused (431) and never forwarded.
    let big = format!("X-Big: {}", "a".repeat(32 * 1024));
    let r = get("127.0.0.1", nw.addr("http"), "/x", &[&big]).await;
    assert_eq!(r.status, 431, "{r:?}");
    assert!(up.seen().is_empty());
    // An idle keep-alive connection is closed after the idle timeout.
    let mut s = connect_from("127.0.0.1", nw.addr("http")).await;
    s.write_all(b"GET /k HTTP/1.1\r\nHost: c\r\n\r\n")
        .await
        .expect("send");
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(support::proxy::WAIT, s.read(&mut buf))
        .await
        .expect("in time")
        .expect("read");
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut rest)).await;
    assert!(closed.is_ok(), "idle connection still open after 10 s");
}

#[tokio::test]
async fn block_page_template_replaces_the_built_in_page() {
    let up = Upstream::start().await;
    let nw = Netwarden::start(
        &policy("  block_page: block.html"),
        &[(
            "block.html",
            "<p>Blocked {{client_ip}} ({{request_id}}): {{message}}</p>",
        )],
        &["--listen", "127.0.0.1:0", "--upstream", &up.url()],
    );
    let r = get("127.0.0.2", nw.addr("http"), "/x", &["Accept: text/html"]).await;
    assert_eq!(r.status, 403);
    let id = r.header("x-request-id").expect("id");
    assert_eq!(
        r.body,
        format!(
            "<p>Blocked 127.0.0.2 ({id}): This console can only be used from the company network or VPN.</p>"
        )
    );
}

#[tokio::test]
async fn graceful_shutdown_finishes_the_request_in_flight() {
    let up = Upstream::start().await;
    let nw = Netwarden::start(
        &policy("").replace("upstream_response: 1s", "upstream_response: 10s"),
        &[],
        &["--listen", "127.0.0.1:0", "--upstream", &up.url()],
    );
    let addr = nw.addr("http");
    let inflight = tokio::spawn(async move { get("127.0.0.1", addr, "/slow", &[]).await });
    // Wait until the upstream has the request, then ask netwarden to stop.
    let deadline = std::time::Instant::now() + support::proxy::WAIT;
    while up.seen().is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "request never reached the upstream"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let code = tokio::task::spawn_blocking(move || nw.terminate())
        .await
        .expect("join");
    assert_eq!(code, 0);
    let r = inflight.await.expect("join");
    assert_eq!(r.status, 200, "{r:?}");
}

#[tokio::test]
async fn websocket_upgrade_is_decided_then_tunnelled() {
    let up = Upstream::start().await;
    let nw = start(&up, &[]);
    let req =
        b"GET /ws HTTP/1.1\r\nHost: console.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
                Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    // Denied before the upgrade.
    let r = exchange_one(connect_from("127.0.0.2", nw.addr("http")).await, req).await;
    assert_eq!(r.status, 403);
    // Allowed: 101, then bytes flow both ways.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = connect_from("127.0.0.1", nw.addr("http")).await;
    s.write_all(req).await.expect("send");
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        tokio::time::timeout(support::proxy::WAIT, s.read_exact(&mut byte))
            .await
            .expect("in time")
            .expect("read");
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(
        head.to_ascii_lowercase().contains("upgrade: websocket"),
        "{head}"
    );
    s.write_all(b"ping through the tunnel")
        .await
        .expect("write");
    let mut echo = [0u8; 23];
    tokio::time::timeout(support::proxy::WAIT, s.read_exact(&mut echo))
        .await
        .expect("in time")
        .expect("read");
    assert_eq!(&echo, b"ping through the tunnel");
    let seen = up.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].header("upgrade"), ["websocket"]);
}

/// `--log-format text` writes the same events for people, through
/// `tracing`'s text formatter (the JSON decision line has a faster path of
/// its own; this one must keep working).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_logs_carry_the_decision_for_people() {
    use std::io::{BufRead, BufReader};
    let up = Upstream::start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("policy.yaml");
    std::fs::write(&path, policy("")).expect("write policy");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_netwarden"))
        .args(["serve", "--log-format", "text", "--listen", "127.0.0.1:0"])
        .args([
            "--admin",
            "127.0.0.1:0",
            "--upstream",
            &up.url(),
            "--policy",
        ])
        .arg(&path)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("starts");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let next = |needle: &str| -> String {
        let deadline = std::time::Instant::now() + support::proxy::WAIT;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match rx.recv_timeout(left) {
                Ok(l) if l.contains(needle) => return l,
                Ok(_) => {}
                Err(_) => panic!("no line with {needle:?}"),
            }
        }
    };
    let listening = next("role=\"http\"");
    let addr: std::net::SocketAddr = listening
        .split("address=")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .expect("address field")
        .parse()
        .expect("socket address");
    assert_eq!(get("127.0.0.2", addr, "/orders", &[]).await.status, 403);
    // Blocks one of the runtime's two threads; the upstream needs none here.
    let line = next("event=\"decision\"");
    assert!(line.contains("INFO"), "{line}");
    assert!(line.contains("client.address=127.0.0.2"), "{line}");
    assert!(line.contains("action=\"deny\""), "{line}");
    let _ = child.kill();
    let _ = child.wait();
}

/// `server.log_allowed: debug`: allowed requests write no decision line,
/// denials still do.
#[tokio::test]
async fn allowed_requests_are_not_logged_at_debug() {
    let up = Upstream::start().await;
    let url = up.url();
    let nw = Netwarden::start(
        &policy("  log_allowed: debug"),
        &[],
        &["--listen", "127.0.0.1:0", "--upstream", &url],
    );
    let addr = nw.addr("http");
    assert_eq!(get("127.0.0.1", addr, "/allowed", &[]).await.status, 200);
    assert_eq!(get("127.0.0.2", addr, "/denied", &[]).await.status, 403);
    nw.wait_log(|v| v["event"] == "decision" && v["url.path"] == "/denied");
    assert!(
        !nw.logs()
            .iter()
            .any(|v| v["event"] == "decision" && v["url.path"] == "/allowed"),
        "an allowed request was logged at info"
    );
}
