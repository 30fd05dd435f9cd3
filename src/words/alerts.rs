//! Every word an alert says, in English and Japanese: headlines and the
//! labels of the facts under them. The English headlines are the ones the
//! webhook's `summary` and Alertmanager have always carried.

use std::time::Duration;

use super::{Lang, duration, plural};

/// The labels of an alert's facts, and its fixed sentences.
pub struct Labels {
    pub client: &'static str,
    pub network_facts: &'static str,
    pub rule: &'static str,
    pub request: &'static str,
    pub user_agent: &'static str,
    pub request_id: &'static str,
    pub time: &'static str,
    pub period: &'static str,
    pub latest: &'static str,
    pub locked_by: &'static str,
    pub top_sources: &'static str,
    pub error: &'static str,
    pub released: &'static str,
    pub list: &'static str,
    pub detail: &'static str,
    pub instance: &'static str,
    pub runbook: &'static str,
    /// Said under a report-only alert: nothing was refused.
    pub report_only_note: &'static str,
    /// A mail's footer: why the reader gets it.
    pub mail_footer: &'static str,
    /// The digest.
    pub digest: DigestLabels,
}

/// The morning digest's words.
pub struct DigestLabels {
    pub title: &'static str,
    pub quiet: &'static str,
    pub blocked: &'static str,
    pub by_subnet: &'static str,
    pub by_country: &'static str,
    pub by_asn: &'static str,
    pub top_addresses: &'static str,
    pub lockouts: &'static str,
    pub releases: &'static str,
    pub refused_reloads: &'static str,
    pub grants_ending: &'static str,
    pub disabled_sinks: &'static str,
    pub self_check: &'static str,
    pub unknown: &'static str,
    pub fleet_label: &'static str,
    pub fleet: &'static str,
}

const EN: Labels = Labels {
    client: "Client address",
    network_facts: "Network",
    rule: "Rule",
    request: "Request",
    user_agent: "User agent",
    request_id: "Request id",
    time: "Time",
    period: "Period",
    latest: "Latest attempt",
    locked_by: "Sign-in that locked it",
    top_sources: "Top sources",
    error: "Error",
    released: "Released",
    list: "List",
    detail: "Detail",
    instance: "netwarden",
    runbook: "Runbook",
    report_only_note: "Report-only: the request was forwarded; enforcing the rule would have refused it.",
    mail_footer: "Sent by netwarden, the network guard in front of the admin console.",
    digest: DigestLabels {
        title: "netwarden daily digest",
        quiet: "A quiet day: no blocked sign-ins, lockouts or problems since the last digest.",
        blocked: "Blocked sign-ins",
        by_subnet: "By network (/24, /64)",
        by_country: "By country",
        by_asn: "By provider (ASN)",
        top_addresses: "Top addresses",
        lockouts: "Lockouts",
        releases: "Lockouts released by operators",
        refused_reloads: "Policy reloads refused",
        grants_ending: "Grants ending within 7 days",
        disabled_sinks: "Alert sinks disabled",
        self_check: "Self-check warnings",
        unknown: "unknown",
        fleet_label: "Counted on",
        fleet: "replicas",
    },
};

