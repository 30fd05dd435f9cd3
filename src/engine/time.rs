//! Time in the decision: a rule's or a grant's `until:` instant and a
//! rule's `when:` windows. Pure: the instant a request is decided at comes
//! in with its facts ([`super::RequestFacts::now`]); nothing here reads a
//! clock.
//!
//! A window is wall-clock time in an IANA time zone (jiff, with its time
//! zone database compiled in): "weekdays 08:00-20:00 Asia/Tokyo" holds
//! across daylight-saving changes the way the office's clocks do.

use std::fmt;

pub use jiff::Timestamp;
use jiff::tz::TimeZone;

/// Minutes in a day; `24:00` is the end of the day.
const DAY: u16 = 24 * 60;

/// Day names as the policy writes them, Monday first (ISO 8601).
pub const DAY_NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// Days of the week, bit 0 = Monday.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Days(u8);

impl Days {
    pub const ALL: Days = Days(0x7f);

    fn has(self, monday_zero: u8) -> bool {
        self.0 & (1 << monday_zero) != 0
    }

    /// `mon`, `mon-fri`, `sat-mon` (wraps), case-insensitive; the names of
    /// [`DAY_NAMES`] or their full English names.
    pub fn parse(items: &[&str]) -> Result<Days, String> {
        let mut bits = 0u8;
        for item in items {
            let (a, b) = match item.split_once('-') {
                Some((a, b)) => (day(a)?, day(b)?),
                None => {
                    let d = day(item)?;
                    (d, d)
                }
            };
            let mut d = a;
            loop {
                bits |= 1 << d;
                if d == b {
                    break;
                }
                d = (d + 1) % 7;
            }
        }
        if bits == 0 {
            return Err("no days given".into());
        }
        Ok(Days(bits))
    }
}

fn day(s: &str) -> Result<u8, String> {
    let s = s.trim().to_ascii_lowercase();
    let full = [
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday",
    ];
    DAY_NAMES
        .iter()
        .position(|d| *d == s)
        .or_else(|| full.iter().position(|d| *d == s))
        .map(|i| i as u8)
        .ok_or_else(|| {
            format!("'{s}' is not a day of the week (mon, tue, wed, thu, fri, sat, sun)")
        })
}

impl fmt::Display for Days {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = (0..7)
            .filter(|&d| self.has(d))
            .map(|d| DAY_NAMES[usize::from(d)])
            .collect();
        f.write_str(&names.join(","))
    }
}

/// `08:00-20:00`: from the first minute, up to but not including the
/// second. A window whose end is before its start runs past midnight
/// (`22:00-06:00`); `00:00-24:00` is the whole day.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hours {
    start: u16,
    end: u16,
}

impl Hours {
    pub const ALL_DAY: Hours = Hours { start: 0, end: DAY };

    pub fn parse(s: &str) -> Result<Hours, String> {
        let bad = || format!("'{s}' is not a range of hours like 08:00-20:00 (00:00 to 24:00)");
        let (a, b) = s.split_once('-').ok_or_else(bad)?;
        let start = minute_of_day(a.trim()).ok_or_else(bad)?;
        let end = minute_of_day(b.trim()).ok_or_else(bad)?;
        if start == end {
            return Err(format!(
                "'{s}' is empty (start and end are the same); write 00:00-24:00 for the whole day"
            ));
        }
        if start == DAY {
            return Err(format!("'{s}' starts at 24:00; start at 00:00"));
        }
        Ok(Hours { start, end })
    }
}

/// `HH:MM`, 00:00 to 24:00.
fn minute_of_day(s: &str) -> Option<u16> {
    let (h, m) = s.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let h: u16 = h.parse().ok()?;
    let m: u16 = m.parse().ok()?;
    (m < 60 && (h < 24 || (h == 24 && m == 0))).then_some(h * 60 + m)
}

impl fmt::Display for Hours {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hm = |m: u16| format!("{:02}:{:02}", m / 60, m % 60);
        write!(f, "{}-{}", hm(self.start), hm(self.end))
    }
}

/// One `when:` window: days, hours, and the time zone both are read in.
#[derive(Clone, Debug, PartialEq)]
pub struct Window {
    pub days: Days,
    pub hours: Hours,
    pub zone: TimeZone,
}

