//! A network's `dns_names:` and the top-level `dns:` section, compiled.
//! Like a feed, the compiler never resolves: each name's last answer is a
//! copy in `feeds.state_dir` (or, being tried, in the overlay), one a name;
//! `dns_snapshot:` stands in for them where `check` and tests have none.
//! An answer older than `dns.max_age` (every lookup since failed) holds no
//! address: a branch office whose name cannot be confirmed is not let in on
//! a days-old address that may belong to someone else by now.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;

use super::compile::Cx;
use super::feeds::{Origin, Used};
use super::raw::{RawDns, S};
use crate::engine::ruleset::Published;
use crate::lists::Copy;

pub mod defaults {
    use std::time::Duration;
    /// A record's TTL is followed, but not below this: a TTL of 0 or 1 s
    /// (dynamic DNS services use 60 s) must not turn into a query storm.
    pub const MIN_TTL: Duration = Duration::from_secs(30);
    /// Nor above this: a name that moves is seen within the hour whatever
    /// its TTL says.
    pub const MAX_TTL: Duration = Duration::from_secs(3600);
    /// A day of failed lookups: past it, the last answer holds no address.
    pub const MAX_AGE: Duration = Duration::from_secs(86_400);
    /// NXDOMAIN (or no A and AAAA records) for this long empties the name:
    /// a zone being re-published does not lock a branch out for a moment.
    pub const NXDOMAIN_GRACE: Duration = Duration::from_secs(600);
    /// One lookup, all servers and retries included.
    pub const TIMEOUT: Duration = Duration::from_secs(5);
}

/// The `dns:` section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DnsSettings {
    /// Servers to ask; empty: the system's (`/etc/resolv.conf`).
    pub servers: Vec<SocketAddr>,
    pub min_ttl: Duration,
    pub max_ttl: Duration,
    pub max_age: Duration,
    pub nxdomain_grace: Duration,
    pub timeout: Duration,
    /// Accept only answers DNSSEC proves (RFC 4033), validated from the root
    /// trust anchor; an unsigned or bogus answer is a failed lookup.
    pub dnssec: bool,
}

impl Default for DnsSettings {
    fn default() -> Self {
        Self {
            servers: Vec::new(),
            min_ttl: defaults::MIN_TTL,
            max_ttl: defaults::MAX_TTL,
            max_age: defaults::MAX_AGE,
            nxdomain_grace: defaults::NXDOMAIN_GRACE,
            timeout: defaults::TIMEOUT,
            dnssec: false,
        }
    }
}

/// One name of a network's `dns_names:`, and the answer this policy holds.
#[derive(Clone, Debug, PartialEq)]
pub struct DnsName {
    pub network: String,
    /// Lower case, without a trailing dot.
    pub name: String,
    /// Its last answer in `state_dir`.
    pub copy_path: PathBuf,
    pub used: Used,
}

