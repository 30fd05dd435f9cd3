//! Published lists (`feed:`) through the real binary: an HTTPS publisher on
//! loopback that answers a list, 304, 500, a hang, 50 MB, an empty body, a
//! shrunk list, `0.0.0.0/0`, a redirect to an empty page; the last good
//! copy across a restart with the publisher down; an update held by the
//! policy's tests and by the reload guard. Client addresses are loopback
//! ones (127.0.0.2, ...) so that the lists can hold them.

use std::path::Path;

use crate::support::dev_certs;
use crate::support::proxy::{Netwarden, Upstream, admin, get, parse_metrics};
use crate::support::publisher::{Answer, Publisher};
use crate::support::receiver::{self, Receiver};

fn policy(url: &str, ca: &Path, state: &Path, extra_feed: &str, rest: &str) -> String {
    format!(
        "version: 1\nfeeds: {{ state_dir: \"{}\" }}\nnetworks:\n  partners:\n    feed: {{ url: \"{url}\", ca_file: \"{}\", timeout: 2s{extra_feed} }}\nrules:\n  - {{ name: console, allow_from: [partners] }}\n{rest}",
        state.display(),
        ca.display()
    )
}

fn start(dir: &tempfile::TempDir, text: &str, up: &Upstream, env: &[(&str, &str)]) -> Netwarden {
    let nw_dir = tempfile::tempdir().expect("dir");
    let path = nw_dir.path().join("policy.yaml");
    std::fs::write(&path, text).expect("policy");
    let _ = dir;
    Netwarden::start_env(
        &path,
        &["--listen", "127.0.0.1:0", "--upstream", &up.url()],
        env,
        nw_dir,
    )
}

async fn status(nw: &Netwarden, from: &str) -> u16 {
    get(from, nw.addr("http"), "/", &[]).await.status
}

async fn refresh(nw: &Netwarden) -> serde_json::Value {
    let (code, body) = admin(nw, "POST", "/feeds/refresh").await;
    assert_eq!(code, 200, "{body}");
    body["feeds"][0].clone()
}

async fn feed_status(nw: &Netwarden) -> serde_json::Value {
    admin(nw, "GET", "/policy").await.1["feeds"][0].clone()
}

