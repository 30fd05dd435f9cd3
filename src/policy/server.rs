//! The `server:` section: listeners, upstream, TLS files, timeouts, limits.
//! Flags and `NETWARDEN_*` variables override it (see `proxy::config`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::compile::Cx;
use super::raw::{RawGuard, RawListener, RawServer, RawWhoami, S};

/// Why each default is what it is.
pub mod defaults {
    use std::time::Duration;
    /// RFC 8615's place for site-wide metadata: no console routes there.
    pub const WHOAMI_PATH: &str = "/.well-known/netwarden/whoami";
    /// Long enough for a slow mobile link, short enough that a slowloris
    /// client holds a connection for seconds, not minutes.
    pub const HEADER_READ: Duration = Duration::from_secs(10);
    /// nginx's keepalive_timeout: longer than the 60 s idle timeout of
    /// common load balancers, so that they close first and never send on a
    /// connection netwarden has just closed.
    pub const IDLE: Duration = Duration::from_secs(75);
    /// A sidecar's upstream is on localhost: 5 s means it is down.
    pub const UPSTREAM_CONNECT: Duration = Duration::from_secs(5);
    /// nginx's proxy_read_timeout: consoles with slow reports still fit.
    pub const UPSTREAM_RESPONSE: Duration = Duration::from_secs(60);
    /// Fits inside Kubernetes' default 30 s termination grace period.
    pub const DRAIN: Duration = Duration::from_secs(25);
    /// Idle pooled upstream connections are closed after this: shorter than
    /// common server keep-alive timeouts (nginx 75 s; Node.js's 5 s is the
    /// outlier that the pool retries around).
    pub const UPSTREAM_IDLE: Duration = Duration::from_secs(60);
    /// HAProxy's usual `timeout client`: a response that the client has
    /// taken no byte of for 30 s (it stopped reading, or, on HTTP/2,
    /// opened no flow-control window) is not going to be read.
    pub const SEND: Duration = Duration::from_secs(30);
    /// Envoy's stream idle timeout: a WebSocket that moves no byte for five
    /// minutes has no application keep-alive and is gone.
    pub const TUNNEL_IDLE: Duration = Duration::from_secs(300);
    /// Apache mod_reqtimeout's `body=20`: a client that sends nothing of
    /// its body for 20 s has gone (nginx waits 60 s; a sign-in form or an
    /// upload from a browser never pauses that long).
    pub const BODY_READ: Duration = Duration::from_secs(20);
    /// Apache mod_reqtimeout's `MinRate=500`: every 500 bytes received
    /// earn one more second of waiting; a 64 kbit/s link sends 16 times as
    /// much, a trickle held open for minutes does not.
    pub const BODY_MIN_RATE: u64 = 500;
    /// Envoy's default is 60 KiB; real browsers send well under 16 KiB.
    pub const MAX_HEADER_BYTES: usize = 64 * 1024;
    /// Bounds memory (each connection costs buffers) while far above what an
    /// admin console sees.
    pub const MAX_CONNECTIONS: usize = 10_000;
    /// Envoy's default circuit breaker (1024 connections to a cluster):
    /// far above what a console needs, and a bound on what clients' fan-out
    /// can open.
    pub const UPSTREAM_CONNECTIONS: usize = 1024;
    /// nginx's `keepalive 64` a worker on a two-core machine: enough for
    /// a busy office's steady load; a burst's extra connections close
    /// when their request is done rather than linger with their buffers.
    pub const UPSTREAM_KEEPALIVE: usize = 128;
    /// A NATed office of a few hundred people, browsers at six HTTP/1.1
    /// connections each to one origin (or one HTTP/2 connection), fits;
    /// one address cannot take more than a twentieth of the default table.
    pub const MAX_CONNECTIONS_PER_ADDRESS: usize = 512;
    /// An eighth of the upstream bound, and more than one HTTP/2
    /// connection's 100 streams (a single-page console loading its chunks
    /// asks for that many at once): one address cannot hold the console,
    /// and a request over the share waits for a place rather than fail.
    pub const UPSTREAM_REQUESTS_PER_ADDRESS: usize = 128;
    /// Requests from outside the operators' networks (a public
    /// `/static/**`) take at most a quarter of the console's connections:
    /// the rest stays for the office and the VPN, whatever a stalled
    /// outside client does.
    pub const UPSTREAM_PUBLIC_DIVISOR: usize = 4;
    /// nginx's `proxy_buffers 8 4k|8k`: an answer up to this size is read
    /// whole from the console and its connection given back before the
    /// client has read any of it.
    pub const RESPONSE_BUFFER: usize = 64 * 1024;
    /// All buffered answers together: 1,024 stalled readers' worth, a
    /// bound on what clients that read nothing can make netwarden hold.
    pub const RESPONSE_BUFFERS: usize = 64 * 1024 * 1024;
    /// HTTP/2's recommended minimum (RFC 9113 §6.5.2) and what nginx and
    /// Envoy allow per connection.
    pub const MAX_STREAMS: u32 = 100;
    /// Between SIGTERM and the drain: `/readyz` fails at once while the
    /// listeners keep serving, so that Kubernetes (whose endpoint updates
    /// reach kube-proxy and ingress controllers within a few seconds) stops
    /// sending new connections before any is refused.
    pub const SHUTDOWN_DELAY: Duration = Duration::from_secs(5);
    /// The admin listener: loopback only unless configured otherwise.
    pub const ADMIN: &str = "127.0.0.1:9901";
    /// How often the policy file and the files it reads are checked for
    /// changes: a few `stat` calls; Kubernetes takes up to a minute to
    /// propagate a ConfigMap edit anyway.
    pub const RELOAD_INTERVAL: Duration = Duration::from_secs(2);
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listener {
    pub addr: SocketAddr,
    /// Expect a PROXY protocol (v1 or v2) header first, from trusted proxies only.
    pub proxy_protocol: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    pub header_read: Duration,
    pub idle: Duration,
    pub upstream_connect: Duration,
    pub upstream_response: Duration,
    pub drain: Duration,
    /// An upgraded connection (WebSocket) with no byte moving either way.
    pub tunnel_idle: Duration,
    /// A pooled connection to the console with no request on it.
    pub upstream_idle: Duration,
    /// The longest wait for the client to take the next part of a
    /// response (nginx's `send_timeout`).
    pub send: Duration,
    /// The longest wait for the next part of a request body.
    pub body_read: Duration,
    /// Bytes a second a request body must average once `body_read` is
    /// spent (0: no rate, only `body_read` per wait).
    pub body_min_rate: u64,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            header_read: defaults::HEADER_READ,
            idle: defaults::IDLE,
            upstream_connect: defaults::UPSTREAM_CONNECT,
            upstream_response: defaults::UPSTREAM_RESPONSE,
            drain: defaults::DRAIN,
            tunnel_idle: defaults::TUNNEL_IDLE,
            upstream_idle: defaults::UPSTREAM_IDLE,
            send: defaults::SEND,
            body_read: defaults::BODY_READ,
            body_min_rate: defaults::BODY_MIN_RATE,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub max_header_bytes: usize,
    pub max_connections: usize,
    /// Connections to the console, in total over the worker threads.
    pub upstream_connections: usize,
    /// Idle connections to the console kept for the next request, in
    /// total over the worker threads (nginx's `keepalive`).
    pub upstream_keepalive: usize,
    /// Client connections one address (IPv6: one /64) may hold.
    pub max_connections_per_address: usize,
    /// Requests one client address may have open at the console; never
    /// fewer than `max_streams`.
    pub upstream_requests_per_address: usize,
    /// Requests from clients outside the operators' networks, all
    /// together, may have open at the console.
    pub upstream_requests_public: usize,
    /// Concurrent HTTP/2 streams per client connection.
    pub max_streams: u32,
    /// An answer up to this many bytes is buffered whole (0: none is).
    pub response_buffer: usize,
    /// Bytes of buffered answers held at once, over all requests.
    pub response_buffers: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_header_bytes: defaults::MAX_HEADER_BYTES,
            max_connections: defaults::MAX_CONNECTIONS,
            upstream_connections: defaults::UPSTREAM_CONNECTIONS,
            upstream_keepalive: defaults::UPSTREAM_KEEPALIVE,
            max_connections_per_address: defaults::MAX_CONNECTIONS_PER_ADDRESS,
            upstream_requests_per_address: defaults::UPSTREAM_REQUESTS_PER_ADDRESS,
            upstream_requests_public: defaults::UPSTREAM_CONNECTIONS
                / defaults::UPSTREAM_PUBLIC_DIVISOR,
            max_streams: defaults::MAX_STREAMS,
            response_buffer: defaults::RESPONSE_BUFFER,
            response_buffers: defaults::RESPONSE_BUFFERS,
        }
    }
}

