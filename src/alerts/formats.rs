//! A [`Message`] in each channel's own markup. Pure. Every value is
//! escaped for the format it is written in, whatever its origin, so that
//! text a client chose (a user agent, a Host, a path) cannot become markup:
//! no mention, link, bold or tag in any channel (docs/alerts.md,
//! "Escaping").

use std::fmt::Write as _;

use serde_json::{Value, json};

use super::message::{Message, Severity};

/// Plain text: the headline, a note, `label: value` lines, the list, the
/// instance and the runbook. The webhook's `text`, and the mail's text
/// part.
pub fn text(m: &Message) -> String {
    let mut out = format!("{}\n{}: {}\n", m.title, m.labels.time, m.when);
    if let Some(n) = m.note {
        let _ = writeln!(out, "{n}");
    }
    lines(m, &mut out, &|s| s.to_string());
    out
}

/// `label: value` lines (a label with no value heads the lines after it),
/// the list, the instance and the runbook, each value through `esc`.
fn lines(m: &Message, out: &mut String, esc: &dyn Fn(&str) -> String) {
    for f in &m.facts {
        if f.value.is_empty() {
            let _ = writeln!(out, "{}:", f.label);
        } else {
            let _ = writeln!(out, "{}: {}", f.label, esc(&f.value));
        }
    }
    if let Some((title, items)) = &m.list {
        let _ = writeln!(out, "{title}:");
        for (k, n) in items {
            let _ = writeln!(out, "  {}: {n}", esc(k));
        }
    }
    let _ = writeln!(out, "{}: {}", m.labels.instance, esc(&m.instance));
    let _ = write!(out, "{}: {}", m.labels.runbook, esc(&m.runbook));
}

/// Slack's three control characters (`&`, `<`, `>`), so that a value
/// cannot become a link or an `@channel` mention; a backquote would end
/// the inline code span values are shown in.
pub fn slack_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '`' => out.push('\''),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// A Slack-compatible incoming webhook body (`text` in mrkdwn; Mattermost
/// and Rocket.Chat read the same): values in inline code, where Slack
/// formats nothing.
pub fn slack(m: &Message) -> Value {
    let mut t = format!(
        ":rotating_light: *{}*\n• {}: `{}`\n",
        slack_escape(&m.title),
        m.labels.time,
        slack_escape(&m.when)
    );
    if let Some(n) = m.note {
        let _ = writeln!(t, "_{}_", slack_escape(n));
    }
    for f in &m.facts {
        if f.value.is_empty() {
            let _ = writeln!(t, "*{}*", f.label);
        } else {
            let _ = writeln!(t, "• {}: `{}`", f.label, slack_escape(&f.value));
        }
    }
    if let Some((title, items)) = &m.list {
        let _ = writeln!(t, "*{title}*");
        for (k, n) in items {
            let _ = writeln!(t, "  `{}`: {n}", slack_escape(k));
        }
    }
    let _ = write!(
        t,
        "_netwarden: {}_\n{}: {}",
        slack_escape(&m.instance),
        m.labels.runbook,
        slack_escape(&m.runbook)
    );
    json!({ "text": t })
}

