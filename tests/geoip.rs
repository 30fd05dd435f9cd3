//! GeoIP through the real proxy: facts in decisions and logs, and
//! databases replaced on disk while requests keep flowing.

use crate::support;

use std::path::Path;
use std::time::{Duration, Instant};

use support::mmdb_writer::{Value, Writer};
use support::proxy::{Netwarden, Upstream, WAIT, get};

fn geo_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/geo")
}

/// Clients are simulated through a trusted load balancer (127.0.0.3), so
/// that their addresses can be the documentation ranges the databases know.
fn policy(extra: &str) -> String {
    let g = geo_dir();
    let g = g.display();
    format!(
        "version: 1
geoip:
  country: {g}/GeoLite2-Country-Test.mmdb
  asn: {g}/GeoLite2-ASN-Test.mmdb
  connection_type: {g}/GeoIP2-Connection-Type-Test.mmdb
  anonymous_ip: {g}/GeoIP2-Anonymous-IP-Test.mmdb
{extra}
networks:
  office: [203.0.113.0/24]
  lb: [127.0.0.3]
  anonymizers: {{ anonymous: [tor_exit_node, public_proxy, hosting_provider] }}
client_ip: {{ trusted_proxies: [lb] }}
rules:
  - {{ name: no_anonymizers, deny_from: [anonymizers] }}
  - {{ name: login, paths: [/login], methods: [POST], login: true, allow_from: [office] }}
  - {{ name: console, allow_from: [office] }}
"
    )
}

#[tokio::test]
async fn denials_carry_the_known_facts_and_allows_do_not_by_default() {
    let up = Upstream::start().await;
    let nw = Netwarden::in_front_of(&policy(""), &up);
    let r = get(
        "127.0.0.3",
        nw.addr("http"),
        "/x",
        &["X-Forwarded-For: 192.0.2.161"],
    )
    .await;
    assert_eq!(r.status, 403);
    let d = nw.wait_log(|v| v["event"] == "decision" && v["client.address"] == "192.0.2.161");
    assert_eq!(d["rule"], "no_anonymizers");
    assert_eq!(d["network"], "anonymizers");
    assert_eq!(d["network.via"], "anonymous_ip");
    assert_eq!(d["geo.country.iso_code"], "US");
    assert_eq!(d["network.asn"], 64501);
    assert_eq!(d["network.as_org"], "Rent-a-Server Hosting");
    assert_eq!(d["network.anonymous"], "anonymous,tor_exit_node");

    // A blocked login from home broadband: the alert line says so.
    let r = support::proxy::post(
        "127.0.0.3",
        nw.addr("http"),
        "/login",
        &["X-Forwarded-For: 192.0.2.10"],
    )
    .await;
    assert_eq!(r.status, 403);
    let b = nw.wait_log(|v| v["event"] == "login_blocked" && v["client.address"] == "192.0.2.10");
    assert_eq!(b["network.asn"], 64500);
    assert_eq!(b["network.as_org"], "ExampleNet Broadband");
    assert_eq!(b["network.connection_type"], "Cable/DSL");
    assert_eq!(b["geo.country.iso_code"], "US");
    assert!(b.get("network.anonymous").is_none(), "{b}");

    // Allowed: no facts logged unless log_geo_on_allow.
    let r = get(
        "127.0.0.3",
        nw.addr("http"),
        "/x",
        &["X-Forwarded-For: 203.0.113.7"],
    )
    .await;
    assert_eq!(r.status, 200);
    let a = nw.wait_log(|v| v["event"] == "decision" && v["client.address"] == "203.0.113.7");
    assert!(a.get("geo.country.iso_code").is_none(), "{a}");
}

#[tokio::test]
async fn log_geo_on_allow_adds_facts_to_allowed_requests() {
    let up = Upstream::start().await;
    let nw = Netwarden::in_front_of(&policy("  log_geo_on_allow: true"), &up);
    let r = get(
        "127.0.0.3",
        nw.addr("http"),
        "/x",
        &["X-Forwarded-For: 203.0.113.7"],
    )
    .await;
    assert_eq!(r.status, 200);
    let a = nw.wait_log(|v| v["event"] == "decision" && v["client.address"] == "203.0.113.7");
    assert_eq!(a["geo.country.iso_code"], "JP");
    assert_eq!(a["network.connection_type"], "Corporate");
}

fn country_db(code: &str) -> Vec<u8> {
    let mut w = Writer::new("GeoLite2-Country", 6);
    w.insert(
        "192.0.2.0/24",
        &Value::map([("country", Value::map([("iso_code", Value::str(code))]))]),
    );
    w.to_bytes()
}

