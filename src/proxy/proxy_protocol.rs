//! PROXY protocol v1 and v2 (HAProxy's spec) on listeners that ask for it.
//! A header is believed only from a trusted proxy; a trusted proxy must send
//! one; anyone else who sends one is refused. Parsing is the `ppp` crate's.

use std::net::SocketAddr;

use ppp::{HeaderResult, PartialResult, v1, v2};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// v2 signature (spec §2.2).
const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";
/// v1 headers are at most 107 bytes (spec §2.1).
const V1_MAX: usize = 107;
/// v2: 16 fixed bytes then up to 65535; netwarden reads at most this much
/// (addresses plus TLVs of a reasonable size).
const V2_MAX: usize = 16 + 4096;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProxyHeaderError {
    #[error("PROXY header from an untrusted peer")]
    Untrusted,
    #[error("trusted proxy sent no PROXY header")]
    Missing,
    #[error("malformed PROXY header: {0}")]
    Malformed(String),
    #[error("connection closed before the PROXY header was complete")]
    Truncated,
    #[error("I/O error reading the PROXY header: {0}")]
    Io(String),
}

/// What a header's first bytes say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    V1,
    V2,
    None,
    /// Too few bytes yet to tell.
    Unknown,
}

fn kind(prefix: &[u8]) -> Kind {
    let v1 = b"PROXY ";
    let v2 = &V2_SIGNATURE[..];
    let n = prefix.len();
    if n >= v2.len() && prefix.starts_with(v2) {
        return Kind::V2;
    }
    if n >= v1.len() && prefix.starts_with(v1) {
        return Kind::V1;
    }
    let could_be = |sig: &[u8]| sig.starts_with(&prefix[..n.min(sig.len())]);
    if n < v2.len() && could_be(v2) || n < v1.len() && could_be(v1) {
        Kind::Unknown
    } else {
        Kind::None
    }
}

/// Parses a complete header; returns the source address (`None` for v1
/// `UNKNOWN` or v2 `LOCAL`: the connection's own peer is the source).
pub fn parse(header: &[u8]) -> Result<Option<SocketAddr>, ProxyHeaderError> {
    match HeaderResult::parse(header) {
        HeaderResult::V1(Ok(h)) => Ok(match h.addresses {
            v1::Addresses::Tcp4(a) => Some(SocketAddr::from((a.source_address, a.source_port))),
            v1::Addresses::Tcp6(a) => Some(SocketAddr::from((a.source_address, a.source_port))),
            v1::Addresses::Unknown => None,
        }),
        HeaderResult::V2(Ok(h)) => match (h.command, h.addresses) {
            (v2::Command::Local, _) => Ok(None),
            (_, v2::Addresses::IPv4(a)) => {
                Ok(Some(SocketAddr::from((a.source_address, a.source_port))))
            }
            (_, v2::Addresses::IPv6(a)) => {
                Ok(Some(SocketAddr::from((a.source_address, a.source_port))))
            }
            (_, _) => Err(ProxyHeaderError::Malformed(
                "not a TCP/IP source address".into(),
            )),
        },
        r if r.is_incomplete() => Err(ProxyHeaderError::Truncated),
        HeaderResult::V1(Err(e)) => Err(ProxyHeaderError::Malformed(e.to_string())),
        HeaderResult::V2(Err(e)) => Err(ProxyHeaderError::Malformed(e.to_string())),
    }
}

