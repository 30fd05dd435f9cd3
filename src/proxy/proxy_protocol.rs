//! PROXY protocol v1 and v2 (HAProxy's spec) on listeners that ask for it.
//! A header is believed only from a trusted proxy; a trusted proxy must send
//! one; anyone else who sends one is refused. Parsing is the `ppp` crate's.

use std::net::SocketAddr;

use std::pin::Pin;
use std::task::{Context, Poll};

use ppp::{HeaderResult, PartialResult, v1, v2};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};

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

/// Who the connection is from, as the PROXY header says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// No header (a direct client that is not a trusted proxy).
    Direct,
    /// The client the header names.
    Client(SocketAddr),
    /// v1 `UNKNOWN` or v2 `LOCAL`: the proxy's own connection (a health
    /// check). A layer-4 proxy writes no HTTP headers, so any forwarding
    /// header on such a connection is the sender's own: not believed.
    ProxyItself,
}

/// Reads the PROXY header, if any. `trusted`: whether the TCP peer is a
/// trusted proxy. Returns who the connection is from, and the bytes read
/// past the header (the start of the TLS handshake or
/// the request), which the connection must see first ([`Replay`]).
///
/// Every read waits for the socket to be readable: a peer that sends part
/// of a signature and stops costs nothing until it sends more or the
/// caller's header timeout ends the connection. (Peeking would return the
/// same bytes at once, over and over.)
pub async fn read<S: AsyncRead + Unpin>(
    stream: &mut S,
    trusted: bool,
) -> Result<(Source, Vec<u8>), ProxyHeaderError> {
    let io = |e: std::io::Error| ProxyHeaderError::Io(e.to_string());
    let mut buf: Vec<u8> = Vec::with_capacity(256);
    let mut more = async |buf: &mut Vec<u8>| -> Result<(), ProxyHeaderError> {
        let mut chunk = [0u8; 256];
        let n = stream.read(&mut chunk).await.map_err(io)?;
        if n == 0 {
            return Err(ProxyHeaderError::Truncated);
        }
        buf.extend_from_slice(&chunk[..n]);
        Ok(())
    };
    // Read until the first bytes say whether a header is there.
    let kind = loop {
        match kind(&buf) {
            Kind::Unknown => more(&mut buf).await?,
            k => break k,
        }
    };
    match (kind, trusted) {
        (Kind::None, false) => return Ok((Source::Direct, buf)),
        (Kind::None, true) => return Err(ProxyHeaderError::Missing),
        (_, false) => return Err(ProxyHeaderError::Untrusted),
        _ => {}
    }
    let end = if kind == Kind::V2 {
        while buf.len() < 16 {
            more(&mut buf).await?;
        }
        let len = usize::from(u16::from_be_bytes([buf[14], buf[15]]));
        if 16 + len > V2_MAX {
            return Err(ProxyHeaderError::Malformed(format!(
                "v2 header of {len} bytes is too long"
            )));
        }
        while buf.len() < 16 + len {
            more(&mut buf).await?;
        }
        16 + len
    } else {
        loop {
            if let Some(at) = buf.windows(2).position(|w| w == b"\r\n") {
                break at + 2;
            }
            if buf.len() >= V1_MAX {
                return Err(ProxyHeaderError::Malformed(
                    "v1 header longer than 107 bytes".into(),
                ));
            }
            more(&mut buf).await?;
        }
    };
    if end > V1_MAX.max(V2_MAX) {
        return Err(ProxyHeaderError::Malformed("header too long".into()));
    }
    let rest = buf.split_off(end);
    let source = match parse(&buf)? {
        Some(addr) => Source::Client(addr),
        None => Source::ProxyItself,
    };
    Ok((source, rest))
}

/// A stream with bytes already read from it put back in front: the bytes
/// read past a PROXY header, those read to tell HTTP/2 from HTTP/1, or
/// those hyper had read when an idle connection was parked.
pub struct Replay<S> {
    head: bytes::Bytes,
    pub(super) inner: S,
}

impl<S> Replay<S> {
    pub fn new(head: bytes::Bytes, inner: S) -> Self {
        Replay { head, inner }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.head.is_empty()
    }

    /// Puts `bytes` in front of what is left to replay.
    pub(super) fn put_back(&mut self, bytes: bytes::Bytes) {
        if bytes.is_empty() {
            return;
        }
        self.head = if self.head.is_empty() {
            bytes
        } else {
            let mut both = bytes::BytesMut::with_capacity(bytes.len() + self.head.len());
            both.extend_from_slice(&bytes);
            both.extend_from_slice(&self.head);
            both.freeze()
        };
    }
}

