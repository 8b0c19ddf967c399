//! The fault suite, dependency scenarios: real PostgreSQL and Redis servers (the harness in
//! `support`) killed, frozen or absent, and an OTLP collector that is never there. Each
//! scenario asserts the verdict, the reason, how long it took to notice and to recover, and
//! that the rest of healthd (a `witness` check, the probe endpoints) was not disturbed. Every
//! scenario prints a line `FAULT <name> detect=<s> recover=<s>` for the failure-behaviour
//! table, like `tests/it/faults/`.
//!
//! *Detect* runs from the moment the fault is injected (or healthd started, for faults present
//! from the start) until `/health` shows the verdict; *recover* from the moment the dependency
//! is back and accepting connections until the check is healthy again.

use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::task::block_in_place;

use crate::support::daemon::{TestDaemon, status_is};
use crate::support::peers::{ANSWER, RefusingPort, TcpPeer, report};
use crate::support::postgres::{PgOptions, PgServer};
use crate::support::redis::RedisServer;
use crate::support::{eventually, free_port, unique_secret, write_secret};

const SLACK: Duration = Duration::from_secs(5);

// The dependency checks' settings: database round trips get a little more room than the
// plain TCP checks of `tests/it/faults/`.
const INTERVAL: Duration = Duration::from_millis(400);
const TIMEOUT: Duration = Duration::from_millis(300);
const THRESHOLD: u32 = 2;
const MAX_BACKOFF: Duration = Duration::from_millis(1200);

/// (interval + timeout) × failure_threshold, plus backoff, plus slack for a loaded machine.
fn bound() -> Duration {
    (INTERVAL + TIMEOUT) * THRESHOLD + MAX_BACKOFF + SLACK
}

/// A config: `[server]` extras, a healthy tcp `witness`, then the given checks/sections.
fn config(witness: &TcpPeer, extra_server: &str, rest: &str) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
shutdown_delay = "200ms"
{extra_server}

[defaults]
interval = "300ms"
timeout = "200ms"
failure_threshold = {THRESHOLD}
max_backoff = "{backoff}ms"

[[checks]]
name = "witness"
kind = "tcp"
host = "127.0.0.1"
port = {port}
{rest}
"#,
        port = witness.addr.port(),
        backoff = MAX_BACKOFF.as_millis(),
    )
}

/// Timing keys for a dependency check.
fn timing() -> String {
    format!(
        "interval = \"{}ms\"\ntimeout = \"{}ms\"",
        INTERVAL.as_millis(),
        TIMEOUT.as_millis()
    )
}

/// A PostgreSQL check as the superuser, its password in a 0600 file under `dir`.
fn pg_check(name: &str, port: u16, password: &str, dir: &tempfile::TempDir) -> String {
    let file = write_secret(&dir.path().join(format!("{name}.pw")), password);
    format!(
        "\n[[checks]]\nname = \"{name}\"\nkind = \"postgres\"\nhost = \"127.0.0.1\"\nport = {port}\n\
         user = \"postgres\"\ndbname = \"postgres\"\nsslmode = \"disable\"\n\
         application_name = \"healthd-{name}\"\npassword_file = {file:?}\n{}\n",
        timing()
    )
}

fn redis_check(name: &str, port: u16) -> String {
    format!(
        "\n[[checks]]\nname = \"{name}\"\nkind = \"redis\"\nhost = \"127.0.0.1\"\nport = {port}\n\
         client_name = \"healthd-{name}\"\n{}\n",
        timing()
    )
}

/// Unhealthy with one of `reasons`.
fn unhealthy_with(reasons: &'static [&'static str]) -> impl Fn(&Value) -> bool {
    move |v| v["status"] == "unhealthy" && reasons.iter().any(|r| v["reason"] == *r)
}

/// Wait for `name` to turn unhealthy with one of `reasons`, checking the endpoints and the
/// witness at every poll on the way; returns (time taken, the reason seen).
async fn detect(
    h: &TestDaemon,
    name: &str,
    reasons: &'static [&'static str],
) -> (Duration, String) {
    let d = h
        .timed_wait(name, bound(), "unhealthy", unhealthy_with(reasons))
        .await;
    let v = h.check(name).await;
    assert_eq!(h.get("/readyz").await.0, 503, "readiness fails with it");
    h.assert_undisturbed("witness", SLACK).await;
    (d, v["reason"].as_str().unwrap_or_default().to_string())
}

