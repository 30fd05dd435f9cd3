//! Which client is this? The TCP peer, or what trusted proxies say it is.
//!
//! With no trusted proxies the client is the peer and forwarding headers are
//! ignored. When the peer is a trusted proxy, the configured header is walked
//! right to left through all of its lines, skipping trusted hops; the first
//! untrusted hop is the client. Hops are believed only because the hop to
//! their right is a trusted proxy, so no header can make a client look trusted.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::net::{IpAddr, Ipv6Addr};
use std::ops::ControlFlow;

use super::prefix::RangeSet;

/// The header trusted proxies put the client address in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ForwardHeader {
    /// `X-Forwarded-For: client, proxy1, proxy2` (de facto standard).
    #[default]
    XForwardedFor,
    /// `Forwarded: for=client, for=proxy1` (RFC 7239).
    Forwarded,
    /// `X-Real-IP: client`, one address set by the proxy in front.
    XRealIp,
}

impl ForwardHeader {
    /// The header's lower-case name, as HTTP/2 and `http::HeaderMap` spell it.
    pub fn name(self) -> &'static str {
        match self {
            Self::XForwardedFor => "x-forwarded-for",
            Self::Forwarded => "forwarded",
            Self::XRealIp => "x-real-ip",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        [Self::XForwardedFor, Self::Forwarded, Self::XRealIp]
            .into_iter()
            .find(|h| h.name().eq_ignore_ascii_case(name))
    }
}

/// Access to a request's header lines without copying them.
pub trait HeaderLines {
    /// Calls `f` with each line of header `name` (lower case), last line
    /// first, until `f` breaks.
    fn for_each_line_rev(&self, name: &str, f: &mut dyn FnMut(&[u8]) -> ControlFlow<()>);
}

/// Headers as (name, value) pairs, as the CLI and policy tests have them.
impl<N: AsRef<str>, V: AsRef<str>> HeaderLines for [(N, V)] {
    fn for_each_line_rev(&self, name: &str, f: &mut dyn FnMut(&[u8]) -> ControlFlow<()>) {
        for (n, v) in self.iter().rev() {
            if n.as_ref().eq_ignore_ascii_case(name) && f(v.as_ref().as_bytes()).is_break() {
                return;
            }
        }
    }
}

impl<N: AsRef<str>, V: AsRef<str>> HeaderLines for Vec<(N, V)> {
    fn for_each_line_rev(&self, name: &str, f: &mut dyn FnMut(&[u8]) -> ControlFlow<()>) {
        self.as_slice().for_each_line_rev(name, f);
    }
}

/// How the client address was derived.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Derivation {
    /// Given directly (`explain --ip`, a policy test's `ip:`).
    Given,
    /// The TCP peer, which is not a trusted proxy (its headers were ignored).
    Peer,
    /// The TCP peer is a trusted proxy but sent no forwarding header.
    TrustedPeerNoHeader,
    /// From the forwarding header, after skipping `trusted_hops` trusted proxies.
    Header {
        header: ForwardHeader,
        trusted_hops: u32,
    },
    /// Every hop in the header is a trusted proxy: the leftmost one is the client.
    AllHopsTrusted {
        header: ForwardHeader,
        trusted_hops: u32,
    },
    /// The hop that should be the client cannot be used.
    Unknown {
        header: ForwardHeader,
        why: UnknownWhy,
    },
}

/// Why the client address is unknown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnknownWhy {
    /// Not an address in canonical form (`127.1`, `0x7f.0.0.1`, `fe80::1%eth0`, garbage).
    Unparseable,
    /// RFC 7239 `for=unknown`.
    UnknownToken,
    /// RFC 7239 obfuscated identifier (`for=_hidden`).
    Obfuscated,
    /// RFC 7239 element without `for=`.
    NoFor,
    /// More than one `X-Real-IP` line or address.
    Ambiguous,
}

impl fmt::Display for UnknownWhy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Unparseable => "is not an address in canonical form",
            Self::UnknownToken => "is 'unknown'",
            Self::Obfuscated => "is an obfuscated identifier",
            Self::NoFor => "has no 'for=' parameter",
            Self::Ambiguous => "is ambiguous (more than one address)",
        })
    }
}

/// The client address as netwarden sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientAddr {
    /// `None` when the address that should be the client is unusable; an
    /// unknown client matches no network.
    pub ip: Option<IpAddr>,
    pub derivation: Derivation,
    /// The TCP peer (absent when the address was given directly).
    pub peer: Option<IpAddr>,
}

