//! A signed token (JWS compact serialization, RFC 7515; JWT claims, RFC
//! 7519) checked the way careful libraries check one: the algorithm from a
//! per-issuer allow-list (never `none`, never HMAC), the key by `kid`, the
//! signature over the token's own bytes, then `exp`, `nbf`, `iss`, `aud`
//! strictly typed (a string where a number belongs is an invalid token,
//! not a missing claim: GHSA-h395-gr6q-cpjc). Pure: token, keys, settings
//! and the time in; an [`Identity`] or why not out.

use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::{Map, Value};

use crate::engine::who::{Identity, Invalid, fold_email, is_address};
use crate::policy::identity::{JwtSettings, defaults};

/// Groups kept of one token, and other claims: enough for any `who:`, and
/// bounded whatever a token carries.
const MAX_GROUPS: usize = 256;
const MAX_CLAIMS: usize = 64;
const MAX_CLAIM_VALUE: usize = 512;

/// What the header says, read before the key is looked up.
#[derive(Debug, PartialEq, Eq)]
pub struct Peeked<'t> {
    pub alg: Algorithm,
    pub kid: Option<String>,
    parts: [&'t str; 3],
}

/// The token in a header value: the value itself, or after `Bearer `.
pub fn token(value: &[u8], bearer: bool) -> Result<&str, Invalid> {
    let text = std::str::from_utf8(value).map_err(|_| Invalid::Malformed)?;
    let text = text.trim();
    let token = if bearer {
        let (scheme, rest) = text.split_once(' ').ok_or(Invalid::Malformed)?;
        // RFC 9110 §11.1: the scheme is case-insensitive.
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(Invalid::Malformed);
        }
        rest.trim()
    } else {
        text
    };
    if token.len() > defaults::MAX_TOKEN {
        return Err(Invalid::Oversized);
    }
    Ok(token)
}

/// base64url, with or without padding (AWS ALB pads its tokens).
fn b64(part: &str) -> Result<Vec<u8>, Invalid> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part.trim_end_matches('='))
        .map_err(|_| Invalid::Malformed)
}

fn object(part: &str) -> Result<Map<String, Value>, Invalid> {
    match serde_json::from_slice(&b64(part)?) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(Invalid::Malformed),
    }
}

/// Reads the header: the algorithm (from `settings.algorithms` only) and
/// the `kid`. An `aws_alb` token must name the configured `signer`.
pub fn peek<'t>(token: &'t str, settings: &JwtSettings) -> Result<Peeked<'t>, Invalid> {
    if token.len() > defaults::MAX_TOKEN {
        return Err(Invalid::Oversized);
    }
    let mut it = token.split('.');
    let parts = match (it.next(), it.next(), it.next(), it.next()) {
        (Some(h), Some(c), Some(s), None) if !h.is_empty() && !c.is_empty() => [h, c, s],
        _ => return Err(Invalid::Malformed),
    };
    let header = object(parts[0])?;
    // RFC 7515 §4.1.11: extensions a verifier does not understand must be
    // refused; netwarden understands none.
    if header.contains_key("crit") {
        return Err(Invalid::Malformed);
    }
    let alg = match header.get("alg") {
        Some(Value::String(a)) => a.parse::<Algorithm>().map_err(|_| Invalid::Algorithm)?,
        _ => return Err(Invalid::Malformed),
    };
    if !settings.algorithms.contains(&alg) {
        return Err(Invalid::Algorithm);
    }
    let kid = match header.get("kid") {
        None => None,
        Some(Value::String(k)) => Some(k.clone()),
        Some(_) => return Err(Invalid::Malformed),
    };
    if let Some(want) = &settings.signer
        && header.get("signer").and_then(Value::as_str) != Some(want.as_str())
    {
        return Err(Invalid::Signer);
    }
    Ok(Peeked { alg, kid, parts })
}

/// Checks the signature with `key` and the claims at `now` (seconds since
/// the epoch), and reads the identity.
pub fn verify(
    peeked: &Peeked<'_>,
    key: &DecodingKey,
    settings: &JwtSettings,
    now: i64,
) -> Result<Identity, Invalid> {
    verify_until(peeked, key, settings, now).map(|(id, _)| id)
}

