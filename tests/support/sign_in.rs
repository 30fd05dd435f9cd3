//! A console's sign-in form for lockout tests: `POST /login` answers 401
//! when the body holds `wrong`, else 302 to `/home`; every body it receives
//! is kept, byte for byte. Other paths answer 200.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};

/// A running sign-in console.
pub struct SignInConsole {
    pub url: String,
    bodies: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl SignInConsole {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let bodies: Arc<Mutex<Vec<Vec<u8>>>> = Arc::default();
        let seen = bodies.clone();
        tokio::spawn(async move {
            while let Ok((s, _)) = listener.accept().await {
                let seen = seen.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(
                        move |req: http::Request<hyper::body::Incoming>| {
                            let seen = seen.clone();
                            async move {
                                let login = req.uri().path() == "/login";
                                let body = req.into_body().collect().await?.to_bytes();
                                let mut resp =
                                    http::Response::new(Full::new(Bytes::from_static(b"console")));
                                if login {
                                    let wrong = body.windows(5).any(|w| w == b"wrong");
                                    seen.lock().expect("lock").push(body.to_vec());
                                    if wrong {
                                        *resp.status_mut() = http::StatusCode::UNAUTHORIZED;
                                    } else {
                                        *resp.status_mut() = http::StatusCode::FOUND;
                                        resp.headers_mut().insert(
                                            http::header::LOCATION,
                                            http::HeaderValue::from_static("/home"),
                                        );
                                    }
                                }
                                Ok::<_, hyper::Error>(resp)
                            }
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(s), svc)
                        .await;
                });
            }
        });
        Self { url, bodies }
    }

    /// The bodies of the sign-ins received so far.
    pub fn bodies(&self) -> Vec<Vec<u8>> {
        self.bodies.lock().expect("lock").clone()
    }

    pub fn sign_ins(&self) -> usize {
        self.bodies.lock().expect("lock").len()
    }
}

/// `POST /login` with a form body from `from`.
pub async fn form(from: &str, to: std::net::SocketAddr, body: &str) -> super::proxy::Reply {
    let req = format!(
        "POST /login HTTP/1.1\r\nHost: console.test\r\nConnection: close\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    super::proxy::exchange(super::proxy::connect_from(from, to).await, req.as_bytes()).await
}
