//! How the console has answered lately, as the requests saw it (passive
//! health, like nginx's `max_fails` bookkeeping, without taking the only
//! console out of service): when it last answered, when it last failed
//! and how. `GET /policy` shows it and `netwarden status` prints it, so
//! the person an alert woke up sees at once whether the console itself is
//! down.
//!
//! The request path pays one relaxed load per answer, and a store only
//! when the second changes: it reuses the `Instant` it took for the
//! latency histogram, no clock read of its own.

use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use serde_json::{Value, json};

/// Failures of the console's side, in the `upstream_requests` outcome's
/// words. Failures the client caused (its body stalled or broke) are not
/// the console's and are not recorded.
const FAILURES: [&str; 4] = ["timeout", "busy", "connect_error", "error"];

pub struct ConsoleHealth {
    base: Instant,
    base_wall: SystemTime,
    /// Seconds from `base` plus one; 0: never.
    last_answer: AtomicU64,
    last_failure: AtomicU64,
    /// Index into [`FAILURES`].
    last_failure_kind: AtomicU8,
}

impl Default for ConsoleHealth {
    fn default() -> Self {
        ConsoleHealth {
            base: Instant::now(),
            base_wall: SystemTime::now(),
            last_answer: AtomicU64::new(0),
            last_failure: AtomicU64::new(0),
            last_failure_kind: AtomicU8::new(0),
        }
    }
}

impl ConsoleHealth {
    fn tick(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.base).as_secs() + 1
    }

    /// The console answered a request sent at `at`.
    pub fn answered(&self, at: Instant) {
        let t = self.tick(at);
        if self.last_answer.load(Ordering::Relaxed) < t {
            self.last_answer.store(t, Ordering::Relaxed);
        }
    }

    /// A request sent at `at` failed at the console's side: `outcome` is
    /// its `upstream_requests` outcome; others are ignored.
    pub fn failed(&self, at: Instant, outcome: &str) {
        let Some(kind) = FAILURES.iter().position(|k| *k == outcome) else {
            return;
        };
        self.last_failure_kind
            .store(u8::try_from(kind).unwrap_or(0), Ordering::Relaxed);
        self.last_failure
            .fetch_max(self.tick(at), Ordering::Relaxed);
    }

    fn at(&self, tick: u64) -> Option<SystemTime> {
        (tick > 0).then(|| self.base_wall + Duration::from_secs(tick - 1))
    }

    /// For `GET /policy`: `state` is `answering` (its last answer is newer
    /// than its last failure), `failing` or `unknown` (no request has gone
    /// to it since start); the counts are since start.
    pub fn to_json(&self, upstream: &str, answered: u64, failed: &[(&str, u64)]) -> Value {
        let now = SystemTime::now();
        let (ok, bad) = (
            self.last_answer.load(Ordering::Relaxed),
            self.last_failure.load(Ordering::Relaxed),
        );
        let when = |tick: u64| {
            self.at(tick).map(|t| {
                json!({
                    "at": crate::telemetry::json::rfc3339(t),
                    "seconds_ago": now.duration_since(t).map_or(0, |d| d.as_secs()),
                })
            })
        };
        let state = match (ok, bad) {
            (0, 0) => "unknown",
            (ok, bad) if ok >= bad => "answering",
            _ => "failing",
        };
        let mut last_failure = when(bad);
        if let Some(f) = last_failure.as_mut() {
            f["outcome"] = json!(
                FAILURES[usize::from(self.last_failure_kind.load(Ordering::Relaxed))
                    .min(FAILURES.len() - 1)]
            );
        }
        let failures: serde_json::Map<String, Value> = failed
            .iter()
            .filter(|(k, _)| FAILURES.contains(k))
            .map(|(k, n)| ((*k).to_string(), json!(n)))
            .collect();
        json!({
            "upstream": upstream,
            "state": state,
            "last_answer": when(ok),
            "last_failure": last_failure,
            "answered": answered,
            "failed": failures,
        })
    }

    /// The outcomes counted as the console's failures.
    pub fn failures() -> &'static [&'static str] {
        &FAILURES
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_follows_the_newer_of_answer_and_failure() {
        let h = ConsoleHealth::default();
        assert_eq!(h.to_json("u", 0, &[])["state"], "unknown");
        let t0 = h.base;
        h.answered(t0);
        assert_eq!(h.to_json("u", 1, &[])["state"], "answering");
        h.failed(t0 + Duration::from_secs(5), "connect_error");
        let v = h.to_json("u", 1, &[("connect_error", 3), ("client_error", 9)]);
        assert_eq!(v["state"], "failing");
        assert_eq!(v["last_failure"]["outcome"], "connect_error");
        // Client-caused outcomes are neither recorded nor counted.
        assert_eq!(v["failed"], json!({"connect_error": 3}));
        h.failed(t0 + Duration::from_secs(9), "client_error");
        assert_eq!(
            h.to_json("u", 1, &[])["last_failure"]["outcome"],
            "connect_error"
        );
        h.answered(t0 + Duration::from_secs(6));
        assert_eq!(h.to_json("u", 1, &[])["state"], "answering");
        // An answer to an older request does not move the time back.
        h.answered(t0);
        assert_eq!(
            h.last_answer.load(Ordering::Relaxed),
            7,
            "the newest answer stays"
        );
    }
}
