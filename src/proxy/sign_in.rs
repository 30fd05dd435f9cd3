//! The sign-in phase of a request a login rule forwards: before it goes to
//! the console, read the account (if the rule says where), find the
//! lockout key and hold the sign-in's place, or refuse it (locked out);
//! after the console's answer, read the outcome from the response head and
//! count it (docs/lockout.md).

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use http::{HeaderMap, HeaderValue, Response, header};
use hyper::body::Incoming;

use super::body::{Head, RequestBody};
use super::service::{ProxyBody, Shared};
use crate::engine::account::{self, NoAccount};
use crate::engine::outcome::{LoginOutcome, OutcomeSpec, classify};
use crate::lockout::{Failure, Key, Refusal, Reservation, Settings};
use crate::policy::{Policy, Rule};

/// A sign-in on its way to the console.
pub struct SignIn<'a> {
    rule: &'a Rule,
    spec: &'a OutcomeSpec,
    key: Key,
    /// What the log shows of the account: its hash's first bytes.
    account: Option<String>,
    /// `login.account` in the decision line: `read`, or why not.
    pub account_state: Option<&'static str>,
    reservation: Option<Reservation<'a>>,
}

/// Why a sign-in stops here.
pub enum Stop {
    /// Locked out: retry after this many seconds (rounded up); what the
    /// lock holds.
    Locked {
        retry_after: u64,
        scope: crate::proxy::pages::LockScope,
    },
    /// `on_store_error: deny_login` while Redis is down.
    StoreUnavailable,
    /// The client's body broke off while it was read.
    BrokenBody,
}

/// The lockout key of a client: its address, or, for a client whose
/// address is unknown (a login rule with `action: allow` lets it sign in),
/// one key that every unknown client shares, so that making oneself
/// unknown does not escape the count (second red-team review).
fn client_key_address(client: Option<IpAddr>) -> IpAddr {
    client.unwrap_or(std::net::Ipv4Addr::UNSPECIFIED.into())
}

/// A sign-in's body as it reaches [`begin`].
pub enum Body<'s> {
    /// Not read yet: read there if the rule says where the account is.
    Fresh(Incoming),
    /// Read already, to decide by the account (`accounts:`).
    Read(Read<'s>),
    /// It broke off while it was read: nothing to forward.
    Broken,
}

impl Body<'_> {
    /// The body to forward, however far it was read (`None`: broken).
    pub fn forward(self) -> Option<RequestBody> {
        match self {
            Body::Fresh(b) => Some(b.into()),
            Body::Read(r) => Some(r.body),
            Body::Broken => None,
        }
    }
}

/// A body read for its account.
pub struct Read<'s> {
    pub body: RequestBody,
    /// The `account:` it was read by.
    pub spec: &'s account::AccountSpec,
    /// How much of it was read (`None`: nothing, its type is not one the
    /// spec reads).
    seen: Option<Head>,
    /// The account the body and the query name, or why none.
    pub found: Result<String, NoAccount>,
}

/// Reads the account a sign-in names (its body's first part, bounded in
/// size and time, and its query), keeping every byte to forward. `None`:
/// the body broke off while it was read.
pub async fn read<'s>(
    shared: &Shared,
    spec: &'s account::AccountSpec,
    head: &http::request::Parts,
    body: Incoming,
) -> Option<Read<'s>> {
    let (body, seen, found) = read_account(shared, spec, &head.headers, body).await;
    let body = body?;
    // The query string too: Servlet's getParameter reads it first,
    // Flask's request.values and Rails' params merge it (issue 22, the
    // decoy account).
    let found = account::merge(
        found.map(std::borrow::Cow::Owned),
        account::from_query(spec, head.uri.query().unwrap_or_default().as_bytes()),
    )
    .map(std::borrow::Cow::into_owned);
    Some(Read {
        body,
        spec,
        seen,
        found,
    })
}