impl fmt::Display for Derivation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Given => f.write_str("given"),
            Self::Peer => f.write_str("peer"),
            Self::TrustedPeerNoHeader => f.write_str("trusted peer without forwarding header"),
            Self::Header {
                header,
                trusted_hops,
            } => {
                // Counted as people count them: the peer is a trusted
                // proxy too, so one load balancer reads "1 trusted proxy".
                let n = u64::from(*trusted_hops) + 1;
                let s = if n == 1 { "proxy" } else { "proxies" };
                write!(f, "{} behind {n} trusted {s}", header.name())
            }
            Self::AllHopsTrusted {
                header,
                trusted_hops,
            } => {
                let n = u64::from(*trusted_hops) + 1;
                write!(
                    f,
                    "{} leftmost hop: all {n} addresses are trusted proxies",
                    header.name()
                )
            }
            Self::Unknown { header, why } => write!(f, "{} hop {}", header.name(), why),
        }
    }
}

impl Derivation {
    /// A stable machine word for logs: `given`, `peer`, `header`, `unknown`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Given => "given",
            Self::Peer | Self::TrustedPeerNoHeader => "peer",
            Self::Header { .. } | Self::AllHopsTrusted { .. } => "header",
            Self::Unknown { .. } => "unknown",
        }
    }
}

/// One hop of a forwarding header, as seen while walking it (for `explain`).
/// Borrowed, so that walking a header allocates nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hop<'a> {
    pub raw: &'a [u8],
    pub ip: Option<IpAddr>,
    pub trusted: bool,
}

/// Where to find the client, and whom to believe.
#[derive(Clone, Debug, Default)]
pub struct ClientIpConfig {
    pub trusted_proxies: RangeSet,
    pub header: ForwardHeader,
}

pub use crate::addr::canonical;

/// The address a connection, a share of the console or a lockout counts
/// against: IPv4 as it is, IPv6 by its /64 (one household's or office's
/// prefix; RFC 6177).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddrKey {
    V4(u32),
    V6(u64),
}

impl Hash for AddrKey {
    /// One word: equality still tells an IPv4 address from a /64 with the
    /// same bits.
    fn hash<H: Hasher>(&self, state: &mut H) {
        match *self {
            AddrKey::V4(v) => state.write_u64(u64::from(v) | 1 << 32),
            AddrKey::V6(v) => state.write_u64(v),
        }
    }
}

/// Parses an address in canonical text form only. Rust's parsers already
/// refuse octal, hex, short (`127.1`) and leading-zero IPv4 forms; zone ids
/// (`%eth0`) are refused too. IPv4-mapped IPv6 becomes IPv4.
pub fn parse_ip(text: &[u8]) -> Option<IpAddr> {
    let s = std::str::from_utf8(text).ok()?;
    if s.is_empty() || s.len() > 45 || s.contains('%') {
        return None;
    }
    s.parse::<IpAddr>().ok().map(canonical)
}

/// An X-Forwarded-For or X-Real-IP entry: an address, optionally with a port
/// (`1.2.3.4:80`, `[2001:db8::1]:80`, `[2001:db8::1]`), as some proxies write.
fn parse_node(entry: &[u8]) -> Option<IpAddr> {
    if let Some(rest) = entry.strip_prefix(b"[") {
        let close = rest.iter().position(|&b| b == b']')?;
        let after = &rest[close + 1..];
        if !(after.is_empty() || is_port(after.strip_prefix(b":")?)) {
            return None;
        }
        let ip: Ipv6Addr = std::str::from_utf8(&rest[..close]).ok()?.parse().ok()?;
        if rest[..close].contains(&b'%') {
            return None;
        }
        return Some(canonical(IpAddr::V6(ip)));
    }
    let colons = entry.iter().filter(|&&b| b == b':').count();
    if colons == 1 {
        let at = entry.iter().position(|&b| b == b':')?;
        if !is_port(&entry[at + 1..]) {
            return None;
        }
        return match parse_ip(&entry[..at])? {
            v4 @ IpAddr::V4(_) => Some(v4),
            IpAddr::V6(_) => None,
        };
    }
    parse_ip(entry)
}

fn is_port(p: &[u8]) -> bool {
    !p.is_empty() && p.len() <= 5 && p.iter().all(u8::is_ascii_digit)
}

fn trim(b: &[u8]) -> &[u8] {
    b.trim_ascii()
}

/// What one hop of a header says.
enum HopValue {
    Ip(IpAddr),
    Unknown(UnknownWhy),
}

