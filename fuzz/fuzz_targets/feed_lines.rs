//! A published list in the `lines` format (any bytes), and the judge over
//! what it yields: never a panic; what parses is canonical (sorted, no
//! duplicates), reads back the same when written out one a line, and is
//! judged "no change" against itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netwarden::lists::{Format, Limits, judge, parse};

fuzz_target!(|body: &[u8]| {
    let Ok(parsed) = parse(&Format::Lines, body) else {
        return;
    };
    let p = &parsed.prefixes;
    let again: String = p.iter().map(|n| format!("{n}\n")).collect();
    let round = parse(&Format::Lines, again.as_bytes()).expect("written prefixes parse");
    assert_eq!(&round.prefixes, p);
    let wide_open = Limits {
        widest_v4: 0,
        widest_v6: 0,
        ..Limits::default()
    };
    match judge(Some(p), p, &wide_open) {
        Ok(change) => assert!(change.is_empty()),
        Err(r) => assert!(p.is_empty() && r.code() == "empty"),
    }
});
