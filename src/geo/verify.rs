//! The whole-file check a database passes before it is used: the maxminddb
//! crate's `Reader::verify`, with one exception the MaxMind DB spec makes.
//!
//! MaxMind DB spec, "Database Metadata": `description` is optional. Go's
//! mmdbwriter writes it as an empty map when none is given (ip-location-db's
//! GeoLite2 country builds, for one), but maxminddb 0.32's `verify` refuses
//! an empty map ("description - Expected: non-empty map Actual: {}"). It
//! checks that last among the metadata, after the value graph, the format
//! version, `ip_version`, `node_count`, `record_size` and `database_type`;
//! opening the reader has already checked that the search tree fits before
//! the data section. So when that check is the one that fails, this module
//! checks what `verify` has not reached yet: the data section separator,
//! the search tree, and every record the tree points to. A database with
//! real corruption still fails closed.
//!
//! An empty `languages` array (also optional) passes `verify`. A metadata
//! map that leaves either key out is refused when the reader opens (its
//! `Metadata` requires both), before this check.

use std::collections::HashSet;
use std::fmt;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};

use maxminddb::{MaxMindDbError, Mmap, Reader, WithinOptions};

/// `reader.verify()`, accepting an empty metadata `description`. `file` is
/// the open file `reader` maps (the same inode, even if an updater has
/// renamed a new file over the path since).
pub(super) fn verify(reader: &Reader<Mmap>, file: &File) -> Result<(), MaxMindDbError> {
    match reader.verify() {
        Err(MaxMindDbError::InvalidDatabase { message, .. })
            if message.starts_with("description ") && reader.metadata().description.is_empty() =>
        {
            verify_tree_and_data(reader, file)
        }
        other => other,
    }
}

/// The checks `Reader::verify` makes after its metadata checks.
fn verify_tree_and_data(reader: &Reader<Mmap>, file: &File) -> Result<(), MaxMindDbError> {
    let m = reader.metadata();
    // Spec "Data Section Separator": 16 zero bytes after the search tree,
    // whose nodes are two records of `record_size` bits each.
    let tree_size = u64::from(m.node_count) * u64::from(m.record_size) / 4;
    let mut separator = [0u8; 16];
    let mut f = file;
    f.seek(SeekFrom::Start(tree_size))?;
    f.read_exact(&mut separator)?;
    if separator != [0; 16] {
        return Err(MaxMindDbError::invalid_database_at(
            "the data section separator is not 16 zero bytes",
            usize::try_from(tree_size).unwrap_or(usize::MAX),
        ));
    }

    // Spec "Search Tree Section": walking the tree from the root, every
    // record is a node, "no data" or a pointer into the data section (the
    // reader refuses pointers outside it). N nodes have at most 2N leaves:
    // more means shared subtrees or a cycle (the same bound as `verify`).
    let max_leaves = usize::try_from(m.node_count)
        .unwrap_or(usize::MAX)
        .saturating_mul(3);
    let networks = reader.networks(WithinOptions::default().include_networks_without_data())?;
    let mut records = HashSet::new();
    for (n, network) in networks.enumerate() {
        if n > max_leaves {
            return Err(MaxMindDbError::invalid_database(format!(
                "the search tree has more than {max_leaves} leaves: a cycle or shared subtrees"
            )));
        }
        let network = network?;
        // Each record once, decoded whole.
        if let Some(offset) = network.offset()
            && records.insert(offset)
        {
            network.decode::<EveryValue>()?;
        }
    }
    Ok(())
}

/// Decodes every value of a record, following its pointers and checking
/// its strings are UTF-8, and keeps none. (serde's `IgnoredAny` would skip
/// nested values unread.)
struct EveryValue;

impl<'de> serde::Deserialize<'de> for EveryValue {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(EveryValue)
    }
}