impl Read<'_> {
    /// The account by another rule's `account:` than the one it was read
    /// by (a rule with `accounts:` read it; a later login rule decided):
    /// from the bytes read, as far as they go.
    fn found_by(
        &self,
        other: &account::AccountSpec,
        head: &http::request::Parts,
    ) -> Result<String, NoAccount> {
        if other == self.spec {
            return self.found.clone();
        }
        let in_body = match (precheck(other, &head.headers), &self.seen) {
            (Err(why), _) => Err(why),
            (Ok(format), Some(Head::Whole)) if self.body.head().len() <= other.max_body => {
                account::extract(other, format, self.body.head()).map(std::borrow::Cow::into_owned)
            }
            (Ok(_), Some(Head::Slow)) => Err(NoAccount::Slow),
            // Read by a smaller bound, or not read at all (another
            // content type): not read now either.
            (Ok(_), Some(Head::Whole | Head::Oversized) | None) => Err(NoAccount::Oversized),
        };
        account::merge(
            in_body.map(std::borrow::Cow::Owned),
            account::from_query(other, head.uri.query().unwrap_or_default().as_bytes()),
        )
        .map(std::borrow::Cow::into_owned)
    }
}

/// Before forwarding: the account, the key, the place.
pub async fn begin<'a>(
    shared: &'a Shared,
    policy: &'a Policy,
    rule: &'a Rule,
    spec: &'a OutcomeSpec,
    client: Option<IpAddr>,
    head: &http::request::Parts,
    body: Body<'_>,
) -> (SignIn<'a>, Result<RequestBody, Stop>) {
    let settings = policy.lockout();
    let mut sign_in = SignIn {
        rule,
        spec,
        key: Key::address(client_key_address(client)),
        account: None,
        account_state: None,
        reservation: None,
    };
    let mut account_id = None;
    let (body, found) = match (body, &rule.account) {
        (Body::Broken, _) => return (sign_in, Err(Stop::BrokenBody)),
        (Body::Fresh(body), None) => (RequestBody::from(body), None),
        (Body::Read(r), None) => (r.body, None),
        (Body::Fresh(body), Some(a)) => match read(shared, a, head, body).await {
            Some(r) => (r.body, Some(r.found)),
            None => return (sign_in, Err(Stop::BrokenBody)),
        },
        (Body::Read(r), Some(a)) => {
            let found = r.found_by(a, head);
            (r.body, Some(found))
        }
    };
    match found {
        Some(Ok(name)) => {
            let id = shared.lockout.accounts.id(&name);
            sign_in.account = Some(crate::lockout::account_tag(&id));
            sign_in.account_state = Some("read");
            account_id = Some(id);
        }
        Some(Err(why)) => sign_in.account_state = Some(why.as_str()),
        None => {}
    }
    if let Some(s) = settings {
        sign_in.key = Key::of(s.key, client_key_address(client), account_id);
        match shared.lockout.begin(sign_in.key, s).await {
            Ok(r) => sign_in.reservation = Some(r),
            Err(Refusal::Wait(d)) => {
                // Rounded up: a client that waits this long gets in.
                let retry_after = (d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(1);
                let scope = lock_scope(&sign_in.key);
                return (sign_in, Err(Stop::Locked { retry_after, scope }));
            }
            Err(Refusal::StoreUnavailable) => return (sign_in, Err(Stop::StoreUnavailable)),
        }
    }
    (sign_in, Ok(body))
}

/// The format the body's headers say the account is in, if `a` reads it.
fn precheck<'h>(
    a: &account::AccountSpec,
    headers: &'h HeaderMap,
) -> Result<account::Format<'h>, NoAccount> {
    let mut types = headers.get_all(header::CONTENT_TYPE).iter();
    let (first, second) = (types.next(), types.next());
    // Two Content-Type lines: servers differ on which they use (second
    // red-team review of accounts); both go to the console, so neither is
    // believed.
    if second.is_some() {
        return Err(NoAccount::Ambiguous);
    }
    // A compressed body: the console may inflate it (Express does) and read
    // another account than the raw bytes name (third red-team review of
    // accounts).
    if headers
        .get_all(header::CONTENT_ENCODING)
        .iter()
        .any(|v| !v.as_bytes().trim_ascii().eq_ignore_ascii_case(b"identity"))
    {
        return Err(NoAccount::Unparseable);
    }
    account::format(a, first.map(HeaderValue::as_bytes)).ok_or(NoAccount::Missing)
}

