//! The formats publishers use, read strictly: every entry that should hold
//! a prefix must hold a valid one, or the whole list is refused (a format
//! change at the publisher must not quietly shrink or empty a network).
//!
//! - lines: one CIDR or address a line; `#` and `;` start comments
//!   (Cloudflare's `ips-v4`, FireHOL's `.netset`, Tor's bulk exit list,
//!   Spamhaus DROP as text).
//! - JSON: arrays of items found by dotted paths, the prefix in one of the
//!   named fields, items kept when every filter matches (AWS
//!   `ip-ranges.json`, GCP `cloud.json`, GitHub `/meta`); or one JSON
//!   document a line (Spamhaus DROP JSON).
//! - CSV: the prefix in one column, filters on others (iCloud Private
//!   Relay's `egress-ip-ranges.csv`).

use ipnet::IpNet;

/// How a published list is read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Format {
    Lines,
    Json(Json),
    Csv(Csv),
}

/// `format: json` (or `json_lines`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Json {
    /// Dotted paths to the arrays of items (`prefixes`, `ipv6_prefixes`);
    /// an empty path is the document itself. With `lines`, each line is
    /// one item and these are not used.
    pub items: Vec<Vec<String>>,
    /// Fields that hold the prefix; the first one an item has is read. An
    /// item without any of them is skipped (and counted): a metadata line.
    /// Empty: the item itself is the prefix (a string).
    pub fields: Vec<String>,
    /// An item is kept when each filter's field equals one of its values.
    pub filters: Vec<Filter<String>>,
    /// One JSON document a line (Spamhaus DROP JSON).
    pub lines: bool,
}

/// `format: csv`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Csv {
    pub column: Column,
    /// The first row names the columns, and is not data.
    pub header: bool,
    pub filters: Vec<Filter<Column>>,
}

/// A CSV column: by position (1 is the first) or by its header's name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Column {
    Index(usize),
    Name(String),
}

/// Keep an item whose `key` is one of `values` (compared as text; JSON
/// numbers and booleans as they are written).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Filter<K> {
    pub key: K,
    pub values: Vec<String>,
}

/// A list read: its prefixes (canonical: sorted, no duplicates) and how
/// many items were passed over (filtered out, or without a prefix field).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Parsed {
    pub prefixes: Vec<IpNet>,
    pub skipped: usize,
}

/// Why a list could not be read: where (`line 12`, `prefixes[3]`) and what.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{at}: {message}")]
pub struct ParseError {
    pub at: String,
    pub message: String,
}

fn problem(at: impl Into<String>, message: impl Into<String>) -> ParseError {
    ParseError {
        at: at.into(),
        message: message.into(),
    }
}

/// Reads `body` as `format`.
pub fn parse(format: &Format, body: &[u8]) -> Result<Parsed, ParseError> {
    let text = std::str::from_utf8(body).map_err(|e| {
        problem(
            format!("byte {}", e.valid_up_to()),
            "the list is not UTF-8 text",
        )
    })?;
    // A UTF-8 byte order mark (some Windows-made intranet files).
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let parsed = match format {
        Format::Lines => lines(text),
        Format::Json(spec) if spec.lines => json_lines(spec, text),
        Format::Json(spec) => json(spec, text),
        Format::Csv(spec) => csv(spec, text),
    }?;
    Ok(Parsed {
        prefixes: super::canonical(parsed.prefixes),
        skipped: parsed.skipped,
    })
}

fn prefix(at: impl FnOnce() -> String, text: &str) -> Result<IpNet, ParseError> {
    crate::addr::parse_prefix(text).map_err(|e| {
        let why = match e {
            crate::addr::PrefixError::Invalid => "is not an address or CIDR",
            crate::addr::PrefixError::NotCanonical => "is not in canonical form",
            crate::addr::PrefixError::HostBits(_) => "has host bits set",
            crate::addr::PrefixError::Mapped(_) => "is an IPv4-mapped IPv6 range",
        };
        problem(at(), format!("'{}' {why}", shown(text)))
    })
}

