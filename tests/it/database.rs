//! Scenarios every database kind passes, written once and run for each: `kind = "postgres"`
//! ([`crate::postgres::Postgres`]) and `kind = "redis"` ([`crate::redis::Redis`]). A kind
//! tells [`DbKind`] how to start its server with a password, write its check, list and cut
//! its connections, and stop and restart it; `shared_scenarios!(Kind)` in the kind's own
//! file declares the tests (`postgres::wrong_password_is_auth_…`, `redis::wrong_…`).
//! Kind-specific tests (TLS modes, roles and replicas, memory thresholds, blocked servers)
//! stay in `postgres.rs` and `redis.rs`.

use std::path::Path;
use std::time::{Duration, Instant};

use healthd::config;
use healthd::model::{Level, Reason};
use healthd::scheduler::run_once;
use serde_json::Value;
use tokio::task::block_in_place;

use crate::support::config::{ConfigDir, one_check};
use crate::support::daemon::{Subprocess, TestDaemon, assert_no_secret, healthd_check, is, reason};
use crate::support::{eventually, unique_secret};

/// Slack on top of computed bounds: the machine running the tests is shared and loaded.
pub const SLACK: Duration = Duration::from_secs(8);

/// The `[defaults]` most scenarios run with: short runs, the first failure counts.
pub const FAST: &str =
    "[defaults]\ninterval = \"300ms\"\ntimeout = \"250ms\"\nfailure_threshold = 1\n\n";

/// What the shared scenarios need to know about one database kind.
pub trait DbKind {
    type Server;
    /// The check kind, also the name of its shipped example (`probes/<KIND>.toml`) and of
    /// the example's check.
    const KIND: &'static str;
    /// Part of the check's message when the server rejects the password.
    const WRONG_PASSWORD_MESSAGE: &'static str;
    /// Part of `healthd check --format json` output when the server rejects the password.
    const WRONG_PASSWORD_JSON: &'static str;
    /// Further checks written by [`DbKind::auth_checks`] that fail with reason `auth`:
    /// (check name, part of its message).
    const OTHER_AUTH_FAILURES: &'static [(&'static str, &'static str)];

    /// A server on 127.0.0.1 where user `app` logs in with `password` (blocking).
    fn start_with_password(password: &str) -> Self::Server;
    /// A check named `name` (its connection named `healthd-<name>`) logging in as `app`
    /// with the password in `password_file`.
    fn check(name: &str, server: &Self::Server, password_file: &Path) -> String;
    /// The checks of the leak scenario: `ok` (password_file), `bad-password` (the wrong
    /// password from env var `wrong_env`), `inline` (the password in the config), `url`
    /// (the password in a URL), and those of [`DbKind::OTHER_AUTH_FAILURES`].
    fn auth_checks(
        server: &Self::Server,
        password_file: &Path,
        secret: &str,
        wrong_env: &str,
    ) -> String;
    /// The kind's details of a healthy check (role, version, ...).
    fn assert_healthy_details(c: &Value);
    /// Server-side ids of the connections named `app`.
    fn connection_ids(server: &Self::Server, app: &str) -> Vec<String>;
    /// The connection named `app` is the only one the check keeps.
    fn assert_alone(server: &Self::Server, app: &str);
    /// Connections from healthd still open on the server (`app` is the check's).
    fn open_connections(server: &Self::Server, app: &str) -> usize;
    /// Has the server close the connections named `app`; returns how many.
    fn kill_connections(server: &Self::Server, app: &str) -> usize;
    /// Graceful stop, then start again on the same port (blocking).
    fn stop(server: &mut Self::Server);
    fn start_again(server: &mut Self::Server);
}