/// [`verify`], with the last second (epoch) the token stays valid at:
/// `exp` plus the leeway.
pub fn verify_until(
    peeked: &Peeked<'_>,
    key: &DecodingKey,
    settings: &JwtSettings,
    now: i64,
) -> Result<(Identity, i64), Invalid> {
    super::ring::install();
    let [header, claims, signature] = peeked.parts;
    // The signature covers the token's own bytes: header '.' claims.
    let signed = &peeked.parts_message(header, claims);
    let signature = signature.trim_end_matches('=');
    match jsonwebtoken::crypto::verify(signature, signed.as_bytes(), key, peeked.alg) {
        Ok(true) => {}
        _ => return Err(Invalid::Signature),
    }
    let claims = object(claims)?;
    let exp = check_claims(&claims, settings, now)?;
    #[allow(clippy::cast_possible_truncation)]
    let until = (exp + settings.leeway.as_secs_f64())
        .floor()
        .min(i64::MAX as f64) as i64;
    identity(&claims, settings).map(|id| (id, until))
}

impl Peeked<'_> {
    fn parts_message(&self, header: &str, claims: &str) -> String {
        let mut m = String::with_capacity(header.len() + claims.len() + 1);
        m.push_str(header);
        m.push('.');
        m.push_str(claims);
        m
    }
}

/// A NumericDate (RFC 7519 §2): a JSON number, never a string.
fn time(claims: &Map<String, Value>, name: &str) -> Result<Option<f64>, Invalid> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => n.as_f64().map(Some).ok_or(Invalid::Claims),
        Some(_) => Err(Invalid::Claims),
    }
}

/// Checks the registered claims; the token's `exp`.
fn check_claims(
    claims: &Map<String, Value>,
    settings: &JwtSettings,
    now: i64,
) -> Result<f64, Invalid> {
    #[allow(clippy::cast_precision_loss)]
    let now = now as f64;
    let leeway = settings.leeway.as_secs_f64();
    // `exp` is required: a token that never expires is not one an auth
    // layer hands out.
    let exp = time(claims, "exp")?.ok_or(Invalid::Claims)?;
    if now > exp + leeway {
        return Err(Invalid::Expired);
    }
    if let Some(nbf) = time(claims, "nbf")?
        && now + leeway < nbf
    {
        return Err(Invalid::NotYetValid);
    }
    if let Some(iat) = time(claims, "iat")?
        && now + leeway < iat
    {
        return Err(Invalid::NotYetValid);
    }
    if let Some(want) = &settings.issuer
        && claims.get("iss").and_then(Value::as_str) != Some(want.as_str())
    {
        return Err(Invalid::Issuer);
    }
    if !settings.audiences.is_empty() {
        let named = |a: &str| settings.audiences.iter().any(|w| w == a);
        let ok = match claims.get("aud") {
            Some(Value::String(a)) => named(a),
            Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).any(named),
            _ => false,
        };
        if !ok {
            return Err(Invalid::Audience);
        }
    }
    Ok(exp)
}

/// Strings, and lists of strings; numbers and booleans as text.
fn texts(v: &Value) -> Vec<Box<str>> {
    let one = |v: &Value| -> Option<Box<str>> {
        let s = match v {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            _ => return None,
        };
        (s.len() <= MAX_CLAIM_VALUE).then(|| s.into())
    };
    match v {
        Value::Array(list) => list.iter().filter_map(one).take(MAX_GROUPS).collect(),
        other => one(other).into_iter().collect(),
    }
}

