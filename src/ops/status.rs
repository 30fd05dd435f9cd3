//! `netwarden status`: one page for the person an alert woke up: the
//! running policy and its last reload, readiness and what runs degraded,
//! the lockout store, grants ending soon, the locks in force, and the
//! recent blocked sign-ins. In the operator's language (English or
//! Japanese), or as JSON for tools.

use std::fmt::Write as _;

use serde_json::{Value, json};

use crate::policy::pages::Lang;

/// What the admin API and the policy file said.
pub struct Snapshot {
    /// `GET /policy`.
    pub policy: Value,
    /// `GET /readyz`: its status and lines.
    pub ready: (u16, String),
    /// `GET /lockouts`, or why it could not be read.
    pub lockouts: Result<Value, String>,
    /// `GET /events/blocked`.
    pub blocked: Value,
    /// Grants and rules of the policy file ending within 7 days: (what,
    /// until as written in UTC, note).
    pub ending: Vec<(String, String, Option<String>)>,
}

struct Words {
    policy: &'static str,
    generation: &'static str,
    loaded: &'static str,
    last_reload: &'static str,
    none: &'static str,
    readiness: &'static str,
    store: &'static str,
    ending: &'static str,
    locks: &'static str,
    blocked: &'static str,
    unreadable: &'static str,
    listeners: &'static str,
    console: &'static str,
    states: [&'static str; 3],
    last_answer: &'static str,
    last_failure: &'static str,
    ago: &'static str,
    sinks: &'static str,
    last_delivery: &'static str,
    disabled: &'static str,
    releases: &'static str,
    released_by: &'static str,
    answered: &'static str,
    delivered: &'static str,
    not_delivered: &'static str,
    waiting: &'static str,
    published: &'static str,
    prefixes: &'static str,
    addresses: &'static str,
    old: &'static str,
    stale: &'static str,
    /// A fetch that failed, a list refused, a list held back.
    problems: [&'static str; 4],
    /// Days, hours, minutes, and what goes between a number and its unit.
    units: [&'static str; 4],
}

fn words(lang: Lang) -> Words {
    match lang {
        Lang::En => Words {
            policy: "Policy",
            generation: "generation",
            loaded: "loaded",
            last_reload: "last reload",
            none: "none",
            readiness: "Readiness",
            store: "Lockout store",
            ending: "Grants and rules ending within 7 days",
            locks: "Lockouts in force",
            blocked: "Recent blocked sign-ins (this replica)",
            unreadable: "could not be read",
            listeners: "Listening on",
            console: "Console",
            states: ["answering", "FAILING", "no request sent yet"],
            last_answer: "last answer",
            last_failure: "last failure",
            ago: "s ago",
            sinks: "Alert sinks",
            last_delivery: "last delivery",
            disabled: "DISABLED",
            releases: "Recent releases (this replica)",
            released_by: "by",
            answered: "ok",
            delivered: "delivered",
            not_delivered: "not delivered",
            waiting: "waiting",
            published: "Published lists and DNS names",
            prefixes: "prefixes",
            addresses: "addresses",
            old: "old",
            stale: "STALE",
            problems: ["fetch failed", "REFUSED", "HELD BACK", "no address"],
            units: ["d", "h", "min", " "],
        },
        Lang::Ja => Words {
            policy: "ポリシー",
            generation: "世代",
            loaded: "読み込み日時",
            last_reload: "直近の再読み込み",
            none: "なし",
            readiness: "稼働状態",
            store: "ロックアウトの保存先",
            ending: "7日以内に期限を迎える許可とルール",
            locks: "現在のロックアウト",
            blocked: "直近のサインイン拒否（このレプリカ）",
            unreadable: "取得できませんでした",
            listeners: "待ち受けアドレス",
            console: "コンソール",
            states: ["応答あり", "応答なし（障害）", "まだ転送していません"],
            last_answer: "最後の応答",
            last_failure: "最後の失敗",
            ago: "秒前",
            sinks: "アラートの送信先",
            last_delivery: "最後の送信",
            disabled: "無効",
            releases: "直近のロックアウト解除（このレプリカ）",
            released_by: "解除元",
            answered: "応答",
            delivered: "送信済み",
            not_delivered: "送信失敗",
            waiting: "送信待ち",
            published: "公開リストとDNS名",
            prefixes: "件",
            addresses: "件のアドレス",
            old: "経過",
            stale: "期限切れ",
            problems: ["取得失敗", "不採用", "保留", "アドレスなし"],
            units: ["日", "時間", "分", ""],
        },
    }
}

/// A value from the admin listener, safe on a terminal: control
/// characters (escape sequences, line breaks) written as escapes.
fn s(v: &Value) -> String {
    let t = match v {
        Value::String(t) => t.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    };
    safe(&t)
}

fn safe(t: &str) -> String {
    super::printable(t)
}

/// The page for people.
pub fn text(snap: &Snapshot, lang: Lang) -> String {
    let w = words(lang);
    let mut out = String::new();
    let p = &snap.policy;
    let _ = writeln!(out, "{}: {}", w.policy, s(&p["source"]));
    let _ = writeln!(
        out,
        "  {}: {}   {}: {}",
        w.generation,
        s(&p["generation"]),
        w.loaded,
        s(&p["loaded_at"])
    );
    let last = &p["last_reload"];
    if last.is_null() {
        let _ = writeln!(out, "  {}: {}", w.last_reload, w.none);
    } else {
        let _ = writeln!(
            out,
            "  {}: {} ({}, {})",
            w.last_reload,
            s(&last["outcome"]),
            s(&last["trigger"]),
            s(&last["at"])
        );
        for e in last["errors"].as_array().into_iter().flatten() {
            let e = match e {
                Value::String(t) => t.clone(),
                other => other.to_string(),
            };
            for line in e.lines() {
                let _ = writeln!(out, "    {}", safe(line));
            }
        }
    }
    let _ = writeln!(out, "{}: {}", w.readiness, snap.ready.0);
    for line in snap.ready.1.lines() {
        let _ = writeln!(out, "  {}", safe(line));
    }
    let st = &p["state_store"];
    let _ = writeln!(
        out,
        "{}: {}{}",
        w.store,
        s(&st["store"]),
        match st["up"].as_bool() {
            Some(true) => " (up)",
            Some(false) => " (DOWN: falling back)",
            None => "",
        }
    );
    listeners_console_sinks(&mut out, p, &w);
    published(&mut out, p, &w);
    let _ = writeln!(out, "{}:", w.ending);
    if snap.ending.is_empty() {
        let _ = writeln!(out, "  {}", w.none);
    }
    for (what, until, note) in &snap.ending {
        let _ = writeln!(
            out,
            "  {}  {}{}",
            safe(what),
            safe(until),
            note.as_deref()
                .map(|n| format!("  ({})", safe(n)))
                .unwrap_or_default()
        );
    }
    let _ = writeln!(out, "{}:", w.locks);
    match &snap.lockouts {
        Err(why) => {
            let _ = writeln!(out, "  {}: {}", w.unreadable, safe(why));
        }
        Ok(v) => {
            let locks = v["locks"].as_array().cloned().unwrap_or_default();
            if locks.is_empty() {
                let _ = writeln!(out, "  {}", w.none);
            }
            for l in &locks {
                let _ = writeln!(
                    out,
                    "  {:<22} {:<20} {:<12}  {}  strike {}  [{}]",
                    s(&l["key"]),
                    s(&l["scope"]),
                    s(&l["account"]),
                    s(&l["until"]),
                    s(&l["strikes"]),
                    s(&l["store"])
                );
            }
            let releases = v["recent_releases"].as_array().cloned().unwrap_or_default();
            if !releases.is_empty() {
                let _ = writeln!(out, "{}:", w.releases);
            }
            for r in releases.iter().take(10) {
                let _ = writeln!(
                    out,
                    "  {}  {} {}  x{}  {} {}",
                    s(&r["at"]),
                    s(&r["selector"]),
                    s(&r["target"]),
                    s(&r["released"]),
                    w.released_by,
                    s(&r["admin_address"])
                );
            }
        }
    }
    let _ = writeln!(out, "{}:", w.blocked);
    let events = snap.blocked["events"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if events.is_empty() {
        let _ = writeln!(out, "  {}", w.none);
    }
    for e in &events {
        let geo = [
            e["country"].as_str().map(str::to_string),
            e["asn"].as_u64().map(|n| format!("AS{n}")),
            e["as_org"].as_str().map(str::to_string),
        ]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ");
        let _ = writeln!(
            out,
            "  {}  {:<39} {:<16} {}  {}",
            s(&e["at"]),
            s(&e["client"]),
            s(&e["rule"]),
            s(&e["request_id"]),
            safe(&geo)
        );
    }
    out
}

/// Where it listens, how the console answers, and where alerts go.
fn listeners_console_sinks(out: &mut String, p: &Value, w: &Words) {
    if let Some(ls) = p["listeners"].as_array() {
        let _ = writeln!(out, "{}:", w.listeners);
        for l in ls {
            let _ = writeln!(
                out,
                "  {:<6} {}{}",
                s(&l["role"]),
                s(&l["address"]),
                if l["proxy_protocol"].as_bool() == Some(true) {
                    " (PROXY protocol)"
                } else {
                    ""
                }
            );
        }
    }
    let c = &p["console"];
    if c.is_object() {
        let state = match c["state"].as_str() {
            Some("answering") => w.states[0],
            Some("failing") => w.states[1],
            _ => w.states[2],
        };
        let _ = writeln!(out, "{}: {}  {}", w.console, s(&c["upstream"]), state);
        let when = |v: &Value| format!("{} ({}{})", s(&v["at"]), s(&v["seconds_ago"]), w.ago);
        if c["last_answer"].is_object() {
            let _ = writeln!(out, "  {}: {}", w.last_answer, when(&c["last_answer"]));
        }
        if c["last_failure"].is_object() {
            let _ = writeln!(
                out,
                "  {}: {} {}",
                w.last_failure,
                s(&c["last_failure"]["outcome"]),
                when(&c["last_failure"])
            );
        }
        let failed: Vec<String> = c["failed"]
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(_, n)| n.as_u64().unwrap_or(0) > 0)
            .map(|(k, n)| format!("{} {}", safe(k), s(n)))
            .collect();
        let _ = writeln!(
            out,
            "  {} {}{}{}",
            w.answered,
            s(&c["answered"]),
            if failed.is_empty() { "" } else { ", " },
            failed.join(", ")
        );
    }
    let sinks = p["alert_sinks"].as_array().cloned().unwrap_or_default();
    let disabled = p["alert_sinks_disabled"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if !sinks.is_empty() || !disabled.is_empty() {
        let _ = writeln!(out, "{}:", w.sinks);
    }
    for k in &sinks {
        let last = &k["last_delivery"];
        let last = if last.is_object() {
            format!("{} {}", s(&last["outcome"]), s(&last["at"]))
        } else {
            w.none.to_string()
        };
        let _ = writeln!(
            out,
            "  {} ({})  {}: {}  {} {}, {} {}, {} {}",
            s(&k["name"]),
            s(&k["kind"]),
            w.last_delivery,
            last,
            w.delivered,
            s(&k["delivered"]),
            w.not_delivered,
            s(&k["not_delivered"]),
            w.waiting,
            s(&k["pending"])
        );
    }
    for d in &disabled {
        let _ = writeln!(out, "  {}: {}", w.disabled, s(d));
    }
}

/// Each published list and DNS name: its size and age, and what went
/// wrong with the last fetch or lookup.
fn published(out: &mut String, p: &Value, w: &Words) {
    let feeds = p["feeds"].as_array().cloned().unwrap_or_default();
    let names = p["dns_names"].as_array().cloned().unwrap_or_default();
    if feeds.is_empty() && names.is_empty() {
        return;
    }
    let _ = writeln!(out, "{}:", w.published);
    let problem = |v: &Value| -> String {
        let pr = &v["problem"];
        if !pr.is_object() {
            return String::new();
        }
        let what = match pr["what"].as_str() {
            Some("failed") => w.problems[0],
            Some("refused") => w.problems[1],
            Some("held") => w.problems[2],
            _ => w.problems[3],
        };
        format!("  [{what}: {} {}]", s(&pr["reason"]), s(&pr["detail"]))
    };
    let age = |v: &Value| {
        let secs = v["age_seconds"].as_i64().unwrap_or(0).max(0);
        let (d, h, m) = (secs / 86_400, secs % 86_400 / 3600, secs % 3600 / 60);
        let [ud, uh, um, gap] = w.units;
        match (d, h) {
            (0, 0) => format!("{m}{gap}{um}"),
            (0, h) => format!("{h}{gap}{uh}{gap}{m}{gap}{um}"),
            (d, h) => format!("{d}{gap}{ud}{gap}{h}{gap}{uh}"),
        }
    };
    for f in &feeds {
        let _ = writeln!(
            out,
            "  {}  {}  {} {}, {} {}{}{}",
            s(&f["network"]),
            s(&f["url"]),
            s(&f["prefixes"]),
            w.prefixes,
            age(f),
            w.old,
            if f["stale"].as_bool() == Some(true) {
                format!("  {}", w.stale)
            } else {
                String::new()
            },
            problem(f)
        );
    }
    for n in &names {
        let _ = writeln!(
            out,
            "  {}  dns {}  {} {}, {} {}{}{}",
            s(&n["network"]),
            s(&n["name"]),
            s(&n["addresses"]),
            w.addresses,
            age(n),
            w.old,
            if n["stale"].as_bool() == Some(true) {
                format!("  {}", w.stale)
            } else {
                String::new()
            },
            problem(n)
        );
    }
}

/// The same, for tools.
pub fn json(snap: &Snapshot) -> Value {
    json!({
        "policy": snap.policy,
        "ready": { "status": snap.ready.0, "lines": snap.ready.1.lines().collect::<Vec<_>>() },
        "lockouts": match &snap.lockouts { Ok(v) => v.clone(), Err(e) => json!({"error": e}) },
        "blocked_sign_ins": snap.blocked,
        "ending_within_7_days": snap.ending.iter().map(|(what, until, note)| json!({"what": what, "until": until, "note": note})).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap() -> Snapshot {
        Snapshot {
            policy: json!({"source": "/etc/netwarden/policy.yaml", "generation": 3,
                "loaded_at": "2026-12-07T06:55:02Z",
                "last_reload": {"outcome": "refused", "trigger": "admin", "at": "2026-12-07T07:00:00Z",
                    "errors": ["the candidate would deny 2 of the 2 client addresses"]},
                "state_store": {"store": "redis", "up": false},
                "listeners": [{"role": "http", "address": "0.0.0.0:8080", "proxy_protocol": true},
                    {"role": "admin", "address": "127.0.0.1:9090", "proxy_protocol": false}],
                "console": {"upstream": "http://127.0.0.1:3000", "state": "failing",
                    "last_answer": {"at": "2026-12-07T06:50:00Z", "seconds_ago": 600},
                    "last_failure": {"at": "2026-12-07T07:00:00Z", "seconds_ago": 0, "outcome": "connect_error"},
                    "answered": 41, "failed": {"connect_error": 3, "timeout": 0}},
                "alert_sinks": [{"name": "ops", "kind": "slack", "pending": 0, "delivered": 2,
                    "not_delivered": 1, "last_delivery": {"at": "2026-12-07T06:58:01Z", "outcome": "gave_up"}}],
                "alert_sinks_disabled": ["alerts.sinks[1] (pager): NETWARDEN_PAGER_TOKEN is not set"],
                "feeds": [{"network": "partners", "url": "https://lists.example/p.txt", "prefixes": 15,
                    "age_seconds": 7260, "stale": false,
                    "problem": {"what": "refused", "reason": "empty", "detail": "the list holds no address"}}],
                "dns_names": [{"network": "osaka", "name": "osaka.branch.example.jp", "addresses": 1,
                    "age_seconds": 90_000, "stale": true, "problem": null}]}),
            ready: (
                200,
                "ready\ndegraded: the last policy edit was refused\n".into(),
            ),
            lockouts: Ok(
                json!({"store": "redis", "locks": [{"key": "account_and_network",
                "scope": "192.0.2.0/24", "account": "a5b9705bd3fd", "until": "2026-12-07T07:15:00Z",
                "strikes": 1, "store": "redis"}],
                "recent_releases": [{"at": "2026-12-07T06:59:00Z", "admin_address": "10.0.0.4",
                    "selector": "account_hash", "target": "0bc6c5e2d1a4", "released": 1}]}),
            ),
            blocked: json!({"events": [{"at": "2026-12-07T06:58:00Z", "client": "203.0.113.9",
                "rule": "login", "request_id": "4e5cfe36f1e482e0", "country": "JP", "asn": 64500,
                "as_org": "ExampleNet"}]}),
            ending: vec![(
                "grant 198.51.100.7/32 in vpn".into(),
                "2026-12-10T09:00:00Z".into(),
                Some("Tanaka, Osaka".into()),
            )],
        }
    }

    #[test]
    fn the_page_says_each_part_in_the_operators_language() {
        let en = text(&snap(), Lang::En);
        for needle in [
            "last reload: refused (admin, 2026-12-07T07:00:00Z)",
            "degraded: the last policy edit was refused",
            "Lockout store: redis (DOWN: falling back)",
            "grant 198.51.100.7/32 in vpn  2026-12-10T09:00:00Z  (Tanaka, Osaka)",
            "a5b9705bd3fd",
            "203.0.113.9",
            "JP AS64500 ExampleNet",
            "http   0.0.0.0:8080 (PROXY protocol)",
            "admin  127.0.0.1:9090",
            "Console: http://127.0.0.1:3000  FAILING",
            "last failure: connect_error 2026-12-07T07:00:00Z (0s ago)",
            "ok 41, connect_error 3\n",
            "ops (slack)  last delivery: gave_up 2026-12-07T06:58:01Z  delivered 2, not delivered 1, waiting 0",
            "DISABLED: alerts.sinks[1] (pager): NETWARDEN_PAGER_TOKEN is not set",
            "Recent releases (this replica):\n  2026-12-07T06:59:00Z  account_hash 0bc6c5e2d1a4  x1  by 10.0.0.4",
            "Published lists and DNS names:\n  partners  https://lists.example/p.txt  15 prefixes, 2 h 1 min old  [REFUSED: empty the list holds no address]",
            "  osaka  dns osaka.branch.example.jp  1 addresses, 1 d 1 h old  STALE\n",
        ] {
            assert!(en.contains(needle), "{needle}: {en}");
        }
        let ja = text(&snap(), Lang::Ja);
        assert!(
            ja.contains("現在のロックアウト")
                && ja.contains("a5b9705bd3fd")
                && ja.contains("応答なし（障害）")
                && ja.contains("送信済み 2, 送信失敗 1, 送信待ち 0")
                && ja.contains("x1  解除元 10.0.0.4")
                && ja.contains("公開リストとDNS名")
                && ja.contains("[不採用: empty")
                && ja.contains("期限切れ")
                && ja.contains("2時間1分 経過"),
            "{ja}"
        );
        let unreadable = Snapshot {
            lockouts: Err("503".into()),
            ..snap()
        };
        assert!(text(&unreadable, Lang::En).contains("could not be read: 503"));
        // A listener's control characters do not reach the terminal.
        let hostile = Snapshot {
            ready: (200, "ready\ndegraded: \u{1b}]0;owned\u{7}".into()),
            ..snap()
        };
        assert!(!text(&hostile, Lang::En).contains('\u{1b}'));
        let j = json(&snap());
        assert_eq!(j["lockouts"]["locks"][0]["account"], "a5b9705bd3fd");
        assert_eq!(j["ending_within_7_days"][0]["note"], "Tanaka, Osaka");
    }
}