const JA: Labels = Labels {
    client: "接続元IPアドレス",
    network_facts: "ネットワーク情報",
    rule: "ルール",
    request: "リクエスト",
    user_agent: "ユーザーエージェント",
    request_id: "リクエストID",
    time: "日時",
    period: "期間",
    latest: "直近の試行",
    locked_by: "ロックの原因となったログイン",
    top_sources: "試行の多い接続元",
    error: "エラー",
    released: "解除対象",
    list: "リスト",
    detail: "詳細",
    instance: "netwarden",
    runbook: "対応手順",
    report_only_note: "監視モードのため、リクエストは遮断せずに転送しました。ルールを適用した場合は拒否されます。",
    mail_footer: "このメールは、管理画面の前に置かれたネットワークガード netwarden から送信されています。",
    digest: DigestLabels {
        title: "netwarden 日次レポート",
        quiet: "前回のレポート以降、遮断されたログイン、ロック、問題はありませんでした。",
        blocked: "遮断したログイン",
        by_subnet: "ネットワーク別（/24、/64）",
        by_country: "国別",
        by_asn: "プロバイダ別（ASN）",
        top_addresses: "試行の多い接続元IPアドレス",
        lockouts: "ロック",
        releases: "運用担当者によるロック解除",
        refused_reloads: "拒否したポリシーの再読み込み",
        grants_ending: "7日以内に期限が切れる一時許可",
        disabled_sinks: "無効になっている通知先",
        self_check: "自己診断の警告",
        unknown: "不明",
        fleet_label: "集計対象",
        fleet: "台のレプリカ",
    },
};

pub fn labels(lang: Lang) -> &'static Labels {
    match lang {
        Lang::En => &EN,
        Lang::Ja => &JA,
    }
}

/// A client whose address could not be resolved.
pub fn unknown_client(lang: Lang) -> &'static str {
    match lang {
        Lang::En => "an unknown client",
        Lang::Ja => "不明な接続元",
    }
}

/// A first blocked attempt.
pub fn attempt(lang: Lang, enforced: bool, client: &str, rule: &str) -> String {
    match (lang, enforced) {
        (Lang::En, true) => format!("Blocked login attempt from {client} (rule {rule})"),
        (Lang::En, false) => {
            format!("Report-only: login attempt that would be blocked from {client} (rule {rule})")
        }
        (Lang::Ja, true) => {
            format!(
                "許可されていないネットワークからのログインを遮断しました：{client}（ルール {rule}）"
            )
        }
        (Lang::Ja, false) => {
            format!("【監視モード】遮断対象のログインを検知しました：{client}（ルール {rule}）")
        }
    }
}

/// Attempts of one key in a window; `span` is the time between the first
/// and the last.
pub fn summary(lang: Lang, enforced: bool, attempts: u64, scope: &str, span: Duration) -> String {
    let secs = span.as_secs();
    match lang {
        Lang::En => format!(
            "{}{attempts} more blocked login attempt{} from {scope}{}",
            if enforced { "" } else { "Report-only: " },
            plural(attempts),
            match (attempts, secs) {
                (1, _) => String::new(),
                (_, 0) => " within a second".into(),
                (_, 1..60) => format!(" over {secs}s"),
                _ => format!(" over {}m {}s", secs / 60, secs % 60),
            }
        ),
        Lang::Ja => format!(
            "{}{scope} からのログインをさらに{attempts}件遮断しました{}",
            if enforced {
                ""
            } else {
                "【監視モード】"
            },
            match (attempts, secs) {
                (1, _) => String::new(),
                (_, 0) => "（1秒以内）".into(),
                (_, 1..60) => format!("（{secs}秒間）"),
                _ => format!("（{}分{}秒間）", secs / 60, secs % 60),
            }
        ),
    }
}

/// Attempts past the storm cap.
pub fn storm(
    lang: Lang,
    attempts: u64,
    sources: u64,
    would_be: u64,
    lockouts: u64,
    releases: u64,
) -> String {
    match lang {
        Lang::En => format!(
            "Login attempt storm: {attempts} blocked attempt{} from {sources} source{}{}{}{}",
            plural(attempts),
            plural(sources),
            if would_be > 0 {
                format!(" ({would_be} only report-only)")
            } else {
                String::new()
            },
            match lockouts {
                0 => String::new(),
                1 => ", and 1 more lockout".into(),
                n => format!(", and {n} more lockouts"),
            },
            match releases {
                0 => String::new(),
                1 => ", and 1 more lockout release".into(),
                n => format!(", and {n} more lockout releases"),
            }
        ),
        Lang::Ja => format!(
            "ログインが集中しています：{sources}件の接続元から{attempts}件を遮断しました{}{}{}",
            if would_be > 0 {
                format!("（うち監視モードのみ{would_be}件）")
            } else {
                String::new()
            },
            if lockouts > 0 {
                format!("。ほかにロック{lockouts}件")
            } else {
                String::new()
            },
            match (lockouts, releases) {
                (_, 0) => String::new(),
                (0, n) => format!("。ほかにロック解除{n}件"),
                (_, n) => format!("、ロック解除{n}件"),
            }
        ),
    }
}

