//! What each sink receives, rendered from one [`Alert`]. Pure.
//!
//! Every payload says when, the client address and how it was derived, the
//! known GeoIP facts, the rule, host, normalized path (never the query),
//! user agent, request id, and how many attempts it stands for. Report-only
//! would-be blocks say so. Nothing else of the request is ever in an
//! [`super::Attempt`], so nothing else can leak here.

use std::time::Duration;

use serde_json::{Map, Value, json};

use super::{Alert, Attempt, Storm};
use crate::telemetry::json::rfc3339;

/// Version of the webhook body; bumped on incompatible changes.
pub const WEBHOOK_VERSION: u32 = 1;

/// One line for people, in English: "Blocked login attempt from
/// 203.0.113.7 (rule login)". The webhook's `summary` (stable for
/// automation); each sink's own language is in its `text`.
pub fn headline(alert: &Alert) -> String {
    super::message::headline(alert, crate::words::Lang::En)
}

fn geo_json(a: &Attempt) -> Option<Value> {
    let f = a.facts.as_ref()?;
    let mut m = Map::new();
    if let Some(c) = f.country {
        m.insert("country".into(), c.to_string().into());
    }
    if let Some(n) = f.asn {
        m.insert("asn".into(), n.into());
    }
    if let Some(o) = &f.as_org {
        m.insert("as_org".into(), o.clone().into());
    }
    if let Some(t) = f.connection_type {
        m.insert("connection_type".into(), t.into());
    }
    if let Some(flags) = f.anonymous {
        let names: Vec<Value> = flags.names().map(Value::from).collect();
        m.insert("anonymous".into(), names.into());
    }
    (!m.is_empty()).then_some(Value::Object(m))
}

fn attempt_json(a: &Attempt) -> Value {
    let mut v = json!({
        "time": rfc3339(a.at),
        "client": {
            "address": a.client.map(|ip| ip.to_string()),
            "source": a.client_source,
            "derivation": a.derivation,
            "peer": a.peer.to_string(),
        },
        "rule": &*a.rule,
        "request": {
            "method": a.method,
            "host": a.host,
            "path": a.path,
            "user_agent": a.user_agent,
            "request_id": a.request_id,
        },
        "enforced": a.enforced,
    });
    if let (Some(geo), Value::Object(m)) = (geo_json(a), &mut v) {
        m.insert("geo".into(), geo);
    }
    v
}

fn feed_json(p: &crate::alerts::FeedProblem) -> Value {
    json!({
        "network": p.network,
        "url": p.url,
        "problem": p.problem,
        "reason": p.reason,
        "detail": p.detail,
        "age_seconds": p.age.as_secs(),
        "on_stale": p.on_stale,
    })
}

/// The section of docs/operations.md (or the company's copy) that says
/// what to do about `alert`.
pub fn runbook_section(alert: &Alert) -> &'static str {
    match alert {
        Alert::Attempt(_) | Alert::Summary(_) => "blocked-sign-in",
        Alert::Storm(_) => "storm",
        Alert::Lockout(_) => "lockout",
        Alert::StateStore(_) | Alert::StateStoreRestored { .. } => "state-store",
        Alert::Released(_) => "lockout",
        Alert::Feed(_) => "feed",
        Alert::Digest(_) => "digest",
        Alert::SinkDisabled(_) => "alert-sink-disabled",
        Alert::Test { .. } => "alert-test",
    }
}

/// `body` (as a sink's kind builds it) with the link to its runbook:
/// `runbook` in the webhook's JSON, Prometheus's own `runbook_url`
/// annotation for Alertmanager. (The worded formats carry it in their
/// message.)
pub fn with_runbook(mut body: Value, kind: &str, url: &str) -> Value {
    match kind {
        "webhook" => body["runbook"] = url.into(),
        "alertmanager" => {
            if let Some(a) = body.get_mut(0) {
                a["annotations"]["runbook_url"] = url.into();
            }
        }
        _ => {}
    }
    body
}

