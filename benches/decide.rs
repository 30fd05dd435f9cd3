//! Decision and load speed on a large generated policy: 100,000 IPv4 and
//! 20,000 IPv6 prefixes in seven networks, and 50 rules.
//!
//! Run: `cargo bench --bench decide`. Figures go in docs/benchmarks.md.

use std::hint::black_box;
use std::net::IpAddr;
use std::path::Path;

use criterion::{Criterion, criterion_group, criterion_main};
use netwarden::engine::{ClientSource, RequestFacts, decide};
use netwarden::policy;

/// A small deterministic generator (xorshift64*), so that every run
/// benchmarks the same policy.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

const V4_SETS: usize = 5;
const V4_PER_SET: usize = 20_000;
const V6_SETS: usize = 2;
const V6_PER_SET: usize = 10_000;
const RULES: usize = 50;

fn generate(rng: &mut Rng) -> String {
    let mut y = String::from("version: 1\nnetworks:\n");
    for s in 0..V4_SETS {
        y.push_str(&format!("  v4_{s}:\n"));
        for _ in 0..V4_PER_SET {
            let len = 20 + (rng.next() % 13) as u8;
            let addr = (rng.next() as u32) & (u32::MAX << (32 - len));
            y.push_str(&format!("    - {}/{len}\n", std::net::Ipv4Addr::from(addr)));
        }
    }
    for s in 0..V6_SETS {
        y.push_str(&format!("  v6_{s}:\n"));
        for _ in 0..V6_PER_SET {
            let len = 32 + (rng.next() % 33) as u8;
            let addr = ((u128::from(rng.next()) << 64) | u128::from(rng.next()))
                & (u128::MAX << (128 - len));
            y.push_str(&format!(
                "    - \"{}/{len}\"\n",
                std::net::Ipv6Addr::from(addr)
            ));
        }
    }
    y.push_str("  proxies: [10.0.0.0/8]\n");
    let all: Vec<String> = (0..V4_SETS)
        .map(|s| format!("v4_{s}"))
        .chain((0..V6_SETS).map(|s| format!("v6_{s}")))
        .collect();
    y.push_str(&format!(
        "  everyone_known: {{ include: [{}] }}\n",
        all.join(", ")
    ));
    y.push_str("client_ip: { trusted_proxies: [proxies] }\nrules:\n");
    for r in 0..RULES - 1 {
        let set = &all[r % all.len()];
        match r % 5 {
            0 => y.push_str(&format!(
                "  - {{ name: r{r}, paths: [\"/app{r}/**\"], methods: [POST], login: true, allow_from: [{set}] }}\n"
            )),
            1 => y.push_str(&format!("  - {{ name: r{r}, paths: [\"/api/*/svc{r}\"], deny_from: [{set}] }}\n")),
            2 => y.push_str(&format!("  - {{ name: r{r}, paths: [/static{r}/app.css], action: allow }}\n")),
            _ => y.push_str(&format!("  - {{ name: r{r}, paths: [\"/app{r}/**\"], allow_from: [{set}] }}\n")),
        }
    }
    y.push_str(
        "  - { name: console, paths: [\"/**\"], allow_from: [everyone_known] }\ndefault: deny\n",
    );
    y
}