/// Reads the PROXY header, if any, without consuming any byte after it.
/// `trusted`: whether the TCP peer is a trusted proxy. Returns the address
/// the engine should treat as the peer.
pub async fn read(
    stream: &mut TcpStream,
    peer: SocketAddr,
    trusted: bool,
) -> Result<SocketAddr, ProxyHeaderError> {
    let io = |e: std::io::Error| ProxyHeaderError::Io(e.to_string());
    let mut buf = [0u8; V1_MAX];
    // Peek until the first bytes say whether a header is there.
    let kind = loop {
        let n = stream.peek(&mut buf[..16]).await.map_err(io)?;
        match kind(&buf[..n]) {
            Kind::Unknown if n == 0 => return Err(ProxyHeaderError::Truncated),
            // Part of a signature: wait for more (peek would return at once).
            // The caller bounds the whole read with the header timeout.
            Kind::Unknown => tokio::time::sleep(std::time::Duration::from_millis(5)).await,
            k => break k,
        }
    };
    match (kind, trusted) {
        (Kind::None, false) => return Ok(peer),
        (Kind::None, true) => return Err(ProxyHeaderError::Missing),
        (_, false) => return Err(ProxyHeaderError::Untrusted),
        _ => {}
    }
    let header: Vec<u8> = if kind == Kind::V2 {
        let mut fixed = [0u8; 16];
        stream.read_exact(&mut fixed).await.map_err(io)?;
        let len = usize::from(u16::from_be_bytes([fixed[14], fixed[15]]));
        if 16 + len > V2_MAX {
            return Err(ProxyHeaderError::Malformed(format!(
                "v2 header of {len} bytes is too long"
            )));
        }
        let mut all = fixed.to_vec();
        all.resize(16 + len, 0);
        stream.read_exact(&mut all[16..]).await.map_err(io)?;
        all
    } else {
        // v1: read byte by byte up to CRLF, so nothing after it is consumed.
        let mut line = Vec::with_capacity(V1_MAX);
        loop {
            let b = stream
                .read_u8()
                .await
                .map_err(|_| ProxyHeaderError::Truncated)?;
            line.push(b);
            if line.ends_with(b"\r\n") {
                break line;
            }
            if line.len() >= V1_MAX {
                return Err(ProxyHeaderError::Malformed(
                    "v1 header longer than 107 bytes".into(),
                ));
            }
        }
    };
    Ok(parse(&header)?.unwrap_or(peer))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_tcp4_tcp6_and_unknown() {
        assert_eq!(
            parse(b"PROXY TCP4 203.0.113.7 10.0.0.1 51234 443\r\n"),
            Ok(Some("203.0.113.7:51234".parse().unwrap()))
        );
        assert_eq!(
            parse(b"PROXY TCP6 2001:db8::7 2001:db8::1 51234 443\r\n"),
            Ok(Some("[2001:db8::7]:51234".parse().unwrap()))
        );
        assert_eq!(parse(b"PROXY UNKNOWN\r\n"), Ok(None));
        assert!(matches!(
            parse(b"PROXY TCP4 1.2.3 10.0.0.1 1 2\r\n"),
            Err(ProxyHeaderError::Malformed(_))
        ));
    }

    /// Golden bytes of a v2 PROXY TCP4 header (spec §2.2).
    #[test]
    fn v2_golden_bytes() {
        let mut h = V2_SIGNATURE.to_vec();
        h.extend_from_slice(&[0x21, 0x11, 0x00, 0x0c]); // v2 PROXY, TCP over IPv4, 12 bytes
        h.extend_from_slice(&[203, 0, 113, 7, 10, 0, 0, 1]);
        h.extend_from_slice(&51234u16.to_be_bytes());
        h.extend_from_slice(&443u16.to_be_bytes());
        assert_eq!(parse(&h), Ok(Some("203.0.113.7:51234".parse().unwrap())));
        // LOCAL command: health checks from the proxy itself.
        let mut local = V2_SIGNATURE.to_vec();
        local.extend_from_slice(&[0x20, 0x00, 0x00, 0x00]);
        assert_eq!(parse(&local), Ok(None));
    }

    #[test]
    fn kind_needs_enough_bytes_to_tell() {
        assert_eq!(kind(b"PRO"), Kind::Unknown);
        assert_eq!(kind(b"\r\n\r\n"), Kind::Unknown);
        assert_eq!(kind(b"GET / HTTP/1.1"), Kind::None);
        assert_eq!(kind(b"PROXY TCP4"), Kind::V1);
        assert_eq!(kind(&V2_SIGNATURE[..]), Kind::V2);
    }
}
