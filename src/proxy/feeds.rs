//! Published lists kept current while serving: one task per feed fetches
//! on its schedule (or at once on `POST /feeds/refresh`), judges what came
//! back, and tries a new list as an edit is tried: the same compile, the
//! same policy tests, the reload guard ([`super::reload::Reloader::apply_feed`]).
//! Requests never wait on any of it: the running policy is swapped whole.
//! What each feed is doing is on the [`Board`] (`GET /policy`, `/readyz`,
//! metrics); a feed that goes wrong is alerted once per episode.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use serde_json::{Value, json};
use tokio::sync::{Notify, watch};

use super::reload::{Outcome, Reloader};
use crate::feeds::Verdict;
use crate::lists::Copy;
use crate::policy::feeds::{Feed, Overlay};
use crate::telemetry::json::rfc3339;
use crate::telemetry::metrics::{FeedLabels, FeedOutcomeLabels, Name};

/// What each feed last did, and the lists applied while running.
#[derive(Default)]
pub struct Board {
    /// Lists applied (or confirmed) since start, by copy file: every
    /// compile reads these before the disk, so a reload for any reason
    /// never goes back to an older list.
    lists: Mutex<Overlay>,
    status: Mutex<HashMap<PathBuf, Status>>,
    /// Bumped when the set of feeds may have changed (a reload).
    changed: Notify,
    /// One fetch per feed at a time: its task's and an operator's
    /// `POST /feeds/refresh` take turns.
    busy: Mutex<HashMap<PathBuf, Arc<tokio::sync::Mutex<()>>>>,
}

