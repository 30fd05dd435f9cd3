//! Request paths: strict normalization, and the patterns rules match them with.
//!
//! The engine decides on the normalized path and the proxy forwards exactly
//! that path, so what is checked is what the console receives. Anything whose
//! meaning differs between servers (an encoded slash, a backslash, a dot
//! segment with parameters) is rejected rather than guessed at.

use std::borrow::Cow;
use std::fmt;

/// Why a path was rejected. The proxy answers these with 400.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("the path does not start with '/'")]
    NotAbsolute,
    #[error("the path contains an encoded slash (%2F)")]
    EncodedSlash,
    #[error("the path contains a backslash or an encoded backslash (%5C)")]
    Backslash,
    #[error("the path contains a NUL or other control character")]
    ControlChar,
    #[error("the path contains an invalid percent-encoding")]
    BadPercent,
    #[error("the path's percent-encoded bytes are not valid UTF-8")]
    InvalidUtf8,
    #[error("the path has a dot segment with parameters ('..;' or '.;')")]
    DotSegmentParams,
    #[error(
        "a path segment carries ';' parameters, which Tomcat, Jetty and Spring remove before routing (allow with allow_path_parameters: true)"
    )]
    Parameters,
    #[error(
        "a path segment ends in '.' or a space, which IIS and Windows remove (allow with allow_trailing_dots: true)"
    )]
    TrailingDot,
    #[error(
        "the path is percent-encoded twice ('%25' before hex digits), which some servers decode twice"
    )]
    DoubleEncoded,
}

/// Refuses forms of a normalized path that some consoles route as another
/// path, unless the policy allows them:
/// - `;` parameters in a segment (RFC 3986 §3.3): `/admin;x/users` is
///   `/admin/users` to Tomcat, Jetty and Spring, so a rule on `/admin/**`
///   would not see it;
/// - a segment ending in `.` or a space (`%20`): `/admin.` is `/admin` to
///   IIS and other servers on Windows.
///
/// `path` is normalized ([`normalize`]): dot segments are gone and `%2E`
/// is decoded, so a trailing dot is a literal `.` at a segment's end.
pub fn check_ambiguous(
    path: &str,
    allow_parameters: bool,
    allow_trailing_dots: bool,
) -> Result<(), PathError> {
    // One pass over the bytes (it runs on every request); parameters are
    // reported first, then double encoding, then trailing dots.
    let b = path.as_bytes();
    let segment_ends = |at: usize| at == b.len() || b[at] == b'/';
    let (mut double, mut trailing) = (false, false);
    for (i, &c) in b.iter().enumerate() {
        match c {
            b';' if !allow_parameters => return Err(PathError::Parameters),
            b'%' => {
                let rest = &b[i + 1..];
                // `%3B` too: a server that decodes before it strips
                // parameters reads it as `;` (Spring's firewall refuses it
                // for that reason).
                if !allow_parameters
                    && rest.len() >= 2
                    && rest[0] == b'3'
                    && rest[1].eq_ignore_ascii_case(&b'b')
                {
                    return Err(PathError::Parameters);
                }
                // `%25` followed by two hex digits: `%252e` is `%2e` to a
                // server that decodes once more, then `.`. No browser
                // writes it for a real path.
                double |= rest.len() >= 4
                    && rest[..2] == *b"25"
                    && rest[2].is_ascii_hexdigit()
                    && rest[3].is_ascii_hexdigit();
                trailing |= rest.len() >= 2 && rest[..2] == *b"20" && segment_ends(i + 3);
            }
            b'.' => trailing |= segment_ends(i + 1),
            _ => {}
        }
    }
    if double {
        return Err(PathError::DoubleEncoded);
    }
    if trailing && !allow_trailing_dots {
        return Err(PathError::TrailingDot);
    }
    Ok(())
}

/// Splits a request target into its path and its query (without the `?`).
pub fn split_query(target: &str) -> (&str, Option<&str>) {
    match target.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (target, None),
    }
}

