//! Raw policy -> compiled [`Policy`], collecting every problem with its
//! place. This file holds the walk over the sections and the context every
//! section's compiler reports into; each section compiles in its own file
//! (`networks`, `client_ip`, `rules`,
//! `server`, `alerts`, `lockout`,
//! `state`, `geoip`, the tests in `selftest`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use serde_saphyr::{Location, Options};

use super::diagnostics::{Collector, Diagnostic, Severity};
use super::networks::Resolve;
use super::raw::{RawAction, RawMode, RawPolicy, S};
use super::selftest::PolicyTest;
use super::{Network, Policy, Rule, Ruleset};
use crate::engine::Action;
use crate::engine::path::PathIndex;
use crate::engine::prefix::RangeSet;

type Compiled = (Policy, Vec<Diagnostic>, Vec<PolicyTest>);

/// Compiles `text`. On success the diagnostics are warnings only; on failure
/// they hold at least one error.
pub fn compile(
    text: &str,
    path: &Path,
    now: Timestamp,
    overlay: &super::feeds::Overlay,
) -> Result<Compiled, Vec<Diagnostic>> {
    run(text, path, now, overlay, false).0
}

/// The feeds and DNS names of the policy in `text` that have no list or
/// answer yet (no copy in `state_dir`): what `serve` fetches and resolves
/// before its first compile.
pub fn feeds_missing(text: &str, path: &Path, now: Timestamp) -> super::feeds::Missing {
    run(text, path, now, &super::feeds::Overlay::new(), true).1
}

fn run(
    text: &str,
    path: &Path,
    now: Timestamp,
    overlay: &super::feeds::Overlay,
    probe: bool,
) -> (Result<Compiled, Vec<Diagnostic>>, super::feeds::Missing) {
    let mut c = Collector::new(path, text);
    let raw: RawPolicy = match parse_yaml(text) {
        Ok(raw) => raw,
        Err(e) => {
            let (line, column) = e
                .location()
                .map_or((0, 0), |l| (clamp(l.line()), clamp(l.column())));
            let (message, help) = yaml_problem(&yaml_message(&e));
            c.push(Severity::Error, line, column, message, Some(help));
            return (Err(c.diagnostics), super::feeds::Missing::default());
        }
    };
    let base = path.parent().unwrap_or(Path::new("."));
    let mut extra = Vec::new();
    let mut digest = ring::digest::Context::new(&ring::digest::SHA256);
    digest.update(text.as_bytes());
    let mut cx = Cx {
        c,
        base,
        extra: &mut extra,
        sources: Vec::new(),
        network_files: Vec::new(),
        digest,
        now,
        overlay,
        state_dir: None,
        feeds: Vec::new(),
        probe,
        missing: Vec::new(),
        dns: super::dns::DnsSettings::default(),
        dns_names: Vec::new(),
        missing_dns: Vec::new(),
        published_all: Vec::new(),
        published_at: None,
        groups: super::accounts::Groups::default(),
        identity_present: false,
    };
    let policy = cx.policy(raw, path);
    let missing = super::feeds::Missing {
        feeds: std::mem::take(&mut cx.missing),
        dns: std::mem::take(&mut cx.missing_dns),
        dns_settings: cx.dns.clone(),
    };
    let mut diagnostics = cx.c.diagnostics;
    diagnostics.append(&mut extra);
    diagnostics.sort_by(|a, b| {
        (a.severity, &a.file, a.line, a.column).cmp(&(b.severity, &b.file, b.line, b.column))
    });
    let result = match policy {
        Some(mut compiled) if !diagnostics.iter().any(Diagnostic::is_error) => {
            compiled.0.text = std::sync::Arc::from(text);
            Ok((compiled.0, diagnostics, compiled.1))
        }
        _ => Err(diagnostics),
    };
    (result, missing)
}

fn parse_yaml(text: &str) -> Result<RawPolicy, serde_saphyr::Error> {
    let mut options = Options::default();
    // `yes`/`on` are not booleans (YAML 1.2); refuse instead of guessing.
    options.strict_booleans = true;
    options.with_snippet = false;
    serde_saphyr::from_str_with_options(text, options)
}

