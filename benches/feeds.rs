//! Published lists at their real sizes: reading iCloud Private Relay's
//! egress list (287,000 CSV rows) and AWS's `ip-ranges.json` (9,000 IPv4
//! and 3,000 IPv6 prefixes), compiling a policy whose network holds each,
//! and deciding against it. Before criterion runs, the heap each compile
//! peaks at and keeps is printed (a counting allocator).
//!
//! Run: `cargo bench --bench feeds`. Figures go in docs/benchmarks.md.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::net::IpAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use criterion::{Criterion, criterion_group, criterion_main};
use netwarden::engine::{ClientSource, RequestFacts, decide};
use netwarden::lists::format::{Column, Csv, Filter, Json};
use netwarden::lists::{Format, parse};
use netwarden::policy;

#[path = "../testdata/feeds/generate.rs"]
mod generate;

/// The system allocator, counting the bytes live and their peak.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwards to the system allocator with the caller's layout.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn mib(n: usize) -> f64 {
    n as f64 / (1024.0 * 1024.0)
}

/// A policy whose network `listed` takes its addresses from `snapshot`
/// (read as `format_yaml`), in `dir`.
fn policy_with(dir: &Path, name: &str, format_yaml: &str, body: &str) -> std::path::PathBuf {
    std::fs::write(dir.join(format!("{name}.list")), body).expect("snapshot");
    let text = format!(
        "version: 1\nfeeds: {{ state_dir: state-{name} }}\nnetworks:\n  listed:\n    feed: {{ url: \"https://lists.example/{name}\", {format_yaml}, snapshot: {name}.list }}\nrules:\n  - {{ name: console, allow_from: [listed] }}\n"
    );
    let path = dir.join(format!("{name}.yaml"));
    std::fs::write(&path, text).expect("policy");
    path
}

fn heap_of_load(path: &Path) -> policy::Loaded {
    let before = LIVE.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    let loaded = policy::load(path).expect("valid policy");
    let peak = PEAK.load(Ordering::Relaxed) - before;
    let kept = LIVE.load(Ordering::Relaxed) - before;
    eprintln!(
        "{}: compile peaks at {:.1} MiB of heap and keeps {:.1} MiB",
        path.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default(),
        mib(peak),
        mib(kept)
    );
    loaded
}

fn benches(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let icloud = generate::icloud_csv(287_000);
    let aws = generate::aws_json(9_000, 3_000);
    let icloud_format = Format::Csv(Csv {
        column: Column::Index(1),
        header: false,
        filters: Vec::new(),
    });
    let aws_format = Format::Json(Json {
        items: vec![vec!["prefixes".into()], vec!["ipv6_prefixes".into()]],
        fields: vec!["ip_prefix".into(), "ipv6_prefix".into()],
        filters: vec![Filter {
            key: "service".into(),
            values: vec!["AMAZON".into(), "EC2".into(), "CLOUDFRONT".into()],
        }],
        lines: false,
    });

    let icloud_policy = policy_with(dir.path(), "icloud", "format: csv", &icloud);
    let aws_policy = policy_with(
        dir.path(),
        "aws",
        "format: json, items: [prefixes, ipv6_prefixes], field: [ip_prefix, ipv6_prefix]",
        &aws,
    );
    let icloud_loaded = heap_of_load(&icloud_policy);
    let aws_loaded = heap_of_load(&aws_policy);

    let mut g = c.benchmark_group("feed");
    g.sample_size(10);
    g.bench_function("parse_icloud_287k_csv", |b| {
        b.iter(|| parse(&icloud_format, black_box(icloud.as_bytes())).expect("parses"))
    });
    g.bench_function("parse_aws_12k_json", |b| {
        b.iter(|| parse(&aws_format, black_box(aws.as_bytes())).expect("parses"))
    });
    g.bench_function("load_policy_icloud_287k", |b| {
        b.iter(|| policy::load(black_box(&icloud_policy)).expect("valid"))
    });
    g.bench_function("load_policy_aws_12k", |b| {
        b.iter(|| policy::load(black_box(&aws_policy)).expect("valid"))
    });
    g.finish();

    let mut g = c.benchmark_group("decide_with_feed");
    let ips: Vec<IpAddr> = [
        "172.224.0.17",
        "104.28.1.33",
        "2a02:26f7:0:1::9",
        "198.51.100.7",
        "3.0.4.9",
    ]
    .iter()
    .map(|s| s.parse().expect("ip"))
    .collect();
    for (name, loaded) in [("icloud_287k", &icloud_loaded), ("aws_12k", &aws_loaded)] {
        let p = loaded.policy.ruleset();
        let mut i = 0usize;
        g.bench_function(name, |b| {
            b.iter(|| {
                i = (i + 1) % ips.len();
                let facts = RequestFacts {
                    client: ClientSource::Given(ips[i]),
                    method: "GET",
                    host: Ok(Some("console.example.com")),
                    path: "/orders/12345",
                    now: jiff::Timestamp::UNIX_EPOCH,
                    account: netwarden::engine::AccountFact::Unread,
                    identity: netwarden::engine::who::IdentityFact::Missing,
                };
                black_box(decide(p, black_box(&facts)).action)
            })
        });
    }
    g.finish();
}

criterion_group!(feed_benches, benches);
criterion_main!(feed_benches);
