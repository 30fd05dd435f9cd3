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
use serde_json::Value;

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

fn json(spec: &Json, text: &str) -> Result<Parsed, ParseError> {
    let doc: Value = serde_json::from_str(text)
        .map_err(|e| problem(format!("line {}", e.line()), format!("not JSON: {e}")))?;
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
        let mut at = &doc;
        for key in path {
            at = at
                .get(key)
                .ok_or_else(|| problem(&name, "no such key in the document"))?;
        }
        let items = at
            .as_array()
            .ok_or_else(|| problem(&name, "is not a list"))?;
        for (i, item) in items.iter().enumerate() {
            item_prefix(spec, item, || format!("{name}[{i}]"), &mut out)?;
        }
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
        let item: Value =
            serde_json::from_str(line).map_err(|e| problem(at(), format!("not JSON: {e}")))?;
        item_prefix(spec, &item, at, &mut out)?;
    }
    Ok(out)
}

/// One item: skipped when a filter does not match or it holds none of the
/// prefix fields; an error when the field is there but not a prefix.
fn item_prefix(
    spec: &Json,
    item: &Value,
    at: impl Fn() -> String,
    out: &mut Parsed,
) -> Result<(), ParseError> {
    let matches = spec.filters.iter().all(|f| {
        item.get(&f.key)
            .and_then(scalar)
            .is_some_and(|v| f.values.contains(&v))
    });
    if !matches {
        out.skipped += 1;
        return Ok(());
    }
    let value = if spec.fields.is_empty() {
        Some(item)
    } else {
        spec.fields.iter().find_map(|f| item.get(f))
    };
    let Some(value) = value else {
        out.skipped += 1;
        return Ok(());
    };
    let text = value
        .as_str()
        .ok_or_else(|| problem(at(), "the prefix is not a string"))?;
    out.prefixes.push(prefix(&at, text)?);
    Ok(())
}

/// A JSON scalar as text: strings as they are, numbers and booleans as
/// written; objects, arrays and null never match a filter.
fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn csv(spec: &Csv, text: &str) -> Result<Parsed, ParseError> {
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
