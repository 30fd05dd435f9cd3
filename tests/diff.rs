//! `netwarden diff` as the real binary: a realistic pull request's edits
//! (a new branch office, a narrowed VPN, a wider trusted proxy, a reordered
//! rule, a renamed network), each with the exit status a pipeline reads
//! (0 same, 3 narrower, 4 wider, 1 invalid) and a report a reviewer can
//! read; `--git` against a revision.

use crate::support::{repo, run};

fn example() -> String {
    std::fs::read_to_string(repo("policies/example.yaml")).expect("example")
}

/// Writes `old` and `new` (with the example's network file beside them)
/// and runs `diff` on them.
fn diff(old: &str, new: &str, extra: &[&str]) -> (i32, String, String) {
    let dir = tempfile::tempdir().expect("dir");
    std::fs::create_dir(dir.path().join("networks")).expect("dir");
    std::fs::copy(
        repo("policies/networks/vpn-extra.txt"),
        dir.path().join("networks/vpn-extra.txt"),
    )
    .expect("network file");
    let (a, b) = (dir.path().join("old.yaml"), dir.path().join("new.yaml"));
    std::fs::write(&a, old).expect("old");
    std::fs::write(&b, new).expect("new");
    let mut args = vec!["diff", a.to_str().expect("path"), b.to_str().expect("path")];
    args.extend_from_slice(extra);
    run(&args)
}

#[test]
fn each_edit_of_a_pull_request_says_whether_it_opens_the_door() {
    let old = example();
    let cases: [(&str, String, i32, &str); 5] = [
        (
            "a new branch office",
            old.replace(
                "office: [203.0.113.0/24, \"2001:db8:10::/48\"]",
                "office: [203.0.113.0/24, 198.18.0.0/23, \"2001:db8:10::/48\"]",
            ),
            4,
            "198.18.0.0/23 (512 IPv4 addresses)",
        ),
        (
            "a narrowed VPN",
            old.replace("cidrs: [198.51.100.0/24]", "cidrs: [198.51.100.0/25]"),
            3,
            "now denied:\n  198.51.100.128/25 (128 IPv4 addresses)",
        ),
        (
            "a wider trusted proxy",
            old.replace(
                "load_balancers: [10.0.0.0/28]",
                "load_balancers: [10.0.0.0/16]",
            ),
            4,
            "65520 IPv4 more addresses may say who the client is",
        ),
        (
            "a renamed network",
            old.replace("guest_wifi", "guest_network"),
            0,
            "no change in who gets in",
        ),
        (
            "a rule renamed",
            old.replace("name: static", "name: assets")
                .replace("expect: allow, rule: static", "expect: allow, rule: assets"),
            0,
            "same decision, other rule:",
        ),
    ];
    for (what, new, code, needle) in cases {
        let (got, out, err) = diff(&old, &new, &[]);
        assert_eq!(got, code, "{what}: {out}{err}");
        assert!(out.contains(needle), "{what}: {out}");
    }
}

#[test]
fn markdown_and_json_say_the_same_and_an_invalid_policy_exits_1() {
    let old = example();
    let new = old.replace(
        "cidrs: [198.51.100.0/24]",
        "cidrs: [198.51.100.0/24, 192.0.2.128/25]",
    );
    let (code, md, _) = diff(&old, &new, &["--format", "markdown"]);
    assert_eq!(code, 4);
    assert!(md.starts_with("### netwarden diff: WIDER"), "{md}");
    assert!(
        md.contains("#### now allowed\n\n| addresses | before | after | requests |"),
        "{md}"
    );
    assert!(md.contains("192.0.2.128/25"), "{md}");
    let (code, json, _) = diff(&old, &new, &["--format", "json"]);
    assert_eq!(code, 4);
    let v: serde_json::Value = serde_json::from_str(&json).expect("json");
    assert_eq!(v["verdict"], "wider");
    assert!(
        v["changes"]
            .as_array()
            .expect("changes")
            .iter()
            .any(|c| c["kind"] == "now_allowed" && c["addresses"][0] == "192.0.2.128/25"),
        "{v}"
    );
    // A policy that does not load is an error, never a verdict.
    let (code, _, err) = diff(&old, "version: 1\nrules: [", &[]);
    assert_eq!(code, 1, "{err}");
}

#[test]
fn git_compares_the_working_copy_with_a_revision() {
    let dir = tempfile::tempdir().expect("dir");
    let git = |args: &[&str]| {
        let ok = std::process::Command::new("git")
            .arg("-C")
            .arg(dir.path())
            .args(args)
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@example.invalid")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@example.invalid")
            .output()
            .expect("git runs");
        assert!(
            ok.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&ok.stderr)
        );
    };
    git(&["init", "-q"]);
    let policy = dir.path().join("policy.yaml");
    let text = "version: 1\nnetworks:\n  office: [203.0.113.0/24]\nrules:\n  - { name: console, allow_from: [office] }\n";
    std::fs::write(&policy, text).expect("write");
    git(&["add", "policy.yaml"]);
    git(&["commit", "-q", "-m", "first"]);
    std::fs::write(&policy, text.replace("203.0.113.0/24", "203.0.112.0/23")).expect("edit");
    let (code, out, err) = run(&["diff", "--git", "HEAD", policy.to_str().expect("path")]);
    assert_eq!(code, 4, "{out}{err}");
    assert!(out.contains("203.0.112.0/24 (256 IPv4 addresses)"), "{out}");
    assert!(out.contains("policy.yaml@HEAD"), "{out}");
    // A revision that does not exist is a bad argument.
    let (code, _, err) = run(&[
        "diff",
        "--git",
        "no-such-rev",
        policy.to_str().expect("path"),
    ]);
    assert_eq!(code, 2, "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_logs_what_it_changes_for_any_request() {
    use crate::support::proxy::{Netwarden, Upstream, admin};
    let up = Upstream::start().await;
    let text = "version: 1\nnetworks:\n  office: [127.0.0.0/24]\nrules:\n  - { name: console, allow_from: [office] }\n";
    let nw = Netwarden::in_front_of(text, &up);
    std::fs::write(
        nw.policy_path(),
        text.replace("[127.0.0.0/24]", "[127.0.0.0/24, 198.18.0.0/23]"),
    )
    .expect("edit");
    nw.signal("HUP");
    let line = nw.wait_log(|l| l["event"] == "policy_reloaded");
    assert_eq!(line["access"], "wider", "{line}");
    assert_eq!(line["now_allowed"], 1, "{line}");
    assert!(
        line["first"]
            .as_str()
            .is_some_and(|f| f.contains("now allowed 198.18.0.0/23")),
        "{line}"
    );
    let (code, policy) = admin(&nw, "GET", "/policy").await;
    assert_eq!(code, 200);
    assert_eq!(policy["last_diff"]["access"], "wider", "{policy}");
    assert_eq!(policy["last_diff"]["generation"], 2, "{policy}");
}