/// The parser's message without its own "line N column M:" prefix.
fn yaml_message(e: &serde_saphyr::Error) -> String {
    let text = e.without_snippet().to_string();
    let text = text.strip_prefix("error: ").unwrap_or(&text);
    let text = match text.split_once(": ") {
        Some((head, rest)) if head.starts_with("line ") && head.contains(" column ") => rest,
        _ => text,
    };
    // The location is printed in front already.
    match text.rfind(" at line ") {
        Some(at) if text[at..].contains(", column ") => text[..at].to_string(),
        _ => text.to_string(),
    }
}

/// The YAML parser's complaint in netwarden's words, with a help line:
/// every error says how to fix it.
fn yaml_problem(text: &str) -> (String, String) {
    // "unknown field `allow_form`, expected one of `name`, `paths`, ..."
    // (serde's wording; names may or may not be in backticks).
    let names = |list: &str| -> Vec<String> {
        list.split(", ")
            .map(|n| {
                n.trim()
                    .trim_matches('`')
                    .trim_start_matches("or ")
                    .trim_matches('`')
                    .to_string()
            })
            .filter(|n| !n.is_empty())
            .collect()
    };
    let quoted = |s: &str| s.split('`').nth(1).map(str::to_string);
    for (kind, what) in [("unknown field", "key"), ("unknown variant", "value")] {
        if let Some(rest) = text.strip_prefix(kind) {
            let wrong = quoted(rest).unwrap_or_default();
            let expected = rest
                .split_once("expected one of ")
                .or_else(|| rest.split_once("expected "))
                .map(|(_, l)| names(l))
                .unwrap_or_default();
            let takes = expected.join(", ");
            let help =
                match super::diagnostics::closest(&wrong, expected.iter().map(String::as_str)) {
                    Some(n) => format!("did you mean '{n}'? (here: {takes})"),
                    None if takes.is_empty() => {
                        "see docs/policy.md for what this section takes".into()
                    }
                    None => format!("this place takes: {takes} (docs/policy.md)"),
                };
            return (format!("unknown {what} '{wrong}'"), help);
        }
    }
    if let Some(rest) = text.strip_prefix("missing field") {
        let key = quoted(rest).unwrap_or_default();
        return (
            format!("missing key '{key}'"),
            format!("add {key}: (docs/policy.md shows what it takes)"),
        );
    }
    if text.starts_with("invalid boolean") {
        return (
            "expected true or false".into(),
            "write true or false: YAML 1.1's yes, no, on and off are not booleans here, so that nothing is guessed".into(),
        );
    }
    if text.starts_with("expected sequence") {
        return (
            "expected a list here".into(),
            "write a list: [a, b] on one line, or one '- item' per line (one item is [a])".into(),
        );
    }
    if text.contains("duplicate mapping key") {
        return (
            text.into(),
            "each key may appear once; merge the two entries".into(),
        );
    }
    if let Some(rest) = text.strip_prefix("invalid type: ") {
        let (got, expected) = rest.split_once(", expected ").unwrap_or((rest, ""));
        let help = if expected.contains("list") || expected.contains("sequence") {
            "write a list: [a, b] on one line, or one '- item' per line".to_string()
        } else if expected.contains("map") || expected.contains("struct") {
            "write keys and values here (key: value), as docs/policy.md shows".to_string()
        } else {
            format!("write {expected} here (docs/policy.md)")
        };
        let expected = if expected.is_empty() {
            "something else"
        } else {
            expected
        };
        return (format!("found {got} where {expected} belongs"), help);
    }
    (
        text.into(),
        "the YAML could not be read at the place shown; check indentation, quotes and brackets there".into(),
    )
}

