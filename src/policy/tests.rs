//! Policy loading end to end: YAML text in, diagnostics or a policy out.

use crate::policy::{LoadError, Severity, load_str};
use std::path::Path;

/// `file:line:col: severity: message` of every diagnostic, or the loaded warnings.
fn diagnostics(yaml: &str) -> Vec<String> {
    let render = |d: &crate::policy::Diagnostic| {
        format!("{}:{}: {}: {}", d.line, d.column, d.severity, d.message)
    };
    match load_str(yaml, Path::new("p.yaml")) {
        Ok(l) => l.warnings.iter().map(render).collect(),
        Err(LoadError::Invalid { diagnostics, .. }) => diagnostics.iter().map(render).collect(),
        Err(e) => vec![e.to_string()],
    }
}

fn has(diags: &[String], needle: &str) -> bool {
    diags.iter().any(|d| d.contains(needle))
}

const RULE: &str = "rules:\n  - { name: all, paths: [\"/**\"], allow_from: [office] }\n";

#[test]
fn every_error_is_reported_in_one_run_with_its_place() {
    let d = diagnostics(
        "version: 1\nnetworks:\n  office: [10.0.0.1/8, 300.1.1.1]\n  corp: { include: [offce] }\nrules:\n  - { name: a, paths: [/x], allow_from: [office, nope] }\n  - { name: a, paths: [/y], action: allow }\n",
    );
    assert!(
        has(&d, "3:12: error: '10.0.0.1/8' has host bits set"),
        "{d:#?}"
    );
    assert!(
        has(&d, "3:24: error: '300.1.1.1' is not an IP address or CIDR"),
        "{d:#?}"
    );
    assert!(
        has(&d, "4:21: error: network 'corp': unknown network 'offce'"),
        "{d:#?}"
    );
    assert!(
        has(&d, "6:50: error: rule 'a': unknown network 'nope'"),
        "{d:#?}"
    );
    assert!(
        has(&d, "7:13: error: duplicate rule name 'a' (first at line 6)"),
        "{d:#?}"
    );
    // A network whose entries are wrong is not reported again as empty.
    assert!(!has(&d, "contains no addresses"), "{d:#?}");
}

#[test]
fn alert_sections_are_checked_with_places_and_never_echo_a_secret() {
    let d = diagnostics(&format!(
        "version: 1\nnetworks:\n  office: [10.0.0.0/8]\n{RULE}alerts:\n  window: 5x\n  key: subnet24\n  storm: {{ max_alerts: 0 }}\n  queue: 0\n  sinks:\n    - {{ name: a, type: slack, url: \"https://hooks.slack.com/services/T/B/SECRETX\" }}\n    - {{ name: b, type: webhook, url_env: \"https://example.com/SECRETY\" }}\n    - {{ name: c, type: pager, url_env: X }}\n    - {{ name: d, type: webhook, url_env: D_URL, token_env: 9X }}\n    - {{ name: d, type: slack, url_env: S_URL, secret_env: S_KEY }}\n    - {{ name: e, type: webhook }}\n",
    ));
    for needle in [
        "7:11: error: '5x': unknown unit 'x'",
        "8:8: error: alert key 'subnet24' is not known",
        "9:24: error: max_alerts 0 is out of range",
        "10:10: error: queue 0 is out of range",
        "12:36: error: a slack sink's URL is a secret and is not written in the policy",
        "13:42: error: url_env must name an environment variable, and this looks like the value itself",
        "14:24: error: sink type 'pager' is not known",
        "15:60: error: token_env does not name an environment variable",
        "16:15: error: two sinks are named 'd'",
        "16:59: error: a slack sink is not signed",
        "17:7: error: sink 'e' has no URL",
    ] {
        assert!(has(&d, needle), "{needle}\n{d:#?}");
    }
    assert!(!d.iter().any(|l| l.contains("SECRET")), "{d:#?}");
}

#[test]
fn the_new_sinks_say_what_they_lack_and_refuse_what_they_do_not_read() {
    let sinks = [
        "    - { name: m1, type: email, smtp: \"mail.example.com:25\", tls: none, from: a@example.com, to: [b@example.com] }",
        "    - { name: m2, type: email, smtp: \"mail.example.com\", from: \"not an address\", to: [b@example.com] }",
        "    - { name: m3, type: email, smtp: \"mail.example.com:587\", username_env: U, from: a@example.com, to: [] }",
        "    - { name: cw, type: chatwork, token_env: CW, room_id: \"abc\" }",
        "    - { name: cw2, type: chatwork, room_id: \"12\" }",
        "    - { name: pd, type: pagerduty, room_id: \"12\" }",
        "    - { name: lw, type: line_works, bot_id: \"1\", client_id: c, service_account: s, client_secret_env: S, private_key_env: K }",
        "    - { name: t, type: teams, url_env: T, token_env: X, language: fr, time_zone: Mars/Olympus }",
        "    - { name: t2, type: teams, url: \"https://x.example/workflows/SECRETZ\" }",
    ]
    .join("\n");
    let d = diagnostics(&format!(
        "version: 1\nnetworks:\n  office: [10.0.0.0/8]\n{RULE}alerts:\n  sinks:\n{sinks}\n"
    ));
    for needle in [
        "error: tls: none sends mail (and any password) in clear text to mail.example.com",
        "error: from 'not an address' is not a mail address",
        "error: email sink 'm3': username_env and password_env go together",
        "error: room_id 'abc' is not a Chatwork room id",
        "error: chatwork sink 'cw2' needs its API token",
        "error: a pagerduty sink does not read 'room_id'",
        "error: pagerduty sink 'pd' needs its integration key",
        "error: line_works sink 'lw' needs channel_id or user_id",
        "error: a teams incoming webhook takes no token: its URL is the secret",
        "error: sink 't': language 'fr' is not one netwarden's alerts are written in",
        "error: sink 't': time_zone: 'Mars/Olympus' is not an IANA time zone name",
        "error: a teams sink's URL is a secret and is not written in the policy",
    ] {
        assert!(has(&d, needle), "{needle}\n{d:#?}");
    }
    assert!(!d.iter().any(|l| l.contains("SECRET")), "{d:#?}");
}