impl Window {
    /// Whether `now` falls in the window. A window past midnight belongs
    /// to the day it starts on: `fri 22:00-06:00` holds until Saturday
    /// 06:00, not on Friday before 06:00.
    pub fn contains(&self, now: Timestamp) -> bool {
        let local = self.zone.to_datetime(now);
        let day = local.weekday().to_monday_zero_offset() as u8;
        // PANIC SAFETY: hour() is 0..=23 and minute() 0..=59.
        let minute = u16::try_from(local.hour()).expect("hour of day") * 60
            + u16::try_from(local.minute()).expect("minute of hour");
        let Hours { start, end } = self.hours;
        if start < end {
            self.days.has(day) && (start..end).contains(&minute)
        } else {
            let yesterday = (day + 6) % 7;
            (self.days.has(day) && minute >= start) || (self.days.has(yesterday) && minute < end)
        }
    }
}

/// When a window opens: the instant, and the wall clock of its zone then.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Opening {
    pub at: Timestamp,
    pub local: jiff::civil::DateTime,
    /// The zone's offset from UTC then, in seconds.
    pub offset_seconds: i32,
}

impl Window {
    /// The first instant after `now` at which the window opens (within the
    /// next eight days: every window opens in a week).
    pub fn opens_after(&self, now: Timestamp) -> Option<Opening> {
        let today = self.zone.to_datetime(now).date();
        let (hour, minute) = (self.hours.start / 60, self.hours.start % 60);
        (0..8i64)
            .filter_map(|d| today.checked_add(jiff::Span::new().days(d)).ok())
            .filter(|date| {
                self.days
                    .has(u8::try_from(date.weekday().to_monday_zero_offset()).unwrap_or(7))
            })
            .filter_map(|date| {
                let local = date.at(i8::try_from(hour).ok()?, i8::try_from(minute).ok()?, 0, 0);
                let at = self.zone.to_timestamp(local).ok()?;
                Some(Opening {
                    at,
                    local,
                    offset_seconds: self.zone.to_offset(at).seconds(),
                })
            })
            .find(|o| o.at > now)
    }
}

impl Window {
    /// Every instant in the eight days after `now` at which the window
    /// opens or closes (for `netwarden diff`: between two of them, the
    /// window holds or not throughout).
    pub fn edges_after(&self, now: Timestamp) -> Vec<Timestamp> {
        let today = self.zone.to_datetime(now).date();
        let mut out = Vec::new();
        for d in -1..8i64 {
            let Ok(date) = today.checked_add(jiff::Span::new().days(d)) else {
                continue;
            };
            if !self
                .days
                .has(u8::try_from(date.weekday().to_monday_zero_offset()).unwrap_or(7))
            {
                continue;
            }
            let Hours { start, end } = self.hours;
            // A window past midnight closes on the next day.
            let end_day = if end <= start { 1 } else { 0 };
            for (minute, extra) in [(start, 0i64), (end, end_day)] {
                let (day_shift, minute) = if minute == DAY { (1, 0) } else { (0, minute) };
                let Ok(day) = date.checked_add(jiff::Span::new().days(extra + day_shift)) else {
                    continue;
                };
                let (Ok(h), Ok(m)) = (i8::try_from(minute / 60), i8::try_from(minute % 60)) else {
                    continue;
                };
                if let Ok(at) = self.zone.to_timestamp(day.at(h, m, 0, 0))
                    && at > now
                {
                    out.push(at);
                }
            }
        }
        out
    }
}

/// When the first of `windows` opens after `now`.
pub fn next_opening(windows: &[Window], now: Timestamp) -> Option<Opening> {
    windows
        .iter()
        .filter_map(|w| w.opens_after(now))
        .min_by_key(|o| o.at)
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {}",
            self.days,
            self.hours,
            self.zone.iana_name().unwrap_or("UTC")
        )
    }
}

/// Whether any of `windows` holds at `now`; no windows: always.
pub fn in_windows(windows: &[Window], now: Timestamp) -> bool {
    windows.is_empty() || windows.iter().any(|w| w.contains(now))
}

/// An IANA time zone from the compiled-in database (`Asia/Tokyo`, `UTC`).
pub fn zone(name: &str) -> Result<TimeZone, String> {
    TimeZone::get(name).map_err(|_| {
        format!("'{name}' is not an IANA time zone name (such as Asia/Tokyo, Europe/Paris or UTC)")
    })
}

/// An instant with its offset, in RFC 3339's form only:
/// `2026-12-24T18:00:00+09:00`, `2026-12-24T09:00:00.5Z`. A date or a time
/// without an offset is refused ("18:00" in whose zone?), and so are the
/// forms other parsers read differently: no seconds, the basic format
/// (`20261224T090000Z`), offsets with seconds or past ±23:59, `-00:00`
/// (RFC 3339 §4.3: "offset unknown"), and bracketed annotations.
pub fn parse_instant(s: &str) -> Result<Timestamp, String> {
    let bad = || {
        format!(
            "'{s}' is not an instant with an offset, such as 2026-12-24T18:00:00+09:00 or 2026-12-24T09:00:00Z"
        )
    };
    let t = s.trim();
    if !is_rfc3339(t) {
        return Err(bad());
    }
    t.parse::<Timestamp>().map_err(|_| bad())
}

