//! Alerts on blocked login attempts, off the request path.
//!
//! A request that is a blocked login hands an [`Attempt`] to
//! [`Alerts::notify`], which never waits: a full queue drops the attempt
//! and counts it. One task aggregates attempts into alerts
//! ([`aggregate`]: first attempt at once, a summary per key and window, a
//! storm summary past the global cap) and hands each alert to every sink's
//! own bounded queue. One task per sink renders ([`payload`]) and delivers
//! ([`deliver`]) with a timeout per call and bounded retries, so a sink
//! that hangs delays only its own alerts. On shutdown, pending counts are
//! flushed as summaries and the queues get a bounded time to drain.

pub mod aggregate;
pub mod claims;
pub mod deliver;
pub mod digest;
pub mod formats;
pub mod line_works;
pub mod mail;
pub mod message;
pub mod pagerduty;
pub mod payload;

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::geo::Facts;
use crate::policy::alerts::AlertSettings;
use crate::telemetry::metrics::{DeliveryLabels, KindLabels, Metrics, Name};
use aggregate::{Aggregator, Scope};
pub use deliver::{AlertError, Sink};

/// One blocked login attempt: what an alert may say of it. Never cookies,
/// credentials, query strings, bodies or form fields.
#[derive(Clone, Debug)]
pub struct Attempt {
    pub at: SystemTime,
    /// The client address as decided; `None` when it could not be resolved.
    pub client: Option<IpAddr>,
    /// `peer`, `header`, `given` or `unknown`.
    pub client_source: &'static str,
    /// How the address was derived, in words.
    pub derivation: String,
    /// The TCP peer (or PROXY protocol source).
    pub peer: IpAddr,
    pub facts: Option<Facts>,
    pub rule: Arc<str>,
    pub method: String,
    pub host: String,
    /// The normalized path, never the query.
    pub path: String,
    pub user_agent: String,
    pub request_id: String,
    /// `false`: a report-only rule or policy would have blocked it.
    pub enforced: bool,
}

#[cfg(test)]
impl Attempt {
    pub(crate) fn example() -> Self {
        Attempt {
            at: SystemTime::UNIX_EPOCH,
            client: Some(IpAddr::from([203, 0, 113, 7])),
            client_source: "peer",
            derivation: "peer".into(),
            peer: IpAddr::from([203, 0, 113, 7]),
            facts: None,
            rule: "login".into(),
            method: "POST".into(),
            host: "console.example.com".into(),
            path: "/login".into(),
            user_agent: "curl/8".into(),
            request_id: "0123456789abcdef".into(),
            enforced: true,
        }
    }
}

/// A client locked out after too many failed sign-ins (docs/lockout.md):
/// the sign-in that locked it, and the lock.
#[derive(Clone, Debug)]
pub struct Lockout {
    /// The failed sign-in that locked the client out (`enforced: true`).
    pub attempt: Attempt,
    pub failures: u32,
    pub lock: Duration,
    /// 1 for the first lock, 2 for the next (twice as long), …
    pub strike: u32,
    /// With keys by account: 12 hex digits of the account's keyed hash
    /// (never its name).
    pub account: Option<String>,
    /// With `key: account_and_network`: the network the account is locked
    /// out from (`192.0.2.0/24`).
    pub network: Option<String>,
}

/// The shared lockout store (Redis) stopped answering (docs/lockout.md).
#[derive(Clone, Debug)]
pub struct StoreDown {
    pub at: SystemTime,
    /// Why, in the client library's words (never the URL).
    pub error: String,
    /// What sign-ins do meanwhile (`state.on_store_error`).
    pub on_store_error: &'static str,
}

/// An operator released lockouts (`POST /lockouts/release`), alerted when
/// `alerts.on_release` is on: a new way to unlock is worth a line in the
/// team's channel.
#[derive(Clone, Debug)]
pub struct Released {
    pub at: SystemTime,
    /// The admin client that asked.
    pub by: IpAddr,
    /// `account`, `account_hash`, `address` or `network`.
    pub selector: &'static str,
    /// What it named: the account's hash (never its name), the address or
    /// the network.
    pub target: String,
    /// How many locks it lifted.
    pub released: u64,
}

