//! deploy/grafana/netwarden.json against a real Prometheus (Debian's
//! `prometheus` package, unpacked into target/ by the test itself when the
//! machine has none, as `.ci/run` does) scraping a running
//! netwarden: every panel's query runs without error, and names only
//! metrics that netwarden exports.

use crate::support;

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::proxy::{Netwarden, Upstream, WAIT, get, post};

/// The Prometheus server binary: `NETWARDEN_PROMETHEUS`, `prometheus` on
/// the PATH, or the one `.ci/run` unpacks into target/.
fn prometheus_binary() -> PathBuf {
    if let Ok(p) = std::env::var("NETWARDEN_PROMETHEUS") {
        return p.into();
    }
    if let Ok(path) = std::env::var("PATH") {
        for dir in std::env::split_paths(&path) {
            let p = dir.join("prometheus");
            if p.is_file() {
                return p;
            }
        }
    }
    let tools = support::repo("target/tmp/ci-tools");
    let unpacked = tools.join("usr/bin/prometheus");
    if !unpacked.is_file() {
        unpack_debian_prometheus(&tools);
    }
    assert!(
        unpacked.is_file(),
        "no prometheus binary, and Debian's package could not be unpacked into {}: apt-get install prometheus, or run .ci/run",
        tools.display()
    );
    unpacked
}

/// Debian's `prometheus` package unpacked into `dir`, as `.ci/run` does
/// (no install, no service started; the binary is static), so that the
/// README's `cargo test --locked` passes on a fresh machine the way the
/// tests' own Python environment comes from PyPI. `apt-get update` first
/// when the package lists are missing and the user may update them.
fn unpack_debian_prometheus(dir: &std::path::Path) {
    std::fs::create_dir_all(dir).expect("tools dir");
    let download = || {
        Command::new("apt-get")
            .args(["download", "-qq", "prometheus"])
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if !download() {
        let _ = Command::new("apt-get")
            .args(["update", "-qq"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if !download() {
            return;
        }
    }
    let Some(deb) = std::fs::read_dir(dir)
        .expect("tools dir")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("prometheus_") && n.ends_with(".deb"))
        })
    else {
        return;
    };
    let _ = Command::new("dpkg-deb")
        .arg("-x")
        .arg(&deb)
        .arg(dir)
        .status();
}