/// Level of the `decision` event for allowed requests; denials are always info.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AllowedLogLevel {
    #[default]
    Info,
    Debug,
}

/// Policy reload by file watching (`server.reload`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReloadSettings {
    pub watch: bool,
    pub interval: Duration,
    /// What a reload does with a candidate that would deny the client
    /// addresses that recently used the console.
    pub guard: Guard,
}

/// `server.reload.guard`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Guard {
    /// Refuse a candidate that denies every recent client; apply one that
    /// denies some, with a warning.
    #[default]
    Refuse,
    /// Apply, with a warning, whatever it denies.
    Warn,
    /// Do not check.
    Off,
}

impl Guard {
    pub fn as_str(self) -> &'static str {
        match self {
            Guard::Refuse => "refuse",
            Guard::Warn => "warn",
            Guard::Off => "off",
        }
    }
}

impl Default for ReloadSettings {
    fn default() -> Self {
        Self {
            watch: true,
            interval: defaults::RELOAD_INTERVAL,
            guard: Guard::Refuse,
        }
    }
}

/// The `server:` section, compiled. Everything is optional here; `serve`
/// checks that what it needs (an upstream, a listener) is there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerSettings {
    pub listen: Vec<Listener>,
    pub tls_listen: Vec<Listener>,
    pub tls: Option<TlsFiles>,
    pub upstream: Option<http::Uri>,
    pub upstream_ca: Option<PathBuf>,
    pub admin: Option<SocketAddr>,
    pub admin_auth: Option<AdminAuth>,
    pub block_page: Option<PathBuf>,
    /// SIGTERM: serve on with `/readyz` failing for this long, then drain.
    pub shutdown_delay: Duration,
    pub timeouts: Timeouts,
    pub limits: Limits,
    pub log_allowed: AllowedLogLevel,
    pub reload: ReloadSettings,
    pub upgrades: Upgrades,
    /// `server.whoami`: the path on the proxy listeners where a person sees
    /// how netwarden sees them; `None`: off.
    pub whoami: Option<String>,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            listen: Vec::new(),
            tls_listen: Vec::new(),
            tls: None,
            upstream: None,
            upstream_ca: None,
            admin: None,
            admin_auth: None,
            block_page: None,
            shutdown_delay: defaults::SHUTDOWN_DELAY,
            timeouts: Timeouts::default(),
            limits: Limits::default(),
            log_allowed: AllowedLogLevel::default(),
            reload: ReloadSettings::default(),
            upgrades: Upgrades::default(),
            whoami: Some(defaults::WHOAMI_PATH.to_string()),
        }
    }
}

