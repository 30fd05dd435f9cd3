//! The decision: request facts + compiled policy -> [`Decision`]. Pure: no
//! I/O, no clock, no async; the proxy, `explain`, `check`'s policy tests and
//! the logs all read the one value this returns.
//!
//! Order of work: resolve the client address ([`client`]), normalize the path
//! ([`path`]), then walk the rules first match wins; a rule matches when its
//! paths, methods and hosts all match, and then decides by its action or by
//! whether the client is in one of its networks ([`prefix`]).

pub mod account;
pub mod accounts;
pub mod client;
pub mod facts;
pub mod outcome;
pub mod partition;
pub mod path;
pub mod prefix;
pub mod request;
pub mod ruleset;
pub mod time;
pub mod trace;
pub mod who;

use std::borrow::Cow;
use std::fmt;
use std::net::IpAddr;

use client::{ClientAddr, Derivation, HeaderLines, Hop};
use facts::{FactCache, Unknown, Via};
use path::PathError;
use request::HostError;
use ruleset::{Rule, RuleKind, Ruleset};

/// Allow or deny.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Allow,
    Deny,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Allow => "allow",
            Action::Deny => "deny",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where the client address comes from.
pub enum ClientSource<'r> {
    /// The address is known already (`explain --ip`, a policy test's `ip:`).
    Given(IpAddr),
    /// A TCP peer and the request's headers, resolved by `client_ip` settings.
    Peer {
        peer: IpAddr,
        headers: &'r dyn HeaderLines,
    },
}

/// The account a sign-in names, as far as the decider knows it. Only rules
/// with `accounts:` read it; the proxy reads a sign-in's body only when
/// such a rule asks ([`Reason::AccountNeeded`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccountFact<'x> {
    /// Not read. A rule with `accounts:` that the request otherwise matches
    /// ends the walk with [`Reason::AccountNeeded`]: the caller reads the
    /// account and decides again.
    Unread,
    /// The account, folded ([`account::fold`]).
    Named(&'x str),
    /// Only the group a decision found it in is known (`None`: in no
    /// group): replaying a logged decision, the reload guard's samples.
    Grouped(Option<&'x str>),
    /// The sign-in names no account that can be believed: a rule with
    /// `accounts:` refuses it ([`Reason::AccountUnreadable`]), never
    /// passing it to a broader rule.
    Unreadable(account::NoAccount),
}

/// What the engine knows of a request. The decision borrows only `path`
/// (`'r`), so the caller may change headers (`'x`) once it has decided.
pub struct RequestFacts<'r, 'x> {
    pub client: ClientSource<'x>,
    /// Method as sent (`GET`, `POST`); methods are case-sensitive (RFC 9110 §9.1).
    pub method: &'x str,
    /// `Host` header or HTTP/2 `:authority`, port allowed; `Ok(None)` for
    /// none (`explain` and policy tests without a host; the proxy refuses
    /// a request without one), an error when the request's authorities disagree
    /// (several `Host` lines, `:authority` or an absolute target that
    /// differs from `Host`, HTTP/1.1 without one): refused with 400.
    pub host: Result<Option<&'x str>, HostError>,
    /// The request target's path; a `?query` suffix is ignored.
    pub path: &'r str,
    /// The instant the request is decided at: rules' and grants' `until:`
    /// and rules' `when:` are read against it. The proxy passes the time
    /// the request arrived; `explain --at` and policy tests' `at:` another.
    pub now: jiff::Timestamp,
    /// The account the sign-in names, read only when a rule asks.
    pub account: AccountFact<'x>,
    /// Who the client is, as the auth layer in front vouched (`identity:`).
    pub identity: who::IdentityFact<'x>,
}

/// Why the decision is what it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// The path was rejected before any rule was considered (answered 400).
    PathRejected(PathError),
    /// A standard method not written in upper case (answered 400).
    MethodRejected,
    /// The Host was rejected before any rule was considered (answered 400).
    HostRejected(HostError),
    /// The rule's `action` applies to every client.
    RuleAction,
    /// The client is in an `allow_from` network.
    InAllowedNetwork,
    /// The client is in none of the `allow_from` networks.
    NotInAllowedNetworks,
    /// The client is in a `deny_from` network.
    InDeniedNetwork,
    /// The rule names networks but the client address is unknown.
    ClientUnknown,
    /// A rule with `accounts:` matches the request otherwise: its account
    /// must be read before anything is decided. Never acted on: the caller
    /// reads the account and decides again.
    AccountNeeded,
    /// A rule with `accounts:` matches a sign-in whose account cannot be
    /// believed (answered 400 when enforced).
    AccountUnreadable(account::NoAccount),
    /// A rule with `who:` matches the request otherwise, and the client
    /// presented no identity.
    IdentityMissing,
    /// A rule with `who:` matches the request otherwise, and the identity
    /// the client presented is not believed.
    IdentityInvalid(who::Invalid),
    /// No rule matched.
    Default,
}

