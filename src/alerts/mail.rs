//! Alerts by mail: lettre's SMTP client (STARTTLS required, or implicit
//! TLS; AUTH PLAIN or LOGIN) on rustls, and its message builder (a
//! plain-text and an HTML part, the subject RFC 2047-encoded).

use std::time::{Duration, SystemTime};

use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::AsyncSmtpTransport;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{Certificate, CertificateStore, Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncTransport, Tokio1Executor};

use super::deliver::{Answer, Try};
use super::formats::Mail;
use crate::policy::alerts::{EmailConfig, SmtpTls};

/// A mail sink, resolved.
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
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

impl Mailer {
    /// `login`: SMTP AUTH's user and password, read from the environment.
    pub fn new(
        cfg: &EmailConfig,
        login: Option<(String, String)>,
        ca: Option<&std::path::Path>,
        timeout: Duration,
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
        let mut params = TlsParameters::builder(cfg.host.clone());
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
        let params = || -> Result<TlsParameters, MailError> {
            params
                .clone()
                .build_rustls()
                .map_err(|e| MailError::Tls(e.to_string()))
        };
        let tls = match cfg.tls {
            SmtpTls::StartTls => Tls::Required(params()?),
            SmtpTls::Implicit => Tls::Wrapper(params()?),
            SmtpTls::None => Tls::None,
        };
        let mut b = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(cfg.host.clone())
            .port(cfg.port)
            .tls(tls)
            .timeout(Some(timeout))
            .hello_name(ClientId::Domain(hello_name(hello)));
        if let Some((user, password)) = login {
            b = b
                .credentials(Credentials::new(user, password))
                .authentication(vec![Mechanism::Plain, Mechanism::Login]);
        }
        Ok(Mailer {
            transport: b.build(),
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

    /// One delivery: 2xx delivered, 5xx refused for good (a refused AUTH
    /// is 535), 4xx and connection trouble worth another try.
    pub async fn send(&self, raw: &[u8], timeout: Duration) -> Try {
        let sent = self.transport.send_raw(&self.envelope, raw);
        match tokio::time::timeout(timeout, sent).await {
            Err(_) => Try::Retry {
                status: None,
                why: "timeout",
                after: None,
            },
            Ok(Ok(r)) => Try::Delivered(Answer::Smtp(code(r.code()))),
            Ok(Err(e)) => {
                let status = e.status().map(|c| Answer::Smtp(code(c)));
                if e.is_permanent() {
                    Try::Rejected(status.unwrap_or(Answer::Smtp(554)))
                } else if e.is_transient() {
                    Try::Retry {
                        status,
                        why: "server_error",
                        after: None,
                    }
                } else {
                    Try::Retry {
                        status: None,
                        why: if e.is_tls() || tls_failure(&e) {
                            "tls_error"
                        } else if e.is_timeout() {
                            "timeout"
                        } else {
                            "connect_error"
                        },
                        after: None,
                    }
                }
            }
        }
    }
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
        let m =
            Mailer::new(&config(), None, None, Duration::from_secs(5), "pod-1").expect("mailer");
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
