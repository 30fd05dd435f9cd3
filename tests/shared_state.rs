//! Lockout state shared across replicas in Redis (`state: { store: redis
//! }`): three netwarden processes and one `redis-server`, all started by
//! the test on loopback. Failures spread over the three lock the client
//! out on all three; alerts are sent once; Redis killed mid-test means each
//! instance falls back to its own memory without failing a request, and
//! Redis back means sharing resumes.

use crate::support;

use std::time::{Duration, Instant};

use netwarden::policy::state::{OnStoreError, Redis};
use support::proxy::{Netwarden, WAIT, get};
use support::receiver::{Answer, Receiver};
use support::redis::RedisServer;
use support::sign_in::{SignInConsole, form};

const POLICY: &str = "version: 1
networks:
  office: [127.0.0.0/29]
rules:
  - name: login
    paths: [/login]
    methods: [POST]
    login: true
    allow_from: [office]
  - { name: console, paths: [\"/**\"], allow_from: [office] }
lockout: { after: 3, within: 1m, lock_for: 30s }
state: { store: redis, url_env: NW_TEST_REDIS, timeout: 250ms, prefix: \"nwtest:\" }
";

fn replicas(
    policy: &str,
    console: &SignInConsole,
    env: &[(&str, &str)],
    n: usize,
) -> Vec<Netwarden> {
    (0..n)
        .map(|_| {
            let dir = tempfile::tempdir().expect("temp dir");
            let path = dir.path().join("policy.yaml");
            std::fs::write(&path, policy).expect("write");
            Netwarden::start_env(
                &path,
                &["--listen", "127.0.0.1:0", "--upstream", &console.url],
                env,
                dir,
            )
        })
        .collect()
}

fn metric(body: &str, name: &str) -> f64 {
    support::proxy::parse_metrics(body)
        .get(name)
        .copied()
        .unwrap_or(f64::NAN)
}

async fn metrics(nw: &Netwarden) -> String {
    get("127.0.0.1", nw.addr("admin"), "/metrics", &[])
        .await
        .body
}

/// Waits (bounded) until every replica answers a right password from
/// `client` with 429: the failure that locks is counted just after its
/// answer, so the lock may take a moment to be seen.
async fn locked_everywhere(nws: &[Netwarden], client: &str) {
    for (i, nw) in nws.iter().enumerate() {
        let deadline = Instant::now() + WAIT;
        loop {
            let r = form(client, nw.addr("http"), "password=right").await;
            if r.status == 429 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "replica {i} never locked {client} out: {r:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn with_alerts(policy: &str) -> String {
    format!(
        "{policy}alerts:\n  window: 1h\n  sinks:\n    - {{ name: ops, type: webhook, url_env: NW_TEST_HOOK }}\n"
    )
}

/// A redis-server, a console, a webhook, and replicas sharing them.
struct Cluster {
    _redis: RedisServer,
    console: SignInConsole,
    hook: Receiver,
    nws: Vec<Netwarden>,
}

/// `n` replicas of `policy` (which names NW_TEST_REDIS and NW_TEST_HOOK),
/// each connected to the store.
async fn cluster(policy: &str, n: usize) -> Cluster {
    let redis = RedisServer::start();
    let console = SignInConsole::start().await;
    let hook = Receiver::start(&[], Answer::Status(200)).await;
    let (redis_url, hook_url) = (redis.url(), hook.url("/hook"));
    let env = [
        ("NW_TEST_REDIS", redis_url.as_str()),
        ("NW_TEST_HOOK", hook_url.as_str()),
    ];
    let nws = replicas(policy, &console, &env, n);
    for nw in &nws {
        nw.wait_log(|v| v["event"] == "state_store_connected");
    }
    Cluster {
        _redis: redis,
        console,
        hook,
        nws,
    }
}

#[tokio::test]
async fn failures_spread_over_three_replicas_lock_the_client_out_on_all_three_and_alert_once() {
    let Cluster {
        _redis,
        console,
        hook,
        nws,
    } = cluster(&with_alerts(POLICY), 3).await;

    // Blocked sign-ins from outside the office, one on each replica: one
    // first-attempt alert, not three.
    for nw in &nws {
        let r = form("127.0.0.100", nw.addr("http"), "password=x").await;
        assert_eq!(r.status, 403, "{r:?}");
    }
    let got = hook.wait_for(1).await;
    assert_eq!(got[0].json()["kind"], "attempt", "{}", got[0].json());
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        hook.got().len(),
        1,
        "{:?}",
        hook.got().iter().map(|g| g.json()).collect::<Vec<_>>()
    );

    // One wrong password on each replica: the third locks the client out.
    for nw in &nws {
        let r = form("127.0.0.1", nw.addr("http"), "password=wrong").await;
        assert_eq!(r.status, 401, "{r:?}");
    }
    // Locked on every replica; the console sees no more sign-ins.
    // The third failure is counted just after its answer.
    locked_everywhere(&nws, "127.0.0.1").await;
    assert_eq!(console.sign_ins(), 3);
    // Another office address is not locked anywhere.
    let r = form("127.0.0.2", nws[0].addr("http"), "password=right").await;
    assert_eq!(r.status, 302, "{r:?}");
    // One lockout alert in all (the replica whose count locked).
    let got = hook.wait_for(2).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let kinds: Vec<_> = hook
        .got()
        .iter()
        .map(|g| g.json()["kind"].clone())
        .collect();
    assert_eq!(kinds, ["attempt", "lockout"], "{got:?}");
    let lockouts = nws
        .iter()
        .filter(|nw| nw.logs().iter().any(|v| v["event"] == "lockout"))
        .count();
    assert_eq!(lockouts, 1);
}

#[tokio::test]
async fn requests_that_are_not_sign_ins_never_touch_redis() {
    let redis = RedisServer::start();
    let console = SignInConsole::start().await;
    let url = redis.url();
    let nws = replicas(POLICY, &console, &[("NW_TEST_REDIS", &url)], 1);
    nws[0].wait_log(|v| v["event"] == "state_store_connected");
    let processed = |r: &RedisServer| -> u64 {
        let info = r.command("INFO stats");
        info.lines()
            .find_map(|l| l.strip_prefix("total_commands_processed:"))
            .and_then(|n| n.trim().parse().ok())
            .expect("total_commands_processed")
    };
    let before = processed(&redis);
    for _ in 0..20 {
        assert_eq!(
            get("127.0.0.1", nws[0].addr("http"), "/orders", &[])
                .await
                .status,
            200
        );
    }
    // Only the first INFO was processed in between.
    assert_eq!(processed(&redis) - before, 1);
    let before = processed(&redis);
    assert_eq!(
        form("127.0.0.1", nws[0].addr("http"), "password=right")
            .await
            .status,
        302
    );
    // A sign-in: its check before forwarding, its success after.
    let deadline = Instant::now() + WAIT;
    while processed(&redis) - before < 3 {
        assert!(Instant::now() < deadline, "the sign-in never reached Redis");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn redis_killed_mid_test_means_memory_on_each_replica_and_back_means_shared_again() {
    let mut redis = RedisServer::start();
    let port = redis.port;
    let console = SignInConsole::start().await;
    let url = redis.url();
    let nws = replicas(POLICY, &console, &[("NW_TEST_REDIS", &url)], 3);
    for nw in &nws {
        nw.wait_log(|v| v["event"] == "state_store_connected");
    }
    redis.stop();
    // No request fails that would not have failed anyway: sign-ins go on,
    // counted in each replica's memory.
    for nw in &nws {
        let r = form("127.0.0.2", nw.addr("http"), "password=right").await;
        assert_eq!(r.status, 302, "{r:?}");
        assert_eq!(
            get("127.0.0.1", nw.addr("http"), "/orders", &[])
                .await
                .status,
            200
        );
        let down = nw.wait_log(|v| v["event"] == "state_store_unavailable");
        assert_eq!(down["level"], "WARN");
        assert_eq!(down["on_store_error"], "memory");
        assert_eq!(metric(&metrics(nw).await, "netwarden_state_store_up"), 0.0);
    }
    // Memory counts per replica: three failures on one replica lock there.
    for _ in 0..3 {
        let r = form("127.0.0.4", nws[0].addr("http"), "password=wrong").await;
        assert_eq!(r.status, 401, "{r:?}");
    }
    assert_eq!(
        form("127.0.0.4", nws[0].addr("http"), "password=right")
            .await
            .status,
        429
    );
    assert_eq!(
        form("127.0.0.4", nws[1].addr("http"), "password=right")
            .await
            .status,
        302
    );

    // Redis back on its port: each replica reconnects (with backoff) and
    // sharing resumes.
    let _redis = RedisServer::start_on(port);
    for nw in &nws {
        nw.wait_log(|v| v["event"] == "state_store_restored");
        assert_eq!(metric(&metrics(nw).await, "netwarden_state_store_up"), 1.0);
    }
    for nw in &nws {
        let r = form("127.0.0.3", nw.addr("http"), "password=wrong").await;
        assert_eq!(r.status, 401, "{r:?}");
    }
    locked_everywhere(&nws, "127.0.0.3").await;
}

#[tokio::test]
async fn on_store_error_deny_login_refuses_sign_ins_and_allow_forwards_them() {
    // A port nothing listens on: Redis is never there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let url = format!("redis://127.0.0.1:{port}/");
    let console = SignInConsole::start().await;
    let hook = Receiver::start(&[], Answer::Status(200)).await;
    let hook_url = hook.url("/hook");
    let deny = with_alerts(&POLICY.replace("prefix:", "on_store_error: deny_login, prefix:"));
    let env = [
        ("NW_TEST_REDIS", url.as_str()),
        ("NW_TEST_HOOK", hook_url.as_str()),
    ];
    let nw = &replicas(&deny, &console, &env, 1)[0];
    nw.wait_log(|v| v["event"] == "state_store_unavailable");
    // Down at startup, before the alerts ran: alerted all the same, once.
    let got = hook.wait_for(1).await;
    let v = got[0].json();
    assert_eq!(v["kind"], "state_store", "{v}");
    assert_eq!(v["state_store"]["on_store_error"], "deny_login");
    assert!(
        v["summary"]
            .as_str()
            .is_some_and(|s| s.starts_with("Lockout store (Redis) unreachable")),
        "{v}"
    );
    let r = form("127.0.0.1", nw.addr("http"), "password=right").await;
    assert_eq!(r.status, 503, "{r:?}");
    assert_eq!(r.header("retry-after"), Some("30"));
    assert!(r.body.contains("sign_in_unavailable"), "{}", r.body);
    assert_eq!(console.sign_ins(), 0);
    // Browsing does not need the store.
    assert_eq!(
        get("127.0.0.1", nw.addr("http"), "/orders", &[])
            .await
            .status,
        200
    );

    let allow = POLICY.replace("prefix:", "on_store_error: allow, prefix:");
    let nw = &replicas(&allow, &console, &[("NW_TEST_REDIS", &url)], 1)[0];
    nw.wait_log(|v| v["event"] == "state_store_unavailable");
    for _ in 0..4 {
        assert_eq!(
            form("127.0.0.1", nw.addr("http"), "password=wrong")
                .await
                .status,
            401
        );
    }
    assert_eq!(
        console.sign_ins(),
        4,
        "allow forwards every sign-in, uncounted"
    );
}

#[test]
fn a_redis_store_without_its_url_variable_stops_startup() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("policy.yaml");
    std::fs::write(&path, POLICY).expect("write");
    let (code, _, err) = support::run_within(
        &[
            "serve",
            "--policy",
            path.to_str().expect("utf-8"),
            "--listen",
            "127.0.0.1:0",
            "--upstream",
            "http://127.0.0.1:9",
        ],
        Duration::from_secs(20),
    );
    assert_ne!(code, 0, "{err}");
    assert!(err.contains("NW_TEST_REDIS is not set"), "{err}");
}

/// A window's summary is sent once, by one replica, with the attempts of
/// every replica added up.
#[tokio::test]
async fn a_window_summary_is_sent_once_with_every_replicas_count() {
    let policy = with_alerts(POLICY).replace("window: 1h", "window: 2s");
    let Cluster {
        _redis, hook, nws, ..
    } = cluster(&policy, 3).await;
    // Each replica: a first attempt (opens its window), then two more.
    for nw in &nws {
        for _ in 0..3 {
            let r = form("127.0.0.100", nw.addr("http"), "password=x").await;
            assert_eq!(r.status, 403, "{r:?}");
        }
    }
    let got = hook.wait_for(2).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let all: Vec<_> = hook.got().iter().map(|g| g.json()).collect();
    assert_eq!(all.len(), 2, "{all:?}");
    assert_eq!(got[0].json()["kind"], "attempt");
    assert_eq!(all[1]["kind"], "summary", "{all:?}");
    // 3 replicas x 2 attempts after their first.
    assert_eq!(all[1]["attempts"], 6, "{all:?}");
}

/// The Redis scripts and the memory table, driven by one clock through the
/// same sign-ins, give the same answers: locks, their doubling and
/// expiry, the window, `reset_on_success`, places held in flight.
#[tokio::test]
async fn redis_and_memory_agree_on_a_driven_clock() {
    use netwarden::lockout::{Failure, Key, Settings, memory::Table, redis::Store};
    let redis = RedisServer::start();
    for reset_on_success in [true, false] {
        let settings = Redis {
            url_env: "unused".into(),
            prefix: format!("parity{reset_on_success}:"),
            timeout: Duration::from_secs(2),
            on_store_error: OnStoreError::Memory,
            ca_file: None,
        };
        let store = Store::start(
            &settings,
            Some(&redis.url()),
            Duration::from_secs(30),
            Box::new(|_| {}),
        )
        .expect("store");
        let deadline = Instant::now() + WAIT;
        while !store.is_up() {
            assert!(Instant::now() < deadline, "the store never came up");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let s = Settings {
            after: 3,
            within: Duration::from_secs(60),
            lock_for: Duration::from_secs(100),
            max_lock: Duration::from_secs(350),
            reset_on_success,
            ..Settings::default()
        };
        let table = Table::default();
        let keys = [
            Key::address("192.0.2.7".parse().expect("ip")),
            Key::address("2001:db8::7".parse().expect("ip")),
        ];
        // A fixed pseudo-random walk: which key, failed or not, how long after.
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = |n: u64| {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (seed >> 33) % n
        };
        let base_ms: u64 = 1_700_000_000_000;
        let mut t = 0u64;
        let mut seen = (0, 0, 0);
        for step in 0..600 {
            t += next(45);
            let key = keys[usize::try_from(next(2)).expect("index")];
            let fails = next(10) < 7;
            let at = Duration::from_secs(t);
            let now = base_ms + t * 1000;
            let mem = table.begin(key, at, &s);
            let red = store.begin_at(key, &s, now).await.expect("redis answers");
            match (mem, red) {
                (Err(m), Err(r)) => {
                    assert_eq!(m, r, "step {step}: refused for different times");
                    seen.0 += 1;
                }
                (Ok(pending), Ok(reservation)) => {
                    if fails {
                        let m = table.failure(key, at, &s);
                        drop(pending);
                        let r = store
                            .failure_at(reservation, &s, now)
                            .await
                            .expect("redis answers");
                        assert_eq!(m, r, "step {step}: failures differ");
                        if matches!(m, Failure::Locked { .. }) {
                            seen.1 += 1;
                        }
                    } else {
                        table.success(key, at, &s);
                        drop(pending);
                        store
                            .success_at(reservation, &s, now)
                            .await
                            .expect("redis answers");
                        seen.2 += 1;
                    }
                }
                (m, r) => panic!("step {step}: memory {:?}, redis {:?}", m.is_ok(), r.is_ok()),
            }
        }
        // The walk went through every case.
        assert!(seen.0 > 10 && seen.1 > 5 && seen.2 > 10, "{seen:?}");
    }
}

/// `rediss://` checked against `state.ca_file`, with the password from the
/// URL (AUTH); a wrong password is a store that cannot be used, said
/// without the password.
#[tokio::test]
async fn rediss_with_a_ca_file_and_a_password_from_the_url() {
    let certs = support::dev_certs();
    let redis = RedisServer::start_tls(certs.path(), "s3cret-pass");
    let console = SignInConsole::start().await;
    let ca = certs.path().join("ca.pem");
    let policy = POLICY.replace(
        "prefix: \"nwtest:\"",
        &format!("prefix: \"nwtest:\", ca_file: {}", ca.display()),
    );
    let good = format!("rediss://:s3cret-pass@127.0.0.1:{}/", redis.port);
    let nws = replicas(&policy, &console, &[("NW_TEST_REDIS", &good)], 2);
    for nw in &nws {
        nw.wait_log(|v| v["event"] == "state_store_connected");
    }
    for nw in &nws {
        assert_eq!(
            form("127.0.0.5", nw.addr("http"), "password=wrong")
                .await
                .status,
            401
        );
    }
    assert_eq!(
        form("127.0.0.5", nws[0].addr("http"), "password=wrong")
            .await
            .status,
        401
    );
    // Three failures over two replicas, counted over TLS in one place.
    locked_everywhere(&nws, "127.0.0.5").await;

    let wrong = format!("rediss://:not-the-pass@127.0.0.1:{}/", redis.port);
    let nw = &replicas(&policy, &console, &[("NW_TEST_REDIS", &wrong)], 1)[0];
    let down = nw.wait_log(|v| v["event"] == "state_store_unavailable");
    let all = nw.raw_logs().join("\n");
    assert!(
        !all.contains("not-the-pass"),
        "the password is in the log: {down}"
    );
    // The fallback (memory) serves sign-ins meanwhile.
    assert_eq!(
        form("127.0.0.6", nw.addr("http"), "password=right")
            .await
            .status,
        302
    );
}

/// Issue 24: with Redis, a lock made through one replica is listed by
/// another (`GET /lockouts` reads Redis), and released through that other
/// one it is lifted for every replica.
#[tokio::test]
async fn a_lock_is_listed_and_released_from_any_replica() {
    let Cluster {
        _redis,
        console,
        nws,
        ..
    } = cluster(&with_alerts(POLICY), 2).await;
    for _ in 0..3 {
        let r = form("127.0.0.1", nws[0].addr("http"), "password=wrong").await;
        assert_eq!(r.status, 401, "{r:?}");
    }
    locked_everywhere(&nws, "127.0.0.1").await;
    let other = nws[1].addr("admin");
    let listed = get("127.0.0.1", other, "/lockouts", &[]).await;
    assert_eq!(listed.status, 200, "{listed:?}");
    let v: serde_json::Value = serde_json::from_str(listed.body.trim()).expect("json");
    assert_eq!(v["store"], "redis");
    let locks = v["locks"].as_array().expect("locks");
    assert!(
        locks.iter().any(|l| l["key"] == "address"
            && l["scope"] == "127.0.0.1/32"
            && l["store"] == "redis"),
        "{v}"
    );
    let body = r#"{"address": "127.0.0.1"}"#;
    let req = format!(
        "POST /lockouts/release HTTP/1.1\r\nHost: a\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let released = support::proxy::exchange(
        support::proxy::connect_from("127.0.0.1", other).await,
        req.as_bytes(),
    )
    .await;
    assert_eq!(released.status, 200, "{released:?}");
    assert!(released.body.contains("\"released\":1"), "{released:?}");
    // Lifted for the replica that made it too.
    let r = form("127.0.0.1", nws[0].addr("http"), "password=right").await;
    assert_eq!(r.status, 302, "{r:?}");
    assert_eq!(console.sign_ins(), 4);
}