/// An instant as people write it (`2026-12-10 18:00 +09:00`,
/// `2026-12-10T18:00+09:00`, seconds optional, a space before the offset
/// allowed) in the policy's strict form (`2026-12-10T18:00:00+09:00`,
/// the offset kept as written), or why it is not one.
pub fn strict_instant(written: &str) -> Result<String, String> {
    let t = written.trim();
    let (date, rest) = t
        .split_once(['T', 't', ' '])
        .ok_or_else(|| format!("'{t}' has no time: write 2026-12-10 18:00 +09:00"))?;
    let rest = rest.trim_start();
    // The time runs up to the offset: Z, +HH:MM or -HH:MM.
    let cut = rest.find(['Z', 'z', '+', '-']).ok_or_else(|| {
        format!("'{t}' has no offset: add Z or +09:00 (an instant must mean the same everywhere)")
    })?;
    let (time, offset) = (rest[..cut].trim_end(), &rest[cut..]);
    let time = match time.len() {
        5 => format!("{time}:00"),
        _ => time.to_string(),
    };
    let offset = if offset.eq_ignore_ascii_case("z") {
        "Z".to_string()
    } else {
        offset.to_string()
    };
    let strict = format!("{date}T{time}{offset}");
    parse_instant(&strict)?;
    Ok(strict)
}

