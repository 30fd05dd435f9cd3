//! `netwarden serve` at its edges: TLS with HTTP/2, PROXY protocol, startup
//! failures, the admin listener, a large streamed upload.

use crate::support;

use std::sync::Arc;
use std::time::Duration;

use support::proxy::{Netwarden, Upstream, WAIT, connect_from, exchange, get, parse_reply};
use support::run;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const POLICY: &str = "version: 1
networks:
  office: [127.0.0.1, 203.0.113.0/24]
  lb: [127.0.0.3]
client_ip: { trusted_proxies: [lb] }
rules:
  - { name: everything, allow_from: [office] }
";

/// `h2c://`: HTTP/2 with prior knowledge to a plain-TCP upstream, the
/// client's Host as `:authority` (RFC 9113 §8.3.1), bodies streamed, and
/// concurrent requests sharing the multiplexed connection.
#[tokio::test]
async fn an_h2c_upstream_gets_http2_with_the_clients_host_as_authority() {
    let up = Upstream::start().await;
    let upstream = format!("h2c://{}", up.addr);
    let nw = Netwarden::start(
        POLICY,
        &[],
        &["--listen", "127.0.0.1:0", "--upstream", &upstream],
    );
    let r = get("127.0.0.1", nw.addr("http"), "/orders?page=2", &[]).await;
    assert_eq!(r.status, 200, "{r:?}");
    let request = format!(
        "POST /upload HTTP/1.1\r\nHost: console.test\r\nConnection: close\r\nContent-Length: 100000\r\n\r\n{}",
        "x".repeat(100_000)
    );
    let r = exchange(
        connect_from("127.0.0.1", nw.addr("http")).await,
        request.as_bytes(),
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body, "upstream ok 100000");
    let clients: Vec<_> = (0..8)
        .map(|i| {
            let to = nw.addr("http");
            tokio::spawn(async move { get("127.0.0.1", to, &format!("/c/{i}"), &[]).await.status })
        })
        .collect();
    for c in clients {
        assert_eq!(c.await.expect("client"), 200);
    }

    let seen = up.seen();
    assert_eq!(seen.len(), 10);
    assert!(
        seen.iter().all(|s| s.version == http::Version::HTTP_2),
        "{seen:?}"
    );
    assert_eq!(seen[0].target, "/orders?page=2");
    assert_eq!(seen[0].authority.as_deref(), Some("console.test"));
    assert_eq!(seen[0].header("x-forwarded-for"), ["127.0.0.1"]);
    assert_eq!(seen[1].body_len, 100_000);
    // Announced as the operator wrote it.
    let ev = nw.wait_log(|v| v["event"] == "listening" && v["role"] == "http");
    assert_eq!(ev["upstream"], upstream.as_str(), "{ev}");

    // Nothing listening there: 502, as for any unreachable upstream.
    let down = Netwarden::start(
        POLICY,
        &[],
        &["--listen", "127.0.0.1:0", "--upstream", "h2c://127.0.0.1:1"],
    );
    let r = get("127.0.0.1", down.addr("http"), "/", &[]).await;
    assert_eq!(r.status, 502, "{r:?}");
    // Issue 24: `netwarden status` says so to the person an alert woke up.
    let policy = down.policy_path().to_str().expect("path").to_string();
    let admin = down.addr("admin").to_string();
    let (code, out, err) = tokio::task::spawn_blocking(move || {
        run(&["status", "--policy", &policy, "--admin", &admin])
    })
    .await
    .expect("join");
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("Console: h2c://127.0.0.1:1  FAILING")
            && out.contains("last failure: connect_error")
            && out.contains("ok 0, connect_error 1"),
        "{out}"
    );
}

