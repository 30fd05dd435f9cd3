//! Sign-ins by account: the account is read from the body (form, multipart,
//! JSON) and the console still receives every byte; lockout keys by account
//! and network; account names never reach the logs. Through the real binary
//! in front of a console that answers 401 to a body holding `wrong`.

use crate::support;

use support::proxy::{Netwarden, connect_from, exchange};
use support::sign_in::{SignInConsole, form};

const POLICY: &str = "version: 1
networks:
  office: [127.0.0.0/24]
rules:
  - name: login
    paths: [/login]
    methods: [POST]
    login: true
    allow_from: [office]
    account: { form: username, json: /user/email, max_body: 4096 }
  - { name: console, paths: [\"/**\"], allow_from: [office] }
lockout:
  after: 3
  within: 1m
  lock_for: 30s
  key: account_and_network
  account_key_env: NW_TEST_ACCOUNT_KEY
";

const KEY: (&str, &str) = ("NW_TEST_ACCOUNT_KEY", "test-key-of-more-than-16-bytes");

fn start(policy: &str, console: &SignInConsole) -> Netwarden {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("policy.yaml");
    std::fs::write(&path, policy).expect("write");
    Netwarden::start_env(
        &path,
        &["--listen", "127.0.0.1:0", "--upstream", &console.url],
        &[KEY],
        dir,
    )
}

/// Sends `head` (without its blank line) and `body` parts as written,
/// pausing between parts so that they arrive as separate reads.
async fn send_raw(nw: &Netwarden, head: &str, parts: &[&[u8]]) -> support::proxy::Reply {
    use tokio::io::AsyncWriteExt;
    let mut s = connect_from("127.0.0.1", nw.addr("http")).await;
    s.write_all(format!("{head}\r\n").as_bytes())
        .await
        .expect("head");
    for p in parts {
        s.write_all(p).await.expect("part");
        s.flush().await.expect("flush");
        tokio::time::sleep(std::time::Duration::from_millis(30)).await;
    }
    exchange(s, b"").await
}

fn chunked(parts: &[&[u8]]) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = parts
        .iter()
        .map(|p| {
            let mut c = format!("{:x}\r\n", p.len()).into_bytes();
            c.extend_from_slice(p);
            c.extend_from_slice(b"\r\n");
            c
        })
        .collect();
    out.push(b"0\r\n\r\n".to_vec());
    out
}

/// What is sent (a name, the head, the body's writes), what the console
/// must receive, and the `login.account` it must be logged with.
type Case = (&'static str, String, Vec<Vec<u8>>, Vec<u8>, &'static str);

#[tokio::test]
async fn the_console_receives_every_byte_after_the_account_is_read() {
    let console = SignInConsole::start().await;
    let nw = start(POLICY, &console);
    let head = |ct: &str, framing: &str| {
        format!(
            "POST /login HTTP/1.1\r\nHost: console.test\r\nConnection: close\r\nContent-Type: {ct}\r\n{framing}"
        )
    };
    let form_body = b"username=alice&password=right".to_vec();
    let json_body = br#"{"user":{"email":"Alice@Example.com"},"password":"right"}"#.to_vec();
    let multi_body = b"--XX\r\nContent-Disposition: form-data; name=\"username\"\r\n\r\nalice\r\n--XX\r\nContent-Disposition: form-data; name=\"password\"\r\n\r\nright\r\n--XX--\r\n".to_vec();
    // Bigger than max_body (4096): forwarded whole, counted without an account.
    let mut big = b"username=alice&pad=".to_vec();
    big.extend(std::iter::repeat_n(b'x', 20_000));
    let form_ct = "application/x-www-form-urlencoded";
    let cases: Vec<Case> = vec![
        (
            "form, Content-Length",
            head(form_ct, &format!("Content-Length: {}\r\n", form_body.len())),
            vec![form_body.clone()],
            form_body.clone(),
            "read",
        ),
        (
            "JSON, chunked, split mid-name",
            head("application/json", "Transfer-Encoding: chunked\r\n"),
            chunked(&[&json_body[..12], &json_body[12..30], &json_body[30..]]),
            json_body.clone(),
            "read",
        ),
        (
            "multipart, Content-Length",
            head(
                "multipart/form-data; boundary=XX",
                &format!("Content-Length: {}\r\n", multi_body.len()),
            ),
            vec![multi_body.clone()],
            multi_body.clone(),
            "read",
        ),
        (
            "oversized, Content-Length",
            head(form_ct, &format!("Content-Length: {}\r\n", big.len())),
            vec![big.clone()],
            big.clone(),
            "oversized",
        ),
        (
            "oversized, chunked",
            head(form_ct, "Transfer-Encoding: chunked\r\n"),
            chunked(&[&big[..3000], &big[3000..9000], &big[9000..]]),
            big.clone(),
            "oversized",
        ),
        (
            "not JSON",
            head("application/json", "Content-Length: 9\r\n"),
            vec![b"{\"user\":{".to_vec()],
            b"{\"user\":{".to_vec(),
            "unparseable",
        ),
    ];
    for (i, (what, head, parts, sent, state)) in cases.iter().enumerate() {
        let parts: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
        let r = send_raw(&nw, head, &parts).await;
        assert!(matches!(r.status, 302 | 401), "{what}: {r:?}");
        let got = console.bodies();
        assert_eq!(got.len(), i + 1, "{what}");
        assert!(
            got[i] == *sent,
            "{what}: the console received other bytes ({} vs {})",
            got[i].len(),
            sent.len()
        );
        let d = nw.wait_log(|v| {
            v["event"] == "decision"
                && v["login.account"] == *state
                && v["login.outcome"].is_string()
        });
        assert_eq!(d["login.account"], *state, "{what}");
    }
}

#[tokio::test]
async fn failures_lock_the_account_from_that_network_and_nobody_else() {
    let console = SignInConsole::start().await;
    let nw = start(POLICY, &console);
    let addr = nw.addr("http");
    // Case variants are one account.
    for name in ["alice", "Alice", "ALICE"] {
        let r = form(
            "127.0.0.1",
            addr,
            &format!("username={name}&password=wrong"),
        )
        .await;
        assert_eq!(r.status, 401, "{r:?}");
    }
    let lock = nw.wait_log(|v| v["event"] == "lockout");
    assert_eq!(lock["key"], "account_and_network");
    // Locked for alice from 127.0.0.0/24, even from another desk there...
    let r = form("127.0.0.9", addr, "username=alice&password=right").await;
    assert_eq!(r.status, 429, "{r:?}");
    // ...but bob signs in from the same address.
    let r = form("127.0.0.1", addr, "username=bob&password=right").await;
    assert_eq!(r.status, 302, "{r:?}");
    assert_eq!(console.sign_ins(), 4);
    // The account names never reach the log; their hashes tell them apart.
    let raw = nw.raw_logs().join("\n");
    for name in ["alice", "Alice", "ALICE", "bob"] {
        assert!(!raw.contains(name), "{name} in the log:\n{raw}");
    }
    let failed: Vec<_> = nw
        .logs()
        .into_iter()
        .filter(|v| v["event"] == "login_failed")
        .collect();
    assert_eq!(failed.len(), 3);
    assert!(
        failed
            .iter()
            .all(|v| v["account.hash"] == failed[0]["account.hash"])
    );
    let ok = nw.wait_log(|v| v["event"] == "login_succeeded");
    assert_ne!(ok["account.hash"], failed[0]["account.hash"]);
    assert_eq!(ok["account.hash"].as_str().map(str::len), Some(12));
}

/// A field given twice with different values may be read either way by
/// the console: such a sign-in counts by address, so spreading guesses
/// over decoy names does not escape the count.
#[tokio::test]
async fn a_field_given_twice_counts_by_address() {
    let console = SignInConsole::start().await;
    let nw = start(POLICY, &console);
    let addr = nw.addr("http");
    for i in 0..3 {
        let r = form(
            "127.0.0.2",
            addr,
            &format!("username=decoy{i}&username=alice&password=wrong"),
        )
        .await;
        assert_eq!(r.status, 401, "{r:?}");
    }
    nw.wait_log(|v| v["event"] == "decision" && v["login.account"] == "ambiguous");
    let r = form("127.0.0.2", addr, "username=decoy9&password=right").await;
    assert_eq!(
        r.status, 302,
        "a named account from the address is its own key: {r:?}"
    );
    let r = form("127.0.0.2", addr, "username=x&username=y&password=right").await;
    assert_eq!(r.status, 429, "the address key is locked: {r:?}");
    // Second red-team review of accounts: the fallback is the network, so
    // another address of the /24 gets no fresh budget.
    let r = form("127.0.0.7", addr, "username=x&username=y&password=right").await;
    assert_eq!(r.status, 429, "the network key is locked: {r:?}");
}

/// Second red-team review of accounts: multipart forms that Werkzeug (and
/// others) read as another account than the first `name="username"` part
/// let every guess carry a fresh decoy. Each is ambiguous now, so the
/// guesses count by network and lock it.
#[tokio::test]
async fn multipart_tricks_that_parsers_read_differently_count_by_network() {
    let console = SignInConsole::start().await;
    let nw = start(POLICY, &console);
    let part = |disposition: &str, value: &str| {
        format!("--XyZ\r\nContent-Disposition: {disposition}\r\n\r\n{value}\r\n")
    };
    let one = "multipart/form-data; boundary=XyZ";
    // (Content-Type lines, the first part: alice's, as the console reads it)
    let tricks: Vec<(&str, String)> = vec![
        (one, part("form-data; name*=UTF-8''username", "alice")),
        (one, part("attachment; name=\"username\"", "alice")),
        (one, part("form-data; name*0=user; name*1=name", "alice")),
        (
            "multipart/form-data; boundary=XyZ; boundary=Other",
            part("form-data; name=\"username\"", "alice"),
        ),
        // Second review: a folded header line, LF-only lines, two
        // Content-Type lines.
        (
            one,
            "--XyZ\r\nContent-Disposition: form-data;\r\n name=\"username\"\r\n\r\nalice\r\n"
                .into(),
        ),
        (
            one,
            "--XyZ\nContent-Disposition: form-data; name=\"username\"\n\nalice\r\n".into(),
        ),
        (
            "multipart/form-data; boundary=XyZ\r\nContent-Type: multipart/form-data; boundary=Other",
            part("form-data; name=\"username\"", "alice"),
        ),
    ];
    let mut statuses = Vec::new();
    for (i, (ct, first)) in tricks.iter().enumerate() {
        let body = format!(
            "{first}{}{}--XyZ--\r\n",
            part("form-data; name=\"username\"", &format!("decoy{i}")),
            part("form-data; name=\"password\"", "wrong"),
        );
        let req = format!(
            "POST /login HTTP/1.1\r\nHost: console.test\r\nConnection: close\r\nContent-Type: {ct}\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let r = exchange(
            connect_from("127.0.0.3", nw.addr("http")).await,
            req.as_bytes(),
        )
        .await;
        statuses.push(r.status);
    }
    assert_eq!(statuses, [401, 401, 401, 429, 429, 429, 429]);
    assert_eq!(console.sign_ins(), 3);
    // Every one logged as ambiguous (the log writer batches: wait, bounded).
    let deadline = std::time::Instant::now() + support::proxy::WAIT;
    loop {
        let ambiguous = nw
            .logs()
            .iter()
            .filter(|v| v["event"] == "decision" && v["login.account"] == "ambiguous")
            .count();
        if ambiguous == 7 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{ambiguous} ambiguous lines"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[test]
fn account_settings_are_checked_with_their_place() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("policy.yaml");
    std::fs::write(
        &path,
        "version: 1
networks:
  office: [127.0.0.1]
rules:
  - { name: a, paths: [/x], allow_from: [office], account: { form: user } }
  - { name: b, paths: [/login], login: true, allow_from: [office], account: { json: user, max_body: 0 } }
  - { name: c, paths: [/signin], login: true, allow_from: [office], account: {} }
lockout: { key: account, account_key_env: \"not a name\" }
state: { store: redis, timeout: 10s, prefix: \"{x}\" }
",
    )
    .expect("write");
    let (code, _, err) = support::run(&["check", "--policy", path.to_str().expect("utf-8")]);
    assert_eq!(code, 1, "{err}");
    for needle in [
        "policy.yaml:5:",
        "'account' is only for login routes",
        "account.json 'user' is not a JSON pointer",
        "account.max_body must be between 1 and",
        "'account' names neither a form field nor a JSON pointer",
        "lockout.key account lets anyone on an allowed network lock a known operator out",
        "account_key_env does not name an environment variable",
        "state.timeout must be more than 0",
        "state.prefix must be 1 to 64 visible ASCII characters",
    ] {
        assert!(err.contains(needle), "missing {needle:?} in {err}");
    }
}

#[tokio::test]
async fn without_a_key_variable_a_random_key_is_used_and_said() {
    let console = SignInConsole::start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("policy.yaml");
    std::fs::write(&path, POLICY).expect("write");
    let nw = Netwarden::start_env(
        &path,
        &["--listen", "127.0.0.1:0", "--upstream", &console.url],
        &[],
        dir,
    );
    let w = nw.wait_log(|v| v["event"] == "account_key_random");
    assert_eq!(w["level"], "WARN");
    let r = form(
        "127.0.0.1",
        nw.addr("http"),
        "username=alice&password=right",
    )
    .await;
    assert_eq!(r.status, 302);
}

/// Third red-team review of accounts: a compressed sign-in (Express
/// inflates it and reads another account than the raw bytes name) and a
/// form in another charset (Django 4.2 decodes it so) are not read: they
/// count by network.
#[tokio::test]
async fn compressed_and_foreign_charset_sign_ins_count_by_network() {
    let console = SignInConsole::start().await;
    let nw = start(POLICY, &console);
    let mut statuses = Vec::new();
    for (i, extra) in [
        "Content-Type: application/x-www-form-urlencoded\r\nContent-Encoding: gzip",
        "Content-Type: application/x-www-form-urlencoded; charset=UTF-16",
        "Content-Type: application/x-www-form-urlencoded\r\nContent-Encoding: deflate",
        "Content-Type: application/x-www-form-urlencoded; charset=utf-16le",
    ]
    .iter()
    .enumerate()
    {
        let body = format!("username=decoy{i}&password=wrong");
        let req = format!(
            "POST /login HTTP/1.1\r\nHost: console.test\r\nConnection: close\r\n{extra}\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let r = exchange(
            connect_from("127.0.0.4", nw.addr("http")).await,
            req.as_bytes(),
        )
        .await;
        statuses.push(r.status);
    }
    assert_eq!(statuses, [401, 401, 401, 429]);
    nw.wait_log(|v| v["event"] == "decision" && v["login.account"] == "unparseable");
}

/// Issue 22, finding 1: alice is locked in 127.0.0.0/24; then from another
/// address of that /24, guesses at alice padded past `max_body` (so that
/// her name is not read), each pair followed by the attacker's own padded
/// but right sign-in as bob. Before the fix every guess reached the
/// console: the padded sign-ins counted against the network key and bob's
/// padded success reset it. Now, while an account is locked in a network,
/// that network's sign-ins without an account wait with it; bob's own,
/// readable sign-in still works.
#[tokio::test]
async fn padded_guesses_and_an_own_success_do_not_reopen_a_locked_account() {
    let console = SignInConsole::start().await;
    let nw = start(POLICY, &console);
    let addr = nw.addr("http");
    for _ in 0..3 {
        let r = form("127.0.0.5", addr, "username=alice&password=wrong").await;
        assert_eq!(r.status, 401, "{r:?}");
    }
    nw.wait_log(|v| v["event"] == "lockout");
    assert_eq!(console.sign_ins(), 3);
    let pad = "x".repeat(5000);
    let mut statuses = Vec::new();
    for i in 0..10 {
        for _ in 0..2 {
            let body = format!("username=alice&password=wrong{i}&pad={pad}");
            statuses.push(form("127.0.0.6", addr, &body).await.status);
        }
        let body = format!("username=bob&password=right&pad={pad}");
        statuses.push(form("127.0.0.6", addr, &body).await.status);
    }
    assert!(statuses.iter().all(|&s| s == 429), "{statuses:?}");
    assert_eq!(console.sign_ins(), 3, "no padded guess reached the console");
    let r = form("127.0.0.6", addr, "username=bob&password=right").await;
    assert_eq!(r.status, 302, "bob's own sign-in is his key: {r:?}");
}

/// Issue 22, finding 1: a sign-in whose account was not read resets
/// nothing when the console accepts it; nobody knows whose success it was.
#[tokio::test]
async fn an_unread_success_resets_no_count() {
    let console = SignInConsole::start().await;
    let nw = start(POLICY, &console);
    let addr = nw.addr("http");
    let pad = "x".repeat(5000);
    let padded = |password: &str| format!("username=carol&password={password}&pad={pad}");
    let mut statuses = Vec::new();
    for password in ["wrong", "wrong", "right", "wrong", "wrong"] {
        statuses.push(form("127.0.0.8", addr, &padded(password)).await.status);
    }
    // Three failures lock the network's unread sign-ins, the success
    // between them notwithstanding.
    assert_eq!(statuses, [401, 401, 302, 401, 429]);
}

/// Issue 22, finding 2: the account in the query string (Servlet's
/// getParameter and Spring's form login read it first; Flask's
/// request.values and Rails' params merge it) with a fresh decoy in the
/// body each time. Both are read: they disagree, so the sign-in is
/// ambiguous and counts by network, which locks.
#[tokio::test]
async fn an_account_in_the_query_string_is_read_with_the_body() {
    let console = SignInConsole::start().await;
    let nw = start(POLICY, &console);
    let addr = nw.addr("http");
    let post = |query: &'static str, body: String| async move {
        let req = format!(
            "POST /login{query} HTTP/1.1\r\nHost: console.test\r\nConnection: close\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        exchange(connect_from("127.0.0.9", addr).await, req.as_bytes())
            .await
            .status
    };
    let mut statuses = Vec::new();
    for i in 0..5 {
        statuses.push(
            post(
                "?username=alice",
                format!("username=decoy-{i}&password=wrong"),
            )
            .await,
        );
    }
    assert_eq!(statuses, [401, 401, 401, 429, 429]);
    nw.wait_log(|v| v["event"] == "decision" && v["login.account"] == "ambiguous");
    // The account only in the query is read as that account: it counts
    // against alice (a failure locks her, not the decoys).
    let r = post("?username=dave", "password=right".into()).await;
    assert_eq!(r, 302);
    let read = nw.wait_log(|v| v["event"] == "login_succeeded");
    assert_eq!(read["account.hash"].as_str().map(str::len), Some(12));
}

/// Issue 22, finding 2: PHP reads `user.name`, `user name` and `user[name`
/// as `user_name` (the last value wins), and ASP.NET reads names without
/// case: each such spelling beside a decoy makes the sign-in ambiguous.
#[tokio::test]
async fn php_mangled_and_case_variant_names_are_the_field_too() {
    let console = SignInConsole::start().await;
    let policy = POLICY.replace("form: username", "form: user_name");
    for (i, trick) in [
        "user.name",
        "user+name",
        "user%5Bname",
        "USER_NAME",
        "user_name%5B%5D",
    ]
    .iter()
    .enumerate()
    {
        let nw = start(&policy, &console);
        let addr = nw.addr("http");
        let mut statuses = Vec::new();
        for n in 0..4 {
            let body = format!("user_name=decoy{i}x{n}&{trick}=alice&password=wrong");
            statuses.push(form("127.0.0.10", addr, &body).await.status);
        }
        assert_eq!(statuses, [401, 401, 401, 429], "{trick}");
        nw.wait_log(|v| v["event"] == "decision" && v["login.account"] == "ambiguous");
    }
}

/// Issue 22, the red-team reviews of the fix: multipart bodies that Django
/// 5.2 (aiohttp, Bottle) reads as alice while the first reading was a fresh
/// decoy (a base64 part, a tab after the part's name, a boundary in the
/// middle of a line, parts after the close delimiter, UTF-7 named in a
/// charset's RFC 2231 continuation or in a part's second charset). With alice locked, each is now
/// ambiguous, so it waits with her lock instead of reaching the console.
#[tokio::test]
async fn multipart_forms_django_reads_as_a_locked_account_wait_with_the_lock() {
    let console = SignInConsole::start().await;
    let nw = start(POLICY, &console);
    let addr = nw.addr("http");
    for _ in 0..3 {
        let r = form("127.0.0.11", addr, "username=alice&password=wrong").await;
        assert_eq!(r.status, 401, "{r:?}");
    }
    nw.wait_log(|v| v["event"] == "lockout");
    let part = |headers: &str, value: &str| {
        format!("--XyZ\r\nContent-Disposition: form-data; {headers}\r\n\r\n{value}\r\n")
    };
    let password = part("name=\"password\"", "wrong");
    let tricks = [
        format!(
            "--XyZ\r\nContent-Disposition: form-data; name=\"username\"\r\nContent-Transfer-Encoding: base64\r\n\r\nYWxp!Y2U=\r\n{password}--XyZ--\r\n"
        ),
        format!(
            "{}{}{password}--XyZ--\r\n",
            part("name=\"username\"", "decoy1"),
            part("name=\"username\t\"", "alice")
        ),
        format!(
            "{}{password}--XyZ--\r\n",
            part(
                "name=\"username\"",
                "decoy2--XyZ\r\nContent-Disposition: form-data; name=\"username\"\r\n\r\nalice"
            )
        ),
        format!(
            "{}{password}--XyZ--\r\n{}",
            part("name=\"username\"", "decoy3"),
            part("name=\"username\"", "alice")
        ),
    ];
    // The second red-team review: UTF-7 that Django and aiohttp read from
    // RFC 2231 continuations of the charset, and Bottle from a part's
    // second charset (`+AGE-lice` is alice).
    let utf7 = format!(
        "{}{password}--XyZ--\r\n",
        part("name=\"username\"", "+AGE-lice")
    );
    let second_charset = format!(
        "--XyZ\r\nContent-Disposition: form-data; name=\"username\"\r\nContent-Type: text/plain; charset=utf-8; charset=utf-7\r\n\r\n+AGE-lice\r\n{password}--XyZ--\r\n"
    );
    let plain = "multipart/form-data; boundary=XyZ";
    let mut tricks: Vec<(&str, String)> = tricks.into_iter().map(|b| (plain, b)).collect();
    tricks.push((
        "multipart/form-data; boundary=XyZ; charset*0=utf-7",
        utf7.clone(),
    ));
    tricks.push((
        "multipart/form-data; boundary=XyZ; charset*0=utf; charset*1=-7",
        utf7,
    ));
    tricks.push((plain, second_charset));
    for (i, (ct, body)) in tricks.iter().enumerate() {
        let req = format!(
            "POST /login HTTP/1.1\r\nHost: console.test\r\nConnection: close\r\nContent-Type: {ct}\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let r = exchange(connect_from("127.0.0.12", addr).await, req.as_bytes()).await;
        assert_eq!(r.status, 429, "trick {i}: {r:?}");
    }
    assert_eq!(console.sign_ins(), 3, "no trick reached the console");
}

/// Issue 24: the operator's side of a lockout alert, through the binary
/// and the CLI. The alert shows an account hash; `account-hash` says which
/// name it is; `lockouts` lists the lock (token-protected, like /policy);
/// `release --account` lifts it (the name never logged), the release is an
/// audit line and a metric, and alice signs in again.
#[tokio::test]
async fn an_operator_finds_lists_and_releases_a_lockout() {
    let console = SignInConsole::start().await;
    let token = ("NW_TEST_ADMIN_TOKEN", "an-admin-token-of-enough-bytes");
    let policy = format!("{POLICY}server:\n  admin_auth: {{ token_env: NW_TEST_ADMIN_TOKEN }}\n");
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("policy.yaml");
    std::fs::write(&path, &policy).expect("write");
    let nw = Netwarden::start_env(
        &path,
        &["--listen", "127.0.0.1:0", "--upstream", &console.url],
        &[KEY, token],
        dir,
    );
    let addr = nw.addr("http");
    for _ in 0..3 {
        let r = form("127.0.0.5", addr, "username=alice&password=wrong").await;
        assert_eq!(r.status, 401, "{r:?}");
    }
    let lockout = nw.wait_log(|v| v["event"] == "lockout");
    let hash = lockout["account.hash"].as_str().expect("hash").to_string();
    assert_eq!(
        form("127.0.0.5", addr, "username=alice&password=right")
            .await
            .status,
        429
    );

    let policy_path = nw.policy_path();
    let policy_arg = policy_path.to_str().expect("path");
    let admin = nw.addr("admin").to_string();
    let cli = |args: &[&str], env: &[(&str, &str)]| support::run_env(args, env);
    // Which account is it?
    let (code, out, err) = cli(&["account-hash", "--policy", policy_arg, "Alice"], &[KEY]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), hash);
    // The lock, listed; without the token, refused.
    let (code, _, err) = cli(
        &["lockouts", "--policy", policy_arg, "--admin", &admin],
        &[],
    );
    assert_ne!(code, 0);
    assert!(err.contains("NW_TEST_ADMIN_TOKEN"), "{err}");
    let raw = support::proxy::get("127.0.0.1", nw.addr("admin"), "/lockouts", &[]).await;
    assert_eq!(raw.status, 401);
    let (code, out, err) = cli(
        &["lockouts", "--policy", policy_arg, "--admin", &admin],
        &[token],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("account_and_network") && out.contains("127.0.0.0/24") && out.contains(&hash),
        "{out}"
    );
    // A blocked sign-in from outside, then `status`: the lock and it, on
    // one page, in JSON and in Japanese.
    let outside = form("127.0.1.9", addr, "username=bob&password=x").await;
    assert_eq!(outside.status, 403);
    nw.wait_log(|v| v["event"] == "login_blocked");
    let (code, out, err) = cli(
        &[
            "status", "--policy", policy_arg, "--admin", &admin, "--format", "json",
        ],
        &[token],
    );
    assert_eq!(code, 0, "{err}");
    let st: serde_json::Value = serde_json::from_str(out.trim()).expect("json");
    assert_eq!(
        st["blocked_sign_ins"]["events"][0]["client"], "127.0.1.9",
        "{st}"
    );
    assert!(
        st["lockouts"]["locks"]
            .as_array()
            .is_some_and(|l| l.iter().any(|x| x["account"] == hash.as_str())),
        "{st}"
    );
    assert_eq!(st["ready"]["status"], 200, "{st}");
    // Where it listens, and that the console answers.
    let listeners = st["policy"]["listeners"].as_array().expect("listeners");
    assert!(
        listeners
            .iter()
            .any(|l| l["role"] == "http" && l["address"] == addr.to_string().as_str()),
        "{st}"
    );
    assert!(
        listeners
            .iter()
            .any(|l| l["role"] == "admin" && l["address"] == admin.as_str()),
        "{st}"
    );
    assert_eq!(st["policy"]["console"]["state"], "answering", "{st}");
    assert!(
        st["policy"]["console"]["answered"].as_u64() >= Some(3),
        "{st}"
    );
    let (code, out, err) = cli(
        &[
            "status", "--policy", policy_arg, "--admin", &admin, "--lang", "ja",
        ],
        &[token],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("現在のロックアウト") && out.contains(&hash) && out.contains("127.0.1.9"),
        "{out}"
    );
    let raw = support::proxy::get("127.0.0.1", nw.addr("admin"), "/events/blocked", &[]).await;
    assert_eq!(raw.status, 401, "token-protected like /policy");
    let release = |flag: &str, value: &str| {
        cli(
            &[
                "release", "--policy", policy_arg, "--admin", &admin, flag, value,
            ],
            &[token],
        )
    };
    // The red-team review: releasing another address of the network does
    // not lift the hold on its unnamed sign-ins while alice is locked; a
    // body naming a key twice is refused.
    let (code, out, err) = release("--address", "127.0.0.9");
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("released 0 lock(s)"), "{out}");
    let padded = format!("username=alice&password=wrong&pad={}", "x".repeat(5000));
    assert_eq!(form("127.0.0.9", addr, &padded).await.status, 429);
    let twice = r#"{"account":"bob","account":"alice"}"#;
    let req = format!(
        "POST /lockouts/release HTTP/1.1\r\nHost: a\r\nConnection: close\r\nAuthorization: Bearer {}\r\nContent-Length: {}\r\n\r\n{twice}",
        token.1,
        twice.len()
    );
    let r = support::proxy::exchange(
        support::proxy::connect_from("127.0.0.1", nw.addr("admin")).await,
        req.as_bytes(),
    )
    .await;
    assert_eq!(r.status, 400, "{r:?}");
    // Released by name; the name is not in the audit line.
    let (code, out, err) = release("--account", "alice");
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("released 1 lock(s)"), "{out}");
    let audit = nw.wait_log(|v| v["event"] == "lockout_released" && v["selector"] == "account");
    assert_eq!(audit["selector"], "account");
    assert_eq!(audit["released"], 1);
    assert!(!audit.to_string().contains("alice"), "{audit}");
    // The audit line names the account by the hash the alert showed.
    assert_eq!(audit["target"], hash.as_str(), "{audit}");
    // And `status` shows the lock gone and who released it.
    let (code, out, err) = cli(
        &["status", "--policy", policy_arg, "--admin", &admin],
        &[token],
    );
    assert_eq!(code, 0, "{err}");
    let locks = out
        .split("Lockouts in force:")
        .nth(1)
        .and_then(|t| t.split("Recent releases").next())
        .unwrap_or_default();
    assert!(!locks.contains(&hash), "{out}");
    assert!(
        out.contains(&format!("account {hash}  x1  by 127.0.0.1")),
        "{out}"
    );
    assert_eq!(
        form("127.0.0.5", addr, "username=alice&password=right")
            .await
            .status,
        302
    );
    // Her network's hold went with her lock, the last one there.
    assert_eq!(form("127.0.0.9", addr, &padded).await.status, 401);
    let m = support::proxy::get(
        "127.0.0.1",
        nw.addr("admin"),
        "/metrics",
        &[&format!("Authorization: Bearer {}", token.1)],
    )
    .await;
    assert!(
        m.body.contains("netwarden_lockout_releases_total 2"),
        "{}",
        m.body
    );
    // A release that names nothing it can read is refused, and says why.
    let (code, _, err) = release("--account-hash", "xyz");
    assert_eq!(code, 1);
    assert!(err.contains("12 to 32 hex digits"), "{err}");
}

/// Issue 24: with `alerts.on_release: true`, an operator's release that
/// lifts a lock is alerted through the sinks (who asked, what it named by
/// its hash, how many locks); one that lifts nothing is logged only (the
/// fourth red-team review: a burst of empty releases filled the sinks'
/// queues ahead of real lockouts).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operators_release_is_alerted_when_the_policy_asks() {
    use support::receiver::{Answer, Receiver};
    let console = SignInConsole::start().await;
    let hook = Receiver::start(&[], Answer::Status(200)).await;
    let url = hook.url("/hook");
    let policy = format!(
        "{POLICY}alerts:\n  on_release: true\n  sinks:\n    - {{ name: ops, type: webhook, url_env: HOOK_URL }}\n"
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("policy.yaml");
    std::fs::write(&path, &policy).expect("write");
    let nw = Netwarden::start_env(
        &path,
        &["--listen", "127.0.0.1:0", "--upstream", &console.url],
        &[KEY, ("HOOK_URL", &url)],
        dir,
    );
    let addr = nw.addr("http");
    let release = |body: &'static str| {
        let admin = nw.addr("admin");
        async move {
            let req = format!(
                "POST /lockouts/release HTTP/1.1\r\nHost: a\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            exchange(connect_from("127.0.0.1", admin).await, req.as_bytes()).await
        }
    };
    // Nothing locked: logged, not alerted.
    let r = release(r#"{"network":"127.0.0.0/24"}"#).await;
    assert_eq!(
        (r.status, r.body.contains("\"released\":0")),
        (200, true),
        "{r:?}"
    );
    nw.wait_log(|v| v["event"] == "lockout_released" && v["released"] == 0);
    // alice locked: the lockout is the first alert.
    for _ in 0..3 {
        assert_eq!(
            form("127.0.0.5", addr, "username=alice&password=wrong")
                .await
                .status,
            401
        );
    }
    let got = hook.wait_for(1).await;
    let first: serde_json::Value = serde_json::from_slice(&got[0].body).expect("JSON");
    assert_eq!(first["kind"], "lockout", "{first}");
    let hash = first["lockout"]["account_hash"]
        .as_str()
        .expect("hash")
        .to_string();
    // Released by name: alerted by hash, never by name.
    let r = release(r#"{"account":"alice"}"#).await;
    assert_eq!(r.status, 200, "{r:?}");
    let got = hook.wait_for(2).await;
    assert_eq!(got.len(), 2, "the empty release sent nothing");
    let v: serde_json::Value = serde_json::from_slice(&got[1].body).expect("JSON");
    assert_eq!(v["kind"], "lockout_released", "{v}");
    assert_eq!(v["release"]["target"], hash.as_str(), "{v}");
    assert_eq!(v["release"]["selector"], "account", "{v}");
    assert_eq!(v["release"]["admin_address"], "127.0.0.1", "{v}");
    assert_eq!(v["release"]["released"], 1, "{v}");
    assert!(
        v["runbook"]
            .as_str()
            .is_some_and(|u| u.ends_with("#lockout")),
        "{v}"
    );
    assert!(!String::from_utf8_lossy(&got[1].body).contains("alice"));
    let audit = nw.wait_log(|v| v["event"] == "lockout_released" && v["released"] == 1);
    assert_eq!(audit["target"], hash.as_str(), "{audit}");
}
