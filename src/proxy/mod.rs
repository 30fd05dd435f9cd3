//! `netwarden serve`: the guard proxy.
//!
//! A connection's path: [`listener`] accepts it (PROXY header, TLS) and
//! hands it to a worker thread, hyper parses requests, [`service::handle`]
//! runs each request's phases (decide with the engine, then [`forward`]
//! through the worker's own upstream [`pool`] or answer with a [`pages`]
//! page, then log, then hand a blocked login to the alerts), and [`admin`]
//! answers health probes and metrics. [`serve`] wires them up, and on
//! SIGTERM or SIGINT stops accepting, drains, and flushes pending alerts.

pub mod admin;
pub mod admission;
pub mod blocked;
pub mod body;
pub mod conn_table;
pub mod conn_watch;
pub mod console_health;
pub mod diagnosis;
pub mod dns;
pub mod expiry;
pub mod feeds;
pub mod forward;
pub mod listener;
pub mod memory;
pub mod pages;
pub mod pool;
pub mod proxy_protocol;
pub mod recent;
pub mod reload;
pub mod service;
pub mod sign_in;
pub mod tunnel;
pub mod whoami;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use arc_swap::ArcSwap;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, mpsc, watch};

use crate::policy::Policy;
use crate::policy::server::{Listener, TlsFiles, defaults, parse_upstream};
use crate::tls;

