//! The policy: YAML -> validated, compiled [`Policy`].
//!
//! Loading has three steps: parse the YAML into located raw types
//! ([`raw`]), compile them into a `Policy` in which rules refer to networks by
//! index, networks are merged address ranges and paths are matchers
//! ([`compile`]), then run the policy's own `tests:` against the compiled
//! policy ([`selftest`]). Every problem is reported at once, located
//! ([`diagnostics`]). A `Policy` that exists is valid: the request path never
//! re-checks it.

mod accounts;
pub mod alerts;
mod client_ip;
pub mod compile;
pub mod diagnostics;
pub mod dns;
pub mod feeds;
mod geoip;
pub mod identity;
pub mod lockout;
mod networks;
pub mod pages;
pub mod raw;
mod rules;
pub mod selftest;
pub mod server;
pub mod state;
#[cfg(test)]
mod tests;

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use crate::engine::Action;
use crate::engine::client::ClientIpConfig;
use crate::engine::facts::Via;
pub use crate::engine::ruleset::{
    Dynamic, Grant, HostPattern, NetRef, Network, Rule, RuleKind, Ruleset,
};
use crate::geo::GeoSet;
pub use diagnostics::{Diagnostic, Severity};

/// Largest policy file read; a generated policy of 120,000 prefixes is ~3 MB.
pub const MAX_POLICY_BYTES: u64 = 64 * 1024 * 1024;

/// A compiled, valid policy.
#[derive(Debug)]
pub struct Policy {
    pub(crate) source: PathBuf,
    /// What the engine decides on.
    pub(crate) ruleset: Ruleset,
    /// What the console is told of the client (`client_ip.trust_proto`,
    /// `client_ip.strip_headers`).
    pub(crate) forwarding: Forwarding,
    pub(crate) server: server::ServerSettings,
    /// The `alerts:` section; `None` when the policy has none.
    pub(crate) alerts: Option<alerts::AlertSettings>,
    /// Files read besides the policy itself (`file:` network lists).
    pub(crate) sources: Vec<PathBuf>,
    /// Each network's `file:`, by network name: where `grant add` writes.
    pub(crate) network_files: Vec<(String, PathBuf)>,
    /// Each network's `feed:`, with the list this policy holds of it.
    pub(crate) feeds: Vec<feeds::Feed>,
    /// The `dns:` section.
    pub(crate) dns: dns::DnsSettings,
    /// Each name of each network's `dns_names:`, with the answer this
    /// policy holds.
    pub(crate) dns_names: Vec<dns::DnsName>,
    /// sha256 of the bytes this policy was compiled from (the policy file,
    /// then each file it read), as hex.
    pub(crate) fingerprint: String,
    /// The policy text it was compiled from: a list update recompiles
    /// this, never a file edited since.
    pub(crate) text: std::sync::Arc<str>,
    /// The `lockout:` section; `None`: failed sign-ins are counted and
    /// logged, nobody is locked out.
    pub(crate) lockout: Option<lockout::Settings>,
    /// The `state:` section: where the lockout state lives.
    pub(crate) state: state::Settings,
    /// The `pages:` section, with the templates read.
    pub(crate) pages: pages::PagesSettings,
    /// The `identity:` section; `None`: nobody's identity is read.
    pub(crate) identity: Option<identity::IdentitySettings>,
    /// The headers `identity.headers` names (removed from requests that
    /// do not come from a trusted proxy, with the built-in list).
    pub(crate) identity_headers: Vec<http::HeaderName>,
}

/// What the proxy does with the client address besides deciding: what the
/// forwarded request tells the console, and whether the addresses are
/// watched for deployment mistakes.
#[derive(Debug)]
pub struct Forwarding {
    /// Announce a trusted proxy's `X-Forwarded-Proto` (`http`/`https`)
    /// instead of the scheme the request reached netwarden with.
    pub trust_proto: bool,
    /// Client-address headers to remove besides the built-in list, lower case.
    pub strip_headers: Vec<http::HeaderName>,
    /// `client_ip.self_check` (default on): warn when nearly every request
    /// comes from one or two private addresses, or a trusted proxy sends no
    /// forwarding header.
    pub self_check: bool,
}

impl Default for Forwarding {
    fn default() -> Self {
        Self {
            trust_proto: false,
            strip_headers: Vec::new(),
            self_check: true,
        }
    }
}

impl Policy {
    pub fn identity(&self) -> Option<&identity::IdentitySettings> {
        self.identity.as_ref()
    }

    pub fn identity_headers(&self) -> &[http::HeaderName] {
        &self.identity_headers
    }

    /// What the engine decides on: rules, networks, client-address settings.
    pub fn ruleset(&self) -> &Ruleset {
        &self.ruleset
    }

    pub fn source(&self) -> &Path {
        &self.source
    }

    pub fn rules(&self) -> &[Rule] {
        &self.ruleset.rules
    }

    pub fn networks(&self) -> &[Network] {
        &self.ruleset.networks
    }

    pub fn default_action(&self) -> Action {
        self.ruleset.default
    }

    /// Whether the whole policy is report-only.
    pub fn report_only(&self) -> bool {
        self.ruleset.report_only
    }

