//! Ways around the decision, each sent through the real binary: h2c
//! upgrades, a 101 the client did not ask for, Forwarded quoting, Host,
//! method and path forms the console reads differently, and client-address
//! headers the console may believe. docs/security.md lists them.

use crate::support;

use std::time::Duration;

use support::console::H2cConsole;
use support::proxy::{Netwarden, Reply, Upstream, WAIT, connect_from, exchange, get, parse_reply};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// 127.0.0.1 is the office, 127.0.0.2 is outside, 127.0.0.3 is a trusted
/// load balancer. `/static/**` and everything not named is open to all.
fn policy(top: &str, client_ip: &str, server: &str) -> String {
    format!(
        "version: 1
{top}
networks:
  office: [127.0.0.1]
  lb: [127.0.0.3]
client_ip: {{ trusted_proxies: [lb] {client_ip} }}
rules:
  - {{ name: static, paths: [\"/static/**\"], action: allow }}
  - {{ name: login, paths: [/login], methods: [POST], login: true, allow_from: [office] }}
  - {{ name: admin_host, hosts: [admin.example.com], allow_from: [office] }}
  - {{ name: admin, paths: [\"/admin/**\"], allow_from: [office] }}
  - {{ name: open, paths: [\"/**\"], action: allow }}
server:
  timeouts: {{ upstream_response: 5s }}
{server}
"
    )
}

fn guard(policy: &str, upstream: &str) -> Netwarden {
    Netwarden::start(
        policy,
        &[],
        &["--listen", "127.0.0.1:0", "--upstream", upstream],
    )
}

/// Reads one response (head and `Content-Length` body) from a connection
/// that stays open.
async fn read_response(stream: &mut TcpStream) -> Reply {
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = tokio::time::timeout(WAIT, stream.read(&mut buf))
            .await
            .expect("response in time")
            .expect("read");
        assert!(n > 0, "connection closed mid-head: {raw:?}");
        raw.extend_from_slice(&buf[..n]);
    };
    let head = parse_reply(&raw[..head_end]);
    let chunked = head
        .header("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
    let len: usize = head
        .header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    // A chunked body is read to its last chunk (kept encoded).
    while (chunked && !raw.ends_with(b"0\r\n\r\n")) || (!chunked && raw.len() < head_end + len) {
        let n = tokio::time::timeout(WAIT, stream.read(&mut buf))
            .await
            .expect("body in time")
            .expect("read");
        assert!(n > 0, "connection closed mid-body");
        raw.extend_from_slice(&buf[..n]);
    }
    let end = if chunked { raw.len() } else { head_end + len };
    parse_reply(&raw[..end])
}

fn paths(seen: &[serde_json::Value]) -> Vec<String> {
    seen.iter()
        .map(|r| r["path"].as_str().unwrap_or("").to_string())
        .collect()
}

// ---- 1. Upgrades and tunnels -------------------------------------------

const H2C_UPGRADE: &str = "Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n";

#[tokio::test]
async fn h2c_upgrade_on_an_open_path_is_never_tunnelled() {
    let console = H2cConsole::start();
    let nw = guard(&policy("", "", ""), &console.url());
    let mut s = connect_from("127.0.0.2", nw.addr("http")).await;
    let req = format!("GET /static/x HTTP/1.1\r\nHost: www.example.com\r\n{H2C_UPGRADE}\r\n");
    s.write_all(req.as_bytes()).await.expect("send");
    let r = read_response(&mut s).await;
    // A plain HTTP/1.1 answer, not 101: the connection stays HTTP/1.1 and
    // each request on it is decided.
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.body.contains("console ok"), "{r:?}");
    s.write_all(b"GET /admin/users HTTP/1.1\r\nHost: www.example.com\r\nConnection: close\r\n\r\n")
        .await
        .expect("send");
    let r = read_response(&mut s).await;
    assert_eq!(r.status, 403, "{r:?}");
    let seen = console.seen();
    assert_eq!(paths(&seen), ["/static/x"], "{seen:#?}");
    assert_eq!(seen[0]["http_version"], "1.1");
    for (name, _) in seen[0]["headers"]
        .as_array()
        .expect("headers")
        .iter()
        .map(|h| (h[0].as_str().unwrap_or(""), h[1].as_str().unwrap_or("")))
    {
        assert!(
            !matches!(name, "upgrade" | "http2-settings"),
            "{name} reached the console: {seen:#?}"
        );
    }
}

#[tokio::test]
async fn curl_http2_cannot_tunnel_past_the_decision() {
    let console = H2cConsole::start();
    let nw = guard(&policy("", "", ""), &console.url());
    let base = format!("http://{}", nw.addr("http"));
    // `curl --http2` asks for h2c on the first request and, had it been
    // switched, would send the second over the HTTP/2 tunnel.
    let out = std::process::Command::new("curl")
        .args([
            "--http2",
            "--interface",
            "127.0.0.2",
            "--max-time",
            "10",
            "-s",
        ])
        .args(["-o", "/dev/null", "-o", "/dev/null"])
        .args(["-w", "%{http_code} %{http_version}\\n"])
        .arg(format!("{base}/static/x"))
        .arg(format!("{base}/admin/users"))
        .output()
        .expect("curl runs (install curl to run the tests)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text, "200 1.1\n403 1.1\n", "{out:?}");
    assert_eq!(paths(&console.seen()), ["/static/x"]);
}

/// An upstream that answers every request with `101` to `h2c` and then
/// holds the connection: a console that switches without being asked.
async fn switching_upstream() -> std::net::SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = l.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = s
                    .write_all(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n")
                    .await;
                let _ = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf)).await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn a_101_to_a_protocol_not_asked_for_is_a_502() {
    let up = switching_upstream().await;
    let nw = guard(&policy("", "", ""), &format!("http://{up}"));
    // A WebSocket upgrade answered with h2c.
    let r = support::proxy::exchange_one(
        connect_from("127.0.0.1", nw.addr("http")).await,
        b"GET /static/ws HTTP/1.1\r\nHost: www.example.com\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    )
    .await;
    assert_eq!(r.status, 502, "{r:?}");
    // A plain request answered with a switch.
    let r = get("127.0.0.1", nw.addr("http"), "/static/x", &[]).await;
    assert_eq!(r.status, 502, "{r:?}");
    // An h2c upgrade, stripped on the way, and switched anyway.
    let r = support::proxy::exchange_one(
        connect_from("127.0.0.1", nw.addr("http")).await,
        format!("GET /static/x HTTP/1.1\r\nHost: www.example.com\r\n{H2C_UPGRADE}\r\n").as_bytes(),
    )
    .await;
    assert_eq!(r.status, 502, "{r:?}");
    nw.wait_log(|v| v["event"] == "upstream_error" && v["error"] == "unrequested_upgrade");
}

#[test]
fn h2c_in_server_upgrades_is_a_located_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("policy.yaml");
    std::fs::write(&path, policy("", "", "  upgrades: [websocket, h2c]\n")).expect("write");
    let (code, out, err) = support::run(&["check", "--policy", path.to_str().expect("utf-8")]);
    assert_ne!(code, 0, "{out}{err}");
    let text = format!("{out}{err}");
    assert!(text.contains("'h2c' can never be enabled"), "{text}");
    assert!(text.contains("policy.yaml:15:25:"), "{text}");
}

// ---- 2. Forwarded quoting ------------------------------------------------

#[tokio::test]
async fn forwarded_with_an_unterminated_quote_is_an_unknown_client() {
    let up = Upstream::start().await;
    let nw = guard(&policy("", ", header: forwarded", ""), &up.url());
    // The client wrote `for=<office>;by="`; the trusted proxy appended the
    // real client, on the same line or on a line of its own.
    for lines in [
        &["Forwarded: for=127.0.0.1;by=\", for=198.51.100.7"][..],
        &[
            "Forwarded: for=127.0.0.1;by=\"",
            "Forwarded: for=198.51.100.7",
        ][..],
    ] {
        let r = get("127.0.0.3", nw.addr("http"), "/admin/users", lines).await;
        assert_eq!(r.status, 403, "{lines:?}: {r:?}");
        let v: serde_json::Value = serde_json::from_str(&r.body).expect("JSON");
        assert_eq!(v["client_ip"], "unknown", "{lines:?}");
    }
    assert!(up.seen().is_empty());
    let dir = nw.dir().to_str().expect("utf-8").to_string();
    let (code, out, _) = support::run(&[
        "explain",
        "--policy",
        &format!("{dir}/policy.yaml"),
        "--peer",
        "127.0.0.3",
        "--header",
        "Forwarded: for=127.0.0.1;by=\", for=198.51.100.7",
        "--path",
        "/admin/users",
    ]);
    assert!(out.contains("deny"), "{code} {out}");
}

// ---- 3. Host confusion ----------------------------------------------------

#[tokio::test]
async fn every_host_form_a_console_may_read_differently_is_refused() {
    let up = Upstream::start().await;
    let nw = guard(&policy("", "", ""), &up.url());
    let cases: &[(&str, &str)] = &[
        (
            "GET / HTTP/1.1\r\nHost: www.example.com\r\nHost: admin.example.com\r\n",
            "two Host lines",
        ),
        (
            "GET / HTTP/1.1\r\nHost: www.example.com, admin.example.com\r\n",
            "a list",
        ),
        (
            "GET / HTTP/1.1\r\nHost: www.example.com@admin.example.com\r\n",
            "userinfo",
        ),
        ("GET / HTTP/1.1\r\nHost: \r\n", "empty"),
        ("GET / HTTP/1.1\r\n", "missing"),
        // HTTP/1.0 without Host: decided with none, the console would get
        // a Host of netwarden's choosing (the upstream's).
        ("GET / HTTP/1.0\r\n", "missing on HTTP/1.0"),
        // Two trailing dots: one stripped for the rule, both sent on.
        (
            "GET / HTTP/1.1\r\nHost: admin.example.com..\r\n",
            "an empty label",
        ),
        (
            "GET http://admin.example.com/ HTTP/1.1\r\nHost: www.example.com\r\n",
            "an absolute target naming another host",
        ),
    ];
    for (head, what) in cases {
        let req = format!("{head}Connection: close\r\n\r\n");
        let r = exchange(
            connect_from("127.0.0.2", nw.addr("http")).await,
            req.as_bytes(),
        )
        .await;
        assert_eq!(r.status, 400, "{what}: {r:?}");
    }
    // A non-ASCII Host (a fullwidth dot, which IDNA maps to '.'; a no-break
    // space) is refused, not taken for "no Host".
    for host in [
        "admin\u{ff0e}example.com".as_bytes(),
        "admin.example.com\u{a0}".as_bytes(),
        b"\xc3\xa9:80".as_slice(),
    ] {
        let mut req = b"GET /x HTTP/1.1\r\nHost: ".to_vec();
        req.extend_from_slice(host);
        req.extend_from_slice(b"\r\nConnection: close\r\n\r\n");
        let r = exchange(connect_from("127.0.0.2", nw.addr("http")).await, &req).await;
        assert_eq!(r.status, 400, "{host:?}: {r:?}");
    }
    assert!(up.seen().is_empty(), "{:#?}", up.seen());
    let d = nw.wait_log(|v| v["event"] == "decision" && v["rule"] == "invalid_host");
    assert_eq!(d["reason_code"], "host_rejected");
}

#[tokio::test]
async fn connection_cannot_remove_the_host_the_decision_used() {
    let up = Upstream::start().await;
    let nw = guard(&policy("", "", ""), &up.url());
    let r = get(
        "127.0.0.2",
        nw.addr("http"),
        "/x",
        &["Connection: Host, X-Forwarded-For, X-Real-IP, Forwarded"],
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    let seen = up.seen();
    assert_eq!(seen[0].header("host"), ["console.test"]);
    assert_eq!(seen[0].header("x-forwarded-for"), ["127.0.0.2"]);
    assert_eq!(seen[0].header("x-real-ip"), ["127.0.0.2"]);
}

#[tokio::test]
async fn an_http2_authority_that_differs_from_host_is_refused() {
    use http_body_util::{BodyExt, Empty};
    let up = Upstream::start().await;
    let nw = guard(&policy("", "", ""), &up.url());
    let stream = connect_from("127.0.0.2", nw.addr("http")).await;
    let (mut send, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .expect("h2 prior knowledge");
    tokio::spawn(conn);
    let ask = |authority: &str, host: Option<&str>| {
        let mut b = http::Request::get(format!("http://{authority}/x"));
        if let Some(h) = host {
            b = b.header("host", h);
        }
        b.body(Empty::<bytes::Bytes>::new()).expect("request")
    };
    let r = tokio::time::timeout(
        WAIT,
        send.send_request(ask("www.example.com", Some("admin.example.com"))),
    )
    .await
    .expect("in time")
    .expect("response");
    assert_eq!(r.status(), 400);
    let _ = r.into_body().collect().await;
    assert!(up.seen().is_empty(), "{:#?}", up.seen());
    // The same authority in both is fine, and reaches the console as Host.
    let r = tokio::time::timeout(
        WAIT,
        send.send_request(ask("www.example.com", Some("www.example.com"))),
    )
    .await
    .expect("in time")
    .expect("response");
    assert_eq!(r.status(), 200);
    assert_eq!(up.seen()[0].header("host"), ["www.example.com"]);
}

// ---- 4. Methods and paths -------------------------------------------------

async fn send_method(nw: &Netwarden, method: &str, path: &str) -> Reply {
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: console.test\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    exchange(
        connect_from("127.0.0.2", nw.addr("http")).await,
        req.as_bytes(),
    )
    .await
}

#[tokio::test]
async fn miscased_methods_are_refused_unless_the_policy_allows_them() {
    let up = Upstream::start().await;
    let nw = guard(&policy("", "", ""), &up.url());
    for m in ["post", "Post", "pOST"] {
        let r = send_method(&nw, m, "/login").await;
        assert_eq!(r.status, 400, "{m}: {r:?}");
    }
    assert!(up.seen().is_empty());
    let d = nw.wait_log(|v| v["event"] == "decision" && v["rule"] == "invalid_method");
    assert_eq!(d["reason_code"], "method_rejected");
    drop(nw);

    // Allowed: then they match POST rules, and a blocked login is one.
    let nw = guard(&policy("case_insensitive_methods: true", "", ""), &up.url());
    let r = send_method(&nw, "post", "/login").await;
    assert_eq!(r.status, 403, "{r:?}");
    nw.wait_log(|v| v["event"] == "login_blocked");
    assert!(up.seen().is_empty());
}

#[tokio::test]
async fn path_parameters_and_trailing_dots_are_refused_unless_allowed() {
    let up = Upstream::start().await;
    let nw = guard(&policy("", "", ""), &up.url());
    for path in [
        "/admin;x/users",
        "/admin;/users",
        "/admin./users",
        "/admin%2E/users",
        "/admin%20/users",
        "/static/..%3B/admin/users",
        "/admin%3Bx/users",
        "/admin%252e/users",
    ] {
        let r = get("127.0.0.2", nw.addr("http"), path, &[]).await;
        assert_eq!(r.status, 400, "{path}: {r:?}");
    }
    assert!(up.seen().is_empty());
    drop(nw);
    let nw = guard(
        &policy(
            "allow_path_parameters: true\nallow_trailing_dots: true",
            "",
            "",
        ),
        &up.url(),
    );
    let r = get("127.0.0.2", nw.addr("http"), "/admin;x/users", &[]).await;
    assert_eq!(r.status, 200, "{r:?}");
    let r = get("127.0.0.2", nw.addr("http"), "/admin./users", &[]).await;
    assert_eq!(r.status, 200, "{r:?}");
    let targets: Vec<String> = up.seen().iter().map(|s| s.target.clone()).collect();
    assert_eq!(targets, ["/admin;x/users", "/admin./users"]);
}

// ---- 5. Client-address headers ---------------------------------------------

const SPOOFS: &[&str] = &[
    "X-Real-IP: 127.0.0.1",
    "True-Client-IP: 127.0.0.1",
    "CF-Connecting-IP: 127.0.0.1",
    "X-Client-IP: 127.0.0.1",
    "X-Cluster-Client-IP: 127.0.0.1",
    "Fastly-Client-IP: 127.0.0.1",
    "X_Forwarded_For: 127.0.0.1",
    "X-Forwarded_For: 127.0.0.1",
    "X_Real_IP: 127.0.0.1",
    "X-Original-URL: /admin/users",
    "X-HTTP-Method-Override: DELETE",
    // Issue 22: what Tornado (Jupyter's trust_xheaders), gunicorn and
    // pgAdmin read: a plain-HTTP request announced as HTTPS, a client
    // address, a path prefix pgAdmin strips before routing.
    "X-Scheme: https",
    "X-Forwarded-Protocol: ssl",
    "X-Forwarded-Ssl: on",
    "Cluster-Client-IP: 127.0.0.1",
    "X-Script-Name: /admin",
    "Script_Name: /admin",
    "X-Forwarded-Prefix: /admin",
    "X-Forwarded-By: 127.0.0.1",
];

fn client_headers(seen: &support::proxy::Seen) -> Vec<(String, String)> {
    let mut h: Vec<(String, String)> = seen
        .headers
        .iter()
        .filter(|(n, _)| {
            !matches!(
                n.as_str(),
                "host" | "x-request-id" | "content-length" | "accept" | "user-agent"
            )
        })
        .cloned()
        .collect();
    h.sort();
    h
}

#[tokio::test]
async fn the_console_hears_only_the_client_that_was_decided_on() {
    let up = Upstream::start().await;
    let nw = guard(&policy("", "", ""), &up.url());
    // From outside, on an open path, with every spoof.
    let mut extra = SPOOFS.to_vec();
    extra.extend(["X-Forwarded-For: 127.0.0.1", "Forwarded: for=127.0.0.1"]);
    let r = get("127.0.0.2", nw.addr("http"), "/static/x", &extra).await;
    assert_eq!(r.status, 200, "{r:?}");
    // Behind the trusted proxy: the client's own Forwarded, proto and host
    // are not the proxy's word.
    let mut extra = SPOOFS.to_vec();
    extra.extend([
        "Forwarded: for=127.0.0.1",
        "X-Forwarded-Proto: https",
        "X-Forwarded-Host: admin.example.com",
        "X-Forwarded-For: 198.51.100.7",
    ]);
    let r = get("127.0.0.3", nw.addr("http"), "/static/y", &extra).await;
    assert_eq!(r.status, 200, "{r:?}");
    let seen = up.seen();
    let story = |client: &str| {
        let mut want = vec![
            (
                "forwarded".to_string(),
                format!("for={client};proto=http;host=\"console.test\""),
            ),
            ("x-forwarded-for".to_string(), client.to_string()),
            ("x-forwarded-host".to_string(), "console.test".to_string()),
            ("x-forwarded-proto".to_string(), "http".to_string()),
            ("x-real-ip".to_string(), client.to_string()),
        ];
        want.sort();
        want
    };
    assert_eq!(
        client_headers(&seen[0]),
        story("127.0.0.2"),
        "{:#?}",
        seen[0]
    );
    assert_eq!(
        client_headers(&seen[1]),
        story("198.51.100.7"),
        "{:#?}",
        seen[1]
    );
}

#[tokio::test]
async fn strip_headers_adds_a_console_specific_client_header_in_every_spelling() {
    let up = Upstream::start().await;
    let nw = guard(&policy("", ", strip_headers: [X-My-IP]", ""), &up.url());
    let r = get(
        "127.0.0.2",
        nw.addr("http"),
        "/static/x",
        &["X-My-IP: 127.0.0.1", "X_My_IP: 127.0.0.1", "X-Other: kept"],
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    let seen = up.seen();
    assert!(seen[0].header("x-my-ip").is_empty(), "{:#?}", seen[0]);
    assert!(seen[0].header("x_my_ip").is_empty(), "{:#?}", seen[0]);
    assert_eq!(seen[0].header("x-other"), ["kept"]);
}

#[tokio::test]
async fn a_trusted_proxys_proto_is_believed_only_with_trust_proto() {
    let up = Upstream::start().await;
    let nw = guard(&policy("", ", trust_proto: true", ""), &up.url());
    let fwd = ["X-Forwarded-For: 198.51.100.7", "X-Forwarded-Proto: https"];
    assert_eq!(
        get("127.0.0.3", nw.addr("http"), "/static/x", &fwd)
            .await
            .status,
        200
    );
    assert_eq!(
        get("127.0.0.2", nw.addr("http"), "/static/x", &fwd)
            .await
            .status,
        200
    );
    let seen = up.seen();
    assert_eq!(seen[0].header("x-forwarded-proto"), ["https"]);
    assert_eq!(seen[1].header("x-forwarded-proto"), ["http"]);
}

// ---- Request smuggling ------------------------------------------------------

#[tokio::test]
async fn conflicting_framing_never_smuggles_a_second_request_to_the_console() {
    let up = Upstream::start().await;
    let nw = guard(&policy("", "", ""), &up.url());
    let smuggled = "GET /admin/users HTTP/1.1\r\nHost: admin.example.com\r\n\r\n";
    let cases = [
        // CL.TE and TE.CL: the console must not see the tail as a request.
        format!(
            "POST /static/x HTTP/1.1\r\nHost: www.example.com\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n0\r\n\r\n{smuggled}"
        ),
        format!(
            "POST /static/x HTTP/1.1\r\nHost: www.example.com\r\nContent-Length: {}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n{smuggled}",
            smuggled.len()
        ),
        format!(
            "POST /static/x HTTP/1.1\r\nHost: www.example.com\r\nTransfer-Encoding: chunked, identity\r\nConnection: close\r\n\r\n0\r\n\r\n{smuggled}"
        ),
    ];
    for req in &cases {
        let r = exchange(
            connect_from("127.0.0.2", nw.addr("http")).await,
            req.as_bytes(),
        )
        .await;
        assert!(matches!(r.status, 200 | 400), "{req:?}: {r:?}");
    }
    for seen in up.seen() {
        assert_eq!(seen.target, "/static/x", "{seen:#?}");
    }
}

// ---- Logging always runs -------------------------------------------------

#[tokio::test]
async fn a_client_that_goes_away_still_leaves_a_decision_line() {
    let up = Upstream::start().await;
    let nw = guard(&policy("", "", ""), &up.url());
    // The console takes 2 s (/slow); the client leaves after 200 ms.
    let mut s = connect_from("127.0.0.2", nw.addr("http")).await;
    s.write_all(b"GET /slow HTTP/1.1\r\nHost: www.example.com\r\n\r\n")
        .await
        .expect("send");
    tokio::time::sleep(Duration::from_millis(200)).await;
    drop(s);
    let d = nw.wait_log(|v| v["event"] == "decision" && v["url.path"] == "/slow");
    assert_eq!(d["http.response.status_code"], 499, "{d}");
    assert_eq!(d["action"], "allow");
    // The console got it, with the id the line carries.
    let deadline = std::time::Instant::now() + WAIT;
    while up.seen().is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the console never got it"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        up.seen()[0].header("x-request-id"),
        [d["request_id"].as_str().expect("id")]
    );
}

// ---- PROXY protocol --------------------------------------------------------

#[tokio::test]
async fn a_proxys_own_connection_has_no_client_headers_to_believe() {
    let up = Upstream::start().await;
    let nw = Netwarden::start(
        &policy("", "", ""),
        &[],
        &[
            "--listen",
            "127.0.0.1:0",
            "--proxy-protocol",
            "--upstream",
            &up.url(),
        ],
    );
    let request = "GET /admin/users HTTP/1.1\r\nHost: www.example.com\r\nX-Forwarded-For: 127.0.0.1\r\nConnection: close\r\n\r\n";
    // v1 UNKNOWN and v2 LOCAL from the trusted proxy: a layer-4 proxy's
    // own connection, whose X-Forwarded-For was written by the sender.
    let mut v2_local = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    v2_local.extend_from_slice(&[0x20, 0x00, 0x00, 0x00]);
    for header in [b"PROXY UNKNOWN\r\n".to_vec(), v2_local] {
        let mut bytes = header.clone();
        bytes.extend_from_slice(request.as_bytes());
        let r = exchange(connect_from("127.0.0.3", nw.addr("http")).await, &bytes).await;
        assert_eq!(r.status, 403, "{r:?}");
        let v: serde_json::Value = serde_json::from_str(&r.body).expect("JSON");
        assert_eq!(v["client_ip"], "127.0.0.3");
    }
    assert!(up.seen().is_empty());
}

// ---- Admin listener --------------------------------------------------------

const ADMIN_TOKEN: &str = "0123456789abcdef0123456789abcdef";

async fn admin_request(nw: &Netwarden, method: &str, path: &str, auth: Option<&str>) -> Reply {
    let auth = auth.map_or(String::new(), |a| format!("Authorization: {a}\r\n"));
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: admin\r\n{auth}Connection: close\r\nContent-Length: 0\r\n\r\n"
    );
    exchange(
        connect_from("127.0.0.1", nw.addr("admin")).await,
        req.as_bytes(),
    )
    .await
}

async fn guard_with_admin_token(metrics: bool) -> (Netwarden, Upstream) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("policy.yaml");
    let server = format!(
        "  admin_auth: {{ token_env: NW_TEST_ADMIN_TOKEN, metrics: {metrics} }}\n  reload: {{ watch: false }}\n"
    );
    std::fs::write(&path, policy("", "", &server)).expect("write");
    let up = Upstream::start().await;
    let nw = Netwarden::start_env(
        &path,
        &["--listen", "127.0.0.1:0", "--upstream", &up.url()],
        // A Secret made from a file ends in a newline: not part of the token.
        &[("NW_TEST_ADMIN_TOKEN", &format!("{ADMIN_TOKEN}\n"))],
        dir,
    );
    (nw, up)
}

#[tokio::test]
async fn admin_controls_need_the_token_and_probes_do_not() {
    let (nw, _up) = guard_with_admin_token(false).await;
    let bearer = format!("Bearer {ADMIN_TOKEN}");
    for (method, path) in [("POST", "/reload"), ("GET", "/policy")] {
        for auth in [
            None,
            Some("Bearer wrong-token-wrong-token-wrong"),
            Some("Basic YWRtaW46YWRtaW4="),
            Some(ADMIN_TOKEN),
        ] {
            let r = admin_request(&nw, method, path, auth).await;
            assert_eq!(r.status, 401, "{method} {path} with {auth:?}: {r:?}");
            assert_eq!(
                r.header("www-authenticate"),
                Some("Bearer realm=\"netwarden-admin\"")
            );
            assert!(!r.body.contains("version"), "nothing of the policy leaks");
        }
        let r = admin_request(&nw, method, path, Some(&bearer)).await;
        assert_eq!(r.status, 200, "{method} {path}: {r:?}");
    }
    for path in ["/healthz", "/readyz", "/metrics"] {
        assert_eq!(
            admin_request(&nw, "GET", path, None).await.status,
            200,
            "{path}"
        );
    }
    let metrics = admin_request(&nw, "GET", "/metrics", None).await.body;
    let m = support::proxy::parse_metrics(&metrics);
    assert_eq!(
        m.get("netwarden_admin_unauthorized_total"),
        Some(&8.0),
        "{metrics}"
    );
}

#[tokio::test]
async fn metrics_need_the_token_when_the_policy_says_so() {
    let (nw, _up) = guard_with_admin_token(true).await;
    assert_eq!(
        admin_request(&nw, "GET", "/metrics", None).await.status,
        401
    );
    let r = admin_request(
        &nw,
        "GET",
        "/metrics",
        Some(&format!("bearer {ADMIN_TOKEN}")),
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert!(
        r.body.contains("netwarden_admin_unauthorized_total 1"),
        "{}",
        r.body
    );
    assert_eq!(
        admin_request(&nw, "GET", "/healthz", None).await.status,
        200
    );
}

#[test]
fn a_missing_short_or_unusable_admin_token_stops_startup() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("policy.yaml");
    let server = "  admin_auth: { token_env: NW_TEST_ADMIN_TOKEN }\n";
    std::fs::write(&path, policy("", "", server)).expect("write");
    let p = path.to_str().expect("utf-8");
    let args = [
        "serve",
        "--policy",
        p,
        "--listen",
        "127.0.0.1:0",
        "--admin",
        "127.0.0.1:0",
        "--upstream",
        "http://127.0.0.1:9",
    ];
    let (code, _, err) = support::run_env(&args, &[]);
    assert_ne!(code, 0);
    assert!(
        err.contains("NW_TEST_ADMIN_TOKEN, which is not set"),
        "{err}"
    );
    let (code, _, err) = support::run_env(&args, &[("NW_TEST_ADMIN_TOKEN", "short")]);
    assert_ne!(code, 0);
    assert!(err.contains("is 5 bytes: use at least 16"), "{err}");
    assert!(!err.contains("short"), "the token is never echoed: {err}");
    // Red-team finding: a control byte was accepted, and no client could
    // then send the token.
    let (code, _, err) =
        support::run_env(&args, &[("NW_TEST_ADMIN_TOKEN", "abcdefgh\u{1}ijklmnop")]);
    assert_ne!(code, 0);
    assert!(
        err.contains("characters an Authorization header cannot carry"),
        "{err}"
    );
}

/// Red-team findings: 64 idle connections to the admin port from one
/// address, then 8 from each of 8 addresses, took every admin slot, and
/// the kubelet's probes were reset.
#[tokio::test]
async fn flooding_the_admin_port_cannot_fail_the_probes() {
    let (nw, _up) = guard_with_admin_token(false).await;
    let admin = nw.addr("admin");
    // One address past its share, and (second red-team round) ten
    // addresses with eight each, more than the whole admin table.
    let mut held = Vec::new();
    for _ in 0..20 {
        held.push(connect_from("127.0.0.2", admin).await);
    }
    for a in 3..13 {
        for _ in 0..8 {
            held.push(connect_from(&format!("127.0.0.{a}"), admin).await);
        }
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    for path in ["/healthz", "/readyz"] {
        let r = admin_request(&nw, "GET", path, None).await;
        assert_eq!(r.status, 200, "{path}: {r:?}");
    }
    drop(held);
}

/// Issue 22, finding 7: a Host or path holding a bidirectional control, a
/// C1 control or a line separator is logged escaped, in every field: a log viewer does not reorder the line, and a splitter
/// that follows Unicode (Python's `splitlines`) does not cut it in two.
#[tokio::test]
async fn bidi_and_line_separator_characters_reach_the_log_escaped() {
    let up = Upstream::start().await;
    let nw = guard(&policy("", "", ""), &up.url());
    let hidden = ['\u{202e}', '\u{2066}', '\u{85}', '\u{2028}'];
    let mut requests: Vec<Vec<u8>> = Vec::new();
    for c in hidden {
        let raw = c.to_string();
        let mut path = b"GET /static/a".to_vec();
        path.extend_from_slice(raw.as_bytes());
        path.extend_from_slice(b"b HTTP/1.1\r\nHost: console.test\r\nConnection: close\r\n\r\n");
        requests.push(path);
        let mut host = b"GET /static/x HTTP/1.1\r\nHost: console".to_vec();
        host.extend_from_slice(raw.as_bytes());
        host.extend_from_slice(b".test\r\nConnection: close\r\n\r\n");
        requests.push(host);
    }
    // A path under the public /static/** is forwarded as it came; a Host
    // holding them is refused (RFC 3986 reg-name).
    for (i, req) in requests.iter().enumerate() {
        let r = exchange(connect_from("127.0.0.2", nw.addr("http")).await, req).await;
        let want = if i % 2 == 0 { 200 } else { 400 };
        assert_eq!(r.status, want, "{:?}: {r:?}", String::from_utf8_lossy(req));
    }
    let deadline = std::time::Instant::now() + WAIT;
    let lines = loop {
        let lines: Vec<String> = nw
            .raw_logs()
            .into_iter()
            .filter(|l| l.contains("\"decision\""))
            .collect();
        if lines.len() >= requests.len() {
            break lines;
        }
        assert!(std::time::Instant::now() < deadline, "{lines:#?}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let mut seen_host = 0;
    for line in &lines {
        assert!(
            !line.chars().any(|c| hidden.contains(&c)),
            "a raw control in {line:?}"
        );
        let v: serde_json::Value = serde_json::from_str(line).expect("one JSON line");
        let text = |k: &str| v[k].as_str().unwrap_or_default().to_string();
        if hidden.iter().any(|c| text("server.address").contains(*c)) {
            seen_host += 1;
        }
    }
    // The text reads back whole once the JSON is parsed (paths are logged
    // percent-encoded, as forwarded).
    assert_eq!(seen_host, 4, "{lines:#?}");
}