/// Settings from flags and `NETWARDEN_*` variables; each replaces the
/// policy's `server:` value when given.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    pub listen: Vec<SocketAddr>,
    pub tls_listen: Vec<SocketAddr>,
    pub proxy_protocol: bool,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub upstream: Option<String>,
    pub upstream_ca: Option<PathBuf>,
    pub admin: Option<SocketAddr>,
    /// Values for variables that alert sinks and `admin_auth` name, looked
    /// up before the process environment (the demo's built-in alert receiver).
    pub alert_env: Vec<(String, String)>,
    /// Worker threads; default: one per CPU (as nginx's `worker_processes auto`).
    pub workers: Option<usize>,
    /// Sockets bound before `serve` (the demo binds its port before it
    /// prints the address): a listener at one of their addresses is served
    /// from it, with no second bind that another process could race.
    pub prebound: Vec<Arc<std::net::TcpListener>>,
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("no listener: give --listen or --tls-listen, or server.listen in the policy")]
    NoListener,
    #[error("no upstream: give --upstream URL, or server.upstream in the policy")]
    NoUpstream,
    #[error("upstream: {0}")]
    BadUpstream(String),
    #[error("TLS listeners need a certificate and key: give --cert and --key, or server.tls")]
    NoCertificate,
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error(transparent)]
    AdminToken(#[from] admin::TokenError),
    #[error("cannot start a worker thread: {0}")]
    Worker(std::io::Error),
    #[error("lockout state: {0}")]
    StateStore(#[from] crate::lockout::redis::SetupError),
    #[error("lockout.account_key_env: {0}")]
    AccountKey(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// Resolved listener set, in the order they are bound.
struct Plan {
    listeners: Vec<(Listener, bool)>,
    tls: Option<TlsFiles>,
    upstream: forward::Upstream,
    admin: SocketAddr,
}

/// Logs each policy setting that a flag or `NETWARDEN_*` variable replaces
/// with another value (`setting_overridden`): an image's or a unit file's
/// variable must never silently win over the policy an operator edits.
fn log_overrides(s: &crate::policy::server::ServerSettings, o: &Overrides) {
    fn list(v: &[SocketAddr]) -> String {
        v.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    }
    let addrs = |l: &[Listener]| l.iter().map(|l| l.addr).collect::<Vec<_>>();
    let path = |p: &std::path::Path| p.display().to_string();
    let mut pairs: Vec<(&str, Option<String>, Option<String>)> = vec![
        (
            "server.listen",
            (!s.listen.is_empty()).then(|| list(&addrs(&s.listen))),
            (!o.listen.is_empty()).then(|| list(&o.listen)),
        ),
        (
            "server.tls_listen",
            (!s.tls_listen.is_empty()).then(|| list(&addrs(&s.tls_listen))),
            (!o.tls_listen.is_empty()).then(|| list(&o.tls_listen)),
        ),
        (
            "server.upstream",
            s.upstream.as_ref().map(ToString::to_string),
            o.upstream.clone(),
        ),
        (
            "server.upstream_ca",
            s.upstream_ca.as_deref().map(path),
            o.upstream_ca.as_deref().map(path),
        ),
        (
            "server.admin",
            s.admin.map(|a| a.to_string()),
            o.admin.map(|a| a.to_string()),
        ),
    ];
    if let Some(t) = &s.tls {
        pairs.push((
            "server.tls.cert",
            Some(path(&t.cert)),
            o.cert.as_deref().map(path),
        ));
        pairs.push((
            "server.tls.key",
            Some(path(&t.key)),
            o.key.as_deref().map(path),
        ));
    }
    for (setting, policy, by) in pairs {
        // A trailing slash on an upstream URL is the same URL.
        if let (Some(p), Some(b)) = (policy, by)
            && p.trim_end_matches('/') != b.trim_end_matches('/')
        {
            tracing::warn!(
                event = "setting_overridden",
                setting,
                policy = %p,
                value = %b,
                "a flag or NETWARDEN_* variable overrides the policy"
            );
        }
    }
}

fn plan(policy: &Policy, o: &Overrides) -> Result<Plan, ServeError> {
    let s = policy.server();
    log_overrides(s, o);
    // Flags replace the policy's list; their listeners share --proxy-protocol.
    let pick = |flags: &[SocketAddr], config: &[Listener]| -> Vec<Listener> {
        if flags.is_empty() {
            return config.to_vec();
        }
        flags
            .iter()
            .map(|&addr| Listener {
                addr,
                proxy_protocol: o.proxy_protocol,
            })
            .collect()
    };
    let listen = pick(&o.listen, &s.listen);
    let tls_listen = pick(&o.tls_listen, &s.tls_listen);
    if listen.is_empty() && tls_listen.is_empty() {
        return Err(ServeError::NoListener);
    }
    let tls = match (&o.cert, &o.key, &s.tls) {
        (Some(cert), Some(key), _) => Some(TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
        }),
        (None, None, files) => files.clone(),
        _ => return Err(ServeError::NoCertificate),
    };
    if !tls_listen.is_empty() && tls.is_none() {
        return Err(ServeError::NoCertificate);
    }
    let upstream = match &o.upstream {
        Some(u) => parse_upstream(u).map_err(ServeError::BadUpstream)?,
        None => s.upstream.clone().ok_or(ServeError::NoUpstream)?,
    };
    let upstream = forward::Upstream::from_uri(&upstream).ok_or(ServeError::NoUpstream)?;
    // PANIC SAFETY: the default is a literal socket address.
    let default_admin: SocketAddr = defaults::ADMIN
        .parse()
        .expect("valid default admin address");
    Ok(Plan {
        listeners: listen
            .into_iter()
            .map(|l| (l, false))
            .chain(tls_listen.into_iter().map(|l| (l, true)))
            .collect(),
        tls,
        upstream,
        admin: o.admin.or(s.admin).unwrap_or(default_admin),
    })
}

async fn bind(
    addr: SocketAddr,
    prebound: &[Arc<std::net::TcpListener>],
) -> Result<TcpListener, ServeError> {
    let err = |source| ServeError::Bind { addr, source };
    match prebound
        .iter()
        .find(|l| l.local_addr().is_ok_and(|a| a == addr))
    {
        Some(l) => {
            let l = l.try_clone().map_err(err)?;
            l.set_nonblocking(true).map_err(err)?;
            TcpListener::from_std(l).map_err(err)
        }
        None => TcpListener::bind(addr).await.map_err(err),
    }
}

/// The lockout state: the account hash key (from the variable the policy
/// names, or random with a warning), and the Redis store if the policy
/// asks for one (its URL variable must be set: fail closed).
fn lockout(
    policy: &Policy,
    o: &Overrides,
    upstream_timeout: std::time::Duration,
    metrics: &Arc<crate::telemetry::metrics::Metrics>,
    watch: &Arc<StoreWatch>,
) -> Result<crate::lockout::Lockout, ServeError> {
    let env = |name: &str| crate::alerts::lookup(&o.alert_env, name);
    let key_env = policy.lockout().and_then(|l| l.account_key_env.clone());
    let value = key_env.as_deref().and_then(env);
    let accounts = crate::lockout::Accounts::new(key_env.as_deref().map(|n| (n, value.as_deref())))
        .map_err(ServeError::AccountKey)?;
    let shared_store = matches!(policy.state(), crate::policy::state::Settings::Redis(_));
    let reads_accounts = policy.rules().iter().any(|r| r.account.is_some());
    if reads_accounts && accounts.source == crate::lockout::AccountKeySource::Random {
        let why = match &key_env {
            Some(name) => format!("{name} is not set"),
            None => "lockout.account_key_env is not set".into(),
        };
        tracing::warn!(
            event = "account_key_random",
            shared_store,
            "{why}: account names are hashed with a random key made at startup, so account keys {} and restart with nothing counted",
            if shared_store {
                "differ between replicas (each counts alone in Redis)"
            } else {
                "are this process's only"
            }
        );
    }
    let redis = match policy.state() {
        crate::policy::state::Settings::Memory => None,
        crate::policy::state::Settings::Redis(r) => {
            let url = env(&r.url_env);
            let m = metrics.clone();
            let on_error = r.on_store_error.as_str();
            let watch = watch.clone();
            Some(crate::lockout::redis::Store::start(
                r,
                url.as_deref(),
                upstream_timeout,
                Box::new(move |h| state_store_health(&m, &watch, h, on_error)),
            )?)
        }
    };
    Ok(crate::lockout::Lockout::new(redis, accounts))
}

/// Alerts that the lockout store is down, through the running alerts: at
/// most one per [`STORE_ALERT_EVERY`], and the one from before the alerts
/// were running (a Redis down at startup) once they are.
#[derive(Default)]
struct StoreWatch {
    shared: std::sync::OnceLock<std::sync::Weak<service::Shared>>,
    pending: std::sync::Mutex<Option<crate::alerts::StoreDown>>,
    last: std::sync::atomic::AtomicU64,
    /// A down alert went out and no "answers again" yet.
    down_alerted: std::sync::atomic::AtomicBool,
}

/// A flapping Redis is one alert per five minutes, not one per flap.
const STORE_ALERT_EVERY: u64 = 300;

impl StoreWatch {
    fn alert(&self, d: crate::alerts::StoreDown) {
        let Some(shared) = self.shared.get().and_then(std::sync::Weak::upgrade) else {
            *self.pending.lock().unwrap_or_else(|e| e.into_inner()) = Some(d);
            return;
        };
        let now =
            d.at.duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |t| t.as_secs());
        let last = self.last.load(std::sync::atomic::Ordering::Relaxed);
        if last != 0 && now < last + STORE_ALERT_EVERY {
            return;
        }
        self.last
            .store(now.max(1), std::sync::atomic::Ordering::Relaxed);
        if let Some(alerts) = shared.alerts.current() {
            alerts.state_store(d);
            self.down_alerted
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// The store answers again: said once after each down alert, so a
    /// pager's incident resolves (one pending from before the alerts ran
    /// is dropped: the store is up).
    fn restored(&self) {
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if !self
            .down_alerted
            .swap(false, std::sync::atomic::Ordering::Relaxed)
        {
            return;
        }
        if let Some(alerts) = self
            .shared
            .get()
            .and_then(std::sync::Weak::upgrade)
            .and_then(|s| s.alerts.current())
        {
            alerts.state_store_restored(std::time::SystemTime::now());
        }
    }

    fn attach(&self, shared: &Arc<service::Shared>) {
        let _ = self.shared.set(Arc::downgrade(shared));
        let pending = self
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(d) = pending {
            self.alert(d);
        }
    }
}

/// Says a change of the lockout store's health: a log line, the gauge and,
/// when it goes down, an alert.
fn state_store_health(
    metrics: &crate::telemetry::metrics::Metrics,
    watch: &StoreWatch,
    h: crate::lockout::redis::Health<'_>,
    on_error: &'static str,
) {
    match h {
        crate::lockout::redis::Health::Up { again } => {
            metrics.state_store_up.set(1);
            if again {
                watch.restored();
            }
            tracing::info!(
                event = if again {
                    "state_store_restored"
                } else {
                    "state_store_connected"
                },
                "the lockout store (Redis) answers: lockout state is shared"
            );
        }
        crate::lockout::redis::Health::Down { error } => {
            metrics.state_store_up.set(0);
            metrics.state_store_unavailable.inc();
            tracing::warn!(
                event = "state_store_unavailable",
                error,
                on_store_error = on_error,
                "the lockout store (Redis) cannot be reached; sign-ins use state.on_store_error until it answers again"
            );
            watch.alert(crate::alerts::StoreDown {
                at: std::time::SystemTime::now(),
                error: error.to_string(),
                on_store_error: on_error,
            });
        }
    }
}

/// Runs the proxy until SIGTERM or SIGINT, then drains. Every startup
/// problem is an error before anything listens: fail closed.
pub async fn serve(policy: Policy, o: Overrides) -> Result<(), ServeError> {
    let plan = plan(&policy, &o)?;
    let settings = policy.server().clone();
    let tls = match (&plan.tls, plan.listeners.iter().any(|(_, tls)| *tls)) {
        (Some(files), true) => Some(Arc::new(tls::ServerTls::load(&files.cert, &files.key)?)),
        _ => None,
    };
    let upstream_ca = o.upstream_ca.clone().or(settings.upstream_ca.clone());
    let client_tls = tls::client_config(upstream_ca.as_deref())?;
    // Secrets are read now: a sink that cannot work stops startup.
    let metrics = Arc::new(crate::telemetry::metrics::Metrics::default());
    let store_watch = Arc::new(StoreWatch::default());
    let lockout = lockout(
        &policy,
        &o,
        settings.timeouts.upstream_response,
        &metrics,
        &store_watch,
    )?;
    let digest = crate::alerts::DigestSource::default();
    let alerts = policy.alerts().map(|a| {
        crate::alerts::launch(
            a,
            &o.alert_env,
            metrics.clone(),
            lockout.redis.clone(),
            digest.clone(),
        )
    });
    let admin_token = match &settings.admin_auth {
        Some(auth) => Some(Arc::new(admin::Token::resolve(auth, |name| {
            o.alert_env
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .or_else(|| std::env::var(name).ok())
        })?)),
        None => None,
    };
    let (workers, stop_workers) = start_workers(
        o.workers,
        &plan.upstream,
        client_tls,
        settings.timeouts,
        settings.limits.upstream_connections,
        settings.limits.upstream_keepalive,
        &metrics.upstream_parked_connections,
    )?;
    let shared = Arc::new(service::Shared {
        policy: ArcSwap::from_pointee(policy),
        upstream: plan.upstream.clone(),
        timeouts: settings.timeouts,
        log_allowed: settings.log_allowed,
        ids: service::RequestIds::default(),
        metrics,
        alerts: crate::alerts::Live::new(alerts, digest),
        admission: Arc::new(admission::Admission::new(
            settings.limits.upstream_requests_per_address,
            settings.limits.upstream_requests_public,
        )),
        response_buffer: settings.limits.response_buffer,
        response_buffers: settings.limits.response_buffers,
        blocked: blocked::Ring::default(),
        releases: blocked::Releases::default(),
        lockout,
        recent: recent::Recent::new(recent::WINDOW),
        client_ip_watch: diagnosis::ClientIpWatch::default(),
        console: console_health::ConsoleHealth::default(),
        listeners: std::sync::OnceLock::new(),
        feeds: feeds::Board::default(),
        identity: crate::identity::Registry::default(),
    });
    shared.metrics.policy_loaded(1, &shared.policy.load());
    // The identity provider's keys, before the first sign-in needs them.
    if let Some(settings) = shared.policy.load().identity().cloned() {
        let shared = shared.clone();
        tokio::spawn(async move { shared.identity.prime(&settings).await });
    }
    store_watch.attach(&shared);

    // Bind everything first: an address in use stops startup before any
    // listener serves.
    let mut bound = Vec::with_capacity(plan.listeners.len());
    for (l, is_tls) in &plan.listeners {
        bound.push((bind(l.addr, &o.prebound).await?, l.proxy_protocol, *is_tls));
    }
    let admin_listener = bind(plan.admin, &o.prebound).await?;

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let (alive_tx, mut alive_rx) = mpsc::channel::<()>(1);
    let health = Arc::new(admin::Health::default());
    fd_budget(&settings.limits);
    let connections = Arc::new(Semaphore::new(settings.limits.max_connections));
    let table = Arc::new(conn_table::ConnTable::new(
        settings.limits.max_connections_per_address,
    ));
    let upstream_text = plan.upstream.url();
    let mut listening = Vec::with_capacity(bound.len() + 1);
    for (listener, proxy_protocol, is_tls) in bound {
        let local = listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        listening.push((
            if is_tls { "https" } else { "http" },
            local.clone(),
            proxy_protocol,
        ));
        tracing::info!(
            event = "listening",
            role = if is_tls { "https" } else { "http" },
            address = %local,
            proxy_protocol,
            upstream = %upstream_text,
            "listening"
        );
        let l = listener::Listening {
            shared: shared.clone(),
            workers: workers.clone(),
            tls: if is_tls { tls.clone() } else { None },
            proxy_protocol,
            timeouts: settings.timeouts,
            limits: settings.limits,
            connections: connections.clone(),
            shutdown: shutdown_rx.clone(),
            alive: alive_tx.clone(),
            table: table.clone(),
            http: Arc::new(listener::http_builders(&settings.limits)),
        };
        tokio::spawn(listener::accept_loop(listener, l));
    }
    drop(alive_tx);
    let admin_local = admin_listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    tracing::info!(event = "listening", role = "admin", address = %admin_local, "listening");
    listening.push(("admin", admin_local, false));
    let _ = shared.listeners.set(listening);
    let policy_path = shared.policy.load().source().to_path_buf();
    let sha = shared.policy.load().fingerprint().to_string();
    let reloader = Arc::new(reload::Reloader::new(
        policy_path,
        shared.clone(),
        sha,
        tls.clone(),
        o.alert_env.clone(),
    ));
    let weak = Arc::downgrade(&reloader);
    shared.alerts.set_extras(Box::new(move || {
        weak.upgrade()
            .map(|r| r.digest_extras())
            .unwrap_or_default()
    }));
    tokio::spawn(feeds::supervise(reloader.clone(), shutdown_rx.clone()));
    if settings.reload.watch {
        tokio::spawn(reload::watch(
            reloader.clone(),
            settings.reload.interval,
            shutdown_rx.clone(),
        ));
    }
    let (admin_stop_tx, admin_stop_rx) = watch::channel(false);
    let admin_task = tokio::spawn(admin::serve(
        admin_listener,
        health.clone(),
        reloader.clone(),
        admin_token,
        admin_stop_rx,
    ));
    tokio::spawn(watch_geoip(shared.clone(), shutdown_rx.clone()));
    tokio::spawn(expiry::watch(shared.clone(), shutdown_rx.clone()));
    health.ready.store(true, Ordering::Release);

    let signal = wait_for_signal(&reloader).await;
    health.ready.store(false, Ordering::Release);
    // SIGTERM is the orchestrator's: keep serving while it takes the Pod
    // out of its endpoints. SIGINT (a person's Ctrl-C) drains at once.
    let delay = if signal == "SIGTERM" {
        settings.shutdown_delay
    } else {
        std::time::Duration::ZERO
    };
    tracing::info!(
        event = "shutdown",
        signal,
        delay_seconds = delay.as_secs_f64(),
        drain_seconds = settings.timeouts.drain.as_secs_f64(),
        "not ready; draining after the shutdown delay"
    );
    if !delay.is_zero() {
        // A second signal ends the wait.
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = second_signal() => {
                tracing::info!(event = "shutdown_delay_skipped", "a second signal: draining now");
            }
        }
    }
    let _ = shutdown_tx.send(true);
    // Every connection holds a sender; recv() returns None once all are gone.
    let drained = tokio::time::timeout(settings.timeouts.drain, alive_rx.recv())
        .await
        .is_ok();
    if let Some(tasks) = shared.alerts.replace(None) {
        // After the drain: the last requests' attempts are in the queue.
        tasks.shutdown().await;
    }
    tracing::info!(event = "stopped", drained, "stopped");
    let _ = admin_stop_tx.send(true);
    let _ = admin_task.await;
    let _ = stop_workers.send(true);
    Ok(())
}

/// Worker `i`'s share of `bound` connections among `n` workers: the shares
/// add up to exactly `bound` (the first `bound % n` workers get one more),
/// except that every worker gets at least one, so that the total is
/// `max(bound, n)`.
fn worker_share(bound: usize, n: usize, i: usize) -> usize {
    let n = n.max(1);
    (bound / n + usize::from(i < bound % n)).max(1)
}

/// Raises the soft limit on open files to the hard limit, as nginx's
/// `worker_rlimit_nofile` and Envoy's launchers do: the default soft limit
/// (often 1024) is below `max_connections`. Warns when client connections
/// and upstream connections (and a margin for logs, databases, the admin
/// listener) cannot fit even so.
fn fd_budget(limits: &crate::policy::server::Limits) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct it is given, nothing else.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return;
    }
    if lim.rlim_cur < lim.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: setrlimit reads the struct it is given, nothing else.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            lim = raised;
        }
    }
    const MARGIN: u64 = 64;
    let need = (limits.max_connections as u64)
        .saturating_add(limits.upstream_connections as u64)
        .saturating_add(MARGIN);
    let have: u64 = lim.rlim_cur;
    if need > have {
        tracing::warn!(
            event = "fd_limit_low",
            open_files_limit = have,
            needed = need,
            "max_connections plus upstream_connections do not fit the open-file limit; raise the hard limit (ulimit -Hn, LimitNOFILE=) or lower limits.max_connections"
        );
    }
}

