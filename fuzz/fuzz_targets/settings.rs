//! Values operators write in the `server:` section or pass as flags:
//! durations (`500ms`, `5m`) and upstream URLs.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netwarden::policy::server::{parse_duration, parse_upstream};

fuzz_target!(|text: &str| {
    let _ = parse_duration(text);
    if let Ok(uri) = parse_upstream(text) {
        assert!(uri.authority().is_some(), "{text:?} -> {uri}");
    }
});