impl<'de> serde::de::Visitor<'de> for EveryValue {
    type Value = EveryValue;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a MaxMind DB value")
    }

    // The data types of spec "Output Data Section" (serde widens i32, u16,
    // u32 and float to these).
    fn visit_bool<E>(self, _: bool) -> Result<Self, E> {
        Ok(self)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self, E> {
        Ok(self)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self, E> {
        Ok(self)
    }
    fn visit_u128<E>(self, _: u128) -> Result<Self, E> {
        Ok(self)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self, E> {
        Ok(self)
    }
    fn visit_str<E>(self, _: &str) -> Result<Self, E> {
        Ok(self)
    }
    fn visit_bytes<E>(self, _: &[u8]) -> Result<Self, E> {
        Ok(self)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut items: A) -> Result<Self, A::Error> {
        while items.next_element::<EveryValue>()?.is_some() {}
        Ok(self)
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut pairs: A) -> Result<Self, A::Error> {
        while pairs.next_entry::<EveryValue, EveryValue>()?.is_some() {}
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::super::mmdb_writer::{Value, Writer};
    use super::super::{Country, DbKind, GeoDb, GeoError};
    use maxminddb::Reader;

    /// Metadata `description: {}` and `languages: []`; records
    /// `country_code`: 203.0.113.0/24 JP, 192.0.2.0/24 US, 2001:db8:66::/48 DE.
    fn fixture() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("testdata/geo/vendor-country-empty-description-Test.mmdb")
    }

    fn ip(s: &str) -> std::net::IpAddr {
        s.parse().expect("address")
    }

    #[test]
    fn an_empty_description_is_accepted_as_the_spec_allows() {
        // The crate's own verify refuses it. When this assertion fails, a
        // newer maxminddb accepts it and this module's exception can go.
        let e = Reader::open_readfile(fixture())
            .expect("the reader opens it")
            .verify()
            .expect_err("maxminddb 0.32's verify wants a description");
        assert!(e.to_string().contains("description"), "{e}");

        let db = GeoDb::open(DbKind::Country, &fixture(), Some("country_code")).expect("opens");
        assert_eq!(db.country(ip("203.0.113.9")), Country::parse("JP"));
        assert_eq!(db.country(ip("::ffff:192.0.2.1")), Country::parse("US"));
        assert_eq!(db.country(ip("2001:db8:66::1")), Country::parse("DE"));
        assert_eq!(db.country(ip("198.51.100.1")), None);
    }

    #[test]
    fn a_corrupt_database_with_an_empty_description_still_fails_closed() {
        let good = std::fs::read(fixture()).expect("read fixture");
        let node_count = Reader::from_source(good.clone())
            .expect("opens")
            .metadata()
            .node_count as usize;
        let tree_size = node_count * 8; // 32-bit records
        let marker = good
            .windows(14)
            .rposition(|w| w == b"\xAB\xCD\xEFMaxMind.com")
            .expect("metadata marker");
        let jp = tree_size
            + good[tree_size..]
                .windows(2)
                .position(|w| w == b"JP")
                .expect("a JP record");
        let with = |edit: &dyn Fn(&mut Vec<u8>)| {
            let mut b = good.clone();
            edit(&mut b);
            b
        };
        let cases: [(&str, Vec<u8>, &str); 5] = [
            (
                "tree records pointing past the data section",
                with(&|b| b[..64].fill(0xff)),
                "data pointer",
            ),
            (
                "the root's record pointing back to the root",
                with(&|b| b[..4].fill(0)),
                "search tree",
            ),
            (
                "a non-zero byte in the data section separator",
                with(&|b| b[tree_size + 7] = 1),
                "separator",
            ),
            (
                "a record's string that is not UTF-8",
                with(&|b| b[jp] = 0xff),
                "UTF-8",
            ),
            (
                "a data section cut short inside its last record",
                with(&|b| {
                    b.drain(marker - 2..marker);
                }),
                "invalid database",
            ),
        ];
        let dir = tempfile::tempdir().expect("temp dir");
        for (what, bytes, says) in cases {
            let p = dir.path().join("bad.mmdb");
            std::fs::write(&p, &bytes).expect("write");
            match GeoDb::open(DbKind::Country, &p, Some("country_code")) {
                Err(e @ GeoError::Corrupt { .. }) => {
                    let m = e.to_string();
                    assert!(m.contains(": corrupt: ") && m.contains(says), "{what}: {m}");
                }
                other => panic!("{what}: {other:?}"),
            }
        }

        // Cut anywhere, the file loses its metadata and cannot be opened.
        let p = dir.path().join("truncated.mmdb");
        std::fs::write(&p, &good[..marker + 20]).expect("write");
        let e = GeoDb::open(DbKind::Country, &p, Some("country_code")).expect_err("truncated");
        assert!(matches!(e, GeoError::Open { .. }), "{e}");
    }

    #[test]
    fn only_the_description_check_is_waived() {
        // An empty database_type is checked before the description: still
        // refused, even with an empty description.
        let mut w = Writer::new("", 6).bare_metadata();
        w.insert(
            "203.0.113.0/24",
            &Value::map([("country_code", Value::str("JP"))]),
        );
        let dir = tempfile::tempdir().expect("temp dir");
        let p = dir.path().join("untyped.mmdb");
        std::fs::write(&p, w.to_bytes()).expect("write");
        let e = GeoDb::open(DbKind::Country, &p, Some("country_code")).expect_err("refused");
        assert!(
            matches!(e, GeoError::Corrupt { .. }) && e.to_string().contains("database_type"),
            "{e}"
        );
    }
}
