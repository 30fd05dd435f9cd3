//! A JSON line formatter for tracing events, written for the request path:
//! fields are written straight into the line buffer with JSON escaping, with
//! no intermediate `serde_json` values and no re-parsing. One line:
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
        w.write_str("{\"timestamp\":\"")?;
        write_timestamp(&mut w, SystemTime::now())?;
        write!(w, "\",\"level\":\"{}\"", event.metadata().level())?;
        let mut v = Fields {
            w: &mut w,
            result: Ok(()),
        };
        event.record(&mut v);
        v.result?;
        w.write_str("}\n")
    }
}

struct Fields<'a, 'w> {
    w: &'a mut Writer<'w>,
    result: fmt::Result,
}

impl Fields<'_, '_> {
    fn key(&mut self, field: &Field) -> fmt::Result {
        self.w.write_str(",\"")?;
        escape(self.w, field.name())?;
        self.w.write_str("\":")
    }

    fn put(&mut self, f: impl FnOnce(&mut Self) -> fmt::Result) {
        if self.result.is_ok() {
            self.result = f(self);
        }
    }
}

impl Visit for Fields<'_, '_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(|s| {
            s.key(field)?;
            s.w.write_char('"')?;
            escape(s.w, value)?;
            s.w.write_char('"')
        });
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(|s| {
            s.key(field)?;
            s.w.write_str(if value { "true" } else { "false" })
        });
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(|s| {
            s.key(field)?;
            write!(s.w, "{value}")
        });
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(|s| {
            s.key(field)?;
            write!(s.w, "{value}")
        });
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(|s| {
            s.key(field)?;
            if value.is_finite() {
                write!(s.w, "{value}")
            } else {
                s.w.write_str("null")
            }
        });
    }

    /// `%value` and `?value` fields: formatted straight through the escaper.
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(|s| {
            s.key(field)?;
            s.w.write_char('"')?;
            write!(Escaper(s.w), "{value:?}")?;
            s.w.write_char('"')
        });
    }
}

/// Writes through JSON string escaping (RFC 8259 §7).
struct Escaper<'a, 'w>(&'a mut Writer<'w>);

impl fmt::Write for Escaper<'_, '_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        escape(self.0, s)
    }
}

fn escape(w: &mut Writer<'_>, s: &str) -> fmt::Result {
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc: &str = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0..=0x1f | 0x7f => "",
            _ => continue,
        };
        w.write_str(&s[start..i])?;
        if esc.is_empty() {
            write!(w, "\\u{b:04x}")?;
        } else {
            w.write_str(esc)?;
        }
        start = i + 1;
    }
    w.write_str(&s[start..])
}

/// RFC 3339 UTC with microseconds: `2026-11-28T06:01:31.764647Z`.
pub fn write_timestamp(w: &mut Writer<'_>, t: SystemTime) -> fmt::Result {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, day) = civil_from_days(i64::try_from(days).unwrap_or(0));
    write!(
        w,
        "{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}.{:06}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_micros()
    )
}

/// [`write_timestamp`] into a new string.
pub fn rfc3339(t: SystemTime) -> String {
    let mut s = String::with_capacity(27);
    // Writing to a String cannot fail.
    let _ = write_timestamp(&mut Writer::new(&mut s), t);
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

    fn render(f: impl FnOnce(&mut Writer<'_>) -> fmt::Result) -> String {
        let mut s = String::new();
        f(&mut Writer::new(&mut s)).expect("formatting succeeds");
        s
    }

    #[test]
    fn escaping_follows_rfc_8259() {
        let out = render(|w| escape(w, "a\"b\\c\nd\u{1}e\u{7f}é"));
        assert_eq!(out, "a\\\"b\\\\c\\nd\\u0001e\\u007fé");
        let v: String = serde_json::from_str(&format!("\"{out}\"")).expect("valid JSON string");
        assert_eq!(v, "a\"b\\c\nd\u{1}e\u{7f}é");
    }

    #[test]
    fn timestamps_are_rfc_3339_utc() {
        let t = UNIX_EPOCH + std::time::Duration::from_micros(1_795_845_691_764_647);
        assert_eq!(
            render(|w| write_timestamp(w, t)),
            "2026-11-28T06:01:31.764647Z"
        );
        assert_eq!(
            render(|w| write_timestamp(w, UNIX_EPOCH)),
            "1970-01-01T00:00:00.000000Z"
        );
        let leap = UNIX_EPOCH + std::time::Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(
            render(|w| write_timestamp(w, leap)),
            "2000-02-29T00:00:00.000000Z"
        );
    }
}
