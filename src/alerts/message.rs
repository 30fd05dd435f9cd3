//! One alert as people read it, in a sink's language and time zone: a
//! headline, the facts under it (label and value), a list (the top
//! sources), the runbook. Pure. Each channel's format (`formats.rs`)
//! writes a [`Message`] in its own markup and escapes every value there;
//! here, text the client chose (user agent, host, path) is also defanged
//! (`https://` -> `https[:]//`), so that no chat or mail client turns it
//! into a link.

use std::time::{Duration, SystemTime};

use jiff::tz::TimeZone;

use super::{Alert, Attempt};
use crate::words::alerts::{self as w, Labels, Locked};
use crate::words::{self, Lang};

/// How urgent an alert is: PagerDuty's severities, a card's colour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    Critical,
    Error,
    Warning,
    Info,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "info",
        }
    }
}

/// One line under the headline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fact {
    pub label: &'static str,
    pub value: String,
}

/// An alert, worded.
#[derive(Clone)]
pub struct Message {
    pub lang: Lang,
    /// The machine kind (`attempt`, `lockout`, ...), never translated.
    pub kind: &'static str,
    pub severity: Severity,
    pub title: String,
    /// When it happened, as people write it in the sink's zone.
    pub when: String,
    /// A sentence under the title (report-only alerts say nothing was
    /// refused).
    pub note: Option<&'static str>,
    pub facts: Vec<Fact>,
    /// A titled list of counts (a storm's top sources).
    pub list: Option<(&'static str, Vec<(String, u64)>)>,
    pub instance: String,
    /// `<runbook_url>#<section>`.
    pub runbook: String,
    /// Labels of the fixed parts (runbook, footer).
    pub labels: &'static Labels,
}

/// What a sink says its alerts in.
#[derive(Clone, Debug)]
pub struct Voice {
    pub lang: Lang,
    pub zone: TimeZone,
}

impl Default for Voice {
    fn default() -> Self {
        Voice {
            lang: Lang::En,
            zone: TimeZone::UTC,
        }
    }
}

/// The headline alone, in `lang`.
pub fn headline(alert: &Alert, lang: Lang) -> String {
    match alert {
        Alert::Attempt(a) => w::attempt(lang, a.enforced, &client_text(a, lang), &a.rule),
        Alert::Summary(s) => w::summary(
            lang,
            s.enforced,
            s.attempts,
            &scope_text(&s.scope, lang),
            s.to.duration_since(s.from).unwrap_or_default(),
        ),
        Alert::Storm(s) => w::storm(
            lang, s.attempts, s.sources, s.would_be, s.lockouts, s.releases,
        ),
        Alert::Lockout(l) => {
            let client = client_text(&l.attempt, lang);
            let who = Locked {
                client: &client,
                account: l.account.as_deref(),
                network: l.network.as_deref(),
            };
            w::lockout(lang, &who, l.lock, l.failures, &l.attempt.rule, l.strike)
        }
        Alert::StateStore(d) => w::state_store(lang, d.on_store_error),
        Alert::StateStoreRestored { .. } => w::state_store_restored(lang).into(),
        Alert::Released(r) => {
            w::released(lang, &r.by.to_string(), r.released, r.selector, &r.target)
        }
        Alert::Feed(p) => w::feed(lang, &p.network, p.problem, &p.detail, p.on_stale, p.age),
        Alert::SinkDisabled(d) => w::sink_disabled(lang, &d.sink),
        Alert::Digest(d) if d.is_quiet() => w::digest_quiet(lang).into(),
        Alert::Digest(d) => {
            w::digest_headline(lang, d.tally.blocked, d.tally.lockouts, d.problems())
        }
        Alert::Test { .. } => w::test(lang).into(),
    }
}

/// How urgent each kind is.
pub fn severity(alert: &Alert) -> Severity {
    match alert {
        Alert::Attempt(a) if !a.enforced => Severity::Info,
        Alert::Summary(s) if !s.enforced => Severity::Info,
        Alert::Attempt(_)
        | Alert::Summary(_)
        | Alert::Lockout(_)
        | Alert::Feed(_)
        | Alert::SinkDisabled(_) => Severity::Warning,
        Alert::Storm(_) | Alert::StateStore(_) => Severity::Error,
        Alert::StateStoreRestored { .. }
        | Alert::Released(_)
        | Alert::Digest(_)
        | Alert::Test { .. } => Severity::Info,
    }
}

/// When the alert happened.
pub fn at(alert: &Alert) -> SystemTime {
    match alert {
        Alert::Attempt(a) => a.at,
        Alert::Summary(s) => s.to,
        Alert::Storm(s) => s.to,
        Alert::Lockout(l) => l.attempt.at,
        Alert::StateStore(d) => d.at,
        Alert::Released(r) => r.at,
        Alert::Feed(p) => p.at,
        Alert::Digest(d) => d.to,
        Alert::SinkDisabled(d) => d.at,
        Alert::StateStoreRestored { at } | Alert::Test { at } => *at,
    }
}

/// `alert` worded for a sink speaking `voice`.
pub fn message(alert: &Alert, voice: &Voice, instance: &str, runbook: &str) -> Message {
    let lang = voice.lang;
    let l = w::labels(lang);
    let zone = &voice.zone;
    let mut facts = Vec::new();
    let mut note = None;
    let mut list = None;
    let fact = |label, value: String| Fact { label, value };
    match alert {
        Alert::Attempt(a) => {
            attempt_facts(&mut facts, a, lang, None);
            if !a.enforced {
                note = Some(l.report_only_note);
            }
        }
        Alert::Summary(s) => {
            facts.push(fact(l.period, period(s.from, s.to, zone)));
            if !s.enforced {
                note = Some(l.report_only_note);
            }
            facts.push(fact(l.latest, String::new()));
            attempt_facts(&mut facts, &s.last, lang, Some(zone));
        }
        Alert::Lockout(lo) => {
            facts.push(fact(l.locked_by, String::new()));
            attempt_facts(&mut facts, &lo.attempt, lang, Some(zone));
        }
        Alert::Storm(s) => {
            facts.push(fact(l.period, period(s.from, s.to, zone)));
            list = Some((
                l.top_sources,
                s.top
                    .iter()
                    .map(|(k, n)| (scope_text(k, lang), *n))
                    .collect(),
            ));
        }
        Alert::StateStore(d) => {
            facts.push(fact(l.error, plain(&d.error)));
        }
        Alert::Released(r) => {
            facts.push(fact(
                l.released,
                format!("{} ({})", plain(&r.target), r.selector),
            ));
        }
        Alert::Feed(p) => {
            facts.push(fact(
                l.list,
                format!("{} ({}, {})", defang(&p.url), p.problem, p.reason),
            ));
        }
        Alert::Digest(d) => {
            note = digest_facts(&mut facts, &mut list, d, lang, zone);
        }
        Alert::SinkDisabled(d) => {
            facts.push(fact(l.detail, plain(&d.why)));
        }
        Alert::StateStoreRestored { .. } | Alert::Test { .. } => {}
    }
    Message {
        lang,
        kind: alert.kind(),
        severity: severity(alert),
        title: plain(&headline(alert, lang)),
        when: words::when(at(alert), zone),
        note,
        facts,
        list,
        instance: plain(instance),
        runbook: runbook.to_string(),
        labels: l,
    }
}

/// An attempt's facts; `zone`: with its own time (an attempt under a
/// summary or a lockout; an alert's own time is its `when`).
fn attempt_facts(facts: &mut Vec<Fact>, a: &Attempt, lang: Lang, zone: Option<&TimeZone>) {
    let l = w::labels(lang);
    if let Some(zone) = zone {
        facts.push(Fact {
            label: l.time,
            value: words::when(a.at, zone),
        });
    }
    facts.push(Fact {
        label: l.client,
        value: format!("{} ({})", client_text(a, lang), plain(&a.derivation)),
    });
    if let Some(f) = &a.facts {
        facts.push(Fact {
            label: l.network_facts,
            value: defang(&f.to_string()),
        });
    }
    facts.push(Fact {
        label: l.rule,
        value: plain(&a.rule),
    });
    facts.push(Fact {
        label: l.request,
        value: format!(
            "{} {}{}",
            plain(&a.method),
            defang(&a.host),
            defang(&a.path)
        ),
    });
    facts.push(Fact {
        label: l.user_agent,
        value: defang(&a.user_agent),
    });
    facts.push(Fact {
        label: l.request_id,
        value: plain(&a.request_id),
    });
}

/// The digest's facts: the period, counts, tops, the guard's state; the
/// quiet day's sentence when there is nothing else.
fn digest_facts(
    facts: &mut Vec<Fact>,
    list: &mut Option<(&'static str, Vec<(String, u64)>)>,
    d: &super::digest::Digest,
    lang: Lang,
    zone: &TimeZone,
) -> Option<&'static str> {
    use super::digest::{TOP, TOP_ADDRESSES};
    let l = &w::labels(lang).digest;
    let t = &d.tally;
    let mut fact = |label, value: String| facts.push(Fact { label, value });
    fact(w::labels(lang).period, period(t.since, d.to, zone));
    if let Some(n) = d.replicas.filter(|n| *n > 1) {
        fact(
            l.fleet_label,
            match lang {
                Lang::En => format!("{n} {}", l.fleet),
                Lang::Ja => format!("{n}{}", l.fleet),
            },
        );
    }
    if d.is_quiet() {
        return Some(l.quiet);
    }
    let count = |n: u64| match lang {
        Lang::En => n.to_string(),
        Lang::Ja => format!("{n}件"),
    };
    let mut blocked = count(t.blocked);
    if t.would_be > 0 {
        blocked.push_str(&match lang {
            Lang::En => format!(" (and {} report-only)", t.would_be),
            Lang::Ja => format!("（ほかに監視モードのみ{}件）", t.would_be),
        });
    }
    fact(l.blocked, blocked);
    let unknown = |k: &str| {
        if k == "?" {
            l.unknown.to_string()
        } else {
            defang(k)
        }
    };
    let joined = |c: &super::digest::Counts| {
        c.top(TOP)
            .iter()
            .map(|(k, n)| format!("{} ({n})", unknown(k)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if t.blocked > 0 {
        fact(l.by_subnet, joined(&t.by_subnet));
        fact(l.by_country, joined(&t.by_country));
        fact(l.by_asn, joined(&t.by_asn));
        *list = Some((
            l.top_addresses,
            t.by_address
                .top(TOP_ADDRESSES)
                .into_iter()
                .map(|(k, n)| (unknown(&k), n))
                .collect(),
        ));
    }
    fact(l.lockouts, count(t.lockouts));
    if t.releases > 0 {
        fact(l.releases, count(t.releases));
    }
    if t.reloads_refused > 0 {
        fact(l.refused_reloads, count(t.reloads_refused));
    }
    for (network, cidr, until) in &d.extras.grants_ending {
        fact(
            l.grants_ending,
            format!(
                "{} {} – {}",
                plain(network),
                plain(cidr),
                words::when(*until, zone)
            ),
        );
    }
    for s in &d.extras.disabled_sinks {
        fact(l.disabled_sinks, plain(s));
    }
    for s in &d.extras.self_check {
        fact(l.self_check, plain(s));
    }
    None
}

/// `2026-12-07 21:03 JST – 21:10`: the date and zone said once when both
/// ends fall on one day.
fn period(from: SystemTime, to: SystemTime, zone: &TimeZone) -> String {
    let (a, b) = (words::when(from, zone), words::when(to, zone));
    if a.get(..10) == b.get(..10) {
        format!("{a} – {}", words::clock_time(to, zone))
    } else {
        format!("{a} – {b}")
    }
}

fn client_text(a: &Attempt, lang: Lang) -> String {
    a.client
        .map_or_else(|| w::unknown_client(lang).into(), |ip| ip.to_string())
}

fn scope_text(s: &super::aggregate::Scope, lang: Lang) -> String {
    match s {
        super::aggregate::Scope::UnknownClient => w::unknown_client(lang).into(),
        other => other.to_string(),
    }
}

/// Longest value an alert shows, in characters: a GeoIP organisation or a
/// store's error can be long, and a chat message has a size limit.
const VALUE_MAX: usize = 300;

/// Control characters (line breaks included), bidirectional controls
/// (U+061C, U+200E-F, U+202A-E, U+2066-9) and the line and paragraph
/// separators (U+2028-9) become spaces, as in the log: one value stays one
/// line, read in its own order, in every format. At most [`VALUE_MAX`]
/// characters.
pub fn plain(s: &str) -> String {
    let mut out: String = s
        .chars()
        .take(VALUE_MAX + 1)
        .map(|c| {
            let bidi = matches!(c, '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{2028}' | '\u{2029}');
            if c.is_control() || bidi { ' ' } else { c }
        })
        .collect();
    if out.chars().count() > VALUE_MAX {
        out = out.chars().take(VALUE_MAX - 1).collect();
        out.push('…');
    }
    out
}

/// Beginnings that mail and chat clients turn into links: a scheme with
/// its colon, `www.`.
const LINK_STARTS: [&str; 10] = [
    "https:",
    "http:",
    "ftp:",
    "mailto:",
    "javascript:",
    "data:",
    "file:",
    "tel:",
    "sms:",
    "www.",
];

/// [`plain`], defanged the way security teams write addresses they do not
/// want opened: `scheme:` becomes `scheme[:]` (any `://` becomes `[:]//`),
/// `www.` becomes `www[.]`, `@` becomes `[@]`. Text the client chose (and
/// a GeoIP organisation, which whoever registers an AS chooses) never
/// becomes a link a reader clicks. A bare domain (`evil.example/x`) is
/// left: some clients link it, and writing every dot `[.]` would make
/// user agents unreadable (docs/security.md says so).
pub fn defang(s: &str) -> String {
    let p = plain(s);
    let lower = p.to_ascii_lowercase();
    let mut out = String::with_capacity(p.len() + 8);
    let mut i = 0;
    while i < p.len() {
        let word_start = i == 0 || !p[..i].ends_with(|c: char| c.is_ascii_alphanumeric());
        if word_start && let Some(start) = LINK_STARTS.iter().find(|s| lower[i..].starts_with(**s))
        {
            let (head, mark) = start.split_at(start.len() - 1);
            out.push_str(&p[i..i + head.len()]);
            out.push('[');
            out.push_str(mark);
            out.push(']');
            i += start.len();
            continue;
        }
        if lower[i..].starts_with("://") {
            out.push_str("[:]//");
            i += 3;
            continue;
        }
        let c = p[i..].chars().next().unwrap_or(' ');
        if c == '@' {
            out.push_str("[@]");
        } else {
            out.push(c);
        }
        i += c.len_utf8();
    }
    out
}

/// A lock's length in the alert's words (used by PagerDuty's details).
pub fn lock_words(d: Duration, lang: Lang) -> String {
    words::duration(d, lang)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn tokyo() -> Voice {
        Voice {
            lang: Lang::Ja,
            zone: TimeZone::get("Asia/Tokyo").expect("tzdb"),
        }
    }

    #[test]
    fn an_attempt_is_worded_in_the_sinks_language_and_zone() {
        let mut a = Attempt::example();
        // 2026-12-07T12:10:00Z
        a.at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_645_400);
        a.user_agent = "evil\r\nhttps://phish.example/x".into();
        let m = message(&Alert::Attempt(Arc::new(a)), &tokyo(), "pod-1", "rb#x");
        assert_eq!(
            m.title,
            "許可されていないネットワークからのログインを遮断しました：203.0.113.7（ルール login）"
        );
        assert_eq!(m.when, "2026-12-07 21:10 JST");
        assert_eq!(m.kind, "attempt");
        assert_eq!(m.severity, Severity::Warning);
        let ua = m.facts.iter().find(|f| f.label == "ユーザーエージェント");
        assert_eq!(
            ua.map(|f| f.value.as_str()),
            Some("evil  https[:]//phish.example/x")
        );
        assert!(m.note.is_none());
    }

    #[test]
    fn report_only_is_said_under_the_title_and_is_not_urgent() {
        let mut a = Attempt::example();
        a.enforced = false;
        let m = message(&Alert::Attempt(Arc::new(a)), &Voice::default(), "i", "");
        assert!(m.title.starts_with("Report-only"));
        assert!(m.note.is_some_and(|n| n.contains("forwarded")));
        assert_eq!(m.severity, Severity::Info);
    }

    #[test]
    fn a_day_with_nothing_to_say_is_one_quiet_line() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_688_000);
        let d = crate::alerts::digest::Digest {
            tally: crate::alerts::digest::Tally::new(t - Duration::from_secs(86_400)),
            to: t,
            extras: crate::alerts::digest::Extras::default(),
            replicas: Some(3),
        };
        let m = message(&Alert::Digest(Arc::new(d)), &tokyo(), "i", "rb");
        assert_eq!(m.title, "netwarden 日次レポート：特記事項はありません");
        assert!(m.note.is_some_and(|n| n.contains("ありませんでした")));
        assert_eq!(
            m.facts
                .iter()
                .map(|f| (f.label, f.value.as_str()))
                .collect::<Vec<_>>(),
            [
                ("期間", "2026-12-07 09:00 JST – 2026-12-08 09:00 JST"),
                ("集計対象", "3台のレプリカ")
            ]
        );
        assert_eq!(m.severity, Severity::Info);
    }

    #[test]
    fn links_and_reordering_characters_are_taken_out_of_client_text() {
        assert_eq!(
            defang("Go www.evil.example/reset or mailto:a@evil.example"),
            "Go www[.]evil.example/reset or mailto[:]a[@]evil.example"
        );
        assert_eq!(
            defang("HTTPS://x javascript:alert(1) https:evil.example/d x://y"),
            "HTTPS[:]//x javascript[:]alert(1) https[:]evil.example/d x[:]//y"
        );
        // Not at a word's start: left as it is.
        assert_eq!(defang("ahttp:x swww.y"), "ahttp:x swww.y");
        assert_eq!(plain("a\u{202e}gnp.exe\u{2028}- b"), "a gnp.exe - b");
        assert_eq!(plain(&"x".repeat(1000)).chars().count(), VALUE_MAX);
        assert!(plain(&"x".repeat(1000)).ends_with('…'));
    }

    #[test]
    fn a_period_names_its_day_once() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_645_400);
        let z = TimeZone::get("Asia/Tokyo").expect("tzdb");
        assert_eq!(
            period(t - Duration::from_secs(420), t, &z),
            "2026-12-07 21:03 JST – 21:10"
        );
        assert_eq!(
            period(t - Duration::from_secs(86_400), t, &z),
            "2026-12-06 21:10 JST – 2026-12-07 21:10 JST"
        );
    }
}
