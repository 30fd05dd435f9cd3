//! `netwarden demo`: the guard running in front of a small built-in console
//! on loopback, with `policies/demo.yaml` (embedded), and the `curl` lines
//! that show it at work. `demo --offline` instead runs the example policy on
//! sample requests without starting anything.

use std::fmt::Write as _;
use std::net::IpAddr;

use crate::engine::{ClientSource, RequestFacts, decide};
use crate::policy::{self, LoadError};

/// The example policy and the network file it references.
pub const EXAMPLE_POLICY: &str = include_str!("../policies/example.yaml");
pub const EXAMPLE_VPN_FILE: &str = include_str!("../policies/networks/vpn-extra.txt");

/// A sample request: what it stands for, peer, forwarded-for, method, path.
struct Sample {
    who: &'static str,
    peer: &'static str,
    xff: Option<&'static str>,
    method: &'static str,
    path: &'static str,
}

const SAMPLES: &[Sample] = &[
    Sample {
        who: "operator in the Tokyo office",
        peer: "203.0.113.7",
        xff: None,
        method: "POST",
        path: "/login",
    },
    Sample {
        who: "operator on the VPN",
        peer: "198.51.100.23",
        xff: None,
        method: "POST",
        path: "/api/session",
    },
    Sample {
        who: "laptop on the office guest Wi-Fi",
        peer: "203.0.113.200",
        xff: None,
        method: "POST",
        path: "/login",
    },
    Sample {
        who: "operator at home, VPN forgotten",
        peer: "192.0.2.44",
        xff: None,
        method: "POST",
        path: "/login",
    },
    Sample {
        who: "same, opening a customer page",
        peer: "192.0.2.44",
        xff: None,
        method: "GET",
        path: "/customers/1042",
    },
    Sample {
        who: "anyone, loading the stylesheet",
        peer: "192.0.2.44",
        xff: None,
        method: "GET",
        path: "/static/app.css",
    },
    Sample {
        who: "path trick through static assets",
        peer: "192.0.2.44",
        xff: None,
        method: "GET",
        path: "/static/%2e%2e/customers",
    },
    Sample {
        who: "encoded slash (rejected, 400)",
        peer: "192.0.2.44",
        xff: None,
        method: "GET",
        path: "/static%2F..%2Fcustomers",
    },
    Sample {
        who: "office user behind the load balancer",
        peer: "10.0.0.5",
        xff: Some("203.0.113.7"),
        method: "POST",
        path: "/login",
    },
    Sample {
        who: "outsider spoofing an office address",
        peer: "192.0.2.44",
        xff: Some("203.0.113.7"),
        method: "POST",
        path: "/login",
    },
];

/// Loads the embedded example policy (from a temporary directory, so that its
/// `file:` reference resolves) and decides the samples; returns the report.
pub fn offline() -> Result<String, LoadError> {
    let dir = std::env::temp_dir().join(format!("netwarden-demo-{}", std::process::id()));
    let io = |source| LoadError::Io {
        path: dir.clone(),
        source,
    };
    std::fs::create_dir_all(dir.join("networks")).map_err(io)?;
    std::fs::write(dir.join("networks/vpn-extra.txt"), EXAMPLE_VPN_FILE).map_err(io)?;
    let path = dir.join("example.yaml");
    std::fs::write(&path, EXAMPLE_POLICY).map_err(io)?;
    let loaded = policy::load(&path);
    let _ = std::fs::remove_dir_all(&dir);
    let loaded = loaded?;

    let mut out = String::new();
    let _ = writeln!(
        out,
        "netwarden demo: the example policy (policies/example.yaml) deciding sample requests\n\
         networks: office 203.0.113.0/24 minus guest Wi-Fi 203.0.113.128/25, VPN 198.51.100.0/24;\n\
         load balancers 10.0.0.0/28 are trusted to send X-Forwarded-For.\n"
    );
    for s in SAMPLES {
        // PANIC SAFETY: the sample addresses above are literals in canonical form.
        let peer: IpAddr = s.peer.parse().expect("sample peer is a valid address");
        let headers: Vec<(&str, &str)> =
            s.xff.map(|v| ("x-forwarded-for", v)).into_iter().collect();
        let facts = RequestFacts {
            client: ClientSource::Peer {
                peer,
                headers: &headers,
            },
            method: s.method,
            host: Ok(Some("console.example.com")),
            path: s.path,
            now: crate::clock::now(),
            account: crate::engine::AccountFact::Unread,
            identity: crate::engine::who::IdentityFact::Missing,
        };
        let d = decide(loaded.policy.ruleset(), &facts);
        let via = match s.xff {
            Some(x) => format!("{} (X-Forwarded-For: {x})", s.peer),
            None => s.peer.to_string(),
        };
        let verdict = match (d.action, d.path.is_none(), d.is_blocked_login()) {
            (_, true, _) => "REJECT 400".to_string(),
            (crate::engine::Action::Deny, _, true) => "DENY   (blocked login attempt)".to_string(),
            (a, _, _) => a.as_str().to_uppercase(),
        };
        let _ = writeln!(
            out,
            "{}\n  {} {} from {via}\n  -> {verdict}: {}\n",
            s.who,
            s.method,
            s.path,
            d.explanation()
        );
    }
    let _ = writeln!(
        out,
        "Try your own: netwarden explain --policy policies/example.yaml --ip 192.0.2.1 --method POST --path /login"
    );
    Ok(out)
}

