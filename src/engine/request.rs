//! The request line and Host, checked before any rule: forms that the
//! console may read differently from netwarden are refused, not guessed at.
//!
//! A rule decides on a method and a Host; the console acts on its own
//! reading of the same bytes. Where common servers read one form two ways
//! (`post` is `POST` to many frameworks, `a.example, b.example` is either
//! host, `user@host` is `host` to some), the request is refused with 400
//! and the reason says which form it was.

use std::net::Ipv6Addr;

/// Why a request's Host is refused (RFC 9112 §3.2, RFC 9113 §8.3.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    #[error("a request without a Host header (or HTTP/2 :authority)")]
    Missing,
    #[error("more than one Host header line")]
    Several,
    #[error("the request target's authority (or HTTP/2 :authority) differs from the Host header")]
    Mismatch,
    #[error("an empty Host")]
    Empty,
    #[error("a Host holding a list (a comma)")]
    List,
    #[error("a Host with userinfo ('user@host')")]
    Userinfo,
    #[error("a Host that is not a host name or address with an optional port")]
    Invalid,
}

/// The one host a request names, from its `Host` lines and its target's
/// authority (an absolute-form target, or HTTP/2's `:authority`). Every
/// authority a request carries must agree, so that the console, whichever
/// it reads, sees the host the rules decided on: several `Host` lines, or
/// an authority that differs from `Host`, are refused (RFC 9112 §3.2,
/// RFC 9113 §8.3.1). With `required` (the proxy), a request with neither
/// is refused too, whatever its version: an HTTP/1.0 or HTTP/2 request
/// without a host would be decided with none, while the console, which
/// needs one, would be sent a Host of netwarden's choosing.
pub fn resolve_host<'a>(
    required: bool,
    mut host_lines: impl Iterator<Item = &'a [u8]>,
    authority: Option<&'a str>,
) -> Result<Option<&'a str>, HostError> {
    let header = match host_lines.next() {
        None => None,
        Some(_) if host_lines.next().is_some() => return Err(HostError::Several),
        Some(line) => Some(std::str::from_utf8(line).map_err(|_| HostError::Invalid)?),
    };
    match (header, authority) {
        (Some(h), Some(a)) if !h.eq_ignore_ascii_case(a) => Err(HostError::Mismatch),
        (Some(h), _) => Ok(Some(h)),
        (None, Some(a)) => Ok(Some(a)),
        (None, None) if required => Err(HostError::Missing),
        (None, None) => Ok(None),
    }
}

/// Methods of RFC 9110 §9 and RFC 5789: the ones servers and frameworks
/// upper-case or match without regard to case.
const STANDARD_METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
];

/// Whether `method` is a standard method written in other than upper case
/// (`post`, `Post`, `pOST`). Methods are case-sensitive (RFC 9110 §9.1),
/// so rules compare them exactly; but many servers hand the application the
/// upper-case method, and a `methods: [POST]` rule would not see it.
pub fn is_miscased_standard_method(method: &str) -> bool {
    method.bytes().any(|b| b.is_ascii_lowercase())
        && STANDARD_METHODS
            .iter()
            .any(|m| m.eq_ignore_ascii_case(method))
}

