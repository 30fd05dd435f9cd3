//! The integration tests, one module per area, built as one test binary.
//!
//! Each module starts the real `netwarden` binary (or a real server) on
//! loopback. They are modules of one crate rather than one crate each so
//! that netwarden and its dependencies are linked once, not once per area:
//! a tenth of the disk and link time that separate test binaries took.
//! Run one area with `cargo test --test integration proxy::`.

mod support;

mod accounts;
mod alerts;
mod architecture;
mod cli;
mod dashboard;
mod demo;
mod differential;
mod geo_fixtures;
mod geoip;
mod lockout;
mod metrics;
mod operations;
mod pages;
mod policy_cases;
mod proxy;
mod proxy_edge;
mod reload;
mod replay;
mod report;
mod security;
mod shared_state;
mod starvation;
mod upstream_pool;
