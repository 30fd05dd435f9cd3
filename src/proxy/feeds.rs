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
struct Status {
    last_attempt: Option<SystemTime>,
    last_success: Option<SystemTime>,
    next_fetch: Option<SystemTime>,
    /// Fetches in a row that did not end in an applied or confirmed list.
    failures: u32,
    /// `failed`, `refused` or `held`, with the reason's code and words.
    problem: Option<(&'static str, String, String)>,
    /// The current bad episode was alerted (once per episode).
    alerted: bool,
    /// The staleness of the list in use was alerted.
    stale_alerted: bool,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Board {
    /// The lists every compile uses before those on disk.
    pub fn overlay(&self) -> Overlay {
        lock(&self.lists).clone()
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
    pub fn degraded(&self, feeds: &[Feed]) -> Vec<String> {
        let status = lock(&self.status);
        let failing = feeds
            .iter()
            .filter(|f| {
                status
                    .get(&f.copy_path)
                    .is_some_and(|s| s.problem.is_some())
            })
            .count();
        let stale = feeds.iter().filter(|f| f.used.stale).count();
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
                "{failing} published {} last good copy (the last fetch failed, or its list was refused or held); GET /policy says which",
                plural(failing)
            ));
        }
        if stale > 0 {
            out.push(format!(
                "{stale} published list{} older than max_age; GET /policy says which",
                if stale == 1 { " is" } else { "s are" }
            ));
        }
        out
    }

    /// `GET /policy`'s `feeds`.
    pub fn to_json(&self, feeds: &[Feed], now: jiff::Timestamp) -> Value {
        let status = lock(&self.status);
        feeds
            .iter()
            .map(|f| {
                let s = status.get(&f.copy_path).cloned().unwrap_or_default();
                let when = |t: Option<SystemTime>| t.map(rfc3339);
                json!({
                    "network": f.network,
                    "url": crate::feeds::shown_url(&f.url),
                    "source": f.used.origin.as_str(),
                    "file": f.used.path.display().to_string(),
                    "fetched_at": f.used.fetched_at.to_string(),
                    "changed_at": f.used.changed_at.to_string(),
                    "age_seconds": now.duration_since(f.used.fetched_at).as_secs().max(0),
                    "max_age_seconds": f.max_age.as_secs(),
                    "stale": f.used.stale,
                    "on_stale": f.on_stale.as_str(),
                    "prefixes": f.used.prefixes,
                    "generation": f.used.generation,
                    "last_attempt": when(s.last_attempt),
                    "last_success": when(s.last_success),
                    "next_fetch": when(s.next_fetch),
                    "failures": s.failures,
                    "problem": s.problem.as_ref().map(|(what, code, detail)| json!({
                        "what": what,
                        "reason": code,
                        "detail": detail,
                    })),
                })
            })
            .collect()
    }

    fn update(&self, path: &std::path::Path, f: impl FnOnce(&mut Status)) -> Status {
        let mut all = lock(&self.status);
        let s = all.entry(path.to_path_buf()).or_default();
        f(s);
        s.clone()
    }
}