/// The generic webhook's JSON body; `text` is the alert in the sink's
/// language (formats::text).
pub fn webhook(alert: &Alert, instance: &str, key: &str, text: &str) -> Value {
    let mut v = json!({
        "version": WEBHOOK_VERSION,
        "source": "netwarden",
        "instance": instance,
        "kind": alert.kind(),
        "summary": headline(alert),
        "text": text,
    });
    let Value::Object(m) = &mut v else {
        return v;
    };
    match alert {
        Alert::Attempt(a) => {
            m.insert("time".into(), rfc3339(a.at).into());
            m.insert("enforced".into(), a.enforced.into());
            m.insert("attempts".into(), 1.into());
            m.insert("attempt".into(), attempt_json(a));
        }
        Alert::Summary(s) => {
            m.insert("time".into(), rfc3339(s.to).into());
            m.insert("enforced".into(), s.enforced.into());
            m.insert("attempts".into(), s.attempts.into());
            m.insert(
                "key".into(),
                json!({"by": key, "value": s.scope.to_string()}),
            );
            m.insert(
                "window".into(),
                json!({"from": rfc3339(s.from), "to": rfc3339(s.to)}),
            );
            m.insert("last_attempt".into(), attempt_json(&s.last));
        }
        Alert::Storm(s) => {
            m.insert("time".into(), rfc3339(s.to).into());
            m.insert("enforced".into(), (s.would_be < s.attempts).into());
            m.insert("attempts".into(), s.attempts.into());
            m.insert("would_be_attempts".into(), s.would_be.into());
            m.insert("sources".into(), s.sources.into());
            m.insert(
                "window".into(),
                json!({"from": rfc3339(s.from), "to": rfc3339(s.to)}),
            );
            m.insert("key".into(), json!({"by": key}));
            m.insert("top_sources".into(), top_json(s));
        }
        Alert::Lockout(l) => {
            m.insert("time".into(), rfc3339(l.attempt.at).into());
            m.insert("enforced".into(), true.into());
            m.insert("attempts".into(), l.failures.into());
            m.insert(
                "lockout".into(),
                json!({
                    "failures": l.failures,
                    "lock_seconds": l.lock.as_secs(),
                    "strike": l.strike,
                    "account_hash": l.account,
                    "network": l.network,
                }),
            );
            m.insert("attempt".into(), attempt_json(&l.attempt));
        }
        Alert::StateStore(d) => {
            m.insert("time".into(), rfc3339(d.at).into());
            m.insert("attempts".into(), 0.into());
            m.insert(
                "state_store".into(),
                json!({"error": d.error, "on_store_error": d.on_store_error}),
            );
        }
        Alert::Released(r) => {
            m.insert("time".into(), rfc3339(r.at).into());
            m.insert("attempts".into(), 0.into());
            m.insert(
                "release".into(),
                json!({
                    "admin_address": r.by.to_string(),
                    "selector": r.selector,
                    "target": r.target,
                    "released": r.released,
                }),
            );
        }
        Alert::Feed(p) => {
            m.insert("time".into(), rfc3339(p.at).into());
            m.insert("attempts".into(), 0.into());
            m.insert("feed".into(), feed_json(p));
        }
        Alert::SinkDisabled(d) => {
            m.insert("time".into(), rfc3339(d.at).into());
            m.insert("attempts".into(), 0.into());
            m.insert(
                "sink_disabled".into(),
                json!({"sink": d.sink, "why": d.why}),
            );
        }
        Alert::Digest(d) => {
            m.insert("time".into(), rfc3339(d.to).into());
            m.insert("attempts".into(), d.tally.blocked.into());
            m.insert("digest".into(), digest_json(d));
        }
        Alert::StateStoreRestored { at } | Alert::Test { at } => {
            m.insert("time".into(), rfc3339(*at).into());
            m.insert("attempts".into(), 0.into());
        }
    }
    v
}

