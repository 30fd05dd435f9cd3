//! `netwarden diff`: what an edit changes for any request, not in its text
//! (issue 27). The request space is cut into classes at every boundary
//! either policy draws: paths (each pattern of both, a path below each
//! `/**`, and a path both of two patterns match), methods and hosts the
//! rules name (and one they do not), instants (now, and each `until:` of
//! either), accounts and identities where rules read them, the GeoIP facts
//! either names (each combination), and addresses, which are not sampled:
//! [`crate::engine::partition`] decides every address of a class at once.
//! Each class is decided by both policies; where the decision or the
//! deciding rule differs, the addresses are reported, merged back into
//! CIDRs. Pure: two compiled policies and an instant in, a [`Report`] out.

pub mod render;

use std::collections::{BTreeMap, HashMap};

use jiff::Timestamp;

use crate::engine::account::NoAccount;
use crate::engine::facts::FactTest;
use crate::engine::partition::{Piece, Shape, partition};
use crate::engine::prefix::RangeSet;
use crate::engine::ruleset::{NetRef, Ruleset};
use crate::engine::who::{Identity, IdentityFact, fold_email};
use crate::engine::{AccountFact, Action};
use crate::policy::Policy;

/// How a class's decision changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// Denied before, allowed now: the door opens.
    NowAllowed,
    /// Allowed before, denied now.
    NowDenied,
    /// The same decision by another rule (or for another reason).
    OtherRule,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::NowAllowed => "now_allowed",
            Kind::NowDenied => "now_denied",
            Kind::OtherRule => "other_rule",
        }
    }
}

/// A decision as the report shows it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Outcome {
    pub action: &'static str,
    /// The deciding rule's name, or `default`.
    pub rule: String,
    /// The report-only rule that would have denied, if one would.
    pub report: Option<String>,
}

impl Outcome {
    fn of(p: &Piece<'_>) -> Self {
        Self {
            action: p.action.as_str(),
            rule: p
                .rule
                .map_or_else(|| "default".to_string(), |r| r.name.clone()),
            report: p.report.map(|r| r.name.clone()),
        }
    }
}

/// A class of requests, for people: the path (`*` for any segment), the
/// method, the host, the instant, the account group and identity the
/// class stands for, the facts assumed.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Request {
    pub method: String,
    /// As people read it (`*`: any segment).
    pub path: String,
    /// The path the class was decided with.
    pub probe: String,
    pub host: Option<String>,
    /// `None`: now (the instant the diff was made).
    pub from: Option<Timestamp>,
    pub account: Option<String>,
    pub identity: Option<String>,
    pub facts: Vec<String>,
}

/// One change: requests of these classes from these addresses.
#[derive(Clone, Debug)]
pub struct Change {
    pub kind: Kind,
    pub before: Outcome,
    pub after: Outcome,
    pub addresses: RangeSet,
    pub requests: Vec<Request>,
    /// The network (of either policy) whose members are exactly these
    /// addresses, if one is.
    pub network: Option<String>,
}

/// A setting that changes who is believed or what is reachable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Setting {
    pub name: &'static str,
    pub wider: bool,
    pub detail: String,
}

/// A grant whose end moved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrantChange {
    pub network: String,
    pub net: String,
    pub before: Option<Timestamp>,
    pub after: Option<Timestamp>,
}

impl GrantChange {
    /// Lasts longer (or is new).
    pub fn wider(&self) -> bool {
        match (self.before, self.after) {
            (_, None) => false,
            (None, Some(_)) => true,
            (Some(b), Some(a)) => a > b,
        }
    }
}

/// What `netwarden diff` found.
#[derive(Clone, Debug, Default)]
pub struct Report {
    pub changes: Vec<Change>,
    pub grants: Vec<GrantChange>,
    pub settings: Vec<Setting>,
    /// Request classes decided (each for every address).
    pub classes: usize,
    /// GeoIP fact dimensions left out (more worlds than [`MAX_WORLDS`]).
    pub facts_left_out: usize,
    /// The methods and paths (as shown) the classes were cut by: a change
    /// that holds for all of them says "any method", "every path".
    pub methods: Vec<String>,
    pub paths: Vec<String>,
}

/// The verdict a pipeline reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Nobody gains or loses access (rules may have been renamed,
    /// reordered, rewritten).
    Same,
    /// Some requests are denied that were allowed; none the other way.
    Narrower,
    /// Some requests are allowed that were denied, a grant lasts longer,
    /// or more addresses are believed about the client.
    Wider,
}

impl Report {
    pub fn verdict(&self) -> Verdict {
        let wider = self.changes.iter().any(|c| c.kind == Kind::NowAllowed)
            || self.grants.iter().any(GrantChange::wider)
            || self.settings.iter().any(|s| s.wider);
        let narrower = self.changes.iter().any(|c| c.kind == Kind::NowDenied)
            || self.grants.iter().any(|g| !g.wider());
        match (wider, narrower) {
            (true, _) => Verdict::Wider,
            (false, true) => Verdict::Narrower,
            (false, false) => Verdict::Same,
        }
    }
}

/// At most this many worlds of GeoIP facts are decided; past it, the
/// dimensions named last are left out (their tests taken as false) and
/// counted in [`Report::facts_left_out`].
pub const MAX_WORLDS: usize = 256;
/// A method no rule names.
const OTHER_METHOD: &str = "NWDIFF";
/// A host no rule names.
const OTHER_HOST: &str = "other.invalid";

