//! Located problems in a policy: `file:line:col: error: message`, the source
//! line with a caret, and a `help:` that says how to fix it. Only the one
//! offending line is shown, never the whole file.

use std::fmt;
use std::path::{Path, PathBuf};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Error,
    Warning,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        })
    }
}

/// One problem, located in the policy or in a file it references.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub file: PathBuf,
    /// 1-based; 0 when the problem has no place in a file (an unreadable file).
    pub line: u32,
    /// 1-based, in characters.
    pub column: u32,
    pub message: String,
    pub help: Option<String>,
    /// The offending source line, for the caret display.
    pub source_line: Option<String>,
}

impl Diagnostic {
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let file = self.file.display();
        if self.line == 0 {
            write!(f, "{file}: {}: {}", self.severity, self.message)?;
        } else {
            write!(
                f,
                "{file}:{}:{}: {}: {}",
                self.line, self.column, self.severity, self.message
            )?;
        }
        if let Some(src) = &self.source_line {
            let gutter = self.line.to_string().len();
            // Long lines are cut so that a huge generated line is not echoed.
            let shown: String = src.chars().take(160).collect();
            write!(f, "\n {:>gutter$} | {shown}", self.line)?;
            let pad = usize::try_from(self.column.saturating_sub(1))
                .unwrap_or(0)
                .min(160);
            write!(f, "\n {:>gutter$} | {:pad$}^", "", "")?;
        }
        if let Some(help) = &self.help {
            write!(f, "\n  help: {help}")?;
        }
        Ok(())
    }
}

/// Collects diagnostics for one source text.
pub struct Collector<'a> {
    file: &'a Path,
    src: &'a str,
    pub diagnostics: Vec<Diagnostic>,
}

impl<'a> Collector<'a> {
    pub fn new(file: &'a Path, src: &'a str) -> Self {
        Self {
            file,
            src,
            diagnostics: Vec::new(),
        }
    }

    pub fn push(
        &mut self,
        severity: Severity,
        line: u32,
        column: u32,
        message: String,
        help: Option<String>,
    ) {
        let source_line = (line > 0)
            .then(|| {
                self.src
                    .lines()
                    .nth(usize::try_from(line - 1).unwrap_or(usize::MAX))
            })
            .flatten()
            .map(redact);
        self.diagnostics.push(Diagnostic {
            severity,
            file: self.file.to_path_buf(),
            line,
            column,
            message,
            help,
            source_line,
        });
    }

    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }
}

