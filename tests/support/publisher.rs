//! A list publisher on loopback, over TLS (or plain HTTP): it answers
//! whatever the test sets now (a list with an ETag, a status, a hang, a
//! huge body, a redirect) and honours `If-None-Match` as a real web server
//! does. It records each request's path and headers.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

use super::proxy::WAIT;

/// What the publisher answers now.
#[derive(Clone, Debug)]
pub enum Answer {
    /// 200 with this body and an ETag made from it; 304 to a request that
    /// names that ETag.
    List(String),
    Status(u16),
    /// Accepts the request and never answers (within the test's time).
    Hang,
    /// 200 with this many bytes of list lines, streamed, no Content-Length.
    Huge(usize),
    /// 302 to this location.
    Redirect(String),
    /// 304 naming this ETag, whatever was asked.
    NotModified(String),
}

/// (path, If-None-Match) of each request.
type Seen = Arc<Mutex<Vec<(String, Option<String>)>>>;

type Body = http_body_util::combinators::BoxBody<Bytes, std::io::Error>;

pub struct Publisher {
    pub addr: SocketAddr,
    tls: bool,
    answer: Arc<Mutex<Answer>>,
    /// Answers for particular paths, ahead of `answer`.
    paths: Arc<Mutex<Vec<(String, Answer)>>>,
    /// (path, If-None-Match) of each request.
    seen: Seen,
}

impl Publisher {
    /// Over TLS with `cert` and `key` (PEM).
    pub async fn start_tls(cert: &std::path::Path, key: &std::path::Path, answer: Answer) -> Self {
        let cfg = netwarden::tls::server_config(cert, key).expect("publisher TLS config");
        Self::serve(Some(tokio_rustls::TlsAcceptor::from(Arc::new(cfg))), answer).await
    }

    /// Plain HTTP (an intranet server, `allow_http: true`).
    pub async fn start_plain(answer: Answer) -> Self {
        Self::serve(None, answer).await
    }

    async fn serve(tls: Option<tokio_rustls::TlsAcceptor>, answer: Answer) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind publisher");
        let addr = listener.local_addr().expect("publisher address");
        let answer = Arc::new(Mutex::new(answer));
        let paths = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (a, s, p) = (answer.clone(), seen.clone(), paths.clone());
        let is_tls = tls.is_some();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (a, s, p, tls) = (a.clone(), s.clone(), p.clone(), tls.clone());
                tokio::spawn(async move {
                    let svc = service_fn(move |req| respond(req, a.clone(), p.clone(), s.clone()));
                    let builder = auto::Builder::new(TokioExecutor::new());
                    let _ = match tls {
                        None => builder.serve_connection(TokioIo::new(stream), svc).await,
                        Some(acceptor) => match acceptor.accept(stream).await {
                            Ok(st) => builder.serve_connection(TokioIo::new(st), svc).await,
                            Err(_) => return,
                        },
                    };
                });
            }
        });
        Self {
            addr,
            tls: is_tls,
            answer,
            paths,
            seen,
        }
    }

    pub fn set(&self, answer: Answer) {
        *self.answer.lock().expect("lock") = answer;
    }

    /// What `path` answers, whatever the rest does.
    pub fn set_path(&self, path: &str, answer: Answer) {
        let mut p = self.paths.lock().expect("lock");
        p.retain(|(q, _)| q != path);
        p.push((path.to_string(), answer));
    }

    pub fn url(&self, path: &str) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}{path}", self.addr)
    }

    pub fn seen(&self) -> Vec<(String, Option<String>)> {
        self.seen.lock().expect("lock").clone()
    }
}

fn etag(body: &str) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, body.as_bytes());
    let hex: String = d.as_ref()[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("\"{hex}\"")
}

async fn respond(
    req: Request<Incoming>,
    answer: Arc<Mutex<Answer>>,
    paths: Arc<Mutex<Vec<(String, Answer)>>>,
    seen: Seen,
) -> Result<Response<Body>, hyper::Error> {
    let inm = req
        .headers()
        .get("if-none-match")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    seen.lock()
        .expect("lock")
        .push((req.uri().path().to_string(), inm.clone()));
    let full = |status: u16, body: String| {
        Response::builder()
            .status(status)
            .body(Full::new(Bytes::from(body)).map_err(|e| match e {}).boxed())
            .expect("response")
    };
    let for_path = paths
        .lock()
        .expect("lock")
        .iter()
        .find(|(p, _)| p == req.uri().path())
        .map(|(_, a)| a.clone());
    let now = for_path.unwrap_or_else(|| answer.lock().expect("lock").clone());
    Ok(match now {
        Answer::List(body) => {
            let tag = etag(&body);
            if inm.as_deref() == Some(tag.as_str()) {
                let mut r = full(304, String::new());
                r.headers_mut().insert("etag", tag.parse().expect("etag"));
                r
            } else {
                let mut r = full(200, body);
                r.headers_mut().insert("etag", tag.parse().expect("etag"));
                r
            }
        }
        Answer::Status(code) => full(code, format!("status {code}\n")),
        Answer::Hang => {
            tokio::time::sleep(WAIT).await;
            full(503, String::new())
        }
        Answer::NotModified(tag) => {
            let mut r = full(304, String::new());
            r.headers_mut().insert("etag", tag.parse().expect("etag"));
            r
        }
        Answer::Redirect(to) => {
            let mut r = full(302, String::new());
            r.headers_mut()
                .insert("location", to.parse().expect("location"));
            r
        }
        Answer::Huge(size) => {
            let chunk = Bytes::from("203.0.113.0/24\n".repeat(4096));
            let left = size / chunk.len() + 1;
            Response::builder()
                .status(StatusCode::OK)
                .body(BodyExt::boxed(Chunks { chunk, left }))
                .expect("response")
        }
    })
}

/// `left` copies of `chunk` as body frames: a body with no length.
struct Chunks {
    chunk: Bytes,
    left: usize,
}

impl hyper::body::Body for Chunks {
    type Data = Bytes;
    type Error = std::io::Error;
    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        if self.left == 0 {
            return std::task::Poll::Ready(None);
        }
        self.left -= 1;
        std::task::Poll::Ready(Some(Ok(Frame::data(self.chunk.clone()))))
    }
}
