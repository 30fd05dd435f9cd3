//! A network's `feed:` (a published list at a URL) and the top-level
//! `feeds:` section, compiled. The compiler never fetches: what a feed holds
//! reaches it as data, the way a `file:` does. In order, the list is: the
//! copy the caller hands in (an update being tried, [`Overlay`]); the last
//! good copy in `feeds.state_dir`; the `snapshot:` file the policy names
//! (for `check` and tests where nothing was ever fetched). None of them:
//! the policy does not load, as with an unreadable `file:` (fail closed).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;
use jiff::Timestamp;

use super::compile::Cx;
use super::raw::{OneOrMany, RawFeed, RawFeedFormat, RawFeeds, RawOnStale, S};
use crate::lists::format::{Column, Csv, Filter, Json};
use crate::lists::{Copy, Format, Limits};

/// Copies to compile with instead of those on disk, by copy file: a
/// fetched list being tried before it becomes the last good one.
pub type Overlay = HashMap<PathBuf, Copy>;

pub mod defaults {
    use std::time::Duration;
    /// Publishers change their lists a few times a day at most; hourly
    /// keeps a new range's wait short without hammering anyone.
    pub const EVERY: Duration = Duration::from_secs(3600);
    /// The least `every` accepted: a feed is not a health check.
    pub const MIN_EVERY: Duration = Duration::from_secs(60);
    /// A week: a publisher down over a long weekend is not yet an alarm
    /// for a list that changes monthly; past it, `on_stale` decides.
    pub const MAX_AGE: Duration = Duration::from_secs(7 * 86_400);
    /// The whole fetch, connect to last byte.
    pub const TIMEOUT: Duration = Duration::from_secs(30);
    /// iCloud Private Relay's list, the largest listed in the docs, is
    /// about 12 MB.
    pub const MAX_BYTES: u64 = 32 * 1024 * 1024;
}

/// `on_stale:`: what a list older than `max_age` does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OnStale {
    /// Keep the last good list, and say so loudly (alert, `/readyz`).
    #[default]
    Keep,
    /// The network holds none of the list's addresses until a fetch
    /// succeeds (an allow list that must not outlive its publisher).
    Empty,
}

impl OnStale {
    pub fn as_str(self) -> &'static str {
        match self {
            OnStale::Keep => "keep",
            OnStale::Empty => "empty",
        }
    }
}

/// A network's published list: where it is, how to read it, what a new
/// one must look like, and what this policy was compiled with.
#[derive(Clone, Debug, PartialEq)]
pub struct Feed {
    pub network: String,
    pub url: String,
    pub format: Format,
    pub every: Duration,
    pub max_age: Duration,
    pub on_stale: OnStale,
    pub timeout: Duration,
    pub max_bytes: u64,
    /// CA certificates (PEM) the publisher's certificate is checked
    /// against instead of the system's roots (an intranet CA).
    pub ca_file: Option<PathBuf>,
    /// `allow_http: true`: plain http (the URL's, or a redirect's) is
    /// accepted.
    pub allow_http: bool,
    pub limits: Limits,
    pub snapshot: Option<PathBuf>,
    /// This feed's last good copy in `state_dir`.
    pub copy_path: PathBuf,
    pub used: Used,
}

/// Where the list a policy was compiled with came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// The last good copy in `state_dir` (or the update being applied).
    Copy,
    /// The policy's `snapshot:` file: nothing was fetched yet.
    Snapshot,
}

impl Origin {
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Copy => "state_dir",
            Origin::Snapshot => "snapshot",
        }
    }
}

/// The list a compiled policy holds for a feed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Used {
    pub origin: Origin,
    /// The file it was read from.
    pub path: PathBuf,
    pub fetched_at: Timestamp,
    pub changed_at: Timestamp,
    pub prefixes: usize,
    pub generation: u64,
    /// Older than `max_age` when compiled.
    pub stale: bool,
}

/// What a policy names that has no list or answer yet.
#[derive(Clone, Debug, Default)]
pub struct Missing {
    pub feeds: Vec<Feed>,
    pub dns: Vec<super::dns::DnsName>,
    /// How to resolve `dns`.
    pub dns_settings: super::dns::DnsSettings,
}

/// The feeds and DNS names of the policy at `path` that have no list or
/// answer yet: what `serve` fetches and resolves before its first compile.
/// Empty when the policy cannot be read.
pub fn missing(path: &Path) -> Missing {
    match crate::files::read_to_string(path, super::MAX_POLICY_BYTES) {
        Ok(text) => super::compile::feeds_missing(&text, path, crate::clock::now()),
        Err(_) => Missing::default(),
    }
}

