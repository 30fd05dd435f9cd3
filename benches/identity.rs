//! What a verified identity costs a request: reading a token's header, and
//! checking an RS256 (Cloudflare Access) or ES256 (Google IAP, AWS ALB)
//! token's signature and claims with a key already fetched.
//!
//! Run: `cargo bench --bench identity` (needs `openssl` for the RSA key,
//! as the tests do). Figures go in docs/benchmarks.md.

// The tests' signing keys: made here, as there.
#[path = "../tests/support/jwt.rs"]
#[allow(dead_code)]
mod jwt_keys;

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use jwt_keys::Key;
use netwarden::identity::{jwt, keys::KeySet};
use netwarden::policy::identity::{JwtSettings, Keys, Preset, defaults};

const NOW: i64 = 1_800_000_000;

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

fn bench(c: &mut Criterion) {
    let claims = format!(
        r#"{{"iss":"https://idp.test","aud":"console","sub":"u-1","email":"yamada@example.jp","groups":["admins","ops"],"iat":{},"exp":{}}}"#,
        NOW - 10,
        NOW + 300
    );
    let mut g = c.benchmark_group("identity");
    for (name, alg, key) in [
        ("es256", jsonwebtoken::Algorithm::ES256, Key::ec("e")),
        ("rs256", jsonwebtoken::Algorithm::RS256, Key::rsa("r")),
    ] {
        let s = settings(alg);
        let set = KeySet::from_jwks(jwt_keys::jwks(&[&key]).as_bytes()).expect("jwks");
        let token = key.sign(&claims, "");
        let peeked = jwt::peek(&token, &s).expect("peek");
        let k = set.find(peeked.kid.as_deref(), peeked.alg).expect("key");
        assert!(jwt::verify(&peeked, k, &s, NOW).is_ok());
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
