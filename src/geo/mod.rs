//! MaxMind databases -> facts about an address: country, ASN and
//! organisation, connection type, anonymous-IP flags.
//!
//! Each database is opened memory-mapped (a 60 MB City database costs page
//! cache, not heap), checked (its `database_type` must fit the role it is
//! given, and the whole file is verified, `verify.rs`), and then only read. A lookup
//! allocates nothing (facts are small owned values: a country code, a
//! number, a static connection-type name, a flag set).
//!
//! `policy::geoip` opens the databases a policy names; `engine::facts`
//! matches networks on their facts; `proxy` swaps in updated files
//! ([`GeoSlot::reload`]) and logs the facts of denials.

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use maxminddb::{Mmap, PathElement, Reader};

use crate::addr::canonical;

mod verify;

/// Longest AS organisation kept, in bytes: real ones are under 100.
const AS_ORG_MAX: usize = 128;

/// The role a database plays.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DbKind {
    Country,
    Asn,
    ConnectionType,
    AnonymousIp,
}

impl DbKind {
    pub fn name(self) -> &'static str {
        match self {
            DbKind::Country => "country",
            DbKind::Asn => "asn",
            DbKind::ConnectionType => "connection_type",
            DbKind::AnonymousIp => "anonymous_ip",
        }
    }

    /// Whether MaxMind's `database_type` (e.g. `GeoLite2-ASN`) fits the role.
    fn accepts(self, database_type: &str) -> bool {
        match self {
            DbKind::Country => database_type.contains("Country") || database_type.contains("City"),
            DbKind::Asn => database_type.contains("ASN") || database_type.contains("ISP"),
            DbKind::ConnectionType => database_type.contains("Connection-Type"),
            DbKind::AnonymousIp => database_type.contains("Anonymous-IP"),
        }
    }

    /// The record field read by default (MaxMind's GeoIP2 layout).
    fn default_field(self) -> &'static [&'static str] {
        match self {
            DbKind::Country => &["country", "iso_code"],
            DbKind::Asn => &["autonomous_system_number"],
            DbKind::ConnectionType => &["connection_type"],
            DbKind::AnonymousIp => &[],
        }
    }

    const ALL: [DbKind; 4] = [
        DbKind::Country,
        DbKind::Asn,
        DbKind::ConnectionType,
        DbKind::AnonymousIp,
    ];
}

/// Anonymous-IP flags (GeoIP2 Anonymous IP), as the policy names them.
pub const ANONYMOUS_FLAGS: [(&str, &str); 6] = [
    ("anonymous", "is_anonymous"),
    ("anonymous_vpn", "is_anonymous_vpn"),
    ("hosting_provider", "is_hosting_provider"),
    ("public_proxy", "is_public_proxy"),
    ("residential_proxy", "is_residential_proxy"),
    ("tor_exit_node", "is_tor_exit_node"),
];

#[derive(Debug, thiserror::Error)]
pub enum GeoError {
    #[error("{role} database {}: cannot open: {source}", path.display())]
    Open {
        role: &'static str,
        path: PathBuf,
        source: maxminddb::MaxMindDbError,
    },
    #[error(
        "{role} database {}: it is a '{database_type}' database, which cannot serve as {role}",
        path.display()
    )]
    WrongType {
        role: &'static str,
        path: PathBuf,
        database_type: String,
    },
    #[error("{role} database {}: corrupt: {source}", path.display())]
    Corrupt {
        role: &'static str,
        path: PathBuf,
        source: maxminddb::MaxMindDbError,
    },
}

/// One open, checked database.
pub struct GeoDb {
    kind: DbKind,
    path: PathBuf,
    reader: Reader<Mmap>,
    /// The record field to read (a custom `field:` or the default).
    field: Vec<String>,
}

impl fmt::Debug for GeoDb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GeoDb")
            .field("kind", &self.kind)
            .field("path", &self.path)
            .field("database_type", &self.reader.metadata().database_type)
            .finish()
    }
}

