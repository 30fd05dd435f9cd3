//! `networks:` -> compiled networks: CIDRs and `file:` lists merged into
//! address ranges, facts, includes and excepts resolved (cycles refused).

use std::collections::HashMap;
use std::path::PathBuf;

use ipnet::IpNet;
use serde_saphyr::Location;

use super::compile::{Cx, at};
use super::diagnostics::{Collector, Severity};
use super::raw::{RawCidr, RawNetwork, RawPolicy, S};
use super::{Dynamic, Grant, NetRef};
use crate::engine::facts::FactTest;
use crate::engine::prefix::RangeSet;
use crate::engine::time::parse_instant;
use crate::geo::GeoSet;

/// Overlap warnings shown per network before "and N more".
const MAX_OVERLAP_WARNINGS: usize = 5;

/// A network while compiling: its raw parts and, once resolved, its ranges.
pub(super) struct NetDraft {
    pub(super) name: String,
    pub(super) loc: Location,
    pub(super) direct: Vec<IpNet>,
    pub(super) include: Vec<S<String>>,
    pub(super) except: Vec<S<String>>,
    pub(super) declared_empty: bool,
    /// Some entry was invalid (already reported): do not report it as empty too.
    pub(super) had_errors: bool,
    pub(super) facts: Vec<FactTest>,
    /// Entries with `until:`: members until then, checked per request.
    pub(super) grants: Vec<Grant>,
    /// Set by `resolve` for networks that involve facts.
    pub(super) dynamic: Option<Dynamic>,
    pub(super) state: Resolve,
    pub(super) used: bool,
    /// Its feed's list is stale and `on_stale: empty` emptied it: holding
    /// no address is then what the policy asked for, not a mistake.
    pub(super) emptied: bool,
    /// Published addresses that stop matching when their list goes stale
    /// (`on_stale: empty`, DNS names).
    pub(super) published: Vec<crate::engine::ruleset::Published>,
}

pub(super) enum Resolve {
    Pending,
    InProgress,
    /// The network's ranges, and whether it involves facts.
    Done(Option<(RangeSet, bool)>),
}