/// `server.admin_auth`: the admin listener's controls (`POST /reload`,
/// `GET /policy`, and `/metrics` when `metrics` is set) need
/// `Authorization: Bearer <token>`; probes stay open. The policy names the
/// variable; `serve` reads it at startup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdminAuth {
    pub token_env: String,
    pub metrics: bool,
}

/// `server.upgrades`: the protocols a client may switch to through
/// netwarden (RFC 9110 §7.8), lower case. Read per request, so a reload
/// changes them at once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Upgrades(pub Vec<Box<str>>);

impl Default for Upgrades {
    /// WebSocket only: consoles use it for live views, and its frames are
    /// not requests the console would act on without a decision.
    fn default() -> Self {
        Self(vec!["websocket".into()])
    }
}

impl Upgrades {
    /// Whether a protocol (`websocket`, `WebSocket/13`) is allowed: its
    /// name before any `/version`, without regard to case.
    pub fn allows(&self, protocol: &[u8]) -> bool {
        let protocol = protocol.trim_ascii();
        let name = protocol.split(|&b| b == b'/').next().unwrap_or(protocol);
        self.0
            .iter()
            .any(|p| p.as_bytes().eq_ignore_ascii_case(name))
    }
}

/// `500ms`, `30s`, `5m`, `1h`, or combinations such as `1m30s`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    if t.is_empty() {
        return Err("empty duration".into());
    }
    let mut total = Duration::ZERO;
    let mut rest = t;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(format!("'{text}' is not a duration"));
        }
        let n: u64 = rest[..digits]
            .parse()
            .map_err(|_| format!("'{text}' is too large"))?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let part = match unit {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(n.saturating_mul(60)),
            "h" => Duration::from_secs(n.saturating_mul(3600)),
            "d" => Duration::from_secs(n.saturating_mul(86_400)),
            "" => return Err(format!("'{text}' has no unit")),
            other => return Err(format!("'{text}': unknown unit '{other}'")),
        };
        total = total.saturating_add(part);
    }
    Ok(total)
}

