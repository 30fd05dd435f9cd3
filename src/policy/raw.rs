//! The policy file as written: serde types that keep each value's location,
//! so that `compile` can say `policy.yaml:14:9` about any of them. Nothing
//! here is checked beyond its YAML shape; `compile` checks the meaning.

use std::fmt;
use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

pub type S<T> = Spanned<T>;

/// A YAML mapping kept in file order (duplicate keys are already refused by
/// the parser).
#[derive(Debug)]
pub struct Entries<K, V>(pub Vec<(K, V)>);

impl<K, V> Default for Entries<K, V> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

impl<'de, K: Deserialize<'de>, V: Deserialize<'de>> Deserialize<'de> for Entries<K, V> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Vis<K, V>(PhantomData<(K, V)>);
        impl<'de, K: Deserialize<'de>, V: Deserialize<'de>> Visitor<'de> for Vis<K, V> {
            type Value = Entries<K, V>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mapping")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry()? {
                    entries.push(entry);
                }
                Ok(Entries(entries))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Entries(Vec::new()))
            }
        }
        d.deserialize_map(Vis(PhantomData))
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPolicy {
    pub version: S<u32>,
    #[serde(default)]
    pub networks: Entries<S<String>, S<RawNetwork>>,
    /// Named groups of accounts: `{ agency: [agency-*@example.jp] }`.
    #[serde(default)]
    pub accounts: Entries<S<String>, S<Vec<S<String>>>>,
    #[serde(default)]
    pub client_ip: Option<S<RawClientIp>>,
    #[serde(default)]
    pub case_insensitive_paths: bool,
    /// Accept `post`, `Post`, … and match rule methods without case.
    #[serde(default)]
    pub case_insensitive_methods: bool,
    /// Accept `;` parameters in path segments (refused by default).
    #[serde(default)]
    pub allow_path_parameters: bool,
    /// Accept path segments ending in `.` or a space (refused by default).
    #[serde(default)]
    pub allow_trailing_dots: bool,
    #[serde(default)]
    pub rules: Vec<S<RawRule>>,
    #[serde(default)]
    pub default: Option<S<RawAction>>,
    #[serde(default)]
    pub tests: Vec<S<RawTest>>,
    /// Listeners, upstream, TLS, timeouts and limits for `netwarden serve`.
    pub server: Option<S<RawServer>>,
    /// MaxMind databases that networks may name facts from.
    pub geoip: Option<S<RawGeoip>>,
    /// `report`: decide and log every request, enforce nothing.
    pub mode: Option<S<RawMode>>,
    /// Alerts on blocked login attempts: sinks and aggregation.
    pub alerts: Option<S<RawAlerts>>,
    /// Locking out clients whose sign-ins keep failing.
    pub lockout: Option<S<RawLockout>>,
    /// Where the lockout state lives: this process, or Redis.
    pub state: Option<S<RawState>>,
    /// The languages of netwarden's own pages, and the company's words.
    pub pages: Option<S<RawPages>>,
    /// Where published lists (`feed:`) keep their last good copies.
    pub feeds: Option<S<RawFeeds>>,
    /// How networks' `dns_names:` are resolved.
    pub dns: Option<S<RawDns>>,
    /// Who the client is, from an auth layer in front.
    pub identity: Option<S<RawIdentity>>,
}

/// `identity:`: a signed token, or a trusted auth proxy's headers.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawIdentity {
    pub jwt: Option<S<RawJwt>>,
    pub headers: Option<S<RawIdentityHeaders>>,
    /// Log the e-mail in clear (else its domain only).
    pub log_email: Option<S<bool>>,
}

