//! `netwarden report`: what happened in a day of decision logs, as a person
//! wants it. Pure: lines in, counts out, rendered as text, Markdown (to
//! paste into a ticket) or JSON, in English or Japanese. Lines are read as
//! they come, so a file of any length takes memory for its distinct
//! addresses only (bounded: see [`MAX_KEYS`]); most lines (allowed
//! requests) are passed over by a substring test before any JSON is parsed.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::{Value, json};

use crate::policy::pages::Lang;

/// Distinct addresses (or networks, countries, ASNs, reasons) counted per
/// table at most; past it, new ones are counted under `(others)`, so that
/// a log of a million random addresses cannot take a million entries.
pub const MAX_KEYS: usize = 100_000;

/// The counts of a log.
#[derive(Debug, Default)]
pub struct Report {
    pub lines: u64,
    /// Lines that are not JSON (or not netwarden's).
    pub unreadable: u64,
    pub decisions: u64,
    pub denied: u64,
    pub blocked_sign_ins: u64,
    pub blocked_by_network: Counts,
    pub blocked_by_country: Counts,
    pub blocked_by_asn: Counts,
    /// By UTC hour: `2026-12-07T09`.
    pub blocked_by_hour: Counts,
    pub blocked_by_address: Counts,
    /// `(time, key, client, account hash, lock seconds)`.
    pub lockouts: Vec<(String, String, String, String, u64)>,
    pub lockout_releases: u64,
    /// Refused before any rule: 400s by reason code, and the parser's
    /// `request_rejected` by reason.
    pub refused: Counts,
    /// `(time, what, until, note)`.
    pub grants_expired: Vec<(String, String, String, String)>,
    pub reloads: u64,
    pub reloads_failed: u64,
    /// `(time, trigger, rules)`.
    pub reloads_refused: Vec<(String, String, String)>,
    pub first: Option<String>,
    pub last: Option<String>,
}

/// A table of counts, bounded by [`MAX_KEYS`].
#[derive(Debug, Default)]
pub struct Counts(BTreeMap<String, u64>);

impl Counts {
    fn add(&mut self, key: &str) {
        if let Some(n) = self.0.get_mut(key) {
            *n += 1;
        } else if self.0.len() < MAX_KEYS {
            self.0.insert(key.to_string(), 1);
        } else {
            *self.0.entry("(others)".to_string()).or_default() += 1;
        }
    }

    /// The `n` largest, largest first (ties by name).
    pub fn top(&self, n: usize) -> Vec<(&str, u64)> {
        let mut v: Vec<(&str, u64)> = self.0.iter().map(|(k, c)| (k.as_str(), *c)).collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        v.truncate(n);
        v
    }

    /// Every entry, by key.
    pub fn all(&self) -> Vec<(&str, u64)> {
        self.0.iter().map(|(k, c)| (k.as_str(), *c)).collect()
    }
}

fn text(v: &Value, key: &str) -> String {
    match &v[key] {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// The client's /24 (IPv4) or /48 (IPv6): the network a block came from.
fn network_of(addr: &str) -> String {
    match addr.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(v4)) => {
            let o = v4.octets();
            format!("{}.{}.{}.0/24", o[0], o[1], o[2])
        }
        Ok(std::net::IpAddr::V6(v6)) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}::/48", s[0], s[1], s[2])
        }
        Err(_) => addr.to_string(),
    }
}

