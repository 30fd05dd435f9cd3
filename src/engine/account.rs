//! The account a sign-in is for, read from the first, bounded part of its
//! body (a rule's `account:`): a form field (`application/x-www-form-
//! urlencoded` or `multipart/form-data`) or a JSON pointer. Pure: bytes in,
//! the account name or why there is none out. The caller keeps only a keyed
//! hash of the name ([`fold`] first); the name is never logged or stored.

use std::borrow::Cow;

/// Where a login rule's sign-ins carry the account name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountSpec {
    /// The form field (urlencoded or multipart) that holds it.
    pub form: Option<Box<str>>,
    /// The JSON pointer (RFC 6901) to it in an `application/json` body.
    pub json: Option<Box<str>>,
    /// Body bytes read at most; a longer body counts without an account.
    pub max_body: usize,
}

pub mod defaults {
    /// A sign-in form is a few hundred bytes; 16 KiB leaves room for a
    /// large multipart form while bounding what each sign-in holds.
    pub const MAX_BODY: usize = 16 * 1024;
    /// The most a policy may ask to read.
    pub const MAX_BODY_LIMIT: usize = 1024 * 1024;
}

/// Why a sign-in counts without an account (the decision line's
/// `login.account`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoAccount {
    /// Not a content type the rule reads, or the field is absent or empty.
    Missing,
    /// The body is longer than `max_body`.
    Oversized,
    /// The body did not arrive within the header read timeout.
    Slow,
    /// A form or JSON body that does not parse, or a name not in UTF-8.
    Unparseable,
    /// The field appears twice with different values: the console may read
    /// either, so neither is believed.
    Ambiguous,
}

impl NoAccount {
    pub fn as_str(self) -> &'static str {
        match self {
            NoAccount::Missing => "missing",
            NoAccount::Oversized => "oversized",
            NoAccount::Slow => "slow",
            NoAccount::Unparseable => "unparseable",
            NoAccount::Ambiguous => "ambiguous",
        }
    }

    /// The reason [`NoAccount::as_str`] names (a logged `login.account`).
    pub fn parse(word: &str) -> Option<Self> {
        [
            NoAccount::Missing,
            NoAccount::Oversized,
            NoAccount::Slow,
            NoAccount::Unparseable,
            NoAccount::Ambiguous,
        ]
        .into_iter()
        .find(|n| n.as_str() == word)
    }
}

/// The body formats an account is read from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format<'a> {
    Form,
    Multipart {
        boundary: &'a [u8],
    },
    Json,
    /// A multipart body whose boundary is given twice, or also in RFC 2231
    /// form (`boundary*`): parsers differ on which they use (second
    /// red-team review of accounts: Werkzeug takes the last).
    AmbiguousMultipart,
    /// A charset other than UTF-8: not read.
    Unreadable,
}

/// The format of a body with this `Content-Type`, if the rule reads it.
pub fn format<'a>(spec: &AccountSpec, content_type: Option<&'a [u8]>) -> Option<Format<'a>> {
    let ct = content_type?;
    let mut params = ct.split(|&b| b == b';');
    let essence = trim(params.next()?);
    // A charset other than UTF-8: Django 4.2 and Tomcat decode the body's
    // escapes with it, and read other names and values than netwarden
    // would (third red-team review of accounts).
    let foreign_charset = !utf8_charset(params.clone());
    if foreign_charset && (spec.form.is_some() || spec.json.is_some()) {
        return Some(Format::Unreadable);
    }
    if spec.form.is_some() && essence.eq_ignore_ascii_case(b"application/x-www-form-urlencoded") {
        return Some(Format::Form);
    }
    if spec.form.is_some() && essence.eq_ignore_ascii_case(b"multipart/form-data") {
        // RFC 2046 §5.1.1: 1 to 70 characters, possibly quoted; exactly one.
        let mut boundaries = params.filter_map(|p| {
            let p = trim(p);
            let eq = p.iter().position(|&b| b == b'=')?;
            let name = trim(&p[..eq]);
            let starred =
                name.len() > 8 && name[..8].eq_ignore_ascii_case(b"boundary") && name[8] == b'*';
            (name.eq_ignore_ascii_case(b"boundary") || starred)
                .then(|| (starred, unquote(&p[eq + 1..])))
        });
        let first = boundaries.next();
        if boundaries.next().is_some() || first.is_some_and(|(starred, _)| starred) {
            return Some(Format::AmbiguousMultipart);
        }
        let (_, boundary) = first?;
        return (!boundary.is_empty() && boundary.len() <= 70)
            .then_some(Format::Multipart { boundary });
    }
    let json = essence.eq_ignore_ascii_case(b"application/json")
        || (essence.len() > 5
            && essence[essence.len() - 5..].eq_ignore_ascii_case(b"+json")
            && essence.starts_with(b"application/"));
    (spec.json.is_some() && json).then_some(Format::Json)
}