#[test]
fn a_digest_names_a_time_a_zone_and_sinks_that_take_one() {
    let d = diagnostics(&format!(
        "version: 1\nnetworks:\n  office: [10.0.0.0/8]\n{RULE}alerts:\n  digest: {{ at: \"9am\", time_zone: Tokyo, sinks: [mail, am, pd] }}\n  sinks:\n    - {{ name: am, type: alertmanager, url: \"http://127.0.0.1:9093\" }}\n    - {{ name: pd, type: pagerduty, routing_key_env: PD }}\n"
    ));
    for needle in [
        "error: alerts.digest.at '9am' is not a time of day",
        "error: alerts.digest: time_zone: 'Tokyo' is not an IANA time zone name",
        "error: alerts.digest: no sink is named 'mail'",
        "error: alerts.digest: sink 'am' (alertmanager) does not take a digest",
        "error: alerts.digest: sink 'pd' (pagerduty) does not take a digest",
    ] {
        assert!(has(&d, needle), "{needle}\n{d:#?}");
    }
}

#[test]
fn sinks_speak_the_pages_first_language_unless_they_say() {
    let l = load_str(
        &format!(
            "version: 1\nnetworks:\n  office: [10.0.0.0/8]\n{RULE}pages:\n  languages: [ja, en]\nalerts:\n  sinks:\n    - {{ name: a, type: slack, url_env: A }}\n    - {{ name: b, type: slack, url_env: B, language: en, time_zone: Asia/Tokyo }}\n    - {{ name: c, type: chatwork, room_id: \"42\", token_env: C }}\n"
        ),
        Path::new("p.yaml"),
    )
    .expect("valid");
    let a = l.policy.alerts().expect("alerts");
    use crate::policy::pages::Lang;
    assert_eq!(a.sinks[0].language, Lang::Ja);
    assert_eq!(a.sinks[0].time_zone, "UTC");
    assert_eq!(a.sinks[1].language, Lang::En);
    assert_eq!(a.sinks[1].time_zone, "Asia/Tokyo");
    // A service's own address when none is given.
    assert_eq!(
        a.sinks[2].url,
        Some(crate::policy::alerts::UrlSource::Literal(
            crate::policy::alerts::defaults::CHATWORK_URL.into()
        ))
    );
    let none = load_str(
        &format!(
            "version: 1\nnetworks:\n  office: [10.0.0.0/8]\n{RULE}alerts:\n  sinks:\n    - {{ name: a, type: slack, url_env: A }}\n"
        ),
        Path::new("p.yaml"),
    )
    .expect("valid");
    assert_eq!(
        none.policy.alerts().expect("alerts").sinks[0].language,
        Lang::En
    );
}

#[test]
fn an_alerts_section_compiles_with_defaults() {
    let yaml = format!(
        "version: 1\nnetworks:\n  office: [10.0.0.0/8]\n{RULE}alerts:\n  key: asn\n  sinks:\n    - {{ name: am, type: alertmanager, url: \"http://127.0.0.1:9093\" }}\n    - {{ name: hook, type: webhook, url_env: HOOK_URL, secret_env: HOOK_KEY, signature_header: X-Sig }}\n"
    );
    let l = load_str(&yaml, Path::new("p.yaml")).expect("valid");
    let a = l.policy.alerts().expect("alerts");
    assert_eq!(a.key, crate::policy::alerts::AlertKey::Asn);
    assert_eq!(a.window, crate::policy::alerts::defaults::WINDOW);
    assert_eq!(a.sinks.len(), 2);
    assert_eq!(a.sinks[1].signature_header, "x-sig");
    assert_eq!(a.sinks[1].secret_env.as_deref(), Some("HOOK_KEY"));
    assert!(!l.policy.alerts().is_some_and(|a| a.on_release));
}

#[test]
fn a_queue_shorter_than_the_storm_cap_is_warned_about() {
    let section = |queue: u32| {
        format!(
            "version: 1\nnetworks:\n  office: [10.0.0.0/8]\n{RULE}alerts:\n  on_release: true\n  queue: {queue}\n  storm: {{ max_alerts: 10, per: 1m }}\n  sinks:\n    - {{ name: am, type: alertmanager, url: \"http://127.0.0.1:9093\" }}\n"
        )
    };
    let d = diagnostics(&section(2));
    assert!(
        has(&d, "warning: queue 2 is shorter than storm.max_alerts 10"),
        "{d:?}"
    );
    assert!(diagnostics(&section(10)).is_empty());
    let l = load_str(&section(10), Path::new("p.yaml")).expect("valid");
    assert!(l.policy.alerts().is_some_and(|a| a.on_release));
}

#[test]
fn unknown_network_suggests_the_near_name() {
    let yaml = "version: 1\nnetworks:\n  office: [10.0.0.0/8]\nrules:\n  - { name: login, allow_from: [offce] }\n";
    let Err(LoadError::Invalid { diagnostics, .. }) = load_str(yaml, Path::new("p.yaml")) else {
        panic!("must fail");
    };
    let d = diagnostics
        .iter()
        .find(|d| d.message.contains("offce"))
        .unwrap();
    assert_eq!(d.help.as_deref(), Some("did you mean 'office'?"));
    assert_eq!(
        d.to_string().lines().next().unwrap(),
        "p.yaml:5:33: error: rule 'login': unknown network 'offce'"
    );
}

#[test]
fn unknown_keys_are_errors() {
    let d = diagnostics("version: 1\nrules:\n  - { name: a, action: allow, pathz: [/x] }\n");
    assert!(has(&d, "3:31: error: unknown key 'pathz'"), "{d:#?}");
}

#[test]
fn include_cycles_are_errors() {
    let d = diagnostics(&format!(
        "version: 1\nnetworks:\n  office: {{ include: [b] }}\n  b: {{ include: [c] }}\n  c: {{ include: [office] }}\n{RULE}"
    ));
    assert!(
        has(&d, "include cycle office -> b -> c -> office"),
        "{d:#?}"
    );
}

#[test]
fn empty_networks_are_errors() {
    let d = diagnostics(&format!("version: 1\nnetworks:\n  office: []\n{RULE}"));
    assert!(has(&d, "network 'office' is empty"), "{d:#?}");
    let d = diagnostics(&format!(
        "version: 1\nnetworks:\n  office: {{ include: [x], except: [x] }}\n  x: [10.0.0.0/8]\n{RULE}"
    ));
    assert!(has(&d, "network 'office' contains no addresses"), "{d:#?}");
}

