//! Policy cases as data: every `testdata/cases/*.yaml` is a policy whose
//! `tests:` pin one area of the engine's semantics. Loading runs them.

use std::path::Path;

use netwarden::policy::{self, LoadError};

#[test]
fn every_case_file_passes_its_tests() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/cases");
    let mut files = 0;
    for entry in std::fs::read_dir(&dir).expect("testdata/cases exists") {
        let path = entry.expect("readable dir entry").path();
        if path.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        files += 1;
        match policy::load(&path) {
            Ok(loaded) => assert!(
                loaded.tests_passed >= 10,
                "{}: too few cases",
                path.display()
            ),
            Err(LoadError::Invalid { diagnostics, .. }) => {
                let text: Vec<String> = diagnostics.iter().map(ToString::to_string).collect();
                panic!("{}:\n{}", path.display(), text.join("\n\n"));
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert!(files > 0, "no case files found");
}

#[test]
fn example_policy_passes_its_tests() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/example.yaml");
    let loaded = policy::load(&path).expect("policies/example.yaml is valid");
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    assert!(loaded.tests_passed >= 10);
}

#[test]
fn demo_policy_passes_its_tests() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/demo.yaml");
    let loaded = policy::load(&path).expect("policies/demo.yaml is valid");
    assert!(loaded.tests_passed >= 5);
}

/// The `policy.yaml` key of a Kubernetes manifest's ConfigMap.
fn configmap_policy(manifest: &str) -> String {
    manifest
        .lines()
        .skip_while(|l| l.trim() != "policy.yaml: |")
        .skip(1)
        .take_while(|l| l.starts_with("    ") || l.is_empty())
        .map(|l| format!("{}\n", l.get(4..).unwrap_or("")))
        .collect()
}

/// The policy inside the Kubernetes example's ConfigMap is valid as shipped.
#[test]
fn kubernetes_example_policy_is_valid() {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/kubernetes/console-with-netwarden.yaml");
    let text = std::fs::read_to_string(&path).expect("example exists");
    let policy = configmap_policy(&text);
    assert!(policy.contains("version: 1"), "policy block not found");
    // The ConfigMap's other key, mounted beside the policy: the published
    // list's snapshot that `check` reads (no copy in state_dir here).
    let snapshot: String = text
        .lines()
        .skip_while(|l| l.trim() != "vpn-provider-egress.txt: |")
        .skip(1)
        .take_while(|l| l.starts_with("    "))
        .map(|l| format!("{}\n", &l[4..]))
        .collect();
    assert!(
        snapshot.contains("192.0.2.0/25"),
        "snapshot block not found"
    );
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(dir.path().join("vpn-provider-egress.txt"), snapshot).expect("snapshot");
    match policy::load_str(&policy, &dir.path().join("policy.yaml")) {
        Ok(loaded) => {
            // Its tests include the spoofed X-Forwarded-For from another
            // Pod; no warning (a trusted range too wide would be one).
            assert!(loaded.tests_passed >= 4);
            // The published list is read from its snapshot.
            assert_eq!(loaded.policy.feeds().len(), 1);
            assert_eq!(loaded.policy.feeds()[0].used.prefixes, 2);
            // The replicas share their lockout state through the Redis
            // Service the example defines.
            assert!(matches!(
                loaded.policy.state(),
                netwarden::policy::state::Settings::Redis(_)
            ));
            assert!(text.contains("kind: Service\nmetadata:\n  name: console-lockout"));
            assert!(
                loaded.warnings.is_empty(),
                "{:?}",
                loaded
                    .warnings
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
            );
        }
        Err(LoadError::Invalid { diagnostics, .. }) => {
            panic!(
                "{}",
                diagnostics
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("\n")
            )
        }
        Err(e) => panic!("{e}"),
    }
}

/// The oauth2-proxy variant's policy is valid as shipped, its tests pass,
/// and it believes identity headers only from its trusted proxies.
#[test]
fn kubernetes_oauth2_proxy_variant_policy_is_valid() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/kubernetes/oauth2-proxy.yaml");
    let text = std::fs::read_to_string(&path).expect("variant exists");
    let policy = configmap_policy(&text);
    assert!(policy.contains("identity:"), "policy block not found");
    let dir = tempfile::tempdir().expect("dir");
    match policy::load_str(&policy, &dir.path().join("policy.yaml")) {
        Ok(loaded) => {
            assert!(loaded.tests_passed >= 5);
            assert!(loaded.policy.identity().is_some());
            assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
        }
        Err(LoadError::Invalid { diagnostics, .. }) => panic!(
            "{}",
            diagnostics
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        ),
        Err(e) => panic!("{e}"),
    }
}