/// A published list (`feed:`) that is not current: its new list was
/// refused or held, or the list in use grew older than `max_age`.
#[derive(Clone, Debug)]
pub struct FeedProblem {
    pub at: SystemTime,
    pub network: String,
    /// Scheme, host and path (never a query that may hold a token).
    pub url: String,
    /// `refused` (the list looked wrong), `held` (the policy's tests or
    /// the reload guard), `stale` (older than max_age), `failed`.
    pub problem: &'static str,
    /// The reason's code: `empty`, `too_wide`, `changed_too_much`,
    /// `unparseable`, `policy_tests`, `reload_guard`, `timeout`, ...
    pub reason: &'static str,
    pub detail: String,
    /// How old the list in use is.
    pub age: Duration,
    /// What a stale list does (`keep`, `empty`).
    pub on_stale: &'static str,
}

/// A sink that could not start (a variable not set, a key that cannot be
/// read): alerted through the sinks that did, once, at startup.
#[derive(Clone, Debug)]
pub struct SinkDisabled {
    pub at: SystemTime,
    pub sink: String,
    /// Why, in words that name a variable, never its value.
    pub why: String,
}

/// What the request path hands to the alerts.
#[derive(Debug)]
pub enum Event {
    Attempt(Attempt),
    Lockout(Lockout),
    StateStore(StoreDown),
    StateStoreRestored(SystemTime),
    Released(Released),
    Feed(FeedProblem),
    /// A policy reload failed or was refused (counted for the digest).
    ReloadRefused,
    SinkDisabled(SinkDisabled),
}

/// Attempts of one key within a window, sent when the window ends.
#[derive(Clone, Debug)]
pub struct Summary {
    pub scope: Scope,
    pub enforced: bool,
    pub attempts: u64,
    pub from: SystemTime,
    pub to: SystemTime,
    /// The latest attempt, for context.
    pub last: Arc<Attempt>,
}

/// The storm cap's summary: attempts past the cap in one interval.
#[derive(Clone, Debug)]
pub struct Storm {
    pub from: SystemTime,
    pub to: SystemTime,
    pub attempts: u64,
    /// Of `attempts`, those only a report-only rule or policy would block.
    pub would_be: u64,
    /// Distinct sources (keys).
    pub sources: u64,
    /// Lockouts past the cap in the interval (each alerted alone within it).
    pub lockouts: u64,
    /// Operators' lockout releases past the cap in the interval.
    pub releases: u64,
    /// The sources with the most attempts, most first.
    pub top: Vec<(Scope, u64)>,
}

#[derive(Clone, Debug)]
pub enum Alert {
    /// A first attempt, alone.
    Attempt(Arc<Attempt>),
    Lockout(Arc<Lockout>),
    /// The shared lockout store is down: alerted at once, outside the
    /// storm cap (it is about netwarden, not about attackers).
    StateStore(Arc<StoreDown>),
    /// The shared lockout store answers again after a `StateStore` alert:
    /// the problem is over (PagerDuty resolves its incident).
    StateStoreRestored {
        at: SystemTime,
    },
    /// An operator's release: alerted at once, outside the storm cap.
    Released(Arc<Released>),
    /// A published list not current: alerted at once, outside the storm
    /// cap (it is about netwarden's own input).
    Feed(Arc<FeedProblem>),
    Summary(Summary),
    Storm(Storm),
    /// A sink that could not start: alerted at once through the others,
    /// outside the storm cap.
    SinkDisabled(Arc<SinkDisabled>),
    /// The morning digest, to `alerts.digest.sinks` only.
    Digest(Arc<digest::Digest>),
    /// `netwarden alert-test`.
    Test {
        at: SystemTime,
    },
}

impl Alert {
    pub fn kind(&self) -> &'static str {
        match self {
            Alert::Attempt(_) => "attempt",
            Alert::Lockout(_) => "lockout",
            Alert::StateStore(_) => "state_store",
            Alert::StateStoreRestored { .. } => "state_store_restored",
            Alert::Released(_) => "lockout_released",
            Alert::Feed(_) => "feed",
            Alert::Summary(_) => "summary",
            Alert::Storm(_) => "storm",
            Alert::Digest(_) => "digest",
            Alert::SinkDisabled(_) => "sink_disabled",
            Alert::Test { .. } => "test",
        }
    }
}

