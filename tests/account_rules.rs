//! Who may sign in from where (issue 26): login rules with `accounts:`
//! decide by the account the sign-in names, read from its body before the
//! decision. Through the real binary, from loopback addresses that stand
//! for the head office, the agency's office and the VPN, in front of a
//! console that answers 401 to a body holding `wrong`.

use crate::support;

use support::proxy::{Netwarden, connect_from, exchange};
use support::sign_in::{SignInConsole, form};

const HEAD_OFFICE: &str = "127.0.0.2";
const AGENCY_OFFICE: &str = "127.0.0.3";
const VPN: &str = "127.0.0.4";

const POLICY: &str = "version: 1
networks:
  head_office: [127.0.0.2/32]
  agency_office: [127.0.0.3/32]
  vpn: [127.0.0.4/32]
accounts:
  agency: [agency-*@example.jp]
  admins: [yamada@example.jp]
rules:
  - { name: agency_login, paths: [/login], methods: [POST], login: true, account: { form: username }, accounts: [agency], allow_from: [agency_office] }
  - { name: admin_login, paths: [/login], methods: [POST], login: true, account: { form: username }, accounts: [admins], allow_from: [head_office] }
  - { name: login, paths: [/login], methods: [POST], login: true, account: { form: username }, allow_from: [head_office, vpn] }
  - { name: console, paths: [\"/**\"], allow_from: [head_office, vpn, agency_office] }
lockout:
  after: 2
  within: 1m
  lock_for: 30s
  key: account_and_network
  account_key_env: NW_TEST_ACCOUNT_KEY
";

fn start(console: &SignInConsole) -> Netwarden {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("policy.yaml");
    std::fs::write(&path, POLICY).expect("write");
    Netwarden::start_env(
        &path,
        &["--listen", "127.0.0.1:0", "--upstream", &console.url],
        &[("NW_TEST_ACCOUNT_KEY", "test-key-of-more-than-16-bytes")],
        dir,
    )
}

/// The decision line of the request sent with this `User-Agent`.
fn decision(nw: &Netwarden, agent: &str) -> serde_json::Value {
    nw.wait_log(|l| l["event"] == "decision" && l["user_agent.original"] == agent)
}

/// A sign-in form from `from`, marked with `agent`.
async fn sign_in(
    from: &str,
    to: std::net::SocketAddr,
    body: &str,
    agent: &str,
) -> support::proxy::Reply {
    let request = form_request("/login", body, None).replace(
        "Connection: close\r\n",
        &format!("Connection: close\r\nUser-Agent: {agent}\r\n"),
    );
    exchange(connect_from(from, to).await, request.as_bytes()).await
}

#[tokio::test]
async fn each_group_signs_in_only_from_its_networks() {
    let console = SignInConsole::start().await;
    let nw = start(&console);
    let to = nw.addr("http");
    // (from, body, status, deciding rule, group)
    let cases: [(&str, &str, u16, &str, Option<&str>); 7] = [
        (
            AGENCY_OFFICE,
            "username=agency-tokyo%40example.jp&password=right",
            302,
            "agency_login",
            Some("agency"),
        ),
        (
            HEAD_OFFICE,
            "username=agency-tokyo%40example.jp&password=right",
            403,
            "agency_login",
            Some("agency"),
        ),
        (
            VPN,
            "username=agency-tokyo%40example.jp&password=right",
            403,
            "agency_login",
            Some("agency"),
        ),
        (
            HEAD_OFFICE,
            "username=yamada%40example.jp&password=right",
            302,
            "admin_login",
            Some("admins"),
        ),
        // The admin's full-width, upper-case spelling is the admin: over the
        // VPN it is refused, not passed to everyone's rule.
        (
            VPN,
            "username=%EF%BC%B9%EF%BD%81%EF%BD%8D%EF%BD%81%EF%BD%84%EF%BD%81%40EXAMPLE.JP&password=right",
            403,
            "admin_login",
            Some("admins"),
        ),
        (
            VPN,
            "username=suzuki%40example.jp&password=right",
            302,
            "login",
            None,
        ),
        (
            AGENCY_OFFICE,
            "username=suzuki%40example.jp&password=right",
            403,
            "login",
            None,
        ),
    ];
    for (i, (from, body, status, rule, group)) in cases.into_iter().enumerate() {
        let before = console.sign_ins();
        let agent = format!("case-{i}");
        let reply = sign_in(from, to, body, &agent).await;
        assert_eq!(reply.status, status, "case {i}: {}", reply.body);
        let line = decision(&nw, &agent);
        assert_eq!(line["rule"], rule, "case {i}: {line}");
        assert_eq!(line["account.group"].as_str(), group, "case {i}: {line}");
        assert_eq!(line["login.account"], "read", "case {i}: {line}");
        let forwarded = usize::from(status == 302);
        assert_eq!(console.sign_ins(), before + forwarded, "case {i}");
    }
    // The console received the allowed sign-ins whole.
    assert_eq!(
        console.bodies()[0],
        b"username=agency-tokyo%40example.jp&password=right"
    );
    // Accounts stay out of the logs: the group, never the name.
    let raw = nw.raw_logs().join("\n");
    for name in ["agency-tokyo", "yamada", "suzuki", "%EF%BC%B9"] {
        assert!(!raw.contains(name), "'{name}' logged");
    }
    // The sign-in page itself is no sign-in: the console rule decides it.
    let page = support::proxy::get(AGENCY_OFFICE, to, "/login", &["User-Agent: page"]).await;
    assert_ne!(page.status, 403);
    assert_eq!(decision(&nw, "page")["rule"], "console");
}

#[tokio::test]
async fn a_sign_in_whose_account_cannot_be_read_is_refused_never_passed_on() {
    let console = SignInConsole::start().await;
    let nw = start(&console);
    let to = nw.addr("http");
    // From the head office, everyone's rule would let any of these in.
    let ambiguous = "username=suzuki%40example.jp&username=agency-x%40example.jp&password=right";
    let cases: [(&str, String, &str); 5] = [
        (
            "two values",
            form_request("/login", ambiguous, None),
            "ambiguous",
        ),
        (
            "a decoy in the query",
            form_request(
                "/login?username=agency-x%40example.jp",
                "username=suzuki%40example.jp&password=right",
                None,
            ),
            "ambiguous",
        ),
        (
            "no account",
            form_request("/login", "password=right", None),
            "missing",
        ),
        (
            "a NUL inside the name",
            form_request(
                "/login",
                "username=agency-tokyo%40example.jp%00suzuki&password=right",
                None,
            ),
            "unparseable",
        ),
        (
            "a foreign charset",
            form_request(
                "/login",
                "username=suzuki%40example.jp&password=right",
                Some("application/x-www-form-urlencoded; charset=utf-7"),
            ),
            "unparseable",
        ),
    ];
    for (what, request, why) in cases {
        let request = request.replace(
            "Connection: close\r\n",
            &format!("Connection: close\r\nUser-Agent: {what}\r\n"),
        );
        let reply = exchange(connect_from(HEAD_OFFICE, to).await, request.as_bytes()).await;
        assert_eq!(reply.status, 400, "{what}: {}", reply.body);
        assert!(
            reply.body.contains("\"sign_in_account_unreadable\""),
            "{what}: {}",
            reply.body
        );
        let line = decision(&nw, what);
        assert_eq!(line["reason_code"], "account_unreadable", "{what}: {line}");
        assert_eq!(line["rule"], "agency_login", "{what}: {line}");
        assert_eq!(line["login.account"], why, "{what}: {line}");
    }
    assert_eq!(console.sign_ins(), 0, "nothing reached the console");
    // People get the reason in their language.
    let request = form_request("/login", ambiguous, None).replace(
        "Connection: close\r\n",
        "Connection: close\r\nAccept: text/html\r\nAccept-Language: ja\r\n",
    );
    let reply = exchange(connect_from(HEAD_OFFICE, to).await, request.as_bytes()).await;
    assert_eq!(reply.status, 400);
    assert!(
        reply
            .body
            .contains("どのアカウントへのサインインか判断できません"),
        "{}",
        reply.body
    );
}

#[tokio::test]
async fn the_account_read_to_decide_is_the_one_the_lockout_counts() {
    let console = SignInConsole::start().await;
    let nw = start(&console);
    let to = nw.addr("http");
    for _ in 0..2 {
        let r = form(
            AGENCY_OFFICE,
            to,
            "username=agency-a%40example.jp&password=wrong",
        )
        .await;
        assert_eq!(r.status, 401);
    }
    let locked = form(
        AGENCY_OFFICE,
        to,
        "username=agency-a%40example.jp&password=right",
    )
    .await;
    assert_eq!(locked.status, 429, "{}", locked.body);
    // Another agency account from the same office is not locked.
    let other = form(
        AGENCY_OFFICE,
        to,
        "username=agency-b%40example.jp&password=right",
    )
    .await;
    assert_eq!(other.status, 302);
}

fn form_request(target: &str, body: &str, content_type: Option<&str>) -> String {
    format!(
        "POST {target} HTTP/1.1\r\nHost: console.test\r\nConnection: close\r\nContent-Type: {}\r\nContent-Length: {}\r\n\r\n{body}",
        content_type.unwrap_or("application/x-www-form-urlencoded"),
        body.len()
    )
}
