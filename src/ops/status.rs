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
    t.chars()
        .flat_map(|c| {
            if c.is_control() {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect()
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
    let _ = writeln!(out, "{}:", w.ending);
    if snap.ending.is_empty() {
        let _ = writeln!(out, "  {}", w.none);
    }
    for (what, until, note) in &snap.ending {
        let _ = writeln!(
            out,
            "  {what}  {until}{}",
            note.as_deref()
                .map(|n| format!("  ({n})"))
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
                "state_store": {"store": "redis", "up": false}}),
            ready: (
                200,
                "ready\ndegraded: the last policy edit was refused\n".into(),
            ),
            lockouts: Ok(
                json!({"store": "redis", "locks": [{"key": "account_and_network",
                "scope": "192.0.2.0/24", "account": "a5b9705bd3fd", "until": "2026-12-07T07:15:00Z",
                "strikes": 1, "store": "redis"}]}),
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
        ] {
            assert!(en.contains(needle), "{needle}: {en}");
        }
        let ja = text(&snap(), Lang::Ja);
        assert!(
            ja.contains("現在のロックアウト") && ja.contains("a5b9705bd3fd"),
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