#[test]
fn mapped_cidr_is_an_error_with_the_ipv4_form() {
    let yaml = format!("version: 1\nnetworks:\n  office: [\"::ffff:0:0/96\"]\n{RULE}");
    let Err(LoadError::Invalid { diagnostics, .. }) = load_str(&yaml, Path::new("p.yaml")) else {
        panic!("must fail");
    };
    let help = diagnostics[0].help.as_deref().unwrap();
    assert!(help.contains("write '0.0.0.0/0'"), "{help}");
}

#[test]
fn unreachable_rule_is_an_error() {
    let d = diagnostics(
        "version: 1\nnetworks:\n  office: [10.0.0.0/8]\nrules:\n  - { name: all, paths: [\"/admin/**\"], allow_from: [office] }\n  - { name: login, paths: [/admin/login], methods: [POST], action: deny }\n",
    );
    assert!(
        has(
            &d,
            "error: rule 'login' can never match: rule 'all' (line 5)"
        ),
        "{d:#?}"
    );
    // deny_from falls through, so it shadows nothing.
    let d = diagnostics(
        "version: 1\nnetworks:\n  office: [10.0.0.0/8]\nrules:\n  - { name: all, deny_from: [office] }\n  - { name: login, action: allow }\n",
    );
    assert!(!has(&d, "never match"), "{d:#?}");
    // A narrower method list does not cover a broader one.
    let d = diagnostics(
        "version: 1\nrules:\n  - { name: a, methods: [GET], action: allow }\n  - { name: b, action: deny }\n",
    );
    assert!(!has(&d, "never match"), "{d:#?}");
}

#[test]
fn yaml_errors_are_in_netwardens_words_and_each_has_a_help_line() {
    for (yaml, message, help) in [
        (
            "version: 1\nrules:\n  - { name: a, allow_form: [x] }\n",
            "unknown key 'allow_form'",
            "did you mean 'allow_from'?",
        ),
        (
            "version: 1\nrules:\n  - { name: a, action: allow, login: yes }\n",
            "expected true or false",
            "write true or false",
        ),
        (
            "version: 1\nnetworks:\n  office: 192.0.2.0/24\n",
            "found string \"192.0.2.0/24\" where a list",
            "write a list",
        ),
        (
            "version: 1\nrules:\n  - { name: a, paths: /x, action: allow }\n",
            "expected a list here",
            "one item is [a]",
        ),
        (
            "version: 1\nrules:\n  - { name: a, action: alow }\n",
            "unknown value 'alow'",
            "did you mean 'allow'?",
        ),
        (
            "version: 1\nrules:\n  - { action: allow }\n",
            "missing key 'name'",
            "add name:",
        ),
        (
            "version: 1\nrules: [ {name: a\n",
            "unclosed",
            "check indentation",
        ),
    ] {
        let d = diagnostics(yaml);
        assert!(has(&d, message), "{yaml}: {d:#?}");
        let Err(LoadError::Invalid {
            diagnostics: full, ..
        }) = load_str(yaml, Path::new("p.yaml"))
        else {
            panic!("{yaml} is invalid");
        };
        assert!(
            full.iter().all(|d| d.help.is_some()),
            "{yaml}: an error without help: {full:#?}"
        );
        assert!(
            full.iter()
                .any(|d| d.help.as_deref().is_some_and(|h| h.contains(help))),
            "{yaml}: {full:#?}"
        );
    }
}

#[test]
fn trusted_proxy_ranges_wider_than_a_16_or_48_are_warned_about() {
    let d = diagnostics(
        "version: 1\nnetworks:\n  o: [192.0.2.0/24]\n  pods: [10.0.0.0/8]\n  lb: [10.0.0.0/24, 10.9.0.0/24]\nclient_ip: { trusted_proxies: [pods, lb, \"2001:db8::/32\", \"2001:db8:1::/48\", 172.16.0.0/16] }\nrules:\n  - { name: a, allow_from: [o] }\n",
    );
    assert!(
        has(
            &d,
            "warning: trusted proxy 'pods' covers 16777216 IPv4 addresses"
        ),
        "{d:#?}"
    );
    assert!(
        has(
            &d,
            "warning: trusted proxy '2001:db8::/32' covers more IPv6"
        ),
        "{d:#?}"
    );
    // A /16 and a /48 themselves, and a network of small ranges, are fine.
    assert_eq!(
        d.iter().filter(|l| l.contains("covers")).count(),
        2,
        "{d:#?}"
    );
}

#[test]
fn a_misspelled_trusted_proxy_is_not_also_an_unused_network() {
    let d = diagnostics(
        "version: 1\nnetworks:\n  o: [192.0.2.0/24]\n  ingress: [10.0.0.5/32]\nclient_ip: { trusted_proxies: [ingres] }\nrules:\n  - { name: a, allow_from: [o] }\n",
    );
    assert!(has(&d, "unknown network 'ingres'"), "{d:#?}");
    assert!(!has(&d, "not used"), "{d:#?}");
    // A network that client_ip uses counts as used.
    let d = diagnostics(
        "version: 1\nnetworks:\n  o: [192.0.2.0/24]\n  ingress: [10.0.0.5/32]\nclient_ip: { trusted_proxies: [ingress] }\nrules:\n  - { name: a, allow_from: [o] }\n",
    );
    assert!(!has(&d, "not used"), "{d:#?}");
}

#[test]
fn warnings_for_default_allow_overlaps_and_unused_networks() {
    let d = diagnostics(
        "version: 1\nnetworks:\n  office: [10.0.0.0/8, 10.1.0.0/16]\n  spare: [192.0.2.0/24]\nrules:\n  - { name: a, allow_from: [office] }\ndefault: allow\n",
    );
    assert!(
        has(
            &d,
            "3:24: warning: network 'office': 10.1.0.0/16 overlaps 10.0.0.0/8 (line 3)"
        ),
        "{d:#?}"
    );
    assert!(has(&d, "warning: 'default: allow'"), "{d:#?}");
    assert!(has(&d, "warning: network 'spare' is not used"), "{d:#?}");
    assert!(d.iter().all(|l| l.contains("warning")), "{d:#?}");
}

#[test]
fn failing_policy_tests_make_the_policy_invalid() {
    let d = diagnostics(&format!(
        "version: 1\nnetworks:\n  office: [10.0.0.0/8]\n{RULE}tests:\n  - {{ ip: 192.0.2.1, expect: allow }}\n  - {{ ip: 10.1.1.1, expect: allow, rule: other }}\n"
    ));
    assert!(
        has(
            &d,
            "7:5: error: test 1 failed: GET / expected allow, got deny by rule 'all'"
        ),
        "{d:#?}"
    );
    assert!(
        has(
            &d,
            "8:5: error: test 2 failed: GET / expected allow by rule 'other', got allow by rule 'all'"
        ),
        "{d:#?}"
    );
}

