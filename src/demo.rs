//! `netwarden demo`: the example policy, embedded in the binary, deciding a
//! handful of requests that show what the guard does. Nothing to set up.

use std::fmt::Write as _;
use std::net::IpAddr;

use crate::engine::{ClientSource, RequestFacts, decide};
use crate::policy::{self, LoadError};

/// The example policy and the network file it references.
pub const EXAMPLE_POLICY: &str = include_str!("../policies/example.yaml");
pub const EXAMPLE_VPN_FILE: &str = include_str!("../policies/networks/vpn-extra.txt");

/// A sample request: what it stands for, peer, forwarded-for, method, path.
struct Sample {
    who: &'static str,
    peer: &'static str,
    xff: Option<&'static str>,
    method: &'static str,
    path: &'static str,
}

const SAMPLES: &[Sample] = &[
    Sample {
        who: "operator in the Tokyo office",
        peer: "203.0.113.7",
        xff: None,
        method: "POST",
        path: "/login",
    },
    Sample {
        who: "operator on the VPN",
        peer: "198.51.100.23",
        xff: None,
        method: "POST",
        path: "/api/session",
    },
    Sample {
        who: "laptop on the office guest Wi-Fi",
        peer: "203.0.113.200",
        xff: None,
        method: "POST",
        path: "/login",
    },
    Sample {
        who: "operator at home, VPN forgotten",
        peer: "192.0.2.44",
        xff: None,
        method: "POST",
        path: "/login",
    },
    Sample {
        who: "same, opening a customer page",
        peer: "192.0.2.44",
        xff: None,
        method: "GET",
        path: "/customers/1042",
    },
    Sample {
        who: "anyone, loading the stylesheet",
        peer: "192.0.2.44",
        xff: None,
        method: "GET",
        path: "/static/app.css",
    },
    Sample {
        who: "path trick through static assets",
        peer: "192.0.2.44",
        xff: None,
        method: "GET",
        path: "/static/%2e%2e/customers",
    },
    Sample {
        who: "encoded slash (rejected, 400)",
        peer: "192.0.2.44",
        xff: None,
        method: "GET",
        path: "/static%2F..%2Fcustomers",
    },
    Sample {
        who: "office user behind the load balancer",
        peer: "10.0.0.5",
        xff: Some("203.0.113.7"),
        method: "POST",
        path: "/login",
    },
    Sample {
        who: "outsider spoofing an office address",
        peer: "192.0.2.44",
        xff: Some("203.0.113.7"),
        method: "POST",
        path: "/login",
    },
];

/// Loads the embedded example policy (from a temporary directory, so that its
/// `file:` reference resolves) and decides the samples; returns the report.
pub fn run() -> Result<String, LoadError> {
    let dir = std::env::temp_dir().join(format!("netwarden-demo-{}", std::process::id()));
    let io = |source| LoadError::Io {
        path: dir.clone(),
        source,
    };
    std::fs::create_dir_all(dir.join("networks")).map_err(io)?;
    std::fs::write(dir.join("networks/vpn-extra.txt"), EXAMPLE_VPN_FILE).map_err(io)?;
    let path = dir.join("example.yaml");
    std::fs::write(&path, EXAMPLE_POLICY).map_err(io)?;
    let loaded = policy::load(&path);
    let _ = std::fs::remove_dir_all(&dir);
    let loaded = loaded?;

    let mut out = String::new();
    let _ = writeln!(
        out,
        "netwarden demo: the example policy (policies/example.yaml) deciding sample requests\n\
         networks: office 203.0.113.0/24 minus guest Wi-Fi 203.0.113.128/25, VPN 198.51.100.0/24;\n\
         load balancers 10.0.0.0/8 are trusted to send X-Forwarded-For.\n"
    );
    for s in SAMPLES {
        // PANIC SAFETY: the sample addresses above are literals in canonical form.
        let peer: IpAddr = s.peer.parse().expect("sample peer is a valid address");
        let headers: Vec<(&str, &str)> =
            s.xff.map(|v| ("x-forwarded-for", v)).into_iter().collect();
        let facts = RequestFacts {
            client: ClientSource::Peer {
                peer,
                headers: &headers,
            },
            method: s.method,
            host: Some("console.example.com"),
            path: s.path,
        };
        let d = decide(&loaded.policy, &facts);
        let via = match s.xff {
            Some(x) => format!("{} (X-Forwarded-For: {x})", s.peer),
            None => s.peer.to_string(),
        };
        let verdict = match (d.action, d.path.is_none(), d.is_blocked_login()) {
            (_, true, _) => "REJECT 400".to_string(),
            (crate::engine::Action::Deny, _, true) => "DENY   (blocked login attempt)".to_string(),
            (a, _, _) => a.as_str().to_uppercase(),
        };
        let _ = writeln!(
            out,
            "{}\n  {} {} from {via}\n  -> {verdict}: {}\n",
            s.who,
            s.method,
            s.path,
            d.explanation()
        );
    }
    let _ = writeln!(
        out,
        "Try your own: netwarden explain --policy policies/example.yaml --ip 192.0.2.1 --method POST --path /login"
    );
    Ok(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn demo_shows_allowed_denied_and_rejected_requests() {
        let out = super::run().expect("embedded policy is valid");
        assert!(
            out.contains(
                "operator in the Tokyo office\n  POST /login from 203.0.113.7\n  -> ALLOW"
            ),
            "{out}"
        );
        assert!(out.contains("laptop on the office guest Wi-Fi\n  POST /login from 203.0.113.200\n  -> DENY   (blocked login attempt)"), "{out}");
        assert!(out.contains("encoded slash (rejected, 400)\n  GET /static%2F..%2Fcustomers from 192.0.2.44\n  -> REJECT 400"), "{out}");
        assert!(out.contains("outsider spoofing an office address\n  POST /login from 192.0.2.44 (X-Forwarded-For: 203.0.113.7)\n  -> DENY"), "{out}");
    }
}