/// The request path's side: hands attempts to the aggregator without
/// waiting.
pub struct Alerts {
    tx: mpsc::Sender<Event>,
    report_only: bool,
    on_release: bool,
    metrics: Arc<Metrics>,
    /// Seconds since the epoch of the last "queue full" warning: at most one
    /// a second, so a storm does not become a log storm.
    last_drop_warning: AtomicU64,
    dropped_since_warning: AtomicU64,
}

impl Alerts {
    /// Whether report-only would-be blocks are alerted.
    pub fn report_only(&self) -> bool {
        self.report_only
    }

    /// Queues one attempt; never blocks.
    pub fn notify(&self, a: Attempt) {
        self.send(Event::Attempt(a));
    }

    /// A client was locked out: alerted alone, within the storm cap.
    pub fn lockout(&self, l: Lockout) {
        self.send(Event::Lockout(l));
    }

    /// The shared lockout store stopped answering.
    pub fn state_store(&self, d: StoreDown) {
        self.send(Event::StateStore(d));
    }

    /// The shared lockout store answers again after it was alerted down.
    pub fn state_store_restored(&self, at: SystemTime) {
        self.send(Event::StateStoreRestored(at));
    }

    /// Whether an operator's release is alerted (`alerts.on_release`).
    pub fn on_release(&self) -> bool {
        self.on_release
    }

    /// An operator released lockouts.
    pub fn released(&self, r: Released) {
        self.send(Event::Released(r));
    }

    /// A published list is not current.
    pub fn feed(&self, p: FeedProblem) {
        self.send(Event::Feed(p));
    }

    /// A policy reload failed or was refused (for the digest's count).
    pub fn reload_refused(&self) {
        self.send(Event::ReloadRefused);
    }

    fn send(&self, e: Event) {
        if let Err(mpsc::error::TrySendError::Full(_)) = self.tx.try_send(e) {
            self.metrics.alert_attempts_dropped.inc();
            let dropped = self.dropped_since_warning.fetch_add(1, Ordering::Relaxed) + 1;
            let now = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            let last = self.last_drop_warning.load(Ordering::Relaxed);
            if now > last
                && self
                    .last_drop_warning
                    .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                    .is_ok()
            {
                self.dropped_since_warning.store(0, Ordering::Relaxed);
                tracing::warn!(
                    event = "alert_dropped",
                    dropped,
                    reason = "queue_full",
                    "alert queue full: blocked login attempts are not being alerted (still logged)"
                );
            }
        }
    }
}

/// The alerts `serve` runs, replaced whole when a reload changes the
/// `alerts:` section: the request path loads the current one only for a
/// blocked login, so other requests pay nothing for it.
#[derive(Default)]
pub struct Live {
    current: arc_swap::ArcSwapOption<Alerts>,
    running: std::sync::Mutex<Option<Running>>,
    /// Why each sink of the running alerts that could not start is
    /// disabled (shown by `/readyz` and `GET /policy`).
    disabled: std::sync::Mutex<Vec<String>>,
    /// The digest's tally and extras, kept across reloads.
    digest: DigestSource,
}

/// What the guard adds to a digest when it is sent (grants ending, the
/// self-check): read from the running proxy.
pub type ExtrasFn = Box<dyn Fn() -> digest::Extras + Send + Sync>;

/// The digest's inputs that outlive one set of alert tasks: the tally
/// since the last digest, and where the guard's state is read.
#[derive(Clone)]
pub struct DigestSource {
    pub tally: Arc<std::sync::Mutex<digest::Tally>>,
    pub extras: Arc<std::sync::OnceLock<ExtrasFn>>,
}

impl Default for DigestSource {
    fn default() -> Self {
        DigestSource {
            tally: Arc::new(std::sync::Mutex::new(digest::Tally::new(
                crate::clock::system_now(),
            ))),
            extras: Arc::new(std::sync::OnceLock::new()),
        }
    }
}

impl Live {
    pub fn new(started: Option<Launched>, digest: DigestSource) -> Self {
        let live = Live {
            digest,
            ..Live::default()
        };
        live.replace(started);
        live
    }

    /// Where the digest reads the guard's state (set once, by `serve`).
    pub fn set_extras(&self, f: ExtrasFn) {
        let _ = self.digest.extras.set(f);
    }

