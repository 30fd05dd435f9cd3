//! Raw policy -> compiled [`Policy`], collecting every problem with its place.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use ipnet::{IpNet, Ipv4Net};
use serde_saphyr::{Location, Options};

use super::diagnostics::{Collector, Diagnostic, Severity, did_you_mean};
use super::raw::{RawAction, RawMode, RawNetwork, RawPolicy, RawRule, RawTest, S};
use super::selftest::{PolicyTest, TestClient};
use super::{Dynamic, HostPattern, NetRef, Network, Policy, Rule, RuleKind};
use crate::engine::Action;
use crate::engine::client::{ClientIpConfig, ForwardHeader, parse_ip};
use crate::engine::facts::FactTest;
use crate::engine::path::{PathIndex, PathPattern};
use crate::engine::prefix::RangeSet;
use crate::geo::GeoSet;

/// Overlap warnings shown per network before "and N more".
const MAX_OVERLAP_WARNINGS: usize = 5;

/// Well-known methods, to tell `post` (a mistake) from a custom method.
const KNOWN_METHODS: &[&str] = &[
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
];

type Compiled = (Policy, Vec<Diagnostic>, Vec<PolicyTest>);

/// Compiles `text`. On success the diagnostics are warnings only; on failure
/// they hold at least one error.
pub fn compile(text: &str, path: &Path) -> Result<Compiled, Vec<Diagnostic>> {
    let mut c = Collector::new(path, text);
    let raw: RawPolicy = match parse_yaml(text) {
        Ok(raw) => raw,
        Err(e) => {
            let (line, column) = e
                .location()
                .map_or((0, 0), |l| (clamp(l.line()), clamp(l.column())));
            let (message, help) = yaml_problem(&yaml_message(&e));
            c.push(Severity::Error, line, column, message, Some(help));
            return Err(c.diagnostics);
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
        digest,
    };
    let policy = cx.policy(raw, path);
    let mut diagnostics = cx.c.diagnostics;
    diagnostics.append(&mut extra);
    diagnostics.sort_by(|a, b| {
        (a.severity, &a.file, a.line, a.column).cmp(&(b.severity, &b.file, b.line, b.column))
    });
    match policy {
        Some(compiled) if !diagnostics.iter().any(Diagnostic::is_error) => {
            Ok((compiled.0, diagnostics, compiled.1))
        }
        _ => Err(diagnostics),
    }
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

fn at(loc: &Location) -> (u32, u32) {
    (clamp(loc.line()), clamp(loc.column()))
}

pub(super) struct Cx<'a, 'e> {
    c: Collector<'a>,
    base: &'a Path,
    /// Diagnostics located in other files (network lists).
    extra: &'e mut Vec<Diagnostic>,
    /// Files the policy reads besides itself (network lists).
    sources: Vec<PathBuf>,
    /// sha256 of exactly the bytes compiled: the policy, then each file read.
    digest: ring::digest::Context,
}

/// A network while compiling: its raw parts and, once resolved, its ranges.
struct NetDraft {
    name: String,
    loc: Location,
    direct: Vec<IpNet>,
    include: Vec<S<String>>,
    except: Vec<S<String>>,
    declared_empty: bool,
    /// Some entry was invalid (already reported): do not report it as empty too.
    had_errors: bool,
    facts: Vec<FactTest>,
    /// Set by `resolve` for networks that involve facts.
    dynamic: Option<Dynamic>,
    state: Resolve,
    used: bool,
}

enum Resolve {
    Pending,
    InProgress,
    /// The network's ranges, and whether it involves facts.
    Done(Option<(RangeSet, bool)>),
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
        let mut drafts = self.network_drafts(&raw, &geo);
        let index: HashMap<String, usize> = drafts
            .iter()
            .enumerate()
            .map(|(i, d)| (d.name.clone(), i))
            .collect();
        for i in 0..drafts.len() {
            self.resolve(&mut drafts, &index, i, &mut Vec::new());
        }
        let client_ip = self.client_ip(&raw, &mut drafts, &index);
        let forwarding = self.forwarding(&raw);
        let rules = self.rules(&raw.rules, &mut drafts, &index);
        self.unreachable(&raw.rules, &rules, raw.case_insensitive_paths);

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
        let alerts = self.alerts(raw.alerts.as_ref(), self.base);
        let lockout = self.lockout(raw.lockout.as_ref());
        let state = self.state(raw.state.as_ref(), self.base);
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
                networks,
                client_ip: client_ip?,
                forwarding,
                rules,
                default,
                case_insensitive_paths: raw.case_insensitive_paths,
                case_insensitive_methods: raw.case_insensitive_methods,
                allow_path_parameters: raw.allow_path_parameters,
                allow_trailing_dots: raw.allow_trailing_dots,
                path_index,
                server,
                alerts,
                geo,
                sources: std::mem::take(&mut self.sources),
                report_only,
                lockout,
                state,
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

    fn network_drafts(&mut self, raw: &RawPolicy, geo: &GeoSet) -> Vec<NetDraft> {
        let mut drafts = Vec::with_capacity(raw.networks.0.len());
        for (name, net) in &raw.networks.0 {
            self.check_name(name, "network");
            let mut draft = NetDraft {
                name: name.value.clone(),
                loc: name.referenced,
                direct: Vec::new(),
                include: Vec::new(),
                except: Vec::new(),
                declared_empty: false,
                had_errors: false,
                facts: Vec::new(),
                dynamic: None,
                state: Resolve::Pending,
                used: false,
            };
            let mut located: Vec<(IpNet, Source)> = Vec::new();
            let errors_before = self.c.diagnostics.len() + self.extra.len();
            match &net.value {
                RawNetwork::List(cidrs) => {
                    for cidr in cidrs {
                        self.cidr(cidr, &mut located);
                    }
                    draft.declared_empty = cidrs.is_empty();
                }
                RawNetwork::Map(m) => {
                    for cidr in &m.cidrs {
                        self.cidr(cidr, &mut located);
                    }
                    if let Some(file) = &m.file {
                        self.network_file(&name.value, file, &mut located);
                    }
                    draft.include = m.include.clone();
                    draft.except = m.except.clone();
                    // A database the policy names but that failed to load
                    // has its own error already: no second one here.
                    let named = |k: crate::geo::DbKind| {
                        raw.geoip.as_ref().is_some_and(|g| {
                            let g = &g.value;
                            match k {
                                crate::geo::DbKind::Country => g.country.is_some(),
                                crate::geo::DbKind::Asn => g.asn.is_some(),
                                crate::geo::DbKind::ConnectionType => g.connection_type.is_some(),
                                crate::geo::DbKind::AnonymousIp => g.anonymous_ip.is_some(),
                            }
                        })
                    };
                    draft.facts =
                        self.fact_tests(&name.value, m, &|k| geo.get(k).is_some() || named(k));
                    let no_facts = m.country.is_none()
                        && m.asn.is_none()
                        && m.connection_type.is_none()
                        && m.anonymous.is_none();
                    draft.declared_empty =
                        m.cidrs.is_empty() && m.file.is_none() && m.include.is_empty() && no_facts;
                }
            }
            if draft.declared_empty {
                self.error(
                    &net.referenced,
                    format!("network '{}' is empty", name.value),
                    Some("give it cidrs, a file, include or facts; or remove it".into()),
                );
            }
            draft.had_errors = self.c.diagnostics.len() + self.extra.len() > errors_before;
            self.overlaps(&name.value, &mut located);
            draft.direct = located.into_iter().map(|(n, _)| n).collect();
            drafts.push(draft);
        }
        drafts
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

    /// Parses one CIDR written in the policy.
    fn cidr(&mut self, cidr: &S<String>, out: &mut Vec<(IpNet, Source)>) {
        match parse_cidr(&cidr.value) {
            Ok(net) => out.push((
                net,
                Source::Policy {
                    line: at(&cidr.referenced).0,
                    loc: cidr.referenced,
                },
            )),
            Err((message, help)) => self.error(&cidr.referenced, message, help),
        }
    }

    /// Reads a network file: one CIDR or address a line, '#' comments.
    fn network_file(&mut self, network: &str, file: &S<String>, out: &mut Vec<(IpNet, Source)>) {
        let path = self.base.join(&file.value);
        self.sources.push(path.clone());
        let text = match crate::files::read_to_string(&path, crate::files::MAX_TEXT_BYTES) {
            Ok(t) => t,
            Err(e) => {
                self.error(
                    &file.referenced,
                    format!("network '{network}': cannot read '{}': {e}", path.display()),
                    Some("paths are relative to the policy file's directory".into()),
                );
                return;
            }
        };
        self.digest.update(path.as_os_str().as_encoded_bytes());
        self.digest.update(text.as_bytes());
        let mut fc = Collector::new(&path, &text);
        for (i, line) in text.lines().enumerate() {
            let content = line.split('#').next().unwrap_or("");
            let token = content.trim();
            if token.is_empty() {
                continue;
            }
            let line_no = u32::try_from(i + 1).unwrap_or(u32::MAX);
            let col = u32::try_from(content.len() - content.trim_start().len() + 1).unwrap_or(1);
            match parse_cidr(token) {
                Ok(net) => out.push((
                    net,
                    Source::File {
                        path: path.clone(),
                        line: line_no,
                        column: col,
                    },
                )),
                Err((message, help)) => fc.push(
                    Severity::Error,
                    line_no,
                    col,
                    format!("network '{network}': {message}"),
                    help,
                ),
            }
        }
        self.extra.append(&mut fc.diagnostics);
    }

    /// Warns about CIDRs of one network that overlap each other.
    fn overlaps(&mut self, network: &str, located: &mut [(IpNet, Source)]) {
        located.sort_by_key(|(n, _)| key(n));
        let mut shown = 0usize;
        let mut more = 0usize;
        let mut widest: Option<usize> = None;
        for i in 0..located.len() {
            let (lo, hi) = key(&located[i].0);
            if let Some(w) = widest {
                let (wlo, whi) = key(&located[w].0);
                if wlo.0 == lo.0 && whi >= lo {
                    if shown < MAX_OVERLAP_WARNINGS {
                        let (a, b) = (&located[i], &located[w]);
                        let message = format!(
                            "network '{network}': {} overlaps {} ({})",
                            a.0,
                            b.0,
                            b.1.place()
                        );
                        let help = Some(
                            "remove the narrower entry; overlapping entries are merged anyway"
                                .into(),
                        );
                        self.warn_at(&a.1, message, help);
                        shown += 1;
                    } else {
                        more += 1;
                    }
                    if hi > whi {
                        widest = Some(i);
                    }
                    continue;
                }
            }
            widest = Some(i);
        }
        if more > 0 {
            if let Some((_, src)) = located.first() {
                let src = src.clone();
                self.warn_at(
                    &src,
                    format!("network '{network}': {more} more overlapping entries"),
                    None,
                );
            }
        }
    }

    fn warn_at(&mut self, src: &Source, message: String, help: Option<String>) {
        match src {
            Source::Policy { loc, .. } => self.warn(loc, message, help),
            Source::File { path, line, column } => {
                let text = crate::files::read_to_string(path, crate::files::MAX_TEXT_BYTES)
                    .unwrap_or_default();
                let mut fc = Collector::new(path, &text);
                fc.push(Severity::Warning, *line, *column, message, help);
                self.extra.append(&mut fc.diagnostics);
            }
        }
    }

    /// Resolves network `i` (its include/except closure) by depth-first search.
    fn resolve(
        &mut self,
        drafts: &mut [NetDraft],
        index: &HashMap<String, usize>,
        i: usize,
        stack: &mut Vec<usize>,
    ) -> Option<(RangeSet, bool)> {
        match &drafts[i].state {
            Resolve::Done(r) => return r.clone(),
            Resolve::InProgress => return None,
            Resolve::Pending => {}
        }
        drafts[i].state = Resolve::InProgress;
        stack.push(i);
        let mut ok = !drafts[i].had_errors;
        let mut ranges = RangeSet::from_nets(&drafts[i].direct);
        let mut cut = RangeSet::default();
        let mut dynamic = Dynamic {
            facts: drafts[i].facts.clone(),
            ..Dynamic::default()
        };
        let mut any_dynamic = !dynamic.facts.is_empty();
        let refs: Vec<(bool, S<String>)> = drafts[i]
            .include
            .iter()
            .map(|r| (true, r.clone()))
            .chain(drafts[i].except.iter().map(|r| (false, r.clone())))
            .collect();
        for (is_include, r) in refs {
            let Some(&j) = index.get(&r.value) else {
                let names = drafts
                    .iter()
                    .map(|d| d.name.as_str())
                    .filter(|n| *n != drafts[i].name);
                let near = super::diagnostics::closest(&r.value, names).map(str::to_string);
                // What it misspells is meant to be used (no "not used"
                // warning on top of this error).
                if let Some(&k) = near.as_ref().and_then(|n| index.get(n)) {
                    drafts[k].used = true;
                }
                let help = Some(match near {
                    Some(n) => format!("did you mean '{n}'?"),
                    None => format!(
                        "'{}' is not a network defined under 'networks:'; {} takes network names",
                        r.value,
                        if is_include { "include" } else { "except" }
                    ),
                });
                let name = drafts[i].name.clone();
                self.error(
                    &r.referenced,
                    format!("network '{name}': unknown network '{}'", r.value),
                    help,
                );
                ok = false;
                continue;
            };
            drafts[j].used = true;
            if let Some(pos) = stack.iter().position(|&s| s == j) {
                let mut cycle: Vec<&str> = stack[pos..]
                    .iter()
                    .map(|&s| drafts[s].name.as_str())
                    .collect();
                cycle.push(&drafts[j].name);
                let message = format!(
                    "network '{}': include cycle {}",
                    drafts[i].name,
                    cycle.join(" -> ")
                );
                self.error(
                    &r.referenced,
                    message,
                    Some("a network cannot include itself".into()),
                );
                ok = false;
                continue;
            }
            match self.resolve(drafts, index, j, stack) {
                // A network with facts is checked per request, so its
                // ranges (which exclude nothing yet) are not merged in.
                Some((_, true)) if is_include => {
                    dynamic.include.push(j);
                    any_dynamic = true;
                }
                Some((other, false)) if is_include => ranges = ranges.union(&other),
                Some((other, is_dynamic)) => {
                    dynamic.except.push(j);
                    any_dynamic |= is_dynamic;
                    if !is_dynamic {
                        cut = cut.union(&other);
                    }
                }
                None => ok = false,
            }
        }
        stack.pop();
        let result = ok.then(|| {
            if any_dynamic {
                drafts[i].dynamic = Some(dynamic);
                (ranges, true)
            } else {
                (ranges.difference(&cut), false)
            }
        });
        if let Some((r, false)) = &result {
            if r.is_empty() && !drafts[i].declared_empty {
                let (name, loc) = (drafts[i].name.clone(), drafts[i].loc);
                self.error(
                    &loc,
                    format!("network '{name}' contains no addresses"),
                    Some("its file is empty or its except removes every address".into()),
                );
            }
        }
        drafts[i].state = Resolve::Done(result.clone());
        result
    }

    fn network_ref(
        &mut self,
        name: &S<String>,
        context: &str,
        drafts: &mut [NetDraft],
        index: &HashMap<String, usize>,
    ) -> Option<NetRef> {
        match index.get(&name.value) {
            Some(&id) => {
                drafts[id].used = true;
                Some(NetRef {
                    id,
                    name: name.value.as_str().into(),
                })
            }
            None => {
                let near = super::diagnostics::closest(
                    &name.value,
                    drafts.iter().map(|d| d.name.as_str()),
                )
                .map(str::to_string);
                // The network this misspells is meant to be used: no
                // "not used, remove it" warning on top of this error.
                if let Some(n) = &near
                    && let Some(&id) = index.get(n)
                {
                    drafts[id].used = true;
                }
                let help = near
                    .map(|n| format!("did you mean '{n}'?"))
                    .or_else(|| Some("networks are defined under 'networks:'".into()));
                self.error(
                    &name.referenced,
                    format!("{context}: unknown network '{}'", name.value),
                    help,
                );
                None
            }
        }
    }

    fn client_ip(
        &mut self,
        raw: &RawPolicy,
        drafts: &mut [NetDraft],
        index: &HashMap<String, usize>,
    ) -> Option<ClientIpConfig> {
        let Some(cfg) = &raw.client_ip else {
            return Some(ClientIpConfig::default());
        };
        let mut ok = true;
        let mut nets = Vec::new();
        let mut trusted = RangeSet::default();
        for entry in &cfg.value.trusted_proxies {
            // A network's name wins; anything else must be a CIDR or address.
            if !index.contains_key(&entry.value) && looks_like_address(&entry.value) {
                let mut located = Vec::new();
                self.cidr(entry, &mut located);
                ok &= !located.is_empty();
                let set = RangeSet::from_nets(located.iter().map(|(n, _)| n));
                self.warn_wide_trust(entry, &set);
                nets.extend(located.into_iter().map(|(n, _)| n));
            } else {
                match self.network_ref(entry, "client_ip.trusted_proxies", drafts, index) {
                    Some(r) => match &drafts[r.id].state {
                        Resolve::Done(Some((set, false))) => {
                            let set = set.clone();
                            self.warn_wide_trust(entry, &set);
                            trusted = trusted.union(&set);
                        }
                        Resolve::Done(Some((_, true))) => {
                            self.error(
                                &entry.referenced,
                                format!("trusted proxy network '{}' uses GeoIP facts", entry.value),
                                Some("trusted proxies must be given by address: use a network of CIDRs".into()),
                            );
                            ok = false;
                        }
                        _ => ok = false,
                    },
                    None => ok = false,
                }
            }
        }
        let header = match &cfg.value.header {
            None => ForwardHeader::default(),
            Some(h) => match ForwardHeader::parse(&h.value) {
                Some(h) => h,
                None => {
                    let help =
                        did_you_mean(&h.value, ["x-forwarded-for", "forwarded", "x-real-ip"])
                            .or_else(|| Some("use x-forwarded-for, forwarded or x-real-ip".into()));
                    self.error(
                        &h.referenced,
                        format!("unknown client_ip.header '{}'", h.value),
                        help,
                    );
                    ok = false;
                    ForwardHeader::default()
                }
            },
        };
        if cfg.value.trusted_proxies.is_empty() && cfg.value.header.is_some() {
            self.warn(
                &cfg.referenced,
                "client_ip.header has no effect without trusted_proxies".into(),
                Some("forwarding headers are believed only from trusted proxies".into()),
            );
        }
        ok.then(|| ClientIpConfig {
            trusted_proxies: trusted.union(&RangeSet::from_nets(&nets)),
            header,
        })
    }

    /// Every trusted address may say who the client is: a range wider than
    /// a /16 (IPv6: a /48) is a Pod network or a VPC, not load balancers,
    /// and lets any machine in it claim to be the office.
    fn warn_wide_trust(&mut self, entry: &S<String>, set: &RangeSet) {
        const WIDEST_V4: u64 = 1 << 16;
        const WIDEST_V6: u128 = 1 << 80;
        let (v4, v6) = set.address_count();
        let wide = match (v4 > WIDEST_V4, v6 > WIDEST_V6) {
            (true, _) => format!("{v4} IPv4 addresses, more than a /16"),
            (_, true) => "more IPv6 addresses than a /48".to_string(),
            _ => return,
        };
        self.warn(
            &entry.referenced,
            format!("trusted proxy '{}' covers {wide}", entry.value),
            Some(
                "every address here may set the client address (X-Forwarded-For, Forwarded, PROXY protocol); list only your load balancers' or ingress controllers' own addresses, not the Pod or VPC range they live in"
                    .into(),
            ),
        );
    }

    fn forwarding(&mut self, raw: &RawPolicy) -> crate::policy::Forwarding {
        let Some(cfg) = &raw.client_ip else {
            return crate::policy::Forwarding::default();
        };
        let mut strip = Vec::new();
        for h in &cfg.value.strip_headers {
            match http::HeaderName::from_bytes(h.value.trim().to_ascii_lowercase().as_bytes()) {
                Ok(name) => strip.push(name),
                Err(_) => self.error(
                    &h.referenced,
                    format!(
                        "client_ip.strip_headers: '{}' is not a header name",
                        h.value
                    ),
                    Some("write header names without a colon or spaces, e.g. x-client-ip".into()),
                ),
            }
        }
        crate::policy::Forwarding {
            trust_proto: cfg.value.trust_proto,
            strip_headers: strip,
        }
    }

    fn rules(
        &mut self,
        raw: &[S<RawRule>],
        drafts: &mut [NetDraft],
        index: &HashMap<String, usize>,
    ) -> Vec<Option<Rule>> {
        let mut seen: HashMap<&str, u32> = HashMap::new();
        let mut out = Vec::with_capacity(raw.len());
        for r in raw {
            let rule = &r.value;
            self.check_name(&rule.name, "rule");
            let name = rule.name.value.as_str();
            if let Some(line) = seen.insert(name, at(&rule.name.referenced).0) {
                self.error(
                    &rule.name.referenced,
                    format!("duplicate rule name '{name}' (first at line {line})"),
                    Some("rule names must be unique: logs and metrics use them".into()),
                );
            }
            out.push(self.rule(r, drafts, index));
        }
        out
    }

    fn rule(
        &mut self,
        r: &S<RawRule>,
        drafts: &mut [NetDraft],
        index: &HashMap<String, usize>,
    ) -> Option<Rule> {
        let rule = &r.value;
        let name = &rule.name.value;
        let ctx = format!("rule '{name}'");
        let mut ok = true;

        let paths = self.matchers(&rule.paths, &ctx, "paths", "path", &mut ok, |p| {
            PathPattern::parse(p).map_err(|e| (e.message, e.help))
        });
        let methods = self.matchers(&rule.methods, &ctx, "methods", "method", &mut ok, |m| {
            check_method(m).map(|()| Box::<str>::from(m))
        });
        let hosts = self.matchers(&rule.hosts, &ctx, "hosts", "host", &mut ok, parse_host);

        let shapes = [
            rule.action.is_some(),
            rule.allow_from.is_some(),
            rule.deny_from.is_some(),
        ];
        let kind = match shapes.iter().filter(|&&s| s).count() {
            0 => {
                self.error(
                    &r.referenced,
                    format!("{ctx} does not say what to do"),
                    Some("add 'action: allow', 'action: deny', 'allow_from: [networks]' or 'deny_from: [networks]'".into()),
                );
                None
            }
            1 => {
                if let Some(a) = &rule.action {
                    Some(RuleKind::Action(match a.value {
                        RawAction::Allow => Action::Allow,
                        RawAction::Deny => Action::Deny,
                    }))
                } else {
                    let (list, allow) = match (&rule.allow_from, &rule.deny_from) {
                        (Some(l), _) => (l, true),
                        (None, Some(l)) => (l, false),
                        (None, None) => unreachable!("one shape is present"),
                    };
                    if list.value.is_empty() {
                        let key = if allow { "allow_from" } else { "deny_from" };
                        self.error(
                            &list.referenced,
                            format!("{ctx}: '{key}' is empty"),
                            Some("name at least one network".into()),
                        );
                        ok = false;
                    }
                    let refs: Vec<Option<NetRef>> = list
                        .value
                        .iter()
                        .map(|n| self.network_ref(n, &ctx, drafts, index))
                        .collect();
                    let refs: Option<Vec<NetRef>> = refs.into_iter().collect();
                    refs.map(|refs| {
                        if allow {
                            RuleKind::AllowFrom(refs)
                        } else {
                            RuleKind::DenyFrom(refs)
                        }
                    })
                }
            }
            _ => {
                self.error(
                    &r.referenced,
                    format!("{ctx} has more than one of 'action', 'allow_from' and 'deny_from'"),
                    Some("split it into two rules, or use 'except' in a network to carve out addresses".into()),
                );
                None
            }
        };
        if rule.login {
            if let Some(RuleKind::Action(Action::Allow)) = kind {
                self.warn(
                    &rule.name.referenced,
                    format!("{ctx} is a login route allowed from anywhere"),
                    Some(
                        "use 'allow_from: [networks]' so that sign-in is only possible from them"
                            .into(),
                    ),
                );
            }
        }
        let kind = kind?;
        if !ok {
            return None;
        }
        let outcome = match (&rule.outcome, rule.login) {
            (None, false) => None,
            (None, true) => Some(crate::engine::outcome::OutcomeSpec::default()),
            (Some(o), true) => Some(self.outcome(o, &ctx)?),
            (Some(o), false) => {
                self.error(
                    &o.referenced,
                    format!("{ctx}: 'outcome' is only for login routes"),
                    Some("add 'login: true', or remove 'outcome'".into()),
                );
                return None;
            }
        };
        let account = match (&rule.account, rule.login) {
            (None, _) => None,
            (Some(a), true) => Some(self.account(a, &ctx)?),
            (Some(a), false) => {
                self.error(
                    &a.referenced,
                    format!("{ctx}: 'account' is only for login routes"),
                    Some("add 'login: true', or remove 'account'".into()),
                );
                return None;
            }
        };
        let report = rule
            .mode
            .as_ref()
            .is_some_and(|m| m.value == RawMode::Report);
        if report {
            self.warn(
                &rule.name.referenced,
                format!("{ctx} is report-only: its denials are logged, not enforced"),
                Some("remove 'mode: report' once its would-be denials look right".into()),
            );
        }
        Some(Rule {
            name: name.clone(),
            label: name.as_str().into(),
            paths,
            methods,
            hosts,
            login: rule.login,
            kind,
            report,
            line: at(&r.referenced).0,
            outcome,
            account,
        })
    }

    /// A login rule's `outcome:`; failure patterns default to 401 and 403.
    fn outcome(
        &mut self,
        raw: &S<crate::policy::raw::RawOutcome>,
        ctx: &str,
    ) -> Option<crate::engine::outcome::OutcomeSpec> {
        let o = &raw.value;
        let failure = match &o.failure {
            Some(p) => self.patterns(p, ctx, "failure")?,
            None => crate::engine::outcome::OutcomeSpec::default().failure,
        };
        let success = match &o.success {
            Some(p) => Some(self.patterns(p, ctx, "success")?),
            None => None,
        };
        Some(crate::engine::outcome::OutcomeSpec { failure, success })
    }

    fn patterns(
        &mut self,
        raw: &S<crate::policy::raw::RawPatterns>,
        ctx: &str,
        which: &str,
    ) -> Option<crate::engine::outcome::Patterns> {
        let p = &raw.value;
        let mut ok = true;
        let mut status = Vec::new();
        for s in p.status.iter().flatten() {
            match u16::try_from(s.value) {
                Ok(code @ 100..=599) => status.push(code),
                _ => {
                    self.error(
                        &s.referenced,
                        format!(
                            "{ctx}: outcome.{which}.status {} is not an HTTP status",
                            s.value
                        ),
                        Some("use codes from 100 to 599, e.g. [401, 403]".into()),
                    );
                    ok = false;
                }
            }
        }
        let mut location = Vec::new();
        for l in p.location.iter().flatten() {
            if l.value.starts_with('/') {
                location.push(l.value.clone());
            } else {
                self.error(
                    &l.referenced,
                    format!("{ctx}: outcome.{which}.location '{}' does not start with '/'", l.value),
                    Some("give the redirect target's path and query, with '*' for any run of characters: /login?error*".into()),
                );
                ok = false;
            }
        }
        let header = match &p.header {
            None => None,
            Some(h) => {
                let name = h.value.name.value.trim().to_ascii_lowercase();
                if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                    self.error(
                        &h.value.name.referenced,
                        format!(
                            "{ctx}: outcome.{which}.header '{}' is not a header name",
                            h.value.name.value
                        ),
                        Some("for example X-Login-Result".into()),
                    );
                    ok = false;
                }
                Some((
                    name,
                    h.value.value.as_ref().map(|v| v.value.trim().to_string()),
                ))
            }
        };
        if status.is_empty() && location.is_empty() && header.is_none() && ok {
            self.error(
                &raw.referenced,
                format!("{ctx}: outcome.{which} has no status, location or header"),
                Some("give at least one, e.g. status: [401, 403]".into()),
            );
            ok = false;
        }
        ok.then_some(crate::engine::outcome::Patterns {
            status,
            location,
            header,
        })
    }

    /// Compiles a rule's optional list of `paths`, `methods` or `hosts`
    /// (`None`: any); an empty list or a bad entry is an error.
    fn matchers<T>(
        &mut self,
        list: &Option<S<Vec<S<String>>>>,
        ctx: &str,
        key: &str,
        what: &str,
        ok: &mut bool,
        parse: impl Fn(&str) -> Result<T, Problem>,
    ) -> Option<Vec<T>> {
        let list = list.as_ref()?;
        if list.value.is_empty() {
            self.error(
                &list.referenced,
                format!("{ctx}: '{key}' is empty"),
                Some(format!("remove '{key}' to match every {what}")),
            );
            *ok = false;
        }
        let mut out = Vec::with_capacity(list.value.len());
        for item in &list.value {
            match parse(&item.value) {
                Ok(v) => out.push(v),
                Err((message, help)) => {
                    self.error(&item.referenced, format!("{ctx}: {message}"), help);
                    *ok = false;
                }
            }
        }
        Some(out)
    }

    /// Errors on a rule that an earlier terminal rule always decides first.
    fn unreachable(&mut self, raw: &[S<RawRule>], rules: &[Option<Rule>], ci: bool) {
        for (j, later) in rules.iter().enumerate() {
            let Some(later) = later else { continue };
            let shadow = rules[..j]
                .iter()
                .flatten()
                .find(|earlier| earlier.is_terminal() && covers(earlier, later, ci));
            if let Some(earlier) = shadow {
                self.error(
                    &raw[j].value.name.referenced,
                    format!(
                        "rule '{}' can never match: rule '{}' (line {}) comes first and decides every request it could match",
                        later.name, earlier.name, earlier.line
                    ),
                    Some(format!("move '{}' above '{}', or narrow '{}'", later.name, earlier.name, earlier.name)),
                );
            }
        }
    }

    fn tests(&mut self, raw: &[S<RawTest>]) -> Vec<PolicyTest> {
        let mut out = Vec::with_capacity(raw.len());
        for (i, t) in raw.iter().enumerate() {
            let test = &t.value;
            let ctx = format!("test {}", i + 1);
            let addr = |cx: &mut Self, v: &S<String>| {
                let ip = parse_ip(v.value.as_bytes());
                if ip.is_none() {
                    cx.error(
                        &v.referenced,
                        format!("{ctx}: '{}' is not an IP address", v.value),
                        Some(
                            "write an IPv4 or IPv6 address in canonical form, such as 203.0.113.7"
                                .into(),
                        ),
                    );
                }
                ip
            };
            let client = match (&test.ip, &test.peer) {
                (Some(ip), None) => addr(self, ip).map(TestClient::Ip),
                (None, Some(peer)) => addr(self, peer).map(TestClient::Peer),
                (Some(_), Some(_)) | (None, None) => {
                    self.error(
                        &t.referenced,
                        format!("{ctx} needs exactly one of 'ip' and 'peer'"),
                        Some("'ip' is the client itself; 'peer' (with 'headers') is a proxy in front".into()),
                    );
                    None
                }
            };
            if test.headers.is_some() && test.ip.is_some() {
                self.warn(
                    &t.referenced,
                    format!("{ctx}: 'headers' are ignored with 'ip'"),
                    Some("use 'peer' to test how the client address is found from headers".into()),
                );
            }
            let Some(client) = client else { continue };
            let headers = test
                .headers
                .iter()
                .flat_map(|h| h.0.iter())
                .flat_map(|(name, v)| match v {
                    super::raw::OneOrMany::One(s) => vec![(name.clone(), s.clone())],
                    super::raw::OneOrMany::Many(l) => {
                        l.iter().map(|s| (name.clone(), s.clone())).collect()
                    }
                })
                .collect();
            let (line, column) = at(&t.referenced);
            out.push(PolicyTest {
                line,
                column,
                number: i + 1,
                description: test.description.clone(),
                client,
                headers,
                method: test.method.clone().unwrap_or_else(|| "GET".into()),
                path: test.path.clone().unwrap_or_else(|| "/".into()),
                host: test.host.clone(),
                expect: match test.expect.value {
                    RawAction::Allow => Action::Allow,
                    RawAction::Deny => Action::Deny,
                },
                rule: test.rule.as_ref().map(|r| r.value.clone()),
            });
        }
        out
    }
}

/// Where a CIDR was written.
#[derive(Clone)]
enum Source {
    Policy {
        line: u32,
        loc: Location,
    },
    File {
        path: PathBuf,
        line: u32,
        column: u32,
    },
}

impl Source {
    fn place(&self) -> String {
        match self {
            Source::Policy { line, .. } => format!("line {line}"),
            Source::File { path, line, .. } => format!("{}:{line}", path.display()),
        }
    }
}

/// Sort key: (family, first address) and (family, last address).
fn key(n: &IpNet) -> ((u8, u128), (u8, u128)) {
    match n {
        IpNet::V4(n) => (
            (4, u32::from(n.network()).into()),
            (4, u32::from(n.broadcast()).into()),
        ),
        IpNet::V6(n) => ((6, u128::from(n.network())), (6, u128::from(n.broadcast()))),
    }
}

fn looks_like_address(s: &str) -> bool {
    s.contains(':') || s.bytes().next().is_some_and(|b| b.is_ascii_digit())
}

type Problem = (String, Option<String>);

/// A CIDR or a single address, strictly: no host bits, no IPv4-mapped IPv6.
pub fn parse_cidr(text: &str) -> Result<IpNet, Problem> {
    let text = text.trim();
    let net = if text.contains('/') {
        let net: IpNet = text.parse().map_err(|_| {
            (
                format!("'{text}' is not a valid CIDR"),
                Some(
                    "write an address and a prefix length, such as 203.0.113.0/24 or 2001:db8::/32"
                        .into(),
                ),
            )
        })?;
        let (addr, _) = text.split_once('/').unwrap_or((text, ""));
        if parse_ip_literal(addr).is_none() {
            return Err((
                format!("'{text}' is not in canonical form"),
                Some(
                    "write the address in canonical form, without leading zeros or zone ids".into(),
                ),
            ));
        }
        if net.trunc() != net {
            return Err((
                format!("'{text}' has host bits set"),
                Some(format!(
                    "did you mean '{}'? (or '{}/{}' for one address)",
                    net.trunc(),
                    net.addr(),
                    net.max_prefix_len()
                )),
            ));
        }
        net
    } else {
        let ip = parse_ip_literal(text).ok_or_else(|| {
            (
                format!("'{text}' is not an IP address or CIDR"),
                Some(
                    "write an address (203.0.113.7) or a CIDR (203.0.113.0/24) in canonical form"
                        .into(),
                ),
            )
        })?;
        IpNet::from(ip)
    };
    if let IpNet::V6(v6) = net {
        let a = u128::from(v6.network());
        if v6.prefix_len() >= 96 && a >> 32 == 0xffff {
            // RFC 4291 §2.5.5.2: ::ffff:0:0/96 is IPv4 written as IPv6.
            // PANIC SAFETY: the low 32 bits and a length in 0..=32 are always a valid IPv4 prefix.
            let v4 = Ipv4Net::new(std::net::Ipv4Addr::from(a as u32), v6.prefix_len() - 96)
                .expect("prefix length 0..=32");
            return Err((
                format!("'{text}' is an IPv4-mapped IPv6 range"),
                Some(format!(
                    "IPv4-mapped clients are matched as IPv4; write '{v4}' (mapped ranges are refused so that ::ffff:0:0/96 cannot mean every IPv4 client)"
                )),
            ));
        }
    }
    Ok(net)
}

/// An address as the policy writes it (no canonicalization: the mapped-form
/// check needs to see the IPv6 form).
fn parse_ip_literal(s: &str) -> Option<IpAddr> {
    if s.contains('%') {
        return None;
    }
    s.parse().ok()
}

fn check_method(m: &str) -> Result<(), Problem> {
    // RFC 9110 §5.6.2 token characters.
    let token = !m.is_empty()
        && m.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if !token {
        return Err((
            format!("'{m}' is not an HTTP method"),
            Some("write methods as clients send them: GET, POST, PUT, PATCH, DELETE, ...".into()),
        ));
    }
    let upper = m.to_ascii_uppercase();
    if upper != m && KNOWN_METHODS.contains(&upper.as_str()) {
        return Err((
            format!("method '{m}' is not upper case"),
            Some(format!(
                "methods are case-sensitive (RFC 9110 §9.1); write '{upper}'"
            )),
        ));
    }
    Ok(())
}

fn parse_host(h: &str) -> Result<HostPattern, Problem> {
    let (wild, name) = match h.strip_prefix("*.") {
        Some(rest) => (true, rest),
        None => (false, h),
    };
    let valid_name = !name.is_empty()
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    let bracketed_v6 = !wild
        && name
            .strip_prefix('[')
            .and_then(|n| n.strip_suffix(']'))
            .is_some_and(|n| n.parse::<std::net::Ipv6Addr>().is_ok());
    if !(valid_name || bracketed_v6) {
        let help = if h.contains(':') && !h.starts_with('[') {
            "hosts are matched without the port; write the name only".to_string()
        } else {
            "write a host name (console.example.com) or a wildcard (*.example.com)".to_string()
        };
        return Err((format!("'{h}' is not a valid host"), Some(help)));
    }
    let lower = name.to_ascii_lowercase();
    Ok(if wild {
        HostPattern::Suffix(format!(".{lower}").into())
    } else {
        HostPattern::Exact(lower.into())
    })
}

/// Whether every request `later` could match, `earlier` matches too.
fn covers(earlier: &Rule, later: &Rule, ci: bool) -> bool {
    let methods = match (&earlier.methods, &later.methods) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(e), Some(l)) => l.iter().all(|m| e.contains(m)),
    };
    let hosts = match (&earlier.hosts, &later.hosts) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(e), Some(l)) => l.iter().all(|lh| e.iter().any(|eh| host_covers(eh, lh))),
    };
    let paths = match (&earlier.paths, &later.paths) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(e), Some(l)) => l.iter().all(|lp| e.iter().any(|ep| ep.covers(lp, ci))),
    };
    methods && hosts && paths
}

