//! Policy text: YAML parsing (serde-saphyr with alias and size budgets),
//! compilation and the policy's own tests. A policy is written by
//! operators, not attackers, but a malformed one must give diagnostics,
//! never a panic or a hang. Network files are resolved against a directory
//! that does not exist.
#![no_main]

use std::net::IpAddr;
use std::path::Path;

use http::HeaderMap;
use libfuzzer_sys::fuzz_target;
use netwarden::engine::{ClientSource, RequestFacts, decide};
use netwarden::policy;

fuzz_target!(|text: &str| {
    let Ok(loaded) = policy::load_str(text, Path::new("/nonexistent-netwarden-fuzz/policy.yaml"))
    else {
        return;
    };
    // A policy that loads decides every request without panicking.
    let headers = HeaderMap::new();
    for (ip, method, path) in [
        ("192.0.2.1", "GET", "/"),
        ("2001:db8::1", "POST", "/login"),
        ("10.1.2.3", "GET", "/admin/../static/%2e%2e/x"),
    ] {
        let peer: IpAddr = ip.parse().expect("address");
        let d = decide(
            loaded.policy.ruleset(),
            &RequestFacts {
                client: ClientSource::Peer {
                    peer,
                    headers: &headers,
                },
                method,
                host: Ok(Some("console.example.com")),
                path,
                now: netwarden::engine::time::Timestamp::UNIX_EPOCH,
                account: netwarden::engine::AccountFact::Unread,
                identity: netwarden::engine::who::IdentityFact::Missing,
            },
        );
        let _ = d.explanation().to_string();
    }
});
