//! The floor of netwarden's design, for the load and instruction benchmarks:
//! the same hyper server (hyper-util's auto builder, same HTTP/1 settings),
//! the same worker threads and the same per-worker upstream pool as
//! `netwarden serve`, forwarding every request with no policy decision, no
//! forwarding headers, no log line and no metrics. What this costs per
//! request, netwarden cannot go below without replacing hyper.
//!
//!   cargo build --release --example bare-forward
//!   target/release/examples/bare-forward LISTEN UPSTREAM [WORKERS]

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use http::header::{self, HeaderValue};
use http::{Request, Uri};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use netwarden::proxy::pool::Pool;

/// netwarden's allocator (src/main.rs), so that the floor differs from it
/// only by what netwarden does.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(listen), Some(upstream)) = (args.get(1), args.get(2)) else {
        return Err("usage: bare-forward LISTEN UPSTREAM [WORKERS]".into());
    };
    let workers: usize = match args.get(3) {
        Some(n) => n.parse()?,
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    let authority: http::uri::Authority = upstream.parse()?;

    // One single-threaded runtime and pool per worker, as in `serve`.
    let mut handles = Vec::new();
    for _ in 0..workers {
        let (tx, rx) = std::sync::mpsc::channel();
        let authority = authority.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("worker runtime");
            let pool = Arc::new(Pool::new(
                authority,
                Duration::from_secs(5),
                Duration::from_secs(60),
                1024,
                // netwarden's default `limits.upstream_keepalive` share.
                64,
                // A gauge nobody reads (netwarden's is in its metrics).
                Default::default(),
            ));
            tx.send((rt.handle().clone(), pool)).expect("main thread");
            rt.block_on(std::future::pending::<()>());
        });
        handles.push(rx.recv()?);
    }

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen).await?;
        let mut next = 0;
        loop {
            let (stream, _) = listener.accept().await?;
            // Registered with the worker's own reactor, as in `serve`.
            let stream = stream.into_std()?;
            let (handle, pool) = handles[next % handles.len()].clone();
            next += 1;
            handle.spawn(async move {
                let Ok(stream) = tokio::net::TcpStream::from_std(stream) else {
                    return;
                };
                let _ = stream.set_nodelay(true);
                let mut builder = auto::Builder::new(TokioExecutor::new());
                builder
                    .http1()
                    // As netwarden's: no head timer of hyper's (netwarden
                    // holds heads to its own deadlines; see listener.rs).
                    .header_read_timeout(None)
                    .keep_alive(true);
                let service = service_fn(move |req: Request<Incoming>| {
                    let pool = pool.clone();
                    async move { Ok::<_, Infallible>(forward(&pool, req).await) }
                });
                let _ = builder
                    .serve_connection_with_upgrades(TokioIo::new(stream), service)
                    .await;
            });
        }
    })
}

async fn forward(
    pool: &Arc<Pool>,
    mut req: Request<Incoming>,
) -> http::Response<http_body_util::Either<netwarden::proxy::pool::UpstreamBody, String>> {
    let origin = req
        .uri()
        .path_and_query()
        .cloned()
        .map_or_else(|| Uri::from_static("/"), Uri::from);
    *req.uri_mut() = origin;
    if !req.headers().contains_key(header::HOST) {
        req.headers_mut()
            .insert(header::HOST, HeaderValue::from_static("upstream"));
    }
    match pool
        .request(req.map(netwarden::proxy::body::RequestBody::from))
        .await
    {
        Ok(resp) => resp.map(http_body_util::Either::Left),
        Err(e) => {
            let mut resp = http::Response::new(http_body_util::Either::Right(e.to_string()));
            *resp.status_mut() = http::StatusCode::BAD_GATEWAY;
            resp
        }
    }
}