/// Whether the `;`-separated parameters of a `Content-Type` leave the body
/// in UTF-8: at most one `charset`, naming UTF-8 (or its ASCII subset), and
/// no other spelling of it. RFC 2231 forms (`charset*=`, `charset*0=`,
/// `charset*1=`) are joined by Python's `email` package, which Django and
/// aiohttp read the charset with, and a second `charset` is the one Bottle
/// and `multipart` take (issue 22, the second red-team review: UTF-7 named
/// so turned `+AGE-lice` into `alice`). Any of them: not UTF-8.
fn utf8_charset<'a>(params: impl Iterator<Item = &'a [u8]>) -> bool {
    let mut seen = false;
    for p in params {
        let p = trim(p);
        let (name, value) = match p.iter().position(|&b| b == b'=') {
            Some(eq) => (trim(&p[..eq]), unquote(&p[eq + 1..])),
            None => (p, &b""[..]),
        };
        if name.len() < 7 || !name[..7].eq_ignore_ascii_case(b"charset") {
            continue;
        }
        if name.len() > 7 || seen {
            return false;
        }
        seen = true;
        if !(value.eq_ignore_ascii_case(b"utf-8")
            || value.eq_ignore_ascii_case(b"utf8")
            || value.eq_ignore_ascii_case(b"us-ascii"))
        {
            return false;
        }
    }
    true
}

fn trim(b: &[u8]) -> &[u8] {
    b.trim_ascii()
}

fn unquote(v: &[u8]) -> &[u8] {
    let v = trim(v);
    match v {
        [b'"', inner @ .., b'"'] => inner,
        _ => v,
    }
}

/// The account name in a whole body of `format`.
pub fn extract<'b>(
    spec: &AccountSpec,
    format: Format<'_>,
    body: &'b [u8],
) -> Result<Cow<'b, str>, NoAccount> {
    let found = match format {
        Format::Form => form(spec.form.as_deref().unwrap_or_default(), body),
        Format::Multipart { boundary } => {
            multipart(spec.form.as_deref().unwrap_or_default(), boundary, body)
        }
        Format::Json => json(spec.json.as_deref().unwrap_or_default(), body),
        Format::AmbiguousMultipart => Err(NoAccount::Ambiguous),
        Format::Unreadable => Err(NoAccount::Unparseable),
    }?;
    if found.trim().is_empty() {
        return Err(NoAccount::Missing);
    }
    // A control character inside the name (`agency@example.jp%00suzuki`):
    // code that reads it as a C string signs in the part before it, which
    // netwarden did not decide on (second red-team review of issue 26).
    if found.trim().chars().any(char::is_control) {
        return Err(NoAccount::Unparseable);
    }
    Ok(found)
}

/// One value for `field`, or why not: every occurrence must agree.
fn single<'b>(
    values: impl Iterator<Item = Result<Cow<'b, str>, NoAccount>>,
) -> Result<Cow<'b, str>, NoAccount> {
    let mut found: Option<Cow<'b, str>> = None;
    for v in values {
        let v = v?;
        match &found {
            Some(f) if *f != v => return Err(NoAccount::Ambiguous),
            Some(_) => {}
            None => found = Some(v),
        }
    }
    found.ok_or(NoAccount::Missing)
}

/// WHATWG URL "application/x-www-form-urlencoded parsing": `&`-separated
/// pairs, `+` as a space, percent-decoding. Some servers also split on `;`
/// (Perl's CGI.pm, Python before 3.9.2): a body that reads differently
/// that way is ambiguous (second red-team review of accounts).
fn form<'b>(field: &str, body: &'b [u8]) -> Result<Cow<'b, str>, NoAccount> {
    let amp = form_split(field, body, |b| b == b'&');
    if body.contains(&b';') && amp != form_split(field, body, |b| b == b'&' || b == b';') {
        return Err(NoAccount::Ambiguous);
    }
    amp
}

fn form_split<'b>(
    field: &str,
    body: &'b [u8],
    separator: impl Fn(u8) -> bool,
) -> Result<Cow<'b, str>, NoAccount> {
    let values = body
        .split(move |&b| separator(b))
        .filter(|pair| !pair.is_empty())
        .filter_map(|pair| {
            let (name, value) = match pair.iter().position(|&b| b == b'=') {
                Some(i) => (&pair[..i], &pair[i + 1..]),
                None => (pair, &b""[..]),
            };
            names_field(&decode(name).ok()?, field).then(|| decode(value))
        });
    single(values)
}

/// Whether a form name is the account field to some console's parser
/// (issue 22, the decoy account): the same name, or one that a parser
/// family reads as it. See docs/security.md "Forms of the account name".
/// - Django strips a multipart part's name (`username\t`), PHP drops
///   leading spaces (`+username`); PHP turns ` `, `.` and an unclosed
///   `[` into `_` (`user.name`, `user name`, `user[name` are `user_name`),
///   and cuts a name at a NUL byte;
/// - ASP.NET's form and query collections ignore case (`OrdinalIgnoreCase`,
///   under which `ſ` is `s`): compared after full case folding;
/// - PHP, Rails/Rack and Express (`qs`) read `username[]` and `username[0]`
///   as a list holding the name, which a console may take as the name;
///   Rails' `user[email]` and ASP.NET's `user.email` are one nested field.
///
/// The comparison errs toward "the same field": a name that only looks like
/// the field makes a sign-in ambiguous when its value differs, never lets
/// another account through unread.
pub fn names_field(name: &str, field: &str) -> bool {
    name == field || loose_name(name) == loose_name(field)
}