/// Who a lockout locked: an address, or an account (by its hash) from a
/// network.
pub struct Locked<'a> {
    pub client: &'a str,
    pub account: Option<&'a str>,
    pub network: Option<&'a str>,
}

/// A client or account locked out.
pub fn lockout(
    lang: Lang,
    who: &Locked<'_>,
    lock: Duration,
    failures: u32,
    rule: &str,
    strike: u32,
) -> String {
    let lock = duration(lock, lang);
    match lang {
        Lang::En => format!(
            "{} locked out for {lock} after {failures} failed sign-in{} (rule {rule}{})",
            match (who.account, who.network) {
                (Some(a), Some(n)) => format!("Account {a} from {n}"),
                (Some(a), None) => format!("Account {a}"),
                _ => who.client.to_string(),
            },
            plural(u64::from(failures)),
            match (strike > 1, who.account) {
                (true, Some(_)) => format!(", lock {strike} in a row, last from {}", who.client),
                (true, None) => format!(", lock {strike} in a row"),
                (false, Some(_)) => format!(", last from {}", who.client),
                (false, None) => String::new(),
            }
        ),
        Lang::Ja => format!(
            "{}をロックしました：ログインに{failures}回失敗したため、{lock}ログインできません（ルール {rule}{}）",
            match (who.account, who.network) {
                (Some(a), Some(n)) => format!("アカウント {a}（{n} から）"),
                (Some(a), None) => format!("アカウント {a} "),
                _ => format!("{} ", who.client),
            },
            match (strike > 1, who.account) {
                (true, Some(_)) => format!("、{strike}回連続、最後の接続元 {}", who.client),
                (true, None) => format!("、{strike}回連続"),
                (false, Some(_)) => format!("、最後の接続元 {}", who.client),
                (false, None) => String::new(),
            }
        ),
    }
}

/// The shared lockout store stopped answering.
pub fn state_store(lang: Lang, on_store_error: &str) -> String {
    match lang {
        Lang::En => format!(
            "Lockout store (Redis) unreachable: sign-ins follow on_store_error {on_store_error} until it answers"
        ),
        Lang::Ja => format!(
            "ロック状態の共有ストア（Redis）に接続できません：復旧するまでログインは on_store_error: {on_store_error} に従います"
        ),
    }
}

/// The shared lockout store answers again.
pub fn state_store_restored(lang: Lang) -> &'static str {
    match lang {
        Lang::En => "Lockout store (Redis) answers again: lockout state is shared again",
        Lang::Ja => {
            "ロック状態の共有ストア（Redis）への接続が復旧しました：ロック状態の共有を再開しました"
        }
    }
}

/// An operator's release of lockouts.
pub fn released(lang: Lang, by: &str, released: u64, selector: &str, target: &str) -> String {
    match lang {
        Lang::En => format!(
            "An operator at {by} released {released} lock{} ({} {target})",
            plural(released),
            selector.replace('_', " ")
        ),
        Lang::Ja => format!(
            "運用担当者（{by}）がロックを{released}件解除しました（{} {target}）",
            match selector {
                "account" => "アカウント",
                "account_hash" => "アカウントハッシュ",
                "address" => "接続元IPアドレス",
                "network" => "ネットワーク",
                other => other,
            }
        ),
    }
}