/// A source line as a diagnostic shows it, with what may be a secret
/// hidden: the value of a key that names one (`token`, `secret`,
/// `password`, `…key`, `url`; not the `…_env` and `…_file` keys that name
/// where a secret is) and the path of any URL (a webhook's path is its
/// secret). A secret pasted into the policy must not reach CI logs through
/// `check` (the red-team review of issue 28).
pub fn redact(line: &str) -> String {
    // A comment may hold anything: shown as `# …`.
    let line = match line
        .find(" #")
        .or_else(|| line.starts_with('#').then_some(0))
    {
        Some(i) => format!("{} # …", &line[..i]),
        None => line.to_string(),
    };
    let line = redact_urls(&line);
    let mut out = String::with_capacity(line.len());
    let mut rest = line.as_str();
    while let Some(i) = rest.find(": ") {
        let (before, after) = rest.split_at(i);
        out.push_str(before);
        out.push_str(": ");
        let after = &after[2..];
        let key: String = before
            .trim_end_matches(['"', '\''])
            .chars()
            .rev()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<String>()
            .to_ascii_lowercase();
        let value_end = value_end(after);
        let env_value = after[..value_end].trim().trim_matches(['"', '\'']);
        let odd_env = key.ends_with("_env") && !is_env_like(env_value);
        if (secretive(&key) || odd_env) && value_end > 0 {
            out.push_str("<hidden>");
            rest = &after[value_end..];
        } else {
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

fn secretive(key: &str) -> bool {
    if key.ends_with("_env") || key.ends_with("_file") || key.is_empty() {
        return false;
    }
    [
        "secret",
        "token",
        "password",
        "passwd",
        "pwd",
        "pass",
        "credential",
        "private",
        "auth",
        "key",
        "signing",
        "bearer",
        "cookie",
        "session",
        "smtp",
        "dsn",
    ]
    .iter()
    .any(|w| key.contains(w))
        || key == "url"
        || key.ends_with("_url")
}

/// A conventional variable name (`NETWARDEN_SMTP_PASSWORD`); anything
/// else under a `…_env` key may be the secret itself.
fn is_env_like(v: &str) -> bool {
    let mut b = v.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_uppercase() || c == b'_')
        && b.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == b'_')
}

/// Where a YAML value written after `key: ` ends: its closing quote, else
/// a flow separator (`,` `}` `]`) or a comment, else the line's end.
fn value_end(v: &str) -> usize {
    let t = v.trim_start();
    let lead = v.len() - t.len();
    if let Some(q) = t.chars().next().filter(|c| *c == '"' || *c == '\'') {
        return t[1..].find(q).map_or(v.len(), |e| lead + e + 2);
    }
    let end = t.find([',', '}', ']', '#']).map_or(v.len(), |e| lead + e);
    // The spaces before a separator stay.
    lead + v[lead..end].trim_end().len()
}

/// Every `scheme://host/path…` with its path (and any user information)
/// replaced: `https://hooks.slack.com/…`.
fn redact_urls(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(i) = rest.find("://") {
        out.push_str(&rest[..i + 3]);
        let after = &rest[i + 3..];
        let end = after
            .find(|c: char| c.is_whitespace() || "\"',}]".contains(c))
            .unwrap_or(after.len());
        let url = &after[..end];
        let host = url.rsplit_once('@').map_or(url, |(_, h)| h);
        let host_end = host.find(['/', '?', '#']).unwrap_or(host.len());
        out.push_str(&host[..host_end]);
        if host_end < host.len() || host.len() < url.len() {
            out.push_str("/…");
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// "did you mean 'office'?" for a misspelt name, from the names that exist:
/// the nearest by edit distance, or a name the wrong one is the start of
/// (`tor_exit` for `tor_exit_node`).
pub fn did_you_mean<'n>(wrong: &str, names: impl IntoIterator<Item = &'n str>) -> Option<String> {
    closest(wrong, names).map(|n| format!("did you mean '{n}'?"))
}

/// The name `wrong` is most likely a misspelling of, if any is near.
pub fn closest<'n>(wrong: &str, names: impl IntoIterator<Item = &'n str>) -> Option<&'n str> {
    names
        .into_iter()
        .filter_map(|n| {
            let d = strsim::damerau_levenshtein(wrong, n);
            let near = d <= 2.max(n.len() / 3) && d < n.len().max(wrong.len());
            let prefix = wrong.len() >= 3 && n.starts_with(wrong);
            (near || prefix).then_some((d, n))
        })
        .min_by_key(|&(d, _)| d)
        .map(|(_, n)| n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_in_a_shown_line_are_hidden() {
        assert_eq!(
            redact(
                r#"    - { name: s, type: slack, url: "https://hooks.slack.com/services/T0/B0/SECRET" }"#
            ),
            r#"    - { name: s, type: slack, url: <hidden> }"#
        );
        assert_eq!(
            redact(r#"    - { name: b, type: webhook, url_env: "https://example.com/SECRET" }"#),
            r#"    - { name: b, type: webhook, url_env: <hidden> }"#
        );
        assert_eq!(
            redact("      routing_key: R0UT1NGSECRET"),
            "      routing_key: <hidden>"
        );
        assert_eq!(
            redact("    - { type: pagerduty, routing_key: R0UT1NGSECRET }"),
            "    - { type: pagerduty, routing_key: <hidden> }"
        );
        assert_eq!(
            redact("    - { name: x, password: hunter2, token: 'abc, def', to: [a@example.com] }"),
            "    - { name: x, password: <hidden>, token: <hidden>, to: [a@example.com] }"
        );
        assert_eq!(
            redact("  upstream: http://user:pw@127.0.0.1:3000"),
            "  upstream: http://127.0.0.1:3000/…"
        );
        assert_eq!(
            redact(
                r#"    - { "routing_key": "Q", password_env: "hunter2 SECRET!" } # token xoxb-1"#
            ),
            r#"    - { "routing_key": <hidden>, password_env: <hidden> } # …"#
        );
        assert_eq!(
            redact("    smtp: user:S@mail.example.com:587"),
            "    smtp: <hidden>"
        );
        // What names a secret's place, and ordinary lines, stay.
        for plain in [
            "    - { name: ops, type: webhook, url_env: NETWARDEN_WEBHOOK_URL }",
            "  office: [203.0.113.0/24]",
            "      private_key_file: /run/secrets/key.pem",
            "  - { name: login, paths: [/login], allow_from: [office] }",
        ] {
            assert_eq!(redact(plain), plain);
        }
    }

    #[test]
    fn renders_location_snippet_caret_and_help() {
        let src = "rules:\n  - allow_from: [offce]\n";
        let mut c = Collector::new(Path::new("policy.yaml"), src);
        c.push(
            Severity::Error,
            2,
            18,
            "rule 'login': unknown network 'offce'".into(),
            did_you_mean("offce", ["office", "vpn"]),
        );
        let text = c.diagnostics[0].to_string();
        assert_eq!(
            text,
            "policy.yaml:2:18: error: rule 'login': unknown network 'offce'\n \
             2 |   - allow_from: [offce]\n   |                  ^\n  help: did you mean 'office'?"
        );
    }

    #[test]
    fn suggestions_only_for_near_names() {
        assert_eq!(
            did_you_mean("vnp", ["vpn", "office"]).as_deref(),
            Some("did you mean 'vpn'?")
        );
        assert_eq!(did_you_mean("xyz", ["vpn", "office"]), None);
    }
}
