//! `Accept-Language` (RFC 9110 §12.5.4): which offered language a page is
//! written in. Pure and allocation-free: the header's lines are read as one
//! comma-separated list; each language range carries a weight (`q`, 0 to 1,
//! three decimals at most); a range names a language when it is its tag or
//! a subtag of it (`ja-JP` names `ja`, as RFC 4647 §3.4 lookup falls back;
//! `jav` does not), or is `*`. Each offered language takes the weight of
//! the most specific range that names it; the heaviest wins, ties going to
//! the policy's order. Weight 0 means "not this one". Nothing acceptable,
//! no header, or a header of nothing but malformed ranges: the fallback.

use crate::policy::pages::{Lang, PagesSettings};

/// A weight in thousandths (`q=0.5` is 500); `None` when malformed.
fn qvalue(s: &str) -> Option<u16> {
    let s = s.trim();
    let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut thousandths: u16 = 0;
    for (i, b) in frac.bytes().enumerate() {
        thousandths += u16::from(b - b'0') * [100, 10, 1][i];
    }
    match whole {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

/// How a range names `lang`: 2 the tag itself, 1 a subtag of it, 0 `*`.
fn names(range: &str, lang: Lang) -> Option<u8> {
    let tag = lang.tag();
    if range == "*" {
        return Some(0);
    }
    if range.eq_ignore_ascii_case(tag) {
        return Some(2);
    }
    let prefix = range.get(..tag.len())?;
    (prefix.eq_ignore_ascii_case(tag) && range.as_bytes().get(tag.len()) == Some(&b'-'))
        .then_some(1)
}

/// A language range: letters, digits and `-`, or `*` (RFC 4647 §2.1).
fn well_formed(range: &str) -> bool {
    range == "*"
        || (!range.is_empty()
            && range.len() <= 64
            && range
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !range.starts_with('-'))
}

/// The language to answer in, for the `Accept-Language` lines given.
pub fn negotiate<'h>(lines: impl Iterator<Item = &'h [u8]>, pages: &PagesSettings) -> Lang {
    // Per offered language: (specificity, weight) of the best range so far.
    let mut best: [Option<(u8, u16)>; 2] = [None, None];
    let mut any = false;
    for line in lines {
        let Ok(line) = std::str::from_utf8(line) else {
            continue;
        };
        for item in line.split(',') {
            let mut parts = item.split(';');
            let range = parts.next().unwrap_or("").trim();
            if !well_formed(range) {
                continue;
            }
            let mut weight = Some(1000);
            for param in parts {
                let (k, v) = param.split_once('=').unwrap_or((param, ""));
                if k.trim().eq_ignore_ascii_case("q") {
                    weight = qvalue(v);
                }
            }
            let Some(weight) = weight else {
                continue;
            };
            any = true;
            for (i, lang) in Lang::ALL.into_iter().enumerate() {
                if let Some(spec) = names(range, lang)
                    && best[i].is_none_or(|(s, _)| spec > s)
                {
                    best[i] = Some((spec, weight));
                }
            }
        }
    }
    if !any {
        return pages.fallback;
    }
    let mut choice: Option<(u16, Lang)> = None;
    for &lang in &pages.offered {
        let Some((_, w)) = best[lang as usize] else {
            continue;
        };
        if w > 0 && choice.is_none_or(|(cw, _)| w > cw) {
            choice = Some((w, lang));
        }
    }
    choice.map_or(pages.fallback, |(_, l)| l)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pick(header: Option<&str>, offered: &[Lang], fallback: Lang) -> Lang {
        let pages = PagesSettings {
            offered: offered.to_vec(),
            fallback,
            ..PagesSettings::default()
        };
        negotiate(header.into_iter().map(str::as_bytes), &pages)
    }

    #[test]
    fn negotiation_table() {
        use Lang::{En, Ja};
        let both = [En, Ja];
        let cases: &[(Option<&str>, Lang)] = &[
            (Some("ja"), Ja),
            (Some("ja-JP"), Ja),
            (Some("JA-jp"), Ja),
            (Some("ja-JP,ja;q=0.9,en-US;q=0.8,en;q=0.7"), Ja),
            (Some("en;q=0.5, ja"), Ja),
            (Some("en, ja;q=0.9"), En),
            (Some("en-GB,en;q=0.9"), En),
            (Some("*"), En),
            (Some("fr"), En),
            (Some("fr, ja;q=0.1"), Ja),
            (Some("jav"), En),
            (Some("ja;q=0"), En),
            (Some("*;q=0.5, ja;q=0"), En),
            (Some("ja-JP;q=0.2, ja;q=0.9, en;q=0.5"), Ja),
            (None, En),
            (Some(""), En),
            (Some(";;;,q=x,=,"), En),
            (Some("ja;q=2"), En),
            (Some("ja;q=0.0001"), En),
            (Some("ja;q=1.000"), Ja),
            (Some("ja;q=abc, en;q=0.1"), En),
        ];
        for (header, want) in cases {
            assert_eq!(pick(*header, &both, En), *want, "{header:?}");
        }
    }

    #[test]
    fn the_policys_order_breaks_ties_and_its_fallback_is_used() {
        use Lang::{En, Ja};
        assert_eq!(pick(Some("*"), &[Ja, En], Ja), Ja);
        assert_eq!(pick(Some("en, ja"), &[Ja, En], Ja), Ja);
        assert_eq!(pick(Some("fr"), &[Ja, En], Ja), Ja);
        // Not offered: English is not an answer even when asked for.
        assert_eq!(pick(Some("en"), &[Ja], Ja), Ja);
    }

    #[test]
    fn lines_of_the_header_are_one_list() {
        let pages = PagesSettings::default();
        let lines = ["en;q=0.3", "ja;q=0.8"];
        assert_eq!(
            negotiate(lines.iter().map(|l| l.as_bytes()), &pages),
            Lang::Ja
        );
    }

    #[test]
    fn qvalues_are_strict() {
        assert_eq!(qvalue("0.5"), Some(500));
        assert_eq!(qvalue("1"), Some(1000));
        assert_eq!(qvalue("0"), Some(0));
        assert_eq!(qvalue("0.125"), Some(125));
        for bad in ["1.5", "-0.1", "0.1234", "", "abc", "2", "0.a"] {
            assert_eq!(qvalue(bad), None, "{bad}");
        }
    }
}