/// RFC 3986 §2.3 unreserved characters: decoding them never changes meaning.
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// RFC 3986 §3.3 `pchar` minus `%` (handled separately), plus `/`.
fn is_path_char(b: u8) -> bool {
    is_unreserved(b)
        || matches!(
            b,
            b'!' | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b';'
                | b'='
                | b':'
                | b'@'
                | b'/'
        )
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// Normalizes a request path (without its query):
/// - percent-encoded unreserved characters are decoded (RFC 3986 §6.2.2.2),
///   other percent-encodings keep upper-case hex digits (§6.2.2.1), and bytes
///   that may not appear raw in a path are percent-encoded;
/// - dot segments are resolved (RFC 3986 §5.2.4 remove_dot_segments; `..`
///   never climbs above the root);
/// - repeated slashes are merged.
///
/// Rejected: encoded slash or backslash, any backslash, control characters
/// (raw or encoded, NUL included), bad percent-encoding, percent-encoded bytes
/// that are not UTF-8, and `.;`/`..;` segments (some servers treat `..;` as
/// `..`, the classic allowlist bypass).
///
/// Returns the input unchanged (borrowed) when it is already normal.
pub fn normalize(path: &str) -> Result<Cow<'_, str>, PathError> {
    if path.is_empty() {
        return Ok(Cow::Borrowed("/"));
    }
    let bytes = path.as_bytes();
    if bytes[0] != b'/' {
        return Err(PathError::NotAbsolute);
    }
    if is_normal(bytes)? {
        return Ok(Cow::Borrowed(path));
    }

    // Pass 1: percent-decoding and encoding into `text`; `decoded` collects
    // the bytes the path stands for, to check that they are UTF-8.
    let mut text = String::with_capacity(path.len() + 8);
    let mut decoded: Vec<u8> = Vec::with_capacity(path.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'%' => {
                let (Some(hi), Some(lo)) = (
                    bytes.get(i + 1).copied().and_then(hex_val),
                    bytes.get(i + 2).copied().and_then(hex_val),
                ) else {
                    return Err(PathError::BadPercent);
                };
                let v = (hi << 4) | lo;
                match v {
                    b'/' => return Err(PathError::EncodedSlash),
                    b'\\' => return Err(PathError::Backslash),
                    0..=0x1f | 0x7f => return Err(PathError::ControlChar),
                    _ if is_unreserved(v) => text.push(v as char),
                    _ => push_encoded(&mut text, v),
                }
                decoded.push(v);
                i += 3;
            }
            b'\\' => return Err(PathError::Backslash),
            0..=0x1f | 0x7f => return Err(PathError::ControlChar),
            _ if is_path_char(b) => {
                text.push(b as char);
                decoded.push(b);
                i += 1;
            }
            _ => {
                // Raw bytes not allowed in a path (space, quote, non-ASCII...)
                // are written percent-encoded; the input is a &str, so a
                // non-ASCII run is already valid UTF-8.
                push_encoded(&mut text, b);
                decoded.push(b);
                i += 1;
            }
        }
    }
    if std::str::from_utf8(&decoded).is_err() {
        return Err(PathError::InvalidUtf8);
    }

    // Pass 2: segments. `text` is ASCII and starts with '/'.
    let mut out = String::with_capacity(text.len());
    let trailing = resolve_segments(&text, &mut out)?;
    if trailing || out.is_empty() {
        out.push('/');
    }
    Ok(Cow::Owned(out))
}

fn push_encoded(out: &mut String, b: u8) {
    out.push('%');
    out.push(HEX[usize::from(b >> 4)] as char);
    out.push(HEX[usize::from(b & 0xf)] as char);
}

/// Writes `/seg/seg` for the segments of `text` with dot segments resolved and
/// empty segments dropped; returns whether the result should end with '/'.
fn resolve_segments(text: &str, out: &mut String) -> Result<bool, PathError> {
    let mut trailing = false;
    for seg in text.split('/').skip(1) {
        trailing = false;
        match seg {
            "" => trailing = true,
            "." => trailing = true,
            ".." => {
                let cut = out.rfind('/').unwrap_or(0);
                out.truncate(cut);
                trailing = true;
            }
            _ if seg.starts_with(".;") || seg.starts_with("..;") => {
                return Err(PathError::DotSegmentParams);
            }
            _ => {
                out.push('/');
                out.push_str(seg);
            }
        }
    }
    Ok(trailing)
}

