//! Every alert channel through the real binary, in both languages: a
//! webhook, Slack, Alertmanager, Microsoft Teams (each card validated
//! against the Adaptive Cards schema), Chatwork, LINE WORKS (a token
//! issuer on loopback that checks the service account's JWT), PagerDuty
//! and mail (a real SMTP server, aiosmtpd, with STARTTLS and AUTH). One
//! scenario sends each sink a first attempt, a summary, a lockout, an
//! operator's release and a storm; the first answers of several sinks
//! fail, so each retries.

use crate::support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::proxy::{Netwarden, Upstream, WAIT, connect_from, exchange, post};
use support::receiver::{Answer, Got, Receiver};

const CHATWORK_TOKEN: &str = "cw-token-SECRET1";
const PD_KEY: &str = "pd-routing-SECRET2";
const LW_SECRET: &str = "lw-client-SECRET3";
const SMTP_PASSWORD: &str = "smtp-pass-SECRET4";
const SLACK_PATH: &str = "/services/T0/B0/SLACKSECRET5";
const TEAMS_PATH: &str = "/workflows/TEAMSSECRET6/triggers/manual/paths/invoke";

/// Secrets and request data that must reach no payload (except each
/// secret the one place its service needs it).
const NEVER_IN_A_MESSAGE: [&str; 9] = [
    "QUERYSECRET",
    "COOKIESECRET",
    "BODYSECRET",
    CHATWORK_TOKEN,
    PD_KEY,
    LW_SECRET,
    SMTP_PASSWORD,
    "SLACKSECRET5",
    "TEAMSSECRET6",
];

