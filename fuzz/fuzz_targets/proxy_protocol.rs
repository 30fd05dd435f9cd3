//! A PROXY protocol v1/v2 header, as a trusted load balancer (or anyone who
//! can reach a `proxy_protocol: true` listener) sends it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netwarden::proxy::proxy_protocol;

fuzz_target!(|header: &[u8]| {
    // Any outcome but a panic; an address, if any, is a real one.
    if let Ok(Some(source)) = proxy_protocol::parse(header) {
        let _ = source.ip().to_string();
    }
});
