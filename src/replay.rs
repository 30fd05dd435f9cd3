//! `netwarden replay`: decide logged requests again with a candidate policy
//! and report what would change, before the candidate ships.
//!
//! Input is the JSON `decision` lines `serve` writes. Each line carries
//! what the engine needs: the client address (as decided), method, host,
//! normalized path, and the GeoIP facts when they were logged. Lines that
//! are not decision events, or lack a field, are skipped and counted.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::net::IpAddr;

use serde::Deserialize;
use serde_json::{Value, json};

use crate::engine::{AccountFact, Action, ClientSource, RequestFacts, decide, decide_with_facts};
use crate::geo::{AnonymousFlags, Country, Facts};
use crate::policy::Policy;

/// Examples kept per kind of change.
const EXAMPLES: usize = 10;

/// The fields of a decision line that replay reads.
#[derive(Deserialize)]
struct Line<'a> {
    #[serde(borrow)]
    event: Option<std::borrow::Cow<'a, str>>,
    /// When the request was decided: `when:` windows and `until:` are
    /// read against it, as serve read them then.
    #[serde(borrow)]
    timestamp: Option<std::borrow::Cow<'a, str>>,
    #[serde(rename = "client.address", borrow)]
    client: Option<std::borrow::Cow<'a, str>>,
    #[serde(rename = "http.request.method", borrow)]
    method: Option<std::borrow::Cow<'a, str>>,
    #[serde(rename = "url.path", borrow)]
    path: Option<std::borrow::Cow<'a, str>>,
    #[serde(rename = "server.address", borrow)]
    host: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    action: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    rule: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    request_id: Option<std::borrow::Cow<'a, str>>,
    #[serde(rename = "geo.country.iso_code", borrow)]
    country: Option<std::borrow::Cow<'a, str>>,
    #[serde(rename = "network.asn")]
    asn: Option<u32>,
    #[serde(rename = "network.connection_type", borrow)]
    connection_type: Option<std::borrow::Cow<'a, str>>,
    #[serde(rename = "network.anonymous", borrow)]
    anonymous: Option<std::borrow::Cow<'a, str>>,
    #[serde(rename = "account.group", borrow)]
    account_group: Option<std::borrow::Cow<'a, str>>,
    #[serde(rename = "login.account", borrow)]
    login_account: Option<std::borrow::Cow<'a, str>>,
    #[serde(rename = "identity.state", borrow)]
    identity_state: Option<std::borrow::Cow<'a, str>>,
    #[serde(rename = "identity.group", borrow)]
    identity_group: Option<std::borrow::Cow<'a, str>>,
    #[serde(rename = "identity.email", borrow)]
    identity_email: Option<std::borrow::Cow<'a, str>>,
}

/// What a decision line says of the sign-in's account: never the account
/// itself, only the group a rule found it in, or why it could not be read.
/// A sign-in logged read but in no group (the policy then had none that
/// held it) counts as in no group.
fn logged_account<'l>(line: &'l Line<'_>) -> AccountFact<'l> {
    match (line.account_group.as_deref(), line.login_account.as_deref()) {
        (Some(g), _) => AccountFact::Grouped(Some(g)),
        (None, Some(state)) => match crate::engine::account::NoAccount::parse(state) {
            Some(why) => AccountFact::Unreadable(why),
            None => AccountFact::Grouped(None),
        },
        (None, None) => AccountFact::Grouped(None),
    }
}

/// What a decision line says of the client's identity: a verified one
/// with the group a `who:` matched (and the e-mail, where the policy logs
/// it), or why there was none. The log keeps no more: a `who:` on other
/// groups or on e-mails not logged sees an identity that it does not name.
fn logged_identity(
    line: &Line<'_>,
) -> Option<Result<crate::engine::who::Identity, crate::engine::who::Invalid>> {
    match line.identity_state.as_deref()? {
        "verified" => Some(Ok(crate::engine::who::Identity {
            subject: "replayed".into(),
            email: line
                .identity_email
                .as_deref()
                .map(crate::engine::who::fold_email),
            groups: line
                .identity_group
                .as_deref()
                .map(|g| vec![g.into()])
                .unwrap_or_default(),
            claims: Vec::new(),
        })),
        "missing" => None,
        other => crate::engine::who::Invalid::parse(other).map(Err),
    }
}