/// A real SMTP server (tests/support/smtp_server.py) on loopback.
struct Smtp {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Smtp {
    fn start(mode: &str, certs: &Path) -> Smtp {
        let dir = tempfile::tempdir().expect("mail dir");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new(support::console::python())
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/smtp_server.py"))
            .arg(mode)
            .arg(port.to_string())
            .arg(dir.path())
            .arg(certs.join("cert.pem"))
            .arg(certs.join("key.pem"))
            .args(["alerts@example.com", SMTP_PASSWORD])
            .stdout(Stdio::null())
            .spawn()
            .expect("python runs the SMTP server");
        let deadline = Instant::now() + WAIT;
        while !dir.path().join("ready").exists() {
            assert!(Instant::now() < deadline, "the SMTP server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Smtp { child, port, dir }
    }

    /// The messages received so far: (raw bytes, what the server saw).
    fn mails(&self) -> Vec<(String, serde_json::Value)> {
        let mut out = Vec::new();
        for n in 1.. {
            let base = self.dir.path().join(format!("{n:04}"));
            let (Ok(raw), Ok(meta)) = (
                std::fs::read_to_string(base.with_extension("eml")),
                std::fs::read_to_string(base.with_extension("json")),
            ) else {
                break;
            };
            out.push((raw, serde_json::from_str(&meta).expect("meta JSON")));
        }
        out
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An RSA key for the LINE WORKS app (PKCS#8 PEM, as its console issues
/// it) and its public half as PKCS#1 DER, for ring to verify.
fn line_works_key(dir: &Path) -> (PathBuf, Vec<u8>) {
    let key = dir.join("private_20261207.key");
    let public = dir.join("public.der");
    let ok = Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
        ])
        .arg(&key)
        .stderr(Stdio::null())
        .status()
        .expect("openssl runs (installed by .ci/run)")
        .success();
    assert!(ok, "openssl genpkey");
    let ok = Command::new("openssl")
        .args(["rsa", "-in"])
        .arg(&key)
        .args(["-RSAPublicKey_out", "-outform", "DER", "-out"])
        .arg(&public)
        .stderr(Stdio::null())
        .status()
        .expect("openssl rsa")
        .success();
    assert!(ok, "openssl rsa -RSAPublicKey_out");
    (key, std::fs::read(&public).expect("public key"))
}

/// Checks a LINE WORKS token request: the form's fields and the JWT's
/// header, claims and RS256 signature under the app's public key.
fn check_token_request(g: &Got, public: &[u8]) {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    assert_eq!(
        g.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    let form: std::collections::HashMap<String, String> =
        url_decode_form(std::str::from_utf8(&g.body).expect("utf-8 form"));
    assert_eq!(
        form["grant_type"],
        "urn:ietf:params:oauth:grant-type:jwt-bearer"
    );
    assert_eq!(form["client_id"], "lw-client-id");
    assert_eq!(form["client_secret"], LW_SECRET);
    assert_eq!(form["scope"], "bot");
    let jwt = &form["assertion"];
    let parts: Vec<&str> = jwt.split('.').collect();
    assert_eq!(parts.len(), 3, "{jwt}");
    let header: serde_json::Value =
        serde_json::from_slice(&b64.decode(parts[0]).expect("b64")).expect("header");
    assert_eq!(header["alg"], "RS256");
    let claims: serde_json::Value =
        serde_json::from_slice(&b64.decode(parts[1]).expect("b64")).expect("claims");
    assert_eq!(claims["iss"], "lw-client-id");
    assert_eq!(claims["sub"], "bot.serviceaccount@example.com");
    let (iat, exp) = (
        claims["iat"].as_u64().expect("iat"),
        claims["exp"].as_u64().expect("exp"),
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    assert!(
        iat.abs_diff(now) < 60 && exp > iat && exp - iat <= 3600,
        "{claims}"
    );
    let key = ring::signature::UnparsedPublicKey::new(
        &ring::signature::RSA_PKCS1_2048_8192_SHA256,
        public,
    );
    let signed = format!("{}.{}", parts[0], parts[1]);
    let sig = b64.decode(parts[2]).expect("b64 signature");
    key.verify(signed.as_bytes(), &sig)
        .expect("the assertion is signed by the app's key");
    let mut forged = sig.clone();
    forged[0] ^= 1;
    assert!(key.verify(signed.as_bytes(), &forged).is_err());
}

fn url_decode_form(s: &str) -> std::collections::HashMap<String, String> {
    s.split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| {
            let dec = |x: &str| {
                percent_encoding::percent_decode_str(&x.replace('+', " "))
                    .decode_utf8()
                    .expect("utf-8")
                    .into_owned()
            };
            (dec(k), dec(v))
        })
        .collect()
}

/// Validates a Teams message's card against the Adaptive Cards schema
/// (tests/support/card_check.py).
fn check_card(body: &[u8]) {
    use std::io::Write as _;
    let mut child = Command::new(support::console::python())
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/card_check.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python runs card_check.py");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(body)
        .expect("card to stdin");
    let out = child.wait_with_output().expect("card_check ends");
    assert!(
        out.status.success(),
        "the card is not valid under the Adaptive Cards schema: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(body)
    );
}

/// A blocked login carrying what must never reach an alert.
async fn blocked_login(nw: &Netwarden, from: &str) -> u16 {
    let req = "POST /login?token=QUERYSECRET HTTP/1.1\r\nHost: console.test\r\nConnection: close\r\n\
               Cookie: session=COOKIESECRET\r\nUser-Agent: <!channel> [toall] <m userId=\"all\"> [x](https://evil.example)\r\n\
               Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 24\r\n\r\npassword=BODYSECRET12345";
    exchange(connect_from(from, nw.addr("http")).await, req.as_bytes())
        .await
        .status
}

struct Sinks {
    hook: Receiver,
    slack: Receiver,
    am: Receiver,
    teams: Receiver,
    chatwork: Receiver,
    pagerduty: Receiver,
    lw_auth: Receiver,
    lw_api: Receiver,
    smtp: Smtp,
    lw_public: Vec<u8>,
    _keys: tempfile::TempDir,
    _certs: tempfile::TempDir,
}

/// The receivers, several failing first so that their sinks retry.
async fn sinks() -> (Sinks, PathBuf) {
    let certs = support::dev_certs();
    let keys = tempfile::tempdir().expect("key dir");
    let (key, lw_public) = line_works_key(keys.path());
    let token = |n: u32| Answer::Reply {
        status: 200,
        headers: vec![("content-type", "application/json".into())],
        body: format!(
            r#"{{"access_token":"lw-token-{n}","refresh_token":"r","token_type":"Bearer","expires_in":"86400","scope":"bot"}}"#
        ),
    };
    let s = Sinks {
        hook: Receiver::start(&[], Answer::Status(200)).await,
        slack: Receiver::start(&[], Answer::Status(200)).await,
        am: Receiver::start(&[], Answer::Status(200)).await,
        teams: Receiver::start(&[Answer::Status(503)], Answer::Status(202)).await,
        chatwork: Receiver::start(&[Answer::RateLimited(2)], Answer::Status(200)).await,
        pagerduty: Receiver::start(&[Answer::Status(500)], Answer::Status(202)).await,
        lw_auth: Receiver::start(&[token(1)], token(2)).await,
        // The first token is refused once: netwarden renews it.
        lw_api: Receiver::start(&[Answer::Status(401)], Answer::Status(201)).await,
        smtp: Smtp::start("starttls", certs.path()),
        lw_public,
        _keys: keys,
        _certs: certs,
    };
    (s, key)
}

fn policy(s: &Sinks, lang: &str, key: &Path, ca: &Path) -> String {
    let zone = if lang == "ja" { "Asia/Tokyo" } else { "UTC" };
    format!(
        "version: 1
networks:
  office: [127.0.0.1]
  load_balancer: [127.0.0.9]
client_ip:
  trusted_proxies: [load_balancer]
rules:
  - name: login
    paths: [/login]
    methods: [POST]
    login: true
    allow_from: [office]
    outcome:
      failure: {{ status: [200] }}
  - {{ name: console, action: allow }}
lockout: {{ after: 3, within: 1m, lock_for: 30s }}
pages: {{ languages: [{lang}] }}
alerts:
  window: 1s
  storm: {{ max_alerts: 5, per: 10m }}
  on_release: true
  sinks:
    - {{ name: hook, type: webhook, url_env: HOOK_URL }}
    - {{ name: slack, type: slack, url_env: SLACK_URL, time_zone: {zone} }}
    - {{ name: am, type: alertmanager, url: \"{am}\" }}
    - {{ name: teams, type: teams, url_env: TEAMS_URL, time_zone: {zone} }}
    - {{ name: chatwork, type: chatwork, url: \"{cw}\", room_id: \"42\", token_env: CW_TOKEN, time_zone: {zone} }}
    - {{ name: pager, type: pagerduty, url: \"{pd}\", routing_key_env: PD_KEY }}
    - name: works
      type: line_works
      url: \"{lw}\"
      auth_url: \"{lw_auth}\"
      bot_id: \"2000001\"
      channel_id: ops-channel-1
      client_id: lw-client-id
      service_account: bot.serviceaccount@example.com
      client_secret_env: LW_SECRET
      private_key_file: \"{key}\"
      time_zone: {zone}
    - name: mail
      type: email
      smtp: 127.0.0.1:{smtp}
      tls: starttls
      ca: \"{ca}\"
      username_env: SMTP_USER
      password_env: SMTP_PASSWORD
      from: \"netwarden <netwarden@example.com>\"
      to: [security-ops@example.com]
      time_zone: {zone}
",
        am = s.am.url(""),
        cw = s.chatwork.url(""),
        pd = s.pagerduty.url("/v2/enqueue"),
        lw = s.lw_api.url(""),
        lw_auth = s.lw_auth.url("/oauth2/v2.0/token"),
        key = key.display(),
        smtp = s.smtp.port,
        ca = ca.display(),
    )
}

/// The scenario: a first attempt and its summary, a lockout and its
/// release, then five sources past the storm cap (flushed at SIGTERM).
/// Returns once every sink has its six alerts.
async fn scenario(lang: &str) -> Sinks {
    let up = Upstream::start().await;
    let (s, key) = sinks().await;
    let ca = s._certs.path().join("ca.pem");
    let env = [
        ("HOOK_URL", s.hook.url("/hook")),
        ("SLACK_URL", s.slack.url(SLACK_PATH)),
        ("TEAMS_URL", s.teams.url(TEAMS_PATH)),
        ("CW_TOKEN", CHATWORK_TOKEN.into()),
        ("PD_KEY", PD_KEY.into()),
        ("LW_SECRET", LW_SECRET.into()),
        ("SMTP_USER", "alerts@example.com".into()),
        ("SMTP_PASSWORD", SMTP_PASSWORD.into()),
        ("NETWARDEN_INSTANCE", "console-pod-1".into()),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let nw = Netwarden::in_front_of_env(&policy(&s, lang, &key, &ca), &up, &env);
    for _ in 0..4 {
        assert_eq!(blocked_login(&nw, "127.0.0.3").await, 403);
    }
    s.hook.wait_for(2).await;
    // Three failed sign-ins from the office: locked out.
    for _ in 0..3 {
        let r = post("127.0.0.1", nw.addr("http"), "/login", &[]).await;
        assert_eq!(r.status, 200);
    }
    s.hook.wait_for(3).await;
    let body = r#"{"address":"127.0.0.1"}"#;
    let req = format!(
        "POST /lockouts/release HTTP/1.1\r\nHost: a\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let r = exchange(
        connect_from("127.0.0.1", nw.addr("admin")).await,
        req.as_bytes(),
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    s.hook.wait_for(4).await;
    for i in 1..=5u8 {
        let xff = format!("X-Forwarded-For: 198.51.100.{i}");
        let r = post("127.0.0.9", nw.addr("http"), "/login", &[&xff]).await;
        assert_eq!(r.status, 403);
    }
    s.hook.wait_for(5).await;
    let code = tokio::task::spawn_blocking(move || nw.terminate())
        .await
        .expect("joined");
    assert_eq!(code, 0);
    for r in [&s.hook, &s.slack, &s.am, &s.pagerduty] {
        r.wait_for(6).await;
    }
    s
}

fn kinds(got: &[Got]) -> Vec<String> {
    got.iter()
        .map(|g| g.json()["kind"].as_str().unwrap_or("?").to_string())
        .collect()
}

/// What every sink got, checked in `lang`; `title` is the first
/// attempt's headline in it.
fn check(s: &Sinks, lang: &str, title: &str, lockout_words: &str) {
    let hook = s.hook.got();
    assert_eq!(
        kinds(&hook),
        [
            "attempt",
            "summary",
            "lockout",
            "lockout_released",
            "attempt",
            "storm"
        ]
    );
    // Machine fields stay English; `text` is in the sink's language.
    assert_eq!(
        hook[0].json()["summary"],
        "Blocked login attempt from 127.0.0.3 (rule login)"
    );
    let text = hook[0].json()["text"].as_str().expect("text").to_string();
    assert!(text.starts_with(title), "{text}");

    let slack = s.slack.got();
    assert_eq!(slack.len(), 6);
    let t = slack[0].json()["text"].as_str().expect("text").to_string();
    assert!(t.contains(title), "{t}");
    assert!(
        !t.contains("<!channel>") && t.contains("&lt;!channel&gt;"),
        "{t}"
    );

    let teams = s.teams.got();
    // The first answer was 503: seven calls for six alerts.
    assert_eq!(teams.len(), 7, "{teams:?}");
    assert_eq!(teams[0].path, TEAMS_PATH);
    for g in &teams {
        check_card(&g.body);
    }
    let card = &teams[1].json()["attachments"][0]["content"];
    assert_eq!(card["body"][0]["text"], title, "{card}");
    let card_text = String::from_utf8_lossy(&teams[1].body).into_owned();
    assert!(
        !card_text.contains("[x](https"),
        "a link in a card: {card_text}"
    );

    let cw = s.chatwork.got();
    assert_eq!(cw.len(), 7, "a 429 then six");
    // The reset is in whole seconds, 2 after the 429: at least one.
    assert!(
        cw[1].at.duration_since(cw[0].at) >= Duration::from_millis(900),
        "the retry waited for the rate limit's reset"
    );
    for g in &cw {
        assert_eq!(g.path, "/v2/rooms/42/messages");
        assert_eq!(g.header("x-chatworktoken"), Some(CHATWORK_TOKEN));
    }
    let form = url_decode_form(std::str::from_utf8(&cw[1].body).expect("utf-8"));
    let body = &form["body"];
    assert!(body.starts_with(&format!("[info][title]{title}")), "{body}");
    assert_eq!(body.matches("[/info]").count(), 1, "{body}");
    assert!(!body.contains("[toall]"), "{body}");

    let pd = s.pagerduty.got();
    let events: Vec<serde_json::Value> = pd.iter().map(Got::json).collect();
    let actions: Vec<&str> = events
        .iter()
        .map(|e| e["event_action"].as_str().expect("action"))
        .collect();
    // A 500 first: the first trigger twice.
    assert_eq!(
        actions,
        [
            "trigger", "trigger", "trigger", "trigger", "resolve", "trigger", "trigger"
        ]
    );
    assert!(events.iter().all(|e| e["routing_key"] == PD_KEY));
    assert_eq!(events[1]["dedup_key"], "netwarden/blocked/127.0.0.3");
    assert_eq!(
        events[2]["dedup_key"], events[1]["dedup_key"],
        "one incident"
    );
    assert_eq!(events[3]["dedup_key"], "netwarden/lockout/127.0.0.1");
    assert_eq!(events[4]["dedup_key"], events[3]["dedup_key"], "resolved");
    assert_eq!(events[6]["dedup_key"], "netwarden/storm");
    assert_eq!(events[6]["payload"]["severity"], "error");
    assert_eq!(events[1]["payload"]["severity"], "warning");
    assert_eq!(events[1]["payload"]["summary"], title);
    assert_eq!(events[1]["payload"]["class"], "attempt");
    assert!(
        events[3]["payload"]["summary"]
            .as_str()
            .is_some_and(|t| t.contains(lockout_words)),
        "{}",
        events[3]
    );

    // LINE WORKS: one token, refused once, renewed; each call with the
    // token it had.
    let auth = s.lw_auth.got();
    assert_eq!(auth.len(), 2, "a token, then one renewal after the 401");
    for g in &auth {
        check_token_request(g, &s.lw_public);
    }
    let api = s.lw_api.got();
    assert_eq!(api.len(), 7);
    assert_eq!(api[0].header("authorization"), Some("Bearer lw-token-1"));
    assert!(
        api[1..]
            .iter()
            .all(|g| g.header("authorization") == Some("Bearer lw-token-2"))
    );
    assert_eq!(
        api[0].path,
        "/v1.0/bots/2000001/channels/ops-channel-1/messages"
    );
    let lw = api[1].json();
    assert_eq!(lw["content"]["type"], "text");
    let t = lw["content"]["text"].as_str().expect("text");
    assert!(t.contains(title), "{t}");
    assert!(!t.contains("<m "), "{t}");

    let am = s.am.got();
    assert_eq!(am.len(), 6);
    assert_eq!(am[0].json()[0]["annotations"]["summary"], title);

    let mails = s.smtp.mails();
    assert_eq!(mails.len(), 6);
    for (_, meta) in &mails {
        assert_eq!(meta["authenticated"], true, "{meta}");
        assert_eq!(meta["encrypted"], true, "STARTTLS: {meta}");
        assert_eq!(meta["rcpt_tos"][0], "security-ops@example.com");
        assert_eq!(
            meta["subject"]
                .as_str()
                .map(|s| s.starts_with("[netwarden] ")),
            Some(true)
        );
    }
    let first = &mails[0].1;
    assert_eq!(first["subject"], format!("[netwarden] {title}"));
    assert!(first["text"].as_str().is_some_and(|t| t.contains(title)));
    let html = first["html"].as_str().expect("html part");
    assert!(html.contains(&format!("lang=\"{lang}\"")), "{html}");
    assert!(
        !html.contains("<!channel>") && html.contains("&lt;!channel&gt;"),
        "{html}"
    );

    // No secret or request data reaches any message.
    let mut all: Vec<(String, String)> = Vec::new();
    for (name, r) in [
        ("hook", &s.hook),
        ("slack", &s.slack),
        ("am", &s.am),
        ("teams", &s.teams),
        ("chatwork", &s.chatwork),
        ("works", &s.lw_api),
    ] {
        for g in r.got() {
            all.push((name.into(), String::from_utf8_lossy(&g.body).into_owned()));
        }
    }
    for g in s.pagerduty.got() {
        // The routing key is the one secret PagerDuty's body carries.
        all.push((
            "pager".into(),
            String::from_utf8_lossy(&g.body).replace(PD_KEY, ""),
        ));
    }
    for (raw, meta) in &mails {
        all.push(("mail".into(), format!("{raw}{meta}")));
    }
    for (sink, body) in &all {
        for secret in NEVER_IN_A_MESSAGE {
            assert!(!body.contains(secret), "{secret} reached {sink}: {body}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_channel_gets_each_kind_of_alert_in_japanese() {
    let s = scenario("ja").await;
    check(
        &s,
        "ja",
        "許可されていないネットワークからのログインを遮断しました：127.0.0.3（ルール login）",
        "127.0.0.1 をロックしました",
    );
    // Times in the sink's zone, as people write them.
    let t = s.slack.got()[0].json()["text"]
        .as_str()
        .expect("text")
        .to_string();
    assert!(t.contains(" JST`"), "{t}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_channel_gets_each_kind_of_alert_in_english() {
    let s = scenario("en").await;
    check(
        &s,
        "en",
        "Blocked login attempt from 127.0.0.3 (rule login)",
        "127.0.0.1 locked out",
    );
    let t = s.slack.got()[0].json()["text"]
        .as_str()
        .expect("text")
        .to_string();
    assert!(t.contains(" UTC`"), "{t}");
}

fn mail_policy(sinks: &str) -> String {
    format!(
        "version: 1
networks:
  office: [127.0.0.1]
rules:
  - {{ name: login, paths: [/login], methods: [POST], login: true, allow_from: [office] }}
alerts:
  timeout: 3s
  sinks:
{sinks}"
    )
}

/// `netwarden alert-test` on a policy with these sinks and variables.
async fn alert_test(sinks: &str, env: &[(&str, &str)]) -> std::process::Output {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("policy.yaml");
    std::fs::write(&path, mail_policy(sinks)).expect("write policy");
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
        .collect();
    tokio::task::spawn_blocking(move || {
        support::bin()
            .envs(env)
            .args(["alert-test", "--policy"])
            .arg(&path)
            .output()
            .expect("runs")
    })
    .await
    .expect("joined")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_goes_over_implicit_tls_and_a_refused_login_or_certificate_is_reported() {
    let certs = support::dev_certs();
    let smtp = Smtp::start("implicit", certs.path());
    let ca = certs.path().join("ca.pem");
    let sink = |name: &str, password_env: &str, ca: &str| {
        format!(
            "    - {{ name: {name}, type: email, smtp: \"127.0.0.1:{}\", tls: implicit, {ca} username_env: SMTP_USER, password_env: {password_env}, from: netwarden@example.com, to: [ops@example.com], language: ja }}\n",
            smtp.port
        )
    };
    let ca_line = format!("ca: \"{}\",", ca.display());
    let sinks = sink("good", "SMTP_PASSWORD", &ca_line)
        + &sink("wrong_password", "SMTP_WRONG", &ca_line)
        + &sink("untrusted", "SMTP_PASSWORD", "");
    let out = alert_test(
        &sinks,
        &[
            ("SMTP_USER", "alerts@example.com"),
            ("SMTP_PASSWORD", SMTP_PASSWORD),
            ("SMTP_WRONG", "guessed"),
        ],
    )
    .await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("good (email): delivered, SMTP 250"),
        "{stdout}"
    );
    assert!(
        stdout.contains("wrong_password (email): refused, SMTP 535"),
        "{stdout}"
    );
    // The development CA is not among the system's roots.
    assert!(
        stdout.contains("untrusted (email): failed: tls_error"),
        "{stdout}"
    );
    let mails = smtp.mails();
    assert_eq!(mails.len(), 1, "only the good sink's test mail");
    let meta = &mails[0].1;
    assert_eq!(meta["encrypted"], true);
    assert_eq!(meta["authenticated"], true);
    assert_eq!(
        meta["subject"],
        "[netwarden] netwarden のテスト通知：この通知先に届いています"
    );
    assert!(!mails[0].0.contains(SMTP_PASSWORD));
}

/// A receiver that accepts and never says a word: an SMTP server that
/// hangs before its greeting.
async fn silent_listener() -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = l.local_addr().expect("addr");
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = l.accept().await {
            held.push(s);
        }
    });
    (addr, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_sink_of_each_kind_never_slows_requests() {
    let up = Upstream::start().await;
    let keys = tempfile::tempdir().expect("key dir");
    let (key, _) = line_works_key(keys.path());
    let hang = Receiver::start(&[], Answer::Hang).await;
    let (smtp, _task) = silent_listener().await;
    let sinks = format!(
        "    - {{ name: teams, type: teams, url_env: HANG_URL }}
    - {{ name: chatwork, type: chatwork, url: \"{url}\", room_id: \"1\", token_env: TOKEN }}
    - {{ name: pager, type: pagerduty, url: \"{url}\", routing_key_env: TOKEN }}
    - {{ name: works, type: line_works, url: \"{url}\", auth_url: \"{url}\", bot_id: \"1\", user_id: u1, client_id: c, service_account: s@example.com, client_secret_env: TOKEN, private_key_file: \"{key}\" }}
    - {{ name: mail, type: email, smtp: \"127.0.0.1:{port}\", tls: none, from: n@example.com, to: [o@example.com] }}
",
        url = hang.url(""),
        key = key.display(),
        port = smtp.port(),
    );
    let policy = mail_policy(&sinks).replace("timeout: 3s", "timeout: 1s\n  give_up_after: 2s");
    let hang_url = hang.url("/hook");
    let nw = Netwarden::in_front_of_env(&policy, &up, &[("HANG_URL", &hang_url), ("TOKEN", "t")]);
    // Twenty blocked sign-ins from twenty addresses: each alerts at once,
    // every sink hangs; each request is answered regardless.
    for i in 1..=20u8 {
        let r = post(&format!("127.0.1.{i}"), nw.addr("http"), "/login", &[]).await;
        assert_eq!(r.status, 403);
    }
    // Each sink gives up (timeout 1 s, give_up_after 2 s) and says so.
    for sink in ["teams", "chatwork", "pager", "works", "mail"] {
        let line = nw.wait_log(|v| v["event"] == "alert_gave_up" && v["sink"] == sink);
        assert_eq!(line["error"], "timeout", "{line}");
    }
    hang.release();
}

/// The clock 4 s before 09:00 in Tokyo (NETWARDEN_TEST_NOW), the digest at
/// 09:00: a day's blocked sign-ins, a lockout, a refused reload and a grant
/// ending within the week reach the digest's sinks (and only those), in
/// their language (a quiet day's one line: `src/alerts/message.rs`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_morning_digest_says_what_happened_since_the_last_one() {
    let up = Upstream::start().await;
    let hook = Receiver::start(&[], Answer::Status(200)).await;
    let chat = Receiver::start(&[], Answer::Status(200)).await;
    let other = Receiver::start(&[], Answer::Status(200)).await;
    let policy = "version: 1
networks:
  office: [127.0.0.1]
  load_balancer: [127.0.0.9]
  vpn:
    cidrs:
      - { cidr: 192.0.2.7/32, until: 2026-12-10T18:00:00+09:00, note: Aiko }
client_ip:
  trusted_proxies: [load_balancer]
rules:
  - name: login
    paths: [/login]
    methods: [POST]
    login: true
    allow_from: [office, vpn]
    outcome:
      failure: { status: [200] }
  - { name: console, action: allow }
lockout: { after: 3, within: 1m, lock_for: 30s }
alerts:
  window: 1h
  digest: { at: \"09:00\", time_zone: Asia/Tokyo, sinks: [hook, chat] }
  sinks:
    - { name: hook, type: webhook, url_env: HOOK_URL, language: ja, time_zone: Asia/Tokyo }
    - { name: chat, type: chatwork, url: \"CHAT_URL\", room_id: \"7\", token_env: CW, language: ja, time_zone: Asia/Tokyo }
    - { name: other, type: slack, url_env: OTHER_URL }
"
    .replace("CHAT_URL", &chat.url(""));
    let hook_url = hook.url("/hook");
    let other_url = other.url("/hook");
    let nw = Netwarden::in_front_of_env(
        &policy,
        &up,
        &[
            ("HOOK_URL", &hook_url),
            ("OTHER_URL", &other_url),
            ("CW", "t"),
            ("NETWARDEN_TEST_NOW", "2026-12-08T08:59:56+09:00"),
        ],
    );
    for i in 1..=3u8 {
        let xff = format!("X-Forwarded-For: 198.51.100.{}", if i == 3 { 1 } else { i });
        let r = post("127.0.0.9", nw.addr("http"), "/login", &[&xff]).await;
        assert_eq!(r.status, 403);
    }
    for _ in 0..3 {
        assert_eq!(
            post("127.0.0.1", nw.addr("http"), "/login", &[])
                .await
                .status,
            200
        );
    }
    // A reload with a broken policy: refused, counted.
    std::fs::write(nw.policy_path(), "version: 1\nnetworks: [\n").expect("break policy");
    let admin = nw.addr("admin");
    let r = exchange(
        connect_from("127.0.0.1", admin).await,
        b"POST /reload HTTP/1.1\r\nHost: a\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
    )
    .await;
    assert_ne!(r.status, 200, "{r:?}");
    std::fs::write(nw.policy_path(), &policy).expect("restore policy");
    let deadline = Instant::now() + WAIT;
    let digest = loop {
        let got = hook.got().into_iter().map(|g| g.json());
        if let Some(d) = got.into_iter().find(|v| v["kind"] == "digest") {
            break d;
        }
        assert!(Instant::now() < deadline, "no digest: {:?}", hook.got());
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let d = &digest["digest"];
    assert_eq!(d["blocked"], 3, "{digest}");
    assert_eq!(d["lockouts"], 1, "{digest}");
    assert_eq!(d["reloads_refused"], 1, "{digest}");
    assert_eq!(d["top_addresses"][0]["key"], "198.51.100.1");
    assert_eq!(d["top_addresses"][0]["attempts"], 2);
    assert_eq!(d["by_subnet"][0]["key"], "198.51.100.0/24");
    assert_eq!(d["grants_ending"][0]["network"], "vpn");
    assert_eq!(d["grants_ending"][0]["cidr"], "192.0.2.7/32");
    assert_eq!(d["quiet"], false);
    let text = digest["text"].as_str().expect("text");
    assert!(
        text.starts_with("netwarden 日次レポート：遮断したログイン3件、ロック1件、問題1件"),
        "{text}"
    );
    assert!(
        text.contains("192.0.2.7/32 – 2026-12-10 18:00 JST"),
        "{text}"
    );
    // Chatwork got it too, in its markup; the Slack sink, not a digest sink,
    // did not.
    let cw = chat.wait_for(1).await;
    let body = url_decode_form(std::str::from_utf8(&cw.last().expect("one").body).expect("utf-8"));
    assert!(
        body["body"].starts_with("[info][title]netwarden 日次レポート"),
        "{body:?}"
    );
    assert!(
        other
            .got()
            .iter()
            .all(|g| !String::from_utf8_lossy(&g.body).contains("日次"))
    );
    assert!(
        other
            .got()
            .iter()
            .all(|g| !String::from_utf8_lossy(&g.body).contains("digest"))
    );
}

/// Two replicas on one Redis, each blocking different clients: at 09:00
/// one of them sends one digest with both replicas' counts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_one_replica_sends_the_fleets_digest() {
    let redis = support::redis::RedisServer::start();
    let up = Upstream::start().await;
    let hook = Receiver::start(&[], Answer::Status(200)).await;
    let policy = "version: 1
networks:
  office: [127.0.0.1]
rules:
  - { name: login, paths: [/login], methods: [POST], login: true, allow_from: [office] }
  - { name: console, action: allow }
state: { store: redis, url_env: NW_TEST_REDIS, timeout: 250ms, prefix: \"nwdigest:\" }
alerts:
  window: 1h
  digest: { at: \"09:00\", time_zone: Asia/Tokyo, sinks: [hook] }
  sinks:
    - { name: hook, type: webhook, url_env: HOOK_URL }
";
    let hook_url = hook.url("/hook");
    let redis_url = redis.url();
    let env = [
        ("HOOK_URL", hook_url.as_str()),
        ("NW_TEST_REDIS", redis_url.as_str()),
        ("NETWARDEN_TEST_NOW", "2026-12-08T08:59:55+09:00"),
    ];
    let replicas: Vec<Netwarden> = (0..2)
        .map(|_| Netwarden::in_front_of_env(policy, &up, &env))
        .collect();
    // Replica 0 blocks 127.0.0.2 twice, replica 1 blocks 127.0.0.3 once.
    for (nw, from, times) in [
        (&replicas[0], "127.0.0.2", 2),
        (&replicas[1], "127.0.0.3", 1),
    ] {
        for _ in 0..times {
            assert_eq!(post(from, nw.addr("http"), "/login", &[]).await.status, 403);
        }
    }
    let deadline = Instant::now() + WAIT;
    let digests = loop {
        let d: Vec<serde_json::Value> = hook
            .got()
            .into_iter()
            .map(|g| g.json())
            .filter(|v| v["kind"] == "digest")
            .collect();
        if !d.is_empty() {
            break d;
        }
        assert!(Instant::now() < deadline, "no digest");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let d = &digests[0]["digest"];
    assert_eq!(d["replicas"], 2, "{d}");
    assert_eq!(d["blocked"], 3, "{d}");
    assert_eq!(d["top_addresses"][0]["key"], "127.0.0.2");
    assert_eq!(d["top_addresses"][1]["key"], "127.0.0.3");
    // The other replica lost the claim at 09:00, before the winner's
    // grace ended: nothing more is coming.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let n = hook
        .got()
        .iter()
        .filter(|g| g.json()["kind"] == "digest")
        .count();
    assert_eq!(n, 1, "one digest for the fleet");
}

/// The red-team review of issue 28, through the binary.
///
/// A token endpoint that answers an `expires_in` past any clock: the token
/// is kept at most a day and the message goes (it panicked the sink's task
/// and `alert-test`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_absurd_token_lifetime_neither_panics_nor_silences_line_works() {
    let keys = tempfile::tempdir().expect("key dir");
    let (key, _) = line_works_key(keys.path());
    let auth = Receiver::start(
        &[],
        Answer::Reply {
            status: 200,
            headers: vec![("content-type", "application/json".into())],
            body:
                r#"{"access_token":"AT","token_type":"Bearer","expires_in":18446744073709551615}"#
                    .into(),
        },
    )
    .await;
    let api = Receiver::start(&[], Answer::Status(201)).await;
    let sinks = format!(
        "    - {{ name: works, type: line_works, url: \"{}\", auth_url: \"{}\", bot_id: \"1\", user_id: u1, client_id: c, service_account: s@example.com, client_secret_env: LW, private_key_file: \"{}\" }}\n",
        api.url(""),
        auth.url("/token"),
        key.display()
    );
    let out = alert_test(&sinks, &[("LW", "secret")]).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("works (line_works): delivered, HTTP 201"),
        "{stdout}"
    );
    assert_eq!(api.got()[0].header("authorization"), Some("Bearer AT"));
}

/// A mail server (or whoever is on the path before STARTTLS) that sends
/// an endless greeting line: netwarden reads at most a session's worth
/// (64 KiB) and drops it, instead of buffering the line (1.5 GB in 3 s
/// before the fix).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_smtp_greeting_is_cut_off_not_buffered() {
    use tokio::io::AsyncWriteExt as _;
    let up = Upstream::start().await;
    let hook = Receiver::start(&[], Answer::Status(200)).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    // Up to 512 MiB of one line, until the client hangs up.
    let sent = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counter = sent.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let counter = counter.clone();
            tokio::spawn(async move {
                let chunk = vec![b'A'; 64 * 1024];
                if s.write_all(b"220 ").await.is_err() {
                    return;
                }
                for _ in 0..(512 * 16) {
                    if s.write_all(&chunk).await.is_err() {
                        return;
                    }
                    counter.fetch_add(chunk.len() as u64, std::sync::atomic::Ordering::Relaxed);
                }
            });
        }
    });
    let sinks = format!(
        "    - {{ name: mail, type: email, smtp: \"127.0.0.1:{port}\", tls: none, from: n@example.com, to: [o@example.com] }}\n    - {{ name: hook, type: webhook, url_env: HOOK_URL }}\n"
    );
    let policy = mail_policy(&sinks).replace("timeout: 3s", "timeout: 10s\n  give_up_after: 1s");
    let hook_url = hook.url("/hook");
    let nw = Netwarden::in_front_of_env(&policy, &up, &[("HOOK_URL", &hook_url)]);
    assert_eq!(
        post("127.0.0.2", nw.addr("http"), "/login", &[])
            .await
            .status,
        403
    );
    hook.wait_for(1).await;
    let line = nw.wait_log(|v| v["event"] == "alert_gave_up" && v["sink"] == "mail");
    assert_eq!(line["error"], "connect_error", "{line}");
    // What the process ever held: far below the stream it was sent.
    let status =
        std::fs::read_to_string(format!("/proc/{}/status", nw.pid())).expect("proc status");
    let peak_kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM");
    assert!(
        peak_kib < 150 * 1024,
        "peak {peak_kib} KiB; the server sent {} bytes",
        sent.load(std::sync::atomic::Ordering::Relaxed)
    );
}

/// A 5,000-byte extension method on a login rule that names no methods:
/// alerts and the log carry at most 32 bytes of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_method_is_cut_in_alerts_and_logs() {
    let up = Upstream::start().await;
    let hook = Receiver::start(&[], Answer::Status(200)).await;
    let policy = "version: 1
networks:
  office: [127.0.0.1]
rules:
  - { name: login, paths: [/signin/**], login: true, allow_from: [office] }
alerts:
  sinks:
    - { name: hook, type: webhook, url_env: HOOK_URL }
";
    let hook_url = hook.url("/hook");
    let nw = Netwarden::in_front_of_env(policy, &up, &[("HOOK_URL", &hook_url)]);
    let method = "X".repeat(5000);
    let req =
        format!("{method} /signin/x HTTP/1.1\r\nHost: console.test\r\nConnection: close\r\n\r\n");
    let r = exchange(
        connect_from("127.0.0.2", nw.addr("http")).await,
        req.as_bytes(),
    )
    .await;
    assert_eq!(r.status, 403, "{r:?}");
    let got = hook.wait_for(1).await;
    let m = got[0].json()["attempt"]["request"]["method"]
        .as_str()
        .expect("method")
        .to_string();
    assert!(m.len() < 64 && m.starts_with(&"X".repeat(32)), "{m}");
    assert!(m.contains("[cut: 5000 bytes]"), "{m}");
    assert!(got[0].body.len() < 8 * 1024, "{} bytes", got[0].body.len());
    let line = nw.wait_log(|v| v["event"] == "decision" && v["http.request.method"].is_string());
    let logged = line["http.request.method"].as_str().expect("method");
    assert!(logged.len() < 64, "{logged}");
}

/// A Slack webhook URL, or a PagerDuty key under a mistyped key, pasted
/// into the policy: `check` refuses it without showing it (the line it
/// prints has the value hidden).
#[test]
fn check_never_shows_a_secret_pasted_into_the_policy() {
    for (sink, said, secret) in [
        (
            "    - { name: s, type: slack, url: \"https://hooks.slack.com/services/T0/B0/SLACKSECRETXYZ\" }\n",
            "URL is a secret",
            "SLACKSECRETXYZ",
        ),
        (
            "    - { name: p, type: pagerduty, routing_key: R0UT1NGSECRET }\n",
            "unknown key 'routing_key'",
            "R0UT1NGSECRET",
        ),
    ] {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("policy.yaml");
        std::fs::write(&path, mail_policy(sink)).expect("write policy");
        let out = support::bin()
            .args(["check", "--policy"])
            .arg(&path)
            .output()
            .expect("runs");
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_ne!(out.status.code(), Some(0), "{all}");
        assert!(all.contains(said), "{all}");
        assert!(all.contains(": <hidden> }"), "{all}");
        assert!(!all.contains(secret), "{all}");
    }
}

/// A reply of thousands of short lines to EHLO, in clear text before
/// STARTTLS (the second red-team review: lettre parses a reply again with
/// each line; 8,192 lines froze the guard for 29 s): netwarden stops
/// reading after 200 lines, and the guard answers throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_of_endless_short_lines_neither_freezes_the_guard_nor_is_parsed() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let up = Upstream::start().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let _ = s.write_all(b"220 mail.test ESMTP\r\n").await;
                let mut ehlo = [0u8; 256];
                let _ = s.read(&mut ehlo).await;
                let reply = b"250-x\r\n".repeat(8192);
                let _ = s.write_all(&reply).await;
                let _ = s.write_all(b"250 STARTTLS\r\n").await;
                let _ = s.read(&mut ehlo).await;
            });
        }
    });
    let sinks = format!(
        "    - {{ name: mail, type: email, smtp: \"127.0.0.1:{port}\", from: n@example.com, to: [o@example.com] }}\n"
    );
    let policy = mail_policy(&sinks)
        .replace("timeout: 3s", "timeout: 30s\n  give_up_after: 1s")
        .replace(
            "rules:\n",
            "rules:\n  - { name: console, paths: [/home], action: allow }\n",
        );
    let nw = Netwarden::in_front_of_env(&policy, &up, &[]);
    assert_eq!(
        post("127.0.0.2", nw.addr("http"), "/login", &[])
            .await
            .status,
        403
    );
    // Meanwhile the guard answers, every time.
    for _ in 0..20 {
        let r = support::proxy::get("127.0.0.1", nw.addr("http"), "/home", &[]).await;
        assert_eq!(r.status, 200);
        let h = support::proxy::get("127.0.0.1", nw.addr("admin"), "/healthz", &[]).await;
        assert_eq!(h.status, 200);
    }
    let line = nw.wait_log(|v| v["event"] == "alert_gave_up" && v["sink"] == "mail");
    assert_eq!(line["error"], "connect_error", "{line}");
}
