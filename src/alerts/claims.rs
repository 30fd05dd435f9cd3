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

fn mode(enforced: bool) -> &'static str {
    if enforced { "enforced" } else { "report" }
}
