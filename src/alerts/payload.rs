//! What each sink receives, rendered from one [`Alert`]. Pure.
//!
//! Every payload says when, the client address and how it was derived, the
//! known GeoIP facts, the rule, host, normalized path (never the query),
//! user agent, request id, and how many attempts it stands for. Report-only
//! would-be blocks say so. Nothing else of the request is ever in an
//! [`super::Attempt`], so nothing else can leak here.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use serde_json::{Map, Value, json};

use super::{Alert, Attempt, Storm, Summary};
use crate::telemetry::json::rfc3339;

/// Version of the webhook body; bumped on incompatible changes.
pub const WEBHOOK_VERSION: u32 = 1;

/// One line for people: "Blocked login attempt from 203.0.113.7 (rule login)".
pub fn headline(alert: &Alert) -> String {
    match alert {
        Alert::Attempt(a) => format!(
            "{} from {} (rule {})",
            if a.enforced {
                "Blocked login attempt"
            } else {
                "Report-only: login attempt that would be blocked"
            },
            client_text(a),
            a.rule
        ),
        Alert::Summary(s) => format!(
            "{}{} more blocked login attempt{} from {}{}",
            if s.enforced { "" } else { "Report-only: " },
            s.attempts,
            if s.attempts == 1 { "" } else { "s" },
            s.scope,
            if s.attempts == 1 {
                String::new()
            } else {
                span(s.from, s.to)
            },
        ),
        Alert::Storm(s) => format!(
            "Login attempt storm: {} blocked attempt{} from {} source{}{}{}{}",
            s.attempts,
            if s.attempts == 1 { "" } else { "s" },
            s.sources,
            if s.sources == 1 { "" } else { "s" },
            if s.would_be > 0 {
                format!(" ({} only report-only)", s.would_be)
            } else {
                String::new()
            },
            match s.lockouts {
                0 => String::new(),
                1 => ", and 1 more lockout".into(),
                n => format!(", and {n} more lockouts"),
            },
            match s.releases {
                0 => String::new(),
                1 => ", and 1 more lockout release".into(),
                n => format!(", and {n} more lockout releases"),
            }
        ),
        Alert::Lockout(l) => format!(
            "{} locked out for {} after {} failed sign-in{} (rule {}{})",
            match (&l.account, &l.network) {
                (Some(a), Some(n)) => format!("Account {a} from {n}"),
                (Some(a), None) => format!("Account {a}"),
                _ => client_text(&l.attempt),
            },
            lock_text(l.lock),
            l.failures,
            if l.failures == 1 { "" } else { "s" },
            l.attempt.rule,
            match (l.strike > 1, &l.account) {
                (true, Some(_)) => format!(
                    ", lock {} in a row, last from {}",
                    l.strike,
                    client_text(&l.attempt)
                ),
                (true, None) => format!(", lock {} in a row", l.strike),
                (false, Some(_)) => format!(", last from {}", client_text(&l.attempt)),
                (false, None) => String::new(),
            }
        ),
        Alert::StateStore(d) => format!(
            "Lockout store (Redis) unreachable: sign-ins follow on_store_error {} until it answers",
            d.on_store_error
        ),
        Alert::Released(r) => format!(
            "An operator at {} released {} lock{} ({} {})",
            r.by,
            r.released,
            if r.released == 1 { "" } else { "s" },
            r.selector.replace('_', " "),
            r.target
        ),
        Alert::Feed(p) => format!(
            "Published list of network {} {}: {}; {}",
            p.network,
            match p.problem {
                "refused" => "refused",
                "held" => "held back",
                "stale" => "is stale",
                _ => "could not be fetched",
            },
            p.detail,
            match (p.problem, p.on_stale) {
                ("stale", "empty") => format!(
                    "it is {} old and the network now holds none of its addresses (on_stale: empty)",
                    lock_text(p.age)
                ),
                ("stale", _) => format!(
                    "the last good list, {} old, stays in use (on_stale: keep)",
                    lock_text(p.age)
                ),
                _ => format!("the last good list ({} old) stays in use", lock_text(p.age)),
            }
        ),
        Alert::Test { .. } => "netwarden test alert: this sink is reachable".into(),
    }
}

/// "15 minutes", "2 hours", "1 hour 30 minutes", "45 seconds".
fn lock_text(d: Duration) -> String {
    let s = d.as_secs();
    let plural = |n: u64, unit: &str| format!("{n} {unit}{}", if n == 1 { "" } else { "s" });
    match (s / 3600, (s % 3600) / 60) {
        (0, 0) => plural(s, "second"),
        (0, m) => plural(m, "minute"),
        (h, 0) => plural(h, "hour"),
        (h, m) => format!("{} {}", plural(h, "hour"), plural(m, "minute")),
    }
}