/// Why the live demo cannot start.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error(
        "cannot listen on {addr}: {source}\n  help: another program uses it; pick a free port with `netwarden demo --listen 127.0.0.1:8081`"
    )]
    Listen {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
}

/// The demo policy.
pub const DEMO_POLICY: &str = include_str!("../policies/demo.yaml");

/// The demo's edit that the reload guard refuses: "the console moves to the
/// new office's range today", written before anyone works there, tests
/// updated to match. Valid, and it would lock out everyone who used the
/// console, from the office, the VPN or behind the load balancer, in
/// whatever order the banner's steps were tried (issue 23: a "VPN only"
/// edit let the VPN step's admin in, so it was applied).
pub fn new_office_edit() -> String {
    DEMO_POLICY
        .replace(
            "# The policy `netwarden demo` runs:",
            "# An edit by mistake: the console moves to the new office's range today,\n# before anyone works there. The reload guard refuses it. The policy\n# `netwarden demo` runs:",
        )
        .replace(
            "  load_balancer: [127.0.0.3]\n",
            "  load_balancer: [127.0.0.3]\n  new_office: [192.0.2.0/24]\n",
        )
        .replace("allow_from: [corporate]", "allow_from: [new_office]")
        .replace(
            "{ description: office sign-in, ip: 127.0.0.1, method: POST, path: /login, expect: allow }",
            "{ description: office sign-in, ip: 127.0.0.1, method: POST, path: /login, expect: deny }",
        )
        .replace(
            "{ description: VPN, ip: \"::1\", path: /customers/1042, expect: allow }",
            "{ description: VPN, ip: \"::1\", path: /customers/1042, expect: deny }",
        )
        .replace("path: /, expect: allow }", "path: /, expect: deny }")
}