impl Reason {
    /// A stable machine word for logs and `explain --json`.
    pub fn code(self) -> &'static str {
        match self {
            Reason::PathRejected(_) => "path_rejected",
            Reason::MethodRejected => "method_rejected",
            Reason::HostRejected(_) => "host_rejected",
            Reason::RuleAction => "rule_action",
            Reason::InAllowedNetwork => "in_allowed_network",
            Reason::NotInAllowedNetworks => "not_in_allowed_networks",
            Reason::InDeniedNetwork => "in_denied_network",
            Reason::ClientUnknown => "client_unknown",
            Reason::AccountNeeded => "account_needed",
            Reason::AccountUnreadable(_) => "account_unreadable",
            Reason::IdentityMissing => "identity_missing",
            Reason::IdentityInvalid(_) => "identity_invalid",
            Reason::Default => "default",
        }
    }
}

/// The outcome of [`decide`], carrying its reason.
#[derive(Clone, Debug)]
pub struct Decision<'p, 'r> {
    pub action: Action,
    /// The rule that decided; `None` for the default or a rejected path.
    pub rule: Option<&'p Rule>,
    pub client: ClientAddr,
    /// The network whose membership decided (`allow_from`/`deny_from`).
    pub network: Option<&'p str>,
    /// How the client is a member of `network`: by CIDR or by which fact.
    pub via: Option<Via>,
    /// The group of accounts (`accounts:`) the deciding rule matched the
    /// sign-in's account in. The account itself is never kept here.
    pub account_group: Option<&'p str>,
    /// The group of the client's verified identity that the deciding
    /// rule's `who:` matched.
    pub identity_group: Option<&'p str>,
    /// Facts the decision needed that the databases did not know.
    pub unknown_facts: Unknown,
    /// Whether the deciding rule is a login route.
    pub login: bool,
    /// The normalized path that was decided on and that the proxy forwards;
    /// `None` when the path was rejected.
    pub path: Option<Cow<'r, str>>,
    pub reason: Reason,
    /// The first report-only rule that would have denied the request.
    pub report: Option<ReportHit<'p>>,
    /// Whether the decision is applied: `false` when the whole policy is
    /// report-only (the request is forwarded whatever `action` says).
    pub enforced: bool,
    /// An `allow_from` rule that matches the request and whose networks
    /// hold the client, passed over only because it is outside its
    /// `when:` windows: the console is closed to this client at this hour,
    /// and a denial should say so rather than "connect to the VPN".
    pub closed: Option<&'p Rule>,
}

/// A report-only rule's would-be denial.
#[derive(Clone, Copy, Debug)]
pub struct ReportHit<'p> {
    pub rule: &'p Rule,
    pub network: Option<&'p str>,
    pub reason: Reason,
}

impl<'p, 'r> Decision<'p, 'r> {
    /// Separates the normalized path from the rest, so that the rest can
    /// outlive the request it was decided on (the proxy logs it after
    /// forwarding the request).
    pub fn take_path(self) -> (Decision<'p, 'static>, Option<Cow<'r, str>>) {
        let path = self.path;
        (
            Decision {
                action: self.action,
                rule: self.rule,
                client: self.client,
                network: self.network,
                via: self.via,
                account_group: self.account_group,
                identity_group: self.identity_group,
                unknown_facts: self.unknown_facts,
                login: self.login,
                path: None,
                reason: self.reason,
                report: self.report,
                enforced: self.enforced,
                closed: self.closed,
            },
            path,
        )
    }

    /// The deciding rule's name, or `default`, or for a request refused
    /// before any rule `invalid_path`, `invalid_method` or `invalid_host`.
    pub fn rule_name(&self) -> &str {
        match (self.rule, self.reason) {
            (Some(rule), _) => &rule.name,
            (None, Reason::PathRejected(_)) => "invalid_path",
            (None, Reason::MethodRejected) => "invalid_method",
            (None, Reason::HostRejected(_)) => "invalid_host",
            (None, _) => "default",
        }
    }

    /// Refused before any rule (the proxy answers 400).
    pub fn is_rejected(&self) -> bool {
        matches!(
            self.reason,
            Reason::PathRejected(_) | Reason::MethodRejected | Reason::HostRejected(_)
        )
    }

    /// A denied request on a login route: a blocked login attempt
    /// (enforced or, in report-only mode, not).
    pub fn is_blocked_login(&self) -> bool {
        self.login && self.action == Action::Deny && self.reason != Reason::AccountNeeded
    }

    /// The decision the report-only rule would have made, if one would have
    /// denied: for logging its reason.
    pub fn would_be(&self) -> Option<Decision<'p, 'static>> {
        self.report.map(|hit| Decision {
            action: Action::Deny,
            rule: Some(hit.rule),
            client: self.client,
            network: hit.network,
            via: None,
            account_group: None,
            identity_group: None,
            unknown_facts: self.unknown_facts,
            login: hit.rule.login,
            path: None,
            reason: hit.reason,
            report: None,
            enforced: false,
            closed: None,
        })
    }

    /// A report-only rule on a login route would have denied it.
    pub fn would_block_login(&self) -> bool {
        self.report.is_some_and(|r| r.rule.login)
    }

    /// What the proxy does: forward unless an enforced denial.
    pub fn forwards(&self) -> bool {
        self.action == Action::Allow || !self.enforced
    }

