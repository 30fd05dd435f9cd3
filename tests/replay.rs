//! `netwarden replay` on a log recorded from a real `serve` run.

use crate::support;

use std::io::Write;

use support::proxy::{Netwarden, Upstream, get, post};
use support::run;

const RUNNING: &str = "version: 1
networks:
  office: [127.0.0.1]
rules:
  - { name: login, paths: [/login], methods: [POST], login: true, allow_from: [office] }
  - { name: console, allow_from: [office] }
";

/// Lets 127.0.0.2 in, and closes /admin to everyone.
const CANDIDATE: &str = "version: 1
networks:
  office: [127.0.0.1, 127.0.0.2]
rules:
  - { name: no_admin, paths: [\"/admin/**\"], action: deny }
  - { name: login, paths: [/login], methods: [POST], login: true, allow_from: [office] }
  - { name: console, allow_from: [office] }
";

#[tokio::test]
async fn replay_reports_what_a_candidate_would_change() {
    let up = Upstream::start().await;
    let nw = Netwarden::in_front_of(RUNNING, &up);
    let addr = nw.addr("http");
    // Known traffic: 3 allowed from the office (one to /admin), 2 denied from .2, 1 from .3.
    assert_eq!(
        get("127.0.0.1", addr, "/orders?page=2", &[]).await.status,
        200
    );
    assert_eq!(
        get("127.0.0.1", addr, "/admin/users", &[]).await.status,
        200
    );
    assert_eq!(post("127.0.0.1", addr, "/login", &[]).await.status, 200);
    assert_eq!(post("127.0.0.2", addr, "/login", &[]).await.status, 403);
    assert_eq!(get("127.0.0.2", addr, "/orders", &[]).await.status, 403);
    assert_eq!(get("127.0.0.3", addr, "/orders", &[]).await.status, 403);
    let deadline = std::time::Instant::now() + support::proxy::WAIT;
    while nw
        .logs()
        .iter()
        .filter(|v| v["event"] == "decision")
        .count()
        < 6
    {
        assert!(
            std::time::Instant::now() < deadline,
            "decision lines missing"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("decisions.log");
    let mut lines = nw.raw_logs();
    lines.push("this is not JSON".to_string());
    lines.push("{\"event\":\"decision\",\"client.address\":\"127.0.0.1\"}".to_string());
    std::fs::write(&log, lines.join("\n") + "\n").expect("write log");
    for (name, text) in [("running.yaml", RUNNING), ("candidate.yaml", CANDIDATE)] {
        std::fs::write(dir.path().join(name), text).expect("write policy");
    }
    let p = |n: &str| dir.path().join(n).display().to_string();
    let log_s = log.display().to_string();

    // The log never carries the query string.
    assert!(
        !std::fs::read_to_string(&log)
            .expect("read")
            .contains("page=2")
    );

    let (code, out, err) = run(&["replay", "--policy", &p("candidate.yaml"), &log_s, "--json"]);
    assert_eq!(code, 1, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(v["replayed"], 6);
    assert_eq!(v["allow_to_deny"], 1);
    assert_eq!(v["deny_to_allow"], 2);
    assert_eq!(v["skipped"]["incomplete"], 1);
    assert!(
        v["skipped"]["not_decisions"].as_u64().expect("count") >= 3,
        "{v}"
    );
    assert_eq!(v["by_rule"]["no_admin"], 1);
    assert_eq!(v["by_network"]["office"], 2);
    assert_eq!(v["examples"]["allow_to_deny"][0]["path"], "/admin/users");

    // The same policy changes nothing: exit 0, a gate for CI.
    let (code, out, _) = run(&["replay", "--policy", &p("running.yaml"), &log_s]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("no decision changes"), "{out}");

    // Deciding the baseline again gives the same changes; .gz and stdin work too.
    let gz = dir.path().join("decisions.log.gz");
    let mut enc = flate2::write::GzEncoder::new(
        std::fs::File::create(&gz).expect("create"),
        flate2::Compression::fast(),
    );
    enc.write_all(&std::fs::read(&log).expect("read"))
        .expect("compress");
    enc.finish().expect("finish");
    let (code, out, err) = run(&[
        "replay",
        "--policy",
        &p("candidate.yaml"),
        "--baseline",
        &p("running.yaml"),
        &gz.display().to_string(),
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(
        out.contains("allow -> deny: 1\ndeny -> allow: 2\n"),
        "{out}"
    );
    // Issue 23: a change that no network decided says why, not "-".
    assert!(!out.contains("  -\n"), "{out}");
    assert!(out.contains("(no network: "), "{out}");

    // Errors exit 2.
    let (code, _, _) = run(&[
        "replay",
        "--policy",
        &p("candidate.yaml"),
        "/nonexistent.log",
    ]);
    assert_eq!(code, 2);
    let (code, _, _) = run(&["replay", "--policy", "/nonexistent.yaml", &log_s]);
    assert_eq!(code, 2);
}

#[test]
fn replay_decides_each_line_at_its_own_timestamp() {
    // Two logged sign-ins from the VPN, allowed then, one on a Monday
    // morning in Tokyo and one on a Saturday. A candidate that allows the
    // VPN only on weekdays changes the Saturday one only.
    let line = |ts: &str| {
        format!(
            "{{\"timestamp\":\"{ts}\",\"event\":\"decision\",\"client.address\":\"198.51.100.7\",\"http.request.method\":\"POST\",\"url.path\":\"/login\",\"action\":\"allow\",\"rule\":\"login\"}}"
        )
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("decisions.log");
    std::fs::write(
        &log,
        format!(
            "{}\n{}\n",
            line("2026-11-30T01:00:00.000000Z"),
            line("2026-12-05T01:00:00.000000Z")
        ),
    )
    .expect("write log");
    let candidate = dir.path().join("candidate.yaml");
    std::fs::write(
        &candidate,
        "version: 1
networks:
  vpn: [198.51.100.0/24]
rules:
  - name: login
    paths: [/login]
    login: true
    allow_from: [vpn]
    when: { days: [mon-fri], hours: \"08:00-20:00\", time_zone: Asia/Tokyo }
  - { name: closed, action: deny }
",
    )
    .expect("write policy");
    let (code, out, err) = run(&[
        "replay",
        "--policy",
        &candidate.display().to_string(),
        &log.display().to_string(),
        "--json",
    ]);
    assert_eq!(code, 1, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(v["replayed"], 2, "{v}");
    assert_eq!(v["allow_to_deny"], 1, "{v}");
    assert_eq!(v["by_rule"]["closed"], 1, "{v}");
}