impl Feed {
    /// The stable name of what this feed fetches: its URL and how it is
    /// read. Another URL or format never starts from this one's copy.
    fn identity(url: &str, format: &Format) -> String {
        format!("{url} {format:?}")
    }
}

impl Cx<'_, '_> {
    /// `feeds:`: the directory of last good copies.
    pub(super) fn feeds_section(&mut self, raw: Option<&S<RawFeeds>>) -> Option<PathBuf> {
        let dir = raw?.value.state_dir.as_ref()?;
        if dir.value.trim().is_empty() {
            self.error(
                &dir.referenced,
                "feeds.state_dir is empty".into(),
                Some(
                    "name a directory netwarden may write, such as /var/lib/netwarden/feeds".into(),
                ),
            );
            return None;
        }
        Some(self.base.join(&dir.value))
    }

    /// A network's `feed:`: its settings and the list it holds now; the
    /// prefixes are `None` when there is no list (an error was reported).
    pub(super) fn feed(
        &mut self,
        network: &str,
        raw: &S<RawFeed>,
        state_dir: Option<&Path>,
    ) -> Option<(Feed, Vec<IpNet>, Option<Timestamp>)> {
        let f = &raw.value;
        let errors_before = self.c.diagnostics.iter().filter(|d| d.is_error()).count();
        let url = self.feed_url(network, f);
        let format = self.feed_format(network, f);
        let every = self.duration(f.every.as_ref(), defaults::EVERY);
        if let Some(e) = &f.every
            && every < defaults::MIN_EVERY
        {
            self.error(
                &e.referenced,
                format!("network '{network}': feed every: is shorter than 1m"),
                Some("fetch a list at most once a minute; 1h is the default".into()),
            );
        }
        let max_age = self.duration(f.max_age.as_ref(), defaults::MAX_AGE);
        if let Some(a) = &f.max_age
            && max_age <= every
        {
            self.error(
                    &a.referenced,
                    format!("network '{network}': feed max_age is not longer than every"),
                    Some("max_age is how long a list may go without a successful fetch; make it several times every".into()),
                );
        }
        let timeout = self.duration(f.timeout.as_ref(), defaults::TIMEOUT);
        let max_bytes = f.max_bytes.as_ref().map_or(defaults::MAX_BYTES, |m| {
            if m.value == 0 {
                self.error(
                    &m.referenced,
                    format!("network '{network}': feed max_bytes is 0"),
                    Some(
                        "the largest answer accepted, in bytes; 33554432 (32 MiB) is the default"
                            .into(),
                    ),
                );
            }
            m.value
        });
        let limits = self.feed_limits(network, f);
        let on_stale = match f.on_stale.as_ref().map(|s| s.value) {
            Some(RawOnStale::Empty) => OnStale::Empty,
            _ => OnStale::Keep,
        };
        let Some(state_dir) = state_dir else {
            self.error(
                &raw.referenced,
                format!("network '{network}': a feed needs feeds.state_dir"),
                Some("add feeds: { state_dir: /var/lib/netwarden/feeds }: the last good copy of each list is kept there, so that a restart with the publisher down starts from it".into()),
            );
            return None;
        };
        let errors_now = self.c.diagnostics.iter().filter(|d| d.is_error()).count();
        let (Some(url), Some(format)) = (url, format) else {
            return None;
        };
        if errors_now > errors_before {
            return None;
        }
        let copy_path =
            crate::lists::copy::path_for(state_dir, network, &Feed::identity(&url, &format));
        let snapshot = f.snapshot.as_ref().map(|s| self.base.join(&s.value));
        let allow_http = f.allow_http.as_ref().is_some_and(|a| a.value);
        let ca_file = f.ca_file.as_ref().map(|p| self.base.join(&p.value));
        if self.probe {
            let has_list = self.overlay.contains_key(&copy_path)
                || std::fs::symlink_metadata(&copy_path).is_ok();
            if !has_list {
                self.missing.push(Feed {
                    network: network.to_string(),
                    url,
                    format,
                    every,
                    max_age,
                    on_stale,
                    timeout,
                    max_bytes,
                    ca_file,
                    allow_http,
                    limits,
                    snapshot,
                    copy_path: copy_path.clone(),
                    used: Used {
                        origin: Origin::Copy,
                        path: copy_path,
                        fetched_at: self.now,
                        changed_at: self.now,
                        prefixes: 0,
                        generation: 0,
                        stale: false,
                    },
                });
                return None;
            }
        }
        let (list, used) =
            self.feed_list(network, raw, &format, &copy_path, snapshot.as_deref())?;
        let stale = used.fetched_at < self.now
            && Duration::try_from(self.now.duration_since(used.fetched_at)).unwrap_or_default()
                > max_age;
        let used = Used { stale, ..used };
        // The bounds hold for the list in force too, not only for the next
        // one: tightening widest or public, or a snapshot, is checked here.
        if let Err(r) = crate::lists::judge::within(&list, &limits) {
            self.error(
                &raw.referenced,
                format!(
                    "network '{network}': the list in force ({}) breaks this feed's bounds: {r}",
                    used.path.display()
                ),
                Some("loosen the bound, or remove the copy so that a list within the bounds is fetched".into()),
            );
            return None;
        }
        // With on_stale: empty, a fetched list stops matching by itself
        // when it goes stale (checked per request); a snapshot never does.
        let until = (on_stale == OnStale::Empty && used.origin == Origin::Copy && !stale)
            .then(|| {
                jiff::SignedDuration::try_from(max_age)
                    .ok()
                    .and_then(|d| used.fetched_at.checked_add(d).ok())
            })
            .flatten();
        let prefixes = if stale {
            let age = age_words(self.now.duration_since(used.fetched_at));
            self.warn(
                &raw.referenced,
                format!(
                    "network '{network}': its feed's list is {age} old, older than max_age; on_stale: {}",
                    on_stale.as_str()
                ),
                Some(match on_stale {
                    OnStale::Keep => "the last good list is kept; netwarden fetches it again on its schedule".into(),
                    OnStale::Empty => "the network holds none of the list's addresses until a fetch succeeds".into(),
                }),
            );
            match on_stale {
                OnStale::Keep => list,
                OnStale::Empty => Vec::new(),
            }
        } else {
            list
        };
        self.digest.update(b"feed ");
        self.digest.update(copy_path.as_os_str().as_encoded_bytes());
        if let Some(u) = until {
            self.digest.update(u.to_string().as_bytes());
        }
        for p in &prefixes {
            self.digest.update(p.to_string().as_bytes());
            self.digest.update(b"\n");
        }
        Some((
            Feed {
                network: network.to_string(),
                url,
                format,
                every,
                max_age,
                on_stale,
                timeout,
                max_bytes,
                ca_file,
                allow_http,
                limits,
                snapshot,
                copy_path,
                used,
            },
            prefixes,
            until,
        ))
    }

