//! The `lockout:` section: when failed sign-ins lock a client out
//! (docs/lockout.md). The state itself is in `crate::lockout`.

use std::time::Duration;

use super::compile::Cx;
use super::raw::{RawAccount, RawLockout, RawLockoutKey, S};
use crate::engine::account::{self, AccountSpec};

/// What failed sign-ins are counted against (docs/lockout.md "Keys").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum KeyKind {
    /// The client address, IPv6 by its /64.
    #[default]
    Address,
    /// The account together with the client's /24 (IPv4) or /64 (IPv6).
    AccountAndNetwork,
    /// The account alone, from anywhere.
    Account,
}

impl KeyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyKind::Address => "address",
            KeyKind::AccountAndNetwork => "account_and_network",
            KeyKind::Account => "account",
        }
    }
}

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
    pub key: KeyKind,
    /// The environment variable that holds the key of the account hashes;
    /// `None`: a random key per process.
    pub account_key_env: Option<String>,
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
            key: KeyKind::Address,
            account_key_env: None,
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
        if out.max_lock < out.lock_for
            && let Some(m) = &r.max_lock
        {
            self.error(
                &m.referenced,
                "lockout.max_lock is shorter than lockout.lock_for".into(),
                Some("max_lock caps the doubling: give at least lock_for".into()),
            );
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
        out.key = match r.key.as_ref().map(|k| k.value) {
            None | Some(RawLockoutKey::Address) => KeyKind::Address,
            Some(RawLockoutKey::AccountAndNetwork) => KeyKind::AccountAndNetwork,
            Some(RawLockoutKey::Account) => KeyKind::Account,
        };
        if let Some(k) = r.key.as_ref().filter(|k| k.value == RawLockoutKey::Account) {
            self.warn(
                &k.referenced,
                "lockout.key account lets anyone on an allowed network lock a known operator out by failing on purpose".into(),
                Some("account_and_network limits that to the attacker's own /24 or /64; see docs/lockout.md \"Keys\"".into()),
            );
        }
        out.account_key_env = r
            .account_key_env
            .as_ref()
            .and_then(|v| self.env_name(v, "lockout.account_key_env"));
        Some(out)
    }

    /// A login rule's `account:`: where its sign-ins name the account.
    pub(super) fn account(&mut self, raw: &S<RawAccount>, ctx: &str) -> Option<AccountSpec> {
        let r = &raw.value;
        let mut ok = true;
        if r.form.is_none() && r.json.is_none() {
            self.error(
                &raw.referenced,
                format!("{ctx}: 'account' names neither a form field nor a JSON pointer"),
                Some(
                    "add form: <field name> (forms) or json: /pointer (JSON bodies), or both"
                        .into(),
                ),
            );
            ok = false;
        }
        if let Some(f) = r.form.as_ref().filter(|f| f.value.is_empty()) {
            self.error(
                &f.referenced,
                format!("{ctx}: account.form is empty"),
                Some(
                    "write the name of the form field that holds the account, e.g. username".into(),
                ),
            );
            ok = false;
        }
        if let Some(j) = r.json.as_ref().filter(|j| !j.value.starts_with('/')) {
            self.error(
                &j.referenced,
                format!("{ctx}: account.json '{}' is not a JSON pointer", j.value),
                Some(format!(
                    "a JSON pointer (RFC 6901) starts with '/': /{} for a top-level key",
                    j.value.trim_start_matches('/')
                )),
            );
            ok = false;
        }
        let mut max_body = account::defaults::MAX_BODY;
        if let Some(m) = &r.max_body {
            match usize::try_from(m.value) {
                Ok(n @ 1..=account::defaults::MAX_BODY_LIMIT) => max_body = n,
                _ => {
                    self.error(
                        &m.referenced,
                        format!(
                            "{ctx}: account.max_body must be between 1 and {} bytes",
                            account::defaults::MAX_BODY_LIMIT
                        ),
                        Some(format!(
                            "leave it out for {} (16 KiB), more than a sign-in form needs",
                            account::defaults::MAX_BODY
                        )),
                    );
                    ok = false;
                }
            }
        }
        ok.then(|| AccountSpec {
            form: r.form.as_ref().map(|f| f.value.as_str().into()),
            json: r.json.as_ref().map(|j| j.value.as_str().into()),
            max_body,
        })
    }
}
