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
            .map(str::to_owned);
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