/// Wait for `name` to be healthy again with its breaker closed.
async fn recover(h: &TestDaemon, name: &str) -> Duration {
    let d = h
        .timed_wait(name, bound(), "healthy again", status_is("healthy", None))
        .await;
    let v = h.check(name).await;
    assert_eq!(v["breaker"], "closed", "{v:#}");
    h.assert_undisturbed("witness", SLACK).await;
    d
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_killed_with_sigkill_and_restarted() {
    let mut pg = block_in_place(PgServer::start);
    let witness = TcpPeer::start(ANSWER).await;
    let secrets = tempfile::tempdir().expect("temp dir");
    let h = TestDaemon::start(&config(
        &witness,
        "",
        &pg_check("pg", pg.port(), pg.password(), &secrets),
    ))
    .await;
    for name in ["witness", "pg"] {
        h.timed_wait(
            name,
            bound(),
            "healthy at first",
            status_is("healthy", None),
        )
        .await;
    }
    h.assert_probes(200, 200).await;
    assert_eq!(block_in_place(|| pg.connections_from("healthd-pg")), 1);

    block_in_place(|| pg.kill9());
    // The kept connection dies with the server; the reconnect is refused.
    let (d, reason) = detect(&h, "pg", &["connect"]).await;
    eprintln!("postgres killed: reason {reason}");

    block_in_place(|| pg.start_again());
    let r = recover(&h, "pg").await;
    h.assert_probes(200, 200).await;
    // Exactly one connection from the check, and it stays one over several runs.
    block_in_place(|| {
        eventually("one connection from the check", SLACK, || {
            pg.connections_from("healthd-pg") == 1
        })
    });
    let until = Instant::now() + INTERVAL * 4;
    while Instant::now() < until {
        assert_eq!(block_in_place(|| pg.connections_from("healthd-pg")), 1);
        tokio::time::sleep(INTERVAL / 2).await;
    }
    assert_eq!(h.check("pg").await["status"], "healthy");
    report("postgres_sigkill_restart", Some(d), Some(r));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_paused_with_sigstop_then_resumed() {
    let mut redis = block_in_place(RedisServer::start);
    let witness = TcpPeer::start(ANSWER).await;
    let h = TestDaemon::start(&config(&witness, "", &redis_check("redis", redis.port()))).await;
    for name in ["witness", "redis"] {
        h.timed_wait(
            name,
            bound(),
            "healthy at first",
            status_is("healthy", None),
        )
        .await;
    }
    h.assert_probes(200, 200).await;

    block_in_place(|| redis.pause());
    // Connects complete in the kernel; nothing answers.
    let (d, reason) = detect(&h, "redis", &["timeout"]).await;
    eprintln!("redis paused: reason {reason}");

    block_in_place(|| redis.resume());
    let r = recover(&h, "redis").await;
    h.assert_probes(200, 200).await;
    // The connections cut off at the timeout are not left behind: one from the check.
    block_in_place(|| {
        eventually("one connection from the check", SLACK, || {
            redis
                .clients()
                .iter()
                .filter(|l| l.split_whitespace().any(|f| f == "name=healthd-redis"))
                .count()
                == 1
        })
    });
    report("redis_sigstop_resume", Some(d), Some(r));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_and_redis_both_down_at_start() {
    let witness = TcpPeer::start(ANSWER).await;
    // Ports where nothing listens yet; the servers come up on them later.
    let (pg_port, redis_port) = (free_port(), free_port());
    let pg_password = unique_secret("pgsu");
    let secrets = tempfile::tempdir().expect("temp dir");
    let checks = format!(
        "{}{}",
        pg_check("pg", pg_port, &pg_password, &secrets),
        redis_check("redis", redis_port)
    );
    let started = Instant::now();
    let h = TestDaemon::start(&config(&witness, "", &checks)).await;
    for name in ["pg", "redis"] {
        h.timed_wait(
            name,
            bound(),
            "unhealthy",
            status_is("unhealthy", Some("connect")),
        )
        .await;
    }
    let detect = started.elapsed();
    h.assert_probes(200, 503).await;
    h.assert_undisturbed("witness", SLACK).await;

    // Redis comes up: healthy without a restart; readiness still waits for PostgreSQL.
    let redis = block_in_place(|| RedisServer::start_on(redis_port));
    let redis_up = Instant::now();
    h.timed_wait("redis", bound(), "healthy", status_is("healthy", None))
        .await;
    let redis_recover = redis_up.elapsed();
    let v = h.check("pg").await;
    assert!(unhealthy_with(&["connect"])(&v), "{v:#}");
    h.assert_probes(200, 503).await;

    // PostgreSQL comes up (its password is set as part of the start).
    let pg = block_in_place(|| {
        PgServer::start_with(PgOptions {
            port: Some(pg_port),
            superuser_password: Some(pg_password.clone()),
            ..PgOptions::default()
        })
    });
    let pg_up = Instant::now();
    h.timed_wait("pg", bound(), "healthy", status_is("healthy", None))
        .await;
    let pg_recover = pg_up.elapsed();
    h.assert_probes(200, 200).await;
    h.assert_undisturbed("witness", SLACK).await;
    assert_eq!(h.check("redis").await["status"], "healthy");
    block_in_place(|| {
        eventually("one connection from the check", SLACK, || {
            pg.connections_from("healthd-pg") == 1
        })
    });
    drop(redis);
    report("redis_down_at_start", Some(detect), Some(redis_recover));
    report("postgres_down_at_start", Some(detect), Some(pg_recover));
}

/// The collector's port is closed for the whole run: checks and endpoints carry on, the
/// `telemetry` self-check is degraded, and shutdown is not held up.
async fn collector_down_for_the_whole_run(protocol: &str, name: &str) {
    let witness = TcpPeer::start(ANSWER).await;
    let refusing = RefusingPort::new();
    let closed = refusing.port;
    let telemetry = format!(
        "\n[telemetry]\nendpoint = \"http://127.0.0.1:{closed}\"\nprotocol = \"{protocol}\"\n\
         interval = \"300ms\"\ntimeout = \"200ms\"\nstatus_change_logs = true\n"
    );
    let started = Instant::now();
    let h = TestDaemon::start(&config(&witness, "", &telemetry)).await;
    // The self-check appears with the first export's result.
    let appeared = Instant::now();
    while !h.get("/health").await.1.contains("\"name\":\"telemetry\"") {
        assert!(appeared.elapsed() < bound(), "no telemetry self-check");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    h.timed_wait("telemetry", bound(), "degraded", |v| {
        v["status"] == "degraded" && v["reason"] == "connect"
    })
    .await;
    // From before healthd started: the collector was down all along.
    let detect = started.elapsed();
    let v = h.check("telemetry").await;
    let message = v["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(&format!("127.0.0.1:{closed}")),
        "the message names the endpoint: {v:#}"
    );
    eprintln!("collector down ({protocol}): telemetry degraded, {message}");
    // For a while (several export periods): the witness keeps running and stays healthy,
    // readiness and liveness pass, the self-check stays degraded.
    let until = Instant::now() + Duration::from_secs(2);
    while Instant::now() < until {
        h.assert_probes(200, 200).await;
        h.assert_undisturbed("witness", SLACK).await;
        assert_eq!(h.check("telemetry").await["status"], "degraded");
    }
    assert_eq!(h.get("/metrics").await.0, 200);

    // Shutdown: the final flush to a collector that is not there is bounded.
    let delay = Duration::from_millis(200);
    let draining = Instant::now();
    let TestDaemon { daemon, .. } = h;
    tokio::time::timeout(delay + SLACK, daemon.drain(std::future::pending()))
        .await
        .unwrap_or_else(|_| panic!("drain did not finish within {:?}", delay + SLACK));
    let drained = draining.elapsed();
    eprintln!(
        "SHUTDOWN {name} drain={:.2}s shutdown_delay={:.2}s",
        drained.as_secs_f64(),
        delay.as_secs_f64()
    );
    report(name, Some(detect), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_grpc_collector_down_for_the_whole_run() {
    collector_down_for_the_whole_run("grpc", "otlp_grpc_collector_down").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_http_collector_down_for_the_whole_run() {
    collector_down_for_the_whole_run("http/protobuf", "otlp_http_collector_down").await;
}