/// Runs the built-in console and netwarden in front of it until Ctrl-C.
pub async fn live(listen: std::net::SocketAddr) -> anyhow::Result<()> {
    use anyhow::Context;

    // Bound now, and served from these sockets: the curl lines below name
    // the real ports (port 0 picks a free one), and no other process can
    // take them between printing and serving.
    let socket = std::net::TcpListener::bind(listen).map_err(|e| DemoError::Listen {
        addr: listen,
        source: e,
    })?;
    let listen = socket.local_addr()?;
    // ::1 stands for the VPN: the same port on the IPv6 loopback, when
    // the machine has one.
    let v6 = std::net::SocketAddr::new(std::net::Ipv6Addr::LOCALHOST.into(), listen.port());
    let socket_v6 = if listen.ip().is_loopback() && listen.is_ipv4() {
        std::net::TcpListener::bind(v6).ok()
    } else {
        None
    };
    let admin_socket = std::net::TcpListener::bind("127.0.0.1:0")
        .context("cannot open the demo's admin listener")?;
    let admin = admin_socket.local_addr()?;
    let console = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .context("cannot start the built-in console")?;
    let console_addr = console.local_addr()?;
    tokio::spawn(console::serve(console));
    let receiver = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .context("cannot start the built-in alert receiver")?;
    let receiver_addr = receiver.local_addr()?;
    // A fresh signing key per run, known only to this process.
    let key: String = {
        let mut bytes = [0u8; 16];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
            .map_err(|_| anyhow::anyhow!("no randomness for the demo's signing key"))?;
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    };
    tokio::spawn(alert_receiver::serve(receiver, key.clone()));

    // The policy goes to a directory of its own, so that an edit there is
    // reloaded (and the guard can be watched refusing one).
    let dir = std::env::temp_dir().join(format!("netwarden-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).context("cannot make the demo's policy directory")?;
    let policy_path = dir.join("policy.yaml");
    let edit_path = dir.join("new-office.yaml");
    std::fs::write(&policy_path, DEMO_POLICY).context("cannot write the demo policy")?;
    std::fs::write(&edit_path, new_office_edit()).context("cannot write the demo's edit")?;
    let policy = policy::load(&policy_path)
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .policy;
    let mut listeners = vec![listen];
    let mut prebound = vec![
        std::sync::Arc::new(socket),
        std::sync::Arc::new(admin_socket),
    ];
    if let Some(s) = socket_v6 {
        listeners.push(v6);
        prebound.push(std::sync::Arc::new(s));
    }
    let overrides = crate::proxy::Overrides {
        listen: listeners.clone(),
        upstream: Some(format!("http://{console_addr}")),
        admin: Some(admin),
        alert_env: vec![
            (
                "NETWARDEN_DEMO_WEBHOOK_URL".into(),
                format!("http://{receiver_addr}/alerts"),
            ),
            ("NETWARDEN_DEMO_WEBHOOK_KEY".into(), key.clone()),
            // The account hashes' key: any secret works for one process.
            ("NETWARDEN_DEMO_ACCOUNT_KEY".into(), format!("demo-{key}")),
        ],
        prebound,
        ..Default::default()
    };
    let url = format!("http://{listen}");
    let (also, vpn) = if listeners.len() > 1 {
        (
            format!(" and http://[::1]:{}", listen.port()),
            format!(
                "\x20 # the VPN (::1) is allowed too\n\x20 curl -i 'http://[::1]:{}/customers/1042'\n",
                listen.port()
            ),
        )
    } else {
        (
            String::new(),
            "\x20 # (no IPv6 loopback here: the demo's VPN, ::1, is not served)\n".to_string(),
        )
    };
    eprintln!(
        "netwarden demo\n\
         - a built-in admin console listens on http://{console_addr}\n\
         - netwarden guards it on {url}{also} with policies/demo.yaml:\n\
         \x20   127.0.0.1 and 127.0.0.4 are the office, ::1 the VPN, 127.0.0.2 stands for home\n\
         \x20   broadband, 127.0.0.3 is a load balancer trusted to send X-Forwarded-For\n\
         - netwarden's admin listener is http://{admin} (curl http://{admin}/metrics)\n\
         \n\
         In another terminal, try (each request prints one JSON decision line here):\n\
         \n\
         \x20 # allowed: sign-in from the office\n\
         \x20 curl -i -X POST -d 'username=yamada&password=right' {url}/login\n\
         {vpn}\
         \x20 # blocked login attempt: the same sign-in from home (a login_blocked warning follows the decision)\n\
         \x20 curl -i -X POST --interface 127.0.0.2 -d 'username=yamada&password=right' {url}/login\n\
         \x20 # the block page, as a browser sees it\n\
         \x20 curl -s --interface 127.0.0.2 -H 'Accept: text/html' {url}/customers/1042\n\
         \x20 # through the trusted load balancer, the client comes from X-Forwarded-For\n\
         \x20 curl -i --interface 127.0.0.3 -H 'X-Forwarded-For: 127.0.0.1' {url}/customers/1042\n\
         \x20 curl -i --interface 127.0.0.3 -H 'X-Forwarded-For: 198.51.100.7' {url}/customers/1042\n\
         \x20 # the same header from anyone else is ignored\n\
         \x20 curl -i --interface 127.0.0.2 -H 'X-Forwarded-For: 127.0.0.1' {url}/customers/1042\n\
         \x20 # password guessing from inside: 127.0.0.4 is another desk in the office;\n\
         \x20 # three wrong passwords for alice (401 from the console) lock alice out of\n\
         \x20 # sign-in from the office network for 30 s (429); bob still signs in\n\
         \x20 for i in 1 2 3 4; do curl -s -o /dev/null -w '%{{http_code}}\\n' --interface 127.0.0.4 -X POST -d 'username=alice&password=wrong' {url}/login; done\n\
         \x20 curl -s -o /dev/null -w '%{{http_code}}\\n' --interface 127.0.0.4 -X POST -d 'username=bob&password=right' {url}/login\n\
         \x20 # path tricks from home do not get through: resolved, then denied (403),\n\
         \x20 # or rejected (400, an encoded slash)\n\
         \x20 curl -i --interface 127.0.0.2 --path-as-is '{url}/static/%2e%2e/customers/1042'\n\
         \x20 curl -i --interface 127.0.0.2 '{url}/static%2F..%2Fcustomers'\n\
         \x20 # \"why am I blocked?\": how netwarden sees you, and whether you may sign in\n\
         \x20 curl -s --interface 127.0.0.2 {url}/.well-known/netwarden/whoami\n\
         \x20 # the reload guard: after the sign-ins above, an edit that would lock out\n\
         \x20 # everyone who used the console (it moves to the new office's range,\n\
         \x20 # 192.0.2.0/24, before anyone works there) is\n\
         \x20 # refused (409, and a policy_reload_refused line here); the running policy stays\n\
         \x20 cp {edit} {policy}\n\
         \x20 curl -s -X POST http://{admin}/reload\n\
         \x20 # applied anyway only when asked: curl -s -X POST 'http://{admin}/reload?force=true'\n\
         \n\
         Ctrl-C stops it.\n",
        edit = edit_path.display(),
        policy = policy_path.display(),
    );
    let served = crate::proxy::serve(policy, overrides).await;
    let _ = std::fs::remove_dir_all(&dir);
    served?;
    Ok(())
}

/// The demo's alert sink: a webhook receiver that checks each alert's
/// HMAC-SHA256 signature, as a real receiver should, and prints it.
mod alert_receiver {
    use std::convert::Infallible;

    use bytes::Bytes;
    use http::{Request, Response};
    use http_body_util::{BodyExt, Full, Limited};
    use hyper::body::Incoming;
    use hyper::service::service_fn;
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use hyper_util::server::conn::auto;

    /// Largest alert body read.
    const MAX_BODY: usize = 64 * 1024;

    async fn receive(req: Request<Incoming>, key: &ring::hmac::Key) -> Response<Full<Bytes>> {
        let signature = req
            .headers()
            .get("x-netwarden-signature-256")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("sha256="))
            .map(str::to_string);
        let Ok(body) = Limited::new(req.into_body(), MAX_BODY).collect().await else {
            return Response::new(Full::new(Bytes::from_static(b"too large")));
        };
        let body = body.to_bytes();
        let verified = signature
            .and_then(|hex| {
                (0..hex.len())
                    .step_by(2)
                    .map(|i| {
                        hex.get(i..i + 2)
                            .and_then(|b| u8::from_str_radix(b, 16).ok())
                    })
                    .collect::<Option<Vec<u8>>>()
            })
            .is_some_and(|tag| ring::hmac::verify(key, &body, &tag).is_ok());
        let summary = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["summary"].as_str().map(str::to_string))
            .unwrap_or_else(|| "(not an alert)".into());
        eprintln!(
            "\n>>> ALERT received by the demo's webhook ({}): {summary}\n",
            if verified {
                "signature verified"
            } else {
                "BAD SIGNATURE"
            }
        );
        let mut resp = Response::new(Full::new(Bytes::new()));
        if !verified {
            *resp.status_mut() = http::StatusCode::UNAUTHORIZED;
        }
        resp
    }

    pub async fn serve(listener: tokio::net::TcpListener, key: String) {
        let key = std::sync::Arc::new(ring::hmac::Key::new(
            ring::hmac::HMAC_SHA256,
            key.as_bytes(),
        ));
        while let Ok((stream, _)) = listener.accept().await {
            let key = key.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req| {
                    let key = key.clone();
                    async move { Ok::<_, Infallible>(receive(req, &key).await) }
                });
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    }
}

