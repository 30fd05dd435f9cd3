//! `explain`: a decision with the trace of how it was reached, as text for
//! people and as one JSON object for machines.

use std::fmt::{self, Write as _};

use serde_json::{Value, json};

use super::client::{Derivation, Hop};
use super::ruleset::{NetRef, RuleKind, Ruleset};
use super::{Decision, Skip, Trace};

/// A hop of a forwarding header, kept for the report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedHop {
    pub raw: String,
    pub ip: Option<std::net::IpAddr>,
    pub trusted: bool,
}

/// Records what the engine did.
#[derive(Debug, Default)]
pub struct Recorder {
    pub hops: Vec<RecordedHop>,
    pub skipped: Vec<(usize, Skip)>,
}

impl Trace for Recorder {
    const ALL_RULES: bool = true;
    fn hop(&mut self, hop: Hop<'_>) {
        self.hops.push(RecordedHop {
            raw: String::from_utf8_lossy(hop.raw).into_owned(),
            ip: hop.ip,
            trusted: hop.trusted,
        });
    }
    fn rule_skipped(&mut self, index: usize, why: Skip) {
        self.skipped.push((index, why));
    }
}

impl Skip {
    fn text(self) -> &'static str {
        match self {
            Skip::Path => "path does not match",
            Skip::Method => "method does not match",
            Skip::Host => "host does not match",
            Skip::NotInDeniedNetworks => {
                "client is in none of its deny_from networks; falls through"
            }
            Skip::ReportOnly => "report-only: evaluated, not enforced",
            Skip::Expired => "expired (its until: has passed)",
            Skip::OutsideWindow => "outside its when: windows",
            Skip::NotTheseAccounts => "the account is in none of its groups; falls through",
            Skip::NotThisIdentity => {
                "the client's identity is not one its who: names; falls through"
            }
        }
    }
}

/// A decision and its trace, ready to print.
pub struct Report<'a, 'p, 'r> {
    pub policy: &'p Ruleset,
    pub decision: &'a Decision<'p, 'r>,
    pub trace: &'a Recorder,
    /// The instant decided at.
    pub now: jiff::Timestamp,
}

