//! The resilience settings under a real fault: the breaker backs off and closes,
//! `confirm_after` reaches the threshold quickly, flapping is marked and held, and a check
//! starved by the bulkhead turns unknown (stale) rather than staying healthy.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::{SLACK, config};
use crate::support::daemon::{TestDaemon, status_is};
use crate::support::peers::{ALTERNATE, ANSWER, FAIL_500, HOLD, HttpPeer, OK, TcpPeer, report};
use crate::support::promtool_check_metrics;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn breaker_backs_off_while_down_and_closes_on_success() {
    let witness = TcpPeer::start(ANSWER).await;
    let peer = HttpPeer::start().await;
    let check = format!(
        "kind = \"http\"\nurl = \"{}\"\ninterval = \"200ms\"\ntimeout = \"150ms\"\nfailure_threshold = 1\nmax_backoff = \"1600ms\"",
        peer.url()
    );
    let h = TestDaemon::start(&config(&witness, &check, "")).await;
    h.timed_wait("subject", SLACK, "healthy", status_is("healthy", None))
        .await;
    peer.set(FAIL_500);
    h.timed_wait("subject", SLACK, "open", |v| {
        v["status"] == "unhealthy" && v["breaker"] == "open" && v["next_run"].is_string()
    })
    .await;
    let before = peer.requests.load(Ordering::SeqCst);
    let window = Instant::now();
    tokio::time::sleep(Duration::from_secs(6)).await;
    let while_open = peer.requests.load(Ordering::SeqCst) - before;
    // On the plain interval it would be ~30 requests in 6 s; backing off to 1.6 s it is
    // about 5 (jitter takes up to a quarter off each delay).
    eprintln!(
        "BREAKER requests_while_open={while_open} in {:.1}s",
        window.elapsed().as_secs_f64()
    );
    assert!((2..=10).contains(&while_open), "{while_open} requests");
    assert_eq!(h.check("subject").await["breaker"], "open");
    let (_, metrics) = h.get("/metrics").await;
    assert!(
        metrics.contains(
            "healthd_check_breaker_open{healthd_check_name=\"subject\",healthd_check_kind=\"http\"} 1"
        ),
        "{metrics}"
    );
    promtool_accepts(&metrics);
    peer.set(OK);
    let recover = h
        .timed_wait("subject", SLACK, "closed", |v| {
            v["status"] == "healthy" && v["breaker"] == "closed"
        })
        .await;
    assert!(recover < Duration::from_millis(1600) + SLACK);
    // Back on the normal interval.
    let before = peer.requests.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = peer.requests.load(Ordering::SeqCst) - before;
    assert!(after >= 5, "{after} requests in 2 s after closing");
    report("breaker_open_then_close", None, Some(recover));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confirm_after_reaches_the_threshold_quickly() {
    let witness = TcpPeer::start(ANSWER).await;
    let peer = HttpPeer::start().await;
    // A long interval: without confirmation, three failures would take 10 s or more.
    let check = format!(
        "kind = \"http\"\nurl = \"{}\"\ninterval = \"5s\"\ntimeout = \"200ms\"\nfailure_threshold = 3\nconfirm_after = \"200ms\"",
        peer.url()
    );
    let h = TestDaemon::start(&config(&witness, &check, "")).await;
    h.timed_wait("subject", SLACK, "healthy", status_is("healthy", None))
        .await;
    peer.set(FAIL_500);
    // The first failure waits for the next interval (≤ 5 s); then two quick confirmations.
    let detect = h
        .timed_wait(
            "subject",
            Duration::from_secs(5) + SLACK,
            "unhealthy",
            status_is("unhealthy", Some("status")),
        )
        .await;
    let v = h.check("subject").await;
    assert_eq!(v["consecutive_failures"], 3, "{v:#}");
    assert!(detect < Duration::from_secs(10), "{detect:?}");
    report("confirm_after_http_500", Some(detect), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flapping_is_marked_and_held_at_the_worse_state() {
    let witness = TcpPeer::start(ANSWER).await;
    let peer = HttpPeer::start().await;
    let check = format!(
        "kind = \"http\"\nurl = \"{}\"\ninterval = \"150ms\"\ntimeout = \"100ms\"\nfailure_threshold = 1\nbackoff = false\nflap_window = 6\nflap_threshold = 0.5",
        peer.url()
    );
    let h = TestDaemon::start(&config(&witness, &check, "")).await;
    h.timed_wait("subject", SLACK, "healthy", status_is("healthy", None))
        .await;
    peer.set(ALTERNATE);
    let detect = h
        .timed_wait("subject", SLACK, "flapping", |v| v["flapping"] == true)
        .await;
    // Held at the worse state across several results, though every other one passes.
    for _ in 0..8 {
        let v = h.check("subject").await;
        assert_eq!(v["status"], "unhealthy", "{v:#}");
        assert_eq!(v["flapping"], true, "{v:#}");
        assert_eq!(v["reason"], "status", "{v:#}");
        tokio::time::sleep(Duration::from_millis(75)).await;
    }
    peer.set(OK);
    let recover = h
        .timed_wait("subject", SLACK, "settled", |v| {
            v["flapping"] == false && v["status"] == "healthy"
        })
        .await;
    h.assert_undisturbed("witness", SLACK).await;
    report("flapping_http", Some(detect), Some(recover));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_check_starved_by_the_bulkhead_turns_unknown_not_stale_healthy() {
    // One probe at a time; "blocker" holds the only slot for 2.5 s per run against a peer
    // that never answers, so "victim" (due every 300 ms) cannot run for seconds: its last
    // healthy result must not be served as current.
    let hold = TcpPeer::start(HOLD).await;
    let ok = TcpPeer::start(ANSWER).await;
    let cfg = format!(
        r#"
[server]
max_in_flight = 1

[[checks]]
name = "victim"
kind = "tcp"
host = "127.0.0.1"
port = {ok}
interval = "300ms"
timeout = "200ms"

[[checks]]
name = "blocker"
kind = "tcp"
host = "127.0.0.1"
port = {hold}
send = "PING\n"
expect = "PONG"
interval = "3s"
timeout = "2500ms"
critical = false
backoff = false
"#,
        ok = ok.addr.port(),
        hold = hold.addr.port()
    );
    let h = TestDaemon::start(&cfg).await;
    h.timed_wait("victim", SLACK, "healthy", status_is("healthy", None))
        .await;
    let started = Instant::now();
    let detect = h
        .timed_wait("victim", Duration::from_secs(10), "stale", |v| {
            v["status"] == "unknown" && v["stale"] == true
        })
        .await;
    let v = h.check("victim").await;
    assert!(
        v["message"]
            .as_str()
            .unwrap_or_default()
            .starts_with("stale"),
        "{v:#}"
    );
    assert_eq!(h.get("/readyz").await.0, 503, "unknown is not ready");
    assert_eq!(h.get("/livez").await.0, 200);
    let recover = h
        .timed_wait("victim", Duration::from_secs(10), "fresh again", |v| {
            v["status"] == "healthy" && v["stale"] == false
        })
        .await;
    let _ = started;
    report("starved_check_goes_stale", Some(detect), Some(recover));
}

/// Prometheus' own checker finds nothing wrong with the resilience families. (It lints the
/// whole exposition; complaints about other families are not this suite's business.)
fn promtool_accepts(metrics: &str) {
    let (_, text) = promtool_check_metrics(metrics);
    for family in [
        "healthd_check_breaker_open",
        "healthd_check_flapping",
        "healthd_check_stale",
    ] {
        assert!(
            metrics.contains(&format!("# HELP {family} ")),
            "{family} missing"
        );
        assert!(!text.contains(family), "promtool: {text}");
    }
    assert!(!text.contains("error"), "promtool: {text}");
}
