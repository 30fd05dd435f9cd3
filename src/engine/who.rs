//! Who the client is, as an auth layer in front vouched for it (issue 26:
//! `identity:`), and rules' `who:` conditions on it. Pure: the identity is
//! verified before the decision (a signed token's signature and claims, or
//! a trusted auth proxy's headers); here it is only compared.

use super::accounts::AccountPattern;

/// A verified identity.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Identity {
    /// `sub`, or the user header: logged only as a keyed hash.
    pub subject: Box<str>,
    /// The e-mail address, folded ([`fold`]); `None` when not given.
    pub email: Option<Box<str>>,
    /// Groups, as the auth layer names them (compared exactly).
    pub groups: Vec<Box<str>>,
    /// Other claims a `who:` may name: strings, and lists of strings.
    pub claims: Vec<(Box<str>, Vec<Box<str>>)>,
}

impl Identity {
    /// The e-mail's domain, which logs may carry in clear.
    pub fn email_domain(&self) -> Option<&str> {
        self.email.as_deref()?.rsplit_once('@').map(|(_, d)| d)
    }
}

/// Why an identity was presented but not believed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Invalid {
    /// Not three base64url parts, or a part that is not the JSON it must be.
    Malformed,
    /// Longer than any token an auth layer sends.
    Oversized,
    /// Signed with an algorithm the policy does not allow (`none`, HS256).
    Algorithm,
    /// A `kid` none of the keys has (after fetching them again, at most
    /// once per interval), or one that cannot name a key.
    UnknownKey,
    /// No keys: the key URL has never answered with a usable set.
    NoKeys,
    /// The signature does not verify.
    Signature,
    Expired,
    NotYetValid,
    Issuer,
    Audience,
    /// A claim of the wrong type (`exp` as a string), or `exp` missing.
    Claims,
    /// The header appears more than once.
    Ambiguous,
    /// An AWS ALB token whose header names another load balancer.
    Signer,
}

impl Invalid {
    pub const ALL: [Invalid; 13] = [
        Invalid::Malformed,
        Invalid::Oversized,
        Invalid::Algorithm,
        Invalid::UnknownKey,
        Invalid::NoKeys,
        Invalid::Signature,
        Invalid::Expired,
        Invalid::NotYetValid,
        Invalid::Issuer,
        Invalid::Audience,
        Invalid::Claims,
        Invalid::Ambiguous,
        Invalid::Signer,
    ];

    /// The reason [`Invalid::code`] names.
    pub fn parse(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|i| i.code() == code)
    }

    pub fn code(self) -> &'static str {
        match self {
            Invalid::Malformed => "malformed",
            Invalid::Oversized => "oversized",
            Invalid::Algorithm => "algorithm_not_allowed",
            Invalid::UnknownKey => "unknown_key",
            Invalid::NoKeys => "no_keys",
            Invalid::Signature => "bad_signature",
            Invalid::Expired => "expired",
            Invalid::NotYetValid => "not_yet_valid",
            Invalid::Issuer => "wrong_issuer",
            Invalid::Audience => "wrong_audience",
            Invalid::Claims => "bad_claims",
            Invalid::Ambiguous => "ambiguous",
            Invalid::Signer => "wrong_signer",
        }
    }
}

/// What the decider knows of the client's identity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdentityFact<'x> {
    /// None presented (or the policy has no `identity:`): a rule with
    /// `who:` denies (`identity_missing`).
    Missing,
    Verified(&'x Identity),
    /// Presented and not believed: a rule with `who:` denies
    /// (`identity_invalid`).
    Invalid(Invalid),
}

/// A rule's `who:`: every key given must hold; within a key's list, any
/// one item.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Who {
    pub groups: Vec<Box<str>>,
    pub emails: Vec<AccountPattern>,
    pub claims: Vec<(Box<str>, Box<str>)>,
}

impl Who {
    /// Whether `id` is one this condition names; `Some(group)`: the first
    /// of its groups the identity is in, for the logs.
    pub fn matches<'w>(&'w self, id: &Identity) -> Option<Option<&'w str>> {
        let group = self
            .groups
            .iter()
            .find(|g| id.groups.iter().any(|h| h == *g))
            .map(|g| &**g);
        if !self.groups.is_empty() && group.is_none() {
            return None;
        }
        if !self.emails.is_empty() {
            let email = id.email.as_deref()?;
            if !self.emails.iter().any(|p| p.matches(email)) {
                return None;
            }
        }
        for (key, want) in &self.claims {
            let has = id
                .claims
                .iter()
                .any(|(k, values)| k == key && values.iter().any(|v| v == want));
            if !has {
                return None;
            }
        }
        Some(group)
    }
}

