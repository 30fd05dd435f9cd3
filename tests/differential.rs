//! The differential check: a corpus of hostile requests
//! (`testdata/hostile/`: targets, Host forms and header sets, the ways
//! around the decision of docs/security.md and the shapes the `request`
//! fuzz target explores) goes through the real binary to a console that
//! records every request it receives and really speaks h2c (hypercorn).
//! Then, for every request the console received, there must be exactly
//! one decision line that allowed it, with the same method, Host, path and
//! client address; nothing else may arrive: no tunnelled HTTP/2 request,
//! no smuggled request, no request twice.

use crate::support;

use std::collections::HashMap;
use std::time::Duration;

use support::console::H2cConsole;
use support::proxy::{Netwarden, WAIT, connect_from};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const POLICY: &str = "version: 1
networks:
  office: [127.0.0.1]
  lb: [127.0.0.3]
client_ip: { trusted_proxies: [lb] }
rules:
  - { name: static, paths: [\"/static/**\"], action: allow }
  - { name: login, paths: [/login], methods: [POST], login: true, allow_from: [office] }
  - { name: admin_host, hosts: [admin.example.com], allow_from: [office] }
  - { name: admin, paths: [\"/admin/**\"], allow_from: [office] }
  - { name: open, paths: [\"/**\"], action: allow }
server:
  timeouts: { upstream_response: 5s }
";

const METHODS: [&str; 13] = [
    "GET", "POST", "post", "Post", "HEAD", "OPTIONS", "PUT", "DELETE", "PATCH", "CONNECT", "TRACE",
    "BREW", "GET ",
];
const SOURCES: [&str; 3] = ["127.0.0.1", "127.0.0.2", "127.0.0.3"];

fn lines(file: &str) -> Vec<String> {
    std::fs::read_to_string(support::repo(&format!("testdata/hostile/{file}")))
        .expect("corpus file")
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(str::to_string)
        .collect()
}

/// One request's bytes.
fn request(method: &str, target: &str, host: &str, headers: &str) -> Vec<u8> {
    let mut head = format!("{method} {target} HTTP/1.1\r\n");
    match host {
        "(none)" => {}
        "(empty)" => head.push_str("Host: \r\n"),
        h => {
            for line in h.split(" | ") {
                head.push_str(&format!("Host: {line}\r\n"));
            }
        }
    }
    let mut body = String::new();
    if headers != "(none)" {
        for part in headers.split(" | ") {
            match part.strip_prefix("(body) ") {
                Some(b) => body = b.replace("\\r\\n", "\r\n"),
                None => {
                    head.push_str(part);
                    head.push_str("\r\n");
                }
            }
        }
    }
    // Its own line, so that a set's `Connection` keeps its meaning.
    head.push_str("User-Agent: differential\r\nConnection: close\r\n\r\n");
    head.push_str(&body);
    head.into_bytes()
}

/// A small deterministic generator (SplitMix64), so that every run sends
/// the same corpus.
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        ((z ^ (z >> 31)) % n as u64) as usize
    }
}

fn corpus() -> Vec<(&'static str, Vec<u8>)> {
    let (targets, hosts, headers) = (
        lines("targets.txt"),
        lines("hosts.txt"),
        lines("headers.txt"),
    );
    let mut out = Vec::new();
    // Each dimension on its own, from outside and from the office.
    for from in ["127.0.0.2", "127.0.0.1"] {
        for t in &targets {
            out.push((from, request("GET", t, "www.example.com", "(none)")));
        }
        for h in &hosts {
            out.push((from, request("GET", "/x", h, "(none)")));
        }
        for set in &headers {
            for t in ["/static/x", "/admin/users"] {
                out.push((from, request("GET", t, "www.example.com", set)));
            }
        }
        for m in METHODS {
            out.push((
                from,
                request(m, "/login", "www.example.com", "Content-Length: 0"),
            ));
        }
    }
    // Then combinations, from every source.
    let mut rng = Rng(0x6e65_7477_6172_6465);
    for _ in 0..500 {
        let from = SOURCES[rng.below(SOURCES.len())];
        let req = request(
            METHODS[rng.below(METHODS.len())],
            &targets[rng.below(targets.len())],
            &hosts[rng.below(hosts.len())],
            &headers[rng.below(headers.len())],
        );
        out.push((from, req));
    }
    out
}

/// Sends one request and reads until netwarden closes, or gives up after a
/// bounded time (an upgrade may hold the connection open).
async fn send(from: &str, to: std::net::SocketAddr, bytes: &[u8]) {
    let mut s = connect_from(from, to).await;
    if s.write_all(bytes).await.is_err() {
        return;
    }
    let mut sink = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(3), s.read_to_end(&mut sink)).await;
}

fn header<'a>(record: &'a serde_json::Value, name: &str) -> Vec<&'a str> {
    record["headers"]
        .as_array()
        .expect("headers")
        .iter()
        .filter(|h| h[0] == name)
        .filter_map(|h| h[1].as_str())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn everything_the_console_receives_was_decided_and_allowed_as_logged() {
    let console = H2cConsole::start();
    let nw = Netwarden::start(
        POLICY,
        &[],
        &["--listen", "127.0.0.1:0", "--upstream", &console.url()],
    );
    let corpus = corpus();
    let to = nw.addr("http");
    // A few at a time: bounded in count (the corpus) and in time (each send).
    for chunk in corpus.chunks(8) {
        let sends = chunk.iter().map(|(from, bytes)| send(from, to, bytes));
        tokio::time::timeout(WAIT, futures_join(sends))
            .await
            .expect("chunk in time");
    }
    // Decision lines are written off the request path: wait until every
    // request the console saw has its line (bounded).
    let seen = console.seen();
    let deadline = std::time::Instant::now() + WAIT;
    let decisions: HashMap<String, serde_json::Value> = loop {
        let d: HashMap<String, serde_json::Value> = nw
            .logs()
            .into_iter()
            .filter(|v| v["event"] == "decision")
            .filter_map(|v| Some((v["request_id"].as_str()?.to_string(), v)))
            .collect();
        let all_there = seen.iter().all(|r| {
            header(r, "x-request-id")
                .first()
                .is_some_and(|id| d.contains_key(*id))
        });
        if all_there || std::time::Instant::now() > deadline {
            break d;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };

    assert!(
        seen.len() >= 100,
        "only {} of {} requests reached the console: the corpus is not exercising the forward path",
        seen.len(),
        corpus.len()
    );
    let allowed = decisions
        .values()
        .filter(|d| d["action"] == "allow")
        .count();
    assert!(decisions.values().any(|d| d["action"] == "deny"));
    let mut used = std::collections::HashSet::new();
    for r in &seen {
        assert_eq!(
            r["http_version"], "1.1",
            "a non-HTTP/1.1 request reached the console: {r}"
        );
        let ids = header(r, "x-request-id");
        assert_eq!(
            ids.len(),
            1,
            "a request without netwarden's id reached the console: {r}"
        );
        let id = ids[0];
        assert!(
            used.insert(id.to_string()),
            "request id {id} reached the console twice: {r}"
        );
        let d = decisions
            .get(id)
            .unwrap_or_else(|| panic!("no decision line for a request the console received: {r}"));
        assert_eq!(d["action"], "allow", "{r}\n{d}");
        assert_eq!(r["method"], d["http.request.method"], "{r}\n{d}");
        assert_eq!(r["raw_path"], d["url.path"], "{r}\n{d}");
        let hosts = header(r, "host");
        assert_eq!(hosts.len(), 1, "{r}");
        let host = netwarden::engine::host_without_port(hosts[0]);
        assert_eq!(
            host,
            d["server.address"].as_str().unwrap_or("-"),
            "{r}\n{d}"
        );
        assert_eq!(
            header(r, "x-forwarded-for"),
            [d["client.address"].as_str().unwrap_or("-")],
            "{r}\n{d}"
        );
        assert_eq!(
            header(r, "x-real-ip"),
            [d["client.address"].as_str().unwrap_or("-")],
            "{r}\n{d}"
        );
        // WebSocket is the one upgrade server.upgrades allows by default.
        for u in header(r, "upgrade") {
            assert!(
                u.eq_ignore_ascii_case("websocket"),
                "upgrade {u} reached the console: {r}"
            );
        }
        for name in [
            "http2-settings",
            "true-client-ip",
            "x_forwarded_for",
            "x-original-url",
        ] {
            assert!(
                header(r, name).is_empty(),
                "{name} reached the console: {r}"
            );
        }
    }
    eprintln!(
        "differential: {} requests sent, {} decisions ({} allowed), {} received by the console",
        corpus.len(),
        decisions.len(),
        allowed,
        seen.len()
    );
}

/// Runs the futures of one chunk together.
async fn futures_join<F: std::future::Future<Output = ()>>(futs: impl Iterator<Item = F>) {
    let handles: Vec<_> = futs.map(Box::pin).collect();
    for h in handles {
        h.await;
    }
}