/// Fast check for the common case: nothing to decode, encode or resolve.
fn is_normal(bytes: &[u8]) -> Result<bool, PathError> {
    let mut prev_slash = false;
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'\\' => return Err(PathError::Backslash),
            0..=0x1f | 0x7f => return Err(PathError::ControlChar),
            b'%' => return Ok(false),
            b'/' => {
                if prev_slash {
                    return Ok(false);
                }
                prev_slash = true;
                continue;
            }
            b'.' if prev_slash => {
                // "/." or "/.." followed by '/', ';' or the end is a dot segment.
                let rest = &bytes[i + 1..];
                let rest = rest.strip_prefix(b".").unwrap_or(rest);
                if matches!(rest.first(), None | Some(b'/') | Some(b';')) {
                    return Ok(false);
                }
            }
            _ if !is_path_char(b) => return Ok(false),
            _ => {}
        }
        prev_slash = false;
    }
    Ok(true)
}

/// One segment of a path pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Seg {
    Lit(Box<str>),
    /// `*`: exactly one non-empty segment.
    Star,
}

/// A compiled path pattern: `/login` (exact; a trailing slash is ignored),
/// `/api/*/users` (`*` is one segment), `/admin/**` (`/admin` and everything
/// below it), `/**` (every path).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathPattern {
    segs: Box<[Seg]>,
    /// Ends in `/**`.
    prefix: bool,
    text: Box<str>,
}

/// Why a pattern in the policy is invalid, with help.
#[derive(Debug, PartialEq, Eq)]
pub struct PatternError {
    pub message: String,
    pub help: Option<String>,
}