fn digest_json(d: &super::digest::Digest) -> Value {
    use super::digest::{TOP, TOP_ADDRESSES};
    let t = &d.tally;
    let top = |c: &super::digest::Counts, n| -> Value {
        c.top(n)
            .into_iter()
            .map(|(k, n)| json!({"key": k, "attempts": n}))
            .collect()
    };
    json!({
        "from": rfc3339(t.since),
        "to": rfc3339(d.to),
        "replicas": d.replicas,
        "quiet": d.is_quiet(),
        "blocked": t.blocked,
        "would_be_blocked": t.would_be,
        "by_subnet": top(&t.by_subnet, TOP),
        "by_country": top(&t.by_country, TOP),
        "by_asn": top(&t.by_asn, TOP),
        "top_addresses": top(&t.by_address, TOP_ADDRESSES),
        "lockouts": t.lockouts,
        "releases": t.releases,
        "reloads_refused": t.reloads_refused,
        "grants_ending": d.extras.grants_ending.iter().map(|(network, cidr, until)| json!({
            "network": network, "cidr": cidr, "until": rfc3339(*until),
        })).collect::<Vec<_>>(),
        "disabled_sinks": d.extras.disabled_sinks,
        "self_check": d.extras.self_check,
    })
}

fn top_json(s: &Storm) -> Value {
    s.top
        .iter()
        .map(|(scope, n)| json!({"key": scope.to_string(), "attempts": n}))
        .collect()
}

