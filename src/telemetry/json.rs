//! A JSON line formatter for tracing events, written for the request path:
//! fields are written straight into a per-thread line buffer with JSON
//! escaping (no intermediate `serde_json` values, no `fmt` padding
//! machinery, one write of the whole line). One line:
//! `{"timestamp":…,"level":…,"message":…,<fields in order>}`.

use std::fmt::{self, Write as _};
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// The event formatter (`tracing_subscriber::fmt().event_format(JsonLines)`).
pub struct JsonLines;

std::thread_local! {
    /// The line being built on this thread (reused: no allocation a line).
    static LINE: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
    /// A displayed value, before it is escaped into the line.
    static SCRATCH: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
}

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        with_line(|out| {
            let mut line = Line::begin(out, SystemTime::now(), *event.metadata().level());
            event.record(&mut line);
            w.write_str(line.end())
        })
    }
}

/// Runs `f` with this thread's line buffer (reused: no allocation a line).
pub fn with_line<R>(f: impl FnOnce(&mut String) -> R) -> R {
    LINE.with(|line| match line.try_borrow_mut() {
        Ok(mut l) => f(&mut l),
        // A re-entrant event (logging from inside a Display impl) gets a
        // buffer of its own.
        Err(_) => f(&mut String::new()),
    })
}

fn level_name(l: tracing::Level) -> &'static str {
    match l {
        tracing::Level::ERROR => "ERROR",
        tracing::Level::WARN => "WARN",
        tracing::Level::INFO => "INFO",
        tracing::Level::DEBUG => "DEBUG",
        tracing::Level::TRACE => "TRACE",
    }
}

/// One JSON object on one line, written field by field:
/// `{"timestamp":…,"level":…,<fields in order>}\n`. Field names are
/// identifiers written in this crate's source (letters, digits, `_`, `.`):
/// they are not escaped; values are.
pub struct Line<'a> {
    out: &'a mut String,
}

impl<'a> Line<'a> {
    pub fn begin(out: &'a mut String, t: SystemTime, level: tracing::Level) -> Self {
        out.clear();
        out.push_str("{\"timestamp\":\"");
        push_timestamp(out, t);
        out.push_str("\",\"level\":\"");
        out.push_str(level_name(level));
        out.push('"');
        Line { out }
    }