impl Cx<'_, '_> {
    /// `dns:`.
    pub(super) fn dns_section(&mut self, raw: Option<&S<RawDns>>) -> DnsSettings {
        let Some(raw) = raw else {
            return DnsSettings::default();
        };
        let r = &raw.value;
        let mut servers = Vec::new();
        for s in &r.servers {
            let text = s.value.trim();
            let parsed = text.parse::<SocketAddr>().ok().or_else(|| {
                text.parse::<std::net::IpAddr>()
                    .ok()
                    .map(|ip| SocketAddr::new(ip, 53))
            });
            match parsed {
                Some(a) => servers.push(a),
                None => self.error(
                    &s.referenced,
                    format!("dns server '{text}' is not an address"),
                    Some("write an IP address, with a port if not 53: 192.0.2.53, [2001:db8::53]:5353".into()),
                ),
            }
        }
        let min_ttl = self.duration(r.min_ttl.as_ref(), defaults::MIN_TTL);
        if let Some(m) = &r.min_ttl
            && min_ttl < Duration::from_secs(1)
        {
            self.error(
                &m.referenced,
                "dns.min_ttl is shorter than 1s".into(),
                Some("a name is looked up at most once a second whatever its TTL; 30s is the default".into()),
            );
        }
        let max_ttl = self.duration(r.max_ttl.as_ref(), defaults::MAX_TTL);
        if min_ttl > max_ttl
            && let Some(m) = &r.min_ttl
        {
            self.error(
                &m.referenced,
                "dns.min_ttl is longer than dns.max_ttl".into(),
                Some("a record's TTL is clamped to [min_ttl, max_ttl]".into()),
            );
        }
        let max_age = self.duration(r.max_age.as_ref(), defaults::MAX_AGE);
        if max_age <= max_ttl
            && let Some(m) = &r.max_age
        {
            self.error(
                    &m.referenced,
                    "dns.max_age is not longer than dns.max_ttl".into(),
                    Some("max_age is how long a name's last answer is kept while lookups fail; make it several times max_ttl".into()),
                );
        }
        DnsSettings {
            servers,
            min_ttl,
            max_ttl,
            max_age,
            nxdomain_grace: self.duration(r.nxdomain_grace.as_ref(), defaults::NXDOMAIN_GRACE),
            timeout: self.duration(r.timeout.as_ref(), defaults::TIMEOUT),
            dnssec: r.dnssec.as_ref().is_some_and(|d| d.value),
        }
    }

    /// A network's `dns_names:`: the addresses their answers hold, each
    /// until it is older than `dns.max_age` (or, from a snapshot, for good);
    /// `None` when there is no answer (an error was reported).
    pub(super) fn dns_names(
        &mut self,
        network: &str,
        names: &[S<String>],
        snapshot: Option<&S<String>>,
        state_dir: Option<&Path>,
    ) -> Option<(Vec<IpNet>, Vec<Published>)> {
        let Some(state_dir) = state_dir else {
            if let Some(first) = names.first() {
                self.error(
                    &first.referenced,
                    format!("network '{network}': dns_names need feeds.state_dir"),
                    Some("add feeds: { state_dir: /var/lib/netwarden/feeds }: each name's last answer is kept there, so that a restart with the resolver down starts from it".into()),
                );
            }
            return None;
        };
        let mut checked: Vec<String> = Vec::with_capacity(names.len());
        for n in names {
            match hostname(&n.value) {
                Ok(name) if checked.contains(&name) => self.error(
                    &n.referenced,
                    format!("network '{network}': {name} is named twice"),
                    Some("names compare without case and trailing dot; remove the second".into()),
                ),
                Ok(name) => checked.push(name),
                Err(why) => self.error(
                    &n.referenced,
                    format!("network '{network}': '{}' {why}", n.value),
                    Some("write a DNS name such as osaka.branch.example.jp; dns_names take names, cidrs take addresses".into()),
                ),
            }
        }
        if checked.len() != names.len() {
            return None;
        }
        let max_age = self.dns.max_age;
        let mut out = Vec::new();
        let mut unanswered = Vec::new();
        let mut found = Vec::new();
        for name in checked {
            let copy_path =
                crate::lists::copy::path_for(state_dir, network, &format!("dns {name}"));
            let copy = match self.overlay.get(&copy_path) {
                Some(c) => Some(c.clone()),
                None => match Copy::read(&copy_path) {
                    Ok(c) => c,
                    Err(e) => {
                        self.error(
                            &names[0].referenced,
                            format!("network '{network}': the last answer for {name}: {e}"),
                            Some(
                                "remove the file: netwarden resolves the name again at startup"
                                    .into(),
                            ),
                        );
                        return None;
                    }
                },
            };
            match copy {
                Some(c) => found.push((name, copy_path, c)),
                None => unanswered.push((name, copy_path)),
            }
        }
        if !unanswered.is_empty() {
            return self
                .dns_from_snapshot(network, names, snapshot, unanswered, found)
                .map(|l| (l, Vec::new()));
        }
        for (name, copy_path, c) in found {
            let age = Duration::try_from(self.now.duration_since(c.fetched_at)).unwrap_or_default();
            let stale = c.fetched_at < self.now && age > max_age;
            if stale {
                self.warn(
                    &names[0].referenced,
                    format!(
                        "network '{network}': {name} has not been confirmed for {}, longer than dns.max_age: it holds no address until a lookup succeeds",
                        super::feeds::age_words(self.now.duration_since(c.fetched_at))
                    ),
                    Some("check that the name still resolves from here (dig NAME), and the dns: servers".into()),
                );
            } else {
                // It stops matching by itself when its answer goes stale.
                let until = jiff::SignedDuration::try_from(max_age)
                    .ok()
                    .and_then(|d| c.fetched_at.checked_add(d).ok())
                    .unwrap_or(c.fetched_at);
                self.digest.update(until.to_string().as_bytes());
                out.push(Published {
                    ranges: crate::engine::prefix::RangeSet::from_nets(&c.prefixes),
                    until,
                });
            }
            self.digest.update(b"dns ");
            self.digest.update(copy_path.as_os_str().as_encoded_bytes());
            if !stale {
                for p in &c.prefixes {
                    self.digest.update(p.to_string().as_bytes());
                    self.digest.update(b"\n");
                }
            }
            self.dns_names.push(DnsName {
                network: network.to_string(),
                name,
                used: Used {
                    origin: Origin::Copy,
                    path: copy_path.clone(),
                    fetched_at: c.fetched_at,
                    changed_at: c.changed_at,
                    prefixes: if stale { 0 } else { c.prefixes.len() },
                    generation: c.generation,
                    stale,
                },
                copy_path,
            });
        }
        Some((Vec::new(), out))
    }