    /// A plain-words reason for operators (logs, `explain`). Never shown to
    /// the client: it names rules and networks.
    pub fn explanation(&self) -> impl fmt::Display + '_ {
        Explanation(self)
    }

    /// Whether [`explain_into`] writes this decision's explanation from
    /// fixed words, the client's address and the policy's names only
    /// (which `check` limits to letters, digits, `_`, `-` and `.`): text a
    /// JSON line may carry without escaping. Not the rejections, whose
    /// explanations quote what the client sent, nor an unknown client's.
    pub fn explanation_is_plain(&self) -> bool {
        matches!(
            self.reason,
            Reason::RuleAction
                | Reason::InAllowedNetwork
                | Reason::InDeniedNetwork
                | Reason::NotInAllowedNetworks
                | Reason::Default
        )
    }
}

struct Explanation<'d, 'p, 'r>(&'d Decision<'p, 'r>);

impl fmt::Display for Explanation<'_, '_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        explain_into(self.0, f)
    }
}

/// Writes [`Decision::explanation`] into `w`. The reasons every request
/// gives are written piece by piece (no `format_args!`): the log writes
/// one per request.
pub fn explain_into(d: &Decision<'_, '_>, w: &mut dyn fmt::Write) -> fmt::Result {
    let name = d.rule_name();
    let client = ClientText(&d.client);
    let in_network = |w: &mut dyn fmt::Write, verb: &str| {
        w.write_str("client ")?;
        client.write_to(w)?;
        for piece in [
            " is in network '",
            d.network.unwrap_or("?"),
            "' ",
            verb,
            " by rule '",
            name,
            "'",
        ] {
            w.write_str(piece)?;
        }
        write_via(w, d.via)
    };
    match d.reason {
        Reason::PathRejected(e) => write!(w, "path rejected: {e}"),
        Reason::MethodRejected => w.write_str(
            "method rejected: a standard method not written in upper case, which consoles may read as the upper-case method (allow with case_insensitive_methods: true)",
        ),
        Reason::HostRejected(e) => write!(w, "host rejected: {e}"),
        Reason::RuleAction => {
            for piece in ["rule '", name, "' ", d.action.as_str(), "s every client"] {
                w.write_str(piece)?;
            }
            Ok(())
        }
        Reason::InAllowedNetwork => in_network(w, "allowed"),
        Reason::NotInAllowedNetworks => {
            write!(
                w,
                "client {client} is in none of the networks allowed by rule '{name}' ("
            )?;
            if let Some(rule) = d.rule {
                write_list(w, rule.kind.networks().iter().map(|n| &*n.name))?;
            }
            w.write_str(")")?;
            if !d.unknown_facts.is_empty() {
                w.write_str("; the GeoIP databases do not know its ")?;
                let kinds: Vec<&str> = d.unknown_facts.kinds().map(|k| k.name()).collect();
                w.write_str(&kinds.join(", "))?;
            }
            Ok(())
        }
        Reason::InDeniedNetwork => in_network(w, "denied"),
        Reason::ClientUnknown => write!(
            w,
            "client address is unknown ({}), and rule '{name}' requires a network",
            d.client.derivation
        ),
        Reason::AccountNeeded => write!(
            w,
            "rule '{name}' decides by the account the sign-in names, which was not given (explain --account NAME; a policy test's account:)"
        ),
        Reason::AccountUnreadable(why) => write!(
            w,
            "rule '{name}' decides by the account, and this sign-in's account cannot be believed ({}): refused, never passed to a later rule",
            why.as_str()
        ),
        Reason::IdentityMissing => write!(
            w,
            "rule '{name}' decides by who the client is (who:), and the client presented no identity"
        ),
        Reason::IdentityInvalid(why) => write!(
            w,
            "rule '{name}' decides by who the client is (who:), and the identity presented is not believed: {}",
            why.code()
        ),
        Reason::Default => {
            w.write_str("no rule matched; the default is ")?;
            w.write_str(d.action.as_str())
        }
    }
}

fn write_via(w: &mut dyn fmt::Write, via: Option<Via>) -> fmt::Result {
    match via {
        Some(Via::Fact(kind)) => {
            w.write_str(" (by its ")?;
            w.write_str(kind.name())?;
            w.write_str(")")
        }
        _ => Ok(()),
    }
}

fn write_list<'a>(f: &mut dyn fmt::Write, items: impl Iterator<Item = &'a str>) -> fmt::Result {
    for (i, item) in items.enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        write!(f, "'{item}'")?;
    }
    Ok(())
}

/// The client address for people: the address or `unknown`.
pub struct ClientText<'a>(pub &'a ClientAddr);

impl ClientText<'_> {
    fn write_to(&self, w: &mut dyn fmt::Write) -> fmt::Result {
        match self.0.ip {
            Some(ip) => w.write_str(client::IpText::new(ip).as_str()),
            None => w.write_str("unknown"),
        }
    }
}

impl fmt::Display for ClientText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write_to(f)
    }
}

/// Why a rule did not decide (for `explain`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Skip {
    Path,
    Method,
    Host,
    /// `deny_from`: the client is in none of its networks, so the request
    /// falls through to later rules.
    NotInDeniedNetworks,
    /// `mode: report`: evaluated (and logged if it would deny), not enforced.
    ReportOnly,
    /// `until:` has passed.
    Expired,
    /// `when:`: the request is outside every window.
    OutsideWindow,
    /// `accounts:`: the sign-in's account is in none of the rule's groups.
    NotTheseAccounts,
    /// `who:`: the client's verified identity is not one it names.
    NotThisIdentity,
}