#[tokio::test]
async fn tls_listener_speaks_http2_to_a_rustls_client() {
    let up = Upstream::start().await;
    let dir = support::dev_certs();
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    let nw = Netwarden::start(
        POLICY,
        &[],
        &[
            "--tls-listen",
            "127.0.0.1:0",
            "--cert",
            cert.to_str().expect("path"),
            "--key",
            key.to_str().expect("path"),
            "--upstream",
            &up.url(),
        ],
    );
    let ca = netwarden::tls::client_config(Some(&dir.path().join("ca.pem"))).expect("CA loads");
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(ca)
        .https_only()
        .enable_http2()
        .build();
    let client: hyper_util::client::legacy::Client<_, http_body_util::Empty<bytes::Bytes>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .http2_only(true)
            .build(https);
    let port = nw.addr("https").port();
    let uri: http::Uri = format!("https://localhost:{port}/reports?q=1")
        .parse()
        .expect("uri");
    let resp = tokio::time::timeout(WAIT, client.get(uri))
        .await
        .expect("in time")
        .expect("TLS request");
    assert_eq!(resp.version(), http::Version::HTTP_2);
    assert_eq!(resp.status(), 200);
    let seen = up.seen();
    assert_eq!(seen[0].target, "/reports?q=1");
    assert_eq!(seen[0].header("x-forwarded-proto"), ["https"]);
    // HTTP/2 sends :authority; the console still gets a Host header.
    assert_eq!(
        seen[0].header("host"),
        [format!("localhost:{port}").as_str()]
    );
    let d = nw.wait_log(|v| v["event"] == "decision");
    assert_eq!(d["network.protocol.version"], "2");
    assert_eq!(d["url.scheme"], "https");
}

#[tokio::test]
async fn https_upstream_is_verified_with_the_ca_file_and_speaks_http2() {
    let dir = support::dev_certs();
    let up = Upstream::start_tls(&dir.path().join("cert.pem"), &dir.path().join("key.pem")).await;
    let url = format!("https://localhost:{}", up.addr.port());
    let ca = dir.path().join("ca.pem");
    let nw = Netwarden::start(
        POLICY,
        &[],
        &[
            "--listen",
            "127.0.0.1:0",
            "--upstream",
            &url,
            "--upstream-ca",
            ca.to_str().expect("path"),
        ],
    );
    let r = get("127.0.0.1", nw.addr("http"), "/secure?x=1", &[]).await;
    assert_eq!(r.status, 200, "{r:?}");
    let seen = up.seen();
    assert_eq!(seen[0].target, "/secure?x=1");
    assert_eq!(seen[0].version, http::Version::HTTP_2, "ALPN picks HTTP/2");

    // Without the CA the upstream is not trusted: 502, never plaintext.
    let nw = Netwarden::start(
        POLICY,
        &[],
        &["--listen", "127.0.0.1:0", "--upstream", &url],
    );
    let r = get("127.0.0.1", nw.addr("http"), "/secure", &[]).await;
    assert_eq!(r.status, 502, "{r:?}");
    assert_eq!(up.seen().len(), 1);
}

#[tokio::test]
async fn proxy_protocol_is_believed_only_from_trusted_proxies() {
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
    let request = b"GET /x HTTP/1.1\r\nHost: c\r\nConnection: close\r\n\r\n";

    // v1 from the trusted load balancer: the source in the header decides.
    let mut v1 = b"PROXY TCP4 203.0.113.9 10.0.0.1 40000 443\r\n".to_vec();
    v1.extend_from_slice(request);
    let r = exchange(connect_from("127.0.0.3", addr).await, &v1).await;
    assert_eq!(r.status, 200, "{r:?}");
    let v1_outside = [
        b"PROXY TCP4 198.51.100.9 10.0.0.1 40000 443\r\n".as_slice(),
        request,
    ]
    .concat();
    let r = exchange(connect_from("127.0.0.3", addr).await, &v1_outside).await;
    assert_eq!(r.status, 403);

    // v2 (binary) from the trusted load balancer.
    let mut v2 = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    v2.extend_from_slice(&[0x21, 0x11, 0x00, 0x0c, 203, 0, 113, 10, 10, 0, 0, 1]);
    v2.extend_from_slice(&40000u16.to_be_bytes());
    v2.extend_from_slice(&443u16.to_be_bytes());
    v2.extend_from_slice(request);
    let r = exchange(connect_from("127.0.0.3", addr).await, &v2).await;
    assert_eq!(r.status, 200, "{r:?}");
    let d = nw.wait_log(|v| v["event"] == "decision" && v["client.address"] == "203.0.113.10");
    assert_eq!(d["network.peer.address"], "203.0.113.10");

    // A PROXY header from anyone else: refused, no response at all.
    assert_refused(connect_from("127.0.0.1", addr).await, &v1).await;
    // The trusted proxy must send one.
    assert_refused(connect_from("127.0.0.3", addr).await, request).await;
    // A direct client without a header is served as itself.
    let r = get("127.0.0.1", addr, "/y", &[]).await;
    assert_eq!(r.status, 200);
    assert_eq!(up.seen().len(), 3);
}