/// Adaptive Cards' TextBlocks read a subset of Markdown: emphasis,
/// links, lists at a line's start. Its punctuation is escaped with a
/// backslash (CommonMark §2.4), and so is a list marker that opens a
/// value, so a value shows as written and never becomes a link, emphasis
/// or a list.
pub fn card_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    let rest = &s[digits..];
    let list_marker = (digits == 0 && (s.starts_with("- ") || s.starts_with("+ ")))
        || (digits > 0 && (rest == "." || rest.starts_with(". ")));
    for (i, c) in s.char_indices() {
        match c {
            '\\' | '*' | '_' | '[' | ']' | '`' | '<' | '>' | '~' | '#' => {
                out.push('\\');
                out.push(c);
            }
            '-' | '+' if i == 0 && list_marker => {
                out.push('\\');
                out.push(c);
            }
            '.' if i == digits && list_marker => out.push_str("\\."),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// A Microsoft Teams Workflows webhook ("When a Teams webhook request is
/// received") body: a message with one Adaptive Card (schema 1.4, which
/// Teams renders): the headline, when, a note, the facts as a FactSet, the
/// list, the instance and a button to the runbook when it is a web
/// address.
pub fn teams(m: &Message) -> Value {
    let colour = match m.severity {
        Severity::Critical | Severity::Error => "Attention",
        Severity::Warning => "Warning",
        Severity::Info => "Accent",
    };
    let mut body = vec![
        json!({
            "type": "TextBlock", "text": card_escape(&m.title), "wrap": true,
            "weight": "Bolder", "size": "Medium", "color": colour,
        }),
        json!({"type": "TextBlock", "text": card_escape(&m.when), "wrap": true, "isSubtle": true, "spacing": "None"}),
    ];
    if let Some(n) = m.note {
        body.push(
            json!({"type": "TextBlock", "text": card_escape(n), "wrap": true, "color": "Warning"}),
        );
    }
    let mut facts = Vec::new();
    for f in &m.facts {
        if f.value.is_empty() {
            if !facts.is_empty() {
                body.push(json!({"type": "FactSet", "facts": std::mem::take(&mut facts)}));
            }
            body.push(json!({"type": "TextBlock", "text": card_escape(f.label), "wrap": true, "weight": "Bolder"}));
        } else {
            facts.push(json!({"title": card_escape(f.label), "value": card_escape(&f.value)}));
        }
    }
    if !facts.is_empty() {
        body.push(json!({"type": "FactSet", "facts": facts}));
    }
    if let Some((title, items)) = &m.list {
        body.push(json!({"type": "TextBlock", "text": card_escape(title), "wrap": true, "weight": "Bolder"}));
        let facts: Vec<Value> = items
            .iter()
            .map(|(k, n)| json!({"title": card_escape(k), "value": n.to_string()}))
            .collect();
        if !facts.is_empty() {
            body.push(json!({"type": "FactSet", "facts": facts}));
        }
    }
    body.push(json!({
        "type": "TextBlock", "wrap": true, "isSubtle": true, "size": "Small",
        "text": format!("netwarden: {}", card_escape(&m.instance)),
    }));
    let mut card = json!({
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": body,
    });
    if m.runbook.starts_with("https://") || m.runbook.starts_with("http://") {
        card["actions"] = json!([{
            "type": "Action.OpenUrl", "title": m.labels.runbook, "url": m.runbook,
        }]);
    } else {
        card["body"]
            .as_array_mut()
            .map(|b| {
                b.push(json!({
                    "type": "TextBlock", "wrap": true, "isSubtle": true, "size": "Small",
                    "text": format!("{}: {}", m.labels.runbook, card_escape(&m.runbook)),
                }))
            })
            .unwrap_or_default();
    }
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": card,
        }],
    })
}

/// Chatwork's markup is square-bracket tags (`[To:1]`, `[toall]`,
/// `[/info]`) with no escape: brackets in a value become their full-width
/// forms, so a value can neither close the box nor mention anyone.
pub fn chatwork_escape(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '[' => '［',
            ']' => '］',
            c if c.is_control() => ' ',
            c => c,
        })
        .collect()
}

/// A Chatwork message body: `[info][title]…[/title]…[/info]`.
pub fn chatwork(m: &Message) -> String {
    let mut out = format!(
        "[info][title]{}[/title]{}: {}\n",
        chatwork_escape(&m.title),
        m.labels.time,
        chatwork_escape(&m.when)
    );
    if let Some(n) = m.note {
        let _ = writeln!(out, "{}", chatwork_escape(n));
    }
    lines(m, &mut out, &chatwork_escape);
    out.push_str("[/info]");
    out
}