/// The rules a class meets in a policy, and how each refuses it if it does.
type Signature = Vec<(usize, Option<&'static str>)>;

/// A change's key: what it is and its addresses (as CIDRs).
type ChangeKey = (Kind, Outcome, Outcome, Vec<String>);
/// Where two partitions differ: kind, before, after, addresses.
type Differences = Vec<(Kind, Outcome, Outcome, RangeSet)>;

/// Every class of requests but the address and the instant: a path, a
/// method, a host, an account class, an identity class.
struct Class<'c, 'p> {
    path: &'c str,
    method: &'c str,
    host: Option<&'c str>,
    account: &'c AccountClass<'p>,
    identity: &'c IdentityClass,
}

/// Compares `old` and `new` for every request at and after `now`.
pub fn diff(old: &Policy, new: &Policy, now: Timestamp) -> Report {
    let (a, b) = (old.ruleset(), new.ruleset());
    let mut report = Report {
        grants: grants(a, b),
        settings: settings(old, new),
        ..Report::default()
    };
    let ci = a.case_insensitive_paths || b.case_insensitive_paths;
    let paths = paths(a, b, ci);
    let methods = methods(a, b);
    report.methods = methods.clone();
    report.paths = paths.iter().map(|p| shown_path(p)).collect();
    report.paths.dedup();
    let hosts = hosts(a, b);
    let accounts = accounts(a, b);
    let identities = identities(a, b);
    let mut classes = Vec::new();
    for path in &paths {
        for method in &methods {
            for host in &hosts {
                for account in &accounts {
                    for identity in &identities {
                        classes.push(Class {
                            path,
                            method,
                            host: host.as_deref(),
                            account,
                            identity,
                        });
                    }
                }
            }
        }
    }
    let tests: Vec<&FactTest> = a.fact_tests().chain(b.fact_tests()).collect();
    let (worlds, left_out) = worlds(&tests);
    report.facts_left_out = left_out;

    let mut found: BTreeMap<ChangeKey, (RangeSet, Vec<Request>)> = BTreeMap::new();
    for at in instants(a, b, now) {
        for world in &worlds {
            let holds = |t: &FactTest| world.holds(t);
            let assumed = world.describe();
            // Members of a rule's networks, once per rule list; classes
            // that meet the same rules in both policies decide alike, once.
            let mut memo_a: HashMap<*const NetRef, RangeSet> = HashMap::new();
            let mut memo_b: HashMap<*const NetRef, RangeSet> = HashMap::new();
            let mut seen: HashMap<(Signature, Signature), Differences> = HashMap::new();
            for class in &classes {
                let (account, account_name) = class.account;
                let (identity, identity_name) = class.identity;
                let shape = Shape {
                    method: class.method,
                    host: class.host,
                    path: class.path,
                    now: at,
                    account: *account,
                    identity: match identity {
                        Some(Ok(id)) => IdentityFact::Verified(id),
                        Some(Err(why)) => IdentityFact::Invalid(*why),
                        None => IdentityFact::Missing,
                    },
                };
                report.classes += 1;
                let key = (matching(a, &shape), matching(b, &shape));
                let diffs = seen.entry(key).or_insert_with(|| {
                    let mut ma = |nets: &[NetRef]| members(a, nets, at, &holds, &mut memo_a);
                    let mut mb = |nets: &[NetRef]| members(b, nets, at, &holds, &mut memo_b);
                    compare(
                        &partition(a, &shape, &mut ma),
                        &partition(b, &shape, &mut mb),
                    )
                });
                if diffs.is_empty() {
                    continue;
                }
                let request = Request {
                    method: class.method.to_string(),
                    path: shown_path(class.path),
                    probe: class.path.to_string(),
                    host: class.host.map(str::to_string),
                    from: (at != now).then_some(at),
                    account: account_name.clone(),
                    identity: identity_name.clone(),
                    facts: assumed.clone(),
                };
                for (kind, before, after, addresses) in diffs.iter() {
                    let nets = addresses
                        .to_nets()
                        .iter()
                        .map(ToString::to_string)
                        .collect();
                    let entry = found
                        .entry((*kind, before.clone(), after.clone(), nets))
                        .or_insert_with(|| (addresses.clone(), Vec::new()));
                    if !entry.1.contains(&request) {
                        entry.1.push(request.clone());
                    }
                }
            }
        }
    }
    let named = named_networks(a, b, now);
    report.changes = found
        .into_iter()
        .map(|((kind, before, after, _), (addresses, mut requests))| {
            requests.sort();
            let network = named
                .iter()
                .find(|(_, set)| *set == addresses)
                .map(|(n, _)| n.clone());
            Change {
                kind,
                before,
                after,
                addresses,
                requests,
                network,
            }
        })
        .collect();
    report
}

/// The rules (by index) a shape meets in a policy, and whether each
/// refuses it outright: what its pieces depend on besides the addresses.
fn matching(p: &Ruleset, shape: &Shape<'_>) -> Vec<(usize, Option<&'static str>)> {
    p.rules()
        .iter()
        .enumerate()
        .filter_map(|(i, r)| {
            crate::engine::partition::meets(p, r, shape)
                .map(|refused| (i, refused.map(|r| r.code())))
        })
        .collect()
}

/// Where the two partitions differ: each pair of pieces that share
/// addresses and differ in decision or rule.
fn compare(old: &[Piece<'_>], new: &[Piece<'_>]) -> Differences {
    let mut out = Vec::new();
    for o in old {
        for n in new {
            let both = o.addresses.intersection(&n.addresses);
            if both.is_empty() {
                continue;
            }
            let (before, after) = (Outcome::of(o), Outcome::of(n));
            let kind = match (o.action, n.action) {
                (Action::Deny, Action::Allow) => Kind::NowAllowed,
                (Action::Allow, Action::Deny) => Kind::NowDenied,
                _ if before != after => Kind::OtherRule,
                _ => continue,
            };
            out.push((kind, before, after, both));
        }
    }
    out
}

fn members(
    p: &Ruleset,
    nets: &[NetRef],
    at: Timestamp,
    holds: &dyn Fn(&FactTest) -> bool,
    memo: &mut HashMap<*const NetRef, RangeSet>,
) -> RangeSet {
    let key = nets.as_ptr();
    if let Some(m) = memo.get(&key) {
        return m.clone();
    }
    let set = nets.iter().fold(RangeSet::default(), |acc, n| {
        acc.union(&p.members_at(n.id, at, holds))
    });
    memo.insert(key, set.clone());
    set
}

/// `~nw~` (a segment no pattern names) as people read it.
fn shown_path(path: &str) -> String {
    path.replace("~nw~", "*")
}

/// What a fact says of a client: unknown to the database, a value no test
/// names, or one a test names.
#[derive(Clone, Debug, PartialEq)]
enum Known<T> {
    Unknown,
    Other,
    Is(T),
}

/// One combination of what the databases say of a client: its country,
/// its ASN, its connection type, its anonymity flags. The values of a
/// dimension exclude each other (a client has one country), so the
/// worlds are the product of each dimension's values, not of the tests.
#[derive(Clone, Debug)]
struct World {
    country: Known<[u8; 2]>,
    asn: Known<u32>,
    connection_type: Known<Box<str>>,
    /// `None`: not anonymous.
    anonymous: Option<crate::geo::AnonymousFlags>,
}

impl World {
    fn holds(&self, t: &FactTest) -> bool {
        match t {
            FactTest::Country { codes, not } => match &self.country {
                Known::Unknown => false,
                Known::Other => *not,
                Known::Is(c) => codes.contains(c) != *not,
            },
            FactTest::Asn(list) => matches!(&self.asn, Known::Is(n) if list.contains(n)),
            FactTest::ConnectionType(list) => {
                matches!(&self.connection_type, Known::Is(t) if list.iter().any(|x| x == t))
            }
            FactTest::Anonymous(mask) => self.anonymous.is_some_and(|a| a.intersects(*mask)),
        }
    }

    fn describe(&self) -> Vec<String> {
        let mut out = Vec::new();
        match &self.country {
            Known::Is(c) => out.push(format!("country {}", String::from_utf8_lossy(c))),
            Known::Other => out.push("a country no network names".into()),
            Known::Unknown => {}
        }
        match &self.asn {
            Known::Is(n) => out.push(format!("ASN {n}")),
            Known::Other => out.push("another ASN".into()),
            Known::Unknown => {}
        }
        match &self.connection_type {
            Known::Is(t) => out.push(format!("connection type {t}")),
            Known::Other => out.push("another connection type".into()),
            Known::Unknown => {}
        }
        if let Some(a) = self.anonymous {
            out.push(format!(
                "anonymous ({})",
                a.names().collect::<Vec<_>>().join(", ")
            ));
        }
        out
    }
}

/// The worlds the tests tell apart, and how many dimensions were left out
/// to stay within [`MAX_WORLDS`].
fn worlds(tests: &[&FactTest]) -> (Vec<World>, usize) {
    let mut countries: Vec<[u8; 2]> = Vec::new();
    let mut asns: Vec<u32> = Vec::new();
    let mut types: Vec<Box<str>> = Vec::new();
    let mut masks: Vec<crate::geo::AnonymousFlags> = Vec::new();
    for t in tests {
        match t {
            FactTest::Country { codes, .. } => countries.extend(codes.iter().copied()),
            FactTest::Asn(list) => asns.extend(list.iter().copied()),
            FactTest::ConnectionType(list) => types.extend(list.iter().cloned()),
            FactTest::Anonymous(m) => masks.push(*m),
        }
    }
    countries.sort_unstable();
    countries.dedup();
    asns.sort_unstable();
    asns.dedup();
    types.sort();
    types.dedup();
    masks.dedup();
    let country: Vec<Known<[u8; 2]>> = if countries.is_empty() {
        vec![Known::Unknown]
    } else {
        countries
            .iter()
            .map(|c| Known::Is(*c))
            .chain([Known::Other, Known::Unknown])
            .collect()
    };
    let asn: Vec<Known<u32>> = if asns.is_empty() {
        vec![Known::Unknown]
    } else {
        asns.iter()
            .map(|n| Known::Is(*n))
            .chain([Known::Other])
            .collect()
    };
    let connection_type: Vec<Known<Box<str>>> = if types.is_empty() {
        vec![Known::Unknown]
    } else {
        types
            .iter()
            .map(|t| Known::Is(t.clone()))
            .chain([Known::Other])
            .collect()
    };
    let anonymous: Vec<Option<crate::geo::AnonymousFlags>> = std::iter::once(None)
        .chain(masks.iter().map(|m| Some(*m)))
        .collect();
    let mut out = Vec::new();
    let mut left_out = 0;
    // Dimensions past the bound are left out, the last named first.
    let sizes = [
        country.len(),
        asn.len(),
        connection_type.len(),
        anonymous.len(),
    ];
    let mut keep = [true; 4];
    while keep
        .iter()
        .zip(sizes)
        .map(|(k, n)| if *k { n } else { 1 })
        .product::<usize>()
        > MAX_WORLDS
    {
        if let Some(i) = (0..4).rev().find(|&i| keep[i] && sizes[i] > 1) {
            keep[i] = false;
            left_out += 1;
        } else {
            break;
        }
    }
    let pick = |k: bool, n: usize| if k { n } else { 1 };
    for c in country.iter().take(pick(keep[0], country.len())) {
        for n in asn.iter().take(pick(keep[1], asn.len())) {
            for t in connection_type
                .iter()
                .take(pick(keep[2], connection_type.len()))
            {
                for a in anonymous.iter().take(pick(keep[3], anonymous.len())) {
                    out.push(World {
                        country: if keep[0] { c.clone() } else { Known::Unknown },
                        asn: if keep[1] { n.clone() } else { Known::Unknown },
                        connection_type: if keep[2] { t.clone() } else { Known::Unknown },
                        anonymous: if keep[3] { *a } else { None },
                    });
                }
            }
        }
    }
    (out, left_out)
}

/// Paths that tell every pattern of both policies apart.
fn paths(a: &Ruleset, b: &Ruleset, ci: bool) -> Vec<String> {
    let patterns: Vec<&crate::engine::path::PathPattern> = a
        .rules()
        .iter()
        .chain(b.rules())
        .flat_map(|r| r.paths.iter().flatten())
        .collect();
    let mut out = vec!["/~nw~/~nw~".to_string(), "/".to_string()];
    for (i, p) in patterns.iter().enumerate() {
        out.extend(p.witnesses(None, ci));
        for q in &patterns[i + 1..] {
            out.extend(
                p.witnesses(Some(q), ci)
                    .into_iter()
                    .skip(1 + usize::from(p.as_str().ends_with("/**"))),
            );
        }
    }
    out.sort();
    out.dedup();
    out
}

fn methods(a: &Ruleset, b: &Ruleset) -> Vec<String> {
    let mut out: Vec<String> = a
        .rules()
        .iter()
        .chain(b.rules())
        .flat_map(|r| r.methods.iter().flatten())
        .map(|m| m.to_string())
        .collect();
    out.push("GET".into());
    out.push(OTHER_METHOD.into());
    out.sort();
    out.dedup();
    out
}

fn hosts(a: &Ruleset, b: &Ruleset) -> Vec<Option<String>> {
    use crate::engine::ruleset::HostPattern;
    let mut out: Vec<Option<String>> = a
        .rules()
        .iter()
        .chain(b.rules())
        .flat_map(|r| r.hosts.iter().flatten())
        .map(|h| {
            Some(match h {
                HostPattern::Exact(e) => e.to_string(),
                HostPattern::Suffix(s) => format!("x{s}"),
            })
        })
        .collect();
    if !out.is_empty() {
        out.push(Some(OTHER_HOST.into()));
    } else {
        out.push(None);
    }
    out.sort();
    out.dedup();
    out
}

/// Now, each instant either policy's rules or grants end at, and each
/// instant a `when:` window of either opens or closes in the coming week.
fn instants(a: &Ruleset, b: &Ruleset, now: Timestamp) -> Vec<Timestamp> {
    let mut out = vec![now];
    out.extend(
        a.expiring()
            .chain(b.expiring())
            .map(|e| e.until())
            .filter(|u| *u > now),
    );
    for rule in a.rules().iter().chain(b.rules()) {
        for w in &rule.when {
            out.extend(w.edges_after(now));
        }
    }
    out.sort();
    out.dedup();
    out
}

type AccountClass<'a> = (AccountFact<'a>, Option<String>);

