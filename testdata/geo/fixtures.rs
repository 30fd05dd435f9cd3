//! The test databases and what they know. `make_fixtures.rs` writes them to
//! this directory; `tests/geo_fixtures.rs` checks the committed files match.
//!
//! | database | networks |
//! |---|---|
//! | GeoLite2-Country-Test | 203.0.113.0/24 JP, 198.51.100.0/24 JP, 192.0.2.0/24 US, 2001:db8:10::/48 JP, 2001:db8:66::/48 DE |
//! | GeoLite2-ASN-Test | 203.0.113.0/24 AS64496 "Example Corp", 192.0.2.0/25 AS64500 "ExampleNet Broadband", 192.0.2.128/25 AS64501 "Rent-a-Server Hosting", 198.51.100.0/24 AS64500, 2001:db8:66::/48 AS64502 "Example IPv6 ISP" |
//! | GeoIP2-Connection-Type-Test | 203.0.113.0/24 Corporate, 192.0.2.0/26 Cable/DSL, 192.0.2.64/26 Cellular, 198.51.100.0/25 Cable/DSL, 2001:db8:66::/48 Cable/DSL |
//! | GeoIP2-Anonymous-IP-Test | 192.0.2.128/27 hosting provider, 192.0.2.160/28 Tor exit node, 192.0.2.176/28 public proxy, 2001:db8:66:1::/64 anonymous VPN |
//! | vendor-country (layout `country_code`) | 203.0.113.0/24 JP, 192.0.2.0/24 US |
//! | vendor-country-empty-description (layout `country_code`; metadata `description: {}`, `languages: []`, as Go's mmdbwriter writes them) | 203.0.113.0/24 JP, 192.0.2.0/24 US, 2001:db8:66::/48 DE |
//! | GeoLite2-Country-IPv4-Test (IPv4-only) | 203.0.113.0/24 JP |

#![allow(dead_code)]

use super::mmdb_writer::{Value, Writer};

fn country(code: &str) -> Value {
    Value::map([("country", Value::map([("iso_code", Value::str(code))]))])
}

fn asn(n: u32, org: &str) -> Value {
    Value::map([
        ("autonomous_system_number", Value::U32(n)),
        ("autonomous_system_organization", Value::str(org)),
    ])
}

fn conn(t: &str) -> Value {
    Value::map([("connection_type", Value::str(t))])
}

fn anon(flag: &str) -> Value {
    Value::map([
        ("is_anonymous", Value::Bool(true)),
        (flag, Value::Bool(true)),
    ])
}

/// (file name, database) for every fixture.
pub fn all() -> Vec<(&'static str, Writer)> {
    let mut c = Writer::new("GeoLite2-Country", 6);
    for (net, code) in [
        ("203.0.113.0/24", "JP"),
        ("198.51.100.0/24", "JP"),
        ("192.0.2.0/24", "US"),
        ("2001:db8:10::/48", "JP"),
        ("2001:db8:66::/48", "DE"),
    ] {
        c.insert(net, &country(code));
    }

    let mut a = Writer::new("GeoLite2-ASN", 6);
    a.insert("203.0.113.0/24", &asn(64496, "Example Corp"));
    a.insert("192.0.2.0/25", &asn(64500, "ExampleNet Broadband"));
    a.insert("192.0.2.128/25", &asn(64501, "Rent-a-Server Hosting"));
    a.insert("198.51.100.0/24", &asn(64500, "ExampleNet Broadband"));
    a.insert("2001:db8:66::/48", &asn(64502, "Example IPv6 ISP"));

    let mut t = Writer::new("GeoIP2-Connection-Type", 6);
    t.insert("203.0.113.0/24", &conn("Corporate"));
    t.insert("192.0.2.0/26", &conn("Cable/DSL"));
    t.insert("192.0.2.64/26", &conn("Cellular"));
    t.insert("198.51.100.0/25", &conn("Cable/DSL"));
    t.insert("2001:db8:66::/48", &conn("Cable/DSL"));

    let mut an = Writer::new("GeoIP2-Anonymous-IP", 6);
    an.insert("192.0.2.128/27", &anon("is_hosting_provider"));
    an.insert("192.0.2.160/28", &anon("is_tor_exit_node"));
    an.insert("192.0.2.176/28", &anon("is_public_proxy"));
    an.insert("2001:db8:66:1::/64", &anon("is_anonymous_vpn"));

    let mut v = Writer::new("vendor-country", 6);
    v.insert(
        "203.0.113.0/24",
        &Value::map([("country_code", Value::str("JP"))]),
    );
    v.insert(
        "192.0.2.0/24",
        &Value::map([("country_code", Value::str("US"))]),
    );

    let mut ve = Writer::new("vendor-country", 6).bare_metadata();
    for (net, code) in [
        ("203.0.113.0/24", "JP"),
        ("192.0.2.0/24", "US"),
        ("2001:db8:66::/48", "DE"),
    ] {
        ve.insert(net, &Value::map([("country_code", Value::str(code))]));
    }

    let mut v4 = Writer::new("GeoLite2-Country", 4);
    v4.insert("203.0.113.0/24", &country("JP"));

    vec![
        ("GeoLite2-Country-Test.mmdb", c),
        ("GeoLite2-ASN-Test.mmdb", a),
        ("GeoIP2-Connection-Type-Test.mmdb", t),
        ("GeoIP2-Anonymous-IP-Test.mmdb", an),
        ("vendor-country-Test.mmdb", v),
        ("GeoLite2-Country-IPv4-Test.mmdb", v4),
        ("vendor-country-empty-description-Test.mmdb", ve),
    ]
}