/// The account a sign-in's body names, the body to forward (`None`: it
/// broke off while it was read) and how much of it was read.
async fn read_account(
    shared: &Shared,
    a: &account::AccountSpec,
    headers: &HeaderMap,
    body: Incoming,
) -> (Option<RequestBody>, Option<Head>, Result<String, NoAccount>) {
    let format = match precheck(a, headers) {
        Ok(f) => f,
        Err(why) => return (Some(RequestBody::from(body)), None, Err(why)),
    };
    let Ok((body, head)) =
        super::body::read_head(body, a.max_body, shared.timeouts.header_read).await
    else {
        return (None, None, Err(NoAccount::Missing));
    };
    let found = match head {
        Head::Whole => account::extract(a, format, body.head()).map(std::borrow::Cow::into_owned),
        Head::Oversized => Err(NoAccount::Oversized),
        Head::Slow => Err(NoAccount::Slow),
    };
    (Some(body), Some(head), found)
}

/// What a lock on `key` holds, in the page's words.
fn lock_scope(key: &Key) -> crate::proxy::pages::LockScope {
    use crate::proxy::pages::LockScope;
    match key {
        Key::Address(_) => LockScope::Address,
        Key::AccountAndNetwork(..) => LockScope::AccountFromNetwork,
        Key::Account(_) => LockScope::Account,
        Key::Network(_) | Key::Unread => LockScope::Unnamed,
    }
}

pub fn count_login(shared: &Shared, rule: &Rule, outcome: &'static str) {
    shared
        .metrics
        .logins
        .get_or_create(&crate::telemetry::metrics::LoginOutcomeLabels {
            rule: crate::telemetry::metrics::Name(rule.label.clone()),
            outcome,
        })
        .inc();
}

/// What the events of one sign-in's outcome say, owned: with a shared
/// store they are written once Redis has answered, after the response.
struct Report {
    request_id: String,
    client: String,
    rule: Arc<str>,
    account: Option<String>,
    key: Key,
}