/// The form of a field name that every parser family above agrees on.
fn loose_name(name: &str) -> String {
    let name = name.split('\0').next().unwrap_or_default();
    // PHP drops leading spaces, Django strips a multipart part's name of
    // white space and controls at both ends (issue 22: `name="username\t"`).
    let mut name = name.trim_matches(|c: char| c.is_whitespace() || c.is_control());
    // Trailing list markers: `[]`, `[0]`.
    while let Some(inner) = name.strip_suffix(']') {
        match inner.rfind('[') {
            Some(open) if inner[open + 1..].bytes().all(|b| b.is_ascii_digit()) => {
                name = &inner[..open];
            }
            _ => break,
        }
    }
    let mapped: String = name
        .chars()
        .filter(|&c| c != ']')
        .map(|c| if matches!(c, ' ' | '.' | '[') { '_' } else { c })
        .collect();
    caseless::default_case_fold_str(&mapped)
}

/// The account that a request's query string names, for the consoles that
/// read a sign-in's fields from the query too (issue 22, the decoy
/// account): Java's `getParameter` (Servlet, Spring Security's form login)
/// reads the query first, Flask's `request.values` and Rails' `params`
/// merge both, PHP's `$_REQUEST` and ASP.NET's model binding fall back to
/// it, Go's `FormValue` reads it when the body lacks the field. The form
/// field, and a JSON pointer's path as a nested form name (`/user/email` is
/// `user[email]`, Rails' and ASP.NET's binding of the same model), are
/// looked for. `Missing` when the query names neither.
pub fn from_query<'q>(spec: &AccountSpec, query: &'q [u8]) -> Result<Cow<'q, str>, NoAccount> {
    let pointer_name = spec.json.as_deref().map(pointer_as_form_name);
    let fields = spec
        .form
        .as_deref()
        .into_iter()
        .chain(pointer_name.as_deref());
    let mut out = Err(NoAccount::Missing);
    for field in fields {
        out = merge(out, form(field, query));
    }
    match out {
        Ok(v) if v.trim().is_empty() => Err(NoAccount::Missing),
        other => other,
    }
}

/// `/user/email` as the nested form name `user[email]` (RFC 6901 escapes
/// undone).
fn pointer_as_form_name(pointer: &str) -> String {
    let mut tokens = pointer
        .split('/')
        .skip(1)
        .map(|t| t.replace("~1", "/").replace("~0", "~"));
    let mut name = tokens.next().unwrap_or_default();
    for t in tokens {
        name.push('[');
        name.push_str(&t);
        name.push(']');
    }
    name
}

/// One account from two places a console may read (the body and the
/// query): when both name one, they must agree; when one cannot be read
/// while the other names an account, neither is believed.
pub fn merge<'a>(
    a: Result<Cow<'a, str>, NoAccount>,
    b: Result<Cow<'a, str>, NoAccount>,
) -> Result<Cow<'a, str>, NoAccount> {
    match (a, b) {
        (Err(NoAccount::Missing), other) | (other, Err(NoAccount::Missing)) => other,
        (Ok(x), Ok(y)) if x == y => Ok(x),
        (Ok(_), Ok(_)) | (Ok(_), Err(_)) | (Err(_), Ok(_)) => Err(NoAccount::Ambiguous),
        (Err(x), Err(_)) => Err(x),
    }
}

/// Percent-decoding with `+` as a space; not UTF-8 after decoding is
/// unparseable (a console would not match it to an account either).
fn decode(b: &[u8]) -> Result<Cow<'_, str>, NoAccount> {
    if !b.iter().any(|&c| c == b'%' || c == b'+') {
        return std::str::from_utf8(b)
            .map(Cow::Borrowed)
            .map_err(|_| NoAccount::Unparseable);
    }
    let plus: Vec<u8> = b
        .iter()
        .map(|&c| if c == b'+' { b' ' } else { c })
        .collect();
    let bytes: Vec<u8> = percent_encoding::percent_decode(&plus).collect();
    String::from_utf8(bytes)
        .map(Cow::Owned)
        .map_err(|_| NoAccount::Unparseable)
}