/// Keeps one task per feed of the running policy: started for a feed that
/// appears, stopped for one that goes. Ends at shutdown.
pub async fn supervise(reloader: Arc<Reloader>, mut shutdown: watch::Receiver<bool>) {
    let mut tasks: HashMap<PathBuf, tokio::task::JoinHandle<()>> = HashMap::new();
    loop {
        let feeds: Vec<PathBuf> = reloader
            .policy()
            .feeds()
            .iter()
            .map(|f| f.copy_path.clone())
            .collect();
        tasks.retain(|path, task| {
            let keep = feeds.contains(path) && !task.is_finished();
            if !keep {
                task.abort();
            }
            keep
        });
        for path in feeds {
            if let std::collections::hash_map::Entry::Vacant(slot) = tasks.entry(path.clone()) {
                slot.insert(tokio::spawn(run(reloader.clone(), path, shutdown.clone())));
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
        if std::mem::take(&mut first) {
            // A restart does not wait a whole `every`: the list is due when
            // its copy is `every` old (at once when it is older).
            let age = crate::clock::now().duration_since(feed.used.fetched_at);
            let age = std::time::Duration::try_from(age).unwrap_or_default();
            delay = delay.saturating_sub(age);
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
/// says what each came to (the same steps as the schedule's).
pub async fn refresh_now(reloader: &Arc<Reloader>) -> Value {
    let mut out = Vec::new();
    for feed in reloader.policy().feeds().to_vec() {
        let (outcome, _) = once(reloader, &feed).await;
        let problem = lock(&reloader.board().status)
            .get(&feed.copy_path)
            .and_then(|s| s.problem.clone());
        out.push(json!({
            "network": feed.network,
            "outcome": outcome,
            "problem": problem.map(|(what, code, detail)| json!({
                "what": what, "reason": code, "detail": detail,
            })),
        }));
    }
    json!({ "feeds": out })
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
    let board = reloader.board();
    let path = &feed.copy_path;
    let turn = lock(&board.busy).entry(path.clone()).or_default().clone();
    let _one_fetch_at_a_time = turn.lock().await;
    let now = crate::clock::now();
    board.update(path, |s| s.last_attempt = Some(SystemTime::now()));
    // The list the running policy holds: the one to compare with, and
    // whose validators make the request conditional. A snapshot is no
    // fetched list: fetch it whole.
    let last: Option<Copy> = match board.overlay().get(path) {
        Some(c) => Some(c.clone()),
        None => Copy::read(path).ok().flatten(),
    };
    let fetched = crate::feeds::fetch(feed, last.as_ref()).await;
    let verdict = match fetched {
        Err(e) => {
            let n = problem(
                reloader,
                feed,
                "failed",
                e.code(),
                e.to_string(),
                last.as_ref(),
            );
            return ("failed", n);
        }
        Ok(f) => crate::feeds::verdict(feed, last.as_ref(), f, now),
    };
    match verdict {
        Verdict::Same(copy) => {
            count(reloader, feed, "unchanged");
            persist(reloader, feed, &copy);
            let was_stale = feed.used.stale;
            succeeded(reloader, feed);
            if was_stale {
                // It is current again: compile so that the network holds
                // the list again (on_stale: empty) and says it is fresh.
                reloader.reload("feed", false).await;
            }
            ("unchanged", 0)
        }
        Verdict::New(copy, change) => match reloader.apply_feed(path, copy.clone()).await {
            Outcome::Reloaded { .. } | Outcome::Unchanged => {
                count(reloader, feed, "updated");
                persist(reloader, feed, &copy);
                tracing::info!(
                    event = "feed_updated",
                    network = %feed.network,
                    url = %crate::feeds::shown_url(&feed.url),
                    generation = copy.generation,
                    prefixes = copy.prefixes.len(),
                    changes = %change.summary(3),
                    "published list updated"
                );
                succeeded(reloader, feed);
                ("updated", 0)
            }
            Outcome::Failed { errors } => {
                let detail = format!(
                    "the policy does not load with the new list: {}",
                    errors.first().map(String::as_str).unwrap_or("no detail")
                );
                let n = problem(
                    reloader,
                    feed,
                    "held",
                    "policy_tests",
                    detail,
                    last.as_ref(),
                );
                ("held", n)
            }
            Outcome::Refused { guard } => {
                let detail = format!(
                    "the new list would deny {} of the {} client addresses that used the console in the last 24 hours",
                    guard.denied, guard.recent
                );
                let n = problem(
                    reloader,
                    feed,
                    "held",
                    "reload_guard",
                    detail,
                    last.as_ref(),
                );
                ("held", n)
            }
        },
        Verdict::Refused { code, detail } => {
            let n = problem(reloader, feed, "refused", code, detail, last.as_ref());
            ("refused", n)
        }
    }
}

fn count(reloader: &Reloader, feed: &Feed, outcome: &'static str) {
    reloader
        .metrics()
        .feed_fetches
        .get_or_create(&FeedOutcomeLabels {
            network: Name(feed.network.as_str().into()),
            outcome,
        })
        .inc();
}

/// Keeps a confirmed or applied list: in memory for every later compile,
/// and on disk for the next start.
fn persist(reloader: &Reloader, feed: &Feed, copy: &Copy) {
    reloader.board().keep(copy, feed.copy_path.clone());
    let labels = FeedLabels {
        network: Name(feed.network.as_str().into()),
    };
    reloader
        .metrics()
        .feed_fetched
        .get_or_create(&labels)
        .set(copy.fetched_at.as_second());
    if let Err(e) = copy.write(&feed.copy_path) {
        tracing::warn!(
            event = "feed_copy_not_written",
            network = %feed.network,
            file = %feed.copy_path.display(),
            detail = %e,
            "the list is applied, but its copy could not be written: a restart starts from the older copy"
        );
    }
}

fn succeeded(reloader: &Reloader, feed: &Feed) {
    reloader.board().update(&feed.copy_path, |s| {
        s.last_success = Some(SystemTime::now());
        s.failures = 0;
        s.problem = None;
        s.alerted = false;
        s.stale_alerted = false;
    });
    reloader
        .metrics()
        .feed_degraded
        .get_or_create(&FeedLabels {
            network: Name(feed.network.as_str().into()),
        })
        .set(0);
}

/// The list was not applied: the last good one stays. Logged each time,
/// counted, alerted once per episode (refused and held at once; a failed
/// fetch when the list goes stale). Returns the failures in a row.
fn problem(
    reloader: &Arc<Reloader>,
    feed: &Feed,
    what: &'static str,
    code: &'static str,
    detail: String,
    last: Option<&Copy>,
) -> u32 {
    count(reloader, feed, what);
    let now = crate::clock::now();
    let age = last.map(|c| c.age(now));
    let stale = age.is_some_and(|a| a > feed.max_age);
    let status = reloader.board().update(&feed.copy_path, |s| {
        s.failures = s.failures.saturating_add(1);
        s.problem = Some((what, code.to_string(), detail.clone()));
    });
    reloader
        .metrics()
        .feed_degraded
        .get_or_create(&FeedLabels {
            network: Name(feed.network.as_str().into()),
        })
        .set(1);
    tracing::warn!(
        event = match what {
            "failed" => "feed_fetch_failed",
            "refused" => "feed_refused",
            _ => "feed_held",
        },
        network = %feed.network,
        url = %crate::feeds::shown_url(&feed.url),
        reason = code,
        detail = %detail,
        failures = status.failures,
        age_seconds = age.map_or(0, |a| a.as_secs()),
        "{}",
        match what {
            "failed" => "published list could not be fetched; the last good list stays",
            "refused" => "published list looks wrong and is not applied; the last good list stays",
            _ => "published list held: the policy with it fails its tests or the reload guard; the last good list stays",
        }
    );
    // A failed fetch is weather until the list goes stale; a refused or
    // held list is news at once.
    let alert_now = what != "failed" && !status.alerted;
    let stale_now = stale && !status.stale_alerted;
    if alert_now || stale_now {
        reloader.board().update(&feed.copy_path, |s| {
            s.alerted |= alert_now;
            s.stale_alerted |= stale_now;
        });
        reloader.feed_alert(crate::alerts::FeedProblem {
            at: SystemTime::now(),
            network: feed.network.clone(),
            url: crate::feeds::shown_url(&feed.url),
            problem: if stale_now { "stale" } else { what },
            reason: code,
            detail: detail.clone(),
            age: age.unwrap_or_default(),
            on_stale: feed.on_stale.as_str(),
        });
    }
    if stale && !feed.used.stale {
        tracing::error!(
            event = "feed_stale",
            network = %feed.network,
            url = %crate::feeds::shown_url(&feed.url),
            age_seconds = age.map_or(0, |a| a.as_secs()),
            on_stale = feed.on_stale.as_str(),
            "published list is older than max_age"
        );
        // Compile again so that on_stale applies and GET /policy says so.
        let r = reloader.clone();
        tokio::spawn(async move {
            r.reload("feed", false).await;
        });
    }
    status.failures
}
