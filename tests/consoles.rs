//! Real consoles behind the real binary, with the recipes of
//! docs/consoles.md (`policies/consoles/`), installed from PyPI into the
//! tests' virtual environment: Django's own admin site (its sign-in view,
//! CSRF and sessions) and Jupyter Server (its password form, `_xsrf` and
//! WebSockets). The office signs in; wrong passwords lock the account from
//! that network (Django) or the desk's address (Jupyter) while others still
//! sign in; a sign-in without its CSRF token (403) resets nothing; home
//! broadband gets netwarden's block page.

use crate::support;

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::proxy::{Netwarden, Reply, WAIT, connect_from, exchange, get};

/// A console written in Python (tests/support/*_console.py), run from the
/// tests' virtual environment on a loopback port of its own.
struct PyConsole {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for PyConsole {
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

impl PyConsole {
    /// `script DIR PORT`, once it accepts connections.
    fn start(script: &str) -> Self {
        let python = support::console::python();
        let dir = tempfile::tempdir().expect("dir");
        let port = free_port();
        let child = Command::new(python)
            .arg(support::repo(&format!("tests/support/{script}")))
            .arg(dir.path())
            .arg(port.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python runs the console");
        let mut console = Self {
            child,
            port,
            _dir: dir,
        };
        let deadline = Instant::now() + WAIT;
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                console.child.try_wait().ok().flatten().is_none(),
                "{script} exited before it listened"
            );
            assert!(Instant::now() < deadline, "{script} never listened");
            std::thread::sleep(Duration::from_millis(50));
        }
        console.port = port;
        console
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

/// netwarden with `policy` in front of `console`.
fn guard(policy: &str, console: &PyConsole) -> Netwarden {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("policy.yaml");
    std::fs::write(&path, policy).expect("write");
    let upstream = format!("http://127.0.0.1:{}", console.port);
    Netwarden::start_env(
        &path,
        &["--listen", "127.0.0.1:0", "--upstream", &upstream],
        &[("NETWARDEN_ACCOUNT_KEY", "a-test-key-of-more-than-16-bytes")],
        dir,
    )
}

/// The values of a response's `Set-Cookie` lines, without attributes.
fn cookies(r: &Reply) -> Vec<String> {
    r.head
        .lines()
        .filter_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case("set-cookie")
                .then(|| v.trim().split(';').next().unwrap_or_default().to_string())
        })
        .collect()
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
    let django = tokio::task::spawn_blocking(|| PyConsole::start("django_console.py"))
        .await
        .expect("joined");
    let nw = guard(
        &recipe("django-admin", &[("after: 5", "after: 3")]),
        &django,
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

/// Jupyter's sign-in form: its `_xsrf` cookie and field.
async fn xsrf(from: &str, nw: SocketAddr) -> (String, String) {
    let page = get(from, nw, "/login", &[]).await;
    assert_eq!(page.status, 200, "{page:?}");
    let cookie = cookies(&page)
        .into_iter()
        .find(|c| c.starts_with("_xsrf="))
        .expect("an _xsrf cookie");
    let field = page
        .body
        .split("name=\"_xsrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the form's _xsrf")
        .replace('|', "%7C");
    (cookie, field)
}

/// `POST /login` as Jupyter's form sends it (`token` `None`: no `_xsrf`).
async fn jupyter_sign_in(
    from: &str,
    nw: SocketAddr,
    token: Option<&(String, String)>,
    password: &str,
) -> Reply {
    let (cookie, body) = match token {
        Some((c, field)) => (
            format!("Cookie: {c}\r\n"),
            format!("_xsrf={field}&password={password}"),
        ),
        None => (String::new(), format!("password={password}")),
    };
    let req = format!(
        "POST /login HTTP/1.1\r\nHost: console.test\r\nConnection: close\r\n{cookie}\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    exchange(connect_from(from, nw).await, req.as_bytes()).await
}

/// Jupyter Server from PyPI behind its recipe: the password form (no
/// account: failures count by address), its `_xsrf` check (403, which
/// resets nothing), and a WebSocket for the signed-in office; home
/// broadband gets netwarden's block page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jupyter_server_behind_its_recipe() {
    let jupyter = tokio::task::spawn_blocking(|| PyConsole::start("jupyter_console.py"))
        .await
        .expect("joined");
    let nw = guard(&recipe("jupyter", &[("after: 10", "after: 3")]), &jupyter);
    let addr = nw.addr("http");

    let token = xsrf("127.0.0.1", addr).await;
    let ok = jupyter_sign_in("127.0.0.1", addr, Some(&token), "right-password").await;
    assert_eq!(ok.status, 302, "{ok:?}");
    let session = cookies(&ok)
        .into_iter()
        .find(|c| c.starts_with("username-"))
        .expect("Jupyter's session cookie");

    // Guesses from another desk: 401 each, a token-less one (403) between.
    let desk = xsrf("127.0.0.4", addr).await;
    let mut statuses = Vec::new();
    statuses.push(
        jupyter_sign_in("127.0.0.4", addr, Some(&desk), "guess1")
            .await
            .status,
    );
    statuses.push(
        jupyter_sign_in("127.0.0.4", addr, None, "guess2")
            .await
            .status,
    );
    statuses.push(
        jupyter_sign_in("127.0.0.4", addr, Some(&desk), "guess3")
            .await
            .status,
    );
    statuses.push(
        jupyter_sign_in("127.0.0.4", addr, Some(&desk), "guess4")
            .await
            .status,
    );
    statuses.push(
        jupyter_sign_in("127.0.0.4", addr, Some(&desk), "right-password")
            .await
            .status,
    );
    assert_eq!(statuses, [401, 403, 401, 401, 429]);
    nw.wait_log(|v| v["event"] == "lockout");
    // The office's own desk is another address.
    let again = jupyter_sign_in("127.0.0.1", addr, Some(&token), "right-password").await;
    assert_eq!(again.status, 302, "{again:?}");

    // A WebSocket for the signed-in office (Jupyter's event stream).
    let upgrade = format!(
        "GET /api/events/subscribe HTTP/1.1\r\nHost: console.test\r\nConnection: Upgrade\r\n\
         Upgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Version: 13\r\nCookie: {session}\r\n\r\n"
    );
    let ws =
        support::proxy::exchange_one(connect_from("127.0.0.1", addr).await, upgrade.as_bytes())
            .await;
    assert_eq!(ws.status, 101, "{ws:?}");
    let from_home =
        support::proxy::exchange_one(connect_from("127.0.0.2", addr).await, upgrade.as_bytes())
            .await;
    assert_eq!(from_home.status, 403, "{from_home:?}");

    let home = jupyter_sign_in("127.0.0.2", addr, None, "right-password").await;
    assert_eq!(home.status, 403);
    assert!(
        home.body.contains("login_not_allowed_from_this_network"),
        "{home:?}"
    );
}
