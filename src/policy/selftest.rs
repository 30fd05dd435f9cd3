//! A policy's own `tests:`: each is decided by the engine against the
//! compiled policy, and a policy whose tests fail is invalid.

use std::net::IpAddr;
use std::path::Path;

use super::Policy;
use super::diagnostics::{Collector, Diagnostic, Severity};
use crate::engine::{Action, ClientSource, RequestFacts, decide};

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
}

/// Runs every test; returns one error per failing test.
pub fn run(policy: &Policy, tests: &[PolicyTest], file: &Path, src: &str) -> Vec<Diagnostic> {
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
        };
        let d = decide(policy, &facts);
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
            Some("fix the policy, or the test if the policy is right".into()),
        );
    }
    c.diagnostics
}
