//! The admin listener: `/healthz` (the process is alive), `/readyz` (a
//! policy is loaded and every listener is up; false again while draining),
//! `GET /policy` (what is running, and how the last reload went), `POST
//! /reload`. Plain HTTP/1.1, meant for loopback or the Pod network only.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::reload::{Outcome, Reloader};

/// Shared readiness: set once listeners are up, cleared on shutdown.
#[derive(Default)]
pub struct Health {
    pub ready: AtomicBool,
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

fn json(status: StatusCode, v: &serde_json::Value) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(format!("{v}\n"))));
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    r
}

/// Answers one admin request.
pub async fn route(
    health: &Health,
    reloader: &Reloader,
    req: &Request<Incoming>,
) -> Response<Full<Bytes>> {
    let (method, path) = (req.method(), req.uri().path());
    if path == "/reload" {
        if method != Method::POST {
            return text(StatusCode::METHOD_NOT_ALLOWED, "use POST\n");
        }
        let outcome = reloader.reload("admin").await;
        let status = match outcome {
            Outcome::Failed { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            _ => StatusCode::OK,
        };
        return json(status, &outcome.to_json());
    }
    if method != Method::GET && method != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
    }
    match path {
        "/healthz" => text(StatusCode::OK, "ok\n"),
        "/readyz" if health.ready.load(Ordering::Acquire) => text(StatusCode::OK, "ready\n"),
        "/readyz" => text(StatusCode::SERVICE_UNAVAILABLE, "not ready\n"),
        "/policy" => json(StatusCode::OK, &reloader.status_json()),
        "/metrics" => {
            let mut r = Response::new(Full::new(Bytes::from(reloader.metrics().encode())));
            r.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static(
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                ),
            );
            r
        }
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

pub async fn serve(
    listener: TcpListener,
    health: Arc<Health>,
    reloader: Arc<Reloader>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let (stream, _) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(_) => continue,
            },
            _ = shutdown.changed() => return,
        };
        let (health, reloader) = (health.clone(), reloader.clone());
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let (health, reloader) = (health.clone(), reloader.clone());
                async move { Ok::<_, Infallible>(route(&health, &reloader, &req).await) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(std::time::Duration::from_secs(5))
                .serve_connection(TokioIo::new(stream), svc);
            let _ = conn.await;
        });
    }
}