/// RFC 7578: parts separated by `--boundary` lines, each with headers; the
/// part whose `Content-Disposition: form-data; name="field"` names the field.
fn multipart<'b>(field: &str, boundary: &[u8], body: &'b [u8]) -> Result<Cow<'b, str>, NoAccount> {
    let mut delimiter = Vec::with_capacity(boundary.len() + 4);
    delimiter.extend_from_slice(b"\r\n--");
    delimiter.extend_from_slice(boundary);
    // The boundary anywhere but at the start of a line (after CRLF, or
    // opening the body): Werkzeug and Python's cgi take one after a bare
    // LF for a delimiter (second red-team review of accounts), and Django
    // one in the middle of a line (issue 22); RFC 2046 neither. Such a body
    // reads differently.
    let dash_boundary = &delimiter[2..];
    let mut at = 0;
    while let Some(i) = find(&body[at..], dash_boundary) {
        let i = at + i;
        if i != 0 && !body[..i].ends_with(b"\r\n") {
            return Err(NoAccount::Ambiguous);
        }
        at = i + 1;
    }
    if body.starts_with(&delimiter[2..]) {
        let after = &body[delimiter.len() - 2..];
        let padding = after
            .iter()
            .take_while(|&&b| b == b' ' || b == b'\t')
            .count();
        if after[padding..].starts_with(b"\n") {
            return Err(NoAccount::Ambiguous);
        }
    }
    // The first delimiter may open the body without the CRLF before it.
    let mut rest = if body.starts_with(&delimiter[2..]) {
        &body[delimiter.len() - 2..]
    } else {
        let at = find(body, &delimiter).ok_or(NoAccount::Unparseable)?;
        &body[at + delimiter.len()..]
    };
    let mut values = Vec::new();
    loop {
        if rest.starts_with(b"--") {
            // The close delimiter. Django reads parts after it: a
            // delimiter there is another part to it (issue 22).
            if find(rest, dash_boundary).is_some() {
                return Err(NoAccount::Ambiguous);
            }
            break;
        }
        // The rest of the delimiter line (transport padding), then headers.
        let line_end = find(rest, b"\r\n").ok_or(NoAccount::Unparseable)?;
        let part = &rest[line_end + 2..];
        let next = find(part, &delimiter).ok_or(NoAccount::Unparseable)?;
        let (headers, content) = match find(&part[..next], b"\r\n\r\n") {
            Some(h) => (&part[..h], &part[h + 4..next]),
            // A part with no headers at all has no name; its CRLF may be
            // the next delimiter's own (an empty part): found by fuzzing.
            None if part.starts_with(b"\r\n") => (&b""[..], part.get(2..next).unwrap_or_default()),
            None => return Err(NoAccount::Unparseable),
        };
        let named = part_name(headers)?
            .and_then(|n| std::str::from_utf8(n).ok())
            .is_some_and(|n| names_field(n, field));
        if named {
            values.push(
                std::str::from_utf8(content)
                    .map(Cow::Borrowed)
                    .map_err(|_| NoAccount::Unparseable),
            );
        }
        rest = &part[next + delimiter.len()..];
    }
    single(values.into_iter())
}

/// The `name` parameter of a part's `Content-Disposition`, whatever its
/// type (Werkzeug reads `attachment; name=...` as a field too). A name in
/// RFC 2231 form (`name*=`, `name*0=`), two different names, or two
/// Content-Disposition lines: parsers differ, so the body is ambiguous
/// (second red-team review of accounts).
fn part_name(headers: &[u8]) -> Result<Option<&[u8]>, NoAccount> {
    let mut name: Option<&[u8]> = None;
    let mut seen = false;
    for line in headers.split(|&b| b == b'\n') {
        // A bare LF, or a folded line (obs-fold, RFC 5322 §3.2.2) that some
        // parsers join to the line before and others do not: ambiguous.
        if !headers.is_empty() && (line.starts_with(b" ") || line.starts_with(b"\t")) {
            return Err(NoAccount::Ambiguous);
        }
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let header = trim(&line[..colon]);
        // A part whose value a parser decodes: Django decodes base64
        // (skipping what is not base64, so every spelling of a name is
        // fresh), Go's mime/multipart quoted-printable, busboy a part's
        // charset (issue 22). What the console reads is not the bytes.
        if header.eq_ignore_ascii_case(b"content-transfer-encoding") {
            return Err(NoAccount::Ambiguous);
        }
        if header.eq_ignore_ascii_case(b"content-type")
            && !utf8_charset(line[colon + 1..].split(|&b| b == b';').skip(1))
        {
            return Err(NoAccount::Ambiguous);
        }
        if !header.eq_ignore_ascii_case(b"content-disposition") {
            continue;
        }
        if seen {
            return Err(NoAccount::Ambiguous);
        }
        seen = true;
        // The disposition type, then its parameters.
        for p in line[colon + 1..].split(|&b| b == b';').skip(1) {
            let p = trim(p);
            let Some(eq) = p.iter().position(|&b| b == b'=') else {
                continue;
            };
            let key = trim(&p[..eq]);
            let is_name = key.eq_ignore_ascii_case(b"name");
            let starred = key.len() > 4 && key[..4].eq_ignore_ascii_case(b"name") && key[4] == b'*';
            if starred {
                return Err(NoAccount::Ambiguous);
            }
            if !is_name {
                continue;
            }
            let v = unquote(&p[eq + 1..]);
            // A quoted name with escapes inside is not one a sign-in form
            // uses: refuse rather than guess.
            if v.iter().any(|&b| b == b'\\' || b == b'"') {
                return Err(NoAccount::Unparseable);
            }
            match name {
                Some(n) if n != v => return Err(NoAccount::Ambiguous),
                _ => name = Some(v),
            }
        }
    }
    Ok(name)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return None;
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

/// RFC 8259 body, RFC 6901 pointer; the value must be a string. A name
/// given twice in one object (RFC 8259 §4: "SHOULD be unique") is
/// ambiguous: most parsers keep the last, some the first, some refuse.
fn json<'b>(pointer: &str, body: &'b [u8]) -> Result<Cow<'b, str>, NoAccount> {
    let value = match serde_json::from_slice::<Unique>(body) {
        Ok(Unique(v)) => v,
        Err(e) if e.to_string().starts_with(DUPLICATE) => return Err(NoAccount::Ambiguous),
        Err(_) => return Err(NoAccount::Unparseable),
    };
    match value.pointer(pointer) {
        Some(serde_json::Value::String(s)) => Ok(Cow::Owned(s.clone())),
        Some(_) => Err(NoAccount::Unparseable),
        None => Err(NoAccount::Missing),
    }
}

const DUPLICATE: &str = "duplicate name in a JSON object";

/// A JSON value whose objects have no name twice.
struct Unique(serde_json::Value);

impl<'de> serde::Deserialize<'de> for Unique {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(UniqueVisitor).map(Unique)
    }
}