/// Writes `bytes` to a temporary file beside `path` and renames it over
/// `path`, as geoipupdate does.
fn replace(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).expect("write new database");
    std::fs::rename(&tmp, path).expect("rename over the old one");
}

#[tokio::test]
async fn databases_are_swapped_under_load_without_a_failed_request() {
    let up = Upstream::start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("country.mmdb");
    std::fs::write(&db, country_db("US")).expect("write");
    let policy = format!(
        "version: 1
geoip:
  country: {}
  check_interval: 100ms
networks:
  japan: {{ country: [JP] }}
  lb: [127.0.0.3]
client_ip: {{ trusted_proxies: [lb] }}
rules:
  - {{ name: japan_only, allow_from: [japan] }}
",
        db.display()
    );
    let nw = Netwarden::in_front_of(&policy, &up);
    let addr = nw.addr("http");

    // Load: a few clients in a loop, each request must be 200 or 403.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut clients = Vec::new();
    for _ in 0..4 {
        let stop = stop.clone();
        clients.push(tokio::spawn(async move {
            let (mut allowed, mut denied) = (0u32, 0u32);
            let deadline = Instant::now() + WAIT;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && Instant::now() < deadline {
                let r = get("127.0.0.3", addr, "/x", &["X-Forwarded-For: 192.0.2.10"]).await;
                match r.status {
                    200 => allowed += 1,
                    403 => denied += 1,
                    other => panic!("request failed during the swap: {other} {r:?}"),
                }
            }
            (allowed, denied)
        }));
    }
    // US at first: denied. Then the updater makes it JP: allowed.
    let wait_for = |status: u16| async move {
        let deadline = Instant::now() + WAIT;
        loop {
            if get("127.0.0.3", addr, "/x", &["X-Forwarded-For: 192.0.2.10"])
                .await
                .status
                == status
            {
                return;
            }
            assert!(Instant::now() < deadline, "never got {status}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    wait_for(403).await;
    replace(&db, &country_db("JP"));
    wait_for(200).await;
    let reloaded = nw.wait_log(|v| v["event"] == "geoip_reloaded");
    assert_eq!(reloaded["database"], "country");

    // A corrupt new file is refused and the previous database stays.
    replace(&db, b"this is not a MaxMind database");
    let failed = nw.wait_log(|v| v["event"] == "geoip_reload_failed");
    assert_eq!(failed["database"], "country");
    let r = get("127.0.0.3", addr, "/x", &["X-Forwarded-For: 192.0.2.10"]).await;
    assert_eq!(r.status, 200, "the good database is still in use");

    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut total = (0, 0);
    for c in clients {
        let (a, d) = c.await.expect("client finished without a failed request");
        total = (total.0 + a, total.1 + d);
    }
    assert!(
        total.0 > 0 && total.1 > 0,
        "load saw both databases: {total:?}"
    );
}

/// Regression: a vendor database whose metadata `description` is an empty
/// map (as Go's mmdbwriter writes it; ip-location-db's country builds are
/// one) was refused as corrupt by maxminddb's verify, so the documented
/// `{ path, field }` setup could not load.
#[test]
fn a_vendor_database_with_an_empty_description_decides_by_country() {
    let dir = tempfile::tempdir().expect("temp dir");
    let policy = dir.path().join("policy.yaml");
    std::fs::write(
        &policy,
        format!(
            "version: 1
geoip:
  country: {{ path: {}/vendor-country-empty-description-Test.mmdb, field: country_code }}
networks:
  japan: {{ country: [JP] }}
rules:
  - {{ name: japan_only, allow_from: [japan] }}
",
            geo_dir().display()
        ),
    )
    .expect("write policy");
    let policy = policy.to_str().expect("UTF-8 path");

    let (code, out, err) = support::run(&["check", "--policy", policy]);
    assert_eq!(code, 0, "{out}{err}");

    let explain = |ip: &str| {
        let (code, out, err) = support::run(&["explain", "--policy", policy, "--ip", ip, "--json"]);
        assert_eq!(code, 0, "{err}");
        serde_json::from_str::<serde_json::Value>(&out).expect("one JSON object")
    };
    let jp = explain("203.0.113.7");
    assert_eq!(jp["decision"], "allow", "{jp}");
    assert_eq!(jp["network"], "japan", "{jp}");
    assert_eq!(jp["via"], "country", "{jp}");
    assert_eq!(jp["client_facts"]["country"], "JP", "{jp}");
    let us = explain("192.0.2.1");
    assert_eq!(us["decision"], "deny", "{us}");
    assert_eq!(us["client_facts"]["country"], "US", "{us}");
    let de = explain("2001:db8:66::1");
    assert_eq!(de["decision"], "deny", "{de}");
    assert_eq!(de["client_facts"]["country"], "DE", "{de}");
}