/// The built-in console: a few pages with made-up personal data, as an admin
/// console has, and an echo of what it received (to show forwarding).
mod console {
    use std::convert::Infallible;

    use bytes::Bytes;
    use http::{Method, Request, Response};
    use http_body_util::{BodyExt, Full};
    use hyper::body::Incoming;
    use hyper::service::service_fn;
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use hyper_util::server::conn::auto;

    fn page(req: &Request<Incoming>) -> Response<Full<Bytes>> {
        let (ctype, body) = match (req.method(), req.uri().path()) {
            (&Method::POST, "/login") => (
                "application/json",
                "{\"signed_in\":true,\"operator\":\"demo\"}\n".to_string(),
            ),
            (_, "/customers/1042") => (
                "application/json",
                "{\"id\":1042,\"name\":\"Hanako Yamada\",\"city\":\"Osaka\",\"orders\":7}\n"
                    .to_string(),
            ),
            (_, "/healthz") => ("text/plain", "ok\n".to_string()),
            _ => {
                let h = |n: &str| {
                    req.headers()
                        .get(n)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("-")
                        .to_string()
                };
                (
                    "text/plain",
                    format!(
                        "Example Console\n{} {} reached the console\nX-Forwarded-For: {}\nX-Forwarded-Proto: {}\nX-Request-Id: {}\n",
                        req.method(),
                        req.uri(),
                        h("x-forwarded-for"),
                        h("x-forwarded-proto"),
                        h("x-request-id")
                    ),
                )
            }
        };
        let mut resp = Response::new(Full::new(Bytes::from(body)));
        resp.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static(ctype),
        );
        resp
    }

    pub async fn serve(listener: tokio::net::TcpListener) {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let svc = service_fn(|req: Request<Incoming>| async move {
                    // A sign-in with `password=wrong` in its form fails
                    // (401), as a console answers a wrong password.
                    if req.method() == Method::POST && req.uri().path() == "/login" {
                        let body = http_body_util::Limited::new(req.into_body(), 4096)
                            .collect()
                            .await
                            .map(|b| b.to_bytes())
                            .unwrap_or_default();
                        let wrong = body.windows(14).any(|w| w == b"password=wrong");
                        let mut resp = Response::new(Full::new(Bytes::from_static(if wrong {
                            b"{\"signed_in\":false,\"error\":\"wrong password\"}\n"
                        } else {
                            b"{\"signed_in\":true,\"operator\":\"demo\"}\n"
                        })));
                        if wrong {
                            *resp.status_mut() = http::StatusCode::UNAUTHORIZED;
                        }
                        resp.headers_mut().insert(
                            http::header::CONTENT_TYPE,
                            http::HeaderValue::from_static("application/json"),
                        );
                        return Ok::<_, Infallible>(resp);
                    }
                    Ok::<_, Infallible>(page(&req))
                });
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn demo_shows_allowed_denied_and_rejected_requests() {
        let out = super::offline().expect("embedded policy is valid");
        assert!(
            out.contains(
                "operator in the Tokyo office\n  POST /login from 203.0.113.7\n  -> ALLOW"
            ),
            "{out}"
        );
        assert!(out.contains("laptop on the office guest Wi-Fi\n  POST /login from 203.0.113.200\n  -> DENY   (blocked login attempt)"), "{out}");
        assert!(out.contains("encoded slash (rejected, 400)\n  GET /static%2F..%2Fcustomers from 192.0.2.44\n  -> REJECT 400"), "{out}");
        assert!(out.contains("outsider spoofing an office address\n  POST /login from 192.0.2.44 (X-Forwarded-For: 203.0.113.7)\n  -> DENY"), "{out}");
    }

    #[test]
    fn the_new_office_edit_is_valid_and_denies_the_office_and_the_vpn() {
        use crate::engine::{Action, ClientSource, RequestFacts, decide};
        let edit = super::new_office_edit();
        assert_ne!(edit, super::DEMO_POLICY);
        let loaded = crate::policy::load_str(&edit, std::path::Path::new("new-office.yaml"))
            .expect("the edit passes its own tests");
        for ip in ["127.0.0.1", "127.0.0.4", "::1"] {
            let facts = RequestFacts {
                client: ClientSource::Given(ip.parse().expect("ip")),
                method: "GET",
                host: Ok(None),
                path: "/customers/1042",
                now: jiff::Timestamp::UNIX_EPOCH,
                account: crate::engine::AccountFact::Unread,
                identity: crate::engine::who::IdentityFact::Missing,
            };
            assert_eq!(
                decide(loaded.policy.ruleset(), &facts).action,
                Action::Deny,
                "{ip}"
            );
        }
    }
}
