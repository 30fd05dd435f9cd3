//! PagerDuty Events API v2: what to trigger and what to resolve. Pure.
//!
//! Each alert has a `dedup_key` for what it is about (a client or subnet's
//! blocked sign-ins, a locked client or account, the lockout store, a
//! published list), so PagerDuty folds a first attempt and its summaries
//! into one incident, and a resolve closes it: when a lock ends or an
//! operator releases it, when the store answers again.

use std::time::{Duration, Instant};

use ipnet::IpNet;
use serde_json::{Value, json};

use super::aggregate::Scope;
use super::message::Message;
use super::{Alert, Released};
use crate::policy::alerts::AlertKey;
use crate::telemetry::json::rfc3339;

/// PagerDuty's limit on `payload.summary`, in characters.
const SUMMARY_MAX: usize = 1024;

/// The incident an alert is about; `None` for kinds that open none (an
/// operator's release resolves, it does not page).
pub fn dedup_key(alert: &Alert, key: AlertKey) -> Option<String> {
    Some(match alert {
        Alert::Attempt(a) => blocked_key(&Scope::of(key, a), a.enforced),
        Alert::Summary(s) => blocked_key(&s.scope, s.enforced),
        Alert::Storm(_) => "netwarden/storm".into(),
        Alert::Lockout(l) => match (&l.account, &l.network) {
            (Some(a), Some(n)) => format!("netwarden/lockout/account/{a}/{n}"),
            (Some(a), None) => format!("netwarden/lockout/account/{a}"),
            _ => format!(
                "netwarden/lockout/{}",
                l.attempt
                    .client
                    .map_or_else(|| "unknown".to_string(), |ip| ip.to_string())
            ),
        },
        Alert::StateStore(_) | Alert::StateStoreRestored { .. } => "netwarden/state_store".into(),
        Alert::Feed(p) => format!("netwarden/feed/{}", p.network),
        Alert::SinkDisabled(d) => format!("netwarden/sink_disabled/{}", d.sink),
        Alert::Test { .. } => "netwarden/test".into(),
        Alert::Released(_) | Alert::Digest(_) => return None,
    })
}

fn blocked_key(scope: &Scope, enforced: bool) -> String {
    format!(
        "netwarden/blocked/{scope}{}",
        if enforced { "" } else { "/report-only" }
    )
}

/// A `trigger` event: the headline in the sink's language as the summary,
/// the webhook's body (stable English fields and the worded `text`) as
/// custom details, the runbook as a link when it is a web address.
pub fn trigger(
    alert: &Alert,
    m: &Message,
    routing_key: &str,
    dedup_key: &str,
    details: Value,
) -> Value {
    let mut summary = m.title.clone();
    if summary.chars().count() > SUMMARY_MAX {
        summary = summary.chars().take(SUMMARY_MAX - 1).collect();
        summary.push('…');
    }
    let mut v = json!({
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": dedup_key,
        "client": "netwarden",
        "payload": {
            "summary": summary,
            "source": m.instance,
            "severity": m.severity.as_str(),
            "timestamp": rfc3339(super::message::at(alert)),
            "component": "netwarden",
            "class": alert.kind(),
            "custom_details": details,
        },
    });
    if m.runbook.starts_with("https://") || m.runbook.starts_with("http://") {
        v["links"] = json!([{"href": m.runbook, "text": m.labels.runbook}]);
    }
    v
}

/// A `resolve` event for `dedup_key`.
pub fn resolve(routing_key: &str, dedup_key: &str) -> Value {
    json!({
        "routing_key": routing_key,
        "event_action": "resolve",
        "dedup_key": dedup_key,
    })
}

/// The lockout incidents a sink has opened, each with when its lock ends:
/// resolved then, or at once when an operator's release names it.
#[derive(Default)]
pub struct OpenLocks {
    open: Vec<(String, Instant)>,
}

/// Locks remembered at most: a storm of lockouts is capped upstream, and
/// an incident past this is resolved by PagerDuty's own auto-resolve.
const OPEN_MAX: usize = 10_000;

impl OpenLocks {
    /// A lockout was triggered under `key`, for `lock` from `now`.
    pub fn opened(&mut self, key: String, lock: Duration, now: Instant) {
        self.open.retain(|(k, _)| *k != key);
        if self.open.len() < OPEN_MAX {
            self.open.push((key, now + lock));
        }
    }

    /// When the next lock ends.
    pub fn next_end(&self) -> Option<Instant> {
        self.open.iter().map(|(_, at)| *at).min()
    }