/// At most 60 characters of publisher text, controls escaped: an error
/// message must not carry a hostile body into the log whole.
fn shown(text: &str) -> String {
    let mut out: String = text.chars().take(60).flat_map(char::escape_debug).collect();
    if text.chars().count() > 60 {
        out.push('…');
    }
    out
}

fn lines(text: &str) -> Result<Parsed, ParseError> {
    let mut out = Parsed::default();
    for (i, line) in text.lines().enumerate() {
        let content = line.split(['#', ';']).next().unwrap_or("");
        let mut words = content.split_whitespace();
        let Some(first) = words.next() else { continue };
        if let Some(more) = words.next() {
            return Err(problem(
                format!("line {}", i + 1),
                format!("'{}' after the address is not understood", shown(more)),
            ));
        }
        out.prefixes
            .push(prefix(|| format!("line {}", i + 1), first)?);
    }
    Ok(out)
}

// JSON is read as a stream, one item at a time, keeping of each item only
// the fields the list needs: a 32 MB document of tiny objects must not
// become gigabytes of `serde_json::Value` (red-team review, issue 25).

fn json(spec: &Json, text: &str) -> Result<Parsed, ParseError> {
    let mut out = Parsed::default();
    let root = [Vec::new()];
    let paths = if spec.items.is_empty() {
        &root[..]
    } else {
        &spec.items[..]
    };
    for path in paths {
        let name = if path.is_empty() {
            "the document".to_string()
        } else {
            path.join(".")
        };
        let failed = std::cell::RefCell::new(None);
        let mut de = serde_json::Deserializer::from_str(text);
        let walked = serde::de::DeserializeSeed::deserialize(
            Walk {
                path,
                name: &name,
                spec,
                out: &mut out,
                failed: &failed,
            },
            &mut de,
        )
        .and_then(|()| de.end());
        if let Some(e) = failed.into_inner() {
            return Err(e);
        }
        walked.map_err(|e| problem(format!("line {}", e.line()), format!("not JSON: {e}")))?;
    }
    Ok(out)
}

fn json_lines(spec: &Json, text: &str) -> Result<Parsed, ParseError> {
    let mut out = Parsed::default();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let at = || format!("line {}", i + 1);
        let mut de = serde_json::Deserializer::from_str(line);
        let item = serde::de::DeserializeSeed::deserialize(ItemSeed { spec }, &mut de)
            .and_then(|item| de.end().map(|()| item))
            .map_err(|e| problem(at(), format!("not JSON: {e}")))?;
        item_prefix(spec, item, at, &mut out)?;
    }
    Ok(out)
}

/// A JSON value as the list reads it: a string, another scalar as
/// written, or something else (skipped unread).
enum Scalar {
    Str(String),
    Written(String),
    Other,
}