/// `identity.jwt:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawJwt {
    /// `cloudflare_access`, `google_iap`, `aws_alb`, `oidc`.
    pub preset: Option<S<String>>,
    pub issuer: Option<S<String>>,
    pub audience: Option<S<OneOrMany>>,
    /// `aws_alb`: the load balancer's ARN the token's header must name.
    pub signer: Option<S<String>>,
    pub keys_url: Option<S<String>>,
    pub discovery: Option<S<String>>,
    pub header: Option<S<String>>,
    pub algorithms: Option<S<Vec<S<String>>>>,
    pub leeway: Option<S<String>>,
    pub refresh: Option<S<String>>,
    pub refetch_interval: Option<S<String>>,
    pub timeout: Option<S<String>>,
    pub ca_file: Option<S<String>>,
    pub allow_http: Option<S<bool>>,
    pub subject_claim: Option<S<String>>,
    pub email_claim: Option<S<String>>,
    pub groups_claim: Option<S<String>>,
}

/// `identity.headers:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawIdentityHeaders {
    /// `oauth2_proxy`, `authelia`.
    pub preset: Option<S<String>>,
    pub user: Option<S<String>>,
    pub email: Option<S<String>>,
    pub groups: Option<S<String>>,
}

/// A rule's `who:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWho {
    pub groups: Option<S<Vec<S<String>>>>,
    pub emails: Option<S<Vec<S<String>>>>,
    #[serde(default)]
    pub claims: Entries<S<String>, S<String>>,
}

/// A policy test's `identity:`: the identity the auth layer vouched for.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTestIdentity {
    pub email: Option<String>,
    #[serde(default)]
    pub groups: Vec<String>,
    #[serde(default)]
    pub claims: Entries<String, String>,
    /// A reason the identity is not believed (`expired`, ...).
    pub invalid: Option<S<String>>,
}

/// `dns:`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDns {
    /// `ip` or `ip:port`; none: the system's resolvers.
    #[serde(default)]
    pub servers: Vec<S<String>>,
    pub min_ttl: Option<S<String>>,
    pub max_ttl: Option<S<String>>,
    pub max_age: Option<S<String>>,
    pub nxdomain_grace: Option<S<String>>,
    pub timeout: Option<S<String>>,
    pub dnssec: Option<S<bool>>,
}

/// `feeds:`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFeeds {
    pub state_dir: Option<S<String>>,
}

/// A network's `feed:`: a published list at a URL.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFeed {
    pub url: S<String>,
    pub format: Option<S<RawFeedFormat>>,
    pub every: Option<S<String>>,
    pub max_age: Option<S<String>>,
    pub on_stale: Option<S<RawOnStale>>,
    pub timeout: Option<S<String>>,
    pub max_bytes: Option<S<u64>>,
    pub ca_file: Option<S<String>>,
    pub allow_http: Option<S<bool>>,
    /// `50%` or `off`.
    pub max_change: Option<S<String>>,
    pub widest: Option<S<RawWidest>>,
    pub public: Option<S<bool>>,
    /// The list in the publisher's format, for `check`, `explain` and the
    /// policy's tests when `state_dir` holds no copy.
    pub snapshot: Option<S<String>>,
    /// JSON: dotted paths to the arrays of items.
    pub items: Option<S<OneOrMany>>,
    /// JSON: the fields that hold the prefix.
    pub field: Option<S<OneOrMany>>,
    /// JSON and CSV: keep items whose field (CSV: column) is one of the values.
    #[serde(rename = "where")]
    pub filter: Option<S<Entries<S<String>, S<OneOrMany>>>>,
    /// CSV: the column of the prefix (1 is the first, or a header's name).
    pub column: Option<S<String>>,
    /// CSV: the first row names the columns.
    pub header: Option<S<bool>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RawFeedFormat {
    Lines,
    Json,
    JsonLines,
    Csv,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RawOnStale {
    Keep,
    Empty,
}

/// `widest: { ipv4: 8, ipv6: 16 }`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWidest {
    pub ipv4: Option<S<u8>>,
    pub ipv6: Option<S<u8>>,
}

/// `pages:`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPages {
    pub languages: Option<S<Vec<S<String>>>>,
    pub fallback: Option<S<String>>,
    /// Language tag -> the line that says whom to contact.
    #[serde(default)]
    pub contact: Entries<S<String>, S<String>>,
    /// Language tag -> a template file.
    #[serde(default)]
    pub templates: Entries<S<String>, S<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLockout {
    pub after: Option<S<u64>>,
    pub within: Option<S<String>>,
    pub lock_for: Option<S<String>>,
    pub max_lock: Option<S<String>>,
    pub reset_on_success: Option<bool>,
    pub max_entries: Option<S<u64>>,
    pub key: Option<S<RawLockoutKey>>,
    pub account_key_env: Option<S<String>>,
}

