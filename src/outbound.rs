//! Outbound HTTP: the pooled hyper client over rustls that both the proxy
//! (to the console) and alert delivery (to webhooks) use. It sits below
//! both so that neither reaches into the other.

use std::time::Duration;

use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

/// Builds the pooled client; `tls` verifies https upstreams. Generic over
/// the request body: the proxy streams `RequestBody`, alert sinks send `Full`.
/// `max_idle`: idle connections kept (hyper-util keeps any number otherwise).
pub fn client<B>(
    tls: rustls::ClientConfig,
    connect_timeout: Duration,
    idle: Duration,
    max_idle: usize,
) -> Client<HttpsConnector<HttpConnector>, B>
where
    B: hyper::body::Body + Send + 'static + Unpin,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(Some(connect_timeout));
    http.set_nodelay(true);
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .wrap_connector(http);
    Client::builder(TokioExecutor::new())
        .timer(TokioTimer::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(idle)
        .pool_max_idle_per_host(max_idle)
        .build(https)
}
