//! The committed GeoIP test databases are what `make-geo-fixtures` writes,
//! and each opens in its role with the facts fixtures.rs lists.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use netwarden::geo::{Country, DbKind, GeoDb};

use crate::support::fixtures;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/geo")
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("address")
}

#[test]
fn committed_fixtures_match_the_generator() {
    for (name, db) in fixtures::all() {
        let committed = std::fs::read(dir().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(
            committed == db.to_bytes(),
            "{name} is stale: run cargo run --example make-geo-fixtures"
        );
    }
}

#[test]
fn fixtures_answer_with_their_known_facts() {
    let open = |kind, name: &str, field| GeoDb::open(kind, &dir().join(name), field).expect(name);
    let c = open(DbKind::Country, "GeoLite2-Country-Test.mmdb", None);
    assert_eq!(c.country(ip("203.0.113.7")), Country::parse("JP"));
    assert_eq!(c.country(ip("::ffff:192.0.2.1")), Country::parse("US"));
    assert_eq!(c.country(ip("2001:db8:66::1")), Country::parse("DE"));
    assert_eq!(c.country(ip("10.0.0.1")), None);

    let a = open(DbKind::Asn, "GeoLite2-ASN-Test.mmdb", None);
    assert_eq!(a.asn(ip("192.0.2.10")), Some(64500));
    assert_eq!(
        a.as_org(ip("192.0.2.10")).as_deref(),
        Some("ExampleNet Broadband")
    );
    assert_eq!(a.asn(ip("192.0.2.200")), Some(64501));
    assert_eq!(
        a.as_org(ip("192.0.2.200")).as_deref(),
        Some("Rent-a-Server Hosting")
    );

    let t = open(
        DbKind::ConnectionType,
        "GeoIP2-Connection-Type-Test.mmdb",
        None,
    );
    assert_eq!(t.connection_type(ip("192.0.2.10")), Some("Cable/DSL"));
    assert_eq!(t.connection_type(ip("192.0.2.70")), Some("Cellular"));
    assert_eq!(t.connection_type(ip("203.0.113.1")), Some("Corporate"));

    let an = open(DbKind::AnonymousIp, "GeoIP2-Anonymous-IP-Test.mmdb", None);
    assert!(
        an.anonymous(ip("192.0.2.161"))
            .expect("known")
            .has("tor_exit_node")
    );
    assert!(
        an.anonymous(ip("192.0.2.130"))
            .expect("known")
            .has("hosting_provider")
    );
    assert!(
        an.anonymous(ip("2001:db8:66:1::9"))
            .expect("known")
            .has("anonymous_vpn")
    );
    assert_eq!(an.anonymous(ip("203.0.113.1")), None);

    let v = open(
        DbKind::Country,
        "vendor-country-Test.mmdb",
        Some("country_code"),
    );
    assert_eq!(v.country(ip("192.0.2.1")), Country::parse("US"));

    // Metadata `description: {}`: accepted, as the spec allows.
    let ve = open(
        DbKind::Country,
        "vendor-country-empty-description-Test.mmdb",
        Some("country_code"),
    );
    assert_eq!(ve.country(ip("203.0.113.7")), Country::parse("JP"));
    assert_eq!(ve.country(ip("2001:db8:66::1")), Country::parse("DE"));

    let v4 = open(DbKind::Country, "GeoLite2-Country-IPv4-Test.mmdb", None);
    assert_eq!(v4.country(ip("203.0.113.1")), Country::parse("JP"));
    assert_eq!(v4.country(ip("2001:db8:10::1")), None);
}
