//! The compiled policy as the engine reads it: networks as address ranges,
//! rules that refer to them by index, the path index and the client-address
//! settings. [`crate::policy`] builds a [`Ruleset`] from YAML; the engine
//! only reads one, so the arrow points from policy to engine and never back.

use std::net::IpAddr;

use ipnet::IpNet;
use jiff::Timestamp;

use super::Action;
use super::account::AccountSpec;
use super::accounts::AccountPattern;
use super::client::ClientIpConfig;
use super::facts::{FactCache, FactTest, Via};
use super::outcome::OutcomeSpec;
use super::path::{PathIndex, PathPattern};
use super::prefix::RangeSet;
use super::time::{Window, in_windows};
use crate::geo::GeoSet;

/// What [`super::decide`] needs of a policy, and nothing else.
#[derive(Debug)]
pub struct Ruleset {
    pub(crate) networks: Vec<Network>,
    /// `accounts:`: the named groups of accounts rules may name.
    pub(crate) accounts: Vec<AccountGroup>,
    pub(crate) client_ip: ClientIpConfig,
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
    pub(crate) geo: GeoSet,
    /// `mode: report` at the top: nothing is enforced.
    pub(crate) report_only: bool,
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

/// The per-request part of a network that involves facts or expiring
/// grants. An address is a member when it is in `ranges`, or in a grant
/// that has not expired, or a fact test holds, or it is a member of an
/// `include`; and it is a member of no `except` network (except wins).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Dynamic {
    pub grants: Vec<Grant>,
    /// Addresses from a published list (`on_stale: empty`) or a DNS name's
    /// answer: members until the list goes stale, without a reload.
    pub published: Vec<Published>,
    pub facts: Vec<FactTest>,
    pub include: Vec<usize>,
    pub except: Vec<usize>,
}

/// A network entry with `until:`: a member up to (not including) that
/// instant, without a reload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    pub net: IpNet,
    pub until: Timestamp,
    /// Who or why, as the policy says (`note:`, or a file line's comment).
    pub note: Option<Box<str>>,
}

impl Grant {
    pub fn holds(&self, ip: IpAddr, now: Timestamp) -> bool {
        now < self.until && self.net.contains(&ip)
    }
}

/// A published list's (or a DNS name's) addresses, members up to (not
/// including) the instant the list is older than its `max_age`: stale
/// addresses stop matching by themselves, whatever a reload would decide.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Published {
    pub ranges: RangeSet,
    pub until: Timestamp,
}

/// A named group of accounts (`accounts:`): who a rule's `accounts:`
/// condition means.
#[derive(Debug)]
pub struct AccountGroup {
    pub name: Box<str>,
    pub patterns: Vec<AccountPattern>,
}

/// A reference from a rule to a group of accounts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupRef {
    pub(crate) id: usize,
    pub name: Box<str>,
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
#[derive(Debug, PartialEq)]
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
    pub outcome: Option<OutcomeSpec>,
    /// Login routes: where the sign-in's body names the account.
    pub account: Option<AccountSpec>,
    /// `accounts:`: the rule matches only sign-ins that name an account of
    /// one of these groups (others fall through to later rules), and
    /// refuses one whose account cannot be read. `None`: any sign-in.
    pub accounts: Option<Vec<GroupRef>>,
    /// `who:`: the rule matches only clients whose verified identity it
    /// names (others fall through), and refuses a client with none.
    pub who: Option<super::who::Who>,
    /// `until:`: the rule matches nothing from this instant on.
    pub until: Option<Timestamp>,
    /// `when:`: the rule matches only inside one of these windows; empty:
    /// always.
    pub when: Vec<Window>,
    /// An `allow_from` rule none of whose networks holds every address:
    /// a client it allows is one a network vouched for (the reload guard's
    /// admins).
    pub vouches: bool,
}

impl Rule {
    /// Whether the rule applies at `now` (its `until:` and `when:`), and
    /// if not, why.
    pub fn out_of_time(&self, now: Timestamp) -> Option<super::Skip> {
        if self.until.is_some_and(|u| now >= u) {
            return Some(super::Skip::Expired);
        }
        (!in_windows(&self.when, now)).then_some(super::Skip::OutsideWindow)
    }

    /// Whether every request the rule matches is decided by it.
    pub fn is_terminal(&self) -> bool {
        !self.report && self.kind.is_terminal()
    }
}

impl Ruleset {
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    pub fn networks(&self) -> &[Network] {
        &self.networks
    }

    pub fn account_groups(&self) -> &[AccountGroup] {
        &self.accounts
    }

