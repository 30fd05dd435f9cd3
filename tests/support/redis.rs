//! A `redis-server` the test starts on a loopback port of its own, with no
//! persistence; stopped (killed) when dropped. Debian's `redis-server`
//! package provides it (`.ci/run` installs it).

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct RedisServer {
    child: Option<Child>,
    pub port: u16,
}

impl RedisServer {
    /// Starts one on a free port and waits until it answers.
    pub fn start() -> Self {
        // A port the system says is free now; bound by redis a moment later.
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        Self::start_on(port)
    }

    /// Starts one on `port` (again, after [`stop`](Self::stop)).
    pub fn start_on(port: u16) -> Self {
        Self::start_with(port, &["--port", &port.to_string()], true)
    }

    /// Starts one that speaks only TLS (certificate and key from `dir`,
    /// as `netwarden certs dev` makes them) and wants `password`.
    pub fn start_tls(dir: &std::path::Path, password: &str) -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let file = |name: &str| dir.join(name).to_str().expect("utf-8 path").to_string();
        let args = [
            "--port".to_string(),
            "0".into(),
            "--tls-port".into(),
            port.to_string(),
            "--tls-cert-file".into(),
            file("cert.pem"),
            "--tls-key-file".into(),
            file("key.pem"),
            "--tls-ca-cert-file".into(),
            file("ca.pem"),
            "--tls-auth-clients".into(),
            "no".into(),
            "--requirepass".into(),
            password.into(),
        ];
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Self::start_with(port, &args, false)
    }

    fn start_with(port: u16, args: &[&str], plain: bool) -> Self {
        let child = Command::new("redis-server")
            .args(args)
            .args([
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--protected-mode",
                "yes",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server runs (apt-get install redis-server)");
        let server = Self {
            child: Some(child),
            port,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        // A TLS-only server: its port accepting connections is enough.
        let up = |s: &Self| {
            if plain {
                s.answers()
            } else {
                std::net::TcpStream::connect(("127.0.0.1", s.port)).is_ok()
            }
        };
        while !up(&server) {
            assert!(
                Instant::now() < deadline,
                "redis-server did not answer on {port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Whether PING gets PONG.
    pub fn answers(&self) -> bool {
        use std::io::{Read, Write};
        let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
        if s.write_all(b"PING\r\n").is_err() {
            return false;
        }
        let mut buf = [0u8; 16];
        matches!(s.read(&mut buf), Ok(n) if buf[..n].starts_with(b"+PONG"))
    }

    /// One command in inline form, its raw reply.
    pub fn command(&self, line: &str) -> String {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.port)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(2)))
            .expect("timeout");
        s.write_all(format!("{line}\r\n").as_bytes()).expect("send");
        let mut buf = vec![0u8; 65536];
        let n = s.read(&mut buf).unwrap_or(0);
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    /// Kills the server (as a crash would) and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}