/// Starts one worker thread per CPU, each with a single-threaded runtime
/// and its own upstream connection pool (see [`listener::Worker`]). They
/// stop when the returned sender says so.
fn start_workers(
    workers: Option<usize>,
    upstream: &forward::Upstream,
    tls: rustls::ClientConfig,
    timeouts: crate::policy::server::Timeouts,
    upstream_connections: usize,
    upstream_keepalive: usize,
    parked: &prometheus_client::metrics::gauge::Gauge,
) -> Result<(Arc<[listener::Worker]>, watch::Sender<bool>), ServeError> {
    let n = workers
        .filter(|&n| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut workers = Vec::with_capacity(n);
    for i in 0..n {
        let per_worker = worker_share(upstream_connections, n, i);
        let idle_per_worker = worker_share(upstream_keepalive, n, i);
        let (tx, rx) = std::sync::mpsc::channel();
        let tls = tls.clone();
        let parked = parked.clone();
        let upstream = upstream.clone();
        let mut stop = stop_rx.clone();
        std::thread::Builder::new()
            .name(format!("netwarden-worker-{i}"))
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return;
                    }
                };
                let client = forward::UpstreamClient::new(
                    &upstream,
                    tls,
                    &timeouts,
                    per_worker,
                    idle_per_worker,
                    parked,
                );
                let _ = tx.send(Ok(listener::Worker {
                    handle: rt.handle().clone(),
                    client,
                }));
                // Drives this thread's connections until told to stop.
                rt.block_on(async move {
                    let _giveback = tokio::spawn(memory::give_back());
                    while !*stop.borrow() {
                        if stop.changed().await.is_err() {
                            break;
                        }
                    }
                });
            })
            .map_err(ServeError::Worker)?;
        match rx.recv() {
            Ok(Ok(w)) => workers.push(w),
            Ok(Err(e)) => return Err(ServeError::Worker(e)),
            Err(_) => {
                return Err(ServeError::Worker(std::io::Error::other(
                    "worker thread died",
                )));
            }
        }
    }
    Ok((workers.into(), stop_tx))
}

