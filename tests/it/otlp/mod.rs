//! OTLP export against a real receiver built from the official protocol definitions
//! (opentelemetry-proto): a tonic gRPC server and an axum HTTP/protobuf route. Also
//! `promtool check metrics` on the daemon's real `/metrics`.
//!
//! Helpers: the receiver ([`receiver`]), decoding what it got ([`decode`]), and here the
//! daemon side (the checks every test runs, waiting for a complete export, bounded stop).
//! Tests by subject: [`export`] (what an export holds, gRPC and HTTP), [`failing_collector`]
//! (a collector that dies, rejects or is slow), [`tls`] (mutual TLS), [`prometheus`]
//! (`/metrics` through promtool), [`tls_cert`] (the tls kind's certificate expiry gauge) and
//! [`settings`] (the `[telemetry]` section: validation, environment, example, reload).

mod decode;
mod export;
mod failing_collector;
mod history;
mod host;
mod prometheus;
mod prometheus_streamed;
mod receiver;
mod settings;
mod tls;
mod tls_cert;

use std::time::Duration;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;

use crate::support::daemon::TestDaemon;
use crate::support::eventually_async;
use decode::{names, points};
use receiver::{Headers, Inbox};

async fn stop(d: TestDaemon) {
    tokio::time::timeout(
        Duration::from_secs(30),
        d.daemon.drain(std::future::pending()),
    )
    .await
    .expect("drain finishes even when the collector is gone");
}

/// A TCP listener for the tcp check; accepts and drops connections until aborted.
async fn tcp_target() -> (u16, tokio::task::JoinHandle<()>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        loop {
            if let Ok((s, _)) = l.accept().await {
                drop(s);
            }
        }
    });
    (port, task)
}

fn checks_config(tcp_port: u16) -> String {
    format!(
        r#"
[server]
shutdown_delay = "10ms"

[defaults]
interval = "300ms"
timeout = "250ms"
failure_threshold = 1

[[checks]]
name = "cpu"
kind = "cpu"
critical = false
degraded_above = 99.5
unhealthy_above = 100

[[checks]]
name = "memory"
kind = "memory"
degraded_above = 99.5
unhealthy_above = 100

[[checks]]
name = "disk"
kind = "disk"
mounts = ["/"]
degraded_above = 99.5
unhealthy_above = 100

[[checks]]
name = "db"
kind = "tcp"
host = "127.0.0.1"
port = {tcp_port}
"#
    )
}

const HOST_METRICS: [&str; 9] = [
    "system.cpu.utilization",
    "system.cpu.load_average.1m",
    "system.cpu.load_average.5m",
    "system.cpu.load_average.15m",
    "system.uptime",
    "system.memory.usage",
    "system.memory.utilization",
    "system.filesystem.usage",
    "system.filesystem.utilization",
];
const CHECK_METRICS: [&str; 4] = [
    "healthd.check.status",
    "healthd.group.status",
    "healthd.check.runs",
    "healthd.check.duration",
];

/// Wait for an export holding every metric (the duration histogram needs a run first).
async fn full_export(inbox: &Inbox, after: usize) -> (Headers, ExportMetricsServiceRequest) {
    eventually_async("a complete export", Duration::from_secs(30), || async {
        let all = inbox.metrics.lock().unwrap();
        all.iter()
            .skip(after)
            .rev()
            .find(|(_, r)| {
                let n = names(&points(r));
                HOST_METRICS
                    .iter()
                    .chain(CHECK_METRICS.iter())
                    .all(|m| n.iter().any(|x| x == m))
            })
            .cloned()
    })
    .await
}