fn identity(claims: &Map<String, Value>, settings: &JwtSettings) -> Result<Identity, Invalid> {
    let subject = match claims.get(&settings.subject_claim) {
        Some(Value::String(s)) if !s.is_empty() && s.len() <= MAX_CLAIM_VALUE => s.as_str(),
        _ => return Err(Invalid::Claims),
    };
    // One bare address, or the token is not one to believe (a list or a
    // display name would be read as something else by someone).
    let email = match claims.get(&settings.email_claim) {
        None => None,
        Some(Value::String(e)) if e.len() <= MAX_CLAIM_VALUE && is_address(e) => {
            Some(fold_email(e))
        }
        Some(_) => return Err(Invalid::Claims),
    };
    // An address the provider says it has not verified names nobody
    // (OpenID Connect Core §5.1 `email_verified`).
    // A boolean, or the token is not believed ("False", 0, null: fourth
    // red-team review).
    let verified = match claims.get("email_verified") {
        None | Some(Value::Bool(true)) => true,
        Some(Value::Bool(false)) => false,
        Some(_) => return Err(Invalid::Claims),
    };
    let email = email.filter(|_| verified);
    // Groups: a string, or a list of strings; anything else is not a
    // groups claim to believe.
    let groups = match claims.get(&settings.groups_claim) {
        None => Vec::new(),
        Some(Value::String(g)) if g.len() <= MAX_CLAIM_VALUE => vec![g.as_str().into()],
        Some(Value::Array(list))
            if list.len() <= MAX_GROUPS
                && list
                    .iter()
                    .all(|g| g.as_str().is_some_and(|s| s.len() <= MAX_CLAIM_VALUE)) =>
        {
            list.iter()
                .filter_map(Value::as_str)
                .map(Into::into)
                .collect()
        }
        Some(_) => return Err(Invalid::Claims),
    };
    let kept = |k: &String| {
        !matches!(k.as_str(), "exp" | "nbf" | "iat" | "jti")
            && *k != settings.groups_claim
            && *k != settings.email_claim
    };
    let others = claims
        .iter()
        .filter(|(k, _)| kept(k))
        .take(MAX_CLAIMS)
        .map(|(k, v)| (k.as_str().into(), texts(v)))
        .collect();
    Ok(Identity {
        subject: subject.into(),
        email,
        groups,
        claims: others,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::identity::{Keys, Preset};
    use ring::rand::SystemRandom;
    use ring::signature::{self as sig, EcdsaKeyPair, KeyPair};

    fn settings() -> JwtSettings {
        JwtSettings {
            preset: Preset::Oidc,
            issuer: Some("https://idp.test".into()),
            audiences: vec!["console".into()],
            signer: None,
            header: http::header::AUTHORIZATION,
            bearer: true,
            algorithms: vec![Algorithm::ES256],
            keys: Keys::Jwks("https://idp.test/keys".into()),
            leeway: std::time::Duration::from_secs(30),
            refresh: defaults::REFRESH,
            refetch_interval: defaults::REFETCH_INTERVAL,
            timeout: defaults::TIMEOUT,
            ca_file: None,
            allow_http: false,
            subject_claim: "sub".into(),
            email_claim: "email".into(),
            groups_claim: "groups".into(),
        }
    }

    struct Signer {
        pair: EcdsaKeyPair,
    }

    impl Signer {
        fn new() -> Self {
            let rng = SystemRandom::new();
            let pkcs8 = EcdsaKeyPair::generate_pkcs8(&sig::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                .expect("key");
            let pair = EcdsaKeyPair::from_pkcs8(
                &sig::ECDSA_P256_SHA256_FIXED_SIGNING,
                pkcs8.as_ref(),
                &rng,
            )
            .expect("pair");
            Self { pair }
        }

        fn key(&self) -> DecodingKey {
            let point = self.pair.public_key().as_ref();
            let e = base64::engine::general_purpose::URL_SAFE_NO_PAD;
            DecodingKey::from_ec_components(&e.encode(&point[1..33]), &e.encode(&point[33..]))
                .expect("key")
        }

        fn token(&self, header: &str, claims: &str) -> String {
            let e = base64::engine::general_purpose::URL_SAFE_NO_PAD;
            let signed = format!("{}.{}", e.encode(header), e.encode(claims));
            let s = self
                .pair
                .sign(&SystemRandom::new(), signed.as_bytes())
                .expect("sign");
            format!("{signed}.{}", e.encode(s.as_ref()))
        }
    }

    const NOW: i64 = 1_800_000_000;

    fn claims(extra: &str) -> String {
        format!(
            r#"{{"iss":"https://idp.test","aud":"console","sub":"u-1","email":"Yamada@Example.JP","groups":["admins"],"exp":{},"iat":{}{extra}}}"#,
            NOW + 300,
            NOW - 10
        )
    }

    fn check(signer: &Signer, token: &str) -> Result<Identity, Invalid> {
        let s = settings();
        let p = peek(token, &s)?;
        verify(&p, &signer.key(), &s, NOW)
    }

    const ES256: &str = r#"{"alg":"ES256","kid":"k1"}"#;

    #[test]
    fn a_good_token_gives_its_identity() {
        let s = Signer::new();
        let id = check(&s, &s.token(ES256, &claims(r#","department":"it""#))).expect("valid");
        assert_eq!(&*id.subject, "u-1");
        assert_eq!(id.email.as_deref(), Some("yamada@example.jp"));
        assert_eq!(id.groups, vec![Box::<str>::from("admins")]);
        assert!(
            id.claims
                .iter()
                .any(|(k, v)| &**k == "department" && v[0].as_ref() == "it")
        );
    }

    #[test]
    fn each_wrong_claim_says_why() {
        let s = Signer::new();
        let t = |c: String| check(&s, &s.token(ES256, &c));
        let base = claims("");
        assert_eq!(
            t(base.replace(&format!("{}", NOW + 300), &format!("{}", NOW - 60))),
            Err(Invalid::Expired)
        );
        // Within the leeway: still valid.
        assert!(t(base.replace(&format!("{}", NOW + 300), &format!("{}", NOW - 20))).is_ok());
        assert_eq!(
            t(claims(&format!(r#","nbf":{}"#, NOW + 600))),
            Err(Invalid::NotYetValid)
        );
        assert_eq!(
            t(base.replace("https://idp.test", "https://evil.test")),
            Err(Invalid::Issuer)
        );
        assert_eq!(
            t(base.replace(r#""aud":"console""#, r#""aud":["other"]"#)),
            Err(Invalid::Audience)
        );
        assert!(t(base.replace(r#""aud":"console""#, r#""aud":["other","console"]"#)).is_ok());
        // A string where a number belongs is invalid, not absent.
        assert_eq!(t(claims(r#","nbf":"99999999999""#)), Err(Invalid::Claims));
        assert_eq!(
            t(base.replace(&format!(r#""exp":{}"#, NOW + 300), r#""exp":"never""#)),
            Err(Invalid::Claims)
        );
        assert_eq!(
            t(base.replace(&format!(r#","exp":{}"#, NOW + 300), "")),
            Err(Invalid::Claims)
        );
    }

    #[test]
    fn emails_and_groups_are_believed_only_as_one_address_and_strings() {
        let s = Signer::new();
        let t = |extra: &str, base: String| check(&s, &s.token(ES256, &base.replace("}", extra)));
        // An address its provider has not verified names nobody.
        let id = t(r#","email_verified":false}"#, claims("")).expect("valid");
        assert_eq!(id.email, None);
        // Anything but a boolean is not believed (fourth review).
        for odd in [r#""False""#, "0", "null", r#""""#, "[false]"] {
            assert_eq!(
                t(&format!(r#","email_verified":{odd}}}"#), claims("")),
                Err(Invalid::Claims),
                "{odd}"
            );
        }
        let list = claims("").replace("Yamada@Example.JP", "kato@contractor.example,x@example.jp");
        assert_eq!(t("}", list), Err(Invalid::Claims));
        let display = claims("").replace("Yamada@Example.JP", "Y <yamada@example.jp>");
        assert_eq!(t("}", display), Err(Invalid::Claims));
        let groups = claims("").replace(r#"["admins"]"#, r#"[1,"admins"]"#);
        assert_eq!(t("}", groups), Err(Invalid::Claims));
    }

    #[test]
    fn algorithm_confusion_and_none_are_refused() {
        let s = Signer::new();
        let good = s.token(ES256, &claims(""));
        let e = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let body = good.split('.').nth(1).expect("claims");
        // alg: none, no signature.
        let none = format!("{}.{body}.", e.encode(r#"{"alg":"none"}"#));
        assert_eq!(check(&s, &none), Err(Invalid::Algorithm));
        // HS256 "signed" with the public key as the secret.
        let hs = format!(
            "{}.{body}.{}",
            e.encode(r#"{"alg":"HS256","kid":"k1"}"#),
            e.encode("x")
        );
        assert_eq!(check(&s, &hs), Err(Invalid::Algorithm));
        // An allowed algorithm with a key of another family: refused by the
        // provider, never verified as something else.
        let mut rs = settings();
        rs.algorithms.push(Algorithm::RS256);
        let t = format!(
            "{}.{body}.{}",
            e.encode(r#"{"alg":"RS256"}"#),
            e.encode("x")
        );
        let p = peek(&t, &rs).expect("peek");
        assert_eq!(verify(&p, &s.key(), &rs, NOW), Err(Invalid::Signature));
    }

    #[test]
    fn a_changed_byte_or_another_key_fails_the_signature() {
        let s = Signer::new();
        let good = s.token(ES256, &claims(""));
        let e = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let forged_claims = e.encode(claims("").replace("u-1", "u-2"));
        let mut parts: Vec<&str> = good.split('.').collect();
        parts[1] = &forged_claims;
        assert_eq!(check(&s, &parts.join(".")), Err(Invalid::Signature));
        let other = Signer::new();
        let settings = settings();
        let p = peek(&good, &settings).expect("peek");
        assert_eq!(
            verify(&p, &other.key(), &settings, NOW),
            Err(Invalid::Signature)
        );
    }

    #[test]
    fn malformed_oversized_and_critical_tokens_are_refused() {
        let s = Signer::new();
        assert_eq!(check(&s, "a.b"), Err(Invalid::Malformed));
        assert_eq!(check(&s, "a.b.c.d"), Err(Invalid::Malformed));
        assert_eq!(check(&s, "!!.??.xx"), Err(Invalid::Malformed));
        let crit = s.token(r#"{"alg":"ES256","crit":["exp"],"exp":1}"#, &claims(""));
        assert_eq!(check(&s, &crit), Err(Invalid::Malformed));
        let big = "a".repeat(defaults::MAX_TOKEN + 1);
        assert_eq!(token(big.as_bytes(), false), Err(Invalid::Oversized));
        assert_eq!(token(b"Bearer abc", true), Ok("abc"));
        assert_eq!(token(b"bearer  abc ", true), Ok("abc"));
        assert_eq!(token(b"Basic abc", true), Err(Invalid::Malformed));
    }

    #[test]
    fn an_alb_token_names_its_signer_and_may_be_padded() {
        let s = Signer::new();
        let mut alb = settings();
        alb.signer =
            Some("arn:aws:elasticloadbalancing:ap-northeast-1:1:loadbalancer/app/c/1".into());
        alb.audiences.clear();
        let header = format!(
            r#"{{"alg":"ES256","kid":"k1","signer":"{}"}}"#,
            alb.signer.as_deref().unwrap_or_default()
        );
        // ALB pads each part with '=', and signs the padded parts.
        let e = base64::engine::general_purpose::URL_SAFE;
        let signed = format!("{}.{}", e.encode(&header), e.encode(claims("")));
        let sig = s
            .pair
            .sign(&SystemRandom::new(), signed.as_bytes())
            .expect("sign");
        let padded = format!("{signed}.{}", e.encode(sig.as_ref()));
        assert!(padded.contains('='), "the test token is padded");
        let p = peek(&padded, &alb).expect("peek");
        assert!(verify(&p, &s.key(), &alb, NOW).is_ok());
        let other = s.token(
            r#"{"alg":"ES256","kid":"k1","signer":"arn:other"}"#,
            &claims(""),
        );
        assert_eq!(peek(&other, &alb).err(), Some(Invalid::Signer));
    }
}
