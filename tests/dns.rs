//! DNS names in networks (`dns_names:`) through the real binary, against a
//! DNS server on loopback whose answers change, time out and say NXDOMAIN.

use crate::support::dns::{Answer, DnsServer};
use crate::support::proxy::{Netwarden, Upstream, admin, get};

const NAME: &str = "osaka.branch.example.jp";

fn policy(dns: &DnsServer, state: &std::path::Path, extra_dns: &str) -> String {
    format!(
        "version: 1
feeds: {{ state_dir: \"{}\" }}
dns: {{ servers: [\"{}\"], timeout: 1s, nxdomain_grace: 1s{extra_dns} }}
networks:
  office: [127.0.0.9]
  osaka: {{ dns_names: [Osaka.Branch.Example.JP] }}
rules:
  - {{ name: console, allow_from: [office, osaka] }}
",
        state.display(),
        dns.addr
    )
}

fn start(text: &str, up: &Upstream) -> Netwarden {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("policy.yaml");
    std::fs::write(&path, text).expect("policy");
    Netwarden::start_at(
        &path,
        &["--listen", "127.0.0.1:0", "--upstream", &up.url()],
        dir,
    )
}

async fn status(nw: &Netwarden, from: &str) -> u16 {
    get(from, nw.addr("http"), "/", &[]).await.status
}

async fn refresh(nw: &Netwarden) -> serde_json::Value {
    let (code, body) = admin(nw, "POST", "/feeds/refresh").await;
    assert_eq!(code, 200, "{body}");
    body["dns_names"][0].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_branch_on_dynamic_dns_is_followed_kept_through_failures_and_emptied_after_nxdomain() {
    let dns = DnsServer::start().await;
    dns.set(
        NAME,
        Answer::Addresses(vec!["127.0.0.2".parse().expect("ip")], 60),
    );
    let up = Upstream::start().await;
    let state = tempfile::tempdir().expect("state");
    let text = policy(&dns, state.path(), "");
    let nw = start(&text, &up);

    // Resolved before the first request.
    assert_eq!(status(&nw, "127.0.0.2").await, 200);
    assert_eq!(status(&nw, "127.0.0.3").await, 403);
    assert_eq!(status(&nw, "127.0.0.9").await, 200);
    assert!(dns.asked().iter().all(|n| n == NAME), "{:?}", dns.asked());
    let (_, p) = admin(&nw, "GET", "/policy").await;
    assert_eq!(p["dns_names"][0]["name"], NAME);
    assert_eq!(p["dns_names"][0]["addresses"], 1);

    // The branch's address changes (A and AAAA).
    dns.set(
        NAME,
        Answer::Addresses(
            vec!["127.0.0.3".parse().expect("ip"), "::1".parse().expect("ip")],
            60,
        ),
    );
    let r = refresh(&nw).await;
    assert_eq!(r["outcome"], "updated", "{r}");
    assert_eq!(status(&nw, "127.0.0.3").await, 200);
    assert_eq!(status(&nw, "127.0.0.2").await, 403);
    let line = nw.wait_log(|v| v["event"] == "dns_updated");
    assert_eq!(
        line["changes"],
        "+2 -1 (+127.0.0.3/32, +::1/128, -127.0.0.2/32)"
    );
    assert_eq!(nw.terminate(), 0);

    // A restart with the resolver silent starts from the last answer.
    dns.set(NAME, Answer::Silent);
    let nw = start(&text, &up);
    assert_eq!(status(&nw, "127.0.0.3").await, 200);
    let r = refresh(&nw).await;
    assert_eq!(r["outcome"], "failed", "{r}");
    assert_eq!(r["problem"]["reason"], "timeout", "{r}");
    dns.set(NAME, Answer::ServFail);
    assert_eq!(refresh(&nw).await["outcome"], "failed");
    assert_eq!(status(&nw, "127.0.0.3").await, 200);
    let ready = get("127.0.0.1", nw.addr("admin"), "/readyz", &[]).await;
    assert!(
        ready
            .body
            .contains("degraded: 1 published list keeps its last good copy"),
        "{}",
        ready.body
    );

    // NXDOMAIN: kept through the grace, then the name holds nothing.
    dns.set(NAME, Answer::NxDomain);
    let r = refresh(&nw).await;
    assert_eq!(r["outcome"], "nxdomain", "{r}");
    // A restart during the grace does not restart it (third review): when
    // the NXDOMAIN began is kept with the answer. The resolver failing
    // after it does not stretch the grace either (second review).
    assert_eq!(nw.terminate(), 0);
    dns.set(NAME, Answer::ServFail);
    let nw = start(&text, &up);
    assert_eq!(status(&nw, "127.0.0.3").await, 200);
    tokio::time::sleep(std::time::Duration::from_millis(1_200)).await;
    // Past the grace, counted from before the restart, the name holds
    // nothing; the branch is the only client since the restart, so
    // emptying it would lock every recent admin out: the guard holds it.
    let r = refresh(&nw).await;
    assert_eq!(r["outcome"], "held", "{r}");
    assert_eq!(r["problem"]["reason"], "reload_guard", "{r}");
    assert_eq!(status(&nw, "127.0.0.3").await, 200);
    let (_, p) = admin(&nw, "GET", "/policy").await;
    assert!(p["dns_names"][0]["no_address_since"].is_string(), "{p}");
    // Once the office has been seen too, the name is emptied.
    assert_eq!(status(&nw, "127.0.0.9").await, 200);
    let r = refresh(&nw).await;
    assert_eq!(r["outcome"], "updated", "{r}");
    assert_eq!(status(&nw, "127.0.0.3").await, 403);
    // The office is untouched, and the policy still loads with an empty name.
    assert_eq!(status(&nw, "127.0.0.9").await, 200);
    let (_, p) = admin(&nw, "GET", "/policy").await;
    assert_eq!(p["dns_names"][0]["addresses"], 0);
    assert!(p["dns_names"][0]["no_address_since"].is_string(), "{p}");

    // Back again.
    dns.set(
        NAME,
        Answer::Addresses(vec!["127.0.0.4".parse().expect("ip")], 60),
    );
    assert_eq!(refresh(&nw).await["outcome"], "updated");
    assert_eq!(status(&nw, "127.0.0.4").await, 200);
    assert_eq!(nw.terminate(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_answer_at_first_start_fails_closed_and_check_uses_the_snapshot() {
    let dns = DnsServer::start().await;
    dns.set(NAME, Answer::Silent);
    let state = tempfile::tempdir().expect("state");
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("policy.yaml");
    std::fs::write(&path, policy(&dns, state.path(), "")).expect("policy");
    let p = path.to_str().expect("utf-8").to_string();
    let (code, err) = crate::support::serve_exits(&path, std::time::Duration::from_secs(20)).await;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains(&format!("{NAME}: no answer within")), "{err}");
    assert!(
        err.contains("no answer yet for osaka.branch.example.jp"),
        "{err}"
    );

    // check, with no network: the dns_snapshot stands in, and it says so.
    let text = policy(&dns, state.path(), "").replace(
        "dns_names: [Osaka.Branch.Example.JP] }",
        "dns_names: [Osaka.Branch.Example.JP], dns_snapshot: osaka.txt }",
    );
    std::fs::write(&path, text).expect("policy");
    std::fs::write(dir.path().join("osaka.txt"), "127.0.0.2\n").expect("snapshot");
    let (code, out, err) = crate::support::run(&["check", "--policy", &p]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(
            "dns 'osaka.branch.example.jp' (network osaka): 1 addresses from the snapshot"
        ),
        "{out}"
    );
    let (code, out, _) = crate::support::run(&["explain", "--policy", &p, "--ip", "127.0.0.2"]);
    assert_eq!(code, 0);
    assert!(out.contains("allow"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_dnssec_on_an_unsigned_answer_is_no_answer() {
    let dns = DnsServer::start().await;
    dns.set(
        NAME,
        Answer::Addresses(vec!["127.0.0.2".parse().expect("ip")], 60),
    );
    let state = tempfile::tempdir().expect("state");
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("policy.yaml");
    std::fs::write(&path, policy(&dns, state.path(), ", dnssec: true")).expect("policy");
    let (code, err) = crate::support::serve_exits(&path, std::time::Duration::from_secs(30)).await;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("DNSSEC validation failed (dnssec)"), "{err}");
    assert!(!err.contains("listening"), "{err}");
}