/// One request decided differently.
#[derive(Clone, Debug)]
pub struct Change {
    pub request_id: String,
    pub client: String,
    pub method: String,
    pub path: String,
    pub before: (Action, String),
    pub after: (Action, String),
}

/// What a replay found.
#[derive(Debug, Default)]
pub struct Summary {
    pub lines: u64,
    pub replayed: u64,
    /// Lines that are not decision events.
    pub skipped_other: u64,
    /// Decision lines without a field replay needs (or an unknown client).
    pub skipped_incomplete: u64,
    pub allow_to_deny: u64,
    pub deny_to_allow: u64,
    /// Changes by the candidate's deciding rule.
    pub by_rule: BTreeMap<String, u64>,
    /// Changes by the candidate's deciding network (`-` for none).
    pub by_network: BTreeMap<String, u64>,
    pub examples_allow_to_deny: Vec<Change>,
    pub examples_deny_to_allow: Vec<Change>,
}

impl Summary {
    pub fn changed(&self) -> u64 {
        self.allow_to_deny + self.deny_to_allow
    }

    pub fn to_json(&self) -> Value {
        let ex = |list: &[Change]| -> Vec<Value> {
            list.iter()
                .map(|c| {
                    json!({
                        "request_id": c.request_id, "client": c.client, "method": c.method, "path": c.path,
                        "before": {"action": c.before.0.as_str(), "rule": c.before.1},
                        "after": {"action": c.after.0.as_str(), "rule": c.after.1},
                    })
                })
                .collect()
        };
        json!({
            "lines": self.lines,
            "replayed": self.replayed,
            "skipped": {"not_decisions": self.skipped_other, "incomplete": self.skipped_incomplete},
            "allow_to_deny": self.allow_to_deny,
            "deny_to_allow": self.deny_to_allow,
            "by_rule": self.by_rule,
            "by_network": self.by_network,
            "examples": {"allow_to_deny": ex(&self.examples_allow_to_deny), "deny_to_allow": ex(&self.examples_deny_to_allow)},
        })
    }
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "replayed {} request(s) ({} line(s); skipped {} other event(s), {} incomplete)",
            self.replayed, self.lines, self.skipped_other, self.skipped_incomplete
        )?;
        writeln!(f, "allow -> deny: {}", self.allow_to_deny)?;
        writeln!(f, "deny -> allow: {}", self.deny_to_allow)?;
        if self.changed() == 0 {
            return writeln!(f, "no decision changes");
        }
        writeln!(f, "\nchanges by rule (candidate):")?;
        for (r, n) in &self.by_rule {
            writeln!(f, "  {n:>8}  {r}")?;
        }
        writeln!(f, "changes by client network (candidate):")?;
        for (r, n) in &self.by_network {
            writeln!(f, "  {n:>8}  {r}")?;
        }
        for (title, list) in [
            ("allow -> deny", &self.examples_allow_to_deny),
            ("deny -> allow", &self.examples_deny_to_allow),
        ] {
            if list.is_empty() {
                continue;
            }
            writeln!(f, "\nfirst {title}:")?;
            for c in list {
                writeln!(
                    f,
                    "  {} {} {} from {}: {} by {} -> {} by {}",
                    c.request_id,
                    c.method,
                    c.path,
                    c.client,
                    c.before.0,
                    c.before.1,
                    c.after.0,
                    c.after.1
                )?;
            }
        }
        Ok(())
    }
}

fn action(s: &str) -> Option<Action> {
    match s {
        "allow" => Some(Action::Allow),
        "deny" => Some(Action::Deny),
        _ => None,
    }
}

/// The logged facts, if the line carries any.
fn logged_facts(l: &Line<'_>) -> Option<Facts> {
    if l.country.is_none()
        && l.asn.is_none()
        && l.connection_type.is_none()
        && l.anonymous.is_none()
    {
        return None;
    }
    let anonymous = l.anonymous.as_deref().map(|list| {
        list.split(',')
            .filter_map(AnonymousFlags::named)
            .fold(AnonymousFlags::default(), AnonymousFlags::union)
    });
    Some(Facts {
        country: l.country.as_deref().and_then(Country::parse),
        asn: l.asn,
        as_org: None,
        connection_type: l.connection_type.as_deref().and_then(|t| {
            crate::geo::CONNECTION_TYPES
                .iter()
                .find(|c| **c == t)
                .copied()
        }),
        anonymous,
    })
}