/// One feed's last fetch.
#[derive(Clone, Debug, Default)]
pub(super) struct Status {
    pub(super) last_attempt: Option<SystemTime>,
    pub(super) last_success: Option<SystemTime>,
    pub(super) next_fetch: Option<SystemTime>,
    /// Fetches in a row that did not end in an applied or confirmed list.
    pub(super) failures: u32,
    /// `failed`, `refused` or `held`, with the reason's code and words.
    pub(super) problem: Option<(&'static str, String, String)>,
    /// The current bad episode was alerted (once per episode).
    pub(super) alerted: bool,
    /// The staleness of the list in use was alerted.
    pub(super) stale_alerted: bool,
    /// A DNS name: since when it has had no address (NXDOMAIN).
    pub(super) nx_since: Option<jiff::Timestamp>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Board {
    /// The lists every compile uses before those on disk.
    pub fn overlay(&self) -> Overlay {
        lock(&self.lists).clone()
    }

    /// The lock one fetch or lookup of `path`'s source holds.
    pub(super) fn turn(&self, path: &std::path::Path) -> Arc<tokio::sync::Mutex<()>> {
        lock(&self.busy)
            .entry(path.to_path_buf())
            .or_default()
            .clone()
    }

    pub(super) fn nx_since(&self, path: &std::path::Path) -> Option<jiff::Timestamp> {
        lock(&self.status).get(path).and_then(|s| s.nx_since)
    }

    /// The list applied (or confirmed) for `path` since start, if any:
    /// one copy, not the whole overlay.
    pub(super) fn list(&self, path: &std::path::Path) -> Option<Copy> {
        lock(&self.lists).get(path).cloned()
    }

    pub(super) fn keep(&self, copy: &Copy, path: PathBuf) {
        lock(&self.lists).insert(path, copy.clone());
    }

    /// The set of feeds may have changed (after a reload).
    pub fn policy_changed(&self) {
        self.changed.notify_one();
    }

    /// `/readyz` lines: lists not current, without names (GET /policy
    /// has those).
    pub fn degraded(
        &self,
        feeds: &[Feed],
        names: &[crate::policy::dns::DnsName],
        dns_max_age: std::time::Duration,
    ) -> Vec<String> {
        let stale = feeds
            .iter()
            .filter(|f| f.used.stale || age_of(self, &f.copy_path, f.used.fetched_at) > f.max_age)
            .count()
            + names
                .iter()
                .filter(|n| {
                    n.used.stale || age_of(self, &n.copy_path, n.used.fetched_at) > dns_max_age
                })
                .count();
        let status = lock(&self.status);
        let failing = feeds
            .iter()
            .map(|f| &f.copy_path)
            .chain(names.iter().map(|n| &n.copy_path))
            .filter(|p| status.get(*p).is_some_and(|s| s.problem.is_some()))
            .count();

        let mut out = Vec::new();
        let plural = |n: usize| {
            if n == 1 {
                "list keeps its"
            } else {
                "lists keep their"
            }
        };
        if failing > 0 {
            out.push(format!(
                "{failing} published {} last good copy (the last fetch or DNS lookup failed, or its list was refused or held); GET /policy says which",
                plural(failing)
            ));
        }
        if stale > 0 {
            out.push(format!(
                "{stale} published list{} or DNS name{} older than max_age; GET /policy says which",
                if stale == 1 { "" } else { "s" },
                if stale == 1 { " is" } else { "s are" }
            ));
        }
        out
    }

    /// What the board knows of one source for `GET /policy`: its status,
    /// its latest confirmation, its age at `now`, and whether it is stale.
    fn standing(
        &self,
        used: &crate::policy::feeds::Used,
        path: &std::path::Path,
        max_age: std::time::Duration,
        now: jiff::Timestamp,
    ) -> (Status, jiff::Timestamp, i64, bool) {
        let s = lock(&self.status).get(path).cloned().unwrap_or_default();
        let confirmed = lock(&self.lists)
            .get(path)
            .map_or(used.fetched_at, |c| c.fetched_at.max(used.fetched_at));
        let age = now.duration_since(confirmed).as_secs().max(0);
        let stale = used.stale || age as u64 > max_age.as_secs();
        (s, confirmed, age, stale)
    }

    /// `GET /policy`'s `dns_names`.
    pub fn dns_json(
        &self,
        names: &[crate::policy::dns::DnsName],
        max_age: std::time::Duration,
        now: jiff::Timestamp,
    ) -> Value {
        names
            .iter()
            .map(|n| {
                let (s, confirmed, age, stale) = self.standing(&n.used, &n.copy_path, max_age, now);
                let when = |t: Option<SystemTime>| t.map(rfc3339);
                json!({
                    "network": n.network,
                    "name": n.name,
                    "source": n.used.origin.as_str(),
                    "file": n.used.path.display().to_string(),
                    "confirmed_at": confirmed.to_string(),
                    "changed_at": n.used.changed_at.to_string(),
                    "age_seconds": age,
                    "stale": stale,
                    "addresses": n.used.prefixes,
                    "generation": n.used.generation,
                    "no_address_since": s.nx_since.map(|t| t.to_string()),
                    "last_attempt": when(s.last_attempt),
                    "last_success": when(s.last_success),
                    "next_lookup": when(s.next_fetch),
                    "failures": s.failures,
                    "problem": problem_json(s.problem.as_ref()),
                })
            })
            .collect()
    }

    /// `GET /policy`'s `feeds`.
    pub fn to_json(&self, feeds: &[Feed], now: jiff::Timestamp) -> Value {
        feeds
            .iter()
            .map(|f| {
                let (s, confirmed, age, stale) =
                    self.standing(&f.used, &f.copy_path, f.max_age, now);
                let when = |t: Option<SystemTime>| t.map(rfc3339);
                json!({
                    "network": f.network,
                    "url": crate::feeds::shown_url(&f.url),
                    "source": f.used.origin.as_str(),
                    "file": f.used.path.display().to_string(),
                    "fetched_at": confirmed.to_string(),
                    "changed_at": f.used.changed_at.to_string(),
                    "age_seconds": age,
                    "max_age_seconds": f.max_age.as_secs(),
                    "stale": stale,
                    "on_stale": f.on_stale.as_str(),
                    "prefixes": f.used.prefixes,
                    "generation": f.used.generation,
                    "last_attempt": when(s.last_attempt),
                    "last_success": when(s.last_success),
                    "next_fetch": when(s.next_fetch),
                    "failures": s.failures,
                    "problem": problem_json(s.problem.as_ref()),
                })
            })
            .collect()
    }

    pub(super) fn update(&self, path: &std::path::Path, f: impl FnOnce(&mut Status)) -> Status {
        let mut all = lock(&self.status);
        let s = all.entry(path.to_path_buf()).or_default();
        f(s);
        s.clone()
    }
}

/// A problem as `GET /policy` and `POST /feeds/refresh` show it.
fn problem_json(p: Option<&(&'static str, String, String)>) -> Value {
    p.map_or(
        Value::Null,
        |(what, code, detail)| json!({ "what": what, "reason": code, "detail": detail }),
    )
}

/// Keeps one task per feed of the running policy: started for a feed that
/// appears, stopped for one that goes. Ends at shutdown.
pub async fn supervise(reloader: Arc<Reloader>, mut shutdown: watch::Receiver<bool>) {
    let mut tasks: HashMap<PathBuf, tokio::task::JoinHandle<()>> = HashMap::new();
    loop {
        let policy = reloader.policy();
        let sources: Vec<(PathBuf, bool)> = policy
            .feeds()
            .iter()
            .map(|f| (f.copy_path.clone(), false))
            .chain(
                policy
                    .dns_names()
                    .iter()
                    .map(|n| (n.copy_path.clone(), true)),
            )
            .collect();
        // Lists of feeds the policy no longer has are not kept for ever.
        lock(&reloader.board().lists).retain(|path, _| sources.iter().any(|(p, _)| p == path));
        lock(&reloader.board().status).retain(|path, _| sources.iter().any(|(p, _)| p == path));
        tasks.retain(|path, task| {
            let keep = sources.iter().any(|(p, _)| p == path) && !task.is_finished();
            if !keep {
                task.abort();
            }
            keep
        });
        for (path, is_dns) in sources {
            if let std::collections::hash_map::Entry::Vacant(slot) = tasks.entry(path.clone()) {
                let task = if is_dns {
                    tokio::spawn(super::dns::run(reloader.clone(), path, shutdown.clone()))
                } else {
                    tokio::spawn(run(reloader.clone(), path, shutdown.clone()))
                };
                slot.insert(task);
            }
        }
        tokio::select! {
            _ = reloader.board().changed.notified() => {}
            _ = shutdown.changed() => {
                for (_, t) in tasks.drain() {
                    t.abort();
                }
                return;
            }
        }
    }
}

/// One feed: fetch, judge, apply; then wait for the next fetch.
async fn run(reloader: Arc<Reloader>, path: PathBuf, mut shutdown: watch::Receiver<bool>) {
    let mut failures = 0u32;
    let mut first = true;
    loop {
        let Some(feed) = find(&reloader, &path) else {
            return;
        };
        let mut delay = crate::feeds::next_delay(feed.every, failures, crate::feeds::jitter());
        let age = age_of(reloader.board(), &path, feed.used.fetched_at);
        if std::mem::take(&mut first) {
            // A restart does not wait a whole `every`: the list is due when
            // its copy is `every` old (at once when it is older).
            delay = delay.saturating_sub(age);
        }
        // Awake when the list goes stale, to say so at once.
        if age < feed.max_age {
            delay = delay.min(feed.max_age - age + std::time::Duration::from_secs(1));
        }
        reloader.board().update(&path, |s| {
            s.next_fetch = Some(SystemTime::now() + delay);
        });
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = shutdown.changed() => return,
        }
        let Some(feed) = find(&reloader, &path) else {
            return;
        };
        failures = once(&reloader, &feed).await.1;
    }
}

/// `POST /feeds/refresh`: fetches every feed now, one after another, and
/// says what each came to (the same steps as the schedule's). The work is
/// its own task: an admin connection cut at its time limit does not cut a
/// fetch half-way, unrecorded (red-team review).
pub async fn refresh_now(reloader: &Arc<Reloader>) -> Value {
    let r = reloader.clone();
    tokio::spawn(async move { refresh_all(&r).await })
        .await
        .unwrap_or_else(|e| json!({ "error": e.to_string() }))
}

async fn refresh_all(reloader: &Arc<Reloader>) -> Value {
    let mut out = Vec::new();
    for feed in reloader.policy().feeds().to_vec() {
        let (outcome, _) = once(reloader, &feed).await;
        let problem = lock(&reloader.board().status)
            .get(&feed.copy_path)
            .and_then(|s| s.problem.clone());
        out.push(json!({
            "network": feed.network,
            "outcome": outcome,
            "problem": problem_json(problem.as_ref()),
        }));
    }
    let mut names = Vec::new();
    for name in reloader.policy().dns_names().to_vec() {
        let (outcome, _, _) = super::dns::once(reloader, &name).await;
        let problem = lock(&reloader.board().status)
            .get(&name.copy_path)
            .and_then(|s| s.problem.clone());
        names.push(json!({
            "network": name.network,
            "name": name.name,
            "outcome": outcome,
            "problem": problem_json(problem.as_ref()),
        }));
    }
    json!({ "feeds": out, "dns_names": names })
}

fn find(reloader: &Reloader, path: &std::path::Path) -> Option<Feed> {
    reloader
        .policy()
        .feeds()
        .iter()
        .find(|f| f.copy_path == path)
        .cloned()
}

/// One fetch of `feed`: what it came to (`updated`, `unchanged`,
/// `failed`, `refused`, `held`) and the failures in a row after it.
pub async fn once(reloader: &Arc<Reloader>, feed: &Feed) -> (&'static str, u32) {
    let src = Source::feed(feed);
    let board = reloader.board();
    let path = &feed.copy_path;
    let turn = board.turn(path);
    let _one_fetch_at_a_time = turn.lock().await;
    let now = crate::clock::now();
    board.update(path, |s| s.last_attempt = Some(SystemTime::now()));
    // The list the running policy holds: the one to compare with, and
    // whose validators make the request conditional. A snapshot is no
    // fetched list: fetch it whole.
    let last: Option<Copy> = match board.list(path) {
        Some(c) => Some(c),
        None => read_copy(path).await,
    };
    let fetched = crate::feeds::fetch(feed, last.as_ref()).await;
    let verdict = match fetched {
        Err(e) => {
            let n = problem(
                reloader,
                &src,
                "failed",
                e.code(),
                e.to_string(),
                last.as_ref(),
            );
            return ("failed", n);
        }
        Ok(f) => {
            // Reading and judging a list of millions of lines takes
            // seconds: off the async threads, which serve requests.
            let (feed_c, last_c) = (feed.clone(), last.clone());
            match tokio::task::spawn_blocking(move || {
                crate::feeds::verdict(&feed_c, last_c.as_ref(), f, now)
            })
            .await
            {
                Ok(v) => v,
                Err(e) => Verdict::Refused {
                    code: "unparseable",
                    detail: format!("the list could not be read: {e}"),
                },
            }
        }
    };
    match verdict {
        Verdict::Same(copy) => {
            count(reloader, &src, "unchanged");
            persist(reloader, &src, &copy).await;
            succeeded(reloader, &src);
            if feed.on_stale == crate::policy::feeds::OnStale::Empty {
                refresh_expiry(reloader, &src, feed.used.fetched_at, copy, "feed").await;
            }
            ("unchanged", 0)
        }
        Verdict::New(copy, change) => match reloader.apply_feed(path, copy.clone(), "feed").await {
            Outcome::Reloaded { .. } | Outcome::Unchanged => {
                count(reloader, &src, "updated");
                persist(reloader, &src, &copy).await;
                tracing::info!(
                    event = "feed_updated",
                    network = %feed.network,
                    url = %crate::feeds::shown_url(&feed.url),
                    generation = copy.generation,
                    prefixes = copy.prefixes.len(),
                    changes = %change.summary(3),
                    "published list updated"
                );
                succeeded(reloader, &src);
                ("updated", 0)
            }
            outcome => ("held", held(reloader, &src, outcome, "list", last.as_ref())),
        },
        Verdict::Refused { code, detail } => {
            let n = problem(reloader, &src, "refused", code, detail, last.as_ref());
            ("refused", n)
        }
    }
}

/// A confirmed list whose addresses expire (`on_stale: empty`, a DNS
/// name) is compiled again once the policy in force holds it for less than
/// half its `max_age` more (or no longer): its addresses then match for
/// another `max_age`. Not at every confirmation: a name with a 30 s TTL
/// would recompile the policy twice a minute.
pub(super) async fn refresh_expiry(
    reloader: &Arc<Reloader>,
    src: &Source<'_>,
    compiled_at: jiff::Timestamp,
    copy: Copy,
    trigger: &'static str,
) {
    let held = crate::clock::now().duration_since(compiled_at);
    let held = std::time::Duration::try_from(held).unwrap_or_default();
    if held * 2 >= src.max_age {
        reloader.apply_feed(src.copy_path, copy, trigger).await;
    }
}

/// A list or answer the policy's tests or the reload guard held back: the
/// last good one stays. Returns the failures in a row.
pub(super) fn held(
    reloader: &Arc<Reloader>,
    src: &Source<'_>,
    outcome: Outcome,
    what: &str,
    last: Option<&Copy>,
) -> u32 {
    let (code, detail) = match outcome {
        Outcome::Refused { guard } => (
            "reload_guard",
            format!(
                "the new {what} would deny {} of the {} client addresses that used the console in the last 24 hours",
                guard.denied, guard.recent
            ),
        ),
        Outcome::Failed { errors } => (
            "policy_tests",
            format!(
                "the policy does not load with the new {what}: {}",
                errors.first().map(String::as_str).unwrap_or("no detail")
            ),
        ),
        // Reloaded and Unchanged are applied, never held.
        _ => ("policy_tests", format!("the new {what} was not applied")),
    };
    problem(reloader, src, "held", code, detail, last)
}

/// How old the list in force is: from its latest confirmation by the
/// publisher (kept on the board), else from the copy the policy was
/// compiled with.
pub(super) fn age_of(
    board: &Board,
    path: &std::path::Path,
    compiled: jiff::Timestamp,
) -> std::time::Duration {
    let confirmed = lock(&board.lists)
        .get(path)
        .map_or(compiled, |c| c.fetched_at.max(compiled));
    std::time::Duration::try_from(crate::clock::now().duration_since(confirmed)).unwrap_or_default()
}

/// What a task keeps current, as the steps they share see it: a feed, or
/// one of a network's DNS names.
pub(super) struct Source<'a> {
    pub network: &'a str,
    /// The DNS name, for a name's task.
    pub dns_name: Option<&'a str>,
    /// The feed's URL without its query, or `dns NAME`.
    pub shown: String,
    pub copy_path: &'a std::path::Path,
    pub max_age: std::time::Duration,
    pub on_stale: &'static str,
}

impl<'a> Source<'a> {
    pub fn feed(f: &'a Feed) -> Self {
        Self {
            network: &f.network,
            dns_name: None,
            shown: crate::feeds::shown_url(&f.url),
            copy_path: &f.copy_path,
            max_age: f.max_age,
            on_stale: f.on_stale.as_str(),
        }
    }