/// The connection is closed (or reset) without a single byte of response.
async fn assert_refused(mut s: tokio::net::TcpStream, send: &[u8]) {
    s.write_all(send).await.expect("send");
    let mut raw = Vec::new();
    match tokio::time::timeout(WAIT, s.read_to_end(&mut raw))
        .await
        .expect("closed in time")
    {
        Ok(_) => assert!(raw.is_empty(), "got {:?}", String::from_utf8_lossy(&raw)),
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
    }
}

#[test]
fn startup_fails_closed_with_clear_messages() {
    let dir = tempfile::tempdir().expect("temp dir");
    let policy = dir.path().join("p.yaml");
    std::fs::write(&policy, POLICY).expect("write");
    let p = policy.to_str().expect("path");

    // Invalid policy: diagnostics, exit 1.
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "version: 1\nrules:\n  - { name: a, allow_from: [nope] }\n",
    )
    .expect("write");
    let (code, _, err) = run(&[
        "serve",
        "--policy",
        bad.to_str().expect("path"),
        "--listen",
        "127.0.0.1:0",
        "--upstream",
        "http://127.0.0.1:1",
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("unknown network 'nope'"), "{err}");

    // Missing certificate.
    let (code, _, err) = run(&[
        "serve",
        "--policy",
        p,
        "--tls-listen",
        "127.0.0.1:0",
        "--cert",
        "/nonexistent/c.pem",
        "--key",
        "/nonexistent/k.pem",
        "--upstream",
        "http://127.0.0.1:1",
        "--admin",
        "127.0.0.1:0",
    ]);
    assert_eq!(code, 1);
    assert!(
        err.contains("cannot read certificate /nonexistent/c.pem"),
        "{err}"
    );

    // A certificate "file" that is a device (it used to be read until
    // memory ran out), and a key that is a named pipe (opening one blocks).
    let fifo = dir.path().join("key.pem");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .expect("mkfifo")
            .success()
    );
    let certs = support::dev_certs();
    for (cert, key, says) in [
        (
            "/dev/zero".to_string(),
            fifo.display().to_string(),
            "cannot read certificate /dev/zero",
        ),
        (
            certs.path().join("cert.pem").display().to_string(),
            fifo.display().to_string(),
            "a named pipe, not a regular file",
        ),
    ] {
        let (code, _, err) = support::run_within(
            &[
                "serve",
                "--policy",
                p,
                "--tls-listen",
                "127.0.0.1:0",
                "--cert",
                &cert,
                "--key",
                &key,
                "--upstream",
                "http://127.0.0.1:1",
                "--admin",
                "127.0.0.1:0",
            ],
            std::time::Duration::from_secs(20),
        );
        assert_eq!(code, 1, "{err}");
        assert!(err.contains(says), "{err}");
    }

    // Address in use.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let (code, _, err) = run(&[
        "serve",
        "--policy",
        p,
        "--listen",
        &addr,
        "--upstream",
        "http://127.0.0.1:1",
        "--admin",
        "127.0.0.1:0",
    ]);
    assert_eq!(code, 1);
    assert!(err.contains(&format!("cannot listen on {addr}")), "{err}");

    // No upstream anywhere.
    let (code, _, err) = run(&[
        "serve",
        "--policy",
        p,
        "--listen",
        "127.0.0.1:0",
        "--admin",
        "127.0.0.1:0",
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("no upstream"), "{err}");
}