    /// Closes the object; the whole line, newline included.
    pub fn end(self) -> &'a str {
        self.out.push_str("}\n");
        self.out
    }

    fn key(&mut self, name: &str) {
        self.out.push_str(",\"");
        self.out.push_str(name);
        self.out.push_str("\":");
    }

    pub fn str(&mut self, name: &str, value: &str) {
        self.key(name);
        self.out.push('"');
        escape(self.out, value);
        self.out.push('"');
    }

    /// A value's `Display` text, escaped as it is written.
    pub fn display(&mut self, name: &str, value: &dyn fmt::Display) {
        // Formatted whole into a scratch buffer, then escaped in one pass
        // (escaping each piece `fmt` hands over costs more than the copy).
        SCRATCH.with(|scratch| match scratch.try_borrow_mut() {
            Ok(mut text) => {
                text.clear();
                // Writing to a String cannot fail.
                let _ = write!(text, "{value}");
                self.str(name, &text);
            }
            // Re-entered from inside a Display impl: escape piece by piece.
            Err(_) => {
                self.key(name);
                self.out.push('"');
                let _ = write!(Escaper(self.out), "{value}");
                self.out.push('"');
            }
        });
    }

    /// JSON text of this crate's own, copied as it is (`,"event":"decision"`).
    pub fn fixed(&mut self, json: &'static str) {
        self.out.push_str(json);
    }

    /// JSON text this line's writer wrote before (a run kept by
    /// [`Self::since`]), copied as it is.
    pub fn fixed_text(&mut self, json: &str) {
        self.out.push_str(json);
    }

    /// Where the line is now, for [`Self::since`].
    pub fn mark(&self) -> usize {
        self.out.len()
    }

    /// What was written since `mark`.
    pub fn since(&self, mark: usize) -> &str {
        self.out.get(mark..).unwrap_or("")
    }

    /// A text value after its key as [`super::fields::keyed`] writes it
    /// (`,"name":`), escaped: one copy for the key.
    pub fn text(&mut self, key: &str, value: &str) {
        self.out.push_str(key);
        self.out.push('"');
        escape(self.out, value);
        self.out.push('"');
    }

    /// A text value that never needs escaping, copied as it is: fixed
    /// words of this crate, addresses, hex ids, and the policy's names
    /// (`check` allows letters, digits, `_`, `-` and `.` in them). Tests
    /// run with debug assertions, which check every such value.
    pub fn word(&mut self, key: &str, value: &str) {
        debug_assert!(
            !value.bytes().any(needs_look),
            "{value:?} is not a plain word"
        );
        self.out.push_str(key);
        self.out.push('"');
        self.out.push_str(value);
        self.out.push('"');
    }

    /// A text value written by `f` through a [`fmt::Write`] that copies
    /// pieces as they are: for text made of [`Self::word`]'s kinds only.
    pub fn words(&mut self, key: &str, f: impl FnOnce(&mut dyn fmt::Write) -> fmt::Result) {
        self.out.push_str(key);
        self.out.push('"');
        let start = self.out.len();
        // Writing to a String cannot fail.
        let _ = f(&mut Plain(self.out));
        debug_assert!(
            !self.out.as_bytes()[start..].iter().any(|&b| needs_look(b)),
            "{:?} is not plain words",
            &self.out[start..]
        );
        self.out.push('"');
    }

    /// `true` or `false` after a keyed key.
    pub fn flag(&mut self, key: &str, value: bool) {
        self.out.push_str(key);
        self.out.push_str(if value { "true" } else { "false" });
    }

    /// A number after a keyed key.
    pub fn number(&mut self, key: &str, value: u64) {
        self.out.push_str(key);
        push_u64(self.out, value);
    }

    /// A duration in milliseconds with three decimals (to the microsecond),
    /// as [`Self::f64`] writes it, without floating point.
    pub fn millis(&mut self, key: &str, value: std::time::Duration) {
        self.out.push_str(key);
        // Seconds and microseconds apart: no 128-bit division.
        let (secs, micros) = (value.as_secs(), value.subsec_micros());
        push_u64(
            self.out,
            secs.saturating_mul(1000)
                .saturating_add(u64::from(micros / 1000)),
        );
        let frac = micros % 1000;
        let digits = [
            b'.',
            b'0' + (frac / 100) as u8,
            b'0' + (frac / 10 % 10) as u8,
            b'0' + (frac % 10) as u8,
        ];
        // ASCII digits and a dot.
        self.out
            .push_str(std::str::from_utf8(&digits).unwrap_or(".000"));
    }

    pub fn bool(&mut self, name: &str, value: bool) {
        self.key(name);
        self.out.push_str(if value { "true" } else { "false" });
    }

    pub fn u64(&mut self, name: &str, value: u64) {
        self.key(name);
        push_u64(self.out, value);
    }

    pub fn i64(&mut self, name: &str, value: i64) {
        self.key(name);
        if value < 0 {
            self.out.push('-');
        }
        push_u64(self.out, value.unsigned_abs());
    }

    /// Fixed three decimals (durations in milliseconds, to the
    /// microsecond) for values that fit; shortest form otherwise.
    pub fn f64(&mut self, name: &str, value: f64) {
        self.key(name);
        if !value.is_finite() {
            self.out.push_str("null");
        } else if value.abs() < 1e12 {
            // |value| < 1e12, so the product fits an i64.
            #[allow(clippy::cast_possible_truncation)]
            let thousandths = (value * 1000.0).round() as i64;
            if thousandths < 0 {
                self.out.push('-');
            }
            let t = thousandths.unsigned_abs();
            push_u64(self.out, t / 1000);
            let frac = t % 1000;
            self.out.push('.');
            for d in [frac / 100, frac / 10 % 10, frac % 10] {
                self.out.push(char::from(b'0' + d as u8));
            }
        } else {
            let _ = write!(self.out, "{value}");
        }
    }
}

impl Visit for Line<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.str(field.name(), value);
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.bool(field.name(), value);
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.u64(field.name(), value);
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.i64(field.name(), value);
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.f64(field.name(), value);
    }

    /// `%value` and `?value` fields: formatted straight through the escaper.
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.key(field.name());
        self.out.push('"');
        // Writing to a String cannot fail.
        let _ = write!(Escaper(self.out), "{value:?}");
        self.out.push('"');
    }
}

/// Copies pieces as they are ([`Line::words`]).
struct Plain<'a>(&'a mut String);

impl fmt::Write for Plain<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0.push_str(s);
        Ok(())
    }
}

/// Writes through JSON string escaping (RFC 8259 §7).
struct Escaper<'a>(&'a mut String);

impl fmt::Write for Escaper<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        escape(self.0, s);
        Ok(())
    }
}