    /// The list: handed in, the last good copy, or the snapshot.
    fn feed_list(
        &mut self,
        network: &str,
        raw: &S<RawFeed>,
        format: &Format,
        copy_path: &Path,
        snapshot: Option<&Path>,
    ) -> Option<(Vec<IpNet>, Used)> {
        let from_copy = |c: &Copy| {
            (
                c.prefixes.clone(),
                Used {
                    origin: Origin::Copy,
                    path: copy_path.to_path_buf(),
                    fetched_at: c.fetched_at,
                    changed_at: c.changed_at,
                    prefixes: c.prefixes.len(),
                    generation: c.generation,
                    stale: false,
                },
            )
        };
        if let Some(c) = self.overlay.get(copy_path) {
            return Some(from_copy(c));
        }
        match Copy::read(copy_path) {
            Ok(Some(c)) => return Some(from_copy(&c)),
            Ok(None) => {}
            // A damaged copy is reported, never read as an empty list.
            Err(e) => {
                self.error(
                    &raw.referenced,
                    format!("network '{network}': its feed's last good copy: {e}"),
                    Some("remove the file: netwarden fetches the list again at startup".into()),
                );
                return None;
            }
        }
        let Some(snapshot) = snapshot else {
            self.error(
                &raw.referenced,
                format!(
                    "network '{network}': its feed has no list yet: no copy at {} and no snapshot",
                    copy_path.display()
                ),
                Some("`netwarden serve` fetches it at startup and fails closed when it cannot; for check, explain and tests without a network, name a snapshot: file in the publisher's format".into()),
            );
            return None;
        };
        self.sources.push(snapshot.to_path_buf());
        let loc = raw
            .value
            .snapshot
            .as_ref()
            .map_or(raw.referenced, |s| s.referenced);
        let bytes = match crate::files::read(snapshot, crate::files::MAX_TEXT_BYTES) {
            Ok(b) => b,
            Err(e) => {
                self.error(
                    &loc,
                    format!(
                        "network '{network}': cannot read snapshot '{}': {e}",
                        snapshot.display()
                    ),
                    Some("paths are relative to the policy file's directory".into()),
                );
                return None;
            }
        };
        let parsed = match crate::lists::parse(format, &bytes) {
            Ok(p) => p,
            Err(e) => {
                self.error(
                    &loc,
                    format!("network '{network}': snapshot '{}': {e}", snapshot.display()),
                    Some("the snapshot is read in the feed's format: save the publisher's file as it is".into()),
                );
                return None;
            }
        };
        let modified = std::fs::metadata(snapshot)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| Timestamp::try_from(t).ok())
            .unwrap_or(self.now);
        let n = parsed.prefixes.len();
        Some((
            parsed.prefixes,
            Used {
                origin: Origin::Snapshot,
                path: snapshot.to_path_buf(),
                fetched_at: modified,
                changed_at: modified,
                prefixes: n,
                generation: 0,
                stale: false,
            },
        ))
    }

    fn feed_url(&mut self, network: &str, f: &RawFeed) -> Option<String> {
        let url = f.url.value.trim();
        let allow_http = f.allow_http.as_ref().is_some_and(|a| a.value);
        let parsed: Option<http::Uri> = url.parse().ok();
        let scheme = parsed.as_ref().and_then(|u| u.scheme_str()).unwrap_or("");
        let has_host = parsed
            .as_ref()
            .and_then(|u| u.host())
            .is_some_and(|h| !h.is_empty());
        // Never the query in a message: it may hold a token.
        let shown = url.split(['?', '#']).next().unwrap_or("");
        if !has_host || !matches!(scheme, "https" | "http") {
            self.error(
                &f.url.referenced,
                format!("network '{network}': feed url '{shown}' is not an http(s) URL"),
                Some(
                    "write the list's full address, such as https://www.cloudflare.com/ips-v4"
                        .into(),
                ),
            );
            return None;
        }
        if url.contains('@') {
            self.error(
                &f.url.referenced,
                format!("network '{network}': feed url holds credentials"),
                Some("a published list is fetched without credentials; the policy never holds secrets".into()),
            );
            return None;
        }
        if scheme == "http" && !allow_http {
            self.error(
                &f.url.referenced,
                format!("network '{network}': feed url is plain http"),
                Some("anyone on the path could rewrite the list: use https, or, for an intranet server you trust, add allow_http: true".into()),
            );
            return None;
        }
        Some(url.to_string())
    }

    fn feed_format(&mut self, network: &str, f: &RawFeed) -> Option<Format> {
        let kind = f.format.as_ref().map_or(RawFeedFormat::Lines, |k| k.value);
        let list = |v: &OneOrMany| match v {
            OneOrMany::One(s) => vec![s.clone()],
            OneOrMany::Many(v) => v.clone(),
        };
        let json_only = [
            (f.items.as_ref().map(|v| v.referenced), "items"),
            (f.field.as_ref().map(|v| v.referenced), "field"),
        ];
        let csv_only = [
            (f.column.as_ref().map(|v| v.referenced), "column"),
            (f.header.as_ref().map(|v| v.referenced), "header"),
        ];
        let misplaced: Vec<_> = match kind {
            RawFeedFormat::Lines => json_only
                .iter()
                .chain(csv_only.iter())
                .chain([(f.filter.as_ref().map(|v| v.referenced), "where")].iter())
                .filter_map(|(l, k)| l.map(|l| (l, *k)))
                .collect(),
            RawFeedFormat::Json | RawFeedFormat::JsonLines => csv_only
                .iter()
                .filter_map(|(l, k)| l.map(|l| (l, *k)))
                .collect(),
            RawFeedFormat::Csv => json_only
                .iter()
                .filter_map(|(l, k)| l.map(|l| (l, *k)))
                .collect(),
        };
        for (loc, key) in &misplaced {
            self.error(
                loc,
                format!("network '{network}': feed {key}: does not apply to this format"),
                Some(
                    "items and field are for json; column and header for csv; where for both"
                        .into(),
                ),
            );
        }
        if !misplaced.is_empty() {
            return None;
        }
        let filters: Vec<(S<String>, Vec<String>)> = f
            .filter
            .as_ref()
            .map(|w| {
                w.value
                    .0
                    .iter()
                    .map(|(k, v)| (k.clone(), list(&v.value)))
                    .collect()
            })
            .unwrap_or_default();
        match kind {
            RawFeedFormat::Lines => Some(Format::Lines),
            RawFeedFormat::Json | RawFeedFormat::JsonLines => {
                let lines = kind == RawFeedFormat::JsonLines;
                if lines && f.items.is_some() {
                    self.error(
                        &f.items.as_ref().map_or(f.url.referenced, |i| i.referenced),
                        format!("network '{network}': json_lines reads each line as an item; items: does not apply"),
                        Some("remove items:".into()),
                    );
                    return None;
                }
                let items = f
                    .items
                    .as_ref()
                    .map(|i| {
                        list(&i.value)
                            .iter()
                            .map(|p| {
                                p.split('.')
                                    .filter(|s| !s.is_empty())
                                    .map(str::to_string)
                                    .collect()
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                Some(Format::Json(Json {
                    items,
                    fields: f.field.as_ref().map(|v| list(&v.value)).unwrap_or_default(),
                    filters: filters
                        .into_iter()
                        .map(|(k, values)| Filter {
                            key: k.value,
                            values,
                        })
                        .collect(),
                    lines,
                }))
            }
            RawFeedFormat::Csv => {
                let header = f.header.as_ref().is_some_and(|h| h.value);
                let mut ok = true;
                let mut column = |cx: &mut Self, c: &S<String>| -> Column {
                    match c.value.trim().parse::<usize>() {
                        Ok(0) => {
                            cx.error(
                                &c.referenced,
                                format!("network '{network}': csv columns count from 1"),
                                Some("column: 1 is the first".into()),
                            );
                            ok = false;
                            Column::Index(1)
                        }
                        Ok(i) => Column::Index(i),
                        Err(_) if header => Column::Name(c.value.trim().to_string()),
                        Err(_) => {
                            cx.error(
                                &c.referenced,
                                format!("network '{network}': csv column '{}' is a name, but the list has no header", c.value),
                                Some("give the column's number (1 is the first), or add header: true".into()),
                            );
                            ok = false;
                            Column::Index(1)
                        }
                    }
                };
                let col = match &f.column {
                    Some(c) => column(self, c),
                    None => Column::Index(1),
                };
                let filters = filters
                    .into_iter()
                    .map(|(k, values)| Filter {
                        key: column(self, &k),
                        values,
                    })
                    .collect();
                ok.then_some(Format::Csv(Csv {
                    column: col,
                    header,
                    filters,
                }))
            }
        }
    }

    fn feed_limits(&mut self, network: &str, f: &RawFeed) -> Limits {
        let mut limits = Limits {
            public: f.public.as_ref().is_some_and(|p| p.value),
            ..Limits::default()
        };
        if let Some(m) = &f.max_change {
            let v = m.value.trim();
            if v == "off" {
                limits.max_change = None;
            } else {
                match v.strip_suffix('%').and_then(|n| n.trim().parse::<u32>().ok()) {
                    Some(n) if n > 0 => limits.max_change = Some(n),
                    _ => self.error(
                        &m.referenced,
                        format!("network '{network}': feed max_change '{v}' is not a percentage"),
                        Some("write the largest share of the addresses one update may add or remove, such as 50%; or off".into()),
                    ),
                }
            }
        }
        if let Some(w) = &f.widest {
            for (v, max, slot) in [
                (&w.value.ipv4, 32u8, &mut limits.widest_v4),
                (&w.value.ipv6, 128u8, &mut limits.widest_v6),
            ] {
                let Some(v) = v else { continue };
                if v.value > max {
                    self.error(
                        &v.referenced,
                        format!(
                            "network '{network}': feed widest /{} is longer than an address",
                            v.value
                        ),
                        Some(format!("a prefix length from 0 to {max}")),
                    );
                } else {
                    *slot = v.value;
                }
            }
        }
        limits
    }
}

/// One line on the list a feed holds: `feed 'cf' (https://...): 15
/// prefixes from the last good copy state/cf.1a2b3c4d.json, fetched
/// 2026-12-07T10:00:00Z (3 h 0 min ago)`.
pub fn describe(f: &Feed, now: Timestamp) -> String {
    let query_free = f.url.split(['?', '#']).next().unwrap_or("");
    format!(
        "feed '{}' ({query_free}): {} prefixes from {} {}, fetched {} ({} ago){}",
        f.network,
        f.used.prefixes,
        match f.used.origin {
            Origin::Copy => "the last good copy",
            Origin::Snapshot => "the snapshot",
        },
        f.used.path.display(),
        f.used.fetched_at,
        age_words(now.duration_since(f.used.fetched_at)),
        match (f.used.stale, f.on_stale) {
            (false, _) => String::new(),
            (true, OnStale::Keep) => ", stale: kept (on_stale: keep)".into(),
            (true, OnStale::Empty) =>
                ", stale: the network holds none of it (on_stale: empty)".into(),
        }
    )
}

/// The list a feed holds, as `explain --json` shows it.
pub fn to_json(f: &Feed, now: Timestamp) -> serde_json::Value {
    serde_json::json!({
        "network": f.network,
        "url": f.url.split(['?', '#']).next().unwrap_or(""),
        "source": f.used.origin.as_str(),
        "file": f.used.path.display().to_string(),
        "fetched_at": f.used.fetched_at.to_string(),
        "age_seconds": now.duration_since(f.used.fetched_at).as_secs().max(0),
        "prefixes": f.used.prefixes,
        "generation": f.used.generation,
        "stale": f.used.stale,
        "on_stale": f.on_stale.as_str(),
    })
}

/// `3 d 4 h`, `5 h 10 min`, `12 min`: an age as people say it.
pub fn age_words(d: jiff::SignedDuration) -> String {
    let secs = d.as_secs().max(0);
    let (days, hours, mins) = (secs / 86_400, secs % 86_400 / 3600, secs % 3600 / 60);
    match (days, hours) {
        (0, 0) => format!("{mins} min"),
        (0, h) => format!("{h} h {mins} min"),
        (d, h) => format!("{d} d {h} h"),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::policy::{LoadError, load_str_with};

    use super::*;

    fn policy(dir: &Path, feed: &str) -> String {
        format!(
            "version: 1\nfeeds: {{ state_dir: {} }}\nnetworks:\n  cf:\n    feed: {feed}\nrules:\n  - {{ name: all, allow_from: [cf] }}\n",
            dir.join("state").display()
        )
    }

    fn load(
        dir: &Path,
        feed: &str,
        overlay: &Overlay,
        now: &str,
    ) -> Result<crate::policy::Loaded, Vec<String>> {
        let now: Timestamp = now.parse().expect("instant");
        load_str_with(&policy(dir, feed), &dir.join("p.yaml"), now, overlay).map_err(|e| match e {
            LoadError::Invalid { diagnostics, .. } => diagnostics
                .iter()
                .map(|d| format!("{}:{}: {}", d.line, d.column, d.message))
                .collect(),
            e => vec![e.to_string()],
        })
    }

    fn copy(prefixes: &[&str], fetched_at: &str) -> Copy {
        Copy {
            source: "https://example.com/ips".into(),
            prefixes: prefixes
                .iter()
                .map(|p| crate::addr::parse_prefix(p).expect("prefix"))
                .collect(),
            fetched_at: fetched_at.parse().expect("instant"),
            changed_at: fetched_at.parse().expect("instant"),
            etag: None,
            last_modified: None,
            generation: 4,
            no_address_since: None,
        }
    }

    fn allows(l: &crate::policy::Loaded, ip: &str) -> bool {
        let now = jiff::Timestamp::now();
        !l.policy
            .networks_containing(ip.parse().expect("ip"), now)
            .is_empty()
    }

    const URL: &str = "{ url: \"https://example.com/ips\" }";

    /// Network `cf`'s last good copy of [`URL`] in `dir/state`, holding
    /// `prefixes` as confirmed at `at`; its path.
    fn write_cf(dir: &Path, prefixes: &[&str], at: &str) -> std::path::PathBuf {
        let path = crate::lists::copy::path_for(
            &dir.join("state"),
            "cf",
            &Feed::identity("https://example.com/ips", &Format::Lines),
        );
        copy(prefixes, at).write(&path).expect("write");
        path
    }

    #[test]
    fn a_feed_with_no_list_anywhere_fails_closed_and_says_how_to_fix_it() {
        let dir = tempfile::tempdir().expect("dir");
        let e = load(dir.path(), URL, &Overlay::new(), "2026-12-07T00:00:00Z").unwrap_err();
        assert!(
            e.iter()
                .any(|m| m.starts_with("5:11: network 'cf': its feed has no list yet")),
            "{e:#?}"
        );
    }

    #[test]
    fn the_last_good_copy_in_state_dir_is_what_the_network_holds() {
        let dir = tempfile::tempdir().expect("dir");
        let l = load(dir.path(), URL, &Overlay::new(), "2026-12-07T00:00:00Z");
        assert!(l.is_err());
        // Where the copy lives is the feed's; write one there.
        let path = write_cf(dir.path(), &["192.0.2.0/24"], "2026-12-06T00:00:00Z");
        let l = load(dir.path(), URL, &Overlay::new(), "2026-12-07T00:00:00Z").expect("loads");
        assert!(allows(&l, "192.0.2.9"));
        assert!(!allows(&l, "198.51.100.1"));
        let f = &l.policy.feeds()[0];
        assert_eq!(f.used.origin, Origin::Copy);
        assert_eq!(f.used.generation, 4);
        assert!(!f.used.stale);
        // An update being tried replaces it, without touching the disk.
        let mut overlay = Overlay::new();
        overlay.insert(
            path.clone(),
            copy(&["198.51.100.0/24"], "2026-12-07T00:00:00Z"),
        );
        let l2 = load(dir.path(), URL, &overlay, "2026-12-07T00:00:00Z").expect("loads");
        assert!(allows(&l2, "198.51.100.1"));
        assert!(!allows(&l2, "192.0.2.9"));
        assert_ne!(l.policy.fingerprint(), l2.policy.fingerprint());
        // A damaged copy is an error, never an empty list.
        std::fs::write(&path, b"{\"netwarden_list\":1,").expect("write");
        let e = load(dir.path(), URL, &Overlay::new(), "2026-12-07T00:00:00Z").unwrap_err();
        assert!(
            e.iter()
                .any(|m| m.contains("is not a list netwarden wrote")),
            "{e:#?}"
        );
    }

    #[test]
    fn a_stale_list_is_kept_or_emptied_as_on_stale_says_and_warned_about() {
        let dir = tempfile::tempdir().expect("dir");
        write_cf(dir.path(), &["192.0.2.0/24"], "2026-11-01T00:00:00Z");
        let keep = load(dir.path(), URL, &Overlay::new(), "2026-12-07T00:00:00Z").expect("loads");
        assert!(keep.policy.feeds()[0].used.stale);
        assert!(allows(&keep, "192.0.2.9"));
        assert!(
            keep.warnings.iter().any(|w| w
                .message
                .contains("36 d 0 h old, older than max_age; on_stale: keep")),
            "{:#?}",
            keep.warnings
        );
        let empty = load(
            dir.path(),
            "{ url: \"https://example.com/ips\", on_stale: empty }",
            &Overlay::new(),
            "2026-12-07T00:00:00Z",
        )
        .expect("an emptied network is not an error");
        assert!(!allows(&empty, "192.0.2.9"));
    }

    #[test]
    fn a_snapshot_stands_in_for_check_and_tests_and_is_read_in_the_feed_format() {
        let dir = tempfile::tempdir().expect("dir");
        std::fs::write(
            dir.path().join("aws.json"),
            br#"{"prefixes":[{"ip_prefix":"192.0.2.0/24","region":"ap-northeast-1"},{"ip_prefix":"198.51.100.0/24","region":"us-east-1"}]}"#,
        )
        .expect("write");
        let feed = "{ url: \"https://ip-ranges.example/ip-ranges.json\", format: json, items: prefixes, field: ip_prefix, where: { region: ap-northeast-1 }, snapshot: aws.json }";
        let l = load(dir.path(), feed, &Overlay::new(), "2026-12-07T00:00:00Z").expect("loads");
        assert_eq!(l.policy.feeds()[0].used.origin, Origin::Snapshot);
        assert!(allows(&l, "192.0.2.1"));
        assert!(!allows(&l, "198.51.100.1"));
        assert!(l.policy.sources().iter().any(|s| s.ends_with("aws.json")));
    }

    #[test]
    fn feed_settings_are_checked_with_places_and_help() {
        let dir = tempfile::tempdir().expect("dir");
        for (feed, needle) in [
            (
                "{ url: \"http://intranet.example/ips\" }",
                "feed url is plain http",
            ),
            (
                "{ url: \"ftp://example.com/ips\" }",
                "is not an http(s) URL",
            ),
            (
                "{ url: \"https://u:p@example.com/ips\" }",
                "holds credentials",
            ),
            (
                "{ url: \"https://example.com/ips\", column: 2 }",
                "column: does not apply",
            ),
            (
                "{ url: \"https://example.com/ips\", format: csv, column: prefix }",
                "is a name, but the list has no header",
            ),
            (
                "{ url: \"https://example.com/ips\", format: csv, column: 0 }",
                "count from 1",
            ),
            (
                "{ url: \"https://example.com/ips\", max_change: lots }",
                "is not a percentage",
            ),
            (
                "{ url: \"https://example.com/ips\", widest: { ipv4: 40 } }",
                "longer than an address",
            ),
            (
                "{ url: \"https://example.com/ips\", every: 10s }",
                "shorter than 1m",
            ),
            (
                "{ url: \"https://example.com/ips\", every: 1h, max_age: 30m }",
                "max_age is not longer than every",
            ),
            (
                "{ url: \"https://example.com/ips\", format: xml }",
                "unknown value 'xml'",
            ),
        ] {
            let e = load(dir.path(), feed, &Overlay::new(), "2026-12-07T00:00:00Z").unwrap_err();
            assert!(e.iter().any(|m| m.contains(needle)), "{feed}: {e:#?}");
        }
        // http is accepted when the policy says so.
        let e = load(
            dir.path(),
            "{ url: \"http://intranet.example/ips\", allow_http: true }",
            &Overlay::new(),
            "2026-12-07T00:00:00Z",
        )
        .unwrap_err();
        assert!(!e.iter().any(|m| m.contains("plain http")), "{e:#?}");
        // A feed without state_dir.
        let text = "version: 1\nnetworks:\n  cf: { feed: { url: \"https://example.com/ips\" } }\nrules:\n  - { name: all, allow_from: [cf] }\n";
        let e = crate::policy::load_str(text, &dir.path().join("p.yaml")).unwrap_err();
        assert!(e_has(&e, "a feed needs feeds.state_dir"));
    }

    fn e_has(e: &LoadError, needle: &str) -> bool {
        match e {
            LoadError::Invalid { diagnostics, .. } => {
                diagnostics.iter().any(|d| d.message.contains(needle))
            }
            _ => false,
        }
    }

    #[test]
    fn the_bounds_hold_for_the_list_in_force_and_the_url_query_is_never_shown() {
        let dir = tempfile::tempdir().expect("dir");
        write_cf(
            dir.path(),
            &["10.0.0.0/8", "192.0.2.0/24"],
            "2026-12-06T00:00:00Z",
        );
        assert!(load(dir.path(), URL, &Overlay::new(), "2026-12-07T00:00:00Z").is_ok());
        // Tightened: the copy in force breaks the new bound.
        for tighter in [
            "{ url: \"https://example.com/ips\", widest: { ipv4: 16 } }",
            "{ url: \"https://example.com/ips\", public: true }",
        ] {
            let e = load(dir.path(), tighter, &Overlay::new(), "2026-12-07T00:00:00Z").unwrap_err();
            assert!(
                e.iter().any(|m| m.contains("breaks this feed's bounds")),
                "{e:#?}"
            );
        }
        let e = load(
            dir.path(),
            "{ url: \"ftp://example.com/l.txt?token=SECRET\" }",
            &Overlay::new(),
            "2026-12-07T00:00:00Z",
        )
        .unwrap_err();
        assert!(e.iter().all(|m| !m.contains("SECRET")), "{e:#?}");
        assert!(
            e.iter()
                .any(|m| m.contains("'ftp://example.com/l.txt' is not an http(s) URL")),
            "{e:#?}"
        );
    }

    #[test]
    fn lists_that_together_hold_a_quarter_of_ipv4_are_refused() {
        let dir = tempfile::tempdir().expect("dir");
        let state = dir.path().join("state");
        let eights = |from: u32| -> Vec<String> {
            (from..from + 40).map(|a| format!("{a}.0.0.0/8")).collect()
        };
        for (name, from) in [("x", 1u32), ("y", 100)] {
            let url = format!("https://example.com/{name}");
            let path =
                crate::lists::copy::path_for(&state, name, &Feed::identity(&url, &Format::Lines));
            let list = eights(from);
            let list: Vec<&str> = list.iter().map(String::as_str).collect();
            copy(&list, "2026-12-06T00:00:00Z")
                .write(&path)
                .expect("write");
        }
        let text = format!(
            "version: 1\nfeeds: {{ state_dir: {} }}\nnetworks:\n  x: {{ feed: {{ url: \"https://example.com/x\" }} }}\n  y: {{ feed: {{ url: \"https://example.com/y\" }} }}\nrules:\n  - {{ name: all, allow_from: [x, y] }}\n",
            state.display()
        );
        let now: Timestamp = "2026-12-07T00:00:00Z".parse().expect("t");
        let e = match load_str_with(&text, &dir.path().join("p.yaml"), now, &Overlay::new()) {
            Err(LoadError::Invalid { diagnostics, .. }) => diagnostics,
            other => panic!("{other:?}"),
        };
        assert!(
            e.iter()
                .any(|d| d.message.contains("together hold a quarter of all IPv4")),
            "{e:#?}"
        );
    }

    #[test]
    fn with_on_stale_empty_the_list_expires_by_itself_at_max_age() {
        let dir = tempfile::tempdir().expect("dir");
        write_cf(dir.path(), &["192.0.2.0/24"], "2026-12-01T00:00:00Z");
        let l = load(
            dir.path(),
            "{ url: \"https://example.com/ips\", max_age: 7d, on_stale: empty }",
            &Overlay::new(),
            "2026-12-07T00:00:00Z",
        )
        .expect("loads");
        let member = |at: &str| {
            !l.policy
                .networks_containing("192.0.2.9".parse().expect("ip"), at.parse().expect("t"))
                .is_empty()
        };
        assert!(member("2026-12-07T23:59:59Z"));
        // No reload: the compiled policy itself stops matching.
        assert!(!member("2026-12-08T00:00:00Z"));
    }

    #[test]
    fn ages_are_said_as_people_say_them() {
        let d = |s| jiff::SignedDuration::from_secs(s);
        assert_eq!(age_words(d(720)), "12 min");
        assert_eq!(age_words(d(5 * 3600 + 600)), "5 h 10 min");
        assert_eq!(age_words(d(3 * 86_400 + 4 * 3600)), "3 d 4 h");
    }
}