/// Prometheus Alertmanager `POST /api/v2/alerts`: a list of one alert. It
/// ends after `window` (Alertmanager resolves it then) unless sent again;
/// a store that answers again ends its alert at once. `summary` is the
/// headline in the sink's language.
pub fn alertmanager(
    alert: &Alert,
    instance: &str,
    key: &str,
    window: Duration,
    summary: &str,
) -> Value {
    let (at, alertname, enforced) = match alert {
        Alert::Attempt(a) => (a.at, "NetwardenBlockedLogin", a.enforced),
        Alert::Summary(s) => (s.to, "NetwardenBlockedLogin", s.enforced),
        Alert::Storm(s) => (s.to, "NetwardenBlockedLoginStorm", s.would_be < s.attempts),
        Alert::Lockout(l) => (l.attempt.at, "NetwardenLockout", true),
        Alert::StateStore(d) => (d.at, "NetwardenStateStoreUnavailable", true),
        Alert::StateStoreRestored { at } => (*at, "NetwardenStateStoreUnavailable", true),
        Alert::Released(r) => (r.at, "NetwardenLockoutReleased", false),
        Alert::Feed(p) => (p.at, "NetwardenFeedNotCurrent", true),
        // The policy sends no digest here; a report, never a page.
        Alert::Digest(d) => (d.to, "NetwardenDigest", false),
        Alert::SinkDisabled(d) => (d.at, "NetwardenAlertSinkDisabled", true),
        Alert::Test { at } => (*at, "NetwardenAlertTest", true),
    };
    let mut labels = Map::new();
    labels.insert("alertname".into(), alertname.into());
    labels.insert(
        "severity".into(),
        if enforced { "warning" } else { "info" }.into(),
    );
    labels.insert("instance".into(), instance.into());
    if let Alert::Feed(p) = alert {
        // About netwarden's input, not a client: nothing is enforced or not.
        labels.insert("network".into(), p.network.clone().into());
        labels.insert("feed_problem".into(), p.problem.into());
    } else if matches!(alert, Alert::Released(_)) {
        // An operator's act, not a block: nothing is enforced or not.
        labels.insert("severity".into(), "info".into());
    } else {
        labels.insert("enforced".into(), enforced.to_string().into());
    }
    let mut ann = Map::new();
    ann.insert("summary".into(), summary.into());
    let attempt = match alert {
        Alert::Attempt(a) => Some(&**a),
        Alert::Lockout(l) => Some(&l.attempt),
        Alert::Summary(s) => Some(&*s.last),
        _ => None,
    };
    match alert {
        Alert::Attempt(a) => {
            labels.insert("rule".into(), (*a.rule).into());
            labels.insert(
                "client".into(),
                a.client
                    .map_or_else(|| "unknown".to_string(), |ip| ip.to_string())
                    .into(),
            );
            ann.insert("attempts".into(), "1".into());
        }
        Alert::Summary(s) => {
            labels.insert("rule".into(), (*s.last.rule).into());
            labels.insert("client".into(), s.scope.to_string().into());
            ann.insert("attempts".into(), s.attempts.to_string().into());
            ann.insert("key".into(), key.into());
            ann.insert("window_from".into(), rfc3339(s.from).into());
        }
        Alert::Lockout(l) => {
            labels.insert("rule".into(), (*l.attempt.rule).into());
            labels.insert(
                "client".into(),
                l.attempt
                    .client
                    .map_or_else(|| "unknown".to_string(), |ip| ip.to_string())
                    .into(),
            );
            ann.insert("attempts".into(), l.failures.to_string().into());
            ann.insert("lock_seconds".into(), l.lock.as_secs().to_string().into());
            ann.insert("strike".into(), l.strike.to_string().into());
            if let Some(a) = &l.account {
                ann.insert("account_hash".into(), a.clone().into());
            }
            if let Some(n) = &l.network {
                ann.insert("locked_network".into(), n.clone().into());
            }
        }
        Alert::Storm(s) => {
            ann.insert("attempts".into(), s.attempts.to_string().into());
            ann.insert("sources".into(), s.sources.to_string().into());
            ann.insert("key".into(), key.into());
            ann.insert("window_from".into(), rfc3339(s.from).into());
            let top: Vec<String> = s.top.iter().map(|(k, n)| format!("{k}: {n}")).collect();
            ann.insert("top_sources".into(), top.join(", ").into());
        }
        Alert::StateStore(d) => {
            ann.insert("error".into(), d.error.clone().into());
            ann.insert("on_store_error".into(), d.on_store_error.into());
        }
        Alert::Feed(p) => {
            ann.insert("url".into(), p.url.clone().into());
            ann.insert("reason".into(), p.reason.into());
            ann.insert("detail".into(), p.detail.clone().into());
            ann.insert("age_seconds".into(), p.age.as_secs().to_string().into());
            ann.insert("on_stale".into(), p.on_stale.into());
        }
        Alert::Released(r) => {
            ann.insert("admin_address".into(), r.by.to_string().into());
            ann.insert("selector".into(), r.selector.into());
            ann.insert("target".into(), r.target.clone().into());
            ann.insert("released".into(), r.released.to_string().into());
        }
        Alert::SinkDisabled(d) => {
            labels.insert("sink".into(), d.sink.clone().into());
            ann.insert("why".into(), d.why.clone().into());
        }
        Alert::StateStoreRestored { .. } | Alert::Digest(_) | Alert::Test { .. } => {}
    }
    if let Some(a) = attempt {
        ann.insert(
            "client_address".into(),
            a.client.map(|ip| ip.to_string()).unwrap_or_default().into(),
        );
        ann.insert("client_derivation".into(), a.derivation.clone().into());
        ann.insert("peer_address".into(), a.peer.to_string().into());
        // Alertmanager's templates show annotations to people: what the
        // client (or an AS's registrant) chose is defanged, as in the
        // worded formats.
        use super::message::defang;
        if let Some(f) = &a.facts {
            ann.insert("network".into(), defang(&f.to_string()).into());
        }
        ann.insert("host".into(), defang(&a.host).into());
        ann.insert("path".into(), defang(&a.path).into());
        ann.insert("method".into(), defang(&a.method).into());
        ann.insert("user_agent".into(), defang(&a.user_agent).into());
        ann.insert("request_id".into(), a.request_id.clone().into());
    }
    // The same labels as the down alert, ending now: resolved.
    let ends = if matches!(alert, Alert::StateStoreRestored { .. }) {
        at
    } else {
        at + window
    };
    json!([{
        "labels": labels,
        "annotations": ann,
        "startsAt": rfc3339(at),
        "endsAt": rfc3339(ends),
    }])
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::SystemTime;

    use super::*;
    use crate::alerts::Summary;
    use crate::alerts::aggregate::Scope;
    use crate::alerts::message::{Voice, message};

    /// The Slack body of `alert`, in English.
    fn slack(alert: &Alert, instance: &str) -> Value {
        crate::alerts::formats::slack(&message(alert, &Voice::default(), instance, "rb"))
    }

    fn am(alert: &Alert, instance: &str, key: &str, window: Duration) -> Value {
        alertmanager(alert, instance, key, window, &headline(alert))
    }

    fn hostile() -> Attempt {
        Attempt {
            user_agent: "<!channel> `rm` & <https://evil.example|click>".into(),
            facts: Some(crate::geo::Facts {
                asn: Some(64500),
                as_org: Some("ExampleNet".into()),
                ..Default::default()
            }),
            ..Attempt::example()
        }
    }

    #[test]
    fn webhook_attempt_carries_the_context_to_act_on() {
        let v = webhook(&Alert::Attempt(Arc::new(hostile())), "pod-1", "client", "");
        assert_eq!(v["kind"], "attempt");
        assert_eq!(v["attempts"], 1);
        assert_eq!(v["enforced"], true);
        assert_eq!(v["attempt"]["client"]["address"], "203.0.113.7");
        assert_eq!(v["attempt"]["geo"]["asn"], 64500);
        assert_eq!(v["attempt"]["geo"]["as_org"], "ExampleNet");
        assert_eq!(v["attempt"]["request"]["path"], "/login");
        assert_eq!(v["attempt"]["rule"], "login");
        assert_eq!(v["instance"], "pod-1");
    }

    #[test]
    fn slack_text_cannot_mention_or_link() {
        let v = slack(&Alert::Attempt(Arc::new(hostile())), "pod-1");
        let text = v["text"].as_str().expect("text");
        assert!(!text.contains("<!channel>"));
        assert!(!text.contains("<https://"));
        assert!(text.contains("&lt;!channel&gt; 'rm' &amp;"));
    }

    #[test]
    fn report_only_alerts_say_so() {
        let mut a = Attempt::example();
        a.enforced = false;
        let alert = Alert::Attempt(Arc::new(a));
        assert!(headline(&alert).starts_with("Report-only"));
        assert_eq!(webhook(&alert, "x", "client", "")["enforced"], false);
        let a = am(&alert, "x", "client", Duration::from_secs(300));
        assert_eq!(a[0]["labels"]["enforced"], "false");
        assert_eq!(a[0]["labels"]["severity"], "info");
    }

    #[test]
    fn alertmanager_alerts_end_after_the_window() {
        let s = Summary {
            scope: Scope::Client("203.0.113.7".parse().expect("ip")),
            enforced: true,
            attempts: 41,
            from: SystemTime::UNIX_EPOCH,
            to: SystemTime::UNIX_EPOCH + Duration::from_secs(60),
            last: Arc::new(Attempt::example()),
        };
        let v = am(
            &Alert::Summary(s),
            "pod-1",
            "client",
            Duration::from_secs(300),
        );
        assert_eq!(v[0]["labels"]["alertname"], "NetwardenBlockedLogin");
        assert_eq!(v[0]["labels"]["client"], "203.0.113.7");
        assert_eq!(v[0]["annotations"]["attempts"], "41");
        assert_eq!(
            v[0]["annotations"]["summary"],
            "41 more blocked login attempts from 203.0.113.7 over 1m 0s"
        );
        assert_eq!(v[0]["startsAt"], "1970-01-01T00:01:00.000000Z");
        assert_eq!(v[0]["endsAt"], "1970-01-01T00:06:00.000000Z");
    }

    #[test]
    fn a_lockout_says_who_for_how_long_and_why_in_every_format() {
        let l = crate::alerts::Lockout {
            attempt: Attempt::example(),
            failures: 5,
            lock: Duration::from_secs(30 * 60),
            strike: 2,
            account: None,
            network: None,
        };
        let alert = Alert::Lockout(std::sync::Arc::new(l));
        assert_eq!(
            headline(&alert),
            "203.0.113.7 locked out for 30 minutes after 5 failed sign-ins (rule login, lock 2 in a row)"
        );
        let w = webhook(&alert, "pod-1", "client", "");
        assert_eq!(w["kind"], "lockout");
        assert_eq!(w["lockout"]["lock_seconds"], 1800);
        assert_eq!(w["lockout"]["strike"], 2);
        assert_eq!(w["attempt"]["client"]["address"], "203.0.113.7");
        let s = slack(&alert, "pod-1");
        assert!(
            s["text"]
                .as_str()
                .unwrap()
                .contains("locked out for 30 minutes"),
            "{s}"
        );
        let a = am(&alert, "pod-1", "client", Duration::from_secs(300));
        assert_eq!(a[0]["labels"]["alertname"], "NetwardenLockout");
        assert_eq!(a[0]["labels"]["client"], "203.0.113.7");
        assert_eq!(a[0]["annotations"]["lock_seconds"], "1800");
        let by_account = Alert::Lockout(std::sync::Arc::new(crate::alerts::Lockout {
            attempt: Attempt::example(),
            failures: 5,
            lock: Duration::from_secs(15 * 60),
            strike: 1,
            account: Some("0123456789ab".into()),
            network: Some("203.0.113.0/24".into()),
        }));
        assert_eq!(
            headline(&by_account),
            "Account 0123456789ab from 203.0.113.0/24 locked out for 15 minutes after 5 failed sign-ins (rule login, last from 203.0.113.7)"
        );
        let w = webhook(&by_account, "pod-1", "client", "");
        assert_eq!(w["lockout"]["account_hash"], "0123456789ab");
        assert_eq!(w["lockout"]["network"], "203.0.113.0/24");
    }

    #[test]
    fn a_store_down_says_what_sign_ins_do_meanwhile_in_every_format() {
        let alert = Alert::StateStore(std::sync::Arc::new(crate::alerts::StoreDown {
            at: SystemTime::UNIX_EPOCH,
            error: "Connection refused <@here>".into(),
            on_store_error: "memory",
        }));
        assert_eq!(
            headline(&alert),
            "Lockout store (Redis) unreachable: sign-ins follow on_store_error memory until it answers"
        );
        let w = webhook(&alert, "pod-1", "client", "");
        assert_eq!(w["kind"], "state_store");
        assert_eq!(w["state_store"]["on_store_error"], "memory");
        let s = slack(&alert, "pod-1");
        let text = s["text"].as_str().unwrap();
        assert!(text.contains("Connection refused &lt;@here&gt;"), "{s}");
        let a = am(&alert, "pod-1", "client", Duration::from_secs(300));
        assert_eq!(
            a[0]["labels"]["alertname"],
            "NetwardenStateStoreUnavailable"
        );
        assert_eq!(a[0]["annotations"]["error"], "Connection refused <@here>");
    }

    #[test]
    fn a_release_says_who_what_and_how_many_in_every_format() {
        let alert = Alert::Released(Arc::new(crate::alerts::Released {
            at: SystemTime::UNIX_EPOCH,
            by: std::net::IpAddr::from([10, 0, 0, 4]),
            selector: "account_hash",
            target: "0bc6c5e2d1a4".into(),
            released: 2,
        }));
        assert_eq!(
            headline(&alert),
            "An operator at 10.0.0.4 released 2 locks (account hash 0bc6c5e2d1a4)"
        );
        let w = webhook(&alert, "i", "client", "");
        assert_eq!(w["kind"], "lockout_released");
        assert_eq!(w["release"]["released"], 2);
        assert!(
            slack(&alert, "i")["text"]
                .as_str()
                .is_some_and(|t| t.contains("• Released: `0bc6c5e2d1a4 (account_hash)`"))
        );
        let a = am(&alert, "i", "client", Duration::from_secs(60));
        assert_eq!(a[0]["labels"]["alertname"], "NetwardenLockoutReleased");
        assert_eq!(a[0]["labels"]["severity"], "info");
        assert!(a[0]["labels"].get("enforced").is_none());
        assert_eq!(a[0]["annotations"]["target"], "0bc6c5e2d1a4");
        assert_eq!(runbook_section(&alert), "lockout");
    }

    #[test]
    fn headlines_count_attempts() {
        let storm = Storm {
            from: SystemTime::UNIX_EPOCH,
            to: SystemTime::UNIX_EPOCH,
            attempts: 500,
            would_be: 0,
            sources: 120,
            top: vec![],
            lockouts: 0,
            releases: 0,
        };
        assert_eq!(
            headline(&Alert::Storm(storm.clone())),
            "Login attempt storm: 500 blocked attempts from 120 sources"
        );
        let storm = Storm {
            lockouts: 3,
            ..storm
        };
        assert_eq!(
            headline(&Alert::Storm(storm.clone())),
            "Login attempt storm: 500 blocked attempts from 120 sources, and 3 more lockouts"
        );
        let storm = Storm {
            releases: 2,
            ..storm
        };
        assert_eq!(
            headline(&Alert::Storm(storm)),
            "Login attempt storm: 500 blocked attempts from 120 sources, and 3 more lockouts, and 2 more lockout releases"
        );
    }
}