impl Report<'_, '_, '_> {
    fn rule_outcomes(&self) -> Vec<(usize, String)> {
        let decided = self
            .decision
            .rule
            .and_then(|r| self.policy.rules().iter().position(|x| std::ptr::eq(x, r)));
        let last = decided.unwrap_or(self.policy.rules().len().saturating_sub(1));
        let mut out = Vec::new();
        if self.decision.path.is_none() {
            return out;
        }
        for i in 0..self.policy.rules().len() {
            let text = if Some(i) == decided && self.decision.reason == super::Reason::AccountNeeded
            {
                "NEEDS THE ACCOUNT: decides by the account the sign-in names".to_string()
            } else if Some(i) == decided {
                format!("DECIDES: {}", self.decision.action)
            } else if let Some((_, why)) = self.trace.skipped.iter().find(|(j, _)| *j == i) {
                format!("skipped: {}", why.text())
            } else if i > last {
                "not reached".to_string()
            } else {
                continue;
            };
            out.push((i, text));
        }
        out
    }

    pub fn to_json(&self) -> Value {
        let d = self.decision;
        let memberships = d
            .client
            .ip
            .map(|ip| self.policy.networks_containing(ip, self.now))
            .unwrap_or_default();
        let networks: Vec<&str> = memberships.iter().map(|(n, _)| *n).collect();
        let ended: Vec<Value> = d
            .client
            .ip
            .map(|ip| self.policy.ended_grants(ip, self.now))
            .unwrap_or_default()
            .into_iter()
            .map(|(n, g)| {
                json!({"network": n, "grant": g.net.to_string(), "until": g.until.to_string(), "note": g.note.as_deref()})
            })
            .collect();
        let via: Vec<Value> = memberships
            .iter()
            .map(|(n, v)| json!({"network": n, "via": v.to_string()}))
            .collect();
        let geo = self.policy.geo();
        let facts = d.client.ip.filter(|_| !geo.is_empty()).map(|ip| {
            let f = geo.facts(ip);
            json!({
                "country": f.country.map(|c| c.to_string()),
                "asn": f.asn,
                "as_org": f.as_org,
                "connection_type": f.connection_type,
                "anonymous": f.anonymous.map(|a| a.names().collect::<Vec<_>>()),
            })
        });
        let rules: Vec<Value> = self
            .rule_outcomes()
            .into_iter()
            .map(|(i, outcome)| {
                let r = &self.policy.rules()[i];
                json!({"rule": r.name, "line": r.line, "outcome": outcome})
            })
            .collect();
        let hops: Vec<Value> = self
            .trace
            .hops
            .iter()
            .map(|h| json!({"value": h.raw, "ip": h.ip.map(|ip| ip.to_string()), "trusted": h.trusted}))
            .collect();
        let decision = if d.reason == super::Reason::AccountNeeded {
            "needs_account"
        } else {
            d.action.as_str()
        };
        json!({
            "decision": decision,
            "account_group": d.account_group,
            "identity_group": d.identity_group,
            "at": self.now.to_string(),
            "rule": d.rule_name(),
            "client_ip": d.client.ip.map(|ip| ip.to_string()),
            "client_source": d.client.derivation.kind(),
            "client_derivation": d.client.derivation.to_string(),
            "peer": d.client.peer.map(|ip| ip.to_string()),
            "network": d.network,
            "login": d.login,
            "blocked_login": d.is_blocked_login(),
            "path": d.path.as_deref(),
            "reason": d.explanation().to_string(),
            "reason_code": d.reason.code(),
            "client_networks": networks,
            "client_memberships": via,
            "ended_grants": ended,
            "client_facts": facts,
            "via": d.via.map(|v| v.to_string()),
            "enforced": d.enforced,
            "would_deny": d.report.is_some(),
            "report_rule": d.report.map(|r| r.rule.name.as_str()),
            "hops": hops,
            "rules": rules,
        })
    }
}

