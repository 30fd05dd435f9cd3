//! Grants and rules with `until:` stop matching by themselves: the engine
//! reads each request's instant against them, so nothing here changes a
//! decision. This task only tells: a `grant_expired` event when an
//! `until:` passes, and the `grant_next_expiry_timestamp_seconds` gauge,
//! so that ops see an exception end (or one that never will).

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use tokio::sync::watch;

use super::service::Shared;
use crate::engine::ruleset::Expiring;

/// How often the policy is looked at again when no `until:` is nearer: a
/// reload that adds a grant shows on the gauge within this.
const RECHECK: Duration = Duration::from_secs(5);

pub async fn watch(shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    // What expired before this process started is `check`'s to report.
    let mut last = crate::clock::now();
    loop {
        let policy = shared.policy.load_full();
        let now = crate::clock::now();
        let ruleset = policy.ruleset();
        for e in ruleset.expiring() {
            let until = e.until();
            if last < until && until <= now {
                announce(&e);
                shared.metrics.grants_expired.inc();
            }
        }
        last = now;
        let next = ruleset.next_expiry(now);
        shared
            .metrics
            .grant_next_expiry
            .set(next.map_or(0, Timestamp::as_second));
        let wait = next
            .map(|n| n.duration_since(now))
            .and_then(|d| Duration::try_from(d).ok())
            .map_or(RECHECK, |d| d.min(RECHECK));
        tokio::select! {
            // A little past the instant, so that `until <= now` holds.
            _ = tokio::time::sleep(wait + Duration::from_millis(5)) => {}
            _ = shutdown.changed() => return,
        }
    }
}

fn announce(e: &Expiring<'_>) {
    match e {
        Expiring::Grant { network, grant } => tracing::warn!(
            event = "grant_expired",
            network = %network,
            cidr = %grant.net,
            until = %grant.until,
            note = grant.note.as_deref().unwrap_or(""),
            "a grant's until: has passed; its addresses are no longer members of the network"
        ),
        Expiring::Rule(rule) => tracing::warn!(
            event = "grant_expired",
            rule = %rule.name,
            until = %e.until(),
            "a rule's until: has passed; it matches nothing now"
        ),
    }
}
