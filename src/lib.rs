//! netwarden: a network-aware login guard for admin consoles.
//!
//! A request's life, in the order the code runs it:
//!
//! 1. [`policy`] reads the YAML policy once, compiles it into the
//!    [`engine::ruleset::Ruleset`] the engine reads (networks become merged
//!    address ranges, paths become matchers, rules refer to networks by
//!    index) plus the server's settings, and runs the policy's own tests.
//!    A policy that fails any step is never used: fail closed.
//! 2. [`engine`] decides each request with one pure function,
//!    [`engine::decide`]: it resolves the client address (the TCP peer, or
//!    what trusted proxies' headers say), normalizes the path, and walks the
//!    rules, first match wins, at the instant the request carries ([`clock`]
//!    gives the proxy's; grants and rules with `until:` or `when:` are read
//!    against it). The [`engine::Decision`] it returns carries the action,
//!    the rule, the network, how the client address was derived and why;
//!    everything else (the CLI's `explain`, policy tests, logs) reads that
//!    one value.
//!
//! 3. [`proxy`] puts the engine in front of a console: listeners (TLS,
//!    PROXY protocol), one service whose phases are decide, forward or
//!    answer, log; the admin listener; and the operations around them
//!    (policy reload and its guard, the "why am I blocked?" page, the
//!    client-address self-check, grant expiry).
//! 4. [`telemetry`] writes the one `decision` log line per request, and the
//!    metrics.
//! 5. [`alerts`] turns blocked login attempts into alerts (webhook, Slack,
//!    Alertmanager, mail, Teams, Chatwork, LINE WORKS, PagerDuty),
//!    aggregated, off the request path, each in its sink's language from
//!    the [`words`] table.
//! 6. [`lockout`] counts the sign-ins the console refused (read from its
//!    answer by [`engine::outcome`]) and locks out a client that keeps
//!    guessing.
//! 7. [`feeds`] keeps networks that take their addresses from a published
//!    list current: it fetches the list; [`lists`] reads and judges it
//!    (pure), and the proxy applies it as it applies an edit.
//! 8. [`ops`] is the operator's side: what `netwarden status` shows of a
//!    running guard, from its admin API (lockouts, recent blocked
//!    sign-ins, the last reload) and its policy.
//!
//! The binary (`src/main.rs`) is only the command line around these;
//! [`demo`] runs the guard in front of a small built-in console. Every
//! file an operator names (policy, network lists, template, certificates,
//! GeoIP databases) is read through [`files`]: regular files only, bounded.
//! Imports point down this list and never back (`tests/architecture.rs`):
//! [`addr`], [`files`], [`outbound`] and [`tls`] are the leaves that the
//! engine, alerts and the proxy share.

pub mod addr;
pub mod alerts;
pub mod clock;
pub mod demo;
pub mod diff;
pub mod engine;
pub mod feeds;
pub mod files;
pub mod geo;
pub mod identity;
pub mod lists;
pub mod lockout;
pub mod ops;
pub mod outbound;
pub mod policy;
pub mod proxy;
pub mod replay;
pub mod telemetry;
pub mod tls;
pub mod words;
