//! Alerts by mail: lettre's SMTP session (STARTTLS required, or implicit
//! TLS; AUTH PLAIN or LOGIN) and its message builder (a plain-text and an
//! HTML part, the subject RFC 2047-encoded), over a connection netwarden
//! makes itself: TCP, rustls for implicit TLS, and a cap on what the
//! server may send in one session, so that a server (or whoever is on the
//! path before STARTTLS) cannot make netwarden buffer an endless line
//! (the red-team review of issue 28: lettre reads a reply line whole
//! before it checks its length).

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{
    AsyncSmtpConnection, AsyncTokioStream, Certificate, CertificateStore, TlsParameters,
};
use lettre::transport::smtp::extension::ClientId;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::deliver::{Answer, Try};
use super::formats::Mail;
use crate::policy::alerts::{EmailConfig, SmtpTls};

/// What a server may send in one session: a delivery's replies are a few
/// hundred bytes; past this the session is dropped as broken.
const SESSION_READ_MAX: usize = 64 * 1024;
/// Reply lines a server may send while the session is in clear text (a
/// greeting and an EHLO reply are a few dozen): lettre parses a reply
/// again with each line, so a reply of thousands of short lines costs
/// seconds of CPU (the second red-team review of issue 28: 8,192 lines
/// froze the guard for 29 s). Under implicit TLS the stream counted is
/// the decrypted one, so the cap holds for the whole session.
const CLEAR_LINES_MAX: usize = 200;

/// A mail sink, resolved.
pub struct Mailer {
    host: String,
    port: u16,
    /// lettre's TLS settings for STARTTLS (the system's roots, or `ca`).
    starttls: Option<TlsParameters>,
    /// rustls, for implicit TLS (the same roots).
    implicit: Option<tokio_rustls::TlsConnector>,
    login: Option<Credentials>,
    hello: ClientId,
    from: Mailbox,
    to: Vec<Mailbox>,
    envelope: lettre::address::Envelope,
}

/// Why a mail sink cannot be set up (never a secret's value).
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("'{0}' is not a mail address")]
    Address(String),
    #[error("the CA file {path}: {why}")]
    Ca { path: String, why: String },
    #[error("TLS settings: {0}")]
    Tls(String),
}

/// A stream that fails once the server has sent [`SESSION_READ_MAX`]
/// bytes (it may overshoot by one read, a few KiB), or more than
/// [`CLEAR_LINES_MAX`] lines while what it reads is text: under implicit
/// TLS (it reads the decrypted stream), or before STARTTLS (after the
/// client's `STARTTLS` and the server's one-line answer, what it reads
/// is TLS records, and only bytes are counted).
#[derive(Debug)]
struct Bounded<S> {
    inner: S,
    left: usize,
    peer: SocketAddr,
    /// Lines still allowed; `None` once the stream carries TLS records.
    lines_left: Option<usize>,
    /// The client asked for STARTTLS: the next line ends the clear text.
    starttls_sent: bool,
}

