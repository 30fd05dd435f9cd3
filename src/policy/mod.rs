//! The policy: YAML -> validated, compiled [`Policy`].
//!
//! Loading has three steps: parse the YAML into located raw types
//! ([`raw`]), compile them into a `Policy` in which rules refer to networks by
//! index, networks are merged address ranges and paths are matchers
//! ([`compile`]), then run the policy's own `tests:` against the compiled
//! policy ([`selftest`]). Every problem is reported at once, located
//! ([`diagnostics`]). A `Policy` that exists is valid: the request path never
//! re-checks it.

pub mod alerts;
pub mod compile;
pub mod diagnostics;
mod geoip;
pub mod lockout;
pub mod raw;
pub mod selftest;
pub mod server;
pub mod state;

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use crate::engine::Action;
use crate::engine::client::ClientIpConfig;
use crate::engine::facts::{FactCache, FactTest, Via};
use crate::engine::path::{PathIndex, PathPattern};
use crate::engine::prefix::RangeSet;
use crate::geo::GeoSet;
pub use diagnostics::{Diagnostic, Severity};

/// Largest policy file read; a generated policy of 120,000 prefixes is ~3 MB.
pub const MAX_POLICY_BYTES: u64 = 64 * 1024 * 1024;

/// A compiled, valid policy.
#[derive(Debug)]
pub struct Policy {
    pub(crate) source: PathBuf,
    pub(crate) networks: Vec<Network>,
    pub(crate) client_ip: ClientIpConfig,
    /// What the console is told of the client (`client_ip.trust_proto`,
    /// `client_ip.strip_headers`).
    pub(crate) forwarding: Forwarding,
    pub(crate) rules: Vec<Rule>,
    pub(crate) default: Action,
    pub(crate) case_insensitive_paths: bool,
    /// `case_insensitive_methods`: `post` is accepted and matches `POST`
    /// (refused with 400 otherwise: consoles may read it as `POST`).
    pub(crate) case_insensitive_methods: bool,
    /// `allow_path_parameters`: `/admin;x/users` is forwarded as it is
    /// (refused otherwise: Tomcat, Jetty and Spring route it as `/admin/users`).
    pub(crate) allow_path_parameters: bool,
    /// `allow_trailing_dots`: `/admin.` is forwarded as it is (refused
    /// otherwise: IIS routes it as `/admin`).
    pub(crate) allow_trailing_dots: bool,
    /// Rules by the first segment of their paths, built once at compile.
    pub(crate) path_index: PathIndex,
    pub(crate) server: server::ServerSettings,
    /// The `alerts:` section; `None` when the policy has none.
    pub(crate) alerts: Option<alerts::AlertSettings>,
    pub(crate) geo: GeoSet,
    /// Files read besides the policy itself (`file:` network lists).
    pub(crate) sources: Vec<PathBuf>,
    /// sha256 of the bytes this policy was compiled from (the policy file,
    /// then each file it read), as hex.
    pub(crate) fingerprint: String,
    /// `mode: report` at the top: nothing is enforced.
    pub(crate) report_only: bool,
    /// The `lockout:` section; `None`: failed sign-ins are counted and
    /// logged, nobody is locked out.
    pub(crate) lockout: Option<lockout::Settings>,
    /// The `state:` section: where the lockout state lives.
    pub(crate) state: state::Settings,
}

/// How the forwarded request tells the console about its client.
#[derive(Debug, Default)]
pub struct Forwarding {
    /// Announce a trusted proxy's `X-Forwarded-Proto` (`http`/`https`)
    /// instead of the scheme the request reached netwarden with.
    pub trust_proto: bool,
    /// Client-address headers to remove besides the built-in list, lower case.
    pub strip_headers: Vec<http::HeaderName>,
}

/// A named set of addresses.
#[derive(Debug)]
pub struct Network {
    pub name: String,
    /// Members by address. For a network without facts anywhere in its
    /// includes and excepts, this is the whole network, excepts removed.
    pub ranges: RangeSet,
    /// CIDRs written directly in this network (its `cidrs` and `file`).
    pub direct_prefixes: usize,
    /// For networks that involve facts: what is checked per request.
    pub dynamic: Option<Dynamic>,
}

/// The per-request part of a network that involves facts. An address is a
/// member when it is in `ranges`, or a fact test holds, or it is a member of
/// an `include`; and it is a member of no `except` network (except wins).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Dynamic {
    pub facts: Vec<FactTest>,
    pub include: Vec<usize>,
    pub except: Vec<usize>,
}

/// A reference from a rule to a network.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetRef {
    pub(crate) id: usize,
    pub name: Box<str>,
}

/// How a matching rule decides.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RuleKind {
    /// `action: allow|deny`: every client.
    Action(Action),
    /// `allow_from`: allow clients in these networks, deny everyone else.
    AllowFrom(Vec<NetRef>),
    /// `deny_from`: deny clients in these networks; others fall through.
    DenyFrom(Vec<NetRef>),
}