    /// The digest's tally and extras, for alerts started by a reload.
    pub fn digest_source(&self) -> DigestSource {
        self.digest.clone()
    }

    /// The disabled sinks of the running alerts, each with why.
    pub fn disabled(&self) -> Vec<String> {
        self.disabled
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Each running sink: name, kind, alerts waiting, its last delivery
    /// and counts (`GET /policy`).
    pub fn sinks(&self) -> Vec<serde_json::Value> {
        let running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        running
            .iter()
            .flat_map(|r| &r.sinks)
            .map(|s| {
                let mut v = s.record.to_json();
                v["name"] = serde_json::json!(&*s.name);
                v["kind"] = serde_json::json!(s.kind);
                v["pending"] = serde_json::json!(s.pending.load(Ordering::Relaxed));
                v
            })
            .collect()
    }

    /// The alerts attempts go to now; `None` without an `alerts:` section.
    pub fn current(&self) -> Option<Arc<Alerts>> {
        self.current.load_full()
    }

    /// Puts `next` (or no alerts) in place and returns the tasks it
    /// replaces, for the caller to shut down (which flushes what they
    /// hold). Attempts made from now on go to `next`.
    pub fn replace(&self, next: Option<Launched>) -> Option<Running> {
        let (alerts, running, disabled) = match next {
            Some(l) => (Some(l.alerts), Some(l.running), l.disabled),
            None => (None, None, Vec::new()),
        };
        *self.disabled.lock().unwrap_or_else(|e| e.into_inner()) = disabled;
        self.current.store(alerts.map(Arc::new));
        let mut slot = self.running.lock().unwrap_or_else(|e| e.into_inner());
        std::mem::replace(&mut *slot, running)
    }
}

/// Alerts started by [`launch`], and the sinks that could not be.
pub struct Launched {
    pub alerts: Alerts,
    pub running: Running,
    /// Each disabled sink's error, in words that never show a secret.
    pub disabled: Vec<String>,
}

/// Resolves the sinks of `settings` (secrets from `overrides`, then the
/// process environment) and starts those that can work on the current
/// runtime. A sink whose variable is missing or wrong is disabled, loudly:
/// an `alert_sink_disabled` error line, `netwarden_alert_sinks_disabled`,
/// and a line in `/readyz` and `GET /policy`. The guard itself does not
/// depend on alerts, and stopping it for a missing notification secret
/// would take the console down with it (docs/alerts.md).
pub fn launch(
    settings: &AlertSettings,
    overrides: &[(String, String)],
    metrics: Arc<Metrics>,
    shared_store: Option<Arc<crate::lockout::redis::Store>>,
    digest: DigestSource,
) -> Launched {
    let (sinks, errors) = deliver::resolve_each(settings, &|v| lookup(overrides, v));
    let disabled: Vec<String> = errors.iter().map(ToString::to_string).collect();
    for why in &disabled {
        tracing::error!(
            event = "alert_sink_disabled",
            detail = %why,
            "alerts will not go to this sink; the guard runs on"
        );
    }
    let mut launched = start_resolved(settings, sinks, metrics, shared_store, digest);
    for (cfg_name, why) in errors.iter().map(|e| (e.sink_name(), e.to_string())) {
        launched.alerts.send(Event::SinkDisabled(SinkDisabled {
            at: SystemTime::now(),
            sink: cfg_name.to_string(),
            why,
        }));
    }
    launched.disabled = disabled;
    launched
}

/// A variable's value: from `overrides` first, then the process
/// environment.
pub fn lookup(overrides: &[(String, String)], name: &str) -> Option<String> {
    overrides
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, value)| value.clone())
        .or_else(|| std::env::var(name).ok())
}

/// Starts sinks that resolved; `netwarden_alert_sinks_disabled` says how
/// many did not.
pub fn start_resolved(
    settings: &AlertSettings,
    sinks: Vec<Sink>,
    metrics: Arc<Metrics>,
    shared_store: Option<Arc<crate::lockout::redis::Store>>,
    digest: DigestSource,
) -> Launched {
    metrics
        .alert_sinks_disabled
        .set(i64::try_from(settings.sinks.len().saturating_sub(sinks.len())).unwrap_or(i64::MAX));
    for s in &sinks {
        tracing::info!(
            event = "alert_sink",
            sink = &*s.name,
            kind = s.kind.as_str(),
            "alerts on blocked logins go to this sink"
        );
    }
    let (alerts, running) = start(settings, sinks, metrics, shared_store, digest);
    Launched {
        alerts,
        running,
        disabled: Vec::new(),
    }
}

