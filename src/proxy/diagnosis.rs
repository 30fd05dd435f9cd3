//! Client-address self-diagnosis: the allowlist is only as good as the
//! address it is checked against. Two deployment mistakes make every
//! decision wrong at once, and both show in the traffic:
//!
//! - a load balancer that is not in `client_ip.trusted_proxies` NATs every
//!   client to its own private address (or, behind a trusted proxy, names
//!   itself in the header): nearly every request comes from one or two
//!   private addresses, and the allowlist matches all or nothing;
//! - a trusted proxy that sends no forwarding header: its own address is
//!   taken as the client's.
//!
//! The last `RING` requests (all of them while traffic is light, one in
//! `SAMPLE_EVERY` above that) are kept as (address, how it was found);
//! every `EVALUATE_EVERY` samples the verdict is computed again. A change
//! of verdict is logged (`client_ip_suspect`, `client_ip_ok`), shown by the
//! `netwarden_client_ip_suspect{reason}` gauge and on `/readyz`.

use std::net::IpAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::engine::Reason;
use crate::engine::client::Derivation;
use crate::telemetry::metrics::{Metrics, ReasonLabels};

/// Requests looked at: enough to tell "nearly all" from "many".
const RING: usize = 200;
/// The verdict needs this many samples: a quiet console's first few
/// requests (one admin, one address) say nothing yet.
const MIN_SAMPLES: usize = 50;
const EVALUATE_EVERY: u64 = 25;
/// Every request is sampled up to this many, then one in [`SAMPLE_EVERY`]:
/// the lock is rare under load.
const SAMPLE_ALL: u64 = 1024;
const SAMPLE_EVERY: u64 = 16;
/// "Nearly every request": share of samples, in percent.
const NEARLY_ALL: usize = 90;

/// How a sampled request's client was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// The TCP peer (not a trusted proxy), or the entry of a forwarding
    /// header that trusted proxies named: the address that was decided on.
    Direct,
    /// A trusted proxy without a forwarding header.
    TrustedNoHeader,
    /// Anything else (a header, given, unknown).
    Other,
}

/// What is wrong, if anything.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Fine,
    /// Nearly every request comes directly from these private addresses.
    OnePrivateAddress(Vec<IpAddr>),
    /// Nearly every request from trusted proxies lacks the header.
    NoForwardingHeader(IpAddr),
}

impl Verdict {
    fn reason(&self) -> Option<&'static str> {
        match self {
            Verdict::Fine => None,
            Verdict::OnePrivateAddress(_) => Some("one_private_address"),
            Verdict::NoForwardingHeader(_) => Some("no_forwarding_header"),
        }
    }

    /// Words for logs and `/readyz`.
    pub fn words(&self) -> Option<String> {
        match self {
            Verdict::Fine => None,
            Verdict::OnePrivateAddress(a) => {
                let list = a
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(" or ");
                Some(format!(
                    "every client looks like {list}; is a load balancer in front that should be in client_ip.trusted_proxies?"
                ))
            }
            Verdict::NoForwardingHeader(p) => Some(format!(
                "trusted proxy {p} sends no forwarding header, so its own address is taken as the client's; check its X-Forwarded-For (or Forwarded) setting, or client_ip.header"
            )),
        }
    }
}

#[derive(Default)]
struct Ring {
    /// (client, how it was found, whether a network allowed it).
    items: Vec<(IpAddr, Kind, bool)>,
    next: usize,
    added: u64,
}

pub struct ClientIpWatch {
    seen: AtomicU64,
    ring: Mutex<Ring>,
    verdict: Mutex<Verdict>,
}

impl Default for ClientIpWatch {
    fn default() -> Self {
        Self {
            seen: AtomicU64::new(0),
            ring: Mutex::new(Ring::default()),
            verdict: Mutex::new(Verdict::Fine),
        }
    }
}

/// RFC 1918, RFC 6598 (carrier-grade NAT), loopback, link-local, and IPv6
/// unique-local: the addresses a NAT in front of netwarden shows.
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || (o[0] == 100 && (o[1] & 0xc0) == 64)
        }
        IpAddr::V6(v6) => {
            v6.is_loopback()
                || (v6.segments()[0] & 0xfe00) == 0xfc00
                || (v6.segments()[0] & 0xffc0) == 0xfe80
        }
    }
}