    pub fn client_ip(&self) -> &ClientIpConfig {
        &self.ruleset.client_ip
    }

    pub fn lockout(&self) -> Option<&lockout::Settings> {
        self.lockout.as_ref()
    }

    /// Where the lockout state lives (read at startup).
    pub fn state(&self) -> &state::Settings {
        &self.state
    }

    pub fn forwarding(&self) -> &Forwarding {
        &self.forwarding
    }

    /// Languages, contact lines and templates of netwarden's own pages.
    pub fn pages(&self) -> &pages::PagesSettings {
        &self.pages
    }

    pub fn server(&self) -> &server::ServerSettings {
        &self.server
    }

    pub fn alerts(&self) -> Option<&alerts::AlertSettings> {
        self.alerts.as_ref()
    }

    pub fn geo(&self) -> &GeoSet {
        &self.ruleset.geo
    }

    /// The text this policy was compiled from.
    pub fn text(&self) -> std::sync::Arc<str> {
        self.text.clone()
    }

    /// sha256 (hex) of exactly the bytes this policy was compiled from.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// Files the policy read besides itself; a change to any of them is a
    /// change to the policy.
    pub fn sources(&self) -> &[PathBuf] {
        &self.sources
    }

    /// The networks that take addresses from a published list, and the
    /// list each holds in this policy.
    pub fn feeds(&self) -> &[feeds::Feed] {
        &self.feeds
    }

    /// How `dns_names:` are resolved.
    pub fn dns(&self) -> &dns::DnsSettings {
        &self.dns
    }

    /// Every DNS name the networks hold, and its answer in this policy.
    pub fn dns_names(&self) -> &[dns::DnsName] {
        &self.dns_names
    }

    /// The `file:` of network `name`, if it takes its addresses from one.
    pub fn network_file(&self, name: &str) -> Option<&std::path::Path> {
        self.network_files
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, p)| p.as_path())
    }

    /// Every network `ip` is a member of, and how, for `explain`.
    pub fn networks_containing(&self, ip: IpAddr, now: jiff::Timestamp) -> Vec<(&str, Via)> {
        self.ruleset.networks_containing(ip, now)
    }
}

/// A policy that loaded, with what `check` reports about it.
#[derive(Debug)]
pub struct Loaded {
    pub policy: Policy,
    pub warnings: Vec<Diagnostic>,
    pub tests_passed: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read policy {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("policy {} is too large ({size} bytes; the limit is {MAX_POLICY_BYTES})", path.display())]
    TooLarge { path: PathBuf, size: u64 },
    /// Every problem found, errors and warnings, in file order.
    #[error("policy {} is invalid: {} error(s)", path.display(), diagnostics.iter().filter(|d| d.is_error()).count())]
    Invalid {
        path: PathBuf,
        diagnostics: Vec<Diagnostic>,
    },
}

/// Reads, compiles and self-tests the policy at `path`.
pub fn load(path: &Path) -> Result<Loaded, LoadError> {
    load_with(path, &feeds::Overlay::new())
}

/// [`load`] with some published lists replaced by `overlay` (an update
/// being tried before it becomes the last good copy).
pub fn load_with(path: &Path, overlay: &feeds::Overlay) -> Result<Loaded, LoadError> {
    let io = |source| LoadError::Io {
        path: path.to_path_buf(),
        source,
    };
    let size = std::fs::metadata(path).map_err(io)?.len();
    if size > MAX_POLICY_BYTES {
        return Err(LoadError::TooLarge {
            path: path.to_path_buf(),
            size,
        });
    }
    let text = crate::files::read_to_string(path, MAX_POLICY_BYTES).map_err(io)?;
    load_str_with(&text, path, crate::clock::now(), overlay)
}

/// Compiles policy text; `path` names it in diagnostics and anchors relative
/// `file:` references.
pub fn load_str(text: &str, path: &Path) -> Result<Loaded, LoadError> {
    load_str_at(text, path, crate::clock::now())
}

/// [`load_str`] as at `now`: what has expired is warned about, and the
/// policy's tests without an `at:` are decided at that instant.
pub fn load_str_at(text: &str, path: &Path, now: jiff::Timestamp) -> Result<Loaded, LoadError> {
    load_str_with(text, path, now, &feeds::Overlay::new())
}

/// [`load_str_at`] with `overlay` in place of the lists on disk.
pub fn load_str_with(
    text: &str,
    path: &Path,
    now: jiff::Timestamp,
    overlay: &feeds::Overlay,
) -> Result<Loaded, LoadError> {
    let invalid = |diagnostics| LoadError::Invalid {
        path: path.to_path_buf(),
        diagnostics,
    };
    let (policy, mut diagnostics, tests) =
        compile::compile(text, path, now, overlay).map_err(invalid)?;
    let failures = selftest::run(&policy, &tests, path, text, now);
    if !failures.is_empty() {
        diagnostics.extend(failures);
        return Err(invalid(diagnostics));
    }
    Ok(Loaded {
        policy,
        warnings: diagnostics,
        tests_passed: tests.len(),
    })
}