impl<'de> serde::Deserialize<'de> for Scalar {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Scalar;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_str<E>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar::Str(v.to_owned()))
            }
            fn visit_bool<E>(self, v: bool) -> Result<Scalar, E> {
                Ok(Scalar::Written(v.to_string()))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Scalar, E> {
                Ok(Scalar::Written(v.to_string()))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Scalar, E> {
                Ok(Scalar::Written(v.to_string()))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Scalar, E> {
                Ok(Scalar::Written(
                    serde_json::Number::from_f64(v)
                        .map_or_else(|| v.to_string(), |n| n.to_string()),
                ))
            }
            fn visit_unit<E>(self) -> Result<Scalar, E> {
                Ok(Scalar::Other)
            }
            fn visit_none<E>(self) -> Result<Scalar, E> {
                Ok(Scalar::Other)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Scalar, A::Error> {
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(Scalar::Other)
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Scalar, A::Error> {
                while map
                    .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
                    .is_some()
                {}
                Ok(Scalar::Other)
            }
        }
        d.deserialize_any(V)
    }
}

/// What the list needs of one item: the value of each prefix field and
/// each filter field it has (the last of a repeated key, as JSON readers
/// take it), or, for a bare item, the item itself.
struct Item {
    fields: Vec<Option<Scalar>>,
    filters: Vec<Option<Scalar>>,
    /// The item is an object.
    object: bool,
    /// The item itself, when it is not an object.
    bare: Option<Scalar>,
}

struct ItemSeed<'s> {
    spec: &'s Json,
}

impl<'de> serde::de::DeserializeSeed<'de> for ItemSeed<'_> {
    type Value = Item;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Item, D::Error> {
        struct V<'s>(&'s Json);
        impl<'de> serde::de::Visitor<'de> for V<'_> {
            type Value = Item;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an item")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Item, A::Error> {
                let spec = self.0;
                let mut item = Item {
                    fields: spec.fields.iter().map(|_| None).collect(),
                    filters: spec.filters.iter().map(|_| None).collect(),
                    object: true,
                    bare: None,
                };
                while let Some(key) = map.next_key::<std::borrow::Cow<'_, str>>()? {
                    let field = spec.fields.iter().position(|f| *f == key);
                    let filter = spec.filters.iter().position(|f| f.key == key);
                    if field.is_none() && filter.is_none() {
                        map.next_value::<serde::de::IgnoredAny>()?;
                        continue;
                    }
                    let v: Scalar = map.next_value()?;
                    let copy = |v: &Scalar| match v {
                        Scalar::Str(s) => Scalar::Str(s.clone()),
                        Scalar::Written(s) => Scalar::Written(s.clone()),
                        Scalar::Other => Scalar::Other,
                    };
                    if let Some(i) = filter {
                        item.filters[i] = Some(copy(&v));
                    }
                    if let Some(i) = field {
                        item.fields[i] = Some(v);
                    }
                }
                Ok(item)
            }
            fn visit_str<E>(self, v: &str) -> Result<Item, E> {
                Ok(self.bare(Scalar::Str(v.to_owned())))
            }
            fn visit_bool<E>(self, v: bool) -> Result<Item, E> {
                Ok(self.bare(Scalar::Written(v.to_string())))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Item, E> {
                Ok(self.bare(Scalar::Written(v.to_string())))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Item, E> {
                Ok(self.bare(Scalar::Written(v.to_string())))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Item, E> {
                Ok(self.bare(Scalar::Written(v.to_string())))
            }
            fn visit_unit<E>(self) -> Result<Item, E> {
                Ok(self.bare(Scalar::Other))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Item, A::Error> {
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(self.bare(Scalar::Other))
            }
        }
        impl V<'_> {
            fn bare(&self, v: Scalar) -> Item {
                Item {
                    fields: self.0.fields.iter().map(|_| None).collect(),
                    filters: self.0.filters.iter().map(|_| None).collect(),
                    object: false,
                    bare: Some(v),
                }
            }
        }
        d.deserialize_any(V(self.spec))
    }
}

/// Walks down `path` (one key a level) to the array of items, and reads
/// each item as it comes.
struct Walk<'a> {
    path: &'a [String],
    name: &'a str,
    spec: &'a Json,
    out: &'a mut Parsed,
    /// A problem with the list itself (not its JSON), said in its words.
    failed: &'a std::cell::RefCell<Option<ParseError>>,
}

impl<'de> serde::de::DeserializeSeed<'de> for Walk<'_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl Walk<'_> {
    fn fail<E: serde::de::Error>(&self, e: ParseError) -> E {
        let text = e.to_string();
        *self.failed.borrow_mut() = Some(e);
        E::custom(text)
    }
}