/// The account classes rules with `accounts:` tell apart: each group of
/// either policy, an account in none, one that cannot be read; or, without
/// such rules, one class.
fn accounts<'a>(a: &'a Ruleset, b: &'a Ruleset) -> Vec<AccountClass<'a>> {
    let any = a
        .rules()
        .iter()
        .chain(b.rules())
        .any(|r| r.accounts.is_some());
    if !any {
        return vec![(AccountFact::Grouped(None), None)];
    }
    let mut out: Vec<AccountClass<'a>> = Vec::new();
    for g in a.account_groups().iter().chain(b.account_groups()) {
        if !out.iter().any(|(_, n)| n.as_deref() == Some(&*g.name)) {
            out.push((
                AccountFact::Grouped(Some(&g.name)),
                Some(format!("an account of '{}'", g.name)),
            ));
        }
    }
    out.push((
        AccountFact::Grouped(None),
        Some("an account in no group".into()),
    ));
    out.push((
        AccountFact::Unreadable(NoAccount::Ambiguous),
        Some("an account that cannot be read".into()),
    ));
    out
}

type IdentityClass = (
    Option<Result<Identity, crate::engine::who::Invalid>>,
    Option<String>,
);

/// The identity classes rules with `who:` tell apart: none, one that
/// matches each `who:`, one that matches none; or, without such rules,
/// one class.
fn identities(a: &Ruleset, b: &Ruleset) -> Vec<IdentityClass> {
    let whos: Vec<&crate::engine::who::Who> = a
        .rules()
        .iter()
        .chain(b.rules())
        .filter_map(|r| r.who.as_ref())
        .collect();
    if whos.is_empty() {
        return vec![(None, None)];
    }
    let mut out: Vec<IdentityClass> = vec![(None, Some("no identity".into()))];
    for w in whos {
        let id = Identity {
            subject: "diff".into(),
            email: w.emails.first().map(|p| fold_email(&p.example())),
            groups: w.groups.first().cloned().into_iter().collect(),
            claims: w
                .claims
                .iter()
                .map(|(k, v)| (k.clone(), vec![v.clone()]))
                .collect(),
        };
        let name = format!(
            "an identity with {}",
            [
                id.groups.first().map(|g| format!("group {g}")),
                id.email.as_ref().map(|e| format!("e-mail {e}")),
            ]
            .into_iter()
            .flatten()
            .chain(w.claims.iter().map(|(k, v)| format!("{k}={v}")))
            .collect::<Vec<_>>()
            .join(", ")
        );
        if !out
            .iter()
            .any(|(i, _)| matches!(i, Some(Ok(x)) if *x == id))
        {
            out.push((Some(Ok(id)), Some(name)));
        }
    }
    out.push((
        Some(Ok(Identity {
            subject: "diff".into(),
            email: Some("nobody@other.invalid".into()),
            groups: vec!["~nw~".into()],
            claims: Vec::new(),
        })),
        Some("an identity no who: names".into()),
    ));
    out
}

