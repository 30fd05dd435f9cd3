//! The `lockout:` section: when failed sign-ins lock a client out
//! (docs/lockout.md). The state itself is in `crate::lockout`.

use std::time::Duration;

use super::compile::Cx;
use super::raw::{RawLockout, S};

/// The `lockout:` section, compiled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// Failures within `within` that lock the key.
    pub after: u32,
    pub within: Duration,
    /// The first lock; each repeat doubles it.
    pub lock_for: Duration,
    pub max_lock: Duration,
    /// A success clears the key's failures (and its repeats).
    pub reset_on_success: bool,
    pub max_entries: usize,
}

pub mod defaults {
    use std::time::Duration;
    /// OWASP's and most consoles' figure: five tries cover typos, not a
    /// dictionary.
    pub const AFTER: u32 = 5;
    pub const WITHIN: Duration = Duration::from_secs(15 * 60);
    pub const LOCK_FOR: Duration = Duration::from_secs(15 * 60);
    /// A day: a guesser gets at most a handful of tries a day once the
    /// doubling has reached it.
    pub const MAX_LOCK: Duration = Duration::from_secs(24 * 3600);
    /// About 10 MB at most; far more addresses than an office has.
    pub const MAX_ENTRIES: usize = 100_000;
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            after: defaults::AFTER,
            within: defaults::WITHIN,
            lock_for: defaults::LOCK_FOR,
            max_lock: defaults::MAX_LOCK,
            reset_on_success: true,
            max_entries: defaults::MAX_ENTRIES,
        }
    }
}

impl Cx<'_, '_> {
    pub(super) fn lockout(&mut self, raw: Option<&S<RawLockout>>) -> Option<Settings> {
        let r = &raw?.value;
        let mut out = Settings::default();
        if let Some(a) = &r.after {
            if (1..=100).contains(&a.value) {
                out.after = u32::try_from(a.value).unwrap_or(defaults::AFTER);
            } else {
                self.error(
                    &a.referenced,
                    "lockout.after must be between 1 and 100 failures".into(),
                    Some("5 is common: enough for typos, too few for guessing".into()),
                );
            }
        }
        out.within = self.duration(r.within.as_ref(), defaults::WITHIN);
        out.lock_for = self.duration(r.lock_for.as_ref(), defaults::LOCK_FOR);
        out.max_lock = self.duration(r.max_lock.as_ref(), defaults::MAX_LOCK);
        if out.max_lock < out.lock_for {
            if let Some(m) = &r.max_lock {
                self.error(
                    &m.referenced,
                    "lockout.max_lock is shorter than lockout.lock_for".into(),
                    Some("max_lock caps the doubling: give at least lock_for".into()),
                );
            }
        }
        out.reset_on_success = r.reset_on_success.unwrap_or(true);
        if let Some(m) = &r.max_entries {
            if (1..=10_000_000).contains(&m.value) {
                out.max_entries = usize::try_from(m.value).unwrap_or(defaults::MAX_ENTRIES);
            } else {
                self.error(
                    &m.referenced,
                    "lockout.max_entries must be between 1 and 10000000".into(),
                    Some(format!(
                        "leave it out for {} (about 10 MB at most)",
                        defaults::MAX_ENTRIES
                    )),
                );
            }
        }
        Some(out)
    }
}
