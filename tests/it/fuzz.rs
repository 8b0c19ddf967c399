//! Property-based fuzzing of the two places that take hostile input: config parsing and the
//! endpoints' query strings. Runs a small number of cases in the normal suite; for a long
//! run by hand: `PROPTEST_CASES=100000 cargo test --release --test fuzz`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::http::Request;
use healthd::config::server::AuthConfig;
use healthd::config::{self, COMMON_KEYS, Sources};
use healthd::health::{Policy, Snapshot};
use healthd::server::auth::Authorizer;
use healthd::server::{AppState, ServerOptions, router};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use tower::ServiceExt;

fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `cases` cases, failures persisted beside this file (`fuzz.proptest-regressions`).
/// proptest's default would look for the `main.rs` of the test binary (`tests/it/`) and use
/// `tests/proptest-regressions/fuzz.txt` instead.
fn config(cases_by_default: u32) -> ProptestConfig {
    ProptestConfig {
        cases: cases(cases_by_default),
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource(
            "proptest-regressions",
        ))),
        ..ProptestConfig::default()
    }
}

fn load_text(
    text: &str,
    env: HashMap<String, String>,
) -> Result<config::Config, Vec<config::ConfigError>> {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("healthd.toml");
    std::fs::write(&path, text).expect("write");
    let empty = dir.path().join("probes.d");
    std::fs::create_dir(&empty).expect("mkdir");
    config::load(&Sources {
        config: Some(path),
        probes_dir: Some(empty),
        env: Some(env),
    })
}

/// Values of every TOML type, including awkward ones.
fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>()
            .prop_map(|f| format!("{f:?}"))
            .prop_filter("toml float", |s| !s.contains("inf") && !s.contains("NaN")),
        any::<bool>().prop_map(|b| b.to_string()),
        "[ -~]{0,24}".prop_map(|s| format!("{:?}", s)),
        Just("\"500ms\"".to_string()),
        Just("\"0s\"".to_string()),
        Just("\"-1s\"".to_string()),
        Just("\"99999999999999h\"".to_string()),
        Just("[]".to_string()),
        Just("[\"readiness\", \"nope\"]".to_string()),
        Just("{}".to_string()),
        Just("18446744073709551615".to_string()),
    ]
}

/// Keys of the kinds the fuzzer writes (tcp, http, cpu/memory/disk); the keys every check
/// has come from the config's own list.
const KIND_KEYS: &[&str] = &[
    "host",
    "port",
    "url",
    "send",
    "expect",
    "expect_regex",
    "method",
    "expect_status",
    "mounts",
    "degraded_above",
    "unhealthy_above",
];

fn check_keys() -> Vec<&'static str> {
    let mut keys: Vec<&'static str> = COMMON_KEYS.to_vec();
    keys.push("kind");
    keys.extend_from_slice(KIND_KEYS);
    keys
}

const SERVER_KEYS: &[&str] = &["listen", "shutdown_delay", "stall_after", "max_in_flight"];
const KINDS: &[&str] = &["tcp", "http", "cpu", "memory", "disk", "nope"];

fn structured() -> impl Strategy<Value = String> {
    (
        prop::collection::vec((prop::sample::select(SERVER_KEYS), value()), 0..4),
        prop::collection::vec(
            (
                prop::sample::select(KINDS),
                prop::collection::vec((prop::sample::select(check_keys()), value()), 0..8),
            ),
            0..4,
        ),
        prop::collection::vec(
            (
                prop::sample::select(
                    &[
                        "request_timeout",
                        "max_connections",
                        "max_header_bytes",
                        "probe_concurrency",
                    ][..],
                ),
                value(),
            ),
            0..3,
        ),
    )
        .prop_map(|(server, checks, limits)| {
            let mut t = String::from("[server]\n");
            for (k, v) in dedup(server) {
                t.push_str(&format!("{k} = {v}\n"));
            }
            t.push_str("[server.limits]\n");
            for (k, v) in dedup(limits) {
                t.push_str(&format!("{k} = {v}\n"));
            }
            for (i, (kind, keys)) in checks.into_iter().enumerate() {
                t.push_str(&format!("[[checks]]\nname = \"c{i}\"\nkind = \"{kind}\"\n"));
                for (k, v) in dedup(keys) {
                    if k != "name" && k != "kind" {
                        t.push_str(&format!("{k} = {v}\n"));
                    }
                }
            }
            t
        })
}

fn dedup(pairs: Vec<(&'static str, String)>) -> Vec<(&'static str, String)> {
    let mut seen = std::collections::HashSet::new();
    pairs.into_iter().filter(|(k, _)| seen.insert(*k)).collect()
}

proptest! {
    #![proptest_config(config(64))]

    #[test]
    fn arbitrary_text_never_panics_the_loader(text in "\\PC{0,300}") {
        let _ = load_text(&text, HashMap::new());
    }

    #[test]
    fn arbitrary_values_in_known_keys_never_panic_the_loader(text in structured()) {
        if let Err(errors) = load_text(&text, HashMap::new()) {
            for e in errors {
                prop_assert!(!e.reason.is_empty(), "{text}: empty reason for {}", e.key);
            }
        }
    }

    #[test]
    fn arbitrary_env_overrides_never_panic_the_loader(
        key in "[A-Z_]{1,30}",
        value in "\\PC{0,30}",
    ) {
        let env = HashMap::from([(format!("HEALTHD_{key}"), value)]);
        let _ = load_text("[[checks]]\nname = \"c\"\nkind = \"memory\"\n", env);
    }
}

fn app(locked: bool) -> axum::Router {
    let snapshot = Arc::new(arc_swap::ArcSwap::from_pointee(Snapshot::empty()));
    let mut options = ServerOptions::default();
    if locked {
        // Auth configured with no token and no trusted network: details for nobody.
        options.auth = Arc::new(Authorizer::of(&Some(AuthConfig {
            token_file: None,
            trusted_networks: vec![],
        })));
    }
    router(AppState::new(snapshot, Policy::default(), options))
}

proptest! {
    #![proptest_config(config(128))]

    #[test]
    fn arbitrary_query_strings_get_a_sane_answer(
        path in prop::sample::select(&["/livez", "/readyz", "/startupz", "/readyz/x", "/health", "/metrics", "/nope"][..]),
        query in "[ -~]{0,80}",
        json in any::<bool>(),
        locked in any::<bool>(),
    ) {
        // Only what a URI can carry: percent-encode what it cannot.
        let query: String = query
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || "=&,%._-~".contains(c) { c.to_string() } else { format!("%{:02X}", c as u32) })
            .collect();
        let uri = format!("{path}?{query}");
        let mut req = Request::builder().uri(&uri);
        if json {
            req = req.header("accept", "application/json");
        }
        let req = req.body(Body::empty()).map_err(|e| TestCaseError::fail(format!("{uri}: {e}")))?;
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| TestCaseError::fail(e.to_string()))?;
        let code = rt.block_on(app(locked).oneshot(req)).map(|r| r.status().as_u16());
        let Ok(code) = code;
        prop_assert!([200, 503, 404, 401, 400, 414].contains(&code), "{uri}: {code}");
    }
}