impl<S: AsyncRead + Unpin> Replay<S> {
    /// Waits for the client's next byte and keeps it to replay: `false`
    /// when the client closed the connection.
    pub(super) async fn wait_for_byte(&mut self) -> std::io::Result<bool> {
        use tokio::io::AsyncReadExt as _;
        let mut one = [0u8; 1];
        let n = self.inner.read(&mut one).await?;
        if n == 1 {
            self.put_back(bytes::Bytes::copy_from_slice(&one));
        }
        Ok(n == 1)
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Replay<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if !self.head.is_empty() {
            let n = self.head.len().min(buf.remaining());
            let chunk = self.head.split_to(n);
            buf.put_slice(&chunk);
            if self.head.is_empty() {
                // Not an empty view that keeps the buffer it came from
                // (hyper's whole read buffer, for bytes put back at a
                // park) for the connection's life.
                self.head = bytes::Bytes::new();
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Replay<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, data)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What was put back is read first, in order, then the stream; an
    /// emptied head lets go of the buffer it was cut from.
    #[tokio::test]
    async fn a_replay_reads_what_was_put_back_first() {
        let (mut client, server) = tokio::io::duplex(64);
        tokio::io::AsyncWriteExt::write_all(&mut client, b"!rest")
            .await
            .expect("write");
        let mut r = Replay::new(bytes::Bytes::from_static(b"AB"), server);
        r.put_back(bytes::Bytes::from_static(b"C"));
        let mut got = [0u8; 3];
        r.read_exact(&mut got).await.expect("read");
        assert_eq!(&got, b"CAB");
        assert!(r.is_empty());
        // A slice of a larger buffer (hyper's), read whole.
        let whole = bytes::Bytes::from(b"..........D".to_vec());
        r.put_back(whole.slice(10..));
        assert!(!whole.is_unique());
        let mut one = [0u8; 1];
        r.read_exact(&mut one).await.expect("read");
        assert_eq!(&one, b"D");
        // `split_to` of the whole leaves nothing holding it (hyper's read
        // buffer, when a parked connection's bytes were put back).
        assert!(whole.is_unique(), "the emptied head still holds the buffer");
        assert!(r.wait_for_byte().await.expect("a byte"));
        let mut rest = [0u8; 5];
        r.read_exact(&mut rest).await.expect("read");
        assert_eq!(&rest, b"!rest");
        drop(client);
        assert!(!r.wait_for_byte().await.expect("closed"));
    }

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

    fn read_now(bytes: &[u8], trusted: bool) -> Result<(Source, Vec<u8>), ProxyHeaderError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let mut input = bytes;
        rt.block_on(read(&mut input, trusted))
    }

    #[test]
    fn bytes_after_the_header_are_handed_back() {
        let (peer, rest) = read_now(
            b"PROXY TCP4 203.0.113.7 10.0.0.1 51234 443\r\nGET / HTTP/1.1\r\n",
            true,
        )
        .expect("header");
        assert_eq!(peer, Source::Client("203.0.113.7:51234".parse().unwrap()));
        assert_eq!(rest, b"GET / HTTP/1.1\r\n");
        let mut h = V2_SIGNATURE.to_vec();
        h.extend_from_slice(&[
            0x21, 0x11, 0x00, 0x0c, 203, 0, 113, 7, 10, 0, 0, 1, 0, 80, 1, 187,
        ]);
        h.extend_from_slice(b"\x16\x03\x01");
        let (peer, rest) = read_now(&h, true).expect("header");
        assert_eq!(peer, Source::Client("203.0.113.7:80".parse().unwrap()));
        assert_eq!(rest, b"\x16\x03\x01");
        // No header from an untrusted peer: every byte read is handed back.
        let (peer, rest) = read_now(b"GET / HTTP/1.1\r\n", false).expect("no header");
        assert_eq!(peer, Source::Direct);
        assert_eq!(rest, b"GET / HTTP/1.1\r\n");
        let (src, _) = read_now(b"PROXY UNKNOWN\r\nGET", true).expect("header");
        assert_eq!(src, Source::ProxyItself);
        assert_eq!(read_now(b"PRO", false), Err(ProxyHeaderError::Truncated));
        assert_eq!(read_now(b"GET /", true), Err(ProxyHeaderError::Missing));
        assert_eq!(
            read_now(b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n", false),
            Err(ProxyHeaderError::Untrusted)
        );
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
