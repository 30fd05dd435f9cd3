//! With a shared store (Redis), several replicas see attempts from the same
//! source; each alert of a key is claimed in the store first, so that the
//! replicas together send one first-attempt alert per key and window, and
//! one summary per key and window with every replica's attempts added up.
//! When the store cannot be asked, the alert is sent anyway: a duplicate is
//! better than silence.

use std::sync::Arc;
use std::time::Duration;

use super::Alert;
use super::aggregate::Scope;
use crate::lockout::redis::Store;
use crate::policy::alerts::AlertKey;

/// How long the replica that claimed a summary waits for the others to add
/// their counts: their windows end at about the same time.
const GRACE_MAX: Duration = Duration::from_secs(2);

pub struct Claims {
    pub store: Arc<Store>,
    pub key: AlertKey,
    pub window: Duration,
}

impl Claims {
    /// Whether an alert is claimed before it is sent: first attempts and
    /// summaries (a lockout happens on one replica; storms are per replica).
    pub fn claimed(alert: &Alert) -> bool {
        matches!(alert, Alert::Attempt(_) | Alert::Summary(_))
    }

    /// The alert to send, if this replica sends it.
    pub async fn settle(&self, alert: Alert) -> Option<Alert> {
        match alert {
            Alert::Attempt(a) => {
                let name = format!("first:{}:{}", mode(a.enforced), Scope::of(self.key, &a));
                match self.store.claim(&name, self.window).await {
                    Ok(false) => None,
                    _ => Some(Alert::Attempt(a)),
                }
            }
            Alert::Summary(mut s) => {
                let name = format!("window:{}:{}", mode(s.enforced), s.scope);
                match self
                    .store
                    .add_and_claim(&name, s.attempts, self.window)
                    .await
                {
                    Ok(false) => None,
                    Ok(true) => {
                        tokio::time::sleep((self.window / 10).min(GRACE_MAX)).await;
                        if let Ok(n) = self.store.take_count(&name).await {
                            s.attempts = s.attempts.max(n);
                        }
                        Some(Alert::Summary(s))
                    }
                    Err(_) => Some(Alert::Summary(s)),
                }
            }
            other => Some(other),
        }
    }
}

/// How long the replica that claimed the digest waits for the others to
/// add their counts: their clocks read the digest's time within seconds.
const DIGEST_GRACE: Duration = Duration::from_secs(5);
/// How long a digest's shared counts and claim are kept.
const DIGEST_TTL: Duration = Duration::from_secs(2 * 86_400);

impl Claims {
    /// The digest due at `period`: this replica's tally added to the
    /// store's; the replica that claims it waits for the others and gets
    /// the fleet's tally and how many replicas added theirs. `None`:
    /// another replica sends it. A store that cannot be asked: this
    /// replica's own (a duplicate is better than silence).
    pub async fn digest(
        &self,
        period: &str,
        local: super::digest::Tally,
    ) -> Option<(super::digest::Tally, Option<u64>)> {
        let since = local.since;
        if self
            .store
            .digest_add(period, &local.to_counts(), DIGEST_TTL)
            .await
            .is_err()
        {
            return Some((local, None));
        }
        match self
            .store
            .claim(&format!("digest:{period}"), DIGEST_TTL)
            .await
        {
            Ok(false) => None,
            Err(_) => Some((local, None)),
            Ok(true) => {
                tokio::time::sleep(DIGEST_GRACE).await;
                match self.store.digest_read(period).await {
                    Ok(counts) => {
                        let (fleet, replicas) = super::digest::Tally::from_counts(since, &counts);
                        Some((fleet, Some(replicas)))
                    }
                    Err(_) => Some((local, None)),
                }
            }
        }
    }
}

fn mode(enforced: bool) -> &'static str {
    if enforced { "enforced" } else { "report" }
}
