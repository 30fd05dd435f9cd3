//! Loopback alert receivers: each records what it is sent and answers from
//! a script (200, 500 then 200, 429 with `Retry-After`, or hang).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::Notify;

use super::proxy::WAIT;

/// One answer of the script.
#[derive(Clone, Debug)]
pub enum Answer {
    Status(u16),
    /// 429 with `Retry-After: <seconds>`.
    RetryAfter(u64),
    /// Never answers until [`Receiver::release`] (or [`WAIT`]).
    Hang,
    /// 429 with Chatwork's `x-ratelimit-reset`: the Unix time `secs`
    /// after the answer.
    RateLimited(u64),
    /// A status with these headers and this body.
    Reply {
        status: u16,
        headers: Vec<(&'static str, String)>,
        body: String,
    },
}

/// What a receiver was sent.
#[derive(Clone, Debug)]
pub struct Got {
    pub at: Instant,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Got {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }
}

pub struct Receiver {
    pub addr: SocketAddr,
    got: Arc<Mutex<Vec<Got>>>,
    release: Arc<Notify>,
}

impl Receiver {
    /// Answers with `script` in order, then `then` for ever.
    pub async fn start(script: &[Answer], then: Answer) -> Self {
        Self::serve(None, script, then).await
    }

    /// The same behind TLS, with `cert` and `key` PEM files.
    pub async fn start_tls(cert: &std::path::Path, key: &std::path::Path, then: Answer) -> Self {
        let cfg = netwarden::tls::server_config(cert, key).expect("receiver TLS config");
        Self::serve(
            Some(tokio_rustls::TlsAcceptor::from(Arc::new(cfg))),
            &[],
            then,
        )
        .await
    }

    async fn serve(
        tls: Option<tokio_rustls::TlsAcceptor>,
        script: &[Answer],
        then: Answer,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind receiver");
        let addr = listener.local_addr().expect("receiver address");
        let got = Arc::new(Mutex::new(Vec::new()));
        let release = Arc::new(Notify::new());
        let script = Arc::new(Mutex::new(script.iter().cloned().collect::<VecDeque<_>>()));
        let (g, r) = (got.clone(), release.clone());
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (g, r, script, then) = (g.clone(), r.clone(), script.clone(), then.clone());
                let tls = tls.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| {
                        let answer = script
                            .lock()
                            .expect("lock")
                            .pop_front()
                            .unwrap_or(then.clone());
                        answer_with(req, answer, g.clone(), r.clone())
                    });
                    let builder = auto::Builder::new(TokioExecutor::new());
                    let _ = match tls {
                        None => builder.serve_connection(TokioIo::new(stream), svc).await,
                        Some(acceptor) => match acceptor.accept(stream).await {
                            Ok(s) => builder.serve_connection(TokioIo::new(s), svc).await,
                            Err(_) => return,
                        },
                    };
                });
            }
        });
        Self { addr, got, release }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn got(&self) -> Vec<Got> {
        self.got.lock().expect("lock").clone()
    }

    /// Waits (bounded) until at least `n` requests arrived; returns them all.
    pub async fn wait_for(&self, n: usize) -> Vec<Got> {
        let deadline = Instant::now() + WAIT;
        loop {
            let got = self.got();
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "receiver got {} request(s), expected {n}",
                got.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Lets every hanging answer finish.
    pub fn release(&self) {
        self.release.notify_waiters();
    }
}

async fn answer_with(
    req: Request<Incoming>,
    answer: Answer,
    got: Arc<Mutex<Vec<Got>>>,
    release: Arc<Notify>,
) -> Result<Response<Full<Bytes>>, hyper::Error> {
    let at = Instant::now();
    let path = req.uri().path().to_string();
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
    let body = req.into_body().collect().await?.to_bytes().to_vec();
    got.lock().expect("lock").push(Got {
        at,
        path,
        headers,
        body,
    });
    let mut resp = Response::new(Full::new(Bytes::from_static(b"ok")));
    match answer {
        Answer::Status(s) => *resp.status_mut() = http::StatusCode::from_u16(s).expect("status"),
        Answer::RetryAfter(secs) => {
            *resp.status_mut() = http::StatusCode::TOO_MANY_REQUESTS;
            resp.headers_mut().insert(
                "retry-after",
                secs.to_string().parse().expect("header value"),
            );
        }
        Answer::Hang => {
            let _ = tokio::time::timeout(WAIT, release.notified()).await;
        }
        Answer::RateLimited(secs) => {
            *resp.status_mut() = http::StatusCode::TOO_MANY_REQUESTS;
            let reset = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("after 1970")
                .as_secs()
                + secs;
            resp.headers_mut().insert(
                "x-ratelimit-reset",
                reset.to_string().parse().expect("header value"),
            );
        }
        Answer::Reply {
            status,
            headers,
            body,
        } => {
            resp = Response::new(Full::new(Bytes::from(body)));
            *resp.status_mut() = http::StatusCode::from_u16(status).expect("status");
            for (n, v) in headers {
                resp.headers_mut()
                    .insert(n, v.parse().expect("header value"));
            }
        }
    }
    Ok(resp)
}