/// Swaps in GeoIP databases that updaters replaced (geoipupdate writes a
/// new file and renames it over the old one). A new file is opened and
/// verified off the request path; a bad one is logged and the old one stays
/// in use. In-flight lookups keep the database they started with.
async fn watch_geoip(shared: Arc<service::Shared>, mut shutdown: watch::Receiver<bool>) {
    use crate::geo::DbKind;
    let kinds = [
        DbKind::Country,
        DbKind::Asn,
        DbKind::ConnectionType,
        DbKind::AnonymousIp,
    ];
    let mut stamps: std::collections::HashMap<(PathBuf, &'static str), _> =
        std::collections::HashMap::new();
    loop {
        let policy = shared.policy.load_full();
        let interval = policy.geo().check_interval;
        for kind in kinds {
            let Some(slot) = policy.geo().get(kind) else {
                continue;
            };
            let key = (slot.current().path().to_path_buf(), kind.name());
            let p = policy.clone();
            let stamp = tokio::task::spawn_blocking(move || {
                p.geo()
                    .get(kind)
                    .and_then(|s| crate::files::file_stamp(s.current().path()))
            })
            .await
            .ok()
            .flatten();
            let Some(stamp) = stamp else { continue };
            match stamps.insert(key.clone(), stamp) {
                None => {}
                Some(old) if old == stamp => {}
                Some(_) => {
                    let p = policy.clone();
                    let result =
                        tokio::task::spawn_blocking(move || p.geo().get(kind).map(|s| s.reload()))
                            .await;
                    let path = key.0.display().to_string();
                    match result {
                        Ok(Some(Ok(()))) => {
                            shared.metrics.policy_loaded_geo(&policy);
                            let db = slot.current();
                            tracing::info!(
                                event = "geoip_reloaded",
                                database = kind.name(),
                                path = %path,
                                database_type = db.database_type(),
                                build_epoch = db.build_epoch(),
                                "GeoIP database replaced"
                            );
                        }
                        Ok(Some(Err(e))) => tracing::warn!(
                            event = "geoip_reload_failed",
                            database = kind.name(),
                            path = %path,
                            detail = %e,
                            "new GeoIP database refused; the previous one stays in use"
                        ),
                        _ => {}
                    }
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// Waits for SIGTERM or SIGINT; reloads the policy on each SIGHUP meanwhile.
/// SIGTERM or SIGINT again, during the shutdown delay.
async fn second_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => std::future::pending().await,
    }
}

async fn wait_for_signal(reloader: &reload::Reloader) -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) {
        (Ok(mut term), Ok(mut int), Ok(mut hup)) => loop {
            tokio::select! {
                _ = term.recv() => return "SIGTERM",
                _ = int.recv() => return "SIGINT",
                _ = hup.recv() => {
                    reloader.reload("SIGHUP", false).await;
                }
            }
        },
        _ => {
            let _ = tokio::signal::ctrl_c().await;
            "SIGINT"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::worker_share;

    #[test]
    fn worker_shares_add_up_to_the_bound() {
        for (bound, n) in [(1024, 2), (5, 2), (3, 2), (7, 3), (100, 16), (1, 1)] {
            let total: usize = (0..n).map(|i| worker_share(bound, n, i)).sum();
            assert_eq!(total, bound, "{bound} over {n}");
        }
        // Fewer connections than workers: one each, at least.
        let total: usize = (0..16).map(|i| worker_share(4, 16, i)).sum();
        assert_eq!(total, 16);
    }
}