/// LINE WORKS text messages take `<m userId="…">` mentions: angle
/// brackets in a value become their full-width forms.
pub fn line_works_escape(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '<' => '＜',
            '>' => '＞',
            c if c.is_control() => ' ',
            c => c,
        })
        .collect()
}

/// LINE WORKS' limit on a text message, in characters.
pub const LINE_WORKS_MAX: usize = 2000;

/// A LINE WORKS Bot API 2.0 text message: `{"content": {"type": "text",
/// "text": …}}`, at most [`LINE_WORKS_MAX`] characters.
pub fn line_works(m: &Message) -> Value {
    let mut t = format!(
        "■ {}\n{}: {}\n",
        line_works_escape(&m.title),
        m.labels.time,
        m.when
    );
    if let Some(n) = m.note {
        let _ = writeln!(t, "{n}");
    }
    lines(m, &mut t, &line_works_escape);
    if t.chars().count() > LINE_WORKS_MAX {
        t = t.chars().take(LINE_WORKS_MAX - 1).collect();
        t.push('…');
    }
    json!({"content": {"type": "text", "text": t}})
}

/// HTML's five special characters.
pub fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// A mail: subject, plain text and HTML.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mail {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// Longest subject, in characters: mail clients cut them anyway, and a
/// short one survives RFC 2047 encoding within header limits.
const SUBJECT_MAX: usize = 150;