struct UniqueVisitor;

impl<'de> serde::de::Visitor<'de> for UniqueVisitor {
    type Value = serde_json::Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(v.into())
    }

    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(v.into())
    }

    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(v.into())
    }

    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(serde_json::Value::Null, Into::into))
    }

    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(v.into())
    }

    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(v.into())
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(serde_json::Value::Null)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::new();
        while let Some(Unique(v)) = seq.next_element()? {
            out.push(v);
        }
        Ok(out.into())
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = serde_json::Map::new();
        // Names equal under case folding count as one: Go's encoding/json
        // matches fields that way (`USERNAME`, `uſername`; third red-team
        // review of accounts).
        let mut folded = std::collections::HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            let Unique(v) = map.next_value()?;
            if !folded.insert(caseless::default_case_fold_str(&key)) {
                return Err(serde::de::Error::custom(DUPLICATE));
            }
            out.insert(key, v);
        }
        Ok(out.into())
    }
}

/// The account name as it is hashed, so that every spelling a console may
/// take for one account is one key (the red-team reviews of accounts):
/// Unicode's default ignorable characters removed (zero-width space, soft
/// hyphen, BOM, variation selectors: JavaScript's `trim` strips some, and
/// accent-insensitive collations ignore all); compatibility caseless form
/// (NFKD, full case folding, NFKD: Unicode §3.13 D146; full-width letters
/// are ASCII); combining marks removed (`alicé` is `alice`, as in MySQL's
/// default `_ai_ci` collation; `İ` folds to `i` and a mark); dotless `ı` as
/// `i` (Java's `equalsIgnoreCase`); surrounding white space and control
/// characters trimmed. Distinct accounts that differ only so share a
/// budget, which errs toward locking.
pub fn fold(account: &str) -> String {
    use caseless::Caseless;
    use unicode_normalization::UnicodeNormalization;
    use unicode_normalization::char::is_combining_mark;
    let folded: String = account
        .chars()
        .filter(|&c| !default_ignorable(c))
        .nfkd()
        .default_case_fold()
        .nfkd()
        .filter(|&c| !is_combining_mark(c))
        .map(|c| if c == '\u{131}' { 'i' } else { c })
        .collect();
    folded
        .trim_matches(|c: char| c.is_whitespace() || c.is_control())
        .to_string()
}

