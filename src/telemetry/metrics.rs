//! Prometheus metrics (`GET /metrics` on the admin listener), with the
//! maintained `prometheus-client` crate. Labels are bounded by the policy
//! (rule names, actions, outcomes): never a client address, a path, a user
//! agent or any other unbounded or personal value.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// A rule name as a label: shared, so counting a request allocates nothing.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct Name(pub Arc<str>);

impl EncodeLabelValue for Name {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
        (&*self.0).encode(encoder)
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DecisionLabels {
    pub action: &'static str,
    pub rule: Name,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LoginLabels {
    pub rule: Name,
    pub enforced: bool,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LoginOutcomeLabels {
    pub rule: Name,
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DatabaseLabels {
    pub database: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DeliveryLabels {
    /// The sink's name from the policy (bounded by the policy).
    pub sink: Name,
    pub outcome: &'static str,
}

/// A network that takes its addresses from a published list (bounded by
/// the policy).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FeedLabels {
    pub network: Name,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FeedOutcomeLabels {
    pub network: Name,
    pub outcome: &'static str,
}

/// A network's DNS name (bounded by the policy).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DnsLabels {
    pub network: Name,
    pub name: Name,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DnsOutcomeLabels {
    pub network: Name,
    pub name: Name,
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SinkLabels {
    pub sink: Name,
}

/// Every metric netwarden exports.
pub struct Metrics {
    /// Tells this registry from any other in the process (a per-thread
    /// cache of counters must not count into another's).
    pub id: u64,
    registry: Registry,
    pub decisions: Family<DecisionLabels, Counter>,
    pub login_blocked: Family<LoginLabels, Counter>,
    pub logins: Family<LoginOutcomeLabels, Counter>,
    pub lockouts: Counter,
    pub lockout_entries: Gauge,
    pub lockout_evictions: Counter,
    /// 1 while the shared lockout store (Redis) answers; 0 while it does
    /// not, and always with `state: memory`.
    pub state_store_up: Gauge,
    pub state_store_unavailable: Counter,
    pub decision_seconds: Histogram,
    pub upstream_requests: Family<OutcomeLabels, Counter>,
    /// `upstream_requests{outcome="ok"}`, the one nearly every request
    /// counts, held so that counting it is an atomic add, not a labelled
    /// lookup (a hash of the labels and a lock).
    pub upstream_ok: Counter,
    /// Operators' releases of lockouts (`POST /lockouts/release`).
    pub lockout_releases: Counter,
    /// Blocked sign-ins the recent ring (`GET /events/blocked`) let go of.
    pub blocked_sign_ins_evicted: Counter,
    pub upstream_seconds: Histogram,
    pub open_connections: Gauge,
    pub parked_connections: Gauge,
    pub upstream_parked_connections: Gauge,
    pub open_tunnels: Gauge,
    pub requests_rejected: Family<ReasonLabels, Counter>,
    pub connections_refused: Family<ReasonLabels, Counter>,
    pub connections_evicted: Counter,
    pub send_timeouts: Counter,
    pub admin_unauthorized: Counter,
    /// Mirrors the log writer's count, brought up to date at each scrape.
    pub log_lines_dropped: Counter,
    pub policy_reloads: Family<OutcomeLabels, Counter>,
    pub policy_generation: Gauge,
    pub policy_loaded_seconds: Gauge<f64, AtomicU64>,
    pub geoip_build_seconds: Family<DatabaseLabels, Gauge>,
    pub alerts: Family<KindLabels, Counter>,
    pub alert_attempts_aggregated: Counter,
    pub alert_attempts_dropped: Counter,
    pub alert_deliveries: Family<DeliveryLabels, Counter>,
    pub alert_delivery_retries: Family<SinkLabels, Counter>,
    pub alert_sinks_disabled: Gauge,
    /// Unix time of the next grant or rule `until:`; 0 when none is ahead.
    pub grant_next_expiry: Gauge,
    pub grants_expired: Counter,
    /// Client addresses the reload guard remembers as recently allowed.
    pub recent_clients: Gauge,
    /// Of those, how many the running policy would now deny (after a reload
    /// applied with `guard: warn` or `force`).
    pub recent_clients_denied: Gauge,
    /// 1 while the client-address self-diagnosis suspects a problem, by reason.
    pub client_ip_suspect: Family<ReasonLabels, Gauge>,
    /// Published lists: fetches by outcome (updated, unchanged, failed,
    /// refused, held).
    pub feed_fetches: Family<FeedOutcomeLabels, Counter>,
    /// Prefixes in the list each network holds now.
    pub feed_prefixes: Family<FeedLabels, Gauge>,
    /// Unix time the publisher last confirmed the list in use.
    pub feed_fetched: Family<FeedLabels, Gauge>,
    /// 1 while the list in use is older than its `max_age`.
    pub feed_stale: Family<FeedLabels, Gauge>,
    /// 1 while the last fetch's list was not applied (refused, held) or the
    /// fetch failed: the last good list is in use.
    pub feed_degraded: Family<FeedLabels, Gauge>,
    /// Bumped by each applied change of a list.
    pub feed_generation: Family<FeedLabels, Gauge>,
    /// DNS names: lookups by outcome (updated, unchanged, nxdomain,
    /// failed, held).
    pub dns_lookups: Family<DnsOutcomeLabels, Counter>,
    /// Addresses each name holds in the running policy.
    pub dns_addresses: Family<DnsLabels, Gauge>,
    /// 1 while a name's last answer is older than `dns.max_age` (it then
    /// holds no address).
    pub dns_stale: Family<DnsLabels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("netwarden");
        let decisions = Family::<DecisionLabels, Counter>::default();
        registry.register(
            "decisions",
            "Requests decided, by action and deciding rule",
            decisions.clone(),
        );
        let login_blocked = Family::<LoginLabels, Counter>::default();
        registry.register(
            "login_blocked",
            "Blocked login attempts (enforced=false: a report-only rule or policy would have blocked)",
            login_blocked.clone(),
        );
        let logins = Family::<LoginOutcomeLabels, Counter>::default();
        registry.register(
            "logins",
            "Sign-ins forwarded on login routes, by rule and outcome read from the console's answer (failed, succeeded, unknown), or locked_out (429 from netwarden)",
            logins.clone(),
        );
        let lockouts = Counter::default();
        registry.register(
            "lockouts",
            "Clients locked out after too many failed sign-ins (lockout:)",
            lockouts.clone(),
        );
        let lockout_entries = Gauge::default();
        registry.register(
            "lockout_entries",
            "Client keys the lockout table holds now (bounded by lockout.max_entries)",
            lockout_entries.clone(),
        );
        let lockout_evictions = Counter::default();
        registry.register(
            "lockout_evictions",
            "Lockout keys evicted, oldest first, to stay within lockout.max_entries",
            lockout_evictions.clone(),
        );
        let state_store_up = Gauge::default();
        registry.register(
            "state_store_up",
            "1 while the shared lockout store (state: redis) answers; 0 while it does not, or with state: memory",
            state_store_up.clone(),
        );
        let state_store_unavailable = Counter::default();
        registry.register(
            "state_store_unavailable",
            "Times the shared lockout store (Redis) stopped answering; sign-ins then follow state.on_store_error",
            state_store_unavailable.clone(),
        );
        // 250 ns .. ~1 ms: a decision is sub-microsecond on large policies.
        let decision_seconds = Histogram::new(exponential_buckets(250e-9, 2.0, 13));
        registry.register(
            "decision_seconds",
            "Time to decide one request",
            decision_seconds.clone(),
        );
        let upstream_requests = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "upstream_requests",
            "Requests forwarded to the console, by outcome (ok, connect_error, timeout, error, busy, per_address, public, body_timeout, client_error)",
            upstream_requests.clone(),
        );
        // 100 µs .. ~100 s.
        let upstream_seconds = Histogram::new(exponential_buckets(100e-6, 4.0, 11));
        registry.register(
            "upstream_seconds",
            "Time from forwarding a request to the console's response head",
            upstream_seconds.clone(),
        );
        let open_connections = Gauge::default();
        registry.register(
            "open_connections",
            "Client connections open now",
            open_connections.clone(),
        );
        let parked_connections = Gauge::default();
        registry.register(
            "parked_connections",
            "HTTP/1 keep-alive connections idle long enough to be parked (their HTTP state and buffers released until the client sends again); each also counts in open_connections",
            parked_connections.clone(),
        );
        let upstream_parked_connections = Gauge::default();
        registry.register(
            "upstream_parked_connections",
            "Idle connections to an http:// console parked (the socket and its slot kept, hyper's connection and buffers released until the next request takes it); each also counts toward limits.upstream_keepalive",
            upstream_parked_connections.clone(),
        );
        let requests_rejected = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "requests_rejected",
            "Requests the HTTP parser refused before any decision (malformed, too_large, header_timeout)",
            requests_rejected.clone(),
        );
        let connections_refused = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "connections_refused",
            "Client connections closed at once: per_address (the address holds max_connections_per_address)",
            connections_refused.clone(),
        );
        let connections_evicted = Counter::default();
        registry.register(
            "connections_evicted",
            "Idle client connections closed to make room when max_connections was reached",
            connections_evicted.clone(),
        );
        let send_timeouts = Counter::default();
        registry.register(
            "send_timeouts",
            "Client connections closed because a response waited timeouts.send for the client to take a byte (a client that stops reading, or an HTTP/2 client that opens no window)",
            send_timeouts.clone(),
        );
        let admin_unauthorized = Counter::default();
        registry.register(
            "admin_unauthorized",
            "Admin requests refused for a missing or wrong bearer token (server.admin_auth)",
            admin_unauthorized.clone(),
        );
        let open_tunnels = Gauge::default();
        registry.register(
            "open_tunnels",
            "Upgraded connections (WebSocket) open now; each also counts in open_connections",
            open_tunnels.clone(),
        );
        let log_lines_dropped = Counter::default();
        registry.register(
            "log_lines_dropped",
            "Log lines dropped because stdout did not keep up (logging never blocks a request)",
            log_lines_dropped.clone(),
        );
        let policy_reloads = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "policy_reloads",
            "Policy reload attempts, by outcome (reloaded, unchanged, failed)",
            policy_reloads.clone(),
        );
        let policy_generation = Gauge::default();
        registry.register(
            "policy_generation",
            "Generation of the running policy (1 at start, +1 per reload)",
            policy_generation.clone(),
        );
        let policy_loaded_seconds = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "policy_loaded_timestamp_seconds",
            "When the running policy was loaded (Unix time)",
            policy_loaded_seconds.clone(),
        );
        let geoip_build_seconds = Family::<DatabaseLabels, Gauge>::default();
        registry.register(
            "geoip_build_timestamp_seconds",
            "Build time of each GeoIP database in use (Unix time)",
            geoip_build_seconds.clone(),
        );
        let alerts = Family::<KindLabels, Counter>::default();
        registry.register(
            "alerts",
            "Alerts produced, by kind (attempt: a first attempt alone; summary: attempts of one key in a window; storm: the storm cap's summary; lockout: a client locked out after failed sign-ins)",
            alerts.clone(),
        );
        let alert_attempts_aggregated = Counter::default();
        registry.register(
            "alert_attempts_aggregated",
            "Blocked login attempts counted into a summary or storm alert instead of alerting alone",
            alert_attempts_aggregated.clone(),
        );
        let alert_attempts_dropped = Counter::default();
        registry.register(
            "alert_attempts_dropped",
            "Blocked login attempts not alerted because the alert queue was full",
            alert_attempts_dropped.clone(),
        );
        let alert_deliveries = Family::<DeliveryLabels, Counter>::default();
        registry.register(
            "alert_deliveries",
            "Alert deliveries by sink and outcome (delivered, rejected, gave_up, dropped)",
            alert_deliveries.clone(),
        );
        let alert_delivery_retries = Family::<SinkLabels, Counter>::default();
        registry.register(
            "alert_delivery_retries",
            "Alert delivery calls retried, by sink",
            alert_delivery_retries.clone(),
        );
        let alert_sinks_disabled = Gauge::default();
        registry.register(
            "alert_sinks_disabled",
            "Alert sinks of the running policy that could not start (a secret's variable missing or wrong)",
            alert_sinks_disabled.clone(),
        );
        let grant_next_expiry = Gauge::default();
        registry.register(
            "grant_next_expiry_timestamp_seconds",
            "Unix time at which the next grant or rule with until: expires (0: none ahead)",
            grant_next_expiry.clone(),
        );
        let grants_expired = Counter::default();
        registry.register(
            "grants_expired",
            "Grants and rules whose until: passed while this process ran",
            grants_expired.clone(),
        );
        let recent_clients = Gauge::default();
        registry.register(
            "reload_guard_recent_clients",
            "Client addresses recently allowed, that a policy reload is checked against",
            recent_clients.clone(),
        );
        let recent_clients_denied = Gauge::default();
        registry.register(
            "reload_guard_recent_clients_denied",
            "Recently allowed client addresses that the running policy would deny (after a reload applied with a warning or forced)",
            recent_clients_denied.clone(),
        );
        let client_ip_suspect = Family::<ReasonLabels, Gauge>::default();
        registry.register(
            "client_ip_suspect",
            "1 while the client addresses look wrong (reason: one_private_address, no_forwarding_header)",
            client_ip_suspect.clone(),
        );
        let lockout_releases = Counter::default();
        registry.register(
            "lockout_releases",
            "Operators' releases of lockouts through POST /lockouts/release",
            lockout_releases.clone(),
        );
        let blocked_sign_ins_evicted = Counter::default();
        registry.register(
            "blocked_sign_ins_evicted",
            "Blocked sign-ins that the recent ring of GET /events/blocked let go of (it keeps 1,000)",
            blocked_sign_ins_evicted.clone(),
        );
        let feed_fetches = Family::<FeedOutcomeLabels, Counter>::default();
        registry.register(
            "feed_fetches",
            "Fetches of published lists (feed:), by network and outcome (updated, unchanged, failed, refused, held)",
            feed_fetches.clone(),
        );
        let feed_prefixes = Family::<FeedLabels, Gauge>::default();
        registry.register(
            "feed_prefixes",
            "Prefixes in the published list each network holds now",
            feed_prefixes.clone(),
        );
        let feed_fetched = Family::<FeedLabels, Gauge>::default();
        registry.register(
            "feed_fetched_timestamp_seconds",
            "Unix time at which the publisher last confirmed the list in use (age = time() - this)",
            feed_fetched.clone(),
        );
        let feed_stale = Family::<FeedLabels, Gauge>::default();
        registry.register(
            "feed_stale",
            "1 while the published list in use is older than its max_age",
            feed_stale.clone(),
        );
        let feed_degraded = Family::<FeedLabels, Gauge>::default();
        registry.register(
            "feed_degraded",
            "1 while the last fetch failed or its list was refused or held: the last good list is in use",
            feed_degraded.clone(),
        );
        let feed_generation = Family::<FeedLabels, Gauge>::default();
        registry.register(
            "feed_generation",
            "Applied changes of each network's published list (the copy's generation)",
            feed_generation.clone(),
        );
        let dns_lookups = Family::<DnsOutcomeLabels, Counter>::default();
        registry.register(
            "dns_lookups",
            "Lookups of networks' DNS names (dns_names:), by network, name and outcome (updated, unchanged, nxdomain, failed, held)",
            dns_lookups.clone(),
        );
        let dns_addresses = Family::<DnsLabels, Gauge>::default();
        registry.register(
            "dns_addresses",
            "Addresses each DNS name holds in the running policy",
            dns_addresses.clone(),
        );
        let dns_stale = Family::<DnsLabels, Gauge>::default();
        registry.register(
            "dns_stale",
            "1 while a DNS name has not been confirmed for dns.max_age (it then holds no address)",
            dns_stale.clone(),
        );
        let upstream_ok = upstream_requests
            .get_or_create(&OutcomeLabels { outcome: "ok" })
            .clone();
        static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        Self {
            id: NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            upstream_ok,
            feed_fetches,
            feed_prefixes,
            feed_fetched,
            feed_stale,
            feed_degraded,
            feed_generation,
            dns_lookups,
            dns_addresses,
            dns_stale,
            lockout_releases,
            blocked_sign_ins_evicted,
            registry,
            grant_next_expiry,
            grants_expired,
            recent_clients,
            recent_clients_denied,
            client_ip_suspect,
            alert_sinks_disabled,
            alerts,
            alert_attempts_aggregated,
            alert_attempts_dropped,
            alert_deliveries,
            alert_delivery_retries,
            decisions,
            login_blocked,
            logins,
            lockouts,
            lockout_entries,
            lockout_evictions,
            state_store_up,
            state_store_unavailable,
            decision_seconds,
            upstream_requests,
            upstream_seconds,
            open_connections,
            parked_connections,
            upstream_parked_connections,
            open_tunnels,
            requests_rejected,
            connections_refused,
            connections_evicted,
            send_timeouts,
            admin_unauthorized,
            log_lines_dropped,
            policy_reloads,
            policy_generation,
            policy_loaded_seconds,
            geoip_build_seconds,
        }
    }
}

