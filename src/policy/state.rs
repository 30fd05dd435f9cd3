//! The `state:` section: where the lockout state lives (docs/lockout.md
//! "Shared state"). Read at startup only: a reload that changes it is
//! logged as `setting_overridden` and keeps the running store.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::compile::Cx;
use super::raw::{RawOnStoreError, RawState, RawStore, S};

/// The `state:` section, compiled.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Settings {
    /// Each process keeps its own counters.
    #[default]
    Memory,
    Redis(Redis),
}

/// `store: redis`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Redis {
    /// The environment variable that holds the `redis://` or `rediss://`
    /// URL (with its password, which the policy never holds).
    pub url_env: String,
    /// Put before every key netwarden writes, so that several consoles can
    /// share one Redis.
    pub prefix: String,
    /// The longest a sign-in waits for Redis before the fallback decides.
    pub timeout: Duration,
    pub on_store_error: OnStoreError,
    /// CA certificates (PEM) a `rediss://` server's certificate is checked
    /// against; the system's roots without it.
    pub ca_file: Option<PathBuf>,
}

/// What sign-ins do while Redis cannot be reached.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OnStoreError {
    /// Count in this process's memory, as `store: memory` does.
    #[default]
    Memory,
    /// Refuse sign-ins (503) until Redis is back.
    DenyLogin,
    /// Forward sign-ins without counting them.
    Allow,
}

impl OnStoreError {
    pub fn as_str(self) -> &'static str {
        match self {
            OnStoreError::Memory => "memory",
            OnStoreError::DenyLogin => "deny_login",
            OnStoreError::Allow => "allow",
        }
    }
}

pub mod defaults {
    use std::time::Duration;
    pub const URL_ENV: &str = "NETWARDEN_REDIS_URL";
    pub const PREFIX: &str = "netwarden:";
    /// A Redis on the same network answers in well under a millisecond; a
    /// sign-in should not wait long for one that does not.
    pub const TIMEOUT: Duration = Duration::from_millis(50);
}

impl Cx<'_, '_> {
    pub(super) fn state(&mut self, raw: Option<&S<RawState>>, base: &Path) -> Settings {
        let Some(raw) = raw else {
            return Settings::Memory;
        };
        let r = &raw.value;
        let redis = r.store.as_ref().is_some_and(|s| s.value == RawStore::Redis);
        if !redis {
            for (set, key) in [
                (r.url_env.as_ref().map(|v| &v.referenced), "url_env"),
                (r.prefix.as_ref().map(|v| &v.referenced), "prefix"),
                (r.timeout.as_ref().map(|v| &v.referenced), "timeout"),
                (
                    r.on_store_error.as_ref().map(|v| &v.referenced),
                    "on_store_error",
                ),
                (r.ca_file.as_ref().map(|v| &v.referenced), "ca_file"),
            ] {
                if let Some(at) = set {
                    self.warn(
                        at,
                        format!("state.{key} is only read with store: redis"),
                        Some("add store: redis, or remove it".into()),
                    );
                }
            }
            return Settings::Memory;
        }
        let url_env = match &r.url_env {
            Some(v) => self
                .env_name(v, "state.url_env")
                .unwrap_or_else(|| defaults::URL_ENV.into()),
            None => defaults::URL_ENV.into(),
        };
        let prefix = r
            .prefix
            .as_ref()
            .map_or_else(|| defaults::PREFIX.to_string(), |p| p.value.clone());
        if let Some(p) = r.prefix.as_ref()
            && (p.value.is_empty()
                || p.value.len() > 64
                || !p
                    .value
                    .bytes()
                    .all(|b| b.is_ascii_graphic() && b != b'{' && b != b'}'))
        {
            self.error(
                &p.referenced,
                "state.prefix must be 1 to 64 visible ASCII characters, without '{' or '}'".into(),
                Some(format!("for example {}", defaults::PREFIX)),
            );
        }
        let timeout = self.duration(r.timeout.as_ref(), defaults::TIMEOUT);
        if let Some(t) = r.timeout.as_ref()
            && (timeout.is_zero() || timeout > Duration::from_secs(5))
        {
            self.error(
                    &t.referenced,
                    "state.timeout must be more than 0 and at most 5s".into(),
                    Some("a sign-in waits this long for Redis before the fallback decides; 50ms is the default".into()),
                );
        }
        let on_store_error = match r.on_store_error.as_ref().map(|v| v.value) {
            None | Some(RawOnStoreError::Memory) => OnStoreError::Memory,
            Some(RawOnStoreError::DenyLogin) => OnStoreError::DenyLogin,
            Some(RawOnStoreError::Allow) => {
                if let Some(v) = &r.on_store_error {
                    self.warn(
                        &v.referenced,
                        "state.on_store_error allow stops counting failed sign-ins whenever Redis cannot be reached".into(),
                        Some("memory (the default) keeps counting in each replica meanwhile".into()),
                    );
                }
                OnStoreError::Allow
            }
        };
        Settings::Redis(Redis {
            url_env,
            prefix,
            timeout,
            on_store_error,
            ca_file: r.ca_file.as_ref().map(|p| base.join(&p.value)),
        })
    }
}
