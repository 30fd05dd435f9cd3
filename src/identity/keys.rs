//! Verification keys as the auth layer publishes them: a JWKS (RFC 7517;
//! Cloudflare Access, Google IAP, any OIDC provider), or one PEM public key
//! per `kid` (AWS ALB). Pure: bytes in, keys or why not out.

use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};

/// The most keys kept: providers publish two or three (the current and
/// the next); a set of thousands is not a key set.
pub const MAX_KEYS: usize = 64;
/// Keys tried for one token: a signature check each.
pub const MAX_CANDIDATES: usize = 3;

/// One public key.
#[derive(Clone, Debug)]
pub struct Key {
    pub kid: Option<String>,
    /// The `alg` the publisher bound the key to, if it did.
    pub alg: Option<Algorithm>,
    pub key: DecodingKey,
}

/// The keys tokens are checked against.
#[derive(Clone, Debug, Default)]
pub struct KeySet {
    pub keys: Vec<Key>,
}

impl KeySet {
    /// A JWKS document. Keys that cannot verify a signature here are
    /// skipped (symmetric `oct` keys, encryption keys, unknown types); a
    /// set with none left is an error.
    pub fn from_jwks(bytes: &[u8]) -> Result<KeySet, String> {
        let doc: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| format!("not a JWKS: {e}"))?;
        let list = doc
            .get("keys")
            .and_then(serde_json::Value::as_array)
            .ok_or("not a JWKS: no \"keys\" list")?;
        let mut keys = Vec::new();
        for k in list.iter().take(MAX_KEYS * 4) {
            let Ok(jwk) = serde_json::from_value::<Jwk>(k.clone()) else {
                continue;
            };
            if let Some(key) = public_key(&jwk) {
                keys.push(key);
            }
            if keys.len() == MAX_KEYS {
                break;
            }
        }
        if keys.is_empty() {
            return Err("the JWKS holds no public signing key".into());
        }
        Ok(KeySet { keys })
    }

    /// The key for a token with this `kid` and `alg`: the one with that
    /// `kid`; without a `kid`, the only key there is. A key bound to
    /// another algorithm is no key for this token.
    pub fn find(&self, kid: Option<&str>, alg: Algorithm) -> Option<&DecodingKey> {
        self.candidates(kid, alg).next()
    }

    /// Every key a token with this `kid` and `alg` may be signed with: a
    /// set that names one `kid` twice (a provider mid-rotation; second
    /// red-team review) offers each, at most [`MAX_CANDIDATES`].
    pub fn candidates(
        &self,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> impl Iterator<Item = &DecodingKey> {
        let only = self.keys.len() == 1;
        self.keys
            .iter()
            .filter(move |k| match kid {
                Some(kid) => k.kid.as_deref() == Some(kid),
                None => only,
            })
            .filter(move |k| k.alg.is_none_or(|a| a == alg) && k.key.family() == alg.family())
            .take(MAX_CANDIDATES)
            .map(|k| &k.key)
    }

    /// Adds (or replaces) `key`, keeping at most [`MAX_KEYS`]: the oldest
    /// goes first.
    pub fn add(&mut self, key: Key) {
        self.keys.retain(|k| k.kid != key.kid);
        if self.keys.len() >= MAX_KEYS {
            self.keys.remove(0);
        }
        self.keys.push(key);
    }
}

fn public_key(jwk: &Jwk) -> Option<Key> {
    if matches!(
        jwk.common.public_key_use,
        Some(PublicKeyUse::Encryption | PublicKeyUse::Other(_))
    ) {
        return None;
    }
    // RFC 7517 §4.3: a key whose operations are listed is for those only.
    if jwk
        .common
        .key_operations
        .as_ref()
        .is_some_and(|ops| !ops.contains(&jsonwebtoken::jwk::KeyOperations::Verify))
    {
        return None;
    }
    let usable = matches!(
        jwk.algorithm,
        AlgorithmParameters::RSA(_)
            | AlgorithmParameters::EllipticCurve(_)
            | AlgorithmParameters::OctetKeyPair(_)
    );
    if !usable {
        return None;
    }
    let alg = match &jwk.common.key_algorithm {
        None => None,
        Some(a) => Some(a.to_string().parse::<Algorithm>().ok()?),
    };
    let key = DecodingKey::from_jwk(jwk).ok()?;
    Some(Key {
        kid: jwk.common.key_id.clone(),
        alg,
        key,
    })
}

/// An AWS ALB key: a PEM EC public key, for the `kid` it was fetched for.
pub fn from_pem(kid: &str, pem: &[u8]) -> Result<Key, String> {
    let key = DecodingKey::from_ec_pem(pem).map_err(|e| format!("not a PEM EC public key: {e}"))?;
    Ok(Key {
        kid: Some(kid.to_string()),
        alg: Some(Algorithm::ES256),
        key,
    })
}

/// Whether a token's `kid` may name a key to fetch: a URL path segment
/// of letters, digits, `-` and `_` (ALB's are UUIDs). Anything else (`/`,
/// `..`, `%2f`, a query) could make the fetch reach another resource.
pub fn kid_is_safe(kid: &str) -> bool {
    (1..=128).contains(&kid.len())
        && kid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_jwks_keeps_signing_keys_and_skips_the_rest() {
        let jwks = br#"{"keys":[
            {"kty":"EC","crv":"P-256","kid":"ec1","alg":"ES256","use":"sig",
             "x":"MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4","y":"4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM"},
            {"kty":"oct","kid":"secret","k":"c2VjcmV0"},
            {"kty":"RSA","kid":"enc","use":"enc","n":"sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw","e":"AQAB"},
            {"kty":"XYZ","kid":"odd"}
        ]}"#;
        let set = KeySet::from_jwks(jwks).expect("a set");
        assert_eq!(set.keys.len(), 1);
        assert!(set.find(Some("ec1"), Algorithm::ES256).is_some());
        // The key is bound to ES256: not a key for RS256 or HS256.
        assert!(set.find(Some("ec1"), Algorithm::RS256).is_none());
        assert!(set.find(Some("ec1"), Algorithm::HS256).is_none());
        assert!(set.find(Some("secret"), Algorithm::HS256).is_none());
        // Without a kid, the only key.
        assert!(set.find(None, Algorithm::ES256).is_some());
    }

    #[test]
    fn a_kid_named_twice_offers_both_keys() {
        let k = r#"{"kty":"EC","crv":"P-256","kid":"k","alg":"ES256","x":"MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4","y":"4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM"}"#;
        let set =
            KeySet::from_jwks(format!(r#"{{"keys":[{k},{k},{k},{k}]}}"#).as_bytes()).expect("set");
        assert_eq!(
            set.candidates(Some("k"), Algorithm::ES256).count(),
            MAX_CANDIDATES
        );
    }

    #[test]
    fn not_a_jwks_is_an_error_never_an_empty_set() {
        assert!(KeySet::from_jwks(b"<html>").is_err());
        assert!(KeySet::from_jwks(br#"{"keys":[]}"#).is_err());
        assert!(KeySet::from_jwks(br#"{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}"#).is_err());
    }

    #[test]
    fn a_kid_that_could_reach_another_resource_is_refused() {
        assert!(kid_is_safe("6b1f3b2a-84d6-4f0e-9c67-3b9c1fbd6d2e"));
        for bad in [
            "",
            "../../etc/passwd",
            "a/b",
            "a%2fb",
            "a?x=1",
            "a.b",
            "a b",
            &"k".repeat(129),
        ] {
            assert!(!kid_is_safe(bad), "{bad}");
        }
    }
}