/// Unicode's Default_Ignorable_Code_Point (DerivedCoreProperties.txt,
/// Unicode 15): characters with no visible form of their own.
fn default_ignorable(c: char) -> bool {
    matches!(c,
        '\u{AD}' | '\u{34F}' | '\u{61C}' | '\u{115F}'..='\u{1160}' | '\u{17B4}'..='\u{17B5}'
        | '\u{180B}'..='\u{180F}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{206F}' | '\u{3164}' | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}'
        | '\u{FFA0}' | '\u{FFF0}'..='\u{FFF8}' | '\u{1BCA0}'..='\u{1BCA3}'
        | '\u{1D173}'..='\u{1D17A}' | '\u{E0000}'..='\u{E0FFF}')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> AccountSpec {
        AccountSpec {
            form: Some("username".into()),
            json: Some("/user/email".into()),
            max_body: defaults::MAX_BODY,
        }
    }

    fn get(ct: &str, body: &str) -> Result<String, NoAccount> {
        let s = spec();
        let f = format(&s, Some(ct.as_bytes())).ok_or(NoAccount::Missing)?;
        extract(&s, f, body.as_bytes()).map(Cow::into_owned)
    }

    #[test]
    fn a_control_character_inside_the_name_is_unparseable() {
        let spec = AccountSpec {
            form: Some("username".into()),
            json: None,
            max_body: 1024,
        };
        for body in [
            &b"username=agency-tokyo%40example.jp%00suzuki"[..],
            b"username=agency-tokyo%40example.jp%00",
            b"username=a%0Ab",
        ] {
            assert_eq!(
                extract(&spec, Format::Form, body),
                Err(NoAccount::Unparseable),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn a_form_field_is_percent_decoded_with_plus_as_space() {
        let ct = "application/x-www-form-urlencoded";
        assert_eq!(get(ct, "username=alice&password=x").as_deref(), Ok("alice"));
        assert_eq!(
            get(ct, "password=x&username=J%C3%B6rg+M").as_deref(),
            Ok("Jörg M")
        );
        assert_eq!(get(ct, "user%6Eame=bob").as_deref(), Ok("bob"));
        assert_eq!(get(ct, "password=x"), Err(NoAccount::Missing));
        assert_eq!(get(ct, "username=&password=x"), Err(NoAccount::Missing));
        assert_eq!(get(ct, "username=%FF"), Err(NoAccount::Unparseable));
    }

    #[test]
    fn a_field_given_twice_differently_is_ambiguous() {
        let ct = "application/x-www-form-urlencoded; charset=UTF-8";
        assert_eq!(
            get(ct, "username=decoy&username=victim"),
            Err(NoAccount::Ambiguous)
        );
        assert_eq!(get(ct, "username=a&username=a").as_deref(), Ok("a"));
        assert_eq!(
            get(ct, "username=decoy&user%6Eame=victim"),
            Err(NoAccount::Ambiguous)
        );
        // Third review: PHP skips a name's leading spaces; a charset other
        // than UTF-8 is not read.
        assert_eq!(
            get(ct, "username=decoy&+username=victim"),
            Err(NoAccount::Ambiguous)
        );
        assert_eq!(
            get(
                "application/x-www-form-urlencoded; charset=UTF-16",
                "username=a"
            ),
            Err(NoAccount::Unparseable)
        );
        assert_eq!(
            get(
                "application/x-www-form-urlencoded; charset=\"utf-8\"",
                "username=a"
            )
            .as_deref(),
            Ok("a")
        );
    }

    #[test]
    fn names_a_parser_family_reads_as_the_field_are_the_field() {
        // Issue 22: PHP's mangling, ASP.NET's case, list markers, nesting.
        for (name, field) in [
            ("user.name", "user_name"),
            ("user name", "user_name"),
            ("user[name", "user_name"),
            (" user_name", "user_name"),
            ("USER_NAME", "user_name"),
            ("u\u{17f}er_name", "user_name"),
            ("username[]", "username"),
            ("username[0]", "username"),
            ("username\0x", "username"),
            ("user[email]", "user.email"),
        ] {
            assert!(names_field(name, field), "{name:?} ~ {field:?}");
        }
        for (name, field) in [
            ("password", "username"),
            ("username2", "username"),
            ("user", "username"),
            ("username[x]", "username"),
        ] {
            assert!(!names_field(name, field), "{name:?} !~ {field:?}");
        }
        let ct = "application/x-www-form-urlencoded";
        assert_eq!(
            get(ct, "username=decoy&USERNAME=alice"),
            Err(NoAccount::Ambiguous)
        );
        assert_eq!(
            get(ct, "username=decoy&username%5B%5D=alice"),
            Err(NoAccount::Ambiguous)
        );
        let s = AccountSpec {
            form: Some("user_name".into()),
            ..spec()
        };
        for body in [
            "user_name=decoy&user.name=alice",
            "user_name=decoy&user+name=alice",
            "user_name=decoy&user%5Bname=alice",
        ] {
            let f = format(&s, Some(ct.as_bytes())).expect("form");
            assert_eq!(
                extract(&s, f, body.as_bytes()),
                Err(NoAccount::Ambiguous),
                "{body}"
            );
        }
    }

    #[test]
    fn the_query_string_names_the_account_too() {
        let s = spec();
        let q = |query: &str| from_query(&s, query.as_bytes()).map(Cow::into_owned);
        assert_eq!(q("").err(), Some(NoAccount::Missing));
        assert_eq!(q("next=/home").err(), Some(NoAccount::Missing));
        assert_eq!(q("username=alice").as_deref(), Ok("alice"));
        assert_eq!(q("Username=alice").as_deref(), Ok("alice"));
        // The JSON pointer as a nested form name (Rails' params).
        assert_eq!(q("user%5Bemail%5D=a%40b.c").as_deref(), Ok("a@b.c"));
        assert_eq!(q("user.email=a@b.c").as_deref(), Ok("a@b.c"));
        assert_eq!(q("username=a&username=b").err(), Some(NoAccount::Ambiguous));
        // Body and query must agree; one unreadable beside a name is
        // ambiguous.
        let ok = |v: &'static str| Ok(Cow::Borrowed(v));
        assert_eq!(merge(ok("alice"), ok("alice")), ok("alice"));
        assert_eq!(merge(ok("decoy"), ok("alice")), Err(NoAccount::Ambiguous));
        assert_eq!(merge(Err(NoAccount::Missing), ok("alice")), ok("alice"));
        assert_eq!(merge(ok("alice"), Err(NoAccount::Missing)), ok("alice"));
        assert_eq!(
            merge(Err(NoAccount::Oversized), ok("alice")),
            Err(NoAccount::Ambiguous)
        );
        assert_eq!(
            merge(Err(NoAccount::Oversized), Err(NoAccount::Missing)),
            Err(NoAccount::Oversized)
        );
    }

    #[test]
    fn multipart_parts_are_read_by_their_name() {
        let ct = "multipart/form-data; boundary=\"XyZ\"";
        let body = "--XyZ\r\nContent-Disposition: form-data; name=\"password\"\r\n\r\nsecret\r\n\
                    --XyZ\r\nContent-Disposition: form-data; name=\"username\"\r\n\r\nalice@example.com\r\n\
                    --XyZ--\r\n";
        assert_eq!(get(ct, body).as_deref(), Ok("alice@example.com"));
        let ct = "Multipart/Form-Data; boundary=XyZ";
        let preamble = format!("ignored preamble\r\n{body}");
        assert_eq!(get(ct, &preamble).as_deref(), Ok("alice@example.com"));
        let twice = "--XyZ\r\nContent-Disposition: form-data; name=username\r\n\r\na\r\n\
                     --XyZ\r\nContent-Disposition: form-data; name=username\r\n\r\nb\r\n--XyZ--";
        assert_eq!(get(ct, twice), Err(NoAccount::Ambiguous));
        // Cut short: no closing delimiter after the value.
        let cut = "--XyZ\r\nContent-Disposition: form-data; name=username\r\n\r\nali";
        assert_eq!(get(ct, cut), Err(NoAccount::Unparseable));
        assert_eq!(
            get("multipart/form-data", body),
            Err(NoAccount::Missing),
            "no boundary"
        );
        // Regression (fuzz/fuzz_targets/account.rs): an empty part whose
        // header block's CRLF is the next delimiter's sliced out of range.
        assert_eq!(get(ct, "--XyZ\r\n\r\n--XyZ--"), Err(NoAccount::Missing));
        // The fuzzer's own input: now refused earlier (a bare LF before a
        // delimiter), never a panic.
        assert_eq!(
            get(ct, "\n--XyZ\r\n\r\n--XyZ\r\n--XyZ"),
            Err(NoAccount::Ambiguous)
        );
    }

    #[test]
    fn json_is_read_by_pointer_and_must_be_a_string() {
        let ct = "application/json";
        assert_eq!(
            get(ct, r#"{"user":{"email":"a@b.c"},"password":"x"}"#).as_deref(),
            Ok("a@b.c")
        );
        assert_eq!(
            get("application/vnd.console+json", r#"{"user":{"email":"x"}}"#).as_deref(),
            Ok("x")
        );
        assert_eq!(
            get(ct, r#"{"user":{"email":1}}"#),
            Err(NoAccount::Unparseable)
        );
        assert_eq!(get(ct, r#"{"user":{}}"#), Err(NoAccount::Missing));
        assert_eq!(get(ct, r#"{"user":"#), Err(NoAccount::Unparseable));
        assert_eq!(get("text/plain", "{}"), Err(NoAccount::Missing));
        // A name twice, at any depth, even written differently: parsers
        // differ on which they keep.
        assert_eq!(
            get(ct, r#"{"user":{"email":"decoy","email":"a@b.c"}}"#),
            Err(NoAccount::Ambiguous)
        );
        assert_eq!(
            get(ct, r#"{"user":{"email":"a@b.c","em\u0061il":"decoy"}}"#),
            Err(NoAccount::Ambiguous)
        );
        assert_eq!(
            get(ct, r#"{"x":[{"a":1,"a":2}],"user":{"email":"a@b.c"}}"#),
            Err(NoAccount::Ambiguous)
        );
        // Third review: names equal under case folding (Go's encoding/json).
        assert_eq!(
            get(ct, r#"{"user":{"email":"decoy","EMAIL":"a@b.c"}}"#),
            Err(NoAccount::Ambiguous)
        );
        assert_eq!(
            get(ct, "{\"user\":{\"email\":\"a@b.c\"},\"\u{17f}\":1,\"s\":2}"),
            Err(NoAccount::Ambiguous)
        );
    }

    #[test]
    fn only_the_formats_the_rule_names_are_read() {
        let only_form = AccountSpec {
            json: None,
            ..spec()
        };
        assert_eq!(format(&only_form, Some(b"application/json")), None);
        assert_eq!(
            format(&only_form, Some(b"application/x-www-form-urlencoded")),
            Some(Format::Form)
        );
        assert_eq!(format(&only_form, None), None);
    }

    #[test]
    fn multipart_forms_that_parsers_read_differently_are_ambiguous() {
        let part = |disposition: &str, value: &str| {
            format!("--XyZ\r\nContent-Disposition: {disposition}\r\n\r\n{value}\r\n")
        };
        let ct = "multipart/form-data; boundary=XyZ";
        for (what, first) in [
            ("RFC 2231 name", "form-data; name*=UTF-8''username"),
            (
                "RFC 2231 continuation",
                "form-data; name*0=user; name*1=name",
            ),
            (
                "an attachment naming the field",
                "attachment; name=\"username\"",
            ),
            (
                "two names in one line",
                "form-data; name=\"x\"; name=\"username\"",
            ),
        ] {
            let body = format!(
                "{}{}--XyZ--\r\n",
                part(first, "alice"),
                part("form-data; name=\"username\"", "decoy")
            );
            assert!(
                matches!(get(ct, &body), Err(NoAccount::Ambiguous)),
                "{what}: {:?}",
                get(ct, &body)
            );
        }
        // Found in the second review: a folded Content-Disposition, and
        // delimiters after a bare LF.
        let folded = format!(
            "--XyZ\r\nContent-Disposition: form-data;\r\n name=\"username\"\r\n\r\nalice\r\n{}--XyZ--\r\n",
            part("form-data; name=\"username\"", "decoy")
        );
        assert_eq!(get(ct, &folded), Err(NoAccount::Ambiguous));
        let lf_first = format!(
            "--XyZ\nContent-Disposition: form-data; name=\"username\"\n\nalice\r\n{}--XyZ--\r\n",
            part("form-data; name=\"username\"", "decoy")
        );
        assert_eq!(get(ct, &lf_first), Err(NoAccount::Ambiguous));
        let lf_inside = format!(
            "{}--XyZ--\r\n",
            part(
                "form-data; name=\"username\"",
                "alice\n--XyZ\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\ndecoy"
            )
        );
        assert_eq!(get(ct, &lf_inside), Err(NoAccount::Ambiguous));
        // The boundary twice, or also starred: which one parses the body?
        for ct in [
            "multipart/form-data; boundary=AAA; boundary=BBB",
            "multipart/form-data; boundary=AAA; boundary*=UTF-8''BBB",
        ] {
            assert_eq!(get(ct, "--AAA--"), Err(NoAccount::Ambiguous), "{ct}");
        }
    }

    #[test]
    fn multipart_forms_that_django_reads_as_another_account_are_ambiguous() {
        // Issue 22's red-team review, each with Django 5.2 reading alice.
        let ct = "multipart/form-data; boundary=XyZ";
        let part = |headers: &str, value: &str| {
            format!("--XyZ\r\nContent-Disposition: form-data; {headers}\r\n\r\n{value}\r\n")
        };
        let decoy = part("name=\"username\"", "decoy");
        for (what, body) in [
            (
                "a base64 part",
                "--XyZ\r\nContent-Disposition: form-data; name=\"username\"\r\nContent-Transfer-Encoding: base64\r\n\r\nYWxp!Y2U=\r\n--XyZ--\r\n"
                    .to_string(),
            ),
            (
                "a part charset",
                "--XyZ\r\nContent-Disposition: form-data; name=\"username\"\r\nContent-Type: text/plain; charset=utf-16le\r\n\r\nx\r\n--XyZ--\r\n"
                    .to_string(),
            ),
            (
                "a name with a tab at its end",
                format!("{decoy}{}--XyZ--\r\n", part("name=\"username\t\"", "alice")),
            ),
            (
                "a boundary in the middle of a line",
                format!(
                    "{}--XyZ--\r\n",
                    part(
                        "name=\"username\"",
                        "decoy--XyZ\r\nContent-Disposition: form-data; name=\"username\"\r\n\r\nalice"
                    )
                ),
            ),
            (
                "parts after the close delimiter",
                format!("{decoy}--XyZ--\r\n{}", part("name=\"username\"", "alice")),
            ),
        ] {
            assert_eq!(get(ct, &body), Err(NoAccount::Ambiguous), "{what}");
        }
        // The second red-team review of issue 22: UTF-7 named in RFC 2231
        // continuations (Django, aiohttp join them) or as a part's second
        // charset (Bottle and `multipart` take the last).
        let utf7 = "--XyZ\r\nContent-Disposition: form-data; name=\"username\"\r\n\r\n+AGE-lice\r\n--XyZ--\r\n";
        for ct in [
            "multipart/form-data; boundary=XyZ; charset*0=utf-7",
            "multipart/form-data; boundary=XyZ; charset*0=utf; charset*1=-7",
            "multipart/form-data; boundary=XyZ; charset*0*=utf-8''utf-7",
            "multipart/form-data; boundary=XyZ; charset*1=utf-7",
            "multipart/form-data; boundary=XyZ; charset=utf-8; charset=utf-7",
        ] {
            assert!(get(ct, utf7).is_err(), "{ct}");
        }
        assert!(
            get(
                "application/x-www-form-urlencoded; charset*0=utf-7",
                "username=%2BAGE-lice"
            )
            .is_err()
        );
        let twice = "--XyZ\r\nContent-Disposition: form-data; name=\"username\"\r\nContent-Type: text/plain; charset=utf-8; charset=utf-7\r\n\r\n+AGE-lice\r\n--XyZ--\r\n";
        assert_eq!(get(ct, twice), Err(NoAccount::Ambiguous));
        // A UTF-8 part type and an epilogue without delimiters are fine.
        let ok = "--XyZ\r\nContent-Disposition: form-data; name=\"username\"\r\nContent-Type: text/plain; charset=UTF-8\r\n\r\nalice\r\n--XyZ--\r\nepilogue";
        assert_eq!(get(ct, ok).as_deref(), Ok("alice"));
    }

    #[test]
    fn a_form_that_splits_differently_on_semicolons_is_ambiguous() {
        let ct = "application/x-www-form-urlencoded";
        assert_eq!(
            get(ct, "username=decoy;username=alice&password=x"),
            Err(NoAccount::Ambiguous)
        );
        // A semicolon that changes nothing is fine.
        assert_eq!(
            get(ct, "username=alice&password=a;b").as_deref(),
            Ok("alice")
        );
    }

    #[test]
    fn folding_makes_case_variants_one_account() {
        assert_eq!(fold(" Alice "), fold("alice"));
        assert_eq!(fold("ALICE"), fold("alice"));
        // Full folding: ß and SS are one, as are Kelvin sign and k.
        assert_eq!(fold("STRASSE"), fold("straße"));
        assert_eq!(fold("\u{212A}elvin"), fold("kelvin"));
        // Compatibility forms and control characters at the ends
        // (second red-team review of accounts).
        assert_eq!(fold("\u{ff41}lice"), fold("alice"));
        assert_eq!(fold("alice\u{1f}"), fold("alice"));
        assert_eq!(fold("\u{1c}Alice\t"), fold("alice"));
        // Second review: invisible characters, accents, Turkish i.
        for variant in [
            "alice\u{200b}",
            "ali\u{200b}ce",
            "\u{feff}alice",
            "alice\u{ad}",
            "alice\u{34f}",
            "alice\u{2060}",
            "alice\u{fe0f}",
            "alic\u{e9}",
            "alice\u{301}",
            "\u{e1}lice",
            "al\u{131}ce",
            "al\u{130}ce",
        ] {
            assert_eq!(fold(variant), fold("alice"), "{variant:?}");
        }
        assert_ne!(fold("alice"), fold("alicia"));
    }

    proptest::proptest! {
        #[test]
        fn no_body_panics(ct in proptest::sample::select(vec![
            "application/x-www-form-urlencoded", "multipart/form-data; boundary=b",
            "application/json"]), body in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            let s = spec();
            if let Some(f) = format(&s, Some(ct.as_bytes())) {
                let _ = extract(&s, f, &body);
            }
        }
    }
}
