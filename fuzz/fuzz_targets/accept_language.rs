//! `Accept-Language` negotiation on hostile header lines: never a panic,
//! always an offered language or the fallback, and the same answer whether
//! the ranges come on one line or on several (RFC 9110 §5.3).
#![no_main]

use libfuzzer_sys::fuzz_target;
use netwarden::policy::pages::{Lang, PagesSettings};
use netwarden::proxy::pages::negotiate;

fuzz_target!(|input: (Vec<&[u8]>, bool, bool)| {
    let (lines, ja_first, fallback_ja) = input;
    let offered = if ja_first {
        vec![Lang::Ja, Lang::En]
    } else {
        vec![Lang::En]
    };
    let fallback = if fallback_ja && ja_first {
        Lang::Ja
    } else {
        Lang::En
    };
    let pages = PagesSettings::offering(offered.clone(), fallback);
    let got = negotiate(lines.iter().copied(), &pages);
    assert!(offered.contains(&got) || got == fallback);
    // Lines of valid UTF-8 without commas inside ranges join with ", ".
    if lines.iter().all(|l| std::str::from_utf8(l).is_ok()) {
        let joined = lines.join(&b", "[..]);
        assert_eq!(negotiate(std::iter::once(&joined[..]), &pages), got);
    }
});