impl PathPattern {
    pub fn parse(text: &str) -> Result<Self, PatternError> {
        if !text.starts_with('/') {
            return Err(PatternError {
                message: format!("path pattern '{text}' does not start with '/'"),
                help: Some(format!("write '/{text}'")),
            });
        }
        let mut segs = Vec::new();
        let mut prefix = false;
        let parts: Vec<&str> = text[1..].split('/').collect();
        for (i, part) in parts.iter().enumerate() {
            let last = i + 1 == parts.len();
            match *part {
                "**" if last => prefix = true,
                "**" => {
                    return Err(PatternError {
                        message: format!("path pattern '{text}': '**' may only end a pattern"),
                        help: Some("use '*' for one segment in the middle of a pattern".into()),
                    });
                }
                "*" => segs.push(Seg::Star),
                "" if last => {} // trailing slash: same as without
                "" => {
                    return Err(PatternError {
                        message: format!("path pattern '{text}' has an empty segment ('//')"),
                        help: Some(
                            "request paths are normalized: repeated slashes are merged".into(),
                        ),
                    });
                }
                lit if lit.contains('*') => {
                    return Err(PatternError {
                        message: format!("path pattern '{text}': '*' must be a whole segment"),
                        help: Some("use '*' for one segment or end the pattern with '/**'".into()),
                    });
                }
                lit => {
                    let seg_path = format!("/{lit}");
                    match normalize(&seg_path) {
                        Ok(n) if n == seg_path => segs.push(Seg::Lit(lit.into())),
                        Ok(n) => {
                            return Err(PatternError {
                                message: format!("path pattern '{text}' is not in normalized form"),
                                help: Some(format!(
                                    "requests are matched after normalization; write '{n}' for this segment"
                                )),
                            });
                        }
                        Err(e) => {
                            return Err(PatternError {
                                message: format!("path pattern '{text}': {e}"),
                                help: None,
                            });
                        }
                    }
                }
            }
        }
        Ok(Self {
            segs: segs.into(),
            prefix,
            text: text.into(),
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// A path this pattern matches: `*` becomes `x`; `/admin/**` is
    /// `/admin`. For asking the engine about a route (the whoami page).
    pub fn example(&self) -> String {
        let mut out = String::new();
        for seg in self.segs.iter() {
            out.push('/');
            match seg {
                Seg::Lit(l) => out.push_str(l),
                Seg::Star => out.push('x'),
            }
        }
        if out.is_empty() {
            out.push('/');
        }
        out
    }

    /// Paths that tell patterns apart, for `netwarden diff`: this pattern's
    /// own (a `*` as a segment no literal is likely to be; below a `/**`
    /// too), and one `other` matches as well, if any path is matched by
    /// both.
    pub fn witnesses(&self, other: Option<&PathPattern>, ci: bool) -> Vec<String> {
        const ANY: &str = "~nw~";
        let join = |segs: &[String]| {
            if segs.is_empty() {
                "/".to_string()
            } else {
                segs.iter().map(|s| format!("/{s}")).collect()
            }
        };
        let own: Vec<String> = self
            .segs
            .iter()
            .map(|s| match s {
                Seg::Lit(l) => l.to_string(),
                Seg::Star => ANY.to_string(),
            })
            .collect();
        let mut out = vec![join(&own)];
        if self.prefix {
            let mut deeper = own.clone();
            deeper.push(ANY.into());
            out.push(join(&deeper));
        }
        let Some(other) = other else { return out };
        // Both match a path of length n when each pattern's segments agree
        // position by position (a literal against a star takes the literal).
        let (a, b) = (self, other);
        let n = a.segs.len().max(b.segs.len());
        let fits = |p: &PathPattern| p.segs.len() == n || (p.prefix && p.segs.len() <= n);
        if !(fits(a) && fits(b)) {
            return out;
        }
        let mut both = Vec::with_capacity(n);
        for i in 0..n {
            let seg = match (a.segs.get(i), b.segs.get(i)) {
                (Some(Seg::Lit(x)), Some(Seg::Lit(y))) => {
                    let same = if ci {
                        x.eq_ignore_ascii_case(y)
                    } else {
                        x == y
                    };
                    if !same {
                        return out;
                    }
                    x.to_string()
                }
                (Some(Seg::Lit(x)), _) | (_, Some(Seg::Lit(x))) => x.to_string(),
                _ => ANY.to_string(),
            };
            both.push(seg);
        }
        out.push(join(&both));
        out
    }

    /// Matches a normalized path. `ci`: compare literal segments ignoring ASCII case.
    pub fn matches(&self, path: &str, ci: bool) -> bool {
        // A normalized path starts with '/'; ignore one trailing slash.
        let body = path.strip_prefix('/').unwrap_or(path);
        let body = body.strip_suffix('/').unwrap_or(body);
        let mut parts = body.split('/').filter(|s| !s.is_empty());
        for seg in self.segs.iter() {
            let Some(part) = parts.next() else {
                return false;
            };
            if let Seg::Lit(lit) = seg {
                let eq = if ci {
                    lit.eq_ignore_ascii_case(part)
                } else {
                    **lit == *part
                };
                if !eq {
                    return false;
                }
            }
        }
        self.prefix || parts.next().is_none()
    }

    /// Whether every path `later` matches is matched by `self` too.
    pub fn covers(&self, later: &PathPattern, ci: bool) -> bool {
        if self.prefix {
            if later.segs.len() < self.segs.len() {
                return false;
            }
        } else if later.prefix || later.segs.len() != self.segs.len() {
            return false;
        }
        self.segs
            .iter()
            .zip(later.segs.iter())
            .all(|(a, b)| match (a, b) {
                (Seg::Star, _) => true,
                (Seg::Lit(_), Seg::Star) => false,
                (Seg::Lit(x), Seg::Lit(y)) => {
                    if ci {
                        x.eq_ignore_ascii_case(y)
                    } else {
                        x == y
                    }
                }
            })
    }
}

impl PathPattern {
    /// The first segment when it is a literal: every path this pattern
    /// matches starts with it.
    fn first_literal(&self) -> Option<&str> {
        match self.segs.first() {
            Some(Seg::Lit(l)) => Some(l),
            _ => None,
        }
    }
}

/// Rules indexed by the first literal segment of their path patterns, so a
/// request visits only the rules that could match its path, in policy order.
/// With 50 rules, most of them under their own prefix, a request typically
/// visits two or three instead of fifty.
#[derive(Debug, Default)]
pub struct PathIndex {
    /// First segment (ASCII-lowercased when paths are case-insensitive) ->
    /// candidate rules in order, including every rule in `any`.
    by_first: std::collections::HashMap<Box<str>, Box<[usize]>>,
    /// Rules that can match whatever the first segment is.
    any: Box<[usize]>,
    ci: bool,
}

/// Longest first segment looked up case-insensitively without allocating;
/// longer ones fall back to the `any` list plus a scan (see `candidates`).
const MAX_CI_KEY: usize = 64;

impl PathIndex {
    /// `rules` yields each rule's path patterns (`None`: every path).
    pub fn build<'a>(rules: impl Iterator<Item = Option<&'a [PathPattern]>>, ci: bool) -> Self {
        let mut any = Vec::new();
        let mut keyed: Vec<(String, usize)> = Vec::new();
        for (i, paths) in rules.enumerate() {
            let firsts: Option<Vec<&str>> = match paths {
                None => None,
                Some(p) => p.iter().map(PathPattern::first_literal).collect(),
            };
            match firsts {
                None => any.push(i),
                Some(list) => {
                    for first in list {
                        let key = if ci {
                            first.to_ascii_lowercase()
                        } else {
                            first.to_owned()
                        };
                        keyed.push((key, i));
                    }
                }
            }
        }
        let mut by_first: std::collections::HashMap<Box<str>, Vec<usize>> =
            std::collections::HashMap::new();
        for (key, i) in keyed {
            by_first.entry(key.into()).or_default().push(i);
        }
        let by_first = by_first
            .into_iter()
            .map(|(k, mut v)| {
                v.extend_from_slice(&any);
                v.sort_unstable();
                v.dedup();
                (k, v.into_boxed_slice())
            })
            .collect();
        Self {
            by_first,
            any: any.into(),
            ci,
        }
    }

    /// The rules that may match `path` (normalized), in policy order.
    /// `None` means "every rule" (a case-insensitive first segment too long
    /// to fold on the stack).
    pub fn candidates(&self, path: &str) -> Option<&[usize]> {
        let first = path.strip_prefix('/').unwrap_or(path);
        let first = first.split('/').next().unwrap_or("");
        let hit = if self.ci {
            if first.len() > MAX_CI_KEY {
                return None;
            }
            let mut buf = [0u8; MAX_CI_KEY];
            let folded = &mut buf[..first.len()];
            folded.copy_from_slice(first.as_bytes());
            folded.make_ascii_lowercase();
            // PANIC SAFETY: ASCII lowercasing keeps a &str's bytes valid UTF-8.
            let folded = std::str::from_utf8(folded).expect("ASCII folding preserves UTF-8");
            self.by_first.get(folded)
        } else {
            self.by_first.get(first)
        };
        Some(hit.map_or(&self.any, |v| v))
    }
}

impl fmt::Display for PathPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn normalization_table() {
        let cases: &[(&str, Result<&str, PathError>)] = &[
            ("", Ok("/")),
            ("/", Ok("/")),
            ("/login", Ok("/login")),
            ("/admin/", Ok("/admin/")),
            ("//admin///users", Ok("/admin/users")),
            ("/a/./b/../c", Ok("/a/c")),
            ("/a/b/..", Ok("/a/")),
            ("/a/.", Ok("/a/")),
            ("/../../etc/passwd", Ok("/etc/passwd")),
            ("/%61dmin", Ok("/admin")),
            ("/%2e%2e/admin", Ok("/admin")),
            ("/static/%2E%2E/admin", Ok("/admin")),
            ("/caf%c3%a9", Ok("/caf%C3%A9")),
            ("/café", Ok("/caf%C3%A9")),
            ("/a b", Ok("/a%20b")),
            ("/a%20b", Ok("/a%20b")),
            ("/a;b=c/d", Ok("/a;b=c/d")),
            ("/...", Ok("/...")),
            ("/.well-known/x", Ok("/.well-known/x")),
            ("/a%2Fb", Err(PathError::EncodedSlash)),
            ("/a%2fb", Err(PathError::EncodedSlash)),
            ("/a%5Cb", Err(PathError::Backslash)),
            ("/a\\b", Err(PathError::Backslash)),
            ("/a%00", Err(PathError::ControlChar)),
            ("/a\0", Err(PathError::ControlChar)),
            ("/a%0d%0a", Err(PathError::ControlChar)),
            ("/a%zz", Err(PathError::BadPercent)),
            ("/a%4", Err(PathError::BadPercent)),
            ("/a%", Err(PathError::BadPercent)),
            ("/a%ff", Err(PathError::InvalidUtf8)),
            ("/a%c3", Err(PathError::InvalidUtf8)),
            ("/static/..;/admin", Err(PathError::DotSegmentParams)),
            ("/static/.;x/admin", Err(PathError::DotSegmentParams)),
            ("admin", Err(PathError::NotAbsolute)),
            ("*", Err(PathError::NotAbsolute)),
        ];
        for (input, want) in cases {
            let got = normalize(input).map(|c| c.into_owned());
            let want = want.map(str::to_owned);
            assert_eq!(got, want, "normalize({input:?})");
        }
    }

    #[test]
    fn ambiguous_segments_are_refused_unless_allowed() {
        type Case = (&'static str, Result<(), PathError>, Result<(), PathError>);
        let cases: &[Case] = &[
            // path, default, with both switches on
            ("/admin/users", Ok(()), Ok(())),
            ("/.well-known/x", Ok(()), Ok(())),
            ("/a.b/c", Ok(()), Ok(())),
            ("/admin;x/users", Err(PathError::Parameters), Ok(())),
            ("/login;jsessionid=1", Err(PathError::Parameters), Ok(())),
            ("/admin.", Err(PathError::TrailingDot), Ok(())),
            ("/admin./users", Err(PathError::TrailingDot), Ok(())),
            ("/...", Err(PathError::TrailingDot), Ok(())),
            ("/admin%20", Err(PathError::TrailingDot), Ok(())),
            ("/a%3Bb", Err(PathError::Parameters), Ok(())),
            ("/static/..%3B/admin", Err(PathError::Parameters), Ok(())),
            (
                "/admin%252e/users",
                Err(PathError::DoubleEncoded),
                Err(PathError::DoubleEncoded),
            ),
            ("/a%25", Ok(()), Ok(())),
            ("/100%25zz", Ok(()), Ok(())),
        ];
        for (path, strict, lenient) in cases {
            let n = normalize(path).expect("normal");
            assert_eq!(check_ambiguous(&n, false, false), *strict, "{path}");
            assert_eq!(check_ambiguous(&n, true, true), *lenient, "{path}");
        }
        // %2E is decoded before the check: the console sees the dot.
        let n = normalize("/admin%2E").expect("normal");
        assert_eq!(
            check_ambiguous(&n, false, false),
            Err(PathError::TrailingDot)
        );
    }

    #[test]
    fn normal_paths_are_borrowed_not_copied() {
        assert!(matches!(
            normalize("/api/v1/users").unwrap(),
            Cow::Borrowed(_)
        ));
        assert!(matches!(normalize("/a//b").unwrap(), Cow::Owned(_)));
    }

    #[test]
    fn query_is_split_off() {
        assert_eq!(
            split_query("/login?next=/admin"),
            ("/login", Some("next=/admin"))
        );
        assert_eq!(split_query("/login"), ("/login", None));
    }

    fn pat(s: &str) -> PathPattern {
        PathPattern::parse(s).unwrap()
    }

    #[test]
    fn pattern_matching_table() {
        let cases: &[(&str, &str, bool)] = &[
            ("/login", "/login", true),
            ("/login", "/login/", true),
            ("/login", "/login/x", false),
            ("/login", "/logins", false),
            ("/login", "/Login", false),
            ("/admin/**", "/admin", true),
            ("/admin/**", "/admin/", true),
            ("/admin/**", "/admin/a/b", true),
            ("/admin/**", "/administrator", false),
            ("/**", "/", true),
            ("/**", "/anything/at/all", true),
            ("/", "/", true),
            ("/", "/x", false),
            ("/api/*/users", "/api/v1/users", true),
            ("/api/*/users", "/api/users", false),
            ("/api/*/users", "/api/v1/v2/users", false),
            ("/api/*/**", "/api/v1", true),
            ("/api/*/**", "/api", false),
        ];
        for (p, path, want) in cases {
            assert_eq!(pat(p).matches(path, false), *want, "{p} vs {path}");
        }
        assert!(pat("/login").matches("/LOGIN", true));
    }

    #[test]
    fn bad_patterns_are_explained() {
        for bad in [
            "login",
            "/a/**/b",
            "/a//b",
            "/static/*.js",
            "/a/../b",
            "/%61",
            "/a%2Fb",
        ] {
            assert!(PathPattern::parse(bad).is_err(), "{bad} should be rejected");
        }
        let e = PathPattern::parse("/%61dmin").unwrap_err();
        assert_eq!(
            e.help.as_deref(),
            Some("requests are matched after normalization; write '/admin' for this segment")
        );
    }

    #[test]
    fn coverage_table() {
        let cases: &[(&str, &str, bool)] = &[
            ("/**", "/login", true),
            ("/**", "/a/**", true),
            ("/a/**", "/a", true),
            ("/a/**", "/a/b/**", true),
            ("/a/**", "/b", false),
            ("/a", "/a/**", false),
            ("/a/*", "/a/b", true),
            ("/a/b", "/a/*", false),
            ("/login", "/login", true),
        ];
        for (a, b, want) in cases {
            assert_eq!(pat(a).covers(&pat(b), false), *want, "{a} covers {b}");
        }
    }

    #[test]
    fn index_visits_only_rules_that_can_match() {
        let rules: Vec<Option<Vec<PathPattern>>> = vec![
            Some(vec![pat("/healthz")]),
            Some(vec![pat("/admin/**"), pat("/login")]),
            None,
            Some(vec![pat("/*/x")]),
            Some(vec![pat("/Admin/y")]),
        ];
        let idx = PathIndex::build(rules.iter().map(|r| r.as_deref()), false);
        assert_eq!(idx.candidates("/admin/a"), Some(&[1, 2, 3][..]));
        assert_eq!(idx.candidates("/login/"), Some(&[1, 2, 3][..]));
        assert_eq!(idx.candidates("/orders"), Some(&[2, 3][..]));
        assert_eq!(idx.candidates("/"), Some(&[2, 3][..]));
        let ci = PathIndex::build(rules.iter().map(|r| r.as_deref()), true);
        assert_eq!(ci.candidates("/ADMIN/y"), Some(&[1, 2, 3, 4][..]));
    }

    fn path_strategy() -> impl Strategy<Value = String> {
        let seg = prop_oneof![
            Just("".to_string()),
            Just(".".to_string()),
            Just("..".to_string()),
            Just("%2e".to_string()),
            Just("%2E%2e".to_string()),
            Just("%41".to_string()),
            Just("%C3%A9".to_string()),
            Just("a b".to_string()),
            Just("é".to_string()),
            "[a-z.;~%]{1,4}",
        ];
        prop::collection::vec(seg, 0..8).prop_map(|segs| format!("/{}", segs.join("/")))
    }

    proptest! {
        #[test]
        fn normalize_is_idempotent_and_clean(p in path_strategy()) {
            if let Ok(n) = normalize(&p) {
                let again = normalize(&n).expect("a normalized path normalizes again");
                prop_assert_eq!(again.as_ref(), n.as_ref());
                prop_assert!(n.starts_with('/'));
                prop_assert!(!n.contains("//"), "{} has //", n);
                for seg in n.split('/') {
                    prop_assert!(seg != "." && seg != "..", "{} has a dot segment", n);
                }
            }
        }

        #[test]
        fn normalize_never_panics(p in "\\PC{0,40}") {
            let _ = normalize(&p);
        }

        /// The one-pass check decides as the plain three-scan version it
        /// replaced (kept here as the reference).
        #[test]
        fn the_one_pass_check_decides_as_the_plain_scans(
            p in "/([a-z.;%/ ]|%3B|%3b|%25|%252e|%20|\\.\\.){0,12}",
            params in any::<bool>(),
            dots in any::<bool>(),
        ) {
            prop_assert_eq!(check_ambiguous(&p, params, dots), reference(&p, params, dots), "{}", p);
        }
    }

    fn reference(
        path: &str,
        allow_parameters: bool,
        allow_trailing_dots: bool,
    ) -> Result<(), PathError> {
        if !allow_parameters && (path.contains(';') || path.contains("%3B") || path.contains("%3b"))
        {
            return Err(PathError::Parameters);
        }
        let b = path.as_bytes();
        if b.windows(5)
            .any(|w| w[..3] == *b"%25" && w[3].is_ascii_hexdigit() && w[4].is_ascii_hexdigit())
        {
            return Err(PathError::DoubleEncoded);
        }
        if !allow_trailing_dots {
            for seg in path.split('/') {
                if seg.ends_with('.') || seg.ends_with("%20") {
                    return Err(PathError::TrailingDot);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod example_tests {
    use super::PathPattern;

    #[test]
    fn every_example_is_matched_by_its_pattern() {
        for p in ["/login", "/api/*/sign-in", "/admin/**", "/**", "/", "/a/b/"] {
            let pat = PathPattern::parse(p).expect("pattern");
            let ex = pat.example();
            assert!(pat.matches(&ex, false), "{p} -> {ex}");
        }
    }
}