/// A published list that is not current. `detail` is the feed's own
/// words (English: they name codes and counts).
pub fn feed(
    lang: Lang,
    network: &str,
    problem: &str,
    detail: &str,
    on_stale: &str,
    age: Duration,
) -> String {
    let age_text = duration(age, lang);
    match lang {
        Lang::En => format!(
            "Published list of network {network} {}: {detail}; {}",
            match problem {
                "refused" => "refused",
                "held" => "held back",
                "stale" => "is stale",
                _ => "could not be fetched",
            },
            match (problem, on_stale) {
                ("stale", "empty") => format!(
                    "it is {age_text} old and the network now holds none of its addresses (on_stale: empty)"
                ),
                ("stale", _) =>
                    format!("the last good list, {age_text} old, stays in use (on_stale: keep)"),
                _ => format!("the last good list ({age_text} old) stays in use"),
            }
        ),
        Lang::Ja => format!(
            "ネットワーク {network} の公開リスト{}：{detail}。{}",
            match problem {
                "refused" => "を受け付けませんでした",
                "held" => "の適用を保留しました",
                "stale" => "が古くなっています",
                _ => "を取得できませんでした",
            },
            match (problem, on_stale) {
                ("stale", "empty") => format!(
                    "{age_text}前のリストのため、このネットワークのアドレスは現在ひとつも許可されていません（on_stale: empty）"
                ),
                ("stale", _) => format!(
                    "{age_text}前の最後に正常だったリストを引き続き使用します（on_stale: keep）"
                ),
                _ => format!("最後に正常だったリスト（{age_text}前）を引き続き使用します"),
            }
        ),
    }
}

/// A sink that could not start. `why` names the variable (English: it is
/// the error's own words).
pub fn sink_disabled(lang: Lang, sink: &str) -> String {
    match lang {
        Lang::En => format!(
            "Alert sink {sink} is disabled: its alerts go nowhere until its secret is set and netwarden restarts or reloads"
        ),
        Lang::Ja => format!(
            "通知先 {sink} が無効になっています：設定を直して再起動または再読み込みするまで、この通知先には届きません"
        ),
    }
}

/// `netwarden alert-test`.
pub fn test(lang: Lang) -> &'static str {
    match lang {
        Lang::En => "netwarden test alert: this sink is reachable",
        Lang::Ja => "netwarden のテスト通知：この通知先に届いています",
    }
}

/// The digest's headline: how many blocked sign-ins and lockouts.
pub fn digest_headline(lang: Lang, blocked: u64, lockouts: u64, problems: u64) -> String {
    match lang {
        Lang::En => format!(
            "netwarden daily digest: {blocked} blocked sign-in{}, {lockouts} lockout{}, {problems} problem{}",
            plural(blocked),
            plural(lockouts),
            plural(problems)
        ),
        Lang::Ja => format!(
            "netwarden 日次レポート：遮断したログイン{blocked}件、ロック{lockouts}件、問題{problems}件"
        ),
    }
}

