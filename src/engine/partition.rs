//! Every address at once: how a ruleset decides one request shape (path,
//! method, host, instant, account, identity) for the whole address space,
//! as pieces of addresses each with its decision and rule. `netwarden
//! diff` compares two policies piece by piece. The walk is [`super::decide`]'s,
//! first match wins, over sets of addresses instead of one; the property
//! test in `crate::diff` holds the two to the same answers.

use super::prefix::RangeSet;
use super::ruleset::{NetRef, Rule, RuleKind, Ruleset};
use super::who::IdentityFact;
use super::{AccountFact, Action, Reason, group_for, mismatch};

/// One request shape: everything but the client address.
#[derive(Clone, Copy, Debug)]
pub struct Shape<'a> {
    pub method: &'a str,
    /// Without its port.
    pub host: Option<&'a str>,
    /// Normalized.
    pub path: &'a str,
    pub now: jiff::Timestamp,
    pub account: AccountFact<'a>,
    pub identity: IdentityFact<'a>,
}

/// Addresses a ruleset decides alike for a shape.
#[derive(Clone, Debug)]
pub struct Piece<'p> {
    pub addresses: RangeSet,
    pub action: Action,
    /// `None`: the default.
    pub rule: Option<&'p Rule>,
    pub reason: Reason,
    /// The first report-only rule that would have denied these addresses.
    pub report: Option<&'p Rule>,
}

/// How `rule` meets `shape` whatever the address (its paths, methods,
/// hosts, time, accounts, identities): `None` when it does not apply,
/// else the reason it refuses every address (an account that cannot be
/// read, no identity), if it does. Two shapes that meet the rules of a
/// policy alike are decided alike by it.
pub fn meets(policy: &Ruleset, rule: &Rule, shape: &Shape<'_>) -> Option<Option<Reason>> {
    if mismatch(rule, shape.method, shape.host, shape.path, policy).is_some()
        || rule.out_of_time(shape.now).is_some()
    {
        return None;
    }
    let mut refused = None;
    match (&rule.accounts, shape.account) {
        (None, _) => {}
        (Some(_), AccountFact::Unreadable(why)) => refused = Some(Reason::AccountUnreadable(why)),
        (Some(_), AccountFact::Unread) => return None,
        (Some(groups), known) => {
            group_for(policy, groups, known)?;
        }
    }
    if let Some(who) = &rule.who
        && refused.is_none()
    {
        match shape.identity {
            IdentityFact::Verified(id) => {
                who.matches(id)?;
            }
            IdentityFact::Missing => refused = Some(Reason::IdentityMissing),
            IdentityFact::Invalid(why) => refused = Some(Reason::IdentityInvalid(why)),
        }
    }
    Some(refused)
}

/// The pieces, which together hold every address once. `members` gives
/// the addresses in any of a rule's networks (the caller decides the
/// instant and the facts, and may remember answers).
pub fn partition<'p>(
    policy: &'p Ruleset,
    shape: &Shape<'_>,
    members: &mut dyn FnMut(&'p [NetRef]) -> RangeSet,
) -> Vec<Piece<'p>> {
    let mut out = Vec::new();
    let mut undecided = RangeSet::everything();
    // Report-only rules that would deny: which addresses each holds first.
    let mut unreported = RangeSet::everything();
    let mut reports: Vec<(RangeSet, &'p Rule)> = Vec::new();
    let push = |out: &mut Vec<Piece<'p>>, addresses: RangeSet, action, rule, reason| {
        if !addresses.is_empty() {
            out.push(Piece {
                addresses,
                action,
                rule,
                reason,
                report: None,
            });
        }
    };
    for rule in &policy.rules {
        if undecided.is_empty() {
            break;
        }
        if mismatch(rule, shape.method, shape.host, shape.path, policy).is_some()
            || rule.out_of_time(shape.now).is_some()
        {
            continue;
        }
        let mut refused = None;
        if let Some(groups) = &rule.accounts {
            match shape.account {
                // A shape always says which account (or none readable).
                AccountFact::Unread => continue,
                AccountFact::Unreadable(why) => refused = Some(Reason::AccountUnreadable(why)),
                known => {
                    if group_for(policy, groups, known).is_none() {
                        continue;
                    }
                }
            }
        }
        if let Some(who) = &rule.who
            && refused.is_none()
        {
            match shape.identity {
                IdentityFact::Verified(id) => {
                    if who.matches(id).is_none() {
                        continue;
                    }
                }
                IdentityFact::Missing => refused = Some(Reason::IdentityMissing),
                IdentityFact::Invalid(why) => refused = Some(Reason::IdentityInvalid(why)),
            }
        }
        // A report-only rule never decides; the addresses it would deny
        // (still undecided, and not already reported) are remembered.
        if rule.report {
            let open = undecided.intersection(&unreported);
            let denied = match (&rule.kind, refused) {
                (_, Some(_)) | (RuleKind::Action(Action::Deny), None) => open,
                (RuleKind::Action(Action::Allow), None) => RangeSet::default(),
                (RuleKind::AllowFrom(nets), None) => open.difference(&members(nets)),
                (RuleKind::DenyFrom(nets), None) => open.intersection(&members(nets)),
            };
            if !denied.is_empty() {
                unreported = unreported.difference(&denied);
                reports.push((denied, rule));
            }
            continue;
        }
        let all = std::mem::take(&mut undecided);
        if let Some(reason) = refused {
            push(&mut out, all, Action::Deny, Some(rule), reason);
            continue;
        }
        match &rule.kind {
            RuleKind::Action(a) => push(&mut out, all, *a, Some(rule), Reason::RuleAction),
            RuleKind::AllowFrom(nets) => {
                let m = members(nets);
                push(
                    &mut out,
                    all.intersection(&m),
                    Action::Allow,
                    Some(rule),
                    Reason::InAllowedNetwork,
                );
                push(
                    &mut out,
                    all.difference(&m),
                    Action::Deny,
                    Some(rule),
                    Reason::NotInAllowedNetworks,
                );
            }
            RuleKind::DenyFrom(nets) => {
                let m = members(nets);
                push(
                    &mut out,
                    all.intersection(&m),
                    Action::Deny,
                    Some(rule),
                    Reason::InDeniedNetwork,
                );
                undecided = all.difference(&m);
            }
        }
    }
    push(&mut out, undecided, policy.default, None, Reason::Default);
    if reports.is_empty() {
        return out;
    }
    // Each piece split by the report-only rule that holds its addresses.
    let mut split = Vec::with_capacity(out.len() * 2);
    for piece in out {
        let mut rest = piece.addresses.clone();
        for (set, rule) in &reports {
            let part = rest.intersection(set);
            if !part.is_empty() {
                rest = rest.difference(&part);
                split.push(Piece {
                    addresses: part,
                    report: Some(rule),
                    ..piece.clone()
                });
            }
        }
        if !rest.is_empty() {
            split.push(Piece {
                addresses: rest,
                ..piece
            });
        }
    }
    split
}
