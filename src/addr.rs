//! Address helpers that the engine and the GeoIP lookups share. A leaf:
//! it imports nothing of netwarden's, so both can use it without importing
//! each other.

use std::net::IpAddr;

/// IPv4-mapped IPv6 (`::ffff:a.b.c.d`) becomes the IPv4 address, so that it
/// matches IPv4 networks; the deprecated IPv4-compatible form (`::a.b.c.d`)
/// stays IPv6 (RFC 4291 §2.5.5).
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_canonical(),
        v4 => v4,
    }
}

/// Why a text is not a prefix as netwarden reads them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PrefixError {
    /// Neither an address nor address/length.
    Invalid,
    /// A CIDR whose address is not in canonical form (leading zeros, a
    /// zone id).
    NotCanonical,
    /// Bits set after the prefix length (`10.0.0.1/8`); holds the prefix
    /// meant and the one address written.
    HostBits(ipnet::IpNet),
    /// An IPv4-mapped IPv6 range (RFC 4291 §2.5.5.2); holds the IPv4
    /// prefix it means. Refused so that `::ffff:0:0/96` cannot mean every
    /// IPv4 client.
    Mapped(ipnet::Ipv4Net),
}

/// A CIDR or a single address, strictly: canonical address, no host bits,
/// no IPv4-mapped IPv6. What the policy, network files and published lists
/// all accept.
pub fn parse_prefix(text: &str) -> Result<ipnet::IpNet, PrefixError> {
    use ipnet::{IpNet, Ipv4Net};
    let literal = |s: &str| -> Option<IpAddr> {
        if s.contains('%') {
            return None;
        }
        s.parse().ok()
    };
    let text = text.trim();
    let net = match text.split_once('/') {
        Some((addr, _)) => {
            let net: IpNet = text.parse().map_err(|_| PrefixError::Invalid)?;
            if literal(addr).is_none() {
                return Err(PrefixError::NotCanonical);
            }
            if net.trunc() != net {
                return Err(PrefixError::HostBits(net));
            }
            net
        }
        None => IpNet::from(literal(text).ok_or(PrefixError::Invalid)?),
    };
    if let IpNet::V6(v6) = net {
        let a = u128::from(v6.network());
        if v6.prefix_len() >= 96 && a >> 32 == 0xffff {
            // PANIC SAFETY: the low 32 bits and a length in 0..=32 are always a valid IPv4 prefix.
            let v4 = Ipv4Net::new(std::net::Ipv4Addr::from(a as u32), v6.prefix_len() - 96)
                .expect("prefix length 0..=32");
            return Err(PrefixError::Mapped(v4));
        }
    }
    Ok(net)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_read_strictly() {
        assert!(parse_prefix(" 203.0.113.0/24 ").is_ok());
        assert_eq!(
            parse_prefix("198.51.100.7").map(|n| n.to_string()),
            Ok("198.51.100.7/32".to_string())
        );
        assert_eq!(parse_prefix("10.0.0.0/33"), Err(PrefixError::Invalid));
        assert!(parse_prefix("010.0.0.0/8").is_err());
        assert_eq!(parse_prefix("fe80::1%eth0"), Err(PrefixError::Invalid));
        assert!(matches!(
            parse_prefix("10.0.0.1/8"),
            Err(PrefixError::HostBits(_))
        ));
        assert!(matches!(
            parse_prefix("::ffff:0:0/96"),
            Err(PrefixError::Mapped(_))
        ));
    }
}
