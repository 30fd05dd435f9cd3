//! Address helpers that the engine and the GeoIP lookups share. A leaf:
//! it imports nothing of netwarden's, so both can use it without importing
//! each other.

use std::net::IpAddr;

/// IPv4-mapped IPv6 (`::ffff:a.b.c.d`) becomes the IPv4 address, so that it
/// matches IPv4 networks; the deprecated IPv4-compatible form (`::a.b.c.d`)
/// stays IPv6 (RFC 4291 §2.5.5).
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_canonical(),
        v4 => v4,
    }
}
