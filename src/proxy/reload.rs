//! Policy reload without a restart: read, validate, run the policy's tests,
//! compile, and only then swap the running policy (one atomic store).
//! Requests in flight keep the policy they started with. Any failure keeps
//! the running policy, is logged (`policy_reload_failed`, with the located
//! errors) and shows on `GET /policy`. Triggers: SIGHUP, `POST /reload`, and
//! a watcher that polls the policy file and the files it reads.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use serde_json::{Value, json};

use super::service::Shared;
use crate::files::{FileStamp, file_stamp};
use crate::policy::{self, LoadError, Policy};

/// What one reload did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A new policy is running.
    Reloaded { generation: u64, sha256: String },
    /// The files are identical to the running policy's: nothing to do.
    Unchanged,
    /// The running policy stays; these are the problems, located.
    Failed { errors: Vec<String> },
    /// Valid, but it would deny every client address that recently used
    /// the console (`server.reload.guard: refuse`); the running policy
    /// stays. `POST /reload?force=true` applies it anyway.
    Refused { guard: Guarded },
}

/// What the reload guard found: the recent client addresses the candidate
/// would deny, and by which of its rules (`file:line`). Counts only: no
/// address leaves the process.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Guarded {
    pub recent: usize,
    pub denied: usize,
    /// `rule 'console' (policy.yaml:14)`, with how many it denies; in
    /// policy order.
    pub rules: Vec<(String, usize)>,
}

