//! The operator CLI, run as the real binary: `check` and `explain`.

use crate::support;

use support::{repo, run, run_within};

fn example() -> String {
    repo("policies/example.yaml").display().to_string()
}

#[test]
fn check_accepts_the_example_policy() {
    let (code, out, err) = run(&["check", "--policy", &example()]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(": ok: 5 network(s), 4 rule(s), 12 test(s) passed, 0 warning(s)"),
        "{out}"
    );
}

#[test]
fn check_lists_every_problem_with_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.yaml");
    std::fs::write(
        &policy,
        "version: 1\nnetworks:\n  office: [10.0.0.1/8]\nrules:\n  - name: login\n    allow_from: [offce]\n  - { name: login, action: deny }\ndefault: allow\n",
    )
    .unwrap();
    let (code, out, err) = run(&["check", "--policy", policy.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}{err}");
    let p = policy.display();
    for expected in [
        format!("{p}:3:12: error: '10.0.0.1/8' has host bits set"),
        "  help: did you mean '10.0.0.0/8'? (or '10.0.0.1/32' for one address)".to_string(),
        format!("{p}:6:18: error: rule 'login': unknown network 'offce'"),
        "  help: did you mean 'office'?".to_string(),
        format!("{p}:7:13: error: duplicate rule name 'login' (first at line 5)"),
        format!("{p}:8:10: warning: 'default: allow'"),
    ] {
        assert!(err.contains(&expected), "missing {expected:?} in:\n{err}");
    }
    assert!(
        err.contains("is invalid: 3 error(s), 1 warning(s)"),
        "{err}"
    );
    // 'office' is what 'offce' misspells: no "not used, remove it" on top.
    assert!(!err.contains("not used"), "{err}");
    // Only the offending lines are echoed, never the whole file.
    assert!(!err.contains("version: 1"), "{err}");
}

#[test]
fn check_fails_on_a_failing_policy_test() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.yaml");
    std::fs::write(
        &policy,
        "version: 1\nnetworks:\n  office: [203.0.113.0/24]\nrules:\n  - { name: all, allow_from: [office] }\ntests:\n  - { ip: 192.0.2.1, expect: allow }\n",
    )
    .unwrap();
    let (code, _, err) = run(&["check", "--policy", policy.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(
        err.contains(":7:5: error: test 1 failed: GET / expected allow, got deny by rule 'all'"),
        "{err}"
    );
}

#[test]
fn check_on_a_missing_file_fails_closed() {
    let (code, _, err) = run(&["check", "--policy", "/nonexistent/policy.yaml"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("cannot read policy /nonexistent/policy.yaml"),
        "{err}"
    );
}

/// Regression: `/dev/zero` was read until memory ran out, and a named pipe
/// blocked `check` forever (as a policy, and as a network file).
#[test]
fn check_refuses_devices_and_pipes_without_reading_them() {
    let limit = std::time::Duration::from_secs(20);
    let (code, _, err) = run_within(&["check", "--policy", "/dev/zero"], limit);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("cannot read policy /dev/zero: a device or socket, not a regular file"),
        "{err}"
    );

    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("policy.yaml");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let (code, _, err) = run_within(&["check", "--policy", fifo.to_str().unwrap()], limit);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("a named pipe, not a regular file"), "{err}");

    let policy = dir.path().join("zero.yaml");
    std::fs::write(
        &policy,
        "version: 1\nnetworks:\n  office: { file: /dev/zero }\nrules:\n  - { name: all, paths: [\"/**\"], allow_from: [office] }\n",
    )
    .unwrap();
    let (code, out, err) = run_within(&["check", "--policy", policy.to_str().unwrap()], limit);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains(&format!(
            "{}:3:19: error: network 'office': cannot read '/dev/zero': a device or socket, not a regular file",
            policy.display()
        )),
        "{err}"
    );
}

#[test]
fn explain_json_has_the_decision_fields() {
    let (code, out, err) = run(&[
        "explain",
        "--policy",
        &example(),
        "--ip",
        "203.0.113.200",
        "--method",
        "POST",
        "--path",
        "/login",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("one JSON object");
    assert_eq!(v["decision"], "deny");
    assert_eq!(v["rule"], "login");
    assert_eq!(v["client_ip"], "203.0.113.200");
    assert_eq!(v["blocked_login"], true);
    assert_eq!(
        v["client_networks"],
        serde_json::json!(["office", "guest_wifi"])
    );
    assert!(
        v["reason"]
            .as_str()
            .unwrap()
            .contains("none of the networks allowed by rule 'login'")
    );
}

#[test]
fn explain_text_traces_the_proxy_chain_and_each_rule() {
    let (code, out, err) = run(&[
        "explain",
        "--policy",
        &example(),
        "--peer",
        "10.0.0.5",
        "--header",
        "X-Forwarded-For: 203.0.113.7, 10.0.0.9",
        "--method",
        "POST",
        "--path",
        "/login",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("decision: allow\nrule:     login"), "{out}");
    assert!(
        out.contains("10.0.0.9                                 trusted proxy, skipped"),
        "{out}"
    );
    assert!(
        out.contains("203.0.113.7                              the client"),
        "{out}"
    );
    assert!(
        out.contains("1. health   skipped: method does not match"),
        "{out}"
    );
    assert!(out.contains("3. login    DECIDES: allow"), "{out}");
    assert!(out.contains("4. console  not reached"), "{out}");
}

#[test]
fn explain_bad_arguments_exit_2() {
    for args in [
        vec!["explain", "--policy", "x.yaml"],
        vec!["explain", "--policy", "x.yaml", "--ip", "127.1"],
        vec![
            "explain", "--policy", "x.yaml", "--ip", "1.2.3.4", "--peer", "10.0.0.1",
        ],
        vec![
            "explain", "--policy", "x.yaml", "--peer", "10.0.0.1", "--header", "no colon",
        ],
    ] {
        let (code, _, err) = run(&args);
        assert_eq!(code, 2, "{args:?}: {err}");
    }
}

#[test]
fn explain_exits_0_for_a_denial() {
    let (code, out, _) = run(&[
        "explain",
        "--policy",
        &example(),
        "--ip",
        "192.0.2.1",
        "--path",
        "/orders",
    ]);
    assert_eq!(code, 0);
    assert!(out.starts_with("decision: deny\n"), "{out}");
}
