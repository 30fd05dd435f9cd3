//! LINE WORKS Bot API 2.0: a service-account JWT (RS256, signed with the
//! app's private key) is exchanged for an access token, kept until it
//! expires (refreshed once when the API answers 401), and a text message
//! goes to a channel or a member.
//! <https://developers.worksmobile.com/jp/docs/auth-jwt>

use std::time::{Duration, Instant, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Request, StatusCode, Uri};
use http_body_util::Full;
use ring::signature::RsaKeyPair;
use rustls::pki_types::PrivateKeyDer;
use rustls::pki_types::pem::PemObject;

use super::deliver::{Answer, SinkClient, Try, classify, post};

/// How long the assertion is good for: LINE WORKS takes at most 60
/// minutes; it is used at once, so a few are plenty.
const ASSERTION_LIFETIME: u64 = 10 * 60;
/// A token is renewed this long before LINE WORKS says it expires.
const TOKEN_MARGIN: Duration = Duration::from_secs(60);
/// A token is kept at most this long, whatever `expires_in` says (LINE
/// WORKS issues them for 24 hours): an absurd answer cannot overflow the
/// clock or keep a token for ever (the red-team review of issue 28).
const TOKEN_KEPT_MAX: Duration = Duration::from_secs(24 * 3600);
/// The token endpoint's answer read at most (it is a few hundred bytes).
const TOKEN_ANSWER_MAX: usize = 16 * 1024;

/// Why a private key cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("it cannot be read: {0}")]
    Unreadable(String),
    #[error("it is not a PEM private key")]
    NotPem,
    #[error("it is not an RSA private key (LINE WORKS keys are RSA)")]
    NotRsa,
}

/// The app's RSA key, from its PEM (PKCS#8 as the Developer Console
/// issues it, or PKCS#1).
pub fn read_key(pem: &[u8]) -> Result<RsaKeyPair, KeyError> {
    let der = PrivateKeyDer::from_pem_slice(pem).map_err(|_| KeyError::NotPem)?;
    match der {
        PrivateKeyDer::Pkcs8(k) => RsaKeyPair::from_pkcs8(k.secret_pkcs8_der()),
        PrivateKeyDer::Pkcs1(k) => RsaKeyPair::from_der(k.secret_pkcs1_der()),
        _ => return Err(KeyError::NotRsa),
    }
    .map_err(|_| KeyError::NotRsa)
}

/// The JWT assertion: `{"alg":"RS256","typ":"JWT"}`, claims `iss` (the
/// client id), `sub` (the service account), `iat`, `exp`.
pub fn assertion(
    key: &RsaKeyPair,
    client_id: &str,
    service_account: &str,
    now: SystemTime,
) -> Option<String> {
    let iat = now.duration_since(SystemTime::UNIX_EPOCH).ok()?.as_secs();
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","typ":"JWT"}"#);
    let claims = serde_json::json!({
        "iss": client_id,
        "sub": service_account,
        "iat": iat,
        "exp": iat + ASSERTION_LIFETIME,
    });
    let claims = URL_SAFE_NO_PAD.encode(claims.to_string());
    let signing_input = format!("{header}.{claims}");
    let mut sig = vec![0; key.public().modulus_len()];
    key.sign(
        &ring::signature::RSA_PKCS1_SHA256,
        &ring::rand::SystemRandom::new(),
        signing_input.as_bytes(),
        &mut sig,
    )
    .ok()?;
    Some(format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig)))
}

/// A bot, resolved: where to post, its secrets, its token.
pub struct Bot {
    pub message_url: Uri,
    pub auth_url: Uri,
    pub client_id: String,
    pub client_secret: String,
    pub service_account: String,
    pub key: RsaKeyPair,
    token: tokio::sync::Mutex<Option<(HeaderValue, Instant)>>,
}

impl Bot {
    pub fn new(
        message_url: Uri,
        auth_url: Uri,
        client_id: String,
        client_secret: String,
        service_account: String,
        key: RsaKeyPair,
    ) -> Self {
        Bot {
            message_url,
            auth_url,
            client_id,
            client_secret,
            service_account,
            key,
            token: tokio::sync::Mutex::new(None),
        }
    }

    /// Posts `body` with a token; a 401 renews the token and tries once
    /// more.
    pub async fn send(&self, client: &SinkClient, body: Bytes, timeout: Duration) -> Try {
        for renewed in [false, true] {
            let token = match self.token(client, timeout, renewed).await {
                Ok(t) => t,
                Err(t) => return t,
            };
            let req = Request::post(self.message_url.clone())
                .header(header::CONTENT_TYPE, "application/json")
                .header(header::USER_AGENT, super::deliver::USER_AGENT)
                .header(header::AUTHORIZATION, token)
                .body(Full::new(body.clone()));
            let Ok(req) = req else {
                return Try::Rejected(Answer::Http(StatusCode::BAD_REQUEST));
            };
            match post(client, req, timeout, 0).await {
                Ok((status, _, _)) if status == StatusCode::UNAUTHORIZED && !renewed => continue,
                Ok((status, headers, _)) => {
                    return classify(status, headers.get(header::RETRY_AFTER), None);
                }
                Err(t) => return t,
            }
        }
        Try::Rejected(Answer::Http(StatusCode::UNAUTHORIZED))
    }