/// An upstream URL: `http://`, `https://` or `h2c://` (HTTP/2 without
/// TLS, with prior knowledge, as Traefik spells it), host and port, no path.
pub fn parse_upstream(text: &str) -> Result<http::Uri, String> {
    let uri: http::Uri = text
        .parse()
        .map_err(|e| format!("'{text}' is not a URL: {e}"))?;
    match uri.scheme_str() {
        Some("http") | Some("https") | Some("h2c") => {}
        _ => {
            return Err(format!(
                "upstream '{text}' must start with http://, https:// or h2c://"
            ));
        }
    }
    if uri.authority().is_none() {
        return Err(format!("upstream '{text}' has no host"));
    }
    if uri
        .path_and_query()
        .is_some_and(|pq| pq.as_str() != "/" && !pq.as_str().is_empty())
    {
        return Err(format!(
            "upstream '{text}' has a path; netwarden forwards each request's own path"
        ));
    }
    Ok(uri)
}

fn resolve_path(base: &Path, p: &str) -> PathBuf {
    base.join(p)
}

impl Cx<'_, '_> {
    /// `server.whoami`: a normalized path under `/.well-known/netwarden/` (RFC 8615),
    /// of plain characters: it is answered before any rule, so it must never
    /// be a path of the console (`/login` would take sign-in away from
    /// everyone).
    fn whoami(&mut self, raw: &S<RawWhoami>) -> Option<String> {
        if raw.value.enabled == Some(false) {
            return None;
        }
        let Some(p) = &raw.value.path else {
            return Some(defaults::WHOAMI_PATH.to_string());
        };
        let v = &p.value;
        let plain = v
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~/".contains(&b));
        let normal = crate::engine::path::normalize(v)
            .ok()
            .is_some_and(|n| n == *v);
        // netwarden's own name under RFC 8615's directory: never a
        // registered one (acme-challenge, openid-configuration).
        let tail = v.strip_prefix("/.well-known/netwarden/").unwrap_or("");
        let ok = plain
            && normal
            && !tail.is_empty()
            && !v.ends_with('/')
            && !v.ends_with('.')
            && !v.contains("//");
        if !ok {
            self.error(
                &p.referenced,
                format!("server.whoami.path '{v}' is not a plain path under /.well-known/netwarden/"),
                Some(format!(
                    "write a path such as {} (letters, digits, '-', '.', '_', '~'; no trailing '/' or '.'): it is answered before any rule, so it must not be one of the console's paths",
                    defaults::WHOAMI_PATH
                )),
            );
            return None;
        }
        Some(p.value.clone())
    }

