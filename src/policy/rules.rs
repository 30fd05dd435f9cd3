//! `rules:` -> compiled rules: paths, methods and hosts as matchers,
//! networks by index, login routes' outcome and account; rules that an
//! earlier rule hides are reported.

use std::collections::HashMap;

use super::compile::{Cx, at};
use super::networks::{NetDraft, Problem, Resolve, expiry_warning};
use super::raw::{OneOrMany, RawAction, RawMode, RawRule, RawWhen, RawWindow, S};
use super::{HostPattern, NetRef, Rule, RuleKind};
use crate::engine::Action;
use crate::engine::path::PathPattern;
use crate::engine::prefix::RangeSet;
use crate::engine::time::{self, Days, Hours, Window, parse_instant};
use serde_saphyr::Location;

/// Well-known methods, to tell `post` (a mistake) from a custom method.
const KNOWN_METHODS: &[&str] = &[
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
];

impl Cx<'_, '_> {
    pub(super) fn rules(
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
        // An allow_from network that holds every address: a public rule.
        let mut everyone = false;

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
                    if let (true, Some(refs)) = (allow, &refs) {
                        // Together, the rule's networks: half of all IPv4 or
                        // IPv6 addresses or more is the internet, not an office.
                        let union = refs.iter().fold(RangeSet::default(), |acc, r| {
                            match &drafts[r.id].state {
                                Resolve::Done(Some((ranges, _))) => acc.union(ranges),
                                _ => acc,
                            }
                        });
                        if holds_nearly_everyone(&union) {
                            self.warn(
                                &list.referenced,
                                format!("{ctx}: its networks hold half of all addresses or more"),
                                Some("write 'action: allow' for a rule that allows everyone: it says so, and the reload guard counts nobody it allows as an admin either way".into()),
                            );
                            everyone = true;
                        }
                    }
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
        if rule.login
            && let Some(RuleKind::Action(Action::Allow)) = kind
        {
            self.warn(
                &rule.name.referenced,
                format!("{ctx} is a login route allowed from anywhere"),
                Some(
                    "use 'allow_from: [networks]' so that sign-in is only possible from them"
                        .into(),
                ),
            );
        }
        let accounts = self.rule_accounts(rule, &ctx).unwrap_or_else(|()| {
            ok = false;
            None
        });
        let who = self
            .rule_who(rule, &ctx, self.identity_present)
            .unwrap_or_else(|()| {
                ok = false;
                None
            });
        if let (Some(_), Some(_)) = (&accounts, &who) {
            self.warn(
                &rule.name.referenced,
                format!("{ctx} has both 'accounts' and 'who': a sign-in must match both, and one that matches only one falls through to later rules"),
                Some("to keep a group's accounts to its networks whatever the identity, give 'accounts' a rule of its own (and 'who' another), each followed by its closing rule (docs/identity.md)".into()),
            );
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
        let until = match &rule.until {
            Some(u) => match parse_instant(&u.value) {
                Ok(t) => {
                    if let Some((message, help)) = expiry_warning(&ctx, &u.value, t, self.now) {
                        self.warn(&u.referenced, message, Some(help));
                    }
                    Some(t)
                }
                Err(message) => {
                    self.error(
                        &u.referenced,
                        format!("{ctx}: until: {message}"),
                        Some("write the instant with its offset, so that it means the same everywhere".into()),
                    );
                    return None;
                }
            },
            None => None,
        };
        let when = match &rule.when {
            Some(w) => self.when(w, &ctx)?,
            None => Vec::new(),
        };
        let vouches = matches!(kind, RuleKind::AllowFrom(_)) && !everyone;
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
            accounts,
            who,
            until,
            when,
            vouches,
        })
    }

    /// `when:` windows; every problem reported, `None` if any.
    fn when(&mut self, raw: &S<RawWhen>, ctx: &str) -> Option<Vec<Window>> {
        let list: Vec<(&RawWindow, Location)> = match &raw.value {
            // One window has no location of its own: the `when:` value's.
            RawWhen::One(w) => vec![(&w.value, raw.referenced)],
            RawWhen::Many(l) => l.iter().map(|w| (&w.value, w.referenced)).collect(),
        };
        if list.is_empty() {
            self.error(
                &raw.referenced,
                format!("{ctx}: 'when' lists no window"),
                Some("give one window { days, hours, time_zone }, or remove 'when'".into()),
            );
            return None;
        }
        let mut out = Vec::with_capacity(list.len());
        let mut ok = true;
        for (w, loc) in list {
            let zone = match &w.time_zone {
                None => {
                    self.error(
                        &loc,
                        format!("{ctx}: a 'when' window needs 'time_zone'"),
                        Some("name the zone its hours are in, such as time_zone: Asia/Tokyo (or UTC)".into()),
                    );
                    None
                }
                Some(z) => match time::zone(&z.value) {
                    Ok(tz) => Some(tz),
                    Err(message) => {
                        self.error(&z.referenced, format!("{ctx}: time_zone: {message}"), None);
                        None
                    }
                },
            };
            let days = match &w.days {
                None => Some(Days::ALL),
                Some(d) => {
                    let items: Vec<&str> = match &d.value {
                        OneOrMany::One(s) => vec![s.as_str()],
                        OneOrMany::Many(l) => l.iter().map(String::as_str).collect(),
                    };
                    match Days::parse(&items) {
                        Ok(days) => Some(days),
                        Err(message) => {
                            self.error(
                                &d.referenced,
                                format!("{ctx}: days: {message}"),
                                Some("write days like [mon-fri] or [sat, sun]".into()),
                            );
                            None
                        }
                    }
                }
            };
            let hours = match &w.hours {
                None => Some(Hours::ALL_DAY),
                Some(h) => match Hours::parse(&h.value) {
                    Ok(hours) => Some(hours),
                    Err(message) => {
                        self.error(
                            &h.referenced,
                            format!("{ctx}: hours: {message}"),
                            Some("write hours like \"08:00-20:00\" (quoted), end excluded".into()),
                        );
                        None
                    }
                },
            };
            match (days, hours, zone) {
                (Some(days), Some(hours), Some(zone)) => out.push(Window { days, hours, zone }),
                _ => ok = false,
            }
        }
        ok.then_some(out)
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
        let success = match (&o.failure, &o.success) {
            (_, Some(p)) => Some(self.patterns(p, ctx, "success")?),
            // Failures named and successes not: what is neither is
            // `unknown`, never a success that resets the count. Django
            // answers a wrong password with 200 and a missing CSRF token
            // with 403; with `failure: { status: [200] }` the 403 must not
            // clear the failures (issue 22).
            (Some(_), None) => {
                self.warn(
                    &raw.referenced,
                    format!(
                        "{ctx}: outcome.failure without outcome.success: an answer that is not a failure is 'unknown', counted neither way, and no sign-in resets the failures"
                    ),
                    Some(
                        "say what a success looks like, for example success: { status: [302] } or success: { location: [\"/dashboard*\"] }"
                            .into(),
                    ),
                );
                Some(crate::engine::outcome::Patterns::default())
            }
            (None, None) => None,
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
    pub(super) fn unreachable(&mut self, raw: &[S<RawRule>], rules: &[Option<Rule>], ci: bool) {
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
    // A rule that matches only at some times hides nothing for good.
    if earlier.until.is_some() || !earlier.when.is_empty() {
        return false;
    }
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
    // A rule for some accounts hides only rules for some of the same.
    let accounts = match (&earlier.accounts, &later.accounts) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(e), Some(l)) => l.iter().all(|g| e.contains(g)),
    };
    // Likewise a rule for some identities: others fall through it.
    let who = match (&earlier.who, &later.who) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(e), Some(l)) => e == l,
    };
    methods && hosts && paths && accounts && who
}

fn host_covers(earlier: &HostPattern, later: &HostPattern) -> bool {
    match (earlier, later) {
        (HostPattern::Exact(a), HostPattern::Exact(b)) => a == b,
        (HostPattern::Suffix(s), HostPattern::Exact(b)) => b.len() > s.len() && b.ends_with(&**s),
        (HostPattern::Suffix(s), HostPattern::Suffix(t)) => t.ends_with(&**s),
        (HostPattern::Exact(_), HostPattern::Suffix(_)) => false,
    }
}

/// Whether a set holds half of all IPv4 addresses or half of all IPv6
/// addresses or more (`0.0.0.0/0`, its two halves, everything but a hole).
fn holds_nearly_everyone(ranges: &RangeSet) -> bool {
    let (v4, v6) = ranges.address_count();
    v4 >= 1 << 31 || v6 >= 1 << 127
}

#[cfg(test)]
mod tests {
    use super::*;

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
