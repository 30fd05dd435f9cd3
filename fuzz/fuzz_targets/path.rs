//! Request paths and path patterns: normalization (RFC 3986 §5.2.4 dot
//! segments, percent-decoding, the rejections) and matching.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netwarden::engine::path::{PathPattern, normalize};

fuzz_target!(|input: (&str, &str)| {
    let (path, pattern) = input;
    if let Ok(normal) = normalize(path) {
        // What is forwarded is what was decided on: normal, and stable.
        assert!(normal.starts_with('/'), "{path:?} -> {normal:?}");
        let again = normalize(&normal).expect("a normal path is accepted");
        assert_eq!(again, normal, "normalize is not idempotent on {path:?}");
        for segment in normal.split('/') {
            assert!(segment != "." && segment != "..", "{path:?} -> {normal:?}");
        }
        if let Ok(p) = PathPattern::parse(pattern) {
            let _ = p.matches(&normal, false);
            let _ = p.matches(&normal, true);
        }
    }
});