/// `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)` (RFC 3339 §5.6), offset
/// hours 00 to 23, not `-00:00`.
fn is_rfc3339(t: &str) -> bool {
    let b = t.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| b.get(r).is_some_and(|d| d.iter().all(u8::is_ascii_digit));
    let at = |i: usize, c: u8| b.get(i) == Some(&c);
    if !(digits(0..4) && at(4, b'-') && digits(5..7) && at(7, b'-') && digits(8..10)) {
        return false;
    }
    if !((at(10, b'T') || at(10, b't'))
        && digits(11..13)
        && at(13, b':')
        && digits(14..16)
        && at(16, b':')
        && digits(17..19))
    {
        return false;
    }
    // RFC 3339 allows :60 for a leap second; parsers differ on it (jiff
    // reads it as :59), so it is refused.
    if t.get(17..19).is_some_and(|s| s > "59") {
        return false;
    }
    let mut i = 19;
    if at(i, b'.') {
        let start = i + 1;
        i = start;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == start || i - start > 9 {
            return false;
        }
    }
    match &t[i..] {
        "Z" | "z" => true,
        off if off.len() == 6 => {
            let o = off.as_bytes();
            let hours = off.get(1..3).and_then(|h| h.parse::<u8>().ok());
            let minutes = off.get(4..6).and_then(|m| m.parse::<u8>().ok());
            (o[0] == b'+' || o[0] == b'-')
                && o[3] == b':'
                && hours.is_some_and(|h| h <= 23)
                && minutes.is_some_and(|m| m <= 59)
                && off != "-00:00"
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_as_people_write_them_become_the_strict_form() {
        for (written, strict) in [
            ("2026-12-10 18:00 +09:00", "2026-12-10T18:00:00+09:00"),
            ("2026-12-10T18:00+09:00", "2026-12-10T18:00:00+09:00"),
            ("2026-12-10T18:00:30Z", "2026-12-10T18:00:30Z"),
            (" 2026-12-10 09:00z ", "2026-12-10T09:00:00Z"),
        ] {
            assert_eq!(strict_instant(written).as_deref(), Ok(strict), "{written}");
        }
        for bad in [
            "2026-12-10",
            "2026-12-10 18:00",
            "2026-12-10 25:00 +09:00",
            "tomorrow",
        ] {
            assert!(strict_instant(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_closed_window_says_when_it_opens_next() {
        let w = Window {
            days: Days::parse(&["mon-fri"]).expect("days"),
            hours: Hours::parse("08:00-20:00").expect("hours"),
            zone: zone("Asia/Tokyo").expect("zone"),
        };
        // Saturday 2026-12-05 12:00 JST: Monday 08:00 JST.
        let sat: Timestamp = "2026-12-05T03:00:00Z".parse().expect("instant");
        let opens = w.opens_after(sat).expect("opens");
        assert_eq!(opens.at.to_string(), "2026-12-06T23:00:00Z");
        assert_eq!(opens.local.to_string(), "2026-12-07T08:00:00");
        assert_eq!(opens.offset_seconds, 9 * 3600);
        // Monday 21:00 JST, after hours: Tuesday 08:00.
        let mon: Timestamp = "2026-12-07T12:00:00Z".parse().expect("instant");
        assert_eq!(
            next_opening(std::slice::from_ref(&w), mon)
                .expect("opens")
                .at
                .to_string(),
            "2026-12-07T23:00:00Z"
        );
    }

    fn at(s: &str) -> Timestamp {
        s.parse().expect("instant")
    }

    fn tokyo_weekdays(hours: &str) -> Window {
        Window {
            days: Days::parse(&["mon-fri"]).expect("days"),
            hours: Hours::parse(hours).expect("hours"),
            zone: zone("Asia/Tokyo").expect("zone"),
        }
    }

    #[test]
    fn a_weekday_window_holds_in_its_own_time_zone() {
        let w = tokyo_weekdays("08:00-20:00");
        // Monday 2026-11-30 08:00 in Tokyo is Sunday 23:00 UTC.
        assert!(w.contains(at("2026-11-29T23:00:00Z")));
        assert!(!w.contains(at("2026-11-29T22:59:59Z")));
        // 20:00 is the first minute outside.
        assert!(w.contains(at("2026-11-30T10:59:59Z")));
        assert!(!w.contains(at("2026-11-30T11:00:00Z")));
        // Saturday noon in Tokyo.
        assert!(!w.contains(at("2026-12-05T03:00:00Z")));
    }

    #[test]
    fn a_window_past_midnight_belongs_to_the_day_it_starts() {
        let w = Window {
            days: Days::parse(&["fri"]).expect("days"),
            hours: Hours::parse("22:00-06:00").expect("hours"),
            zone: zone("UTC").expect("zone"),
        };
        assert!(w.contains(at("2026-12-04T23:00:00Z"))); // Friday 23:00
        assert!(w.contains(at("2026-12-05T05:59:00Z"))); // Saturday 05:59
        assert!(!w.contains(at("2026-12-05T06:00:00Z")));
        assert!(!w.contains(at("2026-12-04T05:00:00Z"))); // Friday 05:00
    }

    #[test]
    fn daylight_saving_moves_the_window_with_the_wall_clock() {
        let w = Window {
            days: Days::ALL,
            hours: Hours::parse("09:00-10:00").expect("hours"),
            zone: zone("Europe/Paris").expect("zone"),
        };
        // 09:30 Paris is 07:30 UTC in summer, 08:30 UTC in winter.
        assert!(w.contains(at("2026-07-01T07:30:00Z")));
        assert!(!w.contains(at("2026-07-01T08:30:00Z")));
        assert!(w.contains(at("2026-12-01T08:30:00Z")));
    }

    #[test]
    fn day_lists_and_ranges_parse_and_wrap() {
        assert_eq!(
            Days::parse(&["sat-mon"]).expect("wraps").to_string(),
            "mon,sat,sun"
        );
        assert_eq!(
            Days::parse(&["Monday", "wed"]).expect("names").to_string(),
            "mon,wed"
        );
        assert!(Days::parse(&["mon-funday"]).is_err());
        assert!(Days::parse(&[]).is_err());
    }

    #[test]
    fn hours_are_checked() {
        assert_eq!(
            Hours::parse("08:00-20:00").expect("ok").to_string(),
            "08:00-20:00"
        );
        assert_eq!(
            Hours::parse("00:00-24:00").expect("whole day"),
            Hours::ALL_DAY
        );
        for bad in [
            "8-20",
            "08:00",
            "08:00-08:00",
            "24:00-06:00",
            "07:60-08:00",
            "25:00-26:00",
        ] {
            assert!(Hours::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn instants_need_an_offset() {
        assert!(parse_instant("2026-12-24T18:00:00+09:00").is_ok());
        assert!(parse_instant("2026-12-24T09:00:00Z").is_ok());
        assert!(parse_instant("2026-12-24T18:00:00").is_err());
        assert!(parse_instant("2026-12-24").is_err());
        assert!(parse_instant("2026-12-24T09:00:00.123456789Z").is_ok());
        assert!(parse_instant("2026-12-24T18:00:00-05:30").is_ok());
        for odd in [
            "2026-12-24T09:00Z",
            "20261224T090000Z",
            "2026-12-24T09:00:00+24:00",
            "2026-12-24T09:00:00+00:00:30",
            "2026-12-24T09:00:00-00:00",
            "2026-12-24T09:00:00+09:00[!America/New_York]",
            "2026-12-24 09:00:00Z",
            "2026-12-24T09:00:00.Z",
            "2026-12-31T23:59:60Z",
            "２０２６-12-24T09:00:00Z",
        ] {
            assert!(parse_instant(odd).is_err(), "{odd}");
        }
        assert!(zone("Asia/Tokio").is_err());
    }
}
