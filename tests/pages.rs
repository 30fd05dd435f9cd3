//! netwarden's own pages in the client's language (issue #16), through the
//! real binary: `Accept-Language` negotiation, `Content-Language` and
//! `Vary`, the JSON `code` and `message`, the policy's contact lines, and
//! templates with hostile request data.

use crate::support;

use support::proxy::{Netwarden, Upstream, connect_from, exchange, get};

const POLICY: &str = "version: 1
networks:
  office: [127.0.0.1]
  balancer: [127.0.0.3]
client_ip: { trusted_proxies: [balancer] }
rules:
  - { name: console, allow_from: [office] }
pages:
  languages: [ja, en]
  fallback: ja
  contact:
    ja: \"お問い合わせは情報システム部（内線1234）までお願いします。\"
    en: \"Call IT on extension 1234.\"
";

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body.trim()).unwrap_or_else(|e| panic!("{e}: {body}"))
}

#[tokio::test]
async fn the_block_page_speaks_the_language_the_browser_asks_for() {
    let up = Upstream::start().await;
    let nw = Netwarden::in_front_of(POLICY, &up);
    let addr = nw.addr("http");
    let cases: &[(Option<&str>, &str)] = &[
        (Some("ja"), "ja"),
        (Some("ja-JP"), "ja"),
        (Some("en;q=0.5, ja"), "ja"),
        (Some("en-US,en;q=0.9"), "en"),
        (Some("en, ja;q=0.9"), "en"),
        (Some("*"), "ja"),
        (None, "ja"),
        (Some("fr-FR, de;q=0.8"), "ja"),
        (Some(";;;, q=1, =en"), "ja"),
        (Some("ja;q=0, en;q=0.1"), "en"),
    ];
    for (header, want) in cases {
        let mut extra = vec![];
        let line;
        if let Some(h) = header {
            line = format!("Accept-Language: {h}");
            extra.push(line.as_str());
        }
        let r = get("127.0.0.2", addr, "/customers/1042", &extra).await;
        assert_eq!(r.status, 403);
        assert_eq!(r.header("content-language"), Some(*want), "{header:?}");
        assert_eq!(
            r.header("vary"),
            Some("Accept, Accept-Language"),
            "{header:?}"
        );
        assert!(
            r.header("content-security-policy")
                .is_some_and(|c| c.starts_with("default-src 'none'")),
            "{header:?}"
        );
        let v = json(&r.body);
        assert_eq!(v["code"], "not_allowed_from_this_network", "{header:?}");
        assert_eq!(v["lang"], *want, "{header:?}");
        let japanese = v["message"]
            .as_str()
            .unwrap_or("")
            .contains("社内ネットワーク");
        assert_eq!(japanese, *want == "ja", "{header:?}: {v}");
        let contact = if *want == "ja" {
            "お問い合わせは情報システム部（内線1234）までお願いします。"
        } else {
            "Call IT on extension 1234."
        };
        assert_eq!(v["contact"], contact, "{header:?}");

        extra.push("Accept: text/html");
        let page = get("127.0.0.2", addr, "/customers/1042", &extra).await;
        assert!(
            page.body.contains(&format!("<html lang=\"{want}\">")),
            "{header:?}"
        );
        assert!(page.body.contains(contact), "{header:?}");
    }
    assert!(up.seen().is_empty());
}

