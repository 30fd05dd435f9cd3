//! A [`Report`] for people (text, Markdown for a pull request) and for
//! programs (JSON): "now allowed" first, then "now denied", then "same
//! decision, other rule"; then grants and settings.

use std::fmt::Write as _;

use serde_json::{Value, json};

use super::{Change, Kind, Report, Request, Verdict, count_text};

/// CIDRs shown per change; the rest are counted.
const SHOWN_NETS: usize = 8;
/// Request classes shown per change; the rest are counted.
const SHOWN_REQUESTS: usize = 12;

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Same => "same",
            Verdict::Narrower => "narrower",
            Verdict::Wider => "wider",
        }
    }

    fn words(self) -> &'static str {
        match self {
            Verdict::Same => "no change in who gets in",
            Verdict::Narrower => "narrower: some requests are now denied, none newly allowed",
            Verdict::Wider => "WIDER: some requests are now allowed, or more is believed",
        }
    }
}

/// `deny by 'console'`, with the report-only rule that would deny.
fn outcome(o: &super::Outcome) -> String {
    let mut s = format!("{} by '{}'", o.action, o.rule);
    if let Some(r) = &o.report {
        let _ = write!(s, " (report-only '{r}' would deny)");
    }
    s
}

fn heading(kind: Kind) -> &'static str {
    match kind {
        Kind::NowAllowed => "now allowed",
        Kind::NowDenied => "now denied",
        Kind::OtherRule => "same decision, other rule",
    }
}

fn addresses(c: &Change) -> String {
    let nets = c.addresses.to_nets();
    let mut s: Vec<String> = nets
        .iter()
        .take(SHOWN_NETS)
        .map(ToString::to_string)
        .collect();
    if nets.len() > SHOWN_NETS {
        s.push(format!("... ({} more)", nets.len() - SHOWN_NETS));
    }
    let everyone = c.addresses == crate::engine::prefix::RangeSet::everything();
    let mut out = if everyone {
        "every address".to_string()
    } else {
        format!(
            "{} ({} addresses)",
            s.join(", "),
            count_text(c.addresses.address_count())
        )
    };
    if let Some(n) = &c.network {
        let _ = write!(out, ", network '{n}'");
    }
    out
}

fn request(r: &Request) -> String {
    let mut s = format!("{} {}", r.method, r.path);
    if let Some(h) = &r.host {
        let _ = write!(s, " (host {h})");
    }
    if let Some(t) = r.from {
        let _ = write!(s, " from {t}");
    }
    if let Some(a) = &r.account {
        let _ = write!(s, ", {a}");
    }
    if let Some(i) = &r.identity {
        let _ = write!(s, ", {i}");
    }
    if !r.facts.is_empty() {
        let _ = write!(s, " [{}]", r.facts.join("; "));
    }
    s
}

