//! History's figures in OTLP: the same uptime and SLO series as `/metrics`, and the
//! writer's counters.

use std::net::SocketAddr;
use std::time::Duration;

use super::decode::points;
use super::receiver::{Inbox, Receiver};
use super::{stop, tcp_target};
use crate::support::daemon::TestDaemon;
use crate::support::{eventually_async, free_port};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uptime_slo_and_writer_counters_are_exported() {
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let inbox = Inbox::default();
    let _receiver = Receiver::grpc(addr, inbox.clone()).await;
    let (port, tcp) = tcp_target().await;
    let d = TestDaemon::start(&format!(
        r#"
[server]
shutdown_delay = "10ms"

[telemetry]
endpoint = "http://{addr}"
protocol = "grpc"
interval = "300ms"
timeout = "250ms"

[[checks]]
name = "db"
kind = "tcp"
host = "127.0.0.1"
port = {port}
interval = "100ms"
timeout = "50ms"
slo = {{ objective = 99.5, min_runs = 3 }}
"#
    ))
    .await;
    d.wait_runs("db", 5, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    d.daemon.history.refresh().await;
    let pts = eventually_async(
        "history metrics exported",
        Duration::from_secs(20),
        || async {
            let all = inbox.metrics.lock().unwrap();
            all.iter().rev().map(|(_, r)| points(r)).find(|p| {
                p.iter().any(|x| x.metric == "healthd.check.uptime")
                    && p.iter()
                        .any(|x| x.metric == "healthd.history.written" && x.value > 0.0)
            })
        },
    )
    .await;
    let find = |metric: &str, key: &str, val: &str| {
        pts.iter()
            .find(|p| {
                p.metric == metric
                    && p.attrs.get("healthd.check.name").map(String::as_str) == Some("db")
                    && (key.is_empty() || p.attrs.get(key).map(String::as_str) == Some(val))
            })
            .unwrap_or_else(|| panic!("{metric} {key}={val} not exported"))
            .clone()
    };
    let up = find("healthd.check.uptime", "window", "1h");
    assert_eq!((up.value, up.unit.as_str(), up.kind), (1.0, "1", "gauge"));
    assert_eq!(find("healthd.slo.objective", "", "").value, 0.995);
    assert_eq!(find("healthd.slo.burn_rate", "window", "5m").value, 0.0);
    assert_eq!(find("healthd.slo.alert", "severity", "page").value, 0.0);
    assert_eq!(
        find("healthd.slo.error_budget.remaining", "", "").value,
        1.0
    );
    let dropped = pts
        .iter()
        .find(|p| p.metric == "healthd.history.dropped")
        .expect("dropped counter");
    assert_eq!((dropped.kind, dropped.value), ("counter", 0.0));
    stop(d).await;
    tcp.abort();
}