/// Each network of both policies at `now` (without facts), for naming a
/// change's addresses.
fn named_networks(a: &Ruleset, b: &Ruleset, now: Timestamp) -> Vec<(String, RangeSet)> {
    let mut out = Vec::new();
    for p in [b, a] {
        for (i, n) in p.networks().iter().enumerate() {
            let set = p.members_at(i, now, &|_| false);
            if !set.is_empty() {
                out.push((n.name.clone(), set));
            }
        }
    }
    out
}

fn grants(a: &Ruleset, b: &Ruleset) -> Vec<GrantChange> {
    let list = |p: &Ruleset| -> Vec<(String, String, Timestamp)> {
        p.networks()
            .iter()
            .flat_map(|n| {
                n.dynamic
                    .iter()
                    .flat_map(|d| d.grants.iter())
                    .map(move |g| (n.name.clone(), g.net.to_string(), g.until))
            })
            .collect()
    };
    let (old, new) = (list(a), list(b));
    let mut out = Vec::new();
    for (network, net, until) in &new {
        let before = old
            .iter()
            .find(|(n, g, _)| n == network && g == net)
            .map(|(_, _, u)| *u);
        if before != Some(*until) {
            out.push(GrantChange {
                network: network.clone(),
                net: net.clone(),
                before,
                after: Some(*until),
            });
        }
    }
    for (network, net, until) in &old {
        if !new.iter().any(|(n, g, _)| n == network && g == net) {
            out.push(GrantChange {
                network: network.clone(),
                net: net.clone(),
                before: Some(*until),
                after: None,
            });
        }
    }
    out
}

