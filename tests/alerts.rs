//! Alerts on blocked logins, end to end: the real binary on loopback, alert
//! receivers on loopback that answer 200, 500 then 200, 429 with
//! Retry-After, or hang.

use crate::support;

use std::collections::HashMap;
use std::time::Duration;

use support::proxy::{Netwarden, Upstream, get, post};
use support::receiver::{Answer, Receiver};

/// Sinks are appended to this; `{window}` and the rest are filled in.
fn policy(alerts: &str) -> String {
    format!(
        "version: 1
networks:
  office: [127.0.0.1]
  load_balancer: [127.0.0.9]
client_ip:
  trusted_proxies: [load_balancer]
rules:
  - {{ name: login, paths: [/login], methods: [POST], login: true, allow_from: [office] }}
  - {{ name: sso, paths: [/sso/login], login: true, mode: report, allow_from: [office] }}
  - {{ name: console, action: allow }}
alerts:
{alerts}"
    )
}

fn start(alerts: &str, env: &[(&str, &str)], up: &Upstream) -> Netwarden {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("policy.yaml");
    std::fs::write(&path, policy(alerts)).expect("write policy");
    Netwarden::start_env(
        &path,
        &["--listen", "127.0.0.1:0", "--upstream", &up.url()],
        env,
        dir,
    )
}

/// `name{labels}` -> value from `/metrics`.
async fn metrics(nw: &Netwarden) -> HashMap<String, f64> {
    let r = get("127.0.0.1", nw.addr("admin"), "/metrics", &[]).await;
    assert_eq!(r.status, 200);
    support::proxy::parse_metrics(&r.body)
}

