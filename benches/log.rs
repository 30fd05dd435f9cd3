//! One request's `decision` log line, as `serve` writes it (`direct`:
//! straight into the batching writer) and as it is written without that
//! writer (`tracing`: the same line through the subscriber and the JSON
//! formatter), into a sink.
//!
//! Run: `cargo bench --bench log`. Figures go in docs/benchmarks.md.

use std::hint::black_box;
use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use netwarden::engine::{ClientSource, RequestFacts, decide};
use netwarden::policy::{self, server::AllowedLogLevel};
use netwarden::telemetry::{self, BoxMakeWriter, LogFormat, RequestLog, writer};

const POLICY: &str = "version: 1
networks:
  office: [127.0.0.1, 203.0.113.0/24]
rules:
  - { name: login, paths: [/login], methods: [POST], login: true, allow_from: [office] }
  - { name: console, paths: [\"/**\"], allow_from: [office] }
";

fn bench(c: &mut Criterion) {
    let policy = policy::load_str(POLICY, Path::new("bench.yaml"))
        .expect("valid policy")
        .policy;
    let headers = http::HeaderMap::new();
    let peer: IpAddr = "203.0.113.7".parse().expect("ip");
    let facts = RequestFacts {
        client: ClientSource::Peer {
            peer,
            headers: &headers,
        },
        method: "GET",
        host: Ok(Some("console.example.com")),
        path: "/customers/1042",
        now: jiff::Timestamp::UNIX_EPOCH,
        account: netwarden::engine::AccountFact::Unread,
        identity: netwarden::engine::who::IdentityFact::Missing,
    };
    let decision = decide(policy.ruleset(), &facts);
    let (w, guard) = writer::batch_writer(Box::new(std::io::sink())).expect("writer thread");
    let subscriber = telemetry::subscriber(LogFormat::Json, BoxMakeWriter::new(w.clone()));
    let r = RequestLog {
        request_id: "5f0c3b6a9d2e4f18",
        peer,
        method: "GET",
        path: "/customers/1042",
        scheme: "https",
        host: "console.example.com",
        version: "1.1",
        user_agent: "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36",
        status: 200,
        duration: Duration::from_micros(1234),
        login_outcome: None,
        login_account: None,
        identity: None,
    };
    c.bench_function("log/decision_line_direct", |b| {
        b.iter(|| {
            telemetry::write_decision(
                black_box(&w),
                black_box(&decision),
                black_box(&r),
                None,
                &decision.explanation(),
            )
        })
    });
    tracing::subscriber::with_default(subscriber, || {
        c.bench_function("log/decision_line_tracing", |b| {
            b.iter(|| {
                telemetry::log_decision(
                    black_box(&decision),
                    black_box(&r),
                    None,
                    AllowedLogLevel::Info,
                )
            })
        });
    });
    drop(guard);
}

criterion_group!(log_benches, bench);
criterion_main!(log_benches);