/// Whether a byte must be escaped in a JSON string (RFC 8259 §7; DEL too,
/// so that a log line never carries terminal control bytes).
const fn needs_escape(b: u8) -> bool {
    // Bitwise, not short-circuit: the scan below compiles to vector code.
    (b < 0x20) | (b == b'"') | (b == b'\\') | (b == 0x7f)
}

/// Whether a byte sends a value to the careful path: one that must be
/// escaped, or the start of a character that is not ASCII (which may be
/// one of [`hidden`]).
const fn needs_look(b: u8) -> bool {
    needs_escape(b) | (b >= 0x80)
}

/// Characters that are valid in JSON but change how a line reads or where
/// it ends for the people and tools that read logs (issue 22): C1 controls
/// (U+0085 NEL among them), Unicode's line and paragraph separators (Python's
/// `splitlines`, JavaScript before ES2019), and the bidirectional controls
/// that reorder what a log viewer shows (U+061C, U+200E-F, U+202A-E,
/// U+2066-9; Trojan Source, CVE-2021-42574). Written as `\uXXXX`, as every
/// control is: the JSON reads back to the same text.
pub const fn hidden(c: char) -> bool {
    matches!(c,
        '\u{80}'..='\u{9f}' | '\u{61c}' | '\u{200e}' | '\u{200f}'
        | '\u{2028}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// Whether any byte of the word needs a look, eight bytes at a time (the
/// "has zero/less-than byte" tricks of Bit Twiddling Hacks).
fn word_needs_look(w: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let zero_in = |x: u64| x.wrapping_sub(ONES) & !x & HIGHS;
    let less_than_0x20 = w.wrapping_sub(ONES * 0x20) & !w & HIGHS;
    (w & HIGHS)
        | less_than_0x20
        | zero_in(w ^ (ONES * u64::from(b'"')))
        | zero_in(w ^ (ONES * u64::from(b'\\')))
        | zero_in(w ^ (ONES * 0x7f))
        != 0
}

fn escape(out: &mut String, s: &str) {
    let bytes = s.as_bytes();
    // Fast path: most values are plain ASCII that needs no escaping; check
    // eight bytes a step, then copy once.
    let mut chunks = bytes.chunks_exact(8);
    let clean = chunks
        .by_ref()
        .all(|c| !word_needs_look(u64::from_le_bytes(c.try_into().unwrap_or([0; 8]))))
        && !chunks.remainder().iter().any(|&b| needs_look(b));
    if clean {
        out.push_str(s);
        return;
    }
    let mut start = 0;
    for (i, c) in s.char_indices() {
        let plain = if c.is_ascii() {
            !needs_escape(c as u8)
        } else {
            !hidden(c)
        };
        if plain {
            continue;
        }
        out.push_str(&s[start..i]);
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            _ => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
        }
        start = i + c.len_utf8();
    }
    out.push_str(&s[start..]);
}

/// Decimal digits of `v` without `fmt`'s padding machinery.
fn push_u64(out: &mut String, mut v: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    // ASCII digits.
    out.push_str(std::str::from_utf8(&buf[i..]).unwrap_or("0"));
}

std::thread_local! {
    /// The last second formatted on this thread, and its text up to the
    /// seconds: a request's log line mostly shares its second with the
    /// previous one.
    static SECOND: std::cell::RefCell<(u64, String)> =
        const { std::cell::RefCell::new((u64::MAX, String::new())) };
}

/// RFC 3339 UTC with microseconds: `2026-11-28T06:01:31.764647Z`.
fn push_timestamp(out: &mut String, t: SystemTime) {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    SECOND.with(|cell| {
        let Ok(mut cached) = cell.try_borrow_mut() else {
            push_seconds(out, secs);
            return;
        };
        if cached.0 != secs {
            cached.1.clear();
            push_seconds(&mut cached.1, secs);
            cached.0 = secs;
        }
        out.push_str(&cached.1);
    });
    let micros = d.subsec_micros();
    let mut tail = *b".000000Z";
    for (i, p) in [100_000, 10_000, 1000, 100, 10, 1].into_iter().enumerate() {
        tail[i + 1] = b'0' + (micros / p % 10) as u8;
    }
    // ASCII digits, a dot and a Z.
    out.push_str(std::str::from_utf8(&tail).unwrap_or(".000000Z"));
}

/// `2026-11-28T06:01:31` for seconds since the epoch.
fn push_seconds(out: &mut String, secs: u64) {
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, day) = civil_from_days(i64::try_from(days).unwrap_or(0));
    let _ = write!(
        out,
        "{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
    );
}

/// RFC 3339 UTC with microseconds: `2026-11-28T06:01:31.764647Z`.
pub fn rfc3339(t: SystemTime) -> String {
    let mut s = String::with_capacity(27);
    push_timestamp(&mut s, t);
    s
}

