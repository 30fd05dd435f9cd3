//! The log recipes of docs/logs.md ("who was blocked today") against real
//! netwarden output: a blocked sign-in and a lockout through the binary,
//! its lines in a file; each `jq` program in the docs run by jq (the PyPI
//! package, the same library as the command) and its answer checked; every
//! field the Loki and Kibana queries name checked to be one the lines
//! carry (Loki and Elasticsearch themselves are not run).

use crate::support;

use std::collections::BTreeSet;
use std::process::Command;

use support::proxy::Netwarden;
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
    account: { form: username }
  - { name: console, paths: [\"/**\"], allow_from: [office] }
lockout: { after: 3, within: 1m, lock_for: 30s, key: account_and_network, account_key_env: NW_KEY }
";

/// The code blocks of the docs' recipe section, by their language.
fn blocks(lang: &str) -> Vec<String> {
    let docs = std::fs::read_to_string(support::repo("docs/logs.md")).expect("docs/logs.md");
    let section = docs
        .split("## Recipes: who was blocked today")
        .nth(1)
        .expect("the recipes section");
    section
        .split(&format!("```{lang}\n"))
        .skip(1)
        .filter_map(|b| b.split("```").next())
        .flat_map(|b| b.lines().map(str::to_string).collect::<Vec<_>>())
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .collect()
}

/// Runs jq `program` over every line of `file` (as `jq -c` would, or
/// `-r` for raw strings), through the jq library from PyPI.
fn jq(program: &str, file: &std::path::Path, raw: bool) -> Vec<String> {
    let script = "import jq, json, sys\n\
        prog = jq.compile(sys.argv[1])\n\
        raw = sys.argv[3] == 'raw'\n\
        for line in open(sys.argv[2]):\n\
        \x20   line = line.strip()\n\
        \x20   if not line:\n\
        \x20       continue\n\
        \x20   for out in prog.input_value(json.loads(line)).all():\n\
        \x20       print(out if raw and isinstance(out, str) else json.dumps(out, separators=(',', ':')))\n";
    let out = Command::new(support::console::python())
        .args(["-c", script, program])
        .arg(file)
        .arg(if raw { "raw" } else { "json" })
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "{program}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

#[tokio::test]
async fn the_log_recipes_answer_on_real_output() {
    let console = SignInConsole::start().await;
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("policy.yaml");
    std::fs::write(&path, POLICY).expect("write");
    let nw = Netwarden::start_env(
        &path,
        &["--listen", "127.0.0.1:0", "--upstream", &console.url],
        &[("NW_KEY", "a-test-key-of-more-than-16-bytes")],
        dir,
    );
    let addr = nw.addr("http");
    assert_eq!(
        form("127.0.1.9", addr, "username=bob&password=x")
            .await
            .status,
        403
    );
    for _ in 0..3 {
        form("127.0.0.5", addr, "username=alice&password=wrong").await;
    }
    let blocked = nw.wait_log(|v| v["event"] == "login_blocked");
    let lockout = nw.wait_log(|v| v["event"] == "lockout");
    let log = tempfile::NamedTempFile::new().expect("log file");
    std::fs::write(log.path(), nw.raw_logs().join("\n")).expect("write log");

    // `netwarden report` on the same lines, plain and gzip (issue 24).
    let (code, out, err) = support::run(&[
        "report",
        "--format",
        "json",
        log.path().to_str().expect("path"),
    ]);
    assert_eq!(code, 0, "{err}");
    let r: serde_json::Value = serde_json::from_str(out.trim()).expect("json");
    assert_eq!(r["blocked_sign_ins"]["total"], 1, "{r}");
    assert_eq!(
        r["blocked_sign_ins"]["by_address"][0]["key"], "127.0.1.9",
        "{r}"
    );
    assert_eq!(r["lockouts"][0]["account"], lockout["account.hash"], "{r}");
    assert_eq!(r["unreadable"], 0, "{r}");
    let gz = log.path().with_extension("log.gz");
    {
        use std::io::Write;
        let mut enc = flate2::write::GzEncoder::new(
            std::fs::File::create(&gz).expect("gz"),
            flate2::Compression::fast(),
        );
        enc.write_all(nw.raw_logs().join("\n").as_bytes())
            .expect("write");
        enc.finish().expect("finish");
    }
    let (code, out, err) = support::run(&[
        "report",
        "--format",
        "markdown",
        "--lang",
        "ja",
        gz.to_str().expect("path"),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("## 拒否したサインイン：1 件") && out.contains("## ロックアウト：1 件"),
        "{out}"
    );

    // The jq programs, as the docs write them.
    let programs: Vec<(String, bool)> = blocks("sh")
        .iter()
        .filter_map(|l| {
            let raw = l.starts_with("jq -r '");
            let start = l.find('\'')? + 1;
            let end = l[start..].find('\'')? + start;
            Some((l[start..end].to_string(), raw))
        })
        .collect();
    assert_eq!(programs.len(), 3, "{programs:?}");
    let who = jq(&programs[0].0, log.path(), programs[0].1);
    assert_eq!(who.len(), 1, "{who:?}");
    let v: serde_json::Value = serde_json::from_str(&who[0]).expect("json");
    assert_eq!(v["client"], "127.0.1.9");
    assert_eq!(v["rule"], "login");
    assert_eq!(v["request_id"], blocked["request_id"]);
    let by_client = jq(&programs[1].0, log.path(), programs[1].1);
    assert_eq!(by_client, ["127.0.1.9"]);
    let locks = jq(&programs[2].0, log.path(), programs[2].1);
    let v: serde_json::Value = serde_json::from_str(&locks[0]).expect("json");
    assert_eq!(v["key"], "account_and_network");
    assert_eq!(v["account"], lockout["account.hash"]);

    // Every field the Loki queries name, after Loki's json stage turns
    // dots into underscores, is one the login_blocked line carries.
    let loki_keys: BTreeSet<String> = blocked
        .as_object()
        .expect("object")
        .keys()
        .map(|k| k.replace('.', "_"))
        .collect();
    let logql = blocks("logql");
    assert_eq!(logql.len(), 2);
    for q in &logql {
        for field in q
            .split("{{.")
            .skip(1)
            .filter_map(|p| p.split("}}").next())
            .chain(q.split("by (").skip(1).filter_map(|p| p.split(')').next()))
        {
            assert!(loki_keys.contains(field), "{field} in {q}: {loki_keys:?}");
        }
        assert!(q.contains("event=\"login_blocked\""), "{q}");
    }
    // And the Kibana queries' fields, on the lines they select.
    let kql = blocks("kql");
    assert_eq!(kql.len(), 2);
    for (q, line) in kql.iter().zip([&blocked, &lockout]) {
        for part in q.split(" and ") {
            let field = part
                .trim_start_matches("not ")
                .split(" : ")
                .next()
                .unwrap_or_default();
            assert!(line.get(field).is_some(), "{field} in {q}: {line}");
        }
    }
}