/// Observes the engine's work, for `explain`. The proxy passes `()`, which
/// observes nothing and compiles away.
pub trait Trace {
    /// Visit every rule (to explain each), not only the indexed candidates.
    const ALL_RULES: bool = false;
    fn hop(&mut self, _hop: Hop<'_>) {}
    fn rule_skipped(&mut self, _index: usize, _why: Skip) {}
}

impl Trace for () {}

/// Decides a request. See the module documentation for the order of work.
pub fn decide<'p, 'r>(policy: &'p Ruleset, facts: &RequestFacts<'r, '_>) -> Decision<'p, 'r> {
    decide_traced(policy, facts, &mut ())
}

/// [`decide`], reporting each step to `trace`.
pub fn decide_traced<'p, 'r, T: Trace>(
    policy: &'p Ruleset,
    facts: &RequestFacts<'r, '_>,
    trace: &mut T,
) -> Decision<'p, 'r> {
    decide_inner(policy, facts, trace, None)
}

/// [`decide`] with GeoIP facts already known (replaying a logged
/// decision): the databases are not consulted.
pub fn decide_with_facts<'p, 'r>(
    policy: &'p Ruleset,
    facts: &RequestFacts<'r, '_>,
    known: &crate::geo::Facts,
) -> Decision<'p, 'r> {
    decide_inner(policy, facts, &mut (), Some(known))
}

fn decide_inner<'p, 'r, T: Trace>(
    policy: &'p Ruleset,
    facts: &RequestFacts<'r, '_>,
    trace: &mut T,
    known: Option<&crate::geo::Facts>,
) -> Decision<'p, 'r> {
    let client = match facts.client {
        ClientSource::Given(ip) => ClientAddr {
            ip: Some(client::canonical(ip)),
            derivation: Derivation::Given,
            peer: None,
        },
        ClientSource::Peer { peer, headers } => {
            client::resolve(&policy.client_ip, peer, headers, |hop| trace.hop(hop))
        }
    };
    // Refused before any rule, always enforced (report-only or not): these
    // protect the console from requests it may read differently.
    let rejected = |reason| Decision {
        action: Action::Deny,
        rule: None,
        client,
        network: None,
        via: None,
        account_group: None,
        identity_group: None,
        unknown_facts: Unknown::default(),
        login: false,
        path: None,
        reason,
        report: None,
        enforced: true,
        closed: None,
    };
    if !policy.case_insensitive_methods && request::is_miscased_standard_method(facts.method) {
        return rejected(Reason::MethodRejected);
    }
    let host = match facts.host {
        Ok(Some(h)) => match request::check_host(h) {
            Ok(()) => Some(host_without_port(h)),
            Err(e) => return rejected(Reason::HostRejected(e)),
        },
        Ok(None) => None,
        Err(e) => return rejected(Reason::HostRejected(e)),
    };
    let (raw_path, _query) = path::split_query(facts.path);
    let path = match path::normalize(raw_path).and_then(|p| {
        path::check_ambiguous(&p, policy.allow_path_parameters, policy.allow_trailing_dots)?;
        Ok(p)
    }) {
        Ok(p) => p,
        Err(e) => return rejected(Reason::PathRejected(e)),
    };

    // The index narrows the rules to those whose paths can match; a rule it
    // leaves out would fail its path check below anyway.
    let all: Vec<usize>;
    let candidates = match policy.path_index.candidates(&path) {
        Some(c) if !T::ALL_RULES => c,
        _ => {
            all = (0..policy.rules.len()).collect();
            &all
        }
    };
    // Facts are looked up only when a network needs them, once each.
    let cache = client.ip.map(|ip| match known {
        Some(k) => FactCache::seeded(&policy.geo, ip, facts.now, k),
        None => FactCache::new(&policy.geo, ip, facts.now),
    });
    let mut report: Option<ReportHit<'p>> = None;
    let mut closed: Option<&'p Rule> = None;
    for &index in candidates {
        let rule = &policy.rules[index];
        if let Some(why) = mismatch(rule, facts.method, host, &path, policy) {
            trace.rule_skipped(index, why);
            continue;
        }
        if let Some(why) = rule.out_of_time(facts.now) {
            // Would this rule have let the client in, in its hours?
            if why == Skip::OutsideWindow
                && closed.is_none()
                && !rule.report
                && rule
                    .accounts
                    .as_ref()
                    .is_none_or(|g| group_for(policy, g, facts.account).is_some())
                && rule.who.as_ref().is_none_or(|w| match facts.identity {
                    who::IdentityFact::Verified(id) => w.matches(id).is_some(),
                    _ => false,
                })
                && let (RuleKind::AllowFrom(sets), Some(ip), Some(cache)) =
                    (&rule.kind, client.ip, &cache)
                && policy.first_member(sets, ip, cache).is_some()
            {
                closed = Some(rule);
            }
            trace.rule_skipped(index, why);
            continue;
        }
        // `accounts:`: which group names the sign-in's account; a sign-in
        // in none falls through, one that cannot be read is refused.
        let mut account_group = None;
        let mut refused = None;
        if let Some(groups) = &rule.accounts {
            match facts.account {
                AccountFact::Unread => {
                    return Decision {
                        action: Action::Deny,
                        rule: Some(rule),
                        client,
                        network: None,
                        via: None,
                        account_group: None,
                        identity_group: None,
                        unknown_facts: Unknown::default(),
                        login: rule.login,
                        path: Some(path),
                        reason: Reason::AccountNeeded,
                        report,
                        enforced: true,
                        closed,
                    };
                }
                AccountFact::Unreadable(why) => refused = Some(Reason::AccountUnreadable(why)),
                known => match group_for(policy, groups, known) {
                    Some(g) => account_group = Some(g),
                    None => {
                        trace.rule_skipped(index, Skip::NotTheseAccounts);
                        continue;
                    }
                },
            }
        }
        // `who:`: a verified identity it names decides here, another falls
        // through; none, or one not believed, is refused.
        let mut identity_group = None;
        if let Some(who) = &rule.who
            && refused.is_none()
        {
            match facts.identity {
                who::IdentityFact::Verified(id) => match who.matches(id) {
                    Some(g) => identity_group = g,
                    None => {
                        trace.rule_skipped(index, Skip::NotThisIdentity);
                        continue;
                    }
                },
                who::IdentityFact::Missing => refused = Some(Reason::IdentityMissing),
                who::IdentityFact::Invalid(why) => refused = Some(Reason::IdentityInvalid(why)),
            }
        }
        let decided = |action, network: Option<(&'p str, Via)>, reason| Decision {
            action,
            rule: Some(rule),
            client,
            network: network.map(|(n, _)| n),
            via: network.map(|(_, v)| v),
            account_group,
            identity_group,
            unknown_facts: cache.as_ref().map(|c| c.unknown.get()).unwrap_or_default(),
            login: rule.login,
            path: None,
            reason,
            report,
            enforced: !policy.report_only,
            closed,
        };
        let outcome = if let Some(reason) = refused {
            decided(Action::Deny, None, reason)
        } else {
            match &rule.kind {
                RuleKind::Action(action) => decided(*action, None, Reason::RuleAction),
                RuleKind::AllowFrom(sets) => match (client.ip, &cache) {
                    (Some(ip), Some(cache)) => match policy.first_member(sets, ip, cache) {
                        Some(m) => decided(Action::Allow, Some(m), Reason::InAllowedNetwork),
                        None => decided(Action::Deny, None, Reason::NotInAllowedNetworks),
                    },
                    _ => decided(Action::Deny, None, Reason::ClientUnknown),
                },
                RuleKind::DenyFrom(sets) => match (client.ip, &cache) {
                    (Some(ip), Some(cache)) => match policy.first_member(sets, ip, cache) {
                        Some(m) => decided(Action::Deny, Some(m), Reason::InDeniedNetwork),
                        None => {
                            trace.rule_skipped(index, Skip::NotInDeniedNetworks);
                            continue;
                        }
                    },
                    // Fail closed: an unknown client cannot be shown to be outside
                    // the denied networks.
                    _ => decided(Action::Deny, None, Reason::ClientUnknown),
                },
            }
        };
        if rule.report {
            // Evaluated and remembered; enforcement goes on as if the rule
            // had not matched.
            if outcome.action == Action::Deny && report.is_none() {
                report = Some(ReportHit {
                    rule,
                    network: outcome.network,
                    reason: outcome.reason,
                });
            }
            trace.rule_skipped(index, Skip::ReportOnly);
            continue;
        }
        return Decision {
            path: Some(path),
            ..outcome
        };
    }
    Decision {
        action: policy.default,
        rule: None,
        client,
        network: None,
        via: None,
        account_group: None,
        identity_group: None,
        unknown_facts: cache.as_ref().map(|c| c.unknown.get()).unwrap_or_default(),
        login: false,
        path: Some(path),
        reason: Reason::Default,
        report,
        enforced: !policy.report_only,
        closed,
    }
}

/// The first of `groups` that holds the account `fact` names, if it is
/// known (named, or its group given).
fn group_for<'p>(
    policy: &'p Ruleset,
    groups: &'p [ruleset::GroupRef],
    fact: AccountFact<'_>,
) -> Option<&'p str> {
    match fact {
        AccountFact::Named(folded) => policy.group_of(groups, folded),
        AccountFact::Grouped(g) => groups
            .iter()
            .find(|r| Some(&*r.name) == g)
            .map(|r| &*r.name),
        AccountFact::Unread | AccountFact::Unreadable(_) => None,
    }
}