#[test]
fn rule_shape_is_checked() {
    let d = diagnostics(
        "version: 1\nnetworks:\n  o: [10.0.0.0/8]\nrules:\n  - { name: a, paths: [/x] }\n  - { name: b, action: allow, allow_from: [o] }\n",
    );
    assert!(has(&d, "rule 'a' does not say what to do"), "{d:#?}");
    assert!(has(&d, "rule 'b' has more than one of"), "{d:#?}");
}

#[test]
fn yaml_syntax_error_is_located() {
    let d = diagnostics("version: 1\nrules: [\n");
    assert_eq!(d.len(), 1);
    assert!(d[0].contains(": error: "), "{d:#?}");
    assert!(!d[0].starts_with("0:0"), "{d:#?}");
}

#[test]
fn alias_bomb_is_refused_not_expanded() {
    // 8^29 strings if expanded.
    let mut y = String::from("version: 1\nnetworks:\n  n0: &a0 [10.0.0.0/8]\n");
    for i in 1..30 {
        let p = i - 1;
        y.push_str(&format!(
            "  n{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
        ));
    }
    let d = diagnostics(&y);
    assert_eq!(d.len(), 1, "{d:#?}");
    assert!(d[0].starts_with("4:12: error:"), "{d:#?}");
}

proptest::proptest! {
    #[test]
    fn any_text_is_an_error_or_a_policy_never_a_panic(text in "(version: 1\n)?[\\PC\n :\\-\\[\\]{},&*!|>'\"#]{0,200}") {
        // Load from a directory that exists so that `file:` lookups stay inside it.
        let _ = load_str(&text, Path::new("/nonexistent-netwarden-dir/p.yaml"));
    }
}

#[test]
fn trusted_proxies_take_network_names_even_starting_with_a_digit() {
    let d = diagnostics(
        "version: 1\nnetworks:\n  1st_floor_lb: [10.1.1.0/24]\n  o: [192.0.2.0/24]\nclient_ip: { trusted_proxies: [1st_floor_lb, 172.16.0.0/28] }\nrules:\n  - { name: a, allow_from: [o] }\ntests:\n  - { peer: 10.1.1.1, headers: { x-forwarded-for: 192.0.2.5 }, expect: allow }\n  - { peer: 172.16.0.1, headers: { x-forwarded-for: 192.0.2.5 }, expect: allow }\n",
    );
    assert!(d.is_empty(), "{d:#?}");
}

/// A policy in testdata/cases, so that `../geo/` reaches the test databases.
fn geo_diagnostics(yaml: &str) -> Vec<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/cases/inline.yaml");
    match load_str(yaml, &path) {
        Ok(l) => l
            .warnings
            .iter()
            .map(|d| format!("{}:{}: {}", d.line, d.column, d.message))
            .collect(),
        Err(LoadError::Invalid { diagnostics, .. }) => diagnostics
            .iter()
            .map(|d| {
                format!(
                    "{}:{}: {} help: {}",
                    d.line,
                    d.column,
                    d.message,
                    d.help.clone().unwrap_or_default()
                )
            })
            .collect(),
        Err(e) => vec![e.to_string()],
    }
}

#[test]
fn facts_need_their_database_and_valid_values() {
    let d = geo_diagnostics(
        "version: 1\ngeoip:\n  country: ../geo/GeoLite2-Country-Test.mmdb\nnetworks:\n  home: { connection_type: [Cable/DSL] }\n  a: { country: [jp, XX] }\n  b: { anonymous: [tor] }\nrules:\n  - { name: r, allow_from: [home, a, b] }\n",
    );
    assert!(
        has(
            &d,
            "5:28: network 'home' uses connection_type facts, but no geoip.connection_type database is configured"
        ),
        "{d:#?}"
    );
    assert!(
        has(
            &d,
            "6:18: network 'a': 'jp' is not a country code help: country codes are upper case: write 'JP'"
        ),
        "{d:#?}"
    );
    assert!(
        has(&d, "6:22: network 'a': 'XX' is not a country code"),
        "{d:#?}"
    );
    assert!(
        has(
            &d,
            "7:19: network 'b' uses anonymous_ip facts, but no geoip.anonymous_ip database"
        ),
        "{d:#?}"
    );
    let d = geo_diagnostics(
        "version: 1\ngeoip:\n  connection_type: ../geo/GeoIP2-Connection-Type-Test.mmdb\n  anonymous_ip: ../geo/GeoIP2-Anonymous-IP-Test.mmdb\nnetworks:\n  home: { connection_type: [Cable/DS] }\n  b: { anonymous: [tor_exit] }\nrules:\n  - { name: r, allow_from: [home, b] }\n",
    );
    assert!(
        has(
            &d,
            "'Cable/DS' is not a connection type help: did you mean 'Cable/DSL'?"
        ),
        "{d:#?}"
    );
    assert!(
        has(
            &d,
            "'tor_exit' is not an anonymous-IP flag help: did you mean 'tor_exit_node'?"
        ),
        "{d:#?}"
    );
}

#[test]
fn wrong_missing_or_corrupt_databases_fail_closed_with_their_place() {
    let d = geo_diagnostics(
        "version: 1\ngeoip:\n  asn: ../geo/GeoLite2-Country-Test.mmdb\n  country: ../geo/missing.mmdb\n  connection_type: ../cases/semantics.yaml\nrules:\n  - { name: r, action: deny }\n",
    );
    assert!(has(&d, "3:8: asn database"), "{d:#?}");
    assert!(
        has(&d, "'GeoLite2-Country' database, which cannot serve as asn"),
        "{d:#?}"
    );
    assert!(has(&d, "4:12: country database"), "{d:#?}");
    assert!(has(&d, "5:20: connection_type database"), "{d:#?}");
}

#[test]
fn trusted_proxies_cannot_be_fact_networks() {
    let d = geo_diagnostics(
        "version: 1\ngeoip:\n  country: ../geo/GeoLite2-Country-Test.mmdb\nnetworks:\n  jp: { country: [JP] }\nclient_ip: { trusted_proxies: [jp] }\nrules:\n  - { name: r, allow_from: [jp] }\n",
    );
    assert!(
        has(
            &d,
            "trusted proxy network 'jp' is checked per request (it uses GeoIP facts or a grant with until:)"
        ),
        "{d:#?}"
    );
}