    pub fn dns(n: &'a crate::policy::dns::DnsName, max_age: std::time::Duration) -> Self {
        Self {
            network: &n.network,
            dns_name: Some(&n.name),
            shown: format!("dns {}", n.name),
            copy_path: &n.copy_path,
            max_age,
            // An answer older than max_age holds no address.
            on_stale: "empty",
        }
    }

    fn event(&self, feed: &'static str, dns: &'static str) -> &'static str {
        if self.dns_name.is_some() { dns } else { feed }
    }
}

pub(super) fn count(reloader: &Reloader, src: &Source<'_>, outcome: &'static str) {
    let m = reloader.metrics();
    match src.dns_name {
        None => m
            .feed_fetches
            .get_or_create(&FeedOutcomeLabels {
                network: Name(src.network.into()),
                outcome,
            })
            .inc(),
        Some(name) => m
            .dns_lookups
            .get_or_create(&crate::telemetry::metrics::DnsOutcomeLabels {
                network: Name(src.network.into()),
                name: Name(name.into()),
                outcome,
            })
            .inc(),
    };
}

/// Keeps a confirmed or applied list: in memory for every later compile,
/// and on disk for the next start.
/// The copy at `path`, read off the async threads (`None`: none, or
/// unreadable).
pub(super) async fn read_copy(path: &std::path::Path) -> Option<Copy> {
    let p = path.to_path_buf();
    tokio::task::spawn_blocking(move || Copy::read(&p).ok().flatten())
        .await
        .ok()
        .flatten()
}