/// Why `rule` does not apply to the request, if it does not.
fn mismatch(
    rule: &Rule,
    method: &str,
    host: Option<&str>,
    path: &str,
    policy: &Ruleset,
) -> Option<Skip> {
    let ci = policy.case_insensitive_paths;
    if let Some(methods) = &rule.methods {
        let same = |m: &str| {
            m == method || (policy.case_insensitive_methods && m.eq_ignore_ascii_case(method))
        };
        if !methods.iter().any(|m| same(m)) {
            return Some(Skip::Method);
        }
    }
    if let Some(hosts) = &rule.hosts {
        let Some(host) = host else {
            return Some(Skip::Host);
        };
        if !hosts.iter().any(|h| h.matches(host)) {
            return Some(Skip::Host);
        }
    }
    if let Some(paths) = &rule.paths
        && !paths.iter().any(|p| p.matches(path, ci))
    {
        return Some(Skip::Path);
    }
    None
}

/// Whether a client may sign in, for the "why am I blocked?" page: every
/// login route asked once, with a path it matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignInFrom {
    /// The policy has no login route.
    NoRoute,
    Allowed,
    /// Allowed on some login routes, not on others.
    Partly,
    Blocked,
    /// Blocked now only because every login route that would allow it is
    /// outside its `when:` windows.
    Closed,
    /// Decided by the account the sign-in names (`accounts:`), and allowed
    /// for some: the page cannot say more without the account.
    ByAccount,
}