/// The verdict on a window of samples: on the allowed ones when there are
/// enough (an outsider cannot add to those, so cannot quiet a true alarm
/// by sending denied requests), else on all. Pure.
fn judge_ring(items: &[(IpAddr, Kind, bool)]) -> Verdict {
    let allowed: Vec<(IpAddr, Kind)> = items
        .iter()
        .filter(|(_, _, a)| *a)
        .map(|(ip, k, _)| (*ip, *k))
        .collect();
    if allowed.len() >= MIN_SAMPLES {
        return judge(&allowed);
    }
    let all: Vec<(IpAddr, Kind)> = items.iter().map(|(ip, k, _)| (*ip, *k)).collect();
    judge(&all)
}

/// The verdict on a window of samples. Pure.
fn judge(items: &[(IpAddr, Kind)]) -> Verdict {
    if items.len() < MIN_SAMPLES {
        return Verdict::Fine;
    }
    let nearly_all = |n: usize| n * 100 >= items.len() * NEARLY_ALL;
    // Trusted proxies that send no header.
    let no_header: Vec<IpAddr> = items
        .iter()
        .filter(|(_, k)| *k == Kind::TrustedNoHeader)
        .map(|(ip, _)| *ip)
        .collect();
    if nearly_all(no_header.len()) {
        return Verdict::NoForwardingHeader(top(&no_header, 1)[0].0);
    }
    let direct: Vec<IpAddr> = items
        .iter()
        .filter(|(_, k)| *k == Kind::Direct)
        .map(|(ip, _)| *ip)
        .collect();
    // The fewest leading addresses (one, else two) that cover nearly all.
    let leaders = top(&direct, 2);
    for k in 1..=leaders.len() {
        let covered: usize = leaders[..k].iter().map(|(_, n)| n).sum();
        if nearly_all(covered) {
            return if leaders[..k].iter().all(|(ip, _)| is_private(*ip)) {
                Verdict::OnePrivateAddress(leaders[..k].iter().map(|(ip, _)| *ip).collect())
            } else {
                Verdict::Fine
            };
        }
    }
    Verdict::Fine
}

/// The `k` most frequent addresses, most frequent first (ties by address).
fn top(ips: &[IpAddr], k: usize) -> Vec<(IpAddr, usize)> {
    let mut counts: Vec<(IpAddr, usize)> = Vec::new();
    for ip in ips {
        match counts.iter_mut().find(|(x, _)| x == ip) {
            Some((_, n)) => *n += 1,
            // A window of RING samples: at most RING distinct addresses.
            None => counts.push((*ip, 1)),
        }
    }
    counts.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    counts.truncate(k);
    counts
}

impl ClientIpWatch {
    /// One request's client: its address, how it was found, and whether a
    /// network decided it. Requests that a rule decides for every client
    /// (`action: allow` on `/healthz`, a load balancer's own checks) are
    /// not looked at: their address did not matter.
    pub fn observe(
        &self,
        ip: Option<IpAddr>,
        derivation: &Derivation,
        reason: Reason,
        metrics: &Metrics,
    ) {
        if !matches!(
            reason,
            Reason::InAllowedNetwork
                | Reason::NotInAllowedNetworks
                | Reason::InDeniedNetwork
                | Reason::ClientUnknown
        ) {
            return;
        }
        let n = self.seen.fetch_add(1, Ordering::Relaxed);
        if n >= SAMPLE_ALL && !n.is_multiple_of(SAMPLE_EVERY) {
            return;
        }
        let (Some(ip), kind) = (
            ip,
            match derivation {
                Derivation::Peer | Derivation::Header { .. } => Kind::Direct,
                Derivation::TrustedPeerNoHeader => Kind::TrustedNoHeader,
                _ => Kind::Other,
            },
        ) else {
            return;
        };
        let verdict = {
            let Ok(mut ring) = self.ring.lock() else {
                return;
            };
            let allowed = reason == Reason::InAllowedNetwork;
            if ring.items.len() < RING {
                ring.items.push((ip, kind, allowed));
            } else {
                let i = ring.next;
                ring.items[i] = (ip, kind, allowed);
            }
            ring.next = (ring.next + 1) % RING;
            ring.added += 1;
            if ring.added % EVALUATE_EVERY != 0 {
                return;
            }
            judge_ring(&ring.items)
        };
        let Ok(mut current) = self.verdict.lock() else {
            return;
        };
        if *current == verdict {
            return;
        }
        if let Some(reason) = current.reason() {
            metrics
                .client_ip_suspect
                .get_or_create(&ReasonLabels { reason })
                .set(0);
        }
        match (verdict.reason(), verdict.words()) {
            (Some(reason), Some(words)) => {
                metrics
                    .client_ip_suspect
                    .get_or_create(&ReasonLabels { reason })
                    .set(1);
                tracing::warn!(event = "client_ip_suspect", reason, "{words}");
            }
            _ => tracing::info!(event = "client_ip_ok", "client addresses look right again"),
        }
        *current = verdict;
    }