/// Waits (bounded) until the metric reaches `at_least`; returns its value.
async fn wait_metric(nw: &Netwarden, name: &str, at_least: f64) -> f64 {
    let deadline = std::time::Instant::now() + support::proxy::WAIT;
    loop {
        let v = metrics(nw).await.get(name).copied().unwrap_or(0.0);
        if v >= at_least {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{name} stayed at {v}, expected >= {at_least}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn hmac_hex(key: &str, body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key.as_bytes());
    ring::hmac::sign(&key, body)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A blocked login carrying everything that must never reach an alert.
async fn blocked_login(nw: &Netwarden, from: &str) -> u16 {
    let req = "POST /login?token=QUERYSECRET HTTP/1.1\r\nHost: console.test\r\nConnection: close\r\n\
               Cookie: session=COOKIESECRET\r\nAuthorization: Basic QVVUSFNFQ1JFVA==\r\n\
               User-Agent: spray/1.0\r\nContent-Type: application/x-www-form-urlencoded\r\n\
               Content-Length: 24\r\n\r\npassword=BODYSECRET12345";
    let stream = support::proxy::connect_from(from, nw.addr("http")).await;
    support::proxy::exchange(stream, req.as_bytes())
        .await
        .status
}

const NEVER_SENT: [&str; 6] = [
    "QUERYSECRET",
    "COOKIESECRET",
    "QVVUSFNFQ1JFVA",
    "BODYSECRET",
    "HOOKTOKEN",
    "signing-key-1",
];

// Multi-threaded: the helpers that wait on the process block a thread,
// and the receivers must keep answering meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_attempt_alerts_each_sink_once_with_context_and_a_valid_signature() {
    let up = Upstream::start().await;
    let hook = Receiver::start(&[], Answer::Status(200)).await;
    let slack = Receiver::start(&[], Answer::Status(200)).await;
    let am = Receiver::start(&[], Answer::Status(200)).await;
    let am_url = am.url("");
    let alerts = format!(
        "  window: 1h
  sinks:
    - {{ name: ops, type: webhook, url_env: HOOK_URL, secret_env: HOOK_KEY }}
    - {{ name: chat, type: slack, url_env: SLACK_URL }}
    - {{ name: am, type: alertmanager, url: \"{am_url}\" }}
"
    );
    let hook_url = hook.url("/hooks/HOOKTOKEN");
    let slack_url = slack.url("/services/T0/B0/HOOKTOKEN");
    let nw = start(
        &alerts,
        &[
            ("HOOK_URL", &hook_url),
            ("HOOK_KEY", "signing-key-1"),
            ("SLACK_URL", &slack_url),
            ("NETWARDEN_INSTANCE", "console-pod-1"),
        ],
        &up,
    );
    assert_eq!(blocked_login(&nw, "127.0.0.2").await, 403);
    // Allowed logins and other requests alert nothing.
    assert_eq!(
        post("127.0.0.1", nw.addr("http"), "/login", &[])
            .await
            .status,
        200
    );
    assert_eq!(
        get("127.0.0.2", nw.addr("http"), "/orders", &[])
            .await
            .status,
        200
    );

    let got = hook.wait_for(1).await;
    let alert = got[0].json();
    assert_eq!(got[0].path, "/hooks/HOOKTOKEN");
    assert_eq!(alert["kind"], "attempt");
    assert_eq!(alert["attempts"], 1);
    assert_eq!(alert["enforced"], true);
    assert_eq!(alert["instance"], "console-pod-1");
    // Issue 24: each alert links its runbook section.
    assert_eq!(alert["runbook"], "docs/operations.md#blocked-sign-in");
    let a = &alert["attempt"];
    assert_eq!(a["client"]["address"], "127.0.0.2");
    assert_eq!(a["client"]["source"], "peer");
    assert_eq!(a["rule"], "login");
    assert_eq!(a["request"]["path"], "/login");
    assert_eq!(a["request"]["host"], "console.test");
    assert_eq!(a["request"]["user_agent"], "spray/1.0");
    let logged = nw.wait_log(|v| v["event"] == "login_blocked");
    assert_eq!(a["request"]["request_id"], logged["request_id"]);

    // The signature is HMAC-SHA256 of the exact body, with the key from the
    // environment.
    let sig = got[0].header("x-netwarden-signature-256").expect("signed");
    assert_eq!(
        sig,
        format!("sha256={}", hmac_hex("signing-key-1", &got[0].body))
    );
    assert_ne!(
        sig,
        format!("sha256={}", hmac_hex("another-key", &got[0].body))
    );

    let s = slack.wait_for(1).await;
    let text = s[0].json()["text"]
        .as_str()
        .expect("slack text")
        .to_string();
    assert!(
        text.contains("Blocked login attempt from 127.0.0.2 (rule login)"),
        "{text}"
    );
    let m = am.wait_for(1).await;
    assert_eq!(m[0].path, "/api/v2/alerts");
    let am_alert = &m[0].json()[0];
    assert_eq!(am_alert["labels"]["alertname"], "NetwardenBlockedLogin");
    assert_eq!(am_alert["labels"]["client"], "127.0.0.2");
    assert_eq!(am_alert["annotations"]["path"], "/login");
    assert_eq!(
        am_alert["annotations"]["runbook_url"],
        "docs/operations.md#blocked-sign-in"
    );
    assert!(
        text.ends_with("Runbook: docs/operations.md#blocked-sign-in"),
        "{text}"
    );

    // Nothing more: one alert per sink for one attempt.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        (hook.got().len(), slack.got().len(), am.got().len()),
        (1, 1, 1)
    );
    let m = metrics(&nw).await;
    assert_eq!(m["netwarden_alerts_total{kind=\"attempt\"}"], 1.0);
    for sink in ["ops", "chat", "am"] {
        assert_eq!(
            m[&format!(
                "netwarden_alert_deliveries_total{{sink=\"{sink}\",outcome=\"delivered\"}}"
            )],
            1.0
        );
    }
    // Issue 24: `GET /policy` (and so `netwarden status`) shows each sink
    // with its last delivery.
    let st = get("127.0.0.1", nw.addr("admin"), "/policy", &[]).await;
    let st: serde_json::Value = serde_json::from_str(st.body.trim()).expect("JSON");
    let sinks = st["alert_sinks"].as_array().expect("alert_sinks");
    assert_eq!(sinks.len(), 3, "{st}");
    for k in sinks {
        assert_eq!(k["last_delivery"]["outcome"], "delivered", "{st}");
        assert_eq!(k["delivered"], 1, "{st}");
    }
    assert_eq!(sinks[1]["kind"], "slack", "{st}");

    // No secret, cookie, credential, query or body in any payload, header
    // included, nor in the logs.
    let mut everything = String::new();
    for g in hook.got().iter().chain(&slack.got()).chain(&am.got()) {
        everything.push_str(&String::from_utf8_lossy(&g.body));
        for (n, v) in &g.headers {
            everything.push_str(&format!("{n}: {v}\n"));
        }
    }
    for secret in NEVER_SENT.iter().filter(|s| **s != "HOOKTOKEN") {
        assert!(!everything.contains(secret), "{secret} was sent");
    }
    let logs = nw.raw_logs().join("\n");
    for secret in NEVER_SENT {
        assert!(!logs.contains(secret), "{secret} was logged");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_from_one_client_is_one_alert_then_one_summary() {
    let up = Upstream::start().await;
    let hook = Receiver::start(&[], Answer::Status(200)).await;
    let url = hook.url("/");
    let nw = start(
        "  window: 1s\n  sinks:\n    - { name: ops, type: webhook, url_env: HOOK_URL }\n",
        &[("HOOK_URL", &url)],
        &up,
    );
    for _ in 0..6 {
        assert_eq!(blocked_login(&nw, "127.0.0.3").await, 403);
    }
    let got = hook.wait_for(2).await;
    let (first, summary) = (got[0].json(), got[1].json());
    assert_eq!(first["kind"], "attempt");
    assert_eq!(summary["kind"], "summary");
    assert_eq!(summary["attempts"], 5);
    assert_eq!(summary["key"]["by"], "client");
    assert_eq!(summary["key"]["value"], "127.0.0.3");
    assert_eq!(summary["last_attempt"]["request"]["path"], "/login");
    // The next window saw nothing: no further alert.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(hook.got().len(), 2);
    let m = metrics(&nw).await;
    assert_eq!(m["netwarden_alert_attempts_aggregated_total"], 5.0);
    assert_eq!(m["netwarden_alerts_total{kind=\"summary\"}"], 1.0);
    assert_eq!(
        m["netwarden_login_blocked_total{rule=\"login\",enforced=\"true\"}"],
        6.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storm_of_sources_is_capped_into_one_storm_summary() {
    let up = Upstream::start().await;
    let hook = Receiver::start(&[], Answer::Status(200)).await;
    let url = hook.url("/");
    // The interval is long, so that the storm summary is the one SIGTERM
    // flushes (the aggregator's tests cover the interval's end).
    let nw = start(
        "  window: 1h
  storm: { max_alerts: 2, per: 10m }
  sinks:
    - { name: ops, type: webhook, url_env: HOOK_URL }
",
        &[("HOOK_URL", &url)],
        &up,
    );
    // 30 sources behind the trusted load balancer (documentation addresses
    // in a header; every connection is loopback); source .1 tries 3 times.
    for i in 1..=30u8 {
        let times = if i == 1 { 3 } else { 1 };
        for _ in 0..times {
            let xff = format!("X-Forwarded-For: 198.51.100.{i}");
            let r = post("127.0.0.9", nw.addr("http"), "/login", &[&xff]).await;
            assert_eq!(r.status, 403);
        }
    }
    let got = hook.wait_for(2).await;
    assert_eq!(
        got[0].json()["attempt"]["client"]["address"],
        "198.51.100.1"
    );
    assert_eq!(got[0].json()["attempt"]["client"]["source"], "header");
    assert_eq!(
        got[1].json()["attempt"]["client"]["address"],
        "198.51.100.2"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(hook.got().len(), 2, "the cap holds");
    let m = metrics(&nw).await;
    assert_eq!(m["netwarden_alert_attempts_aggregated_total"], 30.0);

    let code = tokio::task::spawn_blocking(move || nw.terminate())
        .await
        .expect("joined");
    assert_eq!(code, 0);
    let got = hook.got();
    let kinds: Vec<String> = got
        .iter()
        .map(|g| g.json()["kind"].as_str().expect("kind").to_string())
        .collect();
    assert_eq!(kinds, ["attempt", "attempt", "storm"]);
    let storm = got[2].json();
    // 28 first attempts past the cap, and .1's two later ones (its summary
    // is past the cap too).
    assert_eq!(storm["attempts"], 30);
    assert_eq!(storm["sources"], 29);
    let top = storm["top_sources"].as_array().expect("top sources");
    assert_eq!(top.len(), 10);
    assert_eq!(top[0]["key"], "198.51.100.1");
    assert_eq!(top[0]["attempts"], 2);
    assert!(
        storm["summary"]
            .as_str()
            .expect("summary")
            .starts_with("Login attempt storm: 30 blocked attempts from 29 sources")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_500_is_retried_and_a_429_waits_for_retry_after() {
    let up = Upstream::start().await;
    let flaky = Receiver::start(&[Answer::Status(500)], Answer::Status(200)).await;
    let limited = Receiver::start(&[Answer::RetryAfter(2)], Answer::Status(200)).await;
    let (u1, u2) = (flaky.url("/"), limited.url("/"));
    let nw = start(
        "  sinks:
    - { name: flaky, type: webhook, url_env: FLAKY_URL }
    - { name: limited, type: webhook, url_env: LIMITED_URL }
",
        &[("FLAKY_URL", &u1), ("LIMITED_URL", &u2)],
        &up,
    );
    assert_eq!(blocked_login(&nw, "127.0.0.4").await, 403);
    let f = flaky.wait_for(2).await;
    assert_eq!(f[0].body, f[1].body, "the same alert is sent again");
    let l = limited.wait_for(2).await;
    // Without Retry-After the first retry waits at most 0.5 s.
    assert!(
        l[1].at.duration_since(l[0].at) >= Duration::from_millis(1900),
        "Retry-After: 2 was not honoured"
    );
    let m = metrics(&nw).await;
    wait_metric(
        &nw,
        "netwarden_alert_deliveries_total{sink=\"limited\",outcome=\"delivered\"}",
        1.0,
    )
    .await;
    assert_eq!(
        m["netwarden_alert_delivery_retries_total{sink=\"flaky\"}"],
        1.0
    );
    assert_eq!(
        m["netwarden_alert_delivery_retries_total{sink=\"limited\"}"],
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_receiver_is_given_up_on_while_requests_keep_flowing() {
    let up = Upstream::start().await;
    let hang = Receiver::start(&[], Answer::Hang).await;
    let url = hang.url("/");
    let nw = start(
        "  timeout: 300ms
  give_up_after: 1500ms
  sinks:
    - { name: stuck, type: webhook, url_env: HOOK_URL }
",
        &[("HOOK_URL", &url)],
        &up,
    );
    assert_eq!(blocked_login(&nw, "127.0.0.5").await, 403);
    hang.wait_for(1).await;
    // While the receiver holds the call open, requests are answered.
    for _ in 0..20 {
        assert_eq!(
            get("127.0.0.1", nw.addr("http"), "/orders", &[])
                .await
                .status,
            200
        );
        assert_eq!(
            post("127.0.0.5", nw.addr("http"), "/login", &[])
                .await
                .status,
            403
        );
    }
    wait_metric(
        &nw,
        "netwarden_alert_deliveries_total{sink=\"stuck\",outcome=\"gave_up\"}",
        1.0,
    )
    .await;
    assert!(hang.got().len() >= 2, "retried before giving up");
    let gave_up = nw.wait_log(|v| v["event"] == "alert_gave_up");
    assert_eq!(gave_up["error"], "timeout");
    let st = get("127.0.0.1", nw.addr("admin"), "/policy", &[]).await;
    let st: serde_json::Value = serde_json::from_str(st.body.trim()).expect("JSON");
    assert_eq!(st["alert_sinks"][0]["name"], "stuck", "{st}");
    assert_eq!(
        st["alert_sinks"][0]["last_delivery"]["outcome"], "gave_up",
        "{st}"
    );
    assert_eq!(st["alert_sinks"][0]["delivered"], 0, "{st}");
    hang.release();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_drops_and_counts_instead_of_waiting() {
    let up = Upstream::start().await;
    let hang = Receiver::start(&[], Answer::Hang).await;
    let url = hang.url("/");
    let nw = start(
        "  queue: 1
  timeout: 20s
  storm: { max_alerts: 100 }
  sinks:
    - { name: stuck, type: webhook, url_env: HOOK_URL }
",
        &[("HOOK_URL", &url)],
        &up,
    );
    // One alert is in the call, one in the queue; the rest cannot wait.
    for i in 1..=8u8 {
        let xff = format!("X-Forwarded-For: 198.51.100.{i}");
        assert_eq!(
            post("127.0.0.9", nw.addr("http"), "/login", &[&xff])
                .await
                .status,
            403
        );
    }
    let dropped = wait_metric(
        &nw,
        "netwarden_alert_deliveries_total{sink=\"stuck\",outcome=\"dropped\"}",
        1.0,
    )
    .await;
    assert!(dropped <= 7.0);
    // The sink's queue dropped (counted above); under load the attempt
    // queue (also 1 here) may drop some first, said as `queue_full`.
    let warn = nw.wait_log(|v| v["event"] == "alert_dropped" && v["reason"] == "sink_queue_full");
    assert_eq!(warn["level"], "WARN");
    assert!(
        nw.logs()
            .iter()
            .filter(|v| v["event"] == "alert_dropped")
            .all(|v| v["reason"] == "sink_queue_full" || v["reason"] == "queue_full"),
        "{:#?}",
        nw.logs()
    );
    hang.release();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_only_would_be_blocks_alert_marked_as_such() {
    let up = Upstream::start().await;
    let hook = Receiver::start(&[], Answer::Status(200)).await;
    let url = hook.url("/");
    let nw = start(
        "  sinks:\n    - { name: ops, type: webhook, url_env: HOOK_URL }\n",
        &[("HOOK_URL", &url)],
        &up,
    );
    // The report-only rule lets it through, and says it would have blocked.
    assert_eq!(
        get("127.0.0.6", nw.addr("http"), "/sso/login", &[])
            .await
            .status,
        200
    );
    let got = hook.wait_for(1).await;
    let a = got[0].json();
    assert_eq!(a["enforced"], false);
    assert_eq!(a["attempt"]["rule"], "sso");
    assert!(
        a["summary"]
            .as_str()
            .expect("summary")
            .starts_with("Report-only")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_flushes_pending_summaries() {
    let up = Upstream::start().await;
    let hook = Receiver::start(&[], Answer::Status(200)).await;
    let url = hook.url("/");
    let nw = start(
        "  window: 1h\n  sinks:\n    - { name: ops, type: webhook, url_env: HOOK_URL }\n",
        &[("HOOK_URL", &url)],
        &up,
    );
    for _ in 0..3 {
        assert_eq!(blocked_login(&nw, "127.0.0.7").await, 403);
    }
    hook.wait_for(1).await;
    let code = tokio::task::spawn_blocking(move || nw.terminate())
        .await
        .expect("joined");
    assert_eq!(code, 0);
    let got = hook.got();
    assert_eq!(got.len(), 2, "the pending summary was sent before exit");
    let s = got[1].json();
    assert_eq!(s["kind"], "summary");
    assert_eq!(s["attempts"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sink_whose_secret_is_missing_is_disabled_loudly_and_the_guard_runs() {
    // Two sinks: one whose variable is not set, one whose value is not a
    // URL. The guard starts (a missing notification secret must not take
    // the console down), says so in every place ops look, and never shows
    // a value.
    let up = Upstream::start().await;
    let ok = Receiver::start(&[], Answer::Status(200)).await;
    let ok_url = ok.url("/ok");
    let nw = start(
        "  window: 1h
  sinks:
    - { name: ops, type: webhook, url_env: NW_TEST_UNSET_URL }
    - { name: chat, type: slack, url_env: NW_TEST_BAD_URL }
    - { name: fine, type: webhook, url_env: NW_TEST_OK_URL }
",
        &[
            ("NW_TEST_BAD_URL", "hooks.example/SECRETPART"),
            ("NW_TEST_OK_URL", &ok_url),
        ],
        &up,
    );
    let line = nw.wait_log(|v| {
        v["event"] == "alert_sink_disabled"
            && v["detail"]
                .as_str()
                .is_some_and(|d| d.contains("NW_TEST_UNSET_URL is not set"))
    });
    assert_eq!(line["level"], "ERROR", "{line}");
    let logs = nw.raw_logs().join("\n");
    assert!(logs.contains("the URL in NW_TEST_BAD_URL"), "{logs}");
    assert!(!logs.contains("SECRETPART"), "{logs}");

    let ready = get("127.0.0.1", nw.addr("admin"), "/readyz", &[]).await;
    assert_eq!(ready.status, 200, "{ready:?}");
    assert!(ready.body.starts_with("ready\n"), "{}", ready.body);
    // Open to probes: it says where to look, not the sink or its variable.
    assert!(
        ready
            .body
            .contains("degraded: 2 alert sinks are disabled; GET /policy says which and why"),
        "{}",
        ready.body
    );
    for secret in ["SECRETPART", "NW_TEST_UNSET_URL", "'ops'"] {
        assert!(!ready.body.contains(secret), "{}", ready.body);
    }
    let status = get("127.0.0.1", nw.addr("admin"), "/policy", &[]).await;
    let v: serde_json::Value = serde_json::from_str(status.body.trim()).expect("JSON");
    assert_eq!(
        v["alert_sinks_disabled"].as_array().map(Vec::len),
        Some(2),
        "{v}"
    );
    assert_eq!(
        metrics(&nw).await.get("netwarden_alert_sinks_disabled"),
        Some(&2.0)
    );

    // The sink that works says which others are disabled (issue 28), by
    // name and variable, never a value.
    let said = ok.wait_for(2).await;
    let mut disabled: Vec<String> = said
        .iter()
        .map(|g| g.json())
        .filter(|v| v["kind"] == "sink_disabled")
        .map(|v| {
            v["sink_disabled"]["sink"]
                .as_str()
                .unwrap_or("")
                .to_string()
        })
        .collect();
    disabled.sort();
    assert_eq!(disabled, ["chat", "ops"], "{said:?}");
    for g in &said {
        assert!(!String::from_utf8_lossy(&g.body).contains("SECRETPART"));
    }
    // The guard guards, and the sink that works still alerts.
    assert_eq!(blocked_login(&nw, "127.0.0.2").await, 403);
    let got = ok.wait_for(3).await;
    assert_eq!(got[2].json()["kind"], "attempt");

    // alert-test still fails for the unusable sinks, without the value.
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("policy.yaml");
    std::fs::write(
        &path,
        policy("  sinks:\n    - { name: ops, type: webhook, url_env: NW_TEST_UNSET_URL }\n"),
    )
    .expect("write policy");
    let out = support::bin()
        .env("NW_TEST_UNSET_URL", "hooks.example/SECRETPART")
        .args(["alert-test", "--policy"])
        .arg(&path)
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("the URL in NW_TEST_UNSET_URL"), "{err}");
    assert!(!err.contains("SECRETPART"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alert_test_reports_each_sink() {
    let ok = Receiver::start(&[], Answer::Status(200)).await;
    let bad = Receiver::start(&[], Answer::Status(500)).await;
    let gone = Receiver::start(&[], Answer::Status(404)).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("policy.yaml");
    std::fs::write(
        &path,
        policy(
            "  sinks:
    - { name: ok, type: webhook, url_env: OK_URL, secret_env: OK_KEY }
    - { name: bad, type: slack, url_env: BAD_URL }
    - { name: gone, type: webhook, url_env: GONE_URL }
",
        ),
    )
    .expect("write policy");
    let (u_ok, u_bad, u_gone) = (ok.url("/"), bad.url("/"), gone.url("/"));
    let path_text = path.to_str().expect("utf-8 path").to_string();
    let run = move |extra: &'static [&'static str]| {
        let out = support::bin()
            .envs([
                ("OK_URL", u_ok.as_str()),
                ("OK_KEY", "k"),
                ("BAD_URL", u_bad.as_str()),
                ("GONE_URL", u_gone.as_str()),
            ])
            .args(["alert-test", "--policy", &path_text])
            .args(extra)
            .output()
            .expect("runs");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, stdout) = tokio::task::spawn_blocking({
        let run = run.clone();
        move || run(&[])
    })
    .await
    .expect("joined");
    assert_eq!(code, Some(1), "{stdout}");
    assert!(
        stdout.contains("ok (webhook): delivered, HTTP 200"),
        "{stdout}"
    );
    assert!(stdout.contains("bad (slack): failed, HTTP 500"), "{stdout}");
    assert!(
        stdout.contains("gone (webhook): refused, HTTP 404"),
        "{stdout}"
    );
    let test = ok.got()[0].json();
    assert_eq!(test["kind"], "test");
    assert_eq!(bad.got().len(), 1, "alert-test tries each sink once");

    let (code, stdout) = tokio::task::spawn_blocking(move || run(&["--sink", "ok"]))
        .await
        .expect("joined");
    assert_eq!(code, Some(0), "{stdout}");
    assert_eq!(stdout.lines().count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_carry_geoip_facts_and_can_be_keyed_by_asn() {
    let up = Upstream::start().await;
    let hook = Receiver::start(&[], Answer::Status(200)).await;
    let url = hook.url("/");
    let g = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/geo");
    let g = g.display();
    let text = policy("  window: 1h\n  key: asn\n  sinks:\n    - { name: ops, type: webhook, url_env: HOOK_URL }\n")
        .replace(
            "version: 1\n",
            &format!(
                "version: 1\ngeoip:\n  country: {g}/GeoLite2-Country-Test.mmdb\n  asn: {g}/GeoLite2-ASN-Test.mmdb\n  connection_type: {g}/GeoIP2-Connection-Type-Test.mmdb\n"
            ),
        );
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("policy.yaml");
    std::fs::write(&path, text).expect("write policy");
    let nw = Netwarden::start_env(
        &path,
        &["--listen", "127.0.0.1:0", "--upstream", &up.url()],
        &[("HOOK_URL", &url)],
        dir,
    );
    // Two clients of AS64500 (the fixtures in testdata/geo): one key.
    for xff in [
        "X-Forwarded-For: 192.0.2.10",
        "X-Forwarded-For: 198.51.100.7",
    ] {
        assert_eq!(
            post("127.0.0.9", nw.addr("http"), "/login", &[xff])
                .await
                .status,
            403
        );
    }
    let got = hook.wait_for(1).await;
    let geo = &got[0].json()["attempt"]["geo"];
    assert_eq!(geo["country"], "US");
    assert_eq!(geo["asn"], 64500);
    assert_eq!(geo["as_org"], "ExampleNet Broadband");
    assert_eq!(geo["connection_type"], "Cable/DSL");
    let code = tokio::task::spawn_blocking(move || nw.terminate())
        .await
        .expect("joined");
    assert_eq!(code, 0);
    let got = hook.got();
    assert_eq!(got.len(), 2);
    let summary = got[1].json();
    assert_eq!(summary["key"]["by"], "asn");
    assert_eq!(summary["key"]["value"], "AS64500");
    assert_eq!(summary["attempts"], 1);
    assert_eq!(summary["last_attempt"]["client"]["address"], "198.51.100.7");
    assert_eq!(summary["last_attempt"]["geo"]["country"], "JP");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_sink_is_verified_with_its_ca_file() {
    let certs = support::dev_certs();
    let hook = Receiver::start_tls(
        &certs.path().join("cert.pem"),
        &certs.path().join("key.pem"),
        Answer::Status(200),
    )
    .await;
    let ca = certs.path().join("ca.pem");
    let url = format!("https://localhost:{}/hook", hook.addr.port());
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("policy.yaml");
    let sinks = format!(
        "  sinks:\n    - {{ name: tls, type: webhook, url_env: HOOK_URL, ca: \"{}\" }}\n    - {{ name: untrusted, type: webhook, url_env: HOOK_URL }}\n",
        ca.display()
    );
    std::fs::write(&path, policy(&sinks)).expect("write policy");
    let out = tokio::task::spawn_blocking(move || {
        support::bin()
            .env("HOOK_URL", &url)
            .args(["alert-test", "--policy"])
            .arg(&path)
            .output()
            .expect("runs")
    })
    .await
    .expect("joined");
    let stdout = String::from_utf8_lossy(&out.stdout);
    // Trusted through the CA file; without it, the development CA is not
    // among the system's roots and the call fails.
    assert!(
        stdout.contains("tls (webhook): delivered, HTTP 200"),
        "{stdout}"
    );
    assert!(stdout.contains("untrusted (webhook): failed"), "{stdout}");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(hook.got().len(), 1);
    assert_eq!(hook.got()[0].path, "/hook");
}

/// Rewrites the policy and waits for the reload that takes it (SIGHUP, or
/// the file watcher if it gets there first), or for the refusal.
fn reload_with(nw: &Netwarden, text: &str, seen: usize) -> serde_json::Value {
    std::fs::write(nw.policy_path(), text).expect("edit policy");
    nw.signal("HUP");
    let wanted = |v: &serde_json::Value| {
        v["event"] == "policy_reloaded" || v["event"] == "policy_reload_failed"
    };
    let deadline = std::time::Instant::now() + support::proxy::WAIT;
    loop {
        let events: Vec<_> = nw.logs().into_iter().filter(|v| wanted(v)).collect();
        if events.len() > seen {
            return events[seen].clone();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no reload outcome logged"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_moves_alerts_to_the_new_sinks_and_a_missing_secret_keeps_the_running_ones() {
    let up = Upstream::start().await;
    let first = Receiver::start(&[], Answer::Status(200)).await;
    let second = Receiver::start(&[], Answer::Status(200)).await;
    let sink = |var: &str| {
        format!("  window: 1h\n  sinks:\n    - {{ name: ops, type: webhook, url_env: {var} }}\n")
    };
    let (first_url, second_url) = (first.url("/first"), second.url("/second"));
    let nw = start(
        &sink("FIRST_URL"),
        &[("FIRST_URL", &first_url), ("SECOND_URL", &second_url)],
        &up,
    );
    assert_eq!(blocked_login(&nw, "127.0.0.2").await, 403);
    assert_eq!(first.wait_for(1).await.len(), 1);

    // The sink now reads another variable: alerts move, no restart.
    let ev = reload_with(&nw, &policy(&sink("SECOND_URL")), 0);
    assert_eq!(ev["event"], "policy_reloaded", "{ev}");
    let moved = nw.wait_log(|v| v["event"] == "alerts_reloaded");
    assert_eq!(moved["sinks"], 1, "{moved}");
    assert!(
        !nw.logs()
            .iter()
            .any(|v| v["event"] == "policy_restart_needed"),
        "an alerts change asked for a restart"
    );
    assert_eq!(blocked_login(&nw, "127.0.0.3").await, 403);
    let got = second.wait_for(1).await;
    assert_eq!(got[0].path, "/second");
    let body = String::from_utf8_lossy(&got[0].body);
    assert!(body.contains("127.0.0.3"), "{body}");

    // A sink whose variable is not set: the reload is refused, located,
    // without the values of the variables that are set; the running
    // alerts keep delivering.
    let ev = reload_with(&nw, &policy(&sink("MISSING_URL")), 1);
    assert_eq!(ev["event"], "policy_reload_failed", "{ev}");
    let errors = ev["errors"].as_str().unwrap_or("");
    assert!(errors.contains("MISSING_URL"), "{errors}");
    assert!(!errors.contains(&second_url), "{errors}");
    assert_eq!(blocked_login(&nw, "127.0.0.4").await, 403);
    let got = second.wait_for(2).await;
    let body = String::from_utf8_lossy(&got[1].body);
    assert!(body.contains("127.0.0.4"), "{body}");

    // No alerts section: attempts are logged, not alerted.
    let ev = reload_with(&nw, &policy("").replace("alerts:\n", ""), 2);
    assert_eq!(ev["event"], "policy_reloaded", "{ev}");
    assert_eq!(blocked_login(&nw, "127.0.0.5").await, 403);
    nw.wait_log(|v| v["event"] == "login_blocked" && v["client.address"] == "127.0.0.5");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        first.got().len(),
        1,
        "the first sink got alerts after the move"
    );
    assert_eq!(
        second.got().len(),
        2,
        "alerts went out with no alerts section"
    );
}