/// A change's request classes folded for people: methods of the same
/// request together ("any method" when all), then paths of the same
/// methods together ("every path", "every path but /healthz").
fn requests(r: &Report, c: &Change) -> Vec<String> {
    use std::collections::BTreeMap;
    // (path, rest) -> methods.
    let mut by_request: BTreeMap<(String, Request), Vec<String>> = BTreeMap::new();
    for q in &c.requests {
        let rest = Request {
            method: String::new(),
            path: String::new(),
            probe: String::new(),
            ..q.clone()
        };
        by_request
            .entry((q.path.clone(), rest))
            .or_default()
            .push(q.method.clone());
    }
    // (methods text, rest) -> paths.
    let mut by_methods: BTreeMap<(String, Request), Vec<String>> = BTreeMap::new();
    for ((path, rest), mut methods) in by_request {
        methods.sort();
        methods.dedup();
        let all = methods.len() == r.methods.len();
        let text = if all {
            "any method".to_string()
        } else {
            methods
                .iter()
                .map(|m| {
                    if m == super::OTHER_METHOD {
                        "other methods"
                    } else {
                        m
                    }
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        by_methods.entry((text, rest)).or_default().push(path);
    }
    let mut out = Vec::new();
    for ((methods, rest), mut paths) in by_methods {
        paths.sort();
        paths.dedup();
        let missing: Vec<&String> = r.paths.iter().filter(|p| !paths.contains(p)).collect();
        let paths_text = if missing.is_empty() {
            "every path".to_string()
        } else if missing.len() <= 3 && paths.len() > missing.len() {
            format!(
                "every path but {}",
                missing
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        } else if paths.len() > 6 {
            format!(
                "{} and {} more paths",
                paths[..6].join(", "),
                paths.len() - 6
            )
        } else {
            paths.join(", ")
        };
        let q = Request {
            method: methods,
            path: paths_text,
            ..rest
        };
        out.push(request(&q));
    }
    if out.len() > SHOWN_REQUESTS {
        let more = out.len() - SHOWN_REQUESTS;
        out.truncate(SHOWN_REQUESTS);
        out.push(format!("... and {more} more"));
    }
    out
}

fn ordered(r: &Report) -> Vec<&Change> {
    let mut v: Vec<&Change> = r.changes.iter().collect();
    v.sort_by_key(|c| c.kind);
    v
}

/// Plain text for a terminal.
pub fn text(r: &Report, old: &str, new: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "netwarden diff {old} -> {new}: {} ({} request classes decided for every address)",
        r.verdict().words(),
        r.classes
    );
    let mut last = None;
    for c in ordered(r) {
        if last != Some(c.kind) {
            let _ = writeln!(out, "\n{}:", heading(c.kind));
            last = Some(c.kind);
        }
        let _ = writeln!(out, "  {}", addresses(c));
        let _ = writeln!(
            out,
            "    was {}, now {}",
            outcome(&c.before),
            outcome(&c.after)
        );
        for q in requests(r, c) {
            let _ = writeln!(out, "    {q}");
        }
    }
    if !r.grants.is_empty() {
        let _ = writeln!(out, "\ngrants:");
        for g in &r.grants {
            let _ = writeln!(
                out,
                "  network '{}' {}: until {} -> {}{}",
                g.network,
                g.net,
                g.before.map_or_else(|| "(none)".into(), |t| t.to_string()),
                g.after
                    .map_or_else(|| "(removed)".into(), |t| t.to_string()),
                if g.wider() { " (lasts longer)" } else { "" }
            );
        }
    }
    if !r.settings.is_empty() {
        let _ = writeln!(out, "\nsettings:");
        for s in &r.settings {
            let _ = writeln!(
                out,
                "  {}: {}{}",
                s.name,
                s.detail,
                if s.wider { " (wider)" } else { "" }
            );
        }
    }
    if r.facts_left_out > 0 {
        let _ = writeln!(
            out,
            "\nnote: {} GeoIP fact dimension(s) were left out to stay within {} combinations: their tests were taken as false",
            r.facts_left_out,
            super::MAX_WORLDS
        );
    }
    out
}

/// Markdown to paste into a pull request.
pub fn markdown(r: &Report, old: &str, new: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "### netwarden diff: {}\n", r.verdict().words());
    let _ = writeln!(
        out,
        "`{old}` → `{new}`; {} request classes decided for every address.\n",
        r.classes
    );
    let mut last = None;
    for c in ordered(r) {
        if last != Some(c.kind) {
            let _ = writeln!(out, "#### {}\n", heading(c.kind));
            let _ = writeln!(out, "| addresses | before | after | requests |");
            let _ = writeln!(out, "|---|---|---|---|");
            last = Some(c.kind);
        }
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} |",
            md(&addresses(c)),
            md(&outcome(&c.before)),
            md(&outcome(&c.after)),
            requests(r, c)
                .iter()
                .map(|q| format!("`{}`", q.replace('`', "'")))
                .collect::<Vec<_>>()
                .join("<br>")
        );
        // A table ends at the next heading.
        if ordered(r)
            .iter()
            .skip_while(|x| !std::ptr::eq(**x, c))
            .nth(1)
            .is_none_or(|n| n.kind != c.kind)
        {
            out.push('\n');
        }
    }
    if !r.grants.is_empty() {
        let _ = writeln!(out, "#### grants\n");
        for g in &r.grants {
            let _ = writeln!(
                out,
                "- `{}` in `{}`: until {} → {}{}",
                g.net,
                g.network,
                g.before.map_or_else(|| "(none)".into(), |t| t.to_string()),
                g.after
                    .map_or_else(|| "(removed)".into(), |t| t.to_string()),
                if g.wider() { " **(lasts longer)**" } else { "" }
            );
        }
        out.push('\n');
    }
    if !r.settings.is_empty() {
        let _ = writeln!(out, "#### settings\n");
        for s in &r.settings {
            let _ = writeln!(
                out,
                "- `{}`: {}{}",
                s.name,
                md(&s.detail),
                if s.wider { " **(wider)**" } else { "" }
            );
        }
        out.push('\n');
    }
    out
}