impl<S> Bounded<S> {
    fn new(inner: S, peer: SocketAddr) -> Self {
        Bounded {
            inner,
            left: SESSION_READ_MAX,
            peer,
            lines_left: Some(CLEAR_LINES_MAX),
            starttls_sent: false,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Bounded<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.left == 0 {
            return Poll::Ready(Err(std::io::Error::other(
                "the mail server sent more than a session's worth of bytes",
            )));
        }
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = buf.filled().len().saturating_sub(before);
        self.left = self.left.saturating_sub(n);
        if let Some(mut left) = self.lines_left {
            for &b in &buf.filled()[before..] {
                if b != b'\n' {
                    continue;
                }
                if self.starttls_sent {
                    // The answer to STARTTLS: TLS records follow.
                    self.lines_left = None;
                    return r;
                }
                if left == 0 {
                    return Poll::Ready(Err(std::io::Error::other(
                        "the mail server sent too many reply lines",
                    )));
                }
                left -= 1;
            }
            self.lines_left = Some(left);
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Bounded<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        if self.lines_left.is_some() && buf.len() >= 8 && buf[..8].eq_ignore_ascii_case(b"STARTTLS")
        {
            self.starttls_sent = true;
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl<S> AsyncTokioStream for Bounded<S>
where
    S: AsyncRead + AsyncWrite + Send + Sync + Unpin + std::fmt::Debug,
{
    fn peer_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.peer)
    }
}

/// Why one session failed, before classification.
enum Failure {
    Smtp(lettre::transport::smtp::Error),
    Io(std::io::Error),
    NoStartTls,
}

impl Mailer {
    /// `login`: SMTP AUTH's user and password, read from the environment.
    pub fn new(
        cfg: &EmailConfig,
        login: Option<(String, String)>,
        ca: Option<&std::path::Path>,
        hello: &str,
    ) -> Result<Mailer, MailError> {
        let from: Mailbox = cfg
            .from
            .parse()
            .map_err(|_| MailError::Address(cfg.from.clone()))?;
        let to = cfg
            .to
            .iter()
            .map(|t| t.parse().map_err(|_| MailError::Address(t.clone())))
            .collect::<Result<Vec<Mailbox>, _>>()?;
        let envelope = lettre::address::Envelope::new(
            Some(from.email.clone()),
            to.iter().map(|m| m.email.clone()).collect(),
        )
        .map_err(|_| MailError::Address(cfg.to.join(", ")))?;
        let (starttls, implicit) = match cfg.tls {
            SmtpTls::None => (None, None),
            SmtpTls::StartTls => (Some(lettre_tls(&cfg.host, ca)?), None),
            SmtpTls::Implicit => {
                let config =
                    crate::tls::client_config(ca).map_err(|e| MailError::Tls(e.to_string()))?;
                (
                    None,
                    Some(tokio_rustls::TlsConnector::from(Arc::new(config))),
                )
            }
        };
        Ok(Mailer {
            host: cfg.host.clone(),
            port: cfg.port,
            starttls,
            implicit,
            login: login.map(|(user, password)| Credentials::new(user, password)),
            hello: ClientId::Domain(hello_name(hello)),
            from,
            to,
            envelope,
        })
    }

    /// The message as sent: headers and both parts, RFC 5322 bytes.
    pub fn format(&self, mail: &Mail, at: SystemTime) -> Vec<u8> {
        let mut b = lettre::Message::builder()
            .from(self.from.clone())
            .subject(mail.subject.clone())
            .date(at)
            .message_id(None)
            .user_agent(super::deliver::USER_AGENT.to_string());
        for t in &self.to {
            b = b.to(t.clone());
        }
        match b.multipart(MultiPart::alternative_plain_html(
            mail.text.clone(),
            mail.html.clone(),
        )) {
            Ok(m) => m.formatted(),
            // The addresses were checked when the sink was made; nothing
            // else can fail to build.
            Err(_) => Vec::new(),
        }
    }

    /// One session: connect, TLS (implicit, or STARTTLS, required), AUTH,
    /// the message, QUIT.
    async fn session(
        &self,
        raw: &[u8],
    ) -> Result<lettre::transport::smtp::response::Response, Failure> {
        let tcp = tokio::net::TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(Failure::Io)?;
        let _ = tcp.set_nodelay(true);
        let peer = tcp.peer_addr().map_err(Failure::Io)?;
        let stream: Box<dyn AsyncTokioStream> = match &self.implicit {
            Some(connector) => {
                let name = rustls::pki_types::ServerName::try_from(self.host.clone())
                    .map_err(|e| Failure::Io(std::io::Error::other(e)))?;
                let tls = connector.connect(name, tcp).await.map_err(Failure::Io)?;
                Box::new(Bounded::new(tls, peer))
            }
            None => Box::new(Bounded::new(tcp, peer)),
        };
        let mut conn = AsyncSmtpConnection::connect_with_transport(stream, &self.hello)
            .await
            .map_err(Failure::Smtp)?;
        if let Some(params) = &self.starttls {
            // RFC 3207 as a requirement: no STARTTLS, no mail (and no
            // password in clear).
            if !conn.can_starttls() {
                conn.abort().await;
                return Err(Failure::NoStartTls);
            }
            conn.starttls(params.clone(), &self.hello)
                .await
                .map_err(Failure::Smtp)?;
        }
        if let Some(login) = &self.login {
            conn.auth(&[Mechanism::Plain, Mechanism::Login], login)
                .await
                .map_err(Failure::Smtp)?;
        }
        let sent = conn
            .send(&self.envelope, raw)
            .await
            .map_err(Failure::Smtp)?;
        let _ = conn.quit().await;
        Ok(sent)
    }

    /// One delivery: 2xx delivered, 5xx refused for good (a refused AUTH
    /// is 535), 4xx and connection trouble worth another try.
    pub async fn send(self: &Arc<Self>, raw: &[u8], timeout: Duration) -> Try {
        let retry = |why| Try::Retry {
            status: None,
            why,
            after: None,
        };
        // A session on a thread of its own: whatever a server makes the
        // SMTP client do (lettre parses replies as they grow), it never
        // holds a thread of the runtime that serves requests.
        let (tx, rx) = tokio::sync::oneshot::channel();
        let (me, raw) = (self.clone(), raw.to_vec());
        let spawned = std::thread::Builder::new()
            .name("netwarden-smtp".into())
            .spawn(move || {
                let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                else {
                    return;
                };
                let r = rt.block_on(async move {
                    tokio::time::timeout(timeout, me.session(&raw)).await.ok()
                });
                let _ = tx.send(r);
            });
        if spawned.is_err() {
            return retry("error");
        }
        let done = match tokio::time::timeout(timeout + Duration::from_secs(1), rx).await {
            Ok(Ok(r)) => r,
            _ => None,
        };
        match done {
            None => retry("timeout"),
            Some(Ok(r)) => Try::Delivered(Answer::Smtp(code(r.code()))),
            Some(Err(Failure::NoStartTls)) => retry("tls_error"),
            Some(Err(Failure::Io(e))) => retry(if tls_failure(&e) {
                "tls_error"
            } else {
                "connect_error"
            }),
            Some(Err(Failure::Smtp(e))) => {
                let status = e.status().map(|c| Answer::Smtp(code(c)));
                if e.is_permanent() {
                    Try::Rejected(status.unwrap_or(Answer::Smtp(554)))
                } else if e.is_transient() {
                    Try::Retry {
                        status,
                        why: "server_error",
                        after: None,
                    }
                } else if e.is_tls() || tls_failure(&e) {
                    retry("tls_error")
                } else if e.is_timeout() {
                    retry("timeout")
                } else {
                    retry("connect_error")
                }
            }
        }
    }
}

/// lettre's TLS settings for STARTTLS: the system's roots, or only `ca`.
fn lettre_tls(host: &str, ca: Option<&std::path::Path>) -> Result<TlsParameters, MailError> {
    let mut params = TlsParameters::builder(host.to_string());
    if let Some(path) = ca {
        let pem = crate::files::read(path, 1024 * 1024).map_err(|e| MailError::Ca {
            path: path.display().to_string(),
            why: e.to_string(),
        })?;
        let cert = Certificate::from_pem(&pem).map_err(|e| MailError::Ca {
            path: path.display().to_string(),
            why: e.to_string(),
        })?;
        params = params
            .certificate_store(CertificateStore::None)
            .add_root_certificate(cert);
    }
    params
        .build_rustls()
        .map_err(|e| MailError::Tls(e.to_string()))
}

/// Whether a connection failed in its TLS handshake (implicit TLS fails
/// while connecting: lettre calls that a connection error).
fn tls_failure(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if err.is::<rustls::Error>()
            || err
                .downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .is_some_and(|inner| inner.is::<rustls::Error>())
        {
            return true;
        }
        cur = err.source();
    }
    false
}

fn code(c: lettre::transport::smtp::response::Code) -> u16 {
    c.to_string().parse().unwrap_or(0)
}

/// The name netwarden greets the server with (EHLO): the instance's name
/// when it is a host name, else `netwarden`.
fn hello_name(instance: &str) -> String {
    let ok = !instance.is_empty()
        && instance.len() <= 253
        && instance
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    if ok {
        instance.to_string()
    } else {
        "netwarden".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> EmailConfig {
        EmailConfig {
            host: "127.0.0.1".into(),
            port: 2525,
            tls: SmtpTls::None,
            username_env: None,
            password_env: None,
            from: "netwarden <netwarden@example.com>".into(),
            to: vec!["ops@example.com".into(), "伊藤 <ito@example.jp>".into()],
        }
    }

    #[test]
    fn a_mail_has_both_parts_and_an_encoded_subject() {
        let m = Mailer::new(&config(), None, None, "pod-1").expect("mailer");
        let mail = Mail {
            subject: "[netwarden] ログインを遮断しました：203.0.113.7".into(),
            text: "接続元IPアドレス: 203.0.113.7".into(),
            html: "<p>接続元IPアドレス</p>".into(),
        };
        let raw = String::from_utf8(m.format(&mail, SystemTime::UNIX_EPOCH)).expect("ascii");
        assert!(raw.contains("Subject: [netwarden] =?utf-8?b?"), "{raw}");
        assert!(raw.contains("multipart/alternative"), "{raw}");
        assert!(
            raw.contains("Content-Type: text/plain; charset=utf-8"),
            "{raw}"
        );
        assert!(
            raw.contains("Content-Type: text/html; charset=utf-8"),
            "{raw}"
        );
        assert!(
            raw.contains("From: netwarden <netwarden@example.com>"),
            "{raw}"
        );
        assert!(raw.contains("Message-ID: <"), "{raw}");
        assert!(
            !raw.contains("接続元"),
            "8-bit text is transfer-encoded: {raw}"
        );
    }

    #[test]
    fn the_greeting_is_a_host_name() {
        assert_eq!(hello_name("console-7d9f-x2"), "console-7d9f-x2");
        assert_eq!(hello_name("bad name\r\n"), "netwarden");
    }
}
