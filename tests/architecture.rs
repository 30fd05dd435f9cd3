//! Arrows point one way (STYLE.md): a module imports only modules below it
//! in the request path's order, never one above or beside it that imports
//! it back. Test code is exempt: it may build a policy to test the engine.

use std::collections::BTreeSet;
use std::path::Path;

/// Lowest first. A module may use the ones before it.
const LAYERS: &[&str] = &[
    "addr",
    "files",
    "outbound",
    "tls",
    "geo",
    "engine",
    "lists",
    "policy",
    "words",
    "diff",
    "telemetry",
    "lockout",
    "alerts",
    "feeds",
    "identity",
    "replay",
    "ops",
    "proxy",
    "demo",
];

/// The files of top-level module `name`, without their test modules.
fn sources(name: &str) -> Vec<(String, String)> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut out = Vec::new();
    let dir = src.join(name);
    let mut files = vec![src.join(format!("{name}.rs"))];
    if dir.is_dir() {
        let mut stack = vec![dir];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).expect("readable src dir") {
                let p = e.expect("dir entry").path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.extension().is_some_and(|x| x == "rs") {
                    files.push(p);
                }
            }
        }
    }
    for f in files {
        let Ok(text) = std::fs::read_to_string(&f) else {
            continue;
        };
        // Everything from the first test module on is test code.
        let code = text.split("#[cfg(test)]").next().unwrap_or("").to_string();
        out.push((f.display().to_string(), code));
    }
    out
}

/// Top-level modules named as `crate::x` in code (not in comments).
fn imports(code: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for line in code.lines() {
        let line = line.trim_start();
        if line.starts_with("//") {
            continue;
        }
        let mut rest = line;
        while let Some(i) = rest.find("crate::") {
            rest = &rest[i + "crate::".len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            found.insert(name);
        }
    }
    found
}

#[test]
fn modules_import_only_modules_below_them() {
    let mut wrong = Vec::new();
    let mut seen = 0;
    for (rank, name) in LAYERS.iter().enumerate() {
        for (file, code) in sources(name) {
            seen += 1;
            for used in imports(&code) {
                let Some(used_rank) = LAYERS.iter().position(|l| *l == used) else {
                    continue;
                };
                if used_rank > rank {
                    wrong.push(format!("{file} uses crate::{used} (above {name})"));
                }
            }
        }
    }
    assert!(seen > 40, "found only {seen} source files: is src/ there?");
    assert!(
        wrong.is_empty(),
        "arrows pointing up:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_import_scan_sees_an_upward_arrow() {
    let code = "// crate::proxy in a comment\nuse crate::policy::Policy;\n";
    let found = imports(code);
    assert!(found.contains("policy"));
    assert!(!found.contains("proxy"));
}