    pub(super) fn server(&mut self, raw: Option<&S<RawServer>>, base: &Path) -> ServerSettings {
        let Some(raw) = raw else {
            return ServerSettings::default();
        };
        let r = &raw.value;
        let mut out = ServerSettings {
            listen: self.listeners(&r.listen),
            tls_listen: self.listeners(&r.tls_listen),
            ..ServerSettings::default()
        };
        if let Some(tls) = &r.tls {
            out.tls = Some(TlsFiles {
                cert: resolve_path(base, &tls.value.cert.value),
                key: resolve_path(base, &tls.value.key.value),
            });
        }
        if let Some(u) = &r.upstream {
            match parse_upstream(&u.value) {
                Ok(uri) => out.upstream = Some(uri),
                Err(e) => self.error(
                    &u.referenced,
                    e,
                    Some("for example http://127.0.0.1:3000".into()),
                ),
            }
        }
        out.upstream_ca = r.upstream_ca.as_ref().map(|p| resolve_path(base, &p.value));
        out.block_page = r.block_page.as_ref().map(|p| resolve_path(base, &p.value));
        if let Some(a) = &r.admin {
            match a.value.parse::<SocketAddr>() {
                Ok(addr) => out.admin = Some(addr),
                Err(_) => self.error(
                    &a.referenced,
                    format!("'{}' is not an address and port", a.value),
                    Some("for example 127.0.0.1:9901".into()),
                ),
            }
        }
        if let Some(a) = &r.admin_auth
            && let Some(token_env) = self.env_name(&a.value.token_env, "admin_auth.token_env")
        {
            out.admin_auth = Some(AdminAuth {
                token_env,
                metrics: a.value.metrics,
            });
        }
        if let Some(d) = &r.shutdown_delay {
            match parse_duration(&d.value) {
                Ok(v) if v > Duration::from_secs(60) => {
                    out.shutdown_delay = v;
                    self.warn(
                        &d.referenced,
                        format!("shutdown_delay {} keeps a stopping netwarden serving for over a minute", d.value),
                        Some("a few seconds is enough for endpoints to be removed; Kubernetes kills the Pod after terminationGracePeriodSeconds (30 s by default) anyway".into()),
                    );
                }
                Ok(v) => out.shutdown_delay = v,
                Err(e) => self.error(
                    &d.referenced,
                    e,
                    Some("write durations like 5s; 0s drains at once".into()),
                ),
            }
        }
        let t = &r.timeouts;
        let mut dur = |v: &Option<S<String>>, default: Duration| self.duration(v.as_ref(), default);
        out.timeouts = Timeouts {
            header_read: dur(&t.header_read, defaults::HEADER_READ),
            idle: dur(&t.idle, defaults::IDLE),
            upstream_connect: dur(&t.upstream_connect, defaults::UPSTREAM_CONNECT),
            upstream_response: dur(&t.upstream_response, defaults::UPSTREAM_RESPONSE),
            drain: dur(&t.drain, defaults::DRAIN),
            tunnel_idle: dur(&t.tunnel_idle, defaults::TUNNEL_IDLE),
            upstream_idle: dur(&t.upstream_idle, defaults::UPSTREAM_IDLE),
            send: dur(&t.send, defaults::SEND),
            body_read: dur(&t.body_read, defaults::BODY_READ),
            body_min_rate: defaults::BODY_MIN_RATE,
        };
        if let Some(rate) = &t.body_min_rate {
            out.timeouts.body_min_rate = rate.value;
        }
        if let Some(reload) = &r.reload {
            out.reload.watch = reload.watch.unwrap_or(true);
            out.reload.interval = dur(&reload.interval, defaults::RELOAD_INTERVAL);
            out.reload.guard = match reload.guard.as_ref().map(|g| g.value) {
                None | Some(RawGuard::Refuse) => Guard::Refuse,
                Some(RawGuard::Warn) => Guard::Warn,
                Some(RawGuard::Off) => Guard::Off,
            };
        }

        if let Some(list) = &r.upgrades {
            out.upgrades = self.upgrades(list);
        }
        if let Some(w) = &r.whoami {
            out.whoami = self.whoami(w);
        }

        let l = &r.limits;
        // hyper's HTTP/1 read buffer cannot be smaller than 8 KiB.
        let mut lim = |v: &Option<S<u64>>, name: &str, min: u64, max: u64, default: usize| {
            self.limit(v.as_ref(), name, min, max, default)
        };
        let upstream_connections = lim(
            &l.upstream_connections,
            "upstream_connections",
            1,
            u64::MAX,
            defaults::UPSTREAM_CONNECTIONS,
        );
        let public_default = (upstream_connections / defaults::UPSTREAM_PUBLIC_DIVISOR).max(1);
        out.limits = Limits {
            max_header_bytes: lim(
                &l.max_header_bytes,
                "max_header_bytes",
                8192,
                1024 * 1024,
                defaults::MAX_HEADER_BYTES,
            ),
            max_connections: lim(
                &l.max_connections,
                "max_connections",
                1,
                u64::MAX,
                defaults::MAX_CONNECTIONS,
            ),
            upstream_connections,
            // More idle than may be open means all of them.
            upstream_keepalive: lim(
                &l.upstream_keepalive,
                "upstream_keepalive",
                1,
                u64::MAX,
                defaults::UPSTREAM_KEEPALIVE,
            )
            .min(upstream_connections),
            max_connections_per_address: lim(
                &l.max_connections_per_address,
                "max_connections_per_address",
                1,
                u64::MAX,
                defaults::MAX_CONNECTIONS_PER_ADDRESS,
            ),
            upstream_requests_per_address: lim(
                &l.upstream_requests_per_address,
                "upstream_requests_per_address",
                1,
                u64::MAX,
                defaults::UPSTREAM_REQUESTS_PER_ADDRESS,
            ),
            max_streams: u32::try_from(lim(
                &l.max_streams,
                "max_streams",
                1,
                10_000,
                defaults::MAX_STREAMS as usize,
            ))
            .unwrap_or(defaults::MAX_STREAMS),
            upstream_requests_public: lim(
                &l.upstream_requests_public,
                "upstream_requests_public",
                1,
                u64::MAX,
                public_default,
            ),
            response_buffer: lim(
                &l.response_buffer,
                "response_buffer",
                0,
                16 * 1024 * 1024,
                defaults::RESPONSE_BUFFER,
            ),
            response_buffers: lim(
                &l.response_buffers,
                "response_buffers",
                0,
                u64::MAX,
                defaults::RESPONSE_BUFFERS,
            ),
        };
        // One connection's streams must fit in its address's share: a
        // browser's 100 parallel requests are one person's (issue 22).
        let streams = out.limits.max_streams as usize;
        if out.limits.upstream_requests_per_address < streams {
            if let Some(v) = &l.upstream_requests_per_address {
                self.warn(
                    &v.referenced,
                    format!(
                        "upstream_requests_per_address {} is less than max_streams {streams}: one HTTP/2 connection may ask for more; {streams} is used",
                        out.limits.upstream_requests_per_address
                    ),
                    Some(format!("set it to {streams} or more, or lower max_streams")),
                );
            }
            out.limits.upstream_requests_per_address = streams;
        }
        if out.limits.upstream_requests_public >= out.limits.upstream_connections
            && let Some(v) = &l.upstream_requests_public
        {
            self.warn(
                    &v.referenced,
                    format!(
                        "upstream_requests_public {} leaves the operators' networks no connections of their own (upstream_connections is {})",
                        out.limits.upstream_requests_public, out.limits.upstream_connections
                    ),
                    Some(format!(
                        "leave it out for a quarter of upstream_connections ({public_default})"
                    )),
                );
        }
        if let Some(l) = &r.log_allowed {
            match l.value.as_str() {
                "info" => out.log_allowed = AllowedLogLevel::Info,
                "debug" => out.log_allowed = AllowedLogLevel::Debug,
                other => self.error(
                    &l.referenced,
                    format!("log_allowed '{other}' is not a level"),
                    Some(
                        "use info (log every allowed request) or debug (only when debugging)"
                            .into(),
                    ),
                ),
            }
        }
        out
    }

