//! Words people read outside the block pages: alerts (and the morning
//! digest), in each built-in language, from one table per language.
//!
//! One term set in every surface (issue 23's review of the Japanese, the
//! same as `proxy/pages/words.rs`): the company network is 社内ネットワーク,
//! its VPN 社内VPN, the client's address 接続元IPアドレス (never 「あなた」,
//! never アドレス alone, which reads as an e-mail address), a sign-in
//! ログイン, a lock ロック, IT 情報システム部門. Machine words (kinds, rule
//! names, reason codes, counts) stay as they are in every language, so that
//! automation does not break when a team changes its language.
//!
//! Pure: no I/O, no clock; times are given.

pub mod alerts;

use std::time::{Duration, SystemTime};

use jiff::Timestamp;
use jiff::tz::TimeZone;

pub use crate::policy::pages::Lang;

/// A time as people write it, in `tz`: `2026-12-07 21:10 JST`
/// (`2026-12-07 12:10 UTC`). Japanese readers write dates the same way in
/// operations work; the zone's abbreviation says which clock.
pub fn when(at: SystemTime, tz: &TimeZone) -> String {
    let ts = Timestamp::try_from(at).unwrap_or(Timestamp::UNIX_EPOCH);
    let local = tz.to_datetime(ts);
    let info = tz.to_offset_info(ts);
    let abbr = match info.abbreviation() {
        "" => info.offset().to_string(),
        a => a.to_string(),
    };
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02} {abbr}",
        local.year(),
        local.month(),
        local.day(),
        local.hour(),
        local.minute()
    )
}

/// `12-07 21:10` in `tz`: for lists where the date and zone are said once.
pub fn clock_time(at: SystemTime, tz: &TimeZone) -> String {
    let local = tz.to_datetime(Timestamp::try_from(at).unwrap_or(Timestamp::UNIX_EPOCH));
    format!("{:02}:{:02}", local.hour(), local.minute())
}

/// "15 minutes", "2 hours", "1 hour 30 minutes", "45 seconds";
/// 「15分」「2時間」「1時間30分」「45秒」.
pub fn duration(d: Duration, lang: Lang) -> String {
    let s = d.as_secs();
    let (h, m) = (s / 3600, (s % 3600) / 60);
    match lang {
        Lang::En => {
            let plural = |n: u64, unit: &str| format!("{n} {unit}{}", plural(n));
            match (h, m) {
                (0, 0) => plural(s, "second"),
                (0, m) => plural(m, "minute"),
                (h, 0) => plural(h, "hour"),
                (h, m) => format!("{} {}", plural(h, "hour"), plural(m, "minute")),
            }
        }
        Lang::Ja => match (h, m) {
            (0, 0) => format!("{s}秒"),
            (0, m) => format!("{m}分"),
            (h, 0) => format!("{h}時間"),
            (h, m) => format!("{h}時間{m}分"),
        },
    }
}

/// The English plural ending for `n`.
pub(crate) fn plural(n: u64) -> &'static str {
    if n == 1 { "" } else { "s" }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn times_are_written_as_people_write_them_in_the_sinks_zone() {
        // 2026-12-07T12:10:00Z
        let t = at(1_796_645_400);
        let tokyo = TimeZone::get("Asia/Tokyo").expect("tzdb");
        assert_eq!(when(t, &tokyo), "2026-12-07 21:10 JST");
        assert_eq!(when(t, &TimeZone::UTC), "2026-12-07 12:10 UTC");
        let paris = TimeZone::get("Europe/Paris").expect("tzdb");
        assert_eq!(when(t, &paris), "2026-12-07 13:10 CET");
        assert_eq!(clock_time(t, &tokyo), "21:10");
    }

    #[test]
    fn durations_read_naturally_in_both_languages() {
        let d = |s| Duration::from_secs(s);
        assert_eq!(duration(d(90 * 60), Lang::En), "1 hour 30 minutes");
        assert_eq!(duration(d(90 * 60), Lang::Ja), "1時間30分");
        assert_eq!(duration(d(24 * 3600), Lang::En), "24 hours");
        assert_eq!(duration(d(24 * 3600), Lang::Ja), "24時間");
        assert_eq!(duration(d(1), Lang::En), "1 second");
        assert_eq!(duration(d(45), Lang::Ja), "45秒");
        assert_eq!(duration(d(15 * 60), Lang::Ja), "15分");
    }
}
