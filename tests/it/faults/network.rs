//! Peers that misbehave on the network: a TCP peer that accepts but never answers, a refused
//! connection, a name that does not resolve, and HTTP upstreams that fail, hang mid-body or
//! answer too late.

use std::sync::atomic::Ordering;
use std::time::Instant;

use super::{BOUND, SLACK, config, healthy_at_first, scenario};
use crate::support::daemon::{TestDaemon, status_is};
use crate::support::peers::{
    ANSWER, FAIL_500, HANG_MID_BODY, HOLD, HttpPeer, OK, SLOW, TcpPeer, report,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_peer_accepting_but_never_answering() {
    let witness = TcpPeer::start(ANSWER).await;
    let peer = TcpPeer::start(ANSWER).await;
    let check = format!(
        "kind = \"tcp\"\nhost = \"127.0.0.1\"\nport = {}\nsend = \"PING\\n\"\nexpect = \"PONG\"",
        peer.addr.port()
    );
    let h = TestDaemon::start(&config(&witness, &check, "")).await;
    let mode = peer.mode.clone();
    let mode2 = peer.mode.clone();
    let (d, r) = scenario(
        &h,
        "timeout",
        BOUND,
        move || mode.store(HOLD, Ordering::SeqCst),
        Some(Box::new(move || mode2.store(ANSWER, Ordering::SeqCst))),
    )
    .await;
    report("tcp_never_answers", Some(d), r);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_connection_refused() {
    let witness = TcpPeer::start(ANSWER).await;
    let peer = TcpPeer::start(ANSWER).await;
    let port = peer.addr.port();
    let check = format!("kind = \"tcp\"\nhost = \"127.0.0.1\"\nport = {port}");
    let h = TestDaemon::start(&config(&witness, &check, "")).await;
    healthy_at_first(&h).await;
    peer.stop_listening().await;
    let detect = h
        .timed_wait(
            "subject",
            BOUND,
            "unhealthy",
            status_is("unhealthy", Some("connect")),
        )
        .await;
    assert_eq!(h.get("/readyz").await.0, 503);
    h.assert_undisturbed("witness", SLACK).await;
    // Recovery: the service listens on its port again.
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    let _back = TcpPeer::serve(listener, ANSWER);
    let recover = h
        .timed_wait(
            "subject",
            BOUND,
            "healthy again",
            status_is("healthy", None),
        )
        .await;
    h.assert_probes(200, 200).await;
    report("tcp_connection_refused", Some(detect), Some(recover));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_name_that_does_not_resolve() {
    let witness = TcpPeer::start(ANSWER).await;
    let check = "kind = \"tcp\"\nhost = \"no-such-host.invalid\"\nport = 80";
    let started = Instant::now();
    let h = TestDaemon::start(&config(&witness, check, "")).await;
    let detect = h
        .timed_wait(
            "subject",
            BOUND,
            "unhealthy",
            status_is("unhealthy", Some("dns")),
        )
        .await;
    let v = h.check("subject").await;
    assert!(
        v["message"]
            .as_str()
            .unwrap_or_default()
            .contains("no-such-host.invalid"),
        "{v:#}"
    );
    assert_eq!(h.get("/readyz").await.0, 503);
    h.assert_undisturbed("witness", SLACK).await;
    let _ = started;
    report("dns_does_not_resolve", Some(detect), None);
}

async fn http_scenario(name: &str, mode: u8, reason: &'static str, body_check: bool) {
    let witness = TcpPeer::start(ANSWER).await;
    let peer = HttpPeer::start().await;
    let mut check = format!("kind = \"http\"\nurl = \"{}\"", peer.url());
    if body_check {
        check.push_str("\nbody_contains = \"end\"");
    }
    let h = TestDaemon::start(&config(&witness, &check, "")).await;
    let m = peer.mode.clone();
    let m2 = peer.mode.clone();
    let (d, r) = scenario(
        &h,
        reason,
        BOUND,
        move || m.store(mode, Ordering::SeqCst),
        Some(Box::new(move || m2.store(OK, Ordering::SeqCst))),
    )
    .await;
    report(name, Some(d), r);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_upstream_answering_500() {
    http_scenario("http_500", FAIL_500, "status", false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_upstream_hanging_mid_body() {
    http_scenario("http_hang_mid_body", HANG_MID_BODY, "timeout", true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_upstream_answering_after_the_timeout() {
    http_scenario("http_after_timeout", SLOW, "timeout", false).await;
}