impl Cx<'_, '_> {
    pub(super) fn network_drafts(&mut self, raw: &RawPolicy, geo: &GeoSet) -> Vec<NetDraft> {
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
                grants: Vec::new(),
                dynamic: None,
                state: Resolve::Pending,
                used: false,
                emptied: false,
                published: Vec::new(),
            };
            let mut located: Vec<(IpNet, Source)> = Vec::new();
            let mut published: Vec<IpNet> = Vec::new();
            let errors_before = self.error_count();
            match &net.value {
                RawNetwork::List(cidrs) => {
                    for cidr in cidrs {
                        self.entry(&name.value, cidr, &mut located, &mut draft.grants);
                    }
                    draft.declared_empty = cidrs.is_empty();
                }
                RawNetwork::Map(m) => {
                    for cidr in &m.cidrs {
                        self.entry(&name.value, cidr, &mut located, &mut draft.grants);
                    }
                    if let Some(file) = &m.file {
                        self.network_file(&name.value, file, &mut located, &mut draft.grants);
                    }
                    if !m.dns_names.is_empty() {
                        let state_dir = self.state_dir.clone();
                        // A name may hold no address (NXDOMAIN, or no answer
                        // for dns.max_age): the network is then empty by
                        // the policy's own rules, not by mistake.
                        draft.emptied = true;
                        if let Some((fixed, expiring)) = self.dns_names(
                            &name.value,
                            &m.dns_names,
                            m.dns_snapshot.as_ref(),
                            state_dir.as_deref(),
                        ) {
                            if let Some(first) = m.dns_names.first() {
                                self.published_at.get_or_insert(first.referenced);
                            }
                            self.published_all.extend(fixed.iter().copied());
                            published.extend(fixed);
                            draft.published.extend(expiring);
                        }
                    } else if let Some(s) = &m.dns_snapshot {
                        self.error(
                            &s.referenced,
                            format!("network '{}': dns_snapshot without dns_names", name.value),
                            Some("dns_snapshot stands in for the answers of dns_names; remove it, or add the names".into()),
                        );
                    }
                    if let Some(feed) = &m.feed {
                        let state_dir = self.state_dir.clone();
                        self.published_at.get_or_insert(feed.referenced);
                        if let Some((compiled, list, until)) =
                            self.feed(&name.value, feed, state_dir.as_deref())
                        {
                            self.published_all.extend(list.iter().copied());
                            // on_stale: empty: it may go empty by itself.
                            draft.emptied |= compiled.on_stale == super::feeds::OnStale::Empty;
                            self.feeds.push(compiled);
                            match until {
                                Some(until) => {
                                    draft.published.push(crate::engine::ruleset::Published {
                                        ranges: RangeSet::from_nets(&list),
                                        until,
                                    })
                                }
                                None => published.extend(list),
                            }
                        }
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
                    draft.declared_empty = m.cidrs.is_empty()
                        && m.file.is_none()
                        && m.feed.is_none()
                        && m.dns_names.is_empty()
                        && m.include.is_empty()
                        && no_facts;
                }
            }
            if draft.declared_empty {
                self.error(
                    &net.referenced,
                    format!("network '{}' is empty", name.value),
                    Some("give it cidrs, a file, a feed, include or facts; or remove it".into()),
                );
            }
            // Errors only: a warning (a grant expiring soon) leaves the
            // network as it is.
            draft.had_errors = self.error_count() > errors_before;
            self.overlaps(&name.value, &mut located);
            draft.direct = located.into_iter().map(|(n, _)| n).collect();
            // A published list's own overlaps are the publisher's; they
            // are merged like any others, without a warning nobody can act on.
            draft.direct.extend(published);
            drafts.push(draft);
        }
        drafts
    }

    /// Errors reported so far, in the policy and in the files it reads.
    pub(super) fn error_count(&self) -> usize {
        self.c.diagnostics.iter().filter(|d| d.is_error()).count()
            + self.extra.iter().filter(|d| d.is_error()).count()
    }

    /// One entry of a network's `cidrs`: a CIDR, or a grant with `until:`.
    fn entry(
        &mut self,
        network: &str,
        entry: &S<RawCidr>,
        out: &mut Vec<(IpNet, Source)>,
        grants: &mut Vec<Grant>,
    ) {
        match &entry.value {
            RawCidr::Plain(text) => self.cidr(
                &S {
                    value: text.clone(),
                    referenced: entry.referenced,
                    defined: entry.defined,
                },
                out,
            ),
            RawCidr::Grant(g) => {
                let net = parse_cidr(&g.cidr.value);
                let until = parse_instant(&g.until.value);
                if let Err((message, help)) = &net {
                    self.error(&g.cidr.referenced, message.clone(), help.clone());
                }
                if let Err(message) = &until {
                    self.error(
                        &g.until.referenced,
                        format!("network '{network}': until: {message}"),
                        Some("write the instant with its offset, so that it means the same everywhere".into()),
                    );
                }
                let (Ok(net), Ok(until)) = (net, until) else {
                    return;
                };
                if let Some((message, help)) = expiry_warning(
                    &format!("network '{network}': grant {net}"),
                    &g.until.value,
                    until,
                    self.now,
                ) {
                    self.warn(&g.until.referenced, message, Some(help));
                }
                grants.push(Grant {
                    net,
                    until,
                    note: g.note.as_deref().map(Into::into),
                });
            }
        }
    }

    /// Parses one CIDR written in the policy.
    pub(super) fn cidr(&mut self, cidr: &S<String>, out: &mut Vec<(IpNet, Source)>) {
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

    /// Reads a network file: one CIDR or address a line, '#' comments; a
    /// line may end in `until=<instant>` (a grant, its comment the note).
    fn network_file(
        &mut self,
        network: &str,
        file: &S<String>,
        out: &mut Vec<(IpNet, Source)>,
        grants: &mut Vec<Grant>,
    ) {
        let path = self.base.join(&file.value);
        self.sources.push(path.clone());
        self.network_files.push((network.to_string(), path.clone()));
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
            let (content, comment) = line.split_once('#').unwrap_or((line, ""));
            let mut words = content.split_whitespace();
            let Some(token) = words.next() else {
                continue;
            };
            let line_no = u32::try_from(i + 1).unwrap_or(u32::MAX);
            let col = u32::try_from(content.len() - content.trim_start().len() + 1).unwrap_or(1);
            let rest: Vec<&str> = words.collect();
            if !rest.is_empty() {
                let until = match rest.as_slice() {
                    [word] => word.strip_prefix("until="),
                    _ => None,
                };
                let Some(until) = until else {
                    fc.push(
                        Severity::Error,
                        line_no,
                        col,
                        format!(
                            "network '{network}': '{}' after the address is not understood",
                            rest.join(" ")
                        ),
                        Some("a line holds one CIDR, optionally followed by until=2026-12-24T18:00:00+09:00 and a # comment".into()),
                    );
                    continue;
                };
                match (parse_cidr(token), parse_instant(until)) {
                    (Ok(net), Ok(instant)) => {
                        if let Some((message, help)) = expiry_warning(
                            &format!("network '{network}': grant {net}"),
                            until,
                            instant,
                            self.now,
                        ) {
                            fc.push(Severity::Warning, line_no, col, message, Some(help));
                        }
                        let note = comment.trim();
                        grants.push(Grant {
                            net,
                            until: instant,
                            note: (!note.is_empty()).then(|| note.into()),
                        });
                    }
                    (Err((message, help)), _) => fc.push(
                        Severity::Error,
                        line_no,
                        col,
                        format!("network '{network}': {message}"),
                        help,
                    ),
                    (_, Err(message)) => fc.push(
                        Severity::Error,
                        line_no,
                        col,
                        format!("network '{network}': until: {message}"),
                        Some("write the instant with its offset, so that it means the same everywhere".into()),
                    ),
                }
                continue;
            }
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
        if more > 0
            && let Some((_, src)) = located.first()
        {
            let src = src.clone();
            self.warn_at(
                &src,
                format!("network '{network}': {more} more overlapping entries"),
                None,
            );
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
    pub(super) fn resolve(
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
            grants: drafts[i].grants.clone(),
            published: drafts[i].published.clone(),
            ..Dynamic::default()
        };
        let mut any_dynamic = !dynamic.facts.is_empty()
            || !dynamic.grants.is_empty()
            || !dynamic.published.is_empty();
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
        if let Some((r, false)) = &result
            && r.is_empty()
            && !drafts[i].declared_empty
            && !drafts[i].emptied
        {
            let (name, loc) = (drafts[i].name.clone(), drafts[i].loc);
            self.error(
                &loc,
                format!("network '{name}' contains no addresses"),
                Some("its file is empty or its except removes every address".into()),
            );
        }
        drafts[i].state = Resolve::Done(result.clone());
        result
    }

    pub(super) fn network_ref(
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
}

/// Where a CIDR was written.
#[derive(Clone)]
pub(super) enum Source {
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

pub(super) fn looks_like_address(s: &str) -> bool {
    s.contains(':') || s.bytes().next().is_some_and(|b| b.is_ascii_digit())
}

pub(super) type Problem = (String, Option<String>);

/// A CIDR or a single address, strictly: no host bits, no IPv4-mapped IPv6
/// ([`crate::addr::parse_prefix`]), with the words that say how to fix it.
pub fn parse_cidr(text: &str) -> Result<IpNet, Problem> {
    use crate::addr::PrefixError;
    let text = text.trim();
    crate::addr::parse_prefix(text).map_err(|e| match e {
        PrefixError::Invalid if text.contains('/') => (
            format!("'{text}' is not a valid CIDR"),
            Some(
                "write an address and a prefix length, such as 203.0.113.0/24 or 2001:db8::/32"
                    .into(),
            ),
        ),
        PrefixError::Invalid => (
            format!("'{text}' is not an IP address or CIDR"),
            Some(
                "write an address (203.0.113.7) or a CIDR (203.0.113.0/24) in canonical form"
                    .into(),
            ),
        ),
        PrefixError::NotCanonical => (
            format!("'{text}' is not in canonical form"),
            Some("write the address in canonical form, without leading zeros or zone ids".into()),
        ),
        PrefixError::HostBits(net) => (
            format!("'{text}' has host bits set"),
            Some(format!(
                "did you mean '{}'? (or '{}/{}' for one address)",
                net.trunc(),
                net.addr(),
                net.max_prefix_len()
            )),
        ),
        PrefixError::Mapped(v4) => (
            format!("'{text}' is an IPv4-mapped IPv6 range"),
            Some(format!(
                "IPv4-mapped clients are matched as IPv4; write '{v4}' (mapped ranges are refused so that ::ffff:0:0/96 cannot mean every IPv4 client)"
            )),
        ),
    })
}

/// How long before an `until:` `check` starts warning about it.
const EXPIRY_NOTICE: jiff::SignedDuration = jiff::SignedDuration::from_hours(7 * 24);

/// A warning for `what` expiring at `until`: already past, or within
/// [`EXPIRY_NOTICE`] of `now`.
pub(super) fn expiry_warning(
    what: &str,
    written: &str,
    until: jiff::Timestamp,
    now: jiff::Timestamp,
) -> Option<(String, String)> {
    // The instant as the policy writes it (`2026-12-24T18:00:00+09:00`),
    // not converted to UTC: the operator reads their own words back.
    let written = written.trim();
    if until <= now {
        Some((
            format!("{what} expired at {written}: it no longer matches"),
            "remove it, or move 'until' later if it is still needed".into(),
        ))
    } else if until.duration_since(now) <= EXPIRY_NOTICE {
        let secs = until.duration_since(now).as_secs();
        // To the nearest hour ("in 72 h" three days ahead, not "71 h");
        // under an hour, in minutes rounded up ("in 40 min", never "in 0 h").
        let left = if secs < 3600 {
            format!("{} min", (secs + 59) / 60)
        } else {
            format!("{} h", (secs + 1800) / 3600)
        };
        Some((
            format!("{what} expires at {written} (in {left})"),
            "nothing to do if that is intended; move 'until' to extend it".into(),
        ))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_expiry_is_said_in_the_words_written_and_in_minutes_under_an_hour() {
        let t = |s: &str| s.parse::<jiff::Timestamp>().expect("instant");
        let until = t("2026-12-07T12:10:00Z");
        let (soon, _) = expiry_warning(
            "grant 192.0.2.7/32",
            " 2026-12-07T21:10:00+09:00 ",
            until,
            t("2026-12-07T11:30:00Z"),
        )
        .expect("a warning");
        assert_eq!(
            soon,
            "grant 192.0.2.7/32 expires at 2026-12-07T21:10:00+09:00 (in 40 min)"
        );
        let (later, _) = expiry_warning(
            "g",
            "2026-12-07T21:10:00+09:00",
            until,
            t("2026-12-04T12:10:00Z"),
        )
        .expect("a warning");
        assert!(later.ends_with("(in 72 h)"), "{later}");
    }

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
}
