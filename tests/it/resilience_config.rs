//! The resilience and security keys: defaults, inheritance from `[defaults]`, and the exact
//! errors for bad values.

use std::collections::HashMap;
use std::time::Duration;

use healthd::config::{self, Config, ConfigError, Sources};

fn load(text: &str) -> Result<Config, Vec<ConfigError>> {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("healthd.toml");
    std::fs::write(&path, text).expect("write");
    let probes = dir.path().join("probes.d");
    std::fs::create_dir(&probes).expect("mkdir");
    config::load(&Sources {
        config: Some(path),
        probes_dir: Some(probes),
        env: Some(HashMap::new()),
    })
}

fn errors(text: &str) -> Vec<(String, String)> {
    load(text)
        .expect_err("config should be rejected")
        .into_iter()
        .map(|e| (e.key, e.reason))
        .collect()
}

const S: Duration = Duration::from_secs(1);

#[test]
fn defaults_and_inheritance() {
    let cfg = load(
        r#"
[defaults]
interval = "10s"
confirm_after = "1s"
flap_window = 10

[[checks]]
name = "a"
kind = "memory"

[[checks]]
name = "b"
kind = "memory"
interval = "2m"
backoff = false
max_backoff = "10m"
confirm_after = "5s"
flap_threshold = 0.3
max_staleness = "1h"

[[checks]]
name = "c"
kind = "memory"
interval = "1s"
timeout = "500ms"
"#,
    )
    .expect("valid");
    let r = |i: usize| cfg.checks[i].resilience.clone();
    assert!(r(0).backoff);
    assert_eq!(r(0).max_backoff, S * 80, "8 × interval");
    assert_eq!(r(0).confirm_after, Some(S));
    assert_eq!(r(0).flap_window, 10);
    assert_eq!(r(0).flap_threshold, 0.5);
    assert_eq!(r(0).max_staleness, None);
    assert!(!r(1).backoff);
    assert_eq!(r(1).max_backoff, S * 600);
    assert_eq!(r(1).confirm_after, Some(S * 5));
    assert_eq!(r(1).flap_threshold, 0.3);
    assert_eq!(r(1).max_staleness, Some(S * 3600));
    // The inherited confirm_after (1s) is not below c's interval (1s): not applied.
    assert_eq!(r(2).confirm_after, None);
    assert_eq!(r(2).max_backoff, S * 8);
    assert_eq!(cfg.server.max_in_flight, 512);
    assert!(cfg.server.auth.is_none() && cfg.server.tls.is_none());
}

#[test]
fn bad_values_name_their_key() {
    let errs = errors(
        r#"
[server]
max_in_flight = 0

[server.limits]
max_connections = 0
max_header_bytes = 10

[server.auth]
trusted_networks = ["10.0.0.0/8", "not-a-net"]
token_file = "/nonexistent/healthd-token"

[server.tls]
cert_file = "/nonexistent/cert.pem"
key_file = "/nonexistent/key.pem"

[[checks]]
name = "x"
kind = "memory"
interval = "10s"
max_backoff = "5s"
confirm_after = "10s"
flap_window = 1
flap_threshold = 1.5
max_staleness = "1s"
"#,
    );
    let keys: Vec<&str> = errs.iter().map(|(k, _)| k.as_str()).collect();
    for want in [
        "server.max_in_flight",
        "server.auth.trusted_networks[1]",
        "server.auth.token_file",
        "server.tls.cert_file",
        "server.limits.max_connections",
        "server.limits.max_header_bytes",
        "checks.\"x\".max_backoff",
        "checks.\"x\".confirm_after",
        "checks.\"x\".flap_threshold",
        "checks.\"x\".flap_window",
        "checks.\"x\".max_staleness",
    ] {
        assert!(keys.contains(&want), "no error for {want}: {errs:#?}");
    }
    let reason = |k: &str| {
        errs.iter()
            .find(|(key, _)| key == k)
            .map(|(_, r)| r.clone())
    };
    assert_eq!(
        reason("checks.\"x\".confirm_after").as_deref(),
        Some("must be below the interval (10s is not below 10s)")
    );
    assert_eq!(
        reason("server.auth.trusted_networks[1]").as_deref(),
        Some("invalid network \"not-a-net\" (use CIDR such as 10.0.0.0/8 or an address)")
    );
}

#[test]
fn unknown_keys_under_server_sections_are_rejected() {
    let errs = errors("[server.auth]\ntoken = \"inline\"\n");
    assert_eq!(errs[0].0, "server.auth.token");
    let errs = errors("[server.limits]\nmax_body = 1\n");
    assert_eq!(errs[0].0, "server.limits.max_body");
}