    /// A count within `min..=max`; `default` when absent or out of range
    /// (which is reported, with the range).
    fn limit(
        &mut self,
        v: Option<&S<u64>>,
        name: &str,
        min: u64,
        max: u64,
        default: usize,
    ) -> usize {
        let Some(m) = v else { return default };
        if m.value < min || m.value > max {
            let msg = if max == u64::MAX {
                format!("{name} must be at least {min}")
            } else {
                format!("{name} must be between {min} and {max}")
            };
            self.error(
                &m.referenced,
                msg,
                Some(format!("leave {name} out for its default ({default})")),
            );
            return default;
        }
        usize::try_from(m.value).unwrap_or(usize::MAX)
    }

    /// A positive duration written as people write them; `default` when
    /// absent or wrong (a wrong one is reported).
    pub(super) fn duration(&mut self, v: Option<&S<String>>, default: Duration) -> Duration {
        let Some(s) = v else { return default };
        match parse_duration(&s.value) {
            Ok(d) if !d.is_zero() => d,
            Ok(_) => {
                self.error(
                    &s.referenced,
                    "a duration of zero".into(),
                    Some("give a positive duration".into()),
                );
                default
            }
            Err(e) => {
                self.error(
                    &s.referenced,
                    e,
                    Some("write durations like 500ms, 30s, 5m, 1h or 7d".into()),
                );
                default
            }
        }
    }

