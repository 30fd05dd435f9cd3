//! A real `netwarden serve` process on loopback, a recording upstream, and
//! raw-bytes clients bound to chosen loopback source addresses. Every wait
//! is bounded.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

/// The longest any test waits for anything.
pub const WAIT: Duration = Duration::from_secs(20);

/// What the upstream received.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    pub version: http::Version,
    /// Path and query as received.
    pub target: String,
    /// The request URI's authority: HTTP/2's `:authority` (HTTP/1.1
    /// requests in origin form have none).
    pub authority: Option<String>,
    pub headers: Vec<(String, String)>,
    pub body_len: u64,
}

impl Seen {
    pub fn header(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// A recording upstream. Paths: `/slow` answers after 2 s; `/reset` drops
/// the connection without an answer; `/ws` accepts a
/// WebSocket-style upgrade and echoes bytes; everything else answers 200
/// with `upstream ok` after reading (and counting) the whole body.
pub struct Upstream {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<Seen>>>,
}

impl Upstream {
    pub async fn start() -> Self {
        Self::serve(None).await
    }

    /// The same upstream behind TLS (ALPN h2 and http/1.1), with `cert` and
    /// `key` PEM files.
    pub async fn start_tls(cert: &Path, key: &Path) -> Self {
        let cfg = netwarden::tls::server_config(cert, key).expect("upstream TLS config");
        Self::serve(Some(tokio_rustls::TlsAcceptor::from(Arc::new(cfg)))).await
    }

    async fn serve(tls: Option<tokio_rustls::TlsAcceptor>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind upstream");
        let addr = listener.local_addr().expect("upstream address");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (record, tls) = (record.clone(), tls.clone());
                tokio::spawn(async move {
                    let svc = service_fn(move |req| answer(req, record.clone()));
                    let builder = auto::Builder::new(TokioExecutor::new());
                    let _ = match tls {
                        None => {
                            builder
                                .serve_connection_with_upgrades(TokioIo::new(stream), svc)
                                .await
                        }
                        Some(acceptor) => match acceptor.accept(stream).await {
                            Ok(s) => {
                                builder
                                    .serve_connection_with_upgrades(TokioIo::new(s), svc)
                                    .await
                            }
                            Err(_) => return,
                        },
                    };
                });
            }
        });
        Self { addr, seen }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("lock").clone()
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

async fn answer(
    mut req: Request<Incoming>,
    record: Arc<Mutex<Vec<Seen>>>,
) -> Result<Response<Full<Bytes>>, BoxError> {
    let headers = req
        .headers()
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let method = req.method().to_string();
    let version = req.version();
    let authority = req.uri().authority().map(|a| a.to_string());
    let target = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    if req.uri().path() == "/ws" {
        record.lock().expect("lock").push(Seen {
            method,
            version,
            target,
            authority,
            headers,
            body_len: 0,
        });
        let upgrade = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            if let Ok(up) = upgrade.await {
                let mut io = TokioIo::new(up);
                let mut buf = [0u8; 1024];
                while let Ok(n) = io.read(&mut buf).await {
                    if n == 0 || io.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            }
        });
        let mut resp = Response::new(Full::new(Bytes::new()));
        *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        resp.headers_mut()
            .insert("connection", "upgrade".parse().expect("value"));
        resp.headers_mut()
            .insert("upgrade", "websocket".parse().expect("value"));
        return Ok(resp);
    }
    if req.uri().path() == "/reset" {
        // Failing the service makes hyper drop the connection unanswered.
        return Err("reset on purpose".into());
    }
    let slow = req.uri().path() == "/slow";
    if req.uri().path() == "/noread" {
        // A console busy elsewhere: it reads the body 3 s late.
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    let mut body = req.into_body();
    let mut body_len = 0u64;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            body_len += data.len() as u64;
        }
    }
    record.lock().expect("lock").push(Seen {
        method,
        version,
        target,
        authority,
        headers,
        body_len,
    });
    if slow {
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let mut resp = Response::new(Full::new(Bytes::from(format!("upstream ok {body_len}"))));
    resp.headers_mut()
        .insert("connection", "x-hop".parse().expect("value"));
    resp.headers_mut()
        .insert("x-hop", "secret".parse().expect("value"));
    Ok(resp)
}

