//! A policy's own `tests:`: each is decided by the engine against the
//! compiled policy, and a policy whose tests fail is invalid.

use std::net::IpAddr;
use std::path::Path;

use super::Policy;
use super::compile::{Cx, at};
use super::diagnostics::{Collector, Diagnostic, Severity};
use super::raw::{RawAction, RawTest, S};
use crate::engine::client::parse_ip;
use crate::engine::{AccountFact, Action, ClientSource, RequestFacts, decide};

/// How a test gives the client.
#[derive(Clone, Copy, Debug)]
pub enum TestClient {
    /// `ip:` the client address itself.
    Ip(IpAddr),
    /// `peer:` the TCP peer; `headers:` then say who the client is.
    Peer(IpAddr),
}

/// One compiled test case.
#[derive(Clone, Debug)]
pub struct PolicyTest {
    pub line: u32,
    pub column: u32,
    /// 1-based position in `tests:`.
    pub number: usize,
    pub description: Option<String>,
    pub client: TestClient,
    pub headers: Vec<(String, String)>,
    pub method: String,
    pub path: String,
    pub host: Option<String>,
    pub expect: Action,
    /// The rule expected to decide (`default` for none).
    pub rule: Option<String>,
    /// `at:` the instant to decide at; `None`: when the policy loads.
    pub at: Option<jiff::Timestamp>,
    /// `account:` the account the sign-in names, folded.
    pub account: Option<String>,
    /// `identity:` who the auth layer vouched the client is, or why not.
    pub identity: Option<Result<crate::engine::who::Identity, crate::engine::who::Invalid>>,
}

/// Runs every test; returns one error per failing test.
pub fn run(
    policy: &Policy,
    tests: &[PolicyTest],
    file: &Path,
    src: &str,
    now: jiff::Timestamp,
) -> Vec<Diagnostic> {
    let mut c = Collector::new(file, src);
    for t in tests {
        let client = match t.client {
            TestClient::Ip(ip) => ClientSource::Given(ip),
            TestClient::Peer(peer) => ClientSource::Peer {
                peer,
                headers: &t.headers,
            },
        };
        let facts = RequestFacts {
            client,
            method: &t.method,
            host: Ok(t.host.as_deref()),
            path: &t.path,
            now: t.at.unwrap_or(now),
            account: t
                .account
                .as_deref()
                .map_or(AccountFact::Unread, AccountFact::Named),
            identity: match &t.identity {
                None => crate::engine::who::IdentityFact::Missing,
                Some(Ok(id)) => crate::engine::who::IdentityFact::Verified(id),
                Some(Err(why)) => crate::engine::who::IdentityFact::Invalid(*why),
            },
        };
        let d = decide(policy.ruleset(), &facts);
        let rule_ok = t.rule.as_deref().is_none_or(|r| r == d.rule_name());
        if d.action == t.expect && rule_ok {
            continue;
        }
        let label = match &t.description {
            Some(desc) => format!("test {} ({desc})", t.number),
            None => format!("test {}", t.number),
        };
        let expected = match &t.rule {
            Some(r) => format!("{} by rule '{r}'", t.expect),
            None => t.expect.to_string(),
        };
        c.push(
            Severity::Error,
            t.line,
            t.column,
            format!(
                "{label} failed: {} {} expected {expected}, got {} by rule '{}': {}",
                t.method,
                t.path,
                d.action,
                d.rule_name(),
                d.explanation()
            ),
            Some(if d.reason == crate::engine::Reason::AccountNeeded {
                "give the test the account the sign-in names: 'account: yamada@example.jp'".into()
            } else {
                "fix the policy, or the test if the policy is right".into()
            }),
        );
    }
    c.diagnostics
}

impl Cx<'_, '_> {
    pub(super) fn tests(&mut self, raw: &[S<RawTest>]) -> Vec<PolicyTest> {
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
            let decide_at = match &test.at {
                Some(v) => match crate::engine::time::parse_instant(&v.value) {
                    Ok(t) => Some(t),
                    Err(message) => {
                        self.error(
                            &v.referenced,
                            format!("{ctx}: at: {message}"),
                            Some("'at' is the instant the test decides at".into()),
                        );
                        continue;
                    }
                },
                None => None,
            };
            let identity = match &test.identity {
                None => None,
                Some(i) => match &i.value.invalid {
                    Some(code) => match crate::engine::who::Invalid::parse(&code.value) {
                        Some(why) => Some(Err(why)),
                        None => {
                            let codes: Vec<&str> = crate::engine::who::Invalid::ALL
                                .iter()
                                .map(|i| i.code())
                                .collect();
                            self.error(
                                &code.referenced,
                                format!("{ctx}: identity.invalid: '{}' is no reason", code.value),
                                Some(format!("one of: {}", codes.join(", "))),
                            );
                            continue;
                        }
                    },
                    None => Some(Ok(crate::engine::who::Identity {
                        subject: "test".into(),
                        email: i.value.email.as_deref().map(crate::engine::who::fold_email),
                        groups: i.value.groups.iter().map(|g| g.as_str().into()).collect(),
                        claims: i
                            .value
                            .claims
                            .0
                            .iter()
                            .map(|(k, v)| (k.as_str().into(), vec![v.as_str().into()]))
                            .collect(),
                    })),
                },
            };
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
                at: decide_at,
                account: test
                    .account
                    .as_ref()
                    .map(|a| crate::engine::account::fold(&a.value)),
                identity,
            });
        }
        out
    }
}