fn clamp(v: u64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

pub(super) fn at(loc: &Location) -> (u32, u32) {
    (clamp(loc.line()), clamp(loc.column()))
}

pub(super) struct Cx<'a, 'e> {
    pub(super) c: Collector<'a>,
    pub(super) base: &'a Path,
    /// Diagnostics located in other files (network lists).
    pub(super) extra: &'e mut Vec<Diagnostic>,
    /// Files the policy reads besides itself (network lists).
    pub(super) sources: Vec<PathBuf>,
    /// Each network's `file:`, by network name.
    pub(super) network_files: Vec<(String, PathBuf)>,
    /// sha256 of exactly the bytes compiled: the policy, then each file read.
    pub(super) digest: ring::digest::Context,
    /// When the policy is compiled: `until:` already passed or coming soon
    /// is warned about against it.
    pub(super) now: Timestamp,
    /// Lists to compile with instead of the copies on disk.
    pub(super) overlay: &'a super::feeds::Overlay,
    /// `feeds.state_dir`, resolved against the policy's directory.
    pub(super) state_dir: Option<PathBuf>,
    /// Each network's `feed:`, compiled, with the list it holds.
    pub(super) feeds: Vec<super::feeds::Feed>,
    /// Only find the feeds that have no list yet (`feeds_missing`).
    pub(super) probe: bool,
    pub(super) missing: Vec<super::feeds::Feed>,
    /// The `dns:` section.
    pub(super) dns: super::dns::DnsSettings,
    /// Each name of each network's `dns_names:`, with its answer.
    pub(super) dns_names: Vec<super::dns::DnsName>,
    pub(super) missing_dns: Vec<super::dns::DnsName>,
    /// Every published list's and DNS name's prefixes together, and where
    /// the first is named: together they must stay within the bound one
    /// list must (two lists of half the internet each are all of it).
    pub(super) published_all: Vec<ipnet::IpNet>,
    pub(super) published_at: Option<Location>,
    /// `accounts:`, for rules to name.
    pub(super) groups: super::accounts::Groups,
    /// Whether the policy has `identity:` (rules' `who:` need it).
    pub(super) identity_present: bool,
}

impl Cx<'_, '_> {
    /// Every error says how to fix it; the few that have no better words
    /// point at the reference.
    pub(super) fn error(&mut self, loc: &Location, message: String, help: Option<String>) {
        let (l, col) = at(loc);
        let help = help.unwrap_or_else(|| "docs/policy.md describes what this key takes".into());
        self.c.push(Severity::Error, l, col, message, Some(help));
    }

    pub(super) fn warn(&mut self, loc: &Location, message: String, help: Option<String>) {
        let (l, col) = at(loc);
        self.c.push(Severity::Warning, l, col, message, help);
    }

    fn policy(&mut self, raw: RawPolicy, path: &Path) -> Option<(Policy, Vec<PolicyTest>)> {
        if raw.version.value != 1 {
            self.error(
                &raw.version.referenced,
                format!("unsupported policy version {}", raw.version.value),
                Some("this netwarden reads 'version: 1'".into()),
            );
        }
        let geo = self.geoip(raw.geoip.as_ref(), self.base);
        self.state_dir = self.feeds_section(raw.feeds.as_ref());
        self.dns = self.dns_section(raw.dns.as_ref());
        let mut drafts = self.network_drafts(&raw, &geo);
        let index: HashMap<String, usize> = drafts
            .iter()
            .enumerate()
            .map(|(i, d)| (d.name.clone(), i))
            .collect();
        for i in 0..drafts.len() {
            self.resolve(&mut drafts, &index, i, &mut Vec::new());
        }
        if let (Some(at), Some(family)) = (
            self.published_at,
            crate::lists::judge::covers_too_much(&RangeSet::from_nets(&self.published_all)),
        ) {
            self.error(
                &at,
                format!(
                    "the published lists and DNS names together hold {} or more",
                    if family == 4 {
                        "a quarter of all IPv4 addresses"
                    } else {
                        "half of IPv6's global unicast (2000::/3)"
                    }
                ),
                Some("no list may let in that much, alone or with others: check which lists grew, and their where: filters".into()),
            );
        }
        let client_ip = self.client_ip(&raw, &mut drafts, &index);
        let forwarding = self.forwarding(&raw);
        self.account_groups(&raw.accounts);
        let identity = self.identity(raw.identity.as_ref());
        self.identity_present = raw.identity.is_some();
        if let (
            Some(super::identity::IdentitySettings {
                source: super::identity::Source::Headers(_),
                ..
            }),
            Some(c),
        ) = (&identity, &client_ip)
            && c.trusted_proxies.is_empty()
            && let Some(i) = &raw.identity
        {
            self.error(
                &i.referenced,
                "identity.headers: believed only from trusted proxies, and client_ip names none".into(),
                Some("name the auth proxy's addresses in client_ip.trusted_proxies: from anyone else these headers are removed, never believed".into()),
            );
        }
        let identity_headers = match &identity {
            Some(super::identity::IdentitySettings {
                source: super::identity::Source::Headers(h),
                ..
            }) => h.names().cloned().collect(),
            _ => Vec::new(),
        };
        let rules = self.rules(&raw.rules, &mut drafts, &index);
        self.unreachable(&raw.rules, &rules, raw.case_insensitive_paths);
        self.unused_groups();

        let default = match &raw.default {
            Some(d) if d.value == RawAction::Allow => {
                self.warn(
                    &d.referenced,
                    "'default: allow' lets through every request that no rule matches".into(),
                    Some(
                        "keep 'default: deny' and end the rules with an explicit catch-all rule"
                            .into(),
                    ),
                );
                Action::Allow
            }
            _ => Action::Deny,
        };
        for d in &drafts {
            if !d.used {
                self.warn(
                    &d.loc,
                    format!(
                        "network '{}' is not used by any rule or by client_ip",
                        d.name
                    ),
                    Some(
                        "name it in a rule's allow_from or deny_from (or in client_ip.trusted_proxies), or remove it"
                            .into(),
                    ),
                );
            }
        }
        let tests = self.tests(&raw.tests);
        let report_only = match &raw.mode {
            Some(m) if m.value == RawMode::Report => {
                self.warn(
                    &m.referenced,
                    "the policy is report-only: every request is forwarded; denials are only logged".into(),
                    Some("use it for a first rollout, then remove 'mode: report' to enforce".into()),
                );
                true
            }
            _ => false,
        };
        let server = self.server(raw.server.as_ref(), self.base);
        // Alerts speak the pages' first language unless a sink says.
        let alert_lang = raw
            .pages
            .as_ref()
            .and_then(|p| p.value.languages.as_ref())
            .and_then(|l| l.value.first())
            .and_then(|t| super::pages::Lang::from_tag(&t.value))
            .unwrap_or(super::pages::Lang::En);
        let alerts = self.alerts(raw.alerts.as_ref(), self.base, alert_lang);
        let lockout = self.lockout(raw.lockout.as_ref());
        let state = self.state(raw.state.as_ref(), self.base);
        let block_page = raw
            .server
            .as_ref()
            .and_then(|s| s.value.block_page.as_ref());
        let pages = self.pages(raw.pages.as_ref(), block_page, self.base);
        let networks = drafts
            .into_iter()
            .map(|d| Network {
                direct_prefixes: d.direct.len(),
                ranges: match d.state {
                    Resolve::Done(Some((r, _))) => r,
                    _ => RangeSet::default(),
                },
                name: d.name,
                dynamic: d.dynamic,
            })
            .collect();
        if self.c.has_errors() || self.extra.iter().any(Diagnostic::is_error) {
            return None;
        }
        let rules: Vec<Rule> = rules.into_iter().collect::<Option<Vec<_>>>()?;
        let path_index = PathIndex::build(
            rules.iter().map(|r| r.paths.as_deref()),
            raw.case_insensitive_paths,
        );
        Some((
            Policy {
                source: path.to_path_buf(),
                ruleset: Ruleset {
                    networks,
                    accounts: self.groups.take(),
                    client_ip: client_ip?,
                    rules,
                    default,
                    case_insensitive_paths: raw.case_insensitive_paths,
                    case_insensitive_methods: raw.case_insensitive_methods,
                    allow_path_parameters: raw.allow_path_parameters,
                    allow_trailing_dots: raw.allow_trailing_dots,
                    path_index,
                    geo,
                    report_only,
                },
                forwarding,
                server,
                alerts,
                sources: std::mem::take(&mut self.sources),
                network_files: std::mem::take(&mut self.network_files),
                text: std::sync::Arc::from(""),
                feeds: std::mem::take(&mut self.feeds),
                dns: self.dns.clone(),
                dns_names: std::mem::take(&mut self.dns_names),
                lockout,
                state,
                pages,
                identity,
                identity_headers,
                fingerprint: self
                    .digest
                    .clone()
                    .finish()
                    .as_ref()
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect(),
            },
            tests,
        ))
    }

    pub(super) fn check_name(&mut self, name: &S<String>, what: &str) {
        let v = &name.value;
        let ok = !v.is_empty()
            && v.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
            && !v.bytes().all(|b| b.is_ascii_digit() || b == b'.');
        if !ok {
            self.error(
                &name.referenced,
                format!("invalid {what} name '{v}'"),
                Some("use letters, digits, '_', '-' and '.', not only digits".into()),
            );
        }
    }
}
