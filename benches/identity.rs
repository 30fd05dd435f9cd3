//! What a verified identity costs a request: reading a token's header, and
//! checking an RS256 (Cloudflare Access) or ES256 (Google IAP, AWS ALB)
//! token's signature and claims with a key already fetched.
//!
//! Run: `cargo bench --bench identity` (needs `openssl` for the RSA key,
//! as the tests do). Figures go in docs/benchmarks.md.

use std::hint::black_box;
use std::time::Duration;

use base64::Engine as _;
use criterion::{Criterion, criterion_group, criterion_main};
use netwarden::identity::{jwt, keys::KeySet};
use netwarden::policy::identity::{JwtSettings, Keys, Preset, defaults};
use ring::rand::SystemRandom;
use ring::signature::{self as sig, EcdsaKeyPair, KeyPair, RsaKeyPair};

const NOW: i64 = 1_800_000_000;

fn b64(b: impl AsRef<[u8]>) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

fn settings(alg: jsonwebtoken::Algorithm) -> JwtSettings {
    JwtSettings {
        preset: Preset::Oidc,
        issuer: Some("https://idp.test".into()),
        audiences: vec!["console".into()],
        signer: None,
        header: http::header::AUTHORIZATION,
        bearer: true,
        algorithms: vec![alg],
        keys: Keys::Jwks("https://idp.test/keys".into()),
        leeway: Duration::from_secs(30),
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

fn claims() -> String {
    format!(
        r#"{{"iss":"https://idp.test","aud":"console","sub":"u-1","email":"yamada@example.jp","groups":["admins","ops"],"iat":{},"exp":{}}}"#,
        NOW - 10,
        NOW + 300
    )
}

fn rsa_pair() -> RsaKeyPair {
    let dir = std::env::temp_dir().join(format!("nw-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let der = dir.join("key.der");
    let pkcs1 = dir.join("key1.der");
    let run = |args: &[&str]| {
        let ok = std::process::Command::new("openssl")
            .args(args)
            .stderr(std::process::Stdio::null())
            .status()
            .expect("openssl")
            .success();
        assert!(ok, "openssl {args:?}");
    };
    let (der_s, pkcs1_s) = (der.display().to_string(), pkcs1.display().to_string());
    run(&[
        "genpkey",
        "-algorithm",
        "RSA",
        "-pkeyopt",
        "rsa_keygen_bits:2048",
        "-outform",
        "DER",
        "-out",
        &der_s,
    ]);
    run(&[
        "rsa",
        "-inform",
        "DER",
        "-outform",
        "DER",
        "-traditional",
        "-in",
        &der_s,
        "-out",
        &pkcs1_s,
    ]);
    let pair = RsaKeyPair::from_der(&std::fs::read(&pkcs1).expect("key")).expect("pair");
    let _ = std::fs::remove_dir_all(&dir);
    pair
}

fn bench(c: &mut Criterion) {
    let rng = SystemRandom::new();
    // ES256.
    let pkcs8 =
        EcdsaKeyPair::generate_pkcs8(&sig::ECDSA_P256_SHA256_FIXED_SIGNING, &rng).expect("ec");
    let ec = EcdsaKeyPair::from_pkcs8(&sig::ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
        .expect("ec");
    let p = ec.public_key().as_ref();
    let ec_jwks = format!(
        r#"{{"keys":[{{"kty":"EC","crv":"P-256","kid":"e","alg":"ES256","x":"{}","y":"{}"}}]}}"#,
        b64(&p[1..33]),
        b64(&p[33..])
    );
    let signed = format!("{}.{}", b64(r#"{"alg":"ES256","kid":"e"}"#), b64(claims()));
    let es_token = format!(
        "{signed}.{}",
        b64(ec.sign(&rng, signed.as_bytes()).expect("sign"))
    );
    // RS256.
    let rsa = rsa_pair();
    let public = sig::RsaPublicKeyComponents::<Vec<u8>>::from(rsa.public());
    let rs_jwks = format!(
        r#"{{"keys":[{{"kty":"RSA","kid":"r","alg":"RS256","n":"{}","e":"{}"}}]}}"#,
        b64(&public.n),
        b64(&public.e)
    );
    let signed = format!("{}.{}", b64(r#"{"alg":"RS256","kid":"r"}"#), b64(claims()));
    let mut out = vec![0; rsa.public().modulus_len()];
    rsa.sign(&sig::RSA_PKCS1_SHA256, &rng, signed.as_bytes(), &mut out)
        .expect("sign");
    let rs_token = format!("{signed}.{}", b64(out));

    let mut g = c.benchmark_group("identity");
    for (name, alg, jwks, token) in [
        ("es256", jsonwebtoken::Algorithm::ES256, ec_jwks, es_token),
        ("rs256", jsonwebtoken::Algorithm::RS256, rs_jwks, rs_token),
    ] {
        let s = settings(alg);
        let set = KeySet::from_jwks(jwks.as_bytes()).expect("jwks");
        let peeked = jwt::peek(&token, &s).expect("peek");
        let key = set.find(peeked.kid.as_deref(), peeked.alg).expect("key");
        assert!(jwt::verify(&peeked, key, &s, NOW).is_ok());
        g.bench_function(format!("{name}_verify"), |b| {
            b.iter(|| {
                let p = jwt::peek(black_box(&token), &s).expect("peek");
                let k = set.find(p.kid.as_deref(), p.alg).expect("key");
                black_box(jwt::verify(&p, k, &s, NOW).is_ok())
            });
        });
        g.bench_function(format!("{name}_header_only"), |b| {
            b.iter(|| black_box(jwt::peek(black_box(&token), &s).is_ok()));
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