fn benches(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("big.yaml");
    let text = generate(&mut Rng(0x9e37_79b9_7f4a_7c15));
    std::fs::write(&path, &text).expect("write policy");

    let mut g = c.benchmark_group("load");
    g.sample_size(10);
    g.bench_function("120k_prefixes_50_rules", |b| {
        b.iter(|| policy::load(black_box(Path::new(&path))).expect("generated policy is valid"))
    });
    g.finish();

    let loaded = policy::load(&path).expect("generated policy is valid");
    let p = loaded.policy.ruleset();
    let mut rng = Rng(42);
    let v4: Vec<IpAddr> = (0..1024)
        .map(|_| IpAddr::from((rng.next() as u32).to_be_bytes()))
        .collect();
    let v6: Vec<IpAddr> = (0..1024)
        .map(|_| {
            IpAddr::from(((u128::from(rng.next()) << 64) | u128::from(rng.next())).to_be_bytes())
        })
        .collect();

    let mut g = c.benchmark_group("decide");
    let mut i = 0usize;
    g.bench_function("ipv4_catch_all_after_49_rules", |b| {
        b.iter(|| {
            i = (i + 1) & 1023;
            let facts = RequestFacts {
                client: ClientSource::Given(v4[i]),
                method: "GET",
                host: Ok(Some("console.example.com")),
                path: "/orders/12345/items",
                now: jiff::Timestamp::UNIX_EPOCH,
                account: netwarden::engine::AccountFact::Unread,
                identity: netwarden::engine::who::IdentityFact::Missing,
            };
            black_box(decide(p, black_box(&facts)).action)
        })
    });
    g.bench_function("ipv6_login_rule", |b| {
        b.iter(|| {
            i = (i + 1) & 1023;
            let facts = RequestFacts {
                client: ClientSource::Given(v6[i]),
                method: "POST",
                host: Ok(None),
                path: "/app45/session",
                now: jiff::Timestamp::UNIX_EPOCH,
                account: netwarden::engine::AccountFact::Unread,
                identity: netwarden::engine::who::IdentityFact::Missing,
            };
            black_box(decide(p, black_box(&facts)).action)
        })
    });
    let headers: Vec<Vec<(String, String)>> = (0..1024)
        .map(|k| {
            vec![(
                "x-forwarded-for".to_string(),
                format!("{}, 10.0.0.{}", v4[k], k % 250),
            )]
        })
        .collect();
    g.bench_function("xff_two_hops_catch_all", |b| {
        b.iter(|| {
            i = (i + 1) & 1023;
            let facts = RequestFacts {
                client: ClientSource::Peer {
                    peer: IpAddr::from([10, 1, 2, 3]),
                    headers: &headers[i],
                },
                method: "GET",
                host: Ok(None),
                path: "/orders/12345/items?page=2",
                now: jiff::Timestamp::UNIX_EPOCH,
                account: netwarden::engine::AccountFact::Unread,
                identity: netwarden::engine::who::IdentityFact::Missing,
            };
            black_box(decide(p, black_box(&facts)).action)
        })
    });
    g.bench_function("path_needing_normalization", |b| {
        b.iter(|| {
            i = (i + 1) & 1023;
            let facts = RequestFacts {
                client: ClientSource::Given(v4[i]),
                method: "GET",
                host: Ok(None),
                path: "/static//x/../%61pp/./orders",
                now: jiff::Timestamp::UNIX_EPOCH,
                account: netwarden::engine::AccountFact::Unread,
                identity: netwarden::engine::who::IdentityFact::Missing,
            };
            black_box(decide(p, black_box(&facts)).action)
        })
    });
    g.finish();
}

/// Decisions with GeoIP: one that needs all four databases, and one that
/// needs none with the same databases configured.
fn geo_benches(c: &mut Criterion) {
    let g = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/geo");
    let g = g.display();
    let yaml = format!(
        "version: 1
geoip:
  country: {g}/GeoLite2-Country-Test.mmdb
  asn: {g}/GeoLite2-ASN-Test.mmdb
  connection_type: {g}/GeoIP2-Connection-Type-Test.mmdb
  anonymous_ip: {g}/GeoIP2-Anonymous-IP-Test.mmdb
networks:
  office: [203.0.113.0/24]
  anonymizers: {{ anonymous: [tor_exit_node, public_proxy] }}
  partner: {{ asn: [64999] }}
  home: {{ connection_type: [Satellite] }}
  outside: {{ country: [KP] }}
rules:
  - {{ name: office_only, paths: [\"/office/**\"], allow_from: [office] }}
  - {{ name: no_anonymizers, deny_from: [anonymizers] }}
  - {{ name: console, allow_from: [partner, home, outside] }}
"
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("geo.yaml");
    std::fs::write(&path, yaml).expect("write policy");
    let loaded = policy::load(&path).expect("geo policy is valid");
    let p = loaded.policy.ruleset();
    let mut group = c.benchmark_group("decide_geo");
    // 192.0.2.10 is known to every database but matches no fact test, so
    // each of the four databases is looked up once.
    let all_four = RequestFacts {
        client: ClientSource::Given(IpAddr::from([192, 0, 2, 10])),
        method: "GET",
        host: Ok(None),
        path: "/reports",
        now: jiff::Timestamp::UNIX_EPOCH,
        account: netwarden::engine::AccountFact::Unread,
        identity: netwarden::engine::who::IdentityFact::Missing,
    };
    group.bench_function("all_four_lookups", |b| {
        b.iter(|| black_box(decide(p, black_box(&all_four)).action))
    });
    let none = RequestFacts {
        client: ClientSource::Given(IpAddr::from([203, 0, 113, 10])),
        method: "GET",
        host: Ok(None),
        path: "/office/reports",
        now: jiff::Timestamp::UNIX_EPOCH,
        account: netwarden::engine::AccountFact::Unread,
        identity: netwarden::engine::who::IdentityFact::Missing,
    };
    group.bench_function("no_lookup_needed", |b| {
        b.iter(|| black_box(decide(p, black_box(&none)).action))
    });
    // The same decision with no geoip section at all, for comparison.
    let plain = dir.path().join("plain.yaml");
    std::fs::write(
        &plain,
        "version: 1\nnetworks:\n  office: [203.0.113.0/24]\nrules:\n  - { name: office_only, paths: [\"/office/**\"], allow_from: [office] }\n",
    )
    .expect("write policy");
    let plain = policy::load(&plain).expect("plain policy is valid");
    group.bench_function("same_without_geoip", |b| {
        b.iter(|| black_box(decide(plain.policy.ruleset(), black_box(&none)).action))
    });
    group.finish();
}

criterion_group!(decide_benches, benches, geo_benches);
criterion_main!(decide_benches);