    /// Some names have no answer in `state_dir`: the network's
    /// `dns_snapshot:` stands in for all of them (check, explain, tests), or
    /// it is an error (and `serve` resolves them before its first compile).
    fn dns_from_snapshot(
        &mut self,
        network: &str,
        names: &[S<String>],
        snapshot: Option<&S<String>>,
        unanswered: Vec<(String, PathBuf)>,
        found: Vec<(String, PathBuf, Copy)>,
    ) -> Option<Vec<IpNet>> {
        if self.probe {
            for (name, copy_path) in unanswered
                .into_iter()
                .chain(found.into_iter().map(|(n, p, _)| (n, p)))
            {
                self.missing_dns.push(DnsName {
                    network: network.to_string(),
                    name,
                    used: Used {
                        origin: Origin::Copy,
                        path: copy_path.clone(),
                        fetched_at: self.now,
                        changed_at: self.now,
                        prefixes: 0,
                        generation: 0,
                        stale: false,
                    },
                    copy_path,
                });
            }
            return None;
        }
        let Some(snapshot) = snapshot else {
            let list: Vec<&str> = unanswered.iter().map(|(n, _)| n.as_str()).collect();
            self.error(
                &names[0].referenced,
                format!(
                    "network '{network}': no answer yet for {} in feeds.state_dir",
                    list.join(", ")
                ),
                Some("`netwarden serve` resolves the names at startup and fails closed when it cannot; for check, explain and tests without a network, name a dns_snapshot: file of addresses".into()),
            );
            return None;
        };
        let path = self.base.join(&snapshot.value);
        self.sources.push(path.clone());
        let bytes = match crate::files::read(&path, crate::files::MAX_TEXT_BYTES) {
            Ok(b) => b,
            Err(e) => {
                self.error(
                    &snapshot.referenced,
                    format!(
                        "network '{network}': cannot read dns_snapshot '{}': {e}",
                        path.display()
                    ),
                    Some("paths are relative to the policy file's directory".into()),
                );
                return None;
            }
        };
        let parsed = match crate::lists::parse(&crate::lists::Format::Lines, &bytes) {
            Ok(p) => p,
            Err(e) => {
                self.error(
                    &snapshot.referenced,
                    format!(
                        "network '{network}': dns_snapshot '{}': {e}",
                        path.display()
                    ),
                    Some("one address a line, # comments".into()),
                );
                return None;
            }
        };
        let modified = std::fs::metadata(&path)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| jiff::Timestamp::try_from(t).ok())
            .unwrap_or(self.now);
        for (name, copy_path) in unanswered
            .into_iter()
            .chain(found.into_iter().map(|(n, p, _)| (n, p)))
        {
            self.dns_names.push(DnsName {
                network: network.to_string(),
                name,
                copy_path,
                used: Used {
                    origin: Origin::Snapshot,
                    path: path.clone(),
                    fetched_at: modified,
                    changed_at: modified,
                    prefixes: parsed.prefixes.len(),
                    generation: 0,
                    stale: false,
                },
            });
        }
        Some(parsed.prefixes)
    }
}