impl RuleKind {
    pub fn networks(&self) -> &[NetRef] {
        match self {
            RuleKind::Action(_) => &[],
            RuleKind::AllowFrom(n) | RuleKind::DenyFrom(n) => n,
        }
    }

    /// Whether every request the rule matches is decided by it.
    pub fn is_terminal(&self) -> bool {
        !matches!(self, RuleKind::DenyFrom(_))
    }
}

/// `console.example.com` or `*.example.com` (any name below example.com).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostPattern {
    Exact(Box<str>),
    /// Stored with its leading dot: `.example.com`.
    Suffix(Box<str>),
}

/// A compiled rule; `None` for `paths`, `methods` or `hosts` means any.
#[derive(Debug, PartialEq, Eq)]
pub struct Rule {
    pub name: String,
    /// The name, shared: a metrics label without an allocation per request.
    pub label: std::sync::Arc<str>,
    pub paths: Option<Vec<PathPattern>>,
    pub methods: Option<Vec<Box<str>>>,
    pub hosts: Option<Vec<HostPattern>>,
    pub login: bool,
    pub kind: RuleKind,
    /// `mode: report`: evaluated and logged, never enforced; later rules
    /// decide as if it had not matched.
    pub report: bool,
    /// Line of the rule in the policy file, for `explain`.
    pub line: u32,
    /// Login routes: how the console's answer says a sign-in failed.
    pub outcome: Option<crate::engine::outcome::OutcomeSpec>,
    /// Login routes: where the sign-in's body names the account.
    pub account: Option<crate::engine::account::AccountSpec>,
}

impl Rule {
    /// Whether every request the rule matches is decided by it.
    pub fn is_terminal(&self) -> bool {
        !self.report && self.kind.is_terminal()
    }
}

impl Policy {
    pub fn source(&self) -> &Path {
        &self.source
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    pub fn networks(&self) -> &[Network] {
        &self.networks
    }

    pub fn default_action(&self) -> Action {
        self.default
    }

    /// Whether the whole policy is report-only.
    pub fn report_only(&self) -> bool {
        self.report_only
    }

    pub fn client_ip(&self) -> &ClientIpConfig {
        &self.client_ip
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

    pub fn server(&self) -> &server::ServerSettings {
        &self.server
    }

    pub fn alerts(&self) -> Option<&alerts::AlertSettings> {
        self.alerts.as_ref()
    }

    pub fn geo(&self) -> &GeoSet {
        &self.geo
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

    /// Whether `ip` is a member of network `id`, and how.
    pub(crate) fn member(&self, id: usize, ip: IpAddr, facts: &FactCache<'_>) -> Option<Via> {
        let net = &self.networks[id];
        let Some(dynamic) = &net.dynamic else {
            return net.ranges.contains(ip).then_some(Via::Cidr);
        };
        let via = if net.ranges.contains(ip) {
            Some(Via::Cidr)
        } else if let Some(t) = dynamic.facts.iter().find(|t| facts.matches(t)) {
            Some(Via::Fact(t.kind()))
        } else {
            // Compile made the include graph acyclic, so this terminates.
            dynamic
                .include
                .iter()
                .find_map(|&j| self.member(j, ip, facts))
        };
        via.filter(|_| {
            !dynamic
                .except
                .iter()
                .any(|&j| self.member(j, ip, facts).is_some())
        })
    }

    /// The first of `sets` that `ip` is a member of, and how.
    pub(crate) fn first_member<'a>(
        &'a self,
        sets: &'a [NetRef],
        ip: IpAddr,
        facts: &FactCache<'_>,
    ) -> Option<(&'a str, Via)> {
        sets.iter()
            .find_map(|n| self.member(n.id, ip, facts).map(|via| (&*n.name, via)))
    }

    /// Every network `ip` is a member of, and how, for `explain`.
    pub fn networks_containing(&self, ip: IpAddr) -> Vec<(&str, Via)> {
        let facts = FactCache::new(&self.geo, ip);
        (0..self.networks.len())
            .filter_map(|i| {
                self.member(i, ip, &facts)
                    .map(|via| (self.networks[i].name.as_str(), via))
            })
            .collect()
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
    load_str(&text, path)
}

/// Compiles policy text; `path` names it in diagnostics and anchors relative
/// `file:` references.
pub fn load_str(text: &str, path: &Path) -> Result<Loaded, LoadError> {
    let invalid = |diagnostics| LoadError::Invalid {
        path: path.to_path_buf(),
        diagnostics,
    };
    let (policy, mut diagnostics, tests) = compile::compile(text, path).map_err(invalid)?;
    let failures = selftest::run(&policy, &tests, path, text);
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