    /// The first of `groups` that names the account `folded`.
    pub(crate) fn group_of<'a>(&'a self, groups: &'a [GroupRef], folded: &str) -> Option<&'a str> {
        groups
            .iter()
            .find(|g| {
                self.accounts[g.id]
                    .patterns
                    .iter()
                    .any(|p| p.matches(folded))
            })
            .map(|g| &*g.name)
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

    pub fn geo(&self) -> &GeoSet {
        &self.geo
    }

    /// Whether `ip` is a member of network `id`, and how.
    pub(crate) fn member(&self, id: usize, ip: IpAddr, facts: &FactCache<'_>) -> Option<Via> {
        let net = &self.networks[id];
        let Some(dynamic) = &net.dynamic else {
            return net.ranges.contains(ip).then_some(Via::Cidr);
        };
        let via = if net.ranges.contains(ip) {
            Some(Via::Cidr)
        } else if dynamic.grants.iter().any(|g| g.holds(ip, facts.now)) {
            Some(Via::Grant)
        } else if dynamic
            .published
            .iter()
            .any(|p| facts.now < p.until && p.ranges.contains(ip))
        {
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

    /// Every member of network `id` at `now`, when each fact test is as
    /// `fact` says (a fact that holds makes every address a member: the
    /// databases are not asked; `netwarden diff` reads networks this way).
    pub fn members_at(
        &self,
        id: usize,
        now: Timestamp,
        fact: &dyn Fn(&FactTest) -> bool,
    ) -> RangeSet {
        let net = &self.networks[id];
        let Some(dynamic) = &net.dynamic else {
            return net.ranges.clone();
        };
        if dynamic.facts.iter().any(fact) {
            let except = dynamic.except.iter().fold(RangeSet::default(), |acc, &j| {
                acc.union(&self.members_at(j, now, fact))
            });
            return RangeSet::everything().difference(&except);
        }
        let grants: Vec<IpNet> = dynamic
            .grants
            .iter()
            .filter(|g| now < g.until)
            .map(|g| g.net)
            .collect();
        let mut set = net.ranges.union(&RangeSet::from_nets(&grants));
        for p in dynamic.published.iter().filter(|p| now < p.until) {
            set = set.union(&p.ranges);
        }
        // Compile made the include graph acyclic, so this terminates.
        for &j in &dynamic.include {
            set = set.union(&self.members_at(j, now, fact));
        }
        for &j in &dynamic.except {
            set = set.difference(&self.members_at(j, now, fact));
        }
        set
    }

    /// Every fact test the networks name.
    pub fn fact_tests(&self) -> impl Iterator<Item = &FactTest> {
        self.networks
            .iter()
            .filter_map(|n| n.dynamic.as_ref())
            .flat_map(|d| d.facts.iter())
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

    /// Whether `ip` is in a network that an `allow_from` rule vouching for
    /// its clients names (the office, the VPN): one of the people the
    /// console exists for, whatever rule allowed this request. Such
    /// clients get room at the console that requests allowed to everyone
    /// cannot take (issue 22). Time windows are not read: an operator is
    /// one outside working hours too.
    pub fn is_operator(&self, ip: IpAddr, now: Timestamp) -> bool {
        let facts = FactCache::new(&self.geo, ip, now);
        self.rules
            .iter()
            .filter(|r| r.vouches)
            .flat_map(|r| r.kind.networks())
            .any(|n| self.member(n.id, ip, &facts).is_some())
    }

    /// Grants that held `ip` and have ended by `now`, with their network,
    /// for `explain`: "in networks: (none)" alone does not say why the
    /// travelling operator is out.
    pub fn ended_grants(&self, ip: IpAddr, now: Timestamp) -> Vec<(&str, &Grant)> {
        self.networks
            .iter()
            .flat_map(|n| {
                n.dynamic
                    .iter()
                    .flat_map(|d| d.grants.iter())
                    .filter(move |g| g.until <= now && g.net.contains(&ip))
                    .map(move |g| (n.name.as_str(), g))
            })
            .collect()
    }

    /// Every network `ip` is a member of at `now`, and how, for `explain`.
    pub fn networks_containing(&self, ip: IpAddr, now: Timestamp) -> Vec<(&str, Via)> {
        let facts = FactCache::new(&self.geo, ip, now);
        (0..self.networks.len())
            .filter_map(|i| {
                self.member(i, ip, &facts)
                    .map(|via| (self.networks[i].name.as_str(), via))
            })
            .collect()
    }
}

/// Something in a policy that stops matching at an instant.
#[derive(Clone, Copy, Debug)]
pub enum Expiring<'p> {
    Grant { network: &'p str, grant: &'p Grant },
    Rule(&'p Rule),
}

impl Expiring<'_> {
    pub fn until(&self) -> Timestamp {
        match self {
            Expiring::Grant { grant, .. } => grant.until,
            // PANIC SAFETY: `expiring()` yields only rules with `until`.
            Expiring::Rule(r) => r.until.expect("an expiring rule has until"),
        }
    }
}

impl Ruleset {
    /// Every grant and rule with `until:`, in no particular order.
    pub fn expiring(&self) -> impl Iterator<Item = Expiring<'_>> {
        let grants = self.networks.iter().flat_map(|n| {
            n.dynamic.iter().flat_map(move |d| {
                d.grants.iter().map(move |g| Expiring::Grant {
                    network: &n.name,
                    grant: g,
                })
            })
        });
        let rules = self
            .rules
            .iter()
            .filter(|r| r.until.is_some())
            .map(Expiring::Rule);
        grants.chain(rules)
    }

    /// The first `until:` strictly after `now`.
    pub fn next_expiry(&self, now: Timestamp) -> Option<Timestamp> {
        self.expiring()
            .map(|e| e.until())
            .filter(|u| *u > now)
            .min()
    }
}

impl HostPattern {
    /// Host names compare without regard to ASCII case (RFC 4343).
    pub fn matches(&self, host: &str) -> bool {
        match self {
            HostPattern::Exact(h) => h.eq_ignore_ascii_case(host),
            HostPattern::Suffix(suffix) => {
                host.len() > suffix.len()
                    && host.is_char_boundary(host.len() - suffix.len())
                    && host[host.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
            }
        }
    }
}
