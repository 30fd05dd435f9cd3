//! The wall clock that decisions, grants and windows are read against. One
//! place, so that the real binary can be tested at another instant:
//! `NETWARDEN_TEST_NOW=2026-12-24T17:59:58+09:00` starts the clock there,
//! and it runs on at normal speed (docs/cli.md). Reading it is one
//! `clock_gettime` (vDSO) and an add: no lock, no allocation.

use std::sync::OnceLock;

use jiff::{SignedDuration, Timestamp};

/// The variable that moves the clock, for tests.
pub const TEST_NOW_ENV: &str = "NETWARDEN_TEST_NOW";

static OFFSET: OnceLock<SignedDuration> = OnceLock::new();

/// Reads [`TEST_NOW_ENV`] once. Called at startup so that a bad value is an
/// error there, not a clock that silently reads the real time.
pub fn init() -> Result<(), String> {
    let offset = match std::env::var(TEST_NOW_ENV) {
        Ok(v) => {
            let start = crate::engine::time::parse_instant(&v).map_err(|_| {
                format!("{TEST_NOW_ENV}='{v}' is not an instant such as 2026-12-24T18:00:00+09:00")
            })?;
            start.duration_since(Timestamp::now())
        }
        Err(_) => SignedDuration::ZERO,
    };
    let _ = OFFSET.set(offset);
    Ok(())
}

/// Now, by the (possibly moved) clock, as a `SystemTime` (the digest's
/// schedule reads it).
pub fn system_now() -> std::time::SystemTime {
    std::time::SystemTime::try_from(now()).unwrap_or_else(|_| std::time::SystemTime::now())
}

/// Now, by the (possibly moved) clock.
pub fn now() -> Timestamp {
    let offset = OFFSET.get().copied().unwrap_or(SignedDuration::ZERO);
    Timestamp::now()
        .checked_add(offset)
        .unwrap_or_else(|_| Timestamp::now())
}