impl Metrics {
    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        self.log_lines_dropped.inner().fetch_max(
            super::writer::dropped(),
            std::sync::atomic::Ordering::Relaxed,
        );
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// Records the running policy: generation, load time, database builds.
    pub fn policy_loaded(&self, generation: u64, policy: &crate::policy::Policy) {
        self.policy_generation
            .set(i64::try_from(generation).unwrap_or(i64::MAX));
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        self.policy_loaded_seconds.set(now);
        self.policy_loaded_geo(policy);
        self.policy_loaded_feeds(policy);
        self.zero_series(policy);
    }

    /// Each published list and DNS name the policy holds: its size, age
    /// and generation.
    pub fn policy_loaded_feeds(&self, policy: &crate::policy::Policy) {
        for n in policy.dns_names() {
            let l = DnsLabels {
                network: Name(n.network.as_str().into()),
                name: Name(n.name.as_str().into()),
            };
            self.dns_addresses
                .get_or_create(&l)
                .set(i64::try_from(n.used.prefixes).unwrap_or(i64::MAX));
            self.dns_stale
                .get_or_create(&l)
                .set(i64::from(n.used.stale));
        }
        for f in policy.feeds() {
            let l = FeedLabels {
                network: Name(f.network.as_str().into()),
            };
            let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
            self.feed_prefixes
                .get_or_create(&l)
                .set(n(f.used.prefixes as u64));
            self.feed_fetched
                .get_or_create(&l)
                .set(f.used.fetched_at.as_second());
            self.feed_stale
                .get_or_create(&l)
                .set(i64::from(f.used.stale));
            self.feed_generation
                .get_or_create(&l)
                .set(n(f.used.generation));
            let _ = self.feed_degraded.get_or_create(&l);
        }
    }