fn md(s: &str) -> String {
    s.replace('|', "\\|")
}

/// What a reload logs and GET /policy keeps of a diff.
#[derive(Clone, Debug)]
pub struct Summary {
    pub verdict: &'static str,
    pub now_allowed: usize,
    pub now_denied: usize,
    pub other_rule: usize,
    /// The first few changes, one line each, "now allowed" first.
    pub first: Vec<String>,
}

/// Changes shown in a summary.
const SUMMARY_FIRST: usize = 3;

pub fn summary(r: &Report) -> Summary {
    let count = |k| r.changes.iter().filter(|c| c.kind == k).count();
    Summary {
        verdict: r.verdict().as_str(),
        now_allowed: count(Kind::NowAllowed),
        now_denied: count(Kind::NowDenied),
        other_rule: count(Kind::OtherRule),
        first: ordered(r)
            .iter()
            .filter(|c| c.kind != Kind::OtherRule)
            .take(SUMMARY_FIRST)
            .map(|c| {
                format!(
                    "{} {} ({} -> {})",
                    heading(c.kind),
                    addresses(c),
                    outcome(&c.before),
                    outcome(&c.after)
                )
            })
            .chain(
                r.settings
                    .iter()
                    .filter(|s| s.wider)
                    .map(|s| format!("{}: {}", s.name, s.detail)),
            )
            .take(SUMMARY_FIRST)
            .collect(),
    }
}

impl Summary {
    pub fn to_json(&self) -> Value {
        json!({
            "access": self.verdict,
            "now_allowed": self.now_allowed,
            "now_denied": self.now_denied,
            "other_rule": self.other_rule,
            "first": self.first,
        })
    }
}

/// One JSON object.
pub fn json(r: &Report) -> Value {
    let changes: Vec<Value> = ordered(r)
        .iter()
        .map(|c| {
            json!({
                "kind": c.kind.as_str(),
                "addresses": c.addresses.to_nets().iter().map(ToString::to_string).collect::<Vec<_>>(),
                "address_count": {
                    "ipv4": c.addresses.address_count().0,
                    "ipv6": c.addresses.address_count().1.to_string(),
                },
                "network": c.network,
                "before": { "action": c.before.action, "rule": c.before.rule, "report_rule": c.before.report },
                "after": { "action": c.after.action, "rule": c.after.rule, "report_rule": c.after.report },
                "requests": c.requests.iter().map(|q| json!({
                    "method": q.method,
                    "path": q.path,
                    "host": q.host,
                    "from": q.from.map(|t| t.to_string()),
                    "account": q.account,
                    "identity": q.identity,
                    "facts": q.facts,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({
        "verdict": r.verdict().as_str(),
        "classes": r.classes,
        "changes": changes,
        "grants": r.grants.iter().map(|g| json!({
            "network": g.network,
            "grant": g.net,
            "before": g.before.map(|t| t.to_string()),
            "after": g.after.map(|t| t.to_string()),
            "wider": g.wider(),
        })).collect::<Vec<_>>(),
        "settings": r.settings.iter().map(|s| json!({
            "name": s.name,
            "wider": s.wider,
            "detail": s.detail,
        })).collect::<Vec<_>>(),
        "facts_left_out": r.facts_left_out,
    })
}