/// Settings that change who is believed, or what reaches the console.
fn settings(old: &Policy, new: &Policy) -> Vec<Setting> {
    let mut out = Vec::new();
    let (a, b) = (old.ruleset().client_ip(), new.ruleset().client_ip());
    let (ta, tb) = (&a.trusted_proxies, &b.trusted_proxies);
    let gained = tb.difference(ta);
    let lost = ta.difference(tb);
    if !gained.is_empty() || !lost.is_empty() {
        let (g4, g6) = gained.address_count();
        let nets: Vec<String> = gained
            .to_nets()
            .iter()
            .take(8)
            .map(ToString::to_string)
            .collect();
        out.push(Setting {
            name: "client_ip.trusted_proxies",
            wider: !gained.is_empty(),
            detail: if gained.is_empty() {
                format!("{} fewer trusted addresses", count_text(lost.address_count()))
            } else {
                format!(
                    "{} more addresses may say who the client is ({}{}): each can claim to be any client, the office included",
                    count_text((g4, g6)),
                    nets.join(", "),
                    if gained.to_nets().len() > 8 { ", ..." } else { "" }
                )
            },
        });
    }
    let text = |v: &dyn std::fmt::Debug| format!("{v:#?}");
    let mut changed = |name: &'static str, wider: bool, before: String, after: String| {
        if before != after {
            out.push(Setting {
                name,
                wider,
                detail: changed_fields(&before, &after),
            });
        }
    };
    changed("client_ip.header", true, text(&a.header), text(&b.header));
    changed(
        "client_ip (trust_proto, strip_headers)",
        true,
        text(&(
            old.forwarding().trust_proto,
            &old.forwarding().strip_headers,
        )),
        text(&(
            new.forwarding().trust_proto,
            &new.forwarding().strip_headers,
        )),
    );
    changed(
        "identity",
        true,
        text(&old.identity()),
        text(&new.identity()),
    );
    changed("server", false, text(old.server()), text(new.server()));
    changed("alerts", false, text(&old.alerts()), text(&new.alerts()));
    changed("lockout", false, text(&old.lockout()), text(&new.lockout()));
    changed("pages", false, text(old.pages()), text(new.pages()));
    out
}