impl SignInFrom {
    pub fn as_str(self) -> &'static str {
        match self {
            SignInFrom::NoRoute => "no_sign_in_route",
            SignInFrom::Allowed => "allowed",
            SignInFrom::Partly => "partly",
            SignInFrom::Blocked => "blocked",
            SignInFrom::Closed => "closed_at_this_hour",
            SignInFrom::ByAccount => "by_account",
        }
    }
}

/// Decides, for each login route of `policy`, a sign-in from `ip` (or an
/// unknown client) on `host` at `now`.
pub fn sign_in_from(
    policy: &Ruleset,
    ip: Option<IpAddr>,
    host: Option<&str>,
    now: jiff::Timestamp,
    identity: who::IdentityFact<'_>,
) -> SignInFrom {
    let (mut allowed, mut blocked, mut closed, mut by_account) = (0, 0, 0, 0);
    for rule in policy.rules.iter().filter(|r| r.login && !r.report) {
        let path = rule
            .paths
            .as_ref()
            .and_then(|p| p.first())
            .map_or_else(|| "/".to_string(), path::PathPattern::example);
        let method = rule
            .methods
            .as_ref()
            .and_then(|m| m.first())
            .map_or("POST", |m| &**m);
        let Some(ip) = ip else {
            blocked += 1;
            continue;
        };
        let sign_in = |account| {
            let facts = RequestFacts {
                client: ClientSource::Given(ip),
                method,
                host: Ok(host),
                path: &path,
                now,
                account,
                identity,
            };
            // Whichever rule decides (an earlier deny_from may): what the
            // sign-in would meet.
            let d = decide(policy, &facts);
            (d.reason, d.forwards(), d.closed.is_some())
        };
        let (reason, forwards, shut) = sign_in(AccountFact::Unread);
        if reason == Reason::AccountNeeded {
            // Each group's accounts, and accounts in none.
            let answers: Vec<bool> = policy
                .accounts
                .iter()
                .map(|g| Some(&*g.name))
                .chain([None])
                .map(|g| sign_in(AccountFact::Grouped(g)).1)
                .collect();
            match (answers.contains(&true), answers.contains(&false)) {
                (true, true) => by_account += 1,
                (true, false) => allowed += 1,
                _ => blocked += 1,
            }
        } else if forwards {
            allowed += 1;
        } else {
            blocked += 1;
            closed += usize::from(shut);
        }
    }
    if by_account > 0 {
        return SignInFrom::ByAccount;
    }
    match (allowed, blocked) {
        (0, 0) => SignInFrom::NoRoute,
        (_, 0) => SignInFrom::Allowed,
        (0, b) if b == closed => SignInFrom::Closed,
        (0, _) => SignInFrom::Blocked,
        _ => SignInFrom::Partly,
    }
}