impl Guarded {
    fn rules_text(&self) -> String {
        self.rules
            .iter()
            .map(|(r, n)| format!("{r} denies {n}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn explanation(&self) -> String {
        format!(
            "the new policy would deny {} of the {} client addresses that used the console in the last 24 hours: {}",
            self.denied,
            self.recent,
            self.rules_text()
        )
    }
}

/// Decides each recently seen client's requests again with `candidate`:
/// an address counts as denied when any of its remembered requests (its
/// last allowed one, its last sign-in) would be.
pub fn guard_check(
    candidate: &Policy,
    seen: &[super::recent::Entry],
    now: jiff::Timestamp,
) -> Guarded {
    use super::recent::denied_by;
    let ruleset = candidate.ruleset();
    let mut by_rule: Vec<usize> = vec![0; ruleset.rules().len() + 1];
    let mut denied = 0;
    for s in seen {
        let first_denial = s
            .samples()
            .find_map(|sample| denied_by(ruleset, sample, now));
        if let Some(rule) = first_denial {
            denied += 1;
            by_rule[rule.unwrap_or(ruleset.rules().len())] += 1;
        }
    }
    let file = candidate
        .source()
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    let rules = by_rule
        .iter()
        .enumerate()
        .filter(|(_, n)| **n > 0)
        .map(|(i, n)| {
            let name = match ruleset.rules().get(i) {
                Some(r) => format!("rule '{}' ({file}:{})", r.name, r.line),
                None => format!("the default ({file})"),
            };
            (name, *n)
        })
        .collect();
    Guarded {
        recent: seen.len(),
        denied,
        rules,
    }
}

impl Outcome {
    pub fn to_json(&self) -> Value {
        match self {
            Outcome::Reloaded { generation, sha256 } => {
                json!({"outcome": "reloaded", "generation": generation, "sha256": sha256})
            }
            Outcome::Unchanged => json!({"outcome": "unchanged"}),
            Outcome::Failed { errors } => json!({"outcome": "failed", "errors": errors}),
            Outcome::Refused { guard } => json!({
                "outcome": "refused",
                "errors": [guard.explanation()],
                "recent_clients": guard.recent,
                "denied": guard.denied,
                "rules": guard.rules.iter().map(|(r, n)| json!({"rule": r, "denied": n})).collect::<Vec<_>>(),
                "help": "fix the policy, or apply it anyway with POST /reload?force=true",
            }),
        }
    }
}

#[derive(Clone, Debug)]
struct Status {
    sha256: String,
    generation: u64,
    loaded_at: SystemTime,
    last_attempt: Option<(SystemTime, &'static str, Outcome)>,
    /// The last attempt that did something (reloaded, failed, refused): a
    /// watcher's "unchanged" a moment later must not hide an admin's
    /// refused edit (issue 23).
    last_change: Option<(SystemTime, &'static str, Outcome)>,
    /// What the last reload changed for any request (`netwarden diff`'s
    /// summary), for GET /policy.
    last_diff: Option<Value>,
}

/// Alerts started for a new policy: `None` when it has no `alerts:`
/// section.
type NextAlerts = Option<crate::alerts::Launched>;

/// Reloads the policy `serve` runs, one reload at a time.
pub struct Reloader {
    path: PathBuf,
    shared: Arc<Shared>,
    status: Mutex<Status>,
    /// Serializes reloads: a signal and a watcher tick never interleave.
    running: tokio::sync::Mutex<()>,
    /// The listeners' certificate, reloaded with the policy when its files change.
    tls: Option<Arc<crate::tls::ServerTls>>,
    /// Values for the variables alert sinks name, ahead of the environment
    /// (the demo's); read again when a reload changes the `alerts:` section.
    alert_env: Vec<(String, String)>,
}

use crate::telemetry::json::rfc3339;

impl Reloader {
    pub fn new(
        path: PathBuf,
        shared: Arc<Shared>,
        sha256: String,
        tls: Option<Arc<crate::tls::ServerTls>>,
        alert_env: Vec<(String, String)>,
    ) -> Self {
        Self {
            path,
            shared,
            alert_env,
            status: Mutex::new(Status {
                sha256,
                generation: 1,
                loaded_at: SystemTime::now(),
                last_attempt: None,
                last_change: None,
                last_diff: None,
            }),
            running: tokio::sync::Mutex::new(()),
            tls,
        }
    }

    fn status(&self) -> Status {
        match self.status.lock() {
            Ok(s) => s.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn set_status(&self, f: impl FnOnce(&mut Status)) {
        match self.status.lock() {
            Ok(mut s) => f(&mut s),
            Err(poisoned) => f(&mut poisoned.into_inner()),
        }
    }

    /// The running policy.
    pub fn policy(&self) -> Arc<Policy> {
        self.shared.policy.load_full()
    }

    /// What the published lists are doing.
    pub fn board(&self) -> &super::feeds::Board {
        &self.shared.feeds
    }

    /// A published list went wrong: alerted when the policy has alerts.
    pub fn feed_alert(&self, p: crate::alerts::FeedProblem) {
        if let Some(alerts) = self.shared.alerts.current() {
            alerts.feed(p);
        }
    }

    /// The metrics of the server this reloader serves.
    pub fn metrics(&self) -> &crate::telemetry::metrics::Metrics {
        &self.shared.metrics
    }

    /// This replica's recent blocked sign-ins, for `/events/blocked`.
    pub fn blocked(&self) -> &super::blocked::Ring {
        &self.shared.blocked
    }

    /// An operator's release: kept for `status`, counted for the digest,
    /// alerted when `alerts.on_release` is on.
    pub fn released(&self, r: super::blocked::Release) {
        // One that lifted nothing unlocked nothing: logged, not alerted.
        let alerts = self.shared.alerts.current();
        if let Some(alerts) = alerts.filter(|_| r.released > 0) {
            alerts.released(crate::alerts::Released {
                at: SystemTime::now(),
                by: r.admin_address,
                selector: r.selector,
                target: r.target.clone(),
                released: r.released,
            });
        }
        self.shared.releases.push(r);
    }

    pub fn releases(&self) -> Vec<super::blocked::Release> {
        self.shared.releases.recent()
    }

    /// The lockout state, for the admin listener's `/lockouts`.
    pub fn lockout(&self) -> &crate::lockout::Lockout {
        &self.shared.lockout
    }

    /// The files whose change means the policy changed.
    pub fn watched_files(&self) -> Vec<PathBuf> {
        let mut files = vec![self.path.clone()];
        files.extend(self.shared.policy.load().sources().iter().cloned());
        if let Some(tls) = &self.tls {
            files.extend(tls.files());
        }
        files
    }

    /// Reloads now. `trigger` names what asked (`SIGHUP`, `admin`, `watch`);
    /// `force` (`POST /reload?force=true`) overrides the reload guard.
    pub async fn reload(&self, trigger: &'static str, force: bool) -> Outcome {
        let _one_at_a_time = self.running.lock().await;
        self.reload_tls(trigger).await;
        // A published list or DNS name the edit adds (or whose URL it
        // changes) is fetched first, as at startup: a reload never serves
        // a snapshot, and fails, saying why, when it cannot fetch.
        let fetched = if matches!(trigger, "feed" | "dns") {
            Vec::new()
        } else {
            crate::feeds::prime(&self.path).await
        };
        let mut outcome = self
            .try_candidate(trigger, force, self.shared.feeds.overlay(), None)
            .await;
        if let Outcome::Failed { errors } = &mut outcome {
            for (network, why) in fetched.into_iter().rev() {
                errors.insert(
                    0,
                    format!("network '{network}': its published list or DNS name could not be fetched: {why}"),
                );
            }
        }
        self.finish(trigger, outcome)
    }

    /// Tries `copy` as feed `path`'s list: the policy compiled with it, its
    /// tests, the reload guard (which holds an update that would deny every
    /// recent admin, whatever `guard:` says, unless it is `off`); applied
    /// only if all pass, and then kept for every later compile.
    pub async fn apply_feed(
        &self,
        path: &Path,
        copy: crate::lists::Copy,
        trigger: &'static str,
    ) -> Outcome {
        let _one_at_a_time = self.running.lock().await;
        let mut overlay = self.shared.feeds.overlay();
        overlay.insert(path.to_path_buf(), copy.clone());
        // The running policy's own text, not the file on disk: an edit
        // staged there (or refused by the guard) must not ride in on a list
        // update.
        let text = self.shared.policy.load().text();
        let outcome = self
            .try_candidate(trigger, false, overlay, Some(text))
            .await;
        if matches!(outcome, Outcome::Reloaded { .. } | Outcome::Unchanged) {
            self.shared.feeds.keep(&copy, path.to_path_buf());
        }
        self.finish(trigger, outcome)
    }

    /// Compiles the policy with `overlay`, checks it and puts it in place.
    async fn try_candidate(
        &self,
        trigger: &'static str,
        force: bool,
        overlay: policy::feeds::Overlay,
        text: Option<Arc<str>>,
    ) -> Outcome {
        let path = self.path.clone();
        // Reading and compiling touch the disk and can take a while for a
        // large policy: off the async threads.
        let loaded = tokio::task::spawn_blocking(move || match text {
            Some(t) => load_text(&t, &path, &overlay),
            None => load(&path, &overlay),
        })
        .await;
        let loaded = match loaded {
            Ok(l) => l,
            Err(e) => Err(vec![format!("reload task failed: {e}")]),
        };
        // A snapshot stands in for check and tests, never for serving.
        let loaded = loaded.and_then(|(p, sha)| {
            let from_snapshot: Vec<&str> = p
                .feeds()
                .iter()
                .filter(|f| f.used.origin == policy::feeds::Origin::Snapshot)
                .map(|f| f.network.as_str())
                .chain(
                    p.dns_names()
                        .iter()
                        .filter(|n| n.used.origin == policy::feeds::Origin::Snapshot)
                        .map(|n| n.network.as_str()),
                )
                .collect();
            if from_snapshot.is_empty() {
                Ok((p, sha))
            } else {
                Err(vec![format!(
                    "network(s) {} would be served from their snapshot: or dns_snapshot: (their list or name could not be fetched or resolved): a snapshot is for check, explain and tests only",
                    from_snapshot.join(", ")
                )])
            }
        });
        match loaded {
            Err(errors) => Outcome::Failed { errors },
            Ok((_, sha256)) if sha256 == self.status().sha256 => Outcome::Unchanged,
            Ok((new, sha256)) => {
                let old = self.shared.policy.load_full();
                match self.guard(trigger, &old, &new, force) {
                    Some(refused) => refused,
                    None => match self.new_alerts(&old, &new) {
                        Err(errors) => Outcome::Failed { errors },
                        Ok(alerts) => {
                            // What the edit changes for any request (issue
                            // 27), off the async threads: a large policy
                            // takes a while.
                            let new = Arc::new(new);
                            let (a, b) = (old.clone(), new.clone());
                            let semantic = tokio::task::spawn_blocking(move || {
                                crate::diff::diff(&a, &b, crate::clock::now())
                            })
                            .await
                            .ok();
                            self.commit(trigger, &old, new, sha256, alerts, semantic)
                        }
                    },
                }
            }
        }
    }

    /// The reload guard, as the running policy sets it: `Some(Refused)`
    /// when the candidate must not go live; a warning when it goes live but
    /// denies some recent clients.
    fn guard(
        &self,
        trigger: &'static str,
        old: &Policy,
        new: &Policy,
        force: bool,
    ) -> Option<Outcome> {
        use crate::policy::server::Guard;
        let mode = old.server().reload.guard;
        if mode == Guard::Off {
            self.shared.metrics.recent_clients_denied.set(0);
            return None;
        }
        // The admins are those the running policy still lets in: one whose
        // grant ended, or whose window closed, is no longer one, and must
        // not make every edit look like a lock-out.
        let now = crate::clock::now();
        let seen: Vec<_> = self
            .shared
            .recent
            .snapshot()
            .into_iter()
            .filter(|e| {
                e.samples()
                    .all(|s| super::recent::denied_by(old.ruleset(), s, now).is_none())
            })
            .collect();
        self.shared
            .metrics
            .recent_clients
            .set(i64::try_from(seen.len()).unwrap_or(i64::MAX));
        let g = guard_check(new, &seen, now);
        if g.denied == 0 {
            self.shared.metrics.recent_clients_denied.set(0);
            return None;
        }
        let all = g.denied == g.recent;
        // A list that changed by itself is never forced through: a
        // publisher cannot lock the admins out, whatever `guard:` says.
        let refuse = mode == Guard::Refuse || matches!(trigger, "feed" | "dns");
        if all && refuse && !force {
            tracing::warn!(
                event = "policy_reload_refused",
                trigger,
                recent_clients = g.recent,
                denied = g.denied,
                rules = %g.rules_text(),
                "{}; the running policy stays (POST /reload?force=true applies it anyway)",
                g.explanation()
            );
            return Some(Outcome::Refused { guard: g });
        }
        tracing::warn!(
            event = "policy_reload_guard_warning",
            trigger,
            recent_clients = g.recent,
            denied = g.denied,
            rules = %g.rules_text(),
            forced = force,
            "{}; applied",
            g.explanation()
        );
        self.shared
            .metrics
            .recent_clients_denied
            .set(i64::try_from(g.denied).unwrap_or(i64::MAX));
        None
    }

    /// The alerts a changed `alerts:` section asks for, started but not yet
    /// in use; `Ok(None)` when the section did not change. A sink whose
    /// variable is missing fails the reload: the running policy and its
    /// alerts stay, and nothing is lost. (At startup there is nothing
    /// running to keep, so such a sink is disabled instead.)
    fn new_alerts(&self, old: &Policy, new: &Policy) -> Result<Option<NextAlerts>, Vec<String>> {
        if old.alerts() == new.alerts() {
            return Ok(None);
        }
        let Some(settings) = new.alerts() else {
            return Ok(Some(None));
        };
        let (sinks, errors) = crate::alerts::deliver::resolve_each(settings, &|v| {
            crate::alerts::lookup(&self.alert_env, v)
        });
        if !errors.is_empty() {
            return Err(errors.iter().map(ToString::to_string).collect());
        }
        Ok(Some(Some(crate::alerts::start_resolved(
            settings,
            sinks,
            self.shared.metrics.clone(),
            self.shared.lockout.redis.clone(),
            self.shared.alerts.digest_source(),
        ))))
    }

    /// Puts a validated policy, and its alerts if that section changed, in
    /// place.
    fn commit(
        &self,
        trigger: &'static str,
        old: &Policy,
        new: Arc<Policy>,
        sha256: String,
        alerts: Option<NextAlerts>,
        semantic: Option<crate::diff::Report>,
    ) -> Outcome {
        let restart = needs_restart(old, &new);
        let diff = diff_summary(old, &new);
        let summary = semantic.as_ref().map(crate::diff::render::summary);
        self.shared.policy.store(new);
        self.shared.feeds.policy_changed();
        if let Some(next) = alerts {
            let sinks = next.as_ref().map_or(0, |l| l.running.sink_count());
            if next.is_none() {
                self.shared.metrics.alert_sinks_disabled.set(0);
            }
            if let Some(previous) = self.shared.alerts.replace(next) {
                // What the old sinks hold is flushed (bounded by their flush
                // timeout), off the reload.
                tokio::spawn(previous.shutdown());
            }
            tracing::info!(
                event = "alerts_reloaded",
                trigger,
                sinks,
                "alerts now go to the sinks of the new policy"
            );
        }
        let old_sha = self.status().sha256;
        let mut generation = 0;
        self.set_status(|s| {
            s.generation += 1;
            generation = s.generation;
            s.sha256 = sha256.clone();
            s.loaded_at = SystemTime::now();
            if let Some(sum) = &summary {
                let mut v = sum.to_json();
                v["at"] = json!(rfc3339(SystemTime::now()));
                v["generation"] = json!(generation);
                v["trigger"] = json!(trigger);
                s.last_diff = Some(v);
            }
        });
        tracing::info!(
            event = "policy_reloaded",
            trigger,
            generation,
            old_sha256 = %old_sha,
            new_sha256 = %sha256,
            changes = %diff,
            access = summary.as_ref().map(|s| s.verdict),
            now_allowed = summary.as_ref().map(|s| s.now_allowed),
            now_denied = summary.as_ref().map(|s| s.now_denied),
            other_rule = summary.as_ref().map(|s| s.other_rule),
            first = summary.as_ref().map(|s| s.first.join("; ")),
            "policy reloaded"
        );
        if !restart.is_empty() {
            tracing::warn!(
                event = "policy_restart_needed",
                settings = %restart.join(", "),
                "these server settings changed but apply only after a restart; the rest of the policy is live"
            );
        }
        Outcome::Reloaded { generation, sha256 }
    }

    /// Logs, counts and records a reload's outcome.
    fn finish(&self, trigger: &'static str, outcome: Outcome) -> Outcome {
        if matches!(outcome, Outcome::Failed { .. } | Outcome::Refused { .. })
            && let Some(alerts) = self.shared.alerts.current()
        {
            alerts.reload_refused();
        }
        if let Outcome::Failed { errors } = &outcome {
            tracing::warn!(
                event = "policy_reload_failed",
                trigger,
                errors = %errors.join("\n"),
                "policy reload failed; the running policy stays"
            );
        }
        let label = match &outcome {
            Outcome::Reloaded { generation, .. } => {
                self.shared
                    .metrics
                    .policy_loaded(*generation, &self.shared.policy.load());
                "reloaded"
            }
            Outcome::Unchanged => "unchanged",
            Outcome::Failed { .. } => "failed",
            Outcome::Refused { .. } => "refused",
        };
        self.shared
            .metrics
            .policy_reloads
            .get_or_create(&crate::telemetry::metrics::OutcomeLabels { outcome: label })
            .inc();
        let now = SystemTime::now();
        let recorded = outcome.clone();
        // A list update or a DNS answer is shown under `feeds` and
        // `dns_names`: it must not hide the last edit's outcome (a refused
        // edit stays on /readyz until the next edit; red-team review).
        if !matches!(trigger, "feed" | "dns") {
            self.set_status(|s| {
                if !matches!(recorded, Outcome::Unchanged) {
                    s.last_change = Some((now, trigger, recorded.clone()));
                }
                s.last_attempt = Some((now, trigger, recorded));
            });
        }
        outcome
    }

    /// Reloads the certificate and key if they changed; a bad pair keeps the old one.
    async fn reload_tls(&self, trigger: &'static str) {
        let Some(tls) = self.tls.clone() else { return };
        let result = tokio::task::spawn_blocking(move || tls.reload_if_changed()).await;
        match result {
            Ok(Ok(true)) => {
                tracing::info!(event = "tls_reloaded", trigger, "TLS certificate reloaded")
            }
            Ok(Ok(false)) => {}
            Ok(Err(e)) => tracing::warn!(
                event = "tls_reload_failed",
                trigger,
                detail = %e,
                "new TLS certificate or key refused; the previous pair stays in use"
            ),
            Err(e) => {
                tracing::warn!(event = "tls_reload_failed", trigger, detail = %e, "TLS reload task failed")
            }
        }
    }

    /// `GET /policy`.
    /// Why each disabled alert sink is disabled.
    pub fn alert_sinks_disabled(&self) -> Vec<String> {
        self.shared.alerts.disabled()
    }

    /// What runs degraded (`/readyz` lists it; readiness stays): each
    /// disabled alert sink, and the shared lockout store while it is down.
    /// The identity section in force, and its keys' state (GET /policy).
    fn identity_json(&self) -> serde_json::Value {
        use crate::policy::identity::Source;
        let policy = self.shared.policy.load();
        let Some(settings) = policy.identity() else {
            return serde_json::Value::Null;
        };
        match &settings.source {
            Source::Headers(h) => json!({
                "source": "headers",
                "user": h.user.as_str(),
                "email": h.email.as_ref().map(http::HeaderName::as_str),
                "groups": h.groups.as_ref().map(http::HeaderName::as_str),
            }),
            Source::Jwt(j) => {
                let keys = self.shared.identity.status();
                json!({
                    "source": "jwt",
                    "preset": j.preset.as_str(),
                    "issuer": j.issuer,
                    "header": j.header.as_str(),
                    "keys_url": crate::feeds::shown_url(j.keys.url()),
                    "keys": keys.as_ref().map(|k| k.keys),
                    "fetched_seconds_ago": keys.as_ref().and_then(|k| k.fetched_ago).map(|d| d.as_secs()),
                    "last_error": keys.as_ref().and_then(|k| k.last_error.clone()),
                })
            }
        }
    }

    /// What the morning digest says of the guard: grants ending within 7
    /// days, disabled alert sinks, and the self-check's lines.
    pub fn digest_extras(&self) -> crate::alerts::digest::Extras {
        let now = crate::clock::now();
        let week = now + jiff::SignedDuration::from_hours(7 * 24);
        let policy = self.shared.policy.load();
        let mut grants_ending: Vec<(String, String, SystemTime)> = policy
            .ruleset()
            .expiring()
            .filter_map(|e| match e {
                crate::engine::ruleset::Expiring::Grant { network, grant }
                    if grant.until > now && grant.until <= week =>
                {
                    Some((
                        network.to_string(),
                        grant.net.to_string(),
                        SystemTime::try_from(grant.until).ok()?,
                    ))
                }
                _ => None,
            })
            .collect();
        grants_ending.sort_by_key(|g| g.2);
        let disabled_sinks = self.alert_sinks_disabled();
        let self_check = self
            .degraded()
            .into_iter()
            .filter(|l| !l.contains("alert sink"))
            .collect();
        crate::alerts::digest::Extras {
            grants_ending,
            disabled_sinks,
            self_check,
        }
    }

    pub fn degraded(&self) -> Vec<String> {
        // /readyz is open to probes, even under admin_auth: these lines
        // say what is wrong and where to look, never a rule, a sink, a
        // variable, a file or an address (GET /policy and the log have
        // those).
        let mut out = Vec::new();
        match self.alert_sinks_disabled().len() {
            0 => {}
            1 => out.push("an alert sink is disabled; GET /policy says which and why".into()),
            n => out.push(format!(
                "{n} alert sinks are disabled; GET /policy says which and why"
            )),
        }
        if let Some(store) = self.shared.lockout.redis.as_ref().filter(|s| !s.is_up()) {
            out.push(format!(
                "the lockout store (Redis) cannot be reached; sign-ins follow state.on_store_error {}",
                store.on_error.as_str()
            ));
        }
        if let Some(reason) = self.shared.client_ip_watch.suspect() {
            out.push(format!(
                "the client addresses look wrong ({reason}); see the client_ip_suspect log line"
            ));
        }
        let policy = self.shared.policy.load();
        // The identity provider's keys: none yet, or the last fetch failed.
        if policy.identity().is_some()
            && let Some(k) = self.shared.identity.status()
        {
            if k.keys == 0 && !k.per_kid {
                out.push("no identity provider keys yet: every token is refused (identity_keys_failed says why)".into());
            } else if k.last_error.is_some() {
                out.push("the identity provider's keys could not be fetched again; the last good keys are used".into());
            }
        }
        out.extend(self.shared.feeds.degraded(
            policy.feeds(),
            policy.dns_names(),
            policy.dns().max_age,
        ));
        if let Some((_, _, Outcome::Refused { .. })) = self.status().last_change {
            out.push(
                "the last policy edit was refused by the reload guard; GET /policy says why".into(),
            );
        }
        out
    }

    /// How the console answered lately, with the counts since start.
    fn console_json(&self) -> Value {
        let m = &self.shared.metrics;
        let failed: Vec<(&str, u64)> = super::console_health::ConsoleHealth::failures()
            .iter()
            .map(|&outcome| {
                (
                    outcome,
                    m.upstream_requests
                        .get_or_create(&crate::telemetry::metrics::OutcomeLabels { outcome })
                        .get(),
                )
            })
            .collect();
        self.shared
            .console
            .to_json(&self.shared.upstream.url(), m.upstream_ok.get(), &failed)
    }

    pub fn status_json(&self) -> Value {
        let s = self.status();
        let shown = |a: &(SystemTime, &'static str, Outcome)| {
            let (at, trigger, outcome) = a;
            let mut v = outcome.to_json();
            v["at"] = json!(rfc3339(*at));
            v["trigger"] = json!(trigger);
            v
        };
        let last = s.last_change.as_ref().map(shown);
        let attempt = s.last_attempt.as_ref().map(shown);
        json!({
            "source": self.path.display().to_string(),
            "sha256": s.sha256,
            "generation": s.generation,
            "loaded_at": rfc3339(s.loaded_at),
            "last_reload": last,
            "last_attempt": attempt,
            "last_diff": s.last_diff,
            "alert_sinks": self.shared.alerts.sinks(),
            "alert_sinks_disabled": self.shared.alerts.disabled(),
            "listeners": self.shared.listeners.get().map(|l| l.iter().map(|(role, address, proxy_protocol)| json!({
                "role": role,
                "address": address,
                "proxy_protocol": proxy_protocol,
            })).collect::<Vec<_>>()),
            "console": self.console_json(),
            "feeds": self.shared.feeds.to_json(self.shared.policy.load().feeds(), crate::clock::now()),
            "dns_names": self.shared.feeds.dns_json(self.shared.policy.load().dns_names(), self.shared.policy.load().dns().max_age, crate::clock::now()),
            "identity": self.identity_json(),
            "state_store": match self.shared.lockout.redis.as_ref() {
                None => json!({"store": "memory"}),
                Some(s) => json!({
                    "store": "redis",
                    "up": s.is_up(),
                    "on_store_error": s.on_error.as_str(),
                }),
            },
        })
    }
}

/// Reads and fully validates the policy, with the published lists in
/// `overlay` ahead of those on disk; its fingerprint (the bytes compiled,
/// the lists included).
fn load(path: &Path, overlay: &policy::feeds::Overlay) -> Result<(Policy, String), Vec<String>> {
    loaded(policy::load_with(path, overlay))
}

/// [`load`] of policy text already read (the running policy's).
fn load_text(
    text: &str,
    path: &Path,
    overlay: &policy::feeds::Overlay,
) -> Result<(Policy, String), Vec<String>> {
    loaded(policy::load_str_with(
        text,
        path,
        crate::clock::now(),
        overlay,
    ))
}

/// A load's policy and fingerprint, or its errors: each located line and
/// its help ("did you mean 'office'?"), as `check` gives them; never the
/// source line, which would echo the policy into `GET /policy` and the log.
fn loaded(result: Result<policy::Loaded, LoadError>) -> Result<(Policy, String), Vec<String>> {
    match result {
        Ok(l) => {
            let sha = l.policy.fingerprint().to_string();
            Ok((l.policy, sha))
        }
        Err(LoadError::Invalid { diagnostics, .. }) => Err(diagnostics
            .iter()
            .filter(|d| d.is_error())
            .map(|d| {
                let located = d.to_string().lines().next().unwrap_or_default().to_string();
                match &d.help {
                    Some(help) => format!("{located}\n  help: {help}"),
                    None => located,
                }
            })
            .collect()),
        Err(e) => Err(vec![e.to_string()]),
    }
}

/// Server settings that cannot change while running.
fn needs_restart(old: &Policy, new: &Policy) -> Vec<&'static str> {
    let (a, b) = (old.server(), new.server());
    [
        ("server.listen", a.listen != b.listen),
        ("server.tls_listen", a.tls_listen != b.tls_listen),
        ("server.tls", a.tls != b.tls),
        ("server.admin", a.admin != b.admin),
        ("server.admin_auth", a.admin_auth != b.admin_auth),
        ("server.upstream", a.upstream != b.upstream),
        ("server.upstream_ca", a.upstream_ca != b.upstream_ca),
        (
            "server.shutdown_delay",
            a.shutdown_delay != b.shutdown_delay,
        ),
        ("server.timeouts", a.timeouts != b.timeouts),
        ("server.limits", a.limits != b.limits),
        ("server.log_allowed", a.log_allowed != b.log_allowed),
        ("server.reload", a.reload != b.reload),
        ("state", old.state() != new.state()),
        (
            "lockout.account_key_env",
            old.lockout().and_then(|l| l.account_key_env.as_ref())
                != new.lockout().and_then(|l| l.account_key_env.as_ref()),
        ),
    ]
    .into_iter()
    .filter_map(|(name, changed)| changed.then_some(name))
    .collect()
}

/// "networks +vpn2 -old ~office (3 -> 4 ranges); rules +partner ~login".
fn diff_summary(old: &Policy, new: &Policy) -> String {
    let mut parts = Vec::new();
    for n in new.networks() {
        match old.networks().iter().find(|o| o.name == n.name) {
            None => parts.push(format!("+network {}", n.name)),
            Some(o) if o.ranges != n.ranges || o.dynamic != n.dynamic => {
                let count = |r: &crate::engine::prefix::RangeSet| {
                    let (v4, v6) = r.range_count();
                    v4 + v6
                };
                parts.push(format!(
                    "~network {} ({} -> {} prefixes, {} -> {} ranges)",
                    n.name,
                    o.direct_prefixes,
                    n.direct_prefixes,
                    count(&o.ranges),
                    count(&n.ranges)
                ));
            }
            Some(_) => {}
        }
    }
    for o in old.networks() {
        if !new.networks().iter().any(|n| n.name == o.name) {
            parts.push(format!("-network {}", o.name));
        }
    }
    for r in new.rules() {
        match old.rules().iter().find(|o| o.name == r.name) {
            None => parts.push(format!("+rule {}", r.name)),
            Some(o) => {
                let same = o.paths == r.paths
                    && o.methods == r.methods
                    && o.hosts == r.hosts
                    && o.login == r.login
                    && o.kind == r.kind;
                if !same {
                    parts.push(format!("~rule {}", r.name));
                }
            }
        }
    }
    for o in old.rules() {
        if !new.rules().iter().any(|r| r.name == o.name) {
            parts.push(format!("-rule {}", o.name));
        }
    }
    if old.default_action() != new.default_action() {
        parts.push(format!("~default {}", new.default_action()));
    }
    if parts.is_empty() {
        "no rule or network changed".to_string()
    } else {
        parts.join(", ")
    }
}

fn stamps(files: &[PathBuf]) -> Vec<FileStamp> {
    files.iter().map(|f| file_stamp(f)).collect()
}

/// Bursts of writes (an editor's save, a ConfigMap update) settle within
/// this before the reload reads the files.
const DEBOUNCE: Duration = Duration::from_millis(200);

/// Polls the watched files every `interval`; after a change has settled,
/// reloads. Polling follows symlinks and rename-over, and needs no inotify
/// limits or platform support.
pub async fn watch(
    reloader: Arc<Reloader>,
    interval: Duration,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let files = reloader.watched_files();
    let mut seen = tokio::task::spawn_blocking(move || stamps(&files))
        .await
        .unwrap_or_default();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = shutdown.changed() => return,
        }
        let files = reloader.watched_files();
        let check = files.clone();
        let now = tokio::task::spawn_blocking(move || stamps(&check))
            .await
            .unwrap_or_default();
        if now == seen {
            continue;
        }
        // Wait until the files stop changing (bounded: a few rounds).
        let mut settled = now;
        for _ in 0..10 {
            tokio::time::sleep(DEBOUNCE).await;
            let check = files.clone();
            let again = tokio::task::spawn_blocking(move || stamps(&check))
                .await
                .unwrap_or_default();
            if again == settled {
                break;
            }
            settled = again;
        }
        // Remember what was read *before* reloading, so that a change that
        // lands during the reload is seen on the next tick. (A new policy
        // that reads other files changes the list, which also counts as a
        // change next time: a no-op reload at worst.)
        seen = settled;
        reloader.reload("watch", false).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(extra: &str) -> Policy {
        let text = format!(
            "version: 1\nnetworks:\n  office: [10.0.0.0/8]\nrules:\n  - {{ name: all, allow_from: [office] }}\n{extra}"
        );
        crate::policy::load_str(&text, Path::new("p.yaml"))
            .expect("valid policy")
            .policy
    }

    #[test]
    fn settings_read_at_startup_are_reported_as_needing_a_restart() {
        let old = policy(
            "server: { listen: [\"127.0.0.1:8080\"] }\nalerts: { window: 5m, sinks: [{ name: a, type: webhook, url_env: A }] }\n",
        );
        let same = policy(
            "server: { listen: [\"127.0.0.1:8080\"] }\nalerts: { window: 5m, sinks: [{ name: a, type: webhook, url_env: A }] }\n",
        );
        assert!(needs_restart(&old, &same).is_empty());
        let new = policy(
            "server: { listen: [\"127.0.0.1:9090\"] }\nalerts: { window: 1m, sinks: [{ name: a, type: webhook, url_env: A }] }\n",
        );
        // Alerts are replaced on reload: not a restart.
        assert_eq!(needs_restart(&old, &new), ["server.listen"]);
        assert_eq!(needs_restart(&old, &policy("")), ["server.listen"]);
    }
}