/// The running alert tasks.
pub struct Running {
    stop: oneshot::Sender<()>,
    aggregator: JoinHandle<()>,
    sinks: Vec<SinkTask>,
    flush_timeout: Duration,
    metrics: Arc<Metrics>,
}

/// Starts the aggregator and one delivery task per sink, on the current
/// runtime. With a shared store (Redis), first attempts and summaries are
/// claimed there, so that every replica together sends each once.
pub fn start(
    settings: &AlertSettings,
    sinks: Vec<Sink>,
    metrics: Arc<Metrics>,
    shared_store: Option<Arc<crate::lockout::redis::Store>>,
    digest: DigestSource,
) -> (Alerts, Running) {
    let (tx, rx) = mpsc::channel(settings.queue);
    let mut queues = Vec::with_capacity(sinks.len());
    let mut tasks = Vec::with_capacity(sinks.len());
    for sink in sinks {
        let sink = Arc::new(sink);
        let (stx, srx) = mpsc::channel::<Arc<Alert>>(settings.queue);
        let pending = Arc::new(AtomicU64::new(0));
        let record = Arc::new(deliver::Record::default());
        let task = tokio::spawn(deliver::run(
            sink.clone(),
            srx,
            pending.clone(),
            settings.give_up_after,
            metrics.clone(),
            record.clone(),
        ));
        queues.push((sink.name.clone(), stx, pending.clone()));
        tasks.push(SinkTask {
            name: sink.name.clone(),
            kind: sink.kind.as_str(),
            pending,
            task,
            record,
        });
    }
    let (stop_tx, stop_rx) = oneshot::channel();
    let claims = shared_store.map(|store| {
        Arc::new(claims::Claims {
            store,
            key: settings.key,
            window: settings.window,
        })
    });
    let schedule = settings.digest.as_ref().and_then(|d| {
        Some(Schedule {
            at: digest::parse_at(&d.at)?,
            zone: crate::engine::time::zone(&d.time_zone).ok()?,
            sinks: d.sinks.iter().map(|s| Arc::from(s.as_str())).collect(),
        })
    });
    let aggregator = tokio::spawn(aggregate_loop(
        Aggregator::new(settings, Instant::now()),
        Loop {
            rx,
            stop: stop_rx,
            queues: Arc::new(queues),
            claims,
            metrics: metrics.clone(),
            on_release: settings.on_release,
            digest,
            schedule,
        },
    ));
    (
        Alerts {
            tx,
            report_only: settings.report_only,
            on_release: settings.on_release,
            metrics: metrics.clone(),
            last_drop_warning: AtomicU64::new(0),
            dropped_since_warning: AtomicU64::new(0),
        },
        Running {
            stop: stop_tx,
            aggregator,
            sinks: tasks,
            flush_timeout: settings.flush_timeout,
            metrics,
        },
    )
}

type Queue = (Arc<str>, mpsc::Sender<Arc<Alert>>, Arc<AtomicU64>);

/// One sink's delivery task.
struct SinkTask {
    name: Arc<str>,
    kind: &'static str,
    pending: Arc<AtomicU64>,
    task: JoinHandle<()>,
    record: Arc<deliver::Record>,
}

/// When the digest goes out, and to which sinks.
struct Schedule {
    at: jiff::civil::Time,
    zone: jiff::tz::TimeZone,
    sinks: Vec<Arc<str>>,
}

/// What the aggregator's loop reads and writes besides the aggregator.
struct Loop {
    rx: mpsc::Receiver<Event>,
    stop: oneshot::Receiver<()>,
    queues: Arc<Vec<Queue>>,
    claims: Option<Arc<claims::Claims>>,
    metrics: Arc<Metrics>,
    /// Releases are always counted for the digest; alerted only with
    /// `alerts.on_release`.
    on_release: bool,
    digest: DigestSource,
    schedule: Option<Schedule>,
}

