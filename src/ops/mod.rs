//! The operator's side: what `netwarden status` shows of a running guard,
//! and what `netwarden report` makes of a day of decision logs,
//! put together from its admin API's answers and its policy file. Pure:
//! JSON and the policy in, text or JSON out; fetching is the CLI's.

pub mod report;
pub mod status;

use std::fmt::Write as _;

/// Text from the admin listener, a log or a policy file, safe to print on
/// a terminal: C0 and C1 controls (escape sequences, line breaks), the
/// bidirectional controls and Unicode's line separators (what the logs
/// escape too, [`crate::telemetry::json`]) written as escapes, so that no
/// value can move the cursor, retitle the window, reorder what is shown or
/// start a line that looks like the tool's own (red-team review of
/// issue 24).
pub fn printable(text: &str) -> String {
    escape(text, false)
}

/// [`printable`] for a whole page: its own line breaks kept.
pub fn printable_page(text: &str) -> String {
    escape(text, true)
}

/// JSON for tools that is safe on a terminal too: the characters
/// [`printable`] escapes, which serde leaves raw inside strings (C1 and
/// bidirectional controls, line separators), written as `\uXXXX`; the
/// JSON reads back the same.
pub fn printable_json(json: &str) -> String {
    if !json.chars().any(crate::telemetry::json::hidden) {
        return json.to_string();
    }
    let mut out = String::with_capacity(json.len() + 16);
    for c in json.chars() {
        if crate::telemetry::json::hidden(c) {
            let _ = write!(out, "\\u{:04x}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    out
}

fn escape(text: &str, keep_lines: bool) -> String {
    if !text
        .chars()
        .any(|c| c.is_control() || crate::telemetry::json::hidden(c))
    {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if keep_lines && c == '\n' {
            out.push(c);
        } else if c.is_control() || crate::telemetry::json::hidden(c) {
            let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_bidi_and_separators_are_escaped() {
        assert_eq!(printable("plain 日本語"), "plain 日本語");
        assert_eq!(
            printable("a\u{1b}[2J\u{9b}31m\u{202e}b\u{2028}c\nd"),
            "a\\u{1b}[2J\\u{9b}31m\\u{202e}b\\u{2028}c\\u{a}d"
        );
        assert_eq!(printable_page("one\ntwo\r\u{7}"), "one\ntwo\\u{d}\\u{7}");
        let j = serde_json::json!({"x": "a\u{202e}b\u{2028}\u{9b}"}).to_string();
        let safe = printable_json(&j);
        assert_eq!(safe, r#"{"x":"a\u202eb\u2028\u009b"}"#);
        let back: serde_json::Value = serde_json::from_str(&safe).expect("JSON");
        assert_eq!(back["x"], "a\u{202e}b\u{2028}\u{9b}");
    }
}