impl Report {
    /// Counts one log line.
    pub fn feed(&mut self, line: &str) {
        self.lines += 1;
        let line = line.trim();
        if line.is_empty() {
            return;
        }
        // Allowed requests are most lines and tell nothing here: a
        // substring test, no parse.
        let decision = line.contains("\"event\":\"decision\"");
        if decision && line.contains("\"action\":\"allow\"") {
            self.decisions += 1;
            // netwarden's lines begin with their timestamp.
            if let Some(at) = line
                .strip_prefix("{\"timestamp\":\"")
                .and_then(|rest| rest.split('"').next())
            {
                self.span(at);
            }
            return;
        }
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            self.unreadable += 1;
            return;
        };
        let at = text(&v, "timestamp");
        self.span(&at);
        match v["event"].as_str().unwrap_or_default() {
            "decision" => {
                self.decisions += 1;
                if v["action"] == "deny" {
                    self.denied += 1;
                }
                if v["http.response.status_code"] == 400 {
                    self.refused.add(&text(&v, "reason_code"));
                }
            }
            "login_blocked" if v["enforced"] != false => {
                self.blocked_sign_ins += 1;
                let client = text(&v, "client.address");
                self.blocked_by_address.add(&client);
                self.blocked_by_network.add(&network_of(&client));
                let country = text(&v, "geo.country.iso_code");
                self.blocked_by_country
                    .add(if country.is_empty() { "-" } else { &country });
                let asn = match (v["network.asn"].as_u64(), v["network.as_org"].as_str()) {
                    (Some(n), Some(org)) => format!("AS{n} {org}"),
                    (Some(n), None) => format!("AS{n}"),
                    _ => "-".into(),
                };
                self.blocked_by_asn.add(&asn);
                self.blocked_by_hour.add(at.get(..13).unwrap_or("-"));
            }
            "lockout" => self.lockouts.push((
                at,
                text(&v, "key"),
                text(&v, "client.address"),
                text(&v, "account.hash"),
                v["lock_seconds"].as_u64().unwrap_or(0),
            )),
            "lockout_released" => self.lockout_releases += 1,
            "request_rejected" => self.refused.add(&format!("parser: {}", text(&v, "reason"))),
            "grant_expired" => {
                let what = if v["cidr"].is_null() {
                    format!("rule {}", text(&v, "rule"))
                } else {
                    format!("{} in {}", text(&v, "cidr"), text(&v, "network"))
                };
                self.grants_expired
                    .push((at, what, text(&v, "until"), text(&v, "note")));
            }
            "policy_reloaded" => self.reloads += 1,
            "policy_reload_failed" => self.reloads_failed += 1,
            "policy_reload_refused" => {
                self.reloads_refused
                    .push((at, text(&v, "trigger"), text(&v, "rules")));
            }
            _ => {}
        }
    }

    /// The first and last instants seen (RFC 3339 sorts as text).
    fn span(&mut self, at: &str) {
        if at.is_empty() {
            return;
        }
        if self.first.as_deref().is_none_or(|f| at < f) {
            self.first = Some(at.to_string());
        }
        if self.last.as_deref().is_none_or(|l| at > l) {
            self.last = Some(at.to_string());
        }
    }

    pub fn to_json(&self) -> Value {
        let table = |c: &Counts| {
            c.top(usize::MAX)
                .into_iter()
                .map(|(k, n)| json!({"key": k, "count": n}))
                .collect::<Vec<_>>()
        };
        json!({
            "lines": self.lines,
            "unreadable": self.unreadable,
            "from": self.first,
            "to": self.last,
            "decisions": self.decisions,
            "denied": self.denied,
            "blocked_sign_ins": {
                "total": self.blocked_sign_ins,
                "by_network": table(&self.blocked_by_network),
                "by_country": table(&self.blocked_by_country),
                "by_asn": table(&self.blocked_by_asn),
                "by_hour": self.blocked_by_hour.all().into_iter().map(|(k, n)| json!({"hour": k, "count": n})).collect::<Vec<_>>(),
                "by_address": table(&self.blocked_by_address),
            },
            "lockouts": self.lockouts.iter().map(|(at, key, client, account, secs)| json!({"at": at, "key": key, "client": client, "account": account, "lock_seconds": secs})).collect::<Vec<_>>(),
            "lockout_releases": self.lockout_releases,
            "refused_before_any_rule": table(&self.refused),
            "grants_expired": self.grants_expired.iter().map(|(at, what, until, note)| json!({"at": at, "what": what, "until": until, "note": note})).collect::<Vec<_>>(),
            "reloads": {"applied": self.reloads, "failed": self.reloads_failed,
                "refused": self.reloads_refused.iter().map(|(at, t, r)| json!({"at": at, "trigger": t, "rules": r})).collect::<Vec<_>>()},
        })
    }

    /// Text for a terminal, or Markdown for a ticket.
    pub fn render(&self, lang: Lang, markdown: bool) -> String {
        let w = words(lang);
        let mut out = String::new();
        let h = |out: &mut String, title: &str| {
            if markdown {
                let _ = writeln!(out, "\n## {title}\n");
            } else {
                let _ = writeln!(out, "\n{title}");
            }
        };
        let row = |out: &mut String, k: &str, n: u64| {
            if markdown {
                let _ = writeln!(out, "| {} | {n} |", k.replace('|', "\\|"));
            } else {
                let _ = writeln!(out, "  {n:>8}  {k}");
            }
        };
        let head = |out: &mut String, a: &str, b: &str| {
            if markdown {
                let _ = writeln!(out, "| {a} | {b} |\n|---|---|");
            }
        };
        if markdown {
            let _ = writeln!(out, "# {}", w.title);
        } else {
            let _ = writeln!(out, "{}", w.title);
        }
        let _ = writeln!(
            out,
            "{}",
            w.span
                .replace("{from}", self.first.as_deref().unwrap_or("-"))
                .replace("{to}", self.last.as_deref().unwrap_or("-"))
                .replace("{lines}", &self.lines.to_string())
                .replace("{decisions}", &self.decisions.to_string())
                .replace("{denied}", &self.denied.to_string())
        );
        h(
            &mut out,
            &w.blocked.replace("{n}", &self.blocked_sign_ins.to_string()),
        );
        for (title, counts) in [
            (w.by_network, &self.blocked_by_network),
            (w.by_country, &self.blocked_by_country),
            (w.by_asn, &self.blocked_by_asn),
            (w.top_addresses, &self.blocked_by_address),
        ] {
            if counts.0.is_empty() {
                continue;
            }
            if markdown {
                let _ = writeln!(out, "\n**{title}**\n");
            } else {
                let _ = writeln!(out, " {title}:");
            }
            head(&mut out, title, w.count);
            for (k, n) in counts.top(10) {
                row(&mut out, k, n);
            }
        }
        if !self.blocked_by_hour.0.is_empty() {
            if markdown {
                let _ = writeln!(out, "\n**{}**\n", w.by_hour);
            } else {
                let _ = writeln!(out, " {}:", w.by_hour);
            }
            head(&mut out, w.by_hour, w.count);
            for (k, n) in self.blocked_by_hour.all() {
                row(&mut out, &format!("{k}:00Z"), n);
            }
        }
        h(
            &mut out,
            &w.lockouts.replace("{n}", &self.lockouts.len().to_string()),
        );
        for (at, key, client, account, secs) in &self.lockouts {
            let account = if account.is_empty() { "-" } else { account };
            let line = format!("{at}  {key}  {client}  {account}  {secs} s");
            if markdown {
                let _ = writeln!(out, "- {line}");
            } else {
                let _ = writeln!(out, "  {line}");
            }
        }
        if self.lockout_releases > 0 {
            let _ = writeln!(
                out,
                "{}",
                w.releases
                    .replace("{n}", &self.lockout_releases.to_string())
            );
        }
        h(&mut out, w.refused);
        if self.refused.0.is_empty() {
            let _ = writeln!(out, "{}", w.none);
        } else {
            head(&mut out, w.reason, w.count);
            for (k, n) in self.refused.top(20) {
                row(&mut out, k, n);
            }
        }
        h(&mut out, w.grants);
        if self.grants_expired.is_empty() {
            let _ = writeln!(out, "{}", w.none);
        }
        for (at, what, until, note) in &self.grants_expired {
            let note = if note.is_empty() {
                String::new()
            } else {
                format!(" ({note})")
            };
            let line = format!("{at}  {what}  until {until}{note}");
            if markdown {
                let _ = writeln!(out, "- {line}");
            } else {
                let _ = writeln!(out, "  {line}");
            }
        }
        h(&mut out, w.reloads);
        let _ = writeln!(
            out,
            "{}",
            w.reload_counts
                .replace("{applied}", &self.reloads.to_string())
                .replace("{failed}", &self.reloads_failed.to_string())
                .replace("{refused}", &self.reloads_refused.len().to_string())
        );
        for (at, trigger, rules) in &self.reloads_refused {
            let line = format!("{at}  {trigger}  {rules}");
            if markdown {
                let _ = writeln!(out, "- {line}");
            } else {
                let _ = writeln!(out, "  {line}");
            }
        }
        out
    }
}