struct Prometheus {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

impl Prometheus {
    fn scraping(target: std::net::SocketAddr) -> Self {
        let dir = tempfile::tempdir().expect("dir");
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global: {{ scrape_interval: 1s, evaluation_interval: 1s }}\nscrape_configs:\n  - job_name: netwarden\n    static_configs: [{{ targets: ['{target}'] }}]\n"
            ),
        )
        .expect("config");
        let port = free_port();
        let child = Command::new(prometheus_binary())
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus starts");
        Self {
            child,
            port,
            _dir: dir,
        }
    }

    /// `/api/v1/query`; the JSON answer.
    fn query(&self, expr: &str) -> serde_json::Value {
        let out = Command::new("curl")
            .args(["-s", "--max-time", "10", "--get", "--data-urlencode"])
            .arg(format!("query={expr}"))
            .arg(format!("http://127.0.0.1:{}/api/v1/query", self.port))
            .output()
            .expect("curl runs");
        serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
    }

    /// Waits (bounded) until `expr` has a result.
    fn wait_for(&self, expr: &str) {
        let deadline = Instant::now() + WAIT;
        loop {
            let v = self.query(expr);
            if v["data"]["result"]
                .as_array()
                .is_some_and(|r| !r.is_empty())
            {
                return;
            }
            assert!(Instant::now() < deadline, "{expr} never had data: {v}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// Metric names in a PromQL expression: identifiers that are not
/// functions or aggregations (followed by `(`), keywords, label names
/// (inside `{}` or a `by (...)` list), strings or durations.
fn metric_names(expr: &str) -> BTreeSet<String> {
    const KEYWORDS: [&str; 11] = [
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "bool",
        "and",
        "or",
        "unless",
        "offset",
    ];
    const LISTS: [&str; 6] = [
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
    ];
    // Aggregations: followed by `(` or by `by`/`without`.
    const AGGREGATIONS: [&str; 12] = [
        "sum",
        "min",
        "max",
        "avg",
        "group",
        "stddev",
        "stdvar",
        "count",
        "count_values",
        "bottomk",
        "topk",
        "quantile",
    ];
    let b = expr.as_bytes();
    let mut names = BTreeSet::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        match c {
            b'"' | b'\'' | b'`' => {
                i += 1;
                while i < b.len() && b[i] != c {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
            }
            b'{' | b'[' => {
                let close = if c == b'{' { b'}' } else { b']' };
                while i < b.len() && b[i] != close {
                    i += 1;
                }
                i += 1;
            }
            c if c.is_ascii_alphabetic() || c == b'_' || c == b':' => {
                let start = i;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b':')
                {
                    i += 1;
                }
                let word = &expr[start..i];
                let mut j = i;
                while j < b.len() && b[j] == b' ' {
                    j += 1;
                }
                let call = j < b.len() && b[j] == b'(';
                if LISTS.contains(&word) && call {
                    // A label list: skip to its `)`.
                    while j < b.len() && b[j] != b')' {
                        j += 1;
                    }
                    i = j + 1;
                } else if !call && !KEYWORDS.contains(&word) && !AGGREGATIONS.contains(&word) {
                    names.insert(word.to_string());
                }
            }
            c if c.is_ascii_digit() => {
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'.') {
                    i += 1;
                }
            }
            _ => i += 1,
        }
    }
    names
}

/// Every series name netwarden's `/metrics` declares.
fn exported(metrics_text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in metrics_text.lines() {
        let mut w = line.split_whitespace();
        if (w.next(), w.next()) != (Some("#"), Some("TYPE")) {
            continue;
        }
        let (Some(name), Some(kind)) = (w.next(), w.next()) else {
            continue;
        };
        match kind {
            "counter" => {
                out.insert(format!("{name}_total"));
            }
            "histogram" => {
                for s in ["_bucket", "_sum", "_count"] {
                    out.insert(format!("{name}{s}"));
                }
            }
            _ => {
                out.insert(name.to_string());
            }
        }
    }
    out
}

/// Every query of the dashboard: panel targets (rows included) and the
/// template variables' `label_values(metric, label)` metrics.
fn queries(dashboard: &serde_json::Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut stack: Vec<&serde_json::Value> = dashboard["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .collect();
    while let Some(p) = stack.pop() {
        for t in p["targets"].as_array().into_iter().flatten() {
            let title = p["title"].as_str().unwrap_or("?").to_string();
            out.push((title, t["expr"].as_str().expect("expr").to_string()));
        }
        stack.extend(p["panels"].as_array().into_iter().flatten());
    }
    for v in dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if let Some(q) = v["query"]["query"].as_str() {
            let inner = q
                .strip_prefix("label_values(")
                .and_then(|r| r.split(',').next())
                .expect("label_values(metric, label)");
            out.push((format!("variable {}", v["name"]), inner.trim().to_string()));
        }
    }
    out
}

/// Grafana's variables, as a query for all instances would use them.
fn as_prometheus_sees_it(expr: &str) -> String {
    expr.replace("$__rate_interval", "1m")
        .replace("$instance", ".*")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dashboard_query_runs_on_prometheus_and_names_only_netwarden_metrics() {
    let text =
        std::fs::read_to_string(support::repo("deploy/grafana/netwarden.json")).expect("dashboard");
    let dashboard: serde_json::Value = serde_json::from_str(&text).expect("dashboard is JSON");
    let all = queries(&dashboard);
    assert!(all.len() >= 20, "only {} queries found", all.len());

    let up = Upstream::start().await;
    // A published list too, so that the feed panels have series.
    let publisher = crate::support::publisher::Publisher::start_plain(
        crate::support::publisher::Answer::List("127.0.0.5\n".into()),
    )
    .await;
    // And a DNS name, for the DNS panels.
    let dns = crate::support::dns::DnsServer::start().await;
    dns.set(
        "branch.example.jp",
        crate::support::dns::Answer::Addresses(vec!["127.0.0.6".parse().expect("ip")], 60),
    );
    let dir = tempfile::tempdir().expect("dir");
    let policy = format!(
        "version: 1
feeds: {{ state_dir: \"{}\" }}
dns: {{ servers: [\"{}\"] }}
networks:
  office: [127.0.0.1]
  partners: {{ feed: {{ url: \"{}\", allow_http: true }} }}
  branch: {{ dns_names: [branch.example.jp] }}
rules:
  - {{ name: sign-in, paths: [/login], methods: [POST], login: true, allow_from: [office] }}
  - {{ name: partners, paths: [/partners/**], allow_from: [partners, branch] }}
  - {{ name: console, allow_from: [office] }}
server:
  reload: {{ watch: false }}
alerts:
  sinks:
    - {{ name: ops, type: webhook, url_env: OPS_WEBHOOK }}
",
        dir.path().join("state").display(),
        dns.addr,
        publisher.url("/partners.txt")
    );
    let path = dir.path().join("policy.yaml");
    std::fs::write(&path, policy).expect("policy");
    // Nothing listens there: deliveries fail, which the panels show too.
    let nw = Netwarden::start_env(
        &path,
        &["--listen", "127.0.0.1:0", "--upstream", &up.url()],
        &[("OPS_WEBHOOK", "http://127.0.0.1:9/hook")],
        dir,
    );
    for _ in 0..5 {
        get("127.0.0.1", nw.addr("http"), "/", &[]).await;
        get("127.0.0.2", nw.addr("http"), "/", &[]).await;
        post("127.0.0.2", nw.addr("http"), "/login", &[]).await;
    }
    let metrics_text = get("127.0.0.1", nw.addr("admin"), "/metrics", &[])
        .await
        .body;
    let names = exported(&metrics_text);
    assert!(names.contains("netwarden_decisions_total"), "{names:?}");

    let prom = Prometheus::scraping(nw.addr("admin"));
    prom.wait_for(r#"up{job="netwarden"} == 1"#);
    // Two scrapes at least, so that rate() has points.
    prom.wait_for("count_over_time(netwarden_policy_generation[1m]) > 1");

    let mut problems = Vec::new();
    for (title, expr) in &all {
        let q = as_prometheus_sees_it(expr);
        let answer = prom.query(&q);
        if answer["status"] != "success" {
            problems.push(format!("{title}: {q}: {answer}"));
        }
        let used = metric_names(&q);
        if used.is_empty() {
            problems.push(format!("{title}: {q}: names no metric"));
        }
        for m in used {
            if !names.contains(&m) {
                problems.push(format!(
                    "{title}: {q}: '{m}' is not a metric netwarden exports"
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));

    // The traffic above shows on the panels that count it.
    for expr in [
        "sum by (action) (rate(netwarden_decisions_total[1m]))",
        "sum by (rule) (increase(netwarden_login_blocked_total{enforced=\"true\"}[1m]))",
    ] {
        assert!(
            all.iter().any(|(_, e)| as_prometheus_sees_it(e)
                .replace("{instance=~\".*\"}", "")
                .replace("{instance=~\".*\", ", "{")
                == expr),
            "the dashboard has no panel for {expr}"
        );
        prom.wait_for(expr);
    }
}

#[test]
fn the_name_scan_finds_every_metric_and_nothing_else() {
    let names = metric_names(
        r#"histogram_quantile(0.99, sum by (le, rule) (rate(netwarden_x_bucket{instance=~".*", a="b"}[1m]))) / on (rule) group_left (z) node_cpu_seconds_total offset 5m > bool 0"#,
    );
    assert_eq!(
        names.into_iter().collect::<Vec<_>>(),
        ["netwarden_x_bucket", "node_cpu_seconds_total"]
    );
}