impl GeoDb {
    /// Opens `path` for `kind`. `field` names the record field to read, as
    /// dotted keys (`country_code`, `country.iso_code`), for vendors whose
    /// layout differs from MaxMind's; with it, any `database_type` is
    /// accepted except a MaxMind type made for another role.
    pub fn open(kind: DbKind, path: &Path, field: Option<&str>) -> Result<Self, GeoError> {
        let role = kind.name();
        // SAFETY: the mapping is read-only and netwarden never writes the
        // file. Updaters (geoipupdate, cert-manager-like tools) replace the
        // file by renaming a new one over it, which leaves this mapping on
        // the old inode. A tool that truncated the file in place would break
        // any mmap reader; docs/geoip.md says so.
        let open = |path: &Path| -> Result<_, maxminddb::MaxMindDbError> {
            crate::files::check_regular(path).map_err(maxminddb::MaxMindDbError::from)?;
            let file = std::fs::File::open(path)?;
            // SAFETY: as above.
            let map = unsafe { Mmap::map(&file) }.map_err(maxminddb::MaxMindDbError::Mmap)?;
            Ok((file, Reader::from_source(map)?))
        };
        let (file, reader) = open(path).map_err(|source| GeoError::Open {
            role,
            path: path.to_path_buf(),
            source,
        })?;
        let database_type = reader.metadata().database_type.clone();
        let made_for_other = DbKind::ALL
            .iter()
            .any(|k| *k != kind && k.accepts(&database_type));
        let fits = match field {
            None => kind.accepts(&database_type),
            Some(_) => kind.accepts(&database_type) || !made_for_other,
        };
        if !fits {
            return Err(GeoError::WrongType {
                role,
                path: path.to_path_buf(),
                database_type,
            });
        }
        verify::verify(&reader, &file).map_err(|source| GeoError::Corrupt {
            role,
            path: path.to_path_buf(),
            source,
        })?;
        let field = match field {
            Some(f) => f.split('.').map(str::to_owned).collect(),
            None => kind
                .default_field()
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
        };
        Ok(Self {
            kind,
            path: path.to_path_buf(),
            reader,
            field,
        })
    }

    pub fn kind(&self) -> DbKind {
        self.kind
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn database_type(&self) -> &str {
        &self.reader.metadata().database_type
    }

    /// Seconds since the epoch when the database was built.
    pub fn build_epoch(&self) -> u64 {
        self.reader.metadata().build_epoch
    }

    /// The record for `ip`, if the database knows it. IPv4-mapped IPv6 is
    /// looked up as IPv4 (not every database carries the mapped aliases);
    /// IPv6 in an IPv4-only database is unknown, not an error.
    fn record(&self, ip: IpAddr) -> Option<maxminddb::LookupResult<'_, Mmap>> {
        let ip = canonical(ip);
        if ip.is_ipv6() && self.reader.metadata().ip_version == 4 {
            return None;
        }
        let r = self.reader.lookup(ip).ok()?;
        r.has_data().then_some(r)
    }

    fn path_of<'k>(keys: &'k [String]) -> Vec<PathElement<'k>> {
        keys.iter().map(|k| PathElement::Key(k)).collect()
    }

    /// Country: ISO 3166-1 alpha-2, upper case.
    pub fn country(&self, ip: IpAddr) -> Option<Country> {
        let r = self.record(ip)?;
        let code: &str = r.decode_path(&Self::path_of(&self.field)).ok()??;
        Country::parse(code)
    }

    /// The autonomous system number.
    pub fn asn(&self, ip: IpAddr) -> Option<u32> {
        let r = self.record(ip)?;
        r.decode_path(&Self::path_of(&self.field)).ok()?
    }

    /// Longest AS organisation kept: real ones are under 100 bytes.
    /// The autonomous system's organisation, when the database has it (for
    /// logs and alerts; it allocates).
    pub fn as_org(&self, ip: IpAddr) -> Option<String> {
        let r = self.record(ip)?;
        let org: &str = r
            .decode_path(&[PathElement::Key("autonomous_system_organization")])
            .ok()??;
        // Whoever registers an AS writes this: at most AS_ORG_MAX bytes,
        // no control characters, in logs and alerts (the second red-team
        // review of issue 28: 70 KB reached every alert).
        let mut end = org.len().min(AS_ORG_MAX);
        while !org.is_char_boundary(end) {
            end -= 1;
        }
        Some(
            org[..end]
                .chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .collect(),
        )
    }

    /// MaxMind connection type: `Cable/DSL`, `Cellular`, `Corporate`,
    /// `Dialup`, `Satellite`; any other value is unknown.
    pub fn connection_type(&self, ip: IpAddr) -> Option<&'static str> {
        let r = self.record(ip)?;
        let t: &str = r.decode_path(&Self::path_of(&self.field)).ok()??;
        CONNECTION_TYPES.iter().find(|c| **c == t).copied()
    }

    /// Anonymous-IP flags that are set; `None` when the address is not in
    /// the database (MaxMind lists only anonymous networks, so for this
    /// database an address it does not know is one with no flag set).
    pub fn anonymous(&self, ip: IpAddr) -> Option<AnonymousFlags> {
        let r = self.record(ip)?;
        let mut flags = AnonymousFlags::default();
        for (i, (_, key)) in ANONYMOUS_FLAGS.iter().enumerate() {
            if r.decode_path::<bool>(&[PathElement::Key(key)])
                .ok()
                .flatten()
                == Some(true)
            {
                flags.0 |= 1 << i;
            }
        }
        Some(flags)
    }
}