    /// Creates, at 0, every series the policy can produce (its rules, login
    /// routes and sinks, each fixed outcome and reason): a dashboard or an
    /// alert rule then sees a counter before its first event, and `rate()`
    /// counts that first event (Prometheus' "avoid missing metrics").
    fn zero_series(&self, policy: &crate::policy::Policy) {
        let rules =
            policy.rules().iter().map(|r| r.label.clone()).chain(
                ["default", "invalid_path", "invalid_method", "invalid_host"].map(Arc::from),
            );
        for rule in rules {
            for action in ["allow", "deny"] {
                let _ = self.decisions.get_or_create(&DecisionLabels {
                    action,
                    rule: Name(rule.clone()),
                });
            }
        }
        for n in policy.dns_names() {
            for outcome in ["updated", "unchanged", "nxdomain", "failed", "held"] {
                let _ = self.dns_lookups.get_or_create(&DnsOutcomeLabels {
                    network: Name(n.network.as_str().into()),
                    name: Name(n.name.as_str().into()),
                    outcome,
                });
            }
        }
        for f in policy.feeds() {
            for outcome in ["updated", "unchanged", "failed", "refused", "held"] {
                let _ = self.feed_fetches.get_or_create(&FeedOutcomeLabels {
                    network: Name(f.network.as_str().into()),
                    outcome,
                });
            }
        }
        for r in policy.rules().iter().filter(|r| r.login) {
            for enforced in [true, false] {
                let _ = self.login_blocked.get_or_create(&LoginLabels {
                    rule: Name(r.label.clone()),
                    enforced,
                });
            }
            if r.outcome.is_some() {
                for outcome in ["failed", "succeeded", "unknown", "locked_out"] {
                    let _ = self.logins.get_or_create(&LoginOutcomeLabels {
                        rule: Name(r.label.clone()),
                        outcome,
                    });
                }
            }
        }
        for outcome in [
            "ok",
            "connect_error",
            "timeout",
            "error",
            "busy",
            "per_address",
            "public",
            "body_timeout",
            "client_error",
        ] {
            let _ = self
                .upstream_requests
                .get_or_create(&OutcomeLabels { outcome });
        }
        for reason in ["malformed", "too_large", "header_timeout"] {
            let _ = self
                .requests_rejected
                .get_or_create(&ReasonLabels { reason });
        }
        let _ = self.connections_refused.get_or_create(&ReasonLabels {
            reason: "per_address",
        });
        for outcome in ["reloaded", "unchanged", "failed", "refused"] {
            let _ = self
                .policy_reloads
                .get_or_create(&OutcomeLabels { outcome });
        }
        for kind in ["attempt", "summary", "storm", "lockout", "state_store"] {
            let _ = self.alerts.get_or_create(&KindLabels { kind });
        }
        for sink in policy.alerts().into_iter().flat_map(|a| a.sinks.iter()) {
            let name = Name(sink.name.as_str().into());
            for outcome in ["delivered", "rejected", "gave_up", "dropped"] {
                let _ = self.alert_deliveries.get_or_create(&DeliveryLabels {
                    sink: name.clone(),
                    outcome,
                });
            }
            let _ = self
                .alert_delivery_retries
                .get_or_create(&SinkLabels { sink: name });
        }
        for reason in ["one_private_address", "no_forwarding_header"] {
            let _ = self
                .client_ip_suspect
                .get_or_create(&ReasonLabels { reason });
        }
    }

    /// Records the build time of each GeoIP database in use.
    pub fn policy_loaded_geo(&self, policy: &crate::policy::Policy) {
        for kind in [
            crate::geo::DbKind::Country,
            crate::geo::DbKind::Asn,
            crate::geo::DbKind::ConnectionType,
            crate::geo::DbKind::AnonymousIp,
        ] {
            if let Some(slot) = policy.geo().get(kind) {
                let epoch = i64::try_from(slot.current().build_epoch()).unwrap_or(0);
                self.geoip_build_seconds
                    .get_or_create(&DatabaseLabels {
                        database: kind.name(),
                    })
                    .set(epoch);
            }
        }
    }
}