impl Loop {
    /// Counts `e` for the digest; `None`: nothing more to do with it.
    fn tally(&self, e: Event) -> Option<Event> {
        let mut t = self.digest.tally.lock().unwrap_or_else(|p| p.into_inner());
        match e {
            Event::Attempt(ref a) => t.attempt(a),
            Event::Lockout(_) => t.lockouts += 1,
            Event::Released(_) => {
                t.releases += 1;
                if !self.on_release {
                    return None;
                }
            }
            Event::ReloadRefused => {
                t.reloads_refused += 1;
                return None;
            }
            _ => {}
        }
        Some(e)
    }

    /// Sends the digest due at `due`: the tally since the last one (the
    /// fleet's, with a shared store: one replica sends it) and the guard's
    /// state now, to the digest's sinks only.
    fn send_digest(&self, due: SystemTime) {
        let Some(schedule) = &self.schedule else {
            return;
        };
        let now = crate::clock::system_now();
        let local = std::mem::replace(
            &mut *self.digest.tally.lock().unwrap_or_else(|p| p.into_inner()),
            digest::Tally::new(now),
        );
        let extras = self.digest.extras.get().map(|f| f()).unwrap_or_default();
        let (claims, queues, metrics) = (
            self.claims.clone(),
            self.queues.clone(),
            self.metrics.clone(),
        );
        let targets = schedule.sinks.clone();
        tokio::spawn(async move {
            let (tally, replicas) = match claims {
                Some(c) => match c.digest(&digest::period_name(due), local).await {
                    Some(got) => got,
                    None => return,
                },
                None => (local, None),
            };
            let d = digest::Digest {
                tally,
                to: now,
                extras,
                replicas,
            };
            dispatch_to(
                std::iter::once(Alert::Digest(Arc::new(d))),
                &queues,
                &metrics,
                Some(&targets),
            );
        });
    }
}

async fn aggregate_loop(mut agg: Aggregator, mut l: Loop) {
    let mut out = Vec::new();
    let next_digest = |now: SystemTime, s: &Option<Schedule>| {
        s.as_ref().map(|s| digest::next_at(s.at, &s.zone, now))
    };
    let mut due = next_digest(crate::clock::system_now(), &l.schedule);
    loop {
        let deadline = agg.next_deadline();
        let step = tokio::select! {
            biased;
            _ = &mut l.stop => break,
            e = l.rx.recv() => match e {
                Some(e) => match l.tally(e) {
                    Some(e) => agg.event(e, Instant::now(), &mut out),
                    None => continue,
                },
                None => break,
            },
            () = sleep_until(deadline), if deadline.is_some() => agg.tick(Instant::now(), &mut out),
            () = sleep_until_system(due), if due.is_some() => {
                if let Some(d) = due {
                    l.send_digest(d);
                }
                due = next_digest(crate::clock::system_now(), &l.schedule);
                continue;
            }
        };
        l.metrics.alert_attempts_aggregated.inc_by(step.aggregated);
        settle(&mut out, &l.queues, l.claims.as_ref(), &l.metrics);
    }
    // Shutdown: what is already queued, then every pending count.
    l.rx.close();
    while let Ok(e) = l.rx.try_recv() {
        if let Some(e) = l.tally(e) {
            let step = agg.event(e, Instant::now(), &mut out);
            l.metrics.alert_attempts_aggregated.inc_by(step.aggregated);
        }
    }
    agg.flush(&mut out);
    settle(&mut out, &l.queues, l.claims.as_ref(), &l.metrics);
    // Dropping the queues lets each sink finish what it holds, then stop.
}