/// Declares the shared scenarios as tests of the kind `$kind` in the calling module.
macro_rules! shared_scenarios {
    ($kind:ty) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn healthy_with_one_kept_connection_and_back_after_a_restart() {
            crate::database::healthy_with_one_kept_connection_and_back_after_a_restart::<$kind>()
                .await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn wrong_password_is_auth_and_no_password_leaks_anywhere() {
            crate::database::wrong_password_is_auth_and_no_password_leaks_anywhere::<$kind>().await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn slower_than_degraded_after_is_degraded_with_reason_threshold() {
            crate::database::slower_than_degraded_after_is_degraded_with_reason_threshold::<$kind>(
            )
            .await;
        }

        #[test]
        fn shipped_example_is_a_valid_drop_in() {
            crate::database::shipped_example_is_a_valid_drop_in::<$kind>();
        }
    };
}
pub(crate) use shared_scenarios;

pub async fn healthy_with_one_kept_connection_and_back_after_a_restart<K: DbKind>() {
    let secret = unique_secret(&format!("{}app", K::KIND));
    let mut server = block_in_place(|| K::start_with_password(&secret));
    let dir = ConfigDir::new("");
    let pw = dir.secret_file("password", &secret);
    let (interval, timeout, threshold) =
        (Duration::from_millis(200), Duration::from_millis(190), 2);
    dir.set_config(&format!(
        "[server]\nshutdown_delay = \"100ms\"\n\n[defaults]\ninterval = \"200ms\"\ntimeout = \"190ms\"\n\
         failure_threshold = {threshold}\n\n{}",
        K::check("db", &server, &pw)
    ));
    let d = TestDaemon::start_in(dir).await;
    let app = "healthd-db";

    let c = d
        .wait_check("db", "healthy", SLACK, |c| is(c, "healthy"))
        .await;
    K::assert_healthy_details(&c);

    // About 25 runs over 5 s: one connection, always the same.
    let first = block_in_place(|| K::connection_ids(&server, app));
    assert_eq!(first.len(), 1, "one connection: {first:?}");
    let runs_before = d.check("db").await["consecutive_successes"]
        .as_u64()
        .unwrap_or(0);
    let until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < until {
        let now = block_in_place(|| K::connection_ids(&server, app));
        if now != first {
            let c = d.check("db").await;
            panic!("the check did not keep its one connection: {first:?} -> {now:?}; {c:#}");
        }
        block_in_place(|| K::assert_alone(&server, app));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let c = d.check("db").await;
    let runs_after = c["consecutive_successes"].as_u64().unwrap_or(0);
    assert!(
        runs_after >= runs_before + 10,
        "the check kept running ({runs_before} -> {runs_after} successes): {c:#}"
    );
    block_in_place(|| K::assert_alone(&server, app));

    // A connection the server closes is replaced at once, without a failed run.
    assert_eq!(block_in_place(|| K::kill_connections(&server, app)), 1);
    block_in_place(|| {
        eventually("a new connection", SLACK, || {
            let now = K::connection_ids(&server, app);
            now.len() == 1 && now != first
        })
    });
    tokio::time::sleep(interval * 2).await;
    let c = d.check("db").await;
    assert!(c["last_failure"].is_null(), "no failed run: {c:#}");

    // Stopped: unhealthy within (interval + timeout) × failure_threshold, plus slack.
    block_in_place(|| K::stop(&mut server));
    let stopped = Instant::now();
    let bound = (interval + timeout) * threshold + SLACK;
    let c = d
        .wait_check("db", "unhealthy", bound, |c| is(c, "unhealthy"))
        .await;
    assert_eq!(reason(&c), "connect", "{c:#}");
    eprintln!("unhealthy {:?} after the stop", stopped.elapsed());
    let (code, _) = d.get("/readyz").await;
    assert_eq!(code, 503);

    // Back: healthy again without restarting healthd, and still one connection.
    block_in_place(|| K::start_again(&mut server));
    d.wait_check("db", "healthy again", SLACK, |c| is(c, "healthy"))
        .await;
    let (code, _) = d.get("/readyz").await;
    assert_eq!(code, 200);
    let after = block_in_place(|| K::connection_ids(&server, app));
    assert_eq!(
        after.len(),
        1,
        "one connection after the restart: {after:?}"
    );
    let until = Instant::now() + Duration::from_secs(1);
    while Instant::now() < until {
        assert_eq!(block_in_place(|| K::connection_ids(&server, app)), after);
        block_in_place(|| K::assert_alone(&server, app));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    d.daemon.drain(std::future::pending()).await;
    // The probe's connection is closed when healthd stops.
    block_in_place(|| {
        eventually(
            "the check's connection to close",
            Duration::from_secs(10),
            || K::open_connections(&server, app) == 0,
        )
    });
}

pub async fn wrong_password_is_auth_and_no_password_leaks_anywhere<K: DbKind>() {
    let secret = unique_secret(&format!("{}app", K::KIND));
    let wrong = unique_secret(&format!("{}wrong", K::KIND));
    let server = block_in_place(|| K::start_with_password(&secret));
    let dir = ConfigDir::new("");
    let pw = dir.secret_file("password", &secret);
    let wrong_env = "DB_TEST_WRONG_PASSWORD";
    dir.set_config(&format!(
        "{FAST}{}",
        K::auth_checks(&server, &pw, &secret, wrong_env)
    ));
    let env = [(wrong_env, wrong.as_str())];
    let proc = Subprocess::start_debug(&dir, &env);
    let http = proc.client();

    let bad = http
        .wait_check("bad-password", "unhealthy", SLACK * 2, |c| {
            is(c, "unhealthy")
        })
        .await;
    assert_eq!(reason(&bad), "auth", "{bad:#}");
    assert!(
        bad["message"]
            .as_str()
            .is_some_and(|m| m.contains(K::WRONG_PASSWORD_MESSAGE)),
        "{bad:#}"
    );
    for &(name, message) in K::OTHER_AUTH_FAILURES {
        let c = http
            .wait_check(name, "unhealthy", SLACK, |c| is(c, "unhealthy"))
            .await;
        assert_eq!(reason(&c), "auth", "{c:#}");
        assert!(
            c["message"].as_str().is_some_and(|m| m.contains(message)),
            "{c:#}"
        );
    }
    for name in ["ok", "inline", "url"] {
        http.wait_check(name, "healthy", SLACK, |c| is(c, "healthy"))
            .await;
    }
    // Let a few more runs (and their debug logs) happen, failures included.
    tokio::time::sleep(Duration::from_secs(1)).await;

    let seen = http.every_surface("bad-password").await;
    let logs = proc.stop();
    assert!(
        logs.contains("Password given inline"),
        "inline passwords are warned about: {logs}"
    );
    let (code, text) = healthd_check(&dir, "text", &env);
    assert_eq!(code, 2, "unhealthy: {text}");
    assert!(text.contains("auth"), "{text}");
    let (code, json) = healthd_check(&dir, "json", &env);
    assert_eq!(code, 2, "unhealthy: {json}");
    assert!(json.contains(K::WRONG_PASSWORD_JSON), "{json}");

    assert_no_secret(
        &[
            ("endpoints", &seen),
            ("daemon logs", &logs),
            ("healthd check text", &text),
            ("healthd check json", &json),
        ],
        &[&secret, &wrong],
    );
    // The logs do say what went wrong.
    assert!(logs.contains("bad-password"), "{logs}");
}

/// `degraded_after` is the scheduler's, the same for every kind: judged on the kind's own
/// answer time (the query or PING and INFO, not connecting), an answer slower than a limit
/// no server can meet is degraded with reason `threshold`; a generous limit leaves it ok.
pub async fn slower_than_degraded_after_is_degraded_with_reason_threshold<K: DbKind>() {
    let secret = unique_secret(&format!("{}slow", K::KIND));
    let server = block_in_place(|| K::start_with_password(&secret));
    let dir = ConfigDir::new("");
    let pw = dir.secret_file("password", &secret);
    let check = |limit: &str| {
        one_check(&format!(
            "{}degraded_after = \"{limit}\"\n",
            K::check("db", &server, &pw)
        ))
    };
    let mut probe = None;
    let slow = run_once(&mut probe, &check("1ns")).await;
    assert_eq!(slow.level, Level::Degraded, "{slow:?}");
    assert_eq!(slow.reason, Some(Reason::Threshold), "{slow:?}");
    assert!(
        slow.message.contains("(slower than 1ns)"),
        "{}",
        slow.message
    );
    let fine = run_once(&mut None, &check("1s")).await;
    assert_eq!(fine.level, Level::Ok, "{fine:?}");
}

pub fn shipped_example_is_a_valid_drop_in<K: DbKind>() {
    let dir = ConfigDir::new("");
    let example = crate::support::repo_path(&format!("probes/{}.toml", K::KIND));
    std::fs::copy(&example, dir.probes_dir().join(format!("{}.toml", K::KIND)))
        .expect("copy example");
    let config = config::load(&dir.sources())
        .unwrap_or_else(|e| panic!("{} does not validate: {e:?}", example.display()));
    let check = config
        .checks
        .iter()
        .find(|c| c.name == K::KIND)
        .expect("the example's check");
    assert_eq!(check.kind(), K::KIND);
}