fn host_covers(earlier: &HostPattern, later: &HostPattern) -> bool {
    match (earlier, later) {
        (HostPattern::Exact(a), HostPattern::Exact(b)) => a == b,
        (HostPattern::Suffix(s), HostPattern::Exact(b)) => b.len() > s.len() && b.ends_with(&**s),
        (HostPattern::Suffix(s), HostPattern::Suffix(t)) => t.ends_with(&**s),
        (HostPattern::Exact(_), HostPattern::Suffix(_)) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_table() {
        let ok = [
            "203.0.113.0/24",
            "203.0.113.7",
            "2001:db8:10::/48",
            "::1",
            "0.0.0.0/0",
            "::/0",
        ];
        for c in ok {
            assert!(parse_cidr(c).is_ok(), "{c}");
        }
        let (msg, help) = parse_cidr("10.0.0.1/8").unwrap_err();
        assert_eq!(msg, "'10.0.0.1/8' has host bits set");
        assert_eq!(
            help.unwrap(),
            "did you mean '10.0.0.0/8'? (or '10.0.0.1/32' for one address)"
        );
        let (_, help) = parse_cidr("::ffff:203.0.113.0/120").unwrap_err();
        assert!(help.unwrap().contains("write '203.0.113.0/24'"));
        let (msg, _) = parse_cidr("::ffff:0:0/96").unwrap_err();
        assert!(msg.contains("IPv4-mapped"));
        for bad in [
            "10.0.0.0/33",
            "010.0.0.0/8",
            "10.1/16",
            "fe80::1%eth0/64",
            "office",
            "10.0.0.0/",
            "",
        ] {
            assert!(parse_cidr(bad).is_err(), "{bad}");
        }
        // The IPv4-compatible form is plain IPv6, accepted as written.
        assert!(parse_cidr("::203.0.113.0/120").is_ok());
    }

    #[test]
    fn method_case_is_checked() {
        assert!(check_method("POST").is_ok());
        assert!(check_method("PROPFIND").is_ok());
        assert!(
            check_method("post")
                .unwrap_err()
                .1
                .unwrap()
                .contains("'POST'")
        );
        assert!(check_method("GE T").is_err());
    }

    #[test]
    fn host_patterns() {
        assert_eq!(
            parse_host("Console.Example.com").unwrap(),
            HostPattern::Exact("console.example.com".into())
        );
        assert_eq!(
            parse_host("*.example.com").unwrap(),
            HostPattern::Suffix(".example.com".into())
        );
        assert!(
            parse_host("example.com:8443")
                .unwrap_err()
                .1
                .unwrap()
                .contains("without the port")
        );
        assert!(parse_host("*").is_err());
        assert!(parse_host("a..b").is_err());
        assert!(parse_host("[2001:db8::1]").is_ok());
    }
}

#[cfg(test)]
mod policy_tests {
    use crate::policy::{LoadError, Severity, load_str};
    use std::path::Path;

    /// `file:line:col: severity: message` of every diagnostic, or the loaded warnings.
    fn diagnostics(yaml: &str) -> Vec<String> {
        let render = |d: &crate::policy::Diagnostic| {
            format!("{}:{}: {}: {}", d.line, d.column, d.severity, d.message)
        };
        match load_str(yaml, Path::new("p.yaml")) {
            Ok(l) => l.warnings.iter().map(render).collect(),
            Err(LoadError::Invalid { diagnostics, .. }) => diagnostics.iter().map(render).collect(),
            Err(e) => vec![e.to_string()],
        }
    }

    fn has(diags: &[String], needle: &str) -> bool {
        diags.iter().any(|d| d.contains(needle))
    }

    const RULE: &str = "rules:\n  - { name: all, paths: [\"/**\"], allow_from: [office] }\n";

    #[test]
    fn every_error_is_reported_in_one_run_with_its_place() {
        let d = diagnostics(
            "version: 1\nnetworks:\n  office: [10.0.0.1/8, 300.1.1.1]\n  corp: { include: [offce] }\nrules:\n  - { name: a, paths: [/x], allow_from: [office, nope] }\n  - { name: a, paths: [/y], action: allow }\n",
        );
        assert!(
            has(&d, "3:12: error: '10.0.0.1/8' has host bits set"),
            "{d:#?}"
        );
        assert!(
            has(&d, "3:24: error: '300.1.1.1' is not an IP address or CIDR"),
            "{d:#?}"
        );
        assert!(
            has(&d, "4:21: error: network 'corp': unknown network 'offce'"),
            "{d:#?}"
        );
        assert!(
            has(&d, "6:50: error: rule 'a': unknown network 'nope'"),
            "{d:#?}"
        );
        assert!(
            has(&d, "7:13: error: duplicate rule name 'a' (first at line 6)"),
            "{d:#?}"
        );
        // A network whose entries are wrong is not reported again as empty.
        assert!(!has(&d, "contains no addresses"), "{d:#?}");
    }

    #[test]
    fn alert_sections_are_checked_with_places_and_never_echo_a_secret() {
        let d = diagnostics(&format!(
            "version: 1\nnetworks:\n  office: [10.0.0.0/8]\n{RULE}alerts:\n  window: 5x\n  key: subnet24\n  storm: {{ max_alerts: 0 }}\n  queue: 0\n  sinks:\n    - {{ name: a, type: slack, url: \"https://hooks.slack.com/services/T/B/SECRETX\" }}\n    - {{ name: b, type: webhook, url_env: \"https://example.com/SECRETY\" }}\n    - {{ name: c, type: pager, url_env: X }}\n    - {{ name: d, type: webhook, url_env: D_URL, token_env: 9X }}\n    - {{ name: d, type: slack, url_env: S_URL, secret_env: S_KEY }}\n    - {{ name: e, type: webhook }}\n",
        ));
        for needle in [
            "7:11: error: '5x': unknown unit 'x'",
            "8:8: error: alert key 'subnet24' is not known",
            "9:24: error: max_alerts 0 is out of range",
            "10:10: error: queue 0 is out of range",
            "12:36: error: a slack sink's URL is a secret and is not written in the policy",
            "13:42: error: url_env must name an environment variable, and this looks like the value itself",
            "14:24: error: sink type 'pager' is not known",
            "15:60: error: '9X' is not an environment variable name",
            "16:15: error: two sinks are named 'd'",
            "16:59: error: a slack sink is not signed",
            "17:7: error: sink 'e' has no URL",
        ] {
            assert!(has(&d, needle), "{needle}\n{d:#?}");
        }
        assert!(!d.iter().any(|l| l.contains("SECRET")), "{d:#?}");
    }

    #[test]
    fn an_alerts_section_compiles_with_defaults() {
        let yaml = format!(
            "version: 1\nnetworks:\n  office: [10.0.0.0/8]\n{RULE}alerts:\n  key: asn\n  sinks:\n    - {{ name: am, type: alertmanager, url: \"http://127.0.0.1:9093\" }}\n    - {{ name: hook, type: webhook, url_env: HOOK_URL, secret_env: HOOK_KEY, signature_header: X-Sig }}\n"
        );
        let l = load_str(&yaml, Path::new("p.yaml")).expect("valid");
        let a = l.policy.alerts().expect("alerts");
        assert_eq!(a.key, crate::policy::alerts::AlertKey::Asn);
        assert_eq!(a.window, crate::policy::alerts::defaults::WINDOW);
        assert_eq!(a.sinks.len(), 2);
        assert_eq!(a.sinks[1].signature_header, "x-sig");
        assert_eq!(a.sinks[1].secret_env.as_deref(), Some("HOOK_KEY"));
    }

    #[test]
    fn unknown_network_suggests_the_near_name() {
        let yaml = "version: 1\nnetworks:\n  office: [10.0.0.0/8]\nrules:\n  - { name: login, allow_from: [offce] }\n";
        let Err(LoadError::Invalid { diagnostics, .. }) = load_str(yaml, Path::new("p.yaml"))
        else {
            panic!("must fail");
        };
        let d = diagnostics
            .iter()
            .find(|d| d.message.contains("offce"))
            .unwrap();
        assert_eq!(d.help.as_deref(), Some("did you mean 'office'?"));
        assert_eq!(
            d.to_string().lines().next().unwrap(),
            "p.yaml:5:33: error: rule 'login': unknown network 'offce'"
        );
    }

    #[test]
    fn unknown_keys_are_errors() {
        let d = diagnostics("version: 1\nrules:\n  - { name: a, action: allow, pathz: [/x] }\n");
        assert!(has(&d, "3:31: error: unknown key 'pathz'"), "{d:#?}");
    }

    #[test]
    fn include_cycles_are_errors() {
        let d = diagnostics(&format!(
            "version: 1\nnetworks:\n  office: {{ include: [b] }}\n  b: {{ include: [c] }}\n  c: {{ include: [office] }}\n{RULE}"
        ));
        assert!(
            has(&d, "include cycle office -> b -> c -> office"),
            "{d:#?}"
        );
    }

    #[test]
    fn empty_networks_are_errors() {
        let d = diagnostics(&format!("version: 1\nnetworks:\n  office: []\n{RULE}"));
        assert!(has(&d, "network 'office' is empty"), "{d:#?}");
        let d = diagnostics(&format!(
            "version: 1\nnetworks:\n  office: {{ include: [x], except: [x] }}\n  x: [10.0.0.0/8]\n{RULE}"
        ));
        assert!(has(&d, "network 'office' contains no addresses"), "{d:#?}");
    }

    #[test]
    fn mapped_cidr_is_an_error_with_the_ipv4_form() {
        let yaml = format!("version: 1\nnetworks:\n  office: [\"::ffff:0:0/96\"]\n{RULE}");
        let Err(LoadError::Invalid { diagnostics, .. }) = load_str(&yaml, Path::new("p.yaml"))
        else {
            panic!("must fail");
        };
        let help = diagnostics[0].help.as_deref().unwrap();
        assert!(help.contains("write '0.0.0.0/0'"), "{help}");
    }

    #[test]
    fn unreachable_rule_is_an_error() {
        let d = diagnostics(
            "version: 1\nnetworks:\n  office: [10.0.0.0/8]\nrules:\n  - { name: all, paths: [\"/admin/**\"], allow_from: [office] }\n  - { name: login, paths: [/admin/login], methods: [POST], action: deny }\n",
        );
        assert!(
            has(
                &d,
                "error: rule 'login' can never match: rule 'all' (line 5)"
            ),
            "{d:#?}"
        );
        // deny_from falls through, so it shadows nothing.
        let d = diagnostics(
            "version: 1\nnetworks:\n  office: [10.0.0.0/8]\nrules:\n  - { name: all, deny_from: [office] }\n  - { name: login, action: allow }\n",
        );
        assert!(!has(&d, "never match"), "{d:#?}");
        // A narrower method list does not cover a broader one.
        let d = diagnostics(
            "version: 1\nrules:\n  - { name: a, methods: [GET], action: allow }\n  - { name: b, action: deny }\n",
        );
        assert!(!has(&d, "never match"), "{d:#?}");
    }

    #[test]
    fn yaml_errors_are_in_netwardens_words_and_each_has_a_help_line() {
        for (yaml, message, help) in [
            (
                "version: 1\nrules:\n  - { name: a, allow_form: [x] }\n",
                "unknown key 'allow_form'",
                "did you mean 'allow_from'?",
            ),
            (
                "version: 1\nrules:\n  - { name: a, action: allow, login: yes }\n",
                "expected true or false",
                "write true or false",
            ),
            (
                "version: 1\nnetworks:\n  office: 192.0.2.0/24\n",
                "found string \"192.0.2.0/24\" where a list",
                "write a list",
            ),
            (
                "version: 1\nrules:\n  - { name: a, paths: /x, action: allow }\n",
                "expected a list here",
                "one item is [a]",
            ),
            (
                "version: 1\nrules:\n  - { name: a, action: alow }\n",
                "unknown value 'alow'",
                "did you mean 'allow'?",
            ),
            (
                "version: 1\nrules:\n  - { action: allow }\n",
                "missing key 'name'",
                "add name:",
            ),
            (
                "version: 1\nrules: [ {name: a\n",
                "unclosed",
                "check indentation",
            ),
        ] {
            let d = diagnostics(yaml);
            assert!(has(&d, message), "{yaml}: {d:#?}");
            let Err(LoadError::Invalid {
                diagnostics: full, ..
            }) = load_str(yaml, Path::new("p.yaml"))
            else {
                panic!("{yaml} is invalid");
            };
            assert!(
                full.iter().all(|d| d.help.is_some()),
                "{yaml}: an error without help: {full:#?}"
            );
            assert!(
                full.iter()
                    .any(|d| d.help.as_deref().is_some_and(|h| h.contains(help))),
                "{yaml}: {full:#?}"
            );
        }
    }

    #[test]
    fn trusted_proxy_ranges_wider_than_a_16_or_48_are_warned_about() {
        let d = diagnostics(
            "version: 1\nnetworks:\n  o: [192.0.2.0/24]\n  pods: [10.0.0.0/8]\n  lb: [10.0.0.0/24, 10.9.0.0/24]\nclient_ip: { trusted_proxies: [pods, lb, \"2001:db8::/32\", \"2001:db8:1::/48\", 172.16.0.0/16] }\nrules:\n  - { name: a, allow_from: [o] }\n",
        );
        assert!(
            has(
                &d,
                "warning: trusted proxy 'pods' covers 16777216 IPv4 addresses"
            ),
            "{d:#?}"
        );
        assert!(
            has(
                &d,
                "warning: trusted proxy '2001:db8::/32' covers more IPv6"
            ),
            "{d:#?}"
        );
        // A /16 and a /48 themselves, and a network of small ranges, are fine.
        assert_eq!(
            d.iter().filter(|l| l.contains("covers")).count(),
            2,
            "{d:#?}"
        );
    }

    #[test]
    fn a_misspelled_trusted_proxy_is_not_also_an_unused_network() {
        let d = diagnostics(
            "version: 1\nnetworks:\n  o: [192.0.2.0/24]\n  ingress: [10.0.0.5/32]\nclient_ip: { trusted_proxies: [ingres] }\nrules:\n  - { name: a, allow_from: [o] }\n",
        );
        assert!(has(&d, "unknown network 'ingres'"), "{d:#?}");
        assert!(!has(&d, "not used"), "{d:#?}");
        // A network that client_ip uses counts as used.
        let d = diagnostics(
            "version: 1\nnetworks:\n  o: [192.0.2.0/24]\n  ingress: [10.0.0.5/32]\nclient_ip: { trusted_proxies: [ingress] }\nrules:\n  - { name: a, allow_from: [o] }\n",
        );
        assert!(!has(&d, "not used"), "{d:#?}");
    }

    #[test]
    fn warnings_for_default_allow_overlaps_and_unused_networks() {
        let d = diagnostics(
            "version: 1\nnetworks:\n  office: [10.0.0.0/8, 10.1.0.0/16]\n  spare: [192.0.2.0/24]\nrules:\n  - { name: a, allow_from: [office] }\ndefault: allow\n",
        );
        assert!(
            has(
                &d,
                "3:24: warning: network 'office': 10.1.0.0/16 overlaps 10.0.0.0/8 (line 3)"
            ),
            "{d:#?}"
        );
        assert!(has(&d, "warning: 'default: allow'"), "{d:#?}");
        assert!(has(&d, "warning: network 'spare' is not used"), "{d:#?}");
        assert!(d.iter().all(|l| l.contains("warning")), "{d:#?}");
    }

    #[test]
    fn failing_policy_tests_make_the_policy_invalid() {
        let d = diagnostics(&format!(
            "version: 1\nnetworks:\n  office: [10.0.0.0/8]\n{RULE}tests:\n  - {{ ip: 192.0.2.1, expect: allow }}\n  - {{ ip: 10.1.1.1, expect: allow, rule: other }}\n"
        ));
        assert!(
            has(
                &d,
                "7:5: error: test 1 failed: GET / expected allow, got deny by rule 'all'"
            ),
            "{d:#?}"
        );
        assert!(
            has(
                &d,
                "8:5: error: test 2 failed: GET / expected allow by rule 'other', got allow by rule 'all'"
            ),
            "{d:#?}"
        );
    }

    #[test]
    fn rule_shape_is_checked() {
        let d = diagnostics(
            "version: 1\nnetworks:\n  o: [10.0.0.0/8]\nrules:\n  - { name: a, paths: [/x] }\n  - { name: b, action: allow, allow_from: [o] }\n",
        );
        assert!(has(&d, "rule 'a' does not say what to do"), "{d:#?}");
        assert!(has(&d, "rule 'b' has more than one of"), "{d:#?}");
    }

    #[test]
    fn yaml_syntax_error_is_located() {
        let d = diagnostics("version: 1\nrules: [\n");
        assert_eq!(d.len(), 1);
        assert!(d[0].contains(": error: "), "{d:#?}");
        assert!(!d[0].starts_with("0:0"), "{d:#?}");
    }

    #[test]
    fn alias_bomb_is_refused_not_expanded() {
        // 8^29 strings if expanded.
        let mut y = String::from("version: 1\nnetworks:\n  n0: &a0 [10.0.0.0/8]\n");
        for i in 1..30 {
            let p = i - 1;
            y.push_str(&format!(
                "  n{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        let d = diagnostics(&y);
        assert_eq!(d.len(), 1, "{d:#?}");
        assert!(d[0].starts_with("4:12: error:"), "{d:#?}");
    }

    proptest::proptest! {
        #[test]
        fn any_text_is_an_error_or_a_policy_never_a_panic(text in "(version: 1\n)?[\\PC\n :\\-\\[\\]{},&*!|>'\"#]{0,200}") {
            // Load from a directory that exists so that `file:` lookups stay inside it.
            let _ = load_str(&text, Path::new("/nonexistent-netwarden-dir/p.yaml"));
        }
    }

    #[test]
    fn trusted_proxies_take_network_names_even_starting_with_a_digit() {
        let d = diagnostics(
            "version: 1\nnetworks:\n  1st_floor_lb: [10.1.1.0/24]\n  o: [192.0.2.0/24]\nclient_ip: { trusted_proxies: [1st_floor_lb, 172.16.0.0/28] }\nrules:\n  - { name: a, allow_from: [o] }\ntests:\n  - { peer: 10.1.1.1, headers: { x-forwarded-for: 192.0.2.5 }, expect: allow }\n  - { peer: 172.16.0.1, headers: { x-forwarded-for: 192.0.2.5 }, expect: allow }\n",
        );
        assert!(d.is_empty(), "{d:#?}");
    }

    /// A policy in testdata/cases, so that `../geo/` reaches the test databases.
    fn geo_diagnostics(yaml: &str) -> Vec<String> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/cases/inline.yaml");
        match load_str(yaml, &path) {
            Ok(l) => l
                .warnings
                .iter()
                .map(|d| format!("{}:{}: {}", d.line, d.column, d.message))
                .collect(),
            Err(LoadError::Invalid { diagnostics, .. }) => diagnostics
                .iter()
                .map(|d| {
                    format!(
                        "{}:{}: {} help: {}",
                        d.line,
                        d.column,
                        d.message,
                        d.help.clone().unwrap_or_default()
                    )
                })
                .collect(),
            Err(e) => vec![e.to_string()],
        }
    }

    #[test]
    fn facts_need_their_database_and_valid_values() {
        let d = geo_diagnostics(
            "version: 1\ngeoip:\n  country: ../geo/GeoLite2-Country-Test.mmdb\nnetworks:\n  home: { connection_type: [Cable/DSL] }\n  a: { country: [jp, XX] }\n  b: { anonymous: [tor] }\nrules:\n  - { name: r, allow_from: [home, a, b] }\n",
        );
        assert!(
            has(
                &d,
                "5:28: network 'home' uses connection_type facts, but no geoip.connection_type database is configured"
            ),
            "{d:#?}"
        );
        assert!(
            has(
                &d,
                "6:18: network 'a': 'jp' is not a country code help: country codes are upper case: write 'JP'"
            ),
            "{d:#?}"
        );
        assert!(
            has(&d, "6:22: network 'a': 'XX' is not a country code"),
            "{d:#?}"
        );
        assert!(
            has(
                &d,
                "7:19: network 'b' uses anonymous_ip facts, but no geoip.anonymous_ip database"
            ),
            "{d:#?}"
        );
        let d = geo_diagnostics(
            "version: 1\ngeoip:\n  connection_type: ../geo/GeoIP2-Connection-Type-Test.mmdb\n  anonymous_ip: ../geo/GeoIP2-Anonymous-IP-Test.mmdb\nnetworks:\n  home: { connection_type: [Cable/DS] }\n  b: { anonymous: [tor_exit] }\nrules:\n  - { name: r, allow_from: [home, b] }\n",
        );
        assert!(
            has(
                &d,
                "'Cable/DS' is not a connection type help: did you mean 'Cable/DSL'?"
            ),
            "{d:#?}"
        );
        assert!(
            has(
                &d,
                "'tor_exit' is not an anonymous-IP flag help: did you mean 'tor_exit_node'?"
            ),
            "{d:#?}"
        );
    }

    #[test]
    fn wrong_missing_or_corrupt_databases_fail_closed_with_their_place() {
        let d = geo_diagnostics(
            "version: 1\ngeoip:\n  asn: ../geo/GeoLite2-Country-Test.mmdb\n  country: ../geo/missing.mmdb\n  connection_type: ../cases/semantics.yaml\nrules:\n  - { name: r, action: deny }\n",
        );
        assert!(has(&d, "3:8: asn database"), "{d:#?}");
        assert!(
            has(&d, "'GeoLite2-Country' database, which cannot serve as asn"),
            "{d:#?}"
        );
        assert!(has(&d, "4:12: country database"), "{d:#?}");
        assert!(has(&d, "5:20: connection_type database"), "{d:#?}");
    }

    #[test]
    fn trusted_proxies_cannot_be_fact_networks() {
        let d = geo_diagnostics(
            "version: 1\ngeoip:\n  country: ../geo/GeoLite2-Country-Test.mmdb\nnetworks:\n  jp: { country: [JP] }\nclient_ip: { trusted_proxies: [jp] }\nrules:\n  - { name: r, allow_from: [jp] }\n",
        );
        assert!(
            has(&d, "trusted proxy network 'jp' uses GeoIP facts"),
            "{d:#?}"
        );
    }

    #[test]
    fn a_report_only_rule_shadows_nothing() {
        let d = diagnostics(
            "version: 1\nnetworks:\n  o: [10.0.0.0/8]\nrules:\n  - { name: all, allow_from: [o], mode: report }\n  - { name: rest, action: allow }\n",
        );
        assert!(!has(&d, "never match"), "{d:#?}");
        assert!(has(&d, "warning: rule 'all' is report-only"), "{d:#?}");
    }

    #[test]
    fn yaml_1_1_booleans_are_refused() {
        let d = diagnostics("version: 1\nrules:\n  - { name: a, login: yes, action: deny }\n");
        assert!(has(&d, "3:23: error:"), "{d:#?}");
    }

    #[test]
    fn wrong_version_and_bad_header_are_errors() {
        let d = diagnostics(
            "version: 2\nclient_ip: { trusted_proxies: [10.0.0.0/8], header: x-forwarded-fro }\n",
        );
        assert!(
            has(&d, "1:10: error: unsupported policy version 2"),
            "{d:#?}"
        );
        assert!(
            has(&d, "unknown client_ip.header 'x-forwarded-fro'"),
            "{d:#?}"
        );
    }

    #[test]
    fn network_file_errors_name_the_file_line_and_column() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("extra.txt"),
            "# comment\n198.51.100.0/24\n  10.0.0.1/8 # bad\n",
        )
        .unwrap();
        let policy = dir.path().join("p.yaml");
        std::fs::write(
            &policy,
            "version: 1\nnetworks:\n  vpn: { file: extra.txt }\nrules:\n  - { name: a, allow_from: [vpn] }\n",
        )
        .unwrap();
        let Err(LoadError::Invalid { diagnostics, .. }) = crate::policy::load(&policy) else {
            panic!("must fail");
        };
        let d = &diagnostics[0];
        assert!(d.file.ends_with("extra.txt"));
        assert_eq!((d.line, d.column, d.severity), (3, 3, Severity::Error));
        assert!(d.message.contains("has host bits set"));
    }
}