    fn upgrades(&mut self, raw: &[S<String>]) -> Upgrades {
        let mut out: Vec<Box<str>> = Vec::with_capacity(raw.len());
        for p in raw {
            let name = p.value.trim().to_ascii_lowercase();
            // RFC 9110 §7.8: protocol-name is a token.
            let token = !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
            if name == "h2c" {
                self.error(
                    &p.referenced,
                    "server.upgrades: 'h2c' can never be enabled".into(),
                    Some(
                        "an h2c upgrade turns the connection into HTTP/2 straight to the console, whose requests netwarden would never decide or log; remove it (clients get HTTP/2 from netwarden over TLS)"
                            .into(),
                    ),
                );
            } else if !token || name.contains('/') {
                self.error(
                    &p.referenced,
                    format!("server.upgrades: '{}' is not a protocol name", p.value),
                    Some(
                        "write protocol names as clients send them in Upgrade, e.g. websocket"
                            .into(),
                    ),
                );
            } else if !out.iter().any(|o| **o == *name) {
                out.push(name.into_boxed_str());
            }
        }
        Upgrades(out)
    }

    fn listeners(&mut self, raw: &[S<RawListener>]) -> Vec<Listener> {
        let mut out = Vec::with_capacity(raw.len());
        for l in raw {
            let a = &l.value.address;
            match a.value.parse::<SocketAddr>() {
                Ok(addr) => out.push(Listener {
                    addr,
                    proxy_protocol: l.value.proxy_protocol,
                }),
                Err(_) => self.error(
                    &a.referenced,
                    format!("'{}' is not an address and port", a.value),
                    Some("for example 0.0.0.0:8080 or \"[::]:8080\"".into()),
                ),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_as_people_write_them() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        for bad in ["", "30", "s", "5 m", "10x", "-1s", "1.5s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn upgrades_match_the_protocol_name_without_case_or_version() {
        let u = Upgrades::default();
        assert!(u.allows(b"websocket"));
        assert!(u.allows(b"WebSocket/13"));
        assert!(!u.allows(b"h2c"));
        assert!(!u.allows(b"websockets"));
        assert!(!u.allows(b""));
        assert!(!Upgrades(Vec::new()).allows(b"websocket"));
    }

    #[test]
    fn upstream_urls() {
        assert!(parse_upstream("http://127.0.0.1:3000").is_ok());
        assert!(parse_upstream("https://console.internal").is_ok());
        assert!(parse_upstream("h2c://127.0.0.1:3000").is_ok());
        assert!(parse_upstream("ftp://x").is_err());
        assert!(parse_upstream("127.0.0.1:3000").is_err());
        assert!(parse_upstream("http://127.0.0.1:3000/app").is_err());
    }
}