/// The digest's headline on a day with nothing to say.
pub fn digest_quiet(lang: Lang) -> &'static str {
    match lang {
        Lang::En => "netwarden daily digest: a quiet day",
        Lang::Ja => "netwarden 日次レポート：特記事項はありません",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every Japanese sentence the alerts can say, for the term-set check.
    fn every_japanese_sentence() -> Vec<String> {
        let l = labels(Lang::Ja);
        let d = &l.digest;
        let who = Locked {
            client: "203.0.113.7",
            account: Some("0123456789ab"),
            network: Some("203.0.113.0/24"),
        };
        let mut all = vec![
            attempt(Lang::Ja, true, "203.0.113.7", "login"),
            attempt(Lang::Ja, false, "203.0.113.7", "login"),
            summary(Lang::Ja, true, 41, "203.0.113.7", Duration::from_secs(63)),
            storm(Lang::Ja, 500, 120, 3, 2, 1),
            lockout(Lang::Ja, &who, Duration::from_secs(900), 5, "login", 2),
            state_store(Lang::Ja, "memory"),
            state_store_restored(Lang::Ja).into(),
            released(Lang::Ja, "10.0.0.4", 2, "account_hash", "0bc6c5e2d1a4"),
            feed(
                Lang::Ja,
                "vpn",
                "stale",
                "x",
                "keep",
                Duration::from_secs(7200),
            ),
            test(Lang::Ja).into(),
            sink_disabled(Lang::Ja, "mail"),
            digest_headline(Lang::Ja, 3, 1, 0),
            digest_quiet(Lang::Ja).into(),
            unknown_client(Lang::Ja).into(),
        ];
        all.extend(
            [
                l.client,
                l.network_facts,
                l.report_only_note,
                l.mail_footer,
                l.locked_by,
                d.title,
                d.quiet,
                d.grants_ending,
                d.self_check,
            ]
            .map(String::from),
        );
        all
    }

    #[test]
    fn japanese_follows_the_pages_term_set() {
        for s in every_japanese_sentence() {
            assert!(!s.contains("あなた"), "{s}");
            // 「アドレス」 alone reads as an e-mail address.
            assert!(!s.contains("アドレス") || s.contains("IPアドレス"), "{s}");
            // One word for a sign-in, one for a lock.
            assert!(
                !s.contains("サインイン") && !s.contains("ロックアウト"),
                "{s}"
            );
            assert!(!s.contains("！"), "{s}");
        }
    }

    #[test]
    fn english_headlines_are_the_ones_automation_already_reads() {
        assert_eq!(
            attempt(Lang::En, true, "203.0.113.7", "login"),
            "Blocked login attempt from 203.0.113.7 (rule login)"
        );
        assert_eq!(
            summary(Lang::En, true, 41, "203.0.113.7", Duration::from_secs(60)),
            "41 more blocked login attempts from 203.0.113.7 over 1m 0s"
        );
        assert_eq!(
            summary(
                Lang::En,
                true,
                9,
                "198.51.100.0/24",
                Duration::from_millis(900)
            ),
            "9 more blocked login attempts from 198.51.100.0/24 within a second"
        );
        assert_eq!(
            summary(Lang::En, true, 1, "203.0.113.7", Duration::from_secs(60)),
            "1 more blocked login attempt from 203.0.113.7"
        );
        assert_eq!(
            storm(Lang::En, 500, 120, 0, 3, 2),
            "Login attempt storm: 500 blocked attempts from 120 sources, and 3 more lockouts, and 2 more lockout releases"
        );
    }

    #[test]
    fn japanese_headlines_read_as_business_japanese() {
        assert_eq!(
            attempt(Lang::Ja, true, "203.0.113.7", "login"),
            "許可されていないネットワークからのログインを遮断しました：203.0.113.7（ルール login）"
        );
        assert_eq!(
            summary(Lang::Ja, true, 41, "203.0.113.7", Duration::from_secs(303)),
            "203.0.113.7 からのログインをさらに41件遮断しました（5分3秒間）"
        );
        let who = Locked {
            client: "203.0.113.7",
            account: None,
            network: None,
        };
        assert_eq!(
            lockout(Lang::Ja, &who, Duration::from_secs(1800), 5, "login", 2),
            "203.0.113.7 をロックしました：ログインに5回失敗したため、30分ログインできません（ルール login、2回連続）"
        );
        assert_eq!(
            storm(Lang::Ja, 500, 120, 0, 0, 2),
            "ログインが集中しています：120件の接続元から500件を遮断しました。ほかにロック解除2件"
        );
        assert_eq!(
            released(Lang::Ja, "10.0.0.4", 2, "address", "203.0.113.7"),
            "運用担当者（10.0.0.4）がロックを2件解除しました（接続元IPアドレス 203.0.113.7）"
        );
    }
}