fn client_text(a: &Attempt) -> String {
    a.client
        .map_or_else(|| "an unknown client".into(), |ip| ip.to_string())
}

/// " over 42s", " over 5m 3s", " within a second": the time between a
/// summary's first and last attempt.
fn span(from: SystemTime, to: SystemTime) -> String {
    let secs = to.duration_since(from).unwrap_or_default().as_secs();
    match secs {
        0 => " within a second".into(),
        1..60 => format!(" over {secs}s"),
        _ => format!(" over {}m {}s", secs / 60, secs % 60),
    }
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
        Alert::StateStore(_) => "state-store",
        Alert::Released(_) => "lockout",
        Alert::Feed(_) => "feed",
        Alert::Test { .. } => "alert-test",
    }
}

/// `body` (as a sink's kind builds it) with the link to its runbook:
/// `runbook` in the webhook's JSON, Prometheus's own `runbook_url`
/// annotation for Alertmanager, a last line for Slack.
pub fn with_runbook(mut body: Value, kind: &str, url: &str) -> Value {
    match kind {
        "webhook" => body["runbook"] = url.into(),
        "alertmanager" => {
            if let Some(a) = body.get_mut(0) {
                a["annotations"]["runbook_url"] = url.into();
            }
        }
        "slack" => {
            if let Some(text) = body["text"].as_str() {
                body["text"] = format!("{text}\nRunbook: {}", slack_escape(url)).into();
            }
        }
        _ => {}
    }
    body
}