impl SignIn<'_> {
    /// After the console's answer: the outcome from the response head,
    /// counted against the key, and said (`login_failed`,
    /// `login_succeeded`, `lockout`). With Redis the counting runs in the
    /// background: the response does not wait for it.
    pub fn finish(
        self,
        shared: &Arc<Shared>,
        policy: &Policy,
        request_id: &str,
        client: Option<IpAddr>,
        response: &Response<ProxyBody>,
        attempt: impl FnOnce() -> crate::alerts::Attempt,
    ) -> &'static str {
        let headers = response.headers();
        let outcome = classify(self.spec, response.status().as_u16(), |name| {
            headers.get(name).map(HeaderValue::as_bytes)
        });
        count_login(shared, self.rule, outcome.as_str());
        let report = Report {
            request_id: request_id.to_string(),
            client: client.map_or_else(|| "unknown".to_string(), |ip| ip.to_string()),
            rule: self.rule.label.clone(),
            account: self.account,
            key: self.key,
        };
        let (key, reservation) = (self.key, self.reservation);
        match (outcome, policy.lockout().cloned()) {
            (LoginOutcome::Failed, Some(s)) => {
                let attempt = attempt();
                match reservation {
                    Some(Reservation::Redis(r)) => {
                        let shared = shared.clone();
                        tokio::spawn(async move {
                            let store = shared.lockout.redis.clone();
                            let counted = match &store {
                                Some(store) => store.failure(r, &s).await.ok(),
                                None => None,
                            };
                            let in_redis = counted.is_some();
                            // Redis went away since the sign-in began: count
                            // here, as the fallback would have.
                            let result = counted.or_else(|| memory_failure(&shared, key, &s));
                            if let (Some(Failure::Locked { lock, .. }), Some(unread)) =
                                (result, key.unread_scope())
                            {
                                let held = match (&store, in_redis) {
                                    (Some(store), true) => {
                                        store.hold(unread, lock, &s).await.is_ok()
                                    }
                                    _ => false,
                                };
                                if !held {
                                    let m = &shared.lockout.memory;
                                    m.hold(unread, m.now(), lock, &s);
                                }
                            }
                            said_failure(&shared, &report, &s, result, attempt);
                        });
                    }
                    Some(Reservation::Uncounted) => {
                        said_failure(shared, &report, &s, None, attempt)
                    }
                    memory => {
                        let result = memory_failure(shared, key, &s);
                        drop(memory);
                        if let (Some(Failure::Locked { lock, .. }), Some(unread)) =
                            (result, key.unread_scope())
                        {
                            let m = &shared.lockout.memory;
                            m.hold(unread, m.now(), lock, &s);
                        }
                        said_failure(shared, &report, &s, result, attempt);
                    }
                }
            }
            (LoginOutcome::Failed, None) => {
                said_failure(shared, &report, &Settings::default(), None, attempt());
            }
            (LoginOutcome::Succeeded, s) => {
                if let Some(mut s) = s {
                    // Nobody knows whose success a sign-in without an
                    // account was: it resets nothing, or an attacker's own
                    // account would clear the count of guesses made
                    // unreadable (issue 22).
                    s.reset_on_success &= !key.is_unread();
                    match reservation {
                        Some(Reservation::Redis(r)) => {
                            let shared = shared.clone();
                            tokio::spawn(async move {
                                if let Some(store) = shared.lockout.redis.clone()
                                    && store.success(r, &s).await.is_err()
                                {
                                    let m = &shared.lockout.memory;
                                    m.success(key, m.now(), &s);
                                }
                            });
                        }
                        memory => {
                            let m = &shared.lockout.memory;
                            m.success(key, m.now(), &s);
                            drop(memory);
                        }
                    }
                }
                tracing::info!(
                    event = "login_succeeded",
                    request_id = report.request_id,
                    client.address = report.client,
                    rule = &*report.rule,
                    account.hash = report.account.as_deref(),
                    "sign-in accepted by the console"
                );
            }
            (LoginOutcome::Unknown, _) => drop(reservation),
        }
        outcome.as_str()
    }
}

/// Counts a failure in this process's memory, keeping the table's gauges.
fn memory_failure(shared: &Shared, key: Key, s: &Settings) -> Option<Failure> {
    let table = &shared.lockout.memory;
    let result = table.failure(key, table.now(), s);
    shared
        .metrics
        .lockout_entries
        .set(i64::try_from(table.len()).unwrap_or(i64::MAX));
    shared
        .metrics
        .lockout_evictions
        .inner()
        .fetch_max(table.evicted(), Ordering::Relaxed);
    Some(result)
}

/// The `login_failed` line and, when the failure locked its key, the
/// `lockout` warning, metric and alert.
fn said_failure(
    shared: &Shared,
    r: &Report,
    s: &Settings,
    result: Option<Failure>,
    attempt: crate::alerts::Attempt,
) {
    let account = r.account.as_deref();
    let failures = match result {
        None => None,
        Some(Failure::Counted { failures }) => Some(failures),
        Some(Failure::Locked { .. }) => Some(s.after),
    };
    tracing::info!(
        event = "login_failed",
        request_id = r.request_id,
        client.address = r.client,
        rule = &*r.rule,
        account.hash = account,
        failures,
        "sign-in refused by the console"
    );
    let Some(Failure::Locked { lock, strike }) = result else {
        return;
    };
    shared.metrics.lockouts.inc();
    if let Some(alerts) = shared.alerts.current() {
        alerts.lockout(crate::alerts::Lockout {
            attempt,
            failures: s.after,
            lock,
            strike,
            account: r.account.clone().filter(|_| r.key.is_account()),
            network: r.key.network(),
        });
    }
    tracing::warn!(
        event = "lockout",
        request_id = r.request_id,
        client.address = r.client,
        rule = &*r.rule,
        account.hash = account,
        key = s.key.as_str(),
        failures = s.after,
        lock_seconds = lock.as_secs(),
        strike,
        "too many failed sign-ins: this key is locked out"
    );
}