impl<'de> serde::de::Visitor<'de> for Walk<'_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON document")
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let Some((key, rest)) = self.path.split_first() else {
            return Err(self.fail(problem(self.name, "is not a list")));
        };
        let mut found = false;
        while let Some(k) = map.next_key::<std::borrow::Cow<'_, str>>()? {
            if *k != **key {
                map.next_value::<serde::de::IgnoredAny>()?;
                continue;
            }
            if found {
                return Err(self.fail(problem(self.name, format!("the key '{key}' appears twice"))));
            }
            found = true;
            map.next_value_seed(Walk {
                path: rest,
                name: self.name,
                spec: self.spec,
                out: &mut *self.out,
                failed: self.failed,
            })?;
        }
        if !found {
            return Err(self.fail(problem(self.name, "no such key in the document")));
        }
        Ok(())
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        if !self.path.is_empty() {
            return Err(self.fail(problem(self.name, "no such key in the document")));
        }
        let mut i = 0usize;
        while let Some(item) = seq.next_element_seed(ItemSeed { spec: self.spec })? {
            let name = self.name;
            if let Err(e) = item_prefix(self.spec, item, || format!("{name}[{i}]"), self.out) {
                return Err(self.fail(e));
            }
            i += 1;
        }
        Ok(())
    }
    fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<(), E> {
        Err(self.not_here())
    }
    fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<(), E> {
        Err(self.not_here())
    }
    fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<(), E> {
        Err(self.not_here())
    }
    fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<(), E> {
        Err(self.not_here())
    }
    fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<(), E> {
        Err(self.not_here())
    }
    fn visit_unit<E: serde::de::Error>(self) -> Result<(), E> {
        Err(self.not_here())
    }
}

impl Walk<'_> {
    fn not_here<E: serde::de::Error>(&self) -> E {
        let why = if self.path.is_empty() {
            "is not a list"
        } else {
            "no such key in the document"
        };
        self.fail(problem(self.name, why))
    }
}

/// One item: skipped when a filter does not match or it holds none of the
/// prefix fields; an error when the field is there but not a prefix.
fn item_prefix(
    spec: &Json,
    item: Item,
    at: impl Fn() -> String,
    out: &mut Parsed,
) -> Result<(), ParseError> {
    let matches = spec
        .filters
        .iter()
        .zip(&item.filters)
        .all(|(f, v)| match v {
            Some(Scalar::Str(s) | Scalar::Written(s)) => f.values.contains(s),
            _ => false,
        });
    if !matches {
        out.skipped += 1;
        return Ok(());
    }
    let value = if spec.fields.is_empty() {
        if item.object {
            Some(Scalar::Other)
        } else {
            item.bare
        }
    } else if item.object {
        item.fields.into_iter().flatten().next()
    } else {
        None
    };
    let Some(value) = value else {
        out.skipped += 1;
        return Ok(());
    };
    let Scalar::Str(text) = value else {
        return Err(problem(at(), "the prefix is not a string"));
    };
    out.prefixes.push(prefix(&at, &text)?);
    Ok(())
}

