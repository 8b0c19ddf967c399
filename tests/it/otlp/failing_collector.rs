//! A collector that dies, rejects or is slow degrades only the `telemetry` self-check: the
//! checks keep running and the probe endpoints keep answering.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;

use super::receiver::{Inbox, Mode, Receiver};
use super::{checks_config, full_export, stop, tcp_target};
use crate::support::daemon::{TestDaemon, is, reason};
use crate::support::{eventually_async, free_port};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collector_killed_mid_run_does_not_affect_checks() {
    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let inbox = Inbox::default();
    let receiver = Receiver::grpc(addr, inbox.clone()).await;
    let (tcp_port, _tcp) = tcp_target().await;
    let config = format!(
        "{}\n[telemetry]\nendpoint = \"http://{addr}\"\ninterval = \"300ms\"\ntimeout = \"250ms\"\n",
        checks_config(tcp_port)
    );
    let d = TestDaemon::start_with_env(&config, &[]).await;
    full_export(&inbox, 0).await;
    d.wait_check(
        "telemetry",
        "telemetry healthy",
        Duration::from_secs(20),
        |c| is(c, "healthy"),
    )
    .await;

    receiver.kill().await;
    d.wait_check(
        "telemetry",
        "telemetry degraded after the collector died",
        Duration::from_secs(20),
        |c| is(c, "degraded"),
    )
    .await;
    // Checks keep running and endpoints keep answering while exports fail.
    let runs_of = |c: &Value| c["last_run"].as_str().map(str::to_string);
    let first = runs_of(&d.find_check("db").await.unwrap());
    let mut seen_new_run = false;
    for _ in 0..20 {
        let (code, _) = d.get("/readyz").await;
        assert_eq!(code, 200, "readiness unaffected by the collector");
        let c = d.find_check("db").await.unwrap();
        assert_eq!(c["status"], "healthy");
        seen_new_run |= runs_of(&c) != first;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(seen_new_run, "the tcp check kept running");
    assert_eq!(d.get("/metrics").await.0, 200);
    let exported_while_down = inbox.metric_count();

    // The collector returns: exports resume and the self-check recovers.
    let receiver = Receiver::grpc(addr, inbox.clone()).await;
    eventually_async("exports resume", Duration::from_secs(30), || async {
        (inbox.metric_count() > exported_while_down).then_some(())
    })
    .await;
    d.wait_check(
        "telemetry",
        "telemetry healthy again",
        Duration::from_secs(20),
        |c| is(c, "healthy"),
    )
    .await;

    // Shutdown with the collector gone again is bounded.
    receiver.kill().await;
    stop(d).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejecting_or_slow_collector_degrades_only_the_telemetry_self_check() {
    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let inbox = Inbox::default();
    *inbox.mode.lock().unwrap() = Mode::Reject;
    let receiver = Receiver::grpc(addr, inbox.clone()).await;
    let (tcp_port, _tcp) = tcp_target().await;
    let config = format!(
        "{}\n[telemetry]\nendpoint = \"http://{addr}\"\ninterval = \"300ms\"\ntimeout = \"250ms\"\n",
        checks_config(tcp_port)
    );
    let d = TestDaemon::start_with_env(&config, &[]).await;
    eventually_async("ready", Duration::from_secs(20), || async {
        (d.get("/readyz").await.0 == 200).then_some(())
    })
    .await;

    d.wait_check(
        "telemetry",
        "telemetry degraded (auth) while the collector rejects",
        Duration::from_secs(20),
        |c| reason(c) == "auth",
    )
    .await;
    assert_eq!(d.check("telemetry").await["status"], "degraded");
    assert_eq!(d.get("/readyz").await.0, 200);

    // A collector slower than the timeout: exports are cut off at the timeout.
    *inbox.mode.lock().unwrap() = Mode::Slow(Duration::from_secs(3));
    d.wait_check(
        "telemetry",
        "telemetry degraded (timeout) while the collector is slow",
        Duration::from_secs(20),
        |c| reason(c) == "timeout",
    )
    .await;
    let first = d.find_check("db").await.unwrap()["last_run"].clone();
    eventually_async(
        "the tcp check keeps running",
        Duration::from_secs(10),
        || async {
            ({
                let c = d.find_check("db").await.unwrap();
                assert_eq!(c["status"], "healthy");
                assert_eq!(d.get("/livez").await.0, 200);
                c["last_run"] != first
            })
            .then_some(())
        },
    )
    .await;

    *inbox.mode.lock().unwrap() = Mode::Accept;
    full_export(&inbox, 0).await;
    d.wait_check(
        "telemetry",
        "telemetry healthy once the collector accepts",
        Duration::from_secs(20),
        |c| is(c, "healthy"),
    )
    .await;
    stop(d).await;
    receiver.kill().await;
}