/// A configured database that can be replaced while running: requests read
/// it with one atomic load, and a checked new file is swapped in whole.
pub struct GeoSlot {
    db: arc_swap::ArcSwap<GeoDb>,
    field: Option<String>,
}

impl fmt::Debug for GeoSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.db.load().fmt(f)
    }
}

impl GeoSlot {
    pub fn new(db: GeoDb, field: Option<String>) -> Self {
        Self {
            db: arc_swap::ArcSwap::from_pointee(db),
            field,
        }
    }

    /// The database now in use.
    pub fn current(&self) -> arc_swap::Guard<std::sync::Arc<GeoDb>> {
        self.db.load()
    }

    /// Opens and checks the file again; swaps it in only if it is good.
    pub fn reload(&self) -> Result<(), GeoError> {
        let old = self.db.load();
        let new = GeoDb::open(old.kind, &old.path, self.field.as_deref())?;
        self.db.store(std::sync::Arc::new(new));
        Ok(())
    }
}

/// The databases a policy configures, each optional.
#[derive(Debug)]
pub struct GeoSet {
    pub country: Option<GeoSlot>,
    pub asn: Option<GeoSlot>,
    pub connection_type: Option<GeoSlot>,
    pub anonymous_ip: Option<GeoSlot>,
    /// Log the facts of allowed requests too (denials always carry them).
    pub log_on_allow: bool,
    /// How often `serve` looks for updated files.
    pub check_interval: std::time::Duration,
}

/// geoipupdate runs daily or weekly: checking every 10 s costs a few
/// `stat` calls and picks a new file up well within a minute.
pub const DEFAULT_CHECK_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);

impl Default for GeoSet {
    fn default() -> Self {
        Self {
            country: None,
            asn: None,
            connection_type: None,
            anonymous_ip: None,
            log_on_allow: false,
            check_interval: DEFAULT_CHECK_INTERVAL,
        }
    }
}

impl GeoSet {
    pub fn is_empty(&self) -> bool {
        self.slots().next().is_none()
    }

    pub fn get(&self, kind: DbKind) -> Option<&GeoSlot> {
        match kind {
            DbKind::Country => self.country.as_ref(),
            DbKind::Asn => self.asn.as_ref(),
            DbKind::ConnectionType => self.connection_type.as_ref(),
            DbKind::AnonymousIp => self.anonymous_ip.as_ref(),
        }
    }

    /// Every configured database.
    pub fn slots(&self) -> impl Iterator<Item = &GeoSlot> {
        [
            &self.country,
            &self.asn,
            &self.connection_type,
            &self.anonymous_ip,
        ]
        .into_iter()
        .flatten()
    }

    pub fn country(&self, ip: IpAddr) -> Option<Country> {
        self.country.as_ref()?.current().country(ip)
    }

    pub fn asn(&self, ip: IpAddr) -> Option<u32> {
        self.asn.as_ref()?.current().asn(ip)
    }

    pub fn connection_type(&self, ip: IpAddr) -> Option<&'static str> {
        self.connection_type.as_ref()?.current().connection_type(ip)
    }

    pub fn anonymous(&self, ip: IpAddr) -> Option<AnonymousFlags> {
        self.anonymous_ip.as_ref()?.current().anonymous(ip)
    }

    /// Every fact the configured databases know about `ip`.
    pub fn facts(&self, ip: IpAddr) -> Facts {
        Facts {
            country: self.country(ip),
            asn: self.asn(ip),
            as_org: self.asn.as_ref().and_then(|s| s.current().as_org(ip)),
            connection_type: self.connection_type(ip),
            anonymous: self.anonymous(ip),
        }
    }
}

/// An ISO 3166-1 alpha-2 country code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Country([u8; 2]);

impl Country {
    /// A code as databases write it: two upper-case ASCII letters.
    pub fn parse(code: &str) -> Option<Self> {
        let b = code.as_bytes();
        (b.len() == 2 && b.iter().all(u8::is_ascii_uppercase)).then(|| Self([b[0], b[1]]))
    }

    pub fn as_str(&self) -> &str {
        // PANIC SAFETY: built only from two ASCII letters.
        std::str::from_utf8(&self.0).expect("ASCII")
    }
}

