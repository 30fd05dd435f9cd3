//! The integration tests, one module per area, built as one test binary.
//!
//! Each module starts the real `netwarden` binary (or a real server) on
//! loopback. They are modules of one crate rather than one crate each so
//! that netwarden and its dependencies are linked once, not once per area:
//! with the lighter debug info, `target/` after a CI run went from about
//! 9.3 GB to under 1 GB, and the run from 8-10 to under 5 minutes.
//! Run one area with `cargo test --test integration proxy::`.

mod support;

mod account_rules;
mod accounts;
mod alert_channels;
mod alerts;
mod architecture;
mod cli;
mod console_room;
mod consoles;
mod dashboard;
mod demo;
mod diff;
mod differential;
mod dns;
mod feeds;
mod geo_fixtures;
mod geoip;
mod identity;
mod lockout;
mod log_recipes;
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