pub(super) async fn persist(reloader: &Reloader, src: &Source<'_>, copy: &Copy) {
    reloader.board().keep(copy, src.copy_path.to_path_buf());
    if src.dns_name.is_none() {
        reloader
            .metrics()
            .feed_fetched
            .get_or_create(&FeedLabels {
                network: Name(src.network.into()),
            })
            .set(copy.fetched_at.as_second());
    }
    let (c, path) = (copy.clone(), src.copy_path.to_path_buf());
    let written = tokio::task::spawn_blocking(move || c.write(&path))
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())));
    if let Err(e) = written {
        tracing::warn!(
            event = "feed_copy_not_written",
            network = %src.network,
            file = %src.copy_path.display(),
            detail = %e,
            "the list is applied, but its copy could not be written: a restart starts from the older copy"
        );
    }
}

pub(super) fn succeeded(reloader: &Reloader, src: &Source<'_>) {
    reloader.board().update(src.copy_path, |s| {
        s.last_success = Some(SystemTime::now());
        s.failures = 0;
        s.problem = None;
        s.alerted = false;
        s.stale_alerted = false;
    });
    if src.dns_name.is_none() {
        let labels = FeedLabels {
            network: Name(src.network.into()),
        };
        reloader
            .metrics()
            .feed_degraded
            .get_or_create(&labels)
            .set(0);
        reloader.metrics().feed_stale.get_or_create(&labels).set(0);
    }
}