/// Days since 1970-01-01 to (year, month, day): Howard Hinnant's
/// `civil_from_days` (proleptic Gregorian calendar).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let m = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_follows_rfc_8259() {
        let mut out = String::new();
        escape(&mut out, "a\"b\\c\nd\u{1}e\u{7f}é");
        assert_eq!(out, "a\\\"b\\\\c\\nd\\u0001e\\u007fé");
        let v: String = serde_json::from_str(&format!("\"{out}\"")).expect("valid JSON string");
        assert_eq!(v, "a\"b\\c\nd\u{1}e\u{7f}é");
    }

    #[test]
    fn bidi_controls_c1_controls_and_line_separators_are_escaped() {
        for (raw, written) in [
            ("evil\u{202e}gnp.exe", "evil\\u202egnp.exe"),
            ("a\u{2066}b\u{2069}", "a\\u2066b\\u2069"),
            ("line\u{85}two", "line\\u0085two"),
            ("one\u{2028}two\u{2029}", "one\\u2028two\\u2029"),
            ("\u{200f}\u{61c}\u{9f}", "\\u200f\\u061c\\u009f"),
            // Other text outside ASCII stays as it is.
            ("社内VPN – café “x”", "社内VPN – café “x”"),
        ] {
            let mut out = String::new();
            escape(&mut out, raw);
            assert_eq!(out, written, "{raw:?}");
            let v: String = serde_json::from_str(&format!("\"{out}\"")).expect("valid JSON");
            assert_eq!(v, raw);
            assert!(!out.chars().any(hidden), "{out:?}");
        }
    }

    use crate::telemetry::test_support::Buf;

    proptest::proptest! {
        /// The word check agrees with the byte check on any eight bytes.
        #[test]
        fn word_check_matches_byte_check(bytes: [u8; 8]) {
            proptest::prop_assert_eq!(
                word_needs_look(u64::from_le_bytes(bytes)),
                bytes.iter().any(|&b| needs_look(b))
            );
        }

        /// Escaped text reads back as the original through a JSON parser.
        #[test]
        fn escaped_strings_round_trip(s: String) {
            let mut out = String::from("\"");
            escape(&mut out, &s);
            out.push('"');
            let back: String = serde_json::from_str(&out).expect("valid JSON string");
            proptest::prop_assert_eq!(back, s);
        }
    }

    #[test]
    fn an_event_is_one_json_line_with_typed_fields() {
        let buf = Buf::default();
        let out = buf.clone();
        let subscriber = crate::telemetry::subscriber(
            crate::telemetry::LogFormat::Json,
            crate::telemetry::BoxMakeWriter::new(move || out.clone()),
        );
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(
                event = "x",
                zero = 0u64,
                big = u64::MAX,
                neg = -5i64,
                ms = 1.2346f64,
                negms = -0.0004f64,
                huge = 1e300f64,
                nan = f64::NAN,
                text = "a\"b\u{1}",
                shown = %std::net::Ipv4Addr::LOCALHOST,
                "msg"
            );
        });
        let text = String::from_utf8(buf.0.lock().expect("lock").clone()).expect("utf-8");
        assert!(text.ends_with('\n') && text.lines().count() == 1, "{text}");
        let v: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
        assert_eq!(v["level"], "WARN");
        assert_eq!(v["message"], "msg");
        assert_eq!(v["zero"], 0);
        assert_eq!(v["big"], u64::MAX);
        assert_eq!(v["neg"], -5);
        assert_eq!(v["ms"], 1.235);
        assert_eq!(v["negms"], -0.0);
        assert_eq!(v["huge"], 1e300);
        assert!(v["nan"].is_null());
        assert_eq!(v["text"], "a\"b\u{1}");
        assert_eq!(v["shown"], "127.0.0.1");
    }

    #[test]
    fn timestamps_are_rfc_3339_utc() {
        let t = UNIX_EPOCH + std::time::Duration::from_micros(1_795_845_691_764_647);
        assert_eq!(rfc3339(t), "2026-11-28T06:01:31.764647Z");
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000000Z");
        let leap = UNIX_EPOCH + std::time::Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(rfc3339(leap), "2000-02-29T00:00:00.000000Z");
        // The cached second is reused, and replaced when the second changes.
        let later = leap + std::time::Duration::from_micros(999_999);
        assert_eq!(rfc3339(later), "2000-02-29T00:00:00.999999Z");
        assert_eq!(
            rfc3339(later + std::time::Duration::from_micros(1)),
            "2000-02-29T00:00:01.000000Z"
        );
    }
}