/// What failures are counted against.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RawLockoutKey {
    Address,
    AccountAndNetwork,
    Account,
}

/// The `state:` section: where lockout counters live.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawState {
    pub store: Option<S<RawStore>>,
    pub url_env: Option<S<String>>,
    pub prefix: Option<S<String>>,
    pub timeout: Option<S<String>>,
    pub on_store_error: Option<S<RawOnStoreError>>,
    pub ca_file: Option<S<String>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RawStore {
    Memory,
    Redis,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RawOnStoreError {
    Memory,
    DenyLogin,
    Allow,
}

/// A login rule's `outcome:`: what failed (and succeeded) sign-ins look like.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOutcome {
    pub failure: Option<S<RawPatterns>>,
    pub success: Option<S<RawPatterns>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPatterns {
    pub status: Option<Vec<S<u64>>>,
    pub location: Option<Vec<S<String>>>,
    pub header: Option<S<RawHeaderPattern>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHeaderPattern {
    pub name: S<String>,
    pub value: Option<S<String>>,
}

/// The `alerts:` section. Secrets are never written here: sinks name the
/// environment variables that hold them.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAlerts {
    pub window: Option<S<String>>,
    pub key: Option<S<String>>,
    pub storm: Option<S<RawStorm>>,
    pub queue: Option<S<u64>>,
    pub timeout: Option<S<String>>,
    pub give_up_after: Option<S<String>>,
    pub flush_timeout: Option<S<String>>,
    pub report_only: Option<bool>,
    pub on_release: Option<bool>,
    pub runbook_url: Option<S<String>>,
    pub digest: Option<S<RawDigest>>,
    #[serde(default)]
    pub sinks: Vec<S<RawSink>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDigest {
    pub at: S<String>,
    pub time_zone: Option<S<String>>,
    pub sinks: S<Vec<S<String>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStorm {
    pub max_alerts: S<u64>,
    pub per: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSink {
    pub name: S<String>,
    #[serde(rename = "type")]
    pub kind: S<String>,
    pub url: Option<S<String>>,
    pub url_env: Option<S<String>>,
    pub secret_env: Option<S<String>>,
    pub token_env: Option<S<String>>,
    pub signature_header: Option<S<String>>,
    pub ca: Option<S<String>>,
    /// `ja` or `en`.
    pub language: Option<S<String>>,
    pub time_zone: Option<S<String>>,
    /// Chatwork.
    pub room_id: Option<S<String>>,
    /// PagerDuty.
    pub routing_key_env: Option<S<String>>,
    /// Email.
    pub smtp: Option<S<String>>,
    pub tls: Option<S<String>>,
    pub username_env: Option<S<String>>,
    pub password_env: Option<S<String>>,
    pub from: Option<S<String>>,
    pub to: Option<S<Vec<S<String>>>>,
    /// LINE WORKS.
    pub bot_id: Option<S<String>>,
    pub channel_id: Option<S<String>>,
    pub user_id: Option<S<String>>,
    pub client_id: Option<S<String>>,
    pub service_account: Option<S<String>>,
    pub client_secret_env: Option<S<String>>,
    pub private_key_env: Option<S<String>>,
    pub private_key_file: Option<S<String>>,
    pub auth_url: Option<S<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    #[serde(default)]
    pub listen: Vec<S<RawListener>>,
    #[serde(default)]
    pub tls_listen: Vec<S<RawListener>>,
    pub tls: Option<S<RawTls>>,
    pub upstream: Option<S<String>>,
    pub upstream_ca: Option<S<String>>,
    pub admin: Option<S<String>>,
    /// A bearer token for the admin listener's controls.
    pub admin_auth: Option<S<RawAdminAuth>>,
    pub block_page: Option<S<String>>,
    /// On SIGTERM, how long to keep serving after `/readyz` fails.
    pub shutdown_delay: Option<S<String>>,
    #[serde(default)]
    pub timeouts: RawTimeouts,
    #[serde(default)]
    pub limits: RawLimits,
    pub log_allowed: Option<S<String>>,
    pub reload: Option<RawReload>,
    /// Protocols clients may upgrade to (`[websocket]` when absent).
    pub upgrades: Option<Vec<S<String>>>,
    /// The "why am I blocked?" page.
    pub whoami: Option<S<RawWhoami>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWhoami {
    pub enabled: Option<bool>,
    pub path: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdminAuth {
    /// The environment variable that holds the token (never the token).
    pub token_env: S<String>,
    /// Whether `/metrics` needs the token too.
    #[serde(default)]
    pub metrics: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawReload {
    pub watch: Option<bool>,
    pub interval: Option<S<String>>,
    pub guard: Option<S<RawGuard>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RawGuard {
    Refuse,
    Warn,
    Off,
}

/// A listener: `"0.0.0.0:8080"`, or `{ address: "0.0.0.0:8080", proxy_protocol: true }`.
#[derive(Debug)]
pub struct RawListener {
    pub address: S<String>,
    pub proxy_protocol: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawListenerMap {
    address: S<String>,
    #[serde(default)]
    proxy_protocol: bool,
}

/// The two spellings of a listener, before locations are attached.
enum ListenerForm {
    Addr(String),
    Map(RawListenerMap),
}

impl<'de> Deserialize<'de> for ListenerForm {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Vis;
        impl<'de> Visitor<'de> for Vis {
            type Value = ListenerForm;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an address such as \"0.0.0.0:8080\", or a mapping with address and proxy_protocol")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(ListenerForm::Addr(v.to_owned()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                RawListenerMap::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(ListenerForm::Map)
            }
        }
        d.deserialize_any(Vis)
    }
}

impl<'de> Deserialize<'de> for RawListener {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let form = S::<ListenerForm>::deserialize(d)?;
        Ok(match form.value {
            ListenerForm::Addr(a) => RawListener {
                address: Spanned::new(a, form.referenced, form.defined),
                proxy_protocol: false,
            },
            ListenerForm::Map(m) => RawListener {
                address: m.address,
                proxy_protocol: m.proxy_protocol,
            },
        })
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    pub cert: S<String>,
    pub key: S<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTimeouts {
    pub header_read: Option<S<String>>,
    pub idle: Option<S<String>>,
    pub upstream_connect: Option<S<String>>,
    pub upstream_response: Option<S<String>>,
    pub drain: Option<S<String>>,
    pub tunnel_idle: Option<S<String>>,
    pub upstream_idle: Option<S<String>>,
    pub send: Option<S<String>>,
    pub body_read: Option<S<String>>,
    /// Bytes a second; 0 turns the rate off.
    pub body_min_rate: Option<S<u64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    pub max_header_bytes: Option<S<u64>>,
    pub max_connections: Option<S<u64>>,
    pub upstream_connections: Option<S<u64>>,
    pub upstream_keepalive: Option<S<u64>>,
    pub max_connections_per_address: Option<S<u64>>,
    pub upstream_requests_per_address: Option<S<u64>>,
    pub upstream_requests_public: Option<S<u64>>,
    pub max_streams: Option<S<u64>>,
    pub response_buffer: Option<S<u64>>,
    pub response_buffers: Option<S<u64>>,
}

/// A network: a list of CIDRs, or a mapping with `cidrs`, `file`, `include`
/// and `except`.
#[derive(Debug)]
pub enum RawNetwork {
    List(Vec<S<RawCidr>>),
    Map(Box<RawNetworkMap>),
}

impl<'de> Deserialize<'de> for RawNetwork {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Vis;
        impl<'de> Visitor<'de> for Vis {
            type Value = RawNetwork;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of CIDRs, or a mapping with cidrs, file, include and except")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
                Vec::deserialize(de::value::SeqAccessDeserializer::new(seq)).map(RawNetwork::List)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                RawNetworkMap::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(|m| RawNetwork::Map(Box::new(m)))
            }
        }
        d.deserialize_any(Vis)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNetworkMap {
    #[serde(default)]
    pub cidrs: Vec<S<RawCidr>>,
    pub file: Option<S<String>>,
    #[serde(default)]
    pub include: Vec<S<String>>,
    #[serde(default)]
    pub except: Vec<S<String>>,
    /// ISO 3166-1 alpha-2 codes, or `{ not: [codes] }`.
    pub country: Option<S<RawCountry>>,
    pub asn: Option<S<Vec<S<u32>>>>,
    pub connection_type: Option<S<Vec<S<String>>>>,
    pub anonymous: Option<S<Vec<S<String>>>>,
    /// Addresses from a published list, kept current.
    pub feed: Option<S<RawFeed>>,
    /// DNS names whose A and AAAA records are members, kept current.
    #[serde(default)]
    pub dns_names: Vec<S<String>>,
    /// Addresses (one a line) standing in for `dns_names` where `check`
    /// and tests have no answer in `feeds.state_dir`.
    pub dns_snapshot: Option<S<String>>,
}

/// A network entry: `203.0.113.0/24`, or an expiring grant
/// `{ cidr: 192.0.2.7/32, until: 2026-12-24T18:00:00+09:00, note: "..." }`.
#[derive(Debug)]
pub enum RawCidr {
    /// Located by the `S` around the entry.
    Plain(String),
    Grant(RawGrant),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGrant {
    pub cidr: S<String>,
    pub until: S<String>,
    pub note: Option<String>,
}

impl<'de> Deserialize<'de> for RawCidr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Vis;
        impl<'de> Visitor<'de> for Vis {
            type Value = RawCidr;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a CIDR, or { cidr, until, note } for a grant that expires")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(RawCidr::Plain(v.to_string()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                RawGrant::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(RawCidr::Grant)
            }
        }
        d.deserialize_any(Vis)
    }
}

/// `country: [JP, KR]` or `country: { not: [JP] }`.
#[derive(Debug)]
pub enum RawCountry {
    AnyOf(Vec<S<String>>),
    NoneOf(Vec<S<String>>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCountryNot {
    not: Vec<S<String>>,
}

impl<'de> Deserialize<'de> for RawCountry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Vis;
        impl<'de> Visitor<'de> for Vis {
            type Value = RawCountry;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of country codes, or { not: [codes] }")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
                Vec::deserialize(de::value::SeqAccessDeserializer::new(seq)).map(RawCountry::AnyOf)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                RawCountryNot::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(|n| RawCountry::NoneOf(n.not))
            }
        }
        d.deserialize_any(Vis)
    }
}

/// The `geoip:` section: each database optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGeoip {
    pub country: Option<S<RawDb>>,
    pub asn: Option<S<RawDb>>,
    pub connection_type: Option<S<RawDb>>,
    pub anonymous_ip: Option<S<RawDb>>,
    /// Log GeoIP facts on allowed requests too (off: fewer lookups, less personal data).
    #[serde(default)]
    pub log_geo_on_allow: bool,
    /// How often `serve` checks the files for updates (`10s`).
    pub check_interval: Option<S<String>>,
}

/// A database: a path, or `{ path, field }` for vendor layouts.
#[derive(Debug)]
pub struct RawDb {
    pub path: String,
    pub field: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDbMap {
    path: String,
    field: Option<String>,
}

impl<'de> Deserialize<'de> for RawDb {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Vis;
        impl<'de> Visitor<'de> for Vis {
            type Value = RawDb;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a database path, or { path, field }")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(RawDb {
                    path: v.to_owned(),
                    field: None,
                })
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                RawDbMap::deserialize(de::value::MapAccessDeserializer::new(map)).map(|m| RawDb {
                    path: m.path,
                    field: m.field,
                })
            }
        }
        d.deserialize_any(Vis)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawClientIp {
    #[serde(default)]
    pub trusted_proxies: Vec<S<String>>,
    pub header: Option<S<String>>,
    /// Believe a trusted proxy's `X-Forwarded-Proto`.
    #[serde(default)]
    pub trust_proto: bool,
    /// More client-address headers to remove before forwarding.
    #[serde(default)]
    pub strip_headers: Vec<S<String>>,
    /// Warn when the client addresses look like a deployment mistake.
    pub self_check: Option<bool>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RawAction {
    Allow,
    Deny,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRule {
    pub name: S<String>,
    pub description: Option<String>,
    pub paths: Option<S<Vec<S<String>>>>,
    pub methods: Option<S<Vec<S<String>>>>,
    pub hosts: Option<S<Vec<S<String>>>>,
    #[serde(default)]
    pub login: bool,
    pub action: Option<S<RawAction>>,
    pub allow_from: Option<S<Vec<S<String>>>>,
    pub deny_from: Option<S<Vec<S<String>>>>,
    /// `enforce` (default) or `report`.
    pub mode: Option<S<RawMode>>,
    /// Login routes: what a failed sign-in looks like in the response.
    pub outcome: Option<S<RawOutcome>>,
    /// Login routes: where the sign-in's body names the account.
    pub account: Option<S<RawAccount>>,
    /// Login routes: only sign-ins naming an account of these groups.
    pub accounts: Option<S<Vec<S<String>>>>,
    /// Only clients whose verified identity this names.
    pub who: Option<S<RawWho>>,
    /// The rule matches nothing from this instant on.
    pub until: Option<S<String>>,
    /// Time windows: one, or a list; the rule matches only inside one.
    pub when: Option<S<RawWhen>>,
}

/// `when:` one window or a list of them.
#[derive(Debug)]
pub enum RawWhen {
    One(Box<S<RawWindow>>),
    Many(Vec<S<RawWindow>>),
}

/// A window: `{ days: [mon-fri], hours: "08:00-20:00", time_zone: Asia/Tokyo }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWindow {
    pub days: Option<S<OneOrMany>>,
    pub hours: Option<S<String>>,
    pub time_zone: Option<S<String>>,
}

impl<'de> Deserialize<'de> for RawWhen {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Vis;
        impl<'de> Visitor<'de> for Vis {
            type Value = RawWhen;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a window { days, hours, time_zone }, or a list of them")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
                Vec::deserialize(de::value::SeqAccessDeserializer::new(seq)).map(RawWhen::Many)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                RawWindow::deserialize(de::value::MapAccessDeserializer::new(map)).map(|w| {
                    RawWhen::One(Box::new(S {
                        value: w,
                        referenced: serde_saphyr::Location::UNKNOWN,
                        defined: serde_saphyr::Location::UNKNOWN,
                    }))
                })
            }
        }
        d.deserialize_any(Vis)
    }
}

/// A login rule's `account:`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAccount {
    pub form: Option<S<String>>,
    pub json: Option<S<String>>,
    pub max_body: Option<S<u64>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RawMode {
    Enforce,
    Report,
}

/// One value or a list of them (a test's header lines, a feed's JSON paths).
#[derive(Debug)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl<'de> Deserialize<'de> for OneOrMany {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Vis;
        impl<'de> Visitor<'de> for Vis {
            type Value = OneOrMany;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a value (quote it if it looks like a number) or a list of values")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(OneOrMany::One(v.to_owned()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
                Vec::deserialize(de::value::SeqAccessDeserializer::new(seq)).map(OneOrMany::Many)
            }
        }
        d.deserialize_any(Vis)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTest {
    pub description: Option<String>,
    pub ip: Option<S<String>>,
    pub peer: Option<S<String>>,
    pub headers: Option<Entries<String, OneOrMany>>,
    pub method: Option<String>,
    pub path: Option<String>,
    pub host: Option<String>,
    pub expect: S<RawAction>,
    pub rule: Option<S<String>>,
    /// The instant to decide at (RFC 3339 with an offset).
    pub at: Option<S<String>>,
    /// The account the sign-in names, for rules with `accounts:`.
    pub account: Option<S<String>>,
    /// The identity the auth layer vouched for, for rules with `who:`.
    pub identity: Option<S<RawTestIdentity>>,
}