/// The list was not applied: the last good one stays. Logged each time,
/// counted, alerted once per episode (refused and held at once; a failed
/// fetch when the list goes stale). Returns the failures in a row.
pub(super) fn problem(
    reloader: &Arc<Reloader>,
    src: &Source<'_>,
    what: &'static str,
    code: &'static str,
    detail: String,
    last: Option<&Copy>,
) -> u32 {
    count(reloader, src, what);
    let now = crate::clock::now();
    let age = last.map(|c| c.age(now));
    let stale = age.is_some_and(|a| a > src.max_age);
    let status = reloader.board().update(src.copy_path, |s| {
        s.failures = s.failures.saturating_add(1);
        s.problem = Some((what, code.to_string(), detail.clone()));
    });
    if src.dns_name.is_none() {
        reloader
            .metrics()
            .feed_degraded
            .get_or_create(&FeedLabels {
                network: Name(src.network.into()),
            })
            .set(1);
    }
    tracing::warn!(
        event = match what {
            "failed" => src.event("feed_fetch_failed", "dns_lookup_failed"),
            "refused" => "feed_refused",
            "nxdomain" => "dns_no_address",
            _ => src.event("feed_held", "dns_held"),
        },
        network = %src.network,
        url = %src.shown,
        reason = code,
        detail = %detail,
        failures = status.failures,
        age_seconds = age.map_or(0, |a| a.as_secs()),
        "{}",
        match what {
            "failed" => "could not be fetched or resolved; the last good list stays",
            "refused" => "published list looks wrong and is not applied; the last good list stays",
            "nxdomain" => "the DNS name has no address; its last answer stays until dns.nxdomain_grace has passed",
            _ => "held: the policy with it fails its tests or the reload guard; the last good list stays",
        }
    );
    // A failed fetch is weather until the list goes stale; a refused or
    // held list is news at once.
    let alert_now = matches!(what, "refused" | "held") && !status.alerted;
    let stale_now = stale && !status.stale_alerted;
    if alert_now || stale_now {
        reloader.board().update(src.copy_path, |s| {
            s.alerted |= alert_now;
            s.stale_alerted |= stale_now;
        });
        reloader.feed_alert(crate::alerts::FeedProblem {
            at: SystemTime::now(),
            network: src.network.to_string(),
            url: src.shown.clone(),
            problem: if stale_now { "stale" } else { what },
            reason: code,
            detail: detail.clone(),
            age: age.unwrap_or_default(),
            on_stale: src.on_stale,
        });
    }
    if stale_now {
        tracing::error!(
            event = src.event("feed_stale", "dns_stale"),
            network = %src.network,
            url = %src.shown,
            age_seconds = age.map_or(0, |a| a.as_secs()),
            on_stale = src.on_stale,
            "older than max_age"
        );
    }
    if stale && src.dns_name.is_none() {
        reloader
            .metrics()
            .feed_stale
            .get_or_create(&FeedLabels {
                network: Name(src.network.into()),
            })
            .set(1);
    }
    status.failures
}