/// Sleeps until a wall-clock instant (the digest's time of day, by
/// [`crate::clock`]), checked against the clock once a minute at least,
/// so that a clock set forward or a suspended host does not delay it by
/// more than that.
async fn sleep_until_system(at: Option<SystemTime>) {
    let Some(at) = at else {
        return std::future::pending().await;
    };
    loop {
        let left = at
            .duration_since(crate::clock::system_now())
            .unwrap_or_default();
        if left.is_zero() {
            return;
        }
        tokio::time::sleep(left.min(Duration::from_secs(60))).await;
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    if let Some(d) = deadline {
        tokio::time::sleep_until(tokio::time::Instant::from_std(d)).await;
    }
}

/// Hands each alert to the sinks; with claims, first attempts and
/// summaries go through them first (off this loop: Redis is asked).
fn settle(
    out: &mut Vec<Alert>,
    queues: &Arc<Vec<Queue>>,
    claims: Option<&Arc<claims::Claims>>,
    metrics: &Arc<Metrics>,
) {
    let Some(claims) = claims else {
        return dispatch(out.drain(..), queues, metrics);
    };
    for alert in out.drain(..) {
        if !claims::Claims::claimed(&alert) {
            dispatch(std::iter::once(alert), queues, metrics);
            continue;
        }
        let (claims, queues, metrics) = (claims.clone(), queues.clone(), metrics.clone());
        tokio::spawn(async move {
            if let Some(alert) = claims.settle(alert).await {
                dispatch(std::iter::once(alert), &queues, &metrics);
            }
        });
    }
}

fn dispatch(out: impl Iterator<Item = Alert>, queues: &[Queue], metrics: &Metrics) {
    dispatch_to(out, queues, metrics, None);
}

/// Hands each alert to every sink, or only to `only` (the digest's).
fn dispatch_to(
    out: impl Iterator<Item = Alert>,
    queues: &[Queue],
    metrics: &Metrics,
    only: Option<&[Arc<str>]>,
) {
    for alert in out {
        metrics
            .alerts
            .get_or_create(&KindLabels { kind: alert.kind() })
            .inc();
        let alert = Arc::new(alert);
        for (name, q, pending) in queues {
            if only.is_some_and(|only| !only.contains(name)) {
                continue;
            }
            pending.fetch_add(1, Ordering::Relaxed);
            if q.try_send(alert.clone()).is_err() {
                pending.fetch_sub(1, Ordering::Relaxed);
                metrics
                    .alert_deliveries
                    .get_or_create(&DeliveryLabels {
                        sink: Name(name.clone()),
                        outcome: "dropped",
                    })
                    .inc();
                tracing::warn!(
                    event = "alert_dropped",
                    sink = &**name,
                    reason = "sink_queue_full",
                    kind = alert.kind(),
                    "alert sink is behind; alert dropped"
                );
            }
        }
    }
}

impl Running {
    /// How many sinks deliver.
    pub fn sink_count(&self) -> usize {
        self.sinks.len()
    }

    /// Flushes pending counts and gives the sinks `flush_timeout` to
    /// deliver what they hold; what is left after that is dropped and
    /// counted.
    pub async fn shutdown(self) {
        let _ = self.stop.send(());
        let deadline = tokio::time::Instant::now() + self.flush_timeout;
        let _ = tokio::time::timeout_at(deadline, self.aggregator).await;
        for SinkTask {
            name,
            pending,
            mut task,
            ..
        } in self.sinks
        {
            if tokio::time::timeout_at(deadline, &mut task).await.is_err() {
                task.abort();
                let left = pending.load(Ordering::Relaxed);
                self.metrics
                    .alert_deliveries
                    .get_or_create(&DeliveryLabels {
                        sink: Name(name.clone()),
                        outcome: "dropped",
                    })
                    .inc_by(left);
                tracing::warn!(
                    event = "alert_dropped",
                    sink = &*name,
                    reason = "shutdown",
                    dropped = left,
                    "alerts not delivered before the flush timeout"
                );
            }
        }
    }
}

/// What `netwarden alert-test` found for one sink.
pub struct TestOutcome {
    pub sink: Arc<str>,
    pub kind: &'static str,
    /// The one call's result: no retries, so that the report is prompt.
    pub result: deliver::Try,
    pub took: Duration,
}

/// Sends one test alert to each sink, one call each, bounded by the
/// sinks' timeout.
pub async fn test(sinks: &[Sink]) -> Vec<TestOutcome> {
    let alert = Alert::Test {
        at: SystemTime::now(),
    };
    let mut out = Vec::with_capacity(sinks.len());
    for sink in sinks {
        let start = Instant::now();
        let result = sink.send_once(sink.body(&alert)).await;
        out.push(TestOutcome {
            sink: sink.name.clone(),
            kind: sink.kind.as_str(),
            result,
            took: start.elapsed(),
        });
    }
    out
}