#[tokio::test]
async fn admin_listener_answers_health_and_readiness() {
    let up = Upstream::start().await;
    let nw = Netwarden::in_front_of(POLICY, &up);
    let admin = nw.addr("admin");
    let r = get("127.0.0.1", admin, "/healthz", &[]).await;
    assert_eq!((r.status, r.body.as_str()), (200, "ok\n"));
    let r = get("127.0.0.1", admin, "/readyz", &[]).await;
    assert_eq!((r.status, r.body.as_str()), (200, "ready\n"));
    let r = get("127.0.0.1", admin, "/nope", &[]).await;
    assert_eq!(r.status, 404);
    // The admin port is not the proxy: nothing reached the upstream.
    assert!(up.seen().is_empty());
    // The container health check command.
    let admin_arg = admin.to_string();
    let (code, out, _) =
        tokio::task::spawn_blocking(move || run(&["health", "--admin", &admin_arg]))
            .await
            .expect("join");
    assert_eq!(code, 0);
    assert!(out.ends_with("/healthz: ok\n"), "{out}");
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .to_string();
    let (code, _, _) = tokio::task::spawn_blocking(move || run(&["health", "--admin", &dead]))
        .await
        .expect("join");
    assert_eq!(code, 1);
}

/// Peak resident memory of a process, from /proc (Linux).
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM line")
}

#[tokio::test]
async fn large_upload_streams_with_flat_memory() {
    const SIZE: u64 = 256 * 1024 * 1024;
    let up = Upstream::start().await;
    let nw = Netwarden::in_front_of(
        &format!("{POLICY}server:\n  timeouts: {{ upstream_response: 5m }}\n"),
        &up,
    );
    let before = peak_rss_kib(nw.pid());
    let mut s = connect_from("127.0.0.1", nw.addr("http")).await;
    let head = format!(
        "POST /upload HTTP/1.1\r\nHost: c\r\nConnection: close\r\nContent-Length: {SIZE}\r\n\r\n"
    );
    s.write_all(head.as_bytes()).await.expect("head");
    let chunk = Arc::new(vec![0x5au8; 1024 * 1024]);
    for _ in 0..(SIZE / chunk.len() as u64) {
        tokio::time::timeout(WAIT, s.write_all(&chunk))
            .await
            .expect("upload progresses")
            .expect("write");
    }
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(120), s.read_to_end(&mut raw))
        .await
        .expect("in time")
        .expect("read");
    let r = parse_reply(&raw);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body, format!("upstream ok {SIZE}"));
    let after = peak_rss_kib(nw.pid());
    // 256 MiB went through; the proxy's peak grew by far less than that.
    assert!(
        after < before + 32 * 1024,
        "peak RSS grew from {before} KiB to {after} KiB"
    );
}

/// The README's main command: the demo serves, allows the office and blocks
/// everyone else, and tells the newcomer what to type.
#[tokio::test]
async fn demo_guards_its_built_in_console() {
    use std::io::BufRead;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_netwarden"))
        .args(["demo", "--listen", "127.0.0.1:0"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("demo starts");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    let deadline = std::time::Instant::now() + WAIT;
    let addr: std::net::SocketAddr = loop {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(std::time::Instant::now()))
            .expect("demo reports its listener");
        let v: serde_json::Value = serde_json::from_str(&line).expect("JSON");
        if v["event"] == "listening" && v["role"] == "http" {
            break v["address"]
                .as_str()
                .expect("address")
                .parse()
                .expect("addr");
        }
    };
    let ok = support::proxy::post("127.0.0.1", addr, "/login", &[]).await;
    assert_eq!(ok.status, 200, "{ok:?}");
    assert!(ok.body.contains("signed_in"));
    let blocked = support::proxy::post("127.0.0.2", addr, "/login", &[]).await;
    assert_eq!(blocked.status, 403);
    let _ = child.kill();
    let _ = child.wait();
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut err)
        .expect("stderr");
    assert!(
        err.contains(&format!(
            "curl -i -X POST --interface 127.0.0.2 -d 'username=yamada&password=right' http://{addr}/login"
        )),
        "{err}"
    );
}