#[test]
fn a_report_only_rule_shadows_nothing() {
    let d = diagnostics(
        "version: 1\nnetworks:\n  o: [10.0.0.0/8]\nrules:\n  - { name: all, allow_from: [o], mode: report }\n  - { name: rest, action: allow }\n",
    );
    assert!(!has(&d, "never match"), "{d:#?}");
    assert!(has(&d, "warning: rule 'all' is report-only"), "{d:#?}");
}

#[test]
fn yaml_1_1_booleans_are_refused() {
    let d = diagnostics("version: 1\nrules:\n  - { name: a, login: yes, action: deny }\n");
    assert!(has(&d, "3:23: error:"), "{d:#?}");
}

#[test]
fn wrong_version_and_bad_header_are_errors() {
    let d = diagnostics(
        "version: 2\nclient_ip: { trusted_proxies: [10.0.0.0/8], header: x-forwarded-fro }\n",
    );
    assert!(
        has(&d, "1:10: error: unsupported policy version 2"),
        "{d:#?}"
    );
    assert!(
        has(&d, "unknown client_ip.header 'x-forwarded-fro'"),
        "{d:#?}"
    );
}

#[test]
fn network_file_errors_name_the_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("extra.txt"),
        "# comment\n198.51.100.0/24\n  10.0.0.1/8 # bad\n",
    )
    .unwrap();
    let policy = dir.path().join("p.yaml");
    std::fs::write(
            &policy,
            "version: 1\nnetworks:\n  vpn: { file: extra.txt }\nrules:\n  - { name: a, allow_from: [vpn] }\n",
        )
        .unwrap();
    let Err(LoadError::Invalid { diagnostics, .. }) = crate::policy::load(&policy) else {
        panic!("must fail");
    };
    let d = &diagnostics[0];
    assert!(d.file.ends_with("extra.txt"));
    assert_eq!((d.line, d.column, d.severity), (3, 3, Severity::Error));
    assert!(d.message.contains("has host bits set"));
}

mod time {
    use crate::engine::{Action, ClientSource, RequestFacts, decide};
    use crate::policy::{LoadError, Policy, load_str_at};
    use jiff::Timestamp;
    use std::path::Path;

    fn t(s: &str) -> Timestamp {
        s.parse().expect("instant")
    }

    fn load(yaml: &str, now: &str) -> Result<(Policy, Vec<String>), Vec<String>> {
        let render = |d: &crate::policy::Diagnostic| {
            format!("{}:{}: {}: {}", d.line, d.column, d.severity, d.message)
        };
        match load_str_at(yaml, Path::new("p.yaml"), t(now)) {
            Ok(l) => Ok((l.policy, l.warnings.iter().map(render).collect())),
            Err(LoadError::Invalid { diagnostics, .. }) => {
                Err(diagnostics.iter().map(render).collect())
            }
            Err(e) => Err(vec![e.to_string()]),
        }
    }

    fn action(p: &Policy, ip: &str, path: &str, now: &str) -> (Action, String) {
        let facts = RequestFacts {
            client: ClientSource::Given(ip.parse().expect("ip")),
            method: "GET",
            host: Ok(None),
            path,
            now: t(now),
            account: crate::engine::AccountFact::Unread,
            identity: crate::engine::who::IdentityFact::Missing,
        };
        let d = decide(p.ruleset(), &facts);
        (d.action, d.rule_name().to_string())
    }