/// A running `netwarden serve`.
pub struct Netwarden {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    pub listening: HashMap<String, SocketAddr>,
    _dir: tempfile::TempDir,
}

impl Netwarden {
    /// Starts the binary with `policy` (written to a temp dir with `files`)
    /// and `args`; waits for every listener to be reported.
    pub fn start(policy: &str, files: &[(&str, &str)], args: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("policy.yaml");
        std::fs::write(&path, policy).expect("write policy");
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).expect("write file");
        }
        Self::start_at(&path, args, dir)
    }

    /// Starts the binary with `policy`, one plain listener and `up` as the
    /// upstream: what most tests need.
    pub fn in_front_of(policy: &str, up: &Upstream) -> Self {
        Self::start(
            policy,
            &[],
            &["--listen", "127.0.0.1:0", "--upstream", &up.url()],
        )
    }

    /// [`in_front_of`](Self::in_front_of) with environment variables set
    /// (the secrets of alert sinks, a moved clock).
    pub fn in_front_of_env(policy: &str, up: &Upstream, env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("policy.yaml");
        std::fs::write(&path, policy).expect("write policy");
        Self::start_env(
            &path,
            &["--listen", "127.0.0.1:0", "--upstream", &up.url()],
            env,
            dir,
        )
    }

    /// Starts the binary on a policy file already written in `dir`.
    pub fn start_at(path: &Path, args: &[&str], dir: tempfile::TempDir) -> Self {
        Self::start_env(path, args, &[], dir)
    }

    /// [`start_at`](Self::start_at) with environment variables set.
    pub fn start_env(
        path: &Path,
        args: &[&str],
        env: &[(&str, &str)],
        dir: tempfile::TempDir,
    ) -> Self {
        Self::start_with(path, args, env, dir, |_| {})
    }

    /// [`start_env`](Self::start_env), with `configure` given the command
    /// before it is spawned (limits, say).
    pub fn start_with(
        path: &Path,
        args: &[&str],
        env: &[(&str, &str)],
        dir: tempfile::TempDir,
        configure: impl FnOnce(&mut Command),
    ) -> Self {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_netwarden"));
        configure(&mut cmd);
        let mut child = cmd
            .envs(env.iter().copied())
            .arg("serve")
            .arg("--policy")
            .arg(path)
            .args(["--admin", "127.0.0.1:0"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("netwarden starts");
        let stdout = child.stdout.take().expect("stdout");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line.clone());
                sink.lock().expect("lock").push(line);
            }
        });
        let mut listening = HashMap::new();
        let deadline = Instant::now() + WAIT;
        while !listening.contains_key("admin") {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok(line) = rx.recv_timeout(left) else {
                let _ = child.kill();
                let mut err = String::new();
                if let Some(mut e) = child.stderr.take() {
                    let _ = std::io::Read::read_to_string(&mut e, &mut err);
                }
                panic!("netwarden did not start: {err}");
            };
            let v: serde_json::Value = serde_json::from_str(&line).expect("JSON log line");
            if v["event"] == "listening" {
                let role = v["role"].as_str().expect("role").to_string();
                let addr = v["address"]
                    .as_str()
                    .expect("address")
                    .parse()
                    .expect("socket address");
                // Several listeners of one role get numbered keys.
                let key = if listening.contains_key(&role) {
                    format!("{role}{}", listening.len())
                } else {
                    role
                };
                listening.insert(key, addr);
            }
        }
        Self {
            child,
            lines,
            listening,
            _dir: dir,
        }
    }

    pub fn addr(&self, role: &str) -> SocketAddr {
        self.listening[role]
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The policy file the process was started with.
    pub fn policy_path(&self) -> std::path::PathBuf {
        self._dir.path().join("policy.yaml")
    }

    /// The directory the policy was written in.
    pub fn dir(&self) -> &Path {
        self._dir.path()
    }

    /// Sends a signal by name (`HUP`, `TERM`).
    pub fn signal(&self, name: &str) {
        let _ = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status();
    }

    /// Raw stdout lines so far.
    pub fn raw_logs(&self) -> Vec<String> {
        self.lines.lock().expect("lock").clone()
    }

    /// JSON log lines so far.
    pub fn logs(&self) -> Vec<serde_json::Value> {
        self.lines
            .lock()
            .expect("lock")
            .iter()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Waits until a log line with `event` and `request_id`-independent
    /// predicate shows up.
    pub fn wait_log(&self, pred: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(v) = self.logs().into_iter().find(|v| pred(v)) {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "log line not seen; logs: {:#?}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends SIGTERM and waits for the exit code.
    pub fn terminate(self) -> i32 {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        self.wait_exit()
    }

    /// Waits (bounded) for the process to exit on its own; its exit code.
    pub fn wait_exit(mut self) -> i32 {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code().unwrap_or(-1);
            }
            assert!(
                Instant::now() < deadline,
                "netwarden did not exit after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Netwarden {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A request to `nw`'s admin listener from 127.0.0.1: the status, and the
/// body as JSON (`Null` when it is not).
pub async fn admin(nw: &Netwarden, method: &str, path: &str) -> (u16, serde_json::Value) {
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: admin\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
    );
    let r = exchange(
        connect_from("127.0.0.1", nw.addr("admin")).await,
        req.as_bytes(),
    )
    .await;
    (
        r.status,
        serde_json::from_str(r.body.trim()).unwrap_or(serde_json::Value::Null),
    )
}

/// `name{labels}` -> value, from Prometheus' text exposition.
pub fn parse_metrics(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect()
}

/// Connects to `to` from the loopback address `from`.
pub async fn connect_from(from: &str, to: SocketAddr) -> TcpStream {
    let from: std::net::IpAddr = from.parse().expect("source address");
    let socket = if from.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .expect("socket");
    socket
        .bind(SocketAddr::new(from, 0))
        .expect("bind source address");
    tokio::time::timeout(WAIT, socket.connect(to))
        .await
        .expect("connect in time")
        .expect("connect")
}

/// A parsed HTTP/1.1 response.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// Sends raw request bytes (which should say `Connection: close`) and reads
/// the whole response.
pub async fn exchange(mut stream: TcpStream, request: &[u8]) -> Reply {
    stream.write_all(request).await.expect("send request");
    let mut raw = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut raw))
        .await
        .expect("response in time")
        .expect("read response");
    parse_reply(&raw)
}

/// Sends raw request bytes and reads one response, its body by its
/// `Content-Length`: for requests that keep the connection open (an
/// upgrade asked for, keep-alive).
pub async fn exchange_one(mut stream: TcpStream, request: &[u8]) -> Reply {
    stream.write_all(request).await.expect("send request");
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    let read_all = async {
        loop {
            let n = stream.read(&mut buf).await.expect("read response");
            raw.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&raw);
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let len = head
                    .lines()
                    .find_map(|l| {
                        let (n, v) = l.split_once(':')?;
                        n.eq_ignore_ascii_case("content-length")
                            .then(|| v.trim().parse::<usize>().ok())
                            .flatten()
                    })
                    .unwrap_or(0);
                if body.len() >= len {
                    return;
                }
            }
            assert!(n > 0, "connection closed mid-response");
        }
    };
    tokio::time::timeout(WAIT, read_all)
        .await
        .expect("response in time");
    parse_reply(&raw)
}

pub fn parse_reply(raw: &[u8]) -> Reply {
    let text = String::from_utf8_lossy(raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    Reply {
        status,
        head: head.to_string(),
        body: body.to_string(),
    }
}

/// `GET path` from `from`, with extra header lines.
pub async fn get(from: &str, to: SocketAddr, path: &str, extra: &[&str]) -> Reply {
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: console.test\r\nConnection: close\r\n");
    for h in extra {
        req.push_str(h);
        req.push_str("\r\n");
    }
    req.push_str("\r\n");
    exchange(connect_from(from, to).await, req.as_bytes()).await
}

/// `POST path` with an empty body from `from`.
pub async fn post(from: &str, to: SocketAddr, path: &str, extra: &[&str]) -> Reply {
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nHost: console.test\r\nConnection: close\r\nContent-Length: 0\r\n"
    );
    for h in extra {
        req.push_str(h);
        req.push_str("\r\n");
    }
    req.push_str("\r\n");
    exchange(connect_from(from, to).await, req.as_bytes()).await
}
