//! Signed tokens for the identity tests, with keys made here: ES256 keys
//! by ring, RS256 keys by `openssl genpkey` (ring cannot make RSA keys) and
//! signed by ring. Each key can say itself as a JWK and as a PEM.

use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::{self as sig, EcdsaKeyPair, KeyPair, RsaKeyPair};

fn b64(bytes: impl AsRef<[u8]>) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A signing key with its `kid`.
pub enum Key {
    Ec {
        kid: String,
        pair: EcdsaKeyPair,
    },
    Rsa {
        kid: String,
        pair: RsaKeyPair,
        public_pem: String,
    },
}

impl Key {
    pub fn ec(kid: &str) -> Self {
        let rng = SystemRandom::new();
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&sig::ECDSA_P256_SHA256_FIXED_SIGNING, &rng).expect("ec");
        let pair =
            EcdsaKeyPair::from_pkcs8(&sig::ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
                .expect("ec pair");
        Key::Ec {
            kid: kid.into(),
            pair,
        }
    }

    /// A 2048-bit RSA key made by openssl in a temporary directory.
    pub fn rsa(kid: &str) -> Self {
        let dir = tempfile::tempdir().expect("dir");
        let der = dir.path().join("key.der");
        let pem = dir.path().join("pub.pem");
        let ok = std::process::Command::new("openssl")
            .args([
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
                "-outform",
                "DER",
                "-out",
            ])
            .arg(&der)
            .stderr(std::process::Stdio::null())
            .status()
            .expect("openssl runs (installed by .ci/run)")
            .success();
        assert!(ok, "openssl genpkey");
        let ok = std::process::Command::new("openssl")
            .args(["pkey", "-inform", "DER", "-pubout", "-in"])
            .arg(&der)
            .arg("-out")
            .arg(&pem)
            .status()
            .expect("openssl pkey")
            .success();
        assert!(ok, "openssl pkey -pubout");
        // PKCS#1 (RSAPrivateKey), whatever form genpkey wrote.
        let pkcs1 = dir.path().join("key1.der");
        let ok = std::process::Command::new("openssl")
            .args([
                "rsa",
                "-inform",
                "DER",
                "-outform",
                "DER",
                "-traditional",
                "-in",
            ])
            .arg(&der)
            .arg("-out")
            .arg(&pkcs1)
            .stderr(std::process::Stdio::null())
            .status()
            .expect("openssl rsa")
            .success();
        assert!(ok, "openssl rsa -traditional");
        let pair = RsaKeyPair::from_der(&std::fs::read(&pkcs1).expect("der")).expect("rsa pair");
        Key::Rsa {
            kid: kid.into(),
            pair,
            public_pem: std::fs::read_to_string(&pem).expect("pem"),
        }
    }

    pub fn kid(&self) -> &str {
        match self {
            Key::Ec { kid, .. } | Key::Rsa { kid, .. } => kid,
        }
    }

    /// The public key as a JWK (with `kid`, `alg` and `use`).
    pub fn jwk(&self) -> String {
        match self {
            Key::Ec { kid, pair } => {
                let p = pair.public_key().as_ref();
                format!(
                    r#"{{"kty":"EC","crv":"P-256","kid":"{kid}","alg":"ES256","use":"sig","x":"{}","y":"{}"}}"#,
                    b64(&p[1..33]),
                    b64(&p[33..])
                )
            }
            Key::Rsa { kid, pair, .. } => {
                let public = sig::RsaPublicKeyComponents::<Vec<u8>>::from(pair.public());
                format!(
                    r#"{{"kty":"RSA","kid":"{kid}","alg":"RS256","use":"sig","n":"{}","e":"{}"}}"#,
                    b64(&public.n),
                    b64(&public.e)
                )
            }
        }
    }

    /// The public key as PEM (SubjectPublicKeyInfo), as AWS ALB serves it.
    pub fn pem(&self) -> String {
        match self {
            Key::Ec { pair, .. } => {
                // RFC 5480: id-ecPublicKey with prime256v1, then the point.
                let mut der = hex("3059301306072a8648ce3d020106082a8648ce3d030107034200");
                der.extend_from_slice(pair.public_key().as_ref());
                let body = base64::engine::general_purpose::STANDARD.encode(der);
                format!("-----BEGIN PUBLIC KEY-----\n{body}\n-----END PUBLIC KEY-----\n")
            }
            Key::Rsa { public_pem, .. } => public_pem.clone(),
        }
    }

    /// `header.claims.signature`, the header naming this key's algorithm
    /// and `kid` plus `extra_header` fields.
    pub fn sign(&self, claims: &str, extra_header: &str) -> String {
        let (alg, kid) = match self {
            Key::Ec { kid, .. } => ("ES256", kid),
            Key::Rsa { kid, .. } => ("RS256", kid),
        };
        let header = format!(r#"{{"alg":"{alg}","kid":"{kid}","typ":"JWT"{extra_header}}}"#);
        self.sign_raw(&header, claims)
    }

    /// A token with exactly this header.
    pub fn sign_raw(&self, header: &str, claims: &str) -> String {
        let signed = format!("{}.{}", b64(header), b64(claims));
        let rng = SystemRandom::new();
        let signature = match self {
            Key::Ec { pair, .. } => pair
                .sign(&rng, signed.as_bytes())
                .expect("sign")
                .as_ref()
                .to_vec(),
            Key::Rsa { pair, .. } => {
                let mut out = vec![0; pair.public().modulus_len()];
                pair.sign(&sig::RSA_PKCS1_SHA256, &rng, signed.as_bytes(), &mut out)
                    .expect("sign");
                out
            }
        };
        format!("{signed}.{}", b64(signature))
    }
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

/// A JWKS holding these keys.
pub fn jwks(keys: &[&Key]) -> String {
    let list: Vec<String> = keys.iter().map(|k| k.jwk()).collect();
    format!(r#"{{"keys":[{}]}}"#, list.join(","))
}

/// An unsigned token (`alg: none`) with these claims.
pub fn unsigned(claims: &str) -> String {
    format!("{}.{}.", b64(r#"{"alg":"none","typ":"JWT"}"#), b64(claims))
}

/// An HS256 token whose HMAC key is `secret` (the algorithm-confusion
/// attack: the secret is the issuer's public key, which anyone can read).
pub fn hs256(kid: &str, claims: &str, secret: &[u8]) -> String {
    let signed = format!(
        "{}.{}",
        b64(format!(r#"{{"alg":"HS256","kid":"{kid}","typ":"JWT"}}"#)),
        b64(claims)
    );
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    let tag = ring::hmac::sign(&key, signed.as_bytes());
    format!("{signed}.{}", b64(tag.as_ref()))
}

/// Seconds since the epoch, now.
pub fn now() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("after 1970")
            .as_secs(),
    )
    .expect("fits")
}