/// RFC 7239 §4 `node`: `for=` value, unquoted or quoted.
fn parse_forwarded_element(element: &[u8]) -> HopValue {
    let mut for_value = None;
    let (pairs, open_quote) = split_unquoted(element, b';');
    if open_quote {
        return HopValue::Unknown(UnknownWhy::Unparseable);
    }
    for pair in pairs {
        let pair = trim(pair);
        let Some(eq) = pair.iter().position(|&b| b == b'=') else {
            continue;
        };
        if trim(&pair[..eq]).eq_ignore_ascii_case(b"for") {
            if for_value.is_some() {
                // RFC 7239 §4: a parameter must not occur more than once.
                return HopValue::Unknown(UnknownWhy::Ambiguous);
            }
            for_value = Some(trim(&pair[eq + 1..]));
        }
    }
    let Some(mut v) = for_value else {
        return HopValue::Unknown(UnknownWhy::NoFor);
    };
    if v.len() >= 2 && v[0] == b'"' && v[v.len() - 1] == b'"' {
        v = &v[1..v.len() - 1];
    }
    if v.eq_ignore_ascii_case(b"unknown") {
        return HopValue::Unknown(UnknownWhy::UnknownToken);
    }
    if v.first() == Some(&b'_') {
        return HopValue::Unknown(UnknownWhy::Obfuscated);
    }
    // RFC 7239 §6: IPv6 is bracketed; a port (or obfuscated port) may follow.
    let node = if v.first() == Some(&b'[') {
        match v.iter().position(|&b| b == b']') {
            Some(close) if close + 1 == v.len() || v[close + 1] == b':' => &v[..=close],
            _ => return HopValue::Unknown(UnknownWhy::Unparseable),
        }
    } else {
        match v.iter().position(|&b| b == b':') {
            Some(at) => &v[..at],
            None => v,
        }
    };
    let ip = match node.strip_prefix(b"[").and_then(|n| n.strip_suffix(b"]")) {
        Some(inner) => match parse_ip(inner) {
            Some(ip @ IpAddr::V6(_)) => Some(ip),
            // `[::ffff:1.2.3.4]` is canonicalized to IPv4 by parse_ip.
            Some(ip) if std::str::from_utf8(inner).is_ok_and(|s| s.contains(':')) => Some(ip),
            _ => None,
        },
        None => match parse_ip(node) {
            Some(ip @ IpAddr::V4(_)) => Some(ip),
            _ => None,
        },
    };
    ip.map_or(HopValue::Unknown(UnknownWhy::Unparseable), HopValue::Ip)
}

/// Splits on `sep` outside double quotes (RFC 9110 §5.6.4 quoted-string,
/// `\"` escapes). Returns the pieces and whether the last one holds an
/// unterminated quoted-string: the quote swallowed every separator after
/// it, so that piece (and everything after it) has no reliable meaning.
fn split_unquoted(s: &[u8], sep: u8) -> (Vec<&[u8]>, bool) {
    let mut pieces = Vec::new();
    let (mut quoted, mut escaped, mut start) = (false, false, 0);
    for (i, &b) in s.iter().enumerate() {
        if escaped {
            escaped = false;
        } else if quoted && b == b'\\' {
            escaped = true;
        } else if b == b'"' {
            quoted = !quoted;
        } else if b == sep && !quoted {
            pieces.push(&s[start..i]);
            start = i + 1;
        }
    }
    pieces.push(&s[start..]);
    (pieces, quoted)
}

