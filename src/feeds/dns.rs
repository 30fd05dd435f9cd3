//! Resolving a network's `dns_names:`: one lookup of A and AAAA (through
//! the servers `dns:` names, or the system's), with its TTL; and what it
//! means for the name's last answer ([`step`], pure).

use std::net::IpAddr;
use std::time::{Duration, Instant};

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{
    ConnectionConfig, LookupIpStrategy, NameServerConfig, ResolveHosts, ResolverConfig,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use ipnet::IpNet;

use crate::lists::{Change, Copy};
use crate::policy::dns::DnsSettings;

/// What one lookup of a name found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// Its addresses, and how long the answer may be kept (the TTL).
    Found {
        addresses: Vec<IpAddr>,
        ttl: Duration,
    },
    /// NXDOMAIN, or a name with no A and no AAAA record.
    NoAddress,
    /// No usable answer: `code` is `timeout`, `dnssec` or `lookup`.
    Failed { code: &'static str, detail: String },
}

/// Looks `name` up once, within `settings.timeout`.
pub async fn resolve(settings: &DnsSettings, name: &str) -> Lookup {
    let resolver = match resolver(settings) {
        Ok(r) => r,
        Err(detail) => {
            return Lookup::Failed {
                code: "lookup",
                detail,
            };
        }
    };
    // Fully qualified: no search domain is tried (RFC 1034 §3.1).
    let fqdn = format!("{name}.");
    let started = Instant::now();
    let answer = match tokio::time::timeout(settings.timeout, resolver.lookup_ip(fqdn)).await {
        Err(_) => {
            return Lookup::Failed {
                code: "timeout",
                detail: format!("no answer within {:?}", settings.timeout),
            };
        }
        Ok(Err(e)) if e.is_nx_domain() || e.is_no_records_found() => return Lookup::NoAddress,
        Ok(Err(e)) => {
            let text = e.to_string();
            let code = if text.contains("DNSSEC") {
                "dnssec"
            } else if text.contains("timed out") || text.contains("timeout") {
                "timeout"
            } else {
                "lookup"
            };
            return Lookup::Failed { code, detail: text };
        }
        Ok(Ok(answer)) => answer,
    };
    if settings.dnssec {
        let proven = answer
            .as_lookup()
            .answers()
            .iter()
            .all(|r| r.proof == hickory_resolver::proto::dnssec::Proof::Secure);
        if !proven {
            return Lookup::Failed {
                code: "dnssec",
                detail: "the answer is not proven by DNSSEC (dns.dnssec is on)".into(),
            };
        }
    }
    let addresses: Vec<IpAddr> = answer.iter().collect();
    if addresses.is_empty() {
        return Lookup::NoAddress;
    }
    let ttl = answer.valid_until().saturating_duration_since(started);
    Lookup::Found { addresses, ttl }
}

fn resolver(settings: &DnsSettings) -> Result<TokioResolver, String> {
    let mut builder = if settings.servers.is_empty() {
        TokioResolver::builder_tokio()
            .map_err(|e| format!("the system's resolver configuration: {e}"))?
    } else {
        let servers = settings
            .servers
            .iter()
            .map(|s| {
                let mut udp = ConnectionConfig::udp();
                udp.port = s.port();
                let mut tcp = ConnectionConfig::tcp();
                tcp.port = s.port();
                NameServerConfig::new(s.ip(), true, vec![udp, tcp])
            })
            .collect();
        TokioResolver::builder_with_config(
            ResolverConfig::from_parts(None, Vec::new(), servers),
            TokioRuntimeProvider::default(),
        )
    };
    let o = builder.options_mut();
    o.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
    o.timeout = settings.timeout;
    o.attempts = 2;
    // Each lookup asks again: the schedule follows the TTL itself.
    o.cache_size = 0;
    o.validate = settings.dnssec;
    if !settings.servers.is_empty() {
        o.use_hosts_file = ResolveHosts::Never;
    }
    builder.build().map_err(|e| e.to_string())
}

/// What one lookup means for a name's last answer.
#[derive(Debug)]
pub enum Step {
    /// The answer in force is confirmed.
    Same(Copy),
    /// A new answer to try, and what it changes.
    New(Copy, Change),
    /// Nothing to apply: the last answer stays (a failed lookup, or
    /// NXDOMAIN within its grace).
    Keep { code: &'static str, detail: String },
}

/// Reads `lookup` against `last` at `now`. `nx_since` is when the name
/// began to have no address (kept by the caller between lookups).
pub fn step(
    name: &str,
    last: Option<&Copy>,
    lookup: Lookup,
    nx_since: &mut Option<jiff::Timestamp>,
    grace: Duration,
    now: jiff::Timestamp,
) -> Step {
    let prefixes = match lookup {
        // A failure after NXDOMAIN does not restart the grace, nor keep the
        // address longer than it (red-team review: a resolver outage after
        // NXDOMAIN kept a deleted name's address for dns.max_age).
        Lookup::Failed { code, detail } => match *nx_since {
            Some(since)
                if Duration::try_from(now.duration_since(since)).unwrap_or_default() >= grace
                    && last.is_some_and(|c| !c.prefixes.is_empty()) =>
            {
                Vec::new()
            }
            _ => return Step::Keep { code, detail },
        },
        Lookup::Found { addresses, .. } => {
            *nx_since = None;
            crate::lists::canonical(
                addresses
                    .into_iter()
                    .map(|ip| IpNet::from(crate::addr::canonical(ip)))
                    .collect(),
            )
        }
        Lookup::NoAddress => {
            let since = *nx_since.get_or_insert(now);
            let waited = Duration::try_from(now.duration_since(since)).unwrap_or_default();
            if waited < grace && last.is_some_and(|c| !c.prefixes.is_empty()) {
                return Step::Keep {
                    code: "nxdomain",
                    detail: format!(
                        "no address (NXDOMAIN or no A/AAAA) since {since}; the last answer stays until dns.nxdomain_grace has passed"
                    ),
                };
            }
            Vec::new()
        }
    };
    match last {
        Some(c) if c.prefixes == prefixes => Step::Same(Copy {
            fetched_at: now,
            no_address_since: *nx_since,
            ..c.clone()
        }),
        _ => {
            let change = crate::lists::judge::diff(
                last.map_or(&[][..], |c| c.prefixes.as_slice()),
                &prefixes,
            );
            Step::New(
                Copy {
                    source: format!("dns {name}"),
                    prefixes,
                    fetched_at: now,
                    changed_at: now,
                    etag: None,
                    last_modified: None,
                    generation: last.map_or(1, |c| c.generation + 1),
                    no_address_since: *nx_since,
                },
                change,
            )
        }
    }
}

/// When to look a name up again: its TTL within `[min_ttl, max_ttl]`
/// after an answer; `min_ttl` while NXDOMAIN's grace runs; backing off
/// (30 s doubling, up to `max_ttl`) after failures.
pub fn next_delay(
    settings: &DnsSettings,
    ttl: Option<Duration>,
    failures: u32,
    jitter: f64,
) -> Duration {
    match ttl {
        Some(ttl) if failures == 0 => ttl.clamp(settings.min_ttl, settings.max_ttl),
        _ if failures == 0 => settings.min_ttl,
        _ => super::next_delay(settings.max_ttl, failures, jitter),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> jiff::Timestamp {
        s.parse().expect("instant")
    }

    fn copy(list: &[&str]) -> Copy {
        Copy {
            source: "dns a.example".into(),
            prefixes: list
                .iter()
                .map(|p| crate::addr::parse_prefix(p).expect("p"))
                .collect(),
            fetched_at: t("2026-12-07T00:00:00Z"),
            changed_at: t("2026-12-07T00:00:00Z"),
            etag: None,
            last_modified: None,
            generation: 2,
            no_address_since: None,
        }
    }

    fn found(ips: &[&str]) -> Lookup {
        Lookup::Found {
            addresses: ips.iter().map(|s| s.parse().expect("ip")).collect(),
            ttl: Duration::from_secs(60),
        }
    }

    #[test]
    fn a_new_address_is_a_change_and_the_same_one_a_confirmation() {
        let last = copy(&["192.0.2.7"]);
        let mut nx = None;
        let now = t("2026-12-07T01:00:00Z");
        match step(
            "a.example",
            Some(&last),
            found(&["192.0.2.7"]),
            &mut nx,
            Duration::from_secs(600),
            now,
        ) {
            Step::Same(c) => assert_eq!(c.fetched_at, now),
            other => panic!("{other:?}"),
        }
        match step(
            "a.example",
            Some(&last),
            found(&["198.51.100.9", "::ffff:192.0.2.7"]),
            &mut nx,
            Duration::from_secs(600),
            now,
        ) {
            Step::New(c, change) => {
                assert_eq!(c.generation, 3);
                // The IPv4-mapped answer is the IPv4 address.
                assert_eq!(change.summary(3), "+1 -0 (+198.51.100.9/32)");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn nxdomain_keeps_the_last_answer_through_its_grace_then_empties_the_name() {
        let last = copy(&["192.0.2.7"]);
        let grace = Duration::from_secs(600);
        let mut nx = None;
        let t0 = t("2026-12-07T01:00:00Z");
        assert!(matches!(
            step(
                "a.example",
                Some(&last),
                Lookup::NoAddress,
                &mut nx,
                grace,
                t0
            ),
            Step::Keep {
                code: "nxdomain",
                ..
            }
        ));
        assert_eq!(nx, Some(t0));
        let later = t("2026-12-07T01:10:00Z");
        match step(
            "a.example",
            Some(&last),
            Lookup::NoAddress,
            &mut nx,
            grace,
            later,
        ) {
            Step::New(c, _) => assert!(c.prefixes.is_empty()),
            other => panic!("{other:?}"),
        }
        // Lookups that fail after NXDOMAIN do not keep it past the grace.
        let mut nx = Some(t0);
        let failed = Lookup::Failed {
            code: "timeout",
            detail: String::new(),
        };
        assert!(matches!(
            step(
                "a.example",
                Some(&last),
                failed.clone(),
                &mut nx,
                grace,
                t("2026-12-07T01:05:00Z")
            ),
            Step::Keep { .. }
        ));
        match step("a.example", Some(&last), failed, &mut nx, grace, later) {
            Step::New(c, _) => assert!(c.prefixes.is_empty()),
            other => panic!("{other:?}"),
        }
        // An answer in between starts the grace again.
        let mut nx = Some(t0);
        let _ = step(
            "a.example",
            Some(&last),
            found(&["192.0.2.7"]),
            &mut nx,
            grace,
            t0,
        );
        assert_eq!(nx, None);
    }

    #[test]
    fn a_failed_lookup_keeps_the_last_answer() {
        let mut nx = None;
        assert!(matches!(
            step(
                "a.example",
                Some(&copy(&["192.0.2.7"])),
                Lookup::Failed {
                    code: "timeout",
                    detail: String::new()
                },
                &mut nx,
                Duration::from_secs(600),
                t("2026-12-07T01:00:00Z"),
            ),
            Step::Keep {
                code: "timeout",
                ..
            }
        ));
    }

    #[test]
    fn lookups_follow_the_ttl_within_its_bounds() {
        let s = DnsSettings::default();
        assert_eq!(
            next_delay(&s, Some(Duration::from_secs(1)), 0, 0.5),
            s.min_ttl
        );
        assert_eq!(
            next_delay(&s, Some(Duration::from_secs(300)), 0, 0.5),
            Duration::from_secs(300)
        );
        assert_eq!(
            next_delay(&s, Some(Duration::from_secs(86_400)), 0, 0.5),
            s.max_ttl
        );
        assert_eq!(next_delay(&s, None, 1, 1.0), Duration::from_secs(30));
    }
}