/// Kubernetes removes a terminating Pod from its endpoints a few seconds
/// after SIGTERM: until then new connections must still be served, while
/// `/readyz` already says "not ready".
#[tokio::test]
async fn sigterm_fails_readiness_at_once_and_serves_through_the_shutdown_delay() {
    let up = Upstream::start().await;
    let nw = Netwarden::start(
        &format!("{POLICY}server:\n  shutdown_delay: 2s\n"),
        &[],
        &["--listen", "127.0.0.1:0", "--upstream", &up.url()],
    );
    let (proxy, admin) = (nw.addr("http"), nw.addr("admin"));
    assert_eq!(get("127.0.0.1", admin, "/readyz", &[]).await.status, 200);
    nw.signal("TERM");
    nw.wait_log(|v| v["event"] == "shutdown" && v["delay_seconds"] == 2.0);
    let started = std::time::Instant::now();
    assert_eq!(get("127.0.0.1", admin, "/readyz", &[]).await.status, 503);
    // A new connection during the delay is served.
    let r = get("127.0.0.1", proxy, "/during-delay", &[]).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the checks took the whole delay"
    );
    assert_eq!(nw.wait_exit(), 0);
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "exited before the delay: {:?}",
        started.elapsed()
    );
}

#[test]
fn a_flag_that_overrides_the_policy_is_logged_with_both_values() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("policy.yaml");
    std::fs::write(
        &path,
        format!("{POLICY}server:\n  listen: [\"127.0.0.1:0\"]\n  upstream: http://127.0.0.1:9\n  shutdown_delay: 0s\n"),
    )
    .expect("write");
    let nw = Netwarden::start_env(
        &path,
        &[],
        &[("NETWARDEN_UPSTREAM", "http://127.0.0.1:19")],
        dir,
    );
    let line = nw.wait_log(|v| v["event"] == "setting_overridden");
    assert_eq!(line["setting"], "server.upstream", "{line}");
    assert_eq!(line["policy"], "http://127.0.0.1:9/", "{line}");
    assert_eq!(line["value"], "http://127.0.0.1:19", "{line}");
    assert_eq!(line["level"], "WARN", "{line}");
    // Only the setting that was overridden.
    assert_eq!(
        nw.logs()
            .iter()
            .filter(|v| v["event"] == "setting_overridden")
            .count(),
        1
    );
}

/// Python's `http.server` answers `HTTP/1.0` and closes: the client still
/// gets HTTP/1.1 from netwarden and keeps its connection.
#[tokio::test]
async fn an_http10_console_does_not_downgrade_the_clients_http11() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = s
                    .write_all(
                        b"HTTP/1.0 200 OK\r\nServer: SimpleHTTP/0.6 Python/3.11\r\n\r\nfrom 1.0",
                    )
                    .await;
                // HTTP/1.0 without Content-Length: the body ends at close.
            });
        }
    });
    let nw = Netwarden::start(
        POLICY,
        &[],
        &["--listen", "127.0.0.1:0", "--upstream", &url],
    );
    let mut stream = connect_from("127.0.0.1", nw.addr("http")).await;
    for i in 0..2 {
        stream
            .write_all(format!("GET /r{i} HTTP/1.1\r\nHost: console.test\r\n\r\n").as_bytes())
            .await
            .expect("send");
        // Read one response: chunked (the console's length was unknown).
        let mut raw = Vec::new();
        let mut buf = [0u8; 4096];
        while !raw.ends_with(b"0\r\n\r\n") {
            let n = tokio::time::timeout(WAIT, stream.read(&mut buf))
                .await
                .expect("answered in time")
                .expect("read");
            assert!(
                n > 0,
                "connection closed after response {i}: {}",
                String::from_utf8_lossy(&raw)
            );
            raw.extend_from_slice(&buf[..n]);
        }
        let r = parse_reply(&raw);
        assert!(
            raw.starts_with(b"HTTP/1.1 200 OK\r\n"),
            "{}",
            String::from_utf8_lossy(&raw)
        );
        assert_eq!(r.status, 200);
        assert!(String::from_utf8_lossy(&raw).contains("from 1.0"));
    }
}