/// The fields two pretty-printed settings differ in, `name: old -> new`,
/// the first few: the settings' own words, without a schema of them.
fn changed_fields(before: &str, after: &str) -> String {
    const SHOWN: usize = 6;
    let field = |l: &str| -> Option<(String, String)> {
        let t = l.trim().trim_end_matches(',');
        let (k, v) = t.split_once(": ")?;
        (!v.ends_with('{') && !v.ends_with('[') && !v.ends_with('('))
            .then(|| (k.to_string(), v.to_string()))
    };
    let old: Vec<(String, String)> = before.lines().filter_map(field).collect();
    let new: Vec<(String, String)> = after.lines().filter_map(field).collect();
    let mut out: Vec<String> = Vec::new();
    for (i, (k, v)) in new.iter().enumerate() {
        match old.get(i) {
            Some((ok, ov)) if ok == k && ov != v => out.push(format!("{k}: {ov} -> {v}")),
            Some((ok, _)) if ok == k => {}
            _ => {
                if !old.iter().any(|(ok, ov)| ok == k && ov == v) {
                    out.push(format!("{k}: {v}"));
                }
            }
        }
    }
    if out.is_empty() {
        return "changed".into();
    }
    let more = out.len().saturating_sub(SHOWN);
    out.truncate(SHOWN);
    let mut s = out.join("; ");
    if more > 0 {
        s.push_str(&format!("; and {more} more"));
    }
    s
}