    /// The reason code while something looks wrong (`/readyz` shows only
    /// this: the address is for the log and `GET /policy`'s readers).
    pub fn suspect(&self) -> Option<&'static str> {
        self.verdict.lock().ok().and_then(|v| v.reason())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    fn many(list: &[(&str, Kind, usize)]) -> Vec<(IpAddr, Kind)> {
        list.iter()
            .flat_map(|(a, k, n)| std::iter::repeat_n((ip(a), *k), *n))
            .collect()
    }

    #[test]
    fn the_verdicts_on_typical_traffic() {
        // A NAT in front: one address (a few public clients beside it).
        assert_eq!(
            judge(&many(&[
                ("10.0.0.5", Kind::Direct, 190),
                ("203.0.113.9", Kind::Direct, 10)
            ])),
            Verdict::OnePrivateAddress(vec![ip("10.0.0.5")])
        );
        // Two NAT nodes.
        assert_eq!(
            judge(&many(&[
                ("10.0.0.5", Kind::Direct, 100),
                ("10.0.0.6", Kind::Direct, 95),
                ("198.51.100.1", Kind::Direct, 5)
            ])),
            Verdict::OnePrivateAddress(vec![ip("10.0.0.5"), ip("10.0.0.6")])
        );
        // Many public clients, or a private office of many.
        let spread: Vec<(IpAddr, Kind)> = (0..200u32)
            .map(|i| {
                (
                    IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0100 + i % 40)),
                    Kind::Direct,
                )
            })
            .collect();
        assert_eq!(judge(&spread), Verdict::Fine);
        assert_eq!(
            judge(&many(&[("203.0.113.9", Kind::Direct, 200)])),
            Verdict::Fine
        );
        // Behind a trusted proxy that does its job.
        assert_eq!(
            judge(&many(&[("10.0.0.5", Kind::Other, 200)])),
            Verdict::Fine
        );
        // A trusted proxy without the header.
        assert_eq!(
            judge(&many(&[
                ("10.0.0.9", Kind::TrustedNoHeader, 195),
                ("10.0.0.9", Kind::Other, 5)
            ])),
            Verdict::NoForwardingHeader(ip("10.0.0.9"))
        );
        // Too few requests to say.
        assert_eq!(
            judge(&many(&[("10.0.0.5", Kind::Direct, 20)])),
            Verdict::Fine
        );
    }

    #[test]
    fn denied_requests_cannot_dilute_what_allowed_ones_show() {
        let mut items: Vec<(IpAddr, Kind, bool)> =
            std::iter::repeat_n((ip("10.0.0.5"), Kind::Direct, true), 60).collect();
        items.extend((0..140u32).map(|i| {
            (
                IpAddr::from(std::net::Ipv4Addr::from(0xcb00_7100 + i)),
                Kind::Direct,
                false,
            )
        }));
        assert_eq!(
            judge_ring(&items),
            Verdict::OnePrivateAddress(vec![ip("10.0.0.5")])
        );
    }

    #[test]
    fn private_means_what_a_nat_shows() {
        for a in [
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "100.64.0.1",
            "127.0.0.1",
            "fd00::1",
            "fe80::1",
            "::1",
        ] {
            assert!(is_private(ip(a)), "{a}");
        }
        for a in ["203.0.113.9", "100.128.0.1", "2001:db8::1", "8.8.8.8"] {
            assert!(!is_private(ip(a)), "{a}");
        }
    }
}
