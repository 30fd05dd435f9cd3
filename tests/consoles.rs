//! Real consoles behind the real binary, with the recipes of
//! docs/consoles.md (`policies/consoles/`): Django's own admin site, its
//! sign-in view, CSRF and sessions, installed from PyPI into the tests'
//! virtual environment. A sign-in from the office succeeds; wrong
//! passwords (Django's 200) lock the account from that network while
//! another account still signs in; a sign-in without its CSRF token (403)
//! resets nothing; home broadband gets netwarden's block page.

use crate::support;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::proxy::{Netwarden, Reply, WAIT, connect_from, exchange, get};

/// A Django admin console (tests/support/django_console.py) on a loopback
/// port of its own.
struct Django {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Django {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

impl Django {
    fn start() -> Self {
        let python = support::console::python();
        let dir = tempfile::tempdir().expect("dir");
        let port = free_port();
        let mut child = Command::new(python)
            .arg(support::repo("tests/support/django_console.py"))
            .arg(dir.path())
            .arg(port.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("python runs the Django console");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) if line.contains("ready") => break,
                Ok(_) => {}
                Err(_) => panic!("the Django console never got ready"),
            }
        }
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "Django never listened");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self {
            child,
            port,
            _dir: dir,
        }
    }
}

/// A recipe from policies/consoles/, its networks moved to loopback
/// (the office 127.0.0.1 and .4, the VPN ::1) and its own tests, which
/// name the documentation ranges, left out.
fn recipe(name: &str, edits: &[(&str, &str)]) -> String {
    let text = std::fs::read_to_string(support::repo(&format!("policies/consoles/{name}.yaml")))
        .expect("recipe");
    let mut policy = text
        .split("\ntests:")
        .next()
        .expect("the policy")
        .replace("office: [203.0.113.0/24]", "office: [127.0.0.1, 127.0.0.4]")
        .replace("vpn: [198.51.100.0/24]", "vpn: [\"::1\"]");
    for (from, to) in edits {
        assert!(policy.contains(from), "{name}: {from}");
        policy = policy.replace(from, to);
    }
    policy
}

/// The sign-in form's CSRF cookie and field, as a browser gets them.
async fn csrf(from: &str, nw: SocketAddr) -> (String, String) {
    let page = get(from, nw, "/admin/login/", &[]).await;
    assert_eq!(page.status, 200, "{page:?}");
    let cookie = page
        .head
        .lines()
        .find_map(|l| {
            let (n, v) = l.split_once(':')?;
            let v = v.trim();
            (n.eq_ignore_ascii_case("set-cookie") && v.starts_with("csrftoken="))
                .then(|| v.split(';').next().unwrap_or_default().to_string())
        })
        .expect("a csrftoken cookie");
    let field = page
        .body
        .split("name=\"csrfmiddlewaretoken\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the form's csrfmiddlewaretoken")
        .to_string();
    (cookie, field)
}

/// `POST /admin/login/` as Django's form sends it; `token` `None` leaves
/// the CSRF token out.
async fn sign_in(
    from: &str,
    nw: SocketAddr,
    token: Option<&(String, String)>,
    user: &str,
    password: &str,
) -> Reply {
    let mut body = format!("username={user}&password={password}&next=%2Fadmin%2F");
    let mut cookie = String::new();
    if let Some((c, field)) = token {
        body = format!("csrfmiddlewaretoken={field}&{body}");
        cookie = format!("Cookie: {c}\r\n");
    }
    let req = format!(
        "POST /admin/login/ HTTP/1.1\r\nHost: console.test\r\nConnection: close\r\n{cookie}\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    exchange(connect_from(from, nw).await, req.as_bytes()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn django_admin_behind_its_recipe() {
    let django = tokio::task::spawn_blocking(Django::start)
        .await
        .expect("joined");
    let policy = recipe("django-admin", &[("after: 5", "after: 3")]);
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("policy.yaml");
    std::fs::write(&path, &policy).expect("write");
    let upstream = format!("http://127.0.0.1:{}", django.port);
    let nw = Netwarden::start_env(
        &path,
        &["--listen", "127.0.0.1:0", "--upstream", &upstream],
        &[("NETWARDEN_ACCOUNT_KEY", "a-test-key-of-more-than-16-bytes")],
        dir,
    );
    let addr = nw.addr("http");

    // The office signs in: Django's redirect, counted as a success.
    let token = csrf("127.0.0.1", addr).await;
    let ok = sign_in("127.0.0.1", addr, Some(&token), "yamada", "right-password").await;
    assert_eq!(ok.status, 302, "{ok:?}");
    nw.wait_log(|v| v["event"] == "decision" && v["login.outcome"] == "succeeded");

    // Another desk guesses suzuki's password: Django answers 200 with the
    // form; a sign-in without its CSRF token (403) between the guesses is
    // neither a failure nor a success and resets nothing.
    let token = csrf("127.0.0.4", addr).await;
    let mut statuses = Vec::new();
    statuses.push(
        sign_in("127.0.0.4", addr, Some(&token), "suzuki", "guess1")
            .await
            .status,
    );
    statuses.push(
        sign_in("127.0.0.4", addr, None, "suzuki", "guess2")
            .await
            .status,
    );
    statuses.push(
        sign_in("127.0.0.4", addr, Some(&token), "suzuki", "guess3")
            .await
            .status,
    );
    statuses.push(
        sign_in("127.0.0.4", addr, Some(&token), "suzuki", "guess4")
            .await
            .status,
    );
    statuses.push(
        sign_in("127.0.0.4", addr, Some(&token), "suzuki", "other-password")
            .await
            .status,
    );
    assert_eq!(statuses, [200, 403, 200, 200, 429]);
    nw.wait_log(|v| v["event"] == "lockout");
    // From the same desk, another account still signs in.
    let ok = sign_in("127.0.0.4", addr, Some(&token), "yamada", "right-password").await;
    assert_eq!(ok.status, 302, "{ok:?}");

    // Home broadband: netwarden's own answer, Django never asked.
    let home = sign_in("127.0.0.2", addr, None, "yamada", "right-password").await;
    assert_eq!(home.status, 403);
    assert!(
        home.body.contains("login_not_allowed_from_this_network"),
        "{home:?}"
    );
    let home = get("127.0.0.2", addr, "/admin/", &[]).await;
    assert_eq!(home.status, 403);
}

/// Every recipe of docs/consoles.md passes `check`, its own tests (the
/// sign-in routes, allowed from the office, denied from home) included,
/// without a warning.
#[test]
fn every_console_recipe_passes_check_with_its_tests() {
    let dir = support::repo("policies/consoles");
    let mut recipes: Vec<_> = std::fs::read_dir(&dir)
        .expect("policies/consoles")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    recipes.sort();
    assert!(recipes.len() >= 8, "{recipes:?}");
    let docs = std::fs::read_to_string(support::repo("docs/consoles.md")).expect("docs");
    for recipe in recipes {
        let shown = recipe.display().to_string();
        let (code, out, err) = support::run(&["check", "--policy", &shown]);
        assert_eq!(code, 0, "{shown}: {out}{err}");
        assert!(
            out.contains("0 warning(s)") && out.contains("test(s) passed"),
            "{shown}: {out}"
        );
        let name = recipe
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        assert!(docs.contains(name), "docs/consoles.md does not name {name}");
    }
}