impl fmt::Display for Country {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the databases say about one address; `None`: not known.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Facts {
    pub country: Option<Country>,
    pub asn: Option<u32>,
    pub as_org: Option<String>,
    pub connection_type: Option<&'static str>,
    pub anonymous: Option<AnonymousFlags>,
}

impl fmt::Display for Facts {
    /// `AS64500 ExampleNet, Cable/DSL, JP, tor_exit_node` (known facts only).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts: Vec<String> = Vec::new();
        if let Some(n) = self.asn {
            parts.push(match &self.as_org {
                Some(o) => format!("AS{n} {o}"),
                None => format!("AS{n}"),
            });
        }
        if let Some(t) = self.connection_type {
            parts.push(t.to_string());
        }
        if let Some(c) = self.country {
            parts.push(c.to_string());
        }
        if let Some(a) = self.anonymous {
            parts.extend(a.names().map(str::to_string));
        }
        if parts.is_empty() {
            f.write_str("no known facts")
        } else {
            f.write_str(&parts.join(", "))
        }
    }
}

/// MaxMind's connection types (GeoIP2 Connection Type).
pub const CONNECTION_TYPES: [&str; 5] =
    ["Cable/DSL", "Cellular", "Corporate", "Dialup", "Satellite"];

/// ISO 3166-1 alpha-2 codes (the 249 officially assigned), and XK (Kosovo),
/// which MaxMind uses.
pub const COUNTRY_CODES: &str = "AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO \
BQ BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE EG EH ER ES \
ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ \
IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM \
MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW \
PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO \
TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW XK";

pub fn is_country_code(code: &str) -> bool {
    code.len() == 2 && COUNTRY_CODES.split_ascii_whitespace().any(|c| c == code)
}

/// A set of [`ANONYMOUS_FLAGS`], by index.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AnonymousFlags(u8);

impl AnonymousFlags {
    /// The flag named `name` (a policy name such as `tor_exit_node`).
    pub fn named(name: &str) -> Option<Self> {
        ANONYMOUS_FLAGS
            .iter()
            .position(|(n, _)| *n == name)
            .map(|i| Self(1 << i))
    }

    pub fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    /// Whether any flag of `mask` is set here.
    pub fn intersects(self, mask: Self) -> bool {
        self.0 & mask.0 != 0
    }

    pub fn has(self, name: &str) -> bool {
        ANONYMOUS_FLAGS
            .iter()
            .position(|(n, _)| *n == name)
            .is_some_and(|i| self.0 & (1 << i) != 0)
    }

    /// The policy names of the flags that are set.
    pub fn names(self) -> impl Iterator<Item = &'static str> {
        ANONYMOUS_FLAGS
            .iter()
            .enumerate()
            .filter(move |(i, _)| self.0 & (1 << i) != 0)
            .map(|(_, (n, _))| *n)
    }
}

#[cfg(test)]
#[path = "../../testdata/geo/mmdb_writer.rs"]
mod mmdb_writer;

#[cfg(test)]
mod tests {
    use super::mmdb_writer::{Value, Writer};
    use super::*;