/// One line on a name's answer: `dns 'osaka.branch.example.jp' (network
/// osaka): 1 addresses from the last answer state/osaka.1a2b3c4d.json,
/// confirmed 2026-12-07T10:00:00Z (2 min ago)`.
pub fn describe(n: &DnsName, now: jiff::Timestamp) -> String {
    format!(
        "dns '{}' (network {}): {} addresses from {} {}, confirmed {} ({} ago){}",
        n.name,
        n.network,
        n.used.prefixes,
        match n.used.origin {
            Origin::Copy => "the last answer",
            Origin::Snapshot => "the snapshot",
        },
        n.used.path.display(),
        n.used.fetched_at,
        super::feeds::age_words(now.duration_since(n.used.fetched_at)),
        if n.used.stale {
            ", older than dns.max_age: it holds no address"
        } else {
            ""
        }
    )
}

/// The answer a name holds, as `explain --json` shows it.
pub fn to_json(n: &DnsName, now: jiff::Timestamp) -> serde_json::Value {
    serde_json::json!({
        "network": n.network,
        "name": n.name,
        "source": n.used.origin.as_str(),
        "file": n.used.path.display().to_string(),
        "confirmed_at": n.used.fetched_at.to_string(),
        "age_seconds": now.duration_since(n.used.fetched_at).as_secs().max(0),
        "addresses": n.used.prefixes,
        "stale": n.used.stale,
    })
}

/// A DNS name as `dns_names:` takes it (RFC 1123 §2.1 host names): lower
/// case, no trailing dot, labels of letters, digits and `-` (and `_`, which
/// real zones use), 1 to 63 bytes each, 253 in all.
pub fn hostname(text: &str) -> Result<String, &'static str> {
    let name = text.trim().trim_end_matches('.').to_ascii_lowercase();
    if name.is_empty() || name.len() > 253 {
        return Err("is not a DNS name (empty, or longer than 253 bytes)");
    }
    if name.parse::<std::net::IpAddr>().is_ok() || name.contains('/') {
        return Err("is an address, not a DNS name");
    }
    if name == "localhost" || name.ends_with(".localhost") {
        // RFC 6761 §6.3: resolvers answer it themselves, never a server.
        return Err("is the machine itself (RFC 6761), never looked up");
    }
    for label in name.split('.') {
        let ok = !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !ok {
            return Err("is not a DNS name (each label: letters, digits and '-', 1 to 63 of them)");
        }
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_names_are_checked_and_lowered() {
        assert_eq!(
            hostname("Osaka.Branch.Example.JP."),
            Ok("osaka.branch.example.jp".into())
        );
        assert!(hostname("192.0.2.1").is_err());
        assert!(hostname("10.0.0.0/8").is_err());
        assert!(hostname("a..b").is_err());
        assert!(hostname("-a.example").is_err());
        assert!(hostname(&format!("{}.example", "x".repeat(64))).is_err());
        assert!(hostname("exa mple.jp").is_err());
        assert!(hostname("_dmarc.example.jp").is_ok());
        assert!(hostname("localhost").is_err());
        assert!(hostname("x.LOCALHOST.").is_err());
    }
}