impl fmt::Display for Report<'_, '_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.decision;
        if d.reason == super::Reason::AccountNeeded {
            writeln!(
                f,
                "decision: none yet: the account decides (give --account NAME)"
            )?;
        } else {
            writeln!(f, "decision: {}", d.action)?;
        }
        match d.rule {
            Some(r) => writeln!(f, "rule:     {} (line {})", r.name, r.line)?,
            None => writeln!(f, "rule:     {}", d.rule_name())?,
        }
        writeln!(f, "reason:   {}", d.explanation())?;
        if !d.enforced {
            writeln!(
                f,
                "enforced: no (the policy is report-only: the request would be forwarded)"
            )?;
        }
        if let Some(w) = d.would_be() {
            writeln!(
                f,
                "report:   report-only rule '{}' would deny: {}",
                w.rule_name(),
                w.explanation()
            )?;
        }
        if d.is_blocked_login() {
            writeln!(f, "login:    yes: this is a blocked login attempt")?;
        } else if d.login {
            writeln!(f, "login:    yes")?;
        }
        if let Some(p) = &d.path {
            writeln!(f, "path:     {p} (normalized)")?;
        }
        if let Some(g) = d.account_group {
            writeln!(f, "account:  in group '{g}'")?;
        }
        if let Some(g) = d.identity_group {
            writeln!(f, "identity: in group '{g}'")?;
        }

        writeln!(f, "\nclient address:")?;
        match (d.client.derivation, d.client.peer) {
            (Derivation::Given, _) => {
                writeln!(f, "  given directly: {}", super::ClientText(&d.client))?
            }
            (Derivation::Peer, Some(peer)) => writeln!(
                f,
                "  peer {peer} is not a trusted proxy: it is the client; forwarding headers ignored"
            )?,
            (Derivation::TrustedPeerNoHeader, Some(peer)) => writeln!(
                f,
                "  peer {peer} is a trusted proxy but sent no {} header: the peer is the client",
                self.policy.client_ip().header.name()
            )?,
            (derivation, peer) => {
                let peer = peer.map_or_else(|| "?".into(), |p| p.to_string());
                writeln!(
                    f,
                    "  peer {peer} is a trusted proxy; {} read right to left:",
                    self.policy.client_ip().header.name()
                )?;
                for hop in &self.trace.hops {
                    let verdict = match (hop.ip, hop.trusted) {
                        (None, _) => "unusable: the client is unknown".to_string(),
                        (Some(_), true) => "trusted proxy, skipped".to_string(),
                        (Some(_), false) => "the client".to_string(),
                    };
                    writeln!(f, "    {:<40} {verdict}", hop.raw)?;
                }
                writeln!(
                    f,
                    "  result: {} ({derivation})",
                    super::ClientText(&d.client)
                )?;
            }
        }
        if let Some(ip) = d.client.ip {
            let geo = self.policy.geo();
            if !geo.is_empty() {
                writeln!(f, "  GeoIP facts: {}", geo.facts(ip))?;
            }
            let mut names = String::new();
            for (i, (n, via)) in self
                .policy
                .networks_containing(ip, self.now)
                .into_iter()
                .enumerate()
            {
                let _ = write!(names, "{}{n}", if i > 0 { ", " } else { "" });
                match via {
                    super::facts::Via::Fact(kind) => {
                        let _ = write!(names, " (by {})", kind.name());
                    }
                    super::facts::Via::Grant => names.push_str(" (by a grant with until:)"),
                    super::facts::Via::Cidr => {}
                }
            }
            if names.is_empty() {
                names.push_str("(none)");
            }
            writeln!(f, "  in networks: {names}")?;
            for (network, g) in self.policy.ended_grants(ip, self.now) {
                let note = g
                    .note
                    .as_deref()
                    .map_or_else(String::new, |n| format!(" ({n})"));
                writeln!(
                    f,
                    "  grant ended: {} in {network} ended at {}{note}",
                    g.net, g.until
                )?;
            }
        }

        let outcomes = self.rule_outcomes();
        if !outcomes.is_empty() {
            writeln!(f, "\nrules (first match wins):")?;
            let width = self
                .policy
                .rules()
                .iter()
                .map(|r| r.name.len())
                .max()
                .unwrap_or(0);
            for (i, outcome) in outcomes {
                let r = &self.policy.rules()[i];
                let kind = match &r.kind {
                    RuleKind::Action(a) => format!("action: {a}"),
                    RuleKind::AllowFrom(n) => format!("allow_from: {}", names(n)),
                    RuleKind::DenyFrom(n) => format!("deny_from: {}", names(n)),
                };
                let kind = match &r.accounts {
                    Some(groups) => {
                        let list: Vec<&str> = groups.iter().map(|g| &*g.name).collect();
                        format!("accounts: [{}], {kind}", list.join(", "))
                    }
                    None => kind,
                };
                let kind = match &r.who {
                    Some(w) => {
                        let mut names: Vec<String> =
                            w.groups.iter().map(|g| format!("group {g}")).collect();
                        if !w.emails.is_empty() {
                            names.push(format!("{} e-mail pattern(s)", w.emails.len()));
                        }
                        names.extend(w.claims.iter().map(|(k, v)| format!("{k}={v}")));
                        format!("who: [{}], {kind}", names.join(", "))
                    }
                    None => kind,
                };
                writeln!(f, "  {:>2}. {:<width$}  {outcome}  [{kind}]", i + 1, r.name)?;
            }
            if d.rule.is_none() {
                writeln!(f, "  default: {}", d.action)?;
            }
        }
        Ok(())
    }
}

fn names(refs: &[NetRef]) -> String {
    let list: Vec<&str> = refs.iter().map(|n| &*n.name).collect();
    format!("[{}]", list.join(", "))
}