fn csv(spec: &Csv, text: &str) -> Result<Parsed, ParseError> {
    // Quotes come in pairs in RFC 4180 (a field's two, and `""` inside
    // one): an odd count outside comment lines is a quote left open, at
    // the end of a body cut short too (red-team review).
    let quotes: usize = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.matches('"').count())
        .sum();
    if quotes % 2 == 1 {
        return Err(problem(
            "the end of the list",
            "a quoted field is never closed (a quote left open, or a cut-off body)",
        ));
    }
    let mut reader = ::csv::ReaderBuilder::new()
        .has_headers(spec.header)
        .flexible(true)
        .comment(Some(b'#'))
        .from_reader(text.as_bytes());
    let header: Vec<String> = if spec.header {
        reader
            .headers()
            .map_err(|e| problem("line 1", format!("not CSV: {e}")))?
            .iter()
            .map(|h| h.trim().to_string())
            .collect()
    } else {
        Vec::new()
    };
    let index = |c: &Column| -> Result<usize, ParseError> {
        match c {
            Column::Index(i) => Ok(i.saturating_sub(1)),
            Column::Name(n) => header.iter().position(|h| h == n).ok_or_else(|| {
                problem(
                    "line 1",
                    format!("no column named '{}' in the header", shown(n)),
                )
            }),
        }
    };
    let column = index(&spec.column)?;
    let filters: Vec<(usize, &[String])> = spec
        .filters
        .iter()
        .map(|f| Ok((index(&f.key)?, f.values.as_slice())))
        .collect::<Result<_, ParseError>>()?;
    let mut out = Parsed::default();
    for record in reader.records() {
        let record = record.map_err(|e| {
            let line = e.position().map_or(0, |p| p.line());
            problem(format!("line {line}"), format!("not CSV: {e}"))
        })?;
        let line = record.position().map_or(0, |p| p.line());
        if record.iter().all(|f| f.trim().is_empty()) {
            continue;
        }
        // A quote left open swallows the lines after it into one cell:
        // refused, not read as fewer rows, whether or not the row is kept
        // (red-team review: one in a filtered-out row hid later rows).
        if record.iter().any(|f| f.contains(['\n', '\r'])) {
            return Err(problem(
                format!("line {line}"),
                "a quoted field runs over several lines (a quote left open?)",
            ));
        }
        let keep = filters.iter().all(|(i, values)| {
            record
                .get(*i)
                .is_some_and(|v| values.iter().any(|w| w == v.trim()))
        });
        if !keep {
            out.skipped += 1;
            continue;
        }
        let cell = record.get(column).ok_or_else(|| {
            problem(
                format!("line {line}"),
                format!("no column {} in this row", column + 1),
            )
        })?;
        out.prefixes
            .push(prefix(|| format!("line {line}"), cell.trim())?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(p: &Parsed) -> Vec<String> {
        p.prefixes.iter().map(ToString::to_string).collect()
    }

    fn fixture(name: &str) -> Vec<u8> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("testdata/feeds")
            .join(name);
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    #[test]
    fn lines_take_comments_of_both_kinds_and_single_addresses() {
        let p = parse(
            &Format::Lines,
            b"# Cloudflare\n173.245.48.0/20\n\n198.51.100.7 ; one host\n2400:cb00::/32  # v6\n173.245.48.0/20\n",
        )
        .expect("parses");
        assert_eq!(
            strings(&p),
            ["173.245.48.0/20", "198.51.100.7/32", "2400:cb00::/32"]
        );
    }

    #[test]
    fn one_bad_line_refuses_the_whole_list_and_says_where() {
        let e = parse(&Format::Lines, b"192.0.2.0/24\n<html>\n").unwrap_err();
        assert_eq!(e.to_string(), "line 2: '<html>' is not an address or CIDR");
        let e = parse(&Format::Lines, b"192.0.2.0/24 extra\n").unwrap_err();
        assert_eq!(e.at, "line 1");
        let e = parse(&Format::Lines, b"10.0.0.1/8\n").unwrap_err();
        assert!(e.message.contains("host bits"), "{e}");
        assert!(parse(&Format::Lines, b"\xff\xfe").is_err());
    }

    #[test]
    fn a_hostile_line_is_shortened_and_escaped_in_the_error() {
        let long = format!("{}\u{1b}[31m\n", "x".repeat(500));
        let e = parse(&Format::Lines, long.as_bytes()).unwrap_err();
        assert!(e.message.chars().count() < 100, "{e}");
        assert!(!e.message.contains('\u{1b}'));
    }

    #[test]
    fn fixtures_in_the_publishers_formats_read_as_their_recipes_say() {
        let aws = Format::Json(Json {
            items: vec![vec!["prefixes".into()], vec!["ipv6_prefixes".into()]],
            fields: vec!["ip_prefix".into(), "ipv6_prefix".into()],
            filters: vec![
                Filter {
                    key: "service".into(),
                    values: vec!["EC2".into()],
                },
                Filter {
                    key: "region".into(),
                    values: vec!["ap-northeast-1".into()],
                },
            ],
            lines: false,
        });
        let p = parse(&aws, &fixture("aws-ip-ranges.json")).expect("aws");
        assert!(!p.prefixes.is_empty());
        assert!(p.skipped > 0);
        assert!(strings(&p).iter().any(|s| s.contains(':')), "IPv6 too");

        let gcp = Format::Json(Json {
            items: vec![vec!["prefixes".into()]],
            fields: vec!["ipv4Prefix".into(), "ipv6Prefix".into()],
            filters: vec![Filter {
                key: "scope".into(),
                values: vec!["asia-northeast1".into()],
            }],
            lines: false,
        });
        assert!(
            !parse(&gcp, &fixture("gcp-cloud.json"))
                .expect("gcp")
                .prefixes
                .is_empty()
        );

        let github = Format::Json(Json {
            items: vec![vec!["hooks".into()]],
            ..Json::default()
        });
        let p = parse(&github, &fixture("github-meta.json")).expect("github");
        assert!(!p.prefixes.is_empty());

        let spamhaus = Format::Json(Json {
            fields: vec!["cidr".into()],
            lines: true,
            ..Json::default()
        });
        let p = parse(&spamhaus, &fixture("spamhaus-drop_v4.json")).expect("spamhaus");
        assert_eq!(p.skipped, 1, "the metadata line");

        let icloud = Format::Csv(Csv {
            column: Column::Index(1),
            header: false,
            filters: vec![Filter {
                key: Column::Index(2),
                values: vec!["JP".into()],
            }],
        });
        let p = parse(&icloud, &fixture("icloud-egress-ip-ranges.csv")).expect("icloud");
        assert!(!p.prefixes.is_empty());
        assert!(p.skipped > 0);

        for lines in [
            "cloudflare-ips-v4",
            "cloudflare-ips-v6",
            "firehol_level1.netset",
            "tor-bulk-exit-list",
            "spamhaus-drop.txt",
        ] {
            let p = parse(&Format::Lines, &fixture(lines)).expect(lines);
            assert!(!p.prefixes.is_empty(), "{lines}");
        }
    }

    #[test]
    fn a_json_document_of_millions_of_small_objects_is_read_item_by_item() {
        // 4 MB of objects the list does not need, then the item it does.
        let mut doc = String::from("{\"prefixes\":[");
        for _ in 0..200_000 {
            doc.push_str("{\"a\":0},");
        }
        doc.push_str("{\"ip_prefix\":\"192.0.2.0/24\"}],\"ipv6_prefixes\":[]}");
        let f = Format::Json(Json {
            items: vec![vec!["prefixes".into()]],
            fields: vec!["ip_prefix".into()],
            ..Json::default()
        });
        let p = parse(&f, doc.as_bytes()).expect("parses");
        assert_eq!(strings(&p), ["192.0.2.0/24"]);
        assert_eq!(p.skipped, 200_000);
        // A key on the path given twice is refused, not read as either.
        let e = parse(
            &f,
            br#"{"prefixes":[],"prefixes":[{"ip_prefix":"0.0.0.0/0"}]}"#,
        )
        .unwrap_err();
        assert!(e.message.contains("appears twice"), "{e}");
        // Deep nesting is refused by the JSON reader's own limit.
        let deep = format!("{{\"prefixes\":[{}]}}", "[".repeat(10_000));
        assert!(parse(&f, deep.as_bytes()).is_err());
        // Trailing data after the document.
        assert!(parse(&f, br#"{"prefixes":[]} {"prefixes":[]}"#).is_err());
    }

    #[test]
    fn json_says_which_item_is_wrong() {
        let f = Format::Json(Json {
            items: vec![vec!["prefixes".into()]],
            fields: vec!["ip_prefix".into()],
            ..Json::default()
        });
        let e = parse(
            &f,
            br#"{"prefixes":[{"ip_prefix":"192.0.2.0/24"},{"ip_prefix":"0.0.0.0/33"}]}"#,
        )
        .unwrap_err();
        assert_eq!(e.at, "prefixes[1]");
        let e = parse(&f, br#"{"other":[]}"#).unwrap_err();
        assert_eq!(e.to_string(), "prefixes: no such key in the document");
        let e = parse(&f, br#"{"prefixes":[{"ip_prefix":7}]}"#).unwrap_err();
        assert!(e.message.contains("not a string"));
    }

    #[test]
    fn csv_reads_columns_by_name_with_a_header() {
        let f = Format::Csv(Csv {
            column: Column::Name("prefix".into()),
            header: true,
            filters: vec![Filter {
                key: Column::Name("country".into()),
                values: vec!["JP".into()],
            }],
        });
        let p = parse(
            &f,
            b"prefix,country\n192.0.2.0/24,JP\n198.51.100.0/24,GB\n\"203.0.113.0/24\",JP\n",
        )
        .expect("csv");
        assert_eq!(strings(&p), ["192.0.2.0/24", "203.0.113.0/24"]);
        assert_eq!(p.skipped, 1);
        let e = parse(&f, b"cidr,country\n").unwrap_err();
        assert!(e.message.contains("no column named 'prefix'"));
    }

    #[test]
    fn a_quote_left_open_refuses_the_list_instead_of_swallowing_rows() {
        let open = |e: ParseError| {
            e.message.contains("several lines") || e.message.contains("never closed")
        };
        let f = Format::Csv(Csv {
            column: Column::Index(1),
            header: false,
            filters: Vec::new(),
        });
        let e = parse(
            &f,
            b"192.0.2.0/24,JP\n\"198.51.100.0/24,JP\n203.0.113.0/24,JP\n",
        )
        .unwrap_err();
        assert!(open(e.clone()), "{e}");
        // In a row the filter leaves out, too.
        let jp = Format::Csv(Csv {
            column: Column::Index(1),
            header: false,
            filters: vec![Filter {
                key: Column::Index(2),
                values: vec!["JP".into()],
            }],
        });
        let e = parse(
            &jp,
            b"192.0.2.0/24,JP\n198.51.100.0/24,US,\"oops\n203.0.113.0/24,JP\n",
        )
        .unwrap_err();
        assert!(open(e.clone()), "{e}");
        // A closed quote that runs over lines, in a filtered-out row.
        let e = parse(
            &jp,
            b"192.0.2.0/24,JP\n198.51.100.0/24,\"J\nP\",x\n203.0.113.0/24,JP\n",
        )
        .unwrap_err();
        assert!(open(e.clone()), "{e}");
        // On the last row of a body cut short, without a final newline.
        let e = parse(&jp, b"192.0.2.0/24,JP\n198.51.100.0/24,\"JP").unwrap_err();
        assert!(e.message.contains("never closed"), "{e}");
        // Escaped quotes inside a quoted field are pairs: fine.
        assert!(parse(&jp, b"192.0.2.0/24,JP,\"a \"\"b\"\" c\"\n").is_ok());
    }
}

#[cfg(test)]
#[path = "../../testdata/feeds/generate.rs"]
mod generate;

#[cfg(test)]
mod large {
    use super::*;

    #[test]
    fn the_icloud_private_relay_list_at_its_real_size_loads_whole() {
        let csv = generate::icloud_csv(287_000);
        assert!(csv.len() > 10_000_000, "about the real file's 12 MB");
        let f = Format::Csv(Csv {
            column: Column::Index(1),
            header: false,
            filters: Vec::new(),
        });
        let p = parse(&f, csv.as_bytes()).expect("loads");
        assert_eq!(p.prefixes.len(), 287_000);
        // And the judge accepts it against itself (no change) quickly
        // enough to run on every fetch.
        let change = crate::lists::judge(Some(&p.prefixes), &p.prefixes, &Default::default())
            .expect("same list");
        assert!(change.is_empty());
    }

    #[test]
    fn aws_at_its_real_size_filters_by_service_and_region() {
        let json = generate::aws_json(9_000, 3_000);
        let f = Format::Json(Json {
            items: vec![vec!["prefixes".into()], vec!["ipv6_prefixes".into()]],
            fields: vec!["ip_prefix".into(), "ipv6_prefix".into()],
            filters: vec![Filter {
                key: "region".into(),
                values: vec!["ap-northeast-1".into()],
            }],
            lines: false,
        });
        let p = parse(&f, json.as_bytes()).expect("loads");
        assert_eq!(p.prefixes.len(), 9_000 / 4 + 3_000 / 4);
        assert_eq!(p.skipped, 12_000 - p.prefixes.len());
    }
}