const LIST: &str = "# partners\n127.0.0.2\n127.0.0.3/32\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_published_list_is_fetched_kept_current_and_a_list_that_looks_wrong_is_never_applied() {
    let certs = dev_certs();
    let (ca, cert, key) = (
        certs.path().join("ca.pem"),
        certs.path().join("cert.pem"),
        certs.path().join("key.pem"),
    );
    let publisher = Publisher::start_tls(&cert, &key, Answer::List(LIST.into())).await;
    let hook = Receiver::start(&[], receiver::Answer::Status(200)).await;
    let up = Upstream::start().await;
    let state = tempfile::tempdir().expect("state");
    let text = policy(
        &publisher.url("/partners.txt"),
        &ca,
        state.path(),
        "",
        "alerts:\n  sinks:\n    - { name: ops, type: webhook, url_env: HOOK_URL }\n",
    );
    let hook_url = hook.url("/hook");
    let nw = start(&state, &text, &up, &[("HOOK_URL", &hook_url)]);

    // Fetched at startup: the network holds the list.
    assert_eq!(status(&nw, "127.0.0.2").await, 200);
    assert_eq!(status(&nw, "127.0.0.4").await, 403);
    let f = feed_status(&nw).await;
    assert_eq!(f["source"], "state_dir");
    assert_eq!(f["prefixes"], 2);
    assert_eq!(f["generation"], 1);

    // A new list (one more address, within max_change) is applied.
    publisher.set(Answer::List(format!("{LIST}127.0.0.4\n")));
    let r = refresh(&nw).await;
    assert_eq!(r["outcome"], "updated", "{r}");
    assert_eq!(status(&nw, "127.0.0.4").await, 200);
    let line = nw.wait_log(|v| v["event"] == "feed_updated");
    assert_eq!(line["changes"], "+1 -0 (+127.0.0.4/32)");
    assert_eq!(line["generation"], 2);
    assert_eq!(feed_status(&nw).await["generation"], 2);

    // The next fetch is conditional: 304, nothing to do.
    let r = refresh(&nw).await;
    assert_eq!(r["outcome"], "unchanged", "{r}");
    let seen = publisher.seen();
    assert!(
        seen.last().is_some_and(|(_, inm)| inm.is_some()),
        "If-None-Match sent: {seen:?}"
    );

    // Everything that looks wrong is refused or fails; the last good list
    // (three addresses) stays each time.
    publisher.set_path("/empty", Answer::List(String::new()));
    let wrong = [
        (Answer::Status(500), "failed", "http_status"),
        (Answer::List(String::new()), "refused", "empty"),
        (
            Answer::List("<html>moved</html>\n".into()),
            "refused",
            "unparseable",
        ),
        (
            Answer::List("0.0.0.0/0\n127.0.0.2\n".into()),
            "refused",
            "too_wide",
        ),
        (
            Answer::List("127.0.0.2\n".into()),
            "refused",
            "changed_too_much",
        ),
        (Answer::Redirect("/empty".into()), "refused", "empty"),
        (
            Answer::Redirect(format!("http://{}/partners.txt", publisher.addr)),
            "failed",
            "redirect",
        ),
        (
            Answer::Redirect("file:///etc/passwd".into()),
            "failed",
            "redirect",
        ),
        (
            Answer::NotModified("\"another\"".into()),
            "failed",
            "http_status",
        ),
        // A 304 without the ETag a 200 would carry (third review).
        (Answer::Status(304), "failed", "http_status"),
        (Answer::Huge(50 * 1024 * 1024), "failed", "too_large"),
        (Answer::Hang, "failed", "timeout"),
    ];
    for (answer, outcome, reason) in wrong {
        let what = format!("{answer:?}");
        publisher.set(answer);
        let r = refresh(&nw).await;
        assert_eq!(r["outcome"], outcome, "{what}: {r}");
        assert_eq!(r["problem"]["reason"], reason, "{what}: {r}");
        for from in ["127.0.0.2", "127.0.0.3", "127.0.0.4"] {
            assert_eq!(status(&nw, from).await, 200, "{what}: {from}");
        }
        assert_eq!(status(&nw, "127.0.0.9").await, 403, "{what}");
    }
    let f = feed_status(&nw).await;
    assert_eq!(f["prefixes"], 3);
    assert_eq!(f["failures"], 12);
    let (_, ready) = (0, get("127.0.0.1", nw.addr("admin"), "/readyz", &[]).await);
    assert!(
        ready
            .body
            .contains("degraded: 1 published list keeps its last good copy"),
        "{}",
        ready.body
    );
    let metrics = get("127.0.0.1", nw.addr("admin"), "/metrics", &[]).await;
    let m = parse_metrics(&metrics.body);
    assert_eq!(m["netwarden_feed_degraded{network=\"partners\"}"], 1.0);
    assert_eq!(m["netwarden_feed_prefixes{network=\"partners\"}"], 3.0);
    assert_eq!(
        m["netwarden_feed_fetches_total{network=\"partners\",outcome=\"refused\"}"],
        5.0
    );
    // Alerted once for the episode (the first refusal), kind feed.
    let got = hook.wait_for(1).await;
    let feed_alerts: Vec<_> = got
        .iter()
        .map(|g| g.json())
        .filter(|j| j["kind"] == "feed")
        .collect();
    assert_eq!(feed_alerts.len(), 1, "{feed_alerts:#?}");
    assert_eq!(feed_alerts[0]["feed"]["reason"], "empty");
    assert_eq!(feed_alerts[0]["feed"]["network"], "partners");

    // A good list again: applied, and the feed is well again.
    publisher.set(Answer::List(format!("{LIST}127.0.0.4\n127.0.0.5\n")));
    assert_eq!(refresh(&nw).await["outcome"], "updated");
    assert_eq!(status(&nw, "127.0.0.5").await, 200);
    let ready = get("127.0.0.1", nw.addr("admin"), "/readyz", &[]).await;
    assert_eq!(ready.body, "ready\n");
    assert_eq!(nw.terminate(), 0);

    // A restart with the publisher down starts from the last good copy.
    publisher.set(Answer::Status(503));
    let nw = start(&state, &text, &up, &[("HOOK_URL", &hook_url)]);
    assert_eq!(status(&nw, "127.0.0.5").await, 200);
    assert_eq!(status(&nw, "127.0.0.9").await, 403);
    assert_eq!(feed_status(&nw).await["generation"], 3);
    assert_eq!(nw.terminate(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_start_with_no_copy_and_no_publisher_fails_closed_and_says_why() {
    let certs = dev_certs();
    let publisher = Publisher::start_tls(
        &certs.path().join("cert.pem"),
        &certs.path().join("key.pem"),
        Answer::Status(503),
    )
    .await;
    let state = tempfile::tempdir().expect("state");
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("policy.yaml");
    std::fs::write(
        &path,
        policy(
            &publisher.url("/partners.txt"),
            &certs.path().join("ca.pem"),
            state.path(),
            "",
            "",
        ),
    )
    .expect("policy");
    let path_s = path.to_str().expect("utf-8").to_string();
    let (code, err) = crate::support::serve_exits(&path, std::time::Duration::from_secs(20)).await;
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("network 'partners': its published list or DNS name could not be fetched: the publisher answered 503"),
        "{err}"
    );
    assert!(err.contains("its feed has no list yet"), "{err}");
    // A 304 to a request that asked nothing conditionally confirms nothing.
    publisher.set(Answer::Status(304));
    let (code, err) = crate::support::serve_exits(&path, std::time::Duration::from_secs(20)).await;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("the publisher answered 304"), "{err}");
    // And `check` says the same without any network.
    let (code, _, err) = crate::support::run(&["check", "--policy", &path_s]);
    assert_eq!(code, 1);
    assert!(err.contains("name a snapshot: file"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_that_fails_the_policy_tests_or_locks_out_the_admins_is_held() {
    let certs = dev_certs();
    let (ca, cert, key) = (
        certs.path().join("ca.pem"),
        certs.path().join("cert.pem"),
        certs.path().join("key.pem"),
    );
    let four = "127.0.0.2\n127.0.0.3\n127.0.0.4\n127.0.0.5\n";
    let without_2 = "127.0.0.3\n127.0.0.4\n127.0.0.5\n127.0.0.6\n";
    let up = Upstream::start().await;

    // The policy's own tests say 127.0.0.2 must get in.
    let publisher = Publisher::start_tls(&cert, &key, Answer::List(four.into())).await;
    let state = tempfile::tempdir().expect("state");
    let text = policy(
        &publisher.url("/l"),
        &ca,
        state.path(),
        "",
        "tests:\n  - { ip: 127.0.0.2, path: /, expect: allow }\n",
    );
    let nw = start(&state, &text, &up, &[]);
    publisher.set(Answer::List(without_2.into()));
    let r = refresh(&nw).await;
    assert_eq!(r["outcome"], "held", "{r}");
    assert_eq!(r["problem"]["reason"], "policy_tests", "{r}");
    assert_eq!(status(&nw, "127.0.0.2").await, 200);
    assert_eq!(status(&nw, "127.0.0.6").await, 403);
    assert_eq!(nw.terminate(), 0);

    // No tests, but every recent admin (127.0.0.2) would be shut out: the
    // reload guard holds it, whatever guard: says.
    let publisher = Publisher::start_tls(&cert, &key, Answer::List(four.into())).await;
    let state = tempfile::tempdir().expect("state");
    let text = policy(
        &publisher.url("/l"),
        &ca,
        state.path(),
        "",
        "server: { reload: { guard: warn } }\n",
    );
    let nw = start(&state, &text, &up, &[]);
    assert_eq!(status(&nw, "127.0.0.2").await, 200);
    publisher.set(Answer::List(
        "127.0.0.3\n127.0.0.4\n127.0.0.5\n127.0.0.6\n".into(),
    ));
    let r = refresh(&nw).await;
    assert_eq!(r["outcome"], "held", "{r}");
    assert_eq!(r["problem"]["reason"], "reload_guard", "{r}");
    assert_eq!(status(&nw, "127.0.0.2").await, 200);
    assert_eq!(nw.terminate(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_older_than_max_age_is_kept_loudly_or_emptied_as_on_stale_says() {
    let certs = dev_certs();
    let (ca, cert, key) = (
        certs.path().join("ca.pem"),
        certs.path().join("cert.pem"),
        certs.path().join("key.pem"),
    );
    let publisher = Publisher::start_tls(&cert, &key, Answer::List(LIST.into())).await;
    let hook = Receiver::start(&[], receiver::Answer::Status(200)).await;
    let hook_url = hook.url("/hook");
    let up = Upstream::start().await;
    let state = tempfile::tempdir().expect("state");
    let alerts = "alerts:\n  sinks:\n    - { name: ops, type: webhook, url_env: HOOK_URL }\n";
    let keep = policy(&publisher.url("/l"), &ca, state.path(), "", alerts);
    let nw = start(&state, &keep, &up, &[("HOOK_URL", &hook_url)]);
    assert_eq!(nw.terminate(), 0);

    // The copy was last confirmed long ago, and the publisher is down.
    let copy = std::fs::read_dir(state.path())
        .expect("state dir")
        .map(|e| e.expect("entry").path())
        .find(|p| p.extension().is_some_and(|x| x == "json"))
        .expect("a copy was written");
    let text = std::fs::read_to_string(&copy).expect("copy");
    let mut v: serde_json::Value = serde_json::from_str(&text).expect("json");
    v["fetched_at"] = "2026-01-01T00:00:00Z".into();
    std::fs::write(&copy, v.to_string()).expect("write");
    publisher.set(Answer::Status(503));

    // on_stale: keep (the default): still allowed, and said loudly.
    let nw = start(&state, &keep, &up, &[("HOOK_URL", &hook_url)]);
    assert_eq!(status(&nw, "127.0.0.2").await, 200);
    let ready = get("127.0.0.1", nw.addr("admin"), "/readyz", &[]).await;
    assert!(
        ready
            .body
            .contains("degraded: 1 published list or DNS name is older than max_age"),
        "{}",
        ready.body
    );
    assert_eq!(feed_status(&nw).await["stale"], true);
    assert_eq!(refresh(&nw).await["outcome"], "failed");
    let got = hook.wait_for(1).await;
    let stale: Vec<_> = got
        .iter()
        .map(|g| g.json())
        .filter(|j| j["kind"] == "feed")
        .collect();
    assert_eq!(stale.len(), 1, "{stale:#?}");
    assert_eq!(stale[0]["feed"]["problem"], "stale");
    assert_eq!(stale[0]["feed"]["on_stale"], "keep");
    assert_eq!(nw.terminate(), 0);

    // on_stale: empty: the network holds none of it until a fetch works.
    let empty = policy(
        &publisher.url("/l"),
        &ca,
        state.path(),
        ", on_stale: empty",
        "",
    );
    let nw = start(&state, &empty, &up, &[]);
    assert_eq!(status(&nw, "127.0.0.2").await, 403);
    publisher.set(Answer::List(LIST.into()));
    assert_eq!(refresh(&nw).await["outcome"], "unchanged");
    assert_eq!(status(&nw, "127.0.0.2").await, 200);
    assert_eq!(feed_status(&nw).await["stale"], false);
    assert_eq!(nw.terminate(), 0);
}

/// Red-team review, issue 25: a reload that adds a feed whose publisher is
/// down served its `snapshot:`; one whose publisher is up could not load.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_that_adds_a_feed_fetches_it_and_never_serves_a_snapshot() {
    let certs = dev_certs();
    let (ca, cert, key) = (
        certs.path().join("ca.pem"),
        certs.path().join("cert.pem"),
        certs.path().join("key.pem"),
    );
    let publisher = Publisher::start_tls(&cert, &key, Answer::Status(503)).await;
    let up = Upstream::start().await;
    let state = tempfile::tempdir().expect("state");
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("policy.yaml");
    let before = format!(
        "version: 1\nfeeds: {{ state_dir: \"{}\" }}\nnetworks:\n  office: [127.0.0.10]\nrules:\n  - {{ name: console, allow_from: [office] }}\nserver: {{ reload: {{ watch: false }} }}\n",
        state.path().display()
    );
    std::fs::write(&path, &before).expect("policy");
    std::fs::write(dir.path().join("snap.txt"), "127.0.0.5\n").expect("snapshot");
    let nw = Netwarden::start_at(
        &path,
        &["--listen", "127.0.0.1:0", "--upstream", &up.url()],
        tempfile::tempdir().expect("other"),
    );
    let after = format!(
        "version: 1\nfeeds: {{ state_dir: \"{}\" }}\nnetworks:\n  office: [127.0.0.10]\n  vpn: {{ feed: {{ url: \"{}\", ca_file: \"{}\", timeout: 2s, snapshot: snap.txt }} }}\nrules:\n  - {{ name: console, allow_from: [office, vpn] }}\nserver: {{ reload: {{ watch: false }} }}\n",
        state.path().display(),
        publisher.url("/vpn.txt"),
        ca.display()
    );
    std::fs::write(&path, &after).expect("policy");
    let (code, body) = admin(&nw, "POST", "/reload").await;
    assert_eq!(code, 422, "{body}");
    let errors = body["errors"].to_string();
    assert!(
        errors.contains("network 'vpn': its published list or DNS name could not be fetched"),
        "{errors}"
    );
    assert!(errors.contains("snapshot"), "{errors}");
    assert_eq!(status(&nw, "127.0.0.5").await, 403);
    // The publisher up: the reload fetches the list first, and applies it.
    let four = "127.0.0.6\n127.0.0.8\n127.0.0.9\n127.0.0.11\n";
    publisher.set(Answer::List(four.into()));
    let (code, body) = admin(&nw, "POST", "/reload").await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(status(&nw, "127.0.0.6").await, 200);
    assert_eq!(status(&nw, "127.0.0.5").await, 403);

    // An edit staged on disk (not reloaded) does not ride in on a list
    // update: the update recompiles the running policy's own text.
    let staged = after
        .replace(
            "allow_from: [office, vpn]",
            "allow_from: [office, vpn, staged]",
        )
        .replace(
            "  office: [127.0.0.10]\n",
            "  office: [127.0.0.10]\n  staged: [127.0.0.0/24]\n",
        );
    std::fs::write(&path, staged).expect("policy");
    publisher.set(Answer::List(format!("{four}127.0.0.7\n")));
    assert_eq!(refresh(&nw).await["outcome"], "updated");
    assert_eq!(status(&nw, "127.0.0.7").await, 200);
    assert_eq!(status(&nw, "127.0.0.5").await, 403);
    assert_eq!(nw.terminate(), 0);
}

/// Red-team review, issue 25: `on_stale: empty` waited for a reload that
/// the reload guard (or the policy's tests) would hold, so an expired list
/// kept letting people in. It now expires by itself, per request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_list_stops_matching_by_itself_whatever_would_hold_a_reload() {
    let certs = dev_certs();
    let (ca, cert, key) = (
        certs.path().join("ca.pem"),
        certs.path().join("cert.pem"),
        certs.path().join("key.pem"),
    );
    let publisher = Publisher::start_tls(&cert, &key, Answer::List(LIST.into())).await;
    let up = Upstream::start().await;
    let state = tempfile::tempdir().expect("state");
    // The policy's own test says 127.0.0.2 gets in, and 127.0.0.2 is the
    // only recent admin: a reload emptying the list would be held twice.
    let text = policy(
        &publisher.url("/l"),
        &ca,
        state.path(),
        ", every: 1m, max_age: 2m, on_stale: empty",
        "",
    );
    let nw = start(&state, &text, &up, &[]);
    assert_eq!(nw.terminate(), 0);
    // Confirmed 2 min less 3 s ago; the publisher is down from now on.
    let copy = std::fs::read_dir(state.path())
        .expect("state dir")
        .map(|e| e.expect("entry").path())
        .find(|p| p.extension().is_some_and(|x| x == "json"))
        .expect("a copy");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&copy).expect("copy")).expect("json");
    let confirmed = jiff::Timestamp::now() - jiff::SignedDuration::from_secs(117);
    v["fetched_at"] = confirmed.to_string().into();
    std::fs::write(&copy, v.to_string()).expect("write");
    publisher.set(Answer::Status(503));
    let nw = start(&state, &text, &up, &[]);
    assert_eq!(status(&nw, "127.0.0.2").await, 200);
    tokio::time::sleep(std::time::Duration::from_secs(4)).await;
    assert_eq!(status(&nw, "127.0.0.2").await, 403);
    let f = feed_status(&nw).await;
    assert_eq!(f["stale"], true, "{f}");
    let ready = get("127.0.0.1", nw.addr("admin"), "/readyz", &[]).await;
    assert!(ready.body.contains("older than max_age"), "{}", ready.body);
    assert_eq!(nw.terminate(), 0);
}
