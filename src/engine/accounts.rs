//! Account patterns for the policy's named groups of accounts (issue 26:
//! "these users, only from these networks"): `agency-*@example.jp`,
//! `campaign01`, `*@partner.example`. Pure; compared in the folded form the
//! lockout hashes accounts in ([`super::account::fold`]), so that
//! `Ｙａｍａｄａ@Example.JP` is `yamada@example.jp` for a pattern as for a
//! lock. Not yet read by the policy compiler: the rules that use groups
//! come with the decision's account fact.

use super::account::fold;
use super::outcome::glob;

/// One pattern: a glob on the local part and one on the domain, or on the
/// whole name when it has no `@`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountPattern {
    local: String,
    /// `None`: the pattern names an account without a domain.
    domain: Option<String>,
}

/// Why a pattern is not one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    #[error("is empty")]
    Empty,
    #[error("has more than one '@'")]
    TwoAts,
    #[error("has an empty local part or domain")]
    EmptyPart,
    #[error("is only '*': it would name every account")]
    Everyone,
}

impl AccountPattern {
    /// Reads a pattern as the policy writes it. `*` stands for any run of
    /// characters but `@`; everything else is compared folded.
    pub fn parse(text: &str) -> Result<Self, PatternError> {
        Self::from_compared(fold(text))
    }

    /// Reads a `who.emails` pattern: compared by ASCII case only, as
    /// identities' e-mails are ([`super::who::fold_email`]): `ý` stays
    /// `ý`, and matches only `ý` (fourth red-team review of issue 26: a
    /// folded pattern never matched the address it was written for).
    pub fn parse_email(text: &str) -> Result<Self, PatternError> {
        Self::from_compared(text.trim().to_ascii_lowercase())
    }

    /// A pattern from its text in the form it is compared in.
    fn from_compared(text: String) -> Result<Self, PatternError> {
        if text.is_empty() {
            return Err(PatternError::Empty);
        }
        let mut parts = text.split('@');
        let local = parts.next().unwrap_or_default().to_string();
        let domain = parts.next().map(str::to_string);
        if parts.next().is_some() {
            return Err(PatternError::TwoAts);
        }
        if local.is_empty() || domain.as_deref() == Some("") {
            return Err(PatternError::EmptyPart);
        }
        if domain.is_none() && local.chars().all(|c| c == '*') {
            return Err(PatternError::Everyone);
        }
        Ok(Self { local, domain })
    }

    /// An account this pattern names (`*` as `x`).
    pub fn example(&self) -> String {
        let local = self.local.replace('*', "x");
        match &self.domain {
            Some(d) => format!("{local}@{}", d.replace('*', "x")),
            None => local,
        }
    }

    /// Whether the account `folded` (already [`fold`]ed) is one this
    /// pattern names.
    pub fn matches(&self, folded: &str) -> bool {
        match (folded.rsplit_once('@'), &self.domain) {
            (Some((local, domain)), Some(d)) => {
                // `example.jp.` is `example.jp` to DNS and to mail.
                let domain = domain.strip_suffix('.').unwrap_or(domain);
                !local.contains('@') && glob(&self.local, local) && glob(d, domain)
            }
            (None, None) => glob(&self.local, folded),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn m(pattern: &str, account: &str) -> bool {
        AccountPattern::parse(pattern)
            .expect("pattern")
            .matches(&fold(account))
    }

    #[test]
    fn a_full_width_or_upper_case_spelling_is_the_same_account() {
        assert!(m("yamada@example.jp", "Ｙａｍａｄａ@Example.JP"));
        assert!(m("yamada@example.jp", "YAMADA@EXAMPLE.JP"));
        assert!(m("yamada@example.jp", "ya\u{200b}mada@example.jp"));
        assert!(!m("yamada@example.jp", "yamada2@example.jp"));
    }

    #[test]
    fn globs_stay_within_their_part() {
        assert!(m("agency-*@example.jp", "agency-tokyo@example.jp"));
        assert!(m("agency-*@example.jp", "agency-@example.jp"));
        assert!(!m(
            "agency-*@example.jp",
            "agency-tokyo@example.jp.evil.test"
        ));
        assert!(!m("agency-*@example.jp", "agency-x@evil.test@example.jp"));
        assert!(m("*@partner.example", "anyone@partner.example"));
        assert!(!m("*@partner.example", "anyone@sub.partner.example"));
        assert!(m("*@*.partner.example", "anyone@sub.partner.example"));
        // A trailing dot is the same domain.
        assert!(m("agency-*@example.jp", "agency-x@example.jp."));
        assert!(!m("*@*.partner.example", "anyone@partner.example"));
        // A name without a domain names only an account without one.
        assert!(m("campaign01", "Campaign01"));
        assert!(!m("campaign01", "campaign01@example.jp"));
        assert!(!m("*@example.jp", "example.jp"));
    }

    #[test]
    fn patterns_that_name_everyone_or_nothing_are_refused() {
        assert_eq!(AccountPattern::parse("*"), Err(PatternError::Everyone));
        assert_eq!(
            AccountPattern::parse(" \u{200b} "),
            Err(PatternError::Empty)
        );
        assert_eq!(AccountPattern::parse("a@b@c"), Err(PatternError::TwoAts));
        assert_eq!(
            AccountPattern::parse("@example.jp"),
            Err(PatternError::EmptyPart)
        );
        assert_eq!(AccountPattern::parse("a@"), Err(PatternError::EmptyPart));
        // `*@*` names every account with a domain: allowed, said in docs.
        assert!(AccountPattern::parse("*@*").is_ok());
    }

    /// A naive recursive matcher, the reference for the iterative one.
    fn naive(p: &[char], t: &[char]) -> bool {
        match p.split_first() {
            None => t.is_empty(),
            Some(('*', rest)) => (0..=t.len()).any(|i| naive(rest, &t[i..])),
            Some((c, rest)) => t.first() == Some(c) && naive(rest, &t[1..]),
        }
    }

    proptest! {
        #[test]
        fn the_glob_agrees_with_a_naive_matcher(p in "[ab*]{0,8}", t in "[ab]{0,10}") {
            let (pc, tc): (Vec<char>, Vec<char>) = (p.chars().collect(), t.chars().collect());
            prop_assert_eq!(glob(&p, &t), naive(&pc, &tc));
        }
    }
}