struct Words {
    title: &'static str,
    span: &'static str,
    blocked: &'static str,
    by_network: &'static str,
    by_country: &'static str,
    by_asn: &'static str,
    by_hour: &'static str,
    top_addresses: &'static str,
    count: &'static str,
    lockouts: &'static str,
    releases: &'static str,
    refused: &'static str,
    reason: &'static str,
    grants: &'static str,
    reloads: &'static str,
    reload_counts: &'static str,
    none: &'static str,
}

fn words(lang: Lang) -> Words {
    match lang {
        Lang::En => Words {
            title: "netwarden report",
            span: "From {from} to {to}: {lines} lines, {decisions} requests decided, {denied} denied.",
            blocked: "Blocked sign-ins: {n}",
            by_network: "By network",
            by_country: "By country",
            by_asn: "By AS",
            by_hour: "By hour (UTC)",
            top_addresses: "Most blocked addresses",
            count: "count",
            lockouts: "Lockouts: {n}",
            releases: "Released by operators: {n}",
            refused: "Refused before any rule",
            reason: "reason",
            grants: "Grants and rules that expired",
            reloads: "Policy reloads",
            reload_counts: "applied {applied}, failed {failed}, refused by the guard {refused}",
            none: "none",
        },
        Lang::Ja => Words {
            title: "netwarden レポート",
            span: "{from} から {to} まで：{lines} 行、判定したリクエスト {decisions} 件、うち拒否 {denied} 件。",
            blocked: "拒否したサインイン：{n} 件",
            by_network: "ネットワーク別",
            by_country: "国別",
            by_asn: "AS別",
            by_hour: "時間帯別（UTC）",
            top_addresses: "拒否の多い接続元IPアドレス",
            count: "件数",
            lockouts: "ロックアウト：{n} 件",
            releases: "運用者による解除：{n} 件",
            refused: "ルール判定前に拒否したリクエスト",
            reason: "理由",
            grants: "期限切れとなった許可とルール",
            reloads: "ポリシーの再読み込み",
            reload_counts: "適用 {applied} 件、失敗 {failed} 件、ガードによる拒否 {refused} 件",
            none: "なし",
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A hand-made log: its totals are known.
    const LOG: &str = r#"{"timestamp":"2026-12-07T09:00:01Z","event":"decision","action":"allow","http.response.status_code":200}
{"timestamp":"2026-12-07T09:05:00Z","event":"decision","action":"deny","http.response.status_code":403,"reason_code":"not_in_allowed_networks"}
{"timestamp":"2026-12-07T09:05:00Z","event":"login_blocked","client.address":"203.0.113.9","geo.country.iso_code":"JP","network.asn":64500,"network.as_org":"ExampleNet","enforced":true}
{"timestamp":"2026-12-07T10:10:00Z","event":"login_blocked","client.address":"203.0.113.10","enforced":true}
{"timestamp":"2026-12-07T10:20:00Z","event":"login_blocked","client.address":"203.0.113.9","geo.country.iso_code":"JP","enforced":true}
{"timestamp":"2026-12-07T10:21:00Z","event":"login_blocked","client.address":"198.51.100.1","enforced":false}
{"timestamp":"2026-12-07T11:00:00Z","event":"decision","action":"deny","http.response.status_code":400,"reason_code":"path_rejected"}
{"timestamp":"2026-12-07T11:00:01Z","event":"request_rejected","reason":"malformed"}
{"timestamp":"2026-12-07T12:00:00Z","event":"lockout","key":"account_and_network","client.address":"192.0.2.7","account.hash":"a5b9705bd3fd","lock_seconds":900}
{"timestamp":"2026-12-07T12:05:00Z","event":"lockout_released","selector":"account"}
{"timestamp":"2026-12-07T13:00:00Z","event":"grant_expired","network":"vpn","cidr":"198.51.100.7/32","until":"2026-12-07T13:00:00Z","note":"Tanaka"}
{"timestamp":"2026-12-07T14:00:00Z","event":"policy_reloaded","trigger":"watch"}
{"timestamp":"2026-12-07T14:10:00Z","event":"policy_reload_refused","trigger":"admin","rules":"rule 'console' (policy.yaml:9) denies 2"}
not json
"#;

    fn report() -> Report {
        let mut r = Report::default();
        for line in LOG.lines() {
            r.feed(line);
        }
        r
    }

    #[test]
    fn the_totals_of_a_hand_made_log() {
        let r = report();
        assert_eq!(r.lines, 14);
        assert_eq!(r.unreadable, 1);
        assert_eq!((r.decisions, r.denied), (3, 2));
        assert_eq!(r.blocked_sign_ins, 3, "the report-only one is left out");
        assert_eq!(r.blocked_by_address.top(1), [("203.0.113.9", 2)]);
        assert_eq!(r.blocked_by_network.top(1), [("203.0.113.0/24", 3)]);
        assert_eq!(r.blocked_by_country.top(2), [("JP", 2), ("-", 1)]);
        assert_eq!(
            r.blocked_by_hour.all(),
            [("2026-12-07T09", 1), ("2026-12-07T10", 2)]
        );
        assert_eq!(r.lockouts.len(), 1);
        assert_eq!(r.lockout_releases, 1);
        assert_eq!(
            r.refused.all(),
            [("parser: malformed", 1), ("path_rejected", 1)]
        );
        assert_eq!(r.grants_expired[0].1, "198.51.100.7/32 in vpn");
        assert_eq!((r.reloads, r.reloads_refused.len()), (1, 1));
        assert_eq!(r.first.as_deref(), Some("2026-12-07T09:00:01Z"));
        let j = r.to_json();
        assert_eq!(j["blocked_sign_ins"]["total"], 3);
        assert_eq!(
            j["blocked_sign_ins"]["by_asn"][1]["key"],
            "AS64500 ExampleNet"
        );
    }

    #[test]
    fn markdown_reads_as_a_ticket_in_both_languages() {
        let r = report();
        let en = r.render(Lang::En, true);
        assert!(en.starts_with("# netwarden report\n"), "{en}");
        assert!(en.contains("## Blocked sign-ins: 3"), "{en}");
        assert!(en.contains("| 203.0.113.9 | 2 |"), "{en}");
        assert!(
            en.contains(
                "- 2026-12-07T12:00:00Z  account_and_network  192.0.2.7  a5b9705bd3fd  900 s"
            ),
            "{en}"
        );
        let ja = r.render(Lang::Ja, true);
        assert!(ja.contains("## 拒否したサインイン：3 件"), "{ja}");
        assert!(
            ja.contains("適用 1 件、失敗 0 件、ガードによる拒否 1 件"),
            "{ja}"
        );
        assert!(!ja.contains("あなた"));
        let text = r.render(Lang::En, false);
        assert!(text.contains("         2  203.0.113.9"), "{text}");
    }

    #[test]
    fn the_tables_stay_bounded() {
        let mut c = Counts::default();
        for i in 0..(MAX_KEYS + 10) {
            c.add(&i.to_string());
        }
        assert_eq!(c.0.len(), MAX_KEYS + 1);
        assert_eq!(c.0["(others)"], 10);
    }
}
