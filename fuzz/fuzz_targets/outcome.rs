//! A sign-in's outcome from a response head: the `Location` glob against a
//! plain recursive matcher, and classification never panics on hostile
//! headers (the console's answer is not trusted either).
#![no_main]

use libfuzzer_sys::fuzz_target;
use netwarden::engine::outcome::{OutcomeSpec, Patterns, classify, glob};

/// `*` is any run of bytes: the obvious recursive definition.
fn reference(p: &[u8], t: &[u8]) -> bool {
    match p.split_first() {
        None => t.is_empty(),
        Some((b'*', rest)) => (0..=t.len()).any(|i| reference(rest, &t[i..])),
        Some((c, rest)) => t.first() == Some(c) && reference(rest, &t[1..]),
    }
}

fuzz_target!(|input: (&str, &str, u16, &[u8])| {
    let (pattern, text, status, header) = input;
    // The reference is exponential: keep it to small inputs.
    if pattern.len() <= 12 && text.len() <= 24 {
        assert_eq!(
            glob(pattern, text),
            reference(pattern.as_bytes(), text.as_bytes()),
            "{pattern:?} {text:?}"
        );
    }
    let spec = OutcomeSpec {
        failure: Patterns {
            status: vec![401],
            location: vec![pattern.to_string()],
            header: Some(("x-login".into(), Some("failed".into()))),
        },
        success: Some(Patterns {
            status: vec![200],
            location: vec![],
            header: None,
        }),
    };
    let _ = classify(&spec, status, |name| match name {
        "location" | "x-login" => Some(header),
        _ => None,
    });
});