/// `256 IPv4` / `2^64 IPv6` addresses, for people.
pub fn count_text((v4, v6): (u64, u128)) -> String {
    let mut parts = Vec::new();
    if v4 > 0 {
        parts.push(format!("{v4} IPv4"));
    }
    if v6 > 0 {
        parts.push(if v6.is_power_of_two() {
            format!("2^{} IPv6", v6.trailing_zeros())
        } else {
            format!("{v6} IPv6")
        });
    }
    if parts.is_empty() {
        "0".into()
    } else {
        parts.join(" and ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{ClientSource, RequestFacts, decide};
    use crate::policy::load_str;
    use proptest::prelude::*;
    use std::net::IpAddr;
    use std::path::Path;

    const NOW: Timestamp = Timestamp::UNIX_EPOCH;

    fn load(yaml: &str) -> Policy {
        load_str(yaml, Path::new("p.yaml")).expect("valid").policy
    }

    fn decided(
        p: &Policy,
        ip: IpAddr,
        method: &str,
        path: &str,
    ) -> (Action, String, Option<String>) {
        let facts = RequestFacts {
            client: ClientSource::Given(ip),
            method,
            host: Ok(None),
            path,
            now: NOW,
            account: AccountFact::Grouped(None),
            identity: IdentityFact::Missing,
        };
        let d = decide(p.ruleset(), &facts);
        (
            d.action,
            d.rule_name().to_string(),
            d.report.map(|r| r.rule.name.clone()),
        )
    }

    const BASE: &str = "version: 1
networks:
  office: [203.0.113.0/24]
  vpn: [198.51.100.0/24]
  guest: [203.0.113.128/25]
  corporate: { include: [office, vpn], except: [guest] }
rules:
  - { name: health, paths: [/healthz], methods: [GET], action: allow }
  - { name: login, paths: [/login], methods: [POST], login: true, allow_from: [corporate] }
  - { name: console, paths: [\"/**\"], allow_from: [corporate] }
";

    #[test]
    fn renames_disjoint_reorders_and_include_rewrites_change_nothing() {
        let old = load(BASE);
        let same = [
            // A network renamed.
            BASE.replace("office", "head_office"),
            // Two rules with disjoint paths reordered.
            BASE.replace(
                "  - { name: health, paths: [/healthz], methods: [GET], action: allow }\n  - { name: login, paths: [/login], methods: [POST], login: true, allow_from: [corporate] }\n",
                "  - { name: login, paths: [/login], methods: [POST], login: true, allow_from: [corporate] }\n  - { name: health, paths: [/healthz], methods: [GET], action: allow }\n",
            ),
            // include/except rewritten as the addresses they hold.
            BASE.replace(
                "corporate: { include: [office, vpn], except: [guest] }",
                "corporate: [203.0.113.0/25, 198.51.100.0/24]",
            )
            .replace("  office: [203.0.113.0/24]\n", "")
            .replace("  vpn: [198.51.100.0/24]\n", "")
            .replace("  guest: [203.0.113.128/25]\n", ""),
        ];
        for yaml in same {
            let r = diff(&old, &load(&yaml), NOW);
            assert_eq!(r.verdict(), Verdict::Same, "{yaml}");
            assert!(r.changes.is_empty(), "{yaml}: {:?}", r.changes);
        }
    }

    #[test]
    fn a_wider_office_a_wider_trusted_proxy_and_a_moved_rule_are_wider() {
        let old = load(BASE);
        let office = load(&BASE.replace(
            "office: [203.0.113.0/24]",
            "office: [203.0.113.0/24, 192.0.2.0/24]",
        ));
        let r = diff(&old, &office, NOW);
        assert_eq!(r.verdict(), Verdict::Wider);
        let opened: Vec<String> = r
            .changes
            .iter()
            .filter(|c| c.kind == Kind::NowAllowed)
            .flat_map(|c| c.addresses.to_nets())
            .map(|n| n.to_string())
            .collect();
        assert!(opened.iter().all(|n| n == "192.0.2.0/24"), "{opened:?}");
        // Narrowed: only narrower.
        let narrow = load(&BASE.replace("vpn: [198.51.100.0/24]", "vpn: [198.51.100.0/25]"));
        assert_eq!(diff(&old, &narrow, NOW).verdict(), Verdict::Narrower);
        // Trusted proxies: more addresses believed is wider.
        let proxies = load(&format!("{BASE}client_ip: {{ trusted_proxies: [vpn] }}\n"));
        let r = diff(&old, &proxies, NOW);
        assert_eq!(r.verdict(), Verdict::Wider);
        assert!(
            r.settings
                .iter()
                .any(|s| s.name == "client_ip.trusted_proxies" && s.wider)
        );
        // A rule moved above another that overlaps it: the VPN now reads
        // what only the office could.
        let admin =
            "  - { name: admin, paths: [\"/admin/**\"], methods: [GET], allow_from: [office] }\n";
        let report = "  - { name: report, paths: [/admin/report], allow_from: [corporate] }\n";
        let before = load(&BASE.replace(
            "  - { name: console",
            &format!("{admin}{report}  - {{ name: console"),
        ));
        let after = load(&BASE.replace(
            "  - { name: console",
            &format!("{report}{admin}  - {{ name: console"),
        ));
        let r = diff(&before, &after, NOW);
        assert_eq!(r.verdict(), Verdict::Wider);
        assert!(r.changes.iter().any(|c| {
            c.kind == Kind::NowAllowed
                && c.after.rule == "report"
                && c.addresses.contains("198.51.100.7".parse().expect("ip"))
                && c.requests
                    .iter()
                    .any(|q| q.probe == "/admin/report" && q.method == "GET")
        }));
    }

    #[test]
    fn a_country_added_is_wider_for_the_clients_of_that_country() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/cases/inline.yaml");
        let p = |countries: &str| {
            load_str(
                &format!(
                    "version: 1
geoip:
  country: ../geo/GeoLite2-Country-Test.mmdb
networks:
  office: [203.0.113.0/24]
  allowed_countries: {{ country: [{countries}] }}
rules:
  - {{ name: console, allow_from: [office, allowed_countries] }}
"
                ),
                &path,
            )
            .expect("valid")
            .policy
        };
        let r = diff(&p("JP"), &p("JP, GB"), NOW);
        assert_eq!(r.verdict(), Verdict::Wider);
        let opened = r
            .changes
            .iter()
            .find(|c| c.kind == Kind::NowAllowed)
            .expect("an opening");
        // For clients the database places in GB, wherever they are.
        assert!(
            opened
                .requests
                .iter()
                .any(|q| q.facts.iter().any(|f| f == "country GB")),
            "{:?}",
            opened.requests
        );
        assert_eq!(diff(&p("JP"), &p("JP"), NOW).verdict(), Verdict::Same);
    }

    #[test]
    fn an_account_group_let_in_from_another_office_is_wider_for_that_group() {
        let p = |from: &str| {
            load(&format!("version: 1
networks:
  head_office: [203.0.113.0/24]
  agency_office: [192.0.2.0/24]
accounts:
  agency: [agency-*@example.jp]
rules:
  - {{ name: agency_login, paths: [/login], methods: [POST], login: true, account: {{ form: username }}, accounts: [agency], allow_from: [{from}] }}
  - {{ name: login, paths: [/login], methods: [POST], login: true, account: {{ form: username }}, allow_from: [head_office] }}
  - {{ name: console, allow_from: [head_office, agency_office] }}
"))
        };
        let r = diff(&p("agency_office"), &p("agency_office, head_office"), NOW);
        assert_eq!(r.verdict(), Verdict::Wider);
        let opened = r
            .changes
            .iter()
            .find(|c| c.kind == Kind::NowAllowed)
            .expect("an opening");
        assert_eq!(opened.network.as_deref(), Some("head_office"));
        assert!(
            opened
                .requests
                .iter()
                .all(|q| q.account.as_deref() == Some("an account of 'agency'")
                    && q.method == "POST"
                    && q.probe == "/login"),
            "{:?}",
            opened.requests
        );
    }

    #[test]
    fn a_changed_setting_says_which_field() {
        let old = load(&format!(
            "{BASE}server: {{ timeouts: {{ header_read: 10s }} }}\n"
        ));
        let new = load(&format!(
            "{BASE}server: {{ timeouts: {{ header_read: 30s }} }}\n"
        ));
        let r = diff(&old, &new, NOW);
        let server = r
            .settings
            .iter()
            .find(|s| s.name == "server")
            .expect("server changed");
        assert!(
            server.detail.contains("header_read: 10s -> 30s"),
            "{}",
            server.detail
        );
        assert_eq!(r.verdict(), Verdict::Same);
    }

    #[test]
    fn a_grant_that_lasts_longer_is_wider() {
        let g = |until: &str| {
            load(&BASE.replace(
                "vpn: [198.51.100.0/24]",
                &format!("vpn: {{ cidrs: [198.51.100.0/24, {{ cidr: 192.0.2.7/32, until: \"{until}\" }}] }}"),
            ))
        };
        let r = diff(&g("2030-01-10T00:00:00Z"), &g("2030-02-10T00:00:00Z"), NOW);
        assert_eq!(r.verdict(), Verdict::Wider);
        assert!(r.grants.iter().any(GrantChange::wider));
        // At the old end, the grant's address is now allowed until the new one.
        assert!(
            r.changes
                .iter()
                .any(|c| c.kind == Kind::NowAllowed && c.requests.iter().any(|q| q.from.is_some()))
        );
    }

    #[test]
    fn a_window_that_opens_wider_is_wider() {
        let w = |hours: &str| {
            load(&format!("version: 1
networks:
  vpn: [198.51.100.0/24]
rules:
  - {{ name: contractors, allow_from: [vpn], when: {{ days: [mon-fri], hours: \"{hours}\", time_zone: Asia/Tokyo }} }}
  - {{ name: closed, action: deny }}
"))
        };
        // Monday 2026-12-07 00:00 UTC (09:00 in Tokyo).
        let monday: Timestamp = "2026-12-07T00:00:00Z".parse().expect("instant");
        let r = diff(&w("09:00-18:00"), &w("08:00-20:00"), monday);
        assert_eq!(r.verdict(), Verdict::Wider);
        let opened = r
            .changes
            .iter()
            .find(|c| c.kind == Kind::NowAllowed)
            .expect("an opening");
        // From 18:00 Tokyo (09:00 UTC) the new window still holds.
        assert!(
            opened
                .requests
                .iter()
                .any(|q| q.from == Some("2026-12-07T09:00:00Z".parse().expect("instant"))),
            "{:?}",
            opened.requests
        );
        assert_eq!(
            diff(&w("09:00-18:00"), &w("09:00-18:00"), monday).verdict(),
            Verdict::Same
        );
    }

    fn small_net() -> impl Strategy<Value = String> {
        (0u8..=255, 26u8..=32).prop_map(|(host, len)| {
            let mask = if len == 32 {
                0xff
            } else {
                0xffu8 << (32 - len)
            };
            format!("10.0.0.{}/{len}", host & mask)
        })
    }

    fn policy_text() -> impl Strategy<Value = String> {
        let nets = prop::collection::vec(prop::collection::vec(small_net(), 1..3), 3);
        let rule = (
            prop::sample::select(vec![
                "/login",
                "\"/admin/**\"",
                "\"/api/*/users\"",
                "\"/**\"",
                "/x",
            ]),
            prop::sample::select(vec![
                "",
                ", methods: [GET]",
                ", methods: [POST]",
                ", mode: report",
            ]),
            prop::sample::select(vec![
                "allow_from: [a]",
                "allow_from: [b, c]",
                "deny_from: [a]",
                "deny_from: [c]",
                "action: allow",
                "action: deny",
            ]),
        );
        let rules = prop::collection::vec(rule, 1..5);
        let default = prop::sample::select(vec!["deny", "allow"]);
        (nets, rules, default).prop_map(|(nets, rules, default)| {
            let mut y = String::from("version: 1\nnetworks:\n");
            for (name, list) in ["a", "b", "c"].iter().zip(nets) {
                y.push_str(&format!("  {name}: [{}]\n", list.join(", ")));
            }
            y.push_str("rules:\n");
            for (i, (path, methods, kind)) in rules.iter().enumerate() {
                y.push_str(&format!(
                    "  - {{ name: r{i}, paths: [{path}]{methods}, {kind} }}\n"
                ));
            }
            y.push_str(&format!("default: {default}\n"));
            y
        })
    }

    fn loads(yaml: &str) -> Option<Policy> {
        load_str(yaml, Path::new("p.yaml")).ok().map(|l| l.policy)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]
        /// Every sampled request two policies decide differently lies in a
        /// reported change, and every reported change's own example is
        /// decided as reported: the diff is exact where sampling agrees.
        #[test]
        fn the_diff_agrees_with_deciding_requests(old in policy_text(), new in policy_text(),
            samples in prop::collection::vec((0u8..=255, 0usize..8, 0usize..3), 60)) {
            let (Some(a), Some(b)) = (loads(&old), loads(&new)) else { return Ok(()); };
            let r = diff(&a, &b, NOW);
            let paths = ["/login", "/admin", "/admin/x", "/api/v1/users", "/x", "/y/z", "/", "/api/v1/users/2"];
            let methods = ["GET", "POST", "PUT"];
            for (host, p, m) in samples {
                let ip: IpAddr = format!("10.0.0.{host}").parse().expect("ip");
                let (before, after) = (decided(&a, ip, methods[m], paths[p]), decided(&b, ip, methods[m], paths[p]));
                if before == after { continue; }
                let kind = match (before.0, after.0) {
                    (Action::Deny, Action::Allow) => Kind::NowAllowed,
                    (Action::Allow, Action::Deny) => Kind::NowDenied,
                    _ => Kind::OtherRule,
                };
                let found = r.changes.iter().any(|c| c.kind == kind
                    && c.before.rule == before.1 && c.after.rule == after.1
                    && c.before.report == before.2 && c.after.report == after.2
                    && c.addresses.contains(ip));
                prop_assert!(found, "{} {} from {ip}: {before:?} -> {after:?} not reported\n{old}\n{new}", methods[m], paths[p]);
            }
            for c in &r.changes {
                let ip = c.addresses.first().expect("a change has addresses");
                let q = &c.requests[0];
                let (before, after) = (decided(&a, ip, &q.method, &q.probe), decided(&b, ip, &q.method, &q.probe));
                prop_assert_eq!(before.1, c.before.rule.clone());
                prop_assert_eq!(after.1, c.after.rule.clone());
                prop_assert_eq!(before.2, c.before.report.clone());
                prop_assert_eq!(after.2, c.after.report.clone());
            }
            if r.changes.is_empty() {
                prop_assert_eq!(r.verdict(), Verdict::Same);
            }
        }
    }
}
