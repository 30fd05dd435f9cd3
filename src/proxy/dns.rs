//! DNS names kept current while serving: one task per name looks it up at
//! its TTL (within `dns.min_ttl` and `dns.max_ttl`), and a changed answer
//! is tried as an edit is (the compile, the policy's tests, the reload
//! guard), through the same steps as a published list
//! ([`super::feeds`]). A failed lookup keeps the last answer until
//! `dns.max_age`; NXDOMAIN empties the name after `dns.nxdomain_grace`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::watch;

use super::feeds::{Source, count, persist, problem, succeeded};
use super::reload::{Outcome, Reloader};
use crate::feeds::dns::{Lookup, Step};
use crate::lists::Copy;
use crate::policy::dns::DnsName;

fn find(reloader: &Reloader, path: &Path) -> Option<DnsName> {
    reloader
        .policy()
        .dns_names()
        .iter()
        .find(|n| n.copy_path == path)
        .cloned()
}

/// One name: look up, apply; then wait for the TTL.
pub async fn run(reloader: Arc<Reloader>, path: PathBuf, mut shutdown: watch::Receiver<bool>) {
    let mut failures = 0u32;
    let mut ttl: Option<Duration> = None;
    let mut first = true;
    loop {
        let Some(name) = find(&reloader, &path) else {
            return;
        };
        let settings = reloader.policy().dns().clone();
        let mut delay =
            crate::feeds::dns::next_delay(&settings, ttl, failures, crate::feeds::jitter());
        let age = super::feeds::age_of(reloader.board(), &path, name.used.fetched_at);
        if std::mem::take(&mut first) {
            // After a restart the name is due when its answer is min_ttl old.
            delay = settings.min_ttl.saturating_sub(age);
        }
        // Awake when the answer goes stale, to say so at once.
        if age < settings.max_age {
            delay = delay.min(settings.max_age - age + Duration::from_secs(1));
        }
        reloader.board().update(&path, |s| {
            s.next_fetch = Some(SystemTime::now() + delay);
        });
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = shutdown.changed() => return,
        }
        let Some(name) = find(&reloader, &path) else {
            return;
        };
        let (_, f, t) = once(&reloader, &name).await;
        failures = f;
        ttl = t;
    }
}

/// One lookup of `name`: what it came to (`updated`, `unchanged`,
/// `nxdomain`, `failed`, `held`), the failures in a row after it, and the
/// answer's TTL.
pub async fn once(
    reloader: &Arc<Reloader>,
    name: &DnsName,
) -> (&'static str, u32, Option<Duration>) {
    let settings = reloader.policy().dns().clone();
    let src = Source::dns(name, settings.max_age);
    let board = reloader.board();
    let turn = board.turn(&name.copy_path);
    let _one_lookup_at_a_time = turn.lock().await;
    board.update(&name.copy_path, |s| {
        s.last_attempt = Some(SystemTime::now())
    });
    let last: Option<Copy> = match board.list(&name.copy_path) {
        Some(c) => Some(c),
        None => super::feeds::read_copy(&name.copy_path).await,
    };
    let lookup = crate::feeds::dns::resolve(&settings, &name.name).await;
    let ttl = match &lookup {
        Lookup::Found { ttl, .. } => Some(*ttl),
        _ => None,
    };
    // From this process's memory, else from the copy: a restart during the
    // grace does not restart it (red-team review).
    let mut nx_since = board
        .nx_since(&name.copy_path)
        .or_else(|| last.as_ref().and_then(|c| c.no_address_since));
    let now = crate::clock::now();
    let step = crate::feeds::dns::step(
        &name.name,
        last.as_ref(),
        lookup,
        &mut nx_since,
        settings.nxdomain_grace,
        now,
    );
    board.update(&name.copy_path, |s| s.nx_since = nx_since);
    // An NXDOMAIN episode that begins (or ends) while the answer in force
    // stays is written to the copy, so that it survives a restart.
    if let (Step::Keep { .. }, Some(c)) = (&step, &last)
        && c.no_address_since != nx_since
    {
        let kept = Copy {
            no_address_since: nx_since,
            ..c.clone()
        };
        persist(reloader, &src, &kept).await;
    }
    match step {
        Step::Same(copy) => {
            count(reloader, &src, "unchanged");
            persist(reloader, &src, &copy).await;
            succeeded(reloader, &src);
            super::feeds::refresh_expiry(reloader, &src, name.used.fetched_at, copy, "dns").await;
            ("unchanged", 0, ttl)
        }
        Step::New(copy, change) => {
            match reloader
                .apply_feed(&name.copy_path, copy.clone(), "dns")
                .await
            {
                Outcome::Reloaded { .. } | Outcome::Unchanged => {
                    count(reloader, &src, "updated");
                    persist(reloader, &src, &copy).await;
                    tracing::info!(
                        event = "dns_updated",
                        network = %name.network,
                        name = %name.name,
                        generation = copy.generation,
                        addresses = copy.prefixes.len(),
                        changes = %change.summary(3),
                        "a DNS name's addresses changed"
                    );
                    succeeded(reloader, &src);
                    ("updated", 0, ttl)
                }
                outcome => (
                    "held",
                    super::feeds::held(reloader, &src, outcome, "answer", last.as_ref()),
                    ttl,
                ),
            }
        }
        Step::Keep { code, detail } => {
            let what = if code == "nxdomain" {
                "nxdomain"
            } else {
                "failed"
            };
            let n = problem(reloader, &src, what, code, detail, last.as_ref());
            (what, n, None)
        }
    }
}