/// An alert as a mail: `[netwarden] <headline>` as the subject, the text,
/// and the same as a small HTML table (inline styles only: mail clients
/// drop style sheets and scripts; no images, nothing remote).
pub fn mail(m: &Message) -> Mail {
    let mut subject = format!("[netwarden] {}", m.title);
    if subject.chars().count() > SUBJECT_MAX {
        subject = subject.chars().take(SUBJECT_MAX - 1).collect();
        subject.push('…');
    }
    let mut text = text(m);
    let _ = write!(text, "\n\n-- \n{}", m.labels.mail_footer);
    let colour = match m.severity {
        Severity::Critical | Severity::Error => "#b3261e",
        Severity::Warning => "#8a5300",
        Severity::Info => "#0b57d0",
    };
    let mut h = format!(
        "<!DOCTYPE html>\n<html lang=\"{}\"><head><meta charset=\"utf-8\"><title>{}</title></head>\n\
         <body style=\"margin:0;padding:16px;font-family:-apple-system,'Segoe UI','Hiragino Sans','Meiryo',sans-serif;color:#1f1f1f;background:#ffffff\">\n\
         <div style=\"max-width:640px;border:1px solid #dadce0;border-top:4px solid {colour};border-radius:4px;padding:16px\">\n\
         <h1 style=\"font-size:18px;margin:0 0 4px;color:{colour}\">{}</h1>\n\
         <p style=\"margin:0 0 12px;color:#5f6368;font-size:13px\">{}</p>\n",
        m.lang.tag(),
        html_escape(&m.title),
        html_escape(&m.title),
        html_escape(&m.when)
    );
    if let Some(n) = m.note {
        let _ = writeln!(
            h,
            "<p style=\"margin:0 0 12px;padding:8px;background:#fef7e0\">{}</p>",
            html_escape(n)
        );
    }
    h.push_str("<table style=\"border-collapse:collapse;font-size:14px;width:100%\">\n");
    let row = |h: &mut String, label: &str, value: &str| {
        let _ = writeln!(
            h,
            "<tr><th style=\"text-align:left;vertical-align:top;padding:4px 12px 4px 0;color:#5f6368;font-weight:normal;white-space:nowrap\">{}</th>\
             <td style=\"padding:4px 0;font-family:ui-monospace,Menlo,Consolas,monospace;word-break:break-all\">{}</td></tr>",
            html_escape(label),
            html_escape(value)
        );
    };
    for f in &m.facts {
        if f.value.is_empty() {
            let _ = writeln!(
                h,
                "<tr><th colspan=\"2\" style=\"text-align:left;padding:12px 0 4px\">{}</th></tr>",
                html_escape(f.label)
            );
        } else {
            row(&mut h, f.label, &f.value);
        }
    }
    if let Some((title, items)) = &m.list {
        let _ = writeln!(
            h,
            "<tr><th colspan=\"2\" style=\"text-align:left;padding:12px 0 4px\">{}</th></tr>",
            html_escape(title)
        );
        for (k, n) in items {
            row(&mut h, k, &n.to_string());
        }
    }
    row(&mut h, m.labels.instance, &m.instance);
    h.push_str("</table>\n");
    if m.runbook.starts_with("https://") || m.runbook.starts_with("http://") {
        let _ = writeln!(
            h,
            "<p style=\"margin:16px 0 0\"><a href=\"{}\" style=\"color:#0b57d0\">{}</a></p>",
            html_escape(&m.runbook),
            html_escape(m.labels.runbook)
        );
    } else {
        let _ = writeln!(
            h,
            "<p style=\"margin:16px 0 0;color:#5f6368\">{}: {}</p>",
            html_escape(m.labels.runbook),
            html_escape(&m.runbook)
        );
    }
    let _ = write!(
        h,
        "</div>\n<p style=\"font-size:12px;color:#5f6368\">{}</p>\n</body></html>\n",
        html_escape(m.labels.mail_footer)
    );
    Mail {
        subject,
        text,
        html: h,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::alerts::message::{Voice, message};
    use crate::alerts::{Alert, Attempt};
    use crate::words::Lang;

    /// An attempt whose every client-chosen field tries to be markup in
    /// some channel.
    fn hostile(lang: Lang) -> Message {
        let mut a = Attempt::example();
        a.user_agent = "<!channel> [toall][/info] <m userId=\"all\"> **bold** [x](https://evil.example) <b>x</b> `c`".into();
        a.host = "evil.example<script>".into();
        a.path = "/login/[To:1]".into();
        let voice = Voice {
            lang,
            ..Voice::default()
        };
        message(
            &Alert::Attempt(Arc::new(a)),
            &voice,
            "pod-1",
            "docs/operations.md#blocked-sign-in",
        )
    }

    #[test]
    fn slack_values_cannot_mention_or_link() {
        let v = slack(&hostile(Lang::En));
        let t = v["text"].as_str().expect("text");
        assert!(!t.contains("<!channel>"), "{t}");
        assert!(!t.contains("<script>"), "{t}");
        assert!(t.contains("&lt;!channel&gt;"), "{t}");
        assert!(t.contains("https[:]//evil.example"), "{t}");
    }

    #[test]
    fn chatwork_values_cannot_close_the_box_or_mention() {
        let t = chatwork(&hostile(Lang::Ja));
        assert_eq!(t.matches("[info]").count(), 1, "{t}");
        assert_eq!(t.matches("[/info]").count(), 1, "{t}");
        assert!(t.ends_with("[/info]"), "{t}");
        assert!(!t.contains("[toall]") && !t.contains("[To:1]"), "{t}");
        assert!(t.contains("［toall］"), "{t}");
        assert!(
            t.starts_with("[info][title]許可されていないネットワーク"),
            "{t}"
        );
    }

    #[test]
    fn line_works_values_cannot_mention() {
        let v = line_works(&hostile(Lang::Ja));
        let t = v["content"]["text"].as_str().expect("text");
        assert!(!t.contains("<m "), "{t}");
        assert!(t.contains("＜m userId"), "{t}");
        assert_eq!(v["content"]["type"], "text");
    }

    #[test]
    fn a_long_line_works_message_is_cut_at_the_limit() {
        let mut m = hostile(Lang::En);
        m.facts[0].value = "x".repeat(5000);
        let v = line_works(&m);
        let t = v["content"]["text"].as_str().expect("text");
        assert_eq!(t.chars().count(), LINE_WORKS_MAX);
    }

    #[test]
    fn card_values_cannot_link_or_format() {
        let v = teams(&hostile(Lang::En));
        let s = v.to_string();
        assert!(!s.contains("[x](https"), "{s}");
        assert!(s.contains(r"\\[x\\](https\\[:\\]//evil.example)"), "{s}");
        assert!(!s.contains("**bold**"), "{s}");
        let card = &v["attachments"][0]["content"];
        assert_eq!(card["type"], "AdaptiveCard");
        assert_eq!(card["version"], "1.4");
        // A relative runbook is text, not a button.
        assert!(card.get("actions").is_none());
    }

    #[test]
    fn mail_html_escapes_every_value_and_the_subject_is_one_line() {
        let m = mail(&hostile(Lang::Ja));
        assert!(!m.html.contains("<script>"), "{}", m.html);
        assert!(!m.html.contains("<b>x</b>"), "{}", m.html);
        assert!(m.html.contains("&lt;script&gt;"), "{}", m.html);
        assert!(m.html.starts_with("<!DOCTYPE html>\n<html lang=\"ja\">"));
        assert!(m.subject.starts_with("[netwarden] 許可されていない"));
        assert!(!m.subject.contains('\n') && !m.subject.contains('\r'));
        assert!(
            m.text.contains("接続元IPアドレス: 203.0.113.7"),
            "{}",
            m.text
        );
    }

    #[test]
    fn escapes_leave_ordinary_text_alone() {
        assert_eq!(chatwork_escape("Mozilla/5.0 (X11)"), "Mozilla/5.0 (X11)");
        assert_eq!(line_works_escape("a & b"), "a & b");
        assert_eq!(html_escape("a\"b'c"), "a&quot;b&#39;c");
        assert_eq!(card_escape("1.2"), "1.2");
        assert_eq!(card_escape("1. item"), r"1\. item");
        assert_eq!(card_escape("- a - b"), r"\- a - b");
        assert_eq!(card_escape("a_b*"), r"a\_b\*");
    }
}

/// docs/alerts.md shows each channel's payload as this code writes it, in
/// both languages: `NETWARDEN_WRITE_DOC_EXAMPLES=1 cargo test --lib
/// docs_show` prints the blocks to paste; without it the test checks that
/// the document holds each one verbatim.
#[cfg(test)]
mod doc_examples {
    use std::sync::Arc;
    use std::time::{Duration, SystemTime};

    use super::*;
    use crate::alerts::message::{Voice, message};
    use crate::alerts::{Alert, Attempt};
    use crate::words::Lang;

    fn example() -> Alert {
        let mut a = Attempt::example();
        // 2026-12-07T12:10:05Z
        a.at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_645_405);
        a.client = Some(std::net::IpAddr::from([198, 51, 100, 23]));
        a.peer = std::net::IpAddr::from([10, 0, 0, 5]);
        a.client_source = "header";
        a.derivation = "x-forwarded-for behind 1 trusted proxy".into();
        a.host = "console.example.com".into();
        a.user_agent = "Mozilla/5.0 (Windows NT 10.0; Win64; x64)".into();
        a.request_id = "bddaae2b1013e50b".into();
        a.facts = Some(crate::geo::Facts {
            country: Some(crate::geo::Country::parse("NL").expect("code")),
            asn: Some(64500),
            as_org: Some("ExampleNet".into()),
            ..Default::default()
        });
        Alert::Attempt(Arc::new(a))
    }

    /// A digest: a morning after a small spray and a lockout.
    fn digest() -> Alert {
        use crate::alerts::digest::{Digest, Extras, Tally};
        let to = SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_688_000);
        let mut tally = Tally::new(to - Duration::from_secs(86_400));
        let Alert::Attempt(a) = example() else {
            return example();
        };
        for (last, times) in [(23, 9), (24, 3)] {
            let mut a = (*a).clone();
            a.client = Some(std::net::IpAddr::from([198, 51, 100, last]));
            for _ in 0..times {
                tally.attempt(&a);
            }
        }
        let mut b = (*a).clone();
        b.client = Some(std::net::IpAddr::from([203, 0, 113, 9]));
        b.facts = None;
        tally.attempt(&b);
        tally.lockouts = 1;
        Alert::Digest(Arc::new(Digest {
            tally,
            to,
            extras: Extras {
                grants_ending: vec![(
                    "vpn".into(),
                    "192.0.2.7/32".into(),
                    to + Duration::from_secs(2 * 86_400 + 9 * 3600),
                )],
                disabled_sinks: Vec::new(),
                self_check: Vec::new(),
            },
            replicas: Some(3),
        }))
    }

    fn blocks() -> Vec<String> {
        let alert = example();
        let mut out = Vec::new();
        for (lang, zone) in [(Lang::En, "UTC"), (Lang::Ja, "Asia/Tokyo")] {
            let voice = Voice {
                lang,
                zone: jiff::tz::TimeZone::get(zone).expect("tzdb"),
            };
            let m = message(
                &alert,
                &voice,
                "console-7d9f-x2",
                "https://wiki.example.com/netwarden/operations#blocked-sign-in",
            );
            let pretty = |v: &Value| serde_json::to_string_pretty(v).expect("json");
            out.push(format!("```text\n{}\n```", text(&m)));
            out.push(format!("```json\n{}\n```", pretty(&slack(&m))));
            out.push(format!("```text\n{}\n```", chatwork(&m)));
            out.push(format!(
                "```text\n{}\n```",
                line_works(&m)["content"]["text"]
                    .as_str()
                    .unwrap_or_default()
            ));
            out.push(format!("```json\n{}\n```", pretty(&teams(&m))));
            let mail = mail(&m);
            out.push(format!(
                "```text\nSubject: {}\n\n{}\n```",
                mail.subject, mail.text
            ));
            let details =
                crate::alerts::payload::webhook(&alert, "console-7d9f-x2", "client", &text(&m));
            let pd = crate::alerts::pagerduty::trigger(
                &alert,
                &m,
                "<routing key>",
                "netwarden/blocked/198.51.100.23",
                details,
            );
            out.push(format!("```json\n{}\n```", pretty(&pd)));
            let d = message(
                &digest(),
                &voice,
                "console-7d9f-x2",
                "https://wiki.example.com/netwarden/operations#digest",
            );
            out.push(format!("```text\n{}\n```", text(&d)));
        }
        out
    }

    #[test]
    fn docs_show_every_channels_payload_as_the_code_writes_it() {
        let blocks = blocks();
        if let Some(dir) = std::env::var_os("NETWARDEN_WRITE_DOC_EXAMPLES") {
            // A directory: the Japanese mail's HTML part and Teams message,
            // for scripts/alert-screenshots.sh.
            let dir = std::path::PathBuf::from(dir);
            if dir.is_dir() {
                let voice = Voice {
                    lang: Lang::Ja,
                    zone: jiff::tz::TimeZone::get("Asia/Tokyo").expect("tzdb"),
                };
                let m = message(
                    &example(),
                    &voice,
                    "console-7d9f-x2",
                    "https://wiki.example.com/netwarden/operations#blocked-sign-in",
                );
                std::fs::write(dir.join("mail-ja.html"), mail(&m).html).expect("write");
                std::fs::write(dir.join("teams-ja.json"), teams(&m).to_string()).expect("write");
            }
            for b in &blocks {
                println!("{b}\n");
            }
            return;
        }
        let doc = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/alerts.md"),
        )
        .expect("docs/alerts.md");
        for b in blocks {
            assert!(
                doc.contains(&b),
                "docs/alerts.md lacks this block (NETWARDEN_WRITE_DOC_EXAMPLES=1 prints them all):\n{b}"
            );
        }
    }
}