    fn write(dir: &Path, name: &str, w: &Writer) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, w.to_bytes()).expect("write test database");
        p
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("address")
    }

    #[test]
    fn country_asn_connection_type_and_anonymous_facts() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut c = Writer::new("GeoLite2-Country", 6);
        c.insert(
            "203.0.113.0/24",
            &Value::map([("country", Value::map([("iso_code", Value::str("JP"))]))]),
        );
        c.insert(
            "2001:db8:10::/48",
            &Value::map([("country", Value::map([("iso_code", Value::str("DE"))]))]),
        );
        let country =
            GeoDb::open(DbKind::Country, &write(dir.path(), "c.mmdb", &c), None).expect("opens");
        assert_eq!(country.country(ip("203.0.113.7")), Country::parse("JP"));
        assert_eq!(
            country.country(ip("::ffff:203.0.113.7")),
            Country::parse("JP"),
            "mapped is looked up as IPv4"
        );
        assert_eq!(country.country(ip("2001:db8:10::1")), Country::parse("DE"));
        assert_eq!(country.country(ip("192.0.2.1")), None, "unknown address");

        let mut a = Writer::new("GeoLite2-ASN", 6);
        a.insert(
            "198.51.100.0/24",
            &Value::map([
                ("autonomous_system_number", Value::U32(64500)),
                ("autonomous_system_organization", Value::str("ExampleNet")),
            ]),
        );
        let asn = GeoDb::open(DbKind::Asn, &write(dir.path(), "a.mmdb", &a), None).expect("opens");
        assert_eq!(asn.asn(ip("198.51.100.9")), Some(64500));
        assert_eq!(
            asn.as_org(ip("198.51.100.9")).as_deref(),
            Some("ExampleNet")
        );

        let mut t = Writer::new("GeoIP2-Connection-Type", 6);
        t.insert(
            "192.0.2.0/25",
            &Value::map([("connection_type", Value::str("Cable/DSL"))]),
        );
        let ct = GeoDb::open(
            DbKind::ConnectionType,
            &write(dir.path(), "t.mmdb", &t),
            None,
        )
        .expect("opens");
        assert_eq!(ct.connection_type(ip("192.0.2.10")), Some("Cable/DSL"));
        assert_eq!(ct.connection_type(ip("192.0.2.200")), None);

        let mut an = Writer::new("GeoIP2-Anonymous-IP", 6);
        an.insert(
            "192.0.2.64/26",
            &Value::map([
                ("is_anonymous", Value::Bool(true)),
                ("is_tor_exit_node", Value::Bool(true)),
            ]),
        );
        let anon = GeoDb::open(
            DbKind::AnonymousIp,
            &write(dir.path(), "an.mmdb", &an),
            None,
        )
        .expect("opens");
        let flags = anon.anonymous(ip("192.0.2.70")).expect("known");
        assert!(flags.has("tor_exit_node") && flags.has("anonymous") && !flags.has("public_proxy"));
        assert_eq!(
            flags.names().collect::<Vec<_>>(),
            ["anonymous", "tor_exit_node"]
        );
        assert_eq!(anon.anonymous(ip("192.0.2.1")), None);
    }

    #[test]
    fn country_codes_are_the_iso_list() {
        assert_eq!(COUNTRY_CODES.split_ascii_whitespace().count(), 250);
        assert!(is_country_code("JP") && is_country_code("XK"));
        assert!(!is_country_code("jp") && !is_country_code("EU") && !is_country_code("JPN"));
    }

    #[test]
    fn vendor_layout_with_a_custom_field() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut v = Writer::new("ipinfo country", 6);
        v.insert(
            "203.0.113.0/24",
            &Value::map([("country_code", Value::str("JP"))]),
        );
        let p = write(dir.path(), "v.mmdb", &v);
        let db = GeoDb::open(DbKind::Country, &p, Some("country_code")).expect("opens");
        assert_eq!(db.country(ip("203.0.113.1")), Country::parse("JP"));
        // Without the field, the vendor type is not a Country database.
        assert!(matches!(
            GeoDb::open(DbKind::Country, &p, None),
            Err(GeoError::WrongType { .. })
        ));
    }

    #[test]
    fn ipv6_in_an_ipv4_only_database_is_unknown() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut c = Writer::new("GeoLite2-Country", 4);
        c.insert(
            "203.0.113.0/24",
            &Value::map([("country", Value::map([("iso_code", Value::str("JP"))]))]),
        );
        let db =
            GeoDb::open(DbKind::Country, &write(dir.path(), "v4.mmdb", &c), None).expect("opens");
        assert_eq!(db.country(ip("203.0.113.5")), Country::parse("JP"));
        assert_eq!(db.country(ip("::ffff:203.0.113.5")), Country::parse("JP"));
        assert_eq!(db.country(ip("2001:db8::1")), None);
    }

    #[test]
    fn wrong_type_missing_and_corrupt_files_fail_closed() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut c = Writer::new("GeoLite2-Country", 6);
        c.insert(
            "203.0.113.0/24",
            &Value::map([("country", Value::map([("iso_code", Value::str("JP"))]))]),
        );
        let p = write(dir.path(), "c.mmdb", &c);
        let e =
            GeoDb::open(DbKind::Asn, &p, None).expect_err("a Country file is not an ASN database");
        assert!(
            e.to_string()
                .contains("'GeoLite2-Country' database, which cannot serve as asn"),
            "{e}"
        );
        // A custom field does not make another MaxMind type acceptable.
        assert!(GeoDb::open(DbKind::Asn, &p, Some("asn")).is_err());

        let e = GeoDb::open(DbKind::Country, &dir.path().join("missing.mmdb"), None)
            .expect_err("missing");
        assert!(e.to_string().contains("cannot open"), "{e}");

        let mut bytes = std::fs::read(&p).expect("read");
        for b in bytes.iter_mut().take(64) {
            *b = 0xff; // tree records now point past the data section
        }
        let bad = dir.path().join("corrupt.mmdb");
        std::fs::write(&bad, &bytes).expect("write");
        assert!(GeoDb::open(DbKind::Country, &bad, None).is_err());
        std::fs::write(&bad, b"not a database").expect("write");
        assert!(matches!(
            GeoDb::open(DbKind::Country, &bad, None),
            Err(GeoError::Open { .. })
        ));
    }
}
