//! `scheduler::run_once` against real loopback peers: a result within the timeout, a peer that
//! never answers turned into `timeout`, and the probe kept for the next run.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use healthd::check::ProbeConfig;
use healthd::check::tcp::TcpConfig;
use healthd::config::CheckConfig;
use healthd::model::Group;
use healthd::model::{Level, Reason};
use healthd::scheduler::run_once;

fn tcp_check(port: u16, expect: Option<&str>, timeout: Duration) -> CheckConfig {
    CheckConfig {
        name: "dep".into(),
        interval: timeout * 4,
        timeout,
        critical: true,
        groups: vec![Group::Readiness],
        failure_threshold: 1,
        success_threshold: 1,
        degraded_after: None,
        depends_on: vec![],
        probe: ProbeConfig::Tcp(Box::new(TcpConfig {
            host: "127.0.0.1".into(),
            port,
            send: None,
            expect: expect.map(str::to_string),
            expect_regex: None,
        })),
        resilience: Default::default(),
        slo: None,
    }
}

#[tokio::test]
async fn run_once_reports_success_and_keeps_the_probe() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let config = tcp_check(port, None, Duration::from_secs(5));
    let mut probe = None;
    for _ in 0..2 {
        let outcome = run_once(&mut probe, &config).await;
        assert_eq!(outcome.level, Level::Ok, "{}", outcome.message);
        assert!(probe.is_some(), "the probe is kept between runs");
    }
}

#[tokio::test]
async fn run_once_turns_a_silent_peer_into_a_timeout() {
    // Accepts (the kernel completes the handshake) but never sends a byte.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let timeout = Duration::from_millis(300);
    let config = tcp_check(port, Some("never sent"), timeout);
    let mut probe = None;
    let started = Instant::now();
    let outcome = run_once(&mut probe, &config).await;
    assert_eq!(outcome.level, Level::Failed);
    assert_eq!(outcome.reason, Some(Reason::Timeout), "{}", outcome.message);
    // The tcp probe stops reading at 90% of the timeout, to report what the peer said (if
    // anything) rather than a bare timeout; the run never ends before that.
    assert!(
        started.elapsed() >= timeout * 9 / 10,
        "{:?}",
        started.elapsed()
    );
    assert!(probe.is_some(), "a timeout does not discard the probe");
    drop(listener);
}
