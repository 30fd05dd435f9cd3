//! Policy reload while serving: every trigger, every kind of bad edit
//! keeping the running policy, and reloads under continuous load.

use crate::support;

use std::path::Path;
use std::time::{Duration, Instant};

use support::proxy::{Netwarden, Upstream, WAIT, admin, connect_from, get};

/// Allows `who` (one loopback address) to everything. Each edit here moves
/// the console to another address, which the reload guard would refuse
/// (tests/operations.rs tests it): these tests turn it off.
fn policy(who: &str) -> String {
    format!(
        "version: 1
networks:
  allowed: [{who}]
rules:
  - {{ name: everything, allow_from: [allowed] }}
server:
  reload: {{ interval: 100ms, guard: off }}
tests:
  - {{ ip: {who}, expect: allow }}
"
    )
}

async fn status_of(nw: &Netwarden, from: &str) -> u16 {
    get(from, nw.addr("http"), "/x", &[]).await.status
}

/// Waits until requests from `from` get `status`.
async fn until(nw: &Netwarden, from: &str, status: u16) {
    let deadline = Instant::now() + WAIT;
    while status_of(nw, from).await != status {
        assert!(
            Instant::now() < deadline,
            "{from} never got {status}; logs: {:#?}",
            nw.logs()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Writes a file beside `path` and renames it over `path` (editors, updaters).
fn rename_over(path: &Path, text: &str) {
    let tmp = path.with_extension("swp");
    std::fs::write(&tmp, text).expect("write");
    std::fs::rename(&tmp, path).expect("rename");
}

fn no_watch(p: &str) -> String {
    p.replace(
        "reload: { interval: 100ms, guard: off }",
        "reload: { watch: false, guard: off }",
    )
}

#[tokio::test]
async fn sighup_and_admin_reload_apply_good_edits_and_keep_the_policy_on_bad_ones() {
    let up = Upstream::start().await;
    let nw = Netwarden::in_front_of(&no_watch(&policy("127.0.0.1")), &up);
    let path = nw.policy_path();
    assert_eq!(status_of(&nw, "127.0.0.2").await, 403);

    // SIGHUP.
    std::fs::write(&path, no_watch(&policy("127.0.0.2"))).expect("edit");
    nw.signal("HUP");
    until(&nw, "127.0.0.2", 200).await;
    assert_eq!(status_of(&nw, "127.0.0.1").await, 403);
    let ev = nw.wait_log(|v| v["event"] == "policy_reloaded");
    assert_eq!(ev["trigger"], "SIGHUP");
    assert_eq!(ev["generation"], 2);
    assert_ne!(ev["old_sha256"], ev["new_sha256"]);
    assert!(
        ev["changes"]
            .as_str()
            .unwrap_or("")
            .contains("~network allowed"),
        "{ev}"
    );

    // The same content again: nothing to do.
    let (code, out) = admin(&nw, "POST", "/reload").await;
    assert_eq!((code, out["outcome"].as_str()), (200, Some("unchanged")));

    // Each kind of bad edit: refused, located, the running policy stays.
    let bad_edits = [
        (
            "YAML syntax",
            "version: 1\nrules: [\n".to_string(),
            "policy.yaml:",
        ),
        (
            "unknown network",
            no_watch(&policy("127.0.0.3")).replace("allow_from: [allowed]", "allow_from: [alowed]"),
            // Issue 23: with the help `check` gives.
            "unknown network 'alowed'\\n  help: did you mean 'allowed'?",
        ),
        (
            "failing policy test",
            no_watch(&policy("127.0.0.3")).replace("expect: allow", "expect: deny"),
            "test 1",
        ),
        (
            "unreadable file list",
            no_watch(&policy("127.0.0.3"))
                .replace("allowed: [127.0.0.3]", "allowed: { file: missing.txt }"),
            "cannot read",
        ),
    ];
    for (what, text, needle) in bad_edits {
        std::fs::write(&path, &text).expect("edit");
        let (code, out) = admin(&nw, "POST", "/reload").await;
        assert_eq!(code, 422, "{what}: {out}");
        let errors = out["errors"].to_string();
        assert!(errors.contains(needle), "{what}: {errors}");
        assert_eq!(
            status_of(&nw, "127.0.0.2").await,
            200,
            "{what}: the old policy must stay"
        );
        assert_eq!(status_of(&nw, "127.0.0.3").await, 403, "{what}");
        let (_, st) = admin(&nw, "GET", "/policy").await;
        assert_eq!(st["generation"], 2, "{what}");
        assert_eq!(st["last_reload"]["outcome"], "failed", "{what}");
    }
    let failed = nw.wait_log(|v| v["event"] == "policy_reload_failed");
    assert_eq!(failed["trigger"], "admin");

    let (_, st) = admin(&nw, "GET", "/policy").await;
    assert_eq!(st["source"], path.display().to_string());
    assert_eq!(st["sha256"].as_str().map(str::len), Some(64));
}

#[tokio::test]
async fn the_watcher_sees_in_place_edits_renames_and_configmap_symlink_swaps() {
    let up = Upstream::start().await;
    // A ConfigMap volume: policy.yaml -> ..data/policy.yaml, ..data -> ..v1
    let dir = tempfile::tempdir().expect("temp dir");
    let v1 = dir.path().join("..v1");
    std::fs::create_dir(&v1).expect("mkdir");
    std::fs::write(v1.join("policy.yaml"), policy("127.0.0.1")).expect("write");
    std::os::unix::fs::symlink("..v1", dir.path().join("..data")).expect("symlink");
    std::os::unix::fs::symlink("..data/policy.yaml", dir.path().join("policy.yaml"))
        .expect("symlink");
    let path = dir.path().join("policy.yaml");
    let nw = Netwarden::start_at(
        &path,
        &["--listen", "127.0.0.1:0", "--upstream", &up.url()],
        dir,
    );
    assert_eq!(status_of(&nw, "127.0.0.2").await, 403);

    // Kubernetes writes a new directory and swaps the ..data link atomically.
    let v2 = nw.dir().join("..v2");
    std::fs::create_dir(&v2).expect("mkdir");
    std::fs::write(v2.join("policy.yaml"), policy("127.0.0.2")).expect("write");
    std::os::unix::fs::symlink("..v2", nw.dir().join("..data_tmp")).expect("symlink");
    std::fs::rename(nw.dir().join("..data_tmp"), nw.dir().join("..data")).expect("swap");
    until(&nw, "127.0.0.2", 200).await;

    // An editor that writes a temporary file and renames it.
    let real = nw.dir().join("..v2/policy.yaml");
    rename_over(&real, &policy("127.0.0.3"));
    until(&nw, "127.0.0.3", 200).await;

    // An in-place write.
    std::fs::write(&real, policy("127.0.0.4")).expect("edit");
    until(&nw, "127.0.0.4", 200).await;
    // Three changes, three reloads at least: an in-place write can be seen
    // half-done, and then a later reload applies the finished file.
    let ev =
        nw.wait_log(|v| v["event"] == "policy_reloaded" && v["generation"].as_u64() >= Some(4));
    assert_eq!(ev["trigger"], "watch");
    assert_eq!(
        path.canonicalize().ok(),
        Some(real.canonicalize().expect("real path"))
    );
}

#[tokio::test]
async fn reloads_under_load_never_fail_a_request() {
    let up = Upstream::start().await;
    let nw = Netwarden::in_front_of(&no_watch(&policy("127.0.0.1")), &up);
    let path = nw.policy_path();
    let addr = nw.addr("http");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut clients = Vec::new();
    for from in ["127.0.0.1", "127.0.0.2"] {
        let stop = stop.clone();
        clients.push(tokio::spawn(async move {
            let mut n = 0u32;
            let deadline = Instant::now() + Duration::from_secs(60);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && Instant::now() < deadline {
                let r = get(from, addr, "/x", &[]).await;
                // Each decision is one of the two policies': 200 or 403, never a failure.
                assert!(r.status == 200 || r.status == 403, "{from}: {r:?}");
                n += 1;
            }
            n
        }));
    }
    // 100 reloads alternating good edits (switching who is allowed) and bad ones.
    for i in 0..100 {
        let text = if i % 2 == 0 {
            no_watch(&policy(if i % 4 == 0 { "127.0.0.2" } else { "127.0.0.1" }))
        } else {
            "version: 1\nrules: [\n".to_string()
        };
        std::fs::write(&path, text).expect("edit");
        let (code, out) = admin(&nw, "POST", "/reload").await;
        let expected = if i % 2 == 0 {
            (200, "reloaded")
        } else {
            (422, "failed")
        };
        assert_eq!(
            (code, out["outcome"].as_str().unwrap_or("")),
            expected,
            "reload {i}: {out}"
        );
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for c in clients {
        let n = c.await.expect("no failed request under reloads");
        assert!(n > 0);
    }
    let (_, st) = admin(&nw, "GET", "/policy").await;
    assert_eq!(st["generation"], 51);
}

/// Whether a TLS handshake with `addr` succeeds when trusting `ca` only.
async fn handshake(addr: std::net::SocketAddr, ca: &Path) -> bool {
    let cfg = netwarden::tls::client_config(Some(ca)).expect("CA loads");
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(cfg));
    let tcp = connect_from("127.0.0.1", addr).await;
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
    matches!(
        tokio::time::timeout(WAIT, connector.connect(name, tcp)).await,
        Ok(Ok(_))
    )
}

#[tokio::test]
async fn rotated_certificates_are_picked_up_and_a_bad_pair_keeps_the_old_one() {
    let up = Upstream::start().await;
    let (a, b) = (support::dev_certs(), support::dev_certs());
    let served = tempfile::tempdir().expect("temp dir");
    let (cert, key) = (served.path().join("tls.crt"), served.path().join("tls.key"));
    std::fs::copy(a.path().join("cert.pem"), &cert).expect("copy");
    std::fs::copy(a.path().join("key.pem"), &key).expect("copy");
    let nw = Netwarden::start(
        &policy("127.0.0.1"),
        &[],
        &[
            "--tls-listen",
            "127.0.0.1:0",
            "--cert",
            cert.to_str().expect("path"),
            "--key",
            key.to_str().expect("path"),
            "--upstream",
            &up.url(),
        ],
    );
    let addr = nw.addr("https");
    assert!(handshake(addr, &a.path().join("ca.pem")).await);
    assert!(!handshake(addr, &b.path().join("ca.pem")).await);

    // cert-manager writes the new pair.
    rename_over(
        &key,
        &std::fs::read_to_string(b.path().join("key.pem")).expect("read"),
    );
    rename_over(
        &cert,
        &std::fs::read_to_string(b.path().join("cert.pem")).expect("read"),
    );
    let deadline = Instant::now() + WAIT;
    while !handshake(addr, &b.path().join("ca.pem")).await {
        assert!(
            Instant::now() < deadline,
            "new certificate never served; logs: {:#?}",
            nw.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    nw.wait_log(|v| v["event"] == "tls_reloaded");

    // A broken certificate is refused; the good pair stays.
    rename_over(
        &cert,
        "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n",
    );
    nw.wait_log(|v| v["event"] == "tls_reload_failed");
    assert!(handshake(addr, &b.path().join("ca.pem")).await);
}