/// `example.com:8443` -> `example.com`; `[2001:db8::1]:443` -> `[2001:db8::1]`;
/// a trailing dot (fully qualified form) is dropped.
pub fn host_without_port(host: &str) -> &str {
    let host = if host.starts_with('[') {
        host.find(']').map_or(host, |end| &host[..=end])
    } else {
        host.rsplit_once(':').map_or(host, |(h, _)| h)
    };
    host.strip_suffix('.').unwrap_or(host)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::account::{NoAccount, fold};
    use crate::policy::{Policy, load_str};
    use ruleset::HostPattern;
    use std::path::Path;

    const POLICY: &str = "version: 1
networks:
  office: [203.0.113.0/24]
  lb: [10.0.0.0/8]
client_ip: { trusted_proxies: [lb] }
rules:
  - { name: login, paths: [/login], methods: [POST], login: true, allow_from: [office] }
  - { name: console, allow_from: [office] }
";

    fn policy() -> Policy {
        load_str(POLICY, Path::new("t.yaml")).expect("valid").policy
    }

    #[test]
    fn decision_carries_rule_network_login_and_derivation() {
        let p = policy();
        let headers = vec![("x-forwarded-for", "203.0.113.9")];
        let facts = RequestFacts {
            client: ClientSource::Peer {
                peer: "10.1.2.3".parse().unwrap(),
                headers: &headers,
            },
            method: "POST",
            host: Ok(None),
            path: "/login?next=/",
            now: jiff::Timestamp::UNIX_EPOCH,
            account: crate::engine::AccountFact::Unread,
            identity: crate::engine::who::IdentityFact::Missing,
        };
        let d = decide(p.ruleset(), &facts);
        assert_eq!(d.action, Action::Allow);
        assert_eq!(d.rule_name(), "login");
        assert_eq!(d.network, Some("office"));
        assert!(d.login && !d.is_blocked_login());
        assert_eq!(d.client.ip, Some("203.0.113.9".parse().unwrap()));
        assert_eq!(d.client.peer, Some("10.1.2.3".parse().unwrap()));
        assert_eq!(d.client.derivation.kind(), "header");
        assert_eq!(d.path.as_deref(), Some("/login"));
        assert_eq!(d.reason, Reason::InAllowedNetwork);
    }

    #[test]
    fn unknown_client_is_denied_with_a_reason_saying_so() {
        let p = policy();
        let headers = vec![("x-forwarded-for", "0x7f.0.0.1")];
        let facts = RequestFacts {
            client: ClientSource::Peer {
                peer: "10.1.2.3".parse().unwrap(),
                headers: &headers,
            },
            method: "POST",
            host: Ok(None),
            path: "/login",
            now: jiff::Timestamp::UNIX_EPOCH,
            account: crate::engine::AccountFact::Unread,
            identity: crate::engine::who::IdentityFact::Missing,
        };
        let d = decide(p.ruleset(), &facts);
        assert_eq!(d.action, Action::Deny);
        assert!(d.is_blocked_login());
        assert_eq!(d.client.ip, None);
        assert_eq!(d.reason, Reason::ClientUnknown);
        assert_eq!(
            d.explanation().to_string(),
            "client address is unknown (x-forwarded-for hop is not an address in canonical form), and rule 'login' requires a network"
        );
    }

    #[test]
    fn rejected_path_is_denied_before_any_rule() {
        let p = policy();
        let facts = RequestFacts {
            client: ClientSource::Given("203.0.113.9".parse().unwrap()),
            method: "GET",
            host: Ok(None),
            path: "/a%2f..%2flogin",
            now: jiff::Timestamp::UNIX_EPOCH,
            account: crate::engine::AccountFact::Unread,
            identity: crate::engine::who::IdentityFact::Missing,
        };
        let d = decide(p.ruleset(), &facts);
        assert_eq!(
            (d.action, d.rule_name(), d.path.is_none()),
            (Action::Deny, "invalid_path", true)
        );
        assert_eq!(d.reason, Reason::PathRejected(PathError::EncodedSlash));
    }

    /// Visits every rule, as `explain` does.
    struct AllRules;
    impl Trace for AllRules {
        const ALL_RULES: bool = true;
    }

    proptest::proptest! {
        #[test]
        fn path_index_decides_as_a_full_scan(
            ci in proptest::bool::ANY,
            segs in proptest::collection::vec(proptest::sample::select(vec!["a", "A", "b", "login", "Login", "x", ""]), 0..4),
            method in proptest::sample::select(vec!["GET", "POST"]),
            last in 0u8..4,
        ) {
            let yaml = format!("version: 1
case_insensitive_paths: {ci}
networks:
  office: [203.0.113.0/24]
rules:
  - {{ name: r1, paths: [/a/b, /login], methods: [POST], allow_from: [office] }}
  - {{ name: r2, paths: [\"/*/b\"], action: deny }}
  - {{ name: r3, paths: [\"/A/**\"], deny_from: [office] }}
  - {{ name: r4, paths: [/], action: allow }}
  - {{ name: r5, paths: [\"/x/**\"], methods: [GET], action: allow }}
  - {{ name: r6, paths: [\"/b/*\"], allow_from: [office] }}
");
            let p = load_str(&yaml, Path::new("t.yaml")).expect("valid").policy;
            let path = format!("/{}", segs.join("/"));
            let ip: IpAddr = format!("203.0.113.{last}").parse().unwrap();
            let facts = RequestFacts { client: ClientSource::Given(ip), method, host: Ok(None), path: &path, now: jiff::Timestamp::UNIX_EPOCH, account: AccountFact::Unread, identity: who::IdentityFact::Missing };
            let fast = decide(p.ruleset(), &facts);
            let full = decide_traced(p.ruleset(), &facts, &mut AllRules);
            proptest::prop_assert_eq!((fast.action, fast.rule_name()), (full.action, full.rule_name()));
        }
    }

    #[test]
    fn no_matching_rule_takes_the_default() {
        let p = load_str(
            "version: 1\nrules:\n  - { name: a, paths: [/a], action: allow }\n",
            Path::new("t.yaml"),
        )
        .expect("valid")
        .policy;
        let facts = RequestFacts {
            client: ClientSource::Given("192.0.2.1".parse().unwrap()),
            method: "GET",
            host: Ok(None),
            path: "/b",
            now: jiff::Timestamp::UNIX_EPOCH,
            account: crate::engine::AccountFact::Unread,
            identity: crate::engine::who::IdentityFact::Missing,
        };
        let d = decide(p.ruleset(), &facts);
        assert_eq!(
            (d.action, d.rule_name(), d.reason),
            (Action::Deny, "default", Reason::Default)
        );
    }

    const ACCOUNTS: &str = "version: 1
networks:
  office: [203.0.113.0/24]
  agency_office: [192.0.2.0/24]
accounts:
  agency: [agency-*@example.jp]
rules:
  - { name: agency, paths: [/login], methods: [POST], login: true, account: { form: username }, accounts: [agency], allow_from: [agency_office] }
  - { name: login, paths: [/login], methods: [POST], login: true, allow_from: [office, agency_office] }
  - { name: console, allow_from: [office, agency_office] }
";

    fn decide_account(p: &Policy, ip: &str, account: AccountFact<'_>) -> (Action, String, Reason) {
        let facts = RequestFacts {
            client: ClientSource::Given(ip.parse().expect("ip")),
            method: "POST",
            host: Ok(None),
            path: "/login",
            now: jiff::Timestamp::UNIX_EPOCH,
            account,
            identity: who::IdentityFact::Missing,
        };
        let d = decide(p.ruleset(), &facts);
        (d.action, d.rule_name().to_string(), d.reason)
    }

    #[test]
    fn an_account_rule_asks_for_the_account_before_deciding() {
        let p = load_str(ACCOUNTS, Path::new("t.yaml"))
            .expect("valid")
            .policy;
        let (action, rule, reason) = decide_account(&p, "203.0.113.9", AccountFact::Unread);
        assert_eq!(
            (action, rule.as_str(), reason),
            (Action::Deny, "agency", Reason::AccountNeeded)
        );
        // A GET is not a sign-in the rule matches: no account asked for.
        let facts = RequestFacts {
            client: ClientSource::Given("203.0.113.9".parse().expect("ip")),
            method: "GET",
            host: Ok(None),
            path: "/login",
            now: jiff::Timestamp::UNIX_EPOCH,
            account: AccountFact::Unread,
            identity: who::IdentityFact::Missing,
        };
        assert_eq!(decide(p.ruleset(), &facts).rule_name(), "console");
    }

    #[test]
    fn an_account_in_the_group_is_decided_by_the_rule_and_others_fall_through() {
        let p = load_str(ACCOUNTS, Path::new("t.yaml"))
            .expect("valid")
            .policy;
        let agency = fold("Agency-Tokyo@EXAMPLE.jp");
        let d = |ip, a| decide_account(&p, ip, a);
        assert_eq!(
            d("192.0.2.9", AccountFact::Named(&agency)),
            (Action::Allow, "agency".into(), Reason::InAllowedNetwork)
        );
        assert_eq!(
            d("203.0.113.9", AccountFact::Named(&agency)),
            (Action::Deny, "agency".into(), Reason::NotInAllowedNetworks)
        );
        let other = fold("suzuki@example.jp");
        assert_eq!(
            d("203.0.113.9", AccountFact::Named(&other)),
            (Action::Allow, "login".into(), Reason::InAllowedNetwork)
        );
        // Replay and the reload guard know only the group.
        assert_eq!(
            d("203.0.113.9", AccountFact::Grouped(Some("agency"))).1,
            "agency"
        );
        assert_eq!(d("203.0.113.9", AccountFact::Grouped(None)).1, "login");
    }

    #[test]
    fn an_unreadable_account_is_refused_by_the_account_rule_never_passed_on() {
        let p = load_str(ACCOUNTS, Path::new("t.yaml"))
            .expect("valid")
            .policy;
        for why in [
            NoAccount::Missing,
            NoAccount::Ambiguous,
            NoAccount::Oversized,
            NoAccount::Slow,
            NoAccount::Unparseable,
        ] {
            // From the office, the next rule would allow any sign-in.
            let (action, rule, reason) =
                decide_account(&p, "203.0.113.9", AccountFact::Unreadable(why));
            assert_eq!(
                (action, rule.as_str(), reason),
                (Action::Deny, "agency", Reason::AccountUnreadable(why))
            );
        }
    }

    #[test]
    fn the_decision_names_the_group_never_the_account() {
        let p = load_str(ACCOUNTS, Path::new("t.yaml"))
            .expect("valid")
            .policy;
        let agency = fold("agency-tokyo@example.jp");
        let facts = RequestFacts {
            client: ClientSource::Given("192.0.2.9".parse().expect("ip")),
            method: "POST",
            host: Ok(None),
            path: "/login",
            now: jiff::Timestamp::UNIX_EPOCH,
            account: AccountFact::Named(&agency),
            identity: who::IdentityFact::Missing,
        };
        let d = decide(p.ruleset(), &facts);
        assert_eq!(d.account_group, Some("agency"));
        assert!(!d.explanation().to_string().contains("tokyo"));
    }

    #[test]
    fn sign_in_from_says_when_the_account_decides() {
        let p = load_str(ACCOUNTS, Path::new("t.yaml"))
            .expect("valid")
            .policy;
        let at = |ip: &str| {
            sign_in_from(
                p.ruleset(),
                Some(ip.parse().expect("ip")),
                None,
                jiff::Timestamp::UNIX_EPOCH,
                who::IdentityFact::Missing,
            )
        };
        // From the office, everyone but the agency's accounts may; from
        // the agency's office, everyone may.
        assert_eq!(at("203.0.113.9"), SignInFrom::ByAccount);
        assert_eq!(at("192.0.2.9"), SignInFrom::Allowed);
        assert_eq!(at("198.51.100.9"), SignInFrom::Blocked);
    }

    #[test]
    fn host_port_is_stripped() {
        assert_eq!(
            host_without_port("console.example.com:8443"),
            "console.example.com"
        );
        assert_eq!(
            host_without_port("console.example.com."),
            "console.example.com"
        );
        assert_eq!(host_without_port("[2001:db8::1]:443"), "[2001:db8::1]");
        assert_eq!(host_without_port("[2001:db8::1]"), "[2001:db8::1]");
    }

    #[test]
    fn wildcard_host_needs_a_label_before_the_suffix() {
        let p = HostPattern::Suffix(".example.com".into());
        assert!(p.matches("a.example.com"));
        assert!(p.matches("A.B.EXAMPLE.com"));
        assert!(!p.matches("example.com"));
        assert!(!p.matches("badexample.com"));
        assert!(!p.matches(".example.com"));
    }
}