#[tokio::test]
async fn every_kind_of_page_is_in_the_language_asked_for() {
    // A console that is not there: 502, in Japanese.
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("policy.yaml");
    std::fs::write(&path, POLICY).expect("write");
    let nw = Netwarden::start_at(
        &path,
        &[
            "--listen",
            "127.0.0.1:0",
            "--upstream",
            "http://127.0.0.1:9",
        ],
        dir,
    );
    let r = get("127.0.0.1", nw.addr("http"), "/", &["Accept-Language: ja"]).await;
    assert_eq!(r.status, 502);
    let v = json(&r.body);
    assert_eq!(
        (v["code"].as_str(), v["lang"].as_str()),
        (Some("console_unavailable"), Some("ja"))
    );
    // A rejected path: 400, in English when asked.
    let raw = "GET /static%2F..%2Fcustomers HTTP/1.1\r\nHost: c\r\nAccept-Language: en\r\nConnection: close\r\n\r\n";
    let r = exchange(
        connect_from("127.0.0.2", nw.addr("http")).await,
        raw.as_bytes(),
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(json(&r.body)["code"], "bad_request");
    assert_eq!(r.header("content-language"), Some("en"));
    // The whoami page too.
    let r = get(
        "127.0.0.2",
        nw.addr("http"),
        "/.well-known/netwarden/whoami",
        &["Accept-Language: ja"],
    )
    .await;
    let v = json(&r.body);
    assert_eq!(v["lang"], "ja");
    assert!(
        v["message"].as_str().unwrap_or("").contains("サインイン"),
        "{v}"
    );
    assert_eq!(
        v["contact"],
        "お問い合わせは情報システム部（内線1234）までお願いします。"
    );
}

#[tokio::test]
async fn a_template_of_the_companys_own_shows_hostile_request_data_as_text() {
    let up = Upstream::start().await;
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(
        dir.path().join("ja.html"),
        "<!doctype html><html lang=\"{{lang}}\"><title>{{title}}</title><p>{{message}}</p><p>{{advice}} {{contact}}</p><p>{{client_ip}} {{request_id}}</p>{{whoami_link}}",
    )
    .expect("template");
    let policy = POLICY.replace("pages:\n", "pages:\n  templates: { ja: ja.html }\n");
    let path = dir.path().join("policy.yaml");
    std::fs::write(&path, policy).expect("write");
    let nw = Netwarden::start_at(
        &path,
        &["--listen", "127.0.0.1:0", "--upstream", &up.url()],
        dir,
    );
    // Through the trusted balancer, a header that is not an address, an
    // Accept-Language that is markup, a path that is a placeholder.
    let raw = "GET /{{message}}/%3Cscript%3E HTTP/1.1\r\nHost: c\r\nAccept: text/html\r\nAccept-Language: ja, \"><script>alert(1)</script>\r\nX-Forwarded-For: <script>{{request_id}}</script>\r\nConnection: close\r\n\r\n";
    let r = exchange(
        connect_from("127.0.0.3", nw.addr("http")).await,
        raw.as_bytes(),
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(r.header("content-language"), Some("ja"));
    assert!(!r.body.contains("<script"), "{}", r.body);
    assert!(
        r.body.starts_with("<!doctype html><html lang=\"ja\">"),
        "{}",
        r.body
    );
    assert!(
        r.body.contains("<p>unknown "),
        "the client is unknown: {}",
        r.body
    );
    assert!(!r.body.contains("{{"), "{}", r.body);
    // English has no template of its own: the built-in page.
    let en = get(
        "127.0.0.2",
        nw.addr("http"),
        "/",
        &["Accept: text/html", "Accept-Language: en"],
    )
    .await;
    assert!(
        en.body.contains("<html lang=\"en\">") && en.body.contains("What to do:"),
        "{}",
        en.body
    );
}

#[tokio::test]
async fn a_broken_template_is_refused_at_reload_and_the_running_pages_stay() {
    let up = Upstream::start().await;
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(
        dir.path().join("ja.html"),
        "<p>{{message}} {{request_id}}</p>",
    )
    .expect("template");
    let policy = POLICY.replace("pages:\n", "pages:\n  templates: { ja: ja.html }\n");
    let path = dir.path().join("policy.yaml");
    std::fs::write(
        &path,
        format!("{policy}server:\n  reload: {{ watch: false }}\n"),
    )
    .expect("write");
    let nw = Netwarden::start_at(
        &path,
        &["--listen", "127.0.0.1:0", "--upstream", &up.url()],
        dir,
    );
    std::fs::write(nw.dir().join("ja.html"), "<p>{{title}}</p>").expect("break it");
    let (code, out) = support::proxy::admin(&nw, "POST", "/reload").await;
    assert_eq!(code, 422, "{out}");
    assert!(
        out["errors"]
            .to_string()
            .contains("lacks {{message}} and {{request_id}}"),
        "{out}"
    );
    let r = get("127.0.0.2", nw.addr("http"), "/", &["Accept: text/html"]).await;
    assert!(r.body.starts_with("<p>"), "{}", r.body);
    assert!(!r.body.contains("{{"), "{}", r.body);
}