/// Resolves the client address of a request from `peer`.
pub fn resolve<H: HeaderLines + ?Sized>(
    cfg: &ClientIpConfig,
    peer: IpAddr,
    headers: &H,
    mut on_hop: impl FnMut(Hop<'_>),
) -> ClientAddr {
    let peer = canonical(peer);
    let client = |ip, derivation| ClientAddr {
        ip,
        derivation,
        peer: Some(peer),
    };
    if !cfg.trusted_proxies.contains(peer) {
        return client(Some(peer), Derivation::Peer);
    }
    let header = cfg.header;
    let mut trusted_hops = 0u32;
    let mut leftmost_trusted = None;
    let mut lines = 0u32;
    let mut result: Option<ClientAddr> = None;

    let mut visit = |raw: &[u8], value: HopValue| -> ControlFlow<()> {
        let ip = match value {
            HopValue::Ip(ip) => ip,
            HopValue::Unknown(why) => {
                on_hop(Hop {
                    raw,
                    ip: None,
                    trusted: false,
                });
                result = Some(client(None, Derivation::Unknown { header, why }));
                return ControlFlow::Break(());
            }
        };
        let trusted = cfg.trusted_proxies.contains(ip);
        on_hop(Hop {
            raw,
            ip: Some(ip),
            trusted,
        });
        if trusted {
            trusted_hops += 1;
            leftmost_trusted = Some(ip);
            ControlFlow::Continue(())
        } else {
            result = Some(client(
                Some(ip),
                Derivation::Header {
                    header,
                    trusted_hops,
                },
            ));
            ControlFlow::Break(())
        }
    };

    match header {
        ForwardHeader::XForwardedFor => headers.for_each_line_rev(header.name(), &mut |line| {
            lines += 1;
            for entry in line.rsplit(|&b| b == b',') {
                let entry = trim(entry);
                let value = parse_node(entry)
                    .map_or(HopValue::Unknown(UnknownWhy::Unparseable), HopValue::Ip);
                visit(entry, value)?;
            }
            ControlFlow::Continue(())
        }),
        ForwardHeader::Forwarded => {
            // RFC 9110 §5.3: the lines of a field are one value joined with
            // commas, and a proxy may append its element to the client's
            // line or add a line of its own. A quote the client leaves open
            // swallows whatever follows it, on that line or the next: so
            // the lines are parsed as the one value they stand for, never
            // each on its own.
            let mut rev_lines: Vec<Vec<u8>> = Vec::new();
            headers.for_each_line_rev(header.name(), &mut |line| {
                rev_lines.push(line.to_vec());
                ControlFlow::Continue(())
            });
            lines = u32::try_from(rev_lines.len()).unwrap_or(u32::MAX);
            if rev_lines.is_empty() {
                return client(Some(peer), Derivation::TrustedPeerNoHeader);
            }
            let joined = rev_lines
                .iter()
                .rev()
                .map(Vec::as_slice)
                .collect::<Vec<_>>()
                .join(&b", "[..]);
            let (elements, open_quote) = split_unquoted(&joined, b',');
            let last = elements.len() - 1;
            for (i, element) in elements.into_iter().enumerate().rev() {
                let element = trim(element);
                let value = if open_quote && i == last {
                    // The unterminated quoted-string and everything after it.
                    HopValue::Unknown(UnknownWhy::Unparseable)
                } else {
                    parse_forwarded_element(element)
                };
                if visit(element, value).is_break() {
                    break;
                }
            }
        }
        ForwardHeader::XRealIp => {
            let mut value: Option<Vec<u8>> = None;
            headers.for_each_line_rev(header.name(), &mut |line| {
                lines += 1;
                value = Some(trim(line).to_vec());
                if lines > 1 {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            });
            if let Some(v) = value {
                // One address set by the proxy in front: it is the client,
                // whether or not it is itself in a trusted range.
                let parsed = if lines > 1 || v.contains(&b',') {
                    Err(UnknownWhy::Ambiguous)
                } else {
                    parse_node(&v).ok_or(UnknownWhy::Unparseable)
                };
                let ip = parsed.ok();
                on_hop(Hop {
                    raw: &v,
                    ip,
                    trusted: ip.is_some_and(|ip| cfg.trusted_proxies.contains(ip)),
                });
                return match parsed {
                    Ok(ip) => client(
                        Some(ip),
                        Derivation::Header {
                            header,
                            trusted_hops: 0,
                        },
                    ),
                    Err(why) => client(None, Derivation::Unknown { header, why }),
                };
            }
        }
    }
    if let Some(r) = result {
        return r;
    }
    if lines == 0 {
        return client(Some(peer), Derivation::TrustedPeerNoHeader);
    }
    match leftmost_trusted {
        // nginx real_ip_recursive does the same: every hop trusted means the
        // request started inside the trusted range, at the leftmost hop.
        Some(ip) => client(
            Some(ip),
            Derivation::AllHopsTrusted {
                header,
                trusted_hops,
            },
        ),
        None => client(
            None,
            Derivation::Unknown {
                header,
                why: UnknownWhy::Unparseable,
            },
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cfg(trusted: &[&str], header: ForwardHeader) -> ClientIpConfig {
        let nets: Vec<ipnet::IpNet> = trusted.iter().map(|s| s.parse().unwrap()).collect();
        ClientIpConfig {
            trusted_proxies: RangeSet::from_nets(&nets),
            header,
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn run(c: &ClientIpConfig, peer: &str, headers: &[(&str, &str)]) -> ClientAddr {
        resolve(c, ip(peer), headers, |_| {})
    }

    #[test]
    fn canonical_forms_only() {
        for good in ["1.2.3.4", "2001:db8::1", "::1", "0.0.0.0"] {
            assert!(parse_ip(good.as_bytes()).is_some(), "{good}");
        }
        for bad in [
            "127.1",
            "0x7f.0.0.1",
            "0177.0.0.1",
            "01.2.3.4",
            "1.2.3.04",
            "fe80::1%eth0",
            " 1.2.3.4",
            "1.2.3.4.",
            "",
            "unknown",
            "1.2.3.256",
            "2130706433",
        ] {
            assert_eq!(parse_ip(bad.as_bytes()), None, "{bad}");
        }
    }

    #[test]
    fn mapped_ipv6_is_ipv4_but_compatible_form_is_not() {
        assert_eq!(parse_ip(b"::ffff:203.0.113.7"), Some(ip("203.0.113.7")));
        assert!(matches!(parse_ip(b"::203.0.113.7"), Some(IpAddr::V6(_))));
    }

    #[test]
    fn xff_from_untrusted_peer_is_ignored() {
        let c = cfg(&["10.0.0.0/8"], ForwardHeader::XForwardedFor);
        let r = run(&c, "192.0.2.9", &[("X-Forwarded-For", "203.0.113.7")]);
        assert_eq!(r.ip, Some(ip("192.0.2.9")));
        assert_eq!(r.derivation, Derivation::Peer);
    }

    #[test]
    fn no_trusted_proxies_means_peer() {
        let c = cfg(&[], ForwardHeader::XForwardedFor);
        let r = run(&c, "10.1.1.1", &[("x-forwarded-for", "203.0.113.7")]);
        assert_eq!(r.ip, Some(ip("10.1.1.1")));
    }

    #[test]
    fn xff_walks_right_to_left_across_lines_skipping_trusted_hops() {
        let c = cfg(&["10.0.0.0/8"], ForwardHeader::XForwardedFor);
        let r = run(
            &c,
            "10.0.0.1",
            &[
                ("x-forwarded-for", "198.51.100.1, 203.0.113.7"),
                ("X-Forwarded-For", "10.0.0.2, 10.0.0.3"),
            ],
        );
        assert_eq!(r.ip, Some(ip("203.0.113.7")));
        assert_eq!(
            r.derivation,
            Derivation::Header {
                header: ForwardHeader::XForwardedFor,
                trusted_hops: 2
            }
        );
    }

    #[test]
    fn spoofed_left_entries_do_not_matter() {
        let c = cfg(&["10.0.0.0/8"], ForwardHeader::XForwardedFor);
        // The attacker wrote "10.9.9.9"; the trusted proxy appended the real peer.
        let r = run(
            &c,
            "10.0.0.1",
            &[("x-forwarded-for", "10.9.9.9, 192.0.2.66")],
        );
        assert_eq!(r.ip, Some(ip("192.0.2.66")));
    }

    #[test]
    fn unparseable_candidate_is_unknown_client() {
        let c = cfg(&["10.0.0.0/8"], ForwardHeader::XForwardedFor);
        for bad in [
            "127.1",
            "garbage",
            "unknown",
            "fe80::1%eth0",
            "",
            "1.2.3.4,",
        ] {
            let r = run(&c, "10.0.0.1", &[("x-forwarded-for", bad)]);
            assert_eq!(r.ip, None, "{bad}");
            assert!(matches!(r.derivation, Derivation::Unknown { .. }), "{bad}");
        }
    }

    #[test]
    fn xff_ports_and_brackets() {
        let c = cfg(&["10.0.0.0/8"], ForwardHeader::XForwardedFor);
        assert_eq!(
            run(&c, "10.0.0.1", &[("x-forwarded-for", "203.0.113.7:5555")]).ip,
            Some(ip("203.0.113.7"))
        );
        assert_eq!(
            run(&c, "10.0.0.1", &[("x-forwarded-for", "[2001:db8::7]:443")]).ip,
            Some(ip("2001:db8::7"))
        );
        assert_eq!(
            run(&c, "10.0.0.1", &[("x-forwarded-for", "[2001:db8::7]")]).ip,
            Some(ip("2001:db8::7"))
        );
        assert_eq!(
            run(&c, "10.0.0.1", &[("x-forwarded-for", "[2001:db8::7]x")]).ip,
            None
        );
        assert_eq!(
            run(&c, "10.0.0.1", &[("x-forwarded-for", "203.0.113.7:abc")]).ip,
            None
        );
    }

    #[test]
    fn all_trusted_hops_yield_the_leftmost() {
        let c = cfg(&["10.0.0.0/8"], ForwardHeader::XForwardedFor);
        let r = run(&c, "10.0.0.1", &[("x-forwarded-for", "10.0.0.9, 10.0.0.5")]);
        assert_eq!(r.ip, Some(ip("10.0.0.9")));
        assert!(matches!(
            r.derivation,
            Derivation::AllHopsTrusted {
                trusted_hops: 2,
                ..
            }
        ));
    }

    #[test]
    fn derivations_count_the_trusted_proxies_as_people_do() {
        let c = cfg(&["10.0.0.0/8"], ForwardHeader::XForwardedFor);
        let one_lb = run(&c, "10.0.0.1", &[("x-forwarded-for", "203.0.113.7")]);
        assert_eq!(
            one_lb.derivation.to_string(),
            "x-forwarded-for behind 1 trusted proxy"
        );
        let two = run(
            &c,
            "10.0.0.1",
            &[("x-forwarded-for", "203.0.113.7, 10.0.0.2")],
        );
        assert_eq!(
            two.derivation.to_string(),
            "x-forwarded-for behind 2 trusted proxies"
        );
        let all = run(&c, "10.0.0.1", &[("x-forwarded-for", "10.0.0.9, 10.0.0.5")]);
        assert_eq!(
            all.derivation.to_string(),
            "x-forwarded-for leftmost hop: all 3 addresses are trusted proxies"
        );
    }

    #[test]
    fn trusted_peer_without_header_is_the_client() {
        let c = cfg(&["10.0.0.0/8"], ForwardHeader::XForwardedFor);
        let r = run(&c, "10.0.0.1", &[]);
        assert_eq!(r.ip, Some(ip("10.0.0.1")));
        assert_eq!(r.derivation, Derivation::TrustedPeerNoHeader);
    }

    #[test]
    fn mapped_peer_is_matched_as_ipv4_trusted_proxy() {
        let c = cfg(&["10.0.0.0/8"], ForwardHeader::XForwardedFor);
        let r = run(&c, "::ffff:10.0.0.1", &[("x-forwarded-for", "203.0.113.7")]);
        assert_eq!(r.ip, Some(ip("203.0.113.7")));
    }

    #[test]
    fn forwarded_rfc7239_forms() {
        let c = cfg(&["10.0.0.0/8"], ForwardHeader::Forwarded);
        let cases: &[(&str, Option<&str>)] = &[
            ("for=203.0.113.7", Some("203.0.113.7")),
            ("For=\"203.0.113.7:4711\"", Some("203.0.113.7")),
            (
                "for=\"[2001:db8:cafe::17]:4711\"",
                Some("2001:db8:cafe::17"),
            ),
            (
                "for=\"[2001:db8:cafe::17]\";proto=https;by=10.0.0.1",
                Some("2001:db8:cafe::17"),
            ),
            (
                "for=192.0.2.60;proto=http;by=203.0.113.43",
                Some("192.0.2.60"),
            ),
            ("for=203.0.113.7, for=10.0.0.3", Some("203.0.113.7")),
            ("for=\"203.0.113.7:_port\"", Some("203.0.113.7")),
            ("for=unknown", None),
            ("for=_hidden", None),
            ("proto=https", None),
            ("for=2001:db8::1", None),
            ("for=\"[127.1]\"", None),
            ("for=1.2.3.4;for=5.6.7.8", None),
        ];
        for (value, want) in cases {
            let r = run(&c, "10.0.0.1", &[("forwarded", value)]);
            assert_eq!(r.ip, want.map(ip), "{value}");
        }
    }

    #[test]
    fn forwarded_quoted_comma_does_not_split_elements() {
        let c = cfg(&["10.0.0.0/8"], ForwardHeader::Forwarded);
        let r = run(
            &c,
            "10.0.0.1",
            &[("forwarded", "for=\"a,b\";x=1, for=198.51.100.4")],
        );
        assert_eq!(r.ip, Some(ip("198.51.100.4")));
        let r = run(
            &c,
            "10.0.0.1",
            &[("forwarded", "for=\"a,b\";x=1, for=10.0.0.4")],
        );
        assert_eq!(r.ip, None);
    }

    #[test]
    fn forwarded_unterminated_quote_swallowing_the_proxy_element_is_unknown() {
        // The client wrote `for=<office>;by="`; the trusted proxy appended
        // `, for=<real client>` on the same line, or on a line of its own.
        let c = cfg(&["10.0.0.0/8"], ForwardHeader::Forwarded);
        let joined = run(
            &c,
            "10.0.0.1",
            &[("forwarded", "for=203.0.113.7;by=\", for=198.51.100.9")],
        );
        assert_eq!(joined.ip, None, "{joined:?}");
        assert!(matches!(
            joined.derivation,
            Derivation::Unknown {
                why: UnknownWhy::Unparseable,
                ..
            }
        ));
        let separate = run(
            &c,
            "10.0.0.1",
            &[
                ("forwarded", "for=203.0.113.7;by=\""),
                ("forwarded", "for=198.51.100.9"),
            ],
        );
        assert_eq!(separate, joined);
        // A quote left open inside a parameter list is as unusable.
        assert_eq!(
            run(&c, "10.0.0.1", &[("forwarded", "for=\"203.0.113.7")]).ip,
            None
        );
        // Balanced quotes still parse.
        assert_eq!(
            run(
                &c,
                "10.0.0.1",
                &[("forwarded", "for=198.51.100.9;by=\"x\"")]
            )
            .ip,
            Some(ip("198.51.100.9"))
        );
    }

    #[test]
    fn x_real_ip_is_one_address() {
        let c = cfg(&["10.0.0.0/8"], ForwardHeader::XRealIp);
        assert_eq!(
            run(&c, "10.0.0.1", &[("x-real-ip", " 203.0.113.7 ")]).ip,
            Some(ip("203.0.113.7"))
        );
        assert_eq!(
            run(&c, "10.0.0.1", &[("x-real-ip", "203.0.113.7, 1.2.3.4")]).ip,
            None
        );
        assert_eq!(
            run(
                &c,
                "10.0.0.1",
                &[("x-real-ip", "1.2.3.4"), ("x-real-ip", "5.6.7.8")]
            )
            .ip,
            None
        );
        assert_eq!(run(&c, "10.0.0.1", &[("x-real-ip", "127.1")]).ip, None);
    }

    /// Reference model: list every hop left to right, then take the rightmost
    /// untrusted one, stopping at the first bad one from the right.
    fn model(trusted: &[ipnet::IpNet], peer: IpAddr, lines: &[String]) -> Option<Option<IpAddr>> {
        if !trusted.iter().any(|n| n.contains(&peer)) {
            return Some(Some(peer));
        }
        if lines.is_empty() {
            return Some(Some(peer));
        }
        let hops: Vec<&str> = lines
            .iter()
            .flat_map(|l| l.split(','))
            .map(str::trim)
            .collect();
        for hop in hops.iter().rev() {
            let Ok(ip) = hop.parse::<IpAddr>() else {
                return Some(None);
            };
            if !trusted.iter().any(|n| n.contains(&ip)) {
                return Some(Some(ip));
            }
        }
        Some(hops.first().and_then(|h| h.parse().ok()))
    }

    fn hop_strategy() -> impl Strategy<Value = String> {
        prop_oneof![
            (0u8..4).prop_map(|x| format!("10.0.0.{x}")),
            (0u8..4).prop_map(|x| format!("203.0.113.{x}")),
            Just("bogus".to_string()),
            Just("2001:db8::5".to_string()),
        ]
    }

    proptest! {
        #[test]
        fn hostile_header_bytes_never_panic(
            header in prop_oneof![Just(ForwardHeader::XForwardedFor), Just(ForwardHeader::Forwarded), Just(ForwardHeader::XRealIp)],
            lines in prop::collection::vec("[\\PC\"\\[\\]:;,=_ ]{0,40}", 0..4),
        ) {
            let c = cfg(&["10.0.0.0/8", "::/0"], header);
            let headers: Vec<(&str, &str)> = lines.iter().map(|l| (header.name(), l.as_str())).collect();
            let r = resolve(&c, ip("10.0.0.1"), headers.as_slice(), |_| {});
            // Whatever the bytes, the result is the peer, a parsed address or unknown.
            let unknown = matches!(r.derivation, Derivation::Unknown { .. });
            prop_assert!(r.ip.is_some() != unknown, "{:?}", r);
        }

        /// RFC 9110 §5.3: a field's lines mean the same as one line joined
        /// with commas, so a proxy that appends to the client's line and
        /// one that adds a line of its own must yield the same client.
        #[test]
        fn lines_sent_separately_or_joined_decide_the_same_client(
            header in prop_oneof![Just(ForwardHeader::XForwardedFor), Just(ForwardHeader::Forwarded), Just(ForwardHeader::XRealIp)],
            lines in prop::collection::vec(
                prop::collection::vec(prop_oneof![
                    hop_strategy(),
                    hop_strategy().prop_map(|h| format!("for={h}")),
                    hop_strategy().prop_map(|h| format!("for=\"{h}\"")),
                    Just("for=198.51.100.7;by=\"".to_string()),
                    Just("\"".to_string()),
                    Just("for=\"[2001:db8::5]\"".to_string()),
                    Just("x=\"a,b\\\"\";for=10.0.0.2".to_string()),
                    Just(String::new()),
                    "[\\PC\"\\[\\]:;,=_ ]{0,12}",
                ], 0..4).prop_map(|hops| hops.join(", ")),
                1..4,
            ),
        ) {
            let c = cfg(&["10.0.0.0/8"], header);
            let separate: Vec<(&str, &str)> = lines.iter().map(|l| (header.name(), l.as_str())).collect();
            let joined = lines.join(", ");
            let one = [(header.name(), joined.as_str())];
            let a = resolve(&c, ip("10.0.0.1"), separate.as_slice(), |_| {});
            let b = resolve(&c, ip("10.0.0.1"), &one[..], |_| {});
            prop_assert_eq!((a.ip, a.derivation), (b.ip, b.derivation), "{:?} vs {:?}", lines, joined);
        }

        #[test]
        fn xff_resolution_matches_reference_model(
            peer in prop_oneof![Just("10.0.0.1"), Just("192.0.2.1")],
            lines in prop::collection::vec(prop::collection::vec(hop_strategy(), 1..4), 0..3),
        ) {
            let trusted: Vec<ipnet::IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
            let c = ClientIpConfig { trusted_proxies: RangeSet::from_nets(&trusted), header: ForwardHeader::XForwardedFor };
            let lines: Vec<String> = lines.iter().map(|l| l.join(", ")).collect();
            let headers: Vec<(&str, &str)> = lines.iter().map(|l| ("x-forwarded-for", l.as_str())).collect();
            let got = resolve(&c, ip(peer), headers.as_slice(), |_| {});
            let want = model(&trusted, ip(peer), &lines).unwrap();
            prop_assert_eq!(got.ip, want);
            // No header makes an untrusted peer's client anything but the peer.
            if peer == "192.0.2.1" {
                prop_assert_eq!(got.ip, Some(ip(peer)));
            }
        }
    }
}

/// An address as text in a stack buffer: IPv4 written digit by digit (it is
/// formatted several times a request: logs, forwarding headers), IPv6 by
/// the standard library (RFC 5952 form).
#[derive(Clone, Copy)]
pub struct IpText {
    buf: [u8; 45],
    len: u8,
}

impl IpText {
    pub fn new(ip: IpAddr) -> Self {
        let mut t = IpText {
            buf: [0; 45],
            len: 0,
        };
        match ip {
            IpAddr::V4(v4) => {
                for (i, octet) in v4.octets().into_iter().enumerate() {
                    if i > 0 {
                        t.push(b'.');
                    }
                    if octet >= 100 {
                        t.push(b'0' + octet / 100);
                    }
                    if octet >= 10 {
                        t.push(b'0' + octet / 10 % 10);
                    }
                    t.push(b'0' + octet % 10);
                }
            }
            IpAddr::V6(v6) => {
                use std::io::Write as _;
                let mut cursor = std::io::Cursor::new(&mut t.buf[..]);
                // 45 bytes hold the longest form (IPv4-mapped, full).
                let _ = write!(cursor, "{v6}");
                t.len = u8::try_from(cursor.position()).unwrap_or(0);
            }
        }
        t
    }

    fn push(&mut self, b: u8) {
        self.buf[usize::from(self.len)] = b;
        self.len += 1;
    }

    pub fn as_str(&self) -> &str {
        // Digits, dots, hex and colons only.
        std::str::from_utf8(&self.buf[..usize::from(self.len)]).unwrap_or("")
    }
}

impl fmt::Display for IpText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod ip_text_tests {
    use super::*;

    #[test]
    fn ip_text_matches_the_standard_library() {
        for ip in [
            "0.0.0.0",
            "255.255.255.255",
            "10.0.0.1",
            "192.168.100.9",
            "::",
            "::1",
            "2001:db8::5",
            "::ffff:203.0.113.7",
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
            "1:2:3:4:5:6:7:8",
        ] {
            let ip: IpAddr = ip.parse().expect("test address");
            assert_eq!(IpText::new(ip).as_str(), ip.to_string());
        }
    }

    proptest::proptest! {
        #[test]
        fn every_ipv4_address_is_written_as_std_writes_it(n: u32) {
            let ip = IpAddr::from(std::net::Ipv4Addr::from(n));
            let text = IpText::new(ip);
            proptest::prop_assert_eq!(text.as_str(), ip.to_string());
        }
    }
}