    /// The cached token, or a new one (`renew`: the API refused the
    /// cached one).
    async fn token(
        &self,
        client: &SinkClient,
        timeout: Duration,
        renew: bool,
    ) -> Result<HeaderValue, Try> {
        let mut slot = self.token.lock().await;
        if !renew
            && let Some((t, until)) = &*slot
            && Instant::now() < *until
        {
            return Ok(t.clone());
        }
        *slot = None;
        let assertion = assertion(
            &self.key,
            &self.client_id,
            &self.service_account,
            SystemTime::now(),
        )
        .ok_or(Try::Retry {
            status: None,
            why: "signing_error",
            after: None,
        })?;
        let form = form(&[
            ("assertion", &assertion),
            ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
            ("client_id", &self.client_id),
            ("client_secret", &self.client_secret),
            ("scope", "bot"),
        ]);
        let req = Request::post(self.auth_url.clone())
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::USER_AGENT, super::deliver::USER_AGENT)
            .body(Full::new(Bytes::from(form)))
            .map_err(|_| Try::Rejected(Answer::Http(StatusCode::BAD_REQUEST)))?;
        let (status, headers, answer) = post(client, req, timeout, TOKEN_ANSWER_MAX).await?;
        if !status.is_success() {
            return Err(classify(status, headers.get(header::RETRY_AFTER), None));
        }
        let (token, expires) = read_token(&answer).ok_or(Try::Retry {
            status: Some(Answer::Http(status)),
            why: "bad_token_answer",
            after: None,
        })?;
        let mut value =
            HeaderValue::try_from(format!("Bearer {token}")).map_err(|_| Try::Retry {
                status: Some(Answer::Http(status)),
                why: "bad_token_answer",
                after: None,
            })?;
        value.set_sensitive(true);
        let keep = expires.min(TOKEN_KEPT_MAX).saturating_sub(TOKEN_MARGIN);
        let until = Instant::now()
            .checked_add(keep)
            .unwrap_or_else(Instant::now);
        *slot = Some((value.clone(), until));
        Ok(value)
    }
}

/// `access_token` and `expires_in` (LINE WORKS sends the seconds as a
/// string; a number is read too).
pub fn read_token(answer: &[u8]) -> Option<(String, Duration)> {
    let v: serde_json::Value = serde_json::from_slice(answer).ok()?;
    let token = v.get("access_token")?.as_str()?.to_string();
    let secs = match v.get("expires_in")? {
        serde_json::Value::String(s) => s.trim().parse().ok()?,
        serde_json::Value::Number(n) => n.as_u64()?,
        _ => return None,
    };
    (!token.is_empty()).then_some((token, Duration::from_secs(secs)))
}

/// `application/x-www-form-urlencoded` (WHATWG URL §5.2).
pub fn form(pairs: &[(&str, &str)]) -> String {
    use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
    const FORM: &AsciiSet = &NON_ALPHANUMERIC
        .remove(b'*')
        .remove(b'-')
        .remove(b'.')
        .remove(b'_');
    pairs
        .iter()
        .map(|(k, v)| {
            format!(
                "{}={}",
                utf8_percent_encode(k, FORM),
                utf8_percent_encode(v, FORM)
            )
        })
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_answer_is_read_with_its_lifetime_as_text_or_number() {
        assert_eq!(
            read_token(br#"{"access_token":"kr1AAA","expires_in":"86400","token_type":"Bearer"}"#),
            Some(("kr1AAA".into(), Duration::from_secs(86_400)))
        );
        assert_eq!(
            read_token(br#"{"access_token":"t","expires_in":3600}"#),
            Some(("t".into(), Duration::from_secs(3600)))
        );
        assert_eq!(read_token(br#"{"access_token":"","expires_in":1}"#), None);
        assert_eq!(read_token(br#"{"error":"invalid_client"}"#), None);
        assert_eq!(read_token(b"<html>"), None);
    }

    #[test]
    fn forms_are_percent_encoded() {
        assert_eq!(
            form(&[("grant_type", "urn:ietf:params"), ("x", "a b&c=日")]),
            "grant_type=urn%3Aietf%3Aparams&x=a%20b%26c%3D%E6%97%A5"
        );
    }

    #[test]
    fn a_key_that_is_not_rsa_pem_is_refused() {
        assert!(matches!(read_key(b"not a key"), Err(KeyError::NotPem)));
    }
}