/// The generic webhook's JSON body.
pub fn webhook(alert: &Alert, instance: &str, key: &str) -> Value {
    let mut v = json!({
        "version": WEBHOOK_VERSION,
        "source": "netwarden",
        "instance": instance,
        "kind": alert.kind(),
        "summary": headline(alert),
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
        Alert::Test { at } => {
            m.insert("time".into(), rfc3339(*at).into());
            m.insert("attempts".into(), 0.into());
        }
    }
    v
}

fn top_json(s: &Storm) -> Value {
    s.top
        .iter()
        .map(|(scope, n)| json!({"key": scope.to_string(), "attempts": n}))
        .collect()
}

/// Slack's three control characters (`&`, `<`, `>`), so that text a client
/// sent (a user agent) cannot become a link or an `@channel` mention.
fn slack_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            // Would end the inline code span the value is shown in.
            '`' => out.push('\''),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

fn slack_attempt_lines(text: &mut String, a: &Attempt) {
    let _ = writeln!(
        text,
        "• Client: `{}` ({})",
        slack_escape(&client_text(a)),
        slack_escape(&a.derivation)
    );
    if let Some(f) = &a.facts {
        let _ = writeln!(text, "• Network: {}", slack_escape(&f.to_string()));
    }
    let _ = writeln!(text, "• Rule: `{}`", slack_escape(&a.rule));
    let _ = writeln!(
        text,
        "• Request: `{} {}{}`",
        slack_escape(&a.method),
        slack_escape(&a.host),
        slack_escape(&a.path)
    );
    let _ = writeln!(text, "• User agent: `{}`", slack_escape(&a.user_agent));
    let _ = writeln!(
        text,
        "• Request id: `{}` at {}",
        slack_escape(&a.request_id),
        rfc3339(a.at)
    );
}

/// A Slack-compatible incoming webhook body (`text` in mrkdwn; Mattermost
/// and Rocket.Chat read the same).
pub fn slack(alert: &Alert, instance: &str) -> Value {
    let mut text = format!(":rotating_light: *{}*\n", slack_escape(&headline(alert)));
    match alert {
        Alert::Attempt(a) => slack_attempt_lines(&mut text, a),
        Alert::Lockout(l) => {
            let _ = writeln!(&mut text, "• The sign-in that locked it:");
            slack_attempt_lines(&mut text, &l.attempt);
        }
        Alert::Summary(Summary { from, to, last, .. }) => {
            let _ = writeln!(
                &mut text,
                "• Between {} and {}; the latest:",
                rfc3339(*from),
                rfc3339(*to)
            );
            slack_attempt_lines(&mut text, last);
        }
        Alert::Storm(s) => {
            let _ = writeln!(
                &mut text,
                "• Between {} and {}; top sources:",
                rfc3339(s.from),
                rfc3339(s.to)
            );
            for (scope, n) in &s.top {
                let _ = writeln!(&mut text, "  `{}`: {n}", slack_escape(&scope.to_string()));
            }
        }
        Alert::StateStore(d) => {
            let _ = writeln!(
                &mut text,
                "• Error: `{}` at {}",
                slack_escape(&d.error),
                rfc3339(d.at)
            );
        }
        Alert::Released(r) => {
            let _ = writeln!(
                &mut text,
                "• Released: `{}` ({}) at {}",
                slack_escape(&r.target),
                r.selector,
                rfc3339(r.at)
            );
        }
        Alert::Feed(p) => {
            let _ = writeln!(
                &mut text,
                "• List: `{}` ({}, {}) at {}",
                slack_escape(&p.url),
                p.problem,
                p.reason,
                rfc3339(p.at)
            );
        }
        Alert::Test { .. } => {}
    }
    let _ = write!(&mut text, "_netwarden on {}_", slack_escape(instance));
    json!({ "text": text })
}

/// Prometheus Alertmanager `POST /api/v2/alerts`: a list of one alert. It
/// ends after `window` (Alertmanager resolves it then) unless sent again.
pub fn alertmanager(alert: &Alert, instance: &str, key: &str, window: Duration) -> Value {
    let (at, alertname, enforced) = match alert {
        Alert::Attempt(a) => (a.at, "NetwardenBlockedLogin", a.enforced),
        Alert::Summary(s) => (s.to, "NetwardenBlockedLogin", s.enforced),
        Alert::Storm(s) => (s.to, "NetwardenBlockedLoginStorm", s.would_be < s.attempts),
        Alert::Lockout(l) => (l.attempt.at, "NetwardenLockout", true),
        Alert::StateStore(d) => (d.at, "NetwardenStateStoreUnavailable", true),
        Alert::Released(r) => (r.at, "NetwardenLockoutReleased", false),
        Alert::Feed(p) => (p.at, "NetwardenFeedNotCurrent", true),
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
    ann.insert("summary".into(), headline(alert).into());
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
        Alert::Test { .. } => {}
    }
    if let Some(a) = attempt {
        ann.insert(
            "client_address".into(),
            a.client.map(|ip| ip.to_string()).unwrap_or_default().into(),
        );
        ann.insert("client_derivation".into(), a.derivation.clone().into());
        ann.insert("peer_address".into(), a.peer.to_string().into());
        if let Some(f) = &a.facts {
            ann.insert("network".into(), f.to_string().into());
        }
        ann.insert("host".into(), a.host.clone().into());
        ann.insert("path".into(), a.path.clone().into());
        ann.insert("method".into(), a.method.clone().into());
        ann.insert("user_agent".into(), a.user_agent.clone().into());
        ann.insert("request_id".into(), a.request_id.clone().into());
    }
    json!([{
        "labels": labels,
        "annotations": ann,
        "startsAt": rfc3339(at),
        "endsAt": rfc3339(at + window),
    }])
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::alerts::aggregate::Scope;

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
        let v = webhook(&Alert::Attempt(Arc::new(hostile())), "pod-1", "client");
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
        assert_eq!(webhook(&alert, "x", "client")["enforced"], false);
        let am = alertmanager(&alert, "x", "client", Duration::from_secs(300));
        assert_eq!(am[0]["labels"]["enforced"], "false");
        assert_eq!(am[0]["labels"]["severity"], "info");
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
        let v = alertmanager(
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
    fn a_burst_within_a_second_says_so() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(60);
        assert_eq!(span(t, t), " within a second");
        assert_eq!(span(t, t + Duration::from_millis(900)), " within a second");
        assert_eq!(span(t, t + Duration::from_secs(42)), " over 42s");
        assert_eq!(span(t, t + Duration::from_secs(303)), " over 5m 3s");
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
        let w = webhook(&alert, "pod-1", "client");
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
        let a = alertmanager(&alert, "pod-1", "client", Duration::from_secs(300));
        assert_eq!(a[0]["labels"]["alertname"], "NetwardenLockout");
        assert_eq!(a[0]["labels"]["client"], "203.0.113.7");
        assert_eq!(a[0]["annotations"]["lock_seconds"], "1800");
        assert_eq!(lock_text(Duration::from_secs(90 * 60)), "1 hour 30 minutes");
        assert_eq!(lock_text(Duration::from_secs(24 * 3600)), "24 hours");
        assert_eq!(lock_text(Duration::from_secs(1)), "1 second");
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
        let w = webhook(&by_account, "pod-1", "client");
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
        let w = webhook(&alert, "pod-1", "client");
        assert_eq!(w["kind"], "state_store");
        assert_eq!(w["state_store"]["on_store_error"], "memory");
        let s = slack(&alert, "pod-1");
        let text = s["text"].as_str().unwrap();
        assert!(text.contains("Connection refused &lt;@here&gt;"), "{s}");
        let a = alertmanager(&alert, "pod-1", "client", Duration::from_secs(300));
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
        let w = webhook(&alert, "i", "client");
        assert_eq!(w["kind"], "lockout_released");
        assert_eq!(w["release"]["released"], 2);
        assert!(
            slack(&alert, "i")["text"]
                .as_str()
                .is_some_and(|t| t.contains("• Released: `0bc6c5e2d1a4` (account_hash)"))
        );
        let a = alertmanager(&alert, "i", "client", Duration::from_secs(60));
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