/// Checks a Host value: `uri-host [ ":" port ]` (RFC 9110 §7.2) where the
/// host is a DNS-style name (letters, digits, `-`, `.`, `_`), an IPv4
/// address, or a bracketed IPv6 address, and the port is 1 to 5 digits.
/// Everything else RFC 3986 would allow in a reg-name (percent-encoding,
/// sub-delims such as `,` `;` `!`) is refused: no browser sends it and
/// servers disagree on what it names.
pub fn check_host(host: &str) -> Result<(), HostError> {
    let b = host.as_bytes();
    if b.is_empty() {
        return Err(HostError::Empty);
    }
    if b.contains(&b',') {
        return Err(HostError::List);
    }
    if b.contains(&b'@') {
        return Err(HostError::Userinfo);
    }
    let port = if let Some(rest) = host.strip_prefix('[') {
        let close = rest.find(']').ok_or(HostError::Invalid)?;
        // No zone identifiers: `[fe80::1%25eth0]` has a `%`, which the
        // address parser refuses.
        rest[..close]
            .parse::<Ipv6Addr>()
            .map_err(|_| HostError::Invalid)?;
        match &rest[close + 1..] {
            "" => None,
            after => Some(
                after
                    .strip_prefix(':')
                    .ok_or(HostError::Invalid)?
                    .as_bytes(),
            ),
        }
    } else {
        // One pass over the bytes (every request's Host goes through here).
        let (name, port) = match b.iter().position(|&c| c == b':') {
            Some(i) => (&b[..i], Some(&b[i + 1..])),
            None => (b, None),
        };
        // Labels may not be empty (`a..b`, `.a`, `a..`): servers that strip
        // every trailing dot would read `admin.example.com..` as the name
        // a rule decided on with one dot removed. One trailing dot (the
        // fully qualified form) is the name itself.
        let labels = name.strip_suffix(b".").unwrap_or(name);
        let mut label_start = true;
        for &c in labels {
            if c == b'.' {
                if label_start {
                    return Err(HostError::Invalid);
                }
                label_start = true;
            } else if c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_') {
                label_start = false;
            } else {
                return Err(HostError::Invalid);
            }
        }
        if label_start {
            // Empty, or ending in an empty label.
            return Err(HostError::Invalid);
        }
        port
    };
    match port {
        None => Ok(()),
        Some(p) if !p.is_empty() && p.len() <= 5 && p.iter().all(u8::is_ascii_digit) => Ok(()),
        Some(_) => Err(HostError::Invalid),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn miscased_standard_methods_are_recognized() {
        for m in ["post", "Post", "pOST", "get", "Delete", "patch"] {
            assert!(is_miscased_standard_method(m), "{m}");
        }
        for m in ["POST", "GET", "PROPFIND", "propfind", "brew", "", "POSTS"] {
            assert!(!is_miscased_standard_method(m), "{m}");
        }
    }

    #[test]
    fn every_authority_of_a_request_must_agree() {
        let r = |http11, lines: &[&'static str], auth| {
            resolve_host(http11, lines.iter().map(|l| l.as_bytes()), auth)
        };
        assert_eq!(r(true, &["a.example"], None), Ok(Some("a.example")));
        assert_eq!(r(false, &[], Some("a.example")), Ok(Some("a.example")));
        assert_eq!(
            r(false, &["A.example"], Some("a.example")),
            Ok(Some("A.example"))
        );
        assert_eq!(r(false, &[], None), Ok(None));
        assert_eq!(r(true, &[], None), Err(HostError::Missing));
        assert_eq!(
            r(true, &["a.example", "b.example"], None),
            Err(HostError::Several)
        );
        assert_eq!(
            r(true, &["a.example", "a.example"], None),
            Err(HostError::Several)
        );
        assert_eq!(
            r(false, &["a.example"], Some("b.example")),
            Err(HostError::Mismatch)
        );
        assert_eq!(
            r(true, &["a.example"], Some("a.example:8443")),
            Err(HostError::Mismatch)
        );
    }

    #[test]
    fn host_forms_table() {
        let cases: &[(&str, Result<(), HostError>)] = &[
            ("console.example.com", Ok(())),
            ("console.example.com:8443", Ok(())),
            ("Console.Example.COM.", Ok(())),
            ("localhost", Ok(())),
            ("127.0.0.1:8080", Ok(())),
            ("[::1]", Ok(())),
            ("[2001:db8::1]:443", Ok(())),
            ("under_score.internal", Ok(())),
            ("", Err(HostError::Empty)),
            ("a.example, b.example", Err(HostError::List)),
            ("a.example,b.example", Err(HostError::List)),
            ("user@console.example.com", Err(HostError::Userinfo)),
            (
                "console.example.com:80@evil.example",
                Err(HostError::Userinfo),
            ),
            ("console.example.com:", Err(HostError::Invalid)),
            ("console.example.com:99999x", Err(HostError::Invalid)),
            ("console.example.com:123456", Err(HostError::Invalid)),
            ("console example.com", Err(HostError::Invalid)),
            ("console%2eexample.com", Err(HostError::Invalid)),
            ("console.example.com;x", Err(HostError::Invalid)),
            ("a:1:2", Err(HostError::Invalid)),
            ("admin.example.com..", Err(HostError::Invalid)),
            ("admin.example.com...:80", Err(HostError::Invalid)),
            ("admin..example.com", Err(HostError::Invalid)),
            (".admin.example.com", Err(HostError::Invalid)),
            (".", Err(HostError::Invalid)),
            ("localhost.", Ok(())),
            ("[::1", Err(HostError::Invalid)),
            ("[::1]x", Err(HostError::Invalid)),
            ("[fe80::1%25eth0]", Err(HostError::Invalid)),
            ("[not-an-address]", Err(HostError::Invalid)),
            (":8080", Err(HostError::Invalid)),
            ("caf\u{e9}.example", Err(HostError::Invalid)),
        ];
        for (host, want) in cases {
            assert_eq!(check_host(host), *want, "{host:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn check_host_never_panics(h in "\\PC{0,40}") {
            let _ = check_host(&h);
        }

        /// The one-pass check agrees with the plain reading of the rules
        /// (labels split on dots, none empty, the allowed bytes).
        #[test]
        fn check_host_agrees_with_the_plain_reading(h in "[a-z0-9._:\\-]{0,12}") {
            let plain = |host: &str| -> bool {
                let (name, port) = match host.split_once(':') {
                    Some((n, p)) => (n, Some(p)),
                    None => (host, None),
                };
                let labels = name.strip_suffix('.').unwrap_or(name);
                !labels.is_empty()
                    && labels.split('.').all(|l| !l.is_empty())
                    && labels.bytes().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_'))
                    && port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|c| c.is_ascii_digit()))
            };
            proptest::prop_assert_eq!(check_host(&h).is_ok(), plain(&h), "{:?}", h);
        }
    }
}