    /// The keys whose locks have ended by `now`, forgotten.
    pub fn ended(&mut self, now: Instant) -> Vec<String> {
        let (done, open) = std::mem::take(&mut self.open)
            .into_iter()
            .partition(|(_, at)| *at <= now);
        self.open = open;
        done.into_iter().map(|(k, _)| k).collect()
    }

    /// The keys an operator's release lifted, forgotten.
    pub fn released(&mut self, r: &Released) -> Vec<String> {
        let (done, open) = std::mem::take(&mut self.open)
            .into_iter()
            .partition(|(k, _)| names(r, k));
        self.open = open;
        done.into_iter().map(|(k, _)| k).collect()
    }
}

/// Whether release `r` lifts the lock under dedup key `k`.
fn names(r: &Released, k: &str) -> bool {
    let Some(rest) = k.strip_prefix("netwarden/lockout/") else {
        return false;
    };
    match r.selector {
        "account" | "account_hash" => rest
            .strip_prefix("account/")
            .is_some_and(|a| a == r.target || a.starts_with(&format!("{}/", r.target))),
        "address" => rest == r.target,
        "network" => {
            let Ok(net) = r.target.parse::<IpNet>() else {
                return false;
            };
            match rest.strip_prefix("account/") {
                // An account locked from this network.
                Some(a) => a.split_once('/').is_some_and(|(_, n)| n == r.target),
                None => rest
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| net.contains(&ip)),
            }
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::SystemTime;

    use super::*;
    use crate::alerts::{Attempt, Lockout};

    fn lockout(account: Option<&str>, network: Option<&str>) -> Alert {
        Alert::Lockout(Arc::new(Lockout {
            attempt: Attempt::example(),
            failures: 5,
            lock: Duration::from_secs(900),
            strike: 1,
            account: account.map(Into::into),
            network: network.map(Into::into),
        }))
    }

    fn release(selector: &'static str, target: &str) -> Released {
        Released {
            at: SystemTime::UNIX_EPOCH,
            by: std::net::IpAddr::from([10, 0, 0, 4]),
            selector,
            target: target.into(),
            released: 1,
        }
    }

    #[test]
    fn a_first_attempt_and_its_summaries_share_one_incident() {
        let a = Attempt::example();
        let first = dedup_key(&Alert::Attempt(Arc::new(a.clone())), AlertKey::Subnet);
        assert_eq!(first.as_deref(), Some("netwarden/blocked/203.0.113.0/24"));
        let s = crate::alerts::Summary {
            scope: Scope::of(AlertKey::Subnet, &a),
            enforced: true,
            attempts: 3,
            from: SystemTime::UNIX_EPOCH,
            to: SystemTime::UNIX_EPOCH,
            last: Arc::new(a),
        };
        assert_eq!(dedup_key(&Alert::Summary(s), AlertKey::Subnet), first);
        assert_eq!(
            dedup_key(
                &lockout(Some("0bc6c5e2d1a4"), Some("203.0.113.0/24")),
                AlertKey::Client
            )
            .as_deref(),
            Some("netwarden/lockout/account/0bc6c5e2d1a4/203.0.113.0/24")
        );
        assert_eq!(
            dedup_key(
                &Alert::StateStoreRestored {
                    at: SystemTime::UNIX_EPOCH
                },
                AlertKey::Client
            )
            .as_deref(),
            Some("netwarden/state_store")
        );
    }

    #[test]
    fn locks_resolve_when_they_end_or_when_an_operator_names_them() {
        let now = Instant::now();
        let mut open = OpenLocks::default();
        open.opened(
            "netwarden/lockout/203.0.113.7".into(),
            Duration::from_secs(60),
            now,
        );
        open.opened(
            "netwarden/lockout/account/0bc6c5e2d1a4/203.0.113.0/24".into(),
            Duration::from_secs(600),
            now,
        );
        open.opened(
            "netwarden/lockout/198.51.100.1".into(),
            Duration::from_secs(900),
            now,
        );
        assert_eq!(open.next_end(), Some(now + Duration::from_secs(60)));
        assert_eq!(
            open.ended(now + Duration::from_secs(61)),
            vec!["netwarden/lockout/203.0.113.7".to_string()]
        );
        assert!(open.released(&release("address", "203.0.113.8")).is_empty());
        assert_eq!(
            open.released(&release("network", "203.0.113.0/24")),
            vec!["netwarden/lockout/account/0bc6c5e2d1a4/203.0.113.0/24".to_string()]
        );
        assert_eq!(
            open.released(&release("network", "198.51.100.0/24")),
            vec!["netwarden/lockout/198.51.100.1".to_string()]
        );
        assert_eq!(open.next_end(), None);
    }
}
