//! Report-only rules and policies: decided and logged, never enforced.

use crate::support;

use support::proxy::{Netwarden, Upstream, post};
use support::run;

const RULE_REPORT: &str = "version: 1
networks:
  office: [127.0.0.1]
rules:
  - { name: tighten_login, paths: [/login], methods: [POST], login: true, allow_from: [office], mode: report }
  - { name: console, action: allow }
";

#[tokio::test]
async fn a_report_only_rule_logs_its_would_be_denial_and_enforces_nothing() {
    let up = Upstream::start().await;
    let nw = Netwarden::in_front_of(RULE_REPORT, &up);
    let r = post("127.0.0.2", nw.addr("http"), "/login", &[]).await;
    assert_eq!(r.status, 200, "report-only never blocks");
    assert_eq!(up.seen().len(), 1);
    let d = nw.wait_log(|v| v["event"] == "decision");
    assert_eq!(d["rule"], "console");
    assert_eq!(d["action"], "allow");
    assert_eq!(d["enforced"], true);
    assert_eq!(d["would_deny"], true);
    assert_eq!(d["report_rule"], "tighten_login");
    let b = nw.wait_log(|v| v["event"] == "login_blocked");
    assert_eq!(b["enforced"], false);
    assert_eq!(b["rule"], "tighten_login");
    // From the office the report rule would allow: no would-be denial.
    let r = post("127.0.0.1", nw.addr("http"), "/login", &[]).await;
    assert_eq!(r.status, 200);
    let d = nw.wait_log(|v| v["event"] == "decision" && v["client.address"] == "127.0.0.1");
    assert!(d.get("would_deny").is_none(), "{d}");
}

#[tokio::test]
async fn a_report_only_policy_forwards_everything_and_logs_what_it_would_do() {
    let up = Upstream::start().await;
    let policy = "version: 1
mode: report
networks:
  office: [127.0.0.1]
rules:
  - { name: login, paths: [/login], methods: [POST], login: true, allow_from: [office] }
  - { name: console, allow_from: [office] }
";
    let nw = Netwarden::in_front_of(policy, &up);
    let r = post("127.0.0.2", nw.addr("http"), "/login", &[]).await;
    assert_eq!(r.status, 200);
    let d = nw.wait_log(|v| v["event"] == "decision");
    assert_eq!(
        (d["action"].as_str(), d["enforced"].as_bool()),
        (Some("deny"), Some(false))
    );
    assert_eq!(d["http.response.status_code"], 200);
    let b = nw.wait_log(|v| v["event"] == "login_blocked");
    assert_eq!(b["enforced"], false);
    // Path rejections are enforced even so.
    let r = support::proxy::get("127.0.0.2", nw.addr("http"), "/a%2Fb", &[]).await;
    assert_eq!(r.status, 400);
    assert_eq!(up.seen().len(), 1);
}

#[test]
fn explain_shows_the_would_be_denial() {
    let dir = tempfile::tempdir().expect("temp dir");
    let p = dir.path().join("p.yaml");
    std::fs::write(&p, RULE_REPORT).expect("write");
    let path = p.to_str().expect("path");
    let (code, out, err) = run(&[
        "explain",
        "--policy",
        path,
        "--ip",
        "192.0.2.1",
        "--method",
        "POST",
        "--path",
        "/login",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(
        (v["decision"].as_str(), v["rule"].as_str()),
        (Some("allow"), Some("console"))
    );
    assert_eq!(
        (v["would_deny"].as_bool(), v["report_rule"].as_str()),
        (Some(true), Some("tighten_login"))
    );
    let (_, text, _) = run(&[
        "explain",
        "--policy",
        path,
        "--ip",
        "192.0.2.1",
        "--method",
        "POST",
        "--path",
        "/login",
    ]);
    assert!(
        text.contains("report:   report-only rule 'tighten_login' would deny"),
        "{text}"
    );
}

#[test]
fn check_warns_about_report_only_rules_and_policies() {
    let dir = tempfile::tempdir().expect("temp dir");
    let p = dir.path().join("p.yaml");
    std::fs::write(
        &p,
        RULE_REPORT.replace("version: 1\n", "version: 1\nmode: report\n"),
    )
    .expect("write");
    let (code, out, err) = run(&["check", "--policy", p.to_str().expect("path")]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("2 warning(s)"), "{out}");
    assert!(err.contains("warning: the policy is report-only"), "{err}");
    assert!(
        err.contains("warning: rule 'tighten_login' is report-only"),
        "{err}"
    );
}