    const GRANT: &str = "version: 1
networks:
  office:
    cidrs:
      - 10.0.0.0/8
      - { cidr: 192.0.2.7/32, until: 2026-12-24T18:00:00+09:00, note: \"Aiko, hotel in Osaka\" }
  everyone: { include: [office] }
rules:
  - { name: console, allow_from: [everyone] }
";

    #[test]
    fn a_grant_stops_matching_at_its_until_without_a_reload() {
        let (p, _) = load(GRANT, "2026-12-01T00:00:00Z").expect("loads");
        // Through an include too: the granted network is checked per request.
        assert_eq!(
            action(&p, "192.0.2.7", "/", "2026-12-24T08:59:59Z").0,
            Action::Allow
        );
        assert_eq!(
            action(&p, "192.0.2.7", "/", "2026-12-24T09:00:00Z").0,
            Action::Deny
        );
        assert_eq!(
            action(&p, "10.1.2.3", "/", "2027-01-01T00:00:00Z").0,
            Action::Allow
        );
    }

    #[test]
    fn a_network_whose_only_entry_warns_still_holds_it() {
        // Regression: the expiry warning once counted as an error, and a
        // network of one grant expiring soon matched nobody.
        let yaml = "version: 1\nnetworks:\n  travel:\n    cidrs:\n      - { cidr: 192.0.2.7/32, until: 2026-12-24T18:00:00+09:00 }\nrules:\n  - { name: console, allow_from: [travel] }\n";
        let (p, warnings) = load(yaml, "2026-12-24T00:00:00Z").expect("loads");
        assert_eq!(warnings.len(), 1, "{warnings:#?}");
        assert_eq!(
            action(&p, "192.0.2.7", "/", "2026-12-24T01:00:00Z").0,
            Action::Allow
        );
    }

    #[test]
    fn check_warns_about_grants_expired_or_expiring_within_a_week() {
        let (_, far) = load(GRANT, "2026-12-01T00:00:00Z").expect("loads");
        assert!(!far.iter().any(|w| w.contains("expire")), "{far:#?}");
        let (_, soon) = load(GRANT, "2026-12-20T00:00:00Z").expect("loads");
        assert!(
            soon.iter().any(|w| w.starts_with("6:")
                && w.contains("network 'office': grant 192.0.2.7/32 expires at 2026-12-24T18:00:00+09:00 (in 105 h)")),
            "{soon:#?}"
        );
        let (_, past) = load(GRANT, "2026-12-25T00:00:00Z").expect("loads");
        assert!(
            past.iter()
                .any(|w| w.contains("expired at 2026-12-24T18:00:00+09:00: it no longer matches")),
            "{past:#?}"
        );
    }

    #[test]
    fn grants_in_network_files_take_until_and_their_comment_is_the_note() {
        let dir = std::env::temp_dir().join(format!("nw-grant-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::write(
            dir.join("vpn.txt"),
            "10.8.0.0/16\n192.0.2.9/32 until=2026-12-24T18:00:00+09:00 # Ken, conference\n192.0.2.10 until=soon\n192.0.2.11 maybe\n",
        )
        .expect("write");
        let yaml = "version: 1\nnetworks:\n  vpn: { file: vpn.txt }\nrules:\n  - { name: console, allow_from: [vpn] }\n";
        let err = crate::policy::load_str_at(yaml, &dir.join("p.yaml"), t("2026-12-01T00:00:00Z"))
            .expect_err("two bad lines");
        let LoadError::Invalid { diagnostics, .. } = err else {
            panic!("not invalid: {err}");
        };
        let text: Vec<String> = diagnostics
            .iter()
            .map(|d| format!("{}:{}: {}", d.line, d.column, d.message))
            .collect();
        assert!(
            text.iter()
                .any(|d| d.starts_with("3:1: network 'vpn': until: 'soon' is not an instant")),
            "{text:#?}"
        );
        assert!(
            text.iter().any(|d| d
                .starts_with("4:1: network 'vpn': 'maybe' after the address is not understood")),
            "{text:#?}"
        );
        std::fs::write(
            dir.join("vpn.txt"),
            "10.8.0.0/16\n192.0.2.9/32 until=2026-12-24T18:00:00+09:00 # Ken, conference\n",
        )
        .expect("write");
        let loaded =
            crate::policy::load_str_at(yaml, &dir.join("p.yaml"), t("2026-12-01T00:00:00Z"))
                .expect("loads");
        let grants: Vec<_> = loaded
            .policy
            .networks()
            .iter()
            .flat_map(|n| n.dynamic.iter().flat_map(|d| d.grants.iter()))
            .collect();
        assert_eq!(grants.len(), 1);
        assert_eq!(grants[0].note.as_deref(), Some("Ken, conference"));
        assert_eq!(
            action(&loaded.policy, "192.0.2.9", "/", "2026-12-24T08:00:00Z").0,
            Action::Allow
        );
        assert_eq!(
            action(&loaded.policy, "192.0.2.9", "/", "2026-12-24T09:00:00Z").0,
            Action::Deny
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    const WINDOW: &str = "version: 1
networks:
  office: [10.0.0.0/8]
  vpn: [100.64.0.0/10]
rules:
  - name: vpn-sign-in
    paths: [/login]
    login: true
    allow_from: [vpn]
    when: { days: [mon-fri], hours: \"08:00-20:00\", time_zone: Asia/Tokyo }
  - { name: office-sign-in, paths: [/login], login: true, allow_from: [office] }
  - { name: temporary, paths: [/export], action: allow, until: 2026-12-31T00:00:00Z }
  - { name: console, allow_from: [office, vpn] }
";

    #[test]
    fn outside_its_window_a_rule_falls_through_to_the_next() {
        let (p, _) = load(WINDOW, "2026-11-30T00:00:00Z").expect("loads");
        // Monday 10:00 in Tokyo.
        assert_eq!(
            action(&p, "100.64.1.1", "/login", "2026-11-30T01:00:00Z"),
            (Action::Allow, "vpn-sign-in".into())
        );
        // Monday 21:00 in Tokyo: the office rule decides, and the VPN is not in it.
        assert_eq!(
            action(&p, "100.64.1.1", "/login", "2026-11-30T12:00:00Z"),
            (Action::Deny, "office-sign-in".into())
        );
        // Saturday.
        assert_eq!(
            action(&p, "100.64.1.1", "/login", "2026-12-05T01:00:00Z"),
            (Action::Deny, "office-sign-in".into())
        );
    }

    #[test]
    fn an_expired_rule_matches_nothing() {
        let (p, _) = load(WINDOW, "2026-11-30T00:00:00Z").expect("loads");
        assert_eq!(
            action(&p, "203.0.113.9", "/export", "2026-12-30T23:59:59Z"),
            (Action::Allow, "temporary".into())
        );
        assert_eq!(
            action(&p, "203.0.113.9", "/export", "2026-12-31T00:00:00Z"),
            (Action::Deny, "console".into())
        );
    }

    #[test]
    fn window_mistakes_are_located_with_help() {
        let yaml = "version: 1
networks:
  vpn: [100.64.0.0/10]
rules:
  - name: a
    allow_from: [vpn]
    when:
      - { days: [mon-fry], hours: \"08:00-20:00\", time_zone: Asia/Tokyo }
      - { hours: \"8-20\", time_zone: Asia/Tokio }
      - { days: [sat] }
  - { name: b, action: deny, until: tomorrow }
";
        let d = load(yaml, "2026-11-30T00:00:00Z").expect_err("invalid");
        for needle in [
            "8:17: error: rule 'a': days: 'fry' is not a day of the week",
            "9:18: error: rule 'a': hours: '8-20' is not a range of hours like 08:00-20:00",
            "9:37: error: rule 'a': time_zone: 'Asia/Tokio' is not an IANA time zone name",
            "10:9: error: rule 'a': a 'when' window needs 'time_zone'",
            "11:37: error: rule 'b': until: 'tomorrow' is not an instant with an offset",
        ] {
            assert!(d.iter().any(|x| x.starts_with(needle)), "{needle}\n{d:#?}");
        }
    }

    #[test]
    fn policy_tests_decide_at_their_at() {
        let yaml = format!(
            "{WINDOW}tests:
  - {{ ip: 100.64.1.1, method: GET, path: /login, expect: allow, at: 2026-11-30T01:00:00Z }}
  - {{ ip: 100.64.1.1, method: GET, path: /login, expect: deny, rule: office-sign-in, at: 2026-11-30T12:00:00Z }}
  - {{ ip: 100.64.1.1, method: GET, path: /login, expect: allow, at: 2026-11-30T12:00:00Z }}
"
        );
        let d = load(&yaml, "2026-11-30T00:00:00Z").expect_err("third test fails");
        assert!(
            d.iter()
                .any(|x| x.starts_with("17:5: error: test 3 failed")),
            "{d:#?}"
        );
        assert_eq!(
            d.iter().filter(|x| x.contains("failed")).count(),
            1,
            "{d:#?}"
        );
    }
}

mod pages {
    use super::{diagnostics, has};
    use crate::policy::load_str;
    use crate::policy::pages::Lang;
    use std::path::Path;

    const BASE: &str = "version: 1\nnetworks:\n  office: [10.0.0.0/8]\nrules:\n  - { name: all, allow_from: [office] }\n";

    #[test]
    fn the_pages_section_sets_languages_fallback_and_contact_lines() {
        let yaml = format!(
            "{BASE}pages:\n  languages: [ja, en]\n  fallback: ja\n  contact:\n    ja: \"情報システム部 内線1234 まで\"\n    en: \"Call IT on extension 1234.\"\n"
        );
        let p = load_str(&yaml, Path::new("p.yaml")).expect("loads").policy;
        assert_eq!(p.pages().offered, vec![Lang::Ja, Lang::En]);
        assert_eq!(p.pages().fallback, Lang::Ja);
        assert_eq!(
            p.pages().contact(Lang::Ja),
            Some("情報システム部 内線1234 まで")
        );
        assert_eq!(
            p.pages().contact(Lang::En),
            Some("Call IT on extension 1234.")
        );
        // Without the section: both built-in languages, English first.
        let p = load_str(BASE, Path::new("p.yaml")).expect("loads").policy;
        assert_eq!(
            (p.pages().offered.clone(), p.pages().fallback),
            (vec![Lang::En, Lang::Ja], Lang::En)
        );
    }

    #[test]
    fn pages_mistakes_are_located_errors_with_help() {
        let d = diagnostics(&format!(
            "{BASE}pages:\n  languages: [ja, fr]\n  fallback: en\n  contact:\n    de: Rufen Sie die IT an\n    ja: \"\"\n  templates:\n    ja: missing.html\n"
        ));
        for needle in [
            "7:19: error: pages.languages: 'fr' is not a language netwarden has",
            "8:13: error: pages.fallback 'en' is not in pages.languages",
            "10:5: error: pages.contact: 'de' is not a language netwarden has",
            "11:9: error: pages.contact.ja: one line of at most 500 bytes",
            "13:9: error: pages.templates.ja: cannot read",
        ] {
            assert!(has(&d, needle), "{needle}\n{d:#?}");
        }
    }

    #[test]
    fn a_template_without_the_message_or_request_id_is_an_error() {
        let dir = std::env::temp_dir().join(format!("nw-pages-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::write(dir.join("ja.html"), "<p>{{title}}</p>").expect("write");
        std::fs::write(dir.join("en.html"), "<p>{{message}} {{request_id}}</p>").expect("write");
        let yaml = format!("{BASE}pages:\n  templates:\n    ja: ja.html\n    en: en.html\n");
        let err = load_str(&yaml, &dir.join("p.yaml")).expect_err("ja.html lacks both");
        let text = err_text(err);
        assert!(
            text.iter()
                .any(|d| d.starts_with("8:9: error: pages.templates.ja '")
                    && d.ends_with("lacks {{message}} and {{request_id}}")),
            "{text:#?}"
        );
        assert!(!text.iter().any(|d| d.contains("en.html")), "{text:#?}");
        // Read as pages are filled: triple braces are not the placeholder,
        // and an unknown name is a warning.
        std::fs::write(dir.join("ja.html"), "<p>{{{message}}} {{{request_id}}}</p>")
            .expect("write");
        let yaml = format!("{BASE}pages:\n  templates:\n    ja: ja.html\n");
        let text =
            err_text(load_str(&yaml, &dir.join("p.yaml")).expect_err("not the placeholders"));
        assert!(
            text.iter()
                .any(|d| d.ends_with("lacks {{message}} and {{request_id}}")),
            "{text:#?}"
        );
        std::fs::write(
            dir.join("ja.html"),
            "<p>{{message}} {{request_id}} {{nope}}</p>",
        )
        .expect("write");
        let loaded = load_str(&yaml, &dir.join("p.yaml")).expect("loads");
        assert!(
            loaded
                .warnings
                .iter()
                .any(|w| w.message.contains("'{{nope}}' is not a placeholder")),
            "{:#?}",
            loaded.warnings
        );
        // server.block_page is checked the same way.
        std::fs::write(dir.join("ja.html"), "<p>{{title}}</p>").expect("write");
        let yaml = format!("{BASE}server:\n  block_page: ja.html\n");
        let text = err_text(load_str(&yaml, &dir.join("p.yaml")).expect_err("invalid"));
        assert!(
            text.iter()
                .any(|d| d.contains("server.block_page") && d.contains("lacks")),
            "{text:#?}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn err_text(e: crate::policy::LoadError) -> Vec<String> {
        match e {
            crate::policy::LoadError::Invalid { diagnostics, .. } => diagnostics
                .iter()
                .map(|d| format!("{}:{}: {}: {}", d.line, d.column, d.severity, d.message))
                .collect(),
            other => vec![other.to_string()],
        }
    }
}

#[test]
fn the_whoami_path_must_be_a_plain_path_under_well_known() {
    let base = "version: 1\nnetworks:\n  office: [10.0.0.0/8]\nrules:\n  - { name: all, allow_from: [office] }\nserver:\n  whoami: { path: ";
    for bad in [
        "/login",
        "/.well-known/",
        "/.well-known/x;y",
        "/.well-known/x.",
        "/.well-known/a/../b",
        "/.well-known//x",
        "/.well-known/x?y",
        "/",
    ] {
        let d = diagnostics(&format!("{base}\"{bad}\" }}\n"));
        assert!(
            has(&d, "is not a plain path under /.well-known/"),
            "{bad}: {d:#?}"
        );
    }
    let d = diagnostics(&format!("{base}/.well-known/netwarden/me }}\n"));
    assert!(!has(&d, "error"), "{d:#?}");
}

#[test]
fn an_allow_from_that_adds_up_to_the_internet_is_a_public_rule() {
    for (networks, allow) in [
        ("  a: [0.0.0.0/1]\n  b: [128.0.0.0/1]\n", "[a, b]"),
        (
            "  all: [0.0.0.0/0]\n  hole: [10.255.255.255/32]\n  b: { include: [all], except: [hole] }\n",
            "[b]",
        ),
        ("  v6: [\"::/1\", \"8000::/1\"]\n", "[v6]"),
    ] {
        let yaml = format!(
            "version: 1\nnetworks:\n  office: [10.0.0.0/8]\n{networks}rules:\n  - {{ name: status, paths: [/status], allow_from: {allow} }}\n  - {{ name: all, allow_from: [office] }}\n"
        );
        let p = load_str(&yaml, Path::new("p.yaml")).expect("loads");
        assert!(
            p.warnings
                .iter()
                .any(|w| w.message.contains("hold half of all addresses or more")),
            "{networks}: {:#?}",
            p.warnings
        );
        assert!(!p.policy.rules()[0].vouches && p.policy.rules()[1].vouches);
    }
}

#[test]
fn body_pace_settings_load_and_a_zero_wait_is_a_located_error() {
    let yaml = format!(
        "version: 1\nnetworks:\n  office: [10.0.0.0/8]\n{RULE}server:\n  timeouts: {{ body_read: 3s, body_min_rate: 0 }}\n"
    );
    let p = load_str(&yaml, Path::new("p.yaml")).expect("loads").policy;
    let t = p.server().timeouts;
    assert_eq!(t.body_read, std::time::Duration::from_secs(3));
    assert_eq!(t.body_min_rate, 0);
    let d = diagnostics(&yaml.replace("body_read: 3s", "body_read: 0s"));
    assert!(has(&d, "error: a duration of zero"), "{d:#?}");
    let d = diagnostics(&yaml.replace("body_min_rate: 0", "body_min_rate: fast"));
    assert!(has(&d, "error"), "{d:#?}");
    let default = load_str(
        &format!("version: 1\nnetworks:\n  office: [10.0.0.0/8]\n{RULE}"),
        Path::new("p.yaml"),
    )
    .expect("loads")
    .policy;
    assert_eq!(
        default.server().timeouts.body_read,
        std::time::Duration::from_secs(20)
    );
    assert_eq!(default.server().timeouts.body_min_rate, 500);
}

const GROUPS: &str = "version: 1
networks:
  office: [203.0.113.0/24]
accounts:
  agency: [agency-*@example.jp]
";

#[test]
fn account_rules_need_a_login_route_an_account_spec_and_body_methods() {
    let d = diagnostics(&format!(
        "{GROUPS}rules:\n  - {{ name: a, paths: [/login], methods: [POST], accounts: [agency], allow_from: [office] }}\n  - {{ name: b, paths: [/login], methods: [POST], login: true, accounts: [agency], allow_from: [office] }}\n  - {{ name: c, paths: [/login], login: true, account: {{ form: u }}, accounts: [agency], allow_from: [office] }}\n  - {{ name: d, paths: [/login], methods: [POST, GET], login: true, account: {{ form: u }}, accounts: [agency], allow_from: [office] }}\n"
    ));
    assert!(
        has(&d, "rule 'a': 'accounts' is only for login routes"),
        "{d:#?}"
    );
    assert!(has(&d, "rule 'b': 'accounts' needs 'account:'"), "{d:#?}");
    assert!(
        has(&d, "rule 'c': a rule with 'accounts' must name its methods"),
        "{d:#?}"
    );
    assert!(
        has(&d, "rule 'd': a rule with 'accounts' cannot match GET"),
        "{d:#?}"
    );
}

#[test]
fn an_unknown_group_is_located_with_a_suggestion() {
    let d = diagnostics(&format!(
        "{GROUPS}rules:\n  - {{ name: a, paths: [/login], methods: [POST], login: true, account: {{ form: u }}, accounts: [agncy], allow_from: [office] }}\n"
    ));
    assert_eq!(
        d,
        ["7:96: error: rule 'a': unknown account group 'agncy'"],
        "one error, no 'not used' warning for the group it misspells"
    );
    let Err(LoadError::Invalid { diagnostics, .. }) = load_str(
        &format!(
            "{GROUPS}rules:\n  - {{ name: a, paths: [/login], methods: [POST], login: true, account: {{ form: u }}, accounts: [agncy], allow_from: [office] }}\n"
        ),
        Path::new("p.yaml"),
    ) else {
        panic!("invalid");
    };
    assert_eq!(
        diagnostics[0].help.as_deref(),
        Some("did you mean 'agency'?")
    );
}

#[test]
fn bad_patterns_and_unused_groups_are_said() {
    let d = diagnostics(
        "version: 1\naccounts:\n  everyone: ['*']\n  two: [a@b@c]\n  empty: []\nrules:\n  - { name: r, action: deny }\n",
    );
    assert!(
        has(&d, "3:14: error: account group 'everyone': '*' is only '*'"),
        "{d:#?}"
    );
    assert!(
        has(
            &d,
            "4:9: error: account group 'two': 'a@b@c' has more than one '@'"
        ),
        "{d:#?}"
    );
    assert!(has(&d, "account group 'empty' is empty"), "{d:#?}");
    let d = diagnostics(&format!(
        "{GROUPS}rules:\n  - {{ name: r, allow_from: [office] }}\n"
    ));
    assert!(
        has(
            &d,
            "warning: account group 'agency' is not used by any rule"
        ),
        "{d:#?}"
    );
}

#[test]
fn a_rule_with_both_accounts_and_who_is_a_warning() {
    let d = diagnostics(&format!(
        "{GROUPS}identity:\n  headers: {{ preset: authelia }}\nclient_ip: {{ trusted_proxies: [office] }}\nrules:\n  - {{ name: r, paths: [/login], methods: [POST], login: true, account: {{ form: u }}, accounts: [agency], who: {{ groups: [agency] }}, allow_from: [office] }}\n"
    ));
    assert!(
        has(&d, "warning: rule 'r' has both 'accounts' and 'who'"),
        "{d:#?}"
    );
}

#[test]
fn a_rule_for_some_accounts_hides_only_rules_for_the_same() {
    let rule = |name: &str, accounts: &str| {
        format!(
            "  - {{ name: {name}, paths: [/login], methods: [POST], login: true, account: {{ form: u }},{accounts} allow_from: [office] }}\n"
        )
    };
    let d = diagnostics(&format!(
        "{GROUPS}rules:\n{}{}",
        rule("agency", " accounts: [agency],"),
        rule("everyone", "")
    ));
    assert!(!has(&d, "never match"), "{d:#?}");
    let d = diagnostics(&format!(
        "{GROUPS}rules:\n{}{}",
        rule("everyone", ""),
        rule("agency", " accounts: [agency],")
    ));
    assert!(has(&d, "rule 'agency' can never match"), "{d:#?}");
    let d = diagnostics(&format!(
        "{GROUPS}rules:\n{}{}",
        rule("first", " accounts: [agency],"),
        rule("second", " accounts: [agency],")
    ));
    assert!(has(&d, "rule 'second' can never match"), "{d:#?}");
}