/// Replays every line of `input` against `candidate` (and `baseline`, when
/// given, instead of the logged decision).
pub fn replay(
    candidate: &Policy,
    baseline: Option<&Policy>,
    input: &mut dyn BufRead,
    summary: &mut Summary,
) -> std::io::Result<()> {
    // Lines without a timestamp are decided now.
    let now = crate::clock::now();
    let mut buf = String::new();
    loop {
        buf.clear();
        if input.read_line(&mut buf)? == 0 {
            return Ok(());
        }
        summary.lines += 1;
        let Ok(line) = serde_json::from_str::<Line<'_>>(buf.trim_end()) else {
            summary.skipped_other += 1;
            continue;
        };
        if line.event.as_deref() != Some("decision") {
            summary.skipped_other += 1;
            continue;
        }
        let (Some(client), Some(method), Some(path), Some(logged)) = (
            line.client.as_deref(),
            line.method.as_deref(),
            line.path.as_deref(),
            line.action.as_deref().and_then(action),
        ) else {
            summary.skipped_incomplete += 1;
            continue;
        };
        let Ok(ip) = client.parse::<IpAddr>() else {
            summary.skipped_incomplete += 1;
            continue;
        };
        let logged_identity = logged_identity(&line);
        let facts = RequestFacts {
            client: ClientSource::Given(ip),
            method,
            host: Ok(line.host.as_deref().filter(|h| !h.is_empty())),
            path,
            now: line
                .timestamp
                .as_deref()
                .and_then(|t| t.parse().ok())
                .unwrap_or(now),
            account: logged_account(&line),
            identity: match &logged_identity {
                Some(Ok(id)) => crate::engine::who::IdentityFact::Verified(id),
                Some(Err(why)) => crate::engine::who::IdentityFact::Invalid(*why),
                None => crate::engine::who::IdentityFact::Missing,
            },
        };
        let known = logged_facts(&line);
        let run = |p| match &known {
            Some(k) => decide_with_facts(p, &facts, k),
            None => decide(p, &facts),
        };
        let before = match baseline {
            Some(b) => {
                let d = run(b.ruleset());
                (d.action, d.rule_name().to_string())
            }
            None => (logged, line.rule.as_deref().unwrap_or("?").to_string()),
        };
        let d = run(candidate.ruleset());
        summary.replayed += 1;
        if d.action == before.0 {
            continue;
        }
        let change = Change {
            request_id: line.request_id.as_deref().unwrap_or("").to_string(),
            client: client.to_string(),
            method: method.to_string(),
            path: path.to_string(),
            before,
            after: (d.action, d.rule_name().to_string()),
        };
        *summary
            .by_rule
            .entry(d.rule_name().to_string())
            .or_default() += 1;
        *summary
            .by_network
            // A change no network decided (a rule's action, the default,
            // or a client in none of the rule's networks) says why, not "-".
            .entry(d.network.map_or_else(
                || format!("(no network: {})", d.reason.code()),
                str::to_string,
            ))
            .or_default() += 1;
        let (count, examples) = match d.action {
            Action::Deny => (
                &mut summary.allow_to_deny,
                &mut summary.examples_allow_to_deny,
            ),
            Action::Allow => (
                &mut summary.deny_to_allow,
                &mut summary.examples_deny_to_allow,
            ),
        };
        *count += 1;
        if examples.len() < EXAMPLES {
            examples.push(change);
        }
    }
}

/// Opens a log: a file (`.gz` decompressed), or `-` for stdin.
pub fn open(path: &str) -> std::io::Result<Box<dyn BufRead>> {
    const BUF: usize = 256 * 1024;
    if path == "-" {
        return Ok(Box::new(std::io::BufReader::with_capacity(
            BUF,
            std::io::stdin(),
        )));
    }
    let file = std::fs::File::open(path)?;
    if path.ends_with(".gz") {
        Ok(Box::new(std::io::BufReader::with_capacity(
            BUF,
            flate2::read::MultiGzDecoder::new(file),
        )))
    } else {
        Ok(Box::new(std::io::BufReader::with_capacity(BUF, file)))
    }
}
