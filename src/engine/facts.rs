//! Network membership by facts (country, ASN, connection type, anonymous
//! flags), looked up lazily: a decision that names no fact looks nothing
//! up, and one that names several looks each database up at most once.

use std::cell::OnceCell;
use std::fmt;
use std::net::IpAddr;

use crate::geo::{AnonymousFlags, Country, DbKind, GeoSet};

/// A fact a network matches on. Unknown facts never match.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FactTest {
    /// Country in (or, with `not`, known and not in) the list.
    Country {
        codes: Vec<[u8; 2]>,
        not: bool,
    },
    Asn(Vec<u32>),
    ConnectionType(Vec<Box<str>>),
    /// Any of these anonymous-IP flags is set.
    Anonymous(AnonymousFlags),
}

impl FactTest {
    pub fn kind(&self) -> DbKind {
        match self {
            FactTest::Country { .. } => DbKind::Country,
            FactTest::Asn(_) => DbKind::Asn,
            FactTest::ConnectionType(_) => DbKind::ConnectionType,
            FactTest::Anonymous(_) => DbKind::AnonymousIp,
        }
    }
}

/// How an address is a member of a network.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    /// By its CIDRs (own, file, or included).
    Cidr,
    /// By a fact from this database.
    Fact(DbKind),
    /// By a grant that has not expired (`until:`).
    Grant,
}

impl Via {
    /// `cidr`, `grant`, or the database's kind (`country`, `asn`, …).
    pub fn name(self) -> &'static str {
        match self {
            Via::Cidr => "cidr",
            Via::Fact(k) => k.name(),
            Via::Grant => "grant",
        }
    }
}

impl fmt::Display for Via {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Which databases were asked and did not know the address.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Unknown(u8);

impl Unknown {
    fn add(&mut self, kind: DbKind) {
        self.0 |= 1 << kind as u8;
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn kinds(self) -> impl Iterator<Item = DbKind> {
        [
            DbKind::Country,
            DbKind::Asn,
            DbKind::ConnectionType,
            DbKind::AnonymousIp,
        ]
        .into_iter()
        .filter(move |k| self.0 & (1 << *k as u8) != 0)
    }
}

/// The facts of one address, each looked up on first use.
pub struct FactCache<'g> {
    geo: &'g GeoSet,
    ip: IpAddr,
    /// The instant the request is decided at: grants expire by it.
    pub now: jiff::Timestamp,
    country: OnceCell<Option<Country>>,
    asn: OnceCell<Option<u32>>,
    connection_type: OnceCell<Option<&'static str>>,
    anonymous: OnceCell<Option<AnonymousFlags>>,
    pub unknown: std::cell::Cell<Unknown>,
}

impl<'g> FactCache<'g> {
    pub fn new(geo: &'g GeoSet, ip: IpAddr, now: jiff::Timestamp) -> Self {
        Self {
            geo,
            ip,
            now,
            country: OnceCell::new(),
            asn: OnceCell::new(),
            connection_type: OnceCell::new(),
            anonymous: OnceCell::new(),
            unknown: std::cell::Cell::new(Unknown::default()),
        }
    }

    /// A cache that already knows the facts (replaying a logged decision):
    /// the databases are not consulted.
    pub fn seeded(
        geo: &'g GeoSet,
        ip: IpAddr,
        now: jiff::Timestamp,
        known: &crate::geo::Facts,
    ) -> Self {
        let c = Self::new(geo, ip, now);
        let _ = c.country.set(known.country);
        let _ = c.asn.set(known.asn);
        let _ = c.connection_type.set(known.connection_type);
        let _ = c.anonymous.set(known.anonymous);
        c
    }

    fn note_unknown(&self, kind: DbKind) {
        let mut u = self.unknown.get();
        u.add(kind);
        self.unknown.set(u);
    }

    /// Whether `test` holds; `false` (and noted) when the fact is unknown.
    pub fn matches(&self, test: &FactTest) -> bool {
        let ip = self.ip;
        let geo = self.geo;
        let known = match test {
            FactTest::Country { codes, not } => {
                let c = *self.country.get_or_init(|| geo.country(ip));
                c.map(|c| codes.iter().any(|code| code == c.as_str().as_bytes()) != *not)
            }
            FactTest::Asn(list) => {
                let n = *self.asn.get_or_init(|| geo.asn(ip));
                n.map(|n| list.contains(&n))
            }
            FactTest::ConnectionType(list) => {
                let t = *self.connection_type.get_or_init(|| geo.connection_type(ip));
                t.map(|t| list.iter().any(|x| **x == *t))
            }
            FactTest::Anonymous(mask) => {
                let a = *self.anonymous.get_or_init(|| geo.anonymous(ip));
                // MaxMind lists only anonymous networks: an address the
                // database does not know has no flag set, which is a known
                // answer, not an unknown one.
                Some(a.is_some_and(|a| a.intersects(*mask)))
            }
        };
        match known {
            Some(m) => m,
            None => {
                self.note_unknown(test.kind());
                false
            }
        }
    }
}
