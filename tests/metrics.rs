//! `/metrics` scraped from a real `serve`, with counters that match the
//! traffic sent, and no personal or unbounded label.

use crate::support;

use support::proxy::{Netwarden, Upstream, connect_from, exchange, get, parse_metrics, post};

const POLICY: &str = "version: 1
networks:
  office: [127.0.0.1]
rules:
  - { name: login, paths: [/login], methods: [POST], login: true, allow_from: [office] }
  - { name: console, allow_from: [office] }
";

#[tokio::test]
async fn metrics_count_the_traffic_and_carry_no_personal_labels() {
    let up = Upstream::start().await;
    let nw = Netwarden::in_front_of(POLICY, &up);
    let addr = nw.addr("http");
    for _ in 0..2 {
        assert_eq!(
            get("127.0.0.1", addr, "/orders?customer=hanako", &[])
                .await
                .status,
            200
        );
    }
    assert_eq!(post("127.0.0.2", addr, "/login", &[]).await.status, 403);
    assert_eq!(get("127.0.0.2", addr, "/orders", &[]).await.status, 403);
    assert_eq!(get("127.0.0.3", addr, "/a%2Fb", &[]).await.status, 400);
    let reload =
        b"POST /reload HTTP/1.1\r\nHost: a\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";
    assert_eq!(
        exchange(connect_from("127.0.0.1", nw.addr("admin")).await, reload)
            .await
            .status,
        200
    );

    let r = get("127.0.0.1", nw.addr("admin"), "/metrics", &[]).await;
    assert_eq!(r.status, 200);
    let m = parse_metrics(&r.body);
    let get = |k: &str| {
        m.get(k)
            .copied()
            .unwrap_or_else(|| panic!("{k} missing in:\n{}", r.body))
    };
    assert_eq!(
        get("netwarden_decisions_total{action=\"allow\",rule=\"console\"}"),
        2.0
    );
    assert_eq!(
        get("netwarden_decisions_total{action=\"deny\",rule=\"console\"}"),
        1.0
    );
    assert_eq!(
        get("netwarden_decisions_total{action=\"deny\",rule=\"login\"}"),
        1.0
    );
    assert_eq!(
        get("netwarden_decisions_total{action=\"deny\",rule=\"invalid_path\"}"),
        1.0
    );
    assert_eq!(
        get("netwarden_login_blocked_total{rule=\"login\",enforced=\"true\"}"),
        1.0
    );
    assert_eq!(
        get("netwarden_upstream_requests_total{outcome=\"ok\"}"),
        2.0
    );
    assert_eq!(get("netwarden_upstream_seconds_count"), 2.0);
    assert_eq!(get("netwarden_decision_seconds_count"), 5.0);
    assert_eq!(
        get("netwarden_policy_reloads_total{outcome=\"unchanged\"}"),
        1.0
    );
    assert_eq!(get("netwarden_policy_generation"), 1.0);
    assert!(get("netwarden_policy_loaded_timestamp_seconds") > 1.7e9);
    assert!(m.contains_key("netwarden_open_connections"));
    for personal in ["127.0.0", "orders", "hanako", "curl", "a%2Fb"] {
        assert!(!r.body.contains(personal), "metrics leak '{personal}'");
    }
}
