//! A small MaxMind DB writer (format 2.0: https://maxmind.github.io/MaxMind-DB/)
//! for netwarden's test data. It writes IPv6 databases (IPv4 networks live
//! under `::/96`, as in MaxMind's files) or IPv4-only ones, with 32-bit
//! records, and the value types the GeoIP2 layouts use. Test code only:
//! `make_fixtures.rs` beside it writes the committed fixtures, and tests use
//! it to write databases on the fly.

#![allow(dead_code)]

use std::collections::BTreeMap;

use ipnet::IpNet;

/// A value in the data section.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Str(String),
    U16(u16),
    U32(u32),
    U64(u64),
    Bool(bool),
    Map(Vec<(String, Value)>),
    Array(Vec<Value>),
}

impl Value {
    pub fn map<const N: usize>(pairs: [(&str, Value); N]) -> Value {
        Value::Map(pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
    }

    pub fn str(s: &str) -> Value {
        Value::Str(s.to_string())
    }
}

#[derive(Clone, Copy)]
enum Record {
    Empty,
    Node(u32),
    Data(u32),
}

pub struct Writer {
    database_type: String,
    ip_version: u16,
    nodes: Vec<[Record; 2]>,
    data: Vec<u8>,
    /// Write `description` as `{}` and `languages` as `[]`.
    bare_metadata: bool,
}

impl Writer {
    /// `ip_version`: 6 (IPv4 under ::/96) or 4.
    pub fn new(database_type: &str, ip_version: u16) -> Self {
        Self {
            database_type: database_type.to_string(),
            ip_version,
            nodes: vec![[Record::Empty, Record::Empty]],
            data: Vec::new(),
            bare_metadata: false,
        }
    }

    /// Writes the metadata's `description` as an empty map and `languages`
    /// as an empty array, as Go's mmdbwriter does when neither is given
    /// (ip-location-db's builds, for one). Both keys are optional in the
    /// spec ("Database Metadata"); the maxminddb crate's `verify` refuses
    /// the empty description.
    pub fn bare_metadata(mut self) -> Self {
        self.bare_metadata = true;
        self
    }

    /// Inserts `net` with `value`. Later, more specific networks may be
    /// inserted inside earlier ones.
    pub fn insert(&mut self, net: &str, value: &Value) {
        let net: IpNet = net.parse().expect("test network");
        let (bits, len): (u128, u8) = match (net, self.ip_version) {
            (IpNet::V4(n), 6) => (u128::from(u32::from(n.network())), 96 + n.prefix_len()),
            (IpNet::V4(n), _) => (u128::from(u32::from(n.network())) << 96, n.prefix_len()),
            (IpNet::V6(n), 6) => (u128::from(n.network()), n.prefix_len()),
            (IpNet::V6(_), _) => panic!("IPv6 network in an IPv4 database"),
        };
        let width = if self.ip_version == 6 { 128 } else { 32 };
        let bits = if self.ip_version == 6 {
            bits
        } else {
            bits >> 96
        };
        let offset = u32::try_from(self.data.len()).expect("small test data");
        encode(value, &mut self.data);
        assert!(len > 0, "a test database needs at least one bit of prefix");
        let mut node = 0usize;
        for depth in 0..len {
            let bit = ((bits >> (width - 1 - u32::from(depth))) & 1) as usize;
            if depth + 1 == len {
                self.nodes[node][bit] = Record::Data(offset);
                return;
            }
            node = match self.nodes[node][bit] {
                Record::Node(n) => n as usize,
                other => {
                    // Split an empty or data record into a node whose two
                    // halves keep what the record said.
                    let keep = match other {
                        Record::Data(d) => Record::Data(d),
                        _ => Record::Empty,
                    };
                    self.nodes.push([keep, keep]);
                    let n = self.nodes.len() - 1;
                    self.nodes[node][bit] = Record::Node(u32::try_from(n).expect("small tree"));
                    n
                }
            };
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let node_count = u32::try_from(self.nodes.len()).expect("small tree");
        let mut out = Vec::new();
        for node in &self.nodes {
            for r in node {
                let v = match *r {
                    Record::Empty => node_count,
                    Record::Node(n) => n,
                    Record::Data(off) => node_count + 16 + off,
                };
                out.extend_from_slice(&v.to_be_bytes());
            }
        }
        out.extend_from_slice(&[0u8; 16]);
        out.extend_from_slice(&self.data);
        out.extend_from_slice(b"\xAB\xCD\xEFMaxMind.com");
        let (description, languages) = if self.bare_metadata {
            (Value::Map(vec![]), Value::Array(vec![]))
        } else {
            (
                Value::map([("en", Value::str("netwarden test data"))]),
                Value::Array(vec![Value::str("en")]),
            )
        };
        let meta = Value::map([
            ("binary_format_major_version", Value::U16(2)),
            ("binary_format_minor_version", Value::U16(0)),
            ("build_epoch", Value::U64(1_795_800_000)),
            ("database_type", Value::Str(self.database_type.clone())),
            ("description", description),
            ("ip_version", Value::U16(self.ip_version)),
            ("languages", languages),
            ("node_count", Value::U32(node_count)),
            ("record_size", Value::U16(32)),
        ]);
        encode(&meta, &mut out);
        out
    }
}

/// Control byte(s): type and size (spec "Data Section Format").
fn control(kind: u8, size: usize, out: &mut Vec<u8>) {
    let (size_bits, extra): (u8, Vec<u8>) = match size {
        0..=28 => (size as u8, vec![]),
        29..=284 => (29, vec![(size - 29) as u8]),
        285..=65_820 => (30, ((size - 285) as u16).to_be_bytes().to_vec()),
        _ => (31, ((size - 65_821) as u32).to_be_bytes()[1..].to_vec()),
    };
    if kind <= 7 {
        out.push((kind << 5) | size_bits);
    } else {
        out.push(size_bits);
        out.push(kind - 7);
    }
    out.extend_from_slice(&extra);
}

fn uint(kind: u8, v: u64, out: &mut Vec<u8>) {
    let bytes = v.to_be_bytes();
    let skip = bytes.iter().take_while(|&&b| b == 0).count();
    control(kind, 8 - skip, out);
    out.extend_from_slice(&bytes[skip..]);
}

fn encode(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Str(s) => {
            control(2, s.len(), out);
            out.extend_from_slice(s.as_bytes());
        }
        Value::U16(n) => uint(5, u64::from(*n), out),
        Value::U32(n) => uint(6, u64::from(*n), out),
        Value::U64(n) => uint(9, *n, out),
        Value::Bool(b) => control(14, usize::from(*b), out),
        Value::Map(pairs) => {
            // Keys sorted, as MaxMind's writers do; readers do not require it.
            let sorted: BTreeMap<&str, &Value> =
                pairs.iter().map(|(k, v)| (k.as_str(), v)).collect();
            control(7, sorted.len(), out);
            for (k, v) in sorted {
                encode(&Value::str(k), out);
                encode(v, out);
            }
        }
        Value::Array(items) => {
            control(11, items.len(), out);
            for i in items {
                encode(i, out);
            }
        }
    }
}