/// An e-mail address as identities carry it: ASCII case folded, nothing
/// else. An identity provider names mailboxes exactly: `ýamada@` or
/// `yama\u{200b}da@` is another person than `yamada@`, whom a `who:`
/// written for yamada must not let in (third red-team review of issue
/// 26), unlike a sign-in form, whose account the console may fold.
pub fn fold_email(email: &str) -> Box<str> {
    email.trim().to_ascii_lowercase().into()
}

/// One bare e-mail address: one `@` with text on both sides, no spaces,
/// commas, semicolons, quotes, brackets or controls (not a display name,
/// not a list).
pub fn is_address(e: &str) -> bool {
    let mut parts = e.split('@');
    let (Some(local), Some(domain), None) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    !local.is_empty()
        && !domain.is_empty()
        && !e
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "<>\"()[]\\,;".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id() -> Identity {
        Identity {
            subject: "u-1".into(),
            email: Some(fold_email("Yamada@Example.JP")),
            groups: vec!["admins".into(), "ops".into()],
            claims: vec![("department".into(), vec!["it".into()])],
        }
    }

    fn who(groups: &[&str], emails: &[&str], claims: &[(&str, &str)]) -> Who {
        Who {
            groups: groups.iter().map(|g| (*g).into()).collect(),
            emails: emails
                .iter()
                .map(|e| AccountPattern::parse_email(e).expect("pattern"))
                .collect(),
            claims: claims
                .iter()
                .map(|(k, v)| ((*k).into(), (*v).into()))
                .collect(),
        }
    }

    #[test]
    fn every_key_must_hold_and_any_item_within_one() {
        assert_eq!(who(&["ops"], &[], &[]).matches(&id()), Some(Some("ops")));
        assert_eq!(
            who(&["x", "admins"], &[], &[]).matches(&id()),
            Some(Some("admins"))
        );
        assert_eq!(who(&["x"], &[], &[]).matches(&id()), None);
        assert_eq!(
            who(&[], &["*@example.jp"], &[("department", "it")]).matches(&id()),
            Some(None)
        );
        assert_eq!(
            who(&["ops"], &["*@other.example"], &[]).matches(&id()),
            None
        );
        assert_eq!(
            who(&[], &[], &[("department", "sales")]).matches(&id()),
            None
        );
    }

    #[test]
    fn groups_compare_exactly_and_emails_by_ascii_case() {
        assert_eq!(who(&["Admins"], &[], &[]).matches(&id()), None);
        assert_eq!(
            who(&[], &["YAMADA@example.jp"], &[]).matches(&id()),
            Some(None)
        );
        // A pattern of other letters names exactly those (fourth review:
        // folded, it matched nobody).
        let idn = Identity {
            email: Some(fold_email("Kato@bücher.example")),
            ..id()
        };
        assert_eq!(
            who(&[], &["*@bücher.example"], &[]).matches(&idn),
            Some(None)
        );
        assert_eq!(who(&[], &["*@BÜCHER.example"], &[]).matches(&idn), None);
        let no_email = Identity {
            email: None,
            ..id()
        };
        assert_eq!(who(&[], &["*@example.jp"], &[]).matches(&no_email), None);
        // Another mailbox that folds to the same letters is another person.
        for other in [
            "ýamada@example.jp",
            "yama\u{200b}da@example.jp",
            "ｙａｍａｄａ@example.jp",
        ] {
            let id = Identity {
                email: Some(fold_email(other)),
                ..id()
            };
            assert_eq!(
                who(&[], &["yamada@example.jp"], &[]).matches(&id),
                None,
                "{other}"
            );
        }
    }

    #[test]
    fn an_address_is_one_bare_address() {
        assert!(is_address("yamada@example.jp"));
        for bad in [
            "Y <y@example.jp>",
            "a@b, c@d",
            "a@b;c@d",
            "a@b@c",
            "@b",
            "a@",
            "a b@c",
        ] {
            assert!(!is_address(bad), "{bad}");
        }
    }

    #[test]
    fn the_email_domain_is_what_follows_the_last_at() {
        assert_eq!(id().email_domain(), Some("example.jp"));
    }
}
