//! Verified identity from an auth layer in front (issue 26), through the
//! real binary: tokens signed here with keys made here, the keys served
//! as a JWKS (and, for AWS ALB, one PEM per `kid`) over HTTPS on loopback;
//! a trusted auth proxy's headers. Every bad token is refused with its
//! reason; keys rotate; a dead key URL keeps the last good keys; random
//! `kid`s do not hammer the key URL; forged identity headers from an
//! untrusted peer are neither believed nor passed to the console.

use std::time::Duration;

use crate::support::dev_certs;
use crate::support::jwt::{self, Key};
use crate::support::proxy::{Netwarden, Upstream, get};
use crate::support::publisher::{Answer, Publisher};

const ISS: &str = "https://team.cloudflareaccess.test";
const AUD: &str = "aud-tag-1";

fn claims(exp_in: i64, extra: &str) -> String {
    let now = jwt::now();
    format!(
        r#"{{"iss":"{ISS}","aud":["{AUD}"],"sub":"u-7f3a","email":"Yamada@Example.JP","groups":["admins"],"iat":{},"exp":{}{extra}}}"#,
        now - 5,
        now + exp_in
    )
}

fn policy(keys_url: &str, ca: &std::path::Path, extra_jwt: &str) -> String {
    format!(
        "version: 1
networks:
  office: [127.0.0.0/8]
identity:
  jwt:
    preset: cloudflare_access
    issuer: {ISS}
    audience: {AUD}
    keys_url: \"{keys_url}\"
    ca_file: \"{}\"
    timeout: 2s{extra_jwt}
rules:
  - {{ name: admins, paths: [\"/admin/**\"], who: {{ groups: [admins] }}, allow_from: [office] }}
  - {{ name: console, allow_from: [office] }}
",
        ca.display()
    )
}

/// A development CA and a server certificate for the key server: the
/// directory (kept while the test runs), the CA, the certificate, the key.
fn certs() -> (
    tempfile::TempDir,
    std::path::PathBuf,
    std::path::PathBuf,
    std::path::PathBuf,
) {
    let dir = dev_certs();
    let (ca, cert, key) = (
        dir.path().join("ca.pem"),
        dir.path().join("cert.pem"),
        dir.path().join("key.pem"),
    );
    (dir, ca, cert, key)
}

fn start(text: &str, up: &Upstream) -> Netwarden {
    Netwarden::in_front_of(text, up)
}

/// `GET /admin/x` with these extra header lines, marked `agent`.
async fn admin(nw: &Netwarden, agent: &str, extra: &[&str]) -> (u16, serde_json::Value) {
    let mut lines = vec![format!("User-Agent: {agent}")];
    lines.extend(extra.iter().map(|s| (*s).to_string()));
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    let r = get("127.0.0.1", nw.addr("http"), "/admin/x", &refs).await;
    let line = nw.wait_log(|l| l["event"] == "decision" && l["user_agent.original"] == agent);
    (r.status, line)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_identity_decides_who_rules_and_every_bad_token_is_refused_with_its_reason() {
    let (_certs, ca, cert, key) = certs();
    let k1 = Key::rsa("k1");
    let publisher = Publisher::start_tls(&cert, &key, Answer::List(jwt::jwks(&[&k1]))).await;
    let up = Upstream::start().await;
    let nw = start(&policy(&publisher.url("/certs"), &ca, ""), &up);

    let header = |t: &str| format!("Cf-Access-Jwt-Assertion: {t}");
    let good = k1.sign(&claims(300, ""), "");
    let (status, line) = admin(&nw, "good", &[&header(&good)]).await;
    assert_eq!(status, 200, "{line}");
    assert_eq!(line["rule"], "admins");
    assert_eq!(line["identity.state"], "verified");
    assert_eq!(line["identity.group"], "admins");
    assert_eq!(line["identity.email_domain"], "example.jp");
    let hash = line["identity.subject_hash"]
        .as_str()
        .expect("a subject hash");
    assert!(!hash.contains("u-7f3a"));
    // The e-mail and the subject stay out of the logs by default.
    let raw = nw.raw_logs().join("\n");
    assert!(!raw.contains("yamada@") && !raw.contains("u-7f3a"), "{raw}");

    // Another group falls through to the console rule.
    let sales = k1.sign(
        &claims(300, "").replace(r#"["admins"]"#, r#"["sales"]"#),
        "",
    );
    let (status, line) = admin(&nw, "sales", &[&header(&sales)]).await;
    assert_eq!(
        (status, line["rule"].as_str()),
        (200, Some("console")),
        "{line}"
    );

    let now = jwt::now();
    let public_pem = k1.pem();
    let cases: Vec<(&str, String, &str)> = vec![
        ("expired", k1.sign(&claims(-120, ""), ""), "expired"),
        (
            "not yet valid",
            k1.sign(&claims(300, &format!(r#","nbf":{}"#, now + 600)), ""),
            "not_yet_valid",
        ),
        (
            "nbf as a string",
            k1.sign(&claims(300, r#","nbf":"99999999999""#), ""),
            "bad_claims",
        ),
        (
            "another audience",
            k1.sign(&claims(300, "").replace(AUD, "other-app"), ""),
            "wrong_audience",
        ),
        (
            "another issuer",
            k1.sign(&claims(300, "").replace(ISS, "https://evil.test"), ""),
            "wrong_issuer",
        ),
        (
            "alg none",
            jwt::unsigned(&claims(300, "")),
            "algorithm_not_allowed",
        ),
        (
            "HS256 keyed with the public key",
            jwt::hs256("k1", &claims(300, ""), public_pem.as_bytes()),
            "algorithm_not_allowed",
        ),
        (
            "another key",
            Key::rsa("k1").sign(&claims(300, ""), ""),
            "bad_signature",
        ),
        (
            "a kid that is a path",
            k1.sign_raw(
                r#"{"alg":"RS256","kid":"../../../etc/passwd"}"#,
                &claims(300, ""),
            ),
            "unknown_key",
        ),
        (
            "oversized",
            format!("{good}{}", "A".repeat(20_000)),
            "oversized",
        ),
        ("not a token", "hello".to_string(), "malformed"),
    ];
    for (what, token, state) in &cases {
        let (status, line) = admin(&nw, what, &[&header(token)]).await;
        assert_eq!(status, 403, "{what}: {line}");
        assert_eq!(line["reason_code"], "identity_invalid", "{what}: {line}");
        assert_eq!(line["identity.state"], *state, "{what}: {line}");
    }
    // Two tokens: neither is believed.
    // A reload that changes how tokens are checked applies at once, the
    // keys kept and the cache not consulted (second red-team review).
    std::fs::write(
        nw.policy_path(),
        policy(&publisher.url("/certs"), &ca, "")
            .replace(&format!("audience: {AUD}"), "audience: aud-tag-2"),
    )
    .expect("rewrite");
    nw.signal("HUP");
    nw.wait_log(|l| l["event"] == "policy_reloaded");
    let (status, line) = admin(&nw, "good after reload", &[&header(&good)]).await;
    assert_eq!(
        (status, line["identity.state"].as_str()),
        (403, Some("wrong_audience")),
        "{line}"
    );
    let other = k1.sign(&claims(300, "").replace(AUD, "aud-tag-2"), "");
    let (status, line) = admin(&nw, "new audience", &[&header(&other)]).await;
    assert_eq!(status, 200, "{line}");
    std::fs::write(nw.policy_path(), policy(&publisher.url("/certs"), &ca, "")).expect("rewrite");
    nw.signal("HUP");
    nw.wait_log(|l| l["event"] == "policy_reloaded" && l["generation"] == 3);
    let (status, line) = admin(&nw, "two", &[&header(&good), &header(&sales)]).await;
    assert_eq!(
        (status, line["identity.state"].as_str()),
        (403, Some("ambiguous"))
    );
    // None at all: refused by the rule that needs one, with a page saying so.
    let (status, line) = admin(&nw, "none", &[]).await;
    assert_eq!(
        (status, line["reason_code"].as_str()),
        (403, Some("identity_missing"))
    );
    let page = get(
        "127.0.0.1",
        nw.addr("http"),
        "/admin/x",
        &["Accept: application/json"],
    )
    .await;
    assert!(page.body.contains("\"identity_required\""), "{}", page.body);
    // The whoami page says who netwarden thinks the client is.
    let who = get(
        "127.0.0.1",
        nw.addr("http"),
        "/.well-known/netwarden/whoami",
        &[&header(&good), "Accept: application/json"],
    )
    .await;
    let v: serde_json::Value = serde_json::from_str(&who.body).expect("json");
    assert_eq!(v["identity"]["state"], "verified", "{v}");
    assert_eq!(v["identity"]["email"], "yamada@example.jp");
    assert_eq!(v["identity"]["groups"][0], "admins");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_rotate_a_dead_key_url_keeps_the_last_good_ones_and_random_kids_fetch_once() {
    let (_certs, ca, cert, key) = certs();
    let (k1, k2) = (Key::ec("k1"), Key::ec("k2"));
    let publisher = Publisher::start_tls(&cert, &key, Answer::List(jwt::jwks(&[&k1]))).await;
    let up = Upstream::start().await;
    let nw = start(
        &policy(
            &publisher.url("/certs"),
            &ca,
            "\n    algorithms: [ES256]\n    refetch_interval: 2s",
        ),
        &up,
    );
    let header = |k: &Key| format!("Cf-Access-Jwt-Assertion: {}", k.sign(&claims(300, ""), ""));
    assert_eq!(admin(&nw, "k1", &[&header(&k1)]).await.0, 200);
    // The provider rotates: k2 appears, k1 goes. A token with k2 fetches
    // the keys again (once the interval has passed since the last fetch).
    publisher.set(Answer::List(jwt::jwks(&[&k2])));
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (status, line) = admin(&nw, "k2", &[&header(&k2)]).await;
    assert_eq!(status, 200, "{line}");
    // k1 is gone from the fetched set.
    let (status, line) = admin(&nw, "k1 after", &[&header(&k1)]).await;
    assert_eq!(
        (status, line["identity.state"].as_str()),
        (403, Some("unknown_key")),
        "{line}"
    );

    // The key URL dies: the last good keys are kept.
    publisher.set(Answer::Status(500));
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let k3 = Key::ec("k3");
    let (status, line) = admin(&nw, "k3", &[&header(&k3)]).await;
    assert_eq!(
        (status, line["identity.state"].as_str()),
        (403, Some("unknown_key"))
    );
    nw.wait_log(|l| l["event"] == "identity_keys_failed");
    assert_eq!(admin(&nw, "k2 kept", &[&header(&k2)]).await.0, 200);

    // Twenty unknown kids within the interval: at most one more fetch.
    publisher.set(Answer::List(jwt::jwks(&[&k2])));
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let before = publisher.seen().len();
    for i in 0..20 {
        let k = Key::ec(&format!("random{i}"));
        let (status, _) = admin(&nw, &format!("random {i}"), &[&header(&k)]).await;
        assert_eq!(status, 403);
    }
    let fetches = publisher.seen().len() - before;
    assert!(fetches <= 1, "{fetches} fetches for 20 unknown kids");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alb_key_is_fetched_by_its_kid_and_a_kid_that_is_a_path_is_never_fetched() {
    let (_certs, ca, cert, key) = certs();
    let kid = "6b1f3b2a-84d6-4f0e-9c67-3b9c1fbd6d2e";
    let k = Key::ec(kid);
    let publisher = Publisher::start_tls(&cert, &key, Answer::Status(404)).await;
    publisher.set_path(&format!("/{kid}"), Answer::List(k.pem()));
    let signer = "arn:aws:elasticloadbalancing:ap-northeast-1:123456789012:loadbalancer/app/console/50dc6c495c0c9188";
    let text = format!(
        "version: 1
networks:
  office: [127.0.0.0/8]
identity:
  jwt:
    preset: aws_alb
    issuer: https://idp.example.jp
    signer: \"{signer}\"
    keys_url: \"{}\"
    ca_file: \"{}\"
    timeout: 2s
    refetch_interval: 5m
rules:
  - {{ name: admins, paths: [\"/admin/**\"], who: {{ emails: [\"*@example.jp\"] }}, allow_from: [office] }}
  - {{ name: console, allow_from: [office] }}
",
        publisher.url(""),
        ca.display()
    );
    let up = Upstream::start().await;
    let nw = start(&text, &up);
    let now = jwt::now();
    let c = format!(
        r#"{{"iss":"https://idp.example.jp","sub":"u-1","email":"sato@example.jp","exp":{}}}"#,
        now + 300
    );
    let header = |t: &str| format!("x-amzn-oidc-data: {t}");
    let good = k.sign(&c, &format!(r#","signer":"{signer}""#));
    let (status, line) = admin(&nw, "alb", &[&header(&good)]).await;
    assert_eq!(status, 200, "{line}");
    // Another load balancer's token is not believed.
    let other = k.sign(
        &c,
        r#","signer":"arn:aws:elasticloadbalancing:us-east-1:1:loadbalancer/app/x/1""#,
    );
    let (status, line) = admin(&nw, "other lb", &[&header(&other)]).await;
    assert_eq!(
        (status, line["identity.state"].as_str()),
        (403, Some("wrong_signer"))
    );
    // A kid that would reach another path is refused before any fetch.
    let before = publisher.seen().len();
    let evil = k.sign_raw(
        &format!(r#"{{"alg":"ES256","kid":"../../admin","signer":"{signer}"}}"#),
        &c,
    );
    let (status, line) = admin(&nw, "evil kid", &[&header(&evil)]).await;
    assert_eq!(
        (status, line["identity.state"].as_str()),
        (403, Some("unknown_key"))
    );
    assert_eq!(
        publisher.seen().len(),
        before,
        "nothing fetched for a path kid"
    );
    // ALB rotates to a new kid within refetch_interval (5m): each kid has
    // its own budget, so a random kid sent first cannot keep it out.
    let random = Key::ec("0f0f0f0f-0000-4000-8000-000000000000");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let t = random.sign(&c, &format!(r#","signer":"{signer}""#));
    assert_eq!(admin(&nw, "random kid", &[&header(&t)]).await.0, 403);
    let kid2 = "7c2e4c3b-95e7-4a1f-8d78-4cad2ace7e3f";
    let k2 = Key::ec(kid2);
    publisher.set_path(&format!("/{kid2}"), Answer::List(k2.pem()));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let t = k2.sign(&c, &format!(r#","signer":"{signer}""#));
    let (status, line) = admin(&nw, "rotated kid", &[&header(&t)]).await;
    assert_eq!(status, 200, "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_headers_are_believed_only_from_a_trusted_proxy_and_never_forwarded_from_others() {
    let text = "version: 1
networks:
  office: [127.0.0.0/8]
  auth_proxy: [127.0.0.5/32]
client_ip: { trusted_proxies: [auth_proxy] }
identity:
  headers: { preset: oauth2_proxy }
rules:
  - { name: admins, paths: [\"/admin/**\"], who: { groups: [admins] }, allow_from: [office] }
  - { name: console, allow_from: [office] }
";
    let up = Upstream::start().await;
    let nw = start(text, &up);
    let forged = [
        "X-Auth-Request-User: yamada",
        "X-Auth-Request-Email: yamada@example.jp",
        "X-Auth-Request-Groups: admins",
        "Remote-User: root",
        "X-Forwarded-User: root",
        // The unsigned companions of identity-aware proxies (second
        // red-team review).
        "Cf-Access-Authenticated-User-Email: yamada@example.jp",
        "X-Goog-Authenticated-User-Email: accounts.google.com:yamada@example.jp",
        "X-Amzn-Oidc-Identity: yamada",
        "X-MS-CLIENT-PRINCIPAL-NAME: yamada@example.jp",
        "Tailscale-User-Login: yamada@example.jp",
        "X-Remote-Group: system:masters",
        "X-Remote-Extra-Scopes: admin",
        "X-Forwarded-Client-Cert: Hash=1;Subject=\"CN=admin\"",
        // Whole families (second review).
        "X-SSL-Client-S-DN: CN=admin,O=Example",
        "Client-Cert: :MIIB:",
        "X-Forwarded-Tls-Client-Cert: MIIB",
        "X-Amzn-Mtls-Clientcert: MIIB",
        "X-Remote-Uid: 0",
        "X-MS-TOKEN-AAD-ID-TOKEN: x",
        // Fourth review.
        "WL-Proxy-Client-Cert: MIIB",
        "$WSRU: admin",
        "X-SSL-Issuer: CN=CA",
        "Proxy-Auth-Cert: x",
        "Tailscale-App-Capabilities: {}",
        "X-Appengine-User-Email: admin@example.jp",
        "X-Auth-Username: admin",
        "X-Proxy-Roles: all_access",
        "X-Jwt-Payload: e30",
        "Fly-Client-IP: 203.0.113.7",
    ];
    let stripped = [
        "x-auth-request-user",
        "x-auth-request-email",
        "x-auth-request-groups",
        "remote-user",
        "x-forwarded-user",
        "cf-access-authenticated-user-email",
        "x-goog-authenticated-user-email",
        "x-amzn-oidc-identity",
        "x-ms-client-principal-name",
        "tailscale-user-login",
        "x-remote-group",
        "x-remote-extra-scopes",
        "x-forwarded-client-cert",
        "x-ssl-client-s-dn",
        "client-cert",
        "x-forwarded-tls-client-cert",
        "x-amzn-mtls-clientcert",
        "x-remote-uid",
        "x-ms-token-aad-id-token",
        "wl-proxy-client-cert",
        "$wsru",
        "x-ssl-issuer",
        "proxy-auth-cert",
        "tailscale-app-capabilities",
        "x-appengine-user-email",
        "x-auth-username",
        "x-proxy-roles",
        "x-jwt-payload",
        "fly-client-ip",
    ];
    // From a client that is not the auth proxy: not believed, refused.
    let r = get("127.0.0.1", nw.addr("http"), "/admin/x", &forged).await;
    assert_eq!(r.status, 403);
    // On a path any office client may use, forwarded without them.
    let r = get("127.0.0.1", nw.addr("http"), "/home", &forged).await;
    assert_eq!(r.status, 200);
    let seen = up.seen();
    let last = seen.last().expect("the console got the request");
    for h in stripped {
        assert!(last.header(h).is_empty(), "{h} reached the console");
    }
    // From the auth proxy: believed, and passed on.
    let mut from_proxy = forged.to_vec();
    from_proxy.push("X-Forwarded-For: 127.0.0.9");
    // A `_` spelling beside the one read would be the console's to pick.
    from_proxy.push("X_Auth_Request_Email: kato@contractor.example");
    let r = get("127.0.0.5", nw.addr("http"), "/admin/x", &from_proxy).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let seen = up.seen();
    let last = seen.last().expect("forwarded");
    assert_eq!(
        last.header("x-auth-request-email"),
        vec!["yamada@example.jp"]
    );
    assert!(last.header("x_auth_request_email").is_empty());
    // The auth proxy vouches for the headers netwarden reads, not for
    // other identity headers a client sent through it.
    assert!(last.header("remote-user").is_empty());
    assert!(last.header("cf-access-authenticated-user-email").is_empty());
    // Two e-mails merged into one line: neither is believed.
    let merged = [
        "X-Forwarded-For: 127.0.0.9",
        "X-Auth-Request-User: kato",
        "X-Auth-Request-Email: kato@example.jp, kato@contractor.example",
        "X-Auth-Request-Groups: admins",
    ];
    let r = get("127.0.0.5", nw.addr("http"), "/admin/x", &merged).await;
    assert_eq!(r.status, 403, "{}", r.body);
    // Where no rule reads them, headers not believed still do not reach
    // the console (fourth review).
    let r = get("127.0.0.5", nw.addr("http"), "/home", &merged).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let seen = up.seen();
    let last = seen.last().expect("forwarded");
    assert!(last.header("x-auth-request-email").is_empty());
    assert!(last.header("x-auth-request-user").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oidc_provider_is_found_by_discovery_and_one_that_names_another_issuer_is_not_believed()
{
    let (_certs, ca, cert, key) = certs();
    let k = Key::ec("d1");
    let publisher = Publisher::start_tls(&cert, &key, Answer::Status(404)).await;
    let issuer = publisher.url("/realms/ops");
    publisher.set_path(
        "/realms/ops/.well-known/openid-configuration",
        Answer::List(format!(
            r#"{{"issuer":"{issuer}","jwks_uri":"{}"}}"#,
            publisher.url("/realms/ops/certs")
        )),
    );
    publisher.set_path("/realms/ops/certs", Answer::List(jwt::jwks(&[&k])));
    let text = |issuer: &str| {
        format!(
            "version: 1
networks:
  office: [127.0.0.0/8]
identity:
  jwt:
    issuer: \"{issuer}\"
    audience: console
    algorithms: [ES256]
    ca_file: \"{}\"
    timeout: 2s
rules:
  - {{ name: admins, paths: [\"/admin/**\"], who: {{ groups: [admins] }}, allow_from: [office] }}
  - {{ name: console, allow_from: [office] }}
",
            ca.display()
        )
    };
    let up = Upstream::start().await;
    let nw = start(&text(&issuer), &up);
    let now = jwt::now();
    let claims = format!(
        r#"{{"iss":"{issuer}","aud":"console","sub":"u-1","groups":["admins"],"exp":{}}}"#,
        now + 300
    );
    let bearer = format!("Authorization: Bearer {}", k.sign(&claims, ""));
    let (status, line) = admin(&nw, "oidc", &[&bearer]).await;
    assert_eq!(status, 200, "{line}");
    assert!(
        publisher
            .seen()
            .iter()
            .any(|(p, _)| p == "/realms/ops/.well-known/openid-configuration"),
        "the discovery document was read"
    );
    drop(nw);

    // A discovery document that names another issuer gives no keys.
    publisher.set_path(
        "/realms/evil/.well-known/openid-configuration",
        Answer::List(format!(
            r#"{{"issuer":"{issuer}","jwks_uri":"{}"}}"#,
            publisher.url("/realms/ops/certs")
        )),
    );
    let evil = publisher.url("/realms/evil");
    let nw = start(&text(&evil), &up);
    let claims = claims.replace(&issuer, &evil);
    let bearer = format!("Authorization: Bearer {}", k.sign(&claims, ""));
    let (status, line) = admin(&nw, "evil issuer", &[&bearer]).await;
    assert_eq!(
        (status, line["identity.state"].as_str()),
        (403, Some("no_keys")),
        "{line}"
    );
    let failed = nw.wait_log(|l| l["event"] == "identity_keys_failed");
    assert!(
        failed["error"]
            .as_str()
            .is_some_and(|e| e.contains("another issuer")),
        "{failed}"
    );
}
